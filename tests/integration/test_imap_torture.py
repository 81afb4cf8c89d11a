"""Concurrency torture (issue 17, "What must show"): N clients (N >= 8) on one shared mailbox
doing random SELECT, FETCH, STORE, EXPUNGE, APPEND, COPY, MOVE and IDLE, each keeping its own
model of the mailbox from the untagged responses only (test_imap_consistency.Model) and
checking it after every response: the sequence -> UID map against every FETCH, UIDs
ascending and never back once expunged, MODSEQs never going back (a new one for each flag
change), keywords announced before use, a STORE's own result.

At the end every client stops, takes the last updates with NOOP and compares its model with
what the server says (`UID FETCH 1:* (FLAGS)`): same UIDs in the same order, same flags for
every message it knew (no lost flag update). Across clients: every UID handed out (APPENDUID,
COPYUID) is unique under the folder's UIDVALIDITY, names the message it was given for, and
is in the folder at the end exactly when no client was told of its expunge; every APPENDed
message is there exactly once unless it was expunged or moved (then it is in the MOVE
target).

Every other client ENABLEs QRESYNC: it is told of expunges by `* VANISHED`, which its model
takes in (test_imap_consistency.Model), re-selects the folder mostly with `SELECT INBOX
(QRESYNC (uidvalidity modseq known-uids))` from its model (then its map is its old one less
the `VANISHED (EARLIER)` UIDs, plus what EXISTS adds, and it keeps its flags except where a
FETCH says otherwise: the final check finds any change or expunge the resync missed), from
the HIGHESTMODSEQ of its last SELECT or of the tagged OK of its last EXPUNGE or MOVE, and
asks `UID FETCH 1:* (FLAGS) (CHANGEDSINCE m VANISHED)`.

Bounded: IMAP_TORTURE_SECONDS (default 20) of random work, seeded by IMAP_TORTURE_SEED
(printed, so a failure reproduces its operations; the interleaving is the machine's).
Run it for minutes with e.g. IMAP_TORTURE_SECONDS=600 IMAP_TORTURE_CLIENTS=16."""

from __future__ import annotations

import os
import random
import re
import socket
import threading
import time

from imaphelpers import (append, imap_target, make_module_imap, message,  # noqa: F401
                         resp_code, select_info)
from test_imap_consistency import Model, expand_uids

SECONDS = float(os.environ.get("IMAP_TORTURE_SECONDS", "20"))
CLIENTS = max(8, int(os.environ.get("IMAP_TORTURE_CLIENTS", "10")))
SEED = int(os.environ.get("IMAP_TORTURE_SEED", str(random.randrange(1 << 30))))
KEYWORDS = ["$k1", "$k2", "Work", "$Later"]
SYSTEM = ["\\Seen", "\\Flagged", "\\Answered", "\\Draft"]


class Shared:
    """What the clients learn together, under one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.validity: dict[str, int] = {}
        # folder -> {uid: subject}
        self.given: dict[str, dict[int, str]] = {"INBOX": {}, "Side": {}}
        self.expunged: dict[str, set[int]] = {"INBOX": set(), "Side": set()}
        self.appended: list[str] = []
        # EXPUNGEs a client saw of a message it knew only by EXISTS (Model.unknown_expunges).
        self.unknown_expunges: list[tuple[int, int | None]] = []
        # UIDs a client asked to remove (\Deleted set, MOVEd): the only ones that may go.
        self.doomed: set[int] = set()
        self.errors: list[str] = []
        self.ops = 0
        # QRESYNC: resynchronising SELECTs and VANISHED responses seen.
        self.resyncs = 0
        self.vanished = 0

    def doom(self, uids: list[int]) -> None:
        with self.lock:
            self.doomed.update(uids)

    def give(self, folder: str, validity: int, uid: int, subject: str) -> None:
        with self.lock:
            known = self.validity.setdefault(folder, validity)
            assert known == validity, f"{folder}: UIDVALIDITY {known} -> {validity}"
            assert uid not in self.given[folder], \
                f"{folder}: UID {uid} handed out twice ({self.given[folder][uid]}, {subject})"
            self.given[folder][uid] = subject


def parse_uidset(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        if ":" in part:
            a, b = (int(x) for x in part.split(":"))
            out.extend(range(min(a, b), max(a, b) + 1))
        else:
            out.append(int(part))
    return out


class Client:
    def __init__(self, target, user: str, shared: Shared, k: int):
        self.k, self.shared, self.user = k, shared, user
        self.rng = random.Random(SEED * 100 + k)
        self.raw = target.raw_login(user, timeout=30)
        self.dovecot = target.name == "dovecot"
        self.qresync = k % 2 == 1
        if self.qresync:
            r = self.raw.cmd("ENABLE QRESYNC")
            assert r.status == "OK" and b"* ENABLED QRESYNC" in r.lines, r
        # The HIGHESTMODSEQ of the last SELECT: everything since then is in the model.
        self.select_modseq = 0
        self.model: Model | None = None
        self.n_appended = 0
        self.history: list[tuple[str, list[bytes], bytes]] = []

    # -- protocol
    def note(self, command: str, lines: list[bytes], tagged: bytes = b"") -> None:
        """The last exchanges, for the failure report."""
        self.history.append((command, lines, tagged))
        del self.history[:-12]

    def cmd(self, text: str):
        r = self.raw.cmd(text)
        self.note(text, r.lines, r.tagged)
        self.model.feed(r.lines) if self.model else None
        # EXPUNGE's and MOVE's tagged HIGHESTMODSEQ (QRESYNC): everything up to it has been
        # told, so a later resync may start there.
        m = re.search(r"\[HIGHESTMODSEQ (\d+)\]", r.text) if self.qresync else None
        if m and self.model:
            assert int(m.group(1)) >= self.select_modseq, (text, r)
            self.select_modseq = int(m.group(1))
        with self.shared.lock:
            self.shared.ops += 1
            self.shared.vanished += sum(1 for l in r.lines if l.startswith(b"* VANISHED"))
        return r

    def ok(self, text: str):
        r = self.cmd(text)
        assert r.status == "OK" or self.refused_as_expunged(r), (text, r)
        return r

    def refused_as_expunged(self, r) -> bool:
        """Dovecot refuses a command naming a message expunged meanwhile (RFC 2180 4.1.1,
        4.4.1); ics-mail serves what still exists."""
        return self.dovecot and r.status == "NO" and "[EXPUNGEISSUED]" in r.text

    def select(self) -> None:
        if self.model:
            # The expunges still on their way are what this model knows of, before it goes
            # (the EXPUNGE of a message another client had only as an EXISTS would otherwise
            # be told to nobody who knew its UID).
            self.ok("NOOP")
            self.share_expunges()
            # A message known only by EXISTS (its FETCH raced an expunge) has no UID to name
            # among the known ones: a client that doesn't know it resynchronises in full.
            if (self.qresync and self.select_modseq and -1 not in self.model.uids
                    and self.rng.random() < 0.7):
                self.resync()
                return
        r = self.raw.cmd("SELECT INBOX (CONDSTORE)")
        self.note("SELECT", r.lines, r.tagged)
        assert r.status == "OK", r
        info = select_info(r)
        with self.shared.lock:
            known = self.shared.validity.setdefault("INBOX", info["UIDVALIDITY"])
        assert known == info["UIDVALIDITY"]
        self.select_modseq = info["HIGHESTMODSEQ"]
        # Everything after the EXISTS counts too (an EXPUNGE the SELECT's own refresh found).
        self.model = Model([])
        self.model.feed(r.lines)
        if info["EXISTS"]:
            self.ok("FETCH 1:* (UID FLAGS MODSEQ)")
        # Messages that arrived meanwhile came as EXISTS: learnt by learn_unknown.

    def resync(self) -> None:
        """SELECT with QRESYNC from the model: the old map less what VANISHED (EARLIER)
        names, then the new messages EXISTS counts; flags as the model had them except where
        a FETCH tells otherwise."""
        old = self.model
        known = [u for u in old.uids if u != -1]
        validity = self.shared.validity["INBOX"]
        known_set = ",".join(map(str, known)) if known else ""
        param = f"{validity} {self.select_modseq}" + (f" {known_set}" if known else "")
        r = self.raw.cmd(f"SELECT INBOX (QRESYNC ({param}))")
        self.note("SELECT QRESYNC", r.lines, r.tagged)
        assert r.status == "OK", r
        info = select_info(r)
        assert info["UIDVALIDITY"] == validity, r
        gone: set[int] = set()
        for line in r.lines:
            m = re.match(rb"\* VANISHED \(EARLIER\) ([0-9:,]+)$", line)
            if m:
                gone.update(expand_uids(m.group(1).decode()))
        # Without known UIDs (an empty map) the client stands for all it ever had.
        assert not known or gone <= set(known), f"VANISHED (EARLIER) not asked about: {r}"
        kept = [u for u in known if u not in gone]
        # The SELECT's own count (the refresh after it may add updates, also fed below).
        exists = next(int(m.group(1)) for m in (re.match(rb"\* (\d+) EXISTS$", line)
                                                   for line in r.lines) if m)
        assert len(kept) <= exists, (kept, r)
        model = Model(kept + [-1] * (exists - len(kept)))
        model.flags = {u: set(old.flags[u]) for u in kept if u in old.flags}
        model.modseq = {u: old.modseq[u] for u in kept if u in old.modseq}
        model.seen_flags = {u: set(old.seen_flags[u]) for u in kept if u in old.seen_flags}
        model.expunged = set(old.expunged)
        # The FETCHes must name the UIDs the map has at their numbers.
        model.feed(r.lines)
        model.expunged |= gone
        self.model = model
        self.select_modseq = info["HIGHESTMODSEQ"]
        with self.shared.lock:
            self.shared.resyncs += 1

    def op_vanished_fetch(self) -> None:
        """UID FETCH (CHANGEDSINCE m VANISHED): the UIDs it names as gone are in no map."""
        if not self.qresync or self.dovecot or not self.select_modseq:
            return
        self.ok(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {self.select_modseq} VANISHED)")

    def learn_unknown(self) -> None:
        """A client fetches what EXISTS announced."""
        if -1 in self.model.uids:
            first = self.model.uids.index(-1) + 1
            self.ok(f"FETCH {first}:* (UID FLAGS MODSEQ)")

    # -- operations
    def known(self) -> list[int]:
        return [u for u in self.model.uids if u != -1]

    def pick_uids(self, most: int = 3) -> list[int]:
        known = self.known()
        return sorted(self.rng.sample(known, min(len(known), self.rng.randint(1, most))))

    def op_append(self) -> None:
        self.n_appended += 1
        subject = f"t{self.k}-{self.n_appended}"
        flags = " ".join(self.rng.sample(KEYWORDS + SYSTEM, self.rng.randint(0, 2)))
        r = append(self.raw, "INBOX", message(subject), flags=flags)
        validity, uid = (int(x) for x in resp_code(r.text, "APPENDUID").split())
        with self.shared.lock:
            self.shared.appended.append(subject)
        self.shared.give("INBOX", validity, uid, subject)
        self.note(f"APPEND {subject}", r.lines, r.tagged)
        self.model.feed(r.lines)

    def op_store(self) -> None:
        uids = self.pick_uids()
        if not uids:
            return
        op = self.rng.choice(["+FLAGS", "-FLAGS", "FLAGS"])
        flags = self.rng.sample(KEYWORDS + SYSTEM + ["\\Deleted"], self.rng.randint(1, 2))
        by_uid = self.rng.random() < 0.5
        if "\\Deleted" in flags and op != "-FLAGS":
            self.shared.doom(uids)
        if by_uid:
            target = ",".join(map(str, uids))
            r = self.cmd(f"UID STORE {target} {op} ({' '.join(flags)})")
        else:
            seqs = [self.model.uids.index(u) + 1 for u in uids]
            r = self.cmd(f"STORE {','.join(map(str, seqs))} {op} ({' '.join(flags)})")
        assert r.status == "OK" or self.refused_as_expunged(r), r
        if self.dovecot:
            return  # Dovecot may report a later state (another session's change) instead
        # The message's own result is among the responses (others' later changes may follow).
        results: dict[int, list[set[str]]] = {}
        for line in r.lines:
            m = re.match(rb"\* \d+ FETCH \(.*\bUID (\d+)", line)
            f = re.search(rb"FLAGS \(([^)]*)\)", line)
            if m and f:
                got = {x.lower() for x in f.group(1).decode().split()} - {"\\recent"}
                results.setdefault(int(m.group(1)), []).append(got)
        wanted = {x.lower() for x in flags}
        for uid in uids:
            if uid not in results or uid in self.model.expunged:
                continue  # expunged by another client meanwhile
            if op == "+FLAGS":
                ok = any(wanted <= got for got in results[uid])
            elif op == "-FLAGS":
                ok = any(not wanted & got for got in results[uid])
            else:
                ok = any(got == wanted for got in results[uid])
            assert ok, (uid, op, flags, r)

    def op_expunge(self) -> None:
        uids = self.pick_uids(2)
        if not uids:
            return
        target = ",".join(map(str, uids))
        self.shared.doom(uids)
        self.ok(f"UID STORE {target} +FLAGS.SILENT (\\Deleted)")
        self.ok(f"UID EXPUNGE {target}" if self.rng.random() < 0.7 else "EXPUNGE")

    def op_copy(self, moving: bool) -> None:
        uids = self.pick_uids(2)
        if not uids:
            return
        verb = "MOVE" if moving else "COPY"
        if moving:
            self.shared.doom(uids)
        dest = "Side" if moving or self.rng.random() < 0.5 else "INBOX"
        r = self.cmd(f"UID {verb} {','.join(map(str, uids))} {dest}")
        assert r.status == "OK" or self.refused_as_expunged(r), r
        text = " ".join(l.decode("utf-8", "replace") for l in r.lines) + " " + r.text
        m = re.search(r"\[COPYUID (\d+) (\S+) (\S+)\]", text)
        if not m:
            return  # every message already gone
        validity, sources, targets = int(m.group(1)), parse_uidset(m.group(2)), \
            parse_uidset(m.group(3))
        assert len(sources) == len(targets), text
        with self.shared.lock:
            given = dict(self.shared.given["INBOX"])
        for source, target in zip(sources, targets):
            self.shared.give(dest, validity, target, given.get(source, "?"))
            with self.shared.lock:
                if dest == "INBOX" and source in self.shared.doomed:
                    self.shared.doomed.add(target)  # a copy keeps \Deleted

    def op_fetch(self) -> None:
        if not self.model.uids:
            return
        choice = self.rng.random()
        if choice < 0.4:
            # The whole map, by number: every UID must be where the model has it.
            self.ok("FETCH 1:* (UID FLAGS)")
        elif choice < 0.7:
            self.ok("UID FETCH 1:* (UID FLAGS MODSEQ)")
        else:
            uid = self.rng.choice(self.known() or [1])
            seq = self.model.uids.index(uid) + 1 if uid in self.model.uids else 1
            r = self.cmd(f"FETCH {seq} (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            assert r.status == "OK" or self.refused_as_expunged(r), r
            with self.shared.lock:
                given = self.shared.given["INBOX"].get(uid)
            for line in r.lines:
                m = re.match(rb"\* (\d+) FETCH .*UID (\d+).*Subject: (\S+)", line, re.S)
                # "?": copied before its appender recorded what it is.
                if m and given not in (None, "?") and int(m.group(2)) == uid:
                    assert m.group(3).decode() == given, (uid, given, line)

    def op_idle(self) -> None:
        tag = self.raw.tag()
        self.raw.send(f"{tag} IDLE\r\n")
        first = self.raw.line()
        lines = []
        if not first.startswith(b"+"):
            lines.append(first)
        until = time.monotonic() + self.rng.uniform(0.1, 0.5)
        self.raw.settimeout(0.05)
        try:
            while time.monotonic() < until:
                try:
                    lines.append(self.raw.line())
                except socket.timeout:
                    continue
        finally:
            self.raw.settimeout(30)
        self.raw.send("DONE\r\n")
        r = self.raw.read_tagged(tag)
        self.note("IDLE", lines + r.lines, r.tagged)
        assert r.status == "OK", r
        self.model.feed(lines + r.lines)

    def step(self) -> None:
        ops = [(self.op_append, 4), (self.op_store, 6), (self.op_expunge, 2),
               (lambda: self.op_copy(False), 1), (lambda: self.op_copy(True), 1),
               (self.op_fetch, 4), (self.op_idle, 1), (lambda: self.ok("NOOP"), 2),
               (self.select, 1), (self.op_vanished_fetch, 1)]
        op = self.rng.choices([o for o, _ in ops], weights=[w for _, w in ops])[0]
        op()
        self.learn_unknown()

    def final_check(self) -> None:
        self.ok("NOOP")
        self.learn_unknown()
        before_uids = list(self.model.uids)
        before_flags = {u: set(self.model.flags.get(u, set())) for u in before_uids}
        r = self.raw.cmd("UID FETCH 1:* (UID FLAGS)")
        assert r.status == "OK", r
        server: list[tuple[int, set[str]]] = []
        for line in r.lines:
            m = re.match(rb"\* \d+ FETCH \(.*\bUID (\d+)", line)
            f = re.search(rb"FLAGS \(([^)]*)\)", line)
            if m and f:
                flags = {x for x in f.group(1).decode().split() if x != "\\Recent"}
                server.append((int(m.group(1)), flags))
        assert [u for u, _ in server] == before_uids, \
            f"client {self.k}: server {[u for u, _ in server]} model {before_uids}"
        for uid, flags in server:
            assert {x.lower() for x in flags} == {x.lower() for x in before_flags[uid]}, \
                f"client {self.k}: UID {uid} has {flags}, the model {before_flags[uid]}"
        self.share_expunges()

    def share_expunges(self) -> None:
        with self.shared.lock:
            self.shared.expunged["INBOX"] |= self.model.expunged
            self.shared.unknown_expunges += self.model.unknown_expunges


def explained(missing: set[int], ranges: list[tuple[int, int | None]]) -> set[int]:
    """The missing UIDs that no EXPUNGE range can stand for, each range standing for one UID
    (the smallest upper end first: a greedy matching of points to intervals)."""
    free = sorted(ranges, key=lambda r: float("inf") if r[1] is None else r[1])
    unexplained = set()
    for uid in sorted(missing):
        match = next((r for r in free if r[0] < uid and (r[1] is None or uid < r[1])), None)
        if match is None:
            unexplained.add(uid)
        else:
            free.remove(match)
    return unexplained


def test_shared_mailbox_torture(imap_target):
    print(f"IMAP_TORTURE_SEED={SEED} clients={CLIENTS} seconds={SECONDS}")
    user = imap_target.fresh_user()
    shared = Shared()
    setup = imap_target.raw_login(user)
    setup.ok("CREATE Side")
    for i in range(20):
        r = append(setup, "INBOX", message(f"seed-{i}"))
        validity, uid = (int(x) for x in resp_code(r.text, "APPENDUID").split())
        shared.give("INBOX", validity, uid, f"seed-{i}")
        shared.appended.append(f"seed-{i}")
    setup.close()
    clients = [Client(imap_target, user, shared, k) for k in range(CLIENTS)]
    deadline = time.monotonic() + SECONDS
    done = threading.Barrier(CLIENTS)

    def run(client: Client) -> None:
        try:
            client.select()
            while time.monotonic() < deadline and not shared.errors:
                client.step()
        except BaseException as exc:  # noqa: BLE001
            history = "\n".join(f"  > {c}\n" + "".join(f"    {l!r}\n" for l in ls) + f"    {t!r}"
                                for c, ls, t in client.history)
            shared.errors.append(f"client {client.k}: {exc!r}\nlast exchanges:\n{history}")
        try:
            done.wait(60)
            if not shared.errors:
                client.final_check()
        except BaseException as exc:  # noqa: BLE001
            shared.errors.append(f"client {client.k} at the end: {exc!r}")

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(SECONDS + 120)
    assert not any(t.is_alive() for t in threads), "a client hung"
    if shared.errors:
        print("\n\n".join(shared.errors))
    assert not shared.errors, f"seed {SEED}: " + shared.errors[0][:2000]
    print(f"{shared.ops} commands, {len(shared.appended)} messages appended, "
          f"{len(shared.unknown_expunges)} EXPUNGEs of messages known only by EXISTS, "
          f"{shared.resyncs} QRESYNC SELECTs, {shared.vanished} VANISHED responses")
    assert shared.ops > CLIENTS * 20, shared.ops
    assert shared.resyncs > 0 and shared.vanished > 0, (shared.resyncs, shared.vanished)

    # Across clients: the folders hold exactly what was handed out and not expunged.
    check = imap_target.raw_login(user)
    for folder in ("INBOX", "Side"):
        r = check.ok(f"EXAMINE {folder}")
        assert select_info(r)["UIDVALIDITY"] == shared.validity.get(
            folder, select_info(r)["UIDVALIDITY"])
        present: dict[int, str] = {}
        if select_info(r)["EXISTS"]:
            r = check.ok("UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            for line in r.lines:
                m = re.match(rb"\* \d+ FETCH .*UID (\d+).*Subject: (\S+)", line, re.S)
                if m:
                    present[int(m.group(1))] = m.group(2).decode()
        given = shared.given[folder]
        for uid, subject in present.items():
            assert uid in given, f"{folder}: UID {uid} ({subject}) was never handed out"
            if given[uid] != "?":
                assert subject == given[uid], f"{folder}: UID {uid} is {subject}, not {given[uid]}"
        if folder == "INBOX":
            gone = shared.expunged["INBOX"]
            assert not gone & set(present), f"expunge told of UIDs still there: {gone & set(present)}"
            # An EXPUNGE of a message every client knew only by EXISTS (appended, then
            # expunged by a plain EXPUNGE before anyone fetched its UID) names no UID: it
            # stands for one UID between its known neighbours.
            missing = set(given) - set(present) - gone
            assert missing <= shared.doomed, \
                f"INBOX: UIDs gone that no client removed: {missing - shared.doomed}"
            missing = explained(missing, shared.unknown_expunges)
            assert not missing, f"INBOX: UIDs gone without an EXPUNGE any client saw: {missing}"
        else:
            assert set(given) == set(present), (sorted(given), sorted(present))
    check.close()
