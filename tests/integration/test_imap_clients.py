"""Real IMAP clients: mbsync (isync) syncs an account both ways, curl fetches and lists over
IMAP (STARTTLS) and IMAPS."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from icshelpers import ALICE, PASSWORD
from imaphelpers import (append, fetch_map, make_imap, message, search_ids,  # noqa: F401
                         select_info, status_items, tool)


def mbsync_rc(target, user: str, local: Path, rc: Path) -> Path:
    rc.write_text(f"""IMAPAccount test
Host {target.host}
Port {target.port}
User {user}
Pass {PASSWORD}
SSLType STARTTLS
CertificateFile {target.cafile}

IMAPStore remote
Account test

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
""")
    return rc


def run_mbsync(rc: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([tool("mbsync"), "-V", "-c", str(rc), "-a"], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "HOME": str(rc.parent)})
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def maildir_state(local: Path) -> dict:
    """{folder/sub/basename-without-uid: flags} of every message under `local`."""
    out = {}
    for path in sorted(local.rglob("*")):
        if path.is_file() and path.parent.name in ("cur", "new"):
            name, _, flags = path.name.partition(":2,")
            out[str(path.relative_to(local))] = flags
    return out


def test_mbsync_both_ways(make_imap, tmp_path):
    target = make_imap(tls_mode="optional", implicit=False)
    raw = target.raw_login(ALICE)
    for i in range(3):
        append(raw, "INBOX", message(f"inbox {i}", body=f"inbox body {i}\n" * (i * 50 + 1)),
               flags="\\Flagged" if i == 1 else "")
    raw.ok("CREATE Work")
    for i in range(2):
        append(raw, "Work", message(f"work {i}"), flags="\\Seen")
    local = tmp_path / "local"
    local.mkdir()
    rc = mbsync_rc(target, ALICE, local, tmp_path / "mbsyncrc")
    first = run_mbsync(rc)
    state = maildir_state(local)
    inbox = {k: v for k, v in state.items() if k.startswith("INBOX/")}
    work = {k: v for k, v in state.items() if k.startswith("Work/")}
    assert len(inbox) == 3 and len(work) == 2, (state, first.stdout)
    assert sorted(inbox.values()).count("F") == 1, inbox
    assert all("S" in v for v in work.values()), work
    assert (local / "Sent").is_dir() and (local / "Trash").is_dir()
    texts = b"".join(p.read_bytes() for p in (local / "INBOX").rglob("*") if p.is_file())
    assert b"inbox body 2" in texts
    # A second run changes nothing.
    run_mbsync(rc)
    assert maildir_state(local) == state
    # Local changes go to the server: a flag, a new message, a deletion.
    seen_file = next(p for p in (local / "Work").rglob("*") if p.is_file()
                     and p.parent.name == "cur")
    inbox_files = sorted(p for p in (local / "INBOX").rglob("*") if p.is_file()
                         and p.parent.name in ("cur", "new"))
    target_file = inbox_files[0]
    base = target_file.name.split(":2,")[0]
    os.rename(target_file, local / "INBOX" / "cur" / (base + ":2,RS"))
    (local / "Work" / "new" / "1700000000.local.test").write_bytes(
        message("written locally").replace(b"\r\n", b"\n"))
    seen_file.unlink()
    run_mbsync(rc)
    raw.ok("SELECT INBOX")
    answered = search_ids(raw.ok("SEARCH ANSWERED SEEN"))
    assert len(answered) == 1, answered
    raw.ok("SELECT Work")
    subjects = b"".join(raw.ok("FETCH 1:* BODY.PEEK[HEADER.FIELDS (SUBJECT)]").lines)
    assert b"written locally" in subjects, subjects
    # The locally deleted message is \Deleted (and expunged: Expunge Both).
    assert select_info(raw.ok("SELECT Work"))["EXISTS"] == 2, subjects
    # A server-side change comes back.
    raw.ok("SELECT INBOX")
    raw.ok("STORE 3 +FLAGS (\\Draft)")
    raw.close()
    run_mbsync(rc)
    flags = maildir_state(local)
    assert sum("D" in v for k, v in flags.items() if k.startswith("INBOX/")) == 1, flags
    third = run_mbsync(rc)
    assert maildir_state(local) == flags, third.stdout


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([tool("curl"), "-sS", "--user", f"{ALICE}:{PASSWORD}", *args],
                          capture_output=True, timeout=30)


def test_curl_imap_and_imaps(make_imap):
    target = make_imap(tls_mode="optional", implicit=True)
    original = message("for curl", body="curl body\n")
    with target.raw_login(ALICE) as raw:
        r = append(raw, "INBOX", original)
        uid = r.text.split("[APPENDUID ", 1)[1].split("]")[0].split()[1]
        raw.ok("CREATE Lists")
    iface = ["--interface", target.source] if target.source else []
    base = f"imap://{target.host}:{target.port}"
    result = curl(*iface, f"{base}/INBOX;UID={uid}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.replace(b"\r\n", b"\n") == original.replace(b"\r\n", b"\n")
    listing = curl(*iface, f"{base}/")
    assert listing.returncode == 0, listing.stderr
    text = listing.stdout.decode()
    assert "INBOX" in text and "Lists" in text and "Sent" in text, text
    search = curl(*iface, f"{base}/INBOX?SUBJECT%20curl")
    assert search.returncode == 0 and b"SEARCH 1" in search.stdout, search
    # STARTTLS required by the client, certificate verified by fingerprint-free -k.
    tls = curl(*iface, "--ssl-reqd", "-k", f"{base}/INBOX;UID={uid}")
    assert tls.returncode == 0, tls.stderr
    assert b"curl body" in tls.stdout
    imaps = curl(*iface, "-k", f"imaps://{target.host}:{target.imaps_port}/INBOX;UID={uid}")
    assert imaps.returncode == 0, imaps.stderr
    assert b"curl body" in imaps.stdout
    # --cacert: the test certificate is for mx.example.test; --connect-to keeps that name.
    ca = curl(*iface, "--cacert", str(target.cafile), "--connect-to",
              f"mx.example.test:{target.imaps_port}:{target.host}:{target.imaps_port}",
              f"imaps://mx.example.test:{target.imaps_port}/INBOX;UID={uid}")
    assert ca.returncode == 0, ca.stderr
    assert b"curl body" in ca.stdout
    wrong = subprocess.run([tool("curl"), "-sS", "--user", f"{ALICE}:nope", *iface,
                            f"{base}/INBOX;UID={uid}"], capture_output=True, timeout=30)
    assert wrong.returncode != 0
