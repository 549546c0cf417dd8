//! End-to-end tests of the plays against the real Docker engine of this machine, with an
//! image built here from scratch (Debian's static busybox; no registry is needed).
//!
//! Every test uses its own environment name, container names and host ports, and removes
//! its containers when it ends, even when it fails. Only loopback and the test's own
//! containers are contacted.

use std::process::Command;
use std::time::{Duration, Instant};

mod support;

/// An HTTPS server made by the test, and its certificates.
#[path = "../../controller/src/http/testing.rs"]
mod https;

use support::{Env, docker_time, maestro_bin, port, text};

/// An app that records when it started, opens its port after `delay` seconds, records
/// when it did, and serves on it; TERM ends it at once.
fn app(port: u16, delay: &str) -> String {
    format!(
        "[sh, -c, \"trap 'exit 0' TERM; cut -d' ' -f1 /proc/uptime > /tmp/started; sleep {delay}; cut -d' ' -f1 /proc/uptime > /tmp/ready; nc -ll -p {port} -e cat & wait\"]"
    )
}

fn uptime(env: &Env, instance: &str, file: &str) -> f64 {
    env.exec(instance, &format!("cat /tmp/{file}"))
        .parse()
        .unwrap_or_else(|_| panic!("{instance} has /tmp/{file}"))
}

#[test]
fn start_follows_dependencies_and_injects_variables() {
    let (p1, p2, p3) = (port(1), port(2), port(3));
    let yaml = format!(
        "__maestro: {{schema: 2}}
name: @NAME@
@SHIPS@services:
  a:
    image: @IMAGE@
    ports: {{p: \"7000:{p1}\"}}
    lifecycle: {{running: [{{type: tcp, port: p, max_wait: 20}}]}}
    instances:
      @NAME@-a1: {{ship: local, command: {a}}}
  b:
    image: @IMAGE@
    requires: [a]
    ports: {{p: \"7000:{p2}\"}}
    lifecycle: {{running: [{{type: tcp, port: p, max_wait: 20}}]}}
    instances:
      @NAME@-b1: {{ship: local, command: {b}}}
  c:
    image: @IMAGE@
    requires: [b]
    ports: {{p: \"7000:{p3}\"}}
    lifecycle: {{running: [{{type: tcp, port: p, max_wait: 20}}]}}
    instances:
      @NAME@-c1: {{ship: local, command: {c}, stop_timeout: 2}}
",
        a = app(7000, "0.3"),
        b = app(7000, "0.3"),
        c = app(7000, "0.3"),
    );
    let env = Env::new("order", &yaml);
    let out = env.maestro(&["start"]);
    assert!(out.status.success(), "{}", text(&out));

    // Each container started only after the one it requires was ready.
    let (a_ready, b_started, b_ready, c_started) = (
        uptime(&env, "a1", "ready"),
        uptime(&env, "b1", "started"),
        uptime(&env, "b1", "ready"),
        uptime(&env, "c1", "started"),
    );
    assert!(
        b_started >= a_ready,
        "b started at {b_started}, before a was ready at {a_ready}"
    );
    assert!(
        c_started >= b_ready,
        "c started at {c_started}, before b was ready at {b_ready}"
    );

    // Discovery variables: c sees b and, transitively, a; only its own internal ports.
    let vars = env.exec("c1", "env");
    let n = env.name.to_uppercase().replace('-', "_");
    assert!(vars.contains(&format!("A_{n}_A1_P_PORT={p1}")), "{vars}");
    assert!(vars.contains(&format!("B_{n}_B1_P_PORT={p2}")), "{vars}");
    assert!(
        vars.contains(&format!("C_{n}_C1_P_INTERNAL_PORT=7000")),
        "{vars}"
    );
    assert!(
        !vars.contains(&format!("A_{n}_A1_P_INTERNAL_PORT")),
        "{vars}"
    );
    assert!(
        vars.contains(&format!("CONTAINER_NAME={}", env.c("c1"))),
        "{vars}"
    );

    let status = env.maestro(&["status"]);
    assert!(status.status.success(), "{}", text(&status));
    assert_eq!(
        text(&status).matches("running").count(),
        3,
        "{}",
        text(&status)
    );

    // Starting again leaves everything alone.
    let id_before = env.inspect("a1", "{{.Id}}");
    let again = env.maestro(&["start"]);
    assert!(
        again.status.success() && text(&again).contains("up to date"),
        "{}",
        text(&again)
    );
    assert_eq!(env.inspect("a1", "{{.Id}}"), id_before);

    // Stop: dependents first.
    let stop = env.maestro(&["stop", "-a"]);
    assert!(stop.status.success(), "{}", text(&stop));
    let a_finished = env.inspect("a1", "{{.State.FinishedAt}}");
    let c_finished = env.inspect("c1", "{{.State.FinishedAt}}");
    assert!(
        docker_time(&c_finished) <= docker_time(&a_finished),
        "c stopped at {c_finished}, after a at {a_finished}"
    );
    assert_eq!(env.inspect("a1", "{{.State.Running}}"), "false");

    let clean = env.maestro(&["clean"]);
    assert!(clean.status.success(), "{}", text(&clean));
    assert_eq!(env.inspect("a1", "{{.Id}}"), "", "removed");
}

#[test]
fn a_container_that_exits_at_start_fails_its_dependents_only() {
    let yaml = format!(
        "__maestro: {{schema: 2}}
name: @NAME@
@SHIPS@services:
  broken:
    image: @IMAGE@
    ports: {{p: \"7000:{p}\"}}
    lifecycle: {{running: [{{type: tcp, port: p, max_wait: 30}}]}}
    instances:
      @NAME@-broken: {{ship: local, command: [sh, -c, \"echo starting up; echo cannot open the database >&2; exit 3\"]}}
  dependent:
    image: @IMAGE@
    requires: [broken]
    instances:
      @NAME@-dependent: {{ship: local, command: [sleep, \"60\"]}}
  independent:
    image: @IMAGE@
    instances:
      @NAME@-independent: {{ship: local, command: [sleep, \"60\"], stop_timeout: 1}}
",
        p = port(10)
    );
    let env = Env::new("crash", &yaml);
    let began = Instant::now();
    let out = env.maestro(&["start"]);
    let output = text(&out);
    assert_eq!(out.status.code(), Some(1), "{output}");
    // Failed at once, not after the check's 30 seconds.
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "took {:?}",
        began.elapsed()
    );
    assert!(output.contains("exit code: 3"), "{output}");
    assert!(output.contains("cannot open the database"), "{output}");
    assert!(output.contains("not run: waits for"), "{output}");
    assert_eq!(
        env.inspect("independent", "{{.State.Running}}"),
        "true",
        "{output}"
    );
    // Created ahead while `broken` came up, never started, and removed when it failed.
    assert!(output.contains("created ahead, was removed"), "{output}");
    assert_eq!(env.inspect("dependent", "{{.Id}}"), "", "left behind");
}

#[test]
fn a_tcp_check_of_a_host_network_app_waits_for_its_port() {
    // With `net: host` no proxy stands before the port: the check asks the port itself,
    // and a dependent still starts only once the app listens.
    let p = port(21);
    let db = format!(
        "[sh, -c, \"trap 'exit 0' TERM; sleep 1; cut -d' ' -f1 /proc/uptime > /tmp/ready; httpd -f -p 127.0.0.1:{p} -h /tmp & wait\"]"
    );
    let yaml = format!(
        "__maestro: {{schema: 2}}
name: @NAME@
@SHIPS@services:
  db:
    image: @IMAGE@
    ports: {{p: \"{p}\"}}
    lifecycle: {{running: [{{type: tcp, port: p, max_wait: 20}}]}}
    instances:
      @NAME@-db: {{ship: local, net: host, command: {db}, stop_timeout: 1}}
  app:
    image: @IMAGE@
    requires: [db]
    instances:
      @NAME@-app: {{ship: local, net: host, command: {app}, stop_timeout: 1}}
",
        app = "[sh, -c, \"trap 'exit 0' TERM; cut -d' ' -f1 /proc/uptime > /tmp/started; sleep 60 & wait\"]",
    );
    let env = Env::new("hostnet", &yaml);
    let out = env.maestro(&["start"]);
    assert!(out.status.success(), "{}", text(&out));
    let (db_ready, app_started) = (uptime(&env, "db", "ready"), uptime(&env, "app", "started"));
    assert!(
        app_started >= db_ready,
        "app started at {app_started}, before db listened at {db_ready}"
    );
}

#[test]
fn a_check_that_never_passes_is_bounded_by_max_wait() {
    let yaml = format!(
        "__maestro: {{schema: 2}}
name: @NAME@
@SHIPS@services:
  silent:
    image: @IMAGE@
    ports: {{p: \"7000:{p}\"}}
    lifecycle: {{running: [{{type: tcp, port: p, max_wait: 2}}]}}
    instances:
      @NAME@-silent: {{ship: local, command: [sleep, \"60\"], stop_timeout: 1}}
",
        p = port(20)
    );
    let env = Env::new("check", &yaml);
    let began = Instant::now();
    let out = env.maestro(&["start"]);
    let elapsed = began.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(10),
        "took {elapsed:?}"
    );
    assert!(
        text(&out).contains("did not accept a connection within 2s"),
        "{}",
        text(&out)
    );
}

#[test]
fn restart_only_if_changed_touches_nothing_unchanged() {
    let yaml = "__maestro: {schema: 2}
name: @NAME@
@SHIPS@services:
  s:
    image: @IMAGE@
    env: {VERSION: \"1\"}
    instances:
      @NAME@-one: {ship: local, command: [sleep, \"60\"], stop_timeout: 1}
      @NAME@-two: {ship: local, command: [sleep, \"60\"], stop_timeout: 1}
";
    let env = Env::new("restart", yaml);
    assert!(env.maestro(&["start"]).status.success());
    let ids = (env.inspect("one", "{{.Id}}"), env.inspect("two", "{{.Id}}"));
    let started = env.inspect("one", "{{.State.StartedAt}}");
    docker_time(&started);

    let out = env.maestro(&["restart", "-a", "--only-if-changed"]);
    assert!(
        out.status.success() && text(&out).contains("nothing changed"),
        "{}",
        text(&out)
    );
    assert_eq!(
        (env.inspect("one", "{{.Id}}"), env.inspect("two", "{{.Id}}")),
        ids
    );
    assert_eq!(env.inspect("one", "{{.State.StartedAt}}"), started);

    // A changed definition: start reports it outdated, restart applies it.
    env.write(&yaml.replace("VERSION: \"1\"", "VERSION: \"2\""));
    let out = env.maestro(&["start"]);
    assert!(
        out.status.success() && text(&out).contains("outdated"),
        "{}",
        text(&out)
    );
    let out = env.maestro(&["restart", "-a", "--only-if-changed"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_ne!(env.inspect("one", "{{.Id}}"), ids.0, "recreated");
    assert_eq!(env.exec("one", "echo $VERSION"), "2");
}

#[test]
fn a_dead_ship_fails_its_instances_while_the_others_start() {
    let yaml = "__maestro: {schema: 2}
name: @NAME@
ships:
  here: {ip: 127.0.0.1, socket_path: /var/run/docker.sock}
  dead: {ip: 127.0.0.1, docker_port: 9, timeout: 2}
services:
  s:
    image: @IMAGE@
    instances:
      @NAME@-here: {ship: here, command: [sleep, \"60\"], stop_timeout: 1}
      @NAME@-there: {ship: dead, command: [sleep, \"60\"]}
";
    let env = Env::new("deadship", yaml);
    let began = Instant::now();
    let out = env.maestro(&["start"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(began.elapsed() < Duration::from_secs(10));
    assert!(
        text(&out).contains("ship dead is unreachable"),
        "{}",
        text(&out)
    );
    assert_eq!(env.inspect("here", "{{.State.Running}}"), "true");
    let status = env.maestro(&["status"]);
    assert!(text(&status).contains("unreachable"), "{}", text(&status));
}

#[test]
fn kill_logs_and_json_events() {
    let yaml = "__maestro: {schema: 2}
name: @NAME@
@SHIPS@services:
  s:
    image: @IMAGE@
    instances:
      @NAME@-talker: {ship: local, command: [sh, -c, \"echo line one; echo line two; exec sleep 60\"]}
";
    let env = Env::new("kill", yaml);
    let out = env.maestro(&["--json", "start"]);
    assert!(out.status.success(), "{}", text(&out));
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(events.first().unwrap()["event"], "began");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "finished" && e["result"] == "done")
    );
    assert_eq!(events.last().unwrap()["event"], "ended");

    std::thread::sleep(Duration::from_millis(300));
    let logs = env.maestro(&["logs", &env.c("talker")]);
    assert!(
        text(&logs).contains("line one\nline two"),
        "{}",
        text(&logs)
    );

    let kill = env.maestro(&["kill", &env.c("talker")]);
    assert!(
        kill.status.success() && text(&kill).contains("killed"),
        "{}",
        text(&kill)
    );
    assert_eq!(env.inspect("talker", "{{.State.Running}}"), "false");
}

#[test]
fn ctrl_c_stops_launching_and_exits_130() {
    let yaml = format!(
        "__maestro: {{schema: 2}}
name: @NAME@
@SHIPS@services:
  slow:
    image: @IMAGE@
    ports: {{p: \"7000:{p}\"}}
    lifecycle: {{running: [{{type: tcp, port: p, max_wait: 60}}]}}
    instances:
      @NAME@-slow: {{ship: local, command: [sleep, \"60\"], stop_timeout: 1}}
  after:
    image: @IMAGE@
    requires: [slow]
    instances:
      @NAME@-after: {{ship: local, command: [sleep, \"60\"]}}
",
        p = port(30)
    );
    let env = Env::new("ctrlc", &yaml);
    let child = Command::new(maestro_bin())
        .arg("start")
        .current_dir(&env.dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let began = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(
        began.elapsed() < Duration::from_secs(40),
        "took {:?}",
        began.elapsed()
    );
    assert!(text(&out).contains("interrupted"), "{}", text(&out));
    assert_eq!(
        env.inspect("after", "{{.Id}}"),
        "",
        "nothing launched after Ctrl-C"
    );
}

#[test]
fn auditors_record_plays_and_never_fail_them() {
    // An HTTPS server that plays the app's health endpoint and Slack's API; maestro is
    // given its CA in the check's requests_options and, for Slack, in REQUESTS_CA_BUNDLE.
    let ca = https::Ca::new();
    let tls = https::Server::start(Some(ca.issue(&["127.0.0.1"])), |r| match r.path.as_str() {
        "/ready" => (200, "ready".into()),
        _ => (200, r#"{"ok": true}"#.into()),
    });
    let tls_port = tls.port;
    // A webhook receiver on loopback, plain HTTP.
    let receiver = https::Server::start(None, |_| (204, String::new()));
    let hook = format!("127.0.0.1:{}", receiver.port);
    let yaml = format!(
        "__maestro: {{schema: 2}}
name: @NAME@
audit:
  - {{type: log, file: audit.log}}
  - {{type: http, endpoint: \"http://{hook}/hook\", payload: {{text: \"{{message}}\", who: \"{{who}}\"}}}}
  - {{type: exec, script: ./on-success.sh, args: \"{{action}}\"}}
  - {{type: http, endpoint: \"http://127.0.0.1:9/nobody\", timeout: 1}}
  - {{type: slack, channel: \"#ops\", token: xoxb-e2e, api_url: \"https://127.0.0.1:{tls_port}/api\"}}
@SHIPS@services:
  s:
    image: @IMAGE@
    lifecycle:
      running: [{{type: http, port: {tls_port}, scheme: https, path: /ready, max_wait: 10, requests_options: {{verify: ca.pem, headers: {{X-Probe: e2e}}, auth: [probe, pw]}}}}]
    instances:
      @NAME@-audited: {{ship: local, command: [sleep, \"60\"], stop_timeout: 1}}
"
    );
    let env = Env::new("audit", &yaml);
    std::fs::write(env.dir.join("ca.pem"), &ca.pem).unwrap();
    std::fs::write(
        env.dir.join("on-success.sh"),
        "#!/bin/sh\necho \"$1\" > exec-args.txt\ncat > exec-stdin.json\n",
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(env.dir.join("on-success.sh"))
        .status()
        .unwrap();
    let out = Command::new(maestro_bin())
        .arg("start")
        .current_dir(&env.dir)
        .env("USER", "auditor-test")
        .env("REQUESTS_CA_BUNDLE", env.dir.join("ca.pem"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "a failing auditor fails nothing: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("warning: http auditor"),
        "{}",
        text(&out)
    );

    let log = std::fs::read_to_string(env.dir.join("audit.log")).unwrap();
    let instance = env.c("audited");
    assert!(
        log.contains(&format!("INFO: auditor-test is starting {instance}.")),
        "{log}"
    );
    assert!(
        log.contains(&format!("INFO: Start of {instance} succeeded.")),
        "{log}"
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("POST", "/hook")
    );
    let body: serde_json::Value = serde_json::from_str(&requests[0].body).unwrap();
    assert_eq!(
        body["text"],
        format!("auditor-test is starting {instance}.")
    );
    assert_eq!(
        std::fs::read_to_string(env.dir.join("exec-args.txt"))
            .unwrap()
            .trim(),
        "start"
    );
    let stdin: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.dir.join("exec-stdin.json")).unwrap())
            .unwrap();
    assert_eq!(stdin[&instance]["service"], "s");
    assert_eq!(stdin[&instance]["ship"], "127.0.0.1");

    // The https check, with the headers and credentials of its requests_options.
    let seen = tls.requests();
    let probe = seen
        .iter()
        .find(|r| r.path == "/ready")
        .expect("the check ran");
    assert_eq!(probe.header("x-probe"), Some("e2e"));
    assert_eq!(probe.header("authorization"), Some("Basic cHJvYmU6cHc="));
    // Slack heard of the play's start and success, with the bot token.
    let texts: Vec<String> = seen
        .iter()
        .filter(|r| r.path == "/api/chat.postMessage")
        .map(|r| {
            assert_eq!(r.header("authorization"), Some("Bearer xoxb-e2e"));
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            body["attachments"][0]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        texts,
        [
            format!("auditor-test is starting {instance}."),
            format!("Start of {instance} succeeded."),
        ]
    );
}

/// A running maestro whose stdout and stderr are read as they come.
struct Running {
    child: std::process::Child,
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Running {
    fn spawn(env: &Env, args: &[&str]) -> Running {
        let mut child = Command::new(maestro_bin())
            .args(args)
            .current_dir(&env.dir)
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let read = |pipe: Box<dyn std::io::Read + Send>| {
            let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
            let into = text.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut text = into.lock().unwrap();
                    text.push_str(&line);
                    text.push('\n');
                }
            });
            text
        };
        let stdout = read(Box::new(child.stdout.take().unwrap()));
        let stderr = read(Box::new(child.stderr.take().unwrap()));
        Running {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits (10 s at most) until `what` holds of stdout and stderr.
    fn wait_for(&self, said: &str, what: impl Fn(&str, &str) -> bool) {
        let began = Instant::now();
        loop {
            let (out, err) = (
                self.stdout.lock().unwrap().clone(),
                self.stderr.lock().unwrap().clone(),
            );
            if what(&out, &err) {
                return;
            }
            assert!(
                began.elapsed() < Duration::from_secs(10),
                "waited for {said}\nstdout:\n{out}\nstderr:\n{err}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ctrl-C; the exit code.
    fn interrupt(mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap().code()
    }
}

#[test]
fn logs_follow_goes_on_across_restarts_and_new_containers() {
    // Each container says its own id (as its mounts name it) when it starts.
    let yaml = "__maestro: {schema: 2}
name: @NAME@
@SHIPS@services:
  s:
    image: @IMAGE@
    instances:
      @NAME@-first: {ship: local, stop_timeout: 1, command: [sh, -c, \"trap 'exit 0' TERM; echo hello from $(grep -oE 'containers/[0-9a-f]{12}' /proc/self/mountinfo | head -1 | cut -d/ -f2); sleep 60 & wait\"]}
      @NAME@-second: {ship: local, command: [sh, -c, \"echo three; sleep 1; echo four\"]}
";
    let env = Env::new("follow", yaml);
    assert!(env.maestro(&["start"]).status.success());
    let (first, second) = (env.c("first"), env.c("second"));
    let old = env.inspect("first", "{{.Id}}")[..12].to_owned();
    let follower = Running::spawn(&env, &["logs", "-F", &first, &second]);
    let width = first.len().max(second.len());
    let line = |name: &str, text: &str| format!("{name:width$} | {text}");
    follower.wait_for("both instances' output", |out, _| {
        out.contains(&line(&first, &format!("hello from {old}")))
            && out.contains(&line(&second, "four"))
    });
    // The second ends by itself; the follower says so and goes on.
    follower.wait_for("the end of the second", |_, err| {
        err.contains(&format!("{second}: container "))
            && err.contains(&format!(
                "ended (exit code 0); waiting for a container named {second}"
            ))
    });

    // A restart replaces the first instance's container: the new one is followed.
    let restart = env.maestro(&["restart", &first]);
    assert!(restart.status.success(), "{}", text(&restart));
    let new = env.inspect("first", "{{.Id}}")[..12].to_owned();
    assert_ne!(old, new);
    follower.wait_for("the new container's output", |out, err| {
        out.contains(&line(&first, &format!("hello from {new}")))
            && err.contains(&format!("{first}: following the new container {new}"))
    });
    // The same container started again: only what it says from then on.
    let restarted = Command::new("docker")
        .args(["restart", "-t", "1", &first])
        .output()
        .unwrap();
    assert!(restarted.status.success(), "{}", text(&restarted));
    follower.wait_for("the restarted container's output", |out, err| {
        out.matches(&line(&first, &format!("hello from {new}")))
            .count()
            == 2
            && err.contains(&format!(
                "{first}: container {new} started again; following it"
            ))
    });
    let err = follower.stderr.lock().unwrap().clone();
    let out = follower.stdout.lock().unwrap().clone();
    assert_eq!(follower.interrupt(), Some(130));
    assert!(
        err.contains(&format!("{first}: container {old} ended (exit code 0)")),
        "{err}"
    );
    // Nothing was shown twice.
    assert_eq!(
        out.matches(&line(&first, &format!("hello from {old}")))
            .count(),
        1,
        "{out}"
    );
    assert_eq!(out.matches(&line(&second, "three")).count(), 1, "{out}");
}

#[test]
fn status_full_probes_each_published_port() {
    let (open, silent) = (port(40), port(41));
    let yaml = format!(
        "__maestro: {{schema: 2}}
name: @NAME@
@SHIPS@services:
  s:
    image: @IMAGE@
    ports: {{web: \"7000:{open}\", admin: \"7001:{silent}\", stats: \"8125/udp\"}}
    lifecycle: {{running: [{{type: tcp, port: web, max_wait: 20}}]}}
    instances:
      @NAME@-s1: {{ship: local, stop_timeout: 1, command: [sh, -c, \"trap 'exit 0' TERM; nc -ll -p 7000 -e cat & wait\"]}}
      @NAME@-s2: {{ship: local}}
"
    );
    let env = Env::new("probes", &yaml);
    let started = env.maestro(&["start", &env.c("s1")]);
    assert!(started.status.success(), "{}", text(&started));
    let began = Instant::now();
    let out = env.maestro(&["status", "-F"]);
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "took {:?}",
        began.elapsed()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let row = lines
        .iter()
        .position(|l| l.starts_with(&env.c("s1")))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(lines[row].ends_with(", checks pass"), "{stdout}");
    let words = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(
        words(lines[row + 1])[..4],
        ["port", "web", &format!("{open}/tcp"), "up"],
        "{stdout}"
    );
    assert_eq!(
        words(lines[row + 2])[..4],
        ["port", "admin", &format!("{silent}/tcp"), "down:"],
        "{stdout}"
    );
    assert_eq!(
        words(lines[row + 3]),
        ["port", "stats", "8125/udp", "not", "probed", "(udp)"],
        "{stdout}"
    );
    // The instance without a container has nothing probed.
    assert!(
        lines[row + 4].starts_with(&env.c("s2")) && lines[row + 4].ends_with("absent"),
        "{stdout}"
    );
    assert_eq!(lines.len(), row + 5, "{stdout}");
    // A silent port is shown, not an error: the checks decide the exit status.
    assert!(out.status.success(), "{}", text(&out));

    let json = env.maestro(&["status", "-F", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let ports = &rows[0]["ports"];
    assert_eq!(ports[0]["state"], "up", "{ports}");
    assert_eq!(ports[1]["state"], "down", "{ports}");
    assert_eq!(ports[1]["port"], format!("{silent}/tcp"), "{ports}");
    assert_eq!(ports[2]["state"], "not probed", "{ports}");
    assert!(rows[1].get("ports").is_none(), "{rows}");
}

#[test]
fn selection_flags_reuse_and_plan() {
    let yaml = "__maestro: {schema: 2}
name: @NAME@
@SHIPS@services:
  db:
    image: @IMAGE@
    instances:
      @NAME@-db: {ship: local, command: [sh, -c, \"trap 'exit 0' TERM; sleep 60 & wait\"]}
  app:
    image: @IMAGE@
    requires: [db]
    instances:
      @NAME@-app: {ship: local, command: [sh, -c, \"trap 'exit 0' TERM; sleep 60 & wait\"]}
";
    let env = Env::new("flags", yaml);
    let (db, app) = (env.c("db"), env.c("app"));

    // Named alone, an instance is started alone.
    let out = env.maestro(&["start", &app]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(env.inspect("db", "{{.Id}}"), "", "db was not named");
    assert!(env.maestro(&["stop", "-a"]).status.success());
    assert!(env.maestro(&["clean"]).status.success());

    // -d brings what it depends on, first.
    let out = env.maestro(&["start", "-d", "-c", "1", &app]);
    assert!(out.status.success(), "{}", text(&out));
    let started = |i: &str| env.inspect(i, "{{.State.StartedAt}}");
    assert!(
        docker_time(&started("db")) <= docker_time(&started("app")),
        "{} then {}",
        started("db"),
        started("app")
    );

    // The plan of an unchanged environment touches nothing.
    let plan = env.maestro(&["plan"]);
    assert!(plan.status.success());
    assert_eq!(
        text(&plan).matches("running, up to date").count(),
        2,
        "{}",
        text(&plan)
    );

    // stop without names or -a is refused; with names and -i it stops just that one.
    let refused = env.maestro(&["stop"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("--all"), "{}", text(&refused));
    let out = env.maestro(&["stop", "-i", &db]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(env.inspect("db", "{{.State.Running}}"), "false");
    assert_eq!(env.inspect("app", "{{.State.Running}}"), "true");

    // --reuse starts the stopped container itself; without it a new one is created.
    let id = env.inspect("db", "{{.Id}}");
    let out = env.maestro(&["start", "--reuse", &db]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(env.inspect("db", "{{.Id}}"), id);
    assert!(env.maestro(&["stop", "-i", &db]).status.success());
    let plan = env.maestro(&["plan", &db]);
    assert!(text(&plan).contains("recreate"), "{}", text(&plan));
    assert!(env.maestro(&["start", &db]).status.success());
    assert_ne!(env.inspect("db", "{{.Id}}"), id);
}

#[test]
fn pull_of_an_unreachable_image_start_without_pulling_and_logs_tail() {
    // The registry of the second image is a loopback port where nothing listens, so the
    // daemon's pull fails at once without leaving this machine.
    let yaml = "__maestro: {schema: 2}
name: @NAME@
@SHIPS@services:
  here:
    image: @IMAGE@
    instances:
      @NAME@-here: {ship: local, command: [sh, -c, \"for i in 1 2 3 4 5; do echo line $i; done; trap 'exit 0' TERM; sleep 60 & wait\"]}
  nowhere:
    image: 127.0.0.1:9/maestro-e2e/absent:1
    instances:
      @NAME@-nowhere: {ship: local}
";
    let env = Env::new("pull", yaml);
    let here = env.c("here");
    // `pull` always pulls (MaestroNG's meaning; the loopback registry test pulls for
    // real); a present image is not pulled by start (--pull missing).
    let out = env.maestro(&["pull", &env.c("nowhere")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("cannot pull 127.0.0.1:9/maestro-e2e/absent:1"),
        "{}",
        text(&out)
    );

    let out = env.maestro(&["start", &here]);
    assert!(
        out.status.success() && !text(&out).contains("pull:"),
        "{}",
        text(&out)
    );
    std::thread::sleep(Duration::from_millis(300));
    let out = env.maestro(&["logs", "-n", "2", &here]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "line 4\nline 5\n",
        "{}",
        text(&out)
    );
}

/// The helper the ordering checks use: it must fail on what is not a time.
#[test]
fn docker_times_compare_as_times() {
    assert_eq!(docker_time("1970-01-01T00:00:00Z"), 0);
    assert_eq!(docker_time("1970-01-02T00:00:01.5Z"), 86_401_500_000_000);
    assert_eq!(docker_time("2000-03-01T00:00:00Z"), 951_868_800_000_000_000);
    assert!(docker_time("2026-12-02T12:00:05Z") < docker_time("2026-12-02T12:00:05.5Z"));
    for bad in [
        "",
        "0001-01-01T00:00:00Z",
        "2026-12-02 12:00:05",
        "2026-12-02T12:00Z",
    ] {
        assert!(
            std::panic::catch_unwind(|| docker_time(bad)).is_err(),
            "{bad:?}"
        );
    }
}
