//! The one-account server configuration that the in-process IMAP session tests
//! (`imap/tests.rs`) and the `imap_session` fuzz target (`crate::fuzzing`) both run against:
//! one account, plaintext, a small message size so that APPENDs reach the limit, and the store
//! and state under a directory the caller owns.

use std::path::Path;
use std::sync::Arc;

use crate::auth::{Authenticator, FixedAccounts};
use crate::config::layers::Source;
use crate::settings::Settings;

/// The one account.
pub(crate) const USER: &str = "alice@example.test";
/// SHA-512-crypt of "pw" with the fewest rounds allowed (a debug build verifies it fast).
const HASH: &str = "$6$rounds=1000$icsmailtest$Lgg34mHHVYn6.GEc5tAaH89Th37Z/Vf2yfJz4l70GUC4wE4Xpw8Mxy5mfieZz3ZVD6G9Xrn9L7yjgQwMYifab/";

/// The loaded configuration, its source (for `settings::Live`) and the authenticator over
/// its account.
pub(crate) struct OneAccount {
    pub source: Source,
    pub settings: Settings,
    pub authenticator: Arc<Authenticator>,
}

/// The configuration with its store in `root/mail` and its state in `root/state`; `name`
/// names the source in config errors. Panics only on a fixture that does not load (a
/// defect of this file), as a test may.
pub(crate) fn one_account(root: &Path, name: &str) -> OneAccount {
    let source = Source::Text {
        name: name.into(),
        text: serde_json::json!({
            "domains": ["example.test"],
            "heloName": "mx.example.test",
            "defaultAuthDomain": "example.test",
            "accounts": { USER: { "hashedPassword": HASH } },
            "storage": { "path": root.join("mail") },
            "stateDir": root.join("state"),
            "tls": { "mode": "none" },
            // Small, so that random APPENDs hit the limit too.
            "smtp": { "maxMessageSize": 4096 },
        })
        .to_string(),
    };
    let settings = Settings::load(&source).expect("one-account settings");
    let accounts = FixedAccounts {
        directory: settings.directory.clone(),
        default_domain: settings.default_auth_domain.clone(),
    };
    let authenticator = Arc::new(Authenticator::new(Arc::new(accounts)).expect("authenticator"));
    OneAccount {
        source,
        settings,
        authenticator,
    }
}
