//! How requests reach a ship's engine: one HTTP client per ship that keeps its
//! connections open between requests.
//!
//! bollard's own clients open a new connection for every request (their pool keeps no idle
//! connection). Measured on 100 simulated ships (`bench/scale.sh`, `stop -a` of 20,000
//! containers): a third of the controller's CPU went into connecting, and every request
//! to a remote ship paid one more round trip (through a TLS tunnel, a handshake). Here a
//! ship's connections are kept for [`IDLE`] after use, at most as many as the ship runs
//! operations at once (`max_operations`, 16 by default): more could never all be used at
//! once, and each holds an open file (the pool opens a connection whenever none is idle
//! the moment a request starts, and keeps it). Nothing bounds the connections of all
//! ships by the open-file limit yet: 1,000 ships of 16 operations hold about 16,000.
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
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// How long an unused connection is kept: long enough to carry a play's requests from
/// one to the next, short enough that a connection a proxy or the engine may have
/// dropped meanwhile is seldom tried.
const IDLE: Duration = Duration::from_secs(20);

/// A client of the engine at `host:port` over plain TCP.
pub fn tcp(
    host: &str,
    port: u16,
    timeout: u64,
    version: &ClientVersion,
    max_idle: usize,
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
    with(connector, address, timeout, version, max_idle)
}

/// A client of the engine (or of the tunnel to it) listening on the unix socket `path`.
pub fn unix(
    path: &Path,
    timeout: u64,
    version: &ClientVersion,
    max_idle: usize,
) -> Result<Docker, bollard::errors::Error> {
    // The address only fills the requests' URIs: every connection goes to `path`.
    with(
        UnixConnector(Arc::new(path.to_path_buf())),
        "http://localhost".to_owned(),
        timeout,
        version,
        max_idle,
    )
}

/// `max_idle`: unused connections kept.
fn with<C>(
    connector: C,
    address: String,
    timeout: u64,
    version: &ClientVersion,
    max_idle: usize,
) -> Result<Docker, bollard::errors::Error>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(IDLE)
        .pool_max_idle_per_host(max_idle)
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
