"""The smarthost (`relay.*`) with real peers (aiosmtpd): STARTTLS + AUTH with a verified
certificate, SMTPS + AUTH, a wrong password (deferred, not bounced) and changeSender."""

from __future__ import annotations

import smtplib

import pytest

from icshelpers import ALICE, PASSWORD, TLSClient, crlf, free_port, make_message
from queuepeers import (CapturePeer, Dnsmasq, Peer, envelopes, make_ca, server_tls_context,
                        wait_until)

RELAY_IP = "127.0.0.6"
RELAY_USER = "relay-user"
RELAY_PASSWORD = "relay-secret"


@pytest.fixture(scope="module")
def dns(tmp_path_factory):
    server = Dnsmasq(tmp_path_factory.mktemp("dns"), {}, {"relay.test": RELAY_IP})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return make_ca(tmp_path_factory.mktemp("relay-ca"), ["relay.test"], [RELAY_IP])


@pytest.fixture
def peers():
    started = []

    def start(**kwargs):
        peer = Peer(RELAY_IP, port=free_port(), **kwargs)
        started.append(peer)
        return peer

    yield start
    for peer in started:
        peer.stop()


@pytest.fixture
def relayed(make_server, dns, ca, tmp_path):
    """ics-mail relaying everything through `relay.test:<port>`."""
    def start(port: int, **relay):
        password_file = tmp_path / "relay-password"
        password_file.write_text(RELAY_PASSWORD + "\n")
        settings = {"host": "relay.test", "port": port}
        for key, value in relay.items():
            if key == "auth":
                value = {"enable": True, "user": RELAY_USER, "passwordFile": str(password_file),
                         **value}
            settings[key] = value
        server = make_server(extra={"dns": {"nameservers": [dns.nameserver]}, "relay": settings},
                             start=False)
        server.extra_env["SSL_CERT_FILE"] = str(ca.ca_cert)
        return server.start()
    return start


def submit(server, recipient: str, token: str):
    message = make_message(token, sender=ALICE, to=recipient)
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
        client.login(ALICE, PASSWORD)
        client.sendmail(ALICE, [recipient], message)


def received(peer, token: str):
    return wait_until(lambda: [r for r in peer.received if token.encode() in r.data], 20,
                      what="the message at the relay")[0]


def test_starttls_and_auth_with_a_verified_certificate(relayed, peers, ca):
    peer = peers(starttls=server_tls_context(ca), users={RELAY_USER: RELAY_PASSWORD})
    server = relayed(peer.controller.port, auth={})
    submit(server, "friend@far-away.test", "relay-starttls")
    got = received(peer, "relay-starttls")
    assert got.tls, got
    assert [(login, ok) for _, login, ok in peer.auth_attempts] == [(RELAY_USER, True)]
    assert got.mail_from == ALICE and got.rcpt_tos == ["friend@far-away.test"]
    wait_until(lambda: not envelopes(server), 10, what="the queue to empty")


def test_smtps_and_auth(relayed, peers, ca):
    peer = peers(implicit_tls=server_tls_context(ca), users={RELAY_USER: RELAY_PASSWORD})
    server = relayed(peer.controller.port, smtps=True, auth={})
    submit(server, "friend@far-away.test", "relay-smtps")
    got = received(peer, "relay-smtps")
    assert [(login, ok) for _, login, ok in peer.auth_attempts] == [(RELAY_USER, True)], got
    wait_until(lambda: not envelopes(server), 10, what="the queue to empty")


def test_wrong_password_defers(relayed, peers, ca):
    peer = peers(starttls=server_tls_context(ca), users={RELAY_USER: "another password"})
    server = relayed(peer.controller.port, auth={})
    submit(server, "friend@far-away.test", "relay-badpass")
    env = wait_until(lambda: [e for e in envelopes(server) if e["attempts"] >= 1], 20,
                     what="a failed attempt")[0]
    rcpt = env["recipients"][0]
    assert rcpt["status"] == "deferred" and "535" in rcpt["reply"], rcpt
    assert peer.auth_attempts and not peer.auth_attempts[0][2]
    assert not peer.received


def test_untrusted_certificate_is_refused_when_logging_in(relayed, peers, tmp_path):
    other = make_ca(tmp_path / "other-ca", ["relay.test"], [RELAY_IP])
    peer = peers(starttls=server_tls_context(other), users={RELAY_USER: RELAY_PASSWORD})
    server = relayed(peer.controller.port, auth={})
    submit(server, "friend@far-away.test", "relay-untrusted")
    env = wait_until(lambda: [e for e in envelopes(server) if e["attempts"] >= 1], 20,
                     what="a failed attempt")[0]
    assert env["recipients"][0]["status"] == "deferred", env
    assert "TLS" in env["recipients"][0]["reply"], env
    assert not peer.auth_attempts, "no password sent to an unverified server"


def test_change_sender_rewrites_envelope_and_from(relayed, peers):
    peer = peers()
    server = relayed(peer.controller.port,
                     changeSender={"enable": True, "address": "account@isp.test"})
    submit(server, "friend@far-away.test", "relay-change")
    got = received(peer, "relay-change")
    assert got.mail_from == "account@isp.test", got
    header = got.data.split(b"\r\n\r\n", 1)[0].decode()
    assert "From: <account@isp.test>" in header, header
    assert "alice@example.test" not in header.split("From:", 1)[1].split("\r\n")[0]


@pytest.mark.parametrize("body", [b"A\r.\rX", b"A\r.\r\nX"], ids=["cr-dot-cr", "cr-dot-crlf"])
def test_relayed_data_has_no_bare_cr(relayed, body):
    """Issue 10 item 5: a submission with bare CRs around a dot line, relayed: on the wire to
    the next hop every line ends in CRLF and the dot line is stuffed, so a next hop that takes
    `<CR>.<CR>` for the end of data cannot be smuggled into through us."""
    capture = CapturePeer(RELAY_IP, free_port())
    try:
        server = relayed(capture.port)
        token = f"bare-cr-{len(body)}"
        head = crlf(f"From: <{ALICE}>\nTo: <friend@far-away.test>\nSubject: {token}\n\n")
        with TLSClient(server.port) as client:
            client.ehlo()
            client.auth_plain(ALICE, PASSWORD, "235 2.7.0")
            client.cmd(f"MAIL FROM:<{ALICE}>", "250 2.1.0")
            client.cmd("RCPT TO:<friend@far-away.test>", "250 2.1.5")
            client.cmd("DATA", 354)
            client.send(head + body + b"\r\n.\r\n")
            client.expect("250 2.0.0")
            client.cmd("QUIT", 221)
        wire = wait_until(lambda: [w for w in capture.wire if token.encode() in w], 20,
                          what="the message at the capture peer")[0]
        assert wire.endswith(b"\r\nA\r\n..\r\nX\r\n.\r\n"), wire[-60:]
        assert wire.count(b"\r") == wire.count(b"\r\n") == wire.count(b"\n"), wire
        wait_until(lambda: not envelopes(server), 10, what="the queue to empty")
    finally:
        capture.stop()
