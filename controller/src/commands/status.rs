//! `status`.

use super::*;

/// `status`: one list call per ship, all ships at once.
pub(super) async fn status<E: Engine>(
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
                Some(o) if !o.on_ship(&ship.name) => (
                    tasks::short(&o.id).to_owned(),
                    format!(
                        "absent (the container of this name belongs to ship {}, which shares this engine)",
                        o.ship.as_deref().unwrap_or_default()
                    ),
                ),
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
        let state = match &by_ship[&instance.ship.0] {
            Ok(found) => state + &generations(found, &instance.name),
            Err(_) => state,
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
                    if let Err(e) = crate::play::checks::run(&check, ship_ip, &instance.name, &env, engine.as_ref(), &ctx.http).await {
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

/// What `status` says of an instance's other generations: the previous one `deploy` kept,
/// and one left half-swapped by an interrupted `rollback`.
fn generations(found: &HashMap<String, Observed>, instance: &str) -> String {
    let mut out = String::new();
    if let Some(p) = found.get(&maestro_core::spec::previous_name(instance)) {
        out.push_str(&format!(
            "; previous generation kept: {} ({}{})",
            tasks::short(&p.id),
            p.image,
            if p.running { ", running!" } else { ", stopped" }
        ));
    }
    if let Some(s) = found.get(&maestro_core::spec::swapping_name(instance)) {
        out.push_str(&format!(
            "; {} ({}) was being swapped by an interrupted rollback: the next deploy or rollback completes it",
            tasks::short(&s.id),
            s.image
        ));
    }
    out
}
