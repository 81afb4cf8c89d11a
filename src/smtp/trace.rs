//! Trace headers added on delivery: `Return-Path:` (RFC 5321 §4.4) and `Received:`.

use std::fmt::Write;

use super::transaction::Transaction;

/// What the `Received:` header records about the connection.
pub struct TraceInfo<'a> {
    pub peer_ip: &'a str,
    /// The client's forward-confirmed host name, when it was looked up.
    pub peer_name: Option<&'a str>,
    pub hostname: &'a str,
    pub id: &'a str,
}

/// `Return-Path` and `Received` lines (LF line ends, as stored in Maildir).
pub fn trace_headers(tx: &Transaction, info: &TraceInfo<'_>) -> String {
    // RFC 6531 §4.3: UTF8SMTP for SMTPUTF8 sessions; RFC 3848: S for TLS, A for AUTH.
    let base = match (tx.esmtp, tx.smtputf8) {
        (_, true) => "UTF8SMTP",
        (true, false) => "ESMTP",
        (false, false) => "SMTP",
    };
    let protocol = format!(
        "{base}{}{}",
        if tx.tls && tx.esmtp { "S" } else { "" },
        if tx.authenticated && tx.esmtp {
            "A"
        } else {
            ""
        }
    );
    let mut out = String::new();
    let _ = writeln!(out, "Return-Path: <{}>", printable(&tx.mail_from));
    let _ = write!(
        out,
        "Received: from {} ({}[{}])\n\tby {} (ics-mail) with {} id {}",
        printable(&tx.helo),
        info.peer_name
            .map(|name| format!("{name} "))
            .unwrap_or_default(),
        info.peer_ip,
        info.hostname,
        protocol,
        info.id
    );
    if let [single] = tx.rcpt_to.as_slice() {
        let _ = write!(out, "\n\tfor <{}>", printable(single));
    }
    let _ = writeln!(out, "; {}", chrono::Local::now().to_rfc2822());
    out
}

/// Client-supplied text placed in a header: no control characters (no header injection).
fn printable(text: &str) -> String {
    text.chars()
        .map(|ch| if ch.is_control() { '?' } else { ch })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_names_everything() {
        let tx = Transaction {
            mail_from: "a@remote.test".into(),
            rcpt_to: vec!["b@local.test".into()],
            helo: "client\u{7}.test".into(),
            esmtp: true,
            ..Transaction::default()
        };
        let info = TraceInfo {
            peer_ip: "192.0.2.1",
            peer_name: None,
            hostname: "mx.local.test",
            id: "ABC",
        };
        let text = trace_headers(&tx, &info);
        assert!(text.starts_with("Return-Path: <a@remote.test>\nReceived: from client?.test ([192.0.2.1])\n\tby mx.local.test (ics-mail) with ESMTP id ABC\n\tfor <b@local.test>; "));
        assert!(text.ends_with('\n'));
    }
}
