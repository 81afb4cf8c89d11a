"""Protection limits and hostile input: sizes, recipients, long lines, garbage, timeouts,
connection floods, SMTP smuggling. After each abuse the server must still serve."""

from __future__ import annotations

import random
import smtplib
import socket
import struct
import time
import uuid

import pytest

from icshelpers import (
    ALIAS,
    ALICE,
    BOB,
    ConnectionClosed,
    all_message_files,
    crlf,
    make_message,
    split_stored,
)

SENDER = "sender@example.org"
SMALL = 10000


def token() -> str:
    return "tok-" + uuid.uuid4().hex


def assert_serves(server, address=ALICE, source=None):
    """A fresh connection is greeted and can deliver; returns the delivered message."""
    message = make_message(token())
    with server.client(source=source) as c:
        assert c.greeting.code == 220, c.greeting.text
        c.ehlo()
        c.transaction(SENDER, [address], message)
    return message


def eventually_serves(server, timeout: float = 10):
    """`assert_serves` once the server has let go of a flood of connections."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return assert_serves(server)
        except (AssertionError, ConnectionClosed):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def assert_nothing_stored(server):
    files = all_message_files(server.mail_root)
    new_cur = [f for f in files if f.parent.name in ("new", "cur")]
    assert new_cur == [], f"messages were stored: {new_cur}"


def big_message(size: int) -> bytes:
    line = b"x" * 76 + b"\r\n"
    body = line * (size // len(line) + 1)
    return crlf("Subject: big\n\n") + body


# ---------------------------------------------------------------------------------------------
# Size


def test_declared_size_too_big(make_server):
    server = make_server(smtp={"maxMessageSize": SMALL})
    with server.client() as c:
        ehlo = c.ehlo()
        assert f"SIZE {SMALL}" in ehlo.text
        c.cmd(f"MAIL FROM:<sender@example.org> SIZE={SMALL + 1}", "552 5.3.4")
        c.cmd("MAIL FROM:<sender@example.org> SIZE=99999999999", "552")
        c.cmd(f"MAIL FROM:<sender@example.org> SIZE={SMALL // 2}", "250 2.1.0")
        c.cmd("RSET", 250)
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPSenderRefused) as err:
            smtp.sendmail(SENDER, [ALICE], big_message(SMALL * 2))
        assert err.value.smtp_code == 552
    assert_nothing_stored(server)


def test_undeclared_oversize_data(make_server):
    server = make_server(smtp={"maxMessageSize": SMALL})
    with server.client() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")
        c.cmd("RCPT TO:<alice@example.test>", "250 2.1.5")
        c.cmd("DATA", 354)
        c.send(big_message(SMALL * 3) + b".\r\n")
        c.expect("552 5.3.4")
        assert_nothing_stored(server)
        # the same session is still usable
        c.cmd("NOOP", 250)
        small = make_message(token())
        c.transaction(SENDER, [ALICE], small)
    stored = server.new_messages(ALICE)
    assert len(stored) == 1
    split_stored(stored[0], small)


def test_oversize_bdat(make_server):
    server = make_server(smtp={"maxMessageSize": SMALL})
    chunk = big_message(SMALL * 2)
    with server.client() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")
        c.cmd("RCPT TO:<alice@example.test>", "250 2.1.5")
        c.send(f"BDAT {len(chunk)} LAST\r\n".encode() + chunk)
        c.expect("552 5.3.4")
        c.cmd("NOOP", 250)
    assert_nothing_stored(server)
    assert_serves(server)


def test_message_of_exactly_max_size_is_accepted(make_server):
    server = make_server(smtp={"maxMessageSize": SMALL})
    message = crlf("Subject: fits\n\n")
    message += b"y" * (SMALL - len(message) - 2) + b"\r\n"
    assert len(message) == SMALL
    with server.client() as c:
        c.ehlo()
        c.transaction(SENDER, [ALICE], message, mail_params=f"SIZE={SMALL}")
    split_stored(server.new_messages(ALICE)[0], message)


# ---------------------------------------------------------------------------------------------
# Recipients


def test_too_many_recipients(make_server):
    server = make_server(limits={"maxRecipients": 2})
    message = make_message(token())
    with server.client() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")
        c.cmd(f"RCPT TO:<{ALICE}>", "250 2.1.5")
        c.cmd(f"RCPT TO:<{BOB}>", "250 2.1.5")
        c.cmd(f"RCPT TO:<{ALIAS}>", "452 4.5.3")
        c.cmd(f"RCPT TO:<{BOB}>", "452 4.5.3")
        c.data(message)
    assert len(server.new_files(ALICE)) == 1
    assert len(server.new_files(BOB)) == 1


# ---------------------------------------------------------------------------------------------
# Long lines and garbage


@pytest.mark.parametrize("length", [4097, 5000, 1024 * 1024])
def test_long_command_line(server, length):
    with server.client(timeout=20) as c:
        c.ehlo()
        line = b"NOOP " + b"a" * (length - 7)
        assert len(line) + 2 == length
        c.send(line + b"\r\n")
        c.expect("500 5.5.2")
        c.cmd("NOOP", 250)
        c.transaction(SENDER, [ALICE], make_message(token()))
    assert len(server.new_files(ALICE)) == 1


@pytest.mark.parametrize("length", [4097, 5000, 1024 * 1024])
def test_long_rcpt_line(server, length):
    """An over-long line is refused as too long whatever command it starts with."""
    with server.client(timeout=20) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")
        line = b"RCPT TO:<" + b"b" * (length - 25) + b"@example.test>"
        assert len(line) + 2 == length
        c.send(line + b"\r\n")
        c.expect("500 5.5.2")
        c.cmd(f"RCPT TO:<{ALICE}>", "250 2.1.5")
        c.data(make_message(token()))
    assert len(server.new_files(ALICE)) == 1


@pytest.mark.parametrize("prefix", [b"XYZZ ", b"MAIL FROM:<", b"HELO "])
def test_long_line_of_any_command(server, prefix):
    """5000 bytes in one line: "line too long", whatever the command would have been."""
    with server.client() as c:
        c.ehlo()
        c.send(prefix + b"a" * (5000 - 2 - len(prefix)) + b"\r\n")
        c.expect("500 5.5.2")
        c.cmd("NOOP", 250)


def test_command_line_of_4096_bytes_is_fine(server):
    with server.client() as c:
        c.ehlo()
        line = b"NOOP " + b"a" * (4096 - 7)
        assert len(line) + 2 == 4096
        c.send(line + b"\r\n")
        c.expect(250)


def test_garbage_ends_in_421_after_max_errors(make_server):
    server = make_server(limits={"maxErrors": 5})
    rng = random.Random(1234)
    lines = []
    for _ in range(12):
        junk = bytes(rng.choice([b for b in range(256) if b not in (10, 13)]) for _ in range(80))
        lines.append(b"\x00" + junk + b"\r\n")
    with server.client() as c:
        c.send(b"".join(lines))
        replies = []
        try:
            while True:
                reply = c.read_reply()
                replies.append(reply)
                if reply.code == 421:
                    break
        except ConnectionClosed:
            pass
        codes = [r.code for r in replies]
        assert codes and codes[-1] == 421, f"no 421 after garbage: {[r.text for r in replies]}"
        assert "4.7.0" in replies[-1].text, replies[-1].text
        assert all(code >= 500 for code in codes[:-1]), codes
        assert len(codes) <= 5, f"more than maxErrors replies before 421: {codes}"
        assert c.closed_by_server(), "connection still open after 421"
    assert_serves(server)


def test_binary_without_line_breaks(make_server):
    server = make_server(limits={"maxErrors": 3})
    rng = random.Random(99)
    blob = bytes(rng.randrange(256) for _ in range(200_000)).replace(b"\n", b"n")
    with server.client() as c:
        c.ehlo()
        try:
            c.send(blob + b"\r\n")
            reply = c.read_reply()
            assert reply.code in (500, 421), reply.text
        except (ConnectionClosed, ConnectionResetError, BrokenPipeError):
            pass
    assert_serves(server)


def test_nul_bytes_in_commands(server):
    with server.client() as c:
        c.ehlo()
        reply = c.cmd(b"NO\x00OP")
        assert reply.code >= 500, reply.text
        reply = c.cmd(b"MAIL FROM:<send\x00er@example.org>")
        assert reply.code >= 500, reply.text
        c.cmd("NOOP", 250)
    assert_nothing_stored(server)


# ---------------------------------------------------------------------------------------------
# Clients that vanish or stall


def test_client_disconnects_mid_data(server):
    with server.client() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")
        c.cmd("RCPT TO:<alice@example.test>", "250 2.1.5")
        c.cmd("DATA", 354)
        c.send(crlf("Subject: cut\n\nthis message is never finished\n") + b"x" * 50000)
        time.sleep(0.2)
    time.sleep(1.0)
    assert server.new_files(ALICE) == [] and server.cur_files(ALICE) == []
    assert_nothing_stored(server)
    message = assert_serves(server)
    stored = server.new_messages(ALICE)
    assert len(stored) == 1
    split_stored(stored[0], message)


def test_client_resets_mid_data(server):
    with server.client() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")
        c.cmd("RCPT TO:<alice@example.test>", "250 2.1.5")
        c.cmd("DATA", 354)
        c.send(crlf("Subject: cut\n\nreset\n"))
        # RST instead of FIN
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    time.sleep(1.0)
    assert_nothing_stored(server)
    assert_serves(server)


def test_idle_client_gets_421(make_server):
    server = make_server(limits={"commandTimeout": 2})
    with server.client() as c:
        start = time.monotonic()
        reply = c.read_reply()
        elapsed = time.monotonic() - start
        assert reply.lines[0].startswith("421 4.4.2"), reply.text
        assert 1.0 <= elapsed <= 8, f"timeout after {elapsed:.1f} s, configured 2 s"
        assert c.closed_by_server()
    with server.client() as c:
        c.ehlo()
        time.sleep(0.5)
        c.cmd("NOOP", 250)  # activity restarts the timer
        reply = c.read_reply()
        assert reply.lines[0].startswith("421 4.4.2"), reply.text
        assert c.closed_by_server()
    assert_serves(server)


def test_stalled_data_times_out(make_server):
    server = make_server(limits={"dataTimeout": 2, "commandTimeout": 30})
    with server.client() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")
        c.cmd("RCPT TO:<alice@example.test>", "250 2.1.5")
        c.cmd("DATA", 354)
        c.send(crlf("Subject: stall\n\npart\n"))
        start = time.monotonic()
        reply = c.read_reply()
        elapsed = time.monotonic() - start
        assert reply.lines[0].startswith("421 4.4.2"), reply.text
        assert 1.0 <= elapsed <= 8, f"data timeout after {elapsed:.1f} s, configured 2 s"
        assert c.closed_by_server()
    assert_nothing_stored(server)
    assert_serves(server)


# ---------------------------------------------------------------------------------------------
# Connection floods


def test_connection_flood_from_one_ip(make_server):
    per_ip = 50
    server = make_server(limits={"connectionsPerIp": per_ip})
    socks = []
    try:
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            socks.append(s)
        first_lines = []
        deadline = time.monotonic() + 20
        for s in socks:
            s.settimeout(max(0.5, deadline - time.monotonic()))
            data = b""
            try:
                while b"\n" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except (socket.timeout, ConnectionResetError):
                pass
            first_lines.append(data.split(b"\r\n")[0].decode(errors="replace"))
        greeted = [l for l in first_lines if l.startswith("220")]
        refused = [l for l in first_lines if l.startswith("421 4.7.0")]
        others = [l for l in first_lines if not l.startswith(("220", "421 4.7.0"))]
        print(f"{len(greeted)} greeted, {len(refused)} refused with 421 4.7.0")
        assert 1 <= len(greeted) <= per_ip, f"{len(greeted)} connections greeted, limit {per_ip}"
        assert others == [], f"unexpected first lines: {others[:5]}"
        assert len(refused) == 200 - len(greeted)
        # another client address is not affected while the flood is still open
        message = assert_serves(server, source="127.0.0.2")
        split_stored(server.new_messages(ALICE)[0], message)
        assert server.alive()
    finally:
        for s in socks:
            s.close()
    # once the flood is gone, 127.0.0.1 is served again
    eventually_serves(server)
    assert len(server.new_files(ALICE)) == 2


def test_max_connections(make_server):
    server = make_server(limits={"maxConnections": 5, "connectionsPerIp": 50})
    clients = []
    try:
        for _ in range(5):
            clients.append(server.client())
        assert all(c.greeting.code == 220 for c in clients)
        for source in ("127.0.0.1", "127.0.0.3"):
            with server.client(source=source) as extra:
                assert extra.greeting.lines[0].startswith("421 4.7.0"), extra.greeting.text
                assert extra.closed_by_server()
        for c in clients:
            c.cmd("NOOP", 250)
    finally:
        for c in clients:
            c.close()
    eventually_serves(server)


# ---------------------------------------------------------------------------------------------
# SMTP smuggling: only <CRLF>.<CRLF> ends the data


SMUGGLE_ENDS = {
    "lf-dot-lf": b"\n.\n",
    "crlf-dot-lf": b"\r\n.\n",
    "lf-dot-crlf": b"\n.\r\n",
    "cr-dot-cr": b"\r.\r",
    "crlf-dot-cr": b"\r\n.\r",
    "cr-dot-crlf": b"\r.\r\n",
}


@pytest.mark.parametrize("fake_end", list(SMUGGLE_ENDS.values()), ids=list(SMUGGLE_ENDS))
def test_smuggling(server, fake_end):
    nl = fake_end[-1:] if fake_end.endswith(b"\n") and not fake_end.endswith(b"\r\n") else b"\r\n"
    smuggled = (b"MAIL FROM:<evil@example.org>" + nl + b"RCPT TO:<bob@example.test>" + nl +
                b"DATA" + nl + b"Subject: smuggled" + nl + nl + b"SMUGGLED-BODY" + nl)
    head = crlf("From: <sender@example.org>\nSubject: smuggling\n\nbefore")
    with server.client() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")
        c.cmd("RCPT TO:<alice@example.test>", "250 2.1.5")
        c.cmd("DATA", 354)
        c.send(head + fake_end + smuggled + b"after\r\n.\r\n")
        c.expect("250 2.0.0 Ok: queued as")
        # exactly one reply for the whole message: the next one belongs to QUIT
        c.cmd("QUIT", 221)
    assert server.new_files(BOB) == [], "the smuggled message was delivered to bob"
    stored = server.new_messages(ALICE)
    assert len(stored) == 1, f"{len(stored)} messages for alice"
    assert b"RCPT TO:<bob@example.test>" in stored[0]
    assert b"SMUGGLED-BODY" in stored[0]
    assert stored[0].rstrip().endswith(b"after"), stored[0][-200:]
