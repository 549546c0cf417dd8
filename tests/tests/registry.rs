//! Pulls from a private registry with credentials: Debian's docker-registry with htpasswd
//! authentication on a loopback port, the test image pushed to it first. Credentials from
//! `registries:`, from the Docker config, none, and a wrong password; the password never
//! shows in maestro's output.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{maestro_bin, text};

const USER: &str = "tester";
const PASSWORD: &str = "s3cret-pass-Zq9";
const WRONG: &str = "wrong-pass-Xk2";

fn run(dir: &Path, program: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

struct Registry {
    dir: PathBuf,
    port: u16,
    daemon: Child,
    image: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        let _ = Command::new("docker")
            .args(["rmi", "-f", &self.image])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn registry() -> Registry {
    let dir = std::env::temp_dir().join(format!("maestro-e2e-registry-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("storage")).unwrap();
    let hash = run(&dir, "htpasswd", &["-Bbn", USER, PASSWORD], None);
    std::fs::write(dir.join("htpasswd"), hash.stdout).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.join("config.yml"),
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {d}/storage\nhttp:\n  addr: 127.0.0.1:{port}\n\
             auth:\n  htpasswd:\n    realm: maestro-test\n    path: {d}/htpasswd\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let daemon = Command::new("/usr/bin/docker-registry")
        .args(["serve", "config.yml"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry (apt-get install docker-registry)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the registry did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let image = format!("127.0.0.1:{port}/e2e/busybox:pushed");
    let registry = Registry {
        dir,
        port,
        daemon,
        image,
    };

    // The test image, pushed with a Docker config of the test's own.
    support::image();
    let config = registry.dir.join("dockercfg").display().to_string();
    run(
        &registry.dir,
        "docker",
        &["tag", "maestro-e2e/busybox:latest", &registry.image],
        None,
    );
    run(
        &registry.dir,
        "docker",
        &[
            "--config",
            &config,
            "login",
            "-u",
            USER,
            "--password-stdin",
            &format!("127.0.0.1:{port}"),
        ],
        Some(PASSWORD),
    );
    run(
        &registry.dir,
        "docker",
        &["--config", &config, "push", &registry.image],
        None,
    );
    run(&registry.dir, "docker", &["rmi", &registry.image], None);
    registry
}

fn has_image(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", image])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn pulls_with_credentials_and_says_clearly_when_they_are_wrong() {
    let r = registry();
    let env_file = |registries: &str| {
        format!(
            "__maestro: {{schema: 2}}\nname: e2e-registry\nregistries: {registries}\nships: {{local: {{ip: 127.0.0.1, socket_path: /var/run/docker.sock}}}}\n\
             services:\n  s:\n    image: {}\n    instances:\n      e2e-registry-1: {{ship: local}}\n",
            r.image
        )
    };
    let pull = |yaml: String, docker_config: Option<&Path>| -> Output {
        std::fs::write(r.dir.join("maestro.yaml"), yaml).unwrap();
        let home = r.dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut command = Command::new(maestro_bin());
        command
            .args(["pull"])
            .current_dir(&r.dir)
            .env("HOME", &home)
            .env_remove("DOCKER_CONFIG");
        if let Some(config) = docker_config {
            command.env("DOCKER_CONFIG", config);
        }
        command.output().unwrap()
    };
    let registry_entry = |password: &str| {
        format!(
            "{{private: {{registry: \"http://127.0.0.1:{}\", username: {USER}, password: \"{password}\"}}}}",
            r.port
        )
    };

    // Without credentials: refused, and said so.
    let out = pull(env_file("{}"), None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("refused access without credentials"),
        "{}",
        text(&out)
    );

    // A wrong password: refused, naming the registry and the user.
    let out = pull(env_file(&registry_entry(WRONG)), None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let message = format!(
        "authentication with registry private (http://127.0.0.1:{}) as {USER} failed",
        r.port
    );
    assert!(text(&out).contains(&message), "{}", text(&out));
    assert!(
        !text(&out).contains(WRONG),
        "the password shows: {}",
        text(&out)
    );
    assert!(!has_image(&r.image));

    // The right one, from the environment: the tag is resolved once and pulled by its
    // digest (what every ship of the play would pull), then tagged.
    let out = pull(env_file(&registry_entry(PASSWORD)), None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !text(&out).contains(PASSWORD),
        "the password shows: {}",
        text(&out)
    );
    assert!(has_image(&r.image));
    let pinned = format!("as 127.0.0.1:{}/e2e/busybox@sha256:", r.port);
    assert!(text(&out).contains(&pinned), "{}", text(&out));

    // From the user's Docker config (where `docker login` put it).
    run(&r.dir, "docker", &["rmi", &r.image], None);
    let out = pull(env_file("{}"), Some(&r.dir.join("dockercfg")));
    assert!(out.status.success(), "{}", text(&out));
    assert!(has_image(&r.image));

    // From the credential helper the Docker config names (`credsStore`), found on the
    // PATH and given the registry's address, as `docker login` with a store leaves it.
    run(&r.dir, "docker", &["rmi", &r.image], None);
    let bin = r.dir.join("bin");
    let store = r.dir.join("storecfg");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(
        store.join("config.json"),
        r#"{"auths": {}, "credsStore": "maestro-e2e"}"#,
    )
    .unwrap();
    let script = bin.join("docker-credential-maestro-e2e");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nread server\necho \"$1 $server\" >> {log}\n\
             echo '{{\"ServerURL\": \"'$server'\", \"Username\": \"{USER}\", \"Secret\": \"{PASSWORD}\"}}'\n",
            log = r.dir.join("helper.log").display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    std::fs::write(r.dir.join("maestro.yaml"), env_file("{}")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(maestro_bin())
        .args(["pull"])
        .current_dir(&r.dir)
        .env("HOME", r.dir.join("home"))
        .env("DOCKER_CONFIG", &store)
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains(PASSWORD), "{}", text(&out));
    assert!(has_image(&r.image));
    // Asked once, for this registry, although the play both resolves and pulls.
    let asked = std::fs::read_to_string(r.dir.join("helper.log")).unwrap();
    assert_eq!(asked.trim(), format!("get 127.0.0.1:{}", r.port));
}
