"""Shared helpers of the IMAP black-box tests (test_imap_*.py).

The tests talk to an IMAP *target*: by default ics-mail (`icsmail serve` with SMTP, POP3 and
IMAP, started through conftest's `make_server`/`make_module_server`), or, with
`IMAP_TEST_TARGET=dovecot`, a private Dovecot instance (`dovecot -c <tmp>/dovecot.conf -F`) with
the same accounts, password, Maildir++ layout (`<mail>/<domain>/<local>/`, `.` as hierarchy
separator), special-use folders and TLS settings. Running the suite against Dovecot is how the
expectations in these tests were checked against a real, correct IMAP server.

What differs per target is behind `ImapTarget`: `deliver(user, message)` (SMTP for ics-mail, a
Maildir file for Dovecot), `restart()`, the ports. Tests of things only ics-mail has (its config
keys, SMTP delivery) skip themselves on Dovecot with `target.only_icsmail()`.

Clients: Python's imaplib (`target.imap(user)`: logged in, `target.imap(login=False)`), a raw
line client `Raw` (exact bytes, literals, SASL-IR, IDLE, garbage) and, in test_imap_clients.py,
mbsync and curl.
"""

from __future__ import annotations

import base64
import imaplib
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from icshelpers import (ALIAS, ALICE, BOB, DOMAIN, HELO_NAME, PASSWORD, CertPair,
                        client_tls_context, crlf, free_port, tls_overrides, wait_for_port)

TARGET = os.environ.get("IMAP_TEST_TARGET", "icsmail").lower()
IS_DOVECOT = TARGET == "dovecot"

# Extra accounts, so that tests sharing one server per module each get a mailbox of their own.
EXTRA_USERS = [f"user{i:02d}@{DOMAIN}" for i in range(1, 41)]
ALL_USERS = [ALICE, BOB, *EXTRA_USERS]

# The default special-use folders of ics-mail (storage.defaultFolders' default), the same in the
# Dovecot config below.
SPECIAL_USE = {"Drafts": "\\Drafts", "Sent": "\\Sent", "Trash": "\\Trash", "Junk": "\\Junk"}

imaplib._MAXLINE = 10_000_000  # big FETCH responses


def distinct_free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def make_cert(directory: Path, name: str) -> CertPair:
    """A self-signed certificate for mx.example.test that also names the loopback addresses
    the targets listen on (as DNS and IP names: mbsync compares the host string)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    san = (f"subjectAltName=DNS:{HELO_NAME},DNS:127.0.0.1,DNS:127.0.0.2,"
           "IP:127.0.0.1,IP:127.0.0.2")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={HELO_NAME}",
                    "-addext", san, "-days", "30", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return CertPair(cert, key)


# --------------------------------------------------------------------------------------------
# Targets


class ImapTarget:
    """One IMAP server under test: `host`, `port` (IMAP/STARTTLS), `imaps_port` (or None),
    `tls_mode`, `cafile`, `users` (addresses with PASSWORD)."""

    name = "?"

    def __init__(self, tls_mode: str, implicit: bool, cert, users: list[str]):
        self.tls_mode = tls_mode
        self.implicit = implicit
        self.cert = cert
        self.cafile = cert.cert if cert else None
        self.users = users
        self._next_user = 0
        self.host = "127.0.0.1"
        self.source: str | None = None
        self.port = 0
        self.imaps_port: int | None = None

    # -- accounts
    def fresh_user(self) -> str:
        """An account no other test of this server has used (EXTRA_USERS in order)."""
        extra = [u for u in self.users if u not in (ALICE, BOB)]
        assert self._next_user < len(extra), "out of test accounts"
        user = extra[self._next_user]
        self._next_user += 1
        return user

    def only_icsmail(self, why: str = "") -> None:
        if self.name != "icsmail":
            pytest.skip(f"ics-mail only{': ' + why if why else ''}")

    # -- to implement
    def deliver(self, user: str, message: bytes, sender: str = "sender@example.org") -> None:
        raise NotImplementedError

    def restart(self) -> None:
        raise NotImplementedError

    def alive(self) -> bool:
        raise NotImplementedError

    def mail_root(self) -> Path:
        raise NotImplementedError

    # -- clients
    def connect_socket(self, port: int | None = None, timeout: float = 10.0) -> socket.socket:
        return socket.create_connection(
            (self.host, port or self.port), timeout=timeout,
            source_address=(self.source, 0) if self.source else None)

    def imap(self, user: str | None = ALICE, login: bool = True, ssl_port: bool = False,
             starttls: bool = False, timeout: float = 10.0) -> "Imap":
        """An imaplib client; logged in as `user` unless `login` is False."""
        if ssl_port:
            client = ImapSSL(self, timeout=timeout)
        else:
            client = Imap(self, timeout=timeout)
        if starttls:
            client.starttls(ssl_context=client_tls_context())
        if login and user:
            if self.tls_mode == "required" and not ssl_port and not starttls:
                client.starttls(ssl_context=client_tls_context())
            client.login(user, PASSWORD)
        return client

    def raw(self, port: int | None = None, tls: bool = False, timeout: float = 10.0) -> "Raw":
        return Raw(self, port=port, tls=tls, timeout=timeout)

    def raw_login(self, user: str = ALICE, **kw) -> "Raw":
        raw = self.raw(**kw)
        if self.tls_mode == "required" and not kw.get("tls"):
            raw.starttls()
        raw.ok(f'LOGIN "{user}" "{PASSWORD}"')
        return raw


class IcsTarget(ImapTarget):
    name = "icsmail"

    def __init__(self, factory, tmp: Path, password_hash: str, tls_mode: str = "optional",
                 implicit: bool = True, default_auth_domain: str | None = DOMAIN,
                 extra: dict | None = None):
        cert = make_cert(tmp / "imapcerts", "imap") if tls_mode != "none" or implicit else None
        super().__init__(tls_mode, implicit, cert, list(ALL_USERS))
        if cert:
            overrides = tls_overrides(cert, mode=tls_mode, default_auth_domain=default_auth_domain)
        else:
            overrides = {"tls": {"mode": "none"}, "access": {}}
            if default_auth_domain:
                overrides["defaultAuthDomain"] = default_auth_domain
        # Four distinct ports (free_port alone may hand out the same one twice).
        imap, imaps, pop3, pop3s = distinct_free_ports(4)
        self.port = imap
        self.imaps_port = imaps if implicit else None
        overrides["imap"] = {"port": self.port, "imapsPort": imaps}
        overrides["access"]["implicitTls"] = {"enable": implicit}
        overrides["pop3"] = {"port": pop3, "pop3sPort": pop3s}
        overrides["accounts"] = {u: {"hashedPassword": password_hash} for u in EXTRA_USERS}
        from icshelpers import deep_merge
        overrides = deep_merge(overrides, extra)
        self.server = factory(extra=overrides, mode="serve")
        self._wait()

    def _wait(self) -> None:
        wait_for_port(self.port, self.server.proc)
        if self.imaps_port:
            wait_for_port(self.imaps_port, self.server.proc)

    def deliver(self, user: str, message: bytes, sender: str = "sender@example.org") -> None:
        with smtplib.SMTP("127.0.0.1", self.server.port, timeout=10) as smtp:
            smtp.sendmail(sender, [user], message)

    def restart(self) -> None:
        self.server.stop()
        self.server.expect_exit = False
        self.server.start()
        self._wait()

    def alive(self) -> bool:
        return self.server.alive()

    def mail_root(self) -> Path:
        return self.server.mail_root


DOVECOT_CONF = """\
base_dir = {tmp}/run
state_dir = {tmp}/state
log_path = {tmp}/dovecot.log
info_log_path = {tmp}/dovecot.log
protocols = imap
listen = {host}
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
mail_location = maildir:{mail}/%d/%n
auth_mechanisms = plain login
auth_default_realm = {realm}
disable_plaintext_auth = {disable_plaintext}
ssl = {ssl}
{ssl_settings}
login_greeting = Dovecot ready.
auth_failure_delay = 0
mail_max_userip_connections = 5000
imap_max_line_length = 65536
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {tmp}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={tmp}/home/%d/%n
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = {imaps_port}
    ssl = yes
  }}
  process_limit = 5000
  client_limit = 5000
  service_count = 0
  process_min_avail = 1
  vsz_limit = 1G
}}
service imap {{
  process_limit = 5000
  vsz_limit = 1G
}}
default_process_limit = 5000
default_client_limit = 10000
service anvil {{
  client_limit = 12000
}}
service auth {{
  client_limit = 12000
}}
namespace inbox {{
  inbox = yes
  separator = .
  prefix =
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
  mailbox Junk {{
    special_use = \\Junk
    auto = subscribe
  }}
}}
protocol imap {{
  mail_max_userip_connections = 5000
  # COMPRESS=DEFLATE (test_imap_compress compares with it)
  mail_plugins = quota imap_zlib
}}
# The counterpart of ics-mail's message size limit (smtp.maxMessageSize, 10 MiB in the tests).
mail_plugins = quota
plugin {{
  quota = count:User quota
  quota_vsizes = yes
  quota_max_mail_size = 10M
}}
"""


def write_dovecot_conf(tmp: Path, mail: Path, port: int, imaps_port: int, cert,
                       tls_mode: str = "optional", host: str = "127.0.0.1",
                       realm: str = DOMAIN, users: list[str] = ALL_USERS,
                       password: str = PASSWORD) -> Path:
    """A private Dovecot config under `tmp` (run/, state/, dovecot.log, passwd)."""
    for sub in ("run", "state", "home"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    mail.mkdir(parents=True, exist_ok=True)
    # Mail processes run as nobody (Dovecot refuses uid 0 for mail access).
    for path in (tmp / "home", mail):
        chown_nobody(path)
    (tmp / "passwd").write_text("".join(f"{u}:{{PLAIN}}{password}::::::\n" for u in users))
    if cert:
        ssl_setting = "required" if tls_mode == "required" else "yes"
        ssl_settings = (f"ssl_cert = <{cert.cert}\nssl_key = <{cert.key}\n"
                        "ssl_min_protocol = TLSv1.2\n")
    else:
        ssl_setting, ssl_settings = "no", ""
    conf = DOVECOT_CONF.format(
        tmp=tmp, mail=mail, port=port, imaps_port=imaps_port, host=host, realm=realm,
        disable_plaintext="yes" if tls_mode == "required" else "no",
        ssl=ssl_setting, ssl_settings=ssl_settings)
    if not cert:  # no TLS at all: no IMAPS listener
        conf = re.sub(r"  inet_listener imaps \{[^}]*\}\n", "", conf)
    path = tmp / "dovecot.conf"
    path.write_text(conf)
    return path


def chown_nobody(path: Path) -> None:
    import pwd
    nobody = pwd.getpwnam("nobody")
    for dirpath, dirs, files in os.walk(path):
        os.chown(dirpath, nobody.pw_uid, nobody.pw_gid)
        for name in files:
            os.chown(os.path.join(dirpath, name), nobody.pw_uid, nobody.pw_gid)


class DovecotProcess:
    """`dovecot -F -c conf` in the background; `stop()` ends it (and its children)."""

    def __init__(self, tmp: Path, conf: Path, ports: list[int], host: str = "127.0.0.1"):
        self.tmp, self.conf, self.ports, self.host = tmp, conf, ports, host
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.tmp / "dovecot.stderr", "ab")
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", str(self.conf)],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     start_new_session=True)
        for port in self.ports:
            wait_for_port(port, self.proc, host=self.host)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # Dovecot's children may outlive the master for a moment.
        time.sleep(0.1)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        out = ""
        for name in ("dovecot.log", "dovecot.stderr"):
            path = self.tmp / name
            if path.exists():
                out += path.read_text(errors="replace")
        return out


class DovecotTarget(ImapTarget):
    name = "dovecot"
    _counter = 0

    def __init__(self, tmp: Path, tls_mode: str = "optional", implicit: bool = True,
                 default_auth_domain: str | None = DOMAIN, extra: dict | None = None):
        # pytest's temp dirs are 0700 root: the mail processes (nobody) need a path they can
        # walk, so the data lives in a directory of its own under /var/tmp.
        import tempfile
        self.own_dir = Path(tempfile.mkdtemp(prefix="imaptest-dovecot-", dir="/var/tmp"))
        os.chmod(self.own_dir, 0o755)
        (tmp).mkdir(parents=True, exist_ok=True)
        (tmp / "data").symlink_to(self.own_dir)
        tmp = self.own_dir
        cert = make_cert(tmp / "imapcerts", "imap")
        super().__init__(tls_mode, implicit, cert, list(ALL_USERS))
        self.tmp = tmp
        self.port, self.imaps_port = free_port(), free_port()
        # Dovecot treats a connection whose local and remote address are equal as secure
        # (disable_plaintext_auth would not apply): listen on 127.0.0.2, connect from 127.0.0.1.
        self.host, self.source = "127.0.0.2", "127.0.0.1"
        self.mail = tmp / "mail"
        users = list(ALL_USERS) + [ALIAS]
        conf = write_dovecot_conf(tmp, self.mail, self.port, self.imaps_port,
                                  cert if (tls_mode != "none" or implicit) else None,
                                  tls_mode=tls_mode, host=self.host,
                                  realm=default_auth_domain or "", users=users)
        if tls_mode == "none" and implicit:
            # STARTTLS off but IMAPS on: Dovecot can't separate them; keep ssl=yes.
            pass
        if not implicit:
            self.imaps_port = None
        self.proc = DovecotProcess(tmp, conf, [self.port], host=self.host)
        self.proc.start()

    def deliver(self, user: str, message: bytes, sender: str = "sender@example.org") -> None:
        """A Maildir delivery (tmp/ then rename into new/), LF line ends like ics-mail."""
        local, domain = user.split("@")
        box = self.mail / domain / local
        if not (box / "tmp").is_dir():
            for sub in ("tmp", "new", "cur"):
                (box / sub).mkdir(parents=True, exist_ok=True)
            chown_nobody(self.mail)
        DovecotTarget._counter += 1
        name = f"{time.time_ns()}.P{os.getpid()}Q{DovecotTarget._counter}.test"
        data = (f"Return-Path: <{sender}>\n".encode()
                + message.replace(b"\r\n", b"\n"))
        tmpfile = box / "tmp" / name
        tmpfile.write_bytes(data)
        chown_nobody(tmpfile)
        os.rename(tmpfile, box / "new" / name)

    def restart(self) -> None:
        self.proc.stop()
        self.proc.start()

    def alive(self) -> bool:
        return self.proc.alive()

    def mail_root(self) -> Path:
        return self.mail

    def stop(self) -> None:
        self.proc.stop()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.own_dir, ignore_errors=True)


class TargetFactory:
    def __init__(self, request, scope: str):
        self.request, self.scope = request, scope
        self.dovecots: list[DovecotTarget] = []
        self.count = 0

    def __call__(self, tls_mode: str = "optional", implicit: bool = True,
                 default_auth_domain: str | None = DOMAIN, extra: dict | None = None
                 ) -> ImapTarget:
        self.count += 1
        if IS_DOVECOT:
            tmp = self.request.getfixturevalue(
                "tmp_path" if self.scope == "function" else "tmp_path_factory")
            if self.scope != "function":
                tmp = tmp.mktemp("dovecot")
            target = DovecotTarget(tmp / f"dovecot{self.count}", tls_mode, implicit,
                                   default_auth_domain, extra)
            self.dovecots.append(target)
            return target
        factory = self.request.getfixturevalue(
            "make_server" if self.scope == "function" else "make_module_server")
        password_hash = self.request.getfixturevalue("password_hash")
        return IcsTarget(factory, factory.root / f"imap{self.count}", password_hash,
                         tls_mode, implicit, default_auth_domain, extra)

    def finish(self) -> None:
        for target in self.dovecots:
            if not target.alive():
                print(f"--- dovecot {target.tmp} died ---")
            target.stop()
            print(f"--- dovecot log {target.tmp} ---\n{target.proc.log()[-5000:]}")
            target.cleanup()


@pytest.fixture
def make_imap(request):
    """Factory of IMAP targets for one test: `make_imap(tls_mode=..., implicit=...)`."""
    factory = TargetFactory(request, "function")
    yield factory
    factory.finish()


@pytest.fixture(scope="module")
def make_module_imap(request):
    factory = TargetFactory(request, "module")
    yield factory
    factory.finish()


@pytest.fixture(scope="module")
def imap_target(make_module_imap) -> ImapTarget:
    """One shared target per module (TLS optional, IMAPS on); use `fresh_user()` per test."""
    return make_module_imap()


# --------------------------------------------------------------------------------------------
# imaplib clients


class _SourceMixin:
    def _create_socket(self, timeout):
        target = self._target
        return socket.create_connection(
            (target.host, self.port), timeout,
            source_address=(target.source, 0) if target.source else None)


class Imap(_SourceMixin, imaplib.IMAP4):
    def __init__(self, target: ImapTarget, timeout: float = 10.0):
        self._target = target
        super().__init__(target.host, target.port, timeout=timeout)


class ImapSSL(_SourceMixin, imaplib.IMAP4_SSL):
    def __init__(self, target: ImapTarget, timeout: float = 10.0):
        self._target = target
        super().__init__(target.host, target.imaps_port, ssl_context=client_tls_context(),
                         timeout=timeout)

    def _create_socket(self, timeout):
        sock = _SourceMixin._create_socket(self, timeout)
        return self.ssl_context.wrap_socket(sock, server_hostname=None)


def ok(result) -> list:
    """Checks an imaplib (typ, data) result is OK and returns data."""
    typ, data = result
    assert typ == "OK", (typ, data)
    return data


# --------------------------------------------------------------------------------------------
# The raw client


class Closed(Exception):
    pass


class Response:
    """A tagged command's result: `status` (OK/NO/BAD), `text` (after the status), `lines` (the
    untagged responses, each a bytes line with literals inlined as `{n}\\r\\n<data>`),
    `tagged` (the tagged line)."""

    def __init__(self, tag: str, lines: list[bytes], tagged: bytes):
        self.tag, self.lines, self.tagged = tag, lines, tagged
        parts = tagged.decode("utf-8", "replace").split(" ", 2)
        self.status = parts[1].upper() if len(parts) > 1 else ""
        self.text = parts[2] if len(parts) > 2 else ""

    def untagged(self, keyword: str) -> list[str]:
        """Untagged lines `* KEYWORD ...` or `* n KEYWORD ...` (str, keyword case-insensitive)."""
        out = []
        for line in self.lines:
            text = line.decode("utf-8", "replace")
            m = re.match(r"\* (?:\d+ )?(\S+)", text)
            if m and m.group(1).upper() == keyword.upper():
                out.append(text)
        return out

    def __repr__(self) -> str:
        return f"<{self.tag} {self.status} {self.text!r} untagged={self.lines!r}>"


class Raw:
    """A raw IMAP client: `cmd(text)` sends `<tag> text` and reads through the tagged reply;
    literals in responses are read and kept inline."""

    def __init__(self, target: ImapTarget, port: int | None = None, tls: bool = False,
                 timeout: float = 10.0, greeting: bool = True):
        self.target = target
        self.sock = target.connect_socket(port or (target.imaps_port if tls else target.port),
                                          timeout)
        if tls:
            self.sock = client_tls_context().wrap_socket(self.sock)
        self.buf = b""
        self.n = 0
        self.greeting = self.line() if greeting else None

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def settimeout(self, t: float) -> None:
        self.sock.settimeout(t)

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise Closed(f"connection closed (pending {self.buf[:200]!r})")
        self.buf += chunk

    def raw_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_bytes(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def line(self) -> bytes:
        """One response line with its literals inlined."""
        line = self.raw_line()
        while True:
            m = re.search(rb"\{(\d+)\}$", line)
            if not m:
                return line
            data = self.read_bytes(int(m.group(1)))
            line = line + b"\r\n" + data + self.raw_line()

    def tag(self) -> str:
        self.n += 1
        return f"t{self.n}"

    def read_tagged(self, tag: str) -> Response:
        lines = []
        while True:
            line = self.line()
            if line.startswith(tag.encode() + b" "):
                return Response(tag, lines, line)
            lines.append(line)

    def cmd(self, text: str | bytes, tag: str | None = None) -> Response:
        tag = tag or self.tag()
        data = text.encode("utf-8") if isinstance(text, str) else text
        self.send(tag.encode() + b" " + data + b"\r\n")
        return self.read_tagged(tag)

    def ok(self, text: str | bytes) -> Response:
        r = self.cmd(text)
        assert r.status == "OK", r
        return r

    def starttls(self) -> None:
        self.ok("STARTTLS")
        assert not self.buf
        self.sock = client_tls_context().wrap_socket(self.sock)

    def append_literal(self, mailbox: str, message: bytes, extra: str = "",
                       plus: bool = False) -> Response:
        """APPEND with a synchronizing (waits for `+`) or non-synchronizing literal."""
        tag = self.tag()
        marker = f"{{{len(message)}+}}" if plus else f"{{{len(message)}}}"
        self.send(f'{tag} APPEND "{mailbox}" {extra}{" " if extra else ""}{marker}\r\n'.encode())
        if not plus:
            cont = self.line()
            if cont.startswith(tag.encode() + b" "):  # refused before the literal
                return Response(tag, [], cont)
            assert cont.startswith(b"+"), cont
        self.send(message + b"\r\n")
        return self.read_tagged(tag)


def capabilities(resp: Response | bytes) -> set[str]:
    """The capability names of a `* CAPABILITY` line or a `[CAPABILITY ...]` code."""
    lines = resp.lines + [resp.tagged] if isinstance(resp, Response) else [resp]
    for line in lines:
        text = line.decode("utf-8", "replace")
        m = re.search(r"(?:^\* CAPABILITY|\[CAPABILITY) ([^\]\r\n]*)", text, re.I)
        if m:
            return {c.upper() for c in m.group(1).split()}
    raise AssertionError(f"no capability list in {resp!r}")


def list_names(resp: Response) -> dict[str, tuple[set[str], str | None]]:
    """{mailbox name: (attributes lower-cased, delimiter)} from LIST/LSUB responses."""
    out = {}
    for line in resp.lines:
        text = line.decode("utf-8", "replace")
        m = re.match(r'\* (?:LIST|LSUB) \(([^)]*)\) (NIL|"(?:\\.|[^"])*") (.*)$', text, re.I)
        if not m:
            continue
        attrs = {a.lower() for a in m.group(1).split()}
        delim = None if m.group(2) == "NIL" else m.group(2)[1:-1].replace("\\\\", "\\")
        name = m.group(3)
        if name.startswith('"'):
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        elif name.startswith("{"):
            name = name.split("\r\n", 1)[1]
        out[name] = (attrs, delim)
    return out


def search_ids(resp: Response) -> list[int]:
    for line in resp.untagged("SEARCH"):
        rest = line.split(None, 2)[2] if len(line.split(None, 2)) > 2 else ""
        rest = re.sub(r"\(MODSEQ \d+\)", "", rest)
        return [int(x) for x in rest.split()]
    raise AssertionError(f"no SEARCH response: {resp!r}")


def fetch_map(resp: Response) -> dict[int, bytes]:
    """{sequence number: the FETCH response's parenthesised data (bytes)}."""
    out = {}
    for line in resp.lines:
        m = re.match(rb"\* (\d+) FETCH \((.*)\)$", line, re.S)
        if m:
            out[int(m.group(1))] = m.group(2)
    return out


def status_items(resp: Response) -> dict[str, int]:
    line = resp.untagged("STATUS")[0]
    m = re.search(r"\(([^)]*)\)\s*$", line)
    items = m.group(1).split()
    return {items[i].upper(): int(items[i + 1]) for i in range(0, len(items), 2)}


def resp_code(text: str, code: str) -> str | None:
    m = re.search(r"\[" + re.escape(code) + r"(?: ([^\]]*))?\]", text, re.I)
    return None if m is None else (m.group(1) or "")


def select_info(resp: Response) -> dict:
    """EXISTS, RECENT, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, FLAGS, PERMANENTFLAGS, UNSEEN of a
    SELECT/EXAMINE."""
    info: dict = {}
    for line in resp.lines:
        text = line.decode("utf-8", "replace")
        m = re.match(r"\* (\d+) (EXISTS|RECENT)$", text, re.I)
        if m:
            info[m.group(2).upper()] = int(m.group(1))
        m = re.match(r"\* FLAGS \((.*)\)", text, re.I)
        if m:
            info["FLAGS"] = set(m.group(1).split())
        for code in ("UIDVALIDITY", "UIDNEXT", "HIGHESTMODSEQ", "UNSEEN"):
            m = re.search(r"\[" + code + r" (\d+)\]", text, re.I)
            if m:
                info[code] = int(m.group(1))
        m = re.search(r"\[PERMANENTFLAGS \(([^)]*)\)\]", text, re.I)
        if m:
            info["PERMANENTFLAGS"] = set(m.group(1).split())
    return info


def message(subject: str = "test", body: str = "Hello.\n", sender: str = "sender@example.org",
            to: str = ALICE, headers: str = "", date: str = "Mon, 7 Feb 1994 21:52:25 -0800"
            ) -> bytes:
    """A simple CRLF message."""
    return crlf(f"From: <{sender}>\nTo: <{to}>\nSubject: {subject}\nDate: {date}\n"
                f"Message-ID: <{abs(hash((subject, body)))}@example.org>\n{headers}\n{body}")


def append(raw: Raw, mailbox: str, msg: bytes, flags: str = "", date: str = "") -> Response:
    extra = " ".join(x for x in (f"({flags})" if flags is not None and flags != "" else "",
                                 f'"{date}"' if date else "") if x)
    r = raw.append_literal(mailbox, msg, extra)
    assert r.status == "OK", r
    return r


def wait_for_untagged(raw: Raw, pattern: bytes, timeout: float = 5.0) -> list[bytes]:
    """Reads lines (in IDLE, say) until one matches `pattern` (regex); returns all read."""
    deadline = time.monotonic() + timeout
    seen = []
    raw.settimeout(0.2)
    try:
        while time.monotonic() < deadline:
            try:
                line = raw.line()
            except socket.timeout:
                continue
            seen.append(line)
            if re.search(pattern, line):
                return seen
    finally:
        raw.settimeout(10)
    raise AssertionError(f"no {pattern!r} within {timeout} s; got {seen!r}")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def tool(name: str) -> str:
    path = shutil.which(name)
    # tests/run.sh installs every client: a missing one is a failure, not a skip.
    assert path, f"{name} not installed (tests/run.sh installs it)"
    return path
