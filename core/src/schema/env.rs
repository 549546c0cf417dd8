//! User-given variables: `env` and `envfile` at service and instance level, with
//! MaestroNG's source rules (a string is an env file, a list is a list of sources, a
//! mapping is merged), list flattening and Docker's env-file format.

use indexmap::IndexMap;

use guestutils::redact::{SECRET, looks_secret};

use crate::Files;
use crate::model::SecretSource;
use crate::yaml::{Node, Resolved, Scalar, Value, python};

use super::read::{Reader, key};

/// Variables as read so far: their values, in MaestroNG's order, and which of them are
/// secrets (whose value is [`SECRET`] until a play reads it).
#[derive(Clone, Debug, Default)]
pub(crate) struct Vars {
    pub values: IndexMap<String, Option<String>>,
    pub secrets: IndexMap<String, SecretSource>,
}

impl Vars {
    pub fn new() -> Vars {
        Vars::default()
    }

    /// Sets a variable (a later source wins, in the place of the first).
    pub fn insert(&mut self, name: String, value: Option<String>) {
        self.secrets.shift_remove(&name);
        self.values.insert(name, value);
    }

    fn insert_secret(&mut self, name: String, source: SecretSource) {
        self.values.insert(name.clone(), Some(SECRET.to_owned()));
        self.secrets.insert(name, source);
    }
}

/// Merges one source (`env` or `envfile` value) into `out`.
pub(crate) fn source(r: &mut Reader, files: &dyn Files, node: &Node, path: &str, out: &mut Vars) {
    match &node.value {
        // MaestroNG skips falsy sources: null, "", false, 0 (`envfile: "{{ env.X }}"`
        // with X unset names no file).
        Value::Scalar(_) if node.is_null() => {}
        Value::Scalar(s) if falsy(s) => {}
        Value::Scalar(s) => env_file(r, files, &s.text, node, path, out),
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                source(r, files, item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries {
                let name = key(k).to_owned();
                let item_path = super::read::join(path, &name);
                if let Some(source) = secret_source(r, v, &item_path) {
                    if let Some(source) = source {
                        out.insert_secret(name, source);
                    }
                } else if let Some(value) = value(r, v, &name, &item_path) {
                    out.insert(name, value);
                }
            }
        }
    }
}

/// A variable's `{secret: "KIND:WHAT"}` (maestro's; MaestroNG sends such a mapping as its
/// Python repr): `None` when the value is not such a mapping, `Some(None)` when it is one
/// with an error (reported).
fn secret_source(r: &mut Reader, node: &Node, path: &str) -> Option<Option<SecretSource>> {
    let Value::Map(entries) = &node.value else {
        return None;
    };
    let (_, spec) = entries.iter().find(|(k, _)| key(k) == "secret")?;
    let help = "write {secret: \"file:PATH\"}, {secret: \"env:NAME\"} or {secret: \"cmd:COMMAND\"}";
    if entries.len() > 1 {
        let others: Vec<&str> = entries
            .iter()
            .map(|(k, _)| key(k))
            .filter(|k| *k != "secret")
            .collect();
        r.error(
            path,
            node,
            format!(
                "a secret takes only the key secret, found also {}",
                others.join(", ")
            ),
        )
        .help = Some(help.into());
        return Some(None);
    }
    let secret_path = format!("{path}.secret");
    let text = match spec.as_scalar() {
        Some(s) if !spec.is_null() && s.yaml12() == Resolved::Str => s.text.as_ref(),
        _ => {
            r.error(
                &secret_path,
                spec,
                format!("expected a string KIND:WHAT, found {}", spec.kind()),
            )
            .help = Some(help.into());
            return Some(None);
        }
    };
    let source = match text.split_once(':') {
        Some(("file", path)) if !path.trim().is_empty() => Ok(SecretSource::File(path.to_owned())),
        Some(("env", name)) if !name.is_empty() && !name.contains(['=', '\0']) => {
            Ok(SecretSource::Env(name.to_owned()))
        }
        Some(("cmd", line)) => match super::shell_words(line) {
            Some(words) if !words.is_empty() => Ok(SecretSource::Cmd(words)),
            Some(_) => Err("cmd: names no command".to_owned()),
            None => Err("cmd: has an unbalanced quote".to_owned()),
        },
        Some(("file", _)) => Err("file: names no file".to_owned()),
        Some(("env", _)) => Err("env: names no variable (or a name with = in it)".to_owned()),
        // Not shown: it may be the secret itself, written where its source belongs.
        _ => Err(
            "expected file:PATH, env:NAME or cmd:COMMAND, found something else \
                  (not shown: it may be the secret itself)"
                .to_owned(),
        ),
    };
    match source {
        Ok(source) => Some(Some(source)),
        Err(message) => {
            r.error(&secret_path, spec, message).help = Some(help.into());
            Some(None)
        }
    }
}

/// Python's falsiness of a scalar read the YAML 1.1 way: `""`, `false` (`no`, `off`),
/// `0`, `0.0`.
fn falsy(s: &Scalar) -> bool {
    match s.yaml11() {
        Resolved::Bool(b) => !b,
        Resolved::Int(v) => v == "0",
        Resolved::Float => s.text.replace('_', "").parse::<f64>() == Ok(0.0),
        Resolved::Str => s.text.is_empty(),
        Resolved::Null => true,
    }
}

/// A variable's value as MaestroNG sends it: Python's `str()` of what PyYAML reads
/// (`yes` is `True`, `0755` is `493`, a mapping is its Python repr), null as "no value",
/// lists flattened. Where that differs from the text written, a warning says so and how
/// to send the text instead.
fn value(r: &mut Reader, node: &Node, name: &str, path: &str) -> Option<Option<String>> {
    // A value that may be a secret is not repeated in the warning: its line is enough.
    let secret = looks_secret(name);
    match &node.value {
        Value::Seq(_) => flatten(r, node, path).map(Some),
        Value::Scalar(s) => {
            let sent = python::str_of(node);
            if let Some(sent) = sent.as_deref().filter(|sent| *sent != &*s.text) {
                let message = if secret {
                    format!(
                        "YAML 1.1 reads this value as a {}: it reaches the container in Python's \
                         spelling, not as written, as MaestroNG sends it",
                        kind_read(s)
                    )
                } else {
                    format!(
                        "{} reaches the container as {sent:?}, as MaestroNG sends it (YAML 1.1 \
                         reads it as a {})",
                        s.text,
                        kind_read(s)
                    )
                };
                r.warn(path, node, message).help = Some(if secret {
                    "quote it to send the text as written".to_owned()
                } else {
                    format!("quote it to send the text as written: \"{}\"", s.text)
                });
            }
            Some(sent)
        }
        Value::Map(_) => {
            r.warn(
                path,
                node,
                "a mapping reaches the container as Python's repr of it, as MaestroNG sends it",
            )
            .help = Some(if secret {
                "to send JSON, write it as a quoted string".to_owned()
            } else {
                format!("to send JSON, quote it as a string: '{}'", json(node))
            });
            Some(python::str_of(node))
        }
    }
}

/// What YAML 1.1 made of a plain scalar whose text is not what is sent.
fn kind_read(s: &Scalar) -> &'static str {
    match s.yaml11() {
        Resolved::Bool(_) => "boolean",
        Resolved::Int(_) => "number",
        Resolved::Float => "floating-point number",
        Resolved::Null => "null",
        Resolved::Str => "date",
    }
}

/// MaestroNG's `_env_list_expand`: items joined with spaces, nested lists recursively;
/// items must be strings.
fn flatten(r: &mut Reader, node: &Node, path: &str) -> Option<String> {
    match &node.value {
        Value::Seq(items) => {
            let mut parts = Vec::with_capacity(items.len());
            let mut ok = true;
            for (i, item) in items.iter().enumerate() {
                match flatten(r, item, &format!("{path}[{i}]")) {
                    Some(part) => parts.push(part),
                    None => ok = false,
                }
            }
            ok.then(|| parts.join(" "))
        }
        Value::Scalar(s) if s.yaml12() == Resolved::Str => Some(s.text.to_string()),
        _ => {
            r.error(
                path,
                node,
                format!(
                    "list items of a variable must be strings, found {} {}",
                    node.kind(),
                    node.display()
                ),
            )
            .help = Some(format!("quote it: \"{}\"", node.text().unwrap_or_default()));
            None
        }
    }
}

/// A mapping as JSON: what the warning about a mapping value suggests writing instead.
fn json(node: &Node) -> String {
    fn write(node: &Node, out: &mut String) {
        match &node.value {
            Value::Scalar(s) => match s.yaml12() {
                Resolved::Null => out.push_str("null"),
                Resolved::Bool(b) => out.push_str(if b { "true" } else { "false" }),
                Resolved::Int(_) | Resolved::Float if s.text.parse::<f64>().is_ok() => {
                    out.push_str(&s.text)
                }
                _ => quote(&s.text, out),
            },
            Value::Seq(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write(item, out);
                }
                out.push(']');
            }
            Value::Map(entries) => {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    quote(key(k), out);
                    out.push_str(": ");
                    write(v, out);
                }
                out.push('}');
            }
        }
    }
    fn quote(s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    let mut out = String::new();
    write(node, &mut out);
    out
}

/// Reads a Docker env file: `#` in the first column starts a comment; every other line
/// must be `NAME=value` (split at the first `=`, the line trimmed, nothing unquoted).
/// A blank line is refused, as docker-py (and so MaestroNG) refuses it.
fn env_file(
    r: &mut Reader,
    files: &dyn Files,
    name: &str,
    node: &Node,
    path: &str,
    out: &mut Vars,
) {
    let text = match files.read(name) {
        Ok(text) => text,
        Err(reason) => {
            r.error(
                path,
                node,
                format!("cannot read env file {name:?}: {reason}"),
            )
            .help = Some(
                "a string (or a list) here names env files, relative to the environment file; \
                 variables are given as a mapping, NAME: value"
                    .into(),
            );
            return;
        }
    };
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        match line.trim().split_once('=') {
            Some((k, v)) => {
                out.insert(k.to_owned(), Some(v.to_owned()));
            }
            None => {
                // The line is not shown: it may be a secret value pasted without its name.
                let what = if line.trim().is_empty() {
                    "a blank line"
                } else {
                    "a line without ="
                };
                r.error(
                    path,
                    node,
                    format!("env file {name:?}, line {}: expected NAME=value, found {what}", n + 1),
                )
                .help = Some("remove the line: MaestroNG's env-file reader (docker-py's) refuses it, and maestro reads env files the same way".into());
                return;
            }
        }
    }
}
