//! The process environment as guestutils' [`Vars`]: the only place the guest reads
//! environment variables. It never sets any.

use std::collections::HashMap;

use guestutils::Vars;

/// A snapshot of the process environment, taken once at start.
///
/// [`Vars::var`] lends out `&str`s, which a per-call `std::env::var` (returning an owned
/// `String`) cannot do without leaking; the guest is a short-lived process that never
/// changes its own environment, so one snapshot answers exactly what `std::env::var`
/// would at any later point.
pub struct ProcessEnv(HashMap<String, String>);

impl ProcessEnv {
    pub fn capture() -> Self {
        Self::from_pairs(std::env::vars_os().filter_map(|(key, value)| {
            // `std::env::var` treats a value that is not UTF-8 as absent; so do we.
            Some((key.into_string().ok()?, value.into_string().ok()?))
        }))
    }

    /// A snapshot of exactly these variables (the first of a repeated name wins).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut vars = HashMap::new();
        for (key, value) in pairs {
            // An environment block may repeat a name; `getenv` (and so `std::env::var`)
            // returns the first occurrence, so the first one wins here too.
            vars.entry(key).or_insert(value);
        }
        Self(vars)
    }

    /// Every variable, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl Vars for ProcessEnv {
    fn var(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
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
