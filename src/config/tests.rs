//! Every class of bad value gives a line that starts with its key path.

use super::{load_str, ConfigErrors};

const HASH: &str = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";

fn errors(json: &str) -> Vec<String> {
    match load_str(json) {
        Ok(_) => Vec::new(),
        Err(ConfigErrors(lines)) => lines,
    }
}

fn assert_error(json: &str, key: &str) {
    let lines = errors(json);
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with(&format!("{key}: "))),
        "no error for {key} in {lines:?}"
    );
}

#[test]
fn empty_config_is_valid_with_seed_defaults() {
    let config = load_str("{}").unwrap();
    assert_eq!(config.smtp.port.0, 25);
    assert_eq!(config.queue.delay_min, 180);
    assert_eq!(config.queue.delay_max, 300);
    assert_eq!(config.queue.max_lifetime, 5760);
    assert_eq!(config.smtp.max_message_size, 26_214_400);
    assert_eq!(config.tls.dh_key_length, 2048);
    assert_eq!(config.spam.greylist.keep_days, 36);
    assert!(config.helo_name.is_some());
}

#[test]
fn each_class_of_problem_names_its_key() {
    assert_error(r#"{"smtp":{"port":0}}"#, "smtp.port");
    assert_error(r#"{"imap":{"port":70000}}"#, "imap.port");
    assert_error(
        r#"{"smtp":{"maxMessageSize":"big"}}"#,
        "smtp.maxMessageSize",
    );
    assert_error(r#"{"smtp":{"bogus":1}}"#, "smtp.bogus");
    assert_error(r#"{"bogus":1}"#, "bogus");
    assert_error(
        r#"{"queue":{"delayMin":300,"delayMax":200}}"#,
        "queue.delayMin",
    );
    assert_error(r#"{"tls":{"dhKeyLength":1024}}"#, "tls.dhKeyLength");
    assert_error(r#"{"tls":{"mode":"sometimes"}}"#, "tls.mode");
    assert_error(r#"{"tls":{"mode":"required"}}"#, "smtp.certificate");
    assert_error(
        r#"{"relay":{"host":"smart.test","auth":{"enable":true,"user":"u"}}}"#,
        "relay.auth.passwordFile",
    );
    assert_error(
        r#"{"relay":{"changeSender":{"enable":true}}}"#,
        "relay.changeSender.address",
    );
    assert_error(r#"{"pop3":{"port":25}}"#, "pop3.port");
    assert_error(
        r#"{"lists":{"whitelist":["10.0.0.0/33"]}}"#,
        "lists.whitelist[0]",
    );
    assert_error(
        r#"{"dns":{"nameservers":["resolver"]}}"#,
        "dns.nameservers[0]",
    );
    assert_error(r#"{"defaultAuthDomain":"other.test"}"#, "defaultAuthDomain");
    assert_error(
        r#"{"storage":{"defaultFolders":[{"name":"INBOX"}]}}"#,
        "storage.defaultFolders[0].name",
    );
    assert_error(r#"{"dlp":{"enable":true}}"#, "dlp.icapUrl");
    assert_error(r#"{"addressBook":{"enable":true}}"#, "addressBook.baseDn");
}

#[test]
fn account_problems() {
    let unknown_domain = format!(
        r#"{{"domains":["a.test"],"accounts":{{"x@b.test":{{"hashedPassword":"{HASH}"}}}}}}"#
    );
    assert_error(&unknown_domain, "accounts.x@b.test");
    let bad_hash = r#"{"domains":["a.test"],"accounts":{"x@a.test":{"hashedPassword":"secret"}}}"#;
    assert_error(bad_hash, "accounts.x@a.test.hashedPassword");
    let missing_file =
        r#"{"domains":["a.test"],"accounts":{"x@a.test":{"hashedPasswordFile":"/nonexistent/h"}}}"#;
    assert_error(missing_file, "accounts.x@a.test.hashedPasswordFile");
    let duplicate = format!(
        r#"{{"domains":["a.test"],"accounts":{{"x@a.test":{{"hashedPassword":"{HASH}","aliases":["y@a.test"]}},"y@a.test":{{"hashedPassword":"{HASH}"}}}}}}"#
    );
    assert_error(&duplicate, "accounts.y@a.test");
}

#[test]
fn several_problems_give_several_lines() {
    let lines = errors(
        r#"{"smtp":{"port":0},"queue":{"delayMin":9,"delayMax":1},"tls":{"dhKeyLength":1024}}"#,
    );
    assert_eq!(lines.len(), 1, "type errors come first: {lines:?}");
    let lines = errors(r#"{"queue":{"delayMin":9,"delayMax":1},"tls":{"dhKeyLength":1024}}"#);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let lines = errors(r#"{"smtp":{"port":0},"imap":{"port":"x"}}"#);
    assert_eq!(lines.len(), 2, "{lines:?}");
}

#[test]
fn domains_are_normalised() {
    let config = load_str(&format!(
        r#"{{"domains":["Example.TEST."],"accounts":{{"Bob@EXAMPLE.test":{{"hashedPassword":"{HASH}"}}}}}}"#
    ))
    .unwrap();
    assert_eq!(config.domains, ["example.test"]);
}
