"""The LDAP address book (issue 16) against real clients: ldapsearch and friends (ldap-utils,
OpenLDAP's libldap) and Python's ldap3. `icsmail serve` with `addressBook.enable`; every mailbox
is an inetOrgPerson under each base DN."""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import time
from pathlib import Path

import ldap3
import pytest

from icshelpers import (ALIAS, ALICE, BOB, PASSWORD, free_port, make_cert,
                        tls_overrides, wait_for_port)

BASE = "dc=example,dc=test"
OTHER_BASE = "ou=People,dc=example,dc=org"
ALBERT = "albert@example.test"
PERSON = "(objectClass=inetOrgPerson)"
# The autocomplete searches of the clients docs/ldap.md names, for what the user typed.
THUNDERBIRD = "(|(cn={0}*)(givenName={0}*)(sn={0}*)(mail={0}*))"
OUTLOOK = "(&(mail=*)(|(mail={0}*)(cn={0}*)(sn={0}*)(givenName={0}*)(displayName={0}*)))"
ROUNDCUBE = "(&(objectClass=inetOrgPerson)(|(mail=*{0}*)(cn=*{0}*)))"
APPLE = "(|(cn=*{0}*)(givenName=*{0}*)(sn=*{0}*)(mail=*{0}*))"
# ldapsearch's exit status is the LDAP result code.
SUCCESS, ADMIN_LIMIT, CONFIDENTIALITY, NO_SUCH_OBJECT = 0, 11, 13, 32
INVALID_CREDENTIALS, INSUFFICIENT_ACCESS, UNWILLING = 49, 50, 53


def ldap_server(make_server, tmp_path: Path, mode: str = "optional", publish: bool = True,
                implicit: bool = True):
    """`icsmail serve` with the address book on two base DNs, TLS in `mode` (StartTLS) and
    LDAPS when `implicit`. Accounts: Alice Liddell (alias al@), Bob Builder, Albert Einstein."""
    pair = make_cert(tmp_path / "certs", "ldap")
    overrides = tls_overrides(pair, mode=mode)
    book = {"enable": True, "port": free_port(), "ldapsPort": free_port(),
            "baseDn": f"{BASE}; {OTHER_BASE}", "publishToClients": publish}
    overrides["addressBook"] = book
    overrides["access"]["implicitTls"] = {"enable": implicit}
    overrides["accounts"] = {
        ALICE: {"displayName": "Alice Liddell"},
        BOB: {"displayName": "Bob Builder"},
        ALBERT: {"displayName": "Albert Einstein", "hashedPassword": make_server.password_hash},
    }
    server = make_server(extra=overrides, mode="serve")
    wait_for_port(book["port"], server.proc)
    if implicit:
        wait_for_port(book["ldapsPort"], server.proc)
    server.ldap_port, server.ldaps_port = book["port"], book["ldapsPort"]
    server.cert = pair
    return server


@pytest.fixture
def book(make_server, tmp_path):
    return ldap_server(make_server, tmp_path)


def ldap_tool(tool: str, server, *args: str, url: str | None = None, stdin: str | None = None,
              timeout: float = 30) -> subprocess.CompletedProcess:
    """An ldap-utils command against `server` (simple auth, certificates not checked: the
    tests' certificate is self-signed for mx.example.test)."""
    env = dict(os.environ, LDAPTLS_REQCERT="never")
    url = url or f"ldap://127.0.0.1:{server.ldap_port}"
    return subprocess.run([tool, "-x", "-H", url, *args], input=stdin, capture_output=True,
                          text=True, timeout=timeout, env=env)


def search(server, base: str, filter_: str, *attrs: str, scope: str = "sub",
           options: tuple[str, ...] = (), url: str | None = None, code: int = SUCCESS) -> str:
    result = ldap_tool("ldapsearch", server, "-LLL", "-o", "ldif-wrap=no", "-b", base,
                       "-s", scope, *options, filter_, *attrs, url=url)
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def entries(ldif: str) -> dict[str, dict[str, list[str]]]:
    """LDIF (unwrapped, plain values) as {dn: {attribute: [values]}}."""
    out: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in ldif.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "dn":
            current = out.setdefault(value, {})
        elif current is not None:
            current.setdefault(name, []).append(value)
    return out


def uids(ldif: str) -> set[str]:
    return {values["uid"][0] for values in entries(ldif).values() if "uid" in values}


def person_dn(address: str, base: str = BASE) -> str:
    return f"uid={address},{base}"


# --------------------------------------------------------------------------------------------
# Searches with ldapsearch


def test_autocomplete_filters_of_the_clients(book):
    for filter_, typed, expected in [
        (THUNDERBIRD, "al", {ALICE, ALBERT}),   # cn Alice…, cn Albert…, and the alias al@
        (THUNDERBIRD, "ein", {ALBERT}),         # sn Einstein
        (OUTLOOK, "lid", {ALICE}),              # sn Liddell
        (OUTLOOK, "BOB", {BOB}),                # case does not matter
        (ROUNDCUBE, "uild", {BOB}),             # fuzzy: inside "Builder"
        (APPLE, "example.test", {ALICE, BOB, ALBERT}),
        (THUNDERBIRD, "zz", set()),
    ]:
        found = uids(search(book, BASE, filter_.format(typed), "cn", "mail", "uid"))
        assert found == expected, (filter_.format(typed), found)


def test_entries_carry_the_person_attributes(book):
    ldif = search(book, person_dn(ALICE), "(objectClass=*)", scope="base")
    alice = entries(ldif)[person_dn(ALICE)]
    assert alice["objectClass"] == ["top", "person", "organizationalPerson", "inetOrgPerson"]
    assert alice["cn"] == ["Alice Liddell"] and alice["displayName"] == ["Alice Liddell"]
    assert alice["givenName"] == ["Alice"] and alice["sn"] == ["Liddell"]
    assert alice["mail"] == [ALICE, ALIAS] and alice["uid"] == [ALICE]
    # Attribute selection: names, `1.1`, `+`.
    only = entries(search(book, person_dn(ALICE), "(objectClass=*)", "mail", scope="base"))
    assert only == {person_dn(ALICE): {"mail": [ALICE, ALIAS]}}
    none = entries(search(book, person_dn(ALICE), "(objectClass=*)", "1.1", scope="base"))
    assert none == {person_dn(ALICE): {}}
    operational = entries(search(book, person_dn(ALICE), "(objectClass=*)", "+", scope="base"))
    assert operational[person_dn(ALICE)]["entryDN"] == [person_dn(ALICE)]


def test_scopes_and_several_base_dns(book):
    assert set(entries(search(book, BASE, "(objectClass=*)", scope="base"))) == {BASE}
    one = entries(search(book, BASE, "(objectClass=*)", scope="one"))
    assert set(one) == {person_dn(a) for a in (ALICE, BOB, ALBERT)}
    sub = entries(search(book, BASE, "(objectClass=*)", scope="sub"))
    assert set(sub) == set(one) | {BASE}
    other = entries(search(book, OTHER_BASE, PERSON, "uid"))
    assert set(other) == {person_dn(a, OTHER_BASE) for a in (ALICE, BOB, ALBERT)}
    # The base DN compares without case; the base entry's class follows its RDN.
    assert entries(search(book, "OU=people,DC=Example,DC=Org", "(ou=*)", scope="base")) == {
        OTHER_BASE: {"objectClass": ["top", "organizationalUnit"], "ou": ["People"]}}
    assert entries(search(book, BASE, "(objectClass=*)", scope="base"))[BASE]["dc"] == ["example"]


def test_root_dse(book):
    named = entries(search(book, "", "(objectClass=*)", "namingContexts", "supportedControl",
                           "supportedExtension", "supportedLDAPVersion", scope="base"))[""]
    assert named["namingContexts"] == [BASE, OTHER_BASE]
    assert named["supportedLDAPVersion"] == ["3"]
    assert "1.2.840.113556.1.4.319" in named["supportedControl"]
    assert "1.3.6.1.4.1.1466.20037" in named["supportedExtension"]
    bare = entries(search(book, "", "(objectClass=*)", scope="base"))[""]
    assert bare["namingContexts"] == [BASE, OTHER_BASE]


def test_paged_results(book):
    ldif = search(book, "", PERSON, "uid", options=("-E", "pr=2/noprompt"))
    # 6 people (3 under each base), pages of 2.
    assert len(entries(ldif)) == 6, ldif
    result = ldap_tool("ldapsearch", book, "-b", BASE, "-E", "pr=2/noprompt", PERSON, "uid")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("# search result") == 2, result.stdout
    assert "pagedresults: estimate=3 cookie=" in result.stdout
    assert result.stdout.count("\ndn: ") == 3


def test_no_such_object_and_read_only(book):
    search(book, "dc=nowhere,dc=test", "(objectClass=*)", code=NO_SUCH_OBJECT)
    search(book, person_dn("nobody@example.test"), "(objectClass=*)", scope="base",
           code=NO_SUCH_OBJECT)
    creds = ("-D", ALICE, "-w", PASSWORD)
    add = ldap_tool("ldapadd", book, *creds,
                    stdin=f"dn: uid=eve@example.test,{BASE}\nobjectClass: inetOrgPerson\n"
                          "cn: Eve\nsn: Eve\n")
    assert add.returncode == UNWILLING, (add.stdout, add.stderr)
    modify = ldap_tool("ldapmodify", book, *creds,
                       stdin=f"dn: {person_dn(ALICE)}\nchangetype: modify\nreplace: cn\ncn: X\n")
    assert modify.returncode == UNWILLING, (modify.stdout, modify.stderr)
    delete = ldap_tool("ldapdelete", book, *creds, person_dn(BOB))
    assert delete.returncode == UNWILLING, (delete.stdout, delete.stderr)
    # Still there, unchanged.
    assert entries(search(book, person_dn(ALICE), "(objectClass=*)", "cn", scope="base")) == {
        person_dn(ALICE): {"cn": ["Alice Liddell"]}}


def test_filter_bounds(book):
    deep = "(cn=a*)"
    for _ in range(12):
        deep = f"(!{deep})"
    search(book, BASE, deep, code=ADMIN_LIMIT)
    # Nine levels are fine: (!(!(…))) of an even count is the filter itself.
    fine = "(cn=al*)"
    for _ in range(8):
        fine = f"(!{fine})"
    assert uids(search(book, BASE, fine, "uid")) == {ALICE, ALBERT}


def test_bind_and_whoami(book):
    for name in (ALICE, "alice", person_dn(ALICE)):
        result = ldap_tool("ldapwhoami", book, "-D", name, "-w", PASSWORD)
        assert result.returncode == 0 and result.stdout.strip() == f"u:{ALICE}", (
            name, result.stdout, result.stderr)
    anonymous = ldap_tool("ldapwhoami", book)
    assert anonymous.returncode == 0 and anonymous.stdout.strip() == "anonymous"
    # A name without a password is an unauthenticated bind: refused.
    empty = ldap_tool("ldapwhoami", book, "-D", ALICE, "-w", "")
    assert empty.returncode == UNWILLING, (empty.stdout, empty.stderr)


# --------------------------------------------------------------------------------------------
# TLS


def test_starttls_and_ldaps(book):
    bound = ("-D", ALICE, "-w", PASSWORD)
    ldif = search(book, BASE, THUNDERBIRD.format("bob"), "uid", options=("-ZZ", *bound))
    assert uids(ldif) == {BOB}
    ldaps = f"ldaps://127.0.0.1:{book.ldaps_port}"
    assert uids(search(book, BASE, PERSON, "uid", options=bound, url=ldaps)) == {
        ALICE, BOB, ALBERT}
    # StartTLS is not offered twice, nor on LDAPS.
    whoami = ldap_tool("ldapwhoami", book, "-ZZ", *bound, url=ldaps)
    assert whoami.returncode != 0


def test_tls_required_takes_passwords_only_over_tls(make_server, tmp_path):
    server = ldap_server(make_server, tmp_path, mode="required", implicit=False)
    plain = ldap_tool("ldapwhoami", server, "-D", ALICE, "-w", PASSWORD)
    assert plain.returncode == CONFIDENTIALITY, (plain.stdout, plain.stderr)
    tls = ldap_tool("ldapwhoami", server, "-ZZ", "-D", ALICE, "-w", PASSWORD)
    assert tls.returncode == 0 and tls.stdout.strip() == f"u:{ALICE}", tls.stderr
    # Anonymous searches send no password: allowed in the clear.
    assert uids(search(server, BASE, PERSON, "uid")) == {ALICE, BOB, ALBERT}


# --------------------------------------------------------------------------------------------
# Who sees the entries


def test_publish_to_clients_off_leaves_only_the_webmail(make_server, tmp_path):
    server = ldap_server(make_server, tmp_path, publish=False)
    # A mail client binds with its account: refused.
    refused = ldap_tool("ldapsearch", server, "-D", ALICE, "-w", PASSWORD, "-b", BASE, PERSON)
    assert refused.returncode == INSUFFICIENT_ACCESS, (refused.stdout, refused.stderr)
    assert "not published" in refused.stderr + refused.stdout
    # The webmail: anonymous from this host.
    assert uids(search(server, BASE, PERSON, "uid")) == {ALICE, BOB, ALBERT}
    # The RootDSE stays readable to the client.
    dse = ldap_tool("ldapsearch", server, "-D", ALICE, "-w", PASSWORD, "-s", "base", "-b", "",
                    "namingContexts")
    assert dse.returncode == 0 and BASE in dse.stdout


def test_publish_to_clients_on_serves_bound_clients(book):
    ldif = search(book, BASE, OUTLOOK.format("ein"), "uid", options=("-D", BOB, "-w", PASSWORD))
    assert uids(ldif) == {ALBERT}


# --------------------------------------------------------------------------------------------
# ldap3, the second client


def ldap3_connection(server, user: str | None = None, tls: bool = False,
                     source: str | None = None) -> ldap3.Connection:
    target = ldap3.Server("127.0.0.1", port=server.ldap_port, get_info=ldap3.ALL,
                          tls=ldap3.Tls(validate=0) if tls else None)
    kwargs = {"source_address": source} if source else {}
    connection = ldap3.Connection(target, user=user, password=PASSWORD if user else None,
                                  auto_bind=ldap3.AUTO_BIND_NONE, raise_exceptions=False,
                                  receive_timeout=30, **kwargs)
    connection.open()
    if tls:
        assert connection.start_tls(), connection.result
    assert connection.bind(), connection.result
    return connection


def test_ldap3_searches(book):
    conn = ldap3_connection(book)
    info = conn.server.info
    assert BASE in info.naming_contexts and OTHER_BASE in info.naming_contexts
    assert "1.2.840.113556.1.4.319" in {c[0] for c in info.supported_controls}
    assert conn.search(BASE, THUNDERBIRD.format("al"), attributes=["cn", "mail"])
    assert {e.entry_dn for e in conn.entries} == {person_dn(ALICE), person_dn(ALBERT)}
    alice = next(e for e in conn.entries if e.entry_dn == person_dn(ALICE))
    assert alice.mail.values == [ALICE, ALIAS]
    assert conn.search(BASE, "(objectClass=*)", search_scope=ldap3.BASE)
    assert [e.entry_dn for e in conn.entries] == [BASE]
    assert conn.search(BASE, PERSON, search_scope=ldap3.LEVEL, attributes=["uid"])
    assert len(conn.entries) == 3
    assert not conn.search("dc=nowhere", "(objectClass=*)")
    assert conn.result["result"] == NO_SUCH_OBJECT
    pages = list(conn.extend.standard.paged_search("", PERSON, attributes=["uid"],
                                                   paged_size=2, generator=True))
    assert len([p for p in pages if p["type"] == "searchResEntry"]) == 6
    # Size limit within the server's cap: sizeLimitExceeded after the first ones.
    conn.search(BASE, PERSON, size_limit=2)
    assert conn.result["result"] == 4 and len(conn.entries) == 2
    assert not conn.add(f"uid=eve@example.test,{BASE}", "inetOrgPerson", {"cn": "E", "sn": "E"})
    assert conn.result["result"] == UNWILLING
    conn.unbind()


def test_ldap3_bound_over_starttls(book):
    conn = ldap3_connection(book, user=person_dn(BOB), tls=True)
    assert conn.extend.standard.who_am_i() == f"u:{BOB}"
    assert conn.search(OTHER_BASE, OUTLOOK.format("lid"), attributes=["cn"])
    assert [e.cn.value for e in conn.entries] == ["Alice Liddell"]
    conn.unbind()


# --------------------------------------------------------------------------------------------
# Bad clients


def closed_by_server(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Reads until the server closes; returns what it sent (a Notice of Disconnection)."""
    sock.settimeout(timeout)
    got = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return got
        got += chunk


NOTICE_OID = b"1.3.6.1.4.1.1466.20036"


def test_garbage_and_oversized_requests_close_only_their_connection(book):
    other = ldap3_connection(book)
    with socket.create_connection(("127.0.0.1", book.ldap_port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert NOTICE_OID in closed_by_server(sock)
    # A SEQUENCE whose content is not an LDAP message.
    with socket.create_connection(("127.0.0.1", book.ldap_port), timeout=10) as sock:
        sock.sendall(bytes([0x30, 0x06, 0x02, 0x01, 0x01, 0x04, 0x01, 0x41]))
        assert NOTICE_OID in closed_by_server(sock)
    # 16 MiB announced: refused from the header, without waiting for the body.
    with socket.create_connection(("127.0.0.1", book.ldap_port), timeout=10) as sock:
        sock.sendall(bytes([0x30, 0x84, 0x01, 0x00, 0x00, 0x00, 0x02, 0x01, 0x01]))
        started = time.monotonic()
        assert NOTICE_OID in closed_by_server(sock)
        assert time.monotonic() - started < 5
    # 40 KiB actually sent (a search with a huge filter value).
    with socket.create_connection(("127.0.0.1", book.ldap_port), timeout=10) as sock:
        value = b"a" * 40000
        body = search_request_ber(value)
        try:
            sock.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        closed_by_server(sock)
    # The connection opened before, and new ones, are served.
    assert other.search(BASE, THUNDERBIRD.format("bob"), attributes=["uid"])
    assert [e.uid.value for e in other.entries] == [BOB]
    assert uids(search(book, BASE, THUNDERBIRD.format("bob"), "uid")) == {BOB}
    assert book.alive()
    # A client's bad bytes are its fault: logged as the reason for closing, not as an error.
    assert "undecodable request" in book.stderr() and " ERROR " not in book.stderr()


def ber_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + ber_length(len(content)) + content


def search_request_ber(value: bytes) -> bytes:
    """A searchRequest for (cn=<value>) under BASE, message 1."""
    filter_ = tlv(0xA3, tlv(0x04, b"cn") + tlv(0x04, value))
    request = (tlv(0x04, BASE.encode()) + tlv(0x0A, b"\x02") + tlv(0x0A, b"\x00")
               + tlv(0x02, b"\x00") + tlv(0x02, b"\x00") + tlv(0x01, b"\x00") + filter_
               + tlv(0x30, b""))
    return tlv(0x30, tlv(0x02, b"\x01") + tlv(0x63, request))


def test_a_small_request_built_by_hand_is_answered(book):
    """The hand-built request of the oversize test is a valid one when small (so that test
    fails for its size, not its form)."""
    with socket.create_connection(("127.0.0.1", book.ldap_port), timeout=10) as sock:
        sock.sendall(search_request_ber(b"Bob Builder"))
        sock.settimeout(10)
        got = b""
        while person_dn(BOB).encode() not in got:
            chunk = sock.recv(4096)
            assert chunk, got
            got += chunk
        assert person_dn(BOB).encode() in got


def test_connections_per_address_are_capped(book):
    held = []
    time.sleep(0.5)  # the start-up probes of the ports are gone
    try:
        for _ in range(20):
            held.append(socket.create_connection(("127.0.0.1", book.ldap_port), timeout=10))
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", book.ldap_port), timeout=10) as sock:
            assert NOTICE_OID in closed_by_server(sock)
        # Another address is served meanwhile.
        conn = ldap3_connection(book, source="127.0.0.2")
        assert conn.search(BASE, THUNDERBIRD.format("bob"))
        conn.unbind()
    finally:
        for sock in held:
            sock.close()


def test_bad_password_is_invalid_credentials_after_the_slowdown(make_server, tmp_path):
    """3 free failures, then the shared authenticator's 0.5 s doubling delay (docs/tls-and-auth.md);
    the times are judged against the cost of the free failures (an argon2id check, slow in a
    debug build), so a loaded machine does not fail the test."""
    server = ldap_server(make_server, tmp_path)

    def bind(password: str) -> tuple[int, float]:
        target = ldap3.Server("127.0.0.1", port=server.ldap_port)
        conn = ldap3.Connection(target, user=BOB, password=password, raise_exceptions=False,
                                receive_timeout=60)
        conn.open()
        started = time.monotonic()
        conn.bind()
        took = time.monotonic() - started
        conn.unbind()
        return conn.result["result"], took

    free = [bind(f"guess-{n}") for n in range(3)]
    assert all(code == INVALID_CREDENTIALS for code, _ in free), free
    cost = statistics.median(took for _, took in free)
    # The 4th failure in a row waits 0.5 s before the check, the 5th 1 s.
    code, took = bind("guess-3")
    assert code == INVALID_CREDENTIALS and took >= 0.45 and took >= cost + 0.35, (cost, took)
    code, took = bind("guess-4")
    assert code == INVALID_CREDENTIALS and took >= 0.95 and took >= cost + 0.8, (cost, took)
    # ldap-utils sees the same: the 6th waits 2 s, then invalidCredentials (exit 49).
    started = time.monotonic()
    result = ldap_tool("ldapwhoami", server, "-D", BOB, "-w", "guess-5")
    took = time.monotonic() - started
    assert result.returncode == INVALID_CREDENTIALS and took >= 1.95, (result, took)
    assert "Invalid credentials" in result.stderr
    assert server.stderr().count('authentication failed peer=127.0.0.1 login="bob@example.test"') == 6


# --------------------------------------------------------------------------------------------
# Live changes


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_account_changes_show_without_a_restart(book):
    conn = ldap3_connection(book)
    conn.search(BASE, "(uid=dave@example.test)")
    assert conn.result["result"] == SUCCESS and not conn.entries
    config = json.loads(book.config_path.read_text())
    config["accounts"]["dave@example.test"] = {"displayName": "Dave Lister",
                                               "hashedPassword": config["accounts"][ALBERT]["hashedPassword"]}
    del config["accounts"][ALBERT]
    book.config_path.write_text(json.dumps(config))
    before = book.stderr().count("settings reloaded")
    pid = book.proc.pid
    book.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: book.stderr().count("settings reloaded") > before), book.stderr()
    # On the connection opened before the reload, and on a new one.
    assert conn.search(BASE, THUNDERBIRD.format("dav"), attributes=["cn"])
    assert [e.cn.value for e in conn.entries] == ["Dave Lister"]
    assert uids(search(book, BASE, PERSON, "uid")) == {ALICE, BOB, "dave@example.test"}
    assert book.proc.pid == pid and book.alive()
    conn.unbind()


# --------------------------------------------------------------------------------------------
# The daemon on its own


def ldapd_config(make_server, port: int, enable: bool = True) -> Path:
    server = make_server(start=False, extra={"addressBook": {
        "enable": enable, "port": port, "baseDn": BASE}})
    return server.config_path


@pytest.mark.skipif(subprocess.run(["which", "systemd-socket-activate"],
                                   capture_output=True).returncode != 0,
                    reason="systemd-socket-activate is not installed")
def test_socket_activation_starts_ldapd_on_the_first_search(make_server, bin_path, tmp_path):
    configured = free_port()
    config = ldapd_config(make_server, configured)
    port = free_port()
    err_path = tmp_path / "ldapd.stderr"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(["systemd-socket-activate", "-l", f"127.0.0.1:{port}",
                                 "--fdname=ldap", bin_path, "ldapd", "--config", str(config)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    try:
        # systemd-socket-activate's own line says the socket is up; a connection to check
        # would itself be the first client and start the daemon.
        deadline = time.monotonic() + 10
        while "Listening on" not in err_path.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, err_path.read_text()
            time.sleep(0.05)
        time.sleep(0.3)
        assert "Execing" not in err_path.read_text()  # nothing started before a client
        probe = type("Probe", (), {"ldap_port": port})()
        assert uids(search(probe, BASE, THUNDERBIRD.format("bob"), "uid")) == {BOB}
        text = err_path.read_text()
        assert 'service="ldap"' in text and f":{port}" in text, text
        # The configured port is not bound: systemd's socket is the one listener.
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", configured))
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, err_path.read_text()


def test_ldapd_refuses_to_start_with_the_book_off(make_server, bin_path):
    config = ldapd_config(make_server, free_port(), enable=False)
    result = subprocess.run([bin_path, "ldapd", "--config", str(config)], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode != 0 and "addressBook.enable is off" in result.stderr


def test_an_account_added_in_the_override_file_shows_without_a_signal(book):
    """What the D-Bus admin does: it writes <stateDir>/overrides.json; the daemon notices."""
    conn = ldap3_connection(book)
    hashed = json.loads(book.config_path.read_text())["accounts"][ALBERT]["hashedPassword"]
    overrides = {"accounts": {"erin@example.test": {"displayName": "Erin Hunt",
                                                    "hashedPassword": hashed}}}
    path = book.state_dir / "overrides.json"
    path.with_name("overrides.json.new").write_text(json.dumps(overrides))
    os.replace(path.with_name("overrides.json.new"), path)

    def erin_listed() -> bool:
        conn.search(BASE, THUNDERBIRD.format("erin"), attributes=["cn"])
        return [e.cn.value for e in conn.entries] == ["Erin Hunt"]

    assert wait_until(erin_listed, timeout=10), book.stderr()
    conn.unbind()
