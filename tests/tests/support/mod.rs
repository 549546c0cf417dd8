//! What the end-to-end test binaries share: the test image (Debian's static busybox,
//! FROM scratch, built here since no registry can be reached), the maestro binary, and
//! the removal of an environment's containers.

#![allow(dead_code, reason = "each test binary uses part of this module")]

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
