//! The discovery variables every instance receives (reference section 6.4): its own
//! service's hosts, ports, internal ports and instance list, then those of every service
//! in the transitive closure of `requires` and of each direct `wants_info` service.
//!
//! A service's block of variables is computed once and shared by every instance that
//! receives it; later blocks override earlier ones, as MaestroNG's `dict.update` does.
//! Dependencies through `volumes_from` give no variables (MaestroNG adds that dependency
//! after computing them).

use guestutils::names::{InstanceVars, instances_var};

use std::collections::HashMap;

use indexmap::IndexMap;

use crate::model::{Discovery, DiscoveryVar, Environment, ServiceId};

type Block = Vec<DiscoveryVar>;

fn block(env: &Environment, service: ServiceId) -> Block {
    let s = env.service(service);
    let mut out = Block::new();
    let var = |name: String, value: &str, internal: bool| DiscoveryVar {
        name,
        value: value.to_owned(),
        internal,
    };
    for &id in &s.instances {
        let instance = env.instance(id);
        let vars = InstanceVars::new(&s.name, &instance.name);
        out.push(var(vars.host(), &env.ship(instance.ship).ip, false));
        for (port_name, port) in &instance.ports {
            out.push(var(vars.port(port_name), &port.external.number, false));
            out.push(var(
                vars.internal_port(port_name),
                &port.exposed.number,
                true,
            ));
        }
    }
    let mut names: Vec<&str> = s
        .instances
        .iter()
        .map(|&i| env.instance(i).name.as_str())
        .collect();
    // Code-point order, as Python's `sorted`.
    names.sort_unstable();
    out.push(var(instances_var(&s.name), &names.join(","), false));
    out
}

/// The discovery variables of each service's instances: the own service's block (with
/// internal ports), then the blocks of the transitive `requires` and direct `wants_info`
/// services, later blocks winning. Requires an acyclic `requires` graph (validation
/// guarantees it).
pub(crate) fn discovery(env: &Environment) -> Discovery {
    let n = env.services.len();
    let blocks: Vec<Block> = (0..n).map(|s| block(env, ServiceId(s))).collect();
    let lists: Vec<Vec<usize>> = (0..n)
        .map(|service| {
            let mut deps = crate::graph::requires_closure(&env.services, ServiceId(service));
            for &w in &env.services[service].wants_info {
                if !deps.contains(&w) {
                    deps.push(w);
                }
            }
            // MaestroNG iterates a set here (arbitrary order); sorting by name makes the
            // outcome of colliding names at least stable.
            deps.sort_by(|a, b| env.services[a.0].name.cmp(&env.services[b.0].name));
            std::iter::once(2 * service)
                .chain(deps.iter().map(|d| 2 * d.0 + 1))
                .collect()
        })
        .collect();
    let mut names: HashMap<String, Vec<usize>> = HashMap::new();
    for (s, vars) in blocks.iter().enumerate() {
        for v in vars {
            let defining = names.entry(v.name.clone()).or_default();
            defining.push(2 * s);
            if !v.internal {
                defining.push(2 * s + 1);
            }
        }
    }
    // Names defined twice in what one service receives need a merged map for it: a
    // service that wants its own info (its two blocks overlap), or names that normalise
    // alike (`a-b` and `a_b`, within one block or across services). Everything else is
    // shared as it is.
    let mut colliding: Vec<bool> = (0..n).map(|s| lists[s].contains(&(2 * s + 1))).collect();
    for defining in names.values() {
        if defining.len() < 2 {
            continue;
        }
        let one_service = defining.iter().all(|b| b / 2 == defining[0] / 2);
        let no_repeat = defining.len() == 2 && defining[0] != defining[1];
        if one_service && no_repeat {
            continue; // The two variants of one service's block: handled above.
        }
        for (owner, list) in lists.iter().enumerate() {
            if defining.iter().filter(|b| list.contains(b)).count() > 1 {
                colliding[owner] = true;
            }
        }
    }
    let merged = (0..n)
        .map(|s| {
            colliding[s].then(|| {
                let mut vars = IndexMap::new();
                for &b in &lists[s] {
                    for v in blocks[b / 2].iter().filter(|v| b % 2 == 0 || !v.internal) {
                        vars.insert(v.name.clone(), v.value.clone());
                    }
                }
                vars
            })
        })
        .collect();
    Discovery {
        blocks,
        lists,
        merged,
        names,
    }
}

#[cfg(test)]
mod tests;
