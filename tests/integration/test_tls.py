"""TLS (docs/tls-and-auth.md): the configured certificate is served on STARTTLS (25) and
implicit TLS (SMTPS); TLS 1.2 and 1.3 only, AEAD suites only (openssl s_client, swaks and a
testssl.sh scan); key-exchange groups per tls.dhKeyLength; STARTTLS session rules; bad TLS input
and stalled handshakes (cut after smtp.limits.commandTimeout); certificate errors at start;
SIGHUP reload; the demo's self-signed certificate.

Most read-only checks share one server (`shared`, tls.mode optional, SMTPS and submission on)
so that the slow testssl.sh scans run once, both in parallel."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid

import pytest

from icshelpers import (
    ALICE,
    BOB,
    HELO_NAME,
    PASSWORD,
    CertPair,
    TLSClient,
    cert_der,
    client_tls_context,
    client_hello,
    ehlo_keywords,
    find_message,
    free_port,
    make_message,
    pem_certs,
    port_is_free,
    read_until_closed,
    received_protocol,
    run_s_client,
    run_swaks,
    s_client_cipher,
    s_client_protocol,
    smtps_port,
    tls_overrides,
    wait_for_port,
    wait_until,
)

ENDPOINTS = ["starttls", "smtps"]
SENDER = "sender@example.org"
# openssl 3.0 on Debian refuses TLS < 1.2 itself at its default security level.
LEGACY_CLIENT = ["-cipher", "DEFAULT@SECLEVEL=0"]
COMMAND_TIMEOUT = 3  # smtp.limits.commandTimeout of the stall tests' server


def token() -> str:
    return f"tls-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def shared(make_module_server, certs):
    return make_module_server(
        extra=tls_overrides(certs.rsa, "optional", smtps_port=free_port(),
                            submission_port=free_port()),
        name="shared")


def s_client(server, endpoint: str, *args: str) -> str:
    if endpoint == "starttls":
        return run_s_client(server.port, *args, starttls=True).stdout
    return run_s_client(smtps_port(server), *args).stdout


def endpoint_port(server, endpoint: str) -> int:
    return server.port if endpoint == "starttls" else smtps_port(server)


def tls_session(server, endpoint: str, **kwargs) -> TLSClient:
    """A TLS session on `endpoint` after EHLO (STARTTLS done for "starttls")."""
    if endpoint == "smtps":
        client = TLSClient(smtps_port(server), implicit=True, **kwargs)
    else:
        client = TLSClient(server.port, **kwargs)
        client.ehlo()
        client.starttls()
    client.ehlo()
    return client


# --------------------------------------------------------------------------------------------
# The certificate and protocol versions (openssl s_client)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_default_handshake_is_tls13_with_our_certificate(shared, certs, endpoint):
    out = s_client(shared, endpoint, "-CAfile", str(certs.rsa.cert), "-verify_hostname",
                   HELO_NAME, "-verify_return_error")
    assert s_client_protocol(out) == "TLSv1.3", out
    served = pem_certs(out)
    assert served, out
    assert served[0] == certs.rsa.der(), "the server does not serve smtp.certificate.certFile"
    assert "Verify return code: 0 (ok)" in out, out


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_tls12_works_with_an_aead_suite(shared, certs, endpoint):
    out = s_client(shared, endpoint, "-tls1_2")
    assert s_client_protocol(out) == "TLSv1.2", out
    cipher = s_client_cipher(out)
    assert "GCM" in cipher or "CHACHA20" in cipher, f"non-AEAD suite {cipher}"
    assert pem_certs(out)[0] == certs.rsa.der()


@pytest.fixture(scope="module")
def legacy_client_works(certs):
    """Proof that this openssl can negotiate TLS 1.0 and 1.1 (against `openssl s_server`), so
    that a refusal by ics-mail below is ics-mail's doing."""
    for flag, name in (("-tls1", "TLSv1"), ("-tls1_1", "TLSv1.1")):
        port = free_port()
        server = subprocess.Popen(
            ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(certs.rsa.cert),
             "-key", str(certs.rsa.key), flag, *LEGACY_CLIENT, "-quiet"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(port, server)
            out = run_s_client(port, flag, *LEGACY_CLIENT).stdout
            assert s_client_protocol(out) is not None and f"Protocol  : {name}\n" in out, (
                f"openssl s_client {flag} cannot reach openssl s_server {flag} either:\n{out}")
        finally:
            server.terminate()
            server.wait(10)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("flag", ["-tls1", "-tls1_1"])
def test_tls10_and_tls11_refused(shared, legacy_client_works, endpoint, flag):
    out = s_client(shared, endpoint, flag, *LEGACY_CLIENT)
    assert s_client_protocol(out) is None, f"{flag} negotiated:\n{out}"
    assert not pem_certs(out), f"a certificate was sent for {flag}"
    # and the next client is served
    assert s_client_protocol(s_client(shared, endpoint)) == "TLSv1.3"


# --------------------------------------------------------------------------------------------
# swaks


def test_swaks_starttls_delivers_over_tls(shared, certs, tmp_path):
    tok = token()
    peer = tmp_path / "peer.pem"
    result = run_swaks(shared.port, "--tls", "--from", SENDER, "--to", BOB,
                       "--header", f"Subject: {tok}", "--body", tok,
                       "--tls-get-peer-cert", str(peer))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "TLS started with cipher TLSv1.3" in result.stdout, result.stdout
    assert cert_der(peer) == certs.rsa.der()
    message = find_message(shared, BOB, tok)
    assert received_protocol(message) == "ESMTPS"


def test_swaks_implicit_tls_with_auth(shared, certs, tmp_path):
    tok = token()
    peer = tmp_path / "peer.pem"
    result = run_swaks(smtps_port(shared), "--tlsc", "--auth", "PLAIN", "--auth-user", "alice",
                       "--auth-password", PASSWORD, "--from", ALICE, "--to", BOB,
                       "--header", f"Subject: {tok}", "--body", tok,
                       "--tls-get-peer-cert", str(peer))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "TLS started with cipher TLSv1.3" in result.stdout, result.stdout
    assert "235 2.7.0" in result.stdout, result.stdout
    assert cert_der(peer) == certs.rsa.der()
    assert received_protocol(find_message(shared, BOB, tok)) == "ESMTPSA"


# --------------------------------------------------------------------------------------------
# Key-exchange groups per tls.dhKeyLength

GROUPS = {
    # dhKeyLength: {group offered by the client: expected "Server Temp Key" or None (refused)}
    2048: {"X25519": "X25519", "P-256": "prime256v1", "P-384": "secp384r1"},
    3072: {"X25519": "X25519", "P-256": "prime256v1", "P-384": "secp384r1"},
    4096: {"X25519": None, "P-256": None, "P-384": "secp384r1"},
}


@pytest.mark.parametrize("dh", sorted(GROUPS))
def test_key_exchange_groups(make_server, certs, dh):
    server = make_server(extra=tls_overrides(certs.rsa, smtps_port=free_port(),
                                             dh_key_length=dh))
    problems = []
    for group, expected in GROUPS[dh].items():
        for version in ("-tls1_3", "-tls1_2"):
            for endpoint in ENDPOINTS:
                out = s_client(server, endpoint, version, "-groups", group)
                proto = s_client_protocol(out)
                if expected is None:
                    if proto is not None:
                        problems.append(f"{group} {version} {endpoint}: negotiated {proto}")
                elif proto is None or f"Server Temp Key: " not in out:
                    problems.append(f"{group} {version} {endpoint}: failed")
                elif expected not in out.split("Server Temp Key: ", 1)[1].split("\n", 1)[0]:
                    problems.append(f"{group} {version} {endpoint}: other group in {out}")
    assert not problems, f"dhKeyLength {dh}: " + "; ".join(problems)


# --------------------------------------------------------------------------------------------
# STARTTLS session rules


def test_starttls_resets_the_session(shared):
    with TLSClient(shared.port) as client:
        before = ehlo_keywords(client.ehlo())
        assert "STARTTLS" in before and "AUTH PLAIN LOGIN" in before, before
        client.cmd(f"MAIL FROM:<{SENDER}>", "250")
        client.starttls()
        assert client.tls_version() == "TLSv1.3"
        client.cmd(f"MAIL FROM:<{SENDER}>", 503)  # EHLO again first (RFC 3207 §4.2)
        after = ehlo_keywords(client.ehlo())
        assert "STARTTLS" not in after, after
        assert "AUTH PLAIN LOGIN" in after, after
        client.cmd(f"RCPT TO:<{ALICE}>", 503)  # the transaction begun before TLS is gone
        reply = client.cmd("STARTTLS")
        assert 500 <= reply.code < 600, f"STARTTLS inside TLS: {reply.text}"
        tok = token()
        client.transaction(SENDER, [ALICE], make_message(tok))
        client.cmd("QUIT", 221)
    assert received_protocol(find_message(shared, ALICE, tok)) == "ESMTPS"


@pytest.mark.parametrize("pipelined", [
    "MAIL FROM:<sender@example.org>\r\n",
    "EHLO client.example.org\r\nMAIL FROM:<sender@example.org>\r\n",
    "\x16\x03\x01",  # the start of a TLS record, sent too early
])
def test_commands_pipelined_after_starttls_are_refused(shared, pipelined):
    with TLSClient(shared.port) as client:
        client.ehlo()
        client.send("STARTTLS\r\n" + pipelined)
        client.expect("554 5.5.0")
        rest, closed = read_until_closed(client.sock)
        assert closed, "connection still open after 554 to pipelined STARTTLS"
        assert client.buf + rest == b"", f"more after the 554: {client.buf + rest!r}"
    with TLSClient(shared.port) as client:  # others are still served
        client.ehlo()
        client.starttls()
        client.ehlo()


def test_starttls_pipelined_in_one_write_with_ehlo(shared):
    """EHLO and STARTTLS may be pipelined; what follows STARTTLS may not."""
    with TLSClient(shared.port) as client:
        client.send("EHLO client.example.org\r\nSTARTTLS\r\nNOOP\r\n")
        client.expect(250)
        client.expect("554 5.5.0")
        _, closed = read_until_closed(client.sock)
        assert closed


# --------------------------------------------------------------------------------------------
# Bad TLS input


GARBAGE = {
    "smtp-command": b"EHLO client.example.org\r\n",
    "http": b"GET / HTTP/1.0\r\nHost: mx.example.test\r\n\r\n",
    "bad-handshake": b"\x16\x03\x01\x00\x05hello",
    "binary": bytes(range(256)) * 4,
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_garbage_instead_of_client_hello(shared, endpoint, kind):
    sock = socket.create_connection(("127.0.0.1", endpoint_port(shared, endpoint)), timeout=10)
    try:
        if endpoint == "starttls":
            smtp_starttls(sock)
        sock.sendall(GARBAGE[kind])
        data, closed = read_until_closed(sock, 5)
        assert closed, f"{kind}: connection still open 5 s after garbage"
        assert b"220" not in data and b"250" not in data, f"SMTP spoken after garbage: {data!r}"
    finally:
        sock.close()
    with tls_session(shared, endpoint) as client:  # the server goes on
        client.cmd("NOOP", 250)


class StalledHandshake:
    """A client that starts a TLS handshake and then says nothing more; a thread notes when the
    server closes the connection."""

    def __init__(self, port: int, starttls: bool, partial: bool):
        self.label = f"{'STARTTLS' if starttls else 'SMTPS'}, " + (
            "half a ClientHello" if partial else "whole ClientHello, then silence")
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if starttls:
            smtp_starttls(self.sock)
        hello = client_hello()
        self.sock.sendall(hello[: len(hello) // 2] if partial else hello)
        self.started = time.monotonic()
        self.closed_after: float | None = None
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        _, closed = read_until_closed(self.sock, 4 * COMMAND_TIMEOUT)
        if closed:
            self.closed_after = time.monotonic() - self.started

    def close(self) -> None:
        self.thread.join(4 * COMMAND_TIMEOUT + 2)
        self.sock.close()


def smtp_starttls(sock: socket.socket) -> None:
    """EHLO and STARTTLS on a raw socket, up to the 220."""
    pending = b""
    sock.sendall(b"EHLO client.example.org\r\n")
    while b"\r\n250 " not in pending:
        chunk = sock.recv(4096)
        assert chunk, f"closed during EHLO: {pending!r}"
        pending += chunk
    sock.sendall(b"STARTTLS\r\n")
    reply = sock.recv(4096)
    assert reply.startswith(b"220"), reply


@pytest.fixture
def short_timeout_server(make_server, certs):
    return make_server(extra=tls_overrides(certs.rsa, smtps_port=free_port()),
                       limits={"commandTimeout": COMMAND_TIMEOUT})


def test_stalled_handshakes_are_cut_after_the_command_timeout(short_timeout_server):
    """docs: a TLS handshake must complete within smtp.limits.commandTimeout."""
    server = short_timeout_server
    stalls = [StalledHandshake(smtps_port(server), starttls=False, partial=True),
              StalledHandshake(server.port, starttls=True, partial=False)]
    try:
        with tls_session(server, "smtps") as client:  # others are served meanwhile
            client.cmd("NOOP", 250)
    finally:
        for stall in stalls:
            stall.close()
    problems = []
    for stall in stalls:
        after = stall.closed_after
        if after is None:
            problems.append(f"{stall.label}: still open after {4 * COMMAND_TIMEOUT} s")
        elif not COMMAND_TIMEOUT - 0.5 <= after <= COMMAND_TIMEOUT + 3:
            problems.append(f"{stall.label}: closed after {after:.1f} s")
    assert not problems, (f"expected stalled handshakes cut after the command timeout, "
                          f"{COMMAND_TIMEOUT} s: " + "; ".join(problems))
    with tls_session(server, "smtps") as client:
        client.cmd("NOOP", 250)


def test_slow_handshake_within_the_command_timeout_succeeds(short_timeout_server):
    """Half a ClientHello, a pause of half the command timeout, the rest: served."""
    server = short_timeout_server
    with socket.create_connection(("127.0.0.1", smtps_port(server)), timeout=10) as sock:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = client_tls_context().wrap_bio(incoming, outgoing, server_hostname=HELO_NAME)
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = outgoing.read()
        sock.sendall(hello[: len(hello) // 2])
        time.sleep(COMMAND_TIMEOUT / 2)
        sock.sendall(hello[len(hello) // 2:])
        greeting = b""
        while not greeting.endswith(b"\r\n"):
            try:
                if tls.version() is None:
                    tls.do_handshake()
                greeting += tls.read(4096)
            except ssl.SSLWantReadError:
                pending = outgoing.read()
                if pending:
                    sock.sendall(pending)
                chunk = sock.recv(65536)
                assert chunk, f"closed during a slow handshake (so far {greeting!r})"
                incoming.write(chunk)
        assert greeting.startswith(b"220 "), greeting


# --------------------------------------------------------------------------------------------
# Certificate problems at start


def start_failure(bin_path, server) -> subprocess.CompletedProcess:
    result = subprocess.run([bin_path, "smtpd", "--config", str(server.config_path)],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=30, cwd=server.tmp)
    return result


def broken_pairs(certs, tmp) -> dict:
    (tmp / "empty.pem").write_text("")
    return {
        "missing-cert": (CertPair(tmp / "missing.crt", certs.rsa.key),
                         "smtp.certificate.certFile"),
        "missing-key": (CertPair(certs.rsa.cert, tmp / "missing.key"),
                        "smtp.certificate.keyFile"),
        "key-in-cert-file": (CertPair(certs.rsa.key, certs.rsa.key), "smtp.certificate.certFile"),
        "cert-in-key-file": (CertPair(certs.rsa.cert, certs.rsa.cert),
                             "smtp.certificate.keyFile"),
        "empty-key": (CertPair(certs.rsa.cert, tmp / "empty.pem"), "smtp.certificate.keyFile"),
        "key-does-not-match": (certs.mismatched, "smtp.certificate"),
    }


@pytest.mark.parametrize("case", ["missing-cert", "missing-key", "key-in-cert-file",
                                  "cert-in-key-file", "empty-key", "key-does-not-match"])
def test_broken_certificate_stops_smtpd(make_server, bin_path, certs, tmp_path, case):
    pair, setting = broken_pairs(certs, tmp_path)[case]
    server = make_server(extra=tls_overrides(pair, smtps_port=free_port()), start=False)
    result = start_failure(bin_path, server)
    output = result.stdout + result.stderr
    assert result.returncode > 0, f"smtpd exit code {result.returncode} with {case}:\n{output}"
    assert setting in output, f"{setting!r} not named:\n{output}"
    assert "panicked" not in output, output
    if case == "key-does-not-match":
        assert "match" in output, output


@pytest.mark.parametrize("which", ["expired", "future"])
def test_certificate_out_of_its_validity_is_a_warning(make_server, certs, which):
    pair = getattr(certs, which)
    server = make_server(extra=tls_overrides(pair, smtps_port=free_port()))
    def warned() -> list[str]:
        return [l for l in server.stderr().splitlines()
                if "WARN" in l and "smtp.certificate" in l]
    assert wait_until(lambda: warned(), 2), f"no warning about {which}:\n{server.stderr()}"
    with tls_session(server, "smtps") as client:
        assert client.peer_cert_der() == pair.der()


def test_check_config_wants_certificates_for_tls_modes(bin_path, make_server, certs):
    for mode in ("optional", "required"):
        server = make_server(extra={"tls": {"mode": mode}, "smtp": {"smtps": {"enable": True}}},
                             start=False, name=f"check-{mode}")
        result = subprocess.run([bin_path, "check-config", "--config", str(server.config_path)],
                                stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=60)
        lines = (result.stdout + result.stderr).splitlines()
        assert result.returncode != 0, lines
        for key in ("smtp.certificate:", "access.certificate:", "smtp.smtps.enable:"):
            assert any(l.startswith(key) for l in lines), f"{mode}: no {key} line in {lines}"
    server = make_server(extra=tls_overrides(certs.rsa, "required", smtps_port=free_port()),
                         start=False, name="check-ok")
    result = subprocess.run([bin_path, "check-config", "--config", str(server.config_path)],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------------------------
# SIGHUP


def fingerprints(server) -> dict:
    out = {}
    for endpoint in ENDPOINTS:
        with tls_session(server, endpoint) as client:
            out[endpoint] = client.peer_cert_der()
    return out


def test_sighup_reloads_the_certificate(make_server, certs, tmp_path):
    live = certs.rsa.copy_to(tmp_path / "live.crt", tmp_path / "live.key")
    server = make_server(extra=tls_overrides(live, smtps_port=free_port()))
    rsa, ec = certs.rsa.der(), certs.ec.der()
    assert fingerprints(server) == {"starttls": rsa, "smtps": rsa}

    old = tls_session(server, "starttls")
    certs.ec.copy_to(live.cert, live.key)
    assert fingerprints(server) == {"starttls": rsa, "smtps": rsa}, "reloaded without SIGHUP"
    server.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: fingerprints(server)["smtps"] == ec, 5), (
        "SIGHUP: new connections still get the old certificate")
    assert fingerprints(server) == {"starttls": ec, "smtps": ec}
    # the session begun before the reload goes on with its certificate
    assert old.peer_cert_der() == rsa
    tok = token()
    old.transaction(SENDER, [ALICE], make_message(tok))
    old.close()
    find_message(server, ALICE, tok)

    # broken files on the next SIGHUP: the last good certificate stays, the log says why
    for case, broken in (("garbage", "no certificate here\n"), ("mismatch", None)):
        logged = server.stderr().count("smtp.certificate")
        if broken is None:
            certs.mismatched.copy_to(live.cert, live.key)
        else:
            live.cert.write_text(broken)
        server.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: server.stderr().count("smtp.certificate") > logged, 5), (
            f"{case}: nothing about smtp.certificate in the log after SIGHUP:\n"
            f"{server.stderr()[-3000:]}")
        assert server.alive(), f"{case}: the server died on SIGHUP"
        assert fingerprints(server) == {"starttls": ec, "smtps": ec}, case


# --------------------------------------------------------------------------------------------
# The demo setup: `icsmail serve` without --config


DEMO_SMTP, DEMO_SMTPS = 2525, 2465


def test_serve_demo_makes_a_self_signed_certificate(bin_path, tmp_path):
    """docs: a self-signed certificate for localhost made on first start (./icsmail-state/tls/),
    STARTTLS offered (tls.mode optional) and SMTPS on 2465."""
    if not (port_is_free(DEMO_SMTP) and port_is_free(DEMO_SMTPS)):
        pytest.skip(f"port {DEMO_SMTP} or {DEMO_SMTPS} is in use")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ICSMAIL_")}
    served = []
    for start in (1, 2):  # the second start keeps the certificate of the first
        err_path = tmp_path / f"serve-{start}.stderr"
        with open(err_path, "wb") as err:
            proc = subprocess.Popen([bin_path, "serve"], cwd=tmp_path, env=env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=err)
        try:
            wait_for_port(DEMO_SMTP, proc, 15)
            wait_for_port(DEMO_SMTPS, proc, 5)
            cert_file = tmp_path / "icsmail-state" / "tls" / "cert.pem"
            key_file = tmp_path / "icsmail-state" / "tls" / "key.pem"
            assert cert_file.is_file() and key_file.is_file(), list(tmp_path.rglob("*"))
            assert key_file.stat().st_mode & 0o077 == 0, "key.pem readable by others"
            context = client_tls_context(cafile=cert_file)  # verifies the name localhost
            with TLSClient(DEMO_SMTP, context=context, server_hostname="localhost") as client:
                assert "STARTTLS" in ehlo_keywords(client.ehlo())
                client.starttls()
                served.append(client.peer_cert_der())
            with TLSClient(DEMO_SMTPS, implicit=True, context=context,
                           server_hostname="localhost") as client:
                client.ehlo()
                served.append(client.peer_cert_der())
            assert served[-1] == served[-2] == cert_der(cert_file)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            print(err_path.read_text(errors="replace")[-5000:])
    assert served[0] == served[2], "the second start made a new certificate"


# --------------------------------------------------------------------------------------------
# testssl.sh: protocols and cipher categories, once per endpoint, both scans in parallel and
# started with the module's first test (these tests are last so the scans overlap the others)

TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")


@pytest.fixture(scope="module", autouse=True)
def testssl_scans(request, shared, tmp_path_factory):
    """Starts both testssl.sh scans with the module's first test, when any test_testssl_* test
    is selected, so that they run while the other tests do."""
    selected = any(item.module is request.module and item.name.startswith("test_testssl")
                   for item in request.session.items)
    if not selected or not TESTSSL:
        yield None
        return
    out_dir = tmp_path_factory.mktemp("testssl")
    scans = {}
    for endpoint in ENDPOINTS:
        json_path = out_dir / f"{endpoint}.json"
        cmd = [TESTSSL, "--quiet", "--warnings", "off", "--color", "0", "-n", "none",
               "--protocols", "--std", "--rc4", "--jsonfile", str(json_path)]
        if endpoint == "starttls":
            cmd += ["--starttls", "smtp", f"127.0.0.1:{shared.port}"]
        else:
            cmd += [f"127.0.0.1:{smtps_port(shared)}"]
        # HEADER_MAXSLEEP: how long testssl waits for a banner after its probe (default 5 s)
        env = dict(os.environ, HEADER_MAXSLEEP="1")
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, cwd=out_dir, env=env)
        scans[endpoint] = (proc, json_path)
    yield scans
    for proc, _ in scans.values():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.fixture(scope="module")
def testssl_findings(testssl_scans):
    if not TESTSSL:
        pytest.fail("testssl.sh is not installed (Debian package testssl.sh; tests/run.sh "
                    "installs it)")
    findings = {}
    for endpoint, (proc, json_path) in testssl_scans.items():
        try:
            output, _ = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
            pytest.fail(f"testssl.sh against {endpoint} ran over 300 s:\n{output}")
        assert json_path.exists(), f"testssl.sh wrote no JSON:\n{output}"
        entries = json.loads(json_path.read_text())
        findings[endpoint] = ({e["id"]: e["finding"] for e in entries}, output)
    return findings


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_testssl_protocols(testssl_findings, endpoint):
    found, output = testssl_findings[endpoint]
    if endpoint == "starttls":
        assert found.get("service") == "smtp", output
    for proto in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert found.get(proto) == "not offered", f"{proto}: {found.get(proto)!r}\n{output}"
    assert found.get("TLS1_2") == "offered", output
    assert (found.get("TLS1_3") or "").startswith("offered"), output


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_testssl_cipher_categories(testssl_findings, endpoint):
    found, output = testssl_findings[endpoint]
    # NULL, anonymous, export, LOW (64-bit, DES, RC2, RC4), 3DES/IDEA and AVERAGE (the
    # obsolete CBC suites) must all be absent; only AEAD ("STRONG") suites remain.
    for category in ("NULL", "aNULL", "EXPORT", "LOW", "3DES_IDEA", "AVERAGE"):
        key = f"cipherlist_{category}"
        assert found.get(key) == "not offered", f"{key}: {found.get(key)!r}\n{output}"
    assert found.get("cipherlist_STRONG") == "offered", output
    assert found.get("RC4") == "not vulnerable", output
