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

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// The ICAP request for `message` (sans-I/O).
pub fn encode_request(
    url: &IcapUrl,
    method: Method,
    subject: Subject<'_>,
    message: &[u8],
) -> Vec<u8> {
    let host = clean(subject.host);
    let id = clean(subject.id);
    let (verb, http, encapsulated) = match method {
        Method::Reqmod => {
            let http = format!(
                "POST /message/{id} HTTP/1.1\r\nHost: {host}\r\nContent-Type: message/rfc822\r\nContent-Length: {}\r\n\r\n",
                message.len()
            );
            let encapsulated = format!("req-hdr=0, req-body={}", http.len());
            ("REQMOD", http, encapsulated)
        }
        Method::Respmod => {
            let request = format!("GET /message/{id} HTTP/1.1\r\nHost: {host}\r\n\r\n");
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: message/rfc822\r\nContent-Length: {}\r\n\r\n",
                message.len()
            );
            let encapsulated = format!(
                "req-hdr=0, res-hdr={}, res-body={}",
                request.len(),
                request.len() + response.len()
            );
            ("RESPMOD", request + &response, encapsulated)
        }
    };
    let head = format!(
        "{verb} {url} ICAP/1.0\r\nHost: {authority}\r\nAllow: 204\r\nConnection: close\r\nEncapsulated: {encapsulated}\r\n\r\n",
        url = clean(&url.url),
        authority = url.authority,
    );
    let mut out = Vec::with_capacity(head.len() + http.len() + message.len() + 32);
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(http.as_bytes());
    if !message.is_empty() {
        out.extend_from_slice(format!("{:x}\r\n", message.len()).as_bytes());
        out.extend_from_slice(message);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Text for a head line: no control characters (no header injection by a host name or id).
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() || c == ' ' { '_' } else { c })
        .collect()
}

/// The ICAP response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub code: u16,
    pub reason: String,
    /// Names lower-cased; folded values joined with their line breaks.
    pub headers: Vec<(String, String)>,
    /// The `Encapsulated` sections in order: name and offset.
    pub sections: Vec<(String, usize)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The threat a `200` names in its headers, if any (see the module comment).
    pub fn threat(&self) -> Option<String> {
        if let Some(value) = self.header("x-infection-found") {
            let named = value
                .split(';')
                .filter_map(|part| part.trim().strip_prefix("Threat="))
                .map(str::trim)
                .find(|name| !name.is_empty());
            return Some(named.unwrap_or("unknown threat").to_string());
        }
        if let Some(value) = self.header("x-virus-id") {
            let value = value.trim();
            return Some(
                if value.is_empty() {
                    "unknown threat"
                } else {
                    value
                }
                .to_string(),
            );
        }
        if let Some(value) = self.header("x-violations-found") {
            // "<count>", then per violation: file name, threat, id, resolution.
            let name = value
                .lines()
                .map(str::trim)
                .nth(2)
                .filter(|name| !name.is_empty() && *name != "-");
            return Some(name.unwrap_or("unknown threat").to_string());
        }
        None
    }

    /// The offset of section `name`.
    fn section(&self, name: &str) -> Option<usize> {
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, offset)| *offset)
    }
}

/// Parses an ICAP response head at the start of `buffer`: `Ok(None)` when more bytes are
/// needed, else the head and its length.
pub fn parse_head(buffer: &[u8]) -> Result<Option<(Head, usize)>, IcapError> {
    if buffer.len() < 9 {
        if b"ICAP/1.0 ".starts_with(buffer) {
            return Ok(None);
        }
        return Err(IcapError::Head("not an ICAP/1.0 response".into()));
    }
    if &buffer[..9] != b"ICAP/1.0 " {
        return Err(IcapError::Head("not an ICAP/1.0 response".into()));
    }
    // httparse knows HTTP/1.x only: the version is checked above, the rest is the same syntax.
    let mut as_http = Vec::with_capacity(buffer.len().min(MAX_HEAD));
    as_http.extend_from_slice(b"HTTP/1.0 ");
    as_http.extend_from_slice(&buffer[9..buffer.len().min(MAX_HEAD)]);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let mut config = httparse::ParserConfig::default();
    // c-icap folds X-Violations-Found over several lines.
    config.allow_obsolete_multiline_headers_in_responses(true);
    let length = match config.parse_response(&mut response, &as_http) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if buffer.len() >= MAX_HEAD => {
            return Err(IcapError::Head(format!("longer than {MAX_HEAD} bytes")))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(err) => return Err(IcapError::Head(err.to_string())),
    };
    let code = response.code.unwrap_or(0);
    let reason = response.reason.unwrap_or("").to_string();
    let headers: Vec<(String, String)> = response
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let sections = match headers.iter().find(|(n, _)| n == "encapsulated") {
        Some((_, value)) => parse_encapsulated(value)?,
        None => Vec::new(),
    };
    Ok(Some((
        Head {
            code,
            reason,
            headers,
            sections,
        },
        length,
    )))
}

/// `Encapsulated: req-hdr=0, res-hdr=45, res-body=100` (RFC 3507 §4.4.1): offsets must grow.
fn parse_encapsulated(value: &str) -> Result<Vec<(String, usize)>, IcapError> {
    let mut sections: Vec<(String, usize)> = Vec::new();
    for part in value.split(',') {
        let (name, offset) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| IcapError::Head(format!("Encapsulated: {value:?}")))?;
        let name = name.trim().to_ascii_lowercase();
        if !matches!(
            name.as_str(),
            "req-hdr" | "res-hdr" | "req-body" | "res-body" | "null-body" | "opt-body"
        ) {
            return Err(IcapError::Head(format!("Encapsulated: {value:?}")));
        }
        let offset: usize = offset
            .trim()
            .parse()
            .map_err(|_| IcapError::Head(format!("Encapsulated: {value:?}")))?;
        if sections.last().is_some_and(|(_, last)| offset < *last) {
            return Err(IcapError::Head(format!("Encapsulated: {value:?}")));
        }
        sections.push((name, offset));
    }
    Ok(sections)
}

/// What a service sent back in a `200`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Returned {
    /// The status of an encapsulated HTTP response (`res-hdr`).
    pub http_status: Option<(u16, String)>,
    /// The encapsulated body, de-chunked (`None` for `null-body`).
    pub body: Option<Vec<u8>>,
}

/// The verdict on what came back (see the module comment).
fn judge_returned(returned: &Returned, message: &[u8]) -> Finding {
    if let Some((code, reason)) = &returned.http_status {
        if !(200..300).contains(code) {
            return Finding::Blocked(format!("the service answered HTTP {code} {reason}"));
        }
    }
    match &returned.body {
        Some(body) if body == message => Finding::Clean,
        Some(_) => Finding::Blocked("the service changed the message".into()),
        None => Finding::Blocked("the service returned no message".into()),
    }
}

/// The status of the HTTP response head in `bytes`.
fn parse_http_status(bytes: &[u8]) -> Result<(u16, String), IcapError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => Ok((
            response.code.unwrap_or(0),
            response.reason.unwrap_or("").to_string(),
        )),
        Ok(httparse::Status::Partial) => Err(IcapError::Body("a cut HTTP response head".into())),
        Err(err) => Err(IcapError::Body(format!("HTTP response head: {err}"))),
    }
}

/// Decodes a chunked body (RFC 3507 §4.5; chunk extensions such as `ieof` ignored) as its
/// bytes arrive, never holding more than `limit` body bytes. Each complete chunk is taken off
/// the front of the buffer it is fed, so a large body costs one pass.
#[derive(Debug)]
pub struct Dechunker {
    body: Vec<u8>,
    limit: usize,
}

impl Dechunker {
    pub fn new(limit: usize) -> Dechunker {
        Dechunker {
            body: Vec::new(),
            limit,
        }
    }

    /// Takes the complete chunks at the start of `buffer`: `Ok(true)` once the last chunk
    /// (size 0) was read, `Ok(false)` when more bytes are needed.
    pub fn feed(&mut self, buffer: &mut Vec<u8>) -> Result<bool, IcapError> {
        let mut at = 0usize;
        let done = loop {
            let (used, size) = match httparse::parse_chunk_size(&buffer[at..]) {
                Ok(httparse::Status::Complete(found)) => found,
                Ok(httparse::Status::Partial) => break false,
                Err(_) => return Err(IcapError::Body("a bad chunk size line".into())),
            };
            if size == 0 {
                at += used;
                break true;
            }
            let size = usize::try_from(size)
                .ok()
                .filter(|size| self.body.len().saturating_add(*size) <= self.limit)
                .ok_or_else(|| IcapError::Body(format!("more than {} bytes", self.limit)))?;
            let start = at + used;
            let end = start
                .checked_add(size)
                .ok_or_else(|| IcapError::Body("a chunk too large".into()))?;
            if buffer.len() < end.saturating_add(2) {
                break false;
            }
            if &buffer[end..end + 2] != b"\r\n" {
                return Err(IcapError::Body("a chunk not ended by CRLF".into()));
            }
            self.body.extend_from_slice(&buffer[start..end]);
            at = end + 2;
        };
        buffer.drain(..at);
        Ok(done)
    }

    pub fn into_body(self) -> Vec<u8> {
        self.body
    }
}

/// A whole chunked body at the start of `buffer`: `Ok(None)` when more bytes are needed.
pub fn dechunk(buffer: &[u8], limit: usize) -> Result<Option<Vec<u8>>, IcapError> {
    let mut dechunker = Dechunker::new(limit);
    let mut buffer = buffer.to_vec();
    Ok(dechunker.feed(&mut buffer)?.then(|| dechunker.into_body()))
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
mod tests {
    use super::*;

    const INFECTED_HEAD: &[u8] = b"ICAP/1.0 200 OK\r\nServer: C-ICAP/0.5.10\r\nConnection: keep-alive\r\nISTag: \"CI0001-x\"\r\nX-Infection-Found: Type=0; Resolution=2; Threat=Eicar-Test-Local.UNOFFICIAL;\r\nX-Violations-Found: 1\r\n\t-\r\n\tEicar-Test-Local.UNOFFICIAL\r\n\t0\r\n\t0\r\nEncapsulated: res-hdr=0, res-body=108\r\n\r\n";

    fn url() -> IcapUrl {
        IcapUrl::parse("icap://127.0.0.1:1344/avscan").unwrap()
    }

    #[test]
    fn urls() {
        let plain = IcapUrl::parse("icap://icap.example.org/dlp").unwrap();
        assert_eq!(plain.authority, "icap.example.org:1344");
        assert_eq!(url().authority, "127.0.0.1:1344");
        assert_eq!(
            IcapUrl::parse("icap://[::1]/x").unwrap().authority,
            "[::1]:1344"
        );
        assert_eq!(
            IcapUrl::parse("icap://[::1]:99/x").unwrap().authority,
            "[::1]:99"
        );
        assert_eq!(IcapUrl::parse("icap://h:1345").unwrap().authority, "h:1345");
        for bad in [
            "http://h/x",
            "icap://",
            "icap:///x",
            "icap://h:0/x",
            "icap://h:x/x",
            "icap://u@h/x",
            "icap://:1344/x",
        ] {
            assert!(IcapUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn c_icaps_infected_head() {
        let (head, length) = parse_head(INFECTED_HEAD).unwrap().unwrap();
        assert_eq!(length, INFECTED_HEAD.len());
        assert_eq!(head.code, 200);
        assert_eq!(
            head.threat().as_deref(),
            Some("Eicar-Test-Local.UNOFFICIAL")
        );
        assert_eq!(
            head.sections,
            vec![("res-hdr".to_string(), 0), ("res-body".to_string(), 108)]
        );
        // Without X-Infection-Found, the folded X-Violations-Found names it.
        let text = String::from_utf8_lossy(INFECTED_HEAD).replace("X-Infection-Found", "X-Other");
        let (head, _) = parse_head(text.as_bytes()).unwrap().unwrap();
        assert_eq!(
            head.threat().as_deref(),
            Some("Eicar-Test-Local.UNOFFICIAL")
        );
        let (head, _) = parse_head(b"ICAP/1.0 200 OK\r\nX-Virus-ID: EICAR Test String\r\nEncapsulated: null-body=0\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.threat().as_deref(), Some("EICAR Test String"));
    }

    #[test]
    fn a_head_arrives_in_pieces() {
        for cut in 0..INFECTED_HEAD.len() {
            assert!(
                parse_head(&INFECTED_HEAD[..cut]).unwrap().is_none(),
                "cut at {cut}"
            );
        }
        let (head, _) = parse_head(b"ICAP/1.0 204 Unmodified\r\nISTag: \"x\"\r\n\r\nleftover")
            .unwrap()
            .unwrap();
        assert_eq!((head.code, head.threat()), (204, None));
    }

    #[test]
    fn bad_heads_are_errors_not_panics() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\n\r\n"[..],
            b"ICAP/2.0 200 OK\r\n\r\n",
            b"ICAP/1.0 2x0 OK\r\n\r\n",
            b"ICAP/1.0 200 OK\r\nBad Header\r\n\r\n",
            b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=10, res-body=5\r\n\r\n",
            b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=x\r\n\r\n",
            b"ICAP/1.0 200 OK\r\nEncapsulated: foo=1\r\n\r\n",
            b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=99999999999999999999999\r\n\r\n",
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        ] {
            assert!(
                parse_head(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut many = b"ICAP/1.0 200 OK\r\n".to_vec();
        for i in 0..(MAX_HEADERS + 1) {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert!(parse_head(&many).is_err());
        let endless = [b"ICAP/1.0 200 OK\r\nX: ".as_slice(), &vec![b'a'; MAX_HEAD]].concat();
        assert!(parse_head(&endless).is_err());
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            dechunk(b"5\r\nhello\r\n0\r\n\r\n", 100).unwrap().unwrap(),
            b"hello"
        );
        assert_eq!(
            dechunk(b"3;x=y\r\nabc\r\n2\r\nde\r\n0; ieof\r\n\r\n", 100)
                .unwrap()
                .unwrap(),
            b"abcde"
        );
        let whole = b"5\r\nhello\r\n0\r\n\r\n";
        for cut in 0..whole.len() - 4 {
            assert!(
                dechunk(&whole[..cut], 100).unwrap().is_none(),
                "cut at {cut}"
            );
        }
        for bad in [
            &b"zz\r\nhello\r\n"[..],
            b"5\r\nhelloXX0\r\n\r\n",
            b"ffffffffffffffffff\r\n",
            b"-1\r\n",
        ] {
            assert!(
                dechunk(bad, 100).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // Fed a byte at a time, the same body.
        let whole = b"3\r\nabc\r\n2;ext\r\nde\r\n0\r\n\r\n";
        let mut dechunker = Dechunker::new(100);
        let mut buffer = Vec::new();
        let mut fed = 0;
        for byte in whole {
            buffer.push(*byte);
            fed += 1;
            if dechunker.feed(&mut buffer).unwrap() {
                break;
            }
        }
        // Done at the last chunk's size line (the trailer is not waited for).
        assert_eq!(fed, whole.len() - 2);
        assert_eq!(dechunker.into_body(), b"abcde");
        // Over the limit, before the bytes arrive.
        assert!(dechunk(b"ffffffff\r\n", 100).is_err());
        assert!(dechunk(b"65\r\n", 100).is_err());
    }

    #[test]
    fn requests() {
        let subject = Subject {
            host: "mx.test",
            id: "ID1",
        };
        let reqmod =
            String::from_utf8(encode_request(&url(), Method::Reqmod, subject, b"hello")).unwrap();
        let (head, http) = reqmod.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("REQMOD icap://127.0.0.1:1344/avscan ICAP/1.0\r\n"));
        assert!(head.contains("\r\nAllow: 204"));
        let offset: usize = head.rsplit_once("req-body=").unwrap().1.parse().unwrap();
        assert!(
            http[offset..].starts_with("5\r\nhello\r\n0\r\n\r\n"),
            "{http}"
        );
        assert!(http.starts_with("POST /message/ID1 HTTP/1.1\r\n"));
        let respmod = String::from_utf8(encode_request(
            &url(),
            Method::Respmod,
            Subject {
                host: "mx\r\nX: y",
                id: "I D",
            },
            b"",
        ))
        .unwrap();
        assert!(
            respmod.contains("Host: mx__X:_y\r\n") && respmod.contains("/message/I_D "),
            "{respmod}"
        );
        let (head, http) = respmod.split_once("\r\n\r\n").unwrap();
        let offsets = head.rsplit_once("Encapsulated: ").unwrap().1;
        let sections = parse_encapsulated(offsets).unwrap();
        assert_eq!(&http[sections[1].1..sections[1].1 + 15], "HTTP/1.1 200 OK");
        assert!(http[sections[2].1..].starts_with("0\r\n\r\n"));
    }

    async fn answer(response: &'static [u8], message: &'static [u8]) -> Result<Finding, IcapError> {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let service = tokio::spawn(async move {
            let mut request = vec![0u8; 64 * 1024];
            let _ = server.read(&mut request).await;
            server.write_all(response).await.unwrap();
        });
        let request = encode_request(
            &url(),
            Method::Respmod,
            Subject { host: "h", id: "i" },
            message,
        );
        let result = exchange(client, &request, message).await;
        service.await.unwrap();
        result
    }

    #[tokio::test]
    async fn what_answers_mean() {
        assert_eq!(
            answer(b"ICAP/1.0 204 Unmodified\r\n\r\n", b"m")
                .await
                .unwrap(),
            Finding::Clean
        );
        let page = b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=26\r\n\r\nHTTP/1.0 403 Forbidden\r\n\r\n4\r\nnope\r\n0\r\n\r\n";
        assert_eq!(
            answer(page, b"m").await.unwrap(),
            Finding::Blocked("the service answered HTTP 403 Forbidden".into())
        );
        let echo = b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n3\r\nmsg\r\n0\r\n\r\n";
        assert_eq!(answer(echo, b"msg").await.unwrap(), Finding::Clean);
        assert_eq!(
            answer(echo, b"other").await.unwrap(),
            Finding::Blocked("the service changed the message".into())
        );
        let infected = [INFECTED_HEAD, b"HTTP/1.0 403 Forbidden\r\n..."]
            .concat()
            .leak();
        assert_eq!(
            answer(infected, b"m").await.unwrap(),
            Finding::Infected("Eicar-Test-Local.UNOFFICIAL".into())
        );
        assert!(matches!(
            answer(b"ICAP/1.0 500 Server Error\r\n\r\n", b"m").await,
            Err(IcapError::Status { code: 500, .. })
        ));
        assert!(matches!(
            answer(b"ICAP/1.0 404 Service Not Found\r\n\r\n", b"m").await,
            Err(IcapError::Status { code: 404, .. })
        ));
        assert!(matches!(
            answer(
                b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.1 200",
                b"m"
            )
            .await,
            Err(IcapError::Closed)
        ));
        assert!(matches!(
            answer(b"ICAP/1.0 200 OK\r\n\r\n", b"m").await,
            Err(IcapError::Head(_))
        ));
        assert!(matches!(
            answer(b"ICAP/1.0 20", b"m").await,
            Err(IcapError::Closed)
        ));
        assert!(matches!(answer(b"", b"m").await, Err(IcapError::Closed)));
    }

    /// A service that always sends the message back (no 204): a large body, in many chunks,
    /// read in one pass.
    #[tokio::test]
    async fn a_large_echo_is_clean() {
        let message: Vec<u8> = (0..4_000_000u32).map(|i| (i % 253) as u8).collect();
        let mut response = b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n".to_vec();
        for chunk in message.chunks(4096) {
            response.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            response.extend_from_slice(chunk);
            response.extend_from_slice(b"\r\n");
        }
        response.extend_from_slice(b"0\r\n\r\n");
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let service = tokio::spawn(async move {
            let mut sink = vec![0u8; 64 * 1024];
            // Read the request while answering, as a streaming service does.
            let (mut read, mut write) = tokio::io::split(&mut server);
            let reader = async { while read.read(&mut sink).await.unwrap_or(0) > 0 {} };
            let writer = async {
                write.write_all(&response).await.unwrap();
                write.shutdown().await.unwrap();
            };
            tokio::join!(reader, writer);
        });
        let request = encode_request(
            &url(),
            Method::Respmod,
            Subject { host: "h", id: "i" },
            &message,
        );
        let started = std::time::Instant::now();
        let result = exchange(client, &request, &message).await.unwrap();
        assert_eq!(result, Finding::Clean);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        service.abort();
    }

    #[tokio::test]
    async fn a_silent_service_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = IcapUrl::parse(&format!("icap://{}/x", listener.local_addr().unwrap())).unwrap();
        let hold = tokio::spawn(async move {
            let (_socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
        });
        let result = scan(
            &url,
            Method::Reqmod,
            Subject { host: "h", id: "i" },
            b"m",
            Duration::from_millis(300),
        )
        .await;
        assert!(matches!(result, Err(IcapError::Timeout(_))), "{result:?}");
        hold.abort();
    }
}
