#!/usr/bin/env python3
"""Scale over ships: `maestro start` and `maestro status` of 200 containers spread over
1, 5, 10 and 20 ships. The ships share this machine's one engine through distinct
endpoints (a socat TCP listener on 127.0.0.1 per ship), so only the number of ships
changes. The cost should stay flat as ships are added.

usage: python3 bench/ships.py [--containers 200] [--ships 1,5,10,20] [--runs 3]
                              [--status-runs 10] [--no-socket-reference]
Needs: docker, socat, hyperfine, busybox-static; builds the release maestro (in
$CARGO_TARGET_DIR, default target/; SKIP_BUILD=1 or MAESTRO_BIN=path to skip).
Prints a Markdown table of medians. Only loopback is used. See bench/README.md.
"""
import argparse, json, os, shutil, socket, statistics, subprocess, sys, tempfile, threading, time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
MAESTRO = os.environ.get("MAESTRO_BIN") or os.path.join(TARGET, "release", "maestro")
IMAGE = "maestro-bench/busybox:1"
SOCKET = "/var/run/docker.sock"
# Every container and environment of this benchmark is named with this prefix.
PREFIX = "bench-ships-"
# socat's listen() backlog. socat's default is 5: maestro opens one connection per
# request (bollard never reuses one), so a play's burst of simultaneous requests overflows
# a 5-deep accept queue; the kernel then drops the handshake's last ACK, the client's
# request is retransmitted with exponential backoff (0.2 s, 0.4 s, ... 51 s) and, once
# the server gives up on the half-open connection (tcp_synack_retries), answered with a
# reset. That, not the engine nor maestro, made starts through socat take minutes and
# fail with "Connection reset by peer". dockerd's own TCP listener (Go) uses somaxconn.
BACKLOG = 1024


def log(msg):
    print(msg, file=sys.stderr, flush=True)


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


def wait_listening(port):
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"socat did not listen on port {port}")


def cpu_busy_percent():
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]
    t0, i0 = sample()
    time.sleep(1)
    t1, i1 = sample()
    return 100 * (1 - (i1 - i0) / max(t1 - t0, 1))


def listen_overflows():
    """The kernel's count of connections dropped because an accept queue was full."""
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split()[1:], values.split()[1:]))["ListenOverflows"])
    return 0


def our_containers():
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"name=^/{PREFIX}"],
                         capture_output=True, text=True, check=True, timeout=60).stdout.split()
    return out


def remove_ours():
    """Removes (force) this benchmark's containers, one at a time, straight through the
    engine's API. Not all at once: with this engine (Docker 20.10.24), hundreds of
    containers exiting together deadlocked the daemon twice while this benchmark was
    written (every later operation on those containers hung; the goroutine dump showed
    libnetwork's getSvcRecords and processEndpointDelete each holding the lock the other
    wanted, moby/moby#46661, fixed after 20.10.24). One at a time narrows that race (it
    is not proven to rule it out) and is slower, but outside the timings. Each request is
    bounded, so that a stuck engine fails the run instead of hanging it."""
    for cid in our_containers():
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(120)
        try:
            s.connect(SOCKET)
            s.sendall(f"DELETE /containers/{cid}?force=1&v=1 HTTP/1.1\r\nHost: docker\r\n"
                      "Connection: close\r\n\r\n".encode())
            head = s.recv(1 << 16)
            while s.recv(1 << 16):
                pass
        except socket.timeout:
            raise SystemExit(f"the engine did not remove container {cid} within 120 s")
        finally:
            s.close()
        if head.split(b" ", 2)[1:2] not in ([b"204"], [b"404"]):
            raise SystemExit(f"cannot remove container {cid}: {head[:200]!r}")


def running_count(name):
    out = subprocess.run(["docker", "ps", "-q", "--filter", f"name=^/{name}-"],
                         capture_output=True, text=True, check=True, timeout=60).stdout.split()
    return len(out)


def environment(path, name, containers, ships):
    """`ships`: TCP ports (docker_port ships) or socket paths (socket_path ships)."""
    lines = ["__maestro: {schema: 2}", f"name: {name}", "ships:"]
    for i, ship in enumerate(ships):
        where = f"docker_port: {ship}" if isinstance(ship, int) else f"socket_path: {ship}"
        lines.append(f"  ship-{i:02d}: {{ip: 127.0.0.1, {where}}}")
    lines += ["services:", "  s:", f"    image: {IMAGE}", "    instances:"]
    app = "[sh, -c, \"trap 'exit 0' TERM; sleep 3600 & wait\"]"
    for c in range(containers):
        lines.append(f"      {name}-{c:03d}: {{ship: ship-{c % len(ships):02d}, command: {app}}}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def engine_floor(name, ships, runs):
    """What the engine alone takes for what `status` asks of it: per ship, the client's
    version negotiation (`GET /version`) then the list of the environment's containers,
    all ships at once, each through its ship's endpoint (raw HTTP, a connection per
    request, as maestro does). The ships share one engine, so each list returns all the
    environment's containers: k ships cost the engine k full lists. Median of `runs`."""
    query = "/containers/json?all=1&filters=" + urllib.parse.quote(
        json.dumps({"label": [f"io.maestro.environment={name}"]}))

    def get(ship, path):
        if isinstance(ship, int):
            s = socket.create_connection(("127.0.0.1", ship))
        else:
            s = socket.socket(socket.AF_UNIX)
            s.connect(ship)
        with s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n".encode())
            head = s.recv(1 << 20)
            while s.recv(1 << 20):
                pass
        if not head.startswith(b"HTTP/1.1 200"):
            raise OSError(f"GET {path}: {head[:80]!r}")

    def one(ship, errors):
        try:
            get(ship, "/version")
            get(ship, query)
        except OSError as e:
            errors.append(e)

    samples = []
    for _ in range(runs + 2):
        errors = []
        threads = [threading.Thread(target=one, args=(ship, errors)) for ship in ships]
        began = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        samples.append(time.monotonic() - began)
        if errors:
            raise SystemExit(f"engine floor: {errors[0]!r}")
    return statistics.median(samples[2:])


def median_of(json_path):
    with open(json_path) as f:
        return json.load(f)["results"][0]["median"]


def measure(label, name, ships, a, tmp):
    """Times `start` (a.runs times, from no container) and `status` (hyperfine, with the
    last start's containers running) of one environment; returns a row of medians."""
    env = os.path.join(tmp, f"{name}.yaml")
    environment(env, name, a.containers, ships)
    starts, overflows = [], 0
    for run in range(a.runs):
        remove_ours()  # outside the timing
        before = listen_overflows()
        began = time.monotonic()
        result = subprocess.run([MAESTRO, "-f", env, "start"], capture_output=True, text=True, timeout=900)
        starts.append(time.monotonic() - began)
        overflows += listen_overflows() - before
        if result.returncode != 0:
            log(result.stdout[-3000:] + result.stderr[-2000:])
            raise SystemExit(f"maestro start failed: {label}")
        running = running_count(name)
        if running != a.containers:
            raise SystemExit(f"{label}: {running} of {a.containers} containers running after start")
        log(f"  {label}: start run {run + 1}: {starts[-1]:.2f} s")
    status_json = os.path.join(tmp, f"status-{name}.json")
    sh("hyperfine", "--runs", str(a.status_runs), "--warmup", "2", "-N", "--export-json", status_json,
       "--output=null", "-n", f"status {label}", f"{MAESTRO} -f {env} status", stdout=subprocess.DEVNULL)
    floor = engine_floor(name, ships, a.status_runs)
    remove_ours()
    row = (label, statistics.median(starts), median_of(status_json), floor, overflows)
    log(f"{label}: start {row[1]:.2f} s (runs: {', '.join(f'{s:.2f}' for s in starts)}), "
        f"status {row[2] * 1000:.0f} ms, engine's share of it {floor * 1000:.0f} ms"
        + (f", WARNING: {overflows} listen overflows" if overflows else ""))
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=200)
    ap.add_argument("--ships", default="1,5,10,20")
    ap.add_argument("--runs", type=int, default=3, help="timed starts per number of ships")
    ap.add_argument("--status-runs", type=int, default=10)
    ap.add_argument("--no-socket-reference", action="store_true",
                    help="skip the reference row: one ship on the unix socket, no proxy")
    a = ap.parse_args()
    if not os.environ.get("SKIP_BUILD") and not os.environ.get("MAESTRO_BIN"):
        sh("cargo", "build", "--release", "-q", "-p", "maestro", cwd=ROOT)
    tmp = tempfile.mkdtemp(prefix="maestro-bench-ships-")
    socats = []
    rows = []
    try:
        build_image(tmp)
        remove_ours()
        busy = cpu_busy_percent()
        log(f"machine: {os.cpu_count()} cores, {busy:.0f}% busy before timing")
        if busy > 10:
            log("warning: something else is using the CPU; timings will be noisy")
        others = subprocess.run(["docker", "ps", "-q"], capture_output=True, text=True).stdout.split()
        if others:
            log(f"warning: {len(others)} other containers are running on the engine")
        if not a.no_socket_reference:
            rows.append(measure("1 (unix socket, no proxy)", f"{PREFIX}unix", [SOCKET], a, tmp))
        for k in [int(x) for x in a.ships.split(",")]:
            ports = [free_port() for _ in range(k)]
            for port in ports:
                socats.append(subprocess.Popen(
                    ["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,backlog={BACKLOG}",
                     f"UNIX-CONNECT:{SOCKET}"],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            for port in ports:
                wait_listening(port)
            rows.append(measure(str(k), f"{PREFIX}{k}", ports, a, tmp))
            for p in socats:
                p.kill()
                p.wait()
            socats = []
    finally:
        for p in socats:
            p.kill()
            p.wait()
        try:
            remove_ours()
        except (SystemExit, OSError, subprocess.SubprocessError) as e:
            log(f"cleanup: {e}; remove the containers named {PREFIX}* by hand")
        shutil.rmtree(tmp, ignore_errors=True)
    tcp = [r for r in rows if r[0].isdigit()]
    base_start, base_status = tcp[0][1], tcp[0][2]
    print(f"\n{a.containers} containers, medians of {a.runs} starts and {a.status_runs} statuses "
          f"({os.cpu_count()} cores; the ships share one engine, each through its own socat endpoint):\n")
    print("| ships | start | vs 1 ship | status | vs 1 ship | engine's share of status | status minus engine |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, start, status, floor, _ in rows:
        print(f"| {label} | {start:.2f} s | {start / base_start:.2f}x | {status * 1000:.0f} ms | "
              f"{status / base_status:.2f}x | {floor * 1000:.0f} ms | {(status - floor) * 1000:.0f} ms |")
    overflowed = sum(r[4] for r in rows)
    if overflowed:
        print(f"\nwarning: {overflowed} TCP listen overflows during the starts (system-wide count)")


main()
