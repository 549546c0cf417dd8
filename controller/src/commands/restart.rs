//! `restart`.

use super::*;

#[allow(clippy::too_many_arguments)]
pub(super) async fn restart<E: Engine>(
    ctx: &Context<E>,
    deps: &Dependencies,
    select: &Select,
    mut selection: Vec<InstanceId>,
    options: StartOptions,
    step_delay: Duration,
    stop_start_delay: Duration,
    only_if_changed: bool,
) -> u8 {
    if only_if_changed {
        let steps = plan::plan(ctx, &selection, PlanKind::Restart { only_if_changed }).await;
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
    let (stopped, interrupted) = run_play(
        ctx,
        deps,
        "stop",
        &selection,
        select,
        Some(Direction::Stop),
        |ctx, row, id| tasks::stop(ctx, row, id, false),
    )
    .await;
    if interrupted {
        return EXIT_INTERRUPTED;
    }
    // Only what stopped cleanly is started again.
    let selection: Vec<InstanceId> = selection
        .into_iter()
        .zip(&stopped)
        .filter(|(_, o)| o.is_success())
        .map(|(id, _)| id)
        .collect();
    tokio::time::sleep(stop_start_delay).await;
    let next_slot = Arc::new(tokio::sync::Mutex::new(Instant::now()));
    let (started, interrupted) = run_play(
        ctx,
        deps,
        "start",
        &selection,
        select,
        Some(Direction::Start),
        move |ctx, row, id| {
            let next_slot = next_slot.clone();
            async move {
                if !step_delay.is_zero() {
                    // A real stagger: each instance starts at least step_delay after the last.
                    let mut slot = next_slot.lock().await;
                    tokio::time::sleep_until((*slot).into()).await;
                    *slot = Instant::now() + step_delay;
                }
                tasks::start(ctx, row, id, options).await
            }
        },
    )
    .await;
    let all: Vec<Outcome> = stopped.into_iter().chain(started).collect();
    exit_code(&all, interrupted)
}
