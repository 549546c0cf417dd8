//! The reading context: typed accessors over YAML nodes that record a diagnostic (with
//! path, location, value and expectation) instead of failing, so one pass finds every
//! problem.

use crate::diag::{Diagnostic, Suggester};
use crate::yaml::{Node, Resolved, Value};

pub(crate) struct Reader {
    pub diags: Vec<Diagnostic>,
    /// Every "did you mean" of one file shares one bound on the work it does.
    pub suggester: Suggester,
    /// How many threads may build instances (see `build_instances`).
    pub threads: usize,
}

/// A YAML path, built as the reader descends. A key holding control characters (refused
/// as a name, but its values are still read) is quoted and escaped, so that a message
/// shows it rather than obeys it.
pub(crate) fn join(path: &str, key: &str) -> String {
    let key: std::borrow::Cow<'_, str> = if key.chars().any(char::is_control) {
        format!("{key:?}").into()
    } else {
        key.into()
    };
    // Not `format!`: a path is made for every field of every instance, and the formatting
    // machinery was a tenth of the time to load 200,000 of them.
    let mut joined = String::with_capacity(path.len() + 1 + key.len());
    if !path.is_empty() {
        joined.push_str(path);
        joined.push('.');
    }
    joined.push_str(&key);
    joined
}

/// The longest wait or timeout a file may give: a week. Longer ones are mistakes (`1e300`
/// once made every play fail with an overflow), and this bound keeps every deadline
/// maestro computes from them representable.
pub const MAX_SECONDS: i64 = 7 * 24 * 3600;

impl Reader {
    pub fn error(
        &mut self,
        path: &str,
        node: &Node,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        self.diags
            .push(Diagnostic::error(path, Some(node.loc), message));
        self.diags.last_mut().expect("just pushed")
    }

    pub fn warn(&mut self, path: &str, node: &Node, message: impl Into<String>) -> &mut Diagnostic {
        self.diags
            .push(Diagnostic::warning(path, Some(node.loc), message));
        self.diags.last_mut().expect("just pushed")
    }

    fn expected(&mut self, path: &str, node: &Node, what: &str) {
        let found = match &node.value {
            Value::Scalar(_) if node.is_null() => "nothing (null)".to_owned(),
            Value::Scalar(_) => format!("{} {}", node.kind(), node.display()),
            _ => node.kind().to_owned(),
        };
        self.error(path, node, format!("expected {what}, found {found}"));
    }

    /// A mapping. Null is an error here; use [`Self::opt_map`] where null means empty.
    pub fn map<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        what: &str,
    ) -> Option<&'n [(Node, Node)]> {
        match node.as_map() {
            Some(entries) => Some(entries),
            None => {
                self.expected(path, node, what);
                None
            }
        }
    }

    /// A mapping, where null means "none".
    pub fn opt_map<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        what: &str,
    ) -> Option<&'n [(Node, Node)]> {
        if node.is_null() {
            Some(&[])
        } else {
            self.map(node, path, what)
        }
    }

    /// Any non-null scalar, as written.
    pub fn string(&mut self, node: &Node, path: &str, what: &str) -> Option<String> {
        match node.as_scalar() {
            Some(s) if !node.is_null() => Some(s.text.to_string()),
            _ => {
                self.expected(path, node, what);
                None
            }
        }
    }

    /// A scalar or null.
    pub fn opt_string(&mut self, node: &Node, path: &str, what: &str) -> Option<String> {
        if node.is_null() {
            None
        } else {
            self.string(node, path, what)
        }
    }

    /// A boolean, read the YAML 1.1 way MaestroNG reads it (`yes`, `off` ... count).
    /// Null is false.
    pub fn bool(&mut self, node: &Node, path: &str) -> bool {
        match node.as_scalar().map(|s| s.yaml11()) {
            Some(Resolved::Bool(b)) => b,
            Some(Resolved::Null) => false,
            _ => {
                self.expected(path, node, "true or false");
                false
            }
        }
    }

    /// A whole number (YAML 1.1 forms and quoted digits accepted).
    pub fn int(&mut self, node: &Node, path: &str, what: &str) -> Option<i64> {
        let parsed = node.as_scalar().and_then(|s| match s.yaml11() {
            Resolved::Int(digits) => digits.parse::<i64>().ok(),
            Resolved::Str => s.text.trim().parse::<i64>().ok(),
            _ => None,
        });
        if parsed.is_none() {
            self.expected(path, node, what);
        }
        parsed
    }

    /// A non-negative whole number that fits `T`.
    pub fn uint<T: TryFrom<i64>>(&mut self, node: &Node, path: &str, what: &str) -> Option<T> {
        let n = self.int(node, path, what)?;
        match T::try_from(n) {
            Ok(v) if n >= 0 => Some(v),
            _ => {
                self.expected(path, node, what);
                None
            }
        }
    }

    /// A number of seconds (whole or fractional), at most [`MAX_SECONDS`].
    pub fn seconds(&mut self, node: &Node, path: &str) -> Option<f64> {
        let parsed = node
            .as_scalar()
            .filter(|_| !node.is_null())
            .and_then(|s| s.text.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0);
        match parsed {
            None => self.expected(path, node, "a number of seconds"),
            Some(v) if v > MAX_SECONDS as f64 => {
                self.too_long(path, node);
                return None;
            }
            Some(_) => {}
        }
        parsed
    }

    /// A whole number of seconds (or of one-second attempts), at most [`MAX_SECONDS`].
    pub fn whole_seconds<T: TryFrom<i64>>(
        &mut self,
        node: &Node,
        path: &str,
        what: &str,
    ) -> Option<T> {
        let value = self.int(node, path, what)?;
        if value > MAX_SECONDS {
            self.too_long(path, node);
            return None;
        }
        self.uint(node, path, what)
    }

    fn too_long(&mut self, path: &str, node: &Node) {
        self.error(
            path,
            node,
            format!(
                "{} seconds is more than a week ({MAX_SECONDS} s): no wait or timeout of maestro's may be that long",
                node.display()
            ),
        )
        .help = Some("a wait that long is a mistake; give a number of seconds".into());
    }

    /// A string, or a list of strings (a single string is a one-element list).
    pub fn strings(&mut self, node: &Node, path: &str, what: &str) -> Vec<String> {
        match &node.value {
            Value::Scalar(_) if node.is_null() => Vec::new(),
            Value::Scalar(s) => vec![s.text.to_string()],
            Value::Seq(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| self.string(item, &format!("{path}[{i}]"), what))
                .collect(),
            Value::Map(_) => {
                self.expected(path, node, &format!("{what}, or a list of them"));
                Vec::new()
            }
        }
    }

    /// A list of strings; a lone string is an error (for keys where MaestroNG rejects it).
    pub fn string_list(&mut self, node: &Node, path: &str, what: &str) -> Vec<String> {
        match &node.value {
            Value::Scalar(_) if node.is_null() => Vec::new(),
            Value::Seq(_) => self.strings(node, path, what),
            _ => {
                self.expected(path, node, &format!("a list of {what}"));
                Vec::new()
            }
        }
    }

    /// Warns about every key of `entries` not in `known`, suggesting the closest.
    pub fn known_keys(&mut self, entries: &[(Node, Node)], path: &str, known: &[&str]) {
        for (key, _) in entries {
            let name = key.text().unwrap_or_default();
            if !known.contains(&name) {
                let help = self.suggester.suggestion(name, known.iter().copied());
                self.warn(
                    &join(path, name),
                    key,
                    format!("unknown key {name:?} is ignored"),
                )
                .help = Some(help);
            }
        }
    }
}

/// Looks a key up in mapping entries.
pub(crate) fn get<'n>(entries: &'n [(Node, Node)], key: &str) -> Option<&'n Node> {
    entries
        .iter()
        .find(|(k, _)| k.text() == Some(key))
        .map(|(_, v)| v)
}

/// A key's text (keys are always scalars).
pub(crate) fn key(node: &Node) -> &str {
    node.text().unwrap_or_default()
}
