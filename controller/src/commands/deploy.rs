//! `deploy`, `rollback` and `plan --deploy`. The decisions are the core's
//! (`plan::deploy`, `plan::rollout`); the per-instance work is `play::deploy`; this module
//! looks at what exists, adds the containers tied to a replaced one, and runs the rollout.

use std::sync::atomic::AtomicUsize;

use maestro_core::plan::{Step, Unavailable};
use maestro_core::spec::{previous_name, retiring_name, swapping_name};

use super::*;
use crate::cli::RolloutArgs;
use crate::play::deploy::{self as rollout, Rollout};

pub(super) struct Options {
    pub rollout: RolloutArgs,
    pub pull: PullPolicy,
    pub max_failures: usize,
    pub rolled_back: bool,
}

/// A rollout worked out: each row's step (or why it could not be worked out), its batch
/// and what it waits for.
struct Planned {
    steps: Vec<Result<Step, EngineError>>,
    batches: Vec<Option<usize>>,
    waits: Vec<Vec<usize>>,
}

fn min_ready(args: RolloutArgs) -> Option<Duration> {
    Some(Duration::from_secs_f64(args.min_ready))
}

/// Whether the container of `other` is tied to instance `id`'s container: it shares its
/// network namespace (`net: container:NAME`), takes its volumes or links to it, so it must
/// be recreated when that container is replaced.
fn tied(env: &Environment, other: InstanceId, id: InstanceId) -> bool {
    let name = &env.instance(id).name;
    let o = env.instance(other);
    o.net.as_deref() == Some(&format!("container:{name}"))
        || o.volumes_from.contains(&id)
        || o.links.iter().any(|(container, _)| container == name)
}

/// Each row's service, and how many instances each service has (what `N%` is of).
fn services_and_sizes(env: &Environment, selection: &[InstanceId]) -> (Vec<usize>, Vec<usize>) {
    let services = selection
        .iter()
        .map(|&id| env.instance(id).service.0)
        .collect();
    let mut sizes = vec![0; env.services.len()];
    for instance in &env.instances {
        sizes[instance.service.0] += 1;
    }
    (services, sizes)
}

async fn plan_rollout<E: Engine>(
    ctx: &Context<E>,
    deps: &Dependencies,
    select: &Select,
    selection: &[InstanceId],
    unavailable: Unavailable,
    rolled_back: bool,
) -> Planned {
    let mut steps: Vec<Result<Step, EngineError>> =
        futures_util::future::join_all(selection.iter().map(|&id| async move {
            let instance = ctx.env.instance(id);
            let engine = &ctx.engines[instance.ship.0];
            let current = engine.inspect(&instance.name).await?;
            let previous = engine.inspect(&previous_name(&instance.name)).await?;
            let retiring = engine.inspect(&retiring_name(&instance.name)).await?;
            let current = current.map(|c| c.existing(&ctx.env, id));
            let spec = ctx.spec(id, current.as_ref().and_then(tasks::secrets_salt_of));
            Ok(maestro_core::plan::deploy(
                &spec,
                current.as_ref(),
                // The previous generation's secrets were salted otherwise.
                previous
                    .map(|p| {
                        ctx.secrets
                            .comparable(p.existing(&ctx.env, id), instance, &spec)
                    })
                    .as_ref(),
                retiring.is_some(),
                ctx.images.id(instance.ship.0, &instance.image.name),
                rolled_back,
            ))
        }))
        .await;
    let mut waits = if select.ignore_dependencies {
        vec![Vec::new(); selection.len()]
    } else {
        deps.within(selection, Direction::Start)
    };
    let replaced = |step: &Result<Step, EngineError>| matches!(step, Ok(s) if matches!(s.action, Action::Replace | Action::Recreate | Action::Create));
    // Containers tied to a replaced one are replaced after it, until nothing changes
    // (a chain of ties).
    let mut changed = true;
    while changed {
        changed = false;
        for r in 0..selection.len() {
            if !replaced(&steps[r]) {
                continue;
            }
            for o in 0..selection.len() {
                if o == r || !tied(&ctx.env, selection[o], selection[r]) {
                    continue;
                }
                if !waits[o].contains(&r) {
                    waits[o].push(r);
                    changed = true;
                }
                if matches!(&steps[o], Ok(s) if s.action == Action::Leave) {
                    steps[o] = Ok(Step {
                        action: Action::Replace,
                        reason: format!(
                            "tied to {}, which is replaced",
                            ctx.env.instance(selection[r]).name
                        ),
                    });
                    changed = true;
                }
            }
        }
    }
    let (services, sizes) = services_and_sizes(&ctx.env, selection);
    // Only a running container taken down is out of service for a while.
    let out_of_service: Vec<bool> = steps
        .iter()
        .map(|s| matches!(s, Ok(s) if s.action == Action::Replace))
        .collect();
    let (waits, batches) =
        maestro_core::plan::rollout(&services, &out_of_service, &sizes, unavailable, waits);
    Planned {
        steps,
        batches,
        waits,
    }
}

/// `plan --deploy` and `deploy --dry-run`.
pub(super) async fn show<E: Engine>(
    ctx: &Context<E>,
    deps: &Dependencies,
    select: &Select,
    selection: &[InstanceId],
    args: RolloutArgs,
    rolled_back: bool,
    json: bool,
) -> u8 {
    let scope = OrphanScope::of(&ctx.env, select);
    let (planned, (orphans, orphans_ok)) = futures_util::future::join(
        plan_rollout(
            ctx,
            deps,
            select,
            selection,
            args.max_unavailable,
            rolled_back,
        ),
        super::plan::orphan_rows(ctx, &scope, "deploy"),
    )
    .await;
    let mut code = if orphans_ok { 0 } else { EXIT_FAILURE };
    let mut rows: Vec<[String; 5]> = selection
        .iter()
        .enumerate()
        .map(|(row, &id)| {
            let instance = ctx.env.instance(id);
            let ship = ctx.env.ship(instance.ship).name.clone();
            let batch = planned.batches[row].map_or("-".to_owned(), |b| b.to_string());
            match &planned.steps[row] {
                Ok(s) => [
                    instance.name.clone(),
                    ship,
                    s.action.as_str().to_owned(),
                    batch,
                    s.reason.clone(),
                ],
                Err(e) => {
                    code = EXIT_FAILURE;
                    [
                        instance.name.clone(),
                        ship,
                        "unknown".into(),
                        batch,
                        e.to_string(),
                    ]
                }
            }
        })
        .collect();
    rows.extend(
        orphans
            .into_iter()
            .map(|(i, s, a, r)| [i, s, a, "-".into(), r]),
    );
    if json {
        let value: Vec<_> = rows
            .iter()
            .map(|[i, s, a, b, r]| serde_json::json!({"instance": i, "ship": s, "action": a, "batch": b.parse::<usize>().ok(), "reason": r}))
            .collect();
        let _ = output::print(&format!("{}\n", serde_json::Value::Array(value)));
        return code;
    }
    let width = |n: usize, title: &str| {
        rows.iter()
            .map(|r| r[n].chars().count())
            .max()
            .unwrap_or(0)
            .max(title.len())
    };
    let (wi, ws, wa) = (width(0, "INSTANCE"), width(1, "SHIP"), width(2, "ACTION"));
    let mut text = format!(
        "{:wi$}  {:ws$}  {:wa$}  BATCH  WHY\n",
        "INSTANCE", "SHIP", "ACTION"
    );
    for [i, s, a, b, r] in &rows {
        text.push_str(&format!("{i:wi$}  {s:ws$}  {a:wa$}  {b:5}  {r}\n"));
    }
    let _ = output::print(&text);
    code
}

pub(super) async fn deploy<E: Engine>(
    ctx: &Context<E>,
    deps: &Dependencies,
    select: &Select,
    selection: &[InstanceId],
    options: Options,
    readiness: Settings,
) -> u8 {
    let ctx = match prepare_images(ctx, selection, select, options.pull).await {
        Ok(ctx) => ctx,
        Err(code) => return code,
    };
    let planned = plan_rollout(
        &ctx,
        deps,
        select,
        selection,
        options.rollout.max_unavailable,
        options.rolled_back,
    )
    .await;
    let touched: Vec<InstanceId> = selection
        .iter()
        .zip(&planned.steps)
        .filter(|(_, s)| !matches!(s, Ok(s) if matches!(s.action, Action::Leave | Action::Held)))
        .map(|(&id, _)| id)
        .collect();
    let ctx = with_handshake(&ctx, &touched, readiness).await;
    // The containers of later batches and levels are created while earlier ones roll.
    let slots = play::ahead::Slots::new(selection.len());
    let replaced = planned
        .steps
        .iter()
        .map(|s| matches!(s, Ok(s) if matches!(s.action, Action::Replace | Action::Create)))
        .collect();
    let ahead: Arc<dyn play::Ahead> = Arc::new(play::ahead::Creates {
        ctx: ctx.clone(),
        selection: selection.to_vec(),
        slots: slots.clone(),
        under: play::ahead::Under::Staged(replaced),
    });
    let settings = Rollout {
        start: StartOptions {
            refresh_images: false,
            reuse: false,
            min_ready: min_ready(options.rollout),
        },
        max_failures: options.max_failures,
        failures: Arc::new(AtomicUsize::new(0)),
        ahead: Some(slots),
    };
    let steps = Arc::new(planned.steps);
    let (outcomes, interrupted) = run_play_with(
        &ctx,
        "deploy",
        selection,
        select.concurrency,
        planned.waits,
        Some(ahead),
        |ctx, row, id| {
            let steps = steps.clone();
            let settings = settings.clone();
            async move {
                let step = match &steps[row] {
                    Ok(step) => step.clone(),
                    Err(e) => return Outcome::Failed(play::Failure::new(e.to_string())),
                };
                match step.action {
                    Action::Leave => Outcome::Done(step.reason),
                    Action::Held => Outcome::Warning(step.reason),
                    Action::Conflict => Outcome::Failed(play::Failure::new(step.reason)),
                    Action::Replace | Action::Create => {
                        rollout::replace(ctx, row, id, settings).await
                    }
                    _ => tasks::start(ctx, row, id, settings.start).await,
                }
            }
        },
    )
    .await;
    exit_code(&outcomes, interrupted)
}

pub(super) async fn rollback<E: Engine>(
    ctx: &Context<E>,
    deps: &Dependencies,
    select: &Select,
    selection: &[InstanceId],
    args: RolloutArgs,
) -> u8 {
    // Only instances with a kept generation (or a swap to finish, or an interrupted
    // deploy to undo) are rolled back; none whose names hold a container maestro created
    // for something else (a conflict).
    let kept: Vec<Result<bool, String>> =
        futures_util::future::join_all(selection.iter().map(|&id| async move {
            let instance = ctx.env.instance(id);
            let engine = &ctx.engines[instance.ship.0];
            let names = [
                instance.name.clone(),
                previous_name(&instance.name),
                swapping_name(&instance.name),
                retiring_name(&instance.name),
            ];
            let mut found = Vec::new();
            for name in names {
                let observed = engine.inspect(&name).await.map_err(|e| e.to_string())?;
                if let Some(maestro_core::plan::Owner::Conflict(why)) =
                    observed.as_ref().map(|o| o.owner(&ctx.env, id))
                {
                    return Err(format!(
                        "the container named {name} {why}: maestro leaves it alone; remove or rename it"
                    ));
                }
                found.push(observed.is_some());
            }
            Ok(found[1] || found[2] || found[3])
        }))
        .await;
    if kept.iter().all(|k| matches!(k, Ok(false))) {
        output::eprint(
            "error: nothing to roll back: no selected instance has a previous generation kept (deploy keeps one)\n",
        );
        return EXIT_FAILURE;
    }
    let (services, sizes) = services_and_sizes(&ctx.env, selection);
    let swapped: Vec<bool> = kept.iter().map(|k| matches!(k, Ok(true))).collect();
    let waits = if select.ignore_dependencies {
        vec![Vec::new(); selection.len()]
    } else {
        deps.within(selection, Direction::Start)
    };
    let (waits, _) =
        maestro_core::plan::rollout(&services, &swapped, &sizes, args.max_unavailable, waits);
    let settings = Rollout {
        start: StartOptions {
            refresh_images: false,
            reuse: false,
            min_ready: min_ready(args),
        },
        max_failures: 0,
        failures: Arc::new(AtomicUsize::new(0)),
        ahead: None,
    };
    let kept = Arc::new(kept);
    let (outcomes, interrupted) = run_play_with(
        ctx,
        "rollback",
        selection,
        select.concurrency,
        waits,
        None,
        |ctx, row, id| {
            let kept = kept.clone();
            let settings = settings.clone();
            async move {
                match &kept[row] {
                    Ok(true) => rollout::rollback(ctx, row, id, settings).await,
                    Ok(false) => Outcome::Skipped("no previous generation kept".into()),
                    Err(e) => Outcome::Failed(play::Failure::new(e.clone())),
                }
            }
        },
    )
    .await;
    exit_code(&outcomes, interrupted)
}
