"""SEARCH (RFC 3501 6.4.4): every search key, sequence sets, OR/NOT/parentheses, CHARSET
UTF-8 with a literal, BADCHARSET, UID SEARCH. One account, five messages, read-only tests."""

from __future__ import annotations

import pytest

from icshelpers import crlf
from imaphelpers import (append, imap_target, make_module_imap, ok, resp_code,  # noqa: F401
                         search_ids)


def msg(frm, to, subject, date, body, extra=""):
    return crlf(f"From: {frm}\nTo: {to}\n{extra}Subject: {subject}\nDate: {date}\n"
                f"Message-ID: <{abs(hash(subject + date))}@example.org>\nMIME-Version: 1.0\n"
                f"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
                f"{body}\n")


# (message, flags, INTERNALDATE)
FIRST = [
    (msg("Alice <alice@example.test>", "Bob <bob@example.test>", "Budget 2021",
         "Mon, 01 Feb 2021 12:00:00 +0000", "The numbers are in.",
         extra="Cc: Carol <carol@example.org>\n"),
     "\\Seen \\Answered", "01-Feb-2021 12:00:00 +0000"),
    (msg("Bob <bob@example.test>", "alice@example.test", "Lunch",
         "Mon, 15 Mar 2021 12:00:00 +0000", "Pizza at noon?",
         extra="Bcc: dave@example.org\nX-Priority: 1\n"),
     "\\Flagged $Important", "15-Mar-2021 12:00:00 +0000"),
    (msg("Carol <carol@example.org>", "alice@example.test",
         "=?UTF-8?Q?Gr=C3=B6=C3=9Fe?= der Datei", "Thu, 10 Jun 2021 12:00:00 +0000",
         "Die Straße ist lang.\n" + "x" * 70 + "\n" + ("filler line\n" * 400)),
     "\\Draft \\Deleted", "10-Jun-2021 12:00:00 +0000"),
]
SECOND = [
    (msg("Dave <dave@example.org>", "alice@example.test", "Report",
         "Sun, 20 Jun 2021 12:00:00 +0000", "Quarterly figures."),
     "", "01-Jan-2022 12:00:00 +0000"),
    (msg("Alice <alice@example.test>", "bob@example.test", "Lunch tomorrow",
         "Mon, 15 Mar 2021 12:00:00 +0000", "Sandwich?"),
     "\\Seen", "15-Mar-2021 12:00:00 +0000"),
]

CASES = [
    ("ALL", [1, 2, 3, 4, 5]),
    ("ANSWERED", [1]),
    ("BCC dave", [2]),
    ("BEFORE 1-Mar-2021", [1]),
    ("BODY pizza", [2]),
    ("BODY numbers", [1]),
    ("CC carol", [1]),
    ("DELETED", [3]),
    ("DRAFT", [3]),
    ("FLAGGED", [2]),
    ("FROM bob", [2]),
    ("FROM ALICE@EXAMPLE.TEST", [1, 5]),
    ('HEADER X-Priority "1"', [2]),
    ('HEADER X-Priority ""', [2]),
    ("KEYWORD $Important", [2]),
    ("LARGER 4000", [3]),
    ("NEW", [4]),
    ("NOT SEEN", [2, 3, 4]),
    ("OLD", [1, 2, 3]),
    ("ON 15-Mar-2021", [2, 5]),
    ("OR FLAGGED DRAFT", [2, 3]),
    ("RECENT", [4, 5]),
    ("SEEN", [1, 5]),
    ("SENTBEFORE 1-Mar-2021", [1]),
    ("SENTON 15-Mar-2021", [2, 5]),
    ("SENTSINCE 10-Jun-2021", [3, 4]),
    ("SINCE 10-Jun-2021", [3, 4]),
    ("SMALLER 4000", [1, 2, 4, 5]),
    ("SUBJECT lunch", [2, 5]),
    ("TEXT sandwich", [5]),
    ("TEXT budget", [1]),  # TEXT also searches the header
    ("TO alice", [2, 3, 4]),
    ("UNANSWERED", [2, 3, 4, 5]),
    ("UNDELETED", [1, 2, 4, 5]),
    ("UNDRAFT", [1, 2, 4, 5]),
    ("UNFLAGGED", [1, 3, 4, 5]),
    ("UNKEYWORD $Important", [1, 3, 4, 5]),
    ("UNSEEN", [2, 3, 4]),
    ("2:4", [2, 3, 4]),
    ("*", [5]),
    ("1,3:*", [1, 3, 4, 5]),
    ("4:2", [2, 3, 4]),
    ("1:3 UNSEEN", [2, 3]),
    ("FROM alice SUBJECT lunch", [5]),
    ("(OR SEEN FLAGGED) SMALLER 4000", [1, 2, 5]),
    ("NOT (OR SEEN FLAGGED)", [3, 4]),
    ("OR OR ANSWERED DRAFT KEYWORD $Important", [1, 2, 3]),
    ("SUBJECT nothing-like-this", []),
]


@pytest.fixture(scope="module")
def mailbox(imap_target):
    user = imap_target.fresh_user()
    raw = imap_target.raw_login(user)
    for m, flags, date in FIRST:
        append(raw, "INBOX", m, flags=flags, date=date)
    with imap_target.raw_login(user) as claim:  # takes \Recent from the first three
        claim.ok("SELECT INBOX")
        claim.ok("LOGOUT")
    for m, flags, date in SECOND:
        append(raw, "INBOX", m, flags=flags, date=date)
    raw.ok("SELECT INBOX")
    yield imap_target, user, raw
    raw.close()


@pytest.mark.parametrize("criteria,expected", CASES, ids=[c for c, _ in CASES])
def test_search_key(mailbox, criteria, expected):
    _, _, raw = mailbox
    assert search_ids(raw.ok(f"SEARCH {criteria}")) == expected


def test_uid_search_and_uid_key(mailbox):
    _, _, raw = mailbox
    uids = search_ids(raw.ok("UID SEARCH ALL"))
    assert len(uids) == 5 and uids == sorted(uids)
    assert search_ids(raw.ok(f"SEARCH UID {uids[2]}")) == [3]
    assert search_ids(raw.ok(f"SEARCH UID {uids[1]}:{uids[3]}")) == [2, 3, 4]
    assert search_ids(raw.ok(f"UID SEARCH UID {uids[4]}:*")) == [uids[4]]
    assert search_ids(raw.ok("UID SEARCH FLAGGED")) == [uids[1]]
    assert search_ids(raw.ok(f"UID SEARCH UID {uids[4] + 100}")) == []


def test_charset_utf8_literal(mailbox):
    _, _, raw = mailbox
    for key, word in (("SUBJECT", "Größe"), ("BODY", "Straße"), ("TEXT", "Straße")):
        data = word.encode("utf-8")
        tag = raw.tag()
        raw.send(f"{tag} SEARCH CHARSET UTF-8 {key} {{{len(data)}}}\r\n".encode())
        assert raw.line().startswith(b"+")
        raw.send(data + b"\r\n")
        r = raw.read_tagged(tag)
        assert r.status == "OK" and search_ids(r) == [3], (key, r)
    # Quoted UTF-8 isn't allowed without UTF8=ACCEPT; US-ASCII charset works.
    assert search_ids(raw.ok("SEARCH CHARSET US-ASCII SUBJECT report")) == [4]


def test_unknown_charset_is_badcharset(mailbox):
    _, _, raw = mailbox
    r = raw.cmd("SEARCH CHARSET X-NO-SUCH-CHARSET SUBJECT x")
    assert r.status == "NO" and resp_code(r.text, "BADCHARSET") is not None, r


def test_bad_search_syntax(mailbox):
    _, _, raw = mailbox
    for bad in ("SEARCH BEFORE 2021-03-01", "SEARCH NOSUCHKEY", "SEARCH OR SEEN",
                "SEARCH LARGER x", "SEARCH (SEEN"):
        r = raw.cmd(bad)
        assert r.status == "BAD", (bad, r)
    raw.ok("NOOP")


def test_imaplib_search(mailbox):
    target, user, _ = mailbox
    m = target.imap(user)
    ok(m.select("INBOX", readonly=True))
    assert ok(m.search(None, "FROM", '"alice"')) == [b"1 5"]
    m.literal = "Größe".encode()  # imaplib sends it as a literal after SUBJECT
    assert ok(m.search("UTF-8", "SUBJECT")) == [b"3"]
    assert ok(m.uid("SEARCH", "SEEN"))[0].split().__len__() == 2
    m.logout()
