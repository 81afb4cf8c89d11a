//! CAPABILITY, LOGOUT, STARTTLS, COMPRESS, ID, ENABLE, NAMESPACE.

use imap_codec::imap_types::auth::AuthMechanism;
use imap_codec::imap_types::core::{IString, NString, QuotedChar, Vec1};
use imap_codec::imap_types::extensions::compress::CompressionAlgorithm;
use imap_codec::imap_types::extensions::enable::CapabilityEnable;
use imap_codec::imap_types::extensions::namespace::Namespace;
use imap_codec::imap_types::extensions::utf8::Utf8Kind;
use imap_codec::imap_types::response::{Capability, Code, Data};

use super::super::context::Offer;
use super::super::folders::DELIMITER;
use super::super::response::bye;
use super::super::state::{Done, Phase, Session};

/// What the server offers now: before login, STARTTLS (when offered and not yet on) and
/// AUTH=PLAIN where a password may be sent (LOGINDISABLED otherwise, RFC 3501 §6.2.3); the
/// extensions always (also in the greeting, so clients needn't ask).
pub fn capabilities(offer: Offer, authenticated: bool) -> Vec1<Capability<'static>> {
    let mut caps = vec![Capability::Imap4Rev1];
    // RFC 9051, after `ENABLE IMAP4rev2` (what changes: `Session::rev2`). Every extension it
    // folds in is offered below; LITERAL- is met by LITERAL+, its superset (RFC 7888 §5).
    if let Ok(atom) = imap_codec::imap_types::core::Atom::try_from("IMAP4rev2") {
        caps.push(Capability::from(atom));
    }
    // Login-related capabilities only mean something before login (as Dovecot does).
    if !authenticated {
        if offer.starttls {
            caps.push(Capability::StartTls);
        }
        if offer.login {
            caps.push(Capability::Auth(AuthMechanism::Plain));
        } else {
            caps.push(Capability::LoginDisabled);
        }
    }
    caps.extend([
        Capability::SaslIr,
        Capability::LiteralPlus,
        Capability::Idle,
        Capability::UidPlus,
        Capability::Move,
        Capability::Namespace,
        Capability::Id,
        Capability::Enable,
        Capability::Unselect,
        Capability::CondStore,
        Capability::QResync,
        Capability::StatusSize,
        // RFC 9208: the STORAGE resource (with STATUS DELETED-STORAGE), no SETQUOTA.
        Capability::Quota,
        Capability::QuotaRes(imap_codec::imap_types::extensions::quota::Resource::Storage),
        // RFC 6855, after ENABLE (names in state.rs `utf8`); UTF8=ONLY is not offered.
        Capability::Utf8(Utf8Kind::Accept),
    ]);
    if authenticated {
        // Like Dovecot: a command of the authenticated state, offered there.
        caps.push(Capability::Compress {
            algorithm: CompressionAlgorithm::Deflate,
        });
    }
    let append_limit = format!("APPENDLIMIT={}", offer.append_limit);
    for name in [
        "SPECIAL-USE".to_string(),
        "CREATE-SPECIAL-USE".to_string(),
        "ESEARCH".to_string(),
        "LIST-EXTENDED".to_string(),
        "LIST-STATUS".to_string(),
        "SEARCHRES".to_string(),
        "BINARY".to_string(),
        "MULTIAPPEND".to_string(),
        "CATENATE".to_string(),
        append_limit,
    ] {
        if let Ok(atom) = imap_codec::imap_types::core::Atom::try_from(name) {
            caps.push(Capability::from(atom));
        }
    }
    // RFC 5256, 5957, 5267: commands/sort.rs.
    for name in [
        "SORT",
        "SORT=DISPLAY",
        "ESORT",
        "THREAD=ORDEREDSUBJECT",
        "THREAD=REFERENCES",
    ] {
        if let Ok(atom) = imap_codec::imap_types::core::Atom::try_from(name) {
            caps.push(Capability::from(atom));
        }
    }
    Vec1::try_from(caps).unwrap_or_else(|_| Vec1::from(Capability::Imap4Rev1))
}

pub fn capability(session: &mut Session<'_>) -> Done {
    let caps = capabilities(
        session.offer(),
        !matches!(session.phase, Phase::NotAuthenticated),
    );
    session.send_data(Data::Capability(caps));
    Done::ok("CAPABILITY completed")
}

pub fn logout(session: &mut Session<'_>) -> Done {
    session.send_status(bye("Logging out"));
    session.phase = Phase::Logout;
    Done::ok("LOGOUT completed")
}

pub async fn starttls(session: &mut Session<'_>) -> std::io::Result<Done> {
    // Valid only in the not-authenticated state (RFC 3501 §6.2.1); after login the session goes
    // on as it is.
    if !matches!(session.phase, Phase::NotAuthenticated) {
        return Ok(Done::bad("STARTTLS is only valid before login"));
    }
    if session.conn.is_tls() {
        return Ok(Done::bad("TLS is already active"));
    }
    if !session.offer().starttls {
        return Ok(Done::bad("STARTTLS is not offered"));
    }
    // The driver writes this OK in the clear, then handshakes (RFC 3501 §6.2.1).
    let mut done = Done::ok("Begin TLS negotiation now");
    done.starttls = true;
    Ok(done)
}

/// COMPRESS (RFC 4978): DEFLATE from the end of this OK on, once per connection. TLS
/// compression is never on (rustls has none), so the only NO is for a second COMPRESS.
pub fn compress(session: &mut Session<'_>, algorithm: CompressionAlgorithm) -> Done {
    match algorithm {
        CompressionAlgorithm::Deflate if session.conn.is_compressed() || session.compress_next => {
            Done::no_code(Code::CompressionActive, "DEFLATE is already active")
        }
        CompressionAlgorithm::Deflate => {
            session.compress_next = true;
            Done::ok("DEFLATE active")
        }
        // (imap-codec parses no other; the type may grow.)
        _ => Done::bad("Only DEFLATE is supported"),
    }
}

/// ID (RFC 2971): who we are; what the client says is logged.
pub fn id(
    session: &mut Session<'_>,
    parameters: Option<Vec<(IString<'static>, NString<'static>)>>,
) -> Done {
    if let Some(parameters) = &parameters {
        let said: Vec<String> = parameters
            .iter()
            .take(30)
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    String::from_utf8_lossy(k.as_ref()),
                    v.0.as_ref()
                        .map(|v| String::from_utf8_lossy(v.as_ref()).into_owned())
                        .unwrap_or_default()
                )
            })
            .collect();
        tracing::info!(client = %said.join(" "), "ID");
    }
    let ours = [("name", "ics-mail"), ("version", env!("CARGO_PKG_VERSION"))];
    let parameters = ours
        .iter()
        .filter_map(|(k, v)| {
            Some((
                IString::try_from(k.to_string()).ok()?,
                NString::try_from(v.to_string()).ok()?,
            ))
        })
        .collect();
    session.send_data(Data::Id {
        parameters: Some(parameters),
    });
    Done::ok("ID completed")
}

/// ENABLE (RFC 5161): CONDSTORE, QRESYNC (which implies CONDSTORE, RFC 7162 §3.2.3),
/// UTF8=ACCEPT (RFC 6855) and IMAP4rev2 (RFC 9051) are the ones we know; others (UTF8=ONLY
/// too: not offered) are ignored, as the RFC asks. ENABLED lists what this command turned on.
pub fn enable(session: &mut Session<'_>, capabilities: Vec1<CapabilityEnable<'static>>) -> Done {
    let mut enabled = Vec::new();
    for capability in capabilities.into_inner() {
        let named = |name: &str| {
            matches!(capability, CapabilityEnable::Other(_))
                && capability.to_string().eq_ignore_ascii_case(name)
        };
        let (qresync, rev2) = (named("QRESYNC"), named("IMAP4rev2"));
        if rev2 && !session.rev2 {
            session.rev2 = true;
            enabled.push(capability);
        } else if qresync && !session.qresync {
            session.qresync = true;
            session.condstore = true;
            enabled.push(capability);
        } else if matches!(capability, CapabilityEnable::CondStore) && !session.condstore {
            session.condstore = true;
            enabled.push(capability);
        } else if matches!(capability, CapabilityEnable::Utf8(Utf8Kind::Accept)) && !session.utf8 {
            session.utf8 = true;
            enabled.push(capability);
        }
    }
    session.send_data(Data::Enabled {
        capabilities: enabled,
    });
    Done::ok("ENABLE completed")
}

/// NAMESPACE (RFC 2342): one personal namespace, no prefix, `.` as delimiter.
pub fn namespace(session: &mut Session<'_>) -> Done {
    let personal = IString::try_from(String::new())
        .map(|prefix| Namespace {
            prefix,
            delimiter: QuotedChar::try_from(DELIMITER).ok(),
            extensions: Vec::new(),
        })
        .into_iter()
        .collect();
    session.send_data(Data::Namespace {
        personal,
        other: Vec::new(),
        shared: Vec::new(),
    });
    Done::ok("NAMESPACE completed")
}
