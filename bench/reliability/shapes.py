#!/usr/bin/env python3
"""Message-shape limits (issue 19): hostile and extreme message shapes, each delivered over SMTP
(DATA and BDAT) to a fresh `icsmail serve` and read back over IMAP (ENVELOPE, BODYSTRUCTURE,
sections, BINARY, SEARCH) and POP3 (RETR, TOP), with the server's CPU time and peak RSS measured
for every step.

Measurement: a fresh server per shape (temp dir, free 127.0.0.1 ports). Before each step the
server's peak RSS is reset by writing 5 to /proc/<pid>/clear_refs; after it, VmHWM is the step's
peak. CPU is utime+stime of /proc/<pid>/stat (the whole process: every thread, exited ones
included), as a delta over the step; wall time is the client's.

Exit status 1 when the server dies, a step times out (TIMEOUT s), a well-formed command gets BAD
or a dropped connection, a sanity check fails (a BODYSTRUCTURE that does not parse, nesting past
the server's cap, a short answer), or a step's peak RSS exceeds MEM_FACTOR x message size +
MEM_SLACK. Figures are printed, never judged by time.

Usage: shapes.py [--only NAME[,NAME...]] [--list] [--dovecot]
  --dovecot also reads each shape from a private Dovecot (Maildir delivery, same FETCHes) and
  prints its imap process's CPU beside ours. KEEP=1 keeps the temp dirs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from icshelpers import (ALICE, DOMAIN, PASSWORD, base_config, deep_merge,  # noqa: E402
                        free_port, icsmail_bin, write_config, Server)

TIMEOUT = 120.0
MiB = 1024 * 1024
MAX_MESSAGE = 100 * MiB          # smtp.maxMessageSize for the run: every shape fits
MEM_FACTOR, MEM_SLACK = 20, 100 * MiB
MIME_MAX_DEPTH = 32              # src/imap/mime/tree.rs MAX_DEPTH (docs: "nesting at 32 levels")
MIME_MAX_PARTS = 10_000          # src/imap/mime/tree.rs MAX_PARTS (the message included)
CLK = os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------------------------
# The shapes (deterministic)

def head(subject: str, extra: str = "") -> str:
    return (f"From: Shape Sender <sender@example.org>\r\nTo: <{ALICE}>\r\n"
            f"Subject: shape {subject}\r\nDate: Thu, 03 Dec 2026 12:00:00 +0000\r\n"
            f"Message-ID: <{subject}@shapes.example.org>\r\nMIME-Version: 1.0\r\n{extra}")


def many_header_lines(n: int) -> bytes:
    lines = "".join(f"X-Line-{i:06d}: value {i:06d} of many header lines\r\n" for i in range(n))
    return (head("headers") + lines + "\r\nbodyword in the body\r\n").encode()


def header_fields_bytes(total: int) -> bytes:
    """Many fields of 80 bytes, `total` bytes of them."""
    line = "X-Field-{:08d}: " + "f" * 60 + "\r\n"          # 80 bytes
    n = total // 80
    return (head("fields") + "".join(line.format(i) for i in range(n))
            + "\r\nbodyword in the body\r\n").encode()


def one_folded_field(total: int) -> bytes:
    """One field `total` bytes long, folded every 78 bytes."""
    fold = "\r\n " + "w" * 75                                # 78 bytes per folded line
    n = total // 78
    return (head("folded") + "X-Big: start" + fold * (n - 1) + " needleword\r\n"
            + "\r\nbodyword in the body\r\n").encode()


def plain_body(total: int) -> bytes:
    line = "x" * 76 + "\r\n"
    return (head("body") + "\r\n" + line * (total // 78) + "bodyword at the end\r\n").encode()


def nested_multiparts(depth: int) -> bytes:
    out = [head(f"nested{depth}", f'Content-Type: multipart/mixed; boundary="b0"\r\n\r\n')]
    for i in range(1, depth):
        out.append(f"--b{i - 1}\r\nContent-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n")
    out.append(f"--b{depth - 1}\r\nContent-Type: text/plain\r\n\r\nbodyword deep inside\r\n")
    for i in reversed(range(depth)):
        out.append(f"--b{i}--\r\n")
    return "".join(out).encode()


def siblings(n: int) -> bytes:
    parts = "".join(f"--sib\r\nContent-Type: text/plain\r\n\r\npart {i} bodyword\r\n"
                    for i in range(n))
    return (head(f"siblings{n}", 'Content-Type: multipart/mixed; boundary="sib"\r\n\r\n')
            + parts + "--sib--\r\n").encode()


def no_boundary() -> bytes:
    return (head("noboundary", "Content-Type: multipart/mixed\r\n\r\n")
            + "preamble\r\n--\r\nContent-Type: text/plain\r\n\r\nbodyword one\r\n"
            + "--\r\n\r\nbodyword two\r\n----\r\n").encode()


def boundary_equal() -> bytes:
    """An inner multipart whose boundary equals the outer one."""
    return (head("bequal", 'Content-Type: multipart/mixed; boundary="same"\r\n\r\n')
            + '--same\r\nContent-Type: multipart/mixed; boundary="same"\r\n\r\n'
            + "--same\r\nContent-Type: text/plain\r\n\r\nbodyword inner\r\n--same--\r\n"
            + "--same\r\nContent-Type: text/plain\r\n\r\nbodyword outer\r\n--same--\r\n").encode()


def boundary_prefix() -> bytes:
    """Inner boundaries that are prefixes of the outer one, and the outer a prefix of an inner
    one, five levels deep."""
    names = ["abcde", "abcd", "abc", "ab", "a", "abcdef"]
    out = [head("bprefix", f'Content-Type: multipart/mixed; boundary="{names[0]}"\r\n\r\n')]
    for i in range(1, len(names)):
        out.append(f"--{names[i - 1]}\r\nContent-Type: multipart/mixed; "
                   f"boundary=\"{names[i]}\"\r\n\r\n")
    out.append(f"--{names[-1]}\r\nContent-Type: text/plain\r\n\r\nbodyword deep\r\n")
    for name in reversed(names):
        out.append(f"--{name}--\r\n")
    return "".join(out).encode()


def rfc822_self() -> bytes:
    """A message/rfc822 part that holds, textually, the message itself (its header, its
    boundary and a message/rfc822 part of the same shape), 10 copies deep."""
    outer = head("self", 'Content-Type: multipart/mixed; boundary="self"\r\n\r\n')
    text = "--self\r\nContent-Type: text/plain\r\n\r\nbodyword leaf\r\n--self--\r\n"
    for _ in range(10):
        text = (outer + "--self\r\nContent-Type: message/rfc822\r\n\r\n" + outer + text
                + "--self--\r\n")
    return text.encode()


def repeated_boundaries(n: int) -> bytes:
    return (head("repeated", 'Content-Type: multipart/mixed; boundary="rep"\r\n\r\n')
            + "--rep\r\n" * n + "Content-Type: text/plain\r\n\r\nbodyword\r\n--rep--\r\n").encode()


def long_line(total: int) -> bytes:
    return (head("longline") + "\r\nbodyword " + "y" * total + "\r\n").encode()


def nested_rfc822(depth: int) -> bytes:
    text = "Subject: innermost\r\n\r\nbodyword innermost\r\n"
    for i in range(depth - 1):
        text = f"Subject: level {depth - 1 - i}\r\nContent-Type: message/rfc822\r\n\r\n" + text
    return (head(f"rfc822x{depth}", "Content-Type: message/rfc822\r\n\r\n") + text).encode()


def base64_garbage() -> bytes:
    good = "Ym9keXdvcmQgaW4gYmFzZTY0Cg==\r\n"
    bad = "!!!!@@@@####$$$$ not base64 at all ====\r\nQUJD=\r\nA\r\n====\r\n" * 2000
    return (head("b64", 'Content-Type: multipart/mixed; boundary="g"\r\n\r\n')
            + "--g\r\nContent-Type: application/octet-stream\r\n"
            + "Content-Transfer-Encoding: base64\r\n\r\n" + good + bad
            + "--g\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + good * 3 + "=====\r\n--g--\r\n").encode()


def missing_final_boundary() -> bytes:
    return (head("nofinal", 'Content-Type: multipart/mixed; boundary="nf"\r\n\r\n')
            + "--nf\r\nContent-Type: text/plain\r\n\r\nbodyword one\r\n"
            + '--nf\r\nContent-Type: multipart/alternative; boundary="nf2"\r\n\r\n'
            + "--nf2\r\nContent-Type: text/plain\r\n\r\nbodyword two\r\n").encode()


@dataclass
class Shape:
    name: str
    make: object
    deep: str = "1"                       # the deep section to FETCH
    search_header: tuple = ("Subject", "shape")
    note: str = ""
    depth: int | None = None              # multipart nesting the message has
    parts: int | None = None              # sibling parts the message has
    default: bool = True                  # in a run without --only


def deep_section(levels: int) -> str:
    return ".".join(["1"] * levels)


SHAPES = [
    Shape("headers-100k", lambda: many_header_lines(100_000), "1",
          ("X-Line-099999", "099999"), "100,000 header lines"),
    Shape("nested-200", lambda: nested_multiparts(200), deep_section(199), note="200 nested",
          depth=200),
    Shape("nested-32", lambda: nested_multiparts(MIME_MAX_DEPTH), deep_section(31),
          note="at MAX_DEPTH", depth=MIME_MAX_DEPTH),
    Shape("nested-33", lambda: nested_multiparts(MIME_MAX_DEPTH + 1), deep_section(32),
          note="MAX_DEPTH + 1", depth=MIME_MAX_DEPTH + 1),
    Shape("no-boundary", no_boundary, "1", note="multipart/mixed, no boundary="),
    Shape("boundary-equal", boundary_equal, "1.1", note="inner boundary = outer"),
    Shape("boundary-prefix", boundary_prefix, deep_section(5), note="prefix boundaries"),
    Shape("rfc822-self", rfc822_self, deep_section(10), note="message/rfc822 holding itself"),
    Shape("repeated-bound", lambda: repeated_boundaries(100_000), "100000",
          note="100,000 identical boundary lines"),
    Shape("repeated-bound-1M", lambda: repeated_boundaries(1_000_000), "1000000",
          note="1,000,000 identical boundary lines (scaling)"),
    Shape("repeated-bound-25M", lambda: repeated_boundaries(3_700_000), "3700000",
          note="3,700,000 boundary lines: the default 25 MiB limit's worth (--only; ~3 GB RSS)",
          default=False),
    Shape("header-50M-fold", lambda: one_folded_field(50 * MiB), "1",
          ("X-Big", "needleword"), "one 50 MiB folded field"),
    Shape("header-12M-fields", lambda: header_fields_bytes(50 * MiB // 4), "1",
          ("X-Field-00000007", "ffff"), "12.5 MiB of 80-byte fields (scaling)"),
    Shape("header-50M-fields", lambda: header_fields_bytes(50 * MiB), "1",
          ("X-Field-00000007", "ffff"), "50 MiB of 80-byte fields"),
    Shape("body-50M", lambda: plain_body(50 * MiB), "1", note="control: 50 MiB plain body"),
    Shape("siblings-10000", lambda: siblings(MIME_MAX_PARTS), "10000", note="10,000 parts",
          parts=MIME_MAX_PARTS),
    Shape("siblings-10001", lambda: siblings(MIME_MAX_PARTS + 1), "10001",
          note="MAX_PARTS + 1", parts=MIME_MAX_PARTS + 1),
    Shape("line-1M", lambda: long_line(MiB), "1", note="one 1 MiB line"),
    Shape("rfc822-100", lambda: nested_rfc822(100), deep_section(99), note="100 x message/rfc822"),
    Shape("base64-garbage", base64_garbage, "1", note="invalid base64"),
    Shape("no-final-bound", missing_final_boundary, "2.1", note="no closing boundaries"),
]


# ----------------------------------------------------------------------------------------------
# Process figures

def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK     # utime, stime (fields 14, 15)


def status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def reset_peak(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


@dataclass
class Step:
    name: str
    outcome: str = ""
    cpu: float = 0.0
    wall: float = 0.0
    peak_kb: int = 0
    resp_bytes: int = 0
    failed: str = ""


class Meter:
    """CPU, wall and peak RSS of `pid` over a block."""

    def __init__(self, pid: int, step: Step):
        self.pid, self.step = pid, step

    def __enter__(self):
        reset_peak(self.pid)
        self.cpu0, self.t0 = cpu_seconds(self.pid), time.monotonic()
        return self.step

    def __exit__(self, *exc):
        self.step.wall = time.monotonic() - self.t0
        try:
            self.step.cpu = cpu_seconds(self.pid) - self.cpu0
            self.step.peak_kb = status_kb(self.pid, "VmHWM")
        except (FileNotFoundError, ProcessLookupError, KeyError):
            self.step.failed = self.step.failed or "server process gone"
        return False


# ----------------------------------------------------------------------------------------------
# A plain IMAP client that reads big literals in linear time

class Closed(Exception):
    pass


class Imap:
    def __init__(self, port: int, host: str = "127.0.0.1", source: str | None = None):
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT,
                                             source_address=(source, 0) if source else None)
        self.buf = bytearray()
        self.pos = 0
        self.received = 0
        self.n = 0
        self.deadline = time.monotonic() + TIMEOUT
        self.greeting = self.line()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self) -> None:
        if time.monotonic() > self.deadline:
            raise TimeoutError(f"no complete answer in {TIMEOUT} s")
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise Closed("connection closed by the server")
        self.received += len(chunk)
        if self.pos > (1 << 20):
            del self.buf[:self.pos]
            self.pos = 0
        self.buf += chunk

    def _raw_line(self) -> bytes:
        scan = 0
        while True:
            i = self.buf.find(b"\r\n", self.pos + scan)
            if i >= 0:
                line = bytes(self.buf[self.pos:i])
                self.pos = i + 2
                return line
            scan = max(0, len(self.buf) - self.pos - 1)
            self._fill()

    def _exact(self, n: int) -> bytes:
        while len(self.buf) - self.pos < n:
            self._fill()
        data = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return data

    def line(self) -> bytes:
        """One response line, literals inline as {n}\\r\\n<data>."""
        segments = [self._raw_line()]
        while segments[-1].endswith(b"}") and b"{" in segments[-1][-22:]:
            last = segments[-1]
            digits = last[last.rindex(b"{") + 1:-1]
            if not digits.isdigit():
                break
            segments.append(b"\r\n" + self._exact(int(digits)))
            segments.append(self._raw_line())
        return b"".join(segments)

    def cmd(self, text: str) -> tuple[str, list[bytes], bytes]:
        self.n += 1
        tag = f"s{self.n}"
        self.deadline = time.monotonic() + TIMEOUT
        self.sock.sendall(f"{tag} {text}\r\n".encode())
        lines = []
        while True:
            line = self.line()
            if line.startswith(tag.encode() + b" "):
                status = line.split(b" ", 2)[1].decode().upper()
                return status, lines, line
            lines.append(line)


# ----------------------------------------------------------------------------------------------
# A parser of IMAP response data (enough for ENVELOPE and BODYSTRUCTURE)

def parse_sexp(data: bytes, pos: int = 0):
    """Parses one parenthesised list starting at data[pos] == '('; returns (list, end)."""
    stack: list[list] = []
    n = len(data)
    while pos < n:
        c = data[pos]
        if c == 0x28:                     # (
            stack.append([])
            pos += 1
        elif c == 0x29:                   # )
            done = stack.pop()
            pos += 1
            if not stack:
                return done, pos
            stack[-1].append(done)
        elif c == 0x20:
            pos += 1
        elif c == 0x22:                   # quoted
            j = pos + 1
            value = bytearray()
            while data[j] != 0x22:
                if data[j] == 0x5C:
                    j += 1
                value.append(data[j])
                j += 1
            stack[-1].append(bytes(value))
            pos = j + 1
        elif c == 0x7B:                   # {n}\r\n literal
            j = data.index(b"}", pos)
            size = int(data[pos + 1:j])
            stack[-1].append(data[j + 3:j + 3 + size])
            pos = j + 3 + size
        else:
            j = pos
            while j < n and data[j] not in b" ()":
                j += 1
            stack[-1].append(data[pos:j])
            pos = j
        if not stack:
            raise ValueError("not a list")
    raise ValueError("unterminated list")


def fetch_item(line: bytes, item: bytes):
    """The value of `item` (ENVELOPE, BODYSTRUCTURE) in a `* n FETCH (...)` line."""
    i = line.find(b"FETCH (")
    if i < 0:
        raise ValueError("no FETCH in " + repr(line[:80]))
    top, _ = parse_sexp(line, i + 6)
    for k in range(0, len(top) - 1, 2):
        if top[k].upper() == item:
            return top[k + 1]
    raise ValueError(f"{item!r} missing")


def children(body) -> list:
    """The parts of a multipart BODYSTRUCTURE: the leading lists, before the subtype."""
    out = []
    if isinstance(body, list):
        for item in body:
            if not isinstance(item, list):
                break
            out.append(item)
    return out


def is_rfc822(body) -> bool:
    return (isinstance(body, list) and len(body) > 8 and isinstance(body[0], bytes)
            and isinstance(body[1], bytes) and body[0].upper() == b"MESSAGE"
            and body[1].upper() == b"RFC822" and isinstance(body[8], list))


def multipart_depth(body) -> int:
    """How many multipart levels deep a BODYSTRUCTURE goes (along any path, through
    message/rfc822 parts)."""
    parts = children(body)
    if parts:
        return 1 + max(multipart_depth(p) for p in parts)
    if is_rfc822(body):
        return multipart_depth(body[8])
    return 0


def rfc822_depth(body) -> int:
    if is_rfc822(body):
        return 1 + rfc822_depth(body[8])
    parts = children(body)
    return max((rfc822_depth(p) for p in parts), default=0)


def top_children(body) -> int:
    return len(children(body))


# ----------------------------------------------------------------------------------------------
# Targets

class IcsServer:
    name = "icsmail"

    def __init__(self, root: Path, password_hash: str):
        self.tmp = root
        smtp_port = free_port()
        config = base_config(root, smtp_port, password_hash)
        config = deep_merge(config, {
            "smtp": {"maxMessageSize": MAX_MESSAGE},
            "tls": {"mode": "none"},
            "defaultAuthDomain": DOMAIN,
            "access": {"implicitTls": {"enable": False}},
        })
        self.imap_port = config["imap"]["port"]
        self.pop3_port = config["pop3"]["port"]
        path = write_config(root / "config.json", config)
        self.server = Server(root, smtp_port, config, path, "serve")
        self.server.start()
        from icshelpers import wait_for_port
        wait_for_port(self.imap_port, self.server.proc)
        wait_for_port(self.pop3_port, self.server.proc)
        self.pid = self.server.proc.pid

    def alive(self) -> bool:
        return self.server.alive()

    def stop(self) -> None:
        self.server.stop()

    def stderr(self) -> str:
        return self.server.stderr()


def make_password_hash() -> str:
    result = subprocess.run([icsmail_bin(), "hash-password"], input=PASSWORD + "\n",
                            capture_output=True, text=True, timeout=60, check=True)
    return [l for l in result.stdout.splitlines() if l.strip()][-1].strip()


# ----------------------------------------------------------------------------------------------
# The steps

def deliver_data(port: int, msg: bytes, step: Step) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as smtp:
        try:
            refused = smtp.sendmail("sender@example.org", [ALICE], msg)
            step.outcome = "250" if not refused else f"refused {refused}"
        except smtplib.SMTPDataError as exc:
            step.outcome = f"{exc.smtp_code} {exc.smtp_error.decode(errors='replace')[:40]}"
        except smtplib.SMTPResponseException as exc:
            step.outcome = f"{exc.smtp_code} {exc.smtp_error.decode(errors='replace')[:40]}"


def deliver_bdat(port: int, msg: bytes, step: Step) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as smtp:
        smtp.ehlo("shapes.example.org")
        if not smtp.has_extn("chunking"):
            step.outcome = "no CHUNKING"
            return
        code, text = smtp.mail("sender@example.org")
        assert code == 250, (code, text)
        code, text = smtp.rcpt(ALICE)
        assert code == 250, (code, text)
        smtp.send(f"BDAT {len(msg)} LAST\r\n".encode() + msg)
        code, text = smtp.getreply()
        step.outcome = str(code) if code == 250 else f"{code} {text.decode()[:40]}"


def imap_login(port: int, host: str = "127.0.0.1", source: str | None = None) -> Imap:
    imap = Imap(port, host, source)
    status, _, line = imap.cmd(f"LOGIN {ALICE} {PASSWORD}")
    if status != "OK":
        raise RuntimeError(f"LOGIN: {line!r}")
    status, _, line = imap.cmd("SELECT INBOX")
    if status != "OK":
        raise RuntimeError(f"SELECT: {line!r}")
    return imap


def imap_steps(shape: Shape, msg: bytes, imap: Imap, pid: int, label: str,
               binary: bool) -> list[Step]:
    """FETCH and SEARCH steps on message 1, each measured; sanity checks fill Step.failed."""
    size = len(msg)
    items = [
        ("RFC822.SIZE", "FETCH 1 (RFC822.SIZE)"),
        ("ENVELOPE", "FETCH 1 (ENVELOPE)"),
        ("BODYSTRUCTURE", "FETCH 1 (BODYSTRUCTURE)"),
        ("BODY[HEADER]", "FETCH 1 (BODY.PEEK[HEADER])"),
        ("BODY[1]", "FETCH 1 (BODY.PEEK[1])"),
        ("BODY[deep]", f"FETCH 1 (BODY.PEEK[{shape.deep}])"),
        ("BODY[TEXT]", "FETCH 1 (BODY.PEEK[TEXT])"),
    ]
    if binary:
        items.append(("BINARY[1]", "FETCH 1 (BINARY.PEEK[1])"))
    name, value = shape.search_header
    items += [
        ("SEARCH HEADER", f'SEARCH HEADER {name} "{value}"'),
        ("SEARCH BODY", 'SEARCH BODY "bodyword"'),
        ("SEARCH TEXT", 'SEARCH TEXT "bodyword"'),
    ]
    steps = []
    for label_item, command in items:
        step = Step(f"{label} {label_item}")
        steps.append(step)
        before = imap.received
        try:
            with Meter(pid, step):
                status, lines, tagged = imap.cmd(command)
        except (Closed, TimeoutError, OSError) as exc:
            step.failed = f"{type(exc).__name__}: {exc}"
            step.outcome = "dropped" if isinstance(exc, Closed) else "timeout"
            return steps
        step.resp_bytes = imap.received - before
        step.outcome = status + (" " + tagged.decode(errors="replace").split(" ", 2)[2][:30]
                                 if status != "OK" else "")
        if status == "BAD":
            step.failed = f"BAD for a well-formed command: {tagged!r}"
        elif status == "NO" and label_item != "BINARY[1]":
            step.failed = f"NO: {tagged!r}"
        elif status == "NO":
            pass                                                  # e.g. [UNKNOWN-CTE]
        else:
            try:
                check_answer(shape, label_item, lines, size, step)
            except (ValueError, IndexError, KeyError) as exc:
                step.failed = f"unparsable answer: {exc}"
    return steps


def check_answer(shape: Shape, item: str, lines: list[bytes], size: int, step: Step) -> None:
    fetches = [l for l in lines if b" FETCH (" in l]
    searches = [l for l in lines if l.startswith(b"* SEARCH")]
    if item.startswith("SEARCH"):
        if not searches:
            raise ValueError("no * SEARCH")
        ids = searches[0].split()[2:]
        step.outcome += f" [{b' '.join(ids).decode() or 'none'}]"
        return
    if not fetches:
        raise ValueError("no FETCH response")
    line = fetches[0]
    if item == "RFC822.SIZE":
        got = int(fetch_item(line, b"RFC822.SIZE"))
        step.outcome += f" {got}"
        if got < size:
            step.failed = f"RFC822.SIZE {got} < the {size} bytes sent"
    elif item == "ENVELOPE":
        env = fetch_item(line, b"ENVELOPE")
        if len(env) != 10:
            step.failed = f"ENVELOPE has {len(env)} fields"
    elif item == "BODYSTRUCTURE":
        body = fetch_item(line, b"BODYSTRUCTURE")
        depth, children, r822 = multipart_depth(body), top_children(body), rfc822_depth(body)
        step.outcome += f" mp-depth {depth}" + (f" parts {children}" if children else "") \
            + (f" rfc822-depth {r822}" if r822 else "")
        if shape.depth is not None:
            want = min(shape.depth, MIME_MAX_DEPTH)
            if not (want - 1 <= depth <= MIME_MAX_DEPTH):
                step.failed = f"multipart depth {depth}, expected about {want} (cap {MIME_MAX_DEPTH})"
        if shape.parts is not None and children != min(shape.parts, MIME_MAX_PARTS - 1):
            # MAX_PARTS counts the message too: 9,999 parts at most, as Dovecot lists
            step.failed = f"{children} parts listed of the {shape.parts} sent"
        if r822 > MIME_MAX_DEPTH + 1:
            step.failed = f"message/rfc822 depth {r822} past the cap {MIME_MAX_DEPTH}"
    elif item == "BODY[HEADER]" and shape.name.startswith("header"):
        if step.resp_bytes < size * 0.9:
            step.failed = f"header answer {step.resp_bytes} bytes for a {size}-byte header"


def pop3_steps(port: int, pid: int, size: int) -> list[Step]:
    import poplib
    steps = []
    pop = poplib.POP3("127.0.0.1", port, timeout=TIMEOUT)
    poplib._MAXLINE = 1 << 30
    try:
        pop.user(ALICE)
        pop.pass_(PASSWORD)
        for name, call in (("POP3 RETR", lambda: pop.retr(1)), ("POP3 TOP 0", lambda: pop.top(1, 0))):
            step = Step(name)
            steps.append(step)
            try:
                with Meter(pid, step):
                    resp, lines, octets = call()
            except (poplib.error_proto, OSError, EOFError) as exc:
                step.failed = f"{type(exc).__name__}: {exc}"
                step.outcome = "error"
                return steps
            step.resp_bytes = octets
            step.outcome = resp.decode(errors="replace").split(" ", 1)[0]
            if name == "POP3 RETR" and octets < size:
                step.failed = f"RETR gave {octets} bytes of {size}"
        pop.quit()
    finally:
        pop.close()
    return steps


def still_serving(server: IcsServer) -> str:
    """'' when a new SMTP and IMAP client are served, else what went wrong."""
    if not server.alive():
        return "server exited"
    try:
        with smtplib.SMTP("127.0.0.1", server.server.port, timeout=30) as smtp:
            code, _ = smtp.ehlo("after.example.org")
            if code != 250:
                return f"EHLO answered {code}"
        imap = imap_login(server.imap_port)
        status, _, line = imap.cmd("NOOP")
        imap.close()
        if status != "OK":
            return f"NOOP: {line!r}"
    except (OSError, RuntimeError, Closed, TimeoutError, smtplib.SMTPException) as exc:
        return f"a new client is not served: {exc}"
    return ""


# ----------------------------------------------------------------------------------------------
# Dovecot, for comparison

class Dovecot:
    def __init__(self):
        import imaphelpers                                    # noqa: needs pytest (in the venv)
        self.mod = imaphelpers
        tmp = Path(tempfile.mkdtemp(prefix="shapes-dovecot-"))
        self.link_dir = tmp
        self.target = imaphelpers.DovecotTarget(tmp)
        # the 10M quota_max_mail_size only applies to saving; deliveries here are Maildir files

    def imap_pid(self, imap: Imap) -> int:
        """The `imap` process that serves the newest logged-in connection."""
        master = self.target.proc.proc.pid
        out = subprocess.run(["pgrep", "-n", "-P", str(master), "-x", "imap"],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError("no Dovecot imap process")
        return int(out.stdout.split()[0])

    def cleanup(self) -> None:
        self.target.cleanup()
        shutil.rmtree(self.link_dir, ignore_errors=True)


# ----------------------------------------------------------------------------------------------

def mb(n: float) -> str:
    return f"{n / MiB:.1f}"


def run_shape(shape: Shape, password_hash: str,
              dovecot: Dovecot | None) -> tuple[list[Step], int, str]:
    msg = shape.make()
    size = len(msg)
    root = Path(tempfile.mkdtemp(prefix=f"shapes-{shape.name}-"))
    steps: list[Step] = []
    problem = ""
    server = IcsServer(root, password_hash)
    try:
        base_kb = status_kb(server.pid, "VmRSS")
        for label, fn in (("SMTP DATA", deliver_data), ("SMTP BDAT", deliver_bdat)):
            step = Step(label)
            steps.append(step)
            try:
                with Meter(server.pid, step):
                    fn(server.server.port, msg, step)
            except (OSError, smtplib.SMTPException, AssertionError) as exc:
                step.failed = f"{type(exc).__name__}: {exc}"
                step.outcome = "error"
        delivered = any(s.outcome == "250" for s in steps)
        if delivered and server.alive():
            try:
                imap = imap_login(server.imap_port)
                status, lines, _ = imap.cmd("CAPABILITY")
                binary = any(b" BINARY" in l for l in lines)
                steps += imap_steps(shape, msg, imap, server.pid, "IMAP", binary)
                imap.close()
            except (OSError, RuntimeError, Closed, TimeoutError) as exc:
                steps.append(Step("IMAP login", "error", failed=f"{type(exc).__name__}: {exc}"))
            if server.alive():
                try:
                    steps += pop3_steps(server.pop3_port, server.pid, size)
                except Exception as exc:                                  # noqa: BLE001
                    steps.append(Step("POP3", "error", failed=f"{type(exc).__name__}: {exc}"))
        elif not delivered:
            # a refusal by design is an outcome: it must be a clear SMTP error reply
            for s in steps:
                if s.failed == "" and not s.outcome[:1] in ("4", "5"):
                    s.failed = f"neither delivered nor a clear refusal: {s.outcome}"
        limit_kb = (MEM_FACTOR * size + MEM_SLACK) // 1024
        for s in steps:
            if s.peak_kb > limit_kb and not s.failed:
                s.failed = f"peak RSS {s.peak_kb // 1024} MB > {limit_kb // 1024} MB"
        problem = still_serving(server)
        if problem:
            steps.append(Step("after", "dead", failed=problem))
        if dovecot and delivered:
            steps += dovecot_steps(shape, msg, dovecot)
    finally:
        server.stop()
        log = server.stderr()
        if "panicked" in log:
            steps.append(Step("stderr", "panic", failed="a panic in the server's log"))
            print(log[-3000:], file=sys.stderr)
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}", file=sys.stderr)
    return steps, size, f"base RSS {base_kb // 1024} MB"


def dovecot_steps(shape: Shape, msg: bytes, dovecot: Dovecot) -> list[Step]:
    user = dovecot.target.fresh_user()
    dovecot.target.deliver(user, msg)
    target = dovecot.target
    imap = Imap(target.port, target.host, target.source)
    status, _, line = imap.cmd(f"LOGIN {user} {PASSWORD}")
    if status != "OK":
        return [Step("DOVECOT login", "error", failed=repr(line))]
    status, _, _ = imap.cmd("SELECT INBOX")
    pid = dovecot.imap_pid(imap)
    steps = imap_steps(shape, msg, imap, pid, "DOVECOT", True)
    imap.close()
    for s in steps:               # Dovecot's answers are figures only, not judged
        if s.failed:
            s.outcome += " (" + s.failed[:40] + ")"
            s.failed = ""
    return steps


def print_table(shape: Shape, size: int, steps: list[Step], extra: str) -> None:
    print(f"\n## {shape.name}: {shape.note}; {size:,} bytes ({mb(size)} MiB); {extra}")
    print("| step | server CPU ms | ms/MiB | wall ms | peak RSS MB | answer bytes | outcome |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for s in steps:
        per = s.cpu * 1000 / (size / MiB)
        outcome = s.outcome + (f" **FAIL: {s.failed}**" if s.failed else "")
        print(f"| {s.name} | {s.cpu * 1000:.0f} | {per:.0f} | {s.wall * 1000:.0f} | "
              f"{s.peak_kb / 1024:.0f} | {s.resp_bytes:,} | {outcome} |")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--dovecot", action="store_true")
    args = parser.parse_args()
    if args.list:
        for s in SHAPES:
            print(f"{s.name:20} {s.note}{'' if s.default else ' (only with --only)'}")
        return 0
    chosen = [s for s in SHAPES
              if (s.name in args.only.split(",") if args.only else s.default)]
    if not chosen:
        print("no such shape", file=sys.stderr)
        return 2
    if not Path(icsmail_bin()).exists():
        print(f"{icsmail_bin()} missing: cargo build --release", file=sys.stderr)
        return 2
    password_hash = make_password_hash()
    dovecot = Dovecot() if args.dovecot else None
    failures = []
    print(f"# Message shapes: {icsmail_bin()}, a fresh server per shape, peak RSS reset per step "
          f"(clear_refs 5); memory bound {MEM_FACTOR} x size + {MEM_SLACK // MiB} MB; "
          f"client timeout {TIMEOUT:.0f} s; load average {os.getloadavg()[0]:.2f}")
    try:
        for shape in chosen:
            t0 = time.monotonic()
            steps, size, extra = run_shape(shape, password_hash, dovecot)
            print_table(shape, size, steps, extra + f"; {time.monotonic() - t0:.1f} s in all")
            failures += [f"{shape.name}: {s.name}: {s.failed}" for s in steps if s.failed]
    finally:
        if dovecot:
            dovecot.cleanup()
    print()
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print(f"all {len(chosen)} shapes: no death, hang, BAD, dropped connection or memory "
          f"past the bound")
    return 0


if __name__ == "__main__":
    sys.exit(main())
