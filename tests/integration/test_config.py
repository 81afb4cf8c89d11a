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
        "lists": {"whitelist": ["192.0.2.0/24", "example.org"], "blacklist": ["198.51.100.7"]},
        "spam": {"dnsbl": ["zen.example.org"], "greylist": {"enable": True}},
        "imap": {"port": 1143}, "pop3": {"port": 1110},
    })
    code, lines = check_config(bin_path, tmp_path, config)
    assert code == 0, lines


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
