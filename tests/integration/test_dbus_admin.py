"""The D-Bus admin service (issue 15, docs/dbus.md): `icsmail admind` on a private bus run by a
real dbus-daemon with a system-bus policy and the project's own policy file
(units/dbus/org.icsmail.Mail1.conf), driven with `busctl`. A setting changed over the bus
takes effect in a running `icsmail serve` without a restart and survives one; an invalid value
is refused with an error naming the setting; the lists change entry by entry; the bus policy
refuses a caller who is neither root nor in the admin group; `gdbus monitor` sees the Changed
signal."""

from __future__ import annotations

import json
import smtplib
import subprocess
import time

import pytest

from dbushelpers import (
    BUS_NAME, LISTS, OBJECT, SETTINGS, Admind, Bus, data, tools_missing, wait_for)
from icshelpers import ALICE, make_message

pytestmark = pytest.mark.skipif(tools_missing(),
                                reason="dbus-daemon, busctl, gdbus and runuser are needed")


@pytest.fixture
def bus():
    bus = Bus()
    yield bus
    bus.close()


@pytest.fixture
def admin(bus, make_server, bin_path):
    server = make_server(mode="serve")
    admind = Admind(bus, bin_path, server.config_path, server.tmp / "admind.stderr")
    yield bus, server
    admind.stop()


def ehlo_size(server) -> int:
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
        smtp.ehlo("client.example.org")
        return int(smtp.esmtp_features["size"])


def test_a_setting_changed_over_the_bus_applies_live_and_survives_a_restart(admin):
    bus, server = admin
    assert data(bus.call(SETTINGS, "Get", "s", "smtp.maxMessageSize")) == [
        str(10 * 1024 * 1024), "file"]
    # An open session keeps the settings it started with; new ones get the change.
    held = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
    held.ehlo("held.example.org")
    bus.call(SETTINGS, "Set", "ss", "smtp.maxMessageSize", "4000")
    wait_for(lambda: ehlo_size(server) == 4000, "the new SIZE in EHLO")
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPException) as refused:
            smtp.sendmail("sender@example.org", [ALICE],
                          make_message("too-big") + b"x" * 6000 + b"\r\n")
    assert "552" in str(refused.value) or getattr(refused.value, "smtp_code", 0) == 552
    held.sendmail("sender@example.org", [ALICE], make_message("held") + b"y" * 6000 + b"\r\n")
    held.quit()
    assert data(bus.call(SETTINGS, "Get", "s", "smtp.maxMessageSize")) == ["4000", "override"]
    overrides = json.loads(data(bus.call(SETTINGS, "GetOverrides"))[0])
    assert overrides == {"smtp": {"maxMessageSize": 4000}}
    assert json.loads((server.state_dir / "overrides.json").read_text()) == overrides

    server.stop()
    server.start()
    assert ehlo_size(server) == 4000, "the override did not survive the restart"

    assert data(bus.call(SETTINGS, "Reset", "s", "smtp.maxMessageSize")) == [True]
    wait_for(lambda: ehlo_size(server) == 10 * 1024 * 1024, "the declarative SIZE again")
    assert not (server.state_dir / "overrides.json").exists()
    assert data(bus.call(SETTINGS, "Reset", "s", "smtp.maxMessageSize")) == [False]


def test_an_invalid_value_is_refused_with_an_error_naming_the_setting(admin):
    bus, server = admin
    for name, value, error, wanted in [
        ("heloName", "mail_server!", "InvalidSetting", "heloName: "),
        ("smtp.maxMessageSize", "\"big\"", "InvalidSetting", "smtp.maxMessageSize"),
        ("smtp.colour", "1", "InvalidSetting", "colour"),
        ("stateDir", "/tmp", "InvalidSetting", "stateDir: cannot be overridden"),
        ("smtp..port", "1", "UnknownSetting", "not a setting name"),
    ]:
        result = bus.call(SETTINGS, "Set", "ss", name, value, check=False)
        assert result.returncode != 0, f"{name}={value} was accepted"
        assert wanted in result.stderr, result.stderr
        # busctl prints the error's text; its name comes from the same reply.
        raw = subprocess.run(["gdbus", "call", "--address", bus.address, "--dest", BUS_NAME,
                              "--object-path", OBJECT, "--method", f"{SETTINGS}.Set",
                              name, value], capture_output=True, text=True, timeout=30)
        assert f"org.icsmail.Mail1.Error.{error}" in raw.stderr, raw.stderr
    assert not (server.state_dir / "overrides.json").exists()
    unknown = bus.call(SETTINGS, "Get", "s", "smtp.noSuchThing", check=False)
    assert unknown.returncode != 0 and "no such setting" in unknown.stderr, unknown.stderr


def test_a_blacklist_entry_added_over_the_bus_refuses_the_client_at_once(admin):
    bus, server = admin
    assert data(bus.call(LISTS, "List", "s", "blacklist")) == [[]]
    refused = bus.call(LISTS, "Add", "ss", "blacklist", "10.0.0.1/33", check=False)
    assert refused.returncode != 0 and "lists.blacklist[0]" in refused.stderr, refused.stderr
    assert data(bus.call(LISTS, "Add", "ss", "blacklist", "127.0.0.0/8")) == [True]
    assert data(bus.call(LISTS, "Add", "ss", "blacklist", "127.0.0.0/8")) == [False]
    assert data(bus.call(LISTS, "List", "s", "blacklist")) == [["127.0.0.0/8"]]

    def refused_at_connect() -> bool:
        try:
            with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
                smtp.ehlo()
            return False
        except smtplib.SMTPConnectError as err:
            assert err.smtp_code == 554, err
            return True

    wait_for(refused_at_connect, "the blacklist to refuse 127.0.0.1")
    assert data(bus.call(LISTS, "Remove", "ss", "blacklist", "127.0.0.0/8")) == [True]
    wait_for(lambda: not refused_at_connect(), "the client to be let in again")
    assert data(bus.call(LISTS, "Remove", "ss", "blacklist", "127.0.0.0/8")) == [False]
    wrong = bus.call(LISTS, "List", "s", "greylist", check=False)
    assert wrong.returncode != 0 and "no such list" in wrong.stderr, wrong.stderr


def test_the_bus_policy_lets_only_root_and_the_admin_group_call(admin):
    bus, server = admin
    # nobody is in the admin group (nogroup here); daemon is not.
    assert data(bus.call(SETTINGS, "Get", "s", "heloName", user="nobody"))[1] == "file"
    denied = bus.call(SETTINGS, "Set", "ss", "heloName", "evil.example", user="daemon",
                      check=False)
    assert denied.returncode != 0 and "denied" in denied.stderr.lower(), denied.stderr
    denied = bus.call(SETTINGS, "Get", "s", "heloName", user="daemon", check=False)
    assert denied.returncode != 0 and "denied" in denied.stderr.lower(), denied.stderr
    # Anyone may introspect (the XML; busctl's table also reads properties, which is refused).
    introspected = bus.busctl("introspect", "--xml-interface", BUS_NAME, OBJECT, user="daemon")
    assert f'<interface name="{SETTINGS}">' in introspected.stdout
    assert '<method name="Set">' in introspected.stdout
    refused = bus.busctl("get-property", BUS_NAME, OBJECT, "org.icsmail.Mail1.Statistics",
                         "MessagesReceived", user="daemon", check=False)
    assert refused.returncode != 0 and "denied" in refused.stderr.lower(), refused.stderr
    assert not (server.state_dir / "overrides.json").exists()


def test_changes_are_signalled(admin):
    bus, _ = admin
    monitor = subprocess.Popen(["gdbus", "monitor", "--address", bus.address, "--dest",
                                BUS_NAME], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        time.sleep(1.0)  # gdbus subscribes before it prints anything
        bus.call(SETTINGS, "Set", "ss", "queue.maxLifetime", "2880")
        bus.call(LISTS, "Add", "ss", "whitelist", "192.0.2.0/24")
        time.sleep(1.0)
    finally:
        monitor.terminate()
        out, _ = monitor.communicate(timeout=10)
    assert "org.icsmail.Mail1.Settings.Changed ('queue.maxLifetime',)" in out, out
    assert "org.icsmail.Mail1.Settings.Changed ('lists.whitelist',)" in out, out


# ------------------------------------------------------------------------------ the queue
QUEUE = "org.icsmail.Mail1.Queue"
PEER_IP = "127.0.0.7"


@pytest.fixture
def queue_admin(bus, make_server, bin_path, tmp_path):
    """admind and `icsmail serve` whose mail for peer.test goes to an aiosmtpd peer on
    127.0.0.7:25 (through a dnsmasq MX record); the peer starts by answering 451."""
    from icshelpers import port_is_free
    from queuepeers import Dnsmasq, Peer
    assert port_is_free(25, PEER_IP), f"port 25 on {PEER_IP} is taken: the test needs it"
    dns = Dnsmasq(tmp_path, {"peer.test": [(10, "mx.peer.test")]}, {"mx.peer.test": PEER_IP})
    peer = Peer(PEER_IP)
    peer.handler.mode = "tempfail"
    server = make_server(mode="serve", extra={
        "dns": {"nameservers": [dns.nameserver]},
        "queue": {"interval": 5, "delayMin": 60, "delayMax": 120, "maxLifetime": 1440}})
    admind = Admind(bus, bin_path, server.config_path, server.tmp / "admind.stderr")
    yield bus, server, peer
    admind.stop()
    peer.stop()
    dns.stop()


def queue_one(server, token: str, recipients=("bob@peer.test", "carol@peer.test")) -> str:
    """Submits a message for the peer and waits for its first (refused) attempt; its id."""
    from icshelpers import PASSWORD
    from queuepeers import envelopes
    before = set(queue_ids(server))
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as smtp:
        smtp.login(ALICE, PASSWORD)
        smtp.sendmail(ALICE, list(recipients), make_message(token, to=recipients[0]))

    def tried():
        found = [e for e in envelopes(server) if e["id"] not in before and e["attempts"] >= 1]
        return found and found[0]["id"]
    return wait_for(tried, "the first attempt")


def queue_ids(server) -> list[str]:
    from queuepeers import envelopes
    return [e["id"] for e in envelopes(server)]


def test_the_queue_is_listed_and_a_retry_delivers_at_once(queue_admin):
    bus, server, peer = queue_admin
    queued = queue_one(server, "admin-retry")
    [listed] = data(bus.call(QUEUE, "List"))[0]
    qid, sender, recipients, size, age, attempts, next_in, last_error = listed
    assert (qid, sender, sorted(recipients)) == (queued, ALICE, ["bob@peer.test", "carol@peer.test"])
    assert size > 0 and 0 <= age < 60 and attempts == 1
    assert 3000 < next_in <= 3600, "the next attempt is an hour (queue.delayMin) away"
    assert "451" in last_error, last_error
    peer.handler.mode = "accept"
    bus.call(QUEUE, "Retry", "s", queued)
    wait_for(lambda: not queue_ids(server), "the retried message to leave the queue")
    assert [r.rcpt_tos for r in peer.received] == [["bob@peer.test", "carol@peer.test"]]
    missing = bus.call(QUEUE, "Retry", "s", queued, check=False)
    assert missing.returncode != 0 and "not in the queue" in missing.stderr, missing.stderr


def test_flush_tries_every_message(queue_admin):
    bus, server, peer = queue_admin
    queue_one(server, "admin-flush-1", ("bob@peer.test",))
    queue_one(server, "admin-flush-2", ("carol@peer.test",))
    peer.handler.mode = "accept"
    assert data(bus.call(QUEUE, "Flush")) == [2]
    wait_for(lambda: not queue_ids(server), "the flushed messages to leave the queue")
    assert sorted(r.rcpt_tos[0] for r in peer.received) == ["bob@peer.test", "carol@peer.test"]


def test_bounce_returns_a_message_to_its_sender_and_delete_does_not(queue_admin):
    bus, server, peer = queue_admin
    returned = queue_one(server, "admin-bounce")
    bus.call(QUEUE, "Bounce", "s", returned)
    wait_for(lambda: returned not in queue_ids(server), "the returned message to leave the queue")

    def notification():
        found = [m for m in server.new_messages(ALICE) if b"multipart/report" in m]
        return found and found[0]
    dsn = wait_for(notification, "the notification in alice's mailbox").decode(errors="replace")
    assert "Returned to the sender by the mail administrator" in dsn
    assert "Final-Recipient: rfc822; bob@peer.test" in dsn, dsn
    assert "Action: failed" in dsn and "Status: 5.0.0" in dsn, dsn

    deleted = queue_one(server, "admin-delete")
    bus.call(QUEUE, "Delete", "s", deleted)
    assert deleted not in queue_ids(server)
    time.sleep(1.5)
    assert len([m for m in server.new_messages(ALICE) if b"multipart/report" in m]) == 1
    again = bus.call(QUEUE, "Delete", "s", deleted, check=False)
    assert again.returncode != 0 and "not in the queue" in again.stderr, again.stderr
    bad = bus.call(QUEUE, "Delete", "s", "../../etc/passwd", check=False)
    assert bad.returncode != 0 and "not in the queue" in bad.stderr, bad.stderr
    assert peer.received == []


# ------------------------------------------------------------------------------ mailboxes
MAILBOXES = "org.icsmail.Mail1.Mailboxes"
DAVE = "dave@example.test"


def imap_login(server, user: str, password: str) -> bool:
    import imaplib
    client = imaplib.IMAP4("127.0.0.1", server.config["imap"]["port"])
    try:
        client.login(user, password)
        client.logout()
        return True
    except imaplib.IMAP4.error:
        return False


def imap_special_use(server, user: str, password: str) -> dict[str, set[str]]:
    """Every folder of `user` and its attributes, from an RFC 6154 LIST (RETURN (SPECIAL-USE))."""
    import imaplib
    import re
    with imaplib.IMAP4("127.0.0.1", server.config["imap"]["port"]) as client:
        client.login(user, password)
        # imaplib has no LIST-EXTENDED form: the command is sent as RFC 6154 spells it.
        status, special = client._simple_command("LIST", '""', "*", "RETURN", "(SPECIAL-USE)")
        assert status == "OK", special
        _, special = client._untagged_response(status, special, "LIST")
    folders: dict[str, set[str]] = {}
    for line in special:
        text = line.decode() if isinstance(line, bytes) else str(line)
        found = re.match(r'\(([^)]*)\) (?:"[^"]*"|NIL) (?:"([^"]*)"|(\S+))$', text)
        assert found, text
        folders[found.group(2) or found.group(3)] = set(found.group(1).split())
    return folders


def test_mailboxes_are_created_changed_and_deleted_over_the_bus(admin):
    from icshelpers import PASSWORD
    bus, server = admin
    # The folders in force when the mailbox is made: the defaults and one more, so the test
    # sees the setting itself used, not a built-in list.
    folders = [{"name": "Drafts", "specialUse": "drafts"}, {"name": "Sent", "specialUse": "sent"},
               {"name": "Trash", "specialUse": "trash"}, {"name": "Junk", "specialUse": "junk"},
               {"name": "Archive", "specialUse": "archive"}]
    bus.call(SETTINGS, "Set", "ss", "storage.defaultFolders", json.dumps(folders))
    bus.call(MAILBOXES, "Create", "sss", DAVE, "Dave Example", "dave-secret")
    assert server.mailbox(DAVE).is_dir(), "the mailbox is made at once"
    wait_for(lambda: imap_login(server, DAVE, "dave-secret"), "dave's first login")
    listed = imap_special_use(server, DAVE, "dave-secret")
    for folder in folders:
        attribute = "\\" + folder["specialUse"].capitalize()
        assert attribute in listed.get(folder["name"], set()), (folder, listed)
    assert "INBOX" in listed, listed
    exists = bus.call(MAILBOXES, "Create", "sss", DAVE, "", "x", check=False)
    assert exists.returncode != 0 and "the account exists" in exists.stderr, exists.stderr
    foreign = bus.call(MAILBOXES, "Create", "sss", "eve@elsewhere.example", "", "x", check=False)
    assert foreign.returncode != 0 and "accounts.eve@elsewhere.example" in foreign.stderr, \
        foreign.stderr

    bus.call(MAILBOXES, "SetPassword", "ss", DAVE, "dave-new")
    wait_for(lambda: imap_login(server, DAVE, "dave-new"), "the new password")
    assert not imap_login(server, DAVE, "dave-secret")

    # An alias delivers into the mailbox; a quota refuses what does not fit.
    assert data(bus.call(MAILBOXES, "AddAlias", "ss", DAVE, "d@example.test")) == [True]
    assert data(bus.call(MAILBOXES, "AddAlias", "ss", DAVE, "d@example.test")) == [False]

    def alias_delivers() -> bool:
        try:
            with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
                smtp.sendmail("sender@example.org", ["d@example.test"],
                              make_message("to-alias", to="d@example.test"))
            return True
        except smtplib.SMTPRecipientsRefused:
            return False
    wait_for(alias_delivers, "the alias to be known")
    assert any(b"to-alias" in m for m in server.new_messages(DAVE))
    bus.call(MAILBOXES, "SetQuota", "st", DAVE, "3000")
    listed = {row[0]: row for row in data(bus.call(MAILBOXES, "List"))[0]}
    assert listed[DAVE][1:3] == ["Dave Example", 3000]
    assert listed[DAVE][3] > 0 and listed[DAVE][4] == 1, listed[DAVE]
    assert ALICE in listed

    def over_quota() -> bool:
        try:
            with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
                smtp.sendmail("sender@example.org", [DAVE],
                              make_message("big", to=DAVE) + b"z" * 4000 + b"\r\n")
            return False
        except smtplib.SMTPDataError as err:
            assert err.smtp_code == 452, err
            return True
        except smtplib.SMTPRecipientsRefused as err:
            assert err.recipients[DAVE][0] == 452, err
            return True
    wait_for(over_quota, "the quota to refuse a message too big for it")
    assert data(bus.call(MAILBOXES, "RemoveAlias", "ss", DAVE, "d@example.test")) == [True]

    # A declarative account: its password may be overridden, the account not deleted here.
    bus.call(MAILBOXES, "SetPassword", "ss", ALICE, "alice-new")
    wait_for(lambda: imap_login(server, ALICE, "alice-new"), "alice's overridden password")
    assert not imap_login(server, ALICE, PASSWORD)
    refused = bus.call(MAILBOXES, "Delete", "s", ALICE, check=False)
    assert refused.returncode != 0 and "declared in the configuration file" in refused.stderr

    bus.call(MAILBOXES, "Delete", "s", DAVE)
    wait_for(lambda: not imap_login(server, DAVE, "dave-new"), "dave's login to stop working")
    assert server.mailbox(DAVE).is_dir(), "the mail of a deleted account stays on disk"
    unknown = bus.call(MAILBOXES, "SetQuota", "st", DAVE, "1", check=False)
    assert unknown.returncode != 0 and "no such account" in unknown.stderr, unknown.stderr

    # Passwords are stored hashed and never logged.
    overrides = (server.state_dir / "overrides.json").read_text()
    assert "$argon2id$" in overrides
    logs = (server.tmp / "admind.stderr").read_text() + server.stderr()
    for secret in ("dave-secret", "dave-new", "alice-new"):
        assert secret not in overrides and secret not in logs, secret


# ------------------------------------------------------------------------------ statistics
STATISTICS = "org.icsmail.Mail1.Statistics"


def prop(bus, name: str, user: str | None = None):
    result = bus.busctl("--json=short", "get-property", BUS_NAME, OBJECT, STATISTICS, name,
                        user=user)
    return json.loads(result.stdout)["data"]


def test_statistics_count_what_the_daemons_did(admin):
    from icshelpers import PASSWORD
    bus, server = admin
    for token in ("stats-1", "stats-2"):
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
            smtp.sendmail("sender@example.org", [ALICE], make_message(token))
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("sender@example.org", ["nobody@example.test"], make_message("x"))
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.login(ALICE, PASSWORD + "-wrong")

    def counted():
        # smtplib tries every mechanism offered (PLAIN, then LOGIN): each failure counts.
        return prop(bus, "MessagesReceived") == 2 and prop(bus, "AuthFailures") >= 1
    wait_for(counted, "the daemon's counts in the statistics", timeout=15)
    assert prop(bus, "MessagesDelivered") == 2
    assert prop(bus, "MessagesQueued") == 0 and prop(bus, "QueueLength") == 0
    assert prop(bus, "Connections")["smtp"] >= 3
    refusals = prop(bus, "Refusals")
    assert any(code.startswith("550 5.1.1") for code in refusals), refusals
    assert any(code.startswith("535") for code in refusals), refusals
    since = prop(bus, "Since")
    assert since.endswith("Z") and since[:4] == time.strftime("%Y", time.gmtime()), since
    # Counts survive the daemon's restart (they live in stateDir).
    server.stop()
    server.start()
    assert prop(bus, "MessagesReceived") == 2
    bus.call(STATISTICS, "Reset")
    assert prop(bus, "MessagesReceived") == 0 and prop(bus, "Refusals") == {}
    assert prop(bus, "Since") >= since


def test_settings_as_typed_values(admin):
    bus, server = admin
    values = bus.busctl("--json=short", "get-property", BUS_NAME, OBJECT, SETTINGS, "Values")
    typed = json.loads(values.stdout)
    assert typed["type"] == "a{sv}"
    found = typed["data"]
    assert found["smtp.maxMessageSize"] == {"type": "t", "data": 10 * 1024 * 1024}
    assert found["smtp.smtputf8"] == {"type": "b", "data": True}
    assert found["heloName"] == {"type": "s", "data": "mx.example.test"}
    assert found["accounts.alice@example.test.aliases"]["type"] == "as"
    assert not any("hashedPassword" in name for name in found), "password hashes are shown"
    assert "smtp.submissionPort" not in found, "a null setting has no D-Bus value"

    # A typed Set: checked and applied like Set.
    bus.call(SETTINGS, "SetValue", "sv", "smtp.maxMessageSize", "t", "4000")
    wait_for(lambda: ehlo_size(server) == 4000, "the new SIZE in EHLO")
    assert data(bus.call(SETTINGS, "Get", "s", "smtp.maxMessageSize")) == ["4000", "override"]
    bus.call(SETTINGS, "SetValue", "sv", "lists.blacklist", "as", "2", "192.0.2.1",
             "203.0.113.0/24")
    assert data(bus.call("org.icsmail.Mail1.Lists", "List", "s", "blacklist")) == [
        ["192.0.2.1", "203.0.113.0/24"]]
    wrong = bus.call(SETTINGS, "SetValue", "sv", "smtp.maxMessageSize", "s", "big", check=False)
    assert wrong.returncode != 0 and "smtp.maxMessageSize" in wrong.stderr, wrong.stderr
    odd = bus.call(SETTINGS, "SetValue", "sv", "heloName", "o", "/x", check=False)
    assert odd.returncode != 0 and "heloName" in odd.stderr and "type o" in odd.stderr


# ------------------------------------------------------------------------------ settings by group
GROUP = "org.icsmail.Mail1.SettingsGroup"
SMTP_GROUP = f"{OBJECT}/settings/smtp"


def group_prop(bus, path: str, name: str):
    result = bus.busctl("--json=short", "get-property", BUS_NAME, path, GROUP, name)
    return json.loads(result.stdout)


def test_each_settings_group_is_an_object_with_typed_properties(admin):
    bus, server = admin
    tree = bus.busctl("tree", "--list", BUS_NAME).stdout.split()
    for group in ("smtp", "queue", "storage", "lists", "spam", "accounts"):
        assert f"{OBJECT}/settings/{group}" in tree, tree
    xml = bus.busctl("introspect", "--xml-interface", BUS_NAME, SMTP_GROUP).stdout
    assert f'<interface name="{GROUP}">' in xml, xml
    assert '<property name="maxMessageSize" type="t" access="readwrite">' in xml, xml
    assert '<property name="smtputf8" type="b" access="readwrite">' in xml, xml
    assert 'value="smtp.maxMessageSize"' in xml, xml
    storage = bus.busctl("introspect", "--xml-interface", BUS_NAME,
                         f"{OBJECT}/settings/storage").stdout
    assert '<property name="path" type="s" access="read">' in storage, storage
    assert group_prop(bus, SMTP_GROUP, "maxMessageSize") == {
        "type": "t", "data": 10 * 1024 * 1024}
    assert group_prop(bus, f"{OBJECT}/settings", "heloName") == {
        "type": "s", "data": "mx.example.test"}
    accounts = group_prop(bus, f"{OBJECT}/settings/accounts", "accounts")
    assert accounts["type"] == "a{sv}" and ALICE in accounts["data"], accounts
    assert "hashedPassword" not in json.dumps(accounts), "a password hash is shown"

    # Properties.Set: the same check, the same error text and name as Settings.Set.
    bus.busctl("set-property", BUS_NAME, SMTP_GROUP, GROUP, "maxMessageSize", "t", "4000")
    wait_for(lambda: ehlo_size(server) == 4000, "the new SIZE in EHLO")
    assert data(bus.call(SETTINGS, "Get", "s", "smtp.maxMessageSize")) == ["4000", "override"]
    assert group_prop(bus, SMTP_GROUP, "maxMessageSize")["data"] == 4000
    wrong = bus.busctl("set-property", BUS_NAME, SMTP_GROUP, GROUP, "maxMessageSize", "s",
                       "big", check=False)
    via_set = bus.call(SETTINGS, "Set", "ss", "smtp.maxMessageSize", '"big"', check=False)
    assert wrong.returncode != 0 and "smtp.maxMessageSize" in wrong.stderr, wrong.stderr
    # busctl's own prefix differs ("Failed to set property …:" / "Call failed:"), the error text not.
    assert wrong.stderr.split("SettingsGroup: ", 1)[1] == via_set.stderr.split("failed: ", 1)[1]
    raw = subprocess.run(["gdbus", "call", "--address", bus.address, "--dest", BUS_NAME,
                          "--object-path", SMTP_GROUP, "--method",
                          "org.freedesktop.DBus.Properties.Set", GROUP, "maxMessageSize",
                          "<'big'>"], capture_output=True, text=True, timeout=30)
    assert "org.icsmail.Mail1.Error.InvalidSetting" in raw.stderr, raw.stderr
    path = bus.busctl("set-property", BUS_NAME, f"{OBJECT}/settings/storage", GROUP, "path",
                      "s", "/elsewhere", check=False)
    assert path.returncode != 0 and "storage.path" in path.stderr, path.stderr
    denied = bus.busctl("set-property", BUS_NAME, SMTP_GROUP, GROUP, "maxMessageSize", "t",
                        "5000", user="daemon", check=False)
    assert denied.returncode != 0 and "denied" in denied.stderr.lower(), denied.stderr
    assert data(bus.call(SETTINGS, "Get", "s", "smtp.maxMessageSize")) == ["4000", "override"]


def test_setting_changes_send_properties_changed(admin):
    bus, server = admin
    monitor = subprocess.Popen(["gdbus", "monitor", "--address", bus.address, "--dest",
                                BUS_NAME], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        time.sleep(1.0)  # gdbus subscribes before it prints anything
        bus.call(SETTINGS, "Set", "ss", "queue.maxLifetime", "2880")
        bus.busctl("set-property", BUS_NAME, SMTP_GROUP, GROUP, "maxMessageSize", "t", "4000")
        bus.call(SETTINGS, "Reset", "s", "queue.maxLifetime")
        # A change of the override file underneath the service is signalled too.
        overrides = server.state_dir / "overrides.json"
        layer = json.loads(overrides.read_text())
        layer["heloName"] = "underneath.example.test"
        overrides.write_text(json.dumps(layer))
        time.sleep(2.5)
    finally:
        monitor.terminate()
        out, _ = monitor.communicate(timeout=10)
    changed = [line for line in out.splitlines()
               if "org.freedesktop.DBus.Properties.PropertiesChanged" in line]
    queue = [line for line in changed if line.startswith(f"{OBJECT}/settings/queue:")]
    assert any("'maxLifetime': <uint64 2880>" in line for line in queue), out
    assert any("'maxLifetime': <uint64" in line and "2880" not in line for line in queue), \
        "the Reset is not signalled: " + out
    assert any(line.startswith(f"{SMTP_GROUP}:") and "'maxMessageSize': <uint64 4000>" in line
               for line in changed), out
    assert any(line.startswith(f"{OBJECT}/settings:")
               and "'heloName': <'underneath.example.test'>" in line for line in changed), out
    assert any(line.startswith(f"{OBJECT}:") and "'org.icsmail.Mail1.Settings'" in line
               and "['Values']" in line for line in changed), out
