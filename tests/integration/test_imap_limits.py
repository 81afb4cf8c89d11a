"""Bad input and limits: unterminated and oversized literals, garbage, overlong lines, out of
range sequence sets, many idle connections. After each, the server must still serve."""

from __future__ import annotations

import socket
import time

import pytest

from icshelpers import PASSWORD
from imaphelpers import (Closed, append, imap_target, make_module_imap, message,  # noqa: F401
                         search_ids, select_info, status_items)


def still_serves(target, user):
    with target.raw_login(user) as raw:
        raw.ok("SELECT INBOX")
        raw.ok("NOOP")
    assert target.alive()


def read_all(raw, timeout=3.0) -> bytes:
    raw.settimeout(timeout)
    data = raw.buf
    raw.buf = b""
    try:
        while True:
            chunk = raw.sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def test_unterminated_literal_then_disconnect(imap_target):
    user = imap_target.fresh_user()
    raw = imap_target.raw_login(user)
    raw.send('a APPEND INBOX {100}\r\n')
    assert raw.line().startswith(b"+")
    raw.send(b"From: x@example.org\r\nSubject: cut")
    raw.close()
    time.sleep(0.3)
    still_serves(imap_target, user)
    with imap_target.raw_login(user) as raw:
        assert status_items(raw.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 0


def test_huge_literal_is_refused(imap_target):
    user = imap_target.fresh_user()
    raw = imap_target.raw_login(user)
    raw.send("a APPEND INBOX {104857600}\r\n")
    line = raw.line()
    # Refused instead of a continuation: tagged NO/BAD (Dovecot: NO [TOOBIG]), or BYE.
    assert line.startswith((b"a NO", b"a BAD", b"* BYE")), line
    if line.startswith(b"a "):
        raw.ok("NOOP")  # the session goes on
    raw.close()
    # A non-synchronizing huge literal can't be skipped politely: NO/BAD or BYE and close.
    raw = imap_target.raw_login(user)
    raw.send("b APPEND INBOX {104857600+}\r\n" + "x" * 1000)
    data = read_all(raw)
    assert b"b NO" in data or b"b BAD" in data or b"* BYE" in data, data[:500]
    raw.close()
    still_serves(imap_target, user)


def test_garbage_and_unknown_commands(imap_target):
    user = imap_target.fresh_user()
    with imap_target.raw() as raw:
        raw.send(b"\x00\xff\xfe\x80 garbage\r\n")
        line = raw.line()
        assert b"BAD" in line or line.startswith(b"* BYE"), line
    with imap_target.raw_login(user) as raw:
        for bad in ("FROBNICATE", "SELECT", 'SELECT "unterminated', "FETCH", "STORE 1",
                    "UID FROB 1"):
            r = raw.cmd(bad)
            assert r.status == "BAD", (bad, r)
        raw.send(b"\r\n")  # an empty line
        line = raw.line()
        assert b"BAD" in line, line
        raw.ok("NOOP")
    still_serves(imap_target, user)


def test_very_long_command_line(imap_target):
    user = imap_target.fresh_user()
    raw = imap_target.raw_login(user)
    raw.send(b"a SELECT " + b"x" * 200_000 + b"\r\nb NOOP\r\n")
    data = read_all(raw, timeout=3)
    assert b"BAD" in data or b"* BYE" in data, data[:300]
    raw.close()
    still_serves(imap_target, user)


def test_sequence_sets_out_of_range(imap_target):
    user = imap_target.fresh_user()
    with imap_target.raw_login(user) as raw:
        for i in range(3):
            append(raw, "INBOX", message(f"r{i}"))
        raw.ok("SELECT INBOX")
        r = raw.cmd("FETCH 999 FLAGS")
        assert r.status in ("BAD", "NO") and not r.untagged("FETCH"), r
        r = raw.cmd("FETCH 0 FLAGS")
        assert r.status == "BAD", r
        r = raw.ok("UID FETCH 999 FLAGS")
        assert not r.untagged("FETCH"), r
        r = raw.ok("UID STORE 999 +FLAGS (\\Seen)")
        assert not r.untagged("FETCH"), r
        assert search_ids(raw.ok("UID SEARCH UID 999")) == []
        # "*" in a UID set means the highest UID: 999:* includes the last message.
        r = raw.ok("UID FETCH 999:* (UID)")
        assert len(r.untagged("FETCH")) == 1, r
        r = raw.ok("FETCH 2:* (UID)")
        assert len(r.untagged("FETCH")) == 2, r
        assert raw.cmd("FETCH 1:4294967296 FLAGS").status == "BAD"


def test_many_idle_connections(imap_target):
    user = imap_target.fresh_user()
    socks = []
    try:
        for i in range(500):
            # Spread over 50 loopback source addresses (per-address limits are fine).
            src = f"127.0.0.{10 + i % 50}"
            s = socket.create_connection((imap_target.host, imap_target.port), timeout=10,
                                         source_address=(src, 0))
            socks.append(s)
        greeted = 0
        for s in socks:
            if s.recv(200).startswith(b"* OK"):
                greeted += 1
        assert greeted == 500, greeted
        start = time.monotonic()
        with imap_target.raw_login(user) as raw:
            raw.ok("SELECT INBOX")
            raw.ok(f"STATUS INBOX (MESSAGES)") if False else raw.ok("NOOP")
        assert time.monotonic() - start < 5
    finally:
        for s in socks:
            s.close()
    still_serves(imap_target, user)


def test_sessions_per_account_are_capped(imap_target):
    """50 sessions of one account are served; the 51st login is refused with NO [LIMIT] and
    succeeds again once one of them has logged out (ics-mail's per-account cap)."""
    imap_target.only_icsmail("per-account session cap (50)")
    user = imap_target.fresh_user()
    sessions = [imap_target.raw_login(user) for _ in range(50)]
    try:
        extra = imap_target.raw()
        refused = extra.cmd(f'LOGIN "{user}" "{PASSWORD}"')
        assert refused.status == "NO" and b"[LIMIT]" in refused.tagged, refused
        sessions.pop().ok("LOGOUT")
        # The slot is freed as the logged-out session ends, a moment after its OK.
        for _ in range(50):
            again = extra.cmd(f'LOGIN "{user}" "{PASSWORD}"')
            if again.status == "OK":
                break
            assert b"[LIMIT]" in again.tagged, again
            time.sleep(0.1)
        assert again.status == "OK", again
        extra.close()
    finally:
        for raw in sessions:
            raw.close()
    still_serves(imap_target, imap_target.fresh_user())
