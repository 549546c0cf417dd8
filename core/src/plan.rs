//! What a play will do to each instance, and why, from what exists now: the decisions of
//! `start` and `restart`, shared by the plays and by `maestro plan` / `--dry-run`.

use crate::spec::{ContainerSpec, changed_parts, labels};

/// An instance's container as it exists now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Existing {
    pub running: bool,
    pub digest: Option<String>,
    pub parts: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// No container: create one.
    Create,
    /// A stopped container: remove it and create a new one.
    Recreate,
    /// A stopped container started as it is (`--reuse`).
    StartExisting,
    /// Stop the running container and create a new one (restart).
    Restart,
    /// Nothing to do.
    Leave,
    /// Running, but with an older definition; `start` leaves it and says so.
    Outdated,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Recreate => "recreate",
            Action::StartExisting => "start",
            Action::Restart => "restart",
            Action::Leave => "leave",
            Action::Outdated => "outdated",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub action: Action,
    pub reason: String,
}

fn step(action: Action, reason: impl Into<String>) -> Step {
    Step {
        action,
        reason: reason.into(),
    }
}

/// Why an existing container differs from `spec`, in words (`env changed`), or `None`
/// when it matches.
pub fn difference(spec: &ContainerSpec, existing: &Existing) -> Option<String> {
    let label = |key: &str| {
        spec.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    if existing.digest.as_deref() == label(labels::DIGEST) && existing.digest.is_some() {
        return None;
    }
    let Some(old) = existing.parts.as_deref() else {
        return Some("not created by maestro (no definition digest)".into());
    };
    let changed = changed_parts(old, label(labels::PARTS).unwrap_or_default());
    Some(if changed.is_empty() {
        "definition changed".into()
    } else {
        format!("{} changed", changed.join(", "))
    })
}

/// What `start` does to an instance.
pub fn start(spec: &ContainerSpec, existing: Option<&Existing>, reuse: bool) -> Step {
    match existing {
        None => step(Action::Create, "no container"),
        Some(e) if e.running => match difference(spec, e) {
            None => step(Action::Leave, "running, up to date"),
            Some(why) => step(
                Action::Outdated,
                format!("running, but outdated: {why}; restart applies it"),
            ),
        },
        Some(_) if reuse => step(Action::StartExisting, "stopped; --reuse starts it as it is"),
        Some(e) => match difference(spec, e) {
            None => step(Action::Recreate, "stopped"),
            Some(why) => step(Action::Recreate, format!("stopped, and {why}")),
        },
    }
}

/// What `restart` does to an instance; with `only_if_changed`, an up-to-date running
/// container is left alone.
pub fn restart(spec: &ContainerSpec, existing: Option<&Existing>, only_if_changed: bool) -> Step {
    match existing {
        None => step(Action::Create, "no container"),
        Some(e) => match (difference(spec, e), e.running) {
            (None, true) if only_if_changed => step(Action::Leave, "running, up to date"),
            (None, true) => step(Action::Restart, "running"),
            (None, false) => step(Action::Recreate, "stopped"),
            (Some(why), _) => step(Action::Restart, why),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(digest: &str, parts: &str) -> ContainerSpec {
        let mut spec = crate::spec::tests_support::empty();
        spec.labels = vec![
            (labels::DIGEST.into(), digest.into()),
            (labels::PARTS.into(), parts.into()),
        ];
        spec
    }

    fn existing(running: bool, digest: Option<&str>, parts: Option<&str>) -> Existing {
        Existing {
            running,
            digest: digest.map(Into::into),
            parts: parts.map(Into::into),
        }
    }

    #[test]
    fn start_and_restart_decisions() {
        let s = spec("d1", "image=1,env=2");
        let same = existing(true, Some("d1"), Some("image=1,env=2"));
        let env_changed = existing(true, Some("d0"), Some("image=1,env=3"));
        let stopped = existing(false, Some("d1"), Some("image=1,env=2"));
        let foreign = existing(true, None, None);
        let cases: [(Option<&Existing>, bool, Action, &str); 6] = [
            (None, false, Action::Create, "no container"),
            (Some(&same), false, Action::Leave, "running, up to date"),
            (
                Some(&env_changed),
                false,
                Action::Outdated,
                "running, but outdated: env changed; restart applies it",
            ),
            (Some(&stopped), false, Action::Recreate, "stopped"),
            (
                Some(&stopped),
                true,
                Action::StartExisting,
                "stopped; --reuse starts it as it is",
            ),
            (
                Some(&foreign),
                false,
                Action::Outdated,
                "running, but outdated: not created by maestro (no definition digest); restart applies it",
            ),
        ];
        for (e, reuse, action, reason) in cases {
            assert_eq!(
                start(&s, e, reuse),
                Step {
                    action,
                    reason: reason.into()
                },
                "{e:?}"
            );
        }
        assert_eq!(restart(&s, Some(&same), true).action, Action::Leave);
        assert_eq!(restart(&s, Some(&same), false).action, Action::Restart);
        assert_eq!(
            restart(&s, Some(&env_changed), true),
            Step {
                action: Action::Restart,
                reason: "env changed".into()
            }
        );
        assert_eq!(restart(&s, None, true).action, Action::Create);
    }
}
