#!/usr/bin/env python3
"""Shipping a new version with zero outage: maestro `deploy`, MaestroNG 0.8.3
`restart -c 1` and compose `up -d`, side by side, with a probe hitting every
instance every 20 ms. See bench/README.md ("deploy.sh").

Called by bench/deploy.sh, which installs what is needed, builds maestro and the
base image, and runs the socat endpoints. Standard library only.

    python3 bench/deploy.py run --out DIR --maestro BIN --maestrong BIN \\
        --compose "docker-compose" --base IMAGE --rs-tcp PORT \\
        --ng-ports PORT,PORT --api 1.41 [--runs N]
    python3 bench/deploy.py cleanup    # containers bench-deploy-*, the bench's images

Everything this benchmark creates is named `bench-deploy...`: containers
`bench-deploy-<tool>-web-<k>` (tool: rs = maestro, ng = MaestroNG, cp = compose)
and maestro's kept generations `....previous`, the images `bench-deploy/app:<tag>`,
the compose project `benchdeploycp` (every service sets `network_mode: bridge`, so
compose creates no network).
"""

import argparse
import errno
import json
import math
import os
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time

PREFIX = "bench-deploy"
REPO = "bench-deploy/app"
TAGS = {"v1": "1", "v2": "2", "bad": "bad"}  # tag -> VERSION
N = 6                  # instances of the service
MAX_UNAVAILABLE = 2    # maestro deploy --max-unavailable
PERIOD = 0.02          # the probe's interval per instance
TOOLS = ("rs", "ng", "cp")
NAMES = {"rs": "maestro", "ng": "MaestroNG 0.8.3", "cp": "compose"}
PORT_BASE = {"rs": 17410, "ng": 17420, "cp": 17430}  # instance k publishes base + k
PROJECT = "benchdeploycp"
TIMEOUT = 180          # seconds, any command

# The app: serves v$VERSION on 8000, exits at once on TERM (the shell is PID 1 and
# traps it), and exits 4 at start when VERSION is `bad` (the crashing image).
APP = ('if [ "$VERSION" = bad ]; then echo broken image; exit 4; fi; '
       'echo v$VERSION > /tmp/index.html; trap "exit 0" TERM; httpd -f -p 8000 -h /tmp & wait')


def log(msg):
    print("==> " + msg, file=sys.stderr, flush=True)


def name(tool, k):
    return "%s-%s-web-%d" % (PREFIX, tool, k)


def ports(tool):
    return [PORT_BASE[tool] + k for k in range(1, N + 1)]


# --- environment files -----------------------------------------------------------

def maestro_file(tool, ships):
    """One service `web` of N instances alternating over ships `local` and `tcp`,
    each published on its own loopback port, ready when it answers HTTP."""
    out = ["__maestro: {schema: 2}\n", "name: %s-%s\n" % (PREFIX, tool), "ships:\n"]
    for ship, spec in ships:
        out.append("  %s: %s\n" % (ship, spec))
    out += ["services:\n", "  web:\n", "    image: %s:app\n" % REPO,
            # A real readiness check: an HTTP answer from the app through its published
            # port (a bare connect would pass on Docker's userland proxy alone).
            "    lifecycle: {running: [{type: http, port: http, max_wait: 30}]}\n",
            "    instances:\n"]
    for k in range(1, N + 1):
        ship = "local" if k % 2 else "tcp"
        out.append("      %s: {ship: %s, command: %s, stop_timeout: 2, "
                   "ports: {http: {exposed: 8000, external: [127.0.0.1, %d]}}}\n"
                   % (name(tool, k), ship, json.dumps(["sh", "-c", APP]), PORT_BASE[tool] + k))
    return "".join(out)


def compose_file():
    out = ["services:\n"]
    for k in range(1, N + 1):
        out += ["  web%d:\n" % k,
                "    image: %s:app\n" % REPO,
                "    container_name: %s\n" % name("cp", k),
                "    network_mode: bridge\n",
                # $$: compose interpolates $VAR itself.
                "    command: %s\n" % json.dumps(["sh", "-c", APP.replace("$", "$$")]),
                "    stop_grace_period: 2s\n",
                "    ports: [\"127.0.0.1:%d:8000\"]\n" % (PORT_BASE["cp"] + k)]
    return "".join(out)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


# --- docker --------------------------------------------------------------------------

def docker(*args, check=True, timeout=TIMEOUT):
    r = subprocess.run(["docker", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError("docker %s failed: %s" % (" ".join(args[:3]), r.stderr.strip()))
    return r.stdout


def remove_containers(prefix):
    """Removes the containers whose names start with prefix, one at a time (removing many
    at once has deadlocked this engine, see README.md, ships.py), 120 s each at most."""
    ids = docker("ps", "-aq", "--filter", "name=^/" + prefix).split()
    for cid in ids:
        docker("rm", "-f", "-v", cid, check=False, timeout=120)


def build_images(base):
    for tag, version in TAGS.items():
        r = subprocess.run(["docker", "build", "-q", "-t", "%s:%s" % (REPO, tag), "-"],
                           input="FROM %s\nENV VERSION=%s\n" % (base, version),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=TIMEOUT)
        if r.returncode != 0:
            raise RuntimeError("docker build %s:%s failed: %s" % (REPO, tag, r.stderr.strip()))


def retag(tag):
    docker("tag", "%s:%s" % (REPO, tag), "%s:app" % REPO)


def image_id(ref):
    return docker("image", "inspect", "-f", "{{.Id}}", ref).strip()


def cleanup(base):
    remove_containers(PREFIX + "-")
    # maestro's lock containers, should a maestro have been killed holding them.
    for line in docker("ps", "-a", "--filter", "label=io.maestro.role=lock",
                       "--format", "{{.ID}} {{.Names}}", check=False).splitlines():
        cid, _, cname = line.partition(" ")
        if PREFIX in cname:
            docker("rm", "-f", cid, check=False, timeout=120)
    nets = docker("network", "ls", "-q", "--filter", "name=^" + PROJECT, check=False).split()
    if nets:
        docker("network", "rm", *nets, check=False)
    tags = ["%s:%s" % (REPO, t) for t in list(TAGS) + ["app"]]
    if base:
        tags.append(base)
    for t in tags:
        docker("rmi", t, check=False)


# --- the probe ---------------------------------------------------------------------

def fetch(port):
    """The body the instance published on port answers to GET /, or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.settimeout(1.0)
            s.sendall(REQUEST)
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    return body(data)


REQUEST = b"GET / HTTP/1.0\r\n\r\n"
PROBE_TIMEOUT = 1.0


def body(data):
    """The body of a 200 answer; `HTTP <status line>` for another answer; None for none."""
    if not data.startswith(b"HTTP/1."):
        return None
    head, _, rest = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
    if status.split(" ")[1:2] != ["200"]:
        return "HTTP " + status
    return rest.decode(errors="replace").strip()


class Probe:
    """Sends GET / to every port every PERIOD on a fixed schedule (tick k at t0 + k *
    PERIOD), each request on its own non-blocking connection, so that a request left
    hanging (Docker's proxy accepts while the container behind it is not reachable yet)
    delays none of the next ones; a request without a whole answer within PROBE_TIMEOUT
    failed. Records (sent, finished, body or None) per port, in order of sending."""

    def __init__(self, ports_):
        self.ports = list(ports_)
        self.samples = {p: [] for p in self.ports}
        self.stop_flag = threading.Event()
        self.thread = None
        self.t0 = None

    def _finish(self, sel, sock, req, result):
        try:
            sel.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()
        self.samples[req["port"]].append((req["sent"], time.time(), result))

    def _run(self):
        sel = selectors.DefaultSelector()
        live = {}  # socket -> request
        k = 0
        while not (self.stop_flag.is_set() and not live):
            now = time.time()
            if not self.stop_flag.is_set() and now >= self.t0 + k * PERIOD:
                for port in self.ports:
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    sock.setblocking(False)
                    req = {"port": port, "sent": time.time(), "data": b"", "sent_request": False}
                    err = sock.connect_ex(("127.0.0.1", port))
                    if err not in (0, errno.EINPROGRESS):
                        sock.close()
                        self.samples[port].append((req["sent"], time.time(), None))
                        continue
                    live[sock] = req
                    sel.register(sock, selectors.EVENT_WRITE, req)
                # Behind schedule (a busy machine): on to the next tick still ahead.
                k = max(k + 1, math.floor((time.time() - self.t0) / PERIOD))
            now = time.time()
            for sock, req in list(live.items()):
                if now - req["sent"] > PROBE_TIMEOUT:
                    del live[sock]
                    self._finish(sel, sock, req, None)
            wait = max(0.0, self.t0 + k * PERIOD - time.time())
            if self.stop_flag.is_set():
                wait = 0.05
            if not live:
                time.sleep(wait)
                continue
            for key, _ in sel.select(wait):
                sock, req = key.fileobj, key.data
                try:
                    if not req["sent_request"]:
                        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if err:
                            raise OSError(err, os.strerror(err))
                        sock.send(REQUEST)
                        req["sent_request"] = True
                        sel.modify(sock, selectors.EVENT_READ, req)
                        continue
                    chunk = sock.recv(4096)
                    if chunk:
                        req["data"] += chunk
                        continue
                    result = body(req["data"])
                except OSError:
                    result = None
                del live[sock]
                self._finish(sel, sock, req, result)
        sel.close()

    def start(self):
        self.t0 = time.time() + 0.01
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        """Sends no more requests and waits for those still out."""
        self.stop_flag.set()
        self.thread.join()
        for ss in self.samples.values():
            ss.sort()


def serving(ports_, version):
    return all(fetch(p) == "v" + version for p in ports_)


def wait_serving(ports_, version, timeout=30):
    until = time.time() + timeout
    while time.time() < until:
        if serving(ports_, version):
            return True
        time.sleep(0.05)
    return False


def analyse(samples, old, new, t_cmd):
    """What the probe saw: the fewest instances answering at any moment (an instance
    answers from a request that got the old or the new version until one that did
    not), the time with none answering, the failed probes (no answer, or another
    one), and per port the gap between its last answer from the old version and its
    first from the new one."""
    events = sorted((s[0], p, s[2] in (old, new)) for p, ss in samples.items() for s in ss)
    state = {}
    fewest = None
    none_since = None
    none_total = 0.0
    for t, p, up in events:
        state[p] = up
        if len(state) < len(samples):
            continue
        n = sum(state.values())
        fewest = n if fewest is None else min(fewest, n)
        if n == 0 and none_since is None:
            none_since = t
        elif n > 0 and none_since is not None:
            none_total += t - none_since
            none_since = None
    if none_since is not None:
        none_total += events[-1][0] - none_since
    probes = sum(len(ss) for ss in samples.values())
    failed = sum(1 for ss in samples.values() for s in ss if s[2] not in (old, new))
    other_examples = sorted({s[2] for ss in samples.values() for s in ss
                             if s[2] not in (None, old, new)})[:3]
    gaps, switched_at, back_and_forth, others = [], [], 0, 0
    for p, ss in samples.items():
        first_new = next((s for s in ss if s[2] == new), None)
        if first_new is None:
            continue
        last_old = max((s for s in ss if s[2] == old and s[0] < first_new[0]),
                       key=lambda s: s[0], default=None)
        if last_old is not None:
            gaps.append(first_new[0] - last_old[0])
        switched_at.append(first_new[1] - t_cmd)
        back_and_forth += sum(1 for s in ss if s[2] == old and s[0] > first_new[0])
        others += sum(1 for s in ss if s[2] not in (None, old, new))
    return {"fewest": fewest, "none_s": none_total, "probes": probes, "failed": failed,
            "gaps": gaps, "all_new_after": max(switched_at) if len(switched_at) == len(samples) else None,
            "switched": len(switched_at), "old_after_new": back_and_forth,
            "other_answers": others, "other_examples": other_examples}


# --- commands --------------------------------------------------------------------------

class Failed(Exception):
    pass


def run_cmd(cmd, logpath, env=None):
    """Runs cmd to its end; returns (exit status, wall seconds, stdout)."""
    t = time.time()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=TIMEOUT, env=env)
    wall = time.time() - t
    with open(logpath, "a") as f:
        f.write("$ %s\n%s\n[exit %d after %.3f s]\n\n" % (" ".join(cmd), r.stdout, r.returncode, wall))
    return r.returncode, wall, r.stdout, t


def json_events(stdout):
    events = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                pass
    return events


def in_flight(events):
    """The most instances maestro had in hand at once, by its own events: each row from
    its turn's first step (stopping the old container) to its finished event. What a row
    did ahead of its turn (its new container created beside the old one, which kept
    serving: steps up to the one saying "created ..., waiting for ...") is not counted."""
    spans = {}
    ahead = set()
    for e in events:
        who = e.get("instance")
        if who is None or e.get("event") not in ("step", "finished"):
            continue
        if e.get("event") == "step" and who not in spans and who not in ahead:
            # The steps of a create ahead come first; its last says what it waits for.
            message = e.get("message", "")
            if message == "creating container" or "created ahead" in message:
                continue
            if message.startswith("created ") and ", waiting for " in message:
                ahead.add(who)
                continue
        first, last = spans.get(who, (e["time"], e["time"]))
        spans[who] = (min(first, e["time"]), max(last, e["time"]))
    edges = sorted([(a, 1) for a, _ in spans.values()] + [(b, -1) for _, b in spans.values()],
                   key=lambda x: (x[0], x[1]))
    most = n = 0
    for _, d in edges:
        n += d
        most = max(most, n)
    return most


class Bench:
    def __init__(self, args):
        self.args = args
        self.out = args.out
        self.compose = args.compose.split()
        self.env = dict(os.environ, NO_COLOR="1", COLUMNS="160")
        ng = args.ng_ports.split(",")
        api = args.api
        self.files = {
            "rs": os.path.join(self.out, "rs", "maestro.yaml"),
            "ng": os.path.join(self.out, "ng", "maestro.yaml"),
            "cp": os.path.join(self.out, "cp", "docker-compose.yml"),
        }
        write(self.files["rs"], maestro_file("rs", [
            ("local", "{ip: 127.0.0.1, socket_path: /var/run/docker.sock, timeout: 60}"),
            ("tcp", "{ip: 127.0.0.1, docker_port: %s, timeout: 60}" % args.rs_tcp)]))
        # docker-py 1.10.6 cannot use the unix socket: both of MaestroNG's ships are TCP
        # endpoints (two socat listeners) to the same engine.
        write(self.files["ng"], maestro_file("ng", [
            ("local", "{ip: 127.0.0.1, docker_port: %s, api_version: \"%s\", timeout: 60}" % (ng[0], api)),
            ("tcp", "{ip: 127.0.0.1, docker_port: %s, api_version: \"%s\", timeout: 60}" % (ng[1], api))]))
        write(self.files["cp"], compose_file())
        self.log = {t: os.path.join(self.out, t, "commands.log") for t in TOOLS}
        self.results = {"cycle": [], "cycle_wall": [], "pair": [], "noop": [], "plan": [], "update": {t: [] for t in TOOLS},
                        "crash": [], "failures": []}

    def cmd(self, tool, verb):
        if tool == "rs":
            return {"up": [self.args.maestro, "-f", self.files["rs"], "start"],
                    "update": [self.args.maestro, "-f", self.files["rs"], "--json", "deploy",
                               "--max-unavailable", str(MAX_UNAVAILABLE)]}[verb]
        if tool == "ng":
            return {"up": [self.args.maestrong, "-f", self.files["ng"], "start"],
                    "update": [self.args.maestrong, "-f", self.files["ng"], "restart", "-c", "1", "-a"]}[verb]
        base = self.compose + ["-p", PROJECT, "-f", self.files["cp"]]
        return {"up": base + ["up", "-d"], "update": base + ["up", "-d"]}[verb]

    def keep_samples(self, label, samples, t_cmd):
        """Every probe, for a closer look: [sent, answered, body] from the command's start."""
        with open(os.path.join(self.out, "probe-%s.json" % label), "w") as f:
            json.dump({str(p): [[round(a - t_cmd, 4), round(b - t_cmd, 4), v] for a, b, v in ss]
                       for p, ss in samples.items()}, f)

    def fail(self, what):
        log("FAILED: " + what)
        self.results["failures"].append(what)

    def up(self, tool):
        """A fresh service on v1 (outside any timing)."""
        remove_containers("%s-%s-" % (PREFIX, tool))
        retag("v1")
        rc, _, out, _ = run_cmd(self.cmd(tool, "up"), self.log[tool], self.env)
        if rc != 0:
            raise Failed("%s: bringing up v1 exited %d (see %s)" % (NAMES[tool], rc, self.log[tool]))
        if not wait_serving(ports(tool), "1"):
            raise Failed("%s: the 6 instances do not all answer v1 after the start" % NAMES[tool])

    def cycle(self, run):
        """One instance's stop + start + readiness: `maestro restart INSTANCE` (stop,
        remove, create, start, the http check), its row's time and the command's wall
        clock, for one instance on each ship."""
        for k in (1, 2):
            cmd = [self.args.maestro, "-f", self.files["rs"], "--json", "restart", name("rs", k)]
            rc, wall, out, _ = run_cmd(cmd, self.log["rs"], self.env)
            rows = [e for e in json_events(out) if e.get("event") == "finished"]
            if rc != 0 or len(rows) != 1 or rows[0].get("result") != "done":
                self.fail("maestro restart %s exited %d (see %s)" % (name("rs", k), rc, self.log["rs"]))
                continue
            self.results["cycle"].append(rows[0]["seconds"])
            self.results["cycle_wall"].append(wall)
            log("run %d: cycle of %s: %.3f s (command %.3f s)" % (run, name("rs", k), rows[0]["seconds"], wall))
        # Two instances at once (one per ship), as a deploy batch of --max-unavailable 2
        # replaces them: what the engine makes of two cycles side by side.
        cmd = [self.args.maestro, "-f", self.files["rs"], "--json", "restart", name("rs", 3), name("rs", 4)]
        rc, wall, out, _ = run_cmd(cmd, self.log["rs"], self.env)
        ended = [e for e in json_events(out) if e.get("event") == "ended"]
        if rc != 0 or not ended or ended[-1].get("done") != 2:
            self.fail("maestro restart %s %s exited %d (see %s)" % (name("rs", 3), name("rs", 4), rc, self.log["rs"]))
        else:
            self.results["pair"].append(ended[-1]["seconds"])
            log("run %d: two cycles at once: %.3f s" % (run, ended[-1]["seconds"]))
        if not wait_serving(ports("rs"), "1"):
            raise Failed("maestro: not all 6 answer v1 after the restarts")

    def update(self, tool, run):
        self.up(tool)
        if tool == "rs":
            self.cycle(run)
        before = {k: docker("inspect", "-f", "{{.Id}}", name(tool, k)).strip() for k in range(1, N + 1)}
        time.sleep(1.0)  # let the start's after-effects (lock removal, proxies) settle
        retag("v2")
        probe = Probe(ports(tool)).start()
        time.sleep(0.3)
        rc, wall, out, t_cmd = run_cmd(self.cmd(tool, "update"), self.log[tool], self.env)
        time.sleep(1.0)  # the tail: whatever is not answering yet counts
        probe.stop()
        seen = analyse(probe.samples, "v1", "v2", t_cmd)
        self.keep_samples("%s-%d" % (tool, run), probe.samples, t_cmd)
        ok = rc == 0
        v2 = image_id("%s:v2" % REPO)
        images = [docker("inspect", "-f", "{{.Image}}", name(tool, k)).strip() for k in range(1, N + 1)]
        after = {k: docker("inspect", "-f", "{{.Id}}", name(tool, k)).strip() for k in range(1, N + 1)}
        on_v2 = sum(1 for i in images if i == v2) == N and serving(ports(tool), "2")
        if not ok:
            self.fail("%s run %d: the update exited %d (see %s)" % (NAMES[tool], run, rc, self.log[tool]))
        if not on_v2:
            self.fail("%s run %d: not all 6 instances run v2 afterwards" % (NAMES[tool], run))
        replaced = sum(1 for k in before if before[k] != after[k])
        entry = dict(seen, run=run, rc=rc, wall=wall, on_v2=on_v2, replaced=replaced)
        if tool == "rs":
            events = json_events(out)
            began = [e for e in events if e.get("event") == "began"]
            ended = [e for e in events if e.get("event") == "ended"]
            entry["play_s"] = ended[-1]["seconds"] if ended else None
            # Before the play's first event (process, file, ships, images, plan, locks) and
            # after its last (locks given back, exit).
            entry["before_play_s"] = began[0]["time"] - t_cmd if began else None
            entry["after_play_s"] = t_cmd + wall - ended[-1]["time"] if ended else None
            entry["rows_s"] = [e["seconds"] for e in events if e.get("event") == "finished"]
            # Per instance: its replacement's row finished (the check passed) minus the
            # probe's first answer from v2: how late maestro saw the app ready.
            lags = []
            for k in range(1, N + 1):
                done = next((e["time"] for e in events if e.get("event") == "finished"
                             and e.get("instance") == name(tool, k)), None)
                first = next((x[1] for x in probe.samples[PORT_BASE[tool] + k] if x[2] == "v2"), None)
                if done is not None and first is not None:
                    lags.append(done - first)
            entry["ready_lag"] = lags
            entry["in_flight"] = in_flight(events)
            # A second deploy has nothing to do: what the fixed part costs, and it must
            # touch nothing.
            rc2, wall2, _, _ = run_cmd(self.cmd(tool, "update"), self.log[tool], self.env)
            # The same look at the containers without a play (no locks taken).
            rc3, wall3, _, _ = run_cmd([self.args.maestro, "-f", self.files["rs"], "plan", "--deploy",
                                        "--max-unavailable", str(MAX_UNAVAILABLE)], self.log[tool], self.env)
            if rc3 == 0:
                self.results["plan"].append(wall3)
            again = {k: docker("inspect", "-f", "{{.Id}}", name(tool, k)).strip() for k in range(1, N + 1)}
            if rc2 != 0 or again != after:
                self.fail("maestro run %d: a second deploy exited %d or touched containers" % (run, rc2))
            else:
                self.results["noop"].append(wall2)
        self.results["update"][tool].append(entry)
        log("run %d: %s: %.2f s, fewest answering %s, %d of %d probes failed, none answering %.2f s, "
            "all on v2 %s s after the command began"
            % (run, NAMES[tool], wall, seen["fewest"], seen["failed"], seen["probes"], seen["none_s"],
               "%.2f" % seen["all_new_after"] if seen["all_new_after"] is not None else "never"))

    def crash(self, run):
        """maestro deploy of an image that exits 4 at start: from the moment the failure
        is known to the moment the probe sees the old version answer again."""
        tool = "rs"
        self.up(tool)
        before = {k: docker("inspect", "-f", "{{.Id}}", name(tool, k)).strip() for k in range(1, N + 1)}
        time.sleep(1.0)
        retag("bad")
        since = time.time()
        probe = Probe(ports(tool)).start()
        time.sleep(0.3)
        rc, wall, out, t_cmd = run_cmd(self.cmd(tool, "update"), self.log[tool], self.env)
        time.sleep(1.0)
        probe.stop()
        until = time.time()
        seen = analyse(probe.samples, "v1", "v2", t_cmd)
        self.keep_samples("crash-%d" % run, probe.samples, t_cmd)
        events = json_events(out)
        dies = {}
        for line in docker("events", "--since", "%.3f" % since, "--until", "%.3f" % until,
                           "--filter", "type=container", "--filter", "event=die",
                           "--format", "{{json .}}").splitlines():
            e = json.loads(line)
            attrs = e.get("Actor", {}).get("Attributes", {})
            if attrs.get("exitCode") == "4":
                dies.setdefault(attrs.get("name"), e["timeNano"] / 1e9)
        instances = []
        for k in range(1, N + 1):
            n = name(tool, k)
            known = next((e["time"] for e in events if e.get("event") == "step"
                          and e.get("instance") == n and "restoring" in e.get("message", "")), None)
            if known is None:
                continue
            port = PORT_BASE[tool] + k
            back = next((s[1] for s in probe.samples[port] if s[0] >= known and s[2] == "v1"), None)
            died = dies.get(n)
            # The instance's longest run of failed probes: how long it was out of service.
            longest, since_fail = 0.0, None
            for s in probe.samples[port]:
                if s[2] != "v1" and since_fail is None:
                    since_fail = s[0]
                elif s[2] == "v1" and since_fail is not None:
                    longest = max(longest, s[0] - since_fail)
                    since_fail = None
            done = next((e["time"] for e in events if e.get("event") == "finished"
                         and e.get("instance") == n), None)
            instances.append({"instance": n, "known": known, "died": died, "back": back,
                              "ready_lag": None if done is None or back is None else done - back,
                              "known_to_back": None if back is None else back - known,
                              "died_to_known": None if died is None else known - died,
                              "died_to_back": None if died is None or back is None else back - died,
                              "out_of_service": longest})
        after = {k: docker("inspect", "-f", "{{.Id}} {{.State.Running}}", name(tool, k)).strip()
                 for k in range(1, N + 1)}
        same = all(after[k] == before[k] + " true" for k in before)
        on_v1 = serving(ports(tool), "1")
        if rc != 1:
            self.fail("crash run %d: deploy exited %d, not 1 (see %s)" % (run, rc, self.log[tool]))
        if not (same and on_v1):
            self.fail("crash run %d: not every old container is back and serving v1" % run)
        if not instances or any(i["back"] is None for i in instances):
            self.fail("crash run %d: no restored instance seen answering v1 again" % run)
        self.results["crash"].append(dict(
            run=run, in_flight=in_flight(events), rc=rc, wall=wall, fewest=seen["fewest"], failed=seen["failed"],
            probes=seen["probes"], none_s=seen["none_s"], restored_same=same, on_v1=on_v1,
            instances=instances))
        worst = max((i["known_to_back"] for i in instances if i["known_to_back"] is not None), default=None)
        log("run %d: crash: deploy exited %d after %.2f s, %d instances failed and restored, "
            "failure known -> v1 again %s, fewest answering %s"
            % (run, rc, wall, len(instances), "%.3f s (max)" % worst if worst is not None else "never",
               seen["fewest"]))
        remove_containers("%s-%s-" % (PREFIX, tool))

    def run(self):
        build_images(self.args.base)
        for run in range(1, self.args.runs + 1):
            for tool in TOOLS:
                try:
                    self.update(tool, run)
                except (Failed, RuntimeError, subprocess.TimeoutExpired) as e:
                    self.fail("%s run %d: %s" % (NAMES[tool], run, e))
                remove_containers("%s-%s-" % (PREFIX, tool))
            try:
                self.crash(run)
            except (Failed, RuntimeError, subprocess.TimeoutExpired) as e:
                self.fail("crash run %d: %s" % (run, e))
                remove_containers("%s-rs-" % PREFIX)
        with open(os.path.join(self.out, "results.json"), "w") as f:
            json.dump(self.results, f, indent=1)
        return report(self.results, self.args)


# --- report ------------------------------------------------------------------------------

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fs(x, unit="s", nd=2):
    if x is None:
        return "n/a"
    return ("%." + str(nd) + "f %s") % (x, unit)


def mark(ok):
    return "PASS" if ok else "**FAIL**"


def report(r, args):
    p = print
    up = r["update"]
    cycle = med(r["cycle"])
    floor = 3 * cycle if cycle is not None else None
    wall = {t: med([e["wall"] for e in up[t]]) for t in TOOLS}
    ok_all = not r["failures"]
    how = {"rs": "`deploy --max-unavailable %d`" % MAX_UNAVAILABLE,
           "ng": "`restart -c 1 -a`", "cp": "`up -d`"}

    p("#### Rolling update of %d instances over 2 ships, v1 -> v2 (medians of %d runs; "
      "fewest answering: the worst run)" % (N, args.runs))
    p()
    p("| tool | command | wall time | all %d answer v2, from the command's start | fewest answering "
      "| time with none answering | failed probes (of) | per instance: last v1 -> first v2 answer, median / max "
      "| wall vs maestro | runs |" % N)
    p("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for t in TOOLS:
        es = up[t]
        if not es:
            p("| %s | %s | n/a | | | | | | | 0 |" % (NAMES[t], how[t]))
            continue
        gaps = [g for e in es for g in e["gaps"]]
        fewest = min((e["fewest"] for e in es if e["fewest"] is not None), default=None)
        ratio = "%.2fx" % (wall[t] / wall["rs"]) if wall["rs"] and wall[t] else ""
        p("| %s | %s | %s | %s | %s | %s | %s (%d) | %s / %s | %s | %d |" % (
            NAMES[t], how[t], fs(wall[t]), fs(med([e["all_new_after"] for e in es])),
            fewest, fs(med([e["none_s"] for e in es])), int(med([e["failed"] for e in es])),
            int(med([e["probes"] for e in es])), fs(med(gaps)), fs(max(gaps) if gaps else None),
            ratio, len(es)))
    p("| maestro, one instance's stop + start + readiness | `restart INSTANCE` (its row) | %s | | | | | | | %d |"
      % (fs(cycle), len(r["cycle"])))
    p("| floor: 3x one instance's cycle | | %s | | | | | | | |" % fs(floor))
    p("| maestro, two instances' cycles at once (one per ship) | `restart INSTANCE INSTANCE` (the play) | %s | | | | | | | %d |"
      % (fs(med(r["pair"])), len(r["pair"])))
    p("| 3x two cycles at once | | %s | | | | | | | |" % fs(3 * med(r["pair"]) if r["pair"] else None))
    p("| maestro, a deploy with nothing to do | `deploy --max-unavailable %d` again | %s | | | | | | | %d |"
      % (MAX_UNAVAILABLE, fs(med(r["noop"])), len(r["noop"])))
    p("| maestro, the same plan without a play (no locks) | `plan --deploy --max-unavailable %d` | %s | | | | | | | %d |"
      % (MAX_UNAVAILABLE, fs(med(r["plan"])), len(r["plan"])))
    p()

    rs = up["rs"]
    fewest_rs = min((e["fewest"] for e in rs if e["fewest"] is not None), default=None)
    none_rs = max((e["none_s"] for e in rs), default=None)
    targets = []
    t1 = fewest_rs is not None and fewest_rs >= N - MAX_UNAVAILABLE
    targets.append(("maestro deploy never below %d - %d = %d instances answering (every run)"
                    % (N, MAX_UNAVAILABLE, N - MAX_UNAVAILABLE), "fewest %s" % fewest_rs, t1))
    t2 = fewest_rs is not None and fewest_rs > 0
    targets.append(("maestro deploy: no moment with no instance answering",
                    "fewest %s; longest time with none %s" % (fewest_rs, fs(none_rs)), t2))
    t3 = wall["rs"] is not None and floor is not None and wall["rs"] <= 1.25 * floor
    targets.append(("maestro deploy within 25%% of 3x one instance's cycle (<= %s)"
                    % fs(1.25 * floor if floor else None),
                    "%s = %s the floor" % (fs(wall["rs"]), "%.2fx" % (wall["rs"] / floor) if floor and wall["rs"] else "n/a"),
                    t3))
    crash = r["crash"]
    worst = [i["known_to_back"] for c in crash for i in c["instances"]]
    t4 = bool(crash) and bool(worst) and all(w is not None and w < 2.0 for w in worst)
    targets.append(("crash: service restored under 2 s after maestro knows of the failure (every instance, every run)",
                    "max %s" % fs(max((w for w in worst if w is not None), default=None)), t4))

    p("#### The crashing image (`app` retagged to an image that exits 4 at start), maestro `deploy --max-unavailable %d`"
      % MAX_UNAVAILABLE)
    p()
    p("| run | exit status | wall time | instances failed and restored | the new container's exit -> maestro's failure event "
      "| failure event -> v1 answers again | exit -> v1 answers again | instance out of service (longest) | fewest answering | old containers back, on v1 |")
    p("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for c in crash:
        ins = c["instances"]

        def mx(key):
            vals = [i[key] for i in ins if i[key] is not None]
            return max(vals) if vals else None
        p("| %d | %d | %s | %d | %s | %s | %s | %s | %s | %s |" % (
            c["run"], c["rc"], fs(c["wall"]), len(ins), fs(mx("died_to_known"), nd=3),
            fs(mx("known_to_back"), nd=3), fs(mx("died_to_back"), nd=3), fs(mx("out_of_service"), nd=3),
            c["fewest"], "yes" if c["restored_same"] and c["on_v1"] else "**no**"))
    p()
    p("Per failed instance the worst is shown (maximum); times from `docker events` (the new container's `die`, exit code 4), "
      "maestro's `--json` events (the step saying it failed and is restoring) and the probe (the answer's arrival).")
    p()
    p("#### Targets")
    p()
    p("| target | measured | holds |")
    p("| --- | --- | --- |")
    for what, measured, ok in targets:
        p("| %s | %s | %s |" % (what, measured, mark(ok)))
    p()
    if wall["rs"]:
        p("Ratios of wall times: MaestroNG / maestro %s, compose / maestro %s, maestro / floor %s."
          % ("%.2fx" % (wall["ng"] / wall["rs"]) if wall["ng"] else "n/a",
             "%.2fx" % (wall["cp"] / wall["rs"]) if wall["cp"] else "n/a",
             "%.2fx" % (wall["rs"] / floor) if floor else "n/a"))
    plays = [e["play_s"] for e in rs if e.get("play_s") is not None]
    if plays:
        p("maestro's deploy: %s from the command's start to the play's first event (process, file, ships, "
          "images, plan, locks), %s the play (first to last event), %s after it (locks given back, exit); medians."
          % (fs(med([e["before_play_s"] for e in rs])), fs(med(plays)), fs(med([e["after_play_s"] for e in rs]))))
    if rs:
        p("Most instances maestro had out of service at once, by its own events (a row from stopping the old "
          "container to its finished event): %d in the deploys, %s in the crash cases."
          % (max(e["in_flight"] for e in rs), max((c["in_flight"] for c in crash), default="n/a")))
    lags = [x for e in rs for x in e.get("ready_lag", [])]
    if lags:
        p("maestro saw a replacement ready (its row finished) %s after the probe's first answer from it "
          "(median; max %s, %d replacements)." % (fs(med(lags), nd=3), fs(max(lags), nd=3), len(lags)))
    lags = [i["ready_lag"] for c in crash for i in c["instances"] if i["ready_lag"] is not None]
    if lags:
        p("In the crash case, maestro saw a restored instance ready %s after the probe's first answer from it "
          "(median; max %s)." % (fs(med(lags), nd=3), fs(max(lags), nd=3)))
    if r["pair"] and wall["rs"]:
        p("maestro / 3x two cycles at once: %.2fx." % (wall["rs"] / (3 * med(r["pair"]))))
    if r["cycle_wall"]:
        p("One instance's `maestro restart INSTANCE`, whole command: %s (median of %d)."
          % (fs(med(r["cycle_wall"])), len(r["cycle_wall"])))
    for t in TOOLS:
        back = sum(e["old_after_new"] for e in up[t])
        if back:
            p("%s: %d answers of the old version after the new one." % (NAMES[t], back))
        other = sum(e["other_answers"] for e in up[t])
        if other:
            examples = sorted({x for e in up[t] for x in e["other_examples"]})
            p("%s: %d answers that were neither version, counted as failed probes: %s."
              % (NAMES[t], other, ", ".join("`%s`" % x if x else "a 200 with an empty body" for x in examples)))
    if r["failures"]:
        p()
        p("Failures:")
        for f in r["failures"]:
            p("- " + f)
    return 0 if ok_all and all(ok for _, _, ok in targets) else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    run = sub.add_parser("run")
    run.add_argument("--out", required=True)
    run.add_argument("--maestro", required=True)
    run.add_argument("--maestrong", required=True)
    run.add_argument("--compose", required=True, help='e.g. "docker-compose" or "docker compose"')
    run.add_argument("--base", required=True, help="the busybox image the app images are built FROM")
    run.add_argument("--rs-tcp", required=True, help="maestro's TCP ship: a loopback port to the engine")
    run.add_argument("--ng-ports", required=True, help="MaestroNG's two ships: PORT,PORT")
    run.add_argument("--api", required=True, help="the engine's API version, for MaestroNG")
    run.add_argument("--runs", type=int, default=3)
    clean = sub.add_parser("cleanup")
    clean.add_argument("--base", default=None, help="also remove this image")
    args = ap.parse_args()
    if args.what == "cleanup":
        cleanup(args.base)
        return 0
    for t in TOOLS:
        for p in ports(t):
            s = socket.socket()
            # Connections closed by Docker's proxy linger in TIME_WAIT on these ports for
            # a minute after a run; only a listener is in the way.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                log("port %d is taken; the benchmark publishes %d-%d" % (p, PORT_BASE["rs"] + 1, PORT_BASE["cp"] + N))
                return 1
            finally:
                s.close()
    return Bench(args).run()


if __name__ == "__main__":
    sys.exit(main())
