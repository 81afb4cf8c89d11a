#!/usr/bin/env python3
"""Host-side checks of the VM test (tests/vm/run.sh): the guest runs units/ under a real systemd.

Everything goes through QEMU's forwarded ports on 127.0.0.1: the mail protocols with Python's
standard clients (smtplib, poplib, imaplib) and ldapsearch (ldap-utils), and a test hook socket in the guest that runs one
shell command per connection (as root) and sends back its output: systemctl, ss, ps, journalctl.
Prints one PASS/FAIL/SKIP line per check; exit status 1 when anything failed.
"""

import argparse
import email.message
import imaplib
import poplib
import os
import smtplib
import socket
import ssl
import subprocess
import sys
import time
import traceback

A = None
RESULTS = {"PASS": 0, "FAIL": 0, "SKIP": 0}
T_START = time.monotonic()

DOMAIN = "example.test"
ALICE = "alice@example.test"
PASSWORD = "alice-secret"
SUBJECTS = []  # subjects of the messages sent, in order


def report(kind, text):
    RESULTS[kind] += 1
    print(f"{kind}: {text}", flush=True)


def info(text):
    print(f"  info: {text}", flush=True)


def check(name):
    """Decorator: run a check, turn an exception into a FAIL line."""

    def wrap(fn):
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - a failed check must not stop the others
                report("FAIL", f"{name}: {type(err).__name__}: {err}")
                for line in traceback.format_exc().splitlines()[-4:]:
                    info(line)
                return None

        return run

    return wrap


# ------------------------------------------------------------------------------ guest access
def hook(command, timeout=60):
    """Runs `command` in the guest (sh -c, as root); returns its output (stdout+stderr)."""
    with socket.create_connection(("127.0.0.1", A.hook), timeout=timeout) as sock:
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def show(unit, *props):
    out = hook(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props))
    values = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        values[key] = value
    return values


def qemu_alive():
    try:
        with open(f"/proc/{A.qemu_pid}/stat"):
            return True
    except OSError:
        return False


def wait_for(predicate, timeout, what, interval=1.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if not qemu_alive():
            raise RuntimeError(f"qemu exited while waiting for {what}")
        try:
            last = predicate()
            if last:
                return last
        except OSError as err:
            last = err
        time.sleep(interval)
    raise TimeoutError(f"no {what} within {timeout} s (last: {last!r})")


def tls_context():
    ctx = ssl.create_default_context(cafile=A.cafile)
    ctx.check_hostname = False  # we connect to 127.0.0.1; the chain is still verified
    return ctx


def message(sender, recipient, tag):
    msg = email.message.EmailMessage()
    subject = f"vm-test {tag} {time.time_ns()}"
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = subject
    msg.set_content(f"Sent over {tag} by tests/vm/check.py.\n")
    SUBJECTS.append(subject)
    return msg


# ------------------------------------------------------------------------------ checks
def boot():
    t0 = time.monotonic()
    wait_for(lambda: "hook-ok" in hook("echo hook-ok", timeout=5), A.boot_timeout, "answer from the guest's test hook", 0.5)
    state = hook("systemctl is-system-running --wait").strip()
    report("PASS", f"guest booted, test hook answers after {time.monotonic() - t0:.1f} s (system state: {state})")


def listening(port):
    """`ss` lines of the TCP listeners on `port` in the guest, with their processes."""
    return hook(f"ss -Hltnp 'sport = :{port}'").strip()


@check("socket listening while the daemon is inactive")
def cold_state(service, sockets, ports):
    active = hook("systemctl is-active " + " ".join(sockets)).split()
    svc = hook(f"systemctl is-active {service}").strip()
    problems = []
    if active != ["active"] * len(sockets):
        problems.append(f"sockets {sockets} are {active}")
    if svc != "inactive":
        problems.append(f"{service} is {svc}, expected inactive before any connection")
    for port in ports:
        ss = listening(port)
        if "LISTEN" not in ss or '"systemd"' not in ss or '"icsmail"' in ss:
            problems.append(f"port {port}: expected a listener held by systemd only, got {ss!r}")
    if problems:
        report("FAIL", f"{service} before the first connection: " + "; ".join(problems))
    else:
        report("PASS", f"{', '.join(sockets)} listening (ports {ports}, held by systemd) while {service} is inactive")


@check("first SMTP connection activates icsmail-smtpd and delivers")
def smtp_first_connection():
    t0 = time.monotonic()
    with smtplib.SMTP(timeout=120) as smtp:
        _, banner = smtp.connect("127.0.0.1", A.smtp)
        latency = time.monotonic() - t0
        smtp.ehlo("client.remote.test")
        refused = smtp.send_message(message("bob@remote.test", ALICE, "smtp-port-25"))
    if refused:
        raise RuntimeError(f"recipients refused: {refused}")
    report("PASS", f"first connection to port 25 started icsmail-smtpd by socket activation "
                   f"(greeting after {latency:.2f} s under TCG: {banner.decode()!r}); message accepted with 250")


@check("daemon ready via sd_notify")
def ready(service):
    props = show(service, "ActiveState", "SubState", "Type", "StatusText", "MainPID", "TriggeredBy", "NRestarts")
    status = hook(f"systemctl status --no-pager --lines=0 {service}")
    ok = (props.get("Type") == "notify" and props.get("ActiveState") == "active"
          and props.get("SubState") == "running" and "active (running)" in status
          and props.get("StatusText"))
    if ok:
        report("PASS", f"{service}: Type=notify, `systemctl status` shows active (running) (ready after READY=1), "
                       f"Status: {props['StatusText']!r}, triggered by {props.get('TriggeredBy')}")
    else:
        report("FAIL", f"{service} not ready via sd_notify: {props}")
        info(status)
    return props.get("MainPID")


@check("daemon runs as the dedicated user")
def runs_as_icsmail(service):
    pid = show(service, "MainPID")["MainPID"]
    out = hook(f"ps -o user=,group=,comm= -p {pid}").split()
    if out[:2] == ["icsmail", "icsmail"]:
        report("PASS", f"{service} (pid {pid}) runs as user icsmail, group icsmail ({' '.join(out)})")
    else:
        report("FAIL", f"{service} (pid {pid}) runs as {out}")


@check("listeners are the sockets systemd passed")
def passed_sockets(service, ports, names):
    pid = show(service, "MainPID")["MainPID"]
    problems = []
    for port in ports:
        ss = listening(port)
        if f"pid={pid}," not in ss or "pid=1," not in ss:
            problems.append(f"port {port}: {ss!r}")
    if problems:
        report("FAIL", f"{service}: listeners not shared with systemd: {problems}")
    else:
        report("PASS", f"{service} serves ports {ports} on the very sockets systemd holds (FileDescriptorName {names})")


@check("submission (587) with STARTTLS and AUTH")
def submission():
    with smtplib.SMTP("127.0.0.1", A.submission, timeout=60) as smtp:
        smtp.ehlo("laptop")
        smtp.starttls(context=tls_context())
        smtp.ehlo("laptop")
        smtp.login(ALICE, PASSWORD)
        refused = smtp.send_message(message(ALICE, f"postmaster@{DOMAIN}", "submission-587"))
    if refused:
        raise RuntimeError(f"recipients refused: {refused}")
    report("PASS", "submission socket (port 587): STARTTLS (certificate verified), AUTH as alice, message to the postmaster alias accepted")


@check("SMTPS (465)")
def smtps():
    with smtplib.SMTP_SSL("127.0.0.1", A.smtps, timeout=60, context=tls_context()) as smtp:
        smtp.ehlo("laptop")
        smtp.login("alice@example.test", PASSWORD)
        refused = smtp.send_message(message(ALICE, ALICE, "smtps-465"))
    if refused:
        raise RuntimeError(f"recipients refused: {refused}")
    report("PASS", "smtps socket (port 465): implicit TLS, AUTH, message accepted")


@check("mail delivered into the Maildir")
def delivered_on_disk():
    box = f"/var/lib/icsmail/mail/{DOMAIN}/alice"
    out = hook(f"for f in {box}/new/* {box}/cur/*; do [ -f \"$f\" ] && stat -c '%U %a' \"$f\" && grep -h '^Subject:' \"$f\"; done")
    found = [s for s in SUBJECTS if s in out]
    owners = {line.split()[0] for line in out.splitlines() if not line.startswith("Subject:") and line.strip()}
    if len(found) == len(SUBJECTS) and owners == {"icsmail"}:
        report("PASS", f"all {len(SUBJECTS)} messages are in {box} (INBOX), files owned by icsmail")
    else:
        report("FAIL", f"delivered: {len(found)} of {len(SUBJECTS)} subjects, owners {owners}; guest said:\n{out}")


@check("POP3 reads the mail back")
def pop3_read():
    t0 = time.monotonic()
    pop = poplib.POP3("127.0.0.1", A.pop3, timeout=120)
    latency = time.monotonic() - t0
    try:
        pop.user(ALICE)
        pop.pass_(PASSWORD)
        count, _ = pop.stat()
        texts = [b"\n".join(pop.retr(i)[1]).decode(errors="replace") for i in range(1, count + 1)]
    finally:
        pop.quit()
    found = [s for s in SUBJECTS if any(s in t for t in texts)]
    if len(found) == len(SUBJECTS):
        report("PASS", f"POP3 (port 110, socket-activated, greeting after {latency:.2f} s): "
                       f"{count} messages, every message sent is there")
    else:
        report("FAIL", f"POP3: {count} messages, found {len(found)} of {len(SUBJECTS)} subjects")


@check("POP3S reads the mail back")
def pop3s_read():
    pop = poplib.POP3_SSL("127.0.0.1", A.pop3s, timeout=60, context=tls_context())
    try:
        pop.user(ALICE)
        pop.pass_(PASSWORD)
        count, _ = pop.stat()
        uidl = pop.uidl()[1]
    finally:
        pop.quit()
    if count >= len(SUBJECTS) and len(uidl) == count:
        report("PASS", f"POP3S (port 995, implicit TLS): {count} messages, UIDL for each")
    else:
        report("FAIL", f"POP3S: STAT {count}, UIDL {uidl}")


def imap_subjects(imap):
    imap.login(ALICE, PASSWORD)
    typ, _ = imap.select("INBOX")
    if typ != "OK":
        raise RuntimeError("SELECT INBOX failed")
    typ, data = imap.search(None, "ALL")
    ids = data[0].split()
    texts = []
    for i in ids:
        typ, parts = imap.fetch(i, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        texts.append(b"".join(p[1] for p in parts if isinstance(p, tuple)).decode(errors="replace"))
    imap.logout()
    return ids, texts


@check("IMAP reads the mail back")
def imap_read():
    t0 = time.monotonic()
    imap = imaplib.IMAP4("127.0.0.1", A.imap, timeout=120)
    latency = time.monotonic() - t0
    ids, texts = imap_subjects(imap)
    found = [s for s in SUBJECTS if any(s in t for t in texts)]
    if len(found) == len(SUBJECTS):
        report("PASS", f"IMAP (port 143, socket-activated, greeting after {latency:.2f} s): "
                       f"{len(ids)} messages in INBOX, every message sent is there")
    else:
        report("FAIL", f"IMAP: {len(ids)} messages, found {len(found)} of {len(SUBJECTS)} subjects")


@check("IMAPS reads the mail back")
def imaps_read():
    imap = imaplib.IMAP4_SSL("127.0.0.1", A.imaps, timeout=60, ssl_context=tls_context())
    ids, _ = imap_subjects(imap)
    if len(ids) >= len(SUBJECTS):
        report("PASS", f"IMAPS (port 993, implicit TLS): {len(ids)} messages in INBOX")
    else:
        report("FAIL", f"IMAPS: {len(ids)} messages")


@check("SIGHUP reload")
def reload(service):
    before = show(service, "MainPID")["MainPID"]
    out = hook(f"systemctl reload {service} && echo reload-ok")
    time.sleep(1)
    after = show(service, "MainPID", "ActiveState")
    if "reload-ok" in out and after["MainPID"] == before and after["ActiveState"] == "active":
        report("PASS", f"systemctl reload {service}: SIGHUP, same pid {before}, still active")
    else:
        report("FAIL", f"reload {service}: {out!r}, before {before}, after {after}")


@check("graceful stop and re-activation")
def stop_and_reactivate():
    service = "icsmail-smtpd.service"
    old = show(service, "MainPID")["MainPID"]
    hook(f"systemctl stop {service}")
    props = show(service, "ActiveState", "Result", "ExecMainStatus")
    sock = hook("systemctl is-active icsmail-smtp.socket").strip()
    if props["ActiveState"] != "inactive" or props["Result"] != "success" or sock != "active":
        report("FAIL", f"stop: {props}, socket {sock}")
        return
    with smtplib.SMTP("127.0.0.1", A.smtp, timeout=120) as smtp:
        smtp.ehlo("again.remote.test")
        smtp.send_message(message("carol@remote.test", ALICE, "after-restart"))
    new = show(service, "MainPID", "ActiveState")
    if new["ActiveState"] == "active" and new["MainPID"] not in ("0", old):
        report("PASS", f"SIGTERM stop: exit status {props['ExecMainStatus']} (Result=success), the socket kept "
                       f"listening, the next connection re-activated the daemon (pid {old} -> {new['MainPID']})")
    else:
        report("FAIL", f"re-activation: {new}")


@check("check-config as the icsmail user")
def check_config():
    out = hook("runuser -u icsmail -- icsmail check-config --config /etc/icsmail/config.json; echo rc=$?")
    if "rc=0" in out and ": ok" in out:
        report("PASS", f"icsmail check-config, run as icsmail in the guest: {out.splitlines()[0]}")
    else:
        report("FAIL", f"check-config in the guest: {out}")


ADMIN_CALL = "busctl --system call org.icsmail.Mail1 /org/icsmail/Mail1 org.icsmail.Mail1.Settings"


@check("D-Bus admin: bus activation")
def admin_activation():
    before = hook("systemctl is-active icsmail-admin.service").strip()
    out = hook(f"{ADMIN_CALL} Get s heloName")
    after = show("icsmail-admin.service", "ActiveState", "MainPID")
    user = hook(f"ps -o user= -p {after['MainPID']}").strip() if after["MainPID"] != "0" else "?"
    if before != "active" and 'mail.example.test' in out and '"file"' in out and after["ActiveState"] == "active" and user == "icsmail":
        report("PASS", f"the first busctl call bus-activated icsmail-admin.service ({before} -> active, "
                       f"user {user}) and got {out.strip()}")
    else:
        report("FAIL", f"bus activation: before {before}, reply {out!r}, after {after}, user {user}")


@check("D-Bus admin: the bus policy refuses a non-admin")
def admin_policy():
    out = hook(f"runuser -u nobody -- {ADMIN_CALL} Get s heloName; echo rc=$?")
    if "rc=0" not in out and "denied" in out.lower():
        report("PASS", f"a call as nobody (not in icsmail-admin) is refused by the bus: {out.splitlines()[0]}")
    else:
        report("FAIL", f"a call as nobody was not refused: {out!r}")


@check("D-Bus admin: a setting changed over the bus applies to the running daemon")
def admin_set_applies():
    def size():
        with smtplib.SMTP("127.0.0.1", A.smtp, timeout=60) as smtp:
            smtp.ehlo("admin.remote.test")
            return int(smtp.esmtp_features.get("size", "0"))

    pid = show("icsmail-smtpd.service", "MainPID")["MainPID"]
    out = hook(f"{ADMIN_CALL} Set ss smtp.maxMessageSize 4000 && echo set-ok")
    changed = wait_for(lambda: size() == 4000, 30, "SIZE 4000 in EHLO", 1) if "set-ok" in out else False
    owner = hook("stat -c '%U %a' /var/lib/icsmail/overrides.json").strip()
    hook(f"{ADMIN_CALL} Reset s smtp.maxMessageSize")
    back = wait_for(lambda: size() != 4000, 30, "SIZE back to the file's", 1)
    same_pid = show("icsmail-smtpd.service", "MainPID")["MainPID"] == pid
    if changed and back and same_pid:
        report("PASS", f"Set smtp.maxMessageSize 4000 over D-Bus: EHLO showed SIZE 4000 without a restart "
                       f"(same pid {pid}; overrides.json {owner}); Reset brought the file's value back")
    else:
        report("FAIL", f"admin Set: {out!r}, changed {changed}, back {back}, same pid {same_pid}")


STORAGE_CALL = "busctl --system call org.icsmail.Mail1 /org/icsmail/Mail1 org.icsmail.Mail1.Storage"


@check("D-Bus admin: Storage.Move under the units' sandboxing")
def admin_storage_move():
    target = "/var/lib/icsmail/mail-moved"
    out = hook(f"{STORAGE_CALL} Move s {target}")
    task = out.strip().split(" ", 1)[-1].strip('"') if out.startswith("o ") else None
    if not task:
        report("FAIL", f"Storage.Move: {out!r}")
        return

    def state():
        reply = hook(f"busctl --system get-property org.icsmail.Mail1 {task} org.icsmail.Mail1.Task State")
        value = reply.strip().split(" ", 1)[-1].strip('"')
        return value if value != "running" else None

    ended = wait_for(state, 120, "the move task to end", 1)
    link = hook("readlink /var/lib/icsmail/mail-root").strip()
    with smtplib.SMTP("127.0.0.1", A.smtp, timeout=120) as smtp:
        smtp.ehlo("move.remote.test")
        sent = message("carol@remote.test", ALICE, "after-storage-move")
        smtp.send_message(sent)
    subject = sent["Subject"]
    found = hook(f"grep -rl '{subject}' {target}/{DOMAIN}/alice/new | wc -l").strip()
    error = hook(f"busctl --system get-property org.icsmail.Mail1 {task} org.icsmail.Mail1.Task Error").strip()
    if ended == "done" and link == target and found == "1":
        report("PASS", f"Storage.Move {target}: task {task} done, mail-root -> {link}, the next delivery "
                       f"landed in the new tree (the running icsmail-smtpd, no restart)")
    else:
        report("FAIL", f"Storage.Move: state {ended}, error {error}, link {link}, copies in the new tree {found}")


def ldapsearch(*args, url=None, env=None):
    """ldapsearch (ldap-utils) from the host through the forwarded port; (exit status, output).
    The guest sees the host's connections coming from QEMU's gateway (10.0.2.2), not from
    loopback: an anonymous search there is a client on the network."""
    url = url or f"ldap://127.0.0.1:{A.ldap}"
    full_env = dict(os.environ, LDAPTLS_CACERT=A.cafile, LDAPTLS_REQCERT="never", **(env or {}))
    result = subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", url, *args],
                            capture_output=True, text=True, timeout=180, env=full_env)
    return result.returncode, result.stdout + result.stderr


LDAP_BIND = ("-D", ALICE, "-w", PASSWORD)


@check("first LDAP search activates icsmail-ldapd")
def ldap_first_search():
    t0 = time.monotonic()
    code, out = ldapsearch(*LDAP_BIND, "-b", "dc=example,dc=test", "(|(cn=ali*)(mail=ali*))", "cn", "mail")
    latency = time.monotonic() - t0
    want = ["dn: uid=alice@example.test,dc=example,dc=test", "cn: Alice Liddell", "mail: alice@example.test",
            "mail: postmaster@example.test"]
    if code == 0 and all(line in out.splitlines() for line in want):
        report("PASS", f"the first search on port 389 started icsmail-ldapd by socket activation (answer after "
                       f"{latency:.2f} s under TCG, bound as alice): alice's entry with cn and both mail values")
    else:
        report("FAIL", f"first LDAP search: exit {code}: {out!r}")


@check("LDAP: StartTLS, LDAPS, the RootDSE and an anonymous client from the network")
def ldap_tls_and_access():
    problems = []
    code, out = ldapsearch("-ZZ", *LDAP_BIND, "-b", "dc=example,dc=test", "(mail=alice*)", "uid")
    if code != 0 or "uid: alice@example.test" not in out:
        problems.append(f"StartTLS (-ZZ): exit {code}: {out!r}")
    code, out = ldapsearch(*LDAP_BIND, "-b", "dc=example,dc=test", "(objectClass=inetOrgPerson)", "uid",
                           url=f"ldaps://127.0.0.1:{A.ldaps}")
    if code != 0 or "uid: alice@example.test" not in out:
        problems.append(f"LDAPS: exit {code}: {out!r}")
    code, out = ldapsearch("-s", "base", "-b", "", "namingContexts", "supportedExtension")
    if code != 0 or "namingContexts: dc=example,dc=test" not in out or "1.3.6.1.4.1.1466.20037" not in out:
        problems.append(f"RootDSE: exit {code}: {out!r}")
    code, out = ldapsearch("-b", "dc=example,dc=test", "(mail=*)")
    if code != 50 or "bind with your mail account" not in out:
        problems.append(f"anonymous from 10.0.2.2: expected insufficientAccessRights (50), exit {code}: {out!r}")
    code, out = ldapsearch("-D", ALICE, "-w", "wrong", "-b", "dc=example,dc=test", "(mail=*)")
    if code != 49:
        problems.append(f"wrong password: expected invalidCredentials (49), exit {code}: {out!r}")
    if problems:
        report("FAIL", "LDAP: " + "; ".join(problems))
    else:
        report("PASS", "LDAP: StartTLS and LDAPS searches bound as alice, the RootDSE (namingContexts, StartTLS), "
                       "an anonymous search from the network refused with insufficientAccessRights, a wrong "
                       "password invalidCredentials")


def security_scores(services):
    for service in services:
        out = hook(f"systemd-analyze security {service} --no-pager | tail -1").strip()
        info(f"in the guest (online): {out}")


@check("queue timer")
def queue_timer():
    listed = hook("systemctl list-timers --all --no-pager icsmail-queue.timer")
    if "icsmail-queue.timer" in listed and "icsmail-queue.service" in listed:
        report("PASS", "icsmail-queue.timer is listed by systemctl list-timers (activates icsmail-queue.service)")
    else:
        report("FAIL", f"icsmail-queue.timer not in list-timers:\n{listed}")

    def fired():
        p = show("icsmail-queue.timer", "LastTriggerUSec")["LastTriggerUSec"]
        return p if p and p not in ("n/a", "0") else None

    t0 = time.monotonic()
    last = wait_for(fired, A.timer_timeout, "trigger of icsmail-queue.timer", 2)
    svc = wait_for(lambda: (lambda p: p if p["ExecMainStartTimestamp"] and p["ActiveState"] != "activating" else None)(
        show("icsmail-queue.service", "ExecMainStartTimestamp", "Result", "ExecMainStatus", "ActiveState")),
        120, "end of the queue run", 1)
    timer = show("icsmail-queue.timer", "NextElapseUSecRealtime", "TimersCalendar")
    report("PASS", f"icsmail-queue.timer fired at {last} (waited {time.monotonic() - t0:.0f} s) and started "
                   f"icsmail-queue.service at {svc['ExecMainStartTimestamp']}; next: {timer['NextElapseUSecRealtime']} "
                   f"({timer['TimersCalendar']})")
    if "queue" in A.features:
        if svc["Result"] == "success":
            report("PASS", "icsmail-queue.service (icsmail queue run) finished with Result=success")
        else:
            report("FAIL", f"icsmail-queue.service: Result={svc['Result']}, exit status {svc['ExecMainStatus']}")
            info(hook("journalctl -b --no-pager -o cat -u icsmail-queue.service | tail -5"))
    else:
        report("SKIP", f"icsmail-queue.service result not checked: this build has no `icsmail queue run`; "
                       f"the run ended Result={svc['Result']}, exit status {svc['ExecMainStatus']} (expected)")


@check("no failed units")
def failed_units():
    failed = hook("systemctl --failed --no-legend --plain | awk '{print $1}'").split()
    allowed = set() if "queue" in A.features else {"icsmail-queue.service"}
    unexpected = [u for u in failed if u not in allowed]
    if unexpected:
        report("FAIL", f"failed units in the guest: {unexpected}")
        for u in unexpected:
            info(hook(f"journalctl -b --no-pager -o cat -u {u} | tail -8"))
    else:
        report("PASS", "no failed units in the guest" + (f" (besides {sorted(allowed)}: no queue runner yet)" if failed else ""))


def main():
    global A
    parser = argparse.ArgumentParser()
    for name in ("smtp", "submission", "smtps", "pop3", "pop3s", "imap", "imaps", "ldap", "ldaps", "hook",
                 "qemu-pid"):
        parser.add_argument(f"--{name}", type=int, required=True)
    parser.add_argument("--cafile", required=True)
    parser.add_argument("--features", default="")
    parser.add_argument("--boot-timeout", type=float, default=240)
    parser.add_argument("--timer-timeout", type=float, default=150)
    A = parser.parse_args()
    A.features = A.features.split()

    try:
        boot()
    except Exception as err:  # noqa: BLE001
        report("FAIL", f"guest did not come up: {err}")
        return 1

    smtp_sockets = ["icsmail-smtp.socket", "icsmail-submission.socket", "icsmail-smtps.socket"]
    cold_state("icsmail-smtpd.service", smtp_sockets, [25, 587, 465])
    if "pop3" in A.features:
        cold_state("icsmail-pop3d.service", ["icsmail-pop3.socket", "icsmail-pop3s.socket"], [110, 995])
    if "imap" in A.features:
        cold_state("icsmail-imapd.service", ["icsmail-imap.socket", "icsmail-imaps.socket"], [143, 993])
    if "ldap" in A.features:
        cold_state("icsmail-ldapd.service", ["icsmail-ldap.socket", "icsmail-ldaps.socket"], [389, 636])

    smtp_first_connection()
    ready("icsmail-smtpd.service")
    runs_as_icsmail("icsmail-smtpd.service")
    passed_sockets("icsmail-smtpd.service", [25, 587, 465], "smtp, submission, smtps")
    submission()
    smtps()
    delivered_on_disk()

    if "pop3" in A.features:
        pop3_read()
        pop3s_read()
        ready("icsmail-pop3d.service")
        runs_as_icsmail("icsmail-pop3d.service")
        passed_sockets("icsmail-pop3d.service", [110, 995], "pop3, pop3s")
    else:
        report("SKIP", "POP3/POP3S read-back: this build has no `icsmail pop3d` (checked the Maildir instead)")
    if "imap" in A.features:
        imap_read()
        imaps_read()
        ready("icsmail-imapd.service")
        runs_as_icsmail("icsmail-imapd.service")
        passed_sockets("icsmail-imapd.service", [143, 993], "imap, imaps")
    else:
        report("SKIP", "IMAP/IMAPS read-back: this build has no `icsmail imapd` (checked the Maildir instead)")
    if "ldap" in A.features:
        ldap_first_search()
        ready("icsmail-ldapd.service")
        runs_as_icsmail("icsmail-ldapd.service")
        passed_sockets("icsmail-ldapd.service", [389, 636], "ldap, ldaps")
        ldap_tls_and_access()
    else:
        report("SKIP", "LDAP address book: this build has no `icsmail ldapd`")

    reload("icsmail-smtpd.service")
    admin_activation()
    admin_policy()
    admin_set_applies()
    admin_storage_move()
    stop_and_reactivate()
    check_config()
    security_scores([s for s, f in (("icsmail-smtpd.service", None), ("icsmail-pop3d.service", "pop3"),
                                    ("icsmail-imapd.service", "imap"), ("icsmail-ldapd.service", "ldap"),
                                    ("icsmail-queue.service", None),
                                    ("icsmail-admin.service", None))
                     if f is None or f in A.features])
    queue_timer()
    failed_units()

    if RESULTS["FAIL"]:
        info("journal of the ics-mail units:")
        try:
            for line in hook("journalctl -b --no-pager -o short-monotonic -u 'icsmail*' | tail -40").splitlines():
                info(line)
        except OSError as err:
            info(f"(journal unavailable: {err})")
    info(f"checks took {time.monotonic() - T_START:.1f} s")
    return 1 if RESULTS["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
