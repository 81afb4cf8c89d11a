"""What a client's cache relies on when several sessions share a mailbox (issue 17): untagged
responses numbered as in force when sent, no lost flag updates, FLAGS updates for new
keywords, FETCH racing an expunge, UIDVALIDITY never reused, MODSEQ never going back; and the
LIST/LSUB/SEARCH details of the issue's defect list. Each test is the exchange of one defect.
Run against Dovecot too (IMAP_TEST_TARGET=dovecot, see imaphelpers)."""

from __future__ import annotations

import random
import re
import threading

from imaphelpers import (append, fetch_map, imap_target, list_names, make_imap,  # noqa: F401
                         make_module_imap, message, resp_code, search_ids, select_info,
                         wait_for_untagged)


class Model:
    """A client's picture of the selected folder, kept from untagged responses only: the
    sequence → UID map (-1 for a message announced by EXISTS whose UID is not known yet),
    flags and MODSEQs. `feed` checks every response against it: numbers within the folder,
    each FETCH naming the UID its number has, UIDs ascending and never back once expunged,
    keywords announced by FLAGS before use, MODSEQ never going back (and a new one for every
    flag change). With QRESYNC (RFC 7162 §3.2.10): `* VANISHED uids` takes each UID out of
    the map (one the client knows, or one of the EXISTS-only messages between its known
    neighbours; any other is an error), `* VANISHED (EARLIER) uids` names UIDs gone before
    (none may still be in the map)."""

    def __init__(self, uids: list[int]):
        self.uids = list(uids)
        self.flags: dict[int, set[str]] = {}
        self.modseq: dict[int, int] = {}
        self.keywords_announced: set[str] = set()
        self.seen_flags: dict[int, set[str]] = {}
        self.expunged: set[int] = set()
        # EXPUNGEs of messages known only by EXISTS: (lo, hi), the UID is strictly between
        # the known neighbours (hi None: above every known UID).
        self.unknown_expunges: list[tuple[int, int | None]] = []

    def feed(self, lines: list[bytes]) -> None:
        for line in lines:
            text = line.decode("utf-8", "replace")
            m = re.match(r"\* VANISHED (\(EARLIER\) )?([0-9:,]+)$", text, re.I)
            if m:
                self._vanished(expand_uids(m.group(2)), bool(m.group(1)), text)
                continue
            m = re.match(r"\* (\d+) EXPUNGE$", text)
            if m:
                seq = int(m.group(1))
                assert 1 <= seq <= len(self.uids), (text, self.uids)
                uid = self.uids.pop(seq - 1)
                if uid != -1:
                    self.expunged.add(uid)
                else:
                    below = [u for u in self.uids[:seq - 1] if u != -1]
                    above = [u for u in self.uids[seq - 1:] if u != -1]
                    self.unknown_expunges.append(
                        (below[-1] if below else 0, above[0] if above else None))
                continue
            m = re.match(r"\* (\d+) EXISTS$", text)
            if m:
                count = int(m.group(1))
                assert count >= len(self.uids), (text, self.uids)
                self.uids.extend([-1] * (count - len(self.uids)))
                continue
            m = re.match(r"\* FLAGS \((.*)\)$", text)
            if m:
                self.keywords_announced = {f.lower() for f in m.group(1).split()}
                continue
            m = re.match(r"\* (\d+) FETCH \((.*)\)$", text, re.S)
            if m:
                self._fetch(int(m.group(1)), m.group(2), text)

    def _vanished(self, uids: list[int], earlier: bool, text: str) -> None:
        for uid in uids:
            if earlier:
                # Gone before: no message of the map (RFC 7162: the count stays).
                assert uid not in self.uids, f"VANISHED (EARLIER) {uid} is in the map: {text}"
            elif uid in self.uids:
                self.uids.remove(uid)
            else:
                # A message known only by EXISTS: the one between its known neighbours.
                slot, below = None, 0
                for i, known in enumerate(self.uids):
                    if known != -1:
                        if known > uid:
                            break
                        below = known
                        continue
                    above = next((u for u in self.uids[i + 1:] if u != -1), None)
                    if below < uid and (above is None or uid < above):
                        slot = i
                        break
                assert slot is not None, f"VANISHED {uid}: no such message ({text}, {self.uids})"
                del self.uids[slot]
            assert uid not in self.expunged or earlier, f"UID {uid} vanished twice: {text}"
            self.expunged.add(uid)

    def _fetch(self, seq: int, data: str, text: str) -> None:
        assert 1 <= seq <= len(self.uids), f"FETCH beyond the folder ({len(self.uids)}): {text}"
        uid = re.search(r"\bUID (\d+)", data)
        if uid:
            known = self.uids[seq - 1]
            value = int(uid.group(1))
            assert known in (-1, value), \
                f"UID changed for sequence {seq}: {known} -> {value} ({text})"
            if known == -1:
                assert value not in self.expunged, f"expunged UID {value} came back: {text}"
                self.uids[seq - 1] = value
                known_uids = [u for u in self.uids if u != -1]
                assert known_uids == sorted(set(known_uids)), \
                    f"UIDs not ascending after {text}: {self.uids}"
        current = self.uids[seq - 1]
        if current == -1:
            return
        flags = re.search(r"\bFLAGS \(([^)]*)\)", data)
        if flags:
            names = {f for f in flags.group(1).split() if f != "\\Recent"}
            for name in names:
                if not name.startswith("\\"):
                    assert name.lower() in self.keywords_announced, \
                        f"keyword {name} before a FLAGS response announced it: {text}"
            self.flags[current] = names
        modseq = re.search(r"\bMODSEQ \((\d+)\)", data)
        if modseq:
            value = int(modseq.group(1))
            before = self.modseq.get(current, 0)
            assert value >= before, f"MODSEQ of UID {current} went back: {before} -> {value}"
            if value == before and flags:
                # The same MODSEQ means the same flags (RFC 7162 3.1: every change a new one).
                assert self.seen_flags.get(current) in (None, self.flags[current]), \
                    f"UID {current} changed flags without a new MODSEQ {value}: {text}"
            self.modseq[current] = value
            if flags:
                self.seen_flags[current] = self.flags[current]


def expand_uids(text: str) -> list[int]:
    """The UIDs of a sequence set (no `*`), ascending."""
    out: set[int] = set()
    for part in text.split(","):
        if ":" in part:
            a, b = sorted(int(x) for x in part.split(":"))
            out.update(range(a, b + 1))
        else:
            out.add(int(part))
    return sorted(out)


def fill(raw, n: int, prefix: str = "m") -> None:
    for i in range(n):
        append(raw, "INBOX", message(f"{prefix} {i}"))


# --------------------------------------------------------------------------------------------
# Defect 1: expunge numbering


def test_updates_use_the_numbering_in_force_when_sent(imap_target):
    user = imap_target.fresh_user()
    a = imap_target.raw_login(user)
    fill(a, 8)
    b = imap_target.raw_login(user)
    info = select_info(b.ok("SELECT INBOX"))
    assert info["EXISTS"] == 8
    uids = search_ids(b.ok("UID SEARCH ALL"))
    assert uids == list(range(1, 9)), uids
    model = Model(uids)
    b.ok("FETCH 1:* (UID FLAGS)")
    a.ok("SELECT INBOX")
    a.ok("UID STORE 2,6 +FLAGS.SILENT (\\Deleted)")
    a.ok("UID EXPUNGE 2,6")
    a.ok("UID STORE 5,7 +FLAGS.SILENT (\\Flagged)")
    r = b.ok("CHECK")
    model.feed(r.lines)
    assert model.uids == [1, 3, 4, 5, 7, 8], (model.uids, r)
    # Neither flag change is lost (a FETCH need not carry the UID: the model's numbering
    # names the message).
    assert sorted(u for u, f in model.flags.items() if "\\Flagged" in f) == [5, 7], r
    # And the server agrees with the model.
    fm = fetch_map(b.ok("FETCH 1:* (UID)"))
    assert [int(re.search(rb"UID (\d+)", fm[k]).group(1)) for k in sorted(fm)] == model.uids
    a.close()
    b.close()


def test_updates_in_idle_keep_numbers_right(imap_target):
    """The same in IDLE, with the flag changes made before the expunges: IDLE's first look
    finds both."""
    user = imap_target.fresh_user()
    a = imap_target.raw_login(user)
    fill(a, 8)
    b = imap_target.raw_login(user)
    b.ok("SELECT INBOX")
    model = Model(search_ids(b.ok("UID SEARCH ALL")))
    a.ok("SELECT INBOX")
    a.ok("UID STORE 3,8 +FLAGS.SILENT (\\Answered)")
    a.ok("UID STORE 1,4 +FLAGS.SILENT (\\Deleted)")
    a.ok("UID EXPUNGE 1,4")
    b.send("i1 IDLE\r\n")
    assert b.line().startswith(b"+")
    seen = wait_for_untagged(b, rb"^\* 1 EXPUNGE", timeout=5)
    b.send("DONE\r\n")
    r = b.read_tagged("i1")
    assert r.status == "OK", r
    model.feed(seen + r.lines)
    r = b.ok("NOOP")
    model.feed(r.lines)
    assert model.uids == [2, 3, 5, 6, 7, 8], model.uids
    assert {3, 8} <= {u for u, f in model.flags.items() if "\\Answered" in f}, model.flags
    a.close()
    b.close()


# --------------------------------------------------------------------------------------------
# Defect 2: MODSEQ


def test_modseq_never_goes_back_under_concurrent_stores(imap_target):
    user = imap_target.fresh_user()
    a = imap_target.raw_login(user)
    fill(a, 6)
    a.close()
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        rng = random.Random(k)
        try:
            with imap_target.raw_login(user) as raw:
                selected = raw.ok("SELECT INBOX (CONDSTORE)")
                searched = raw.ok("UID SEARCH ALL")
                model = Model(search_ids(searched))
                model.feed(selected.lines + searched.lines)
                model.feed(raw.ok("FETCH 1:* (UID FLAGS MODSEQ)").lines)
                for _ in range(40):
                    seq = rng.randint(1, 6)
                    op = rng.choice(["+FLAGS", "-FLAGS", "FLAGS"])
                    flag = rng.choice(["\\Flagged", "\\Seen", "$k1", "\\Answered"])
                    model.feed(raw.ok(f"STORE {seq} {op} ({flag})").lines)
                    if rng.random() < 0.3:
                        model.feed(raw.ok("NOOP").lines)
                model.feed(raw.ok("FETCH 1:* (UID FLAGS MODSEQ)").lines)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[0]


def test_modseq_stays_above_what_was_seen_after_a_power_loss(make_imap):
    """A power loss brings back the index as its last fsync left it (flag-only writes are not
    fsync'd) and the kernel has a new boot id: what the disk holds then is made here by hand
    (the older index put back, the durable mod-sequence ceiling marked as of another boot),
    and HIGHESTMODSEQ must still be above every MODSEQ a client saw."""
    target = make_imap()
    target.only_icsmail("the files of ics-mail's store")
    user = target.fresh_user()
    raw = target.raw_login(user)
    fill(raw, 3)
    raw.ok("SELECT INBOX (CONDSTORE)")
    local, domain = user.split("@")
    folder = target.mail_root() / domain / local
    synced = (folder / "ics-index").read_bytes()
    seen = 0
    for flag in ("\\Seen", "\\Flagged", "$Later"):
        r = raw.ok(f"STORE 1:3 +FLAGS ({flag})")
        seen = max([seen] + [int(m) for m in re.findall(rb"MODSEQ \((\d+)\)", b" ".join(r.lines))])
    assert seen > 0
    raw.close()
    target.server.stop()
    (folder / "ics-index").write_bytes(synced)
    floor = folder / "ics-modseq"
    if floor.exists():
        floor.write_text(floor.read_text().split()[0] + " previous-boot\n")
    target.server.expect_exit = False
    target.server.start()
    target._wait()
    raw = target.raw_login(user)
    info = select_info(raw.ok("SELECT INBOX (CONDSTORE)"))
    assert info["HIGHESTMODSEQ"] > seen, (info, seen)
    # A client that saw `seen` learns every message's flags as they are now.
    fm = fetch_map(raw.ok(f"FETCH 1:* (UID FLAGS) (CHANGEDSINCE {seen})"))
    assert sorted(fm) == [1, 2, 3], fm
    assert all(int(m) > seen for m in re.findall(rb"MODSEQ \((\d+)\)", b" ".join(fm.values())))
    raw.close()


# --------------------------------------------------------------------------------------------
# Defect 3: UIDVALIDITY


def test_uidvalidity_is_never_reused_for_a_name(imap_target):
    user = imap_target.fresh_user()
    raw = imap_target.raw_login(user)
    seen = []
    for round in range(6):
        raw.ok("CREATE Again")
        r = append(raw, "Again", message(f"round {round}"))
        validity, uid = resp_code(r.text, "APPENDUID").split()
        assert uid == "1", r
        info = select_info(raw.ok("SELECT Again"))
        assert info["UIDVALIDITY"] == int(validity), (info, r)
        raw.ok("CLOSE")
        raw.ok("DELETE Again")
        seen.append(int(validity))
    # All within a second or two: still all different, and increasing.
    assert seen == sorted(set(seen)), seen
    # Other folders of the account take new ones too; a restart keeps them (test_imap_
    # concurrency's restart test); RENAME keeps the folder's own.
    raw.ok("CREATE Other")
    other = select_info(raw.ok("SELECT Other"))["UIDVALIDITY"]
    assert other > seen[-1]
    raw.ok("CLOSE")
    raw.ok("RENAME Other Again")
    assert select_info(raw.ok("SELECT Again"))["UIDVALIDITY"] == other
    raw.close()


# --------------------------------------------------------------------------------------------
# Defect 7: new keywords


def test_new_keywords_come_with_a_flags_update(imap_target):
    user = imap_target.fresh_user()
    a = imap_target.raw_login(user)
    fill(a, 4)
    info = select_info(a.ok("SELECT INBOX"))
    assert "$hello" not in {f.lower() for f in info["FLAGS"]}
    b = imap_target.raw_login(user)
    b.ok("SELECT INBOX")
    r = a.ok("STORE 2,4 +FLAGS ($hello $world)")
    flags_at = [i for i, l in enumerate(r.lines) if l.startswith(b"* FLAGS ")]
    fetch_at = [i for i, l in enumerate(r.lines) if b"$hello" in l and b" FETCH " in l]
    assert flags_at and fetch_at and flags_at[0] < fetch_at[0], r
    assert b"$hello" in r.lines[flags_at[0]] and b"$world" in r.lines[flags_at[0]], r
    assert any(b"[PERMANENTFLAGS (" in l and b"$hello" in l for l in r.lines), r
    # The other session is told too, before the FETCH responses.
    r = b.ok("NOOP")
    flags_at = [i for i, l in enumerate(r.lines) if l.startswith(b"* FLAGS ")]
    fetch_at = [i for i, l in enumerate(r.lines) if b"$hello" in l and b" FETCH " in l]
    assert flags_at and len(fetch_at) == 2 and flags_at[0] < fetch_at[0], r
    # Known keywords don't bring the list again.
    r = a.ok("STORE 1 +FLAGS ($world)")
    assert not any(l.startswith(b"* FLAGS ") for l in r.lines), r
    a.close()
    b.close()


# --------------------------------------------------------------------------------------------
# Defect 8: FETCH racing an expunge


def test_fetch_racing_an_expunge_serves_what_exists(imap_target):
    user = imap_target.fresh_user()
    a = imap_target.raw_login(user)
    fill(a, 3, prefix="race")
    b = imap_target.raw_login(user)
    b.ok("SELECT INBOX")
    a.ok("SELECT INBOX")
    a.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    a.ok("EXPUNGE")
    # B has not been told; its FETCH names the expunged message by number.
    r = b.cmd("FETCH 1:3 (BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT])")
    assert r.status == "OK", r
    fm = fetch_map(r)
    assert b"race 0" in fm[1] and b"race 2" in fm[3], r
    assert not r.untagged("EXPUNGE"), r  # not during FETCH (RFC 3501 7.4.1)
    r = b.ok("NOOP")
    assert b"* 2 EXPUNGE" in r.lines, r
    a.close()
    b.close()


# --------------------------------------------------------------------------------------------
# Defects 4, 5, 6: LSUB parents, SEARCH FROM with comments, LIST with an odd `&`


def test_lsub_returns_unsubscribed_parents_as_noselect(imap_target):
    user = imap_target.fresh_user()
    raw = imap_target.raw_login(user)
    for name in ("p.test", "p.test2.test", "p.test3.test3"):
        raw.ok(f"CREATE {name}")
        raw.ok(f"SUBSCRIBE {name}")
    for name in ("p", "p.test2", "p.test3"):
        raw.ok(f"UNSUBSCRIBE {name}")
    names = list_names(raw.ok('LSUB "" p.%'))
    assert set(names) == {"p.test", "p.test2", "p.test3"}, names
    assert "\\noselect" not in names["p.test"][0]
    assert "\\noselect" in names["p.test2"][0] and "\\noselect" in names["p.test3"][0], names
    raw.close()


def test_search_from_ignores_comments_in_addresses(imap_target):
    user = imap_target.fresh_user()
    raw = imap_target.raw_login(user)
    msg = (b"From: <user-from (comment)@ (comment) domain.org>\r\nTo: <to@example.org>\r\n"
           b"Subject: comments\r\n\r\nbody\r\n")
    append(raw, "INBOX", msg)
    append(raw, "INBOX", message("other", sender="someone@example.org"))
    raw.ok("SELECT INBOX")
    assert search_ids(raw.ok("SEARCH FROM user-from@domain.org")) == [1]
    assert search_ids(raw.ok("SEARCH FROM domain.org")) == [1]
    assert search_ids(raw.ok("SEARCH FROM someone@example.org")) == [2]
    raw.close()


def test_list_with_an_odd_ampersand_is_answered(imap_target):
    user = imap_target.fresh_user()
    raw = imap_target.raw_login(user)
    raw.ok("CREATE Plain")
    for pattern in ('"&"', '"a&b*"', '"&Jjo"', '"&-&"'):
        r = raw.cmd(f'LIST "" {pattern}')
        assert r.status == "OK", (pattern, r)
        assert "Plain" not in list_names(r), r
    r = raw.cmd('LIST "&" "*"')
    assert r.status == "OK", r
    # A valid pattern still works after them.
    assert "Plain" in list_names(raw.ok('LIST "" "Pl*"'))
    raw.close()


def test_copy_and_move_racing_an_expunge(imap_target):
    """Found by the torture test: a COPY or MOVE naming a message another session expunged
    meanwhile answered NO [SERVERBUG]; it copies (and moves) what still exists."""
    user = imap_target.fresh_user()
    a = imap_target.raw_login(user)
    fill(a, 3, prefix="cm")
    a.ok("CREATE Side")
    b = imap_target.raw_login(user)
    b.ok("SELECT INBOX")
    a.ok("SELECT INBOX")
    a.ok("UID STORE 2 +FLAGS.SILENT (\\Deleted)")
    a.ok("UID EXPUNGE 2")
    model = Model([1, 2, 3])
    r = b.cmd("UID COPY 1:3 Side")
    model.feed(r.lines)
    if imap_target.name == "dovecot":
        # Dovecot refuses the whole COPY instead (RFC 2180 4.4.1 allows both).
        assert r.status == "NO" and "[EXPUNGEISSUED]" in r.text, r
        return
    assert r.status == "OK", r
    assert resp_code(r.text, "COPYUID").split()[1:] == ["1,3", "1:2"], r
    a.ok("UID STORE 3 +FLAGS.SILENT (\\Deleted)")
    a.ok("UID EXPUNGE 3")
    # B still sees UID 3; MOVE finds it gone and moves only UID 1.
    r = b.cmd("UID MOVE 1:3 Side")
    assert r.status == "OK", r
    copyuid = [l for l in r.lines if b"[COPYUID" in l]
    assert copyuid and b" 1 3]" in copyuid[0], r
    model.feed(r.lines)
    assert model.uids == [], (model.uids, r)
    assert select_info(a.ok("SELECT Side"))["EXISTS"] == 3
    a.close()
    b.close()
