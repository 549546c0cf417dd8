//! What a container is made of, as data: the instance's definition resolved into the
//! values a container runtime needs, and the digest that tells whether a running
//! container still matches its definition.
//!
//! The digest covers everything that defines the container (image, command, variables,
//! ports, volumes, limits, ...) and nothing that changes from play to play. It is a
//! versioned canonical text hashed with 128-bit FNV-1a, so it changes between maestro
//! versions only if the definition does (or the canonical form's version is bumped).

use std::fmt::Write as _;

use crate::model::{Command, Environment, Healthcheck, InstanceId, ServiceId};

/// Labels maestro puts on every container it creates.
pub mod labels {
    /// The environment's `name`.
    pub const ENVIRONMENT: &str = "io.maestro.environment";
    pub const SERVICE: &str = "io.maestro.service";
    pub const INSTANCE: &str = "io.maestro.instance";
    /// The definition digest, see [`super::digest`].
    pub const DIGEST: &str = "io.maestro.digest";
    /// Per-part digests, see [`super::parts`].
    pub const PARTS: &str = "io.maestro.parts";
    /// The name of the ship the container was created for: ships that share one engine
    /// see each other's containers, and must not take them for their own.
    pub const SHIP: &str = "io.maestro.ship";
    /// What the container is to maestro: [`ROLE_INSTANCE`] or [`ROLE_LOCK`]. Docker
    /// cannot change a label later, so a kept previous generation keeps its role and is
    /// told apart by its name (see [`super::previous_name`]).
    pub const ROLE: &str = "io.maestro.role";
    pub const ROLE_INSTANCE: &str = "instance";
    pub const ROLE_LOCK: &str = "lock";
    /// The restart policy the container was created with (`name:retries`), so that a
    /// kept previous generation (whose policy is set to `no`) gets its own back when it
    /// is restored.
    pub const RESTART: &str = "io.maestro.restart";
    /// The container's secret variables, by their salted hashes (see
    /// [`super::apply_secrets`]): never their values.
    pub const SECRETS: &str = "io.maestro.secrets";
}

/// What the names of an instance's other containers end in: [`previous_name`],
/// [`swapping_name`], [`retiring_name`], [`staged_name`]. No instance name may end so.
pub const GENERATION_SUFFIXES: [&str; 4] = [".previous", ".swapping", ".retiring", ".staged"];

/// The name a replaced container is kept under, as the instance's previous generation
/// (`deploy` keeps it, `rollback` returns to it, `clean` removes it).
pub fn previous_name(instance: &str) -> String {
    format!("{instance}{}", GENERATION_SUFFIXES[0])
}

/// The name a container has for a moment while `rollback` swaps two generations.
pub fn swapping_name(instance: &str) -> String {
    format!("{instance}{}", GENERATION_SUFFIXES[1])
}

/// The name `deploy` keeps the container it replaces under (stopped) until the new one is
/// ready; only then is the older previous generation removed and this one becomes the
/// previous generation. A container under this name means a deploy was interrupted.
pub fn retiring_name(instance: &str) -> String {
    format!("{instance}{}", GENERATION_SUFFIXES[2])
}

/// The name `deploy` creates an instance's new container under ahead of its turn, beside
/// the container it will replace; at the turn, once the replaced one is renamed
/// [`retiring_name`], it takes the instance's name and is started. It is never started
/// under this name, so one left here (by a killed deploy) is of no use to anything:
/// `deploy` and `clean` remove it, and `rollback` from the instances it rolls back.
pub fn staged_name(instance: &str) -> String {
    format!("{instance}{}", GENERATION_SUFFIXES[3])
}

/// The instance a container's name is of: its own, or another generation's.
pub fn instance_of(name: &str) -> &str {
    GENERATION_SUFFIXES
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

/// The canonical form's versions: a new one only when the form itself must change.
/// Version 1 hashed every variable of the container. Version 2 hashes the instance's own
/// variables and one digest of its service's discovery variables ([`discovery_digest`]),
/// computed once per service: comparing a container costs its own definition, not its
/// service's size (an instance of a service of 2,000 receives 6,000 variables). A label
/// of version 1 is still compared in its own form ([`legacy_digest`]), so nothing an
/// earlier maestro created looks outdated for the change of form.
const CANONICAL_V1: &str = "maestro-container-v1";
const CANONICAL_V2: &str = "maestro-container-v2";
/// How a version 2 digest label starts; version 1's is the bare hex digest.
const V2_PREFIX: &str = "v2:";

/// Which canonical form.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    V1,
    V2,
}

/// Everything a container is created from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub hostname: Option<String>,
    pub command: Option<Vec<String>>,
    /// `NAME=value`, or a bare `NAME` for a variable without a value: the instance's own
    /// ([`ContainerSpec::own_env`] of them), then its service's discovery variables.
    pub env: Vec<String>,
    /// How many of `env`'s entries, from the first, are the instance's own.
    pub own_env: usize,
    /// The digest of its service's discovery variables ([`discovery_digest`]).
    pub discovery_digest: String,
    /// `(container port "80/tcp", host ip, host port "8080" or range "8080-8082")`.
    pub ports: Vec<(String, String, String)>,
    /// `host:container:mode`.
    pub binds: Vec<String>,
    /// Container-only volumes and bind targets (Docker's `Volumes`).
    pub volumes: Vec<String>,
    pub volumes_from: Vec<String>,
    /// `name:alias`.
    pub links: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `host:address`.
    pub extra_hosts: Vec<String>,
    pub network_mode: Option<String>,
    pub restart_policy: (String, u32),
    pub dns: Vec<String>,
    pub cpu_shares: Option<i64>,
    pub memory: Option<u64>,
    pub memory_swap: Option<u64>,
    pub log_driver: Option<(String, Vec<(String, String)>)>,
    pub security_opt: Vec<String>,
    /// `(name, soft, hard)`.
    pub ulimits: Vec<(String, i64, i64)>,
    /// The user's labels and maestro's own, digest included.
    pub labels: Vec<(String, String)>,
    pub stop_timeout: u32,
    /// The health check the container is created with. `Image` creates it with none of
    /// its own (the image's runs): it only changes how readiness is decided.
    pub healthcheck: Option<Healthcheck>,
}

/// The spec of instance `id`.
pub fn container_spec(env: &Environment, id: InstanceId) -> ContainerSpec {
    let mut spec = definition(env, id, true);
    let instance = env.instance(id);
    let service = env.service(instance.service);
    // One canonical text for both labels: it is most of the cost of `status` on many
    // containers.
    let canonical = canonical(&spec, Form::V2);
    let digest = format!("{V2_PREFIX}{}", digest_of(&canonical));
    let parts = parts_of(&canonical);
    spec.labels.extend([
        (labels::PARTS.to_owned(), parts),
        (labels::ENVIRONMENT.to_owned(), env.name.clone()),
        (labels::SERVICE.to_owned(), service.name.clone()),
        (labels::INSTANCE.to_owned(), instance.name.clone()),
        (
            labels::SHIP.to_owned(),
            env.ship(instance.ship).name.clone(),
        ),
        (labels::ROLE.to_owned(), labels::ROLE_INSTANCE.to_owned()),
        (
            labels::RESTART.to_owned(),
            format!("{}:{}", instance.restart.name, instance.restart.retries),
        ),
        (labels::DIGEST.to_owned(), digest),
    ]);
    spec
}

/// The definition digest of instance `id` (its [`labels::DIGEST`] label), without
/// building the container's discovery variables: what `status` compares.
pub fn definition_digest(env: &Environment, id: InstanceId) -> String {
    digest(&definition(env, id, false))
}

/// The spec without maestro's labels; its env without the discovery variables unless
/// `discovery` (the digest needs only theirs, [`ContainerSpec::discovery_digest`]).
fn definition(env: &Environment, id: InstanceId, discovery: bool) -> ContainerSpec {
    let instance = env.instance(id);
    let command = instance.command.as_ref().map(|c| match c {
        Command::Args(args) => args.clone(),
        // Validation guarantees the words split (balanced quotes).
        Command::Shell(line) => crate::schema::shell_words(line).unwrap_or_default(),
    });
    let mut env_list: Vec<String> = env
        .own_env(id)
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k.to_owned(),
        })
        .collect();
    let own_env = env_list.len();
    if discovery {
        env_list
            .extend(crate::variables::vars(env, instance.service).map(|(k, v)| format!("{k}={v}")));
    }
    let ports = instance.ports.values().flat_map(docker_ports).collect();
    let binds = instance
        .volumes
        .iter()
        .map(|(host, b)| format!("{host}:{}:{}", b.target, b.mode))
        .collect();
    let mut volumes: Vec<String> = instance
        .volumes
        .values()
        .map(|b| b.target.clone())
        .collect();
    volumes.extend(instance.container_volumes.iter().cloned());
    volumes.sort();
    volumes.dedup();
    ContainerSpec {
        name: instance.name.clone(),
        image: instance.image.name.clone(),
        hostname: instance.hostname().map(str::to_owned),
        command,
        env: env_list,
        own_env,
        discovery_digest: discovery_digest(env, instance.service).to_owned(),
        ports,
        binds,
        volumes,
        volumes_from: instance
            .volumes_from
            .iter()
            .map(|v| env.instance(*v).name.clone())
            .collect(),
        links: instance
            .links
            .iter()
            .map(|(c, a)| format!("{c}:{a}"))
            .collect(),
        user: instance.username.clone(),
        workdir: instance.workdir.clone(),
        privileged: instance.privileged,
        cap_add: instance.cap_add.clone(),
        cap_drop: instance.cap_drop.clone(),
        extra_hosts: instance
            .extra_hosts
            .iter()
            .map(|(h, a)| format!("{h}:{a}"))
            .collect(),
        network_mode: instance.net.clone(),
        restart_policy: (instance.restart.name.clone(), instance.restart.retries),
        dns: instance.dns.clone(),
        cpu_shares: instance.limits.cpu,
        memory: instance.limits.memory,
        memory_swap: instance.limits.swap,
        log_driver: instance.log.as_ref().map(|l| {
            (
                l.driver.clone(),
                l.options
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )
        }),
        security_opt: instance.security_opt.clone(),
        ulimits: instance
            .ulimits
            .iter()
            .map(|u| (u.name.clone(), u.soft, u.hard))
            .collect(),
        labels: instance
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        stop_timeout: instance.stop_timeout,
        healthcheck: instance.healthcheck.as_deref().cloned(),
    }
}

/// The digest of what `service`'s instances receive as discovery variables, computed
/// once per service: each `NAME=value` in the canonical form's env lines, sorted.
pub fn discovery_digest(env: &Environment, service: ServiceId) -> &str {
    env.discovery.digests[service.0].get_or_init(|| {
        let mut lines: Vec<String> = crate::variables::vars(env, service)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        lines.sort_unstable();
        let mut hash = Fnv1a128::new();
        let mut line = String::new();
        for v in &lines {
            line.clear();
            let _ = writeln!(line, "env:{}:{v}", v.len());
            hash.write(line.as_bytes());
        }
        format!("{:032x}", hash.0)
    })
}

/// Puts the values of instance's secret variables into `spec` (made by [`container_spec`],
/// where they are [`guestutils::redact::SECRET`]) and records them in the
/// [`labels::SECRETS`] label as `salt=SALT;NAME=HASH;…` (by name), where HASH is
/// `hash(salt, name, value)`. The digest does not change (it covers the placeholder):
/// a rotated secret is told by its hash, which is salted per container so that a label
/// cannot be matched against a list of likely values computed once for all containers.
/// Comparing with an existing container takes its salt ([`secrets_salt`]); a new
/// container gets a new one.
///
/// `values` are `(name, value)`; a secret variable without one stays the placeholder.
pub fn apply_secrets(
    spec: &mut ContainerSpec,
    values: &[(&str, &str)],
    salt: &str,
    hash: &dyn Fn(&str, &str, &str) -> String,
) {
    if values.is_empty() {
        return;
    }
    for entry in &mut spec.env {
        let name = entry.split_once('=').map_or(entry.as_str(), |(n, _)| n);
        if let Some((_, value)) = values.iter().find(|(n, _)| *n == name) {
            *entry = format!("{name}={value}");
        }
    }
    let mut hashes: Vec<(&str, String)> = values
        .iter()
        .map(|(name, value)| (*name, hash(salt, name, value)))
        .collect();
    hashes.sort();
    let mut label = format!("salt={salt}");
    for (name, hash) in hashes {
        let _ = write!(label, ";{name}={hash}");
    }
    spec.labels.push((labels::SECRETS.to_owned(), label));
}

/// The salt of a [`labels::SECRETS`] label.
pub fn secrets_salt(label: &str) -> Option<&str> {
    label.split(';').next()?.strip_prefix("salt=")
}

/// The secret variables whose hash differs between two [`labels::SECRETS`] labels (all of
/// `new`'s when the salts differ or there was none), by name. `new` is `None` when the
/// instance has no secrets: nothing to compare (a variable that stopped being a secret
/// changes the digest).
pub fn changed_secrets(old: Option<&str>, new: Option<&str>) -> Vec<String> {
    let Some(new) = new else {
        return Vec::new();
    };
    let pairs = |label: &str| -> Vec<(String, String)> {
        label
            .split(';')
            .skip(1)
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    let same_salt = old.and_then(secrets_salt) == secrets_salt(new);
    let old = old.map(pairs).unwrap_or_default();
    pairs(new)
        .into_iter()
        .filter(|pair| !same_salt || !old.contains(pair))
        .map(|(name, _)| name)
        .collect()
}

/// A port as the engine takes it: `(container port, host ip, host port or range)`.
///
/// The engine takes one container port per entry (`ExposedPorts` keys are single ports;
/// `docker run -p 1234-1236:1234-1236` is expanded by the Docker CLI), so a range of
/// container ports becomes one entry per port, each bound to the host port at the same
/// offset, as the CLI does. (MaestroNG sent the range as one key, which every engine
/// refuses: such containers were never created.) A single container port keeps its host
/// side as written: a host range there means any free port in it. (A container range on a
/// host side of another size is refused at load; were one here, it would be sent as
/// written, for the engine to refuse.)
fn docker_ports(p: &crate::model::Port) -> Vec<(String, String, String)> {
    // Port numbers (u16): MaestroNG checks no bounds, and nothing larger is expanded.
    let range = |number: &str| -> Option<(u32, u32)> {
        let (a, b) = number.split_once('-')?;
        Some((a.parse::<u16>().ok()?.into(), b.parse::<u16>().ok()?.into()))
    };
    let protocol = p.exposed.protocol.as_str();
    if let (Some((c1, c2)), Some((h1, h2))) = (range(&p.exposed.number), range(&p.external.number))
    {
        if c2 >= c1 && c2 - c1 == h2.wrapping_sub(h1) {
            return (c1..=c2)
                .map(|c| {
                    (
                        format!("{c}/{protocol}"),
                        p.host_ip.clone(),
                        (h1 + (c - c1)).to_string(),
                    )
                })
                .collect();
        }
    }
    vec![(
        p.exposed.with_protocol(),
        p.host_ip.clone(),
        p.external.number.clone(),
    )]
}

/// The definition digest of a spec (its maestro labels and the stop timeout, which is
/// not part of the container, excluded). Order-insensitive where Docker is: variables,
/// labels, binds, ports and the like are sorted first.
pub fn digest(spec: &ContainerSpec) -> String {
    format!("{V2_PREFIX}{}", digest_of(&canonical(spec, Form::V2)))
}

/// Whether a digest label is of the canonical form's first version (which
/// [`legacy_digest`] and [`legacy_labels`] give).
pub fn is_legacy(digest: &str) -> bool {
    !digest.starts_with(V2_PREFIX)
}

/// [`digest`] in the first canonical form, as an earlier maestro labelled its containers:
/// every variable hashed. `spec` must have its discovery variables ([`container_spec`]).
pub fn legacy_digest(spec: &ContainerSpec) -> String {
    digest_of(&canonical(spec, Form::V1))
}

/// The digest and parts labels in the first canonical form (see [`legacy_digest`]), from
/// one canonical text.
pub fn legacy_labels(spec: &ContainerSpec) -> (String, String) {
    let canonical = canonical(spec, Form::V1);
    (digest_of(&canonical), parts_of(&canonical))
}

fn digest_of(canonical: &[(&'static str, String)]) -> String {
    let mut hash = Fnv1a128::new();
    for (_, text) in canonical {
        hash.write(text.as_bytes());
    }
    format!("{:032x}", hash.0)
}

fn parts_of(canonical: &[(&'static str, String)]) -> String {
    let mut out = String::new();
    for (key, text) in canonical {
        if text.is_empty() || *key == "version" {
            continue;
        }
        let mut hash = Fnv1a128::new();
        hash.write(text.as_bytes());
        if !out.is_empty() {
            out.push(',');
        }
        let _ = write!(out, "{key}={:08x}", hash.0 as u32);
    }
    out
}

/// The parts that differ between two `parts` labels, by name.
pub fn changed_parts(old: &str, new: &str) -> Vec<String> {
    let split = |s: &str| -> Vec<(String, String)> {
        s.split(',')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    let (old, new) = (split(old), split(new));
    let mut changed: Vec<String> = Vec::new();
    for (key, value) in &new {
        if !old.iter().any(|(k, v)| k == key && v == value) {
            changed.push(key.clone());
        }
    }
    for (key, _) in &old {
        if !new.iter().any(|(k, _)| k == key) && !changed.contains(key) {
            changed.push(key.clone());
        }
    }
    changed
}

/// The canonical text of each part, in a fixed order; the digest hashes them all.
fn canonical(spec: &ContainerSpec, form: Form) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let mut field = |key: &'static str, values: &mut dyn Iterator<Item = String>| {
        let mut values: Vec<String> = values.collect();
        values.sort();
        let mut text = String::new();
        for v in values {
            // Length-prefixed, so no value can be mistaken for a separator.
            let _ = writeln!(text, "{key}:{}:{v}", v.len());
        }
        out.push((key, text));
    };
    let version = match form {
        Form::V1 => CANONICAL_V1,
        Form::V2 => CANONICAL_V2,
    };
    field("version", &mut std::iter::once(version.to_owned()));
    field("image", &mut std::iter::once(spec.image.clone()));
    field("hostname", &mut spec.hostname.iter().cloned());
    // The command's order matters: it is not sorted, but numbered.
    field(
        "command",
        &mut spec
            .command
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, a)| format!("{i:04}={a}")),
    );
    // A secret's value, once [`apply_secrets`] put it in, is hashed as the placeholder it
    // was: the digest never depends on it (its label tells a rotation).
    let secrets: Vec<&str> = spec
        .labels
        .iter()
        .find(|(k, _)| k == labels::SECRETS)
        .map(|(_, label)| {
            label
                .split(';')
                .skip(1)
                .filter_map(|p| p.split_once('=').map(|(name, _)| name))
                .collect()
        })
        .unwrap_or_default();
    let entry = |e: &String| match e.split_once('=') {
        Some((name, _)) if secrets.contains(&name) => {
            format!("{name}={}", guestutils::redact::SECRET)
        }
        _ => e.clone(),
    };
    match form {
        Form::V1 => field("env", &mut spec.env.iter().map(entry)),
        // A leading `=`: no variable's entry starts so (names are not empty).
        Form::V2 => field(
            "env",
            &mut spec.env[..spec.own_env.min(spec.env.len())]
                .iter()
                .map(entry)
                .chain(std::iter::once(format!(
                    "=discovery:{}",
                    spec.discovery_digest
                ))),
        ),
    }
    field(
        "port",
        &mut spec.ports.iter().map(|(c, ip, h)| format!("{c}|{ip}|{h}")),
    );
    field("bind", &mut spec.binds.iter().cloned());
    field("volume", &mut spec.volumes.iter().cloned());
    field("volumes_from", &mut spec.volumes_from.iter().cloned());
    field("link", &mut spec.links.iter().cloned());
    field("user", &mut spec.user.iter().cloned());
    field("workdir", &mut spec.workdir.iter().cloned());
    field(
        "privileged",
        &mut std::iter::once(spec.privileged.to_string()),
    );
    field("cap_add", &mut spec.cap_add.iter().cloned());
    field("cap_drop", &mut spec.cap_drop.iter().cloned());
    field("extra_host", &mut spec.extra_hosts.iter().cloned());
    field("network_mode", &mut spec.network_mode.iter().cloned());
    field(
        "restart",
        &mut std::iter::once(format!(
            "{}:{}",
            spec.restart_policy.0, spec.restart_policy.1
        )),
    );
    field("dns", &mut spec.dns.iter().cloned());
    field(
        "cpu_shares",
        &mut spec.cpu_shares.iter().map(i64::to_string),
    );
    field("memory", &mut spec.memory.iter().map(u64::to_string));
    field(
        "memory_swap",
        &mut spec.memory_swap.iter().map(u64::to_string),
    );
    field(
        "log",
        &mut spec.log_driver.iter().flat_map(|(d, opts)| {
            std::iter::once(format!("driver={d}"))
                .chain(opts.iter().map(|(k, v)| format!("opt:{k}={v}")))
        }),
    );
    field("security_opt", &mut spec.security_opt.iter().cloned());
    field(
        "ulimit",
        &mut spec.ulimits.iter().map(|(n, s, h)| format!("{n}={s}:{h}")),
    );
    field(
        "label",
        &mut spec
            .labels
            .iter()
            .filter(|(k, _)| !k.starts_with("io.maestro."))
            .map(|(k, v)| format!("{k}={v}")),
    );
    // Empty without a health check of the container's own (none, or the image's), so the
    // digest of a definition without one is what it was before this part existed.
    field(
        "healthcheck",
        &mut healthcheck_lines(spec.healthcheck.as_ref()),
    );
    out
}

fn healthcheck_lines(healthcheck: Option<&Healthcheck>) -> Box<dyn Iterator<Item = String> + '_> {
    match healthcheck {
        None | Some(Healthcheck::Image) => Box::new(std::iter::empty()),
        Some(Healthcheck::Disabled) => Box::new(std::iter::once("test=NONE".to_owned())),
        Some(Healthcheck::Defined {
            test,
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        }) => {
            // The test's order matters: numbered, like the command.
            let test = test
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, w)| format!("test{i:04}={w}"));
            let durations = [
                ("interval", interval),
                ("timeout", timeout),
                ("start_period", start_period),
                ("start_interval", start_interval),
            ]
            .into_iter()
            .filter_map(|(k, d)| d.map(|d| format!("{k}={}", d.as_nanos())));
            Box::new(
                test.chain(durations)
                    .chain(retries.map(|r| format!("retries={r}"))),
            )
        }
    }
}

/// 128-bit FNV-1a: stable forever, no dependency, good enough to tell definitions apart
/// (this is a change detector, not a security boundary). Fed in pieces, it hashes their
/// concatenation.
struct Fnv1a128(u128);

impl Fnv1a128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;

    fn new() -> Self {
        Fnv1a128(Self::OFFSET)
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = bytes.iter().fold(self.0, |hash, &b| {
            (hash ^ u128::from(b)).wrapping_mul(Self::PRIME)
        });
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) mod tests_support {
    use super::ContainerSpec;

    /// A spec with nothing in it, for tests that only look at labels.
    pub fn empty() -> ContainerSpec {
        ContainerSpec {
            name: String::new(),
            image: String::new(),
            hostname: None,
            command: None,
            env: Vec::new(),
            own_env: 0,
            discovery_digest: String::new(),
            ports: Vec::new(),
            binds: Vec::new(),
            volumes: Vec::new(),
            volumes_from: Vec::new(),
            links: Vec::new(),
            user: None,
            workdir: None,
            privileged: false,
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            extra_hosts: Vec::new(),
            network_mode: None,
            restart_policy: ("no".into(), 0),
            dns: Vec::new(),
            cpu_shares: None,
            memory: None,
            memory_swap: None,
            log_driver: None,
            security_opt: Vec::new(),
            ulimits: Vec::new(),
            labels: Vec::new(),
            stop_timeout: 10,
            healthcheck: None,
        }
    }
}
