"""SORT, SORT=DISPLAY, ESORT and THREAD (RFC 5256, 5957, 5267): Python imapclient as the real
client, and the same messages put into a private Dovecot 2.3 and into the server under test,
whose SORT orders and THREAD trees must be the same (docs/imap.md, "SORT and THREAD")."""

from __future__ import annotations

import os
import re
import time

import imapclient
import pytest

from imaphelpers import (PASSWORD, DovecotTarget, append, capabilities, crlf,  # noqa: F401
                         make_imap)

# (Message-ID, References, Subject, From, To, Cc, Date header or None, INTERNALDATE)
MESSAGES = [
    ("a1@x", "", "Project plan", '"Zoe Zed" <zoe@b.example>', "amy@c.example", "",
     "Mon, 2 Mar 2026 10:00:00 +0000", "02-Mar-2026 10:00:00 +0000"),
    ("a2@x", "<a1@x>", "Re: Project plan", "bob@a.example", '"Amy" <amy@c.example>',
     "carl@d.example", "Mon, 2 Mar 2026 11:00:00 +0000", "02-Mar-2026 11:00:00 +0000"),
    # A tie with a2 on the sent date; a missing parent (gone@x) in its References.
    ("a3@x", "<a1@x> <gone@x>", "RE: [proj] Re: Project plan", "=?UTF-8?Q?=C3=89mile?= <emile@e.example>",
     "zed@c.example", "", "Mon, 2 Mar 2026 11:00:00 +0000", "02-Mar-2026 12:00:00 +0000"),
    # No Date: (INTERNALDATE stands in), a forward.
    ("f1@x", "", "Fwd: Project plan", "carl@d.example", "bob@a.example", "amy@c.example",
     None, "01-Mar-2026 09:00:00 +0000"),
    # An encoded subject, the same base subject as the next one.
    ("e1@x", "", "=?UTF-8?B?R3LDvMOfZSBhdXMgQmVybGlu?=", "dora@f.example", "", "",
     "Tue, 3 Mar 2026 08:00:00 +0100", "03-Mar-2026 08:00:00 +0000"),
    ("e2@x", "", "[list] Grüße aus Berlin (fwd)", "eve@g.example", "amy@c.example", "",
     "Tue, 3 Mar 2026 09:00:00 +0100", "03-Mar-2026 09:00:00 +0000"),
    # Two replies to a message nobody has: a dummy root.
    ("r1@x", "<lost@x>", "Re: lost thread", "fred@h.example", "", "",
     "Wed, 4 Mar 2026 10:00:00 +0000", "04-Mar-2026 10:00:00 +0000"),
    ("r2@x", "<lost@x>", "Re: lost thread", "gina@i.example", "", "",
     "Wed, 4 Mar 2026 09:00:00 +0000", "04-Mar-2026 09:00:00 +0000"),
    # A loop: l1 says l2 is its parent, l2 says l1.
    ("l1@x", "<l2@x>", "loop", "hank@j.example", "", "", "Thu, 5 Mar 2026 10:00:00 +0000",
     "05-Mar-2026 10:00:00 +0000"),
    ("l2@x", "<l1@x>", "Re: loop", "ivy@k.example", "", "", "Thu, 5 Mar 2026 11:00:00 +0000",
     "05-Mar-2026 11:00:00 +0000"),
    # An unparsable Date:, no Message-ID, an In-Reply-To only.
    ("", "", "Another", "jack@l.example", "", "", "not a date", "01-Jan-2026 00:00:00 +0000"),
    ("d1@x", "irt:<a2@x>", "Re: Project plan", '"" <kim@m.example>', "", "",
     "Mon, 2 Mar 2026 12:00:00 +0000", "02-Mar-2026 12:30:00 +0000"),
    # A duplicate Message-ID, and the same subjects as unrelated roots (merged by subject).
    ("a1@x", "", "Another", "lou@n.example", "", "", "Fri, 6 Mar 2026 10:00:00 +0000",
     "06-Mar-2026 10:00:00 +0000"),
    ("s1@x", "", "[Fwd: Another]", "moe@o.example", "", "", "Fri, 6 Mar 2026 11:00:00 +0000",
     "06-Mar-2026 11:00:00 +0000"),
    ("s2@x", "", "", "ned@p.example", "", "", "Fri, 6 Mar 2026 11:00:00 +0000",
     "06-Mar-2026 11:00:00 +0000"),
]


def build(mid, refs, subject, frm, to, cc, date, _internal) -> bytes:
    head = f"From: {frm}\n"
    if to:
        head += f"To: {to}\n"
    if cc:
        head += f"Cc: {cc}\n"
    head += f"Subject: {subject}\n"
    if date:
        head += f"Date: {date}\n"
    if mid:
        head += f"Message-ID: <{mid}>\n"
    if refs.startswith("irt:"):
        head += f"In-Reply-To: {refs[4:]}\n"
    elif refs:
        head += f"References: {refs}\n"
    body = "x" * (len(MESSAGES) * 7 % 13 + len(subject))  # sizes that tie and differ
    return crlf(head + "\n" + body + "\n")


SORTS = [
    "SORT (ARRIVAL) UTF-8 ALL",
    "SORT (REVERSE ARRIVAL) UTF-8 ALL",
    "SORT (DATE) UTF-8 ALL",
    "SORT (REVERSE DATE) UTF-8 ALL",
    "SORT (SUBJECT) UTF-8 ALL",
    "SORT (SUBJECT DATE) UTF-8 ALL",
    "SORT (REVERSE SUBJECT) UTF-8 ALL",
    "SORT (FROM) UTF-8 ALL",
    "SORT (TO ARRIVAL) UTF-8 ALL",
    "SORT (CC REVERSE DATE) UTF-8 ALL",
    "SORT (SIZE) UTF-8 ALL",
    "SORT (REVERSE SIZE) UTF-8 ALL",
    "SORT (DISPLAYFROM) UTF-8 ALL",
    "SORT (DISPLAYTO SUBJECT) UTF-8 ALL",
    "UID SORT (SUBJECT) US-ASCII ALL",
    "SORT (DATE) UTF-8 SINCE 2-Mar-2026 NOT FROM bob",
    "UID SORT (REVERSE FROM) UTF-8 OR SUBJECT plan SUBJECT loop",
    "SORT (SUBJECT) UTF-8 UID 3:7",
    "SORT (ARRIVAL) UTF-8 SUBJECT nothing-matches",
    "SORT (REVERSE ARRIVAL) UTF-8 MODSEQ 1",
]
THREADS = [
    "THREAD REFERENCES UTF-8 ALL",
    "UID THREAD REFERENCES UTF-8 ALL",
    "THREAD ORDEREDSUBJECT UTF-8 ALL",
    "UID THREAD ORDEREDSUBJECT US-ASCII ALL",
    "THREAD REFERENCES UTF-8 NOT SUBJECT loop",
    "THREAD REFERENCES UTF-8 SUBJECT nothing-matches",
]
ESORTS = [
    "SORT RETURN (MIN MAX COUNT ALL) (DATE) UTF-8 ALL",
    "UID SORT RETURN (ALL) (REVERSE SUBJECT) UTF-8 ALL",
    "SORT RETURN () (SIZE) UTF-8 ALL",
    "SORT RETURN (COUNT MIN) (FROM) UTF-8 SUBJECT nothing-matches",
    "UID SORT RETURN (MAX ALL) (SUBJECT) UTF-8 MODSEQ 1 NOT FROM bob",
]


def esearch(r) -> dict:
    lines = r.untagged("ESEARCH")
    assert len(lines) == 1 and not r.untagged("SORT"), r
    m = re.match(r'\* ESEARCH \(TAG "([^"]+)"\)( UID)?(.*)$', lines[0], re.I)
    assert m and m.group(1) == r.tag, r
    words = m.group(3).split()
    items = {words[i].upper(): words[i + 1] for i in range(0, len(words), 2)}
    items["UID"] = bool(m.group(2))
    return items


def fill(target, user: str) -> None:
    raw = target.raw_login(user)
    for m in MESSAGES:
        append(raw, "INBOX", build(*m), date=m[7])
    raw.close()


@pytest.fixture
def both(make_imap, tmp_path):
    ours = make_imap()
    dovecot = DovecotTarget(tmp_path / "reference")
    try:
        user = ours.fresh_user()
        fill(ours, user)
        fill(dovecot, user)
        yield ours, dovecot, user
    finally:
        print(f"--- reference dovecot log ---\n{dovecot.proc.log()[-3000:]}")
        dovecot.cleanup()


def answers(target, user: str, commands: list[str]) -> list:
    raw = target.raw_login(user)
    raw.ok("SELECT INBOX")
    modseqs = [int(m) for m in re.findall(
        r"MODSEQ \((\d+)\)", " ".join(raw.ok("FETCH 1:* (MODSEQ)").untagged("FETCH")))]
    out = []
    for command in commands:
        r = raw.cmd(command)
        assert r.status == "OK", (target.name, command, r)
        if "MODSEQ" in command:
            # The highest MODSEQ of the messages found (all of them here); the numbers
            # themselves differ between servers.
            text = " ".join(r.untagged("SORT") + r.untagged("ESEARCH"))
            assert re.search(rf"MODSEQ {max(modseqs)}\b", text), (target.name, r)
            r.lines = [re.sub(rb"MODSEQ \d+", b"MODSEQ n", line) for line in r.lines]
        if "RETURN" in command:
            items = esearch(r)
            # Only the order of the items differs (RFC 4731 doesn't fix it).
            out.append(items)
        else:
            keyword = command.split()[1 if command.startswith("UID") else 0]
            lines = r.untagged(keyword)
            assert len(lines) == 1, (target.name, command, r)
            out.append(lines[0].rstrip())
    raw.close()
    return out


def test_sort_and_thread_agree_with_dovecot(both):
    """Every criterion, REVERSE, UID, charsets, search keys, SORT=DISPLAY, ESORT, both THREAD
    algorithms: the same answers from both servers, for messages with ties, missing and
    unparsable dates, encoded subjects, Re:/Fwd:/[tags], missing parents, a loop, a
    duplicate Message-ID."""
    ours, dovecot, user = both
    commands = SORTS + THREADS + ESORTS
    mine = answers(ours, user, commands)
    theirs = answers(dovecot, user, commands)
    for command, a, b in zip(commands, mine, theirs):
        print(f"{command}\n  ours:    {a}\n  dovecot: {b}")
    assert [(c, a) for c, a in zip(commands, mine)] == [(c, b) for c, b in zip(commands, theirs)]
    # The data exercises what it should: a dummy root, a merged subject, nested replies.
    references = mine[len(SORTS)]
    assert "((" in references and " (" in references, references


SAVES = [
    "SORT RETURN (SAVE) (REVERSE DATE) UTF-8 SUBJECT plan",
    "UID SEARCH UID $",
    "SORT RETURN (SAVE MIN) (REVERSE DATE) UTF-8 ALL",
    "UID SEARCH UID $",
    "UID SORT RETURN (SAVE MIN MAX) (SUBJECT) UTF-8 NOT FROM bob",
    "UID SEARCH UID $",
    "SORT RETURN (SAVE COUNT) (SIZE) UTF-8 SUBJECT loop",
    "UID SEARCH UID $",
]


def test_sort_save_agrees_with_dovecot(both):
    """SEARCHRES with ESORT (RFC 5182, RFC 5267 §3.1): SAVE alone answers nothing; with MIN
    or MAX it saves the first or last in sort order; `$` then names what was saved."""
    ours, dovecot, user = both
    replies = []
    for target in (ours, dovecot):
        raw = target.raw_login(user)
        raw.ok("SELECT INBOX")
        out = []
        for command in SAVES:
            r = raw.cmd(command)
            assert r.status == "OK", (target.name, command, r)
            out.append([line.decode().rstrip() for line in r.lines])
        raw.close()
        replies.append(out)
    for command, a, b in zip(SAVES, *replies):
        print(f"{command}\n  ours:    {a}\n  dovecot: {b}")
    assert replies[0] == replies[1]
    assert replies[0][0] == [], replies[0]


def test_sort_refusals(make_imap):
    ours = make_imap()
    user = ours.fresh_user()
    fill(ours, user)
    raw = ours.raw_login(user)
    caps = capabilities(raw.ok("CAPABILITY"))
    assert {"SORT", "SORT=DISPLAY", "ESORT", "THREAD=ORDEREDSUBJECT",
            "THREAD=REFERENCES"} <= caps, caps
    assert raw.cmd("SORT (DATE) UTF-8 ALL").status == "BAD"  # nothing selected
    raw.ok("SELECT INBOX")
    r = raw.cmd("SORT (DATE) X-UNKNOWN ALL")
    assert r.status == "NO" and "BADCHARSET" in r.text.upper(), r
    assert raw.cmd("THREAD REFERENCES X-UNKNOWN ALL").status == "NO"
    assert raw.cmd("THREAD NOSUCH UTF-8 ALL").status == "BAD"
    assert raw.cmd("SORT (NOSUCH) UTF-8 ALL").status == "BAD"
    if ours.name == "icsmail":
        # PARTIAL (RFC 9394) is not offered.
        assert raw.cmd("SORT RETURN (PARTIAL 1:5) (DATE) UTF-8 ALL").status == "BAD"
    # ESORT's RETURN, then the search string as a literal (the guard takes RETURN off the
    # first line; the literal follows as for any command).
    tag = raw.tag()
    raw.send(f"{tag} UID SORT RETURN (COUNT MAX) (REVERSE DATE) UTF-8 SUBJECT {{4}}\r\n")
    assert raw.line().startswith(b"+")
    raw.send("loop\r\n")
    r = raw.read_tagged(tag)
    assert r.status == "OK" and r.untagged("ESEARCH") == [
        f'* ESEARCH (TAG "{tag}") UID MAX 9 COUNT 2'], r
    # The session goes on.
    # (INTERNALDATE order: the 11th message is dated first, then the 4th.)
    assert raw.ok("SORT (ARRIVAL) UTF-8 ALL").untagged("SORT") == [
        "* SORT 11 4 1 2 3 12 5 6 8 7 9 10 13 14 15"]
    raw.close()


def test_imapclient_sort_and_thread(both):
    """imapclient's sort() and thread() against both servers, the same results."""
    results = []
    for target in both[:2]:
        client = imapclient.IMAPClient(target.host, port=target.port, ssl=False, timeout=10)
        client.login(both[2], PASSWORD)
        assert client.has_capability("SORT") and client.has_capability("THREAD=REFERENCES")
        client.select_folder("INBOX")
        results.append((
            client.sort(["REVERSE DATE"]),
            client.sort(["SUBJECT", "FROM"], ["SINCE", "1-Mar-2026"]),
            client.thread("REFERENCES"),
            client.thread("ORDEREDSUBJECT", ["NOT", "DELETED"]),
        ))
        client.logout()
    assert results[0] == results[1], results
    assert len(results[0][0]) == len(MESSAGES)


def bulk_message(i: int) -> bytes:
    parent = f"References: <b{i // 2}@x>\n" if i % 2 else ""
    return crlf(f"From: u{i % 97}@example.org\nTo: v{i % 89}@example.org\n"
                f"Subject: {'Re: ' if i % 3 else ''}topic {i % 500}\n"
                f"Date: Mon, 2 Mar 2026 10:{i % 60:02d}:00 +0000\nMessage-ID: <b{i}@x>\n"
                f"{parent}\nbody {i}\n")


def drop_into_maildir(target, user: str, count: int) -> None:
    """Files written into the account's Maildir new/ as another delivery agent would (APPEND
    of 10,000 messages one by one would measure APPEND); both servers index them at SELECT."""
    local, domain = user.split("@")
    if target.name == "dovecot":
        for i in range(count):
            target.deliver(user, bulk_message(i))
        return
    raw = target.raw_login(user)  # makes the Maildir
    raw.ok("SELECT INBOX")
    raw.close()
    new = target.mail_root() / domain / local / "new"
    for i in range(count):
        data = bulk_message(i).replace(b"\r\n", b"\n")
        name = f"{time.time_ns()}.B{i}.bench"
        (new.parent / "tmp" / name).write_bytes(data)
        os.rename(new.parent / "tmp" / name, new / name)


@pytest.mark.skipif(not os.environ.get("IMAP_SORT_BENCH"), reason="set IMAP_SORT_BENCH=1")
def test_sort_thread_cost_10000(both):
    """The figures of docs/imap.md: SORT and THREAD on 10,000 messages, first and second run,
    ours and Dovecot's."""
    ours, dovecot, user = both
    other = "user40@" + user.split("@")[1]
    figures = {}
    for target in (ours, dovecot):
        drop_into_maildir(target, other, 10_000)
        raw = target.raw_login(other, timeout=600)
        started = time.monotonic()
        assert "* 10000 EXISTS" in [x.decode() for x in raw.ok("SELECT INBOX").lines]
        figures[(target.name, "SELECT (indexing)", "first")] = time.monotonic() - started
        for command in ("SEARCH ALL", "SORT (SUBJECT) UTF-8 ALL", "THREAD REFERENCES UTF-8 ALL",
                        "SORT (REVERSE DATE FROM) UTF-8 ALL", "THREAD ORDEREDSUBJECT UTF-8 ALL",
                        "SORT (ARRIVAL) UTF-8 ALL"):
            for run in ("first", "second"):
                started = time.monotonic()
                raw.ok(command)
                figures[(target.name, command, run)] = time.monotonic() - started
        raw.close()
    for key, seconds in figures.items():
        print(f"{key}: {seconds * 1000:.0f} ms")
