//! The outbound side: the SMTP client's reply parser (what a remote server answers) with the
//! EHLO capabilities and per-recipient outcomes made of it, and the bounce (DSN) built from a
//! failure and an arbitrary original message.

use imap_codec::imap_types::body::BodyStructure;

use super::alphabet::{spell, Feed};
use crate::imap::mime::body_structure;
use crate::queue::client::ehlo::Capabilities;
use crate::queue::client::reply::ReplyParser;
use crate::queue::client::transaction::{data_block, interpret};
use crate::queue::dsn::{build, FailedRecipient, Report, MAX_RETURNED_HEADER};

const WORDS: &[&[u8]] = &[
    b"220 mx.remote.test ESMTP\r\n",
    b"250-mx.remote.test\r\n",
    b"250-PIPELINING\r\n",
    b"250-SIZE 1000\r\n",
    b"250-SIZE 99999999999999999999\r\n",
    b"250-STARTTLS\r\n",
    b"250-8BITMIME\r\n",
    b"250-SMTPUTF8\r\n",
    b"250-AUTH PLAIN LOGIN\r\n",
    b"250 CHUNKING\r\n",
    b"250 2.1.0 Ok\r\n",
    b"354 go ahead\r\n",
    b"451 4.7.1 try later\r\n",
    b"550-5.1.1 no\r\n",
    b"550 5.1.1 such user\r\n",
    b"421 bye\r\n",
    b"\r\n",
    b"-",
    b" ",
];

/// Replies in reads cut by `data[1]`; the first is taken as the EHLO answer, the rest as the
/// transaction's (MAIL, RCPTs, DATA, end of data) and interpreted for three recipients.
pub fn client_reply(data: &[u8]) {
    let Some((&seed, rest)) = data.split_first() else {
        return;
    };
    let input = spell(rest, WORDS);
    let mut parser = ReplyParser::default();
    let mut feed = Feed::new(&input, seed);
    let mut replies = Vec::new();
    'reading: while let Some(bytes) = feed.next_read() {
        parser.push(bytes);
        loop {
            match parser.next_reply() {
                Ok(Some(reply)) => {
                    assert!(
                        (100..1000).contains(&reply.code),
                        "a reply code of three digits"
                    );
                    let _ = reply.status();
                    replies.push(reply);
                }
                Ok(None) => break,
                Err(_) => break 'reading,
            }
        }
    }
    let Some((ehlo, transaction)) = replies.split_first() else {
        return;
    };
    let _ = Capabilities::from_ehlo(ehlo);
    if let Some((mail, rest)) = transaction.split_first() {
        let rcpts = &rest[..rest.len().min(3)];
        let after = &rest[rcpts.len()..];
        let outcomes = interpret(mail, rcpts, after.first(), after.get(1), 3);
        assert_eq!(outcomes.len(), 3, "an outcome for each recipient");
    }
}

/// A bounce for two recipients: the first line of the input is the sender, the second a
/// diagnostic, the rest the original message. Properties: the bounce is a multipart/report
/// of three parts (what the remote server or the original says can't break its structure),
/// and it returns at most `MAX_RETURNED_HEADER` of the original.
pub fn dsn(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(3, '\n');
    let sender = lines.next().unwrap_or("").trim_end_matches('\r');
    let diagnostic = lines.next().unwrap_or("").trim_end_matches('\r');
    let original = lines.next().unwrap_or("").as_bytes();
    let failed = [
        FailedRecipient {
            address: "x@remote.test".into(),
            status: "5.1.1".into(),
            diagnostic: diagnostic.to_string(),
            remote_mta: Some("mx.remote.test".into()),
            remote_reply: true,
        },
        FailedRecipient {
            address: diagnostic.chars().take(64).collect(),
            status: "4.4.7".into(),
            diagnostic: "expired".into(),
            remote_mta: None,
            remote_reply: false,
        },
    ];
    let bounce = build(&Report {
        reporting_mta: "mx.local.test",
        queue_id: "Q1",
        sender,
        arrival: 1_700_000_000,
        now: 1_700_086_400,
        failed: &failed,
        original,
    });
    let limit = 8192 + MAX_RETURNED_HEADER + 4 * data.len();
    assert!(bounce.len() <= limit, "a bounce bigger than its parts");
    match body_structure(&bounce, false) {
        BodyStructure::Multi {
            bodies, subtype, ..
        } => {
            assert!(
                subtype.as_ref().eq_ignore_ascii_case(b"report"),
                "the bounce is not multipart/report"
            );
            assert_eq!(bodies.as_ref().len(), 3, "the bounce's parts");
        }
        BodyStructure::Single { .. } => panic!("the bounce is not multipart"),
    }
    // What the queue sends of it: dot-stuffed, and its end is the only "\r\n.\r\n".
    let block = data_block(&bounce);
    assert_eq!(
        block.windows(5).filter(|w| w == b"\r\n.\r\n").count(),
        1,
        "the data block ends more than once"
    );
}
