//! The values of secret variables (`env: {NAME: {secret: "file:PATH" | "env:NAME" |
//! "cmd:COMMAND"}}`), read by the plays that create containers (and by their plans and dry
//! runs, which must decide as the play would), once per play per source, before anything
//! is created. `config`, `deptree` and `status` never read them.
//!
//! A value never appears in a message, an event, an audit record or a label: a failure
//! names the variable, its service and the source; the container's labels hold the
//! value's salted hash (see `maestro_core::spec::apply_secrets`).
//!
//! Commands run without a shell (their words split as a shell splits them), in the
//! environment file's folder, with no input, within [`COMMAND_TIMEOUT`], and what they
//! print is read up to [`VALUE_LIMIT`]. A file's content and a command's output lose one
//! trailing newline.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncReadExt;

use maestro_core::model::{Environment, Instance, InstanceId, Secret, SecretSource};
use maestro_core::plan::Existing;
use maestro_core::spec::{ContainerSpec, apply_secrets, labels, secrets_salt};

/// How long a `cmd:` secret may take: as long as a credential helper.
pub const COMMAND_TIMEOUT: Duration = crate::credentials::HELPER_TIMEOUT;

/// The largest value read (a file's content, a command's output).
pub const VALUE_LIMIT: usize = 64 * 1024;

/// What is read of a failed command's error output, for the message.
const STDERR_SHOWN: usize = 300;

/// The values a play read, by source.
#[derive(Debug, Default)]
pub struct Values {
    by_source: HashMap<SecretSource, Secret>,
}

impl Values {
    /// The `(name, value)` of each secret variable of `instance` that was read.
    pub fn of<'a>(&'a self, instance: &'a Instance) -> Vec<(&'a str, &'a str)> {
        instance
            .secrets
            .iter()
            .filter_map(|(name, source)| {
                Some((name.as_str(), self.by_source.get(source)?.expose()))
            })
            .collect()
    }

    /// Puts the secret values of `instance` in `spec`, hashed with `salt` in its label:
    /// the salt of the container `spec` is compared with, or a new one for a container
    /// about to be made.
    pub fn apply(&self, spec: &mut ContainerSpec, instance: &Instance, salt: Option<&str>) {
        let values = self.of(instance);
        if values.is_empty() {
            return;
        }
        // Without randomness the salt is still unique to this container and moment; it
        // only protects less against precomputed guesses.
        let fresh;
        let salt = match salt {
            Some(salt) => salt,
            None => {
                fresh = crate::readiness::token().unwrap_or_else(|_| {
                    format!(
                        "{}-{}",
                        std::process::id(),
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_nanos())
                    )
                });
                &fresh
            }
        };
        apply_secrets(spec, &values, salt, &hash);
    }

    /// `existing` made comparable with `spec` when its secrets were hashed with another
    /// salt (a deploy's previous generation, compared with a spec salted as the current
    /// container): each secret whose hash matches the value read now is given the hash
    /// `spec` has for it, the others a hash that matches nothing.
    pub fn comparable(
        &self,
        mut existing: Existing,
        instance: &Instance,
        spec: &ContainerSpec,
    ) -> Existing {
        let Some(new) = spec
            .labels
            .iter()
            .find(|(k, _)| k == labels::SECRETS)
            .map(|(_, v)| v.as_str())
        else {
            return existing;
        };
        let (Some(old), Some(new_salt)) = (existing.secrets.as_deref(), secrets_salt(new)) else {
            return existing;
        };
        let Some(old_salt) = secrets_salt(old).filter(|s| *s != new_salt) else {
            return existing;
        };
        let old_hashes: HashMap<&str, &str> = old
            .split(';')
            .skip(1)
            .filter_map(|p| p.split_once('='))
            .collect();
        let mut label = format!("salt={new_salt}");
        for (name, value) in self.of(instance) {
            let same = old_hashes.get(name) == Some(&hash(old_salt, name, value).as_str());
            let now = if same {
                hash(new_salt, name, value)
            } else {
                "changed".to_owned()
            };
            label.push_str(&format!(";{name}={now}"));
        }
        existing.secrets = Some(label);
        existing
    }

    /// The salt of an existing container's secrets label, to compare with it.
    pub fn salt_of(label: Option<&str>) -> Option<&str> {
        label.and_then(secrets_salt)
    }
}

/// SHA-256 of the salt, the name and the value (each separated by a NUL, which none may
/// hold), in hex.
pub fn hash(salt: &str, name: &str, value: &str) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for (i, part) in [salt, name, value].iter().enumerate() {
        if i > 0 {
            context.update(&[0]);
        }
        context.update(part.as_bytes());
    }
    context
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where sources are read from.
pub struct Reader<'a> {
    /// The environment file's folder: relative `file:` paths and commands start there.
    pub base_dir: &'a Path,
    /// maestro's own environment (`env:` sources, `~`).
    pub process_env: &'a BTreeMap<String, String>,
    pub timeout: Duration,
}

/// Reads every secret of the instances of `selection`, each source once. The errors
/// name each variable, its service and its source; never a value.
pub async fn read(
    env: &Environment,
    selection: &[InstanceId],
    reader: &Reader<'_>,
) -> Result<Values, Vec<String>> {
    // Each source with the (service, variable) pairs that use it, for messages.
    let mut users: BTreeMap<&SecretSource, Vec<(String, String)>> = BTreeMap::new();
    for &id in selection {
        let instance = env.instance(id);
        let service = &env.service(instance.service).name;
        for (name, source) in &instance.secrets {
            let list = users.entry(source).or_default();
            let user = (service.clone(), name.clone());
            if !list.contains(&user) {
                list.push(user);
            }
        }
    }
    let read = futures_util::future::join_all(
        users
            .keys()
            .map(|source| async move { (*source, read_one(source, reader).await) }),
    )
    .await;
    let mut values = Values::default();
    let mut errors = Vec::new();
    for (source, result) in read {
        match result {
            Ok(value) => {
                values.by_source.insert(source.clone(), value);
            }
            Err(why) => {
                for (service, name) in &users[source] {
                    errors.push(format!(
                        "secret {name} of service {service} ({} secret {source}): {why}",
                        source.kind()
                    ));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(errors)
    }
}

async fn read_one(source: &SecretSource, reader: &Reader<'_>) -> Result<Secret, String> {
    let bytes = match source {
        SecretSource::File(path) => {
            // Off the runtime's threads and bounded in time: a file on a hung network
            // mount must not hold the play.
            let path = resolve(reader, path);
            let read = tokio::task::spawn_blocking(move || read_file(&path));
            match tokio::time::timeout(reader.timeout, read).await {
                Ok(Ok(result)) => result?,
                Ok(Err(e)) => return Err(format!("cannot read it: {e}")),
                Err(_) => {
                    return Err(format!(
                        "cannot read it within {}s",
                        reader.timeout.as_secs_f64()
                    ));
                }
            }
        }
        SecretSource::Env(name) => match reader.process_env.get(name) {
            Some(value) => value.clone().into_bytes(),
            None => return Err(format!("maestro's environment has no variable {name}")),
        },
        SecretSource::Cmd(words) => run(words, reader).await?,
    };
    let mut text =
        String::from_utf8(bytes).map_err(|_| "the value is not UTF-8 text".to_owned())?;
    if matches!(source, SecretSource::File(_) | SecretSource::Cmd(_)) {
        if text.ends_with("\r\n") {
            text.truncate(text.len() - 2);
        } else if text.ends_with('\n') {
            text.pop();
        }
    }
    if text.contains('\0') {
        return Err("the value holds a NUL character, which no variable can".into());
    }
    Ok(Secret::new(text))
}

/// `~/` is the user's home; a relative path is relative to the environment file's folder.
fn resolve(reader: &Reader<'_>, path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), reader.process_env.get("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => reader.base_dir.join(path),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    // A FIFO or a device would block or never end: only a regular file is read.
    let file = crate::load::open_regular(path).map_err(|e| format!("cannot read it: {e}"))?;
    let mut bytes = Vec::new();
    file.take(VALUE_LIMIT as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() > VALUE_LIMIT {
        return Err(format!("it is larger than {VALUE_LIMIT} bytes"));
    }
    Ok(bytes)
}

/// Runs a `cmd:` source: its output, bounded in size and time.
async fn run(words: &[String], reader: &Reader<'_>) -> Result<Vec<u8>, String> {
    let Some((program, args)) = words.split_first() else {
        return Err("no command".into());
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(reader.base_dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound if program.contains('/') => {
                format!("{program} does not exist")
            }
            std::io::ErrorKind::NotFound => format!("{program} is not on the PATH"),
            _ => format!("cannot run {program}: {e}"),
        })?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(format!("cannot read what {program} prints"));
    };
    let finished = async {
        let (out, err, status) = tokio::join!(
            read_bounded(stdout, VALUE_LIMIT),
            read_bounded(stderr, STDERR_SHOWN),
            child.wait()
        );
        (out, err.map(|(err, _)| err).unwrap_or_default(), status)
    };
    let (out, err, status) = match tokio::time::timeout(reader.timeout, finished).await {
        Ok(done) => done,
        // Dropping the child kills it.
        Err(_) => {
            return Err(format!(
                "{program} gave no answer within {}s",
                reader.timeout.as_secs_f64()
            ));
        }
    };
    let status = status.map_err(|e| format!("cannot wait for {program}: {e}"))?;
    let (out, larger) = out.map_err(|e| format!("cannot read what {program} prints: {e}"))?;
    if !status.success() {
        // Its error output says why (it is not the value: that goes to its output).
        let said = String::from_utf8_lossy(&err).trim().to_owned();
        let said = crate::output::visible(&said).into_owned();
        return Err(format!(
            "{program} failed ({status}){}",
            if said.is_empty() {
                String::new()
            } else {
                format!(": {said}")
            }
        ));
    }
    if larger {
        return Err(format!("{program} printed more than {VALUE_LIMIT} bytes"));
    }
    Ok(out)
}

/// Reads `from` to its end (so that the writer never blocks on a full pipe), keeping its
/// first `limit` bytes; whether there were more.
async fn read_bounded(
    mut from: impl tokio::io::AsyncRead + Unpin,
    limit: usize,
) -> std::io::Result<(Vec<u8>, bool)> {
    let mut kept = Vec::new();
    let mut more = false;
    let mut buffer = [0u8; 8192];
    loop {
        let n = from.read(&mut buffer).await?;
        if n == 0 {
            return Ok((kept, more));
        }
        let room = limit - kept.len();
        kept.extend_from_slice(&buffer[..n.min(room)]);
        more |= n > room;
    }
}

#[cfg(test)]
mod tests;
