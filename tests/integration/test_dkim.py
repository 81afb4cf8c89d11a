"""DKIM, SPF and DMARC (issue 14 item 1, docs/filters.md "DKIM, SPF and DMARC") with real
programs: dnsmasq on loopback serves every record (our DKIM keys as `icsmail dkim-keygen`
printed them, an outside signer's key, SPF and DMARC policies); dkimpy (python3-dkim) checks
our RSA and Ed25519 signatures on what reaches the next hop (an aiosmtpd smarthost) and in a
mailbox, with its lookups sent to that dnsmasq; `dkimsign` (python3-dkim) signs mail that
mail-auth in the server must find `pass` — or `fail` once tampered with."""

from __future__ import annotations

import re
import smtplib
import subprocess
from pathlib import Path

import dkim
import dns.message
import dns.query
import dns.rdatatype
import pytest

from icshelpers import ALICE, BOB, DOMAIN, HELO_NAME, PASSWORD, crlf, free_port, make_message
from queuepeers import Dnsmasq, Peer, wait_until

SELECTOR = "s2026"
RELAY_IP = "127.0.0.6"
# The outside signer: its domain, selector and key (made with openssl at test time).
SIGNER = "sender.test"
SIGNER_SELECTOR = "ext"


def keygen(bin_path: str, config: Path, algorithm: str) -> tuple[str, list[str]]:
    """`icsmail dkim-keygen`: the record's name and its TXT strings, from what it printed."""
    out = subprocess.run([bin_path, "dkim-keygen", "--config", str(config), "--domain", DOMAIN,
                          "--algorithm", algorithm], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    match = re.fullmatch(r"(\S+)\. IN TXT ((?:\"[^\"]*\" ?)+)", line)
    assert match, line
    return match.group(1), re.findall(r"\"([^\"]*)\"", match.group(2))


def outside_key(tmp: Path) -> tuple[Path, str]:
    """An RSA key of the outside signer (openssl) and the p= of its record."""
    key = tmp / "outside.pem"
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", str(key), "2048"], check=True,
                   capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    import base64
    return key, base64.b64encode(der).decode()


class World:
    """The server (dkim.verify and dkim.sign on), its DNS, and the smarthost it relays to."""

    def __init__(self, server, dnsmasq, relay, outside_key_file):
        self.server, self.dns, self.relay, self.outside_key = server, dnsmasq, relay, outside_key_file

    def txt(self, name, timeout: float = 5) -> bytes | None:
        """The TXT data of `name` from our dnsmasq (dkimpy's `dnsfunc`)."""
        if isinstance(name, bytes):
            name = name.decode()
        query = dns.message.make_query(name, dns.rdatatype.TXT)
        answer = dns.query.udp(query, "127.0.0.1", port=self.dns.port, timeout=timeout)
        for rrset in answer.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                return b"".join(list(rrset.items)[0].strings)
        return None


@pytest.fixture(scope="module")
def world(make_module_server, bin_path, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dkim")
    keys = tmp / "keys"
    keys.mkdir()
    dns_port = free_port()
    relay = Peer(RELAY_IP, port=free_port())
    server = make_module_server(extra={
        "dns": {"nameservers": [f"127.0.0.1:{dns_port}"]},
        "dkim": {"verify": True, "sign": True, "selector": SELECTOR, "keyDirectory": str(keys)},
        # Mail to other domains goes to the smarthost, whose From rewrite stays in our domain
        # (the signature must be made after it).
        "relay": {"host": "relay.test", "port": relay.controller.port},
    }, start=False)
    records = dict([keygen(bin_path, server.config_path, "rsa"),
                    keygen(bin_path, server.config_path, "ed25519")])
    assert set(records) == {f"{SELECTOR}._domainkey.{DOMAIN}",
                            f"{SELECTOR}-ed25519._domainkey.{DOMAIN}"}, records
    assert all((keys / f"{DOMAIN}.{SELECTOR}.{alg}.pem").stat().st_mode & 0o777 == 0o600
               for alg in ("rsa", "ed25519"))
    outside_file, outside_public = outside_key(tmp)
    txt = {name: ",".join(strings) for name, strings in records.items()}
    txt.update({
        f"{SIGNER_SELECTOR}._domainkey.{SIGNER}": f"v=DKIM1; k=rsa; p={outside_public}",
        # SPF: the clients connect from 127.0.0.1.
        SIGNER: "v=spf1 ip4:127.0.0.1 -all",
        f"_dmarc.{SIGNER}": "v=DMARC1; p=reject",
        "pass.test": "v=spf1 ip4:127.0.0.0/8 -all",
        "_dmarc.pass.test": "v=DMARC1; p=quarantine",
        "fail.test": "v=spf1 ip4:192.0.2.1 -all",
        "_dmarc.fail.test": "v=DMARC1; p=reject",
        "soft.test": "v=spf1 ip4:192.0.2.1 ~all",
        "helo.pass.test": "v=spf1 ip4:127.0.0.1 -all",
    })
    dnsmasq = Dnsmasq(tmp, mx={}, hosts={"relay.test": RELAY_IP}, txt=txt, port=dns_port)
    server.start()
    yield World(server, dnsmasq, relay, outside_file)
    relay.stop()
    dnsmasq.stop()


def submit(server, sender: str, recipient: str, message: bytes):
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
        client.login(ALICE, PASSWORD)
        client.sendmail(sender, [recipient], message)


def inbound(server, sender: str, message: bytes, helo: str = "client.pass.test"):
    """Port 25 without login, to ALICE: the stored message, once there."""
    before = set(server.new_files(ALICE))
    with server.client() as client:
        client.settimeout(60)  # the checks may take their bound (docs/filters.md)
        client.ehlo(helo)
        client.transaction(sender, [ALICE], message)
    new = wait_until(lambda: [p for p in server.new_files(ALICE) if p not in before], 10,
                     what="the delivery")
    return new[0].read_bytes()


def header_of(message: bytes) -> str:
    return message.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode()


def auth_results(message: bytes) -> list[str]:
    """Every Authentication-Results field, unfolded."""
    unfolded = re.sub(r"\n[ \t]+", " ", header_of(message))
    return [line for line in unfolded.split("\n")
            if line.lower().startswith("authentication-results:")]


def our_results(message: bytes) -> str:
    fields = [f for f in auth_results(message)
              if f.split(":", 1)[1].strip().lower().startswith(HELO_NAME + ";")]
    assert len(fields) == 1, fields
    return fields[0]


def dkimpy_results(world: World, message: bytes) -> dict[str, bool]:
    """dkimpy's verdict on each DKIM-Signature of `message`: {"a=...; s=...": passed}."""
    message = crlf(message)
    checker = dkim.DKIM(message)
    signatures = [f for f in re.sub(r"\r\n[ \t]+", " ", message.split(b"\r\n\r\n", 1)[0].decode())
                  .split("\r\n") if f.lower().startswith("dkim-signature:")]
    results = {}
    for index, field in enumerate(signatures):
        value = re.sub(r"\s", "", field.split(":", 1)[1])
        tags = dict(part.split("=", 1) for part in value.split(";") if "=" in part)
        try:
            passed = checker.verify(idx=index, dnsfunc=world.txt)
        except dkim.ValidationError:  # a body hash mismatch is raised, not returned
            passed = False
        results[f"{tags['a']} {tags['s']}"] = passed
    return results


def relayed(world: World, token: str):
    return wait_until(lambda: [r for r in world.relay.received if token.encode() in r.data], 20,
                      what="the message at the smarthost")[0]


# ------------------------------------------------------------------------------ signing


def test_outgoing_mail_carries_rsa_and_ed25519_signatures_dkimpy_verifies(world):
    message = crlf(f"From: Alice <{ALICE}>\nTo: <friend@far-away.test>\nCc: <x@far-away.test>\n"
                   "Subject: signed dkim-out\nDate: Wed, 02 Dec 2026 01:00:00 +0000\n"
                   "Message-ID: <dkim-out@example.test>\nMIME-Version: 1.0\n"
                   "Content-Type: text/plain; charset=utf-8\n\nHello,  \n  world.\n\n\n")
    submit(world.server, ALICE, "friend@far-away.test", message)
    got = relayed(world, "dkim-out")
    results = dkimpy_results(world, got.data)
    assert results == {f"rsa-sha256 {SELECTOR}": True,
                       f"ed25519-sha256 {SELECTOR}-ed25519": True}, (results, got.data)
    header = header_of(got.data)
    assert "c=relaxed/relaxed" in header
    # From is oversigned: h= names it once more than the message has it.
    h = re.search(r"h=([^;]*)", re.sub(r"\s", "", header)).group(1).lower().split(":")
    assert h.count("from") == 2, h
    for name in ("to", "cc", "subject", "date", "message-id", "mime-version", "content-type"):
        assert name in h, h


def test_a_tampered_signed_message_fails_at_dkimpy(world):
    submit(world.server, ALICE, "friend@far-away.test",
           make_message("dkim-tamper", sender=ALICE, to="friend@far-away.test"))
    got = relayed(world, "dkim-tamper")
    assert all(dkimpy_results(world, got.data).values())
    tampered = got.data.replace(b"dkim-tamper\r\nHello.", b"dkim-tamper\r\nHullo.")
    assert tampered != got.data
    results = dkimpy_results(world, tampered)
    assert results and not any(results.values()), results


def test_signed_after_the_change_sender_rewrite(make_server, bin_path, tmp_path):
    """relay.changeSender rewrites From in the queue; the signature covers the rewritten
    field (made after it), so it verifies at the next hop."""
    keys = tmp_path / "keys"
    keys.mkdir()
    dns_port = free_port()
    relay = Peer(RELAY_IP, port=free_port())
    server = make_server(extra={
        "dns": {"nameservers": [f"127.0.0.1:{dns_port}"]},
        "dkim": {"sign": True, "selector": SELECTOR, "keyDirectory": str(keys)},
        "relay": {"host": "relay.test", "port": relay.controller.port,
                  "changeSender": {"enable": True, "address": f"news@{DOMAIN}"}},
    }, start=False)
    name, strings = keygen(bin_path, server.config_path, "ed25519")
    dnsmasq = Dnsmasq(tmp_path, mx={}, hosts={"relay.test": RELAY_IP},
                      txt={name: ",".join(strings)}, port=dns_port)
    try:
        server.start()
        message = crlf(f"From: \"Bob B.\" <{BOB}>\nTo: <friend@far-away.test>\n"
                       "Subject: rewritten dkim-change\n\ndkim-change\n")
        submit(server, ALICE, "friend@far-away.test", message)
        world = World(server, dnsmasq, relay, None)
        got = relayed(world, "dkim-change")
        assert f"From: \"Bob B.\" <news@{DOMAIN}>" in header_of(got.data)
        assert dkimpy_results(world, got.data) == {f"ed25519-sha256 {SELECTOR}-ed25519": True}
    finally:
        relay.stop()
        dnsmasq.stop()


def test_local_to_local_submission_is_signed(world):
    before = set(world.server.new_files(BOB))
    submit(world.server, ALICE, BOB, make_message("dkim-local", sender=ALICE, to=BOB))
    new = wait_until(lambda: [p for p in world.server.new_files(BOB) if p not in before], 10,
                     what="the delivery to bob")
    stored = new[0].read_bytes()
    assert dkimpy_results(world, stored) == {f"rsa-sha256 {SELECTOR}": True,
                                             f"ed25519-sha256 {SELECTOR}-ed25519": True}
    # Mail from a logged-in client is not inbound: no Authentication-Results.
    assert auth_results(stored) == []


def test_mail_from_other_domains_is_not_signed(world):
    submit(world.server, ALICE, "friend@far-away.test",
           make_message("dkim-foreign", sender="someone@elsewhere.test",
                        to="friend@far-away.test"))
    got = relayed(world, "dkim-foreign")
    assert b"DKIM-Signature" not in got.data


# ------------------------------------------------------------------------------ verification


def dkimsign(world: World, message: bytes) -> bytes:
    out = subprocess.run(["dkimsign", SIGNER_SELECTOR, SIGNER, str(world.outside_key),
                          "--hcanon", "relaxed", "--bcanon", "relaxed"],
                         input=message, capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(b"DKIM-Signature:"), out.stdout[:200]
    return crlf(out.stdout)


def test_a_dkimsign_signature_passes_with_spf_and_dmarc(world):
    signed = dkimsign(world, make_message("dkim-in-pass", sender=f"news@{SIGNER}"))
    stored = inbound(world.server, f"bounce@{SIGNER}", signed)
    results = our_results(stored)
    assert re.search(rf"dkim=pass\b[^;]*header\.d={SIGNER}", results) or \
        re.search(rf"dkim=pass\b[^;]*header\.i=\"?@{SIGNER}", results), results
    assert re.search(rf"spf=pass\b[^;]*smtp\.mailfrom=\"?bounce@{SIGNER}", results), results
    assert re.search(rf"dmarc=pass\b[^;]*header\.from={SIGNER}", results), results
    # On top of the message (below our own Received line).
    lines = header_of(stored).split("\n")
    first_field = next(i for i, l in enumerate(lines) if l.lower().startswith("authentication-results:"))
    assert all(l.startswith(("Return-Path:", "Received:", "\t", " ")) for l in lines[:first_field])


@pytest.mark.parametrize("where", ["body", "subject"])
def test_tampered_after_dkimsign_fails(world, where):
    signed = dkimsign(world, make_message(f"dkim-in-tamper-{where}", sender=f"news@{SIGNER}"))
    tampered = signed.replace(b"Hello.", b"Hullo.") if where == "body" else \
        signed.replace(b"Subject: test", b"Subject: best")
    assert tampered != signed
    results = our_results(inbound(world.server, f"bounce@{SIGNER}", tampered))
    assert re.search(r"dkim=fail\b", results), results
    # SPF passes and is aligned: DMARC still passes (RFC 7489 §4.2).
    assert re.search(r"spf=pass\b", results) and re.search(r"dmarc=pass\b", results), results


@pytest.mark.parametrize("domain, spf, dmarc", [
    ("pass.test", "pass", "pass"),
    ("fail.test", "fail", "fail"),
    ("soft.test", "softfail", "none"),
])
def test_spf_and_dmarc_results(world, domain, spf, dmarc):
    token = f"dkim-spf-{domain.split('.')[0]}"
    stored = inbound(world.server, f"user@{domain}", make_message(token, sender=f"user@{domain}"))
    results = our_results(stored)
    assert "dkim=none" in results, results
    assert re.search(rf"spf={spf}\b[^;]*smtp\.mailfrom=\"?user@{domain}", results), results
    assert re.search(rf"dmarc={dmarc}\b[^;]*header\.from={domain}", results), results


def test_null_sender_is_checked_by_its_helo_name(world):
    stored = inbound(world.server, "", make_message("dkim-null", sender="mailer@pass.test"),
                     helo="helo.pass.test")
    results = our_results(stored)
    assert re.search(r"spf=pass\b[^;]*smtp\.helo=helo\.pass\.test", results), results


def test_a_forged_field_with_our_authserv_id_is_removed(world):
    forged = crlf(f"Authentication-Results: {HELO_NAME}; dkim=pass header.d=bank.test\n"
                  f"Authentication-Results: (comment) {HELO_NAME.upper()};\n spf=pass\n"
                  "Authentication-Results: other.example; dkim=fail\n") + \
        make_message("dkim-forged", sender="user@fail.test")
    stored = inbound(world.server, "user@fail.test", forged)
    fields = auth_results(stored)
    ours = our_results(stored)
    assert "bank.test" not in ours and "spf=fail" in ours, ours
    assert [f for f in fields if "other.example" in f] == \
        ["Authentication-Results: other.example; dkim=fail"], fields
    assert len(fields) == 2, fields
    assert "removed Authentication-Results" in world.server.stderr()


# ------------------------------------------------------------------------------ keys


def test_keygen_and_check_config_on_key_files(make_server, bin_path, tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    server = make_server(extra={"dkim": {"sign": True, "selector": "k1",
                                         "keyDirectory": str(keys)}}, start=False)
    config = str(server.config_path)
    # Only our domains: the key would sign nothing.
    out = subprocess.run([bin_path, "dkim-keygen", "--config", config, "--domain", "other.test"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "not one of the domains" in out.stderr, out.stderr
    name, strings = keygen(bin_path, server.config_path, "rsa")
    assert name == f"k1._domainkey.{DOMAIN}" and len(strings) == 2, (name, strings)
    assert "".join(strings).startswith("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A")
    assert all(len(s) <= 255 for s in strings)
    # An existing key is never overwritten.
    key_file = keys / f"{DOMAIN}.k1.rsa.pem"
    before = key_file.read_bytes()
    out = subprocess.run([bin_path, "dkim-keygen", "--config", config, "--domain", DOMAIN],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "already exists" in out.stderr, out.stderr
    assert key_file.read_bytes() == before
    ok = subprocess.run([bin_path, "check-config", "--config", config], capture_output=True,
                        text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    # A key file that cannot be used is a problem check-config names.
    (keys / f"{DOMAIN}.k1.ed25519.pem").write_text("not a key\n")
    bad = subprocess.run([bin_path, "check-config", "--config", config], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode != 0, bad.stdout
    assert any(l.startswith("dkim.keyDirectory: ") and f"{DOMAIN}.k1.ed25519.pem" in l
               for l in bad.stderr.splitlines()), bad.stderr


def test_dns_down_still_delivers_with_temperror(make_server):
    """No DNS server where dns.nameservers points: the message is accepted and stored, the
    field says temperror (bounded: docs/filters.md)."""
    server = make_server(extra={"dns": {"nameservers": [f"127.0.0.1:{free_port()}"]},
                                "dkim": {"verify": True}})
    import time
    started = time.monotonic()
    stored = inbound(server, "user@pass.test", make_message("dkim-dns-down",
                                                             sender="user@pass.test"))
    took = time.monotonic() - started
    results = our_results(stored)
    assert "dkim=none" in results and re.search(r"spf=temperror\b", results), results
    assert re.search(r"dmarc=(temperror|none)\b", results), results
    assert took < 25, took
