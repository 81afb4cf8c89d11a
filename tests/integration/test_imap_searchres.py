"""SEARCHRES (RFC 5182): `SEARCH RETURN (SAVE ...)`, `SORT RETURN (SAVE ...)` and `$` in
FETCH, STORE, COPY, MOVE, SEARCH, SORT, THREAD and their UID forms. The same exchange runs on
ics-mail and on a private Dovecot 2.3 started here, on the same folder, and the FETCH, SEARCH,
ESEARCH, SORT, THREAD and EXPUNGE responses and the tagged results must be the same
(`\\Recent`, which the servers give out differently, and untagged FLAGS/OK lines left out).
Among them: the saved result after an expunge, after a failed SEARCH and after SELECT; SAVE
with MIN/MAX; `$` as a SEARCH, SORT or THREAD key, inside OR and NOT; `$Forwarded`-like
keywords, a `$` keyword, a quoted `$` and a `$` after a literal.
"""

from __future__ import annotations

import re

import pytest

from imaphelpers import (IS_DOVECOT, DovecotTarget, append, capabilities,  # noqa: F401
                         imap_target, make_module_imap, message)

pytestmark = pytest.mark.skipif(
    IS_DOVECOT, reason="compares ics-mail with Dovecot: run on the ics-mail target")

EXCHANGE = [
    "FETCH $ (UID)",
    "SELECT srtest",
    "FETCH $ (UID)",
    "UID FETCH $ (UID)",
    "SEARCH $",
    "STORE 2,4,5 +FLAGS.SILENT (\\Flagged)",
    "SEARCH RETURN (SAVE) FLAGGED",
    "FETCH $ (UID FLAGS)",
    "UID FETCH $ (FLAGS)",
    "SEARCH RETURN (SAVE MIN) FLAGGED",
    "FETCH $ (UID)",
    "SEARCH RETURN (SAVE MAX MIN) FLAGGED",
    "FETCH $ (UID)",
    "SEARCH RETURN (SAVE MIN COUNT) FLAGGED",
    "FETCH $ (UID)",
    "SEARCH RETURN (SAVE ALL) FLAGGED",
    "SEARCH $ SEEN",
    "SEARCH OR $ 1",
    "SEARCH NOT $",
    "UID SEARCH UID $",
    "SEARCH UID $",
    "UID SEARCH RETURN (ALL) $",
    # `$` in SORT and THREAD criteria (RFC 5182 §2.1), and SORT RETURN (SAVE) (RFC 5267).
    "SORT (REVERSE ARRIVAL) UTF-8 $",
    "UID SORT (SUBJECT) UTF-8 $ UNSEEN",
    'SORT (DATE) "UTF-8" NOT $',
    "UID SORT RETURN (ALL) (REVERSE ARRIVAL) UTF-8 OR $ 1",
    "SORT RETURN (COUNT MIN) (REVERSE ARRIVAL) UTF-8 NOT $",
    "SORT (ARRIVAL) UTF-8 UID $",
    "SORT (ARRIVAL) UTF-8 SUBJECT $",
    "THREAD REFERENCES UTF-8 $",
    "UID THREAD ORDEREDSUBJECT US-ASCII OR $ 6",
    "SORT RETURN (SAVE) (REVERSE ARRIVAL) UTF-8 OR $ 6",
    "FETCH $ (UID)",
    "UID SORT RETURN (SAVE MIN) (REVERSE ARRIVAL) UTF-8 $",
    "FETCH $ (UID)",
    "SEARCH RETURN (SAVE) FLAGGED",
    # The saved message 2 goes: `$` follows.
    "STORE 2 +FLAGS.SILENT (\\Deleted)",
    "EXPUNGE",
    "FETCH $ (UID)",
    "UID SEARCH $",
    "STORE $ +FLAGS.SILENT (\\Seen)",
    "UID STORE $ +FLAGS (\\Answered)",
    "FETCH 1:* (UID FLAGS)",
    # An empty result.
    "SEARCH RETURN (SAVE) SUBJECT nothing-has-this",
    "FETCH $ (UID)",
    "UID FETCH $ (UID)",
    "SEARCH $",
    "SORT (ARRIVAL) UTF-8 $",
    "UID THREAD REFERENCES UTF-8 $",
    "COPY $ srtest",
    "UID COPY $ srtest",
    # A failed SEARCH empties it.
    "SEARCH RETURN (SAVE) FLAGGED",
    "SEARCH RETURN (SAVE) CHARSET BOGUS ALL",
    "FETCH $ (UID)",
    "SEARCH RETURN (SAVE) 1:2",
    "COPY $ INBOX",
    "MOVE $ INBOX",
    "FETCH 1:* (UID)",
    # SELECT empties it.
    "SEARCH RETURN (SAVE) 1",
    "SELECT srtest",
    "FETCH $ (UID)",
    # Not result references.
    "STORE 1 +FLAGS.SILENT ($ $Forwarded)",
    "SEARCH RETURN (SAVE) ALL",
    "SEARCH KEYWORD $",
    "SEARCH KEYWORD $Forwarded $",
    "SEARCH SUBJECT $",
    'SEARCH SUBJECT "$" $',
    "SEARCH HEADER Subject $ $",
    "FETCH 1 (UID FLAGS)",
    "UNSELECT",
    "FETCH $ (UID)",
]


def kept(r) -> tuple:
    """The tagged result and the responses compared, `\\Recent` left out."""
    lines = []
    for raw_line in r.lines:
        line = raw_line.decode()
        fetch = re.match(r"\* (\d+) FETCH \((.*)\)$", line)
        if fetch:
            # The items as a set: the servers order them differently.
            uid = re.search(r"\bUID (\d+)", fetch.group(2))
            flags = re.search(r"\bFLAGS \(([^)]*)\)", fetch.group(2))
            lines.append((fetch.group(1), uid and uid.group(1),
                          flags and sorted(set(flags.group(1).split()) - {"\\Recent"})))
        elif re.match(r"\* (\d+ EXPUNGE|SEARCH|ESEARCH|SORT|THREAD)\b", line):
            # (Dovecot ends an empty THREAD with a space, which RFC 5256's grammar hasn't.)
            lines.append(line.rstrip(" "))
    return r.status, lines


def prepare(target) -> object:
    raw = target.raw_login(target.fresh_user())
    raw.ok("CREATE srtest")
    for i in range(6):
        append(raw, "srtest", message(f"m{i}"))
    return raw


@pytest.fixture(scope="module")
def servers(imap_target, tmp_path_factory):
    dovecot = DovecotTarget(tmp_path_factory.mktemp("srdovecot") / "dovecot")
    a, b = prepare(imap_target), prepare(dovecot)
    yield a, b
    a.close()
    b.close()
    print(f"--- dovecot log ---\n{dovecot.proc.log()[-3000:]}")
    dovecot.cleanup()


def test_searchres_as_dovecot(servers):
    ours, dovecot = servers
    assert "SEARCHRES" in capabilities(ours.ok("CAPABILITY"))
    for i, command in enumerate(EXCHANGE):
        tag = f"s{i}"
        got, want = ours.cmd(command, tag=tag), dovecot.cmd(command, tag=tag)
        assert kept(got) == kept(want), f"{command}\nics-mail: {got}\nDovecot:  {want}"
        if command.startswith("SELECT") or command == "UNSELECT":
            assert got.status == want.status == "OK"


def test_dollar_after_a_literal_as_dovecot(servers):
    """`$` on the line after a literal is a key; the literal's own `$` is a subject."""
    results = []
    for raw in servers:
        raw.ok("SELECT srtest")
        raw.ok("SEARCH RETURN (SAVE) 2:3")
        tag = raw.tag()
        raw.send(f"{tag} UID SEARCH SUBJECT {{1}}\r\n")
        assert raw.line().startswith(b"+")
        raw.send("m $ NOT SUBJECT {1+}\r\n$\r\n")
        results.append(kept(raw.read_tagged(tag)))
        results.append(kept(raw.ok("FETCH $ (UID)")))
    assert results[:2] == results[2:], results
    assert results[0][1] and results[0][1][0] != "* SEARCH", results


def test_pipelined_save_then_dollar_as_dovecot(servers):
    """A FETCH $ sent together with the SEARCH that saves uses that search's result
    (RFC 5182 §2.1: commands are run in order)."""
    results = []
    for raw in servers:
        raw.ok("SELECT srtest")
        raw.send("p1 SEARCH RETURN (SAVE) 1,3\r\np2 FETCH $ (UID)\r\np3 UID SEARCH NOT $\r\n")
        answers = [kept(raw.read_tagged(tag)) for tag in ("p1", "p2", "p3")]
        # Dovecot may send a later command's responses before an earlier one's completion:
        # the responses are compared in order, across the three.
        results.append(([status for status, _ in answers],
                        [line for _, lines in answers for line in lines]))
    assert results[0] == results[1], results
    assert results[0][1] == [("1", "4", None), ("3", "6", None), "* SEARCH 5"], results
