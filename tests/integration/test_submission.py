"""Submission (docs/tls-and-auth.md "Submission"): AUTH before MAIL on the submission port and
SMTPS, the envelope sender must be the user's address or alias, local recipients are delivered
(Received `with ESMTPA`/`ESMTPSA`, RFC 3848), remote ones get 451 when logged in and 554 when
not; the same rules for AUTH on port 25."""

from __future__ import annotations

import smtplib
import uuid

import pytest

from icshelpers import (
    ALIAS,
    ALICE,
    BOB,
    PASSWORD,
    TLSClient,
    check_trace,
    client_tls_context,
    find_message,
    free_port,
    make_message,
    received_protocol,
    run_swaks,
    smtps_port,
    split_stored,
    submission_port,
    tls_overrides,
)

REMOTE = "someone@remote.example"


def token() -> str:
    return f"sub-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def server(make_server, certs):
    """tls.mode optional, submission and SMTPS on, defaultAuthDomain example.test."""
    return make_server(extra=tls_overrides(certs.rsa, "optional", smtps_port=free_port(),
                                           submission_port=free_port()))


def session(server, kind: str, auth: bool = True) -> TLSClient:
    """An EHLO'd session of `kind`, logged in as alice when `auth`."""
    if kind == "smtps":
        client = TLSClient(smtps_port(server), implicit=True)
    else:
        port = server.port if kind.startswith("mx") else submission_port(server)
        client = TLSClient(port)
        if kind.endswith("starttls"):
            client.ehlo()
            client.starttls()
    client.ehlo("client.example.org")
    if auth:
        client.auth_plain("alice", PASSWORD, "235 2.7.0")
    return client


KINDS = ["submission", "submission-starttls", "smtps", "mx", "mx-starttls"]
PROTOCOL = {"submission": "ESMTPA", "submission-starttls": "ESMTPSA", "smtps": "ESMTPSA",
            "mx": "ESMTPA", "mx-starttls": "ESMTPSA"}


@pytest.mark.parametrize("kind", ["submission", "submission-starttls", "smtps"])
def test_mail_before_auth_is_refused(server, kind):
    with session(server, kind, auth=False) as client:
        client.cmd(f"MAIL FROM:<{ALICE}>", "530 5.7.0")
        client.cmd(f"RCPT TO:<{BOB}>", "503")
        client.auth_plain("alice", "wrong password", "535 5.7.8")
        client.cmd(f"MAIL FROM:<{ALICE}>", "530 5.7.0")
        client.cmd("QUIT", 221)
    assert server.new_files(BOB) == []


@pytest.mark.parametrize("kind", KINDS)
def test_sender_must_be_own_address_or_alias(server, kind):
    with session(server, kind) as client:
        for sender in (BOB, "alice@remote.example", "postmaster@example.test",
                       "alice.other@example.test"):
            client.cmd(f"MAIL FROM:<{sender}>", "553 5.7.1")
        client.cmd(f"MAIL FROM:<{ALIAS}>", "250 2.1.0")
        client.cmd("RSET", 250)
        client.cmd(f"MAIL FROM:<{ALICE}>", "250 2.1.0")
        client.cmd("QUIT", 221)


@pytest.mark.parametrize("kind", KINDS)
def test_authenticated_local_delivery(server, kind):
    tok = token()
    message = make_message(tok, sender=ALICE, to=BOB)
    with session(server, kind) as client:
        client.transaction(ALICE, [BOB], message)
        client.cmd("QUIT", 221)
    stored = find_message(server, BOB, tok)
    prefix, _ = split_stored(stored, message)
    check_trace(prefix, ALICE, with_proto=PROTOCOL[kind], helo="client.example.org")


@pytest.mark.parametrize("kind", KINDS)
def test_remote_recipient_is_queued_when_authenticated(server, kind):
    tok = token()
    with session(server, kind) as client:
        client.cmd(f"MAIL FROM:<{ALICE}>", "250")
        client.cmd(f"RCPT TO:<{REMOTE}>", "250 2.1.5")  # to the outbound queue
        client.cmd(f"RCPT TO:<{BOB}>", "250 2.1.5")  # the local one is delivered
        client.data(make_message(tok, sender=ALICE, to=BOB))
        client.cmd("QUIT", 221)
    find_message(server, BOB, tok)
    assert not (server.mail_root / "remote.example").exists()
    # The remote copy waits in the spool (nothing resolves remote.example here).
    envelopes = list((server.state_dir / "queue").glob("*.json"))
    assert any(REMOTE in e.read_text() for e in envelopes), envelopes


@pytest.mark.parametrize("kind", ["mx", "mx-starttls"])
def test_port25_without_auth_never_relays(server, kind):
    with session(server, kind, auth=False) as client:
        for sender in (ALICE, "sender@example.org"):
            client.cmd(f"MAIL FROM:<{sender}>", "250")
            client.cmd(f"RCPT TO:<{REMOTE}>", "554 5.7.1")
            client.cmd("RSET", 250)
        client.cmd("QUIT", 221)


def test_starttls_forgets_the_login(server):
    """RFC 3207: after STARTTLS nothing learnt before counts, the login included."""
    with session(server, "submission") as client:
        client.starttls()
        client.ehlo()
        client.cmd(f"MAIL FROM:<{ALICE}>", "530 5.7.0")
        client.auth_plain("alice", PASSWORD, "235 2.7.0")
        client.cmd(f"MAIL FROM:<{ALICE}>", "250")


def test_smtplib_submission_with_starttls(server):
    tok = token()
    message = make_message(tok, sender=ALIAS, to=BOB)
    with smtplib.SMTP("127.0.0.1", submission_port(server), local_hostname="client.example.org",
                      timeout=10) as smtp:
        smtp.starttls(context=client_tls_context())
        smtp.login("alice", PASSWORD)
        refused = smtp.sendmail(ALIAS, [BOB], message)
        assert refused == {}
    stored = find_message(server, BOB, tok)
    prefix, _ = split_stored(stored, message)
    check_trace(prefix, ALIAS, with_proto="ESMTPSA", helo="client.example.org")


def test_smtplib_smtps_sender_mismatch(server):
    with smtplib.SMTP_SSL("127.0.0.1", smtps_port(server), local_hostname="client.example.org",
                          context=client_tls_context(), timeout=10) as smtp:
        smtp.login(ALICE, PASSWORD)
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtp.sendmail(BOB, [ALICE], make_message(token(), sender=BOB, to=ALICE))
        assert refused.value.smtp_code == 553
    assert server.new_files(ALICE) == []


def test_swaks_submission(server):
    tok = token()
    common = ["--tls", "--auth", "LOGIN", "--auth-user", "alice", "--auth-password", PASSWORD,
              "--to", BOB, "--header", f"Subject: {tok}", "--body", tok]
    result = run_swaks(submission_port(server), "--from", ALICE, *common)
    assert result.returncode == 0, result.stdout + result.stderr
    assert received_protocol(find_message(server, BOB, tok)) == "ESMTPSA"
    refused = run_swaks(submission_port(server), "--from", BOB, *common)
    assert refused.returncode != 0, refused.stdout
    assert "553 5.7.1" in refused.stdout, refused.stdout
    unauthenticated = run_swaks(submission_port(server), "--tls", "--from", ALICE, "--to", BOB)
    assert unauthenticated.returncode != 0
    assert "530 5.7.0" in unauthenticated.stdout, unauthenticated.stdout
