//! A client of clamd's `INSTREAM` command (clamd(8), "INSTREAM"): the message is streamed to
//! the daemon in chunks, each prefixed by its length as 4 bytes in network order, ended by a
//! zero length; clamd answers with one line. The `z` form of the command is used, so the reply
//! ends with a NUL byte instead of a newline (a name with odd bytes cannot break the framing).
//!
//! The replies (clamd's `scanners.c` and `session.c`):
//! - `stream: OK` — clean;
//! - `stream: <signature> FOUND` — infected;
//! - `INSTREAM size limit exceeded. ERROR` — the stream went past clamd's `StreamMaxLength`;
//!   clamd closes the connection then, so writing may fail before the reply is read;
//! - `<anything> ERROR` — clamd could not scan.
//!
//! clamd does not tell its `StreamMaxLength` before a scan, so a message over it is only known
//! when clamd says so ([`ClamdError::TooLarge`]); what that means for the message is the rule's
//! choice (`policy::antivirus`).

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// The bytes of one chunk on the wire (clamd's own `clamdscan` sends 8 KiB..; larger chunks
/// mean fewer writes, and clamd's `StreamMaxLength` counts bytes, not chunks).
const CHUNK: usize = 64 * 1024;

/// The longest reply read (a signature name is well under 200 bytes).
const MAX_REPLY: usize = 4096;

/// Where clamd listens: `antivirus.clamav.socket`, a Unix socket path or `tcp://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClamdAddress {
    Unix(PathBuf),
    /// `host:port` as given (a name is resolved at each scan).
    Tcp(String),
}

impl ClamdAddress {
    /// Parses the setting: `tcp://host:port`, else an absolute path.
    pub fn parse(text: &str) -> Result<ClamdAddress, String> {
        if let Some(rest) = text.strip_prefix("tcp://") {
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| format!("{text:?} has no port (tcp://host:port)"))?;
            let bracketed = host.starts_with('[') && host.ends_with(']');
            let host = host.trim_start_matches('[').trim_end_matches(']');
            // An IPv6 address needs its brackets, or its last group would read as the port.
            if host.is_empty() || host.contains('/') || (host.contains(':') && !bracketed) {
                return Err(format!("{text:?} has no host (tcp://host:port)"));
            }
            match port.parse::<u16>() {
                Ok(p) if p > 0 => Ok(ClamdAddress::Tcp(rest.to_string())),
                _ => Err(format!("{text:?}: {port:?} is not a port number")),
            }
        } else if text.starts_with('/') {
            Ok(ClamdAddress::Unix(PathBuf::from(text)))
        } else {
            Err(format!(
                "{text:?} is neither an absolute socket path nor tcp://host:port"
            ))
        }
    }
}

impl std::fmt::Display for ClamdAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClamdAddress::Unix(path) => write!(f, "{}", path.display()),
            ClamdAddress::Tcp(address) => write!(f, "tcp://{address}"),
        }
    }
}

/// What clamd found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Clean,
    /// The name of the matching signature, e.g. `Eicar-Signature`.
    Infected(String),
}

/// Why a scan gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClamdError {
    #[error("cannot connect to clamd at {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("talking to clamd: {0}")]
    Io(#[from] std::io::Error),
    #[error("clamd did not answer within {0:?}")]
    Timeout(Duration),
    /// The message is larger than clamd's `StreamMaxLength`.
    #[error("the message is larger than clamd's StreamMaxLength")]
    TooLarge,
    /// clamd's own `... ERROR` reply.
    #[error("clamd could not scan: {0}")]
    Scanner(String),
    #[error("clamd's reply is not understood: {0:?}")]
    Garbled(String),
}

/// Scans `message` with the clamd at `address`, all of it within `timeout`.
pub async fn scan(
    address: &ClamdAddress,
    message: &[u8],
    timeout: Duration,
) -> Result<Finding, ClamdError> {
    let work = async {
        match address {
            ClamdAddress::Unix(path) => {
                let stream =
                    UnixStream::connect(path)
                        .await
                        .map_err(|source| ClamdError::Connect {
                            address: address.to_string(),
                            source,
                        })?;
                instream(stream, message).await
            }
            ClamdAddress::Tcp(host_port) => {
                let stream = TcpStream::connect(host_port.as_str())
                    .await
                    .map_err(|source| ClamdError::Connect {
                        address: address.to_string(),
                        source,
                    })?;
                stream.set_nodelay(true)?;
                instream(stream, message).await
            }
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ClamdError::Timeout(timeout))?
}

/// One `zINSTREAM` exchange on an open connection.
async fn instream<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    message: &[u8],
) -> Result<Finding, ClamdError> {
    let sent = send_stream(&mut stream, message).await;
    // clamd answers a stream over its limit and closes: its reply says more than the write
    // error it causes, so it is read even when sending failed.
    let reply = read_reply(&mut stream).await;
    match (sent, reply) {
        (_, Ok(reply)) if !reply.is_empty() => parse_reply(&reply),
        (Err(err), _) => Err(ClamdError::Io(err)),
        (Ok(()), Err(err)) => Err(ClamdError::Io(err)),
        (Ok(()), Ok(_)) => Err(ClamdError::Garbled(
            "the connection closed without a reply".into(),
        )),
    }
}

async fn send_stream<S: AsyncWrite + Unpin>(stream: &mut S, message: &[u8]) -> std::io::Result<()> {
    stream.write_all(b"zINSTREAM\0").await?;
    for chunk in message.chunks(CHUNK) {
        stream.write_all(&chunk_header(chunk.len())).await?;
        stream.write_all(chunk).await?;
    }
    stream.write_all(&chunk_header(0)).await?;
    stream.flush().await
}

/// The 4-byte big-endian length of a chunk (`CHUNK` fits in 32 bits).
fn chunk_header(length: usize) -> [u8; 4] {
    u32::try_from(length).unwrap_or(u32::MAX).to_be_bytes()
}

/// Reads up to the NUL that ends a `z` reply, the end of the stream, or `MAX_REPLY` bytes.
async fn read_reply<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Vec<u8>> {
    let mut reply = Vec::with_capacity(64);
    let mut buffer = [0u8; 512];
    loop {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            return Ok(reply);
        }
        reply.extend_from_slice(&buffer[..n]);
        if reply.contains(&0) || reply.len() >= MAX_REPLY {
            reply.truncate(MAX_REPLY);
            return Ok(reply);
        }
    }
}

/// The meaning of one clamd reply (its NUL or newline end optional).
pub fn parse_reply(reply: &[u8]) -> Result<Finding, ClamdError> {
    let end = reply
        .iter()
        .position(|&b| b == 0 || b == b'\n')
        .unwrap_or(reply.len());
    let text = String::from_utf8_lossy(&reply[..end]);
    let text = text.trim();
    if text.contains("size limit exceeded") {
        return Err(ClamdError::TooLarge);
    }
    if let Some(rest) = text.strip_suffix(" ERROR") {
        return Err(ClamdError::Scanner(rest.to_string()));
    }
    // A session id prefix (`1: stream: OK`, IDSESSION) is not used here but costs nothing.
    let result = match text.split_once("stream: ") {
        Some((_, result)) => result,
        None => return Err(ClamdError::Garbled(text.to_string())),
    };
    if result == "OK" {
        return Ok(Finding::Clean);
    }
    match result.strip_suffix(" FOUND") {
        Some(name) if !name.trim().is_empty() => Ok(Finding::Infected(name.trim().to_string())),
        _ => Err(ClamdError::Garbled(text.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        assert_eq!(parse_reply(b"stream: OK\0").unwrap(), Finding::Clean);
        assert_eq!(parse_reply(b"stream: OK\n").unwrap(), Finding::Clean);
        assert_eq!(parse_reply(b"1: stream: OK\0").unwrap(), Finding::Clean);
        assert_eq!(
            parse_reply(b"stream: Eicar-Signature FOUND\0").unwrap(),
            Finding::Infected("Eicar-Signature".into())
        );
        assert_eq!(
            parse_reply(b"stream: Win.Test.EICAR_HDB-1 FOUND\0junk").unwrap(),
            Finding::Infected("Win.Test.EICAR_HDB-1".into())
        );
        assert!(matches!(
            parse_reply(b"INSTREAM size limit exceeded. ERROR\0"),
            Err(ClamdError::TooLarge)
        ));
        assert!(matches!(
            parse_reply(b"Can't allocate memory ERROR\0"),
            Err(ClamdError::Scanner(why)) if why == "Can't allocate memory"
        ));
    }

    #[test]
    fn bad_replies_are_errors_not_panics() {
        for reply in [
            &b""[..],
            b"\0",
            b"stream:",
            b"stream: ",
            b"stream:  FOUND",
            b"stream: FOUND",
            b"OK",
            b"UNKNOWN COMMAND\n",
            b"\xff\xfe\xfd",
            b"stream: \xff FOUND\0",
        ] {
            match parse_reply(reply) {
                Ok(Finding::Clean) => panic!("{reply:?} read as clean"),
                Ok(Finding::Infected(name)) => assert!(!name.is_empty(), "{reply:?}"),
                Err(_) => {}
            }
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(
            ClamdAddress::parse("/run/clamav/clamd.ctl").unwrap(),
            ClamdAddress::Unix("/run/clamav/clamd.ctl".into())
        );
        assert_eq!(
            ClamdAddress::parse("tcp://127.0.0.1:3310").unwrap(),
            ClamdAddress::Tcp("127.0.0.1:3310".into())
        );
        assert_eq!(
            ClamdAddress::parse("tcp://[::1]:3310").unwrap(),
            ClamdAddress::Tcp("[::1]:3310".into())
        );
        for bad in [
            "clamd.ctl",
            "tcp://",
            "tcp://host",
            "tcp://:3310",
            "tcp://h:0",
            "tcp://h:99999",
            "tcp://h:x",
            "tcp://::1:3310",
        ] {
            assert!(ClamdAddress::parse(bad).is_err(), "{bad}");
        }
    }

    /// The framing as clamd reads it: the command, length-prefixed chunks, a zero length.
    #[tokio::test]
    async fn the_stream_is_framed_in_chunks() {
        let message: Vec<u8> = (0..(CHUNK * 2 + 10)).map(|i| (i % 251) as u8).collect();
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let expected = message.clone();
        let clamd = tokio::spawn(async move {
            let mut command = [0u8; 10];
            server.read_exact(&mut command).await.unwrap();
            assert_eq!(&command, b"zINSTREAM\0");
            let mut got = Vec::new();
            let mut sizes = Vec::new();
            loop {
                let mut length = [0u8; 4];
                server.read_exact(&mut length).await.unwrap();
                let length = u32::from_be_bytes(length) as usize;
                sizes.push(length);
                if length == 0 {
                    break;
                }
                let mut chunk = vec![0u8; length];
                server.read_exact(&mut chunk).await.unwrap();
                got.extend_from_slice(&chunk);
            }
            assert_eq!(got, expected);
            assert_eq!(sizes, vec![CHUNK, CHUNK, 10, 0]);
            server.write_all(b"stream: OK\0").await.unwrap();
        });
        assert_eq!(instream(client, &message).await.unwrap(), Finding::Clean);
        clamd.await.unwrap();
    }

    /// A daemon that never answers is a timeout, not a hang.
    #[tokio::test]
    async fn a_silent_daemon_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = ClamdAddress::Tcp(listener.local_addr().unwrap().to_string());
        let hold = tokio::spawn(async move {
            let (_socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
        });
        let result = scan(&address, b"hello", Duration::from_millis(300)).await;
        assert!(matches!(result, Err(ClamdError::Timeout(_))), "{result:?}");
        hold.abort();
    }

    #[tokio::test]
    async fn no_daemon_is_a_connect_error() {
        let dir = std::env::temp_dir().join(format!("clamd-none-{}", std::process::id()));
        let address = ClamdAddress::Unix(dir.join("missing.sock"));
        let result = scan(&address, b"hello", Duration::from_secs(2)).await;
        assert!(
            matches!(result, Err(ClamdError::Connect { .. })),
            "{result:?}"
        );
    }
}
