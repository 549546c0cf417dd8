//! Plays: one command's run over a selection of instances. The scheduler starts each
//! instance's task the moment everything it waits for has succeeded (no polling), runs
//! independent branches concurrently (bounded by `-c`), skips only the dependents of a
//! failed instance, and stops launching on Ctrl-C. Tasks report through typed
//! [`Event`]s; `output::events` renders them.

pub mod checks;
pub mod deploy;
pub mod health;
pub mod images;
pub mod orphans;
pub mod tasks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

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

/// Runs `task(row)` for every row once the rows it waits for (`waits[row]`, positions in
/// the same list) have succeeded, at most `concurrency` at once and at most as many as
/// `row_limits[row]` allows among the rows sharing that limit. Returns each row's outcome and whether the play was
/// interrupted.
pub async fn schedule<F, Fut>(
    names: &[String],
    waits: &[Vec<usize>],
    concurrency: Option<usize>,
    row_limits: &[Option<Arc<Semaphore>>],
    reporter: &Reporter,
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
    let limit = concurrency.filter(|&c| c > 0).unwrap_or(n.max(1));
    let permits = Arc::new(Semaphore::new(limit));
    let mut outcomes: Vec<Option<Outcome>> = vec![None; n];
    let mut set: JoinSet<(usize, Outcome, Duration)> = JoinSet::new();
    // Which row each task is, so that a task that panics is reported on its own row.
    let mut rows_of: std::collections::HashMap<tokio::task::Id, usize> = Default::default();
    let spawn =
        |set: &mut JoinSet<_>, rows_of: &mut std::collections::HashMap<_, _>, row: usize| {
            let permits = permits.clone();
            let row_limit = row_limits.get(row).cloned().flatten();
            let work = task(row);
            let handle = set.spawn(async move {
                // The row's own limit (its ship's) first, so that waiting for it does not
                // hold one of the play's places.
                let _row_permit = match row_limit {
                    Some(limit) => Some(
                        limit
                            .acquire_owned()
                            .await
                            .expect("the semaphore is never closed"),
                    ),
                    None => None,
                };
                let _permit = permits
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                let started = Instant::now();
                let outcome = work.await;
                (row, outcome, started.elapsed())
            });
            rows_of.insert(handle.id(), row);
        };
    for (row, _) in remaining.iter().enumerate().filter(|(_, r)| **r == 0) {
        spawn(&mut set, &mut rows_of, row);
    }
    let mut interrupted = false;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
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
            tokio::select! {
                joined = set.join_next() => joined,
                _ = &mut ctrl_c => {
                    interrupted = true;
                    drain_deadline = Some(tokio::time::Instant::now() + DRAIN);
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
                if remaining[d] == 0 && outcomes[d].is_none() && !interrupted {
                    spawn(&mut set, &mut rows_of, d);
                }
            }
        } else {
            // Everything that (transitively) waits for this row will not run.
            let mut stack = dependents[row].clone();
            while let Some(d) = stack.pop() {
                if outcomes[d].is_none() {
                    let outcome = Outcome::NotRun(format!(
                        "not run: waits for {}, which did not succeed",
                        names[row]
                    ));
                    reporter(Event::Finished {
                        row: d,
                        outcome: outcome.clone(),
                        elapsed: Duration::ZERO,
                    });
                    outcomes[d] = Some(outcome);
                    stack.extend(dependents[d].iter().copied());
                }
            }
        }
    }
    let outcomes = outcomes
        .into_iter()
        .enumerate()
        .map(|(row, o)| {
            o.unwrap_or_else(|| {
                let outcome = Outcome::NotRun("not run: interrupted".into());
                reporter(Event::Finished {
                    row,
                    outcome: outcome.clone(),
                    elapsed: Duration::ZERO,
                });
                outcome
            })
        })
        .collect();
    (outcomes, interrupted)
}

#[cfg(test)]
mod tests;
