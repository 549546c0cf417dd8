//! What a play does to one instance: start, stop or kill, clean, pull. Each task reports
//! its steps and ends in an [`Outcome`]; none of them panics or gives up silently.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;

use maestro_core::model::{Environment, InstanceId, LifecycleState};
use maestro_core::plan::{self, Action};
use maestro_core::spec::{ContainerSpec, container_spec};

use super::images::Resolved;
use super::{Event, Failure, Outcome, Reporter, checks};
use crate::credentials::{self, DockerConfig};
use crate::engine::{Engine, EngineError, Observed};
use crate::readiness::{Expectation, Handshake, Word};

/// What every task of a play shares.
pub struct Context<E: Engine> {
    pub env: Arc<Environment>,
    /// By ship id.
    pub engines: Arc<Vec<Arc<E>>>,
    /// The user's Docker config, for registry credentials.
    pub docker_config: Arc<DockerConfig>,
    pub reporter: Reporter,
    /// The readiness handshake, in plays that create containers.
    pub handshake: Option<Arc<Handshake>>,
    /// The images the play prepared, with the id each resolves to on each ship.
    pub images: Arc<Resolved>,
    /// Becomes true on Ctrl-C: tasks that can undo their work (deploy) do so.
    pub interrupted: tokio::sync::watch::Receiver<bool>,
    /// What http checks and auditors trust, and where relative paths start.
    pub http: Arc<crate::http::Settings>,
    /// The values of the secret variables, read once by the plays that create containers
    /// (empty in the others).
    pub secrets: Arc<crate::secrets::Values>,
    /// The containers created ahead of their instances' turns, in a play that does so
    /// (by row).
    pub ahead: Option<Arc<super::ahead::Slots>>,
    /// The names of the containers the play's lists found on each ship (`start` and
    /// `clean` list once per ship, after their locks). An instance listed without a
    /// container is created without being looked at first, a generation listed absent is
    /// not looked for: one request less each. A create refused for the name
    /// ([`EngineError::NameInUse`]: a container came since) looks after all. Empty:
    /// nothing is known, everything is looked at.
    pub listed: Arc<Listed>,
}

/// The container names each ship's list showed (`None`: that ship was not listed, or its
/// list failed). A list shows the instances' names and their generations' (see
/// `engine::Engine::list`).
#[derive(Default)]
pub struct Listed(Vec<Option<std::collections::HashSet<String>>>);

impl Listed {
    pub fn new(by_ship: Vec<Option<std::collections::HashSet<String>>>) -> Self {
        Listed(by_ship)
    }

    /// Whether a container named `name` was on `ship` when it was listed, if known.
    pub fn exists(&self, ship: usize, name: &str) -> Option<bool> {
        Some(self.0.get(ship)?.as_ref()?.contains(name))
    }
}

impl<E: Engine> Clone for Context<E> {
    fn clone(&self) -> Self {
        Context {
            env: self.env.clone(),
            engines: self.engines.clone(),
            docker_config: self.docker_config.clone(),
            reporter: self.reporter.clone(),
            handshake: self.handshake.clone(),
            images: self.images.clone(),
            interrupted: self.interrupted.clone(),
            http: self.http.clone(),
            secrets: self.secrets.clone(),
            ahead: self.ahead.clone(),
            listed: self.listed.clone(),
        }
    }
}

impl<E: Engine> Context<E> {
    pub fn engine(&self, id: InstanceId) -> &E {
        &self.engines[self.env.instance(id).ship.0]
    }

    /// The spec of instance `id` with its secrets' values, their hashes salted with
    /// `salt`: the salt of the container it is compared with, `None` for a new one.
    pub fn spec(&self, id: InstanceId, salt: Option<&str>) -> ContainerSpec {
        let mut spec = container_spec(&self.env, id);
        self.secrets.apply(&mut spec, self.env.instance(id), salt);
        spec
    }

    /// Whether the play's list saw no container under `name`, on the ship of instance
    /// `id` (see [`Context::listed`]).
    pub fn listed_absent(&self, id: InstanceId, name: &str) -> bool {
        self.listed.exists(self.env.instance(id).ship.0, name) == Some(false)
    }

    /// [`Context::listed_absent`] for the instance's own name.
    pub fn known_absent(&self, id: InstanceId) -> bool {
        self.listed_absent(id, &self.env.instance(id).name)
    }

    pub fn step(&self, row: usize, message: impl Into<String>) {
        (self.reporter)(Event::Step {
            row,
            message: message.into(),
        });
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct StartOptions {
    /// `-r`: pull the image even when it is present.
    pub refresh_images: bool,
    /// `--reuse`: start the existing container instead of creating a new one.
    pub reuse: bool,
    /// How long a container that nothing else proves ready must stay running to count as
    /// ready (deploy's `--min-ready`); `None`: ready once started.
    pub min_ready: Option<Duration>,
}

/// How many lines of a failed container's output are shown.
const LAST_LINES: u64 = 20;
/// How often a container is looked at while its checks run.
const WATCH: Duration = Duration::from_millis(200);

pub async fn start<E: Engine>(
    ctx: Context<E>,
    row: usize,
    id: InstanceId,
    options: StartOptions,
) -> Outcome {
    if let Some(slots) = &ctx.ahead {
        if let Some(made) = slots.take(row).await {
            return start_made(&ctx, row, id, made, options).await;
        }
    }
    let instance = ctx.env.instance(id);
    let engine = ctx.engine(id);
    if ctx.known_absent(id) && !has_pre_start_checks(&ctx, id) {
        match try_create(&ctx, row, id, options.refresh_images, None).await {
            Ok(made) => return start_made(&ctx, row, id, made, options).await,
            Err(NotCreated::Failed(failure)) => return Outcome::Failed(failure),
            // A container came since the play's list: it is looked at, as any.
            Err(NotCreated::NameInUse(_)) => {}
        }
    }
    ctx.step(row, "checking container");
    let observed = match engine.inspect(&instance.name).await {
        Ok(observed) => observed,
        Err(e) => return Outcome::Failed(Failure::new(e.to_string())),
    };
    let Some(existing) = observed.as_ref().map(|o| o.existing(&ctx.env, id)) else {
        // Nothing to compare with: the spec is made once, by the create.
        return launch(&ctx, row, id, options).await;
    };
    let spec = ctx.spec(id, secrets_salt_of(&existing));
    let image_now = match image_now(&ctx, id).await {
        Ok(image) => image,
        Err(failure) => return Outcome::Failed(failure),
    };
    let step = plan::start(&spec, Some(&existing), image_now.as_deref(), options.reuse);
    match (step.action, observed) {
        (Action::Leave, _) => return Outcome::Done(format!("already {}", step.reason)),
        (Action::Outdated, _) => return Outcome::Warning(format!("already {}", step.reason)),
        (Action::Conflict, _) => return Outcome::Failed(Failure::new(step.reason)),
        // Boxed, as a path few instances take: a future is as large as its largest
        // state, and 20,000 of these may run at once.
        (Action::StartExisting, Some(old)) => {
            let checks = run_checks(&ctx, row, id, None, LifecycleState::PreStart);
            if let Err(failure) = Box::pin(checks).await {
                return Outcome::Failed(failure);
            }
            return Box::pin(restart_existing(&ctx, row, id, &old, options.min_ready)).await;
        }
        (_, Some(old)) => {
            ctx.step(row, format!("removing the old container ({})", step.reason));
            if let Err(e) = engine.remove(&old.id).await {
                return Outcome::Failed(Failure::new(format!(
                    "cannot remove the old container: {e}"
                )));
            }
        }
        (_, None) => {}
    }
    launch(&ctx, row, id, options).await
}

/// The salt of an existing container's secrets, to compare its secrets with the file's.
pub fn secrets_salt_of(existing: &plan::Existing) -> Option<&str> {
    crate::secrets::Values::salt_of(existing.secrets.as_deref())
}

/// What the instance's image resolves to on its ship: as the play prepared it, or asked
/// now for a play that prepared none.
pub async fn image_now<E: Engine>(
    ctx: &Context<E>,
    id: InstanceId,
) -> Result<Option<String>, Failure> {
    let instance = ctx.env.instance(id);
    if ctx.images.contains(instance.ship.0, &instance.image.name) {
        return Ok(ctx
            .images
            .id(instance.ship.0, &instance.image.name)
            .map(str::to_owned));
    }
    ctx.engine(id)
        .image_id(&instance.image.name)
        .await
        .map_err(|e| Failure::new(e.to_string()))
}

/// Creates the instance's container under its name (none may exist), starts it and waits
/// for its readiness: `pre-start` checks, this play's readiness token, the image (pulled
/// if the play did not prepare it), create, start, then [`await_ready`].
pub async fn launch<E: Engine>(
    ctx: &Context<E>,
    row: usize,
    id: InstanceId,
    options: StartOptions,
) -> Outcome {
    if let Err(failure) = run_checks(ctx, row, id, None, LifecycleState::PreStart).await {
        return Outcome::Failed(failure);
    }
    match create(ctx, row, id, options.refresh_images, None).await {
        Ok(made) => start_made(ctx, row, id, made, options).await,
        Err(failure) => Outcome::Failed(failure),
    }
}

/// A container created for this play and not started yet.
pub struct Made {
    pub container_id: String,
    /// What the engine left out of the definition.
    pub warnings: Vec<String>,
    /// This play's readiness token for it, and the endpoint it reports to.
    pub expectation: Option<(Expectation, String)>,
}

/// Whether the instance has `pre-start` checks (they come before its create).
pub fn has_pre_start_checks<E: Engine>(ctx: &Context<E>, id: InstanceId) -> bool {
    ctx.env
        .instance(id)
        .lifecycle
        .get(&LifecycleState::PreStart)
        .is_some_and(|c| !c.is_empty())
}

/// Why [`try_create`] made nothing.
pub enum NotCreated {
    /// Another container has the name.
    NameInUse(Failure),
    Failed(Failure),
}

/// Creates the instance's container under its name, or `under` another (none may exist),
/// with this play's readiness token, pulling the image first if the play did not prepare
/// it (`refresh`: even when present). A create the engine did not answer leaves nothing
/// behind.
pub async fn create<E: Engine>(
    ctx: &Context<E>,
    row: usize,
    id: InstanceId,
    refresh: bool,
    under: Option<String>,
) -> Result<Made, Failure> {
    try_create(ctx, row, id, refresh, under)
        .await
        .map_err(|e| match e {
            NotCreated::NameInUse(f) | NotCreated::Failed(f) => f,
        })
}

/// [`create`], telling a name in use from other failures.
pub async fn try_create<E: Engine>(
    ctx: &Context<E>,
    row: usize,
    id: InstanceId,
    refresh: bool,
    under: Option<String>,
) -> Result<Made, NotCreated> {
    let instance = ctx.env.instance(id);
    let engine = ctx.engine(id);
    // A new container: a new salt for its secrets' hashes.
    let mut spec = ctx.spec(id, None);
    if let Some(name) = under {
        spec.name = name;
    }
    let mut expectation = None;
    if let Some(handshake) = &ctx.handshake {
        match handshake.expect(&instance.name, instance.ship.0) {
            Ok(Some(invitation)) => {
                // Added after the digest was taken: the token changes every play,
                // the definition does not.
                spec.env.retain(|e| !e.starts_with("MAESTRO_READINESS_"));
                spec.env.extend(invitation.variables());
                expectation = Some((invitation.expected, invitation.endpoint));
            }
            Ok(None) => {}
            Err(e) => return Err(NotCreated::Failed(Failure::new(e))),
        }
    }
    if !ctx.images.contains(instance.ship.0, &instance.image.name) {
        ensure_image(ctx, row, id, refresh)
            .await
            .map_err(NotCreated::Failed)?;
    }
    ctx.step(row, "creating container");
    match engine.create(&spec).await {
        Ok(created) => Ok(Made {
            container_id: created.id,
            warnings: created.warnings,
            expectation,
        }),
        Err(e @ EngineError::NoAnswer { .. }) => {
            // Boxed, as the other rare path below: a task's future is as large as all the
            // futures it may await, and plays nest tasks deep.
            let left = Box::pin(unanswered_create(ctx, id, &spec.name)).await;
            Err(NotCreated::Failed(Failure::new(format!(
                "cannot create the container: {e}; {left}"
            ))))
        }
        Err(e @ EngineError::NameInUse(_)) => Err(NotCreated::NameInUse(Failure::new(format!(
            "cannot create the container: {e}"
        )))),
        Err(e) => Err(NotCreated::Failed(Failure::new(format!(
            "cannot create the container: {e}"
        )))),
    }
}

/// Starts a container [`create`] made and waits for its readiness ([`await_ready`], then
/// the health gate). A container whose start fails is removed.
pub async fn start_made<E: Engine>(
    ctx: &Context<E>,
    row: usize,
    id: InstanceId,
    made: Made,
    options: StartOptions,
) -> Outcome {
    let engine = ctx.engine(id);
    let Made {
        container_id,
        warnings: created_warnings,
        expectation,
    } = made;
    crate::failpoint::pause("launch:created").await;
    ctx.step(row, "starting container");
    if let Err(e) = engine.start(&container_id).await {
        let left = Box::pin(discard_unstarted(engine, &container_id, &e)).await;
        return Outcome::Failed(Failure::new(format!(
            "container {} created but not started: {e}; {left}",
            short(&container_id)
        )));
    }
    crate::failpoint::pause("launch:started").await;
    let readiness = await_ready(ctx, row, id, &container_id, expectation, options.min_ready);
    // Boxed: the wait for readiness is most of a launch's future, which deploy nests in
    // its own (debug builds overflowed a worker's stack when it grew).
    Box::pin(super::health::gate(
        ctx,
        row,
        id,
        &container_id,
        created_warnings,
        readiness,
        false,
    ))
    .await
}

/// After a create the engine did not answer in time: whether it made the container is
/// found out and, if it did, the container is removed (a container never started is of no
/// use to anyone); what was found, in words.
async fn unanswered_create<E: Engine>(ctx: &Context<E>, id: InstanceId, name: &str) -> String {
    let engine = ctx.engine(id);
    // A container created ahead by deploy is never started under its own name.
    let next = if name == ctx.env.instance(id).name {
        "the next start finds it"
    } else {
        "the next deploy removes it"
    };
    match engine.inspect(name).await {
        Ok(None) => {
            format!("no container {name} exists (should the engine still create it, {next})")
        }
        Ok(Some(found)) if found.owner(&ctx.env, id) == plan::Owner::Own => {
            match engine.remove(&found.id).await {
                Ok(()) => format!(
                    "the engine had created it all the same: {} removed",
                    short(&found.id)
                ),
                Err(e) => format!(
                    "the engine had created it all the same, and {} is left created: \
                     cannot remove it: {e}",
                    short(&found.id)
                ),
            }
        }
        Ok(Some(found)) => format!(
            "a container {name} maestro did not make for it exists now ({}), left alone",
            short(&found.id)
        ),
        Err(e) => format!(
            "whether the engine created it is unknown ({e}); if it did, it is left created \
             and {next}"
        ),
    }
}

/// After a start that failed: the container this play just created is removed (killed
/// first if the engine may have started it late), so nothing is left half-made; what
/// became of it, in words.
async fn discard_unstarted<E: Engine>(engine: &E, container_id: &str, why: &EngineError) -> String {
    if matches!(why, EngineError::NoAnswer { .. }) {
        let _ = engine.kill(container_id).await;
    }
    match engine.remove(container_id).await {
        Ok(()) => "removed".into(),
        Err(e) => format!("left created: cannot remove it: {e}"),
    }
}

/// Waits for a container this play started to be ready: maestro-guest's report when this
/// play invited one, else the `running` checks; with neither, a container that must stay
/// up for `min_ready` (deploy's rule: a crash 2 s after the start is a failure).
pub async fn await_ready<E: Engine>(
    ctx: &Context<E>,
    row: usize,
    id: InstanceId,
    container_id: &str,
    expectation: Option<(Expectation, String)>,
    min_ready: Option<Duration>,
) -> Outcome {
    let guest_outcome = match expectation {
        Some((expected, endpoint)) => {
            Some(await_guest(ctx, row, id, container_id, expected, &endpoint).await)
        }
        None => None,
    };
    let outcome = match guest_outcome {
        Some(outcome) => outcome,
        None => match run_checks(ctx, row, id, Some(container_id), LifecycleState::Running).await {
            Ok(()) => Outcome::Done("started".into()),
            Err(failure) => Outcome::Failed(failure),
        },
    };
    if !outcome.is_success() || has_running_checks(ctx, id) {
        return outcome;
    }
    // Nothing but the container's own survival says it is ready: a guest that reported
    // counts (it ran the app's own readiness), a silent one does not.
    let reported = matches!(&outcome, Outcome::Done(m) if m.contains("ready after"));
    match min_ready {
        Some(window) if !reported => match stays_up(ctx, row, id, container_id, window).await {
            Ok(()) => outcome,
            Err(failure) => Outcome::Failed(failure),
        },
        _ => outcome,
    }
}

/// Whether something besides the container's survival says when the instance is ready:
/// `running` checks, or a health check the engine runs.
fn has_running_checks<E: Engine>(ctx: &Context<E>, id: InstanceId) -> bool {
    let instance = ctx.env.instance(id);
    instance
        .lifecycle
        .get(&LifecycleState::Running)
        .is_some_and(|c| !c.is_empty())
        || matches!(
            instance.healthcheck.as_deref(),
            Some(
                maestro_core::model::Healthcheck::Image
                    | maestro_core::model::Healthcheck::Defined { .. }
            )
        )
}

/// `Ok` once the container has stayed running for `window`, watched all along.
async fn stays_up<E: Engine>(
    ctx: &Context<E>,
    row: usize,
    id: InstanceId,
    container_id: &str,
    window: Duration,
) -> Result<(), Failure> {
    ctx.step(
        row,
        format!(
            "no check says when it is ready: watching that it stays up for {:.1}s",
            window.as_secs_f64()
        ),
    );
    let until = tokio::time::Instant::now() + window;
    loop {
        still_running(ctx.engine(id), container_id).await?;
        if tokio::time::Instant::now() >= until {
            return Ok(());
        }
        tokio::time::sleep_until(until.min(tokio::time::Instant::now() + WATCH)).await;
    }
}

/// Starts an existing stopped container again (`--reuse`, a restored or rolled-back
/// generation) and waits for it to be ready. Its maestro-guest holds the token of the play
/// that created it, which no play accepts any more, so its readiness is asked through the
/// engine instead (`maestro-guest health` run in the container), besides the `running`
/// checks; and the instance's health check gates it as it gates a new container, except
/// that a container created without one (an older generation) passes that part.
pub async fn restart_existing<E: Engine>(
    ctx: &Context<E>,
    row: usize,
    id: InstanceId,
    old: &Observed,
    min_ready: Option<Duration>,
) -> Outcome {
    let engine = ctx.engine(id);
    ctx.step(row, format!("starting container {}", short(&old.id)));
    if let Err(e) = engine.start(&old.id).await {
        return Outcome::Failed(Failure::new(format!(
            "container {} not started: {e}",
            short(&old.id)
        )));
    }
    let readiness = async {
        if let Err(failure) = run_checks(ctx, row, id, Some(&old.id), LifecycleState::Running).await
        {
            return Outcome::Failed(failure);
        }
        let guest = match engine.inspect(&old.id).await {
            Ok(Some(o)) => o.guest,
            _ => false,
        };
        if guest {
            return match guest_health(ctx, row, id, &old.id).await {
                Ok(()) => Outcome::Done("started, maestro-guest says ready".into()),
                Err(failure) => Outcome::Failed(failure),
            };
        }
        if !has_running_checks(ctx, id) {
            if let Some(window) = min_ready {
                if let Err(failure) = stays_up(ctx, row, id, &old.id, window).await {
                    return Outcome::Failed(failure);
                }
            }
        }
        Outcome::Done("started".into())
    };
    super::health::gate(ctx, row, id, &old.id, Vec::new(), readiness, true).await
}

/// How long a restarted container's maestro-guest may take to say `ready` when asked
/// through the engine.
const GUEST_HEALTH_WAIT: Duration = Duration::from_secs(120);

/// Asks the container's maestro-guest for the app's state (`maestro-guest health`, run in
/// the container by the engine: no network path and no token needed) until it says ready,
/// the container exits, or [`GUEST_HEALTH_WAIT`] passes.
async fn guest_health<E: Engine>(
    ctx: &Context<E>,
    row: usize,
    id: InstanceId,
    container_id: &str,
) -> Result<(), Failure> {
    ctx.step(row, "asking maestro-guest whether the app is ready");
    let engine = ctx.engine(id);
    let until = tokio::time::Instant::now() + GUEST_HEALTH_WAIT;
    let command = ["maestro-guest".to_owned(), "health".to_owned()];
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        match engine
            .exec(container_id, &command, left.max(Duration::from_secs(1)))
            .await
        {
            Ok(0) => return Ok(()),
            // Not on the PATH: nothing to ask; the container's survival decides.
            Ok(126 | 127) => return still_running(engine, container_id).await,
            Ok(_) | Err(_) => still_running(engine, container_id).await?,
        }
        if tokio::time::Instant::now() >= until {
            return Err(Failure::new(format!(
                "maestro-guest did not say ready within {}s",
                GUEST_HEALTH_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(WATCH).await;
    }
}

/// How long a container running maestro-guest may stay silent before its readiness is
/// taken as unknown: its first report normally arrives within milliseconds of the start.
const GUEST_SILENCE: Duration = Duration::from_secs(5);

/// Waits for a started container's readiness. With maestro-guest as its entry point, its
/// `ready` report is the `running` check (whichever of the report and the configured checks
/// comes first wins) and its `failed` report fails the instance at once. Without it, the
/// polling checks decide as before.
async fn await_guest<E: Engine>(
    ctx: &Context<E>,
    row: usize,
    id: InstanceId,
    container_id: &str,
    mut expected: Expectation,
    endpoint: &str,
) -> Outcome {
    let engine = ctx.engine(id);
    let guest = match engine.inspect(container_id).await {
        Ok(Some(observed)) => observed.guest,
        Ok(None) | Err(_) => false,
    };
    let checks = run_checks(ctx, row, id, Some(container_id), LifecycleState::Running);
    if !guest {
        drop(expected);
        return match checks.await {
            Ok(()) => Outcome::Done("started".into()),
            Err(failure) => Outcome::Failed(failure),
        };
    }
    let has_checks = ctx
        .env
        .instance(id)
        .lifecycle
        .get(&LifecycleState::Running)
        .is_some_and(|c| !c.is_empty());
    ctx.step(row, "waiting for maestro-guest");
    tokio::pin!(checks);
    let silence = tokio::time::sleep(GUEST_SILENCE);
    tokio::pin!(silence);
    let mut heard = false;
    let mut open = true;
    // A refused report is not a verdict: anyone who can reach the service can send one
    // naming any instance. It only explains a silence.
    let mut refused: Option<String> = None;
    loop {
        tokio::select! {
            word = expected.words.recv(), if open => match word {
                Some(Word::Starting { status }) => {
                    heard = true;
                    ctx.step(row, if status.is_empty() {
                        "maestro-guest: starting".to_owned()
                    } else {
                        format!("maestro-guest: {status}")
                    });
                }
                Some(Word::Ready { took_ms, .. }) => {
                    let refused = match expected.refused() {
                        0 => String::new(),
                        1 => " (a report naming it was refused)".to_owned(),
                        n => format!(" ({n} reports naming it were refused)"),
                    };
                    return Outcome::Done(format!("started, ready after {}{refused}", millis(took_ms)));
                }
                Some(Word::Failed { exit_code, last_lines, reason }) => {
                    return Outcome::Failed(Failure {
                        message: format!("maestro-guest: {reason}"),
                        exit_code: exit_code.map(i64::from),
                        logs: last_lines,
                    });
                }
                Some(Word::Stopping) => {
                    heard = true;
                    ctx.step(row, "maestro-guest: the app is stopping");
                }
                // Only the first refusal comes as a word (the rest are counted), so a
                // script sending thousands prints one line.
                Some(Word::Refused(why)) => {
                    ctx.step(row, format!("a report naming it was refused: {why}"));
                    refused = Some(why);
                }
                // The registry outlives every expectation; nothing more can come, so the
                // checks and the container decide.
                None => (open, heard) = (false, true),
            },
            result = &mut checks, if has_checks => {
                return match result {
                    Ok(()) => Outcome::Done("started".into()),
                    Err(failure) => Outcome::Failed(failure),
                };
            }
            _ = tokio::time::sleep(WATCH), if !has_checks => {
                if let Err(failure) = still_running(engine, container_id).await {
                    return Outcome::Failed(failure);
                }
            }
            _ = &mut silence, if !heard => {
                if has_checks {
                    heard = true;
                } else {
                    return Outcome::Warning(match &refused {
                        Some(why) => match expected.refused() {
                            0 | 1 => format!(
                                "started, readiness unknown: maestro-guest's reports were refused ({why})"
                            ),
                            n => format!(
                                "started, readiness unknown: maestro-guest's reports were refused ({why}; {n} in all)"
                            ),
                        },
                        None => format!(
                            "started, readiness unknown: maestro-guest sent no report within {}s (can the container reach {endpoint}?)",
                            GUEST_SILENCE.as_secs()
                        ),
                    });
                }
            }
        }
    }
}

fn millis(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// Stops (or kills) an instance: `pre-stop` checks (not for kill), then the engine's
/// stop with the instance's `stop_timeout`, then `stopped` checks.
pub async fn stop<E: Engine>(ctx: Context<E>, row: usize, id: InstanceId, kill: bool) -> Outcome {
    let instance = ctx.env.instance(id);
    let engine = ctx.engine(id);
    ctx.step(row, "checking container");
    let observed = match engine.inspect(&instance.name).await {
        Ok(Some(observed)) => observed,
        Ok(None) => return Outcome::Done("absent".into()),
        Err(e) => return Outcome::Failed(Failure::new(e.to_string())),
    };
    if let Some(skipped) = not_its_own(&ctx, id, &observed) {
        return skipped;
    }
    if !observed.running {
        return Outcome::Done("already stopped".into());
    }
    if !kill {
        // Boxed (here and below): most instances have no checks, and a future is as
        // large as its largest state.
        let checks = run_checks(&ctx, row, id, Some(&observed.id), LifecycleState::PreStop);
        if let Err(failure) = Box::pin(checks).await {
            return Outcome::Failed(failure);
        }
    }
    let result = if kill {
        ctx.step(row, "killing");
        engine.kill(&observed.id).await
    } else {
        ctx.step(
            row,
            format!("stopping (grace period {}s)", instance.stop_timeout),
        );
        engine.stop(&observed.id, instance.stop_timeout).await
    };
    if let Err(e) = result {
        return Outcome::Failed(Failure::new(e.to_string()));
    }
    let checks = run_checks(&ctx, row, id, None, LifecycleState::Stopped);
    if let Err(failure) = Box::pin(checks).await {
        return Outcome::Failed(failure);
    }
    Outcome::Done(if kill { "killed" } else { "stopped" }.into())
}

/// The `pre-stop` checks of a running container.
pub async fn pre_stop<E: Engine>(
    ctx: &Context<E>,
    row: usize,
    id: InstanceId,
    container_id: &str,
) -> Result<(), Failure> {
    run_checks(ctx, row, id, Some(container_id), LifecycleState::PreStop).await
}

/// A container of the instance's name that maestro created for something else (another
/// environment, another ship sharing the engine): left alone, which is all a play that
/// stops or removes the instance's container can do.
fn not_its_own<E: Engine>(
    ctx: &Context<E>,
    id: InstanceId,
    observed: &Observed,
) -> Option<Outcome> {
    match observed.owner(&ctx.env, id) {
        plan::Owner::Conflict(why) => Some(Outcome::Skipped(format!(
            "absent: the container named {} {why}, left alone",
            observed.name
        ))),
        plan::Owner::Own | plan::Owner::Foreign => None,
    }
}

/// Removes a stopped instance's container; a running one is left alone (and one maestro
/// did not create is removed as MaestroNG removes it, found by name).
pub async fn clean<E: Engine>(ctx: Context<E>, row: usize, id: InstanceId) -> Outcome {
    let instance = ctx.env.instance(id);
    let engine = ctx.engine(id);
    ctx.step(row, "checking container");
    let observed = match ctx.known_absent(id) {
        true => Ok(None),
        false => engine.inspect(&instance.name).await,
    };
    let outcome = match observed {
        Ok(None) => Outcome::Done("absent".into()),
        Ok(Some(observed)) => match not_its_own(&ctx, id, &observed) {
            Some(skipped) => skipped,
            None if observed.running => Outcome::Skipped("running, left in place".into()),
            None => {
                ctx.step(row, "removing container");
                match engine.remove(&observed.id).await {
                    Ok(()) => Outcome::Done("removed".into()),
                    Err(e) => Outcome::Failed(Failure::new(e.to_string())),
                }
            }
        },
        Err(e) => Outcome::Failed(Failure::new(e.to_string())),
    };
    // The previous generation deploy kept goes too (rollback has nothing to return to
    // afterwards), and what an interrupted deploy created ahead.
    match (super::deploy::clean_previous(&ctx, id).await, outcome) {
        (Ok(None), outcome) | (Ok(Some(_)), outcome @ Outcome::Failed(_)) => outcome,
        (Ok(Some(removed)), Outcome::Done(m)) => Outcome::Done(format!("{m}; {removed}")),
        (Ok(Some(removed)), Outcome::Skipped(m)) => Outcome::Skipped(format!("{m}; {removed}")),
        (Ok(Some(removed)), other) => {
            ctx.step(row, removed);
            other
        }
        (Err(e), _) => Outcome::Failed(Failure::new(e)),
    }
}

/// Makes sure the instance's image is on its ship: pulls it (with the registry's
/// credentials) when missing or when `refresh`. `Ok(true)` when it pulled.
async fn ensure_image<E: Engine>(
    ctx: &Context<E>,
    row: usize,
    id: InstanceId,
    refresh: bool,
) -> Result<bool, Failure> {
    let image = &ctx.env.instance(id).image.name;
    let engine = ctx.engine(id);
    if !refresh
        && engine
            .image_id(image)
            .await
            .map_err(|e| Failure::new(e.to_string()))?
            .is_some()
    {
        return Ok(false);
    }
    let credentials = credentials::for_image(&ctx.env, image, &ctx.docker_config)
        .await
        .map_err(|e| Failure::new(format!("cannot pull {image}: {e}")))?;
    ctx.step(row, format!("pulling image {image}"));
    let progress = |message: String| ctx.step(row, message);
    engine
        .pull(image, credentials.as_ref(), &progress)
        .await
        .map_err(|e| Failure::new(format!("cannot pull {image}: {e}")))?;
    Ok(true)
}

/// Runs the checks of `state` concurrently. While `running` checks wait, the container is
/// watched: if it exits, the instance fails at once with its exit code and last lines.
async fn run_checks<E: Engine>(
    ctx: &Context<E>,
    row: usize,
    id: InstanceId,
    container_id: Option<&str>,
    state: LifecycleState,
) -> Result<(), Failure> {
    let instance = ctx.env.instance(id);
    let engine = ctx.engine(id);
    let checks = instance
        .lifecycle
        .get(&state)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let watch = state == LifecycleState::Running;
    if checks.is_empty() {
        if let (true, Some(cid)) = (watch, container_id) {
            return still_running(engine, cid).await;
        }
        return Ok(());
    }
    ctx.step(
        row,
        format!(
            "waiting for {} check{}",
            state.as_str(),
            if checks.len() == 1 { "" } else { "s" }
        ),
    );
    let ship_ip = ctx.env.ship(instance.ship).ip.clone();
    let container_env: BTreeMap<String, String> = ctx
        .env
        .container_env(id)
        .map(|(k, v)| (k.to_owned(), v.unwrap_or_default().to_owned()))
        .collect();
    let cid = container_id.unwrap_or(&instance.name);
    let all = join_all(
        checks
            .iter()
            .map(|c| checks::run(c, &ship_ip, cid, &container_env, engine, &ctx.http)),
    );
    tokio::pin!(all);
    loop {
        tokio::select! {
            results = &mut all => {
                let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
                if !errors.is_empty() {
                    return Err(Failure::new(errors.join("; ")));
                }
                // A check can pass on a container that has just exited: Docker's port
                // proxy accepts, and its dial to the vanished container address hangs
                // instead of being refused. Only a container still running has passed.
                if let (true, Some(cid)) = (watch, container_id) {
                    return still_running(engine, cid).await;
                }
                return Ok(());
            }
            _ = tokio::time::sleep(WATCH), if watch && container_id.is_some() => {
                still_running(engine, cid).await?;
            }
        }
    }
}

/// `Ok` while the container runs; else a failure with its exit code and last lines.
async fn still_running<E: Engine>(engine: &E, container_id: &str) -> Result<(), Failure> {
    match engine.inspect(container_id).await {
        Ok(Some(observed)) if observed.running => Ok(()),
        Ok(Some(observed)) => {
            let logs = engine
                .logs(container_id, Some(LAST_LINES))
                .await
                .unwrap_or_default();
            Err(Failure {
                message: match observed.exit_code {
                    Some(code) => format!("the container exited with code {code}"),
                    None => "the container is not running".into(),
                },
                exit_code: observed.exit_code,
                logs,
            })
        }
        Ok(None) => Err(Failure::new(
            "the container disappeared (removed by someone else?)",
        )),
        Err(e) => Err(Failure::new(e.to_string())),
    }
}

pub fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}
