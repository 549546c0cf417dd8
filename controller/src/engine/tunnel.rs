//! Ways to a ship's engine that are not a plain socket: TLS and SSH. Each gives a local
//! unix socket that leads to the engine, so the Docker client speaks plain HTTP to it and
//! the transport's own checks (certificates, host keys) live here, where their errors can
//! be told clearly. The socket is in a directory only this user can enter (0700), made
//! for the one play and removed with it: a way to the engine carries the operator's
//! client certificate or SSH identity, which no other local user may borrow (a loopback
//! TCP port would let any of them in).
//!
//! TLS: with `tls_verify`, only the given CA is trusted (not the system's store) and the
//! server's name must match the ship's endpoint; without it the connection is encrypted
//! but not verified, which is said once. SSH: the system `ssh` forwards a local port to
//! the engine's socket (or to `docker_port` on the ship, as MaestroNG did), with host
//! key checking on; one connection per ship serves a whole play.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use maestro_core::model::Ship;

/// A local unix socket leading to a ship's engine; closing it (drop) ends the way there
/// and removes its directory.
pub struct Tunnel {
    pub socket: PathBuf,
    // Dropped first: the listener or ssh ends before its directory goes.
    _guard: Guard,
    _dir: PrivateDir,
}

/// A directory that only this user can enter, removed on drop.
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn new() -> Result<PrivateDir, String> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        // Created, never reused: a name another user made first is an error, not a way in.
        for attempt in 0..16u32 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let dir = base.join(format!(
                "maestro-{}-{nanos:08x}{attempt}",
                std::process::id()
            ));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {
                    remove_stale(&base, &dir);
                    return Ok(PrivateDir(dir));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(format!(
                        "cannot make a private directory in {}: {e}",
                        base.display()
                    ));
                }
            }
        }
        Err(format!(
            "cannot make a private directory in {}",
            base.display()
        ))
    }

    fn socket(&self) -> PathBuf {
        self.0.join("engine.sock")
    }
}

/// Removes the private directories a killed maestro of this user left in `base` (their
/// process is gone), so they do not pile up.
fn remove_stale(base: &Path, mine: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(me) = std::fs::metadata(mine).map(|m| m.uid()) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("maestro-"))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let path = entry.path();
        let ours = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir() && m.uid() == me);
        if ours && path != mine && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

enum Guard {
    Task(tokio::task::JoinHandle<()>),
    Process(
        #[allow(dead_code, reason = "held so that dropping the tunnel kills ssh")]
        tokio::process::Child,
    ),
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Guard::Task(task) = self {
            task.abort();
        }
    }
}

/// A path from the environment file: `~/` is the user's home, a relative path is relative
/// to the file's folder.
fn resolve(base_dir: &Path, path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => base_dir.join(path),
    }
}

fn host(ship: &Ship) -> &str {
    ship.endpoint.as_deref().unwrap_or(&ship.ip)
}

/// Opens a TLS way to the ship's engine, after one handshake that proves it works.
pub async fn tls(ship: &Ship, base_dir: &Path, wait: Duration) -> Result<Tunnel, String> {
    let mut config = tls_config(ship, base_dir)?;
    // Every request opens its own connection; some TLS servers (forking ones, such as
    // socat's) refuse resumed sessions with a fatal alert, so each is a full handshake.
    config.resumption = rustls::client::Resumption::disabled();
    let config = Arc::new(config);
    let server_name = ServerName::try_from(host(ship).to_owned())
        .map_err(|_| format!("{} is not a valid server name", host(ship)))?;
    let port = ship.docker_port.unwrap_or(2376);
    let address = format!("{}:{port}", host(ship));
    let connector = TlsConnector::from(config);

    // One handshake now, so that a wrong certificate is reported as such.
    let stream = timeout(wait, TcpStream::connect(&address))
        .await
        .map_err(|_| {
            format!(
                "tcp://{address}: no answer within {:.1}s",
                wait.as_secs_f64()
            )
        })?
        .map_err(|e| format!("tcp://{address}: {e}"))?;
    timeout(wait, connector.connect(server_name.clone(), stream))
        .await
        .map_err(|_| {
            format!(
                "{address}: no TLS handshake within {:.1}s",
                wait.as_secs_f64()
            )
        })?
        .map_err(|e| format!("TLS with {address} failed: {}", explain(&e)))?;

    let dir = PrivateDir::new()?;
    let socket = dir.socket();
    let listener = UnixListener::bind(&socket).map_err(|e| format!("{}: {e}", socket.display()))?;
    let task = tokio::spawn(async move {
        // Each connection's copy is owned here: closing the tunnel aborts them all.
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            while connections.try_join_next().is_some() {}
            let connector = connector.clone();
            let server_name = server_name.clone();
            let address = address.clone();
            connections.spawn(async move {
                let Ok(stream) = TcpStream::connect(&address).await else {
                    return;
                };
                let Ok(mut outbound) = connector.connect(server_name, stream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    Ok(Tunnel {
        socket,
        _guard: Guard::Task(task),
        _dir: dir,
    })
}

/// A rustls error in words: certificate problems say which certificate is wrong.
fn explain(e: &std::io::Error) -> String {
    let text = e.to_string();
    if text.contains("UnknownIssuer") {
        "the ship's certificate is not signed by tls_ca_cert (UnknownIssuer)".into()
    } else if text.contains("NotValidForName") {
        "the ship's certificate is not valid for its endpoint's name (NotValidForName)".into()
    } else {
        text
    }
}

fn tls_config(ship: &Ship, base_dir: &Path) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if ship.tls_verify {
        let ca = ship.tls_ca_cert.as_deref().ok_or_else(|| {
            format!(
                "ship {} has tls_verify but no tls_ca_cert: maestro trusts only the CA you give",
                ship.name
            )
        })?;
        let mut roots = RootCertStore::empty();
        for cert in certificates(&resolve(base_dir, ca))? {
            roots.add(cert).map_err(|e| format!("{ca}: {e}"))?;
        }
        builder.with_root_certificates(roots)
    } else {
        crate::output::eprint(&format!(
            "warning: ship {}: TLS without tls_verify: the connection is encrypted but the engine is not verified\n",
            ship.name
        ));
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(crate::http::AnyCertificate(provider)))
    };
    match (&ship.tls_cert, &ship.tls_key) {
        (Some(cert), Some(key)) => {
            let chain = certificates(&resolve(base_dir, cert))?;
            let key_path = resolve(base_dir, key);
            let key = PrivateKeyDer::from_pem_file(&key_path)
                .map_err(|e| format!("{}: not a PEM private key ({e})", key_path.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("{}: {e}", key_path.display()))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(format!(
            "ship {}: tls_cert and tls_key go together",
            ship.name
        )),
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

/// Opens an SSH way to the ship's engine: the system `ssh` forwards a local port to the
/// engine's socket on the ship (or to its `docker_port`, when one is given).
pub async fn ssh(ship: &Ship, base_dir: &Path, wait: Duration) -> Result<Tunnel, String> {
    let tunnel = ship.ssh_tunnel.as_ref().expect("called for SSH ships");
    // Never an option to ssh: the file is not trusted to choose ssh's options.
    for (what, value) in [("user", tunnel.user.as_str()), ("address", host(ship))] {
        if value.is_empty() || value.starts_with('-') || value.contains(char::is_whitespace) {
            return Err(format!(
                "ship {}: ssh {what} {value:?} is not usable (empty, starts with -, or has spaces)",
                ship.name
            ));
        }
    }
    let dir = PrivateDir::new()?;
    let local = dir.socket();
    let remote = match (ship.docker_port, &ship.socket_path) {
        (Some(port), _) => format!("127.0.0.1:{port}"),
        (None, Some(path)) => path.clone(),
        (None, None) => "/var/run/docker.sock".into(),
    };
    let destination = format!("{}@{}", tunnel.user, host(ship));
    let mut command = tokio::process::Command::new("ssh");
    command
        .args([
            "-N",
            "-T",
            "-o",
            "BatchMode=yes",
            "-o",
            "ExitOnForwardFailure=yes",
        ])
        .args(["-o", &format!("ConnectTimeout={}", wait.as_secs().max(1))])
        .args(["-o", "ServerAliveInterval=15"])
        .args([
            "-o",
            if tunnel.accept_new_host_key {
                "StrictHostKeyChecking=accept-new"
            } else {
                "StrictHostKeyChecking=yes"
            },
        ]);
    if let Some(known_hosts) = &tunnel.known_hosts {
        command.args([
            "-o",
            &format!(
                "UserKnownHostsFile={}",
                resolve(base_dir, known_hosts).display()
            ),
        ]);
    }
    command
        .arg("-i")
        .arg(resolve(base_dir, &tunnel.key))
        .args(["-p", &tunnel.port.to_string()])
        // ssh makes the socket itself (mode from the umask), inside the 0700 directory.
        .args(["-o", "StreamLocalBindUnlink=yes"])
        .arg("-L")
        .arg(format!("{}:{remote}", local.display()))
        .arg("--")
        .arg(&destination)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run ssh: {e}"))?;
    let deadline = tokio::time::Instant::now() + wait + Duration::from_secs(1);
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                use tokio::io::AsyncReadExt;
                let _ = pipe.read_to_string(&mut stderr).await;
            }
            let reason = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_owned();
            return Err(format!(
                "ssh {destination} -p {} failed ({status}): {reason}",
                tunnel.port
            ));
        }
        if UnixStream::connect(&local).await.is_ok() {
            return Ok(Tunnel {
                socket: local,
                _guard: Guard::Process(child),
                _dir: dir,
            });
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "ssh {destination} -p {}: the tunnel did not open within {:.1}s",
                tunnel.port,
                wait.as_secs_f64()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
