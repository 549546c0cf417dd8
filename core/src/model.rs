//! The validated environment: what every later step works from. Built once by
//! [`crate::schema`]; plays never look at YAML again.
//!
//! Nouns: a *ship* is a Docker host, a *service* is a named group of *instances*, an
//! instance is one container. Ids are indices into the [`Environment`]'s vectors.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use indexmap::IndexMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShipId(pub usize);
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceId(pub usize);
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId(pub usize);

#[derive(Clone, Debug)]
pub struct Environment {
    pub name: String,
    pub schema: u32,
    pub ships: Vec<Ship>,
    pub registries: Vec<Registry>,
    pub services: Vec<Service>,
    /// Every instance, services in file order and instances in file order within each.
    pub instances: Vec<Instance>,
    pub audit: Vec<Auditor>,
    /// The discovery variables (reference section 6.4), computed per service on first
    /// use (see [`Environment::container_env`]) and shared by the instances that receive
    /// them instead of copied into each: with deep `requires` chains they are most of an
    /// environment's data.
    pub discovery: Discovery,
}

impl Environment {
    pub fn ship(&self, id: ShipId) -> &Ship {
        &self.ships[id.0]
    }
    pub fn service(&self, id: ServiceId) -> &Service {
        &self.services[id.0]
    }
    pub fn instance(&self, id: InstanceId) -> &Instance {
        &self.instances[id.0]
    }
    pub fn instance_by_name(&self, name: &str) -> Option<InstanceId> {
        self.instances
            .iter()
            .position(|i| i.name == name)
            .map(InstanceId)
    }
    /// Every variable instance `id` is created with: its own (`Instance::env`), then its
    /// service's discovery variables, which win over an own variable of the same name.
    /// Each name appears once. `None` is a name given without a value (sent to Docker as
    /// a bare `NAME`).
    pub fn container_env(&self, id: InstanceId) -> impl Iterator<Item = (&str, Option<&str>)> + '_ {
        let service = self.instance(id).service;
        self.own_env(id)
            .chain(crate::variables::vars(self, service).map(|(k, v)| (k, Some(v))))
    }

    /// The first part of [`Environment::container_env`]: the instance's own variables,
    /// less those a discovery variable of the same name replaces.
    pub fn own_env(&self, id: InstanceId) -> impl Iterator<Item = (&str, Option<&str>)> + '_ {
        let instance = self.instance(id);
        let service = instance.service;
        instance
            .env
            .iter()
            .filter(move |(k, _)| !crate::variables::defines(self, service, k))
    }

    pub fn service_by_name(&self, name: &str) -> Option<ServiceId> {
        self.services
            .iter()
            .position(|s| s.name == name)
            .map(ServiceId)
    }
}

/// A Docker host. `ip` is what containers are told (and what checks connect to);
/// `endpoint` is how the controller reaches the daemon.
#[derive(Clone, Debug, PartialEq)]
pub struct Ship {
    pub name: String,
    pub ip: String,
    pub endpoint: Option<String>,
    pub docker_port: Option<u16>,
    pub socket_path: Option<String>,
    pub ssh_tunnel: Option<SshTunnel>,
    /// The newest Docker API version to speak to it, as written (`None`: `auto`, or not
    /// given); see [`ApiVersion`].
    pub api_version: Option<String>,
    /// Seconds; MaestroNG's default is 5.
    pub timeout: Option<f64>,
    pub tls: bool,
    pub tls_verify: bool,
    pub tls_ca_cert: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub ssl_version: Option<String>,
    /// At most this many operations at once on this ship (`None`: no limit of its own).
    pub max_operations: Option<usize>,
}

/// A Docker Engine API version, `MAJOR.MINOR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    pub major: u32,
    pub minor: u32,
}

impl ApiVersion {
    /// The oldest API maestro speaks: what its plays use (health checks, updating a
    /// container's restart policy, label filters) is all there from 1.25 (Docker 1.13).
    pub const OLDEST: ApiVersion = ApiVersion {
        major: 1,
        minor: 25,
    };

    pub fn parse(text: &str) -> Option<ApiVersion> {
        let (major, minor) = text.trim().split_once('.')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        (digits(major) && digits(minor)).then_some(())?;
        Some(ApiVersion {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl Ship {
    /// A ship with nothing but a name and an address.
    pub fn new(name: impl Into<String>, ip: impl Into<String>) -> Self {
        Ship {
            name: name.into(),
            ip: ip.into(),
            endpoint: None,
            docker_port: None,
            socket_path: None,
            ssh_tunnel: None,
            api_version: None,
            timeout: None,
            tls: false,
            tls_verify: false,
            tls_ca_cert: None,
            tls_cert: None,
            tls_key: None,
            ssl_version: None,
            max_operations: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SshTunnel {
    pub user: String,
    /// The private key file.
    pub key: String,
    pub port: u16,
    /// The known-hosts file to check the ship's host key against (ssh's default if none).
    pub known_hosts: Option<String>,
    /// Trust a host key never seen before (and remember it); a changed key is still refused.
    pub accept_new_host_key: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Registry {
    pub name: String,
    pub registry: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub email: Option<String>,
    pub retry_attempts: u32,
    pub retry_when: Vec<u16>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    pub name: String,
    pub image: String,
    /// Direct hard dependencies, in file order.
    pub requires: Vec<ServiceId>,
    /// Direct soft dependencies: their variables, no ordering.
    pub wants_info: Vec<ServiceId>,
    pub omit: bool,
    pub instances: Vec<InstanceId>,
}

/// A variable's name and value as the file gives them (`None`: a name without a value).
pub type Variables = IndexMap<String, Option<String>>;

/// An instance's variables from the file, in MaestroNG's order: its service's (in their
/// place, with the instance's value where it gives the same name), then the instance's
/// others. The service's are shared by its instances rather than copied into each: the
/// copies were 107 MB of the 949 MB that loading 200,000 instances took.
#[derive(Clone, Debug, Default)]
pub struct Env {
    service: Arc<Variables>,
    own: Variables,
}

impl Env {
    pub fn new(service: Arc<Variables>, own: Variables) -> Env {
        Env { service, own }
    }

    /// A variable's value: `None` when it is not set, `Some(None)` when it is named
    /// without a value.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.own
            .get(name)
            .or_else(|| self.service.get(name))
            .map(Option::as_deref)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> + '_ {
        let service = self
            .service
            .iter()
            .map(|(k, v)| (k.as_str(), self.own.get(k).unwrap_or(v).as_deref()));
        let own = self
            .own
            .iter()
            .filter(|(k, _)| !self.service.contains_key(k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_deref()));
        service.chain(own)
    }
}

impl PartialEq for Env {
    fn eq(&self, other: &Env) -> bool {
        self.iter().eq(other.iter())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    pub name: String,
    pub service: ServiceId,
    pub ship: ShipId,
    /// Shared with the service's other instances when they run the same image (most do):
    /// one parsed name instead of one per instance.
    pub image: std::sync::Arc<Image>,
    pub command: Option<Command>,
    /// By port name, service ports first, then the instance's own.
    pub ports: IndexMap<String, Port>,
    /// The variables from the file (env files and `env`, service then instance) and the
    /// six fixed ones, in MaestroNG's precedence; `None` is a name given without a value.
    /// The discovery variables are added by [`Environment::container_env`].
    pub env: Env,
    /// The variables whose value is a secret (`NAME: {secret: "file:PATH"}`), read at
    /// play time: in `env` their value is [`guestutils::redact::SECRET`], which is what
    /// `config` and `plan` show; plays put the value in the container spec (see
    /// [`crate::spec::apply_secrets`]).
    pub secrets: IndexMap<String, SecretSource>,
    /// Bind mounts by host path.
    pub volumes: IndexMap<String, Bind>,
    pub container_volumes: Vec<String>,
    pub volumes_from: Vec<InstanceId>,
    /// `(container, alias)`, sorted.
    pub links: Vec<(String, String)>,
    pub username: Option<String>,
    pub workdir: Option<String>,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `(host, address)`, sorted.
    pub extra_hosts: Vec<(String, String)>,
    pub net: Option<String>,
    pub restart: RestartPolicy,
    pub dns: Vec<String>,
    pub stop_timeout: u32,
    pub limits: Limits,
    /// Boxed, as `healthcheck` is: few instances have one, and every instance would
    /// otherwise carry the room for it (an environment may hold 200,000 instances).
    pub log: Option<Box<LogConfig>>,
    pub security_opt: Vec<String>,
    pub ulimits: Vec<Ulimit>,
    pub labels: IndexMap<String, String>,
    pub lxc_conf: Vec<(String, String)>,
    pub lifecycle: IndexMap<LifecycleState, Vec<Check>>,
    /// The Docker health check, when the file configures one (service's, then the
    /// instance's fields over it). `None`: the image's own HEALTHCHECK (if any) runs but
    /// does not gate readiness.
    pub healthcheck: Option<Box<Healthcheck>>,
}

impl Instance {
    /// The container's hostname: its name, unless a network mode is set.
    pub fn hostname(&self) -> Option<&str> {
        self.net.is_none().then_some(self.name.as_str())
    }
}

/// An image reference split as MaestroNG splits it (`rsplit(':', 1)`, a `/` after the
/// colon means a registry port and no tag).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// As written in the file.
    pub name: String,
    pub repository: String,
    /// `latest` when none is given.
    pub tag: String,
}

impl Image {
    pub fn parse(name: &str) -> Image {
        let (repository, tag) = match name.rsplit_once(':') {
            Some((_, after)) if after.contains('/') => (name, ""),
            Some((repository, tag)) => (repository, tag),
            None => (name, ""),
        };
        Image {
            name: name.to_owned(),
            repository: repository.to_owned(),
            tag: if tag.is_empty() { "latest" } else { tag }.to_owned(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// A string, split shell-style by the runtime (docker-py uses `shlex.split`).
    Shell(String),
    Args(Vec<String>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// A port number or range, kept as written (leading zeros included) because that text is
/// what the discovery variables carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    pub number: String,
    pub protocol: Protocol,
}

impl PortSpec {
    /// `P[-Q]/proto`, Docker's and MaestroNG's form.
    pub fn with_protocol(&self) -> String {
        format!("{}/{}", self.number, self.protocol.as_str())
    }

    /// The first (or only) port number of the range.
    pub fn first(&self) -> Option<u16> {
        self.number.split('-').next()?.parse().ok()
    }

    pub fn is_range(&self) -> bool {
        self.number.contains('-')
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub exposed: PortSpec,
    pub host_ip: String,
    pub external: PortSpec,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bind {
    pub target: String,
    pub mode: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartPolicy {
    pub name: String,
    pub retries: u32,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            name: "no".into(),
            retries: 0,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub cpu: Option<i64>,
    /// Bytes.
    pub memory: Option<u64>,
    /// Bytes.
    pub swap: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    pub driver: String,
    pub options: IndexMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LifecycleState {
    PreStart,
    Running,
    PreStop,
    Stopped,
}

impl LifecycleState {
    pub const ALL: [LifecycleState; 4] = [
        LifecycleState::PreStart,
        LifecycleState::Running,
        LifecycleState::PreStop,
        LifecycleState::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleState::PreStart => "pre-start",
            LifecycleState::Running => "running",
            LifecycleState::PreStop => "pre-stop",
            LifecycleState::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }
}

/// A Docker health check (Compose's `healthcheck:`), which also gates readiness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Healthcheck {
    /// `healthcheck: image`: the image's own HEALTHCHECK gates readiness; the container
    /// gets no health check of its own.
    Image,
    /// The file's health check. A field left out is the image's (or Docker's default).
    Defined {
        /// Docker's form: `[CMD, program, args...]` or `[CMD-SHELL, command]`.
        test: Option<Vec<String>>,
        interval: Option<Duration>,
        timeout: Option<Duration>,
        start_period: Option<Duration>,
        /// Needs Docker API 1.44; older engines create the container without it.
        start_interval: Option<Duration>,
        retries: Option<u32>,
    },
    /// No health check at all, not even the image's (`test: [NONE]`, `disable: true`).
    Disabled,
}

impl Healthcheck {
    /// Whether readiness waits for the engine to call the container healthy.
    pub fn gates(&self) -> bool {
        !matches!(self, Healthcheck::Disabled)
    }
}

/// A duration the way Compose writes it (`1m30s`, `500ms`, `0s`).
pub fn compose_duration(d: Duration) -> String {
    let mut nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("h", 3_600_000_000_000u128),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ] {
        if nanos >= size {
            out.push_str(&format!("{}{unit}", nanos / size));
            nanos %= size;
        }
    }
    out
}

/// A lifecycle check, with MaestroNG's defaults already applied.
#[derive(Clone, Debug, PartialEq)]
pub enum Check {
    /// Connects to the ship's address on the port's external number.
    Tcp {
        port: String,
        number: u16,
        max_wait: u32,
    },
    Http {
        host: String,
        port: u16,
        path: String,
        scheme: String,
        method: String,
        match_regex: Option<String>,
        /// Seconds.
        max_wait: f64,
        /// `requests_options` (boxed: most checks have none, and the enum stays small).
        options: Box<RequestOptions>,
    },
    /// Runs a command on the controller's machine.
    Exec {
        command: Vec<String>,
        attempts: u32,
        env_via_stdin: bool,
    },
    /// Runs a command in the container.
    Rexec { command: Vec<String>, attempts: u32 },
    /// Seconds.
    Sleep { wait: f64 },
}

impl Check {
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Tcp { .. } => "tcp",
            Check::Http { .. } => "http",
            Check::Exec { .. } => "exec",
            Check::Rexec { .. } => "rexec",
            Check::Sleep { .. } => "sleep",
        }
    }
}

/// What MaestroNG passes to Python requests (`requests_options` of an `http` check).
#[derive(Clone, Debug, PartialEq)]
pub struct RequestOptions {
    pub verify: Verify,
    /// Sent with every request, after maestro's own (so they can replace them).
    pub headers: Vec<(String, String)>,
    /// HTTP Basic credentials: `auth: [user, password]`.
    pub auth: Option<(String, Secret)>,
    /// `timeout`: seconds to connect and seconds between bytes read, as requests' pair.
    pub timeout: Option<(f64, f64)>,
    /// `allow_redirects` (requests' default: follow).
    pub allow_redirects: bool,
}

impl Default for RequestOptions {
    fn default() -> Self {
        RequestOptions {
            verify: Verify::Default,
            headers: Vec::new(),
            auth: None,
            timeout: None,
            allow_redirects: true,
        }
    }
}

/// Which servers an HTTPS request trusts (requests' `verify`).
#[derive(Clone, Debug, PartialEq)]
pub enum Verify {
    /// `true` (or absent): the default trust of the controller's machine.
    Default,
    /// `false`: any certificate; the connection is encrypted, the server not verified.
    Off,
    /// A CA bundle (a PEM file, or a folder of them), as written in the file.
    Bundle(String),
}

/// A value that must never be shown: its `Debug` prints a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Where a secret variable's value is read from when a play needs it. The value is never
/// part of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecretSource {
    /// `file:PATH`: the file's content, one trailing newline removed. `~/` is the user's
    /// home; a relative path is relative to the environment file's folder.
    File(String),
    /// `env:NAME`: a variable of maestro's own environment.
    Env(String),
    /// `cmd:COMMAND`: what the command prints, one trailing newline removed. Its words
    /// are split as a shell splits them, but no shell runs it.
    Cmd(Vec<String>),
}

impl SecretSource {
    /// `file`, `env` or `cmd`, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            SecretSource::File(_) => "file",
            SecretSource::Env(_) => "env",
            SecretSource::Cmd(_) => "cmd",
        }
    }
}

impl std::fmt::Display for SecretSource {
    /// For messages: a file's path and a variable's name as written; of a command, only
    /// the program (its arguments may carry a credential: `curl -H "Authorization: …"`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::File(path) => write!(f, "file:{path}"),
            SecretSource::Env(name) => write!(f, "env:{name}"),
            SecretSource::Cmd(words) => match words.split_first() {
                Some((program, [])) => write!(f, "cmd:{program}"),
                Some((program, _)) => write!(f, "cmd:{program} …"),
                None => write!(f, "cmd:"),
            },
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Auditor {
    pub kind: AuditorKind,
    pub level: AuditLevel,
    pub ignore_errors: bool,
}

/// MaestroNG's (Python logging's) levels, lowest first: an auditor records the events at
/// or above its level. Plays are `Info` events, each instance's task a `Debug` one;
/// failures always go out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AuditLevel {
    Debug,
    Info,
}

#[derive(Clone, Debug, PartialEq)]
pub enum AuditorKind {
    Log {
        file: String,
    },
    /// A webhook; `payload` is a template whose string leaves are formatted per event.
    Http {
        endpoint: String,
        payload: Data,
        headers: Vec<(String, String)>,
        method: String,
        /// Seconds.
        timeout: f64,
    },
    Exec {
        script: String,
        args: Option<String>,
    },
    /// Posts to a Slack channel with a bot token (`chat.postMessage`).
    Slack {
        channel: String,
        token: Secret,
        name: String,
        icon: Option<String>,
        /// Where Slack's Web API is (an extension: `api_url`, default
        /// `https://slack.com/api`).
        api_url: String,
    },
    /// MaestroNG's test auditor: every notification fails.
    Fail,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_split_like_maestro_ng() {
        let cases = [
            ("busybox", "busybox", "latest"),
            ("busybox:", "busybox", "latest"),
            ("busybox:1.36", "busybox", "1.36"),
            ("reg:5000/x", "reg:5000/x", "latest"),
            ("reg:5000/x:2", "reg:5000/x", "2"),
            (
                "quay.io:8443/acme/svc-canary",
                "quay.io:8443/acme/svc-canary",
                "latest",
            ),
            ("svc@sha256:abc", "svc@sha256", "abc"),
        ];
        for (name, repository, tag) in cases {
            let image = Image::parse(name);
            assert_eq!(
                (image.repository.as_str(), image.tag.as_str()),
                (repository, tag),
                "{name}"
            );
        }
    }

    /// An instance's variables read as one map would hold them after the service's
    /// inserts and then the instance's: order and values.
    #[test]
    fn env_reads_as_one_map() {
        type Pairs<'a> = &'a [(&'a str, Option<&'a str>)];
        let cases: &[(Pairs, Pairs)] = &[
            (&[], &[]),
            (&[("A", Some("1")), ("B", None)], &[]),
            (&[], &[("X", Some("1"))]),
            (
                &[("A", Some("1")), ("B", Some("2")), ("C", Some("3"))],
                &[("X", Some("x")), ("B", Some("b")), ("A", None)],
            ),
        ];
        let map = |pairs: Pairs| -> Variables {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_owned)))
                .collect()
        };
        for (service, own) in cases {
            let mut one = map(service);
            one.extend(map(own));
            let env = Env::new(Arc::new(map(service)), map(own));
            let want: Vec<(&str, Option<&str>)> = one
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_deref()))
                .collect();
            assert_eq!(env.iter().collect::<Vec<_>>(), want, "{service:?} {own:?}");
            for (k, v) in &one {
                assert_eq!(env.get(k), Some(v.as_deref()));
            }
            assert_eq!(env.get("NOT_SET"), None);
        }
    }
}

/// Free-form data from the file (auditor payload templates): scalars as written.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    Null,
    Scalar(String),
    List(Vec<Data>),
    Map(Vec<(String, Data)>),
}

/// The discovery variables of every service, computed on first use and per service:
/// loading computes none (`deptree` never needs them), a command that builds one
/// instance's container computes its service's only. Each service's *block* (its
/// instances' hosts, ports and instance list) is computed once and shared by every
/// service that receives it, so instances of a service and the dependents of a service
/// see the same memory rather than copies.
#[derive(Clone, Debug, Default)]
pub struct Discovery {
    /// By service: its variables (block `2 * s` is service `s` with internal ports,
    /// `2 * s + 1` without).
    pub(crate) blocks: Vec<OnceLock<Block>>,
    /// By service: what its instances receive.
    pub(crate) received: Vec<OnceLock<Received>>,
    /// By service: the digest of what its instances receive (see
    /// [`crate::spec::discovery_digest`]).
    pub(crate) digests: Vec<OnceLock<String>>,
}

/// One service's discovery variables, with an index of their names.
#[derive(Clone, Debug)]
pub(crate) struct Block {
    pub vars: Vec<DiscoveryVar>,
    /// Each name, and whether some variable of that name is not internal (so is also
    /// received by the service's dependents).
    pub names: HashMap<String, bool>,
}

/// What one service's instances receive.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    /// The blocks, in precedence order (later ones win).
    pub list: Vec<usize>,
    /// The merged variables, only where a name comes twice in the blocks of `list`
    /// (a service that wants its own info, or names that normalise alike, as `a-b` and
    /// `a_b` do); otherwise the blocks are read as they are.
    pub merged: Option<IndexMap<String, String>>,
}

impl Discovery {
    /// Room for `services` services, nothing computed.
    pub(crate) fn new(services: usize) -> Self {
        Discovery {
            blocks: (0..services).map(|_| OnceLock::new()).collect(),
            received: (0..services).map(|_| OnceLock::new()).collect(),
            digests: (0..services).map(|_| OnceLock::new()).collect(),
        }
    }

    /// How many services' discovery variables have been computed (for tests: loading
    /// and `deptree` compute none).
    pub fn computed_services(&self) -> usize {
        self.received.iter().filter(|r| r.get().is_some()).count()
    }
}

#[derive(Clone, Debug)]
pub(crate) struct DiscoveryVar {
    pub name: String,
    pub value: String,
    /// Received only by the service's own instances.
    pub internal: bool,
}
