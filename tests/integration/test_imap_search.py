"""SEARCH (RFC 3501 6.4.4): every search key, sequence sets, OR/NOT/parentheses, CHARSET
UTF-8 with a literal, BADCHARSET, UID SEARCH. One account, five messages, read-only tests."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from icshelpers import crlf
from imaphelpers import (append, imap_target, make_imap, make_module_imap, ok,  # noqa: F401
                         resp_code, search_ids)


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


# --------------------------------------------------------------------------------------------
# Keys the index answers open no message file


INDEX_ONLY = [
    ("SEARCH ALL", "all"),
    ("UID SEARCH 1:*", "all"),
    ("SEARCH 2:4 UNDELETED", "2 3 4"),
    ("SEARCH UID 5:*", "5 6"),
    ("SEARCH SEEN", ""),
    ("SEARCH OR FLAGGED NOT ANSWERED", "all"),
    ("SEARCH LARGER 1 SMALLER 100000", "all"),
    ("SEARCH NEW", "all"),
    ("SEARCH KEYWORD $Junk", ""),
    ("SEARCH BEFORE 1-Jan-2100 SINCE 1-Jan-2000", "all"),
    ("SEARCH MODSEQ 1", "all"),
    ("SEARCH RETURN (MIN MAX COUNT) ALL", None),
    ("SORT (ARRIVAL SIZE) UTF-8 ALL", None),
]


def test_index_keys_open_no_message_file(make_imap):
    """SEARCH keys the index answers (ALL, sets, UID, flags, sizes, INTERNALDATE, MODSEQ)
    must not open a message file, also when the folder has just changed and is read again
    (docs/imap.md, "Why SEARCH ALL was slow"). Every message file is replaced by a FIFO
    of the same name after SELECT: a server that opens one for reading blocks there (no
    writer), the command never completes and the test fails on its timeout. The files come from "another delivery
    agent" (no `W=` size in their names). The control at the end shows the trap works: a
    FETCH of a body opens its FIFO, which a writer then feeds."""
    ours = make_imap()
    ours.only_icsmail("replaces the files of the server's own Maildir")
    user = ours.fresh_user()
    raw = ours.raw_login(user)
    raw.ok("SELECT INBOX")  # makes the Maildir
    raw.close()
    local, domain = user.split("@")
    box = ours.mail_root() / domain / local
    count = 6
    for i in range(count):
        name = f"{time.time_ns()}.B{i}.elsewhere"
        (box / "tmp" / name).write_bytes(f"Subject: m{i}\nFrom: a@b.example\n\nbody {i}\n".encode())
        os.rename(box / "tmp" / name, box / "new" / name)
    raw = ours.raw_login(user, timeout=15)
    fifos: list[Path] = []
    try:
        assert f"* {count} EXISTS".encode() in raw.ok("SELECT INBOX").lines
        for sub in ("cur", "new"):
            for path in (box / sub).iterdir():
                path.unlink()
                os.mkfifo(path)
                fifos.append(path)
        assert len(fifos) == count
        every = " ".join(str(n) for n in range(1, count + 1))
        for command, want in INDEX_ONLY:
            r = raw.cmd(command)  # a read of a FIFO: no answer, socket.timeout
            assert r.status == "OK", (command, r)
            if want is not None:
                words = r.untagged("SEARCH")[0].split()[2:]
                got = [w for w in words[:next((i for i, w in enumerate(words) if w[0] == "("),
                                              len(words))]]
                assert got == (every if want == "all" else want).split(), (command, r)
        assert raw.cmd("UID STORE 1 +FLAGS (\\Flagged)").status == "OK"
        assert raw.cmd("SEARCH FLAGGED").untagged("SEARCH") == ["* SEARCH 1"]
        r = raw.ok("FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)")
        assert len(r.untagged("FETCH")) == count
        # The control: reading a body opens the FIFO; a writer feeds it.
        opened = threading.Event()
        target = next(p for p in fifos if p.name.split(":")[0].endswith(".B0.elsewhere"))

        def feed():
            with open(target, "wb") as fifo:  # blocks until the server opens it
                opened.set()
                fifo.write(b"Subject: m0\nFrom: a@b.example\n\nbody 0\n")

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
        r = raw.ok("FETCH 1 (BODY.PEEK[TEXT])")
        assert opened.is_set() and b"body 0" in b"".join(r.lines), r
    finally:
        raw.close()
        release_fifos(fifos)


def release_fifos(fifos: list) -> None:
    """Lets a server thread blocked in opening one of the FIFOs go on (it reads end of file)."""
    for path in fifos:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: nobody reads it
            continue
        os.close(fd)
