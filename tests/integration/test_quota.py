"""Mailbox quotas (`accounts.<address>.quota`, issue 14, docs/storage.md "Quotas"): the SMTP
delivery that would cross the quota gets `452 4.2.2` (the sender retries), a full mailbox is
refused at RCPT, a message for several recipients crosses one full mailbox rather than being
refused for all, IMAP APPEND and COPY get `NO [OVERQUOTA]`, and after an expunge (IMAP) or a
deletion (POP3) mail flows again. The use is kept in the Maildir++ `maildirsize` file."""

from __future__ import annotations

import imaplib
import poplib
import smtplib

import pytest

from icshelpers import ALICE, BOB, PASSWORD, make_message, run_swaks, tls_overrides

QUOTA = 6000
BODY = 1500  # bytes of filler per message (≈1.8 KB stored): three fit, the fourth does not


def message(token: str, filler: int = BODY) -> bytes:
    return make_message(token, to=ALICE) + b"x" * filler + b"\r\n"


@pytest.fixture
def server(make_server, certs):
    extra = tls_overrides(certs.rsa, "none")
    extra["accounts"] = {ALICE: {"quota": QUOTA}}
    return make_server(mode="serve", extra=extra)


def send(server, token: str, recipients=(ALICE,), filler: int = BODY):
    """smtplib: the refused recipients, or the SMTP error raised."""
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as smtp:
        return smtp.sendmail("sender@example.org", list(recipients), message(token, filler))


def maildirsize(server) -> str:
    return (server.mailbox(ALICE) / "maildirsize").read_text()


def used(server) -> int:
    lines = maildirsize(server).splitlines()
    assert lines[0] == f"{QUOTA}S", lines
    return sum(int(line.split()[0]) for line in lines[1:])


def fill(server) -> int:
    """Delivers until the next message no longer fits; returns how many went in."""
    count = 0
    while True:
        try:
            send(server, f"fill-{count}")
        except smtplib.SMTPDataError as refused:
            assert refused.smtp_code == 452, refused
            assert refused.smtp_error.startswith(b"4.2.2"), refused
            return count
        count += 1
        assert count < 10, "the quota never filled"


def imap(server) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", server.config["imap"]["port"])
    client.login(ALICE, PASSWORD)
    return client


def test_the_delivery_that_crosses_the_quota_gets_452_and_the_use_is_kept(server):
    assert fill(server) == 3
    # The count is the sum of the mailbox's message files (what Maildir++ counts).
    on_disk = sum(p.stat().st_size for p in server.new_files(ALICE))
    assert used(server) == on_disk and on_disk <= QUOTA
    assert len(server.new_files(ALICE)) == 3
    # Another account without a quota is not limited.
    assert send(server, "bob-unlimited", [BOB], filler=20000) == {}


def test_a_full_mailbox_is_refused_at_rcpt_and_a_shared_message_crosses_it(server):
    fill(server)
    # With another recipient the message goes to both: one reply covers both, and refusing
    # it would delay BOB's copy.
    assert send(server, "shared", [ALICE, BOB]) == {}
    assert any(b"shared" in m for m in server.new_messages(ALICE))
    assert used(server) > QUOTA
    # Now ALICE is over: refused at RCPT, BOB still gets his.
    refused = send(server, "after-full", [ALICE, BOB])
    assert refused[ALICE][0] == 452 and refused[ALICE][1].startswith(b"4.2.2"), refused
    assert not any(b"after-full" in m for m in server.new_messages(ALICE))
    assert any(b"after-full" in m for m in server.new_messages(BOB))
    assert "quota" in server.stderr() and "policy decision" in server.stderr()


def test_swaks_sees_the_452_and_mail_flows_again_after_an_imap_expunge(server):
    fill(server)
    result = run_swaks(server.port, "--to", ALICE, "--from", "sender@example.org",
                       "--body", "y" * BODY, "--header", "Subject: swaks over quota")
    assert result.returncode != 0 and "452 4.2.2" in result.stdout, result.stdout
    client = imap(server)
    client.select("INBOX")
    client.store("1:2", "+FLAGS", "\\Deleted")
    client.expunge()
    client.logout()
    assert send(server, "after-expunge") == {}
    assert any(b"after-expunge" in m for m in server.new_messages(ALICE) +
               [p.read_bytes() for p in server.cur_files(ALICE)])


def test_mail_flows_again_after_a_pop3_deletion(server):
    fill(server)
    pop = poplib.POP3("127.0.0.1", server.config["pop3"]["port"], timeout=30)
    pop.user(ALICE)
    pop.pass_(PASSWORD)
    pop.dele(1)
    pop.quit()
    assert send(server, "after-pop3") == {}


def test_imap_append_and_copy_over_quota_get_overquota(server):
    fill(server)
    client = imap(server)
    status, data = client.append("INBOX", None, None, message("appended"))
    assert status == "NO" and b"[OVERQUOTA]" in data[0], (status, data)
    client.select("INBOX")
    status, data = client.copy("1:3", "Sent")
    assert status == "NO" and b"[OVERQUOTA]" in data[0], (status, data)
    # MOVE adds nothing to the mailbox: allowed.
    imaplib.Commands.setdefault("MOVE", ("SELECTED",))
    status, data = client._simple_command("MOVE", "1", "Sent")
    assert status == "OK", (status, data)
    # A small APPEND that fits goes in.
    client.store("1:*", "+FLAGS", "\\Deleted")
    client.expunge()
    status, data = client.append("INBOX", None, None, message("fits", filler=10))
    assert status == "OK", (status, data)
    client.logout()


def test_the_count_is_rebuilt_when_the_file_is_lost(server):
    fill(server)
    before = used(server)
    (server.mailbox(ALICE) / "maildirsize").unlink()
    try:
        send(server, "rebuilt")
        raise AssertionError("accepted after the rebuild")
    except smtplib.SMTPDataError as refused:
        assert refused.smtp_code == 452
    assert used(server) == before
