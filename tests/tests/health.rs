//! End-to-end tests of `healthcheck:` against the real Docker engine of this machine: a
//! start waits for the engine to call the container healthy, and an unhealthy container
//! fails its start with the check's output. Same conventions as `docker.rs`: the image is
//! built here from scratch, names are unique per test process, containers are removed at
//! the end even on failure.

use std::process::Command;
use std::time::{Duration, Instant};

mod support;

use support::{Env, text};

/// The engine's API version, as `(major, minor)`.
fn engine_api() -> (u32, u32) {
    let out = Command::new("docker")
        .args(["version", "-f", "{{.Server.APIVersion}}"])
        .output()
        .expect("docker runs");
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (major, minor) = version.split_once('.').expect("an API version");
    (major.parse().unwrap(), minor.parse().unwrap())
}

#[test]
fn start_waits_for_healthy() {
    let yaml = "__maestro: {schema: 2}
name: @NAME@
@SHIPS@services:
  db:
    image: @IMAGE@
    healthcheck: {test: \"test -f /tmp/ok\", interval: 200ms, retries: 20, start_interval: 100ms}
    instances:
      @NAME@-db: {ship: local, command: [sh, -c, \"sleep 1; cut -d' ' -f1 /proc/uptime > /tmp/ok; exec sleep 60\"], stop_timeout: 1}
  app:
    image: @IMAGE@
    requires: [db]
    instances:
      @NAME@-app: {ship: local, command: [sh, -c, \"cut -d' ' -f1 /proc/uptime > /tmp/started; exec sleep 60\"], stop_timeout: 1}
";
    let env = Env::new("healthy", yaml);
    let began = Instant::now();
    let out = env.maestro(&["start"]);
    let output = text(&out);
    assert!(out.status.success(), "{output}");
    assert!(began.elapsed() >= Duration::from_secs(1), "{output}");
    assert!(output.contains("started, healthy"), "{output}");
    // Healthy when start returned, and the dependent started only after the check could
    // pass (both read the machine's uptime).
    assert_eq!(
        env.inspect("db", "{{.State.Health.Status}}"),
        "healthy",
        "{output}"
    );
    let uptime = |instance: &str, file: &str| -> f64 {
        env.exec(instance, &format!("cat /tmp/{file}"))
            .parse()
            .unwrap_or_else(|_| panic!("{instance} has /tmp/{file}"))
    };
    let (ok_at, app_started) = (uptime("db", "ok"), uptime("app", "started"));
    assert!(
        app_started >= ok_at,
        "app started at {app_started}, before db could be healthy at {ok_at}"
    );
    // The durations reached Docker in nanoseconds.
    assert_eq!(
        env.inspect("db", "{{.Config.Healthcheck.Interval}}"),
        "200ms"
    );
    assert_eq!(
        env.inspect("db", "{{json .Config.Healthcheck.Test}}"),
        "[\"CMD-SHELL\",\"test -f /tmp/ok\"]"
    );
    // start_interval needs API 1.44: an older engine gets the container without it and
    // the user a warning naming the ship, the engine's version and the field.
    let (major, minor) = engine_api();
    if (major, minor) < (1, 44) {
        assert!(
            output.contains(&format!(
                "ship local: its engine speaks Docker API {major}.{minor}, and healthcheck.start_interval needs 1.44"
            )),
            "{output}"
        );
    } else {
        assert_eq!(
            env.inspect("db", "{{.Config.Healthcheck.StartInterval}}"),
            "100ms"
        );
    }
}

#[test]
fn an_unhealthy_container_fails_its_start_with_the_check_output() {
    let yaml = "__maestro: {schema: 2}
name: @NAME@
@SHIPS@services:
  db:
    image: @IMAGE@
    healthcheck: {test: \"echo the database is not accepting connections; exit 1\", interval: 500ms, retries: 1}
    instances:
      @NAME@-db: {ship: local, command: [sleep, \"60\"], stop_timeout: 1}
  app:
    image: @IMAGE@
    requires: [db]
    instances:
      @NAME@-app: {ship: local, command: [sleep, \"60\"], stop_timeout: 1}
";
    let env = Env::new("unhealthy", yaml);
    let began = Instant::now();
    let out = env.maestro(&["start"]);
    let output = text(&out);
    assert_eq!(out.status.code(), Some(1), "{output}");
    assert!(began.elapsed() < Duration::from_secs(20), "{output}");
    assert!(output.contains("unhealthy"), "{output}");
    assert!(
        output.contains("the database is not accepting connections"),
        "{output}"
    );
    assert!(output.contains("not run: waits for"), "{output}");
    assert_eq!(env.inspect("app", "{{.Id}}"), "", "never created");
    assert_eq!(env.inspect("db", "{{.State.Health.Status}}"), "unhealthy");
}
