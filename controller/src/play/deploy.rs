//! What `deploy` and `rollback` do to one instance. An instance has at most two
//! generations: its container, under the instance's name, and the previous one, stopped
//! under [`previous_name`] with restart policy `no` (so an engine restart does not start
//! it). Every step is a rename, a stop or a start, so whatever point a play is killed at,
//! both generations are still there, and the next `deploy` or `rollback` finishes or
//! undoes the step (see [`settle`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use maestro_core::model::InstanceId;
use maestro_core::spec::{previous_name, swapping_name};

use super::tasks::{self, Context, StartOptions, short};
use super::{Failure, Outcome};
use crate::engine::{Engine, Observed};

/// What every replacement of a rollout shares.
#[derive(Clone)]
pub struct Rollout {
    pub start: StartOptions,
    /// Failures tolerated (`--max-failures`) before one fails the play.
    pub max_failures: usize,
    pub failures: Arc<AtomicUsize>,
}

impl Rollout {
    /// A failed replacement (already restored): a failure of the play, or a warning while
    /// within `--max-failures`.
    fn failed(&self, failure: Failure) -> Outcome {
        let n = self.failures.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= self.max_failures {
            Outcome::Warning(format!(
                "failed, tolerated ({n} of --max-failures {}): {}",
                self.max_failures, failure.message
            ))
        } else {
            Outcome::Failed(failure)
        }
    }
}

const NO_RESTART: (&str, u32) = ("no", 0);

fn no_restart() -> (String, u32) {
    (NO_RESTART.0.to_owned(), NO_RESTART.1)
}

/// The restart policy a kept container gets back when it is the instance's container
/// again: the one it was created with, else (an older maestro's container) the file's.
fn own_restart<E: Engine>(ctx: &Context<E>, id: InstanceId, container: &Observed) -> (String, u32) {
    container
        .restart
        .as_deref()
        .and_then(|r| r.split_once(':'))
        .and_then(|(name, n)| Some((name.to_owned(), n.parse().ok()?)))
        .unwrap_or_else(|| {
            let restart = &ctx.env.instance(id).restart;
            (restart.name.clone(), restart.retries)
        })
}

fn daemon(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::new(format!("{what}: {e}"))
}

/// Finishes a rollback swap that a killed maestro left half done (a container under
/// [`swapping_name`]), so that the instance has its container and its previous generation
/// again. `Ok(true)` when it finished one.
pub async fn settle<E: Engine>(
    ctx: &Context<E>,
    row: usize,
    id: InstanceId,
) -> Result<bool, Failure> {
    let name = &ctx.env.instance(id).name;
    let engine = ctx.engine(id);
    let inspect = |n: String| async move {
        engine
            .inspect(&n)
            .await
            .map_err(|e| daemon("cannot look at the containers", e))
    };
    let Some(swapping) = inspect(swapping_name(name)).await? else {
        return Ok(false);
    };
    ctx.step(row, "finishing a rollback that was interrupted");
    // The swap: [1] current -> swapping, [2] previous -> name, [3] swapping -> previous.
    if inspect(name.clone()).await?.is_none() {
        if let Some(previous) = inspect(previous_name(name)).await? {
            engine
                .rename(&previous.id, name)
                .await
                .map_err(|e| daemon("cannot rename the previous generation", e))?;
            engine
                .set_restart(&previous.id, &own_restart(ctx, id, &previous))
                .await
                .map_err(|e| daemon("cannot restore its restart policy", e))?;
        }
    }
    if inspect(previous_name(name)).await?.is_some() {
        return Err(Failure::new(format!(
            "{} and {} both exist beside {name}: remove the one you do not want",
            swapping_name(name),
            previous_name(name)
        )));
    }
    engine
        .rename(&swapping.id, &previous_name(name))
        .await
        .map_err(|e| daemon("cannot rename the swapped container", e))?;
    Ok(true)
}

/// Stops a running container the way `stop` does (`pre-stop` checks, the grace period),
/// and makes sure an engine restart does not start it again.
async fn retire<E: Engine>(
    ctx: &Context<E>,
    row: usize,
    id: InstanceId,
    container: &Observed,
) -> Result<(), Failure> {
    let engine = ctx.engine(id);
    let instance = ctx.env.instance(id);
    if container.running {
        tasks::pre_stop(ctx, row, id, &container.id).await?;
        ctx.step(
            row,
            format!(
                "stopping {} (grace period {}s)",
                short(&container.id),
                instance.stop_timeout
            ),
        );
        engine
            .stop(&container.id, instance.stop_timeout)
            .await
            .map_err(|e| daemon("cannot stop it", e))?;
    }
    engine
        .set_restart(&container.id, &no_restart())
        .await
        .map_err(|e| daemon("cannot set its restart policy to no", e))
}

/// Waits for `work` unless Ctrl-C comes first (then `None`).
async fn unless_interrupted<E: Engine, T>(
    ctx: &Context<E>,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    let mut interrupted = ctx.interrupted.clone();
    if *interrupted.borrow() {
        return None;
    }
    tokio::select! {
        result = work => Some(result),
        _ = interrupted.wait_for(|&i| i) => None,
    }
}

/// Replaces an instance's container with one made from the file: the current one is
/// stopped, kept as the previous generation (an earlier previous generation is removed),
/// and the new one is created, started and must become ready. If it does not (or Ctrl-C
/// comes), it is removed and the previous one is renamed back and started.
pub async fn replace<E: Engine>(
    ctx: Context<E>,
    row: usize,
    id: InstanceId,
    rollout: Rollout,
) -> Outcome {
    let name = ctx.env.instance(id).name.clone();
    let engine = ctx.engine(id);
    if let Err(failure) = settle(&ctx, row, id).await {
        return Outcome::Failed(failure);
    }
    let (current, previous) = match (
        engine.inspect(&name).await,
        engine.inspect(&previous_name(&name)).await,
    ) {
        (Ok(c), Ok(p)) => (c, p),
        (Err(e), _) | (_, Err(e)) => return Outcome::Failed(Failure::new(e.to_string())),
    };
    let kept = match current {
        // Killed between keeping the old container and creating the new one: the kept
        // one is all there is, and it stays.
        None => previous,
        Some(current) => {
            if let Some(previous) = previous {
                if previous.running {
                    return Outcome::Failed(Failure::new(format!(
                        "the previous generation {} ({}) is running: stop or remove it first",
                        short(&previous.id),
                        previous_name(&name)
                    )));
                }
                ctx.step(
                    row,
                    format!("removing the older generation {}", short(&previous.id)),
                );
                if let Err(e) = engine.remove(&previous.id).await {
                    return Outcome::Failed(daemon("cannot remove the older generation", e));
                }
            }
            if let Err(failure) = retire(&ctx, row, id, &current).await {
                // Still the instance's container, under its name: start it again if it
                // was running.
                return Outcome::Failed(
                    restore(&ctx, row, id, Some(current), failure, &rollout).await,
                );
            }
            ctx.step(
                row,
                format!("keeping {} as the previous generation", short(&current.id)),
            );
            if let Err(e) = engine.rename(&current.id, &previous_name(&name)).await {
                let failure = daemon("cannot rename it", e);
                return Outcome::Failed(
                    restore(&ctx, row, id, Some(current), failure, &rollout).await,
                );
            }
            Some(current)
        }
    };
    let launched = unless_interrupted(&ctx, tasks::launch(&ctx, row, id, rollout.start)).await;
    let failure = match launched {
        Some(outcome) if outcome.is_success() => {
            let how = match outcome {
                Outcome::Done(how) | Outcome::Warning(how) => how,
                _ => String::new(),
            };
            return Outcome::Done(match &kept {
                Some(k) => format!(
                    "replaced ({how}); previous generation {} kept",
                    short(&k.id)
                ),
                None => format!("created ({how})"),
            });
        }
        Some(outcome) => match outcome {
            Outcome::Failed(f) => f,
            other => Failure::new(format!("{other:?}")),
        },
        None => Failure::new("interrupted"),
    };
    if kept.is_none() {
        // Nothing to go back to: the new container stays for the operator to look at.
        return rollout.failed(failure);
    }
    rollout.failed(restore(&ctx, row, id, kept, failure, &rollout).await)
}

/// Undoes a failed replacement: removes whatever container now has the instance's name
/// (unless it is the kept one), gives the kept one its name and restart policy back and
/// starts it if it was running. Returns the failure, saying how the instance was left.
async fn restore<E: Engine>(
    ctx: &Context<E>,
    row: usize,
    id: InstanceId,
    kept: Option<Observed>,
    mut failure: Failure,
    rollout: &Rollout,
) -> Failure {
    let name = &ctx.env.instance(id).name;
    let engine = ctx.engine(id);
    let Some(kept) = kept else {
        return failure;
    };
    ctx.step(
        row,
        format!(
            "failed ({}): restoring {}",
            failure.message,
            short(&kept.id)
        ),
    );
    let undo = async {
        if let Some(new) = engine
            .inspect(name)
            .await
            .map_err(|e| daemon("cannot look", e))?
        {
            if new.id != kept.id {
                if failure.logs.is_empty() && !new.running {
                    failure.logs = engine.logs(&new.id, Some(20)).await.unwrap_or_default();
                }
                let _ = engine.kill(&new.id).await;
                engine
                    .remove(&new.id)
                    .await
                    .map_err(|e| daemon("cannot remove the new container", e))?;
            }
        }
        if engine.inspect(name).await.ok().flatten().is_none() {
            engine
                .rename(&kept.id, name)
                .await
                .map_err(|e| daemon("cannot rename the previous container back", e))?;
        }
        engine
            .set_restart(&kept.id, &own_restart(ctx, id, &kept))
            .await
            .map_err(|e| daemon("cannot restore its restart policy", e))?;
        if !kept.running {
            return Ok("is back, stopped as it was".to_owned());
        }
        // Restoring is not interrupted by Ctrl-C: it is what Ctrl-C asks for.
        let start = StartOptions {
            min_ready: rollout
                .start
                .min_ready
                .map(|m| m.min(Duration::from_secs(2))),
            ..rollout.start
        };
        match tasks::restart_existing(ctx, row, id, &kept, start.min_ready).await {
            o if o.is_success() => Ok("is back and running".to_owned()),
            Outcome::Failed(f) => Err(Failure::new(format!("was started again but {}", f.message))),
            other => Err(Failure::new(format!("{other:?}"))),
        }
    };
    match undo.await {
        Ok(state) => {
            failure.message = format!(
                "{}; the previous container {} {state}",
                failure.message,
                short(&kept.id)
            );
        }
        Err(e) => {
            failure.message = format!(
                "{}; and restoring the previous container {} failed: {} (status shows what is left)",
                failure.message,
                short(&kept.id),
                e.message
            );
        }
    }
    failure
}

/// Swaps an instance's container and its previous generation: the current one is
/// stopped and becomes the previous generation, the previous one gets the instance's name
/// and its restart policy back. Returns the container now under the instance's name.
async fn swap<E: Engine>(
    ctx: &Context<E>,
    row: usize,
    id: InstanceId,
    current: Option<&Observed>,
    previous: &Observed,
) -> Result<Observed, Failure> {
    let name = &ctx.env.instance(id).name;
    let engine = ctx.engine(id);
    if let Some(current) = current {
        retire(ctx, row, id, current).await?;
        engine
            .rename(&current.id, &swapping_name(name))
            .await
            .map_err(|e| daemon("cannot rename the current container", e))?;
    }
    engine
        .rename(&previous.id, name)
        .await
        .map_err(|e| daemon("cannot rename the previous generation", e))?;
    engine
        .set_restart(&previous.id, &own_restart(ctx, id, previous))
        .await
        .map_err(|e| daemon("cannot restore its restart policy", e))?;
    if let Some(current) = current {
        engine
            .rename(&current.id, &previous_name(name))
            .await
            .map_err(|e| {
                daemon(
                    "cannot keep the current container as the previous generation",
                    e,
                )
            })?;
    }
    Ok(Observed {
        running: false,
        ..previous.clone()
    })
}

/// Returns an instance to its previous generation (kept by `deploy`): the two are
/// swapped, so the one rolled back from is kept in turn. If the previous one does not
/// become ready, they are swapped back.
pub async fn rollback<E: Engine>(
    ctx: Context<E>,
    row: usize,
    id: InstanceId,
    rollout: Rollout,
) -> Outcome {
    let name = ctx.env.instance(id).name.clone();
    let engine = ctx.engine(id);
    let settled = match settle(&ctx, row, id).await {
        Ok(settled) => settled,
        Err(failure) => return Outcome::Failed(failure),
    };
    let (current, previous) = match (
        engine.inspect(&name).await,
        engine.inspect(&previous_name(&name)).await,
    ) {
        (Ok(c), Ok(p)) => (c, p),
        (Err(e), _) | (_, Err(e)) => return Outcome::Failed(Failure::new(e.to_string())),
    };
    let now = match (settled, current, previous) {
        // An interrupted rollback was finished: its target is in place, to be started.
        (true, Some(current), _) => current,
        (_, _, None) => {
            return Outcome::Failed(Failure::new(format!(
                "no previous generation is kept ({} does not exist; deploy keeps one)",
                previous_name(&name)
            )));
        }
        (_, current, Some(previous)) => {
            ctx.step(
                row,
                format!(
                    "rolling back to {} ({})",
                    short(&previous.id),
                    previous.image
                ),
            );
            match swap(&ctx, row, id, current.as_ref(), &previous).await {
                Ok(now) => now,
                Err(failure) => return rollout.failed(failure),
            }
        }
    };
    let ready = unless_interrupted(
        &ctx,
        tasks::restart_existing(&ctx, row, id, &now, rollout.start.min_ready),
    )
    .await;
    let failure = match ready {
        Some(o) if o.is_success() => {
            return Outcome::Done(format!(
                "rolled back to {} ({}); the container rolled back from is kept as the previous generation",
                short(&now.id),
                now.image_id
                    .as_deref()
                    .map_or_else(|| now.image.clone(), maestro_core::plan::short_image_id)
            ));
        }
        Some(Outcome::Failed(f)) => f,
        Some(other) => Failure::new(format!("{other:?}")),
        None => Failure::new("interrupted"),
    };
    // Back to where it was: the generation rolled back from is the previous one now.
    let back = async {
        let current = engine
            .inspect(&name)
            .await
            .map_err(|e| daemon("cannot look", e))?;
        let previous = engine
            .inspect(&previous_name(&name))
            .await
            .map_err(|e| daemon("cannot look", e))?
            .ok_or_else(|| Failure::new("the container rolled back from is gone"))?;
        let restored = swap(&ctx, row, id, current.as_ref(), &previous).await?;
        match tasks::restart_existing(&ctx, row, id, &restored, rollout.start.min_ready).await {
            o if o.is_success() => Ok(restored),
            Outcome::Failed(f) => Err(f),
            other => Err(Failure::new(format!("{other:?}"))),
        }
    };
    let mut failure = failure;
    failure.message = match back.await {
        Ok(restored) => format!(
            "{}; swapped back: {} is running again",
            failure.message,
            short(&restored.id)
        ),
        Err(e) => format!(
            "{}; and swapping back failed: {} (status shows what is left)",
            failure.message, e.message
        ),
    };
    rollout.failed(failure)
}

/// `clean` of an instance's previous generation: removed when stopped (and not a
/// container of that name maestro created for something else).
pub async fn clean_previous<E: Engine>(
    ctx: &Context<E>,
    id: InstanceId,
) -> Result<Option<String>, String> {
    let name = previous_name(&ctx.env.instance(id).name);
    let engine = ctx.engine(id);
    match engine.inspect(&name).await {
        Ok(Some(p))
            if !p.running
                && !matches!(
                    p.owner(&ctx.env, id),
                    maestro_core::plan::Owner::Conflict(_)
                ) =>
        {
            engine
                .remove(&p.id)
                .await
                .map(|()| Some(format!("previous generation {} removed", short(&p.id))))
                .map_err(|e| e.to_string())
        }
        Ok(_) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}
