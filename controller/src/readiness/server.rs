//! The readiness service on the network: one listener per address containers reach this
//! machine at, plain or TLS with an ephemeral certificate, all feeding one [`Registry`].

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsAcceptor;

use super::{Registry, pb};

/// How long a client may take over its TLS handshake before it is dropped (it must not
/// hold up anyone else's).
const HANDSHAKE: Duration = Duration::from_secs(5);

struct Service(Arc<Registry>);

#[tonic::async_trait]
impl pb::readiness_server::Readiness for Service {
    async fn report(
        &self,
        request: tonic::Request<pb::StateReport>,
    ) -> Result<tonic::Response<pb::Ack>, tonic::Status> {
        Ok(tonic::Response::new(self.0.report(request.into_inner())))
    }
}

/// The play's TLS identity: a self-signed certificate made for this play only, and its
/// SHA-256, which containers are given to pin (no CA is involved, nothing is stored).
pub struct Tls {
    acceptor: TlsAcceptor,
    pub pin: String,
}

impl Tls {
    pub fn ephemeral() -> Result<Tls, String> {
        let made = rcgen::generate_simple_self_signed(vec!["maestro-readiness".to_owned()])
            .map_err(|e| format!("cannot make the readiness certificate: {e}"))?;
        let der = made.cert.der().clone();
        let pin = ring::digest::digest(&ring::digest::SHA256, &der)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let key = rustls_pki_types::PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(vec![der], key.into())
        .map_err(|e| format!("cannot set up TLS: {e}"))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            pin,
        })
    }
}

/// One accepted connection, plain or TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ();
    fn connect_info(&self) {}
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// The readiness service of one play, listening on each address containers use.
pub struct Server {
    pub registry: Arc<Registry>,
    endpoints: HashMap<IpAddr, String>,
    pub pin: Option<String>,
    _stop: Vec<oneshot::Sender<()>>,
}

impl Server {
    /// Listens on an ephemeral port of every address in `addresses`, with TLS when `tls`
    /// is given. An address that cannot be bound is left out (its ships keep the polling
    /// checks) and named in the returned warnings.
    pub async fn start(
        addresses: impl IntoIterator<Item = IpAddr>,
        tls: Option<Tls>,
    ) -> (Server, Vec<String>) {
        let registry = Arc::new(Registry::default());
        let mut endpoints = HashMap::new();
        let mut stops = Vec::new();
        let mut warnings = Vec::new();
        let (acceptor, pin) = match tls {
            Some(tls) => (Some(tls.acceptor), Some(tls.pin)),
            None => (None, None),
        };
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        for address in addresses {
            if endpoints.contains_key(&address) {
                continue;
            }
            let listener = match TcpListener::bind(SocketAddr::new(address, 0)).await {
                Ok(listener) => listener,
                Err(e) => {
                    warnings.push(format!(
                        "cannot listen for readiness reports on {address}: {e}; containers there keep the polling checks"
                    ));
                    continue;
                }
            };
            let Ok(local) = listener.local_addr() else {
                continue;
            };
            let (stop, stopped) = oneshot::channel::<()>();
            let (conns_tx, conns) = mpsc::channel::<Conn>(64);
            tokio::spawn(accept(listener, acceptor.clone(), conns_tx));
            let incoming = futures_util::stream::unfold(conns, |mut conns| async move {
                let conn = conns.recv().await?;
                Some((Ok::<_, io::Error>(conn), conns))
            });
            let service = pb::readiness_server::ReadinessServer::new(Service(registry.clone()));
            tokio::spawn(async move {
                // Ends when the play ends (the Server is dropped); a failing connection only
                // ends that connection.
                let _ = tonic::transport::Server::builder()
                    .serve_with_incoming_shutdown(service, incoming, async {
                        let _ = stopped.await;
                    })
                    .await;
            });
            endpoints.insert(address, format!("{scheme}://{local}"));
            stops.push(stop);
        }
        (
            Server {
                registry,
                endpoints,
                pin,
                _stop: stops,
            },
            warnings,
        )
    }

    /// The endpoint containers at `address` report to.
    pub fn endpoint(&self, address: IpAddr) -> Option<&str> {
        self.endpoints.get(&address).map(String::as_str)
    }
}

/// Accepts connections until the server goes away; TLS handshakes run on their own tasks,
/// bounded in time, so a slow client holds up no one.
async fn accept(listener: TcpListener, tls: Option<TlsAcceptor>, conns: mpsc::Sender<Conn>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = conns.closed() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors, say: try again soon rather than spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Reports are tiny; do not let Nagle hold them back.
        let _ = stream.set_nodelay(true);
        match &tls {
            None => {
                if conns.send(Conn::Plain(stream)).await.is_err() {
                    return;
                }
            }
            Some(acceptor) => {
                let (acceptor, conns) = (acceptor.clone(), conns.clone());
                tokio::spawn(async move {
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await
                    {
                        let _ = conns.send(Conn::Tls(Box::new(tls))).await;
                    }
                });
            }
        }
    }
}
