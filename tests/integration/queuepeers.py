"""Real peers for the outbound queue tests, all on 127.0.0.x: a DNS server (dnsmasq) serving
MX/A records for test domains, a private Postfix instance as remote MX, programmable SMTP peers
(aiosmtpd) for 4xx answers, hangs, smarthost AUTH and SMTPS, a capture peer that records the
raw DATA bytes, and a throw-away TLS CA."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from icshelpers import free_port, list_files


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# --------------------------------------------------------------------------------------------
# DNS


class Dnsmasq:
    """dnsmasq answering only from its command line: `mx` maps a domain to [(preference, host)],
    `hosts` maps a host name to an IPv4 address. Everything under `local_zone` that is not
    listed is NXDOMAIN."""

    def __init__(self, tmp: Path, mx: dict, hosts: dict, local_zone: str = "test",
                 ptr: dict | None = None, txt: dict | None = None, port: int | None = None):
        """`ptr` maps an IPv4 address to its PTR name (a host record makes one too; the reverse
        zone of the test clients, 0.18.198.in-addr.arpa, is local: other addresses there have
        none), `txt` a name to a TXT string; `port` reuses one (a restart)."""
        self.port = port or free_port()
        self.tmp = tmp
        args = ["dnsmasq", "--keep-in-foreground", "--no-daemon", "--conf-file=/dev/null",
                "--no-resolv", "--no-hosts", "--bind-interfaces", "--listen-address=127.0.0.1",
                f"--port={self.port}", f"--local=/{local_zone}/",
                "--local=/0.18.198.in-addr.arpa/", "--log-facility=-",
                "--log-queries", "--user=root", f"--pid-file={tmp / 'dnsmasq.pid'}"]
        for address, name in (ptr or {}).items():
            reverse = ".".join(reversed(address.split("."))) + ".in-addr.arpa"
            args.append(f"--ptr-record={reverse},{name}")
        for name, text in (txt or {}).items():
            args.append(f"--txt-record={name},{text}")
        for domain, records in mx.items():
            for preference, host in records:
                args.append(f"--mx-host={domain},{host},{preference}")
        for host, address in hosts.items():
            args.append(f"--host-record={host},{address}")
        self.log = open(tmp / "dnsmasq.log", "ab")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_until(lambda: self.proc.poll() is not None or self._answers(), 10,
                   what="dnsmasq to answer")
        assert self.proc.poll() is None, (tmp / "dnsmasq.log").read_text()

    def _answers(self) -> bool:
        # A minimal DNS query for "x.test" A over UDP.
        query = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                 b"\x01x\x04test\x00\x00\x01\x00\x01")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.2)
            try:
                sock.sendto(query, ("127.0.0.1", self.port))
                sock.recv(512)
                return True
            except OSError:
                return False

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


# --------------------------------------------------------------------------------------------
# TLS


@dataclass
class TestCA:
    ca_cert: Path
    cert: Path
    key: Path


def make_ca(directory: Path, names: list[str], ips: list[str]) -> TestCA:
    """A CA and one server certificate for `names` and `ips`, made with openssl."""
    directory.mkdir(parents=True, exist_ok=True)
    run = lambda *args: subprocess.run(args, check=True, capture_output=True, cwd=directory)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=ics-mail test CA", "-keyout", "ca.key", "-out", "ca.pem",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    san = ",".join([f"DNS:{n}" for n in names] + [f"IP:{i}" for i in ips])
    (directory / "ext.cnf").write_text(
        f"subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={names[0]}",
        "-keyout", "server.key", "-out", "server.csr")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem")
    return TestCA(directory / "ca.pem", directory / "server.pem", directory / "server.key")


# --------------------------------------------------------------------------------------------
# Postfix as the remote MX


class PrivatePostfix:
    """A private Postfix on `address:25` with its own config and queue directories, final
    destination (virtual mailboxes) for `domains` with the mailboxes `users`; unknown users are
    refused at RCPT (550 5.1.1). STARTTLS is offered with `tls` (cert, key). `main_cf` is
    appended to main.cf (a later line wins over an earlier one of the same name)."""

    def __init__(self, tmp: Path, address: str, domains: list[str], users: list[str],
                 tls: tuple[Path, Path] | None = None, port: int = 25, main_cf: str = ""):
        self.dir = tmp
        self.address = address
        self.port = port
        for sub in ("etc", "queue", "data", "mail"):
            (tmp / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, 0o755)
        shutil.chown(tmp / "mail", 65534, 65534)
        shutil.chown(tmp / "data", "postfix")
        tls_lines = ""
        if tls:
            tls_lines = (f"smtpd_tls_cert_file = {tls[0]}\nsmtpd_tls_key_file = {tls[1]}\n"
                         "smtpd_tls_security_level = may\nsmtpd_tls_received_header = yes\n")
        (tmp / "etc" / "main.cf").write_text(_once_each(f"""# private test instance
compatibility_level = 3.6
config_directory = {tmp}/etc
queue_directory = {tmp}/queue
data_directory = {tmp}/data
myhostname = postfix.peer.test
mydomain = peer.test
myorigin = $myhostname
mydestination =
inet_interfaces = all
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
smtputf8_enable = yes
smtpd_banner = $myhostname ESMTP
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
virtual_mailbox_domains = {' '.join(domains)}
virtual_mailbox_base = {tmp}/mail
virtual_mailbox_maps = texthash:{tmp}/etc/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_minimum_uid = 100
maillog_file = {tmp}/maillog
{tls_lines}{main_cf}"""))
        (tmp / "etc" / "vmailbox").write_text(
            "".join(f"{u} {u.split('@')[1]}/{u.split('@')[0]}/\n" for u in users))
        master = []
        keep = False
        for line in Path("/etc/postfix/master.cf").read_text().splitlines():
            if line.startswith("postlog"):
                master.append("postlog unix-dgram n - n - 1 postlogd")
                break
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t":
                if keep:
                    master.append(line)
                continue
            parts = line.split()
            keep = True
            if parts[0] == "smtp" and parts[1] == "inet":
                master.append(f"{address}:{port} inet n - n - - smtpd")
                continue
            if parts[1] == "inet":
                keep = False
                continue
            parts[4] = "n"
            master.append(" ".join(parts))
        (tmp / "etc" / "master.cf").write_text("\n".join(master) + "\n")
        self.start()

    def postfix(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["postfix", "-c", str(self.dir / "etc"), *args],
                              capture_output=True, text=True, timeout=60)

    def start(self):
        result = self.postfix("start")
        assert result.returncode == 0, f"postfix start: {result.stdout}{result.stderr}"
        wait_until(lambda: _accepts(self.address, self.port), 30, what="postfix to listen")

    def stop(self):
        self.postfix("stop")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.postfix("status").returncode == 0:
            time.sleep(0.1)
        if self.postfix("status").returncode == 0:
            self.postfix("abort")

    def messages(self, address: str) -> list[bytes]:
        local, domain = address.split("@")
        base = self.dir / "mail" / domain / local
        return [p.read_bytes() for p in list_files(base / "new") + list_files(base / "cur")]

    def queue_is_empty(self) -> bool:
        shown = subprocess.run(["postqueue", "-c", str(self.dir / "etc"), "-p"],
                               capture_output=True, text=True, timeout=30)
        return "Mail queue is empty" in shown.stdout

    def log(self) -> str:
        path = self.dir / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""


def _once_each(main_cf: str) -> str:
    """main.cf with each parameter once, a later line's value in the earlier one's place.
    Postfix warns about every repeated parameter, in every process, and with `maillog_file`
    those warnings go through postlogd, which logs its own to itself: a burst of them fills
    the postlog socket's short queue (net.unix.max_dgram_qlen, 10 by default) and postlogd,
    then every process that logs, blocks for good."""
    lines: list[str] = []
    where: dict[str, int] = {}
    for line in main_cf.splitlines():
        name = line.split("=", 1)[0].strip() if "=" in line and line[:1] not in "# \t" else None
        if name and name in where:
            lines[where[name]] = line
            continue
        if name:
            where[name] = len(lines)
        lines.append(line)
    return "\n".join(lines) + "\n"


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# Programmable SMTP peer (aiosmtpd)


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    login: str | None
    tls: bool


@dataclass
class PeerHandler:
    """`mode`: "accept"; "tempfail" (451 at RCPT); "reject" (550 at RCPT); "hang" (the end of
    data is never answered while the mode stays "hang")."""
    mode: str = "accept"
    received: list = field(default_factory=list)
    data_started: int = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.mode == "tempfail":
            return "451 4.3.0 Peer is busy, try again later"
        if self.mode == "reject":
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.data_started += 1
        while self.mode == "hang":
            await asyncio.sleep(0.1)
        login = getattr(session, "login_data", None)
        login = login.decode() if isinstance(login, bytes) else None
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      envelope.original_content or envelope.content,
                                      login, session.ssl is not None))
        return "250 2.0.0 Accepted"


class Peer:
    """An aiosmtpd server on `address:port` (threaded). `implicit_tls` / `starttls` take an
    ssl.SSLContext; `users` ({login: password}) makes AUTH required; `smtputf8` whether SMTPUTF8 is offered."""

    def __init__(self, address: str, port: int = 25, implicit_tls=None, starttls=None,
                 users: dict | None = None, smtputf8: bool = True):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.handler = PeerHandler()
        self.auth_attempts: list[tuple[str, str, bool]] = []
        kwargs = {"enable_SMTPUTF8": smtputf8, "ready_timeout": 10.0}
        if implicit_tls is not None:
            kwargs["ssl_context"] = implicit_tls
            kwargs["server_hostname"] = address
        if starttls is not None:
            kwargs["tls_context"] = starttls
        if users is not None:
            def authenticator(server, session, envelope, mechanism, auth_data):
                login = auth_data.login.decode()
                password = auth_data.password.decode()
                ok = users.get(login) == password
                self.auth_attempts.append((mechanism, login, ok))
                return AuthResult(success=ok, handled=False, auth_data=auth_data)
            # With implicit TLS aiosmtpd does not see the TLS layer: AUTH must not wait for it.
            kwargs.update(authenticator=authenticator, auth_required=True,
                          auth_require_tls=starttls is not None)
        self.controller = Controller(self.handler, hostname=address, port=port, **kwargs)
        self.controller.start()

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def stop(self):
        self.handler.mode = "accept"
        self.controller.stop()


class CapturePeer:
    """A minimal SMTP receiver on `address:port` that records the message data exactly as it
    came over the wire (dot-stuffing, line ends and all, up to and including `<CRLF>.<CRLF>`):
    aiosmtpd hands over decoded data, which would hide what this is for. Plain SMTP, no
    extensions but 8BITMIME; every command is accepted."""

    def __init__(self, address: str, port: int):
        import socketserver
        import threading

        self.wire: list[bytes] = []
        peer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                self.request.settimeout(30)
                self.wfile.write(b"220 capture.test ESMTP\r\n")
                while True:
                    line = self.rfile.readline(4096)
                    if not line:
                        return
                    verb = line[:4].upper()
                    if verb == b"EHLO":
                        self.wfile.write(b"250-capture.test\r\n250 8BITMIME\r\n")
                    elif verb == b"DATA":
                        self.wfile.write(b"354 go on\r\n")
                        data = b""
                        while not data.endswith(b"\r\n.\r\n"):
                            chunk = self.rfile.read1(65536)
                            if not chunk:
                                return
                            data += chunk
                        peer.wire.append(data)
                        self.wfile.write(b"250 2.0.0 captured\r\n")
                    elif verb == b"QUIT":
                        self.wfile.write(b"221 bye\r\n")
                        return
                    else:
                        self.wfile.write(b"250 ok\r\n")

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server((address, port), Handler)
        self.port = port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def server_tls_context(ca: TestCA) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(ca.cert, ca.key)
    return context


# --------------------------------------------------------------------------------------------
# The queue on disk and the CLI


def queue_dir(server) -> Path:
    return server.state_dir / "queue"


def envelopes(server) -> list[dict]:
    directory = queue_dir(server)
    if not directory.is_dir():
        return []
    out = []
    for path in sorted(directory.glob("*.json")):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            pass
    return out


def rewrite_envelope(server, queue_id: str, **changes) -> dict:
    """Changes fields of an envelope the way time passing would (atomically, like the server)."""
    path = queue_dir(server) / f"{queue_id}.json"
    data = json.loads(path.read_text())
    data.update(changes)
    tmp = path.with_suffix(".test-tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)
    return data


def iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def parse_iso(text: str) -> int:
    import calendar
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def queue_cli(bin_path: str, server, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run([bin_path, "queue", *args, "--config", str(server.config_path)],
                            capture_output=True, text=True, timeout=timeout)
    return result


def start_runner(bin_path: str, server) -> subprocess.Popen:
    return subprocess.Popen([bin_path, "queue", "run", "--config", str(server.config_path)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def kill9(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
