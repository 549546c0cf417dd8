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
