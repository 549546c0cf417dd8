//! `maestro deptree`: MaestroNG's dependency tree text.

use std::io::{self, Write};

use maestro_core::graph::service_dependencies;
use maestro_core::model::{Environment, ServiceId};

/// Marks a dependency whose own dependencies `-r` already showed in the same tree.
pub const REPEATED: &str = " (*)";

/// Writes the trees of `roots` (sorted by name), separated by blank lines. Without
/// `recursive`, a dependency already shown in the same tree is not shown again, as in
/// MaestroNG. With it, every dependency is shown, but a service whose dependencies were
/// already shown in the same tree is shown once more only by name, followed by
/// [`REPEATED`] (MaestroNG expands it again, which is exponential in the depth of a
/// diamond-shaped graph).
///
/// The walk keeps its own stack (a chain of thousands of services would overflow the
/// thread's) and writes as it goes, so memory does not grow with the output.
pub fn write_deptree(
    env: &Environment,
    roots: &[ServiceId],
    recursive: bool,
    out: &mut dyn Write,
) -> io::Result<()> {
    let mut roots = roots.to_vec();
    roots.sort_by(|a, b| env.service(*a).name.cmp(&env.service(*b).name));
    roots.dedup();
    let n = env.services.len();
    let mut dependencies: Vec<Option<Vec<ServiceId>>> = vec![None; n];
    let mut dependencies_of = |s: ServiceId| -> Vec<ServiceId> {
        dependencies[s.0]
            .get_or_insert_with(|| service_dependencies(env, s))
            .clone()
    };
    // Per tree: which services are shown (without -r) or expanded (with it), as the number
    // of the tree they were marked in, so nothing needs clearing between trees.
    let mut shown = vec![usize::MAX; n];
    let mut expanded = vec![usize::MAX; n];

    struct Frame {
        deps: Vec<ServiceId>,
        next: usize,
        /// The length of the indentation of `deps`' lines.
        indent: usize,
    }
    let mut indent = String::new();
    for (tree, &root) in roots.iter().enumerate() {
        if tree > 0 {
            out.write_all(b"\n")?;
        }
        writeln!(out, "{}", env.service(root).name)?;
        shown[root.0] = tree;
        expanded[root.0] = tree;
        indent.clear();
        indent.push(' ');
        let mut stack: Vec<Frame> = Vec::new();
        let mut children = dependencies_of(root);
        loop {
            if !recursive {
                // As MaestroNG: a node's direct dependencies count as shown before any of
                // them is expanded, so a sibling never reappears inside an earlier
                // sibling's subtree.
                children.retain(|d| shown[d.0] != tree);
                for d in &children {
                    shown[d.0] = tree;
                }
            }
            if !children.is_empty() {
                stack.push(Frame {
                    deps: children,
                    next: 0,
                    indent: indent.len(),
                });
            }
            children = Vec::new();
            // The next dependency to print: the first frame from the top with one left.
            while stack.last().is_some_and(|f| f.next == f.deps.len()) {
                stack.pop();
            }
            let Some(frame) = stack.last_mut() else {
                break;
            };
            indent.truncate(frame.indent);
            let dep = frame.deps[frame.next];
            frame.next += 1;
            let last = frame.next == frame.deps.len();
            let its = dependencies_of(dep);
            let repeated = recursive && expanded[dep.0] == tree && !its.is_empty();
            writeln!(
                out,
                "{indent}{} {}{}",
                if last { "\\-" } else { "+-" },
                env.service(dep).name,
                if repeated { REPEATED } else { "" }
            )?;
            if !repeated {
                expanded[dep.0] = tree;
                indent.push_str(if last { "  " } else { "|  " });
                children = its;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use maestro_core::model::Ship;

    fn environment(services: &str) -> Environment {
        let text = format!("name: t\nships: {{s: {{ip: 10.0.0.1}}}}\nservices:\n{services}");
        let loaded = maestro_core::load(&text, &maestro_core::NoFiles, &Ship::new("l", "1"));
        assert!(
            !loaded.diagnostics.iter().any(|d| d.is_error()),
            "{:?}",
            loaded.diagnostics
        );
        loaded.environment.expect("valid")
    }

    fn deptree(env: &Environment, root: &str, recursive: bool) -> String {
        let root = env.service_by_name(root).expect("exists");
        let mut out = Vec::new();
        write_deptree(env, &[root], recursive, &mut out).expect("written");
        String::from_utf8(out).expect("text")
    }

    /// `levels` levels of two services, each requiring both services of the next level.
    fn diamond(levels: usize) -> Environment {
        let mut services = String::new();
        for level in 0..levels {
            for side in ["a", "b"] {
                let requires = if level + 1 < levels {
                    format!("[l{0}a, l{0}b]", level + 1)
                } else {
                    "[]".to_owned()
                };
                services.push_str(&format!(
                    "  l{level}{side}: {{image: i, requires: {requires}, instances: {{l{level}{side}-1: {{ship: s}}}}}}\n"
                ));
            }
        }
        environment(&services)
    }

    #[test]
    fn deptree_never_computes_discovery_variables() {
        let env = diamond(4);
        assert_eq!(
            env.discovery.computed_services(),
            0,
            "loading computed some"
        );
        let roots: Vec<_> = (0..env.services.len()).map(ServiceId).collect();
        for recursive in [false, true] {
            write_deptree(&env, &roots, recursive, &mut Vec::new()).expect("written");
        }
        assert_eq!(
            env.discovery.computed_services(),
            0,
            "deptree computed some"
        );
    }

    #[test]
    fn repeated_subtrees_are_shown_once() {
        let env = diamond(4);
        // MaestroNG's format, with a repeated subtree marked instead of expanded again;
        // leaves repeat as they are.
        assert_eq!(
            deptree(&env, "l0a", true),
            "\
l0a
 +- l1a
 |  +- l2a
 |  |  +- l3a
 |  |  \\- l3b
 |  \\- l2b
 |    +- l3a
 |    \\- l3b
 \\- l1b
   +- l2a (*)
   \\- l2b (*)
"
        );
        assert_eq!(
            deptree(&env, "l0a", false),
            "\
l0a
 +- l1a
 |  +- l2a
 |  |  +- l3a
 |  |  \\- l3b
 |  \\- l2b
 \\- l1b
"
        );
        // 40 levels: 2^40 lines when every repeat is expanded; here four per level.
        let env = diamond(40);
        let lines = deptree(&env, "l0a", true).lines().count();
        assert_eq!(lines, 4 * 40 - 5);
    }

    #[test]
    fn deep_chains_do_not_overflow_the_stack() {
        const DEPTH: usize = 5_000;
        let mut services = String::new();
        for i in 0..DEPTH {
            let from = if i + 1 < DEPTH {
                format!(", volumes_from: c{}", i + 1)
            } else {
                String::new()
            };
            services.push_str(&format!(
                "  s{i}: {{image: i, instances: {{c{i}: {{ship: s{from}}}}}}}\n"
            ));
        }
        let env = environment(&services);
        // A small stack, so that a walk recursing once per level overflows it.
        let lines = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let mut out = Counter::default();
                let root = env.service_by_name("s0").expect("exists");
                write_deptree(&env, &[root], true, &mut out).expect("written");
                out.lines
            })
            .expect("thread")
            .join()
            .expect("no overflow");
        assert_eq!(lines, DEPTH);
    }

    /// Counts lines without keeping them (the tree of a deep chain is large).
    #[derive(Default)]
    struct Counter {
        lines: usize,
    }

    impl Write for Counter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.lines += buf.iter().filter(|&&b| b == b'\n').count();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
}
