#!/usr/bin/env python3
"""Two maestro binaries' `deploy`, run alternately on this machine's engine (or on a
simulated ship): the play's time and each instance's time out of service, by batch. See
bench/README.md ("deploy_ab.py").

    python3 bench/deploy_ab.py --a OLD_BIN --b NEW_BIN [--runs 12] [--base IMAGE]
    python3 bench/deploy_ab.py --a OLD_BIN --b NEW_BIN --simship BIN [--latency-ms 20]

With `--simship`, the ship is one simulated engine (target/release/simship, built with
`cargo build --release -p maestro-tests --bin simship`) on 127.0.0.1:17600, every request
taking `--latency-ms`: a ship whose requests cost a round trip. Its containers serve
nothing, so there is no check: the new version is a changed variable, and `deploy
--min-ready 0` counts a replacement ready once started. A fresh simulated ship each
deploy.

A service `web` of 6 instances on the local engine (each publishing 127.0.0.1:17511-17516,
an http running check), started on v1, then deployed to v2 with `--max-unavailable 2`
(3 batches), once per binary per round, the order swapped every round (the machine's
speed drifts). An instance is out of service from its `stopping` step (its old container
stops serving there, with either binary) to its `finished` event (its replacement passed
the http check): maestro's own `--json` events. Batch 1 has nothing created ahead (it
waits for nothing); batches 2 and 3 may.

Everything it makes is named `bench-ab`: the environment's containers (labelled
`io.maestro.environment=bench-ab`) and the images `bench-ab/app:*`, removed at the end; the
base image (`--base`, default `bench-ab/busybox:1`) is built with bench/common.sh's
`build_busybox_image` when missing and left.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = "bench-ab"
APP = ("[sh, -c, \"echo v$VERSION > /tmp/index.html; trap 'exit 0' TERM; "
       "httpd -f -p 8000 -h /tmp & wait\"]")


def sh(*args, check=True):
    r = subprocess.run(args, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(args), r.stderr.strip()))
    return r


SIM_PORT = 17600


def sim_environment(version):
    instances = "".join("      %s-web-%d: {ship: sim}\n" % (ENV, k) for k in range(1, 7))
    return ("__maestro: {schema: 2}\nname: %s\n"
            "ships: {sim: {ip: 127.0.0.1, docker_port: %d}}\n"
            "services:\n  web:\n    image: app\n    env: {VERSION: \"%s\"}\n"
            "    instances:\n%s" % (ENV, SIM_PORT, version, instances))


def environment():
    instances = "".join(
        "      %s-web-%d: {ship: local, command: %s, stop_timeout: 2, "
        "ports: {http: {exposed: 8000, external: [127.0.0.1, %d]}}}\n" % (ENV, k, APP, 17510 + k)
        for k in range(1, 7))
    return ("__maestro: {schema: 2}\nname: %s\n"
            "ships: {local: {ip: 127.0.0.1, socket_path: /var/run/docker.sock}}\n"
            "services:\n  web:\n    image: %s/app:app\n    ports: {http: \"8000\"}\n"
            "    lifecycle: {running: [{type: http, port: http, max_wait: 30}]}\n"
            "    instances:\n%s" % (ENV, ENV, instances))


def remove_containers():
    ids = sh("docker", "ps", "-aq", "--filter", "label=io.maestro.environment=" + ENV).stdout.split()
    if ids:
        sh("docker", "rm", "-f", *ids)


def one_deploy(binary, path):
    maestro = [binary, "-f", path]
    remove_containers()
    sh("docker", "tag", ENV + "/app:v1", ENV + "/app:app")
    sh(*maestro, "start")
    time.sleep(1)
    sh("docker", "tag", ENV + "/app:v2", ENV + "/app:app")
    return outages(sh(*maestro, "--json", "deploy", "--max-unavailable", "2"))


def one_sim_deploy(binary, tmp, simship, latency):
    ship = subprocess.Popen([simship, "--ships", "1", "--base-port", str(SIM_PORT),
                             "--latency-ms", str(latency), "--images", "app"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        if not ship.stdout.readline().startswith("ports:"):
            raise RuntimeError("simship did not start")
        paths = []
        for version in ("1", "2"):
            paths.append(os.path.join(tmp, "sim-v%s.yaml" % version))
            with open(paths[-1], "w") as f:
                f.write(sim_environment(version))
        sh(binary, "-f", paths[0], "start")
        return outages(sh(binary, "-f", paths[1], "--json", "deploy", "--max-unavailable", "2",
                          "--min-ready", "0"))
    finally:
        ship.kill()
        ship.wait()


def outages(r):
    events = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    spans = {}
    for e in events:
        who = e.get("instance")
        if not who:
            continue
        if e["event"] == "step" and (e.get("message") or "").startswith("stopping"):
            spans.setdefault(who, {})["stop"] = e["time"]
        elif e["event"] == "finished":
            spans.setdefault(who, {})["end"] = e["time"]
    out = {k: s["end"] - s["stop"] for k, s in spans.items()}
    if len(out) != 6:
        raise RuntimeError("expected 6 replacements, saw %d:\n%s" % (len(out), r.stdout))
    play = events[-1]["time"] - events[0]["time"]
    batch1 = [out["%s-web-%d" % (ENV, k)] for k in (1, 2)]
    later = [out["%s-web-%d" % (ENV, k)] for k in range(3, 7)]
    return play, batch1, later


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", required=True, help="the first maestro binary (say, before a change)")
    ap.add_argument("--b", required=True, help="the second maestro binary")
    ap.add_argument("--runs", type=int, default=12)
    ap.add_argument("--base", default=ENV + "/busybox:1")
    ap.add_argument("--simship", help="deploy on a simulated ship served by this binary")
    ap.add_argument("--latency-ms", type=int, default=20, help="the simulated ship's, per request")
    args = ap.parse_args()
    if args.simship:
        results = {"a": ([], [], []), "b": ([], [], [])}
        with tempfile.TemporaryDirectory(prefix="maestro-bench-ab.") as tmp:
            for run in range(args.runs):
                for which in (("a", "b") if run % 2 == 0 else ("b", "a")):
                    play, batch1, later = one_sim_deploy(getattr(args, which), tmp,
                                                         args.simship, args.latency_ms)
                    results[which][0].append(play)
                    results[which][1].extend(batch1)
                    results[which][2].extend(later)
        report(args, results)
        return 0
    if sh("docker", "image", "inspect", args.base, check=False).returncode != 0:
        sh("bash", "-c", 'source "%s/bench/common.sh" && build_busybox_image "$1"' % ROOT,
           "-", args.base)
    for version in ("1", "2"):
        r = subprocess.run(["docker", "build", "-q", "-t", "%s/app:v%s" % (ENV, version), "-"],
                           input="FROM %s\nENV VERSION=%s\n" % (args.base, version),
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
    results = {"a": ([], [], []), "b": ([], [], [])}
    with tempfile.TemporaryDirectory(prefix="maestro-bench-ab.") as tmp:
        path = os.path.join(tmp, "maestro.yaml")
        with open(path, "w") as f:
            f.write(environment())
        try:
            for run in range(args.runs):
                for which in (("a", "b") if run % 2 == 0 else ("b", "a")):
                    play, batch1, later = one_deploy(getattr(args, which), path)
                    results[which][0].append(play)
                    results[which][1].extend(batch1)
                    results[which][2].extend(later)
        finally:
            remove_containers()
            for tag in ("app", "v1", "v2"):
                sh("docker", "rmi", "%s/app:%s" % (ENV, tag), check=False)
    report(args, results)
    return 0


def report(args, results):
    med = lambda xs: statistics.median(xs) * 1000
    print("| binary | deploy play | out of service, batch 1 | out of service, batches 2-3 | runs |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for which in ("a", "b"):
        play, batch1, later = results[which]
        print("| %s | %.0f ms | %.0f ms | %.0f ms | %d |"
              % (getattr(args, which), med(play), med(batch1), med(later), len(play)))
    a, b = results["a"], results["b"]
    print("\nb - a (medians): play %+.0f ms, batch 1 %+.0f ms, batches 2-3 %+.0f ms"
          % (med(b[0]) - med(a[0]), med(b[1]) - med(a[1]), med(b[2]) - med(a[2])))


if __name__ == "__main__":
    sys.exit(main())
