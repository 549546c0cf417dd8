//! `maestro deptree`: MaestroNG's dependency tree text.

use std::collections::HashSet;
use std::fmt::Write as _;

use maestro_core::graph::service_dependencies;
use maestro_core::model::{Environment, ServiceId};

/// The trees of `roots` (sorted by name), separated by blank lines. Without `recursive`, a
/// dependency already shown in the same tree is not expanded again.
pub fn deptree(env: &Environment, roots: &[ServiceId], recursive: bool) -> String {
    let mut roots = roots.to_vec();
    roots.sort_by(|a, b| env.service(*a).name.cmp(&env.service(*b).name));
    roots.dedup();
    let mut out = String::new();
    for (i, root) in roots.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "{}", env.service(*root).name);
        let mut seen = HashSet::from([*root]);
        children(env, *root, " ", recursive, &mut seen, &mut out);
    }
    out
}

fn children(
    env: &Environment,
    service: ServiceId,
    indent: &str,
    recursive: bool,
    seen: &mut HashSet<ServiceId>,
    out: &mut String,
) {
    let deps: Vec<ServiceId> = service_dependencies(env, service)
        .into_iter()
        .filter(|d| recursive || !seen.contains(d))
        .collect();
    // As MaestroNG: a node's direct dependencies count as shown before any of them is
    // expanded, so a sibling never reappears inside an earlier sibling's subtree.
    seen.extend(deps.iter().copied());
    for (i, dep) in deps.iter().enumerate() {
        let last = i + 1 == deps.len();
        let _ = writeln!(
            out,
            "{indent}{} {}",
            if last { "\\-" } else { "+-" },
            env.service(*dep).name
        );
        let child_indent = format!("{indent}{}", if last { "  " } else { "|  " });
        children(env, *dep, &child_indent, recursive, seen, out);
    }
}
