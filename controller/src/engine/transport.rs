//! How requests reach a ship's engine: one HTTP client per ship that keeps its
//! connections open between requests, and holds at most so many at once.
//!
//! bollard's own clients open a new connection for every request (their pool keeps no idle
//! connection). Measured on 100 simulated ships (`bench/scale.sh`, `stop -a` of 20,000
//! containers): a third of the controller's CPU went into connecting, and every request
//! to a remote ship paid one more round trip (through a TLS tunnel, a handshake). Here a
//! ship's connections are kept for [`IDLE`] after use.
//!
//! A ship's connections are counted (see [`Connections`]): the pool opens a connection
//! whenever none is idle the moment a request starts, even if one is about to come back,
//! and keeps it; uncounted, 1,000 simulated ships of 16 operations held 18,000 connections
//! on two workers, and on one thread more than the 20,000 files the process could open.
//! A request that finds its ship's connections all in use waits for one to come back, or
//! to close. The streams meant to last (events, followed logs) go through a second client
//! that counts nothing and keeps nothing: one of them holds its connection for as long as
//! it lasts, and an operation that waits on events while it inspects must not wait for
//! its own connection back.
//!
//! A request that overruns its bound is dropped with its connection, which then goes back
//! to no pool (hyper closes a connection whose response nobody waits for), so a late
//! answer can never be read as the answer to a later request.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bollard::{BollardRequest, ClientVersion, Docker};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long an unused connection is kept: long enough to carry a play's requests from
/// one to the next, short enough that a connection a proxy or the engine may have
/// dropped meanwhile is seldom tried.
const IDLE: Duration = Duration::from_secs(20);

/// How many connections a client may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connections {
    /// At most so many open at once, all kept while idle (for [`IDLE`]).
    AtMost(usize),
    /// Any number, none kept: for the streams meant to last.
    Streams,
}

/// A client of the engine at `host:port` over plain TCP.
pub fn tcp(
    host: &str,
    port: u16,
    timeout: u64,
    version: &ClientVersion,
    connections: Connections,
) -> Result<Docker, bollard::errors::Error> {
    let mut connector = HttpConnector::new();
    // Requests and answers are small and go one at a time on a connection: Nagle's
    // algorithm would only hold them back.
    connector.set_nodelay(true);
    // An IPv6 address is bracketed in a URI.
    let address = if host.contains(':') && !host.starts_with('[') {
        format!("http://[{host}]:{port}")
    } else {
        format!("http://{host}:{port}")
    };
    with(connector, address, timeout, version, connections)
}

/// A client of the engine (or of the tunnel to it) listening on the unix socket `path`.
pub fn unix(
    path: &Path,
    timeout: u64,
    version: &ClientVersion,
    connections: Connections,
) -> Result<Docker, bollard::errors::Error> {
    // The address only fills the requests' URIs: every connection goes to `path`.
    with(
        UnixConnector(Arc::new(path.to_path_buf())),
        "http://localhost".to_owned(),
        timeout,
        version,
        connections,
    )
}

fn with<C>(
    connector: C,
    address: String,
    timeout: u64,
    version: &ClientVersion,
    connections: Connections,
) -> Result<Docker, bollard::errors::Error>
where
    C: tower_service::Service<hyper::Uri> + Clone + Send + Sync + 'static,
    C::Response: hyper::rt::Read + hyper::rt::Write + Connection + Unpin + Send + 'static,
    C::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    C::Future: Send + 'static,
{
    let (most, idle) = match connections {
        // Never more idle than open.
        Connections::AtMost(n) => (n.max(1), n.max(1)),
        Connections::Streams => (Semaphore::MAX_PERMITS, 0),
    };
    let connector = Counted {
        inner: connector,
        open: Arc::new(Semaphore::new(most)),
    };
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(IDLE)
        .pool_max_idle_per_host(idle)
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .build(connector);
    let client = Arc::new(client);
    Docker::connect_with_custom_transport(
        move |request: BollardRequest| {
            let client = client.clone();
            async move {
                client
                    .request(request)
                    .await
                    .map_err(bollard::errors::Error::from)
            }
        },
        Some(address),
        timeout,
        version,
    )
}

/// Connects to one unix socket, whatever the URI.
#[derive(Clone)]
struct UnixConnector(Arc<PathBuf>);

impl tower_service::Service<hyper::Uri> for UnixConnector {
    type Response = TokioIo<tokio::net::UnixStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: hyper::Uri) -> Self::Future {
        let path = self.0.clone();
        Box::pin(async move {
            let stream = tokio::net::UnixStream::connect(path.as_path()).await?;
            Ok(TokioIo::new(stream))
        })
    }
}

/// A connector that opens at most as many connections as `open` has permits: each
/// connection holds one until it closes. A connection the pool asks for while all are
/// open waits for one to close; the request meanwhile takes whichever comes back to the
/// pool first (hyper races the two), and the connection made later is kept idle.
#[derive(Clone)]
struct Counted<C> {
    inner: C,
    open: Arc<Semaphore>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<C> tower_service::Service<hyper::Uri> for Counted<C>
where
    C: tower_service::Service<hyper::Uri> + Clone + Send + 'static,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
{
    type Response = Held<C::Response>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: hyper::Uri) -> Self::Future {
        // The connector that was polled ready makes the call; a clone takes its place.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let open = self.open.clone();
        Box::pin(async move {
            // Never closed: an error cannot come, but would say so rather than connect.
            let permit = open.acquire_owned().await.map_err(Box::new)?;
            let io = inner.call(uri).await.map_err(Into::into)?;
            Ok(Held {
                io,
                _permit: permit,
            })
        })
    }
}

/// A connection, and its place among its ship's connections (given back when it closes).
struct Held<T> {
    io: T,
    _permit: OwnedSemaphorePermit,
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for Held<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for Held<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

impl<T: Connection> Connection for Held<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An engine on a unix socket that answers every request after `delay`, keeping
    /// connections open; returns the most connections it saw open at once, and how many
    /// it accepted.
    struct Counting {
        open: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
        accepted: Arc<AtomicUsize>,
    }

    fn serve(path: &Path, delay: Duration) -> Counting {
        let listener = tokio::net::UnixListener::bind(path).unwrap();
        let counting = Counting {
            open: Arc::default(),
            most: Arc::default(),
            accepted: Arc::default(),
        };
        let (open, most, accepted) = (
            counting.open.clone(),
            counting.most.clone(),
            counting.accepted.clone(),
        );
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                let open = open.clone();
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                        // Requests without a body: each ends with an empty line.
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            tokio::time::sleep(delay).await;
                            let answer = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\
                                          Api-Version: 1.45\r\nContent-Length: 2\r\n\r\nOK";
                            if stream.write_all(answer.as_bytes()).await.is_err() {
                                break;
                            }
                        }
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        counting
    }

    /// A socket path of its own for the test `name`, none left from an earlier run.
    fn socket(name: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("maestro-transport-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        path
    }

    fn version() -> ClientVersion {
        ClientVersion {
            major_version: 1,
            minor_version: 45,
        }
    }

    /// However many requests at once, a counted client holds at most its connections,
    /// and every request is answered; it reuses them rather than opening new ones.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_holds_at_most_its_connections() {
        let path = socket("counted");
        let engine = serve(&path, Duration::from_millis(5));
        let docker = unix(&path, 30, &version(), Connections::AtMost(3)).unwrap();
        for _ in 0..3 {
            let answers = futures_util::future::join_all((0..40).map(|_| docker.ping())).await;
            assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        }
        assert_eq!(engine.most.load(Ordering::SeqCst), 3);
        assert_eq!(engine.accepted.load(Ordering::SeqCst), 3);
        let _ = std::fs::remove_file(&path);
    }

    /// The streams' client counts nothing: as many at once as asked.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_streams_client_counts_nothing() {
        let path = socket("streams");
        let engine = serve(&path, Duration::from_millis(200));
        let docker = unix(&path, 30, &version(), Connections::Streams).unwrap();
        let answers = futures_util::future::join_all((0..10).map(|_| docker.ping())).await;
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        assert_eq!(engine.most.load(Ordering::SeqCst), 10);
        let _ = std::fs::remove_file(&path);
    }
}
