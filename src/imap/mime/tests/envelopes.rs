//! ENVELOPE. Expected values are Dovecot 2.3.19's for the same messages.

use imap_codec::imap_types::fetch::MessageDataItem;

use super::structures::SIMPLE;
use super::{crlf, encode_bytes, env};
use crate::imap::mime::envelope;

#[test]
fn rfc3501_style_envelope() {
    assert_eq!(
        env(&crlf(SIMPLE)),
        concat!(
            r#"ENVELOPE ("Mon, 7 Feb 1994 21:52:25 -0800 (PST)" "afternoon meeting" (("Fred Foobar" NIL "foobar" "Blurdybloop.COM")) "#,
            r#"(("Fred Foobar" NIL "foobar" "Blurdybloop.COM")) (("Fred Foobar" NIL "foobar" "Blurdybloop.COM")) "#,
            r#"((NIL NIL "mooch" "owatagu.siam.edu")("Joe Q. Public" NIL "john.q.public" "example.com")) NIL NIL NIL "<B27397-0100000@Blurdybloop.COM>")"#
        )
    );
}

#[test]
fn empty_message_has_all_nil() {
    assert_eq!(
        env(b""),
        "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    );
}

#[test]
fn groups_comments_routes_and_broken_addresses() {
    let m = crlf(concat!(
        "From: user@host (A Comment), \"Quoted \\\"x\\\" Name\" <q@h>, <@r1,@r2:route@host>\n",
        "Sender: \n",
        "Reply-To: \"john doe\"@example.com\n",
        "To: A Group: a@x.y, B <b@x.y>;, c@x.y, Empty:;\n",
        "Cc: nodomain, <>, broken <\n",
        "Bcc: \"Last, First\" <lf@example.com>\n",
        "Subject: first subject\n",
        "Subject: second subject\n",
        "In-Reply-To: <a@b>\n <c@d>\n",
        "Message-ID:  <id@x>  \n\nbody\n",
    ));
    // Last Subject wins; empty Sender falls back to From; trailing blanks are kept.
    let from = r#"(("A Comment" NIL "user" "host")("Quoted \"x\" Name" NIL "q" "h")(NIL "@r1,@r2" "route" "host"))"#;
    assert_eq!(
        env(&m),
        format!(
            "ENVELOPE (NIL \"second subject\" {from} {from} {}",
            concat!(
                r#"((NIL NIL "john doe" "example.com")) "#,
                r#"((NIL NIL "A Group" NIL)(NIL NIL "a" "x.y")("B" NIL "b" "x.y")(NIL NIL NIL NIL)(NIL NIL "c" "x.y")(NIL NIL "Empty" NIL)(NIL NIL NIL NIL)) "#,
                r#"((NIL NIL "nodomain" "MISSING_DOMAIN")(NIL NIL "MISSING_MAILBOX" "MISSING_DOMAIN")("broken" NIL "MISSING_MAILBOX" "SYNTAX_ERROR")) "#,
                r#"(("Last, First" NIL "lf" "example.com")) "<a@b> <c@d>" "<id@x>  ")"#
            )
        )
    );
}

#[test]
fn phrases_literals_and_repeated_fields() {
    let m = crlf(concat!(
        "From: Joe   Q.  Public <jqp@example.com>, \"\" <empty@name>, <user>, a@[1.2.3.4], \"x\"@ y . z\n",
        "From: second@example.com\n",
        "Bcc: A (c1) B <ab@x (dom comment)>\n",
        "Subject:\n",
        "Message-ID: <one@x>\nMessage-ID: <two@x>\n\nb\n",
    ));
    // Repeated address fields are joined, other fields take the last one.
    let from = concat!(
        r#"(("Joe Q. Public" NIL "jqp" "example.com")(NIL NIL "empty" "name")(NIL NIL "user" "MISSING_DOMAIN")"#,
        r#"(NIL NIL "a" "[1.2.3.4]")(NIL NIL "x" "y.z")(NIL NIL "second" "example.com"))"#
    );
    assert_eq!(
        env(&m),
        format!("ENVELOPE (NIL \"\" {from} {from} {from} NIL NIL ((\"A B\" NIL \"ab\" \"x\")) NIL \"<two@x>\")")
    );
}

#[test]
fn folded_fields_are_unfolded_with_tabs_as_spaces() {
    let m = crlf("From: Someone\n <someone@example.com>\nSubject: This is a\n folded\tsubject\n\twith tab\nDate: Mon, 7 Feb 1994\n 21:52:25 -0800\n\nx\n");
    assert_eq!(
        env(&m),
        concat!(
            r#"ENVELOPE ("Mon, 7 Feb 1994 21:52:25 -0800" "This is a folded subject with tab" (("Someone" NIL "someone" "example.com")) "#,
            r#"(("Someone" NIL "someone" "example.com")) (("Someone" NIL "someone" "example.com")) NIL NIL NIL NIL NIL)"#
        )
    );
}

#[test]
fn encoded_words_are_kept_raw() {
    let m = crlf("From: \"=?utf-8?B?w6Q=?=\" <a@b>, =?utf-8?Q?x?= <c@d>\nTo: group: ;\nSubject: =?utf-8?B?w6TDtsO8?=\n\nb\n");
    let from = r#"(("=?utf-8?B?w6Q=?=" NIL "a" "b")("=?utf-8?Q?x?=" NIL "c" "d"))"#;
    assert_eq!(
        env(&m),
        format!("ENVELOPE (NIL \"=?utf-8?B?w6TDtsO8?=\" {from} {from} {from} ((NIL NIL \"group\" NIL)(NIL NIL NIL NIL)) NIL NIL NIL NIL)")
    );
}

#[test]
fn eight_bit_header_bytes_become_literals_unchanged() {
    let m = crlf("From: =?UTF-8?Q?J=C3=B6rg?= <joerg@example.de>\nTo: Jörg Müller <jm@example.de>\nSubject: Grüße\n\nx\n");
    let wire = encode_bytes(MessageDataItem::Envelope(envelope(&m)));
    let from = r#"(("=?UTF-8?Q?J=C3=B6rg?=" NIL "joerg" "example.de"))"#;
    let expected = format!(
        "ENVELOPE (NIL {{7}}\r\nGrüße {from} {from} {from} (({{13}}\r\nJörg Müller NIL \"jm\" \"example.de\")) NIL NIL NIL NIL)"
    );
    assert_eq!(String::from_utf8(wire).ok(), Some(expected));
}

#[test]
fn invalid_utf8_and_nul_survive() {
    let wire = encode_bytes(MessageDataItem::Envelope(envelope(
        b"Subject: nul\x00here\r\nFrom: \xff\xfe <x@y>\r\n\r\n",
    )));
    // NUL cannot be sent at all: U+FFFD (3 octets) replaces it, as in Dovecot.
    assert!(
        wire.starts_with(
            b"ENVELOPE (NIL {10}\r\nnul\xef\xbf\xbdhere (({2}\r\n\xff\xfe NIL \"x\" \"y\"))"
        ),
        "{:?}",
        String::from_utf8_lossy(&wire)
    );
}
