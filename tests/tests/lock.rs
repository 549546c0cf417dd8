//! End-to-end tests of `maestro lock status|release` against the real Docker engine, with
//! lock containers made here with the docker CLI the way maestro makes them (the name
//! `maestro-lock.<env>.<ship>`, the labels, `/heartbeat`), so that what maestro reads is
//! checked against the scheme rather than against itself.

use std::io::Write;
use std::process::{Command, Output, Stdio};

mod support;

use support::{Env, maestro_bin, text};

/// An empty image for the test's lock containers (a lock's image is never looked at),
/// imported here and removed when the test ends, after its containers.
struct EmptyImage(String);

impl EmptyImage {
    /// One per test: tests run in parallel, and one's drop must not remove another's.
    fn import(test: &str) -> EmptyImage {
        let tag = format!("maestro-e2e/lock:{test}-{}", std::process::id());
        let mut child = Command::new("docker")
            .args(["import", "-", &tag])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("docker runs");
        // 10240 zero bytes: a valid empty tar.
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&[0u8; 10240])
            .unwrap();
        assert!(child.wait().unwrap().success(), "docker import failed");
        EmptyImage(tag)
    }
}

impl Drop for EmptyImage {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", &self.0]).output();
    }
}

fn docker(args: &[&str]) -> Output {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {}", text(&out));
    out
}

fn lock_name(env: &Env, ship: &str) -> String {
    format!("maestro-lock.{}.{ship}", env.name)
}

/// Makes a lock container on `ship` held by `user@host`, pid `pid`, taken at `since`.
fn lock(env: &Env, image: &EmptyImage, ship: &str, who: (&str, &str, u32), since: &str) {
    let (user, host, pid) = who;
    let name = lock_name(env, ship);
    let labels = [
        format!("io.maestro.environment={}", env.name),
        format!("io.maestro.ship={ship}"),
        "io.maestro.role=lock".to_owned(),
        format!("io.maestro.lock.user={user}"),
        format!("io.maestro.lock.host={host}"),
        format!("io.maestro.lock.pid={pid}"),
        "io.maestro.lock.pid-start=12345".to_owned(),
        "io.maestro.lock.command=maestro start -a".to_owned(),
        format!("io.maestro.lock.since={since}"),
    ];
    let mut args = vec!["create", "--name", &name];
    for label in &labels {
        args.extend(["--label", label]);
    }
    args.extend([image.0.as_str(), "maestro-lock"]);
    docker(&args);
}

/// Writes `/heartbeat` into a lock container, as its holder does.
fn beat(env: &Env, ship: &str, at: &str) {
    let file = env.dir.join("heartbeat");
    std::fs::write(&file, format!("{at}\n")).unwrap();
    docker(&[
        "cp",
        file.to_str().unwrap(),
        &format!("{}:/heartbeat", lock_name(env, ship)),
    ]);
}

fn exists(name: &str) -> bool {
    Command::new("docker")
        .args(["inspect", name])
        .output()
        .unwrap()
        .status
        .success()
}

fn now() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `maestro ARGS` as user `tester`, so that "ours" is known.
fn maestro(env: &Env, args: &[&str]) -> Output {
    Command::new(maestro_bin())
        .args(args)
        .current_dir(&env.dir)
        .env("NO_COLOR", "1")
        .env("USER", "tester")
        .output()
        .unwrap()
}

const YAML: &str = "__maestro: {schema: 2}
name: @NAME@
ships:
  local: {ip: 127.0.0.1, socket_path: /var/run/docker.sock}
  other: {ip: 127.0.0.1, socket_path: /var/run/docker.sock}
services:
  s:
    image: @IMAGE@
    instances:
      @NAME@-one: {ship: local}
";

#[test]
fn status_shows_who_holds_each_ships_lock() {
    let image = EmptyImage::import("status");
    let env = Env::new("lock-status", YAML);

    let out = maestro(&env, &["lock", "status"]);
    assert!(out.status.success(), "{}", text(&out));
    let free: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        free,
        [
            format!("local {} free", lock_name(&env, "local")),
            format!("other {} free", lock_name(&env, "other")),
        ]
    );

    // Taken long ago, but its heartbeat is fresh: alive.
    lock(
        &env,
        &image,
        "local",
        ("alice", "elsewhere", 4242),
        "2000-01-01T00:00:00Z",
    );
    beat(&env, "local", &now());
    // Taken long ago, never a heartbeat: stale.
    lock(
        &env,
        &image,
        "other",
        ("bob", "elsewhere", 7),
        "2000-01-01T00:00:00Z",
    );
    let out = maestro(&env, &["lock", "status"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout.contains(
            "held by alice@elsewhere (pid 4242, \"maestro start -a\") since \
             2000-01-01T00:00:00Z; alive, last heartbeat "
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("stale: held by bob@elsewhere")
            && stdout.contains("no heartbeat for ")
            && stdout.contains(" days (stale after 60 s)"),
        "{stdout}"
    );

    let out = maestro(&env, &["--json", "lock", "status", "-S", "loc*"]);
    assert!(out.status.success(), "{}", text(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["ship"], "local");
    assert_eq!(rows[0]["state"], "held");
    assert_eq!(rows[0]["holder"]["user"], "alice");
    assert_eq!(rows[0]["holder"]["pid"], 4242);

    let out = maestro(&env, &["lock", "status", "-S", "nope*"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("no ship matches \"nope*\"; the ships are: local, other"),
        "{}",
        text(&out)
    );
}

#[test]
fn release_removes_stale_and_own_dead_locks_and_the_rest_only_with_force() {
    let image = EmptyImage::import("release");
    let env = Env::new("lock-release", YAML);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned();
    // A process of this host that has ended.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();

    // Ours (tester@this host), its process ended: released without --force.
    lock(&env, &image, "other", ("tester", &host, dead_pid), &now());
    // Someone else's, alive: kept without --force.
    lock(&env, &image, "local", ("alice", "elsewhere", 4242), &now());
    let out = maestro(&env, &["lock", "release"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains(&format!(
            "ship other: removed the lock of tester@{host} (pid {dead_pid}, \"maestro start -a\")"
        )) && all.contains("(process ended)"),
        "{all}"
    );
    assert!(
        all.contains("error: ship local: kept the lock of alice@elsewhere")
            && all.contains("its play may still run")
            && all.contains("`maestro lock release --force -S local` removes it anyway"),
        "{all}"
    );
    assert!(!exists(&lock_name(&env, "other")));
    assert!(exists(&lock_name(&env, "local")));

    // Someone else's whose process ended on this host: not ours, so kept.
    lock(&env, &image, "other", ("bob", &host, dead_pid), &now());
    let out = maestro(&env, &["lock", "release", "-S", "other"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("its process ended, but it is not yours"),
        "{}",
        text(&out)
    );

    let out = maestro(&env, &["lock", "release", "--force"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!exists(&lock_name(&env, "local")) && !exists(&lock_name(&env, "other")));
    let out = maestro(&env, &["lock", "release"]);
    assert!(
        out.status.success() && text(&out).contains("ship local: no lock"),
        "{}",
        text(&out)
    );

    // A container that merely has the name is never removed, even with --force.
    docker(&[
        "create",
        "--name",
        &lock_name(&env, "local"),
        "--label",
        &format!("io.maestro.environment={}", env.name),
        &image.0,
        "x",
    ]);
    let out = maestro(&env, &["lock", "release", "--force", "-S", "local"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("is not a maestro lock"),
        "{}",
        text(&out)
    );
    assert!(exists(&lock_name(&env, "local")));
    // Env's drop removes the environment's containers, then the image goes.
}
