//! The whole IMAP session in process (`session::run_session` over loopback TCP, a temporary
//! store, the real authenticator) against random command streams: valid commands of every
//! kind (LOGIN, ENABLE UTF8=ACCEPT, SELECT, LIST/LSUB with random and non-ASCII patterns in
//! modified UTF-7 and in UTF-8, FETCH, STORE, SEARCH, APPEND with both kinds of literal and in
//! RFC 6855's UTF8 form, IDLE/DONE), garbage lines and, in some
//! sessions, raw random bytes, all sent in random pieces. Nothing may panic (a panic of the
//! session task fails the test), every session must end when the client does, and in the
//! sessions without raw garbage every tagged command is answered, in the order sent. Seeded,
//! so a failure reproduces; the time limits only detect hangs.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use super::context::ImapContext;
use super::one_account::{one_account, OneAccount, USER};
use super::session::run_session;
use super::utf7;
use crate::settings::Live;
use crate::store::MailStore;

/// Longer than any step may take unless the session hangs.
const HANG: Duration = Duration::from_secs(30);
const SESSIONS: u64 = 48;

fn context(root: &std::path::Path) -> Arc<ImapContext> {
    let OneAccount {
        source,
        settings,
        authenticator,
    } = one_account(root, "test");
    let store = Arc::new(MailStore::new(
        settings.storage.path.clone(),
        settings.storage.default_folders.clone(),
    ));
    let live = Arc::new(Live::new(source, settings));
    Arc::new(ImapContext::new(live, authenticator, store, None))
}

/// A piece of a command as the client sends it.
#[derive(Debug, Clone)]
enum Part {
    Text(Vec<u8>),
    /// A synchronising literal: sent only after the server's `+`.
    Sync(Vec<u8>),
}

/// One command (or garbage), with the tag to expect an answer for.
#[derive(Debug, Clone)]
struct Sent {
    tag: Option<String>,
    parts: Vec<Part>,
}

struct Gen {
    next: Box<dyn FnMut() -> u64>,
    count: u32,
}

impl Gen {
    fn below(&mut self, n: usize) -> usize {
        ((self.next)() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn chance(&mut self, one_in: u64) -> bool {
        (self.next)().is_multiple_of(one_in)
    }

    fn tag(&mut self) -> String {
        self.count += 1;
        format!("t{}", self.count)
    }

    /// A folder name as a client would send it: known ones, non-ASCII ones (modified UTF-7
    /// of random text, or the UTF-8 itself as after ENABLE UTF8=ACCEPT), broken modified
    /// UTF-7.
    fn mailbox(&mut self) -> String {
        match self.below(5) {
            0 => self
                .pick(&[
                    "INBOX",
                    "inbox",
                    "Drafts",
                    "Sent",
                    "Work",
                    "Work.2024",
                    "Nowhere",
                ])
                .to_string(),
            1 => self
                .pick(&[
                    "Entw&APw-rfe",
                    "&ZeVnLIqe-",
                    "abcd&AOk-",
                    "INBO&AOk-",
                    "&-x",
                    "&AOk",
                ])
                .to_string(),
            _ => {
                let chars = [
                    'a', 'é', 'ü', '日', '本', '.', 'x', '😀', 'I', 'N', '\u{85}',
                ];
                let text: String = (0..1 + self.below(7))
                    .map(|_| chars[self.below(chars.len())])
                    .collect();
                if self.chance(3) {
                    text
                } else {
                    utf7::encode(&text)
                }
            }
        }
    }

    /// A LIST pattern: a mailbox name with wildcards mixed in, or a bare wildcard.
    fn pattern(&mut self) -> String {
        let mut pattern = self.mailbox();
        match self.below(5) {
            0 => pattern = self.pick(&["*", "%", "", "INBOX*", "%.%"]).to_string(),
            1 => pattern.push('*'),
            2 if pattern.is_ascii() => {
                pattern.insert(self.below(pattern.len() + 1).min(pattern.len()), '%')
            }
            _ => {}
        }
        // Insert at a character boundary (a UTF-8 name is not ASCII).
        if !pattern.is_ascii() {
            pattern.push('%');
        }
        pattern
    }

    fn quoted(&mut self, text: &str) -> String {
        format!("\"{text}\"")
    }

    /// A message: header, then random text with CRLFs, bare CRs and LFs and bytes that look
    /// like commands or announcements.
    fn message(&mut self) -> Vec<u8> {
        let mut message = b"Subject: random\r\nFrom: a@b.test\r\n\r\n".to_vec();
        let bits: [&[u8]; 8] = [
            b"hello ",
            b"\r\n",
            b"\r",
            b"\n",
            b" {5}\r\n",
            b"x LOGOUT\r\n",
            b"\xc3\xa9",
            b".\r\n",
        ];
        for _ in 0..self.below(40) {
            message.extend_from_slice(bits[self.below(bits.len())]);
        }
        if self.chance(6) {
            message.extend(std::iter::repeat_n(b'z', 5000)); // beyond max_message
        }
        message
    }

    fn literal(&mut self, text: &[u8], parts: &mut Vec<Part>, line: &mut Vec<u8>) {
        if self.chance(2) {
            line.extend_from_slice(format!("{{{}+}}\r\n", text.len()).as_bytes());
            line.extend_from_slice(text);
        } else {
            line.extend_from_slice(format!("{{{}}}\r\n", text.len()).as_bytes());
            parts.push(Part::Text(std::mem::take(line)));
            parts.push(Part::Sync(text.to_vec()));
        }
    }

    /// A login, in one of the ways clients do it (always the right password: failures would
    /// only slow the test down, the authenticator's slowdown being per address).
    fn login(&mut self) -> Sent {
        let tag = self.tag();
        let mut parts = Vec::new();
        let mut line = format!("{tag} ").into_bytes();
        match self.below(3) {
            0 => line.extend_from_slice(format!("LOGIN {USER} pw").as_bytes()),
            1 => {
                line.extend_from_slice(b"LOGIN ");
                self.literal(USER.as_bytes(), &mut parts, &mut line);
                line.extend_from_slice(b" ");
                self.literal(b"pw", &mut parts, &mut line);
            }
            _ => {
                let plain = format!("\0{USER}\0pw");
                let plain = base64::Engine::encode(&base64::prelude::BASE64_STANDARD, plain);
                line.extend_from_slice(format!("AUTHENTICATE PLAIN {plain}").as_bytes());
            }
        }
        line.extend_from_slice(b"\r\n");
        parts.push(Part::Text(line));
        Sent {
            tag: Some(tag),
            parts,
        }
    }

    /// A garbage line: no LF or brace inside, so it can't swallow what follows.
    fn garbage(&mut self) -> Sent {
        let junk: Vec<u8> = (0..self.below(60))
            .map(|_| (self.next)() as u8)
            .filter(|b| *b != b'\n' && *b != b'{')
            .collect();
        Sent {
            tag: None,
            parts: vec![Part::Text(junk), Part::Text(b"\r\n".to_vec())],
        }
    }

    fn command(&mut self) -> Sent {
        if self.chance(12) {
            return self.garbage();
        }
        if self.chance(25) {
            return self.login();
        }
        let tag = self.tag();
        let mut parts = Vec::new();
        let mut line = format!("{tag} ").into_bytes();
        let simple = |text: String| text.into_bytes();
        match self.below(20) {
            0..=2 => {
                let verb = self.pick(&["SELECT", "EXAMINE", "STATUS", "CREATE", "SUBSCRIBE"]);
                let mailbox = if self.chance(2) {
                    "INBOX".to_string()
                } else {
                    self.mailbox()
                };
                let mailbox = self.quoted(&mailbox);
                let extra = if verb == "STATUS" {
                    " (MESSAGES UIDNEXT)"
                } else {
                    ""
                };
                line.extend(simple(format!("{verb} {mailbox}{extra}")));
            }
            3..=6 => {
                let verb = self.pick(&["LIST", "LSUB"]);
                let reference = if self.chance(3) {
                    self.pattern()
                } else {
                    String::new()
                };
                let (reference, pattern) = (self.quoted(&reference), self.pattern());
                let pattern = self.quoted(&pattern);
                line.extend(simple(format!("{verb} {reference} {pattern}")));
            }
            7..=9 => {
                let mailbox = if self.chance(4) {
                    self.mailbox()
                } else {
                    "INBOX".into()
                };
                let flags = self.pick(&["", "(\\Seen) ", "(\\Flagged $Work) ", "(\\Bogus) "]);
                let date = self.pick(&["", "\"14-Jul-2021 02:44:25 +0200\" "]);
                line.extend(simple(format!("APPEND \"{mailbox}\" {flags}{date}")));
                let message = self.message();
                // RFC 6855's form, refused before ENABLE UTF8=ACCEPT.
                let utf8 = self.chance(3);
                if utf8 {
                    line.extend_from_slice(b"UTF8 (~");
                }
                self.literal(&message, &mut parts, &mut line);
                if utf8 {
                    line.push(b')');
                }
            }
            10..=12 => {
                let set = self.pick(&["1", "1:*", "*", "2:4", "99", "0", "1,3:2"]);
                let items = self.pick(&[
                    "FLAGS",
                    "(UID RFC822.SIZE)",
                    "BODY.PEEK[]",
                    "BODY[HEADER]",
                    "(ENVELOPE BODYSTRUCTURE)",
                    "BODY[]<0.10>",
                    "BODY[1.MIME]",
                ]);
                let uid = self.pick(&["", "UID "]);
                line.extend(simple(format!("{uid}FETCH {set} {items}")));
            }
            13 => {
                let set = self.pick(&["1", "1:*", "*"]);
                let change = self.pick(&["+FLAGS (\\Seen)", "-FLAGS.SILENT (\\Seen)", "FLAGS ()"]);
                line.extend(simple(format!("STORE {set} {change}")));
            }
            14 if self.chance(2) => {
                let text = self.pick(&["\"é\"", "\"\u{85}\"", "hello", "{2+}\r\né"]);
                line.extend(simple(format!("SEARCH TEXT {text}")));
            }
            14 => {
                line.extend_from_slice(b"SEARCH CHARSET UTF-8 TEXT ");
                let text = self.pick(&["é", "hello", "LOGOUT"]).as_bytes().to_vec();
                self.literal(&text, &mut parts, &mut line);
            }
            15 => line.extend(simple(
                self.pick(&["SEARCH ALL", "UID SEARCH SEEN", "IDLE\r\nDONE"])
                    .into(),
            )),
            16 => {
                let verb = self.pick(&["UNSELECT", "CLOSE", "EXPUNGE", "NOOP", "CAPABILITY"]);
                line.extend(simple(verb.into()));
            }
            17 => line.extend(simple(
                self.pick(&[
                    "STARTTLS",
                    "NAMESPACE",
                    "ENABLE CONDSTORE",
                    "ID NIL",
                    "ENABLE UTF8=ACCEPT",
                ])
                .into(),
            )),
            _ => {
                let (from, to) = (self.mailbox(), self.mailbox());
                let verb = self.pick(&["RENAME", "COPY 1", "MOVE 1:*"]);
                let from = if verb == "RENAME" {
                    format!(" \"{from}\"")
                } else {
                    String::new()
                };
                line.extend(simple(format!("{verb}{from} \"{to}\"")));
            }
        }
        line.extend_from_slice(b"\r\n");
        parts.push(Part::Text(line));
        Sent {
            tag: Some(tag),
            parts,
        }
    }

    /// A session's commands: some before login (refused, or garbage), usually a login and a
    /// SELECT, then the rest.
    fn script(&mut self) -> Vec<Sent> {
        let mut script: Vec<Sent> = (0..self.below(3)).map(|_| self.command()).collect();
        if !self.chance(6) {
            script.push(self.login());
            if self.chance(3) {
                let tag = self.tag();
                let enable = format!("{tag} ENABLE UTF8=ACCEPT\r\n").into_bytes();
                script.push(Sent {
                    tag: Some(tag),
                    parts: vec![Part::Text(enable)],
                });
            }
            if !self.chance(4) {
                let tag = self.tag();
                let select = format!("{tag} SELECT INBOX\r\n").into_bytes();
                script.push(Sent {
                    tag: Some(tag),
                    parts: vec![Part::Text(select)],
                });
            }
        }
        script.extend((0..self.below(30)).map(|_| self.command()));
        script
    }
}

/// The server's output as logical lines (a line announcing a literal goes on after it), from
/// a task reading all of it.
async fn read_lines(
    mut stream: tokio::net::tcp::OwnedReadHalf,
    lines: mpsc::UnboundedSender<Vec<u8>>,
) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    // Where the part of the current line still to look at starts.
    let mut scan = 0;
    loop {
        while let Some(at) = memchr::memmem::find(&buf[scan..], b"\r\n") {
            let end = scan + at;
            match announced(&buf[scan..end]) {
                Some(n) if buf.len() < end + 2 + n => break, // the literal is still coming
                Some(n) => scan = end + 2 + n,
                None => {
                    let line: Vec<u8> = buf.drain(..end + 2).collect();
                    scan = 0;
                    if lines.send(line).is_err() {
                        return;
                    }
                }
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The size of the literal `segment` (a line, or what follows a literal) ends by announcing.
fn announced(segment: &[u8]) -> Option<usize> {
    let inner = segment.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&inner[open + 1..]).ok()?.parse().ok()
}

/// Sends `bytes` in random pieces.
async fn send(stream: &mut tokio::net::tcp::OwnedWriteHalf, bytes: &[u8], gen: &mut Gen) -> bool {
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = (1 + gen.below(300)).min(rest.len());
        if stream.write_all(&rest[..n]).await.is_err() {
            return false; // the server closed: fine, it said why (BYE)
        }
        rest = &rest[n..];
    }
    true
}

struct Transcript {
    lines: mpsc::UnboundedReceiver<Vec<u8>>,
    seen: Vec<Vec<u8>>,
}

impl Transcript {
    /// The next line, or None at the end of the connection.
    async fn line(&mut self) -> Option<Vec<u8>> {
        let line = tokio::time::timeout(HANG, self.lines.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no output for {HANG:?}: the session hangs; seen {:?}",
                    self.text()
                )
            })?;
        self.seen.push(line.clone());
        Some(line)
    }

    fn text(&self) -> String {
        self.seen
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    fn tagged(line: &[u8], tag: &str) -> bool {
        line.starts_with(format!("{tag} ").as_bytes())
    }

    /// Waits for the `+` of the sync literal of the command `tag`: true for `+`, false when
    /// the command was answered instead (or the connection ended). `unanswered` are the tags
    /// sent and not yet answered, `tag` last: a `+` before the earlier ones are answered is
    /// theirs (IDLE's, another literal's).
    async fn continuation(&mut self, tag: &str, unanswered: &mut VecDeque<String>) -> bool {
        loop {
            let Some(line) = self.line().await else {
                return false;
            };
            let Some(front) = unanswered.front() else {
                return false;
            };
            if Self::tagged(&line, front) {
                let done = front == tag;
                unanswered.pop_front();
                if done {
                    return false;
                }
            } else if front == tag && line.starts_with(b"+") {
                return true;
            }
        }
    }
}

/// One session: the script is sent, then LOGOUT (unless `raw`), then the client's end; the
/// session task must end (without a panic) and, unless `raw` or closed early, every tag be
/// answered in order.
async fn session(ctx: Arc<ImapContext>, gen: &mut Gen, raw: bool) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let client = TcpStream::connect(listener.local_addr().expect("addr"))
        .await
        .expect("connect");
    let (server, peer) = listener.accept().await.expect("accept");
    let (_stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(run_session(server, peer, ctx, false, shutdown));
    let (read, mut write) = client.into_split();
    let (lines_tx, lines_rx) = mpsc::unbounded_channel();
    tokio::spawn(read_lines(read, lines_tx));
    let mut transcript = Transcript {
        lines: lines_rx,
        seen: Vec::new(),
    };
    let mut script = gen.script();
    if !raw {
        script.push(Sent {
            tag: Some("bye".into()),
            parts: vec![Part::Text(b"bye LOGOUT\r\n".to_vec())],
        });
    }
    let mut sent_tags = Vec::new();
    let mut unanswered = VecDeque::new();
    'script: for command in &script {
        if let Some(tag) = &command.tag {
            sent_tags.push(tag.clone());
            unanswered.push_back(tag.clone());
        }
        for part in &command.parts {
            let bytes = match part {
                Part::Text(text) => text.clone(),
                Part::Sync(literal) if raw => literal.clone(), // sent blindly
                Part::Sync(literal) => {
                    let tag = command.tag.as_deref().unwrap_or("");
                    if !transcript.continuation(tag, &mut unanswered).await {
                        break; // refused: the literal must not come
                    }
                    literal.clone()
                }
            };
            let mut bytes = bytes;
            if raw && gen.chance(3) {
                let at = gen.below(bytes.len() + 1);
                let junk: Vec<u8> = (0..gen.below(40)).map(|_| (gen.next)() as u8).collect();
                bytes.splice(at..at, junk);
            }
            if !send(&mut write, &bytes, gen).await {
                break 'script;
            }
        }
    }
    let _ = write.shutdown().await;
    while transcript.line().await.is_some() {}
    match tokio::time::timeout(HANG, task).await {
        Err(_) => panic!("the session did not end; output {}", transcript.text()),
        Ok(Err(err)) => panic!(
            "the session task failed: {err}; output {}",
            transcript.text()
        ),
        Ok(Ok(())) => {}
    }
    if raw {
        return;
    }
    let byes = transcript
        .seen
        .iter()
        .filter(|l| l.starts_with(b"* BYE"))
        .count();
    if byes > 1 || !transcript.seen.iter().any(|l| Transcript::tagged(l, "bye")) {
        return; // the server closed early (too many errors, a refusal): it said so
    }
    let mut last = None;
    for tag in &sent_tags {
        let at = transcript
            .seen
            .iter()
            .position(|l| Transcript::tagged(l, tag));
        let Some(at) = at else {
            panic!("{tag} was not answered; output {}", transcript.text());
        };
        assert!(
            last < Some(at),
            "{tag} answered out of order; output {}",
            transcript.text()
        );
        last = Some(at);
    }
}

#[test]
fn random_sessions_never_panic_and_answer_everything() {
    let root: PathBuf =
        std::env::temp_dir().join(format!("icsmail-imap-random-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("temp dir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let ctx = context(&root);
        let mut gen = Gen {
            next: Box::new(crate::test_support::xorshift(0x7e57_1ca9_5e55_10f5)),
            count: 0,
        };
        for round in 0..SESSIONS {
            session(ctx.clone(), &mut gen, round % 4 == 3).await;
        }
    });
    let _ = std::fs::remove_dir_all(&root);
}

/// A `SEARCH` of exactly `total` bytes: LITERAL+ literals of `literal` bytes, then a last
/// quoted string that fills up.
fn search_of_size(tag: &str, total: usize, literal: usize) -> Vec<u8> {
    let mut command = Vec::new();
    let mut first = true;
    loop {
        let head = if first {
            format!("{tag} SEARCH TEXT")
        } else {
            " TEXT".to_string()
        };
        first = false;
        let announce = format!("{head} {{{literal}+}}\r\n");
        let last = b" TEXT \"\"\r\n".len();
        if command.len() + announce.len() + literal + last > total {
            let filler = total - command.len() - last;
            command.extend_from_slice(b" TEXT \"");
            command.extend(std::iter::repeat_n(b'y', filler));
            command.extend_from_slice(b"\"\r\n");
            return command;
        }
        command.extend_from_slice(announce.as_bytes());
        command.extend(std::iter::repeat_n(b'q', literal));
    }
}

/// Sends `bytes`, then reads until the line tagged `tag`; all lines read.
async fn exchange(
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    lines: &mut mpsc::UnboundedReceiver<Vec<u8>>,
    bytes: Vec<u8>,
    tag: &str,
) -> Vec<String> {
    write.write_all(&bytes).await.expect("send");
    until_tagged(lines, tag).await
}

/// Reads until the line tagged `tag`; all lines read.
async fn until_tagged(lines: &mut mpsc::UnboundedReceiver<Vec<u8>>, tag: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let line = tokio::time::timeout(HANG, lines.recv())
            .await
            .expect("the session hangs")
            .unwrap_or_else(|| panic!("closed before {tag}: {seen:?}"));
        let line = String::from_utf8_lossy(&line).into_owned();
        let done = line.starts_with(&format!("{tag} "));
        seen.push(line);
        if done {
            return seen;
        }
    }
}

/// The guard's command limits and imap-next's own (its backstop) agree: a command exactly at
/// the guard's limit is parsed by imap-next and answered as itself (no `BYE [TOOBIG]` from
/// imap-next), one byte more is refused by the guard and the session goes on.
#[test]
fn commands_at_the_limits_reach_imap_next() {
    use super::guard::{MAX_COMMAND, PRE_AUTH_MAX_COMMAND};
    let root: PathBuf =
        std::env::temp_dir().join(format!("icsmail-imap-limits-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("temp dir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let ctx = context(&root);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, peer) = listener.accept().await.expect("accept");
        let (_stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(run_session(server, peer, ctx, false, shutdown));
        let (read, mut write) = client.into_split();
        let (lines_tx, mut lines) = mpsc::unbounded_channel();
        tokio::spawn(read_lines(read, lines_tx));
        let limit = PRE_AUTH_MAX_COMMAND as usize;
        let at = exchange(
            &mut write,
            &mut lines,
            search_of_size("a1", limit, 4096),
            "a1",
        )
        .await;
        assert!(
            at.last().unwrap().starts_with("a1 BAD Log in first"),
            "{at:?}"
        );
        let over = exchange(
            &mut write,
            &mut lines,
            search_of_size("a2", limit + 1, 4096),
            "a2",
        )
        .await;
        assert!(
            over.last().unwrap().starts_with("a2 BAD [TOOBIG]"),
            "{over:?}"
        );
        exchange(
            &mut write,
            &mut lines,
            format!("l LOGIN {USER} pw\r\ns SELECT INBOX\r\n").into_bytes(),
            "s",
        )
        .await;
        let limit = MAX_COMMAND as usize;
        let at = exchange(
            &mut write,
            &mut lines,
            search_of_size("b1", limit, 60 * 1024),
            "b1",
        )
        .await;
        assert!(at.last().unwrap().starts_with("b1 OK"), "{at:?}");
        let over = exchange(
            &mut write,
            &mut lines,
            search_of_size("b2", limit + 1, 60 * 1024),
            "b2",
        )
        .await;
        assert!(
            over.last().unwrap().starts_with("b2 BAD [TOOBIG]"),
            "{over:?}"
        );
        let after = exchange(&mut write, &mut lines, b"c LOGOUT\r\n".to_vec(), "c").await;
        assert!(after.last().unwrap().starts_with("c OK"), "{after:?}");
        drop(write);
        tokio::time::timeout(HANG, task)
            .await
            .expect("the session did not end")
            .expect("the session task failed");
    });
    let _ = std::fs::remove_dir_all(&root);
}
