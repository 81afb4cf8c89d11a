"""Durability under `kill -9`: a `250` after the data means the message is on disk, once, and
no partial message is ever visible in new/ or cur/."""

from __future__ import annotations

import random
import re
import smtplib
import threading
import time
import uuid
from collections import Counter

from icshelpers import ALICE, SMTPClient, crlf, list_files, make_message, split_stored

CLIENTS = 20
MESSAGES_PER_CLIENT = 200
TOKEN_RE = re.compile(rb"crash-[0-9]+-[0-9]+-[0-9a-f]{12}")


def crash_message(tok: str, rng: random.Random) -> bytes:
    filler = "\n".join(f"{i:05d} " + "z" * 70 for i in range(rng.randrange(50, 600)))
    text = (f"From: <sender@example.org>\nTo: <alice@example.test>\nSubject: crash {tok}\n"
            f"Message-ID: <{tok}@client.example.org>\n\nBODY-START {tok}\n{filler}\n"
            f".dot line\nTRAILER {tok}\n")
    return crlf(text)


def test_kill9_keeps_acknowledged_messages(make_server):
    server = make_server()
    acked: list[str] = []
    attempted: list[str] = []
    sent: dict[str, bytes] = {}
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[str] = []
    run = uuid.uuid4().hex[:12]

    def client(number: int) -> None:
        rng = random.Random(number)
        try:
            with smtplib.SMTP("127.0.0.1", server.port, timeout=15) as smtp:
                for i in range(MESSAGES_PER_CLIENT):
                    if stop.is_set():
                        return
                    tok = f"crash-{number}-{i}-{run}"
                    message = crash_message(tok, rng)
                    with lock:
                        attempted.append(tok)
                        sent[tok] = message
                    smtp.sendmail("sender@example.org", [ALICE], message)
                    with lock:
                        acked.append(tok)
        except (smtplib.SMTPException, OSError) as exc:
            if not stop.is_set():
                errors.append(f"client {number}: {exc!r}")

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    # Let the clients get going, then kill the server in the middle of their traffic.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with lock:
            if len(acked) >= 10 * CLIENTS:
                break
        if not server.alive():
            break
        time.sleep(0.02)
    assert errors == [], f"clients failed before the kill: {errors[:5]}"
    assert server.alive(), "server died before the kill"
    with lock:
        assert len(acked) >= 10 * CLIENTS, f"only {len(acked)} messages acknowledged in 20 s"
    server.kill9()
    stop.set()
    for thread in threads:
        thread.join(30)
    with lock:
        acked_now = list(acked)
        attempted_now = list(attempted)

    new_files = server.new_files(ALICE)
    assert server.cur_files(ALICE) == [], "files appeared in cur/"
    per_token: Counter = Counter()
    incomplete = []
    for path in new_files:
        data = path.read_bytes()
        tokens = set(TOKEN_RE.findall(data))
        if len(tokens) != 1:
            incomplete.append((path.name, f"{len(tokens)} tokens"))
            continue
        tok = tokens.pop().decode()
        per_token[tok] += 1
        if tok in sent:
            split_stored(data, sent[tok])
        if not data.endswith(f"TRAILER {tok}\n".encode()):
            incomplete.append((path.name, "no trailer"))
        if not data.startswith(b"Return-Path: <sender@example.org>\n"):
            incomplete.append((path.name, "no Return-Path"))
    assert incomplete == [], f"incomplete messages in new/: {incomplete[:10]}"
    missing = [t for t in acked_now if per_token[t] == 0]
    assert missing == [], f"{len(missing)} acknowledged messages lost, e.g. {missing[:5]}"
    duplicated = {t: n for t, n in per_token.items() if n > 1}
    assert duplicated == {}, f"messages stored more than once: {list(duplicated.items())[:5]}"
    unknown = set(per_token) - set(attempted_now)
    assert unknown == set(), f"stored messages nobody sent: {sorted(unknown)[:5]}"
    print(f"{len(acked_now)} acknowledged, {len(new_files)} files in new/, "
          f"{len(attempted_now)} attempted")

    # The store is still usable: a restarted server delivers into the same mailbox.
    server.expect_exit = False
    server.start()
    message = make_message("after-restart-" + run)
    with SMTPClient(server.port) as c:
        c.ehlo()
        c.transaction("sender@example.org", [ALICE], message)
    after = [p for p in list_files(server.new_dir(ALICE)) if p not in new_files]
    assert len(after) == 1
    split_stored(after[0].read_bytes(), message)
