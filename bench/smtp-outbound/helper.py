#!/usr/bin/env python3
"""Helpers of bench/smtp-outbound/run.sh.

  helper.py freeport
  helper.py inject PORT USER PASSWORD COUNT SIZE THREADS   submit with AUTH (persistent sessions)
  helper.py wait-empty DIR... TIMEOUT                      until no file is left below the dirs;
                                                           prints the seconds it took
  helper.py sink-count FILE                                last counter printed by smtp-sink -c
  helper.py report RUNS_JSONL META_JSON OUT_JSON           table + JSON result
"""

from __future__ import annotations

import json
import os
import re
import smtplib
import socket
import sys
import threading
import time


def freeport() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        print(sock.getsockname()[1])


def inject(port: str, user: str, password: str, count: str, size: str, threads: str) -> None:
    count, size, threads = int(count), int(size), int(threads)
    body = ("x" * 76 + "\r\n") * max(1, size // 78)
    errors: list[str] = []
    lock = threading.Lock()
    next_index = [0]

    def worker() -> None:
        try:
            with smtplib.SMTP("127.0.0.1", int(port), timeout=60) as client:
                client.login(user, password)
                while True:
                    with lock:
                        index = next_index[0]
                        if index >= count:
                            return
                        next_index[0] += 1
                    message = (f"From: <{user}>\r\nTo: <user@sink.test>\r\n"
                               f"Subject: bench {index}\r\nMessage-ID: <bench-{index}@bench.test>\r\n"
                               f"\r\n{body}")
                    client.sendmail(user, ["user@sink.test"], message)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    if errors:
        sys.exit(f"inject failed: {errors[:3]}")


def count_files(dirs: list[str]) -> int:
    total = 0
    for directory in dirs:
        for _root, _dirs, files in os.walk(directory):
            total += len(files)
    return total


def wait_empty(*args: str) -> None:
    *dirs, timeout = args
    start = time.monotonic()
    deadline = start + float(timeout)
    while time.monotonic() < deadline:
        if count_files(dirs) == 0:
            print(f"{time.monotonic() - start:.3f}")
            return
        time.sleep(0.02)
    sys.exit(f"still {count_files(dirs)} files after {timeout} s")


def sink_count(path: str) -> None:
    text = open(path, errors="replace").read()
    numbers = re.findall(r"\d+", text)
    print(numbers[-1] if numbers else 0)


def report(runs_path: str, meta_path: str, out_path: str) -> None:
    runs = [json.loads(line) for line in open(runs_path) if line.strip()]
    meta = json.load(open(meta_path))
    best = {}
    print(f"\n{'server':<10} {'round':>5} {'messages':>9} {'seconds':>8} {'msg/s':>9}")
    for run in runs:
        print(f"{run['server']:<10} {run['round']:>5} {run['messages']:>9} "
              f"{run['seconds']:>8.2f} {run['rate']:>9.1f}")
        best[run["server"]] = max(best.get(run["server"], 0), run["rate"])
    ratio = None
    if best.get("postfix") and best.get("icsmail"):
        ratio = best["icsmail"] / best["postfix"]
        print(f"\nbest rates: ics-mail {best['icsmail']:.1f}/s, Postfix {best['postfix']:.1f}/s, "
              f"ratio {ratio:.2f} (target: >= 1)")
    result = {**meta, "runs": runs, "best": best, "ratio": ratio}
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as out:
        json.dump(result, out, indent=2)
    print(f"written to {out_path}")


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    {"freeport": freeport, "inject": inject, "wait-empty": wait_empty,
     "sink-count": sink_count, "report": report}[command](*rest)
