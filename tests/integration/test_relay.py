"""The inbound port is no open relay: every routing trick is refused with 5xx and nothing is
stored. Each trick runs on its own server, so a leak of one cannot hide behind another."""

from __future__ import annotations

import pytest

from icshelpers import ALICE, all_message_files, crlf

TRICKS = [
    "user@remote.example",
    "user%remote.example@example.test",
    '"user@remote.example"@example.test',
    "@example.test:user@remote.example",
    "@remote.example:user@example.test.remote.example",
    "user@remote.example@example.test",
    "remote.example!user@example.test",
    "user@[127.0.0.1]",
    "user@[IPv6:::1]",
    "user",
    "ALICE@REMOTE.EXAMPLE",
    "alice@example.test.remote.example",
    "alice@remote.example.",
    "user@remote.example.",
    "alice@sub.example.test",
    '"alice"@remote.example',
    "alice@example.test@remote.example",
]


def assert_nothing_stored(server):
    files = all_message_files(server.mail_root)
    assert files == [], f"files stored under the mail root: {files}"
    # no mailbox directory for a remote domain either
    if server.mail_root.exists():
        domains = sorted(p.name for p in server.mail_root.iterdir() if p.is_dir())
        assert set(domains) <= {"example.test"}, f"directories for other domains: {domains}"


@pytest.mark.parametrize("rcpt", TRICKS)
def test_relay_trick_refused(make_server, rcpt):
    server = make_server()
    with server.client() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")
        reply = c.cmd(f"RCPT TO:<{rcpt}>")
        assert 500 <= reply.code < 600, f"RCPT TO:<{rcpt}> got {reply.text!r}"
        # Try to push a message anyway: it must be refused too.
        reply = c.cmd("DATA")
        if reply.code == 354:
            c.send(crlf("Subject: relay\n\nrelayed?\n") + b".\r\n")
            reply = c.read_reply()
            pytest.fail(f"DATA accepted after refused RCPT TO:<{rcpt}>; end of data: {reply.text}")
        assert 500 <= reply.code < 600, reply.text
        c.cmd("QUIT", 221)
    assert_nothing_stored(server)


@pytest.mark.parametrize("rcpt", ["user@remote.example", "ALICE@REMOTE.EXAMPLE",
                                  "user@remote.example."])
def test_remote_domain_gets_relay_denied(server, rcpt):
    with server.client() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")
        reply = c.cmd(f"RCPT TO:<{rcpt}>", "554 5.7.1")
        assert "relay" in reply.text.lower(), reply.text


@pytest.mark.parametrize("rcpt", ["user%remote.example@example.test",
                                  '"user@remote.example"@example.test'])
def test_local_domain_tricks_get_user_unknown(server, rcpt):
    with server.client() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")
        c.cmd(f"RCPT TO:<{rcpt}>", "550 5.1.1")


def test_relay_mixed_with_local_recipient(server):
    """A refused remote recipient beside a valid local one: only the local copy is stored."""
    message = crlf("Subject: mixed\n\nmixed\n")
    with server.client() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")
        c.cmd("RCPT TO:<user@remote.example>", "554 5.7.1")
        c.cmd(f"RCPT TO:<{ALICE}>", "250 2.1.5")
        c.cmd("RCPT TO:<user%remote.example@example.test>", "550 5.1.1")
        c.data(message)
    files = all_message_files(server.mail_root)
    assert [f.parent for f in files] == [server.new_dir(ALICE)], files
    domains = sorted(p.name for p in server.mail_root.iterdir() if p.is_dir())
    assert domains == ["example.test"], domains
