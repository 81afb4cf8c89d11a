//! The whole IMAP session after login (`imap::session::run_session`), over loopback TCP in a
//! runtime made once per process, against a fresh store per input (three messages in INBOX,
//! one of them multipart, and the default folders) with the real authenticator (one per
//! process: after the first login a login is a remembered one, no hash).
//!
//! `data[0]` picks where the session starts (logged in; INBOX selected, read-write or with
//! EXAMINE; after ENABLE UTF8=ACCEPT, QRESYNC or IMAP4rev2) and the alphabet mode, `data[1]`
//! how the client's bytes are cut into writes; the rest is what the client sends, high bytes
//! standing for protocol words (`alphabet::spell`). The harness then sends `DONE` and a
//! tagged LOGOUT and closes its side.
//!
//! Properties: the session ends once the client has closed (a hang is the fuzzer's timeout);
//! no panic; and every tagged reply answers a command line the client sent, in the order
//! sent: the tags of the server's tagged replies are a subsequence of the tokens that start
//! the client's lines (literal bytes that look like lines only make the check more lenient).
//! After `COMPRESS DEFLATE` the output is compressed and not checked further.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::watch;

use super::alphabet::{spell, Reads};
use crate::address::Address;
use crate::auth::Authenticator;
use crate::imap::context::ImapContext;
use crate::imap::one_account::{one_account, OneAccount, USER};
use crate::imap::session::run_session;
use crate::settings::Live;
use crate::store::MailStore;

const WORDS: &[&[u8]] = &[
    b"s1 SELECT INBOX\r\n",
    b"s2 EXAMINE INBOX\r\n",
    b"s3 SELECT \"Sent\" (CONDSTORE)\r\n",
    b"s4 SELECT INBOX (QRESYNC (1 1 1:5))\r\n",
    b"f1 FETCH 1:* (FLAGS BODY[] BODYSTRUCTURE ENVELOPE)\r\n",
    b"f2 UID FETCH 1:* (BINARY[1] BINARY.SIZE[2] BODY.PEEK[2.MIME] RFC822.SIZE)\r\n",
    b"f3 FETCH 2 (BODY[HEADER.FIELDS (SUBJECT FROM)] BODY[1]<2.5> INTERNALDATE UID)\r\n",
    b"f4 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)\r\n",
    b"t1 STORE 1:* +FLAGS (\\Seen $Work)\r\n",
    b"t2 UID STORE 2 -FLAGS.SILENT (\\Seen)\r\n",
    b"t3 STORE 1 +FLAGS (\\Deleted)\r\n",
    b"t4 STORE 1:2 (UNCHANGEDSINCE 3) FLAGS (\\Flagged)\r\n",
    b"q1 UID SEARCH ",
    b"q2 SEARCH RETURN (MIN MAX COUNT SAVE) ",
    b"ALL",
    b"TEXT \"hello\"",
    b"OR SEEN HEADER Subject \"caf\xc3\xa9\"",
    b"CHARSET UTF-8 BODY ",
    b"UID $",
    b"1:*",
    b" ",
    b"c1 COPY 1:* Sent\r\n",
    b"c2 UID MOVE 2 \"Work\"\r\n",
    b"c3 COPY $ Trash\r\n",
    b"x1 EXPUNGE\r\n",
    b"x2 UID EXPUNGE 1:3\r\n",
    b"x3 CLOSE\r\n",
    b"x4 UNSELECT\r\n",
    b"i1 IDLE\r\n",
    b"DONE\r\n",
    b"a1 APPEND INBOX ",
    b"a2 APPEND Sent (\\Seen) \"14-Jul-2021 02:44:25 +0200\" ",
    b"a3 APPEND INBOX ",
    b"UTF8 (~",
    b"CATENATE (URL \"/INBOX/;UID=1\" TEXT ",
    b"{5}\r\n",
    b"{20+}\r\n",
    b"~{4+}\r\n",
    b"{70000+}\r\n",
    b"{4294967296}\r\n",
    b"Subject: x\r\n\r\nbody\r\n",
    b")",
    b"l1 LIST \"\" \"*\"\r\n",
    b"l2 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (\"*\" \"%\") RETURN (CHILDREN STATUS (MESSAGES UNSEEN))\r\n",
    b"l3 LIST \"\" \"%\" RETURN (SPECIAL-USE)\r\n",
    b"l4 LSUB \"\" \"*\"\r\n",
    b"l5 STATUS INBOX (MESSAGES UIDNEXT UNSEEN HIGHESTMODSEQ APPENDLIMIT SIZE)\r\n",
    b"m1 CREATE Work\r\n",
    b"m2 CREATE \"Work.Sub\" (USE (\\Archive))\r\n",
    b"m3 RENAME Work Play\r\n",
    b"m4 DELETE Work\r\n",
    b"m5 SUBSCRIBE \"Entw&APw-rfe\"\r\n",
    b"m6 CREATE \"caf\xc3\xa9\"\r\n",
    b"n1 NOOP\r\n",
    b"n2 CHECK\r\n",
    b"n3 NAMESPACE\r\n",
    b"n4 GETQUOTAROOT INBOX\r\n",
    b"n5 ENABLE CONDSTORE QRESYNC UTF8=ACCEPT\r\n",
    b"n6 SORT (REVERSE ARRIVAL) UTF-8 ALL\r\n",
    b"n7 ID (\"name\" \"fuzz\")\r\n",
    b"z1 COMPRESS DEFLATE\r\n",
    b"z2 LOGOUT\r\n",
    b"\r\n",
    b"\"",
    b"\xc3\xa9",
];

/// Where a session starts, by `data[0] >> 1`: what the harness sends before the input.
const STARTS: &[&[u8]] = &[
    b"",
    b"p1 SELECT INBOX\r\n",
    b"p1 EXAMINE INBOX\r\n",
    b"p1 ENABLE UTF8=ACCEPT\r\np2 SELECT INBOX\r\n",
    b"p1 ENABLE QRESYNC\r\np2 SELECT INBOX (QRESYNC (1 1))\r\n",
    b"p1 ENABLE IMAP4rev2\r\np2 SELECT INBOX\r\n",
    b"p1 ENABLE CONDSTORE\r\np2 EXAMINE Sent\r\n",
    b"p1 SELECT INBOX\r\np2 IDLE\r\n",
];

const MESSAGES: &[&[u8]] = &[
    b"From: Bob <bob@example.test>\r\nTo: alice@example.test\r\nSubject: hello\r\n\
      Date: Tue, 14 Jul 2021 02:44:25 +0200\r\nMessage-ID: <1@example.test>\r\n\r\n\
      hello there\r\n",
    b"From: =?utf-8?q?Ren=C3=A9?= <rene@example.test>\r\nTo: alice@example.test\r\n\
      Subject: =?utf-8?b?Y2Fmw6k=?=\r\nMIME-Version: 1.0\r\n\
      Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\n\
      Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
      caf=C3=A9 au lait\r\n--b1\r\nContent-Type: message/rfc822\r\n\r\n\
      Subject: inner\r\n\r\ninner body\r\n--b1\r\n\
      Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n\
      AAECAwQFBgc=\r\n--b1--\r\n",
    b"Subject: 8bit \xc3\xa9\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n",
];

struct Fixture {
    runtime: Runtime,
    live: Arc<Live>,
    authenticator: Arc<Authenticator>,
    root: PathBuf,
    next: AtomicU64,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let root = base.join(format!("icsmail-fuzz-imap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("fuzz store");
        let OneAccount {
            source,
            settings,
            authenticator,
        } = one_account(&root, "fuzz");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Fixture {
            runtime,
            live: Arc::new(Live::new(source, settings)),
            authenticator,
            root,
            next: AtomicU64::new(0),
        }
    })
}

pub fn session(data: &[u8]) {
    let [setup, cuts, rest @ ..] = data else {
        return;
    };
    let start = STARTS[usize::from(setup >> 1) % STARTS.len()];
    let mut sent = format!("p0 LOGIN {USER} pw\r\n").into_bytes();
    sent.extend_from_slice(start);
    let mut spelled = vec![*setup & 1];
    spelled.extend_from_slice(rest);
    sent.extend(spell(&spelled, WORDS));
    sent.extend_from_slice(b"\r\nDONE\r\nzz LOGOUT\r\n");

    let fixture = fixture();
    let dir = fixture
        .root
        .join(fixture.next.fetch_add(1, Ordering::Relaxed).to_string());
    let ctx = context(&dir);
    let output = fixture.runtime.block_on(exchange(ctx, &sent, *cuts));
    let _ = std::fs::remove_dir_all(&dir);
    check_order(&sent, &output);
}

/// A context for one session: the process's settings and authenticator, a new store at
/// `dir` with the messages in INBOX (in the LF form a delivery stores).
fn context(dir: &std::path::Path) -> Arc<ImapContext> {
    let fixture = fixture();
    let store = Arc::new(MailStore::new(
        dir.to_path_buf(),
        fixture.live.load().storage.default_folders.clone(),
    ));
    let alice = Address::parse(USER).expect("address");
    for message in MESSAGES {
        let stored = String::from_utf8_lossy(message).replace("\r\n", "\n");
        store
            .deliver(std::slice::from_ref(&alice), stored.as_bytes())
            .expect("deliver");
    }
    Arc::new(ImapContext::new(
        fixture.live.clone(),
        fixture.authenticator.clone(),
        store,
        None,
    ))
}

/// Runs a session with `sent` as the client's bytes, in writes cut by `cuts`, then closes the
/// client's side; the server's output once it has closed its side.
async fn exchange(ctx: Arc<ImapContext>, sent: &[u8], cuts: u8) -> Vec<u8> {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let client = TcpStream::connect(listener.local_addr().expect("addr"))
        .await
        .expect("connect");
    let (server, _) = listener.accept().await.expect("accept");
    // A peer of its own per session would not matter: logins succeed (no slowdown).
    let peer: SocketAddr = "192.0.2.7:40000".parse().expect("peer");
    let (_stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(run_session(server, peer, ctx, false, shutdown));
    let (mut read, mut write) = client.into_split();
    let sent = sent.to_vec();
    let writer = tokio::spawn(async move {
        let mut reads = Reads::new(cuts);
        let mut rest = &sent[..];
        while !rest.is_empty() {
            let n = (reads.next_len() * 8).min(rest.len());
            if write.write_all(&rest[..n]).await.is_err() {
                return; // the server closed (BYE): fine
            }
            rest = &rest[n..];
            tokio::task::yield_now().await;
        }
        let _ = write.shutdown().await;
    });
    let mut output = Vec::new();
    let _ = read.read_to_end(&mut output).await;
    if let Err(err) = task.await {
        std::panic::resume_unwind(err.into_panic());
    }
    let _ = writer.await;
    output
}

/// The tags of the server's tagged replies are a subsequence of the tokens that start the
/// client's lines.
fn check_order(sent: &[u8], output: &[u8]) {
    let mut candidates = std::iter::once(0)
        .chain(memchr::memchr_iter(b'\n', sent).map(|at| at + 1))
        .filter_map(|at| {
            let line = &sent[at..];
            let end = line.iter().position(|&b| b == b' ')?;
            Some(&line[..end])
        });
    for tag in tagged_replies(output) {
        assert!(
            candidates.any(|c| c == tag),
            "tagged reply {:?} answers no command line sent after the one answered before; \
             output: {}",
            String::from_utf8_lossy(tag),
            String::from_utf8_lossy(output)
        );
    }
}

/// The tags of the tagged lines of `output`, literal contents skipped; up to a COMPRESS's OK.
fn tagged_replies(output: &[u8]) -> Vec<&[u8]> {
    let mut tags = Vec::new();
    let mut at = 0;
    // The segment after a literal goes on with the same line: no tag there.
    let mut continuing = false;
    while let Some(len) = memchr::memmem::find(&output[at..], b"\r\n") {
        let line = &output[at..at + len];
        at += len + 2;
        let starts = !continuing;
        continuing = false;
        if let Some(n) = announced(line) {
            at = (at + n).min(output.len());
            continuing = true;
        }
        if !starts {
            continue;
        }
        let tag = line.split(|&b| b == b' ').next().unwrap_or_default();
        if !tag.is_empty() && tag != b"*" && tag != b"+" {
            tags.push(tag);
            if line.ends_with(b" OK DEFLATE active") {
                break;
            }
        }
    }
    tags
}

/// The size of the literal a line ends by announcing.
fn announced(line: &[u8]) -> Option<usize> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&inner[open + 1..]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The harness reaches the selected state and its replies: a real session, not a refusal
    /// at the door.
    #[test]
    fn a_session_logs_in_selects_and_fetches() {
        let fixture = fixture();
        let dir = fixture.root.join("test-session");
        let ctx = context(&dir);
        let sent = format!(
            "p0 LOGIN {USER} pw\r\np1 SELECT INBOX\r\nf1 FETCH 1:* (BODY[1] BODYSTRUCTURE)\r\n\
             a1 APPEND INBOX {{3+}}\r\nabc\r\nzz LOGOUT\r\n"
        );
        let output = fixture.runtime.block_on(exchange(ctx, sent.as_bytes(), 5));
        let _ = std::fs::remove_dir_all(&dir);
        let text = String::from_utf8_lossy(&output);
        assert!(text.contains("* 3 EXISTS"), "{text}");
        assert!(text.contains("caf=C3=A9 au lait"), "{text}");
        let tags = tagged_replies(&output);
        assert_eq!(tags, [&b"p0"[..], b"p1", b"f1", b"a1", b"zz"], "{text}");
        check_order(sent.as_bytes(), &output);
    }

    #[test]
    fn replies_out_of_order_or_to_nothing_fail_the_check() {
        let sent = b"a NOOP\r\nb NOOP\r\n";
        check_order(sent, b"* OK hi\r\na OK\r\nb OK\r\n");
        for output in [
            &b"b OK\r\na OK\r\n"[..],
            b"a OK\r\nc OK\r\n",
            b"a OK\r\na OK\r\n",
        ] {
            let outcome = std::panic::catch_unwind(|| check_order(sent, output));
            assert!(
                outcome.is_err(),
                "{:?} passed",
                String::from_utf8_lossy(output)
            );
        }
        // A literal's lines are not replies.
        check_order(sent, b"* 1 FETCH (BODY[] {7}\r\nc x\r\n\r\n)\r\nb OK\r\n");
    }
}
