"""Shared helpers of the black-box integration tests: ports, configs, the server process, a raw
SMTP client and Maildir inspection. Only the binary's command line, its TCP port and the files it
writes are used; nothing here knows the server's internals."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

DOMAIN = "example.test"
HELO_NAME = "mx.example.test"
PASSWORD = "secret-test-password"
ALICE = "alice@example.test"
ALIAS = "al@example.test"
BOB = "bob@example.test"
START_TIMEOUT = 10.0


def icsmail_bin() -> str:
    """The binary under test: $ICSMAIL_BIN (relative paths are taken from the repo root)."""
    value = os.environ.get("ICSMAIL_BIN")
    if value:
        path = Path(value)
        if not path.is_absolute():
            path = REPO_ROOT / path
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
        if not target.is_absolute():
            target = REPO_ROOT / target
        path = target / "release" / "icsmail"
    return str(path)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def deep_merge(base: dict, extra: dict | None) -> dict:
    out = copy.deepcopy(base)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def base_config(tmp: Path, port: int, password_hash: str) -> dict:
    """The minimal test configuration (two accounts, one alias, SMTP on 127.0.0.1:<port>)."""
    return {
        "domains": [DOMAIN],
        "heloName": HELO_NAME,
        "stateDir": str(tmp / "state"),
        "storage": {"path": str(tmp / "mail")},
        "accounts": {
            ALICE: {"hashedPassword": password_hash, "aliases": [ALIAS]},
            BOB: {"hashedPassword": password_hash},
        },
        "smtp": {
            "port": port,
            "interfaces": ["127.0.0.1"],
            "submissionPort": None,
            "maxMessageSize": 10 * 1024 * 1024,
            "smtputf8": True,
            "limits": {
                "maxRecipients": 100,
                "maxErrors": 10,
                "commandTimeout": 300,
                "dataTimeout": 600,
                "connectionsPerIp": 50,
                "maxConnections": 1000,
            },
        },
    }


def write_config(path: Path, config: dict) -> Path:
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False))
    return path


def wait_for_port(port: int, proc: subprocess.Popen | None = None,
                  timeout: float = START_TIMEOUT, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before listening")
        if port_accepts(port, host):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing accepts connections on {host}:{port} after {timeout} s")


# --------------------------------------------------------------------------------------------
# The server process


@dataclass
class Server:
    tmp: Path
    port: int
    config: dict
    config_path: Path
    mode: str
    proc: subprocess.Popen | None = None
    stderr_path: Path | None = None
    stdout_path: Path | None = None
    expect_exit: bool = False
    host: str = "127.0.0.1"
    extra_env: dict = field(default_factory=dict)
    starts: int = 0

    @property
    def mail_root(self) -> Path:
        return Path(self.config["storage"]["path"])

    @property
    def state_dir(self) -> Path:
        return Path(self.config["stateDir"])

    def mailbox(self, address: str = ALICE) -> Path:
        local, domain = address.split("@")
        return self.mail_root / domain / local

    def new_dir(self, address: str = ALICE) -> Path:
        return self.mailbox(address) / "new"

    def cur_dir(self, address: str = ALICE) -> Path:
        return self.mailbox(address) / "cur"

    def new_files(self, address: str = ALICE) -> list[Path]:
        return list_files(self.new_dir(address))

    def cur_files(self, address: str = ALICE) -> list[Path]:
        return list_files(self.cur_dir(address))

    def new_messages(self, address: str = ALICE) -> list[bytes]:
        return [p.read_bytes() for p in self.new_files(address)]

    def start(self) -> "Server":
        bin_path = icsmail_bin()
        self.starts += 1
        self.stderr_path = self.tmp / f"server-{self.port}-{self.starts}.stderr"
        self.stdout_path = self.tmp / f"server-{self.port}-{self.starts}.stdout"
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        env.update(self.extra_env)
        with open(self.stderr_path, "wb") as err, open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen(
                [bin_path, self.mode, "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=self.tmp, env=env,
            )
        try:
            wait_for_port(self.port, self.proc)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}\n--- server stderr ---\n{self.stderr()}") from None
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        self.expect_exit = True
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        self.expect_exit = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def stderr(self) -> str:
        """The stderr of every start of this server, oldest first."""
        out = []
        for path in sorted(self.tmp.glob(f"server-{self.port}-*.stderr")):
            out.append(f"[{path.name}]\n" + path.read_text(errors="replace"))
        return "\n".join(out)

    def stdout(self) -> str:
        if self.stdout_path and self.stdout_path.exists():
            return self.stdout_path.read_text(errors="replace")
        return ""

    def client(self, **kwargs) -> "SMTPClient":
        return SMTPClient(self.port, host=self.host, **kwargs)


# --------------------------------------------------------------------------------------------
# Raw SMTP client


class ConnectionClosed(Exception):
    pass


@dataclass
class Reply:
    code: int
    lines: list[str]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def __str__(self) -> str:
        return self.text


class SMTPClient:
    """A deliberately dumb SMTP client: sends exactly the bytes it is given and parses replies.
    `cmd(line, expect)` sends one line with CRLF and checks the reply; `expect` is a code (int)
    or a prefix of the reply's first line such as "250 2.1.0"."""

    def __init__(self, port: int, host: str = "127.0.0.1", source: str | None = None,
                 timeout: float = 10.0, greeting: bool = True):
        self.sock = socket.create_connection(
            (host, port), timeout=timeout,
            source_address=(source, 0) if source else None)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.greeting = self.read_reply() if greeting else None

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def settimeout(self, timeout: float) -> None:
        self.sock.settimeout(timeout)

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _read_line(self) -> bytes:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionClosed(f"connection closed by server (pending: {self.buf!r})")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r")

    def read_reply(self) -> Reply:
        lines = []
        while True:
            raw = self._read_line().decode("utf-8", errors="replace")
            if len(raw) < 3 or not raw[:3].isdigit():
                raise AssertionError(f"malformed reply line {raw!r} (so far {lines})")
            lines.append(raw)
            if len(raw) == 3 or raw[3] == " ":
                break
            if raw[3] != "-":
                raise AssertionError(f"malformed reply line {raw!r}")
        codes = {line[:3] for line in lines}
        assert len(codes) == 1, f"reply lines with different codes: {lines}"
        return Reply(int(lines[0][:3]), lines)

    def expect(self, expected: int | str | None = None) -> Reply:
        reply = self.read_reply()
        check(reply, expected)
        return reply

    def cmd(self, line: bytes | str, expected: int | str | None = None) -> Reply:
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send(line + b"\r\n")
        return self.expect(expected)

    def ehlo(self, name: str = "client.example.org") -> Reply:
        return self.cmd(f"EHLO {name}", 250)

    def data(self, message: bytes | str, expected: int | str | None = "250 2.0.0") -> Reply:
        """DATA, then `message` (CRLF lines; dot-stuffed here) and the end marker."""
        if isinstance(message, str):
            message = message.encode("utf-8")
        self.cmd("DATA", 354)
        self.send(dot_stuff(message) + b".\r\n")
        return self.expect(expected)

    def transaction(self, sender: str, recipients: list[str], message: bytes | str,
                    mail_params: str = "") -> Reply:
        self.cmd(f"MAIL FROM:<{sender}>{(' ' + mail_params) if mail_params else ''}", "250 2.1.0")
        for rcpt in recipients:
            self.cmd(f"RCPT TO:<{rcpt}>", "250 2.1.5")
        return self.data(message)

    def closed_by_server(self, timeout: float = 5.0) -> bool:
        """True when the server closes the connection within `timeout` (data before it is
        discarded)."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        return False


def check(reply: Reply, expected: int | str | None) -> None:
    if expected is None:
        return
    if isinstance(expected, int):
        assert reply.code == expected, f"expected {expected}, got {reply.text!r}"
    else:
        assert reply.lines[0].startswith(expected), f"expected {expected!r}..., got {reply.text!r}"


def dot_stuff(message: bytes) -> bytes:
    """CRLF-terminated, dot-stuffed message data (without the final ".")."""
    if message and not message.endswith(b"\r\n"):
        message += b"\r\n"
    lines = message.split(b"\r\n")
    return b"\r\n".join(b"." + l if l.startswith(b".") else l for l in lines)


def crlf(text: str | bytes) -> bytes:
    if isinstance(text, str):
        text = text.encode("utf-8")
    return text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def make_message(token: str, sender: str = "sender@example.org", to: str = ALICE,
                 subject: str = "test", body: str = "Hello.\n") -> bytes:
    """A small RFC 5322 message with CRLF line ends carrying `token` in Message-ID and body."""
    text = (f"From: <{sender}>\nTo: <{to}>\nSubject: {subject} {token}\n"
            f"Message-ID: <{token}@client.example.org>\n\n{token}\n{body}")
    return crlf(text)


# --------------------------------------------------------------------------------------------
# Maildir inspection


def list_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file())


def all_message_files(mail_root: Path) -> list[Path]:
    """Every file in any cur/, new/ or tmp/ directory below `mail_root`."""
    out = []
    if not mail_root.exists():
        return out
    for dirpath, _dirs, files in os.walk(mail_root):
        if Path(dirpath).name in ("cur", "new", "tmp"):
            out.extend(Path(dirpath) / f for f in files)
    return sorted(out)


def split_stored(stored: bytes, original_crlf: bytes) -> tuple[bytes, bytes]:
    """Splits a stored message into (trace headers the server added, the original message) and
    checks that the original (in LF form) is intact at the end."""
    original = original_crlf.replace(b"\r\n", b"\n")
    assert stored.endswith(original), (
        f"stored message does not end with the original.\n--- stored ---\n{stored[:3000]!r}\n"
        f"--- original (LF) ---\n{original[:3000]!r}")
    return stored[: len(stored) - len(original)], original


def check_trace(prefix: bytes, sender: str, with_proto: str | None = "ESMTP",
                helo: str | None = None) -> None:
    text = prefix.decode("utf-8", errors="replace")
    first = text.split("\n", 1)[0]
    assert first == f"Return-Path: <{sender}>", f"first line is {first!r}, prefix {text!r}"
    assert "\nReceived:" in text, f"no Received header in {text!r}"
    received = text.split("\nReceived:", 1)[1]
    # Unfold the header.
    received = re.sub(r"\n[ \t]+", " ", received).split("\n", 1)[0]
    assert f"by {HELO_NAME}" in received, f"Received lacks 'by {HELO_NAME}': {received!r}"
    assert "[127.0.0.1]" in received, f"Received lacks the client address: {received!r}"
    if helo:
        assert f"from {helo}" in received, f"Received lacks 'from {helo}': {received!r}"
    if with_proto:
        assert re.search(rf"\bwith {with_proto}\b", received), (
            f"Received lacks 'with {with_proto}': {received!r}")


def maildir_sizes_ok(path: Path) -> None:
    """The file name carries ,S=<size on disk>,W=<size with CRLF line ends>."""
    data = path.read_bytes()
    match = re.search(r",S=(\d+),W=(\d+)", path.name)
    assert match, f"no ,S=,W= in file name {path.name}"
    assert int(match.group(1)) == len(data), f"S= {match.group(1)} but file has {len(data)} bytes"
    crlf_size = len(data) + data.count(b"\n")
    assert int(match.group(2)) == crlf_size, f"W= {match.group(2)} but CRLF size is {crlf_size}"


def run_swaks(port: int, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(port), "--helo", "client.example.org",
         *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
