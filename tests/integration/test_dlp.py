"""DLP (issue 14, docs/filters.md "DLP"): outgoing mail — from a logged-in client, or relayed
by a whitelisted one — goes by ICAP REQMOD to the DLP service before it is queued. The service
is a real c-icap whose virus_scan (backed by a real clamd) matches the marker string
"CONFIDENTIAL-ALPHA" with a ClamAV signature written by the test: a message carrying it is
refused `550 5.7.1` naming the rule, one without passes; inbound mail is not sent to the
service; the service down gives `451 4.7.1` and, once it is back, the resend passes."""

from __future__ import annotations

import smtplib

import pytest

from icshelpers import ALICE, BOB, PASSWORD, make_message, split_stored, tls_overrides
from scanners import DLP_MARKER, DLP_NAME, CIcap, Clamd

RULE = f"{DLP_NAME}.UNOFFICIAL"


@pytest.fixture
def icap(tmp_path):
    clamd = Clamd(tmp_path / "clamd").start()
    server = CIcap(tmp_path / "c-icap", clamd).start()
    yield server
    server.stop()
    clamd.stop()


def dlp(url: str, certs, **extra) -> dict:
    config = tls_overrides(certs.rsa, "none")  # AUTH without TLS: the tests log in in plain
    config["dlp"] = {"enable": True, "icapUrl": url}
    config.update(extra)
    return config


def secret(token: str, sender: str = ALICE, to: str = BOB) -> bytes:
    return make_message(token, sender=sender, to=to,
                        body=f"The plan is {DLP_MARKER.decode()}; keep it here.\n")


def send(server, message: bytes, recipients=(BOB,), sender=ALICE, login: bool = True):
    with smtplib.SMTP("127.0.0.1", server.port, timeout=90) as smtp:
        if login:
            smtp.login(ALICE, PASSWORD)
        return smtp.sendmail(sender, list(recipients), message)


def requests_seen(icap) -> int:
    path = icap.tmp / "access.log"
    return path.read_text().count("REQMOD") if path.exists() else 0


def test_outgoing_mail_with_the_marker_is_refused_550(make_server, icap, certs):
    server = make_server(extra=dlp(icap.url, certs))
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(server, secret("leak-1"))
    assert refused.value.smtp_code == 550, refused.value
    text = refused.value.smtp_error.decode()
    assert text.startswith("5.7.1 ") and "data loss prevention" in text and RULE in text, text
    assert server.new_messages(BOB) == []
    assert requests_seen(icap) == 1
    assert 'rule="dlp"' in server.stderr()


def test_outgoing_mail_without_the_marker_passes(make_server, icap, certs):
    server = make_server(extra=dlp(icap.url, certs))
    original = make_message("harmless-1", sender=ALICE, to=BOB)
    assert send(server, original) == {}
    split_stored(server.new_messages(BOB)[0], original)
    assert requests_seen(icap) == 1


def test_inbound_mail_is_not_sent_to_the_dlp_service(make_server, icap, certs):
    server = make_server(extra=dlp(icap.url, certs))
    original = secret("inbound-1", sender="someone@example.org", to=ALICE)
    assert send(server, original, recipients=[ALICE], sender="someone@example.org",
                login=False) == {}
    split_stored(server.new_messages(ALICE)[0], original)
    assert requests_seen(icap) == 0


def queued(server) -> list:
    """The envelopes in the outbound spool that are for far@example.net."""
    envelopes = (server.state_dir / "queue").glob("*.json")
    return [e for e in envelopes if "far@example.net" in e.read_text()]


def test_mail_relayed_by_a_whitelisted_client_is_checked(make_server, icap, certs):
    server = make_server(extra=dlp(icap.url, certs, lists={"whitelist": ["127.0.0.1"]}))
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(server, secret("relayed-1", sender="someone@example.test", to="far@example.net"),
             recipients=["far@example.net"], sender="someone@example.test", login=False)
    assert (refused.value.smtp_code, refused.value.smtp_error[:5]) == (550, b"5.7.1")
    assert requests_seen(icap) == 1
    assert queued(server) == [], "nothing is queued"
    # Without the marker it is queued for the remote domain (which nothing resolves here).
    assert send(server, make_message("relayed-2", sender="someone@example.test",
                                     to="far@example.net"),
                recipients=["far@example.net"], sender="someone@example.test",
                login=False) == {}
    assert requests_seen(icap) == 2
    assert len(queued(server)) == 1


def test_the_service_down_is_451_and_the_resend_passes(make_server, icap, certs):
    server = make_server(extra=dlp(icap.url, certs))
    icap.stop()
    original = make_message("while-down", sender=ALICE, to=BOB)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(server, original)
    assert (refused.value.smtp_code, refused.value.smtp_error[:5]) == (451, b"4.7.1"), \
        refused.value
    assert server.new_messages(BOB) == []
    assert "the DLP service cannot be asked" in server.stderr()
    icap.start()
    assert send(server, original) == {}
    split_stored(server.new_messages(BOB)[0], original)
    # and a message with the marker is still refused
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(server, secret("after-restart"))
    assert refused.value.smtp_code == 550
