//! The environment file's schema (MaestroNG schema 2, and schema 1's volume direction):
//! YAML tree in, [`Environment`] out, with every problem found reported at once.

mod checks;
mod env;
mod health;
pub(crate) mod ports;
mod read;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use indexmap::IndexMap;

use crate::Files;
use crate::diag::{Diagnostic, Suggester};
use crate::model::*;
use crate::yaml::{self, Node, Resolved, Value};

pub use checks::shell_words;
use read::{Reader, get, join, key};

const TOP_LEVEL: [&str; 8] = [
    "__maestro",
    "name",
    "ship_provider",
    "ship_defaults",
    "ships",
    "registries",
    "services",
    "audit",
];
const SHIP_DEFAULTS: [&str; 12] = [
    "max_operations",
    "docker_port",
    "socket_path",
    "ssh_tunnel",
    "api_version",
    "timeout",
    "tls",
    "tls_cert",
    "tls_key",
    "tls_verify",
    "tls_ca_cert",
    "ssl_version",
];
const SERVICE_KEYS: [&str; 11] = [
    "image",
    "instances",
    "requires",
    "wants_info",
    "omit",
    "env",
    "envfile",
    "ports",
    "limits",
    "lifecycle",
    "healthcheck",
];
const INSTANCE_KEYS: [&str; 31] = [
    "ship",
    "image",
    "command",
    "cmd",
    "ports",
    "env",
    "envfile",
    "volumes",
    "container_volumes",
    "volumes_from",
    "links",
    "username",
    "workdir",
    "privileged",
    "cap_add",
    "cap_drop",
    "extra_hosts",
    "net",
    "restart",
    "dns",
    "stop_timeout",
    "limits",
    "log_driver",
    "log_opt",
    "security_opt",
    "ulimits",
    "labels",
    "lxc_conf",
    "lifecycle",
    "healthcheck",
    "requires",
];
const LOG_DRIVERS: [&str; 6] = ["json-file", "syslog", "journald", "gelf", "fluentd", "none"];
const RESTART_POLICIES: [&str; 4] = ["no", "always", "on-failure", "unless-stopped"];

/// The result of loading: the environment when there is no error, and every diagnostic
/// (warnings included) in file order.
pub struct Loaded {
    pub environment: Option<Environment>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Reads an environment file's (already Jinja-rendered) text. `local_ship` is the ship
/// used when the file has no `ships:` section.
pub fn load(text: &str, files: &dyn Files, local_ship: &Ship) -> Loaded {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    load_on(text, files, local_ship, threads)
}

/// [`load`] with at most `threads` threads building instances.
fn load_on(text: &str, files: &dyn Files, local_ship: &Ship, threads: usize) -> Loaded {
    let mut r = Reader {
        diags: Vec::new(),
        suggester: Default::default(),
        threads,
    };
    let environment =
        match yaml::parse_on(text, threads) {
            Err(e) => {
                r.diags.push(Diagnostic::error(
                    "",
                    e.loc,
                    format!("invalid YAML: {}", e.message),
                ));
                None
            }
            Ok(None) => {
                r.diags.push(Diagnostic::error("", None, "the environment file is empty").with_help(
                "it needs at least `name:` and `services:` (see the README's format section)",
            ));
                None
            }
            Ok(Some(mut root)) => environment(&mut r, &mut root, files, local_ship),
        };
    let mut diagnostics = r.diags;
    diagnostics.sort_by_key(|d| d.loc.map(|l| (l.line, l.col)).unwrap_or((u32::MAX, 0)));
    // A `ship_defaults` value is read once per ship: say what is wrong with it once.
    diagnostics.dedup();
    let environment = environment.filter(|_| !diagnostics.iter().any(Diagnostic::is_error));
    Loaded {
        environment,
        diagnostics,
    }
}

fn environment(
    r: &mut Reader,
    root: &mut Node,
    files: &dyn Files,
    local_ship: &Ship,
) -> Option<Environment> {
    // The services are read from their own part of the tree, taken out of the document,
    // so that each instance's nodes can be dropped once the instance is built (see
    // `services`).
    let services_node = take_value(root, "services");
    let root = &*root;
    let top = r.map(root, "", "a mapping with name, ships and services")?;
    for (k, _) in top {
        let name = key(k);
        // `_anchors:` and `x-anchors:` are the usual homes of YAML anchors.
        if !TOP_LEVEL.contains(&name) && !name.starts_with('_') && !name.starts_with("x-") {
            let help = r.suggester.suggestion(name, TOP_LEVEL.iter().copied());
            r.warn(name, k, format!("unknown key {name:?} is ignored"))
                .help = Some(help);
        }
    }

    let schema = schema_version(r, get(top, "__maestro"));

    let name = match get(top, "name") {
        None => {
            r.error("", root, "the environment name is missing").help =
                Some("add `name: my-environment` at the top level".into());
            None
        }
        Some(node) => r.string(node, "name", "the environment's name"),
    };

    if let Some(node) = get(top, "ship_provider") {
        if let Some(provider) = r.opt_string(node, "ship_provider", "a ship provider") {
            if provider != "static" {
                r.error(
                    "ship_provider",
                    node,
                    format!("unknown ship provider {provider:?}; the only provider is static"),
                );
            }
        }
    }

    let ships = ships(r, get(top, "ship_defaults"), get(top, "ships"), local_ship);
    let registries = get(top, "registries")
        .map(|n| registries(r, n))
        .unwrap_or_default();
    let audit = get(top, "audit")
        .map(|n| checks::auditors(r, n, "audit"))
        .unwrap_or_default();

    let (services, instances) = match services_node {
        None => (Vec::new(), Vec::new()),
        Some(mut node) => services(
            r,
            &mut node,
            files,
            &ships,
            name.as_deref().unwrap_or_default(),
            schema,
        ),
    };

    let mut environment = Environment {
        name: name?,
        schema,
        ships: ships.ships,
        registries,
        services,
        instances,
        audit,
        discovery: Default::default(),
    };
    if r.diags.iter().any(Diagnostic::is_error) {
        return None;
    }
    // Nothing is computed yet: each service's on first use (see `variables`).
    environment.discovery = crate::model::Discovery::new(environment.services.len());
    Some(environment)
}

fn schema_version(r: &mut Reader, node: Option<&Node>) -> u32 {
    let Some(node) = node else { return 1 };
    let Some(entries) = r.opt_map(node, "__maestro", "a mapping (schema: 2)") else {
        return 1;
    };
    r.known_keys(entries, "__maestro", &["schema", "base_dir"]);
    if let Some((k, _)) = entries.iter().find(|(k, _)| key(k) == "base_dir") {
        // MaestroNG's loader sets it to the file's folder, over any value written here.
        r.warn(
            "__maestro.base_dir",
            k,
            "__maestro.base_dir is ignored: env files are read relative to the environment file's folder",
        )
        .help = Some("remove it".into());
    }
    match get(entries, "schema") {
        None => 1,
        // MaestroNG tests `schema == 1`: the number 1 (Python's 1.0 and True compare
        // equal to it too) means schema 1; anything else is schema 2.
        Some(n) => match n.as_scalar().map(|s| (s.yaml11(), s)) {
            Some((Resolved::Int(v), _)) if v == "1" => 1,
            Some((Resolved::Bool(true), _)) => 1,
            Some((Resolved::Float, s)) if s.text.replace('_', "").parse::<f64>() == Ok(1.0) => 1,
            _ => 2,
        },
    }
}

/// The ships, and whether they are the implicit local ship (no `ships:` section).
struct ShipTable {
    ships: Vec<Ship>,
    implicit: bool,
    /// Ship by name (the first of a name), so that resolving every instance's ship is
    /// not a scan of the ships each (200,000 instances on 1,000 ships).
    index: HashMap<String, usize>,
}

impl ShipTable {
    fn new(ships: Vec<Ship>, implicit: bool) -> Self {
        let mut index = HashMap::with_capacity(ships.len());
        for (i, ship) in ships.iter().enumerate() {
            index.entry(ship.name.clone()).or_insert(i);
        }
        ShipTable {
            ships,
            implicit,
            index,
        }
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }
}

fn ships(
    r: &mut Reader,
    defaults: Option<&Node>,
    ships: Option<&Node>,
    local_ship: &Ship,
) -> ShipTable {
    let defaults: &[(Node, Node)] = match defaults {
        None => &[],
        Some(node) => {
            let d = r
                .map(node, "ship_defaults", "a mapping of ship settings")
                .unwrap_or_default();
            for (k, _) in d {
                if !SHIP_DEFAULTS.contains(&key(k)) {
                    let help = if matches!(key(k), "ip" | "endpoint") {
                        "ip and endpoint are per ship and cannot have defaults".to_owned()
                    } else {
                        r.suggester
                            .suggestion(key(k), SHIP_DEFAULTS.iter().copied())
                    };
                    r.warn(
                        &join("ship_defaults", key(k)),
                        k,
                        format!("unknown key {:?} is ignored", key(k)),
                    )
                    .help = Some(help);
                }
            }
            d
        }
    };
    let Some(node) = ships else {
        return ShipTable::new(vec![local_ship.clone()], true);
    };
    let Some(entries) = r.map(
        node,
        "ships",
        "a mapping of ship names to ships ({ip: ...})",
    ) else {
        return ShipTable::new(Vec::new(), false);
    };
    let mut out = Vec::new();
    for (k, v) in entries {
        let name = key(k).to_owned();
        check_name(r, NameKind::Ship, "ships", k, &name);
        let path = join("ships", &name);
        let Some(fields) = r.map(v, &path, "a ship ({ip: ADDRESS, ...})") else {
            continue;
        };
        let known: Vec<&str> = ["ip", "endpoint"]
            .into_iter()
            .chain(SHIP_DEFAULTS)
            .collect();
        r.known_keys(fields, &path, &known);
        // A key on the ship wins over ship_defaults, even when it is null.
        let field = |name: &str| get(fields, name).or_else(|| get(defaults, name));
        let fpath = |name: &str| {
            if get(fields, name).is_some() {
                join(&path, name)
            } else {
                join("ship_defaults", name)
            }
        };
        let Some(ip_node) = get(fields, "ip") else {
            r.error(
                &path,
                k,
                format!("ship {name} needs an ip: the address containers and checks use"),
            );
            continue;
        };
        let Some(ip) = r.string(ip_node, &join(&path, "ip"), "an address") else {
            continue;
        };
        let mut ship = Ship::new(name.clone(), ip);
        ship.endpoint = get(fields, "endpoint")
            .and_then(|n| r.opt_string(n, &join(&path, "endpoint"), "an address"));
        ship.docker_port = field("docker_port")
            .filter(|n| !n.is_null())
            .and_then(|n| r.uint(n, &fpath("docker_port"), "a TCP port number"));
        ship.socket_path =
            field("socket_path").and_then(|n| r.opt_string(n, &fpath("socket_path"), "a path"));
        ship.api_version = field("api_version").and_then(|n| {
            let path = fpath("api_version");
            let text = r.opt_string(n, &path, "an API version such as \"1.41\" or auto")?;
            if text == "auto" {
                return None;
            }
            let Some(version) = ApiVersion::parse(&text) else {
                r.error(
                    &path,
                    n,
                    format!(
                        "invalid API version {text:?}: expected MAJOR.MINOR such as 1.41, or auto"
                    ),
                );
                return None;
            };
            if version < ApiVersion::OLDEST {
                r.warn(
                    &path,
                    n,
                    format!(
                        "API version {text} is older than any maestro speaks: it speaks {} or \
                         newer, up to what the engine offers",
                        ApiVersion::OLDEST
                    ),
                )
                .help = Some(
                    "remove api_version (or write auto): maestro negotiates with each engine"
                        .into(),
                );
            }
            Some(text)
        });
        ship.timeout = field("timeout")
            .filter(|n| !n.is_null())
            .and_then(|n| r.seconds(n, &fpath("timeout")));
        ship.max_operations = field("max_operations")
            .filter(|n| !n.is_null())
            .and_then(|n| r.uint(n, &fpath("max_operations"), "a number of operations"))
            .filter(|&n: &usize| n > 0);
        ship.tls = field("tls").is_some_and(|n| r.bool(n, &fpath("tls")));
        ship.tls_verify = field("tls_verify").is_some_and(|n| r.bool(n, &fpath("tls_verify")));
        for (name, slot) in [
            ("tls_ca_cert", &mut ship.tls_ca_cert),
            ("tls_cert", &mut ship.tls_cert),
            ("tls_key", &mut ship.tls_key),
            ("ssl_version", &mut ship.ssl_version),
        ] {
            *slot = field(name).and_then(|n| r.opt_string(n, &fpath(name), "a value"));
        }
        if let Some(n) = field("ssl_version").filter(|n| !n.is_null()) {
            r.warn(
                &fpath("ssl_version"),
                n,
                "ssl_version is ignored: maestro's TLS negotiates TLS 1.2 or 1.3 with the engine",
            )
            .help = Some("remove it".into());
        }
        if let Some(tunnel) = field("ssh_tunnel").filter(|n| !n.is_null()) {
            let tpath = fpath("ssh_tunnel");
            if let Some(t) = r.map(tunnel, &tpath, "a mapping {user, key, port}") {
                r.known_keys(
                    t,
                    &tpath,
                    &["user", "key", "port", "known_hosts", "accept_new_host_key"],
                );
                let user = match get(t, "user") {
                    Some(n) => r
                        .string(n, &join(&tpath, "user"), "an SSH user name")
                        .filter(|user| {
                            // ssh would take `-oProxyCommand=…` as an option.
                            let usable = !user.is_empty()
                                && !user.starts_with('-')
                                && !user.contains(|c: char| c.is_whitespace() || c.is_control() || c == '@');
                            if !usable {
                                r.error(
                                    &join(&tpath, "user"),
                                    n,
                                    format!("{user:?} is not an SSH user name: it is empty, starts with -, or has spaces, control characters or @"),
                                );
                            }
                            usable
                        }),
                    None => {
                        r.error(
                            &tpath,
                            tunnel,
                            format!("the SSH tunnel of ship {name} needs a user"),
                        );
                        None
                    }
                };
                let key_file = match get(t, "key") {
                    Some(n) => r.string(n, &join(&tpath, "key"), "a path to an SSH private key"),
                    None => {
                        r.error(
                            &tpath,
                            tunnel,
                            format!(
                                "the SSH tunnel of ship {name} needs a key (a private key file)"
                            ),
                        );
                        None
                    }
                };
                let port = match get(t, "port") {
                    Some(n) => r.uint(n, &join(&tpath, "port"), "a TCP port number"),
                    None => Some(22),
                };
                let known_hosts = get(t, "known_hosts").and_then(|n| {
                    r.opt_string(
                        n,
                        &join(&tpath, "known_hosts"),
                        "a path to a known-hosts file",
                    )
                });
                let accept_new_host_key = get(t, "accept_new_host_key")
                    .is_some_and(|n| r.bool(n, &join(&tpath, "accept_new_host_key")));
                if let (Some(user), Some(key), Some(port)) = (user, key_file, port) {
                    ship.ssh_tunnel = Some(SshTunnel {
                        user,
                        key,
                        port,
                        known_hosts,
                        accept_new_host_key,
                    });
                }
            }
        }
        out.push(ship);
    }
    ShipTable::new(out, false)
}

fn registries(r: &mut Reader, node: &Node) -> Vec<Registry> {
    let Some(entries) = r.opt_map(
        node,
        "registries",
        "a mapping of registry names to registries",
    ) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in entries {
        let name = key(k).to_owned();
        let path = join("registries", &name);
        let Some(fields) = r.map(v, &path, "a registry ({registry: URL, username, password})")
        else {
            continue;
        };
        r.known_keys(
            fields,
            &path,
            &["registry", "username", "password", "email", "retry"],
        );
        let Some(url_node) = get(fields, "registry") else {
            r.error(
                &path,
                v,
                format!("registry {name} needs registry: its URL (https://host[:port])"),
            );
            continue;
        };
        let Some(url) = r.string(url_node, &join(&path, "registry"), "a registry URL") else {
            continue;
        };
        let opt = |r: &mut Reader, field: &str| {
            get(fields, field).and_then(|n| r.opt_string(n, &join(&path, field), "a string"))
        };
        let (username, password, email) = (opt(r, "username"), opt(r, "password"), opt(r, "email"));
        if let (Some(_), Some(n)) = (&email, get(fields, "email")) {
            // MaestroNG needed it to log in; Docker's registries stopped taking one
            // (the engine ignores it since Docker 1.11), so nothing sends it.
            r.warn(
                &join(&path, "email"),
                n,
                "email is ignored: registries no longer take one",
            )
            .help = Some("remove it (MaestroNG required it to log in)".into());
        }
        let mut retry_attempts = 3;
        let mut retry_when = Vec::new();
        if let Some(retry) = get(fields, "retry") {
            let rpath = join(&path, "retry");
            if let Some(rf) = r.opt_map(retry, &rpath, "a mapping {attempts, when}") {
                r.known_keys(rf, &rpath, &["attempts", "when"]);
                if let Some(n) = get(rf, "attempts") {
                    retry_attempts = r
                        .uint(n, &join(&rpath, "attempts"), "a number of attempts")
                        .unwrap_or(3);
                }
                if let Some(n) = get(rf, "when") {
                    let wpath = join(&rpath, "when");
                    match n.as_seq() {
                        Some(items) => {
                            for (i, item) in items.iter().enumerate() {
                                if let Some(code) =
                                    r.uint(item, &format!("{wpath}[{i}]"), "an HTTP status code")
                                {
                                    retry_when.push(code);
                                }
                            }
                        }
                        None if n.is_null() => {}
                        None => {
                            r.error(
                                &wpath,
                                n,
                                format!("expected a list of HTTP status codes, found {}", n.kind()),
                            );
                        }
                    }
                }
            }
        }
        out.push(Registry {
            name,
            registry: url,
            username,
            password,
            email,
            retry_attempts,
            retry_when,
        });
    }
    out
}

/// What a service contributes to each of its instances.
struct ServiceDefaults<'n> {
    env: env::Vars,
    /// The service's variables, shared by its instances (`env` keeps only the secrets).
    shared_env: Arc<Variables>,
    ports: IndexMap<String, Port>,
    limits: Vec<(&'n Node, &'n Node)>,
    lifecycle: IndexMap<LifecycleState, Vec<checks::RawCheck<'n>>>,
    healthcheck: Option<health::Written>,
}

/// Takes the value of `key` out of a mapping node, leaving a null in its place (at the same
/// location, so that the key still reads as present).
fn take_value(node: &mut Node, key: &str) -> Option<Node> {
    let Value::Map(entries) = &mut node.value else {
        return None;
    };
    let (_, value) = entries.iter_mut().find(|(k, _)| k.text() == Some(key))?;
    let null = Node {
        loc: value.loc,
        value: Value::Scalar(crate::yaml::Scalar {
            text: "".into(),
            plain: true,
            tag: None,
        }),
    };
    Some(std::mem::replace(value, null))
}

fn services(
    r: &mut Reader,
    node: &mut Node,
    files: &dyn Files,
    ships: &ShipTable,
    env_name: &str,
    schema: u32,
) -> (Vec<Service>, Vec<Instance>) {
    if r.map(node, "services", "a mapping of service names to services")
        .is_none()
    {
        return (Vec::new(), Vec::new());
    }
    let Value::Map(entries) = &mut node.value else {
        unreachable!("checked to be a mapping")
    };
    // Each service's instances are taken out of the tree and consumed one by one:
    // otherwise their nodes, most of the tree, would stay until every instance is built
    // (with mimalloc, 200,000 instances peaked at 1.20 GB with them, 0.96 GB without).
    let instance_maps: Vec<Option<Node>> = entries
        .iter_mut()
        .map(|(_, v)| take_value(v, "instances"))
        .collect();
    let entries: &[(Node, Node)] = entries;
    // Sized from the file up front: an `Instance` is large, and growing a vector of
    // 200,000 of them by doubling copies them all again and leaves up to a third unused.
    let expected = instance_maps
        .iter()
        .filter_map(|n| n.as_ref().and_then(Node::as_map))
        .map(<[_]>::len)
        .sum::<usize>();
    let mut services = Vec::with_capacity(entries.len());
    // Per instance: its `volumes_from` node and path, read once every instance is known.
    let mut volumes_from_nodes: Vec<Option<(Node, String)>> = Vec::with_capacity(expected);
    let mut instance_index: HashMap<String, usize> = HashMap::with_capacity(expected);
    let mut dependencies: Vec<Dependencies<'_>> = Vec::with_capacity(entries.len());
    let mut jobs: Vec<Job> = Vec::with_capacity(expected);
    let mut contexts: Vec<Option<ServiceContext<'_>>> = Vec::with_capacity(entries.len());

    for ((k, v), instance_map) in entries.iter().zip(instance_maps) {
        let service_name = key(k).to_owned();
        check_name(r, NameKind::Service, "services", k, &service_name);
        let path = join("services", &service_name);
        let service_id = ServiceId(services.len());
        let Some(fields) = r.map(v, &path, "a service ({image: ..., instances: {...}})") else {
            dependencies.push(Default::default());
            contexts.push(None);
            services.push(Service {
                name: service_name,
                image: String::new(),
                requires: vec![],
                wants_info: vec![],
                omit: false,
                instances: vec![],
            });
            continue;
        };
        r.known_keys(fields, &path, &SERVICE_KEYS);
        let p = |name: &str| join(&path, name);
        let image = match get(fields, "image") {
            Some(n) => r
                .string(n, &p("image"), "an image name")
                .unwrap_or_default(),
            None => {
                r.error(&path, k, format!("service {service_name} needs an image"));
                String::new()
            }
        };
        let names = |r: &mut Reader, field: &str| -> Vec<(&Node, String)> {
            let Some(n) = get(fields, field) else {
                return Vec::new();
            };
            let fpath = join(&path, field);
            match &n.value {
                Value::Seq(items) => items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| {
                        r.string(item, &format!("{fpath}[{i}]"), "a service name")
                            .map(|s| (item, s))
                    })
                    .collect(),
                Value::Scalar(_) if n.is_null() => Vec::new(),
                Value::Scalar(s) => vec![(n, s.text.to_string())],
                Value::Map(_) => {
                    r.error(
                        &fpath,
                        n,
                        "expected a list of service names, found a mapping",
                    );
                    Vec::new()
                }
            }
        };
        let requires = names(r, "requires");
        let wants_info = names(r, "wants_info");
        dependencies.push((requires, wants_info));
        let omit = get(fields, "omit").is_some_and(|n| r.bool(n, &p("omit")));

        let mut defaults = ServiceDefaults {
            env: env::Vars::new(),
            shared_env: Arc::default(),
            ports: IndexMap::new(),
            limits: Vec::new(),
            lifecycle: IndexMap::new(),
            healthcheck: None,
        };
        if let Some(n) = get(fields, "envfile") {
            env::source(r, files, n, &p("envfile"), &mut defaults.env);
        }
        if let Some(n) = get(fields, "env") {
            env::source(r, files, n, &p("env"), &mut defaults.env);
        }
        defaults.env.insert(
            guestutils::names::ENVIRONMENT_NAME.into(),
            Some(env_name.to_owned()),
        );
        defaults.env.insert(
            guestutils::names::SERVICE_NAME.into(),
            Some(service_name.clone()),
        );
        // Moved, not copied: instances read the service's variables only through it.
        defaults.shared_env = Arc::new(std::mem::take(&mut defaults.env.values));
        if let Some(n) = get(fields, "ports") {
            port_map(r, n, &p("ports"), &mut defaults.ports);
        }
        if let Some(n) = get(fields, "limits") {
            if let Some(l) = r.opt_map(n, &p("limits"), "a mapping {cpu, memory, swap}") {
                defaults.limits.extend(l.iter().map(|(k, v)| (k, v)));
            }
        }
        if let Some(n) = get(fields, "lifecycle") {
            checks::lifecycle(r, n, &p("lifecycle"), &mut defaults.lifecycle);
        }
        defaults.healthcheck =
            get(fields, "healthcheck").and_then(|n| health::read(r, n, &p("healthcheck")));

        let service_image = Arc::new(Image::parse(&image));
        let service = Service {
            name: service_name.clone(),
            image: image.clone(),
            requires: vec![],
            wants_info: vec![],
            omit,
            instances: vec![],
        };
        let instance_entries = match instance_map {
            Some(n) => match r.opt_map(
                &n,
                &p("instances"),
                "a mapping of instance names to instances",
            ) {
                Some(_) => match n.value {
                    Value::Map(entries) => entries,
                    _ => Vec::new(),
                },
                None => Vec::new(),
            },
            None => {
                r.error(&path, k, format!("service {service_name} needs instances: a mapping of instance names to instances"))
                    .help = Some("instances:\n  my-instance-1: {ship: SHIP}".into());
                Vec::new()
            }
        };
        let instances_path = p("instances");
        jobs.extend(instance_entries.into_iter().map(|(key, value)| Job {
            service: service_id,
            key,
            value,
        }));
        contexts.push(Some(ServiceContext {
            defaults,
            image: service_image,
            instances_path,
        }));
        services.push(service);
    }

    // The instances are built on every core (they are most of the work of loading a
    // large file), then taken in file order as if built one by one: names are checked,
    // a second instance of a name is dropped with its diagnostics, and the rest get their
    // ids. The diagnostics are the same whatever the number of workers, except "did you
    // mean" suggestions once their shared budget (split between the workers) runs out.
    let (mut slots, outputs) = build_instances(r, jobs, &contexts, files, ships, schema);
    // The service of each instance kept so far (for a duplicate's message).
    let mut kept_services: Vec<ServiceId> = Vec::with_capacity(expected);
    let mut slot = 0;
    for output in outputs {
        let mut diags = output.diags.into_iter();
        for built in output.built {
            let this = slot;
            slot += 1;
            let context = contexts[built.service.0]
                .as_ref()
                .expect("a job's service has a context");
            let name = key(&built.key);
            check_name(
                r,
                NameKind::Instance,
                &context.instances_path,
                &built.key,
                name,
            );
            let these = diags.by_ref().take(built.diags);
            if let Some(&other) = instance_index.get(name) {
                let other = &services[kept_services[other].0].name;
                let path = join(&context.instances_path, name);
                r.error(&path, &built.key, format!("instance {name} is already defined in service {other}"))
                    .help = Some("instance names are Docker container names and must be unique in the environment".into());
                these.for_each(drop);
                slots[this] = None;
                continue;
            }
            r.diags.extend(these);
            if slots[this].is_none() {
                continue;
            }
            let id = kept_services.len();
            instance_index.insert(name.to_owned(), id);
            kept_services.push(built.service);
            services[built.service.0].instances.push(InstanceId(id));
            volumes_from_nodes.push(
                built
                    .volumes_from
                    .map(|n| (n, join(&context.instances_path, name))),
            );
        }
    }
    // In place: the slots' memory becomes the instances' (no second copy of 200,000).
    // `filter_map` is collected in place; `flatten` is not (measured: 0.4 GB more).
    #[allow(clippy::filter_map_identity)]
    let mut instances: Vec<Instance> = slots.into_iter().filter_map(|slot| slot).collect();

    resolve_dependencies(r, entries, &mut services, dependencies);
    resolve_volumes_from(
        r,
        &mut instances,
        &volumes_from_nodes,
        &instance_index,
        &ships.ships,
    );
    volumes_from_cycles(r, &services, &instances, &volumes_from_nodes);
    (services, instances)
}

/// What every instance of a service starts from.
struct ServiceContext<'n> {
    defaults: ServiceDefaults<'n>,
    image: Arc<Image>,
    instances_path: String,
}

/// An instance to build: its entry, taken out of the file's tree.
struct Job {
    service: ServiceId,
    key: Node,
    value: Node,
}

/// What the later, sequential passes need of an instance's entry once it is built (or
/// not, when its definition is wrong).
struct Built {
    service: ServiceId,
    /// The instance's name, as written.
    key: Node,
    /// How many of its worker's diagnostics are its own.
    diags: usize,
    volumes_from: Option<Node>,
}

/// What one worker did, in file order.
struct Output {
    built: Vec<Built>,
    diags: Vec<Diagnostic>,
}

/// Below this many instances one thread builds them all: starting threads would cost
/// more than it saves.
const PARALLEL_FROM: usize = 2_000;

/// Builds the instances of `jobs` on up to one thread per core (the calling thread
/// first), each instance's nodes dropped as soon as it is built: one slot per job (empty
/// when its definition is wrong), and what each worker did, in file order.
fn build_instances(
    r: &mut Reader,
    jobs: Vec<Job>,
    contexts: &[Option<ServiceContext<'_>>],
    files: &dyn Files,
    ships: &ShipTable,
    schema: u32,
) -> (Vec<Option<Instance>>, Vec<Output>) {
    let total = jobs.len();
    if total == 0 {
        return (Vec::new(), Vec::new());
    }
    let workers = if total < PARALLEL_FROM { 1 } else { r.threads };
    // Contiguous chunks, so that concatenating the workers' results keeps file order.
    let size = total.div_ceil(workers);
    let mut chunks: Vec<Vec<Job>> = Vec::with_capacity(workers);
    let mut rest = jobs;
    while rest.len() > size {
        let tail = rest.split_off(size);
        chunks.push(rest);
        rest = tail;
    }
    chunks.push(rest);

    let mut slots: Vec<Option<Instance>> = std::iter::repeat_with(|| None).take(total).collect();
    let work = |chunk: Vec<Job>, slots: &mut [Option<Instance>], suggester: Suggester| {
        let mut worker = Reader {
            diags: Vec::new(),
            suggester,
            threads: 1,
        };
        let mut built = Vec::with_capacity(chunk.len());
        for (
            Job {
                service,
                key: k,
                mut value,
            },
            slot,
        ) in chunk.into_iter().zip(slots)
        {
            let context = contexts[service.0]
                .as_ref()
                .expect("a job's service has a context");
            let name = key(&k).to_owned();
            let path = join(&context.instances_path, &name);
            let before = worker.diags.len();
            *slot = instance(
                &mut worker,
                (&k, &value),
                &path,
                &name,
                service,
                &context.image,
                &context.defaults,
                files,
                ships,
                schema,
            );
            let volumes_from = take_value(&mut value, "volumes_from");
            drop(value);
            built.push(Built {
                service,
                key: k,
                diags: worker.diags.len() - before,
                volumes_from,
            });
        }
        (
            Output {
                built,
                diags: worker.diags,
            },
            worker.suggester,
        )
    };

    // Each chunk waits in a slot for the thread that builds it: a chunk whose thread
    // cannot start (a limit on processes) is still there, and is built on this one.
    type Part<'s> = Mutex<Option<(Vec<Job>, &'s mut [Option<Instance>], Suggester)>>;
    let parts: Vec<Part<'_>> = chunks
        .into_iter()
        .zip(slots.chunks_mut(size))
        .map(|(chunk, slots)| Mutex::new(Some((chunk, slots, r.suggester.share(workers)))))
        .collect();
    let run = |i: usize| {
        let (chunk, slots, share) = parts[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        Some(work(chunk, slots, share))
    };
    let results: Vec<(Output, Suggester)> = std::thread::scope(|scope| {
        let others: Vec<_> = (1..parts.len())
            .map(|i| {
                std::thread::Builder::new()
                    .name("maestro-load".into())
                    .spawn_scoped(scope, move || run(i))
                    .ok()
            })
            .collect();
        // The calling thread builds the first chunk: it made the nodes, so the memory
        // their drop frees goes back to where the instances are built.
        let mut results = vec![run(0)];
        for other in others {
            results.push(other.and_then(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            }));
        }
        results
            .into_iter()
            .enumerate()
            .map(|(i, result)| result.or_else(|| run(i)).expect("each chunk is built once"))
            .collect()
    });
    drop(parts);
    let outputs = results
        .into_iter()
        .map(|(output, suggester)| {
            r.suggester.absorb(suggester);
            output
        })
        .collect();
    (slots, outputs)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum NameKind {
    Service,
    Instance,
    Ship,
}

/// Refuses names the engine would refuse later, or worse. An instance name is the
/// container's name: Docker's rule, `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, and none of the names
/// deploy gives an instance's other generations. Service names (variable prefixes and
/// labels) and ship names (labels, host names) may be anything printable without `/`;
/// a ship name beginning with `-` would read as an option on the command line (`-S`).
/// The error is at `parent`: the name itself may not belong in a path.
fn check_name(r: &mut Reader, kind: NameKind, parent: &str, node: &Node, name: &str) {
    let what = match kind {
        NameKind::Service => "service",
        NameKind::Instance => "instance",
        NameKind::Ship => "ship",
    };
    let problem = if kind == NameKind::Instance {
        let mut chars = name.chars();
        let docker = name.len() >= 2
            && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        let generation = crate::spec::GENERATION_SUFFIXES
            .into_iter()
            .find(|suffix| name.ends_with(suffix));
        if !docker {
            Some("a container name is two or more characters: a letter or digit, then letters, digits, '_', '.' or '-'".to_owned())
        } else {
            generation.map(|suffix| {
                format!(
                    "names ending in {suffix} are what deploy and rollback name an instance's other generations"
                )
            })
        }
    } else if name.is_empty() {
        Some("a name cannot be empty".to_owned())
    } else if name.chars().any(char::is_control) {
        Some("a name cannot hold control characters".to_owned())
    } else if name.contains('/') {
        Some("a name cannot hold '/'".to_owned())
    } else if kind == NameKind::Ship && name.starts_with('-') {
        Some("a ship name cannot begin with '-'".to_owned())
    } else {
        None
    };
    if let Some(problem) = problem {
        r.error(
            parent,
            node,
            format!("invalid {what} name {name:?}: {problem}"),
        );
    }
}

/// A service's `requires` and `wants_info` entries: each name with the node it came from.
type Dependencies<'n> = (Vec<(&'n Node, String)>, Vec<(&'n Node, String)>);

fn resolve_dependencies(
    r: &mut Reader,
    entries: &[(Node, Node)],
    services: &mut [Service],
    dependencies: Vec<Dependencies<'_>>,
) {
    let index: HashMap<String, usize> = services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), i))
        .collect();
    for (i, (requires, wants_info)) in dependencies.into_iter().enumerate() {
        for (field, list) in [("requires", requires), ("wants_info", wants_info)] {
            let path = join(&join("services", &services[i].name), field);
            for (node, name) in list {
                match index.get(&name) {
                    Some(&j) => {
                        let target = if field == "requires" {
                            &mut services[i].requires
                        } else {
                            &mut services[i].wants_info
                        };
                        if !target.contains(&ServiceId(j)) {
                            target.push(ServiceId(j));
                        }
                    }
                    None => {
                        let help = r.suggester.suggestion(
                            &name,
                            services
                                .iter()
                                .enumerate()
                                .filter(|(j, _)| *j != i)
                                .map(|(_, s)| s.name.as_str()),
                        );
                        r.error(&path, node, format!("unknown service {name:?}"))
                            .help = Some(help);
                    }
                }
            }
        }
    }
    for cycle in crate::graph::requires_cycles(services) {
        let first = cycle[0];
        let text: Vec<&str> = cycle
            .iter()
            .chain([&first])
            .map(|s| services[s.0].name.as_str())
            .collect();
        let node = &entries[first.0].0;
        let requires =
            get(entries[first.0].1.as_map().unwrap_or_default(), "requires").unwrap_or(node);
        r.error(&join(&join("services", &services[first.0].name), "requires"), requires, format!("dependency cycle: {}", text.join(" -> ")))
            .help = Some("a service cannot require itself, directly or through others; use wants_info for variables without ordering".into());
    }
}

fn resolve_volumes_from(
    r: &mut Reader,
    instances: &mut [Instance],
    nodes: &[Option<(Node, String)>],
    index: &HashMap<String, usize>,
    ships: &[Ship],
) {
    for i in 0..instances.len() {
        let Some((vf_node, path)) = &nodes[i] else {
            continue;
        };
        let vpath = join(path, "volumes_from");
        let names = r.strings(vf_node, &vpath, "a container name");
        let mut resolved = Vec::new();
        for name in names {
            let Some(&j) = index.get(&name) else {
                let help = r.suggester.suggestion(
                    &name,
                    instances
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != i)
                        .map(|(_, other)| other.name.as_str()),
                );
                r.error(
                    &vpath,
                    vf_node,
                    format!("unknown instance {name:?} to get volumes from"),
                )
                .help = Some(help);
                continue;
            };
            if j == i {
                r.error(
                    &vpath,
                    vf_node,
                    format!("instance {name} cannot take volumes from itself"),
                );
                continue;
            }
            let (this, other) = (&instances[i], &instances[j]);
            if this.ship != other.ship {
                r.error(
                    &vpath,
                    vf_node,
                    format!(
                        "{} is on ship {} but {} is on ship {}: volumes_from needs both on the same ship",
                        other.name, ships[other.ship.0].name, this.name, ships[this.ship.0].name
                    ),
                );
                continue;
            }
            let declared = |inst: &Instance| -> HashSet<String> {
                inst.volumes
                    .values()
                    .map(|b| b.target.clone())
                    .chain(inst.container_volumes.iter().cloned())
                    .collect()
            };
            let mut clash: Vec<String> = declared(this)
                .intersection(&declared(other))
                .cloned()
                .collect();
            if !clash.is_empty() {
                clash.sort();
                r.error(
                    &vpath,
                    vf_node,
                    format!(
                        "volume conflicts between {} and {}: {}",
                        this.name,
                        other.name,
                        clash.join(", ")
                    ),
                );
                continue;
            }
            if !resolved.contains(&InstanceId(j)) {
                resolved.push(InstanceId(j));
            }
        }
        instances[i].volumes_from = resolved;
    }
}

/// `volumes_from` adds start-order edges (service to service across services, instance
/// to instance within one); together with `requires` they must stay acyclic.
fn volumes_from_cycles(
    r: &mut Reader,
    services: &[Service],
    instances: &[Instance],
    nodes: &[Option<(Node, String)>],
) {
    let mut across: Vec<Vec<usize>> = services
        .iter()
        .map(|s| s.requires.iter().map(|r| r.0).collect())
        .collect();
    let mut within: Vec<Vec<usize>> = vec![Vec::new(); instances.len()];
    let mut has_volumes_from = false;
    for (i, instance) in instances.iter().enumerate() {
        for source in &instance.volumes_from {
            has_volumes_from = true;
            let provider = instances[source.0].service;
            if provider == instance.service {
                within[i].push(source.0);
            } else {
                across[instance.service.0].push(provider.0);
            }
        }
    }
    if !has_volumes_from {
        return;
    }
    // Sorted without repeats: many instances of one service may name the same sources.
    for next in &mut across {
        next.sort_unstable();
        next.dedup();
    }
    let requires: Vec<Vec<ServiceId>> = services
        .iter()
        .map(|s| {
            let mut r = s.requires.clone();
            r.sort_unstable();
            r
        })
        .collect();
    // A cycle needs a volumes_from edge when some instance takes volumes from a service
    // in the same strongly connected group as its own along an edge `requires` does not
    // give (those cycles are reported as requires cycles). One report per group: the
    // first such instance, with the shortest way back from its source's service.
    let (component, count) = crate::graph::strongly_connected(&across);
    let mut reported = vec![false; count];
    for (i, instance) in instances.iter().enumerate() {
        let own = instance.service;
        let Some(provider) = instance
            .volumes_from
            .iter()
            .map(|source| instances[source.0].service)
            .find(|p| {
                *p != own
                    && component[p.0] == component[own.0]
                    && requires[own.0].binary_search(p).is_err()
            })
        else {
            continue;
        };
        if std::mem::replace(&mut reported[component[own.0]], true) {
            continue;
        }
        let Some(back) = crate::graph::path_within(&across, &component, provider.0, own.0) else {
            continue;
        };
        let names: Vec<&str> = std::iter::once(own.0)
            .chain(back)
            .map(|s| services[s].name.as_str())
            .collect();
        // Only an instance with `volumes_from` has an edge, hence a cycle.
        let Some((at, path)) = &nodes[i] else {
            continue;
        };
        r.error(
            &join(path, "volumes_from"),
            at,
            format!(
                "dependency cycle through volumes_from: {}",
                names.join(" -> ")
            ),
        )
        .help = Some(format!(
            "instance {} of {} takes volumes from {}, which depends on {}",
            instance.name, names[0], names[1], names[0]
        ));
    }
    for cycle in crate::graph::cycles(&within) {
        let names: Vec<&str> = cycle
            .iter()
            .chain([&cycle[0]])
            .map(|&i| instances[i].name.as_str())
            .collect();
        let Some((at, path)) = &nodes[cycle[0]] else {
            continue;
        };
        r.error(
            &join(path, "volumes_from"),
            at,
            format!("volumes_from cycle: {}", names.join(" -> ")),
        );
    }
}

fn port_map(r: &mut Reader, node: &Node, path: &str, out: &mut IndexMap<String, Port>) {
    let Some(entries) = r.opt_map(node, path, "a mapping of port names to port specs") else {
        return;
    };
    for (k, v) in entries {
        let name = key(k).to_owned();
        if let Some(port) = ports::port(r, v, &join(path, &name)) {
            out.insert(name, port);
        } else {
            out.shift_remove(&name);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn instance(
    r: &mut Reader,
    (key_node, node): (&Node, &Node),
    path: &str,
    name: &str,
    service: ServiceId,
    service_image: &Arc<Image>,
    defaults: &ServiceDefaults<'_>,
    files: &dyn Files,
    ships: &ShipTable,
    schema: u32,
) -> Option<Instance> {
    let fields = r.opt_map(node, path, "an instance ({ship: SHIP, ...})")?;
    r.known_keys(fields, path, &INSTANCE_KEYS[..INSTANCE_KEYS.len() - 1]);
    let p = |field: &str| join(path, field);
    let f = |field: &str| get(fields, field);

    let ship = match f("ship") {
        Some(n) => {
            let ship_name = r.string(n, &p("ship"), "a ship name")?;
            match ships.position(&ship_name) {
                Some(i) => ShipId(i),
                None => {
                    let help = r
                        .suggester
                        .suggestion(&ship_name, ships.ships.iter().map(|s| s.name.as_str()));
                    r.error(&p("ship"), n, format!("unknown ship {ship_name:?}"))
                        .help = Some(help);
                    // Go on with the first ship so the instance's other problems are
                    // reported too; the error keeps the environment from being used.
                    if ships.ships.is_empty() {
                        return None;
                    }
                    ShipId(0)
                }
            }
        }
        // Without a `ships:` section everything runs on the one local ship.
        None if ships.implicit => ShipId(0),
        None => {
            r.error(
                path,
                key_node,
                format!("instance {name} needs ship: the ship it runs on"),
            )
            .help = Some(format!(
                "add ship: NAME; the ships are {}",
                ships
                    .ships
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            return None;
        }
    };
    let ship_ip = ships.ships[ship.0].ip.clone();

    let image = match f("image") {
        Some(n) => Arc::new(Image::parse(&r.string(n, &p("image"), "an image name")?)),
        None => Arc::clone(service_image),
    };

    let command = match f("command").or(f("cmd")) {
        None => None,
        Some(n) => {
            let cpath = if f("command").is_some() {
                p("command")
            } else {
                p("cmd")
            };
            match &n.value {
                Value::Scalar(_) if n.is_null() => None,
                Value::Scalar(s) => {
                    if shell_words(&s.text).is_none() {
                        r.error(
                            &cpath,
                            n,
                            format!("cannot split {:?} into words: unbalanced quotes", s.text),
                        );
                    }
                    Some(Command::Shell(s.text.to_string()))
                }
                Value::Seq(_) => Some(Command::Args(r.strings(n, &cpath, "an argument"))),
                Value::Map(_) => {
                    r.error(
                        &cpath,
                        n,
                        "expected a command line or a list of arguments, found a mapping",
                    );
                    None
                }
            }
        }
    };

    let mut ports = defaults.ports.clone();
    if let Some(n) = f("ports") {
        port_map(r, n, &p("ports"), &mut ports);
    }

    // The instance's own variables, over its service's (shared, see `model::Env`).
    let mut env = env::Vars::new();
    if let Some(n) = f("envfile") {
        env::source(r, files, n, &p("envfile"), &mut env);
    }
    if let Some(n) = f("env") {
        env::source(r, files, n, &p("env"), &mut env);
    }
    use guestutils::names as v;
    env.insert(v::CONTAINER_NAME.into(), Some(name.to_owned()));
    env.insert(v::CONTAINER_HOST_ADDRESS.into(), Some(ship_ip.clone()));
    env.insert(v::DOCKER_IMAGE.into(), Some(image.name.clone()));
    env.insert(v::DOCKER_TAG.into(), Some(image.tag.clone()));
    // The service's secrets, less those the instance sets to a plain value, then the
    // instance's: what one map would hold after the same inserts.
    let mut secrets = defaults.env.secrets.clone();
    secrets.retain(|k, _| !env.values.contains_key(k) || env.secrets.contains_key(k));
    secrets.extend(env.secrets);

    let (volumes, container_volumes) =
        volumes(r, f("volumes"), f("container_volumes"), path, schema);

    let mut links = Vec::new();
    if let Some(n) = f("links") {
        for (k, v) in r
            .opt_map(n, &p("links"), "a mapping of container names to aliases")
            .unwrap_or_default()
        {
            if let Some(alias) = r.string(v, &join(&p("links"), key(k)), "an alias") {
                links.push((key(k).to_owned(), alias));
            }
        }
        links.sort();
    }

    let opt_string = |r: &mut Reader, field: &str, what: &str| {
        f(field).and_then(|n| r.opt_string(n, &p(field), what))
    };
    let username = opt_string(r, "username", "a user name or id");
    let workdir = opt_string(r, "workdir", "a directory");
    let net = opt_string(
        r,
        "net",
        "a network mode (bridge, host, none, container:NAME ...)",
    );
    let privileged = f("privileged").is_some_and(|n| r.bool(n, &p("privileged")));
    let cap_add = f("cap_add")
        .map(|n| r.strings(n, &p("cap_add"), "a capability"))
        .unwrap_or_default();
    let cap_drop = f("cap_drop")
        .map(|n| r.strings(n, &p("cap_drop"), "a capability"))
        .unwrap_or_default();
    let dns = f("dns")
        .map(|n| r.strings(n, &p("dns"), "a DNS server address"))
        .unwrap_or_default();
    let security_opt = f("security_opt")
        .map(|n| r.string_list(n, &p("security_opt"), "security options"))
        .unwrap_or_default();
    let stop_timeout = f("stop_timeout")
        .filter(|n| !n.is_null())
        .and_then(|n| r.whole_seconds(n, &p("stop_timeout"), "a number of seconds"))
        .unwrap_or(10);

    let mut extra_hosts = Vec::new();
    if let Some(n) = f("extra_hosts") {
        let epath = p("extra_hosts");
        for (k, v) in r
            .opt_map(
                n,
                &epath,
                "a mapping of host names to addresses or {ship: NAME}",
            )
            .unwrap_or_default()
        {
            let hpath = join(&epath, key(k));
            let address =
                match &v.value {
                    // MaestroNG keeps only strings (and {ship: NAME}): `name: 42` or
                    // `name: yes` is skipped, so the container gets no such entry.
                    Value::Scalar(s) if s.yaml11() != Resolved::Str => {
                        r.warn(
                            &hpath,
                            v,
                            format!(
                                "{} is not an address (YAML 1.1 reads it as a {}): the entry is \
                                 skipped, as MaestroNG skips it",
                                s.text,
                                match s.yaml11() {
                                    Resolved::Bool(_) => "boolean",
                                    Resolved::Null => "null",
                                    _ => "number",
                                }
                            ),
                        )
                        .help = Some(format!("quote it if it is an address: \"{}\"", s.text));
                        None
                    }
                    Value::Scalar(_) => r.string(v, &hpath, "an address"),
                    Value::Map(m) => match get(m, "ship") {
                        Some(sn) => r.string(sn, &join(&hpath, "ship"), "a ship name").and_then(
                            |ship_name| match ships.position(&ship_name).map(|i| &ships.ships[i]) {
                                Some(s) => Some(s.ip.clone()),
                                None => {
                                    let help = r.suggester.suggestion(
                                        &ship_name,
                                        ships.ships.iter().map(|s| s.name.as_str()),
                                    );
                                    r.error(
                                        &join(&hpath, "ship"),
                                        sn,
                                        format!("unknown ship {ship_name:?}"),
                                    )
                                    .help = Some(help);
                                    None
                                }
                            },
                        ),
                        None => {
                            r.error(&hpath, v, "expected an address or {ship: NAME}");
                            None
                        }
                    },
                    Value::Seq(_) => {
                        r.error(
                            &hpath,
                            v,
                            "expected an address or {ship: NAME}, found a list",
                        );
                        None
                    }
                };
            if let Some(address) = address {
                extra_hosts.push((key(k).to_owned(), address));
            }
        }
        extra_hosts.sort();
    }

    let restart = f("restart")
        .map(|n| restart_policy(r, n, &p("restart")))
        .unwrap_or_default();

    let mut limit_nodes: Vec<(&Node, &Node)> = defaults.limits.clone();
    if let Some(n) = f("limits") {
        if let Some(l) = r.opt_map(n, &p("limits"), "a mapping {cpu, memory, swap}") {
            for (k, v) in l {
                limit_nodes.retain(|(dk, _)| key(dk) != key(k));
                limit_nodes.push((k, v));
            }
        }
    }
    let limits = limits(r, &limit_nodes, &p("limits"));

    let log = match f("log_driver").and_then(|n| r.opt_string(n, &p("log_driver"), "a log driver"))
    {
        None => {
            if let Some(n) = f("log_opt") {
                r.warn(&p("log_opt"), n, "log_opt is ignored without log_driver");
            }
            None
        }
        Some(driver) => {
            if !LOG_DRIVERS.contains(&driver.as_str()) {
                let n = f("log_driver").expect("present");
                r.error(
                    &p("log_driver"),
                    n,
                    format!(
                        "unsupported log driver {driver:?}; expected one of {}",
                        LOG_DRIVERS.join(", ")
                    ),
                );
            }
            let mut options = IndexMap::new();
            if let Some(n) = f("log_opt") {
                for (k, v) in r
                    .opt_map(n, &p("log_opt"), "a mapping of log options")
                    .unwrap_or_default()
                {
                    if let Some(value) =
                        r.string(v, &join(&p("log_opt"), key(k)), "an option value")
                    {
                        options.insert(key(k).to_owned(), value);
                    }
                }
            }
            Some(LogConfig { driver, options })
        }
    };

    let mut ulimits = Vec::new();
    if let Some(n) = f("ulimits") {
        let upath = p("ulimits");
        for (k, v) in r
            .opt_map(
                n,
                &upath,
                "a mapping of limit names to numbers or {soft, hard}",
            )
            .unwrap_or_default()
        {
            let lpath = join(&upath, key(k));
            let pair = match &v.value {
                Value::Map(m) => {
                    r.known_keys(m, &lpath, &["soft", "hard"]);
                    let soft =
                        get(m, "soft").and_then(|n| r.int(n, &join(&lpath, "soft"), "a number"));
                    let hard =
                        get(m, "hard").and_then(|n| r.int(n, &join(&lpath, "hard"), "a number"));
                    match (soft, hard) {
                        (Some(s), Some(h)) => Some((s, h)),
                        (Some(x), None) | (None, Some(x)) => Some((x, x)),
                        (None, None) => None,
                    }
                }
                Value::Scalar(s) if matches!(s.yaml11(), Resolved::Int(_)) => {
                    r.int(v, &lpath, "a number").map(|x| (x, x))
                }
                _ => {
                    r.warn(&lpath, v, format!("ulimit {} is ignored: expected a number or {{soft, hard}}, found {} {}", key(k), v.kind(), v.display()))
                        .help = Some("for no limit, use -1 (MaestroNG ignores such values silently)".into());
                    None
                }
            };
            if let Some((soft, hard)) = pair {
                ulimits.push(Ulimit {
                    name: key(k).to_owned(),
                    soft,
                    hard,
                });
            }
        }
    }

    let mut labels = IndexMap::new();
    if let Some(n) = f("labels") {
        match &n.value {
            Value::Map(entries) => {
                for (k, v) in entries {
                    let value = if v.is_null() {
                        Some(String::new())
                    } else {
                        r.string(v, &join(&p("labels"), key(k)), "a label value")
                    };
                    if let Some(value) = value {
                        labels.insert(key(k).to_owned(), value);
                    }
                }
            }
            Value::Seq(_) => {
                for label in r.strings(n, &p("labels"), "a label") {
                    labels.insert(label, String::new());
                }
            }
            _ if n.is_null() => {}
            _ => {
                r.error(
                    &p("labels"),
                    n,
                    format!(
                        "expected a list or a mapping of labels, found {} {}",
                        n.kind(),
                        n.display()
                    ),
                )
                .help = Some("write labels: {team: core} or labels: [canary]".into());
            }
        }
    }

    let mut lxc_conf = Vec::new();
    if let Some(n) = f("lxc_conf").filter(|n| n.as_map().is_some_and(|m| !m.is_empty())) {
        r.warn(
            &p("lxc_conf"),
            n,
            "lxc_conf is ignored: Docker removed the LXC execution driver (1.10); nothing is sent",
        )
        .help = Some("remove it".into());
    }
    if let Some(n) = f("lxc_conf") {
        for (k, v) in r
            .opt_map(n, &p("lxc_conf"), "a mapping of LXC keys to values")
            .unwrap_or_default()
        {
            if let Some(value) = r.string(v, &join(&p("lxc_conf"), key(k)), "a value") {
                lxc_conf.push((key(k).to_owned(), value));
            }
        }
    }

    let mut raw_lifecycle: IndexMap<LifecycleState, Vec<checks::RawCheck<'_>>> = IndexMap::new();
    for (state, list) in &defaults.lifecycle {
        raw_lifecycle.insert(
            *state,
            list.iter()
                .map(|c| checks::RawCheck {
                    node: c.node,
                    path: c.path.clone(),
                })
                .collect(),
        );
    }
    if let Some(n) = f("lifecycle") {
        checks::lifecycle(r, n, &p("lifecycle"), &mut raw_lifecycle);
    }
    let target = checks::CheckTarget {
        instance: name,
        ship_ip: &ship_ip,
        ports: &ports,
    };
    let mut lifecycle = IndexMap::new();
    for (state, list) in &raw_lifecycle {
        let checks: Vec<Check> = list
            .iter()
            .filter_map(|raw| checks::check(r, raw, &target))
            .collect();
        lifecycle.insert(*state, checks);
    }

    let own_healthcheck = f("healthcheck").and_then(|n| health::read(r, n, &p("healthcheck")));
    let healthcheck = health::resolve(defaults.healthcheck.as_ref(), own_healthcheck.as_ref());

    Some(Instance {
        name: name.to_owned(),
        service,
        ship,
        image,
        command,
        ports,
        env: Env::new(Arc::clone(&defaults.shared_env), env.values),
        secrets,
        volumes,
        container_volumes,
        volumes_from: Vec::new(),
        links,
        username,
        workdir,
        privileged,
        cap_add,
        cap_drop,
        extra_hosts,
        net,
        restart,
        dns,
        stop_timeout,
        limits,
        log: log.map(Box::new),
        security_opt,
        ulimits,
        labels,
        lxc_conf,
        lifecycle,
        healthcheck: healthcheck.map(Box::new),
    })
}

fn volumes(
    r: &mut Reader,
    binds: Option<&Node>,
    container: Option<&Node>,
    path: &str,
    schema: u32,
) -> (IndexMap<String, Bind>, Vec<String>) {
    let mut out = IndexMap::new();
    let vpath = join(path, "volumes");
    if let Some(n) = binds {
        let entries = r
            .opt_map(n, &vpath, "a mapping of host paths to container paths")
            .unwrap_or_default();
        if schema == 1 && !entries.is_empty() {
            r.warn(&vpath, n, "read as schema 1: each entry is container path: host path")
                .help = Some("MaestroNG's default when __maestro.schema is absent; add `__maestro: {schema: 2}` for host path: container path".into());
        }
        for (k, v) in entries {
            let epath = join(&vpath, key(k));
            if schema == 1 {
                match v.as_scalar().filter(|_| !v.is_null()) {
                    Some(host) => {
                        out.insert(
                            host.text.to_string(),
                            Bind {
                                target: key(k).to_owned(),
                                mode: "rw".into(),
                            },
                        );
                    }
                    None => {
                        r.error(&epath, v, format!("invalid volume specification {}: schema 1 expects container path: host path", v.display()));
                    }
                }
                continue;
            }
            match &v.value {
                Value::Scalar(s) if !v.is_null() => {
                    out.insert(
                        key(k).to_owned(),
                        Bind {
                            target: s.text.to_string(),
                            mode: "rw".into(),
                        },
                    );
                }
                Value::Map(m) if get(m, "target").is_some() => {
                    r.known_keys(m, &epath, &["target", "mode"]);
                    let target = r.string(
                        get(m, "target").expect("checked"),
                        &join(&epath, "target"),
                        "a container path",
                    );
                    let mode = match get(m, "mode") {
                        Some(mn) => {
                            r.string(mn, &join(&epath, "mode"), "a mount mode (rw, ro, ro,Z ...)")
                        }
                        None => Some("rw".into()),
                    };
                    if let (Some(target), Some(mode)) = (target, mode) {
                        out.insert(key(k).to_owned(), Bind { target, mode });
                    }
                }
                _ => {
                    let d = r.error(&epath, v, format!("invalid volume specification {}: expected a container path or {{target, mode}}", v.display()));
                    if v.get("bind").is_some() {
                        d.help = Some("the key is target, not bind".into());
                    }
                }
            }
        }
    }
    let mut container_volumes: Vec<String> = Vec::new();
    if let Some(n) = container {
        let cpath = join(path, "container_volumes");
        for v in r.strings(n, &cpath, "a container path") {
            if out.values().any(|b| b.target == v) {
                r.error(
                    &cpath,
                    n,
                    format!("{v} is both bind-mounted and a container-only volume"),
                );
            } else if !container_volumes.contains(&v) {
                container_volumes.push(v);
            }
        }
        container_volumes.sort();
    }
    (out, container_volumes)
}

fn restart_policy(r: &mut Reader, node: &Node, path: &str) -> RestartPolicy {
    let check_name = |r: &mut Reader, name: &str, node: &Node| -> bool {
        let ok = RESTART_POLICIES.contains(&name);
        if !ok {
            let help = r
                .suggester
                .closest(name, RESTART_POLICIES.iter().copied())
                .map(|best| format!("did you mean {best:?}?"));
            r.error(
                path,
                node,
                format!(
                    "invalid restart policy {name:?}; choose one of {}",
                    RESTART_POLICIES.join(", ")
                ),
            )
            .help = help;
        }
        ok
    };
    match &node.value {
        Value::Scalar(s) => {
            match s.yaml11() {
                Resolved::Str => {
                    let (name, retries) = match s.text.split_once(':') {
                        Some((name, retries)) => match retries.trim().parse::<u32>() {
                            Ok(n) => (name, n),
                            Err(_) => {
                                r.error(path, node, format!("invalid restart policy {:?}: expected NAME or NAME:RETRIES", s.text));
                                return RestartPolicy::default();
                            }
                        },
                        None => (s.text.as_ref(), 0),
                    };
                    if check_name(r, name, node) {
                        RestartPolicy {
                            name: name.to_owned(),
                            retries,
                        }
                    } else {
                        RestartPolicy::default()
                    }
                }
                // `no` unquoted is YAML 1.1's false; MaestroNG falls back to the default,
                // which is also "no". Numbers and the like fall back to it too.
                _ => RestartPolicy::default(),
            }
        }
        Value::Map(m) => {
            let mut policy = RestartPolicy::default();
            let mut ok = true;
            for (k, v) in m {
                match key(k) {
                    "name" => match r.string(v, &join(path, "name"), "a restart policy name") {
                        Some(name) => policy.name = name,
                        None => ok = false,
                    },
                    "retries" => match r.uint(v, &join(path, "retries"), "a number of retries") {
                        Some(n) => policy.retries = n,
                        None => ok = false,
                    },
                    other => {
                        ok = false;
                        let d = r.error(
                            &join(path, other),
                            k,
                            format!(
                                "unknown restart policy key {other:?}; expected name and retries"
                            ),
                        );
                        if other == "maximum_retry_count" {
                            d.help = Some("the key is retries (MaestroNG's documentation says maximum_retry_count, which it rejects too)".into());
                        }
                    }
                }
            }
            if ok && check_name(r, &policy.name, node) {
                policy
            } else {
                RestartPolicy::default()
            }
        }
        Value::Seq(_) => RestartPolicy::default(),
    }
}

fn limits(r: &mut Reader, nodes: &[(&Node, &Node)], path: &str) -> Limits {
    let mut limits = Limits::default();
    for (k, v) in nodes {
        let lpath = join(path, key(k));
        match key(k) {
            "cpu" => {
                limits.cpu = if v.is_null() {
                    None
                } else {
                    r.int(v, &lpath, "a number of CPU shares")
                };
                // Engines refuse shares below 2 (0 means "the default"); MaestroNG's old
                // API had the engine raise them to 2, so its containers ran with 2.
                if let Some(shares @ (i64::MIN..=-1 | 1)) = limits.cpu {
                    r.warn(
                        &lpath,
                        v,
                        format!("{shares} CPU shares are raised to 2, the engine's minimum, as the engine did for MaestroNG"),
                    )
                    .help = Some("write 2 (or more; 1024 is one CPU's worth)".into());
                    limits.cpu = Some(2);
                }
            }
            "memory" => limits.memory = bytes(r, v, &lpath),
            "swap" => limits.swap = bytes(r, v, &lpath),
            other => {
                let help = r.suggester.suggestion(other, ["cpu", "memory", "swap"]);
                r.warn(&lpath, k, format!("unknown key {other:?} is ignored"))
                    .help = Some(help);
            }
        }
    }
    limits
}

/// MaestroNG's `_parse_bytes`: a whole number with an optional k, m or g suffix (powers
/// of 1024, case-insensitive).
fn bytes(r: &mut Reader, node: &Node, path: &str) -> Option<u64> {
    if node.is_null() {
        return None;
    }
    let text = node.text().map(str::trim).unwrap_or_default();
    let (digits, unit) = match text.chars().last().map(|c| c.to_ascii_lowercase()) {
        Some('k') => (&text[..text.len() - 1], 1u64 << 10),
        Some('m') => (&text[..text.len() - 1], 1 << 20),
        Some('g') => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    let value = digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit));
    if value.is_none() || node.as_scalar().is_none() {
        r.error(path, node, format!("invalid size {}: expected a whole number of bytes, optionally with a k, m or g suffix", node.display()))
            .help = Some("for example 512m or 2g; fractions such as 1.5g are not accepted, write 1536m".into());
    }
    value
}

#[cfg(test)]
mod tests;
