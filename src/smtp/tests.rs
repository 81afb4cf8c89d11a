//! Unit tests of the sans-I/O SMTP core: bytes in, replies and deliveries out.

use super::inbound::{Outcome as Delivery, StoreFailure};
use super::proto::{RecipientResolver, Security, Session, SessionParams, Step, MAX_COMMAND_LINE};
use super::transaction::Transaction;
use crate::address::Address;
use crate::auth::Recipient;
use crate::config::layers::Source;
use crate::policy::{Client, ClientName, Engine, Port};
use crate::settings::Settings;

struct Local;

impl RecipientResolver for Local {
    fn resolve(&self, address: &Address) -> Recipient {
        match (address.local(), address.domain()) {
            ("alice", "local.test") => Recipient::Local(address.clone()),
            ("al", "local.test") => Recipient::Local(Address::parse("alice@local.test").unwrap()),
            (_, "local.test") => Recipient::UnknownLocal,
            _ => Recipient::Remote,
        }
    }

    fn is_local_domain(&self, domain: &str) -> bool {
        domain == "local.test"
    }

    fn postmaster(&self) -> Option<Address> {
        None
    }

    fn owns(&self, account: &Address, sender: &Address) -> bool {
        account == sender
    }
}

fn params() -> SessionParams {
    SessionParams {
        hostname: "mx.local.test".into(),
        max_message_size: 1000,
        smtputf8: true,
        max_recipients: 3,
        max_errors: 5,
        peer_ip: "192.0.2.1".into(),
        security: Security {
            starttls: false,
            auth_in_plaintext: true,
            submission: false,
        },
    }
}

/// The default settings (no rate limit, no lists: relaying needs a login).
fn test_settings() -> Settings {
    let source = Source::Text {
        name: "test".into(),
        text: r#"{"heloName":"mx.local.test"}"#.into(),
    };
    Settings::load(&source).expect("default settings")
}

/// A session whose connection the policy accepted (its `220` greeting taken).
fn connected(params: SessionParams) -> Session {
    let mut session = Session::new(params);
    match step(&mut session) {
        Step::Reply(greeting) => assert_eq!(greeting.code, 220),
        other => panic!("expected the greeting, got {other:?}"),
    }
    session
}

/// The session's next step, with policy questions answered by the real engine (no rate
/// limit: relaying needs a login) in between; a refusal is shown as its reply (the kinds are
/// tested in `refusals_have_their_kind`).
fn step(session: &mut Session) -> Step {
    let engine = Engine::new();
    let settings = test_settings();
    let client = Client {
        ip: "192.0.2.1".parse().unwrap(),
        port: Port::Mx,
        name: ClientName::NotLooked,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    loop {
        match session.next(&Local) {
            Step::Check => {
                let verdict = match session.query(&client) {
                    Some(query) => runtime.block_on(engine.check(&settings, &query)),
                    None => crate::policy::Verdict::Accept,
                };
                session.checked(verdict);
            }
            Step::Refuse(err) => match err.reply() {
                Some(reply) => return Step::Reply(reply.clone()),
                None => panic!("a refusal without a reply: {err}"),
            },
            other => return other,
        }
    }
}

/// What a run of input produced: reply lines (codes and text) and delivered transactions.
#[derive(Default)]
struct Outcome {
    replies: Vec<String>,
    delivered: Vec<Transaction>,
    closed: bool,
}

impl Outcome {
    fn codes(&self) -> Vec<u16> {
        self.replies
            .iter()
            .map(|r| r[..3].parse().unwrap())
            .collect()
    }
}

/// Feeds `input` in chunks of `chunk` bytes, accepting every delivery.
fn run_chunked(session: &mut Session, input: &[u8], chunk: usize) -> Outcome {
    let mut outcome = Outcome::default();
    let mut chunks = input.chunks(chunk.max(1));
    loop {
        match step(session) {
            Step::Reply(reply) => outcome
                .replies
                .push(String::from_utf8(reply.to_wire()).unwrap()),
            Step::Deliver(tx) => {
                outcome.delivered.push(*tx);
                session.delivered(Delivery::Accepted { id: "ID".into() }.answer());
            }
            // A completed handshake; a login succeeds for alice with "pw".
            Step::StartTls => session.tls_started(),
            Step::Authenticate(credentials) => {
                let ok = credentials.password == b"pw";
                session.auth_result(ok.then(|| Address::parse("alice@local.test").unwrap()));
            }
            Step::Close => {
                outcome.closed = true;
                return outcome;
            }
            Step::Check | Step::Refuse(_) => unreachable!("step() answers and shows these"),
            Step::NeedInput => match chunks.next() {
                Some(bytes) => session.push_input(bytes),
                None => return outcome,
            },
        }
    }
}

fn run(input: &str) -> Outcome {
    run_chunked(&mut connected(params()), input.as_bytes(), usize::MAX)
}

const ENVELOPE: &str = "EHLO c.test\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@local.test>\r\n";

#[test]
fn pipelined_transaction_replies_in_order() {
    let outcome = run(&format!(
        "{ENVELOPE}DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n"
    ));
    assert_eq!(outcome.codes(), [250, 250, 250, 354, 250, 221]);
    assert_eq!(outcome.delivered.len(), 1);
    assert_eq!(outcome.delivered[0].body, b"Subject: x\r\n\r\nhi\r\n");
    assert!(outcome.closed);
}

#[test]
fn any_chunking_of_the_input_gives_the_same_result() {
    let input = format!("{ENVELOPE}DATA\r\nA\r\n..dot\r\n.\r\nBDAT 3\r\nabcRSET\r\n");
    let whole = run(&input);
    for chunk in 1..8 {
        let split = run_chunked(&mut connected(params()), input.as_bytes(), chunk);
        assert_eq!(split.replies, whole.replies, "chunk size {chunk}");
        assert_eq!(split.delivered[0].body, b"A\r\n.dot\r\n");
    }
}

#[test]
fn ehlo_advertises_extensions() {
    let outcome = run("EHLO c.test\r\n");
    let ehlo = &outcome.replies[0];
    for ext in [
        "PIPELINING",
        "SIZE 1000",
        "8BITMIME",
        "ENHANCEDSTATUSCODES",
        "CHUNKING",
        "SMTPUTF8",
    ] {
        assert!(ehlo.contains(ext), "{ext} missing in {ehlo}");
    }
    let mut off = params();
    off.smtputf8 = false;
    let outcome = run_chunked(
        &mut connected(off),
        b"EHLO c\r\nMAIL FROM:<a@b.test> SMTPUTF8\r\n",
        100,
    );
    assert!(!outcome.replies[0].contains("SMTPUTF8"));
    assert!(outcome.replies[1].starts_with("553 5.6.7"));
}

#[test]
fn empty_message_ends_at_once() {
    let outcome = run(&format!("{ENVELOPE}DATA\r\n.\r\n"));
    assert_eq!(outcome.codes(), [250, 250, 250, 354, 250]);
    assert_eq!(outcome.delivered[0].body, b"");
}

#[test]
fn bare_lf_dot_does_not_end_data() {
    // SMTP smuggling: "\n.\n" and "\r\n.\n" are not the end of data.
    let smuggled = "a\n.\nMAIL FROM:<x@evil.test>\r\nb\r\n.\nRCPT TO:<alice@local.test>\r\n";
    let outcome = run(&format!("{ENVELOPE}DATA\r\n{smuggled}.\r\n"));
    assert_eq!(outcome.delivered.len(), 1);
    assert_eq!(outcome.codes(), [250, 250, 250, 354, 250]);
    // Bare LFs became CRLF; the dot after a bare LF is text, the one after CRLF was stuffing.
    let expected = "a\r\n.\r\nMAIL FROM:<x@evil.test>\r\nb\r\n\r\nRCPT TO:<alice@local.test>\r\n";
    assert_eq!(outcome.delivered[0].body, expected.as_bytes());
}

/// Issue 10 item 4, the exact input: `<CRLF>.<CR><CRLF>` does not end the data, so the smuggled
/// MAIL/RCPT/DATA are message text: one 250, one message.
#[test]
fn smuggling_through_crlf_dot_cr_crlf() {
    for fake in ["\r\n.\r\r\n", "\r\n.\r\r\r\n"] {
        let input = format!(
            "{ENVELOPE}DATA\r\nbefore{fake}MAIL FROM:<admin@local.test>\r\n\
             RCPT TO:<alice@local.test>\r\nDATA\r\nSubject: SMUGGLED\r\n\r\nevil\r\n.\r\n"
        );
        for chunk in [1, 3, usize::MAX] {
            let outcome = run_chunked(&mut connected(params()), input.as_bytes(), chunk);
            assert_eq!(outcome.codes(), [250, 250, 250, 354, 250], "{fake:?}");
            assert_eq!(outcome.delivered.len(), 1);
            let body = String::from_utf8(outcome.delivered[0].body.clone()).unwrap();
            assert!(body.starts_with("before\r\n"), "{body:?}");
            assert!(
                body.contains("MAIL FROM:<admin@local.test>\r\n"),
                "{body:?}"
            );
            assert!(body.ends_with("evil\r\n"), "{body:?}");
            assert!(!body.replace("\r\n", "").contains(['\r', '\n']), "{body:?}");
        }
    }
}

#[test]
fn bare_cr_is_normalised_in_data_and_bdat() {
    let outcome = run(&format!("{ENVELOPE}DATA\r\nA\r.\rX\r\n.\r\n"));
    assert_eq!(outcome.delivered[0].body, b"A\r\n.\r\nX\r\n");
    // A CR that ends one chunk and the LF that starts the next are one CRLF.
    let outcome = run(&format!("{ENVELOPE}BDAT 2\r\nA\rBDAT 4 LAST\r\n\n.\rX"));
    assert_eq!(outcome.codes(), [250, 250, 250, 250, 250]);
    assert_eq!(outcome.delivered[0].body, b"A\r\n.\r\nX");
}

#[test]
fn declared_size_over_limit_is_refused() {
    let outcome = run("EHLO c\r\nMAIL FROM:<a@b.test> SIZE=1001\r\n");
    assert!(outcome.replies[1].starts_with("552 5.3.4"));
}

#[test]
fn actual_size_over_limit_is_drained_and_refused() {
    let big = "x".repeat(2000);
    let outcome = run(&format!("{ENVELOPE}DATA\r\n{big}\r\n.\r\nNOOP\r\n"));
    assert_eq!(outcome.codes(), [250, 250, 250, 354, 552, 250]);
    assert!(outcome.delivered.is_empty());
    // Exactly at the limit is fine.
    let exact = format!("{}\r\n", "y".repeat(998));
    let outcome = run(&format!("{ENVELOPE}DATA\r\n{exact}.\r\n"));
    assert_eq!(outcome.delivered[0].body.len(), 1000);
    // One byte more is refused, even though it fits the receiver's slack.
    let over = format!("{}\r\n", "y".repeat(999));
    let outcome = run(&format!("{ENVELOPE}DATA\r\n{over}.\r\n"));
    assert_eq!(outcome.codes(), [250, 250, 250, 354, 552]);
}

#[test]
fn bdat_chunks_and_limits() {
    let outcome = run(&format!("{ENVELOPE}BDAT 5\r\nhelloBDAT 6 LAST\r\n world"));
    assert_eq!(outcome.codes(), [250, 250, 250, 250, 250]);
    assert_eq!(outcome.delivered[0].body, b"hello world");
    let outcome = run(&format!(
        "{ENVELOPE}BDAT 1001 LAST\r\n{}NOOP\r\n",
        "z".repeat(1001)
    ));
    assert_eq!(outcome.codes(), [250, 250, 250, 552, 250]);
    assert!(outcome.delivered.is_empty());
    // BDAT without a transaction: the chunk is drained, not read as commands.
    let outcome = run("EHLO c\r\nBDAT 6\r\nQUIT\r\nNOOP\r\n");
    assert_eq!(outcome.codes(), [250, 503, 250]);
}

/// Issue 10 item 3, the exact input: the second size overflows `body + chunk`. The refusal
/// comes at once (the chunk is drained as it arrives) and nothing panics.
#[test]
fn bdat_size_overflow_is_552() {
    let input = format!("{ENVELOPE}BDAT 10\r\n0123456789BDAT 18446744073709551609 LAST\r\n");
    for chunk in [1, 7, usize::MAX] {
        let outcome = run_chunked(&mut connected(params()), input.as_bytes(), chunk);
        assert_eq!(outcome.codes(), [250, 250, 250, 250, 552]);
        assert!(outcome.replies[4].starts_with("552 5.3.4"));
        assert!(!outcome.closed && outcome.delivered.is_empty());
    }
    // A size past usize::MAX (smtp-proto would read it as 9) is just as big.
    let outcome = run(&format!(
        "{ENVELOPE}BDAT 999999999999999999999 LAST\r\n123456789NOOP\r\n"
    ));
    assert_eq!(outcome.codes(), [250, 250, 250, 552]);
    assert!(outcome.delivered.is_empty());
    // usize::MAX itself, which smtp-proto calls a syntax error: refused as too big and drained
    // (a 501 would read the chunk's octets as commands).
    let outcome = run(&format!(
        "{ENVELOPE}BDAT 18446744073709551615 LAST\r\nMAIL FROM:<x@y.test>\r\n"
    ));
    assert_eq!(outcome.codes(), [250, 250, 250, 552]);
    let outcome = run(&format!(
        "{ENVELOPE}BDAT 1001\r\n{}NOOP\r\n",
        "z".repeat(1001)
    ));
    assert_eq!(outcome.codes(), [250, 250, 250, 552, 250]);
}

#[test]
fn huge_declared_sizes_are_refused() {
    // At or past usize::MAX (smtp-proto calls the first a syntax error and wraps the last
    // around to a small number): too big.
    for size in [
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999999",
    ] {
        let outcome = run(&format!(
            "EHLO c\r\nMAIL FROM:<a@b.test> SIZE={size}\r\nNOOP\r\n"
        ));
        assert!(
            outcome.replies[1].starts_with("552 5.3.4"),
            "{size}: {}",
            outcome.replies[1]
        );
        assert_eq!(outcome.codes()[2], 250);
    }
}

#[test]
fn relay_and_unknown_users() {
    let cases = [
        ("bob@local.test", "550 5.1.1"),
        ("user@remote.test", "554 5.7.1"),
        ("USER@REMOTE.TEST", "554 5.7.1"),
        ("user@remote.test.", "554 5.7.1"),
        ("user%remote.test@local.test", "550 5.1.1"),
        ("\"user@remote.test\"@local.test", "550 5.1.1"),
        ("@local.test:user@remote.test", "554 5.7.1"),
        ("user@remote.test@local.test", "501 5.1.3"),
        ("user", "501 5.1.3"),
    ];
    for (rcpt, expected) in cases {
        let outcome = run(&format!(
            "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<{rcpt}>\r\n"
        ));
        assert!(
            outcome.replies[2].starts_with(expected),
            "{rcpt}: {}",
            outcome.replies[2]
        );
    }
    for rcpt in ["ALICE@LOCAL.TEST", "alice@local.test.", "al@Local.Test"] {
        let outcome = run(&format!(
            "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<{rcpt}>\r\n"
        ));
        assert!(outcome.replies[2].starts_with("250 2.1.5"), "{rcpt}");
    }
}

#[test]
fn too_many_recipients() {
    let rcpts = "RCPT TO:<alice@local.test>\r\n".repeat(4);
    let outcome = run(&format!("EHLO c\r\nMAIL FROM:<a@b.test>\r\n{rcpts}"));
    assert_eq!(outcome.codes(), [250, 250, 250, 250, 250, 452]);
}

#[test]
fn sequence_errors() {
    let outcome = run("MAIL FROM:<a@b.test>\r\nEHLO c\r\nRCPT TO:<alice@local.test>\r\nDATA\r\nMAIL FROM:<a@b.test>\r\nDATA\r\n");
    assert_eq!(outcome.codes(), [503, 250, 503, 503, 250, 554]);
}

#[test]
fn long_line_is_refused_and_session_goes_on() {
    let long = "NOOP ".to_string() + &"a".repeat(MAX_COMMAND_LINE * 256);
    for chunk in [usize::MAX, 65536, 1000] {
        let outcome = run_chunked(
            &mut connected(params()),
            format!("{long}\r\nNOOP\r\n").as_bytes(),
            chunk,
        );
        assert_eq!(outcome.codes(), [500, 250], "chunk {chunk}");
        assert!(outcome.replies[0].starts_with("500 5.5.2"));
    }
}

/// The command line limit (CRLF included) and limit + 1, whole and spanning reads.
#[test]
fn command_line_limit_and_one_more() {
    for (length, code) in [(MAX_COMMAND_LINE, 250), (MAX_COMMAND_LINE + 1, 500)] {
        let line = format!("NOOP {}\r\n", "a".repeat(length - 7));
        assert_eq!(line.len(), length);
        for chunk in [usize::MAX, 4095, 100, 1] {
            let input = format!("{line}NOOP\r\n");
            let outcome = run_chunked(&mut connected(params()), input.as_bytes(), chunk);
            assert_eq!(outcome.codes(), [code, 250], "{length} bytes in {chunk}s");
        }
    }
}

#[test]
fn long_line_with_a_syntax_error_is_still_too_long() {
    for command in ["RCPT TO:<", "MAIL FROM:<", "HELO ", "XYZZ "] {
        let line = format!("{command}{}@local.test>\r\n", "b".repeat(MAX_COMMAND_LINE));
        let outcome = run(&format!("EHLO c\r\nMAIL FROM:<a@b.test>\r\n{line}NOOP\r\n"));
        assert!(
            outcome.replies[2].starts_with("500 5.5.2"),
            "{command}: {}",
            outcome.replies[2]
        );
        assert!(outcome.replies[3].starts_with("250"), "{command}");
    }
}

#[test]
fn garbage_closes_after_max_errors() {
    let garbage = b"\x00\x01\xff\xfe garbage\r\n".repeat(10);
    let outcome = run_chunked(&mut connected(params()), &garbage, 7);
    assert_eq!(outcome.codes(), [500, 500, 500, 500, 421]);
    assert!(outcome.closed);
}

#[test]
fn non_ascii_needs_smtputf8() {
    let outcome = run("EHLO c\r\nMAIL FROM:<jöran@b.test>\r\nMAIL FROM:<jöran@b.test> SMTPUTF8\r\nRCPT TO:<alice@local.test>\r\n");
    assert_eq!(outcome.codes(), [250, 553, 250, 250]);
    assert!(outcome.replies[1].starts_with("553 5.6.7"));
}

#[test]
fn helo_vrfy_noop_rset_quit() {
    let outcome = run("HELO c\r\nVRFY alice\r\nNOOP\r\nRSET\r\nHELP\r\nQUIT\r\nNOOP\r\n");
    assert_eq!(outcome.codes(), [250, 252, 250, 250, 214, 221]);
    assert!(outcome.closed);
}

#[test]
fn failed_delivery_is_a_temporary_error() {
    let mut session = connected(params());
    session.push_input(format!("{ENVELOPE}DATA\r\nx\r\n.\r\n").as_bytes());
    loop {
        match step(&mut session) {
            Step::Deliver(_) => {
                session.delivered(
                    Delivery::Failed {
                        id: "ID".into(),
                        failure: StoreFailure {
                            cause: "I/O error".into(),
                            out_of_space: false,
                        },
                    }
                    .answer(),
                );
                break;
            }
            Step::Reply(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let Step::Reply(reply) = step(&mut session) else {
        panic!("no reply")
    };
    assert_eq!(reply.code, 451);
}

fn secure_params(starttls: bool, auth_in_plaintext: bool, submission: bool) -> SessionParams {
    SessionParams {
        security: Security {
            starttls,
            auth_in_plaintext,
            submission,
        },
        ..params()
    }
}

fn run_secure(params: SessionParams, input: &str) -> Outcome {
    run_chunked(&mut connected(params), input.as_bytes(), usize::MAX)
}

fn plain(login: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{login}\0{password}"))
}

#[test]
fn required_mode_hides_auth_until_tls() {
    let outcome = run_secure(
        secure_params(true, false, true),
        &format!("EHLO c\r\nAUTH PLAIN {}\r\n", plain("alice", "pw")),
    );
    assert!(outcome.replies[0].contains("STARTTLS"));
    assert!(!outcome.replies[0].contains("AUTH"));
    assert!(outcome.replies[1].starts_with("538 5.7.11"));
    // After STARTTLS: AUTH offered, STARTTLS not.
    let mut session = connected(secure_params(true, false, true));
    session.push_input(b"EHLO c\r\nSTARTTLS\r\n");
    let mut replies = Vec::new();
    loop {
        match step(&mut session) {
            Step::Reply(reply) => replies.push(String::from_utf8(reply.to_wire()).unwrap()),
            Step::StartTls => break,
            other => panic!("{other:?}"),
        }
    }
    assert!(replies[1].starts_with("220 2.0.0"));
    session.tls_started();
    assert!(matches!(step(&mut session), Step::NeedInput));
    session.push_input(b"EHLO c\r\n");
    let Step::Reply(ehlo) = step(&mut session) else {
        panic!()
    };
    let ehlo = String::from_utf8(ehlo.to_wire()).unwrap();
    assert!(ehlo.contains("AUTH PLAIN LOGIN") && !ehlo.contains("STARTTLS"));
}

#[test]
fn none_mode_offers_auth_without_starttls() {
    let outcome = run_secure(secure_params(false, true, false), "EHLO c\r\nSTARTTLS\r\n");
    assert!(outcome.replies[0].contains("AUTH PLAIN LOGIN"));
    assert!(!outcome.replies[0].contains("STARTTLS"));
    assert!(outcome.replies[1].starts_with("502"));
}

#[test]
fn pipelining_after_starttls_is_refused() {
    let outcome = run_secure(
        secure_params(true, true, false),
        "EHLO c\r\nSTARTTLS\r\nMAIL FROM:<a@b.test>\r\n",
    );
    assert!(
        outcome.replies[1].starts_with("554 5.5.0"),
        "{:?}",
        outcome.replies
    );
    assert!(outcome.closed);
}

#[test]
fn starttls_resets_the_session() {
    let outcome = run_secure(secure_params(true, true, false), "EHLO c\r\nSTARTTLS\r\n");
    assert_eq!(outcome.codes(), [250, 220]);
    let mut session = connected(secure_params(true, true, false));
    session.push_input(b"EHLO c\r\nSTARTTLS\r\n");
    while !matches!(step(&mut session), Step::StartTls) {}
    session.tls_started();
    let _ = step(&mut session);
    session.push_input(b"MAIL FROM:<a@b.test>\r\n");
    let Step::Reply(reply) = step(&mut session) else {
        panic!()
    };
    assert_eq!(reply.code, 503, "EHLO is needed again after STARTTLS");
}

#[test]
fn submission_needs_auth_and_own_sender() {
    let no_auth = run_secure(
        secure_params(false, true, true),
        "EHLO c\r\nMAIL FROM:<alice@local.test>\r\n",
    );
    assert!(no_auth.replies[1].starts_with("530 5.7.0"));
    let input = format!(
        "EHLO c\r\nAUTH PLAIN {}\r\nMAIL FROM:<bob@local.test>\r\nMAIL FROM:<alice@local.test>\r\nRCPT TO:<x@remote.test>\r\nRCPT TO:<alice@local.test>\r\nDATA\r\nhi\r\n.\r\n",
        plain("alice", "pw")
    );
    let outcome = run_secure(secure_params(false, true, true), &input);
    assert_eq!(outcome.codes(), [250, 235, 553, 250, 250, 250, 354, 250]);
    assert_eq!(outcome.delivered[0].remote, ["x@remote.test"]);
    assert!(outcome.replies[2].starts_with("553 5.7.1"));
    assert!(outcome.delivered[0].authenticated);
}

#[test]
fn auth_plain_and_login_exchanges() {
    let wrong = run_secure(
        secure_params(false, true, false),
        &format!("EHLO c\r\nAUTH PLAIN {}\r\n", plain("alice", "no")),
    );
    assert!(wrong.replies[1].starts_with("535 5.7.8"));
    let plain_no_ir = run_secure(
        secure_params(false, true, false),
        &format!("EHLO c\r\nAUTH PLAIN\r\n{}\r\n", plain("alice", "pw")),
    );
    assert_eq!(plain_no_ir.codes(), [250, 334, 235]);
    // LOGIN: "alice" and "pw" in base64.
    let login = run_secure(
        secure_params(false, true, false),
        "EHLO c\r\nAUTH LOGIN\r\nYWxpY2U=\r\ncHc=\r\n",
    );
    assert_eq!(login.codes(), [250, 334, 334, 235]);
    assert!(login.replies[1].contains("VXNlcm5hbWU6"));
    let cancelled = run_secure(
        secure_params(false, true, false),
        "EHLO c\r\nAUTH LOGIN\r\n*\r\nNOOP\r\n",
    );
    assert_eq!(cancelled.codes(), [250, 334, 501, 250]);
    let unknown = run_secure(
        secure_params(false, true, false),
        "EHLO c\r\nAUTH CRAM-MD5\r\n",
    );
    assert!(unknown.replies[1].starts_with("504"));
    let twice = run_secure(
        secure_params(false, true, false),
        &format!(
            "EHLO c\r\nAUTH PLAIN {0}\r\nAUTH PLAIN {0}\r\n",
            plain("alice", "pw")
        ),
    );
    assert_eq!(twice.codes(), [250, 235, 503]);
}

/// Random bytes and random SMTP-looking fragments, in random chunks: the session never panics
/// and always ends (every step consumes input or finishes).
#[test]
fn random_input_never_panics() {
    let fragments: [&[u8]; 15] = [
        b"EHLO x\r\n",
        b"MAIL FROM:<a@b.test>\r\n",
        b"RCPT TO:<alice@local.test>\r\n",
        b"DATA\r\n",
        b"\r\n.\r\n",
        b"BDAT 3\r\n",
        b"BDAT 2 LAST\r\n",
        b"AUTH PLAIN\r\n",
        b"STARTTLS\r\n",
        b"\x00\xff",
        b".\n",
        b"RSET\r\n",
        b"\r\n.\r\r\n",
        b"BDAT 18446744073709551609 LAST\r\n",
        b"\r.\r",
    ];
    let mut next = crate::test_support::xorshift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..500 {
        let mut input = Vec::new();
        for _ in 0..(next() % 40) {
            if next().is_multiple_of(3) {
                input.extend((0..next() % 64).map(|_| next() as u8));
            } else {
                input.extend_from_slice(fragments[(next() % fragments.len() as u64) as usize]);
            }
        }
        let chunk = (next() % 50 + 1) as usize;
        let mut params = secure_params(true, next().is_multiple_of(2), next().is_multiple_of(2));
        params.max_errors = 1000;
        let _ = run_chunked(&mut connected(params), &input, chunk);
    }
}

/// Each refusal comes with its kind: what the client asked for (`User`), what it could not say
/// (`Syntax`), our own failure (`Server`, with its cause for the log).
#[test]
fn refusals_have_their_kind() {
    use super::error::SmtpError;
    let mut session = connected(params());
    session.push_input(b"FOO\r\nMAIL FROM:<a@b.test>\r\nEHLO c\r\nRCPT TO:<x@y.test>\r\n");
    let mut kinds = Vec::new();
    loop {
        match session.next(&Local) {
            Step::Refuse(err) => kinds.push(match err {
                SmtpError::User(r) => ("user", r.code),
                SmtpError::Syntax(r) => ("syntax", r.code),
                SmtpError::Server { reply, .. } => ("server", reply.code),
                SmtpError::Io(_) => ("io", 0),
            }),
            Step::Check => {
                let client = Client {
                    ip: "192.0.2.1".parse().unwrap(),
                    port: Port::Mx,
                    name: ClientName::NotLooked,
                };
                let query = session.query(&client).is_some();
                assert!(query);
                session.checked(crate::policy::Verdict::Accept);
            }
            Step::NeedInput => break,
            Step::Reply(_) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(kinds, [("syntax", 500), ("user", 503), ("user", 503)]);
    let failed = |out_of_space| Delivery::Failed {
        id: "ID".into(),
        failure: StoreFailure {
            cause: "delivery of ID failed: No space left on device".into(),
            out_of_space,
        },
    };
    match failed(false).answer() {
        Err(SmtpError::Server { reply, cause }) => {
            assert_eq!((reply.code, reply.enhanced), (451, Some([4, 3, 0])));
            assert!(reply.lines[0].contains("ID") && !reply.lines[0].contains("device"));
            assert!(cause.contains("No space"));
        }
        other => panic!("{other:?}"),
    }
    // A full disk says so, still as a temporary error (RFC 3463 4.3.1, as Postfix).
    match failed(true).answer() {
        Err(SmtpError::Server { reply, .. }) => {
            assert_eq!((reply.code, reply.enhanced), (452, Some([4, 3, 1])));
            assert!(reply.lines[0].contains("Insufficient system storage"));
        }
        other => panic!("{other:?}"),
    }
}
