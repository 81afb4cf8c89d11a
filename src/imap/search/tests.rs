//! Every search key, through the real imap-codec parser so that the keys are what a client's
//! SEARCH command turns into.

use super::*;
use crate::store::FlagSet;
use imap_codec::{
    decode::Decoder,
    imap_types::command::{Command, CommandBody},
    CommandCodec,
};

/// A message in memory that counts how often its file is read.
struct Msg {
    seq: u32,
    meta: MessageMeta,
    recent: bool,
    raw: Vec<u8>,
    reads: usize,
    broken: bool,
}

impl SearchSubject for Msg {
    fn seq(&self) -> u32 {
        self.seq
    }
    fn meta(&self) -> &MessageMeta {
        &self.meta
    }
    fn recent(&self) -> bool {
        self.recent
    }
    fn raw(&mut self) -> std::io::Result<&[u8]> {
        self.reads += 1;
        if self.broken {
            return Err(std::io::Error::other("gone"));
        }
        Ok(&self.raw)
    }
}

/// 2024-03-15 23:30:00 UTC.
const INTERNAL: i64 = 1_710_545_400;

/// A message from text with LF line ends (turned into CRLF).
fn msg(text: &str) -> Msg {
    let raw = text.replace('\n', "\r\n").into_bytes();
    Msg {
        seq: 5,
        meta: MessageMeta {
            uid: 700,
            modseq: 50,
            flags: FlagSet::default(),
            internal_date: INTERNAL,
            size: raw.len() as u64,
        },
        recent: false,
        raw,
        reads: 0,
        broken: false,
    }
}

const SCOPE: SearchScope = SearchScope {
    max_seq: 10,
    max_uid: 1000,
};

/// The charset and keys of `SEARCH <criteria>` as imap-codec parses them.
fn parse(criteria: &str) -> (Option<Charset<'static>>, Vec<SearchKey<'static>>) {
    let line = format!("a SEARCH {}\r\n", literals(criteria));
    let (rest, command): (_, Command<'static>) = CommandCodec::default()
        .decode_static(line.as_bytes())
        .unwrap_or_else(|e| panic!("{criteria:?} does not parse: {e:?}"));
    assert!(rest.is_empty());
    match command.body {
        CommandBody::Search {
            charset, criteria, ..
        } => (charset, criteria.into_iter().collect()),
        other => panic!("not a search: {other:?}"),
    }
}

/// Turns each word or quoted string with non-ASCII characters into a literal, as a client must
/// send it (8-bit data is not allowed in atoms and quoted strings).
fn literals(criteria: &str) -> String {
    let mut out = String::new();
    let mut rest = criteria;
    while let Some(c) = rest.chars().next() {
        let (token, content, next) = if c == '"' {
            let end = rest[1..].find('"').map_or(rest.len(), |i| i + 2);
            (&rest[..end], &rest[1..end - 1], &rest[end..])
        } else if c == ' ' {
            out.push(' ');
            rest = &rest[1..];
            continue;
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            (&rest[..end], &rest[..end], &rest[end..])
        };
        if content.is_ascii() {
            out.push_str(token);
        } else {
            out.push_str(&format!("{{{}}}\r\n{content}", content.len()));
        }
        rest = next;
    }
    out
}

fn check_in(criteria: &str, m: &mut Msg, scope: &SearchScope) -> bool {
    let (_, keys) = parse(criteria);
    match matches(&keys, m, scope) {
        Ok(result) => result,
        Err(e) => panic!("{criteria:?}: {e}"),
    }
}

fn check(criteria: &str, m: &mut Msg) -> bool {
    check_in(criteria, m, &SCOPE)
}

/// Asserts which of the criteria match the message and which do not.
fn expect(m: &mut Msg, yes: &[&str], no: &[&str]) {
    for c in yes {
        assert!(check(c, m), "{c:?} should match");
    }
    for c in no {
        assert!(!check(c, m), "{c:?} should not match");
    }
}

const PLAIN: &str = "From: Alice Example <alice@example.org>
To: Bob <bob@example.com>, carol@example.net
Cc: Dave <dave@example.com>
Bcc: eve@example.com
Subject: Quarterly report
Date: Fri, 15 Mar 2024 10:00:00 +0000
X-Mailer: Folded
 Mailer 2.0
X-Empty:
Message-ID: <1@example.org>

Hello Bob,
the numbers are in.
";

#[test]
fn all_matches_everything() {
    expect(&mut msg(PLAIN), &["ALL"], &["NOT ALL"]);
}

#[test]
fn system_flags_and_their_negations() {
    let mut m = msg(PLAIN);
    expect(
        &mut m,
        &["UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN"],
        &["ANSWERED", "DELETED", "DRAFT", "FLAGGED", "SEEN"],
    );
    m.meta.flags = FlagSet {
        seen: true,
        answered: true,
        flagged: true,
        deleted: true,
        draft: true,
        keywords: Default::default(),
    };
    expect(
        &mut m,
        &["ANSWERED", "DELETED", "DRAFT", "FLAGGED", "SEEN"],
        &["UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN"],
    );
}

#[test]
fn keywords_are_case_insensitive() {
    let mut m = msg(PLAIN);
    m.meta.flags.keywords.insert("$Label1".into());
    expect(
        &mut m,
        &["KEYWORD $label1", "KEYWORD $LABEL1", "UNKEYWORD Junk"],
        &["KEYWORD Junk", "UNKEYWORD $label1"],
    );
}

#[test]
fn recent_old_new() {
    let mut m = msg(PLAIN);
    expect(&mut m, &["OLD"], &["RECENT", "NEW"]);
    m.recent = true;
    expect(&mut m, &["RECENT", "NEW"], &["OLD"]);
    m.meta.flags.seen = true;
    expect(&mut m, &["RECENT"], &["NEW", "OLD"]);
}

#[test]
fn larger_and_smaller_are_strict() {
    let mut m = msg(PLAIN);
    m.meta.size = 100;
    expect(
        &mut m,
        &["LARGER 99", "SMALLER 101", "LARGER 0"],
        &["LARGER 100", "SMALLER 100", "SMALLER 0"],
    );
}

#[test]
fn internal_date_keys_use_the_utc_date() {
    let mut m = msg(PLAIN);
    expect(
        &mut m,
        &[
            "BEFORE 16-Mar-2024",
            "ON 15-Mar-2024",
            "SINCE 15-Mar-2024",
            "SINCE 1-Jan-2000",
        ],
        &["BEFORE 15-Mar-2024", "ON 16-Mar-2024", "SINCE 16-Mar-2024"],
    );
}

#[test]
fn sent_date_keys_use_the_date_header_in_its_own_timezone() {
    // 23:30 at -0800 is the 16th in UTC; the sender's date is the 14th.
    let mut m = msg("Date: Thu, 14 Mar 2024 23:30:00 -0800\nSubject: x\n\nbody\n");
    expect(
        &mut m,
        &[
            "SENTON 14-Mar-2024",
            "SENTBEFORE 15-Mar-2024",
            "SENTSINCE 14-Mar-2024",
        ],
        &[
            "SENTON 15-Mar-2024",
            "SENTBEFORE 14-Mar-2024",
            "SENTSINCE 15-Mar-2024",
        ],
    );
}

#[test]
fn sent_date_falls_back_to_the_internal_date() {
    for text in [
        "Subject: no date\n\nbody\n",
        "Date: sometime next week\nSubject: x\n\nbody\n",
        "Date: Fri, 31 Feb 2024 10:00:00 +0000\nSubject: x\n\nbody\n",
    ] {
        let mut m = msg(text);
        expect(
            &mut m,
            &["SENTON 15-Mar-2024", "SENTSINCE 15-Mar-2024"],
            &["SENTBEFORE 15-Mar-2024", "SENTON 14-Mar-2024"],
        );
    }
}

#[test]
fn address_keys_match_names_and_addresses() {
    let mut m = msg(PLAIN);
    expect(
        &mut m,
        &[
            "FROM alice",
            "FROM \"Alice Example\"",
            "FROM alice@example.org",
            "FROM EXAMPLE.ORG",
            "TO bob",
            "TO carol@example.net",
            "CC dave",
            "BCC eve@",
        ],
        &["FROM bob", "TO alice", "CC bob", "BCC dave", "TO eve"],
    );
}

/// Issue 17, defect 5 (Dovecot's imaptest `search-addresses`): comments inside an address
/// are not part of it.
#[test]
fn comments_in_addresses_are_left_out() {
    let mut m = msg("From: <user-from (comment)@ (comment) domain.org>\n\
        To: \"Quoted (not a comment)\" <to @ example.org>\n\
        Subject: (no comment) here\n\nbody\n");
    expect(
        &mut m,
        &[
            "FROM user-from@domain.org",
            "FROM \"user-from (comment)@\"",
            "TO to@example.org",
            "TO \"quoted (not a comment)\"",
            "SUBJECT \"(no comment)\"",
        ],
        &["FROM user-from@comment", "SUBJECT \"here@\""],
    );
}

#[test]
fn subject_and_header() {
    let mut m = msg(PLAIN);
    expect(
        &mut m,
        &[
            "SUBJECT quarterly",
            "SUBJECT \"LY REP\"",
            "HEADER Subject report",
            "HEADER x-mailer \"folded mailer\"",
            "HEADER X-Empty \"\"",
            "HEADER message-id \"<1@example.org>\"",
            "HEADER X-Mailer \"\"",
        ],
        &[
            "SUBJECT annual",
            "HEADER X-Missing \"\"",
            "HEADER X-Empty x",
            "HEADER Subject hello",
        ],
    );
}

#[test]
fn empty_string_needs_the_field() {
    let mut m = msg("From: a@example.org\n\nno subject here\n");
    expect(
        &mut m,
        &["FROM \"\"", "BODY \"\"", "TEXT \"\""],
        &["SUBJECT \"\""],
    );
}

#[test]
fn encoded_word_subjects_and_names_are_decoded() {
    let mut m = msg("From: =?ISO-8859-1?Q?J=F6rg_M=FCller?= <joerg@example.de>
To: =?UTF-8?B?w5xsbGk=?= <ulli@example.de>
Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgTcO8bmNoZW4=?=
X-Note: =?utf-8?q?caf=C3=A9?= au lait

body
");
    expect(
        &mut m,
        &[
            "SUBJECT \"grüße aus münchen\"",
            "SUBJECT MÜNCHEN",
            "FROM \"Jörg Müller\"",
            "FROM JÖRG",
            "FROM joerg@example.de",
            "TO ülli",
            "TO ÜLLI",
            "HEADER X-Note \"café au\"",
            "TEXT münchen",
        ],
        &["SUBJECT R3LDvMOf", "FROM =?ISO", "SUBJECT muenchen"],
    );
}

#[test]
fn body_and_text() {
    let mut m = msg(PLAIN);
    expect(
        &mut m,
        &[
            "BODY \"hello bob\"",
            "BODY NUMBERS",
            "TEXT numbers",
            "TEXT quarterly",
            "TEXT \"subject: quarterly\"",
            "TEXT alice@example.org",
        ],
        &["BODY quarterly", "BODY alice", "TEXT missing"],
    );
}

#[test]
fn quoted_printable_body_is_decoded() {
    let mut m = msg("Subject: qp
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Gr=C3=BC=C3=9Fe, this line is soft-=
broken here.
");
    expect(
        &mut m,
        &["BODY grüße", "BODY GRÜßE", "BODY soft-broken", "TEXT GRÜẞE"],
        &["BODY =C3=BC", "BODY soft-="],
    );
}

#[test]
fn base64_body_is_decoded() {
    let mut m = msg("Subject: b64
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: base64

SGFsbG8gSsO8cmdlbiwNCndpZSBnZWh0IGVzIGRpcj8NCg==
");
    expect(
        &mut m,
        &["BODY jürgen", "BODY JÜRGEN", "BODY \"wie geht\""],
        &["BODY SGFsbG8", "BODY juergen"],
    );
}

#[test]
fn body_charsets_are_converted() {
    let mut latin1 = msg("Subject: l1
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

J=FCrgen
");
    expect(&mut latin1, &["BODY Jürgen"], &["BODY =FC"]);
    let mut koi8 = msg("Subject: koi8
Content-Type: text/plain; charset=koi8-r
Content-Transfer-Encoding: base64

8NLJ18XULCDNydI=
");
    expect(&mut koi8, &["BODY мир", "BODY ПРИВЕТ"], &[]);
}

const MULTIPART: &str = "From: sender@example.org
Subject: with attachments
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=\"outer\"

This is the preamble.
--outer
Content-Type: multipart/alternative; boundary=\"alt\"

--alt
Content-Type: text/plain; charset=utf-8

Plain greeting
--alt
Content-Type: text/html; charset=utf-8

<p>Html <b>greeting</b> with <i>markup</i></p>
--alt--
--outer
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename=secret.bin

c2VjcmV0IG5lZWRsZSBpbiBhbiBhdHRhY2htZW50DQo=
--outer
Content-Type: text/plain; name=notes.txt
Content-Disposition: attachment; filename=notes.txt

Attached notes
--outer
Content-Type: message/rfc822

From: inner@example.net
Subject: =?UTF-8?Q?Weitergeleitet_=C3=BCber?=

Inner body text
--outer--
";

#[test]
fn body_searches_text_parts_only() {
    let mut m = msg(MULTIPART);
    expect(
        &mut m,
        &[
            "BODY \"plain greeting\"",
            "BODY \"html greeting with markup\"",
            "BODY \"attached notes\"",
            "BODY \"inner body text\"",
            "BODY \"weitergeleitet über\"",
            "BODY inner@example.net",
            "TEXT \"with attachments\"",
        ],
        &[
            "BODY \"secret needle\"",
            "BODY c2VjcmV0",
            "BODY <b>",
            "BODY \"with attachments\"",
            "SUBJECT weitergeleitet",
            "FROM inner",
        ],
    );
}

#[test]
fn or_not_and_nesting() {
    let mut m = msg(PLAIN);
    m.meta.flags.seen = true;
    expect(
        &mut m,
        &[
            "OR FLAGGED SEEN",
            "OR SEEN FLAGGED",
            "NOT FLAGGED",
            "NOT NOT SEEN",
            "(SEEN FROM alice)",
            "OR (FROM bob SEEN) (FROM alice SEEN)",
            "NOT (OR FLAGGED DELETED)",
            "OR NOT SEEN NOT (FLAGGED OR DRAFT SUBJECT report)",
            "SEEN NOT (SUBJECT annual) OR TO bob TO zed",
        ],
        &[
            "OR FLAGGED DELETED",
            "NOT SEEN",
            "(SEEN FROM bob)",
            "NOT (OR FLAGGED FROM alice)",
            "SEEN NOT SUBJECT report",
            "OR (FROM bob SEEN) NOT (OR SEEN DELETED)",
        ],
    );
}

#[test]
fn sequence_sets_and_star() {
    let mut m = msg(PLAIN); // seq 5 of 10
    expect(
        &mut m,
        &[
            "5", "1:5", "4:6", "6:4", "1,3,5", "5:*", "*:5", "1:*", "2,4:7",
        ],
        &["4", "1:4", "6:*", "*", "1,3,7", "NOT 5"],
    );
    m.seq = 10;
    expect(&mut m, &["*", "10", "9:*", "*:9"], &["1:9"]);
    // Sequence sets combine with other keys.
    m.meta.flags.seen = true;
    expect(&mut m, &["* SEEN", "OR 1 SEEN"], &["* UNSEEN"]);
}

#[test]
fn uid_sets_and_star() {
    let mut m = msg(PLAIN); // UID 700, highest 1000
    expect(
        &mut m,
        &[
            "UID 700",
            "UID 1:700",
            "UID 800:600",
            "UID 559:*",
            "UID 1,700,900",
        ],
        &["UID 701:*", "UID *", "UID 1:699", "UID 5"],
    );
    // The highest UID is in `n:*` even when n is above it.
    m.meta.uid = 500;
    let small = SearchScope {
        max_seq: 10,
        max_uid: 500,
    };
    assert!(check_in("UID 559:*", &mut m, &small));
    assert!(check_in("UID *", &mut m, &small));
    m.meta.uid = 400;
    assert!(!check_in("UID 559:*", &mut m, &small));
    assert!(check_in("UID 400:*", &mut m, &small));
}

#[test]
fn modseq() {
    let mut m = msg(PLAIN); // modseq 50
    expect(
        &mut m,
        &[
            "MODSEQ 1",
            "MODSEQ 50",
            "MODSEQ \"/flags/\\\\draft\" all 20",
            "UNSEEN MODSEQ 10 OR SEEN UNSEEN",
        ],
        &[
            "MODSEQ 51",
            "MODSEQ \"/flags/\\\\seen\" priv 51",
            "NOT MODSEQ 50",
        ],
    );
}

#[test]
fn charset_check() {
    for ok in [
        "ALL",
        "CHARSET UTF-8 ALL",
        "CHARSET utf-8 ALL",
        "CHARSET \"US-ASCII\" ALL",
    ] {
        let (charset, _) = parse(ok);
        assert!(check_charset(charset.as_ref()).is_ok(), "{ok}");
    }
    for bad in [
        "CHARSET ISO-8859-1 ALL",
        "CHARSET \"UTF-16\" ALL",
        "CHARSET UTF8 ALL",
    ] {
        let (charset, _) = parse(bad);
        assert!(
            matches!(
                check_charset(charset.as_ref()),
                Err(SearchError::BadCharset)
            ),
            "{bad}"
        );
    }
}

#[test]
fn the_file_is_read_only_when_needed_and_once_per_kind() {
    let mut m = msg(PLAIN);
    expect(
        &mut m,
        &[
            "UNSEEN",
            "OR FLAGGED ALL",
            "UID 700 SINCE 1-Jan-2020 MODSEQ 5",
        ],
        &["SEEN"],
    );
    assert_eq!(m.reads, 0);
    // A cheap key that fails first spares the file, wherever it stands in the list.
    assert!(!check("SUBJECT report SEEN", &mut m));
    assert_eq!(m.reads, 0);
    // Header keys share one read; body keys one more.
    assert!(check(
        "SUBJECT report FROM alice TO bob HEADER X-Mailer 2.0",
        &mut m
    ));
    assert_eq!(m.reads, 1);
    assert!(check("SUBJECT report BODY numbers TEXT hello", &mut m));
    assert_eq!(m.reads, 3);
}

#[test]
fn read_errors_are_reported() {
    let mut m = msg(PLAIN);
    m.broken = true;
    let (_, keys) = parse("SUBJECT report");
    assert!(matches!(
        matches(&keys, &mut m, &SCOPE),
        Err(SearchError::Io(_))
    ));
    // Keys that need no file still work.
    assert!(check("UNSEEN", &mut m));
}

#[test]
fn garbage_never_panics() {
    let fixed: [&[u8]; 9] = [
        b"",
        b"\r\n",
        b"\r\n\r\n",
        b"no header at all, just text",
        b"Subject: =?UTF-8?B?####?=\r\n\r\n",
        b"Subject: =?x?Q?\r\n\r\n=?",
        b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n--\r\n",
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!!====\xff\xfe",
        b"\xff\xfe\x00\x01Date: \x00\r\n\r\n\x80",
    ];
    let criteria = [
        "TEXT a",
        "BODY a",
        "HEADER x \"\"",
        "FROM a",
        "SENTON 1-Jan-2000",
        "SUBJECT \"\"",
    ];
    let keys: Vec<_> = criteria.iter().map(|c| parse(c).1).collect();
    let run = |raw: Vec<u8>| {
        let mut m = msg("");
        m.raw = raw;
        for k in &keys {
            let _ = matches(k, &mut m, &SCOPE);
        }
    };
    for raw in fixed {
        run(raw.to_vec());
    }
    // Deeply nested message/rfc822 parts.
    let mut nested = String::from("Subject: leaf\r\n\r\nleaf text\r\n");
    for _ in 0..50 {
        nested = format!("Content-Type: message/rfc822\r\n\r\n{nested}");
    }
    run(nested.into_bytes());
    // Random splices of message fragments and random bytes (a fixed-seed LCG).
    let pieces: [&[u8]; 10] = [
        b"Subject: ",
        b"=?UTF-8?B?w5w=?=",
        b"\r\n",
        b"\r\n\r\n",
        b"Content-Type: multipart/mixed; boundary=b\r\n",
        b"--b\r\n",
        b"Content-Transfer-Encoding: quoted-printable\r\n",
        b"=C3=",
        b"Date: 1 Jan 2000 00:00 +9999\r\n",
        b"\xc3\x28\xff",
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize
    };
    for _ in 0..300 {
        let mut raw = Vec::new();
        for _ in 0..next() % 40 {
            let pick = next();
            if pick % 4 == 0 {
                raw.push(pick as u8);
            } else {
                raw.extend_from_slice(pieces[pick % pieces.len()]);
            }
        }
        run(raw);
    }
}
