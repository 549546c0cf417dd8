//! The discovery variables every instance receives (reference section 6.4): its own
//! service's hosts, ports, internal ports and instance list, then those of every service
//! in the transitive closure of `requires` and of each direct `wants_info` service.
//!
//! Nothing is computed at load: a service's variables on first use (building one of its
//! instances' containers, `config`). A service's block of variables is computed once and
//! shared by every service and instance that receives it; later blocks override earlier
//! ones, as MaestroNG's `dict.update` does.
//! Dependencies through `volumes_from` give no variables (MaestroNG adds that dependency
//! after computing them).

use guestutils::names::{InstanceVars, instances_var};

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;

use crate::model::{Block, DiscoveryVar, Environment, Received, ServiceId};

/// Service `service`'s block, computed on first use.
fn block(env: &Environment, service: ServiceId) -> &Block {
    env.discovery.blocks[service.0].get_or_init(|| compute_block(env, service))
}

fn compute_block(env: &Environment, service: ServiceId) -> Block {
    let s = env.service(service);
    let mut vars = Vec::new();
    let var = |name: String, value: &str, internal: bool| DiscoveryVar {
        name,
        value: value.to_owned(),
        internal,
    };
    for &id in &s.instances {
        let instance = env.instance(id);
        let names = InstanceVars::new(&s.name, &instance.name);
        vars.push(var(names.host(), &env.ship(instance.ship).ip, false));
        for (port_name, port) in &instance.ports {
            vars.push(var(names.port(port_name), &port.external.number, false));
            vars.push(var(
                names.internal_port(port_name),
                &port.exposed.number,
                true,
            ));
        }
    }
    let mut instance_names: Vec<&str> = s
        .instances
        .iter()
        .map(|&i| env.instance(i).name.as_str())
        .collect();
    // Code-point order, as Python's `sorted`.
    instance_names.sort_unstable();
    vars.push(var(
        instances_var(&s.name),
        &instance_names.join(","),
        false,
    ));
    let mut names: HashMap<String, bool> = HashMap::with_capacity(vars.len());
    for v in &vars {
        *names.entry(v.name.clone()).or_default() |= !v.internal;
    }
    Block { vars, names }
}

/// The variables of block `b` (see [`crate::model::Discovery::blocks`]).
fn block_vars(env: &Environment, b: usize) -> impl Iterator<Item = &DiscoveryVar> {
    block(env, ServiceId(b / 2))
        .vars
        .iter()
        .filter(move |v| b % 2 == 0 || !v.internal)
}

/// What `service`'s instances receive, computed on first use: the own service's block
/// (with internal ports), then the blocks of the transitive `requires` and direct
/// `wants_info` services, later blocks winning. Requires an acyclic `requires` graph
/// (validation guarantees it).
fn received(env: &Environment, service: ServiceId) -> &Received {
    env.discovery.received[service.0].get_or_init(|| {
        let mut deps = crate::graph::requires_closure(&env.services, service);
        for &w in &env.services[service.0].wants_info {
            if !deps.contains(&w) {
                deps.push(w);
            }
        }
        // MaestroNG iterates a set here (arbitrary order); sorting by name makes the
        // outcome of colliding names at least stable.
        deps.sort_by(|a, b| env.services[a.0].name.cmp(&env.services[b.0].name));
        let list: Vec<usize> = std::iter::once(2 * service.0)
            .chain(deps.iter().map(|d| 2 * d.0 + 1))
            .collect();
        // A name that comes twice in what this service receives needs a merged map;
        // decided from these blocks alone, so the cost is what the service receives.
        let mut seen = HashSet::new();
        let colliding = list
            .iter()
            .flat_map(|&b| block_vars(env, b))
            .any(|v| !seen.insert(v.name.as_str()));
        let merged = colliding.then(|| {
            let mut vars = IndexMap::new();
            for &b in &list {
                for v in block_vars(env, b) {
                    vars.insert(v.name.clone(), v.value.clone());
                }
            }
            vars
        });
        Received { list, merged }
    })
}

/// The discovery variables of `service`'s instances, each name once.
pub(crate) fn vars(
    env: &Environment,
    service: ServiceId,
) -> Box<dyn Iterator<Item = (&str, &str)> + '_> {
    let received = received(env, service);
    match &received.merged {
        Some(merged) => Box::new(merged.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        None => Box::new(
            received
                .list
                .iter()
                .flat_map(move |&b| block_vars(env, b))
                .map(|v| (v.name.as_str(), v.value.as_str())),
        ),
    }
}

/// Whether `service`'s instances receive a discovery variable called `name`.
pub(crate) fn defines(env: &Environment, service: ServiceId, name: &str) -> bool {
    let received = received(env, service);
    if let Some(merged) = &received.merged {
        return merged.contains_key(name);
    }
    received.list.iter().any(|&b| {
        block(env, ServiceId(b / 2))
            .names
            .get(name)
            .is_some_and(|&shared| b % 2 == 0 || shared)
    })
}

#[cfg(test)]
mod tests;
