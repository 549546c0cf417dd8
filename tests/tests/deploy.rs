//! Shipping a new version into a running environment, end to end on this machine's
//! engine, over two ships that share it (its unix socket, and a TCP endpoint through
//! socat on loopback): rolling restart, deploy of a retagged image, a deploy whose image
//! crashes (everything restored), rollback, and the states a killed deploy leaves.
//!
//! Each test builds its own image tags (v1, v2, a crashing one) FROM the busybox test
//! image, serves HTTP from every instance, and removes its containers and images.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod support;

use support::{Env, port, text};

/// The test's own image repository, with tags `v1`, `v2`, `bad` (exits 4 at start) and
/// `app` (what the environment file names, retagged by the tests).
struct Images {
    repo: String,
}

impl Images {
    fn new(test: &str) -> Images {
        let repo = format!("maestro-e2e/{test}-{}", std::process::id());
        let base = support::image();
        for (tag, version) in [("v1", "1"), ("v2", "2"), ("bad", "bad")] {
            let dir = std::env::temp_dir().join(format!("{test}-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join("Dockerfile"),
                format!("FROM {base}\nENV VERSION={version}\n"),
            )
            .unwrap();
            let build = || {
                Command::new("docker")
                    .args(["build", "-q", "-t", &format!("{repo}:{tag}")])
                    .arg(&dir)
                    .output()
                    .unwrap()
            };
            // Once more on failure: the engine's legacy builder was seen failing, under
            // the whole suite's load, with nothing on its output but its deprecation
            // notice; the same build passed alone.
            let mut out = build();
            if !out.status.success() {
                out = build();
            }
            assert!(out.status.success(), "{:?}: {}", out.status, text(&out));
            let _ = std::fs::remove_dir_all(&dir);
        }
        let images = Images { repo };
        images.tag("v1");
        images
    }

    /// Points `app` at `tag`.
    fn tag(&self, tag: &str) {
        let out = Command::new("docker")
            .args(["tag", &format!("{}:{tag}", self.repo), &self.app()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }

    fn app(&self) -> String {
        format!("{}:app", self.repo)
    }

    fn id(&self, tag: &str) -> String {
        let out = Command::new("docker")
            .args([
                "image",
                "inspect",
                "-f",
                "{{.Id}}",
                &format!("{}:{tag}", self.repo),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Images {
    fn drop(&mut self) {
        for tag in ["v1", "v2", "bad", "app"] {
            let _ = Command::new("docker")
                .args(["rmi", "-f", &format!("{}:{tag}", self.repo)])
                .output();
        }
    }
}

/// A TCP endpoint to the local engine (a second ship on the same engine).
struct Endpoint {
    port: u16,
    child: Child,
}

impl Endpoint {
    fn new(port: u16) -> Endpoint {
        let child = Command::new("socat")
            .args([
                format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,backlog=1024"),
                "UNIX-CONNECT:/var/run/docker.sock".into(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat (apt-get install socat)");
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Endpoint { port, child }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An app that serves `v$VERSION` over HTTP on 8000, ends at once on TERM, and exits 4
/// at start when its VERSION is `bad`.
const APP: &str = "[sh, -c, \"if [ \\\"$VERSION\\\" = bad ]; then echo broken image; exit 4; fi; echo v$VERSION > /tmp/index.html; trap 'exit 0' TERM; httpd -f -p 8000 -h /tmp & wait\"]";

/// The environment: service `web` of `n` instances over the two ships, each published
/// on its own loopback port (base + k).
fn environment(images: &Images, endpoint: &Endpoint, base: u16, n: u16) -> String {
    let mut instances = String::new();
    for k in 1..=n {
        let ship = if k % 2 == 1 { "local" } else { "tcp" };
        instances.push_str(&format!(
            "      @NAME@-web-{k}: {{ship: {ship}, command: {APP}, stop_timeout: 2, ports: {{http: \"8000:{}\"}}}}\n",
            base + k
        ));
    }
    format!(
        "__maestro: {{schema: 2}}
name: @NAME@
ships:
  local: {{ip: 127.0.0.1, socket_path: /var/run/docker.sock}}
  tcp: {{ip: 127.0.0.1, docker_port: {tcp}}}
services:
  web:
    image: {image}
    ports: {{http: \"8000\"}}
    lifecycle: {{running: [{{type: http, port: http, max_wait: 20}}]}}
    instances:
{instances}",
        tcp = endpoint.port,
        image = images.app(),
    )
}

/// What the instance published on `port` serves, or `None` when it does not answer.
fn fetch(port: u16) -> Option<String> {
    let mut stream =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.starts_with("HTTP/1.").then(|| {
        answer
            .rsplit("\r\n\r\n")
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned()
    })
}

/// Probes each port every 20 ms (one thread per port, so a slow answer delays no other
/// probe) until stopped. An instance is out of service from a failed probe confirmed by
/// the next one until it answers again. Returns the fewest instances in service at any
/// moment.
fn probe(ports: Vec<u16>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let threads: Vec<_> = ports
            .iter()
            .map(|&port| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut samples: Vec<(Instant, bool)> = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        samples.push((Instant::now(), fetch(port).is_some()));
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    samples
                })
            })
            .collect();
        let mut edges: Vec<(Instant, i32)> = Vec::new();
        for thread in threads {
            let samples = thread.join().unwrap();
            let mut down_since: Option<Instant> = None;
            for (i, &(at, up)) in samples.iter().enumerate() {
                let confirmed = !up && samples.get(i + 1).is_some_and(|s| !s.1);
                match (down_since, up) {
                    (None, false) if confirmed => down_since = Some(at),
                    (Some(since), true) => {
                        edges.push((since, 1));
                        edges.push((at, -1));
                        down_since = None;
                    }
                    _ => {}
                }
            }
            if let Some(since) = down_since {
                edges.push((since, 1));
                edges.push((Instant::now(), -1));
            }
        }
        edges.sort();
        let (mut down, mut most) = (0, 0);
        for (_, d) in edges {
            down += d;
            most = most.max(down);
        }
        ports.len() - most as usize
    })
}

fn container_ids(env: &Env, n: u16) -> Vec<String> {
    (1..=n)
        .map(|k| env.inspect(&format!("web-{k}"), "{{.Id}}"))
        .collect()
}

#[test]
fn rolling_restart_keeps_all_but_c_instances_serving() {
    let images = Images::new("restart");
    let endpoint = Endpoint::new(port(90));
    let base = port(10);
    let env = Env::new("rolling", &environment(&images, &endpoint, base, 3));
    let out = env.maestro(&["start"]);
    assert!(out.status.success(), "{}", text(&out));
    let before = container_ids(&env, 3);

    let stop = Arc::new(AtomicBool::new(false));
    let prober = probe((1..=3).map(|k| base + k).collect(), stop.clone());
    let out = env.maestro(&["restart", "-c", "1", "-s", "web"]);
    stop.store(true, Ordering::SeqCst);
    let fewest = prober.join().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        fewest >= 2,
        "at some moment only {fewest} of 3 instances answered"
    );
    // Every instance was replaced.
    let after = container_ids(&env, 3);
    for (b, a) in before.iter().zip(&after) {
        assert_ne!(b, a, "{}", text(&out));
    }
}

#[test]
fn deploy_rolls_out_a_retagged_image_and_rollback_returns() {
    let images = Images::new("deploy");
    let endpoint = Endpoint::new(port(91));
    let base = port(20);
    let env = Env::new("deploy", &environment(&images, &endpoint, base, 4));
    let out = env.maestro(&["start"]);
    assert!(out.status.success(), "{}", text(&out));

    // Nothing changed: nothing replaced.
    let out = env.maestro(&["plan", "--deploy"]);
    assert_eq!(text(&out).matches("leave").count(), 4, "{}", text(&out));

    // A new peer changes every instance's discovery variables: the plan names them.
    env.write(&environment(&images, &endpoint, base, 5));
    let plan = text(&env.maestro(&["plan", "--deploy"]));
    let web1 = plan
        .lines()
        .find(|l| l.contains("web-1 "))
        .unwrap_or_default();
    assert!(
        web1.contains("replace")
            && web1.contains("env changed (")
            && web1.contains("WEB_INSTANCES"),
        "{plan}"
    );
    env.write(&environment(&images, &endpoint, base, 4));

    images.tag("v2");
    let out = env.maestro(&["plan", "--deploy", "--max-unavailable", "2"]);
    let plan = text(&out);
    let short = |id: &str| id.chars().take(7 + 12).collect::<String>();
    assert!(
        plan.contains(&format!(
            "image changed: {} now {}",
            images.app(),
            short(&images.id("v2"))
        )) && plan.contains(&format!("(was {}", short(&images.id("v1")))),
        "{plan}"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let prober = probe((1..=4).map(|k| base + k).collect(), stop.clone());
    let out = env.maestro(&["deploy", "--max-unavailable", "2"]);
    stop.store(true, Ordering::SeqCst);
    let fewest = prober.join().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        fewest >= 2,
        "at some moment only {fewest} of 4 instances answered"
    );
    for k in 1..=4 {
        assert_eq!(fetch(base + k).as_deref(), Some("v2"), "web-{k}");
        assert_eq!(
            env.inspect(&format!("web-{k}"), "{{.Image}}"),
            images.id("v2")
        );
        // The previous generation is kept, stopped, with restart policy no.
        let previous = format!("{}-web-{k}.previous", env.name);
        let state = Command::new("docker")
            .args([
                "inspect",
                "-f",
                "{{.State.Running}} {{.HostConfig.RestartPolicy.Name}} {{.Image}}",
                &previous,
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&state.stdout).trim(),
            format!("false no {}", images.id("v1"))
        );
    }
    let status = text(&env.maestro(&["status"]));
    assert_eq!(
        status.matches("previous generation kept").count(),
        4,
        "{status}"
    );

    // Deploying again changes nothing.
    let ids = container_ids(&env, 4);
    let out = env.maestro(&["deploy"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(container_ids(&env, 4), ids);

    // Rollback: v1 again, and v2 kept in its turn.
    let out = env.maestro(&["rollback", "-s", "web", "--max-unavailable", "50%"]);
    assert!(out.status.success(), "{}", text(&out));
    for k in 1..=4 {
        assert_eq!(fetch(base + k).as_deref(), Some("v1"), "web-{k}");
    }
    // The file still names v2, which was rolled back from: held, not rolled out again.
    let out = env.maestro(&["deploy"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        text(&out).matches("rolled back:").count(),
        4,
        "{}",
        text(&out)
    );
    assert_eq!(fetch(base + 1).as_deref(), Some("v1"));

    // clean removes the kept generations.
    let out = env.maestro(&["clean", "-a"]);
    assert!(out.status.success(), "{}", text(&out));
    let status = text(&env.maestro(&["status"]));
    assert!(!status.contains("previous generation"), "{status}");
}

#[test]
fn a_crashing_image_is_undone_and_the_rollout_stops() {
    let images = Images::new("crash");
    let endpoint = Endpoint::new(port(92));
    let base = port(30);
    let env = Env::new("crash", &environment(&images, &endpoint, base, 4));
    let out = env.maestro(&["start"]);
    assert!(out.status.success(), "{}", text(&out));
    let before = container_ids(&env, 4);

    images.tag("bad");
    let out = env.maestro(&["deploy", "--max-unavailable", "2"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("exited with code 4"), "{said}");
    assert!(said.contains("broken image"), "{said}");
    assert!(said.contains("is back and running"), "{said}");
    // Every old container is back: same container, running, same image, serving.
    assert_eq!(container_ids(&env, 4), before);
    for k in 1..=4 {
        let name = format!("web-{k}");
        assert_eq!(env.inspect(&name, "{{.State.Running}}"), "true", "{said}");
        assert_eq!(env.inspect(&name, "{{.Image}}"), images.id("v1"));
        assert_eq!(fetch(base + k).as_deref(), Some("v1"), "{name}");
    }
    // The first batch failed: the second was never started.
    assert_eq!(said.matches("not run: waits for").count(), 2, "{said}");
}

/// Runs maestro with `args` in `env`'s folder, paused at `step` (a failpoint of debug
/// builds, see controller/src/failpoint.rs; several, separated by commas, each reached by
/// its own task), and kills it there with SIGKILL once every one is reached: no cleanup
/// runs, as when a machine dies. Returns its pid and what it said.
fn killed_at(env: &Env, step: &str, args: &[&str]) -> (u32, String) {
    let mut child = Command::new(support::maestro_bin())
        .args(args)
        .current_dir(&env.dir)
        .env("NO_COLOR", "1")
        .env("MAESTRO_PAUSE_AT", step)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, said) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut text = String::new();
    let until = Instant::now() + Duration::from_secs(30);
    let mut paused: Vec<String> = step.split(',').map(|s| format!("paused at {s}")).collect();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match said.recv_timeout(left) {
            Ok(line) => {
                text.push_str(&line);
                text.push('\n');
                paused.retain(|p| *p != line);
                if paused.is_empty() {
                    break;
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "maestro {args:?} never paused at {step} (failpoints exist in debug builds only):\n{text}"
                );
            }
        }
    }
    child.kill().unwrap();
    // Reaped, so that its pid is gone from /proc (a zombie would look alive).
    child.wait().unwrap();
    (child.id(), text)
}

/// The environment's containers (not its locks), sorted, with the image each runs.
fn containers(env: &Env) -> Vec<(String, String)> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("label=io.maestro.environment={}", env.name),
            "--format",
            "{{.Names}}",
        ])
        .output()
        .unwrap();
    let mut names: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|n| !n.starts_with("maestro-lock."))
        .map(|n| {
            let image = Command::new("docker")
                .args(["inspect", "-f", "{{.Image}}", n])
                .output()
                .unwrap();
            (
                n.to_owned(),
                String::from_utf8_lossy(&image.stdout).trim().to_owned(),
            )
        })
        .collect();
    names.sort();
    names
}

/// `status`'s line of `instance`, and its `--json` row.
fn status_of(env: &Env, instance: &str) -> (String, serde_json::Value) {
    let name = env.c(instance);
    let text = text(&env.maestro(&["status"]));
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in {text}"))
        .to_owned();
    let json = env.maestro(&["status", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&json.stdout).expect("status --json");
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["instance"] == name.as_str())
        .unwrap()
        .clone();
    (line, row)
}

/// The roles of the generations `status --json` lists beside an instance's container.
fn roles(row: &serde_json::Value) -> Vec<&str> {
    row["generations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["role"].as_str().unwrap())
        .collect()
}

#[test]
fn a_deploy_killed_at_each_step_leaves_a_state_status_explains_and_the_next_play_completes() {
    let images = Images::new("killed");
    let endpoint = Endpoint::new(port(95));
    let base = port(60);
    let env = Env::new("killed", &environment(&images, &endpoint, base, 2));
    let out = env.maestro(&["start"]);
    assert!(out.status.success(), "{}", text(&out));
    let (c1, c2) = (env.c("web-1"), env.c("web-2"));
    let (v1, v2) = (images.id("v1"), images.id("v2"));
    // The settled state: both instances serve `serves`, each with its previous generation
    // on `kept`, and nothing else (no .retiring, no .swapping, no extra container) but
    // web-2's container created ahead of `staged`, when given.
    let settled_with = |serves: &str, kept: &str, staged: Option<&String>, said: &str| {
        let (now, before) = match serves {
            "v1" => (&v1, &v2),
            _ => (&v2, &v1),
        };
        let kept = if kept == serves { now } else { before };
        let mut want: Vec<(String, String)> = vec![
            (c1.clone(), now.clone()),
            (format!("{c1}.previous"), kept.clone()),
            (c2.clone(), now.clone()),
            (format!("{c2}.previous"), kept.clone()),
        ];
        want.extend(staged.map(|image| (format!("{c2}.staged"), image.clone())));
        assert_eq!(containers(&env), want, "{said}");
        for k in 1..=2 {
            assert_eq!(fetch(base + k).as_deref(), Some(serves), "web-{k}: {said}");
        }
    };
    let settled = |serves: &str, kept: &str, said: &str| settled_with(serves, kept, None, said);
    // The next play takes over the locks the killed one left, saying why.
    let took_over = |said: &str, pid: u32| {
        assert!(
            said.contains("taking over the lock of")
                && said.contains(&format!("pid {pid}"))
                && said.contains("process ended"),
            "{said}"
        );
    };

    // web-2 waits for web-1 (one instance of the service out at a time), so each deploy
    // creates web-2's container ahead while web-1 is replaced: every deploy below is also
    // killed once that one is created (`ahead:created`), beside the step named.
    //
    // 1. Killed after the old container was stopped and renamed, before the new one was
    //    created: the instance is absent, the old one kept as .retiring; deploy finishes.
    //    web-2 runs untouched, its new container created ahead beside it.
    images.tag("v2");
    let (pid, _) = killed_at(&env, "deploy:renamed,ahead:created", &["deploy"]);
    let (line, row) = status_of(&env, "web-1");
    assert!(
        line.contains("absent")
            && line.contains("an interrupted deploy was replacing")
            && line.contains("the next deploy creates the new container"),
        "{line}"
    );
    assert_eq!(roles(&row), ["retiring"], "{row}");
    let (line, row) = status_of(&env, "web-2");
    assert!(
        line.contains("running")
            && line.contains("was created ahead by an interrupted deploy and never started"),
        "{line}"
    );
    assert_eq!(roles(&row), ["staged"], "{row}");
    assert_eq!(env.inspect("web-2.staged", "{{.State.Status}}"), "created");
    let out = env.maestro(&["deploy"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("which an interrupted deploy created ahead"),
        "{said}"
    );
    took_over(&said, pid);
    settled("v2", "v1", &said);

    // Each later deploy rolls out what the previous generation runs, which deploy would
    // hold as rolled back: --rolled-back rolls it out all the same.
    let deploy = ["deploy", "--rolled-back"];

    // 2. Killed after the new container was created, before it was started: it is there,
    //    never started; rollback removes it and puts the old one back.
    images.tag("v1");
    let (pid, _) = killed_at(&env, "launch:created,ahead:created", &deploy);
    let (line, row) = status_of(&env, "web-1");
    assert!(
        line.contains("down") && line.contains("not proven ready"),
        "{line}"
    );
    assert_eq!(roles(&row), ["retiring", "previous"], "{row}");
    let out = env.maestro(&["rollback", &c1]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("an interrupted deploy was undone"), "{said}");
    took_over(&said, pid);
    // web-2 was not rolled back: what was created ahead for it stays until the next deploy.
    settled_with("v2", "v1", Some(&v1), &said);
    let (_, row) = status_of(&env, "web-2");
    assert_eq!(roles(&row), ["previous", "staged"], "{row}");

    // 3. Killed after the new container was started, before it was proven ready: it runs,
    //    unproven; deploy replaces it again.
    let (pid, _) = killed_at(&env, "launch:started,ahead:created", &deploy);
    let (line, _) = status_of(&env, "web-1");
    assert!(
        line.contains("running") && line.contains("not proven ready"),
        "{line}"
    );
    let out = env.maestro(&deploy);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("which an interrupted deploy left unproven"),
        "{said}"
    );
    took_over(&said, pid);
    settled("v1", "v2", &said);

    // 4. Killed once the new container was ready, before the older generation was removed:
    //    three generations for a moment, and the next deploy completes.
    images.tag("v2");
    let (pid, _) = killed_at(&env, "deploy:ready,ahead:created", &deploy);
    let (line, row) = status_of(&env, "web-1");
    assert!(line.contains("not proven ready"), "{line}");
    assert_eq!(roles(&row), ["retiring", "previous"], "{row}");
    let out = env.maestro(&deploy);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    took_over(&said, pid);
    settled("v2", "v1", &said);

    // 4b. web-2's turn, its container created ahead: killed once that one has taken the
    //     name and the old one is renamed .retiring, before the old one is stopped. The
    //     old one still serves; rollback takes it back (it never stopped), then the next
    //     deploy completes.
    images.tag("v1");
    let (pid, _) = killed_at(&env, "deploy:swapped", &deploy);
    let (line, row) = status_of(&env, "web-2");
    assert!(
        line.contains("not proven ready") && line.contains("kept running as"),
        "{line}"
    );
    assert_eq!(roles(&row), ["retiring", "previous"], "{row}");
    assert_eq!(env.inspect("web-2", "{{.State.Status}}"), "created");
    assert_eq!(
        fetch(base + 2).as_deref(),
        Some("v2"),
        "the old web-2 serves"
    );
    let out = env.maestro(&["rollback", &c2]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("an interrupted deploy was undone"), "{said}");
    took_over(&said, pid);
    assert_eq!(fetch(base + 2).as_deref(), Some("v2"), "{said}");
    let out = env.maestro(&deploy);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    settled("v1", "v2", &said);

    // 5. A rollback killed in the middle of its swap (the current one moved aside, the
    //    previous one not yet renamed back): the next rollback finishes it.
    let (pid, _) = killed_at(&env, "rollback:swapping", &["rollback", &c1]);
    let (line, row) = status_of(&env, "web-1");
    assert!(
        line.contains("absent") && line.contains("interrupted rollback"),
        "{line}"
    );
    assert_eq!(roles(&row), ["previous", "swapping"], "{row}");
    let out = env.maestro(&["rollback", &c1]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    took_over(&said, pid);
    assert_eq!(fetch(base + 1).as_deref(), Some("v2"), "{said}");
    assert_eq!(env.inspect("web-1.previous", "{{.Image}}"), v1, "{said}");
    assert!(
        !containers(&env)
            .iter()
            .any(|(n, _)| n.ends_with(".swapping")),
        "{said}"
    );
}

#[test]
fn a_second_deploy_is_refused_while_the_first_holds_the_lock() {
    let images = Images::new("locked");
    let endpoint = Endpoint::new(port(94));
    let base = port(50);
    // An app that ignores TERM: each stop takes its whole grace period (2 s), so the
    // first deploy holds the lock long enough to be met.
    let yaml =
        environment(&images, &endpoint, base, 2).replace("trap 'exit 0' TERM", "trap '' TERM");
    let env = Env::new("locked", &yaml);
    let out = env.maestro(&["start"]);
    assert!(out.status.success(), "{}", text(&out));
    images.tag("v2");
    let first = Command::new(support::maestro_bin())
        .arg("deploy")
        .current_dir(&env.dir)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Until the first one holds its locks (its first replacement starts stopping).
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until && !text(&env.maestro(&["lock", "status"])).contains("held") {
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = env.maestro(&["deploy"]);
    let said = text(&second);
    assert_eq!(second.status.code(), Some(1), "{said}");
    assert!(said.contains("lock"), "{said}");
    assert!(
        said.contains("deploy"),
        "the holder's command is named: {said}"
    );
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", text(&first));
    assert_eq!(fetch(base + 1).as_deref(), Some("v2"));
    // Released: the next play takes the locks again.
    let out = env.maestro(&["deploy"]);
    assert!(out.status.success(), "{}", text(&out));
}
