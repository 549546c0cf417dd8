//! A small HTTP and HTTPS server on loopback for tests, with the certificates it needs:
//! it records every request (method, path, headers, body) and answers with what the test
//! says. Threads and blocking rustls, so it runs beside any runtime. Also used by the
//! workspace's end-to-end tests (`tests/tests/support/mod.rs` includes this file).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate and its key, for a server.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivatePkcs8KeyDer<'static>,
}

/// A CA that signs server certificates; `pem` is what a client is given to trust.
pub struct Ca {
    pub pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

pub fn pem(der: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

impl Ca {
    pub fn new() -> Ca {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        // A name of its own: a client that trusts another test CA must find no issuer.
        static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = MADE.fetch_add(1, Ordering::SeqCst);
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("maestro test CA {} {n}", std::process::id()),
        );
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca {
            pem: pem(cert.der()),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A server certificate for `names` (host names or IP addresses).
    pub fn issue(&self, names: &[&str]) -> Identity {
        let key = rcgen::KeyPair::generate().expect("key");
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        Identity {
            chain: vec![cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        }
    }
}

/// A certificate no CA signed.
pub fn self_signed(names: &[&str]) -> Identity {
    let made =
        rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("certificate");
    Identity {
        chain: vec![made.cert.der().clone()],
        key: PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()),
    }
}

/// One request as the server read it. Header names are lower case.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

type Respond = dyn Fn(&Recorded) -> (u16, String) + Send + Sync;

/// The server; stops when dropped.
pub struct Server {
    pub port: u16,
    requests: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Serves plain HTTP (`identity` none) or HTTPS on 127.0.0.1, answering each request
    /// with `respond`'s status and body.
    pub fn start(
        identity: Option<Identity>,
        respond: impl Fn(&Recorded) -> (u16, String) + Send + Sync + 'static,
    ) -> Server {
        let tls = identity.map(|id| {
            Arc::new(
                rustls::ServerConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_no_client_auth()
                .with_single_cert(id.chain, PrivateKeyDer::Pkcs8(id.key))
                .expect("server certificate"),
            )
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let respond: Arc<Respond> = Arc::new(respond);
        {
            let requests = requests.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (tls, requests, respond) = (tls.clone(), requests.clone(), respond.clone());
                    std::thread::spawn(move || {
                        let _ = serve(stream, tls, &requests, &*respond);
                    });
                }
            });
        }
        Server {
            port,
            requests,
            stop,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The requests once there are at least `n`, or those there are after `within`.
    pub fn wait_for(&self, n: usize, within: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + within;
        loop {
            let requests = self.requests();
            if requests.len() >= n || Instant::now() >= deadline {
                return requests;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(
    mut tcp: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    requests: &Mutex<Vec<Recorded>>,
    respond: &Respond,
) -> std::io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    match tls {
        None => exchange(&mut tcp, requests, respond),
        Some(config) => {
            let connection =
                rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
            let mut stream = rustls::StreamOwned::new(connection, tcp);
            exchange(&mut stream, requests, respond)?;
            stream.conn.send_close_notify();
            stream.flush()
        }
    }
}

/// Reads one request, records it, answers it, `Connection: close`.
fn exchange(
    stream: &mut impl ReadWrite,
    requests: &Mutex<Vec<Recorded>>,
    respond: &Respond,
) -> std::io::Result<()> {
    let mut data = Vec::new();
    let mut buffer = [0u8; 4096];
    let recorded = loop {
        let n = stream.read(&mut buffer)?;
        if n == 0 {
            return Ok(());
        }
        data.extend_from_slice(&buffer[..n]);
        let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&data[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or_default().split(' ');
        let method = first.next().unwrap_or_default().to_owned();
        let path = first.next().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        if data.len() < end + 4 + length {
            continue;
        }
        break Recorded {
            method,
            path,
            headers,
            body: String::from_utf8_lossy(&data[end + 4..end + 4 + length]).into_owned(),
        };
    };
    let (status, body) = respond(&recorded);
    requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(recorded);
    let answer = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(answer.as_bytes())?;
    stream.flush()
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}
