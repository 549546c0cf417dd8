//! Orphans: containers maestro created for this environment whose instance is no longer
//! in the file, or is now on another ship (Compose's orphans). `status` and `plan` list
//! them; only `clean --orphans` removes them. A kept generation (`NAME.previous`,
//! `NAME.swapping`, `NAME.retiring`) of an instance still on its ship and a lock are never orphans, nor is
//! a container another ship sharing the engine created (that ship's engine judges it).

use std::collections::{HashMap, HashSet};

use maestro_core::model::{Environment, ShipId};
use maestro_core::spec::{instance_of, labels};

use super::tasks::{Context, short};
use super::{Failure, Outcome, Row};
use crate::engine::{Engine, EngineError, Observed};

/// An orphan container, and the ship whose engine it was found through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Orphan {
    pub ship: ShipId,
    pub container: Observed,
    /// Why it is an orphan ("instance web-3 is no longer in the file").
    pub why: String,
}

/// The file's ships and instances by name: built once for all the ships whose listings
/// are judged (once per ship, it made `status` quadratic in the number of ships).
pub struct Known<'a> {
    ships: HashMap<&'a str, ShipId>,
    instances: HashMap<&'a str, ShipId>,
}

impl<'a> Known<'a> {
    pub fn new(env: &'a Environment) -> Self {
        Known {
            ships: env
                .ships
                .iter()
                .enumerate()
                .map(|(n, s)| (s.name.as_str(), ShipId(n)))
                .collect(),
            instances: env
                .instances
                .iter()
                .map(|i| (i.name.as_str(), i.ship))
                .collect(),
        }
    }
}

/// The orphans among the containers `list` found through `ship`'s engine.
pub fn orphans(env: &Environment, known: &Known, ship: ShipId, list: &[Observed]) -> Vec<Orphan> {
    let (ships, instances) = (&known.ships, &known.instances);
    let here = env.ship(ship).name.as_str();
    let why = |c: &Observed| -> Option<String> {
        if c.environment.as_deref() != Some(env.name.as_str())
            || c.role.as_deref() == Some(labels::ROLE_LOCK)
        {
            return None;
        }
        let own_ship = match c.ship.as_deref() {
            Some(s) if s == here => Some(ship),
            // Another ship of the file that shares this engine: its own listing judges it.
            Some(s) if ships.contains_key(s) => return None,
            Some(s) => return Some(format!("its ship {s} is no longer in the file")),
            // An older maestro's container, without a ship label: on an engine two ships
            // share, which ship it was made for cannot be told, so only an instance gone
            // from the file makes it an orphan.
            None => None,
        };
        let instance = c
            .instance
            .as_deref()
            .unwrap_or_else(|| instance_of(&c.name));
        match (instances.get(instance), own_ship) {
            (None, _) => Some(format!("instance {instance} is no longer in the file")),
            (Some(&now), Some(was)) if now != was => Some(format!(
                "instance {instance} is now on ship {}",
                env.ship(now).name
            )),
            _ => None,
        }
    };
    list.iter()
        .filter_map(|c| {
            why(c).map(|why| Orphan {
                ship,
                container: c.clone(),
                why,
            })
        })
        .collect()
}

/// The orphans on `ships`, each container once (ships that share an engine see the same
/// containers), in ship then name order; each ship's failure to list them beside.
pub async fn find<E: Engine>(
    ctx: &Context<E>,
    ships: &[ShipId],
) -> (Vec<Orphan>, Vec<(ShipId, EngineError)>) {
    let lists = futures_util::future::join_all(
        ships
            .iter()
            .map(|&s| async move { (s, ctx.engines[s.0].list(&ctx.env.name, &[]).await) }),
    )
    .await;
    let mut found = Vec::new();
    let mut failed = Vec::new();
    let known = Known::new(&ctx.env);
    for (ship, list) in lists {
        match list {
            Ok(list) => found.extend(orphans(&ctx.env, &known, ship, &list)),
            Err(e) => failed.push((ship, e)),
        }
    }
    (distinct(found), failed)
}

/// Each container once, in ship then name order.
pub fn distinct(mut orphans: Vec<Orphan>) -> Vec<Orphan> {
    orphans.sort_by(|a, b| (a.ship.0, &a.container.name).cmp(&(b.ship.0, &b.container.name)));
    let mut seen = HashSet::new();
    orphans.retain(|o| seen.insert(o.container.id.clone()));
    orphans
}

/// An orphan's row in a play: its container's name, its service, its ship.
pub fn row(env: &Environment, orphan: &Orphan) -> Row {
    Row {
        instance: orphan.container.name.clone(),
        service: orphan
            .container
            .service
            .clone()
            .unwrap_or_else(|| "-".into()),
        ship: env.ship(orphan.ship).name.clone(),
    }
}

/// How long a running orphan is given to stop: Docker's own default (its instance, and
/// with it its `stop_timeout`, is no longer in the file).
pub const STOP_TIMEOUT: u32 = 10;

/// `clean --orphans` of one orphan: stopped if it runs (as Compose's `--remove-orphans`),
/// then removed with its anonymous volumes, by the id listed (never by name).
pub async fn remove<E: Engine>(ctx: Context<E>, row: usize, orphan: Orphan) -> Outcome {
    let engine = &ctx.engines[orphan.ship.0];
    let id = &orphan.container.id;
    if orphan.container.running {
        ctx.step(
            row,
            format!("stopping {} (grace period {STOP_TIMEOUT}s)", short(id)),
        );
        if let Err(e) = engine.stop(id, STOP_TIMEOUT).await {
            return Outcome::Failed(Failure::new(format!("cannot stop it: {e}")));
        }
    }
    ctx.step(row, format!("removing container {}", short(id)));
    match engine.remove(id).await {
        Ok(()) => Outcome::Done(format!("removed ({})", orphan.why)),
        Err(e) => Outcome::Failed(Failure::new(format!("cannot remove it: {e}"))),
    }
}
