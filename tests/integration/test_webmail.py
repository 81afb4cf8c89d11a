"""The webmail (issue 18): Debian's Roundcube against `icsmail serve`, driven in Debian's
headless Chromium by Playwright, step by step as a user would: log in with the short name,
read a message delivered over SMTP, send one with an attachment and see it arrive over IMAP,
move a message to the trash, the special folders of storage.defaultFolders, an attachment over
smtp.maxMessageSize refused by Roundcube, LDAP autocomplete, and the rate limit that exempts
the webmail (127.0.0.1) but not another loopback address.

One ics-mail, one Roundcube (`php -S`) and one browser for the whole module; the tests run in
order and share the logged-in page. A screenshot of each step goes to tests/artifacts/."""

from __future__ import annotations

import email
import email.policy
import imaplib
import os
import re
import smtplib
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from icshelpers import (ALICE, BOB, DOMAIN, PASSWORD, REPO_ROOT, free_port, make_message,
                        wait_for_port)
from webmailhelpers import Roundcube, max_message_size, roundcube_config

ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
ALBERT = "albert@example.test"
BASE_DN = "dc=example,dc=test"
SMTP_MAX = 1024 * 1024  # smtp.maxMessageSize: small, so the size steps stay quick
RATE_LIMIT = 3
# Not Roundcube's defaults (Drafts, Sent, Junk, Trash), one with a non-ASCII name: Roundcube
# must find them from the settings (modified UTF-7 on the wire).
FOLDERS = [
    {"name": "Entwürfe", "specialUse": "drafts", "imap": "Entw&APw-rfe"},
    {"name": "Gesendet", "specialUse": "sent", "imap": "Gesendet"},
    {"name": "Spam", "specialUse": "junk", "imap": "Spam"},
    {"name": "Papierkorb", "specialUse": "trash", "imap": "Papierkorb"},
]
TIMEOUT = 20_000  # ms, for each browser wait

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")  # Debian's chromium only
expect.set_options(timeout=TIMEOUT)


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # not while Roundcube's "Loading..." notice is up
    expect(page.locator("#messagestack div.loading")).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / f"webmail-{name}.png"))


def sha512_crypt(password: str) -> str:
    """A SHA-512-crypt hash (openssl passwd -6), which ics-mail takes as well as argon2id."""
    return subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password, text=True,
                          capture_output=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def mail(make_module_server):
    # Roundcube logs in to IMAP on every request it serves; argon2id in a debug build takes a
    # second or more per login, SHA-512-crypt milliseconds, so the steps (and the five sends
    # within a minute) don't wait on the hash
    fast = sha512_crypt(PASSWORD)
    extra = {
        "defaultAuthDomain": DOMAIN,
        "smtp": {"submissionPort": free_port(), "maxMessageSize": SMTP_MAX},
        "rateLimit": {"enable": True, "messagesPerMinute": RATE_LIMIT},
        "storage": {"defaultFolders": [{"name": f["name"], "specialUse": f["specialUse"]}
                                       for f in FOLDERS]},
        # the book is not published to mail clients: only the webmail (anonymous, from this
        # host) reads it
        "addressBook": {"enable": True, "port": free_port(), "ldapsPort": free_port(),
                        "baseDn": BASE_DN, "publishToClients": False},
        "accounts": {
            ALICE: {"displayName": "Alice Liddell", "hashedPassword": fast},
            BOB: {"displayName": "Bob Builder", "hashedPassword": fast},
            ALBERT: {"displayName": "Albert Einstein", "hashedPassword": fast},
        },
    }
    server = make_module_server(extra=extra, mode="serve", name="webmail")
    for port in (server.config["smtp"]["submissionPort"], server.config["imap"]["port"],
                 server.config["addressBook"]["port"]):
        wait_for_port(port, server.proc)
    return server


@pytest.fixture(scope="module")
def roundcube(mail, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("roundcube")
    config = mail.config
    php = roundcube_config(config, config["imap"]["port"], config["smtp"]["submissionPort"],
                           workdir=workdir, ldap_port=config["addressBook"]["port"],
                           base_dns=[BASE_DN])
    rc = Roundcube(workdir, free_port())
    try:
        rc.start(php, upload_limit=SMTP_MAX)
        yield rc
    finally:
        rc.stop()
        for name in ("errors.log", "php-errors.log", "sendmail.log", "smtp.log"):
            print(f"--- roundcube {name} ---\n{rc.roundcube_log(name)}")


@pytest.fixture(scope="module")
def page(roundcube):
    with sync_playwright() as pw:
        # as root Chromium needs --no-sandbox; Debian's chromium, never a downloaded browser
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 800},
                                      locale="en-US", timezone_id="UTC")
        context.set_default_timeout(TIMEOUT)
        page = context.new_page()
        page.goto(roundcube.url)
        yield page
        browser.close()


# --------------------------------------------------------------------------------------------
# helpers


# What the steps hand on: the IMAP port (set by the first), the subject read in step 3 (moved
# to the trash in step 5).
STATE: dict = {}


def imap(user: str = ALICE) -> imaplib.IMAP4:
    conn = imaplib.IMAP4("127.0.0.1", STATE["imap_port"], timeout=20)
    conn.login(user, PASSWORD)
    return conn


def messages(user: str, folder: str, subject: str) -> list[email.message.EmailMessage]:
    """The messages of `folder` (its IMAP name) whose Subject contains `subject`."""
    conn = imap(user)
    try:
        typ, _ = conn.select(folder, readonly=True)
        assert typ == "OK", f"SELECT {folder}"
        typ, data = conn.uid("SEARCH", "SUBJECT", f'"{subject}"')
        out = []
        for uid in data[0].split():
            typ, parts = conn.uid("FETCH", uid, "(BODY.PEEK[])")
            out.append(email.message_from_bytes(parts[0][1], policy=email.policy.default))
        return out
    finally:
        conn.logout()


def wait_messages(user: str, folder: str, subject: str, count: int = 1,
                  timeout: float = 20) -> list[email.message.EmailMessage]:
    deadline = time.monotonic() + timeout
    while True:
        found = messages(user, folder, subject)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def idle(page: Page) -> None:
    """Wait until Roundcube is not busy: while a request runs it ignores commands (clicks)."""
    page.wait_for_function("() => window.rcmail && !rcmail.busy", timeout=TIMEOUT)


def open_folder(page: Page, role: str) -> None:
    idle(page)
    page.locator(f"#mailboxlist li.mailbox.{role} > a").click()
    # Other classes come and go with the folder's state (`unread` while it holds unseen mail).
    expect(page.locator(f"#mailboxlist li.mailbox.{role}")).to_have_class(
        re.compile(r"\bselected\b"))


def refresh(page: Page) -> None:
    idle(page)
    page.locator("#layout-list a.refresh, a.button.refresh").first.click()


def compose(page: Page, url: str) -> None:
    page.goto(url + "?_task=mail&_action=compose")
    expect(page.locator("#composebody")).to_be_visible()


def add_recipient(page: Page, address: str) -> None:
    box = page.locator("#compose_to input[type=text]")
    box.press_sequentially(address + ",", delay=10)
    expect(page.locator("#compose_to li.recipient")).to_contain_text(address)


def attach(page: Page, path: Path) -> None:
    idle(page)
    page.set_input_files("#uploadformInput", str(path))


def attached(page: Page, name: str) -> None:
    """Wait until the upload of `name` is complete (its entry gets the server's rcmfile id;
    while it uploads Roundcube is busy and would ignore the next attachment)."""
    expect(page.locator('#attachment-list li[id^="rcmfile"]', has_text=name)).to_have_count(1)
    idle(page)


def is_send(response) -> bool:
    """The compose form's POST (its `_action=send` is a form field, not in the URL)."""
    request = response.request
    if request.method != "POST" or "_action=" in request.url:
        return False
    body = request.post_data_buffer or b""
    return b"_action=send" in body or b'name="_action"\r\n\r\nsend' in body


def send(page: Page) -> None:
    """Click Send; Roundcube's answer must be its "Message sent successfully." (it shows that
    notice only briefly before it leaves for the mail list, so the answer itself is checked)."""
    idle(page)
    with page.expect_response(is_send, timeout=TIMEOUT) as answer:
        page.locator("#compose-content a.send, .formbuttons button.send, a.button.send").locator(
            "visible=true").first.click()
    text = answer.value.text()
    assert "sent_successfully" in text and "Message sent successfully" in text, text[-2000:]
    # then Roundcube leaves the compose page for the mail list by itself
    page.wait_for_url(lambda url: "_action=compose" not in url, timeout=TIMEOUT)
    idle(page)


def random_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


# --------------------------------------------------------------------------------------------
# the steps, in order


def test_login_with_short_name(page, roundcube, mail):
    STATE["imap_port"] = mail.config["imap"]["port"]
    page.fill("#rcmloginuser", "alice")  # defaultAuthDomain: the local part alone
    page.fill("#rcmloginpwd", PASSWORD)
    shot(page, "1-login")
    page.click("#rcmloginsubmit")
    expect(page.locator("#mailboxlist li.mailbox.inbox")).to_be_visible()
    # Roundcube completed the name with username_domain = defaultAuthDomain
    expect(page.locator(".header-title.username")).to_have_text(ALICE)
    assert f"login peer=127.0.0.1 user={ALICE}" in mail.stderr()


def test_special_folders_are_those_of_the_settings(page):
    for folder in FOLDERS:
        item = page.locator(f"#mailboxlist li.mailbox.{folder['specialUse']}")
        expect(item).to_have_count(1)
        link = item.locator("> a")
        expect(link).to_have_attribute("rel", folder["imap"])  # the IMAP name (modified UTF-7)
        expect(link).to_have_text(folder["name"])
    shot(page, "2-folders")


def test_read_message_delivered_over_smtp(page, mail):
    token = uuid.uuid4().hex[:12]
    subject = f"Tea party {token}"
    with mail.client() as client:  # the MX port, from an outside sender
        client.ehlo()
        client.transaction("hatter@wonderland.example", [ALICE],
                           make_message(token, sender="hatter@wonderland.example",
                                        subject="Tea party",
                                        body="You are invited to the tea party at six.\n"))
    open_folder(page, "inbox")
    refresh(page)
    row = page.locator("#messagelist tr", has_text=subject)
    expect(row).to_have_count(1)
    row.click()
    body = page.frame_locator("#messagecontframe").locator("#messagebody")
    expect(body).to_contain_text("You are invited to the tea party at six.")
    expect(body).to_contain_text(token)
    shot(page, "3-read")
    STATE["read_subject"] = subject


def test_send_with_attachment_arrives_over_imap(page, roundcube, tmp_path):
    token = uuid.uuid4().hex[:12]
    subject = f"Quarterly report {token}"
    # nearly the largest attachment Roundcube admits (its 1.33 x size + 10 KiB within
    # max_message_size): once encoded it must still fit smtp.maxMessageSize
    size = int((max_message_size(SMTP_MAX) - 10 * 1024) / 1.33) - 2048
    report = random_file(tmp_path / "report.bin", size)
    compose(page, roundcube.url)
    add_recipient(page, BOB)
    page.fill("#compose-subject", subject)
    page.fill("#composebody", f"The report is attached.\n{token}\n")
    attach(page, report)
    attached(page, "report.bin")
    shot(page, "4-compose")
    send(page)
    shot(page, "4-sent")

    [got] = wait_messages(BOB, "INBOX", subject)
    assert got["From"].addresses[0].addr_spec == ALICE
    [part] = [p for p in got.iter_attachments()]
    assert part.get_filename() == "report.bin"
    assert part.get_content() == report.read_bytes()
    raw = got.as_bytes()
    assert size * 4 // 3 < len(raw) <= SMTP_MAX, len(raw)
    # the copy in the sent folder of the settings (sent_mbox)
    assert len(wait_messages(ALICE, "Gesendet", subject)) == 1


def test_move_to_trash(page, roundcube):
    # the message read in test_read_message_delivered_over_smtp is the one moved
    assert "read_subject" in STATE, "test_read_message_delivered_over_smtp did not get as far"
    subject = STATE["read_subject"]
    page.goto(roundcube.url + "?_task=mail&_mbox=INBOX")
    row = page.locator("#messagelist tr", has_text=subject)
    row.click()
    # the preview starts a moment after the click and keeps Roundcube busy: wait for it
    expect(page.frame_locator("#messagecontframe").locator("#messagebody")).to_contain_text(
        "tea party")
    delete = page.locator("#toolbar-menu a.delete").locator("visible=true")
    expect(delete).not_to_have_class(re.compile(r"\bdisabled\b"))  # a message is selected
    idle(page)
    delete.click()
    # Roundcube hides the row at once (and drops it later)
    expect(page.locator("#messagelist tr", has_text=subject)).to_be_hidden()
    assert wait_messages(ALICE, "Papierkorb", subject), "not in the trash folder"
    assert messages(ALICE, "INBOX", subject) == []
    open_folder(page, "trash")
    expect(page.locator("#messagelist tr", has_text=subject)).to_have_count(1)
    shot(page, "5-trash")


def test_attachment_over_max_message_size_is_refused(page, roundcube, tmp_path):
    compose(page, roundcube.url)
    # one file larger than smtp.maxMessageSize: Roundcube refuses it before uploading
    attach(page, random_file(tmp_path / "too-big.bin", SMTP_MAX + 1))
    stack = page.locator("#messagestack")
    expect(stack).to_contain_text("The uploaded file exceeds the maximum size of")
    shot(page, "6-too-big")
    expect(page.locator("#attachment-list")).not_to_contain_text("too-big.bin")
    # two files each within the per-file limit, together over it: Roundcube's server side
    # refuses the second (its own message-size check)
    half = int(max_message_size(SMTP_MAX) / 1.33 / 2) + 20_000
    attach(page, random_file(tmp_path / "first-half.bin", half))
    attached(page, "first-half.bin")
    with page.expect_response(lambda r: "_action=upload" in r.url) as answer:
        attach(page, random_file(tmp_path / "second-half.bin", half))
    assert "Maximum size of a message (994 KB) exceeded" in answer.value.text()
    idle(page)
    shot(page, "6-message-too-big")
    expect(page.locator("#attachment-list")).not_to_contain_text("second-half.bin")
    expect(page.locator("#attachment-list")).to_contain_text("first-half.bin")


def test_ldap_autocomplete_finds_a_colleague(page, roundcube):
    compose(page, roundcube.url)
    page.locator("#compose_to input[type=text]").press_sequentially("einst", delay=50)
    item = page.locator("#rcmKSearchpane li", has_text="Albert Einstein")
    expect(item).to_contain_text(f"<{ALBERT}>")
    shot(page, "7-autocomplete")
    page.keyboard.press("Enter")
    expect(page.locator("#compose_to li.recipient")).to_contain_text(ALBERT)


def test_rate_limit_exempts_the_webmail_only(page, roundcube, mail):
    token = uuid.uuid4().hex[:12]
    start = time.monotonic()
    for n in range(RATE_LIMIT + 2):
        compose(page, roundcube.url)
        add_recipient(page, BOB)
        page.fill("#compose-subject", f"Rate {n} {token}")
        page.fill("#composebody", f"message {n}\n")
        send(page)
    assert time.monotonic() - start < 60, "the five messages took more than a minute"
    assert len(wait_messages(BOB, "INBOX", f"{token}", count=RATE_LIMIT + 2)) == RATE_LIMIT + 2
    page.goto(roundcube.url + "?_task=mail&_mbox=Gesendet")
    expect(page.locator("#messagelist tr", has_text=token)).to_have_count(RATE_LIMIT + 2)
    shot(page, "8-rate-limit")

    # the same submission port and login from 127.0.0.2: limited at the fourth message
    codes = []
    with smtplib.SMTP("127.0.0.1", mail.config["smtp"]["submissionPort"], timeout=20,
                      source_address=("127.0.0.2", 0)) as smtp:
        smtp.login(ALICE, PASSWORD)
        for n in range(RATE_LIMIT + 1):
            message = make_message(f"{token}-{n}", sender=ALICE, to=BOB, subject="Direct")
            try:
                smtp.sendmail(ALICE, [BOB], message)
                codes.append(250)
            except smtplib.SMTPSenderRefused as refused:
                codes.append(refused.smtp_code)
                assert refused.smtp_error.startswith(b"4.7.1"), refused
    assert codes == [250] * RATE_LIMIT + [450]
