//! The discovery variables every instance receives (reference section 6.4): its own
//! service's hosts, ports, internal ports and instance list, then those of every service
//! in the transitive closure of `requires` and of each direct `wants_info` service.
//!
//! A service's block of variables is computed once and shared by every instance that
//! receives it; later blocks override earlier ones, as MaestroNG's `dict.update` does.
//! Dependencies through `volumes_from` give no variables (MaestroNG adds that dependency
//! after computing them).

use guestutils::names::{host_var, instances_var, internal_port_var, port_var};

use indexmap::IndexMap;

use crate::model::{Environment, ServiceId};

type Block = Vec<(String, String)>;

fn block(env: &Environment, service: ServiceId, internal: bool) -> Block {
    let s = env.service(service);
    let mut out = Block::new();
    for &id in &s.instances {
        let instance = env.instance(id);
        out.push((
            host_var(&s.name, &instance.name),
            env.ship(instance.ship).ip.clone(),
        ));
        for (port_name, port) in &instance.ports {
            out.push((
                port_var(&s.name, &instance.name, port_name),
                port.external.number.clone(),
            ));
            if internal {
                out.push((
                    internal_port_var(&s.name, &instance.name, port_name),
                    port.exposed.number.clone(),
                ));
            }
        }
    }
    let mut names: Vec<&str> = s
        .instances
        .iter()
        .map(|&i| env.instance(i).name.as_str())
        .collect();
    // Code-point order, as Python's `sorted`.
    names.sort_unstable();
    out.push((instances_var(&s.name), names.join(",")));
    out
}

/// The discovery variables of each service's instances: the own service's block (with
/// internal ports), then the blocks of the transitive `requires` and direct `wants_info`
/// services, later blocks winning. Requires an acyclic `requires` graph (validation
/// guarantees it).
pub(crate) fn discovery(env: &Environment) -> Vec<IndexMap<String, String>> {
    let own: Vec<Block> = (0..env.services.len())
        .map(|i| block(env, ServiceId(i), true))
        .collect();
    let foreign: Vec<Block> = (0..env.services.len())
        .map(|i| block(env, ServiceId(i), false))
        .collect();
    (0..env.services.len())
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
            let size = own[service].len() + deps.iter().map(|d| foreign[d.0].len()).sum::<usize>();
            let mut vars = IndexMap::with_capacity(size);
            for (k, v) in own[service]
                .iter()
                .chain(deps.iter().flat_map(|d| foreign[d.0].iter()))
            {
                vars.insert(k.clone(), v.clone());
            }
            vars
        })
        .collect()
}

#[cfg(test)]
mod tests;
