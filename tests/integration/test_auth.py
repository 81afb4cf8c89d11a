"""Encryption modes and logins (docs/tls-and-auth.md): what EHLO offers in each `tls.mode`
before and after STARTTLS, where passwords are accepted, SASL PLAIN/LOGIN with
`defaultAuthDomain`, identical replies and work for unknown users and wrong passwords, the
failure slowdown per client address and per login, and the log lines for fail2ban.

Every test has a fresh server: the failure counters live in the server."""

from __future__ import annotations

import statistics
import threading
import time
import uuid

import pytest

from icshelpers import (
    ALICE,
    BOB,
    DOMAIN,
    PASSWORD,
    TLSClient,
    b64,
    ehlo_keywords,
    find_message,
    free_port,
    make_message,
    smtps_port,
    submission_port,
    tls_overrides,
)

SENDER = "sender@example.org"
INVALID = "535 5.7.8 Authentication credentials invalid"
AUTH_OFFER = "AUTH PLAIN LOGIN"
# A login answered without a deliberate delay takes one argon2id check: tens of ms in a release
# build, about 0.5 s in a debug one. The slow-down tests measure that cost first (`login_cost`)
# and judge every time relative to it: a login is "not delayed" when it takes less than the
# cost plus NOT_DELAYED, which is below the first deliberate delay (0.5 s).
NOT_DELAYED = 0.4


def token() -> str:
    return f"auth-{uuid.uuid4().hex[:12]}"


def timed(action) -> float:
    start = time.monotonic()
    action()
    return time.monotonic() - start


def login_server(make_server, **extra):
    """tls.mode none (the default), defaultAuthDomain example.test."""
    return make_server(extra={"defaultAuthDomain": DOMAIN, **extra})


def login_cost(server) -> float:
    """The median time of one password verification: logins of unknown users (checked against
    the decoy hash, as much work as a real one), each with its own name and from addresses no
    test uses otherwise, so no slowdown applies. (Not successes: a repeated success is a
    remembered login and skips the hash, docs/tls-and-auth.md.)"""
    return statistics.median(attempt(server, f"cost-probe-{n}", PASSWORD, INVALID,
                                     f"127.0.0.{90 + n}")
                             for n in range(3))


def attempt(server, login: str, password: str, expected, source: str | None = None,
            timeout: float = 30.0) -> float:
    """One AUTH PLAIN on a new connection; returns the seconds AUTH took to be answered."""
    with TLSClient(server.port, source=source, timeout=timeout) as client:
        client.ehlo()
        took = timed(lambda: client.auth_plain(login, password, expected))
        client.cmd("QUIT", 221)
    return took


# --------------------------------------------------------------------------------------------
# The three modes

MODES = {
    # mode: (STARTTLS offered, passwords accepted before TLS)
    "none": (False, True),
    "optional": (True, True),
    "required": (True, False),
}


@pytest.fixture
def mode_server(make_server, certs, request):
    mode = request.param
    return mode, make_server(extra=tls_overrides(certs.rsa, mode, smtps_port=free_port(),
                                                 submission_port=free_port()))


@pytest.mark.parametrize("listener", ["mx", "submission"])
@pytest.mark.parametrize("mode_server", sorted(MODES), indirect=True)
def test_mode_before_tls(mode_server, listener):
    mode, server = mode_server
    starttls, plaintext_auth = MODES[mode]
    port = server.port if listener == "mx" else submission_port(server)
    with TLSClient(port) as client:
        offered = ehlo_keywords(client.ehlo())
        assert ("STARTTLS" in offered) == starttls, f"{mode}: EHLO {offered}"
        assert (AUTH_OFFER in offered) == plaintext_auth, f"{mode}: EHLO {offered}"
        if plaintext_auth:
            client.auth_plain("alice", PASSWORD, "235 2.7.0")
        else:
            client.auth_plain("alice", PASSWORD, "538 5.7.11")
            client.cmd("AUTH LOGIN", "538 5.7.11")
            client.cmd("AUTH PLAIN", "538 5.7.11")
            if listener == "submission":
                client.cmd(f"MAIL FROM:<{ALICE}>", "530 5.7.0")
        if not starttls:
            client.cmd("STARTTLS", 502)
        client.cmd("QUIT", 221)


@pytest.mark.parametrize("listener", ["mx", "submission"])
@pytest.mark.parametrize("mode_server", ["optional", "required"], indirect=True)
def test_mode_after_starttls(mode_server, listener):
    mode, server = mode_server
    port = server.port if listener == "mx" else submission_port(server)
    with TLSClient(port) as client:
        client.ehlo()
        client.starttls()
        offered = ehlo_keywords(client.ehlo())
        assert "STARTTLS" not in offered, f"{mode}: EHLO inside TLS {offered}"
        assert AUTH_OFFER in offered, f"{mode}: EHLO inside TLS {offered}"
        client.auth_login("alice", PASSWORD, "235 2.7.0")
        client.cmd(f"MAIL FROM:<{ALICE}>", "250")
        client.cmd("QUIT", 221)


@pytest.mark.parametrize("mode_server", sorted(MODES), indirect=True)
def test_mode_smtps_is_tls_from_the_first_byte(mode_server):
    mode, server = mode_server
    with TLSClient(smtps_port(server), implicit=True) as client:
        assert client.greeting.code == 220
        offered = ehlo_keywords(client.ehlo())
        assert "STARTTLS" not in offered, f"{mode}: SMTPS EHLO {offered}"
        assert AUTH_OFFER in offered, f"{mode}: SMTPS EHLO {offered}"
        client.auth_plain("alice", PASSWORD, "235 2.7.0")
        client.cmd("QUIT", 221)


@pytest.mark.parametrize("mode_server", sorted(MODES), indirect=True)
def test_mode_inbound_mail_needs_no_tls(mode_server):
    """The mode is about passwords: mail from other servers is accepted in plain text."""
    mode, server = mode_server
    tok = token()
    with TLSClient(server.port) as client:
        client.ehlo()
        client.transaction(SENDER, [ALICE], make_message(tok))
        client.cmd("QUIT", 221)
    find_message(server, ALICE, tok)


def test_mode_none_without_certificate(make_server):
    server = login_server(make_server)
    with TLSClient(server.port) as client:
        offered = ehlo_keywords(client.ehlo())
        assert "STARTTLS" not in offered and AUTH_OFFER in offered, offered
        client.cmd("STARTTLS", 502)
        client.auth_plain("alice", PASSWORD, "235 2.7.0")


# --------------------------------------------------------------------------------------------
# Logins


def auth_with(client: TLSClient, mechanism: str, login: str, password: str, expected):
    if mechanism == "plain":
        return client.auth_plain(login, password, expected)
    if mechanism == "plain-challenge":
        client.cmd("AUTH PLAIN", "334")
        return client.cmd(b64(f"\0{login}\0{password}"), expected)
    if mechanism == "login":
        return client.auth_login(login, password, expected)
    if mechanism == "login-initial":
        client.cmd(f"AUTH LOGIN {b64(login)}", "334")
        return client.cmd(b64(password), expected)
    raise ValueError(mechanism)


@pytest.mark.parametrize("mechanism", ["plain", "plain-challenge", "login", "login-initial"])
def test_login_with_short_and_full_names(make_server, mechanism):
    server = login_server(make_server)
    for login in ("alice", "alice@example.test", "ALICE", "Alice@Example.TEST"):
        with TLSClient(server.port) as client:
            client.ehlo()
            auth_with(client, mechanism, login, PASSWORD, "235 2.7.0")
            # logged in as alice@example.test: her address is hers, bob's is not
            client.cmd(f"MAIL FROM:<{BOB}>", "553 5.7.1")
            client.cmd(f"MAIL FROM:<{ALICE}>", "250")
            client.cmd("QUIT", 221)
    with TLSClient(server.port) as client:
        client.ehlo()
        auth_with(client, mechanism, "bob", PASSWORD, "235 2.7.0")
        client.cmd(f"MAIL FROM:<{BOB}>", "250")


def test_short_name_needs_default_auth_domain(make_server):
    server = make_server()  # no defaultAuthDomain
    with TLSClient(server.port) as client:
        client.ehlo()
        client.auth_plain("alice", PASSWORD, INVALID)
        client.auth_plain(ALICE, PASSWORD, "235 2.7.0")


def test_wrong_password_and_unknown_user_get_the_same_reply(make_server):
    server = login_server(make_server)
    cases = [("alice", "wrong password"), (ALICE, PASSWORD.upper()), ("nobody", PASSWORD),
             ("nobody@example.test", PASSWORD), ("alice@other.test", PASSWORD),
             ("al", PASSWORD)]  # an alias is not a login
    replies = {}
    for number, (login, password) in enumerate(cases):
        with TLSClient(server.port, source=f"127.0.0.{10 + number}") as client:
            client.ehlo()
            replies[login] = client.auth_plain(login, password).text
            client.auth_plain("alice", PASSWORD, "235 2.7.0")  # clears the counters
    assert set(replies.values()) == {INVALID}, replies


def test_unknown_user_costs_as_much_as_a_wrong_password(make_server):
    """The same work for both (a decoy hash): compare medians of a few attempts. Every attempt
    comes from its own address and a success clears the counters, so no slowdown applies. The
    first success costs a verification too; the later ones are remembered logins
    (docs/tls-and-auth.md) and are left out: they only ever answer someone who has the
    password, while the two failures must not tell an account from a non-account."""
    server = login_server(make_server)
    wrong, unknown, first_success = [], [], None
    for number in range(7):
        source = f"127.0.0.{20 + number}"
        wrong.append(attempt(server, "alice", f"wrong-{number}", INVALID, source))
        unknown.append(attempt(server, f"nobody{number}", PASSWORD, INVALID, source))
        took = attempt(server, "alice", PASSWORD, "235 2.7.0", source)
        first_success = took if first_success is None else first_success
    medians = {"wrong password": statistics.median(wrong),
               "unknown user": statistics.median(unknown),
               "first success": first_success}
    low, high = min(medians.values()), max(medians.values())
    assert high < 3 * low, f"AUTH answer times differ too much (medians, s): {medians}"


def test_sasl_edge_cases(make_server):
    server = login_server(make_server)
    with TLSClient(server.port) as client:
        client.auth_plain("alice", PASSWORD, "503")  # before EHLO
        client.ehlo()
        client.cmd("AUTH CRAM-MD5", "504")
        client.cmd("AUTH PLAIN", "334")
        client.cmd("*", "501 5.0.0")  # cancelled
        client.cmd("AUTH LOGIN", "334")
        client.cmd("*", "501 5.0.0")
        client.cmd("AUTH PLAIN !!!not-base64!!!", "501")
        reply = client.auth_plain("alice", PASSWORD, authzid=BOB)
        assert reply.code != 235, f"authorization identity bob accepted for alice: {reply}"
        # The same account (full address for the short login, via defaultAuthDomain): fine.
        client.auth_plain("alice", PASSWORD, "235 2.7.0", authzid=ALICE)
        client.auth_plain("bob", PASSWORD, "503")  # already authenticated
        offered = ehlo_keywords(client.ehlo())
        assert AUTH_OFFER not in offered, f"AUTH still offered after login: {offered}"


# --------------------------------------------------------------------------------------------
# Slowdown


def test_slowdown_after_repeated_failures(make_server):
    """3 free failures, then 0.5 s doubling up to 15 s, per client address and per login;
    other clients are served at normal speed meanwhile."""
    server = login_server(make_server)
    cost = login_cost(server)
    fast = cost + NOT_DELAYED
    # 1-6: one after the other from 127.0.0.1; expected waits 0, 0, 0, 0.5, 1, 2 s
    took = [attempt(server, "mallory", f"guess-{n}", INVALID) for n in range(6)]
    expected = [0, 0, 0, 0.5, 1, 2]
    for number, (got, wait) in enumerate(zip(took, expected), 1):
        if wait == 0:
            assert got < fast, f"attempt {number} took {got:.2f} s (a login costs {cost:.2f}): {took}"
        else:
            assert wait - 0.05 <= got <= wait + cost + 1.5, (
                f"attempt {number} took {got:.2f} s, expected about {wait} s: {took}")

    # 7-20 at once: each waits 4 s (6 failures); meanwhile other clients are served normally
    results: dict[int, float] = {}
    errors: list[str] = []

    def guess(number: int) -> None:
        try:
            results[number] = attempt(server, "mallory", f"guess-{number}", INVALID)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(f"attempt {number}: {exc!r}")

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(7, 21)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # the 14 attempts are waiting now
    others = {
        "alice from 127.0.0.2": attempt(server, "alice", PASSWORD, "235 2.7.0", "127.0.0.2"),
        "bob, wrong, from 127.0.0.3": attempt(server, "bob", "nope", INVALID, "127.0.0.3"),
    }
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert all(took < fast for took in others.values()), (
        f"other clients delayed while 127.0.0.1 is slowed down: {others}")
    waits = sorted(results.values())
    assert len(waits) == 14 and waits[0] >= 3.9, f"attempts 7-20 waited {waits}"

    # 20 failures: the next attempt waits the maximum, 15 s, from 127.0.0.1 (address and login
    # counted) and from a new address with the same login (login counted)
    late: dict[str, float] = {}
    threads = [
        threading.Thread(target=lambda: late.__setitem__(
            "127.0.0.1", attempt(server, "mallory", "guess-21", INVALID))),
        threading.Thread(target=lambda: late.__setitem__(
            "127.0.0.4", attempt(server, "mallory", "guess-22", INVALID, "127.0.0.4"))),
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    quick = attempt(server, "alice", PASSWORD, "235 2.7.0", "127.0.0.5")
    for thread in threads:
        thread.join(40)
    assert quick < fast, f"alice from 127.0.0.5 took {quick:.2f} s"
    assert set(late) == {"127.0.0.1", "127.0.0.4"}, late
    for source, took in late.items():
        assert 14.9 <= took <= 17.0 + cost, (
            f"21st failure from {source} took {took:.2f} s, expected 15")

    log = server.stderr()
    failures = [line for line in log.splitlines() if "authentication failed" in line]
    from_here = [line for line in failures
                 if "peer=127.0.0.1" in line and ("login=mallory" in line
                                                   or 'login="mallory"' in line)]
    assert len(from_here) == 21, f"{len(from_here)} failure lines for mallory from 127.0.0.1"
    assert any("peer=127.0.0.4" in line for line in failures), failures[-3:]
    assert any("peer=127.0.0.3" in line and "bob" in line for line in failures), failures[-3:]
    assert any("login" in line and f"user={ALICE}" in line and "peer=127.0.0.2" in line
               for line in log.splitlines()), "no success line for alice from 127.0.0.2"


def test_slowdown_counts_per_login_and_success_clears_it(make_server):
    server = login_server(make_server)
    cost = login_cost(server)
    fast = cost + NOT_DELAYED
    # three failures for alice from three addresses: no address has more than one
    for number in range(3):
        assert attempt(server, "alice", "wrong", INVALID, f"127.0.0.{30 + number}") < fast
    # the fourth attempt for alice waits 0.5 s wherever it comes from, even with the password
    took = attempt(server, "alice", PASSWORD, "235 2.7.0", "127.0.0.40")
    assert 0.45 <= took <= 2.0 + cost, f"4th attempt for alice took {took:.2f} s, expected 0.5"
    # the success cleared the login's count
    assert attempt(server, "alice", "wrong", INVALID, "127.0.0.41") < fast
    assert attempt(server, "alice", PASSWORD, "235 2.7.0", "127.0.0.42") < fast


def test_failure_log_lines_name_login_and_address(make_server):
    server = login_server(make_server)
    # a login trying to forge a log line of its own for another address
    forged = "eve\nWARN authentication failed login=x peer=10.9.9.9"
    attempt(server, "eve", "wrong", INVALID, "127.0.0.7")
    with TLSClient(server.port, source="127.0.0.8") as client:
        client.ehlo()
        reply = client.auth_plain(forged, "wrong")
        assert reply.code in (501, 535), reply.text
    attempt(server, "alice", PASSWORD, "235 2.7.0", "127.0.0.9")
    log = server.stderr().splitlines()
    eve = [l for l in log if "authentication failed" in l and "peer=127.0.0.7" in l]
    assert eve and ("login=eve" in eve[0] or 'login="eve"' in eve[0]), eve or log[-10:]
    assert "WARN" in eve[0], f"failures are logged at warn level: {eve[0]}"
    for line in log:
        if "10.9.9.9" in line:
            assert "peer=127.0.0.8" in line, f"forged log line: {line!r}"
    assert any(f"user={ALICE}" in l and "peer=127.0.0.9" in l for l in log), log[-10:]
