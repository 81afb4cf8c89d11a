"""systemd socket activation (LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES=smtp) and clean SIGTERM."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
import uuid

import pytest

from icshelpers import (
    ALICE,
    ConnectionClosed,
    SMTPClient,
    Server,
    base_config,
    free_port,
    make_message,
    port_accepts,
    split_stored,
    write_config,
)

pytestmark = pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                                reason="systemd-socket-activate is not installed")


class Activated:
    def __init__(self, tmp, bin_path, password_hash):
        self.tmp = tmp
        self.port = free_port()
        # The configured port differs from the activated one: the daemon must not bind it.
        self.config_port = free_port()
        self.config = base_config(tmp, self.config_port, password_hash)
        self.config_path = write_config(tmp / "config.json", self.config)
        self.stderr_path = tmp / "activated.stderr"
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                ["systemd-socket-activate", "-l", f"127.0.0.1:{self.port}", "--fdname=smtp",
                 "-E", "RUST_BACKTRACE=1",
                 bin_path, "smtpd", "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, cwd=tmp)
        deadline = time.monotonic() + 10
        while not port_accepts(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"systemd-socket-activate did not listen: {self.stderr()}")
            time.sleep(0.05)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def mailbox_new(self):
        return sorted((self.tmp / "mail" / "example.test" / "alice" / "new").glob("*"))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        print("--- socket-activated smtpd stderr ---")
        print(self.stderr()[-20000:])


@pytest.fixture
def activated(tmp_path, bin_path, password_hash):
    server = Activated(tmp_path, bin_path, password_hash)
    yield server
    server.stop()


def test_delivery_through_activated_socket(activated):
    message = make_message("activated-" + uuid.uuid4().hex)
    with SMTPClient(activated.port, timeout=15) as c:
        assert c.greeting.code == 220, c.greeting.text
        c.ehlo()
        c.transaction("sender@example.org", [ALICE], message)
    files = activated.mailbox_new()
    assert len(files) == 1, files
    split_stored(files[0].read_bytes(), message)
    assert activated.proc.poll() is None, "daemon exited"
    assert not port_accepts(activated.config_port), (
        "with a socket passed in, the daemon still bound smtp.port itself")
    # A second connection uses the same inherited socket.
    with SMTPClient(activated.port, timeout=15) as c:
        c.ehlo()
        c.transaction("sender@example.org", [ALICE], make_message("second"))
    assert len(activated.mailbox_new()) == 2


def wait_idle_session_ends(client: SMTPClient) -> str:
    """After SIGTERM an idle session gets a 421 or is simply closed; returns what happened."""
    try:
        reply = client.read_reply()
    except (ConnectionClosed, ConnectionResetError):
        return "closed"
    assert reply.code == 421, f"idle session got {reply.text!r} at shutdown"
    assert client.closed_by_server(), "connection left open after 421"
    return "421"


def test_sigterm_activated_with_idle_session(activated):
    with SMTPClient(activated.port, timeout=15) as c:
        c.ehlo()
        time.sleep(0.2)
        activated.proc.send_signal(signal.SIGTERM)
        code = activated.proc.wait(15)
        assert code == 0, f"exit code {code} after SIGTERM\n{activated.stderr()}"
        wait_idle_session_ends(c)


@pytest.mark.parametrize("mode", ["smtpd", "serve"])
def test_sigterm_with_idle_session(make_server, mode):
    server: Server = make_server(mode=mode)
    with server.client() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")
        time.sleep(0.2)
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(15)
        server.expect_exit = True
        assert code == 0, f"exit code {code} after SIGTERM\n{server.stderr()}"
        wait_idle_session_ends(c)
    assert not port_accepts(server.port)


def test_sigterm_without_sessions_is_quick(make_server):
    server = make_server()
    start = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    code = server.proc.wait(15)
    server.expect_exit = True
    assert code == 0, server.stderr()
    assert time.monotonic() - start < 5
