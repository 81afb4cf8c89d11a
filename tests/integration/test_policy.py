"""The inbound policy (issue 13, docs/policy.md) with a real DNS server: dnsmasq on loopback
serves the PTR and A records of the test clients and a DNSBL zone (198.18.0.2 listed, with a
TXT reason); the SMTP clients bind different 198.18.0.x source addresses (on the loopback
interface: the `test_network` fixture; 127.0.0.x can't have PTR records, see conftest.py) to
be different clients. Lists (every entry kind, white and black, the stage each acts at), relaying for
unforgeable whitelist entries only, the DNSBL (listed, down, `dnsblUnreachable`), the
forward/reverse DNS check, reload of the lists, and one log line per decision."""

from __future__ import annotations

import signal

import pytest

from icshelpers import (
    ALICE,
    PASSWORD,
    make_message,
    plain_response,
    wait_until,
    write_config,
)
from queuepeers import Dnsmasq

BL_ZONE = "bl.test"
# Client addresses and their DNS:
LISTED = "198.18.0.2"       # listed in the DNSBL
CLEAN = "198.18.0.3"        # not listed, no PTR
NAMED = "198.18.0.4"        # PTR mx4.client.test, which points back (forward-confirmed)
FORGED = "198.18.0.5"       # PTR mx5.partner.test, which does not point back
BAD_HOST = "198.18.0.6"     # PTR/A bad.spammer.test
PARTNER = "198.18.0.7"      # PTR/A mx.partner.test
LISTED_NAME = f"2.0.18.198.{BL_ZONE}"


@pytest.fixture
def dns(tmp_path, test_network):
    server = Dnsmasq(
        tmp_path,
        mx={},
        hosts={"mx4.client.test": NAMED, "bad.spammer.test": BAD_HOST,
               "mx.partner.test": PARTNER,
               # the DNSBL's answer for a listed address (RFC 5782 §2.3)
               LISTED_NAME: "127.0.0.2"},
        ptr={FORGED: "mx5.partner.test"},
        txt={LISTED_NAME: "listed for testing, see https://bl.test/lookup"},
    )
    yield server
    server.stop()


def policy_server(make_server, dns, **extra):
    config = {"dns": {"nameservers": [dns.nameserver]}}
    for key, value in extra.items():
        config[key] = value
    return make_server(extra=config)


def greeting(server, source: str):
    client = server.client(source=source, greeting=False)
    return client, client.read_reply()


def mail(server, source: str, sender: str = "someone@example.org", recipient: str = ALICE):
    """EHLO, MAIL and RCPT from `source`: the codes of MAIL and RCPT (RCPT None if MAIL failed)."""
    with server.client(source=source) as client:
        client.ehlo()
        reply = client.cmd(f"MAIL FROM:<{sender}>")
        if reply.code != 250:
            return reply.code, None, reply.text
        rcpt = client.cmd(f"RCPT TO:<{recipient}>")
        return reply.code, rcpt.code, rcpt.text


def log_has(server, *parts: str) -> bool:
    return any(all(p in line for p in parts) for line in server.stderr().splitlines())


# ------------------------------------------------------------------------------ blacklist


def test_blacklisted_address_is_refused_at_connect(make_server, dns):
    server = policy_server(make_server, dns, lists={"blacklist": [CLEAN]})
    client, hello = greeting(server, CLEAN)
    assert hello.code == 554 and hello.lines[0].startswith("554 5.7.1"), hello.text
    # RFC 5321 §3.1: after a 554 greeting only QUIT is answered.
    client.cmd("EHLO c.example", 503)
    client.cmd("QUIT", 221)
    client.close()
    assert wait_until(lambda: log_has(server, "connect", "blacklist", CLEAN))
    _, hello = greeting(server, NAMED)
    assert hello.code == 220, "another client is not refused"


def test_blacklisted_network_is_refused_at_connect(make_server, dns):
    server = policy_server(make_server, dns, lists={"blacklist": ["198.18.0.0/30"]})
    assert greeting(server, LISTED)[1].code == 554
    assert greeting(server, NAMED)[1].code == 220, "198.18.0.4 is outside 198.18.0.0/30"


def test_blacklisted_mail_server_is_refused_at_connect_only_when_forward_confirmed(make_server,
                                                                                   dns):
    server = policy_server(make_server, dns,
                           lists={"blacklist": ["bad.spammer.test", "partner.test"]})
    assert greeting(server, BAD_HOST)[1].code == 554
    assert greeting(server, PARTNER)[1].code == 554, "a name below a domain entry"
    # 198.18.0.5's PTR names partner.test, but the name does not point back: not proof.
    assert greeting(server, FORGED)[1].code == 220


def test_blacklisted_sender_domain_and_mailbox_are_refused_at_mail(make_server, dns):
    server = policy_server(make_server, dns,
                           lists={"blacklist": ["spam.example", "boss@partner.example"]})
    assert mail(server, CLEAN, "anyone@spam.example")[0] == 554
    assert mail(server, CLEAN, "a@sub.spam.example")[0] == 554
    assert mail(server, CLEAN, "boss@partner.example")[0] == 554
    assert mail(server, CLEAN, "other@partner.example")[:2] == (250, 250)
    assert wait_until(lambda: log_has(server, "mail", "blacklist", "spam.example"))


# ------------------------------------------------------------------------------ whitelist


def test_whitelisted_address_and_network_relay_without_auth(make_server, dns):
    server = policy_server(make_server, dns,
                           lists={"whitelist": [CLEAN, "198.18.0.16/28"]})
    assert mail(server, CLEAN, recipient="x@remote.example")[:2] == (250, 250)
    assert mail(server, "198.18.0.17", recipient="x@remote.example")[:2] == (250, 250)
    assert mail(server, NAMED, recipient="x@remote.example")[:2] == (250, 554), \
        "never an open relay"


def test_whitelisted_mail_server_relays_only_when_forward_confirmed(make_server, dns):
    server = policy_server(make_server, dns, lists={"whitelist": ["partner.test"]})
    assert mail(server, PARTNER, recipient="x@remote.example")[:2] == (250, 250)
    assert mail(server, FORGED, recipient="x@remote.example")[:2] == (250, 554), \
        "a forged PTR name grants nothing"


def test_whitelisted_sender_skips_checks_but_never_relays(make_server, dns):
    server = policy_server(make_server, dns,
                           lists={"whitelist": ["friend.example", "pal@else.example"]},
                           spam={"dnsbl": [BL_ZONE], "requireReverseDns": True})
    # The listed client gets through with a whitelisted sender domain or mailbox ...
    assert mail(server, LISTED, "a@friend.example")[:2] == (250, 250)
    assert mail(server, LISTED, "pal@else.example")[:2] == (250, 250)
    # Not whitelisted: no forward-confirmed name (checked before the DNSBL).
    assert mail(server, LISTED, "other@else.example")[0] == 450
    # ... but anyone can write a sender: it never relays.
    assert mail(server, CLEAN, "a@friend.example", "x@remote.example")[:2] == (250, 554)


def test_whitelist_wins_over_blacklist(make_server, dns):
    server = policy_server(make_server, dns,
                           lists={"whitelist": [CLEAN], "blacklist": ["198.18.0.0/24"]})
    assert greeting(server, CLEAN)[1].code == 220
    assert greeting(server, NAMED)[1].code == 554


# ------------------------------------------------------------------------------ DNSBL


def test_dnsbl_listed_client_is_refused_naming_zone_and_reason(make_server, dns):
    server = policy_server(make_server, dns, spam={"dnsbl": ["zero.test", BL_ZONE]})
    code, _, text = mail(server, LISTED)
    assert code == 554 and BL_ZONE in text and "listed for testing" in text, text
    assert mail(server, CLEAN)[:2] == (250, 250)
    assert wait_until(lambda: log_has(server, "dnsbl", BL_ZONE))


def test_logged_in_clients_are_not_checked(make_server, dns, certs):
    from icshelpers import tls_overrides, free_port
    overrides = tls_overrides(certs.rsa, "optional", submission_port=free_port())
    overrides.update({"dns": {"nameservers": [dns.nameserver]},
                      "spam": {"dnsbl": [BL_ZONE]}})
    server = make_server(extra=overrides)
    with server.client(source=LISTED) as client:
        client.ehlo()
        client.cmd("AUTH PLAIN " + plain_response(ALICE, PASSWORD), 235)
        client.cmd(f"MAIL FROM:<{ALICE}>", 250)
        client.cmd("RCPT TO:<x@remote.example>", 250)


def test_dnsbl_down_is_a_temporary_error_and_nothing_is_lost(make_server, dns, tmp_path):
    server = policy_server(make_server, dns, spam={"dnsbl": [BL_ZONE]})
    port = dns.port
    dns.stop()
    code, _, text = mail(server, CLEAN)
    assert code == 451, text
    # The sender retries once the list answers again: the message arrives.
    dns2 = Dnsmasq(tmp_path, mx={}, hosts={LISTED_NAME: "127.0.0.2"}, port=port)
    try:
        def retry():
            with server.client(source=CLEAN) as client:
                client.ehlo()
                if client.cmd("MAIL FROM:<someone@example.org>").code != 250:
                    return False
                client.cmd(f"RCPT TO:<{ALICE}>", 250)
                client.data(make_message("after-dnsbl-outage"))
                return True
        assert wait_until(retry, timeout=20, interval=1)
        assert any(b"after-dnsbl-outage" in m for m in server.new_messages(ALICE))
    finally:
        dns2.stop()


def test_dnsbl_unreachable_reject_is_the_seeds_reading(make_server, dns):
    server = policy_server(make_server, dns,
                           spam={"dnsbl": [BL_ZONE], "dnsblUnreachable": "reject"})
    dns.stop()
    assert mail(server, CLEAN)[0] == 554


# ------------------------------------------------------------------------------ reverse DNS


def test_clients_without_forward_confirmed_name_get_450(make_server, dns):
    server = policy_server(make_server, dns, spam={"requireReverseDns": True})
    code, _, text = mail(server, CLEAN)
    assert code == 450, text
    code, _, text = mail(server, FORGED)
    assert code == 450 and "mx5.partner.test" in text, text
    assert mail(server, NAMED)[:2] == (250, 250)


def test_forward_confirmed_name_is_in_the_received_header(make_server, dns):
    server = policy_server(make_server, dns, spam={"requireReverseDns": True})
    with server.client(source=NAMED) as client:
        client.ehlo()
        client.transaction("a@example.org", [ALICE], make_message("fcrdns"))
    stored = server.new_messages(ALICE)[0]
    assert b"(mx4.client.test [198.18.0.4])" in stored, stored[:300]


# ------------------------------------------------------------------------------ reload


def test_a_blacklist_entry_added_by_reload_refuses_the_next_connection(make_server, dns):
    server = policy_server(make_server, dns)
    assert greeting(server, CLEAN)[1].code == 220
    server.config["lists"] = {"blacklist": [CLEAN]}
    write_config(server.config_path, server.config)
    before = server.stderr().count("settings reloaded")
    server.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: server.stderr().count("settings reloaded") > before)
    assert greeting(server, CLEAN)[1].code == 554
