//! Ways to a ship's engine that are not a plain socket: TLS and SSH. Each gives a local
//! loopback port that leads to the engine, so the Docker client speaks plain HTTP to
//! 127.0.0.1 and the transport's own checks (certificates, host keys) live here, where
//! their errors can be told clearly.
//!
//! TLS: with `tls_verify`, only the given CA is trusted (not the system's store) and the
//! server's name must match the ship's endpoint; without it the connection is encrypted
//! but not verified, which is said once. SSH: the system `ssh` forwards a local port to
//! the engine's socket (or to `docker_port` on the ship, as MaestroNG did), with host
//! key checking on; one connection per ship serves a whole play.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use maestro_core::model::Ship;

/// A local port leading to a ship's engine; closing it (drop) ends the way there.
pub struct Tunnel {
    pub port: u16,
    _guard: Guard,
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

    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let local = listener.local_addr().map_err(|e| e.to_string())?.port();
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
        port: local,
        _guard: Guard::Task(task),
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
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
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

/// Accepts any server certificate: `tls` without `tls_verify`, as the user asked.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Opens an SSH way to the ship's engine: the system `ssh` forwards a local port to the
/// engine's socket on the ship (or to its `docker_port`, when one is given).
pub async fn ssh(ship: &Ship, base_dir: &Path, wait: Duration) -> Result<Tunnel, String> {
    let tunnel = ship.ssh_tunnel.as_ref().expect("called for SSH ships");
    let local = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        probe.local_addr().map_err(|e| e.to_string())?.port()
    };
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
        .args(["-L", &format!("127.0.0.1:{local}:{remote}")])
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
        if TcpStream::connect(("127.0.0.1", local)).await.is_ok() {
            return Ok(Tunnel {
                port: local,
                _guard: Guard::Process(child),
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
