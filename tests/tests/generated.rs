//! Generated inputs: thousands of mutated environment files must never make the core
//! panic, and its answers must be consistent (an environment exactly when there is no
//! error; every error located or at least explained).
//!
//! The mutations are deterministic (a fixed-seed xorshift), so a failure reproduces; the
//! run is bounded in count and time so that CI stays fast.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use maestro_core::Files;
use maestro_core::graph::{Dependencies, Direction};
use maestro_core::model::{InstanceId, Ship};

struct MemFiles(HashMap<String, String>);

impl Files for MemFiles {
    fn read(&self, path: &str) -> Result<String, String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| format!("{path}: no such file"))
    }
}

use maestro_tests::rng::Rng;

/// Fragments that matter to YAML and to the schema.
const TOKENS: &[&str] = &[
    ":",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "&a ",
    "*a",
    "<<: *a",
    "\"",
    "'",
    "\n  ",
    "\n",
    "~",
    "!!str ",
    "0x1F",
    "25:25",
    "\t",
    "é",
    "ß",
    "80/udp",
    "1-2",
    "null",
    "yes",
    "1.5g",
    "-1",
    "requires: [",
    "ships",
    "services",
    "instances",
    "ship: s1",
    "volumes_from: ",
    "ports: {p: ",
    "env: [",
    "lifecycle: {running: ",
    "{type: tcp, port: p}",
    "restart: ",
    "on-failure:",
    "{{ env.HOME }}",
    "---\n",
    "? ",
    "|\n  ",
    ">\n  ",
];

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut bytes: Vec<u8> = text.as_bytes().to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(6) {
            0 => {
                let end = (at + rng.below(12)).min(bytes.len());
                bytes.drain(at..end);
            }
            1 | 2 => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                bytes.splice(at..at, token.iter().copied());
            }
            3 => {
                // Duplicate a line somewhere else: duplicate keys, repeated instances.
                let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
                let line = lines[rng.below(lines.len())].to_vec();
                let mut with = line.clone();
                with.push(b'\n');
                let at = bytes
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'\n')
                    .map(|(i, _)| i + 1)
                    .nth(rng.below(lines.len()))
                    .unwrap_or(0);
                bytes.splice(at..at, with);
            }
            4 => {
                if let Some(b) = bytes.get_mut(at) {
                    *b = b" :-[]{}\"'\n#0a"
                        .get(rng.below(14))
                        .copied()
                        .unwrap_or(b' ');
                }
            }
            _ => {
                // Re-indent a line.
                let starts: Vec<usize> = std::iter::once(0)
                    .chain(
                        bytes
                            .iter()
                            .enumerate()
                            .filter(|(_, b)| **b == b'\n')
                            .map(|(i, _)| i + 1),
                    )
                    .collect();
                let s = starts[rng.below(starts.len())];
                if rng.below(2) == 0 {
                    bytes.splice(s..s, b"  ".iter().copied());
                } else if bytes.get(s) == Some(&b' ') {
                    bytes.remove(s);
                }
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn seeds() -> Vec<String> {
    let mut seeds = Vec::new();
    for dir in [
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/cases"),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        paths.sort();
        seeds.extend(paths.iter().filter_map(|p| std::fs::read_to_string(p).ok()));
    }
    seeds
}

/// Loads one text and checks the core's answers are consistent.
fn check(text: &str, files: &MemFiles, local: &Ship) {
    let loaded = maestro_core::load(text, files, local);
    let errors = loaded.diagnostics.iter().filter(|d| d.is_error()).count();
    assert_eq!(
        loaded.environment.is_some(),
        errors == 0,
        "an environment exactly when there is no error:\n{text}"
    );
    for d in &loaded.diagnostics {
        assert!(!d.message.trim().is_empty(), "empty message for {text}");
    }
    if let Some(env) = loaded.environment {
        let deps = Dependencies::new(&env);
        let all: Vec<InstanceId> = (0..env.instances.len()).map(InstanceId).collect();
        for direction in [Direction::Start, Direction::Stop] {
            let waves = deps.waves(&all, direction, false);
            assert_eq!(
                waves.iter().map(Vec::len).sum::<usize>(),
                all.len(),
                "every instance in one wave"
            );
            let mut wave_of = vec![0; all.len()];
            for (w, wave) in waves.iter().enumerate() {
                for i in wave {
                    wave_of[i.0] = w;
                }
            }
            for i in &all {
                for dep in deps.waits_for(*i, direction) {
                    assert!(
                        wave_of[dep.0] < wave_of[i.0],
                        "{} must come after {}",
                        env.instance(*i).name,
                        env.instance(*dep).name
                    );
                }
            }
        }
    }
}

#[test]
fn mutated_environment_files_never_panic() {
    let seeds = seeds();
    assert!(seeds.len() >= 3, "the fixtures are there");
    let files = MemFiles(
        [
            ("a.env", "A=1\n"),
            ("b.env", "# c\nB=2\n"),
            ("blank.env", "A=1\n\nB=2\n"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    );
    let local = Ship::new("local", "172.17.0.1");
    let budget = Duration::from_secs(
        std::env::var("MAESTRO_FUZZ_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    );
    let started = Instant::now();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut runs = 0;
    while runs < 1_000_000 && started.elapsed() < budget {
        let seed = &seeds[rng.below(seeds.len())];
        let text = mutate(&mut rng, seed);
        let outcome = catch_unwind(AssertUnwindSafe(|| check(&text, &files, &local)));
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!("run {runs}: {message}\n--- input ---\n{text}\n-------------");
        }
        runs += 1;
    }
    assert!(runs > 1000, "only {runs} inputs in {budget:?}");
}
