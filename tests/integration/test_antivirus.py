"""Antivirus (issue 14, docs/filters.md "Antivirus"): every message, inbound and outgoing, goes
through real scanners started here — Debian's clamd with a signature database written by the
test (the EICAR string; no freshclam download) on a unix socket or TCP, and c-icap's virus_scan
(backed by that clamd) as the ICAP server of the "Kaspersky" path. An infected attachment gets
the sender `250` and the recipients a notice naming the scanner and the virus, with the original
attached as message/rfc822; a clean message arrives untouched; a scanner that is down gives
`451 4.7.1`, and the sender's retry — a real Postfix's — delivers the message once it is back;
a message over clamd's StreamMaxLength gets `552 5.3.4`."""

from __future__ import annotations

import email
import email.policy
import shutil
import signal
import smtplib
import tempfile
import time
from pathlib import Path

import pytest

from icshelpers import (ALICE, BOB, PASSWORD, deep_merge, make_message, split_stored,
                        tls_overrides, wait_until, write_config)
from queuepeers import PrivatePostfix
from scanners import EICAR, EICAR_NAME, CIcap, Clamd, with_attachment

THREAT = f"{EICAR_NAME}.UNOFFICIAL"  # clamd's name for a match of a local .ndb signature
POSTFIX_CLIENT = "198.18.1.19"


@pytest.fixture
def clamd(tmp_path):
    daemon = Clamd(tmp_path / "clamd").start()
    yield daemon
    daemon.stop()


def clamav(address: str) -> dict:
    return {"antivirus": {"clamav": {"enable": True, "socket": address}}}


def send(server, message: bytes, recipients=(ALICE,), sender="sender@example.org",
         login: str | None = None):
    with smtplib.SMTP("127.0.0.1", server.port, timeout=90) as smtp:
        if login:
            smtp.login(login, PASSWORD)
        return smtp.sendmail(sender, list(recipients), message)


def only_message(server, address: str = ALICE) -> bytes:
    messages = server.new_messages(address)
    assert len(messages) == 1, f"{len(messages)} messages for {address}"
    return messages[0]


def check_notice(stored: bytes, original: bytes, scanner: str) -> None:
    """The quarantine notice: from the mail system, the scanner and the threat in its text,
    the original attached whole as message/rfc822."""
    notice = email.message_from_bytes(stored, policy=email.policy.default)
    assert notice["Subject"] == "A message to you was quarantined", notice["Subject"]
    assert notice.get_content_type() == "multipart/mixed"
    text, attached = list(notice.iter_parts())
    said = text.get_content()
    assert scanner in said and THREAT in said, said
    assert attached.get_content_type() == "message/rfc822"
    # Byte for byte (the mailbox keeps LF line ends).
    assert original.replace(b"\r\n", b"\n") in stored


def test_an_infected_attachment_is_quarantined_with_the_original_attached(make_server, clamd):
    server = make_server(extra=clamav(clamd.address))
    original = with_attachment("infected-1", EICAR)
    assert send(server, original) == {}  # 250: accepted and handled
    check_notice(only_message(server), original, "ClamAV")
    assert "infected: quarantined" in server.stderr() and THREAT in server.stderr()
    assert THREAT in clamd.log()  # clamd itself found it


def test_a_clean_message_passes_untouched(make_server, clamd):
    server = make_server(extra=clamav(clamd.address))
    original = with_attachment("clean-1", b"just some harmless bytes\n" * 50)
    assert send(server, original) == {}
    prefix, _ = split_stored(only_message(server), original)
    assert b"quarantined" not in prefix
    assert "instream" in clamd.log()  # it was scanned (LogClean) rather than skipped


def test_outgoing_mail_is_scanned_too(make_server, clamd, certs):
    """A logged-in client (outgoing mail, docs/filters.md) sending to a local account."""
    extra = tls_overrides(certs.rsa, "none")
    extra.update(clamav(clamd.address))
    server = make_server(extra=extra)
    original = with_attachment("outgoing-1", EICAR, sender=ALICE, to=BOB)
    assert send(server, original, recipients=[BOB], sender=ALICE, login=ALICE) == {}
    check_notice(only_message(server, BOB), original, "ClamAV")


def test_clamd_over_tcp(make_server, tmp_path):
    daemon = Clamd(tmp_path / "clamd-tcp", tcp=True).start()
    try:
        server = make_server(extra=clamav(daemon.address))
        assert daemon.address.startswith("tcp://127.0.0.1:")
        original = with_attachment("tcp-1", EICAR)
        assert send(server, original) == {}
        check_notice(only_message(server), original, "ClamAV")
    finally:
        daemon.stop()


def test_clamd_down_is_451_and_the_resend_delivers_once(make_server, clamd):
    server = make_server(extra=clamav(clamd.address))
    clamd.stop()
    original = make_message("while-down")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(server, original)
    assert refused.value.smtp_code == 451
    assert refused.value.smtp_error.startswith(b"4.7.1"), refused.value.smtp_error
    assert server.new_messages() == []
    assert "the scanner cannot be asked" in server.stderr()
    clamd.start()
    assert send(server, original) == {}
    split_stored(only_message(server), original)


def test_a_message_over_streammaxlength_is_refused_552(make_server, tmp_path):
    daemon = Clamd(tmp_path / "clamd-small", stream_max="1M").start()
    try:
        server = make_server(extra=clamav(daemon.address))
        big = make_message("too-big", body="x" * 100 + "\n") + (b"y" * 998 + b"\r\n") * 1500
        with pytest.raises(smtplib.SMTPDataError) as refused:
            send(server, big)
        assert refused.value.smtp_code == 552, refused.value
        assert refused.value.smtp_error.startswith(b"5.3.4"), refused.value.smtp_error
        assert server.new_messages() == []
        assert "StreamMaxLength" in server.stderr()
        # Under the limit it is scanned and delivered.
        assert send(server, make_message("small-enough")) == {}
    finally:
        daemon.stop()


@pytest.fixture
def sending_postfix(make_server, clamd, test_network):
    """ics-mail scanning with clamd, and a private Postfix on 198.18.1.19 relaying everything
    to it, retrying deferred mail every second or two."""
    server = make_server(extra=clamav(clamd.address))
    base = Path(tempfile.mkdtemp(prefix="ics-av-postfix-", dir="/var/tmp"))
    from icshelpers import free_port
    instance = PrivatePostfix(base, POSTFIX_CLIENT, [], [], port=free_port(), main_cf=f"""
mynetworks = 127.0.0.0/8 198.18.0.0/23
relayhost = [127.0.0.1]:{server.port}
smtp_bind_address = {POSTFIX_CLIENT}
myhostname = mx.sender.example
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
""")
    yield server, instance
    instance.stop()
    shutil.rmtree(base, ignore_errors=True)


def test_postfix_retries_after_clamd_is_back_and_the_message_arrives_once(sending_postfix,
                                                                           clamd):
    server, postfix = sending_postfix
    clamd.stop()
    with smtplib.SMTP(POSTFIX_CLIENT, postfix.port, timeout=30) as client:
        client.sendmail("carol@sender.example", [ALICE],
                        make_message("via-postfix", sender="carol@sender.example"))
    assert wait_until(lambda: "451 4.7.1" in postfix.log(), timeout=60, interval=0.5), \
        postfix.log()[-3000:]
    assert server.new_messages() == []
    clamd.start()
    assert wait_until(lambda: len(server.new_messages()) >= 1, timeout=60, interval=0.5), \
        postfix.log()[-3000:]
    assert wait_until(postfix.queue_is_empty, timeout=30, interval=0.5), postfix.log()[-3000:]
    time.sleep(1)
    assert len(server.new_messages()) == 1
    assert b"via-postfix" in server.new_messages()[0]
    log = postfix.log()
    assert "status=deferred" in log and "Virus scanner unavailable" in log, log[-3000:]
    assert "status=sent" in log, log[-3000:]


# ------------------------------------------------------------------ "Kaspersky": ICAP RESPMOD


@pytest.fixture
def icap(tmp_path, clamd):
    server = CIcap(tmp_path / "c-icap", clamd).start()
    yield server
    server.stop()


def kaspersky(url: str) -> dict:
    return {"antivirus": {"kaspersky": {"enable": True, "icapUrl": url}}}


def test_icap_infected_is_quarantined_naming_the_scanner(make_server, icap):
    server = make_server(extra=kaspersky(icap.url))
    original = with_attachment("icap-infected", EICAR)
    assert send(server, original) == {}
    check_notice(only_message(server), original, "Kaspersky")
    assert "RESPMOD" in (icap.tmp / "access.log").read_text()


def test_icap_clean_passes_untouched(make_server, icap):
    server = make_server(extra=kaspersky(icap.url))
    original = with_attachment("icap-clean", b"harmless\n" * 100)
    assert send(server, original) == {}
    split_stored(only_message(server), original)
    assert "RESPMOD" in (icap.tmp / "access.log").read_text()


def test_icap_down_is_451_and_the_resend_delivers(make_server, icap):
    server = make_server(extra=kaspersky(icap.url))
    icap.stop()
    original = make_message("icap-down")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(server, original)
    assert (refused.value.smtp_code, refused.value.smtp_error[:5]) == (451, b"4.7.1")
    assert server.new_messages() == []
    icap.start()
    assert send(server, original) == {}
    split_stored(only_message(server), original)


def test_both_scanners_on(make_server, clamd, icap):
    extra = clamav(clamd.address)
    extra["antivirus"].update(kaspersky(icap.url)["antivirus"])
    server = make_server(extra=extra)
    original = make_message("both-clean")
    assert send(server, original) == {}
    split_stored(only_message(server), original)
    infected = with_attachment("both-infected", EICAR, to=BOB)
    assert send(server, infected, recipients=[BOB]) == {}
    # clamd is asked first and names it.
    check_notice(only_message(server, BOB), infected, "ClamAV")


def test_a_reload_turns_the_scanner_on(make_server, clamd):
    """The settings reach new sessions on SIGHUP (docs/settings.md, "Layers and reload")."""
    server = make_server()
    assert send(server, with_attachment("before-reload", EICAR)) == {}
    assert b"quarantined" not in only_message(server)  # no scanner yet: delivered as it is
    server.config = deep_merge(server.config, clamav(clamd.address))
    write_config(server.config_path, server.config)
    before = server.stderr().count("settings reloaded")
    server.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: server.stderr().count("settings reloaded") > before, timeout=10), \
        server.stderr()[-3000:]
    original = with_attachment("after-reload", EICAR, to=BOB)
    assert send(server, original, recipients=[BOB]) == {}
    check_notice(only_message(server, BOB), original, "ClamAV")


def test_an_icap_service_that_sends_the_message_back(make_server, icap):
    """c-icap's `allow204=off` makes it answer `200` with the message instead of `204`: the
    body it sends back is read and, unchanged, means clean."""
    server = make_server(extra=kaspersky(icap.url + "?allow204=off"))
    original = with_attachment("echoed", b"harmless\n" * 3000)
    assert send(server, original) == {}
    split_stored(only_message(server), original)
    infected = with_attachment("echoed-infected", EICAR, to=BOB)
    assert send(server, infected, recipients=[BOB]) == {}
    check_notice(only_message(server, BOB), infected, "Kaspersky")
