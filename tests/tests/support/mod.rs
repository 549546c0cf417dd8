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
/// describes). Built here if neither exists yet.
pub fn guest_binary(tls: bool) -> PathBuf {
    let target = if tls {
        target_dir().join("guest-tls")
    } else {
        target_dir()
    };
    let built = |triple: &str| target.join(triple).join("guest").join("maestro-guest");
    for triple in ["x86_64-unknown-linux-musl", "x86_64-unknown-linux-gnu"] {
        if built(triple).exists() {
            return built(triple);
        }
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = |triple: &str, rustflags: &str| {
        let mut command = Command::new(&cargo);
        command.args([
            "build",
            "-q",
            "-p",
            "maestro-guest",
            "--profile",
            "guest",
            "--target",
            triple,
        ]);
        if tls {
            command.args(["--features", "tls"]);
        }
        command
            .env("RUSTFLAGS", rustflags)
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .is_ok_and(|s| s.success())
    };
    if build("x86_64-unknown-linux-musl", "") {
        return built("x86_64-unknown-linux-musl");
    }
    assert!(
        build("x86_64-unknown-linux-gnu", "-C target-feature=+crt-static"),
        "cannot build the static maestro-guest"
    );
    built("x86_64-unknown-linux-gnu")
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

/// The maestro binary cargo built beside the test binary (target/<profile>/maestro).
pub fn maestro_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("maestro");
    assert!(
        bin.exists(),
        "{} not built (cargo build -p maestro)",
        bin.display()
    );
    bin
}

/// The maestro-guest of this test build's profile (target/<profile>/maestro-guest), brought
/// up to date first. A test of another package cannot depend on a binary target, and
/// `cargo test -p maestro-tests` alone would run a missing or stale guest, so cargo builds
/// it, once per test binary: cheap when up to date (only the first time does it compile
/// the guest's dependencies with the guest's own features, as in its release builds).
pub fn guest_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            // <target>/tmp, and this test at <target>[/<triple>]/<profile>/deps/<test>.
            let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
            let exe = std::env::current_exe().unwrap();
            let profile_dir = exe.parent().unwrap().parent().unwrap();
            let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
                "debug" => "dev",
                other => other,
            };
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = Command::new(cargo);
            build
                .args(["build", "-q", "-p", "maestro-guest", "--profile", profile])
                .env("CARGO_TARGET_DIR", target);
            let above = profile_dir.parent().unwrap();
            if above.canonicalize().unwrap() != target.canonicalize().unwrap() {
                build.arg("--target").arg(above.file_name().unwrap());
            }
            let status = build.status().expect("cargo runs");
            assert!(status.success(), "cargo build -p maestro-guest failed");
            profile_dir.join("maestro-guest")
        })
        .clone()
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
