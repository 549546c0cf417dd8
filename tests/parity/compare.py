#!/usr/bin/env python3
"""Parity with MaestroNG 0.8.3 on the real engine: the containers of the conformance
cases, created by MaestroNG and by maestro, compared field by field with `docker inspect`.

    tests/parity/run.sh [--only CASE] [-v]        # installs MaestroNG, builds nothing else

runs this script with the Python of a virtual environment holding MaestroNG 0.8.3
(tests/maestrong-venv.sh):

    VENV/bin/python tests/parity/compare.py --maestro target/release/maestro [--only CASE] [-v]

For every case of tests/conformance/cases:

1. The file is rendered (Jinja2, with the case's environ file, as MaestroNG renders it)
   and rewritten so that every ship's engine is this machine's: each ship keeps its `ip`
   (what containers are told) and `api_version`, gets `endpoint: 127.0.0.1` and the
   relay's port (relay.py), and loses TLS and SSH settings; `ship_defaults` is emptied.
   `lifecycle` (service and instance) and `audit` are emptied: checks and auditors would
   run commands or reach addresses named in the cases, and do not define containers.
   Everything else is the case's text as written.
2. MaestroNG builds its model from the file (its own `Conductor`). A file it refuses is
   skipped (the conformance test holds maestro to that).
3. A small image built FROM scratch (busybox-static, as the end-to-end tests do) is tagged
   under every image name the case uses; the tags are removed afterwards.
4. MaestroNG creates every instance's container exactly as its StartTask does
   (`create_container` with the same arguments: see `ng_create`), dependencies first.
   Each container is inspected and removed.
5. maestro creates them: `maestro start -i NAME`, one instance at a time in the same
   order, through the relay, which refuses every start (and pull), so each container
   stays as created (the readiness handshake listens on loopback). Each container is
   inspected and removed.
6. The two inspections are compared field by field: `Config`, `HostConfig`, `Path`,
   `Args`, `Mounts`, the network `NetworkSettings.Networks` names. A difference is
   allowed only if a line of allow.tsv (beside this file) explains it.

Every container the test creates is removed (each tool's run starts only when none of
the case's names exists on the engine, and everything under those names afterwards is
the test's own). The last line is 'N passed, M failed'; the exit status is 1 when a case
has an unexplained difference or cannot be run.
"""

import argparse
import fnmatch
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CONFORMANCE = os.path.join(ROOT, "tests", "conformance")
BASE_IMAGE = "maestro-parity/busybox:1"

sys.path.insert(0, HERE)
import relay as relay_mod  # noqa: E402

try:
    import jinja2
    import yaml
    from maestro import loader as ng_loader
    from maestro.maestro import Conductor
except ImportError as e:  # pragma: no cover - told, not tested
    sys.exit(
        "error: %s: run this with the Python of MaestroNG 0.8.3's virtual environment "
        "(tests/parity/run.sh does: bash tests/maestrong-venv.sh prints its folder)" % e
    )


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def docker(*args, check=True, input=None):
    p = subprocess.run(["docker", *args], capture_output=True, text=True, input=input)
    if check and p.returncode != 0:
        raise RuntimeError("docker %s: %s" % (" ".join(args), p.stderr.strip()))
    return p


# --- the image ---------------------------------------------------------------------------

def build_image():
    busybox = next((p for p in ("/bin/busybox", "/usr/bin/busybox") if os.path.exists(p)), None)
    if busybox is None:
        sys.exit("error: the parity test needs Debian's busybox-static (apt-get install busybox-static)")
    ctx = tempfile.mkdtemp(prefix="maestro-parity-image.")
    try:
        shutil.copy(busybox, os.path.join(ctx, "busybox"))
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write(
                'FROM scratch\nCOPY busybox /bin/busybox\n'
                'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
                'ENV PATH=/bin\nCMD ["sh"]\n'
            )
        docker("build", "-q", "-t", BASE_IMAGE, ctx)
    finally:
        shutil.rmtree(ctx, ignore_errors=True)


def tag_images(names):
    """Tags the base image under each name that does not exist yet; returns the tags made."""
    made = []
    for name in sorted(set(names)):
        ref = name
        # MaestroNG's reading (§7.4): no tag, or an empty one, is `latest`.
        last = ref.rsplit("/", 1)[-1]
        if ":" not in last:
            ref += ":latest"
        elif ref.endswith(":"):
            ref += "latest"
        if docker("image", "inspect", ref, check=False).returncode == 0:
            continue
        if docker("tag", BASE_IMAGE, ref, check=False).returncode == 0:
            made.append(ref)
        # A name the engine cannot tag (`svc@sha256:abcdef`) stays absent: both tools'
        # creates then fail, which is compared too.
    return made


# --- rewriting a case ---------------------------------------------------------------------

def render(path, environ):
    """The case's text as MaestroNG's loader renders it (loader.load, with `env`)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.dirname(path)), auto_reload=False)
    return env.get_template(os.path.basename(path)).render(env=environ)


def _pairs(node):
    return node.value if isinstance(node, yaml.MappingNode) else []


def _key(node):
    return node.value if isinstance(node, yaml.ScalarNode) else None


def _span(text, node):
    return text[node.start_mark.index:node.end_mark.index]


def rewrite(text, port):
    """The rendered case with every ship on this engine (see the module's text)."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    edits = []  # (start, end, replacement)

    def replace(node, replacement):
        if isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null") and node.tag.endswith("null"):
            return
        start, end = node.start_mark.index, node.end_mark.index
        # A block node ends where the next token starts, after the next line's
        # indentation: keep that whitespace, so what follows stays where it was.
        end = start + len(text[start:end].rstrip())
        edits.append((start, end, replacement))

    defaults_node = None
    for k, v in _pairs(root):
        if _key(k) == "ship_defaults":
            defaults_node = v
    defaults_api = None
    for k, v in _pairs(defaults_node):
        if _key(k) == "api_version":
            defaults_api = _span(text, v)
    for k, v in _pairs(root):
        key = _key(k)
        if key == "ships":
            ships = []
            for sk, sv in _pairs(v):
                fields = {"ip": None, "api_version": defaults_api}
                for fk, fv in _pairs(sv):
                    if _key(fk) in fields:
                        fields[_key(fk)] = _span(text, fv)
                if fields["ip"] is None:
                    continue  # MaestroNG refuses it anyway
                parts = ["ip: %s" % fields["ip"], "endpoint: 127.0.0.1", "docker_port: %d" % port, "timeout: 60"]
                if fields["api_version"] is not None:
                    parts.append("api_version: %s" % fields["api_version"])
                ships.append("%s: {%s}" % (json.dumps(sk.value), ", ".join(parts)))
            replace(v, "{%s}" % ", ".join(ships))
        elif key == "ship_defaults":
            replace(v, "{}")
        elif key == "audit":
            replace(v, "[]")
        elif key == "services":
            for _, service in _pairs(v):
                for sk, sv in _pairs(service):
                    if _key(sk) == "lifecycle":
                        replace(sv, "{}")
                    elif _key(sk) == "instances":
                        for _, instance in _pairs(sv):
                            for ik, iv in _pairs(instance):
                                if _key(ik) == "lifecycle":
                                    replace(iv, "{}")
    # Spans never overlap (distinct keys); apply from the end.
    for start, end, new in sorted(set(edits), reverse=True):
        text = text[:start] + new + text[end:]
    return text


# --- MaestroNG's side ------------------------------------------------------------------------

def ng_conductor(path):
    return Conductor(ng_loader.load(path))


def ng_create(container):
    """MaestroNG 0.8.3's create, as StartTask._create_and_start_container makes it
    (maestro/plays/tasks.py), without what comes before (clean, pull) and after (start)."""
    ports = container.ports \
        and list(map(lambda p: tuple(p['exposed'].split('/')), container.ports.values())) \
        or None
    container.ship.backend.create_container(
        image=container.image,
        name=container.name,
        hostname=container.hostname,
        user=container.username,
        environment=container.env,
        volumes=list(container.get_volumes()),
        cpu_shares=container.cpu_shares,
        host_config=container.host_config,
        ports=ports,
        detach=True,
        working_dir=container.workdir,
        labels=container.labels,
        command=container.command)


def waves(conductor):
    """The instances in creation waves: each after what it needs to exist at create
    (the services it requires, its volumes_from, links and container network)."""
    containers = conductor.containers
    needs = {}
    for name, c in containers.items():
        deps = set()
        for svc in c.service.requires:
            deps.update(x.name for x in svc.containers)
        deps.update(c.volumes_from)
        deps.update(c.links.keys())
        net = c.network_mode or ""
        if net.startswith("container:"):
            deps.add(net.split(":", 1)[1])
        needs[name] = {d for d in deps if d in containers and d != name}
    out, done = [], set()
    while len(done) < len(needs):
        wave = sorted(n for n in needs if n not in done and needs[n] <= done)
        if not wave:  # a cycle: both tools refuse or crash on it earlier
            wave = sorted(n for n in needs if n not in done)
        out.append(wave)
        done.update(wave)
    return out


# --- the engine ------------------------------------------------------------------------------

def existing(names):
    if not names:
        return {}
    p = docker("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}")
    want = set(names)
    out = {}
    for line in p.stdout.splitlines():
        cid, _, cnames = line.partition(" ")
        for n in cnames.split(","):
            if n in want:
                out[n] = cid
    return out


def inspect_and_remove(names):
    found = existing(names)
    inspected = {}
    if found:
        data = json.loads(docker("inspect", *found.values()).stdout)
        for item in data:
            inspected[item["Name"].lstrip("/")] = item
        docker("rm", "-f", "-v", *found.values(), check=False)
    return inspected


# --- comparison --------------------------------------------------------------------------------

UNORDERED = {
    "HostConfig.Binds", "HostConfig.Links", "HostConfig.VolumesFrom", "HostConfig.ExtraHosts",
    "HostConfig.CapAdd", "HostConfig.CapDrop", "HostConfig.SecurityOpt", "HostConfig.Ulimits",
    "Mounts",
}


def normalize(item, names):
    """The parts of an inspection that a definition decides, with per-container noise
    (ids, generated names) replaced by markers: this container's id by <id>, the ids of
    the case's other containers (`container:ID` network modes) by <NAME>."""
    cid = item["Id"]
    anon = {m.get("Name") for m in item.get("Mounts") or [] if m.get("Type") == "volume"}

    def scrub(value):
        if isinstance(value, str):
            for name in anon:
                if name:
                    value = value.replace(name, "<volume>")
            for other, name in names.items():
                value = value.replace(other, "<%s>" % name)
            return value.replace(cid, "<id>").replace(cid[:12], "<id>")
        if isinstance(value, list):
            return [scrub(v) for v in value]
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        return value

    out = {
        "Config": item.get("Config"),
        "HostConfig": item.get("HostConfig"),
        "Path": item.get("Path"),
        "Args": item.get("Args"),
        "Mounts": item.get("Mounts"),
        "Networks": sorted(((item.get("NetworkSettings") or {}).get("Networks") or {}).keys()),
    }
    return scrub(out)


def flatten(value, path, out):
    """Dotted paths to leaf values. Env becomes Config.Env.NAME; lists Docker keeps as
    sets are sorted; other lists are leaves (their order matters: Cmd, Dns...)."""
    if path == "Config.Env" and isinstance(value, list):
        for entry in value:
            k, eq, v = entry.partition("=")
            out["Config.Env." + k] = v if eq else None
        return
    if path in ("Config.ExposedPorts", "Config.Volumes") and isinstance(value, dict):
        # Sets written as maps to empty objects: each member is a leaf, present.
        for k in value:
            out["%s.%s" % (path, k)] = True
        return
    if isinstance(value, dict) and value:
        for k, v in value.items():
            flatten(v, "%s.%s" % (path, k) if path else k, out)
        return
    if isinstance(value, list) and path in UNORDERED:
        value = sorted(value, key=lambda v: json.dumps(v, sort_keys=True))
    out[path] = value


def load_allow(path):
    rules = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip() or line.startswith("#"):
                continue
            cols = line.rstrip("\n").split("\t")
            if len(cols) != 4:
                sys.exit("error: %s:%d: expected 4 tab-separated columns (path, MaestroNG, maestro, reason), got %d"
                         % (path, n, len(cols)))
            rules.append({"line": n, "path": cols[0], "ng": cols[1], "rs": cols[2], "reason": cols[3], "used": 0})
    return rules


ABSENT = "<absent>"


def show(v):
    if v is ABSENT or v in ("created", "not created"):
        return v
    return json.dumps(v, sort_keys=True)


def allowed(rules, path, ng, rs):
    for r in rules:
        if not fnmatch.fnmatchcase(path, r["path"]):
            continue
        if r["ng"] != "*" and r["ng"] != show(ng):
            continue
        if r["rs"] != "*" and r["rs"] != show(rs):
            continue
        r["used"] += 1
        return r
    return None


def compare_instance(rules, ng_item, rs_item, ng_names, rs_names):
    a, b = {}, {}
    flatten(normalize(ng_item, ng_names), "", a)
    flatten(normalize(rs_item, rs_names), "", b)
    unexplained, explained = [], []
    for path in sorted(set(a) | set(b)):
        va, vb = a.get(path, ABSENT), b.get(path, ABSENT)
        # An empty list, an empty map and null are the same to the engine.
        if va in (None, [], {}) and vb in (None, [], {}, ABSENT) or vb in (None, [], {}) and va is ABSENT:
            continue
        if va == vb:
            continue
        rule = allowed(rules, path, va, vb)
        line = "%s: MaestroNG %s, maestro %s" % (path, show(va), show(vb))
        (explained if rule else unexplained).append(line if not rule else "%s (allow.tsv:%d)" % (line, rule["line"]))
    return unexplained, explained


# --- one case ----------------------------------------------------------------------------------------

def case_files():
    """Every case: the conformance corpus, and this test's own (cases/ beside it), whose
    instances the engine accepts with every option MaestroNG reads."""
    out = {}
    for folder in (os.path.join(CONFORMANCE, "cases"), os.path.join(HERE, "cases")):
        for p in glob.glob(os.path.join(folder, "*.yaml")):
            out[os.path.basename(p)[:-5]] = p
    return out


def environ_of(case):
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    envfile = os.path.join(CONFORMANCE, "cases", case + ".environ.json")
    if not os.path.exists(envfile):
        envfile = os.path.join(CONFORMANCE, "cases", "_default.environ.json")
    with open(envfile) as f:
        environ.update(json.load(f))
    return environ


def run_maestro(args, path, names, environ, verbose):
    """maestro start -i NAMES; returns {name: failure message} (the relay answers every
    start without passing it on, so the containers stay created)."""
    # The readiness handshake as a user has it (containers get its two variables), on
    # loopback: nothing connects to it, the containers never start.
    cmd = [args.maestro, "--readiness-address", "127.0.0.1", "--json", "-f", path, "start", "-i", *names]
    t = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, env=environ, timeout=120)
    messages = {}
    for line in p.stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "finished" and event.get("result") != "done":
            messages[event.get("instance")] = event.get("message") or json.dumps(event)
    if verbose:
        log("    $ %s  (%.1fs)\n%s" % (" ".join(cmd), time.monotonic() - t, p.stderr.strip()))
    if p.returncode == 1:
        # A failure before any instance's own work (the play's images): every message.
        before = "; ".join(m for n, m in messages.items() if n not in names) or "exit 1"
        for name in names:
            messages.setdefault(name, before)
    if p.returncode not in (0, 1):
        messages["<maestro>"] = "exit %d: %s" % (p.returncode, p.stderr.strip()[-2000:])
    return messages


def run_case(args, case, src, rules, port, workdir):
    """Returns (status, lines): status is 'ok', 'fail' or 'skip'."""
    environ = environ_of(case)
    cases_copy = os.path.join(workdir, "cases")
    path = os.path.join(cases_copy, case + ".yaml")
    try:
        text = rewrite(render(src, environ), port)
    except Exception as e:  # noqa: BLE001 - MaestroNG's loader fails the same way
        return "skip", ["MaestroNG cannot read it: %s: %s" % (type(e).__name__, e)]
    with open(path, "w") as f:
        f.write(text)
    try:
        conductor = ng_conductor(path)
    except BaseException as e:  # noqa: BLE001 - MaestroNG refuses (or crashes on) the file
        if isinstance(e, KeyboardInterrupt):
            raise
        return "skip", ["MaestroNG refuses it: %s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")]
    names = sorted(conductor.containers)
    if not names:
        return "skip", ["no instances"]
    try:
        order = waves(conductor)
    except RecursionError:
        # A service that depends on itself (volumes_from within one service, a cycle):
        # MaestroNG loads the file but recurses forever in every play.
        return "skip", ["MaestroNG crashes on it in every play: RecursionError"]
    taken = existing(names)
    if taken:
        return "fail", ["containers with the case's names already exist: %s (remove them)" % ", ".join(sorted(taken))]
    lines = []
    made = tag_images({c.image for c in conductor.containers.values()})
    try:
        # MaestroNG.
        ng_errors = {}
        try:
            for wave in order:
                for name in wave:
                    try:
                        ng_create(conductor.containers[name])
                    except Exception as e:  # noqa: BLE001 - the engine's refusal is compared
                        ng_errors[name] = "%s: %s" % (type(e).__name__, e)
        finally:
            ng = inspect_and_remove(names)
        # maestro.
        rs_errors = {}
        try:
            # One instance at a time, as MaestroNG's side: maestro prepares a play's
            # images before creating anything, so one instance's bad image would keep
            # the others of its play from being created.
            for wave in order:
                for name in wave:
                    rs_errors.update(run_maestro(args, path, [name], environ, args.verbose))
        finally:
            rs = inspect_and_remove(names)
        if "<maestro>" in rs_errors:
            msg = rs_errors.pop("<maestro>")
            r = allowed(rules, "maestro:%s" % case, msg, msg)
            lines.append(("  maestro: %s" % msg) if r is None else "  maestro refuses it (allow.tsv:%d)" % r["line"])
            if r is None:
                return "fail", lines
            return "ok", lines
        failed = False
        for side, items in (("MaestroNG", ng), ("maestro", rs)):
            for name, item in sorted(items.items()):
                started = (item.get("State") or {}).get("StartedAt", "")
                if not started.startswith("0001-"):
                    # The relay lets no start through: the comparison is of containers
                    # as created, and a started one may have published ports.
                    lines.append("  %s: %s's container was started (%s): the relay let a start through"
                                 % (name, side, started))
                    failed = True
        if failed:
            return "fail", lines
        for name in names:
            if name in ng and name in rs:
                unexplained, explained = compare_instance(
                    rules, ng[name], rs[name],
                    {v["Id"]: k for k, v in ng.items()}, {v["Id"]: k for k, v in rs.items()})
                for d in unexplained:
                    lines.append("  %s: %s" % (name, d))
                if args.verbose:
                    for d in explained:
                        lines.append("  %s: allowed: %s" % (name, d))
                failed |= bool(unexplained)
            elif name not in ng and name not in rs:
                if args.verbose:
                    lines.append("  %s: both refused by the engine: MaestroNG %s | maestro %s"
                                 % (name, ng_errors.get(name), rs_errors.get(name)))
            else:
                ngs = "created" if name in ng else "not created"
                rss = "created" if name in rs else "not created"
                said = "  %s: MaestroNG %s, maestro %s (%s)" % (
                    name, ngs, rss, ng_errors.get(name) or rs_errors.get(name))
                r = allowed(rules, "create:%s/%s" % (case, name), ngs, rss)
                if r is None:
                    lines.append(said)
                    failed = True
                elif args.verbose:
                    lines.append("%s: allowed (allow.tsv:%d)" % (said, r["line"]))
        return ("fail" if failed else "ok"), lines
    finally:
        if made:
            docker("rmi", *made, check=False)


def main():
    # A TERM (CI's timeout) unwinds like Ctrl-C, through the `finally`s that remove the
    # containers and tags made so far.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--maestro", default=os.path.join(ROOT, "target", "release", "maestro"))
    ap.add_argument("--only", action="append", help="run only this case (repeatable)")
    ap.add_argument("--allow", default=os.path.join(HERE, "allow.tsv"))
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    args.maestro = os.path.abspath(args.maestro)
    if not os.access(args.maestro, os.X_OK):
        sys.exit("error: no maestro binary at %s (cargo build --release -p maestro)" % args.maestro)
    rules = load_allow(args.allow)
    files = case_files()
    cases = sorted(files)
    if args.only:
        unknown = sorted(set(args.only) - set(cases))
        if unknown:
            sys.exit("error: no such case: %s" % ", ".join(unknown))
        cases = [c for c in cases if c in args.only]
    docker("version")
    build_image()
    relay = relay_mod.Relay()
    workdir = tempfile.mkdtemp(prefix="maestro-parity.")
    # The cases' folders, together: env files and includes are relative to the file.
    shutil.copytree(os.path.join(CONFORMANCE, "cases"), os.path.join(workdir, "cases"))
    for p in glob.glob(os.path.join(HERE, "cases", "*")):
        shutil.copy(p, os.path.join(workdir, "cases"))
    counts = {"ok": 0, "fail": 0, "skip": 0}
    started = time.monotonic()
    try:
        for case in cases:
            t = time.monotonic()
            status, lines = run_case(args, case, files[case], rules, relay.port, workdir)
            counts[status] += 1
            word = {"ok": "ok", "fail": "FAIL", "skip": "skipped"}[status]
            print("%-48s %s (%.1fs)" % (case, word, time.monotonic() - t), flush=True)
            for line in lines:
                print("    " + line.strip() if status == "skip" else line, flush=True)
    finally:
        relay.close()
        shutil.rmtree(workdir, ignore_errors=True)
        docker("rmi", BASE_IMAGE, check=False)
    unused = [r for r in rules if not r["used"] and not args.only]
    for r in unused:
        print("allow.tsv:%d is never used (%s): remove it" % (r["line"], r["path"]))
    print("%.0fs; %d skipped (MaestroNG refuses or crashes)" % (time.monotonic() - started, counts["skip"]))
    failed = counts["fail"] + (1 if unused else 0)
    print("%d passed, %d failed" % (counts["ok"], failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
