//! Malformed input: nothing may panic, loop, or recurse without bound.

use imap_codec::imap_types::body::BodyStructure;

use super::{body, bs, crlf, env, section};
use crate::imap::mime::{body_structure, envelope, section_bytes};

/// Runs every entry point over `m`, including a spread of sections.
fn exercise(m: &[u8]) {
    let _ = envelope(m);
    let _ = body_structure(m, true);
    let _ = body_structure(m, false);
    for spec in [
        "",
        "HEADER",
        "TEXT",
        "1",
        "2",
        "1.1",
        "1.MIME",
        "2.1.1",
        "1.HEADER",
        "1.TEXT",
        "HEADER.FIELDS (A B)",
        "1.HEADER.FIELDS.NOT (X)",
    ] {
        let _ = section_bytes(m, section(spec).as_ref());
    }
}

/// Depth of nested multiparts in a structure.
fn depth(b: &BodyStructure<'_>) -> usize {
    match b {
        BodyStructure::Single { .. } => 0,
        BodyStructure::Multi { bodies, .. } => {
            1 + bodies.as_ref().iter().map(depth).max().unwrap_or(0)
        }
    }
}

#[test]
fn random_bytes() {
    // A fixed xorshift stream, biased towards the bytes the parsers care about.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let alphabet = b"-\r\n:;=\"()<>@,\\ \tabB\x00\xff/";
    for round in 0..300 {
        let len = (round * 7) % 600;
        let mut m = Vec::with_capacity(len + 64);
        if round % 3 == 0 {
            m.extend_from_slice(b"Content-Type: multipart/mixed; boundary=b\r\n\r\n");
        }
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let r = x as usize;
            m.push(if r.is_multiple_of(4) {
                (r >> 8) as u8
            } else {
                alphabet[(r >> 8) % alphabet.len()]
            });
        }
        exercise(&m);
    }
}

#[test]
fn thousand_nested_multiparts_are_capped() {
    let mut m = String::from("Content-Type: multipart/mixed; boundary=\"=x0=\"\r\n\r\n");
    for i in 1..1000 {
        m += &format!(
            "--=x{}=\r\nContent-Type: multipart/mixed; boundary=\"=x{i}=\"\r\n\r\n",
            i - 1
        );
    }
    m += "--=x999=\r\n\r\ndeep\r\n";
    for i in (0..1000).rev() {
        m += &format!("--=x{i}=--\r\n");
    }
    let structure = body_structure(m.as_bytes(), true);
    assert_eq!(depth(&structure), 32);
    exercise(m.as_bytes());
    // Also as message/rfc822 nesting.
    let mut m = String::new();
    for _ in 0..1000 {
        m += "Content-Type: message/rfc822\r\n\r\n";
    }
    m += "x\r\n";
    exercise(m.as_bytes());
}

#[test]
fn many_sibling_parts_terminate() {
    let mut m = String::from("Content-Type: multipart/mixed; boundary=b\r\n\r\n");
    for _ in 0..20_000 {
        m += "--b\r\n";
    }
    exercise(m.as_bytes());
}

#[test]
fn sibling_parts_are_capped_as_in_dovecot() {
    // Dovecot 2.3 on the same message (10,002 parts): BODYSTRUCTURE lists 9,999 parts (10,000
    // with the message), BODY[9999] runs from that part's body to the end of the message, later
    // boundary lines included, and BODY[10000] is empty.
    let mut m = String::from("Content-Type: multipart/mixed; boundary=\"sib\"\r\n\r\n");
    for i in 0..10_002 {
        m += &format!("--sib\r\nContent-Type: text/plain\r\n\r\npart {i} bodyword\r\n");
    }
    m += "--sib--\r\n";
    let m = m.as_bytes();
    match body_structure(m, true) {
        BodyStructure::Multi { bodies, .. } => assert_eq!(bodies.as_ref().len(), 9_999),
        other => panic!("not a multipart: {other:?}"),
    }
    let last = section_bytes(m, section("9999").as_ref());
    assert!(last.starts_with(b"part 9998 bodyword\r\n--sib\r\n"));
    assert!(last.ends_with(b"part 10001 bodyword\r\n--sib--\r\n"));
    assert_eq!(
        section_bytes(m, section("9999.MIME").as_ref()),
        b"Content-Type: text/plain\r\n\r\n"
    );
    assert!(section_bytes(m, section("10000").as_ref()).is_empty());
    assert_eq!(
        section_bytes(m, section("9998").as_ref()),
        b"part 9997 bodyword"
    );
    // The same cap whatever the parts hold: 100,000 empty parts.
    let mut m = String::from("Content-Type: multipart/mixed; boundary=b\r\n\r\n");
    m += &"--b\r\n".repeat(100_000);
    match body_structure(m.as_bytes(), false) {
        BodyStructure::Multi { bodies, .. } => assert_eq!(bodies.as_ref().len(), 9_999),
        other => panic!("not a multipart: {other:?}"),
    }
}

#[test]
fn no_blank_line_no_colon_and_empty_input() {
    assert_eq!(
        bs(b""),
        r#"BODYSTRUCTURE ("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)"#
    );
    assert_eq!(
        body(b"no colon at all"),
        r#"BODY ("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)"#
    );
    assert_eq!(
        env(b"Subject: x"),
        r#"ENVELOPE (NIL "x" NIL NIL NIL NIL NIL NIL NIL NIL)"#
    );
    assert_eq!(
        env(b"\r\nSubject: in body\r\n"),
        "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    );
    for m in [
        &b""[..],
        b"\r",
        b"\n",
        b":",
        b"--",
        b"\r\n\r\n",
        b" folded first\r\n\r\nx",
    ] {
        exercise(m);
    }
}

#[test]
fn unterminated_syntax_in_headers() {
    let m = crlf("From: \"unterminated <a@b>\nTo: (comment (nested <x@y>\nCc: <@route\nBcc: ;;;:::<<<>>>@@@\nContent-Type: multipart/mixed; boundary=\"open\n\n--open\n\nx\n");
    exercise(&m);
    let m = crlf("Content-Type: text/plain; charset*0*=us-ascii''a; charset*1=b; =x; ;; name*99999999=z\n\nx\n");
    exercise(&m);
}

#[test]
fn boundary_that_prefixes_everything() {
    // An empty boundary would match every "--" line: it is ignored instead.
    let m = crlf("Content-Type: multipart/mixed; boundary=\"\"\n\n--\n--x\n\nbody\n");
    assert_eq!(
        body(&m),
        r#"BODY (("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed")"#
    );
}
