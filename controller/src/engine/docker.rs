//! The Docker engine of one ship, through bollard. The connection is made on first use
//! (so a play only connects to the ships it needs), with API version negotiation; a ship
//! that cannot be reached fails its own operations only.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, HostConfig, HostConfigLogConfig, PortBinding, ResourcesUlimits,
    RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, KillContainerOptions, ListContainersOptions,
    LogsOptions, RemoveContainerOptions, StopContainerOptions,
};
use futures_util::StreamExt;
use tokio::sync::OnceCell;

use maestro_core::model::{ApiVersion, Image, Ship};
use maestro_core::spec::{ContainerSpec, labels};

use super::transport;
use super::tunnel::{self, Tunnel};
use super::{Created, Engine, EngineError, ImageInfo, Observed, Reach, Unhealthy, tagged};
use crate::credentials::Credentials;

// Bounds. No engine call waits without one, except a pull while its progress flows and
// the streams that are meant to last (`follow`; the events of `wait_healthy` are bounded
// by the health check's own limits): a wedged engine (Docker 20.10's libnetwork deadlock
// answers nothing, on every connection) would otherwise hold a play for as long as
// bollard's limit, and bollard bounds only a response's head, never its body.
//
// - connecting (SSH or TLS tunnel, version negotiation): the ship's `timeout` (default 5 s);
// - every request that does one thing (list, inspect, create, start, rename, update,
//   remove, kill, image inspect, tag, the lock's requests, the requests around an exec):
//   [`REQUEST_FACTOR`] times the ship's `timeout`, 15 s by default. Measured on a 2-core
//   machine at a load of 10 with 16 concurrent requests (a ship's default
//   `max_operations`): create took at most 0.6 s, start 3.3 s (network and port setup),
//   inspect and remove 0.5 s; with 64 at once, create 2.3 s and start 10 s;
// - stop: the grace period (`stop_timeout`) plus that;
// - an exec's command: its caller's limit;
// - a pull, and a registry lookup through the engine: [`PULL_IDLE`] without progress;
// - logs (not followed): that bound without a chunk.
// A request that overruns is an `EngineError::NoAnswer` naming the ship, the operation
// and the bound; the connection it used is dropped with it.

/// How many times the ship's `timeout` a single request may take.
const REQUEST_FACTOR: f64 = 3.0;
/// How long a pull, or the engine's lookup of a tag at its registry, may go without a
/// word: registries can be slow to start a layer, but the engine reports progress at
/// least every few seconds while bytes flow.
const PULL_IDLE: Duration = Duration::from_secs(60);
/// bollard's own limit, on a response's head only: every operation has a shorter bound of
/// its own, so this only backs up the streams meant to last; a week, the longest wait the
/// file can give (a `stop_timeout` is bounded to a week).
const BACKSTOP_SECONDS: u64 = 7 * 24 * 3600;

pub struct DockerEngine {
    ship: Ship,
    /// The environment file's folder: TLS and SSH key paths are relative to it.
    base_dir: PathBuf,
    /// How many connections its client may hold, and so how many operations run on it at
    /// once (see [`super::files`]).
    connections: usize,
    client: OnceCell<Result<Connection, EngineError>>,
    /// The client of the streams meant to last (see [`transport`]), made on first use.
    streams: OnceCell<Result<Docker, EngineError>>,
}

/// A client, and the tunnel it goes through (kept open as long as the client).
struct Connection {
    docker: Docker,
    /// Where its connections go, for the streams' client.
    way: Way,
    _tunnel: Option<Tunnel>,
}

/// Where a ship's connections go.
#[derive(Clone)]
enum Way {
    Unix(PathBuf),
    Tcp(String, u16),
}

impl Way {
    fn client(
        &self,
        version: &bollard::ClientVersion,
        connections: transport::Connections,
    ) -> Result<Docker, bollard::errors::Error> {
        match self {
            Way::Unix(path) => transport::unix(path, BACKSTOP_SECONDS, version, connections),
            Way::Tcp(host, port) => {
                transport::tcp(host, *port, BACKSTOP_SECONDS, version, connections)
            }
        }
    }
}

impl DockerEngine {
    /// `connections`: the ship's share of the open files (see [`super::files::shares`]).
    pub fn new(ship: Ship, base_dir: PathBuf, connections: usize) -> Self {
        DockerEngine {
            ship,
            base_dir,
            connections: connections.max(1),
            client: OnceCell::new(),
            streams: OnceCell::new(),
        }
    }

    /// The ship's `timeout`: how long reaching it may take.
    fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.ship.timeout.unwrap_or(5.0).max(0.1))
    }

    /// How long one request that does one thing may take (see the bounds above).
    pub(super) fn request_bound(&self) -> Duration {
        self.timeout().mul_f64(REQUEST_FACTOR)
    }

    pub(super) fn no_answer(&self, operation: String, within: Duration, idle: bool) -> EngineError {
        EngineError::NoAnswer {
            ship: self.ship.name.clone(),
            operation,
            within,
            idle,
        }
    }

    /// `work` (one or a few requests), given up after `within`. The work is boxed: plays
    /// nest engine calls deep inside their own futures, and a timer beside each would
    /// double what every task carries (debug builds overflowed a worker's stack).
    pub(super) fn within<'a, T: Send + 'a>(
        &'a self,
        operation: impl FnOnce() -> String + Send + 'a,
        within: Duration,
        work: impl Future<Output = Result<T, EngineError>> + Send + 'a,
    ) -> impl Future<Output = Result<T, EngineError>> + Send + 'a {
        let work = Box::pin(work);
        async move {
            match tokio::time::timeout(within, work).await {
                Ok(result) => result,
                Err(_) => Err(self.no_answer(operation(), within, false)),
            }
        }
    }

    /// `work` within the request bound.
    pub(super) fn request<'a, T: Send + 'a>(
        &'a self,
        operation: impl FnOnce() -> String + Send + 'a,
        work: impl Future<Output = Result<T, EngineError>> + Send + 'a,
    ) -> impl Future<Output = Result<T, EngineError>> + Send + 'a {
        self.within(operation, self.request_bound(), work)
    }

    /// The next item of a stream that may go silent for at most `idle`.
    pub(super) async fn next_within<S: futures_util::Stream + Unpin>(
        &self,
        stream: &mut S,
        operation: impl FnOnce() -> String,
        idle: Duration,
    ) -> Result<Option<S::Item>, EngineError> {
        tokio::time::timeout(idle, stream.next())
            .await
            .map_err(|_| self.no_answer(operation(), idle, true))
    }

    fn unreachable(&self, reason: impl ToString) -> EngineError {
        EngineError::Unreachable {
            ship: self.ship.name.clone(),
            reason: reason.to_string(),
        }
    }

    /// Where the daemon is, for messages.
    pub fn address(&self) -> String {
        match (&self.ship.socket_path, &self.ship.ssh_tunnel) {
            (_, Some(t)) => format!("ssh://{}@{}:{}", t.user, self.host(), t.port),
            (Some(path), None) => format!("unix://{path}"),
            (None, None) if self.tls() => format!("tls://{}:{}", self.host(), self.port()),
            (None, None) => format!("tcp://{}:{}", self.host(), self.port()),
        }
    }

    fn host(&self) -> &str {
        self.ship.endpoint.as_deref().unwrap_or(&self.ship.ip)
    }

    fn tls(&self) -> bool {
        self.ship.tls || self.ship.tls_verify
    }

    fn port(&self) -> u16 {
        self.ship
            .docker_port
            .unwrap_or(if self.tls() { 2376 } else { 2375 })
    }

    /// The newest API version to speak: the ship's `api_version` (an upper bound, as
    /// docker-py took it, but never older than [`ApiVersion::OLDEST`]) or bollard's own;
    /// negotiation then lowers it to what the engine offers.
    fn newest_version(&self) -> bollard::ClientVersion {
        let default = bollard::API_DEFAULT_VERSION;
        let default = ApiVersion {
            major: default.major_version as u32,
            minor: default.minor_version as u32,
        };
        let wanted = self
            .ship
            .api_version
            .as_deref()
            .and_then(ApiVersion::parse)
            .map_or(default, |v| v.clamp(ApiVersion::OLDEST, default));
        bollard::ClientVersion {
            major_version: wanted.major as usize,
            minor_version: wanted.minor as usize,
        }
    }

    pub(super) async fn client(&self) -> Result<&Docker, EngineError> {
        self.connection().await.map(|c| &c.docker)
    }

    async fn connection(&self) -> Result<&Connection, EngineError> {
        let result = self
            .client
            .get_or_init(|| async {
                let wait = self.timeout();
                let tunnel = if self.ship.ssh_tunnel.is_some() {
                    Some(
                        tunnel::ssh(&self.ship, &self.base_dir, wait)
                            .await
                            .map_err(|e| self.unreachable(e))?,
                    )
                } else if self.tls() && self.ship.socket_path.is_none() {
                    Some(
                        tunnel::tls(&self.ship, &self.base_dir, wait)
                            .await
                            .map_err(|e| self.unreachable(e))?,
                    )
                } else {
                    None
                };
                let version = self.newest_version();
                let way = match (&tunnel, &self.ship.socket_path) {
                    (Some(t), _) => Way::Unix(t.socket.clone()),
                    // As bollard took it: a path, or a `unix://` URL.
                    (None, Some(path)) => {
                        Way::Unix(PathBuf::from(path.strip_prefix("unix://").unwrap_or(path)))
                    }
                    (None, None) => Way::Tcp(self.host().to_owned(), self.port()),
                };
                let docker = way
                    .client(&version, transport::Connections::AtMost(self.connections))
                    .map_err(|e| self.unreachable(format!("{} ({e})", self.address())))?;
                match tokio::time::timeout(wait, docker.negotiate_version()).await {
                    Ok(Ok(docker)) => Ok(Connection {
                        docker,
                        way,
                        _tunnel: tunnel,
                    }),
                    Ok(Err(e)) => {
                        Err(self.unreachable(format!("{}: {}", self.address(), describe(&e))))
                    }
                    Err(_) => Err(self.unreachable(format!(
                        "{}: no answer within {:.1}s (the ship's timeout)",
                        self.address(),
                        wait.as_secs_f64()
                    ))),
                }
            })
            .await;
        result.as_ref().map_err(Clone::clone)
    }

    /// The client of the streams meant to last: the same way and API version as
    /// [`Self::client`]'s, its connections neither counted nor kept.
    pub(super) async fn streams(&self) -> Result<&Docker, EngineError> {
        let connection = self.connection().await?;
        let (way, version) = (&connection.way, connection.docker.client_version());
        let result = self
            .streams
            .get_or_init(|| async {
                way.client(&version, transport::Connections::Streams)
                    .map_err(|e| self.unreachable(format!("{} ({e})", self.address())))
            })
            .await;
        result.as_ref().map_err(Clone::clone)
    }
}

/// A container as messages name it: its name, or its id shortened as Docker shows it.
pub(super) fn shown(id: &str) -> &str {
    let is_id = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
    if is_id { &id[..12] } else { id }
}

/// The daemon's own message when there is one, else the innermost cause (such as
/// "Connection refused"), which says more than the HTTP client's wrappers.
fn describe(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            message,
            status_code,
        } => {
            format!("{message} (HTTP {status_code})")
        }
        other => {
            let mut innermost: &dyn std::error::Error = other;
            while let Some(source) = innermost.source() {
                innermost = source;
            }
            innermost.to_string()
        }
    }
}

pub(super) fn daemon(e: bollard::errors::Error) -> EngineError {
    EngineError::Daemon(describe(&e))
}

pub(super) fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// A pull's progress over its layers, told at most every 200 ms.
#[derive(Default)]
struct PullProgress {
    /// By layer id: bytes done, bytes in all, finished.
    layers: HashMap<String, (i64, i64, bool)>,
    told: Option<std::time::Instant>,
}

impl PullProgress {
    fn update(&mut self, info: &bollard::models::CreateImageInfo) -> Option<String> {
        let (Some(id), Some(status)) = (info.id.as_ref(), info.status.as_deref()) else {
            return None;
        };
        let layer = self.layers.entry(id.clone()).or_default();
        if let Some(detail) = &info.progress_detail {
            if status.starts_with("Downloading") {
                layer.0 = detail.current.unwrap_or(layer.0);
                layer.1 = detail.total.unwrap_or(layer.1);
            }
        }
        if matches!(
            status,
            "Pull complete" | "Already exists" | "Download complete"
        ) {
            layer.0 = layer.1;
            layer.2 = status != "Download complete";
        }
        if self
            .told
            .is_some_and(|t| t.elapsed() < Duration::from_millis(200))
        {
            return None;
        }
        self.told = Some(std::time::Instant::now());
        let done = self.layers.values().filter(|l| l.2).count();
        let (current, total) = self
            .layers
            .values()
            .fold((0, 0), |(c, t), l| (c + l.0, t + l.1));
        let mb = |b: i64| b as f64 / 1_000_000.0;
        Some(format!(
            "{done}/{} layers, {:.1}/{:.1} MB",
            self.layers.len(),
            mb(current),
            mb(total)
        ))
    }
}

/// How long one name pattern may be: the filter travels URL-encoded in the request line,
/// which proxies and SSH-forwarded daemons bound (8 KiB is a common limit).
const NAME_PATTERN_LENGTH: usize = 2000;

/// Docker `name` filters (regular expressions, matched anywhere in the name, with or
/// without its leading `/`) that match exactly the containers named after `instances` or
/// their generations: `^/?(?:a|b)(?:\.previous|\.swapping|…)?$`, as few as the length bound
/// allows (one for all but very large ships). None for no instances.
fn name_patterns(instances: &[String]) -> Vec<String> {
    // Only Docker's name characters are expected ([a-zA-Z0-9_.-]); anything else is
    // escaped all the same, which Go's regular expressions read as the character itself.
    let escape = |name: &str| -> String {
        name.chars()
            .flat_map(|c| {
                let plain = c.is_ascii_alphanumeric() || c == '_' || c == '-';
                (!plain).then_some('\\').into_iter().chain([c])
            })
            .collect()
    };
    let suffixes = format!(
        "(?:{})?",
        maestro_core::spec::GENERATION_SUFFIXES
            .map(escape)
            .join("|")
    );
    let mut patterns = Vec::new();
    let mut group: Vec<String> = Vec::new();
    let pattern = |group: &[String]| format!("^/?(?:{}){suffixes}$", group.join("|"));
    // The pattern's own length around the names is counted too.
    let fixed = pattern(&[]).len();
    let mut length = fixed;
    for name in instances {
        let name = escape(name);
        if !group.is_empty() && length + name.len() + 1 > NAME_PATTERN_LENGTH {
            patterns.push(pattern(&group));
            group.clear();
            length = fixed;
        }
        length += name.len() + 1;
        group.push(name);
    }
    if !group.is_empty() {
        patterns.push(pattern(&group));
    }
    patterns
}

fn restart_policy_name(name: &str) -> RestartPolicyNameEnum {
    match name {
        "always" => RestartPolicyNameEnum::ALWAYS,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        _ => RestartPolicyNameEnum::NO,
    }
}

fn docker_credentials(c: &Credentials) -> bollard::auth::DockerCredentials {
    bollard::auth::DockerCredentials {
        username: Some(c.username.clone()),
        password: Some(c.password.clone()),
        serveraddress: Some(c.server.clone()),
        ..Default::default()
    }
}

impl Engine for DockerEngine {
    fn operations(&self) -> usize {
        self.connections
    }

    async fn list(
        &self,
        environment: &str,
        instances: &[String],
    ) -> Result<Vec<Observed>, EngineError> {
        let docker = self.client().await?;
        let list = |key: &str, values: Vec<String>| {
            let options = ListContainersOptions {
                all: true,
                filters: Some(HashMap::from([(key.to_owned(), values)])),
                ..Default::default()
            };
            async move { docker.list_containers(Some(options)).await }
        };
        let by_label = list(
            "label",
            vec![format!("{}={environment}", labels::ENVIRONMENT)],
        );
        let by_name = futures_util::future::try_join_all(
            name_patterns(instances)
                .into_iter()
                .map(|pattern| list("name", vec![pattern])),
        );
        let (labelled, named) = self
            .request(
                || format!("list of environment {environment}'s containers"),
                async {
                    futures_util::future::try_join(by_label, by_name)
                        .await
                        .map_err(daemon)
                },
            )
            .await?;
        // Docker's name filter is a regular expression matched anywhere in the name: the
        // patterns are anchored, and the names checked exactly here all the same.
        let wanted: std::collections::HashSet<String> = instances
            .iter()
            .flat_map(|n| {
                std::iter::once(n.clone()).chain(
                    maestro_core::spec::GENERATION_SUFFIXES
                        .iter()
                        .map(move |s| format!("{n}{s}")),
                )
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        Ok(labelled
            .into_iter()
            .map(|c| (true, c))
            .chain(named.into_iter().flatten().map(|c| (false, c)))
            .filter_map(|(labelled, c)| {
                let labels = c.labels.unwrap_or_default();
                let observed = Observed {
                    id: c.id.unwrap_or_default(),
                    name: c
                        .names
                        .unwrap_or_default()
                        .first()
                        .map(|n| n.trim_start_matches('/').to_owned())
                        .unwrap_or_default(),
                    running: matches!(
                        c.state,
                        Some(bollard::models::ContainerSummaryStateEnum::RUNNING)
                    ),
                    image: c.image.unwrap_or_default(),
                    image_id: c.image_id.filter(|i| !i.is_empty()),
                    status: c.status.unwrap_or_default(),
                    ..Observed::default()
                }
                .with_labels(&labels);
                let keep = (labelled || wanted.contains(&observed.name))
                    && seen.insert(observed.id.clone());
                keep.then_some(observed)
            })
            .collect())
    }

    async fn inspect(&self, name: &str) -> Result<Option<Observed>, EngineError> {
        let docker = self.client().await?;
        let found = self
            .request(|| format!("inspect of {}", shown(name)), async {
                match docker.inspect_container(name, None).await {
                    Err(e) if is_not_found(&e) => Ok(None),
                    Err(e) => Err(daemon(e)),
                    Ok(c) => Ok(Some(c)),
                }
            })
            .await?;
        match found {
            None => Ok(None),
            Some(c) => {
                let state = c.state.unwrap_or_default();
                let config = c.config.unwrap_or_default();
                let labels = config.labels.unwrap_or_default();
                let running = state.running.unwrap_or(false);
                Ok(Some(
                    Observed {
                        id: c.id.unwrap_or_default(),
                        name: c
                            .name
                            .unwrap_or_default()
                            .trim_start_matches('/')
                            .to_owned(),
                        running,
                        image: config.image.unwrap_or_default(),
                        image_id: c.image.filter(|i| !i.is_empty()),
                        env: config.env,
                        exit_code: state.exit_code,
                        finished_at: state
                            .finished_at
                            .as_deref()
                            .and_then(super::health::unix_nanos),
                        status: state.status.map(|s| s.to_string()).unwrap_or_default(),
                        guest: super::runs_guest(
                            config.entrypoint.as_deref().unwrap_or_default(),
                            config.cmd.as_deref().unwrap_or_default(),
                            labels.contains_key(super::GUEST_LABEL),
                        ),
                        ..Observed::default()
                    }
                    .with_labels(&labels),
                ))
            }
        }
    }

    async fn image(&self, image: &str) -> Result<Option<ImageInfo>, EngineError> {
        let docker = self.client().await?;
        let tagged = tagged(image);
        self.request(|| format!("inspect of image {tagged}"), async {
            match docker.inspect_image(&tagged).await {
                Ok(found) => Ok(Some(ImageInfo {
                    id: found.id.unwrap_or_default(),
                    repo_digests: found.repo_digests.unwrap_or_default(),
                })),
                Err(e) if is_not_found(&e) => Ok(None),
                Err(e) => Err(daemon(e)),
            }
        })
        .await
    }

    async fn resolve(
        &self,
        image: &str,
        credentials: Option<&Credentials>,
    ) -> Result<Option<String>, EngineError> {
        let docker = self.client().await?;
        let tagged = tagged(image);
        // The engine asks the registry: as slow as a pull's start, not as a request.
        let found = self
            .within(
                || format!("registry lookup of {tagged}"),
                PULL_IDLE,
                async {
                    docker
                        .inspect_registry_image(&tagged, credentials.map(docker_credentials))
                        .await
                        .map_err(daemon)
                },
            )
            .await?;
        Ok(found
            .descriptor
            .digest
            .filter(|d| d.starts_with("sha256:") && d.len() == 71))
    }

    async fn tag(&self, source: &str, target: &str) -> Result<(), EngineError> {
        let docker = self.client().await?;
        let parsed = Image::parse(target);
        let options = bollard::query_parameters::TagImageOptions {
            repo: Some(parsed.repository),
            tag: Some(parsed.tag),
        };
        self.request(|| format!("tag of {source} as {target}"), async {
            docker
                .tag_image(source, Some(options))
                .await
                .map_err(daemon)
        })
        .await
    }

    async fn rename(&self, id: &str, name: &str) -> Result<(), EngineError> {
        let options = bollard::query_parameters::RenameContainerOptions {
            name: name.to_owned(),
        };
        let docker = self.client().await?;
        self.request(|| format!("rename of {} to {name}", shown(id)), async {
            docker.rename_container(id, options).await.map_err(daemon)
        })
        .await
    }

    async fn set_restart(&self, id: &str, policy: &(String, u32)) -> Result<(), EngineError> {
        let body = bollard::models::ContainerUpdateBody {
            restart_policy: Some(RestartPolicy {
                name: Some(restart_policy_name(&policy.0)),
                maximum_retry_count: Some(i64::from(policy.1)),
            }),
            ..Default::default()
        };
        let docker = self.client().await?;
        self.request(
            || format!("restart policy update of {}", shown(id)),
            async {
                docker
                    .update_container(id, body)
                    .await
                    .map(|_| ())
                    .map_err(daemon)
            },
        )
        .await
    }

    async fn pull(
        &self,
        image: &str,
        credentials: Option<&Credentials>,
        progress: &(dyn Fn(String) + Send + Sync),
    ) -> Result<(), EngineError> {
        let docker = self.client().await?;
        let mut layers = PullProgress::default();
        let parsed = Image::parse(image);
        let attempts = credentials.map_or(1, |c| c.retry_attempts.max(1));
        let retry_when = credentials
            .map(|c| c.retry_when.as_slice())
            .unwrap_or_default();
        let auth = credentials.map(docker_credentials);
        let mut attempt = 0;
        loop {
            attempt += 1;
            // `repository@sha256:…` goes as the repository and the digest in the tag
            // parameter, which the engine reads as a digest.
            let (from_image, tag) = match image.split_once('@') {
                Some((repository, digest)) => (repository.to_owned(), digest.to_owned()),
                None => (parsed.repository.clone(), parsed.tag.clone()),
            };
            let options = CreateImageOptions {
                from_image: Some(from_image),
                tag: Some(tag),
                ..Default::default()
            };
            let mut stream = docker.create_image(Some(options), None, auth.clone());
            let mut failure: Option<(Option<u16>, String)> = None;
            // Bounded by silence, not in all: a large image takes as long as it takes
            // while its progress flows.
            while let Some(item) = self
                .next_within(&mut stream, || format!("pull of {image}"), PULL_IDLE)
                .await?
            {
                match item {
                    Err(bollard::errors::Error::DockerResponseServerError {
                        status_code,
                        message,
                    }) => {
                        failure = Some((Some(status_code), message));
                        break;
                    }
                    Err(e) => return Err(daemon(e)),
                    Ok(info) => {
                        if let Some(detail) = info.error_detail {
                            failure = Some((None, detail.message.unwrap_or_default()));
                            break;
                        }
                        if let Some(message) = layers.update(&info) {
                            progress(format!("pulling {image}: {message}"));
                        }
                    }
                }
            }
            let Some((status, message)) = failure else {
                return Ok(());
            };
            let retry = status.is_some_and(|s| retry_when.contains(&s)) && attempt < attempts;
            if retry {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            let denied = [
                "unauthorized",
                "authentication required",
                "no basic auth credentials",
                "denied",
            ]
            .iter()
            .any(|w| message.to_lowercase().contains(w));
            return Err(EngineError::Daemon(match (denied, credentials) {
                (true, Some(c)) => format!(
                    "authentication with registry {} as {} failed: {message}",
                    c.label, c.username
                ),
                (true, None) => format!(
                    "the registry refused access without credentials: {message} (add it under registries:, or docker login)"
                ),
                (false, _) => message,
            }));
        }
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<Created, EngineError> {
        let docker = self.client().await?;
        let version = docker.client_version();
        let (healthcheck, warnings) = super::health::config(
            spec.healthcheck.as_ref(),
            (version.major_version, version.minor_version),
            &self.ship.name,
        );
        let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        for (container_port, host_ip, host_port) in &spec.ports {
            port_bindings
                .entry(container_port.clone())
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_default()
                .push(PortBinding {
                    host_ip: Some(host_ip.clone()),
                    host_port: Some(host_port.clone()),
                });
        }
        let some_vec = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        let restart = restart_policy_name(&spec.restart_policy.0);
        let host_config = HostConfig {
            binds: some_vec(&spec.binds),
            port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
            links: some_vec(&spec.links),
            volumes_from: some_vec(&spec.volumes_from),
            cap_add: some_vec(&spec.cap_add),
            cap_drop: some_vec(&spec.cap_drop),
            dns: some_vec(&spec.dns),
            extra_hosts: some_vec(&spec.extra_hosts),
            network_mode: spec.network_mode.clone(),
            privileged: spec.privileged.then_some(true),
            restart_policy: Some(RestartPolicy {
                name: Some(restart),
                maximum_retry_count: Some(i64::from(spec.restart_policy.1)),
            }),
            cpu_shares: spec.cpu_shares,
            memory: spec.memory.and_then(|m| i64::try_from(m).ok()),
            memory_swap: spec.memory_swap.and_then(|m| i64::try_from(m).ok()),
            log_config: spec
                .log_driver
                .as_ref()
                .map(|(driver, options)| HostConfigLogConfig {
                    typ: Some(driver.clone()),
                    config: Some(options.iter().cloned().collect()),
                }),
            security_opt: some_vec(&spec.security_opt),
            ulimits: (!spec.ulimits.is_empty()).then(|| {
                spec.ulimits
                    .iter()
                    .map(|(name, soft, hard)| ResourcesUlimits {
                        name: Some(name.clone()),
                        soft: Some(*soft),
                        hard: Some(*hard),
                    })
                    .collect()
            }),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            hostname: spec.hostname.clone(),
            user: spec.user.clone(),
            working_dir: spec.workdir.clone(),
            cmd: spec.command.clone(),
            env: Some(spec.env.clone()),
            exposed_ports: (!spec.ports.is_empty())
                .then(|| spec.ports.iter().map(|(p, _, _)| p.clone()).collect()),
            volumes: some_vec(&spec.volumes),
            labels: Some(spec.labels.iter().cloned().collect()),
            host_config: Some(host_config),
            healthcheck,
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        let created = self
            .request(|| format!("create of {}", spec.name), async {
                docker
                    .create_container(Some(options), body)
                    .await
                    .map_err(|e| match e {
                        bollard::errors::Error::DockerResponseServerError {
                            status_code: 409,
                            ..
                        } => EngineError::NameInUse(describe(&e)),
                        e => daemon(e),
                    })
            })
            .await?;
        Ok(Created {
            id: created.id,
            warnings,
        })
    }

    async fn wait_healthy(&self, id: &str) -> Result<(), Unhealthy> {
        let docker = self.client().await.map_err(Unhealthy::Engine)?;
        let streams = self.streams().await.map_err(Unhealthy::Engine)?;
        super::health::wait(self, docker, streams, id).await
    }

    async fn start(&self, id: &str) -> Result<(), EngineError> {
        let docker = self.client().await?;
        self.request(|| format!("start of {}", shown(id)), async {
            // A container already running answers 304, which bollard counts as success
            // (a container put back that never stopped: `rollback` after a killed swap).
            docker.start_container(id, None).await.map_err(daemon)
        })
        .await
    }

    async fn stop(&self, id: &str, timeout_seconds: u32) -> Result<(), EngineError> {
        let options = StopContainerOptions {
            t: i32::try_from(timeout_seconds).ok(),
            ..Default::default()
        };
        let docker = self.client().await?;
        // The engine answers after the grace period (and the kill that may end it).
        let bound = Duration::from_secs(u64::from(timeout_seconds)) + self.request_bound();
        self.within(|| format!("stop of {}", shown(id)), bound, async {
            match docker.stop_container(id, Some(options)).await {
                // 304: already stopped.
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 304, ..
                }) => Ok(()),
                other => other.map_err(daemon),
            }
        })
        .await
    }

    async fn kill(&self, id: &str) -> Result<(), EngineError> {
        let options = KillContainerOptions {
            signal: "SIGKILL".into(),
        };
        let docker = self.client().await?;
        self.request(|| format!("kill of {}", shown(id)), async {
            docker
                .kill_container(id, Some(options))
                .await
                .map_err(daemon)
        })
        .await
    }

    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        let options = RemoveContainerOptions {
            v: true,
            ..Default::default()
        };
        let docker = self.client().await?;
        self.request(|| format!("removal of {}", shown(id)), async {
            match docker.remove_container(id, Some(options)).await {
                Err(e) if is_not_found(&e) => Ok(()),
                other => other.map_err(daemon),
            }
        })
        .await
    }

    async fn logs(&self, id: &str, tail: Option<u64>) -> Result<Vec<String>, EngineError> {
        let docker = self.client().await?;
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: tail.map_or_else(|| "all".to_owned(), |n| n.to_string()),
            ..Default::default()
        };
        let mut stream = docker.logs(id, Some(options));
        let mut text = String::new();
        // However long the output, the engine sends it without pause.
        while let Some(chunk) = self
            .next_within(
                &mut stream,
                || format!("logs of {}", shown(id)),
                self.request_bound(),
            )
            .await?
        {
            text.push_str(&chunk.map_err(daemon)?.to_string());
        }
        Ok(text.lines().map(str::to_owned).collect())
    }

    async fn follow(
        &self,
        id: &str,
        from: super::From,
        lines: tokio::sync::mpsc::Sender<super::LogLine>,
    ) -> Result<(), EngineError> {
        super::logs::follow(self.streams().await?, id, from, lines).await
    }

    async fn watch_starts(
        &self,
        name: &str,
        starts: tokio::sync::mpsc::Sender<super::Starts>,
    ) -> Result<(), EngineError> {
        super::logs::watch_starts(self.streams().await?, name, starts).await
    }

    async fn reach(&self, id: &str) -> Result<Reach, EngineError> {
        let docker = self.client().await?;
        let found = self
            .request(|| format!("inspect of {}", shown(id)), async {
                match docker.inspect_container(id, None).await {
                    Ok(found) => Ok(Some(found)),
                    Err(e) if is_not_found(&e) => Ok(None),
                    Err(e) => Err(daemon(e)),
                }
            })
            .await?;
        let Some(found) = found else {
            return Ok(Reach::default());
        };
        let host_network = found
            .host_config
            .as_ref()
            .and_then(|h| h.network_mode.as_deref())
            == Some("host");
        if host_network {
            return Ok(Reach {
                host_network: true,
                published: HashMap::new(),
            });
        }
        let settings = found.network_settings.unwrap_or_default();
        let address = settings
            .networks
            .iter()
            .flatten()
            .filter_map(|(_, n)| n.ip_address.as_deref())
            .find_map(|ip| ip.parse::<std::net::IpAddr>().ok());
        let Some(address) = address else {
            return Ok(Reach::default());
        };
        let mut targets = HashMap::new();
        for (port, bindings) in settings.ports.iter().flatten() {
            let (number, protocol) = port.split_once('/').unwrap_or((port, "tcp"));
            let Ok(number) = number.parse::<u16>() else {
                continue;
            };
            if protocol != "tcp" {
                continue;
            }
            for binding in bindings.iter().flatten() {
                if let Some(host_port) = binding.host_port.as_deref().and_then(|p| p.parse().ok()) {
                    targets.insert(host_port, std::net::SocketAddr::new(address, number));
                }
            }
        }
        Ok(Reach {
            host_network: false,
            published: targets,
        })
    }

    async fn exec(
        &self,
        id: &str,
        command: &[String],
        within: Duration,
    ) -> Result<i64, EngineError> {
        let docker = self.client().await?;
        let what = || format!("exec of {:?} in {}", command.join(" "), shown(id));
        let exec = self
            .request(what, async {
                docker
                    .create_exec(
                        id,
                        bollard::exec::CreateExecOptions {
                            cmd: Some(command.to_vec()),
                            attach_stdout: Some(true),
                            attach_stderr: Some(true),
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(daemon)
            })
            .await?;
        // The command runs as long as the caller allows; its output is drained until it
        // ends.
        self.within(what, within, async {
            if let bollard::exec::StartExecResults::Attached { mut output, .. } =
                docker.start_exec(&exec.id, None).await.map_err(daemon)?
            {
                while output.next().await.is_some() {}
            }
            Ok(())
        })
        .await?;
        let inspected = self
            .request(what, async {
                docker.inspect_exec(&exec.id).await.map_err(daemon)
            })
            .await?;
        Ok(inspected.exit_code.unwrap_or(-1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `api_version` bounds the version spoken from above, never below maestro's oldest.
    #[test]
    fn api_version_is_an_upper_bound() {
        let cases = [
            (None, (1, 53)),
            (Some("1.30"), (1, 30)),
            (Some("1.18"), (1, 25)),
            (Some("9.99"), (1, 53)),
        ];
        for (given, (major, minor)) in cases {
            let mut ship = Ship::new("s", "127.0.0.1");
            ship.api_version = given.map(str::to_owned);
            let version = DockerEngine::new(ship, PathBuf::from("."), 16).newest_version();
            assert_eq!(
                (version.major_version, version.minor_version),
                (major, minor),
                "{given:?}"
            );
        }
    }

    /// A request overrunning its bound names the ship, the operation and the bound, and
    /// the bound follows the ship's timeout.
    #[tokio::test(start_paused = true)]
    async fn an_overrun_names_ship_operation_and_bound() {
        let mut ship = Ship::new("a", "127.0.0.1");
        let engine = DockerEngine::new(ship.clone(), PathBuf::from("."), 16);
        assert_eq!(engine.request_bound(), Duration::from_secs(15));
        let silent = engine
            .request(
                || "create of web-1".to_owned(),
                std::future::pending::<Result<(), EngineError>>(),
            )
            .await;
        assert_eq!(
            silent.unwrap_err().to_string(),
            "ship a: create of web-1 got no answer within 15s"
        );
        ship.timeout = Some(0.5);
        let engine = DockerEngine::new(ship, PathBuf::from("."), 16);
        let mut stream = futures_util::stream::pending::<()>();
        let idle = engine
            .next_within(&mut stream, || "pull of x:1".to_owned(), PULL_IDLE)
            .await;
        assert_eq!(
            idle.unwrap_err().to_string(),
            "ship a: pull of x:1 went silent for 60s"
        );
        let quick = engine
            .request(|| unreachable!(), async { Ok::<_, EngineError>(7) })
            .await;
        assert_eq!(quick, Ok(7));
        assert_eq!(super::super::seconds(engine.request_bound()), "1.5s");
        assert_eq!(super::super::seconds(Duration::from_millis(250)), "0.25s");
    }

    #[test]
    fn name_patterns_match_exactly_the_instances_and_their_generations() {
        let names: Vec<String> = ["zk-1", "zk-10", "a.b"].map(String::from).to_vec();
        let patterns = name_patterns(&names);
        assert_eq!(
            patterns,
            ["^/?(?:zk-1|zk-10|a\\.b)(?:\\.previous|\\.swapping|\\.retiring|\\.staged)?$"]
        );
        let re = regex::Regex::new(&patterns[0]).expect("valid");
        for name in [
            "zk-1",
            "/zk-1",
            "zk-10",
            "zk-1.previous",
            "/a.b.swapping",
            "zk-1.retiring",
            "zk-1.staged",
        ] {
            assert!(re.is_match(name), "{name}");
        }
        for name in [
            "zk-100",
            "xzk-1",
            "zk-1.old",
            "aXb",
            "zk-1.previous.previous",
        ] {
            assert!(!re.is_match(name), "{name}");
        }
        assert!(name_patterns(&[]).is_empty());
        // A ship of very many instances: several patterns, each bounded, all names in one.
        let many: Vec<String> = (0..1000).map(|i| format!("instance-{i}")).collect();
        let patterns = name_patterns(&many);
        assert!(patterns.len() > 1, "{}", patterns.len());
        assert!(
            patterns.iter().all(|p| p.len() <= NAME_PATTERN_LENGTH),
            "{patterns:?}"
        );
        let all: Vec<regex::Regex> = patterns
            .iter()
            .map(|p| regex::Regex::new(p).unwrap())
            .collect();
        for name in &many {
            assert_eq!(
                all.iter().filter(|re| re.is_match(name)).count(),
                1,
                "{name}"
            );
        }
    }
}
