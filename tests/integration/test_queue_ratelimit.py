"""`rateLimit.*`: the N+1th message in a minute from one address gets 450 4.7.1; 127.0.0.1 (the
webmail) and, with exemptWhitelist, whitelisted addresses are not limited. The limited client
uses a 127.0.0.2 source address (all of 127/8 is loopback, only 127.0.0.1 is exempt)."""

from __future__ import annotations

from icshelpers import ALICE, make_message

LIMIT = 3


def send(server, source: str | None, count: int) -> list[int]:
    codes = []
    with server.client(source=source) as client:
        client.ehlo()
        for n in range(count):
            reply = client.cmd("MAIL FROM:<sender@example.org>")
            codes.append(reply.code)
            if reply.code != 250:
                continue
            client.cmd(f"RCPT TO:<{ALICE}>", "250 2.1.5")
            client.data(make_message(f"rate-{source}-{n}"))
    return codes


def test_limit_plus_one_gets_450_and_loopback_is_free(make_server):
    server = make_server(extra={
        "rateLimit": {"enable": True, "messagesPerMinute": LIMIT},
        "lists": {"whitelist": ["127.0.0.3", "192.0.2.0/24"]},
    })
    assert send(server, "127.0.0.2", LIMIT + 1) == [250] * LIMIT + [450]
    with server.client(source="127.0.0.2") as client:
        client.ehlo()
        reply = client.cmd("MAIL FROM:<sender@example.org>", 450)
        assert reply.lines[0].startswith("450 4.7.1"), reply.text
    assert send(server, "127.0.0.1", 2 * LIMIT) == [250] * (2 * LIMIT)
    assert send(server, "127.0.0.3", 2 * LIMIT) == [250] * (2 * LIMIT), "whitelisted"
    assert len(server.new_files(ALICE)) == LIMIT + 4 * LIMIT


def test_whitelist_counts_only_with_exempt_whitelist(make_server):
    server = make_server(extra={
        "rateLimit": {"enable": True, "messagesPerMinute": LIMIT, "exemptWhitelist": False},
        "lists": {"whitelist": ["127.0.0.3"]},
    })
    assert send(server, "127.0.0.3", LIMIT + 1) == [250] * LIMIT + [450]


def test_no_limit_when_disabled(make_server):
    server = make_server()
    assert send(server, "127.0.0.2", LIMIT + 2) == [250] * (LIMIT + 2)
