//! `maestro-guest run` as a process on this machine: exit statuses, signals and the grace
//! period, the ready timeout, and an app that runs on when the controller is gone. (In
//! containers, with the controller, see tests/tests/guest.rs.)

use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_maestro-guest");

fn guest(args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn run(args: &[&str], vars: &[(&str, &str)]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = guest(args, vars).output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

#[test]
fn the_exit_status_is_the_apps() {
    let cases: &[(&[&str], i32)] = &[
        (&["run", "--", "sh", "-c", "exit 0"], 0),
        (&["run", "--", "sh", "-c", "exit 7"], 7),
        (&["run", "--", "sh", "-c", "kill -KILL $$"], 137),
        (&["run", "--", "/nonexistent/app"], 127),
        (&["run", "--ready-when", "sleep:1", "--", "true"], 2),
        (&["run", "--wait", "zookeeper", "--", "true"], 2),
    ];
    for (args, code) in cases {
        let (status, _, stderr) = run(args, &[]);
        assert_eq!(status, *code, "{args:?}: {stderr}");
    }
}

#[test]
fn output_passes_through_and_a_failure_names_the_code() {
    let (status, stdout, stderr) = run(
        &["run", "--", "sh", "-c", "echo out; echo err >&2; exit 3"],
        &[],
    );
    assert_eq!(status, 3);
    assert_eq!(stdout, "out\n");
    assert!(stderr.contains("err\n"), "{stderr}");
    assert!(
        stderr.contains("maestro-guest: the app exited with code 3"),
        "{stderr}"
    );
}

#[test]
fn a_stop_signal_is_forwarded_and_the_grace_period_ends_in_a_kill() {
    // The app announces itself, ignores TERM, and would run for 30 s.
    let mut child = guest(
        &[
            "run",
            "--grace",
            "1",
            "--",
            "sh",
            "-c",
            "trap 'echo got TERM' TERM; echo up; while :; do sleep 0.05; done",
        ],
        &[],
    )
    .spawn()
    .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 3];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    assert_eq!(&first, b"up\n");
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    // The app saw TERM (forwarded), survived it, and was killed after the grace period.
    assert!(rest.contains("got TERM"), "{rest}");
    assert_eq!(status.code(), Some(137));
}

#[test]
fn an_app_not_ready_in_time_is_reported_and_keeps_running() {
    let (status, stdout, stderr) = run(
        &[
            "run",
            "--ready-when",
            "file:/nonexistent/ready",
            "--ready-timeout",
            "1",
            "--",
            "sh",
            "-c",
            "sleep 1.5; echo still here",
        ],
        &[],
    );
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(stdout, "still here\n");
    assert!(
        stderr.contains(
            "the app was not ready within 1s (/nonexistent/ready did not appear); it keeps running"
        ),
        "{stderr}"
    );
}

#[test]
fn the_app_runs_on_when_the_controller_is_gone() {
    // A port nobody listens on: the play that gave these variables is over.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let (status, stdout, stderr) = run(
        &["run", "--", "sh", "-c", "echo working"],
        &[
            ("MAESTRO_READINESS_ENDPOINT", &endpoint),
            (
                "MAESTRO_READINESS_TOKEN",
                "0123456789abcdef0123456789abcdef",
            ),
            ("CONTAINER_NAME", "app-1"),
        ],
    );
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(stdout, "working\n");
    assert!(stderr.contains("no longer listens"), "{stderr}");
}

#[test]
fn notify_needs_a_socket_and_health_a_running_guest() {
    let (status, _, stderr) = run(&["notify", "READY=1"], &[]);
    assert_eq!(status, 1);
    assert!(stderr.contains("NOTIFY_SOCKET is not set"), "{stderr}");
    let (status, _, stderr) = run(&["health"], &[("CONTAINER_NAME", "nobody-here")]);
    assert_eq!(status, 1);
    assert!(
        stderr.contains("no answer from 'maestro-guest run'"),
        "{stderr}"
    );
    // Inside run, the app sees NOTIFY_SOCKET, and health answers from run's state.
    let (status, stdout, stderr) = run(
        &[
            "run",
            "--ready-when",
            "notify",
            "--",
            "sh",
            "-c",
            &format!("{BIN} health; {BIN} notify READY=1 && {BIN} health"),
        ],
        &[("CONTAINER_NAME", "notify-test")],
    );
    assert_eq!(status, 0, "{stderr}");
    assert!(stderr.contains("not ready: starting"), "{stderr}");
    assert!(stdout.ends_with("ready\n"), "{stdout}");
}
