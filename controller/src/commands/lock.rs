//! `maestro lock status|release`, and [`locked`], which runs a play that changes
//! containers under the locks of its ships (see `lock.rs`).

use std::future::Future;
use std::sync::Arc;

use futures_util::FutureExt;
use maestro_core::graph::glob_match;
use maestro_core::model::{Environment, InstanceId, ShipId};

use crate::cli::LockAction;
use crate::commands::{EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_INVALID};
use crate::lock::{self, Local, LockStore, Released, Report};
use crate::output;

/// Runs `maestro lock ACTION`; returns the exit code.
pub async fn lock_command<E: LockStore>(
    env: &Environment,
    engines: &Arc<Vec<Arc<E>>>,
    action: LockAction,
    json: bool,
) -> u8 {
    let filter = match &action {
        LockAction::Status { ship_filter } | LockAction::Release { ship_filter, .. } => {
            ship_filter.as_deref()
        }
    };
    let Some(ships) = ships(env, filter) else {
        return EXIT_INVALID;
    };
    let local = Local::current();
    match action {
        LockAction::Status { .. } => {
            let locks = lock::status(engines, env, &ships, &local).await;
            let _ = output::print(&output::lock_status(&locks, json));
            if locks.iter().all(|l| l.state.is_ok()) {
                0
            } else {
                EXIT_FAILURE
            }
        }
        LockAction::Release { force, .. } => {
            let released = lock::release(engines, env, &ships, force, &local).await;
            let (out, err) = output::lock_released(&released, json);
            let _ = output::print(&out);
            output::eprint(&err);
            let done = |r: &Released| matches!(r, Released::Free | Released::Removed { .. });
            if released.iter().all(|(_, r)| done(r)) {
                0
            } else {
                EXIT_FAILURE
            }
        }
    }
}

/// The ships whose name matches `filter` (all without one); `None` after saying that
/// none does.
fn ships(env: &Environment, filter: Option<&str>) -> Option<Vec<ShipId>> {
    let ships: Vec<ShipId> = (0..env.ships.len())
        .map(ShipId)
        .filter(|&s| filter.is_none_or(|f| glob_match(f, &env.ship(s).name)))
        .collect();
    if ships.is_empty() {
        let names: Vec<&str> = env.ships.iter().map(|s| s.name.as_str()).collect();
        output::eprint(&format!(
            "error: no ship matches {:?}; the ships are: {}\n",
            filter.unwrap_or_default(),
            names.join(", ")
        ));
        return None;
    }
    Some(ships)
}

/// Where the lock's notices go: warnings on stderr.
pub fn reporter() -> Report {
    Arc::new(|notice| output::eprint(&output::lock_notice(&notice)))
}

/// Runs `play` (a play that changes containers on the ships of `selection`) holding the
/// lock of each of those ships; refused (exit 1, with who holds the lock) when another
/// play holds one. The locks are given back when the play ends, whatever its outcome.
pub async fn locked<E: LockStore, F: Future<Output = u8>>(
    env: &Environment,
    engines: &Arc<Vec<Arc<E>>>,
    selection: &[InstanceId],
    play: F,
) -> u8 {
    let ships: Vec<ShipId> = selection.iter().map(|&i| env.instance(i).ship).collect();
    locked_on(
        env,
        engines,
        &ships,
        &lock::this_command(),
        &Local::current(),
        &reporter(),
        play,
    )
    .await
}

/// [`locked`] for a play that changes containers on `ships` (`clean --orphans`, whose
/// containers are no instances of the file).
pub async fn locked_ships<E: LockStore, F: Future<Output = u8>>(
    env: &Environment,
    engines: &Arc<Vec<Arc<E>>>,
    ships: &[ShipId],
    play: F,
) -> u8 {
    locked_on(
        env,
        engines,
        ships,
        &lock::this_command(),
        &Local::current(),
        &reporter(),
        play,
    )
    .await
}

async fn locked_on<E: LockStore, F: Future<Output = u8>>(
    env: &Environment,
    engines: &Arc<Vec<Arc<E>>>,
    ships: &[ShipId],
    command: &str,
    local: &Local,
    report: &Report,
    play: F,
) -> u8 {
    // While this listener exists Ctrl-C does not end the process, so one pressed while
    // the locks are taken is seen below and the locks are given back.
    let mut interrupt =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    let held = match lock::acquire(engines, env, ships, command, local, report).await {
        Ok(held) => held,
        Err(refused) => {
            output::eprint(&format!("error: {refused}\n"));
            return EXIT_FAILURE;
        }
    };
    let interrupted = interrupt
        .as_mut()
        .is_some_and(|s| s.recv().now_or_never().is_some());
    drop(interrupt);
    let code = if interrupted {
        EXIT_INTERRUPTED
    } else {
        play.await
    };
    held.release(report).await;
    code
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use maestro_core::model::Ship;

    use super::*;
    use crate::engine::EngineError;
    use crate::lock::{Created, Found, LockState};

    /// One engine holding containers by name.
    #[derive(Default)]
    struct Store(Mutex<std::collections::BTreeMap<String, Found>>);

    impl LockStore for Store {
        async fn import_lock_image(&self) -> Result<(), EngineError> {
            Ok(())
        }
        async fn create_lock(
            &self,
            name: &str,
            labels: &[(String, String)],
        ) -> Result<Created, EngineError> {
            let mut c = self.0.lock().unwrap();
            if c.contains_key(name) {
                return Ok(Created::Conflict);
            }
            let id = format!("id-{name}");
            let labels = labels.iter().cloned().collect();
            c.insert(
                name.to_owned(),
                Found {
                    id: id.clone(),
                    labels,
                    heartbeat: None,
                },
            );
            Ok(Created::Made(id))
        }
        async fn find_lock(&self, name: &str) -> Result<Option<Found>, EngineError> {
            Ok(self.0.lock().unwrap().get(name).cloned())
        }
        async fn beat_lock(&self, _: &str, _: i64) -> Result<(), EngineError> {
            Ok(())
        }
        async fn remove_lock(&self, id: &str) -> Result<(), EngineError> {
            self.0.lock().unwrap().retain(|_, f| f.id != id);
            Ok(())
        }
    }

    fn env() -> Environment {
        maestro_core::load(
            "name: shop\nships: {a: {ip: 10.0.0.1}, b: {ip: 10.0.0.2}}\nservices:\n  web:\n    \
             image: web\n    instances:\n      web-1: {ship: a}\n      web-2: {ship: b}\n",
            &maestro_core::NoFiles,
            &Ship::new("local", "127.0.0.1"),
        )
        .environment
        .expect("valid")
    }

    fn local(pid: u32, host: &str) -> Local {
        Local {
            user: "ann".into(),
            host: host.into(),
            pid,
            pid_start: Some(1),
            process_start: |_| Some(1),
        }
    }

    #[tokio::test]
    async fn a_play_runs_holding_its_ships_locks_and_gives_them_back() {
        let env = env();
        // Both ships are one engine: the locks still differ by ship.
        let engine = Arc::new(Store::default());
        let engines = Arc::new(vec![engine.clone(), engine.clone()]);
        let report: Report = Arc::new(|_| {});
        let ships = [ShipId(0), ShipId(1)];
        let code = locked_on(
            &env,
            &engines,
            &ships,
            "maestro start",
            &local(1, "box"),
            &report,
            async {
                let locks = lock::status(&engines, &env, &ships, &local(2, "box")).await;
                assert!(
                    locks
                        .iter()
                        .all(|l| matches!(l.state, Ok(LockState::Held { .. })))
                );
                // A second play meanwhile is refused and its play never runs.
                let second = locked_on(
                    &env,
                    &engines,
                    &ships[1..],
                    "maestro stop",
                    &local(2, "far"),
                    &report,
                    async { panic!("a refused play must not run") },
                )
                .await;
                assert_eq!(second, EXIT_FAILURE);
                7
            },
        )
        .await;
        assert_eq!(code, 7, "the play's own exit code");
        let locks = lock::status(&engines, &env, &ships, &local(2, "box")).await;
        assert!(locks.iter().all(|l| l.state == Ok(LockState::Free)));
    }

    #[test]
    fn ship_filters_select_by_glob() {
        let env = env();
        assert_eq!(ships(&env, None), Some(vec![ShipId(0), ShipId(1)]));
        assert_eq!(ships(&env, Some("b*")), Some(vec![ShipId(1)]));
        assert_eq!(ships(&env, Some("z*")), None);
    }
}
