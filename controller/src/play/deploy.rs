//! What `deploy` and `rollback` do to one instance. An instance keeps two generations:
//! its container, under the instance's name, and the previous one, stopped under
//! [`previous_name`] with restart policy `no` (so an engine restart does not start it).
//! While a deploy proves a new container ready, the one it replaces waits stopped under
//! [`retiring_name`], a third generation for that time: the older previous generation is
//! removed only once the new container is ready, so a failed replacement leaves both
//! generations as they were. Every step is a stop, a rename, a start, or the removal of a
//! container nothing needs any more, so whatever point a play is killed at, no generation
//! is lost: the next `deploy` finishes the step and the next `rollback` undoes it (see
//! [`settle`], [`replace`], [`undo_deploy`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use maestro_core::model::InstanceId;
use maestro_core::spec::{previous_name, retiring_name, staged_name, swapping_name};

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
    /// The containers created ahead of their turns (see [`super::ahead::Under::Staged`]).
    pub ahead: Option<Arc<super::ahead::Slots>>,
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

/// Undoes a deploy that a killed maestro left unfinished (a container under
/// [`retiring_name`]): the container under the instance's name was never proven ready and
/// is removed, and the retiring one gets the instance's name and its restart policy back.
/// Returns it (stopped) when it undid one.
pub async fn undo_deploy<E: Engine>(
    ctx: &Context<E>,
    row: usize,
    id: InstanceId,
) -> Result<Option<Observed>, Failure> {
    let name = &ctx.env.instance(id).name;
    let engine = ctx.engine(id);
    let look = |n: String| async move {
        engine
            .inspect(&n)
            .await
            .map_err(|e| daemon("cannot look at the containers", e))
    };
    let Some(retiring) = look(retiring_name(name)).await? else {
        return Ok(None);
    };
    ctx.step(row, "undoing a deploy that was interrupted");
    if let Some(unproven) = look(name.clone()).await? {
        remove_unproven(ctx, row, id, &unproven).await?;
    }
    engine
        .rename(&retiring.id, name)
        .await
        .map_err(|e| daemon("cannot give the replaced container its name back", e))?;
    engine
        .set_restart(&retiring.id, &own_restart(ctx, id, &retiring))
        .await
        .map_err(|e| daemon("cannot restore its restart policy", e))?;
    Ok(Some(Observed {
        running: false,
        ..retiring
    }))
}

/// Stops a running container the way `stop` does (`pre-stop` checks, the grace period),
/// and makes sure an engine restart does not start it again.
async fn retire<E: Engine>(
    ctx: &Context<E>,
    row: usize,
    id: InstanceId,
    container: &Observed,
) -> Result<(), Failure> {
    take_down(ctx, row, id, container).await?;
    no_restart_of(ctx, id, container).await
}

/// The stop of [`retire`]: `pre-stop` checks, then the stop with its grace period.
async fn take_down<E: Engine>(
    ctx: &Context<E>,
    row: usize,
    id: InstanceId,
    container: &Observed,
) -> Result<(), Failure> {
    if !container.running {
        return Ok(());
    }
    let instance = ctx.env.instance(id);
    tasks::pre_stop(ctx, row, id, &container.id).await?;
    ctx.step(
        row,
        format!(
            "stopping {} (grace period {}s)",
            short(&container.id),
            instance.stop_timeout
        ),
    );
    ctx.engine(id)
        .stop(&container.id, instance.stop_timeout)
        .await
        .map_err(|e| daemon("cannot stop it", e))
}

/// The restart policy `no` of [`retire`].
async fn no_restart_of<E: Engine>(
    ctx: &Context<E>,
    id: InstanceId,
    container: &Observed,
) -> Result<(), Failure> {
    ctx.engine(id)
        .set_restart(&container.id, &no_restart())
        .await
        .map_err(|e| daemon("cannot set its restart policy to no", e))
}

/// Puts the container created ahead in place of `current` while `current` still serves:
/// `current` gets restart policy `no` and the name [`retiring_name`], the staged one the
/// instance's name, and only then is `current` stopped. So an instance is out of service
/// only for its stop, the new container's start and its readiness. `staged` is taken once
/// it has the instance's name (it is then the one [`restore`] removes on failure).
async fn swap_in<E: Engine>(
    ctx: &Context<E>,
    row: usize,
    id: InstanceId,
    current: &Observed,
    staged: &mut Option<tasks::Made>,
) -> Result<tasks::Made, Failure> {
    let engine = ctx.engine(id);
    let name = &ctx.env.instance(id).name;
    let Some(made) = staged.take() else {
        return Err(Failure::new("nothing was created ahead"));
    };
    ctx.step(
        row,
        format!(
            "keeping {} until the new container is ready; {} takes its name",
            short(&current.id),
            short(&made.container_id)
        ),
    );
    let renamed = async {
        no_restart_of(ctx, id, current).await?;
        engine
            .rename(&current.id, &retiring_name(name))
            .await
            .map_err(|e| daemon("cannot rename it", e))?;
        engine
            .rename(&made.container_id, name)
            .await
            .map_err(|e| daemon("cannot give the container created ahead its name", e))
    };
    if let Err(failure) = renamed.await {
        *staged = Some(made);
        return Err(failure);
    }
    crate::failpoint::pause("deploy:swapped").await;
    take_down(ctx, row, id, current).await?;
    Ok(made)
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

/// Where the container a replacement goes back to if the new one fails is kept.
enum Kept {
    /// Nothing to go back to (the instance had no container).
    Nothing,
    /// Under [`retiring_name`]: the container replaced, which becomes the previous
    /// generation once the new one is ready.
    Retiring(Observed),
    /// Already the previous generation (an older maestro, killed after keeping it, left
    /// no container under the instance's name): it stays the previous generation.
    Previous(Observed),
}

/// Removes a container that a killed deploy left under the instance's name before it was
/// proven ready.
async fn remove_unproven<E: Engine>(
    ctx: &Context<E>,
    row: usize,
    id: InstanceId,
    unproven: &Observed,
) -> Result<(), Failure> {
    let engine = ctx.engine(id);
    ctx.step(
        row,
        format!(
            "removing {}, which an interrupted deploy left unproven",
            short(&unproven.id)
        ),
    );
    if unproven.running {
        let _ = engine.kill(&unproven.id).await;
    }
    engine
        .remove(&unproven.id)
        .await
        .map_err(|e| daemon("cannot remove it", e))
}

/// Replaces an instance's container with one made from the file: the current one is
/// stopped and kept under [`retiring_name`], and the new one is created, started and must
/// become ready; then the older previous generation is removed and the replaced one
/// becomes the previous generation. If the new one does not become ready (or Ctrl-C
/// comes), it is removed and the replaced one is renamed back and started; the previous
/// generation is untouched. After a deploy killed midway (a container under
/// [`retiring_name`]), whatever has the instance's name was never proven ready: it is
/// removed and the replacement done again.
///
/// With a container created ahead for it ([`super::ahead::Under::Staged`]), the turn
/// renames that one to the instance's name instead of creating it; one the turn does not
/// get to use (it failed before) is removed, and its outcome says so.
pub async fn replace<E: Engine>(
    ctx: Context<E>,
    row: usize,
    id: InstanceId,
    rollout: Rollout,
) -> Outcome {
    let mut staged = match &rollout.ahead {
        Some(slots) => slots.take(row).await,
        None => None,
    };
    let outcome = replace_with(ctx.clone(), row, id, &rollout, &mut staged).await;
    let Some(made) = staged else {
        return outcome;
    };
    let what = short(&made.container_id).to_owned();
    let removed = ctx.engine(id).remove(&made.container_id).await;
    if let Some(slots) = &rollout.ahead {
        slots.removed(row);
    }
    let note = match removed {
        Ok(()) => format!("its container {what}, created ahead, was removed"),
        Err(e) => format!(
            "its container {what}, created ahead, is left created: cannot remove it: {e}; the next deploy removes it"
        ),
    };
    match outcome {
        Outcome::Done(m) => Outcome::Done(format!("{m}; {note}")),
        Outcome::Warning(m) => Outcome::Warning(format!("{m}; {note}")),
        Outcome::Skipped(m) => Outcome::Skipped(format!("{m}; {note}")),
        Outcome::NotRun(m) => Outcome::NotRun(format!("{m}; {note}")),
        Outcome::Failed(mut f) => {
            f.message = format!("{}; {note}", f.message);
            Outcome::Failed(f)
        }
    }
}

/// Removes a container a killed deploy created ahead under [`staged_name`] (never
/// started as the instance, of no use to anything). One maestro did not create for this
/// instance is left alone (`Ok(false)`): nothing needs its name but a create ahead.
pub async fn remove_staged<E: Engine>(
    ctx: &Context<E>,
    row: usize,
    id: InstanceId,
    left: &Observed,
) -> Result<bool, Failure> {
    if left.owner(&ctx.env, id) != maestro_core::plan::Owner::Own {
        return Ok(false);
    }
    ctx.step(
        row,
        format!(
            "removing {}, which an interrupted deploy created ahead",
            short(&left.id)
        ),
    );
    let engine = ctx.engine(id);
    if left.running {
        let _ = engine.kill(&left.id).await;
    }
    engine.remove(&left.id).await.map(|()| true).map_err(|e| {
        daemon(
            &format!(
                "cannot remove {}, which an interrupted deploy created ahead",
                short(&left.id)
            ),
            e,
        )
    })
}

/// [`replace`], with `staged` the container created ahead: taken when used, left for the
/// caller to remove otherwise.
async fn replace_with<E: Engine>(
    ctx: Context<E>,
    row: usize,
    id: InstanceId,
    rollout: &Rollout,
    staged: &mut Option<tasks::Made>,
) -> Outcome {
    let name = ctx.env.instance(id).name.clone();
    let engine = ctx.engine(id);
    if let Err(failure) = settle(&ctx, row, id).await {
        return Outcome::Failed(failure);
    }
    let look = |n: String| async move {
        engine
            .inspect(&n)
            .await
            .map_err(|e| daemon("cannot look at the containers", e))
    };
    // The one under the staged name is this play's own when it was created ahead.
    let own_staged = staged.is_some();
    let found = tokio::try_join!(
        look(name.clone()),
        look(previous_name(&name)),
        look(retiring_name(&name)),
        async {
            match own_staged {
                true => Ok(None),
                false => look(staged_name(&name)).await,
            }
        }
    );
    let (current, previous, retiring, left) = match found {
        Ok(found) => found,
        Err(failure) => return Outcome::Failed(failure),
    };
    if let Some(left) = left {
        if let Err(failure) = remove_staged(&ctx, row, id, &left).await {
            return Outcome::Failed(failure);
        }
    }
    if let Some(previous) = previous.as_ref().filter(|p| p.running) {
        return Outcome::Failed(Failure::new(format!(
            "the previous generation {} ({}) is running: stop or remove it first",
            short(&previous.id),
            previous_name(&name)
        )));
    }
    // A container created ahead once it has the instance's name.
    let mut named = None;
    let kept = match (retiring, current) {
        (Some(retiring), current) => {
            if let Some(unproven) = current {
                if let Err(failure) = remove_unproven(&ctx, row, id, &unproven).await {
                    return Outcome::Failed(failure);
                }
            }
            ctx.step(
                row,
                format!(
                    "finishing an interrupted deploy: {} is kept until the new container is ready",
                    short(&retiring.id)
                ),
            );
            // Killed while swapping in a container created ahead, the deploy left it
            // serving: it is stopped now, as it would have been.
            if let Err(failure) = take_down(&ctx, row, id, &retiring).await {
                // Back under the instance's name, as it was before that deploy.
                return Outcome::Failed(
                    restore(&ctx, row, id, Some(retiring), failure, rollout).await,
                );
            }
            // The interrupted deploy took it down: it is started again if the new one
            // fails.
            Kept::Retiring(Observed {
                running: true,
                ..retiring
            })
        }
        (None, None) => previous.clone().map_or(Kept::Nothing, Kept::Previous),
        (None, Some(current)) if staged.is_some() => {
            match swap_in(&ctx, row, id, &current, staged).await {
                Ok(made) => named = Some(made),
                Err(failure) => {
                    return Outcome::Failed(
                        restore(&ctx, row, id, Some(current), failure, rollout).await,
                    );
                }
            }
            Kept::Retiring(current)
        }
        (None, Some(current)) => {
            if let Err(failure) = retire(&ctx, row, id, &current).await {
                // Still the instance's container, under its name: start it again if it
                // was running.
                return Outcome::Failed(
                    restore(&ctx, row, id, Some(current), failure, rollout).await,
                );
            }
            ctx.step(
                row,
                format!(
                    "keeping {} until the new container is ready",
                    short(&current.id)
                ),
            );
            if let Err(e) = engine.rename(&current.id, &retiring_name(&name)).await {
                let failure = daemon("cannot rename it", e);
                return Outcome::Failed(
                    restore(&ctx, row, id, Some(current), failure, rollout).await,
                );
            }
            crate::failpoint::pause("deploy:renamed").await;
            Kept::Retiring(current)
        }
    };
    let launched = match (named, staged.take()) {
        // Swapped in already.
        (Some(made), _) => {
            unless_interrupted(&ctx, tasks::start_made(&ctx, row, id, made, rollout.start)).await
        }
        (None, None) => unless_interrupted(&ctx, tasks::launch(&ctx, row, id, rollout.start)).await,
        // Created ahead, where no container was to swap with: it takes the free name.
        (None, Some(made)) => match engine.rename(&made.container_id, &name).await {
            Ok(()) => {
                unless_interrupted(&ctx, tasks::start_made(&ctx, row, id, made, rollout.start))
                    .await
            }
            Err(e) => {
                *staged = Some(made);
                Some(Outcome::Failed(daemon(
                    "cannot give the container created ahead the instance's name",
                    e,
                )))
            }
        },
    };
    let failure = match launched {
        Some(outcome) if outcome.is_success() => {
            let how = match outcome {
                Outcome::Done(how) | Outcome::Warning(how) => how,
                _ => String::new(),
            };
            return match kept {
                Kept::Nothing => Outcome::Done(format!("created ({how})")),
                Kept::Previous(p) => Outcome::Done(format!(
                    "created ({how}); previous generation {} kept",
                    short(&p.id)
                )),
                Kept::Retiring(r) => match promote(&ctx, row, id, &r, previous.as_ref()).await {
                    Ok(()) => Outcome::Done(format!(
                        "replaced ({how}); previous generation {} kept",
                        short(&r.id)
                    )),
                    Err(failure) => Outcome::Failed(failure),
                },
            };
        }
        Some(outcome) => match outcome {
            Outcome::Failed(f) => f,
            other => Failure::new(format!("{other:?}")),
        },
        None => Failure::new("interrupted"),
    };
    match kept {
        // Nothing to go back to: the new container stays for the operator to look at.
        Kept::Nothing => rollout.failed(failure),
        Kept::Retiring(k) | Kept::Previous(k) => {
            rollout.failed(restore(&ctx, row, id, Some(k), failure, rollout).await)
        }
    }
}

/// The new container is ready: the older previous generation is removed, and the replaced
/// container becomes the previous generation.
async fn promote<E: Engine>(
    ctx: &Context<E>,
    row: usize,
    id: InstanceId,
    replaced: &Observed,
    older: Option<&Observed>,
) -> Result<(), Failure> {
    let name = &ctx.env.instance(id).name;
    let engine = ctx.engine(id);
    crate::failpoint::pause("deploy:ready").await;
    let unfinished = |what: String, e: crate::engine::EngineError| {
        daemon(
            &format!(
                "the new container is ready, but {what} (the next deploy replaces it again, rollback puts {} back)",
                short(&replaced.id)
            ),
            e,
        )
    };
    if let Some(older) = older {
        ctx.step(
            row,
            format!("removing the older generation {}", short(&older.id)),
        );
        engine.remove(&older.id).await.map_err(|e| {
            unfinished(
                format!(
                    "the older generation {} cannot be removed",
                    short(&older.id)
                ),
                e,
            )
        })?;
    }
    engine
        .rename(&replaced.id, &previous_name(name))
        .await
        .map_err(|e| {
            unfinished(
                format!(
                    "{} cannot be kept as the previous generation",
                    short(&replaced.id)
                ),
                e,
            )
        })
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
        crate::failpoint::pause("rollback:swapping").await;
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
    // What an interrupted deploy created ahead is of no use to a rollback either.
    let left = match engine.inspect(&staged_name(&name)).await {
        Ok(left) => left,
        Err(e) => return Outcome::Failed(daemon("cannot look at the containers", e)),
    };
    if let Some(left) = left {
        if let Err(failure) = remove_staged(&ctx, row, id, &left).await {
            return Outcome::Failed(failure);
        }
    }
    // After an interrupted deploy, rolling back means returning to the container it was
    // replacing, not one generation further.
    match undo_deploy(&ctx, row, id).await {
        Err(failure) => return Outcome::Failed(failure),
        Ok(Some(back)) => {
            let ready = unless_interrupted(
                &ctx,
                tasks::restart_existing(&ctx, row, id, &back, rollout.start.min_ready),
            )
            .await;
            let what = format!(
                "an interrupted deploy was undone: {} ({})",
                short(&back.id),
                image_of(&back)
            );
            return match ready {
                Some(o) if o.is_success() => Outcome::Done(format!("{what} is back")),
                Some(Outcome::Failed(f)) => rollout.failed(Failure {
                    message: format!("{what} was started again but {}", f.message),
                    ..f
                }),
                Some(other) => rollout.failed(Failure::new(format!("{what}: {other:?}"))),
                None => rollout.failed(Failure::new(format!("{what}, then interrupted"))),
            };
        }
        Ok(None) => {}
    }
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
                image_of(&now)
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

/// The image a container runs, as people read it: its short id, else its name.
fn image_of(container: &Observed) -> String {
    container.image_id.as_deref().map_or_else(
        || container.image.clone(),
        maestro_core::plan::short_image_id,
    )
}

/// `clean` of an instance's previous generation: removed when stopped (and not a
/// container of that name maestro created for something else); and of a container an
/// interrupted deploy created ahead (never started as the instance). What it removed, in
/// words.
pub async fn clean_previous<E: Engine>(
    ctx: &Context<E>,
    id: InstanceId,
) -> Result<Option<String>, String> {
    let name = &ctx.env.instance(id).name;
    let engine = ctx.engine(id);
    let mut removed = Vec::new();
    // Not looked for where the play's list saw none.
    let look = |name: String| async move {
        match ctx.listed_absent(id, &name) {
            true => Ok(None),
            false => engine.inspect(&name).await,
        }
    };
    let (previous, staged) = tokio::join!(look(previous_name(name)), look(staged_name(name)));
    let cannot = |what: &str, e: crate::engine::EngineError| format!("cannot remove {what}: {e}");
    match previous.map_err(|e| cannot("the previous generation", e))? {
        Some(p)
            if !p.running
                && !matches!(
                    p.owner(&ctx.env, id),
                    maestro_core::plan::Owner::Conflict(_)
                ) =>
        {
            engine
                .remove(&p.id)
                .await
                .map_err(|e| cannot("the previous generation", e))?;
            removed.push(format!("previous generation {} removed", short(&p.id)));
        }
        _ => {}
    }
    let ahead = "what an interrupted deploy created ahead";
    match staged.map_err(|e| cannot(ahead, e))? {
        Some(s) if s.owner(&ctx.env, id) == maestro_core::plan::Owner::Own => {
            if s.running {
                let _ = engine.kill(&s.id).await;
            }
            engine.remove(&s.id).await.map_err(|e| cannot(ahead, e))?;
            removed.push(format!(
                "{} (created ahead by an interrupted deploy) removed",
                short(&s.id)
            ));
        }
        _ => {}
    }
    Ok((!removed.is_empty()).then(|| removed.join("; ")))
}
