"""Subject recoding (`recodeSubjectUtf8`, issue 14, docs/filters.md "Subject recoding"): the
Subject of mail a logged-in client sends is stored as UTF-8 encoded-words whatever charset it
came in — encoded-words in koi8-r or windows-1251, raw 8-bit text in the charset the message
declares, or undeclared 8-bit text — and mail from another server on port 25 is left as it
came. Python's `email.header` decodes what the server stored."""

from __future__ import annotations

import email.header
import re
import smtplib
import uuid

import pytest

from icshelpers import ALICE, BOB, PASSWORD, find_message, free_port, submission_port, tls_overrides

RUSSIAN = "Отчёт о продажах за квартал"
GERMAN = "Grüße aus München"


@pytest.fixture
def server(make_server, certs):
    extra = tls_overrides(certs.rsa, "none", submission_port=free_port())
    extra["recodeSubjectUtf8"] = True
    return make_server(mode="serve", extra=extra)


def message(token: str, subject: bytes, content_type: bytes | None = None) -> bytes:
    lines = [
        f"From: <{ALICE}>".encode(),
        f"To: <{BOB}>".encode(),
        b"Subject: " + subject,
        f"Message-ID: <{token}@example.test>".encode(),
        b"MIME-Version: 1.0",
    ]
    if content_type:
        lines.append(b"Content-Type: " + content_type)
    lines += [b"", f"token {token}".encode(), b""]
    return b"\r\n".join(lines)


def submit(server, body: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", submission_port(server), timeout=30) as smtp:
        smtp.login("alice", PASSWORD)
        smtp.sendmail(ALICE, [BOB], body)


def stored_subject(server, token: str) -> bytes:
    """The raw Subject field (unfolded lines kept) of the message stored for bob."""
    stored = find_message(server, BOB, token)
    head = stored.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    match = re.search(rb"^Subject:(.*(?:\r?\n[ \t].*)*)", head, re.M | re.I)
    assert match, head
    return match.group(1)


def encoded_words(field: bytes) -> list[tuple[str, str]]:
    return re.findall(r"=\?([^?]+)\?([bBqQ])\?", field.decode("ascii"))


def decoded(field: bytes) -> str:
    text = field.decode("ascii")
    return str(email.header.make_header(email.header.decode_header(text)))


def check_utf8(field: bytes, expected: str) -> None:
    """Every line is ASCII within RFC 2047's 76 characters, every word is UTF-8, and the whole
    decodes to `expected`."""
    assert field.isascii(), field
    for line in field.split(b"\n"):
        assert len(line.rstrip(b"\r")) <= 76, field
    words = encoded_words(field)
    assert words, field
    assert all(charset.lower() == "utf-8" for charset, _ in words), field
    assert decoded(field) == expected, field


@pytest.mark.parametrize("charset, encoding", [("koi8-r", "B"), ("windows-1251", "Q")])
def test_encoded_words_in_a_legacy_charset_become_utf8(server, charset, encoding):
    token = f"subj-{uuid.uuid4().hex[:10]}"
    word = email.header.Header(RUSSIAN, charset).encode()
    if encoding == "Q":
        raw = RUSSIAN.encode(charset)
        quoted = "".join(f"={b:02X}" if b > 127 or b in b"?=_" else
                         ("_" if b == 32 else chr(b)) for b in raw)
        word = f"=?{charset}?Q?{quoted}?="
    assert charset in word.lower()
    submit(server, message(token, word.encode()))
    check_utf8(stored_subject(server, token), RUSSIAN)


def test_raw_8bit_in_the_declared_charset_is_decoded_with_it(server):
    token = f"subj-{uuid.uuid4().hex[:10]}"
    body = message(token, GERMAN.encode("iso-8859-1"), b'text/plain; charset="iso-8859-1"')
    submit(server, body)
    check_utf8(stored_subject(server, token), GERMAN)


def test_undeclared_8bit_text_is_guessed(server):
    token = f"subj-{uuid.uuid4().hex[:10]}"
    submit(server, message(token, RUSSIAN.encode("windows-1251")))
    check_utf8(stored_subject(server, token), RUSSIAN)
    token = f"subj-{uuid.uuid4().hex[:10]}"
    submit(server, message(token, RUSSIAN.encode("koi8-r")))
    check_utf8(stored_subject(server, token), RUSSIAN)


def test_a_long_subject_is_folded_into_utf8_words(server):
    token = f"subj-{uuid.uuid4().hex[:10]}"
    long_subject = " ".join([RUSSIAN] * 6)
    submit(server, message(token, email.header.Header(long_subject, "koi8-r").encode().encode()))
    field = stored_subject(server, token)
    assert field.count(b"\n") >= 3, field
    check_utf8(field, long_subject)


def test_ascii_and_utf8_subjects_are_left_alone(server):
    token = f"subj-{uuid.uuid4().hex[:10]}"
    submit(server, message(token, b"Quarterly report"))
    assert stored_subject(server, token) == b" Quarterly report"
    token = f"subj-{uuid.uuid4().hex[:10]}"
    word = email.header.Header(GERMAN, "utf-8").encode().encode()
    submit(server, message(token, word))
    assert stored_subject(server, token).strip() == word


def test_inbound_mail_is_not_rewritten(server):
    token = f"subj-{uuid.uuid4().hex[:10]}"
    word = email.header.Header(RUSSIAN, "koi8-r").encode().encode()
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as smtp:
        smtp.sendmail("someone@elsewhere.example", [BOB], message(token, word))
    assert stored_subject(server, token).strip() == word
