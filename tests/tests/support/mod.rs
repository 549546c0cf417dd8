//! What the end-to-end test binaries share: the test image (Debian's static busybox,
//! FROM scratch, built here since no registry can be reached), the maestro binary, and
//! the removal of an environment's containers.

#![allow(dead_code, reason = "each test binary uses part of this module")]

pub mod proxy;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub const IMAGE: &str = "maestro-e2e/busybox:latest";

/// Builds the test image once per test binary; returns its name.
pub fn image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("the end-to-end tests need Debian's busybox-static (apt-get install busybox-static)");
        let dir = std::env::temp_dir().join(format!("maestro-e2e-image-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(busybox, dir.join("busybox")).unwrap();
        std::fs::write(
            dir.join("Dockerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
             RUN [\"/bin/busybox\", \"mkdir\", \"-m\", \"1777\", \"/tmp\"]\nENV PATH=/bin\nCMD [\"sh\"]\n",
        )
        .unwrap();
        let out = Command::new("docker").args(["build", "-q", "-t", IMAGE]).arg(&dir).output().expect("docker runs");
        assert!(out.status.success(), "docker build failed: {}", String::from_utf8_lossy(&out.stderr));
        let _ = std::fs::remove_dir_all(&dir);
    });
    IMAGE
}

pub const GUEST_IMAGE: &str = "maestro-e2e/guest:latest";
pub const GUEST_TLS_IMAGE: &str = "maestro-e2e/guest-tls:latest";

/// The static maestro-guest, built with the guest profile (with the `tls` feature in its
/// own target directory, target/guest-tls, as `.ci/run` builds it): the musl build, or,
/// where the musl target is missing, a static glibc build (the fallback ARCHITECTURE.md
/// describes). Brought up to date once per test binary (cheap when it is), so that the
/// suite never runs a guest older than its sources.
pub fn guest_binary(tls: bool) -> PathBuf {
    static BUILT: [OnceLock<PathBuf>; 2] = [OnceLock::new(), OnceLock::new()];
    BUILT[usize::from(tls)]
        .get_or_init(|| {
            let target = if tls {
                target_dir().join("guest-tls")
            } else {
                target_dir()
            };
            let build = |triple: &str, rustflags: &str| {
                let mut command = cargo_build("maestro-guest", "guest", &target);
                command.args(["--target", triple]);
                if tls {
                    command.args(["--features", "tls"]);
                }
                command.env("RUSTFLAGS", rustflags);
                command.status().is_ok_and(|s| s.success())
            };
            let triple = if build("x86_64-unknown-linux-musl", "") {
                "x86_64-unknown-linux-musl"
            } else {
                assert!(
                    build("x86_64-unknown-linux-gnu", "-C target-feature=+crt-static"),
                    "cannot build the static maestro-guest"
                );
                "x86_64-unknown-linux-gnu"
            };
            target.join(triple).join("guest").join("maestro-guest")
        })
        .clone()
}

/// `cargo build -q -p PACKAGE --profile PROFILE` into `target`, with the cargo that runs
/// the tests, in the environment cargo itself was started with: the variables cargo sets
/// for a test (`CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`...) would reach build scripts that
/// watch them (ring's does), and the build would then differ from the workspace's and
/// redo both every time.
fn cargo_build(package: &str, profile: &str, target: &Path) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    for (name, _) in std::env::vars_os() {
        let set_for_tests = name.to_str().is_some_and(|n| {
            n == "OUT_DIR"
                || [
                    "CARGO_MANIFEST_",
                    "CARGO_PKG_",
                    "CARGO_CRATE_",
                    "CARGO_BIN_",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                ]
                .iter()
                .any(|prefix| n.starts_with(prefix))
        });
        if set_for_tests {
            command.env_remove(name);
        }
    }
    command
        .args(["build", "-q", "-p", package, "--profile", profile])
        .env("CARGO_TARGET_DIR", target);
    command
}

/// The directory cargo builds into (the test binary is in <target>/<profile>/deps).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The test image with maestro-guest in it (FROM scratch: busybox and the guest), built
/// once per test binary; returns its name.
pub fn guest_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| build_guest_image(false, GUEST_IMAGE));
    GUEST_IMAGE
}

/// [`guest_image`] with the TLS-capable guest.
pub fn guest_tls_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| build_guest_image(true, GUEST_TLS_IMAGE));
    GUEST_TLS_IMAGE
}

fn build_guest_image(tls: bool, tag: &str) {
    let dir = std::env::temp_dir().join(format!("maestro-e2e-guest-{tls}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(guest_binary(tls), dir.join("maestro-guest")).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM {}\nCOPY maestro-guest /bin/maestro-guest\n", image()),
    )
    .unwrap();
    let out = Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(&dir)
        .output()
        .expect("docker runs");
    assert!(
        out.status.success(),
        "docker build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The maestro binary of this test build's profile (target/<profile>/maestro).
pub fn maestro_bin() -> PathBuf {
    built_beside("maestro")
}

/// The maestro-guest of this test build's profile (target/<profile>/maestro-guest).
pub fn guest_bin() -> PathBuf {
    built_beside("maestro-guest")
}

/// The binary of `package` in this test build's profile, brought up to date first, once
/// per test binary: a test of another package cannot depend on a binary target, so
/// `cargo test -p maestro-tests` alone would run a missing or stale one. Cheap when up to
/// date (the first time the guest's dependencies compile with the guest's own features).
fn built_beside(package: &'static str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<(&str, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, path)) = built.iter().find(|(p, _)| *p == package) {
        return path.clone();
    }
    // <target>/tmp, and this test at <target>[/<triple>]/<profile>/deps/<test>.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
        "debug" => "dev",
        other => other,
    };
    let mut build = cargo_build(package, profile, target);
    let above = profile_dir.parent().unwrap();
    if above.canonicalize().unwrap() != target.canonicalize().unwrap() {
        build.arg("--target").arg(above.file_name().unwrap());
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "cargo build -p {package} failed");
    let path = profile_dir.join(package);
    built.push((package, path.clone()));
    path
}

/// Removes every container of the environment `name`, with its anonymous volumes.
pub fn remove_environment(name: &str) {
    let label = format!("label=io.maestro.environment={name}");
    if let Ok(out) = Command::new("docker")
        .args(["ps", "-aq", "--filter", &label])
        .output()
    {
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f", "-v"])
                .args(&ids)
                .output();
        }
    }
}

/// A command's stdout and stderr together, for messages and assertions.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// One test's environment: a folder with its maestro.yaml, a unique name, and cleanup.
pub struct Env {
    pub name: String,
    pub dir: PathBuf,
}

impl Env {
    pub fn new(test: &str, yaml: &str) -> Env {
        let name = format!("e2e-{test}-{}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let env = Env {
            name: name.clone(),
            dir,
        };
        env.write(yaml);
        env
    }

    pub fn write(&self, yaml: &str) {
        // Checks and variables use the ship's address: loopback, so that test traffic
        // never leaves this machine.
        let ships = "ships: {local: {ip: 127.0.0.1, socket_path: /var/run/docker.sock}}\n";
        let text = yaml
            .replace("@NAME@", &self.name)
            .replace("@IMAGE@", image())
            .replace("@SHIPS@", ships);
        // The guest images are built only when a test uses them.
        let text = match text.contains("@GUEST_IMAGE@") {
            true => text.replace("@GUEST_IMAGE@", guest_image()),
            false => text,
        };
        let text = match text.contains("@GUEST_TLS_IMAGE@") {
            true => text.replace("@GUEST_TLS_IMAGE@", guest_tls_image()),
            false => text,
        };
        std::fs::write(self.dir.join("maestro.yaml"), text).unwrap();
    }

    pub fn maestro(&self, args: &[&str]) -> Output {
        Command::new(maestro_bin())
            .args(args)
            .current_dir(&self.dir)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }

    /// A container's name in this environment.
    pub fn c(&self, instance: &str) -> String {
        format!("{}-{instance}", self.name)
    }

    pub fn exec(&self, instance: &str, command: &str) -> String {
        let out = Command::new("docker")
            .args(["exec", &self.c(instance), "sh", "-c", command])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn inspect(&self, instance: &str, format: &str) -> String {
        let out = Command::new("docker")
            .args(["inspect", "-f", format, &self.c(instance)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        remove_environment(&self.name);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Host ports unique to this test process and test (`offset` below 100), all below
/// Linux's ephemeral range (32768 and up): a port there can be taken at any moment by
/// one of the many outgoing connections the tests make, and publishing it then fails.
pub fn port(offset: u16) -> u16 {
    assert!(offset < 100, "port offsets go from 0 to 99");
    10000 + (std::process::id() % 220) as u16 * 100 + offset
}

/// Nanoseconds since the epoch of a time Docker shows (`State.StartedAt`,
/// `State.FinishedAt`: RFC 3339 in UTC, with up to nine fraction digits, trailing zeros
/// dropped), so that times compare as times: as strings `…:05Z` sorts after `…:05.5Z`.
/// Panics on anything else, the zero time included (a container never started or never
/// stopped): a comparison must not pass because there was nothing to compare.
pub fn docker_time(text: &str) -> i128 {
    fn fail(text: &str) -> ! {
        panic!("not a time Docker gives a container that ran: {text:?}")
    }
    let (date, time) = text.split_once('T').unwrap_or_else(|| fail(text));
    let time = time.strip_suffix('Z').unwrap_or_else(|| fail(text));
    let number = |s: &str| s.parse::<i128>().unwrap_or_else(|_| fail(text));
    let date: Vec<i128> = date.split('-').map(number).collect();
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let clock: Vec<i128> = clock.split(':').map(number).collect();
    if date.len() != 3 || clock.len() != 3 || fraction.len() > 9 || date[0] < 1970 {
        fail(text);
    }
    let nanos = if fraction.is_empty() {
        0
    } else {
        number(fraction) * 10i128.pow(9 - fraction.len() as u32)
    };
    // Days since the epoch of a civil date (proleptic Gregorian).
    let (y, m, d) = (date[0] - i128::from(date[1] <= 2), date[1], date[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + clock[0]) * 60 + clock[1]) * 60 * 1_000_000_000 + clock[2] * 1_000_000_000 + nanos
}
