"""The outbound queue with real peers on 127.0.0.x: dnsmasq serves the MX and A records,
Postfix is the remote MX (with STARTTLS), aiosmtpd peers answer 4xx or hang. Time passing is
simulated by moving the times in the queue's JSON envelopes back, as documented in
docs/queue.md; `icsmail queue run` is the timer's pass."""

from __future__ import annotations

import email
import email.policy
import shutil
import smtplib
import tempfile
import time
from pathlib import Path

import pytest

from icshelpers import ALICE, PASSWORD, make_message, port_is_free
from queuepeers import (Dnsmasq, Peer, PrivatePostfix, envelopes, iso, kill9, make_ca,
                        parse_iso, queue_cli, queue_dir, rewrite_envelope,
                        start_runner, wait_until)

POSTFIX_IP = "127.0.0.2"
DOWN_IP = "127.0.0.3"
BUSY_IP = "127.0.0.4"
SLOW_IP = "127.0.0.5"
DEAD_IP = "127.0.0.9"

MX = {
    "remote.test": [(10, "mx.remote.test")],
    "backup.test": [(10, "mx1.backup.test"), (20, "mx.remote.test")],
    "down.test": [(10, "mx.down.test")],
    "busy.test": [(10, "mx.busy.test")],
    "slow.test": [(10, "mx.slow.test")],
}
HOSTS = {
    "mx.remote.test": POSTFIX_IP,
    "mx1.backup.test": DEAD_IP,
    "mx.down.test": DOWN_IP,
    "mx.busy.test": BUSY_IP,
    "mx.slow.test": SLOW_IP,
}
SCHEDULE = {"interval": 5, "delayMin": 10, "delayMax": 17, "maxLifetime": 60}


@pytest.fixture(scope="module")
def dns(tmp_path_factory):
    server = Dnsmasq(tmp_path_factory.mktemp("dns"), MX, HOSTS)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def postfix(tmp_path_factory):
    for ip in (POSTFIX_IP, DOWN_IP, BUSY_IP, SLOW_IP, DEAD_IP):
        assert port_is_free(25, ip), f"port 25 on {ip} is taken: the tests need it"
    ca = make_ca(tmp_path_factory.mktemp("ca"), ["mx.remote.test"], [POSTFIX_IP])
    # Postfix's own users must reach its directories: not under pytest's private temp dir.
    base = Path(tempfile.mkdtemp(prefix="ics-queue-postfix-", dir="/var/tmp"))
    instance = PrivatePostfix(base, POSTFIX_IP,
                              ["remote.test", "backup.test"],
                              ["bob@remote.test", "carol@remote.test", "dave@backup.test"],
                              tls=(ca.cert, ca.key))
    yield instance
    instance.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def mta(make_server, dns):
    """ics-mail with the test resolver and a short schedule (minutes)."""
    def start(**extra):
        config = {"dns": {"nameservers": [dns.nameserver]}, "queue": dict(SCHEDULE)}
        config.update(extra)
        return make_server(extra=config)
    return start


def submit(server, recipients, token, sender=ALICE, subject="queue test", body="Hello.\n"):
    message = make_message(token, sender=sender, to=recipients[0], subject=subject, body=body)
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
        client.ehlo("client.example.org")
        client.login(ALICE, PASSWORD)
        refused = client.sendmail(sender, recipients, message)
    assert refused == {}, refused
    return message


def only_envelope(server) -> dict:
    found = wait_until(lambda: envelopes(server), 10, what="a queued message")
    assert len(found) == 1, found
    return found[0]


def wait_attempts(server, count: int, timeout: float = 20) -> dict:
    def done():
        found = envelopes(server)
        return found and found[0]["attempts"] >= count and found[0]
    return wait_until(done, timeout, what=f"{count} attempt(s)")


def make_due(server, env: dict) -> dict:
    """Time passes: the retry time has come."""
    return rewrite_envelope(server, env["id"], nextAttempt=iso(time.time() - 1))


def run_pass(bin_path, server):
    result = queue_cli(bin_path, server, "run")
    assert result.returncode == 0, result.stderr
    return result


def dsn_of(server, token: str, timeout: float = 20) -> email.message.EmailMessage:
    def find():
        for raw in server.new_messages(ALICE):
            if token.encode() in raw and b"multipart/report" in raw:
                return raw
        return None
    raw = wait_until(find, timeout, what=f"a delivery status notification about {token}")
    assert raw.startswith(b"Return-Path: <>\n"), raw[:200]
    return email.message_from_bytes(raw, policy=email.policy.default)


def report_text(dsn: email.message.EmailMessage) -> str:
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    parts = {part.get_content_type(): part for part in dsn.iter_parts()}
    assert set(parts) >= {"text/plain", "message/delivery-status"}, parts
    assert {"text/rfc822-headers", "message/global-headers"} & set(parts), parts
    status = parts["message/delivery-status"]
    text = "\n".join(str(block) for block in status.get_payload())
    return text


def test_delivered_to_postfix_with_starttls(mta, postfix):
    server = mta()
    token = "mx-starttls-1"
    submit(server, ["bob@remote.test"], token)
    stored = wait_until(lambda: [m for m in postfix.messages("bob@remote.test")
                                 if token.encode() in m], 20, what="the message at Postfix")
    text = stored[0].decode(errors="replace")
    assert "(using TLS" in text, f"no TLS in Postfix's Received header:\n{text[:1500]}"
    assert "from mx.example.test" in text, "our heloName in EHLO"
    assert "by mx.example.test (ics-mail)" in text, "our own Received header travels along"
    assert "Return-Path: <alice@example.test>" in text
    wait_until(lambda: not envelopes(server), 10, what="the queue to empty")
    assert not list(queue_dir(server).glob("*.eml"))


def test_backup_mx_when_the_first_is_down(mta, postfix):
    server = mta()
    token = "backup-mx-1"
    submit(server, ["dave@backup.test"], token)
    wait_until(lambda: [m for m in postfix.messages("dave@backup.test") if token.encode() in m],
               30, what="delivery through the second MX")
    wait_until(lambda: not envelopes(server), 10, what="the queue to empty")


def test_partial_success_and_permanent_failure_bounce(mta, postfix):
    server = mta()
    token = "partial-1"
    submit(server, ["carol@remote.test", "nobody@remote.test"], token)
    wait_until(lambda: [m for m in postfix.messages("carol@remote.test") if token.encode() in m],
               20, what="carol's copy")
    dsn = dsn_of(server, token)
    assert dsn["To"].addresses[0].addr_spec == ALICE
    assert "MAILER-DAEMON@mx.example.test" in dsn["From"]
    status = report_text(dsn)
    assert "Final-Recipient: rfc822; nobody@remote.test" in status, status
    assert "Status: 5.1.1" in status and "Action: failed" in status, status
    assert "carol@remote.test" not in status, "only the failed recipient is reported"
    assert "Remote-MTA: dns; mx.remote.test" in status
    headers = [p for p in dsn.iter_parts() if p.get_content_type() == "text/rfc822-headers"][0]
    assert f"Subject: queue test {token}" in headers.get_content(), "original headers returned"
    wait_until(lambda: not envelopes(server), 10, what="the queue to empty")


def test_unknown_domain_bounces_at_once(mta):
    server = mta()
    token = "nxdomain-1"
    submit(server, ["someone@nosuch.test"], token)
    status = report_text(dsn_of(server, token))
    assert "Status: 5.1.2" in status, status
    wait_until(lambda: not envelopes(server), 10, what="the queue to empty")


def test_nobody_listening_defers_on_schedule_then_delivers(mta, bin_path):
    server = mta()
    token = "schedule-1"
    submit(server, ["user@down.test"], token)
    env = wait_attempts(server, 1)
    rcpt = env["recipients"][0]
    assert rcpt["status"] == "deferred", env
    assert "4.4.1" in rcpt["reply"] and DOWN_IP in rcpt["reply"], rcpt
    waits = [parse_iso(env["nextAttempt"]) - parse_iso(env["lastAttempt"])]
    assert env["lastError"] == rcpt["reply"]
    # Not due yet: a pass leaves it alone.
    run_pass(bin_path, server)
    assert envelopes(server)[0]["attempts"] == 1
    # Time passes, three more failed attempts: 10, 15, 17 (capped), 17 minutes.
    for attempt in (2, 3, 4):
        make_due(server, envelopes(server)[0])
        run_pass(bin_path, server)
        env = envelopes(server)[0]
        assert env["attempts"] == attempt, env
        waits.append(parse_iso(env["nextAttempt"]) - parse_iso(env["lastAttempt"]))
    assert waits == [600, 900, 1020, 1020], waits
    # The peer recovers.
    peer = Peer(DOWN_IP)
    try:
        make_due(server, env)
        run_pass(bin_path, server)
        assert not envelopes(server), "delivered and removed"
        assert [r for r in peer.received if token.encode() in r.data]
        assert peer.received[0].mail_from == ALICE
    finally:
        peer.stop()


def test_peer_4xx_defers_then_delivers(mta, bin_path):
    peer = Peer(BUSY_IP)
    peer.handler.mode = "tempfail"
    try:
        server = mta()
        token = "tempfail-1"
        submit(server, ["user@busy.test"], token)
        env = wait_attempts(server, 1)
        assert env["recipients"][0]["status"] == "deferred"
        assert env["recipients"][0]["reply"].startswith("451 4.3.0"), env
        peer.handler.mode = "accept"
        run_pass(bin_path, server)
        assert envelopes(server), "not retried before its time"
        make_due(server, envelopes(server)[0])
        run_pass(bin_path, server)
        assert not envelopes(server)
        assert [r for r in peer.received if token.encode() in r.data]
    finally:
        peer.stop()


def test_max_lifetime_bounces(mta, bin_path):
    server = mta()
    token = "lifetime-1"
    submit(server, ["user@down.test"], token)
    env = wait_attempts(server, 1)
    # 61 minutes in the queue (maxLifetime is 60).
    rewrite_envelope(server, env["id"], created=iso(time.time() - 61 * 60))
    run_pass(bin_path, server)
    assert not envelopes(server), "removed after its lifetime"
    status = report_text(dsn_of(server, token))
    assert "Status: 4.4.7" in status, status
    assert "expired" in status and "queue.maxLifetime" in status, status


def test_kill9_of_the_runner_mid_delivery_loses_nothing(mta, bin_path):
    server = mta(queue={**SCHEDULE, "interval": 60})
    token = "kill9-1"
    submit(server, ["user@slow.test"], token)
    env = wait_attempts(server, 1)  # nobody listened yet
    peer = Peer(SLOW_IP)
    peer.handler.mode = "hang"
    try:
        make_due(server, env)
        runner = start_runner(bin_path, server)
        wait_until(lambda: peer.handler.data_started >= 1, 20, what="the runner to send DATA")
        kill9(runner)
        left = envelopes(server)
        assert len(left) == 1 and left[0]["recipients"][0]["status"] != "delivered", left
        peer.handler.mode = "accept"
        make_due(server, left[0])
        run_pass(bin_path, server)
        assert not envelopes(server), "delivered on the next pass"
        assert [r for r in peer.received if token.encode() in r.data]
    finally:
        peer.stop()


def test_queue_cli_list_show_flush_delete(mta, bin_path):
    server = mta()
    submit(server, ["user@down.test"], "cli-1")
    env = wait_attempts(server, 1)
    listed = queue_cli(bin_path, server, "list")
    assert listed.returncode == 0, listed.stderr
    assert env["id"] in listed.stdout and "user@down.test" in listed.stdout, listed.stdout
    assert "1 message(s)" in listed.stdout
    shown = queue_cli(bin_path, server, "show", env["id"])
    assert shown.returncode == 0, shown.stderr
    assert '"status": "deferred"' in shown.stdout and "Subject: queue test cli-1" in shown.stdout
    flushed = queue_cli(bin_path, server, "flush")
    assert flushed.returncode == 0, flushed.stderr
    assert envelopes(server)[0]["attempts"] == 2, "flush tries what is not due"
    deleted = queue_cli(bin_path, server, "delete", env["id"])
    assert deleted.returncode == 0, deleted.stderr
    assert not envelopes(server) and not list(queue_dir(server).glob("*.eml"))
    missing = queue_cli(bin_path, server, "show", "NOSUCHID")
    assert missing.returncode != 0


def test_with_smtputf8_off_utf8_headers_bounce_even_to_a_peer_that_offers_it(mta):
    peer = Peer(BUSY_IP, smtputf8=True)
    try:
        server = mta(smtp={"smtputf8": False})
        token = "smtputf8-off"
        message = (f"From: <{ALICE}>\r\nTo: <user@busy.test>\r\nSubject: Gr\u00fc\u00dfe {token}\r\n"
                   f"Message-ID: <{token}@client.example.org>\r\n\r\n{token}\r\n").encode()
        with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
            client.login(ALICE, PASSWORD)
            assert not client.has_extn("smtputf8")
            client.sendmail(ALICE, ["user@busy.test"], message, mail_options=["BODY=8BITMIME"])
        status = report_text(dsn_of(server, token))
        assert "Status: 5.6.7" in status and "turned off on this server" in status, status
        assert not peer.received
    finally:
        peer.stop()


def test_utf8_headers_bounce_when_the_peer_lacks_smtputf8(mta):
    peer = Peer(BUSY_IP, smtputf8=False)
    try:
        server = mta()
        token = "smtputf8-1"
        message = (f"From: <{ALICE}>\r\nTo: <user@busy.test>\r\nSubject: Gr\u00fc\u00dfe {token}\r\n"
                   f"Message-ID: <{token}@client.example.org>\r\n\r\n{token}\r\n").encode()
        with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
            client.login(ALICE, PASSWORD)
            client.sendmail(ALICE, ["user@busy.test"], message, mail_options=["SMTPUTF8"])
        dsn = dsn_of(server, token)
        status = report_text(dsn)
        assert "Status: 5.6.7" in status and "SMTPUTF8" in status, status
        assert not peer.received
        headers = [p for p in dsn.iter_parts()
                   if p.get_content_type() in ("text/rfc822-headers", "message/global-headers")]
        assert headers, [p.get_content_type() for p in dsn.iter_parts()]
    finally:
        peer.stop()
