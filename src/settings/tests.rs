//! Every class of bad value gives a line that starts with its key path, whether the file is
//! checked alone (`--static`) or with what the machine adds (what the daemons do).

use super::{check_static, Settings};
use crate::config::layers::Source;
use crate::config::{Config, ConfigErrors};

/// How far a check looks: the machine too (the daemons, `check-config`), or the file alone
/// (`check-config --static`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Machine,
    FileOnly,
}

/// The checked model of `json`; with [`Scope::Machine`] its `heloName` is the host name the
/// settings found.
fn load_str_in(json: &str, scope: Scope) -> Result<Config, ConfigErrors> {
    let source = Source::Text {
        name: "test".into(),
        text: json.to_string(),
    };
    match scope {
        Scope::Machine => Settings::load(&source).map(|settings| {
            let mut model = settings.model.clone();
            model.helo_name = Some(settings.hostname.clone());
            model
        }),
        Scope::FileOnly => check_static(&source),
    }
}

fn load_str(json: &str) -> Result<Config, ConfigErrors> {
    load_str_in(json, Scope::Machine)
}

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
    assert_error(r#"{"dlp":{"icapUrl":"icap://h:0/x"}}"#, "dlp.icapUrl");
    assert_error(
        r#"{"antivirus":{"kaspersky":{"icapUrl":"http://h/av"}}}"#,
        "antivirus.kaspersky.icapUrl",
    );
    assert_error(
        r#"{"antivirus":{"clamav":{"socket":"clamd.ctl"}}}"#,
        "antivirus.clamav.socket",
    );
    assert_error(
        r#"{"antivirus":{"clamav":{"socket":"tcp://127.0.0.1"}}}"#,
        "antivirus.clamav.socket",
    );
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

/// The values issue 11 found the NixOS module letting through: each one must be refused by
/// the one validator, in both scopes, with a line naming its key (the module's build check
/// runs `check-config --static`, the daemons the full check).
const BAD_VALUES: &[(&str, &str, &str)] = &[
    (
        r#"{"domains":["exa mple.org"]}"#,
        "domains[0]",
        "not a DNS name",
    ),
    (r#"{"domains":["-x-.org"]}"#, "domains[0]", "not a DNS name"),
    (r#"{"domains":["192.0.2.1"]}"#, "domains[0]", "IP address"),
    (
        r#"{"heloName":"mail_server!"}"#,
        "heloName",
        "not a DNS name",
    ),
    (r#"{"heloName":"mäil.example.org"}"#, "heloName", "xn--"),
    (r#"{"heloName":"192.0.2.1"}"#, "heloName", "IP address"),
    (
        r#"{"relay":{"changeSender":{"enable":true,"address":"nobody"}}}"#,
        "relay.changeSender.address",
        "",
    ),
    (
        r#"{"relay":{"changeSender":{"address":"not an address"}}}"#,
        "relay.changeSender.address",
        "",
    ),
    (
        r#"{"dkim":{"selector":"sel ector"}}"#,
        "dkim.selector",
        "not a DNS name",
    ),
    (
        r#"{"dkim":{"selector":""}}"#,
        "dkim.selector",
        "not a DNS name",
    ),
    (
        r#"{"dkim":{"selector":"schlüssel"}}"#,
        "dkim.selector",
        "xn--",
    ),
    (
        r#"{"spam":{"dnsbl":["zen spamhaus org"]}}"#,
        "spam.dnsbl[0]",
        "not a DNS name",
    ),
    (
        r#"{"spam":{"dnsbl":["http://zen.spamhaus.org"]}}"#,
        "spam.dnsbl[0]",
        "not a DNS name",
    ),
    (
        r#"{"spam":{"dnsbl":["127.0.0.2"]}}"#,
        "spam.dnsbl[0]",
        "IP address",
    ),
    (
        r#"{"lists":{"whitelist":["10.0.0.0/33"]}}"#,
        "lists.whitelist[0]",
        "0 to 32",
    ),
    (
        r#"{"lists":{"whitelist":["10.0.0.0/+8"]}}"#,
        "lists.whitelist[0]",
        "0 to 32",
    ),
    (
        r#"{"lists":{"whitelist":["10.0.0.0/"]}}"#,
        "lists.whitelist[0]",
        "0 to 32",
    ),
    (
        r#"{"lists":{"whitelist":["2001:db8::/129"]}}"#,
        "lists.whitelist[0]",
        "0 to 128",
    ),
    (
        r#"{"lists":{"whitelist":["10.0.0.300/8"]}}"#,
        "lists.whitelist[0]",
        "not an IP address",
    ),
    (
        r#"{"lists":{"whitelist":["10.0.0.1/24"]}}"#,
        "lists.whitelist[0]",
        "the network is 10.0.0.0/24",
    ),
    (
        r#"{"lists":{"blacklist":["2001:db8::1/32"]}}"#,
        "lists.blacklist[0]",
        "the network is 2001:db8::/32",
    ),
    (
        r#"{"dns":{"nameservers":["8.8.8"]}}"#,
        "dns.nameservers[0]",
        "address:port",
    ),
    (
        r#"{"dns":{"nameservers":["::1:53:"]}}"#,
        "dns.nameservers[0]",
        "address:port",
    ),
    (
        r#"{"dns":{"nameservers":["192.0.2.53:0"]}}"#,
        "dns.nameservers[0]",
        "port 0",
    ),
    (
        r#"{"domains":["a.test"],"accounts":{"x@a.test":{"hashedPassword":"plaintext"}}}"#,
        "accounts.x@a.test.hashedPassword",
        "not a supported hash",
    ),
    (
        r#"{"storage":{"defaultFolders":[{"name":"INBOX"}]}}"#,
        "storage.defaultFolders[0].name",
        "INBOX",
    ),
    (
        r#"{"storage":{"defaultFolders":[{"name":"Sent","specialUse":"sent"},{"name":"Outbox","specialUse":"sent"}]}}"#,
        "storage.defaultFolders[1].specialUse",
        "two folders",
    ),
    (
        r#"{"spam":{"greylist":{"ignoreSeconds":20000}}}"#,
        "spam.greylist.ignoreSeconds",
        "awaitHours (4 h)",
    ),
    (
        r#"{"queue":{"delayMin":400}}"#,
        "queue.delayMin",
        "queue.delayMax (300)",
    ),
];

fn errors_in(json: &str, scope: Scope) -> Vec<String> {
    match load_str_in(json, scope) {
        Ok(_) => Vec::new(),
        Err(ConfigErrors(lines)) => lines,
    }
}

#[test]
fn the_issue_11_values_are_refused_in_both_scopes() {
    for scope in [Scope::Machine, Scope::FileOnly] {
        for (json, key, fragment) in BAD_VALUES {
            let lines = errors_in(json, scope);
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with(&format!("{key}: ")) && l.contains(fragment)),
                "{scope:?}: no `{key}: …{fragment}…` line for {json}: {lines:?}"
            );
        }
    }
}

#[test]
fn an_alias_equal_to_another_account_is_refused_in_both_scopes() {
    let json = format!(
        r#"{{"domains":["a.test"],"accounts":{{"x@a.test":{{"hashedPassword":"{HASH}","aliases":["y@a.test"]}},"y@a.test":{{"hashedPassword":"{HASH}"}}}}}}"#
    );
    for scope in [Scope::Machine, Scope::FileOnly] {
        let lines = errors_in(&json, scope);
        assert!(
            lines.iter().any(|l| l.starts_with("accounts.y@a.test: ")
                && l.contains("already used by accounts.x@a.test.aliases[0]")),
            "{scope:?}: {lines:?}"
        );
    }
}

#[test]
fn good_names_and_networks_pass() {
    let json = r#"{"domains":["example.org","bücher.example"],"heloName":"Mail.Example.org.",
        "dkim":{"selector":"s2024"},
        "lists":{"whitelist":["10.0.0.0/8","10.1.2.3/32","10.1.2.3","0.0.0.0/0","2001:db8::/32"]},
        "dns":{"nameservers":["192.0.2.53","192.0.2.53:5353","[::1]:53","::1"]},
        "relay":{"changeSender":{"address":"mailer@example.org"}}}"#;
    for scope in [Scope::Machine, Scope::FileOnly] {
        assert_eq!(errors_in(json, scope), Vec::<String>::new(), "{scope:?}");
    }
    let config = load_str_in(json, Scope::FileOnly).unwrap();
    assert_eq!(config.helo_name.as_deref(), Some("mail.example.org"));
    let names = r#"{"spam":{"dnsbl":["zen.spamhaus.org"]},
        "lists":{"whitelist":["*.example.com","user@example.com","example.net"],
                 "blacklist":["198.51.100.0/24","spam.example"]}}"#;
    for scope in [Scope::Machine, Scope::FileOnly] {
        assert_eq!(errors_in(names, scope), Vec::<String>::new(), "{scope:?}");
    }
}

#[test]
fn file_only_reads_no_secret_file_and_looks_up_no_host_name() {
    let json = r#"{"domains":["a.test"],"accounts":{"x@a.test":{"hashedPasswordFile":"/nonexistent/x.hash"}}}"#;
    let config = load_str_in(json, Scope::FileOnly).unwrap();
    assert_eq!(config.helo_name, None, "no host name lookup");
    let lines = errors_in(json, Scope::Machine);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("accounts.x@a.test.hashedPasswordFile: cannot read")),
        "{lines:?}"
    );
    assert!(load_str_in("{}", Scope::Machine)
        .unwrap()
        .helo_name
        .is_some());
}

#[test]
fn file_only_still_checks_the_password_keys() {
    let both = format!(
        r#"{{"domains":["a.test"],"accounts":{{"x@a.test":{{"hashedPassword":"{HASH}","hashedPasswordFile":"/h"}}}}}}"#
    );
    let none = r#"{"domains":["a.test"],"accounts":{"x@a.test":{}}}"#;
    for (json, fragment) in [(both.as_str(), "not both"), (none, "no password")] {
        for scope in [Scope::Machine, Scope::FileOnly] {
            let lines = errors_in(json, scope);
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with("accounts.x@a.test: ") && l.contains(fragment)),
                "{scope:?}: {lines:?}"
            );
        }
    }
}

#[test]
fn scanners_are_typed_when_on() {
    use crate::scan::clamd::ClamdAddress;
    let source = |json: &str| Source::Text {
        name: "test".into(),
        text: json.to_string(),
    };
    let off = Settings::load(&source(
        r#"{"antivirus":{"kaspersky":{"icapUrl":"icap://h/av"}},"dlp":{"icapUrl":"icap://h/dlp"}}"#,
    ))
    .unwrap();
    assert_eq!(off.policy.antivirus, Default::default());
    assert_eq!(off.policy.dlp, None);
    let on = Settings::load(&source(
        r#"{"antivirus":{"clamav":{"enable":true,"socket":"tcp://127.0.0.1:3310"},"kaspersky":{"enable":true,"icapUrl":"icap://h/av"}},"dlp":{"enable":true,"icapUrl":"icap://h:1345/dlp"}}"#,
    ))
    .unwrap();
    let av = &on.policy.antivirus;
    assert_eq!(av.clamav, Some(ClamdAddress::Tcp("127.0.0.1:3310".into())));
    assert_eq!(
        av.kaspersky.as_ref().map(|u| u.as_str()),
        Some("icap://h/av")
    );
    assert_eq!(
        on.policy.dlp.as_ref().map(|u| u.as_str()),
        Some("icap://h:1345/dlp")
    );
}
