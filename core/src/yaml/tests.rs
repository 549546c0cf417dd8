//! Scalar resolution under both YAML versions, merges, duplicates and locations.

use super::*;

fn plain(text: &str) -> Scalar {
    Scalar {
        text: text.into(),
        plain: true,
        tag: None,
    }
}

#[test]
fn yaml11_resolution_matches_pyyaml() {
    use Resolved::*;
    let int = |s: &str| Int(s.to_owned());
    let cases = [
        ("", Null),
        ("~", Null),
        ("null", Null),
        ("yes", Bool(true)),
        ("Off", Bool(false)),
        ("no", Bool(false)),
        ("42", int("42")),
        ("-7", int("-7")),
        ("0", int("0")),
        ("0755", int("493")),
        ("010", int("8")),
        ("0x1F", int("31")),
        ("0b101", int("5")),
        ("1_000", int("1000")),
        ("25:25", int("1525")),
        ("1:30", int("90")),
        ("1:2:3", int("3723")),
        ("80:90", Str),
        ("8080:8080", Str),
        ("0090", Str),
        ("1.5", Float),
        ("1e3", Str),
        ("1.0e+3", Float),
        (".inf", Float),
        ("-.inf", Float),
        (".nan", Float),
        ("2001-12-14", Str),
        ("80/tcp", Str),
        ("1234-1236", Str),
        ("-", Str),
        ("+", Str),
    ];
    for (text, want) in cases {
        assert_eq!(plain(text).yaml11(), want, "yaml 1.1 reading of {text:?}");
    }
}

#[test]
fn yaml12_resolution() {
    use Resolved::*;
    let cases = [
        ("", Null),
        ("~", Null),
        ("yes", Str),
        ("true", Bool(true)),
        ("False", Bool(false)),
        ("42", Int("42".into())),
        ("0755", Int("0755".into())),
        ("0o17", Int("0o17".into())),
        ("0x1F", Int("0x1F".into())),
        ("1:30", Str),
        ("1e3", Float),
        ("1.5", Float),
        ("-.5", Float),
        (".", Str),
        ("abc", Str),
    ];
    for (text, want) in cases {
        assert_eq!(plain(text).yaml12(), want, "yaml 1.2 reading of {text:?}");
    }
    let quoted = Scalar {
        text: "42".into(),
        plain: false,
        tag: None,
    };
    assert_eq!(quoted.yaml11(), Str);
    let tagged = Scalar {
        text: "42".into(),
        plain: true,
        tag: Some(CoreTag::Str),
    };
    assert_eq!(tagged.yaml12(), Str);
}

fn parse_ok(text: &str) -> Node {
    parse(text).expect("valid YAML").expect("not empty")
}

#[test]
fn merges_follow_pyyaml() {
    let doc = parse_ok(
        "a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\nm: {<<: [*a, *b], z: 3}\nn:\n  <<: *a\n  x: 9\n",
    );
    let m = doc.get("m").unwrap();
    assert_eq!(m.display(), r#"{"x": 1, "y": 1, "z": 3}"#);
    assert_eq!(doc.get("n").unwrap().display(), r#"{"x": 9, "y": 1}"#);
}

#[test]
fn duplicates_and_errors_are_located() {
    let cases = [
        (
            "a: 1\nb: 2\na: 3\n",
            3,
            1,
            "duplicate key \"a\" (first defined at line 1)",
        ),
        ("a: [1, 2\n", 1, 4, "unclosed bracket"),
        ("a: 1\n---\nb: 2\n", 2, 1, "expected a single YAML document"),
        ("a: !custom 1\n", 1, 12, "unsupported YAML tag"),
        ("? [1, 2]\n: x\n", 1, 3, "mapping keys must be plain values"),
        ("a: *nope\n", 1, 4, ""),
        ("a: 1\n<<: 2\n", 2, 5, "a merge key (<<) takes a mapping"),
    ];
    // A large mapping's keys are indexed rather than searched.
    let large = (0..40).map(|i| format!("k{i}: {i}\n")).collect::<String>() + "k7: again\n";
    let cases = cases
        .into_iter()
        .map(|(t, l, c, m)| (t.to_owned(), l, c, m))
        .chain([(
            large,
            41,
            1,
            "duplicate key \"k7\" (first defined at line 8)",
        )]);
    for (text, line, col, message) in cases {
        let text = text.as_str();
        let err = parse(text).expect_err(text);
        let loc = err.loc.expect("located");
        assert_eq!(
            (loc.line, loc.col),
            (line, col),
            "{text:?}: {}",
            err.message
        );
        assert!(err.message.contains(message), "{text:?}: {}", err.message);
    }
}

#[test]
fn locations_and_scalars_as_written() {
    let doc = parse_ok("name: demo\nenv:\n  A: 0755\n  B: \"x\"\n  C:\n");
    let env = doc.get("env").unwrap();
    let a = env.get("A").unwrap();
    assert_eq!((a.loc.line, a.loc.col), (3, 6));
    assert_eq!(a.text(), Some("0755"));
    assert!(env.get("C").unwrap().is_null());
    assert!(!env.get("B").unwrap().as_scalar().unwrap().plain);
    assert_eq!(parse("").unwrap(), None);
    assert_eq!(parse("# only a comment\n").unwrap(), None);
}

#[test]
fn alias_bombs_are_refused() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let prev = i - 1;
        text.push_str(&format!(
            "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
        ));
    }
    let err = parse(&text).expect_err("a billion laughs");
    assert!(err.message.contains("refusing"), "{}", err.message);
}

/// Few aliases of a long string are a bomb by bytes, not by nodes: 16 aliases of a list
/// of 16 aliases of a 1 MiB string are 256 MiB of text from a 1 MiB file.
#[test]
fn alias_bombs_of_long_strings_are_refused() {
    let long = "x".repeat(1 << 20);
    let aliases = |name: &str| vec![format!("*{name}"); 16].join(", ");
    let text = format!(
        "s: &s {long}\nl: &l [{}]\nbomb: [{}]\n",
        aliases("s"),
        aliases("l")
    );
    let err = parse(&text).expect_err("256 MiB of aliased text");
    assert!(err.message.contains("MiB"), "{}", err.message);
    assert_eq!(err.loc.map(|l| l.line), Some(3), "{err:?}");
}

/// Anchoring copies the anchored value: anchors nested in anchors copy quadratically
/// (200 levels, below the parser's nesting limit, over 50 000 values: 10 million copies).
#[test]
fn nested_anchors_are_counted() {
    let depth = 200;
    let mut text = String::new();
    for i in 0..depth {
        text.push_str(&format!("&a{i} ["));
    }
    text.push_str(&vec!["x"; 50_000].join(", "));
    text.push_str(&"]".repeat(depth));
    text.push('\n');
    let err = parse(&text).expect_err("10 million copied nodes");
    assert!(err.message.contains("refusing"), "{}", err.message);
}

/// A real file's aliases stay far below the budget.
#[test]
fn ordinary_aliases_pass() {
    let text = "base: &base {image: x, env: {A: '1'}}\nservices:\n  a: {<<: *base}\n  b: {<<: *base, image: y}\n";
    let doc = parse(text).unwrap().unwrap();
    assert_eq!(
        doc.get("services")
            .unwrap()
            .get("b")
            .unwrap()
            .get("image")
            .unwrap()
            .text(),
        Some("y")
    );
}

#[test]
fn deep_nesting_is_refused_with_a_location() {
    // Nesting as written: flow collections 100,000 deep, block ones 2,000 deep.
    let flow = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let block: String = (0..2_000)
        .map(|i| format!("{}-\n", " ".repeat(i)))
        .collect();
    // Through aliases: each anchor nests the previous one 200 levels deeper, 60 times,
    // with few values in all (the alias budget does not stop it).
    let mut aliased = String::from("a0: &a0 x\n");
    for i in 1..60 {
        let prev = i - 1;
        aliased.push_str(&format!(
            "a{i}: &a{i} {}*a{prev}{}\n",
            "[".repeat(200),
            "]".repeat(200)
        ));
    }
    for (what, text) in [("flow", flow), ("block", block), ("aliases", aliased)] {
        let err = parse(&text).expect_err(what);
        let loc = err.loc.unwrap_or_else(|| panic!("{what}: not located"));
        assert!(loc.line >= 1, "{what}: {loc}");
        assert!(
            err.message.contains("nest") || err.message.contains("limit"),
            "{what}: {}",
            err.message
        );
    }
    // Depth up to the limit is fine.
    let ok = format!(
        "a: &a {}x{}\nb: {}*a{}\n",
        "[".repeat(200),
        "]".repeat(200),
        "[".repeat(200),
        "]".repeat(200)
    );
    parse_ok(&ok);
}
