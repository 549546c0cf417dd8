//! The play commands: turn the command line into a selection and a play, run it against
//! the ships' engines, and give the exit code. Thin: ordering comes from the core's
//! graph, per-instance work from `play::tasks`, output from `output`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use maestro_core::graph::{Dependencies, Direction, SelectError, SelectOptions};
use maestro_core::model::{Environment, InstanceId, LifecycleState};
use maestro_core::plan::Action;
use maestro_core::spec::container_spec;

use crate::audit::{Audit, Phase};
use crate::cli::{Command, Select};
use crate::credentials::DockerConfig;
use crate::engine::docker::DockerEngine;
use crate::engine::{Engine, EngineError, Observed};
use crate::output;
use crate::output::events::{Mode, Printer};
use crate::play::images::{self, PullPolicy, Resolved};
use crate::play::tasks::{self, Context, StartOptions};
use crate::play::{self, Event, Outcome};
use crate::readiness::{Handshake, Listen, Settings};

mod deploy;
pub mod lock;
mod logs;
mod orphans;
use orphans::OrphanScope;
mod plan;
pub use plan::PlanKind;
mod restart;
mod start_stop;
mod status;

pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_INVALID: u8 = 2;
pub const EXIT_INTERRUPTED: u8 = 130;

/// Runs a play command; returns the exit code.
pub fn run(
    env: Environment,
    base_dir: std::path::PathBuf,
    command: Command,
    json: bool,
    readiness: Settings,
) -> u8 {
    // One thread: a play waits on engines, and the work between their answers is small.
    // Two workers spent about 30% more CPU per instance waking and stealing from each other,
    // for no shorter play (bench/README, `scale.py`, same binary: `start` of 20,000
    // instances on 100 simulated ships, 0.443 and 0.387 -> 0.342 and 0.285 ms of CPU each,
    // 11.7 s either way; on 1,000 ships every play shorter). It needs connections bounded
    // by the open-file limit (`engine::files`): busy, one thread gives connections back
    // later, and unbounded pools then opened more than the process could hold. Loading,
    // before this, has threads of its own; blocking work goes to `spawn_blocking`.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            output::eprint(&format!("error: cannot start the runtime: {e}\n"));
            return EXIT_FAILURE;
        }
    };
    let env = Arc::new(env);
    let shares = crate::engine::files::shares(&env.ships, crate::engine::files::limit());
    if let Some(warning) = &shares.warning {
        output::eprint(&format!("warning: {warning}\n"));
    }
    let engines: Arc<Vec<Arc<DockerEngine>>> = Arc::new(
        env.ships
            .iter()
            .zip(shares.connections)
            .map(|(s, n)| Arc::new(DockerEngine::new(s.clone(), base_dir.clone(), n)))
            .collect(),
    );
    let http = Arc::new(crate::http::Settings::from_env(base_dir.clone()));
    runtime.block_on(dispatch(
        env, engines, command, json, readiness, http, &base_dir,
    ))
}

async fn dispatch<E: Engine + crate::lock::LockStore>(
    env: Arc<Environment>,
    engines: Arc<Vec<Arc<E>>>,
    command: Command,
    json: bool,
    readiness: Settings,
    http: Arc<crate::http::Settings>,
    base_dir: &std::path::Path,
) -> u8 {
    let deps = Dependencies::new(&env);
    let printer = Printer::new(Mode::detect(json));
    let process_env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    // Tasks that can undo their work (deploy, rollback) learn of Ctrl-C through this; the
    // scheduler hears it too and starts nothing new.
    let (interrupt, interrupted) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = interrupt.send(true);
        }
    });
    let ctx = Context {
        env: env.clone(),
        engines,
        docker_config: Arc::new(DockerConfig::load(&process_env)),
        reporter: printer.reporter(),
        handshake: None,
        images: Arc::new(Resolved::default()),
        interrupted,
        http,
        secrets: Arc::default(),
        ahead: None,
        listed: Arc::default(),
    };
    // The plays that create containers, and their plans, read the secrets of what they
    // select before anything else (a missing one fails them before anything is made).
    let with_secrets = |selection: &[InstanceId]| {
        let ctx = ctx.clone();
        let selection = selection.to_vec();
        let process_env = &process_env;
        async move {
            let reader = crate::secrets::Reader {
                base_dir,
                process_env,
                timeout: crate::secrets::COMMAND_TIMEOUT,
            };
            match crate::secrets::read(&ctx.env, &selection, &reader).await {
                Ok(values) => Ok(Context {
                    secrets: Arc::new(values),
                    ..ctx
                }),
                Err(errors) => {
                    for e in errors {
                        output::eprint(&format!("error: {e}\n"));
                    }
                    Err(EXIT_FAILURE)
                }
            }
        }
    };
    match command {
        Command::Status {
            select,
            full,
            show_hosts,
        } => {
            let Some(selection) = choose(&env, &deps, &select, Direction::Start, true, false, true)
            else {
                return EXIT_INVALID;
            };
            let scope = OrphanScope::of(&env, &select);
            status::status(&ctx, &selection, &scope, show_hosts, full, json).await
        }
        Command::Plan {
            select,
            deploy: true,
            rollout,
            ..
        } => {
            let Some(selection) =
                choose(&env, &deps, &select, Direction::Start, true, false, false)
            else {
                return EXIT_INVALID;
            };
            let ctx = match with_secrets(&selection).await {
                Ok(ctx) => ctx,
                Err(code) => return code,
            };
            let ctx = lookup_images(&ctx, &selection).await;
            deploy::show(&ctx, &deps, &select, &selection, rollout, false, json).await
        }
        Command::Deploy {
            select,
            pull,
            rollout,
            max_failures,
            rolled_back,
            dry_run,
        } => {
            let Some(selection) =
                choose(&env, &deps, &select, Direction::Start, true, false, false)
            else {
                return EXIT_INVALID;
            };
            let ctx = match with_secrets(&selection).await {
                Ok(ctx) => ctx,
                Err(code) => return code,
            };
            if dry_run {
                let ctx = lookup_images(&ctx, &selection).await;
                return deploy::show(&ctx, &deps, &select, &selection, rollout, rolled_back, json)
                    .await;
            }
            let play = deploy::deploy(
                &ctx,
                &deps,
                &select,
                &selection,
                deploy::Options {
                    rollout,
                    pull,
                    max_failures,
                    rolled_back,
                },
                readiness,
            );
            lock::locked(&env, &ctx.engines, &selection, play).await
        }
        Command::Rollback { select, rollout } => {
            let Some(selection) =
                choose(&env, &deps, &select, Direction::Start, true, false, false)
            else {
                return EXIT_INVALID;
            };
            let play = deploy::rollback(&ctx, &deps, &select, &selection, rollout);
            lock::locked(&env, &ctx.engines, &selection, play).await
        }
        Command::Plan {
            select,
            restart,
            only_if_changed,
            ..
        } => {
            let (direction, needs_all) = if restart {
                (Direction::Stop, true)
            } else {
                (Direction::Start, false)
            };
            let Some(selection) = choose(&env, &deps, &select, direction, true, needs_all, false)
            else {
                return EXIT_INVALID;
            };
            let ctx = match with_secrets(&selection).await {
                Ok(ctx) => ctx,
                Err(code) => return code,
            };
            let kind = if restart {
                PlanKind::Restart { only_if_changed }
            } else {
                PlanKind::Start { reuse: false }
            };
            let scope = OrphanScope::of(&env, &select);
            plan::show_plan(&ctx, &selection, &scope, kind, json).await
        }
        Command::Start {
            select,
            images,
            dry_run,
        } => {
            let options = StartOptions {
                refresh_images: false,
                reuse: images.reuse,
                min_ready: None,
            };
            let Some(selection) =
                choose(&env, &deps, &select, Direction::Start, true, false, false)
            else {
                return EXIT_INVALID;
            };
            let ctx = match with_secrets(&selection).await {
                Ok(ctx) => ctx,
                Err(code) => return code,
            };
            if dry_run {
                return plan::show_plan(
                    &ctx,
                    &selection,
                    &OrphanScope::of(&env, &select),
                    PlanKind::Start {
                        reuse: images.reuse,
                    },
                    json,
                )
                .await;
            }
            lock::locked(&env, &ctx.engines, &selection, async {
                // Every image the play needs, on every ship, before any container is
                // touched.
                let policy = if images.refresh_images {
                    PullPolicy::Always
                } else {
                    PullPolicy::Missing
                };
                // Which instances have no container yet, looked up once per ship while
                // the images are prepared.
                let (prepared, listed) = tokio::join!(
                    prepare_images(&ctx, &selection, &select, policy),
                    list_containers(&ctx, &selection)
                );
                let ctx = match prepared {
                    Ok(ctx) => ctx,
                    Err(code) => return code,
                };
                let ctx = with_handshake(&ctx, &selection, readiness).await;
                // Later levels' containers are created while earlier levels come up.
                let slots = play::ahead::Slots::new(selection.len());
                let ctx = Context {
                    ahead: Some(slots.clone()),
                    listed,
                    ..ctx
                };
                let ahead: Arc<dyn play::Ahead> = Arc::new(play::ahead::Creates {
                    ctx: ctx.clone(),
                    selection: selection.clone(),
                    slots,
                    under: play::ahead::Under::Name,
                });
                let waits = if select.ignore_dependencies {
                    vec![Vec::new(); selection.len()]
                } else {
                    deps.within(&selection, Direction::Start)
                };
                let (outcomes, interrupted) = run_play_with(
                    &ctx,
                    "start",
                    &selection,
                    select.concurrency,
                    waits,
                    Some(ahead),
                    move |ctx, row, id| tasks::start(ctx, row, id, options),
                )
                .await;
                exit_code(&outcomes, interrupted)
            })
            .await
        }
        Command::Stop { select } => start_stop::stop_like(&ctx, &deps, &select, false).await,
        Command::Kill { select } => start_stop::stop_like(&ctx, &deps, &select, true).await,
        Command::Clean {
            select,
            orphans: true,
        } => orphans::clean(&ctx, &select).await,
        Command::Clean { select, .. } => {
            let Some(selection) =
                choose(&env, &deps, &select, Direction::Start, true, false, false)
            else {
                return EXIT_INVALID;
            };
            lock::locked(&env, &ctx.engines, &selection, async {
                // What exists, once per ship: generations not there are not looked for.
                let ctx = Context {
                    listed: list_containers(&ctx, &selection).await,
                    ..ctx.clone()
                };
                let (outcomes, interrupted) = run_play(
                    &ctx,
                    &deps,
                    "clean",
                    &selection,
                    &select,
                    None,
                    tasks::clean,
                )
                .await;
                exit_code(&outcomes, interrupted)
            })
            .await
        }
        Command::Pull {
            select,
            refresh_images,
        } => {
            let Some(selection) =
                choose(&env, &deps, &select, Direction::Start, true, false, false)
            else {
                return EXIT_INVALID;
            };
            // MaestroNG's `pull` always pulls (that is how a moving tag is refreshed);
            // -r is accepted for its command lines.
            let _ = refresh_images;
            match prepare_images(&ctx, &selection, &select, PullPolicy::Always).await {
                Ok(_) => 0,
                Err(code) => code,
            }
        }
        Command::Restart {
            select,
            images,
            step_delay,
            stop_start_delay,
            only_if_changed,
            dry_run,
        } => {
            let Some(selection) = choose(&env, &deps, &select, Direction::Stop, false, true, false)
            else {
                return EXIT_INVALID;
            };
            let ctx = match with_secrets(&selection).await {
                Ok(ctx) => ctx,
                Err(code) => return code,
            };
            if dry_run {
                return plan::show_plan(
                    &ctx,
                    &selection,
                    &OrphanScope::of(&env, &select),
                    PlanKind::Restart { only_if_changed },
                    json,
                )
                .await;
            }
            let taken = selection.clone();
            let play = restart::restart(
                &ctx,
                &deps,
                &select,
                selection,
                restart::Options {
                    start: StartOptions {
                        refresh_images: false,
                        reuse: images.reuse,
                        min_ready: None,
                    },
                    pull: images.refresh_images,
                    step_delay: Duration::from_secs(step_delay),
                    stop_start_delay: Duration::from_secs(stop_start_delay),
                    only_if_changed,
                },
                readiness,
            );
            lock::locked(&env, &ctx.engines, &taken, play).await
        }
        Command::Logs {
            things,
            follow,
            lines,
            raw,
        } => logs::logs(&ctx, &things, follow, lines, raw).await,
        Command::Lock { action } => lock::lock_command(&env, &ctx.engines, action, json).await,
        Command::Config | Command::Deptree { .. } | Command::Completions { .. } => {
            unreachable!("main handles the commands that are not plays")
        }
    }
}

/// The selection of a play; `None` after reporting why there is none.
fn choose(
    env: &Environment,
    deps: &Dependencies,
    select: &Select,
    direction: Direction,
    expand_services: bool,
    needs_all: bool,
    include_omitted: bool,
) -> Option<Vec<InstanceId>> {
    let options = SelectOptions {
        things: &select.things,
        expand_services: expand_services || select.expand_services,
        all: select.all,
        needs_all_for_everything: needs_all,
        with_dependencies: select.with_dependencies,
        ignore_dependencies: select.ignore_dependencies || include_omitted,
        include_omitted,
        container_filter: select.container_filter.as_deref(),
        ship_filter: select.ship_filter.as_deref(),
    };
    match deps.selection(env, &options, direction) {
        Ok(selection) => Some(selection),
        Err(e) => {
            let help = match e {
                SelectError::NothingNamed => {
                    "\n  = help: name instances or services, or pass -a (--all) to act on all of them"
                }
                _ => "",
            };
            output::eprint(&format!("error: {e}{help}\n"));
            None
        }
    }
}

/// The context of a play that creates containers: with the readiness handshake served
/// for the ships of `selection`, unless the operator turned it off.
async fn with_handshake<E: Engine>(
    ctx: &Context<E>,
    selection: &[InstanceId],
    readiness: Settings,
) -> Context<E> {
    if readiness.listen == Listen::Off {
        return ctx.clone();
    }
    let ships = selection.iter().map(|&i| ctx.env.instance(i).ship.0);
    let (handshake, warnings) =
        Handshake::serve(&ctx.env.ships, ships, readiness.listen, readiness.tls).await;
    for warning in warnings {
        output::eprint(&format!("warning: {warning}\n"));
    }
    Context {
        handshake: Some(Arc::new(handshake)),
        ..ctx.clone()
    }
}

async fn run_play<E, F, Fut>(
    ctx: &Context<E>,
    deps: &Dependencies,
    name: &'static str,
    selection: &[InstanceId],
    select: &Select,
    direction: Option<Direction>,
    task: F,
) -> (Vec<Outcome>, bool)
where
    E: Engine,
    F: Fn(Context<E>, usize, InstanceId) -> Fut,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let waits = match direction {
        Some(d) if !select.ignore_dependencies => deps.within(selection, d),
        _ => vec![Vec::new(); selection.len()],
    };
    run_play_with(ctx, name, selection, select.concurrency, waits, None, task).await
}

/// Each ship's containers named after the selected instances or their generations,
/// listed once per ship (see [`Context::listed`]); a ship whose list fails tells nothing
/// (its instances are looked at one by one, as without a list).
async fn list_containers<E: Engine>(
    ctx: &Context<E>,
    selection: &[InstanceId],
) -> Arc<tasks::Listed> {
    let mut by_ship: std::collections::BTreeMap<usize, Vec<String>> = Default::default();
    for &id in selection {
        let instance = ctx.env.instance(id);
        by_ship
            .entry(instance.ship.0)
            .or_default()
            .push(instance.name.clone());
    }
    let lists =
        futures_util::future::join_all(by_ship.into_iter().map(|(ship, names)| async move {
            (ship, ctx.engines[ship].list(&ctx.env.name, &names).await)
        }))
        .await;
    let mut listed = vec![None; ctx.env.ships.len()];
    for (ship, found) in lists {
        if let Ok(found) = found {
            listed[ship] = Some(found.into_iter().map(|o| o.name).collect());
        }
    }
    Arc::new(tasks::Listed::new(listed))
}

/// [`run_play`] with the waits given: `waits[row]` lists the rows `row` waits for; with
/// `ahead`, work done ahead of the rows' turns (see [`play::schedule_ahead`]).
async fn run_play_with<E, F, Fut>(
    ctx: &Context<E>,
    name: &'static str,
    selection: &[InstanceId],
    concurrency: Option<usize>,
    waits: Vec<Vec<usize>>,
    ahead: Option<Arc<dyn play::Ahead>>,
    task: F,
) -> (Vec<Outcome>, bool)
where
    E: Engine,
    F: Fn(Context<E>, usize, InstanceId) -> Fut,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let audit = Audit::new(ctx.env.clone(), ctx.http.clone());
    audit.play(name, selection, Phase::Action, None).await;
    // Each instance's task is audited too, under the play's name (a restart's stop and
    // start are one "restarting"), at MaestroNG's debug level.
    let per_instance = audit.follows_instances().then(|| audit.clone());
    let began = Instant::now();
    let rows = play::rows(&ctx.env, selection);
    let names: Vec<String> = rows.iter().map(|r| r.instance.clone()).collect();
    (ctx.reporter)(Event::Began { play: name, rows });
    // A ship's own limit (`max_operations`) applies on top of the play's `-c`.
    let limits = play_limits(ctx, selection.iter().map(|&i| ctx.env.instance(i).ship.0));
    let (outcomes, interrupted) = play::schedule_ahead(
        &names,
        &waits,
        concurrency,
        &limits,
        &ctx.reporter,
        ahead,
        |row| {
            let id = selection[row];
            let work = task(ctx.clone(), row, id);
            let audit = per_instance.clone();
            async move {
                let Some(audit) = audit else {
                    return work.await;
                };
                audit.instance(name, id, Phase::Action, None).await;
                let outcome = work.await;
                match &outcome {
                    Outcome::Failed(f) => {
                        audit
                            .instance(name, id, Phase::Error, Some(&f.message))
                            .await
                    }
                    o if o.is_success() => audit.instance(name, id, Phase::Success, None).await,
                    _ => {}
                }
                outcome
            }
        },
    )
    .await;
    (ctx.reporter)(Event::Ended {
        play: name,
        elapsed: began.elapsed(),
        interrupted,
    });
    audit.show_held();
    let failure = outcomes.iter().find_map(|o| match o {
        Outcome::Failed(f) => Some(f.message.clone()),
        _ => None,
    });
    match (&failure, interrupted) {
        (None, false) => audit.play(name, selection, Phase::Success, None).await,
        (_, true) => {
            audit
                .play(name, selection, Phase::Error, Some("interrupted"))
                .await
        }
        (Some(m), false) => audit.play(name, selection, Phase::Error, Some(m)).await,
    }
    (outcomes, interrupted)
}

/// Prepares the images of `selection` (see [`crate::play::images`]): looks each distinct
/// image up once per ship, and runs a `pull` play for those `policy` says to pull. Returns
/// the context with the resolved ids, or the exit code when an image could not be had
/// (then no container was touched).
async fn prepare_images<E: Engine>(
    ctx: &Context<E>,
    selection: &[InstanceId],
    select: &Select,
    policy: PullPolicy,
) -> Result<Context<E>, u8> {
    let wanted = images::wanted(ctx, selection);
    let resolved = Arc::new(std::sync::Mutex::new(Resolved::default()));
    // Looked up first: a lookup is cheap and says nothing worth a row, and a ship that
    // cannot be reached fails its own instances later, as in every play, instead of the
    // whole play here. At most `max_operations` at once per ship, as every operation: a
    // ship of hundreds of distinct images would otherwise get hundreds of connections at
    // once (and this process run out of file descriptors over many ships).
    let limits = ship_limits(ctx);
    let found = futures_util::future::join_all(wanted.into_iter().map(|w| {
        let limit = limits[w.ship].clone();
        async move {
            let _permit = match &limit {
                Some(limit) => limit.acquire().await.ok(),
                None => None,
            };
            let info = ctx.engines[w.ship].image(&w.image).await;
            (w, info)
        }
    }))
    .await;
    // What ships already have decides what the others pull, unless the play refreshes
    // every tag.
    let pins = Arc::new(if policy == PullPolicy::Always {
        images::Pins::default()
    } else {
        images::Pins::from_present(
            found
                .iter()
                .filter_map(|(w, info)| Some((w.image.as_str(), info.as_ref().ok()?.as_ref()?))),
        )
    });
    let mut to_pull = Vec::new();
    for (w, info) in found {
        match info {
            // A ship that cannot be reached, or does not answer in time, fails its own
            // instances later (their own requests are bounded too).
            Err(EngineError::Unreachable { .. } | EngineError::NoAnswer { .. }) => {}
            Ok(Some(info)) if policy != PullPolicy::Always => resolved
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(w.ship, &w.image, Some(info.id)),
            _ => to_pull.push(w),
        }
    }
    if !to_pull.is_empty() {
        let audit = Audit::new(ctx.env.clone(), ctx.http.clone());
        audit.play("pull", selection, Phase::Action, None).await;
        let began = Instant::now();
        let rows = images::rows(ctx, &to_pull);
        let names: Vec<String> = rows
            .iter()
            .map(|r| format!("{} on {}", r.instance, r.ship))
            .collect();
        (ctx.reporter)(Event::Began { play: "pull", rows });
        let limits = play_limits(ctx, to_pull.iter().map(|w| w.ship));
        let (outcomes, interrupted) = play::schedule(
            &names,
            &vec![Vec::new(); to_pull.len()],
            select.concurrency,
            &limits,
            &ctx.reporter,
            |row| {
                images::prepare(
                    ctx.clone(),
                    row,
                    to_pull[row].clone(),
                    policy,
                    resolved.clone(),
                    pins.clone(),
                )
            },
        )
        .await;
        (ctx.reporter)(Event::Ended {
            play: "pull",
            elapsed: began.elapsed(),
            interrupted,
        });
        let failure = outcomes.iter().find_map(|o| match o {
            Outcome::Failed(f) => Some(f.message.clone()),
            _ => None,
        });
        if interrupted {
            audit
                .play("pull", selection, Phase::Error, Some("interrupted"))
                .await;
            return Err(EXIT_INTERRUPTED);
        }
        if let Some(message) = failure {
            audit
                .play("pull", selection, Phase::Error, Some(&message))
                .await;
            return Err(EXIT_FAILURE);
        }
        audit.play("pull", selection, Phase::Success, None).await;
    }
    let resolved = std::mem::take(&mut *resolved.lock().unwrap_or_else(|e| e.into_inner()));
    let ship_names: Vec<String> = ctx.env.ships.iter().map(|s| s.name.clone()).collect();
    for warning in images::disagreements(&resolved, &ship_names) {
        output::eprint(&format!("warning: {warning}\n"));
    }
    Ok(Context {
        images: Arc::new(resolved),
        ..ctx.clone()
    })
}

/// The context with the id of every image of `selection` on its ship, looked up (each
/// distinct image once per ship, all at once), pulling nothing. A ship that does not
/// answer leaves its images unresolved; its instances' own operations then say why.
async fn lookup_images<E: Engine>(ctx: &Context<E>, selection: &[InstanceId]) -> Context<E> {
    // At most `max_operations` at once per ship, as in `prepare_images`.
    let limits = ship_limits(ctx);
    let found =
        futures_util::future::join_all(images::wanted(ctx, selection).into_iter().map(|w| {
            let limit = limits[w.ship].clone();
            async move {
                let _permit = match &limit {
                    Some(limit) => limit.acquire().await.ok(),
                    None => None,
                };
                let id = ctx.engines[w.ship].image_id(&w.image).await;
                (w, id)
            }
        }))
        .await;
    let mut resolved = (*ctx.images).clone();
    for (w, id) in found {
        if let Ok(id) = id {
            resolved.insert(w.ship, &w.image, id);
        }
    }
    Context {
        images: Arc::new(resolved),
        ..ctx.clone()
    }
}

/// The ships' places (each engine's `operations()`: its `max_operations`, or its share of
/// the open files) of a play whose rows run on `row_ships` (ship ids).
fn play_limits<E: Engine>(
    ctx: &Context<E>,
    row_ships: impl Iterator<Item = usize>,
) -> play::ShipLimits {
    play::ShipLimits {
        places: ctx.engines.iter().map(|e| e.operations()).collect(),
        row_ship: row_ships.map(Some).collect(),
    }
}

/// Each ship's limit of simultaneous operations (its engine's `operations()`), by ship id.
fn ship_limits<E: Engine>(ctx: &Context<E>) -> Vec<Option<Arc<tokio::sync::Semaphore>>> {
    ctx.engines
        .iter()
        .map(|e| Some(Arc::new(tokio::sync::Semaphore::new(e.operations()))))
        .collect()
}

fn exit_code(outcomes: &[Outcome], interrupted: bool) -> u8 {
    if interrupted {
        EXIT_INTERRUPTED
    } else if outcomes.iter().all(Outcome::is_success) {
        0
    } else {
        EXIT_FAILURE
    }
}
