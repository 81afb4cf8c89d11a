#!/usr/bin/env python3
"""Fault tests of issue 19, each with a ledger of every acknowledged message: a full disk, DNS
down, a peer that stalls mid-DATA, slow-loris clients on every port. (kill -9 under load is
bench/reliability/kill9.py.)

- disk:  storage.path, then stateDir (the queue), on a small tmpfs filled by a filler file;
         SMTP deliveries until the disk is full (only 250 or 4xx allowed), IMAP APPEND, POP3
         DELE + QUIT and queued submission on the full disk; then the filler is deleted and
         delivery must recover without a restart. Every acknowledged token must be on disk,
         intact, once.
- dns:   messages to a remote domain while the configured nameserver does not answer, then
         while one answers SERVFAIL (a small UDP responder here): deferred with a 4xx reason,
         no bounce. Then dnsmasq serves the MX of an aiosmtpd peer and a flush delivers all.
- stall: peers that stop reading in the middle of DATA, and that never answer the final dot;
         the queue's client must give up on its own (fixed timeouts of src/queue/client/
         conn.rs), defer, and deliver on a later pass; a healthy destination is served
         meanwhile.
- loris: hundreds of connections on SMTP, submission, SMTPS, IMAP, IMAPS, POP3, POP3S, LDAP,
         LDAPS that stay silent or send one byte every DRIP seconds (command line, TLS
         handshake, IMAP literal, SMTP DATA, LDAP BER); the time the server cuts each is
         measured while a legitimate client completes a session on every port.

Exit status 1 on a lost acknowledged message, a 5xx where a 4xx is due, a bounce of a message
that has not expired, a connection not cut well past its timeout, a refused legitimate client,
or a server that died. Figures are printed, never judged by time.

Usage (root, the tests' venv): faults.py [--only disk,dns,stall,loris] [--loris-per-case N]
  KEEP=1 keeps the temp dirs. Uses 127.0.0.60-127.0.0.79 (peers on port 25) and
  127.0.0.100-127.0.0.199 (loris sources).
"""

from __future__ import annotations

import argparse
import contextlib
import imaplib
import json
import os
import poplib
import re
import shutil
import smtplib
import socket
import socketserver
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from icshelpers import (ALICE, BOB, DOMAIN, PASSWORD, Server, all_message_files,  # noqa: E402
                        base_config, client_hello, client_tls_context, deep_merge, free_port,
                        icsmail_bin, make_cert, make_message, port_is_free, tls_overrides,
                        wait_for_port, write_config)
from queuepeers import Dnsmasq, Peer, envelopes, queue_cli, queue_dir  # noqa: E402

KEEP = os.environ.get("KEEP") == "1"
FAILURES: list[str] = []


def fail(what: str) -> None:
    FAILURES.append(what)
    print(f"FAIL: {what}", flush=True)


def table(title: str, header: list[str], rows: list[list]) -> None:
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    print(flush=True)


def password_hash() -> str:
    out = subprocess.run([icsmail_bin(), "hash-password"], input=PASSWORD + "\n",
                         capture_output=True, text=True, timeout=60, check=True)
    return [l for l in out.stdout.splitlines() if l.strip()][-1].strip()


class Run:
    """Temp dir, servers, mounts and peers of one fault; cleaned up in reverse order."""

    def __init__(self, name: str):
        self.tmp = Path(tempfile.mkdtemp(prefix=f"ics-faults-{name}-", dir="/var/tmp"))
        os.chmod(self.tmp, 0o755)
        self.cleanups: list = []
        self.servers: list[Server] = []

    def on_exit(self, fn) -> None:
        self.cleanups.append(fn)

    def mount_tmpfs(self, path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                        str(path)], check=True)
        self.on_exit(lambda: subprocess.run(["umount", "-l", str(path)]))
        return path

    def server(self, config: dict, mode: str = "serve", extra_ports: list[int] = ()) -> Server:
        path = write_config(self.tmp / "config.json", config)
        server = Server(tmp=self.tmp, port=config["smtp"]["port"], config=config,
                        config_path=path, mode=mode)
        self.servers.append(server)
        self.on_exit(server.stop)
        server.start()
        for port in extra_ports:
            wait_for_port(port, server.proc)
        return server

    def check_servers(self) -> None:
        for server in self.servers:
            if server.proc is not None and server.proc.poll() is not None \
                    and not server.expect_exit:
                fail(f"server died on its own (exit {server.proc.returncode}):\n"
                     + server.stderr()[-4000:])
            log = server.stderr()
            if "panicked" in log:
                fail("server log holds a panic:\n" + log[log.index("panicked") - 200:][:2000])

    def close(self) -> None:
        self.check_servers()
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as exc:  # cleanup goes on
                print(f"cleanup: {exc}", file=sys.stderr)
        if KEEP:
            print(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def config_for(run: Run, pw: str, extra: dict | None = None) -> dict:
    config = base_config(run.tmp, free_port(), pw)
    config["smtp"]["submissionPort"] = free_port()
    return deep_merge(config, extra)


def send_local(port: int, token: str, size: int, to: str = ALICE) -> tuple[int, str]:
    """One message to a local mailbox over port 25; the final reply (code, text)."""
    body = ("x" * 76 + "\n") * (size // 77)
    message = make_message(token, to=to, body=body)
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
            client.ehlo("client.example.org")
            code, text = client.mail("sender@example.org")
            if code != 250:
                return code, text.decode(errors="replace")
            code, text = client.rcpt(to)
            if code != 250:
                return code, text.decode(errors="replace")
            code, text = client.data(message)
            return code, text.decode(errors="replace")
    except smtplib.SMTPServerDisconnected as exc:
        return 0, f"disconnected: {exc}"


def submit(port: int, token: str, to: str, size: int = 2000) -> tuple[int, str]:
    """One authenticated submission (port 25 with AUTH, so remote recipients are queued)."""
    body = ("q" * 76 + "\n") * max(1, size // 77)
    message = make_message(token, sender=ALICE, to=to, body=body)
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
            client.ehlo("client.example.org")
            client.login(ALICE, PASSWORD)
            code, text = client.mail(ALICE)
            if code != 250:
                return code, text.decode(errors="replace")
            code, text = client.rcpt(to)
            if code != 250:
                return code, text.decode(errors="replace")
            code, text = client.data(message)
            return code, text.decode(errors="replace")
    except smtplib.SMTPServerDisconnected as exc:
        return 0, f"disconnected: {exc}"


def ledger_check(files: list[Path], acked: dict[str, bytes], label: str) -> tuple[int, int]:
    """Every acknowledged token in exactly one file whose content ends with its message.
    Returns (lost, duplicated); reports truncated or foreign files."""
    found: dict[str, list[bytes]] = {t: [] for t in acked}
    pattern = re.compile(rb"Message-ID: <([A-Za-z0-9.-]+)@client\.example\.org>")
    for path in files:
        data = path.read_bytes()
        match = pattern.search(data)
        token = match.group(1).decode() if match else None
        if token in found:
            found[token].append(data)
    lost = dup = 0
    for token, datas in found.items():
        original = acked[token].replace(b"\r\n", b"\n")
        intact = [d for d in datas if d.replace(b"\r\n", b"\n").endswith(original)]
        if not intact:
            lost += 1
            fail(f"{label}: acknowledged {token} not on disk intact ({len(datas)} partial copies)")
        elif len(datas) > 1:
            dup += 1
    return lost, dup


# ----------------------------------------------------------------------------------------------
# disk full

def fault_disk(pw: str) -> None:
    run = Run("disk")
    try:
        _disk_mail(run, pw)
    finally:
        run.close()
    run = Run("diskq")
    try:
        _disk_queue(run, pw)
    finally:
        run.close()


def fill(mount: Path, leave: int) -> Path:
    """A filler file taking all but `leave` bytes of the file system."""
    filler = mount / "filler"
    free = shutil.disk_usage(mount).free
    with open(filler, "wb") as out:
        remaining = max(0, free - leave)
        chunk = b"\0" * (1 << 20)
        while remaining > 0:
            n = min(remaining, len(chunk))
            try:
                out.write(chunk[:n])
                out.flush()
            except OSError:
                break
            remaining -= n
    return filler


def _disk_mail(run: Run, pw: str) -> None:
    mail = run.mount_tmpfs(run.tmp / "mail", "8m")
    config = config_for(run, pw)
    server = run.server(config, extra_ports=[config["imap"]["port"], config["pop3"]["port"]])
    port = server.port
    acked: dict[str, bytes] = {}
    replies: Counter = Counter()
    texts: dict[int, str] = {}
    size = 8192
    # Two messages for bob, for POP3 DELE on the full disk, and one to warm alice's mailbox.
    for i in range(2):
        code, text = send_local(port, f"bobpop{i}", 1000, to=BOB)
        assert code == 250, (code, text)
    code, text = send_local(port, "warm", size)
    assert code == 250, (code, text)
    acked["warm"] = make_message("warm", to=ALICE, body=("x" * 76 + "\n") * (size // 77))
    pop = poplib.POP3("127.0.0.1", config["pop3"]["port"], timeout=60)
    pop.user(BOB)
    pop.pass_(PASSWORD)
    filler = fill(mail, 96 * 1024)
    free_before = shutil.disk_usage(mail).free
    temp_streak = 0
    sent = 0
    while temp_streak < 5 and sent < 400:
        token = f"disk{sent}"
        code, text = send_local(port, token, size)
        sent += 1
        replies[code] += 1
        texts.setdefault(code, text)
        if code == 250:
            acked[token] = make_message(token, to=ALICE, body=("x" * 76 + "\n") * (size // 77))
            temp_streak = 0
        elif 400 <= code < 500:
            temp_streak += 1
        else:
            fail(f"disk full: SMTP DATA got {code} {text!r} (a 4xx is due)")
            temp_streak += 1
    # IMAP APPEND on the full disk.
    imap_port = config["imap"]["port"]
    append_msg = make_message("append-full", to=ALICE, body="y" * 200_000 + "\n")
    with imaplib.IMAP4("127.0.0.1", imap_port, timeout=60) as imap:
        imap.login(ALICE, PASSWORD)
        try:
            typ, data = imap.append("INBOX", None, None, append_msg)
            append_full = f"{typ} {data[0].decode(errors='replace') if data else ''}"
        except imaplib.IMAP4.error as exc:
            append_full = f"BAD/error {exc}"
        if typ == "OK":
            acked["append-full"] = append_msg
        elif typ != "NO":
            fail(f"disk full: IMAP APPEND answered {append_full}")
        imap.logout()
    # POP3 on the full disk (bob): DELE + QUIT in a session that logged in before the disk
    # filled, and a fresh login on the full disk.
    try:
        count = pop.stat()[0]
        dele = pop.dele(1).decode(errors="replace")
        quit_reply = pop.quit().decode(errors="replace")
    except poplib.error_proto as exc:
        count, dele, quit_reply = locals().get("count", 2), locals().get("dele", "-"), f"{exc}"
    bob_left = len(server.new_files(BOB)) + len(server.cur_files(BOB))
    try:
        fresh = poplib.POP3("127.0.0.1", config["pop3"]["port"], timeout=60)
        fresh.user(BOB)
        fresh_login = fresh.pass_(PASSWORD).decode(errors="replace")
        fresh.quit()
    except poplib.error_proto as exc:
        fresh_login = f"{exc}"
    pop_outcome = (f"{count} messages; DELE: {dele}; QUIT: {quit_reply}; left on disk: "
                   f"{bob_left}; a new login on the full disk: {fresh_login}")
    if quit_reply.startswith("+OK") and bob_left != count - 1:
        fail(f"disk full: POP3 QUIT said +OK but {bob_left} of {count} messages are left")
    if not quit_reply.startswith("+OK") and bob_left != count:
        fail(f"disk full: POP3 QUIT failed but {bob_left} of {count} messages are left")
    if fresh_login.startswith("-ERR") and "[SYS/TEMP]" not in fresh_login \
            and "[IN-USE]" not in fresh_login:
        fail(f"disk full: POP3 login answered a permanent-looking {fresh_login!r}")
    # Recovery without a restart.
    filler.unlink()
    t0 = time.monotonic()
    recovered = None
    for i in range(50):
        code, text = send_local(port, f"after{i}", size)
        if code == 250:
            acked[f"after{i}"] = make_message(f"after{i}", to=ALICE,
                                              body=("x" * 76 + "\n") * (size // 77))
            recovered = recovered or round(time.monotonic() - t0, 2)
        else:
            fail(f"after the space came back: {code} {text!r}")
    with imaplib.IMAP4("127.0.0.1", imap_port, timeout=60) as imap:
        imap.login(ALICE, PASSWORD)
        typ, data = imap.append("INBOX", None, None,
                                make_message("append-after", to=ALICE, body="z\n"))
        append_after = f"{typ} {data[0].decode(errors='replace') if data else ''}"
        if typ == "OK":
            acked["append-after"] = make_message("append-after", to=ALICE, body="z\n")
        else:
            fail(f"IMAP APPEND after the space came back: {append_after}")
        typ, data = imap.select("INBOX")
        imap_count = int(data[0])
        imap.logout()
    files = [p for p in all_message_files(mail / DOMAIN / "alice") if p.parent.name != "tmp"]
    lost, dup = ledger_check(files, acked, "disk full (mailbox)")
    stray = [p for p in files if not any(f"<{t}@".encode() in p.read_bytes() for t in acked)]
    for p in stray:
        fail(f"disk full: a message file no 250 acknowledged: {p} ({p.stat().st_size} bytes)")
    tmp_left = list((mail / DOMAIN / "alice" / "tmp").glob("*"))
    run.check_servers()
    codes = ", ".join(f"{c}: {n}" for c, n in sorted(replies.items()))
    table("disk full: storage.path on an 8 MiB tmpfs, filled to 96 KiB free; 8 KiB messages",
          ["figure", "value"],
          [["free before the run", f"{free_before} B"],
           ["SMTP transactions on the full disk", sent],
           ["replies by code", codes],
           ["first reply per code", "; ".join(f"{c} {t!r}" for c, t in sorted(texts.items()))],
           ["acknowledged (incl. 1 before, 50 after, APPENDs)", len(acked)],
           ["lost", lost], ["duplicated", dup], ["files no 250 acknowledged", len(stray)],
           ["left in tmp/", len(tmp_left)],
           ["IMAP APPEND (200 KB) on the full disk", append_full],
           ["POP3 on the full disk", pop_outcome],
           ["after the filler was deleted", f"first 250 after {recovered} s, "
            f"{sum(1 for t in acked if t.startswith('after'))}/50 accepted; APPEND {append_after}"],
           ["IMAP SELECT count at the end", imap_count]])


def _disk_queue(run: Run, pw: str) -> None:
    state = run.mount_tmpfs(run.tmp / "state", "8m")
    dead_dns = free_port()
    config = config_for(run, pw, {"dns": {"nameservers": [f"127.0.0.1:{dead_dns}"]},
                                  "queue": {"interval": 60, "delayMin": 60, "delayMax": 60}})
    server = run.server(config)
    acked: dict[str, bytes] = {}
    ids: dict[str, str] = {}
    replies: Counter = Counter()
    texts: dict[int, str] = {}
    size = 8192
    filler = fill(state, 96 * 1024)
    sent, streak = 0, 0
    while streak < 5 and sent < 400:
        token = f"q{sent}"
        code, text = submit(server.port, token, "bob@remote.test", size)
        sent += 1
        replies[code] += 1
        texts.setdefault(code, text)
        if code == 250:
            acked[token] = make_message(token, sender=ALICE, to="bob@remote.test",
                                        body=("q" * 76 + "\n") * (size // 77))
            match = re.search(r"queued as (\S+)", text)
            ids[token] = match.group(1) if match else "?"
            streak = 0
        elif 400 <= code < 500:
            streak += 1
        else:
            fail(f"queue on a full stateDir: {code} {text!r} (a 4xx is due)")
            streak += 1
    filler.unlink()
    after = 0
    for i in range(20):
        token = f"qa{i}"
        code, text = submit(server.port, token, "bob@remote.test", size)
        if code == 250:
            after += 1
            acked[token] = make_message(token, sender=ALICE, to="bob@remote.test",
                                        body=("q" * 76 + "\n") * (size // 77))
        else:
            fail(f"queue after the space came back: {code} {text!r}")
    time.sleep(2)
    qdir = queue_dir(server)
    emls = sorted(qdir.glob("*.eml"))
    with_env = [p for p in emls if p.with_suffix(".json").exists()]
    lost, dup = ledger_check(with_env, acked, "full stateDir (queue)")
    orphans = len(emls) - len(with_env)
    states = Counter(r["status"] for e in envelopes(server) for r in e["recipients"])
    run.check_servers()
    table("disk full: stateDir (the queue) on an 8 MiB tmpfs, filled to 96 KiB free; "
          "8 KiB submissions to a remote domain (DNS down, so they stay queued)",
          ["figure", "value"],
          [["submissions on the full disk", sent],
           ["replies by code", ", ".join(f"{c}: {n}" for c, n in sorted(replies.items()))],
           ["first reply per code", "; ".join(f"{c} {t!r}" for c, t in sorted(texts.items()))],
           ["acknowledged (incl. 20 after)", len(acked)],
           ["lost (no .eml+.json with the intact message)", lost], ["duplicated", dup],
           ["message files without envelope", orphans],
           ["recipient states in the queue", dict(states)],
           ["after the filler was deleted", f"{after}/20 accepted"]])


# ----------------------------------------------------------------------------------------------
# DNS down

class ServfailDNS:
    """A UDP responder answering SERVFAIL to every query (a fault injector)."""

    def __init__(self):
        self.port = free_port()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", self.port))
        self.queries = 0
        self.stop_flag = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.stop_flag:
            try:
                data, addr = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(data) < 12:
                continue
            self.queries += 1
            flags = 0x8000 | (data[2] & 0x79) << 8 | 0x80 | 2   # QR, opcode/RD, RA, SERVFAIL
            self.sock.sendto(data[:2] + flags.to_bytes(2, "big") + data[4:6] + b"\0" * 6
                             + data[12:], addr)

    def stop(self):
        self.stop_flag = True
        self.sock.close()


def peer_ip_free(ip: str) -> None:
    if not port_is_free(25, ip):
        raise SystemExit(f"port 25 on {ip} is taken: this fault needs it")


def wait_unlocked(server: Server, timeout: float = 120.0) -> float:
    """Waits until no runner (the daemon's at-once task, a CLI pass) holds a queued message's
    lock (flock on <id>.eml, docs/queue.md); the seconds waited."""
    import fcntl
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        busy = False
        for path in queue_dir(server).glob("*.eml"):
            try:
                with open(path, "rb") as f:
                    try:
                        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        fcntl.flock(f, fcntl.LOCK_UN)
                    except BlockingIOError:
                        busy = True
                        break
            except FileNotFoundError:
                continue
        if not busy:
            return time.monotonic() - t0
        time.sleep(0.2)
    fail(f"queue messages still locked by a runner after {timeout} s")
    return timeout


def dsns(server: Server) -> list[bytes]:
    return [m for m in server.new_messages(ALICE) if b"multipart/report" in m]


def fault_dns(pw: str) -> None:
    run = Run("dns")
    try:
        _dns(run, pw)
    finally:
        run.close()


def _dns(run: Run, pw: str) -> None:
    peer_addr = "127.0.0.61"
    peer_ip_free(peer_addr)
    dead = free_port()
    servfail = ServfailDNS()
    run.on_exit(servfail.stop)
    config = config_for(run, pw, {"dns": {"nameservers": [f"127.0.0.1:{dead}"]},
                                  "queue": {"interval": 60, "delayMin": 60, "delayMax": 60,
                                            "maxLifetime": 600}})
    server = run.server(config, mode="smtpd")
    bin_path = icsmail_bin()
    acked: dict[str, bytes] = {}
    rows = []
    for variant, ns in (("no answer", f"127.0.0.1:{dead}"),
                        ("SERVFAIL", f"127.0.0.1:{servfail.port}")):
        config["dns"]["nameservers"] = [ns]
        write_config(server.config_path, config)
        time.sleep(1.5)  # the daemon notices the change (settings/watch.rs, every second)
        tokens = [f"dns{variant[0]}{i}" for i in range(10)]
        replies = Counter()
        for token in tokens:
            code, text = submit(server.port, token, f"bob@remote.test")
            replies[code] += 1
            if code == 250:
                acked[token] = make_message(token, sender=ALICE, to="bob@remote.test",
                                            body=("q" * 76 + "\n") * 25)
            else:
                fail(f"DNS {variant}: submission got {code} {text!r}")
        time.sleep(1)
        daemon_wait = round(wait_unlocked(server), 1)
        passes = []
        for _ in range(3):
            t0 = time.monotonic()
            result = queue_cli(bin_path, server, "flush")
            passes.append(round(time.monotonic() - t0, 1))
            if result.returncode != 0:
                fail(f"DNS {variant}: queue flush exit {result.returncode}: {result.stderr[-2000:]}")
        mine = [e for e in envelopes(server)
                if any(t in (queue_dir(server) / f"{e['id']}.eml").read_text(errors="replace")
                       for t in tokens)]
        states = Counter(r["status"] for e in mine for r in e["recipients"])
        errors = Counter(re.sub(r"\d+\.\d+\.\d+\.\d+:\d+", "ADDR", (e.get("lastError") or "")
                                )[:90] for e in mine)
        for e in mine:
            for r in e["recipients"]:
                if r["status"] != "deferred":
                    fail(f"DNS {variant}: {e['id']} recipient {r['status']}: {r['reply']}")
            if not (e.get("lastError") or "").startswith("4"):
                fail(f"DNS {variant}: {e['id']} lastError is not temporary: {e.get('lastError')}")
        if len(mine) != len(tokens):
            fail(f"DNS {variant}: {len(mine)} of {len(tokens)} messages in the queue")
        attempts = Counter(e["attempts"] for e in mine)
        rows.append([variant, len(tokens), dict(replies), dict(states), dict(attempts),
                     len(dsns(server)), daemon_wait, ", ".join(str(p) for p in passes),
                     "; ".join(errors)])
    # DNS comes back: dnsmasq with the MX of a healthy peer.
    peer = Peer(peer_addr, 25)
    run.on_exit(peer.stop)
    dns = Dnsmasq(run.tmp, {"remote.test": [(10, "mx.remote.test")]},
                  {"mx.remote.test": peer_addr})
    run.on_exit(dns.stop)
    config["dns"]["nameservers"] = [dns.nameserver]
    write_config(server.config_path, config)
    time.sleep(1.5)
    wait_unlocked(server)
    t0 = time.monotonic()
    result = queue_cli(bin_path, server, "flush")
    flush_s = round(time.monotonic() - t0, 1)
    if result.returncode != 0:
        fail(f"DNS back: queue flush exit {result.returncode}: {result.stderr[-2000:]}")
    deadline = time.monotonic() + 30
    while envelopes(server) and time.monotonic() < deadline:
        time.sleep(0.5)
    got = Counter()
    pattern = re.compile(rb"Message-ID: <([A-Za-z0-9.-]+)@client\.example\.org>")
    for received in peer.received:
        match = pattern.search(received.data)
        if match:
            got[match.group(1).decode()] += 1
    lost = [t for t in acked if got[t] == 0]
    for t in lost:
        fail(f"DNS back: {t} never reached the peer")
    bounced = len(dsns(server))
    if bounced:
        fail(f"DNS down: {bounced} delivery status notifications reached the sender")
    run.check_servers()
    table("DNS down: 10 submissions per variant to bob@remote.test, then 3 `queue flush` passes",
          ["variant", "acknowledged", "replies", "recipient states", "attempts",
           "DSNs", "daemon's at-once attempts s", "flush pass s", "lastError"], rows)
    table("DNS back (dnsmasq MX -> aiosmtpd peer), one `queue flush`",
          ["figure", "value"],
          [["acknowledged", len(acked)], ["reached the peer", sum(1 for t in acked if got[t])],
           ["lost", len(lost)], ["copies beyond one", sum(n - 1 for n in got.values() if n > 1)],
           ["left in the queue", len(envelopes(server))], ["bounced (DSNs)", bounced],
           ["flush seconds", flush_s]])


# ----------------------------------------------------------------------------------------------
# a peer that stalls

class StallPeer:
    """A minimal SMTP peer on ip:25. mode "data": after DATA's 354 it reads `read_bytes` and
    then stops reading; mode "dot": reads the whole message and never answers the dot. Only the
    first `stalls` sessions stall; later ones accept normally (the retry)."""

    def __init__(self, ip: str, mode: str, read_bytes: int = 65536, stalls: int = 1):
        self.mode, self.read_bytes, self.stalls = mode, read_bytes, stalls
        self.sessions: list[dict] = []
        self.delivered: list[bytes] = []
        self.release = threading.Event()
        peer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                sock = self.request
                info = {"start": time.monotonic(), "end": None, "stalled": False,
                        "data_bytes": 0}
                peer.sessions.append(info)
                stall = len(peer.sessions) <= peer.stalls
                f = sock.makefile("rb")
                try:
                    sock.sendall(b"220 stall.peer.test ESMTP\r\n")
                    while True:
                        line = f.readline(4096)
                        if not line:
                            return
                        verb = line[:4].upper()
                        if verb in (b"EHLO", b"HELO"):
                            sock.sendall(b"250-stall.peer.test\r\n250 8BITMIME\r\n")
                        elif verb == b"DATA":
                            sock.sendall(b"354 go\r\n")
                            if stall and peer.mode == "data":
                                info["data_bytes"] = len(f.read(peer.read_bytes))
                                info["stalled"] = True
                                peer.release.wait()
                                return
                            lines = []
                            while True:
                                chunk = f.readline(1 << 20)
                                if not chunk:
                                    return
                                if chunk == b".\r\n":
                                    break
                                lines.append(chunk)
                            data = b"".join(lines)
                            info["data_bytes"] = len(data)
                            if stall and peer.mode == "dot":
                                info["stalled"] = True
                                peer.delivered_unanswered = data
                                # keep reading (to see a close), answer nothing
                                while f.read(1):
                                    pass
                                return
                            peer.delivered.append(data)
                            sock.sendall(b"250 2.0.0 ok\r\n")
                        elif verb == b"QUIT":
                            sock.sendall(b"221 bye\r\n")
                            return
                        else:
                            sock.sendall(b"250 ok\r\n")
                except OSError:
                    return
                finally:
                    info["end"] = time.monotonic()

        class TCP(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

            def server_bind(self):
                self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                super().server_bind()

        self.server = TCP((ip, 25), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def fault_stall(pw: str) -> None:
    run = Run("stall")
    try:
        _stall(run, pw)
    finally:
        run.close()


def _stall(run: Run, pw: str) -> None:
    ips = {"data": "127.0.0.71", "dot": "127.0.0.72", "healthy": "127.0.0.73"}
    for ip in ips.values():
        peer_ip_free(ip)
    stall_data = StallPeer(ips["data"], "data")
    run.on_exit(stall_data.stop)
    stall_dot = StallPeer(ips["dot"], "dot")
    run.on_exit(stall_dot.stop)
    healthy = Peer(ips["healthy"], 25)
    run.on_exit(healthy.stop)
    dns = Dnsmasq(run.tmp, {"stalldata.test": [(10, "mx.stalldata.test")],
                            "stalldot.test": [(10, "mx.stalldot.test")],
                            "healthy.test": [(10, "mx.healthy.test")]},
                  {"mx.stalldata.test": ips["data"], "mx.stalldot.test": ips["dot"],
                   "mx.healthy.test": ips["healthy"]})
    run.on_exit(dns.stop)
    config = config_for(run, pw, {"dns": {"nameservers": [dns.nameserver]},
                                  "smtp": {"maxMessageSize": 32 * 1024 * 1024},
                                  "queue": {"interval": 60, "delayMin": 60, "delayMax": 60}})
    server = run.server(config, mode="smtpd")
    acked: dict[str, tuple[str, bytes]] = {}

    def ack(token, to, size):
        code, text = submit(server.port, token, to, size)
        if code != 250:
            fail(f"stall: submission of {token} got {code} {text!r}")
            return None
        acked[token] = (to, make_message(token, sender=ALICE, to=to,
                                         body=("q" * 76 + "\n") * max(1, size // 77)))
        return time.monotonic()

    t_data = ack("stalldata", "u@stalldata.test", 8 * 1024 * 1024)
    t_dot = ack("stalldot", "u@stalldot.test", 4000)
    # The healthy destination meanwhile: 10 messages, one every 2 s, each timed to the peer.
    healthy_lat = []
    for i in range(10):
        token = f"healthy{i}"
        t0 = ack(token, "v@healthy.test", 2000)
        while time.monotonic() - t0 < 30:
            if any(f"<{token}@".encode() in r.data for r in healthy.received):
                healthy_lat.append(time.monotonic() - t0)
                break
            time.sleep(0.05)
        else:
            fail(f"stall: {token} for the healthy peer not delivered within 30 s")
        time.sleep(2)
    # Wait for both stalled deliveries to give up (fixed timeouts: 300 s and 600 s).
    results = {}
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and len(results) < 2:
        for token, t0, peer in (("stalldata", t_data, stall_data), ("stalldot", t_dot, stall_dot)):
            if token in results:
                continue
            for e in envelopes(server):
                text = (queue_dir(server) / f"{e['id']}.eml").read_bytes()
                if f"<{token}@".encode() in text and e["attempts"] >= 1:
                    session = peer.sessions[0] if peer.sessions else {}
                    results[token] = {"env": e, "seconds": round(time.monotonic() - t0, 1),
                                      "peer_session": session}
        time.sleep(1)
    rows = []
    for token, peer in (("stalldata", stall_data), ("stalldot", stall_dot)):
        r = results.get(token)
        if not r:
            fail(f"stall: {token} still in its first attempt after 900 s (never cut)")
            rows.append([token, "-", "never cut", "-", "-", "-"])
            continue
        e = r["env"]
        rcpt = e["recipients"][0]
        if rcpt["status"] != "deferred":
            fail(f"stall: {token} is {rcpt['status']} after the stall: {rcpt['reply']}")
        s = r["peer_session"]
        held = (f"session ended after {s['end'] - s['start']:.1f} s" if s.get("end")
                else "the peer keeps its end open until the retry")
        rows.append([token, peer.mode, r["seconds"], rcpt["status"], rcpt["reply"][:100],
                     f"{s.get('data_bytes')} B read; {held}"])
    table("a stalled peer: one delivery each, timed from the submission's 250 until the "
          "envelope records the failed attempt", ["message", "peer stalls", "seconds",
                                                  "status", "reply recorded", "peer side"], rows)
    # The retry: the peers now accept (only their first session stalls).
    stall_data.release.set()
    t0 = time.monotonic()
    result = queue_cli(icsmail_bin(), server, "flush", timeout=900)
    retry_s = round(time.monotonic() - t0, 1)
    if result.returncode != 0:
        fail(f"stall: retry flush exit {result.returncode}: {result.stderr[-2000:]}")
    time.sleep(1)
    got = Counter()
    pattern = re.compile(rb"Message-ID: <([A-Za-z0-9.-]+)@client\.example\.org>")
    for data in stall_data.delivered + stall_dot.delivered + [r.data for r in healthy.received]:
        m = pattern.search(data)
        if m:
            got[m.group(1).decode()] += 1
    lost = [t for t in acked if got[t] == 0]
    for t in lost:
        fail(f"stall: acknowledged {t} never delivered (queue: {len(envelopes(server))} left)")
    dups = {t: n for t, n in got.items() if n > 1}
    if dups:
        fail(f"stall: delivered (answered 250) more than once: {dups}")
    bounced = len(dsns(server))
    if bounced:
        fail(f"stall: {bounced} DSNs reached the sender")
    unanswered = 1 if getattr(stall_dot, "delivered_unanswered", None) else 0
    run.check_servers()
    table("the stalled peers' retry and the healthy peer meanwhile", ["figure", "value"],
          [["acknowledged", len(acked)], ["delivered (250 from a peer)", sum(got.values())],
           ["lost", len(lost)], ["answered twice", len(dups)],
           ["copies the stalled dot-peer holds unanswered (at-least-once duplicate)", unanswered],
           ["DSNs", bounced], ["retry flush seconds", retry_s],
           ["healthy peer: submit-to-peer latency, median / max (s)",
            f"{statistics.median(healthy_lat):.2f} / {max(healthy_lat):.2f}"
            if healthy_lat else "-"],
           ["left in the queue", len(envelopes(server))]])


# ----------------------------------------------------------------------------------------------
# slow-loris

DRIP = 5.0


class Loris(threading.Thread):
    """One hostile connection: connects from `source`, runs `setup`, then sends one byte of
    `payload` every DRIP seconds (or nothing when `payload` is empty) until the server closes."""

    def __init__(self, port: int, source: str, setup, payload: bytes, expected: float,
                 tls_setup: bool = False):
        super().__init__(daemon=True)
        self.port, self.source, self.setup, self.payload = port, source, setup, payload
        self.expected = expected
        self.tls_setup = tls_setup
        self.cut_after: float | None = None     # seconds from the last byte sent
        self.open_for: float | None = None      # seconds from the start of the slow phase
        self.error: str | None = None
        self.done = threading.Event()
        self.stop = threading.Event()

    def run(self):
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=30,
                                            source_address=(self.source, 0))
        except OSError as exc:
            self.error = f"connect: {exc}"
            self.done.set()
            return
        try:
            stream = self.setup(sock) if self.setup else sock
        except Exception as exc:
            self.error = f"setup: {exc!r}"
            sock.close()
            self.done.set()
            return
        start = last = time.monotonic()
        i = 0
        raw = stream
        raw.settimeout(DRIP if self.payload else 1.0)
        try:
            while not self.stop.is_set():
                try:
                    chunk = raw.recv(4096)
                    if not chunk:
                        break
                    continue  # the server said something (e.g. a 421): wait for the close
                except socket.timeout:
                    pass
                except (ConnectionError, ssl.SSLError, OSError):
                    break
                if self.payload:
                    try:
                        raw.sendall(self.payload[i % len(self.payload):][:1])
                        i += 1
                        last = time.monotonic()
                    except OSError:
                        break
            else:
                return  # stopped by us: not cut
            now = time.monotonic()
            self.cut_after = now - last
            self.open_for = now - start
        finally:
            try:
                raw.close()
            except OSError:
                pass
            self.done.set()


def read_line(sock) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError(f"closed during setup after {data!r}")
        data += chunk
    return data


def smtp_setup_data(sock):
    for line in (None, b"EHLO loris.test\r\n", b"MAIL FROM:<l@loris.test>\r\n",
                 f"RCPT TO:<{ALICE}>\r\n".encode(), b"DATA\r\n"):
        if line:
            sock.sendall(line)
        while True:
            reply = read_line(sock)
            if reply[3:4] != b"-":
                break
    if not reply.startswith(b"354"):
        raise ConnectionError(f"DATA answered {reply!r}")
    return sock


def greeting_setup(sock):
    read_line(sock)
    return sock


def imap_literal_setup(sock):
    read_line(sock)
    sock.sendall(b"a1 LOGIN {1000}\r\n")
    reply = read_line(sock)
    if not reply.startswith(b"+"):
        raise ConnectionError(f"literal answered {reply!r}")
    return sock


# One 1004-byte simple BindRequest (a 984-byte DN), BER with long-form lengths: dripped, it
# stays one incomplete request for 5,000 s.
LDAP_BIND = (bytes.fromhex("308203e8" "020101" "608203e1" "020103" "048203d8") + b"a" * 984
             + bytes.fromhex("8000"))


def legit(kind: str, port: int, tls_ctx) -> None:
    """One complete legitimate session; raises on failure."""
    if kind == "smtp":
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
            c.sendmail("legit@example.org", [ALICE], make_message("legit", to=ALICE))
    elif kind == "submission":
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
            c.starttls(context=tls_ctx)
            c.login(ALICE, PASSWORD)
            c.sendmail(ALICE, [BOB], make_message("legit", sender=ALICE, to=BOB))
    elif kind == "smtps":
        with smtplib.SMTP_SSL("127.0.0.1", port, timeout=30, context=tls_ctx) as c:
            c.login(ALICE, PASSWORD)
            c.sendmail(ALICE, [BOB], make_message("legit", sender=ALICE, to=BOB))
    elif kind in ("imap", "imaps"):
        cls = imaplib.IMAP4 if kind == "imap" else imaplib.IMAP4_SSL
        kw = {"timeout": 30} if kind == "imap" else {"ssl_context": tls_ctx, "timeout": 30}
        with cls("127.0.0.1", port, **kw) as c:
            c.login(ALICE, PASSWORD)
            typ, _ = c.select("INBOX")
            assert typ == "OK"
            c.logout()
    elif kind in ("pop3", "pop3s"):
        c = poplib.POP3("127.0.0.1", port, timeout=30) if kind == "pop3" else \
            poplib.POP3_SSL("127.0.0.1", port, timeout=30, context=tls_ctx)
        c.user(BOB)
        c.pass_(PASSWORD)
        c.stat()
        c.quit()
    elif kind in ("ldap", "ldaps"):
        import ldap3
        server = ldap3.Server("127.0.0.1", port=port, use_ssl=kind == "ldaps",
                              tls=ldap3.Tls(validate=ssl.CERT_NONE), connect_timeout=30)
        conn = ldap3.Connection(server, auto_bind=ldap3.AUTO_BIND_NONE, receive_timeout=30,
                                raise_exceptions=False)
        conn.open()
        assert conn.bind(), conn.result
        ok = conn.search("", "(objectClass=*)", search_scope=ldap3.BASE,
                         attributes=["namingContexts"])
        assert ok, conn.result
        conn.unbind()


def fault_loris(pw: str, per_case: int) -> None:
    run = Run("loris")
    try:
        _loris(run, pw, per_case)
    finally:
        run.close()


def _loris(run: Run, pw: str, per_case: int) -> None:
    cmd_t, data_t = 10, 10
    pair = make_cert(run.tmp / "certs", "server")
    ports = {k: free_port() for k in ("smtps", "ldap", "ldaps")}
    extra = tls_overrides(pair, "optional", smtps_port=ports["smtps"],
                          submission_port=free_port())
    extra = deep_merge(extra, {
        "smtp": {"limits": {"commandTimeout": cmd_t, "dataTimeout": data_t,
                            "connectionsPerIp": 50}},
        "access": {"implicitTls": {"enable": True}},
        "addressBook": {"enable": True, "port": ports["ldap"], "ldapsPort": ports["ldaps"],
                        "baseDn": "dc=example,dc=test"}})
    config = config_for(run, pw, extra)
    p = {"smtp": config["smtp"]["port"], "submission": config["smtp"]["submissionPort"],
         "smtps": ports["smtps"], "imap": config["imap"]["port"],
         "imaps": config["imap"]["imapsPort"], "pop3": config["pop3"]["port"],
         "pop3s": config["pop3"]["pop3sPort"], "ldap": ports["ldap"], "ldaps": ports["ldaps"]}
    run.server(config, extra_ports=list(p.values()))
    hello = client_hello()
    # (port kind, case, setup, payload, expected timeout and where it comes from)
    imap_t, pop3_t, ldap_t, ldaps_t = 180, 600, 300, 30
    cases = [
        ("smtp", "silent after greeting", greeting_setup, b"", cmd_t, "smtp.limits.commandTimeout"),
        ("smtp", "drip command line", greeting_setup, b"EHLO " + b"a" * 4000, cmd_t,
         "smtp.limits.commandTimeout"),
        ("smtp", "drip DATA", smtp_setup_data, b"Subject: x\r\n\r\n" + b"b" * 4000, data_t,
         "smtp.limits.dataTimeout"),
        ("submission", "silent after greeting", greeting_setup, b"", cmd_t,
         "smtp.limits.commandTimeout"),
        ("submission", "drip command line", greeting_setup, b"EHLO " + b"a" * 4000, cmd_t,
         "smtp.limits.commandTimeout"),
        ("smtps", "silent before TLS", None, b"", cmd_t, "commandTimeout (handshake)"),
        ("smtps", "drip ClientHello", None, hello, cmd_t, "commandTimeout (handshake)"),
        ("imap", "silent after greeting", greeting_setup, b"", imap_t, "PRE_AUTH_TIMEOUT const"),
        ("imap", "drip command line", greeting_setup, b"a1 NOOP" + b"a" * 4000, imap_t,
         "PRE_AUTH_TIMEOUT const"),
        ("imap", "drip LOGIN literal", imap_literal_setup, b"c" * 1000, imap_t,
         "PRE_AUTH_TIMEOUT const"),
        ("imaps", "silent before TLS", None, b"", imap_t, "PRE_AUTH_TIMEOUT (handshake)"),
        ("imaps", "drip ClientHello", None, hello, imap_t, "PRE_AUTH_TIMEOUT (handshake)"),
        ("pop3", "silent after greeting", greeting_setup, b"", pop3_t, "pop3 IDLE_TIMEOUT const"),
        ("pop3", "drip command line", greeting_setup, b"USER " + b"a" * 4000, pop3_t,
         "pop3 IDLE_TIMEOUT const"),
        ("pop3s", "silent before TLS", None, b"", pop3_t, "pop3 IDLE_TIMEOUT (handshake)"),
        ("pop3s", "drip ClientHello", None, hello, pop3_t, "pop3 IDLE_TIMEOUT (handshake)"),
        ("ldap", "silent", None, b"", ldap_t, "ldap IDLE_TIMEOUT const"),
        ("ldap", "drip BER bind", None, LDAP_BIND, ldap_t, "ldap IDLE_TIMEOUT const"),
        ("ldaps", "silent before TLS", None, b"", ldaps_t, "ldap HANDSHAKE_TIMEOUT const"),
        ("ldaps", "drip ClientHello", None, hello, ldaps_t, "ldap HANDSHAKE_TIMEOUT const"),
    ]
    threads: list[tuple[tuple, Loris]] = []
    for case in cases:
        kind, name, setup, payload, expected, _src = case
        for i in range(per_case):
            source = f"127.0.0.{100 + i % 100}"
            t = Loris(p[kind], source, setup, payload, expected)
            threads.append((case, t))
    t_start = time.monotonic()
    for _, t in threads:
        t.start()
        time.sleep(0.005)
    print(f"loris: {len(threads)} hostile connections on {len(p)} ports", flush=True)
    # Legitimate clients meanwhile, every 20 s on every port, until the last deadline.
    tls_ctx = client_tls_context()
    latencies: dict[str, list[float]] = {k: [] for k in p}
    refused: Counter = Counter()
    horizon = max(c[4] for c in cases) * 1.5 + 2 * DRIP + 15
    while time.monotonic() - t_start < horizon:
        for kind, port in p.items():
            t0 = time.monotonic()
            try:
                legit(kind, port, tls_ctx)
                latencies[kind].append(time.monotonic() - t0)
            except Exception as exc:
                refused[kind] += 1
                fail(f"loris: legitimate {kind} client failed: {exc!r}")
        if all(t.done.is_set() for _, t in threads):
            break
        time.sleep(20)
    for _, t in threads:
        t.stop.set()
    for _, t in threads:
        t.join(DRIP + 5)
    rows = []
    for case in cases:
        kind, name, _setup, _payload, expected, src = case
        mine = [t for c, t in threads if c is case]
        errors = [t.error for t in mine if t.error]
        cut = [t for t in mine if t.cut_after is not None]
        never = [t for t in mine if t.cut_after is None and not t.error]
        if never:
            fail(f"loris: {kind} {name}: {len(never)} of {len(mine)} connections still open "
                 f"after {horizon:.0f} s (timeout {expected} s)")
        if errors:
            fail(f"loris: {kind} {name}: {len(errors)} failed to start: {errors[0]}")
        after_last = [t.cut_after for t in cut]
        open_for = [t.open_for for t in cut]
        rows.append([kind, name, f"{expected} ({src})", len(mine), len(cut),
                     len(never), len(errors),
                     f"{min(open_for):.1f}-{max(open_for):.1f}" if cut else "-",
                     f"{max(after_last):.1f}" if cut else "-"])
    run.check_servers()
    table(f"slow-loris: {per_case} connections per case from 127.0.0.100+, one byte every "
          f"{DRIP:.0f} s; watched up to {horizon:.0f} s",
          ["port", "case", "timeout s", "conns", "cut", "never cut", "setup failed",
           "open for s (min-max)", "max s after last byte"], rows)
    table("slow-loris: legitimate client on the same port meanwhile (full session)",
          ["port", "sessions", "failed", "median s", "max s"],
          [[k, len(v), refused[k], f"{statistics.median(v):.3f}" if v else "-",
            f"{max(v):.3f}" if v else "-"] for k, v in latencies.items()])


# ----------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="disk,dns,stall,loris")
    parser.add_argument("--loris-per-case", type=int, default=15)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("faults.py: run as root (tmpfs mounts, port 25 peers)", file=sys.stderr)
        return 2
    chosen = [x.strip() for x in args.only.split(",") if x.strip()]
    for name in chosen:
        if name not in ("disk", "dns", "stall", "loris"):
            print(f"faults.py: unknown fault {name!r}", file=sys.stderr)
            return 2
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    pw = password_hash()
    for name in chosen:
        print(f"=== {name} ({time.strftime('%H:%M:%S', time.gmtime())} UTC)", flush=True)
        t0 = time.monotonic()
        try:
            {"disk": fault_disk, "dns": fault_dns, "stall": fault_stall,
             "loris": lambda pw: fault_loris(pw, args.loris_per_case)}[name](pw)
        except Exception as exc:
            import traceback
            traceback.print_exc()
            fail(f"{name}: the fault run itself failed: {exc!r}")
        print(f"=== {name} took {time.monotonic() - t0:.0f} s", flush=True)
    if FAILURES:
        print(f"\nfaults.py: {len(FAILURES)} failure(s):")
        for f in FAILURES:
            print(f"  - {f.splitlines()[0]}")
        return 1
    print("\nfaults.py: no failure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
