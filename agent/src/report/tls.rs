//! The readiness client over TLS (`maestro --readiness-tls`): the controller's certificate
//! is made for the play and trusted only by its SHA-256, which the container was given in
//! `MAESTRO_READINESS_CERT_SHA256`; no CA, no name, no clock is involved.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::codegen::http::Uri;

/// A channel to `endpoint` (`https://host:port`) that accepts only the certificate whose
/// SHA-256 is `pin` (hex).
pub fn channel(
    endpoint: &tonic::transport::Endpoint,
    pin: &str,
) -> Result<tonic::transport::Channel, String> {
    let sha256 =
        hex(pin).ok_or_else(|| format!("{} '{pin}' is not a SHA-256 in hex", super::PIN_VAR))?;
    let provider = rustls::crypto::ring::default_provider();
    let algorithms = provider.signature_verification_algorithms;
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { sha256, algorithms }))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let authority = endpoint
        .uri()
        .authority()
        .map(|a| a.to_string())
        .ok_or_else(|| format!("{} has no host and port", super::ENDPOINT_VAR))?;
    Ok(endpoint.connect_with_connector_lazy(Connector {
        tls: TlsConnector::from(Arc::new(config)),
        authority,
    }))
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..32)
        .map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

#[derive(Clone)]
struct Connector {
    tls: TlsConnector,
    authority: String,
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let (tls, authority) = (self.tls.clone(), self.authority.clone());
        Box::pin(async move {
            let tcp = TcpStream::connect(&authority).await?;
            tcp.set_nodelay(true)?;
            // The name is not checked (the certificate is pinned); it only has to be valid.
            let name = ServerName::try_from("maestro-readiness")
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            Ok(TokioIo::new(tls.connect(name, tcp).await?))
        })
    }
}

#[derive(Debug)]
struct Pinned {
    sha256: Vec<u8>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = ring::digest::digest(&ring::digest::SHA256, end_entity.as_ref());
        if seen.as_ref() == self.sha256.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the controller's certificate is not the one maestro pinned".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_64_hex_digits() {
        let pin = "00".repeat(31) + "ff";
        assert_eq!(hex(&pin).map(|b| b[31]), Some(0xff));
        assert_eq!(hex("abc"), None);
        assert_eq!(hex(&"zz".repeat(32)), None);
    }
}
