"""IMAP benchmark: ics-mail against a private Dovecot on the same data set and workload.

Steps (each server in turn, same machine, 127.0.0.1, plain IMAP without TLS):
  1. one Maildir++ data set is generated (USERS accounts x MSGS messages of varied sizes and MIME
     shapes) and copied to the server's store (ics-mail: storage.path/<domain>/<local>/; Dovecot:
     mail_location maildir:<mail>/%d/%n, owned by nobody);
  2. the server starts; a warm-up session per account fetches 1:* (FLAGS ENVELOPE BODYSTRUCTURE)
     once, so both servers have built their indexes/caches before the clock runs;
  3. CLIENTS processes (multiprocessing), client i as account i, run sessions for DURATION s:
     LOGIN, SELECT INBOX, FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE), then ITER random commands
     (UID FETCH BODY.PEEK[] of a random message, FETCH BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)],
     STORE +/-FLAGS, SEARCH, APPEND to Sent, NOOP), LOGOUT. Every tagged command is one op;
     ops/s = ops / wall time. Server CPU (process tree, incl. reaped children) and client CPU
     (the worker processes) are measured over the same interval;
  4. shared mailbox (SCENARIO shared|both): CLIENTS processes on ONE account's INBOX (the first
     account, MSGS messages) for DURATION s, mixed reads and writes by UID (UID FETCH BODY.PEEK[],
     FETCH of header ranges, UID STORE, APPEND, UID EXPUNGE of messages the run appended, UID
     COPY to Archive, SEARCH, IDLE woken by the others' changes, NOOP), each client keeping the
     folder's model from the untagged responses only (tests/integration/test_imap_consistency.py
     Model: sequence numbers, UIDs, MODSEQs); a tagged NO/BAD or a model violation is a
     protocol error, counted and reported (the target is 0). This is where index contention
     shows: the per-account scenario of step 3 hides it;
  5. idle sessions: IDLE_SESSIONS connections (spread over the accounts) LOGIN, SELECT INBOX and
     IDLE; the server's memory (PSS summed over its process tree, from smaps_rollup) before and
     after gives KiB per idle session.

Passwords: both servers check the same argon2id hash (from `icsmail hash-password`; Dovecot reads
it as {ARGON2ID}), so LOGIN costs the same work on both.

Usage: python3 bench.py --bin target/release/icsmail --work DIR --out results.json
       [--only icsmail|dovecot]; knobs in the environment (see run.sh).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

DOMAIN = "bench.test"
PASSWORD = "bench-password"
USERS = int(os.environ.get("USERS", "10"))
MSGS = int(os.environ.get("MSGS", "2000"))
CLIENTS = int(os.environ.get("CLIENTS", "10"))
DURATION = float(os.environ.get("DURATION", "20"))
ITER = int(os.environ.get("ITER", "50"))
# Dovecot with its auth cache on (1) or as Debian configures it (0).
DOVECOT_AUTH_CACHE = os.environ.get("DOVECOT_AUTH_CACHE", "1") == "1"
IDLE_SESSIONS = int(os.environ.get("IDLE_SESSIONS", "1000"))
# What the first FETCH 1:* of each session asks for (a client's folder-list view).
FETCH_ALL = os.environ.get("FETCH_ALL", "FLAGS ENVELOPE BODYSTRUCTURE")
# separate (step 3), shared (step 4) or both
SCENARIO = os.environ.get("SCENARIO", "both")
SEED = 4242


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}) before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def users() -> list[str]:
    return [f"user{i:02d}@{DOMAIN}" for i in range(1, USERS + 1)]


def idle_users() -> list[str]:
    """Accounts (empty INBOX) for the idle sessions, 40 sessions each: ics-mail allows 50
    sessions per account (SESSIONS_PER_USER)."""
    return [f"idle{i:03d}@{DOMAIN}" for i in range(1, (IDLE_SESSIONS + 39) // 40 + 1)]


def all_accounts() -> list[str]:
    return users() + idle_users()


# --------------------------------------------------------------------------------------------
# The data set

WORDS = ("report budget meeting lunch invoice project release draft review schedule travel "
         "contract holiday network server backup update question answer summary").split()


def make_message(rng: random.Random, n: int) -> bytes:
    subject = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6))) + f" #{n}"
    sender = f"{rng.choice(WORDS)}{rng.randint(1, 50)}@example.org"
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000",
                         time.gmtime(1_600_000_000 + n * 3600 + rng.randint(0, 3000)))
    head = (f"From: {rng.choice(WORDS).title()} <{sender}>\nTo: someone@{DOMAIN}\n"
            f"Subject: {subject}\nDate: {date}\nMessage-ID: <{n}.{rng.random()}@example.org>\n"
            "MIME-Version: 1.0\n")

    def text(size: int) -> str:
        out, length = [], 0
        while length < size:
            line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 12)))
            out.append(line)
            length += len(line) + 1
        return "\n".join(out) + "\n"

    kind = rng.random()
    # Mostly small mail, a tail of big ones: about 6 KB on average.
    size = int(rng.choices([300, 800, 1500, 3000, 6000, 15000, 60000],
                           weights=[20, 25, 20, 15, 10, 7, 3])[0] * rng.uniform(0.5, 1.5))
    if kind < 0.45:
        body = "Content-Type: text/plain; charset=us-ascii\n\n" + text(size)
    elif kind < 0.75:
        body = ("Content-Type: multipart/alternative; boundary=\"alt\"\n\n--alt\n"
                "Content-Type: text/plain; charset=utf-8\n\n" + text(size // 2) +
                "--alt\nContent-Type: text/html; charset=utf-8\n\n<html><body><p>" +
                text(size // 2).replace("\n", "</p><p>") + "</p></body></html>\n--alt--\n")
    else:
        import base64
        blob = base64.encodebytes(rng.randbytes(size * 3 // 4)).decode()
        body = ("Content-Type: multipart/mixed; boundary=\"mix\"\n\n--mix\n"
                "Content-Type: multipart/alternative; boundary=\"alt\"\n\n--alt\n"
                "Content-Type: text/plain\n\n" + text(400) + "--alt\nContent-Type: text/html\n\n"
                "<p>" + text(400) + "</p>\n--alt--\n\n--mix\n"
                "Content-Type: application/octet-stream; name=\"data.bin\"\n"
                "Content-Transfer-Encoding: base64\n"
                "Content-Disposition: attachment; filename=\"data.bin\"\n\n" + blob + "--mix--\n")
    return (head + body).encode()


def generate(dataset: Path) -> dict:
    """One Maildir (LF line ends, as ics-mail stores) per account; 60 % read (cur/ :2,S)."""
    total = 0
    for ui, user in enumerate(users()):
        rng = random.Random(SEED + ui)
        box = dataset / user.split("@")[0]
        for sub in ("cur", "new", "tmp"):
            (box / sub).mkdir(parents=True, exist_ok=True)
        for n in range(MSGS):
            data = make_message(rng, n)
            total += len(data)
            crlf_size = len(data) + data.count(b"\n")
            base = f"{1_600_000_000 + n}.M{n}P{ui}.bench,S={len(data)},W={crlf_size}"
            if rng.random() < 0.6:
                flags = "S" + ("F" if rng.random() < 0.1 else "")
                (box / "cur" / f"{base}:2,{flags}").write_bytes(data)
            else:
                (box / "new" / base).write_bytes(data)
    return {"users": USERS, "messages_per_user": MSGS, "bytes": total}


# --------------------------------------------------------------------------------------------
# Servers


class Target:
    name = "?"
    proc: subprocess.Popen
    port: int

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


class IcsMail(Target):
    name = "icsmail"

    def __init__(self, work: Path, binary: str, dataset: Path, password_hash: str):
        self.dir = work / "icsmail"
        mail = self.dir / "mail" / DOMAIN
        mail.parent.mkdir(parents=True)
        shutil.copytree(dataset, mail)
        self.port = free_port()
        config = {
            "domains": [DOMAIN], "heloName": "mx.bench.test",
            "stateDir": str(self.dir / "state"), "storage": {"path": str(self.dir / "mail")},
            "accounts": {u: {"hashedPassword": password_hash} for u in all_accounts()},
            "smtp": {"port": free_port(), "interfaces": ["127.0.0.1"], "submissionPort": None},
            "access": {"interfaces": ["127.0.0.1"]},
            "pop3": {"port": free_port(), "pop3sPort": free_port()},
            "imap": {"port": self.port, "imapsPort": free_port()},
            "tls": {"mode": "none"},
        }
        path = self.dir / "config.json"
        path.write_text(json.dumps(config, indent=2))
        err = open(self.dir / "stderr.log", "wb")
        self.proc = subprocess.Popen([binary, "imapd", "--config", str(path)],
                                     stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                     cwd=self.dir, start_new_session=True)
        wait_port(self.port, self.proc)


class Dovecot(Target):
    name = "dovecot"

    def __init__(self, work: Path, dataset: Path, password_hash: str):
        from imaphelpers import chown_nobody, write_dovecot_conf
        self.dir = work / "dovecot"
        self.dir.mkdir()
        mail = self.dir / "mail"
        shutil.copytree(dataset, mail / DOMAIN)
        self.port = free_port()
        conf = write_dovecot_conf(self.dir, mail, self.port, free_port(), None, tls_mode="none",
                                  host="127.0.0.1", realm=DOMAIN, users=all_accounts(),
                                  password=PASSWORD)
        # The same argon2id hash as ics-mail's accounts.
        (self.dir / "passwd").write_text(
            "".join(f"{u}:{{ARGON2ID}}{password_hash}::::::\n" for u in all_accounts()))
        if DOVECOT_AUTH_CACHE:
            # Like for like: ics-mail remembers successful logins for 10 minutes
            # (docs/tls-and-auth.md); Dovecot's own cache, off in Debian's configuration.
            with open(conf, "a") as f:
                f.write("auth_cache_size = 10M\nauth_cache_ttl = 10 mins\n")
        chown_nobody(mail)
        err = open(self.dir / "stderr.log", "wb")
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", str(conf)],
                                     stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                     start_new_session=True)
        wait_port(self.port, self.proc)


# --------------------------------------------------------------------------------------------
# /proc accounting


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree(root: int) -> list[int]:
    kids = _children()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def tree_cpu_s(root: int) -> float:
    """utime+stime of the tree, plus the reaped children's (cutime+cstime) of each member."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])
    return total / tick


def tree_pss_kib(root: int) -> tuple[int, int, int]:
    """(PSS, RSS, processes) of the tree in KiB."""
    pss = rss = n = 0
    for pid in tree(root):
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        n += 1
        for line in text.splitlines():
            if line.startswith("Pss:"):
                pss += int(line.split()[1])
            elif line.startswith("Rss:"):
                rss += int(line.split()[1])
    return pss, rss, n


def machine_cpu_s() -> float:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    vals = [int(x) for x in fields]
    busy = sum(vals) - vals[3] - vals[4]  # minus idle, iowait
    return busy / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------
# A small, fast IMAP client


class Client:
    def __init__(self, port: int, timeout: float = 60.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.n = 0
        self.bytes_in = 0
        self.line()

    def _fill(self) -> None:
        chunk = self.sock.recv(262144)
        if not chunk:
            raise ConnectionError("closed")
        self.bytes_in += len(chunk)
        self.buf += chunk

    def line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                break
            self._fill()
        line, self.buf = self.buf[:i], self.buf[i + 2:]
        if line.endswith(b"}"):
            m = re.search(rb"\{(\d+)\}$", line)
            if m:
                need = int(m.group(1))
                while len(self.buf) < need:
                    self._fill()
                self.buf = self.buf[need:]
                return line + self.line()
        return line

    def cmd(self, text: str, literal: bytes | None = None) -> tuple[str, list[bytes]]:
        self.n += 1
        tag = f"b{self.n}".encode()
        if literal is None:
            self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        else:
            self.sock.sendall(tag + b" " + text.encode() + f" {{{len(literal)}}}\r\n".encode())
            cont = self.line()
            if not cont.startswith(b"+"):
                raise RuntimeError(f"{text}: {cont!r}")
            self.sock.sendall(literal + b"\r\n")
        lines = []
        while True:
            line = self.line()
            if line.startswith(tag + b" "):
                status = line.split(b" ", 2)[1].decode()
                if status != "OK":
                    raise RuntimeError(f"{text[:60]}: {line!r}")
                return status, lines
            lines.append(line)

    def close(self) -> None:
        self.sock.close()


def worker(args) -> dict:
    port, user, deadline, seed = args
    rng = random.Random(seed)
    counts: dict[str, int] = {}
    times: dict[str, float] = {}
    sessions = 0

    def op(name, text, literal=None):
        t0 = time.perf_counter()
        result = client.cmd(text, literal)
        times[name] = times.get(name, 0.0) + time.perf_counter() - t0
        counts[name] = counts.get(name, 0) + 1
        return result

    appended = make_message(random.Random(seed), 999_999).replace(b"\n", b"\r\n")[:4000]
    while time.time() < deadline:
        client = Client(port)
        op("login", f'LOGIN "{user}" "{PASSWORD}"')
        _, lines = op("select", "SELECT INBOX")
        exists = max(int(l.split()[1]) for l in lines if l.endswith(b" EXISTS"))
        op("fetch_all", f"FETCH 1:* ({FETCH_ALL})")
        for _ in range(ITER):
            if time.time() >= deadline:
                break
            r = rng.random()
            n = rng.randint(1, exists)
            if r < 0.35:
                op("fetch_body", f"FETCH {n} (BODY.PEEK[])")
            elif r < 0.50:
                op("fetch_header", f"FETCH {n}:{min(exists, n + 20)} "
                                   "(UID FLAGS BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])")
            elif r < 0.65:
                op("store", f"STORE {n} {rng.choice('+-')}FLAGS (\\Seen)")
            elif r < 0.80:
                op("search", rng.choice(["SEARCH UNSEEN", f"SEARCH SUBJECT {rng.choice(WORDS)}",
                                         "SEARCH FLAGGED", f"UID SEARCH SINCE 1-Jan-2021"]))
            elif r < 0.88:
                op("append", 'APPEND Sent (\\Seen)', appended)
            else:
                op("noop", "NOOP")
        op("logout", "LOGOUT")
        client.close()
        sessions += 1
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"counts": counts, "times": times, "sessions": sessions,
            "cpu_s": ru.ru_utime + ru.ru_stime}


class SharedClient(Client):
    """A client of the shared-mailbox scenario: every response goes through the folder model;
    a tagged NO/BAD or a model violation raises ProtocolError."""

    def __init__(self, port: int):
        super().__init__(port)
        from test_imap_consistency import Model
        self.model = Model([])

    def cmd(self, text: str, literal: bytes | None = None) -> tuple[str, list[bytes]]:
        try:
            status, lines = super().cmd(text, literal)
        except RuntimeError as exc:
            raise ProtocolError(str(exc)) from None
        self.feed(lines)
        return status, lines

    def feed(self, lines: list[bytes]) -> None:
        try:
            self.model.feed(lines)
        except AssertionError as exc:
            raise ProtocolError(f"model: {exc}"[:300]) from None

    def idle(self, wait: float) -> int:
        """IDLE until another client's change arrives or `wait` s pass; lines received."""
        self.n += 1
        tag = f"b{self.n}".encode()
        self.sock.sendall(tag + b" IDLE\r\n")
        if not self.line().startswith(b"+"):
            raise ProtocolError("IDLE refused")
        got = []
        self.sock.settimeout(wait)
        try:
            got.append(self.line())
        except socket.timeout:
            pass
        finally:
            self.sock.settimeout(60)
        self.sock.sendall(b"DONE\r\n")
        while True:
            line = self.line()
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise ProtocolError(f"IDLE: {line!r}")
                break
            got.append(line)
        self.feed(got)
        return len(got)


class ProtocolError(Exception):
    pass


def shared_worker(args) -> dict:
    port, user, deadline, seed, first_new_uid = args
    rng = random.Random(seed)
    counts: dict[str, int] = {}
    times: dict[str, float] = {}
    errors: list[str] = []
    wakeups = 0
    appended = make_message(random.Random(seed), 999_999).replace(b"\n", b"\r\n")[:4000]

    def op(name, call):
        t0 = time.perf_counter()
        result = call()
        times[name] = times.get(name, 0.0) + time.perf_counter() - t0
        counts[name] = counts.get(name, 0) + 1
        return result

    while time.time() < deadline:
        client = SharedClient(port)
        try:
            op("login", lambda: client.cmd(f'LOGIN "{user}" "{PASSWORD}"'))
            op("select", lambda: client.cmd("SELECT INBOX (CONDSTORE)"))
            op("fetch_map", lambda: client.cmd("FETCH 1:* (UID FLAGS MODSEQ)"))
            while time.time() < deadline:
                uids = [u for u in client.model.uids if u != -1]
                if -1 in client.model.uids:
                    first = client.model.uids.index(-1) + 1
                    op("fetch_new", lambda: client.cmd(f"FETCH {first}:* (UID FLAGS MODSEQ)"))
                    continue
                if not uids:
                    op("append", lambda: client.cmd("APPEND INBOX", appended))
                    continue
                uid = rng.choice(uids)
                r = rng.random()
                if r < 0.25:
                    op("fetch_body", lambda: client.cmd(f"UID FETCH {uid} (BODY.PEEK[])"))
                elif r < 0.35:
                    n = rng.randint(1, len(client.model.uids))
                    end = min(len(client.model.uids), n + 20)
                    op("fetch_header", lambda: client.cmd(
                        f"FETCH {n}:{end} (UID FLAGS BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)])"))
                elif r < 0.55:
                    flag = rng.choice(["\\Seen", "\\Flagged", "$Work"])
                    op("store", lambda: client.cmd(
                        f"UID STORE {uid} {rng.choice('+-')}FLAGS ({flag})"))
                elif r < 0.65:
                    op("append", lambda: client.cmd("APPEND INBOX", appended))
                elif r < 0.72:
                    # Only what the run appended goes: the data set stays.
                    mine = [u for u in uids if u >= first_new_uid]
                    if mine:
                        gone = rng.choice(mine)
                        op("expunge", lambda: client.cmd(
                            f"UID STORE {gone} +FLAGS.SILENT (\\Deleted)"))
                        op("expunge", lambda: client.cmd(f"UID EXPUNGE {gone}"))
                elif r < 0.77:
                    op("copy", lambda: client.cmd(f"UID COPY {uid} Archive"))
                elif r < 0.87:
                    op("search", lambda: client.cmd(rng.choice(
                        ["UID SEARCH UNSEEN", "UID SEARCH FLAGGED", "UID SEARCH KEYWORD $Work",
                         f"UID SEARCH SUBJECT {rng.choice(WORDS)}"])))
                elif r < 0.93:
                    wakeups += op("idle", lambda: client.idle(0.2))
                else:
                    op("noop", lambda: client.cmd("NOOP"))
            op("logout", lambda: client.cmd("LOGOUT"))
        except ProtocolError as exc:
            errors.append(str(exc))
        except (ConnectionError, OSError) as exc:
            errors.append(f"connection: {exc!r}")
        finally:
            client.close()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"counts": counts, "times": times, "errors": errors, "idle_wakeup_lines": wakeups,
            "cpu_s": ru.ru_utime + ru.ru_stime}


def run_shared(target: Target) -> dict:
    """CLIENTS clients on one mailbox (step 4)."""
    user = users()[0]
    c = Client(target.port, timeout=600)
    c.cmd(f'LOGIN "{user}" "{PASSWORD}"')
    try:
        c.cmd("CREATE Archive")
    except RuntimeError:
        pass  # a second run on the same store
    _, lines = c.cmd("STATUS INBOX (UIDNEXT)")
    uidnext = int(re.search(rb"UIDNEXT (\d+)", b" ".join(lines)).group(1))
    c.cmd("LOGOUT")
    c.close()
    log(f"{target.name}: shared mailbox: {CLIENTS} clients on {user} for {DURATION:.0f} s")
    srv0, wall0 = tree_cpu_s(target.proc.pid), time.monotonic()
    deadline = time.time() + DURATION
    with multiprocessing.Pool(CLIENTS) as pool:
        results = pool.map(shared_worker, [(target.port, user, deadline, SEED + 100 + i, uidnext)
                                           for i in range(CLIENTS)])
    wall = time.monotonic() - wall0
    srv = tree_cpu_s(target.proc.pid) - srv0
    counts: dict[str, int] = {}
    times: dict[str, float] = {}
    for r in results:
        for k, v in r["counts"].items():
            counts[k] = counts.get(k, 0) + v
        for k, v in r["times"].items():
            times[k] = times.get(k, 0.0) + v
    ops = sum(counts.values())
    errors = [e for r in results for e in r["errors"]]
    return {
        "wall_s": round(wall, 2),
        "ops": ops,
        "ops_per_s": round(ops / wall, 1),
        "server_cpu_s": round(srv, 2),
        "server_cpu_ms_per_op": round(1000 * srv / max(ops, 1), 3),
        "client_cpu_s": round(sum(r["cpu_s"] for r in results), 2),
        "protocol_errors": len(errors),
        "first_errors": errors[:5],
        "idle_wakeup_lines": sum(r["idle_wakeup_lines"] for r in results),
        "per_op": {k: {"count": counts[k], "mean_ms": round(1000 * times[k] / counts[k], 2)}
                   for k in sorted(counts)},
    }


def warm_up(port: int) -> None:
    for user in users():
        c = Client(port, timeout=600)
        c.cmd(f'LOGIN "{user}" "{PASSWORD}"')
        c.cmd("SELECT INBOX")
        c.cmd(f"FETCH 1:* ({FETCH_ALL})")
        c.cmd("LOGOUT")
        c.close()


def run_load(target: Target) -> dict:
    log(f"{target.name}: warm-up (FETCH 1:* per account)")
    t0 = time.monotonic()
    warm_up(target.port)
    warm = time.monotonic() - t0
    log(f"{target.name}: warm-up {warm:.1f} s; load: {CLIENTS} clients for {DURATION:.0f} s")
    accounts = users()
    srv0, mach0, wall0 = tree_cpu_s(target.proc.pid), machine_cpu_s(), time.monotonic()
    deadline = time.time() + DURATION
    with multiprocessing.Pool(CLIENTS) as pool:
        results = pool.map(worker, [(target.port, accounts[i % len(accounts)], deadline, SEED + i)
                                    for i in range(CLIENTS)])
    wall = time.monotonic() - wall0
    srv = tree_cpu_s(target.proc.pid) - srv0
    mach = machine_cpu_s() - mach0
    counts: dict[str, int] = {}
    times: dict[str, float] = {}
    for r in results:
        for k, v in r["counts"].items():
            counts[k] = counts.get(k, 0) + v
        for k, v in r["times"].items():
            times[k] = times.get(k, 0.0) + v
    ops = sum(counts.values())
    client_cpu = sum(r["cpu_s"] for r in results)
    return {
        "warmup_s": round(warm, 2),
        "wall_s": round(wall, 2),
        "ops": ops,
        "ops_per_s": round(ops / wall, 1),
        "sessions": sum(r["sessions"] for r in results),
        "server_cpu_s": round(srv, 2),
        "client_cpu_s": round(client_cpu, 2),
        "machine_busy_cpu_s": round(mach, 2),
        "cores": os.cpu_count(),
        "per_op": {k: {"count": counts[k], "mean_ms": round(1000 * times[k] / counts[k], 2)}
                   for k in sorted(counts)},
    }


IDLE_CPU_WINDOW = 10.0  # seconds over which the idle sessions' CPU use is measured


def idle_sessions(target: Target, n: int) -> dict:
    """n sessions in IDLE; the server tree's PSS before and after."""
    if n <= 0:
        return {}
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 1000)), hard))
    time.sleep(1)
    before = tree_pss_kib(target.proc.pid)
    accounts = idle_users()
    socks: list[socket.socket] = []
    t0 = time.monotonic()
    batch = 50
    ok = 0
    try:
        for start in range(0, n, batch):
            group = []
            for i in range(start, min(n, start + batch)):
                s = socket.create_connection(("127.0.0.1", target.port), timeout=120,
                                             source_address=(f"127.0.{1 + i // 250}.{1 + i % 250}"
                                                             , 0))
                user = accounts[i % len(accounts)]
                s.sendall(f'a LOGIN "{user}" "{PASSWORD}"\r\nb SELECT INBOX\r\nc IDLE\r\n'
                          .encode())
                group.append(s)
                socks.append(s)
            for s in group:
                buf = b""
                while b"\r\n+ " not in buf and not buf.startswith(b"+ "):
                    chunk = s.recv(65536)
                    if not chunk:
                        raise ConnectionError(f"closed during setup: {buf[-300:]!r}")
                    buf += chunk
                    if b"\r\nb NO" in buf or b"\r\na NO" in buf or b"\r\nc BAD" in buf:
                        raise RuntimeError(buf[-300:])
                ok += 1
        setup = time.monotonic() - t0
        time.sleep(2)
        after = tree_pss_kib(target.proc.pid)
        # What the idle sessions cost in CPU (polling, timers) while nothing happens.
        cpu0 = tree_cpu_s(target.proc.pid)
        time.sleep(IDLE_CPU_WINDOW)
        idle_cpu = (tree_cpu_s(target.proc.pid) - cpu0) / IDLE_CPU_WINDOW
    finally:
        for s in socks:
            try:
                s.sendall(b"DONE\r\nd LOGOUT\r\n")
            except OSError:
                pass
            s.close()
    return {
        "sessions": ok,
        "setup_s": round(setup, 1),
        "pss_before_kib": before[0], "pss_after_kib": after[0],
        "rss_before_kib": before[1], "rss_after_kib": after[1],
        "processes_before": before[2], "processes_after": after[2],
        "pss_per_session_kib": round((after[0] - before[0]) / max(ok, 1), 1),
        "idle_cpu_percent": round(100 * idle_cpu, 1),
    }


def main() -> int:
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default="both")
    args = ap.parse_args()
    work = Path(args.work)
    os.chmod(work, 0o755)
    hashed = subprocess.run([args.bin, "hash-password"], input=PASSWORD + "\n", text=True,
                            capture_output=True, check=True).stdout.split()[-1]
    log(f"generating {USERS} x {MSGS} messages")
    dataset = work / "dataset"
    meta = generate(dataset)
    log(f"data set: {meta['bytes'] / 1e6:.1f} MB")
    results = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "dataset": meta,
               "clients": CLIENTS, "duration_s": DURATION, "iterations_per_session": ITER,
               "idle_sessions": IDLE_SESSIONS, "fetch_all_items": FETCH_ALL, "servers": {}}
    order = ["dovecot", "icsmail"] if args.only == "both" else [args.only]
    for name in order:
        log(f"starting {name}")
        target = (Dovecot(work, dataset, hashed) if name == "dovecot"
                  else IcsMail(work, args.bin, dataset, hashed))
        try:
            entry = run_load(target) if SCENARIO in ("separate", "both") else {}
            if entry:
                log(f"{name}: {entry['ops_per_s']} ops/s, server CPU {entry['server_cpu_s']} s, "
                    f"client CPU {entry['client_cpu_s']} s")
            if SCENARIO in ("shared", "both"):
                entry["shared"] = run_shared(target)
                log(f"{name}: shared mailbox {entry['shared']['ops_per_s']} ops/s, "
                    f"{entry['shared']['server_cpu_ms_per_op']} ms server CPU per op, "
                    f"{entry['shared']['protocol_errors']} protocol errors")
            try:
                entry["idle"] = idle_sessions(target, IDLE_SESSIONS)
                log(f"{name}: idle {entry['idle']}")
            except Exception as exc:  # noqa: BLE001
                entry["idle"] = {"error": repr(exc)[:500]}
                log(f"{name}: idle sessions failed: {exc!r}")
            results["servers"][name] = entry
        finally:
            target.stop()
    s = results["servers"]
    if "icsmail" in s and "dovecot" in s and "shared" in s["icsmail"]:
        si, sd = s["icsmail"]["shared"], s["dovecot"]["shared"]
        results["shared_ratio_ops_icsmail_over_dovecot"] = round(
            si["ops_per_s"] / sd["ops_per_s"], 2)
        results["shared_ratio_cpu_per_op_icsmail_over_dovecot"] = round(
            si["server_cpu_ms_per_op"] / sd["server_cpu_ms_per_op"], 2) \
            if sd["server_cpu_ms_per_op"] else None
    if "icsmail" in s and "dovecot" in s and "ops_per_s" in s["icsmail"]:
        results["ratio_ops_icsmail_over_dovecot"] = round(
            s["icsmail"]["ops_per_s"] / s["dovecot"]["ops_per_s"], 2)
        ci = s["icsmail"]["server_cpu_s"] / max(s["icsmail"]["ops"], 1)
        cd = s["dovecot"]["server_cpu_s"] / max(s["dovecot"]["ops"], 1)
        results["ratio_cpu_per_op_icsmail_over_dovecot"] = round(ci / cd, 2) if cd else None
    Path(args.out).write_text(json.dumps(results, indent=2))
    print_table(results)
    return 0


def print_table(results: dict) -> None:
    print(f"\nIMAP benchmark {results['date']}: {results['dataset']['users']} accounts x "
          f"{results['dataset']['messages_per_user']} messages, {results['clients']} clients, "
          f"{results['duration_s']:.0f} s")
    shared = {n: e["shared"] for n, e in results["servers"].items() if "shared" in e}
    if shared:
        print(f"shared mailbox: {'server':10} {'ops/s':>8} {'ops':>8} {'srv ms/op':>9} "
              f"{'errors':>6}")
        for name, e in shared.items():
            print(f"                {name:10} {e['ops_per_s']:>8} {e['ops']:>8} "
                  f"{e['server_cpu_ms_per_op']:>9} {e['protocol_errors']:>6}")
        if "shared_ratio_ops_icsmail_over_dovecot" in results:
            print(f"shared ratio ics-mail/Dovecot ops/s: "
                  f"{results['shared_ratio_ops_icsmail_over_dovecot']}, server CPU per op: "
                  f"{results['shared_ratio_cpu_per_op_icsmail_over_dovecot']}")
    if not any("ops_per_s" in e for e in results["servers"].values()):
        return
    print(f"{'server':10} {'ops/s':>8} {'ops':>8} {'sessions':>8} {'srv_cpu':>8} {'cli_cpu':>8} "
          f"{'idle KiB/sess':>13}")
    for name, e in results["servers"].items():
        idle = e.get("idle", {}).get("pss_per_session_kib", "-")
        print(f"{name:10} {e['ops_per_s']:>8} {e['ops']:>8} {e['sessions']:>8} "
              f"{e['server_cpu_s']:>8} {e['client_cpu_s']:>8} {idle:>13}")
    ops = sorted({k for e in results["servers"].values() for k in e["per_op"]})
    print("mean latency ms: " + "  ".join(
        f"{k}=" + "/".join(str(e["per_op"].get(k, {}).get("mean_ms", "-"))
                           for e in results["servers"].values()) for k in ops))
    if "ratio_ops_icsmail_over_dovecot" in results:
        print(f"ratio ics-mail/Dovecot ops/s: {results['ratio_ops_icsmail_over_dovecot']}, "
              f"server CPU per op: {results['ratio_cpu_per_op_icsmail_over_dovecot']}")


if __name__ == "__main__":
    sys.exit(main())
