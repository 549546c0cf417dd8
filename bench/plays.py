#!/usr/bin/env python3
"""Plays against the local Docker engine: MaestroNG 0.8.3, docker compose and
this project's maestro, side by side. See bench/README.md ("plays.sh").

Called by bench/plays.sh, which installs what is needed, builds the image and
maestro, and runs the socat bridge MaestroNG talks to. Standard library only.

    python3 bench/plays.py run --out DIR --maestro BIN --maestrong BIN \
        --compose "docker-compose" --ng-port PORT [--runs N] ...
    python3 bench/plays.py cleanup     # removes every container named mb-*

Every container this benchmark creates is named `mb-<tool>-<play>-...`
(tool: ng = MaestroNG, rs = maestro, cp = compose), so `cleanup` finds them
all by name. Compose projects are `mbcp<play>`; every compose service sets
`network_mode`, so compose creates no network (cleanup removes any network
named mbcp* anyway).
"""

import argparse
import calendar
import http.client
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import threading
import time

IMAGE = "maestro-bench/busybox:1"
PREFIX = "mb-"
TOOLS = ("ng", "cp", "rs")
# (b) also runs maestro with the readiness handshake: the apps run under
# `maestro-guest run --ready-when tcp:PORT` (image --guest-image), no check.
CHAIN_TOOLS = TOOLS + ("hs",)
TOOL_NAMES = {"ng": "MaestroNG 0.8.3", "cp": "compose", "rs": "maestro",
              "hs": "maestro, handshake", "api": "engine API floor"}

# App commands. `trap 'exit 0' TERM` + `wait` makes `docker stop` immediate.
IDLE_CMD = "trap 'exit 0' TERM; sleep 3600 & wait"
APP_DELAY = 0.3  # seconds before a chain app opens its port


def chain_cmd(port):
    # busybox httpd binds 127.0.0.1 only (busybox nc cannot choose an address,
    # and with host networking it would listen on every interface).
    return ("trap 'exit 0' TERM; sleep %s; httpd -f -p 127.0.0.1:%d -h /tmp & wait"
            % (APP_DELAY, port))


def chain_port(tool, level):
    return 17300 + 10 * CHAIN_TOOLS.index(tool) + level


def names(tool, play, n):
    width = len(str(n))
    return ["%s%s-%s-%0*d" % (PREFIX, tool, play, width, i) for i in range(1, n + 1)]


def chain_names(tool):
    return ["%s%s-b-l%d" % (PREFIX, tool, i) for i in range(1, 6)]


# --- environment files -------------------------------------------------------

def q(s):
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(s)


def ship_yaml(tool, ng_port, ng_api):
    if tool == "ng":
        # docker-py 1.10.6 + requests 2.34 cannot use the unix socket: TCP via
        # socat on loopback, API version of this engine.
        return ("ships:\n  local: {ip: 127.0.0.1, docker_port: %d, api_version: \"%s\", timeout: 60}\n"
                % (ng_port, ng_api))
    return "ships:\n  local: {ip: 127.0.0.1, socket_path: /var/run/docker.sock, timeout: 60}\n"


def maestro_flat(tool, play, n, ng_port, ng_api):
    """One service with n independent instances (plays a, c, d)."""
    out = ["__maestro: {schema: 2}\n", "name: mb-%s-%s\n" % (tool, play),
           ship_yaml(tool, ng_port, ng_api), "services:\n",
           "  %s:\n" % play, "    image: %s\n" % IMAGE, "    instances:\n"]
    for name in names(tool, play, n):
        out.append("      %s: {ship: local, command: %s}\n"
                   % (name, q('sh -c "%s"' % IDLE_CMD)))
    return "".join(out)


def maestro_chain(tool, ng_port, ng_api, guest_image=None):
    """The chain with tcp checks, or (tool "hs") with the handshake: each app under
    `maestro-guest run --ready-when tcp:PORT` in `guest_image`, no check."""
    handshake = tool == "hs"
    out = ["__maestro: {schema: 2}\n", "name: mb-%s-b\n" % tool,
           ship_yaml(tool, ng_port, ng_api), "services:\n"]
    for level, name in enumerate(chain_names(tool), 1):
        port = chain_port(tool, level)
        out.append("  l%d:\n" % level)
        out.append("    image: %s\n" % (guest_image if handshake else IMAGE))
        if level > 1:
            out.append("    requires: [l%d]\n" % (level - 1))
        if not handshake:
            out.append("    lifecycle:\n      running: [{type: tcp, port: app}]\n")
        out.append("    instances:\n")
        out.append("      %s:\n" % name)
        out.append("        ship: local\n")
        out.append("        net: host\n")
        out.append("        ports: {app: \"%d:%d\"}\n" % (port, port))
        if handshake:
            command = ["maestro-guest", "run", "--ready-when", "tcp:%d" % port, "--",
                       "sh", "-c", chain_cmd(port)]
            out.append("        command: %s\n" % json.dumps(command))
        else:
            out.append("        command: %s\n" % q('sh -c "%s"' % chain_cmd(port)))
    return "".join(out)


def compose_flat(play, n):
    out = ["services:\n"]
    for i, name in enumerate(names("cp", play, n), 1):
        out.append("  %s%d:\n" % (play, i))
        out.append("    image: %s\n" % IMAGE)
        out.append("    container_name: %s\n" % name)
        out.append("    network_mode: bridge\n")
        out.append("    command: %s\n" % json.dumps(["sh", "-c", IDLE_CMD]))
    return "".join(out)


# Compose's fastest health check: the engine refuses intervals under 1 ms
# (this engine speaks API 1.41: no start_interval). A long start_period and
# many retries so the failures before the port opens never make it unhealthy.
HEALTH = {"interval": "1ms", "timeout": "1s", "retries": 1000, "start_period": "60s"}


def compose_chain():
    out = ["services:\n"]
    for level, name in enumerate(chain_names("cp"), 1):
        port = chain_port("cp", level)
        out.append("  l%d:\n" % level)
        out.append("    image: %s\n" % IMAGE)
        out.append("    container_name: %s\n" % name)
        out.append("    network_mode: host\n")
        out.append("    command: %s\n" % json.dumps(["sh", "-c", chain_cmd(port)]))
        if level > 1:
            out.append("    depends_on: {l%d: {condition: service_healthy}}\n" % (level - 1))
        out.append("    healthcheck:\n")
        out.append("      test: %s\n" % json.dumps(["CMD", "nc", "127.0.0.1", str(port)]))
        for k, v in HEALTH.items():
            out.append("      %s: %s\n" % (k, v))
    return "".join(out)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def generate(out, a_n, c_n, ng_port, ng_api, guest_image):
    files = {}
    files[("hs", "b")] = os.path.join(out, "hs", "b.yaml")
    write(files[("hs", "b")], maestro_chain("hs", ng_port, ng_api, guest_image))
    for tool in ("ng", "rs"):
        files[(tool, "a")] = os.path.join(out, tool, "a.yaml")
        write(files[(tool, "a")], maestro_flat(tool, "a", a_n, ng_port, ng_api))
        files[(tool, "b")] = os.path.join(out, tool, "b.yaml")
        write(files[(tool, "b")], maestro_chain(tool, ng_port, ng_api))
        files[(tool, "c")] = os.path.join(out, tool, "c.yaml")
        write(files[(tool, "c")], maestro_flat(tool, "c", c_n, ng_port, ng_api))
    for play, text in (("a", compose_flat("a", a_n)), ("b", compose_chain()),
                       ("c", compose_flat("c", c_n))):
        files[("cp", play)] = os.path.join(out, "cp", play, "docker-compose.yml")
        write(files[("cp", play)], text)
    return files


# --- docker helpers ------------------------------------------------------------

def docker(*args, check=True):
    r = subprocess.run(["docker", *args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("docker %s failed: %s" % (" ".join(args[:3]), r.stderr.strip()))
    return r.stdout


def remove(prefix):
    """Force-removes every container whose name starts with prefix."""
    ids = docker("ps", "-aq", "--filter", "name=^/" + prefix).split()
    if ids:
        docker("rm", "-f", "-v", *ids, check=False)


def cleanup():
    remove(PREFIX)
    nets = docker("network", "ls", "-q", "--filter", "name=^mbcp", check=False).split()
    if nets:
        docker("network", "rm", *nets, check=False)


def inspect(names_):
    """{name: (id, startedAt, running)} for the containers that exist."""
    r = subprocess.run(["docker", "inspect", *names_], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    result = {}
    for c in json.loads(r.stdout or "[]"):
        result[c["Name"].lstrip("/")] = (c["Id"], c["State"]["StartedAt"],
                                         c["State"]["Running"])
    return result


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=120)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def api(method, url, body=None):
    conn = UnixHTTPConnection("/var/run/docker.sock")
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, url, body=data, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        payload = r.read()
        if r.status >= 300:
            raise RuntimeError("%s %s: %d %s" % (method, url, r.status, payload[:200]))
        return json.loads(payload) if payload else None
    finally:
        conn.close()


def api_floor(api_version, want):
    """Creates and starts the containers straight through the engine's API,
    one thread per container: what the engine allows, with no orchestrator."""
    errors = []

    def one(name):
        try:
            c = api("POST", "/v%s/containers/create?name=%s" % (api_version, name),
                    {"Image": IMAGE, "Cmd": ["sh", "-c", IDLE_CMD],
                     "HostConfig": {"NetworkMode": "bridge"}})
            api("POST", "/v%s/containers/%s/start" % (api_version, c["Id"]))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append("%s: %s" % (name, e))

    threads = [threading.Thread(target=one, args=(n,)) for n in want]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, errors


def engine_start_latency(api_version, samples=5):
    """The median time from the start call of a created container (busybox, host
    networking, as the chain's) to its `.State.StartedAt`: the engine's part of a chain's
    level once the dependent's container exists. Returns (seconds, error)."""
    name = PREFIX + "api-b-latency"
    times = []
    try:
        for _ in range(samples):
            remove(name)
            c = api("POST", "/v%s/containers/create?name=%s" % (api_version, name),
                    {"Image": IMAGE, "Cmd": ["sh", "-c", IDLE_CMD],
                     "HostConfig": {"NetworkMode": "host"}})
            t0 = time.time()
            api("POST", "/v%s/containers/%s/start" % (api_version, c["Id"]))
            started = api("GET", "/v%s/containers/%s/json" % (api_version, c["Id"]))
            times.append(parse_ts(started["State"]["StartedAt"]) - t0)
    except Exception as e:  # noqa: BLE001 - reported by the caller
        return None, str(e)
    finally:
        remove(name)
    return statistics.median(times), None


def start_calls(log):
    """When maestro called each container's start: the `starting container` step of its
    `--json` events (the last one of each instance), by instance name."""
    calls = {}
    with open(log, errors="replace") as f:
        for line in f:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "step" and event.get("message") == "starting container":
                calls[event["instance"]] = event["time"]
    return calls


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def parse_ts(s):
    """RFC 3339 with nanoseconds -> seconds since the epoch (float)."""
    date, frac = s.rstrip("Z").split(".") if "." in s else (s.rstrip("Z"), "0")
    base = calendar.timegm(time.strptime(date, "%Y-%m-%dT%H:%M:%S"))
    return base + float("0." + frac)


# --- running and timing ----------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.compose = shlex.split(args.compose)
        self.log_dir = os.path.join(args.out, "logs")
        os.makedirs(self.log_dir, exist_ok=True)
        self.files = generate(args.out, args.a, args.c, args.ng_port, args.ng_api,
                              args.guest_image)
        self.failures = []  # (tool, play, command, exit code, output tail)
        self.counter = 0

    def command(self, tool, play, verb):
        f = self.files[(tool, play)]
        if tool in ("rs", "hs"):
            return [self.args.maestro, "-f", f, *verb]
        if tool == "ng":
            return [self.args.maestrong, "-f", f, *verb]
        proj = "mbcp" + play
        return [*self.compose, "-p", proj, "-f", f, *verb]

    def timed(self, tool, play, cmd):
        """Runs cmd with output to a log file; returns (seconds, exit code, log)."""
        self.counter += 1
        log = os.path.join(self.log_dir, "%03d-%s-%s.log" % (self.counter, tool, play))
        env = None
        if tool == "cp":
            # Compose 1.29 deadlocks on `up` with more services than
            # COMPOSE_PARALLEL_LIMIT (default 64): each service's task holds a
            # global slot while its container's create waits for one. 1000 also
            # leaves it unlimited, as MaestroNG and maestro are by default.
            env = dict(os.environ, COMPOSE_PARALLEL_LIMIT="1000")
        with open(log, "w") as out:
            t0 = time.perf_counter()
            rc = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=env)
            dt = time.perf_counter() - t0
        return dt, rc, log

    def fail(self, tool, play, cmd, rc, log, why=""):
        with open(log) as f:
            tail = f.read()[-3000:]
        entry = {"tool": tool, "play": play, "command": " ".join(shlex.quote(c) for c in cmd),
                 "exit": rc, "why": why, "output": tail}
        self.failures.append(entry)
        sys.stderr.write("!! %s %s: %s (exit %s) %s\n%s\n" % (
            TOOL_NAMES[tool], play, entry["command"], rc, why, tail[-1500:]))

    # (a) start of N independent containers
    def play_a(self):
        n = self.args.a
        res = {t: [] for t in (*TOOLS, "api")}
        verbs = {"ng": ["start"], "rs": ["start"], "cp": ["up", "-d"]}
        for run in range(self.args.runs):
            for tool in TOOLS:
                want = names(tool, "a", n)
                remove("%s%s-a-" % (PREFIX, tool))
                cmd = self.command(tool, "a", verbs[tool])
                dt, rc, log = self.timed(tool, "a", cmd)
                running = sum(1 for v in inspect(want).values() if v[2])
                remove("%s%s-a-" % (PREFIX, tool))
                if rc != 0 or running != n:
                    self.fail(tool, "a", cmd, rc, log, "%d/%d running" % (running, n))
                    continue
                res[tool].append(dt)
                log_progress("a", tool, run, dt)
            # The engine's own floor: create + start from one thread each.
            want = names("api", "a", n)
            remove(PREFIX + "api-a-")
            dt, errors = api_floor(self.args.ng_api, want)
            running = sum(1 for v in inspect(want).values() if v[2])
            remove(PREFIX + "api-a-")
            if errors or running != n:
                sys.stderr.write("!! engine floor: %d/%d running %s\n" % (running, n, errors[:3]))
            else:
                res["api"].append(dt)
                log_progress("a", "api", run, dt)
        return res

    # (b) 5-level chain gated by tcp checks / health checks
    def play_b(self):
        res = {t: {"total": [], "level": [], "gaps": [], "engine_same": [], "beyond_same": []}
               for t in CHAIN_TOOLS}
        res["engine"] = []
        # maestro's events say when it called each container's start: the engine's part of
        # each level is then known in the very run, not from other containers' starts.
        verbs = {"ng": ["start"], "rs": ["--json", "start"], "hs": ["--json", "start"],
                 "cp": ["up", "-d"]}
        for run in range(self.args.runs):
            # The engine's own part of a level, in the same run: a created container's
            # start call to its `.State.StartedAt`.
            latency, error = engine_start_latency(self.args.ng_api)
            if error:
                sys.stderr.write("!! engine start latency: %s\n" % error)
            else:
                res["engine"].append(latency)
                log_progress("b", "api", run, latency, "start call -> StartedAt")
            for tool in CHAIN_TOOLS:
                want = chain_names(tool)
                remove("%s%s-b-" % (PREFIX, tool))
                cmd = self.command(tool, "b", verbs[tool])
                busy = [p for p in (chain_port(tool, i) for i in range(1, 6)) if port_open(p)]
                if busy:
                    raise RuntimeError("127.0.0.1 ports %s are in use: (b) needs them free" % busy)
                dt, rc, log = self.timed(tool, "b", cmd)
                info = inspect(want)
                remove("%s%s-b-" % (PREFIX, tool))
                if rc != 0 or len(info) != 5 or not all(v[2] for v in info.values()):
                    self.fail(tool, "b", cmd, rc, log, "%d/5 running" % sum(v[2] for v in info.values()))
                    continue
                starts = [parse_ts(info[nm][1]) for nm in want]
                gaps = [b - a for a, b in zip(starts, starts[1:])]
                if min(gaps) < APP_DELAY:
                    self.fail(tool, "b", cmd, rc, log,
                              "a level started before its dependency's port opened: gaps %s"
                              % ["%.3f" % g for g in gaps])
                res[tool]["total"].append(dt)
                res[tool]["gaps"].append(gaps)
                res[tool]["level"].append(statistics.mean(gaps) - APP_DELAY)
                calls = start_calls(log) if tool in ("rs", "hs") else {}
                if all(nm in calls for nm in want[1:]):
                    engine = [parse_ts(info[nm][1]) - calls[nm] for nm in want[1:]]
                    res[tool]["engine_same"].append(statistics.mean(engine))
                    res[tool]["beyond_same"].append(
                        statistics.mean(g - APP_DELAY - e for g, e in zip(gaps, engine)))
                log_progress("b", tool, run, dt, "per level +%.0f ms" % (1000 * res[tool]["level"][-1]))
        return res

    # (c) status of N running containers and (d) restart --only-if-changed
    def play_cd(self):
        n = self.args.c
        res_c = {t: [] for t in TOOLS}
        res_d = {t: [] for t in TOOLS}
        touched = {}
        start = {"ng": ["start"], "rs": ["start"], "cp": ["up", "-d"]}
        status = {"ng": ["status"], "rs": ["status"], "cp": ["ps"]}
        restart = {"ng": ["restart", "-a", "--only-if-changed"],
                   "rs": ["restart", "-a", "--only-if-changed"],
                   "cp": ["up", "-d"]}
        ok = {}
        for tool in TOOLS:
            want = names(tool, "c", n)
            remove("%s%s-c-" % (PREFIX, tool))
            cmd = self.command(tool, "c", start[tool])
            dt, rc, log = self.timed(tool, "c-setup", cmd)
            running = sum(1 for v in inspect(want).values() if v[2])
            ok[tool] = rc == 0 and running == n
            if not ok[tool]:
                self.fail(tool, "c", cmd, rc, log, "setup: %d/%d running" % (running, n))
            else:
                log_progress("c setup", tool, 0, dt)
        for run in range(-1, self.args.status_runs):  # run -1: warm-up
            for tool in TOOLS:
                if not ok[tool]:
                    continue
                cmd = self.command(tool, "c", status[tool])
                dt, rc, log = self.timed(tool, "c", cmd)
                if rc != 0:
                    self.fail(tool, "c", cmd, rc, log)
                    continue
                if run >= 0:
                    res_c[tool].append(dt)
        for tool in TOOLS:
            if ok[tool]:
                log_progress("c", tool, self.args.status_runs - 1, statistics.median(res_c[tool] or [0]))
        before = {t: inspect(names(t, "c", n)) for t in TOOLS if ok[t]}
        for run in range(-1, self.args.restart_runs):
            for tool in TOOLS:
                if not ok[tool]:
                    continue
                cmd = self.command(tool, "c", restart[tool])
                dt, rc, log = self.timed(tool, "d", cmd)
                if rc != 0:
                    self.fail(tool, "d", cmd, rc, log)
                    continue
                if run >= 0:
                    res_d[tool].append(dt)
        for tool in TOOLS:
            if not ok[tool]:
                continue
            after = inspect(names(tool, "c", n))
            b = before[tool]
            changed = [nm for nm in names(tool, "c", n)
                       if nm not in after or after[nm][:2] != b.get(nm, (None, None))[:2]]
            touched[tool] = changed
            log_progress("d", tool, self.args.restart_runs - 1, statistics.median(res_d[tool] or [0]),
                         "%d/%d touched" % (len(changed), n))
            remove("%s%s-c-" % (PREFIX, tool))
        return res_c, res_d, touched


def log_progress(play, tool, run, dt, extra=""):
    sys.stderr.write("    %-8s %-16s run %d: %.3f s %s\n" % (play, TOOL_NAMES[tool], run + 1, dt, extra))


# --- report --------------------------------------------------------------------------

def fmt_t(s):
    if s is None:
        return "failed"
    if s == "skipped":
        return "not run"
    if s >= 1:
        return "%.2f s" % s
    return "%.1f ms" % (s * 1000)


def med(xs):
    if xs == "skipped":
        return "skipped"
    return statistics.median(xs) if xs else None


def ratio(a, b):
    if not isinstance(a, float) or not isinstance(b, float) or b <= 0:
        return "n/a"
    return "%.1fx" % (a / b)


def yes(b):
    return "yes" if b else "**NO**"


def num(x):
    return x if isinstance(x, float) else None


def report(args, a, b, c, d, touched, failures, compose_label):
    ng, cp = TOOL_NAMES["ng"], compose_label
    head = ("| play | %s | %s | maestro | MaestroNG / maestro | compose / maestro | target | holds |\n"
            "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |" % (ng, cp))
    rows = []
    targets = {}

    def verdict(key, ran, ok):
        targets[key] = bool(ran and ok)
        return yes(ok) if ran else "not run"

    def row(label, m, target="", holds=""):
        rows.append((label, fmt_t(m["ng"]), fmt_t(m["cp"]), fmt_t(m["rs"]),
                     ratio(m["ng"], m["rs"]), ratio(m["cp"], m["rs"]), target, holds))

    ma = {t: med(a[t]) for t in TOOLS}
    x = {t: num(ma[t]) for t in TOOLS}
    ok = None not in x.values() and x["ng"] / x["rs"] >= 3 and x["rs"] <= x["cp"]
    row("(a) start %d independent containers" % args.a, ma,
        ">= 3x faster than MaestroNG, no slower than compose", verdict("a", "a" in args.plays, ok))

    lvl = {t: med(b[t]["level"]) for t in TOOLS}
    tot = {t: med(b[t]["total"]) for t in TOOLS}
    ok = num(lvl["rs"]) is not None and lvl["rs"] <= 0.100
    row("(b) 5-level chain: time per level beyond the app's 300 ms", lvl,
        "<= 100 ms per level", verdict("b", "b" in args.plays, ok))
    row("(b) 5-level chain: whole start, wall clock (1)", tot)

    engine = num(med(b.get("engine", "skipped")))

    def beyond(tool, limit, key):
        level = num(lvl.get(tool))
        ran = "b" in args.plays and level is not None and engine is not None
        same = b.get(tool, {}) if isinstance(b, dict) else {}
        engine_same = num(med(same.get("engine_same") or "skipped"))
        beyond_same = num(med(same.get("beyond_same") or "skipped"))
        # Judged on the same levels' own engine part when maestro's events give it: the
        # engine's start of other containers, measured apart, drifts by 10-20 ms from run
        # to run, as much as the target.
        if beyond_same is not None:
            ok = ran and beyond_same <= limit
        else:
            ok = ran and level - engine <= limit
        targets[key] = bool(ok)
        return (fmt_t(level), fmt_t(engine), fmt_t(level - engine) if ran else "n/a",
                fmt_t(engine_same) if engine_same is not None else "n/a",
                fmt_t(beyond_same) if beyond_same is not None else "n/a",
                "<= %d ms" % round(limit * 1000), yes(ok) if ran else "not run")

    lvl["hs"] = med(b["hs"]["level"]) if "hs" in b else "skipped"
    chain_rows = [
        ("maestro, tcp checks (as above)",) + beyond("rs", 0.040, "b-tcp"),
        ("maestro, handshake: `maestro-guest run --ready-when tcp:PORT`, no check",)
        + beyond("hs", 0.020, "b-handshake"),
    ]

    mc = {t: med(c[t]) for t in TOOLS}
    x = {t: num(mc[t]) for t in TOOLS}
    ok = x["rs"] is not None and x["ng"] is not None and x["ng"] / x["rs"] >= 10
    row("(c) status of %d running containers" % args.c, mc,
        ">= 10x faster than MaestroNG", verdict("c", "c" in args.plays, ok))

    md = {t: med(d[t]) for t in TOOLS}
    row("(d) restart --only-if-changed, nothing changed, %d containers (2)" % args.c, md)

    def tch(t):
        if "d" not in args.plays:
            return "not run"
        return "%d of %d" % (len(touched[t]), args.c) if t in touched else "failed"
    ok = "rs" in touched and not touched["rs"] and num(md["rs"]) is not None
    rows.append(("(d) containers touched (ID or StartedAt changed)", tch("ng"), tch("cp"), tch("rs"),
                 "", "", "none touched", verdict("d", "d" in args.plays, ok)))

    lines = [head] + ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", "(b) per level, against the engine's own part of it (medians):", "",
              "| chain | per level beyond the app's 300 ms | engine: created container's "
              "start call -> StartedAt | beyond the engine | same levels, same run: "
              "engine (3) | beyond it (3) | target | holds |",
              "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    lines += ["| " + " | ".join(r) + " |" for r in chain_rows]
    notes = [""]
    floor = num(med(a.get("api", "skipped")))
    if floor is not None:
        notes.append(
            "Engine floor for (a): %s to create and start the same %d containers straight "
            "through the engine's API, one thread per container, no orchestrator (median of "
            "%d)." % (fmt_t(floor), args.a, len(a["api"])))
        notes.append("")
    notes += [
        "Medians of %d runs for (a) and (b), %d for (c), %d for (d) (after one warm-up run "
        "each for (c) and (d)). (b) per level: the mean gap between consecutive levels' "
        "`.State.StartedAt`, minus 300 ms." % (args.runs, args.status_runs, args.restart_runs),
        "(1) `compose up -d` returns once the last level is started, without waiting for "
        "its health check; MaestroNG and maestro also wait for the last level's tcp check.",
        "(2) compose: `up -d` (recreates only what changed); MaestroNG and maestro: "
        "`restart -a --only-if-changed`.",
        "(3) From maestro's `--json` events: each level's own start call (its `starting "
        "container` step) to its `StartedAt`, and its gap minus 300 ms minus that, "
        "levels 2-5, mean per run, median of runs: no drift between two measures taken "
        "apart. The target is judged on these two columns where they are given.",
    ]
    return "\n".join(lines + notes), {k: v for k, v in targets.items() if k[0] in args.plays}


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("cleanup")
    r = sub.add_parser("run")
    r.add_argument("--out", required=True)
    r.add_argument("--maestro", required=True)
    r.add_argument("--maestrong", required=True)
    r.add_argument("--compose", required=True)
    r.add_argument("--compose-label", default="compose")
    r.add_argument("--ng-port", type=int, required=True)
    r.add_argument("--ng-api", default="1.41", help="api_version for MaestroNG's ship")
    r.add_argument("--a", type=int, default=50)
    r.add_argument("--c", type=int, default=100)
    r.add_argument("--runs", type=int, default=5)
    r.add_argument("--status-runs", type=int, default=10)
    r.add_argument("--restart-runs", type=int, default=5)
    r.add_argument("--plays", default="abcd")
    r.add_argument("--guest-image", default="maestro-bench/guest:1",
                   help="the busybox image with /bin/maestro-guest, for (b)'s handshake chain")
    args = p.parse_args()
    if args.cmd == "cleanup":
        cleanup()
        return 0
    if "c" in args.plays or "d" in args.plays:
        args.plays += "cd"  # (d) runs on the containers (c) started
    TOOL_NAMES["cp"] = args.compose_label
    bench = Bench(args)
    empty = {t: "skipped" for t in TOOLS}
    a = bench.play_a() if "a" in args.plays else empty
    b = bench.play_b() if "b" in args.plays else \
        {t: {"total": "skipped", "level": "skipped", "gaps": []} for t in CHAIN_TOOLS}
    if "c" in args.plays or "d" in args.plays:
        c, d, touched = bench.play_cd()
    else:
        c, d, touched = empty, empty, {}
    table, targets = report(args, a, b, c, d, touched, bench.failures, args.compose_label)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"a": a, "b": b, "c": c, "d": d, "touched": touched,
                   "failures": bench.failures, "targets": targets}, f, indent=1)
    print(table)
    if bench.failures:
        print("\nFailures (details and logs in %s):" % args.out)
        for x in bench.failures:
            print("- %s, play %s: `%s` exited %s %s" % (TOOL_NAMES[x["tool"]], x["play"],
                                                       x["command"], x["exit"], x["why"]))
    return 0 if all(targets.values()) and not bench.failures else 1


if __name__ == "__main__":
    sys.exit(main())
