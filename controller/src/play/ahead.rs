//! Creating ahead: while the instances of earlier dependency levels (or, in a deploy,
//! earlier batches) come up, the containers of later ones are created (not started), so
//! that an instance's turn costs only its start and its readiness (a deploy's turn: two
//! renames while the old container still serves, then its stop, the start and the
//! readiness). An instance still starts only once everything it waits for is ready: what
//! is done ahead is the create alone, and only when nothing the create needs depends on
//! the play's progress (see [`eligible`]).
//!
//! Each row has a [`Slot`]. The scheduler runs [`Creates::prepare`] for a row with a place
//! of low priority (see [`super::budget`]); the row's turn takes what was made
//! ([`Slots::take`]); a row that will not have its turn (a dependency failed, Ctrl-C) has
//! it removed ([`Creates::discard`]), and its outcome says so.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::future::BoxFuture;
use tokio::sync::watch;

use maestro_core::model::{Environment, InstanceId};
use maestro_core::spec::staged_name;

use super::tasks::{self, Context, Made, short};
use crate::engine::Engine;

/// What was done ahead for one row.
enum Slot {
    /// Nothing yet: its turn or [`Creates::prepare`], whichever comes first, decides.
    Waiting,
    /// A create in flight.
    Creating,
    Made(Made),
    /// What was made was taken (by its turn, or to be removed) and is not known to be
    /// gone: a row whose outcome its taker did not tell (the play gave up on it in the
    /// middle) still names the container. Only a remove that ended moves it on.
    Taken(String),
    /// Nothing to hand over: its turn began first, nothing was created ahead, or what was
    /// made was removed (or its failed remove was told).
    Done,
    /// A create whose end nobody saw (the play gave up on it): whether the container
    /// exists is unknown.
    Unknown,
}

/// The rows' slots, shared by the play's tasks (through [`Context::ahead`]).
pub struct Slots {
    slots: Vec<watch::Sender<Slot>>,
    /// No work ahead begins any more (Ctrl-C).
    closed: AtomicBool,
}

impl Slots {
    pub fn new(rows: usize) -> Arc<Self> {
        Arc::new(Slots {
            slots: (0..rows)
                .map(|_| watch::Sender::new(Slot::Waiting))
                .collect(),
            closed: AtomicBool::new(false),
        })
    }

    /// Ends the row's slot: waits for a create in flight to end, and says what it made.
    /// A container handed over stays named in the slot ([`Slot::Taken`]) until
    /// [`Slots::removed`]. Nothing is created ahead for the row afterwards.
    async fn finish(&self, row: usize) -> Ended {
        let Some(slot) = self.slots.get(row) else {
            return Ended::Nothing;
        };
        let mut changes = slot.subscribe();
        loop {
            let mut ended = None;
            slot.send_if_modified(|s| {
                let (next, what) = match std::mem::replace(s, Slot::Done) {
                    Slot::Creating => (Slot::Creating, None),
                    Slot::Made(made) => (
                        Slot::Taken(made.container_id.clone()),
                        Some(Ended::Made(made)),
                    ),
                    Slot::Taken(id) => (Slot::Taken(id.clone()), Some(Ended::Left(id))),
                    Slot::Unknown => (Slot::Unknown, Some(Ended::Unknown)),
                    Slot::Waiting | Slot::Done => (Slot::Done, Some(Ended::Nothing)),
                };
                *s = next;
                ended = what;
                ended.is_some()
            });
            match ended {
                Some(ended) => return ended,
                // Its sender lives as long as `self`, so this ends when the create does.
                None => {
                    if changes.changed().await.is_err() {
                        return Ended::Nothing;
                    }
                }
            }
        }
    }

    /// The container taken from the row's slot is known to be gone, or its failed remove
    /// was told.
    pub(super) fn removed(&self, row: usize) {
        if let Some(slot) = self.slots.get(row) {
            slot.send_replace(Slot::Done);
        }
    }

    /// The container created ahead for the row, at its turn (`None`: the turn creates
    /// it as usual).
    pub async fn take(&self, row: usize) -> Option<Made> {
        match self.finish(row).await {
            Ended::Made(made) => Some(made),
            _ => None,
        }
    }
}

/// What [`Slots::finish`] found.
enum Ended {
    Nothing,
    Made(Made),
    /// A create whose end nobody saw.
    Unknown,
    /// A container made ahead and taken, whose taker was given up on before it told
    /// what became of it.
    Left(String),
}

/// Marks the slot [`Slot::Unknown`] if dropped while its create is in flight.
struct InFlight<'a>(&'a watch::Sender<Slot>);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.send_if_modified(|s| match s {
            Slot::Creating => {
                *s = Slot::Unknown;
                true
            }
            _ => false,
        });
    }
}

/// Whether the container of `id` can be created before the instances it waits for are
/// ready: its image is on its ship already (the play prepared it), it has no `pre-start`
/// checks (they come before the create), and its definition names no other container
/// (`volumes_from`, `links`, `network_mode: container:…`), which Docker looks up at the
/// create and which may be replaced by the play before then.
pub fn eligible<E: Engine>(ctx: &Context<E>, id: InstanceId) -> bool {
    let env: &Environment = &ctx.env;
    let instance = env.instance(id);
    ctx.images
        .id(instance.ship.0, &instance.image.name)
        .is_some()
        && !tasks::has_pre_start_checks(ctx, id)
        && instance.volumes_from.is_empty()
        && instance.links.is_empty()
        && !instance
            .net
            .as_deref()
            .is_some_and(|n| n.starts_with("container:"))
}

/// Where [`Creates`] makes a row's container, and for which rows.
pub enum Under {
    /// `start`: under the instance's name, only where no container is (one there is the
    /// turn's to decide on: left, replaced, started, after the dependencies are ready, as
    /// without creating ahead).
    Name,
    /// `deploy`: under [`staged_name`], beside the container it will replace, for the rows
    /// marked `true` (those the rollout replaces or creates). At the row's turn the
    /// replaced container is renamed away and this one takes the instance's name
    /// ([`super::deploy::replace`]); it is never started under the staged name.
    Staged(Vec<bool>),
}

/// Creating ahead in a `start` or `deploy` play: `selection[row]` is the row's instance.
pub struct Creates<E: Engine> {
    pub ctx: Context<E>,
    pub selection: Vec<InstanceId>,
    pub slots: Arc<Slots>,
    pub under: Under,
}

impl<E: Engine> Creates<E> {
    /// The play that deals with a container left made ahead.
    fn next_play(&self) -> &'static str {
        match self.under {
            Under::Name => "the next start finds it",
            Under::Staged(_) => "the next deploy removes it",
        }
    }
}

/// Makes the row's container ahead of its turn, as [`Creates::under`] says; what its
/// slot holds afterwards.
async fn make<E: Engine>(
    ctx: &Context<E>,
    row: usize,
    id: InstanceId,
    staged: bool,
    waiting_for: &str,
) -> Slot {
    let name = &ctx.env.instance(id).name;
    let engine = ctx.engine(id);
    let under = if staged {
        let staged = staged_name(name);
        match engine.inspect(&staged).await {
            Ok(None) => {}
            // A killed deploy's. One that cannot be removed (or is not maestro's for this
            // instance) is the turn's to report.
            Ok(Some(left)) => {
                if !matches!(
                    super::deploy::remove_staged(ctx, row, id, &left).await,
                    Ok(true)
                ) {
                    return Slot::Done;
                }
            }
            Err(_) => return Slot::Done,
        }
        Some(staged)
    } else {
        // Looked at only when the play's list did not say the name is free.
        if !ctx.known_absent(id) && !matches!(engine.inspect(name).await, Ok(None)) {
            return Slot::Done;
        }
        None
    };
    match tasks::try_create(ctx, row, id, false, under).await {
        Ok(made) => {
            ctx.step(
                row,
                format!(
                    "created {}, waiting for {waiting_for}",
                    short(&made.container_id)
                ),
            );
            crate::failpoint::pause("ahead:created").await;
            Slot::Made(made)
        }
        // A container came since the play's list: the turn decides on it.
        Err(tasks::NotCreated::NameInUse(_)) => Slot::Done,
        // Tried again at its turn, which reports what it finds.
        Err(tasks::NotCreated::Failed(failure)) => {
            ctx.step(
                row,
                format!(
                    "not created ahead ({}); created at its turn",
                    failure.message
                ),
            );
            Slot::Done
        }
    }
}

impl<E: Engine> super::Ahead for Creates<E> {
    fn wants(&self, row: usize) -> bool {
        let marked = match &self.under {
            Under::Name => true,
            Under::Staged(rows) => rows.get(row).copied().unwrap_or(false),
        };
        marked
            && self
                .selection
                .get(row)
                .is_some_and(|&id| eligible(&self.ctx, id))
    }

    fn prepare(&self, row: usize, waiting_for: String) -> BoxFuture<'static, ()> {
        let ctx = self.ctx.clone();
        let slots = self.slots.clone();
        let id = self.selection[row];
        let staged = matches!(self.under, Under::Staged(_));
        Box::pin(async move {
            let Some(slot) = slots.slots.get(row) else {
                return;
            };
            if slots.closed.load(Ordering::SeqCst)
                || !slot.send_if_modified(|s| match s {
                    Slot::Waiting => {
                        *s = Slot::Creating;
                        true
                    }
                    _ => false,
                })
            {
                return;
            }
            let in_flight = InFlight(slot);
            let made = make(&ctx, row, id, staged, &waiting_for).await;
            slot.send_replace(made);
            drop(in_flight);
        })
    }

    fn discard(&self, row: usize) -> BoxFuture<'static, Option<String>> {
        let ctx = self.ctx.clone();
        let slots = self.slots.clone();
        let id = self.selection.get(row).copied();
        let next = self.next_play();
        Box::pin(async move {
            let id = id?;
            match slots.finish(row).await {
                Ended::Nothing => None,
                Ended::Made(made) => {
                    let what = short(&made.container_id).to_owned();
                    // Should this be given up on before the remove ends, the slot still
                    // names the container, and the row's outcome says so.
                    let removed = ctx.engine(id).remove(&made.container_id).await;
                    slots.removed(row);
                    Some(match removed {
                        Ok(()) => format!("its container {what}, created ahead, was removed"),
                        Err(e) => format!(
                            "its container {what}, created ahead, is left created: cannot remove it: {e}"
                        ),
                    })
                }
                Ended::Left(container) => Some(format!(
                    "its container {}, created ahead, may be left: {next}",
                    short(&container)
                )),
                Ended::Unknown => Some(format!(
                    "it was being created ahead when the play gave up: if the engine created \
                     it, {next}"
                )),
            }
        })
    }

    fn close(&self) {
        self.slots.closed.store(true, Ordering::SeqCst);
    }
}
