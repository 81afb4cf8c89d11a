//! The message recipients get instead of a quarantined one: a short notice saying why, with
//! the original attached as `message/rfc822` (RFC 2046 §5.2.1), so nothing is lost and
//! nothing harmful is opened by accident.

use std::fmt::Write;

/// The notice (CRLF line ends) replacing `original` (CRLF form), for the reason `why`.
pub fn quarantine_notice(hostname: &str, id: &str, why: &str, original: &[u8]) -> Vec<u8> {
    let now = chrono::Utc::now();
    let boundary = format!("{id}.{}/{hostname}", now.timestamp());
    let why: String = why
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut head = String::new();
    let _ = write!(
        head,
        "From: Mail System <MAILER-DAEMON@{hostname}>\r\n\
         To: undisclosed-recipients:;\r\n\
         Subject: A message to you was quarantined\r\n\
         Date: {date}\r\n\
         Message-ID: <{id}.quarantine@{hostname}>\r\n\
         Auto-Submitted: auto-generated\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\
         \r\n\
         This is a MIME-encapsulated message.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n\
         The mail system at {hostname} held back a message to you (id {id}):\r\n\
         {why}\r\n\
         \r\n\
         The original message is attached. Open it only if you trust it.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: message/rfc822\r\n\
         Content-Disposition: attachment; filename=\"original.eml\"\r\n\
         \r\n",
        date = now.to_rfc2822(),
    );
    let mut out = head.into_bytes();
    out.reserve(original.len() + boundary.len() + 16);
    out.extend_from_slice(original);
    if !original.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_is_attached_whole() {
        let original = b"Subject: hello\r\n\r\nbody\r\n";
        let notice = quarantine_notice("mx.test", "ID1", "virus found\r\nX: y", original);
        let text = String::from_utf8(notice.clone()).unwrap();
        assert!(
            text.contains("virus found  X: y\r\n"),
            "no header injection"
        );
        assert!(text.contains("Content-Type: message/rfc822\r\n"));
        let parsed = mail_parser::MessageParser::default()
            .parse(&notice)
            .unwrap();
        assert_eq!(parsed.attachment_count(), 1);
        let attached = parsed.attachment(0).unwrap().message().unwrap();
        assert_eq!(attached.subject(), Some("hello"));
        assert!(text.ends_with("--\r\n"));
    }
}
