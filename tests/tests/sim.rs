//! maestro against simulated ships (`maestro_tests::simship`): many ships at once, a slow
//! ship beside fast ones, a dead ship. The simulated ships keep their containers in
//! memory and answer on loopback ports; they run nothing, so these tests take seconds
//! however many ships they use. The real engine stays the reference for what a container
//! does (`docker.rs` and the others).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use maestro_tests::simship::{Options, SimShips};

mod support;

use support::{maestro_bin, text};

/// A folder with an environment file, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(test: &str, yaml: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("sim-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("maestro.yaml"), yaml).unwrap();
        Dir(dir)
    }

    fn maestro(&self, args: &[&str]) -> Output {
        Command::new(maestro_bin())
            .args(args)
            .current_dir(&self.0)
            .env("NO_COLOR", "1")
            // No container can report: the simulated ships run nothing.
            .env("MAESTRO_READINESS_ADDRESS", "off")
            .output()
            .unwrap()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `ships:` for simulated ships named `prefix-1`... on `ports`.
fn ships_yaml(prefix: &str, ports: &[u16]) -> String {
    ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "  {prefix}-{}: {{ip: 127.0.0.1, docker_port: {p}, timeout: 2}}\n",
                i + 1
            )
        })
        .collect()
}

/// A port nothing listens on: bound, then closed.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The states of the containers on each ship, by name.
fn states(ships: &SimShips) -> Vec<BTreeMap<String, &'static str>> {
    ships
        .ships
        .iter()
        .map(|s| {
            s.containers()
                .into_iter()
                .map(|(name, state, _)| (name, state))
                .collect()
        })
        .collect()
}

/// The `finished` events of a `--json` play: instance to (result, seconds after the
/// play's `began`).
fn finished(out: &Output) -> BTreeMap<String, (String, f64)> {
    let mut began = None;
    let mut done = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let time = event["time"].as_f64().unwrap_or_default();
        match event["event"].as_str() {
            Some("began") => began = Some(time),
            Some("finished") => {
                let at = time - began.expect("began comes first");
                done.insert(
                    event["instance"].as_str().unwrap().to_owned(),
                    (event["result"].as_str().unwrap_or_default().to_owned(), at),
                );
            }
            _ => {}
        }
    }
    done
}

/// 20 ships of 10 instances each, two services, one requiring the other: every play
/// reaches every ship, and each ship ends with exactly what the file says.
#[test]
fn twenty_ships_start_status_stop_and_clean() {
    let sim = SimShips::with(
        20,
        Options::new(Duration::from_millis(2), 4).images(&["simship/app:1"]),
    )
    .unwrap();
    let mut yaml = format!(
        "__maestro: {{schema: 2}}\nname: sim-many\nships:\n{}services:\n",
        ships_yaml("ship", &sim.ports())
    );
    for (service, requires) in [("db", ""), ("web", "    requires: [db]\n")] {
        yaml.push_str(&format!(
            "  {service}:\n    image: simship/app:1\n{requires}    instances:\n"
        ));
        for i in 0..100 {
            yaml.push_str(&format!(
                "      {service}-{i}: {{ship: ship-{}}}\n",
                i % 20 + 1
            ));
        }
    }
    let dir = Dir::new("many", &yaml);

    let out = dir.maestro(&["start"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("start: 200 done"), "{}", text(&out));
    let after_start = states(&sim);
    for (n, ship) in after_start.iter().enumerate() {
        assert_eq!(ship.len(), 10, "ship-{}: {ship:?}", n + 1);
        assert!(ship.values().all(|s| *s == "running"), "{ship:?}");
        // Round robin: ship n has db-k and web-k for k = n, n + 20...
        for k in (n..100).step_by(20) {
            assert!(ship.contains_key(&format!("db-{k}")), "{ship:?}");
            assert!(ship.contains_key(&format!("web-{k}")), "{ship:?}");
        }
    }
    // web waits for every db instance, on all ships.
    let done = finished(&dir.maestro(&["--json", "start"]));
    assert_eq!(done.len(), 200);
    assert!(
        done.values().all(|(r, _)| r == "done"),
        "already running: {done:?}"
    );

    let lists = || -> u64 { sim.ships.iter().map(|s| s.counters().get("list")).sum() };
    // `start` too lists each ship once (to create without looking first).
    assert_eq!(lists(), 2 * 20 * 2, "list requests of the two starts");
    let out = dir.maestro(&["status"]);
    assert!(out.status.success(), "{}", text(&out));
    let status = text(&out);
    assert_eq!(status.matches("running (Up").count(), 200, "{status}");
    // One list per ship (two requests: by label and by name), not one per instance.
    assert_eq!(lists(), 3 * 20 * 2, "list requests");

    let out = dir.maestro(&["stop", "-a"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        states(&sim)
            .iter()
            .all(|ship| ship.len() == 10 && ship.values().all(|s| *s == "exited")),
        "{:?}",
        states(&sim)
    );
    let out = dir.maestro(&["clean", "-a"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        states(&sim).iter().all(BTreeMap::is_empty),
        "{:?}",
        states(&sim)
    );
    // The ships' limit held (maestro asks at most 16 things of a ship at once).
    for ship in &sim.ships {
        let counters = ship.counters();
        assert!(counters.max_in_flight <= 4, "{counters:?}");
        assert_eq!(counters.accept_errors, 0, "{counters:?}");
    }
}

/// A ship's requests share its connections: one at a time (`-c 1`), a play of 40
/// instances (over 100 requests) opens a few connections (at its start the ship's list,
/// two requests, goes with the image's preparation; the lock's heartbeat may need its
/// own), not one per request (a round trip more each to a remote ship).
#[test]
fn requests_to_a_ship_share_its_connections() {
    let sim = SimShips::start(1, Duration::ZERO, 0).unwrap();
    let mut yaml = format!(
        "__maestro: {{schema: 2}}\nname: sim-pool\nships:\n{}services:\n  app:\n    image: simship/app:1\n    instances:\n",
        ships_yaml("ship", &sim.ports())
    );
    for i in 0..40 {
        yaml.push_str(&format!("      app-{i}: {{ship: ship-1}}\n"));
    }
    let dir = Dir::new("pool", &yaml);
    let out = dir.maestro(&["start", "-c", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let counters = sim.ships[0].counters();
    assert!(counters.total() > 100, "{counters:?}");
    assert!(counters.connections <= 3, "{counters:?}");
}

/// maestro holds no more connections than its open-file limit can carry. Under a limit of
/// 400 (328 kept for the readiness server and the rest), 20 ships of 16 operations would
/// need 320: each ship gets 3, the play says so, and every instance still starts and
/// stops. With a soft limit of 400 under the machine's hard one (20,000 on these
/// machines), maestro raises its own and holds back nothing.
#[test]
fn connections_stay_within_the_open_file_limit() {
    let sim = SimShips::with(
        20,
        Options::new(Duration::from_millis(20), 0).images(&["simship/app:1"]),
    )
    .unwrap();
    let mut yaml = format!(
        "__maestro: {{schema: 2}}\nname: sim-files\nships:\n{}services:\n  app:\n    image: simship/app:1\n    instances:\n",
        ships_yaml("ship", &sim.ports())
    );
    for i in 0..400 {
        yaml.push_str(&format!("      app-{i}: {{ship: ship-{}}}\n", i % 20 + 1));
    }
    let dir = Dir::new("files", &yaml);
    let under = |limits: &str, args: &str| {
        Command::new("sh")
            .args(["-c", &format!("{limits} && exec \"$0\" {args}")])
            .arg(maestro_bin())
            .current_dir(&dir.0)
            .env("NO_COLOR", "1")
            .env("MAESTRO_READINESS_ADDRESS", "off")
            .output()
            .unwrap()
    };
    let tight = "ulimit -n 400";
    let out = under(tight, "start");
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("start: 400 done"), "{}", text(&out));
    assert!(
        text(&out).contains(
            "warning: the open-file limit (400) holds 3 connections per ship for the 20 ships"
        ),
        "{}",
        text(&out)
    );
    let out = under(tight, "stop -a");
    assert!(out.status.success(), "{}", text(&out));
    for ship in &sim.ships {
        let counters = ship.counters();
        assert_eq!((counters.running, counters.exited), (0, 20), "{counters:?}");
        // Three at once, on three connections in each play (a few hundred requests).
        assert!(counters.max_in_flight <= 3, "{counters:?}");
        assert!(counters.connections <= 2 * 3, "{counters:?}");
    }

    let hard = Command::new("sh")
        .args(["-c", "ulimit -Hn"])
        .output()
        .unwrap();
    let hard = String::from_utf8_lossy(&hard.stdout).trim().to_owned();
    assert!(
        hard == "unlimited" || hard.parse::<u64>().unwrap() >= 4096,
        "this test needs a hard open-file limit of 4,096 at least: {hard}"
    );
    let out = under("ulimit -Sn 400", "start");
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("open-file limit"), "{}", text(&out));
    assert!(
        sim.ships.iter().any(|s| s.counters().max_in_flight > 3),
        "{:?}",
        sim.ships[0].counters()
    );
}

/// Instances on fast ships finish at the fast ships' pace while a slow ship (100 ms a
/// request, one at a time) works through its own.
#[test]
fn a_slow_ship_does_not_hold_back_the_fast_ones() {
    let fast = SimShips::start(4, Duration::from_millis(1), 8).unwrap();
    let slow = SimShips::start(1, Duration::from_millis(100), 1).unwrap();
    let mut yaml = format!(
        "__maestro: {{schema: 2}}\nname: sim-slow\nships:\n{}{}services:\n  app:\n    image: simship/app:1\n    instances:\n",
        ships_yaml("fast", &fast.ports()),
        ships_yaml("slow", &slow.ports())
    );
    for i in 0..8 {
        yaml.push_str(&format!("      fast-{i}: {{ship: fast-{}}}\n", i % 4 + 1));
    }
    for i in 0..2 {
        yaml.push_str(&format!("      slow-{i}: {{ship: slow-1}}\n"));
    }
    let dir = Dir::new("slow", &yaml);

    let began = Instant::now();
    let out = dir.maestro(&["--json", "start"]);
    let wall = began.elapsed();
    assert!(out.status.success(), "{}", text(&out));
    let done = finished(&out);
    let (fast_done, slow_done): (Vec<_>, Vec<_>) =
        done.iter().partition(|(name, _)| name.starts_with("fast"));
    let last_fast = fast_done.iter().map(|(_, (_, t))| *t).fold(0.0, f64::max);
    let first_slow = slow_done
        .iter()
        .map(|(_, (_, t))| *t)
        .fold(f64::MAX, f64::min);
    assert_eq!((fast_done.len(), slow_done.len()), (8, 2), "{done:?}");
    // A start is 4 requests (inspect, create, start, inspect): the slow ship, serving one
    // request at a time, finishes its first instance 0.4 s after the play began at the
    // earliest; the fast ships' instances are done before that.
    assert!(
        first_slow >= 0.4 && last_fast < first_slow,
        "last fast instance at {last_fast:.2}s, first slow one at {first_slow:.2}s: {done:?}"
    );
    // `status` asks all ships at once: it takes the slow ship's time, not the sum.
    let began = Instant::now();
    let out = dir.maestro(&["status"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        text(&out).matches("running (Up").count(),
        10,
        "{}",
        text(&out)
    );
    assert!(
        began.elapsed() < wall,
        "status {:?}, start {wall:?}",
        began.elapsed()
    );
}

/// A ship whose port is closed fails its own instances with the reason, in every play;
/// the others' go on.
#[test]
fn a_dead_ship_fails_only_its_own_instances() {
    let sim = SimShips::with(
        3,
        Options::new(Duration::from_millis(1), 4)
            .images(&["simship/app:1", "simship/bad:1=exit:3"]),
    )
    .unwrap();
    let dead = closed_port();
    let yaml = format!(
        "__maestro: {{schema: 2}}\nname: sim-dead\nships:\n{}  dead: {{ip: 127.0.0.1, docker_port: {dead}, timeout: 2}}\nservices:\n  app:\n    image: simship/app:1\n    instances:\n      app-1: {{ship: live-1}}\n      app-2: {{ship: live-2}}\n      app-3: {{ship: live-3}}\n      app-4: {{ship: dead}}\n  bad:\n    image: simship/bad:1\n    instances:\n      bad-1: {{ship: live-1}}\n",
        ships_yaml("live", &sim.ports())
    );
    let dir = Dir::new("dead", &yaml);

    let out = dir.maestro(&["--json", "start", "app"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let done = finished(&out);
    for i in 1..=3 {
        assert_eq!(done[&format!("app-{i}")].0, "done", "{done:?}");
    }
    assert_eq!(done["app-4"].0, "failed", "{done:?}");
    // Refused at once (the refusal is the reason), not given up on after its timeout.
    let all = text(&out);
    assert!(
        all.contains(&format!(
            "ship dead is unreachable: tcp://127.0.0.1:{dead}: Connection refused"
        )),
        "{all}"
    );
    assert!(all.contains("warning: ship dead is not locked"), "{all}");

    let out = dir.maestro(&["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let status = text(&out);
    assert_eq!(status.matches("running (Up").count(), 3, "{status}");
    // The engine's error as it is: it names the ship already.
    assert!(
        status.contains("ship dead is unreachable") && !status.contains("unreachable: ship"),
        "{status}"
    );

    // An image whose containers exit at once: its start fails with the code and output.
    let out = dir.maestro(&["start", "bad"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("the container exited with code 3"), "{all}");
    assert!(
        all.contains("simship: the image's behaviour is to exit with code 3"),
        "{all}"
    );

    let out = dir.maestro(&["stop", "-a"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = dir.maestro(&["clean", "-a"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        states(&sim).iter().all(BTreeMap::is_empty),
        "{:?}",
        states(&sim)
    );
}

/// The simulated ship gives the engine's own answers where maestro reads them: checked
/// against this machine's Docker engine with the docker CLI, for a name in use, a
/// missing container and a missing image (nothing is pulled).
#[test]
fn errors_read_like_the_engines() {
    let sim = SimShips::with(
        1,
        Options::new(Duration::ZERO, 0).images(&["simship/app:1"]),
    )
    .unwrap();
    let sim_host = format!("tcp://127.0.0.1:{}", sim.ports()[0]);
    let name = format!("sim-errors-{}", std::process::id());
    let image = support::image();
    let docker = |host: Option<&str>, args: &[&str]| -> String {
        let mut command = Command::new("docker");
        if let Some(host) = host {
            command.env("DOCKER_HOST", host);
        }
        let out = command.args(args).output().expect("docker runs");
        String::from_utf8_lossy(&out.stderr)
            .trim()
            .replace(&name, "NAME")
    };
    let ids = regex::Regex::new("[0-9a-f]{64}").unwrap();
    let mut answers = Vec::new();
    for (host, image) in [(None, image), (Some(sim_host.as_str()), "simship/app:1")] {
        docker(host, &["create", "--name", &name, image]);
        let conflict = docker(host, &["create", "--name", &name, image]);
        docker(host, &["rm", "-f", &name]);
        let missing = docker(host, &["inspect", "--type", "container", &name]);
        let no_image = docker(host, &["image", "inspect", "simship/absent:9"]);
        answers.push([conflict, missing, no_image].map(|a| ids.replace_all(&a, "ID").into_owned()));
    }
    assert_eq!(answers[0][0], answers[1][0], "name in use");
    assert_eq!(answers[0][1], answers[1][1], "no such container");
    // Engines word this one differently across versions (20.10 says it twice); both
    // name the image.
    for answer in &answers {
        assert!(
            answer[2].contains("No such image: simship/absent:9"),
            "{answer:?}"
        );
    }
    assert!(
        answers[1][0].contains("is already in use by container"),
        "{:?}",
        answers[1]
    );
}

/// A command whose output is lost does not say it succeeded: with stdout on a full device
/// `status`, `plan`, `logs` and a play's events exit 1 and say why on stderr; a reader that
/// leaves early (`maestro status | head -1`) is not an error.
#[test]
fn output_that_cannot_be_written_fails_the_command() {
    let sim = SimShips::with(
        1,
        Options::new(Duration::ZERO, 4).images(&["simship/app:1", "simship/crash:1=exit:3"]),
    )
    .unwrap();
    let yaml = format!(
        "__maestro: {{schema: 2}}\nname: sim-full\nships:\n{}services:\n  app:\n    image: simship/app:1\n    instances:\n      app-1: {{ship: ship-1}}\n  crash:\n    image: simship/crash:1\n    instances:\n      crash-1: {{ship: ship-1}}\n",
        ships_yaml("ship", &sim.ports())
    );
    let dir = Dir::new("full", &yaml);
    // crash-1 exits at once, leaving a line of output for `logs`.
    let _ = dir.maestro(&["start"]);
    let run = |args: &[&str], stdout: std::process::Stdio| {
        Command::new(maestro_bin())
            .args(args)
            .current_dir(&dir.0)
            .env("NO_COLOR", "1")
            .env("MAESTRO_READINESS_ADDRESS", "off")
            .stdout(stdout)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap()
    };
    let full = || std::fs::File::create("/dev/full").unwrap().into();
    for args in [
        &["status"][..],
        &["--json", "status"],
        &["plan"],
        &["logs", "crash-1"],
        &["stop", "app-1"],
        &["--json", "start", "app-1"],
    ] {
        let out = run(args, full());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("error: cannot write the output: No space left on device"),
            "{args:?}: {stderr}"
        );
    }
    // The play itself went on: app-1 was stopped and started again despite the output.
    assert_eq!(states(&sim)[0]["app-1"], "running");

    // A reader that left: nothing to report, the command's own result stands.
    let mut child = Command::new(maestro_bin())
        .args(["status", "app-1"])
        .current_dir(&dir.0)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("cannot write"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

/// A chain of five levels on a ship slow to answer: the containers of the later levels
/// are created while the first comes up, so each level's turn is its start alone; and
/// still no level starts before the one it requires is running.
#[test]
fn a_chain_creates_its_later_levels_ahead() {
    let sim = SimShips::with(
        1,
        Options::new(Duration::from_millis(40), 0).images(&["simship/app:1"]),
    )
    .unwrap();
    let mut yaml = format!(
        "__maestro: {{schema: 2}}\nname: sim-chain\nships:\n{}services:\n",
        ships_yaml("ship", &sim.ports())
    );
    for level in 1..=5 {
        let requires = if level == 1 {
            String::new()
        } else {
            format!("    requires: [level{}]\n", level - 1)
        };
        yaml.push_str(&format!(
            "  level{level}:\n    image: simship/app:1\n{requires}    instances: {{level{level}-1: {{ship: ship-1}}}}\n"
        ));
    }
    let dir = Dir::new("chain", &yaml);
    let out = dir.maestro(&["--json", "start"]);
    assert!(out.status.success(), "{}", text(&out));
    let journal = sim.ships[0].journal();
    let at = |entry: &str| {
        journal
            .iter()
            .position(|j| j == entry)
            .unwrap_or_else(|| panic!("{entry} not in {journal:?}"))
    };
    // Every container is created before the second level starts: ahead of its turn.
    for level in 2..=5 {
        assert!(
            at(&format!("create level{level}-1")) < at("start level2-1"),
            "{journal:?}"
        );
    }
    // Each started once, in order, after what it requires.
    for level in 2..=5 {
        assert!(
            at(&format!("start level{}-1", level - 1)) < at(&format!("start level{level}-1")),
            "{journal:?}"
        );
    }
    assert_eq!(
        journal
            .iter()
            .filter(|j| j.starts_with("create level"))
            .count(),
        5,
        "{journal:?}"
    );
    assert!(states(&sim)[0].values().all(|s| *s == "running"));
    // The step that says so.
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("waiting for level2-1"),
        "{}",
        text(&out)
    );
}
