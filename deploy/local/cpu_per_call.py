#!/usr/bin/env python3
"""CPU time per call of each process of the system under load.

Runs a load command (an em-bench run that writes --json FILE), samples the
CPU time (user + system, /proc/PID/stat) of the memory-service, the
auth-service, every PostgreSQL process and em-bench over a window that
leaves out em-bench's set-up, and divides by the run's calls per second:

    deploy/local/cpu_per_call.py --json /tmp/run.json -- \
      target/release/em-bench --prefix bench-a --clients 16 --connections 4 \
        --scenario recall --seconds 14 --json /tmp/run.json

PostgreSQL backends that exit inside the window are not counted; the pool's
connections live for the whole run, so none do.
"""
import argparse
import json
import os
import subprocess
import time

PROCESSES = ("memory-service", "auth-service", "postgres", "em-bench")


def cpu_seconds():
    """CPU seconds used so far by each process group, by command line."""
    ticks = dict.fromkeys(PROCESSES, 0)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        for name in PROCESSES:
            if name in cmdline:
                ticks[name] += int(fields[11]) + int(fields[12])
    hz = os.sysconf("SC_CLK_TCK")
    return {name: t / hz for name, t in ticks.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", required=True, help="the --json FILE the command writes")
    parser.add_argument("--skip", type=float, default=4, help="seconds left out at the start")
    parser.add_argument("--window", type=float, default=8, help="seconds sampled")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    load = subprocess.Popen(command)
    time.sleep(args.skip)
    before, start = cpu_seconds(), time.monotonic()
    time.sleep(args.window)
    after, elapsed = cpu_seconds(), time.monotonic() - start
    if load.wait() != 0:
        raise SystemExit("the load command failed")
    with open(args.json) as f:
        rate = json.load(f)["ok_per_second"]
    total = 0.0
    for name in PROCESSES:
        used = (after[name] - before[name]) / elapsed
        total += used
        print(f"{name:15s} {used * 100:6.1f}% of a core {used / rate * 1e6:8.1f} µs per call")
    print(f"{'all':15s} {total * 100:6.1f}% of a core {total / rate * 1e6:8.1f} µs per call")


if __name__ == "__main__":
    main()
