#!/usr/bin/env python3
"""Helpers for bench/smtp-inbound/run.sh (standard library only).

Subcommands:
  freeport                      print a free TCP port on 127.0.0.1
  waitport PORT TIMEOUT         wait until 127.0.0.1:PORT accepts a connection
  idle MAX_BUSY_PCT TIMEOUT     wait until whole-machine CPU use is below MAX_BUSY_PCT
  fsync DIR                     measure this disk's fsync cost, print JSON
  load NAME MAILDIR N OUT -- CMD...
                                start CMD (smtp-source), poll MAILDIR/new until it
                                holds N files, print one JSON result line
  report RUNS_JSONL FSYNC_JSON META_JSON OUT_JSON
                                print the summary table and write the results file
  policy-tables DIR             write the 1,000 list entries of the policy mode for both
                                servers (DIR/lists.json, DIR/postfix-*)
  evidence RESULT_JSON NAME DIR  add what the run's logs say the policy did to its result
  policy-check NAME PORT MAILDIR SECONDS
                                before a policy run: show that the DNSBL and the blacklist
                                refuse, and warm up greylisting (first attempt deferred,
                                retried after SECONDS until accepted); print one JSON line
"""

import ipaddress
import json
import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import time


def freeport():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()


def waitport(port, timeout):
    deadline = time.monotonic() + float(timeout)
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", int(port)), timeout=1):
                return 0
        except OSError:
            time.sleep(0.05)
    print(f"port {port} not accepting connections after {timeout}s", file=sys.stderr)
    return 1


def fsync_probe(d, n=200, size=4096):
    """Two patterns: appending 4 KiB + fsync to one file (like dd oflag=dsync),
    and the Maildir delivery pattern: create file, write 4 KiB, fsync, close,
    rename into another directory, fsync that directory."""
    os.makedirs(d, exist_ok=True)
    buf = os.urandom(size)
    path = os.path.join(d, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    t0 = time.perf_counter()
    for _ in range(n):
        os.write(fd, buf)
        os.fsync(fd)
    append = time.perf_counter() - t0
    os.close(fd)
    os.unlink(path)

    tmp, new = os.path.join(d, "tmp"), os.path.join(d, "new")
    os.makedirs(tmp, exist_ok=True)
    os.makedirs(new, exist_ok=True)
    dfd = os.open(new, os.O_RDONLY | os.O_DIRECTORY)
    t0 = time.perf_counter()
    for i in range(n):
        p = os.path.join(tmp, f"m{i}")
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, buf)
        os.fsync(fd)
        os.close(fd)
        os.rename(p, os.path.join(new, f"m{i}"))
        os.fsync(dfd)
    create = time.perf_counter() - t0
    os.close(dfd)
    for i in range(n):
        os.unlink(os.path.join(new, f"m{i}"))
    os.rmdir(tmp)
    os.rmdir(new)

    res = {
        "ops": n,
        "bytes_per_op": size,
        "append_write_fsync_ms": round(append / n * 1000, 3),
        "maildir_create_fsync_rename_dirfsync_ms": round(create / n * 1000, 3),
    }
    # dd for reference (same thing as the first pattern, as reported by coreutils)
    ddf = os.path.join(d, "dd-probe")
    try:
        r = subprocess.run(
            ["dd", "if=/dev/zero", f"of={ddf}", "bs=4k", f"count={n}", "oflag=dsync"],
            capture_output=True, text=True, timeout=120)
        lines = [l for l in r.stderr.splitlines() if "copied" in l]
        res["dd_4k_x%d_dsync" % n] = lines[-1] if lines else r.stderr.strip()
    finally:
        if os.path.exists(ddf):
            os.unlink(ddf)
    print(json.dumps(res))


def cpu_times():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    return sum(v), idle


def cpu_busy(interval=1.0):
    """Whole-machine CPU busy percentage over `interval` seconds."""
    t1, i1 = cpu_times()
    time.sleep(interval)
    t2, i2 = cpu_times()
    return 100.0 * (1 - (i2 - i1) / max(1, t2 - t1))


def idle(max_busy, timeout):
    """Wait (up to timeout s) until the machine is quiet; print the last busy %."""
    deadline = time.monotonic() + float(timeout)
    busy = cpu_busy()
    while busy > float(max_busy) and time.monotonic() < deadline:
        busy = cpu_busy()
    print(round(busy, 1))
    return 0 if busy <= float(max_busy) else 1


def maildir_fsync_ms(d, n=50):
    """Quick per-run probe: create+write 4 KiB+fsync+rename+dir fsync, mean ms."""
    tmp, new = os.path.join(d, "tmp"), os.path.join(d, "new")
    os.makedirs(tmp, exist_ok=True)
    os.makedirs(new, exist_ok=True)
    buf = os.urandom(4096)
    dfd = os.open(new, os.O_RDONLY | os.O_DIRECTORY)
    t0 = time.perf_counter()
    for i in range(n):
        p = os.path.join(tmp, f"m{i}")
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, buf)
        os.fsync(fd)
        os.close(fd)
        os.rename(p, os.path.join(new, f"m{i}"))
        os.fsync(dfd)
    dt = time.perf_counter() - t0
    os.close(dfd)
    return round(dt / n * 1000, 3)


CLK = os.sysconf("SC_CLK_TCK")


def machine_cpu_s():
    """(busy, irq+softirq, steal) CPU seconds since boot, whole machine."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]] + [0] * 10
    # user nice system idle iowait irq softirq steal guest guest_nice
    busy = v[0] + v[1] + v[2] + v[5] + v[6]
    return busy / CLK, (v[5] + v[6]) / CLK, v[7] / CLK


def tree_cpu_s(root):
    """CPU seconds of process `root` and its live descendants, plus their reaped
    children (cutime/cstime)."""
    if not root:
        return 0.0
    parent, ticks = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        pid = int(d)
        parent[pid] = int(fields[1])
        ticks[pid] = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    total, root = 0, int(root)
    for pid in ticks:
        p = pid
        while p and p != root and p in parent:
            p = parent[p]
        if p == root:
            total += ticks[pid]
    return total / CLK


def own_cpu_s():
    import resource
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def count_new(newdir):
    try:
        with os.scandir(newdir) as it:
            return sum(1 for e in it if not e.name.startswith("."))
    except FileNotFoundError:
        return 0


def load(name, maildir, n, out, cmd, timeout=180.0):
    n = int(n)
    newdir = os.path.join(maildir, "new")
    before = count_new(newdir)
    load1 = os.getloadavg()[0]
    busy = float(os.environ.get("BUSY_BEFORE") or cpu_busy())
    fsync_ms = maildir_fsync_ms(os.path.join(os.path.dirname(out), "fsync-probe"))
    # the server's processes (Postfix: master, and postgrey in the policy mode)
    server_pids = (os.environ.get("SERVER_PID") or "").split()
    dns_pid = os.environ.get("DNS_PID")
    dns_log = os.environ.get("DNS_LOG")
    dns0 = dns_queries(dns_log) if dns_log else None
    outf = open(out, "w")
    cpu0 = (machine_cpu_s(), sum(tree_cpu_s(p) for p in server_pids), own_cpu_s(),
            tree_cpu_s(2), tree_cpu_s(dns_pid))
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=outf, stderr=subprocess.STDOUT)

    def on_term(signum, _frame):
        proc.kill()
        sys.exit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    client_done = None
    delivered_at = None
    count = before
    while True:
        now = time.monotonic()
        if client_done is None and proc.poll() is not None:
            client_done = now
        count = count_new(newdir) - before
        if count >= n and delivered_at is None:
            delivered_at = now
        if delivered_at is not None and client_done is not None:
            break
        if client_done is not None and now - client_done > (
                60 if proc.returncode == 0 else 10):
            break  # client finished but mail never all arrived
        if now - t0 > timeout:
            proc.kill()
            proc.wait()
            client_done = client_done or time.monotonic()
            break
        time.sleep(0.01)
    t1 = time.monotonic()
    cpu1 = (machine_cpu_s(), sum(tree_cpu_s(p) for p in server_pids), own_cpu_s(),
            tree_cpu_s(2), tree_cpu_s(dns_pid))
    outf.close()
    dns1 = dns_queries(dns_log) if dns_log else None
    machine = cpu1[0][0] - cpu0[0][0]
    server_cpu = cpu1[1] - cpu0[1]
    client_cpu = cpu1[2] - cpu0[2]  # smtp-source + this poller
    # kernel threads (children of kthreadd: writeback, jbd2, ...) and irq/softirq time
    kernel = (cpu1[3] - cpu0[3]) + (cpu1[0][1] - cpu0[0][1])
    steal = cpu1[0][2] - cpu0[0][2]
    dns_cpu = cpu1[4] - cpu0[4]  # dnsmasq, the DNS server both servers ask
    other = max(0.0, machine - server_cpu - client_cpu - kernel - dns_cpu)
    ncpu = os.cpu_count() or 1
    # let stragglers land so we can detect duplicates
    time.sleep(0.5)
    final = count_new(newdir) - before
    tmpdir = os.path.join(maildir, "tmp")
    tmp_left = count_new(tmpdir)
    rc = proc.returncode
    with open(out, errors="replace") as f:
        text = f.read()
    errors = [l for l in text.replace("\r", "\n").splitlines()
              if l.strip() and not l.strip().isdigit()]
    ok = rc == 0 and delivered_at is not None and final == n
    res = {
        "server": name,
        "mode": os.environ.get("MODE", "plain"),
        "messages": n,
        "ok": ok,
        "smtp_source_rc": rc,
        "client_seconds": round(client_done - t0, 3),
        "seconds": round(delivered_at - t0, 3) if delivered_at else None,
        "delivered": final,
        "left_in_tmp": tmp_left,
        "msgs_per_s": round(n / (delivered_at - t0), 1) if delivered_at else None,
        "loadavg_1m_at_start": round(load1, 2),
        # CPU seconds during the run: the server's process tree, smtp-source (+ poller),
        # kernel threads + irq/softirq, time stolen by the hypervisor, and all other
        # processes on the machine ("other": foreign work that skews the run)
        "cpu_s_server": round(server_cpu, 2),
        "cpu_s_client": round(client_cpu, 2),
        "cpu_s_kernel": round(kernel, 2),
        "cpu_s_steal": round(steal, 2),
        "cpu_s_dns": round(dns_cpu, 2),
        "cpu_s_other": round(other, 2),
        "other_cpu_pct_during": round(100 * other / (ncpu * max(t1 - t0, 1e-3)), 1),
        "cpu_busy_pct_before": round(busy, 1),
        "maildir_fsync_ms_before": fsync_ms,
        "client_output_noise": errors[:20],
    }
    if dns0 is not None:
        # what the server asked the DNS server (dnsmasq) while the clock ran
        res["dns_queries_during"] = {k: dns1[k] - dns0[k] for k in dns0}
    print(json.dumps(res))
    return 0


# --- policy mode ------------------------------------------------------------------------
# The list entries: 500 white, 500 black, each list 125 IP addresses (100 IPv4, 25 IPv6),
# 125 networks (100 IPv4 of /20../29, 25 IPv6 /48), 125 domains and 125 mailboxes. None names
# the load's client (127.0.0.1, whose name is "localhost"), its sender (sender@bench.test) or
# the warm-up's; the probe of policy_check uses the first blacklisted mailbox.
DNSBL_ZONES = ("bl1.bench.test", "bl2.bench.test")
LISTED_CLIENT = "127.0.0.2"      # listed in both zones (RFC 5782 §5's test address)
WARMUP_SENDER = "warmup@bench.test"
RECIPIENT = "user@bench.test"


def policy_entries():
    lists = {}
    for n, kind in ((1, "whitelist"), (2, "blacklist")):
        ips = [f"10.{n}.{i // 200}.{i % 200 + 1}" for i in range(100)]
        ips += [f"2001:db8:{n}::{i + 1:x}" for i in range(25)]
        nets = []
        for i in range(100):
            base = int(ipaddress.ip_address(f"10.{64 + 32 * n}.0.0")) + i * 4096
            prefix = (20, 22, 24, 27, 29)[i % 5]
            nets.append(str(ipaddress.ip_network((base, prefix))))
        nets += [f"2001:db8:{0x1000 * n + i:x}::/48" for i in range(25)]
        word = "partner" if n == 1 else "spam"
        domains = [f"{word}{i}.example.net" for i in range(125)]
        boxes = [f"{word}{i}@mail{i % 10}.example.org" for i in range(125)]
        lists[kind] = {"ips": ips, "nets": nets, "domains": domains, "mailboxes": boxes}
    return lists


def blocked_sender():
    return policy_entries()["blacklist"]["mailboxes"][0]


def policy_tables(d):
    """ics-mail's lists.whitelist/blacklist and the same entries as Postfix access tables:
    IP addresses and domains in a hash table for check_client_access (a domain names the
    client's verified host name and below), networks in a cidr table, domains and mailboxes in
    a hash table for check_sender_access. OK for the whitelist, REJECT for the blacklist."""
    lists = policy_entries()
    os.makedirs(d, exist_ok=True)
    ics = {k: v["ips"] + v["nets"] + v["domains"] + v["mailboxes"] for k, v in lists.items()}
    with open(os.path.join(d, "lists.json"), "w") as f:
        json.dump(ics, f)
    client, nets, sender = [], [], []
    for kind, v in lists.items():
        action = "OK" if kind == "whitelist" else "REJECT"
        client += [f"{x} {action}" for x in v["ips"] + v["domains"]]
        nets += [f"{x} {action}" for x in v["nets"]]
        sender += [f"{x} {action}" for x in v["domains"] + v["mailboxes"]]
    for name, lines in (("postfix-client_access", client),
                        ("postfix-client_networks.cidr", nets),
                        ("postfix-sender_access", sender)):
        with open(os.path.join(d, name), "w") as f:
            f.write("\n".join(lines) + "\n")
    print(json.dumps({k: {kk: len(vv) for kk, vv in v.items()} for k, v in lists.items()}))


def smtp_attempt(port, source, sender, data=None):
    """One session from `source`: EHLO, MAIL, RCPT (and DATA when RCPT got 250 and `data` is
    given). The first reply that is not 2xx, or the last one, as (stage, code, text)."""
    try:
        with smtplib.SMTP("127.0.0.1", int(port), source_address=(source, 0),
                          timeout=30) as s:
            s.ehlo("warmup.bench.test")
            code, text = s.mail(sender)
            if code >= 300:
                return "mail", code, text.decode(errors="replace")
            code, text = s.rcpt(RECIPIENT)
            if code >= 300 or data is None:
                return "rcpt", code, text.decode(errors="replace")
            code, text = s.data(data)
            return "data", code, text.decode(errors="replace")
    except smtplib.SMTPConnectError as e:
        return "connect", e.smtp_code, str(e.smtp_error)
    except smtplib.SMTPResponseException as e:
        return "data", e.smtp_code, e.smtp_error.decode(errors="replace")


def policy_check(name, port, maildir, seconds):
    """Shows that the policy is on before the clock runs: a client the DNSBLs list and a
    blacklisted sender are refused (5xx), and greylisting defers the first attempt of a new
    triplet (4xx) and accepts it when retried after `seconds`: that passes the client (its
    network for ics-mail, its address for Postgrey's auto-whitelist), as a real MTA's retry
    would, so the load that follows is not greylisted. Exit 1 if any of it did not happen."""
    res = {"server": name}
    stage, code, text = smtp_attempt(port, LISTED_CLIENT, "probe@bench.test")
    res["dnsbl_listed_client"] = f"{stage} {code} {text}"
    ok = code >= 500 and any(z in text for z in DNSBL_ZONES)
    stage, code, text = smtp_attempt(port, "127.0.0.1", blocked_sender())
    res["blacklisted_sender"] = f"{stage} {code} {text}"
    ok = ok and code >= 500
    newdir = os.path.join(maildir, "new")
    before = count_new(newdir)
    msg = (f"From: <{WARMUP_SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: warm-up\r\n\r\n"
           "greylisting warm-up\r\n")
    t0 = time.monotonic()
    attempts = []
    while time.monotonic() - t0 < 30:
        stage, code, text = smtp_attempt(port, "127.0.0.1", WARMUP_SENDER, msg)
        attempts.append(f"{round(time.monotonic() - t0, 1)}s {stage} {code} {text}")
        if code == 250 or code >= 500:
            break
        time.sleep(float(seconds))
    res["greylist_attempts"] = attempts
    passed = code == 250 and stage == "data"
    ok = ok and passed and len(attempts) >= 2 and attempts[0].split()[2].startswith("4")
    while passed and count_new(newdir) <= before and time.monotonic() - t0 < 60:
        time.sleep(0.05)
    res["warmup_delivered"] = count_new(newdir) - before
    res["ok"] = bool(ok and res["warmup_delivered"] == 1)
    print(json.dumps(res))
    return 0 if res["ok"] else 1


def dns_queries(log):
    """Queries in dnsmasq's --log-queries log: total and per DNSBL zone."""
    counts = {"total": 0}
    counts.update({z: 0 for z in DNSBL_ZONES})
    try:
        with open(log, errors="replace") as f:
            for line in f:
                m = re.search(r" query\[\w+\] (\S+) from ", line)
                if not m:
                    continue
                counts["total"] += 1
                for z in DNSBL_ZONES:
                    if m.group(1).endswith("." + z):
                        counts[z] += 1
    except FileNotFoundError:
        pass
    return counts


def evidence(result_path, name, d):
    """Adds to a run's result what the logs say the policy did (over the whole run: checks,
    warm-up and load): ics-mail's policy decision lines, Postgrey's actions and Postfix's
    refusals."""
    def count(path, *needles):
        try:
            with open(path, errors="replace") as f:
                return sum(1 for line in f if all(n in line for n in needles))
        except FileNotFoundError:
            return None
    if name == "icsmail":
        log = os.path.join(d, "server.log")
        ev = {"greylist_deferred": count(log, 'rule="greylist"'),
              "dnsbl_refused": count(log, 'rule="dnsbl"', "refused"),
              "blacklist_refused": count(log, 'rule="blacklist"')}
    else:
        log, pg = os.path.join(d, "maillog"), os.path.join(d, "postgrey.log")
        ev = {"postgrey_greylisted": count(pg, "action=greylist"),
              "postgrey_pass_triplet": count(pg, "action=pass", "reason=triplet found"),
              "postgrey_pass_client_awl": count(pg, "action=pass", "reason=client AWL"),
              "dnsbl_refused": count(log, "blocked using"),
              "blacklist_refused": count(log, "Sender address rejected: Access denied")}
    with open(result_path) as f:
        res = json.load(f)
    res["policy_evidence"] = ev
    with open(result_path, "w") as f:
        json.dump(res, f)
        f.write("\n")


def report(runs_path, fsync_path, meta_path, out_path):
    runs = [json.loads(l) for l in open(runs_path) if l.strip()]
    fs = json.load(open(fsync_path)) if os.path.exists(fsync_path) else {}
    meta = json.load(open(meta_path))
    print()
    print(f"smtp-inbound: {meta['messages']} messages x {meta['size']} bytes payload, "
          f"{meta['sessions']} concurrent sessions (smtp-source {meta['smtp_source_args']})")
    print(f"disk: {meta['fs']} at {meta['workdir']}")
    if fs:
        print(f"fsync cost: append 4 KiB+fsync {fs['append_write_fsync_ms']} ms/op; "
              f"maildir create+fsync+rename+dirfsync "
              f"{fs['maildir_create_fsync_rename_dirfsync_ms']} ms/op")
        k = [k for k in fs if k.startswith("dd_")]
        if k:
            print(f"dd: {fs[k[0]]}")
    print()
    hdr = f"{'run':>3}  {'mode':<6} {'server':<8} {'messages':>8} {'sessions':>8} " \
          f"{'seconds':>8} {'msgs/s':>8} {'client_s':>8} {'srv_cpu':>7} {'other%':>6} " \
          f"{'fsyncms':>7} {'dnsq':>6}  status"
    print(hdr)
    print("-" * len(hdr))
    for i, r in enumerate(runs, 1):
        secs = f"{r['seconds']:.2f}" if r.get("seconds") else "-"
        rate = f"{r['msgs_per_s']:.1f}" if r.get("msgs_per_s") else "-"
        dnsq = r.get("dns_queries_during", {}).get("total", "-")
        status = "ok" if r["ok"] else (
            f"FAILED (rc={r['smtp_source_rc']}, delivered {r['delivered']}/{r['messages']})")
        print(f"{i:>3}  {r.get('mode', 'plain'):<6} {r['server']:<8} {r['messages']:>8} "
              f"{meta['sessions']:>8} {secs:>8} {rate:>8} {r['client_seconds']:>8.2f} "
              f"{r.get('cpu_s_server', 0):>7.2f} {r.get('other_cpu_pct_during', 0):>6.1f} "
              f"{r.get('maildir_fsync_ms_before', 0):>7.3f} {dnsq:>6}  {status}")

    def mean(mode, name, key):
        xs = [r[key] for r in runs
              if r["server"] == name and r.get("mode", "plain") == mode and r["ok"]]
        return (sum(xs) / len(xs)) if xs else None

    noisy = [r for r in runs if r.get("other_cpu_pct_during", 0) > 10]
    if noisy:
        print(f"WARNING: {len(noisy)} run(s) shared the CPUs with other work (other% > 10); "
              "their numbers are skewed")
    print()
    modes = []
    for r in runs:
        if r.get("mode", "plain") not in modes:
            modes.append(r.get("mode", "plain"))
    by_mode = {}
    for mode in modes:
        pf, ic = mean(mode, "postfix", "msgs_per_s"), mean(mode, "icsmail", "msgs_per_s")
        ratio = round(ic / pf, 2) if pf and ic else None
        cpu = {n: mean(mode, n, "cpu_s_server") for n in ("postfix", "icsmail")}
        by_mode[mode] = {
            "mean_msgs_per_s": {"postfix": pf and round(pf, 1), "icsmail": ic and round(ic, 1)},
            "mean_server_cpu_s": {n: v and round(v, 2) for n, v in cpu.items()},
            "ratio_icsmail_over_postfix": ratio,
        }
        print(f"{mode}: mean msgs/s: postfix {pf and round(pf, 1)}, icsmail {ic and round(ic, 1)}; "
              f"ratio icsmail/postfix = {ratio if ratio is not None else 'n/a'} (target >= 2.0)")
    if "plain" in by_mode and "policy" in by_mode:
        cost = {}
        for n in ("postfix", "icsmail"):
            a = by_mode["plain"]["mean_msgs_per_s"][n]
            b = by_mode["policy"]["mean_msgs_per_s"][n]
            cost[n] = round(b / a, 2) if a and b else None
        by_mode["policy"]["msgs_per_s_policy_over_plain"] = cost
        print(f"policy/plain msgs/s: postfix {cost['postfix']}, icsmail {cost['icsmail']}")
    result = dict(meta)
    first = by_mode.get(modes[0], {}) if modes else {}
    result.update({
        "fsync": fs,
        "runs": runs,
        # the first mode's figures, as before modes existed; every mode's in by_mode
        "mean_msgs_per_s": first.get("mean_msgs_per_s"),
        "ratio_icsmail_over_postfix": first.get("ratio_icsmail_over_postfix"),
        "by_mode": by_mode,
        "target_ratio": 2.0,
    })
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"results written to {out_path}")


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "freeport":
        return freeport()
    if cmd == "waitport":
        return waitport(argv[2], argv[3])
    if cmd == "idle":
        return idle(argv[2], argv[3])
    if cmd == "fsync":
        return fsync_probe(argv[2])
    if cmd == "load":
        i = argv.index("--")
        name, maildir, n, out = argv[2:i]
        return load(name, maildir, n, out, argv[i + 1:])
    if cmd == "report":
        return report(*argv[2:6])
    if cmd == "policy-tables":
        return policy_tables(argv[2])
    if cmd == "evidence":
        return evidence(*argv[2:5])
    if cmd == "policy-check":
        return policy_check(*argv[2:6])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv) or 0)
