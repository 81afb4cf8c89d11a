"""`icsmail check-config` and `icsmail hash-password`: every problem is reported on a line of its
own that starts with the JSON key path."""

from __future__ import annotations

import subprocess

import pytest

from icshelpers import PASSWORD, base_config, deep_merge, free_port, write_config


@pytest.fixture
def valid_config(tmp_path, password_hash) -> dict:
    return base_config(tmp_path, free_port(), password_hash)


def check_config(bin_path, tmp_path, config: dict | str):
    path = tmp_path / "check.json"
    if isinstance(config, str):
        path.write_text(config)
    else:
        write_config(path, config)
    result = subprocess.run([bin_path, "check-config", "--config", str(path)],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    lines = [l for l in (result.stdout + "\n" + result.stderr).splitlines() if l.strip()]
    return result.returncode, lines


def assert_problem(lines, key_paths, fragment=None):
    """Some line starts with one of `key_paths` followed by ':' (and contains `fragment`)."""
    if isinstance(key_paths, str):
        key_paths = [key_paths]
    hits = [l for l in lines if any(l.startswith(k + ":") for k in key_paths)]
    assert hits, f"no line starting with {key_paths}: in output {lines}"
    if fragment:
        assert any(fragment in l for l in hits), f"{fragment!r} not in {hits}"


def test_valid_minimal_config(bin_path, tmp_path, valid_config):
    code, lines = check_config(bin_path, tmp_path, valid_config)
    assert code == 0, lines


def test_config_with_every_documented_section(bin_path, tmp_path, valid_config):
    (tmp_path / "pw").write_text("relay-secret\n")
    config = deep_merge(valid_config, {
        "defaultAuthDomain": "example.test",
        "queue": {"interval": 10, "delayMin": 60, "delayMax": 120, "maxLifetime": 2880},
        "tls": {"mode": "none", "dhKeyLength": 3072},
        "relay": {"host": "smarthost.example.org", "port": 587,
                  "auth": {"enable": True, "user": "u", "passwordFile": str(tmp_path / "pw")}},
        "lists": {"whitelist": ["192.0.2.0/24", "2001:db8::/32", "example.org", "a@b.example"],
                  "blacklist": ["198.51.100.7", "spam.example"]},
        "spam": {"dnsbl": ["zen.example.org"], "dnsblUnreachable": "reject",
                 "requireReverseDns": False,
                 "greylist": {"ignoreSeconds": 120, "awaitHours": 6, "keepDays": 30}},
        "dkim": {"selector": "s2026"},
        "antivirus": {"clamav": {"enable": True, "socket": "tcp://127.0.0.1:3310"},
                      "kaspersky": {"enable": True, "icapUrl": "icap://127.0.0.1:1344/av"}},
        "dlp": {"enable": True, "icapUrl": "icap://127.0.0.1:1344/dlp?profile=mail"},
        "imap": {"port": 1143}, "pop3": {"port": 1110},
        "addressBook": {"enable": True, "port": 1389, "ldapsPort": 1636,
                        "baseDn": "dc=example,dc=test;ou=People,dc=example,dc=org",
                        "publishToClients": False},
    })
    code, lines = check_config(bin_path, tmp_path, config)
    assert code == 0, lines


def test_address_book_ports_are_checked_for_clashes(bin_path, tmp_path, valid_config):
    config = deep_merge(valid_config, {
        "access": {"implicitTls": {"enable": True}},
        "imap": {"port": 1143, "imapsPort": 1993}, "pop3": {"port": 1110, "pop3sPort": 1995},
        "addressBook": {"enable": True, "port": 1143, "ldapsPort": 1995,
                        "baseDn": "dc=example,dc=test"}})
    code, lines = check_config_args(bin_path, write_config(tmp_path / "c.json", config),
                                    "--static")
    assert code != 0, lines
    assert_problem(lines, "addressBook.port", "already used by imap.port")
    assert_problem(lines, "addressBook.ldapsPort", "already used by pop3.pop3sPort")


# Issue 12: a setting whose behaviour this version lacks is refused by the check (also the
# --static one that the NixOS build runs) and at start, with a line naming it.
# (The LDAP address book was the last one; a new refused switch goes here as
# "name": ({its config}, "its.key").)
NOT_IMPLEMENTED: dict = {}


@pytest.mark.parametrize("mode", [[], ["--static"]], ids=["full", "static"])
@pytest.mark.parametrize("extra,key", list(NOT_IMPLEMENTED.values()), ids=list(NOT_IMPLEMENTED))
def test_unimplemented_settings_are_refused(bin_path, tmp_path, valid_config, mode, extra, key):
    path = write_config(tmp_path / "c.json", deep_merge(valid_config, extra))
    code, lines = check_config_args(bin_path, path, *mode)
    assert code != 0, f"accepted; output {lines}"
    assert_problem(lines, key, "not implemented in this version")


def _alias_dup(config):
    config["accounts"]["bob@example.test"]["aliases"] = ["al@example.test"]
    return config


def _alias_is_account(config):
    config["accounts"]["bob@example.test"]["aliases"] = ["alice@example.test"]
    return config


def _foreign_account(config):
    config["accounts"]["carol@other.test"] = dict(config["accounts"]["bob@example.test"])
    return config


def _bad_hash(config):
    config["accounts"]["alice@example.test"]["hashedPassword"] = "plaintext-password"
    return config


def _broken_argon(config):
    config["accounts"]["alice@example.test"]["hashedPassword"] = "$argon2id$garbage"
    return config


def _merge(extra):
    return lambda config: deep_merge(config, extra)


BAD = {
    "port-0": (_merge({"smtp": {"port": 0}}), "smtp.port",
               "port must be between 1 and 65535, got 0"),
    "port-70000": (_merge({"smtp": {"port": 70000}}), "smtp.port", "70000"),
    "port-negative": (_merge({"smtp": {"port": -25}}), "smtp.port", None),
    "imap-port-0": (_merge({"imap": {"port": 0}}), "imap.port", None),
    "delay-min-gt-max": (_merge({"queue": {"delayMin": 300, "delayMax": 200}}), "queue.delayMin",
                         "300 is greater than queue.delayMax (200)"),
    "dh-1024": (_merge({"tls": {"dhKeyLength": 1024}}), "tls.dhKeyLength",
                "must be 2048, 3072 or 4096, got 1024"),
    "relay-auth-no-password-file": (
        _merge({"relay": {"host": "smarthost.example.org",
                          "auth": {"enable": True, "user": "relayuser"}}}),
        "relay.auth.passwordFile", "required when relay.auth.enable is true"),
    "unknown-smtp-key": (_merge({"smtp": {"bogus": 1}}), "smtp.bogus", "unknown field"),
    "unknown-nested-key": (_merge({"smtp": {"limits": {"maxBogus": 1}}}),
                           "smtp.limits.maxBogus", "unknown field"),
    "unknown-top-key": (_merge({"bogusTop": True}), "bogusTop", "unknown field"),
    "wrong-type-size": (_merge({"smtp": {"maxMessageSize": "big"}}), "smtp.maxMessageSize",
                        "invalid type: string"),
    "wrong-type-domains": (_merge({"domains": "example.test"}), "domains", "invalid type"),
    "wrong-type-bool": (_merge({"smtp": {"smtputf8": "yes"}}), "smtp.smtputf8", "invalid type"),
    "account-foreign-domain": (_foreign_account, "accounts.carol@other.test", None),
    "bad-hashed-password": (_bad_hash, "accounts.alice@example.test.hashedPassword", None),
    "broken-argon2-hash": (_broken_argon, "accounts.alice@example.test.hashedPassword", None),
    "duplicate-alias": (_alias_dup, ["accounts.bob@example.test.aliases[0]",
                                     "accounts.alice@example.test.aliases[0]"], None),
    "alias-is-an-account": (_alias_is_account, ["accounts.bob@example.test.aliases[0]",
                                                "accounts.alice@example.test"], None),
    "submission-port-collision": (lambda c: deep_merge(c, {"smtp": {
        "submissionPort": c["smtp"]["port"]}}), ["smtp.submissionPort", "smtp.port"], None),
    "max-message-size-0": (_merge({"smtp": {"maxMessageSize": 0}}), "smtp.maxMessageSize", None),
    "max-errors-0": (_merge({"smtp": {"limits": {"maxErrors": 0}}}), "smtp.limits.maxErrors",
                     None),
    "clamav-socket-relative": (_merge({"antivirus": {"clamav": {"socket": "clamd.ctl"}}}),
                               "antivirus.clamav.socket", "tcp://host:port"),
    "clamav-tcp-no-port": (_merge({"antivirus": {"clamav": {"socket": "tcp://127.0.0.1"}}}),
                           "antivirus.clamav.socket", "no port"),
    "icap-not-icap": (_merge({"dlp": {"enable": True, "icapUrl": "http://dlp.example.org/"}}),
                      "dlp.icapUrl", "not an icap:// URL"),
    "icap-bad-port": (_merge({"antivirus": {"kaspersky": {"enable": True,
                                                          "icapUrl": "icap://h:0/av"}}}),
                      "antivirus.kaspersky.icapUrl", "not a port number"),
    "icap-missing": (_merge({"dlp": {"enable": True}}), "dlp.icapUrl",
                     "required when the service is enabled"),
}


@pytest.mark.parametrize("change,key,fragment", list(BAD.values()), ids=list(BAD))
def test_bad_config(bin_path, tmp_path, valid_config, change, key, fragment):
    code, lines = check_config(bin_path, tmp_path, change(valid_config))
    assert code != 0, f"accepted; output {lines}"
    assert_problem(lines, key, fragment)


def test_several_semantic_problems(bin_path, tmp_path, valid_config):
    config = deep_merge(valid_config, {
        "tls": {"dhKeyLength": 1024},
        "queue": {"delayMin": 300, "delayMax": 200},
        "relay": {"host": "smarthost.example.org", "auth": {"enable": True, "user": "u"}},
    })
    config = _alias_dup(config)
    code, lines = check_config(bin_path, tmp_path, config)
    assert code != 0
    assert_problem(lines, "tls.dhKeyLength")
    assert_problem(lines, "queue.delayMin")
    assert_problem(lines, "relay.auth.passwordFile")
    assert_problem(lines, ["accounts.bob@example.test.aliases[0]",
                           "accounts.alice@example.test.aliases[0]"])


def test_several_parse_problems(bin_path, tmp_path, valid_config):
    config = deep_merge(valid_config, {
        "smtp": {"port": 0},
        "imap": {"bogus": 1},
        "tls": {"dhKeyLength": "strong"},
    })
    code, lines = check_config(bin_path, tmp_path, config)
    assert code != 0
    assert_problem(lines, "smtp.port")
    assert_problem(lines, "imap.bogus")
    assert_problem(lines, "tls.dhKeyLength")


def test_not_json(bin_path, tmp_path):
    code, lines = check_config(bin_path, tmp_path, '{"domains": [')
    assert code != 0 and lines


def test_missing_file(bin_path, tmp_path):
    result = subprocess.run([bin_path, "check-config", "--config", str(tmp_path / "nope.json")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert (result.stdout + result.stderr).strip()


def test_hash_password_output_is_accepted(bin_path, tmp_path, valid_config):
    hashes = []
    for _ in range(2):
        result = subprocess.run([bin_path, "hash-password"], input=PASSWORD + "\n",
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        hashes.append(result.stdout.strip().splitlines()[-1])
    assert all(h.startswith("$argon2id$") for h in hashes), hashes
    assert hashes[0] != hashes[1], "no random salt"
    valid_config["accounts"]["alice@example.test"]["hashedPassword"] = hashes[0]
    valid_config["accounts"]["bob@example.test"]["hashedPassword"] = hashes[1]
    code, lines = check_config(bin_path, tmp_path, valid_config)
    assert code == 0, lines


def test_smtpd_refuses_invalid_config(bin_path, tmp_path, valid_config):
    config = deep_merge(valid_config, {"tls": {"dhKeyLength": 1024}})
    path = write_config(tmp_path / "bad.json", config)
    result = subprocess.run([bin_path, "smtpd", "--config", str(path)],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "tls.dhKeyLength" in result.stdout + result.stderr


# --------------------------------------------------------------------------------------------
# Issue 11: the values the NixOS module used to let through. Rust is the one validator: the
# module's build check runs `check-config --static` on the generated JSON, the daemons run the
# full check; both must refuse each value with a line naming its key.

ISSUE_11 = {
    "domain-malformed": ({"domains": ["exa mple.test"]}, "domains[0]", "not a DNS name"),
    "domain-ip": ({"domains": ["192.0.2.1"]}, "domains[0]", "IP address"),
    "helo-malformed": ({"heloName": "mail_server!"}, "heloName", "not a DNS name"),
    "helo-not-ascii": ({"heloName": "mäil.example.test"}, "heloName", "xn--"),
    "change-sender-address": ({"relay": {"changeSender": {"enable": True,
                                                           "address": "nobody"}}},
                              "relay.changeSender.address", None),
    "change-sender-address-while-off": ({"relay": {"changeSender": {"address": "a b@c"}}},
                                        "relay.changeSender.address", None),
    "dkim-selector": ({"dkim": {"selector": "sel ector"}}, "dkim.selector", "not a DNS name"),
    "dnsbl-zone": ({"spam": {"dnsbl": ["zen spamhaus org"]}}, "spam.dnsbl[0]", "not a DNS name"),
    "dnsbl-url": ({"spam": {"dnsbl": ["https://zen.spamhaus.org"]}}, "spam.dnsbl[0]", None),
    "whitelist-prefix": ({"lists": {"whitelist": ["10.0.0.0/33"]}}, "lists.whitelist[0]",
                         "0 to 32"),
    "whitelist-host-bits": ({"lists": {"whitelist": ["10.0.0.1/24"]}}, "lists.whitelist[0]",
                            "the network is 10.0.0.0/24"),
    "nameserver": ({"dns": {"nameservers": ["8.8.8"]}}, "dns.nameservers[0]", None),
    "nameserver-port-0": ({"dns": {"nameservers": ["192.0.2.53:0"]}}, "dns.nameservers[0]",
                          "port 0"),
    "hashed-password-plaintext": ({"accounts": {"alice@example.test": {
        "hashedPassword": "plaintext"}}}, "accounts.alice@example.test.hashedPassword",
        "not a supported hash"),
    "alias-is-another-account": ({"accounts": {"bob@example.test": {
        "aliases": ["alice@example.test"]}}},
        ["accounts.bob@example.test.aliases[0]", "accounts.alice@example.test"],
        "already used by"),
    "default-folder-inbox": ({"storage": {"defaultFolders": [{"name": "INBOX"}]}},
                             "storage.defaultFolders[0].name", "INBOX"),
    "default-folder-special-use-twice": ({"storage": {"defaultFolders": [
        {"name": "Sent", "specialUse": "sent"}, {"name": "Outbox", "specialUse": "sent"}]}},
        "storage.defaultFolders[1].specialUse", "two folders"),
    "greylist-ignore-vs-default-await": ({"spam": {"greylist": {"ignoreSeconds": 20000}}},
                                         "spam.greylist.ignoreSeconds", "awaitHours (4 h)"),
    "queue-delay-min-vs-default-max": ({"queue": {"delayMin": 400}}, "queue.delayMin",
                                       "queue.delayMax (300)"),
}


def check_config_args(bin_path, path, *args):
    result = subprocess.run([bin_path, "check-config", *args, "--config", str(path)],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    return result.returncode, [l for l in (result.stdout + "\n" + result.stderr).splitlines()
                               if l.strip()]


@pytest.mark.parametrize("mode", [[], ["--static"]], ids=["full", "static"])
@pytest.mark.parametrize("extra,key,fragment", list(ISSUE_11.values()), ids=list(ISSUE_11))
def test_issue_11_values_are_refused(bin_path, tmp_path, valid_config, mode, extra, key,
                                     fragment):
    path = write_config(tmp_path / "bad.json", deep_merge(valid_config, extra))
    code, lines = check_config_args(bin_path, path, *mode)
    assert code != 0, f"accepted; output {lines}"
    assert_problem(lines, key, fragment)


def machine_dependent_config(valid_config, tmp_path) -> dict:
    """Valid as far as the file goes, but every file it names is missing and heloName is unset."""
    missing = tmp_path / "missing"
    config = deep_merge(valid_config, {
        "accounts": {"alice@example.test": {"hashedPassword": None,
                                            "hashedPasswordFile": str(missing / "alice.hash")}},
        "tls": {"mode": "optional"},
        "smtp": {"certificate": {"certFile": str(missing / "smtp.crt"),
                                 "keyFile": str(missing / "smtp.key")}},
        "access": {"certificate": {"certFile": str(missing / "access.crt"),
                                   "keyFile": str(missing / "access.key")}},
        "relay": {"host": "smarthost.example.org",
                  "auth": {"enable": True, "user": "u", "passwordFile": str(missing / "pw")}},
    })
    del config["accounts"]["alice@example.test"]["hashedPassword"]
    del config["heloName"]
    return config


def test_static_reads_no_secret_file_and_no_certificate(bin_path, tmp_path, valid_config):
    path = write_config(tmp_path / "c.json", machine_dependent_config(valid_config, tmp_path))
    code, lines = check_config_args(bin_path, path, "--static")
    assert code == 0, lines
    assert any("ok (static" in l for l in lines), lines


def test_full_check_reads_every_file_the_daemons_need(bin_path, tmp_path, valid_config):
    path = write_config(tmp_path / "c.json", machine_dependent_config(valid_config, tmp_path))
    code, lines = check_config_args(bin_path, path)
    assert code != 0, lines
    assert_problem(lines, "accounts.alice@example.test.hashedPasswordFile", "cannot read")
    # Validation stops before the files when a key is wrong; fix the password file, then the
    # certificates and the smarthost password are read.
    config = machine_dependent_config(valid_config, tmp_path)
    hash_file = tmp_path / "alice.hash"
    hash_file.write_text(valid_config["accounts"]["alice@example.test"]["hashedPassword"] + "\n")
    config["accounts"]["alice@example.test"]["hashedPasswordFile"] = str(hash_file)
    write_config(path, config)
    code, lines = check_config_args(bin_path, path)
    assert code != 0, lines
    assert_problem(lines, "smtp.certificate.certFile", "cannot read")
    assert_problem(lines, "access.certificate.certFile", "cannot read")
    assert_problem(lines, "relay.auth.passwordFile", "cannot read")


def test_full_check_loads_the_certificates(bin_path, tmp_path, valid_config, certs):
    (tmp_path / "pw").write_text("\n")
    config = deep_merge(valid_config, {
        "tls": {"mode": "optional"},
        "smtp": {"certificate": {"certFile": str(certs.mismatched.cert),
                                 "keyFile": str(certs.mismatched.key)}},
        "access": {"certificate": {"certFile": str(certs.rsa.cert),
                                   "keyFile": str(certs.rsa.cert)}},
        "relay": {"host": "smarthost.example.org",
                  "auth": {"enable": True, "user": "u", "passwordFile": str(tmp_path / "pw")}},
    })
    path = write_config(tmp_path / "c.json", config)
    code, lines = check_config_args(bin_path, path)
    assert code != 0, lines
    assert_problem(lines, "smtp.certificate", "does not match")
    assert_problem(lines, "access.certificate.keyFile")
    assert_problem(lines, "relay.auth.passwordFile", "empty first line")
    code, lines = check_config_args(bin_path, path, "--static")
    assert code == 0, lines
