"""Real content scanners for the antivirus and DLP tests (docs/filters.md): Debian's `clamd`
(clamav-daemon) and `c-icap` with its virus_scan service (libc-icap-mod-virus-scan) backed by
that clamd through clamd_mod. Each runs in the foreground with its own config in a temp dir; the
signature database is written here (no freshclam download): the EICAR test string, and the DLP
marker "CONFIDENTIAL-ALPHA" as a ClamAV body signature (.ndb: name:target:offset:hex)."""

from __future__ import annotations

import base64
import shutil
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

from icshelpers import crlf, free_port

# The EICAR anti-virus test file (eicar.org), which every scanner is to report.
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
EICAR_NAME = "Eicar-Test-Local"
DLP_MARKER = b"CONFIDENTIAL-ALPHA"
DLP_NAME = "DLP-Confidential-Alpha"
START_TIMEOUT = 60.0


def signature_database(directory: Path) -> Path:
    """The .ndb of the tests; clamd reports a match as `<name>.UNOFFICIAL`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "icsmail-test.ndb"
    path.write_text(f"{EICAR_NAME}:0:*:{EICAR.hex()}\n{DLP_NAME}:0:*:{DLP_MARKER.hex()}\n")
    return path


def with_attachment(token: str, payload: bytes, sender: str = "sender@example.org",
                    to: str = "alice@example.test", filename: str = "file.com") -> bytes:
    """A multipart message (CRLF) with `payload` as a base64 attachment."""
    encoded = base64.encodebytes(payload).decode()
    return crlf(
        f"From: <{sender}>\nTo: <{to}>\nSubject: attachment {token}\n"
        f"Message-ID: <{token}@client.example.org>\nMIME-Version: 1.0\n"
        f"Content-Type: multipart/mixed; boundary=\"b-{token}\"\n\n"
        f"--b-{token}\nContent-Type: text/plain\n\nSee the file ({token}).\n"
        f"--b-{token}\nContent-Type: application/octet-stream\n"
        f"Content-Transfer-Encoding: base64\n"
        f"Content-Disposition: attachment; filename=\"{filename}\"\n\n"
        f"{encoded}--b-{token}--\n")


class Scanner:
    """What the scanner daemons share: a process in `self.proc`, files in `self.tmp`, and the
    output files named by LOG_FILES."""

    LOG_FILES: tuple[str, ...] = ()
    tmp: Path
    proc: subprocess.Popen | None

    def stop(self) -> None:
        """SIGTERM (c-icap's children go with their parent), then SIGKILL after 20 s."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def log(self) -> str:
        parts = []
        for name in self.LOG_FILES:
            path = self.tmp / name
            if path.exists():
                parts.append(path.read_text(errors="replace")[-4000:])
        return "\n".join(parts)


class Clamd(Scanner):
    """clamd on a unix socket in `tmp` (and on 127.0.0.1:<port> when `tcp`)."""

    LOG_FILES = ("clamd.out", "clamd.log")

    def __init__(self, tmp: Path, tcp: bool = False, stream_max: str = "20M"):
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.socket = tmp / "clamd.sock"
        self.port = free_port() if tcp else None
        signature_database(tmp / "db")
        lines = [
            f"DatabaseDirectory {tmp / 'db'}",
            f"LocalSocket {self.socket}",
            "Foreground yes",
            f"LogFile {tmp / 'clamd.log'}",
            f"PidFile {tmp / 'clamd.pid'}",
            f"StreamMaxLength {stream_max}",
            # no self-check reloads or bytecode: the database is what the test wrote
            "SelfCheck 0",
            "Bytecode no",
            "LogClean yes",
        ]
        if self.port:
            lines += [f"TCPSocket {self.port}", "TCPAddr 127.0.0.1"]
        self.config = tmp / "clamd.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        """`antivirus.clamav.socket`: the TCP form when there is a port."""
        return f"tcp://127.0.0.1:{self.port}" if self.port else str(self.socket)

    def start(self) -> "Clamd":
        binary = shutil.which("clamd") or "/usr/sbin/clamd"
        self.socket.unlink(missing_ok=True)
        self.out = open(self.tmp / "clamd.out", "ab")
        self.proc = subprocess.Popen([binary, "-c", str(self.config)], stdin=subprocess.DEVNULL,
                                     stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"clamd exited {self.proc.returncode}: {self.log()}")
            if self.ping():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"clamd did not answer PING: {self.log()}")

    def ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(2)
                sock.connect(str(self.socket))
                sock.sendall(b"zPING\0")
                return sock.recv(16).startswith(b"PONG")
        except OSError:
            return False

    def scan(self, data: bytes) -> bytes:
        """INSTREAM by hand: what clamd itself says of `data` (to check the database)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(self.socket))
            sock.sendall(b"zINSTREAM\0" + struct.pack(">I", len(data)) + data
                         + struct.pack(">I", 0))
            return sock.recv(4096).rstrip(b"\0")



class CIcap(Scanner):
    """c-icap on 127.0.0.1:<port> with virus_scan as service `avscan`, scanning with `clamd`."""

    SERVICE = "avscan"
    LOG_FILES = ("c-icap.out", "server.log")

    def __init__(self, tmp: Path, clamd: Clamd):
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "spool").mkdir(exist_ok=True)
        self.port = free_port()
        modules = "/usr/lib/x86_64-linux-gnu/c_icap"
        for candidate in Path("/usr/lib").glob("*/c_icap"):
            modules = str(candidate)
        self.config = tmp / "c-icap.conf"
        self.config.write_text("\n".join([
            f"PidFile {tmp / 'c-icap.pid'}",
            f"CommandsSocket {tmp / 'c-icap.ctl'}",
            f"Port 127.0.0.1:{self.port}",
            "StartServers 1",
            "MaxServers 2",
            "MinSpareThreads 2",
            "MaxSpareThreads 8",
            "ThreadsPerChild 8",
            f"TmpDir {tmp / 'spool'}",
            f"ServerLog {tmp / 'server.log'}",
            f"AccessLog {tmp / 'access.log'}",
            "DebugLevel 1",
            f"ModulesDir {modules}",
            f"ServicesDir {modules}",
            "TemplateDir /usr/share/c_icap/templates/",
            "LoadMagicFile /etc/c-icap/c-icap.magic",
            "Module common clamd_mod.so",
            f"clamd_mod.ClamdSocket {clamd.socket}",
            f"Service {self.SERVICE} virus_scan.so",
            "virus_scan.ScanFileTypes TEXT DATA EXECUTABLE ARCHIVE",
            "virus_scan.MaxObjectSize 20M",
            "virus_scan.DefaultEngine clamd",
        ]) + "\n")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"icap://127.0.0.1:{self.port}/{self.SERVICE}"

    def start(self) -> "CIcap":
        binary = shutil.which("c-icap") or "/usr/bin/c-icap"
        self.out = open(self.tmp / "c-icap.out", "ab")
        self.proc = subprocess.Popen([binary, "-N", "-f", str(self.config)],
                                     stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"c-icap exited {self.proc.returncode}: {self.log()}")
            if self.options_ok():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"c-icap did not answer OPTIONS: {self.log()}")

    def options_ok(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(f"OPTIONS {self.url} ICAP/1.0\r\nHost: 127.0.0.1\r\n"
                             "Encapsulated: null-body=0\r\n\r\n".encode())
                return sock.recv(64).startswith(b"ICAP/1.0 200")
        except OSError:
            return False


