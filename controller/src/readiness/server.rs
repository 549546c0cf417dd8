//! The readiness service on the network: one listener per address containers reach this
//! machine at, plain or TLS with an ephemeral certificate, all feeding one [`Registry`].
//!
//! Anyone who can reach the address can connect, so connections are bounded: a new one must
//! complete a report within [`Limits::handshake`] and then one every [`Limits::idle`], or it
//! is closed (a silent, half-open, half-handshaken or trickling client alike); at most
//! [`Limits::connections`] are held, and a new one over the limit closes the one that has
//! gone longest without a report (a guest only needs its connection while it reports, and
//! opens another for its next report); requests and their bodies are bounded by tonic and
//! hyper's own settings.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;

use super::{Registry, pb};

/// The largest report taken, encoded (the guest keeps its reports well under it: 20 lines
/// of output at most 4 KiB each, a status of at most 4 KiB). A larger one is refused before
/// it is read.
pub const MAX_REPORT: usize = 64 * 1024;

/// Reports in flight on one connection (a guest sends one at a time).
const STREAMS: u32 = 4;

/// How long one report may take once its headers have come.
const REQUEST: Duration = Duration::from_secs(5);

/// The bounds on the service's connections.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections held at once, over every address.
    pub connections: usize,
    /// How long a new connection has to complete its first report (TLS handshake and
    /// HTTP/2 preface included).
    pub handshake: Duration,
    /// How long a connection may then go without completing a report.
    pub idle: Duration,
}

impl Limits {
    /// The limits for this process: half its open files (the other half for the engines'
    /// connections, tunnels and files), 1024 at most, since a guest holds a connection only
    /// while it reports.
    pub fn for_process() -> Limits {
        Limits::for_files(crate::engine::files::limit())
    }

    /// The limits under `files` open files (`None`: no limit).
    pub fn for_files(files: Option<u64>) -> Limits {
        let files = files.unwrap_or(u64::MAX);
        Limits {
            connections: usize::try_from(files / 2)
                .unwrap_or(usize::MAX)
                .clamp(64, 1024),
            handshake: Duration::from_secs(5),
            idle: Duration::from_secs(10),
        }
    }
}

/// One connection as the bounds see it.
struct Watch {
    id: u64,
    /// When it was accepted, or completed its last report.
    since: Mutex<Instant>,
    proven: AtomicBool,
    cut: AtomicBool,
    waker: AtomicWaker,
}

impl Watch {
    fn since(&self) -> Instant {
        *self.since.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A report completed on the connection.
    fn served(&self) {
        *self.since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.proven.store(true, Ordering::Relaxed);
    }

    fn deadline(&self, limits: &Limits) -> Instant {
        let bound = if self.proven.load(Ordering::Relaxed) {
            limits.idle
        } else {
            limits.handshake
        };
        self.since() + bound
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::Relaxed);
        self.waker.wake();
    }

    fn is_cut(&self) -> bool {
        self.cut.load(Ordering::Relaxed)
    }
}

/// The connections the service holds, over all its addresses.
struct Connections {
    limits: Limits,
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Watch>>>,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Watch>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes on a new connection. Over the limit, the one that has gone longest without a
    /// report is closed: under a flood of idle connections the flood's own oldest go first,
    /// and a guest's fresh connection, which reports at once, is the last in line.
    fn admit(self: &Arc<Self>, stream: TcpStream) -> Guarded<TcpStream> {
        let watch = Arc::new(Watch {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            since: Mutex::new(Instant::now()),
            proven: AtomicBool::new(false),
            cut: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        });
        let mut open = self.lock();
        open.insert(watch.id, watch.clone());
        // Closed ones stay in the map until their task lets go of them (at once).
        if open.len() > self.limits.connections {
            let live = open.values().filter(|w| !w.is_cut());
            if live.clone().count() > self.limits.connections {
                if let Some(oldest) = live.min_by_key(|w| (w.since(), w.id)) {
                    oldest.cut();
                }
            }
        }
        drop(open);
        let deadline = watch.deadline(&self.limits);
        Guarded {
            io: stream,
            watch,
            connections: self.clone(),
            timer: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }
}

/// A connection's stream, which fails once the connection is past its deadline or closed
/// to make room: hyper and rustls then drop the connection.
struct Guarded<S> {
    io: S,
    watch: Arc<Watch>,
    connections: Arc<Connections>,
    timer: Pin<Box<Sleep>>,
}

impl<S> Guarded<S> {
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let closed = || io::Error::new(io::ErrorKind::TimedOut, "readiness connection closed");
        if self.watch.is_cut() {
            return Err(closed());
        }
        self.watch.waker.register(cx.waker());
        if self.watch.is_cut() {
            return Err(closed());
        }
        let deadline = self.watch.deadline(&self.connections.limits);
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            self.watch.cut();
            return Err(closed());
        }
        Ok(())
    }
}

impl<S> Drop for Guarded<S> {
    fn drop(&mut self) {
        self.connections.lock().remove(&self.watch.id);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check(cx)?;
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check(cx)?;
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check(cx)?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

struct Service(Arc<Registry>);

#[tonic::async_trait]
impl pb::readiness_server::Readiness for Service {
    async fn report(
        &self,
        request: tonic::Request<pb::StateReport>,
    ) -> Result<tonic::Response<pb::Ack>, tonic::Status> {
        if let Some(watch) = request.extensions().get::<Arc<Watch>>() {
            watch.served();
        }
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
    Plain(Guarded<TcpStream>),
    Tls(Box<tokio_rustls::server::TlsStream<Guarded<TcpStream>>>),
}

/// A report's request carries its connection's watch, to mark the connection as served.
impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = Arc<Watch>;
    fn connect_info(&self) -> Arc<Watch> {
        match self {
            Conn::Plain(s) => s.watch.clone(),
            Conn::Tls(s) => s.get_ref().0.watch.clone(),
        }
    }
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
    /// For the tests to count; the accepting tasks hold their own.
    #[cfg(test)]
    connections: Arc<Connections>,
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
        limits: Limits,
    ) -> (Server, Vec<String>) {
        let registry = Arc::new(Registry::default());
        let connections = Arc::new(Connections {
            limits,
            next: AtomicU64::new(0),
            open: Mutex::default(),
        });
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
            tokio::spawn(accept(
                listener,
                acceptor.clone(),
                conns_tx,
                connections.clone(),
            ));
            let incoming = futures_util::stream::unfold(conns, |mut conns| async move {
                let conn = conns.recv().await?;
                Some((Ok::<_, io::Error>(conn), conns))
            });
            let service = pb::readiness_server::ReadinessServer::new(Service(registry.clone()))
                .max_decoding_message_size(MAX_REPORT);
            tokio::spawn(async move {
                // Ends when the play ends (the Server is dropped); a failing connection only
                // ends that connection. Flow-control windows of about a report, so a client
                // cannot make hyper buffer more than that per stream.
                let window = u32::try_from(MAX_REPORT).unwrap_or(u32::MAX);
                let _ = tonic::transport::Server::builder()
                    .timeout(REQUEST)
                    .concurrency_limit_per_connection(STREAMS as usize)
                    .max_concurrent_streams(STREAMS)
                    .initial_stream_window_size(window)
                    .initial_connection_window_size(window * STREAMS)
                    .http2_max_header_list_size(16 * 1024)
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
                #[cfg(test)]
                connections,
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

    /// The connections open now.
    #[cfg(test)]
    fn open_connections(&self) -> usize {
        self.connections.lock().len()
    }
}

/// Accepts connections until the server goes away; TLS handshakes run on their own tasks
/// (bounded like any connection by the handshake deadline), so a slow client holds up no
/// one.
async fn accept(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    conns: mpsc::Sender<Conn>,
    connections: Arc<Connections>,
) {
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
        let stream = connections.admit(stream);
        match &tls {
            None => {
                if conns.send(Conn::Plain(stream)).await.is_err() {
                    return;
                }
            }
            Some(acceptor) => {
                let (acceptor, conns) = (acceptor.clone(), conns.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        let _ = conns.send(Conn::Tls(Box::new(tls))).await;
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
