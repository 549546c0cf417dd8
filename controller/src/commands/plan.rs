//! `plan`, and the dry runs of `start` and `restart`.

use super::*;

#[derive(Clone, Copy, Debug)]
pub enum PlanKind {
    Start { reuse: bool },
    Restart { only_if_changed: bool },
}

/// What a play would do to each instance and why, asking the engines and touching
/// nothing. All ships are asked at once.
pub(super) async fn plan<E: Engine>(
    ctx: &Context<E>,
    selection: &[InstanceId],
    kind: PlanKind,
) -> Vec<Result<maestro_core::plan::Step, EngineError>> {
    let looked_up;
    let ctx = if selection.iter().all(|&id| {
        let i = ctx.env.instance(id);
        ctx.images.contains(i.ship.0, &i.image.name)
    }) {
        ctx
    } else {
        looked_up = lookup_images(ctx, selection).await;
        &looked_up
    };
    futures_util::future::join_all(selection.iter().map(|&id| async move {
        let instance = ctx.env.instance(id);
        let observed = ctx.engines[instance.ship.0].inspect(&instance.name).await?;
        let existing = observed.map(|o| o.existing(&ctx.env, id));
        let spec = ctx.spec(id, existing.as_ref().and_then(tasks::secrets_salt_of));
        let image_now = ctx.images.id(instance.ship.0, &instance.image.name);
        Ok(match kind {
            PlanKind::Start { reuse } => {
                maestro_core::plan::start(&spec, existing.as_ref(), image_now, reuse)
            }
            PlanKind::Restart { only_if_changed } => {
                maestro_core::plan::restart(&spec, existing.as_ref(), image_now, only_if_changed)
            }
        })
    }))
    .await
}

/// The rows a plan shows for the orphans in `scope`: `orphan` and what `play` does with
/// them (nothing); a ship that could not be listed, `unknown`. The flag: whether every
/// ship could be.
pub(super) async fn orphan_rows<E: Engine>(
    ctx: &Context<E>,
    scope: &OrphanScope,
    play: &str,
) -> (Vec<(String, String, String, String)>, bool) {
    let (found, failed) = scope.find(ctx).await;
    let ship = |s: maestro_core::model::ShipId| ctx.env.ship(s).name.clone();
    let mut rows: Vec<_> = found
        .into_iter()
        .map(|o| {
            (
                o.container.name.clone(),
                ship(o.ship),
                "orphan".to_owned(),
                format!("{}: {play} leaves it; clean --orphans removes it", o.why),
            )
        })
        .collect();
    let ok = failed.is_empty();
    rows.extend(failed.into_iter().map(|(s, e)| {
        (
            "-".to_owned(),
            ship(s),
            "unknown".to_owned(),
            format!("cannot look for orphans: {e}"),
        )
    }));
    (rows, ok)
}

/// `plan`, `start --dry-run`, `restart --dry-run`: the plan as a table (or JSON), the
/// orphans in `scope` last.
pub(super) async fn show_plan<E: Engine>(
    ctx: &Context<E>,
    selection: &[InstanceId],
    scope: &OrphanScope,
    kind: PlanKind,
    json: bool,
) -> u8 {
    let (steps, (orphans, orphans_ok)) = futures_util::future::join(
        plan(ctx, selection, kind),
        orphan_rows(
            ctx,
            scope,
            match kind {
                PlanKind::Start { .. } => "start",
                PlanKind::Restart { .. } => "restart",
            },
        ),
    )
    .await;
    let mut code = if orphans_ok { 0 } else { EXIT_FAILURE };
    let mut rows: Vec<(String, String, String, String)> = selection
        .iter()
        .zip(&steps)
        .map(|(&id, step)| {
            let instance = ctx.env.instance(id);
            let ship = ctx.env.ship(instance.ship).name.clone();
            match step {
                Ok(s) => (
                    instance.name.clone(),
                    ship,
                    s.action.as_str().to_owned(),
                    s.reason.clone(),
                ),
                Err(e) => {
                    code = EXIT_FAILURE;
                    (
                        instance.name.clone(),
                        ship,
                        "unknown".to_owned(),
                        e.to_string(),
                    )
                }
            }
        })
        .collect();
    rows.extend(orphans);
    if json {
        let value: Vec<_> = rows
            .iter()
            .map(|(i, s, a, r)| serde_json::json!({"instance": i, "ship": s, "action": a, "reason": r}))
            .collect();
        let _ = output::print(&format!("{}\n", serde_json::Value::Array(value)));
    } else {
        let wi = rows
            .iter()
            .map(|r| r.0.len())
            .max()
            .unwrap_or(0)
            .max("INSTANCE".len());
        let ws = rows
            .iter()
            .map(|r| r.1.len())
            .max()
            .unwrap_or(0)
            .max("SHIP".len());
        let mut text = format!("{:wi$}  {:ws$}  {:9} WHY\n", "INSTANCE", "SHIP", "ACTION");
        for (i, s, a, r) in &rows {
            text.push_str(&format!("{i:wi$}  {s:ws$}  {a:9} {r}\n"));
        }
        let _ = output::print(&text);
    }
    code
}
