"""Greylisting (issue 13, docs/policy.md "Greylisting"): the timeline of a triplet with short
settings, the network passing as a whole, what is never greylisted, the state kept across a
restart, a broken store letting mail through, a reload turning it on, and a real Postfix as the
sending MTA: greylisted, retrying on its own schedule, the message delivered exactly once.
Clients bind 198.18.0.x and 198.18.1.x (two /24 networks on loopback: the `test_network`
fixture)."""

from __future__ import annotations

import re
import shutil
import signal
import smtplib
import tempfile
import time
from pathlib import Path

import pytest

from icshelpers import ALICE, BOB, PASSWORD, make_message, plain_response, wait_until, write_config
from queuepeers import PrivatePostfix

IGNORE = 3  # spam.greylist.ignoreSeconds of these tests
CLIENT = "198.18.0.3"
NEIGHBOUR = "198.18.0.4"      # the same /24
ELSEWHERE = "198.18.1.3"      # another /24
POSTFIX_CLIENT = "198.18.1.9"  # the sending Postfix binds this


def greylisting(**extra) -> dict:
    config = {"spam": {"greylist": {"enable": True, "ignoreSeconds": IGNORE, "awaitHours": 1,
                                    "keepDays": 1},
                       # on by default with greylisting; these clients have no PTR records
                       "requireReverseDns": False}}
    config.update(extra)
    return config


def rcpt(server, source: str, sender: str = "someone@example.org", recipient: str = ALICE,
         token: str | None = None):
    """EHLO, MAIL, RCPT from `source` (and the message when RCPT is accepted and `token`
    given): the RCPT reply."""
    with server.client(source=source) as client:
        client.ehlo("mx.sender.example")
        client.cmd(f"MAIL FROM:<{sender}>", 250)
        reply = client.cmd(f"RCPT TO:<{recipient}>")
        if reply.code == 250 and token:
            client.data(make_message(token, sender=sender or "postmaster@example.org"))
        return reply


def retry_in(reply) -> int:
    match = re.search(r"try again in (\d+) seconds", reply.text)
    assert match, reply.text
    return int(match.group(1))


def log_has(server, *parts: str) -> bool:
    return any(all(p in line for p in parts) for line in server.stderr().splitlines())


def delivered(server, token: str, address: str = ALICE) -> int:
    return sum(token.encode() in m for m in server.new_messages(address))


def test_a_triplet_passes_on_a_retry_in_the_window_and_its_network_with_it(make_server,
                                                                          test_network):
    server = make_server(extra=greylisting())
    first = rcpt(server, CLIENT)
    assert first.code == 451 and first.lines[0].startswith("451 4.7.1"), first.text
    assert "Greylisted" in first.text and 1 <= retry_in(first) <= IGNORE
    started = time.monotonic()
    # Too early: refused again, and the clock is not restarted by it.
    time.sleep(1)
    again = rcpt(server, CLIENT)
    assert again.code == 451 and retry_in(again) <= IGNORE - 1, again.text
    assert wait_until(lambda: log_has(server, 'rule="greylist"', "first=false"))
    time.sleep(max(0.0, IGNORE + 0.3 - (time.monotonic() - started)))
    assert rcpt(server, CLIENT, token="grey-passed").code == 250
    assert delivered(server, "grey-passed") == 1
    # The network passed: another host of its /24, another sender and recipient, at once.
    assert rcpt(server, NEIGHBOUR, "other@else.example", BOB, token="neighbour").code == 250
    assert delivered(server, "neighbour", BOB) == 1
    # Another /24 has its own clock.
    assert rcpt(server, ELSEWHERE).code == 451
    assert wait_until(lambda: log_has(server, 'rule="greylist"', 'network="198.18.1.0/24"',
                                      "first=true"))


def test_the_null_sender_and_each_recipient_are_triplets_of_their_own(make_server,
                                                                      test_network):
    server = make_server(extra=greylisting())
    with server.client(source=CLIENT) as client:
        client.ehlo("mx.sender.example")
        client.cmd("MAIL FROM:<>", 250)
        assert client.cmd(f"RCPT TO:<{ALICE}>").code == 451
        assert client.cmd(f"RCPT TO:<{BOB}>").code == 451
        # No recipient was accepted: no message.
        assert client.cmd("DATA").code in (503, 554)
    time.sleep(IGNORE + 0.3)
    assert rcpt(server, CLIENT, "", ALICE).code == 250
    # BOB's triplet had started too; the network is whitelisted now anyway.
    assert rcpt(server, CLIENT, "", BOB).code == 250


def test_logged_in_whitelisted_and_submission_clients_are_not_greylisted(make_server,
                                                                         test_network):
    server = make_server(extra=greylisting(
        lists={"whitelist": ["198.18.0.16/28", "friend.example"]}))
    # A whitelisted network, a whitelisted sender domain.
    assert rcpt(server, "198.18.0.17").code == 250
    assert rcpt(server, CLIENT, "pal@friend.example").code == 250
    # A client that logged in on port 25.
    with server.client(source=ELSEWHERE) as client:
        client.ehlo()
        client.cmd("AUTH PLAIN " + plain_response(ALICE, PASSWORD), 235)
        client.cmd(f"MAIL FROM:<{ALICE}>", 250)
        client.cmd(f"RCPT TO:<{BOB}>", 250)
    # Everyone else is.
    assert rcpt(server, CLIENT).code == 451
    # A remote recipient of an unknown client is refused for good, not greylisted.
    assert rcpt(server, CLIENT, recipient="x@remote.example").code == 554


def test_the_state_survives_a_restart(make_server, test_network):
    server = make_server(extra=greylisting())
    assert rcpt(server, CLIENT).code == 451
    server.stop()
    server.start()
    time.sleep(IGNORE + 0.3)
    # The triplet was remembered: this is a retry in the window, not a first attempt.
    assert rcpt(server, CLIENT, token="after-restart").code == 250
    server.stop()
    server.start()
    # And so is the network that passed.
    assert rcpt(server, NEIGHBOUR, "x@y.example", BOB).code == 250
    assert (server.state_dir / "greylist.sqlite3").stat().st_mode & 0o777 == 0o600


def test_a_broken_store_lets_mail_through_and_says_so(make_server, test_network):
    server = make_server(extra=greylisting(), start=False)
    server.state_dir.mkdir(parents=True, exist_ok=True)
    (server.state_dir / "greylist.sqlite3").write_bytes(b"this is not a database\n" * 200)
    server.start()
    assert rcpt(server, CLIENT, token="broken-store").code == 250
    assert delivered(server, "broken-store") == 1
    assert wait_until(lambda: log_has(server, "WARN", "greylist", "cannot be opened"))


def test_a_reload_turns_greylisting_on(make_server, test_network):
    server = make_server(extra={"spam": {"requireReverseDns": False}})
    assert rcpt(server, CLIENT).code == 250
    server.config["spam"] = greylisting()["spam"]
    write_config(server.config_path, server.config)
    before = server.stderr().count("settings reloaded")
    server.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: server.stderr().count("settings reloaded") > before)
    assert rcpt(server, CLIENT).code == 451


# ------------------------------------------------------------------------------ Postfix sends


@pytest.fixture
def sending_postfix(make_server, test_network):
    """ics-mail with greylisting, and a private Postfix on 198.18.1.9 that relays everything to
    it from that address, retrying deferred mail every second or two."""
    server = make_server(extra=greylisting(
        spam={"greylist": {"enable": True, "ignoreSeconds": 5, "awaitHours": 1, "keepDays": 1},
              "requireReverseDns": False}))
    base = Path(tempfile.mkdtemp(prefix="ics-grey-postfix-", dir="/var/tmp"))
    from icshelpers import free_port
    port = free_port()
    instance = PrivatePostfix(base, POSTFIX_CLIENT, [], [], port=port, main_cf=f"""
mynetworks = 127.0.0.0/8 198.18.0.0/23
relayhost = [127.0.0.1]:{server.port}
smtp_bind_address = {POSTFIX_CLIENT}
myhostname = mx.sender.example
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
""")
    yield server, instance
    instance.stop()
    shutil.rmtree(base, ignore_errors=True)


def test_postfix_is_greylisted_retries_and_the_message_arrives_once(sending_postfix):
    server, postfix = sending_postfix
    with smtplib.SMTP(POSTFIX_CLIENT, postfix.port, timeout=30) as client:
        client.sendmail("carol@sender.example", [ALICE],
                        make_message("via-postfix", sender="carol@sender.example",
                                     to=ALICE))
    assert wait_until(lambda: delivered(server, "via-postfix") >= 1, timeout=60, interval=0.5), \
        postfix.log()[-3000:]
    assert wait_until(postfix.queue_is_empty, timeout=30, interval=0.5), postfix.log()[-3000:]
    time.sleep(1)
    assert delivered(server, "via-postfix") == 1
    log = postfix.log()
    # Postfix saw the 451, kept the message and sent it on a later try.
    assert re.search(r"status=deferred .*451 4\.7\.1 .*Greylisted", log), log[-3000:]
    assert re.search(r"status=sent .*250", log), log[-3000:]
    assert log_has(server, 'rule="greylist"', 'network="198.18.1.0/24"', "first=true")


def test_two_smtpd_processes_share_the_store(make_server, test_network):
    first = make_server(extra=greylisting())
    second = make_server(extra=greylisting(stateDir=str(first.state_dir)))
    assert rcpt(first, CLIENT).code == 451
    time.sleep(IGNORE + 0.3)
    # The retry reaches the other process: it knows the triplet and passes it.
    assert rcpt(second, CLIENT, token="second-process").code == 250
    # And the first process sees the network that passed there.
    assert rcpt(first, NEIGHBOUR, "x@y.example", BOB).code == 250
