//! The play commands: turn the command line into a selection and a play, run it against
//! the ships' engines, and give the exit code. Thin: ordering comes from the core's
//! graph, per-instance work from `play::tasks`, output from `output`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use maestro_core::graph::{Dependencies, Direction, SelectError, SelectOptions};
use maestro_core::model::{Environment, InstanceId, LifecycleState};
use maestro_core::plan::Action;
use maestro_core::spec::{container_spec, labels};

use crate::audit::{Audit, Phase};
use crate::cli::{Command, Select};
use crate::credentials::DockerConfig;
use crate::engine::docker::DockerEngine;
use crate::engine::{Engine, EngineError, Observed};
use crate::output;
use crate::output::events::{Mode, Printer};
use crate::play::tasks::{self, Context, StartOptions};
use crate::play::{self, Event, Outcome};
use crate::readiness::{Handshake, Listen, Settings};

mod logs;
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
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
    let engines: Arc<Vec<Arc<DockerEngine>>> = Arc::new(
        env.ships
            .iter()
            .map(|s| Arc::new(DockerEngine::new(s.clone(), base_dir.clone())))
            .collect(),
    );
    runtime.block_on(dispatch(env, engines, command, json, readiness))
}

async fn dispatch<E: Engine>(
    env: Arc<Environment>,
    engines: Arc<Vec<Arc<E>>>,
    command: Command,
    json: bool,
    readiness: Settings,
) -> u8 {
    let deps = Dependencies::new(&env);
    let printer = Printer::new(Mode::detect(json));
    let process_env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    let ctx = Context {
        env: env.clone(),
        engines,
        docker_config: Arc::new(DockerConfig::load(&process_env)),
        reporter: printer.reporter(),
        handshake: None,
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
            status::status(&ctx, &selection, show_hosts, full, json).await
        }
        Command::Plan {
            select,
            restart,
            only_if_changed,
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
            let kind = if restart {
                PlanKind::Restart { only_if_changed }
            } else {
                PlanKind::Start { reuse: false }
            };
            plan::show_plan(&ctx, &selection, kind, json).await
        }
        Command::Start {
            select,
            images,
            dry_run,
        } => {
            let options = StartOptions {
                refresh_images: images.refresh_images,
                reuse: images.reuse,
            };
            let Some(selection) =
                choose(&env, &deps, &select, Direction::Start, true, false, false)
            else {
                return EXIT_INVALID;
            };
            if dry_run {
                return plan::show_plan(
                    &ctx,
                    &selection,
                    PlanKind::Start {
                        reuse: images.reuse,
                    },
                    json,
                )
                .await;
            }
            let ctx = with_handshake(&ctx, &selection, readiness).await;
            let (outcomes, interrupted) = run_play(
                &ctx,
                &deps,
                "start",
                &selection,
                &select,
                Some(Direction::Start),
                move |ctx, row, id| tasks::start(ctx, row, id, options),
            )
            .await;
            exit_code(&outcomes, interrupted)
        }
        Command::Stop { select } => start_stop::stop_like(&ctx, &deps, &select, false).await,
        Command::Kill { select } => start_stop::stop_like(&ctx, &deps, &select, true).await,
        Command::Clean { select } => {
            let Some(selection) =
                choose(&env, &deps, &select, Direction::Start, true, false, false)
            else {
                return EXIT_INVALID;
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
            let (outcomes, interrupted) = run_play(
                &ctx,
                &deps,
                "pull",
                &selection,
                &select,
                None,
                |ctx, row, id| tasks::pull(ctx, row, id, refresh_images),
            )
            .await;
            exit_code(&outcomes, interrupted)
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
            if dry_run {
                return plan::show_plan(
                    &ctx,
                    &selection,
                    PlanKind::Restart { only_if_changed },
                    json,
                )
                .await;
            }
            restart::restart(
                &with_handshake(&ctx, &selection, readiness).await,
                &deps,
                &select,
                selection,
                StartOptions {
                    refresh_images: images.refresh_images,
                    reuse: images.reuse,
                },
                Duration::from_secs(step_delay),
                Duration::from_secs(stop_start_delay),
                only_if_changed,
            )
            .await
        }
        Command::Logs {
            things,
            follow,
            lines,
        } => logs::logs(&ctx, &things, follow, lines).await,
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

/// How many operations run at once on a ship without `max_operations`: enough to keep an
/// engine busy, few enough that a play of hundreds of instances does not open hundreds of
/// connections to one ship at once (proxies and `ssh -L` have small listen backlogs).
const SHIP_OPERATIONS: usize = 16;

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
    let audit = Audit::new(&ctx.env);
    audit.play(name, selection, Phase::Action, None).await;
    let began = Instant::now();
    let rows = play::rows(&ctx.env, selection);
    let names: Vec<String> = rows.iter().map(|r| r.instance.clone()).collect();
    (ctx.reporter)(Event::Began { play: name, rows });
    // A ship's own limit (`max_operations`) applies on top of the play's `-c`.
    let ship_limits: Vec<Option<Arc<tokio::sync::Semaphore>>> = ctx
        .env
        .ships
        .iter()
        .map(|s| {
            let limit = s.max_operations.unwrap_or(SHIP_OPERATIONS);
            Some(Arc::new(tokio::sync::Semaphore::new(limit)))
        })
        .collect();
    let row_limits: Vec<_> = selection
        .iter()
        .map(|&i| ship_limits[ctx.env.instance(i).ship.0].clone())
        .collect();
    let waits = match direction {
        Some(d) if !select.ignore_dependencies => deps.within(selection, d),
        _ => vec![Vec::new(); selection.len()],
    };
    let (outcomes, interrupted) = play::schedule(
        &names,
        &waits,
        select.concurrency,
        &row_limits,
        &ctx.reporter,
        |row| task(ctx.clone(), row, selection[row]),
    )
    .await;
    (ctx.reporter)(Event::Ended {
        play: name,
        elapsed: began.elapsed(),
        interrupted,
    });
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

fn exit_code(outcomes: &[Outcome], interrupted: bool) -> u8 {
    if interrupted {
        EXIT_INTERRUPTED
    } else if outcomes.iter().all(Outcome::is_success) {
        0
    } else {
        EXIT_FAILURE
    }
}
