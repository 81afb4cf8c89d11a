//! An ICAP client (RFC 3507) for scanning one message: the message travels as the body of an
//! HTTP message encapsulated in a `REQMOD` (as an upload: `POST`, what a DLP service looks at)
//! or `RESPMOD` (as a download: the response to a `GET`, what an antivirus gateway such as
//! Kaspersky Scan Engine's ICAP mode or c-icap's virus_scan looks at) request, with a chunked
//! body (§4.5) and `Allow: 204` (§4.6), so a service with nothing to change answers
//! `204 No Content` without sending the message back. No preview and no `OPTIONS`: the whole
//! message is always sent, so neither the preview size nor the `Transfer-*` lists matter.
//!
//! Heads (the ICAP response and an encapsulated HTTP response) are parsed with `httparse`; the
//! ICAP status line is `ICAP/1.0 …`, which httparse does not know, so its version is read here
//! and the rest of the head is parsed as `HTTP/1.0`.
//!
//! What an answer means:
//! - `204` — clean.
//! - `200` with `X-Infection-Found: …Threat=<name>;` (c-icap's virus_scan, Kaspersky, OPSWAT),
//!   `X-Virus-ID: <name>` or `X-Violations-Found` (c-icap: count, then per violation the file
//!   name, the threat, its id and the resolution) — infected, with that name.
//! - `200` whose encapsulated HTTP response is not `2xx` (c-icap and Kaspersky answer a block
//!   with a `403` page) — blocked.
//! - `200` with the message sent back: unchanged is clean, changed (e.g. "disinfected") is
//!   blocked — the original is never replaced by what a scanner made of it.
//! - any other status, a broken head or body, a closed connection or the timeout — an error:
//!   the message was not judged.

mod chunked;
mod request;
mod response;

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

pub use chunked::{dechunk, Dechunker};
pub use request::encode_request;
use response::{judge_returned, parse_http_status};
pub use response::{parse_head, Head, Returned};
/// The longest ICAP response head read, and the most headers in it.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;

/// How much more than the message a service may send back (its own headers, a block page).
const BODY_SLACK: usize = 1024 * 1024;

/// `icap://host[:port]/service[?args]` (port 1344 when not given, RFC 3507 §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcapUrl {
    /// As given: the request line names it.
    url: String,
    /// `host:port` to connect to and for the `Host` header.
    authority: String,
}

impl IcapUrl {
    pub fn parse(text: &str) -> Result<IcapUrl, String> {
        let rest = text
            .strip_prefix("icap://")
            .ok_or_else(|| format!("{text:?} is not an icap:// URL"))?;
        let (authority, _path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() || authority.contains(['@', ' ', '?', '#']) {
            return Err(format!("{text:?} has no host (icap://host[:port]/service)"));
        }
        let has_port = match authority.rsplit_once(':') {
            // `[::1]` alone has colons but no port.
            Some((host, _)) if authority.starts_with('[') && !host.ends_with(']') => false,
            Some((host, port)) => {
                if host.is_empty() || !matches!(port.parse::<u16>(), Ok(p) if p > 0) {
                    return Err(format!("{text:?}: {port:?} is not a port number"));
                }
                true
            }
            None => false,
        };
        let authority = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:1344")
        };
        Ok(IcapUrl {
            url: text.to_string(),
            authority,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }
}

/// How the message is presented to the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// As the body of an HTTP request: an upload, for checks on what leaves (DLP).
    Reqmod,
    /// As the body of an HTTP response: a download, for antivirus gateways.
    Respmod,
}

/// What the service said of the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Clean,
    /// The threat (or rule) named by the service.
    Infected(String),
    /// Refused without a name: why, in our words.
    Blocked(String),
}

/// Why a scan gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum IcapError {
    #[error("cannot connect to the ICAP service at {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("talking to the ICAP service: {0}")]
    Io(#[from] std::io::Error),
    #[error("the ICAP service did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the ICAP service closed the connection before its answer was complete")]
    Closed,
    #[error("the ICAP service's response head is not understood: {0}")]
    Head(String),
    #[error("the ICAP service answered {code} {reason}")]
    Status { code: u16, reason: String },
    #[error("the ICAP service's encapsulated message is not understood: {0}")]
    Body(String),
}

/// What identifies the message to the service (the encapsulated HTTP message's host and path).
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Our host name.
    pub host: &'a str,
    /// The message's queue id.
    pub id: &'a str,
}

/// Sends `message` to the service at `url` by `method` and reads its verdict, all within
/// `timeout`.
pub async fn scan(
    url: &IcapUrl,
    method: Method,
    subject: Subject<'_>,
    message: &[u8],
    timeout: Duration,
) -> Result<Finding, IcapError> {
    let work = async {
        let stream = TcpStream::connect(url.authority.as_str())
            .await
            .map_err(|source| IcapError::Connect {
                address: url.authority.clone(),
                source,
            })?;
        stream.set_nodelay(true)?;
        exchange(
            stream,
            &encode_request(url, method, subject, message),
            message,
        )
        .await
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| IcapError::Timeout(timeout))?
}

/// One request and its response on an open connection.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
    message: &[u8],
) -> Result<Finding, IcapError> {
    let sent = async {
        stream.write_all(request).await?;
        stream.flush().await
    }
    .await;
    // A service may answer (an error, say) before it has read everything: its answer says
    // more than the write error, so it is read either way.
    let mut reader = Reader {
        stream: &mut stream,
        buffer: Vec::with_capacity(1024),
    };
    let head = match reader.head().await {
        Ok(head) => head,
        Err(IcapError::Closed) => {
            return Err(match sent {
                Err(err) => IcapError::Io(err),
                Ok(()) => IcapError::Closed,
            })
        }
        Err(err) => return Err(err),
    };
    match head.code {
        204 => Ok(Finding::Clean),
        200 => match head.threat() {
            Some(threat) => Ok(Finding::Infected(threat)),
            None => {
                let limit = message.len().saturating_add(BODY_SLACK);
                let returned = reader.encapsulated(&head, limit).await?;
                Ok(judge_returned(&returned, message))
            }
        },
        code => Err(IcapError::Status {
            code,
            reason: head.reason,
        }),
    }
}

/// Reads from the connection into a buffer, as much as each step needs.
struct Reader<'s, S> {
    stream: &'s mut S,
    buffer: Vec<u8>,
}

impl<S: AsyncRead + Unpin> Reader<'_, S> {
    /// Reads more; the end of the stream is `Closed`.
    async fn more(&mut self) -> Result<(), IcapError> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(IcapError::Closed);
        }
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// The ICAP response head; the buffer keeps what follows it.
    async fn head(&mut self) -> Result<Head, IcapError> {
        loop {
            if let Some((head, length)) = parse_head(&self.buffer)? {
                self.buffer.drain(..length);
                return Ok(head);
            }
            self.more().await?;
        }
    }

    /// The encapsulated HTTP message of a `200`: its response status and its body.
    async fn encapsulated(&mut self, head: &Head, limit: usize) -> Result<Returned, IcapError> {
        let body_section = head
            .sections
            .iter()
            .find(|(name, _)| name.ends_with("-body"))
            .cloned()
            .ok_or_else(|| IcapError::Head("Encapsulated names no body section".into()))?;
        let (body_name, heads_length) = body_section;
        if heads_length > MAX_HEAD {
            return Err(IcapError::Head(format!(
                "encapsulated heads over {MAX_HEAD} bytes"
            )));
        }
        while self.buffer.len() < heads_length {
            self.more().await?;
        }
        let http_status = match head.section("res-hdr") {
            Some(start) if start <= heads_length => {
                Some(parse_http_status(&self.buffer[start..heads_length])?)
            }
            Some(_) => return Err(IcapError::Head("res-hdr after the body".into())),
            None => None,
        };
        self.buffer.drain(..heads_length);
        if body_name == "null-body" {
            return Ok(Returned {
                http_status,
                body: None,
            });
        }
        let mut dechunker = Dechunker::new(limit);
        loop {
            if dechunker.feed(&mut self.buffer)? {
                return Ok(Returned {
                    http_status,
                    body: Some(dechunker.into_body()),
                });
            }
            // What is left is one chunk not yet complete, and the limit bounds its size.
            self.more().await?;
        }
    }
}

#[cfg(test)]
mod tests;
