//! Orphans in the commands: where `status` and `plan` look for them (see
//! `play::orphans`), and `clean --orphans`, the one play that removes them.

use maestro_core::graph::glob_match;
use maestro_core::model::ShipId;

use super::*;
use crate::audit::Audited;
use crate::play::orphans::{self as found, Orphan};

/// Where a command looks for orphans (see `play::orphans`): on every ship `-S` keeps
/// when it names no instance or service (a command about named instances is not about
/// the rest), those whose container name `-C` matches.
pub(super) struct OrphanScope {
    pub ships: Vec<ShipId>,
    container_filter: Option<String>,
}

impl OrphanScope {
    pub fn of(env: &Environment, select: &Select) -> Self {
        let ships = if select.things.is_empty() {
            (0..env.ships.len())
                .map(ShipId)
                .filter(|&s| {
                    select
                        .ship_filter
                        .as_deref()
                        .is_none_or(|f| glob_match(f, &env.ship(s).name))
                })
                .collect()
        } else {
            Vec::new()
        };
        OrphanScope {
            ships,
            container_filter: select.container_filter.clone(),
        }
    }

    pub fn keeps(&self, orphan: &Orphan) -> bool {
        self.container_filter
            .as_deref()
            .is_none_or(|f| glob_match(f, &orphan.container.name))
    }

    /// The orphans in scope, each once, and the ships that could not be listed.
    pub async fn find<E: Engine>(
        &self,
        ctx: &Context<E>,
    ) -> (Vec<Orphan>, Vec<(ShipId, EngineError)>) {
        let (mut found, failed) = found::find(ctx, &self.ships).await;
        found.retain(|o| self.keeps(o));
        (found, failed)
    }
}

/// `clean --orphans`: stops (when running) and removes the orphans in scope, holding the
/// locks of the ships it looks at, as every play that changes containers.
pub(super) async fn clean<E: Engine + crate::lock::LockStore>(
    ctx: &Context<E>,
    select: &Select,
) -> u8 {
    let scope = OrphanScope::of(&ctx.env, select);
    if scope.ships.is_empty() {
        let names: Vec<&str> = ctx.env.ships.iter().map(|s| s.name.as_str()).collect();
        output::eprint(&format!(
            "error: no ship matches {:?}; the ships are: {}\n",
            select.ship_filter.as_deref().unwrap_or_default(),
            names.join(", ")
        ));
        return EXIT_INVALID;
    }
    lock::locked_ships(&ctx.env, &ctx.engines, &scope.ships, async {
        let (orphans, failed) = scope.find(ctx).await;
        for (ship, e) in &failed {
            output::eprint(&format!(
                "error: cannot look for orphans on ship {}: {e}\n",
                ctx.env.ship(*ship).name
            ));
        }
        if orphans.is_empty() {
            let _ = output::print("clean --orphans: no orphan containers\n");
            return if failed.is_empty() { 0 } else { EXIT_FAILURE };
        }
        let (outcomes, interrupted) = remove(ctx, select.concurrency, orphans).await;
        match exit_code(&outcomes, interrupted) {
            0 if !failed.is_empty() => EXIT_FAILURE,
            code => code,
        }
    })
    .await
}

/// The play that removes `orphans`, one row each, all at once within the ships' limits
/// and `-c`; audited as `clean`.
async fn remove<E: Engine>(
    ctx: &Context<E>,
    concurrency: Option<usize>,
    orphans: Vec<Orphan>,
) -> (Vec<Outcome>, bool) {
    let audit = Audit::new(ctx.env.clone(), ctx.http.clone());
    let audited: Vec<Audited> = orphans
        .iter()
        .map(|o| Audited {
            name: o.container.name.clone(),
            ship_ip: ctx.env.ship(o.ship).ip.clone(),
            service: o.container.service.clone().unwrap_or_default(),
        })
        .collect();
    audit.play_on("clean", &audited, Phase::Action, None).await;
    let began = Instant::now();
    let rows: Vec<play::Row> = orphans.iter().map(|o| found::row(&ctx.env, o)).collect();
    let names: Vec<String> = rows.iter().map(|r| r.instance.clone()).collect();
    (ctx.reporter)(Event::Began {
        play: "clean --orphans",
        rows,
    });
    let limits = play_limits(ctx, orphans.iter().map(|o| o.ship.0));
    let (outcomes, interrupted) = play::schedule(
        &names,
        &vec![Vec::new(); orphans.len()],
        concurrency,
        &limits,
        &ctx.reporter,
        |row| found::remove(ctx.clone(), row, orphans[row].clone()),
    )
    .await;
    (ctx.reporter)(Event::Ended {
        play: "clean --orphans",
        elapsed: began.elapsed(),
        interrupted,
    });
    let failure = outcomes.iter().find_map(|o| match o {
        Outcome::Failed(f) => Some(f.message.clone()),
        _ => None,
    });
    match (&failure, interrupted) {
        (None, false) => audit.play_on("clean", &audited, Phase::Success, None).await,
        (_, true) => {
            audit
                .play_on("clean", &audited, Phase::Error, Some("interrupted"))
                .await
        }
        (Some(m), false) => {
            audit
                .play_on("clean", &audited, Phase::Error, Some(m))
                .await
        }
    }
    (outcomes, interrupted)
}
