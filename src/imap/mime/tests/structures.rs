//! BODY and BODYSTRUCTURE. Expected values are Dovecot 2.3.19's for the same messages
//! (same fields and numbers; only "TEXT"/"MESSAGE" case differs, fixed by imap-codec).

use super::{body, bs, crlf};

pub(super) const SIMPLE: &str = "Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)
From: Fred Foobar <foobar@Blurdybloop.COM>
Subject: afternoon meeting
To: mooch@owatagu.siam.edu, \"Joe Q. Public\" <john.q.public@example.com>
Message-Id: <B27397-0100000@Blurdybloop.COM>
MIME-Version: 1.0
Content-Type: TEXT/PLAIN; CHARSET=US-ASCII

Hello Joe, do you think we can meet at 3:30 tomorrow?
Second line
";

pub(super) const MIXED: &str = "From: Alice <alice@example.org>
To: bob@example.net
Subject: attachment
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=\"XYZ\"

This is the preamble.
--XYZ
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Hi Bob,=0A see attached.

--XYZ
Content-Type: application/pdf; name=\"report.pdf\"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename=\"report.pdf\"; size=12
Content-ID: <part2@example.org>
Content-Description: The report
Content-Language: en, de
Content-Location: http://example.org/report.pdf
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==

JVBERi0xLjQK
JVBERi0xLjQK
--XYZ--
epilogue here
";

pub(super) const ALT_IN_MIXED: &str = "From: a@b.c
Subject: alt
Content-Type: multipart/mixed; boundary=outer

--outer
Content-Type: multipart/alternative; boundary=\"inner\"

--inner
Content-Type: text/plain; charset=us-ascii

plain text
--inner
Content-Type: text/html; charset=us-ascii

<p>html</p>
--inner--

--outer
Content-Type: image/png; name=a.png
Content-Disposition: inline
Content-Transfer-Encoding: BASE64

iVBORw0KGgo=
--outer--
";

pub(super) const RFC822: &str = "From: outer@example.com
To: x@example.com
Subject: Fwd: inner
Content-Type: multipart/mixed; boundary=b1

--b1
Content-Type: text/plain

see below
--b1
Content-Type: message/rfc822
Content-Description: forwarded

Date: Tue, 1 Jan 2019 00:00:00 +0000
From: Inner Sender <inner@example.net>
To: y@example.net
Cc: undisclosed-recipients:;
Subject: inner
Message-ID: <inner@example.net>
In-Reply-To: <prev@example.net>
Content-Type: multipart/alternative; boundary=b2

--b2
Content-Type: text/plain

inner plain
--b2
Content-Type: text/html

<b>inner</b>
--b2--
--b1--
";

#[test]
fn simple_text_keeps_given_case_and_counts_lines() {
    let m = crlf(SIMPLE);
    // Body "Hello Joe, ...?\r\nSecond line\r\n": 55 + 13 octets, 2 lines.
    assert_eq!(
        bs(&m),
        r#"BODYSTRUCTURE ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7bit" 68 2 NIL NIL NIL NIL)"#
    );
    assert_eq!(
        body(&m),
        r#"BODY ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7bit" 68 2)"#
    );
}

#[test]
fn no_content_type_is_text_plain_us_ascii_7bit() {
    let m =
        crlf("From: a@b.c\nSubject: no type\n\nbody line 1\nbody line 2 without newline at end");
    // Lines are LFs, as Dovecot counts them: the unterminated last line does not count.
    assert_eq!(
        bs(&m),
        r#"BODYSTRUCTURE ("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 47 1 NIL NIL NIL NIL)"#
    );
}

#[test]
fn text_without_charset_gets_us_ascii_appended() {
    let m = crlf("Content-Type: text/plain; format=flowed\nContent-Type: text/html\n\nx\n");
    // The first Content-Type wins for MIME fields.
    assert_eq!(
        body(&m),
        r#"BODY ("TEXT" "plain" ("format" "flowed" "charset" "us-ascii") NIL NIL "7bit" 3 1)"#
    );
}

#[test]
fn multipart_mixed_with_attachment() {
    let m = crlf(MIXED);
    assert_eq!(
        bs(&m),
        concat!(
            r#"BODYSTRUCTURE (("TEXT" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 26 1 NIL NIL NIL NIL)"#,
            r#"("application" "pdf" ("name" "report.pdf") "<part2@example.org>" "The report" "base64" 26 "#,
            r#""Q2hlY2sgSW50ZWdyaXR5IQ==" ("attachment" ("filename" "report.pdf" "size" "12")) ("en" "de") "#,
            r#""http://example.org/report.pdf") "mixed" ("boundary" "XYZ") NIL NIL NIL)"#
        )
    );
    assert_eq!(
        body(&m),
        concat!(
            r#"BODY (("TEXT" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 26 1)"#,
            r#"("application" "pdf" ("name" "report.pdf") "<part2@example.org>" "The report" "base64" 26) "mixed")"#
        )
    );
}

#[test]
fn alternative_inside_mixed() {
    assert_eq!(
        bs(&crlf(ALT_IN_MIXED)),
        concat!(
            r#"BODYSTRUCTURE ((("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0 NIL NIL NIL NIL)"#,
            r#"("TEXT" "html" ("charset" "us-ascii") NIL NIL "7bit" 11 0 NIL NIL NIL NIL) "alternative" ("boundary" "inner") NIL NIL NIL)"#,
            r#"("image" "png" ("name" "a.png") NIL NIL "BASE64" 12 NIL ("inline" NIL) NIL NIL) "mixed" ("boundary" "outer") NIL NIL NIL)"#
        )
    );
}

#[test]
fn message_rfc822_has_envelope_structure_and_lines() {
    assert_eq!(
        body(&crlf(RFC822)),
        concat!(
            r#"BODY (("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 9 0)("MESSAGE" "RFC822" NIL NIL "forwarded" "7bit" 363 "#,
            r#"("Tue, 1 Jan 2019 00:00:00 +0000" "inner" (("Inner Sender" NIL "inner" "example.net")) (("Inner Sender" NIL "inner" "example.net")) "#,
            r#"(("Inner Sender" NIL "inner" "example.net")) ((NIL NIL "y" "example.net")) ((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) "#,
            r#"NIL "<prev@example.net>" "<inner@example.net>") (("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 11 0)"#,
            r#"("TEXT" "html" ("charset" "us-ascii") NIL NIL "7bit" 12 0) "alternative") 18) "mixed")"#
        )
    );
}

#[test]
fn digest_parts_default_to_message_rfc822() {
    let m = crlf("Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: item 1\n\none\n--d\nContent-Type: text/plain\n\ntwo\n--d--\n");
    assert_eq!(
        body(&m),
        concat!(
            r#"BODY (("MESSAGE" "RFC822" NIL NIL NIL "7bit" 22 (NIL "item 1" NIL NIL NIL NIL NIL NIL NIL NIL) "#,
            r#"("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 3 0) 2)("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 3 0) "digest")"#
        )
    );
}

#[test]
fn parameters_comments_quoting_and_rfc2231() {
    let m = crlf(concat!(
        "Content-Type: application/octet-stream; name*=utf-8''%E2%82%AC.txt; X-Foo = \"a \\\"q\\\" b\" (comment); Empty=\"\"\n",
        "Content-Disposition: ATTACHMENT; filename*0=\"long\"; filename*1=\"name.txt\"\n",
        "Content-Transfer-Encoding: Base64\n\nAAAA\n"
    ));
    assert_eq!(
        bs(&m),
        concat!(
            r#"BODYSTRUCTURE ("application" "octet-stream" ("X-Foo" "a \"q\" b" "Empty" "" "name*" "utf-8''%E2%82%AC.txt") "#,
            r#"NIL NIL "Base64" 6 NIL ("ATTACHMENT" ("filename" "longname.txt")) NIL NIL)"#
        )
    );
}

#[test]
fn whitespace_around_type_and_encoding_is_dropped() {
    let m = crlf("Content-Type:   Text / Plain ; charset = \"UTF-8\"\nContent-Transfer-Encoding:  7BIT \nContent-ID:\n  <folded@cid>\n\nx\n");
    // Content-ID keeps the blanks of its continuation line, as Dovecot does.
    assert_eq!(
        body(&m),
        r#"BODY ("TEXT" "Plain" ("charset" "UTF-8") "  <folded@cid>" NIL "7BIT" 3 1)"#
    );
}

#[test]
fn multipart_without_boundary_or_parts_has_one_empty_part() {
    for m in [
        "Content-Type: multipart/mixed\n\n--x\n\na\n--x--\n",
        "Content-Type: multipart/mixed; boundary=never\n\njust text\n",
    ] {
        let b = body(&crlf(m));
        assert_eq!(
            b, r#"BODY (("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed")"#,
            "{m}"
        );
    }
}

#[test]
fn longest_matching_boundary_wins() {
    let m = crlf("Content-Type: multipart/mixed; boundary=abc\n\n--abc\nContent-Type: multipart/alternative; boundary=abcd\n\n--abcd\n\np\n--abcd--\n--abc\n\nq\n--abc--\n");
    assert_eq!(
        body(&m),
        r#"BODY ((("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0) "alternative")("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0) "mixed")"#
    );
}

#[test]
fn bad_content_type_is_reported_as_given() {
    assert_eq!(
        body(&crlf("Content-Type: foo\n\nx\n")),
        r#"BODY ("foo" "" NIL NIL NIL "7bit" 3)"#
    );
}

#[test]
fn encapsulated_header_cut_short_by_a_boundary() {
    let m = crlf("Content-Type: multipart/mixed; boundary=m\n\n--m\nContent-Type: message/rfc822\n\nSubject: only header\nFrom: a@b\n--m\n\nafter\n--m--\n");
    // The message/rfc822 body keeps the header's last CRLF (33 octets, 2 lines), like Dovecot.
    assert_eq!(
        body(&m),
        concat!(
            r#"BODY (("MESSAGE" "RFC822" NIL NIL NIL "7bit" 33 (NIL "only header" ((NIL NIL "a" "b")) ((NIL NIL "a" "b")) "#,
            r#"((NIL NIL "a" "b")) NIL NIL NIL NIL NIL) ("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) 2)"#,
            r#"("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 0) "mixed")"#
        )
    );
}
