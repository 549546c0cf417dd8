//! End-to-end tests of maestro-guest inside real containers (FROM scratch: busybox and the
//! static guest) with the controller serving the readiness handshake: rendered configs,
//! readiness and failure pushed to the controller, refused tokens, signals and reaping,
//! and sd_notify.

use std::process::Command;

mod support;

use support::{Env, port, text};

/// The plain-output line of an instance's outcome.
fn outcome_line<'a>(output: &'a str, instance: &str) -> &'a str {
    output
        .lines()
        .rfind(|l| l.contains(instance))
        .unwrap_or_else(|| panic!("no line for {instance} in:\n{output}"))
}

#[test]
fn a_dependent_renders_its_dependency_nodes_and_both_report_ready_by_handshake() {
    let zk_port = port(11);
    let yaml = format!(
        "__maestro: {{schema: 2}}
name: @NAME@
@SHIPS@services:
  zookeeper:
    image: @GUEST_IMAGE@
    ports: {{client: \"2181:{zk_port}\"}}
    instances:
      @NAME@-zk-1:
        ship: local
        command: [maestro-guest, run, --ready-when, \"tcp:client\", --, httpd, -f, -p, \"2181\"]
  app:
    image: @GUEST_IMAGE@
    requires: [zookeeper]
    instances:
      @NAME@-app-1:
        ship: local
        volumes: {{@DIR@/templates: /templates}}
        command: [maestro-guest, run, --render, \"/templates/app.conf.j2:/tmp/app.conf\", --ready-when, \"file:/tmp/app.conf\", --, sh, -c, \"cat /tmp/app.conf; exec sleep 3600\"]
",
    );
    let env = Env::new("guest-chain", &yaml);
    env.write(&yaml.replace("@DIR@", &env.dir.display().to_string()));
    std::fs::create_dir_all(env.dir.join("templates")).unwrap();
    std::fs::write(
        env.dir.join("templates/app.conf.j2"),
        "# {{ container() }} of {{ service() }}\n\
         {% for node in nodes('zookeeper', ports=['client']) %}zookeeper={{ node }}\n{% endfor %}",
    )
    .unwrap();

    let out = env.maestro(&["start"]);
    let output = text(&out);
    assert!(out.status.success(), "{output}");
    // Both became ready through the handshake, not through a polling check (neither has
    // any check configured, and without a report maestro says readiness is unknown).
    for instance in ["zk-1", "app-1"] {
        let line = outcome_line(&output, &env.c(instance));
        assert!(line.contains("ready after"), "{line}\n{output}");
    }
    // The dependent's config lists its dependency's node with the published port.
    let logs = Command::new("docker")
        .args(["logs", &env.c("app-1")])
        .output()
        .unwrap();
    let logs = text(&logs);
    assert!(
        logs.contains(&format!("# {} of app", env.c("app-1"))),
        "{logs}"
    );
    assert!(
        logs.contains(&format!("zookeeper=127.0.0.1:{zk_port}")),
        "{logs}"
    );
    // The token and endpoint were injected for the play only: not part of the definition,
    // so a second start finds nothing changed.
    let again = env.maestro(&["start"]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("already running"), "{}", text(&again));
}

#[test]
fn a_crash_at_start_fails_the_play_with_the_exit_code_and_last_lines_from_the_guest() {
    let yaml = "__maestro: {schema: 2}
name: @NAME@
@SHIPS@services:
  broken:
    image: @GUEST_IMAGE@
    instances:
      @NAME@-broken-1:
        ship: local
        command: [maestro-guest, run, --ready-when, \"tcp:9\", --, sh, -c, \"echo loading config; echo 'fatal: /etc/app.conf: no such file' >&2; exit 4\"]
  after:
    image: @GUEST_IMAGE@
    requires: [broken]
    instances:
      @NAME@-after-1: {ship: local, command: [sleep, \"3600\"]}
";
    let env = Env::new("guest-crash", yaml);
    let out = env.maestro(&["start"]);
    let output = text(&out);
    assert!(!out.status.success(), "{output}");
    // The reason comes from the guest's report (the polling path words it differently).
    assert!(
        output.contains("maestro-guest: the app exited with code 4 before it was ready"),
        "{output}"
    );
    assert!(
        output.contains("fatal: /etc/app.conf: no such file"),
        "{output}"
    );
    assert!(output.contains("loading config"), "{output}");
    // Its dependent was not started.
    assert_eq!(env.inspect("after-1", "{{.State.Status}}"), "", "{output}");
}

#[test]
fn a_report_with_a_wrong_token_is_refused() {
    // The image says it runs maestro-guest (through a shell, hence the label), so maestro
    // waits for its word; the shell replaces the token.
    let yaml = "__maestro: {schema: 2}
name: @NAME@
@SHIPS@services:
  forger:
    image: @GUEST_IMAGE@
    instances:
      @NAME@-forger-1:
        ship: local
        labels: {io.maestro.guest: \"1\"}
        command: [sh, -c, \"MAESTRO_READINESS_TOKEN=00000000000000000000000000000000 exec maestro-guest run -- sleep 3600\"]
";
    let env = Env::new("guest-token", yaml);
    let out = env.maestro(&["start"]);
    let output = text(&out);
    // The forged report decides nothing (anyone could send one): readiness unknown.
    assert!(out.status.success(), "{output}");
    assert!(
        outcome_line(&output, &env.c("forger-1"))
            .contains("readiness unknown: maestro-guest's reports were refused (unknown token"),
        "{output}"
    );
    let logs = Command::new("docker")
        .args(["logs", &env.c("forger-1")])
        .output()
        .unwrap();
    assert!(
        text(&logs).contains("refused the report: unknown token"),
        "{}",
        text(&logs)
    );
}

#[test]
fn sigterm_is_forwarded_and_orphans_are_reaped() {
    // The app leaves an orphan behind (a grandchild whose parent exits at once), then
    // waits; TERM makes it say so and exit 0.
    let yaml = "__maestro: {schema: 2}
name: @NAME@
@SHIPS@services:
  app:
    image: @GUEST_IMAGE@
    instances:
      @NAME@-app-1:
        ship: local
        stop_timeout: 20
        command: [maestro-guest, run, --, sh, -c, \"trap 'echo app got TERM; exit 0' TERM; sh -c 'sleep 0.3 &'; sleep 3600 & wait\"]
";
    let env = Env::new("guest-signals", yaml);
    let out = env.maestro(&["start"]);
    assert!(out.status.success(), "{}", text(&out));
    // The orphan's sleep ends after 0.3 s; PID 1 (the guest) must have reaped it.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let ps = env.exec("app-1", "ps -o pid,stat,comm");
    assert!(
        !ps.lines().any(|l| l
            .split_whitespace()
            .nth(1)
            .is_some_and(|s| s.starts_with('Z'))),
        "a zombie is left:\n{ps}"
    );
    assert_eq!(
        env.exec("app-1", "cat /proc/1/cmdline | tr '\\0' ' '")
            .split_whitespace()
            .next(),
        Some("maestro-guest")
    );

    let out = env.maestro(&["stop", "-a"]);
    assert!(out.status.success(), "{}", text(&out));
    // Forwarded: the app's trap ran and its code is the container's. Without forwarding
    // Docker would have killed it after stop_timeout (exit code 137).
    assert_eq!(env.inspect("app-1", "{{.State.ExitCode}}"), "0");
    let logs = Command::new("docker")
        .args(["logs", &env.c("app-1")])
        .output()
        .unwrap();
    assert!(text(&logs).contains("app got TERM"), "{}", text(&logs));
}

#[test]
fn an_sd_notify_ready_reaches_the_controller() {
    let yaml = "__maestro: {schema: 2}
name: @NAME@
@SHIPS@services:
  notified:
    image: @GUEST_IMAGE@
    instances:
      @NAME@-notified-1:
        ship: local
        username: \"4242\"
        command: [maestro-guest, run, --ready-when, notify, --, sh, -c, \"sleep 0.4; maestro-guest notify STATUS=warmed READY=1; exec sleep 3600\"]
  dependent:
    image: @GUEST_IMAGE@
    requires: [notified]
    instances:
      @NAME@-dependent-1: {ship: local, command: [maestro-guest, run, --, sleep, \"3600\"]}
";
    let env = Env::new("guest-notify", yaml);
    let out = env.maestro(&["start"]);
    let output = text(&out);
    assert!(out.status.success(), "{output}");
    let line = outcome_line(&output, &env.c("notified-1"));
    let took: f64 = line
        .split("ready after ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    // Ready came from READY=1, sent after the app's 0.4 s of work.
    assert!(took >= 400.0 || line.contains(" s"), "{line}");
    let health = Command::new("docker")
        .args(["exec", &env.c("notified-1"), "maestro-guest", "health"])
        .output()
        .unwrap();
    assert!(health.status.success(), "{}", text(&health));
    assert_eq!(String::from_utf8_lossy(&health.stdout).trim(), "ready");
}

#[test]
fn over_tls_the_guest_reports_to_the_pinned_certificate_only() {
    // One instance reports over TLS; the other was given another pin, so the controller's
    // certificate is refused, nothing reaches the controller, and maestro says so.
    let yaml = "__maestro: {schema: 2}
name: @NAME@
@SHIPS@services:
  secure:
    image: @GUEST_TLS_IMAGE@
    instances:
      @NAME@-secure-1:
        ship: local
        command: [maestro-guest, run, --, sleep, \"3600\"]
  misled:
    image: @GUEST_TLS_IMAGE@
    instances:
      @NAME@-misled-1:
        ship: local
        labels: {io.maestro.guest: \"1\"}
        command: [sh, -c, \"MAESTRO_READINESS_CERT_SHA256=0000000000000000000000000000000000000000000000000000000000000000 exec maestro-guest run -- sleep 3600\"]
";
    let env = Env::new("guest-tls", yaml);
    let out = env.maestro(&["--readiness-tls", "start"]);
    let output = text(&out);
    assert!(out.status.success(), "{output}");
    assert!(
        outcome_line(&output, &env.c("secure-1")).contains("ready after"),
        "{output}"
    );
    let misled = outcome_line(&output, &env.c("misled-1"));
    assert!(misled.contains("readiness unknown"), "{output}");
    assert!(misled.contains("https://"), "{output}");
    let logs = Command::new("docker")
        .args(["logs", &env.c("misled-1")])
        .output()
        .unwrap();
    assert!(
        text(&logs).contains("not the one maestro pinned"),
        "{}",
        text(&logs)
    );
}

#[test]
fn the_guest_needs_no_writable_file_system_and_no_particular_user() {
    // A read-only root, an arbitrary UID: the notify and health sockets are abstract.
    let out = Command::new("docker")
        .args(["run", "--rm", "--read-only", "--user", "31337:31337"])
        .args(["-e", "CONTAINER_NAME=ro-test", support::guest_image()])
        .args(["maestro-guest", "run", "--ready-when", "notify", "--"])
        .args([
            "sh",
            "-c",
            "id -u; maestro-guest notify READY=1 && maestro-guest health",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "31337\nready\n");
}
