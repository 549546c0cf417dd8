//! Reading in parts gives exactly what reading whole gives: on written cases, on every
//! environment file of the conformance and parity corpora, and on thousands of mutations
//! of a file (lines dropped, doubled, re-indented, quotes, brackets, aliases added).

use super::*;
use crate::yaml::{Loc, MAX_DEPTH};

fn whole(text: &str) -> Result<Option<Node>, SyntaxError> {
    Builder::default().run(text)
}

/// Whether `text` is read in parts with `threads` threads, after checking that the
/// result is reading it whole's.
fn read_in_parts(text: &str, threads: usize) -> bool {
    let expected = whole(text);
    assert_eq!(
        parse(text, threads, 0),
        expected,
        "{threads} threads differ on:\n{text}"
    );
    Plan::find(text, threads, 0).is_some_and(|plan| plan.run(text).is_some())
}

const ENV: &str = "\
# An environment.
__maestro:
  schema: 2
name: demo

services:   # every one of them
  # The front.
  web:
    image: nginx
    command: |
      run this
      web2: not a key
    env:
      A: \"quoted
        on two lines\"
      B: [1,
        2]
  \"quoted-key\":
    image: x

  db:
    image: postgres
    ports: {pg: 5432}
  cache:
    image: redis
    lifecycle:
      running: [{type: tcp, port: 6379}]
# Between sections.
ships:
  a: {ip: 10.0.0.1}
";

#[test]
fn a_plain_file_is_read_in_parts() {
    for threads in 2..=4 {
        assert!(read_in_parts(ENV, threads), "{threads} threads");
    }
    let plan = Plan::find(ENV, 3, 0).unwrap();
    assert_eq!(plan.key, "services");
    assert_eq!(plan.key_line, 5);
    // Cut only before plain keys: `"quoted-key"` stays with `web`.
    let firsts: Vec<&str> = plan
        .parts
        .iter()
        .map(|(r, _)| ENV[r.clone()].lines().next().unwrap())
        .collect();
    assert_eq!(firsts, ["  web:", "  db:", "  cache:"]);
}

#[test]
fn small_files_and_one_thread_are_read_whole() {
    assert!(Plan::find(ENV, 1, 0).is_none());
    assert!(Plan::find(ENV, 2, ENV.len()).is_none());
}

#[test]
fn cases_read_whole_or_in_parts_alike() {
    // (what, text, read in parts)
    let cases: &[(&str, &str, bool)] = &[
        ("no newline at the end", "services:\n  a: 1\n  b: 2", true),
        (
            "CRLF",
            "name: x\r\nservices:\r\n  a: 1\r\n\r\n  b: 2\r\nships: {}\r\n",
            true,
        ),
        (
            "document markers",
            "---\nservices:\n  a: 1\n  b: 2\n...\n",
            true,
        ),
        (
            "a duplicate key across parts",
            "services:\n  a: 1\n  b: 2\n  a: 3\n",
            false,
        ),
        (
            "a quoted scalar continued at the mapping's indentation",
            "services:\n  a: \"x\n  b: y\"\n  c: 1\n",
            false,
        ),
        (
            "a flow collection continued at the mapping's indentation",
            "services:\n  a: [x,\n  b]\n",
            false,
        ),
        (
            "an alias",
            "x: &d {k: 1}\nservices:\n  a: *d\n  b: 2\n",
            false,
        ),
        (
            "a merge key",
            "services:\n  a: 1\n  <<: {b: 2}\n  c: 3\n",
            false,
        ),
        ("a complex key", "services:\n  a: 1\n  ? b\n  : 2\n", false),
        (
            "a line indented less",
            "services:\n    a: 1\n  b: 2\n    c: 3\n",
            false,
        ),
        ("a tab", "services:\n  a: 1\n\tb: 2\n  c: 3\n", false),
        (
            "a sequence after the mapping",
            "services:\n  a: 1\n  b: 2\n- x\n",
            false,
        ),
        (
            "an error after the value",
            "services:\n  a: 1\n  b: 2\nships: [\n",
            false,
        ),
        (
            "an error in a part",
            "services:\n  a: 1\n  b: {\n  c: 3\n",
            false,
        ),
        (
            "the value in a quoted scalar of the document",
            "x: \"q\nservices:\n  a: 1\n  b: 2\n\"\n",
            false,
        ),
        (
            "a key with a value on its line",
            "services: {}\n  a: 1\n",
            false,
        ),
        (
            "the document a flow mapping",
            "{\nservices:\n  a: 1\n  b: 2\n}\n",
            false,
        ),
        (
            "in a flow mapping of the document",
            "x: {\nservices:\n  a: 1\n  b: 2\n}\n",
            false,
        ),
        ("an anchored value", "services: &s\n  a: 1\n  b: 2\n", false),
        (
            "block scalars keep their lines",
            "services:\n  a: |\n    x\n\n    y\n  b: >-\n    z\n  c: 1\n",
            true,
        ),
        (
            "comments at column 0 inside",
            "services:\n  a: 1\n# note\n  b: 2\nz: 1\n",
            true,
        ),
        (
            "a key once more at the top",
            "services:\n  a: 1\n  b: 2\nservices: 3\n",
            false,
        ),
    ];
    for (what, text, in_parts) in cases {
        for threads in 2..=3 {
            assert_eq!(
                read_in_parts(text, threads),
                *in_parts,
                "{what}, {threads} threads"
            );
        }
    }
}

#[test]
fn lines_and_columns_are_the_files() {
    let Some(root) = parse(ENV, 3, 0).unwrap() else {
        panic!("a document")
    };
    let services = root.get("services").unwrap();
    let (db, _) = &services.as_map().unwrap()[2];
    assert_eq!((db.text(), db.loc), (Some("db"), Loc { line: 21, col: 3 }));
    assert_eq!(services.loc, Loc { line: 8, col: 3 });
}

#[test]
fn nesting_is_counted_from_the_document() {
    // The depth limit falls on the same value read whole or in parts.
    for depth in [MAX_DEPTH - 3, MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH] {
        let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let text = format!("services:\n  a: 1\n  b: {deep}\n  c: 1\n");
        read_in_parts(&text, 2);
    }
}

#[test]
fn corpus_files_read_whole_or_in_parts_alike() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut in_parts = 0;
    for dir in [
        "tests/conformance/cases",
        "tests/parity/cases",
        "tests/fixtures",
        "examples",
    ] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                let text = std::fs::read_to_string(&path).unwrap();
                for threads in 2..=4 {
                    if read_in_parts(&text, threads) {
                        in_parts += 1;
                    }
                }
            }
        }
    }
    // Most files have one or two services; those with more are read in parts.
    assert!(in_parts > 20, "only {in_parts} corpus reads were in parts");
}

#[test]
fn mutations_read_whole_or_in_parts_alike() {
    let lines: Vec<&str> = ENV.lines().collect();
    // A small LCG: reproducible without a dependency.
    let mut seed: u64 = 0x5eed;
    let mut next = |n: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % n
    };
    let inserts = [
        "\"", "'", "[", "{", "]", "*x ", "&x ", "<<: ", "- ", "? ", "# ", "\t", ": ", "|",
    ];
    let (mut in_parts, mut total) = (0, 0);
    for _ in 0..1000 {
        let mut text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        for _ in 0..1 + next(3) {
            let i = next(text.len());
            match next(5) {
                0 => {
                    text.remove(i);
                }
                1 => {
                    let line = text[i].clone();
                    text.insert(i, line);
                }
                2 => text[i] = format!("{}{}", " ".repeat(next(3)), text[i]),
                3 => {
                    let spaces = " ".repeat(next(5));
                    text[i] = format!("{spaces}{}", text[i].trim_start_matches(' '));
                }
                _ => {
                    let at = next(text[i].len() + 1);
                    let at = (0..=at)
                        .rev()
                        .find(|&a| text[i].is_char_boundary(a))
                        .unwrap();
                    text[i].insert_str(at, inserts[next(inserts.len())]);
                }
            }
            if text.is_empty() {
                text.push(String::new());
            }
        }
        let text = text.join("\n") + "\n";
        total += 1;
        if read_in_parts(&text, 2 + next(3)) {
            in_parts += 1;
        }
    }
    // Most mutations leave a file that is still read in parts; the others fall back.
    assert!(
        in_parts > total / 4 && in_parts < total,
        "{in_parts} of {total} read in parts"
    );
}
