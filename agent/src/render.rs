//! `maestro-guest render SRC[:DST[:MODE]]...`: Jinja2 templates (minijinja) rendered with
//! the environment and the discovery functions, written all or nothing.
//!
//! Three phases, so that a failure leaves every destination as it was:
//! 1. every template is read and rendered to memory (all failures are reported at once);
//! 2. every changed file is staged: a temporary file next to its destination, written,
//!    given its owner and mode, fsynced;
//! 3. only then is each staged file renamed over its destination (or, for a bind-mounted
//!    file, where rename fails with EBUSY or EXDEV, written in place), and the
//!    directories are fsynced.
//!
//! A destination whose bytes are already the rendered ones is not touched (its mtime is
//! kept). The context a template sees is described in [`HELP`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use guestutils::discovery::{self, DiscoveryError};
use minijinja::value::{Enumerator, Kwargs, Object, ObjectRepr, ValueKind};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior, Value};

use crate::addr::{first_ipv4, resolve_ipv4};
use crate::env::ProcessEnv;

/// The `render` command's help: what a spec is, what a template sees.
pub const HELP: &str = concat!(
    "render Jinja2 templates into files, all or nothing\n",
    "\n",
    "SPEC is SRC[:DST[:MODE]]. DST defaults to SRC without its .j2, .tmpl or .tpl\n",
    "suffix; '-' is standard output. MODE is octal (0640); without it an existing\n",
    "file keeps its mode and a new one gets 0644. Every template is rendered before\n",
    "any file is written: one failure writes nothing. A file whose content is the\n",
    "same is left alone; others are replaced atomically (temporary file, fsync,\n",
    "rename), or rewritten in place when they are bind-mounted.\n",
    "\n",
    "A template sees (Jinja2 syntax, Python string methods such as .split(',')):\n",
    "  env.NAME, NAME   every environment variable (a function wins over NAME)\n",
    "  X from X_FILE    when X is unset: the file's content without its final\n",
    "                   newline (Docker secrets), read only if X is used\n",
    "  env_name()  service()  container()  host_address(ip=false)\n",
    "  internal_address(interface='eth0')  port(name, default=none)\n",
    "  host(service, instance)  specific_port(service, instance, port, default=none)\n",
    "  exposed_port(service, instance, port, default=none)\n",
    "                   as the commands of the same names, with their messages\n",
    "  nodes(service, ports=[], min=1)\n",
    "                   ['host[:port...]', ...], as the nodes command\n",
    "  instances(service, ports=[], min=1)\n",
    "                   [{name, host, ports: {port: number}}, ...]\n",
    "  required(value, message), value|required(message)\n",
    "                   value, unless it is undefined, none or empty\n",
    "Using an undefined variable is an error: test it with 'is defined' or give\n",
    "'|default(...)'. Errors name the template and the line."
);

/// One `SRC[:DST[:MODE]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderSpec {
    pub src: String,
    pub dst: Destination,
    /// Permission bits to give the file; `None` keeps an existing file's, else 0644.
    pub mode: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Stdout,
    File(PathBuf),
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stdout => f.write_str("standard output"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// What became of one template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The file was created or replaced.
    Written,
    /// The file already held exactly this content (and mode): not touched.
    Unchanged,
    /// Same content; only the requested mode was applied.
    ModeChanged,
    /// For `-`: the text, for the caller to print (render never writes to stdout).
    Stdout(String),
}

/// One template's outcome, in the order of the specs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub src: String,
    pub dst: Destination,
    pub change: Change,
}

const SUFFIXES: &[&str] = &[".j2", ".tmpl", ".tpl"];
const DEFAULT_MODE: u32 = 0o644;

impl RenderSpec {
    /// Parses `SRC[:DST[:MODE]]` (paths cannot contain `:`).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut parts = spec.split(':');
        let src = parts.next().unwrap_or_default();
        let dst = parts.next().unwrap_or_default();
        let mode = parts.next();
        if parts.next().is_some() {
            return Err(format!(
                "invalid template spec '{spec}': expected SRC[:DST[:MODE]]"
            ));
        }
        if src.is_empty() {
            return Err(format!("invalid template spec '{spec}': no template"));
        }
        let dst = match dst {
            "-" => Destination::Stdout,
            "" => Destination::File(default_destination(src).ok_or_else(|| {
                let why = if SUFFIXES.iter().any(|s| src.ends_with(s)) {
                    "its name is nothing but the suffix"
                } else {
                    "it does not end in .j2, .tmpl or .tpl"
                };
                format!("cannot tell where to write '{src}': {why}; give a destination ({src}:DST)")
            })?),
            path => Destination::File(PathBuf::from(path)),
        };
        let mode = mode.map(|m| parse_mode(m, spec)).transpose()?;
        if mode.is_some() && dst == Destination::Stdout {
            return Err(format!(
                "invalid template spec '{spec}': standard output has no mode"
            ));
        }
        Ok(Self {
            src: src.to_owned(),
            dst,
            mode,
        })
    }
}

/// `SRC` without its template suffix, if it has one and something is left of the name.
fn default_destination(src: &str) -> Option<PathBuf> {
    let stem = SUFFIXES.iter().find_map(|s| src.strip_suffix(s))?;
    (!stem.is_empty() && !stem.ends_with('/')).then(|| PathBuf::from(stem))
}

fn parse_mode(text: &str, spec: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    let valid =
        !digits.is_empty() && digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit());
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if valid && mode <= 0o7777 => Ok(mode),
        _ => Err(format!(
            "invalid mode '{text}' in '{spec}': expected octal permissions such as 0644"
        )),
    }
}

/// Parses every spec; a destination may appear only once (`-` any number of times).
pub fn parse_specs(specs: &[String]) -> Result<Vec<RenderSpec>, String> {
    let parsed = specs
        .iter()
        .map(|s| RenderSpec::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen: BTreeMap<&Path, &str> = BTreeMap::new();
    for spec in &parsed {
        if let Destination::File(path) = &spec.dst {
            if let Some(first) = seen.insert(path, &spec.src) {
                return Err(format!(
                    "{} is the destination of both {first} and {}",
                    path.display(),
                    spec.src
                ));
            }
        }
    }
    Ok(parsed)
}

/// Parses, renders and writes every spec, all or nothing; see the module's documentation.
/// Texts for `-` are returned, not printed.
pub fn render_all(specs: &[String], env: &ProcessEnv) -> Result<Vec<Rendered>, String> {
    render_specs(&parse_specs(specs)?, env)
}

/// [`render_all`] for specs already parsed with [`parse_specs`].
pub fn render_specs(specs: &[RenderSpec], env: &ProcessEnv) -> Result<Vec<Rendered>, String> {
    let engine = Engine::new(env)?;
    let mut texts = Vec::with_capacity(specs.len());
    let mut failures = Vec::new();
    for spec in specs {
        let rendered = fs::read_to_string(&spec.src)
            .map_err(|err| format!("cannot read template {}: {err}", spec.src))
            .and_then(|source| engine.render(&spec.src, &source));
        match rendered {
            Ok(text) => texts.push(text),
            Err(message) => failures.push(message),
        }
    }
    if !failures.is_empty() {
        return Err(nothing_written(failures, specs));
    }
    let staged =
        stage_all(specs, &texts).map_err(|message| nothing_written(vec![message], specs))?;
    commit(specs, staged, texts)
}

fn nothing_written(mut messages: Vec<String>, specs: &[RenderSpec]) -> String {
    let files = specs
        .iter()
        .filter(|s| matches!(s.dst, Destination::File(_)))
        .count();
    if files > 1 {
        messages.push("no file was written".to_owned());
    }
    messages.join("\n")
}

// ---------------------------------------------------------------------------------------
// The template engine and its context.

/// A minijinja environment with the functions, and the root context.
struct Engine {
    jinja: Environment<'static>,
    root: Value,
}

type Snapshot = Arc<BTreeMap<String, String>>;

impl Engine {
    fn new(env: &ProcessEnv) -> Result<Self, String> {
        let vars: Snapshot = Arc::new(
            env.iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        );
        let mut jinja = Environment::new();
        // Errors name the undefined expression (`env.FOO` is undefined) only in debug mode.
        jinja.set_debug(true);
        jinja.set_undefined_behavior(UndefinedBehavior::Strict);
        // Jinja2's default: no escaping, whatever the file's extension.
        jinja.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        // Jinja2's lists and dicts, changed in place by `append`, `update`... (every
        // source goes through `rewrite` for it), and Python's string and dict methods
        // (`.split(',')`, `.items()`, `.get()`...).
        guestutils::jinja::install(&mut jinja);
        // On an undefined value, the error is the undefined value (`X` is undefined), not
        // the method it lacks.
        jinja.set_unknown_method_callback(|state, value, method, args| match value.get_attr("") {
            Err(undefined) => Err(undefined),
            Ok(_) => guestutils::jinja::unknown_method(state, value, method, args),
        });
        // A configuration file keeps its last newline (Jinja2 would drop it).
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
            .map_err(|err| err.to_string())?;
        jinja.set_syntax(syntax);
        add_functions(&mut jinja, &vars);
        let globals = jinja.globals().map(|(name, _)| name.to_owned()).collect();
        let env_map = Arc::new(EnvMap::new(vars));
        let root = Value::from_object(Root {
            env: Value::from_dyn_object(env_map.clone()),
            vars: env_map,
            globals,
        });
        Ok(Self { jinja, root })
    }

    fn render(&self, name: &str, source: &str) -> Result<String, String> {
        let source = guestutils::jinja::rewrite(source);
        self.jinja
            .template_from_named_str(name, &source)
            .and_then(|template| template.render(self.root.clone()))
            .map_err(|err| describe(&err, name))
    }
}

/// The environment as a map: the variables, then `X` from `X_FILE` for every unset `X`.
#[derive(Debug)]
struct EnvMap {
    vars: Snapshot,
    /// `X` -> the path in `X_FILE` and, once read, its content or why it cannot be read.
    secrets: BTreeMap<String, (String, OnceLock<Result<Value, String>>)>,
}

impl EnvMap {
    fn new(vars: Snapshot) -> Self {
        let secrets = vars
            .iter()
            .filter_map(|(key, path)| {
                let name = key.strip_suffix("_FILE").filter(|n| !n.is_empty())?;
                (!vars.contains_key(name))
                    .then(|| (name.to_owned(), (path.clone(), OnceLock::new())))
            })
            .collect();
        Self { vars, secrets }
    }

    fn get(&self, name: &str) -> Option<Value> {
        if let Some(value) = self.vars.get(name) {
            return Some(Value::from(value.as_str()));
        }
        let (path, content) = self.secrets.get(name)?;
        Some(match content.get_or_init(|| read_secret(name, path)) {
            Ok(value) => value.clone(),
            Err(message) => Value::from(own(message.clone())),
        })
    }
}

/// A Docker secret: the file's text without one final newline.
fn read_secret(name: &str, path: &str) -> Result<Value, String> {
    let fail =
        |err: &dyn fmt::Display| format!("cannot read {name} from {name}_FILE ({path}): {err}");
    let text = fs::read_to_string(path).map_err(|err| fail(&err))?;
    let text = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    Ok(Value::from(text))
}

impl Object for EnvMap {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.get(key.as_str()?)
    }

    /// The variables and the secrets whose file is a regular file (a `LOG_FILE` that does
    /// not exist yet is no secret to list).
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let secrets = self
            .secrets
            .iter()
            .filter(|(_, (path, _))| fs::metadata(path).is_ok_and(|m| m.is_file()))
            .map(|(name, _)| name);
        let names: BTreeSet<&String> = self.vars.keys().chain(secrets).collect();
        Enumerator::Values(names.into_iter().map(|n| Value::from(n.as_str())).collect())
    }
}

/// The root context: `env`, then every variable at top level, except the names of
/// functions (globals), which always mean the function.
#[derive(Debug)]
struct Root {
    env: Value,
    vars: Arc<EnvMap>,
    globals: BTreeSet<String>,
}

impl Object for Root {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "env" => Some(self.env.clone()),
            name if self.globals.contains(name) => None,
            name => self.vars.get(name),
        }
    }
}

/// Marks the errors whose detail is a complete message (discovery, secrets, required).
#[derive(Debug)]
enum Mark {
    Own,
    /// `required` on an undefined value: the engine's "`x` is undefined", prefixed.
    Required,
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("maestro-guest")
    }
}

impl std::error::Error for Mark {}

fn own(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.into()).with_source(Mark::Own)
}

fn discovery_error(err: DiscoveryError) -> Error {
    own(err.to_string())
}

/// `TEMPLATE:LINE: what is wrong`.
fn describe(err: &Error, src: &str) -> String {
    let mark = std::error::Error::source(err).and_then(|s| s.downcast_ref::<Mark>());
    let detail = err.detail().unwrap_or_default();
    let what = match (mark, err.kind()) {
        (Some(Mark::Required), _) => format!("required: {detail}"),
        (Some(Mark::Own), _) => detail.to_owned(),
        (None, ErrorKind::UndefinedError) if !detail.is_empty() => detail.to_owned(),
        (None, kind) if detail.is_empty() => kind.to_string(),
        (None, kind) => format!("{kind}: {detail}"),
    };
    let name = err.name().unwrap_or(src);
    match err.line() {
        Some(line) => format!("{name}:{line}: {what}"),
        None => format!("{name}: {what}"),
    }
}

/// A parameter given by position or by keyword, not both.
fn param(position: Option<Value>, kwargs: &Kwargs, name: &str) -> Result<Option<Value>, Error> {
    let keyword: Option<Value> = kwargs.get(name)?;
    match (position, keyword) {
        (Some(_), Some(_)) => Err(Error::new(
            ErrorKind::TooManyArguments,
            format!("{name} given twice"),
        )),
        (position, keyword) => Ok(position.or(keyword).filter(|v| !v.is_none())),
    }
}

/// A port default as MaestroNG's `int(default)` reads it: a number (a float is truncated)
/// or a string holding one (checked by the query, with its message).
fn default_port(value: Option<Value>) -> Result<Option<String>, Error> {
    let Some(value) = value else { return Ok(None) };
    match value.kind() {
        ValueKind::String => Ok(value.as_str().map(str::to_owned)),
        ValueKind::Bool => Ok(Some(u8::from(value.is_true()).to_string())),
        ValueKind::Number => match value.as_i64() {
            Some(n) => Ok(Some(n.to_string())),
            None => f64::try_from(value)
                .ok()
                .filter(|f| f.is_finite())
                .map(|f| Some(format!("{}", f.trunc())))
                .ok_or_else(|| own("default: not a port number")),
        },
        kind => Err(own(format!(
            "default must be a number or a string, not {kind}"
        ))),
    }
}

/// `ports=`: a list of port names, or one name.
fn port_names(value: Option<Value>) -> Result<Vec<String>, Error> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    if let Some(name) = value.as_str() {
        return Ok(vec![name.to_owned()]);
    }
    let not_names = || {
        own(format!(
            "ports must be a list of port names, not {}",
            value.kind()
        ))
    };
    if !matches!(value.kind(), ValueKind::Seq | ValueKind::Iterable) {
        return Err(not_names());
    }
    value
        .try_iter()?
        .map(|v| v.as_str().map(str::to_owned).ok_or_else(not_names))
        .collect()
}

/// `min=` (MaestroNG's `minimum=` too): a count, 1 when not given.
fn minimum(position: Option<Value>, kwargs: &Kwargs) -> Result<usize, Error> {
    let min = param(position, kwargs, "min")?;
    let minimum: Option<Value> = kwargs.get("minimum")?;
    let value = match (min, minimum) {
        (Some(_), Some(_)) => return Err(own("give min or minimum, not both")),
        (min, minimum) => min.or(minimum),
    };
    match value {
        None => Ok(1),
        Some(v) => v
            .as_usize()
            .filter(|_| v.is_integer())
            .ok_or_else(|| own(format!("min must be a non-negative integer, not {v}"))),
    }
}

fn add_functions(jinja: &mut Environment<'static>, vars: &Snapshot) {
    let v = vars.clone();
    jinja.add_function("env_name", move || discovery::environment_name(&*v));
    let v = vars.clone();
    jinja.add_function("service", move || {
        discovery::service_name(&*v).map_err(discovery_error)
    });
    let v = vars.clone();
    jinja.add_function("container", move || {
        discovery::container_name(&*v).map_err(discovery_error)
    });
    let v = vars.clone();
    jinja.add_function(
        "host_address",
        move |ip: Option<Value>, kwargs: Kwargs| -> Result<String, Error> {
            let ip = param(ip, &kwargs, "ip")?.is_some_and(|ip| ip.is_true());
            kwargs.assert_all_used()?;
            // As the command: an unset address is an error, resolved or not.
            let address = discovery::container_host_address(&*v).map_err(discovery_error)?;
            if !ip {
                return Ok(address);
            }
            resolve_ipv4(&address).map(|a| a.to_string()).map_err(own)
        },
    );
    jinja.add_function(
        "internal_address",
        |interface: Option<String>, kwargs: Kwargs| -> Result<String, Error> {
            let keyword: Option<String> = kwargs.get("interface")?;
            kwargs.assert_all_used()?;
            let interface = interface.or(keyword).unwrap_or_else(|| "eth0".to_owned());
            first_ipv4(&interface)
                .map(|a| a.to_string())
                .map_err(|err| own(err.to_string()))
        },
    );
    let v = vars.clone();
    jinja.add_function(
        "port",
        move |name: String, default: Option<Value>, kwargs: Kwargs| -> Result<i64, Error> {
            let default = default_port(param(default, &kwargs, "default")?)?;
            kwargs.assert_all_used()?;
            discovery::port(&*v, &name, default.as_deref()).map_err(discovery_error)
        },
    );
    let v = vars.clone();
    jinja.add_function("host", move |service: String, instance: String| {
        discovery::specific_host(&*v, &service, &instance).map_err(discovery_error)
    });
    type PortQuery = fn(
        &BTreeMap<String, String>,
        &str,
        &str,
        &str,
        Option<&str>,
    ) -> Result<i64, DiscoveryError>;
    let queries: [(&'static str, PortQuery); 2] = [
        ("specific_port", discovery::specific_port),
        ("exposed_port", discovery::specific_exposed_port),
    ];
    for (name, query) in queries {
        let v = vars.clone();
        jinja.add_function(
            name,
            move |service: String,
                  instance: String,
                  port: String,
                  default: Option<Value>,
                  kwargs: Kwargs|
                  -> Result<i64, Error> {
                let default = default_port(param(default, &kwargs, "default")?)?;
                kwargs.assert_all_used()?;
                query(&v, &service, &instance, &port, default.as_deref()).map_err(discovery_error)
            },
        );
    }
    let v = vars.clone();
    jinja.add_function(
        "nodes",
        move |service: String,
              ports: Option<Value>,
              min: Option<Value>,
              kwargs: Kwargs|
              -> Result<Vec<String>, Error> {
            let ports = port_names(param(ports, &kwargs, "ports")?)?;
            let min = minimum(min, &kwargs)?;
            kwargs.assert_all_used()?;
            let ports: Vec<&str> = ports.iter().map(String::as_str).collect();
            discovery::node_list(&*v, &service, &ports, min).map_err(discovery_error)
        },
    );
    let v = vars.clone();
    jinja.add_function(
        "instances",
        move |service: String,
              ports: Option<Value>,
              min: Option<Value>,
              kwargs: Kwargs|
              -> Result<Vec<Value>, Error> {
            let ports = port_names(param(ports, &kwargs, "ports")?)?;
            let min = minimum(min, &kwargs)?;
            kwargs.assert_all_used()?;
            instances(&v, &service, &ports, min).map_err(discovery_error)
        },
    );
    jinja.add_function("required", required);
    jinja.add_filter("required", required);
}

/// `nodes`, structured: the same queries in the same order, so the same errors.
fn instances(
    vars: &BTreeMap<String, String>,
    service: &str,
    ports: &[String],
    minimum: usize,
) -> Result<Vec<Value>, DiscoveryError> {
    let mut instances = Vec::new();
    for name in discovery::instance_names(vars, service) {
        let host = discovery::specific_host(vars, service, &name)?;
        let mut numbers = BTreeMap::new();
        for port in ports {
            let number = discovery::specific_port(vars, service, &name, port, None)?;
            numbers.insert(port.clone(), Value::from(number));
        }
        let mut instance = BTreeMap::new();
        instance.insert("name", Value::from(name));
        instance.insert("host", Value::from(host));
        instance.insert("ports", Value::from(numbers));
        instances.push(Value::from(instance));
    }
    if instances.len() < minimum {
        return Err(DiscoveryError::NotEnoughNodes {
            service: service.to_owned(),
        });
    }
    Ok(instances)
}

/// `value` itself, unless it is undefined, none or empty.
fn required(value: Value, message: Option<String>) -> Result<Value, Error> {
    let empty = value.is_none() || value.len() == Some(0);
    if !(value.is_undefined() || empty) {
        return Ok(value);
    }
    if let Some(message) = message {
        return Err(own(format!("required: {message}")));
    }
    if value.is_undefined() {
        // Looking into an undefined value fails with the engine's own error, which it then
        // completes with the expression that was undefined (`env.DB_URL`).
        if let Err(err) = value.get_attr("") {
            return Err(err.with_source(Mark::Required));
        }
    }
    Err(own(format!(
        "required: the value is {}",
        if value.is_none() { "none" } else { "empty" }
    )))
}

// ---------------------------------------------------------------------------------------
// Writing.

/// What to do with one destination once every template has rendered.
enum Plan {
    Stdout,
    Keep,
    Chmod(PathBuf, u32),
    /// Rename the staged file over the target (in place if that is refused).
    Replace {
        temp: PathBuf,
        target: PathBuf,
        mode: u32,
    },
    /// Rewrite the target's content: it is not a regular file (a device, a FIFO), or the
    /// replacement could not be given the old file's owner.
    InPlace {
        target: PathBuf,
        mode: Option<u32>,
    },
}

/// Stages every changed file; on failure, removes what it staged.
fn stage_all(specs: &[RenderSpec], texts: &[String]) -> Result<Vec<Plan>, String> {
    let mut plans = Vec::with_capacity(specs.len());
    for (spec, text) in specs.iter().zip(texts) {
        match plan(spec, text.as_bytes()) {
            Ok(plan) => plans.push(plan),
            Err(message) => {
                discard(&plans);
                return Err(message);
            }
        }
    }
    Ok(plans)
}

fn discard(plans: &[Plan]) {
    for plan in plans {
        if let Plan::Replace { temp, .. } = plan {
            let _ = fs::remove_file(temp);
        }
    }
}

fn plan(spec: &RenderSpec, bytes: &[u8]) -> Result<Plan, String> {
    let Destination::File(dst) = &spec.dst else {
        return Ok(Plan::Stdout);
    };
    let fail =
        |what: &str, err: &dyn fmt::Display| format!("cannot write {}: {what}{err}", dst.display());
    // A symbolic link is followed: its target is what gets replaced, the link stays.
    let target = match fs::symlink_metadata(dst) {
        Ok(m) if m.file_type().is_symlink() => {
            fs::canonicalize(dst).map_err(|err| fail("cannot follow the link: ", &err))?
        }
        _ => dst.clone(),
    };
    let existing = match fs::metadata(&target) {
        Ok(m) => Some(m),
        Err(err) if err.kind() == io::ErrorKind::NotFound => None,
        Err(err) => return Err(fail("", &err)),
    };
    let Some(existing) = existing else {
        let mode = spec.mode.unwrap_or(DEFAULT_MODE);
        let temp = stage(&target, bytes, mode, None).map_err(|err| fail("", &err))?;
        return Ok(Plan::Replace { temp, target, mode });
    };
    if existing.is_dir() {
        return Err(format!("cannot write {}: it is a directory", dst.display()));
    }
    if !existing.is_file() {
        return Ok(Plan::InPlace { target, mode: None });
    }
    let current_mode = existing.mode() & 0o7777;
    let mode = spec.mode.unwrap_or(current_mode);
    // A file that cannot be read is taken as different.
    if fs::read(&target).is_ok_and(|old| old == bytes) {
        return Ok(if mode == current_mode {
            Plan::Keep
        } else {
            Plan::Chmod(target, mode)
        });
    }
    let owner = (existing.uid(), existing.gid());
    match stage(&target, bytes, mode, Some(owner)) {
        Ok(temp) => Ok(Plan::Replace { temp, target, mode }),
        Err(Staging::Owner) => Ok(Plan::InPlace {
            target,
            mode: spec.mode,
        }),
        Err(err) => Err(fail("", &err)),
    }
}

enum Staging {
    Io(io::Error),
    /// The replacement cannot be given the existing file's owner.
    Owner,
}

impl fmt::Display for Staging {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(err) => err.fmt(f),
            Self::Owner => f.write_str("cannot give the new file the old one's owner"),
        }
    }
}

impl From<io::Error> for Staging {
    fn from(err: io::Error) -> Self {
        Self::Io(err)
    }
}

/// Writes `bytes` to a new temporary file next to `target` with `mode` (and `owner`),
/// fsynced. The file is removed again if any step fails.
fn stage(
    target: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<PathBuf, Staging> {
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut attempt = 0;
    let (temp, file) = loop {
        let temp = dir.join(format!(
            ".{name}.maestro-guest.{}.{attempt}",
            std::process::id()
        ));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
        {
            Ok(file) => break (temp, file),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists && attempt < 8 => attempt += 1,
            Err(err) => return Err(err.into()),
        }
    };
    let filled = fill(&file, bytes, mode, owner);
    if filled.is_err() {
        let _ = fs::remove_file(&temp);
    }
    filled.map(|()| temp)
}

fn fill(
    mut file: &File,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<(), Staging> {
    file.write_all(bytes)?;
    if let Some((uid, gid)) = owner {
        let made = file.metadata()?;
        if (made.uid(), made.gid()) != (uid, gid)
            && std::os::unix::fs::fchown(file, Some(uid), Some(gid)).is_err()
        {
            return Err(Staging::Owner);
        }
    }
    // After chown, which clears the set-id bits.
    file.set_permissions(Permissions::from_mode(mode))?;
    file.sync_all()?;
    Ok(())
}

/// Applies every plan, in order; then fsyncs the directories that got new entries.
fn commit(
    specs: &[RenderSpec],
    plans: Vec<Plan>,
    texts: Vec<String>,
) -> Result<Vec<Rendered>, String> {
    let mut done = Vec::with_capacity(specs.len());
    let mut dirs = BTreeSet::new();
    let mut plans = plans.into_iter();
    for ((spec, text), plan) in specs.iter().zip(texts).zip(plans.by_ref()) {
        let applied = apply(&plan, text.as_bytes(), &mut dirs);
        let change = match applied {
            Ok(Some(change)) => change,
            Ok(None) => Change::Stdout(text),
            Err(err) => {
                discard(&[plan]);
                discard(&plans.collect::<Vec<_>>());
                let mut message = format!("cannot write {}: {err}", spec.dst);
                let written: Vec<String> = done
                    .iter()
                    .filter(|r: &&Rendered| {
                        matches!(r.change, Change::Written | Change::ModeChanged)
                    })
                    .map(|r| r.dst.to_string())
                    .collect();
                if !written.is_empty() {
                    message.push_str(&format!("\nalready written: {}", written.join(", ")));
                }
                sync_dirs(&dirs);
                return Err(message);
            }
        };
        done.push(Rendered {
            src: spec.src.clone(),
            dst: spec.dst.clone(),
            change,
        });
    }
    sync_dirs(&dirs);
    Ok(done)
}

/// Makes the renames durable. Some filesystems refuse to fsync a directory; the files
/// themselves are synced already, so that is no failure.
fn sync_dirs(dirs: &BTreeSet<PathBuf>) {
    for dir in dirs {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
}

/// `None` for standard output.
fn apply(plan: &Plan, bytes: &[u8], dirs: &mut BTreeSet<PathBuf>) -> io::Result<Option<Change>> {
    match plan {
        Plan::Stdout => Ok(None),
        Plan::Keep => Ok(Some(Change::Unchanged)),
        Plan::Chmod(target, mode) => {
            fs::set_permissions(target, Permissions::from_mode(*mode))?;
            Ok(Some(Change::ModeChanged))
        }
        Plan::InPlace { target, mode } => {
            write_in_place(target, bytes, *mode)?;
            Ok(Some(Change::Written))
        }
        Plan::Replace { temp, target, mode } => {
            match fs::rename(temp, target) {
                Ok(()) => {
                    let dir = target.parent().filter(|d| !d.as_os_str().is_empty());
                    dirs.insert(dir.unwrap_or(Path::new(".")).to_path_buf());
                }
                // A bind-mounted file cannot be replaced, only rewritten.
                Err(err) if refused_rename(&err) => {
                    let written = write_in_place(target, bytes, Some(*mode));
                    let _ = fs::remove_file(temp);
                    written?;
                }
                Err(err) => return Err(err),
            }
            Ok(Some(Change::Written))
        }
    }
}

/// EBUSY (the target is a mount point, as a bind-mounted file is) or EXDEV.
fn refused_rename(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ResourceBusy | io::ErrorKind::CrossesDevices
    )
}

/// Truncates and rewrites `target`, keeping its inode and owner; sets `mode` if it differs.
fn write_in_place(target: &Path, bytes: &[u8], mode: Option<u32>) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).truncate(true).open(target)?;
    file.write_all(bytes)?;
    if let Some(mode) = mode {
        let meta = file.metadata()?;
        if meta.is_file() && meta.mode() & 0o7777 != mode {
            file.set_permissions(Permissions::from_mode(mode))?;
        }
    }
    match file.sync_all() {
        // A terminal or a pipe cannot be synced; that is no failure to write.
        Err(err) if err.kind() == io::ErrorKind::InvalidInput => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests;
