"""The store seen by several sessions: IDLE, new mail on NOOP, flag changes and expunges from
another session, concurrent APPENDs, UIDs and UIDVALIDITY across a restart."""

from __future__ import annotations

import re
import threading
import time

from icshelpers import ALICE
from imaphelpers import (append, fetch_map, imap_target, make_imap, make_module_imap,  # noqa: F401
                         message, search_ids, select_info, status_items, wait_for_untagged)


def apply_expunges(items, lines):
    items = list(items)
    for line in lines:
        m = re.match(rb"\* (\d+) EXPUNGE", line)
        if m:
            del items[int(m.group(1)) - 1]
    return items


def test_idle_reports_delivery(imap_target):
    user = imap_target.fresh_user()
    raw = imap_target.raw_login(user)
    raw.ok("SELECT INBOX")
    raw.send("i1 IDLE\r\n")
    assert raw.line().startswith(b"+"), "no continuation for IDLE"
    started = time.monotonic()
    imap_target.deliver(user, message("during idle"))
    wait_for_untagged(raw, rb"^\* 1 EXISTS", timeout=5)
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"EXISTS came {elapsed:.2f} s after the delivery"
    raw.send("DONE\r\n")
    r = raw.read_tagged("i1")
    assert r.status == "OK", r
    assert b"during idle" in b"".join(raw.ok("FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]").lines)
    # IDLE also reports flag changes and expunges made by another session.
    other = imap_target.raw_login(user)
    other.ok("SELECT INBOX")
    raw.send("i2 IDLE\r\n")
    assert raw.line().startswith(b"+")
    other.ok("STORE 1 +FLAGS (\\Flagged)")
    wait_for_untagged(raw, rb"^\* 1 FETCH \(.*\\Flagged", timeout=5)
    other.ok("STORE 1 +FLAGS (\\Deleted)")
    other.ok("EXPUNGE")
    wait_for_untagged(raw, rb"^\* 1 EXPUNGE", timeout=5)
    raw.send("DONE\r\n")
    assert raw.read_tagged("i2").status == "OK"
    other.close()
    raw.close()


def test_new_mail_shows_on_noop(imap_target):
    user = imap_target.fresh_user()
    raw = imap_target.raw_login(user)
    append(raw, "INBOX", message("first"))
    info = select_info(raw.ok("SELECT INBOX"))
    assert info["EXISTS"] == 1
    for i in range(2):
        imap_target.deliver(user, message(f"delivered {i}"))
    deadline = time.monotonic() + 5
    exists = None
    while time.monotonic() < deadline:
        r = raw.ok("NOOP")
        found = [l for l in r.lines if re.match(rb"\* \d+ EXISTS", l)]
        if found:
            exists = int(found[-1].split()[1])
            if exists == 3:
                break
        time.sleep(0.1)
    assert exists == 3, exists
    assert any(b"\\Recent" in v for v in fetch_map(raw.ok("FETCH 2:3 FLAGS")).values())
    uids = search_ids(raw.ok("UID SEARCH ALL"))
    assert len(uids) == 3 and uids == sorted(set(uids))
    # The same mail is seen by STATUS from another session.
    with imap_target.raw_login(user) as other:
        assert status_items(other.ok("STATUS INBOX (MESSAGES UIDNEXT)"))["UIDNEXT"] > uids[-1]
    raw.close()


def test_two_sessions_flags_and_expunges(imap_target):
    user = imap_target.fresh_user()
    a = imap_target.raw_login(user)
    for i in range(5):
        append(a, "INBOX", message(f"shared {i}"))
    a.ok("SELECT INBOX")
    b = imap_target.raw_login(user)
    b.ok("SELECT INBOX")
    uids = search_ids(b.ok("UID SEARCH ALL"))
    a.ok("STORE 2 +FLAGS (\\Flagged $Shared)")
    r = b.ok("NOOP")
    fm = fetch_map(r)
    assert 2 in fm and b"\\Flagged" in fm[2] and b"$Shared" in fm[2], r
    # A expunges 2 and 4; B hears about them (with correct sequence numbers) on NOOP.
    a.ok("STORE 2,4 +FLAGS.SILENT (\\Deleted)")
    a.ok("EXPUNGE")
    r = b.ok("NOOP")
    assert apply_expunges(uids, r.lines) == [uids[0], uids[2], uids[4]], r
    assert search_ids(b.ok("UID SEARCH ALL")) == [uids[0], uids[2], uids[4]]
    data = fetch_map(b.ok("FETCH 2 (UID)"))[2]
    assert f"UID {uids[2]}".encode() in data, data
    # Expunges are not sent during FETCH/STORE/SEARCH (RFC 3501 7.4.1), but on NOOP.
    a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    a.ok("EXPUNGE")
    r = b.cmd("FETCH 1:* (UID)")
    assert not r.untagged("EXPUNGE"), r
    r = b.ok("NOOP")
    assert [l for l in r.lines if l.endswith(b"EXPUNGE")] == [b"* 1 EXPUNGE"], r
    assert select_info(b.ok("SELECT INBOX"))["EXISTS"] == 2
    a.close()
    b.close()


def test_concurrent_appends_get_unique_uids(imap_target):
    user = imap_target.fresh_user()
    errors = []

    def worker(k):
        try:
            with imap_target.raw_login(user) as raw:
                for i in range(10):
                    append(raw, "INBOX", message(f"parallel {k}-{i}"))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    with imap_target.raw_login(user) as raw:
        assert select_info(raw.ok("SELECT INBOX"))["EXISTS"] == 50
        uids = search_ids(raw.ok("UID SEARCH ALL"))
        assert len(set(uids)) == 50 and uids == sorted(uids)


def test_uids_and_uidvalidity_survive_restart(make_imap):
    target = make_imap()
    raw = target.raw_login(ALICE)
    raw.ok("CREATE Keep")
    for i in range(3):
        append(raw, "INBOX", message(f"keep {i}"))
        append(raw, "Keep", message(f"folder {i}"))
    target.deliver(ALICE, message("delivered"))
    before = {}
    for box in ("INBOX", "Keep"):
        info = select_info(raw.ok(f"SELECT {box}"))
        uids = fetch_map(raw.ok("FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
        before[box] = (info["UIDVALIDITY"], info["UIDNEXT"],
                       {k: re.sub(rb"\\Recent ?", b"", v) for k, v in uids.items()})
    raw.ok("STORE 1 +FLAGS (\\Answered)")
    raw.close()
    target.restart()
    raw = target.raw_login(ALICE)
    for box in ("INBOX", "Keep"):
        info = select_info(raw.ok(f"SELECT {box}"))
        uids = fetch_map(raw.ok("FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
        uids = {k: re.sub(rb"\\Recent ?", b"", v) for k, v in uids.items()}
        validity, uidnext, old = before[box]
        assert info["UIDVALIDITY"] == validity, (box, info, validity)
        assert info["UIDNEXT"] == uidnext, (box, info, uidnext)
        if box == "Keep":
            old = {k: v.replace(b"FLAGS ()", b"FLAGS (\\Answered)") if k == 1 else v
                   for k, v in old.items()}
        assert uids == old, (box, uids, old)
    # New mail after the restart continues the UID sequence.
    r = append(raw, "Keep", message("after restart"))
    assert r.text.split("[APPENDUID ", 1)[1].split("]")[0].split()[1] == str(before["Keep"][1])
    raw.close()
