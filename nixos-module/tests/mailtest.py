"""Mail client for the NixOS VM tests (flake checks): real protocol clients from Python's
standard library against the server node. Usage:

  mailtest.py send HOST PORT MODE [TAG]     MODE: plain (port 25, no AUTH) | starttls | smtps
  mailtest.py count HOST PORT PROTO N       PROTO: imap | imaps | imap-starttls | pop3 | pop3s | pop3-stls;
                                            asserts at least N messages in alice's INBOX, all tags present
  mailtest.py tls-required HOST             logins refused before STARTTLS/STLS, accepted after
  mailtest.py tls-none HOST                 no STARTTLS/STLS offered, plain logins work
"""
import imaplib
import poplib
import smtplib
import ssl
import sys
import time
from email.message import EmailMessage

ALICE, PASSWORD = "alice@example.test", "alice-secret"
SUBMISSION, IMAP, POP3 = 587, 143, 110
TAGS_FILE = "/tmp/mailtest-tags"


def ctx():
    c = ssl.create_default_context(cafile="/etc/icsmail-test/cert.pem")
    return c  # the test certificate names the host "server"


def message(sender, tag):
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, ALICE, f"nixos-test {tag}"
    m.set_content(f"tag {tag}\n")
    return m


def send(host, port, mode, tag):
    port = int(port)
    if mode == "smtps":
        s = smtplib.SMTP_SSL(host, port, context=ctx(), timeout=60)
    else:
        s = smtplib.SMTP(host, port, timeout=60)
    with s:
        s.ehlo("client")
        if mode == "starttls":
            s.starttls(context=ctx())
            s.ehlo("client")
        if mode in ("starttls", "smtps"):
            s.login(ALICE, PASSWORD)
            sender = ALICE
        else:
            sender = "bob@remote.example"
        refused = s.send_message(message(sender, tag))
        assert not refused, refused
    with open(TAGS_FILE, "a") as f:
        f.write(tag + "\n")
    print(f"sent {tag} over {mode} to {host}:{port}")


def tags():
    try:
        return [t for t in open(TAGS_FILE).read().split() if t]
    except FileNotFoundError:
        return []


def imap_texts(imap):
    imap.login(ALICE, PASSWORD)
    typ, _ = imap.select("INBOX")
    assert typ == "OK"
    _, data = imap.search(None, "ALL")
    texts = []
    for i in data[0].split():
        _, parts = imap.fetch(i, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        texts.append(b"".join(p[1] for p in parts if isinstance(p, tuple)).decode())
    imap.logout()
    return texts


def pop3_texts(pop):
    pop.user(ALICE)
    pop.pass_(PASSWORD)
    count, _ = pop.stat()
    texts = [b"\n".join(pop.top(i, 0)[1]).decode() for i in range(1, count + 1)]
    pop.quit()
    return texts


def count(host, port, proto, n):
    port = int(port)
    if proto == "imap":
        texts = imap_texts(imaplib.IMAP4(host, port, timeout=60))
    elif proto == "imap-starttls":
        imap = imaplib.IMAP4(host, port, timeout=60)
        imap.starttls(ssl_context=ctx())
        texts = imap_texts(imap)
    elif proto == "imaps":
        texts = imap_texts(imaplib.IMAP4_SSL(host, port, ssl_context=ctx(), timeout=60))
    elif proto == "pop3":
        texts = pop3_texts(poplib.POP3(host, port, timeout=60))
    elif proto == "pop3-stls":
        pop = poplib.POP3(host, port, timeout=60)
        pop.stls(context=ctx())
        texts = pop3_texts(pop)
    elif proto == "pop3s":
        texts = pop3_texts(poplib.POP3_SSL(host, port, context=ctx(), timeout=60))
    else:
        raise SystemExit(f"unknown protocol {proto}")
    missing = [t for t in tags() if not any(f"nixos-test {t}" in x for x in texts)]
    assert len(texts) >= int(n), f"{proto}: {len(texts)} messages, expected {n}"
    assert not missing, f"{proto}: missing {missing}"
    print(f"{proto} on {host}:{port}: {len(texts)} messages, all {len(tags())} tags found")


def refused(fn):
    try:
        fn()
    except (smtplib.SMTPException, imaplib.IMAP4.error, poplib.error_proto):
        return True
    return False


def smtp_tls_required(host):
    with smtplib.SMTP(host, SUBMISSION, timeout=60) as s:
        s.ehlo("client")
        assert not s.has_extn("auth"), "AUTH offered before STARTTLS"
        assert refused(lambda: s.login(ALICE, PASSWORD)), "SMTP login accepted without TLS"
    with smtplib.SMTP(host, SUBMISSION, timeout=60) as s:
        s.ehlo("client")
        s.starttls(context=ctx())
        s.ehlo("client")
        assert s.has_extn("auth"), "no AUTH after STARTTLS"
        s.login(ALICE, PASSWORD)


def imap_tls_required(host):
    imap = imaplib.IMAP4(host, IMAP, timeout=60)
    assert "LOGINDISABLED" in imap.capabilities or refused(lambda: imap.login(ALICE, PASSWORD)), \
        "IMAP login accepted without TLS"
    imap = imaplib.IMAP4(host, IMAP, timeout=60)
    imap.starttls(ssl_context=ctx())
    imap.login(ALICE, PASSWORD)
    imap.logout()


def pop3_tls_required(host):
    pop = poplib.POP3(host, POP3, timeout=60)
    assert refused(lambda: (pop.user(ALICE), pop.pass_(PASSWORD))), "POP3 login accepted without TLS"
    pop = poplib.POP3(host, POP3, timeout=60)
    pop.stls(context=ctx())
    pop.user(ALICE)
    pop.pass_(PASSWORD)
    pop.quit()


def tls_required(host):
    smtp_tls_required(host)
    imap_tls_required(host)
    pop3_tls_required(host)
    print("tls.mode = required: logins only inside TLS (SMTP, IMAP, POP3)")


def smtp_tls_none(host):
    with smtplib.SMTP(host, SUBMISSION, timeout=60) as s:
        s.ehlo("client")
        assert not s.has_extn("starttls"), "STARTTLS offered with tls.mode = none"
        s.login(ALICE, PASSWORD)


def imap_tls_none(host):
    imap = imaplib.IMAP4(host, IMAP, timeout=60)
    assert "STARTTLS" not in imap.capabilities, "IMAP STARTTLS offered with tls.mode = none"
    imap.login(ALICE, PASSWORD)
    imap.logout()


def pop3_tls_none(host):
    pop = poplib.POP3(host, POP3, timeout=60)
    assert "STLS" not in pop.capa(), "POP3 STLS offered with tls.mode = none"
    pop.user(ALICE)
    pop.pass_(PASSWORD)
    pop.quit()


def tls_none(host):
    smtp_tls_none(host)
    imap_tls_none(host)
    pop3_tls_none(host)
    print("tls.mode = none: no STARTTLS/STLS, plain logins work")


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"send": lambda h, p, m, t=None: send(h, p, m, t or f"{m}-{time.time_ns()}"),
     "count": count, "tls-required": tls_required, "tls-none": tls_none}[cmd](*args)
