"""Protection limits and hostile input: sizes, recipients, long lines, garbage, timeouts,
connection floods and budgets, SMTP smuggling. After each abuse the server must still serve."""

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
    PASSWORD,
    ConnectionClosed,
    SMTPClient,
    TLSClient,
    all_message_files,
    crlf,
    free_port,
    make_message,
    read_until_closed,
    smtps_port,
    split_stored,
    submission_port,
    tls_overrides,
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


def test_bdat_size_overflow(server):
    """Issue 10 item 3, the exact bytes: 10 octets stored, then a chunk size that overflows
    `body + chunk`. 552 at once (no panic), the connection stays up, the server serves on."""
    with server.client() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")
        c.cmd("RCPT TO:<alice@example.test>", "250 2.1.5")
        c.send(b"BDAT 10\r\n0123456789")
        c.expect("250")
        c.send(b"BDAT 18446744073709551609 LAST\r\n")
        c.expect("552 5.3.4")
        # The declared chunk is being drained (RFC 3030): the session goes on, not closed.
        assert not c.closed_by_server(timeout=1.0), "connection closed after the 552"
        c.send(b"some chunk octets")
        assert not c.closed_by_server(timeout=0.5)
    assert server.alive()
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


def trickle_until_closed(c, byte: bytes, every: float, limit: float) -> float:
    """Sends `byte` every `every` seconds until the server closes the connection (or `limit`
    seconds pass); returns how long that took."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        try:
            c.send(byte)
        except OSError:
            break
        if c.closed_by_server(timeout=every):
            break
    return time.monotonic() - start


def test_a_command_trickled_a_byte_at_a_time_is_cut_at_the_command_timeout(make_server):
    """Slow-loris: the timeout counts from the last reply, not from the last byte (a byte now
    and then used to keep the connection for as long as a line may grow)."""
    server = make_server(limits={"commandTimeout": 3})
    with server.client() as c:
        c.ehlo()
        elapsed = trickle_until_closed(c, b"N", every=0.5, limit=20)
        assert elapsed < 10, f"a trickling client was still served after {elapsed:.1f} s"
    assert_serves(server)


def test_a_message_trickled_a_byte_at_a_time_is_cut(make_server):
    """DATA counts from the 354, with 1/500 s more per byte received (MIN_CLIENT_RATE): one
    byte every half second is far below that rate."""
    server = make_server(limits={"dataTimeout": 3, "commandTimeout": 30})
    with server.client() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")
        c.cmd("RCPT TO:<alice@example.test>", "250 2.1.5")
        c.cmd("DATA", 354)
        elapsed = trickle_until_closed(c, b"x", every=0.5, limit=20)
        assert elapsed < 10, f"a trickling message was still taken after {elapsed:.1f} s"
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
    "lf-dot-cr-crlf": b"\n.\r\r\n",
    "crlf-dot-cr-crlf": b"\r\n.\r\r\n",
    "crlf-dot-cr-cr-crlf": b"\r\n.\r\r\r\n",
    "crlf-dot-nul-crlf": b"\r\n.\x00\r\n",
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


def test_smuggling_exact_issue_input(server):
    """Issue 10 item 4, the exact bytes: `<CRLF>.<CR><CRLF>` is text, so the smuggled
    MAIL/RCPT/DATA never become a second transaction: one 250, one message, nothing for bob."""
    smuggling = (b"before\r\n.\r\r\nMAIL FROM:<admin@example.test>\r\nRCPT TO:<bob@example.test>\r\n"
                 b"DATA\r\nSubject: SMUGGLED\r\n\r\nevil\r\n.\r\n")
    with server.client() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")
        c.cmd("RCPT TO:<alice@example.test>", "250 2.1.5")
        c.cmd("DATA", 354)
        c.send(smuggling)
        c.expect("250 2.0.0 Ok: queued as")
        # A second transaction would answer here (250 2.1.0 …); NOOP must get the next reply.
        c.cmd("NOOP", "250 2.0.0 OK")
        c.cmd("QUIT", 221)
    assert server.new_files(BOB) == [], "the smuggled message was delivered to bob"
    stored = server.new_messages(ALICE)
    assert len(stored) == 1, f"{len(stored)} messages for alice"
    # Stored with LF line ends: the bare CR became a line end of its own.
    assert b"\nbefore\n\n\nMAIL FROM:<admin@example.test>\n" in stored[0], stored[0]
    assert b"\r" not in stored[0], stored[0]
    assert stored[0].endswith(b"\nevil\n"), stored[0][-100:]


# ---------------------------------------------------------------------------------------------
# Connection budgets (issue 10 item 6): port 25 apart from submission/SMTPS, stress timeout,
# silent refusal on implicit TLS


def budget_server(make_server, certs, max_connections: int = 4, **limits):
    extra = tls_overrides(certs.rsa, "optional", smtps_port=free_port(),
                          submission_port=free_port())
    extra["smtp"]["limits"] = {"maxConnections": max_connections, "connectionsPerIp": 50,
                               **limits}
    return make_server(extra=extra)


def idle_connections(port: int, count: int) -> list[socket.socket]:
    """`count` connections that say nothing (each greeted first, so each holds its slot)."""
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        assert s.recv(4096).startswith(b"220"), "not greeted"
        socks.append(s)
    return socks


def test_port_25_flood_leaves_submission_open(make_server, certs):
    server = budget_server(make_server, certs)
    flood = idle_connections(server.port, 4)
    try:
        with server.client() as refused:
            assert refused.greeting.lines[0].startswith("421 4.7.0"), refused.greeting.text
        message = make_message(token(), sender=ALICE, to=BOB)
        with TLSClient(submission_port(server)) as c:
            assert c.greeting.code == 220, c.greeting.text
            c.ehlo()
            c.auth_plain("alice", PASSWORD, "235 2.7.0")
            c.transaction(ALICE, [BOB], message)
        split_stored(server.new_messages(BOB)[0], message)
    finally:
        for s in flood:
            s.close()


def test_smtps_refusal_writes_no_cleartext(make_server, certs):
    server = budget_server(make_server, certs)
    # Submission and SMTPS share their budget: fill it on 587.
    flood = idle_connections(submission_port(server), 4)
    try:
        with socket.create_connection(("127.0.0.1", smtps_port(server)), timeout=10) as s:
            data, closed = read_until_closed(s, timeout=5)
            assert closed, "the refused SMTPS connection was not closed"
            assert data == b"", f"cleartext on the SMTPS port: {data!r}"
        # The plain submission port still says why.
        with SMTPClient(submission_port(server)) as c:
            assert c.greeting.lines[0].startswith("421 4.7.0"), c.greeting.text
        # Port 25 has its own budget.
        assert_serves(server)
    finally:
        for s in flood:
            s.close()


def test_idle_sessions_time_out_quickly_under_stress(make_server, certs):
    """4 of 5 slots held is stress (>= 75 %): idle sessions wait about 10 s for a command, not
    the configured 300 s, then get 421 4.4.2: one that came during the stress, and one that
    began before it. Three busy clients (a NOOP a second) keep the stress up and stay."""
    server = budget_server(make_server, certs, max_connections=5, commandTimeout=300)
    early = server.client()  # 1 of 5: no stress yet
    busy = [server.client() for _ in range(3)]  # 4 of 5: stress
    late = server.client()
    idle = {"early": early, "late": late}
    cut = {}
    start = time.monotonic()
    try:
        for c in idle.values():
            c.settimeout(0.2)
        while len(cut) < len(idle) and time.monotonic() - start < 45:
            for c in busy:
                c.cmd("NOOP", 250)
            for name, c in idle.items():
                if name in cut:
                    continue
                try:
                    cut[name] = (c.read_reply(), time.monotonic() - start)
                except (socket.timeout, TimeoutError):
                    pass
            time.sleep(0.8)
        assert set(cut) == set(idle), f"still open after 45 s: {set(idle) - set(cut)}"
        for name, (reply, elapsed) in cut.items():
            assert reply.lines[0].startswith("421 4.4.2"), f"{name}: {reply.text}"
            print(f"{name} session closed after {elapsed:.1f} s")
            assert idle[name].closed_by_server()
        for c in busy:
            c.cmd("NOOP", 250)
    finally:
        for c in [early, late, *busy]:
            c.close()
    assert_serves(server)
