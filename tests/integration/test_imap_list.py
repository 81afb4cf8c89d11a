"""LIST-EXTENDED (RFC 5258), the SPECIAL-USE options of LIST (RFC 6154) and LIST-STATUS
(RFC 5819): the same folder tree and subscriptions are made on ics-mail and on a private
Dovecot 2.3 started by this module, and every LIST below must give the same set of LIST and
STATUS responses — names, attributes, CHILDINFO and STATUS items — and the same tagged
result on both (the order of the responses may differ; `\\Marked`/`\\UnMarked`, which Dovecot
adds on its own, are left out). Then Python's imapclient on ics-mail.
"""

from __future__ import annotations

import re
from pathlib import Path

import imapclient
import pytest

from imaphelpers import (IS_DOVECOT, PASSWORD, DovecotTarget, append, capabilities,  # noqa: F401
                         imap_target, make_module_imap, message)

pytestmark = pytest.mark.skipif(
    IS_DOVECOT, reason="compares ics-mail with Dovecot: run on the ics-mail target")

# Every name the tree has, and what is subscribed in the end (Fruit.Peach and Gone.Deep.Box
# were subscribed, then deleted: RFC 5258 §5's \NonExistent names). Dovecot subscribes its
# special-use folders itself, so they are subscribed on both.
FOLDERS = ["Fruit", "Fruit.Apple", "Fruit.Banana", "Tofu", "Vegetable", "Vegetable.Broccoli",
           "Vegetable.Corn"]
SUBSCRIBED = {"Fruit.Banana", "Fruit.Peach", "Vegetable", "Vegetable.Broccoli",
              "Gone.Deep.Box", "Drafts", "Sent", "Trash", "Junk"}

COMMANDS = [
    'LIST "" "*"',
    'LIST "" "%"',
    'LIST "" ""',
    'LIST () "" "*"',
    'LIST "" "*" RETURN ()',
    'LIST () "" "%" RETURN (CHILDREN)',
    'LIST "" "*" RETURN (CHILDREN)',
    'LIST (SUBSCRIBED) "" "*"',
    'LIST (SUBSCRIBED) "" "*" RETURN (CHILDREN)',
    'LIST (subscribed) "" "Fruit.*"',
    'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"',
    'LIST (SUBSCRIBED RECURSIVEMATCH) "" "*"',
    'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)',
    'LIST (RECURSIVEMATCH SUBSCRIBED) "" "Gone.%" RETURN (CHILDREN)',
    'LIST (RECURSIVEMATCH) "" "%"',
    'LIST (REMOTE RECURSIVEMATCH) "" "%"',
    'LIST (REMOTE) "" "%"',
    'LIST (REMOTE) "" "%" RETURN (CHILDREN)',
    'LIST (SPECIAL-USE) "" "*"',
    'LIST (SUBSCRIBED SPECIAL-USE) "" "*"',
    'LIST "" "%" RETURN (SPECIAL-USE)',
    'LIST "" "*" RETURN (CHILDREN SPECIAL-USE)',
    'LIST "" "%" RETURN (CHILDREN SUBSCRIBED SPECIAL-USE)',
    'LIST "" "*" RETURN (SUBSCRIBED)',
    'LIST "" ("INBOX" "Fruit.*" "Sent")',
    'LIST "" ("INBOX" "Vegetable.%" "Tofu") RETURN (CHILDREN)',
    'LIST "" ("" "Tofu")',
    'LIST () "" ""',
    'LIST "Fruit." ("%" "Apple")',
    'LIST "" "Lvl*"',
    'LIST "" "Lvl*" RETURN (CHILDREN)',
    'LIST "" "%" RETURN (STATUS (MESSAGES UNSEEN))',
    'LIST "" "*" RETURN (STATUS (MESSAGES UIDNEXT RECENT) CHILDREN)',
    'LIST (SUBSCRIBED) "" "*" RETURN (STATUS (MESSAGES))',
    'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (STATUS (UNSEEN) CHILDREN)',
    'LIST "" "Tofu" RETURN (STATUS (SIZE HIGHESTMODSEQ))',
    'LIST "" "*" RETURN (STATUS ())',
    'LIST (BOGUS) "" "*"',
    'LIST "" "*" RETURN (BOGUS)',
    'LIST "" "*" RETURN (STATUS (NOTANITEM))',
]


def build(target, user: str) -> None:
    """The tree of this module on `target`, the same as the other server sees it."""
    raw = target.raw_login(user)
    for name in FOLDERS:
        raw.ok(f"CREATE {name}")
    # A level of the hierarchy without a folder of its own: Dovecot's CREATE makes none for
    # parents; ics-mail's does, and a DELETE leaves the level (docs/imap.md).
    raw.ok("CREATE Lvl.Sub")
    if target.name == "icsmail":
        raw.ok("DELETE Lvl")
    for name in ("Fruit.Peach", "Gone.Deep.Box"):
        raw.ok(f"CREATE {name}")
        raw.ok(f"SUBSCRIBE {name}")
        raw.ok(f"DELETE {name}")
    if target.name == "icsmail":
        raw.ok("DELETE Gone.Deep")
        raw.ok("DELETE Gone")
    for name in SUBSCRIBED - {"Fruit.Peach", "Gone.Deep.Box"}:
        raw.ok(f"SUBSCRIBE {name}")
    for line in raw.ok('LSUB "" "*"').untagged("LSUB"):
        name = parse_name(line.split(' "." ', 1)[1])
        if name not in SUBSCRIBED:
            raw.ok(f'UNSUBSCRIBE "{name}"')
    for i in range(3):
        append(raw, "Tofu", message(f"tofu {i}"))
    raw.ok("SELECT Tofu")
    raw.ok("STORE 1 +FLAGS (\\Seen)")
    raw.ok("CLOSE")
    raw.close()


def parse_name(text: str) -> str:
    text = text.strip()
    if text.startswith('"'):
        return re.match(r'"((?:[^"\\]|\\.)*)"', text).group(1)
    return text.split(" ", 1)[0]


def normalised(r) -> tuple:
    """A response as (tagged status, set of LIST entries, STATUS items by name); checks that
    each STATUS follows the LIST of its folder."""
    entries, statuses = set(), {}
    last = None
    for raw_line in r.lines:
        line = raw_line.decode()
        m = re.match(r'^\* LIST \(([^)]*)\) (?:NIL|"(?:\\.|[^"])") (.*)$', line)
        if m:
            flags = frozenset(f.lower() for f in m.group(1).split()
                              if f.lower() not in ("\\marked", "\\unmarked"))
            rest = m.group(2)
            name = parse_name(rest)
            quoted_len = len(re.match(r'"(?:[^"\\]|\\.)*"', rest).group(0)) \
                if rest.startswith('"') else len(name)
            extended = rest[quoted_len:].replace('"', "").strip().upper()
            entries.add((name, flags, extended))
            last = name
            continue
        m = re.match(r'^\* STATUS ("(?:[^"\\]|\\.)*"|\S+) \((.*)\)$', line)
        if m:
            name = parse_name(m.group(1))
            assert name == last, f"STATUS of {name} not right after its LIST: {r}"
            words = m.group(2).split()
            statuses[name] = {words[i].upper(): words[i + 1] for i in range(0, len(words), 2)}
            continue
        raise AssertionError(f"unexpected line {line!r} in {r}")
    # UIDVALIDITY and HIGHESTMODSEQ differ between servers by nature; their presence counts.
    for items in statuses.values():
        for volatile in ("UIDVALIDITY", "HIGHESTMODSEQ"):
            if volatile in items:
                items[volatile] = "present"
    return r.status, entries, statuses


@pytest.fixture(scope="module")
def servers(imap_target, tmp_path_factory):
    dovecot = DovecotTarget(tmp_path_factory.mktemp("listdovecot") / "dovecot")
    ours = imap_target.fresh_user()
    theirs = dovecot.fresh_user()
    build(imap_target, ours)
    build(dovecot, theirs)
    a, b = imap_target.raw_login(ours), dovecot.raw_login(theirs)
    yield a, b
    a.close()
    b.close()
    print(f"--- dovecot log ---\n{dovecot.proc.log()[-3000:]}")
    dovecot.cleanup()


@pytest.mark.parametrize("command", COMMANDS)
def test_list_as_dovecot(servers, command):
    ours, dovecot = servers
    got, want = ours.cmd(command), dovecot.cmd(command)
    assert normalised(got) == normalised(want), f"\nics-mail: {got}\nDovecot:  {want}"


def test_list_with_literals_as_dovecot(servers):
    """The reference and patterns as literals (synchronising and LITERAL+)."""
    results = []
    for raw in servers:
        tag = raw.tag()
        raw.send(f"{tag} LIST (SUBSCRIBED RECURSIVEMATCH) {{0}}\r\n")
        assert raw.line().startswith(b"+")
        raw.send(' ("Tofu" {6+}\r\nFruit% "Vegetable.*") RETURN (CHILDREN STATUS (MESSAGES))\r\n')
        results.append(normalised(raw.read_tagged(tag)))
    assert results[0] == results[1]
    assert results[0][0] == "OK" and results[0][1], results[0]


def test_capabilities_and_the_rfc_examples(imap_target):
    """The capabilities, and RFC 5258 §5 examples 3 to 8 on the wire (the pure answers are
    unit-tested in src/imap/commands/list/tests.rs)."""
    user = imap_target.fresh_user()
    build(imap_target, user)
    raw = imap_target.raw_login(user)
    caps = capabilities(raw.ok("CAPABILITY"))
    assert {"LIST-EXTENDED", "LIST-STATUS", "SPECIAL-USE"} <= set(caps), caps
    r = raw.ok('LIST (SUBSCRIBED) "" "*"')
    assert '* LIST (\\Subscribed \\NonExistent) "." Fruit.Peach' in r.untagged("LIST"), r
    r = raw.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)')
    assert '* LIST (\\NonExistent \\HasChildren) "." Gone (CHILDINFO ("SUBSCRIBED"))' \
        in r.untagged("LIST"), r
    assert '* LIST (\\Subscribed \\HasChildren) "." Vegetable (CHILDINFO ("SUBSCRIBED"))' \
        in r.untagged("LIST"), r
    r = raw.ok('LIST "" "Tofu" RETURN (STATUS (MESSAGES UNSEEN))')
    assert [line.decode() for line in r.lines] == [
        '* LIST () "." Tofu', '* STATUS Tofu (MESSAGES 3 UNSEEN 2)'], r
    # APPENDLIMIT (RFC 7889) as a STATUS item of LIST-STATUS too.
    r = raw.ok('LIST "" "Tofu" RETURN (STATUS (APPENDLIMIT))')
    assert re.fullmatch(r"\* STATUS Tofu \(APPENDLIMIT \d+\)", r.lines[1].decode()), r
    # The selected folder's LIST is followed by the updates of the folder, as any command.
    raw.ok("SELECT Tofu")
    assert raw.cmd('LIST "" "Tofu" RETURN (STATUS (MESSAGES))').status == "OK"
    raw.close()


def test_imapclient(imap_target):
    user = imap_target.fresh_user()
    build(imap_target, user)
    client = imapclient.IMAPClient(imap_target.host, port=imap_target.port, ssl=False,
                                   timeout=10)
    client.login(user, PASSWORD)
    assert client.has_capability("LIST-EXTENDED")
    folders = {name: set(flags) for flags, _, name in client.list_folders()}
    assert folders["Lvl"] == {b"\\Noselect", b"\\HasChildren"}
    assert folders["Sent"] == {b"\\HasNoChildren", b"\\Sent"}
    assert folders["Fruit"] == {b"\\HasChildren"}
    assert "Fruit.Peach" not in folders
    assert client.find_special_folder(imapclient.imapclient.SENT) == "Sent"
    subscribed = {name for _, _, name in client.list_sub_folders()}
    assert subscribed == SUBSCRIBED, subscribed
    assert {n for _, _, n in client.list_folders("Fruit.", "%")} == {"Fruit.Apple", "Fruit.Banana"}
    status = client.folder_status("Tofu", [b"MESSAGES", b"UNSEEN"])
    assert status == {b"MESSAGES": 3, b"UNSEEN": 2}, status
    client.logout()
