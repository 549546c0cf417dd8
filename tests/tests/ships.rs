//! Ships reached four ways in one environment, against this machine's engine: its unix
//! socket, plain TCP (socat), TLS with client certificates made here (socat's OpenSSL
//! listener, which requires them), and SSH through Debian's openssh-server on a loopback
//! port with a test key. Everything listens on 127.0.0.1 only, and is stopped when the
//! test ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::text;

use support::{IMAGE, image, maestro_bin};

/// Processes this test started; killed when it ends.
struct Daemons(Vec<Child>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn run(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a certificate it signs for `name` (`server` for 127.0.0.1, or `client`).
fn certificates(dir: &Path, ca: &str, name: &str) {
    if !dir.join(format!("{ca}.pem")).exists() {
        run(
            dir,
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
                "-days",
                "1",
                "-subj",
                &format!("/CN={ca}"),
            ],
        );
    }
    let ext = if name.starts_with("server") {
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
    } else {
        "extendedKeyUsage=clientAuth\n"
    };
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    run(
        dir,
        "openssl",
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    run(
        dir,
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "1",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Fixture {
    dir: PathBuf,
    name: String,
    _daemons: Daemons,
    tcp: u16,
    tls: u16,
    ssh: u16,
}

fn fixture(test: &str) -> Fixture {
    image();
    let name = format!("e2e-{test}-{}", std::process::id());
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    certificates(&dir, "ca", "server");
    certificates(&dir, "ca", "client");
    certificates(&dir, "other-ca", "server-other");
    let mut daemons = Daemons(Vec::new());
    let spawn = |daemons: &mut Daemons, program: &str, args: &[String]| {
        let child = Command::new(program)
            .args(args)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e} (apt-get install socat openssh-server)"));
        daemons.0.push(child);
    };

    let tcp = free_port();
    spawn(
        &mut daemons,
        "socat",
        &[
            format!("TCP-LISTEN:{tcp},bind=127.0.0.1,reuseaddr,fork,backlog=1024"),
            "UNIX-CONNECT:/var/run/docker.sock".into(),
        ],
    );
    let tls = free_port();
    spawn(
        &mut daemons,
        "socat",
        &[
            format!(
                "OPENSSL-LISTEN:{tls},bind=127.0.0.1,reuseaddr,fork,backlog=1024,cert=server.pem,key=server.key,cafile=ca.pem,verify=1"
            ),
            "UNIX-CONNECT:/var/run/docker.sock".into(),
        ],
    );

    let ssh = free_port();
    run(
        &dir,
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "", "-f", "host_key"],
    );
    run(
        &dir,
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "", "-f", "id"],
    );
    std::fs::copy(dir.join("id.pub"), dir.join("authorized_keys")).unwrap();
    std::fs::write(
        dir.join("sshd_config"),
        format!(
            "Port {ssh}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys\n\
             StrictModes no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             UsePAM no\nAllowStreamLocalForwarding yes\nAllowTcpForwarding yes\n",
            d = dir.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    spawn(
        &mut daemons,
        "/usr/sbin/sshd",
        &[
            "-D".into(),
            "-e".into(),
            "-f".into(),
            dir.join("sshd_config").display().to_string(),
        ],
    );
    for port in [tcp, tls, ssh] {
        wait_for_port(port);
    }
    Fixture {
        dir,
        name,
        _daemons: daemons,
        tcp,
        tls,
        ssh,
    }
}

impl Fixture {
    fn write(&self, yaml: &str) {
        std::fs::write(self.dir.join("maestro.yaml"), yaml).unwrap();
    }

    fn maestro(&self, args: &[&str]) -> Output {
        Command::new(maestro_bin())
            .args(args)
            .current_dir(&self.dir)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }

    fn running(&self, instance: &str) -> String {
        let out = Command::new("docker")
            .args([
                "inspect",
                "-f",
                "{{.State.Running}}",
                &format!("{}-{instance}", self.name),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        support::remove_environment(&self.name);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn four_ships_four_ways() {
    let f = fixture("ways");
    let n = &f.name;
    let app = "[sh, -c, \"trap 'exit 0' TERM; sleep 600 & wait\"]";
    f.write(&format!(
        "__maestro: {{schema: 2}}
name: {n}
ships:
  socket: {{ip: 127.0.0.1, socket_path: /var/run/docker.sock}}
  tcp: {{ip: 127.0.0.1, docker_port: {tcp}}}
  tls: {{ip: 127.0.0.1, docker_port: {tls}, tls: true, tls_verify: true, tls_ca_cert: ca.pem, tls_cert: client.pem, tls_key: client.key}}
  ssh:
    ip: 127.0.0.1
    ssh_tunnel: {{user: {user}, key: id, port: {ssh}, known_hosts: known_hosts, accept_new_host_key: true}}
services:
  s:
    image: {IMAGE}
    instances:
      {n}-via-socket: {{ship: socket, command: {app}}}
      {n}-via-tcp: {{ship: tcp, command: {app}}}
      {n}-via-tls: {{ship: tls, command: {app}}}
      {n}-via-ssh: {{ship: ssh, command: {app}}}
",
        tcp = f.tcp,
        tls = f.tls,
        ssh = f.ssh,
        user = user(),
    ));
    let out = f.maestro(&["start"]);
    assert!(out.status.success(), "{}", text(&out));
    for way in ["socket", "tcp", "tls", "ssh"] {
        assert_eq!(
            f.running(&format!("via-{way}")),
            "true",
            "{way}: {}",
            text(&out)
        );
    }
    // The SSH ship's host key was accepted and remembered.
    assert!(f.dir.join("known_hosts").exists());

    let status = f.maestro(&["status"]);
    assert!(status.status.success(), "{}", text(&status));
    assert_eq!(
        text(&status).matches("running").count(),
        4,
        "{}",
        text(&status)
    );

    // While a play holds the TLS and SSH ways open, nothing on this machine listens for
    // them: each is a unix socket in a directory only this user can enter.
    let mut follow = std::process::Command::new(support::maestro_bin())
        .args(["-f", "maestro.yaml", "logs", "-F"])
        .arg(format!("{n}-via-tls"))
        .arg(format!("{n}-via-ssh"))
        .current_dir(&f.dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = follow.id();
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let private = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&base)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&format!("maestro-{pid}-")))
            })
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while private()
        .iter()
        .filter(|d| d.join("engine.sock").exists())
        .count()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no private sockets: {:?}",
            private()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for dir in private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
    }
    let listening = listening_tcp_sockets_of(pid);
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(
        listening.is_empty(),
        "maestro or its ssh listen on TCP: {listening:?}"
    );

    let stop = f.maestro(&["stop", "-a"]);
    assert!(stop.status.success(), "{}", text(&stop));
    for way in ["socket", "tcp", "tls", "ssh"] {
        assert_eq!(f.running(&format!("via-{way}")), "false", "{way}");
    }
}

#[test]
fn tls_trusts_only_the_given_ca_and_ssh_checks_host_keys() {
    let f = fixture("trust");
    let n = &f.name;
    // The engine's certificate is signed by `ca`; this ship trusts only `other-ca`.
    f.write(&format!(
        "__maestro: {{schema: 2}}
name: {n}
ships:
  wrong-ca: {{ip: 127.0.0.1, docker_port: {tls}, tls: true, tls_verify: true, tls_ca_cert: other-ca.pem, tls_cert: client.pem, tls_key: client.key}}
  no-client-cert: {{ip: 127.0.0.1, docker_port: {tls}, tls: true, tls_verify: true, tls_ca_cert: ca.pem}}
  unknown-host:
    ip: 127.0.0.1
    ssh_tunnel: {{user: {user}, key: id, port: {ssh}, known_hosts: empty_known_hosts}}
services:
  s:
    image: {IMAGE}
    instances:
      {n}-a: {{ship: wrong-ca}}
      {n}-b: {{ship: no-client-cert}}
      {n}-c: {{ship: unknown-host}}
",
        tls = f.tls,
        ssh = f.ssh,
        user = user(),
    ));
    std::fs::write(f.dir.join("empty_known_hosts"), "").unwrap();
    let out = f.maestro(&["start"]);
    let output = text(&out);
    assert_eq!(out.status.code(), Some(1), "{output}");
    assert!(
        output.contains("ship wrong-ca is unreachable")
            && output.contains("not signed by tls_ca_cert"),
        "{output}"
    );
    assert!(
        output.contains("ship no-client-cert is unreachable"),
        "{output}"
    );
    assert!(
        output.contains("ship unknown-host is unreachable")
            && output.contains("Host key verification failed"),
        "{output}"
    );
    for instance in ["a", "b", "c"] {
        assert_eq!(f.running(instance), "", "{instance} was never created");
    }
}

/// The listening TCP sockets (`/proc/net/tcp*` entries in state LISTEN) held by `pid` or
/// its children, by inode.
fn listening_tcp_sockets_of(pid: u32) -> Vec<String> {
    let mut pids = vec![pid.to_string()];
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid ...
        let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
        if after.split_whitespace().nth(1) == Some(&pid.to_string()) {
            pids.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    let mut inodes = Vec::new();
    for p in &pids {
        for fd in std::fs::read_dir(format!("/proc/{p}/fd"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let target = target.to_string_lossy().into_owned();
                if let Some(inode) = target
                    .strip_prefix("socket:[")
                    .and_then(|t| t.strip_suffix(']'))
                {
                    inodes.push(inode.to_owned());
                }
            }
        }
    }
    let mut listening = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
        {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address rem_address st ... inode is the tenth field.
            if fields.get(3) == Some(&"0A")
                && fields.get(9).is_some_and(|i| inodes.iter().any(|n| n == i))
            {
                listening.push(format!("{} (inode {})", fields[1], fields[9]));
            }
        }
    }
    listening
}
