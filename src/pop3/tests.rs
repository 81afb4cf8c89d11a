//! Unit tests of the sans-I/O POP3 core.

use super::proto::{LoginError, MessageInfo, Security, Session, Step};

const MESSAGES: [&[u8]; 2] = [
    b"Subject: one\r\n\r\nfirst\r\n.dotted\r\n",
    b"Subject: two\r\nX: y\r\n\r\nl1\r\nl2\r\nl3\r\n",
];

fn info() -> Vec<MessageInfo> {
    MESSAGES
        .iter()
        .enumerate()
        .map(|(i, m)| MessageInfo {
            uid: format!("uid{i}"),
            size: m.len() as u64,
        })
        .collect()
}

#[derive(Default)]
struct Outcome {
    lines: String,
    deleted: Option<Vec<usize>>,
    closed: bool,
    tls: bool,
}

/// Feeds `input` at once; logins succeed for password "pw"; STLS handshakes succeed.
fn run(security: Security, input: &str) -> Outcome {
    let mut session = Session::new(security, 5);
    let mut outcome = Outcome::default();
    let mut fed = false;
    loop {
        match session.step() {
            Step::Reply(response) => outcome
                .lines
                .push_str(&String::from_utf8(response.to_wire()).unwrap()),
            Step::Refuse(err) => outcome.lines.push_str(
                &String::from_utf8(err.response().expect("a response").to_wire()).unwrap(),
            ),
            Step::NeedInput if !fed => {
                fed = true;
                session.push_input(input.as_bytes());
            }
            Step::NeedInput => return outcome,
            Step::StartTls => {
                outcome.tls = true;
                session.tls_started();
            }
            Step::Authenticate(credentials) => {
                let result = if credentials.password == b"pw" {
                    Ok(info())
                } else {
                    Err(LoginError::Invalid)
                };
                session.logged_in(result);
            }
            Step::Retrieve { index, top } => {
                session.message(index, top, Ok(MESSAGES[index].to_vec()))
            }
            Step::Update(doomed) => {
                outcome.deleted = Some(doomed);
                session.updated(Ok(()));
            }
            Step::Close => {
                outcome.closed = true;
                return outcome;
            }
        }
    }
}

const PLAIN_OK: Security = Security {
    stls: true,
    auth_in_plaintext: true,
};
const REQUIRED: Security = Security {
    stls: true,
    auth_in_plaintext: false,
};

#[test]
fn login_stat_list_uidl_retr_quit() {
    let out = run(
        PLAIN_OK,
        "USER alice\r\nPASS pw\r\nSTAT\r\nLIST\r\nUIDL 2\r\nRETR 1\r\nQUIT\r\n",
    );
    let expected = format!(
        "+OK Send PASS\r\n+OK Logged in, 2 messages ({} octets)\r\n+OK 2 {}\r\n+OK\r\n1 {}\r\n2 {}\r\n.\r\n+OK 2 uid1\r\n+OK {} octets\r\nSubject: one\r\n\r\nfirst\r\n..dotted\r\n.\r\n+OK Bye, deleted messages removed\r\n",
        MESSAGES[0].len() + MESSAGES[1].len(),
        MESSAGES[0].len() + MESSAGES[1].len(),
        MESSAGES[0].len(),
        MESSAGES[1].len(),
        MESSAGES[0].len(),
    );
    assert_eq!(out.lines, expected);
    assert_eq!(out.deleted, Some(vec![]));
    assert!(out.closed);
}

#[test]
fn dele_rset_and_update_only_at_quit() {
    let out = run(
        PLAIN_OK,
        "USER a\r\nPASS pw\r\nDELE 1\r\nRETR 1\r\nLIST\r\nRSET\r\nDELE 2\r\nQUIT\r\n",
    );
    assert!(out.lines.contains("-ERR Message is deleted"));
    assert_eq!(out.deleted, Some(vec![1]));
    // Without QUIT nothing is deleted.
    let dropped = run(PLAIN_OK, "USER a\r\nPASS pw\r\nDELE 1\r\n");
    assert_eq!(dropped.deleted, None);
}

#[test]
fn top_gives_headers_and_n_lines() {
    let out = run(PLAIN_OK, "USER a\r\nPASS pw\r\nTOP 2 1\r\nTOP 2 0\r\n");
    assert!(out
        .lines
        .contains("+OK\r\nSubject: two\r\nX: y\r\n\r\nl1\r\n.\r\n"));
    assert!(out
        .lines
        .contains("+OK\r\nSubject: two\r\nX: y\r\n\r\n.\r\n"));
}

#[test]
fn required_mode_refuses_logins_before_tls() {
    let out = run(REQUIRED, "CAPA\r\nUSER a\r\nAUTH PLAIN AGEAcHc=\r\n");
    assert!(!out.lines.contains("USER\r\n"));
    assert!(!out.lines.contains("SASL"));
    assert!(out.lines.contains("STLS\r\n"));
    assert_eq!(out.lines.matches("-ERR [SYS/PERM]").count(), 2);
    let out = run(REQUIRED, "STLS\r\n");
    assert!(out.tls);
    assert!(out.lines.starts_with("+OK Begin TLS"));
}

#[test]
fn stls_with_pipelined_commands_is_refused() {
    let out = run(PLAIN_OK, "STLS\r\nUSER a\r\n");
    assert!(!out.tls);
    assert!(out.lines.starts_with("-ERR"));
    assert!(out.closed);
}

#[test]
fn auth_plain_with_and_without_initial_response() {
    // base64("\0a\0pw") = "AGEAcHc="
    let out = run(PLAIN_OK, "AUTH PLAIN AGEAcHc=\r\nSTAT\r\n");
    assert!(out.lines.contains("+OK Logged in"));
    let out = run(PLAIN_OK, "AUTH PLAIN\r\nAGEAcHc=\r\nSTAT\r\n");
    assert!(out.lines.starts_with("+ \r\n+OK Logged in"));
    let bad = run(PLAIN_OK, "USER a\r\nPASS nope\r\n");
    assert!(bad.lines.contains("-ERR [AUTH] Authentication failed"));
}

#[test]
fn wrong_state_out_of_range_and_garbage() {
    let out = run(
        PLAIN_OK,
        "STAT\r\nUSER a\r\nPASS pw\r\nRETR 9\r\nRETR 0\r\nDELE x\r\nUSER b\r\n",
    );
    assert_eq!(out.lines.matches("-ERR").count(), 5, "{}", out.lines);
    let garbage = run(PLAIN_OK, "\u{1}\u{2}\r\nxx\r\nyy\r\nzz\r\nww\r\nNOOP\r\n");
    assert!(garbage.closed);
    assert!(garbage
        .lines
        .ends_with("-ERR Too many errors, closing the connection\r\n"));
}

/// Issue 10 item 8: every command takes the arguments RFC 1939 gives it, no more, no fewer.
#[test]
fn argument_counts_are_checked() {
    let refused = [
        "RETR 1 2",
        "RETR",
        "DELE 1 2",
        "DELE",
        "LIST 1 2",
        "UIDL 1 2",
        "TOP 1",
        "TOP 1 2 3",
        "STAT 1",
        "NOOP x",
        "RSET 1",
        "CAPA x",
    ];
    for command in refused {
        let out = run(
            PLAIN_OK,
            &format!("USER a\r\nPASS pw\r\n{command}\r\nQUIT\r\n"),
        );
        let reply = out.lines.lines().nth(2).unwrap_or_default();
        assert!(reply.starts_with("-ERR"), "{command}: {}", out.lines);
        // Nothing was deleted by a DELE with too many arguments.
        assert_eq!(out.deleted, Some(vec![]), "{command}");
    }
    for command in ["USER a b", "USER", "STLS x", "AUTH PLAIN AGEAcHc= x"] {
        let out = run(PLAIN_OK, &format!("{command}\r\n"));
        assert!(out.lines.starts_with("-ERR"), "{command}: {}", out.lines);
        assert!(!out.tls && !out.lines.contains("Logged in"), "{command}");
    }
    let out = run(PLAIN_OK, "QUIT now\r\n");
    assert!(out.lines.starts_with("-ERR") && !out.closed);
    // Surrounding spaces are not arguments.
    let out = run(PLAIN_OK, "USER a\r\nPASS pw\r\nRETR 1 \r\n");
    assert!(out.lines.contains("+OK 32 octets"), "{}", out.lines);
}

#[test]
fn huge_and_odd_numbers_are_errors() {
    for command in [
        "RETR 18446744073709551616",
        "RETR 99999999999999999999999",
        "DELE 18446744073709551615",
        "LIST +1",
        "RETR -1",
        "TOP 1 99999999999999999999999",
        "TOP 99999999999999999999999 1",
        "TOP 1 -1",
    ] {
        let out = run(PLAIN_OK, &format!("USER a\r\nPASS pw\r\n{command}\r\n"));
        let reply = out.lines.lines().nth(2).unwrap_or_default();
        assert!(reply.starts_with("-ERR"), "{command}: {}", out.lines);
    }
    // A line count past the end is the whole message (RFC 1939 TOP).
    let out = run(
        PLAIN_OK,
        "USER a\r\nPASS pw\r\nTOP 2 18446744073709551615\r\n",
    );
    assert!(out.lines.ends_with("l3\r\n.\r\n"), "{}", out.lines);
}

#[test]
fn overlong_line_is_refused_and_drained() {
    let long = format!("USER {}\r\nCAPA\r\n", "a".repeat(5000));
    let out = run(PLAIN_OK, &long);
    assert!(out.lines.starts_with("-ERR Line too long"), "{}", out.lines);
    assert!(out.lines.contains("+OK Capability list follows"));
}

/// Random bytes and POP3-looking fragments: the session never panics and always ends.
#[test]
fn random_input_never_panics() {
    let fragments: [&str; 10] = [
        "USER a\r\n",
        "PASS pw\r\n",
        "STAT\r\n",
        "RETR 1\r\n",
        "TOP 2 1\r\n",
        "DELE 1\r\n",
        "AUTH PLAIN\r\n",
        "STLS\r\n",
        "LIST 99\r\n",
        "\u{0}\u{7f}",
    ];
    let mut next = crate::test_support::xorshift(0x2545_F491_4F6C_DD1D);
    for _ in 0..500 {
        let mut input = String::new();
        for _ in 0..(next() % 30) {
            if next().is_multiple_of(3) {
                input.extend((0..next() % 40).map(|_| char::from((next() % 128) as u8)));
            } else {
                input.push_str(fragments[(next() % 10) as usize]);
            }
        }
        let security = if next().is_multiple_of(2) {
            PLAIN_OK
        } else {
            REQUIRED
        };
        let _ = run(security, &input);
    }
}

/// Refusals come with their kind, and a failure of ours keeps its cause for the log while the
/// client reads a generic `-ERR [SYS/TEMP]`.
#[test]
fn refusals_have_their_kind() {
    use super::error::Pop3Error;
    let mut session = Session::new(PLAIN_OK, 50);
    session.push_input(b"FOO\r\nSTAT\r\nUSER alice\r\nPASS pw\r\nRETR x\r\nRETR 9\r\nRETR 1\r\n");
    let mut kinds = Vec::new();
    loop {
        match session.step() {
            Step::Refuse(err) => kinds.push(match err {
                Pop3Error::User(_) => "user".to_string(),
                Pop3Error::Syntax(_) => "syntax".to_string(),
                Pop3Error::Server { cause, .. } => format!("server: {cause}"),
                Pop3Error::Io(_) => "io".to_string(),
            }),
            Step::Authenticate(_) => session.logged_in(Ok(info())),
            Step::Retrieve { index, top } => {
                session.message(index, top, Err(std::io::Error::other("EIO")))
            }
            Step::Reply(_) => {}
            Step::NeedInput => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        kinds,
        [
            "syntax",
            "user",
            "syntax",
            "user",
            "server: reading message 1: EIO"
        ]
    );
}
