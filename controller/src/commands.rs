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

async fn dispatch<E: Engine + crate::lock::LockStore>(
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
            status(&ctx, &selection, show_hosts, full, json).await
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
            show_plan(&ctx, &selection, kind, json).await
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
                return show_plan(
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
        Command::Stop { select } => stop_like(&ctx, &deps, &select, false).await,
        Command::Kill { select } => stop_like(&ctx, &deps, &select, true).await,
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
                return show_plan(
                    &ctx,
                    &selection,
                    PlanKind::Restart { only_if_changed },
                    json,
                )
                .await;
            }
            restart(
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
        } => logs(&ctx, &things, follow, lines).await,
        Command::Lock { action } => {
            crate::commands_lock::lock_command(&env, &ctx.engines, action, json).await
        }
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

async fn stop_like<E: Engine>(
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
}

#[allow(clippy::too_many_arguments)]
async fn restart<E: Engine>(
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
        let steps = plan(ctx, &selection, PlanKind::Restart { only_if_changed }).await;
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

fn exit_code(outcomes: &[Outcome], interrupted: bool) -> u8 {
    if interrupted {
        EXIT_INTERRUPTED
    } else if outcomes.iter().all(Outcome::is_success) {
        0
    } else {
        EXIT_FAILURE
    }
}

/// `status`: one list call per ship, all ships at once.
async fn status<E: Engine>(
    ctx: &Context<E>,
    selection: &[InstanceId],
    show_hosts: bool,
    full: bool,
    json: bool,
) -> u8 {
    let ships: Vec<usize> = {
        let mut s: Vec<usize> = selection
            .iter()
            .map(|&i| ctx.env.instance(i).ship.0)
            .collect();
        s.sort_unstable();
        s.dedup();
        s
    };
    let lists = futures_util::future::join_all(ships.iter().map(|&s| {
        let engine = ctx.engines[s].clone();
        let name = ctx.env.name.clone();
        async move { (s, engine.list(&name).await) }
    }))
    .await;
    let by_ship: HashMap<usize, Result<HashMap<String, Observed>, EngineError>> = lists
        .into_iter()
        .map(|(s, r)| {
            (
                s,
                r.map(|list| list.into_iter().map(|o| (o.name.clone(), o)).collect()),
            )
        })
        .collect();
    let mut table = Vec::new();
    let mut all_ok = true;
    for &id in selection {
        let instance = ctx.env.instance(id);
        let ship = ctx.env.ship(instance.ship);
        let spec_digest = || {
            container_spec(&ctx.env, id)
                .labels
                .into_iter()
                .find(|(k, _)| k == labels::DIGEST)
                .map(|(_, v)| v)
        };
        let (container, state) = match &by_ship[&instance.ship.0] {
            Err(e) => {
                all_ok = false;
                ("-".to_owned(), format!("unreachable: {e}"))
            }
            Ok(found) => match found.get(&instance.name) {
                None => ("-".to_owned(), "absent".to_owned()),
                Some(o) => {
                    let mut state = if o.running {
                        format!("running ({})", o.status)
                    } else {
                        format!("down ({})", o.status)
                    };
                    if o.digest.is_some() && o.digest != spec_digest() {
                        state.push_str(", outdated");
                    }
                    (tasks::short(&o.id).to_owned(), state)
                }
            },
        };
        table.push((
            instance.name.clone(),
            ctx.env.service(instance.service).name.clone(),
            if show_hosts {
                ship.ip.clone()
            } else {
                ship.name.clone()
            },
            container,
            state,
        ));
    }
    if full {
        // Every running instance's `running` checks, once each, all at once.
        let probes = futures_util::future::join_all(selection.iter().enumerate().map(|(n, &id)| {
            let instance = ctx.env.instance(id);
            let running = matches!(&by_ship[&instance.ship.0], Ok(found) if found.get(&instance.name).is_some_and(|o| o.running));
            async move {
                if !running {
                    return (n, None);
                }
                let checks = instance.lifecycle.get(&LifecycleState::Running).cloned().unwrap_or_default();
                let ship_ip = &ctx.env.ship(instance.ship).ip;
                let env: std::collections::BTreeMap<String, String> = ctx
                    .env
                    .container_env(id)
                    .map(|(k, v)| (k.to_owned(), v.unwrap_or_default().to_owned()))
                    .collect();
                let engine = &ctx.engines[instance.ship.0];
                let mut failures = Vec::new();
                for check in checks.iter().filter_map(crate::play::checks::once) {
                    if let Err(e) = crate::play::checks::run(&check, ship_ip, &instance.name, &env, engine.as_ref()).await {
                        failures.push(e);
                    }
                }
                (n, Some((checks.len(), failures)))
            }
        }))
        .await;
        for (n, probe) in probes {
            match probe {
                Some((0, _)) | None => {}
                Some((_, failures)) if failures.is_empty() => table[n].4.push_str(", checks pass"),
                Some((_, failures)) => {
                    all_ok = false;
                    table[n]
                        .4
                        .push_str(&format!(", checks fail: {}", failures.join("; ")));
                }
            }
        }
    }
    if json {
        let rows: Vec<_> = table
            .iter()
            .map(|(i, s, h, c, st)| serde_json::json!({"instance": i, "service": s, "ship": h, "container": c, "state": st}))
            .collect();
        let _ = output::print(&format!("{}\n", serde_json::Value::Array(rows)));
    } else {
        let w = |f: fn(&(String, String, String, String, String)) -> &String, title: &str| {
            table
                .iter()
                .map(|r| f(r).len())
                .max()
                .unwrap_or(0)
                .max(title.len())
        };
        let (wi, ws, wh, wc) = (
            w(|r| &r.0, "INSTANCE"),
            w(|r| &r.1, "SERVICE"),
            w(|r| &r.2, "SHIP"),
            w(|r| &r.3, "CONTAINER"),
        );
        let mut text = format!(
            "{:wi$}  {:ws$}  {:wh$}  {:wc$}  STATUS\n",
            "INSTANCE", "SERVICE", "SHIP", "CONTAINER"
        );
        for (i, s, h, c, st) in &table {
            text.push_str(&format!("{i:wi$}  {s:ws$}  {h:wh$}  {c:wc$}  {st}\n"));
        }
        let _ = output::print(&text);
    }
    if all_ok { 0 } else { EXIT_FAILURE }
}

/// `logs`: the output of one or more instances; with several, each line is prefixed with
/// the instance's name.
async fn logs<E: Engine>(
    ctx: &Context<E>,
    things: &[String],
    follow: bool,
    lines: Option<u64>,
) -> u8 {
    let selection = match maestro_core::graph::select(&ctx.env, things, true) {
        Ok(s) if !s.is_empty() => s,
        Ok(_) => {
            output::eprint("error: name the instances (or services) whose logs to show\n");
            return EXIT_INVALID;
        }
        Err(e) => {
            output::eprint(&format!("error: {e}\n"));
            return EXIT_INVALID;
        }
    };
    if follow {
        return follow_logs(ctx, &selection, lines).await;
    }
    let prefix = selection.len() > 1;
    let width = selection
        .iter()
        .map(|&i| ctx.env.instance(i).name.len())
        .max()
        .unwrap_or(0);
    let mut code = 0;
    for id in selection {
        let instance = ctx.env.instance(id);
        let engine = &ctx.engines[instance.ship.0];
        match engine.inspect(&instance.name).await {
            Ok(Some(o)) => match engine.logs(&o.id, lines).await {
                Ok(text) => {
                    let mut out = String::new();
                    for line in text {
                        if prefix {
                            out.push_str(&format!("{:width$} | {line}\n", instance.name));
                        } else {
                            out.push_str(&line);
                            out.push('\n');
                        }
                    }
                    let _ = output::print(&out);
                }
                Err(e) => {
                    output::eprint(&format!("error: {}: {e}\n", instance.name));
                    code = EXIT_FAILURE;
                }
            },
            Ok(None) => {
                output::eprint(&format!(
                    "error: {} has no container on ship {}\n",
                    instance.name,
                    ctx.env.ship(instance.ship).name
                ));
                code = EXIT_FAILURE;
            }
            Err(e) => {
                output::eprint(&format!("error: {}: {e}\n", instance.name));
                code = EXIT_FAILURE;
            }
        }
    }
    code
}

#[derive(Clone, Copy, Debug)]
pub enum PlanKind {
    Start { reuse: bool },
    Restart { only_if_changed: bool },
}

/// What a play would do to each instance and why, asking the engines and touching
/// nothing. All ships are asked at once.
async fn plan<E: Engine>(
    ctx: &Context<E>,
    selection: &[InstanceId],
    kind: PlanKind,
) -> Vec<Result<maestro_core::plan::Step, EngineError>> {
    futures_util::future::join_all(selection.iter().map(|&id| async move {
        let instance = ctx.env.instance(id);
        let observed = ctx.engines[instance.ship.0].inspect(&instance.name).await?;
        let existing = observed.as_ref().map(Observed::existing);
        let spec = container_spec(&ctx.env, id);
        Ok(match kind {
            PlanKind::Start { reuse } => maestro_core::plan::start(&spec, existing.as_ref(), reuse),
            PlanKind::Restart { only_if_changed } => {
                maestro_core::plan::restart(&spec, existing.as_ref(), only_if_changed)
            }
        })
    }))
    .await
}

/// `plan`, `start --dry-run`, `restart --dry-run`: the plan as a table (or JSON).
async fn show_plan<E: Engine>(
    ctx: &Context<E>,
    selection: &[InstanceId],
    kind: PlanKind,
    json: bool,
) -> u8 {
    let steps = plan(ctx, selection, kind).await;
    let mut code = 0;
    let rows: Vec<(String, String, String, String)> = selection
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

/// `logs -F`: every selected instance's output as it comes, each line prefixed with the
/// instance's name (coloured on a terminal) when there are several; until every stream
/// ends or Ctrl-C.
async fn follow_logs<E: Engine>(
    ctx: &Context<E>,
    selection: &[InstanceId],
    tail: Option<u64>,
) -> u8 {
    const COLORS: [&str; 6] = ["36", "33", "35", "32", "34", "31"];
    let color = output::stdout_is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let prefix = selection.len() > 1;
    let width = selection
        .iter()
        .map(|&i| ctx.env.instance(i).name.len())
        .max()
        .unwrap_or(0);
    let (sender, mut receiver) =
        tokio::sync::mpsc::channel::<(usize, Result<String, String>)>(1024);
    let mut tasks = tokio::task::JoinSet::new();
    for (n, &id) in selection.iter().enumerate() {
        let instance = ctx.env.instance(id);
        let engine = ctx.engines[instance.ship.0].clone();
        let name = instance.name.clone();
        let sender = sender.clone();
        tasks.spawn(async move {
            let container = match engine.inspect(&name).await {
                Ok(Some(o)) => o.id,
                Ok(None) => {
                    let _ = sender
                        .send((n, Err(format!("{name} has no container"))))
                        .await;
                    return;
                }
                Err(e) => {
                    let _ = sender.send((n, Err(e.to_string()))).await;
                    return;
                }
            };
            let (lines, mut incoming) = tokio::sync::mpsc::channel(256);
            let forward = async {
                while let Some(line) = incoming.recv().await {
                    if sender.send((n, Ok(line))).await.is_err() {
                        break;
                    }
                }
            };
            let (result, ()) = tokio::join!(engine.follow(&container, tail, lines), forward);
            if let Err(e) = result {
                let _ = sender.send((n, Err(e.to_string()))).await;
            }
        });
    }
    drop(sender);
    let mut code = 0;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            item = receiver.recv() => {
                let Some((n, item)) = item else { break };
                let name = &ctx.env.instance(selection[n]).name;
                match item {
                    Ok(line) if prefix => {
                        let label = format!("{name:width$}");
                        let label = if color { format!("\x1b[{}m{label}\x1b[0m", COLORS[n % COLORS.len()]) } else { label };
                        let _ = output::print(&format!("{label} | {line}\n"));
                    }
                    Ok(line) => {
                        let _ = output::print(&format!("{line}\n"));
                    }
                    Err(e) => {
                        output::eprint(&format!("error: {name}: {e}\n"));
                        code = EXIT_FAILURE;
                    }
                }
            }
            _ = &mut ctrl_c => {
                tasks.abort_all();
                return EXIT_INTERRUPTED;
            }
        }
    }
    code
}
