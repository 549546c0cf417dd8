#!/usr/bin/env python3
"""maestro at scale: loading large environment files, and plays over many simulated
ships (`simship`). See bench/README.md, section "scale.sh".

    python3 bench/scale.py [--quick] [--ships 100] [--instances-per-ship 200]
        [--big-ships 1000] [--instances-per-service 20] [--in-flight 8] [--latency-ms L]
        [--load-sizes 2000,20000,200000] [--chain-depth 1000] [--runs 5] [--cycles 3]
        [--big-cycles 1]
        [--parts load,plays] [--out bench/out]

Called by bench/scale.sh (which builds the release binaries); it can be run alone with
MAESTRO_BIN and SIMSHIP_BIN set. Standard library only. Only loopback is used: the
simulated ships listen on 127.0.0.1 and run nothing.

(a) loading: `deptree`, `deptree svc-1` and `config` / `config --json` (output to
    /dev/null) on gen_env.py files of 20 instances per service in 10 layers, and on a
    chain of services 20 instances each, every service requiring the one before
    (`chain-1` requires nothing; `deptree chain-1` is the load alone, `deptree chain-D`
    prints the whole chain). Wall time (median of --runs), CPU and peak RSS of each run.
(b) plays: SHIPS simulated ships x IPS instances (independent services of
    --instances-per-service instances each, as in the loading files; instance i on ship
    number i mod SHIPS), every request of a ship waiting L ms with at
    most K in flight. `start`, `status` (3 runs), `stop -a`, `clean -a`, --cycles times
    (--big-cycles for the big shape), each figure the median of its samples: wall, the
    controller's CPU and peak RSS (rusage of the child), the simulator's CPU (from
    /proc/PID/stat) and requests (from its counters). The bound a play's ships impose:
    requests per instance x L x instances per ship / K. L is chosen, unless given, from a
    calibration run (requests per instance of `start`) so that the bound of `start` is at
    least 10 s. The same is then run with --big-ships ships.

Prints a Markdown section (tables, every target with YES/NO) and writes the figures to
OUT/scale.json with date, commit and machine. Exit status 0 when every target holds.
"""

import argparse
import datetime
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
MAESTRO = os.environ.get("MAESTRO_BIN") or os.path.join(TARGET, "release", "maestro")
SIMSHIP = os.environ.get("SIMSHIP_BIN") or os.path.join(TARGET, "release", "simship")
TICK = os.sysconf("SC_CLK_TCK")
IMAGE = "simship/app:1"
# The bound `start` must impose at least (the shape); L is chosen for it.
MIN_BOUND = 10.0
# maestro's default per-ship limit of operations at once (`max_operations`). K is kept
# at or under it, so that the ship, not maestro's own limit, is what bounds a play.
MAX_OPERATIONS = 16


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --- measuring one command ------------------------------------------------------------

def run(cmd, out_path=os.devnull, env=None, timeout=3600, count=False):
    """Runs cmd, stdout to out_path (or, with `count`, through a pipe whose bytes are
    counted and dropped); returns {wall, user, sys, cpu, rss_mb, rc, output_bytes}.
    The output is never held here: the kernel carries this process's own peak RSS into
    a child it spawns, so this process stays small (see `harness_rss_mb`)."""
    size = 0
    with open(out_path, "wb") as out, open(out_path + ".err" if out_path != os.devnull
                                           else os.devnull, "wb") as err:
        began = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE if count else out, stderr=err,
                                stdin=subprocess.DEVNULL, env=env)
        deadline = began + timeout
        if count:
            fd = proc.stdout.fileno()
            while time.monotonic() < deadline:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                size += len(chunk)
            proc.stdout.close()
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                status = None
                break
            time.sleep(0.002)
        wall = time.monotonic() - began
    proc.returncode = 0  # reaped above; keeps Popen from waiting again
    rc = os.waitstatus_to_exitcode(status) if status is not None else "timeout"
    return {"wall": wall, "user": usage.ru_utime, "sys": usage.ru_stime,
            "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024.0,
            "rc": rc, "output_bytes": size}


def repeated(cmd, runs, timeout):
    """A warm-up run that counts the output, then `runs` runs to /dev/null (one when the
    warm-up took over a minute): the median wall and CPU, the largest RSS."""
    warm = run(cmd, timeout=timeout, count=True)
    if warm["rc"] != 0:
        samples = [warm]
    else:
        samples = [run(cmd, timeout=timeout) for _ in range(runs if warm["wall"] < 60 else 1)]
    bad = [s["rc"] for s in samples if s["rc"] != 0]
    return {"wall": statistics.median(s["wall"] for s in samples),
            "cpu": statistics.median(s["cpu"] for s in samples),
            "rss_mb": max(s["rss_mb"] for s in samples),
            "output_mb": warm["output_bytes"] / 1e6,
            "runs": len(samples), "failed": bad}


def chain_file(path, depth, per_service, ships):
    """`depth` services chain-1..chain-D, each requiring the one before, `per_service`
    instances each over `ships` ships."""
    with open(path, "w") as f:
        f.write("__maestro: {schema: 2}\nname: bench-chain\nships:\n")
        for k in range(ships):
            f.write("  ship-%d: {ip: 10.0.%d.%d}\n" % (k + 1, k // 250, k % 250 + 1))
        f.write("services:\n")
        n = 0
        for s in range(1, depth + 1):
            f.write("  chain-%d:\n    image: registry.example.com/chain:%d\n" % (s, s))
            if s > 1:
                f.write("    requires: [chain-%d]\n" % (s - 1))
            f.write("    instances:\n")
            for i in range(1, per_service + 1):
                f.write("      chain-%d-%d: {ship: ship-%d}\n" % (s, i, n % ships + 1))
                n += 1


def loading(a, tmp):
    rows, targets = [], []
    per_instance = {}
    for n in a.load_sizes:
        services = max(1, n // 20)
        ships = max(1, n // 200)
        path = os.path.join(tmp, "layered-%d.yaml" % n)
        with open(path, "w") as f:
            subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gen_env.py"),
                            "--instances", str(n), "--services", str(services),
                            "--ships", str(ships), "--layers", "10"], stdout=f, check=True)
        label = "layered %d (%d services, %d ships)" % (n, services, ships)
        commands = [("deptree", ["deptree"]), ("deptree svc-1", ["deptree", "svc-1"])]
        # `config` writes every instance's variables: 1.5 GB at 20,000 instances, some
        # 15 GB at 200,000, which measures the disk's pipe more than maestro. Its memory
        # (the target) is measured up to 20,000.
        if n <= 20000:
            commands += [("config", ["config"]), ("config --json", ["config", "--json"])]
        rows += measure_file(a, label, path, n, commands)
        per_instance[n] = next(r for r in rows if r["file"] == label
                               and r["command"] == "deptree")["wall"] / n
    depth, per = a.chain_depth, 20
    n = depth * per
    path = os.path.join(tmp, "chain-%d.yaml" % n)
    chain_file(path, depth, per, max(1, n // 200))
    chain_label = "chain %d (%d deep)" % (n, depth)
    # No `config` here: every instance gets the variables of every instance it depends
    # on, transitively (MaestroNG's contract), so a chain's output grows with the square
    # of its length (some 16 GB at 1,000 x 20).
    rows += measure_file(a, chain_label, path, n, [
        ("deptree chain-1", ["deptree", "chain-1"]),
        ("deptree chain-%d" % depth, ["deptree", "chain-%d" % depth])])

    def row(label, command):
        return next((r for r in rows if r["file"] == label and r["command"] == command), None)

    def target(what, value, holds):
        targets.append({"target": what, "measured": value, "holds": holds})

    load = row(chain_label, "deptree chain-1")
    full = row(chain_label, "deptree chain-%d" % depth)
    target("chain of %d loads (`deptree chain-1`) in under 150 ms" % n,
           "%.0f ms" % (load["wall"] * 1000), ok(load) and load["wall"] < 0.150)
    target("... and in under 100 MB", "%.0f MB" % load["rss_mb"], ok(load) and load["rss_mb"] < 100)
    target("chain of %d prints its whole deptree (`deptree chain-%d`) in under 1 s" % (n, depth),
           "%.2f s" % full["wall"], ok(full) and full["wall"] < 1.0)
    big = max(a.load_sizes)
    big_label = next(r["file"] for r in rows if r["file"].startswith("layered %d " % big))
    d = row(big_label, "deptree")
    target("layered %d: `deptree` in under 3 s" % big, "%.2f s" % d["wall"], ok(d) and d["wall"] < 3.0)
    target("layered %d: `deptree` in under 1 GB" % big, "%.0f MB" % d["rss_mb"], ok(d) and d["rss_mb"] < 1024)
    if 20000 in per_instance and big > 20000:
        ratio = per_instance[big] / per_instance[20000]
        target("layered: `deptree` time per instance at %d at most 2x that at 20000" % big,
               "%.2fx" % ratio, ratio <= 2.0)
    # Memory independent of output size: what `config` holds beyond `deptree svc-1` (same
    # file, same load, one line of output) must be small beside what it prints.
    for r in rows:
        if r["command"].startswith("config"):
            base = row(r["file"], "deptree svc-1")
            extra = r["rss_mb"] - base["rss_mb"]
            limit = max(10.0, 0.1 * r["output_mb"])
            target("%s: `%s` RSS beyond the load's under max(10 MB, 10%% of its %.0f MB output)"
                   % (r["file"], r["command"], r["output_mb"]),
                   "%+.0f MB" % extra, ok(r) and extra < limit)
    return rows, targets


def ok(r):
    return r is not None and not r["failed"]


def measure_file(a, label, path, n, commands):
    rows = []
    for name, args in commands:
        cmd = [MAESTRO, "-f", path] + args
        m = repeated(cmd, a.runs, a.timeout)
        m.update({"file": label, "instances": n, "command": name})
        if m["failed"]:
            log("!! %s: `%s` exited %s" % (label, " ".join(cmd), m["failed"]))
        log("  %s: %s: %.3f s, %.0f MB, output %.1f MB"
            % (label, name, m["wall"], m["rss_mb"], m["output_mb"]))
        rows.append(m)
    return rows


# --- (b) plays on simulated ships ----------------------------------------------------

class Sims:
    """simship processes serving `ships` ships between them, one per core at most."""

    def __init__(self, ships, latency_ms, in_flight):
        self.procs, self.ports = [], []
        count = max(1, min(os.cpu_count() or 1, ships))
        share = [ships // count + (1 if i < ships % count else 0) for i in range(count)]

        def more_files():
            # A connection per request: many ships x K in flight open many sockets.
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

        for n in share:
            p = subprocess.Popen([SIMSHIP, "--ships", str(n), "--latency-ms", str(latency_ms),
                                  "--in-flight", str(in_flight), "--threads", "1"],
                                 stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                 text=True, preexec_fn=more_files)
            self.procs.append(p)
            line = p.stdout.readline()
            if not line.startswith("ports: "):
                self.stop()
                raise SystemExit("simship did not start: %r" % line)
            self.ports += [int(x) for x in line.split()[1].split(",")]

    def cpu(self):
        total = 0.0
        for p in self.procs:
            with open("/proc/%d/stat" % p.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
        return total

    def stats(self):
        out = []
        for port in self.ports:
            with urllib.request.urlopen("http://127.0.0.1:%d/_simship/stats" % port, timeout=30) as r:
                out.append(json.load(r))
        return out

    def totals(self):
        stats = self.stats()
        return {"requests": sum(s["total"] for s in stats),
                "running": sum(s["containers"]["running"] for s in stats),
                "exited": sum(s["containers"]["exited"] for s in stats),
                "created": sum(s["containers"]["created"] for s in stats),
                "refused": sum(s["refused"] for s in stats),
                "accept_errors": sum(s["accept_errors"] for s in stats)}

    def stop(self):
        for p in self.procs:
            p.kill()
            p.wait()


def environment(path, name, ports, per_ship, services):
    ships = len(ports)
    with open(path, "w") as f:
        f.write("__maestro: {schema: 2}\nname: %s\nships:\n" % name)
        for i, port in enumerate(ports):
            f.write("  ship-%d: {ip: 127.0.0.1, docker_port: %d, timeout: 60}\n" % (i + 1, port))
        f.write("services:\n")
        total = ships * per_ship
        for s in range(services):
            f.write("  app%d:\n    image: %s\n    instances:\n" % (s + 1, IMAGE))
            for i in range(s, total, services):
                f.write("      app%d-%d: {ship: ship-%d}\n" % (s + 1, i + 1, i % ships + 1))


def maestro_env():
    # The simulated ships run nothing: no container could report readiness.
    return dict(os.environ, NO_COLOR="1", MAESTRO_READINESS_ADDRESS="off")


def plays(a, tmp, ships, latency_ms, label, cycles):
    """One shape: `cycles` times start, status (3 runs), stop -a, clean -a. Returns (rows,
    failures)."""
    n = ships * a.instances_per_ship
    sims = Sims(ships, latency_ms, a.in_flight)
    rows, failures = [], []
    try:
        path = os.path.join(tmp, "plays-%d.yaml" % ships)
        environment(path, "bench-scale-%d" % ships, sims.ports, a.instances_per_ship,
                    services_of(a, ships))
        checks = {"start": ("running", n), "stop -a": ("exited", n), "clean -a": ("created", 0)}
        # Each play's samples, over every cycle (start, status x 3, stop -a, clean -a).
        sampled = {}
        for cycle in range(cycles):
            for play, runs in (("start", 1), ("status", 3), ("stop -a", 1), ("clean -a", 1)):
                for i in range(runs):
                    before, cpu0 = sims.totals(), sims.cpu()
                    log_path = os.path.join(tmp, "%s-%d-%s-%d-%d.log"
                                            % (label, ships, play.split()[0], cycle, i))
                    r = run([MAESTRO, "-f", path] + play.split(), out_path=log_path,
                            env=maestro_env())
                    after, cpu1 = sims.totals(), sims.cpu()
                    r["sim_cpu"] = cpu1 - cpu0
                    r["requests"] = after["requests"] - before["requests"]
                    r["refused"] = after["refused"] - before["refused"]
                    r["accept_errors"] = after["accept_errors"] - before["accept_errors"]
                    r["containers"] = {k: after[k] for k in ("running", "exited", "created")}
                    sampled.setdefault(play, []).append(r)
                    why = []
                    if r["rc"] != 0:
                        why.append("exit %s" % r["rc"])
                    if play in checks:
                        kind, want = checks[play]
                        if kind == "created":
                            left = after["running"] + after["exited"] + after["created"]
                            if left != 0:
                                why.append("%d containers left" % left)
                        elif after[kind] != want:
                            why.append("%d of %d %s" % (after[kind], want, kind))
                    if r["accept_errors"]:
                        why.append("%d connections the simulator could not accept "
                                   "(file descriptors?)" % r["accept_errors"])
                    if why:
                        tail = ""
                        for p in (log_path, log_path + ".err"):
                            with open(p, errors="replace") as f:
                                tail += f.read()[-1500:]
                        failures.append({"shape": label, "play": play, "cycle": cycle + 1,
                                         "why": why, "output": tail})
                        log("!! %s %s: %s\n%s" % (label, play, "; ".join(why), tail))
                    log("  %s: %s cycle %d run %d: %.2f s, cpu %.2f s, %.0f MB, %d requests, "
                        "simulator cpu %.2f s" % (label, play, cycle + 1, i + 1, r["wall"],
                                                  r["cpu"], r["rss_mb"], r["requests"],
                                                  r["sim_cpu"]))
        for play, samples in sampled.items():
            # Each figure is the median of its own samples: one run's CPU varies by up to
            # 1.8x on a shared machine (the simulator's own, for the same requests, too).
            # Peak RSS is the highest of all.
            r = {k: statistics.median(s[k] for s in samples)
                 for k in ("wall", "cpu", "sim_cpu", "requests")}
            # Peak RSS is the highest of all; a failed run fails the row.
            r["rss_mb"] = max(s["rss_mb"] for s in samples)
            r["rc"] = next((s["rc"] for s in samples if s["rc"] != 0), 0)
            per = r["requests"] / n if n else 0
            bound = per * (latency_ms / 1000.0) * a.instances_per_ship / a.in_flight
            rows.append(dict(r, shape=label, play=play, ships=ships, instances=n,
                             latency_ms=latency_ms, in_flight=a.in_flight,
                             requests_per_instance=per, bound=bound,
                             cpu_per_instance_ms=1000.0 * r["cpu"] / n if n else 0,
                             sim_processes=len(sims.procs), runs=len(samples),
                             samples=samples))
    finally:
        sims.stop()
    return rows, failures


def services_of(a, ships):
    """How many services the plays' file of `ships` ships has."""
    return max(1, ships * a.instances_per_ship // a.instances_per_service)


def calibrate(a, tmp):
    """Requests per instance of `start`, on 2 ships with no latency, as many instances per
    ship as the main shape (a play's requests per ship, the lock's, weigh as much)."""
    ships, per = 2, a.instances_per_ship
    sims = Sims(ships, 0, a.in_flight)
    try:
        path = os.path.join(tmp, "calibrate.yaml")
        environment(path, "bench-scale-calibrate", sims.ports, per, services_of(a, ships))
        before = sims.totals()["requests"]
        r = run([MAESTRO, "-f", path, "start"], env=maestro_env())
        if r["rc"] != 0:
            raise SystemExit("calibration: maestro start exited %s" % r["rc"])
        return (sims.totals()["requests"] - before) / (ships * per)
    finally:
        sims.stop()


# --- report --------------------------------------------------------------------------

def yes(b):
    return "YES" if b else "NO"


def fmt_s(s):
    return "%.1f ms" % (s * 1000) if s < 1 else "%.2f s" % s


def machine():
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": commit + ("+dirty" if dirty else ""), "nproc": os.cpu_count(),
            "cpu": model, "memory_mb": mem, "kernel": platform.release(),
            "open_files": resource.getrlimit(resource.RLIMIT_NOFILE)[1]}


def report(a, info, load_rows, load_targets, play_rows, play_targets, failures):
    print("### Results\n")
    print("%s, commit %s, %d cores (%s), %d MB, kernel %s; `python3 bench/scale.py %s`.\n"
          % (info["date"], info["commit"], info["nproc"], info["cpu"] or "?", info["memory_mb"],
             info["kernel"], " ".join(sys.argv[1:])))
    if load_rows:
        print("Loading (median of %d runs after a warm-up, one run when the warm-up took over "
              "a minute; output to /dev/null; its size from the warm-up). Peak RSS includes "
              "the harness's own %.0f MB, which the kernel carries into a spawned child:\n"
              % (a.runs, info["harness_rss_mb"]))
        print("| file | command | wall | CPU | peak RSS | output |")
        print("| --- | --- | ---: | ---: | ---: | ---: |")
        for r in load_rows:
            print("| %s | `%s` | %s | %s | %.0f MB | %.1f MB |%s" % (
                r["file"], r["command"], fmt_s(r["wall"]), fmt_s(r["cpu"]), r["rss_mb"],
                r["output_mb"], " **failed: exit %s**" % r["failed"] if r["failed"] else ""))
        print()
    if play_rows:
        print("Plays on simulated ships (`simship`, independent services of %d instances, "
              "instances spread round-robin over the ships, no dependencies; K = %d requests "
              "in flight per ship; each figure the median of its own samples, peak RSS the "
              "highest: %d cycles of start, status x 3, stop -a and clean -a for the main "
              "shape, %d for the big one):\n" % (a.instances_per_service, a.in_flight, a.cycles, a.big_cycles))
        print("| shape | play | wall | bound | wall / bound | requests per instance | "
              "controller CPU | CPU per instance | peak RSS | simulator CPU (processes) |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in play_rows:
            print("| %s: %d ships x %d, L = %d ms | `%s` | %s | %s | %s | %.2f | %s | %.3f ms | "
                  "%.0f MB | %s (%d) |" % (
                      r["shape"], r["ships"], a.instances_per_ship, r["latency_ms"], r["play"],
                      fmt_s(r["wall"]), fmt_s(r["bound"]),
                      "%.2f" % (r["wall"] / r["bound"]) if r["bound"] else "-",
                      r["requests_per_instance"], fmt_s(r["cpu"]), r["cpu_per_instance_ms"],
                      r["rss_mb"], fmt_s(r["sim_cpu"]), r["sim_processes"]))
        print()
    targets = load_targets + play_targets
    print("| target | measured | holds |")
    print("| --- | --- | --- |")
    for t in targets:
        print("| %s | %s | %s |" % (t["target"], t["measured"], yes(t["holds"])))
    if failures:
        print("\nFailures:\n")
        for f in failures:
            print("- %s, `%s`: %s" % (f["shape"], f["play"], "; ".join(f["why"])))
    return all(t["holds"] for t in targets) and not failures


def play_targets(rows, a):
    targets = []
    main = [r for r in rows if r["shape"] == "main"]

    def get(play):
        return next((r for r in main if r["play"] == play), None)

    def target(what, value, holds):
        targets.append({"target": what, "measured": value, "holds": holds})

    start, status, stop = get("start"), get("status"), get("stop -a")
    if start:
        target("`start` bound (requests per instance x L x instances per ship / K) at least 10 s",
               fmt_s(start["bound"]), start["bound"] >= MIN_BOUND)
    if status:
        target("`status` of %d instances under 1 s" % status["instances"], fmt_s(status["wall"]),
               status["rc"] == 0 and status["wall"] < 1.0)
    for r in (start, stop):
        if r:
            target("`%s` of %d instances within 20%% of its bound (%s)"
                   % (r["play"], r["instances"], fmt_s(r["bound"])),
                   "%.2fx" % (r["wall"] / r["bound"]) if r["bound"] else "-",
                   r["rc"] == 0 and r["bound"] > 0 and r["wall"] <= 1.2 * r["bound"])
    if start:
        target("controller CPU per instance of `start` under 0.3 ms",
               "%.3f ms" % start["cpu_per_instance_ms"], start["cpu_per_instance_ms"] < 0.3)
    if main:
        peak = max(r["rss_mb"] for r in main)
        target("controller peak RSS under 300 MB", "%.0f MB" % peak, peak < 300)
        # The simulator is not the bottleneck when its processes were mostly idle.
        busiest = max(r["sim_cpu"] / (r["wall"] * r["sim_processes"]) for r in main)
        target("simulator not the bottleneck (its CPU under half of its processes' wall time)",
               "%.0f%% busy at most" % (100 * busiest), busiest < 0.5)
    return targets


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="a small run to check the script: 5 ships x 20, big shape 10 ships, "
                         "loading 2000 only and a 100-deep chain")
    ap.add_argument("--ships", type=int, default=100)
    ap.add_argument("--instances-per-ship", type=int, default=200)
    ap.add_argument("--big-ships", type=int, default=1000, help="the second shape (0: none)")
    # Every instance receives its service's peers' variables (three per peer): 20 per
    # service is the loading files' shape; 2,000 gives each container 6,000 variables.
    ap.add_argument("--instances-per-service", type=int, default=20)
    ap.add_argument("--in-flight", type=int, default=8)
    ap.add_argument("--latency-ms", type=int, default=0,
                    help="every request's latency (default: chosen for a 10 s bound on start)")
    ap.add_argument("--load-sizes", default="2000,20000,200000")
    ap.add_argument("--chain-depth", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cycles", type=int, default=3,
                    help="plays of the main shape: start, status x 3, stop -a, clean -a, so "
                         "many times; each figure the median of its samples")
    ap.add_argument("--big-cycles", type=int, default=1,
                    help="the same for the big shape")
    ap.add_argument("--timeout", type=int, default=900,
                    help="seconds one loading command may take before it counts as failed")
    ap.add_argument("--parts", default="load,plays")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out"))
    a = ap.parse_args()
    if a.quick:
        a.ships, a.instances_per_ship, a.big_ships = 5, 20, 10
        a.load_sizes, a.chain_depth, a.runs, a.cycles = "2000", 100, 2, 1
    a.load_sizes = [int(x) for x in a.load_sizes.split(",") if x]
    if not 0 < a.in_flight <= MAX_OPERATIONS:
        raise SystemExit("--in-flight must be 1..%d (maestro's default max_operations per "
                         "ship, so that the ship is what limits)" % MAX_OPERATIONS)
    for binary in (MAESTRO, SIMSHIP):
        if not os.access(binary, os.X_OK):
            raise SystemExit("no binary at %s (bench/scale.sh builds it)" % binary)
    info = machine()
    log("machine: %(nproc)d cores, %(memory_mb)d MB, kernel %(kernel)s, commit %(commit)s" % info)
    tmp = tempfile.mkdtemp(prefix="maestro-bench-scale-")
    load_rows, load_t, play_rows, play_t, failures = [], [], [], [], []
    result = {"machine": info, "args": {k: v for k, v in vars(a).items()}}
    try:
        if "load" in a.parts:
            load_rows, load_t = loading(a, tmp)
        if "plays" in a.parts:
            latency = a.latency_ms
            if not latency:
                per = calibrate(a, tmp)
                latency = math.ceil(1000 * MIN_BOUND * a.in_flight / (per * a.instances_per_ship))
                log("calibration: %.2f requests per instance of start: L = %d ms" % (per, latency))
                result["calibration_requests_per_instance"] = per
            rows, f = plays(a, tmp, a.ships, latency, "main", a.cycles)
            play_rows += rows
            failures += f
            if a.big_ships:
                rows, f = plays(a, tmp, a.big_ships, latency, "big", a.big_cycles)
                play_rows += rows
                failures += f
            play_t = play_targets(play_rows, a)
    finally:
        info["harness_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        result.update({"loading": load_rows, "plays": play_rows, "failures": failures,
                       "targets": load_t + play_t})
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "scale.json"), "w") as f:
            json.dump(result, f, indent=1)
        shutil.rmtree(tmp, ignore_errors=True)
    held = report(a, info, load_rows, load_t, play_rows, play_t, failures)
    log("figures in %s" % os.path.join(a.out, "scale.json"))
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())
