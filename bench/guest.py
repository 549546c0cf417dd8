#!/usr/bin/env python3
"""maestro-guest's benchmark targets: the static binary's size, the latency of its
discovery queries (`nodes`, `render`) against MaestroNG 0.8.3's Python guestutils, and
the readiness handshake against polling checks on the 5-level chain of plays.sh (b).
See bench/README.md ("guest.sh").

Called by bench/guest.sh, which installs what is needed, builds the binaries and the
images, and runs the socat bridge MaestroNG talks to. Standard library only.

    python3 bench/guest.py run --out DIR --maestro BIN --guest BIN --python VENV_PYTHON ...
    python3 bench/guest.py cleanup     # removes every container named mbg-*

Every container this benchmark creates is named `mbg-<variant>-l<level>`, so `cleanup`
finds them all by name (plays.py's `mb-` prefix does not match them, nor theirs these).
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no bench/__pycache__ from importing plays.py
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plays  # noqa: E402  (parse_ts, port_open, the busybox image's name)

PREFIX = "mbg-"
SIZE_TARGET = 2 * 1024 * 1024  # bytes, without TLS
LATENCY_TARGET = 0.002  # seconds per call
DISPATCH_TARGET = 0.050  # seconds from a dependency's READY to its dependent's start
APP_DELAY = plays.APP_DELAY  # the chain's apps open their port 300 ms after starting
LEVELS = 5

# A container's usual variables besides maestro's: a shell's PATH, HOME, HOSTNAME.
BASE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root"}


def log(msg):
    sys.stderr.write("    %s\n" % msg)


def fmt_t(s):
    if s is None:
        return "failed"
    if s >= 1:
        return "%.2f s" % s
    if s >= 0.01:
        return "%.1f ms" % (s * 1000)
    return "%.2f ms" % (s * 1000)


def yes(ok):
    return "yes" if ok else "**NO**"


# --- 1. size -----------------------------------------------------------------------

def size_table(guest):
    size = os.path.getsize(guest)
    ok = size <= SIZE_TARGET
    rows = [
        "| binary | bytes | MiB | target | holds |",
        "| --- | ---: | ---: | --- | --- |",
        "| `maestro-guest` (x86_64-unknown-linux-musl, profile `guest`, stripped), no TLS | "
        "{:,} | {:.2f} | <= 2 MiB without TLS | {} |".format(size, size / 1048576, yes(ok)),
        "| `maestro-guest` with TLS | n/a | n/a | <= 3 MiB with TLS | n/a: the guest has no "
        "TLS client (its readiness reports are plain gRPC over HTTP/2 to the controller) |",
    ]
    return "\n".join(rows), {"bytes": size, "holds": ok}


# --- 2. query latency ----------------------------------------------------------------

ZK_KAFKA = """__maestro: {schema: 2}
name: prod
ships:
  broker1: {ip: 10.0.1.11}
  broker2: {ip: 10.0.1.12}
  broker3: {ip: 10.0.1.13}
services:
  zookeeper:
    image: registry.example.com/zookeeper:3.4.14
    ports: {client: 2181, peer: 2888, election: 3888}
    env: {ZOO_TICK_TIME: 2000, JVMFLAGS: "-Xmx512m -XX:+UseG1GC"}
    instances:
      zk-1: {ship: broker1}
      zk-2: {ship: broker2}
      zk-3: {ship: broker3}
  kafka:
    image: registry.example.com/kafka:2.8.2
    requires: [zookeeper]
    ports: {broker: 9092, jmx: 7199}
    env:
      KAFKA_HEAP_OPTS: "-Xmx1g -Xms1g"
      LOG_DIRS: /data/kafka
      NUM_PARTITIONS: 12
    instances:
      kafka-1: {ship: broker1, volumes: {/srv/kafka-1: /data/kafka}}
      kafka-2: {ship: broker2, volumes: {/srv/kafka-2: /data/kafka}}
      kafka-3: {ship: broker3, volumes: {/srv/kafka-3: /data/kafka}}
"""

# The same configuration file, written once for each tool: MaestroNG users render a Jinja2
# template from a Python start script with guestutils' functions; maestro-guest's
# templates call its functions by their own names.
KAFKA_TEMPLATE = {
    "guest": """# {{ container() }} of {{ service() }} in {{ env_name() }}
broker.id={{ container().split('-')[-1] }}
listeners=PLAINTEXT://0.0.0.0:{{ port('broker') }}
advertised.listeners=PLAINTEXT://{{ host_address() }}:{{ port('broker') }}
zookeeper.connect={{ nodes('zookeeper', ports=['client']) | join(',') }}
{% for peer in nodes('kafka', ports=['broker']) -%}
# peer {{ loop.index }}: {{ peer }}
{% endfor -%}
log.dirs={{ env.LOG_DIRS }}
num.partitions={{ env.NUM_PARTITIONS }}
""",
    "python": """# {{ get_container_name() }} of {{ get_service_name() }} in {{ get_environment_name() }}
broker.id={{ get_container_name().split('-')[-1] }}
listeners=PLAINTEXT://0.0.0.0:{{ get_port('broker') }}
advertised.listeners=PLAINTEXT://{{ get_container_host_address() }}:{{ get_port('broker') }}
zookeeper.connect={{ get_node_list('zookeeper', ports=['client']) | join(',') }}
{% for peer in get_node_list('kafka', ports=['broker']) -%}
# peer {{ loop.index }}: {{ peer }}
{% endfor -%}
log.dirs={{ env.LOG_DIRS }}
num.partitions={{ env.NUM_PARTITIONS }}
""",
}

# MaestroNG's way: a start script that renders a Jinja2 template with guestutils.
RENDER_PY = """import os
import sys

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from maestro.guestutils import (get_container_host_address, get_container_name,
                                get_environment_name, get_node_list, get_port,
                                get_service_name)

src, dst = sys.argv[1], sys.argv[2]
jinja = Environment(loader=FileSystemLoader(os.path.dirname(os.path.abspath(src))),
                    undefined=StrictUndefined, keep_trailing_newline=True)
jinja.globals.update(get_container_host_address=get_container_host_address,
                     get_container_name=get_container_name,
                     get_environment_name=get_environment_name,
                     get_node_list=get_node_list, get_port=get_port,
                     get_service_name=get_service_name)
text = jinja.get_template(os.path.basename(src)).render(env=os.environ)
if dst == "-":
    sys.stdout.write(text)
else:
    with open(dst, "w") as f:
        f.write(text)
"""


def generic_template(deps, guest):
    """A config file for an instance of a generated service: its own address and port,
    its peers, and the nodes of every service it requires."""
    f = {"container": "container()", "service": "service()", "env": "env_name()",
         "host": "host_address()", "port": "port('http')", "nodes": "nodes"}
    if not guest:
        f = {"container": "get_container_name()", "service": "get_service_name()",
             "env": "get_environment_name()", "host": "get_container_host_address()",
             "port": "get_port('http')", "nodes": "get_node_list"}
    out = ["# {{ %s }} of {{ %s }} in {{ %s }}\n" % (f["container"], f["service"], f["env"]),
           "listen={{ %s }}:{{ %s }}\n" % (f["host"], f["port"]),
           "peers={{ %s(%s, ports=['http']) | join(',') }}\n" % (f["nodes"], f["service"])]
    for dep in deps:
        out.append("%s.nodes={{ %s('%s', ports=['http']) | join(',') }}\n" % (dep, f["nodes"], dep))
    return "".join(out)


def instance_env(maestro, yaml_file, instance=None):
    """(instance, its variables, its service's requires) from `maestro config --json`;
    without `instance`, the instance with the median number of variables."""
    r = subprocess.run([maestro, "-f", yaml_file, "config", "--json"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError("maestro config --json %s failed: %s" % (yaml_file, r.stderr[-2000:]))
    model = json.loads(r.stdout)
    if instance is None:
        ranked = sorted(model["instances"], key=lambda n: (len(model["instances"][n]["env"]), n))
        instance = ranked[len(ranked) // 2]
    inst = model["instances"][instance]
    env = {k: ("" if v is None else str(v)) for k, v in inst["env"].items()}
    return instance, env, model["services"][inst["service"]]["requires"]


def hyperfine(out, name, commands, env, warmup, prepare=None):
    """Runs hyperfine -N on {label: argv}; returns {label: (median s, runs)}."""
    export = os.path.join(out, "hyperfine-%s.json" % name)
    cmd = ["hyperfine", "-N", "--style", "basic", "--warmup", str(warmup),
           "--export-json", export]
    if prepare:
        cmd += ["--prepare", prepare]
    labels = list(commands)
    for label in labels:
        cmd += ["-n", label, " ".join(shlex.quote(a) for a in commands[label])]
    with open(os.path.join(out, "hyperfine-%s.log" % name), "w") as logf:
        subprocess.run(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL, check=True)
    with open(export) as f:
        results = json.load(f)["results"]
    return {label: (r["median"], len(r["times"])) for label, r in zip(labels, results)}


def same_output(commands, env, cwd):
    """Runs each command once; all must succeed and print the same text."""
    outs = {}
    for label, argv in commands.items():
        r = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise RuntimeError("%s failed (exit %d): %s" % (label, r.returncode, r.stderr[-2000:]))
        outs[label] = r.stdout
    texts = list(outs.values())
    if any(t != texts[0] for t in texts):
        raise RuntimeError("outputs differ:\n" + "\n".join(
            "--- %s\n%s" % (k, v) for k, v in outs.items()))
    return texts[0]


def latency(args):
    out = os.path.join(args.out, "latency")
    os.makedirs(out, exist_ok=True)
    zk_file = os.path.join(out, "zk-kafka.yaml")
    with open(zk_file, "w") as f:
        f.write(ZK_KAFKA)
    big_file = os.path.join(out, "env-2000.yaml")
    with open(big_file, "w") as f:
        subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "gen_env.py"),
                        "--instances", "2000", "--services", "100", "--ships", "10",
                        "--seed", "42"], stdout=f, check=True)
    cases = []
    inst, env, _ = instance_env(args.maestro, zk_file, "kafka-2")
    cases.append(("zk-kafka", "zookeeper/kafka, 3 + 3 instances: `kafka-2`", inst, env,
                  "zookeeper", "client", KAFKA_TEMPLATE))
    inst, env, deps = instance_env(args.maestro, big_file)
    cases.append(("gen-2000", "gen_env.py 2,000 instances: `%s` (median instance)" % inst,
                  inst, env, deps[0], "http",
                  {"guest": generic_template(deps, True), "python": generic_template(deps, False)}))

    script = os.path.join(out, "render.py")
    with open(script, "w") as f:
        f.write(RENDER_PY)
    rows, results, holds = [], {}, True
    for key, label, inst, ienv, query_svc, query_port, templates in cases:
        env = dict(BASE_ENV, HOSTNAME=inst, **ienv)
        nbytes = sum(len(k) + len(v) + 2 for k, v in env.items())
        log("%s: %d variables, %d bytes" % (inst, len(env), nbytes))
        tdir = os.path.join(out, key)
        os.makedirs(tdir, exist_ok=True)
        tg, tp = os.path.join(tdir, "guest.conf.j2"), os.path.join(tdir, "python.conf.j2")
        with open(tg, "w") as f:
            f.write(templates["guest"])
        with open(tp, "w") as f:
            f.write(templates["python"])
        new_g, new_p = os.path.join(tdir, "guest.conf"), os.path.join(tdir, "python.conf")

        py_nodes = [args.python, "-c",
                    "from maestro.guestutils import get_node_list; "
                    "print(','.join(get_node_list(%r, ports=[%r])))" % (query_svc, query_port)]
        g_nodes = [args.guest, "nodes", query_svc, "--port", query_port, "--format", "csv"]
        same_output({"python": py_nodes, "guest": g_nodes}, env, tdir)
        same_output({"python": [args.python, script, tp, "-"],
                     "guest": [args.guest, "render", tg + ":-"]}, env, tdir)

        for argv in ([args.python, script, tp, new_p], [args.guest, "render", "%s:%s" % (tg, new_g)]):
            subprocess.run(argv, env=env, cwd=tdir, check=True)
        with open(new_g) as a, open(new_p) as b:
            if a.read() != b.read():
                raise RuntimeError("rendered files differ: %s %s" % (new_g, new_p))

        timed = hyperfine(out, key + "-stdout", {
            "py-floor": [args.python, "-c", "pass"],
            "py-imports": [args.python, "-c", "import jinja2, maestro.guestutils"],
            "py-nodes": py_nodes,
            "g-nodes": g_nodes,
            "py-render": [args.python, script, tp, "-"],
            "g-render": [args.guest, "render", tg + ":-"],
        }, env, args.warmup)
        # A new file each run: MaestroNG's script writes it; maestro-guest stages it,
        # fsyncs it and renames it into place (an unchanged file is not even touched).
        timed.update(hyperfine(out, key + "-file", {
            "py-file": [args.python, script, tp, new_p],
            "g-file": [args.guest, "render", "%s:%s" % (tg, new_g)],
        }, env, args.warmup, prepare="/bin/rm -f %s %s" % (new_p, new_g)))
        results[key] = {"instance": inst, "variables": len(env), "bytes": nbytes,
                        "timings": {k: {"median": m, "runs": n} for k, (m, n) in timed.items()}}
        env_label = "%s (%d variables, %.1f KB)" % (label, len(env), nbytes / 1000)
        queries = [
            ("`nodes %s --port %s --format csv` vs `get_node_list(%r, ports=[%r])`"
             % (query_svc, query_port, query_svc, query_port), "g-nodes", "py-nodes"),
            ("`render T:-` vs Jinja2 + guestutils, to stdout", "g-render", "py-render"),
            ("`render T:FILE` vs Jinja2 + guestutils, a new file", "g-file", "py-file"),
        ]
        for text, g, p in queries:
            gm, gn = timed[g]
            pm, pn = timed[p]
            ok = gm <= LATENCY_TARGET
            holds = holds and ok
            rows.append("| %s | %s | %s (%d) | %s (%d) | %.0fx | %s |" % (
                env_label, text, fmt_t(pm), pn, fmt_t(gm), gn, pm / gm, yes(ok)))
        for ref, text in (("py-floor", "`python -c pass` (the interpreter alone)"),
                          ("py-imports", "`python -c 'import jinja2, maestro.guestutils'`")):
            m, n = timed[ref]
            rows.append("| %s | reference: %s | %s (%d) | | | |" % (env_label, text, fmt_t(m), n))
    head = ("| environment (one instance's variables) | query | MaestroNG 0.8.3 guestutils, "
            "Python (runs) | maestro-guest (runs) | Python / guest | maestro-guest <= 2 ms |\n"
            "| --- | --- | ---: | ---: | ---: | --- |")
    return head + "\n" + "\n".join(rows), results, holds


# --- 3. the chain: handshake vs polling ------------------------------------------------

VARIANTS = {
    # key: (label, image kind, run through maestro-guest, lifecycle tcp check, extra flags)
    "hs": ("maestro, handshake: `maestro-guest run --ready-when tcp:PORT`, no check",
           "guest", True, False, []),
    "gp": ("maestro, polling: the same guest command, tcp check, `--readiness-address off`",
           "guest", True, True, ["--readiness-address", "off"]),
    "pl": ("maestro, polling without the guest (as plays.sh (b))", "busybox", False, True, []),
    "ng": ("MaestroNG 0.8.3, polling (1 s per attempt)", "busybox", False, True, []),
}
ORDER = ("hs", "gp", "pl", "ng")


def chain_port(variant, level):
    return 17400 + 10 * ORDER.index(variant) + level


def chain_names(variant):
    return ["%s%s-l%d" % (PREFIX, variant, i) for i in range(1, LEVELS + 1)]


def app(port):
    """plays.sh (b)'s app, which opens its port 300 ms after it starts, plus the wall-clock
    time (busybox `adjtimex` prints it to the microsecond; its `date` has no %N) printed
    just before httpd opens the port: the port opens a little after that time."""
    return "sleep %s; adjtimex; exec httpd -f -p 127.0.0.1:%d -h /tmp" % (APP_DELAY, port)


def chain_yaml(variant, args):
    _, image_kind, guest, check, _ = VARIANTS[variant]
    image = args.guest_image if image_kind == "guest" else args.busybox_image
    if variant == "ng":
        ship = ("ships:\n  local: {ip: 127.0.0.1, docker_port: %d, api_version: \"%s\", "
                "timeout: 60}\n" % (args.ng_port, args.ng_api))
    else:
        ship = "ships:\n  local: {ip: 127.0.0.1, socket_path: /var/run/docker.sock, timeout: 60}\n"
    out = ["__maestro: {schema: 2}\n", "name: %s%s\n" % (PREFIX, variant), ship, "services:\n"]
    for level, name in enumerate(chain_names(variant), 1):
        port = chain_port(variant, level)
        out.append("  l%d:\n    image: %s\n" % (level, image))
        if level > 1:
            out.append("    requires: [l%d]\n" % (level - 1))
        if check:
            out.append("    lifecycle:\n      running: [{type: tcp, port: app}]\n")
        out.append("    instances:\n      %s:\n" % name)
        out.append("        ship: local\n        net: host\n")
        out.append("        ports: {app: \"%d:%d\"}\n" % (port, port))
        if guest:
            command = ["maestro-guest", "run", "--ready-when", "tcp:%d" % port, "--",
                       "sh", "-c", app(port)]
        else:
            # A string, as plays.py writes it for both tools (docker-py splits it).
            command = 'sh -c "%s"' % app(port)
        out.append("        command: %s\n" % json.dumps(command))
    return "".join(out)


# A wedged engine (Docker 20.10's libnetwork can deadlock under heavy container churn)
# must fail the benchmark, not hang it.
DOCKER_TIMEOUT = 120


def docker(*args, check=True):
    try:
        r = subprocess.run(["docker", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=DOCKER_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise RuntimeError("docker %s: no answer within %d s (is the engine wedged?)"
                           % (" ".join(args[:2]), DOCKER_TIMEOUT)) from None
    if check and r.returncode != 0:
        raise RuntimeError("docker %s failed: %s" % (" ".join(args[:3]), r.stdout.strip()))
    return r.stdout


def inspect(names):
    """{name: (id, startedAt, running)} for the containers that exist."""
    found = docker("ps", "-aq", *[a for n in names for a in ("--filter", "name=^/%s$" % n)])
    if not found.split():
        return {}
    result = {}
    for c in json.loads(docker("inspect", *found.split())):
        result[c["Name"].lstrip("/")] = (c["Id"], c["State"]["StartedAt"], c["State"]["Running"])
    return result


def remove(prefix):
    ids = docker("ps", "-aq", "--filter", "name=^/" + prefix).split()
    if ids:
        docker("rm", "-f", "-v", *ids, check=False)


def cleanup():
    remove(PREFIX)


def port_opened(name):
    """The app's wall-clock time just before it opened its port (adjtimex's output)."""
    logs = docker("logs", name, check=False)
    fields = {}
    for line in logs.splitlines():
        key, _, value = line.strip().partition(":")
        if key in ("time.tv_sec", "time.tv_usec"):
            fields[key] = int(value.split()[0])
    if len(fields) != 2:
        return None
    return fields["time.tv_sec"] + fields["time.tv_usec"] / 1e6


def parse_events(path):
    """{instance: {'first_step': t, 'finished': t, 'message': str, 'result': str}}."""
    events = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            e = json.loads(line)
            inst = e.get("instance")
            if inst is None:
                continue
            slot = events.setdefault(inst, {})
            if e["event"] == "step":
                slot.setdefault("first_step", e["time"])
            elif e["event"] == "finished":
                slot.update(finished=e["time"], message=e["message"], result=e["result"])
    return events


def took_ms(message):
    # "started, ready after 305 ms" / "... after 1.2 s"
    if "ready after" not in message:
        return None
    value, unit = message.rsplit("ready after", 1)[1].split()
    return float(value) * (1000 if unit == "s" else 1)


def run_chain(args, variant, run, files, logs):
    names = chain_names(variant)
    remove("%s%s-" % (PREFIX, variant))
    busy = [p for p in (chain_port(variant, i) for i in range(1, LEVELS + 1)) if plays.port_open(p)]
    if busy:
        raise RuntimeError("127.0.0.1 ports %s are in use: the chain needs them free" % busy)
    extra = VARIANTS[variant][4]
    if variant == "ng":
        cmd = [args.maestrong, "-f", files[variant], "start"]
    else:
        cmd = [args.maestro, "-f", files[variant], "--json", *extra, "start"]
    log_path = os.path.join(logs, "%s-%d.log" % (variant, run))
    with open(log_path, "w") as out:
        t0 = time.perf_counter()
        try:
            rc = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, timeout=DOCKER_TIMEOUT)
        except subprocess.TimeoutExpired:  # the child was killed
            rc = "timeout (%d s)" % DOCKER_TIMEOUT
        wall = time.perf_counter() - t0
    info = inspect(names)
    opened = [port_opened(n) for n in names]
    remove("%s%s-" % (PREFIX, variant))
    running = sum(1 for v in info.values() if v[2])
    if rc != 0 or running != LEVELS:
        with open(log_path) as f:
            tail = f.read()[-2000:]
        return None, "%s run %d: exit %s, %d/%d running\n%s" % (variant, run, rc, running, LEVELS, tail)
    if None in opened:
        return None, "%s run %d: an app printed no time before opening its port" % (variant, run)
    started = [plays.parse_ts(info[n][1]) for n in names]
    gaps = [b - a for a, b in zip(started, started[1:])]
    if any(s <= o for o, s in zip(opened, started[1:])):
        return None, "%s run %d: a level started before its dependency's port opened" % (
            variant, run)
    sample = {"wall": wall, "per_level": statistics.mean(gaps) - APP_DELAY, "gaps": gaps,
              # From the dependency's port opening to the dependent's container started.
              "open_to_started": [s - o for o, s in zip(opened, started[1:])]}
    if variant != "ng":
        ev = parse_events(log_path)
        if any(n not in ev or "finished" not in ev[n] for n in names):
            return None, "%s run %d: missing events in %s" % (variant, run, log_path)
        # The port opening to the controller's READY (its Finished event), every level.
        sample["detect"] = [ev[n]["finished"] - o for n, o in zip(names, opened)]
        # READY of level N to level N+1's first step: the controller's own delay.
        sample["dispatch"] = [ev[b]["first_step"] - ev[a]["finished"] for a, b in zip(names, names[1:])]
        # The port opening to the dependent's first step: detection + dispatch.
        sample["open_to_step"] = [ev[b]["first_step"] - o for o, b in zip(opened, names[1:])]
        # A task's first step to its container's start (inspect, create, start: the engine).
        sample["engine"] = [s - ev[n]["first_step"] for n, s in zip(names, started)]
        tooks = [took_ms(ev[n]["message"]) for n in names]
        if variant == "hs" and None in tooks:
            return None, "%s run %d: not every level was ready by handshake: %s" % (
                variant, run, [ev[n]["message"] for n in names])
        if variant != "hs" and any(t is not None for t in tooks):
            return None, "%s run %d: a level reported ready by handshake" % (variant, run)
        if variant == "hs":
            sample["took_ms"] = tooks
    return sample, None


def chain(args):
    out = os.path.join(args.out, "chain")
    logs = os.path.join(out, "logs")
    os.makedirs(logs, exist_ok=True)
    variants = [v for v in ORDER if v != "ng" or args.ng_runs > 0]
    files = {}
    for v in variants:
        files[v] = os.path.join(out, "%s.yaml" % v)
        with open(files[v], "w") as f:
            f.write(chain_yaml(v, args))
    samples = {v: [] for v in variants}
    failures = []
    for run in range(max(args.runs, args.ng_runs)):
        for v in variants:
            if run >= (args.ng_runs if v == "ng" else args.runs):
                continue
            sample, error = run_chain(args, v, run + 1, files, logs)
            if error:
                failures.append(error)
                sys.stderr.write("!! %s\n" % error)
                continue
            samples[v].append(sample)
            log("chain %s run %d: %.3f s, per level +%.0f ms, port open -> dependent started %s ms%s" % (
                v, run + 1, sample["wall"], 1000 * sample["per_level"],
                " ".join("%.0f" % (1000 * d) for d in sample["open_to_started"]),
                "" if "dispatch" not in sample else ", dispatch %s ms" % " ".join(
                    "%.1f" % (1000 * d) for d in sample["dispatch"])))

    def med(v, key, flat=False):
        xs = [s[key] for s in samples[v] if key in s]
        if flat:
            xs = [x for s in xs for x in s]
        return (statistics.median(xs), max(xs), len(xs)) if xs else None

    def cell(m, with_max=False):
        if m is None:
            return "n/a"
        return "%s / %s" % (fmt_t(m[0]), fmt_t(m[1])) if with_max else fmt_t(m[0])

    head = ("| variant | `start`, wall clock | per level beyond the app's 300 ms | "
            "port open -> READY (detection) | READY -> dependent's first step (dispatch), "
            "median / max | port open -> dependent's first step, median / max | "
            "dependent's first step -> its container started (engine) | "
            "port open -> dependent's container started | runs |\n"
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    rows = []
    verdict = {}
    for v in variants:
        wall = med(v, "wall")
        if wall is None:
            rows.append("| %s | failed | | | | | | | 0 |" % VARIANTS[v][0])
            continue
        rows.append("| %s | %s | %s | %s | %s | %s | %s | %s | %d |" % (
            VARIANTS[v][0], fmt_t(wall[0]), cell(med(v, "per_level")),
            cell(med(v, "detect", True)), cell(med(v, "dispatch", True), True),
            cell(med(v, "open_to_step", True), True), cell(med(v, "engine", True)),
            cell(med(v, "open_to_started", True)), wall[2]))
    d, ots = (med("hs", "dispatch", True), med("hs", "open_to_step", True)) if samples.get("hs") else (None, None)
    verdict["dispatch"] = d is not None and d[1] < DISPATCH_TARGET
    verdict["open_to_step"] = ots is not None and ots[1] < DISPATCH_TARGET
    notes = [
        "Target, with the handshake: the controller's delay from a dependency's READY to "
        "its dependent's start under 50 ms, every transition (max): READY as the "
        "controller registers it -> the dependent's first step: %s; from the port "
        "opening (so with the detection) -> the dependent's first step: %s."
        % ("not run" if d is None else yes(verdict["dispatch"]),
           "not run" if ots is None else yes(verdict["open_to_step"]))]
    if samples.get("hs"):
        tk = med("hs", "took_ms", True)
        notes.append("The guests' `took_ms` (their start to their probe passing, reported "
                     "in the Finished message): median %.0f ms." % tk[0])
    table = head + "\n" + "\n".join(rows) + "\n\n" + "\n".join(notes)
    return table, {"samples": samples, "failures": failures}, all(verdict.values()) and not failures


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("cleanup")
    r = sub.add_parser("run")
    r.add_argument("--out", required=True)
    r.add_argument("--maestro", required=True)
    r.add_argument("--guest", required=True)
    r.add_argument("--python", required=True, help="the venv's python with MaestroNG 0.8.3")
    r.add_argument("--maestrong", help="MaestroNG 0.8.3's maestro")
    r.add_argument("--guest-image", default="maestro-bench/guest:1")
    r.add_argument("--busybox-image", default=plays.IMAGE)
    r.add_argument("--ng-port", type=int, default=0)
    r.add_argument("--ng-api", default="1.41")
    r.add_argument("--runs", type=int, default=5)
    r.add_argument("--ng-runs", type=int, default=3)
    r.add_argument("--warmup", type=int, default=5)
    r.add_argument("--parts", default="size,latency,chain")
    args = p.parse_args()
    if args.cmd == "cleanup":
        cleanup()
        return 0
    for name in ("out", "maestro", "guest", "python", "maestrong"):
        if getattr(args, name):
            setattr(args, name, os.path.abspath(getattr(args, name)))
    if args.ng_runs > 0 and not (args.maestrong and args.ng_port):
        args.ng_runs = 0
    parts = args.parts.split(",")
    results, verdicts, sections = {}, {}, []
    if "size" in parts:
        table, results["size"] = size_table(args.guest)
        verdicts["size"] = results["size"]["holds"]
        sections.append("### 1. Size\n\n" + table)
    if "latency" in parts:
        table, results["latency"], verdicts["latency"] = latency(args)
        sections.append("### 2. Query latency (hyperfine -N, medians)\n\n" + table)
    if "chain" in parts:
        table, results["chain"], verdicts["chain"] = chain(args)
        sections.append("### 3. The 5-level chain: handshake vs polling (medians)\n\n" + table)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"results": results, "targets": verdicts}, f, indent=1)
    print("\n\n".join(sections))
    return 0 if all(verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
