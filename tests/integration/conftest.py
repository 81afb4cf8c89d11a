"""Fixtures of the black-box integration tests.

`make_server(smtp=..., limits=..., extra=..., mode="smtpd"|"serve")` starts `$ICSMAIL_BIN` with
a fresh temp directory and config, waits until its port accepts and stops it at teardown (SIGTERM,
then SIGKILL). `server` is a default `smtpd` instance. The server's stderr is printed at teardown,
so pytest shows it for failed tests. `make_module_server` is the same for servers shared by the
tests of one module (slow scans). `certs` holds test certificates (see `TestCerts`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from icshelpers import (  # noqa: E402
    PASSWORD,
    CertPair,
    Server,
    base_config,
    deep_merge,
    free_port,
    icsmail_bin,
    make_cert,
    make_dated_cert,
    write_config,
)


@pytest.fixture(scope="session")
def bin_path() -> str:
    path = icsmail_bin()
    if not os.access(path, os.X_OK):
        pytest.exit(f"server binary {path} not found: build it (cargo build --release) "
                    "or set ICSMAIL_BIN", returncode=2)
    return path


@pytest.fixture(scope="session")
def password_hash(bin_path) -> str:
    """One argon2id hash of PASSWORD for every account of the session (hashing is slow)."""
    result = subprocess.run([bin_path, "hash-password"], input=PASSWORD + "\n",
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"hash-password failed: {result.stderr}"
    lines = [l for l in result.stdout.splitlines() if l.strip()]
    assert lines, f"hash-password printed nothing (stderr: {result.stderr})"
    return lines[-1].strip()


class ServerFactory:
    """Starts servers with their own temp dir, config and free port under `root`; `finish`
    stops them, prints their stderr and fails if one died on its own."""

    def __init__(self, root: Path, password_hash: str, label: str):
        self.root, self.password_hash, self.label = root, password_hash, label
        self.servers: list[Server] = []

    def __call__(self, smtp: dict | None = None, limits: dict | None = None,
                 extra: dict | None = None, mode: str = "smtpd", name: str | None = None,
                 start: bool = True) -> Server:
        tmp = self.root / (name or f"srv{len(self.servers)}")
        tmp.mkdir(parents=True, exist_ok=True)
        config = base_config(tmp, free_port(), self.password_hash)
        overrides = deep_merge({"smtp": smtp or {}}, extra)
        if limits:
            overrides = deep_merge(overrides, {"smtp": {"limits": limits}})
        config = deep_merge(config, overrides)
        path = write_config(tmp / "config.json", config)
        server = Server(tmp=tmp, port=config["smtp"]["port"], config=config, config_path=path,
                        mode=mode)
        self.servers.append(server)
        if start:
            server.start()
        return server

    def finish(self) -> None:
        problems = []
        for server in self.servers:
            if server.proc is None:
                continue
            crashed = server.proc.poll() is not None and not server.expect_exit
            code = server.stop()
            print(f"--- {self.label}{server.mode} on port {server.port} (exit {code}) stderr ---")
            print(server.stderr()[-20000:])
            if crashed:
                problems.append(f"server on port {server.port} died on its own (exit {code})")
        if problems:
            pytest.fail("; ".join(problems))


@pytest.fixture
def make_server(tmp_path, password_hash, bin_path):
    factory = ServerFactory(tmp_path, password_hash, "")
    yield factory
    factory.finish()


@pytest.fixture
def server(make_server) -> Server:
    return make_server()


@pytest.fixture(scope="module")
def make_module_server(tmp_path_factory, password_hash, bin_path):
    """`make_server` for servers shared by the tests of a module (stopped after the module)."""
    factory = ServerFactory(tmp_path_factory.mktemp("modsrv"), password_hash, "module ")
    yield factory
    factory.finish()


# Clients that the policy tests tell apart by their address and its reverse DNS. Not 127.0.0.x:
# resolvers answer the reverse names of 127/8 themselves (RFC 6761: "localhost"; hickory does,
# without asking the configured server), so those clients could have no PTR record of their own.
# 198.18.0.0/15 is the benchmarking range (RFC 2544), never routed. Two /24s: greylisting tells
# client networks apart by their /24.
TEST_NETWORK = "198.18.0.0/23"


@pytest.fixture(scope="session")
def test_network():
    """198.18.0.x and 198.18.1.x as local addresses on the loopback interface for the run (the
    tests run as root, as the VM test does); removed afterwards if this run added them."""
    shown = subprocess.run(["ip", "-4", "addr", "show", "dev", "lo"], capture_output=True,
                           text=True, check=True).stdout
    added = TEST_NETWORK not in shown
    if added:
        subprocess.run(["ip", "addr", "add", TEST_NETWORK, "dev", "lo"], check=True)
    yield "198.18.0."
    if added:
        subprocess.run(["ip", "addr", "del", TEST_NETWORK, "dev", "lo"], check=False)


class TestCerts:
    """Certificates for mx.example.test, made once per session: `rsa` and `ec` (two different
    valid pairs), `expired` (valid until 30 days ago), `future` (valid from in 30 days),
    `mismatched` (rsa's certificate with ec's key)."""
    __test__ = False  # not a test class

    def __init__(self, directory: Path):
        self.dir = directory
        self.rsa = make_cert(directory, "rsa", "rsa")
        self.ec = make_cert(directory, "ec", "ec")
        self.expired = make_dated_cert(directory, "expired", -60, -30)
        self.future = make_dated_cert(directory, "future", 30, 60)
        self.mismatched = CertPair(self.rsa.cert, self.ec.key)


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> TestCerts:
    return TestCerts(tmp_path_factory.mktemp("certs"))
