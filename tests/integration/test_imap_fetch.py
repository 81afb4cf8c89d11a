"""FETCH (RFC 3501 6.4.5, 7.4.2): BODYSTRUCTURE, BODY and ENVELOPE of real-world MIME shapes,
compared with Dovecot's answers for the same messages; body sections, partial fetches, the
RFC822 items, \\Seen side effects, macros. Messages are APPENDed (stored byte for byte)."""

from __future__ import annotations

import re

import pytest

from icshelpers import crlf
from imaphelpers import (append, fetch_map, imap_target, make_module_imap,  # noqa: F401
                         ok)


MIXED = crlf("""From: "Alice Example" <alice@example.test>
To: Bob <bob@example.test>, carol@example.org
Cc: Dave <dave@example.org>
Bcc: eve@example.org
Reply-To: replies@example.test
Subject: Report attached
Date: Tue, 02 Mar 2021 10:00:00 +0100
Message-ID: <mixed-1@example.test>
In-Reply-To: <earlier@example.test>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer-b"

This is a multi-part message in MIME format.

--outer-b
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Hello Bob,
the report is attached. Gr=C3=BC=C3=9Fe
--outer-b
Content-Type: application/pdf; name="report.pdf"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="report.pdf"

JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSL0ZpbHRlci9GbGF0ZURl
Y29kZT4+CnN0cmVhbQp4nDPQM1Qo5ypUMFAwALJMLdVMFWJTuQDXsAT1CmVuZHN0cmVhbQplbmRv
--outer-b--
""")

ALTERNATIVE = crlf("""From: Carol <carol@example.org>
To: alice@example.test
Subject: Newsletter
Date: Wed, 03 Mar 2021 08:30:00 +0000
Message-ID: <alt-1@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="mix"

--mix
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=us-ascii

Plain version.
--alt
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: 8bit

<html><body><p>HTML version.</p></body></html>
--alt--

--mix
Content-Type: image/png
Content-Transfer-Encoding: base64
Content-Disposition: inline; filename=dot.png
Content-ID: <dot@example.org>
Content-Description: A dot

iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==
--mix--
""")

NESTED = crlf("""From: Dave <dave@example.org>
To: alice@example.test
Subject: Fwd: Original
Date: Thu, 04 Mar 2021 12:00:00 -0500
Message-ID: <fwd-1@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="fwd"

--fwd
Content-Type: text/plain

See the forwarded message.
--fwd
Content-Type: message/rfc822

From: Erin <erin@example.net>
To: dave@example.org
Subject: Original
Date: Mon, 01 Mar 2021 09:00:00 +0000
Message-ID: <orig-1@example.net>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain; charset=utf-8

Original text.
--inner
Content-Type: text/html; charset=utf-8

<p>Original text.</p>
--inner--
--fwd--
""")

ENCODED = crlf("""From: =?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <joerg@example.de>
To: =?ISO-8859-1?Q?Andr=E9?= <andre@example.fr>
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?= =?UTF-8?B?IOKCrDEwMA==?=
Date: Fri, 05 Mar 2021 18:45:00 +0100
Message-ID: <enc-1@example.de>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8; format=flowed
Content-Transfer-Encoding: 8bit

Schöne Grüße aus Köln, €100.
""")

SIMPLE = crlf("""From: sender@example.org
To: alice@example.test
Subject: No MIME headers
Date: Sat, 06 Mar 2021 07:00:00 +0000

Line one.
Line two.
Line three.
""")

MESSAGES = {"mixed": MIXED, "alternative": ALTERNATIVE, "nested": NESTED, "encoded": ENCODED,
            "simple": SIMPLE}

# Dovecot 2.3.19's answers for MESSAGES (FETCH n (BODYSTRUCTURE ENVELOPE BODY)).
DOVECOT = {
    'mixed': {
        'BODYSTRUCTURE': (
            '(("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 51 1 NIL NIL NIL NIL)("a'
            'pplication" "pdf" ("name" "report.pdf") NIL NIL "base64" 154 NIL ("attachment" ("filenam'
            'e" "report.pdf")) NIL NIL) "mixed" ("boundary" "outer-b") NIL NIL NIL)'
        ),
        'ENVELOPE': (
            '("Tue, 02 Mar 2021 10:00:00 +0100" "Report attached" (("Alice Example" NIL "alice" "exam'
            'ple.test")) (("Alice Example" NIL "alice" "example.test")) ((NIL NIL "replies" "example.'
            'test")) (("Bob" NIL "bob" "example.test")(NIL NIL "carol" "example.org")) (("Dave" NIL "'
            'dave" "example.org")) ((NIL NIL "eve" "example.org")) "<earlier@example.test>" "<mixed-1'
            '@example.test>")'
        ),
        'BODY': (
            '(("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 51 1)("application" "pdf'
            '" ("name" "report.pdf") NIL NIL "base64" 154) "mixed")'
        ),
    },
    'alternative': {
        'BODYSTRUCTURE': (
            '((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 14 0 NIL NIL NIL NIL)("text" "ht'
            'ml" ("charset" "utf-8") NIL NIL "8bit" 46 0 NIL NIL NIL NIL) "alternative" ("boundary" "'
            'alt") NIL NIL NIL)("image" "png" NIL "<dot@example.org>" "A dot" "base64" 96 NIL ("inlin'
            'e" ("filename" "dot.png")) NIL NIL) "mixed" ("boundary" "mix") NIL NIL NIL)'
        ),
        'ENVELOPE': (
            '("Wed, 03 Mar 2021 08:30:00 +0000" "Newsletter" (("Carol" NIL "carol" "example.org")) (('
            '"Carol" NIL "carol" "example.org")) (("Carol" NIL "carol" "example.org")) ((NIL NIL "ali'
            'ce" "example.test")) NIL NIL NIL "<alt-1@example.org>")'
        ),
        'BODY': (
            '((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 14 0)("text" "html" ("charset" "'
            'utf-8") NIL NIL "8bit" 46 0) "alternative")("image" "png" NIL "<dot@example.org>" "A dot'
            '" "base64" 96) "mixed")'
        ),
    },
    'nested': {
        'BODYSTRUCTURE': (
            '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 26 0 NIL NIL NIL NIL)("message" "'
            'rfc822" NIL NIL NIL "7bit" 374 ("Mon, 01 Mar 2021 09:00:00 +0000" "Original" (("Erin" NI'
            'L "erin" "example.net")) (("Erin" NIL "erin" "example.net")) (("Erin" NIL "erin" "exampl'
            'e.net")) ((NIL NIL "dave" "example.org")) NIL NIL NIL "<orig-1@example.net>") (("text" "'
            'plain" ("charset" "utf-8") NIL NIL "7bit" 14 0 NIL NIL NIL NIL)("text" "html" ("charset"'
            ' "utf-8") NIL NIL "7bit" 21 0 NIL NIL NIL NIL) "alternative" ("boundary" "inner") NIL NI'
            'L NIL) 17 NIL NIL NIL NIL) "mixed" ("boundary" "fwd") NIL NIL NIL)'
        ),
        'ENVELOPE': (
            '("Thu, 04 Mar 2021 12:00:00 -0500" "Fwd: Original" (("Dave" NIL "dave" "example.org")) ('
            '("Dave" NIL "dave" "example.org")) (("Dave" NIL "dave" "example.org")) ((NIL NIL "alice"'
            ' "example.test")) NIL NIL NIL "<fwd-1@example.org>")'
        ),
        'BODY': (
            '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 26 0)("message" "rfc822" NIL NIL '
            'NIL "7bit" 374 ("Mon, 01 Mar 2021 09:00:00 +0000" "Original" (("Erin" NIL "erin" "exampl'
            'e.net")) (("Erin" NIL "erin" "example.net")) (("Erin" NIL "erin" "example.net")) ((NIL N'
            'IL "dave" "example.org")) NIL NIL NIL "<orig-1@example.net>") (("text" "plain" ("charset'
            '" "utf-8") NIL NIL "7bit" 14 0)("text" "html" ("charset" "utf-8") NIL NIL "7bit" 21 0) "'
            'alternative") 17) "mixed")'
        ),
    },
    'encoded': {
        'BODYSTRUCTURE': (
            '("text" "plain" ("charset" "utf-8" "format" "flowed") NIL NIL "8bit" 36 1 NIL NIL NIL NI'
            'L)'
        ),
        'ENVELOPE': (
            '("Fri, 05 Mar 2021 18:45:00 +0100" "=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?= =?UTF-8?B?'
            'IOKCrDEwMA==?=" (("=?UTF-8?B?SsO2cmcgTcO8bGxlcg==?=" NIL "joerg" "example.de")) (("=?UTF'
            '-8?B?SsO2cmcgTcO8bGxlcg==?=" NIL "joerg" "example.de")) (("=?UTF-8?B?SsO2cmcgTcO8bGxlcg='
            '=?=" NIL "joerg" "example.de")) (("=?ISO-8859-1?Q?Andr=E9?=" NIL "andre" "example.fr")) '
            'NIL NIL NIL "<enc-1@example.de>")'
        ),
        'BODY': (
            '("text" "plain" ("charset" "utf-8" "format" "flowed") NIL NIL "8bit" 36 1)'
        ),
    },
    'simple': {
        'BODYSTRUCTURE': (
            '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 35 3 NIL NIL NIL NIL)'
        ),
        'ENVELOPE': (
            '("Sat, 06 Mar 2021 07:00:00 +0000" "No MIME headers" ((NIL NIL "sender" "example.org")) '
            '((NIL NIL "sender" "example.org")) ((NIL NIL "sender" "example.org")) ((NIL NIL "alice" '
            '"example.test")) NIL NIL NIL NIL)'
        ),
        'BODY': (
            '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 35 3)'
        ),
    },
}


# --------------------------------------------------------------------------------------------
# A small parser of IMAP response data, and a tolerant BODYSTRUCTURE comparison


def parse_sexp(data: bytes):
    """Parses one parenthesised IMAP value: lists, quoted strings, literals, NIL (None),
    numbers (int) and atoms (str)."""
    pos = 0

    def value():
        nonlocal pos
        while data[pos:pos + 1] == b" ":
            pos += 1
        c = data[pos:pos + 1]
        if c == b"(":
            pos += 1
            out = []
            while True:
                while data[pos:pos + 1] == b" ":
                    pos += 1
                if data[pos:pos + 1] == b")":
                    pos += 1
                    return out
                out.append(value())
        if c == b'"':
            pos += 1
            s = bytearray()
            while data[pos:pos + 1] != b'"':
                if data[pos:pos + 1] == b"\\":
                    pos += 1
                s += data[pos:pos + 1]
                pos += 1
            pos += 1
            return s.decode("utf-8", "replace")
        if c == b"{":
            end = data.index(b"}", pos)
            n = int(data[pos + 1:end].rstrip(b"+"))
            start = end + 3
            pos = start + n
            return data[start:pos].decode("utf-8", "replace")
        m = re.compile(rb"[^ ()]+").match(data, pos)
        assert m, (data[pos:pos + 50], data)
        pos = m.end()
        atom = m.group(0).decode()
        if atom.upper() == "NIL":
            return None
        return int(atom) if atom.isdigit() else atom

    return value()


def fetch_item(data: bytes, name: str):
    """The value of item `name` in a FETCH response's data."""
    m = re.search(rb"(?:^| )" + re.escape(name.encode()) + rb" ", data)
    assert m, (name, data)
    return parse_sexp(data[m.end():])


def lower(x):
    if isinstance(x, str):
        return x.lower()
    if isinstance(x, list):
        return [lower(i) for i in x]
    return x


def strip_nil_tail(items: list) -> list:
    items = list(items)
    while items and items[-1] is None:
        items.pop()
    return items


def compare_body(actual, expected, path="") -> None:
    """BODY/BODYSTRUCTURE: strings case-insensitively (type, subtype, parameter names and
    values, encodings), sizes exactly, line counts within 1 (whether a last line without CRLF
    counts is a server's choice), trailing NIL extension fields optional."""
    assert isinstance(actual, list), (path, actual)
    if expected and isinstance(expected[0], list):  # multipart
        n = 0
        while n < len(expected) and isinstance(expected[n], list):
            n += 1
        m = 0
        while m < len(actual) and isinstance(actual[m], list):
            m += 1
        assert m == n, f"{path}: {m} parts, expected {n}: {actual}"
        for i in range(n):
            compare_body(actual[i], expected[i], f"{path}.{i + 1}".lstrip("."))
        assert lower(actual[n]) == lower(expected[n]), (path, actual[n], expected[n])
        assert lower(strip_nil_tail(actual[n + 1:])) == lower(strip_nil_tail(expected[n + 1:])), (
            path, actual[n + 1:], expected[n + 1:])
        return
    where = path or "1"
    assert lower(actual[:6]) == lower(expected[:6]), (where, actual[:6], expected[:6])
    kind = (str(expected[0]).lower(), str(expected[1]).lower())
    if kind == ("message", "rfc822"):
        # Whether the CRLF after a nested multipart's close-delimiter belongs to the message
        # part or to the outer boundary is a server's choice (Dovecot: to the part).
        assert actual[6] in (expected[6], expected[6] - 2), (
            f"part {where}: size {actual[6]}, expected {expected[6]} (or 2 less)")
    else:
        assert actual[6] == expected[6], f"part {where}: size {actual[6]}, expected {expected[6]}"
    if kind[0] == "text":
        assert abs(actual[7] - expected[7]) <= 1, f"part {where}: lines {actual[7]} vs {expected[7]}"
        ext = 8
    elif kind == ("message", "rfc822"):
        assert actual[7] == expected[7], (where, actual[7], expected[7])  # envelope
        compare_body(actual[8], expected[8], f"{where}(rfc822)")
        assert abs(actual[9] - expected[9]) <= 1, f"part {where}: lines {actual[9]} vs {expected[9]}"
        ext = 10
    else:
        ext = 7
    assert lower(strip_nil_tail(actual[ext:])) == lower(strip_nil_tail(expected[ext:])), (
        where, actual[ext:], expected[ext:])


# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def account(imap_target):
    """One account with MESSAGES appended in order (sequence number = position + 1)."""
    user = imap_target.fresh_user()
    with imap_target.raw_login(user) as raw:
        for msg in MESSAGES.values():
            append(raw, "INBOX", msg)
    return imap_target, user


@pytest.fixture
def loaded(account):
    """A session of its own per test, INBOX selected read-only."""
    target, user = account
    raw = target.raw_login(user)
    raw.ok("EXAMINE INBOX")
    yield target, user, raw
    raw.close()


def seq(name: str) -> int:
    return list(MESSAGES).index(name) + 1


@pytest.mark.parametrize("name", list(MESSAGES))
def test_bodystructure_body_envelope_match_dovecot(loaded, name):
    _, _, raw = loaded
    n = seq(name)
    data = fetch_map(raw.ok(f"FETCH {n} (BODYSTRUCTURE ENVELOPE BODY RFC822.SIZE)"))[n]
    expected = DOVECOT[name]
    compare_body(fetch_item(data, "BODYSTRUCTURE"), parse_sexp(expected["BODYSTRUCTURE"].encode()))
    # BODY is BODYSTRUCTURE without extension data.
    compare_body(fetch_item(data, "BODY"), parse_sexp(expected["BODY"].encode()))
    body = fetch_item(data, "BODY")
    assert "boundary" not in str(body).lower(), body
    # ENVELOPE: exact (its fields are the raw header values; encoded words stay encoded).
    assert fetch_item(data, "ENVELOPE") == parse_sexp(expected["ENVELOPE"].encode())
    assert fetch_item(data, "RFC822.SIZE") == len(MESSAGES[name])


def section(raw, n: int, spec: str) -> tuple[bytes, bytes]:
    """(the item name as echoed, its data) of FETCH n (BODY.PEEK[spec])."""
    data = fetch_map(raw.ok(f"FETCH {n} (BODY.PEEK[{spec}])"))[n]
    m = re.search(rb"(BODY\[[^\]]*\](?:<\d+>)?) (?:\{(\d+)\}\r\n|\"|NIL)", data)
    assert m, data
    if m.group(2) is None:
        if data[m.end() - 1:m.end()] == b'"':
            return m.group(1), data[m.end():data.index(b'"', m.end())]
        return m.group(1), b""
    start = m.end()
    return m.group(1), data[start:start + int(m.group(2))]


def test_body_sections(loaded):
    _, _, raw = loaded
    mixed, alt, nested, enc = (MESSAGES[k] for k in ("mixed", "alternative", "nested", "encoded"))
    name, data = section(raw, seq("mixed"), "")
    assert name == b"BODY[]" and data == mixed
    header_end = mixed.index(b"\r\n\r\n") + 4
    assert section(raw, seq("mixed"), "HEADER")[1] == mixed[:header_end]
    assert section(raw, seq("mixed"), "TEXT")[1] == mixed[header_end:]
    assert section(raw, seq("mixed"), "1")[1] == (
        b"Hello Bob,\r\nthe report is attached. Gr=C3=BC=C3=9Fe")
    assert section(raw, seq("mixed"), "1.MIME")[1] == (
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n")
    assert section(raw, seq("mixed"), "2")[1].startswith(b"JVBERi0xLjQK")
    assert section(raw, seq("mixed"), "2")[1].endswith(b"bmRv")
    # Nested multipart: 1 is the multipart/alternative, 1.2 its HTML part.
    assert section(raw, seq("alternative"), "1.2")[1] == (
        b"<html><body><p>HTML version.</p></body></html>")
    assert section(raw, seq("alternative"), "1.1")[1] == b"Plain version."
    assert section(raw, seq("alternative"), "1.MIME")[1] == (
        b'Content-Type: multipart/alternative; boundary="alt"\r\n\r\n')
    assert section(raw, seq("alternative"), "2.MIME")[1].startswith(b"Content-Type: image/png\r\n")
    # message/rfc822: 2 is the whole inner message, 2.HEADER its header, 2.1 its first part.
    inner = nested[nested.index(b"From: Erin"):nested.index(b"\r\n--fwd--")]
    part2 = section(raw, seq("nested"), "2")[1]
    assert part2 in (inner, inner + b"\r\n"), part2  # see compare_body
    structure = fetch_item(fetch_map(raw.ok(f"FETCH {seq('nested')} BODYSTRUCTURE"))[
        seq("nested")], "BODYSTRUCTURE")
    assert structure[1][6] == len(part2), (structure[1], len(part2))
    assert section(raw, seq("nested"), "2.HEADER")[1] == inner[:inner.index(b"\r\n\r\n") + 4]
    assert section(raw, seq("nested"), "2.1")[1] == b"Original text."
    assert section(raw, seq("nested"), "2.2")[1] == b"<p>Original text.</p>"
    assert section(raw, seq("nested"), "2.TEXT")[1] == part2[part2.index(b"\r\n\r\n") + 4:]
    # A single-part message: part 1 is its body.
    assert section(raw, seq("encoded"), "1")[1] == enc[enc.index(b"\r\n\r\n") + 4:]
    assert section(raw, seq("encoded"), "1")[1].decode() == "Schöne Grüße aus Köln, €100.\r\n"


def test_header_fields(loaded):
    _, _, raw = loaded
    n = seq("mixed")
    name, data = section(raw, n, "HEADER.FIELDS (Subject fROM x-missing)")
    assert name.upper() == b"BODY[HEADER.FIELDS (SUBJECT FROM X-MISSING)]", name
    assert data == (b'From: "Alice Example" <alice@example.test>\r\n'
                    b"Subject: Report attached\r\n\r\n"), data
    _, data = section(raw, n, "HEADER.FIELDS.NOT (Subject From To Cc Bcc Date Message-ID)")
    assert data == (b"Reply-To: replies@example.test\r\nIn-Reply-To: <earlier@example.test>\r\n"
                    b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="outer-b"'
                    b"\r\n\r\n"), data
    # Folded header fields come back folded.
    _, data = section(raw, seq("encoded"), "HEADER.FIELDS (SUBJECT)")
    assert data.startswith(b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=")


def test_partial_fetches(loaded):
    _, _, raw = loaded
    mixed = MESSAGES["mixed"]
    n = seq("mixed")
    data = fetch_map(raw.ok(f"FETCH {n} (BODY.PEEK[]<0.10>)"))[n]
    assert data == b"BODY[]<0> {10}\r\n" + mixed[:10], data
    data = fetch_map(raw.ok(f"FETCH {n} (BODY.PEEK[TEXT]<5.20>)"))[n]
    text = mixed[mixed.index(b"\r\n\r\n") + 4:]
    assert data == b"BODY[TEXT]<5> {20}\r\n" + text[5:25], data
    data = fetch_map(raw.ok(f"FETCH {n} (BODY.PEEK[1]<3.4>)"))[n]
    assert data == b"BODY[1]<3> {4}\r\nlo B", data
    # Past the end: what is left, then nothing.
    data = fetch_map(raw.ok(f"FETCH {n} (BODY.PEEK[]<{len(mixed) - 7}.100>)"))[n]
    assert data == f"BODY[]<{len(mixed) - 7}> {{7}}\r\n".encode() + mixed[-7:], data
    data = fetch_map(raw.ok(f"FETCH {n} (BODY.PEEK[]<{len(mixed) + 100}.10>)"))[n]
    assert re.fullmatch(rb'BODY\[\]<\d+> (\{0\}\r\n|""|NIL)', data), data


def test_rfc822_items_and_seen(imap_target):
    user = imap_target.fresh_user()
    raw = imap_target.raw_login(user)
    msg = MESSAGES["nested"]
    for _ in range(4):
        append(raw, "INBOX", msg)
    raw.ok("SELECT INBOX")
    header_end = msg.index(b"\r\n\r\n") + 4
    r = raw.ok("FETCH 1 (BODY.PEEK[] BODY.PEEK[HEADER])")
    assert b"\\Seen" not in b"".join(r.lines)
    assert b"\\Seen" not in fetch_map(raw.ok("FETCH 1 FLAGS"))[1]
    # BODY[] sets \Seen and the server reports the new FLAGS in the same response.
    r = raw.ok("FETCH 1 BODY[]")
    assert b"\\Seen" in fetch_map(r)[1], r
    assert b"\\Seen" in fetch_map(raw.ok("FETCH 1 FLAGS"))[1]
    data = fetch_map(raw.ok("FETCH 2 RFC822"))[2]
    assert data.startswith(b"RFC822 {%d}\r\n" % len(msg)) or b"RFC822 {%d}\r\n" % len(msg) in data
    assert msg in data
    assert b"\\Seen" in fetch_map(raw.ok("FETCH 2 FLAGS"))[2]
    data = fetch_map(raw.ok("FETCH 3 RFC822.HEADER"))[3]
    assert b"RFC822.HEADER {%d}\r\n" % header_end + msg[:header_end] in data, data
    assert b"\\Seen" not in fetch_map(raw.ok("FETCH 3 FLAGS"))[3]  # RFC822.HEADER is a peek
    data = fetch_map(raw.ok("FETCH 4 RFC822.TEXT"))[4]
    assert b"RFC822.TEXT {%d}\r\n" % (len(msg) - header_end) + msg[header_end:] in data, data
    assert b"\\Seen" in fetch_map(raw.ok("FETCH 4 FLAGS"))[4]
    # UID FETCH always includes UID; macros.
    data = fetch_map(raw.ok("UID FETCH 1:* (FLAGS)"))
    assert len(data) == 4 and all(re.search(rb"UID \d+", v) for v in data.values()), data
    for macro, items in (("ALL", ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE")),
                         ("FAST", ("FLAGS", "INTERNALDATE", "RFC822.SIZE")),
                         ("FULL", ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"))):
        data = fetch_map(raw.ok(f"FETCH 1 {macro}"))[1]
        for item in items:
            assert re.search(rb"(^| )" + item.encode() + rb" ", data), (macro, item, data)
    assert b"BODYSTRUCTURE" not in fetch_map(raw.ok("FETCH 1 FULL"))[1]
    # imaplib
    m = imap_target.imap(user)
    ok(m.select("INBOX", readonly=True))
    typ, data = m.fetch("1", "(BODY.PEEK[2.1] RFC822.SIZE)")
    assert typ == "OK" and data[0][1] == b"Original text.", data
    m.logout()
    raw.close()


def test_fetch_bad_requests(loaded):
    _, _, raw = loaded
    for bad in ("FETCH 1 (BODY[", "FETCH 1 (NOSUCHITEM)", "FETCH x FLAGS",
                "FETCH 1 BODY[HEADER.FIELDS]", "FETCH 1 (BODY[]<1.x>)"):
        r = raw.cmd(bad)
        assert r.status == "BAD", (bad, r)
    raw.ok("NOOP")
