#!/usr/bin/env python3
"""Helpers for bench/smtp-inbound/run.sh (standard library only).

Subcommands:
  freeport                      print a free TCP port on 127.0.0.1
  waitport PORT TIMEOUT         wait until 127.0.0.1:PORT accepts a connection
  fsync DIR                     measure this disk's fsync cost, print JSON
  load NAME MAILDIR N OUT -- CMD...
                                start CMD (smtp-source), poll MAILDIR/new until it
                                holds N files, print one JSON result line
  report RUNS_JSONL FSYNC_JSON META_JSON OUT_JSON
                                print the summary table and write the results file
"""

import json
import os
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
    outf = open(out, "w")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=outf, stderr=subprocess.STDOUT)
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
        if client_done is not None and now - client_done > timeout:
            break  # client finished but mail never all arrived
        if now - t0 > timeout * 2:
            proc.kill()
            proc.wait()
            client_done = client_done or time.monotonic()
            break
        time.sleep(0.01)
    outf.close()
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
          f"{'msgs/s':>8} {'client_s':>8}  status"
    print(hdr)
    print("-" * len(hdr))
    for i, r in enumerate(runs, 1):
        secs = f"{r['seconds']:.2f}" if r.get("seconds") else "-"
        rate = f"{r['msgs_per_s']:.1f}" if r.get("msgs_per_s") else "-"
        status = "ok" if r["ok"] else (
            f"FAILED (rc={r['smtp_source_rc']}, delivered {r['delivered']}/{r['messages']})")
        print(f"{i:>3}  {r['server']:<8} {r['messages']:>8} {meta['sessions']:>8} {secs:>8} "
              f"{rate:>8} {r['client_seconds']:>8.2f}  {status}")

    def best(name):
        xs = [r["msgs_per_s"] for r in runs if r["server"] == name and r["ok"]]
        return (sum(xs) / len(xs)) if xs else None

    pf, ic = best("postfix"), best("icsmail")
    ratio = round(ic / pf, 2) if pf and ic else None
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
