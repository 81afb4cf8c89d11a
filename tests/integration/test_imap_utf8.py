"""UTF8=ACCEPT (RFC 6855): after `ENABLE UTF8=ACCEPT` mailbox names are UTF-8 on the wire both
ways, APPEND takes the `UTF8 (literal8)` form, SEARCH takes no CHARSET and its strings are
UTF-8; a session without it keeps modified UTF-7. Raw exchanges on ics-mail; where a session
without ENABLE sees the result (modified UTF-7 names, 8-bit headers served as they are, the
UTF8 APPEND form refused, a UTF-8 SEARCH), the same exchange on a private Dovecot 2.3 must
give the same answer. Dovecot 2.3 has no UTF8=ACCEPT itself (its ENABLE lists nothing), so the
UTF-8 wire form after ENABLE is checked against RFC 6855 alone. Then Python's imapclient 4.1
and imaplib with a non-ASCII folder name.
"""

from __future__ import annotations

import imaplib
import re

import imapclient
import pytest

from icshelpers import PASSWORD
from imaphelpers import (IS_DOVECOT, DovecotTarget, Raw, capabilities, list_names,  # noqa: F401
                         make_module_imap, message)

pytestmark = pytest.mark.skipif(
    IS_DOVECOT, reason="compares ics-mail with Dovecot: run on the ics-mail target")

NAME = "Entwürfe.日本語"
# The same name in modified UTF-7 (RFC 3501 §5.1.3).
MUTF7 = "Entw&APw-rfe.&ZeVnLIqe-"
# A message with raw UTF-8 in its header fields (RFC 6532), as a UTF8=ACCEPT client sends it.
UTF8_MESSAGE = ("From: Jörg <jörg@example.org>\r\nTo: <alice@example.org>\r\n"
                "Subject: Grüße aus Köln\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
                "Message-ID: <utf8-1@example.org>\r\nMIME-Version: 1.0\r\n"
                "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
                "\r\nHallo, schöne Grüße.\r\n").encode()


@pytest.fixture(scope="module")
def targets(make_module_imap, tmp_path_factory):
    ics = make_module_imap()
    dovecot = DovecotTarget(tmp_path_factory.mktemp("dovecot-utf8"))
    yield ics, dovecot
    print(f"--- dovecot log ---\n{dovecot.proc.log()[-3000:]}")
    dovecot.cleanup()


def enabled(raw: Raw) -> Raw:
    r = raw.ok("ENABLE UTF8=ACCEPT")
    assert [line.decode() for line in r.lines] == ["* ENABLED UTF8=ACCEPT"], r
    return raw


def text(r) -> list[str]:
    return [line.decode("utf-8") for line in r.lines]


def append_utf8(raw: Raw, mailbox: str, data: bytes, plus: bool = False):
    """`APPEND mailbox UTF8 (~{n})` (RFC 6855 §4); the first line's answer when refused."""
    tag = raw.tag()
    marker = f"~{{{len(data)}{'+' if plus else ''}}}"
    raw.send(f"{tag} APPEND {mailbox} UTF8 ({marker}\r\n".encode())
    if not plus:
        cont = raw.line()
        if cont.startswith(tag.encode() + b" "):
            return cont
        assert cont.startswith(b"+"), cont
    raw.send(data + b")\r\n")
    return raw.read_tagged(tag)


def test_capability_and_enable(targets):
    ics, dovecot = targets
    raw = ics.raw_login(ics.fresh_user())
    assert "UTF8=ACCEPT" in capabilities(raw.ok("CAPABILITY"))
    assert "UTF8=ONLY" not in capabilities(raw.ok("CAPABILITY"))
    enabled(raw)
    # Enabling again enables nothing new (RFC 5161 §3.1), as for CONDSTORE.
    assert text(raw.ok("ENABLE UTF8=ACCEPT")) == ["* ENABLED"]
    # UTF8=ONLY is not offered, so it is ignored.
    assert text(raw.ok("ENABLE UTF8=ONLY")) == ["* ENABLED"]
    raw.close()
    # Before login ENABLE is refused (RFC 5161 §3.1: authenticated state only; Dovecot 2.3
    # answers OK there, enabling nothing).
    with ics.raw() as anon:
        assert anon.cmd("ENABLE UTF8=ACCEPT").status == "BAD"
    # Dovecot 2.3 has no UTF8=ACCEPT: it enables nothing (not even an empty ENABLED) (so the UTF-8 forms below are
    # compared with the RFC, not with it).
    raw = dovecot.raw_login(dovecot.fresh_user())
    assert "UTF8=ACCEPT" not in capabilities(raw.ok("CAPABILITY"))
    assert text(raw.ok("ENABLE UTF8=ACCEPT")) == []
    raw.close()


def test_utf8_names_after_enable_and_mutf7_without(targets):
    ics, dovecot = targets
    user = ics.fresh_user()
    raw = enabled(ics.raw_login(user))
    raw.ok(f'CREATE "{NAME}"')
    r = raw.ok('LIST "" "Entw*"')
    assert text(r) == ['* LIST (\\HasChildren) "." "Entwürfe"',
                       f'* LIST (\\HasNoChildren) "." "{NAME}"'], r
    # A pattern in UTF-8, and LIST-STATUS names its folder the same way.
    r = raw.ok('LIST "" "*日本*" RETURN (STATUS (MESSAGES))')
    assert text(r) == [f'* LIST () "." "{NAME}"',
                       f'* STATUS "{NAME}" (MESSAGES 0)'], r
    assert text(raw.ok(f'STATUS "{NAME}" (MESSAGES UIDNEXT)')) == [
        f'* STATUS "{NAME}" (MESSAGES 0 UIDNEXT 1)']
    r = raw.ok(f'SELECT "{NAME}"')
    assert any("[READ-WRITE]" in line for line in [r.tagged.decode()]), r
    raw.ok("CLOSE")
    raw.ok('SUBSCRIBE "Entwürfe"')
    assert text(raw.ok('LSUB "" "Entw%"')) == ['* LSUB () "." "Entwürfe"']

    # The same folders in a session without ENABLE: modified UTF-7, as Dovecot names them.
    plain = ics.raw_login(user)
    ours = plain.ok('LIST "" "Entw*"')
    assert text(ours) == ['* LIST (\\HasChildren) "." Entw&APw-rfe',
                          f'* LIST (\\HasNoChildren) "." {MUTF7}'], ours
    theirs = dovecot.raw_login(dovecot.fresh_user())
    theirs.ok(f"CREATE {MUTF7}")
    want = theirs.ok(f'LIST "" {MUTF7}')
    assert text(plain.ok(f'LIST "" {MUTF7}')) == text(want), want
    assert text(plain.ok(f"STATUS {MUTF7} (MESSAGES)")) == text(
        theirs.ok(f"STATUS {MUTF7} (MESSAGES)"))
    # A UTF-8 name from a client that didn't enable UTF8=ACCEPT is no modified UTF-7: NO on
    # both servers, and no folder made.
    assert plain.cmd('CREATE "Grüße"').status == "NO"
    assert theirs.cmd('CREATE "Grüße"').status == "NO"
    assert "Grüße" not in list_names(raw.ok('LIST "" "*"'))
    theirs.close()

    # RENAME in UTF-8 moves the subfolder along; the other session sees the new names.
    raw.ok(f'RENAME "Entwürfe" "Brouillons — 草稿"')
    r = raw.ok('LIST "" "Brouillons*"')
    assert text(r) == ['* LIST (\\HasChildren) "." "Brouillons — 草稿"',
                       '* LIST (\\HasNoChildren) "." "Brouillons — 草稿.日本語"'], r
    assert raw.cmd(f'SELECT "{NAME}"').status == "NO"
    r = plain.ok('LIST "" "Brouillons*"')
    assert text(r) == ['* LIST (\\HasChildren) "." "Brouillons &IBQ- &g0l6Pw-"',
                       '* LIST (\\HasNoChildren) "." "Brouillons &IBQ- &g0l6Pw-.&ZeVnLIqe-"'], r
    raw.ok('DELETE "Brouillons — 草稿.日本語"')
    assert text(plain.ok('LIST "" "Brouillons*"')) == [
        '* LIST (\\HasNoChildren) "." "Brouillons &IBQ- &g0l6Pw-"']
    plain.close()
    raw.close()


def test_mutf7_spelling_is_not_decoded_after_enable(targets):
    """RFC 6855 §3: a client that enabled UTF8=ACCEPT sends UTF-8, so `&AOQ-` is taken as the
    five characters it is; a client without ENABLE sees that name in modified UTF-7."""
    ics, _ = targets
    user = ics.fresh_user()
    raw = enabled(ics.raw_login(user))
    raw.ok('CREATE "A&AOQ-"')
    assert text(raw.ok('LIST "" "A*"')) == ['* LIST (\\HasNoChildren) "." A&AOQ-']
    assert raw.cmd('SELECT "Aä"').status == "NO"
    with ics.raw_login(user) as plain:
        assert text(plain.ok('LIST "" "A*"')) == ['* LIST (\\HasNoChildren) "." A&-AOQ-']
        plain.ok("SELECT A&-AOQ-")
    raw.close()


def test_bad_names_after_enable(targets):
    ics, _ = targets
    user = ics.fresh_user()
    raw = enabled(ics.raw_login(user))
    # Invalid UTF-8 in a literal name: NO [CANNOT].
    for bad in (b"caf\xc3", b"\xff\xfe", "a\u2028b".encode(), "a\u0085b".encode(), b"a\x01b"):
        tag = raw.tag()
        raw.send(f"{tag} CREATE {{{len(bad)}+}}\r\n".encode() + bad + b"\r\n")
        r = raw.read_tagged(tag)
        assert r.status == "NO" and "[CANNOT]" in r.text, (bad, r)
    # Invalid UTF-8 in a quoted string is no string: BAD.
    raw.send(b"t90 CREATE \"caf\xc3\"\r\n")
    assert raw.read_tagged("t90").status == "BAD"
    raw.send(b"t91 SELECT \"\xed\xa0\x80\"\r\n")  # a UTF-16 surrogate, not UTF-8
    assert raw.read_tagged("t91").status == "BAD"
    # The session goes on; nothing was made.
    assert set(list_names(raw.ok('LIST "" "*"'))) <= {
        "INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive"}
    raw.close()


def test_append_utf8_and_fetch(targets):
    ics, _ = targets
    user = ics.fresh_user()
    raw = enabled(ics.raw_login(user))
    raw.ok(f'CREATE "{NAME}"')
    r = append_utf8(raw, f'"{NAME}"', UTF8_MESSAGE)
    assert r.status == "OK" and "[APPENDUID" in r.text, r
    r = append_utf8(raw, "INBOX", UTF8_MESSAGE, plus=True)
    assert r.status == "OK", r
    # With flags and a date, and MULTIAPPEND of both forms.
    tag = raw.tag()
    raw.send(f'{tag} APPEND INBOX (\\Seen) "07-Feb-1994 21:52:25 -0800" UTF8 '
             f'(~{{{len(UTF8_MESSAGE)}+}}\r\n'.encode() + UTF8_MESSAGE
             + b") {5+}\r\nab\r\nc UTF8 (~{3+}\r\nxyz)\r\n")
    r = raw.read_tagged(tag)
    assert r.status == "OK" and re.search(r"\[APPENDUID \d+ 2:4\]", r.text), r
    raw.ok(f'SELECT "{NAME}"')
    r = raw.ok("FETCH 1 (BODY.PEEK[] RFC822.SIZE)")
    data = r.lines[0]
    assert UTF8_MESSAGE in data, r
    assert f"RFC822.SIZE {len(UTF8_MESSAGE)}".encode() in data, r
    r = raw.ok("FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert "Subject: Grüße aus Köln\r\n".encode() in r.lines[0], r
    r = raw.ok("FETCH 1 ENVELOPE")
    assert "Grüße aus Köln".encode() in r.lines[0], r
    raw.ok("SELECT INBOX")
    r = raw.ok("FETCH 1:* (FLAGS RFC822.SIZE)")
    assert len(r.lines) == 4, r
    assert b"\\Seen" in r.lines[1] and b"RFC822.SIZE 3" in r.lines[3], r
    # CATENATE takes UTF8 parts too (RFC 6855 §4: cat-part =/ utf8-literal).
    head = "Subject: Grüße\r\nFrom: <jörg@example.org>\r\n\r\n".encode()
    body = "schön\r\n".encode()
    tag = raw.tag()
    raw.send(f"{tag} APPEND INBOX CATENATE (UTF8 (~{{{len(head)}+}}\r\n".encode() + head
             + f") TEXT {{{len(body)}+}}\r\n".encode() + body + b")\r\n")
    r = raw.read_tagged(tag)
    assert r.status == "OK", r
    r = raw.ok("FETCH 5 BODY.PEEK[]")
    assert head + body in r.lines[0], r
    raw.ok("STORE 5 +FLAGS.SILENT (\\Deleted)")
    raw.ok("EXPUNGE")
    # A missing `)` after the message is a syntax error and stores nothing.
    tag = raw.tag()
    raw.send(f"{tag} APPEND INBOX UTF8 (~{{3+}}\r\nxyz\r\n".encode())
    assert raw.read_tagged(tag).status == "BAD"
    assert raw.ok("NOOP").status == "OK"
    assert raw.ok("STATUS INBOX (MESSAGES)").lines[0].endswith(b"(MESSAGES 4)")
    raw.close()


def test_append_utf8_before_enable_is_refused_as_by_dovecot(targets):
    """Before ENABLE the UTF8 form is BAD on both, and neither sends `+` (so the client sends
    nothing of the message); the session goes on and nothing is stored. (Dovecot 2.3 answers
    only once the next line comes; ics-mail at once.)"""
    answers = []
    for target in targets:
        with target.raw_login(target.fresh_user()) as raw:
            tag = raw.tag()
            raw.send(f"{tag} APPEND INBOX UTF8 (~{{{len(UTF8_MESSAGE)}}}\r\n".encode())
            raw.settimeout(1.5)
            try:
                first = raw.line()
            except TimeoutError:
                raw.send(b"\r\n")
                first = raw.line()
            raw.settimeout(10)
            assert not first.startswith(b"+"), (target.name, first)
            assert first.startswith(tag.encode() + b" "), (target.name, first)
            answers.append(first.split(b" ")[1])
            # (Dovecot answers the empty line with an untagged BAD.)
            r = raw.ok("STATUS INBOX (MESSAGES)")
            assert r.untagged("STATUS") == ["* STATUS INBOX (MESSAGES 0)"], r
    assert answers == [b"BAD", b"BAD"], answers
    # LITERAL+: the message is on its way; it is read and dropped with its `)` (Dovecot 2.3
    # takes the message for a command line instead).
    ics, _ = targets
    with ics.raw_login(ics.fresh_user()) as raw:
        tag = raw.tag()
        raw.send(f"{tag} APPEND INBOX UTF8 (~{{3+}}\r\nxyz)\r\n".encode())
        assert raw.read_tagged(tag).status == "BAD"
        # A UTF8 part of a CATENATE likewise, and the rest of the command with it.
        tag = raw.tag()
        raw.send(f"{tag} APPEND INBOX CATENATE (TEXT {{3+}}\r\nabc UTF8 (~{{3+}}\r\nxyz) "
                 "TEXT {2+}\r\nuv)\r\n".encode())
        assert raw.read_tagged(tag).status == "BAD"
        r = raw.ok("STATUS INBOX (MESSAGES)")
        assert r.lines[0].endswith(b"(MESSAGES 0)"), r


def test_eight_bit_headers_served_as_they_are_as_by_dovecot(targets):
    """A message with UTF-8 header fields, appended (plain literal) by a client without
    UTF8=ACCEPT, is served to such a client as it is — no downgrade (RFC 6855 §5 leaves the
    choice), as Dovecot 2.3 does: the same header bytes and ENVELOPE on both."""
    results = []
    for target in targets:
        with target.raw_login(target.fresh_user()) as raw:
            r = raw.append_literal("INBOX", UTF8_MESSAGE)
            assert r.status == "OK", r
            raw.ok("SELECT INBOX")
            results.append([
                raw.ok("FETCH 1 (BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)])").lines,
                raw.ok("FETCH 1 (BODY.PEEK[TEXT])").lines,
                raw.ok("FETCH 1 (ENVELOPE)").lines,
            ])
    assert results[0] == results[1], f"\nics-mail: {results[0]}\nDovecot:  {results[1]}"


def test_search_after_enable(targets):
    ics, dovecot = targets
    user = ics.fresh_user()
    raw = enabled(ics.raw_login(user))
    for body in (UTF8_MESSAGE, message("plain")):
        assert append_utf8(raw, "INBOX", body).status == "OK"
    raw.ok("SELECT INBOX")
    # Strings are UTF-8, quoted or literal.
    assert text(raw.ok('SEARCH SUBJECT "grüße"')) == ["* SEARCH 1"]
    assert text(raw.ok('SEARCH FROM "Jörg" BODY "schöne"')) == ["* SEARCH 1"]
    tag = raw.tag()
    word = "Köln".encode()
    raw.send(f"{tag} UID SEARCH SUBJECT {{{len(word)}+}}\r\n".encode() + word + b"\r\n")
    r = raw.read_tagged(tag)
    assert r.status == "OK" and text(r) == ["* SEARCH 1"], r
    # RFC 6855 §3: a CHARSET after ENABLE UTF8=ACCEPT is BAD, even UTF-8; the folder stays.
    for charset in ("UTF-8", "US-ASCII", "ISO-8859-1"):
        r = raw.cmd(f"SEARCH CHARSET {charset} SUBJECT plain")
        assert r.status == "BAD", r
    assert text(raw.ok("SEARCH SUBJECT plain")) == ["* SEARCH 2"]
    raw.close()

    # Without ENABLE: CHARSET UTF-8 with a literal finds the same message on both servers.
    found = []
    for target in targets:
        with target.raw_login(target.fresh_user()) as plain:
            assert plain.append_literal("INBOX", UTF8_MESSAGE).status == "OK"
            assert plain.append_literal("INBOX", message("plain")).status == "OK"
            plain.ok("SELECT INBOX")
            word = "grüße".encode()
            tag = plain.tag()
            plain.send(f"{tag} SEARCH CHARSET UTF-8 SUBJECT {{{len(word)}+}}\r\n".encode()
                       + word + b"\r\n")
            found.append(text(plain.read_tagged(tag)))
            # A quoted string with 8-bit text, no CHARSET: searched as UTF-8 on both.
            found.append(text(plain.ok('SEARCH SUBJECT "köln"')))
    assert found == [["* SEARCH 1"]] * 4, found


def test_imapclient(targets):
    """imapclient 4.1: `enable("UTF8=ACCEPT")` answers what was enabled, but the library goes
    on encoding folder names in modified UTF-7 (`folder_encode`) and its imaplib writes
    commands in ASCII. So with UTF8=ACCEPT on, its modified UTF-7 names are folders of those
    ASCII characters (RFC 6855 §3): a client that enables it must send UTF-8. Shown here, and
    then imapclient with `folder_encode` off and imaplib's UTF-8 mode (what
    `imaplib.IMAP4.enable` switches on) doing create/select/append/list in UTF-8."""
    ics, _ = targets
    user = ics.fresh_user()
    client = imapclient.IMAPClient(ics.host, port=ics.port, ssl=False, timeout=10)
    client.login(user, PASSWORD)
    assert client.has_capability("UTF8=ACCEPT")
    assert client.enable("UTF8=ACCEPT") == [b"UTF8=ACCEPT"]
    # Left as it is, imapclient sends `Entw&APw-rfe`: that is the folder's UTF-8 name now.
    client.create_folder("Entwürfe")
    with ics.raw_login(user) as plain:
        assert "Entw&-APw-rfe" in list_names(plain.ok('LIST "" "*"'))
    client.delete_folder("Entwürfe")

    # imapclient 4.1 has no switch for UTF-8 names: folder_encode off, and its imaplib told
    # to write commands in UTF-8 (only that part of imaplib's UTF-8 mode: the rest of it
    # would wrap APPEND's message as `{n}` holding `UTF8 (...)`, a CPython imaplib bug).
    client.folder_encode = False
    client._imap._encoding = "utf-8"
    client.create_folder(NAME)
    client.append(NAME, UTF8_MESSAGE.replace("Grüße".encode(), b"Gruesse"), flags=[b"\\Seen"])
    info = client.select_folder(NAME)
    assert info[b"EXISTS"] == 1
    fetched = client.fetch([1], ["ENVELOPE", "BODY.PEEK[HEADER.FIELDS (FROM)]"])
    assert fetched[1][b"ENVELOPE"].subject == b"Gruesse aus K\xc3\xb6ln"
    assert "Jörg".encode() in fetched[1][b"BODY[HEADER.FIELDS (FROM)]"]
    # (Non-ASCII search criteria go as bytes: imapclient encodes str ones as US-ASCII.)
    assert client.search([b"SUBJECT", "Köln".encode()]) == [1]
    names = {name.decode() if isinstance(name, bytes) else name
             for _, _, name in client.list_folders()}
    assert {"Entwürfe", NAME} <= names, names
    client.logout()
    # Python's imaplib switches to UTF-8 names on its own ENABLE (its APPEND not used: above).
    lib = imaplib.IMAP4(ics.host, ics.port)
    lib.login(user, PASSWORD)
    assert lib.enable("UTF8=ACCEPT")[0] == "OK"
    assert lib.select(f'"{NAME}"')[0] == "OK"
    typ, data = lib.list('""', '"*本*"')
    assert typ == "OK" and data == [f'(\\HasNoChildren) "." "{NAME}"'.encode()], data
    lib.logout()
