//! Dependencies between instances, and the selections and orders plays act on.
//!
//! Edges mean "waits for". On start, an instance waits for every instance of each service
//! its service `requires` or takes `volumes_from` (within one service, only for the
//! instance it takes volumes from). On stop, an
//! instance waits for every instance of each service that requires its service. A
//! `volumes_from` source does not wait on stop: Docker only needs it to exist, not to run.
//! `wants_info` never orders anything.

use crate::diag::suggestion;
use crate::model::{Environment, InstanceId, Service, ServiceId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Dependencies first (start, pull, clean, status).
    Start,
    /// Dependents first (stop, kill, restart).
    Stop,
}

/// The strongly connected components of a graph given as adjacency lists: each node's
/// component number, and how many there are. Tarjan's algorithm with an explicit stack
/// (a recursive walk overflows the stack on a long chain of services).
pub fn strongly_connected(adjacency: &[Vec<usize>]) -> (Vec<usize>, usize) {
    const UNSEEN: usize = usize::MAX;
    let n = adjacency.len();
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut component = vec![UNSEEN; n];
    let mut stack: Vec<usize> = Vec::new();
    // The walk: each node being visited, with how many of its edges it has followed.
    let mut walk: Vec<(usize, usize)> = Vec::new();
    let (mut next_index, mut count) = (0, 0);
    for root in 0..n {
        if index[root] != UNSEEN {
            continue;
        }
        index[root] = next_index;
        low[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        walk.push((root, 0));
        while let Some((v, followed)) = walk.last_mut() {
            let v = *v;
            if let Some(&w) = adjacency[v].get(*followed) {
                *followed += 1;
                if index[w] == UNSEEN {
                    index[w] = next_index;
                    low[w] = next_index;
                    next_index += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    walk.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            walk.pop();
            if let Some(&(parent, _)) = walk.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component[w] = count;
                    if w == v {
                        break;
                    }
                }
                count += 1;
            }
        }
    }
    (component, count)
}

/// The cycles of a graph given as adjacency lists, one per strongly connected group, each
/// as the nodes along it (the first repeated implicitly at the end). Empty when acyclic.
pub fn cycles(adjacency: &[Vec<usize>]) -> Vec<Vec<usize>> {
    const NONE: usize = usize::MAX;
    let (component, count) = strongly_connected(adjacency);
    let mut size = vec![0usize; count];
    let mut lowest = vec![NONE; count];
    for (node, &c) in component.iter().enumerate() {
        size[c] += 1;
        lowest[c] = lowest[c].min(node);
    }
    // Where each node is on the current walk (NONE when not on it): reset after each
    // walk, so the whole search stays linear in the graph's size.
    let mut position = vec![NONE; adjacency.len()];
    let mut cycles = Vec::new();
    for c in 0..count {
        let start = lowest[c];
        if size[c] == 1 && !adjacency[start].contains(&start) {
            continue;
        }
        // Walk from the lowest node along edges inside the group until a node repeats:
        // that walk ends in a cycle (every node of the group has an edge inside it).
        let mut path = vec![start];
        position[start] = 0;
        let mut current = start;
        while let Some(&next) = adjacency[current].iter().find(|&&n| component[n] == c) {
            if position[next] != NONE {
                cycles.push(path[position[next]..].to_vec());
                break;
            }
            position[next] = path.len();
            path.push(next);
            current = next;
        }
        for node in path {
            position[node] = NONE;
        }
    }
    cycles.sort();
    cycles
}

/// The shortest path from `from` to `to` (both included) along edges between nodes of
/// `component` (as numbered by [`strongly_connected`]); `None` when there is none.
pub fn path_within(
    adjacency: &[Vec<usize>],
    component: &[usize],
    from: usize,
    to: usize,
) -> Option<Vec<usize>> {
    const NONE: usize = usize::MAX;
    let group = component[from];
    let mut came_from = std::collections::HashMap::from([(from, NONE)]);
    let mut queue = std::collections::VecDeque::from([from]);
    while let Some(node) = queue.pop_front() {
        if node == to {
            let mut path = vec![to];
            let mut at = to;
            while came_from[&at] != NONE {
                at = came_from[&at];
                path.push(at);
            }
            path.reverse();
            return Some(path);
        }
        for &next in &adjacency[node] {
            if component[next] == group && !came_from.contains_key(&next) {
                came_from.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    None
}

/// The `requires` cycles among services.
pub fn requires_cycles(services: &[Service]) -> Vec<Vec<ServiceId>> {
    let adjacency: Vec<Vec<usize>> = services
        .iter()
        .map(|s| s.requires.iter().map(|r| r.0).collect())
        .collect();
    cycles(&adjacency)
        .into_iter()
        .map(|c| c.into_iter().map(ServiceId).collect())
        .collect()
}

/// Every service `service` requires, directly or not, in discovery order. Assumes no
/// cycle through `service`.
pub fn requires_closure(services: &[Service], service: ServiceId) -> Vec<ServiceId> {
    let mut seen = vec![false; services.len()];
    let mut out = Vec::new();
    let mut stack: Vec<ServiceId> = services[service.0].requires.iter().rev().copied().collect();
    while let Some(s) = stack.pop() {
        if std::mem::replace(&mut seen[s.0], true) {
            continue;
        }
        out.push(s);
        stack.extend(services[s.0].requires.iter().rev().copied());
    }
    out
}

/// The services a service depends on for `deptree`: its `requires` plus the services of
/// the instances its instances take volumes from, sorted by name, itself excluded.
pub fn service_dependencies(env: &Environment, service: ServiceId) -> Vec<ServiceId> {
    let s = env.service(service);
    let mut deps: Vec<ServiceId> = s.requires.clone();
    for &i in &s.instances {
        for &source in &env.instance(i).volumes_from {
            let other = env.instance(source).service;
            if other != service && !deps.contains(&other) {
                deps.push(other);
            }
        }
    }
    deps.sort_by(|a, b| env.service(*a).name.cmp(&env.service(*b).name));
    deps
}

/// Which instances each instance waits for, in both directions.
#[derive(Clone, Debug)]
pub struct Dependencies {
    start: Vec<Vec<InstanceId>>,
    stop: Vec<Vec<InstanceId>>,
}

impl Dependencies {
    pub fn new(env: &Environment) -> Self {
        let n = env.instances.len();
        let mut start: Vec<Vec<InstanceId>> = vec![Vec::new(); n];
        let mut stop: Vec<Vec<InstanceId>> = vec![Vec::new(); n];
        for service in &env.services {
            for required in &service.requires {
                let providers = &env.service(*required).instances;
                for &i in &service.instances {
                    start[i.0].extend(providers.iter().copied());
                }
                for &p in providers {
                    stop[p.0].extend(service.instances.iter().copied());
                }
            }
        }
        // Taking volumes from another service's instance makes the whole service wait
        // for that whole service, as in MaestroNG; within one service (where MaestroNG
        // recurses forever) only the instance waits for its source.
        for (i, instance) in env.instances.iter().enumerate() {
            for source in &instance.volumes_from {
                let provider = env.instance(*source).service;
                if provider == instance.service {
                    start[i].push(*source);
                } else {
                    let providers = &env.service(provider).instances;
                    for &member in &env.service(instance.service).instances {
                        start[member.0].extend(providers.iter().copied());
                    }
                }
            }
        }
        for list in start.iter_mut().chain(stop.iter_mut()) {
            list.sort_unstable();
            list.dedup();
        }
        Dependencies { start, stop }
    }

    /// The instances `instance` directly waits for when acting in `direction`.
    pub fn waits_for(&self, instance: InstanceId, direction: Direction) -> &[InstanceId] {
        match direction {
            Direction::Start => &self.start[instance.0],
            Direction::Stop => &self.stop[instance.0],
        }
    }

    fn edges(&self, direction: Direction) -> &[Vec<InstanceId>] {
        match direction {
            Direction::Start => &self.start,
            Direction::Stop => &self.stop,
        }
    }

    /// Adds to `selection` everything it (transitively) waits for in `direction`: `-d`.
    pub fn with_dependencies(
        &self,
        selection: &[InstanceId],
        direction: Direction,
    ) -> Vec<InstanceId> {
        let edges = self.edges(direction);
        let mut seen = vec![false; edges.len()];
        let mut stack: Vec<InstanceId> = selection.to_vec();
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i.0], true) {
                continue;
            }
            stack.extend(edges[i.0].iter().copied());
        }
        seen.iter()
            .enumerate()
            .filter(|(_, s)| **s)
            .map(|(i, _)| InstanceId(i))
            .collect()
    }

    /// The selection as waves that can run together: an instance's wave comes after the
    /// waves of every selected instance it waits for, directly or through instances that
    /// are not selected (as MaestroNG waits on the transitive closure within a play).
    /// With `ignore_order` (`-i`) everything is one wave.
    pub fn waves(
        &self,
        selection: &[InstanceId],
        direction: Direction,
        ignore_order: bool,
    ) -> Vec<Vec<InstanceId>> {
        if selection.is_empty() {
            return Vec::new();
        }
        if ignore_order {
            let mut all = selection.to_vec();
            all.sort_unstable();
            all.dedup();
            return vec![all];
        }
        let edges = self.edges(direction);
        let mut selected = vec![false; edges.len()];
        for i in selection {
            selected[i.0] = true;
        }
        // depth(i) = how many selected instances lie on the longest chain strictly below i,
        // by an iterative post-order walk (each instance expanded once: the graph is a DAG).
        let mut depth: Vec<Option<usize>> = vec![None; edges.len()];
        let mut expanded = vec![false; edges.len()];
        for &root in selection {
            let mut stack = vec![(root, false)];
            while let Some((i, children_done)) = stack.pop() {
                if children_done {
                    let d = edges[i.0]
                        .iter()
                        .map(|dep| {
                            depth[dep.0].expect("children first") + usize::from(selected[dep.0])
                        })
                        .max()
                        .unwrap_or(0);
                    depth[i.0] = Some(d);
                } else if !std::mem::replace(&mut expanded[i.0], true) {
                    stack.push((i, true));
                    stack.extend(
                        edges[i.0]
                            .iter()
                            .filter(|d| !expanded[d.0])
                            .map(|&d| (d, false)),
                    );
                }
            }
        }
        let mut waves: Vec<Vec<InstanceId>> = Vec::new();
        let mut ordered: Vec<InstanceId> = selection.to_vec();
        ordered.sort_unstable();
        ordered.dedup();
        for i in ordered {
            let d = depth[i.0].expect("computed");
            if waves.len() <= d {
                waves.resize(d + 1, Vec::new());
            }
            waves[d].push(i);
        }
        waves.retain(|w| !w.is_empty());
        waves
    }
}

/// Why the things named on the command line cannot be selected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("{name:?} is neither a service nor an instance; {help}")]
    Unknown { name: String, help: String },
    #[error(
        "{name} is a service; name its instances, or pass -s (--expand-services) to act on all of them"
    )]
    ServiceNotExpanded { name: String },
    #[error("no services or instances named, and --all not given")]
    NothingNamed,
}

/// Resolves the things named on the command line (instance names, and service names when
/// `expand_services`) to instances, without duplicates, in environment order.
pub fn select(
    env: &Environment,
    things: &[String],
    expand_services: bool,
) -> Result<Vec<InstanceId>, SelectError> {
    let mut chosen = vec![false; env.instances.len()];
    for thing in things {
        if let Some(i) = env.instance_by_name(thing) {
            chosen[i.0] = true;
        } else if let Some(s) = env.service_by_name(thing) {
            if !expand_services {
                return Err(SelectError::ServiceNotExpanded {
                    name: thing.clone(),
                });
            }
            for i in &env.service(s).instances {
                chosen[i.0] = true;
            }
        } else {
            let names = env
                .services
                .iter()
                .map(|s| s.name.as_str())
                .chain(env.instances.iter().map(|i| i.name.as_str()));
            return Err(SelectError::Unknown {
                name: thing.clone(),
                help: suggestion(thing, names),
            });
        }
    }
    Ok(chosen
        .iter()
        .enumerate()
        .filter(|(_, c)| **c)
        .map(|(i, _)| InstanceId(i))
        .collect())
}

/// How a play chooses its instances from the command line.
#[derive(Clone, Debug, Default)]
pub struct SelectOptions<'a> {
    /// Instance and service names; none means every service not marked `omit`.
    pub things: &'a [String],
    /// Accept service names (`-s`; some plays always do).
    pub expand_services: bool,
    /// `-a`: act on everything when no names are given.
    pub all: bool,
    /// The play refuses to run on everything unless `-a` says so (stop, kill, restart).
    pub needs_all_for_everything: bool,
    /// `-d`: add what the named instances wait for (or, stopping, what waits for them).
    pub with_dependencies: bool,
    /// `-i`: ignore dependencies.
    pub ignore_dependencies: bool,
    /// `status` also shows omitted services when no names are given.
    pub include_omitted: bool,
    /// `-C`: only instances whose name matches this glob.
    pub container_filter: Option<&'a str>,
    /// `-S`: only instances on ships whose name matches this glob.
    pub ship_filter: Option<&'a str>,
}

impl Dependencies {
    /// The instances a play acts on, in environment order. With no names, every service
    /// not marked `omit` and (unless `-i`) what it depends on in `direction`, as
    /// MaestroNG does; filters always apply (MaestroNG ignores them in that case).
    pub fn selection(
        &self,
        env: &Environment,
        options: &SelectOptions<'_>,
        direction: Direction,
    ) -> Result<Vec<InstanceId>, SelectError> {
        let everything = options.things.is_empty();
        if everything && options.needs_all_for_everything && !options.all {
            return Err(SelectError::NothingNamed);
        }
        let mut chosen: Vec<InstanceId> = if everything {
            env.services
                .iter()
                .filter(|s| options.include_omitted || !s.omit)
                .flat_map(|s| s.instances.iter().copied())
                .collect()
        } else {
            select(env, options.things, options.expand_services || options.all)?
        };
        let with_dependencies =
            options.with_dependencies || (everything && !options.ignore_dependencies);
        if with_dependencies {
            chosen = self.with_dependencies(&chosen, direction);
        }
        chosen.sort_unstable();
        chosen.dedup();
        chosen.retain(|&i| {
            let instance = env.instance(i);
            options
                .container_filter
                .is_none_or(|p| glob_match(p, &instance.name))
                && options
                    .ship_filter
                    .is_none_or(|p| glob_match(p, &env.ship(instance.ship).name))
        });
        Ok(chosen)
    }
}

impl Dependencies {
    /// For each instance of `selection`, the positions (in `selection`) of the selected
    /// instances it waits for in `direction`: directly, or through instances that are not
    /// part of the play (MaestroNG waits on the transitive closure within a play).
    pub fn within(&self, selection: &[InstanceId], direction: Direction) -> Vec<Vec<usize>> {
        let edges = self.edges(direction);
        let mut position = vec![usize::MAX; edges.len()];
        for (p, i) in selection.iter().enumerate() {
            position[i.0] = p;
        }
        // reach[i]: the selected instances reachable from unselected instance i, memoised.
        // Computed by an iterative post-order walk: a recursive one overflows the stack on
        // a long chain of instances outside the play.
        let mut reach: Vec<Option<Vec<usize>>> = vec![None; edges.len()];
        // Expanded once each, so that even a cyclic graph (validation rules it out) ends.
        let mut expanded = vec![false; edges.len()];
        let mut stack: Vec<(usize, bool)> = Vec::new();
        let reached = |i: usize, reach: &[Option<Vec<usize>>]| -> Vec<usize> {
            let mut out = Vec::new();
            for d in &edges[i] {
                if position[d.0] != usize::MAX {
                    out.push(position[d.0]);
                } else if let Some(done) = &reach[d.0] {
                    out.extend_from_slice(done);
                }
            }
            out.sort_unstable();
            out.dedup();
            out
        };
        selection
            .iter()
            .map(|i| {
                for d in &edges[i.0] {
                    if position[d.0] == usize::MAX && reach[d.0].is_none() {
                        stack.push((d.0, false));
                    }
                }
                while let Some((u, children_done)) = stack.pop() {
                    if children_done {
                        reach[u] = Some(reached(u, &reach));
                        continue;
                    }
                    if std::mem::replace(&mut expanded[u], true) {
                        continue;
                    }
                    stack.push((u, true));
                    for d in &edges[u] {
                        if position[d.0] == usize::MAX && reach[d.0].is_none() {
                            stack.push((d.0, false));
                        }
                    }
                }
                reached(i.0, &reach)
            })
            .collect()
    }
}

/// Python's `fnmatch.fnmatchcase`: `*` any run, `?` any one character, `[abc]`, `[a-z]`
/// and `[!abc]` sets; everything else literal.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Classic backtracking over the last `*`: linear in practice.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, next)) = class(&p, pi, n[ni]) {
                        if matched {
                            pi = next;
                            ni += 1;
                            continue;
                        }
                    } else if n[ni] == '[' {
                        pi += 1;
                        ni += 1;
                        continue;
                    }
                }
                c if c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches `c` against the set starting at `p[start] == '['`: `(matched, index after the
/// set)`, or `None` when the set is not closed (then `[` is literal, as in fnmatch).
fn class(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = p.get(i) == Some(&'!');
    if negate {
        i += 1;
    }
    let first = i;
    let mut matched = false;
    while i < p.len() && (p[i] != ']' || i == first) {
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            matched |= p[i] <= c && c <= p[i + 2];
            i += 3;
        } else {
            matched |= p[i] == c;
            i += 1;
        }
    }
    (i < p.len()).then_some((matched != negate, i + 1))
}

#[cfg(test)]
mod tests;
