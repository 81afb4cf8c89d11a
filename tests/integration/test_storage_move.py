"""Moving the mail storage while mail flows (issue 15, docs/storage.md "Moving the store",
docs/dbus.md "Storage" and "Tasks"): `Storage.Move` over a real dbus-daemon with busctl, a
running `icsmail serve` taking SMTP deliveries the whole time (a ledger of every 250), an IMAP
session (imaplib) reading and flagging through the move, and `icsmail storage-move` for a
changed `storage.path`."""

from __future__ import annotations

import imaplib
import json
import os
import random
import re
import signal
import smtplib
import subprocess
import threading
import time
from pathlib import Path

import pytest

from dbushelpers import BUS_NAME, OBJECT, SETTINGS, Admind, Bus, data, tools_missing, wait_for
from icshelpers import ALICE, PASSWORD, make_message

STORAGE = "org.icsmail.Mail1.Storage"
TASK = "org.icsmail.Mail1.Task"
SEEDED = 10_000

pytestmark = pytest.mark.skipif(tools_missing(),
                                reason="dbus-daemon, busctl, gdbus and runuser are needed")


@pytest.fixture
def admin(make_server, bin_path):
    bus = Bus()
    server = make_server(mode="serve")
    admind = Admind(bus, bin_path, server.config_path, server.tmp / "admind.stderr")
    yield bus, server
    admind.stop()
    bus.close()


def seed_inbox(mailbox: Path, count: int, size: int = 8192) -> None:
    """`count` messages written into the INBOX's new/ as a Maildir tool would (a migrated
    mailbox), each with its own Subject `seed-<n>`."""
    for sub in ("cur", "new", "tmp"):
        (mailbox / sub).mkdir(parents=True, exist_ok=True)
    new = mailbox / "new"
    body = ("x" * 76 + "\n") * (size // 77)
    now = int(time.time()) - 3600
    for n in range(count):
        text = (f"From: seeder@example.org\nTo: {ALICE}\nSubject: seed-{n}\n"
                f"Message-ID: <seed-{n}@example.org>\n\n{body}")
        raw = text.encode()
        crlf_size = len(raw) + raw.count(b"\n")
        name = f"{now + n // 1000}.M{n % 1000:06d}P1Q{n}.seed,S={len(raw)},W={crlf_size}"
        (new / name).write_bytes(raw)


def subjects_in(mailbox: Path) -> list[str]:
    """The Subject of every message file of the INBOX (cur/ and new/)."""
    found = []
    for sub in ("cur", "new"):
        for path in (mailbox / sub).iterdir():
            with open(path, "rb") as message:
                head = message.read(4096)
            match = re.search(rb"^Subject: (.*)$", head, re.MULTILINE)
            assert match, f"no Subject in {path}"
            # seeds: "seed-<n>"; the ledger's: "test ledger-<n>" (make_message)
            found.append(match.group(1).decode().split()[-1])
    return found


class Ledger(threading.Thread):
    """Sends numbered messages over SMTP for as long as it runs; a 250 is written down, a
    451 (the move's pause) is answered by sending the same message again, as an MTA would."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port = port
        self.acked: list[int] = []
        self.deferred = 0
        self.errors: list[str] = []
        self.stopping = threading.Event()

    def run(self):
        n = 0
        smtp = None
        try:
            while not self.stopping.is_set():
                if smtp is None:
                    smtp = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
                    smtp.ehlo("ledger.example.org")
                try:
                    smtp.sendmail("ledger@example.org", [ALICE], make_message(f"ledger-{n}"))
                    self.acked.append(n)
                    n += 1
                except (smtplib.SMTPDataError, smtplib.SMTPServerDisconnected) as refused:
                    code = getattr(refused, "smtp_code", None)
                    if code not in (451, 421, None):
                        self.errors.append(f"{n}: {refused}")
                        return
                    # Temporary: after too many in one session the server closes it (421,
                    # smtp.limits.maxErrors); an MTA connects again later.
                    self.deferred += 1
                    if code != 451:
                        smtp.close()
                        smtp = None
                    time.sleep(0.05)
            smtp.quit()
        except Exception as exc:  # noqa: BLE001 - any failure is the test's finding
            self.errors.append(f"{n}: {exc!r}")


class Reader(threading.Thread):
    """One IMAP session opened before the move: NOOPs, FETCHes and flags seed messages the
    whole time, noting which it flagged."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.imap = imaplib.IMAP4("127.0.0.1", port, timeout=30)
        self.imap.login(ALICE, PASSWORD)
        typ, count = self.imap.select("INBOX")
        assert typ == "OK"
        self.first_count = int(count[0])
        self.flagged: set[int] = set()
        self.appended: list[str] = []
        self.copied = 0
        self.commands = 0
        self.errors: list[str] = []
        self.stopping = threading.Event()

    def run(self):
        rng = random.Random(15)
        try:
            while not self.stopping.is_set():
                uid = rng.randrange(1, SEEDED + 1)
                typ, _ = self.imap.uid("STORE", str(uid), "+FLAGS", r"(\Flagged)")
                assert typ == "OK", (uid, typ)
                self.flagged.add(uid)
                typ, fetched = self.imap.uid("FETCH", str(uid), "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                assert typ == "OK" and b"seed-" in fetched[0][1], fetched
                typ, _ = self.imap.noop()
                assert typ == "OK"
                # Writes that place files: an APPEND, and a COPY to Trash.
                token = f"append-{len(self.appended)}"
                typ, answer = self.imap.append("INBOX", None, None,
                                               make_message(token).replace(
                                                   b"Subject: test ", b"Subject: "))
                if typ == "OK":
                    self.appended.append(token)
                else:  # an upload spanning the switch may be refused: the client sends it again
                    assert typ == "NO", (typ, answer)
                typ, _ = self.imap.uid("COPY", str(uid), "Trash")
                assert typ == "OK", typ
                self.copied += 1
                self.commands += 5
        except Exception as exc:  # noqa: BLE001
            self.errors.append(repr(exc))


def task_property(bus: Bus, task: str, name: str):
    result = bus.busctl("--json=short", "get-property", BUS_NAME, task, TASK, name)
    return json.loads(result.stdout)["data"]


def wait_task(bus: Bus, task: str, timeout: float = 300) -> list[int]:
    """Polls the task until it ends; the Progress values seen, in order."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        progress = task_property(bus, task, "Progress")
        if not seen or seen[-1] != progress:
            seen.append(progress)
        state = task_property(bus, task, "State")
        if state != "running":
            assert state == "done", (state, task_property(bus, task, "Error"))
            seen.append(task_property(bus, task, "Progress"))
            return seen
        assert time.monotonic() < deadline, f"the move did not finish: {seen}"
        time.sleep(0.02)


def test_a_store_of_10000_messages_moves_while_mail_arrives_and_imap_works(admin):
    bus, server = admin
    old_inbox = server.mailbox(ALICE)
    seed_inbox(old_inbox, SEEDED)
    reader = Reader(server.config["imap"]["port"])
    assert reader.first_count == SEEDED
    ledger = Ledger(server.port)
    ledger.start()
    reader.start()
    wait_for(lambda: len(ledger.acked) >= 20, "the first deliveries")

    target = server.tmp / "new-mail"
    task = data(bus.call(STORAGE, "Move", "s", str(target)))[0]
    assert task.startswith(f"{OBJECT}/tasks/")
    assert task in data(bus.call("org.icsmail.Mail1.Tasks", "List"))[0]
    progress = wait_task(bus, task)
    # Mail and IMAP go on after the switch, on the new tree.
    acked_at_switch = len(ledger.acked)
    wait_for(lambda: len(ledger.acked) >= acked_at_switch + 20, "deliveries after the move")
    ledger.stopping.set()
    reader.stopping.set()
    ledger.join(30)
    reader.join(30)
    assert not ledger.errors, ledger.errors
    assert not reader.errors, reader.errors
    print(f"progress seen: {progress}; acked {len(ledger.acked)}, deferred {ledger.deferred}, "
          f"IMAP commands {reader.commands}")

    assert progress == sorted(progress), f"progress went back: {progress}"
    assert progress[-1] == 100
    assert len([p for p in progress if 0 < p < 100]) >= 2, f"no progress seen rising: {progress}"
    assert task_property(bus, task, "BytesDone") >= SEEDED * 8000
    assert task_property(bus, task, "Error") == ""

    # Every message present exactly once in the new tree: the seeds and every 250.
    new_inbox = target / old_inbox.relative_to(server.mail_root)
    subjects = subjects_in(new_inbox)
    expected = ([f"seed-{n}" for n in range(SEEDED)] + [f"ledger-{n}" for n in ledger.acked]
                + reader.appended)
    assert sorted(subjects) == sorted(expected), (
        f"{len(subjects)} messages, {len(expected)} expected; "
        f"missing {sorted(set(expected) - set(subjects))[:10]}, "
        f"twice {[s for s in set(subjects) if subjects.count(s) > 1][:10]}")

    # The session that lived through the move sees them all, and its flags survived.
    reader.imap.noop()
    typ, found = reader.imap.uid("SEARCH", "ALL")
    assert typ == "OK" and len(found[0].split()) == len(expected)
    typ, flagged = reader.imap.uid("SEARCH", "FLAGGED")
    seeds_flagged = {int(uid) for uid in flagged[0].split() if int(uid) <= SEEDED}
    assert seeds_flagged == reader.flagged
    typ, count = reader.imap.select("Trash", readonly=True)
    assert (typ, int(count[0])) == ("OK", reader.copied), "a COPY answered OK is missing"
    assert reader.copied > 0 and reader.appended
    reader.imap.logout()

    # Where the store is now, and what the settings say.
    in_force = bus.busctl("--json=short", "get-property", BUS_NAME, OBJECT, STORAGE, "Path")
    assert json.loads(in_force.stdout)["data"] == str(target)
    value, layer = data(bus.call(SETTINGS, "Get", "s", "storage.path"))
    assert (json.loads(value), layer) == (str(target), "override")
    assert os.readlink(server.state_dir / "mail-root") == str(target)
    assert (server.mail_root / ".ics-moved-to").read_text().strip() == str(target)
    assert not (target / ".ics-move-incomplete").exists()
    # The old tree is kept: the seeds are still there for the administrator to remove.
    assert len(list((old_inbox / "cur").iterdir())) + len(list((old_inbox / "new").iterdir())) \
        >= SEEDED

    # A restart keeps the store where it moved.
    server.stop()
    server.start()
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
        smtp.sendmail("after@example.org", [ALICE], make_message("after-restart"))
    assert any(b"after-restart" in p.read_bytes() for p in (new_inbox / "new").iterdir())


def test_a_target_that_holds_mail_is_switched_to_without_a_copy(admin):
    bus, server = admin
    seed_inbox(server.mailbox(ALICE), 3)
    target = server.tmp / "prepared"
    seed_inbox(target / server.mailbox(ALICE).relative_to(server.mail_root), 1)
    # A session on the old tree: after the switch its UIDs would name the other tree's mail.
    before = imaplib.IMAP4("127.0.0.1", server.config["imap"]["port"], timeout=10)
    before.login(ALICE, PASSWORD)
    assert int(before.select("INBOX")[1][0]) == 3
    task = data(bus.call(STORAGE, "Move", "s", str(target)))[0]
    wait_task(bus, task, timeout=60)
    assert task_property(bus, task, "BytesDone") == 0, "nothing is copied"
    # The UIDVALIDITY changed under it: its STORE changes nothing and the server ends it.
    with pytest.raises(imaplib.IMAP4.abort, match="UIDVALIDITY"):
        before.uid("STORE", "1:*", "+FLAGS", r"(\Deleted)")
        before.noop()
    imap = imaplib.IMAP4("127.0.0.1", server.config["imap"]["port"], timeout=10)
    imap.login(ALICE, PASSWORD)
    typ, count = imap.select("INBOX")
    assert (typ, int(count[0])) == ("OK", 1), "the prepared tree's one message"
    typ, deleted = imap.search(None, "DELETED")
    assert (typ, deleted) == ("OK", [b""]), "a stale session flagged the other tree's mail"
    imap.logout()
    assert os.readlink(server.state_dir / "mail-root") == str(target)


def test_bad_targets_and_setting_storage_path_directly_are_refused(admin):
    bus, server = admin
    relative = bus.call(STORAGE, "Move", "s", "relative/path", check=False)
    assert relative.returncode != 0 and "must be absolute" in relative.stderr
    inside = data(bus.call(STORAGE, "Move", "s", str(server.mail_root / "inner")))[0]
    deadline = time.monotonic() + 30
    while task_property(bus, inside, "State") == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert task_property(bus, inside, "State") == "failed"
    assert "inside" in task_property(bus, inside, "Error")
    direct = bus.call(SETTINGS, "Set", "ss", "storage.path", str(server.tmp / "x"), check=False)
    assert direct.returncode != 0 and "Storage.Move" in direct.stderr
    assert os.readlink(server.state_dir / "mail-root") == str(server.mail_root)


def test_a_changed_storage_path_is_moved_by_icsmail_storage_move(make_server, bin_path):
    server = make_server(mode="serve")
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
        smtp.sendmail("before@example.org", [ALICE], make_message("before-move"))
    target = server.tmp / "declared"
    config = json.loads(server.config_path.read_text())
    config["storage"]["path"] = str(target)
    server.config_path.write_text(json.dumps(config))
    server.proc.send_signal(signal.SIGHUP)
    # Until the move, mail stays where it is.
    wait_for(lambda: "another tree than the store in force" in server.stderr(), "the warning")
    moved = subprocess.run([bin_path, "storage-move", "--config", str(server.config_path)],
                           capture_output=True, text=True, timeout=120)
    assert moved.returncode == 0, moved.stderr
    assert "switched to the new tree" in moved.stderr
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
        smtp.sendmail("after@example.org", [ALICE], make_message("after-move"))
    inbox = target / server.mailbox(ALICE).relative_to(server.mail_root)
    texts = [p.read_bytes() for sub in ("new", "cur") for p in (inbox / sub).iterdir()]
    assert sum(b"before-move" in t for t in texts) == 1
    assert sum(b"after-move" in t for t in texts) == 1
    again = subprocess.run([bin_path, "storage-move", "--config", str(server.config_path)],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "AlreadyInForce" in again.stderr


def test_a_cancelled_move_keeps_the_store_and_a_second_move_resumes(admin):
    bus, server = admin
    inbox = server.mailbox(ALICE)
    seed_inbox(inbox, SEEDED)
    target = server.tmp / "resumed"
    monitor = subprocess.Popen(["gdbus", "monitor", "--address", bus.address, "--dest",
                                BUS_NAME], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        time.sleep(1.0)  # gdbus subscribes before it prints anything
        task = data(bus.call(STORAGE, "Move", "s", str(target)))[0]
        # At once: a release build copies these 85 MB in about a second.
        assert data(bus.call(TASK, "Cancel", path=task)) == [True]
        wait_for(lambda: task_property(bus, task, "State") != "running", "the cancel")
        time.sleep(1.0)
    finally:
        monitor.terminate()
        out, _ = monitor.communicate(timeout=10)
    assert task_property(bus, task, "State") == "cancelled"
    assert "cancelled" in task_property(bus, task, "Error")
    assert f"{task}: org.icsmail.Mail1.Task.Finished ('cancelled'," in out, out
    assert "'State': <'cancelled'>" in out, "no PropertiesChanged of the state"
    assert data(bus.call(TASK, "Cancel", path=task)) == [False]
    assert os.readlink(server.state_dir / "mail-root") == str(server.mail_root)
    assert (target / ".ics-move-incomplete").exists()

    # Mail still goes to the old tree; a second move over the partial copy completes it.
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
        smtp.sendmail("between@example.org", [ALICE], make_message("between-moves"))
    again = data(bus.call(STORAGE, "Move", "s", str(target)))[0]
    assert again != task
    wait_task(bus, again)
    moved = target / inbox.relative_to(server.mail_root)
    subjects = subjects_in(moved)
    assert sorted(subjects) == sorted([f"seed-{n}" for n in range(SEEDED)] + ["between-moves"])
    assert os.readlink(server.state_dir / "mail-root") == str(target)


def pause_in_force(state_dir: Path) -> bool:
    """Whether a mover holds `storage.pause` exclusively (a shared probe is refused), as the
    daemons themselves find out (src/store/gate.rs)."""
    import fcntl
    with open(state_dir / "storage.pause", "a+b") as pause:
        try:
            fcntl.flock(pause, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(pause, fcntl.LOCK_UN)
        return False


def smtp_reply_to(server, token: str) -> int:
    """The first reply that is not 250 for one message to alice (250 when it was taken)."""
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as smtp:
        smtp.ehlo("client.example.org")
        for code, _ in (smtp.mail("sender@example.org"), smtp.rcpt(ALICE)):
            if code != 250:
                return code
        code, _ = smtp.data(make_message(token))
        return code


def test_the_final_pass_and_the_switch_run_under_a_delivery_pause_answered_451(admin):
    """The test holds the gate's shared lock as a write in flight would: the mover, at its final
    pass, takes the pause and waits for that write, so the pause is in force for as long as the
    test wants to look at it (not a race against a short window)."""
    import fcntl
    bus, server = admin
    seed_inbox(server.mailbox(ALICE), 200)
    old_root = os.readlink(server.state_dir / "mail-root")
    assert not pause_in_force(server.state_dir)
    assert smtp_reply_to(server, "before-move") == 250
    target = server.tmp / "paused-move"
    with open(server.state_dir / "storage.gate", "a+b") as gate:
        fcntl.flock(gate, fcntl.LOCK_SH)  # a write in flight
        task = data(bus.call(STORAGE, "Move", "s", str(target)))[0]
        wait_for(lambda: pause_in_force(server.state_dir), "the move's pause", timeout=60)
        # Paused, and not yet switched: the final pass waits for the write in flight.
        assert task_property(bus, task, "State") == "running"
        assert os.readlink(server.state_dir / "mail-root") == old_root
        assert smtp_reply_to(server, "during-pause") == 451, "a delivery during the pause"
        assert pause_in_force(server.state_dir), "the pause ended before the write did"
        fcntl.flock(gate, fcntl.LOCK_UN)
    wait_task(bus, task, timeout=60)
    assert os.readlink(server.state_dir / "mail-root") == str(target)
    assert not pause_in_force(server.state_dir), "the pause outlived the move"
    assert smtp_reply_to(server, "after-move") == 250
    subjects = subjects_in(target / server.mailbox(ALICE).relative_to(server.mail_root))
    assert "during-pause" not in subjects
    assert sorted(s for s in subjects if not s.startswith("seed-")) == [
        "after-move", "before-move"]
    log = (server.tmp / "admind.stderr").read_text()
    assert "storage move: switched to the new tree" in log and "pause_ms=" in log, log
