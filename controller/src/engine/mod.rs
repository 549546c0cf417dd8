//! The narrow seam to Docker: the few operations plays need, per ship. `docker.rs`
//! implements it with bollard; tests of the scheduling logic use fakes.

pub mod docker;
pub mod files;
mod health;
pub mod lock;
mod logs;
mod transport;
pub mod tunnel;

use std::collections::HashMap;
use std::future::Future;

use maestro_core::spec::ContainerSpec;

use crate::credentials::Credentials;

/// A container as the engine reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub id: String,
    pub name: String,
    pub running: bool,
    /// The image the container was created from, as given at creation.
    pub image: String,
    /// The id of the image it runs (`sha256:…`): what its tag resolved to at creation.
    pub image_id: Option<String>,
    /// maestro's labels: the environment and ship it was created for, its role (see
    /// [`maestro_core::spec::labels::ROLE`]), its service and instance, and the restart
    /// policy it was created with (a kept previous generation has its policy set to `no`).
    /// A container maestro did not create has none of them.
    pub environment: Option<String>,
    pub service: Option<String>,
    pub ship: Option<String>,
    pub role: Option<String>,
    pub instance: Option<String>,
    pub restart: Option<String>,
    /// The definition digest maestro recorded when it created the container.
    pub digest: Option<String>,
    /// The per-part digests recorded beside it.
    pub parts: Option<String>,
    /// The salted hashes of its secret variables (see
    /// [`maestro_core::spec::labels::SECRETS`]).
    pub secrets: Option<String>,
    pub exit_code: Option<i64>,
    /// When it last stopped (Unix time in nanoseconds, on the engine's clock); `None` when
    /// it never did. Only `inspect` tells.
    pub finished_at: Option<i64>,
    /// Docker's own summary ("Up 3 minutes", "Exited (1) 2 seconds ago").
    pub status: String,
    /// Whether maestro-guest is the container's entry point (see [`runs_guest`]), so a
    /// readiness report can be expected from it. Only `inspect` tells; `list` says false.
    pub guest: bool,
    /// Its variables (`NAME=value`). Only `inspect` tells.
    pub env: Option<Vec<String>>,
}

/// The label an image sets when maestro-guest runs it but not as the first word of its
/// command (a wrapper script that execs `maestro-guest run`, say).
pub const GUEST_LABEL: &str = "io.maestro.guest";

/// Whether a container's command line starts maestro-guest's `run`: its entry point and
/// command (the image's, unless the container overrides them) put together begin with an
/// executable named `maestro-guest` and the word `run`, or its labels carry
/// [`GUEST_LABEL`].
pub fn runs_guest(entrypoint: &[String], cmd: &[String], has_label: bool) -> bool {
    let mut words = entrypoint.iter().chain(cmd);
    let program = words.next().map(|p| p.rsplit('/').next().unwrap_or(p));
    has_label || (program == Some("maestro-guest") && words.next().is_some_and(|w| w == "run"))
}

impl Observed {
    /// The container as the decisions see it, found under the name of instance `id` (or
    /// of one of its generations).
    pub fn existing(
        &self,
        env: &maestro_core::model::Environment,
        id: maestro_core::model::InstanceId,
    ) -> maestro_core::plan::Existing {
        maestro_core::plan::Existing {
            owner: self.owner(env, id),
            running: self.running,
            digest: self.digest.clone(),
            parts: self.parts.clone(),
            image_id: self.image_id.clone(),
            env: self.env.clone(),
            secrets: self.secrets.clone(),
        }
    }

    /// Whose this container is, found under the name of instance `id` (or of one of its
    /// generations).
    pub fn owner(
        &self,
        env: &maestro_core::model::Environment,
        id: maestro_core::model::InstanceId,
    ) -> maestro_core::plan::Owner {
        let instance = env.instance(id);
        let claimed = maestro_core::plan::Claimed {
            environment: self.environment.as_deref(),
            ship: self.ship.as_deref(),
            role: self.role.as_deref(),
            instance: self.instance.as_deref(),
        };
        maestro_core::plan::owner(
            claimed,
            &env.name,
            &env.ship(instance.ship).name,
            &instance.name,
        )
    }

    /// Fills the fields that come from maestro's labels.
    pub(crate) fn with_labels(mut self, labels: &HashMap<String, String>) -> Self {
        use maestro_core::spec::labels as l;
        self.environment = labels.get(l::ENVIRONMENT).cloned();
        self.service = labels.get(l::SERVICE).cloned();
        self.digest = labels.get(l::DIGEST).cloned();
        self.parts = labels.get(l::PARTS).cloned();
        self.secrets = labels.get(l::SECRETS).cloned();
        self.ship = labels.get(l::SHIP).cloned();
        self.role = labels.get(l::ROLE).cloned();
        self.instance = labels.get(l::INSTANCE).cloned();
        self.restart = labels.get(l::RESTART).cloned();
        self
    }
}

/// Why an engine operation failed, in words for the user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The ship cannot be reached (connection refused, timeout, bad address).
    #[error("ship {ship} is unreachable: {reason}")]
    Unreachable { ship: String, reason: String },
    /// The ship answered once, but not this operation within its bound (see
    /// `docker::Bounds`): a wedged or overloaded engine, or a connection lost on the way.
    /// Whether the engine did it anyway is unknown.
    #[error("ship {ship}: {operation} {}", no_answer(*.idle, *.within))]
    NoAnswer {
        ship: String,
        /// What was asked, and of what: `create of web-1`.
        operation: String,
        within: std::time::Duration,
        /// A stream (a pull's progress, logs) that went silent for `within`, rather than
        /// a request that took longer in all.
        idle: bool,
    },
    /// The daemon refused the operation; its message is kept as is.
    #[error("{0}")]
    Daemon(String),
    /// A create refused because another container has the name (HTTP 409); the daemon's
    /// message as is. `start` creates without looking first where the play's list saw
    /// no container, and looks only when this says one came since.
    #[error("{0}")]
    NameInUse(String),
}

fn no_answer(idle: bool, within: std::time::Duration) -> String {
    if idle {
        format!("went silent for {}", seconds(within))
    } else {
        format!("got no answer within {}", seconds(within))
    }
}

/// A bound as people write it: `15s`, `1.5s`.
pub fn seconds(d: std::time::Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}s")
    } else {
        format!(
            "{}s",
            format!("{s:.2}")
                .trim_end_matches('0')
                .trim_end_matches('.')
        )
    }
}

/// A container just created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    pub id: String,
    /// What the engine left out of the definition and why (a field its API version does
    /// not know), one sentence each, naming the ship.
    pub warnings: Vec<String>,
}

/// An image as a ship's engine has it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageInfo {
    /// `sha256:…`, the id of its configuration: the same wherever the same image is.
    pub id: String,
    /// `repository@sha256:…`: the registry manifests it was pulled as (none when it was
    /// built or loaded on the ship).
    pub repo_digests: Vec<String>,
}

impl ImageInfo {
    /// The reference that pulls exactly this image from `repository`'s registry
    /// (`repository@sha256:…`), if it came from there.
    pub fn pinned(&self, repository: &str) -> Option<String> {
        let wanted = normalized_repository(repository);
        self.repo_digests.iter().find_map(|r| {
            let (repo, digest) = r.split_once('@')?;
            (normalized_repository(repo) == wanted).then(|| format!("{repository}@{digest}"))
        })
    }
}

/// An image reference with its tag made explicit (`busybox` is `busybox:latest`); a
/// reference by digest as it is.
pub fn tagged(image: &str) -> String {
    if image.contains('@') {
        return image.to_owned();
    }
    let parsed = maestro_core::model::Image::parse(image);
    format!("{}:{}", parsed.repository, parsed.tag)
}

/// A repository name as the engine compares them: Docker Hub's implicit registry and
/// `library/` namespace made explicit (`busybox`, `library/busybox` and
/// `docker.io/library/busybox` are one repository).
pub fn normalized_repository(repository: &str) -> String {
    let (first, rest) = repository.split_once('/').unwrap_or(("", repository));
    let is_registry = first.contains(['.', ':']) || first == "localhost";
    let (registry, path) = if is_registry {
        (first, rest)
    } else {
        ("docker.io", repository)
    };
    let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
        "docker.io"
    } else {
        registry
    };
    if registry == "docker.io" && !path.contains('/') {
        format!("docker.io/library/{path}")
    } else {
        format!("{registry}/{path}")
    }
}

/// Where a followed output begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum From {
    /// The last N lines (all of them with `None`).
    Tail(Option<u64>),
    /// Only lines the engine received after this moment (Unix time in nanoseconds, on the
    /// engine's clock): what a container started again wrote after what was shown.
    After(i64),
}

/// One line of a container's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub text: String,
    /// When the engine received it (Unix time in nanoseconds, on its clock), if it says.
    pub at: Option<i64>,
}

/// What [`Engine::watch_starts`] tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Starts {
    /// The engine is asked: any start from now on will be told.
    Watching,
    /// A container started under the name; its id.
    Started(String),
}

/// Why a container did not become healthy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unhealthy {
    /// The engine called it unhealthy; the output of its last health check, line by line.
    Failed {
        output: Vec<String>,
    },
    /// It stopped running first (`None`: it was removed).
    Exited {
        exit_code: Option<i64>,
    },
    /// It runs no health check (its image defines none and the file gives no test).
    NoHealthcheck,
    Engine(EngineError),
}

/// One ship's Docker engine.
pub trait Engine: Send + Sync + 'static {
    /// How many operations run on this ship at once: its `max_operations` (see
    /// [`operations`]), or fewer if the open-file limit holds fewer connections (see
    /// [`files`]). Plays take their places on the ship from it.
    fn operations(&self) -> usize;
    /// Every container of the environment on this ship (by its label), and every container
    /// named after one of `instances` or their generations (`NAME`, `NAME.previous`,
    /// `NAME.swapping`), labelled or not: a container maestro did not create is found by
    /// its name, as MaestroNG finds it. One or two calls, not one per container.
    fn list(
        &self,
        environment: &str,
        instances: &[String],
    ) -> impl Future<Output = Result<Vec<Observed>, EngineError>> + Send;
    /// The container with this name, if any.
    fn inspect(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Observed>, EngineError>> + Send;
    /// The image `image` names on this ship, `None` when absent.
    fn image(
        &self,
        image: &str,
    ) -> impl Future<Output = Result<Option<ImageInfo>, EngineError>> + Send;
    /// The id of the image `image` names on this ship (`sha256:…`), `None` when absent.
    fn image_id(
        &self,
        image: &str,
    ) -> impl Future<Output = Result<Option<String>, EngineError>> + Send {
        async move { Ok(self.image(image).await?.map(|i| i.id)) }
    }
    /// The manifest digest (`sha256:…`) the registry gives the tag `image` now, asked
    /// through this ship's engine without pulling; `None` when the registry does not say.
    fn resolve(
        &self,
        image: &str,
        credentials: Option<&Credentials>,
    ) -> impl Future<Output = Result<Option<String>, EngineError>> + Send;
    /// Gives the image `source` names the name `target` too (`repository:tag`).
    fn tag(
        &self,
        source: &str,
        target: &str,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Pulls an image, authenticating with `credentials` when given and retrying as they
    /// say; tells its progress (layers, bytes) to `progress` as it goes.
    fn pull(
        &self,
        image: &str,
        credentials: Option<&Credentials>,
        progress: &(dyn Fn(String) + Send + Sync),
    ) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Creates the container.
    fn create(
        &self,
        spec: &ContainerSpec,
    ) -> impl Future<Output = Result<Created, EngineError>> + Send;
    /// Renames a container (the previous generation is kept under another name).
    fn rename(&self, id: &str, name: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Changes a container's restart policy (`no` for a kept previous generation, so an
    /// engine restart does not start it).
    fn set_restart(
        &self,
        id: &str,
        policy: &(String, u32),
    ) -> impl Future<Output = Result<(), EngineError>> + Send;
    fn start(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
    fn stop(
        &self,
        id: &str,
        timeout_seconds: u32,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;
    fn kill(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Removes a stopped container and its anonymous volumes.
    fn remove(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// The last `tail` lines of output (all of it with `None`).
    fn logs(
        &self,
        id: &str,
        tail: Option<u64>,
    ) -> impl Future<Output = Result<Vec<String>, EngineError>> + Send;
    /// Sends the container's output, line by line, as it comes, from where `from` says;
    /// returns when the container's output ends (it stopped, or was removed).
    fn follow(
        &self,
        id: &str,
        from: From,
        lines: tokio::sync::mpsc::Sender<LogLine>,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Tells `starts` of every start of a container under the name `name`, learnt from the
    /// engine's event stream: first [`Starts::Watching`] once the engine is asked, then
    /// [`Starts::Started`] with the container's id at each start from that moment on (the
    /// events are asked from the engine's own present, so a start while the stream is being
    /// opened is not missed). Returns only when the stream fails or `starts` is closed.
    fn watch_starts(
        &self,
        name: &str,
        starts: tokio::sync::mpsc::Sender<Starts>,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Waits for a started container's health check to call it healthy, learning it from
    /// the engine's events (no polling); ends early when it is unhealthy or stops.
    fn wait_healthy(&self, id: &str) -> impl Future<Output = Result<(), Unhealthy>> + Send;
    /// Runs a command in the container and returns its exit code. The command may run for
    /// `within` (the caller's limit; the engine's requests around it have their own).
    fn exec(
        &self,
        id: &str,
        command: &[String],
        within: std::time::Duration,
    ) -> impl Future<Output = Result<i64, EngineError>> + Send;
    /// How a check or a probe on this machine can reach the container's app without
    /// Docker's userland proxy in between (see [`Reach`]). Nothing is known of a container
    /// that is gone.
    fn reach(&self, id: &str) -> impl Future<Output = Result<Reach, EngineError>> + Send;
}

/// How many operations run at once on a ship without `max_operations`: enough to keep an
/// engine busy, few enough that a play of hundreds of instances does not open hundreds of
/// connections to one ship at once (proxies and `ssh -L` have small listen backlogs).
const SHIP_OPERATIONS: usize = 16;

/// How many operations `ship` asks to run at once: its `max_operations`, or
/// [`SHIP_OPERATIONS`]; its engine client then holds as many connections, if the
/// open-file limit allows (see [`files::shares`]).
pub fn operations(ship: &maestro_core::model::Ship) -> usize {
    ship.max_operations.unwrap_or(SHIP_OPERATIONS)
}

/// Where a container's app itself listens, for a ship on this machine.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reach {
    /// The container shares the ship's network (`net: host`): its ports are the ship's
    /// own, with no proxy in between.
    pub host_network: bool,
    /// For each host port the container publishes over TCP, its own address on its
    /// network and the container port.
    pub published: HashMap<u16, std::net::SocketAddr>,
}

impl Reach {
    /// Where a connection to port `number` of the ship at `ship_ip` reaches the app
    /// itself, when that is known.
    pub fn direct(&self, ship_ip: &str, number: u16) -> Option<std::net::SocketAddr> {
        if self.host_network {
            let ip = ship_ip.parse::<std::net::IpAddr>().ok()?;
            return Some(std::net::SocketAddr::new(ip, number));
        }
        self.published.get(&number).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_reaches_the_app_past_the_proxy_where_it_can() {
        let addr = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        let bridge = Reach {
            host_network: false,
            published: HashMap::from([(8080, addr("172.17.0.2:80"))]),
        };
        let host = Reach {
            host_network: true,
            published: HashMap::new(),
        };
        let cases = [
            // Published: the container's own address and port.
            (&bridge, "127.0.0.1", 8080, Some(addr("172.17.0.2:80"))),
            // Not published: only through the ship (and its proxy, if any).
            (&bridge, "127.0.0.1", 9090, None),
            // Host networking: the ship's port is the app's, no proxy in between.
            (&host, "127.0.0.1", 9090, Some(addr("127.0.0.1:9090"))),
            (&host, "::1", 9090, Some(addr("[::1]:9090"))),
            // `localhost` may be either loopback: probed by name, as any ship.
            (&host, "localhost", 9090, None),
            (&Reach::default(), "127.0.0.1", 8080, None),
        ];
        for (reach, ship_ip, number, want) in cases {
            assert_eq!(
                reach.direct(ship_ip, number),
                want,
                "{reach:?} {ship_ip} {number}"
            );
        }
    }
}
