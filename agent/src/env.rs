//! The process environment as guestutils' [`Vars`]: the only place the guest reads
//! environment variables. It never sets any.

use guestutils::Vars;

/// A snapshot of the process environment, taken once at start.
///
/// [`Vars::var`] lends out `&str`s, which a per-call `std::env::var` (returning an owned
/// `String`) cannot do without leaking; the guest is a short-lived process that never
/// changes its own environment, so one snapshot answers exactly what `std::env::var`
/// would at any later point.
///
/// Sorted by name and searched by bisection rather than hashed: a container may carry a
/// thousand variables, and the guest answers in about a millisecond, so building the
/// snapshot must cost little (a sort of mostly sorted names is cheaper than SipHashing
/// each one), and `render` reads it back in name order.
pub struct ProcessEnv(Vec<(String, String)>);

impl ProcessEnv {
    pub fn capture() -> Self {
        Self::from_pairs(std::env::vars_os().filter_map(|(key, value)| {
            // `std::env::var` treats a value that is not UTF-8 as absent; so do we.
            Some((key.into_string().ok()?, value.into_string().ok()?))
        }))
    }

    /// A snapshot of exactly these variables (the first of a repeated name wins).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut vars: Vec<(String, String)> = pairs.into_iter().collect();
        // An environment block may repeat a name; `getenv` (and so `std::env::var`)
        // returns the first occurrence, so the first one wins here too: the sort is
        // stable, and `dedup_by` keeps the first of equal names.
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars.dedup_by(|later, first| later.0 == first.0);
        Self(vars)
    }

    /// Every variable, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl Vars for ProcessEnv {
    fn var(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(name, _)| name.as_str().cmp(key))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_occurrence_wins() {
        let pairs = [("A", "1"), ("B", "2"), ("A", "3")];
        let env = ProcessEnv::from_pairs(pairs.map(|(k, v)| (k.to_owned(), v.to_owned())));
        assert_eq!(env.var("A"), Some("1"));
        assert_eq!(env.var("B"), Some("2"));
        assert_eq!(env.var("C"), None);
    }
}
