#!/usr/bin/env python3
"""Scale over ships: `maestro start` and `maestro status` of 200 containers spread over
1, 5, 10 and 20 ships. The ships share this machine's one engine through distinct
endpoints (a socat TCP listener on 127.0.0.1 per ship), so only the number of ships
changes. The cost should stay flat as ships are added.

usage: python3 bench/ships.py [--containers 200] [--ships 1,5,10,20] [--runs 3]
Needs: docker, socat, hyperfine, busybox-static; builds target/release/maestro.
Prints a Markdown table of medians. Only loopback is used.
"""
import argparse, json, os, shutil, socket, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAESTRO = os.path.join(ROOT, "target", "release", "maestro")
IMAGE = "maestro-bench/busybox:1"


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def build_image(tmp):
    busybox = next(p for p in ("/bin/busybox", "/usr/bin/busybox") if os.path.exists(p))
    ctx = os.path.join(tmp, "image")
    os.makedirs(ctx, exist_ok=True)
    shutil.copy(busybox, os.path.join(ctx, "busybox"))
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write('FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
                'RUN ["/bin/busybox", "mkdir", "-m", "1777", "/tmp"]\nENV PATH=/bin\nCMD ["sh"]\n')
    sh("docker", "build", "-q", "-t", IMAGE, ctx, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def environment(path, name, containers, ports):
    lines = ["__maestro: {schema: 2}", f"name: {name}", "ships:"]
    for i, port in enumerate(ports):
        lines.append(f"  ship-{i:02d}: {{ip: 127.0.0.1, docker_port: {port}}}")
    lines += ["services:", "  s:", f"    image: {IMAGE}", "    instances:"]
    app = "[sh, -c, \"trap 'exit 0' TERM; sleep 3600 & wait\"]"
    for c in range(containers):
        lines.append(f"      {name}-{c:03d}: {{ship: ship-{c % len(ports):02d}, command: {app}}}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def median_of(json_path):
    with open(json_path) as f:
        return json.load(f)["results"][0]["median"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=200)
    ap.add_argument("--ships", default="1,5,10,20")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    sh("cargo", "build", "--release", "-q", "-p", "maestro", cwd=ROOT)
    tmp = tempfile.mkdtemp(prefix="maestro-bench-ships-")
    socats = []
    rows = []
    try:
        build_image(tmp)
        for k in [int(x) for x in a.ships.split(",")]:
            for p in socats:
                p.kill()
            socats = []
            ports = [free_port() for _ in range(k)]
            for port in ports:
                socats.append(subprocess.Popen(
                    ["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork", "UNIX-CONNECT:/var/run/docker.sock"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(0.3)
            name = f"bench-ships-{k}"
            env = os.path.join(tmp, f"{name}.yaml")
            environment(env, name, a.containers, ports)
            m = f"{MAESTRO} -f {env}"
            teardown = f"{m} kill -a >/dev/null; {m} clean >/dev/null; true"
            status_json = os.path.join(tmp, f"status-{k}.json")
            starts = []
            for _ in range(a.runs):
                subprocess.run(teardown, shell=True)
                began = time.monotonic()
                run = subprocess.run([MAESTRO, "-f", env, "start"], capture_output=True, text=True)
                starts.append(time.monotonic() - began)
                if run.returncode != 0:
                    print(run.stdout[-3000:], run.stderr[-2000:], file=sys.stderr)
                    raise SystemExit(f"maestro start failed with {k} ships")
            sh("hyperfine", "--runs", str(max(a.runs, 10)), "--warmup", "2", "-N", "--export-json", status_json,
               "--output=null", "-n", f"status {k}", f"{m} status", stdout=subprocess.DEVNULL)
            subprocess.run(teardown, shell=True)
            starts.sort()
            start_median = starts[len(starts) // 2]
            rows.append((k, start_median, median_of(status_json)))
            print(f"ships {k}: start {rows[-1][1]:.2f}s, status {rows[-1][2] * 1000:.0f} ms", file=sys.stderr)
    finally:
        for p in socats:
            p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    base_start, base_status = rows[0][1], rows[0][2]
    print(f"\n{a.containers} containers, medians (2 cores; ships share one engine through distinct socat endpoints):\n")
    print("| ships | start | vs 1 ship | status | vs 1 ship |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for k, start, status in rows:
        print(f"| {k} | {start:.2f} s | {start / base_start:.2f}x | {status * 1000:.0f} ms | {status / base_status:.2f}x |")


main()
