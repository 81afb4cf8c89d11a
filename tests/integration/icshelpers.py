"""Shared helpers of the black-box integration tests: ports, configs, the server process, a raw
SMTP client and Maildir inspection. Only the binary's command line, its TCP port and the files it
writes are used; nothing here knows the server's internals."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import re
import signal
import socket
import ssl
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


# Ports this process handed out: the kernel may give a just-closed port again at once, and
# a test that asks for several (SMTP, submission, IMAP, POP3 of one server) needs them apart.
_HANDED_OUT: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now and not handed out before by this process."""
    for _ in range(1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no free port that was not handed out before")


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
        # `serve` also starts POP3 and IMAP: keep them on loopback, off the privileged defaults.
        "access": {"interfaces": ["127.0.0.1"]},
        "pop3": {"port": free_port(), "pop3sPort": free_port()},
        "imap": {"port": free_port(), "imapsPort": free_port()},
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


# --------------------------------------------------------------------------------------------
# TLS, AUTH and submission helpers (test_tls.py, test_auth.py, test_submission.py)


@dataclass
class CertPair:
    """A PEM certificate and its private key (the key may deliberately not match)."""
    cert: Path
    key: Path

    def config(self) -> dict:
        return {"certFile": str(self.cert), "keyFile": str(self.key)}

    def der(self) -> bytes:
        return cert_der(self.cert)

    def fingerprint(self) -> str:
        return sha256_hex(self.der())

    def copy_to(self, cert: Path, key: Path) -> "CertPair":
        """Writes this pair's contents to `cert`/`key` (atomically: write, then rename)."""
        for src, dst in ((self.cert, cert), (self.key, key)):
            tmp = dst.with_name(dst.name + ".new")
            tmp.write_bytes(src.read_bytes())
            os.replace(tmp, dst)
        return CertPair(cert, key)


def make_cert(directory: Path, name: str, kind: str = "rsa", cn: str = HELO_NAME,
              days: int = 30) -> CertPair:
    """A self-signed certificate for `cn` (also as subjectAltName) made by `openssl req`;
    `kind` is "rsa" (2048 bits) or "ec" (P-256)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    newkey = {"rsa": ["-newkey", "rsa:2048"],
              "ec": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]}[kind]
    subprocess.run(["openssl", "req", "-x509", *newkey, "-nodes", "-subj", f"/CN={cn}",
                    "-addext", f"subjectAltName=DNS:{cn}", "-days", str(days),
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return CertPair(cert, key)


def make_dated_cert(directory: Path, name: str, valid_from_days: int, valid_to_days: int,
                    cn: str = HELO_NAME) -> CertPair:
    """A self-signed EC certificate valid from `valid_from_days` to `valid_to_days` from now
    (negative: in the past), made with python3-cryptography (openssl 3.0's `req` cannot
    back-date)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now + datetime.timedelta(days=valid_from_days))
            .not_valid_after(now + datetime.timedelta(days=valid_to_days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return CertPair(cert_path, key_path)


def cert_der(path: Path) -> bytes:
    """The first certificate of a PEM file, DER-encoded."""
    text = path.read_text()
    match = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)
    assert match, f"no PEM certificate in {path}"
    return ssl.PEM_cert_to_DER_cert(match.group(0))


def pem_certs(text: str) -> list[bytes]:
    """Every PEM certificate in `text` (e.g. `openssl s_client -showcerts` output), as DER."""
    return [ssl.PEM_cert_to_DER_cert(m) for m in re.findall(
        r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tls_overrides(pair: CertPair, mode: str = "optional", smtps_port: int | None = None,
                  submission_port: int | None = None, dh_key_length: int | None = None,
                  default_auth_domain: str | None = DOMAIN) -> dict:
    """`extra=` for make_server: `tls.mode`, the pair as smtp.certificate and
    access.certificate, SMTPS and submission ports when given, defaultAuthDomain."""
    tls: dict = {"mode": mode}
    if dh_key_length is not None:
        tls["dhKeyLength"] = dh_key_length
    smtp: dict = {"certificate": pair.config(), "submissionPort": submission_port}
    if smtps_port is not None:
        smtp["smtps"] = {"enable": True, "port": smtps_port}
    out = {"tls": tls, "smtp": smtp, "access": {"certificate": pair.config()}}
    if default_auth_domain:
        out["defaultAuthDomain"] = default_auth_domain
    return out


def client_tls_context(cafile: Path | None = None) -> ssl.SSLContext:
    """A TLS client context: verifies against `cafile` (and the name mx.example.test) when
    given, else accepts any certificate (the tests compare fingerprints themselves)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(cafile=str(cafile))
    return ctx


def plain_response(login: str, password: str, authzid: str = "") -> str:
    """The base64 SASL PLAIN response."""
    raw = f"{authzid}\0{login}\0{password}".encode("utf-8")
    return base64.b64encode(raw).decode("ascii")


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def ehlo_keywords(reply: Reply) -> list[str]:
    """The extension lines of an EHLO reply (without the greeting line), upper-cased."""
    return [line[4:].strip().upper() for line in reply.lines[1:]]


class TLSClient(SMTPClient):
    """The raw SMTP client with STARTTLS (`starttls()`) and implicit TLS (`implicit=True`)."""

    def __init__(self, port: int, host: str = "127.0.0.1", source: str | None = None,
                 timeout: float = 10.0, implicit: bool = False,
                 context: ssl.SSLContext | None = None, server_hostname: str = HELO_NAME):
        super().__init__(port, host=host, source=source, timeout=timeout, greeting=not implicit)
        self.context = context or client_tls_context()
        self.server_hostname = server_hostname
        if implicit:
            self._wrap()
            self.greeting = self.read_reply()

    def _wrap(self) -> None:
        assert not self.buf, f"bytes received before the TLS handshake: {self.buf!r}"
        self.sock = self.context.wrap_socket(self.sock, server_hostname=self.server_hostname)

    @property
    def is_tls(self) -> bool:
        return isinstance(self.sock, ssl.SSLSocket)

    def starttls(self) -> Reply:
        reply = self.cmd("STARTTLS", "220")
        self._wrap()
        return reply

    def peer_cert_der(self) -> bytes:
        return self.sock.getpeercert(binary_form=True)

    def tls_version(self) -> str:
        return self.sock.version()

    def auth_plain(self, login: str, password: str, expected: int | str | None = None,
                   authzid: str = "") -> Reply:
        return self.cmd(f"AUTH PLAIN {plain_response(login, password, authzid)}", expected)

    def auth_login(self, login: str, password: str, expected: int | str | None = None) -> Reply:
        self.cmd("AUTH LOGIN", "334")
        self.cmd(b64(login), "334")
        return self.cmd(b64(password), expected)


def run_s_client(port: int, *args: str, starttls: bool = False, timeout: float = 20,
                 stdin: str = "Q\n") -> subprocess.CompletedProcess:
    """`openssl s_client` against 127.0.0.1:`port` (with `-starttls smtp` when asked); stdout
    and stderr together in .stdout."""
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", HELO_NAME,
           "-showcerts"]
    if starttls:
        cmd += ["-starttls", "smtp", "-name", "client.example.org"]
    return subprocess.run(cmd + list(args), input=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)


def s_client_protocol(output: str) -> str | None:
    """The negotiated protocol in `openssl s_client` output ("TLSv1.3"), None without one."""
    match = re.search(r"^New, (TLSv[0-9.]+), Cipher is (\S+)", output, re.M)
    return match.group(1) if match else None


def s_client_cipher(output: str) -> str | None:
    match = re.search(r"^New, (TLSv[0-9.]+), Cipher is (\S+)", output, re.M)
    return match.group(2) if match else None


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def smtps_port(server: Server) -> int:
    return server.config["smtp"]["smtps"]["port"]


def submission_port(server: Server) -> int:
    return server.config["smtp"]["submissionPort"]


def received_protocol(message: bytes) -> str:
    """The `with` protocol of the first Received header of a stored message ("ESMTPSA")."""
    text = message.decode("utf-8", errors="replace")
    match = re.search(r"^Received:(.*(?:\n[ \t].*)*)", text, re.M)
    assert match, f"no Received header in {text[:2000]!r}"
    received = re.sub(r"\s+", " ", match.group(1))
    proto = re.search(r"\bwith (\S+)", received)
    assert proto, f"Received header without 'with': {received!r}"
    return proto.group(1)


def find_message(server: Server, address: str, token: str, timeout: float = 5.0) -> bytes:
    """The one message in `address`'s new/ that contains `token`."""
    found: list[bytes] = []

    def look() -> bool:
        found[:] = [m for m in server.new_messages(address) if token.encode() in m]
        return bool(found)

    wait_until(look, timeout)
    assert len(found) == 1, f"{len(found)} messages with {token} in {server.new_dir(address)}"
    return found[0]


def read_until_closed(sock: socket.socket, timeout: float = 5.0) -> tuple[bytes, bool]:
    """Everything the peer sends until it closes (True) or `timeout` passes (False)."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return data, True
        except socket.timeout:
            return data, False
        if not chunk:
            return data, True
        data += chunk
    return data, False


def client_hello() -> bytes:
    """The bytes of a real TLS ClientHello (Python's ssl, made without a network)."""
    ctx = client_tls_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=HELO_NAME)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    assert hello[:1] == b"\x16", hello[:16]
    return hello
