//! Every key of a MaestroNG 0.8.3 environment file is honoured or warned about: a walk
//! over `tests/parity/keys.tsv`, the list of MaestroNG's keys (reference sections 4, 8
//! and 9), each with an example and what maestro must do with it.
//!
//! Each row puts its example into one small environment file (see [`BASE`]) and loads it
//! twice, with the example and with `without` (the key absent, or another value):
//! - `honoured`: the two models differ (the `Debug` of the environment, which holds every
//!   instance's resolved definition), and the example adds no warning;
//! - `warned`: the example yields a warning at its path;
//! - `secret`: honoured, but a secret's `Debug` never shows it, so only "no warning"
//!   (and no error) is checked;
//! - `default`: the example is the only value MaestroNG accepts and means what its
//!   absence means (the same model, no warning);
//! - `refused`: the example is an error at its path.
//!
//! Neither file may have an error (except a `refused` row's example), and the file
//! without the example has no warning at all.

use maestro_core::model::{Environment, InstanceId, Ship};
use maestro_core::spec::container_spec;
use maestro_core::{Diagnostic, Files, Severity, load};

const KEYS: &str = include_str!("../../tests/parity/keys.tsv");

/// The file every example goes into: two services, one instance each, a registry.
const BASE: &[(&str, &str)] = &[
    ("__maestro.schema", "2"),
    ("name", "t"),
    ("ships.s1.ip", "10.0.0.1"),
    ("ships.s2.ip", "10.0.0.2"),
    ("registries.r1.registry", "\"https://reg.example.com\""),
    ("services.db.image", "db:1"),
    ("services.db.instances.db-1.ship", "s1"),
    ("services.db.instances.db-1.container_volumes", "[/shared]"),
    ("services.svc.image", "img:1"),
    ("services.svc.instances.i1.ship", "s1"),
    (
        "services.svc.instances.i1.ports",
        "{web: 8080, admin: 8081}",
    ),
];

/// Any env file: one variable.
struct AnyFile;

impl Files for AnyFile {
    fn read(&self, _path: &str) -> Result<String, String> {
        Ok("FROM_FILE=1\n".into())
    }
}

/// A YAML mapping built from dotted paths, leaves written as given (flow YAML).
#[derive(Default)]
struct Tree(Vec<(String, Node)>);

enum Node {
    Leaf(String),
    Map(Tree),
}

impl Tree {
    fn set(&mut self, path: &str, value: Option<&str>) {
        let (head, rest) = match path.split_once('.') {
            Some((h, r)) => (h, Some(r)),
            None => (path, None),
        };
        let at = self.0.iter().position(|(k, _)| k == head);
        match (rest, value) {
            (None, None) => {
                if let Some(i) = at {
                    self.0.remove(i);
                }
            }
            (None, Some(v)) => match at {
                Some(i) => self.0[i].1 = Node::Leaf(v.to_owned()),
                None => self.0.push((head.to_owned(), Node::Leaf(v.to_owned()))),
            },
            (Some(rest), value) => {
                let i = match at {
                    Some(i) => i,
                    None => {
                        if value.is_none() {
                            return;
                        }
                        self.0.push((head.to_owned(), Node::Map(Tree::default())));
                        self.0.len() - 1
                    }
                };
                if let Node::Leaf(_) = self.0[i].1 {
                    self.0[i].1 = Node::Map(Tree::default());
                }
                if let Node::Map(t) = &mut self.0[i].1 {
                    t.set(rest, value);
                }
            }
        }
    }

    fn render(&self, indent: usize, out: &mut String) {
        for (k, v) in &self.0 {
            out.push_str(&" ".repeat(indent));
            out.push_str(k);
            match v {
                Node::Leaf(text) => {
                    out.push_str(": ");
                    out.push_str(text);
                    out.push('\n');
                }
                Node::Map(t) => {
                    out.push_str(":\n");
                    t.render(indent + 2, out);
                }
            }
        }
    }
}

fn file(at: &str, value: Option<&str>) -> String {
    let mut tree = Tree::default();
    for (path, v) in BASE {
        tree.set(path, Some(v));
    }
    tree.set(at, value);
    let mut out = String::new();
    tree.render(0, &mut out);
    out
}

/// The model as text: every part of the environment, then each instance's container spec
/// (what Docker is given). The discovery index is left out: it holds a `HashMap`, whose
/// `Debug` order changes from load to load; what it computes is in the specs' variables.
fn model(e: &Environment) -> String {
    let mut out = format!(
        "{:#?}\n{:#?}\n{:#?}\n{:#?}\n{:#?}\n{:#?}\n{:#?}\n",
        e.name, e.schema, e.ships, e.registries, e.services, e.instances, e.audit
    );
    for i in 0..e.instances.len() {
        out.push_str(&format!("{:#?}\n", container_spec(e, InstanceId(i))));
    }
    out
}

struct Outcome {
    model: Option<String>,
    diags: Vec<Diagnostic>,
}

fn outcome(text: &str) -> Outcome {
    let loaded = load(text, &AnyFile, &Ship::new("local", "127.0.0.1"));
    Outcome {
        model: loaded.environment.as_ref().map(model),
        diags: loaded.diagnostics,
    }
}

fn shown(diags: &[Diagnostic], severity: Severity) -> Vec<String> {
    diags
        .iter()
        .filter(|d| d.severity == severity)
        .map(|d| format!("{}: {}", d.path, d.message))
        .collect()
}

struct Row<'a> {
    line: usize,
    key: &'a str,
    status: &'a str,
    at: &'a str,
    value: &'a str,
    without: Option<&'a str>,
    warning_at: &'a str,
}

fn rows() -> Vec<Row<'static>> {
    let mut out = Vec::new();
    for (i, line) in KEYS.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        assert!(
            (5..=6).contains(&cols.len()),
            "keys.tsv:{}: expected 5 or 6 tab-separated columns, got {}: {line:?}",
            i + 1,
            cols.len()
        );
        out.push(Row {
            line: i + 1,
            key: cols[0],
            status: cols[1],
            at: cols[2],
            value: cols[3],
            without: (cols[4] != "-").then_some(cols[4]),
            warning_at: cols.get(5).copied().unwrap_or(cols[2]),
        });
    }
    out
}

/// What is wrong with one row, if anything.
fn check(row: &Row) -> Option<String> {
    let with_text = file(row.at, Some(row.value));
    let without_text = file(row.at, row.without);
    let with = outcome(&with_text);
    let without = outcome(&without_text);
    let fail = |why: String| {
        Some(format!(
            "keys.tsv:{} {} ({}): {why}\n--- with:\n{with_text}--- without:\n{without_text}",
            row.line, row.key, row.status
        ))
    };
    let without_errors = shown(&without.diags, Severity::Error);
    let without_warnings = shown(&without.diags, Severity::Warning);
    if !without_errors.is_empty() || !without_warnings.is_empty() {
        return fail(format!(
            "the file without the example is not clean: {without_errors:?} {without_warnings:?}"
        ));
    }
    let errors = shown(&with.diags, Severity::Error);
    let warnings = shown(&with.diags, Severity::Warning);
    let at = |d: &Diagnostic| d.path == row.warning_at;
    match row.status {
        "refused" => {
            if !with
                .diags
                .iter()
                .any(|d| d.severity == Severity::Error && at(d))
            {
                return fail(format!("no error at {}: {errors:?}", row.warning_at));
            }
            return None;
        }
        _ if !errors.is_empty() => return fail(format!("errors: {errors:?}")),
        "warned" => {
            if !with
                .diags
                .iter()
                .any(|d| d.severity == Severity::Warning && at(d))
            {
                return fail(format!("no warning at {}: {warnings:?}", row.warning_at));
            }
        }
        "honoured" => {
            if !warnings.is_empty() {
                return fail(format!("warnings: {warnings:?}"));
            }
            if with.model == without.model {
                return fail("the model is the same with and without it".into());
            }
        }
        "secret" => {
            if !warnings.is_empty() {
                return fail(format!("warnings: {warnings:?}"));
            }
        }
        "default" => {
            if !warnings.is_empty() {
                return fail(format!("warnings: {warnings:?}"));
            }
            if with.model != without.model {
                return fail(format!(
                    "the model changes, but the row says it is the default:\n{}",
                    changed_lines(&with.model, &without.model)
                ));
            }
        }
        other => return fail(format!("unknown status {other:?}")),
    }
    None
}

/// The lines of two models' `Debug` that differ (a few), for failure messages.
fn changed_lines(a: &Option<String>, b: &Option<String>) -> String {
    let (a, b) = (a.as_deref().unwrap_or(""), b.as_deref().unwrap_or(""));
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    la.iter()
        .filter(|l| !lb.contains(l))
        .map(|l| format!("+ {l}"))
        .chain(
            lb.iter()
                .filter(|l| !la.contains(l))
                .map(|l| format!("- {l}")),
        )
        .take(12)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_maestrong_key_is_honoured_or_warned() {
    let rows = rows();
    assert!(rows.len() > 100, "keys.tsv has only {} rows", rows.len());
    let failures: Vec<String> = rows.iter().filter_map(check).collect();
    assert!(
        failures.is_empty(),
        "{} of {} keys:\n\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n\n")
    );
}

#[test]
fn the_base_file_is_clean() {
    let text = file("name", Some("t"));
    let o = outcome(&text);
    assert!(o.model.is_some(), "{text}");
    assert_eq!(shown(&o.diags, Severity::Warning), Vec::<String>::new());
}
