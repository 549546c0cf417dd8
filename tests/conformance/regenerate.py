#!/usr/bin/env python3
"""Regenerates golden/*.json: what MaestroNG 0.8.3 itself computes for each case.

usage: regenerate.py [--only CASE] [--check] [--venv DIR] [DIR]

DIR holds cases/ and golden/ (default: this script's folder). The first run makes a
virtual environment (default: .venv beside this script, git-ignored) with MaestroNG
0.8.3 from PyPI, pinned by bench/maestrong-constraints.txt, on python3.11 (the Python
MaestroNG 0.8.3 was measured with; override with PYTHON=...); later runs reuse it.

For every case it runs MaestroNG's own code, as `maestro -f cases/CASE.yaml` would from
DIR with the process environment of cases/CASE.environ.json (or _default.environ.json)
plus PATH: `loader.load`, the `Conductor`, and the `Start` and `Stop` plays of a
no-argument start and stop (`--all`), constructed but never run: no Docker is needed,
and an ssh_tunnel ship gets a stand-in tunnel (no ssh, no network).
A golden holds every container's service, ship, image, env exactly as docker-py sends
it (`format_environment`: `null` for a key without value), ports, volumes,
container_volumes, volumes_from, and the plays' waits (`waits_for`); or, when MaestroNG
fails, `expect: reject` and its message as `maestro_ng_error`.

Hand-written expectations in an existing golden stay: `expect: accept` (MaestroNG
crashes on a valid file) and `expect: either`, and `loose_env` (variables whose value
comes from YAML 1.1 typing or Python formatting). The message MaestroNG gives is
refreshed.

--check writes nothing: it prints the cases whose golden would change and exits 1 if
any would. The last line is 'N unchanged, M changed'.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CONSTRAINTS = os.path.join(ROOT, "bench", "maestrong-constraints.txt")
VERSION = "maestro-ng-0.8.3"
HAND_WRITTEN = ("accept", "either")


def ensure_venv(venv):
    """The venv's python, with MaestroNG 0.8.3 installed (once)."""
    python = os.path.join(venv, "bin", "python")
    maestrong = os.path.join(venv, "bin", "maestro")
    if os.path.exists(maestrong):
        out = subprocess.run([maestrong, "--version"], capture_output=True, text=True)
        if (out.stdout + out.stderr).strip() == VERSION:
            return python
    base = os.environ.get("PYTHON", "python3.11")
    print(f"installing MaestroNG 0.8.3 into {venv} ({base})", file=sys.stderr)
    subprocess.run([base, "-m", "venv", "--clear", venv], check=True)
    subprocess.run([os.path.join(venv, "bin", "pip"), "install", "--disable-pip-version-check",
                    "-q", "-c", CONSTRAINTS, "maestro-ng==0.8.3"], check=True)
    return python


def worker(folder, cases):
    """Runs inside the venv: one JSON line per case on stdout."""
    import types
    from docker.utils.utils import format_environment
    from maestro import entities, loader, maestro, plays

    # An ssh_tunnel ship would spawn ssh (and wait a second): a stand-in tunnel, bound to
    # 40000, 40001... in the order ships are made. Nothing here reaches the network.
    tunnels = []

    def open_tunnel(**kwargs):
        tunnels.append(kwargs)
        return types.SimpleNamespace(bind_port=40000 + len(tunnels) - 1, close=lambda: None)

    entities.bgtunnel = types.SimpleNamespace(open=open_tunnel)
    entities.time = types.SimpleNamespace(sleep=lambda seconds: None)

    os.chdir(folder)
    path = os.environ.get("PATH", "/usr/bin:/bin")
    for case in cases:
        envfile = os.path.join("cases", case + ".environ.json")
        if not os.path.exists(envfile):
            envfile = os.path.join("cases", "_default.environ.json")
        os.environ.clear()
        os.environ["PATH"] = path
        os.environ.update(json.load(open(envfile)))
        try:
            out = compute(case, loader, maestro, plays, format_environment)
        except BaseException as e:  # RecursionError too: MaestroNG's failure is the result
            if isinstance(e, KeyboardInterrupt):
                raise
            out = {"case": case, "expect": "reject", "maestro_ng_error": str(e)}
        print(json.dumps(out), flush=True)


def compute(case, loader, maestro, plays, format_environment):
    config = loader.load(f"cases/{case}.yaml")
    conductor = maestro.Conductor(config)
    instances = {}
    for name, c in conductor.containers.items():
        env = {}
        for item in format_environment(c.env):
            key, sep, value = item.partition("=")
            env[key] = value if sep else None
        instances[name] = {
            "service": c.service.name,
            "ship": c.ship.name,
            "image": c.image,
            "env": env,
            "loose_env": [],
            "ports": {p: {"exposed": s["exposed"], "external": list(s["external"])}
                      for p, s in c.ports.items()},
            "volumes": c.volumes,
            "container_volumes": sorted(c.container_volumes),
            "volumes_from": sorted(c.volumes_from),
        }
    # A no-argument start, and stop --all: the non-omitted services, with dependencies
    # (__main__.execute), ordered as the plays get them.
    things = [s.name for s in conductor.services.values() if not s.omit]
    start = plays.Start(conductor._ordered_containers(things, True), conductor.registries,
                        ignore_dependencies=False)
    stop = plays.Stop(conductor._ordered_containers(things, True, forward=False),
                      ignore_dependencies=False)
    waits_for = {
        phase: {name: sorted(c.name for c in deps) for name, deps in play._dependencies.items()}
        for phase, play in (("start", start), ("stop", stop))
    }
    return {"case": case, "expect": "match", "name": conductor.env_name,
            "instances": instances, "waits_for": waits_for}


def merge(new, old):
    """Keeps the hand-written parts of the existing golden."""
    if old is None:
        return new
    if old.get("expect") in HAND_WRITTEN:
        merged = {"case": new["case"], "expect": old["expect"]}
        if "maestro_ng_error" in new:
            merged["maestro_ng_error"] = new["maestro_ng_error"]
        return merged
    if new["expect"] == "match" and old.get("expect") == "match":
        for name, inst in new["instances"].items():
            old_inst = old.get("instances", {}).get(name)
            if old_inst:
                inst["loose_env"] = old_inst.get("loose_env", [])
    return new


def dump(golden):
    return json.dumps(golden, indent=1, sort_keys=True)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="one case (its name, without .yaml)")
    ap.add_argument("--check", action="store_true", help="compare only; exit 1 on a change")
    ap.add_argument("--venv", default=os.path.join(HERE, ".venv"))
    ap.add_argument("dir", nargs="?", default=HERE)
    a = ap.parse_args()
    folder = os.path.abspath(a.dir)
    cases = sorted(f[:-5] for f in os.listdir(os.path.join(folder, "cases"))
                   if f.endswith(".yaml"))
    # Every .yaml file in cases/ is a case; what a case includes or reads has another
    # extension (.inc, .env).
    if a.only:
        if a.only not in cases:
            sys.exit(f"no case {a.only}: cases/{a.only}.yaml does not exist")
        cases = [a.only]
    python = ensure_venv(os.path.abspath(a.venv))
    p = subprocess.run([python, os.path.abspath(__file__), "--worker", folder, *cases],
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"MaestroNG's worker failed:\n{p.stderr}")
    unchanged = changed = 0
    for line in p.stdout.splitlines():
        new = json.loads(line)
        path = os.path.join(folder, "golden", new["case"] + ".json")
        old = json.load(open(path)) if os.path.exists(path) else None
        text = dump(merge(new, old))
        if old is not None and text == dump(old):
            unchanged += 1
            continue
        changed += 1
        what = "new" if old is None else "changed"
        print(f"{what:8} {new['case']} ({json.loads(text)['expect']})")
        if not a.check:
            with open(path, "w") as f:
                f.write(text)
    print(f"{unchanged} unchanged, {changed} changed")
    sys.exit(1 if a.check and changed else 0)


main()
