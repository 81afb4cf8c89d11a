#!/usr/bin/env python3
"""kill -9 of each daemon under load, with a ledger of every acknowledged message (issue 19).

For each daemon, N cycles of: real clients load the daemon, `kill -9` lands after a random
delay (0.05-1.2 s, so in every phase of the protocol: mid-DATA, between a 250 and the next
command, mid-APPEND literal, mid-EXPUNGE, mid-RETR, between QUIT and +OK, mid-delivery), the
daemon is restarted on the same state, and the ledger is checked against the mailbox (over the
protocol and on disk). The state carries over from cycle to cycle, so the checks are cumulative.

- smtpd:  smtplib clients (DATA) and one raw BDAT client send messages with unique tokens; the
          ledger holds every token that got 250. Each must be stored exactly once, intact; no
          partial file in new/ or cur/. Stored without a 250 is counted (allowed).
- imapd:  imaplib clients APPEND (synchronizing literals), UID STORE \\Deleted + UID EXPUNGE, and
          UID MOVE to Trash. Acknowledged APPEND: present once, same UID as its APPENDUID;
          acknowledged EXPUNGE: gone for good; acknowledged MOVE: in Trash only; UIDVALIDITY
          stable; a UID never names two messages. Checked over IMAP and on disk.
- pop3d:  four accounts, pre-filled Maildirs; poplib sessions RETR (content checked), DELE,
          QUIT. After the QUIT's +OK the deleted messages must stay gone; a session killed before
          QUIT must have deleted nothing; after restart every account logs in (no stale lock).
- queue:  authenticated clients queue mail for remote.test (dnsmasq MX -> aiosmtpd peer on
          127.0.0.90:25) while the daemon delivers at once and `icsmail queue flush` runners
          are killed -9 at random moments; then the daemon is killed -9 too. After restart the
          queue is drained: every acknowledged (token, recipient) reached the peer at least
          once, nothing bounced or failed. Extra copies are counted (at-least-once: the kill
          fell after the peer's 250 and before the envelope recorded it; RFC 5321 §6.1).
- serve:  the smtpd, imapd and pop3d loads at once against `icsmail serve`.

Exit 1 on a lost acknowledged message, a partial file, a real duplicate, a resurrected
deletion, a bounce, a client refused before the kill, a panic, or a failed restart.

Usage (root, the tests' venv):
  kill9.py [--kills N | --quick] [--only smtpd,imapd,pop3d,queue,serve] [--seed S]
KEEP=1 keeps the temp dirs.
"""

from __future__ import annotations

import argparse
import hashlib
import asyncio
import imaplib
import os
import poplib
import random
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from icshelpers import (ALICE, BOB, DOMAIN, PASSWORD, SMTPClient, Server,  # noqa: E402
                        base_config, crlf, deep_merge, free_port, icsmail_bin, port_is_free,
                        wait_for_port, write_config)
from queuepeers import Dnsmasq, Peer, envelopes, queue_dir  # noqa: E402

KEEP = os.environ.get("KEEP") == "1"
warnings.filterwarnings("ignore", message="Session.login_data")
FAILURES: list[str] = []
RUN = uuid.uuid4().hex[:8]
TOKEN_RE = re.compile(rb"k9[a-z]-[0-9]+-[0-9]+-[0-9]+-[0-9a-f]{8}")
PEER_IP = "127.0.0.90"


def fail(what: str) -> None:
    FAILURES.append(what)
    print(f"FAIL: {what}", flush=True)


def password_hash() -> str:
    out = subprocess.run([icsmail_bin(), "hash-password"], input=PASSWORD + "\n",
                         capture_output=True, text=True, timeout=60, check=True)
    return [l for l in out.stdout.splitlines() if l.strip()][-1].strip()


def body_message(token: str, rng: random.Random, sender: str = "sender@example.org",
                 to: str = ALICE, max_lines: int = 3000) -> bytes:
    """A message carrying `token` in Message-ID, first and last body line, with a random body of
    up to ~`max_lines` * 80 bytes (large ones make mid-DATA / mid-literal kills likely)."""
    lines = rng.choice([1, 5, 50, 400, max_lines])
    filler = "\n".join(f"{i:05d} " + "y" * 72 for i in range(rng.randrange(lines)))
    return crlf(f"From: <{sender}>\nTo: <{to}>\nSubject: k9 {token}\n"
                f"Message-ID: <{token}@client.example.org>\n\nSTART {token}\n{filler}\n"
                f".dot line\nEND {token}\n")


def norm(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def digest(message: bytes) -> tuple[int, bytes]:
    """What the ledger keeps of a message: length and hash of its LF form."""
    lf = norm(message)
    return len(lf), hashlib.sha256(lf).digest()


def scan_files(files: list[Path], cache: dict, sent: dict, head: bytes = b"",
               exact: bool = False, prefix: str = "") -> dict[str, list[tuple[Path, bool]]]:
    """token -> [(path, intact)] for the message files. `intact`: the file (LF form) ends with
    the sent message (`exact`: is it), and starts with `head`. A file with no or several
    tokens is a partial/foreign file, reported under the key ''. Files are read once."""
    out: dict[str, list] = {}
    for path in files:
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        key = (path.name, st.st_size)
        if key not in cache:
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            tokens = set(TOKEN_RE.findall(data))
            token = tokens.pop().decode() if len(tokens) == 1 else ""
            intact = False
            if token in sent:
                length, want = sent[token]
                lf = norm(data)
                intact = (hashlib.sha256(lf[-length:]).digest() == want
                          and lf.startswith(head) and (not exact or len(lf) == length))
            cache[key] = (token, intact)
        token, intact = cache[key]
        if token and not token.startswith(f"k9{prefix}-"):
            continue  # another load's message (serve runs all of them on one mailbox)
        out.setdefault(token, []).append((path, intact))
    return out


def maildir_files(folder: Path) -> list[Path]:
    out = []
    for sub in ("new", "cur"):
        d = folder / sub
        if d.is_dir():
            out.extend(p for p in d.iterdir() if p.is_file())
    return out


def tmp_files(mail_root: Path) -> int:
    return sum(len(files) for dirpath, _d, files in os.walk(mail_root)
               if Path(dirpath).name == "tmp")


class Client(threading.Thread):
    """A load thread: runs `body` until the kill; an exception before the kill is a failure."""

    def __init__(self, target: "Target", name: str, body):
        super().__init__(daemon=True, name=name)
        self.target, self.body, self.phase = target, body, "connect"

    def run(self):
        try:
            self.body(self)
        except Exception as exc:  # noqa: BLE001 - anything after the kill is expected
            if not self.target.killed.is_set():
                self.target.client_errors.append(f"{self.name} in {self.phase}: {exc!r}")


class Target:
    """One daemon under test: its config, its load, its ledger check."""
    name = ""
    mode = ""
    prefix = ""

    def __init__(self, tmp: Path, pw: str, rng: random.Random):
        self.tmp, self.pw, self.rng = tmp, pw, rng
        self.killed = threading.Event()
        self.client_errors: list[str] = []
        self.lock = threading.RLock()
        self.cycle = 0
        self.seq = 0
        self.stats = Counter()
        self.notes: list[str] = []
        self.cache: dict = {}

    def token(self, client: int) -> str:
        with self.lock:
            self.seq += 1
            return f"k9{self.prefix}-{self.cycle}-{client}-{self.seq}-{RUN}"

    # to override
    def adjust(self, config: dict) -> dict:
        return config

    def port(self, config: dict) -> int:
        return config["smtp"]["port"]

    def extra_ports(self, config: dict) -> list[int]:
        return []

    def prepare(self, server: Server) -> None:
        pass

    def clients(self, server: Server) -> list[Client]:
        return []

    def after_kill(self, server: Server) -> None:
        pass

    def after_restart(self, server: Server) -> None:
        pass

    def verify(self, server: Server) -> None:
        pass

    def figures(self) -> dict:
        return {}


# ----------------------------------------------------------------------------------------------
# smtpd


class SmtpLoad(Target):
    name, mode, prefix = "smtpd", "smtpd", "s"
    CLIENTS = 4

    def __init__(self, *a):
        super().__init__(*a)
        self.sent: dict[str, tuple[int, bytes]] = {}    # token -> digest
        self.acked: set[str] = set()

    def clients(self, server):
        out = [Client(self, f"smtp{n}", lambda c, n=n: self._smtp(c, n, server.port))
               for n in range(self.CLIENTS)]
        out.append(Client(self, "bdat", lambda c: self._bdat(c, server.port)))
        return out

    def _smtp(self, c: Client, n: int, port: int):
        rng = random.Random(self.rng.random())
        while not self.killed.is_set():
            c.phase = "connect/EHLO"
            with smtplib.SMTP("127.0.0.1", port, timeout=15) as smtp:
                smtp.ehlo("client.example.org")
                for _ in range(rng.randrange(1, 20)):
                    tok = self.token(n)
                    msg = body_message(tok, rng)
                    with self.lock:
                        self.sent[tok] = digest(msg)
                    c.phase = "MAIL/RCPT"
                    code, text = smtp.mail("sender@example.org")
                    assert code == 250, (code, text)
                    code, text = smtp.rcpt(ALICE)
                    assert code == 250, (code, text)
                    c.phase = "DATA"
                    code, text = smtp.data(msg)
                    assert code == 250, (code, text)
                    with self.lock:
                        self.acked.add(tok)
                    c.phase = "after 250"
                    time.sleep(rng.choice([0, 0, 0.005, 0.02]))
                c.phase = "QUIT"

    def _bdat(self, c: Client, port: int):
        rng = random.Random(self.rng.random())
        while not self.killed.is_set():
            c.phase = "connect/EHLO"
            with SMTPClient(port, timeout=15) as s:
                reply = s.ehlo()
                assert any("CHUNKING" in line for line in reply.lines), reply.lines
                for _ in range(rng.randrange(1, 10)):
                    tok = self.token(99)
                    msg = body_message(tok, rng)
                    with self.lock:
                        self.sent[tok] = digest(msg)
                    c.phase = "MAIL/RCPT"
                    s.cmd("MAIL FROM:<sender@example.org>", 250)
                    s.cmd(f"RCPT TO:<{ALICE}>", 250)
                    cut = rng.randrange(len(msg))
                    c.phase = "BDAT"
                    s.send(f"BDAT {cut}\r\n".encode() + msg[:cut])
                    s.expect(250)
                    s.send(f"BDAT {len(msg) - cut} LAST\r\n".encode() + msg[cut:])
                    s.expect(250)
                    with self.lock:
                        self.acked.add(tok)
                    c.phase = "after 250"
                s.cmd("QUIT", 221)

    def verify(self, server):
        root = server.mailbox(ALICE)
        found = scan_files(maildir_files(root), self.cache, self.sent, b"Return-Path:",
                           prefix=self.prefix)
        for path, _ok in found.pop("", []):
            fail(f"smtpd: partial or foreign file {path}")
        for tok in self.acked:
            if tok not in found:
                fail(f"smtpd: acknowledged {tok} lost (cycle {self.cycle})")
        dups = 0
        for tok, copies in found.items():
            if tok not in self.sent:
                fail(f"smtpd: stored {tok} that no client sent")
                continue
            if len(copies) > 1:
                dups += 1
                fail(f"smtpd: {tok} stored {len(copies)} times (each token is sent once)")
            for path, intact in copies:
                if not intact:
                    fail(f"smtpd: {path} holds a damaged copy of {tok}")
        self.stats["stored"] = sum(len(v) for v in found.values())
        self.stats["stored without a 250"] = len(set(found) - self.acked)
        self.stats["duplicates"] = dups
        self.stats["tmp/ files left"] = tmp_files(server.mail_root)

    def figures(self):
        return {"acknowledged": len(self.acked), "attempted": len(self.sent), **self.stats}


# ----------------------------------------------------------------------------------------------
# imapd

APPENDUID_RE = re.compile(rb"APPENDUID (\d+) (\d+)")
UID_RE = re.compile(rb"UID (\d+)")
MSGID_RE = re.compile(rb"<(k9[a-z]-[0-9]+-[0-9]+-[0-9]+-[0-9a-f]{8})@client")


class ImapLoad(Target):
    name, mode, prefix = "imapd", "imapd", "i"
    USERS = [ALICE, ALICE, BOB]
    FOLDERS = ["INBOX", "Trash"]

    def __init__(self, *a):
        super().__init__(*a)
        self.sent: dict[str, str] = {}                   # token -> account
        self.digests: dict[str, tuple[int, bytes]] = {}
        # token -> state: inbox (acked, eligible), expunging, gone, moving, trash, both
        self.state: dict[str, str] = {}
        self.uid: dict[str, int] = {}                    # token -> INBOX UID from APPENDUID
        self.uid_owner: dict[tuple, str] = {}            # (account, folder, uidvalidity, uid) -> token
        self.uidvalidity: dict[tuple, int] = {}          # (account, folder) -> UIDVALIDITY
        self.acked_appends = 0
        self.acked_expunges = 0
        self.acked_moves = 0

    def port(self, config):
        return config["imap"]["port"]

    def clients(self, server):
        port = self.port(server.config)
        return [Client(self, f"imap{n}", lambda c, n=n, u=u: self._imap(c, n, u, port))
                for n, u in enumerate(self.USERS)]

    def _imap(self, c: Client, n: int, user: str, port: int):
        rng = random.Random(self.rng.random())
        c.phase = "connect/LOGIN"
        imap = imaplib.IMAP4("127.0.0.1", port, timeout=15)
        try:
            imap.login(user, PASSWORD)
            c.phase = "SELECT"
            typ, _ = imap.select("INBOX")
            assert typ == "OK"
            while not self.killed.is_set():
                action = rng.random()
                tok = None
                if action >= 0.6:
                    # claim one of this account's messages (no other client acts on it)
                    with self.lock:
                        mine = [t for t, s in self.state.items()
                                if s == "inbox" and self.sent[t] == user and t in self.uid]
                        if mine:
                            tok = rng.choice(mine)
                            self.state[tok] = "expunging" if action < 0.85 else "moving"
                if tok is None:
                    tok = self.token(n)
                    msg = body_message(tok, rng, to=user)
                    with self.lock:
                        self.sent[tok] = user
                        self.digests[tok] = digest(msg)
                    c.phase = "APPEND"
                    typ, data = imap.append("INBOX", None, None, msg)
                    assert typ == "OK", (typ, data)
                    match = APPENDUID_RE.search(data[0] or b"")
                    assert match, f"APPEND OK without APPENDUID: {data!r}"
                    with self.lock:
                        self.state[tok] = "inbox"
                        self.uid[tok] = int(match.group(2))
                        self.acked_appends += 1
                    c.phase = "after APPEND OK"
                elif action < 0.85:
                    uid = str(self.uid[tok])
                    c.phase = "STORE \\Deleted"
                    typ, data = imap.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)")
                    assert typ == "OK", (typ, data)
                    c.phase = "UID EXPUNGE"
                    typ, data = imap.uid("EXPUNGE", uid)
                    assert typ == "OK", (typ, data)
                    with self.lock:
                        self.state[tok] = "gone"
                        self.acked_expunges += 1
                    c.phase = "after EXPUNGE OK"
                else:
                    c.phase = "UID MOVE"
                    typ, data = imap.uid("MOVE", str(self.uid[tok]), "Trash")
                    assert typ == "OK", (typ, data)
                    with self.lock:
                        self.state[tok] = "trash"
                        self.acked_moves += 1
                    c.phase = "after MOVE OK"
            c.phase = "LOGOUT"
            imap.logout()
        finally:
            try:
                imap.shutdown()
            except OSError:
                pass

    def _view(self, server, user: str) -> dict[str, dict[str, list[int]]]:
        """folder -> token -> [UIDs], over IMAP; checks UIDVALIDITY and UID ownership."""
        imap = imaplib.IMAP4("127.0.0.1", self.port(server.config), timeout=30)
        out = {}
        try:
            imap.login(user, PASSWORD)
            for folder in self.FOLDERS:
                typ, exists = imap.select(folder, readonly=True)
                assert typ == "OK", f"EXAMINE {folder} failed"
                uv = int(imap.response("UIDVALIDITY")[1][0])
                old = self.uidvalidity.setdefault((user, folder), uv)
                if old != uv:
                    fail(f"imapd: UIDVALIDITY of {user} {folder} changed {old} -> {uv}")
                    self.uidvalidity[(user, folder)] = uv
                data = []
                if int(exists[0]) > 0:
                    typ, data = imap.uid("FETCH", "1:*",
                                         "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
                    assert typ == "OK", (typ, data)
                view: dict[str, list[int]] = {}
                for item in data:
                    if not isinstance(item, tuple):
                        continue
                    uid_m, tok_m = UID_RE.search(item[0]), MSGID_RE.search(item[1])
                    if not uid_m or not tok_m:
                        continue
                    uid, tok = int(uid_m.group(1)), tok_m.group(1).decode()
                    if not tok.startswith(f"k9{self.prefix}-"):
                        continue
                    view.setdefault(tok, []).append(uid)
                    owner = self.uid_owner.setdefault((user, folder, uv, uid), tok)
                    if owner != tok:
                        fail(f"imapd: UID {uid} of {user} {folder} was {owner}, now {tok}")
                out[folder] = view
            imap.logout()
        finally:
            try:
                imap.shutdown()
            except OSError:
                pass
        return out

    def verify(self, server):
        stored_unacked = both = 0
        for user in sorted(set(self.USERS)):
            view = self._view(server, user)
            inbox, trash = view["INBOX"], view["Trash"]
            disk = {}
            for folder, path in (("INBOX", server.mailbox(user)),
                                 ("Trash", server.mailbox(user) / ".Trash")):
                found = scan_files(maildir_files(path), self.cache, self.digests,
                                   prefix=self.prefix)
                for p, _ok in found.pop("", []):
                    fail(f"imapd: partial or foreign file {p}")
                for tok, copies in found.items():
                    for p, intact in copies:
                        if not intact:
                            fail(f"imapd: {p} holds a damaged copy of {tok}")
                disk[folder] = {t: len(v) for t, v in found.items()}
                imap_counts = {t: len(u) for t, u in view[folder].items()}
                if disk[folder] != imap_counts:
                    diff = {t for t in set(disk[folder]) | set(imap_counts)
                            if disk[folder].get(t) != imap_counts.get(t)}
                    fail(f"imapd: {user} {folder}: disk and IMAP disagree on {sorted(diff)[:5]}")
            for tok, owner in list(self.sent.items()):
                if owner != user:
                    continue
                state = self.state.get(tok)
                n_in, n_tr = len(inbox.get(tok, [])), len(trash.get(tok, []))
                if n_in > 1 or n_tr > 1:
                    fail(f"imapd: {tok} stored twice in a folder ({n_in} INBOX, {n_tr} Trash)")
                if state is None:                    # APPEND never acknowledged
                    if n_in:
                        stored_unacked += 1
                    if n_tr:
                        fail(f"imapd: unacknowledged {tok} in Trash")
                elif state == "inbox":
                    if n_in != 1 or n_tr:
                        fail(f"imapd: acknowledged {tok} lost/misplaced (INBOX {n_in}, "
                             f"Trash {n_tr}, cycle {self.cycle})")
                    elif inbox[tok][0] != self.uid[tok]:
                        fail(f"imapd: {tok} had UID {self.uid[tok]}, now {inbox[tok][0]}")
                elif state == "gone":
                    if n_in or n_tr:
                        fail(f"imapd: expunged {tok} is back (INBOX {n_in}, Trash {n_tr})")
                elif state == "expunging":           # EXPUNGE not acknowledged: either
                    if n_tr:
                        fail(f"imapd: {tok} (expunge unacknowledged) appeared in Trash")
                    self.state[tok] = "inbox" if n_in else "gone"
                    self.stats["expunge unacknowledged: kept" if n_in else
                               "expunge unacknowledged: done"] += 1
                    if n_in and inbox[tok][0] != self.uid[tok]:
                        fail(f"imapd: {tok} had UID {self.uid[tok]}, now {inbox[tok][0]}")
                elif state == "trash":
                    if n_tr != 1 or n_in:
                        fail(f"imapd: moved {tok}: INBOX {n_in}, Trash {n_tr}")
                elif state == "moving":              # MOVE not acknowledged
                    if n_in and n_tr:
                        both += 1
                        self.state[tok] = "both"
                    elif n_tr:
                        self.state[tok] = "trash"
                    elif n_in:
                        self.state[tok] = "inbox"
                    else:
                        fail(f"imapd: {tok} lost by an unacknowledged MOVE")
                    self.stats["move unacknowledged"] += 1
        self.stats["APPEND stored without OK"] = stored_unacked
        self.stats["MOVE left in both folders"] += both
        self.stats["tmp/ files left"] = tmp_files(server.mail_root)

    def figures(self):
        return {"acknowledged APPEND": self.acked_appends,
                "acknowledged EXPUNGE": self.acked_expunges,
                "acknowledged MOVE": self.acked_moves, "attempted APPEND": len(self.sent),
                **self.stats}


# ----------------------------------------------------------------------------------------------
# pop3d

POP_USERS = [f"pop{n}@{DOMAIN}" for n in range(4)]


class Pop3Load(Target):
    name, mode, prefix = "pop3d", "pop3d", "p"
    FILL = 60

    def __init__(self, *a):
        super().__init__(*a)
        self.msgs: dict[str, str] = {}                   # token -> account
        self.digests: dict[str, tuple[int, bytes]] = {}
        self.state: dict[str, str] = {}                  # present | deleted | uncertain
        self.committed = 0
        self.in_use = 0
        self.reported = False
        self.sessions = Counter()

    def adjust(self, config):
        for user in POP_USERS:
            config["accounts"][user] = {"hashedPassword": self.pw}
        return config

    def port(self, config):
        return config["pop3"]["port"]

    def fill(self, server):
        with self.lock:
            self._fill(server)

    def _fill(self, server):
        for n, user in enumerate(POP_USERS):
            box = server.mailbox(user)
            have = sum(1 for t, s in self.state.items()
                       if s in ("present", "uncertain") and self.msgs[t] == user)
            for _ in range(self.FILL - have):
                tok = self.token(n)
                msg = norm(body_message(tok, self.rng, to=user, max_lines=300))
                name = f"{time.time():.6f}.k9{tok}.host"
                (box / "tmp").mkdir(parents=True, exist_ok=True)
                (box / "tmp" / name).write_bytes(msg)
                os.rename(box / "tmp" / name, box / "new" / name)
                self.msgs[tok] = user
                self.digests[tok] = digest(msg)
                self.state[tok] = "present"

    prepare = fill

    def clients(self, server):
        port = self.port(server.config)
        return [Client(self, f"pop{n}", lambda c, u=u: self._pop(c, u, port))
                for n, u in enumerate(POP_USERS)] + [
                    Client(self, "delivery", lambda c: self._deliver(c, server))]

    def _deliver(self, c: Client, server):
        """New mail keeps arriving in the Maildirs (as a delivery agent writes it)."""
        while not self.killed.is_set():
            c.phase = "delivery"
            self.fill(server)
            time.sleep(0.01)

    def _pop(self, c: Client, user: str, port: int):
        rng = random.Random(self.rng.random())
        while not self.killed.is_set():
            c.phase = "connect/login"
            pop = poplib.POP3("127.0.0.1", port, timeout=15)
            pending: list[str] = []
            quit_sent = False
            try:
                pop.user(user)
                try:
                    pop.pass_(PASSWORD)
                except poplib.error_proto as exc:
                    if b"IN-USE" not in exc.args[0]:
                        raise
                    # The previous session of this account got its QUIT's +OK, yet the lock
                    # is still held: counted (a refused login, reported), retried.
                    with self.lock:
                        self.in_use += 1
                    pop.close()
                    time.sleep(0.1)
                    continue
                c.phase = "STAT/LIST"
                count, _size = pop.stat()
                for num in rng.sample(range(1, count + 1), min(count, rng.randrange(1, 12))):
                    c.phase = "RETR"
                    _resp, lines, _octets = pop.retr(num)
                    data = b"\n".join(lines) + b"\n"
                    toks = set(TOKEN_RE.findall(data))
                    assert len(toks) == 1, f"RETR {num}: tokens {toks}"
                    tok = toks.pop().decode()
                    assert self.msgs[tok] == user and digest(data) == self.digests[tok], \
                        f"RETR {num} ({tok}) differs from the file"
                    if rng.random() < 0.5:
                        c.phase = "DELE"
                        pop.dele(num)
                        pending.append(tok)
                c.phase = "QUIT"
                quit_sent = True
                with self.lock:
                    for tok in pending:
                        self.state[tok] = "uncertain"
                pop.quit()
                with self.lock:
                    for tok in pending:
                        self.state[tok] = "deleted"
                    self.committed += len(pending)
                    self.sessions["committed by QUIT +OK"] += 1
                c.phase = "after QUIT"
            except Exception:
                with self.lock:
                    if not quit_sent:
                        self.sessions["killed before QUIT, DELEs pending"] += bool(pending)
                    else:
                        self.sessions["killed between QUIT and +OK"] += 1
                raise

    def verify(self, server):
        for user in POP_USERS:
            found = scan_files(maildir_files(server.mailbox(user)), self.cache, self.digests,
                               exact=True, prefix=self.prefix)
            for p, _ok in found.pop("", []):
                fail(f"pop3d: partial or foreign file {p}")
            on_disk = 0
            for tok, owner in self.msgs.items():
                if owner != user:
                    continue
                copies = found.get(tok, [])
                on_disk += len(copies)
                state = self.state[tok]
                if len(copies) > 1:
                    fail(f"pop3d: {tok} on disk {len(copies)} times")
                if state == "present" and not copies:
                    fail(f"pop3d: {tok} lost (never deleted in a committed session, "
                         f"cycle {self.cycle})")
                elif state == "deleted" and copies:
                    fail(f"pop3d: {tok} deleted by a QUIT that got +OK is back")
                elif state == "uncertain":
                    self.state[tok] = "present" if copies else "deleted"
                    self.stats["QUIT unanswered: kept" if copies else
                               "QUIT unanswered: deleted"] += 1
                for _p, intact in copies:
                    if not intact:
                        fail(f"pop3d: {tok} damaged on disk")
            # Every account logs in after the restart (no stale lock) and sees what is on disk.
            pop = poplib.POP3("127.0.0.1", self.port(server.config), timeout=15)
            try:
                pop.user(user)
                pop.pass_(PASSWORD)
                count, _ = pop.stat()
                if count != on_disk:
                    fail(f"pop3d: {user} STAT {count} but {on_disk} messages on disk")
                pop.quit()
            except poplib.error_proto as exc:
                fail(f"pop3d: {user} cannot log in after the restart: {exc}")
        self.fill(server)

    def figures(self):
        if self.in_use and not self.reported:
            self.reported = True
            fail(f"pop3d: {self.in_use} logins refused with -ERR [IN-USE] right after the "
                 f"account's previous session got its QUIT's +OK")
        return {"messages": len(self.msgs), "deletions committed (QUIT +OK)": self.committed,
                "logins refused IN-USE after a QUIT +OK": self.in_use,
                **self.sessions, **self.stats}


# ----------------------------------------------------------------------------------------------
# queue


class QueueLoad(Target):
    name, mode, prefix = "queue", "smtpd", "q"
    CLIENTS = 3
    RCPTS = ["bob@remote.test", "carol@remote.test"]

    def __init__(self, *a):
        super().__init__(*a)
        self.acked: dict[str, list[str]] = {}
        self.attempted: set[str] = set()
        self.runner_kills = Counter()
        self.drain_s: list[float] = []
        if not port_is_free(25, PEER_IP):
            raise RuntimeError(f"{PEER_IP}:25 is taken")
        self.peer = Peer(PEER_IP, 25)
        handler = self.peer.handler
        original = handler.handle_DATA

        async def slow_data(server, session, envelope):
            await asyncio.sleep(random.choice([0, 0, 0.01, 0.05]))
            return await original(server, session, envelope)
        handler.handle_DATA = slow_data
        self.dns = Dnsmasq(self.tmp, {"remote.test": [(10, "mx.remote.test")]},
                           {"mx.remote.test": PEER_IP})

    def adjust(self, config):
        return deep_merge(config, {"dns": {"nameservers": [self.dns.nameserver]}})

    def clients(self, server):
        out = [Client(self, f"submit{n}", lambda c, n=n: self._submit(c, n, server.port))
               for n in range(self.CLIENTS)]
        out.append(Client(self, "runners", lambda c: self._runners(c, server)))
        return out

    def _submit(self, c: Client, n: int, port: int):
        rng = random.Random(self.rng.random())
        while not self.killed.is_set():
            c.phase = "connect/AUTH"
            with smtplib.SMTP("127.0.0.1", port, timeout=15) as smtp:
                smtp.ehlo("client.example.org")
                smtp.login(ALICE, PASSWORD)
                for _ in range(rng.randrange(5, 40)):
                    tok = self.token(n)
                    rcpts = self.RCPTS[:rng.randrange(1, 3)]
                    msg = body_message(tok, rng, sender=ALICE, to=rcpts[0], max_lines=500)
                    with self.lock:
                        self.attempted.add(tok)
                    c.phase = "MAIL/RCPT"
                    assert smtp.mail(ALICE)[0] == 250
                    for r in rcpts:
                        code, text = smtp.rcpt(r)
                        assert code == 250, (code, text)
                    c.phase = "DATA"
                    code, text = smtp.data(msg)
                    assert code == 250, (code, text)
                    with self.lock:
                        self.acked[tok] = rcpts
                    c.phase = "after 250"

    def _runners(self, c: Client, server):
        rng = random.Random(self.rng.random())
        cmd = [icsmail_bin(), "queue", "flush", "--config", str(server.config_path)]
        while not self.killed.is_set():
            c.phase = "queue flush"
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.01, 0.3))
            if proc.poll() is None:
                proc.kill()
                self.runner_kills["runner killed mid-pass"] += 1
            else:
                self.runner_kills["runner done before its kill"] += 1
                if proc.returncode != 0:
                    raise RuntimeError(f"queue flush exit {proc.returncode}")
            proc.wait(10)

    def after_restart(self, server):
        t0 = time.monotonic()
        cmd = [icsmail_bin(), "queue", "flush", "--config", str(server.config_path)]
        deadline = t0 + 60
        while time.monotonic() < deadline:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            if result.returncode != 0:
                fail(f"queue: flush after restart exit {result.returncode}: {result.stderr[-800:]}")
                return
            if not envelopes(server):
                break
            time.sleep(0.2)
        self.drain_s.append(time.monotonic() - t0)

    def verify(self, server):
        left = envelopes(server)
        if left:
            fail(f"queue: {len(left)} messages still queued after draining, "
                 f"e.g. {left[0]['id']}: {left[0].get('lastError')}")
        qdir = queue_dir(server)
        self.stats["message files without envelope (crash before 250)"] = len(
            [p for p in qdir.glob("*.eml") if not p.with_suffix(".json").exists()])
        got = Counter()
        for received in self.peer.received:
            toks = set(TOKEN_RE.findall(received.data))
            for tok in toks:
                for r in received.rcpt_tos:
                    got[(tok.decode(), r)] += 1
        lost = [(t, r) for t, rs in self.acked.items() for r in rs if got[(t, r)] == 0]
        for t, r in lost:
            fail(f"queue: acknowledged {t} for {r} never reached the peer")
        self.stats["copies beyond the first"] = sum(n - 1 for n in got.values() if n > 1)
        self.stats["(token, rcpt) with extra copies"] = sum(1 for n in got.values() if n > 1)
        self.stats["delivered without a 250 to the client"] = len(
            {t for t, _r in got} - set(self.acked))
        dsn = [p for p in maildir_files(server.mailbox(ALICE))]
        if dsn:
            fail(f"queue: {len(dsn)} notifications (bounces) reached the sender")

    def figures(self):
        d = sorted(self.drain_s)
        return {"acknowledged messages": len(self.acked),
                "acknowledged (token, rcpt)": sum(len(v) for v in self.acked.values()),
                "attempted": len(self.attempted), **self.runner_kills, **self.stats,
                "drain after restart s (median/max)":
                    f"{d[len(d) // 2]:.2f}/{d[-1]:.2f}" if d else "-"}

    def close(self):
        self.peer.stop()
        self.dns.stop()


# ----------------------------------------------------------------------------------------------
# serve: the three loads against one process


class ServeLoad(Target):
    name, mode, prefix = "serve", "serve", ""

    def __init__(self, tmp, pw, rng):
        super().__init__(tmp, pw, rng)
        self.parts = [SmtpLoad(tmp, pw, rng), ImapLoad(tmp, pw, rng), Pop3Load(tmp, pw, rng)]
        for part in self.parts:
            part.killed = self.killed
            part.client_errors = self.client_errors

    def adjust(self, config):
        return self.parts[2].adjust(config)

    def extra_ports(self, config):
        return [config["imap"]["port"], config["pop3"]["port"]]

    def prepare(self, server):
        for p in self.parts:
            p.prepare(server)

    def clients(self, server):
        for p in self.parts:
            p.cycle = self.cycle
        return [c for p in self.parts for c in p.clients(server)]

    def verify(self, server):
        for p in self.parts:
            p.verify(server)

    def figures(self):
        out = {}
        for p in self.parts:
            out.update({f"{p.name}: {k}": v for k, v in p.figures().items()})
        return out


# ----------------------------------------------------------------------------------------------


def run_target(cls, kills: int, pw: str, seed: int) -> dict:
    rng = random.Random(f"{seed}-{cls.name}")
    tmp = Path(tempfile.mkdtemp(prefix=f"ics-kill9-{cls.name}-", dir="/var/tmp"))
    os.chmod(tmp, 0o755)
    t0 = time.monotonic()
    target = None
    server = None
    phases = Counter()
    delays = []
    cycles = 0
    before = len(FAILURES)
    try:
        target = cls(tmp, pw, rng)
        config = base_config(tmp, free_port(), pw)
        config = target.adjust(config)
        path = write_config(tmp / "config.json", config)
        server = Server(tmp=tmp, port=target.port(config), config=config, config_path=path,
                        mode=target.mode)
        try:
            server.start()
            for port in target.extra_ports(config):
                wait_for_port(port, server.proc)
        except RuntimeError as exc:
            fail(f"{cls.name}: server did not start: {exc}")
            return {}
        target.prepare(server)
        for cycle in range(kills):
            target.cycle = cycle
            target.killed.clear()
            clients = target.clients(server)
            for c in clients:
                c.start()
            delay = rng.uniform(0.05, 1.2)
            delays.append(delay)
            time.sleep(delay)
            if not server.alive():
                fail(f"{cls.name}: the daemon died on its own in cycle {cycle}:\n"
                     + server.stderr()[-3000:])
                break
            target.killed.set()
            snapshot = [c.phase for c in clients]
            server.kill9()
            phases.update(snapshot)
            for c in clients:
                c.join(30)
                if c.is_alive():
                    fail(f"{cls.name}: client {c.name} hangs after the kill")
            errors, target.client_errors[:] = list(target.client_errors), []
            for e in errors[:5]:
                fail(f"{cls.name}: client failed before the kill (cycle {cycle}): {e}")
            target.after_kill(server)
            server.expect_exit = False
            try:
                server.start()
                for port in target.extra_ports(config):
                    wait_for_port(port, server.proc)
            except RuntimeError as exc:
                fail(f"{cls.name}: restart failed after kill {cycle}: {exc}")
                break
            target.after_restart(server)
            try:
                target.verify(server)
            except Exception as exc:  # noqa: BLE001
                fail(f"{cls.name}: check after kill {cycle} failed: {exc!r}")
            cycles = cycle + 1
            if len(FAILURES) - before > 30:
                fail(f"{cls.name}: too many failures, stopping")
                break
        log = server.stderr()
        if "panicked" in log:
            fail(f"{cls.name}: panic in the server log:\n"
                 + log[max(0, log.index("panicked") - 300):][:2000])
    finally:
        if server is not None:
            server.stop()
        if target is not None and hasattr(target, "close"):
            target.close()
        if KEEP:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    d = sorted(delays)
    figures = target.figures() if target else {}
    return {"cycles": cycles, "seconds": round(time.monotonic() - t0, 1),
            "kill delay s (min/median/max)": f"{d[0]:.2f}/{d[len(d) // 2]:.2f}/{d[-1]:.2f}"
            if d else "-",
            "failures": len(FAILURES) - before, **figures,
            "client phase at the kill": ", ".join(f"{k} {v}" for k, v in phases.most_common())}


TARGETS = {c.name: c for c in (SmtpLoad, ImapLoad, Pop3Load, QueueLoad, ServeLoad)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="10 kills per daemon")
    ap.add_argument("--only", default=",".join(TARGETS))
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    kills = 10 if args.quick else args.kills
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    for n in names:
        if n not in TARGETS:
            ap.error(f"unknown daemon {n!r} (known: {', '.join(TARGETS)})")
    print(f"kill9: {kills} kills per daemon, seed {seed}, binary {icsmail_bin()}", flush=True)
    pw = password_hash()
    results = {}
    for n in names:
        results[n] = run_target(TARGETS[n], kills, pw, seed)
        print(f"\n### {n}\n\n| figure | value |\n|---|---|")
        for k, v in results[n].items():
            print(f"| {k} | {v} |")
        print(flush=True)
    if FAILURES:
        print(f"\n{len(FAILURES)} failures:")
        for f in FAILURES[:50]:
            print(f"  - {f}")
        return 1
    print("\nno acknowledged message lost, no partial file, every restart worked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
