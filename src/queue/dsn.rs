//! Delivery status notifications (RFC 3464): a `multipart/report` to the envelope sender with a
//! human-readable part, the machine-readable `message/delivery-status` and the original
//! message's header (RFC 6522 `text/rfc822-headers`; `message/global-headers` of RFC 6533 when
//! it holds UTF-8).

use std::fmt::Write;

use super::envelope::{format_time, Timestamp};
use crate::mailtext::header_end;

/// One recipient the message could not be delivered to.
#[derive(Debug, Clone)]
pub struct FailedRecipient {
    pub address: String,
    /// RFC 3463 status, e.g. `5.1.1`.
    pub status: String,
    /// The server's reply, or our own reason.
    pub diagnostic: String,
    /// The host that answered, when one did.
    pub remote_mta: Option<String>,
    /// The reply came from a remote server (`smtp;`) rather than from us (`x-local;`).
    pub remote_reply: bool,
}

/// What a notification is about.
pub struct Report<'a> {
    /// This server (`heloName`).
    pub reporting_mta: &'a str,
    pub queue_id: &'a str,
    pub sender: &'a str,
    pub arrival: Timestamp,
    pub now: Timestamp,
    pub failed: &'a [FailedRecipient],
    /// The original message (CRLF form); only its header is returned.
    pub original: &'a [u8],
}

/// Most bytes of the original header returned (a header can be as big as the message).
pub const MAX_RETURNED_HEADER: usize = 64 * 1024;

fn date(time: Timestamp) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(time, 0)
        .map(|t| t.to_rfc2822())
        .unwrap_or_else(|| format_time(time))
}

fn address_type(address: &str) -> &'static str {
    if address.is_ascii() {
        "rfc822"
    } else {
        "utf-8"
    }
}

/// One line of text from something a server said (no CR/LF, no control characters).
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The complete notification, CRLF line ends, ready to queue or store.
pub fn build(report: &Report<'_>) -> Vec<u8> {
    let header = returned_header(report.original);
    let boundary = boundary(report, header);
    let host = report.reporting_mta;
    let mut out = String::new();
    let _ = write!(
        out,
        "From: Mail Delivery System <MAILER-DAEMON@{host}>\r\n\
         To: <{sender}>\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Date: {date}\r\n\
         Message-ID: <{id}.{now}.dsn@{host}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"{boundary}\"\r\n\
         \r\n\
         This is a MIME-encapsulated message.\r\n\
         \r\n",
        sender = report.sender,
        date = date(report.now),
        id = report.queue_id,
        now = report.now,
    );
    human_part(&mut out, report, &boundary);
    status_part(&mut out, report, &boundary);
    let mut bytes = out.into_bytes();
    headers_part(&mut bytes, header, &boundary);
    bytes
}

/// The MIME boundary (RFC 2046 §5.1.1: it must not occur in the parts). The sender wrote the
/// returned header, the one part whose lines nobody else starts, so it may hold any text: a
/// boundary of queue id, time and host alone (all of which a sender can learn or guess) was
/// found there by the fuzzer (fuzz/regressions/dsn/), and the bounce had four parts. So a
/// hash of that header follows, and a counter in the unlikely case it still occurs.
fn boundary(report: &Report<'_>, header: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(header);
    let hash: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    let base = format!(
        "{}.{}/{}/{hash}",
        report.queue_id, report.now, report.reporting_mta
    );
    let occurs = |candidate: &str| {
        header
            .windows(candidate.len())
            .any(|window| window == candidate.as_bytes())
    };
    let mut candidate = base.clone();
    let mut counter = 0u32;
    while occurs(&candidate) {
        counter += 1;
        candidate = format!("{base}.{counter}");
    }
    candidate
}

/// What of the original message is returned: its header, at most `MAX_RETURNED_HEADER`
/// bytes of it, cut at a line end when the limit fell inside a field.
fn returned_header(original: &[u8]) -> &[u8] {
    let end = header_end(original).min(MAX_RETURNED_HEADER);
    let header = &original[..end];
    match header.iter().rposition(|&b| b == b'\n') {
        Some(last) => &header[..=last],
        None => header,
    }
}

fn human_part(out: &mut String, report: &Report<'_>, boundary: &str) {
    let _ = write!(
        out,
        "--{boundary}\r\n\
         Content-Description: Notification\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n\
         This is the mail system at host {host}.\r\n\
         \r\n\
         I'm sorry to have to inform you that your message could not\r\n\
         be delivered to one or more recipients. The reasons are below.\r\n\
         The message had queue id {id}.\r\n\
         \r\n",
        host = report.reporting_mta,
        id = report.queue_id,
    );
    for failed in report.failed {
        let _ = write!(
            out,
            "<{}>: {}\r\n",
            failed.address,
            one_line(&failed.diagnostic)
        );
        if let Some(mta) = &failed.remote_mta {
            let _ = write!(out, "    (reported by {})\r\n", one_line(mta));
        }
    }
    out.push_str("\r\n");
}

fn status_part(out: &mut String, report: &Report<'_>, boundary: &str) {
    let _ = write!(
        out,
        "--{boundary}\r\n\
         Content-Description: Delivery report\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; {host}\r\n\
         X-Ics-Mail-Queue-ID: {id}\r\n\
         Arrival-Date: {arrival}\r\n",
        host = report.reporting_mta,
        id = report.queue_id,
        arrival = date(report.arrival),
    );
    for failed in report.failed {
        let _ = write!(
            out,
            "\r\nFinal-Recipient: {}; {}\r\nAction: failed\r\nStatus: {}\r\n",
            address_type(&failed.address),
            failed.address,
            failed.status
        );
        if let Some(mta) = &failed.remote_mta {
            let _ = write!(out, "Remote-MTA: dns; {}\r\n", one_line(mta));
        }
        let kind = if failed.remote_reply {
            "smtp"
        } else {
            "x-local"
        };
        let _ = write!(
            out,
            "Diagnostic-Code: {kind}; {}\r\nLast-Attempt-Date: {}\r\n",
            one_line(&failed.diagnostic),
            date(report.now)
        );
    }
    out.push_str("\r\n");
}

fn headers_part(out: &mut Vec<u8>, header: &[u8], boundary: &str) {
    let kind = if header.is_ascii() {
        "text/rfc822-headers"
    } else {
        "message/global-headers"
    };
    out.extend_from_slice(
        format!("--{boundary}\r\nContent-Description: Undelivered Message Headers\r\nContent-Type: {kind}\r\n\r\n")
            .as_bytes(),
    );
    out.extend_from_slice(header);
    if !header.ends_with(b"\r\n\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The boundary a bounce declares.
    fn boundary_of(text: &str) -> &str {
        let start = text.find("boundary=\"").expect("a boundary") + "boundary=\"".len();
        let end = start + text[start..].find('"').expect("its end");
        &text[start..end]
    }

    /// The returned header can't end the report early: a boundary that the header holds
    /// (the fuzzer's finding, fuzz/regressions/dsn/) is never the one used, however many
    /// variants of it the header holds.
    #[test]
    fn the_boundary_is_not_in_the_returned_header() {
        let failed = [FailedRecipient {
            address: "bob@remote.test".into(),
            status: "5.1.1".into(),
            diagnostic: "550 no".into(),
            remote_mta: None,
            remote_reply: true,
        }];
        let plain = build(&report(&failed, b"Subject: x\r\n\r\n"));
        let text = String::from_utf8(plain).unwrap();
        let first = boundary_of(&text).to_string();
        // A header holding that boundary and its next variants gets yet another one.
        let mut original = String::from("Subject: x\r\n");
        for n in 0..3 {
            let variant = if n == 0 {
                first.clone()
            } else {
                format!("{first}.{n}")
            };
            original.push_str(&format!("X-Trap: x\r\n--{variant}--\r\n"));
        }
        original.push_str("\r\n");
        let text = String::from_utf8(build(&report(&failed, original.as_bytes()))).unwrap();
        let used = boundary_of(&text);
        let header_part = &text[text.find("X-Trap").unwrap()..];
        assert!(
            !original.contains(used),
            "{used} occurs in the returned header"
        );
        assert_eq!(text.matches(&format!("--{used}\r\n")).count(), 3);
        assert!(header_part.contains(&format!("--{used}--\r\n")));
        let parts = crate::imap::mime::body_structure(text.as_bytes(), false);
        assert!(matches!(
            parts,
            imap_codec::imap_types::body::BodyStructure::Multi { ref bodies, .. }
                if bodies.as_ref().len() == 3
        ));
    }

    fn report<'a>(failed: &'a [FailedRecipient], original: &'a [u8]) -> Report<'a> {
        Report {
            reporting_mta: "mx.example.test",
            queue_id: "ABC.1",
            sender: "alice@example.test",
            arrival: 1_800_000_000,
            now: 1_800_000_600,
            failed,
            original,
        }
    }

    #[test]
    fn multipart_report_with_status_and_headers() {
        let failed = [FailedRecipient {
            address: "bob@remote.test".into(),
            status: "5.1.1".into(),
            diagnostic: "550 5.1.1 <bob@remote.test>: user\r\nunknown".into(),
            remote_mta: Some("mx.remote.test".into()),
            remote_reply: true,
        }];
        let original = b"Received: x\r\nSubject: hello\r\n\r\nsecret body\r\n";
        let text = String::from_utf8(build(&report(&failed, original))).unwrap();
        assert!(text.contains("Content-Type: multipart/report; report-type=delivery-status;"));
        assert!(text.contains("To: <alice@example.test>\r\n"));
        assert!(text.contains(
            "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.test\r\n"
        ));
        assert!(text.contains("Final-Recipient: rfc822; bob@remote.test\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx.remote.test\r\nDiagnostic-Code: smtp; 550 5.1.1 <bob@remote.test>: user  unknown\r\n"));
        assert!(text.contains(
            "Content-Type: text/rfc822-headers\r\n\r\nReceived: x\r\nSubject: hello\r\n\r\n--"
        ));
        assert!(!text.contains("secret body"), "only the header is returned");
        assert!(text.ends_with("--\r\n"));
        let boundary = boundary_of(&text);
        assert!(boundary.starts_with("ABC.1.1800000600/mx.example.test/"));
        assert_eq!(text.matches(&format!("--{boundary}\r\n")).count(), 3);
        assert!(text.contains(&format!("--{boundary}--\r\n")));
        assert!(text.lines().all(|l| !l.ends_with('\r')), "CRLF only");
    }

    #[test]
    fn utf8_headers_are_global() {
        let failed = [FailedRecipient {
            address: "j\u{f6}rg@remote.test".into(),
            status: "4.4.7".into(),
            diagnostic: "expired".into(),
            remote_mta: None,
            remote_reply: false,
        }];
        let text = String::from_utf8(build(&report(
            &failed,
            "Subject: gr\u{fc}\u{df}e\r\n\r\nx".as_bytes(),
        )))
        .unwrap();
        assert!(text.contains("Final-Recipient: utf-8; j\u{f6}rg@remote.test"));
        assert!(text.contains("Content-Type: message/global-headers"));
        assert!(text.contains("Diagnostic-Code: x-local; expired"));
    }
}
