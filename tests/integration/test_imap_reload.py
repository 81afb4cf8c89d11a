"""A reload reaches IMAP (issue 12): each IMAP session keeps the settings it started with,
sessions after a SIGHUP get the new ones. `tls.mode` "none" → "required" while a client is
logged in: the new connection advertises LOGINDISABLED and refuses a plaintext LOGIN, the old
session goes on (SELECT, FETCH) as before."""

from __future__ import annotations

import imaplib
import signal

from icshelpers import ALICE, PASSWORD, deep_merge, make_message, tls_overrides, wait_until, \
    write_config


def test_a_reload_reaches_new_imap_sessions_and_spares_old_ones(make_server, certs):
    server = make_server(mode="serve", extra=tls_overrides(certs.rsa, "none"))
    port = server.config["imap"]["port"]
    with server.client() as smtp:
        smtp.ehlo()
        smtp.transaction("s@example.org", [ALICE], make_message("before-reload"))
    old = imaplib.IMAP4("127.0.0.1", port)
    assert "LOGINDISABLED" not in old.capabilities
    old.login(ALICE, PASSWORD)
    old.select("INBOX")

    server.config = deep_merge(server.config, {"tls": {"mode": "required"}})
    write_config(server.config_path, server.config)
    before = server.stderr().count("settings reloaded")
    server.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: server.stderr().count("settings reloaded") > before, timeout=10)

    new = imaplib.IMAP4("127.0.0.1", port)
    assert "LOGINDISABLED" in new.capabilities and "STARTTLS" in new.capabilities, \
        new.capabilities
    try:
        new.login(ALICE, PASSWORD)
        raise AssertionError("a plaintext LOGIN was accepted after tls.mode became required")
    except imaplib.IMAP4.error as err:
        assert "PRIVACYREQUIRED" in str(err) or "TLS" in str(err), err
    new.logout()
    # The session that began before the reload goes on with its settings.
    typ, data = old.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK" and b"before-reload" in data[0][1], data
    old.logout()
