//! Hostile environment files through the real `maestro` binary: generated alias bombs,
//! deep nesting, huge numbers, long names, control characters, Jinja bombs, cycles,
//! thousands of services, invalid UTF-8, and special files (FIFOs, devices) where files
//! are expected. Every run has a memory limit (`ulimit -v` in the child's shell: this
//! workspace forbids the unsafe `pre_exec`) and a wall clock; none may panic (exit 101),
//! die by a signal, run out of time, or fail without saying why.
//!
//! The generator is deterministic (a fixed-seed xorshift), so a failure reproduces; its
//! run is bounded by `MAESTRO_FUZZ_SECONDS` (as `generated.rs`).

mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The child's address space: far above what any real file needs.
const MEMORY_KIB: u64 = 2 * 1024 * 1024;
/// The child's wall clock.
const WALL_CLOCK: Duration = Duration::from_secs(10);

/// How one run of the binary ended.
struct Outcome {
    /// The exit code; `None` when a signal ended it.
    code: Option<i32>,
    timed_out: bool,
    elapsed: Duration,
    stderr: String,
}

impl Outcome {
    /// Why this run is not an orderly end (`None` when it is).
    fn defect(&self) -> Option<String> {
        if self.timed_out {
            return Some(format!("ran over {WALL_CLOCK:?}"));
        }
        match self.code {
            None => return Some("killed by a signal (out of memory or stack?)".into()),
            Some(101) => return Some("panicked (exit 101)".into()),
            _ => {}
        }
        if self.stderr.contains("panicked") {
            return Some("stderr says it panicked".into());
        }
        if self.code != Some(0) && self.stderr.trim().is_empty() {
            return Some(format!("exit {:?} with nothing on stderr", self.code));
        }
        None
    }
}

/// A temporary folder removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(test: &str) -> Dir {
        let dir =
            std::env::temp_dir().join(format!("maestro-hostile-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `maestro ARGS` in `dir` with the memory limit and the wall clock; `stdin` is a
/// file given as standard input (none: empty).
fn run(dir: &Path, args: &[&str], stdin: Option<&Path>) -> Outcome {
    let out_path = dir.join(".stdout");
    let err_path = dir.join(".stderr");
    let stdin = match stdin {
        Some(path) => Stdio::from(std::fs::File::open(path).unwrap()),
        None => Stdio::null(),
    };
    let started = Instant::now();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {MEMORY_KIB} && exec \"$0\" \"$@\""))
        .arg(support::maestro_bin())
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        // The implicit ship of a file without `ships:`: nothing listens there.
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .env_remove("DOCKER_TLS_VERIFY")
        .stdin(stdin)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("sh runs");
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > WALL_CLOCK {
            timed_out = true;
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stderr = std::fs::read(&err_path).unwrap_or_default();
    Outcome {
        code: status.code(),
        timed_out,
        elapsed: started.elapsed(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// Special files where a file is expected.

#[test]
fn special_files_are_refused() {
    let dir = Dir::new("special");
    let d = &dir.0;
    let status = Command::new("mkfifo")
        .arg(d.join("fifo"))
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
    std::os::unix::fs::symlink("/dev/zero", d.join("zero")).unwrap();
    std::os::unix::fs::symlink("/dev/urandom", d.join("random")).unwrap();
    std::fs::create_dir(d.join("folder")).unwrap();
    let service = |extra: &str| {
        format!(
            "ships: {{a: {{ip: 127.0.0.1, docker_port: 1}}}}\nservices:\n  s:\n    image: x\n{extra}    instances: {{i: {{ship: a}}}}\n"
        )
    };
    let files = [
        (
            "include-fifo.yaml",
            format!("{{% include 'fifo' %}}\n{}", service("")),
        ),
        (
            "include-zero.yaml",
            format!("{{% include 'zero' %}}\n{}", service("")),
        ),
        (
            "include-random.yaml",
            format!("{{% include 'random' %}}\n{}", service("")),
        ),
        ("envfile-fifo.yaml", service("    envfile: fifo\n")),
        ("envfile-zero.yaml", service("    envfile: zero\n")),
        (
            "envfile-urandom.yaml",
            service("    envfile: /dev/urandom\n"),
        ),
    ];
    for (name, text) in &files {
        std::fs::write(d.join(name), text).unwrap();
    }
    let not_regular = "not a regular file";
    let cases: Vec<(Vec<&str>, Option<&Path>, &str)> = vec![
        (vec!["-f", "fifo", "config"], None, not_regular),
        (vec!["-f", "/dev/zero", "config"], None, not_regular),
        (vec!["-f", "/dev/urandom", "config"], None, not_regular),
        (vec!["-f", "zero", "config"], None, not_regular),
        (vec!["-f", "folder", "config"], None, "directory"),
        (vec!["-f", "include-fifo.yaml", "config"], None, not_regular),
        (vec!["-f", "include-zero.yaml", "config"], None, not_regular),
        (
            vec!["-f", "include-random.yaml", "config"],
            None,
            not_regular,
        ),
        (vec!["-f", "envfile-fifo.yaml", "config"], None, not_regular),
        (vec!["-f", "envfile-zero.yaml", "config"], None, not_regular),
        (
            vec!["-f", "envfile-urandom.yaml", "config"],
            None,
            not_regular,
        ),
        (
            vec!["-f", "-", "config"],
            Some(Path::new("/dev/zero")),
            "64 MiB",
        ),
    ];
    let mut failures = Vec::new();
    for (args, stdin, want) in &cases {
        let outcome = run(d, args, *stdin);
        let problem = outcome
            .defect()
            .or_else(|| (outcome.code == Some(0)).then(|| "succeeded".to_owned()))
            .or_else(|| (!outcome.stderr.contains(want)).then(|| format!("stderr lacks {want:?}")));
        if let Some(problem) = problem {
            failures.push(format!(
                "maestro {}: {problem} ({:?})\n{}",
                args.join(" "),
                outcome.elapsed,
                outcome.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ---------------------------------------------------------------------------------------
// The generator.

use maestro_tests::rng::Rng;

/// The head every generated file shares: a ship nothing listens on.
const SHIPS: &str = "name: h\nships: {a: {ip: 127.0.0.1, docker_port: 1}}\n";

fn service(name: &str, extra: &str) -> String {
    format!("  {name}:\n    image: x\n{extra}    instances: {{{name}-1: {{ship: a}}}}\n")
}

/// One hostile file of a family: its bytes.
fn generate(family: &str, rng: &mut Rng) -> Vec<u8> {
    let mut t = String::from(SHIPS);
    match family {
        "alias-nodes" => {
            t.push_str("x0: &x0 [a, a, a, a, a, a, a, a, a, a]\n");
            for i in 1..=rng.below(4) + 6 {
                let p = i - 1;
                let _ = writeln!(t, "x{i}: &x{i} [{}]", vec![format!("*x{p}"); 10].join(", "));
            }
        }
        "alias-bytes" => {
            let _ = writeln!(t, "s: &s {}", "y".repeat(1 << (16 + rng.below(5))));
            let _ = writeln!(t, "l: &l [{}]", vec!["*s"; 64].join(", "));
            let _ = writeln!(t, "m: [{}]", vec!["*l"; 64].join(", "));
        }
        "deep-flow" => {
            let depth = 1000 << rng.below(8);
            t.push_str("services: ");
            t.push_str(&"[".repeat(depth));
            t.push_str(&"]".repeat(depth));
            t.push('\n');
        }
        "deep-map" => {
            let depth = 100 << rng.below(8);
            t.push_str("services:\n");
            for i in 0..depth {
                let _ = writeln!(t, "{}k{i}:", " ".repeat(2 + i));
            }
        }
        "huge-numbers" => {
            let numbers = [
                "99999999999999999999999999999999",
                "-1",
                "65536",
                "4294967296",
                "1e400",
                "0x7fffffffffffffffffff",
                "1:2:3:4:5:6:7:8:9:10:11:12:13:14:15:16:17:18:19:20:21:22",
                ".nan",
            ];
            let n = rng.pick(&numbers);
            let m = rng.pick(&numbers);
            t.push_str("services:\n");
            t.push_str(&service(
                "s",
                &format!(
                    "    ports: {{p: \"{n}:{m}\", q: {n}, r: \"{n}-{m}\"}}\n    limits: {{memory: {n}, cpu: {m}}}\n    stop_timeout: {n}\n"
                ),
            ));
        }
        "huge-ranges" => {
            let (a, b) = *rng.pick(&[
                ("1", "65535"),
                ("0", "4294967295"),
                ("65535", "1"),
                ("1", "99999999999"),
            ]);
            t.push_str("services:\n");
            t.push_str(&service(
                "s",
                &format!("    ports: {{p: \"{a}-{b}:{a}-{b}/udp\"}}\n"),
            ));
        }
        "long-names" => {
            let long = "n".repeat(1000 << rng.below(8));
            t.push_str("services:\n");
            t.push_str(&service(&long, &format!("    env: {{{long}: {long}}}\n")));
        }
        "control-chars" => {
            let c = *rng.pick(&[
                "\\0",
                "\\x1b[31m",
                "\\x07",
                "\\r",
                "\\u202e",
                "\\x7f",
                "\\t",
            ]);
            t.push_str("services:\n");
            t.push_str(&service(
                &format!("\"s{c}\""),
                &format!("    env: {{\"K{c}\": \"v{c}\"}}\n    command: \"sh{c}\"\n"),
            ));
        }
        "jinja" => {
            let bombs = [
                r#"{{ "x"|indent(4000000000) }}"#,
                r#"{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"#,
                r#"{% set ns = namespace(s="x") %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"#,
                r#"{{ "x".center(4000000000) }}"#,
                r#"{{ ("x" * 1000000).replace("x", "xxxxxxxxxx" * 100) }}"#,
                r#"{% for i in range(100000) %}{{ "x" * 10000000 }}{% endfor %}"#,
                r#"{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}"#,
                r#"{{ "%99999999999s"|format("x") }}"#,
                r#"{{ [1]|slice(4000000000) }}"#,
                r#"{% include "maestro.yaml" %}"#,
                r#"{% include "/etc/passwd" %}"#,
                r#"{% include "../../../../etc/passwd" %}"#,
                r#"{{ env }}"#,
                r#"{{ "#,
                r#"{% for %}"#,
            ];
            let bomb = *rng.pick(&bombs);
            t.push_str(bomb);
            t.push_str("\nservices:\n");
            t.push_str(&service("s", ""));
        }
        "cycle" => {
            let n = 2 + rng.below(50);
            t.push_str("services:\n");
            for i in 0..n {
                t.push_str(&service(
                    &format!("s{i}"),
                    &format!("    requires: [s{}]\n", (i + 1) % n),
                ));
            }
        }
        "long-chain" => {
            // Up to 1,000 deep: each service gets the variables of every one below it and
            // `deptree` prints one tree per service, as MaestroNG does, so what these
            // commands must write grows with the square and the cube of the depth (a
            // 1,000-deep chain is 337 MB of `deptree`). Deeper chains are no attack but a
            // lot of output; their stack safety is tested on 100,000 services in
            // controller/tests/cli.rs.
            let n = 250 << rng.below(3);
            t.push_str("services:\n");
            for i in 0..n {
                let requires = if i == 0 {
                    String::new()
                } else {
                    format!("    requires: [s{}]\n", i - 1)
                };
                t.push_str(&service(&format!("s{i}"), &requires));
            }
        }
        "diamonds" => {
            // Every layer requires both services of the layer before: 2^layers paths.
            let layers = 20 + rng.below(20);
            t.push_str("services:\n");
            for i in 0..layers {
                for side in ["a", "b"] {
                    let requires = if i == 0 {
                        String::new()
                    } else {
                        format!("    requires: [l{}a, l{}b]\n", i - 1, i - 1)
                    };
                    t.push_str(&service(&format!("l{i}{side}"), &requires));
                }
            }
        }
        "many-services" => {
            let n = 1000 + rng.below(4000);
            t.push_str("services:\n");
            for i in 0..n {
                t.push_str(&service(&format!("s{i}"), "    links: {x: s0}\n"));
            }
        }
        "odd-names" => {
            let name = *rng.pick(&[
                "\"a/b\"",
                "\"a\\0b\"",
                "\"..\"",
                "\"/\"",
                "\"\"",
                "\"a b\"",
                "\"-\"",
            ]);
            t.push_str("services:\n");
            t.push_str(&format!(
                "  {name}:\n    image: x\n    instances: {{{name}: {{ship: a}}}}\n"
            ));
            t.push_str(&service("t", &format!("    requires: [{name}]\n")));
        }
        "bytes" => {
            let mut bytes = t.into_bytes();
            bytes.extend_from_slice(b"services:\n");
            bytes.extend_from_slice(service("s", "    env: {A: ").as_bytes());
            let odd: &[&[u8]] = &[
                b"\xff\xfe",
                b"\xc3\x28",
                b"\xed\xa0\x80",
                b"\x00",
                b"\xef\xbb\xbf",
            ];
            let odd = *rng.pick(odd);
            bytes.extend_from_slice(odd);
            bytes.extend_from_slice(b"}\n");
            return bytes;
        }
        "bom-crlf-tabs" => {
            let mut text = format!("{t}services:\n{}", service("s", "    env: {A: 1}\n"));
            match rng.below(4) {
                0 => text.insert(0, '\u{feff}'),
                1 => text = text.replace('\n', "\r\n"),
                2 => text = text.replace("    ", "\t"),
                _ => text = text.replace('\n', "\r"),
            }
            return text.into_bytes();
        }
        _ => unreachable!("unknown family {family}"),
    }
    t.into_bytes()
}

const FAMILIES: &[&str] = &[
    "alias-nodes",
    "alias-bytes",
    "deep-flow",
    "deep-map",
    "huge-numbers",
    "huge-ranges",
    "long-names",
    "control-chars",
    "jinja",
    "cycle",
    "long-chain",
    "diamonds",
    "many-services",
    "odd-names",
    "bytes",
    "bom-crlf-tabs",
];

const COMMANDS: &[&[&str]] = &[
    &["config"],
    &["config", "--json"],
    &["deptree"],
    &["deptree", "-r"],
    &["plan", "start"],
];

#[test]
fn generated_hostile_files_end_in_order() {
    let budget = Duration::from_secs(
        std::env::var("MAESTRO_FUZZ_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    );
    let dir = Dir::new("generated");
    let file = dir.0.join("maestro.yaml");
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut runs = 0;
    // Every family once, then at random until the budget is spent.
    let mut round = 0;
    while round < FAMILIES.len() || started.elapsed() < budget {
        let family = if round < FAMILIES.len() {
            FAMILIES[round]
        } else {
            *rng.pick(FAMILIES)
        };
        round += 1;
        let bytes = generate(family, &mut rng);
        std::fs::write(&file, &bytes).unwrap();
        for args in COMMANDS {
            let outcome = run(&dir.0, args, None);
            runs += 1;
            let Some(defect) = outcome.defect() else {
                continue;
            };
            let head = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
            let report = format!(
                "{family} (round {round}): maestro {}: {defect}\n--- stderr (end) ---\n{}\n--- file (start) ---\n{head}",
                args.join(" "),
                tail(&outcome.stderr),
            );
            failures.push(report);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} runs:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

fn tail(text: &str) -> &str {
    let mut at = text.len().saturating_sub(1500);
    while !text.is_char_boundary(at) {
        at += 1;
    }
    &text[at..]
}
