//! One mail transaction as pure functions: the commands to send for a message given what the
//! peer offers, and what the replies mean for each recipient (2xx delivered, 4xx deferred,
//! 5xx failed).

use super::ehlo::Capabilities;
use super::reply::ServerReply;
use crate::mailtext::{dot_stuff_into, LineEndPolicy};

/// A message ready to send on one connection.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    pub sender: &'a str,
    pub recipients: &'a [String],
    /// The message in CRLF form, not dot-stuffed.
    pub message: &'a [u8],
}

/// The result for one recipient of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptOutcome {
    Delivered(ServerReply),
    Deferred(ServerReply),
    Failed(ServerReply),
}

impl RcptOutcome {
    /// By the reply's class; anything but 2xx/4xx is a permanent failure.
    pub fn from_reply(reply: &ServerReply) -> RcptOutcome {
        if reply.is_positive() {
            RcptOutcome::Delivered(reply.clone())
        } else if reply.is_transient() {
            RcptOutcome::Deferred(reply.clone())
        } else {
            RcptOutcome::Failed(reply.clone())
        }
    }

    pub fn reply(&self) -> &ServerReply {
        match self {
            RcptOutcome::Delivered(r) | RcptOutcome::Deferred(r) | RcptOutcome::Failed(r) => r,
        }
    }
}

/// What the message needs from the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    /// Non-ASCII bytes in the message.
    pub eight_bit: bool,
    /// Non-ASCII addresses or header fields (RFC 6531/6532).
    pub smtputf8: bool,
}

impl Needs {
    pub fn of(message: &Outgoing<'_>) -> Needs {
        let header_end = crate::mailtext::header_end(message.message);
        let non_ascii = |b: &[u8]| !b.is_ascii();
        Needs {
            eight_bit: non_ascii(message.message),
            smtputf8: non_ascii(message.sender.as_bytes())
                || message.recipients.iter().any(|r| non_ascii(r.as_bytes()))
                || non_ascii(&message.message[..header_end]),
        }
    }

    /// Why the peer cannot take this message, as a permanent reply (the sender is told).
    pub fn refusal(&self, caps: &Capabilities, size: usize) -> Option<ServerReply> {
        if self.smtputf8 && !caps.smtputf8 {
            return Some(ServerReply::local(
                553,
                "5.6.7 The message needs SMTPUTF8 (non-ASCII addresses or headers), which the receiving server does not support",
            ));
        }
        if self.eight_bit && !caps.eight_bit_mime {
            return Some(ServerReply::local(
                554,
                "5.6.3 The message has 8-bit content and the receiving server does not support 8BITMIME",
            ));
        }
        if let Some(limit) = caps.size {
            if size as u64 > limit {
                return Some(ServerReply::local(
                    552,
                    format!("5.3.4 Message of {size} bytes exceeds the receiving server's size limit of {limit} bytes"),
                ));
            }
        }
        None
    }
}

/// `MAIL FROM:<…>` with SIZE, BODY=8BITMIME and SMTPUTF8 as offered and needed.
pub fn mail_command(sender: &str, size: usize, caps: &Capabilities, needs: Needs) -> String {
    let mut command = format!("MAIL FROM:<{sender}>");
    if caps.size.is_some() {
        command.push_str(&format!(" SIZE={size}"));
    }
    if needs.eight_bit && caps.eight_bit_mime {
        command.push_str(" BODY=8BITMIME");
    }
    if needs.smtputf8 && caps.smtputf8 {
        command.push_str(" SMTPUTF8");
    }
    command.push_str("\r\n");
    command
}

pub fn rcpt_command(recipient: &str) -> String {
    format!("RCPT TO:<{recipient}>\r\n")
}

/// The message data as sent after `354`: bare CR and bare LF turned into CRLF (a next hop must
/// never see them: it may take `<CR>.<CR>` for the end of data), dot-stuffed, CRLF-terminated,
/// then `.CRLF`.
pub fn data_block(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    dot_stuff_into(message, LineEndPolicy::Normalise, &mut out);
    out.extend_from_slice(b".\r\n");
    out
}

/// The per-recipient outcome of one transaction from its replies: MAIL, one per RCPT, DATA
/// (absent when not sent) and the end of data (absent when not reached).
pub fn interpret(
    mail: &ServerReply,
    rcpts: &[ServerReply],
    data: Option<&ServerReply>,
    end: Option<&ServerReply>,
    count: usize,
) -> Vec<RcptOutcome> {
    if !mail.is_positive() {
        return vec![RcptOutcome::from_reply(mail); count];
    }
    (0..count)
        .map(|index| {
            let Some(rcpt) = rcpts.get(index) else {
                return RcptOutcome::Deferred(ServerReply::local(
                    451,
                    "4.4.2 No reply to RCPT before the connection ended",
                ));
            };
            if !rcpt.is_positive() {
                return RcptOutcome::from_reply(rcpt);
            }
            match (data, end) {
                (Some(data), _) if !data.is_intermediate() => RcptOutcome::from_reply(data),
                (Some(_), Some(end)) => RcptOutcome::from_reply(end),
                _ => RcptOutcome::Deferred(ServerReply::local(
                    451,
                    "4.4.2 Connection lost before the end of the data",
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u16, text: &str) -> ServerReply {
        ServerReply::local(code, text)
    }

    #[test]
    fn dot_stuffing_and_final_crlf() {
        assert_eq!(
            data_block(b".a\r\nb\r\n..c\r\n"),
            b"..a\r\nb\r\n...c\r\n.\r\n"
        );
        assert_eq!(data_block(b"x\r\n.\r\ny"), b"x\r\n..\r\ny\r\n.\r\n");
        assert_eq!(data_block(b""), b".\r\n");
        // Issue 10: a bare CR is never relayed, and the dot after it is stuffed.
        assert_eq!(data_block(b"A\r.\rX"), b"A\r\n..\r\nX\r\n.\r\n");
        assert_eq!(data_block(b"A\r.\r\nX"), b"A\r\n..\r\nX\r\n.\r\n");
        assert_eq!(data_block(b"a\n.\nb"), b"a\r\n..\r\nb\r\n.\r\n");
    }

    #[test]
    fn mail_parameters_follow_capabilities() {
        let caps = Capabilities {
            size: Some(1000),
            eight_bit_mime: true,
            smtputf8: true,
            ..Capabilities::default()
        };
        let needs = Needs {
            eight_bit: true,
            smtputf8: true,
        };
        assert_eq!(
            mail_command("a@b.test", 10, &caps, needs),
            "MAIL FROM:<a@b.test> SIZE=10 BODY=8BITMIME SMTPUTF8\r\n"
        );
        assert_eq!(
            mail_command("", 10, &Capabilities::default(), Needs::default()),
            "MAIL FROM:<>\r\n"
        );
    }

    #[test]
    fn needs_and_refusals() {
        let recipients = vec!["bob@b.test".to_string()];
        let plain = Outgoing {
            sender: "a@b.test",
            recipients: &recipients,
            message: b"Subject: x\r\n\r\nhi\r\n",
        };
        assert_eq!(Needs::of(&plain), Needs::default());
        let body_8bit = Outgoing {
            message: "Subject: x\r\n\r\nh\u{e9}\r\n".as_bytes(),
            ..plain.clone()
        };
        let needs = Needs::of(&body_8bit);
        assert!(needs.eight_bit && !needs.smtputf8);
        let refusal = needs.refusal(&Capabilities::default(), 10).unwrap();
        assert_eq!(refusal.status(), "5.6.3");
        let utf8_header = Outgoing {
            message: "Subject: h\u{e9}\r\n\r\nx\r\n".as_bytes(),
            ..plain.clone()
        };
        let needs = Needs::of(&utf8_header);
        assert!(needs.smtputf8);
        let caps = Capabilities {
            eight_bit_mime: true,
            ..Capabilities::default()
        };
        assert_eq!(needs.refusal(&caps, 10).unwrap().status(), "5.6.7");
        let small = Capabilities {
            size: Some(5),
            ..Capabilities::default()
        };
        assert_eq!(
            Needs::default().refusal(&small, 10).unwrap().status(),
            "5.3.4"
        );
    }

    #[test]
    fn per_recipient_outcomes() {
        let ok = reply(250, "2.1.5 ok");
        let outcomes = interpret(
            &reply(250, "ok"),
            &[
                ok.clone(),
                reply(550, "5.1.1 unknown"),
                reply(450, "4.2.0 busy"),
            ],
            Some(&reply(354, "go")),
            Some(&reply(250, "2.0.0 queued")),
            3,
        );
        assert!(matches!(outcomes[0], RcptOutcome::Delivered(_)));
        assert!(matches!(outcomes[1], RcptOutcome::Failed(_)));
        assert!(matches!(outcomes[2], RcptOutcome::Deferred(_)));
        // MAIL refused: everyone shares its fate.
        let outcomes = interpret(&reply(451, "later"), &[], None, None, 2);
        assert!(outcomes
            .iter()
            .all(|o| matches!(o, RcptOutcome::Deferred(_))));
        // End of data refused permanently.
        let outcomes = interpret(
            &reply(250, "ok"),
            std::slice::from_ref(&ok),
            Some(&reply(354, "go")),
            Some(&reply(554, "5.7.1 spam")),
            1,
        );
        assert!(matches!(outcomes[0], RcptOutcome::Failed(_)));
        // Connection lost after DATA: deferred.
        let outcomes = interpret(&reply(250, "ok"), &[ok], Some(&reply(354, "go")), None, 1);
        assert!(matches!(outcomes[0], RcptOutcome::Deferred(_)));
    }
}
