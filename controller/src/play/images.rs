//! The images of a play, prepared before any container is touched: every distinct image
//! once per ship, ships in parallel, pulled as the play's policy says, and resolved to the
//! id it names there now. A play that cannot have an image it needs fails here, having
//! changed nothing; the tasks then compare each container's image id with the resolved
//! one (a retagged or freshly pulled image makes a container outdated).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use maestro_core::model::InstanceId;

use super::tasks::Context;
use super::{Failure, Outcome, Row};
use crate::credentials;
use crate::engine::Engine;

/// When a play pulls an image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PullPolicy {
    /// Never: an image missing on a ship fails its instances.
    Never,
    /// Only where the image is missing (Compose's default).
    #[default]
    Missing,
    /// Always (MaestroNG's `pull` and `-r`): how a moving tag is refreshed.
    Always,
}

/// What each (ship, image) of a play resolved to: the image id, `None` where the image is
/// absent (only with [`PullPolicy::Never`]).
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    ids: HashMap<(usize, String), Option<String>>,
}

impl Resolved {
    /// The id `image` resolved to on `ship`; `None` when it was not prepared or is absent.
    pub fn id(&self, ship: usize, image: &str) -> Option<&str> {
        self.ids.get(&(ship, image.to_owned()))?.as_deref()
    }

    pub fn insert(&mut self, ship: usize, image: &str, id: Option<String>) {
        self.ids.insert((ship, image.to_owned()), id);
    }

    pub fn contains(&self, ship: usize, image: &str) -> bool {
        self.ids.contains_key(&(ship, image.to_owned()))
    }
}

/// One (ship, image) pair of a play, in first-use order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub ship: usize,
    pub image: String,
    /// How many selected instances use it there.
    pub instances: usize,
}

/// The distinct images of `selection`, per ship, in the order instances name them.
pub fn wanted<E: Engine>(ctx: &Context<E>, selection: &[InstanceId]) -> Vec<Wanted> {
    let mut out: Vec<Wanted> = Vec::new();
    for &id in selection {
        let instance = ctx.env.instance(id);
        let (ship, image) = (instance.ship.0, &instance.image.name);
        match out.iter_mut().find(|w| w.ship == ship && &w.image == image) {
            Some(w) => w.instances += 1,
            None => out.push(Wanted {
                ship,
                image: image.clone(),
                instances: 1,
            }),
        }
    }
    out
}

/// The rows a pull shows: one per image and ship.
pub fn rows<E: Engine>(ctx: &Context<E>, wanted: &[Wanted]) -> Vec<Row> {
    wanted
        .iter()
        .map(|w| Row {
            instance: w.image.clone(),
            service: format!(
                "{} instance{}",
                w.instances,
                if w.instances == 1 { "" } else { "s" }
            ),
            ship: ctx.env.ships[w.ship].name.clone(),
        })
        .collect()
}

/// Prepares one (ship, image): pulls it as `policy` says and records its id in `into`.
pub async fn prepare<E: Engine>(
    ctx: Context<E>,
    row: usize,
    wanted: Wanted,
    policy: PullPolicy,
    into: Arc<Mutex<Resolved>>,
) -> Outcome {
    let engine = &ctx.engines[wanted.ship];
    let image = &wanted.image;
    let record = |id: Option<String>| {
        into.lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(wanted.ship, image, id);
    };
    let present = match engine.image_id(image).await {
        Ok(id) => id,
        Err(e) => return Outcome::Failed(Failure::new(e.to_string())),
    };
    let pull = match policy {
        PullPolicy::Always => true,
        PullPolicy::Missing => present.is_none(),
        PullPolicy::Never => false,
    };
    if !pull {
        let outcome = match &present {
            Some(id) => Outcome::Done(format!(
                "present ({})",
                maestro_core::plan::short_image_id(id)
            )),
            None => Outcome::Failed(Failure::new(format!(
                "{image} is not on ship {} and the play pulls nothing (--pull never)",
                ctx.env.ships[wanted.ship].name
            ))),
        };
        record(present);
        return outcome;
    }
    let credentials = match credentials::for_image(&ctx.env, image, &ctx.docker_config) {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(Failure::new(format!("cannot pull {image}: {e}"))),
    };
    ctx.step(row, format!("pulling {image}"));
    let progress = |message: String| ctx.step(row, message);
    if let Err(e) = engine.pull(image, credentials.as_ref(), &progress).await {
        return Outcome::Failed(Failure::new(format!("cannot pull {image}: {e}")));
    }
    match engine.image_id(image).await {
        Ok(Some(id)) => {
            let outcome = Outcome::Done(match &present {
                Some(old) if *old == id => {
                    format!(
                        "pulled, unchanged ({})",
                        maestro_core::plan::short_image_id(&id)
                    )
                }
                Some(old) => format!(
                    "pulled {} (was {})",
                    maestro_core::plan::short_image_id(&id),
                    maestro_core::plan::short_image_id(old)
                ),
                None => format!("pulled {}", maestro_core::plan::short_image_id(&id)),
            });
            record(Some(id));
            outcome
        }
        Ok(None) => Outcome::Failed(Failure::new(format!(
            "{image} was pulled but the engine does not show it"
        ))),
        Err(e) => Outcome::Failed(Failure::new(e.to_string())),
    }
}
