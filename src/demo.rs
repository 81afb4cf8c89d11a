//! The embedded default of `icsmail serve` without `--config`: everything on 127.0.0.1 on
//! unprivileged ports, state in `./icsmail-state`, one demo account whose password is made on
//! first start and kept in `./icsmail-state/demo-password`, and a self-signed certificate for
//! `localhost` made on first start in `./icsmail-state/tls/`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use rand::distributions::{Alphanumeric, DistString};

use crate::auth::hash_argon2id;
use crate::config::{self, layers::Source};
use crate::tls::ensure_self_signed;

pub const STATE_DIR: &str = "icsmail-state";
pub const DEMO_ADDRESS: &str = "demo@localhost";

const DEFAULT_CONFIG: &str = r#"{
  "domains": ["localhost"],
  "heloName": "localhost",
  "defaultAuthDomain": "localhost",
  "stateDir": "icsmail-state",
  "storage": { "path": "icsmail-state/mail" },
  "tls": { "mode": "optional" },
  "smtp": { "port": 2525, "interfaces": ["127.0.0.1"], "submissionPort": 2587,
            "smtps": { "enable": true, "port": 2465 } },
  "access": { "interfaces": ["127.0.0.1"], "implicitTls": { "enable": true } },
  "imap": { "port": 1143, "imapsPort": 1993 },
  "pop3": { "port": 1110, "pop3sPort": 1995 },
  "addressBook": { "enable": true, "port": 3389, "ldapsPort": 3636, "baseDn": "dc=localhost" }
}"#;

/// The default configuration with the demo account; prints its credentials.
pub fn default_source() -> anyhow::Result<Source> {
    let password = demo_password(Path::new(STATE_DIR))?;
    let mut value: serde_json::Value =
        serde_json::from_str(DEFAULT_CONFIG).context("embedded default configuration")?;
    value["accounts"] = serde_json::json!({
        DEMO_ADDRESS: { "hashedPassword": hash_argon2id(password.as_bytes())?, "displayName": "Demo" }
    });
    let pair = ensure_self_signed(
        &Path::new(STATE_DIR).join("tls"),
        &["localhost".to_string()],
    )?;
    let certificate = serde_json::json!({ "certFile": pair.cert_file, "keyFile": pair.key_file });
    value["smtp"]["certificate"] = certificate.clone();
    value["access"]["certificate"] = certificate;
    let source = Source::Text {
        name: "the embedded demo configuration".into(),
        text: value.to_string(),
    };
    let config = config::layers::read(&source)
        .map_err(|errors| anyhow::anyhow!("embedded default configuration:\n{errors}"))?;
    println!(
        "ics-mail demo: SMTP on 127.0.0.1:{} (STARTTLS), submission :{}, SMTPS :{}, IMAP :{}, IMAPS :{}, POP3 :{}, POP3S :{}",
        config.smtp.port,
        config.smtp.submission_port.map_or(0, |p| p.0),
        config.smtp.smtps.port,
        config.imap.port,
        config.imap.imaps_port,
        config.pop3.port,
        config.pop3.pop3s_port
    );
    println!(
        "ics-mail demo: LDAP address book on 127.0.0.1:{} (StartTLS), LDAPS :{}, base DN {}",
        config.address_book.port.0, config.address_book.ldaps_port.0, config.address_book.base_dn
    );
    println!("ics-mail demo: account {DEMO_ADDRESS} password {password}");
    println!(
        "ics-mail demo: mail is stored under {}",
        config.storage.path.display()
    );
    Ok(source)
}

/// Reads the demo password, creating it (mode 0600) on first start.
fn demo_password(state: &Path) -> anyhow::Result<String> {
    let path = state.join("demo-password");
    if let Ok(text) = fs::read_to_string(&path) {
        let text = text.trim().to_string();
        if !text.is_empty() {
            return Ok(text);
        }
    }
    fs::create_dir_all(state).with_context(|| format!("creating {}", state.display()))?;
    let password = Alphanumeric.sample_string(&mut rand::thread_rng(), 16);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(file, "{password}")?;
    Ok(password)
}
