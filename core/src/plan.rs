//! What a play will do to each instance, and why, from what exists now: the decisions of
//! `start` and `restart`, shared by the plays and by `maestro plan` / `--dry-run`.

use crate::spec::{ContainerSpec, changed_parts, changed_secrets, labels};

/// Whose a container found under an instance's name is. Docker names are unique per
/// engine, so the name alone does not make a container the instance's: maestro's labels
/// say what it was created for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// maestro created it for this instance of this environment on this ship (or an
    /// older maestro did, without a ship label).
    Own,
    /// It carries no maestro label: MaestroNG's, or `docker run --name`. It is the
    /// instance's container as MaestroNG sees it (found by name): `start` leaves it when
    /// running and replaces it when stopped, `restart` and `deploy` replace it with one
    /// maestro labels.
    Foreign,
    /// maestro created it for something else; the text says what ("belongs to
    /// environment shop"). Never stopped, replaced or removed in the instance's name.
    Conflict(String),
}

/// What maestro's labels on a container claim (each `None` where the label is absent).
#[derive(Clone, Copy, Debug, Default)]
pub struct Claimed<'a> {
    pub environment: Option<&'a str>,
    pub ship: Option<&'a str>,
    pub role: Option<&'a str>,
    pub instance: Option<&'a str>,
}

/// Whose a container with these labels is, found under the name of `instance` (or of one
/// of its generations) of `environment` on `ship`.
pub fn owner(claimed: Claimed, environment: &str, ship: &str, instance: &str) -> Owner {
    let Some(env) = claimed.environment else {
        return Owner::Foreign;
    };
    if env != environment {
        return Owner::Conflict(format!("belongs to environment {env}"));
    }
    if claimed.role == Some(labels::ROLE_LOCK) {
        return Owner::Conflict("is a maestro lock".into());
    }
    // Another ship whose engine is this one too (or a ship since renamed, whose orphans
    // `clean --orphans` removes).
    if let Some(s) = claimed.ship.filter(|&s| s != ship) {
        return Owner::Conflict(format!("belongs to ship {s}"));
    }
    if let Some(i) = claimed.instance.filter(|&i| i != instance) {
        return Owner::Conflict(format!("was created for instance {i}"));
    }
    Owner::Own
}

/// An instance's container as it exists now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Existing {
    pub owner: Owner,
    pub running: bool,
    pub digest: Option<String>,
    pub parts: Option<String>,
    /// The id of the image it runs.
    pub image_id: Option<String>,
    /// Its variables (`NAME=value`, its image's included), when they were looked at:
    /// then a changed environment is explained variable by variable.
    pub env: Option<Vec<String>>,
    /// Its [`labels::SECRETS`] label: the salted hashes of its secret variables.
    pub secrets: Option<String>,
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
    /// Replace the container with a new one, keeping it as the previous generation
    /// (deploy).
    Replace,
    /// Outdated, but what the file names was rolled back from: deploy leaves it until told
    /// to roll it out again.
    Held,
    /// A container of the instance's name that maestro created for something else (see
    /// [`Owner::Conflict`]): nothing is done, and the instance fails.
    Conflict,
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
            Action::Replace => "replace",
            Action::Held => "held",
            Action::Conflict => "conflict",
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
/// when it matches. `image_now` is the id the spec's image resolves to on the ship now
/// (after pulling, in plays that pull): a container running another image is outdated
/// even when its definition is not, as MaestroNG compares them.
pub fn difference(
    spec: &ContainerSpec,
    existing: &Existing,
    image_now: Option<&str>,
) -> Option<String> {
    let definition = definition_difference(spec, existing);
    let image = match (image_now, existing.image_id.as_deref()) {
        (Some(now), Some(was)) if now != was => Some(format!(
            "image changed: {} now {} (was {})",
            spec.image,
            short_image_id(now),
            short_image_id(was)
        )),
        _ => None,
    };
    match (definition, image) {
        (None, None) => None,
        (Some(d), None) => Some(d),
        (None, Some(i)) => Some(i),
        (Some(d), Some(i)) => Some(format!("{d}; {i}")),
    }
}

/// An image id as people read it: `sha256:` and the first 12 hex digits.
pub fn short_image_id(id: &str) -> String {
    let (algorithm, hex) = id.split_once(':').unwrap_or(("", id));
    let short: String = hex.chars().take(12).collect();
    let more = if hex.chars().count() > 12 { "…" } else { "" };
    if algorithm.is_empty() {
        format!("{short}{more}")
    } else {
        format!("{algorithm}:{short}{more}")
    }
}

fn definition_difference(spec: &ContainerSpec, existing: &Existing) -> Option<String> {
    let label = |key: &str| {
        spec.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    // Secrets are compared by their salted hashes (the digest covers their names only).
    let secrets = changed_secrets(existing.secrets.as_deref(), label(labels::SECRETS));
    // A container an earlier maestro labelled is compared in its labels' own form.
    let legacy = existing
        .digest
        .as_deref()
        .is_some_and(crate::spec::is_legacy);
    let (digest, parts) = if legacy {
        let (digest, parts) = crate::spec::legacy_labels(spec);
        (Some(digest), Some(parts))
    } else {
        (
            label(labels::DIGEST).map(str::to_owned),
            label(labels::PARTS).map(str::to_owned),
        )
    };
    if existing.digest.is_some() && existing.digest == digest {
        return (!secrets.is_empty()).then(|| format!("env changed{}", listed(secrets)));
    }
    let Some(old) = existing.parts.as_deref() else {
        return Some("not created by maestro (no definition digest)".into());
    };
    let changed = changed_parts(old, parts.as_deref().unwrap_or_default());
    if changed.is_empty() {
        return Some("definition changed".into());
    }
    let names = match &existing.env {
        Some(env) if changed.iter().any(|c| c == "env") => changed_variables(env, &spec.env),
        _ => Vec::new(),
    };
    Some(format!("{} changed{}", changed.join(", "), listed(names)))
}

/// How many variable names a reason lists before it says how many more there are.
const NAMES_SHOWN: usize = 6;

/// The variables of `new` that `old` lacks or has with another value, by name only
/// (values may be secrets): ` (A, B, C and 4 more)`. A variable `old` has and `new` does
/// not may come from the image, so only those the file sets are compared. maestro's own
/// per-play variables (`MAESTRO_READINESS_*`) are not part of a definition.
fn changed_variables(old: &[String], new: &[String]) -> Vec<String> {
    let split = |v: &String| -> (String, String) {
        let (name, value) = v.split_once('=').unwrap_or((v, ""));
        (name.to_owned(), value.to_owned())
    };
    let old: std::collections::HashMap<String, String> = old.iter().map(split).collect();
    let names: Vec<String> = new
        .iter()
        .map(split)
        .filter(|(name, value)| {
            !name.starts_with("MAESTRO_READINESS_") && old.get(name) != Some(value)
        })
        .map(|(name, _)| name)
        .collect();
    names
}

/// Variable names as a reason lists them: ` (A, B, C and 4 more)`, sorted; nothing when
/// there are none.
fn listed(mut names: Vec<String>) -> String {
    names.sort();
    names.dedup();
    match names.len() {
        0 => String::new(),
        n if n <= NAMES_SHOWN => format!(" ({})", names.join(", ")),
        n => format!(
            " ({} and {} more)",
            names[..NAMES_SHOWN].join(", "),
            n - NAMES_SHOWN
        ),
    }
}

/// The step of an instance whose name is taken by a container maestro created for
/// something else: nothing is done to it.
fn conflict(name: &str, existing: &Existing) -> Option<Step> {
    match &existing.owner {
        Owner::Conflict(why) => Some(step(
            Action::Conflict,
            format!(
                "the container named {name} {why}: maestro leaves it alone; remove or rename it"
            ),
        )),
        Owner::Own | Owner::Foreign => None,
    }
}

/// What `start` does to an instance. As MaestroNG, a running container is left as it is;
/// one maestro did not create is said so (only `restart` or `deploy` replace it).
pub fn start(
    spec: &ContainerSpec,
    existing: Option<&Existing>,
    image_now: Option<&str>,
    reuse: bool,
) -> Step {
    let Some(e) = existing else {
        return step(Action::Create, "no container");
    };
    if let Some(conflict) = conflict(&spec.name, e) {
        return conflict;
    }
    match e {
        e if e.running && e.owner == Owner::Foreign => step(
            Action::Leave,
            "running, not created by maestro: start leaves it; restart or deploy replaces it \
             with a container maestro labels",
        ),
        e if e.running => match difference(spec, e, image_now) {
            None => step(Action::Leave, "running, up to date"),
            Some(why) => step(
                Action::Outdated,
                format!("running, but outdated: {why}; restart applies it"),
            ),
        },
        _ if reuse => step(Action::StartExisting, "stopped; --reuse starts it as it is"),
        e => match difference(spec, e, image_now) {
            None => step(Action::Recreate, "stopped"),
            Some(why) => step(Action::Recreate, format!("stopped, and {why}")),
        },
    }
}

/// What `restart` does to an instance; with `only_if_changed`, an up-to-date running
/// container is left alone.
pub fn restart(
    spec: &ContainerSpec,
    existing: Option<&Existing>,
    image_now: Option<&str>,
    only_if_changed: bool,
) -> Step {
    let Some(e) = existing else {
        return step(Action::Create, "no container");
    };
    if let Some(conflict) = conflict(&spec.name, e) {
        return conflict;
    }
    match (difference(spec, e, image_now), e.running) {
        (None, true) if only_if_changed => step(Action::Leave, "running, up to date"),
        (None, true) => step(Action::Restart, "running"),
        (None, false) => step(Action::Recreate, "stopped"),
        (Some(why), _) => step(Action::Restart, why),
    }
}

/// What `deploy` does to an instance, from its container and the previous generation
/// kept beside it. A running container that matches is left; one that differs is replaced
/// (the old one kept); a stopped one that differs is replaced too (it may be the only
/// earlier generation left by an interrupted deploy), one that matches is recreated; a
/// missing one is created. When the current container differs from the file but the kept
/// previous generation is exactly what the file names (definition and image), the
/// operator rolled back from it: it is held unless `roll_out_rolled_back`. A container of
/// either name that maestro created for something else stops it all (a conflict).
///
/// `retiring`: a container is kept under `NAME.retiring`, so a deploy was interrupted
/// before its new container was proven ready: whatever has the instance's name now is
/// replaced again (the retiring one is restored if that fails).
pub fn deploy(
    spec: &ContainerSpec,
    existing: Option<&Existing>,
    previous: Option<&Existing>,
    retiring: bool,
    image_now: Option<&str>,
    roll_out_rolled_back: bool,
) -> Step {
    if let Some(conflict) = existing.and_then(|e| conflict(&spec.name, e)) {
        return conflict;
    }
    if let Some(conflict) =
        previous.and_then(|p| conflict(&crate::spec::previous_name(&spec.name), p))
    {
        return conflict;
    }
    if retiring {
        return match existing {
            Some(_) => step(
                Action::Replace,
                "an interrupted deploy left this container unproven (the one it replaces is kept as .retiring): replaced again",
            ),
            None => step(
                Action::Create,
                "no container: an interrupted deploy moved the old one aside (kept as .retiring, restored if this one fails)",
            ),
        };
    }
    let Some(e) = existing else {
        return match previous {
            Some(_) => step(
                Action::Create,
                "no container (the previous generation is kept, and restored if this one fails)",
            ),
            None => step(Action::Create, "no container"),
        };
    };
    let Some(why) = difference(spec, e, image_now) else {
        return if e.running {
            step(Action::Leave, "running, up to date")
        } else {
            step(Action::Recreate, "stopped")
        };
    };
    let rolled_back = previous.is_some_and(|p| difference(spec, p, image_now).is_none());
    if rolled_back && !roll_out_rolled_back {
        return step(
            Action::Held,
            format!(
                "rolled back: the file still names the definition that was rolled back ({}); \
                 change the file, or deploy --rolled-back to roll it out again",
                spec.image
            ),
        );
    }
    if e.running {
        step(Action::Replace, why)
    } else {
        step(Action::Replace, format!("stopped, and {why}"))
    }
}

/// How many instances of a service may be out of service at once during a rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailable {
    Count(usize),
    /// A percentage of the service's instances (rounded down, at least one).
    Percent(u32),
}

impl Unavailable {
    pub fn of(self, instances: usize) -> usize {
        match self {
            Unavailable::Count(n) => n.max(1),
            Unavailable::Percent(p) => (instances * p as usize / 100).max(1),
        }
    }
}

impl std::str::FromStr for Unavailable {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a number of instances (2) or a percentage (25%)");
        match text.strip_suffix('%') {
            Some(p) => match p.parse::<u32>() {
                Ok(p) if (1..=100).contains(&p) => Ok(Unavailable::Percent(p)),
                _ => Err(bad()),
            },
            None => match text.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(Unavailable::Count(n)),
                _ => Err(bad()),
            },
        }
    }
}

/// The order of a rollout. `services[row]` is each row's service, `replaced[row]` whether
/// it is replaced (out of service for a while), `sizes[service]` how many instances the
/// service has, `waits[row]` what the row already waits for (its dependencies in the
/// play, and the containers it is tied to). Each service's replaced rows go in batches of
/// `unavailable.of(size)`, in row order; a batch waits for the whole batch before it.
/// Returns the waits with the batches added, and each row's batch (from 1; `None` for
/// rows that are not replaced).
pub fn rollout(
    services: &[usize],
    replaced: &[bool],
    sizes: &[usize],
    unavailable: Unavailable,
    mut waits: Vec<Vec<usize>>,
) -> (Vec<Vec<usize>>, Vec<Option<usize>>) {
    let mut batch_of: Vec<Option<usize>> = vec![None; services.len()];
    let mut by_service: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (row, &service) in services.iter().enumerate() {
        if replaced[row] {
            by_service.entry(service).or_default().push(row);
        }
    }
    for (service, rows) in by_service {
        let size = unavailable.of(sizes[service]);
        let batches: Vec<&[usize]> = rows.chunks(size).collect();
        for (k, batch) in batches.iter().enumerate() {
            for &row in *batch {
                batch_of[row] = Some(k + 1);
                if k > 0 {
                    for &before in batches[k - 1] {
                        if !waits[row].contains(&before) {
                            waits[row].push(before);
                        }
                    }
                }
            }
        }
    }
    (waits, batch_of)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Digests here are made up, in the current form's (`v2:`) unless a test says not.
    fn spec(digest: &str, parts: &str) -> ContainerSpec {
        let mut spec = crate::spec::tests_support::empty();
        spec.labels = vec![
            (labels::DIGEST.into(), format!("v2:{digest}")),
            (labels::PARTS.into(), parts.into()),
        ];
        spec
    }

    fn existing(running: bool, digest: Option<&str>, parts: Option<&str>) -> Existing {
        Existing {
            owner: if digest.is_some() {
                Owner::Own
            } else {
                Owner::Foreign
            },
            env: None,
            running,
            digest: digest.map(|d| format!("v2:{d}")),
            parts: parts.map(Into::into),
            image_id: Some("sha256:1111".into()),
            secrets: None,
        }
    }

    /// A container an earlier maestro labelled (the first canonical form) is compared in
    /// that form: the same definition is up to date, not recreated for the new form; a
    /// changed one names its changed parts.
    #[test]
    fn a_container_labelled_in_the_first_form_compares_in_it() {
        let mut s = spec("new-form", "");
        s.image = "nginx:1".into();
        s.env = vec!["A=1".into(), "WEB_INSTANCES=web-1".into()];
        s.own_env = 1;
        let mut e = existing(true, None, None);
        e.owner = Owner::Own;
        let (digest, parts) = crate::spec::legacy_labels(&s);
        (e.digest, e.parts) = (Some(digest), Some(parts));
        assert!(crate::spec::is_legacy(e.digest.as_deref().unwrap()));
        assert_eq!(
            start(&s, Some(&e), Some("sha256:1111"), false),
            step(Action::Leave, "running, up to date")
        );
        let mut changed = s.clone();
        changed.env[1] = "WEB_INSTANCES=web-1,web-2".into();
        assert_eq!(
            start(&changed, Some(&e), Some("sha256:1111"), false).action,
            Action::Outdated
        );
        assert!(
            start(&changed, Some(&e), Some("sha256:1111"), false)
                .reason
                .contains("env changed"),
        );
    }

    /// Secrets are compared by their salted hashes: a rotated one is a change, named (its
    /// value is not known here, its hash is not shown).
    #[test]
    fn a_rotated_secret_is_a_change_named_by_its_variable() {
        let mut s = spec("d1", "image=1,env=2");
        s.labels.push((
            labels::SECRETS.into(),
            "salt=ab;DB_PASSWORD=h2;OTHER=h1".into(),
        ));
        let mut e = existing(true, Some("d1"), Some("image=1,env=2"));
        let cases = [
            (
                Some("salt=ab;DB_PASSWORD=h2;OTHER=h1"),
                Action::Leave,
                "running, up to date",
            ),
            (
                Some("salt=ab;DB_PASSWORD=h1;OTHER=h1"),
                Action::Restart,
                "env changed (DB_PASSWORD)",
            ),
            // Another salt (or none): every secret is compared anew.
            (
                Some("salt=cd;DB_PASSWORD=h2;OTHER=h1"),
                Action::Restart,
                "env changed (DB_PASSWORD, OTHER)",
            ),
            (None, Action::Restart, "env changed (DB_PASSWORD, OTHER)"),
        ];
        for (label, action, reason) in cases {
            e.secrets = label.map(Into::into);
            let step = restart(&s, Some(&e), None, true);
            assert_eq!(
                (step.action, step.reason.as_str()),
                (action, reason),
                "{label:?}"
            );
        }
        // The spec of an instance without secrets compares nothing.
        let plain = spec("d1", "image=1,env=2");
        e.secrets = Some("salt=ab;DB_PASSWORD=h1".into());
        assert_eq!(restart(&plain, Some(&e), None, true).action, Action::Leave);
    }

    #[test]
    fn a_changed_environment_names_its_variables_not_their_values() {
        let mut s = spec("d1", "image=1,env=2");
        s.env = (1..=8)
            .map(|i| format!("V{i}=new"))
            .chain(["WEB_INSTANCES=web-1,web-2,web-3".into(), "SAME=x".into()])
            .collect();
        let mut e = existing(true, Some("d0"), Some("image=1,env=3"));
        let cases: Vec<(Vec<&str>, &str)> = vec![
            // A new peer: one variable changed, two added; the image's PATH is no concern.
            (
                vec![
                    "PATH=/bin",
                    "SAME=x",
                    "WEB_INSTANCES=web-1,web-2",
                    "V1=new",
                    "V2=new",
                    "V3=new",
                    "V4=new",
                    "V5=new",
                    "V6=new",
                    "MAESTRO_READINESS_TOKEN=old",
                ],
                "env changed (V7, V8, WEB_INSTANCES)",
            ),
            // Many: the first six by name, then how many more.
            (
                vec!["SAME=x"],
                "env changed (V1, V2, V3, V4, V5, V6 and 3 more)",
            ),
            // The parts differ but no variable the file sets does (one was removed).
            (
                vec![
                    "SAME=x",
                    "WEB_INSTANCES=web-1,web-2,web-3",
                    "V1=new",
                    "V2=new",
                    "V3=new",
                    "V4=new",
                    "V5=new",
                    "V6=new",
                    "V7=new",
                    "V8=new",
                    "GONE=1",
                ],
                "env changed",
            ),
        ];
        for (old, reason) in cases {
            e.env = Some(old.into_iter().map(String::from).collect());
            let step = restart(&s, Some(&e), None, true);
            assert_eq!(step.reason, reason);
            assert!(
                !step.reason.contains("new"),
                "a value shows: {}",
                step.reason
            );
        }
    }

    #[test]
    fn start_and_restart_decisions() {
        let s = spec("d1", "image=1,env=2");
        let same = existing(true, Some("d1"), Some("image=1,env=2"));
        let env_changed = existing(true, Some("d0"), Some("image=1,env=3"));
        let stopped = existing(false, Some("d1"), Some("image=1,env=2"));
        let foreign = existing(true, None, None);
        let foreign_stopped = existing(false, None, None);
        let cases: [(Option<&Existing>, bool, Action, &str); 7] = [
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
            // MaestroNG's containers (found by name): left running, replaced stopped.
            (
                Some(&foreign),
                false,
                Action::Leave,
                "running, not created by maestro: start leaves it; restart or deploy replaces it \
                 with a container maestro labels",
            ),
            (
                Some(&foreign_stopped),
                false,
                Action::Recreate,
                "stopped, and not created by maestro (no definition digest)",
            ),
        ];
        for (e, reuse, action, reason) in cases {
            assert_eq!(
                start(&s, e, Some("sha256:1111"), reuse),
                Step {
                    action,
                    reason: reason.into()
                },
                "{e:?}"
            );
        }
        assert_eq!(restart(&s, Some(&same), None, true).action, Action::Leave);
        assert_eq!(
            restart(&s, Some(&same), None, false).action,
            Action::Restart
        );
        assert_eq!(
            restart(&s, Some(&env_changed), None, true),
            Step {
                action: Action::Restart,
                reason: "env changed".into()
            }
        );
        assert_eq!(restart(&s, None, None, true).action, Action::Create);
        // restart replaces a foreign container, changed or not (it cannot be compared).
        assert_eq!(
            restart(&s, Some(&foreign), None, true),
            Step {
                action: Action::Restart,
                reason: "not created by maestro (no definition digest)".into()
            }
        );
        assert_eq!(
            deploy(&s, Some(&foreign), None, false, None, false).action,
            Action::Replace
        );
    }

    #[test]
    fn whose_a_container_is() {
        let claimed = |environment, ship, role, instance| Claimed {
            environment,
            ship,
            role,
            instance,
        };
        let cases = [
            (claimed(None, None, None, None), Owner::Foreign),
            (
                claimed(Some("shop"), Some("a"), Some("instance"), Some("web-1")),
                Owner::Own,
            ),
            // An older maestro's container: no ship or role label.
            (claimed(Some("shop"), None, None, None), Owner::Own),
            (
                claimed(Some("blog"), Some("a"), Some("instance"), Some("web-1")),
                Owner::Conflict("belongs to environment blog".into()),
            ),
            (
                claimed(Some("shop"), Some("b"), Some("instance"), Some("web-1")),
                Owner::Conflict("belongs to ship b".into()),
            ),
            (
                claimed(Some("shop"), Some("a"), Some("lock"), None),
                Owner::Conflict("is a maestro lock".into()),
            ),
            (
                claimed(Some("shop"), Some("a"), Some("instance"), Some("web-2")),
                Owner::Conflict("was created for instance web-2".into()),
            ),
        ];
        for (claimed, owner) in cases {
            assert_eq!(
                super::owner(claimed, "shop", "a", "web-1"),
                owner,
                "{claimed:?}"
            );
        }
    }

    #[test]
    fn a_conflict_is_never_touched() {
        let mut s = spec("d1", "image=1,env=2");
        s.name = "web-1".into();
        let mut other = existing(false, Some("d9"), Some("image=9"));
        other.owner = Owner::Conflict("belongs to environment blog".into());
        let reason = "the container named web-1 belongs to environment blog: maestro leaves \
                      it alone; remove or rename it";
        let conflict = Step {
            action: Action::Conflict,
            reason: reason.into(),
        };
        assert_eq!(start(&s, Some(&other), None, false), conflict);
        assert_eq!(start(&s, Some(&other), None, true), conflict);
        assert_eq!(restart(&s, Some(&other), None, false), conflict);
        assert_eq!(deploy(&s, Some(&other), None, false, None, true), conflict);
        // Its previous generation's name taken by another environment: nothing either.
        let step = deploy(&s, None, Some(&other), false, None, false);
        assert_eq!(step.action, Action::Conflict);
        assert!(
            step.reason
                .starts_with("the container named web-1.previous belongs to environment blog"),
            "{}",
            step.reason
        );
    }

    #[test]
    fn a_retagged_image_makes_a_container_outdated() {
        let s = spec("d1", "image=1,env=2");
        let same = existing(true, Some("d1"), Some("image=1,env=2"));
        let now = "sha256:abcdef0123456789abcdef";
        assert_eq!(
            restart(&s, Some(&same), Some(now), true),
            Step {
                action: Action::Restart,
                reason: format!(
                    "image changed: {} now sha256:abcdef012345… (was sha256:1111)",
                    s.image
                )
            }
        );
        assert_eq!(
            start(&s, Some(&same), Some(now), false).action,
            Action::Outdated
        );
        // Unknown on either side: the definition alone decides.
        assert_eq!(restart(&s, Some(&same), None, true).action, Action::Leave);
        let mut unknown = same.clone();
        unknown.image_id = None;
        assert_eq!(
            restart(&s, Some(&unknown), Some(now), true).action,
            Action::Leave
        );
        let env_changed = existing(true, Some("d0"), Some("image=1,env=3"));
        assert_eq!(
            restart(&s, Some(&env_changed), Some(now), true).reason,
            format!(
                "env changed; image changed: {} now sha256:abcdef012345… (was sha256:1111)",
                s.image
            )
        );
        assert_eq!(short_image_id("0123456789abcdef"), "0123456789ab…");
    }

    #[test]
    fn deploy_decisions() {
        let s = spec("d1", "image=1,env=2");
        let same = existing(true, Some("d1"), Some("image=1,env=2"));
        let old = existing(true, Some("d0"), Some("image=1,env=3"));
        let old_stopped = existing(false, Some("d0"), Some("image=1,env=3"));
        let stopped = existing(false, Some("d1"), Some("image=1,env=2"));
        let now = Some("sha256:1111");
        type Case<'a> = (
            Option<&'a Existing>,
            Option<&'a Existing>,
            bool,
            Action,
            &'a str,
        );
        let cases: [Case; 7] = [
            (None, None, false, Action::Create, "no container"),
            (
                None,
                Some(&old),
                false,
                Action::Create,
                "no container (the previous generation is kept, and restored if this one fails)",
            ),
            (
                Some(&same),
                Some(&old),
                false,
                Action::Leave,
                "running, up to date",
            ),
            (Some(&stopped), None, false, Action::Recreate, "stopped"),
            (Some(&old), None, false, Action::Replace, "env changed"),
            (
                Some(&old_stopped),
                None,
                false,
                Action::Replace,
                "stopped, and env changed",
            ),
            // Rolled back from what the file names: held, unless asked.
            (
                Some(&old),
                Some(&same),
                true,
                Action::Replace,
                "env changed",
            ),
        ];
        for (e, p, roll_out, action, reason) in cases {
            assert_eq!(
                deploy(&s, e, p, false, now, roll_out),
                Step {
                    action,
                    reason: reason.into()
                },
                "{e:?} {p:?}"
            );
        }
        let held = deploy(&s, Some(&old), Some(&same), false, now, false);
        assert_eq!(held.action, Action::Held);
        assert!(held.reason.starts_with("rolled back"), "{}", held.reason);
        // The kept generation runs another image than the tag names now: not a rollback
        // of what the file names, so the new image is rolled out.
        assert_eq!(
            deploy(
                &s,
                Some(&old),
                Some(&same),
                false,
                Some("sha256:2222"),
                false
            )
            .action,
            Action::Replace
        );
        // An interrupted deploy: what has the name now was never proven ready, even when
        // it matches the file, and it is not a rollback either.
        for current in [Some(&same), Some(&stopped), Some(&old)] {
            let step = deploy(&s, current, Some(&same), true, now, false);
            assert_eq!(step.action, Action::Replace, "{current:?}");
            assert!(step.reason.contains("unproven"), "{}", step.reason);
        }
        let step = deploy(&s, None, None, true, now, false);
        assert_eq!(step.action, Action::Create);
        assert!(step.reason.contains(".retiring"), "{}", step.reason);
    }

    #[test]
    fn unavailable_parses_counts_and_percentages() {
        assert_eq!("2".parse(), Ok(Unavailable::Count(2)));
        assert_eq!("25%".parse(), Ok(Unavailable::Percent(25)));
        for bad in ["0", "0%", "101%", "-1", "x", "2.5", ""] {
            assert!(bad.parse::<Unavailable>().is_err(), "{bad}");
        }
        assert_eq!(Unavailable::Percent(25).of(6), 1);
        assert_eq!(Unavailable::Percent(50).of(6), 3);
        assert_eq!(Unavailable::Percent(10).of(3), 1);
        assert_eq!(Unavailable::Count(2).of(1), 2);
    }

    #[test]
    fn rollout_batches_each_service_after_its_dependencies() {
        // Rows: web-1..web-5 (service 0, all replaced but web-3), db-1 (service 1,
        // replaced); web rows wait for db-1 already.
        let services = [0, 0, 0, 0, 0, 1];
        let replaced = [true, true, false, true, true, true];
        let base = vec![vec![5], vec![5], vec![5], vec![5], vec![5], vec![]];
        let (waits, batches) = rollout(&services, &replaced, &[5, 1], Unavailable::Count(2), base);
        assert_eq!(batches, [Some(1), Some(1), None, Some(2), Some(2), Some(1)]);
        assert_eq!(waits[0], [5]);
        assert_eq!(waits[2], [5]);
        assert_eq!(waits[3], [5, 0, 1]);
        assert_eq!(waits[4], [5, 0, 1]);
        assert!(waits[5].is_empty());
    }
}
