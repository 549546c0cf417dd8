//! A lock per environment and ship, so that two operators' plays that change containers
//! on the same ships do not interleave.
//!
//! The lock is a container, created and never started, named after the environment and
//! the ship (two ships may be one engine): the engine refuses a second container of the
//! same name, which makes creating it an atomic test-and-set. Its labels say who holds
//! it; since labels cannot change, the holder proves it is alive by writing the time into
//! the container's `/heartbeat` file every [`HEARTBEAT_EVERY`]. A lock whose holder is
//! provably gone (same host, process ended) or silent for [`STALE_AFTER_SECONDS`] is
//! taken over: removed by its container id (never by name, or two takers would remove
//! each other's fresh lock), then created anew.
//!
//! The rules are pure functions over plain data; the flows run over the narrow
//! [`LockStore`] (Docker's in `engine/lock.rs`, an in-memory one in the tests).

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use maestro_core::model::{Environment, ShipId};

use crate::engine::EngineError;

/// The image every lock container is created from: an empty image maestro imports itself
/// (no registry needed).
pub const IMAGE: &str = "maestro-lock:1";
/// The lock container's command; it is never run.
pub const COMMAND: &str = "maestro-lock";
/// How often the holder writes its heartbeat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// A lock whose last sign of life is older than this is stale and may be taken over.
pub const STALE_AFTER_SECONDS: i64 = 60;
/// How many times taking one ship's lock is tried when the lock keeps vanishing or being
/// taken over between our steps.
const ROUNDS: usize = 4;

/// The lock container's labels. They are fixed when the lock is taken.
pub mod labels {
    pub use maestro_core::spec::labels::ENVIRONMENT;
    /// The ship's name.
    pub const SHIP: &str = "io.maestro.ship";
    /// `lock`: only a container with this role is ever taken over or released.
    pub const ROLE: &str = "io.maestro.role";
    pub const ROLE_LOCK: &str = "lock";
    pub const USER: &str = "io.maestro.lock.user";
    pub const HOST: &str = "io.maestro.lock.host";
    pub const PID: &str = "io.maestro.lock.pid";
    /// The holder's process start time (field 22 of `/proc/<pid>/stat`), so that a reused
    /// pid is not mistaken for the holder.
    pub const PID_START: &str = "io.maestro.lock.pid-start";
    /// The holder's command line (never its environment, which may carry secrets).
    pub const COMMAND: &str = "io.maestro.lock.command";
    /// When the lock was taken, RFC 3339 UTC.
    pub const SINCE: &str = "io.maestro.lock.since";
}

/// The lock container's name for an environment and a ship: `maestro-lock.<env>.<ship>`
/// when both are made of `[a-zA-Z0-9_-]` and the name is not long; otherwise the parts
/// with every other character (dots included) replaced by `_`, shortened, and a hash of
/// the exact names after a third dot. A plain name has two dots and a hashed one three,
/// so the two forms never meet, and distinct names give distinct plain names.
pub fn container_name(environment: &str, ship: &str) -> String {
    const LONG: usize = 128;
    const PART: usize = 48;
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    let name = format!("maestro-lock.{environment}.{ship}");
    if plain(environment) && plain(ship) && name.len() <= LONG {
        return name;
    }
    let sanitize = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(PART)
            .collect()
    };
    // FNV-1a, 64 bits: stable across versions and platforms, which std's hasher is not.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in environment.bytes().chain([0]).chain(ship.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!(
        "maestro-lock.{}.{}.{hash:016x}",
        sanitize(environment),
        sanitize(ship)
    )
}

/// Who holds a lock: the facts fixed when it was taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub user: String,
    pub host: String,
    pub pid: Option<u32>,
    pub pid_start: Option<u64>,
    pub command: String,
    /// Unix seconds.
    pub since: Option<i64>,
}

impl Holder {
    /// The lock container's labels.
    pub fn labels(&self, environment: &str, ship: &str) -> Vec<(String, String)> {
        let mut labels = vec![
            (labels::ENVIRONMENT, environment.to_owned()),
            (labels::SHIP, ship.to_owned()),
            (labels::ROLE, labels::ROLE_LOCK.to_owned()),
            (labels::USER, self.user.clone()),
            (labels::HOST, self.host.clone()),
            (labels::COMMAND, self.command.clone()),
        ];
        if let Some(pid) = self.pid {
            labels.push((labels::PID, pid.to_string()));
        }
        if let Some(start) = self.pid_start {
            labels.push((labels::PID_START, start.to_string()));
        }
        if let Some(since) = self.since {
            labels.push((labels::SINCE, rfc3339(since)));
        }
        labels.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// The holder a container's labels describe; `None` when the container is not a lock
    /// (no `io.maestro.role=lock`). Missing or unreadable facts stay unknown.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Option<Holder> {
        if labels.get(labels::ROLE).map(String::as_str) != Some(labels::ROLE_LOCK) {
            return None;
        }
        let text = |key: &str| labels.get(key).cloned().unwrap_or_else(|| "?".to_owned());
        Some(Holder {
            user: text(labels::USER),
            host: text(labels::HOST),
            pid: labels.get(labels::PID).and_then(|p| p.parse().ok()),
            pid_start: labels.get(labels::PID_START).and_then(|p| p.parse().ok()),
            command: text(labels::COMMAND),
            since: labels.get(labels::SINCE).and_then(|s| parse_rfc3339(s)),
        })
    }
}

impl fmt::Display for Holder {
    /// `alice@build-1 (pid 4242, "maestro start -a") since 2024-05-01T12:00:00Z`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{} (", self.user, self.host)?;
        if let Some(pid) = self.pid {
            write!(f, "pid {pid}, ")?;
        }
        write!(f, "{:?})", self.command)?;
        if let Some(since) = self.since {
            write!(f, " since {}", rfc3339(since))?;
        }
        Ok(())
    }
}

/// This process, as a lock holder, and how to look at the processes of this host.
#[derive(Clone, Debug)]
pub struct Local {
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub pid_start: Option<u64>,
    /// A process's start time on this host; `None` when it is not running.
    pub process_start: fn(u32) -> Option<u64>,
}

impl Local {
    /// This process.
    pub fn current() -> Local {
        Local {
            user: current_user(),
            host: current_host(),
            pid: std::process::id(),
            pid_start: std::fs::read_to_string("/proc/self/stat")
                .ok()
                .and_then(|s| start_time(&s)),
            process_start: |pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|s| start_time(&s))
            },
        }
    }

    /// This process as the holder of a lock taken now, running `command`.
    pub fn holder(&self, command: &str, now: i64) -> Holder {
        Holder {
            user: self.user.clone(),
            host: self.host.clone(),
            pid: Some(self.pid),
            pid_start: self.pid_start,
            command: command.to_owned(),
            since: Some(now),
        }
    }
}

/// The command line of this process, for the lock's labels.
pub fn this_command() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// The process start time, field 22 of `/proc/<pid>/stat`. The second field (the
/// command's name, in parentheses) may hold spaces and parentheses, so fields are
/// counted after its last `)`.
pub fn start_time(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    // Fields from the third on; the 22nd is the 20th of them.
    after.split_whitespace().nth(19)?.parse().ok()
}

fn current_user() -> String {
    let named = ["USER", "LOGNAME"]
        .into_iter()
        .find_map(|var| std::env::var(var).ok().filter(|u| !u.is_empty()));
    if let Some(user) = named {
        return user;
    }
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        });
    let Some(uid) = uid else {
        return "?".to_owned();
    };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| user_of(&p, &uid))
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// The name of the user with this uid in the text of `/etc/passwd`.
fn user_of(passwd: &str, uid: &str) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == uid).then(|| name.to_owned())
    })
}

fn current_host() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "?".to_owned())
}

/// Whether a lock's holder is still there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Alive as far as can be told; `last_sign` is the age in seconds of its last
    /// heartbeat (or of its taking), when known.
    Alive { last_sign: Option<i64> },
    /// The holder ran on this host and its process is gone.
    ProcessEnded,
    /// No heartbeat (nor taking) for this many seconds, more than [`STALE_AFTER_SECONDS`].
    NoHeartbeat { seconds: i64 },
}

impl Liveness {
    pub fn is_alive(self) -> bool {
        matches!(self, Liveness::Alive { .. })
    }
}

impl fmt::Display for Liveness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Liveness::Alive {
                last_sign: Some(age),
            } => write!(f, "alive, last heartbeat {} ago", span(*age)),
            Liveness::Alive { last_sign: None } => {
                write!(f, "alive as far as can be told (no heartbeat, no time)")
            }
            Liveness::ProcessEnded => write!(f, "process ended"),
            Liveness::NoHeartbeat { seconds } => write!(
                f,
                "no heartbeat for {} (stale after {STALE_AFTER_SECONDS} s)",
                span(*seconds)
            ),
        }
    }
}

/// A duration for people: `45 s`, `3 min`, `2 h`, `4 days`.
pub fn span(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        7200..172_800 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

/// Whether the holder of a lock is still there, at `now`, from `local`'s host. The
/// process test only applies on the holder's own host; a heartbeat (or, before the first
/// one, the taking) older than [`STALE_AFTER_SECONDS`] means gone wherever it ran. A lock
/// with neither is taken as alive: nothing proves otherwise.
pub fn judge(holder: &Holder, heartbeat: Option<i64>, now: i64, local: &Local) -> Liveness {
    let pid = holder.pid.filter(|_| holder.host == local.host);
    if let Some(pid) = pid {
        match (local.process_start)(pid) {
            None => return Liveness::ProcessEnded,
            Some(start) if holder.pid_start.is_some_and(|s| s != start) => {
                return Liveness::ProcessEnded;
            }
            Some(_) => {}
        }
    }
    let last = heartbeat.max(holder.since);
    match last {
        Some(t) if now - t > STALE_AFTER_SECONDS => Liveness::NoHeartbeat { seconds: now - t },
        Some(t) => Liveness::Alive {
            last_sign: Some(now - t),
        },
        None => Liveness::Alive { last_sign: None },
    }
}

/// Whether `maestro lock release` (without `--force`) may remove a lock: a stale one, or
/// one of ours (same user and host) whose process is gone.
pub fn releasable(holder: &Holder, liveness: Liveness, local: &Local) -> bool {
    match liveness {
        Liveness::NoHeartbeat { .. } => true,
        Liveness::ProcessEnded => holder.user == local.user && holder.host == local.host,
        Liveness::Alive { .. } => false,
    }
}

/// The answer to creating a lock container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    /// Created, with this container id.
    Made(String),
    /// A container of that name exists.
    Conflict,
    /// The ship lacks the lock image ([`LockStore::import_lock_image`] imports it).
    NoImage,
}

/// A container found under a lock's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    /// The time in its `/heartbeat`, if it has one.
    pub heartbeat: Option<i64>,
}

/// Where locks live: one ship's engine.
pub trait LockStore: Send + Sync + 'static {
    /// Connects, if not connected yet (an engine's first request is a round trip more, a
    /// tunnel's far more): done for the other ships while the first one's lock is asked
    /// for. Errors are left to the requests that follow.
    fn connect(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
    /// Imports [`IMAGE`] (asked for only when a create said it is missing; importing it
    /// again only tags it again).
    fn import_lock_image(&self) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Creates the lock container `name` with these labels, unless one exists.
    fn create_lock(
        &self,
        name: &str,
        labels: &[(String, String)],
    ) -> impl Future<Output = Result<Created, EngineError>> + Send;
    /// The container named `name`, if any.
    fn find_lock(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Found>, EngineError>> + Send;
    /// Writes the heartbeat (unix seconds) into the lock container `id`.
    fn beat_lock(&self, id: &str, at: i64) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Removes the lock container `id`; one already gone is not an error.
    fn remove_lock(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
}

/// What happened along the way, for the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A stale lock was removed to take it.
    TakingOver {
        ship: String,
        holder: Holder,
        why: Liveness,
    },
    /// The ship cannot be reached: it is not locked, and the play fails its instances.
    Unreachable { ship: String, error: EngineError },
    /// Writing the heartbeat failed (reported once until it works again).
    BeatFailed { ship: String, error: EngineError },
    /// Removing our lock failed; it will go stale.
    ReleaseFailed { ship: String, error: EngineError },
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::TakingOver { ship, holder, why } => {
                write!(f, "taking over the lock of {holder} on ship {ship}: {why}")
            }
            Notice::Unreachable { ship, error } => {
                write!(f, "ship {ship} is not locked: {error}")
            }
            Notice::BeatFailed { ship, error } => write!(
                f,
                "cannot write the heartbeat of the lock on ship {ship}: {error}; after \
                 {STALE_AFTER_SECONDS} s without one, another play may take the lock over"
            ),
            Notice::ReleaseFailed { ship, error } => write!(
                f,
                "cannot remove the lock on ship {ship}: {error}; it goes stale in \
                 {STALE_AFTER_SECONDS} s, or remove it with `maestro lock release --force -S {ship}`"
            ),
        }
    }
}

/// Where notices go.
pub type Report = Arc<dyn Fn(Notice) + Send + Sync>;

/// Why the locks were not taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Another play holds the ship's lock.
    Held {
        ship: String,
        holder: Box<Holder>,
        liveness: Liveness,
    },
    /// A container that is not a lock has the lock's name: never removed.
    NotALock { ship: String, name: String },
    /// The ship's engine refused an operation.
    Failed { ship: String, error: EngineError },
    /// The lock kept changing hands while we tried.
    Contended { ship: String },
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Held {
                ship,
                holder,
                liveness,
            } => write!(
                f,
                "ship {ship} is locked by {holder}, {liveness}\n  = help: wait for that play \
                 to end; a lock without a heartbeat for {STALE_AFTER_SECONDS} s is taken over, \
                 and `maestro lock status` shows every lock"
            ),
            Refused::NotALock { ship, name } => write!(
                f,
                "ship {ship} has a container named {name} that is not a maestro lock (no \
                 label {}={}); maestro never removes it\n  = help: rename or remove that \
                 container",
                labels::ROLE,
                labels::ROLE_LOCK
            ),
            Refused::Failed { ship, error } => {
                write!(f, "cannot take the lock on ship {ship}: {error}")
            }
            Refused::Contended { ship } => write!(
                f,
                "cannot take the lock on ship {ship}: it changed hands {ROUNDS} times while \
                 trying; try again"
            ),
        }
    }
}

/// The locks a play holds, with their heartbeat. [`Held::release`] removes them; dropped
/// without it, the heartbeat stops and the locks go stale.
pub struct Held<E: LockStore> {
    engines: Arc<Vec<Arc<E>>>,
    /// Ship index, ship name, lock container id; in the order taken.
    locks: Vec<(usize, String, String)>,
    beats: tokio::task::JoinSet<()>,
}

impl<E: LockStore> Held<E> {
    /// The names of the ships locked (what the tests look at).
    #[cfg(test)]
    pub fn ships(&self) -> impl Iterator<Item = &str> {
        self.locks.iter().map(|(_, ship, _)| ship.as_str())
    }

    /// Stops the heartbeat and removes the locks (by id), the first ship's last. A failure is
    /// reported, never fatal: the lock goes stale.
    pub async fn release(mut self, report: &Report) {
        self.beats.abort_all();
        while self.beats.join_next().await.is_some() {}
        let locks = std::mem::take(&mut self.locks);
        remove_all(&self.engines, locks, report).await;
    }
}

async fn remove_all<E: LockStore>(
    engines: &[Arc<E>],
    mut locks: Vec<(usize, String, String)>,
    report: &Report,
) {
    use futures_util::StreamExt;
    // The first lock taken (the first ship by name, where plays meet) goes last: a play
    // that arrives meanwhile is refused there, holding nothing, rather than taking it
    // and then finding the other ships still held. The others all at once: one after
    // the other is a round trip per ship, seconds with a hundred ships.
    let first = (!locks.is_empty()).then(|| locks.remove(0));
    let remove = |(ship, name, id): (usize, String, String)| async move {
        if let Err(error) = engines[ship].remove_lock(&id).await {
            report(Notice::ReleaseFailed { ship: name, error });
        }
    };
    futures_util::stream::iter(locks)
        .for_each_concurrent(LOCKS_AT_ONCE, remove)
        .await;
    if let Some(first) = first {
        remove(first).await;
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// How many ships' locks are asked for (beaten, released) at once, after the first:
/// taking one is a round trip or two (the version, once per ship, then the lock), so
/// with a thousand ships each wave of this many adds those to the play's start.
const LOCKS_AT_ONCE: usize = 256;

/// Takes the lock of every ship in `ships` for `env`, all or nothing: the first ship by
/// name alone, then the others at once; when one is refused, the ones taken are released
/// and the refusal is returned. A ship that cannot be reached is skipped (reported): its
/// instances fail in the play anyway.
pub async fn acquire<E: LockStore>(
    engines: &Arc<Vec<Arc<E>>>,
    env: &Environment,
    ships: &[ShipId],
    command: &str,
    local: &Local,
    report: &Report,
) -> Result<Held<E>, Refused> {
    use futures_util::StreamExt;
    let mut order: Vec<ShipId> = ships.to_vec();
    order.sort_by(|a, b| env.ship(*a).name.cmp(&env.ship(*b).name).then(a.cmp(b)));
    order.dedup();
    let take_one = |ship: ShipId| async move {
        let name = env.ship(ship).name.clone();
        let engine = &engines[ship.0];
        let result = take(engine.as_ref(), &env.name, &name, command, local, report).await;
        (ship, name, result)
    };
    let mut taken: Vec<(usize, String, String)> = Vec::new();
    let mut refusal = None;
    // The first ship (by name) alone: two plays that share it meet there, one after the
    // other, and the second is refused before it holds anything. Then the others all at
    // once (a round trip per ship in turn would be minutes with a thousand ships), still
    // all or nothing.
    let (first, rest) = order
        .split_first()
        .map_or((None, &[][..]), |(f, r)| (Some(*f), r));
    let firsts = futures_util::stream::iter(first).then(take_one);
    let others = futures_util::stream::iter(rest.iter().copied())
        .map(take_one)
        .buffered(LOCKS_AT_ONCE);
    let mut results = std::pin::pin!(firsts.chain(others));
    let collect = async {
        while let Some((ship, name, result)) = results.next().await {
            match result {
                Ok(Some(id)) => taken.push((ship.0, name, id)),
                Ok(None) => {}
                Err(refused) => {
                    refusal.get_or_insert(refused);
                    // Nothing more is started after the first ship refuses.
                    if taken.is_empty() && Some(ship) == first {
                        break;
                    }
                }
            }
        }
    };
    // Meanwhile the other ships are connected to, so that their turn is the lock's
    // requests alone; given up on once the locks are decided (an unreachable ship is
    // not waited for twice).
    let connect = futures_util::stream::iter(rest.iter())
        .for_each_concurrent(LOCKS_AT_ONCE, |ship| engines[ship.0].connect());
    match futures_util::future::select(std::pin::pin!(collect), std::pin::pin!(connect)).await {
        futures_util::future::Either::Left(((), _connecting)) => {}
        futures_util::future::Either::Right(((), collect)) => collect.await,
    }
    if let Some(refused) = refusal {
        remove_all(engines, taken, report).await;
        return Err(refused);
    }
    let mut beats = tokio::task::JoinSet::new();
    if !taken.is_empty() {
        beats.spawn(heartbeat(engines.clone(), taken.clone(), report.clone()));
    }
    Ok(Held {
        engines: engines.clone(),
        locks: taken,
        beats,
    })
}

/// Writes every lock's heartbeat every [`HEARTBEAT_EVERY`] until aborted.
async fn heartbeat<E: LockStore>(
    engines: Arc<Vec<Arc<E>>>,
    locks: Vec<(usize, String, String)>,
    report: Report,
) {
    use futures_util::StreamExt;
    let mut failing = vec![false; locks.len()];
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate, and taking wrote a heartbeat already.
    tick.tick().await;
    loop {
        tick.tick().await;
        // All ships at once (each request bounded by its ship's timeout): in turn, a
        // round would outlast the staleness limit with a few hundred slow ships.
        let at = now();
        let mut beats = futures_util::stream::iter(0..locks.len())
            .map(|n| {
                let (engine, id) = (engines[locks[n].0].clone(), locks[n].2.clone());
                async move { (n, engine.beat_lock(&id, at).await) }
            })
            .buffer_unordered(LOCKS_AT_ONCE);
        while let Some((n, result)) = beats.next().await {
            match result {
                Ok(()) => failing[n] = false,
                Err(error) if !failing[n] => {
                    failing[n] = true;
                    report(Notice::BeatFailed {
                        ship: locks[n].1.clone(),
                        error,
                    });
                }
                Err(_) => {}
            }
        }
    }
}

/// Takes one ship's lock: its container id, or `None` when the ship is unreachable.
async fn take<E: LockStore>(
    engine: &E,
    environment: &str,
    ship: &str,
    command: &str,
    local: &Local,
    report: &Report,
) -> Result<Option<String>, Refused> {
    let name = container_name(environment, ship);
    let fail = |error: EngineError| match error {
        EngineError::Unreachable { .. } => {
            report(Notice::Unreachable {
                ship: ship.to_owned(),
                error,
            });
            Ok(None)
        }
        // A ship that answered once and then not in time: whether the lock was taken is
        // unknown (a lock the engine makes late goes stale without a heartbeat), and a
        // play never goes on unlocked on a ship it may reach.
        EngineError::Daemon(_) | EngineError::NameInUse(_) | EngineError::NoAnswer { .. } => {
            Err(Refused::Failed {
                ship: ship.to_owned(),
                error,
            })
        }
    };
    for _ in 0..ROUNDS {
        let at = now();
        let labels = local.holder(command, at).labels(environment, ship);
        match create_lock(engine, &name, &labels).await {
            // No heartbeat is written now: the `since` label is the first sign of life,
            // and the heartbeat task writes within 10 s (one request less per ship).
            Ok(Created::Made(id)) => return Ok(Some(id)),
            Ok(Created::Conflict) => {}
            Ok(Created::NoImage) => {
                return fail(EngineError::Daemon(format!(
                    "the lock image {IMAGE} is missing right after its import"
                )));
            }
            Err(e) => return fail(e),
        }
        let found = match engine.find_lock(&name).await {
            Ok(Some(found)) => found,
            // Released between our two steps: try again.
            Ok(None) => continue,
            Err(e) => return fail(e),
        };
        let Some(holder) = Holder::from_labels(&found.labels) else {
            return Err(Refused::NotALock {
                ship: ship.to_owned(),
                name,
            });
        };
        let liveness = judge(&holder, found.heartbeat, now(), local);
        if liveness.is_alive() {
            return Err(Refused::Held {
                ship: ship.to_owned(),
                holder: Box::new(holder),
                liveness,
            });
        }
        report(Notice::TakingOver {
            ship: ship.to_owned(),
            holder,
            why: liveness,
        });
        // By id: if another taker was faster, its fresh lock has another id and stays.
        if let Err(e) = engine.remove_lock(&found.id).await {
            return fail(e);
        }
    }
    Err(Refused::Contended {
        ship: ship.to_owned(),
    })
}

/// Creates a lock container, importing the lock image first when the ship says it lacks
/// it: told by the create's answer rather than asked before each create, one round trip
/// less per ship and play.
async fn create_lock<E: LockStore>(
    engine: &E,
    name: &str,
    labels: &[(String, String)],
) -> Result<Created, EngineError> {
    match engine.create_lock(name, labels).await? {
        Created::NoImage => {
            engine.import_lock_image().await?;
            engine.create_lock(name, labels).await
        }
        created => Ok(created),
    }
}

/// What a ship's lock looks like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockState {
    Free,
    Held {
        id: String,
        holder: Holder,
        liveness: Liveness,
    },
    /// A container that is not a lock has the lock's name.
    NotALock {
        id: String,
    },
}

/// One ship's lock, as `maestro lock status` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShipLock {
    pub ship: String,
    /// The lock container's name.
    pub name: String,
    pub state: Result<LockState, EngineError>,
}

/// The locks of `ships` (all asked at once), in ship-name order.
pub async fn status<E: LockStore>(
    engines: &[Arc<E>],
    env: &Environment,
    ships: &[ShipId],
    local: &Local,
) -> Vec<ShipLock> {
    let mut order: Vec<ShipId> = ships.to_vec();
    order.sort_by(|a, b| env.ship(*a).name.cmp(&env.ship(*b).name).then(a.cmp(b)));
    order.dedup();
    futures_util::future::join_all(order.into_iter().map(|ship| async move {
        let ship_name = env.ship(ship).name.clone();
        let name = container_name(&env.name, &ship_name);
        let state = engines[ship.0]
            .find_lock(&name)
            .await
            .map(|found| state_of(found, local));
        ShipLock {
            ship: ship_name,
            name,
            state,
        }
    }))
    .await
}

fn state_of(found: Option<Found>, local: &Local) -> LockState {
    let Some(found) = found else {
        return LockState::Free;
    };
    match Holder::from_labels(&found.labels) {
        Some(holder) => LockState::Held {
            liveness: judge(&holder, found.heartbeat, now(), local),
            id: found.id,
            holder,
        },
        None => LockState::NotALock { id: found.id },
    }
}

/// What `maestro lock release` did to one ship's lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Released {
    /// There was no lock.
    Free,
    Removed {
        holder: Holder,
        liveness: Liveness,
    },
    /// Left in place: alive, or not ours, and no `--force`.
    Kept {
        holder: Holder,
        liveness: Liveness,
    },
    /// A container that is not a lock has the lock's name; never removed.
    NotALock,
    Failed(EngineError),
}

/// Removes the locks of `ships`: with `force` any lock, else only the [`releasable`]
/// ones. Each is removed by the id just found, so a lock taken anew meanwhile stays.
pub async fn release<E: LockStore>(
    engines: &[Arc<E>],
    env: &Environment,
    ships: &[ShipId],
    force: bool,
    local: &Local,
) -> Vec<(String, Released)> {
    let mut out = Vec::new();
    for lock in status(engines, env, ships, local).await {
        let ship = env
            .ships
            .iter()
            .position(|s| s.name == lock.ship)
            .unwrap_or_default();
        let released = match lock.state {
            Err(e) => Released::Failed(e),
            Ok(LockState::Free) => Released::Free,
            Ok(LockState::NotALock { .. }) => Released::NotALock,
            Ok(LockState::Held {
                id,
                holder,
                liveness,
            }) => {
                if force || releasable(&holder, liveness, local) {
                    match engines[ship].remove_lock(&id).await {
                        Ok(()) => Released::Removed { holder, liveness },
                        Err(e) => Released::Failed(e),
                    }
                } else {
                    Released::Kept { holder, liveness }
                }
            }
        };
        out.push((lock.ship, released));
    }
    out
}

/// Unix seconds as RFC 3339 UTC: `2024-05-01T12:00:00Z`.
pub fn rfc3339(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// RFC 3339 (`2024-05-01T12:00:00Z`, with optional fractions and a `±hh:mm` offset) as
/// unix seconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && matches!(rest.as_bytes()[0], b'+' | b'-') => {
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            if rest.as_bytes()[3] != b':' || oh > 23 || om > 59 {
                return None;
            }
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day since 1970-01-01.
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests;
