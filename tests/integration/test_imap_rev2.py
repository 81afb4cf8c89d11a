"""IMAP4rev2 (RFC 9051) after `ENABLE IMAP4rev2`: the capability is offered beside IMAP4rev1,
and a session that enables it gets RFC 9051's answers — no \\Recent and no RECENT anywhere,
SELECT with a LIST of the folder and without UNSEEN, every SEARCH answered with ESEARCH,
UTF-8 folder names both ways — while a session that doesn't keeps IMAP4rev1's. Raw exchanges
only: Dovecot 2.3 has no IMAP4rev2 to compare with, nor does any client installed here, so
each exchange is checked against RFC 9051 and, to show the check can fail, against an
IMAP4rev1 session on the same server given the same commands.
"""

from __future__ import annotations

import re
import time

import pytest

from icshelpers import PASSWORD
from imaphelpers import (IS_DOVECOT, Raw, capabilities, imap_target,  # noqa: F401
                         list_names, make_module_imap, message)

pytestmark = pytest.mark.skipif(IS_DOVECOT, reason="Dovecot 2.3 has no IMAP4rev2")

NAME = "Entwürfe.日本語"
MUTF7 = "Entw&APw-rfe.&ZeVnLIqe-"


@pytest.fixture(scope="module")
def ics(imap_target):
    return imap_target


def text(r) -> list[str]:
    return [line.decode("utf-8") for line in r.lines]


def rev2(raw: Raw) -> Raw:
    r = raw.ok("ENABLE IMAP4rev2")
    assert text(r) == ["* ENABLED IMAP4rev2"], r
    return raw


def test_capability_and_enable(ics):
    raw = ics.raw()
    assert {"IMAP4REV1", "IMAP4REV2", "LITERAL+"} <= capabilities(raw.ok("CAPABILITY"))
    # RFC 5161: ENABLE is for an authenticated session.
    assert raw.cmd("ENABLE IMAP4rev2").status == "BAD"
    raw.ok(f'LOGIN "{ics.fresh_user()}" "{PASSWORD}"')
    caps = capabilities(raw.ok("CAPABILITY"))
    # What IMAP4rev2 folds in (RFC 9051 Appendix E, item 1) is all offered.
    for name in ("IMAP4REV2", "IMAP4REV1", "NAMESPACE", "UNSELECT", "UIDPLUS", "ESEARCH",
                 "SEARCHRES", "ENABLE", "IDLE", "SASL-IR", "LIST-EXTENDED", "LIST-STATUS",
                 "MOVE", "LITERAL+", "BINARY", "SPECIAL-USE", "STATUS=SIZE"):
        assert name in caps, name
    rev2(raw)
    # Enabling again enables nothing new (RFC 5161 §3.1).
    assert text(raw.ok("ENABLE IMAP4rev2")) == ["* ENABLED"]
    # Any case, beside others (CONDSTORE is new here, IMAP4rev2 is not).
    assert text(raw.ok("ENABLE imap4REV2 CONDSTORE")) == ["* ENABLED CONDSTORE"]
    raw.close()


def test_select_has_list_and_no_recent_or_unseen(ics):
    user = ics.fresh_user()
    for i in range(2):
        ics.deliver(user, message(subject=f"sel {i}"))
    with ics.raw_login(user) as raw:
        raw.ok('CREATE "Arch" (USE (\\Archive))')
        raw.ok("CREATE Parent.child")
    # IMAP4rev1, same server and account: RECENT and UNSEEN are there, no LIST.
    with ics.raw_login(user) as old:
        r = old.ok("EXAMINE INBOX")
        assert "* 2 RECENT" in text(r), r
        assert any("[UNSEEN 1]" in line for line in text(r)), r
        assert not r.untagged("LIST"), r
    with rev2(ics.raw_login(user)) as raw:
        r = raw.ok("SELECT INBOX")
        lines = text(r)
        assert not r.untagged("RECENT"), r
        assert not any("UNSEEN" in line for line in lines), r
        assert '* LIST (\\HasNoChildren) "." INBOX' in lines, r
        # RFC 9051 §6.3.2's required responses, in the order Dovecot and the RFC's example
        # give them.
        assert lines[0].startswith("* FLAGS (") and lines[1] == "* 2 EXISTS", r
        for code in ("PERMANENTFLAGS", "UIDVALIDITY", "UIDNEXT"):
            assert any(f"[{code} " in line for line in lines), (code, r)
        assert r.text.startswith("[READ-WRITE]"), r
        # Another folder: CLOSED ends the first one's responses; attributes are LIST's.
        r = raw.ok("EXAMINE Arch")
        assert text(r)[0] == "* OK [CLOSED] Previous mailbox closed", r
        assert '* LIST (\\HasNoChildren \\Archive) "." Arch' in text(r), r
        r = raw.ok("SELECT Parent")
        assert '* LIST (\\HasChildren) "." Parent' in text(r), r
        # Case-insensitive INBOX comes back as INBOX.
        r = raw.ok("SELECT inbox")
        assert '* LIST (\\HasNoChildren) "." INBOX' in text(r), r


def test_no_recent_in_fetch_or_untagged_updates(ics):
    old_user, new_user = ics.fresh_user(), ics.fresh_user()
    sessions = {}
    for user, enable in ((old_user, False), (new_user, True)):
        ics.deliver(user, message(subject="first"))
        raw = ics.raw_login(user)
        if enable:
            rev2(raw)
        raw.ok("SELECT INBOX")
        sessions[enable] = (user, raw)
    for enable, (user, raw) in sessions.items():
        ics.deliver(user, message(subject="second"))
    for enable, (user, raw) in sessions.items():
        # A NOOP tells of the new message; IMAP4rev1 with `* n RECENT`, IMAP4rev2 without.
        lines = []
        for _ in range(50):
            lines += text(raw.ok("NOOP"))
            if "* 2 EXISTS" in lines:
                break
            time.sleep(0.1)
        assert "* 2 EXISTS" in lines, lines
        assert any(re.fullmatch(r"\* \d+ RECENT", line) for line in lines) != enable, lines
        flags = text(raw.ok("FETCH 1:* (FLAGS)"))
        assert len(flags) == 2, flags
        assert all(("\\Recent" in line) != enable for line in flags), flags
        # A flag change from this session and its answer: no \Recent either.
        stored = text(raw.ok("STORE 2 +FLAGS (\\Flagged)"))
        assert ("\\Recent" in stored[0]) != enable, stored
        # The search key is still answered (RFC 9051 dropped it; being lenient costs nothing).
        raw.ok("SEARCH RECENT")
        raw.close()


def test_every_search_answers_with_esearch(ics):
    user = ics.fresh_user()
    for i in range(3):
        ics.deliver(user, message(subject=f"find {i}", body=f"word{i}\n"))
    with ics.raw_login(user) as old:
        old.ok("SELECT INBOX")
        old.ok("STORE 1 +FLAGS (\\Seen)")
        # IMAP4rev1 keeps `* SEARCH`.
        assert text(old.ok("SEARCH ALL")) == ["* SEARCH 1 2 3"]
    with rev2(ics.raw_login(user)) as raw:
        raw.ok("SELECT INBOX")
        for command, expected in (
            ("SEARCH ALL", '* ESEARCH (TAG "{tag}") ALL 1:3'),
            ("UID SEARCH SEEN", '* ESEARCH (TAG "{tag}") UID ALL 1'),
            ("SEARCH UNSEEN", '* ESEARCH (TAG "{tag}") ALL 2:3'),
            # Nothing found: the bare line (RFC 9051 §7.3.4).
            ('SEARCH SUBJECT "no such thing"', '* ESEARCH (TAG "{tag}")'),
            ("UID SEARCH SUBJECT nothing", '* ESEARCH (TAG "{tag}") UID'),
            ("SEARCH RETURN (COUNT MIN) ALL", '* ESEARCH (TAG "{tag}") MIN 1 COUNT 3'),
            ("SEARCH RETURN () BODY word2", '* ESEARCH (TAG "{tag}") ALL 3'),
            ("SEARCH CHARSET UTF-8 SUBJECT find", '* ESEARCH (TAG "{tag}") ALL 1:3'),
        ):
            tag = raw.tag()
            r = raw.cmd(command, tag=tag)
            assert r.status == "OK", r
            assert text(r) == [expected.format(tag=tag)], (command, r)
        # SAVE alone sends nothing (RFC 5182 §2.4); `$` then names the saved result.
        assert text(raw.ok("SEARCH RETURN (SAVE) UNSEEN")) == []
        tag = raw.tag()
        r = raw.cmd("UID SEARCH $", tag=tag)
        assert text(r) == [f'* ESEARCH (TAG "{tag}") UID ALL 2:3'], r
        # SORT keeps its own response (ESORT only with RETURN).
        assert text(raw.ok("SORT (SUBJECT) UTF-8 ALL")) == ["* SORT 1 2 3"]


def test_folder_names_are_utf8(ics):
    user = ics.fresh_user()
    with rev2(ics.raw_login(user)) as raw:
        raw.ok(f'CREATE "{NAME}"')
        names = list_names(raw.ok('LIST "" "*"'))
        assert NAME in names and "Entwürfe" in names, names
        assert MUTF7 not in names
        # LIST-STATUS and STATUS (DELETED SIZE): RFC 9051 §6.3.11.
        ics.deliver(user, message(subject="one"))
        raw.ok("SELECT INBOX")
        raw.ok('COPY 1 "' + NAME + '"')
        r = raw.ok(f'STATUS "{NAME}" (MESSAGES DELETED SIZE)')
        assert re.fullmatch(rf'\* STATUS "{NAME}" \(MESSAGES 1 DELETED 0 SIZE \d+\)',
                            text(r)[0]), r
        raw.ok(f'SELECT "{NAME}"')
        raw.ok("STORE 1 +FLAGS (\\Deleted)")
        r = raw.ok(f'STATUS "{NAME}" (DELETED)')
        assert text(r) == [f'* STATUS "{NAME}" (DELETED 1)'], r
        r = raw.ok(f'SELECT "{NAME}"')
        assert f'* LIST (\\HasNoChildren) "." "{NAME}"' in text(r), r
    # The same folder in modified UTF-7 for an IMAP4rev1 session.
    with ics.raw_login(user) as old:
        names = list_names(old.ok('LIST "" "*"'))
        assert MUTF7 in names and NAME not in names, names


def test_delete_with_children_is_haschildren(ics):
    with rev2(ics.raw_login(ics.fresh_user())) as raw:
        raw.ok("CREATE Top.sub")
        # The first DELETE leaves a level of the hierarchy (RFC 9051 §6.3.4) ...
        raw.ok("DELETE Top")
        assert list_names(raw.ok('LIST "" "Top"'))["Top"][0] == {"\\noselect", "\\haschildren"}
        # ... which can't be deleted while it has children: RFC 9051 §7.1's code.
        r = raw.cmd("DELETE Top")
        assert r.status == "NO" and r.text.startswith("[HASCHILDREN]"), r
        # The level goes with its last folder.
        raw.ok("DELETE Top.sub")
        assert list_names(raw.ok('LIST "" "Top*"')) == {}


def test_literal_minus(ics):
    """LITERAL- (RFC 7888 §5, part of IMAP4rev2): non-synchronizing literals of up to 4096
    bytes, which LITERAL+ (offered) takes, and more."""
    user = ics.fresh_user()
    ics.deliver(user, message(subject="x" * 40))
    with rev2(ics.raw_login(user)) as raw:
        raw.ok("SELECT INBOX")
        for needle, found in (("x" * 40, "1"), ("y" * 4096, None)):
            raw.send(f"a1 SEARCH SUBJECT {{{len(needle)}+}}\r\n{needle}\r\n".encode())
            r = raw.read_tagged("a1")
            assert r.status == "OK", r
            expected = '* ESEARCH (TAG "a1")' + (f" ALL {found}" if found else "")
            assert text(r) == [expected], r
