//! The images of a play, prepared before any container is touched: every distinct image
//! once per ship, ships in parallel, pulled as the play's policy says, and resolved to the
//! id it names there now. A play that cannot have an image it needs fails here, having
//! changed nothing; the tasks then compare each container's image id with the resolved
//! one (a retagged or freshly pulled image makes a container outdated).
//!
//! A tag is resolved once per play: the first ship that must pull it asks the registry
//! (through its engine) which manifest the tag names now, and every ship pulls that
//! manifest by digest and tags it, so that a tag moved during the play cannot put two
//! versions into one environment. Where the tag is already on some ship as pulled from
//! its registry (`--pull missing`), that digest is what the others pull.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use maestro_core::model::{Image, InstanceId};
use tokio::sync::OnceCell;

use super::tasks::Context;
use super::{Failure, Outcome, Row};
use crate::credentials;
use crate::engine::{Engine, ImageInfo, tagged};

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

/// What each image's tag is pulled as on every ship of a play (`repository@sha256:…`),
/// decided once; `None` when it could not be (the registry does not say): each ship then
/// pulls the tag.
#[derive(Default)]
pub struct Pins {
    cells: Mutex<HashMap<String, Arc<OnceCell<Option<String>>>>>,
}

impl Pins {
    /// Pins that already know what ships have: for every image, the digest of the first
    /// (ship, image) in `found` pulled from the image's own registry.
    pub fn from_present<'a>(found: impl IntoIterator<Item = (&'a str, &'a ImageInfo)>) -> Pins {
        let pins = Pins::default();
        for (image, info) in found {
            if image.contains('@') {
                continue;
            }
            if let Some(pinned) = info.pinned(&Image::parse(image).repository) {
                pins.cell(image).set(Some(pinned)).ok();
            }
        }
        pins
    }

    fn cell(&self, image: &str) -> Arc<OnceCell<Option<String>>> {
        self.cells
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(image.to_owned())
            .or_default()
            .clone()
    }

    /// What `image` is pulled as: decided by `resolve` the first time, shared after.
    pub(crate) async fn get(
        &self,
        image: &str,
        resolve: impl std::future::Future<Output = Option<String>>,
    ) -> Option<String> {
        self.cell(image).get_or_init(|| resolve).await.clone()
    }
}

/// `repository@sha256:0123456789ab` (the digest shortened as image ids are).
fn short_pin(pinned: &str) -> String {
    match pinned.split_once('@') {
        Some((repository, digest)) => {
            format!(
                "{repository}@{}",
                maestro_core::plan::short_image_id(digest)
            )
        }
        None => pinned.to_owned(),
    }
}

/// One sentence per image whose id differs between ships (built separately on each, or
/// pulled at different times with `--pull missing`): its instances would not all run the
/// same image.
pub fn disagreements(resolved: &Resolved, ship_names: &[String]) -> Vec<String> {
    let mut by_image: std::collections::BTreeMap<&str, Vec<(usize, &str)>> = Default::default();
    for ((ship, image), id) in &resolved.ids {
        if let Some(id) = id {
            by_image.entry(image).or_default().push((*ship, id));
        }
    }
    let mut out = Vec::new();
    for (image, mut ids) in by_image {
        ids.sort_unstable();
        if ids.iter().all(|(_, id)| *id == ids[0].1) {
            continue;
        }
        let listed: Vec<String> = ids
            .iter()
            .map(|(ship, id)| {
                format!(
                    "{} on {}",
                    maestro_core::plan::short_image_id(id),
                    ship_names.get(*ship).map_or("?", String::as_str)
                )
            })
            .collect();
        out.push(format!(
            "{image} is not the same image on every ship ({}): its instances will not all \
             run the same version (--pull always pulls one digest everywhere)",
            listed.join(", ")
        ));
    }
    out
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
    pins: Arc<Pins>,
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
    let credentials = match credentials::for_image(&ctx.env, image, &ctx.docker_config).await {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(Failure::new(format!("cannot pull {image}: {e}"))),
    };
    // A reference by digest is already exact.
    let pinned = if image.contains('@') {
        None
    } else {
        pins.get(image, async {
            ctx.step(row, format!("resolving {image}"));
            match engine.resolve(image, credentials.as_ref()).await {
                Ok(Some(digest)) => Some(format!("{}@{digest}", Image::parse(image).repository)),
                // The registry does not say (or cannot be asked): each ship pulls the
                // tag, and a disagreement is reported once all are pulled.
                Ok(None) | Err(_) => None,
            }
        })
        .await
    };
    let reference = pinned.as_deref().unwrap_or(image);
    ctx.step(row, format!("pulling {reference}"));
    let progress = |message: String| ctx.step(row, message);
    if let Err(e) = engine
        .pull(reference, credentials.as_ref(), &progress)
        .await
    {
        return Outcome::Failed(Failure::new(format!("cannot pull {reference}: {e}")));
    }
    if let Some(pinned) = &pinned {
        if let Err(e) = engine.tag(pinned, &tagged(image)).await {
            return Outcome::Failed(Failure::new(format!(
                "pulled {pinned} but cannot tag it {image}: {e}"
            )));
        }
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
            let outcome = match (outcome, &pinned) {
                (Outcome::Done(text), Some(pinned)) => {
                    Outcome::Done(format!("{text}, as {}", short_pin(pinned)))
                }
                (outcome, _) => outcome,
            };
            record(Some(id));
            outcome
        }
        Ok(None) => Outcome::Failed(Failure::new(format!(
            "{image} was pulled but the engine does not show it"
        ))),
        Err(e) => Outcome::Failed(Failure::new(e.to_string())),
    }
}
