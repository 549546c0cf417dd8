//! MaestroNG conformance of maestro-guest's discovery commands.
//!
//! For every container of every golden case (`tests/conformance/golden`: what
//! MaestroNG 0.8.3 computed for the cases' environment files), the guest runs with exactly
//! that container's environment and must answer every discovery question, the failing ones
//! included, as MaestroNG's `maestro.guestutils` would inside that container: same stdout,
//! same message, same exit status. The expected answers come from [`oracle`], a plain
//! transcription of guestutils' Python (reference §11, names §6.2), never from this
//! project's guestutils, which would make the test circular.
//!
//! Each container's environment is also run in three derived forms, for guestutils'
//! failures no golden reaches (unset or empty `SERVICE_NAME`, no `CONTAINER_NAME`).
//!
//! Not checked: `internal-address` (it reads the container's network interface, which the
//! goldens do not describe), and `host-address --ip` except where the address is an IPv4
//! literal (anything else needs DNS, whose answers depend on the machine).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

mod support;

/// A container's variables.
type Env = BTreeMap<String, String>;

/// MaestroNG's `maestro.guestutils` (0.8.3), transcribed function by function. Every
/// failure is a `MaestroEnvironmentError`, here its message. Numbers are kept as the
/// decimal text Python would print for them (its `int` has no size limit).
mod oracle {
    use super::Env;

    pub type Answer<T> = Result<T, String>;

    /// `os.environ.get(key, '')`.
    fn get<'a>(env: &'a Env, key: &str) -> &'a str {
        env.get(key).map_or("", String::as_str)
    }

    /// `_to_env_var_name(s)`: `re.sub(r'[^\w]', '_', s).upper()`. Only transcribed for
    /// ASCII, which is all the goldens hold (Python's `\w` and `upper()` are Unicode-wide).
    pub fn to_env_var_name(s: &str) -> String {
        assert!(s.is_ascii(), "the oracle only knows ASCII names: {s:?}");
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect()
    }

    /// Python's `int(x)` for a string `x`, as the decimal text of the number, or `None`
    /// for its `ValueError`: surrounding whitespace stripped, an optional sign, decimal
    /// digits with single underscores between them, leading zeros allowed. The
    /// whitespace is ASCII's (space, `\t`, `\n`, `\r`, `\v`, `\f`; not `\x1c`-`\x1f`,
    /// which `str.strip()` would also remove).
    pub fn int(x: &str) -> Option<String> {
        assert!(x.is_ascii(), "the oracle only knows ASCII numbers: {x:?}");
        let s = x.trim_matches(|c: char| " \t\n\r\x0b\x0c".contains(c));
        let (negative, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let groups: Vec<&str> = body.split('_').collect();
        if groups
            .iter()
            .any(|g| g.is_empty() || !g.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        let digits = groups.concat();
        let digits = digits.trim_start_matches('0');
        Some(match (digits.is_empty(), negative) {
            (true, _) => "0".to_owned(),
            (false, true) => format!("-{digits}"),
            (false, false) => digits.to_owned(),
        })
    }

    /// `int(os.environ.get(key, default))` inside `try: ... except Exception:`. An unset
    /// variable gives `int(default)`, and `int(None)` is a `TypeError`.
    fn int_or_default(env: &Env, key: &str, default: Option<&str>) -> Option<String> {
        match env.get(key) {
            Some(value) => int(value),
            None => default.and_then(int),
        }
    }

    pub fn get_environment_name(env: &Env) -> String {
        env.get("MAESTRO_ENVIRONMENT_NAME")
            .cloned()
            .unwrap_or_else(|| "local".to_owned())
    }

    pub fn get_service_name(env: &Env) -> Answer<String> {
        let name = get(env, "SERVICE_NAME");
        if name.is_empty() {
            return Err("Service name was not defined".to_owned());
        }
        Ok(name.to_owned())
    }

    pub fn get_container_name(env: &Env) -> Answer<String> {
        let name = get(env, "CONTAINER_NAME");
        if name.is_empty() {
            return Err("Container name was not defined".to_owned());
        }
        Ok(name.to_owned())
    }

    /// Without `as_ip_address`.
    pub fn get_container_host_address(env: &Env) -> Answer<String> {
        let address = get(env, "CONTAINER_HOST_ADDRESS");
        if address.is_empty() {
            return Err("Container host address was not defined".to_owned());
        }
        Ok(address.to_owned())
    }

    pub fn get_port(env: &Env, name: &str, default: Option<&str>) -> Answer<String> {
        get_specific_exposed_port(
            env,
            &get_service_name(env)?,
            &get_container_name(env)?,
            name,
            default,
        )
    }

    pub fn get_specific_host(env: &Env, service: &str, container: &str) -> Answer<String> {
        let key = format!(
            "{}_{}_HOST",
            to_env_var_name(service),
            to_env_var_name(container)
        );
        env.get(&key).cloned().ok_or_else(|| {
            format!("No host defined for container {container} of service {service}")
        })
    }

    pub fn get_specific_exposed_port(
        env: &Env,
        service: &str,
        container: &str,
        port: &str,
        default: Option<&str>,
    ) -> Answer<String> {
        let key = format!(
            "{}_{}_{}_INTERNAL_PORT",
            to_env_var_name(service),
            to_env_var_name(container),
            to_env_var_name(port)
        )
        .to_ascii_uppercase();
        int_or_default(env, &key, default).ok_or_else(|| {
            format!(
                "No internal port {port} defined for container {container} of service {service}"
            )
        })
    }

    pub fn get_specific_port(
        env: &Env,
        service: &str,
        container: &str,
        port: &str,
        default: Option<&str>,
    ) -> Answer<String> {
        let key = format!(
            "{}_{}_{}_PORT",
            to_env_var_name(service),
            to_env_var_name(container),
            to_env_var_name(port)
        )
        .to_ascii_uppercase();
        int_or_default(env, &key, default).ok_or_else(|| {
            format!("No port {port} defined for container {container} of service {service}")
        })
    }

    pub fn get_node_list(
        env: &Env,
        service: &str,
        ports: &[&str],
        minimum: usize,
    ) -> Answer<Vec<String>> {
        let mut nodes = Vec::new();
        for container in get_service_instance_names(env, service) {
            let mut node = get_specific_host(env, service, &container)?;
            for port in ports {
                node = format!(
                    "{node}:{}",
                    get_specific_port(env, service, &container, port, None)?
                );
            }
            nodes.push(node);
        }
        if nodes.len() < minimum {
            return Err(format!("No or not enough {service} nodes configured"));
        }
        Ok(nodes)
    }

    /// `_get_service_instance_names(service)`.
    pub fn get_service_instance_names(env: &Env, service: &str) -> Vec<String> {
        let key = format!("{}_INSTANCES", to_env_var_name(service));
        match env.get(&key) {
            None => Vec::new(),
            Some(value) => value.split(',').map(str::to_owned).collect(),
        }
    }
}

/// What a discovery command must do: MaestroNG's answer on stdout, one line per value,
/// and exit 0; or `maestro-guest: MESSAGE` on stderr and exit 1.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

fn answered(lines: &[String]) -> Outcome {
    Outcome {
        status: Some(0),
        stdout: lines.iter().map(|l| format!("{l}\n")).collect(),
        stderr: String::new(),
    }
}

fn failed(message: &str) -> Outcome {
    Outcome {
        status: Some(1),
        stdout: String::new(),
        stderr: format!("maestro-guest: {message}\n"),
    }
}

fn one(answer: oracle::Answer<String>) -> Outcome {
    match answer {
        Ok(value) => answered(&[value]),
        Err(message) => failed(&message),
    }
}

/// `nodes --format`: one node per line, one RFC 4180 record, or one JSON array.
fn nodes(answer: oracle::Answer<Vec<String>>, format: &str) -> Outcome {
    let nodes = match answer {
        Ok(nodes) => nodes,
        Err(message) => return failed(&message),
    };
    match format {
        "lines" => answered(&nodes),
        "csv" => {
            let fields: Vec<String> = nodes
                .iter()
                .map(|n| {
                    if n.contains([',', '"', '\n', '\r']) {
                        format!("\"{}\"", n.replace('"', "\"\""))
                    } else {
                        n.clone()
                    }
                })
                .collect();
            answered(&[fields.join(",")])
        }
        "json" => answered(&[serde_json::to_string(&nodes).unwrap()]),
        other => panic!("no format {other}"),
    }
}

/// One container of a golden case.
struct Container {
    name: String,
    service: String,
    /// Its port names.
    ports: Vec<String>,
    /// What it sees: the golden `env` without its `null`s. MaestroNG sends a null as a
    /// bare `NAME`, which Docker reads as "unset" (it drops such entries from the
    /// container's environment), so those variables are absent.
    env: Env,
}

struct Case {
    name: String,
    containers: Vec<Container>,
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/golden")
}

/// Every golden case with containers (a refused file has none), in file-name order.
fn cases() -> Vec<Case> {
    let dir = golden_dir();
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (the conformance data)", dir.display()));
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    let mut cases = Vec::new();
    for path in paths {
        let golden: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let Some(instances) = golden["instances"].as_object().filter(|i| !i.is_empty()) else {
            continue;
        };
        let containers = instances
            .iter()
            .map(|(name, instance)| {
                let mut env = Env::new();
                for (key, value) in instance["env"].as_object().unwrap() {
                    match value {
                        Value::Null => {}
                        Value::String(value) => {
                            env.insert(key.clone(), value.clone());
                        }
                        other => panic!("{}: {name}: {key} is {other}", path.display()),
                    }
                }
                Container {
                    name: name.clone(),
                    service: instance["service"].as_str().unwrap().to_owned(),
                    ports: instance["ports"]
                        .as_object()
                        .map(|p| p.keys().cloned().collect())
                        .unwrap_or_default(),
                    env,
                }
            })
            .collect();
        cases.push(Case {
            name: path.file_stem().unwrap().to_string_lossy().into_owned(),
            containers,
        });
    }
    cases
}

/// Names no golden uses.
const NO_SERVICE: &str = "no-such-service";
const NO_INSTANCE: &str = "no-such-instance";
const NO_PORT: &str = "no-such-port";

/// `--default` values, taken in turn: all of them numbers to Python's `int()`.
const DEFAULTS: &[&str] = &["7", "0042", "-3", "1_000", " 12 ", "+5"];

/// The same name to MaestroNG's normalisation, spelled differently (`zk-1` as `ZK.1`).
fn respell(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '-' => '.',
            '.' | '_' => '-',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

/// One run of the guest and what it must do.
struct Check {
    /// Index into [`Plan::envs`].
    env: usize,
    args: Vec<String>,
    want: Outcome,
}

/// Every environment and every run, built before anything runs.
#[derive(Default)]
struct Plan {
    /// A label (case, container, variant) and the variables.
    envs: Vec<(String, Env)>,
    checks: Vec<Check>,
    /// The runs planned so far, so that none is planned twice.
    planned: HashSet<(usize, Vec<String>)>,
    defaults: usize,
}

impl Plan {
    fn env(&mut self, label: String, env: Env) -> usize {
        self.envs.push((label, env));
        self.envs.len() - 1
    }

    fn check(&mut self, env: usize, args: &[&str], want: Outcome) {
        self.push(env, args.iter().map(|a| (*a).to_owned()).collect(), want);
    }

    fn push(&mut self, env: usize, args: Vec<String>, want: Outcome) {
        if self.planned.insert((env, args.clone())) {
            self.checks.push(Check { env, args, want });
        }
    }

    fn next_default(&mut self) -> &'static str {
        self.defaults += 1;
        DEFAULTS[self.defaults % DEFAULTS.len()]
    }

    /// `env-name`, `service`, `container`, `host-address` and `port` for the container's
    /// first port (or an unknown one), with and without `--default`.
    fn identity(&mut self, env: usize, first_port: &str) {
        let vars = self.envs[env].1.clone();
        self.check(
            env,
            &["env-name"],
            answered(&[oracle::get_environment_name(&vars)]),
        );
        self.check(env, &["service"], one(oracle::get_service_name(&vars)));
        self.check(env, &["container"], one(oracle::get_container_name(&vars)));
        self.check(
            env,
            &["host-address"],
            one(oracle::get_container_host_address(&vars)),
        );
        self.check(
            env,
            &["port", first_port],
            one(oracle::get_port(&vars, first_port, None)),
        );
        let default = self.next_default();
        self.check(
            env,
            &["port", first_port, "--default", default],
            one(oracle::get_port(&vars, first_port, Some(default))),
        );
    }

    /// Every command, about everything the case defines and a few things it does not, in
    /// exactly the environment of `container`.
    fn golden(&mut self, case: &Case, container: &Container) {
        let vars = container.env.clone();
        let env = self.env(format!("{} / {}", case.name, container.name), vars.clone());
        let first_port = container.ports.first().map_or(NO_PORT, String::as_str);
        self.identity(env, first_port);
        // gethostbyname() of an IPv4 literal is the literal.
        if let Ok(address) = oracle::get_container_host_address(&vars) {
            if address
                .parse::<Ipv4Addr>()
                .is_ok_and(|a| a.to_string() == address)
            {
                self.check(env, &["host-address", "--ip"], answered(&[address]));
            }
        }

        // Its own ports, by name.
        for name in container.ports.iter().map(String::as_str).chain([NO_PORT]) {
            let respelled = respell(name);
            for name in [name, respelled.as_str()] {
                self.check(
                    env,
                    &["port", name],
                    one(oracle::get_port(&vars, name, None)),
                );
            }
            let default = self.next_default();
            self.check(
                env,
                &["port", name, "--default", default],
                one(oracle::get_port(&vars, name, Some(default))),
            );
        }

        // Every instance of the case, of its own service, of those it depends on and of
        // those it knows nothing about: host and both port numbers of every port.
        for peer in &case.containers {
            let (service, instance) = (peer.service.as_str(), peer.name.as_str());
            let (other_service, other_instance) = (respell(service), respell(instance));
            for (service, instance) in [
                (service, instance),
                (service, other_instance.as_str()),
                (other_service.as_str(), instance),
            ] {
                self.check(
                    env,
                    &["host", service, instance],
                    one(oracle::get_specific_host(&vars, service, instance)),
                );
            }
            for port in peer.ports.iter().map(String::as_str).chain([NO_PORT]) {
                for default in [None, Some(self.next_default())] {
                    let mut args = vec![service, instance, port];
                    if let Some(default) = default {
                        args.extend(["--default", default]);
                    }
                    let specific = [&["specific-port"][..], &args].concat();
                    self.check(
                        env,
                        &specific,
                        one(oracle::get_specific_port(
                            &vars, service, instance, port, default,
                        )),
                    );
                    let exposed = [&["exposed-port"][..], &args].concat();
                    self.check(
                        env,
                        &exposed,
                        one(oracle::get_specific_exposed_port(
                            &vars, service, instance, port, default,
                        )),
                    );
                }
            }
        }
        let anyone = &case.containers[0];
        let (service, instance) = (anyone.service.as_str(), anyone.name.as_str());
        for (service, instance) in [(service, NO_INSTANCE), (NO_SERVICE, instance)] {
            self.check(
                env,
                &["host", service, instance],
                one(oracle::get_specific_host(&vars, service, instance)),
            );
            self.check(
                env,
                &["specific-port", service, instance, NO_PORT],
                one(oracle::get_specific_port(
                    &vars, service, instance, NO_PORT, None,
                )),
            );
            self.check(
                env,
                &["exposed-port", service, instance, NO_PORT],
                one(oracle::get_specific_exposed_port(
                    &vars, service, instance, NO_PORT, None,
                )),
            );
        }

        // Node lists of every service of the case, of every service the variables name
        // (`{SERVICE}_INSTANCES`, e.g. one without instances) and of an unknown one.
        let mut services: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
        for peer in &case.containers {
            services
                .entry(peer.service.clone())
                .or_default()
                .extend(peer.ports.iter().map(String::as_str));
        }
        for key in vars.keys() {
            if let Some(prefix) = key.strip_suffix("_INSTANCES") {
                let known = services
                    .keys()
                    .any(|s| oracle::to_env_var_name(s) == prefix);
                if !known {
                    services.insert(prefix.to_ascii_lowercase(), BTreeSet::new());
                }
            }
        }
        services.insert(NO_SERVICE.to_owned(), BTreeSet::new());
        for (service, ports) in &services {
            let ports: Vec<&str> = ports.iter().copied().collect();
            self.nodes(env, service, &[], None, "lines");
            self.nodes(env, &respell(service), &[], None, "lines");
            for port in ports.iter().copied().chain([NO_PORT]) {
                self.nodes(env, service, &[port], None, "lines");
            }
            let count = oracle::get_service_instance_names(&vars, service).len();
            for minimum in [0, count, count + 1] {
                self.nodes(env, service, &ports, Some(minimum), "lines");
            }
            // All the ports, then only those every instance has a number for (a range is
            // not one), so that a long list is also seen succeeding.
            let numbered: Vec<&str> = ports
                .iter()
                .copied()
                .filter(|p| oracle::get_node_list(&vars, service, &[p], 0).is_ok())
                .collect();
            for ports in [&ports, &numbered] {
                for format in ["lines", "csv", "json"] {
                    self.nodes(env, service, ports, None, format);
                }
            }
        }
    }

    fn nodes(
        &mut self,
        env: usize,
        service: &str,
        ports: &[&str],
        minimum: Option<usize>,
        format: &str,
    ) {
        let mut args: Vec<String> = vec!["nodes".into(), service.into()];
        for port in ports {
            args.extend(["--port".into(), (*port).to_owned()]);
        }
        if let Some(minimum) = minimum {
            args.extend(["--min".into(), minimum.to_string()]);
        }
        if format != "lines" {
            args.extend(["--format".into(), format.to_owned()]);
        }
        let answer = oracle::get_node_list(&self.envs[env].1, service, ports, minimum.unwrap_or(1));
        self.push(env, args, nodes(answer, format));
    }

    /// guestutils' failures that no golden environment reaches: what an instance's
    /// `env: {SERVICE_NAME: ~, MAESTRO_ENVIRONMENT_NAME: ~}` (unset) or `''` (empty) would
    /// give, and a container started outside maestro without its own name and address.
    fn derived(&mut self, case: &Case, container: &Container) {
        let first_port = container.ports.first().map_or(NO_PORT, String::as_str);
        type Change = fn(&mut Env);
        let variants: [(&str, Change); 3] = [
            ("unset names", |env| {
                env.remove("SERVICE_NAME");
                env.remove("MAESTRO_ENVIRONMENT_NAME");
            }),
            ("empty names", |env| {
                env.insert("SERVICE_NAME".into(), String::new());
                env.insert("MAESTRO_ENVIRONMENT_NAME".into(), String::new());
            }),
            ("outside maestro", |env| {
                env.remove("CONTAINER_NAME");
                env.remove("CONTAINER_HOST_ADDRESS");
            }),
        ];
        for (variant, change) in variants {
            let mut vars = container.env.clone();
            change(&mut vars);
            let env = self.env(
                format!("{} / {} ({variant})", case.name, container.name),
                vars,
            );
            self.identity(env, first_port);
        }
    }
}

/// Runs every check, a few at a time; returns the failures, in plan order.
fn run(guest: &Path, plan: &Plan) -> Vec<String> {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(check) = plan.checks.get(index) else {
                        break;
                    };
                    let (label, env) = &plan.envs[check.env];
                    let out = Command::new(guest)
                        .args(&check.args)
                        .env_clear()
                        .envs(env)
                        .output()
                        .expect("maestro-guest runs");
                    let got = Outcome {
                        status: out.status.code(),
                        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                    };
                    if got != check.want {
                        let message = format!(
                            "{label}: maestro-guest {:?}\n  want {:?}\n  got  {got:?}",
                            check.args, check.want
                        );
                        failures.lock().unwrap().push((index, message));
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    failures.into_iter().map(|(_, m)| m).collect()
}

#[test]
fn discovery_commands_answer_as_maestro_ng_in_every_golden_container() {
    let cases = cases();
    assert!(!cases.is_empty(), "no golden case with containers");
    let mut plan = Plan::default();
    for case in &cases {
        for container in &case.containers {
            plan.golden(case, container);
            plan.derived(case, container);
        }
    }
    // No variables at all: the defaults, and the service name checked before the
    // container name.
    let nothing = plan.env("no variables".to_owned(), Env::new());
    plan.identity(nothing, NO_PORT);
    let failures = run(&support::guest_bin(), &plan);
    let containers: usize = cases.iter().map(|c| c.containers.len()).sum();
    const SHOWN: usize = 40;
    assert!(
        failures.is_empty(),
        "{} of {} runs ({} cases, {containers} containers) disagree with MaestroNG:\n{}{}",
        failures.len(),
        plan.checks.len(),
        cases.len(),
        failures[..failures.len().min(SHOWN)].join("\n"),
        match failures.len().checked_sub(SHOWN) {
            Some(more) if more > 0 => format!("\n... and {more} more"),
            _ => String::new(),
        }
    );
}

/// The oracle's own footing: Python's answers for the rules it transcribes.
#[test]
fn oracle_matches_python() {
    for (name, want) in [
        ("zk-1", "ZK_1"),
        ("dash-name.dot", "DASH_NAME_DOT"),
        ("a--b", "A__B"),
        ("r-always-3", "R_ALWAYS_3"),
        ("", ""),
    ] {
        assert_eq!(oracle::to_env_var_name(name), want, "{name:?}");
    }
    for (text, want) in [
        ("2181", Some("2181")),
        ("0090", Some("90")),
        (" 12 ", Some("12")),
        ("\x0b12\x0c", Some("12")),
        ("\x1f12", None),
        ("+5", Some("5")),
        ("-3", Some("-3")),
        ("-0", Some("0")),
        ("1_000", Some("1000")),
        ("99999999999999999999", Some("99999999999999999999")),
        ("", None),
        ("-", None),
        ("1__0", None),
        ("_1", None),
        ("1_", None),
        ("1234-1236", None),
        ("1.5", None),
        ("0x1F", None),
    ] {
        assert_eq!(oracle::int(text).as_deref(), want, "int({text:?})");
    }
}
