//! The HTTP client of `http` checks and of the `http` and `slack` auditors: reqwest, over
//! rustls with the ring provider (the configuration is built here and handed to reqwest
//! whole, so no other provider is ever asked for). It keeps the parts of Python requests'
//! behaviour that MaestroNG files rely on: `verify` (true, false or a CA bundle), the CA
//! bundle of `REQUESTS_CA_BUNDLE` / `CURL_CA_BUNDLE`, redirects followed (up to 30),
//! proxies from `HTTP_PROXY` / `HTTPS_PROXY` / `NO_PROXY`. Unlike requests, bodies are read
//! only up to a limit and every request is bounded in time by its caller.
//!
//! Trust, in order: a check's `verify: PATH`; else the bundle `REQUESTS_CA_BUNDLE` names,
//! else `CURL_CA_BUNDLE`'s (requests reads both, in that order); else the system's CA
//! certificates, found as OpenSSL finds them (`SSL_CERT_FILE`, `SSL_CERT_DIR`, then the
//! distribution's bundle). A bundle replaces the default trust, as in requests.
//!
//! Secrets: header values, Basic passwords and URLs' paths and queries (a webhook's URL
//! is often its credential) never appear in an error from here.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use maestro_core::model::{Secret, Verify};

/// The environment variables that name a CA bundle, in the order requests reads them.
const BUNDLE_VARIABLES: [&str; 2] = ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"];

/// Python requests' limit on redirects.
const MAX_REDIRECTS: usize = 30;

/// What every request of one maestro process shares: where the environment file's
/// relative paths start, and the CA bundle the process environment names.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    base_dir: PathBuf,
    /// The variable and its value.
    env_bundle: Option<(&'static str, String)>,
}

impl Settings {
    /// The settings of this process: its environment variables.
    pub fn from_env(base_dir: PathBuf) -> Settings {
        Settings::new(base_dir, |name| std::env::var(name).ok())
    }

    /// The settings with the environment given by `lookup` (tests give their own).
    pub fn new(base_dir: PathBuf, lookup: impl Fn(&str) -> Option<String>) -> Settings {
        // An empty variable is unset, as in requests (`os.environ.get(..) or ...`).
        let env_bundle = BUNDLE_VARIABLES
            .into_iter()
            .find_map(|name| Some((name, lookup(name).filter(|v| !v.is_empty())?)));
        Settings {
            base_dir,
            env_bundle,
        }
    }
}

/// How long a request may take.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub connect: Duration,
    /// Between two reads of the answer.
    pub read: Option<Duration>,
    /// The whole exchange, body included.
    pub total: Option<Duration>,
}

/// A client with its trust settled.
#[derive(Clone)]
pub struct Client {
    client: reqwest::Client,
    /// The trust in words, for errors ("the system's CA certificates").
    trust: Arc<str>,
}

/// One request.
pub struct Request<'a> {
    pub method: &'a str,
    pub url: &'a str,
    /// Sent after maestro's own headers, which they replace.
    pub headers: &'a [(String, String)],
    pub auth: Option<&'a (String, Secret)>,
    /// Sent as `application/json; charset=utf-8`.
    pub json: Option<String>,
    /// Bytes of the answer's body kept; the rest is not read.
    pub body_limit: usize,
}

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// At most the request's `body_limit` bytes, decoded as UTF-8 (lossily).
    pub body: String,
}

/// Why a request got no answer. TLS errors name the host; the others are the bare cause
/// ("Connection refused (os error 111)", "timed out"), for the caller to say where.
#[derive(Debug)]
pub struct Error {
    pub message: String,
    /// The server's certificate was refused: trying again will not help.
    pub certificate: bool,
}

impl Client {
    pub fn new(
        settings: &Settings,
        verify: &Verify,
        redirects: bool,
        limits: Limits,
    ) -> Result<Client, String> {
        let (mut tls, trust) = tls_config(settings, verify)?;
        // reqwest is built without HTTP/2.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(concat!("maestro/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(limits.connect)
            .redirect(if redirects {
                reqwest::redirect::Policy::limited(MAX_REDIRECTS)
            } else {
                reqwest::redirect::Policy::none()
            });
        if let Some(read) = limits.read {
            builder = builder.read_timeout(read);
        }
        if let Some(total) = limits.total {
            builder = builder.timeout(total);
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {}", chain(&e)))?;
        Ok(Client {
            client,
            trust: trust.into(),
        })
    }

    pub async fn send(&self, request: Request<'_>) -> Result<Answer, Error> {
        let plain = |message: String| Error {
            message,
            certificate: false,
        };
        let method = reqwest::Method::from_bytes(request.method.to_uppercase().as_bytes())
            .map_err(|_| plain(format!("{:?} is not an HTTP method", request.method)))?;
        let url =
            reqwest::Url::parse(request.url).map_err(|e| plain(format!("not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(plain(
                "only http:// and https:// URLs are supported".to_owned(),
            ));
        }
        let mut headers = HeaderMap::new();
        if request.json.is_some() {
            headers.insert(
                reqwest::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
        }
        for (name, value) in request.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| plain(format!("{name:?} is not a valid header name")))?;
            // The value may be a credential: never shown.
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| plain(format!("the value of header {name} is not valid in HTTP")))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let mut builder = self.client.request(method, url.clone()).headers(headers);
        if let Some((user, password)) = request.auth {
            builder = builder.basic_auth(user, Some(password.expose()));
        }
        if let Some(json) = request.json {
            builder = builder.body(json);
        }
        let mut response = builder.send().await.map_err(|e| self.explain(&e, &url))?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while body.len() < request.body_limit {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = request.body_limit - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) => break,
                Err(e) => return Err(self.explain(&e, &url)),
            }
        }
        Ok(Answer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// A reqwest error in words, naming the host and, for certificates, what is trusted.
    fn explain(&self, e: &reqwest::Error, requested: &reqwest::Url) -> Error {
        // After a redirect the failing request may be to another host.
        let url = e.url().unwrap_or(requested);
        let host = url.host_str().unwrap_or("the server");
        if let Some(tls) = rustls_error(e) {
            let (message, certificate) = match tls {
                rustls::Error::InvalidCertificate(c) => (
                    match c {
                        rustls::CertificateError::UnknownIssuer => format!(
                            "TLS: the certificate of {host} is not signed by a CA maestro trusts (UnknownIssuer; trusted: {})",
                            self.trust
                        ),
                        rustls::CertificateError::NotValidForName
                        | rustls::CertificateError::NotValidForNameContext { .. } => format!(
                            "TLS: the certificate of {host} is not valid for the name {host} (NotValidForName)"
                        ),
                        rustls::CertificateError::Expired
                        | rustls::CertificateError::ExpiredContext { .. } => {
                            format!("TLS: the certificate of {host} has expired")
                        }
                        other => format!("TLS: the certificate of {host} is refused ({other:?})"),
                    },
                    true,
                ),
                other => (format!("TLS with {host} failed: {other}"), false),
            };
            return Error {
                message,
                certificate,
            };
        }
        // The caller says which request this was.
        let message = if e.is_timeout() {
            "timed out".to_owned()
        } else if e.is_redirect() {
            format!("more than {MAX_REDIRECTS} redirects")
        } else {
            // The innermost cause says it best ("Connection refused (os error 111)");
            // reqwest's own text names the URL, which may hold a secret.
            innermost(e).unwrap_or_else(|| without_url(e))
        };
        Error {
            message,
            certificate: false,
        }
    }
}

/// reqwest's error text without the URL.
fn without_url(e: &reqwest::Error) -> String {
    let text = e.to_string();
    match text.find(" for url (") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The causes of `e`, outermost first. `io::Error`'s own `source` skips the error it
/// wraps, so that one is visited explicitly.
fn causes<'e>(
    e: &'e (dyn std::error::Error + 'static),
) -> Vec<&'e (dyn std::error::Error + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(e);
    while let Some(e) = next {
        out.push(e);
        next = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    out
}

fn rustls_error(e: &reqwest::Error) -> Option<&rustls::Error> {
    causes(e)
        .into_iter()
        .find_map(|c| c.downcast_ref::<rustls::Error>())
}

fn innermost(e: &reqwest::Error) -> Option<String> {
    causes(e).into_iter().skip(1).last().map(|c| c.to_string())
}

/// A path from the environment file: `~/` is the user's home, a relative path is relative
/// to the file's folder (as ships' certificates).
fn resolve(base_dir: &Path, path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => base_dir.join(path),
    }
}

/// The rustls configuration for `verify`, and the trust it gives in words.
fn tls_config(settings: &Settings, verify: &Verify) -> Result<(ClientConfig, String), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?;
    let (roots, trust) = match (verify, &settings.env_bundle) {
        (Verify::Off, _) => {
            let config = builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth();
            return Ok((config, "any certificate (verify: false)".into()));
        }
        (Verify::Bundle(path), _) => {
            let full = resolve(&settings.base_dir, path);
            let roots = bundle(&full).map_err(|e| format!("requests_options.verify: {e}"))?;
            (Arc::new(roots), format!("the CA bundle {}", full.display()))
        }
        (Verify::Default, Some((variable, path))) => {
            let roots = bundle(Path::new(path)).map_err(|e| format!("{variable}: {e}"))?;
            (
                Arc::new(roots),
                format!("the CA bundle {path} of {variable}"),
            )
        }
        (Verify::Default, None) => {
            let (roots, trust) = system_roots();
            (roots.clone(), trust.clone())
        }
    };
    Ok((
        builder.with_root_certificates(roots).with_no_client_auth(),
        trust,
    ))
}

/// The system's CA certificates, read once per process. None found is not an error here:
/// every certificate is then refused, with a message saying why.
fn system_roots() -> &'static (Arc<RootCertStore>, String) {
    static ROOTS: OnceLock<(Arc<RootCertStore>, String)> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(found.certs);
        let trust = if roots.is_empty() {
            "the system's CA certificates, of which none were found: install them (ca-certificates) or set SSL_CERT_FILE or REQUESTS_CA_BUNDLE".to_owned()
        } else {
            "the system's CA certificates".to_owned()
        };
        (Arc::new(roots), trust)
    })
}

/// A CA bundle: a PEM file, or a folder whose files hold PEM certificates (as requests
/// takes `verify: FOLDER`).
fn bundle(path: &Path) -> Result<RootCertStore, String> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .filter_map(|entry| Some(entry.ok()?.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_owned()]
    };
    let mut roots = RootCertStore::empty();
    for file in &files {
        let text = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        for cert in CertificateDer::pem_slice_iter(&text) {
            let cert = cert.map_err(|e| format!("{}: {e}", file.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", file.display()))?;
        }
    }
    if roots.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(roots)
}

/// Accepts any server certificate: `verify: false` (or a ship's `tls` without
/// `tls_verify`), as the user asked. The handshake's signatures are still checked, so the
/// connection is encrypted with whoever answered.
#[derive(Debug)]
pub(crate) struct AnyCertificate(pub(crate) Arc<rustls::crypto::CryptoProvider>);

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

#[cfg(test)]
pub mod testing;

#[cfg(test)]
mod tests;
