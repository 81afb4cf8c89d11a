//! BODY[section]. Expected values are Dovecot 2.3.19's for the same messages.

use super::structures::{MIXED, RFC822, SIMPLE};
use super::{crlf, sect, section};
use crate::imap::mime::section_bytes;

#[test]
fn whole_header_and_text() {
    let m = crlf(SIMPLE);
    assert_eq!(sect(&m, "").as_bytes(), m.as_slice());
    let split = m
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |i| i + 4);
    assert_eq!(sect(&m, "HEADER").as_bytes(), &m[..split]);
    assert_eq!(
        sect(&m, "TEXT"),
        "Hello Joe, do you think we can meet at 3:30 tomorrow?\r\nSecond line\r\n"
    );
}

#[test]
fn part_one_of_a_simple_message_is_its_body() {
    let m = crlf(SIMPLE);
    assert_eq!(sect(&m, "1"), sect(&m, "TEXT"));
    assert_eq!(sect(&m, "1.MIME"), sect(&m, "HEADER"));
    for missing in ["2", "1.1", "1.2", "2.MIME", "1.HEADER", "1.TEXT", "2.1.1"] {
        assert_eq!(sect(&m, missing), "", "{missing}");
    }
}

#[test]
fn header_fields_keep_folding_and_match_case_insensitively() {
    let m = crlf("From: Someone\n <someone@example.com>\nSubject: This is a\n folded\tsubject\n\twith tab\nX-Other: foo\nTo: a@b.c,\n  d@e.f\n\nx\n");
    assert_eq!(
        sect(&m, "HEADER.FIELDS (subject TO)"),
        "Subject: This is a\r\n folded\tsubject\r\n\twith tab\r\nTo: a@b.c,\r\n  d@e.f\r\n\r\n"
    );
    assert_eq!(
        sect(&m, "HEADER.FIELDS.NOT (Subject to FROM)"),
        "X-Other: foo\r\n\r\n"
    );
    assert_eq!(sect(&m, "HEADER.FIELDS (X-None)"), "\r\n");
}

#[test]
fn header_fields_without_blank_line() {
    let m = b"From: a@b.c\r\nSubject: no body";
    // No empty line to copy, but each field still ends in CRLF (Dovecot does the same).
    assert_eq!(
        sect(m, "HEADER.FIELDS (SUBJECT TO)"),
        "Subject: no body\r\n"
    );
    assert_eq!(sect(m, "HEADER.FIELDS.NOT (SUBJECT FROM)"), "");
    assert_eq!(sect(m, "HEADER"), "From: a@b.c\r\nSubject: no body");
    assert_eq!(sect(m, "TEXT"), "");
}

#[test]
fn line_without_colon_is_a_field() {
    let m = crlf("From: a@b.c\nThis line has no colon\nSubject: after\n\nbody\n");
    assert_eq!(
        sect(&m, "HEADER.FIELDS.NOT (Subject To From)"),
        "This line has no colon\r\n\r\n"
    );
    assert_eq!(sect(&m, "TEXT"), "body\r\n");
}

#[test]
fn multipart_parts_and_mime_headers() {
    let m = crlf(MIXED);
    assert_eq!(sect(&m, "1"), "Hi Bob,=0A see attached.\r\n");
    assert_eq!(sect(&m, "1.MIME"), "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n");
    assert_eq!(sect(&m, "2"), "JVBERi0xLjQK\r\nJVBERi0xLjQK");
    assert_eq!(sect(&m, "1.1"), sect(&m, "1"));
    for missing in [
        "3",
        "2.1.1",
        "1.2",
        "2.HEADER",
        "2.TEXT",
        "3.MIME",
        "4000000000",
    ] {
        assert_eq!(sect(&m, missing), "", "{missing}");
    }
    assert!(sect(&m, "TEXT").starts_with("This is the preamble.\r\n--XYZ\r\n"));
    assert!(sect(&m, "TEXT").ends_with("--XYZ--\r\nepilogue here\r\n"));
}

#[test]
fn nested_parts_and_encapsulated_message() {
    let m = crlf(RFC822);
    let inner_header = concat!(
        "Date: Tue, 1 Jan 2019 00:00:00 +0000\r\nFrom: Inner Sender <inner@example.net>\r\nTo: y@example.net\r\n",
        "Cc: undisclosed-recipients:;\r\nSubject: inner\r\nMessage-ID: <inner@example.net>\r\n",
        "In-Reply-To: <prev@example.net>\r\nContent-Type: multipart/alternative; boundary=b2\r\n\r\n"
    );
    let inner_text = "--b2\r\nContent-Type: text/plain\r\n\r\ninner plain\r\n--b2\r\nContent-Type: text/html\r\n\r\n<b>inner</b>\r\n--b2--\r\n";
    assert_eq!(sect(&m, "2"), format!("{inner_header}{inner_text}"));
    assert_eq!(
        sect(&m, "2.MIME"),
        "Content-Type: message/rfc822\r\nContent-Description: forwarded\r\n\r\n"
    );
    assert_eq!(sect(&m, "2.HEADER"), inner_header);
    assert_eq!(sect(&m, "2.TEXT"), inner_text);
    assert_eq!(sect(&m, "2.1"), "inner plain");
    assert_eq!(sect(&m, "2.2"), "<b>inner</b>");
    assert_eq!(sect(&m, "2.1.1"), "inner plain");
    assert_eq!(sect(&m, "2.1.MIME"), "Content-Type: text/plain\r\n\r\n");
    assert_eq!(
        sect(&m, "2.HEADER.FIELDS (SUBJECT from)"),
        "From: Inner Sender <inner@example.net>\r\nSubject: inner\r\n\r\n"
    );
    assert_eq!(sect(&m, "1.HEADER"), "");
    assert_eq!(sect(&m, "1.HEADER.FIELDS (SUBJECT)"), "");
    assert_eq!(sect(&m, "2.3"), "");
}

#[test]
fn top_level_message_rfc822() {
    let m = crlf("Subject: top\nContent-Type: message/rfc822\n\nSubject: inner only\nFrom: i@j.k\n\ninner body\n");
    assert_eq!(
        sect(&m, "1"),
        "Subject: inner only\r\nFrom: i@j.k\r\n\r\ninner body\r\n"
    );
    assert_eq!(sect(&m, "1.1"), "inner body\r\n");
    assert_eq!(
        sect(&m, "1.HEADER"),
        "Subject: inner only\r\nFrom: i@j.k\r\n\r\n"
    );
    assert_eq!(
        sect(&m, "1.1.MIME"),
        "Subject: inner only\r\nFrom: i@j.k\r\n\r\n"
    );
    assert_eq!(sect(&m, "1.TEXT"), "inner body\r\n");
}

#[test]
fn empty_and_headerless_parts() {
    let m = b"Content-Type: multipart/mixed; boundary=e\r\n\r\n--e\r\n--e\r\n\r\nbody no header\r\n--e\r\nContent-Type: text/plain\r\n--e--";
    assert_eq!(sect(m, "1"), "");
    assert_eq!(sect(m, "1.MIME"), "");
    assert_eq!(sect(m, "2"), "body no header");
    assert_eq!(sect(m, "2.MIME"), "\r\n");
    assert_eq!(sect(m, "3"), "");
    // A header ended by a boundary line: its last line break belongs to the boundary.
    assert_eq!(sect(m, "3.MIME"), "Content-Type: text/plain");
}

#[test]
fn nul_is_sent_as_0x80() {
    let m = b"Subject: a\x00b\r\n\r\nbody\x00\r\n";
    assert_eq!(
        section_bytes(m, None),
        b"Subject: a\x80b\r\n\r\nbody\x80\r\n"
    );
    assert_eq!(section_bytes(m, section("TEXT").as_ref()), b"body\x80\r\n");
}
