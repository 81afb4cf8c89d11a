//! The ICAP response head and the encapsulated HTTP response (sans-I/O, on httparse).

use super::{Finding, IcapError, MAX_HEAD, MAX_HEADERS};

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
    pub(super) fn section(&self, name: &str) -> Option<usize> {
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
pub(super) fn parse_encapsulated(value: &str) -> Result<Vec<(String, usize)>, IcapError> {
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
pub(super) fn judge_returned(returned: &Returned, message: &[u8]) -> Finding {
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
pub(super) fn parse_http_status(bytes: &[u8]) -> Result<(u16, String), IcapError> {
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
