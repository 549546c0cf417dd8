//! `restart`: rolling, as MaestroNG's. Each instance is stopped, waits
//! `--stop-start-delay`, is started again and is ready before its place is free; `-c`
//! bounds how many instances are being replaced at once and `--step-delay` spaces them.
//! An instance's dependencies are replaced before it, so a restarted database is back
//! before the apps that need it are cycled (MaestroNG #186). With `-r` every image is
//! pulled on every ship first, and with `--only-if-changed` only instances whose
//! definition or image changed are touched.

use super::*;

pub(super) struct Options {
    pub start: StartOptions,
    /// `-r`: pull every image first.
    pub pull: bool,
    pub step_delay: Duration,
    pub stop_start_delay: Duration,
    pub only_if_changed: bool,
}

pub(super) async fn restart<E: Engine>(
    ctx: &Context<E>,
    deps: &Dependencies,
    select: &Select,
    mut selection: Vec<InstanceId>,
    options: Options,
    readiness: Settings,
) -> u8 {
    // Pulled before anything is stopped: a failed pull changes nothing, and the
    // decisions below compare containers with what their tags name now.
    let policy = if options.pull {
        PullPolicy::Always
    } else {
        PullPolicy::Missing
    };
    let ctx = match prepare_images(ctx, &selection, select, policy).await {
        Ok(ctx) => ctx,
        Err(code) => return code,
    };
    if options.only_if_changed {
        let steps = plan::plan(
            &ctx,
            &selection,
            PlanKind::Restart {
                only_if_changed: true,
            },
        )
        .await;
        selection = selection
            .into_iter()
            .zip(steps)
            .filter(|(_, step)| !matches!(step, Ok(s) if s.action == Action::Leave))
            .map(|(id, _)| id)
            .collect();
        if selection.is_empty() {
            let _ = output::print("restart: nothing changed; no instance touched\n");
            return 0;
        }
    }
    let ctx = with_handshake(&ctx, &selection, readiness).await;
    let next_slot = Arc::new(tokio::sync::Mutex::new(Instant::now()));
    let (outcomes, interrupted) = run_play(
        &ctx,
        deps,
        "restart",
        &selection,
        select,
        Some(Direction::Start),
        move |ctx, row, id| {
            let next_slot = next_slot.clone();
            async move {
                if !options.step_delay.is_zero() {
                    // A real stagger: each instance begins at least step_delay after the
                    // one before it.
                    let mut slot = next_slot.lock().await;
                    tokio::time::sleep_until((*slot).into()).await;
                    *slot = Instant::now() + options.step_delay;
                }
                let stopped = tasks::stop(ctx.clone(), row, id, false).await;
                if !stopped.is_success() {
                    return stopped;
                }
                if !options.stop_start_delay.is_zero() {
                    ctx.step(
                        row,
                        format!(
                            "waiting {}s before starting",
                            options.stop_start_delay.as_secs()
                        ),
                    );
                    tokio::time::sleep(options.stop_start_delay).await;
                }
                match tasks::start(ctx, row, id, options.start).await {
                    Outcome::Done(how) => Outcome::Done(format!("restarted: {how}")),
                    other => other,
                }
            }
        },
    )
    .await;
    exit_code(&outcomes, interrupted)
}
