//! Jinja2's data model as maestro renders it (`guestutils::jinja`), checked against what
//! Jinja2 itself prints for the same templates: `jinja2_table.json`, whose expectations
//! `jinja2_table.py` fills in from Jinja2 (MaestroNG 0.8.3's version).

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde_json::Value as Json;

/// The environment file's settings (controller) and the guest's (strict undefined).
fn environments() -> Vec<(&'static str, Environment<'static>)> {
    [
        ("lenient", UndefinedBehavior::Lenient),
        ("strict", UndefinedBehavior::Strict),
    ]
    .into_iter()
    .map(|(name, undefined)| {
        let mut jinja = Environment::new();
        jinja.set_auto_escape_callback(|_| AutoEscape::None);
        jinja.set_undefined_behavior(undefined);
        minijinja_contrib::add_to_environment(&mut jinja);
        guestutils::jinja::install(&mut jinja);
        (name, jinja)
    })
    .collect()
}

fn render(jinja: &Environment<'_>, template: &str) -> Result<String, String> {
    let source = guestutils::jinja::rewrite(template);
    jinja
        .render_str(
            &source,
            minijinja::context! { env => minijinja::context! {} },
        )
        .map_err(|e| e.to_string())
}

#[test]
fn renders_as_jinja2_does() {
    let table: Vec<Json> =
        serde_json::from_str(include_str!("jinja2_table.json")).expect("the table is JSON");
    assert!(table.len() > 50, "the table lost its entries");
    let field = |entry: &Json, key: &str| entry.get(key).and_then(Json::as_str).map(str::to_owned);
    let mut failures = Vec::new();
    for (name, jinja) in environments() {
        for entry in &table {
            let template = field(entry, "template").expect("every entry has a template");
            let got = render(&jinja, &template);
            let want = match (
                field(entry, "maestro"),
                field(entry, "maestro_error"),
                field(entry, "jinja2"),
                field(entry, "jinja2_error"),
            ) {
                (Some(text), _, _, _) | (None, None, Some(text), _) => Ok(text),
                (None, Some(error), _, _) => Err(error),
                (None, None, None, Some(_)) => Err(field(entry, "error")
                    .expect("an entry where Jinja2 raises says what maestro's message holds")),
                (None, None, None, None) => {
                    panic!("no expectation for {template:?}: run jinja2_table.py")
                }
            };
            let ok = match (&want, &got) {
                (Ok(want), Ok(got)) => want == got,
                (Err(part), Err(message)) => message.contains(part.as_str()),
                _ => false,
            };
            if !ok {
                failures.push(format!(
                    "{name}: {template}\n    want {want:?}\n    got  {got:?}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_knowing_difference_says_why() {
    let table: Vec<Json> = serde_json::from_str(include_str!("jinja2_table.json")).unwrap();
    for entry in &table {
        let differs = entry.get("maestro").is_some() || entry.get("maestro_error").is_some();
        assert_eq!(differs, entry.get("why").is_some(), "{entry}");
    }
}

/// Templates that would take all memory or all time: each is refused with an error that
/// says which limit it hit, on both settings, quickly.
#[test]
fn bombs_are_refused() {
    const MIB_LIMIT: &str = "64 MiB";
    let cases: &[(&str, &str)] = &[
        (r#"{{ "x"|indent(4000000000) }}"#, MIB_LIMIT),
        (r#"{{ ("\n" * 1000)|indent(100000, true) }}"#, MIB_LIMIT),
        (r#"{{ "x"|indent(width=4000000000) }}"#, MIB_LIMIT),
        (r#"{{ "x".center(4000000000) }}"#, MIB_LIMIT),
        (r#"{{ "x".ljust(4000000000, "-") }}"#, MIB_LIMIT),
        (r#"{{ "x".rjust(4000000000) }}"#, MIB_LIMIT),
        (r#"{{ "x".zfill(4000000000) }}"#, MIB_LIMIT),
        (
            r#"{{ ("x" * 1000000).replace("x", "x" * 1000) }}"#,
            MIB_LIMIT,
        ),
        (
            r#"{{ ("x" * 1000000)|replace("x", "x" * 1000) }}"#,
            MIB_LIMIT,
        ),
        (r#"{{ ("x" * 100000)|replace("", "x" * 1000) }}"#, MIB_LIMIT),
        (
            r#"{% set ns = namespace(s="x") %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}"#,
            MIB_LIMIT,
        ),
        (
            r#"{% set ns = namespace(s="x") %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}"#,
            MIB_LIMIT,
        ),
        (
            r#"{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% else %}{{ s|length }}{% endif %}{% endmacro %}{{ d("x", 40) }}"#,
            MIB_LIMIT,
        ),
        (
            r#"{% set ns = namespace(s="x" * 1000000) %}{% for i in range(10) %}{% set ns.s = [ns.s, ns.s]|join %}{% endfor %}{{ ns.s|length }}"#,
            MIB_LIMIT,
        ),
        (
            r#"{% set ns = namespace(s="x" * 1000000) %}{% for i in range(10) %}{% set ns.s = "".join([ns.s, ns.s]) %}{% endfor %}{{ ns.s|length }}"#,
            MIB_LIMIT,
        ),
        (
            r#"{% set ns = namespace(s="x" * 1000000) %}{% for i in range(10) %}{% set ns.s = "{0}{0}".format(ns.s) %}{% endfor %}{{ ns.s|length }}"#,
            MIB_LIMIT,
        ),
        (r#"{{ "%1000000000000s"|format("x") }}"#, MIB_LIMIT),
        (r#"{{ "%.1000000000f"|format(1.5) }}"#, MIB_LIMIT),
        (r#"{{ "{:>1000000000000}".format("x") }}"#, MIB_LIMIT),
        (r#"{{ {"a": [[[1]]]}|tojson(indent=1000000000) }}"#, "1024"),
        (r#"{{ [1]|slice(1000000000)|length }}"#, "items"),
        (r#"{{ ([1] * 100000000)|length }}"#, "items"),
    ];
    // minijinja's fuel comes with the controller's feature (see guestutils' Cargo.toml).
    let fuel: &[(&str, &str)] = &[(
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
        "fuel",
    )];
    let cases = if cfg!(feature = "multi_template") {
        [cases, fuel].concat()
    } else {
        cases.to_vec()
    };
    for (name, jinja) in environments() {
        for (template, limit) in &cases {
            let started = std::time::Instant::now();
            let got = render(&jinja, template);
            let Err(message) = got else {
                panic!("{name}: {template} rendered: {:.80?}", got);
            };
            assert!(message.contains(limit), "{name}: {template}: {message}");
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "{name}: {template} took {:?}",
                started.elapsed()
            );
        }
    }
}

/// What a template writes is bounded too (a loop's output is not one operation).
#[test]
fn output_is_bounded() {
    let (_, jinja) = environments().remove(0);
    let source = r#"{% for i in range(100) %}{{ "x" * 1000000 }}{% endfor %}"#;
    let template = jinja.template_from_str(source).unwrap();
    let err = guestutils::jinja::render_bounded(&template, minijinja::context! {})
        .expect_err("100 MB of output");
    assert!(err.to_string().contains("64 MiB"), "{err}");
    let ok = jinja.template_from_str("{{ 'a' * 3 }}").unwrap();
    assert_eq!(
        guestutils::jinja::render_bounded(&ok, minijinja::context! {}).unwrap(),
        "aaa"
    );
}
