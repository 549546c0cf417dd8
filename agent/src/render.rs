//! `maestro-guest render SRC[:DST[:MODE]]...`: Jinja2 templates (minijinja) rendered with
//! the environment and the discovery functions, checked and staged all or nothing.
//!
//! Every template is read and rendered to memory first (all failures are reported at
//! once); only then are the files written (see [`files`]): checked and staged beside
//! their destinations, all or nothing, then each renamed over its own (a bind-mounted
//! file, which rename cannot replace, is rewritten in place from the rendered text).
//!
//! A destination whose bytes are already the rendered ones is not touched (its mtime is
//! kept). The context a template sees is described in [`HELP`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
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
    "rename), or rewritten in place when they are bind-mounted. Only regular files\n",
    "are written and read (a template is at most 16 MiB). Run as root, a symbolic\n",
    "link is followed only if root owns it, in a folder only root can write.\n",
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
        let rendered = files::read_text(Path::new(&spec.src))
            .map_err(|err| format!("cannot read template {}: {err}", spec.src))
            .and_then(|source| engine.render(&spec.src, &source));
        match rendered {
            Ok(text) => texts.push(text),
            Err(message) => failures.push(message),
        }
    }
    if !failures.is_empty() {
        return Err(files::nothing_written(failures, specs));
    }
    files::write(specs, texts)
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
            .and_then(|template| guestutils::jinja::render_bounded(&template, self.root.clone()))
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
    let text = files::read_text(Path::new(path)).map_err(|err| fail(&err))?;
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
    let what = match (mark, err.kind(), guestutils::jinja::explain_limit(err)) {
        (_, _, Some(limit)) => limit,
        (Some(Mark::Required), _, _) => format!("required: {detail}"),
        (Some(Mark::Own), _, _) => detail.to_owned(),
        (None, ErrorKind::UndefinedError, _) if !detail.is_empty() => detail.to_owned(),
        (None, kind, _) if detail.is_empty() => kind.to_string(),
        (None, kind, _) => format!("{kind}: {detail}"),
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

mod files;
#[cfg(test)]
mod tests;
