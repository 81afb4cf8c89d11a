//! Message changes on the way out: `relay.changeSender` rewrites the `From:` header field.

use crate::mailtext;

/// Replaces the address of the `From:` field with `address`, keeping a display name; adds a
/// `From:` when there is none. Works on the CRLF wire form.
pub fn rewrite_from(message: &[u8], address: &str) -> Vec<u8> {
    let header_end = mailtext::header_end(message);
    let header = &message[..header_end];
    let mut out = Vec::with_capacity(message.len() + address.len());
    let mut replaced = false;
    let mut lines = mailtext::header_fields(header).into_iter();
    for field in lines.by_ref() {
        let is_from = field.len() >= 5 && field[..5].eq_ignore_ascii_case(b"from:");
        if is_from && !replaced {
            let value = String::from_utf8_lossy(&field[5..]);
            let display = display_name(value.trim());
            match display {
                Some(name) => {
                    out.extend_from_slice(format!("From: {name} <{address}>\r\n").as_bytes())
                }
                None => out.extend_from_slice(format!("From: <{address}>\r\n").as_bytes()),
            }
            replaced = true;
        } else {
            out.extend_from_slice(field);
        }
    }
    if !replaced {
        let mut with_from = format!("From: <{address}>\r\n").into_bytes();
        with_from.extend_from_slice(&out);
        out = with_from;
    }
    out.extend_from_slice(&message[header_end..]);
    out
}

/// The display name of `Name <addr>` (unfolded), if any.
fn display_name(value: &str) -> Option<String> {
    let unfolded: String = value
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    let (name, _) = unfolded.split_once('<')?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_display_name_and_other_fields() {
        let message = b"Subject: hi\r\nFrom: \"Alice A.\"\r\n <alice@example.test>\r\nTo: b@x.test\r\n\r\nFrom: body\r\n";
        let out = rewrite_from(message, "relay@isp.test");
        assert_eq!(
            out,
            b"Subject: hi\r\nFrom: \"Alice A.\" <relay@isp.test>\r\nTo: b@x.test\r\n\r\nFrom: body\r\n"
        );
    }

    #[test]
    fn bare_address_and_missing_from() {
        assert_eq!(
            rewrite_from(b"from: alice@example.test\r\n\r\nx", "r@i.test"),
            b"From: <r@i.test>\r\n\r\nx"
        );
        assert_eq!(
            rewrite_from(b"Subject: x\r\n\r\nbody", "r@i.test"),
            b"From: <r@i.test>\r\nSubject: x\r\n\r\nbody"
        );
    }
}
