#!/usr/bin/env python3
"""Soak (issue 19): many concurrent IMAP IDLE, SMTP and POP3 connections on loopback for a long
time, with mail flowing, against the three daemons systemd runs (`icsmail smtpd`, `imapd`,
`pop3d`, one process each, one config, one store).

Load (one asyncio process, real protocol on every connection):
- IMAP (70 %): LOGIN, SELECT INBOX, IDLE; every untagged EXISTS is counted and remembered.
  Every REIDLE s (default 20 min) a session sends DONE and IDLE again (RFC 2177: < 29 min).
  Session k logs in as imap account k % IMAP_ACCOUNTS (10 sessions per account by default).
  Steady state (the default; --growing turns it off): the first session of each account is
  its cleaner: every CLEAN_EVERY s (accounts staggered), during the hold, it leaves IDLE,
  `STORE 1:n +FLAGS.SILENT (\\Deleted)` + `EXPUNGE` all but the newest KEEP_NEWEST messages
  (checking that EXPUNGE reports exactly n), and IDLEs again. The account's other 9 sessions
  must receive every one of those EXPUNGE pushes (counted, checked at the end), and the true
  count is seeded + delivered - expunged. Mailboxes stay bounded, so RSS must be flat.
  The probe account is trimmed the same way every 30 s. POP3 mailboxes do not grow (two
  seeded messages, no mail to them), so POP3 needs no DELE.
- SMTP (21 %): port 25 sessions that stay open: 220, EHLO, then every sessions/RATE seconds one
  transaction (MAIL, RCPT to a random IMAP account, DATA, 250) on the same connection. All
  together they deliver RATE messages/s to the IDLE accounts.
- POP3 (9 %): each client has its own account (POP3 locks the maildrop): USER/PASS, STAT,
  LIST, RETR 1, stays connected HOLD s, QUIT, reconnects at once. POP3's MAX_CONNECTIONS is a
  constant 1000 (src/pop3/server.rs), so the share stays under it with room for reconnects.
- Probe (a separate process, stdlib clients, so the load loop does not delay it): every second
  one whole SMTP transaction on a fresh connection (connect .. QUIT, timed) to the probe
  account, then NOOP and a timed `FETCH * (BODY.PEEK[])` on an IMAP session open all along.

Logins: an account's first login is a full argon2id check in the daemon (one per core at once);
later ones hit its 10-minute login cache (docs/tls-and-auth.md). At most FIRST_LOGINS first
logins per protocol are in flight, and an account's other IMAP sessions connect only after its
first logged in: without that, 7,000 logins on 700 accounts in 100 s each paid a full check
and 4,160 timed out. The hold starts when every connection is up.

Source addresses: clients bind 127.0.x.y before connecting, 10 IMAP or SMTP connections per
address and one POP3 client per address, so the per-IP caps (IMAP 1000, POP3 20 constants,
smtp.limits.connectionsPerIp) are not what is measured. smtp.limits.maxConnections is raised
to 2 x the SMTP share + 100 so the 75 % stress mode (10 s command timeout) stays off.

Every 10 s: VmRSS and open fds of each daemon, connections per protocol, messages delivered,
EXISTS seen, errors. At the end: probe percentiles, RSS first/median/last/max and the RSS
slope over the second half of the hold, failures, EXISTS vs deliveries, and each IDLE session's
last EXISTS against its account's true count (after mail stops, up to SETTLE s).

Exit 1 when: any legitimate connection failed (refused, timed out, BYE/421/-ERR/NO/BAD, EOF),
the target count was not reached, a daemon died, an IDLE session's view lags after SETTLE s,
a daemon's RSS passed --rss-bound MiB, or (hold >= 600 s) a second-half RSS slope is above
the flat bound: max(1 MiB/min, 0.5 % of the daemon's median RSS per min).

Usage: soak.py [--duration S] [--connections N] [--ramp S] [--rate MSG/S] [--rss-bound MiB]
               [--rss-slope MiB/min]
KEEP=1 keeps the temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import imaplib
import json
import math
import os
import random
import re
import resource
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from icshelpers import (DOMAIN, PASSWORD, Server, base_config, deep_merge,  # noqa: E402
                        free_port, icsmail_bin, wait_for_port, write_config)

NOFILE = 20_000                 # the hard limit on this machine
IMAP_PER_ACCOUNT = 10
PER_ADDRESS = 10                # IMAP / SMTP connections per source address
POP3_HOLD = 30.0                # s a POP3 client stays connected per cycle
SETTLE = 20.0
IO_TIMEOUT = 120.0              # a reply slower than this is a failure
FIRST_LOGINS = 8                # first logins of an account in flight at once, per protocol
SAMPLE = 10.0
KEEP_NEWEST = 5                 # steady state: a cleaner keeps this many messages per mailbox
CLEAN_EVERY = 60.0              # s between an account's cleanings (staggered over accounts)
PROBE_ACCOUNT = f"probe@{DOMAIN}"
MiB = 1024 * 1024


def imap_account(i: int) -> str:
    return f"imap{i:05d}@{DOMAIN}"


def pop3_account(i: int) -> str:
    return f"pop{i:05d}@{DOMAIN}"


def source_address(block: int, index: int) -> str:
    """127.<block>.<index // 250>.<index % 250 + 1>: a distinct loopback address per slot."""
    return f"127.{block}.{index // 250}.{index % 250 + 1}"


def message(token: str, to: str) -> bytes:
    body = "".join(f"soak line {i:03d} of message {token}\r\n" for i in range(20))
    return (f"From: <load@example.org>\r\nTo: <{to}>\r\nSubject: soak {token}\r\n"
            f"Message-ID: <{token}@soak.example.org>\r\n\r\n{body}").encode()


# ----------------------------------------------------------------------------------------------
# Load state


class Stats:
    def __init__(self) -> None:
        self.open = Counter()           # protocol -> connections open now
        self.ready = Counter()          # protocol -> logged in / greeted now
        self.peak_open = Counter()
        self.errors = Counter()         # kind -> count
        self.error_samples: list[str] = []
        self.delivered = 0              # 250 after DATA
        self.delivered_to: Counter = Counter()   # account -> acknowledged deliveries
        self.exists_seen = 0
        self.pop3_cycles = 0
        self.connects = Counter()
        self.expunged_by: Counter = Counter()    # account -> messages its cleaner expunged
        self.expunge_pushes = 0         # untagged EXPUNGE seen by the other (IDLE) sessions
        self.cleanings = 0
        self.hold_from: float | None = None     # monotonic start of the hold
        self.clean_t0 = time.monotonic()
        self.n_accounts = 1
        self.established = 0            # TCP connections established now, all protocols
        self.peak_established = 0
        self.stopping = False
        self.release: asyncio.Event | None = None   # set when IDLE sessions may log out
        self.lagging: list = []
        self.seed_counts: dict = {}
        self.until = math.inf
        self.logged_in: dict[str, asyncio.Event] = {}
        self.login_gate: dict[str, asyncio.Semaphore] = {}
        self.login_seen: set[str] = set()
        self.login_times: list[float] = []
        self.ramp_ready = 0
        self.pacing = True

    def next_clean(self, session) -> float:
        """Next cleaning time of an account: every CLEAN_EVERY s, accounts staggered."""
        phase = CLEAN_EVERY * (session.index % self.n_accounts) / self.n_accounts
        now = time.monotonic()
        k = math.floor((now - self.clean_t0 - phase) / CLEAN_EVERY) + 1
        return self.clean_t0 + phase + k * CLEAN_EVERY + 0.01

    async def begin_login(self, account: str, proto: str):
        """Before connecting: an account's first login (a full argon2id check in the daemon)
        waits for one of FIRST_LOGINS slots, as a client with a connection pool would; later
        logins go at once. Returns what end_login takes."""
        if account in self.login_seen or not self.pacing:
            return None
        self.login_seen.add(account)
        await self.login_gate[proto].acquire()
        return (account, proto, time.monotonic())

    def end_login(self, token, ok: bool) -> None:
        if token is None:
            return
        account, proto, t0 = token
        self.login_gate[proto].release()
        if ok:
            self.login_times.append(time.monotonic() - t0)
            if account in self.logged_in:
                self.logged_in[account].set()

    def fail(self, kind: str, detail: str) -> None:
        if self.stopping:
            return
        self.errors[kind] += 1
        if len(self.error_samples) < 20:
            self.error_samples.append(f"{time.strftime('%H:%M:%S')} {kind}: {detail}")

    def opened(self, proto: str) -> None:
        self.open[proto] += 1
        self.connects[proto] += 1
        self.established += 1
        self.peak_open[proto] = max(self.peak_open[proto], self.open[proto])
        self.peak_established = max(self.peak_established, self.established)

    def closed(self, proto: str) -> None:
        self.open[proto] -= 1
        self.established -= 1


class ProtocolError(Exception):
    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind


async def connect(host: str, port: int, source: str):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        sock.bind((source, 0))
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.sock_connect(sock, (host, port)), IO_TIMEOUT)
    except ConnectionRefusedError as exc:
        sock.close()
        raise ProtocolError("connect-refused", str(exc)) from None
    except (OSError, asyncio.TimeoutError) as exc:
        sock.close()
        raise ProtocolError("connect-failed", repr(exc)) from None
    return await asyncio.open_connection(sock=sock, limit=1 << 20)


async def readline(reader: asyncio.StreamReader, what: str, timeout: float = IO_TIMEOUT) -> bytes:
    try:
        line = await asyncio.wait_for(reader.readline(), timeout)
    except asyncio.TimeoutError:
        raise ProtocolError("timeout", f"no reply to {what} in {timeout} s") from None
    except (ConnectionError, OSError) as exc:
        raise ProtocolError("reset", f"{what}: {exc!r}") from None
    if not line:
        raise ProtocolError("eof", f"connection closed during {what}")
    return line


def close(writer) -> None:
    try:
        writer.close()
    except Exception:
        pass


# --- IMAP IDLE


class IdleSession:
    def __init__(self, index: int, account: str):
        self.index, self.account = index, account
        self.exists: int | None = None   # last EXISTS seen (SELECT or IDLE)
        self.idling = False
        self.cleaner = False             # the account's session that expunges (steady state)
        self.expunges = 0                # untagged EXPUNGE seen


async def imap_response(reader, tag: bytes, what: str, session: IdleSession | None = None,
                        bye: bool = False):
    while True:
        line = await readline(reader, what)
        if line.startswith(b"* BYE") and not bye:
            raise ProtocolError("imap-bye", f"{what}: {line!r}")
        m = re.match(rb"\* (\d+) EXISTS", line)
        if m and session is not None:
            session.exists = int(m.group(1))
        if session is not None and re.match(rb"\* \d+ EXPUNGE", line):
            session.exists -= 1
            session.expunges += 1
        lit = re.search(rb"\{(\d+)\}\r\n$", line)
        if lit:
            await reader.readexactly(int(lit.group(1)))
            continue
        if line.startswith(tag + b" "):
            if not line.startswith(tag + b" OK"):
                raise ProtocolError("imap-no-bad", f"{what}: {line!r}")
            return line


async def clean(reader, writer, stats: Stats, session: IdleSession, n: int) -> None:
    """Steady state: flag all but the newest KEEP_NEWEST messages \\Deleted and EXPUNGE them,
    so the mailbox stops growing; the account's other sessions get the EXPUNGE pushes."""
    if stats.hold_from is None or time.monotonic() >= stats.until or session.exists is None \
            or session.exists <= KEEP_NEWEST:
        return
    last = session.exists - KEEP_NEWEST
    tag = f"c{n}".encode()
    writer.write(tag + f" STORE 1:{last} +FLAGS.SILENT (\\Deleted)\r\n".encode())
    await imap_response(reader, tag, "STORE \\Deleted", session)
    before = session.expunges
    tag = f"e{n}".encode()
    writer.write(tag + b" EXPUNGE\r\n")
    await imap_response(reader, tag, "EXPUNGE", session)
    got = session.expunges - before
    stats.expunged_by[session.account] += got
    stats.cleanings += 1
    if got != last:
        raise ProtocolError("imap-expunge-count",
                            f"{session.account}: flagged {last}, EXPUNGE reported {got}")


async def imap_client(args, stats: Stats, session: IdleSession, source: str):
    writer = None
    release = asyncio.ensure_future(stats.release.wait())
    token = None
    try:
        if stats.pacing and session.index >= len(stats.logged_in):
            # Not before this account's first session has logged in: the daemon's login
            # cache then answers (docs/tls-and-auth.md), instead of ten argon2id checks.
            await stats.logged_in[session.account].wait()
        token = await stats.begin_login(session.account, "imap")
        reader, writer = await connect("127.0.0.1", args.imap_port, source)
        stats.opened("imap")
        greeting = await readline(reader, "greeting")
        if not greeting.startswith(b"* OK"):
            raise ProtocolError("imap-greeting", repr(greeting))
        writer.write(f'a1 LOGIN "{session.account}" "{PASSWORD}"\r\n'.encode())
        await imap_response(reader, b"a1", "LOGIN")
        stats.end_login(token, True)
        token = None
        writer.write(b"a2 SELECT INBOX\r\n")
        await imap_response(reader, b"a2", "SELECT", session)
        stats.ready["imap"] += 1
        n = 2
        try:
            while not stats.release.is_set():
                n += 1
                tag = f"a{n}".encode()
                writer.write(tag + b" IDLE\r\n")
                line = await readline(reader, "IDLE")
                if not line.startswith(b"+"):
                    raise ProtocolError("imap-idle", repr(line))
                session.idling = True
                end = time.monotonic() + args.reidle
                if session.cleaner:
                    end = min(end, stats.next_clean(session))
                while True:
                    left = end - time.monotonic()
                    if left <= 0:
                        break
                    read = asyncio.ensure_future(reader.readline())
                    done, _ = await asyncio.wait({read, release}, timeout=left,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if read not in done:
                        read.cancel()
                        break
                    try:
                        line = read.result()
                    except (ConnectionError, OSError) as exc:
                        raise ProtocolError("reset", f"IDLE: {exc!r}") from None
                    if not line:
                        raise ProtocolError("eof", "connection closed during IDLE")
                    if line.startswith(b"* BYE"):
                        raise ProtocolError("imap-bye", f"IDLE: {line!r}")
                    m = re.match(rb"\* (\d+) EXISTS", line)
                    if m:
                        session.exists = int(m.group(1))
                        stats.exists_seen += 1
                    elif re.match(rb"\* \d+ EXPUNGE", line):
                        session.exists -= 1
                        session.expunges += 1
                writer.write(b"DONE\r\n")
                await imap_response(reader, tag, "IDLE DONE", session)
                session.idling = False
                if session.cleaner and not stats.release.is_set():
                    n += 1
                    await clean(reader, writer, stats, session, n)
        finally:
            stats.ready["imap"] -= 1
        writer.write(b"z LOGOUT\r\n")
        await imap_response(reader, b"z", "LOGOUT", bye=True)
    except ProtocolError as exc:
        stats.fail(exc.kind, f"imap {session.account} from {source}: {exc}")
    except Exception as exc:  # noqa: BLE001 - every surprise is a counted failure
        stats.fail("imap-other", f"{session.account}: {exc!r}")
    finally:
        stats.end_login(token, False)
        release.cancel()
        if writer is not None:
            stats.closed("imap")
            close(writer)


# --- SMTP sessions that stay open


async def smtp_reply(reader, what: str) -> tuple[int, bytes]:
    lines = []
    while True:
        line = await readline(reader, what)
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            break
    code = int(lines[-1][:3])
    if code == 421:
        raise ProtocolError("smtp-421", f"{what}: {b''.join(lines)!r}")
    return code, b"".join(lines)


async def smtp_expect(reader, what: str, want: int) -> None:
    code, text = await smtp_reply(reader, what)
    if code != want:
        raise ProtocolError("smtp-unexpected", f"{what}: {text!r}")


async def smtp_client(args, stats: Stats, index: int, source: str, idle_accounts: list[str],
                      interval: float, rng: random.Random):
    writer = None
    try:
        reader, writer = await connect("127.0.0.1", args.smtp_port, source)
        stats.opened("smtp")
        await smtp_expect(reader, "greeting", 220)
        writer.write(b"EHLO load.example.org\r\n")
        await smtp_expect(reader, "EHLO", 250)
        stats.ready["smtp"] += 1
        try:
            await asyncio.sleep(rng.uniform(0, interval))
            seq = 0
            while time.monotonic() < stats.until:
                seq += 1
                to = rng.choice(idle_accounts)
                token = f"s{index}-{seq}"
                writer.write(b"MAIL FROM:<load@example.org>\r\n")
                await smtp_expect(reader, "MAIL", 250)
                writer.write(f"RCPT TO:<{to}>\r\n".encode())
                await smtp_expect(reader, "RCPT", 250)
                writer.write(b"DATA\r\n")
                await smtp_expect(reader, "DATA", 354)
                writer.write(message(token, to) + b".\r\n")
                await smtp_expect(reader, "end of DATA", 250)
                stats.delivered += 1
                stats.delivered_to[to] += 1
                await asyncio.sleep(max(0.0, min(interval, stats.until - time.monotonic())))
        finally:
            stats.ready["smtp"] -= 1
        writer.write(b"QUIT\r\n")
        await smtp_expect(reader, "QUIT", 221)
    except ProtocolError as exc:
        stats.fail(exc.kind, f"smtp #{index} from {source}: {exc}")
    except Exception as exc:  # noqa: BLE001
        stats.fail("smtp-other", f"#{index}: {exc!r}")
    finally:
        if writer is not None:
            stats.closed("smtp")
            close(writer)


# --- POP3 cycles


async def pop3_ok(reader, what: str, multiline: bool = False) -> bytes:
    line = await readline(reader, what)
    if not line.startswith(b"+OK"):
        raise ProtocolError("pop3-err", f"{what}: {line!r}")
    if multiline:
        while True:
            more = await readline(reader, what)
            if more == b".\r\n":
                break
    return line


async def pop3_client(args, stats: Stats, index: int, source: str, rng: random.Random):
    account = pop3_account(index)
    first = True
    while time.monotonic() < stats.until and not stats.stopping:
        writer = None
        token = None
        try:
            token = await stats.begin_login(account, "pop3")
            reader, writer = await connect("127.0.0.1", args.pop3_port, source)
            stats.opened("pop3")
            await pop3_ok(reader, "greeting")
            writer.write(f"USER {account}\r\n".encode())
            await pop3_ok(reader, "USER")
            writer.write(f"PASS {PASSWORD}\r\n".encode())
            await pop3_ok(reader, "PASS")
            stats.end_login(token, True)
            token = None
            stats.ready["pop3"] += 1
            try:
                writer.write(b"STAT\r\n")
                stat = await pop3_ok(reader, "STAT")
                if int(stat.split()[1]) < 1:
                    raise ProtocolError("pop3-empty", f"{account}: {stat!r}")
                writer.write(b"LIST\r\n")
                await pop3_ok(reader, "LIST", multiline=True)
                writer.write(b"RETR 1\r\n")
                await pop3_ok(reader, "RETR", multiline=True)
                hold = rng.uniform(0, POP3_HOLD) if first else POP3_HOLD
                first = False
                await asyncio.sleep(max(0.0, min(hold, stats.until - time.monotonic())))
            finally:
                stats.ready["pop3"] -= 1
            writer.write(b"QUIT\r\n")
            await pop3_ok(reader, "QUIT")
            # The server closes after QUIT's +OK: wait for it, so the next connection of
            # this client is not counted beside this one.
            await asyncio.wait_for(reader.read(), IO_TIMEOUT)
            stats.pop3_cycles += 1
        except ProtocolError as exc:
            stats.fail(exc.kind, f"pop3 {account} from {source}: {exc}")
            return
        except Exception as exc:  # noqa: BLE001
            stats.fail("pop3-other", f"{account}: {exc!r}")
            return
        finally:
            stats.end_login(token, False)
            if writer is not None:
                stats.closed("pop3")
                close(writer)


# ----------------------------------------------------------------------------------------------
# The probe: its own process, stdlib clients


def probe_main(args) -> int:
    out = open(args.probe_out, "a", buffering=1)
    imap = imaplib.IMAP4("127.0.0.1", args.imap_port, timeout=IO_TIMEOUT)
    imap.login(PROBE_ACCOUNT, PASSWORD)
    imap.select("INBOX")
    n = 0
    while not os.path.exists(args.probe_stop):
        started = time.monotonic()
        n += 1
        rec = {"t": time.time()}
        try:
            t0 = time.perf_counter()
            with smtplib.SMTP("127.0.0.1", args.smtp_port, timeout=IO_TIMEOUT) as smtp:
                smtp.ehlo("probe.example.org")
                smtp.sendmail("probe@example.org", [PROBE_ACCOUNT],
                              message(f"probe-{n}", PROBE_ACCOUNT))
            rec["smtp"] = time.perf_counter() - t0
        except Exception as exc:  # noqa: BLE001
            rec["smtp_error"] = repr(exc)
        try:
            imap.noop()
            t0 = time.perf_counter()
            typ, data = imap.fetch("*", "(BODY.PEEK[])")
            elapsed = time.perf_counter() - t0
            if typ != "OK" or not data or not isinstance(data[0], tuple):
                rec["fetch_error"] = f"{typ} {data!r:.200}"
            else:
                rec["fetch"] = elapsed
                rec["fetch_bytes"] = len(data[0][1])
        except Exception as exc:  # noqa: BLE001
            rec["fetch_error"] = repr(exc)
        if args.steady and n % 30 == 0:
            try:
                typ, data = imap.select("INBOX")
                total = int(data[0])
                if total > KEEP_NEWEST:
                    imap.store(f"1:{total - KEEP_NEWEST}", "+FLAGS.SILENT", r"(\Deleted)")
                    imap.expunge()
            except Exception as exc:  # noqa: BLE001
                rec["clean_error"] = repr(exc)
        out.write(json.dumps(rec) + "\n")
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    try:
        imap.logout()
    except Exception:  # noqa: BLE001
        pass
    return 0


# ----------------------------------------------------------------------------------------------
# Sampling


def proc_figures(pid: int) -> tuple[float, int, float]:
    """(VmRSS MiB, open fds, CPU seconds) of a process."""
    rss = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return rss, fds, cpu


def read_probe(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    if not s:
        return math.nan
    return s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))]


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope (y per x unit)."""
    if len(points) < 2:
        return 0.0
    mx = statistics.fmean(p[0] for p in points)
    my = statistics.fmean(p[1] for p in points)
    den = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / den if den else 0.0


# ----------------------------------------------------------------------------------------------
# Setup


class Daemon(Server):
    """icshelpers.Server.start with a longer start timeout and the start time kept: at start
    a daemon makes the mailbox of every account (src/app.rs ensure_mailboxes, with fsyncs),
    which on a fresh store beside busy disks was seen to run at ~8 accounts/s."""

    start_seconds: float = 0.0
    start_timeout: float = 60.0

    def start(self) -> "Daemon":
        t0 = time.monotonic()
        self.starts += 1
        self.stderr_path = self.tmp / f"server-{self.port}-{self.starts}.stderr"
        self.stdout_path = self.tmp / f"server-{self.port}-{self.starts}.stdout"
        env = dict(os.environ, RUST_BACKTRACE="1")
        with open(self.stderr_path, "wb") as err, open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen(
                [icsmail_bin(), self.mode, "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=self.tmp, env=env)
        try:
            wait_for_port(self.port, self.proc, timeout=self.start_timeout)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}\n--- {self.mode} stderr ---\n{self.stderr()}") from None
        self.start_seconds = time.monotonic() - t0
        return self


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(NOFILE, hard), hard))


def seed_pop3(port: int, accounts: list[str]) -> None:
    """Two messages for every POP3 account (100 recipients per transaction), so RETR 1 works."""
    with smtplib.SMTP("127.0.0.1", port, timeout=IO_TIMEOUT) as smtp:
        smtp.ehlo("seed.example.org")
        for k in range(2):
            for i in range(0, len(accounts), 100):
                chunk = accounts[i:i + 100]
                smtp.sendmail("seed@example.org", chunk, message(f"seed-{k}-{i}", chunk[0]))


async def load(args, stats: Stats, daemons: dict[str, Server], counts: dict[str, int],
               samples: list[dict], probe_path: Path) -> tuple[list[IdleSession], float, float]:
    rng = random.Random(19)
    n_imap_accounts = max(1, -(-counts["imap"] // IMAP_PER_ACCOUNT))
    idle_accounts = [imap_account(i) for i in range(n_imap_accounts)]
    interval = counts["smtp"] / args.rate if args.rate > 0 else 1e9
    t_start = time.monotonic()
    stats.until = math.inf
    stats.n_accounts = n_imap_accounts
    stats.logged_in = {a: asyncio.Event() for a in idle_accounts}
    stats.login_gate = {"imap": asyncio.Semaphore(FIRST_LOGINS),
                        "pop3": asyncio.Semaphore(FIRST_LOGINS)}
    sessions: list[IdleSession] = []
    tasks: list[asyncio.Task] = []
    stats.release = asyncio.Event()

    # One ramp order, protocols interleaved in proportion.
    order: list[tuple[str, int]] = []
    totals = sum(counts.values())
    taken = Counter()
    for k in range(totals):
        proto = max(counts, key=lambda p: counts[p] * (k + 1) / totals - taken[p])
        order.append((proto, taken[proto]))
        taken[proto] += 1

    async def ramp():
        for k, (proto, i) in enumerate(order):
            due = t_start + args.ramp * k / len(order)
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if proto == "imap":
                s = IdleSession(i, idle_accounts[i % n_imap_accounts])
                s.cleaner = args.steady and i < n_imap_accounts
                sessions.append(s)
                coro = imap_client(args, stats, s, source_address(1, i // PER_ADDRESS))
            elif proto == "smtp":
                coro = smtp_client(args, stats, i, source_address(2, i // PER_ADDRESS),
                                   idle_accounts, interval, random.Random(i))
            else:
                coro = pop3_client(args, stats, i, source_address(3, i), random.Random(i))
            tasks.append(asyncio.create_task(coro))

    async def sampler():
        last = time.monotonic()
        while True:
            await asyncio.sleep(max(0.0, SAMPLE - (time.monotonic() - last)))
            last = time.monotonic()
            sample = {"t": last - t_start, "open": dict(stats.open), "ready": dict(stats.ready),
                      "established": stats.established,
                      "delivered": stats.delivered, "exists": stats.exists_seen,
                      "errors": sum(stats.errors.values()), "pop3_cycles": stats.pop3_cycles}
            for name, server in daemons.items():
                if not server.alive():
                    sample[name] = None
                    continue
                try:
                    sample[name] = proc_figures(server.proc.pid)
                except OSError:
                    sample[name] = None
            probes = [p for p in read_probe(probe_path) if p["t"] >= time.time() - SAMPLE]
            sample["probe_smtp"] = [p["smtp"] for p in probes if "smtp" in p]
            sample["probe_fetch"] = [p["fetch"] for p in probes if "fetch" in p]
            samples.append(sample)
            print_sample(sample, daemons)
            if time.monotonic() >= stats.until:
                return

    sampler_task = asyncio.create_task(sampler())
    await ramp()
    # The hold starts when every connection is up (or at the ramp's deadline, and then the
    # target was not reached).
    target = sum(counts.values())
    deadline = t_start + max(3 * args.ramp, 600.0)
    while sum(stats.ready.values()) < target and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    hold_from = time.monotonic()
    stats.ramp_ready = sum(stats.ready.values())
    print(f"ramp done in {hold_from - t_start:.0f} s: {stats.ramp_ready} of {target} "
          f"connections logged in / greeted; first logins of {len(stats.login_times)} "
          f"accounts took p50 {pct(stats.login_times, 50):.1f} s, max "
          f"{max(stats.login_times, default=0):.1f} s each", flush=True)
    stats.until = hold_from + args.duration
    stats.hold_from = hold_from
    stats.expunges_at_hold = sum(s.expunges for s in sessions)
    await sampler_task
    stats.stopping_at = time.monotonic()
    # Mail has stopped (SMTP sessions send nothing after `until`); IDLE sessions are still
    # idling. Let their views settle before they log out.
    settle_deadline = time.monotonic() + SETTLE
    while time.monotonic() < settle_deadline:
        if not lagging(sessions, stats):
            break
        await asyncio.sleep(0.5)
    settle_time = time.monotonic() - stats.stopping_at
    lag = lagging(sessions, stats)
    stats.lagging = lag
    stats.idling_at_end = sum(1 for s in sessions if s.idling)
    stats.release.set()
    await asyncio.wait(tasks, timeout=IO_TIMEOUT)
    stats.stopping = True
    for t in tasks:
        t.cancel()
    return sessions, settle_time, hold_from - t_start


def lagging(sessions: list[IdleSession], stats: Stats) -> list[IdleSession]:
    return [s for s in sessions if s.idling and s.exists is not None
            and s.exists != true_count(s.account, stats)]


def true_count(account: str, stats: Stats) -> int:
    return (stats.seed_counts.get(account, 0) + stats.delivered_to[account]
            - stats.expunged_by[account])


def print_sample(s: dict, daemons) -> None:
    parts = [f"t={s['t']:6.0f}s"]
    for name in daemons:
        fig = s.get(name)
        parts.append(f"{name} " + ("DEAD" if fig is None else f"{fig[0]:.0f}MiB/{fig[1]}fd"))
    o = s["open"]
    parts.append(f"conn imap={o.get('imap', 0)} smtp={o.get('smtp', 0)} pop3={o.get('pop3', 0)}")
    parts.append(f"dlv={s['delivered']} exists={s['exists']} pop3cyc={s['pop3_cycles']} "
                 f"err={s['errors']}")
    if s["probe_smtp"]:
        parts.append(f"probe smtp~{statistics.median(s['probe_smtp']) * 1000:.0f}ms")
    if s["probe_fetch"]:
        parts.append(f"fetch~{statistics.median(s['probe_fetch']) * 1000:.1f}ms")
    print(" | ".join(parts), flush=True)


# ----------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=1200.0,
                    help="seconds of hold after the ramp (default 1200)")
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--ramp", type=float, default=None,
                    help="seconds to open every connection (default connections/100)")
    ap.add_argument("--rate", type=float, default=25.0, help="messages/s to IDLE accounts")
    ap.add_argument("--reidle", type=float, default=1200.0)
    ap.add_argument("--rss-bound", type=float, default=2048.0,
                    help="MiB a daemon's RSS may never pass (default 2048)")
    ap.add_argument("--rss-slope", type=float, default=None,
                    help="MiB/min of second-half RSS growth counted as flat (default "
                         "max(1, 0.5 %% of the median RSS))")
    ap.add_argument("--growing", dest="steady", action="store_false",
                    help="no cleaner: the IDLE mailboxes grow all the run (the old mode)")
    ap.add_argument("--no-login-pacing", action="store_true",
                    help="every client logs in at once (shows the cold login-cache herd)")
    ap.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--probe-out", help=argparse.SUPPRESS)
    ap.add_argument("--probe-stop", help=argparse.SUPPRESS)
    ap.add_argument("--smtp-port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--imap-port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--pop3-port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        return probe_main(args)
    if args.ramp is None:
        args.ramp = max(10.0, args.connections / 100)

    raise_nofile()
    n = args.connections
    counts = {"imap": n * 70 // 100, "smtp": n * 21 // 100}
    counts["pop3"] = n - counts["imap"] - counts["smtp"]
    if counts["pop3"] > 950:
        raise SystemExit("POP3's share passes 950 (the daemon's MAX_CONNECTIONS is 1000)")
    n_imap_accounts = max(1, -(-counts["imap"] // IMAP_PER_ACCOUNT))

    tmp = Path(tempfile.mkdtemp(prefix="icsmail-soak-"))
    bin_path = icsmail_bin()
    hashed = subprocess.run([bin_path, "hash-password"], input=PASSWORD + "\n", text=True,
                            capture_output=True, check=True).stdout.split()[-1]
    args.smtp_port, args.imap_port, args.pop3_port = free_port(), free_port(), free_port()
    accounts = {imap_account(i): {"hashedPassword": hashed} for i in range(n_imap_accounts)}
    accounts.update({pop3_account(i): {"hashedPassword": hashed}
                     for i in range(counts["pop3"])})
    accounts[PROBE_ACCOUNT] = {"hashedPassword": hashed}
    config = deep_merge(base_config(tmp, args.smtp_port, hashed), {
        "smtp": {"limits": {"maxConnections": 2 * counts["smtp"] + 100,
                            "connectionsPerIp": 50}},
        "imap": {"port": args.imap_port},
        "pop3": {"port": args.pop3_port},
    })
    config["accounts"] = accounts
    config_path = write_config(tmp / "config.json", config)
    daemons = {
        "smtpd": Daemon(tmp, args.smtp_port, config, config_path, "smtpd"),
        "imapd": Daemon(tmp, args.imap_port, config, config_path, "imapd"),
        "pop3d": Daemon(tmp, args.pop3_port, config, config_path, "pop3d"),
    }
    probe_path, probe_stop = tmp / "probe.jsonl", tmp / "probe.stop"
    probe = None
    stats = Stats()
    stats.pacing = not args.no_login_pacing
    samples: list[dict] = []
    problems: list[str] = []
    print(f"soak: {n} connections (imap {counts['imap']} on {n_imap_accounts} accounts, "
          f"smtp {counts['smtp']}, pop3 {counts['pop3']} accounts), ramp {args.ramp:.0f} s, "
          f"hold {args.duration:.0f} s, {args.rate} msg/s, RLIMIT_NOFILE "
          f"{resource.getrlimit(resource.RLIMIT_NOFILE)}, binary {bin_path}", flush=True)
    try:
        for name, server in daemons.items():
            server.start_timeout = 60.0 + 0.5 * len(accounts)
            server.start()
            print(f"{name} pid {server.proc.pid} listening after {server.start_seconds:.1f} s",
                  flush=True)
        seed_pop3(args.smtp_port, [pop3_account(i) for i in range(counts["pop3"])])
        probe = subprocess.Popen([sys.executable, __file__, "--probe", "--probe-out",
                                  str(probe_path), "--probe-stop", str(probe_stop),
                                  "--smtp-port", str(args.smtp_port), "--imap-port",
                                  str(args.imap_port)] + ([] if args.steady else ["--growing"]), stderr=open(tmp / "probe.err", "wb"))
        sessions, settle_time, ramp_time = asyncio.run(
            load(args, stats, daemons, counts, samples, probe_path))
        probe_stop.touch()
        probe.wait(IO_TIMEOUT)
        problems += report(args, stats, daemons, counts, samples, probe_path, sessions,
                           settle_time, ramp_time, tmp)
    except BaseException as exc:
        problems.append(f"the run stopped: {exc!r}")
        raise
    finally:
        probe_stop.touch()
        if probe is not None and probe.poll() is None:
            probe.kill()
        for name, server in daemons.items():
            died = (server.proc is not None and server.proc.poll() is not None
                    and not server.expect_exit)
            code = server.stop()
            if died:
                problems.append(f"{name} exited by itself (code {code})")
            err = server.stderr()
            if "panicked" in err:
                problems.append(f"{name} panicked: see {server.stderr_path}")
        if problems:
            print("\nFAIL:\n  " + "\n  ".join(problems))
        if os.environ.get("KEEP") == "1" or problems:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if problems else 0


def report(args, stats: Stats, daemons, counts, samples, probe_path, sessions, settle_time,
           ramp_time, tmp) -> list[str]:
    problems = []
    print("\n== soak summary ==")
    total_peak = stats.peak_established
    print(f"connections: peak established at once {total_peak} (target {args.connections}); "
          f"per protocol peaks {dict(stats.peak_open)}; connects made {dict(stats.connects)}; "
          f"POP3 cycles {stats.pop3_cycles}")
    ready_peak = max((sum(s["ready"].values()) for s in samples), default=0)
    in_hold = [s["established"] for s in samples
               if ramp_time <= s["t"] <= ramp_time + args.duration]
    print(f"at the 10 s samples: peak logged in / greeted {ready_peak}; established during "
          f"the hold min {min(in_hold, default=0)} max {max(in_hold, default=0)}")
    if total_peak < args.connections:
        problems.append(f"target not reached: peak {total_peak} of {args.connections}")
    nerr = sum(stats.errors.values())
    print(f"failed legitimate connections: {nerr} {dict(stats.errors)}")
    for line in stats.error_samples:
        print(f"  {line}")
    if nerr:
        problems.append(f"{nerr} legitimate connections failed: {dict(stats.errors)}")

    probes = read_probe(probe_path)
    perr = [p for p in probes if "smtp_error" in p or "fetch_error" in p or "clean_error" in p]
    for key, label in (("smtp", "SMTP transaction (connect..QUIT)"),
                       ("fetch", "IMAP FETCH * BODY.PEEK[]")):
        vals = [p[key] * 1000 for p in probes if key in p]
        if vals:
            print(f"probe {label}: n={len(vals)} p50 {pct(vals, 50):.1f} ms, "
                  f"p90 {pct(vals, 90):.1f} ms, p99 {pct(vals, 99):.1f} ms, "
                  f"max {max(vals):.1f} ms")
        else:
            problems.append(f"probe {label}: no measurement")
    if perr:
        problems.append(f"{len(perr)} probe failures, first: {perr[0]}")
        print(f"probe failures: {len(perr)}: {perr[:3]}")

    hold = [s for s in samples if s["t"] >= ramp_time]
    half = [s for s in hold
            if ramp_time + args.duration / 2 <= s["t"] <= ramp_time + args.duration]
    for name in daemons:
        pts = [(s["t"], s[name][0]) for s in samples if s.get(name)]
        if not pts:
            problems.append(f"{name}: no RSS sample")
            continue
        rss = [p[1] for p in pts]
        med = statistics.median(rss)
        hp = [(s["t"] / 60, s[name][0]) for s in half if s.get(name)]
        sl = slope(hp)
        flat = args.rss_slope if args.rss_slope is not None else max(1.0, 0.005 * med)
        fds = max(s[name][1] for s in samples if s.get(name))
        cpu = [s[name][2] for s in samples if s.get(name)]
        print(f"{name}: RSS MiB first {rss[0]:.1f} median {med:.1f} last {rss[-1]:.1f} "
              f"max {max(rss):.1f}; second-half slope {sl:+.2f} MiB/min over "
              f"{len(hp)} samples (flat bound {flat:.2f}); peak fds {fds}; "
              f"CPU {cpu[-1] - cpu[0]:.0f} s over the run")
        if max(rss) > args.rss_bound:
            problems.append(f"{name}: RSS {max(rss):.0f} MiB passed --rss-bound {args.rss_bound}")
        if sl > flat:
            if args.duration >= 600:
                problems.append(f"{name}: RSS grows {sl:.2f} MiB/min in the second half "
                                f"(bound {flat:.2f})")
            else:
                print(f"  ({name}: slope above the flat bound, but a hold under 600 s is "
                      f"too short to judge)")

    idle_delivered = sum(stats.delivered_to.values())
    expected_exists = sum(stats.delivered_to[s.account] for s in sessions)
    print(f"mail: {stats.delivered} messages acknowledged (250) to IDLE accounts over "
          f"the ramp and the {args.duration:.0f} s hold; untagged EXISTS received {stats.exists_seen} "
          f"(each delivery concerns {IMAP_PER_ACCOUNT} sessions: up to {expected_exists} "
          f"if none were coalesced)")
    lag = stats.lagging
    print(f"IDLE views after mail stopped: of {stats.idling_at_end} sessions in IDLE "
          f"({len(sessions)} started), {stats.idling_at_end - len(lag)} show their account's "
          f"true count, settled in {settle_time:.1f} s")
    if lag:
        s = lag[0]
        problems.append(f"{len(lag)} IDLE sessions lag after {SETTLE} s, e.g. {s.account} "
                        f"shows {s.exists}, has {true_count(s.account, stats)}")
    if args.steady:
        expunged = sum(stats.expunged_by.values())
        others = [s for s in sessions if not s.cleaner]
        pushes = sum(s.expunges for s in others)
        want = sum(stats.expunged_by[s.account] for s in others)
        sizes = [true_count(a, stats) for a in stats.delivered_to] or [0]
        print(f"steady state: {stats.cleanings} cleanings (STORE +FLAGS.SILENT \\Deleted, "
              f"EXPUNGE; keep newest {KEEP_NEWEST}, every {CLEAN_EVERY:.0f} s per account) "
              f"expunged {expunged} messages; the other IDLE sessions received {pushes} "
              f"EXPUNGE pushes of {want} due; mailbox sizes at the end max {max(sizes)}, "
              f"mean {statistics.fmean(sizes):.1f}")
        if expunged == 0 and args.rate > 0:
            problems.append("steady state: no message was expunged")
        if pushes != want:
            problems.append(f"steady state: the other sessions received {pushes} EXPUNGE "
                            f"pushes, {want} were due")
    if idle_delivered == 0 and args.rate > 0:
        problems.append("no message was delivered")
    (tmp / "samples.json").write_text(json.dumps(samples))
    return problems


if __name__ == "__main__":
    sys.exit(main())
