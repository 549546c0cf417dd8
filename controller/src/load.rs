//! Loading an environment: the I/O around the pure core. Reads the file (or standard
//! input), renders it as a Jinja2 template with MaestroNG's context (`env` is the process
//! environment; include and import resolve relative to the file's folder), reads the env
//! files it names, and works out the implicit local ship.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use maestro_core::model::{Environment, Ship};
use maestro_core::{Diagnostic, Files};

/// What loading produced: the environment (when valid), every diagnostic, and the text
/// the diagnostics' lines refer to.
pub struct Loaded {
    pub environment: Option<Environment>,
    pub diagnostics: Vec<Diagnostic>,
    pub source: Source,
}

/// The file as the YAML parser saw it.
pub struct Source {
    /// How to name the file in messages.
    pub name: String,
    /// The file's folder: what relative paths in it are relative to.
    pub base_dir: PathBuf,
    pub rendered: String,
    /// Whether Jinja2 changed the text (then line numbers are those of the rendered text).
    pub templated: bool,
    /// Whether the file could be read at all (if not, its one error says why).
    pub read: bool,
}

/// Reads, renders and validates the environment file at `path` (`-` for stdin).
pub fn load(path: &Path, process_env: &BTreeMap<String, String>) -> Loaded {
    let stdin = path.as_os_str() == "-";
    let name = if stdin {
        "<stdin>".to_owned()
    } else {
        path.display().to_string()
    };
    let base_dir = if stdin {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
    } else {
        path.parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."))
    };
    let fail = |name: String, message: String, help: Option<String>| {
        let mut d = Diagnostic::error("", None, message);
        d.help = help;
        Loaded {
            environment: None,
            diagnostics: vec![d],
            source: Source {
                name,
                base_dir: base_dir.clone(),
                rendered: String::new(),
                templated: false,
                read: false,
            },
        }
    };

    let text = if stdin {
        match read_bounded(std::io::stdin().lock(), 0) {
            Ok(text) => text,
            Err(e) => {
                return fail(
                    name,
                    format!("cannot read the environment from standard input: {e}"),
                    None,
                );
            }
        }
    } else {
        match read_file(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return fail(
                    name.clone(),
                    format!("environment file {name} not found"),
                    Some("give the file with -f FILE (the default is ./maestro.yaml)".into()),
                );
            }
            Err(e) => {
                return fail(
                    name.clone(),
                    format!("cannot read environment file {name}: {e}"),
                    None,
                );
            }
        }
    };

    // The text is moved, not copied, when it has no Jinja2 (a 50 MB file stays 50 MB).
    let (rendered, templated) = if !has_jinja(&text) {
        (text, false)
    } else {
        match render(&text, &name, &base_dir, process_env) {
            Ok(rendered) => {
                let templated = rendered != text;
                (rendered, templated)
            }
            Err(d) => {
                return Loaded {
                    environment: None,
                    diagnostics: vec![*d],
                    source: Source {
                        name,
                        base_dir,
                        rendered: text,
                        templated: false,
                        read: true,
                    },
                };
            }
        }
    };
    let files = DirFiles {
        base_dir: &base_dir,
    };
    let loaded = maestro_core::load(&rendered, &files, &local_ship(process_env));
    Loaded {
        environment: loaded.environment,
        diagnostics: loaded.diagnostics,
        source: Source {
            name,
            base_dir,
            rendered,
            templated,
            read: true,
        },
    }
}

/// Whether `text` has any Jinja2 syntax.
fn has_jinja(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// Renders the file as Jinja2. A file without any Jinja2 syntax is returned as is: the
/// common case costs nothing.
fn render(
    text: &str,
    name: &str,
    base_dir: &Path,
    process_env: &BTreeMap<String, String>,
) -> Result<String, Box<Diagnostic>> {
    if !has_jinja(text) {
        return Ok(text.to_owned());
    }
    let mut jinja = minijinja::Environment::new();
    // Jinja2's default; minijinja would otherwise JSON-escape values in *.yaml files.
    jinja.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    minijinja_contrib::add_to_environment(&mut jinja);
    // Jinja2's lists and dicts (changed in place by `append`, `update`...) and Python's
    // string methods; every source goes through `rewrite` for it.
    guestutils::jinja::install(&mut jinja);
    let dir = base_dir.to_path_buf();
    jinja.set_loader(move |template| {
        // As Jinja2's FileSystemLoader: relative to the file's folder, never above it.
        let relative = Path::new(template);
        if relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Ok(None);
        }
        match read_file(&dir.join(relative)) {
            Ok(source) => Ok(Some(guestutils::jinja::rewrite(&source).into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("cannot read template {template}: {e}"),
            )),
        }
    });
    jinja.add_global("env", minijinja::Value::from(process_env.clone()));
    let source = guestutils::jinja::rewrite(text);
    let result = jinja
        .template_from_named_str(name, &source)
        .and_then(|template| guestutils::jinja::render_bounded(&template, minijinja::context! {}));
    result.map_err(|outer| {
        // An error in an included or imported file comes wrapped in one at the include:
        // report the innermost (the file and line where it happened), and where it was
        // included from.
        let mut e = &outer;
        let mut source = std::error::Error::source(&outer);
        while let Some(cause) = source {
            if let Some(inner) = cause.downcast_ref::<minijinja::Error>() {
                if inner.line().is_some() {
                    e = inner;
                }
            }
            source = cause.source();
        }
        let line = e.line().and_then(|l| u32::try_from(l).ok());
        let template = e.name().unwrap_or(name).to_owned();
        let mut message = format!("Jinja2 template error in {template}");
        if let Some(line) = line {
            message.push_str(&format!(", line {line}"));
        }
        message.push_str(&format!(
            ": {}",
            guestutils::jinja::explain_limit(e)
                .or_else(|| e.detail().map(str::to_owned))
                .unwrap_or_else(|| e.kind().to_string())
        ));
        if !std::ptr::eq(e, &outer) {
            if let (Some(outer_name), Some(outer_line)) = (outer.name(), outer.line()) {
                message.push_str(&format!(" (included from {outer_name}, line {outer_line})"));
            }
        }
        let mut d = Diagnostic::error("", None, message);
        let at = if template == name {
            line
        } else {
            outer.line().and_then(|l| u32::try_from(l).ok())
        };
        if template == name || outer.name() == Some(name) {
            d.loc = at.map(|line| maestro_core::yaml::Loc { line, col: 1 });
        }
        Box::new(d)
    })
}

/// The most maestro reads of one file (the environment file, an included template, an env
/// file, standard input): far above any real one.
pub const MAX_FILE: u64 = 64 << 20;

/// Reads a file the environment names, refusing what is not a regular file: a FIFO would
/// block forever and `/dev/zero` or `/dev/urandom` never end. The file is opened
/// non-blocking (opening a FIFO without a writer would block) and its type checked
/// before any read; the read is bounded by [`MAX_FILE`].
pub fn read_file(path: &Path) -> std::io::Result<String> {
    let file = open_regular(path)?;
    // Sized from the file (a size that changed meanwhile only costs a reallocation):
    // growing by doubling copied a 50 MB file four times over and touched twice its size.
    let size = file.metadata()?.len().min(MAX_FILE) + 1;
    read_bounded(file, usize::try_from(size).unwrap_or(0))
}

/// Opens `path` for reading if it is a regular file (see [`read_file`]): opened
/// non-blocking, its type checked on the open file (no race with a swap of the path),
/// then made blocking again.
pub fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let nonblock = rustix::fs::OFlags::NONBLOCK;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(i32::try_from(nonblock.bits()).unwrap_or_default())
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO (named pipe)"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "a special file"
        };
        return Err(std::io::Error::other(format!(
            "{what}, not a regular file; refusing to read it"
        )));
    }
    // A regular file never blocks; the flag goes so that reads behave as usual.
    rustix::fs::fcntl_setfl(&file, rustix::fs::fcntl_getfl(&file)? - nonblock)?;
    Ok(file)
}

/// Reads at most [`MAX_FILE`] bytes of UTF-8 text into a buffer of `capacity` to begin
/// with; more is an error.
fn read_bounded(reader: impl Read, capacity: usize) -> std::io::Result<String> {
    let mut bytes = Vec::with_capacity(capacity);
    reader.take(MAX_FILE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB (the limit); refusing to read it",
            MAX_FILE >> 20
        )));
    }
    String::from_utf8(bytes).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

/// Env files, relative to the environment file's folder.
struct DirFiles<'a> {
    base_dir: &'a Path,
}

impl Files for DirFiles<'_> {
    fn read(&self, path: &str) -> Result<String, String> {
        let full = self.base_dir.join(path);
        read_file(&full).map_err(|e| {
            // The message names `path` already; add where it was looked for if that differs.
            if full.as_path() == Path::new(path) || self.base_dir == Path::new(".") {
                e.to_string()
            } else {
                format!("{}: {e}", full.display())
            }
        })
    }
}

/// The ship used when the file has no `ships:` section: the engine of `DOCKER_HOST`, or
/// the local socket. Containers are told the address at which they reach the host's
/// published ports: `DOCKER_HOST`'s host, or the host's address on the `docker0` bridge.
pub fn local_ship(process_env: &BTreeMap<String, String>) -> Ship {
    let docker_host = process_env
        .get("DOCKER_HOST")
        .map(String::as_str)
        .filter(|h| !h.is_empty());
    let mut ship = Ship::new(
        "local",
        bridge_address().unwrap_or_else(|| "127.0.0.1".to_owned()),
    );
    match docker_host {
        Some(url) if url.starts_with("unix://") => {
            ship.socket_path = Some(url["unix://".len()..].to_owned())
        }
        Some(url) => {
            let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
            let authority = rest.split('/').next().unwrap_or(rest);
            let authority = authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host);
            let (host, port) = match authority.rsplit_once(':') {
                Some((host, port)) if port.parse::<u16>().is_ok() => (host, port.parse().ok()),
                _ => (authority, None),
            };
            ship.ip = host.trim_matches(['[', ']']).to_owned();
            ship.endpoint = Some(ship.ip.clone());
            ship.docker_port = port;
            ship.tls = url.starts_with("https://")
                || process_env
                    .get("DOCKER_TLS_VERIFY")
                    .is_some_and(|v| !v.is_empty());
        }
        None => ship.socket_path = Some("/var/run/docker.sock".into()),
    }
    ship
}

pub fn bridge_address() -> Option<String> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let (dev, route, fib_trie) = (
        read("/proc/net/dev")?,
        read("/proc/net/route")?,
        read("/proc/net/fib_trie")?,
    );
    guestutils::net::first_ipv4_in("docker0", &dev, &route, &fib_trie)
        .ok()
        .map(|a| a.to_string())
}
