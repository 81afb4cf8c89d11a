"""IMAP and TLS: STARTTLS in the three `tls.mode`s (RFC 3501 6.2.1, RFC 2595), LOGINDISABLED,
IMAPS (implicit TLS on imap.imapsPort), defaultAuthDomain, failed logins."""

from __future__ import annotations

import ssl

import pytest

from icshelpers import ALICE, PASSWORD
from imaphelpers import (b64, capabilities, make_imap, ok, resp_code,  # noqa: F401
                         select_info)


def test_optional_mode(make_imap):
    target = make_imap(tls_mode="optional", implicit=False)
    raw = target.raw()
    caps = capabilities(raw.ok("CAPABILITY"))
    assert "STARTTLS" in caps and "AUTH=PLAIN" in caps and "LOGINDISABLED" not in caps, caps
    raw.starttls()
    assert raw.sock.version() in ("TLSv1.2", "TLSv1.3")
    caps = capabilities(raw.ok("CAPABILITY"))
    assert "STARTTLS" not in caps and "AUTH=PLAIN" in caps, caps
    assert raw.cmd("STARTTLS").status in ("BAD", "NO")  # not twice
    raw.ok(f'LOGIN "{ALICE}" "{PASSWORD}"')
    raw.ok("SELECT INBOX")
    raw.close()
    # A plain-text login is allowed in this mode; imaplib's starttls works too.
    m = target.imap(ALICE)
    ok(m.select("INBOX"))
    m.logout()
    m = target.imap(ALICE, starttls=True)
    assert isinstance(m.sock, ssl.SSLSocket)
    ok(m.select("INBOX"))
    m.logout()


def test_required_mode(make_imap):
    target = make_imap(tls_mode="required", implicit=True)
    raw = target.raw()
    caps = capabilities(raw.ok("CAPABILITY"))
    assert "STARTTLS" in caps and "LOGINDISABLED" in caps, caps
    assert not any(c.startswith("AUTH=") for c in caps), caps
    r = raw.cmd(f'LOGIN "{ALICE}" "{PASSWORD}"')
    assert r.status in ("NO", "BAD"), r
    r = raw.cmd(f"AUTHENTICATE PLAIN {b64(chr(0) + ALICE + chr(0) + PASSWORD)}")
    assert r.status in ("NO", "BAD"), r
    assert raw.cmd("SELECT INBOX").status in ("NO", "BAD")
    raw.starttls()
    caps = capabilities(raw.ok("CAPABILITY"))
    assert "LOGINDISABLED" not in caps and "AUTH=PLAIN" in caps and "STARTTLS" not in caps
    raw.ok(f'LOGIN "{ALICE}" "{PASSWORD}"')
    raw.ok("SELECT INBOX")
    raw.close()
    # imaplib: STARTTLS, then login.
    m = target.imap(ALICE)  # does STARTTLS first in required mode
    ok(m.select("INBOX"))
    m.logout()
    # IMAPS needs no STARTTLS.
    m = target.imap(ALICE, ssl_port=True)
    assert "STARTTLS" not in m.capabilities
    ok(m.select("INBOX"))
    m.logout()


def test_none_mode_offers_no_starttls(make_imap):
    target = make_imap(tls_mode="none", implicit=False)
    raw = target.raw()
    caps = capabilities(raw.ok("CAPABILITY"))
    assert "STARTTLS" not in caps and "LOGINDISABLED" not in caps and "AUTH=PLAIN" in caps
    assert raw.cmd("STARTTLS").status in ("BAD", "NO")
    raw.ok(f'LOGIN "{ALICE}" "{PASSWORD}"')
    raw.close()


def test_imaps_implicit_tls(make_imap):
    target = make_imap(tls_mode="optional", implicit=True)
    raw = target.raw(tls=True)
    assert raw.greeting.startswith(b"* OK"), raw.greeting
    assert raw.sock.version() in ("TLSv1.2", "TLSv1.3")
    der = raw.sock.getpeercert(binary_form=True)
    assert der == target.cert.der()
    caps = capabilities(raw.ok("CAPABILITY"))
    assert "STARTTLS" not in caps and "AUTH=PLAIN" in caps, caps
    raw.ok(f"AUTHENTICATE PLAIN {b64(chr(0) + ALICE + chr(0) + PASSWORD)}")
    raw.ok("SELECT INBOX")
    raw.close()
    m = target.imap(ALICE, ssl_port=True)
    ok(m.select("INBOX"))
    m.logout()
    # Plain text to the IMAPS port gets no IMAP greeting.
    with target.connect_socket(target.imaps_port, timeout=3) as sock:
        sock.sendall(b"a CAPABILITY\r\n")
        try:
            data = sock.recv(100)
        except (ConnectionResetError, TimeoutError, OSError):
            data = b""
        assert not data.startswith(b"* OK"), data


def test_failed_logins_and_auth_domain(make_imap):
    target = make_imap(tls_mode="optional", implicit=False, default_auth_domain=None)
    raw = target.raw()
    r = raw.cmd(f'LOGIN "alice" "{PASSWORD}"')  # no defaultAuthDomain: the short name fails
    assert r.status == "NO" and resp_code(r.text, "AUTHENTICATIONFAILED") is not None, r
    r = raw.cmd(f'LOGIN "{ALICE}" "{PASSWORD}x"')
    assert r.status == "NO" and resp_code(r.text, "AUTHENTICATIONFAILED") is not None, r
    raw.ok(f'LOGIN "{ALICE}" "{PASSWORD}"')
    raw.close()
    m = target.imap(login=False)
    with pytest.raises(m.error, match="AUTHENTICATIONFAILED"):
        m.login(ALICE, "wrong")
    m.logout()
