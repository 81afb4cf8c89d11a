//! The LDAP address book: BER framing and ldap3_proto's decoder as the session runs them, then
//! every request through the protocol core (`ldap::proto`) with its filters and searches, on
//! a directory of three accounts. Binds always succeed, so the searches of a bound client are
//! reached too.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use bytes::BytesMut;
use ldap3_proto::LdapCodec;

use crate::address::Address;
use crate::auth::{Directory, StoredHash};
use crate::ldap::bounds::{MAX_BER_DEPTH, MAX_REQUEST};
use crate::ldap::entries::Book;
use crate::ldap::proto::{Conditions, Session, Step};
use crate::ldap::session::take_request;

/// The directory and its book, built once.
fn directory() -> &'static (Directory, Book) {
    static BUILT: OnceLock<(Directory, Book)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let config = crate::config::load::parse(
            r#"{"domains":["example.test"],"accounts":{
                "alice@example.test":{"displayName":"Alice Liddell","aliases":["al@example.test"]},
                "bob@example.test":{"displayName":"Bob  van   Builder"},
                "carol@example.test":{}}}"#,
        )
        .expect("the fuzz directory's configuration");
        let hashes: BTreeMap<String, StoredHash> = config
            .accounts
            .keys()
            .map(|key| (key.clone(), StoredHash::Argon2id("unused".into())))
            .collect();
        let directory = Directory::new(&config, &hashes);
        let book = Book::build(
            &directory,
            "dc=example,dc=test; ou=People,dc=example,dc=org",
        );
        (directory, book)
    })
}

/// `data[0]`: the connection's TLS and the book's publication; the rest: what the client
/// sends, taken request by request as the session takes it.
pub fn request(data: &[u8]) {
    let Some((&setup, rest)) = data.split_first() else {
        return;
    };
    let (directory, book) = directory();
    let now = Conditions {
        book,
        directory,
        peer: "192.0.2.7".parse().expect("an address"),
        publish_to_clients: setup & 1 == 1,
        starttls_offered: setup & 2 == 2,
        passwords_allowed: setup & 4 == 4,
    };
    let mut session = Session::new(setup & 8 == 8);
    let mut input = BytesMut::from(rest);
    let mut codec = LdapCodec::new(Some(MAX_REQUEST), Some(MAX_BER_DEPTH));
    while let Ok(Some(message)) = take_request(&mut input, &mut codec) {
        match session.handle(message, &now) {
            Ok(Step::Authenticate { msgid, .. }) => {
                let alice = Address::parse("alice@example.test").expect("an address");
                let _ = session.bound(msgid, Ok(alice));
            }
            Ok(Step::StartTls(_)) => session.tls_started(),
            Ok(Step::Close) | Err(_) => return,
            Ok(Step::Send(_)) => {}
        }
    }
}
