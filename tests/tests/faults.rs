//! Plays against an engine that misbehaves: the ship's `docker_port` is a proxy in front
//! of this machine's engine (support/proxy.rs) that delays, swallows, cuts, resets or
//! closes the requests each test picks. Whatever the fault, every play ends within its
//! bounds (the ship's `timeout: 1` makes a request's bound 3 s), every instance gets
//! exactly one outcome whose reason names the fault, and nothing is left of the
//! environment that maestro did not label, nor a container left created that maestro did
//! not report.
//!
//! Wall times are printed and asserted with a wide margin only: the point is "ends", not
//! "ends fast".

#![allow(
    clippy::print_stderr,
    reason = "each play's wall time is printed for whoever reads the test's output"
)]

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

mod support;

use support::proxy::{Fault, Proxy};
use support::{Env, text};

/// Far above every bound these plays can add up to (a few times 3 s), far below the
/// 600 s an unbounded request waited.
const PLAY_BOUND: Duration = Duration::from_secs(30);

/// Two instances on a ship reached through `proxy` with this `timeout`, each a shell that
/// ends on TERM.
fn environment(test: &str, proxy: &Proxy, timeout: u32) -> Env {
    let app = "[sh, -c, \"trap 'exit 0' TERM; sleep 600 & wait\"]";
    Env::new(
        test,
        &format!(
            "__maestro: {{schema: 2}}
name: @NAME@
ships: {{s: {{ip: 127.0.0.1, docker_port: {port}, timeout: {timeout}}}}}
services:
  app:
    image: @IMAGE@
    instances:
      @NAME@-a1: {{ship: s, command: {app}, stop_timeout: 1}}
      @NAME@-a2: {{ship: s, command: {app}, stop_timeout: 1}}
",
            port = proxy.port,
        ),
    )
}

/// A play's run: its exit code, each instance's outcomes (result and message), all of its
/// output for messages.
struct Run {
    code: Option<i32>,
    outcomes: HashMap<String, Vec<(String, String)>>,
    output: String,
}

impl Run {
    /// The one outcome of `instance`, which must have exactly one.
    fn outcome(&self, instance: &str) -> (&str, &str) {
        match self.outcomes.get(instance).map(Vec::as_slice) {
            Some([(result, message)]) => (result, message),
            other => panic!("{instance}: {other:?}\n{}", self.output),
        }
    }
}

/// Runs `maestro --json ARGS` (a play), timed; the outcomes of `play`'s rows.
fn play(env: &Env, proxy: &Proxy, play: &str, args: &[&str]) -> Run {
    let began = Instant::now();
    let out = env.maestro(&[&["--json"], args].concat());
    let took = began.elapsed();
    let output = format!("{}\nrequests: {:#?}", text(&out), proxy.seen());
    eprintln!("{} {args:?}: {took:.2?}", env.name);
    assert!(took < PLAY_BOUND, "took {took:?}: {output}");
    let mut outcomes: HashMap<String, Vec<(String, String)>> = HashMap::new();
    let mut current = String::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        match event["event"].as_str() {
            Some("began") => current = event["play"].as_str().unwrap_or("").to_owned(),
            Some("finished") if current == play => {
                outcomes
                    .entry(event["instance"].as_str().unwrap_or("").to_owned())
                    .or_default()
                    .push((
                        event["result"].as_str().unwrap_or("").to_owned(),
                        event["message"].as_str().unwrap_or("").to_owned(),
                    ));
            }
            _ => {}
        }
    }
    Run {
        code: out.status.code(),
        outcomes,
        output,
    }
}

/// `maestro status --json`, timed: each instance's state.
fn status(env: &Env) -> (Option<i32>, HashMap<String, String>, String) {
    let began = Instant::now();
    let out = env.maestro(&["--json", "status"]);
    let took = began.elapsed();
    eprintln!("{} status: {took:.2?}", env.name);
    assert!(took < PLAY_BOUND, "took {took:?}: {}", text(&out));
    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let states = rows
        .iter()
        .map(|r| {
            (
                r["instance"].as_str().unwrap_or("").to_owned(),
                r["state"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    (out.status.code(), states, text(&out))
}

/// What the engine has of the environment: name, state, environment label and role
/// label, for every container named after it or labelled with it.
fn left(env: &Env) -> Vec<(String, String, String, String)> {
    let mut found = Vec::new();
    for filter in [
        format!("name={}", env.name),
        format!("label=io.maestro.environment={}", env.name),
    ] {
        let out = Command::new("docker")
            .args([
                "ps",
                "-a",
                "--filter",
                &filter,
                "--format",
                "{{.Names}}\t{{.State}}\t{{.Label \"io.maestro.environment\"}}\t{{.Label \"io.maestro.role\"}}",
            ])
            .output()
            .unwrap();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let mut parts = line.split('\t').map(str::to_owned);
            let row = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            if !found.contains(&row) {
                found.push(row);
            }
        }
    }
    found
}

/// Nothing of the environment without maestro's labels, no lock left behind, and no
/// container left created unless the play's outcome for it said so.
fn nothing_unlabelled_or_half_made(env: &Env, run: &Run) {
    for (name, state, environment, role) in left(env) {
        assert_eq!(
            environment, env.name,
            "{name} is not labelled: {}",
            run.output
        );
        assert_ne!(role, "lock", "{name}: the lock was left: {}", run.output);
        if state == "created" {
            let (_, message) = run.outcome(&name);
            assert!(
                message.contains("left created"),
                "{name} was left created without a word: {message}"
            );
        }
    }
}

/// An engine that accepts connections and never answers anything: every instance fails
/// at once as unreachable (the ship's timeout bounds the connection), in every play.
#[test]
fn an_engine_that_never_answers() {
    let proxy = Proxy::start();
    proxy.fault(|_| true, Fault::Silent, None);
    let env = environment("faults-silent", &proxy, 1);
    let (a1, a2) = (env.c("a1"), env.c("a2"));
    for (name, args) in [("start", &["start"][..]), ("stop", &["stop", "-a"][..])] {
        let run = play(&env, &proxy, name, args);
        assert_eq!(run.code, Some(1), "{}", run.output);
        for instance in [&a1, &a2] {
            let (result, message) = run.outcome(instance);
            assert_eq!(result, "failed", "{message}");
            assert!(
                message.contains("ship s is unreachable")
                    && message.contains("no answer within 1.0s"),
                "{instance}: {message}"
            );
        }
        nothing_unlabelled_or_half_made(&env, &run);
    }
    let (code, states, output) = status(&env);
    assert_eq!(code, Some(1), "{output}");
    for instance in [&a1, &a2] {
        assert!(
            states[instance].contains("no answer within 1.0s"),
            "{output}"
        );
    }
}

/// The engine does what it is asked but its answer is lost: a create (the container
/// exists, maestro does not know its id), a start (it runs), a stop (it stopped). Each is
/// given up after its bound, said so, and what the engine made is not left half-made.
#[test]
fn answers_lost_after_the_engine_acted() {
    let proxy = Proxy::start();
    let env = environment("faults-lost", &proxy, 1);
    let (a1, a2) = (env.c("a1"), env.c("a2"));
    // a1's create and a2's start.
    let create_a1 = format!("POST /containers/create?name={a1}");
    proxy.fault(move |l| l.starts_with(&create_a1), Fault::Lost, Some(1));
    proxy.fault(
        |l| l.starts_with("POST /containers/") && l.contains("/start"),
        Fault::Lost,
        Some(1),
    );
    let run = play(&env, &proxy, "start", &["start"]);
    assert_eq!(run.code, Some(1), "{}", run.output);
    let (result, message) = run.outcome(&a1);
    assert_eq!(result, "failed", "{message}");
    assert!(
        message.contains(&format!("ship s: create of {a1} got no answer within 3s"))
            && message.contains("the engine had created it all the same")
            && message.contains("removed"),
        "{message}"
    );
    let (result, message) = run.outcome(&a2);
    assert_eq!(result, "failed", "{message}");
    assert!(
        message.contains("created but not started: ship s: start of ")
            && message.contains("got no answer within 3s; removed"),
        "{message}"
    );
    nothing_unlabelled_or_half_made(&env, &run);
    assert!(left(&env).is_empty(), "{:?}", left(&env));

    // Started for real, then a stop whose answer is lost: bounded by the grace period
    // and a request's bound (1 + 3 s); the engine stopped it all the same.
    proxy.clear();
    let run = play(&env, &proxy, "start", &["start"]);
    assert_eq!(run.code, Some(0), "{}", run.output);
    proxy.fault(|l| l.contains("/stop"), Fault::Lost, None);
    let run = play(&env, &proxy, "stop", &["stop", "-a"]);
    assert_eq!(run.code, Some(1), "{}", run.output);
    for short in ["a1", "a2"] {
        let (result, message) = run.outcome(&env.c(short));
        assert_eq!(result, "failed", "{message}");
        assert!(
            message.contains("ship s: stop of ") && message.contains("got no answer within 4s"),
            "{short}: {message}"
        );
        assert_eq!(env.inspect(short, "{{.State.Running}}"), "false");
    }
    nothing_unlabelled_or_half_made(&env, &run);
}

/// Answers cut in the middle of their body, a connection reset, a connection closed: the
/// first two of a1's inspect and the list; a2's create reset; then a start closed.
#[test]
fn answers_cut_reset_or_closed() {
    let proxy = Proxy::start();
    let env = environment("faults-cut", &proxy, 1);
    let (a1, a2) = (env.c("a1"), env.c("a2"));
    // `start` lists the ship's containers first; with that list cut it knows nothing and
    // looks at each instance, as it would without a list.
    proxy.fault(
        |l| l.starts_with("GET /containers/json"),
        Fault::Cut,
        Some(1),
    );
    let inspect_a1 = format!("GET /containers/{a1}/json");
    proxy.fault(move |l| l.starts_with(&inspect_a1), Fault::Cut, Some(1));
    let create_a2 = format!("POST /containers/create?name={a2}");
    proxy.fault(move |l| l.starts_with(&create_a2), Fault::Reset, Some(1));
    let run = play(&env, &proxy, "start", &["start"]);
    assert_eq!(run.code, Some(1), "{}", run.output);
    let (result, message) = run.outcome(&a1);
    assert_eq!(result, "failed", "{message}");
    assert!(
        message.contains(&format!("ship s: inspect of {a1} got no answer within 3s")),
        "{message}"
    );
    let (result, message) = run.outcome(&a2);
    assert_eq!(result, "failed", "{message}");
    assert!(
        message.contains("cannot create the container") && message.contains("reset"),
        "{message}"
    );
    nothing_unlabelled_or_half_made(&env, &run);
    assert!(left(&env).is_empty(), "{:?}", left(&env));

    // The list status reads, cut.
    proxy.fault(
        |l| l.starts_with("GET /containers/json"),
        Fault::Cut,
        Some(1),
    );
    let (code, states, output) = status(&env);
    assert_eq!(code, Some(1), "{output}");
    for instance in [&a1, &a2] {
        assert!(
            states[instance].contains("containers got no answer within 3s"),
            "{output}"
        );
    }

    // A start closed unanswered (never forwarded): the container is not left created.
    proxy.clear();
    proxy.fault(|l| l.contains("/start"), Fault::Drop, None);
    let run = play(&env, &proxy, "start", &["start"]);
    assert_eq!(run.code, Some(1), "{}", run.output);
    for instance in [&a1, &a2] {
        let (result, message) = run.outcome(instance);
        assert_eq!(result, "failed", "{message}");
        assert!(
            message.contains("created but not started")
                && message.contains("closed")
                && message.ends_with("removed"),
            "{instance}: {message}"
        );
    }
    nothing_unlabelled_or_half_made(&env, &run);
    assert!(left(&env).is_empty(), "{:?}", left(&env));
}

/// Every request a little late, well within its bounds (2 s to connect, 6 s a request,
/// so that a loaded machine's own slowness adds no failure): nothing fails.
#[test]
fn delays_within_the_bounds_change_nothing() {
    let proxy = Proxy::start();
    proxy.fault(|_| true, Fault::Delay(Duration::from_millis(300)), None);
    let env = environment("faults-delay", &proxy, 2);
    for (name, args) in [("start", &["start"][..]), ("stop", &["stop", "-a"][..])] {
        let run = play(&env, &proxy, name, args);
        assert_eq!(run.code, Some(0), "{}", run.output);
        for instance in [env.c("a1"), env.c("a2")] {
            let (result, message) = run.outcome(&instance);
            assert_eq!(result, "done", "{instance}: {message}");
        }
    }
    let (code, states, output) = status(&env);
    assert_eq!(code, Some(0), "{output}");
    assert!(states.values().all(|s| s.starts_with("down")), "{output}");
}
