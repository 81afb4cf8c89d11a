"""IMAP4rev1 (RFC 3501) commands and the extensions (UIDPLUS, MOVE, SPECIAL-USE, NAMESPACE, ID,
ENABLE, LITERAL+, UNSELECT, CONDSTORE, SASL-IR) with imaplib and a raw client. One server per
module; each test works in an account of its own (`fresh_user()`).
Set IMAP_TEST_TARGET=dovecot to run the same tests against a private Dovecot."""

from __future__ import annotations

import imaplib
import re
import time

import pytest

from icshelpers import ALICE, PASSWORD
from imaphelpers import (SPECIAL_USE, append, b64, capabilities, fetch_map, imap_target,  # noqa: F401
                         list_names, make_module_imap, message, ok, resp_code, search_ids,
                         select_info, status_items)


@pytest.fixture
def user(imap_target):
    return imap_target.fresh_user()


@pytest.fixture
def raw(imap_target, user):
    client = imap_target.raw_login(user)
    yield client
    client.close()


def internaldate(text: str):
    import datetime
    return datetime.datetime.strptime(text, "%d-%b-%Y %H:%M:%S %z")


def apply_expunges(items: list, resp) -> list:
    """What is left of `items` (in sequence order) after the `* n EXPUNGE` responses."""
    items = list(items)
    for line in resp.untagged("EXPUNGE"):
        n = int(line.split()[1])
        assert 1 <= n <= len(items), (line, items)
        del items[n - 1]
    return items


def delimiter(raw) -> str:
    r = raw.ok('LIST "" ""')
    line = r.untagged("LIST")[0]
    m = re.match(r'\* LIST \(([^)]*)\) "(.)" ""', line)
    assert m, line
    assert "\\noselect" in m.group(1).lower()
    return m.group(2)


def test_capability_noop_logout(imap_target, user):
    raw = imap_target.raw()
    assert raw.greeting.startswith(b"* OK"), raw.greeting
    pre = capabilities(raw.ok("CAPABILITY"))
    for cap in ("IMAP4REV1", "STARTTLS", "AUTH=PLAIN", "SASL-IR", "LITERAL+", "ID", "ENABLE",
                "IDLE"):
        assert cap in pre, pre
    assert "LOGINDISABLED" not in pre
    raw.ok(f'LOGIN "{user}" "{PASSWORD}"')
    post = capabilities(raw.ok("CAPABILITY"))
    for cap in ("IMAP4REV1", "IDLE", "UIDPLUS", "MOVE", "SPECIAL-USE", "NAMESPACE", "ID",
                "ENABLE", "CONDSTORE", "UNSELECT", "LITERAL+"):
        assert cap in post, post
    assert "STARTTLS" not in post and not any(c.startswith("AUTH=") for c in post), post
    raw.ok("NOOP")
    r = raw.cmd("LOGOUT")
    assert r.status == "OK" and any(l.startswith(b"* BYE") for l in r.lines), r
    assert raw.sock.recv(100) == b""


def test_login_variants_and_failures(imap_target, user):
    with imap_target.raw() as raw:
        r = raw.cmd(f'LOGIN "{user}" "wrong"')
        assert r.status == "NO" and resp_code(r.text, "AUTHENTICATIONFAILED") is not None, r
        r = raw.cmd(f'LOGIN "nobody@example.test" "{PASSWORD}"')
        assert r.status == "NO" and resp_code(r.text, "AUTHENTICATIONFAILED") is not None, r
        # Commands of the authenticated state are refused before login.
        assert raw.cmd("SELECT INBOX").status == "BAD"
        # defaultAuthDomain: the short name logs in.
        raw.ok(f'LOGIN {user.split("@")[0]} "{PASSWORD}"')
        raw.ok("SELECT INBOX")
        # LOGIN again in the authenticated state is an error.
        assert raw.cmd(f'LOGIN "{user}" "{PASSWORD}"').status == "BAD"
    # A literal password (imaplib quotes; here a synchronizing literal by hand).
    with imap_target.raw() as raw:
        tag = raw.tag()
        raw.send(f'{tag} LOGIN {user} {{{len(PASSWORD)}}}\r\n')
        assert raw.line().startswith(b"+")
        raw.send(PASSWORD + "\r\n")
        assert raw.read_tagged(tag).status == "OK"


def test_authenticate_plain_imaplib_and_sasl_ir(imap_target, user):
    m = imap_target.imap(login=False)
    typ, _ = m.authenticate("PLAIN", lambda _: f"\0{user}\0{PASSWORD}".encode())
    assert typ == "OK" and m.state == "AUTH"
    ok(m.select("INBOX"))
    m.logout()
    with imap_target.raw() as raw:  # SASL-IR (RFC 4959)
        r = raw.cmd(f"AUTHENTICATE PLAIN {b64(f'{user}' + chr(0) + user + chr(0) + PASSWORD)}")
        assert r.status == "OK", r
        raw.ok("SELECT INBOX")
    with imap_target.raw() as raw:  # continuation, then a wrong password
        tag = raw.tag()
        raw.send(f"{tag} AUTHENTICATE PLAIN\r\n")
        assert raw.line().startswith(b"+")
        raw.send(b64(f"\0{user}\0nope") + "\r\n")
        r = raw.read_tagged(tag)
        assert r.status == "NO" and resp_code(r.text, "AUTHENTICATIONFAILED") is not None, r
        tag = raw.tag()  # client cancels with "*"
        raw.send(f"{tag} AUTHENTICATE PLAIN\r\n")
        assert raw.line().startswith(b"+")
        raw.send("*\r\n")
        assert raw.read_tagged(tag).status == "BAD"
        raw.ok(f"AUTHENTICATE PLAIN {b64(chr(0) + user + chr(0) + PASSWORD)}")


def test_select_examine_recent(imap_target, user, raw):
    append(raw, "INBOX", message("one"))
    append(raw, "INBOX", message("two"), flags="\\Seen")
    with imap_target.raw_login(user) as other:
        r = other.ok("EXAMINE INBOX")
        assert "[READ-ONLY]" in r.text.upper(), r
        info = select_info(r)
        assert info["EXISTS"] == 2 and info["RECENT"] == 2, info
        assert info["UIDVALIDITY"] > 0 and info["UIDNEXT"] >= 3, info
        assert {"\\Seen", "\\Deleted", "\\Flagged", "\\Answered", "\\Draft"} <= info["FLAGS"]
        assert info.get("UNSEEN") == 1, info
        # STORE/EXPUNGE in a read-only folder: refused (NO), or ignored (Dovecot: "OK Store
        # ignored with read-only mailbox"); either way nothing changes.
        other.cmd("STORE 1 +FLAGS (\\Deleted)")
        assert b"\\Deleted" not in fetch_map(other.ok("FETCH 1 FLAGS"))[1]
        r = other.cmd("EXPUNGE")
        assert r.status in ("OK", "NO", "BAD") and not r.untagged("EXPUNGE"), r
        # FETCH BODY[] in EXAMINE doesn't set \Seen.
        other.ok("FETCH 1 BODY[]")
        assert b"\\Seen" not in fetch_map(other.ok("FETCH 1 FLAGS"))[1]
    # EXAMINE did not claim \Recent: the next SELECT still sees both.
    r = raw.ok("SELECT INBOX")
    assert "[READ-WRITE]" in r.text.upper(), r
    info = select_info(r)
    assert info["RECENT"] == 2, info
    assert b"\\Recent" in fetch_map(raw.ok("FETCH 1 FLAGS"))[1]
    # ... and now they are no longer recent for other sessions.
    with imap_target.raw_login(user) as other:
        assert select_info(other.ok("SELECT INBOX"))["RECENT"] == 0
    # Selecting a missing folder: NO, and the session is no longer in the selected state.
    r = raw.cmd('SELECT "No such folder"')
    assert r.status == "NO", r
    assert raw.cmd("FETCH 1 FLAGS").status == "BAD"


def test_create_delete_rename_hierarchy(imap_target, user, raw):
    d = delimiter(raw)
    raw.ok(f'CREATE "Projects{d}2024"')
    raw.ok(f'CREATE "Projects{d}2025{d}"')  # a trailing delimiter is allowed (RFC 3501 6.3.3)
    names = list_names(raw.ok('LIST "" "*"'))
    assert {"Projects", f"Projects{d}2024", f"Projects{d}2025"} <= set(names), names
    assert "\\haschildren" in names["Projects"][0], names
    assert names[f"Projects{d}2024"][1] == d
    assert raw.cmd(f'CREATE "Projects{d}2024"').status == "NO"
    assert raw.cmd("CREATE INBOX").status == "NO"
    append(raw, f"Projects{d}2024", message("kept"))
    # RENAME moves the inferior names too.
    raw.ok('RENAME "Projects" "Archive"')
    names = list_names(raw.ok('LIST "" "*"'))
    assert "Projects" not in names and f"Projects{d}2024" not in names, names
    assert {"Archive", f"Archive{d}2024", f"Archive{d}2025"} <= set(names), names
    assert status_items(raw.ok(f'STATUS "Archive{d}2024" (MESSAGES)'))["MESSAGES"] == 1
    assert raw.cmd('RENAME "Nope" "Other"').status == "NO"
    assert raw.cmd(f'RENAME "Archive{d}2025" "Archive{d}2024"').status == "NO"
    raw.ok(f'DELETE "Archive{d}2025"')
    raw.ok(f'DELETE "Archive{d}2024"')
    assert raw.cmd('DELETE "Nope"').status == "NO"
    assert raw.cmd("DELETE INBOX").status == "NO"
    names = list_names(raw.ok('LIST "" "*"'))
    # "Archive" itself may go too where it was only an implied (\Noselect) parent.
    assert f"Archive{d}2024" not in names and f"Archive{d}2025" not in names, names


def test_rename_inbox_moves_messages(imap_target, user, raw):
    # RFC 3501 6.3.5; Dovecot's Maildir storage answers "NO [CANNOT] Renaming INBOX isn't
    # supported", ics-mail implements it.
    imap_target.only_icsmail("Dovecot/Maildir can't RENAME INBOX")
    for i in range(3):
        append(raw, "INBOX", message(f"inbox {i}"))
    raw.ok('RENAME INBOX "Old mail"')
    assert status_items(raw.ok('STATUS "Old mail" (MESSAGES)'))["MESSAGES"] == 3
    assert status_items(raw.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 0
    assert "INBOX" in list_names(raw.ok('LIST "" "*"'))
    r = raw.ok('SELECT "Old mail"')
    assert select_info(r)["EXISTS"] == 3
    assert b"inbox 2" in raw.ok("FETCH 3 BODY.PEEK[HEADER.FIELDS (SUBJECT)]").lines[0]


def test_subscribe_lsub(imap_target, user, raw):
    d = delimiter(raw)
    raw.ok(f'CREATE "Lists{d}rust"')
    raw.ok(f'SUBSCRIBE "Lists{d}rust"')
    subs = list_names(raw.ok('LSUB "" "*"'))
    assert f"Lists{d}rust" in subs, subs
    # LSUB "%": the parent shows up, with \Noselect unless it is subscribed itself (a server
    # may subscribe folders it creates, parents included).
    top = list_names(raw.ok('LSUB "" "%"'))
    assert "Lists" in top, top
    if "Lists" not in subs:
        assert "\\noselect" in top["Lists"][0], top
    raw.ok(f'UNSUBSCRIBE "Lists{d}rust"')
    assert f"Lists{d}rust" not in list_names(raw.ok('LSUB "" "*"'))
    # SUBSCRIBE to a missing folder: either is allowed (RFC 3501 6.3.6: the server MAY check).
    r = raw.cmd('SUBSCRIBE "Ghost"')
    assert r.status in ("OK", "NO"), r


def test_list_wildcards_and_reference(imap_target, user, raw):
    d = delimiter(raw)
    for name in ("A", f"A{d}B", f"A{d}B{d}C", "Alpha"):
        raw.ok(f'CREATE "{name}"')
    all_names = set(list_names(raw.ok('LIST "" "*"')))
    assert {"INBOX", "A", f"A{d}B", f"A{d}B{d}C", "Alpha", *SPECIAL_USE} <= all_names
    top = set(list_names(raw.ok('LIST "" "%"')))
    assert {"INBOX", "A", "Alpha"} <= top and f"A{d}B" not in top, top
    assert set(list_names(raw.ok(f'LIST "" "A{d}%"'))) == {f"A{d}B"}
    assert set(list_names(raw.ok('LIST "" "A*"'))) == {"A", f"A{d}B", f"A{d}B{d}C", "Alpha"}
    assert set(list_names(raw.ok(f'LIST "A{d}" "%"'))) == {f"A{d}B"}
    assert set(list_names(raw.ok(f'LIST "A{d}" "*"'))) == {f"A{d}B", f"A{d}B{d}C"}
    assert set(list_names(raw.ok('LIST "" "inbox"'))) == {"INBOX"}  # INBOX is case-insensitive
    assert list_names(raw.ok('LIST "" "nothing*"')) == {}


def test_special_use_namespace_id(imap_target, user, raw):
    names = list_names(raw.ok('LIST "" "*"'))
    for name, flag in SPECIAL_USE.items():
        assert name in names and flag.lower() in names[name][0], names
    assert not any(a.startswith("\\") and a[1:] in ("drafts", "sent", "trash", "junk")
                   for a in names["INBOX"][0])
    ns = raw.ok("NAMESPACE").untagged("NAMESPACE")[0]
    assert re.match(r'\* NAMESPACE \(\("" "[./]"\)\) NIL NIL$', ns), ns
    r = raw.ok('ID ("name" "imaplib-test" "version" "1")')
    idline = r.untagged("ID")[0]
    assert idline.startswith("* ID (") or idline == "* ID NIL", idline
    assert raw.ok("ID NIL")


def test_status(imap_target, user, raw):
    append(raw, "Sent", message("a"), flags="\\Seen")
    append(raw, "Sent", message("b"))
    append(raw, "Sent", message("c"))
    r = raw.ok('STATUS "Sent" (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ)')
    items = status_items(r)
    assert items["MESSAGES"] == 3 and items["RECENT"] == 3 and items["UNSEEN"] == 2, items
    assert items["UIDNEXT"] >= 4 and items["UIDVALIDITY"] > 0 and items["HIGHESTMODSEQ"] > 0
    assert status_items(raw.ok('STATUS "Drafts" (MESSAGES UNSEEN)')) == {"MESSAGES": 0,
                                                                       "UNSEEN": 0}
    assert raw.cmd('STATUS "Missing" (MESSAGES)').status == "NO"


def test_append_flags_date_appenduid(imap_target, user, raw):
    date = "14-Jul-2021 02:44:25 +0200"
    r = append(raw, "Drafts", message("draft"), flags="\\Draft \\Seen $Label1", date=date)
    code = resp_code(r.text, "APPENDUID")
    assert code, r
    uidvalidity, uid = map(int, code.split())
    assert status_items(raw.ok('STATUS Drafts (UIDVALIDITY)'))["UIDVALIDITY"] == uidvalidity
    raw.ok("SELECT Drafts")
    data = fetch_map(raw.ok(f"UID FETCH {uid} (UID FLAGS INTERNALDATE RFC822.SIZE)"))[1]
    text = data.decode()
    # The same instant; the zone may be normalised (Dovecot answers +0000).
    m = re.search(r'INTERNALDATE "([^"]+)"', text)
    assert m and internaldate(m.group(1)) == internaldate(date), text
    assert f"RFC822.SIZE {len(message('draft'))}" in text, text
    for flag in ("\\Draft", "\\Seen", "$Label1"):
        assert flag in text, text
    # Keywords show in FLAGS/PERMANENTFLAGS of a later SELECT.
    info = select_info(raw.ok("SELECT Drafts"))
    assert "$Label1" in info["FLAGS"], info
    r = raw.append_literal("No such folder", message("x"))
    assert r.status == "NO" and resp_code(r.text, "TRYCREATE") is not None, r
    # imaplib's append.
    m = imap_target.imap(user)
    typ, data = m.append("INBOX", "(\\Flagged)", imaplib.Time2Internaldate(time.time()),
                         message("via imaplib"))
    assert typ == "OK" and b"APPENDUID" in data[0], data
    m.logout()


def test_check_close_expunge(imap_target, user, raw):
    for i in range(5):
        append(raw, "INBOX", message(f"m{i}"))
    raw.ok("SELECT INBOX")
    raw.ok("CHECK")
    raw.ok("STORE 2,4 +FLAGS.SILENT (\\Deleted)")
    r = raw.ok("EXPUNGE")
    # Sequence numbers shift after each expunge (2 then 3, or 4 then 2: either order).
    assert apply_expunges([1, 2, 3, 4, 5], r) == [1, 3, 5], r
    raw.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    r = raw.ok("CLOSE")
    assert not r.untagged("EXPUNGE"), r
    assert raw.cmd("FETCH 1 FLAGS").status == "BAD"  # no longer selected
    assert status_items(raw.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 2
    raw.ok("SELECT INBOX")
    subjects = b" ".join(raw.ok("FETCH 1:* BODY.PEEK[HEADER.FIELDS (SUBJECT)]").lines)
    assert b"m2" in subjects and b"m4" in subjects and b"m0" not in subjects


def test_store_flags_and_keywords(imap_target, user, raw):
    for i in range(3):
        append(raw, "INBOX", message(f"s{i}"))
    raw.ok("SELECT INBOX")
    r = raw.ok("STORE 1 +FLAGS (\\Flagged $Work)")
    f = fetch_map(r)[1].decode()
    assert "\\Flagged" in f and "$Work" in f, r
    r = raw.ok("STORE 1 -FLAGS (\\Flagged)")
    f = fetch_map(r)[1].decode()
    assert "\\Flagged" not in f and "$Work" in f, r
    r = raw.ok("STORE 2:3 FLAGS (\\Answered \\Seen)")
    fm = fetch_map(r)
    assert set(fm) == {2, 3} and all(b"\\Answered" in v and b"\\Seen" in v for v in fm.values())
    r = raw.ok("STORE 1:* +FLAGS.SILENT (\\Draft)")
    assert not r.untagged("FETCH"), r
    flags = fetch_map(raw.ok("FETCH 1:3 FLAGS"))
    assert all(b"\\Draft" in v for v in flags.values()), flags
    r = raw.ok("UID STORE 1:* FLAGS.SILENT ()")
    flags = fetch_map(raw.ok("FETCH 1:3 FLAGS"))
    for v in flags.values():
        assert re.search(rb"FLAGS \((\\Recent)?\)", v), flags
    assert raw.cmd("STORE 1 +FLAGS (\\Bogus)").status in ("BAD", "NO")
    # imaplib
    m = imap_target.imap(user)
    ok(m.select("INBOX"))
    ok(m.store("1", "+FLAGS", "(\\Seen)"))
    assert b"\\Seen" in ok(m.fetch("1", "(FLAGS)"))[0]
    m.logout()


def test_copy_uid_commands_and_copyuid(imap_target, user, raw):
    for i in range(4):
        append(raw, "INBOX", message(f"c{i}"), flags="\\Flagged" if i == 1 else "")
    raw.ok("SELECT INBOX")
    raw.ok("CREATE Dest")
    r = raw.ok("COPY 2:3 Dest")
    code = resp_code(r.text, "COPYUID")
    assert code, r
    validity, src, dst = code.split()
    assert status_items(raw.ok("STATUS Dest (UIDVALIDITY MESSAGES)")) == {
        "UIDVALIDITY": int(validity), "MESSAGES": 2}
    uids = [int(x) for x in search_ids(raw.ok("UID SEARCH 2:3"))]
    assert src in (f"{uids[0]}:{uids[1]}", f"{uids[0]},{uids[1]}"), (src, uids)
    # UID FETCH / STORE / SEARCH / COPY
    fm = fetch_map(raw.ok(f"UID FETCH {uids[0]} (FLAGS)"))
    assert list(fm) == [2] and f"UID {uids[0]}".encode() in fm[2], fm
    r = raw.ok(f"UID STORE {uids[1]} +FLAGS (\\Answered)")
    assert f"UID {uids[1]}".encode() in fetch_map(r)[3], r
    assert search_ids(raw.ok("UID SEARCH ANSWERED")) == [uids[1]]
    assert search_ids(raw.ok("SEARCH ANSWERED")) == [3]
    r = raw.ok(f"UID COPY {uids[1]} Dest")
    assert resp_code(r.text, "COPYUID"), r
    r = raw.cmd("COPY 1 Missing")
    assert r.status == "NO" and resp_code(r.text, "TRYCREATE") is not None, r
    raw.ok("SELECT Dest")
    flags = fetch_map(raw.ok("FETCH 1:* FLAGS"))
    assert len(flags) == 3 and b"\\Flagged" in flags[1] and b"\\Answered" in flags[3], flags


def test_uid_expunge_only_given_uids(imap_target, user, raw):
    for i in range(4):
        append(raw, "INBOX", message(f"u{i}"))
    raw.ok("SELECT INBOX")
    uids = search_ids(raw.ok("UID SEARCH ALL"))
    raw.ok("STORE 1:* +FLAGS.SILENT (\\Deleted)")
    r = raw.ok(f"UID EXPUNGE {uids[1]}")
    assert r.untagged("EXPUNGE") == ["* 2 EXPUNGE"], r
    assert search_ids(raw.ok("UID SEARCH ALL")) == [uids[0], uids[2], uids[3]]
    r = raw.ok(f"UID EXPUNGE {uids[2]}:{uids[3]}")
    assert apply_expunges([uids[0], uids[2], uids[3]], r) == [uids[0]], r
    assert search_ids(raw.ok("UID SEARCH ALL")) == [uids[0]]


def test_move(imap_target, user, raw):
    for i in range(3):
        append(raw, "INBOX", message(f"mv{i}"))
    raw.ok("SELECT INBOX")
    uids = search_ids(raw.ok("UID SEARCH ALL"))
    r = raw.ok(f"UID MOVE {uids[0]}:{uids[1]} Trash")
    copyuid = [l for l in r.lines if b"COPYUID" in l] + ([r.tagged] if b"COPYUID" in r.tagged
                                                          else [])
    assert copyuid, r
    assert apply_expunges(uids, r) == [uids[2]], r
    assert search_ids(raw.ok("UID SEARCH ALL")) == [uids[2]]
    assert status_items(raw.ok("STATUS Trash (MESSAGES)"))["MESSAGES"] == 2
    r = raw.ok("MOVE 1 Junk")
    assert r.untagged("EXPUNGE") == ["* 1 EXPUNGE"]
    assert status_items(raw.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 0


def test_unselect_keeps_deleted(imap_target, user, raw):
    append(raw, "INBOX", message("keep"))
    raw.ok("SELECT INBOX")
    raw.ok("STORE 1 +FLAGS (\\Deleted)")
    raw.ok("UNSELECT")
    assert raw.cmd("FETCH 1 FLAGS").status == "BAD"
    assert status_items(raw.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 1


def test_literal_plus_append(imap_target, user, raw):
    msg = message("non-synchronizing")
    r = raw.append_literal("INBOX", msg, plus=True)
    assert r.status == "OK", r
    # LITERAL+ in a LOGIN too, pipelined with the next command.
    with imap_target.raw() as other:
        other.send(f"a LOGIN {{{len(user)}+}}\r\n{user} {{{len(PASSWORD)}+}}\r\n{PASSWORD}\r\n"
                   "b SELECT INBOX\r\n")
        assert other.read_tagged("a").status == "OK"
        assert select_info(other.read_tagged("b"))["EXISTS"] == 1


def test_enable_and_condstore(imap_target, user, raw):
    r = raw.ok("ENABLE CONDSTORE")
    assert any("CONDSTORE" in l.upper() for l in r.untagged("ENABLED")), r
    for i in range(3):
        append(raw, "INBOX", message(f"cs{i}"))
    r = raw.ok("SELECT INBOX (CONDSTORE)")
    info = select_info(r)
    modseq = info["HIGHESTMODSEQ"]
    assert modseq > 0, r
    fm = fetch_map(raw.ok("FETCH 1:* (FLAGS MODSEQ)"))
    assert all(re.search(rb"MODSEQ \(\d+\)", v) for v in fm.values()), fm
    r = raw.ok("STORE 2 +FLAGS (\\Flagged)")
    m = re.search(rb"MODSEQ \((\d+)\)", fetch_map(r)[2])
    assert m and int(m.group(1)) > modseq, r
    new_modseq = int(m.group(1))
    changed = fetch_map(raw.ok(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq})"))
    assert list(changed) == [2], changed
    assert search_ids(raw.ok(f"SEARCH MODSEQ {modseq + 1}")) == [2]
    # STORE UNCHANGEDSINCE: message 2 changed after `modseq`, message 1 did not.
    r = raw.cmd(f"STORE 1:2 (UNCHANGEDSINCE {modseq}) +FLAGS (\\Seen)")
    assert r.status == "OK" and resp_code(r.text, "MODIFIED") == "2", r
    assert b"\\Seen" in fetch_map(raw.ok("FETCH 1 FLAGS"))[1]
    assert b"\\Seen" not in fetch_map(raw.ok("FETCH 2 FLAGS"))[2]
    assert status_items(raw.ok("STATUS INBOX (HIGHESTMODSEQ)"))["HIGHESTMODSEQ"] > new_modseq


def test_modified_utf7_folder_names(imap_target, user, raw):
    raw.ok('CREATE "&ZeVnLIqe-"')  # 日本語
    raw.ok('CREATE "Caf&AOk-"')  # Café
    names = list_names(raw.ok('LIST "" "*"'))
    assert "&ZeVnLIqe-" in names and "Caf&AOk-" in names, names
    append(raw, "Caf&AOk-", message("accent"))
    assert status_items(raw.ok('STATUS "Caf&AOk-" (MESSAGES)'))["MESSAGES"] == 1
    raw.ok('RENAME "Caf&AOk-" "&ZeVnLIqe-.Caf&AOk-"'.replace(".", delimiter(raw)))
    assert status_items(raw.ok(
        f'STATUS "&ZeVnLIqe-{delimiter(raw)}Caf&AOk-" (MESSAGES)'))["MESSAGES"] == 1
    # imaplib round trip
    m = imap_target.imap(user)
    assert any(b"&ZeVnLIqe-" in line for line in ok(m.list()))
    m.logout()


def test_invalid_mailbox_names(imap_target, user, raw):
    for bad in ('"&Jjo!"', '"&Jjo"', '"&AGE-"'):  # bad base64, unterminated, ASCII encoded
        r = raw.cmd(f"CREATE {bad}")
        assert r.status in ("NO", "BAD"), (bad, r)
    assert raw.cmd('CREATE ""').status in ("NO", "BAD")
