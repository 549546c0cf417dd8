//! Diagnostics: every problem found in an environment file, with where it is and what
//! was expected. Validation collects them all instead of stopping at the first.

use std::fmt;

use crate::yaml::Loc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// One problem. `path` is the dotted YAML path (`services.kafka.instances.kafka-1.ports`),
/// empty for the document itself; `loc` is where the parser saw the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub path: String,
    pub loc: Option<Loc>,
    pub message: String,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(path: impl Into<String>, loc: Option<Loc>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            path: path.into(),
            loc,
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(path: impl Into<String>, loc: Option<Loc>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(path, loc, message)
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// The closest of `candidates` to `word`, if one is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1) + 1;
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// "did you mean X?" or the list of what is known, for unknown names.
pub fn suggestion<'a>(word: &str, known: impl IntoIterator<Item = &'a str> + Clone) -> String {
    match closest(word, known.clone()) {
        Some(best) => format!("did you mean {best:?}?"),
        None => {
            let all: Vec<&str> = known.into_iter().collect();
            if all.is_empty() {
                "there are none".to_owned()
            } else if all.len() <= 12 {
                format!("known: {}", all.join(", "))
            } else {
                format!(
                    "known: {}, ... ({} in all)",
                    all[..12].join(", "),
                    all.len()
                )
            }
        }
    }
}

/// Levenshtein distance over characters, with transpositions counted once.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev2: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(edit_distance("requires", "requries"), 1);
        assert_eq!(
            closest("requries", ["requires", "wants_info"]),
            Some("requires")
        );
        assert_eq!(
            closest("env_file", ["env", "envfile", "image"]),
            Some("envfile")
        );
        assert_eq!(closest("zzzzzz", ["env", "image"]), None);
        assert_eq!(suggestion("s9", ["s1", "s2"]), "did you mean \"s1\"?");
        assert_eq!(suggestion("nothing-like", ["a", "b"]), "known: a, b");
    }
}
