//! Auditors through the `maestro` binary, with no Docker: a play against a ship where
//! nothing listens fails at once, and is audited all the same. The Slack API and the
//! webhook are a local HTTPS server made here, whose CA maestro is given the way Python
//! requests is given one: REQUESTS_CA_BUNDLE.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

#[path = "../src/http/testing.rs"]
mod testing;

use testing::{Ca, Recorded, Server};

const TOKEN: &str = "xoxb-e2e-secret";

fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("maestro-audit-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `maestro start` in `dir`, as user alice, with `env` besides PATH and HOME.
fn start(dir: &Path, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_maestro"))
        .args(["-f", "maestro.yaml", "start"])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", "/home/test")
        .env("USER", "alice")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn environment(port: u16) -> String {
    format!(
        "__maestro: {{schema: 2}}
name: t
ships: {{dead: {{ip: 127.0.0.1, docker_port: 9, timeout: 2}}}}
audit:
  - {{type: slack, channel: \"#ops\", token: {TOKEN}, name: deploys, api_url: \"https://127.0.0.1:{port}/api\"}}
  - {{type: http, endpoint: \"https://127.0.0.1:{port}/hook\", payload: {{text: \"{{message}}\"}}}}
  - {{type: log, file: audit.log, level: debug}}
services:
  db: {{image: busybox, instances: {{db-1: {{ship: dead}}}}}}
  app: {{image: busybox, requires: [db], instances: {{app-1: {{ship: dead}}}}}}
"
    )
}

fn slack_text(request: &Recorded) -> String {
    let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
    body["attachments"][0]["text"].as_str().unwrap().to_owned()
}

#[test]
fn a_failed_play_is_posted_to_slack_and_an_https_webhook() {
    let ca = Ca::new();
    let server = Server::start(Some(ca.issue(&["127.0.0.1"])), |r| match r.path.as_str() {
        "/api/chat.postMessage" => (200, r#"{"ok": true}"#.into()),
        _ => (204, String::new()),
    });
    let dir = folder("slack");
    std::fs::write(dir.join("maestro.yaml"), environment(server.port)).unwrap();
    std::fs::write(dir.join("ca.pem"), &ca.pem).unwrap();
    let bundle = dir.join("ca.pem").display().to_string();
    let out = start(&dir, &[("REQUESTS_CA_BUNDLE", &bundle)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(!stderr.contains("auditor"), "{stderr}");

    let seen = server.wait_for(4, Duration::from_secs(5));
    let (slack, hook): (Vec<&Recorded>, Vec<&Recorded>) =
        seen.iter().partition(|r| r.path.starts_with("/api/"));
    // The play's start, the failed instance (failures always go out), the play's failure;
    // the instance that was not run has no event.
    let texts: Vec<String> = slack.iter().map(|r| slack_text(r)).collect();
    let unreachable =
        "ship dead is unreachable: tcp://127.0.0.1:9: Connection refused (os error 111)";
    assert_eq!(
        texts,
        [
            "alice is starting db-1, app-1.".to_owned(),
            format!("Failed to start db-1! (message: {unreachable})"),
            format!("Failed to start db-1, app-1! (message: {unreachable})"),
        ]
    );
    for request in &slack {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
        assert_eq!(body["channel"], "#ops");
        assert_eq!(body["username"], "deploys");
    }
    // The webhook (level info) hears of the play's start only.
    assert_eq!(hook.len(), 1);
    assert_eq!(hook[0].method, "POST");
    assert_eq!(hook[0].path, "/hook");
    assert_eq!(hook[0].body, r#"{"text":"alice is starting db-1, app-1."}"#);

    let log = std::fs::read_to_string(dir.join("audit.log")).unwrap();
    // Made for the operator alone: the log names what was done where, and when.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.join("audit.log"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "audit.log mode {mode:o}");
    let lines: Vec<&str> = log.lines().map(|l| &l[20..]).collect();
    assert_eq!(
        lines,
        [
            "INFO: alice is starting db-1, app-1.",
            "DEBUG: alice is starting db-1.",
            &format!("ERROR: Failed to start db-1! (message: {unreachable})"),
            &format!("ERROR: Failed to start db-1, app-1! (message: {unreachable})"),
        ]
    );
    for text in [&stdout, &stderr, &std::borrow::Cow::Borrowed(log.as_str())] {
        assert!(!text.contains(TOKEN), "{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_its_ca_an_https_auditor_is_a_warning_naming_the_host() {
    let ca = Ca::new();
    let server = Server::start(Some(ca.issue(&["127.0.0.1"])), |_| {
        (200, r#"{"ok": true}"#.into())
    });
    let dir = folder("untrusted");
    std::fs::write(dir.join("maestro.yaml"), environment(server.port)).unwrap();
    let out = start(&dir, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let tls = "TLS: the certificate of 127.0.0.1 is not signed by a CA maestro trusts (UnknownIssuer; trusted: the system's CA certificates";
    // The endpoints' paths are not shown: a webhook's path is often its credential.
    let endpoint = format!("https://127.0.0.1:{}/<redacted>", server.port);
    assert!(
        stderr.contains(&format!("warning: slack auditor: {endpoint}: {tls}")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("warning: http auditor: POST {endpoint}: {tls}")),
        "{stderr}"
    );
    // The play's start, the instance's failure and the play's failure each tried.
    assert_eq!(
        stderr.matches("warning: slack auditor").count(),
        3,
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("warning: http auditor").count(),
        1,
        "{stderr}"
    );
    assert!(server.requests().is_empty());
    assert!(!stderr.contains(TOKEN), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
