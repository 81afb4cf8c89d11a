"""`icsmail serve` without a configuration: the embedded demo setup on 127.0.0.1:2525 with its
state in ./icsmail-state, and a demo account that can receive mail."""

from __future__ import annotations

import imaplib
import os
import re
import signal
import subprocess
import time
import uuid

import pytest

from icshelpers import SMTPClient, make_message, port_accepts, port_is_free

DEMO_PORT = 2525
ADDRESS_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


def find_demo_address(text: str) -> str | None:
    lines = text.splitlines()
    preferred = [l for l in lines if re.search(r"demo|account|user|login", l, re.I)]
    for line in preferred + lines:
        for match in ADDRESS_RE.findall(line):
            return match.rstrip(".")
    return None


@pytest.fixture
def default_serve(tmp_path, bin_path):
    if not port_is_free(DEMO_PORT):
        pytest.skip(f"port {DEMO_PORT} is in use")
    out_path, err_path = tmp_path / "serve.stdout", tmp_path / "serve.stderr"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ICSMAIL_")}
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([bin_path, "serve"], cwd=tmp_path, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err, env=env)
    deadline = time.monotonic() + 15
    while not port_accepts(DEMO_PORT):
        if proc.poll() is not None or time.monotonic() > deadline:
            break
        time.sleep(0.05)

    def output() -> str:
        return out_path.read_text(errors="replace") + "\n" + err_path.read_text(errors="replace")

    yield proc, output
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    print("--- icsmail serve output ---")
    print(output()[-20000:])


def test_serve_default_demo(default_serve, tmp_path):
    proc, output = default_serve
    assert proc.poll() is None, f"serve exited with {proc.returncode}:\n{output()}"
    assert port_accepts(DEMO_PORT), "nothing listens on 127.0.0.1:2525"
    with SMTPClient(DEMO_PORT) as c:
        assert c.greeting.code == 220, c.greeting.text
        c.ehlo()
    assert (tmp_path / "icsmail-state").is_dir(), "no ./icsmail-state in the working directory"

    # The demo address and password are printed within a moment of starting.
    deadline = time.monotonic() + 5
    address = find_demo_address(output())
    while address is None and time.monotonic() < deadline:
        time.sleep(0.1)
        address = find_demo_address(output())
    assert address, f"no demo account address printed:\n{output()}"
    assert re.search(r"pass", output(), re.I), f"no demo password printed:\n{output()}"

    tok = "demo-" + uuid.uuid4().hex
    message = make_message(tok, to=address)
    with SMTPClient(DEMO_PORT) as c:
        c.ehlo()
        c.transaction("sender@example.org", [address], message)
    holders = [p for p in tmp_path.rglob("*")
               if p.is_file() and p.suffix not in (".stdout", ".stderr")
               and tok.encode() in p.read_bytes()]
    assert len(holders) == 1, f"message for {address} stored in {holders}"
    assert holders[0].parent.name == "new", holders[0]

    # The demo account reads it back over IMAP (port 1143) with the printed password.
    password = (tmp_path / "icsmail-state" / "demo-password").read_text().strip()
    assert password in output(), "the printed password is not the stored one"
    imap = imaplib.IMAP4("127.0.0.1", 1143, timeout=10)
    imap.login(address, password)
    imap.select("INBOX")
    typ, found = imap.search(None, "TEXT", tok)
    assert typ == "OK" and found[0].split(), f"IMAP SEARCH found nothing: {found}"
    imap.logout()

    # The address book (port 3389) lists the demo account, bound with it over StartTLS.
    search = subprocess.run(
        ["ldapsearch", "-x", "-LLL", "-ZZ", "-H", "ldap://127.0.0.1:3389", "-D", address,
         "-w", password, "-b", "dc=localhost", "(mail=demo*)", "cn", "mail"],
        capture_output=True, text=True, timeout=30, env=dict(os.environ, LDAPTLS_REQCERT="never"))
    assert search.returncode == 0, search.stderr
    assert f"dn: uid={address},dc=localhost" in search.stdout and "cn: Demo" in search.stdout
