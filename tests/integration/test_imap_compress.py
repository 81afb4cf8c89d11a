"""COMPRESS=DEFLATE (RFC 4978), each exchange run against ics-mail and a private Dovecot 2.3
(imap_zlib) alike: a raw client that deflates and inflates with Python's zlib as RFC 4978
clients do, and mbsync (isync, which uses COMPRESS=DEFLATE when it is offered).

What must hold on both servers: COMPRESS is offered after login only; before login it is
refused; `OK` and then everything both ways is raw DEFLATE; every reply is flushed (the client
inflates a whole tagged reply from what it has, without sending more); a second COMPRESS is `NO
[COMPRESSIONACTIVE]`. On ics-mail also: each flush is a full flush (the client's inflater,
restarted at any flush boundary, reads the rest: no dictionary carried across replies),
garbage input ends only that connection, and a small compressed line that inflates to 20 MB is
refused like any line over the limit (BAD [TOOBIG], BYE) without being held."""

from __future__ import annotations

import os
import re
import subprocess
import zlib

import pytest

from icshelpers import PASSWORD
from imaphelpers import (DovecotTarget, Raw, append, make_module_imap, message,  # noqa: F401
                         tool)
from test_imap_clients import maildir_state


@pytest.fixture(scope="module", params=["icsmail", "dovecot"])
def target(request, make_module_imap, tmp_path_factory):
    if request.param == "icsmail":
        yield make_module_imap(tls_mode="optional", implicit=False)
        return
    dovecot = DovecotTarget(tmp_path_factory.mktemp("dovecot-compress"), "optional", False)
    yield dovecot
    dovecot.cleanup()


class Deflated(Raw):
    """The raw client after COMPRESS: deflates what it sends (a sync flush per command, as
    clients do) and inflates what it gets; `wire` keeps every compressed byte received."""

    def __init__(self, raw: Raw):
        self.__dict__.update(raw.__dict__)
        assert not self.buf, f"bytes after the COMPRESS OK were not compressed: {self.buf!r}"
        self.out = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflater = zlib.decompressobj(-15)
        self.wire = b""
        self.chunks: list[bytes] = []

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(self.out.compress(data) + self.out.flush(zlib.Z_SYNC_FLUSH))

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed (pending {self.buf[:200]!r})")
        self.wire += chunk
        self.chunks.append(chunk)
        self.buf += self.inflater.decompress(chunk)


def compress(raw: Raw) -> Deflated:
    r = raw.cmd("COMPRESS DEFLATE")
    assert r.status == "OK", r
    return Deflated(raw)


def login(target) -> Raw:
    user = target.fresh_user()
    raw = target.raw_login(user)
    return raw


def test_offered_after_login_only_and_refused_before(target):
    raw = target.raw()
    r = raw.cmd("CAPABILITY")
    assert "COMPRESS=DEFLATE" not in " ".join(r.untagged("CAPABILITY")).upper()
    r = raw.cmd("COMPRESS DEFLATE")
    assert r.status in ("BAD", "NO"), r
    raw.ok(f'LOGIN "{target.fresh_user()}" "{PASSWORD}"')
    r = raw.cmd("CAPABILITY")
    assert "COMPRESS=DEFLATE" in " ".join(r.untagged("CAPABILITY")).upper(), r
    raw.close()


def test_a_session_runs_compressed_and_every_reply_is_flushed(target):
    raw = login(target)
    body = "".join(f"line {i} of a compressible body, the same words again\n" for i in range(4000))
    append(raw, "INBOX", message("big", body=body))
    z = compress(raw)
    # Each command's whole reply arrives without the client sending anything more (a missing
    # flush would leave the tagged line in the server's compressor and time out here).
    z.ok("NOOP")
    r = z.ok("SELECT INBOX")
    assert any(b"EXISTS" in line for line in r.lines), r
    before = len(z.wire)
    r = z.ok("FETCH 1 (BODY.PEEK[])")
    fetched = b"".join(r.lines)
    assert b"line 3999 of a compressible body" in fetched
    assert len(z.wire) - before < len(fetched) / 5, (len(z.wire) - before, len(fetched))
    # Pipelined commands in one compressed write: answered in order.
    tags = [z.tag() for _ in range(3)]
    z.send("".join(f"{t} NOOP\r\n" for t in tags))
    for t in tags:
        assert z.read_tagged(t).status == "OK"
    r = z.cmd("COMPRESS DEFLATE")
    assert r.status == "NO" and "[COMPRESSIONACTIVE]" in r.text.upper(), r
    z.cmd("LOGOUT")
    z.close()


def test_each_flush_is_a_full_flush(target):
    """Every flush of ics-mail resets the compressor's dictionary: an inflater started afresh
    at the boundary after a reply reads the next reply alone. (Dovecot uses sync flushes; the
    RFC allows both, so this is ics-mail's own promise: no reply's compressed size depends on
    an earlier one.)"""
    target.only_icsmail("Dovecot flushes with Z_SYNC_FLUSH")
    raw = login(target)
    append(raw, "INBOX", message("secret-subject-1234567890", body="x\n"))
    z = compress(raw)
    z.ok("SELECT INBOX")
    z.ok("FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    boundary = len(z.wire)
    r = z.ok("FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    fresh = zlib.decompressobj(-15)
    alone = fresh.decompress(z.wire[boundary:])
    assert b"secret-subject-1234567890" in alone, alone
    assert alone.endswith(r.tagged + b"\r\n"), alone[-80:]
    z.close()


def test_garbage_ends_only_that_connection(target):
    target.only_icsmail("what a server does with corrupt input is its own business")
    raw = login(target)
    r = raw.cmd("COMPRESS DEFLATE")
    assert r.status == "OK"
    raw.send(b"\xff\xfe\xfd\xfc this is not deflate \x00\x01\x02" * 10)
    raw.sock.settimeout(10)
    try:
        rest = raw.sock.recv(4096)
        while rest:
            rest = raw.sock.recv(4096)
    except (ConnectionError, OSError):
        pass
    raw.close()
    other = login(target)
    other.ok("NOOP")
    other.close()


def test_a_small_input_that_inflates_hugely_is_a_long_line(target):
    target.only_icsmail("memory bound of ics-mail's own guard")
    raw = login(target)
    z = compress(raw)
    bomb = b"a NOOP " + b"A" * 20_000_000 + b"\r\n"
    deflated = z.out.compress(bomb) + z.out.flush(zlib.Z_SYNC_FLUSH)
    assert len(deflated) < 100_000
    z.sock.sendall(deflated)
    z.sock.settimeout(30)
    line = z.line()
    assert b"BAD" in line and b"TOOBIG" in line.upper(), line
    # As for any line over the limit (docs/imap.md, the input guard): goodbye, closed.
    assert b"BYE" in z.line()
    z.close()
    other = login(target)
    other.ok("NOOP")
    other.close()
    assert target.alive()


def test_mbsync_syncs_over_compress(target, tmp_path):
    user = target.fresh_user()
    raw = target.raw_login(user)
    for i in range(5):
        append(raw, "INBOX", message(f"mbsync {i}", body=f"body {i}\n" * 200))
    raw.close()
    local = tmp_path / "local"
    local.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(f"""IMAPAccount test
Host {target.host}
Port {target.port}
User {user}
Pass {PASSWORD}
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account test

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns INBOX
Create Near
SyncState *
""")
    result = subprocess.run([tool("mbsync"), "-D", "-c", str(rc), "-a"], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # mbsync's debug output shows the command it sent, and it only goes on compressed.
    assert re.search(r"COMPRESS DEFLATE", result.stdout + result.stderr), result.stdout[-3000:]
    state = maildir_state(local)
    assert len([k for k in state if k.startswith("INBOX/")]) == 5, state


def test_memory_per_compressed_session(target):
    """What COMPRESS costs per connection (the compressor's and the inflater's state), measured
    as the server's VmRSS over 20 sessions compressed after 20 plain ones: a bound."""
    target.only_icsmail("ics-mail's own memory figure")
    from test_imap_security import rss
    users = [target.fresh_user() for _ in range(4)]
    plain = [target.raw_login(users[i % 2]) for i in range(20)]
    for raw in plain:
        raw.ok("SELECT INBOX")
    before = rss(target)
    squeezed = []
    for i in range(20):
        z = compress(target.raw_login(users[2 + i % 2]))
        z.ok("SELECT INBOX")
        squeezed.append(z)
    each = (rss(target) - before) / 20
    print(f"COMPRESS: {each / 1024:.0f} KiB per session more than a plain one")
    # Only the inflater stays between commands (the compressor lives for a flush).
    assert each < 200 * 1024, each
    for raw in plain + squeezed:
        raw.close()
