use imap_codec::fragmentizer::{FragmentInfo, Fragmentizer};
use imap_codec::imap_types::core::LiteralMode;
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::mailbox::Mailbox;

use super::framing::literal_announcement;
use super::*;

/// What the guard did with an input, reads merged: passed bytes and message bytes as runs.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    Pass(Vec<u8>),
    Refuse(Refusal),
    Continue,
    Append(Box<AppendCommand>),
    Message(Vec<u8>),
    MessageEnd(bool),
    List(Vec<u8>),
    Url(String),
    Text(u32, bool),
}

/// Feeds `input` in reads of the sizes `split` gives; APPENDs are accepted when `accept`
/// says so. Stops at a refusal that closes.
fn run_split(
    guard: &mut InputGuard,
    input: &[u8],
    mut split: impl FnMut() -> usize,
    accept: impl Fn(&AppendCommand) -> bool,
) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(split().clamp(1, rest.len()));
        rest = tail;
        let mut at = 0;
        loop {
            let (used, step) = guard.next(&chunk[at..]);
            let taken = &chunk[at..at + used];
            at += used;
            let event = match step {
                Step::NeedInput => break,
                Step::Pass(bytes) => Event::Pass(bytes),
                Step::Refuse(refusal) => {
                    let close = refusal.close;
                    events.push(Event::Refuse(refusal));
                    if close {
                        return events;
                    }
                    continue;
                }
                Step::Continue => Event::Continue,
                Step::Append(command) => {
                    if accept(&command) {
                        guard.accept_message();
                    } else {
                        guard.refuse_message();
                    }
                    Event::Append(Box::new(command))
                }
                Step::CatenateUrl(url) => {
                    if url.contains("bad") {
                        guard.refuse_message();
                    } else {
                        guard.accept_message();
                    }
                    Event::Url(url)
                }
                Step::CatenateText { size, sync, .. } => {
                    if size < 60_000 {
                        guard.accept_message();
                    } else {
                        guard.refuse_message();
                    }
                    Event::Text(size, sync)
                }
                Step::Message(n) => Event::Message(taken[taken.len() - n..].to_vec()),
                Step::MessageEnd { well_formed } => Event::MessageEnd(well_formed),
                Step::List(command) => Event::List(command),
            };
            match (events.last_mut(), event) {
                (Some(Event::Pass(a)), Event::Pass(b)) => a.extend(b),
                (Some(Event::Message(a)), Event::Message(b)) => a.extend(b),
                (_, event) => events.push(event),
            }
        }
    }
    events
}

fn run(guard: &mut InputGuard, input: &[u8]) -> Vec<Event> {
    run_split(guard, input, || usize::MAX, |_| true)
}

fn logged_in() -> InputGuard {
    let mut guard = InputGuard::new();
    guard.logged_in();
    guard
}

fn refusal(tag: &str, reason: Reason, close: bool, reset_parser: bool) -> Event {
    Event::Refuse(Refusal {
        tag: Some(tag.into()),
        reason,
        close,
        reset_parser,
    })
}

fn pass(bytes: &[u8]) -> Event {
    Event::Pass(bytes.to_vec())
}

/// The guard frames lines and literals as imap-codec's fragmentizer (imap-next's) does: on
/// random lines made of the bytes that matter, both see the same announcement.
#[test]
fn framing_agrees_with_imap_codec() {
    let alphabet = b"{}+0123456789\r~ x";
    let mut next = crate::test_support::xorshift(0x51ed_2701_9e37_79b9);
    let (mut sync, mut non_sync) = (0, 0);
    for round in 0..20_000 {
        let mut line: Vec<u8> = (0..next() % 24)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        if round % 3 == 0 {
            // Long runs of digits, some beyond u32.
            // literal8 (`~{n}`, BINARY): the same announcement after the `~`.
            if next().is_multiple_of(3) {
                line.push(b'~');
            }
            line.push(b'{');
            line.extend((0..next() % 14).map(|_| b'0' + (next() % 10) as u8));
            if next().is_multiple_of(2) {
                line.push(b'+');
            }
            line.push(b'}');
            if next().is_multiple_of(2) {
                line.push(b'\r');
            }
        }
        line.push(b'\n');
        let mut fragmentizer = Fragmentizer::without_max_message_size();
        fragmentizer.enqueue_bytes(&line);
        let Some(FragmentInfo::Line {
            announcement, end, ..
        }) = fragmentizer.progress()
        else {
            panic!("no line in {line:?}");
        };
        assert_eq!(end, line.len(), "{:?}", String::from_utf8_lossy(&line));
        let theirs = announcement.map(|a| (a.length, a.mode == LiteralMode::Sync));
        let ours = literal_announcement(&line).map(|a| (a.length, a.sync));
        assert_eq!(ours, theirs, "{:?}", String::from_utf8_lossy(&line));
        if let Some(a) = literal_announcement(&line) {
            assert_eq!(line[a.start], b'{');
            *(if a.sync { &mut sync } else { &mut non_sync }) += 1;
        }
    }
    // Both kinds were met often enough for the comparison to mean something.
    assert!(sync > 1000 && non_sync > 1000, "{sync} {non_sync}");
}

#[test]
fn lines_are_passed_whole_and_literals_as_they_come() {
    let mut guard = InputGuard::new();
    let input = b"a1 NOOP\r\nb LOGIN {5}\r\nalice {2+}\r\npw\r\nc NOOP\r\n";
    assert_eq!(run(&mut guard, input), [pass(input)]);
    // A line is held until it ends.
    let mut guard = InputGuard::new();
    assert_eq!(guard.next(b"a NO"), (4, Step::NeedInput));
    assert_eq!(
        guard.next(b"OP\r\n"),
        (4, Step::Pass(b"a NOOP\r\n".to_vec()))
    );
}

#[test]
fn literal_payload_is_not_taken_for_commands() {
    let payload = b"x {99999999+}\r\n";
    let mut input = format!("a SEARCH TEXT {{{}+}}\r\n", payload.len()).into_bytes();
    input.extend_from_slice(payload);
    input.extend_from_slice(b"\r\nb NOOP\r\n");
    assert_eq!(run(&mut logged_in(), &input), [pass(&input)]);
}

#[test]
fn pre_auth_literal_limit_is_exact() {
    let at_limit = format!("a LOGIN {{{PRE_AUTH_MAX_LITERAL}}}\r\n");
    assert_eq!(
        run(&mut InputGuard::new(), at_limit.as_bytes()),
        [pass(at_limit.as_bytes())]
    );
    // One more: refused without `+` (imap-next never sees the line); the session goes on.
    let over = PRE_AUTH_MAX_LITERAL + 1;
    let input = format!("a LOGIN {{{over}}}\r\nb NOOP\r\n");
    let reason = Reason::LiteralTooBig {
        size: over,
        limit: PRE_AUTH_MAX_LITERAL,
    };
    assert_eq!(
        run(&mut InputGuard::new(), input.as_bytes()),
        [refusal("a", reason, false, false), pass(b"b NOOP\r\n")]
    );
    // LITERAL+ beyond the limit before login: answered, then closed (not read).
    let input = format!("a LOGIN {{{over}+}}\r\nxxxx");
    assert_eq!(
        run(&mut InputGuard::new(), input.as_bytes()),
        [refusal("a", reason, true, false)]
    );
    // The report's bytes.
    let reason = Reason::LiteralTooBig {
        size: 25_000_000,
        limit: PRE_AUTH_MAX_LITERAL,
    };
    assert_eq!(
        run(&mut InputGuard::new(), b"a LOGIN {25000000+}\r\nxxxxxxxx"),
        [refusal("a", reason, true, false)]
    );
    assert_eq!(
        run(&mut InputGuard::new(), b"a LOGIN {25000000}\r\n"),
        [refusal("a", reason, false, false)]
    );
}

/// A command of exactly `total` bytes: LITERAL+ literals of `literal` bytes, then a last line
/// that fills up to `total`.
fn command_of_size(total: u64, literal: u64) -> Vec<u8> {
    let mut input = Vec::new();
    let mut first = true;
    loop {
        let line = if first { "a SEARCH TEXT" } else { " TEXT" };
        first = false;
        let announce = format!("{line} {{{literal}+}}\r\n");
        let size = input.len() as u64;
        if size + announce.len() as u64 + literal + 2 > total {
            let filler = total - size - b" X\r\n".len() as u64;
            input.extend_from_slice(b" X");
            input.extend(std::iter::repeat_n(b'Y', filler as usize));
            input.extend_from_slice(b"\r\n");
            return input;
        }
        input.extend_from_slice(announce.as_bytes());
        input.extend(std::iter::repeat_n(b'q', literal as usize));
    }
}

#[test]
fn command_limits_are_exact() {
    for (guard, limit, literal) in [
        (
            InputGuard::new as fn() -> InputGuard,
            PRE_AUTH_MAX_COMMAND,
            4096,
        ),
        (logged_in, MAX_COMMAND, 60 * 1024),
    ] {
        let at_limit = command_of_size(limit, literal);
        assert_eq!(at_limit.len() as u64, limit);
        assert_eq!(run(&mut guard(), &at_limit), [pass(&at_limit)]);
        let over = command_of_size(limit + 1, literal);
        let events = run(&mut guard(), &over);
        let reason = Reason::CommandTooBig { limit };
        // Earlier lines and literals went to imap-next, which must forget them.
        assert_eq!(events.last(), Some(&refusal("a", reason, false, true)));
    }
}

#[test]
fn line_limits_are_exact() {
    for (mut guard, limit) in [
        (InputGuard::new(), PRE_AUTH_MAX_LINE),
        (logged_in(), MAX_LINE),
    ] {
        let mut line = b"a SELECT ".to_vec();
        line.resize(limit - 2, b'x');
        line.extend_from_slice(b"\r\n");
        assert_eq!(run(&mut guard, &line), [pass(&line)]);
        let mut line = b"a SELECT ".to_vec();
        line.resize(limit + 1, b'x');
        assert_eq!(
            run(&mut guard, &line),
            [refusal("a", Reason::LineTooLong { limit }, true, false)]
        );
    }
}

#[test]
fn authenticated_limits_are_exact() {
    let input = format!("a SEARCH TEXT {{{MAX_LITERAL}+}}\r\n");
    let mut guard = logged_in();
    assert_eq!(run(&mut guard, input.as_bytes()), [pass(input.as_bytes())]);
    // One more, LITERAL+: answered, and skipped (not closed) after login.
    let over = MAX_LITERAL + 1;
    let mut input = format!("a SEARCH TEXT {{{over}+}}\r\n").into_bytes();
    input.extend(std::iter::repeat_n(b'z', over as usize));
    input.extend_from_slice(b"\r\nb NOOP\r\n");
    let reason = Reason::LiteralTooBig {
        size: over,
        limit: MAX_LITERAL,
    };
    assert_eq!(
        run(&mut logged_in(), &input),
        [refusal("a", reason, false, false), pass(b"b NOOP\r\n")]
    );
}

fn append(tag: &str, flags: Vec<Flag<'static>>, size: u32, sync: bool) -> Event {
    Event::Append(Box::new(AppendCommand {
        tag: tag.to_string().try_into().unwrap(),
        mailbox: Mailbox::Inbox,
        flags,
        date: None,
        size,
        sync,
        binary: false,
        next: false,
        catenate: false,
        utf8: false,
    }))
}

/// A further message of a MULTIAPPEND.
fn next_message(
    tag: &str,
    flags: Vec<Flag<'static>>,
    size: u32,
    sync: bool,
    binary: bool,
) -> Event {
    let Event::Append(mut command) = append(tag, flags, size, sync) else {
        unreachable!()
    };
    command.mailbox = Mailbox::try_from("A").unwrap();
    command.binary = binary;
    command.next = true;
    Event::Append(command)
}

#[test]
fn append_is_taken_after_login_only() {
    let input = b"a APPEND INBOX (\\Seen) {5}\r\nhello\r\nb NOOP\r\n";
    assert_eq!(
        run(&mut logged_in(), input),
        [
            append("a", vec![Flag::Seen], 5, true),
            Event::Message(b"hello".to_vec()),
            Event::MessageEnd(true),
            pass(b"b NOOP\r\n"),
        ]
    );
    // Before login imap-next has it (and answers "log in first").
    assert_eq!(run(&mut InputGuard::new(), input), [pass(input)]);
    // In IDLE too (imap-next wants DONE).
    let mut guard = logged_in();
    guard.set_idle(true);
    assert_eq!(run(&mut guard, input), [pass(input)]);
}

#[test]
fn the_message_may_be_as_big_as_the_session_allows() {
    // The guard has no limit of its own for the message: the session decides (and it
    // streams); here a 300 KiB one, more than MAX_COMMAND, in odd reads.
    let message: Vec<u8> = (0..300 * 1024).map(|i| (i % 251) as u8).collect();
    let mut input = format!("big append Inbox {{{}+}}\r\n", message.len()).into_bytes();
    input.extend_from_slice(&message);
    input.extend_from_slice(b"\r\nn NOOP\r\n");
    let mut sizes = crate::test_support::xorshift(7);
    let events = run_split(
        &mut logged_in(),
        &input,
        || (sizes() % 5000) as usize,
        |_| true,
    );
    assert_eq!(events[1], Event::Message(message));
    assert_eq!(events[2..], [Event::MessageEnd(true), pass(b"n NOOP\r\n")]);
}

#[test]
fn refused_append_payloads_are_skipped() {
    // Refused LITERAL+ message: skipped, commands inside it never seen.
    let input = b"a APPEND Nowhere {17+}\r\nb DELETE INBOX\r\n\r\nc NOOP\r\n";
    let events = run_split(&mut logged_in(), input, || usize::MAX, |_| false);
    assert_eq!(events[1..], [pass(b"c NOOP\r\n")]);
    // Refused synchronising: the client won't send it; the next line is a command.
    let input = b"a APPEND Nowhere {17}\r\nc NOOP\r\n";
    let events = run_split(&mut logged_in(), input, || usize::MAX, |_| false);
    assert_eq!(events[1..], [pass(b"c NOOP\r\n")]);
}

#[test]
fn append_heads_with_a_mailbox_literal() {
    let input = b"a APPEND {5}\r\nINBOX () {3}\r\nabc\r\n";
    assert_eq!(
        run(&mut logged_in(), input),
        [
            Event::Continue,
            append("a", vec![], 3, true),
            Event::Message(b"abc".to_vec()),
            Event::MessageEnd(true),
        ]
    );
    let input = b"a APPEND {5+}\r\nINBOX {3+}\r\nabc\r\n";
    assert_eq!(
        run(&mut logged_in(), input)[0],
        append("a", vec![], 3, false)
    );
}

#[test]
fn bad_append_heads_are_refused() {
    let syntax = |close| refusal("a", Reason::AppendSyntax, close, false);
    // A head that can't be an APPEND, with a message too big for a head literal.
    let input = b"a APPEND INBOX (\\Bogus\"flag) {100000}\r\nb NOOP\r\n";
    assert_eq!(
        run(&mut logged_in(), input),
        [syntax(false), pass(b"b NOOP\r\n")]
    );
    // No literal at all.
    let input = b"a APPEND INBOX\r\nb NOOP\r\n";
    assert_eq!(
        run(&mut logged_in(), input),
        [syntax(false), pass(b"b NOOP\r\n")]
    );
    // A small literal that turns out not to be the message: collected, then refused.
    let input = b"a APPEND INBOX (\\Bogus\"flag) {3+}\r\nabc\r\nb NOOP\r\n";
    assert_eq!(
        run(&mut logged_in(), input),
        [syntax(false), pass(b"b NOOP\r\n")]
    );
}

#[test]
fn multiappend_messages_come_one_after_another() {
    let input = b"a APPEND INBOX {3+}\r\nabc (\\Seen) ~{4}\r\nd\0fg {1+}\r\nh\r\nb NOOP\r\n";
    assert_eq!(
        run(&mut logged_in(), input),
        [
            append("a", vec![], 3, false),
            Event::Message(b"abc".to_vec()),
            next_message("a", vec![Flag::Seen], 4, true, true),
            Event::Message(b"d\0fg".to_vec()),
            next_message("a", vec![], 1, false, false),
            Event::Message(b"h".to_vec()),
            Event::MessageEnd(true),
            pass(b"b NOOP\r\n"),
        ]
    );
}

#[test]
fn a_refused_further_message_ends_the_command() {
    // LITERAL+: skipped with the rest of the command, never kept.
    let input = b"a APPEND INBOX {3+}\r\nabc {9+}\r\nc NOOP\r\n {2+}\r\nxy\r\nb NOOP\r\n";
    let accept = |command: &AppendCommand| !command.next;
    let events = run_split(&mut logged_in(), input, || usize::MAX, accept);
    assert_eq!(
        events[1..],
        [
            Event::Message(b"abc".to_vec()),
            next_message("a", vec![], 9, false, false),
            pass(b"b NOOP\r\n"),
        ]
    );
    // Synchronising: the client sends nothing more of it after the answer.
    let input = b"a APPEND INBOX {3+}\r\nabc {9}\r\nb NOOP\r\n";
    let events = run_split(&mut logged_in(), input, || usize::MAX, accept);
    assert_eq!(events[3..], [pass(b"b NOOP\r\n")]);
}

#[test]
fn garbage_after_a_message_is_a_syntax_error() {
    for input in [
        &b"a APPEND INBOX {3+}\r\nabc junk {4+}\r\ndefg\r\nb NOOP\r\n"[..],
        b"a APPEND INBOX {3+}\r\nabc(\\Seen) {4+}\r\ndefg\r\nb NOOP\r\n",
        b"a APPEND INBOX {3+}\r\nabc x\r\nb NOOP\r\n",
    ] {
        assert_eq!(
            run(&mut logged_in(), input)[1..],
            [
                Event::Message(b"abc".to_vec()),
                Event::MessageEnd(false),
                pass(b"b NOOP\r\n"),
            ],
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn binary_literals_are_recognised() {
    for (input, sync) in [
        (&b"a APPEND INBOX ~{3}\r\n"[..], true),
        (b"a APPEND INBOX (\\Seen) ~{3+}\r\n", false),
    ] {
        let events = run(&mut logged_in(), input);
        let Event::Append(command) = &events[0] else {
            panic!("{events:?}");
        };
        assert!(command.binary && command.sync == sync && command.size == 3);
    }
}

#[test]
fn the_tag_of_a_later_line_is_the_commands() {
    let input = b"t7 LOGIN {5}\r\nalice {999999+}\r\n";
    let reason = Reason::LiteralTooBig {
        size: 999_999,
        limit: PRE_AUTH_MAX_LITERAL,
    };
    assert_eq!(
        run(&mut InputGuard::new(), input),
        [
            pass(b"t7 LOGIN {5}\r\nalice"),
            refusal("t7", reason, true, true)
        ]
    );
}

/// Random command streams: what the guard does must not depend on how the bytes are split
/// into reads, and nothing may panic.
#[test]
fn steps_do_not_depend_on_read_boundaries() {
    let mut next = crate::test_support::xorshift(0x1a2b_3c4d);
    let pieces: [&[u8]; 21] = [
        b"r APPEND INBOX CATENATE (TEXT {5}\r\nhello URL \"/INBOX/;UID=1\" TEXT {2+}\r\nab)\r\n",
        b"s APPEND INBOX (\\Seen) CATENATE (URL /bad/;UID=1 TEXT {3+}\r\nabc)\r\n",
        b"t APPEND INBOX {1+}\r\nx CATENATE (TEXT {70000+}\r\n) {1+}\r\ny\r\n",
        b"u APPEND INBOX CATENATE (URL x TEXT {1}\r\nz junk)\r\n",
        b"o APPEND INBOX ~{3+}\r\na\0b {2+}\r\ncd\r\n",
        b"p APPEND INBOX {1}\r\nx (\\Seen) ~{2}\r\ny\0\r\n",
        b"q APPEND INBOX {1+}\r\nx ~{70000+}\r\n",
        b"a1 NOOP\r\n",
        b"b APPEND INBOX {5}\r\nhello\r\n",
        b"c APPEND INBOX {12+}\r\n{99999999+}\r\n\r\n",
        b"d LOGIN {3}\r\nbob {3+}\r\npw!\r\n",
        b"e APPEND INBOX {2000+}\r\n",
        b"f APPEND INBOX {2000}\r\ng NOOP\r\n",
        b"\r\n\n{}{+}{x+}\r\n",
        b"h SELECT xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        b"\xff\x00 garbage {\r\n",
        b"i APPEND {5}\r\nINBOX {3+}\r\nabc\r\n",
        b"j APPEND Nowhere {4+}\r\nk NO\r\n",
        b"l SEARCH TEXT {70000+}\r\n",
        b"m APPEND INBOX {2+}\r\nab {1+}\r\nc\r\n",
        b"n LOGIN {9000}\r\n",
    ];
    for round in 0..400 {
        let mut input = Vec::new();
        for _ in 0..(next() % 14) {
            input.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
            if next().is_multiple_of(40) {
                input.extend(std::iter::repeat_n(b'x', MAX_LINE));
            }
        }
        let accept = |command: &AppendCommand| {
            command.mailbox == Mailbox::Inbox || (command.next && command.size < 60_000)
        };
        let start = |authenticated: bool| {
            let mut guard = InputGuard::new();
            if authenticated {
                guard.logged_in();
            }
            guard
        };
        let authenticated = round % 2 == 0;
        let whole = run_split(&mut start(authenticated), &input, || usize::MAX, accept);
        let split = run_split(
            &mut start(authenticated),
            &input,
            || 1 + (next() % 97) as usize,
            accept,
        );
        assert_eq!(split, whole, "input {:?}", String::from_utf8_lossy(&input));
    }
}

#[test]
fn append_head_limit_is_exact() {
    // `a APPEND {n}` CRLF, n bytes of mailbox name, ` {5}` CRLF: the head, MAX_APPEND_HEAD
    // bytes and one more.
    let head = |total: usize| {
        let tail = b" {5}\r\n";
        let mut n = total - tail.len() - b"a APPEND {}\r\n".len();
        n -= n.to_string().len();
        let mut input = format!("a APPEND {{{n}}}\r\n").into_bytes();
        input.extend(std::iter::repeat_n(b'm', n));
        input.extend_from_slice(tail);
        assert_eq!(input.len(), total);
        input
    };
    let events = run(&mut logged_in(), &head(MAX_APPEND_HEAD));
    assert_eq!(events[0], Event::Continue);
    let Event::Append(command) = &events[1] else {
        panic!("{events:?}");
    };
    assert_eq!(command.size, 5);
    let events = run(&mut logged_in(), &head(MAX_APPEND_HEAD + 1));
    let reason = Reason::CommandTooBig {
        limit: MAX_APPEND_HEAD as u64,
    };
    assert_eq!(events[1..], [refusal("a", reason, false, false)]);
}

/// After login a LIST is taken whole, its literals inline (`+` for a synchronising one),
/// whatever the reads; before login it goes to imap-next (which the dispatcher refuses).
#[test]
fn list_is_taken_whole_after_login() {
    let input =
        b"a LIST (SUBSCRIBED) {2}\r\nWo (\"%\" {3+}\r\nx\ry) RETURN (CHILDREN)\r\nb NOOP\r\n";
    for size in [1, 2, 5, 64] {
        let events = run_split(&mut logged_in(), input, || size, |_| true);
        assert_eq!(
            events,
            [
                Event::Continue,
                Event::List(input[..input.len() - 8].to_vec()),
                Event::Pass(b"b NOOP\r\n".to_vec()),
            ],
            "reads of {size}"
        );
    }
    let before = run(&mut InputGuard::new(), b"a LIST \"\" *\r\n");
    assert_eq!(before, [Event::Pass(b"a LIST \"\" *\r\n".to_vec())]);
    // A literal over the limit is refused before `+`; the session goes on.
    let big = format!("a LIST \"\" {{{}}}\r\nb NOOP\r\n", MAX_LITERAL + 1);
    let events = run(&mut logged_in(), big.as_bytes());
    assert!(
        matches!(&events[0], Event::Refuse(r) if !r.close),
        "{events:?}"
    );
    assert_eq!(events[1], Event::Pass(b"b NOOP\r\n".to_vec()));
    // So is a command that grows beyond an APPEND head's limit.
    let mut long = b"a LIST \"\" ".to_vec();
    for _ in 0..MAX_APPEND_HEAD / 10 {
        long.extend_from_slice(b"{4+}\r\nxxxx");
    }
    long.extend_from_slice(b"\r\n");
    let events = run(&mut logged_in(), &long);
    assert!(matches!(&events[0], Event::Refuse(_)), "{:?}", &events[..1]);
}

fn catenate(tag: &str, next: bool) -> Event {
    let Event::Append(mut command) = append(tag, vec![], 0, true) else {
        unreachable!()
    };
    command.catenate = true;
    if next {
        command.mailbox = Mailbox::try_from("A").unwrap();
        command.next = true;
    }
    Event::Append(command)
}

#[test]
fn catenate_parts_come_one_at_a_time() {
    let input = b"a APPEND INBOX CATENATE (TEXT {5}\r\nhello URL \"/INBOX/;UID=1\" \
URL /Sent/;UID=2 TEXT ~{3+}\r\na\0c)\r\nb NOOP\r\n";
    assert_eq!(
        run(&mut logged_in(), input),
        [
            catenate("a", false),
            Event::Text(5, true),
            Event::Message(b"hello".to_vec()),
            Event::Url("/INBOX/;UID=1".into()),
            Event::Url("/Sent/;UID=2".into()),
            Event::Text(3, false),
            Event::Message(b"a\0c".to_vec()),
            Event::MessageEnd(true),
            pass(b"b NOOP\r\n"),
        ]
    );
}

#[test]
fn catenate_mixes_with_multiappend() {
    let input = b"a APPEND INBOX {1+}\r\nx CATENATE (URL \"/INBOX/;UID=1\") (\\Seen) CATENATE (TEXT {1+}\r\ny) {1+}\r\nz\r\n";
    let Event::Append(mut seen) = catenate("a", true) else {
        unreachable!()
    };
    seen.flags = vec![Flag::Seen];
    assert_eq!(
        run(&mut logged_in(), input),
        [
            append("a", vec![], 1, false),
            Event::Message(b"x".to_vec()),
            catenate("a", true),
            Event::Url("/INBOX/;UID=1".into()),
            Event::Append(seen),
            Event::Text(1, false),
            Event::Message(b"y".to_vec()),
            next_message("a", vec![], 1, false, false),
            Event::Message(b"z".to_vec()),
            Event::MessageEnd(true),
        ]
    );
}

#[test]
fn a_refused_catenate_part_drops_the_rest() {
    // The URL is refused: the LITERAL+ text after it is skipped, never seen as commands.
    let input =
        b"a APPEND INBOX CATENATE (URL /bad/;UID=1 TEXT {14+}\r\nc DELETE INBOX)\r\nb NOOP\r\n";
    assert_eq!(
        run(&mut logged_in(), input),
        [
            catenate("a", false),
            Event::Url("/bad/;UID=1".into()),
            pass(b"b NOOP\r\n"),
        ]
    );
    // Synchronising: the client sends no more of the command.
    let input = b"a APPEND INBOX CATENATE (URL /bad/;UID=1 TEXT {14}\r\nb NOOP\r\n";
    assert_eq!(run(&mut logged_in(), input)[2..], [pass(b"b NOOP\r\n")]);
    // Garbage in the list: a syntax error, the rest dropped.
    let input = b"a APPEND INBOX CATENATE (BOGUS {3+}\r\nabc)\r\nb NOOP\r\n";
    assert_eq!(
        run(&mut logged_in(), input)[1..],
        [Event::MessageEnd(false), pass(b"b NOOP\r\n")]
    );
}

/// An APPEND in RFC 6855's `UTF8 (literal8)` form.
fn utf8_append(tag: &str, flags: Vec<Flag<'static>>, size: u32, sync: bool) -> Event {
    let Event::Append(mut command) = append(tag, flags, size, sync) else {
        unreachable!()
    };
    command.binary = true;
    command.utf8 = true;
    Event::Append(command)
}

#[test]
fn utf8_appends_are_taken_with_their_closing_parenthesis() {
    let message = "Subject: Grüße\r\n\r\nä\r\n".as_bytes();
    let input = [
        &format!("a APPEND INBOX (\\Seen) UTF8 (~{{{}}}\r\n", message.len()).into_bytes()[..],
        message,
        b")\r\nb NOOP\r\n",
    ]
    .concat();
    for split in [usize::MAX, 1, 7] {
        assert_eq!(
            run_split(&mut logged_in(), &input, || split, |_| true),
            [
                utf8_append("a", vec![Flag::Seen], message.len() as u32, true),
                Event::Message(message.to_vec()),
                Event::MessageEnd(true),
                pass(b"b NOOP\r\n"),
            ]
        );
    }
    // Any case, LITERAL+, and a MULTIAPPEND of both forms.
    let input = b"a APPEND INBOX utf8 (~{2+}\r\nab) {1+}\r\nc UTF8 (~{1+}\r\nd)\r\nb NOOP\r\n";
    let Event::Append(mut second) = next_message("a", vec![], 1, false, true) else {
        unreachable!()
    };
    second.utf8 = true;
    assert_eq!(
        run(&mut logged_in(), input),
        [
            utf8_append("a", vec![], 2, false),
            Event::Message(b"ab".to_vec()),
            next_message("a", vec![], 1, false, false),
            Event::Message(b"c".to_vec()),
            Event::Append(second),
            Event::Message(b"d".to_vec()),
            Event::MessageEnd(true),
            pass(b"b NOOP\r\n"),
        ]
    );
}

#[test]
fn a_utf8_append_without_its_parenthesis_is_a_syntax_error() {
    for input in [
        &b"a APPEND INBOX UTF8 (~{2+}\r\nab\r\nb NOOP\r\n"[..],
        b"a APPEND INBOX UTF8 (~{2+}\r\nab))\r\nb NOOP\r\n",
        b"a APPEND INBOX UTF8 (~{2+}\r\nab x)\r\nb NOOP\r\n",
    ] {
        assert_eq!(
            run(&mut logged_in(), input)[1..],
            [
                Event::Message(b"ab".to_vec()),
                Event::MessageEnd(false),
                pass(b"b NOOP\r\n"),
            ],
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    // The form wants a literal8 (RFC 6855 §4); `UTF8 ({n}` is no APPEND the guard knows, and a
    // quoted mailbox name ending in the words doesn't make one.
    for input in [
        &b"a APPEND INBOX UTF8 ({2}\r\n"[..],
        b"a APPEND \"x UTF8 (~\" {2}\r\n",
    ] {
        let events = run(&mut logged_in(), input);
        assert!(
            !matches!(&events[0], Event::Append(command) if command.utf8),
            "{events:?}"
        );
    }
}

#[test]
fn a_refused_utf8_append_skips_its_message_and_parenthesis() {
    let input = b"a APPEND INBOX UTF8 (~{3+}\r\nabc)\r\nb NOOP\r\n";
    let events = run_split(&mut logged_in(), input, || usize::MAX, |_| false);
    assert_eq!(
        events,
        [utf8_append("a", vec![], 3, false), pass(b"b NOOP\r\n")]
    );
    // Synchronising: no `+`, so the client sends neither message nor `)`.
    let input = b"a APPEND INBOX UTF8 (~{3}\r\nb NOOP\r\n";
    let events = run_split(&mut logged_in(), input, || usize::MAX, |_| false);
    assert_eq!(
        events,
        [utf8_append("a", vec![], 3, true), pass(b"b NOOP\r\n")]
    );
}

#[test]
fn catenate_takes_utf8_parts_with_their_parenthesis() {
    let input = "a APPEND INBOX CATENATE (UTF8 (~{6}\r\nGrüß) URL /INBOX/;UID=1 utf8 (~{2+}\r\nab))\r\nb NOOP\r\n";
    assert_eq!(
        run(&mut logged_in(), input.as_bytes()),
        [
            catenate("a", false),
            Event::Text(6, true),
            Event::Message("Grüß".as_bytes().to_vec()),
            Event::Url("/INBOX/;UID=1".into()),
            Event::Text(2, false),
            Event::Message(b"ab".to_vec()),
            Event::MessageEnd(true),
            pass(b"b NOOP\r\n"),
        ]
    );
    // Without its `)` the part list is a syntax error.
    let input = b"a APPEND INBOX CATENATE (UTF8 (~{2+}\r\nab TEXT {1+}\r\nc)\r\nb NOOP\r\n";
    assert_eq!(
        run(&mut logged_in(), input)[2..],
        [
            Event::Message(b"ab".to_vec()),
            Event::MessageEnd(false),
            pass(b"b NOOP\r\n"),
        ]
    );
}
