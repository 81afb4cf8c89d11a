"""QRESYNC (RFC 7162 §3.2): ENABLE, SELECT/EXAMINE (QRESYNC ...), UID FETCH (CHANGEDSINCE m
VANISHED), VANISHED instead of EXPUNGE, [CLOSED]. Every scenario runs against ics-mail and a
private Dovecot 2.3 in the same test; both answers must be right per the RFC, and equal where
the RFC leaves no choice. Python imapclient is the real client for ENABLE and VANISHED."""

from __future__ import annotations

import poplib
import re
import socket
import time

import imapclient
import pytest

from imaphelpers import (DovecotTarget, IcsTarget, Raw, append, capabilities,
                         distinct_free_ports, message, select_info)
from icshelpers import PASSWORD, wait_for_port


@pytest.fixture(scope="module")
def targets(make_module_server, password_hash, tmp_path_factory):
    ics = IcsTarget(make_module_server, make_module_server.root / "qresync", password_hash)
    dovecot = DovecotTarget(tmp_path_factory.mktemp("qresync") / "dovecot")
    yield [ics, dovecot]
    if not dovecot.alive():
        print("--- dovecot died ---")
    dovecot.stop()
    print(f"--- dovecot log ---\n{dovecot.proc.log()[-5000:]}")
    dovecot.cleanup()


def uid_set(text: str) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        if ":" in part:
            a, b = sorted(int(x) for x in part.split(":"))
            out.update(range(a, b + 1))
        elif part:
            out.add(int(part))
    return out


def vanished(resp, earlier: bool) -> set[int]:
    """The UIDs of the `* VANISHED [(EARLIER)]` responses of that kind."""
    out: set[int] = set()
    for line in resp.lines:
        m = re.match(rb"\* VANISHED (\(EARLIER\) )?([0-9:,]+)$", line)
        if m and bool(m.group(1)) == earlier:
            out |= uid_set(m.group(2).decode())
    return out


def fetched(resp) -> dict[int, tuple[int, frozenset[str], int | None]]:
    """{uid: (seq, flags, modseq)} of the untagged FETCH responses."""
    out = {}
    for line in resp.lines:
        text = line.decode()
        m = re.match(r"\* (\d+) FETCH \((.*)\)$", text)
        if not m:
            continue
        uid = int(re.search(r"UID (\d+)", m.group(2)).group(1))
        flags = re.search(r"FLAGS \(([^)]*)\)", m.group(2))
        modseq = re.search(r"MODSEQ \((\d+)\)", m.group(2))
        out[uid] = (int(m.group(1)),
                    frozenset(flags.group(1).split()) - {"\\Recent"} if flags else frozenset(),
                    int(modseq.group(1)) if modseq else None)
    return out


def full_state(raw: Raw) -> dict[int, frozenset[str]]:
    return {uid: flags for uid, (_, flags, _) in fetched(raw.ok("UID FETCH 1:* (FLAGS)")).items()}


def login(target, user: str, qresync: bool = True) -> Raw:
    raw = target.raw_login(user)
    if qresync:
        r = raw.ok("ENABLE QRESYNC")
        assert any(re.match(rb"\* ENABLED .*QRESYNC", line, re.I) for line in r.lines), r
    return raw


def fill(target, user: str, folder: str, n: int) -> None:
    raw = login(target, user, qresync=False)
    raw.ok(f"CREATE {folder}")
    for i in range(n):
        append(raw, folder, message(f"{folder} {i}"))
    raw.close()


def other_session_changes(target, user: str, folder: str, flag: str, expunge: str,
                          new: int) -> None:
    """Another client (no QRESYNC): flags `flag`, expunges `expunge` (UID sets), appends."""
    raw = login(target, user, qresync=False)
    raw.ok(f"SELECT {folder}")
    if flag:
        raw.ok(f"UID STORE {flag} +FLAGS (\\Flagged)")
    if expunge:
        raw.ok(f"UID STORE {expunge} +FLAGS.SILENT (\\Deleted)")
        raw.ok(f"UID EXPUNGE {expunge}")
    for i in range(new):
        append(raw, folder, message(f"new {i}"))
    raw.ok("LOGOUT")
    raw.close()


def test_qresync_is_advertised_and_needs_enable(targets):
    for target in targets:
        user = target.fresh_user()
        fill(target, user, "Plain", 2)
        raw = login(target, user, qresync=False)
        caps = capabilities(raw.ok("CAPABILITY"))
        assert {"QRESYNC", "CONDSTORE", "ENABLE"} <= caps, (target.name, caps)
        info = select_info(raw.ok("SELECT Plain"))
        # Without ENABLE QRESYNC, the parameter and the modifier are BAD (RFC 7162 §3.2.3).
        r = raw.cmd(f"SELECT Plain (QRESYNC ({info['UIDVALIDITY']} 1))")
        assert r.status == "BAD", (target.name, r)
        r = raw.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")
        assert r.status == "BAD", (target.name, r)
        r = raw.ok("ENABLE QRESYNC")
        assert [l for l in r.lines if l.upper().startswith(b"* ENABLED")] == [
            b"* ENABLED QRESYNC"], (target.name, r)
        # A second ENABLE: ics-mail lists nothing (nothing new was enabled), Dovecot lists it
        # again; RFC 5161 is read both ways.
        r = raw.ok("ENABLE QRESYNC")
        assert [l.strip() for l in r.lines] in ([b"* ENABLED"], [b"* ENABLED QRESYNC"]), r
        # VANISHED needs UID FETCH and CHANGEDSINCE.
        raw.ok("SELECT Plain")
        assert raw.cmd("FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)").status == "BAD"
        assert raw.cmd("UID FETCH 1:* (FLAGS) (VANISHED)").status == "BAD"
        # [CLOSED] when a SELECT replaces the selected folder (RFC 7162 §3.2.11).
        r = raw.ok("EXAMINE INBOX")
        closed = [i for i, l in enumerate(r.lines) if b"[CLOSED]" in l]
        assert closed == [0], (target.name, r)
        raw.close()


def test_resync_after_another_session_changed_the_folder(targets):
    """The resync scenario: a client caches a folder, logs out; another session flags,
    expunges, appends; the client comes back with SELECT (QRESYNC ...) and, applying only what
    it is told, ends with exactly the server's state."""
    answers = {}
    for target in targets:
        user = target.fresh_user()
        fill(target, user, "Sync", 8)
        raw = login(target, user)
        info = select_info(raw.ok("SELECT Sync"))
        cache = full_state(raw)
        assert sorted(cache) == list(range(1, 9))
        validity, modseq = info["UIDVALIDITY"], info["HIGHESTMODSEQ"]
        raw.ok("LOGOUT")
        raw.close()

        other_session_changes(target, user, "Sync", flag="5,7", expunge="2,6", new=2)

        raw = login(target, user)
        r = raw.ok(f"SELECT Sync (QRESYNC ({validity} {modseq}))")
        gone, changed = vanished(r, earlier=True), fetched(r)
        assert not vanished(r, earlier=False), r
        assert not r.untagged("EXPUNGE"), r
        # Every FETCH carries UID, FLAGS and MODSEQ (RFC 7162 §3.2.5.1).
        assert all(m is not None and m > modseq for _, _, m in changed.values()), r
        after = select_info(r)
        # Apply what the server said.
        for uid in gone:
            cache.pop(uid, None)
        for uid, (_, flags, _) in changed.items():
            cache[uid] = flags
        newest = max(cache)
        news = fetched(raw.ok(f"UID FETCH {newest + 1}:* (FLAGS)"))
        for uid, (_, flags, _) in news.items():
            if uid > newest:
                cache[uid] = flags
        assert cache == full_state(raw), (target.name, r)
        assert len(cache) == after["EXISTS"] == 8
        answers[target.name] = (gone, set(changed))

        # The same with known UIDs, a UIDVALIDITY mismatch and UID FETCH ... VANISHED.
        raw.ok("UNSELECT")
        r = raw.ok(f"EXAMINE Sync (QRESYNC ({validity} {modseq} 1:4))")
        assert vanished(r, earlier=True) == {2}, (target.name, r)
        assert set(fetched(r)) == set(), (target.name, r)
        r = raw.ok(f"EXAMINE Sync (QRESYNC ({validity} {modseq} 5:8))")
        assert vanished(r, earlier=True) == {6}, (target.name, r)
        assert set(fetched(r)) == {5, 7}, (target.name, r)
        r = raw.ok(f"EXAMINE Sync (QRESYNC ({validity + 1} {modseq}))")
        assert not vanished(r, earlier=True) and not fetched(r), (target.name, r)
        assert r.lines[0].startswith(b"* OK [CLOSED]"), r
        r = raw.ok(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
        assert vanished(r, earlier=True) == {2, 6}, (target.name, r)
        assert {5, 7} <= set(fetched(r)) <= {5, 7, 9, 10}, (target.name, r)
        r = raw.ok(f"UID FETCH 3:5 (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
        assert vanished(r, earlier=True) == set(), (target.name, r)
        assert set(fetched(r)) == {5}, (target.name, r)
        r = raw.ok(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {after['HIGHESTMODSEQ']} VANISHED)")
        assert not r.lines, (target.name, r)
        raw.close()
    # Both servers told exactly the expunged UIDs, and FETCHed the changed and the new ones.
    assert answers["icsmail"] == answers["dovecot"] == ({2, 6}, {5, 7, 9, 10}), answers


def test_vanished_replaces_expunge_after_enable(targets):
    """After ENABLE QRESYNC every expunge the session is told of is `* VANISHED uids`: from
    its own EXPUNGE and MOVE, and from another session's, after a command and in IDLE."""
    for target in targets:
        user = target.fresh_user()
        fill(target, user, "Live", 10)
        raw = login(target, user)
        raw.ok("CREATE Elsewhere")
        validity = select_info(raw.ok("SELECT Live"))["UIDVALIDITY"]
        raw.ok("UID STORE 1,2 +FLAGS.SILENT (\\Deleted)")
        r = raw.ok("EXPUNGE")
        assert vanished(r, earlier=False) == {1, 2} and not r.untagged("EXPUNGE"), r
        # The tagged OK carries the new HIGHESTMODSEQ (RFC 7162 §3.2.7).
        first = int(re.search(r"\[HIGHESTMODSEQ (\d+)\]", r.text).group(1))
        r = raw.ok("UID MOVE 3 Elsewhere")
        assert vanished(r, earlier=False) == {3} and not r.untagged("EXPUNGE"), r
        moved = int(re.search(r"\[HIGHESTMODSEQ (\d+)\]", r.text).group(1))
        assert moved > first, r
        # A resync from it finds nothing more; from the EXPUNGE's, the MOVE.
        r = raw.ok(f"EXAMINE Live (QRESYNC ({validity} {moved}))")
        assert not vanished(r, earlier=True) and not fetched(r), r
        r = raw.ok(f"EXAMINE Live (QRESYNC ({validity} {first}))")
        assert vanished(r, earlier=True) == {3} and not fetched(r), r
        raw.ok("SELECT Live")
        other_session_changes(target, user, "Live", flag="", expunge="4,5", new=0)
        r = raw.ok("NOOP")
        assert vanished(r, earlier=False) == {4, 5} and not r.untagged("EXPUNGE"), r
        raw.send("i1 IDLE\r\n")
        assert raw.line().startswith(b"+")
        other_session_changes(target, user, "Live", flag="", expunge="8", new=0)
        lines = wait_for_line(raw, rb"^\* VANISHED 8$")
        assert not any(b"EXPUNGE" in line for line in lines), lines
        raw.send("DONE\r\n")
        raw.read_tagged("i1")
        # What is left: UIDs 6, 7, 9, 10 as 1..4.
        assert sorted(full_state(raw)) == [6, 7, 9, 10]
        assert raw.ok("FETCH 4 (UID)").lines == [b"* 4 FETCH (UID 10)"]
        # CLOSE expunges silently.
        raw.ok("UID STORE 6 +FLAGS.SILENT (\\Deleted)")
        r = raw.ok("CLOSE")
        assert not r.lines, r
        raw.close()


def wait_for_line(raw: Raw, pattern: bytes, timeout: float = 10.0) -> list[bytes]:
    deadline = time.monotonic() + timeout
    seen = []
    raw.settimeout(0.2)
    try:
        while time.monotonic() < deadline:
            try:
                line = raw.line()
            except socket.timeout:
                continue
            seen.append(line)
            if re.search(pattern, line):
                return seen
    finally:
        raw.settimeout(10)
    raise AssertionError(f"no {pattern!r}; got {seen!r}")


def test_imapclient_enables_qresync_and_parses_vanished(targets):
    """imapclient (a real client library): enable() answers ['QRESYNC'], and the untagged
    VANISHED of a NOOP after another session's expunge comes out as imapclient parses it."""
    for target in targets:
        user = target.fresh_user()
        fill(target, user, "Lib", 4)
        client = imapclient.IMAPClient(target.host, port=target.port, ssl=False, timeout=10)
        client.login(user, PASSWORD)
        assert b"QRESYNC" in client.capabilities()
        assert client.enable("QRESYNC") == [b"QRESYNC"]
        client.select_folder("Lib")
        other_session_changes(target, user, "Lib", flag="", expunge="2:3", new=0)
        _, responses = client.noop()
        # imapclient parses `* VANISHED 2:3` as (b'VANISHED', b'2:3'); no EXPUNGE.
        assert (b"VANISHED", b"2:3") in responses, responses
        assert not any(b"EXPUNGE" in r for r in responses if isinstance(r, tuple)), responses
        assert sorted(client.search("ALL")) == [1, 4]  # imapclient searches by UID
        client.use_uid = False
        numbered = client.fetch([1, 2], ["UID"])
        assert {seq: data[b"UID"] for seq, data in numbered.items()} == {1: 1, 2: 4}
        client.logout()


def test_seq_match_data_narrows_what_an_older_state_reports(targets):
    """RFC 7162 §3.2.5.2: seq-match data proves UIDs up to a matching pair untouched. Where
    the server's knowledge ends (ics-mail: the expunge log's floor, here raised by writing the
    index as an older version would have), it reports every known UID not present, narrowed
    by the seq-match data; Dovecot knows everything and reports exactly."""
    for target in targets:
        user = target.fresh_user()
        fill(target, user, "Match", 8)
        raw = login(target, user)
        raw.ok("SELECT Match")
        raw.ok("UID STORE 2 +FLAGS.SILENT (\\Deleted)")
        raw.ok("EXPUNGE")
        info = select_info(raw.ok("SELECT Match"))
        validity, modseq = info["UIDVALIDITY"], info["HIGHESTMODSEQ"]
        raw.ok("LOGOUT")
        raw.close()
        if target.name == "icsmail":
            forget_expunge_log(target, user, "Match")
        other_session_changes(target, user, "Match", flag="", expunge="6", new=0)
        raw = login(target, user)
        r = raw.ok(f"EXAMINE Match (QRESYNC ({validity} {modseq} 1:8))")
        plain = vanished(r, earlier=True)
        r = raw.ok(f"EXAMINE Match (QRESYNC ({validity} {modseq} 1:8 (1:3 1,3,4)))")
        matched = vanished(r, earlier=True)
        r = raw.ok(f"EXAMINE Match (QRESYNC ({validity} {modseq} 1:8 (1:3 1,4,5)))")
        wrong = vanished(r, earlier=True)
        if target.name == "icsmail":
            # The log doesn't reach back: all known UIDs not present (2 was gone already).
            assert plain == {2, 6}, r
            assert matched == {6}, r
            # A pair that no longer holds proves nothing beyond the one that does (1 -> 1).
            assert wrong == {2, 6}, r
        else:
            assert plain == matched == wrong == {6}, r
        raw.close()


def forget_expunge_log(target, user: str, folder: str) -> None:
    """Rewrites the folder's ics-index as a version without the expunge log wrote it (header
    of five numbers, no `x` lines), with a new write id so the server reads it again."""
    local, domain = user.split("@")
    path = target.mail_root() / domain / local / f".{folder}" / "ics-index"
    lines = path.read_text().splitlines()
    header = lines[0].split(" ")
    # Mod-sequences above the client's (as if changes had happened since): the floor, which
    # an index without a log has at its HIGHESTMODSEQ, is then above what the client knows.
    header = header[:4] + [str(int(header[4]) + 5), header[5], "424242"]
    body = [l for l in lines[1:] if not l.startswith("x ")]
    path.write_text("\n".join([" ".join(header)] + body) + "\n")


def test_pop3_deletions_are_vanished_for_qresync(make_server, password_hash, tmp_path):
    """POP3's DELE + QUIT removes through the same index: a QRESYNC client is told, live (a
    plain VANISHED) and when it resynchronises (VANISHED (EARLIER)). ics-mail only: the
    Dovecot here serves IMAP alone."""
    pop3_port, pop3s_port = distinct_free_ports(2)
    target = IcsTarget(make_server, tmp_path / "pop3", password_hash,
                       extra={"pop3": {"port": pop3_port, "pop3sPort": pop3s_port}})
    wait_for_port(pop3_port, target.server.proc)
    user = target.fresh_user()
    raw = target.raw_login(user)
    for i in range(5):
        append(raw, "INBOX", message(f"pop {i}"))
    raw.close()
    cached = login(target, user)
    info = select_info(cached.ok("SELECT INBOX"))
    validity, modseq = info["UIDVALIDITY"], info["HIGHESTMODSEQ"]
    live = login(target, user)
    live.ok("SELECT INBOX")
    cached.ok("LOGOUT")
    cached.close()
    pop = poplib.POP3("127.0.0.1", pop3_port, timeout=10)
    pop.user(user)
    pop.pass_(PASSWORD)
    pop.dele(2)
    pop.dele(4)
    pop.quit()
    r = live.ok("NOOP")
    assert vanished(r, earlier=False) == {2, 4} and not r.untagged("EXPUNGE"), r
    live.close()
    again = login(target, user)
    r = again.ok(f"SELECT INBOX (QRESYNC ({validity} {modseq}))")
    assert vanished(r, earlier=True) == {2, 4}, r
    assert select_info(r)["EXISTS"] == 3
    again.close()
