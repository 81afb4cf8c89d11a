//! The POP3 core (`pop3::proto`), as a client would drive it.

use super::alphabet::{spell, Feed};
use crate::pop3::proto::{LoginError, MessageInfo, Security, Session, Step};

const WORDS: &[&[u8]] = &[
    b"USER alice\r\n",
    b"PASS pw\r\n",
    b"PASS x\r\n",
    b"AUTH PLAIN\r\n",
    b"AUTH PLAIN AGFsaWNlAHB3\r\n",
    b"AGFsaWNlAHB3\r\n",
    b"*\r\n",
    b"STLS\r\n",
    b"CAPA\r\n",
    b"STAT\r\n",
    b"LIST",
    b"UIDL",
    b"RETR ",
    b"TOP ",
    b"DELE ",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"QUIT\r\n",
    b" 1",
    b" 2",
    b" 0",
    b" 4294967296",
    b" 18446744073709551616",
    b"\r\n",
];

const MESSAGES: [&[u8]; 2] = [
    b"Subject: one\r\n\r\nfirst\r\n.dotted\r\n",
    b"Subject: two\r\n\r\nno final line end",
];

/// `data[0]`: the alphabet mode; `data[1]`: the security and read sizes; the rest: the client.
pub fn session(data: &[u8]) {
    let Some((&setup, rest)) = data.split_first() else {
        return;
    };
    let input = spell(rest, WORDS);
    let security = Security {
        stls: setup & 1 == 1,
        auth_in_plaintext: setup & 2 == 2,
    };
    let mut session = Session::new(security, 50);
    let mut feed = Feed::new(&input, setup);
    loop {
        feed.step();
        match session.step() {
            Step::Reply(_) | Step::Refuse(_) => {}
            Step::StartTls => session.tls_started(),
            Step::Authenticate(credentials) => session.logged_in(match credentials.password {
                password if password == b"pw" => Ok(MESSAGES
                    .iter()
                    .enumerate()
                    .map(|(i, m)| MessageInfo {
                        uid: format!("uid{i}"),
                        size: m.len() as u64,
                    })
                    .collect()),
                _ => Err(LoginError::Invalid),
            }),
            Step::Retrieve { index, top } => {
                let message = MESSAGES.get(index).expect("a message that was listed");
                session.message(index, top, Ok(message.to_vec()));
            }
            Step::Update(doomed) => {
                assert!(
                    doomed.iter().all(|&i| i < MESSAGES.len()),
                    "deleting what isn't there"
                );
                session.updated(Ok(()));
            }
            Step::NeedInput => match feed.next_read() {
                Some(bytes) => session.push_input(bytes),
                None => return,
            },
            Step::Close => return,
        }
    }
}
