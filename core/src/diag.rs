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

/// How much work "did you mean" may do for one [`Suggester`] (one load of a file): each
/// name looked at counts one, each distance computed counts the product of the two
/// lengths. A file naming thousands of unknown services against thousands of known ones
/// would otherwise take minutes; past the budget, help lists what is known instead.
pub const SUGGESTION_BUDGET: usize = 20_000_000;

/// Words longer than this get no "did you mean" (a typo of such a name is unlikely, and
/// comparing it costs its length times every candidate's).
pub const MAX_SUGGESTED_LEN: usize = 64;

/// Finds likely typos within a bounded amount of work, shared by every lookup it makes.
#[derive(Debug)]
pub struct Suggester {
    left: usize,
}

impl Default for Suggester {
    fn default() -> Self {
        Suggester {
            left: SUGGESTION_BUDGET,
        }
    }
}

impl Suggester {
    /// A part of the budget for one of `parts` workers; [`Self::absorb`] takes back what
    /// it leaves.
    pub fn share(&mut self, parts: usize) -> Suggester {
        let share = self.left / parts.max(1);
        self.left -= share;
        Suggester { left: share }
    }

    pub fn absorb(&mut self, other: Suggester) {
        self.left += other.left;
    }

    /// The closest of `candidates` to `word`, if one is close enough to be a likely typo
    /// (and the budget allows looking).
    pub fn closest<'a>(
        &mut self,
        word: &str,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> Option<&'a str> {
        let word: Vec<char> = word.chars().collect();
        if word.len() > MAX_SUGGESTED_LEN {
            return None;
        }
        let limit = (word.len() / 3).max(1) + 1;
        let mut best: Option<(usize, &'a str)> = None;
        for candidate in candidates {
            if self.left == 0 {
                break;
            }
            self.left -= 1;
            // A distance is at least the difference in length; a character takes one to
            // four bytes. Both bounds are checked before counting characters.
            let bytes = candidate.len();
            if bytes + limit < word.len() || bytes > 4 * (word.len() + limit) {
                continue;
            }
            let chars: Vec<char> = candidate.chars().collect();
            if chars.len().abs_diff(word.len()) > limit {
                continue;
            }
            let cost = word.len() * chars.len();
            if cost > self.left {
                self.left = 0;
                break;
            }
            self.left -= cost;
            let d = distance(&word, &chars);
            if d <= limit && best.is_none_or(|(b, _)| d < b) {
                best = Some((d, candidate));
            }
        }
        best.map(|(_, c)| c)
    }

    /// "did you mean X?" or (a part of) the list of what is known, for unknown names.
    pub fn suggestion<'a>(
        &mut self,
        word: &str,
        known: impl IntoIterator<Item = &'a str> + Clone,
    ) -> String {
        if let Some(best) = self.closest(word, known.clone()) {
            return format!("did you mean {best:?}?");
        }
        let mut known = known.into_iter();
        let first: Vec<&str> = known.by_ref().take(12).collect();
        if first.is_empty() {
            return "there are none".to_owned();
        }
        // Counting the rest is work too: past the budget, only say there are more.
        let mut rest = 0usize;
        let mut counted = true;
        for _ in known {
            if self.left == 0 {
                counted = false;
                break;
            }
            self.left -= 1;
            rest += 1;
        }
        match (rest, counted) {
            (0, true) => format!("known: {}", first.join(", ")),
            (_, true) => format!(
                "known: {}, ... ({} in all)",
                first.join(", "),
                first.len() + rest
            ),
            (_, false) => format!("known: {}, ...", first.join(", ")),
        }
    }
}

/// The closest of `candidates` to `word`, if one is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    Suggester::default().closest(word, candidates)
}

/// "did you mean X?" or the list of what is known, for one unknown name.
pub fn suggestion<'a>(word: &str, known: impl IntoIterator<Item = &'a str> + Clone) -> String {
    Suggester::default().suggestion(word, known)
}

/// Levenshtein distance over characters, with transpositions counted once.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    distance(&a, &b)
}

fn distance(a: &[char], b: &[char]) -> usize {
    #[cfg(test)]
    tests::COMPARED.with(|c| c.set(c.get() + a.len() * b.len()));
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
pub(crate) mod tests {
    use super::*;

    thread_local! {
        /// Character pairs compared by [`distance`] on this thread: a count, not a time,
        /// to show that the work of suggestions stays bounded.
        pub(crate) static COMPARED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

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
        let many: Vec<String> = (0..20).map(|i| format!("n{i}")).collect();
        let many = || many.iter().map(String::as_str);
        assert_eq!(
            suggestion("zzzzzz", many()),
            "known: n0, n1, n2, n3, n4, n5, n6, n7, n8, n9, n10, n11, ... (20 in all)"
        );
        // Past the budget: no comparison, no counting.
        let mut spent = Suggester { left: 0 };
        assert_eq!(
            spent.suggestion("n1x", many()),
            "known: n0, n1, n2, n3, n4, n5, n6, n7, n8, n9, n10, n11, ..."
        );
        // Too long to be a likely typo.
        let long = "n".repeat(MAX_SUGGESTED_LEN + 1);
        assert_eq!(closest(&long, [&long[1..]]), None);
    }
}
