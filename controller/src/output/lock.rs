//! The text (and JSON) of `maestro lock status|release` and of the lock's notices.

use crate::lock::{Holder, LockState, Notice, Released, ShipLock, rfc3339};

/// A notice of the locking, as a line for stderr.
pub fn lock_notice(notice: &Notice) -> String {
    format!("warning: {notice}\n")
}

fn holder_json(holder: &Holder) -> serde_json::Value {
    serde_json::json!({
        "user": holder.user,
        "host": holder.host,
        "pid": holder.pid,
        "command": holder.command,
        "since": holder.since.map(rfc3339),
    })
}

/// `maestro lock status`: a table of each ship's lock, or a JSON array.
pub fn lock_status(locks: &[ShipLock], json: bool) -> String {
    if json {
        let rows: Vec<serde_json::Value> = locks
            .iter()
            .map(|l| {
                let mut row = serde_json::json!({"ship": l.ship, "lock": l.name});
                let fields = match &l.state {
                    Ok(LockState::Free) => serde_json::json!({"state": "free"}),
                    Ok(LockState::Held {
                        id,
                        holder,
                        liveness,
                    }) => serde_json::json!({
                        "state": if liveness.is_alive() { "held" } else { "stale" },
                        "container": id,
                        "holder": holder_json(holder),
                        "liveness": liveness.to_string(),
                    }),
                    Ok(LockState::NotALock { id }) => {
                        serde_json::json!({"state": "not-a-lock", "container": id})
                    }
                    Err(e) => serde_json::json!({"state": "unknown", "error": e.to_string()}),
                };
                if let (Some(row), serde_json::Value::Object(fields)) =
                    (row.as_object_mut(), fields)
                {
                    row.extend(fields);
                }
                row
            })
            .collect();
        return format!("{}\n", serde_json::Value::Array(rows));
    }
    let rows: Vec<(&str, &str, String)> = locks
        .iter()
        .map(|l| {
            let state = match &l.state {
                Ok(LockState::Free) => "free".to_owned(),
                Ok(LockState::Held {
                    holder, liveness, ..
                }) if liveness.is_alive() => format!("held by {holder}; {liveness}"),
                Ok(LockState::Held {
                    holder, liveness, ..
                }) => format!("stale: held by {holder}; {liveness}; the next play takes it over"),
                Ok(LockState::NotALock { .. }) => {
                    "a container that is not a maestro lock has this name".to_owned()
                }
                Err(e) => format!("unknown: {e}"),
            };
            (l.ship.as_str(), l.name.as_str(), state)
        })
        .collect();
    let ws = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(4);
    let wl = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(4);
    let mut text = format!("{:ws$}  {:wl$}  STATE\n", "SHIP", "LOCK");
    for (ship, name, state) in rows {
        text.push_str(&format!("{ship:ws$}  {name:wl$}  {state}\n"));
    }
    text
}

/// `maestro lock release`: what was done, for stdout, and what was refused, for stderr.
pub fn lock_released(released: &[(String, Released)], json: bool) -> (String, String) {
    if json {
        let rows: Vec<serde_json::Value> = released
            .iter()
            .map(|(ship, r)| match r {
                Released::Free => serde_json::json!({"ship": ship, "result": "free"}),
                Released::Removed { holder, liveness } => serde_json::json!({
                    "ship": ship, "result": "removed", "holder": holder_json(holder),
                    "liveness": liveness.to_string(),
                }),
                Released::Kept { holder, liveness } => serde_json::json!({
                    "ship": ship, "result": "kept", "holder": holder_json(holder),
                    "liveness": liveness.to_string(),
                }),
                Released::NotALock => serde_json::json!({"ship": ship, "result": "not-a-lock"}),
                Released::Failed(e) => {
                    serde_json::json!({"ship": ship, "result": "failed", "error": e.to_string()})
                }
            })
            .collect();
        return (
            format!("{}\n", serde_json::Value::Array(rows)),
            String::new(),
        );
    }
    let (mut out, mut err) = (String::new(), String::new());
    for (ship, r) in released {
        match r {
            Released::Free => out.push_str(&format!("ship {ship}: no lock\n")),
            Released::Removed { holder, liveness } => out.push_str(&format!(
                "ship {ship}: removed the lock of {holder} ({liveness})\n"
            )),
            Released::Kept { holder, liveness } => {
                let why = if liveness.is_alive() {
                    "its play may still run"
                } else {
                    "its process ended, but it is not yours"
                };
                err.push_str(&format!(
                    "error: ship {ship}: kept the lock of {holder}: {liveness}; {why}\n  = help: \
                     `maestro lock release --force -S {ship}` removes it anyway; if that play \
                     still runs, two plays may then change the ship at once\n"
                ));
            }
            Released::NotALock => err.push_str(&format!(
                "error: ship {ship}: the container with the lock's name is not a maestro lock; \
                 maestro never removes it\n"
            )),
            Released::Failed(e) => err.push_str(&format!("error: ship {ship}: {e}\n")),
        }
    }
    (out, err)
}
