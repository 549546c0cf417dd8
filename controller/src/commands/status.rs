//! `status`.

use maestro_core::model::ShipId;
use maestro_core::plan::Owner;

use super::*;
use crate::engine::Reach;
use crate::play::orphans::{self, Orphan};

/// One line of `status`.
struct Line {
    instance: String,
    service: String,
    ship: String,
    container: String,
    state: String,
    running: bool,
    /// The instance's container was not created by maestro (MaestroNG's, or `docker run`).
    foreign: bool,
    /// What the container of the instance's name was created for instead.
    conflict: Option<String>,
    /// Why the line is an orphan rather than an instance.
    orphan: Option<String>,
    /// The generations deploy keeps beside the instance's container (JSON objects).
    generations: Vec<serde_json::Value>,
    /// With -F, for a running instance: what each of its ports answered.
    ports: Option<Vec<PortProbe>>,
}

/// `status`: one list call per ship (two requests: by label, and by the instances'
/// names), all ships at once. The orphans in `scope` are listed after the instances.
pub(super) async fn status<E: Engine>(
    ctx: &Context<E>,
    selection: &[InstanceId],
    scope: &OrphanScope,
    show_hosts: bool,
    full: bool,
    json: bool,
) -> u8 {
    let mut names: HashMap<usize, Vec<String>> = HashMap::new();
    for &id in selection {
        let instance = ctx.env.instance(id);
        names
            .entry(instance.ship.0)
            .or_default()
            .push(instance.name.clone());
    }
    let orphan_ships = &scope.ships;
    for ship in orphan_ships {
        names.entry(ship.0).or_default();
    }
    // The definition digests the lines compare need only the file: computed on another
    // thread while the ships answer (on 20,000 instances, a third of the command's time).
    let digests = {
        let (env, ids) = (ctx.env.clone(), selection.to_vec());
        tokio::task::spawn_blocking(move || {
            ids.iter()
                .map(|&id| spec_digest(&env, id))
                .collect::<Vec<_>>()
        })
    };
    let lists = futures_util::future::join_all(names.into_iter().map(|(s, names)| {
        let engine = ctx.engines[s].clone();
        let env = ctx.env.name.clone();
        async move { (s, engine.list(&env, &names).await) }
    }))
    .await;
    let mut found_orphans = Vec::new();
    let mut all_ok = true;
    let mut by_ship: HashMap<usize, Result<HashMap<String, Observed>, EngineError>> =
        HashMap::new();
    let known = orphans::Known::new(&ctx.env);
    for (s, list) in lists {
        if let (Ok(list), true) = (&list, orphan_ships.contains(&ShipId(s))) {
            found_orphans.extend(orphans::orphans(&ctx.env, &known, ShipId(s), list));
        }
        by_ship.insert(
            s,
            list.map(|list| list.into_iter().map(|o| (o.name.clone(), o)).collect()),
        );
    }
    let ship_column = |ship: ShipId| {
        let ship = ctx.env.ship(ship);
        if show_hosts {
            ship.ip.clone()
        } else {
            ship.name.clone()
        }
    };
    // A thread that could not be had (or a panic there) leaves them to be computed here.
    let digests = digests.await.unwrap_or_default();
    let digest_of = |n: usize, id: InstanceId| match digests.get(n) {
        Some(digest) => digest.clone(),
        None => spec_digest(&ctx.env, id),
    };
    let mut table = Vec::new();
    for (n, &id) in selection.iter().enumerate() {
        let instance = ctx.env.instance(id);
        let mut line = Line {
            instance: instance.name.clone(),
            service: ctx.env.service(instance.service).name.clone(),
            ship: ship_column(instance.ship),
            container: "-".into(),
            state: "absent".into(),
            running: false,
            foreign: false,
            conflict: None,
            orphan: None,
            generations: Vec::new(),
            ports: None,
        };
        match &by_ship[&instance.ship.0] {
            Err(e) => {
                all_ok = false;
                line.state = e.to_string();
            }
            Ok(found) => {
                if let Some(o) = found.get(&instance.name) {
                    line.container = tasks::short(&o.id).to_owned();
                    match o.owner(&ctx.env, id) {
                        Owner::Conflict(why) => {
                            line.state = format!("absent (the container of this name {why})");
                            line.conflict = Some(why);
                        }
                        owner => {
                            line.running = o.running;
                            line.state = if o.running {
                                format!("running ({})", o.status)
                            } else {
                                format!("down ({})", o.status)
                            };
                            if owner == Owner::Foreign {
                                line.foreign = true;
                                line.state.push_str(", not created by maestro");
                            } else if let Some(digest) = &o.digest
                                && outdated(&ctx.env, id, digest, digest_of(n, id))
                            {
                                line.state.push_str(", outdated");
                            }
                        }
                    }
                }
                let (said, kept) = generations(ctx, id, found);
                line.state.push_str(&said);
                line.generations = kept;
            }
        }
        table.push(line);
    }
    // With -F: each running instance's `running` checks and port probes, all at once.
    if full {
        let limits = ship_limits(ctx);
        let results =
            futures_util::future::join_all(selection.iter().enumerate().map(|(n, &id)| {
                let instance = ctx.env.instance(id);
                let container = match (&by_ship[&instance.ship.0], table[n].running) {
                    (Ok(found), true) => found.get(&instance.name).map(|o| o.id.clone()),
                    _ => None,
                };
                let limit = limits[instance.ship.0].clone();
                async move {
                    let container = container?;
                    let (failures, ports) = tokio::join!(
                        running_checks(ctx, id),
                        probe_ports(ctx, id, &container, limit)
                    );
                    Some((n, failures, ports))
                }
            }))
            .await;
        for (n, failures, ports) in results.into_iter().flatten() {
            match failures {
                None => {}
                Some(failures) if failures.is_empty() => table[n].state.push_str(", checks pass"),
                Some(failures) => {
                    all_ok = false;
                    table[n]
                        .state
                        .push_str(&format!(", checks fail: {}", failures.join("; ")));
                }
            }
            table[n].ports = Some(ports);
        }
    }
    found_orphans.retain(|o| scope.keeps(o));
    for orphan in orphans::distinct(found_orphans) {
        table.push(orphan_line(&orphan, ship_column(orphan.ship)));
    }
    // A ship with no instance in the selection that could not be listed: its own line.
    for &s in orphan_ships {
        if let Err(e) = &by_ship[&s.0] {
            if !selection.iter().any(|&i| ctx.env.instance(i).ship == s) {
                all_ok = false;
                table.push(Line {
                    instance: "-".into(),
                    service: "-".into(),
                    ship: ship_column(s),
                    container: "-".into(),
                    state: e.to_string(),
                    running: false,
                    foreign: false,
                    conflict: None,
                    orphan: None,
                    generations: Vec::new(),
                    ports: None,
                });
            }
        }
    }
    let _ = output::print(&if json {
        as_json(&table)
    } else {
        as_text(&table)
    });
    if all_ok { 0 } else { EXIT_FAILURE }
}

/// The instance's definition digest, as maestro labels its container now.
fn spec_digest(env: &Environment, id: InstanceId) -> String {
    maestro_core::spec::definition_digest(env, id)
}

/// Whether a container maestro labelled with `digest` no longer matches the file: in the
/// label's own form (`current`: the digest in today's, computed ahead), so that one an
/// earlier maestro made is not called outdated for the form's change.
fn outdated(env: &Environment, id: InstanceId, digest: &str, current: String) -> bool {
    if maestro_core::spec::is_legacy(digest) {
        return digest != maestro_core::spec::legacy_digest(&container_spec(env, id));
    }
    current != digest
}

fn orphan_line(orphan: &Orphan, ship: String) -> Line {
    let c = &orphan.container;
    let state = if c.running {
        format!("running ({})", c.status)
    } else {
        format!("down ({})", c.status)
    };
    Line {
        instance: c.name.clone(),
        service: c.service.clone().unwrap_or_else(|| "-".into()),
        ship,
        container: tasks::short(&c.id).to_owned(),
        state: format!(
            "orphan, {state}: {}; clean --orphans removes it",
            orphan.why
        ),
        running: c.running,
        foreign: false,
        conflict: None,
        orphan: Some(orphan.why.clone()),
        generations: Vec::new(),
        ports: None,
    }
}

/// The JSON of `status --json`: one object per line (see the README).
fn as_json(table: &[Line]) -> String {
    let rows: Vec<_> = table
        .iter()
        .map(|l| {
            let mut row = serde_json::json!({
                "instance": l.instance,
                "service": l.service,
                "ship": l.ship,
                "container": l.container,
                "state": l.state,
                "running": l.running,
                "foreign": l.foreign,
                "conflict": l.conflict,
                "orphan": l.orphan,
                "generations": l.generations,
            });
            if let Some(ports) = &l.ports {
                row["ports"] = ports.iter().map(PortProbe::json).collect();
            }
            row
        })
        .collect();
    format!("{}\n", serde_json::Value::Array(rows))
}

fn as_text(table: &[Line]) -> String {
    let w = |f: fn(&Line) -> &String, title: &str| {
        table
            .iter()
            .map(|r| f(r).chars().count())
            .max()
            .unwrap_or(0)
            .max(title.len())
    };
    let (wi, ws, wh, wc) = (
        w(|r| &r.instance, "INSTANCE"),
        w(|r| &r.service, "SERVICE"),
        w(|r| &r.ship, "SHIP"),
        w(|r| &r.container, "CONTAINER"),
    );
    let mut text = format!(
        "{:wi$}  {:ws$}  {:wh$}  {:wc$}  STATUS\n",
        "INSTANCE", "SERVICE", "SHIP", "CONTAINER"
    );
    for l in table {
        text.push_str(&format!(
            "{:wi$}  {:ws$}  {:wh$}  {:wc$}  {}\n",
            l.instance, l.service, l.ship, l.container, l.state
        ));
        let ports = l.ports.as_deref().unwrap_or_default();
        let wn = ports
            .iter()
            .map(|p| p.name.chars().count())
            .max()
            .unwrap_or(0);
        let wp = ports.iter().map(|p| p.port.len()).max().unwrap_or(0);
        for p in ports {
            text.push_str(&format!(
                "  port {:wn$}  {:wp$}  {}\n",
                p.name,
                p.port,
                p.state.words()
            ));
        }
    }
    text
}

/// What `status` says of an instance's other generations: the previous one `deploy` kept,
/// one an interrupted deploy was replacing, one left half-swapped by an interrupted
/// `rollback` (not containers of those names that maestro created for something else);
/// in words, and for `--json` (`role`, `container`, `image`, `running`).
fn generations<E: Engine>(
    ctx: &Context<E>,
    id: InstanceId,
    found: &HashMap<String, Observed>,
) -> (String, Vec<serde_json::Value>) {
    use maestro_core::spec::{previous_name, retiring_name, staged_name, swapping_name};
    let instance = &ctx.env.instance(id).name;
    let get = |name: String| {
        found
            .get(&name)
            .filter(|o| !matches!(o.owner(&ctx.env, id), Owner::Conflict(_)))
    };
    // Docker names the image by its id once its tag has moved on.
    let image = |o: &Observed| match o.image.starts_with("sha256:") {
        true => maestro_core::plan::short_image_id(&o.image),
        false => o.image.clone(),
    };
    let mut out = String::new();
    let mut kept = Vec::new();
    let mut keep = |role: &str, o: &Observed| {
        kept.push(serde_json::json!({
            "role": role,
            "container": tasks::short(&o.id),
            "image": o.image,
            "running": o.running,
        }));
    };
    if let Some(r) = get(retiring_name(instance)) {
        keep("retiring", r);
        // Running: killed while swapping in a container created ahead, before the stop.
        let what = format!(
            "an interrupted deploy was replacing {} ({}), kept {} as {}",
            tasks::short(&r.id),
            image(r),
            if r.running { "running" } else { "stopped" },
            retiring_name(instance)
        );
        out.push_str(&match found.contains_key(instance) {
            true => format!(
                "; not proven ready: {what}; the next deploy replaces this container again, rollback puts {} back",
                tasks::short(&r.id)
            ),
            false => format!(
                "; {what}; the next deploy creates the new container, rollback puts {} back",
                tasks::short(&r.id)
            ),
        });
    }
    if let Some(p) = get(previous_name(instance)) {
        keep("previous", p);
        out.push_str(&format!(
            "; previous generation kept: {} ({}{})",
            tasks::short(&p.id),
            image(p),
            if p.running { ", running!" } else { ", stopped" }
        ));
    }
    if let Some(s) = get(swapping_name(instance)) {
        keep("swapping", s);
        out.push_str(&format!(
            "; {} ({}) was being swapped by an interrupted rollback: the next deploy or rollback completes it",
            tasks::short(&s.id),
            image(s)
        ));
    }
    if let Some(s) = get(staged_name(instance)) {
        keep("staged", s);
        out.push_str(&format!(
            "; {} ({}) was created ahead by an interrupted deploy and never started: the next deploy or clean removes it",
            tasks::short(&s.id),
            image(s)
        ));
    }
    (out, kept)
}

/// The `running` checks of a running instance, each run once, all at once: `None` when it
/// has none, else why each that failed did.
async fn running_checks<E: Engine>(ctx: &Context<E>, id: InstanceId) -> Option<Vec<String>> {
    let instance = ctx.env.instance(id);
    let checks = instance.lifecycle.get(&LifecycleState::Running)?;
    if checks.is_empty() {
        return None;
    }
    let ship_ip = &ctx.env.ship(instance.ship).ip;
    let env: std::collections::BTreeMap<String, String> = ctx
        .env
        .container_env(id)
        .map(|(k, v)| (k.to_owned(), v.unwrap_or_default().to_owned()))
        .collect();
    let engine = ctx.engines[instance.ship.0].as_ref();
    let env = &env;
    let results =
        futures_util::future::join_all(checks.iter().filter_map(crate::play::checks::once).map(
            |check| async move {
                crate::play::checks::run(&check, ship_ip, &instance.name, env, engine, &ctx.http)
                    .await
            },
        ))
        .await;
    Some(results.into_iter().filter_map(Result::err).collect())
}

/// What `status -F` found of one port of a running instance.
#[derive(Clone, Debug)]
struct PortProbe {
    name: String,
    /// The published port as the file gives it (`8080/tcp`).
    port: String,
    state: PortState,
}

#[derive(Clone, Debug)]
enum PortState {
    Up,
    Down(String),
    /// UDP (nothing tells whether an app reads it) or a range.
    NotProbed(&'static str),
}

impl PortState {
    fn words(&self) -> String {
        match self {
            PortState::Up => "up".into(),
            PortState::Down(why) => format!("down: {why}"),
            PortState::NotProbed(why) => format!("not probed ({why})"),
        }
    }
}

impl PortProbe {
    fn json(&self) -> serde_json::Value {
        let (state, why) = match &self.state {
            PortState::Up => ("up", None),
            PortState::Down(why) => ("down", Some(why.clone())),
            PortState::NotProbed(why) => ("not probed", Some((*why).to_owned())),
        };
        serde_json::json!({"name": self.name, "port": self.port, "state": state, "why": why})
    }
}

/// Probes each TCP port a running instance publishes, once, all at once, as a tcp check
/// would (past Docker's userland proxy; see [`crate::play::checks::TcpProbe`]): on the
/// ship's address, with a timeout of a second at most. The container is inspected once for
/// its own address, within the ship's limit of operations.
async fn probe_ports<E: Engine>(
    ctx: &Context<E>,
    id: InstanceId,
    container: &str,
    limit: Option<Arc<tokio::sync::Semaphore>>,
) -> Vec<PortProbe> {
    use maestro_core::model::Protocol;
    let instance = ctx.env.instance(id);
    if instance.ports.is_empty() {
        return Vec::new();
    }
    let ship_ip = ctx.env.ship(instance.ship).ip.as_str();
    let direct = if crate::play::checks::is_loopback(ship_ip) {
        let _permit = match &limit {
            Some(limit) => limit.acquire().await.ok(),
            None => None,
        };
        ctx.engines[instance.ship.0]
            .reach(container)
            .await
            .unwrap_or_default()
    } else {
        Reach::default()
    };
    let direct = &direct;
    futures_util::future::join_all(instance.ports.iter().map(|(name, port)| async move {
        let external = &port.external;
        let state = match (external.protocol, external.first()) {
            (Protocol::Udp, _) => PortState::NotProbed("udp"),
            _ if external.is_range() => PortState::NotProbed("a range"),
            (Protocol::Tcp, None) => PortState::NotProbed("not a port number"),
            (Protocol::Tcp, Some(number)) => {
                let mut probe = crate::play::checks::TcpProbe::new(
                    ship_ip,
                    number,
                    direct.direct(ship_ip, number),
                );
                match probe.attempt().await {
                    Ok(()) => PortState::Up,
                    Err(why) => PortState::Down(why),
                }
            }
        };
        PortProbe {
            name: name.clone(),
            port: external.with_protocol(),
            state,
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use maestro_core::model::Ship;

    /// A container an earlier maestro labelled (the first canonical form) is compared in
    /// that form: up to date when the file did not change, outdated when it did.
    #[test]
    fn a_container_labelled_in_the_first_form_is_compared_in_it() {
        let text = "name: t\nships: {a: {ip: 10.0.0.1}}\nservices:\n  s: {image: i, ports: {p: 80}, instances: {s-1: {ship: a}, s-2: {ship: a}}}\n";
        let load = |text: &str| {
            maestro_core::load(text, &maestro_core::NoFiles, &Ship::new("l", "1"))
                .environment
                .expect("valid")
        };
        let env = load(text);
        let id = env.instance_by_name("s-1").expect("exists");
        let old = maestro_core::spec::legacy_digest(&container_spec(&env, id));
        assert!(!outdated(&env, id, &old, spec_digest(&env, id)));
        // A new peer changes every instance's discovery variables.
        let grown = load(&text.replace("s-2: {ship: a}", "s-2: {ship: a}, s-3: {ship: a}"));
        assert!(outdated(&grown, id, &old, spec_digest(&grown, id)));
        // And today's form compares as it is.
        assert!(!outdated(
            &env,
            id,
            &spec_digest(&env, id),
            spec_digest(&env, id)
        ));
        assert!(outdated(
            &grown,
            id,
            &spec_digest(&env, id),
            spec_digest(&grown, id)
        ));
    }

    /// Status compares the digests of the instances it shows: only their services'
    /// discovery variables are computed, not those of the whole environment.
    #[test]
    fn status_computes_discovery_only_for_the_services_it_compares() {
        let mut services = String::new();
        for s in 0..6 {
            let requires = if s > 0 {
                format!("[s{}]", s - 1)
            } else {
                "[]".into()
            };
            services.push_str(&format!(
                "  s{s}: {{image: i, requires: {requires}, ports: {{p: 80}}, instances: {{s{s}-1: {{ship: a}}, s{s}-2: {{ship: a}}}}}}\n"
            ));
        }
        let text = format!("name: t\nships: {{a: {{ip: 10.0.0.1}}}}\nservices:\n{services}");
        let loaded = maestro_core::load(&text, &maestro_core::NoFiles, &Ship::new("l", "1"));
        let env = loaded.environment.expect("valid");
        assert_eq!(
            env.discovery.computed_services(),
            0,
            "loading computed some"
        );
        for name in ["s4-1", "s4-2", "s2-1"] {
            let id = env.instance_by_name(name).expect("exists");
            assert!(spec_digest(&env, id).starts_with("v2:"));
        }
        assert_eq!(env.discovery.computed_services(), 2, "only s4 and s2");
    }
}
