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
"""

import json
import os
import signal
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
    server_pid = os.environ.get("SERVER_PID")
    outf = open(out, "w")
    cpu0 = (machine_cpu_s(), tree_cpu_s(server_pid), own_cpu_s(), tree_cpu_s(2))
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
    cpu1 = (machine_cpu_s(), tree_cpu_s(server_pid), own_cpu_s(), tree_cpu_s(2))
    outf.close()
    machine = cpu1[0][0] - cpu0[0][0]
    server_cpu = cpu1[1] - cpu0[1]
    client_cpu = cpu1[2] - cpu0[2]  # smtp-source + this poller
    # kernel threads (children of kthreadd: writeback, jbd2, ...) and irq/softirq time
    kernel = (cpu1[3] - cpu0[3]) + (cpu1[0][1] - cpu0[0][1])
    steal = cpu1[0][2] - cpu0[0][2]
    other = max(0.0, machine - server_cpu - client_cpu - kernel)
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
        "cpu_s_other": round(other, 2),
        "other_cpu_pct_during": round(100 * other / (ncpu * max(t1 - t0, 1e-3)), 1),
        "cpu_busy_pct_before": round(busy, 1),
        "maildir_fsync_ms_before": fsync_ms,
        "client_output_noise": errors[:20],
    }
    print(json.dumps(res))
    return 0


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
    hdr = f"{'run':>3}  {'server':<8} {'messages':>8} {'sessions':>8} {'seconds':>8} " \
          f"{'msgs/s':>8} {'client_s':>8} {'srv_cpu':>7} {'other%':>6} {'fsyncms':>7}  status"
    print(hdr)
    print("-" * len(hdr))
    for i, r in enumerate(runs, 1):
        secs = f"{r['seconds']:.2f}" if r.get("seconds") else "-"
        rate = f"{r['msgs_per_s']:.1f}" if r.get("msgs_per_s") else "-"
        status = "ok" if r["ok"] else (
            f"FAILED (rc={r['smtp_source_rc']}, delivered {r['delivered']}/{r['messages']})")
        print(f"{i:>3}  {r['server']:<8} {r['messages']:>8} {meta['sessions']:>8} {secs:>8} "
              f"{rate:>8} {r['client_seconds']:>8.2f} {r.get('cpu_s_server', 0):>7.2f} {r.get('other_cpu_pct_during', 0):>6.1f} {r.get('maildir_fsync_ms_before', 0):>7.3f}  {status}")

    def best(name):
        xs = [r["msgs_per_s"] for r in runs if r["server"] == name and r["ok"]]
        return (sum(xs) / len(xs)) if xs else None

    pf, ic = best("postfix"), best("icsmail")
    ratio = round(ic / pf, 2) if pf and ic else None
    noisy = [r for r in runs if r.get("other_cpu_pct_during", 0) > 10]
    if noisy:
        print(f"WARNING: {len(noisy)} run(s) shared the CPUs with other work (other% > 10); "
              "their numbers are skewed")
    print()
    print(f"mean msgs/s: postfix {pf and round(pf, 1)}, icsmail {ic and round(ic, 1)}; "
          f"ratio icsmail/postfix = {ratio if ratio is not None else 'n/a'} (target >= 2.0)")
    result = dict(meta)
    result.update({
        "fsync": fs,
        "runs": runs,
        "mean_msgs_per_s": {"postfix": pf and round(pf, 1), "icsmail": ic and round(ic, 1)},
        "ratio_icsmail_over_postfix": ratio,
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
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv) or 0)
