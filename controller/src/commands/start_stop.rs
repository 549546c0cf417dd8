//! `stop` and `kill`.

use super::*;

pub(super) async fn stop_like<E: Engine + crate::lock::LockStore>(
    ctx: &Context<E>,
    deps: &Dependencies,
    select: &Select,
    kill: bool,
) -> u8 {
    let Some(selection) = choose(&ctx.env, deps, select, Direction::Stop, false, true, false)
    else {
        return EXIT_INVALID;
    };
    let name = if kill { "kill" } else { "stop" };
    lock::locked(&ctx.env, &ctx.engines, &selection, async {
        let (outcomes, interrupted) = run_play(
            ctx,
            deps,
            name,
            &selection,
            select,
            Some(Direction::Stop),
            move |ctx, row, id| tasks::stop(ctx, row, id, kill),
        )
        .await;
        exit_code(&outcomes, interrupted)
    })
    .await
}
