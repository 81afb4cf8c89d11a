//! The SMTP server core (`smtp::proto`), as a client would drive it.

use super::alphabet::{spell, Feed};
use crate::address::Address;
use crate::auth::Recipient;
use crate::policy::Verdict;
use crate::smtp::proto::{RecipientResolver, Security, Session, SessionParams, Step};
use crate::smtp::reply::Reply;

/// The protocol's words, for `alphabet::spell`.
const WORDS: &[&[u8]] = &[
    b"EHLO c.test\r\n",
    b"HELO c\r\n",
    b"MAIL FROM:<s@remote.test>",
    b"MAIL FROM:<> SMTPUTF8 BODY=8BITMIME SIZE=99",
    b"RCPT TO:<alice@local.test>",
    b"RCPT TO:<x@remote.test> NOTIFY=NEVER",
    b"RCPT TO:<nobody@local.test>\r\n",
    b"DATA\r\n",
    b"\r\n.\r\n",
    b"BDAT 5\r\n",
    b"BDAT 0 LAST\r\n",
    b"BDAT 18446744073709551615 LAST\r\n",
    b"AUTH PLAIN ",
    b"AUTH LOGIN\r\n",
    b"AGFsaWNlQGxvY2FsLnRlc3QAcHc=\r\n",
    b"STARTTLS\r\n",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"VRFY alice\r\n",
    b"QUIT\r\n",
    b"\r\n",
    b".\r\n",
    b"..",
    b"\xc3\xa9",
    b"<",
    b">",
    b"=",
    b"*\r\n",
];

/// The maximum message size of the session: small, so the size limit is reached.
const MAX_MESSAGE: usize = 2000;

struct Local;

impl RecipientResolver for Local {
    fn resolve(&self, address: &Address) -> Recipient {
        match (address.local(), address.domain()) {
            ("alice", "local.test") => Recipient::Local(address.clone()),
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

/// `data[0]`: the alphabet mode; `data[1]`: the security and the read sizes; the rest: what
/// the client sends. Logins succeed for password `pw`, TLS handshakes always.
pub fn session(data: &[u8]) {
    let Some((&setup, rest)) = data.split_first() else {
        return;
    };
    let input = spell(rest, WORDS);
    let mut session = Session::new(SessionParams {
        hostname: "mx.local.test".into(),
        max_message_size: MAX_MESSAGE,
        smtputf8: setup & 1 == 1,
        max_recipients: 3,
        max_errors: 50,
        peer_ip: "192.0.2.1".into(),
        security: Security {
            starttls: setup & 2 == 2,
            auth_in_plaintext: setup & 4 == 4,
            submission: setup & 8 == 8,
        },
    });
    let mut feed = Feed::new(&input, setup);
    loop {
        feed.step();
        match session.next(&Local) {
            Step::Reply(_) | Step::Refuse(_) => {}
            Step::Check => session.checked(Verdict::Accept),
            Step::StartTls => session.tls_started(),
            Step::Authenticate(credentials) => {
                let ok = credentials.password == b"pw";
                session.auth_result(
                    ok.then(|| Address::parse("alice@local.test").ok())
                        .flatten(),
                );
            }
            Step::Deliver(tx) => {
                assert!(
                    tx.body.len() <= MAX_MESSAGE,
                    "a message over the size limit was accepted"
                );
                assert!(
                    !tx.accounts.is_empty() || !tx.remote.is_empty(),
                    "a message without recipients"
                );
                session.delivered(Ok(Reply::new(250, [2, 0, 0], "queued")));
            }
            Step::NeedInput => match feed.next_read() {
                Some(bytes) => session.push_input(bytes),
                None => return,
            },
            Step::Close => return,
        }
    }
}
