"""Local delivery: real clients (swaks, smtplib) and raw sessions, checked on disk."""

from __future__ import annotations

import json
import re
import smtplib
import uuid

import pytest

from icshelpers import (
    ALIAS,
    ALICE,
    BOB,
    HELO_NAME,
    all_message_files,
    check_trace,
    crlf,
    dot_stuff,
    make_message,
    maildir_sizes_ok,
    run_swaks,
    split_stored,
)

SENDER = "sender@example.org"


def token() -> str:
    return "tok-" + uuid.uuid4().hex


def only_message(server, address=ALICE) -> bytes:
    files = server.new_files(address)
    assert len(files) == 1, f"{address}: expected 1 message in new/, found {[f.name for f in files]}"
    maildir_sizes_ok(files[0])
    return files[0].read_bytes()


def swaks_data_file(tmp, message: bytes):
    """swaks appends CRLF to data that already ends in a newline: give it none."""
    path = tmp / f"msg-{uuid.uuid4().hex}.eml"
    path.write_bytes(message.replace(b"\r\n", b"\n").rstrip(b"\n"))
    return path


# ---------------------------------------------------------------------------------------------
# swaks and smtplib


def test_swaks_to_alice(server):
    tok = token()
    message = make_message(tok, body=".leading dot line\nnormal line\n..two dots\n.\nlast\n")
    result = run_swaks(server.port, "--from", SENDER, "--to", ALICE,
                       "--data", "@" + str(swaks_data_file(server.tmp, message)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"250 2\.0\.0 Ok: queued as \S+", result.stdout), result.stdout
    stored = only_message(server)
    prefix, _ = split_stored(stored, message)
    check_trace(prefix, SENDER, "ESMTP", helo="client.example.org")
    assert server.new_files(BOB) == []


def test_swaks_to_alias_lands_in_alice(server):
    tok = token()
    message = make_message(tok, to=ALIAS)
    result = run_swaks(server.port, "--from", SENDER, "--to", ALIAS,
                       "--data", "@" + str(swaks_data_file(server.tmp, message)))
    assert result.returncode == 0, result.stdout + result.stderr
    stored = only_message(server, ALICE)
    split_stored(stored, message)
    al_box = server.mail_root / "example.test" / "al"
    assert not all_message_files(al_box), "the alias got a mailbox of its own"


def test_smtplib_to_bob(server):
    tok = token()
    message = make_message(tok, to=BOB)
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
        refused = smtp.sendmail(SENDER, [BOB], message)
    assert refused == {}
    stored = only_message(server, BOB)
    prefix, _ = split_stored(stored, message)
    check_trace(prefix, SENDER, "ESMTP")
    assert server.new_files(ALICE) == []


def test_serve_with_config_delivers(make_server):
    server = make_server(mode="serve")
    tok = token()
    message = make_message(tok)
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
        smtp.sendmail(SENDER, [ALICE], message)
    split_stored(only_message(server), message)


def test_mailbox_layout_after_delivery(server):
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
        smtp.sendmail(SENDER, [ALICE], make_message(token()))
    box = server.mailbox(ALICE)
    for sub in ("cur", "new", "tmp"):
        assert (box / sub).is_dir(), f"{box / sub} missing"
    for folder in (".Drafts", ".Sent", ".Trash", ".Junk"):
        for sub in ("cur", "new", "tmp"):
            assert (box / folder / sub).is_dir(), f"{box / folder / sub} missing"
        assert (box / folder / "ics-uidvalidity").is_file()
    assert (box / "ics-uidvalidity").is_file()
    folders = json.loads((box / "ics-folders.json").read_text())
    names = {entry["name"] for entry in folders}
    assert {"Drafts", "Sent", "Trash", "Junk"} <= names, folders
    assert server.cur_files(ALICE) == []
    assert list((box / "tmp").iterdir()) == [], "a staging file was left in tmp/"


def test_dot_stuffing_round_trip(server):
    body = ".\n..\n.leading\n...three\nmiddle . dot\n. space\n.\r\nafter\n"
    message = make_message(token(), body=body)
    assert b"\r\n.\r\n" in message  # a lone dot line inside the message
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
        smtp.sendmail(SENDER, [ALICE], message)
    stored = only_message(server)
    split_stored(stored, message)


def test_eight_bit_body(server):
    body = "Grüße aus Köln – ½ € ✓\n".encode("utf-8") + b"latin-1 byte: \xe9\xff\x80\n"
    message = crlf(b"From: <sender@example.org>\nTo: <alice@example.test>\nSubject: 8bit\n"
                   b"MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
                   b"Content-Transfer-Encoding: 8bit\n\n" + body)
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("8bitmime")
        smtp.sendmail(SENDER, [ALICE], message, mail_options=["BODY=8BITMIME"])
    stored = only_message(server)
    split_stored(stored, message)


def test_smtputf8_on(server):
    sender = "jöran@example.org"
    message = crlf("From: Jöran <jöran@example.org>\nTo: <alice@example.test>\n"
                   "Subject: Grüße\nMIME-Version: 1.0\n"
                   "Content-Type: text/plain; charset=utf-8\n\nHej då, Jöran\n")
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("smtputf8")
        refused = smtp.sendmail(sender, [ALICE], message,
                                mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    assert refused == {}
    stored = only_message(server)
    prefix, _ = split_stored(stored, message)
    check_trace(prefix, sender, "UTF8SMTP")


def test_smtputf8_off(make_server):
    server = make_server(smtp={"smtputf8": False})
    with server.client() as c:
        ehlo = c.ehlo()
        keywords = [line[4:].split(" ")[0].upper() for line in ehlo.lines[1:]]
        assert "SMTPUTF8" not in keywords, ehlo.text
        assert "8BITMIME" in keywords, ehlo.text
        c.cmd("MAIL FROM:<sender@example.org> SMTPUTF8", "553 5.6.7")
        c.cmd("MAIL FROM:<jöran@example.org> SMTPUTF8", "553 5.6.7")
        # Without the parameter a UTF-8 address is refused the same way.
        c.cmd("MAIL FROM:<jöran@example.org>", "553 5.6.7")
        # the session goes on
        c.transaction(SENDER, [ALICE], make_message(token()))
    assert len(server.new_files(ALICE)) == 1
    # swaks (which has no SMTPUTF8 of its own) with a UTF-8 sender: refused the same way.
    result = run_swaks(server.port, "--from", "jöran@example.org", "--to", ALICE)
    assert result.returncode != 0 and "553 5.6.7" in result.stdout, result.stdout
    assert len(server.new_files(ALICE)) == 1


def test_non_ascii_address_needs_smtputf8_param(server):
    with server.client() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<jöran@example.org>", "553 5.6.7")
        c.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")
        c.cmd("RCPT TO:<jöran@example.test>", "553 5.6.7")
        c.cmd("QUIT", 221)
    assert all_message_files(server.mail_root) == []


def test_greeting_and_ehlo(server):
    with server.client() as c:
        assert c.greeting.code == 220
        assert c.greeting.lines[-1].startswith(f"220 {HELO_NAME} ESMTP"), c.greeting.text
        ehlo = c.ehlo()
        assert ehlo.lines[0].startswith(f"250-{HELO_NAME}"), ehlo.text
        keywords = {line[4:].strip().upper() for line in ehlo.lines[1:]}
        for keyword in ("PIPELINING", "SIZE 10485760", "8BITMIME", "ENHANCEDSTATUSCODES",
                        "CHUNKING", "SMTPUTF8"):
            assert keyword in keywords, f"EHLO lacks {keyword}: {ehlo.text}"


def test_helo_session_is_smtp(server):
    message = make_message(token())
    with server.client() as c:
        c.cmd("HELO client.example.org", 250)
        c.transaction(SENDER, [ALICE], message)
    prefix, _ = split_stored(only_message(server), message)
    check_trace(prefix, SENDER, "SMTP", helo="client.example.org")


# ---------------------------------------------------------------------------------------------
# Pipelining and chunking


def test_swaks_pipeline(server):
    message = make_message(token())
    result = run_swaks(server.port, "--pipeline", "--from", SENDER, "--to", f"{ALICE},{BOB}",
                       "--data", "@" + str(swaks_data_file(server.tmp, message)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PIPELINING" in result.stdout
    split_stored(only_message(server, ALICE), message)
    split_stored(only_message(server, BOB), message)


def test_raw_pipelining_replies_in_order(server):
    message = make_message(token())
    with server.client() as c:
        c.ehlo()
        c.send(b"MAIL FROM:<sender@example.org>\r\n"
               b"RCPT TO:<nobody@example.test>\r\n"
               b"RCPT TO:<alice@example.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               b"DATA\r\n")
        c.expect("250 2.1.0")
        c.expect("550 5.1.1")
        c.expect("250 2.1.5")
        c.expect("250 2.1.5")
        c.expect(354)
        c.send(dot_stuff(message) + b".\r\nRSET\r\nNOOP\r\nQUIT\r\n")
        c.expect("250 2.0.0 Ok: queued as")
        c.expect(250)
        c.expect(250)
        c.expect(221)
        assert c.closed_by_server()
    split_stored(only_message(server, ALICE), message)
    split_stored(only_message(server, BOB), message)


def test_bdat_two_chunks(server):
    chunk1 = crlf("From: <sender@example.org>\nTo: <alice@example.test>\nSubject: bdat\n\n"
                  "first chunk\n.\n.leading dot is not unstuffed in BDAT\n")
    chunk2 = crlf("second chunk\n.\nend\n")
    with server.client() as c:
        ehlo = c.ehlo()
        assert "CHUNKING" in ehlo.text
        c.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")
        c.cmd("RCPT TO:<alice@example.test>", "250 2.1.5")
        c.send(f"BDAT {len(chunk1)}\r\n".encode() + chunk1)
        c.expect(f"250 2.0.0 {len(chunk1)} octets received")
        c.send(f"BDAT {len(chunk2)} LAST\r\n".encode() + chunk2)
        c.expect("250 2.0.0 Ok: queued as")
        c.cmd("NOOP", 250)
    prefix, _ = split_stored(only_message(server), chunk1 + chunk2)
    check_trace(prefix, SENDER, "ESMTP")


def test_bdat_zero_last(server):
    chunk = crlf("Subject: bdat zero\n\nbody\n")
    with server.client() as c:
        c.ehlo()
        c.send(b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<alice@example.test>\r\n"
               + f"BDAT {len(chunk)}\r\n".encode() + chunk + b"BDAT 0 LAST\r\n")
        c.expect("250 2.1.0")
        c.expect("250 2.1.5")
        c.expect(250)
        c.expect("250 2.0.0 Ok: queued as")
    split_stored(only_message(server), chunk)


# ---------------------------------------------------------------------------------------------
# Sequencing and simple commands


def test_data_without_recipients(server):
    with server.client() as c:
        c.ehlo()
        reply = c.cmd("DATA")
        assert reply.code == 503, reply.text
        c.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")
        c.cmd("RCPT TO:<nobody@example.test>", "550 5.1.1")
        reply = c.cmd("DATA")
        assert reply.code in (503, 554), reply.text
        c.cmd("NOOP", 250)
    assert all_message_files(server.mail_root) == []


def test_rset_noop_vrfy_quit(server):
    with server.client() as c:
        c.ehlo()
        c.cmd("NOOP", "250")
        c.cmd("VRFY alice", 252)
        c.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")
        c.cmd("RCPT TO:<alice@example.test>", "250 2.1.5")
        c.cmd("RSET", 250)
        reply = c.cmd("RCPT TO:<alice@example.test>")
        assert reply.code == 503, f"RCPT after RSET: {reply.text}"
        reply = c.cmd("DATA")
        assert reply.code == 503, f"DATA after RSET: {reply.text}"
        c.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")
        c.cmd("MAIL FROM:<sender@example.org>", 503)  # nested MAIL
        c.cmd("QUIT", 221)
        assert c.closed_by_server()
    assert all_message_files(server.mail_root) == []


def test_mail_before_helo_is_refused(server):
    with server.client() as c:
        c.cmd("MAIL FROM:<sender@example.org>", 503)
        c.cmd("HELP", 214)
        c.cmd("FOOBAR", "500 5.5.1")
        c.cmd("EHLO client.example.org", 250)


@pytest.mark.parametrize("rcpt", ["ALICE@EXAMPLE.TEST", "alice@example.test.",
                                  "Alice@Example.Test.", "AL@example.test"])
def test_case_and_trailing_dot(server, rcpt):
    message = make_message(token())
    with server.client() as c:
        c.ehlo()
        c.transaction(SENDER, [rcpt], message)
    split_stored(only_message(server, ALICE), message)


def test_multiple_recipients_once_each(server):
    message = make_message(token())
    with server.client() as c:
        c.ehlo()
        c.transaction(SENDER, [ALICE, BOB, ALIAS, "ALICE@example.test"], message)
    split_stored(only_message(server, ALICE), message)
    split_stored(only_message(server, BOB), message)


def test_unknown_and_unparseable_recipients(server):
    with server.client() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")
        c.cmd("RCPT TO:<nobody@example.test>", "550 5.1.1")
        c.cmd("RCPT TO:<hi..there@example.test>", "501 5.1.3")
        c.cmd("RCPT TO:<alice@example.test>", "250 2.1.5")
        c.data(make_message(token()))
    assert len(server.new_files(ALICE)) == 1


def test_null_sender_accepted(server):
    message = make_message(token())
    with server.client() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<>", "250 2.1.0")
        c.cmd("RCPT TO:<alice@example.test>", "250 2.1.5")
        c.data(message)
    prefix, _ = split_stored(only_message(server), message)
    assert prefix.startswith(b"Return-Path: <>\n"), prefix


def test_several_transactions_in_one_session(server):
    messages = [make_message(token()) for _ in range(5)]
    with server.client() as c:
        c.ehlo()
        for message in messages:
            c.transaction(SENDER, [ALICE], message)
    stored = server.new_messages(ALICE)
    assert len(stored) == 5
    for message in messages:
        original = message.replace(b"\r\n", b"\n")
        assert sum(s.endswith(original) for s in stored) == 1


def test_postmaster_without_domain(make_server):
    server = make_server(extra={"accounts": {ALICE: {"aliases": [ALIAS, "postmaster@example.test"]}}})
    message = make_message(token())
    with server.client() as c:
        c.ehlo()
        c.transaction(SENDER, ["postmaster"], message)
        c.transaction(SENDER, ["Postmaster"], message)
    assert len(server.new_files(ALICE)) == 2


def test_bdat_fully_pipelined(server):
    chunk1 = crlf("Subject: pipelined bdat\n\nfirst\n")
    chunk2 = crlf("second\n")
    with server.client() as c:
        c.ehlo()
        c.send(b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<alice@example.test>\r\n"
               + f"BDAT {len(chunk1)}\r\n".encode() + chunk1
               + f"BDAT {len(chunk2)} LAST\r\n".encode() + chunk2
               + b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<bob@example.test>\r\n"
               + f"BDAT {len(chunk1)} LAST\r\n".encode() + chunk1
               + b"QUIT\r\n")
        c.expect("250 2.1.0")
        c.expect("250 2.1.5")
        c.expect(f"250 2.0.0 {len(chunk1)} octets received")
        c.expect("250 2.0.0 Ok: queued as")
        c.expect("250 2.1.0")
        c.expect("250 2.1.5")
        c.expect("250 2.0.0 Ok: queued as")
        c.expect(221)
    split_stored(only_message(server, ALICE), chunk1 + chunk2)
    split_stored(only_message(server, BOB), chunk1)


def test_data_after_bdat_is_refused(server):
    chunk = crlf("Subject: x\n\n")
    with server.client() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")
        c.cmd("RCPT TO:<alice@example.test>", "250 2.1.5")
        c.send(f"BDAT {len(chunk)}\r\n".encode() + chunk)
        c.expect(250)
        c.cmd("DATA", 503)
        c.cmd("RSET", 250)
    assert all_message_files(server.mail_root) == []


def test_ehlo_resets_transaction(server):
    with server.client() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")
        c.cmd("RCPT TO:<alice@example.test>", "250 2.1.5")
        c.ehlo()
        c.cmd("DATA", 503)
    assert all_message_files(server.mail_root) == []


def test_empty_message(server):
    with server.client() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")
        c.cmd("RCPT TO:<alice@example.test>", "250 2.1.5")
        c.cmd("DATA", 354)
        c.cmd(".", "250 2.0.0 Ok: queued as")
    stored = only_message(server)
    check_trace(stored, SENDER, "ESMTP")
    assert stored.endswith(b"\n")


def test_large_message_round_trip(server):
    """About 5 MB through DATA in many TCP reads; every byte arrives in order."""
    lines = [f"{i:07d} {uuid.uuid4().hex} {'.' if i % 7 == 0 else ''}{'x' * 40}"
             for i in range(60000)]
    lines[100] = "." + lines[100]
    message = crlf("Subject: large\n\n" + "\n".join(lines) + "\n")
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as smtp:
        smtp.sendmail(SENDER, [ALICE], message)
    split_stored(only_message(server), message)
