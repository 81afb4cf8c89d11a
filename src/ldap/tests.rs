//! Unit tests of the pieces that need no socket: framing bounds, DNs, the book, filters,
//! searches (scopes, attributes, limits, pages), access and binds. The wire is tested with
//! real clients in tests/integration/test_ldap.py.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ldap3_proto::control::LdapControl;
use ldap3_proto::parse_ldap_filter_str;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindRequest, LdapDerefAliases, LdapFilter, LdapMatchingRuleAssertion,
    LdapResultCode, LdapSearchRequest, LdapSearchScope, LdapSubstringFilter,
};

use super::access::{may_read_entries, Denial, Identity};
use super::bind::{classify, login_of, Attempt};
use super::bounds::{
    self, check_filter, frame_length, FilterError, FrameError, MAX_REQUEST, MAX_TIME_LIMIT,
};
use super::dn::Dn;
use super::entries::{Book, Entry};
use super::filter::{evaluate, Truth};
use super::search::{self, View};
use crate::address::Address;
use crate::auth::{Directory, StoredHash};
use crate::config::load::parse;

const BASES: &str = "dc=example,dc=test; ou=People,dc=example,dc=org";

fn directory() -> Directory {
    let config = parse(
        r#"{"domains":["example.test"],"accounts":{
            "alice@example.test":{"displayName":"Alice Liddell","aliases":["al@example.test","a.liddell@example.test"]},
            "bob@example.test":{"displayName":"Bob  van   Builder"},
            "carol@example.test":{}
        }}"#,
    )
    .unwrap();
    let hashes: BTreeMap<String, StoredHash> = config
        .accounts
        .keys()
        .map(|key| (key.clone(), StoredHash::Argon2id("unused".into())))
        .collect();
    Directory::new(&config, &hashes)
}

fn book() -> Book {
    Book::build(&directory(), BASES)
}

fn entry<'a>(book: &'a Book, dn: &str) -> &'a Entry {
    book.find(&Dn::parse(dn).unwrap()).unwrap()
}

fn filter(text: &str) -> LdapFilter {
    parse_ldap_filter_str(text).unwrap_or_else(|err| panic!("{text}: {err:?}"))
}

fn matches(text: &str, entry: &Entry) -> Truth {
    evaluate(&filter(text), entry)
}

#[test]
fn frames_are_sized_from_their_header() {
    assert_eq!(frame_length(&[]), Ok(None));
    assert_eq!(frame_length(&[0x30]), Ok(None));
    assert_eq!(frame_length(&[0x30, 0x05]), Ok(Some(7)));
    assert_eq!(frame_length(&[0x30, 0x82, 0x01]), Ok(None));
    assert_eq!(frame_length(&[0x30, 0x82, 0x01, 0x00]), Ok(Some(4 + 256)));
    // Refused before the body arrives: the header alone says it is too big.
    assert_eq!(
        frame_length(&[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff]),
        Err(FrameError::TooLarge(0x7fff_ffff + 6))
    );
    let just = (MAX_REQUEST - 4) as u16;
    let [high, low] = just.to_be_bytes();
    assert_eq!(
        frame_length(&[0x30, 0x82, high, low]),
        Ok(Some(MAX_REQUEST))
    );
    let [high, low] = (just + 1).to_be_bytes();
    assert!(frame_length(&[0x30, 0x82, high, low]).is_err());
    assert_eq!(
        frame_length(b"GET / HTTP/1.1"),
        Err(FrameError::NotASequence)
    );
    assert_eq!(frame_length(&[0x30, 0x80]), Err(FrameError::BadLength));
    assert_eq!(
        frame_length(&[0x30, 0x85, 1, 1, 1, 1, 1]),
        Err(FrameError::BadLength)
    );
}

#[test]
fn filters_are_bounded_in_depth_and_size() {
    let mut deep = LdapFilter::Present("cn".into());
    for _ in 0..bounds::MAX_FILTER_DEPTH - 1 {
        deep = LdapFilter::Not(Box::new(deep));
    }
    assert_eq!(check_filter(&deep), Ok(()));
    let deeper = LdapFilter::Not(Box::new(deep));
    assert_eq!(check_filter(&deeper), Err(FilterError::TooDeep));
    let wide = LdapFilter::Or(
        (0..bounds::MAX_FILTER_ITEMS)
            .map(|i| LdapFilter::Equality("cn".into(), i.to_string()))
            .collect(),
    );
    assert_eq!(check_filter(&wide), Err(FilterError::TooManyItems));
}

#[test]
fn dns_compare_without_case_or_spaces() {
    let a = Dn::parse("UID=Alice@Example.test , DC=Example,dc=test").unwrap();
    let b = Dn::parse("uid=alice@example.test,dc=example,dc=test").unwrap();
    assert_eq!(a, b);
    let base = Dn::parse("dc=example,dc=test").unwrap();
    assert!(a.is_child_of(&base) && a.is_within(&base) && !base.is_within(&a));
    assert!(a.is_within(&Dn::root()));
    assert_eq!(
        Dn::parse(r"cn=Smith\, John,dc=x").unwrap(),
        Dn::parse(r"cn=smith\2c john,dc=x").unwrap()
    );
    assert!(Dn::parse("not a dn").is_err());
    assert!(Dn::parse("").unwrap().is_root());
}

#[test]
fn the_book_has_every_mailbox_under_every_base() {
    let book = book();
    assert_eq!(
        book.naming_contexts(),
        ["dc=example,dc=test", "ou=People,dc=example,dc=org"]
    );
    // Two bases, three mailboxes.
    assert_eq!(book.entries().len(), 2 * (1 + 3));
    let alice = entry(&book, "uid=alice@example.test,ou=people,dc=example,dc=org");
    assert_eq!(
        alice.text,
        "uid=alice@example.test,ou=People,dc=example,dc=org"
    );
    assert_eq!(alice.values("cn").unwrap(), ["Alice Liddell"]);
    assert_eq!(alice.values("givenName").unwrap(), ["Alice"]);
    assert_eq!(alice.values("sn").unwrap(), ["Liddell"]);
    assert_eq!(
        alice.values("mail").unwrap(),
        [
            "alice@example.test",
            "a.liddell@example.test",
            "al@example.test"
        ]
    );
    let bob = entry(&book, "uid=bob@example.test,dc=example,dc=test");
    assert_eq!(bob.values("givenName").unwrap(), ["Bob van"]);
    assert_eq!(bob.values("sn").unwrap(), ["Builder"]);
    let carol = entry(&book, "uid=carol@example.test,dc=example,dc=test");
    assert_eq!(carol.values("cn").unwrap(), ["carol"]);
    assert_eq!(carol.values("sn").unwrap(), ["carol"]);
    assert!(carol.values("givenName").is_none() && carol.values("displayName").is_none());
    let base = entry(&book, "ou=people,dc=example,dc=org");
    assert_eq!(
        base.values("objectClass").unwrap(),
        ["top", "organizationalUnit"]
    );
    assert_eq!(base.values("ou").unwrap(), ["People"]);
    assert_eq!(
        entry(&book, "dc=example,dc=test").values("dc").unwrap(),
        ["example"]
    );
}

#[test]
fn filters_of_the_autocompleting_clients() {
    let book = book();
    let alice = entry(&book, "uid=alice@example.test,dc=example,dc=test");
    let bob = entry(&book, "uid=bob@example.test,dc=example,dc=test");
    // Thunderbird
    let thunderbird = "(|(cn=al*)(givenName=al*)(sn=al*)(mail=al*))";
    assert_eq!(matches(thunderbird, alice), Truth::True);
    assert_eq!(matches(thunderbird, bob), Truth::False);
    // Outlook
    let outlook = "(&(mail=*)(|(mail=LID*)(cn=LID*)(sn=LID*)(givenName=LID*)(displayName=LID*)))";
    assert_eq!(matches(outlook, alice), Truth::True);
    // Roundcube (fuzzy search), Apple Contacts
    assert_eq!(matches("(|(mail=*iddel*)(cn=*iddel*))", alice), Truth::True);
    assert_eq!(
        matches("(&(objectClass=inetOrgPerson)(cn=*VAN*))", bob),
        Truth::True
    );
    // Aliases are further mail values.
    assert_eq!(matches("(mail=AL@example.test)", alice), Truth::True);
}

#[test]
fn every_filter_type_in_three_valued_logic() {
    let book = book();
    let bob = entry(&book, "uid=bob@example.test,dc=example,dc=test");
    // (ldap3_proto's filter-string parser takes no spaces in values: built by hand here.)
    let eq = |value: &str| LdapFilter::Equality("cn".into(), value.into());
    assert_eq!(evaluate(&eq("bob van builder"), bob), Truth::True);
    assert_eq!(evaluate(&eq("  Bob   van builder "), bob), Truth::True);
    let approx = LdapFilter::Approx("cn".into(), "BOB VAN BUILDER".into());
    assert_eq!(evaluate(&approx, bob), Truth::True);
    assert_eq!(matches("(cn=b*v*r)", bob), Truth::True);
    assert_eq!(matches("(cn=b*r*v)", bob), Truth::False);
    // Parts may not overlap: "ab*ba" does not match "aba".
    assert_eq!(matches("(sn=build*ilder)", bob), Truth::False);
    assert_eq!(matches("(sn>=builder)", bob), Truth::True);
    assert_eq!(matches("(sn>=c)", bob), Truth::False);
    assert_eq!(matches("(sn<=c)", bob), Truth::True);
    assert_eq!(matches("(objectClass=*)", bob), Truth::True);
    assert_eq!(matches("(givenName=*)", bob), Truth::True);
    assert_eq!(matches("(commonName=bob*)", bob), Truth::True);
    let by_oid = LdapFilter::Equality("2.5.4.3".into(), "Bob van Builder".into());
    assert_eq!(evaluate(&by_oid, bob), Truth::True);
    // A known type the entry lacks is false, an unknown one Undefined; `!` keeps Undefined.
    assert_eq!(matches("(telephoneNumber=1)", bob), Truth::False);
    assert_eq!(matches("(!(telephoneNumber=1))", bob), Truth::True);
    assert_eq!(matches("(frobnicate=1)", bob), Truth::Undefined);
    assert_eq!(matches("(!(frobnicate=1))", bob), Truth::Undefined);
    assert_eq!(matches("(|(frobnicate=1)(cn=bob*))", bob), Truth::True);
    assert_eq!(matches("(&(frobnicate=1)(cn=x*))", bob), Truth::False);
    assert_eq!(matches("(&(frobnicate=1)(cn=bob*))", bob), Truth::Undefined);
    // The absolute true and false filters of RFC 4526.
    assert_eq!(evaluate(&LdapFilter::And(vec![]), bob), Truth::True);
    assert_eq!(evaluate(&LdapFilter::Or(vec![]), bob), Truth::False);
    let rule = |rule: Option<&str>, kind: Option<&str>, value: &str| {
        LdapFilter::Extensible(LdapMatchingRuleAssertion {
            matching_rule: rule.map(String::from),
            type_: kind.map(String::from),
            match_value: value.into(),
            dn_attributes: false,
        })
    };
    let exact = Some("caseExactMatch");
    assert_eq!(
        evaluate(&rule(exact, Some("cn"), "Bob van Builder"), bob),
        Truth::True
    );
    assert_eq!(
        evaluate(&rule(exact, Some("cn"), "bob van builder"), bob),
        Truth::False
    );
    let ignore = Some("2.5.13.2");
    assert_eq!(
        evaluate(&rule(ignore, Some("cn"), "BOB VAN BUILDER"), bob),
        Truth::True
    );
    assert_eq!(evaluate(&rule(None, None, "BUILDER"), bob), Truth::True);
    assert_eq!(
        evaluate(&rule(Some("1.2.3.4"), Some("cn"), "x"), bob),
        Truth::Undefined
    );
    let substring = LdapFilter::Substring(
        "mail".into(),
        LdapSubstringFilter {
            initial: None,
            any: vec![],
            final_: Some("@EXAMPLE.TEST".into()),
        },
    );
    assert_eq!(evaluate(&substring, bob), Truth::True);
}

fn search_request(base: &str, scope: LdapSearchScope, filter_text: &str) -> LdapSearchRequest {
    LdapSearchRequest {
        base: base.into(),
        scope,
        aliases: LdapDerefAliases::Never,
        sizelimit: 0,
        timelimit: 0,
        typesonly: false,
        filter: filter(filter_text),
        attrs: vec![],
    }
}

fn open_view(book: &Book) -> View<'_> {
    View {
        book,
        entries: Ok(()),
        starttls: true,
    }
}

fn dns(outcome: &search::Outcome) -> Vec<&str> {
    outcome.entries.iter().map(|e| e.dn.as_str()).collect()
}

#[test]
fn a_search_whose_time_is_up_is_time_limit_exceeded() {
    let book = book();
    let view = open_view(&book);
    let mut request = search_request(
        "dc=example,dc=test",
        LdapSearchScope::Subtree,
        "(objectClass=*)",
    );
    request.timelimit = 1;
    let ago = |by: Duration| {
        Instant::now()
            .checked_sub(by)
            .expect("the clock started long ago")
    };
    let long_ago = ago(Duration::from_secs(2));
    let late = search::run_started(&view, &request, &[], long_ago);
    assert_eq!(late.result.code, LdapResultCode::TimeLimitExceeded);
    assert!(late.entries.is_empty());
    // The same search in time, and the client's limit of 0 ("none") is the server's cap.
    assert_eq!(
        search::run(&view, &request, &[]).result.code,
        LdapResultCode::Success
    );
    request.timelimit = 0;
    let capped = ago(MAX_TIME_LIMIT + Duration::from_secs(1));
    let late = search::run_started(&view, &request, &[], capped);
    assert_eq!(late.result.code, LdapResultCode::TimeLimitExceeded);
    let within = ago(MAX_TIME_LIMIT - Duration::from_secs(2));
    let ok = search::run_started(&view, &request, &[], within);
    assert_eq!(ok.result.code, LdapResultCode::Success);
}

#[test]
fn scopes_bases_and_missing_entries() {
    let book = book();
    let view = open_view(&book);
    let run = |base, scope, f| search::run(&view, &search_request(base, scope, f), &[]);
    let all = "(objectClass=*)";
    assert_eq!(
        run("dc=example,dc=test", LdapSearchScope::Base, all)
            .entries
            .len(),
        1
    );
    assert_eq!(
        run("dc=example,dc=test", LdapSearchScope::OneLevel, all)
            .entries
            .len(),
        3
    );
    assert_eq!(
        run("dc=example,dc=test", LdapSearchScope::Subtree, all)
            .entries
            .len(),
        4
    );
    assert_eq!(
        run("dc=example,dc=test", LdapSearchScope::Children, all)
            .entries
            .len(),
        3
    );
    // The empty base spans every base DN.
    assert_eq!(
        run("", LdapSearchScope::Subtree, "(uid=alice*)")
            .entries
            .len(),
        2
    );
    let missing = run(
        "uid=nobody@example.test,dc=example,dc=test",
        LdapSearchScope::Base,
        all,
    );
    assert_eq!(missing.result.code, LdapResultCode::NoSuchObject);
    assert_eq!(missing.result.matcheddn, "dc=example,dc=test");
    let other = run("dc=elsewhere", LdapSearchScope::Subtree, all);
    assert_eq!(other.result.code, LdapResultCode::NoSuchObject);
    assert_eq!(
        run("=x", LdapSearchScope::Base, all).result.code,
        LdapResultCode::InvalidDNSyntax
    );
}

#[test]
fn attribute_selection() {
    let book = book();
    let view = open_view(&book);
    let mut request = search_request(
        "uid=alice@example.test,dc=example,dc=test",
        LdapSearchScope::Base,
        "(objectClass=*)",
    );
    let names = |request: &LdapSearchRequest| -> Vec<String> {
        let outcome = search::run(&view, request, &[]);
        outcome.entries[0]
            .attributes
            .iter()
            .map(|a| a.atype.clone())
            .collect()
    };
    let user = [
        "objectClass",
        "cn",
        "sn",
        "givenName",
        "displayName",
        "mail",
        "uid",
    ];
    assert_eq!(names(&request), user);
    request.attrs = vec!["*".into()];
    assert_eq!(names(&request), user);
    request.attrs = vec!["+".into()];
    assert_eq!(
        names(&request),
        ["entryDN", "hasSubordinates", "structuralObjectClass"]
    );
    request.attrs = vec!["1.1".into()];
    assert!(names(&request).is_empty());
    request.attrs = vec!["MAIL".into(), "commonName".into(), "nonsense".into()];
    assert_eq!(names(&request), ["cn", "mail"]);
    request.typesonly = true;
    let outcome = search::run(&view, &request, &[]);
    assert!(outcome.entries[0]
        .attributes
        .iter()
        .all(|a| a.vals.is_empty()));
}

#[test]
fn size_limits_and_pages() {
    let book = book();
    let view = open_view(&book);
    let mut request = search_request("", LdapSearchScope::Subtree, "(objectClass=person)");
    request.sizelimit = 4;
    let limited = search::run(&view, &request, &[]);
    assert_eq!(limited.result.code, LdapResultCode::SizeLimitExceeded);
    assert_eq!(limited.entries.len(), 4);
    request.sizelimit = 0;
    let mut cookie = Vec::new();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let control = LdapControl::SimplePagedResults {
            size: 4,
            cookie: cookie.clone(),
        };
        let page = search::run(&view, &request, &[control]);
        assert_eq!(page.result.code, LdapResultCode::Success);
        pages += 1;
        seen.extend(dns(&page).into_iter().map(String::from));
        let Some(LdapControl::SimplePagedResults { size, cookie: next }) = page.controls.first()
        else {
            panic!("no paged-results control in {:?}", page.controls);
        };
        assert_eq!(*size, 6);
        if next.is_empty() {
            break;
        }
        cookie = next.clone();
    }
    assert_eq!((pages, seen.len()), (2, 6));
    // A cookie of another search is refused.
    let other = search_request("dc=example,dc=test", LdapSearchScope::Subtree, "(cn=*)");
    let control = LdapControl::SimplePagedResults {
        size: 4,
        cookie: [4u64.to_be_bytes(), 0u64.to_be_bytes()].concat(),
    };
    let refused = search::run(&view, &other, &[control]);
    assert_eq!(refused.result.code, LdapResultCode::UnwillingToPerform);
}

#[test]
fn root_dse_and_denials() {
    let book = book();
    let view = View {
        book: &book,
        entries: Err(Denial::BindFirst),
        starttls: true,
    };
    let dse = search::run(
        &view,
        &search_request("", LdapSearchScope::Base, "(objectClass=*)"),
        &[],
    );
    assert_eq!(dse.entries.len(), 1);
    let attribute = |name: &str| {
        dse.entries[0]
            .attributes
            .iter()
            .find(|a| a.atype == name)
            .map(|a| a.vals.clone())
            .unwrap_or_default()
    };
    assert_eq!(attribute("namingContexts").len(), 2);
    assert_eq!(attribute("supportedLDAPVersion"), [b"3".to_vec()]);
    assert!(attribute("supportedExtension").contains(&b"1.3.6.1.4.1.1466.20037".to_vec()));
    let denied = search::run(
        &view,
        &search_request("dc=example,dc=test", LdapSearchScope::Subtree, "(cn=*)"),
        &[],
    );
    assert_eq!(denied.result.code, LdapResultCode::InsufficentAccessRights);
    assert!(denied.entries.is_empty());
}

#[test]
fn who_may_read() {
    let here: IpAddr = "127.0.0.1".parse().unwrap();
    let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
    let away: IpAddr = "192.0.2.7".parse().unwrap();
    let user = Identity::Account(Address::parse("alice@example.test").unwrap());
    assert_eq!(may_read_entries(&Identity::Anonymous, here, false), Ok(()));
    assert_eq!(
        may_read_entries(&Identity::Anonymous, mapped, false),
        Ok(())
    );
    assert_eq!(
        may_read_entries(&Identity::Anonymous, away, true),
        Err(Denial::BindFirst)
    );
    assert_eq!(may_read_entries(&user, away, true), Ok(()));
    assert_eq!(
        may_read_entries(&user, here, false),
        Err(Denial::NotPublished)
    );
}

#[test]
fn binds() {
    let bind = |dn: &str, password: &str| LdapBindRequest {
        version: 3,
        dn: dn.into(),
        cred: LdapBindCred::Simple(password.into()),
    };
    assert!(matches!(classify(&bind("", ""), true), Attempt::Anonymous));
    assert!(matches!(
        classify(&bind("alice", ""), true),
        Attempt::Refused(LdapResultCode::UnwillingToPerform, _)
    ));
    assert!(matches!(
        classify(&bind("alice", "pw"), false),
        Attempt::Refused(LdapResultCode::ConfidentialityRequired, _)
    ));
    let Attempt::Password(credentials) = classify(&bind("alice@example.test", "pw"), true) else {
        panic!("not a password bind");
    };
    assert_eq!(credentials.login, "alice@example.test");
    assert_eq!(
        login_of("uid=Alice@Example.test,dc=example,dc=test"),
        "alice@example.test"
    );
    assert_eq!(login_of("mail=bob@example.test,ou=x"), "bob@example.test");
    assert_eq!(login_of("cn=Bob,dc=x"), "cn=Bob,dc=x");
    let mut v2 = bind("", "");
    v2.version = 2;
    assert!(matches!(
        classify(&v2, true),
        Attempt::Refused(LdapResultCode::ProtocolError, _)
    ));
}

#[test]
fn the_cache_rebuilds_for_a_new_directory_or_new_bases() {
    let cache = super::entries::BookCache::default();
    let first = std::sync::Arc::new(directory());
    let book = cache.get(&first, BASES);
    assert!(std::sync::Arc::ptr_eq(&book, &cache.get(&first, BASES)));
    let other_bases = cache.get(&first, "dc=example,dc=test");
    assert_eq!(other_bases.naming_contexts(), ["dc=example,dc=test"]);
    // A reload brings a new directory (another Arc): the book follows it.
    let reloaded = std::sync::Arc::new(Directory::default());
    let empty = cache.get(&reloaded, BASES);
    assert_eq!(
        empty.entries().len(),
        2,
        "only the base entries of an empty directory"
    );
}

/// Mutated requests (bytes changed, cut, inserted) go through the framing, the decoder and the
/// search without a panic: each is a message, an error, or "more bytes needed".
#[test]
fn mutated_requests_never_panic_the_decoder() {
    use bytes::BytesMut;
    use ldap3_proto::proto::{LdapMsg, LdapOp};
    use ldap3_proto::LdapCodec;
    use tokio_util::codec::{Decoder, Encoder};

    let mut request = search_request(
        "dc=example,dc=test",
        LdapSearchScope::Subtree,
        "(&(objectClass=inetOrgPerson)(|(mail=al*)(cn=*iddel*)(!(sn>=x))))",
    );
    request.attrs = vec!["cn".into(), "mail".into()];
    let message = LdapMsg {
        msgid: 7,
        op: LdapOp::SearchRequest(request),
        ctrl: vec![LdapControl::SimplePagedResults {
            size: 2,
            cookie: vec![1, 2, 3],
        }],
    };
    let mut wire = BytesMut::new();
    LdapCodec::default().encode(message, &mut wire).unwrap();
    let original = wire.to_vec();
    let book = book();
    let mut decoded = 0;
    let mut next = crate::test_support::xorshift(0x1da9_5eed);
    for _ in 0..20_000 {
        let mut bytes = original.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % bytes.len();
            match next() % 3 {
                0 => bytes[at] = next() as u8,
                1 => bytes.truncate(at.max(1)),
                _ => bytes.insert(at, next() as u8),
            }
        }
        let Ok(Some(length)) = frame_length(&bytes) else {
            continue;
        };
        let mut frame = BytesMut::from(&bytes[..length.min(bytes.len())]);
        let mut codec = LdapCodec::new(Some(MAX_REQUEST), Some(bounds::MAX_BER_DEPTH));
        if let Ok(Some(LdapMsg {
            op: LdapOp::SearchRequest(request),
            ctrl,
            ..
        })) = codec.decode(&mut frame)
        {
            decoded += 1;
            // …and whatever decodes is searched without a panic too.
            let _ = search::run(&open_view(&book), &request, &ctrl);
        }
    }
    assert!(
        decoded > 1000,
        "only {decoded} mutations decoded: the test tests little"
    );
}

#[test]
fn the_server_caps_what_a_search_returns() {
    let accounts: Vec<String> = (0..600)
        .map(|n| format!(r#""user{n:03}@example.test":{{}}"#))
        .collect();
    let config = parse(&format!(
        r#"{{"domains":["example.test"],"accounts":{{{}}}}}"#,
        accounts.join(",")
    ))
    .unwrap();
    let hashes: BTreeMap<String, StoredHash> = config
        .accounts
        .keys()
        .map(|key| (key.clone(), StoredHash::Argon2id("unused".into())))
        .collect();
    let book = Book::build(&Directory::new(&config, &hashes), BASES);
    let view = open_view(&book);
    // 1200 people under the two bases; no client limit: the server's cap.
    let request = search_request("", LdapSearchScope::Subtree, "(objectClass=person)");
    let capped = search::run(&view, &request, &[]);
    assert_eq!(capped.result.code, LdapResultCode::SizeLimitExceeded);
    assert_eq!(capped.entries.len(), bounds::MAX_SIZE_LIMIT);
    // A page larger than the cap is cut to it, and the rest follows on the next page.
    let page = |cookie: Vec<u8>| {
        let control = LdapControl::SimplePagedResults { size: 5000, cookie };
        search::run(&view, &request, &[control])
    };
    let first = page(Vec::new());
    assert_eq!(first.entries.len(), bounds::MAX_SIZE_LIMIT);
    let Some(LdapControl::SimplePagedResults { cookie, .. }) = first.controls.first() else {
        panic!("no paged-results control");
    };
    let second = page(cookie.clone());
    assert_eq!(second.entries.len(), 200);
    assert_eq!(second.result.code, LdapResultCode::Success);
}

mod core {
    //! The sans-I/O core: requests in, steps out.

    use ldap3_proto::proto::{
        LdapBindCred, LdapBindRequest, LdapExtendedRequest, LdapMsg, LdapOp, LdapResultCode,
    };

    use super::{book, directory, search_request};
    use crate::address::Address;
    use crate::auth::AuthFailure;
    use crate::ldap::error::LdapError;
    use crate::ldap::proto::{Conditions, Session, Step};
    use crate::ldap::rootdse::{STARTTLS_OID, WHOAMI_OID};
    use ldap3_proto::proto::LdapSearchScope;

    fn message(op: LdapOp) -> LdapMsg {
        LdapMsg {
            msgid: 3,
            op,
            ctrl: vec![],
        }
    }

    fn code_of(step: &Step) -> LdapResultCode {
        let Step::Send(messages) = step else {
            panic!("not a reply: {step:?}");
        };
        match &messages.last().unwrap().op {
            LdapOp::BindResponse(r) => r.res.code.clone(),
            LdapOp::SearchResultDone(r)
            | LdapOp::AddResponse(r)
            | LdapOp::ModifyResponse(r)
            | LdapOp::DelResponse(r) => r.code.clone(),
            LdapOp::ExtendedResponse(r) => r.res.code.clone(),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn extended(name: &str) -> LdapMsg {
        message(LdapOp::ExtendedRequest(LdapExtendedRequest {
            name: name.into(),
            value: None,
        }))
    }

    #[test]
    fn binds_searches_starttls_and_refusals() {
        let book = book();
        let directory = directory();
        let now = Conditions {
            book: &book,
            directory: &directory,
            peer: "192.0.2.9".parse().unwrap(),
            publish_to_clients: true,
            starttls_offered: true,
            passwords_allowed: true,
        };
        let mut session = Session::new(false);
        let search = || {
            message(LdapOp::SearchRequest(search_request(
                "dc=example,dc=test",
                LdapSearchScope::OneLevel,
                "(objectClass=*)",
            )))
        };
        // Anonymous from the network: no entries.
        let step = session.handle(search(), &now).unwrap();
        assert_eq!(code_of(&step), LdapResultCode::InsufficentAccessRights);
        // A password bind goes to the authenticator; its outcome binds the connection.
        let bind = message(LdapOp::BindRequest(LdapBindRequest {
            version: 3,
            dn: "alice@example.test".into(),
            cred: LdapBindCred::Simple("pw".into()),
        }));
        let Step::Authenticate { msgid, credentials } = session.handle(bind, &now).unwrap() else {
            panic!("no authentication step");
        };
        assert_eq!(
            (msgid, credentials.login.as_str()),
            (3, "alice@example.test")
        );
        let alice = Address::parse("alice@example.test").unwrap();
        let response = session.bound(msgid, Ok(alice));
        assert_eq!(
            code_of(&Step::Send(vec![response])),
            LdapResultCode::Success
        );
        let Step::Send(found) = session.handle(search(), &now).unwrap() else {
            panic!("no search reply");
        };
        assert_eq!(found.len(), 3 + 1, "three entries and the done message");
        let Step::Send(whoami) = session.handle(extended(WHOAMI_OID), &now).unwrap() else {
            panic!("no whoami reply");
        };
        let LdapOp::ExtendedResponse(who) = &whoami[0].op else {
            panic!("not an extended response");
        };
        assert_eq!(who.value.as_deref(), Some(&b"u:alice@example.test"[..]));
        // A failed bind leaves the connection anonymous.
        let response = session.bound(4, Err(AuthFailure::Invalid));
        assert_eq!(
            code_of(&Step::Send(vec![response])),
            LdapResultCode::InvalidCredentials
        );
        // StartTLS once; not again once TLS is on.
        assert!(matches!(
            session.handle(extended(STARTTLS_OID), &now).unwrap(),
            Step::StartTls(_)
        ));
        session.tls_started();
        let again = session.handle(extended(STARTTLS_OID), &now).unwrap();
        assert_eq!(code_of(&again), LdapResultCode::OperationsError);
        let unknown = session.handle(extended("1.2.3.4"), &now).unwrap();
        assert_eq!(code_of(&unknown), LdapResultCode::ProtocolError);
        // Read-only; unbind closes; a response where a request belongs ends the connection.
        let delete = session
            .handle(message(LdapOp::DelRequest("dc=x".into())), &now)
            .unwrap();
        assert_eq!(code_of(&delete), LdapResultCode::UnwillingToPerform);
        assert!(matches!(
            session
                .handle(message(LdapOp::UnbindRequest), &now)
                .unwrap(),
            Step::Close
        ));
        let stray = session.handle(
            message(LdapOp::DelResponse(crate::ldap::search::result(
                LdapResultCode::Success,
                "",
            ))),
            &now,
        );
        assert!(matches!(stray, Err(LdapError::NotARequest(_))));
    }

    #[test]
    fn starttls_is_unavailable_without_a_certificate() {
        let book = book();
        let directory = directory();
        let now = Conditions {
            book: &book,
            directory: &directory,
            peer: "127.0.0.1".parse().unwrap(),
            publish_to_clients: true,
            starttls_offered: false,
            passwords_allowed: false,
        };
        let mut session = Session::new(false);
        let step = session.handle(extended(STARTTLS_OID), &now).unwrap();
        assert_eq!(code_of(&step), LdapResultCode::Unavailable);
        let bind = message(LdapOp::BindRequest(LdapBindRequest {
            version: 3,
            dn: "alice@example.test".into(),
            cred: LdapBindCred::Simple("pw".into()),
        }));
        let refused = session.handle(bind, &now).unwrap();
        assert_eq!(code_of(&refused), LdapResultCode::ConfidentialityRequired);
    }
}
