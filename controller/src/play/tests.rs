//! The scheduler and the tasks against an in-memory engine: order, failures and what
//! they skip, concurrency limits, and what start/stop/clean do to existing containers.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use maestro_core::graph::{Dependencies, Direction};
use maestro_core::model::{Environment, InstanceId, Ship, ShipId};
use maestro_core::spec::ContainerSpec;

use super::tasks::{self, Context, StartOptions};
use super::{Event, Outcome, Reporter, schedule};
use crate::engine::{Created, Engine, EngineError, ImageInfo, Observed, Unhealthy};
use crate::readiness::{Handshake, pb};

/// An engine that keeps containers in memory and records every operation.
#[derive(Default)]
struct Fake {
    containers: Mutex<HashMap<String, Observed>>,
    log: Mutex<Vec<String>>,
    /// Containers (by name or id) that exit (code 3) as soon as they start.
    crash: HashSet<String>,
    /// How many creates and starts run at once right now, and the most ever.
    busy: Mutex<(usize, usize)>,
    /// Each created container's variables, by name.
    envs: Mutex<HashMap<String, Vec<String>>>,
    /// Plays the container's maestro-guest: called when a container starts, with its name
    /// and variables.
    guest: Option<GuestPlayer>,
    /// Images whose tag now names another id than `sha256:NAME`.
    retagged: Mutex<HashMap<String, String>>,
    created: std::sync::atomic::AtomicUsize,
    /// Each container's health check, by id or name: healthy after so many milliseconds,
    /// or unhealthy with this output. A container not listed runs none.
    health: HashMap<String, Result<u64, Vec<String>>>,
    /// What `create` says it left out, for every container.
    create_warnings: Vec<String>,
    /// Images not on this ship until pulled (or tagged).
    absent: Mutex<HashSet<String>>,
    /// Operations (`create NAME`, `start NAME`) the engine does but whose answer never
    /// arrives: they end in `NoAnswer`, as a bounded request to a wedged engine does.
    lost: HashSet<String>,
    /// Operations (`remove NAME`, `start NAME`) whose answer never comes, not even a
    /// `NoAnswer`: only giving up on them ends them.
    hang: HashSet<String>,
    /// How many inspects were asked.
    inspects: std::sync::atomic::AtomicUsize,
}

/// Called with a started container's name and variables.
type GuestPlayer = Box<dyn Fn(&str, &[String]) + Send + Sync>;

impl Fake {
    fn record(&self, what: String) {
        self.log.lock().unwrap().push(what);
    }

    /// Takes `ms`, counted among the operations in flight (long enough for overlapping
    /// ones to be seen).
    async fn occupy(&self, ms: u64) {
        {
            let mut busy = self.busy.lock().unwrap();
            busy.0 += 1;
            busy.1 = busy.1.max(busy.0);
        }
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        self.busy.lock().unwrap().0 -= 1;
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Never returns if `operation` hangs.
    async fn hang(&self, operation: String) {
        if self.hang.contains(&operation) {
            std::future::pending::<()>().await;
        }
    }

    /// `NoAnswer` if the answer to `operation` is lost.
    fn answer(&self, operation: String) -> Result<(), EngineError> {
        if !self.lost.contains(&operation) {
            return Ok(());
        }
        Err(EngineError::NoAnswer {
            ship: "s1".into(),
            operation: operation.replacen(' ', " of ", 1),
            within: std::time::Duration::from_secs(15),
            idle: false,
        })
    }

    /// The id an image name resolves to: `sha256:NAME` unless retagged.
    fn image_of(&self, image: &str) -> String {
        self.retagged
            .lock()
            .unwrap()
            .get(image)
            .cloned()
            .unwrap_or_else(|| format!("sha256:{image}"))
    }

    fn by_id(&self, id: &str) -> Option<String> {
        self.containers
            .lock()
            .unwrap()
            .values()
            .find(|o| o.id == id)
            .map(|o| o.name.clone())
    }
}

impl Engine for Fake {
    /// Plays here take their ships' places from the file (see [`run`]).
    fn operations(&self) -> usize {
        16
    }

    async fn list(
        &self,
        environment: &str,
        instances: &[String],
    ) -> Result<Vec<Observed>, EngineError> {
        let named = |name: &str| {
            instances.iter().any(|i| {
                name == i
                    || name == maestro_core::spec::previous_name(i)
                    || name == maestro_core::spec::swapping_name(i)
            })
        };
        Ok(self
            .containers
            .lock()
            .unwrap()
            .values()
            .filter(|o| o.environment.as_deref() == Some(environment) || named(&o.name))
            .cloned()
            .collect())
    }
    async fn inspect(&self, name: &str) -> Result<Option<Observed>, EngineError> {
        self.inspects
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let containers = self.containers.lock().unwrap();
        Ok(containers
            .get(name)
            .or_else(|| containers.values().find(|o| o.id == name))
            .cloned())
    }
    async fn image(&self, image: &str) -> Result<Option<ImageInfo>, EngineError> {
        if self.absent.lock().unwrap().contains(image) {
            return Ok(None);
        }
        Ok(Some(ImageInfo {
            id: self.image_of(image),
            repo_digests: Vec::new(),
        }))
    }
    async fn resolve(
        &self,
        image: &str,
        _credentials: Option<&crate::credentials::Credentials>,
    ) -> Result<Option<String>, EngineError> {
        self.record(format!("resolve {image}"));
        // Yield, so that concurrent pulls of the same tag really overlap.
        tokio::task::yield_now().await;
        Ok(Some(format!("sha256:{image}-manifest")))
    }
    async fn tag(&self, source: &str, target: &str) -> Result<(), EngineError> {
        self.record(format!("tag {source} {target}"));
        self.absent.lock().unwrap().remove(target);
        Ok(())
    }
    async fn pull(
        &self,
        image: &str,
        _credentials: Option<&crate::credentials::Credentials>,
        progress: &(dyn Fn(String) + Send + Sync),
    ) -> Result<(), EngineError> {
        self.record(format!("pull {image}"));
        self.absent.lock().unwrap().remove(image);
        progress("1/1 layers".into());
        Ok(())
    }
    async fn rename(&self, id: &str, name: &str) -> Result<(), EngineError> {
        let old = self.by_id(id).expect("exists");
        self.record(format!("rename {old} {name}"));
        let mut containers = self.containers.lock().unwrap();
        if containers.contains_key(name) {
            return Err(EngineError::Daemon(format!("name {name} in use")));
        }
        let mut c = containers.remove(&old).expect("exists");
        c.name = name.to_owned();
        containers.insert(name.to_owned(), c);
        Ok(())
    }
    async fn set_restart(&self, id: &str, policy: &(String, u32)) -> Result<(), EngineError> {
        let name = self.by_id(id).expect("exists");
        self.record(format!("restart-policy {name} {}", policy.0));
        Ok(())
    }
    async fn create(&self, spec: &ContainerSpec) -> Result<Created, EngineError> {
        self.occupy(5).await;
        self.record(format!("create {}", spec.name));
        if self.containers.lock().unwrap().contains_key(&spec.name) {
            // As Docker: a name is one container's.
            return Err(EngineError::NameInUse(format!(
                "Conflict. The container name \"/{}\" is already in use",
                spec.name
            )));
        }
        // Unique per creation: a deploy keeps the previous container beside the new one.
        let n = self
            .created
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let id = format!("id-{}-{n}", spec.name);
        self.containers.lock().unwrap().insert(
            spec.name.clone(),
            Observed {
                id: id.clone(),
                name: spec.name.clone(),
                running: false,
                image: spec.image.clone(),
                image_id: Some(self.image_of(&spec.image)),
                exit_code: None,
                status: "created".into(),
                guest: crate::engine::runs_guest(
                    &[],
                    spec.command.as_deref().unwrap_or_default(),
                    false,
                ),
                ..Observed::default()
            }
            .with_labels(&spec.labels.iter().cloned().collect()),
        );
        self.envs
            .lock()
            .unwrap()
            .insert(spec.name.clone(), spec.env.clone());
        self.answer(format!("create {}", spec.name))?;
        Ok(Created {
            id,
            warnings: self.create_warnings.clone(),
        })
    }
    async fn start(&self, id: &str) -> Result<(), EngineError> {
        let name = self.by_id(id).expect("created");
        self.occupy(20).await;
        self.record(format!("start {name}"));
        self.hang(format!("start {name}")).await;
        let crash = self.crash.contains(&name) || self.crash.contains(id);
        let mut containers = self.containers.lock().unwrap();
        let c = containers.get_mut(&name).expect("created");
        c.running = !crash;
        c.exit_code = crash.then_some(3);
        drop(containers);
        if let Some(guest) = &self.guest {
            guest(&name, &self.envs.lock().unwrap()[&name]);
        }
        self.answer(format!("start {name}"))
    }
    async fn stop(&self, id: &str, _timeout: u32) -> Result<(), EngineError> {
        let name = self.by_id(id).expect("exists");
        self.record(format!("stop {name}"));
        self.containers
            .lock()
            .unwrap()
            .get_mut(&name)
            .expect("exists")
            .running = false;
        Ok(())
    }
    async fn kill(&self, id: &str) -> Result<(), EngineError> {
        self.stop(id, 0).await
    }
    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        let name = self.by_id(id).expect("exists");
        self.record(format!("remove {name}"));
        self.hang(format!("remove {name}")).await;
        self.containers.lock().unwrap().remove(&name);
        Ok(())
    }
    async fn logs(&self, _id: &str, _tail: Option<u64>) -> Result<Vec<String>, EngineError> {
        Ok(vec!["panic: no database".into()])
    }
    async fn follow(
        &self,
        _id: &str,
        _from: crate::engine::From,
        lines: tokio::sync::mpsc::Sender<crate::engine::LogLine>,
    ) -> Result<(), EngineError> {
        let line = crate::engine::LogLine {
            text: "panic: no database".into(),
            at: None,
        };
        let _ = lines.send(line).await;
        Ok(())
    }
    async fn watch_starts(
        &self,
        _name: &str,
        starts: tokio::sync::mpsc::Sender<crate::engine::Starts>,
    ) -> Result<(), EngineError> {
        // Nothing starts by itself here.
        if starts.send(crate::engine::Starts::Watching).await.is_ok() {
            starts.closed().await;
        }
        Ok(())
    }
    async fn reach(&self, _id: &str) -> Result<crate::engine::Reach, EngineError> {
        Ok(crate::engine::Reach::default())
    }
    async fn exec(
        &self,
        _id: &str,
        _command: &[String],
        _within: std::time::Duration,
    ) -> Result<i64, EngineError> {
        Ok(0)
    }
    async fn wait_healthy(&self, id: &str) -> Result<(), Unhealthy> {
        let name = self.by_id(id).expect("exists");
        let observed = self.containers.lock().unwrap()[&name].clone();
        if !observed.running {
            return Err(Unhealthy::Exited {
                exit_code: observed.exit_code,
            });
        }
        match self.health.get(id).or_else(|| self.health.get(&name)) {
            None => Err(Unhealthy::NoHealthcheck),
            Some(Ok(ms)) => {
                tokio::time::sleep(std::time::Duration::from_millis(*ms)).await;
                self.record(format!("healthy {name}"));
                Ok(())
            }
            Some(Err(output)) => Err(Unhealthy::Failed {
                output: output.clone(),
            }),
        }
    }
}

/// db <- api <- web, and an independent `batch`.
const ENV: &str = "__maestro: {schema: 2}
name: t
ships: {s1: {ip: 127.0.0.1}}
services:
  db: {image: db, instances: {db-1: {ship: s1}, db-2: {ship: s1}}}
  api: {image: api, requires: [db], instances: {api-1: {ship: s1}}}
  web: {image: web, requires: [api], instances: {web-1: {ship: s1}}}
  batch: {image: batch, instances: {batch-1: {ship: s1}}}
";

fn environment(text: &str) -> Arc<Environment> {
    let loaded = maestro_core::load(
        text,
        &maestro_core::NoFiles,
        &Ship::new("local", "127.0.0.1"),
    );
    Arc::new(loaded.environment.expect("valid"))
}

/// Runs a play over every instance and returns the outcomes by instance name.
async fn play<F, Fut>(
    env: &Arc<Environment>,
    fake: &Arc<Fake>,
    direction: Direction,
    concurrency: Option<usize>,
    task: F,
) -> HashMap<String, Outcome>
where
    F: Fn(Context<Fake>, usize, InstanceId) -> Fut,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    play_with(env, fake, None, direction, concurrency, task).await
}

/// [`play`] with a readiness handshake.
async fn play_with<F, Fut>(
    env: &Arc<Environment>,
    fake: &Arc<Fake>,
    handshake: Option<Arc<Handshake>>,
    direction: Direction,
    concurrency: Option<usize>,
    task: F,
) -> HashMap<String, Outcome>
where
    F: Fn(Context<Fake>, usize, InstanceId) -> Fut,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    run(
        env,
        fake,
        handshake,
        direction,
        concurrency,
        Mode::Plain,
        task,
    )
    .await
    .0
}

/// A `start` play that creates ahead, as the command runs it (every image prepared);
/// the outcomes by instance name, and the events.
async fn start_ahead(
    env: &Arc<Environment>,
    fake: &Arc<Fake>,
) -> (HashMap<String, Outcome>, Vec<Event>) {
    run(
        env,
        fake,
        None,
        Direction::Start,
        None,
        Mode::Ahead,
        |c, r, i| tasks::start(c, r, i, StartOptions::default()),
    )
    .await
}

/// How [`run`] runs its play.
enum Mode {
    Plain,
    /// Creating ahead, as `start` does.
    Ahead,
    /// Creating ahead, and interrupted so.
    AheadInterrupted(super::Interrupt),
    /// Creating ahead under the staged names into these slots, as `deploy` does (its
    /// tasks are given the slots through their [`super::deploy::Rollout`]).
    Staged(Arc<super::ahead::Slots>),
    /// No creating ahead; the play's list (of the one ship) found these names.
    Listed(Vec<String>),
}

async fn run<F, Fut>(
    env: &Arc<Environment>,
    fake: &Arc<Fake>,
    handshake: Option<Arc<Handshake>>,
    direction: Direction,
    concurrency: Option<usize>,
    mode: Mode,
    task: F,
) -> (HashMap<String, Outcome>, Vec<Event>)
where
    F: Fn(Context<Fake>, usize, InstanceId) -> Fut,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let events: Arc<Mutex<Vec<Event>>> = Arc::default();
    let sink = events.clone();
    let reporter: Reporter = Arc::new(move |e| sink.lock().unwrap().push(e));
    // Held to the end: a closed channel reads as Ctrl-C to the tasks that watch it.
    let (_ctrl_c, interrupted) = tokio::sync::watch::channel(false);
    let ctx = Context {
        env: env.clone(),
        engines: Arc::new(vec![fake.clone()]),
        docker_config: Arc::default(),
        reporter: reporter.clone(),
        handshake,
        images: Arc::default(),
        interrupted,
        http: Arc::default(),
        secrets: Arc::default(),
        ahead: None,
        listed: Arc::default(),
    };
    let selection: Vec<InstanceId> = (0..env.instances.len()).map(InstanceId).collect();
    let (ahead, interrupt, staged, listed) = match mode {
        Mode::Plain => (false, None, None, None),
        Mode::Ahead => (true, None, None, None),
        Mode::AheadInterrupted(interrupt) => (true, Some(interrupt), None, None),
        Mode::Staged(slots) => (true, None, Some(slots), None),
        Mode::Listed(names) => (false, None, None, Some(names.into_iter().collect())),
    };
    let ctx = Context {
        listed: Arc::new(super::tasks::Listed::new(vec![listed])),
        ..ctx
    };
    let expect_interrupted = interrupt.is_some();
    let interrupt = interrupt.unwrap_or_else(|| super::Interrupt {
        signal: Box::pin(std::future::pending()),
        drain: std::time::Duration::from_secs(10),
    });
    let (ctx, ahead) = if ahead {
        // As `start` has them: every image looked up before the play.
        let mut images = super::images::Resolved::default();
        for i in &env.instances {
            images.insert(
                i.ship.0,
                &i.image.name,
                Some(format!("sha256:{}", i.image.name)),
            );
        }
        let (slots, under, own) = match staged {
            Some(slots) => (
                slots,
                super::ahead::Under::Staged(vec![true; selection.len()]),
                None,
            ),
            None => {
                let slots = super::ahead::Slots::new(selection.len());
                (slots.clone(), super::ahead::Under::Name, Some(slots))
            }
        };
        let ctx = Context {
            images: Arc::new(images),
            ahead: own,
            ..ctx
        };
        let creates: Arc<dyn super::Ahead> = Arc::new(super::ahead::Creates {
            ctx: ctx.clone(),
            selection: selection.clone(),
            slots,
            under,
        });
        (ctx, Some(creates))
    } else {
        (ctx, None)
    };
    let waits = Dependencies::new(env).within(&selection, direction);
    let names: Vec<String> = env.instances.iter().map(|i| i.name.clone()).collect();
    // One ship: its limit, if any, is shared by every row.
    let limits = super::ShipLimits {
        places: vec![env.ships[0].max_operations.unwrap_or(usize::MAX)],
        row_ship: vec![Some(0); names.len()],
    };
    let (outcomes, interrupted) = super::schedule_until(
        &names,
        &waits,
        (concurrency, &limits),
        &reporter,
        ahead,
        interrupt,
        |row| task(ctx.clone(), row, selection[row]),
    )
    .await;
    assert_eq!(interrupted, expect_interrupted);
    // Every row is reported finished exactly once.
    let finished: Vec<usize> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| {
            if let Event::Finished { row, .. } = e {
                Some(*row)
            } else {
                None
            }
        })
        .collect();
    let mut sorted = finished.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), finished.len(), "a row finished twice");
    assert_eq!(finished.len(), names.len());
    let events = events.lock().unwrap().clone();
    (names.into_iter().zip(outcomes).collect(), events)
}

fn position(log: &[String], entry: &str) -> usize {
    log.iter()
        .position(|l| l == entry)
        .unwrap_or_else(|| panic!("{entry} not in {log:?}"))
}

#[tokio::test]
async fn start_follows_requires_and_stop_reverses_it() {
    let env = environment(ENV);
    let fake = Arc::new(Fake::default());
    let outcomes = play(&env, &fake, Direction::Start, None, |c, r, i| {
        tasks::start(c, r, i, StartOptions::default())
    })
    .await;
    assert!(
        outcomes
            .values()
            .all(|o| *o == Outcome::Done("started".into())),
        "{outcomes:?}"
    );
    let log = fake.log();
    for (before, after) in [
        ("start db-1", "create api-1"),
        ("start db-2", "create api-1"),
        ("start api-1", "create web-1"),
    ] {
        assert!(
            position(&log, before) < position(&log, after),
            "{before} then {after}: {log:?}"
        );
    }

    let outcomes = play(&env, &fake, Direction::Stop, None, |c, r, i| {
        tasks::stop(c, r, i, false)
    })
    .await;
    assert!(
        outcomes
            .values()
            .all(|o| *o == Outcome::Done("stopped".into())),
        "{outcomes:?}"
    );
    let log = fake.log();
    assert!(position(&log, "stop web-1") < position(&log, "stop api-1"));
    assert!(position(&log, "stop api-1") < position(&log, "stop db-1"));

    let outcomes = play(&env, &fake, Direction::Start, None, tasks::clean).await;
    assert!(
        outcomes
            .values()
            .all(|o| *o == Outcome::Done("removed".into())),
        "{outcomes:?}"
    );
    assert!(fake.containers.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_failure_skips_its_dependents_only() {
    let env = environment(ENV);
    let fake = Arc::new(Fake {
        crash: HashSet::from(["db-2".to_owned()]),
        ..Fake::default()
    });
    let outcomes = play(&env, &fake, Direction::Start, None, |c, r, i| {
        tasks::start(c, r, i, StartOptions::default())
    })
    .await;
    match &outcomes["db-2"] {
        Outcome::Failed(f) => {
            assert_eq!(f.exit_code, Some(3));
            assert_eq!(f.logs, ["panic: no database"]);
        }
        other => panic!("db-2: {other:?}"),
    }
    assert_eq!(
        outcomes["api-1"],
        Outcome::NotRun("not run: waits for db-2, which did not succeed".into())
    );
    assert!(matches!(outcomes["web-1"], Outcome::NotRun(_)));
    assert_eq!(outcomes["db-1"], Outcome::Done("started".into()));
    assert_eq!(outcomes["batch-1"], Outcome::Done("started".into()));
    assert!(
        !fake
            .log()
            .iter()
            .any(|l| l.contains("api-1") || l.contains("web-1")),
        "{:?}",
        fake.log()
    );
}

#[tokio::test]
async fn concurrency_is_bounded() {
    let env = environment(ENV);
    // -c 0 is no limit of the play's own, as no -c.
    for (limit, most) in [(Some(1), 1), (None, 3), (Some(0), 3)] {
        let fake = Arc::new(Fake::default());
        play(&env, &fake, Direction::Start, limit, |c, r, i| {
            tasks::start(c, r, i, StartOptions::default())
        })
        .await;
        // db-1, db-2 and batch-1 can start together; with -c 1 nothing overlaps.
        assert_eq!(fake.busy.lock().unwrap().1, most, "limit {limit:?}");
    }
    // The ship's own limit bounds it too, without -c and with -c 0.
    let limited = environment(&ENV.replace(
        "ships: {s1: {ip: 127.0.0.1}}",
        "ships: {s1: {ip: 127.0.0.1, max_operations: 2}}",
    ));
    for limit in [None, Some(0)] {
        let fake = Arc::new(Fake::default());
        play(&limited, &fake, Direction::Start, limit, |c, r, i| {
            tasks::start(c, r, i, StartOptions::default())
        })
        .await;
        assert_eq!(fake.busy.lock().unwrap().1, 2, "limit {limit:?}");
    }
}

#[tokio::test]
async fn start_leaves_running_containers_and_reports_outdated_ones() {
    let env = environment(ENV);
    let fake = Arc::new(Fake::default());
    play(&env, &fake, Direction::Start, None, |c, r, i| {
        tasks::start(c, r, i, StartOptions::default())
    })
    .await;
    let created = fake.log().len();
    let outcomes = play(&env, &fake, Direction::Start, None, |c, r, i| {
        tasks::start(c, r, i, StartOptions::default())
    })
    .await;
    assert!(
        outcomes
            .values()
            .all(|o| *o == Outcome::Done("already running, up to date".into())),
        "{outcomes:?}"
    );
    assert_eq!(fake.log().len(), created, "nothing touched");

    // The same containers against a changed definition of api.
    let changed = environment(&ENV.replace("image: api,", "image: api2,"));
    let outcomes = play(&changed, &fake, Direction::Start, None, |c, r, i| {
        tasks::start(c, r, i, StartOptions::default())
    })
    .await;
    assert!(
        matches!(&outcomes["api-1"], Outcome::Warning(m) if m.contains("outdated")),
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes["db-1"],
        Outcome::Done("already running, up to date".into())
    );

    // A stopped container is replaced by a new one.
    fake.containers
        .lock()
        .unwrap()
        .get_mut("batch-1")
        .unwrap()
        .running = false;
    let outcomes = play(&env, &fake, Direction::Start, None, |c, r, i| {
        tasks::start(c, r, i, StartOptions::default())
    })
    .await;
    assert_eq!(outcomes["batch-1"], Outcome::Done("started".into()));
    let log = fake.log();
    assert!(
        position(&log, "remove batch-1") < log.iter().rposition(|l| l == "create batch-1").unwrap()
    );

    // Clean leaves running containers alone.
    let outcomes = play(&env, &fake, Direction::Start, None, tasks::clean).await;
    assert_eq!(
        outcomes["db-1"],
        Outcome::Skipped("running, left in place".into())
    );
}

/// db runs maestro-guest and api depends on it; `guest` plays db's guest.
const GUEST_ENV: &str = "__maestro: {schema: 2}
name: t
ships: {s1: {ip: 127.0.0.1}}
services:
  db:
    image: db
    instances: {db-1: {ship: s1, command: [/bin/maestro-guest, run, --, db-server]}}
  api: {image: api, requires: [db], instances: {api-1: {ship: s1}}}
";

fn var<'a>(env: &'a [String], name: &str) -> &'a str {
    env.iter()
        .find_map(|e| e.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("{name} not in {env:?}"))
}

/// A report as the guest sends it, from the container's own variables.
fn report(
    env: &[String],
    instance: &str,
    sequence: u64,
    state: pb::state_report::State,
) -> pb::StateReport {
    pb::StateReport {
        instance: instance.to_owned(),
        token: var(env, crate::readiness::TOKEN_VAR).to_owned(),
        sequence,
        state: Some(state),
        status: String::new(),
    }
}

/// A fake engine whose db guest sends `reports` (built from db's variables) at start.
fn guest_engine(
    handshake: &Arc<Handshake>,
    reports: impl Fn(&[String]) -> Vec<pb::StateReport> + Send + Sync + 'static,
) -> Arc<Fake> {
    let registry = handshake.registry.clone();
    Arc::new(Fake {
        guest: Some(Box::new(move |name, env| {
            if name == "db-1" {
                for r in reports(env) {
                    registry.report(r);
                }
            }
        })),
        ..Fake::default()
    })
}

async fn start_with_guest(fake: &Arc<Fake>, handshake: Arc<Handshake>) -> HashMap<String, Outcome> {
    let env = environment(GUEST_ENV);
    play_with(
        &env,
        fake,
        Some(handshake),
        Direction::Start,
        None,
        |c, r, i| tasks::start(c, r, i, StartOptions::default()),
    )
    .await
}

fn handshake() -> Arc<Handshake> {
    Arc::new(Handshake::direct(vec![Some(
        "http://172.17.0.1:4000".into(),
    )]))
}

#[tokio::test]
async fn a_ready_report_is_the_running_check() {
    use pb::state_report::State;
    let handshake = handshake();
    let fake = guest_engine(&handshake, |env| {
        vec![
            report(env, "db-1", 1, State::Starting(pb::Starting {})),
            report(env, "db-1", 2, State::Ready(pb::Ready { took_ms: 42 })),
        ]
    });
    let outcomes = start_with_guest(&fake, handshake).await;
    assert_eq!(
        outcomes["db-1"],
        Outcome::Done("started, ready after 42 ms".into())
    );
    assert_eq!(outcomes["api-1"], Outcome::Done("started".into()));
    // Each container got the endpoint; only db's guest speaks, but api got a token too.
    let envs = fake.envs.lock().unwrap();
    assert_eq!(
        var(&envs["db-1"], crate::readiness::ENDPOINT_VAR),
        "http://172.17.0.1:4000"
    );
    assert_ne!(
        var(&envs["db-1"], crate::readiness::TOKEN_VAR),
        var(&envs["api-1"], crate::readiness::TOKEN_VAR)
    );
    let log = fake.log();
    assert!(position(&log, "start db-1") < position(&log, "create api-1"));
}

#[tokio::test]
async fn a_failed_report_fails_the_instance_with_its_reason_and_skips_dependents() {
    use pb::state_report::State;
    let handshake = handshake();
    let fake = guest_engine(&handshake, |env| {
        vec![report(
            env,
            "db-1",
            1,
            State::Failed(pb::Failed {
                exit_code: Some(3),
                last_lines: vec!["panic: disk full".into()],
                reason: "the app exited with code 3 before it was ready".into(),
            }),
        )]
    });
    let outcomes = start_with_guest(&fake, handshake).await;
    let Outcome::Failed(failure) = &outcomes["db-1"] else {
        panic!("{:?}", outcomes["db-1"]);
    };
    assert_eq!(
        failure.message,
        "maestro-guest: the app exited with code 3 before it was ready"
    );
    assert_eq!(failure.exit_code, Some(3));
    assert_eq!(failure.logs, ["panic: disk full"]);
    assert!(matches!(outcomes["api-1"], Outcome::NotRun(_)));
}

#[tokio::test(start_paused = true)]
async fn a_report_with_a_wrong_token_is_refused_and_decides_nothing() {
    use pb::state_report::State;
    let handshake = handshake();
    let fake = guest_engine(&handshake, |env| {
        let mut forged = report(env, "db-1", 1, State::Ready(pb::Ready { took_ms: 1 }));
        forged.token = "0123456789abcdef0123456789abcdef".into();
        vec![forged]
    });
    let outcomes = start_with_guest(&fake, handshake).await;
    // Not ready (the forged report counts for nothing), not failed (anyone could send one
    // naming db-1): readiness unknown, with the reason.
    assert_eq!(
        outcomes["db-1"],
        Outcome::Warning(
            "started, readiness unknown: maestro-guest's reports were refused (unknown token (wrong, or from an earlier play))".into()
        )
    );
}

#[tokio::test(start_paused = true)]
async fn many_refused_reports_are_told_once_and_counted() {
    use pb::state_report::State;
    let forge = |env: &[String], n: u64| {
        (1..=n)
            .map(|sequence| {
                let mut forged = report(
                    env,
                    "db-1",
                    sequence,
                    State::Ready(pb::Ready { took_ms: 1 }),
                );
                forged.token = "0123456789abcdef0123456789abcdef".into();
                forged
            })
            .collect::<Vec<_>>()
    };
    let handshake = handshake();
    let fake = guest_engine(&handshake, move |env| forge(env, 3));
    let outcomes = start_with_guest(&fake, handshake).await;
    assert_eq!(
        outcomes["db-1"],
        Outcome::Warning(
            "started, readiness unknown: maestro-guest's reports were refused (unknown token (wrong, or from an earlier play); 3 in all)".into()
        )
    );
    // The real guest's word still decides, and the refusals are counted in the outcome.
    let handshake = self::handshake();
    let fake = guest_engine(&handshake, move |env| {
        let mut reports = forge(env, 500);
        reports.push(report(
            env,
            "db-1",
            7,
            State::Ready(pb::Ready { took_ms: 42 }),
        ));
        reports
    });
    let outcomes = start_with_guest(&fake, handshake).await;
    assert_eq!(
        outcomes["db-1"],
        Outcome::Done("started, ready after 42 ms (500 reports naming it were refused)".into())
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_guest_leaves_readiness_unknown_after_a_bound() {
    let handshake = handshake();
    let fake = guest_engine(&handshake, |_| Vec::new());
    let outcomes = start_with_guest(&fake, handshake).await;
    let Outcome::Warning(text) = &outcomes["db-1"] else {
        panic!("{:?}", outcomes["db-1"]);
    };
    assert!(text.contains("no report within 5s"), "{text}");
    assert!(text.contains("http://172.17.0.1:4000"), "{text}");
}

#[tokio::test]
async fn without_an_endpoint_nothing_is_injected_and_checks_decide() {
    let handshake = Arc::new(Handshake::direct(vec![None]));
    let fake = Arc::new(Fake::default());
    let outcomes = start_with_guest(&fake, handshake).await;
    assert_eq!(outcomes["db-1"], Outcome::Done("started".into()));
    let envs = fake.envs.lock().unwrap();
    assert!(
        !envs["db-1"]
            .iter()
            .any(|e| e.starts_with("MAESTRO_READINESS_"))
    );
}

// ---------------------------------------------------------------------------------------
// Health checks as readiness

/// db <- api, each instance with `db_health` / `api_health` as its `healthcheck:`.
fn health_env(db_health: &str, api_extra: &str) -> Arc<Environment> {
    environment(&format!(
        "__maestro: {{schema: 2}}
name: t
ships: {{s1: {{ip: 127.0.0.1}}}}
services:
  db: {{image: db, healthcheck: {db_health}, instances: {{db-1: {{ship: s1}}}}}}
  api: {{image: api, requires: [db], instances: {{api-1: {{ship: s1{api_extra}}}}}}}
"
    ))
}

async fn start_all(env: &Arc<Environment>, fake: &Arc<Fake>) -> HashMap<String, Outcome> {
    play(env, fake, Direction::Start, None, |c, r, i| {
        tasks::start(c, r, i, StartOptions::default())
    })
    .await
}

#[tokio::test]
async fn a_healthcheck_holds_dependents_until_healthy() {
    let env = health_env("{test: \"exit 0\"}", "");
    let fake = Arc::new(Fake {
        health: HashMap::from([("db-1".to_owned(), Ok(100))]),
        ..Fake::default()
    });
    let outcomes = start_all(&env, &fake).await;
    assert_eq!(outcomes["db-1"], Outcome::Done("started, healthy".into()));
    // No health check configured: readiness as before.
    assert_eq!(outcomes["api-1"], Outcome::Done("started".into()));
    let log = fake.log();
    assert!(
        position(&log, "healthy db-1") < position(&log, "create api-1"),
        "{log:?}"
    );
}

#[tokio::test]
async fn the_image_healthcheck_gates_only_when_asked_for() {
    // The Fake's api-1 is "healthy" at once; only `healthcheck: image` makes start ask.
    for (api_extra, asked) in [("", false), (", healthcheck: image", true)] {
        let env = health_env("{disable: true}", api_extra);
        let fake = Arc::new(Fake {
            health: HashMap::from([("api-1".to_owned(), Ok(0))]),
            ..Fake::default()
        });
        let outcomes = start_all(&env, &fake).await;
        // Disabled: no wait at all (the Fake would say db-1 runs no health check).
        assert_eq!(outcomes["db-1"], Outcome::Done("started".into()));
        assert_eq!(fake.log().contains(&"healthy api-1".to_owned()), asked);
    }
}

#[tokio::test]
async fn unhealthy_fails_at_once_with_the_check_output() {
    let env = health_env("{test: \"pg_isready\", retries: 1}", "");
    let fake = Arc::new(Fake {
        health: HashMap::from([(
            "db-1".to_owned(),
            Err(vec!["no response".into(), "db down".into()]),
        )]),
        ..Fake::default()
    });
    let outcomes = start_all(&env, &fake).await;
    let Outcome::Failed(failure) = &outcomes["db-1"] else {
        panic!("{outcomes:?}");
    };
    assert_eq!(
        failure.message,
        "unhealthy: the health check failed: db down"
    );
    assert_eq!(failure.logs, ["no response", "db down"]);
    assert!(
        matches!(outcomes["api-1"], Outcome::NotRun(_)),
        "{outcomes:?}"
    );
    // A running check that would wait long does not delay the verdict.
    let env = environment(
        "__maestro: {schema: 2}
name: t
ships: {s1: {ip: 127.0.0.1}}
services:
  db:
    image: db
    healthcheck: {test: \"exit 1\"}
    lifecycle: {running: [{type: exec, command: \"sleep 30\"}]}
    instances: {db-1: {ship: s1}}
",
    );
    let fake = Arc::new(Fake {
        health: HashMap::from([("db-1".to_owned(), Err(vec!["exit 1".into()]))]),
        ..Fake::default()
    });
    let began = std::time::Instant::now();
    let outcomes = start_all(&env, &fake).await;
    assert!(
        matches!(outcomes["db-1"], Outcome::Failed(_)),
        "{outcomes:?}"
    );
    assert!(began.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn healthy_is_not_enough_when_a_running_check_fails() {
    let env = environment(
        "__maestro: {schema: 2}
name: t
ships: {s1: {ip: 127.0.0.1}}
services:
  db:
    image: db
    healthcheck: image
    lifecycle: {running: [{type: exec, command: \"sh -c 'sleep 0.3; exit 1'\", attempts: 1}]}
    instances: {db-1: {ship: s1}}
",
    );
    let fake = Arc::new(Fake {
        health: HashMap::from([("db-1".to_owned(), Ok(0))]),
        ..Fake::default()
    });
    let outcomes = start_all(&env, &fake).await;
    let Outcome::Failed(failure) = &outcomes["db-1"] else {
        panic!("{outcomes:?}");
    };
    assert!(failure.message.contains("exit 1"), "{failure:?}");
    // Healthy came first (at once); the failing check still decided.
    assert!(fake.log().contains(&"healthy db-1".to_owned()));
}

#[tokio::test]
async fn a_container_without_a_health_check_or_exiting_fails_the_gate() {
    let env = health_env("image", "");
    // db-1 is not in the Fake's health table: its image defines no HEALTHCHECK.
    let outcomes = start_all(&env, &Arc::new(Fake::default())).await;
    let Outcome::Failed(failure) = &outcomes["db-1"] else {
        panic!("{outcomes:?}");
    };
    assert!(
        failure.message.contains("runs no health check"),
        "{failure:?}"
    );

    let fake = Arc::new(Fake {
        crash: HashSet::from(["db-1".to_owned()]),
        health: HashMap::from([("db-1".to_owned(), Ok(0))]),
        ..Fake::default()
    });
    let outcomes = start_all(&env, &fake).await;
    let Outcome::Failed(failure) = &outcomes["db-1"] else {
        panic!("{outcomes:?}");
    };
    assert_eq!(failure.exit_code, Some(3));
}

#[tokio::test]
async fn what_create_left_out_is_a_warning() {
    let env = health_env("{test: \"exit 0\", start_interval: 1s}", "");
    let warning = "ship s1: its engine speaks Docker API 1.41, and healthcheck.start_interval needs 1.44: the container was created without it";
    let fake = Arc::new(Fake {
        health: HashMap::from([("db-1".to_owned(), Ok(0))]),
        create_warnings: vec![warning.into()],
        ..Fake::default()
    });
    let outcomes = start_all(&env, &fake).await;
    assert_eq!(
        outcomes["db-1"],
        Outcome::Warning(format!("started, healthy; {warning}"))
    );
    // A warning is a success: the dependent started.
    assert!(outcomes["api-1"].is_success(), "{outcomes:?}");
}

/// A tag is resolved once per play, and every ship pulls that one digest and tags it.
#[tokio::test]
async fn a_tag_is_resolved_once_and_every_ship_pulls_its_digest() {
    use super::images::{self, Pins, PullPolicy, Resolved, Wanted};
    let env = environment(
        "name: t\nships:\n  a: {ip: 10.0.0.1}\n  b: {ip: 10.0.0.2}\n  c: {ip: 10.0.0.3}\n\
         services:\n  web:\n    image: reg.example:5000/app:1\n    instances:\n\
         \x20     web-a: {ship: a}\n      web-b: {ship: b}\n      web-c: {ship: c}\n",
    );
    let image = "reg.example:5000/app:1";
    let fakes: Vec<Arc<Fake>> = (0..3)
        .map(|_| {
            let fake = Fake::default();
            fake.absent.lock().unwrap().insert(image.to_owned());
            Arc::new(fake)
        })
        .collect();
    let reporter: Reporter = Arc::new(|_| {});
    let ctx = Context {
        env: env.clone(),
        engines: Arc::new(fakes.clone()),
        docker_config: Arc::default(),
        reporter,
        handshake: None,
        images: Arc::default(),
        interrupted: tokio::sync::watch::channel(false).1,
        http: Arc::default(),
        secrets: Arc::default(),
        ahead: None,
        listed: Arc::default(),
    };
    let resolved = Arc::new(Mutex::new(Resolved::default()));
    let pins = Arc::new(Pins::default());
    let outcomes = futures_util::future::join_all((0..3).map(|ship| {
        images::prepare(
            ctx.clone(),
            ship,
            Wanted {
                ship,
                image: image.to_owned(),
                instances: 1,
            },
            PullPolicy::Missing,
            resolved.clone(),
            pins.clone(),
        )
    }))
    .await;
    assert!(outcomes.iter().all(Outcome::is_success), "{outcomes:?}");
    let logs: Vec<Vec<String>> = fakes.iter().map(|f| f.log()).collect();
    let resolves = logs
        .iter()
        .flatten()
        .filter(|l| l.starts_with("resolve"))
        .count();
    assert_eq!(resolves, 1, "{logs:?}");
    let pinned = format!("reg.example:5000/app@sha256:{image}-manifest");
    for log in &logs {
        assert!(log.contains(&format!("pull {pinned}")), "{log:?}");
        assert!(log.contains(&format!("tag {pinned} {image}")), "{log:?}");
    }
    assert!(
        matches!(&outcomes[0], Outcome::Done(t) if t.contains("as reg.example:5000/app@")),
        "{outcomes:?}"
    );
}

/// What one ship pulled from the image's registry is what the others pull, without
/// asking the registry again; a different id on another ship is reported.
#[tokio::test]
async fn pins_follow_what_a_ship_has_and_disagreements_are_named() {
    use super::images::{Pins, Resolved, disagreements};
    let pulled = ImageInfo {
        id: "sha256:aaaa".into(),
        repo_digests: vec![
            "mirror.example/app@sha256:0000".into(),
            "busybox@sha256:1111".into(),
        ],
    };
    let pins = Pins::from_present([("docker.io/library/busybox:1", &pulled)]);
    // Already decided: the registry is not asked (this resolver would say otherwise).
    let pinned = pins
        .get("docker.io/library/busybox:1", async { None })
        .await;
    assert_eq!(
        pinned.as_deref(),
        Some("docker.io/library/busybox@sha256:1111")
    );
    let mut resolved = Resolved::default();
    resolved.insert(0, "app:1", Some("sha256:aaaaaaaaaaaaaaaa".into()));
    resolved.insert(1, "app:1", Some("sha256:bbbbbbbbbbbbbbbb".into()));
    resolved.insert(0, "db:1", Some("sha256:cccccccccccccccc".into()));
    resolved.insert(1, "db:1", Some("sha256:cccccccccccccccc".into()));
    let warnings = disagreements(&resolved, &["one".into(), "two".into()]);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("app:1 is not the same image on every ship (sha256:aaaaaaaaaaaa… on one, sha256:bbbbbbbbbbbb… on two)"),
        "{warnings:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Deploy and rollback: the generations

/// One instance `db-1`, with a health check.
const GENERATIONS_ENV: &str = "__maestro: {schema: 2}
name: t
ships: {s1: {ip: 127.0.0.1}}
services:
  db: {image: db, healthcheck: {test: \"exit 0\"}, instances: {db-1: {ship: s1}}}
";

/// A fake engine holding `db-1` (running, an older definition) and its previous
/// generation `db-1.previous` (stopped): containers `current` and `older`.
fn two_generations(fake: Fake) -> Arc<Fake> {
    let container = |id: &str, name: &str, running: bool| Observed {
        id: id.into(),
        name: name.into(),
        running,
        image: "db".into(),
        image_id: Some("sha256:db".into()),
        digest: Some("an older definition".into()),
        restart: Some("always:0".into()),
        ..Observed::default()
    };
    let fake = Arc::new(fake);
    let mut containers = fake.containers.lock().unwrap();
    containers.insert("db-1".into(), container("current", "db-1", true));
    containers.insert(
        "db-1.previous".into(),
        container("older", "db-1.previous", false),
    );
    drop(containers);
    fake
}

fn rollout() -> super::deploy::Rollout {
    super::deploy::Rollout {
        start: StartOptions::default(),
        max_failures: 0,
        failures: Arc::default(),
        ahead: None,
    }
}

/// Each container's name, by id.
fn names(fake: &Fake) -> HashMap<String, String> {
    fake.containers
        .lock()
        .unwrap()
        .values()
        .map(|o| (o.id.clone(), o.name.clone()))
        .collect()
}

#[tokio::test]
async fn the_older_generation_is_removed_only_once_the_new_container_is_ready() {
    let env = environment(GENERATIONS_ENV);
    let fake = two_generations(Fake {
        health: HashMap::from([("db-1".to_owned(), Ok(0))]),
        ..Fake::default()
    });
    let outcomes = play(&env, &fake, Direction::Start, None, |c, r, i| {
        super::deploy::replace(c, r, i, rollout())
    })
    .await;
    assert!(outcomes["db-1"].is_success(), "{outcomes:?}");
    let log = fake.log();
    assert!(
        position(&log, "healthy db-1") < position(&log, "remove db-1.previous"),
        "{log:?}"
    );
    assert_eq!(
        names(&fake),
        HashMap::from([
            ("id-db-1-0".to_owned(), "db-1".to_owned()),
            ("current".to_owned(), "db-1.previous".to_owned()),
        ])
    );

    // A new container that fails: the replaced one is back, and the older generation is
    // still there for a rollback.
    let fake = two_generations(Fake {
        crash: HashSet::from(["id-db-1-0".to_owned()]),
        ..Fake::default()
    });
    let outcomes = play(&env, &fake, Direction::Start, None, |c, r, i| {
        super::deploy::replace(c, r, i, rollout())
    })
    .await;
    let Outcome::Failed(failure) = &outcomes["db-1"] else {
        panic!("{outcomes:?}");
    };
    assert!(
        failure.message.contains("is back and running"),
        "{failure:?}"
    );
    assert_eq!(
        names(&fake),
        HashMap::from([
            ("current".to_owned(), "db-1".to_owned()),
            ("older".to_owned(), "db-1.previous".to_owned()),
        ])
    );
    assert!(fake.containers.lock().unwrap()["db-1"].running);
}

#[tokio::test]
async fn a_rolled_back_container_must_pass_the_health_check() {
    let env = environment(GENERATIONS_ENV);
    let roll_back = |fake: &Arc<Fake>| {
        let (env, fake) = (env.clone(), fake.clone());
        async move {
            play(&env, &fake, Direction::Start, None, |c, r, i| {
                super::deploy::rollback(c, r, i, rollout())
            })
            .await
            .remove("db-1")
            .unwrap()
        }
    };
    // Unhealthy: swapped back, and the rollback fails with the check's output.
    let fake = two_generations(Fake {
        health: HashMap::from([("older".to_owned(), Err(vec!["not accepting".into()]))]),
        ..Fake::default()
    });
    let Outcome::Failed(failure) = roll_back(&fake).await else {
        panic!("{:?}", fake.log());
    };
    assert!(
        failure
            .message
            .starts_with("unhealthy: the health check failed: not accepting"),
        "{failure:?}"
    );
    assert!(failure.message.contains("swapped back"), "{failure:?}");
    assert_eq!(
        names(&fake),
        HashMap::from([
            ("current".to_owned(), "db-1".to_owned()),
            ("older".to_owned(), "db-1.previous".to_owned()),
        ])
    );

    // Healthy: rolled back once the engine says so.
    let fake = two_generations(Fake {
        health: HashMap::from([("older".to_owned(), Ok(50))]),
        ..Fake::default()
    });
    let outcome = roll_back(&fake).await;
    assert!(
        matches!(&outcome, Outcome::Done(m) if m.starts_with("rolled back")),
        "{outcome:?}"
    );
    assert!(fake.log().contains(&"healthy db-1".to_owned()));

    // A container created before the file gave a health check runs none: it passes.
    let fake = two_generations(Fake::default());
    let outcome = roll_back(&fake).await;
    assert!(outcome.is_success(), "{outcome:?}");
    assert_eq!(names(&fake)["older"], "db-1");
}

#[tokio::test]
async fn a_kept_generation_without_a_container_stays_the_previous_one() {
    // What an older maestro killed after keeping the old container left: no container
    // under the name, the kept one under `.previous`. It stays the rollback target, and is
    // what a failed replacement goes back to.
    let env = environment(GENERATIONS_ENV);
    for crash in [false, true] {
        let fake = two_generations(Fake {
            crash: HashSet::from_iter(crash.then(|| "id-db-1-0".to_owned())),
            health: HashMap::from([("id-db-1-0".to_owned(), Ok(0))]),
            ..Fake::default()
        });
        fake.containers.lock().unwrap().remove("db-1");
        let outcomes = play(&env, &fake, Direction::Start, None, |c, r, i| {
            super::deploy::replace(c, r, i, rollout())
        })
        .await;
        let want = if crash {
            assert!(
                matches!(&outcomes["db-1"], Outcome::Failed(f) if f.message.contains("older") && f.message.contains("is back, stopped as it was")),
                "{outcomes:?}"
            );
            HashMap::from([("older".to_owned(), "db-1".to_owned())])
        } else {
            assert!(outcomes["db-1"].is_success(), "{outcomes:?}");
            HashMap::from([
                ("id-db-1-0".to_owned(), "db-1".to_owned()),
                ("older".to_owned(), "db-1.previous".to_owned()),
            ])
        };
        assert_eq!(names(&fake), want, "crash {crash}");
    }
}

/// Puts a container in the fake as `docker run --name NAME` would (no labels), or with
/// the given labels; returns its id.
fn outsider(fake: &Fake, name: &str, running: bool, labels: &[(&str, &str)]) -> String {
    let id = format!("outsider-{name}");
    let labels: HashMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    fake.containers.lock().unwrap().insert(
        name.to_owned(),
        Observed {
            id: id.clone(),
            name: name.to_owned(),
            running,
            image: "zookeeper:3.4".into(),
            status: if running { "Up 2 days" } else { "Exited (0)" }.into(),
            ..Observed::default()
        }
        .with_labels(&labels),
    );
    id
}

/// The restart play's task (stop, then start).
async fn stop_then_start(ctx: Context<Fake>, row: usize, id: InstanceId) -> Outcome {
    let stopped = tasks::stop(ctx.clone(), row, id, false).await;
    if !stopped.is_success() {
        return stopped;
    }
    tasks::start(ctx, row, id, StartOptions::default()).await
}

#[tokio::test]
async fn containers_maestro_did_not_create_are_treated_as_maestro_ng_treats_them() {
    let env = environment(ENV);
    let fake = Arc::new(Fake::default());
    // An environment MaestroNG started: every container found by its name alone.
    for name in ["db-1", "db-2", "api-1", "web-1"] {
        outsider(&fake, name, true, &[]);
    }
    let stopped = outsider(&fake, "batch-1", false, &[]);
    let outcomes = play(&env, &fake, Direction::Start, None, |c, r, i| {
        tasks::start(c, r, i, StartOptions::default())
    })
    .await;
    let left = "already running, not created by maestro: start leaves it; restart or deploy \
                replaces it with a container maestro labels";
    for name in ["db-1", "db-2", "api-1", "web-1"] {
        assert_eq!(outcomes[name], Outcome::Done(left.into()), "{name}");
    }
    // A stopped one is removed and created anew, as MaestroNG's start does.
    assert_eq!(outcomes["batch-1"], Outcome::Done("started".into()));
    assert_eq!(
        fake.log(),
        ["remove batch-1", "create batch-1", "start batch-1"]
    );
    let batch = fake.containers.lock().unwrap()["batch-1"].clone();
    assert_ne!(batch.id, stopped);
    assert_eq!(batch.environment.as_deref(), Some("t"));

    // restart replaces each with a container maestro labels.
    let outcomes = play(&env, &fake, Direction::Start, None, stop_then_start).await;
    assert!(outcomes.values().all(Outcome::is_success), "{outcomes:?}");
    let containers = fake.containers.lock().unwrap().clone();
    for name in ["db-1", "db-2", "api-1", "web-1"] {
        let c = &containers[name];
        assert!(c.running, "{name}");
        assert_ne!(c.id, format!("outsider-{name}"), "{name} replaced");
        assert_eq!(c.environment.as_deref(), Some("t"), "{name}");
        assert_eq!(c.ship.as_deref(), Some("s1"), "{name}");
    }
    let log = fake.log();
    assert!(position(&log, "stop db-1") < position(&log, "remove db-1"));
    assert!(position(&log, "remove db-1") < position(&log, "create db-1"));
}

#[tokio::test]
async fn a_container_of_another_environment_or_ship_is_never_touched() {
    let env = environment(ENV);
    let fake = Arc::new(Fake::default());
    let other = [
        ("io.maestro.environment", "shop"),
        ("io.maestro.ship", "s1"),
        ("io.maestro.role", "instance"),
        ("io.maestro.instance", "db-1"),
    ];
    let theirs = outsider(&fake, "db-1", true, &other);
    // Another ship that shares this engine made api-1's name its own.
    let shared = [
        ("io.maestro.environment", "t"),
        ("io.maestro.ship", "s2"),
        ("io.maestro.role", "instance"),
        ("io.maestro.instance", "api-1"),
    ];
    outsider(&fake, "api-1", false, &shared);
    let untouched = |fake: &Fake| {
        let log = fake.log();
        assert!(
            !log.iter()
                .any(|l| l.ends_with(" db-1") || l.ends_with(" api-1")),
            "{log:?}"
        );
        let containers = fake.containers.lock().unwrap();
        assert_eq!(containers["db-1"].id, theirs);
        assert!(containers["db-1"].running);
    };
    let outcomes = play(&env, &fake, Direction::Start, None, |c, r, i| {
        tasks::start(c, r, i, StartOptions::default())
    })
    .await;
    let Outcome::Failed(f) = &outcomes["db-1"] else {
        panic!("{outcomes:?}")
    };
    assert_eq!(
        f.message,
        "the container named db-1 belongs to environment shop: maestro leaves it alone; \
         remove or rename it"
    );
    assert!(matches!(outcomes["web-1"], Outcome::NotRun(_)));
    untouched(&fake);
    for task in ["restart", "stop", "clean"] {
        let outcomes = match task {
            "restart" => play(&env, &fake, Direction::Start, None, stop_then_start).await,
            "stop" => {
                play(&env, &fake, Direction::Stop, None, |c, r, i| {
                    tasks::stop(c, r, i, false)
                })
                .await
            }
            _ => play(&env, &fake, Direction::Start, None, tasks::clean).await,
        };
        match task {
            "restart" => assert!(
                matches!(&outcomes["db-1"], Outcome::Failed(f) if f.message.contains("belongs to environment shop")),
                "{outcomes:?}"
            ),
            _ => assert_eq!(
                outcomes["db-1"],
                Outcome::Skipped(
                    "absent: the container named db-1 belongs to environment shop, left alone"
                        .into()
                ),
                "{task}"
            ),
        }
        untouched(&fake);
    }
}

#[test]
fn orphans_are_this_environments_containers_whose_instance_left_or_moved() {
    use super::orphans::{Known, distinct, orphans};
    let env = environment(
        "name: t\nships: {a: {ip: 10.0.0.1}, b: {ip: 10.0.0.2}}\nservices:\n  web:\n    \
         image: web\n    instances:\n      web-1: {ship: a}\n      web-2: {ship: b}\n",
    );
    let container = |name: &str, labels: &[(&str, &str)]| {
        let labels: HashMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Observed {
            id: format!("id-{name}"),
            name: name.to_owned(),
            ..Observed::default()
        }
        .with_labels(&labels)
    };
    let maestro = |ship: &'static str, instance: &'static str| {
        vec![
            ("io.maestro.environment", "t"),
            ("io.maestro.ship", ship),
            ("io.maestro.role", "instance"),
            ("io.maestro.instance", instance),
        ]
    };
    // One engine that ships a and b share.
    let list = vec![
        container("web-1", &maestro("a", "web-1")),
        container("web-1.previous", &maestro("a", "web-1")),
        container("web-2", &maestro("b", "web-2")),
        container("web-3", &maestro("a", "web-3")),
        container("web-3.previous", &maestro("a", "web-3")),
        container("web-2.swapping", &maestro("b", "web-2")),
        container(
            "maestro-lock.t.a",
            &[
                ("io.maestro.environment", "t"),
                ("io.maestro.ship", "a"),
                ("io.maestro.role", "lock"),
            ],
        ),
        container("blog-1", &[("io.maestro.environment", "blog")]),
        container("zk-1", &[]),
        container("old-1", &maestro("c", "old-1")),
        // An older maestro's, without ship or instance labels.
        container("legacy-1", &[("io.maestro.environment", "t")]),
        container("web-2.previous", &[("io.maestro.environment", "t")]),
    ];
    let known = Known::new(&env);
    let mut found = orphans(&env, &known, ShipId(0), &list);
    found.extend(orphans(&env, &known, ShipId(1), &list));
    let found: Vec<(String, String)> = distinct(found)
        .into_iter()
        .map(|o| (o.container.name, o.why))
        .collect();
    let expected = [
        ("legacy-1", "instance legacy-1 is no longer in the file"),
        ("old-1", "its ship c is no longer in the file"),
        ("web-3", "instance web-3 is no longer in the file"),
        ("web-3.previous", "instance web-3 is no longer in the file"),
    ];
    assert_eq!(
        found,
        expected.map(|(n, w)| (n.to_owned(), w.to_owned())),
        "each once, in ship then name order"
    );
    // On an engine of its own, a's container of an instance now on b is a's orphan.
    let moved = vec![container("web-2", &maestro("a", "web-2"))];
    let found = orphans(&env, &known, ShipId(0), &moved);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].why, "instance web-2 is now on ship b");
    assert!(
        orphans(&env, &known, ShipId(1), &moved).is_empty(),
        "a's business"
    );
}

#[tokio::test]
async fn only_clean_orphans_removes_an_orphan_stopping_it_first() {
    let env = environment(ENV);
    let fake = Arc::new(Fake::default());
    play(&env, &fake, Direction::Start, None, |c, r, i| {
        tasks::start(c, r, i, StartOptions::default())
    })
    .await;
    let labels = [
        ("io.maestro.environment", "t"),
        ("io.maestro.ship", "s1"),
        ("io.maestro.role", "instance"),
        ("io.maestro.service", "cache"),
        ("io.maestro.instance", "cache-1"),
    ];
    let id = outsider(&fake, "cache-1", true, &labels);
    let ctx = Context {
        env: env.clone(),
        engines: Arc::new(vec![fake.clone()]),
        docker_config: Arc::default(),
        reporter: Arc::new(|_| {}),
        handshake: None,
        images: Arc::default(),
        interrupted: tokio::sync::watch::channel(false).1,
        http: Arc::default(),
        secrets: Arc::default(),
        ahead: None,
        listed: Arc::default(),
    };
    // Plays over the file's instances never touch it.
    play(&env, &fake, Direction::Start, None, stop_then_start).await;
    play(&env, &fake, Direction::Stop, None, |c, r, i| {
        tasks::stop(c, r, i, false)
    })
    .await;
    play(&env, &fake, Direction::Start, None, tasks::clean).await;
    assert!(fake.containers.lock().unwrap()["cache-1"].running);
    assert!(!fake.log().iter().any(|l| l.ends_with("cache-1")));

    let (found, failed) = super::orphans::find(&ctx, &[ShipId(0)]).await;
    assert!(failed.is_empty());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].container.id, id);
    assert_eq!(super::orphans::row(&env, &found[0]).service, "cache");
    let outcome = super::orphans::remove(ctx, 0, found[0].clone()).await;
    assert_eq!(
        outcome,
        Outcome::Done("removed (instance cache-1 is no longer in the file)".into())
    );
    let log = fake.log();
    assert_eq!(log[log.len() - 2..], ["stop cache-1", "remove cache-1"]);
    assert!(!fake.containers.lock().unwrap().contains_key("cache-1"));
}

/// A row's task is made when the row gets its place, not when its turn comes: a play of
/// 20,000 instances on ships that take a few at a time holds only the running tasks'
/// futures (kilobytes each), not 20,000 of them.
#[tokio::test]
async fn a_rows_task_is_made_only_once_it_has_a_place() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let reporter: Reporter = Arc::new(|_| {});
    let names: Vec<String> = (0..50).map(|i| format!("app-{i}")).collect();
    let waits = vec![Vec::new(); names.len()];
    // Tasks made and not yet finished, and the most there were.
    let alive = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (outcomes, _) = schedule(
        &names,
        &waits,
        Some(2),
        &Default::default(),
        &reporter,
        |_| {
            let now = alive.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            let alive = alive.clone();
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                alive.fetch_sub(1, Ordering::SeqCst);
                Outcome::Done("done".into())
            }
        },
    )
    .await;
    assert!(outcomes.iter().all(Outcome::is_success), "{outcomes:?}");
    assert_eq!(most.load(Ordering::SeqCst), 2);
}

/// A task that panics fails its own row (not another one that is still running), and
/// every row is still reported finished exactly once.
#[tokio::test]
async fn a_panicking_task_fails_its_own_row_only() {
    let events: Arc<Mutex<Vec<Event>>> = Arc::default();
    let sink = events.clone();
    let reporter: Reporter = Arc::new(move |e| sink.lock().unwrap().push(e));
    let names: Vec<String> = ["slow", "boom", "after-boom"].map(String::from).to_vec();
    // after-boom waits for boom.
    let waits = vec![vec![], vec![], vec![1]];
    let (outcomes, interrupted) = schedule(
        &names,
        &waits,
        None,
        &Default::default(),
        &reporter,
        |row| async move {
            match row {
                0 => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    Outcome::Done("slow done".into())
                }
                1 => panic!("boom"),
                _ => Outcome::Done("never".into()),
            }
        },
    )
    .await;
    assert!(!interrupted);
    assert_eq!(outcomes[0], Outcome::Done("slow done".into()));
    assert!(
        matches!(&outcomes[1], Outcome::Failed(f) if f.message == "internal error: boom"),
        "{outcomes:?}"
    );
    assert!(matches!(outcomes[2], Outcome::NotRun(_)), "{outcomes:?}");
    let mut finished: Vec<usize> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Finished { row, .. } => Some(*row),
            _ => None,
        })
        .collect();
    finished.sort_unstable();
    assert_eq!(finished, [0, 1, 2]);
}

// http checks over https, against servers made here

mod https_checks {
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use maestro_core::model::{Check, LifecycleState};

    use super::{Fake, environment};
    use crate::http::Settings;
    use crate::http::testing::{Ca, Server, self_signed};
    use crate::play::checks;

    /// The `running` check of an instance whose check is `spec`.
    fn check(spec: &str) -> Check {
        let env = environment(&format!(
            "name: t\nships: {{s1: {{ip: 127.0.0.1}}}}\nservices:\n  web: {{image: web, instances: {{web-1: {{ship: s1, lifecycle: {{running: [{spec}]}}}}}}}}\n"
        ));
        env.instances[0].lifecycle[&LifecycleState::Running][0].clone()
    }

    async fn run(check: &Check, settings: &Settings) -> Result<(), String> {
        checks::run(
            check,
            "127.0.0.1",
            "",
            &Default::default(),
            &Fake::default(),
            settings,
        )
        .await
    }

    fn folder(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("maestro-checks-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn an_https_check_trusts_the_ca_it_is_given_and_sends_headers_and_auth() {
        let ca = Ca::new();
        let server = Server::start(Some(ca.issue(&["127.0.0.1"])), |r| match r.path.as_str() {
            "/health" => (200, "{\"status\":\n\"up\"}".into()),
            _ => (404, String::new()),
        });
        let dir = folder("ca");
        std::fs::write(dir.join("ca.pem"), &ca.pem).unwrap();
        // As the environment file says it, relative to the file's folder.
        let settings = Settings::new(dir, |_| None);
        let check = check(&format!(
            "{{type: http, port: {}, scheme: https, path: health, max_wait: 5, match_regex: \"status.*up\", requests_options: {{verify: ca.pem, headers: {{X-Probe: maestro}}, auth: [alice, s3cret], timeout: 2}}}}",
            server.port
        ));
        run(&check, &settings).await.unwrap();
        let seen = server.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(
            (seen[0].method.as_str(), seen[0].path.as_str()),
            ("GET", "/health")
        );
        assert_eq!(seen[0].header("x-probe"), Some("maestro"));
        assert_eq!(
            seen[0].header("authorization"),
            Some("Basic YWxpY2U6czNjcmV0")
        );
    }

    #[tokio::test]
    async fn verify_false_passes_a_self_signed_server() {
        let server = Server::start(Some(self_signed(&["127.0.0.1"])), |_| (200, String::new()));
        let check = check(&format!(
            "{{type: http, port: {}, scheme: https, max_wait: 5, requests_options: {{verify: false}}}}",
            server.port
        ));
        run(&check, &Settings::default()).await.unwrap();
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn an_untrusted_certificate_fails_the_check_at_once_naming_the_host() {
        let server = Server::start(Some(self_signed(&["127.0.0.1"])), |_| (200, String::new()));
        let check = check(&format!(
            "{{type: http, port: {}, scheme: https, max_wait: 60}}",
            server.port
        ));
        let began = Instant::now();
        let e = run(&check, &Settings::default()).await.unwrap_err();
        // Not after max_wait: the same certificate would be refused at every attempt.
        assert!(began.elapsed() < Duration::from_secs(5));
        let url = format!("https://127.0.0.1:{}/", server.port);
        assert!(
            e.starts_with(&format!(
                "http check: GET {url}: TLS: the certificate of 127.0.0.1 is not signed by a CA maestro trusts (UnknownIssuer; trusted: the system's CA certificates"
            )),
            "{e}"
        );
        assert!(server.requests().is_empty());
    }

    #[tokio::test]
    async fn a_failing_check_does_not_show_its_query() {
        let server = Server::start(None, |_| (503, String::new()));
        let check = check(&format!(
            "{{type: http, port: {}, path: \"/health?token=query-secret\", max_wait: 0.2}}",
            server.port
        ));
        let e = run(&check, &Settings::default()).await.unwrap_err();
        assert_eq!(
            e,
            format!(
                "http check: GET http://127.0.0.1:{}/health?<redacted> did not pass within 0.2s (last: HTTP 503)",
                server.port
            )
        );
    }

    #[tokio::test]
    async fn a_check_that_does_not_pass_says_what_it_got_last() {
        let server = Server::start(None, |_| (503, String::new()));
        let check = check(&format!(
            "{{type: http, port: {}, max_wait: 0.2}}",
            server.port
        ));
        let e = run(&check, &Settings::default()).await.unwrap_err();
        assert_eq!(
            e,
            format!(
                "http check: GET http://127.0.0.1:{}/ did not pass within 0.2s (last: HTTP 503)",
                server.port
            )
        );
    }
}

/// A create or a start whose answer is lost (the engine did it; maestro's bound ran out):
/// the instance fails saying so, and the container the engine made is removed, so nothing
/// is left half-made; its dependents do not run.
#[tokio::test]
async fn a_lost_answer_leaves_no_half_made_container() {
    let env = environment(ENV);
    let fake = Arc::new(Fake {
        lost: ["create db-1", "start db-2"].map(String::from).into(),
        ..Fake::default()
    });
    let outcomes = play(&env, &fake, Direction::Start, None, |c, r, i| {
        tasks::start(c, r, i, StartOptions::default())
    })
    .await;
    let message = |name: &str| match &outcomes[name] {
        Outcome::Failed(f) => f.message.clone(),
        other => panic!("{name}: {other:?}"),
    };
    let created = message("db-1");
    assert!(
        created.contains("ship s1: create of db-1 got no answer within 15s")
            && created.contains("the engine had created it all the same")
            && created.contains("removed"),
        "{created}"
    );
    let started = message("db-2");
    assert!(
        started.contains("created but not started: ship s1: start of db-2 got no answer")
            && started.ends_with("; removed"),
        "{started}"
    );
    let log = fake.log();
    assert!(log.contains(&"remove db-1".to_owned()), "{log:?}");
    // Started late by the engine: killed before its removal.
    assert!(
        position(&log, "stop db-2") < position(&log, "remove db-2"),
        "{log:?}"
    );
    let left: Vec<String> = fake.containers.lock().unwrap().keys().cloned().collect();
    assert!(!left.iter().any(|n| n.starts_with("db-")), "{left:?}");
    assert!(
        matches!(outcomes["api-1"], Outcome::NotRun(_)),
        "{outcomes:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Creating ahead

/// db <- api <- web, each ready only once its health check passes (after `ms`).
fn chain_env() -> Arc<Environment> {
    environment(
        "__maestro: {schema: 2}
name: t
ships: {s1: {ip: 127.0.0.1}}
services:
  db: {image: db, healthcheck: {test: \"exit 0\"}, instances: {db-1: {ship: s1}}}
  api: {image: api, requires: [db], healthcheck: {test: \"exit 0\"}, instances: {api-1: {ship: s1}}}
  web: {image: web, requires: [api], instances: {web-1: {ship: s1}}}
",
    )
}

fn slow_health() -> HashMap<String, Result<u64, Vec<String>>> {
    HashMap::from([("db-1".to_owned(), Ok(100)), ("api-1".to_owned(), Ok(100))])
}

fn steps_of(events: &[Event], env: &Environment, instance: &str) -> Vec<String> {
    let row = env
        .instances
        .iter()
        .position(|i| i.name == instance)
        .unwrap();
    events
        .iter()
        .filter_map(|e| match e {
            Event::Step { row: r, message } if *r == row => Some(message.clone()),
            _ => None,
        })
        .collect()
}

/// Later levels are created while the first comes up; none starts before what it waits
/// for is ready (healthy).
#[tokio::test]
async fn later_levels_are_created_while_earlier_ones_come_up() {
    let env = chain_env();
    let fake = Arc::new(Fake {
        health: slow_health(),
        ..Fake::default()
    });
    let (outcomes, events) = start_ahead(&env, &fake).await;
    assert!(outcomes.values().all(Outcome::is_success), "{outcomes:?}");
    let log = fake.log();
    let at = |entry: &str| position(&log, entry);
    // Created ahead: before the first level is ready.
    assert!(at("create api-1") < at("healthy db-1"), "{log:?}");
    assert!(at("create web-1") < at("healthy db-1"), "{log:?}");
    // The invariant: started only once what it waits for is ready.
    assert!(at("healthy db-1") < at("start api-1"), "{log:?}");
    assert!(at("healthy api-1") < at("start web-1"), "{log:?}");
    // Each created once: the turn starts what was made ahead.
    assert_eq!(log.iter().filter(|l| l.starts_with("create")).count(), 3);
    let steps = steps_of(&events, &env, "api-1");
    assert!(
        steps
            .iter()
            .any(|s| s.starts_with("created id-api-1") && s.ends_with("waiting for db-1")),
        "{steps:?}"
    );
}

/// A dependency that fails: what was created ahead for its dependents is removed, and
/// their outcomes say so; independent branches carry on.
#[tokio::test]
async fn a_failed_dependency_removes_what_was_created_ahead_and_says_so() {
    let env = environment(ENV);
    let fake = Arc::new(Fake {
        crash: HashSet::from(["db-2".to_owned()]),
        ..Fake::default()
    });
    let (outcomes, _) = start_ahead(&env, &fake).await;
    assert!(
        matches!(outcomes["db-2"], Outcome::Failed(_)),
        "{outcomes:?}"
    );
    // web-1 waits for db-2 through api-1.
    for (instance, waits_for) in [("api-1", "db-2"), ("web-1", "db-2")] {
        match &outcomes[instance] {
            Outcome::NotRun(why) => assert!(
                why.starts_with(&format!(
                    "not run: waits for {waits_for}, which did not succeed; its container id-{instance}-"
                )) && why.ends_with(", created ahead, was removed"),
                "{instance}: {why}"
            ),
            other => panic!("{instance}: {other:?}"),
        }
    }
    assert_eq!(outcomes["batch-1"], Outcome::Done("started".into()));
    let log = fake.log();
    for instance in ["api-1", "web-1"] {
        assert!(
            position(&log, &format!("create {instance}"))
                < position(&log, &format!("remove {instance}")),
            "{log:?}"
        );
        assert!(!log.contains(&format!("start {instance}")), "{log:?}");
    }
    let left: Vec<String> = fake.containers.lock().unwrap().keys().cloned().collect();
    assert!(
        !left.iter().any(|n| n == "api-1" || n == "web-1"),
        "{left:?}"
    );
}

/// A play given up on (Ctrl-C, then the grace period) while a container made ahead was
/// being removed (its dependency failed) or started (its turn): the row's one outcome
/// names the container, which may still exist.
#[tokio::test]
async fn a_container_made_ahead_and_given_up_on_is_named() {
    let text = "__maestro: {schema: 2}
name: t
ships: {s1: {ip: 127.0.0.1}}
services:
  db: {image: db, healthcheck: {test: \"exit 0\"}, instances: {db-1: {ship: s1}}}
  api: {image: api, requires: [db], instances: {api-1: {ship: s1}}}
";
    for (crash, hang, why) in [
        (
            "db-1",
            "remove api-1",
            "not run: waits for db-1, which did not succeed",
        ),
        ("", "start api-1", "not run: interrupted"),
    ] {
        let env = environment(text);
        let fake = Arc::new(Fake {
            crash: HashSet::from([crash.to_owned()]),
            hang: HashSet::from([hang.to_owned()]),
            // Slow enough that api-1 is created ahead.
            health: HashMap::from([("db-1".to_owned(), Ok(100))]),
            ..Fake::default()
        });
        // Ctrl-C once the operation that never ends began.
        let signal = {
            let (fake, hang) = (fake.clone(), hang.to_owned());
            Box::pin(async move {
                while !fake.log().contains(&hang) {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            })
        };
        let interrupt = super::Interrupt {
            signal,
            drain: std::time::Duration::from_millis(50),
        };
        let play = run(
            &env,
            &fake,
            None,
            Direction::Start,
            None,
            Mode::AheadInterrupted(interrupt),
            |c, r, i| tasks::start(c, r, i, StartOptions::default()),
        );
        let (outcomes, _) = tokio::time::timeout(std::time::Duration::from_secs(10), play)
            .await
            .unwrap_or_else(|_| panic!("{hang}: the play did not end"));
        match &outcomes["api-1"] {
            Outcome::NotRun(w) => assert!(
                w.starts_with(&format!("{why}; its container id-api-1-"))
                    && w.ends_with(", created ahead, may be left: the next start finds it"),
                "{hang}: {w}"
            ),
            other => panic!("{hang}: {other:?}"),
        }
        assert!(
            fake.containers.lock().unwrap().contains_key("api-1"),
            "{hang}"
        );
    }
}

/// Creates ahead and starts share the ship's places: never more in flight than
/// `max_operations`.
#[tokio::test]
async fn creating_ahead_stays_within_the_ships_limit() {
    let text = "__maestro: {schema: 2}
name: t
ships: {s1: {ip: 127.0.0.1, max_operations: 2}}
services:
  db: {image: db, instances: {db-1: {ship: s1}, db-2: {ship: s1}, db-3: {ship: s1}}}
  api:
    image: api
    requires: [db]
    instances: {api-1: {ship: s1}, api-2: {ship: s1}, api-3: {ship: s1}, api-4: {ship: s1}}
";
    let env = environment(text);
    let fake = Arc::new(Fake::default());
    let (outcomes, _) = start_ahead(&env, &fake).await;
    assert!(outcomes.values().all(Outcome::is_success), "{outcomes:?}");
    assert_eq!(fake.busy.lock().unwrap().1, 2);
    let log = fake.log();
    // Some were created ahead (before the last db was ready), none started before.
    let last_db = ["db-1", "db-2", "db-3"]
        .iter()
        .map(|d| position(&log, &format!("start {d}")))
        .max()
        .unwrap();
    assert!(
        (1..=4).any(|i| position(&log, &format!("create api-{i}")) < last_db),
        "{log:?}"
    );
    assert!(
        (1..=4).all(|i| position(&log, &format!("start api-{i}")) > last_db),
        "{log:?}"
    );
}

/// What is created ahead: nothing that names another container, needs a `pre-start`
/// check first, or whose image the play did not prepare.
#[test]
fn only_a_self_contained_create_is_done_ahead() {
    let env = environment(
        "__maestro: {schema: 2}
name: t
ships: {s1: {ip: 127.0.0.1}}
services:
  db: {image: db, instances: {db-1: {ship: s1}}}
  plain: {image: app, requires: [db], instances: {plain-1: {ship: s1}}}
  vols: {image: app, instances: {vols-1: {ship: s1, volumes_from: [db-1]}}}
  linked: {image: app, requires: [db], instances: {linked-1: {ship: s1, links: {db-1: db}}}}
  netns: {image: app, requires: [db], instances: {netns-1: {ship: s1, net: \"container:db-1\"}}}
  checked:
    image: app
    requires: [db]
    lifecycle: {pre-start: [{type: tcp, port: p}]}
    instances: {checked-1: {ship: s1, ports: {p: 1}}}
  unprepared: {image: other, requires: [db], instances: {unprepared-1: {ship: s1}}}
",
    );
    let mut images = super::images::Resolved::default();
    images.insert(0, "app", Some("sha256:app".into()));
    let ctx = Context {
        env: env.clone(),
        engines: Arc::new(vec![Arc::new(Fake::default())]),
        docker_config: Arc::default(),
        reporter: Arc::new(|_| {}),
        handshake: None,
        images: Arc::new(images),
        interrupted: tokio::sync::watch::channel(false).1,
        http: Arc::default(),
        secrets: Arc::default(),
        ahead: None,
        listed: Arc::default(),
    };
    for (instance, expected) in [
        ("plain-1", true),
        ("vols-1", false),
        ("linked-1", false),
        ("netns-1", false),
        ("checked-1", false),
        ("unprepared-1", false),
    ] {
        let id = InstanceId(
            env.instances
                .iter()
                .position(|i| i.name == instance)
                .unwrap(),
        );
        assert_eq!(super::ahead::eligible(&ctx, id), expected, "{instance}");
    }
}

/// api waits for db; both run a container of an older definition.
const DEPLOY_CHAIN: &str = "__maestro: {schema: 2}
name: t
ships: {s1: {ip: 127.0.0.1}}
services:
  db: {image: db, healthcheck: {test: \"exit 0\"}, instances: {db-1: {ship: s1}}}
  api: {image: api, requires: [db], instances: {api-1: {ship: s1}}}
";

/// A container put beside an instance's: its name, whether it runs, its labels.
type Beside<'a> = (&'a str, bool, &'a [(&'a str, &'a str)]);

/// A fake engine running `db-1` and `api-1` (containers `old-db-1`, `old-api-1`) of an
/// older definition, with `others` beside them.
fn running_old(fake: Fake, others: &[Beside]) -> Arc<Fake> {
    let fake = Arc::new(fake);
    for name in ["db-1", "api-1"] {
        fake.containers.lock().unwrap().insert(
            name.into(),
            Observed {
                id: format!("old-{name}"),
                name: name.into(),
                running: true,
                image: "old".into(),
                image_id: Some("sha256:old".into()),
                digest: Some("an older definition".into()),
                restart: Some("always:0".into()),
                ..Observed::default()
            },
        );
    }
    for (name, running, labels) in others {
        outsider(&fake, name, *running, labels);
    }
    fake
}

/// The labels maestro gives `instance`'s containers in environment `t`.
fn own_labels(instance: &str) -> [(&str, &str); 4] {
    [
        ("io.maestro.environment", "t"),
        ("io.maestro.ship", "s1"),
        ("io.maestro.role", "instance"),
        ("io.maestro.instance", instance),
    ]
}

/// A deploy as the command runs it: creating ahead under the staged names.
async fn deploy_ahead(
    env: &Arc<Environment>,
    fake: &Arc<Fake>,
) -> (HashMap<String, Outcome>, Vec<Event>) {
    let slots = super::ahead::Slots::new(env.instances.len());
    let rollout = super::deploy::Rollout {
        ahead: Some(slots.clone()),
        ..rollout()
    };
    run(
        env,
        fake,
        None,
        Direction::Start,
        None,
        Mode::Staged(slots),
        move |c, r, i| super::deploy::replace(c, r, i, rollout.clone()),
    )
    .await
}

/// A later level's new container is created under its staged name while the level before
/// rolls, beside the container it replaces (which keeps running until then); at its turn
/// the replaced one is stopped and renamed away, and the staged one takes its name.
#[tokio::test]
async fn a_deploy_creates_later_levels_ahead_beside_the_containers_they_replace() {
    let env = environment(DEPLOY_CHAIN);
    let fake = running_old(
        Fake {
            health: HashMap::from([("db-1".to_owned(), Ok(100))]),
            ..Fake::default()
        },
        &[],
    );
    let (outcomes, events) = deploy_ahead(&env, &fake).await;
    assert!(outcomes.values().all(Outcome::is_success), "{outcomes:?}");
    let log = fake.log();
    let at = |entry: &str| position(&log, entry);
    assert!(at("create api-1.staged") < at("healthy db-1"), "{log:?}");
    // The invariant: the old api-1 serves until db-1 is ready, the new one starts after.
    assert!(
        at("healthy db-1") < at("restart-policy api-1 no"),
        "{log:?}"
    );
    // Swapped in while the old one still runs: out of service from its stop only.
    assert!(
        at("restart-policy api-1 no") < at("rename api-1 api-1.retiring"),
        "{log:?}"
    );
    assert!(
        at("rename api-1 api-1.retiring") < at("rename api-1.staged api-1"),
        "{log:?}"
    );
    assert!(
        at("rename api-1.staged api-1") < at("stop api-1.retiring"),
        "{log:?}"
    );
    assert_eq!(at("stop api-1.retiring") + 1, at("start api-1"), "{log:?}");
    let creates: Vec<&String> = log.iter().filter(|l| l.starts_with("create")).collect();
    assert_eq!(creates.len(), 2, "{log:?}");
    let names = names(&fake);
    assert_eq!(names["old-api-1"], "api-1.previous");
    assert_eq!(names["old-db-1"], "db-1.previous");
    assert!(
        names
            .iter()
            .any(|(id, n)| id.starts_with("id-api-1.staged-") && n == "api-1"),
        "{names:?}"
    );
    let steps = steps_of(&events, &env, "api-1");
    assert!(
        steps
            .iter()
            // Ids are shown short (12 characters).
            .any(|s| s.starts_with("created id-api-1.sta,") && s.ends_with("waiting for db-1")),
        "{steps:?}"
    );
}

/// What a killed deploy created ahead is removed before the next creates its own; a
/// container under that name that maestro did not create for the instance is left alone
/// (the turn then creates under the instance's name).
#[tokio::test]
async fn a_staged_container_left_by_a_killed_deploy_is_removed_and_an_outsider_left() {
    let slow = || Fake {
        health: HashMap::from([("db-1".to_owned(), Ok(100))]),
        ..Fake::default()
    };
    let env = environment(DEPLOY_CHAIN);
    let fake = running_old(slow(), &[("api-1.staged", false, &own_labels("api-1"))]);
    let (outcomes, _) = deploy_ahead(&env, &fake).await;
    assert!(outcomes.values().all(Outcome::is_success), "{outcomes:?}");
    let log = fake.log();
    assert!(
        position(&log, "remove api-1.staged") < position(&log, "create api-1.staged"),
        "{log:?}"
    );
    assert!(!names(&fake).contains_key("outsider-api-1.staged"));

    let other = [
        ("io.maestro.environment", "shop"),
        ("io.maestro.instance", "api-1"),
    ];
    let fake = running_old(slow(), &[("api-1.staged", false, &other)]);
    let (outcomes, _) = deploy_ahead(&env, &fake).await;
    assert!(outcomes.values().all(Outcome::is_success), "{outcomes:?}");
    let log = fake.log();
    assert!(log.contains(&"create api-1".to_owned()), "{log:?}");
    assert!(
        !log.iter().any(|l| l.starts_with("remove api-1.staged")),
        "{log:?}"
    );
    assert_eq!(names(&fake)["outsider-api-1.staged"], "api-1.staged");
}

/// A container created ahead that its turn never uses (the dependency failed, or the
/// turn failed before the replacement) is removed, the row's outcome says so, and the
/// container it was to replace is untouched.
#[tokio::test]
async fn a_container_created_ahead_and_not_used_is_removed_and_the_old_one_kept() {
    let env = environment(DEPLOY_CHAIN);
    // db-1's new container (and so its restored one) never becomes healthy.
    let fake = running_old(
        Fake {
            health: HashMap::from([("db-1".to_owned(), Err(vec!["no".to_owned()]))]),
            ..Fake::default()
        },
        &[],
    );
    let (outcomes, _) = deploy_ahead(&env, &fake).await;
    assert!(
        matches!(outcomes["db-1"], Outcome::Failed(_)),
        "{outcomes:?}"
    );
    match &outcomes["api-1"] {
        Outcome::NotRun(why) => assert!(
            why.starts_with(
                "not run: waits for db-1, which did not succeed; its container id-api-1.sta,"
            ) && why.ends_with(", created ahead, was removed"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    let log = fake.log();
    assert!(
        position(&log, "create api-1.staged") < position(&log, "remove api-1.staged"),
        "{log:?}"
    );
    assert!(
        !log.iter()
            .any(|l| l.ends_with(" api-1") && !l.starts_with("create")),
        "{log:?}"
    );
    assert_eq!(names(&fake)["old-api-1"], "api-1");
    assert!(fake.containers.lock().unwrap()["api-1"].running);

    // The turn itself fails first: a previous generation that runs is not replaced.
    let fake = running_old(
        Fake {
            health: HashMap::from([("db-1".to_owned(), Ok(50))]),
            ..Fake::default()
        },
        &[("api-1.previous", true, &own_labels("api-1"))],
    );
    let (outcomes, _) = deploy_ahead(&env, &fake).await;
    assert!(outcomes["db-1"].is_success(), "{outcomes:?}");
    match &outcomes["api-1"] {
        Outcome::Failed(f) => assert!(
            f.message
                .contains("is running: stop or remove it first; its container id-api-1.sta,")
                && f.message.ends_with(", created ahead, was removed"),
            "{f:?}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(!names(&fake).values().any(|n| n == "api-1.staged"));
    assert_eq!(names(&fake)["old-api-1"], "api-1");
}

/// A new container swapped in that fails: it is removed and the old one, which was only
/// stopped, takes its name back and runs again. A deploy killed while swapping (the old
/// one still running as `.retiring`, the new one under the name, never started): the
/// next deploy removes the unproven one and stops the old one before starting anew.
#[tokio::test]
async fn a_failed_swap_puts_the_old_container_back_and_a_killed_one_is_finished() {
    let env = environment(
        "__maestro: {schema: 2}
name: t
ships: {s1: {ip: 127.0.0.1}}
services:
  db: {image: db, healthcheck: {test: \"exit 0\"}, instances: {db-1: {ship: s1}}}
  api: {image: api, requires: [db], healthcheck: {test: \"exit 0\"}, instances: {api-1: {ship: s1}}}
",
    );
    let fake = running_old(
        Fake {
            // By id before name: the old api-1 is healthy, the new one never.
            health: HashMap::from([
                ("db-1".to_owned(), Ok(50)),
                ("old-api-1".to_owned(), Ok(0)),
                ("api-1".to_owned(), Err(vec!["down".to_owned()])),
            ]),
            ..Fake::default()
        },
        &[],
    );
    let (outcomes, _) = deploy_ahead(&env, &fake).await;
    match &outcomes["api-1"] {
        Outcome::Failed(f) => assert!(f.message.contains("is back and running"), "{f:?}"),
        other => panic!("{other:?}"),
    }
    let log = fake.log();
    assert!(
        position(&log, "rename api-1.staged api-1") < position(&log, "stop api-1.retiring"),
        "{log:?}"
    );
    assert!(
        position(&log, "remove api-1") < position(&log, "rename api-1.retiring api-1"),
        "{log:?}"
    );
    assert_eq!(names(&fake)["old-api-1"], "api-1");
    assert!(fake.containers.lock().unwrap()["api-1"].running);
    assert!(!names(&fake).values().any(|n| n.starts_with("api-1.")));

    // Killed after the swap's renames, before the stop.
    let fake = running_old(
        Fake {
            health: HashMap::from([("db-1".to_owned(), Ok(0)), ("api-1".to_owned(), Ok(0))]),
            ..Fake::default()
        },
        &[("api-1.staged", false, &own_labels("api-1"))],
    );
    {
        let mut containers = fake.containers.lock().unwrap();
        let mut old = containers.remove("api-1").unwrap();
        old.name = "api-1.retiring".into();
        containers.insert("api-1.retiring".into(), old);
        let mut unproven = containers.remove("api-1.staged").unwrap();
        unproven.name = "api-1".into();
        containers.insert("api-1".into(), unproven);
    }
    let (outcomes, _) = deploy_ahead(&env, &fake).await;
    assert!(outcomes.values().all(Outcome::is_success), "{outcomes:?}");
    let log = fake.log();
    let at = |entry: &str| position(&log, entry);
    assert!(at("remove api-1") < at("stop api-1.retiring"), "{log:?}");
    assert!(at("stop api-1.retiring") < at("start api-1"), "{log:?}");
    assert_eq!(names(&fake)["old-api-1"], "api-1.previous");
    assert!(!names(&fake).contains_key("outsider-api-1.staged"));
}

/// Where the play's list saw no container, `start` creates without looking first (one
/// request less per instance); where one came since (the list is stale), the create is
/// refused for the name and the instance is looked at and treated as any.
#[tokio::test]
async fn start_creates_without_looking_where_the_list_saw_no_container() {
    let env = environment(ENV);
    let mut inspects = Vec::new();
    for mode in [Mode::Plain, Mode::Listed(Vec::new())] {
        let fake = Arc::new(Fake::default());
        let (outcomes, _) = run(
            &env,
            &fake,
            None,
            Direction::Start,
            None,
            mode,
            |c, r, i| tasks::start(c, r, i, StartOptions::default()),
        )
        .await;
        assert!(outcomes.values().all(Outcome::is_success), "{outcomes:?}");
        inspects.push(fake.inspects.load(std::sync::atomic::Ordering::SeqCst));
    }
    // One look before the create less for each of the 5 instances.
    assert_eq!(
        inspects[0] - inspects[1],
        env.instances.len(),
        "{inspects:?}"
    );

    // db-1 came after the list: its create is refused, and it is left running.
    let fake = Arc::new(Fake::default());
    outsider(&fake, "db-1", true, &own_labels("db-1"));
    let (outcomes, _) = run(
        &env,
        &fake,
        None,
        Direction::Start,
        None,
        Mode::Listed(Vec::new()),
        |c, r, i| tasks::start(c, r, i, StartOptions::default()),
    )
    .await;
    assert!(outcomes.values().all(Outcome::is_success), "{outcomes:?}");
    assert!(fake.log().contains(&"create db-1".to_owned()));
    assert_eq!(names(&fake)["outsider-db-1"], "db-1");
    assert!(fake.containers.lock().unwrap()["db-1"].running);
    // db-1 is looked at once, after the refused create, where a started one is looked
    // at once after its start.
    assert_eq!(
        fake.inspects.load(std::sync::atomic::Ordering::SeqCst),
        inspects[1]
    );
}

/// `clean` looks only for what its list found: an instance, previous generation or
/// container created ahead the list did not show is not inspected.
#[tokio::test]
async fn clean_looks_only_for_what_its_list_found() {
    let env = environment(ENV);
    let stopped = |fake: &Arc<Fake>| {
        outsider(fake, "db-1", false, &own_labels("db-1"));
        outsider(fake, "db-1.staged", false, &own_labels("db-1"));
    };
    let mut inspects = Vec::new();
    let listed = vec!["db-1".to_owned(), "db-1.staged".to_owned()];
    for mode in [Mode::Plain, Mode::Listed(listed)] {
        let fake = Arc::new(Fake::default());
        stopped(&fake);
        let (outcomes, _) = run(&env, &fake, None, Direction::Stop, None, mode, tasks::clean).await;
        assert!(outcomes.values().all(Outcome::is_success), "{outcomes:?}");
        assert!(
            fake.containers.lock().unwrap().is_empty(),
            "{:?}",
            fake.log()
        );
        inspects.push(fake.inspects.load(std::sync::atomic::Ordering::SeqCst));
    }
    // Each of the 5 instances, its previous generation and its staged name: 15 looks;
    // with the list, db-1 and db-1.staged only.
    assert_eq!(inspects, [15, 2]);
}
