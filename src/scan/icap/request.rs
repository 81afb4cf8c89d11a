//! The ICAP request for one message (sans-I/O).

use super::{IcapUrl, Method, Subject};

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
