//! Plays: one command's run over a selection of instances. The scheduler starts each
//! instance's task the moment everything it waits for has succeeded (no polling), runs
//! independent branches concurrently (bounded by `-c`), skips only the dependents of a
//! failed instance, and stops launching on Ctrl-C. Tasks report through typed
//! [`Event`]s; `output::events` renders them.

pub mod ahead;
pub mod budget;
pub mod checks;
pub mod deploy;
pub mod health;
pub mod images;
pub mod orphans;
pub mod tasks;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use tokio::task::JoinSet;

use budget::{Budget, Priority};

use maestro_core::model::{Environment, InstanceId};

/// What happened to one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Reached the target state; the text says how ("started", "already running").
    Done(String),
    /// Reached the target state, with something the user should know ("outdated").
    Warning(String),
    /// Not acted on, by design ("running, not removed").
    Skipped(String),
    /// Not acted on because something it waits for failed, or the play was interrupted.
    NotRun(String),
    Failed(Failure),
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        matches!(
            self,
            Outcome::Done(_) | Outcome::Warning(_) | Outcome::Skipped(_)
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    /// The container's exit code, when it exited.
    pub exit_code: Option<i64>,
    /// Its last lines of output, when it exited.
    pub logs: Vec<String>,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            exit_code: None,
            logs: Vec::new(),
        }
    }
}

/// One row of a play: an instance and where it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub instance: String,
    pub service: String,
    pub ship: String,
}

/// Everything a play reports, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Began {
        play: &'static str,
        rows: Vec<Row>,
    },
    /// A step of an instance's task ("pulling image", "waiting for checks").
    Step {
        row: usize,
        message: String,
    },
    Finished {
        row: usize,
        outcome: Outcome,
        elapsed: Duration,
    },
    Ended {
        play: &'static str,
        elapsed: Duration,
        interrupted: bool,
    },
}

/// Where events go. Called from many tasks at once.
pub type Reporter = Arc<dyn Fn(Event) + Send + Sync>;

pub fn rows(env: &Environment, selection: &[InstanceId]) -> Vec<Row> {
    selection
        .iter()
        .map(|&i| {
            let instance = env.instance(i);
            Row {
                instance: instance.name.clone(),
                service: env.service(instance.service).name.clone(),
                ship: env.ship(instance.ship).name.clone(),
            }
        })
        .collect()
}

/// How long in-flight operations may go on after Ctrl-C before they are abandoned.
const DRAIN: Duration = Duration::from_secs(10);

/// What ends a play early, and how long what is in flight may go on afterwards.
pub struct Interrupt {
    pub signal: BoxFuture<'static, ()>,
    pub drain: Duration,
}

impl Interrupt {
    /// Ctrl-C, with [`DRAIN`]. (A signal handler that cannot be installed reads as Ctrl-C,
    /// as it always did: nothing would stop the play otherwise.)
    fn ctrl_c() -> Self {
        Interrupt {
            signal: Box::pin(async {
                let _ = tokio::signal::ctrl_c().await;
            }),
            drain: DRAIN,
        }
    }
}

/// Where each row runs, for the ships' limits (`max_operations`): ship `s` has
/// `places[s]` places, row `r` runs on ship `row_ship[r]` (`None`: no ship's limit).
#[derive(Clone, Debug, Default)]
pub struct ShipLimits {
    pub places: Vec<usize>,
    pub row_ship: Vec<Option<usize>>,
}

/// Work a play can do for a row before the rows it waits for have succeeded (creating
/// its container: see [`ahead`]).
pub trait Ahead: Send + Sync + 'static {
    /// Whether the row has work to do ahead of its turn.
    fn wants(&self, row: usize) -> bool;
    /// Does it, holding a place of [`budget::Priority::Ahead`]; `waiting_for` names the
    /// rows it waits for. Does nothing once the row's turn began or it was discarded.
    fn prepare(&self, row: usize, waiting_for: String) -> BoxFuture<'static, ()>;
    /// The row will not have its turn: undoes what was done ahead (waiting for work in
    /// flight to end); what became of it, in words, if anything was done.
    fn discard(&self, row: usize) -> BoxFuture<'static, Option<String>>;
    /// No more work ahead begins (Ctrl-C).
    fn close(&self);
}

/// Runs `task(row)` for every row once the rows it waits for (`waits[row]`, positions in
/// the same list) have succeeded, at most `concurrency` at once and at most as many on a
/// ship as `ships` allows. Returns each row's outcome and whether the play was
/// interrupted.
pub async fn schedule<F, Fut>(
    names: &[String],
    waits: &[Vec<usize>],
    concurrency: Option<usize>,
    ships: &ShipLimits,
    reporter: &Reporter,
    task: F,
) -> (Vec<Outcome>, bool)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    schedule_ahead(names, waits, concurrency, ships, reporter, None, task).await
}

/// [`schedule`], with work done ahead of the rows' turns: for each row that waits for
/// others and that `ahead` wants, [`Ahead::prepare`] runs from the start of the play
/// with the places the turns leave free; a row that will not have its turn is
/// [discarded](Ahead::discard) before its outcome is told.
pub async fn schedule_ahead<F, Fut>(
    names: &[String],
    waits: &[Vec<usize>],
    concurrency: Option<usize>,
    ships: &ShipLimits,
    reporter: &Reporter,
    ahead: Option<Arc<dyn Ahead>>,
    task: F,
) -> (Vec<Outcome>, bool)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let limits = (concurrency, ships);
    schedule_until(
        names,
        waits,
        limits,
        reporter,
        ahead,
        Interrupt::ctrl_c(),
        task,
    )
    .await
}

/// [`schedule_ahead`], ended early by `interrupt` rather than Ctrl-C (tests).
pub(crate) async fn schedule_until<F, Fut>(
    names: &[String],
    waits: &[Vec<usize>],
    (concurrency, ships): (Option<usize>, &ShipLimits),
    reporter: &Reporter,
    ahead: Option<Arc<dyn Ahead>>,
    interrupt: Interrupt,
    task: F,
) -> (Vec<Outcome>, bool)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let n = waits.len();
    let mut remaining: Vec<usize> = waits.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (row, list) in waits.iter().enumerate() {
        for &w in list {
            dependents[w].push(row);
        }
    }
    let limit = concurrency.filter(|&c| c > 0);
    let budget = Budget::new(limit, ships.places.clone());
    let ship_of = |row: usize| ships.row_ship.get(row).copied().flatten();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; n];
    // Rows whose turn began, or whose outcome is decided (a discard may still run).
    let mut decided = vec![false; n];
    let mut set: JoinSet<(usize, Outcome, Duration)> = JoinSet::new();
    // Which row each task is, so that a task that panics is reported on its own row.
    let mut rows_of: HashMap<tokio::task::Id, usize> = Default::default();
    // Rows whose turn came, waiting for a place. A row's task (its future, kilobytes of
    // state) is made only once it has one: a play of 20,000 instances would otherwise
    // hold 20,000 of them while a few hundred run.
    let mut queued: FuturesUnordered<BoxFuture<'static, (usize, Option<budget::Place>)>> =
        FuturesUnordered::new();
    let queue = |queued: &mut FuturesUnordered<_>, row: usize| {
        let granted = budget.request(ship_of(row), Priority::Turn);
        queued.push(Box::pin(async move { (row, granted.await.ok()) }) as BoxFuture<'static, _>);
    };
    let spawn = |set: &mut JoinSet<_>,
                 rows_of: &mut HashMap<_, _>,
                 row: usize,
                 place: Option<budget::Place>| {
        // Boxed: a future awaited from inside another is stored in it twice over
        // (`start`'s is some 37 KB; unboxed, each running task took 74 KB).
        let work = Box::pin(task(row));
        let handle = set.spawn(async move {
            let _place = place;
            let started = Instant::now();
            let outcome = work.await;
            (row, outcome, started.elapsed())
        });
        rows_of.insert(handle.id(), row);
    };
    // A row that will not have its turn: its work ahead is undone first, then its outcome
    // is told (with what became of that work).
    let wanted: Vec<bool> = (0..n)
        .map(|row| remaining[row] > 0 && ahead.as_ref().is_some_and(|a| a.wants(row)))
        .collect();
    // Why a row whose discard runs will not have its turn, for its outcome should the play
    // give up on that discard.
    let mut why_not: Vec<Option<String>> = vec![None; n];
    let mut not_run =
        |set: &mut JoinSet<_>, rows_of: &mut HashMap<_, _>, row: usize, why: String| {
            let Some(ahead) = ahead.clone().filter(|_| wanted[row]) else {
                let outcome = Outcome::NotRun(why);
                reporter(Event::Finished {
                    row,
                    outcome: outcome.clone(),
                    elapsed: Duration::ZERO,
                });
                return Some(outcome);
            };
            why_not[row] = Some(why.clone());
            let handle = set.spawn(async move {
                let outcome = match ahead.discard(row).await {
                    Some(what) => Outcome::NotRun(format!("{why}; {what}")),
                    None => Outcome::NotRun(why),
                };
                (row, outcome, Duration::ZERO)
            });
            rows_of.insert(handle.id(), row);
            None
        };
    let mut ahead_set: JoinSet<()> = JoinSet::new();
    if let Some(ahead) = &ahead {
        for row in (0..n).filter(|&r| wanted[r]) {
            let waiting_for = waits[row]
                .iter()
                .map(|&w| names[w].as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let (ahead, budget, ship) = (ahead.clone(), budget.clone(), ship_of(row));
            ahead_set.spawn(async move {
                let _place = budget.acquire(ship, Priority::Ahead).await;
                ahead.prepare(row, waiting_for).await;
            });
        }
    }
    for row in (0..n).filter(|&r| remaining[r] == 0) {
        decided[row] = true;
        queue(&mut queued, row);
    }
    let mut interrupted = false;
    let Interrupt {
        signal: mut ctrl_c,
        drain,
    } = interrupt;
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    loop {
        let joined = if let Some(deadline) = drain_deadline {
            match tokio::time::timeout_at(deadline, set.join_next()).await {
                Ok(joined) => joined,
                Err(_) => {
                    set.abort_all();
                    break;
                }
            }
        } else {
            if set.is_empty() && queued.is_empty() {
                break;
            }
            tokio::select! {
                Some(joined) = set.join_next(), if !set.is_empty() => Some(joined),
                Some((row, place)) = queued.next(), if !queued.is_empty() => {
                    spawn(&mut set, &mut rows_of, row, place);
                    continue;
                }
                // Work ahead ends on its own; nothing waits for it here.
                Some(_) = ahead_set.join_next(), if !ahead_set.is_empty() => continue,
                _ = &mut ctrl_c => {
                    interrupted = true;
                    // Nothing more begins: the rows still waiting for a place are told
                    // "not run: interrupted" below.
                    queued.clear();
                    if let Some(ahead) = &ahead {
                        ahead.close();
                    }
                    drain_deadline = Some(tokio::time::Instant::now() + drain);
                    continue;
                }
            }
        };
        let Some(joined) = joined else { break };
        let (row, outcome, elapsed) = match joined {
            Ok(result) => result,
            // A task that panicked is a bug; report it on its own row rather than crash.
            Err(e) => {
                let Some(row) = rows_of.get(&e.id()).copied() else {
                    continue;
                };
                let why = match e.try_into_panic() {
                    Ok(panic) => panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".into()),
                    Err(e) => e.to_string(),
                };
                (
                    row,
                    Outcome::Failed(Failure::new(format!("internal error: {why}"))),
                    Duration::ZERO,
                )
            }
        };
        let success = outcome.is_success();
        reporter(Event::Finished {
            row,
            outcome: outcome.clone(),
            elapsed,
        });
        outcomes[row] = Some(outcome);
        if success {
            for &d in &dependents[row] {
                remaining[d] -= 1;
                if remaining[d] == 0 && !decided[d] && !interrupted {
                    decided[d] = true;
                    queue(&mut queued, d);
                }
            }
        } else {
            // Everything that (transitively) waits for this row will not run.
            let mut stack = dependents[row].clone();
            while let Some(d) = stack.pop() {
                if !decided[d] {
                    decided[d] = true;
                    let why = format!("not run: waits for {}, which did not succeed", names[row]);
                    if let Some(outcome) = not_run(&mut set, &mut rows_of, d, why) {
                        outcomes[d] = Some(outcome);
                    }
                    stack.extend(dependents[d].iter().copied());
                }
            }
        }
    }
    // What was begun ahead ends (nothing new begins): within what is left of the grace
    // period after Ctrl-C, else abandoned (a row whose create was abandoned says so).
    if let Some(ahead) = &ahead {
        ahead.close();
    }
    let drained = async { while ahead_set.join_next().await.is_some() {} };
    match drain_deadline {
        Some(deadline) => {
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                ahead_set.abort_all();
                while ahead_set.join_next().await.is_some() {}
            }
        }
        None => drained.await,
    }
    // The rows left: never begun, or given up on (their discard, or their turn, cut
    // short). Their discards get one more grace period: one cut short again leaves the
    // container named in the row's slot, and asking again only reads it.
    let left: Vec<usize> = (0..n).filter(|&r| outcomes[r].is_none()).collect();
    let discards = left.iter().map(|&row| {
        let ahead = ahead.clone().filter(|_| wanted[row]);
        async move {
            let ahead = ahead?;
            match tokio::time::timeout(drain, ahead.discard(row)).await {
                Ok(what) => what,
                Err(_) => ahead.discard(row).await,
            }
        }
    });
    for (row, what) in left
        .iter()
        .zip(futures_util::future::join_all(discards).await)
    {
        let why = why_not[*row]
            .take()
            .unwrap_or_else(|| "not run: interrupted".into());
        let outcome = Outcome::NotRun(match what {
            Some(what) => format!("{why}; {what}"),
            None => why,
        });
        reporter(Event::Finished {
            row: *row,
            outcome: outcome.clone(),
            elapsed: Duration::ZERO,
        });
        outcomes[*row] = Some(outcome);
    }
    let outcomes = outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Outcome::NotRun("not run: interrupted".into())))
        .collect();
    (outcomes, interrupted)
}

#[cfg(test)]
mod tests;
