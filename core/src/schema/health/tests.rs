//! `healthcheck:`: its forms, durations, merging of the instance's fields over the
//! service's, and the diagnostics of bad values (all at once).

use std::time::Duration;

use super::parse_duration;
use crate::model::{Healthcheck, Ship, compose_duration};
use crate::{Loaded, NoFiles, Severity, load};

const HEAD: &str = "__maestro: {schema: 2}\nname: t\nships: {s1: {ip: 10.0.0.1}}\nservices:\n";

fn load_text(text: &str) -> Loaded {
    load(text, &NoFiles, &Ship::new("local", "127.0.0.1"))
}

/// An environment whose service has `service` (if any) and whose instance `i1` has
/// `instance` (if any) as its `healthcheck:`.
fn with(service: Option<&str>, instance: Option<&str>) -> String {
    let service = service.map_or(String::new(), |h| format!("    healthcheck: {h}\n"));
    let instance = instance.map_or(String::new(), |h| format!(", healthcheck: {h}"));
    format!(
        "{HEAD}  svc:\n    image: img\n{service}    instances:\n      i1: {{ship: s1{instance}}}\n"
    )
}

fn healthcheck_of(text: &str) -> Option<Healthcheck> {
    let loaded = load_text(text);
    let env = loaded
        .environment
        .unwrap_or_else(|| panic!("{text}: {:?}", loaded.diagnostics));
    env.instances[0].healthcheck.as_deref().cloned()
}

fn errors(text: &str) -> Vec<String> {
    let loaded = load_text(text);
    let errors: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| format!("{}: {}", d.path, d.message))
        .collect();
    assert_eq!(loaded.environment.is_none(), !errors.is_empty(), "{text}");
    errors
}

fn ms(n: u64) -> Option<Duration> {
    Some(Duration::from_millis(n))
}

fn defined(test: Option<&[&str]>) -> Healthcheck {
    Healthcheck::Defined {
        test: test.map(|t| t.iter().map(|w| w.to_string()).collect()),
        interval: None,
        timeout: None,
        start_period: None,
        start_interval: None,
        retries: None,
    }
}

#[test]
fn durations_read_like_compose() {
    let cases: &[(&str, Option<u64>)] = &[
        ("10s", Some(10_000_000_000)),
        ("1m30s", Some(90_000_000_000)),
        ("500ms", Some(500_000_000)),
        ("1h", Some(3_600_000_000_000)),
        ("1.5s", Some(1_500_000_000)),
        (".5s", Some(500_000_000)),
        ("2h45m10s100ms", Some(9_910_100_000_000)),
        ("250us", Some(250_000)),
        ("250µs", Some(250_000)),
        ("7ns", Some(7)),
        ("30", Some(30_000_000_000)),
        ("0", Some(0)),
        ("0s", Some(0)),
        ("", None),
        ("10", Some(10_000_000_000)),
        ("10 s", None),
        ("-1s", None),
        ("1d", None),
        ("s", None),
        ("1.5", None),
        ("1:30", None),
        ("1s2", None),
        ("99999999999h", None),
    ];
    for (text, want) in cases {
        assert_eq!(
            parse_duration(text).map(|d| d.as_nanos() as u64),
            *want,
            "{text:?}"
        );
    }
    for (nanos, text) in [
        (0, "0s"),
        (90_000_000_000, "1m30s"),
        (500_000_000, "500ms"),
        (3_600_000_000_000, "1h"),
        (1_500_000_000, "1s500ms"),
    ] {
        assert_eq!(compose_duration(Duration::from_nanos(nanos)), text);
        assert_eq!(parse_duration(text), Some(Duration::from_nanos(nanos)));
    }
}

#[test]
fn forms() {
    let cases: Vec<(&str, Option<Healthcheck>)> = vec![
        ("~", None),
        ("image", Some(Healthcheck::Image)),
        ("{}", Some(defined(None))),
        (
            "{test: \"test -f /tmp/ok\"}",
            Some(defined(Some(&["CMD-SHELL", "test -f /tmp/ok"]))),
        ),
        (
            "{test: [CMD, test, -f, /tmp/ok]}",
            Some(defined(Some(&["CMD", "test", "-f", "/tmp/ok"]))),
        ),
        (
            "{test: [CMD-SHELL, \"exit 0\"]}",
            Some(defined(Some(&["CMD-SHELL", "exit 0"]))),
        ),
        ("{test: [NONE]}", Some(Healthcheck::Disabled)),
        ("{disable: true}", Some(Healthcheck::Disabled)),
        ("{disable: yes, interval: 1s}", Some(Healthcheck::Disabled)),
        ("{disable: false}", Some(defined(None))),
        (
            "{test: \"exit 0\", interval: 500ms, timeout: 2, start_period: 1m, start_interval: 100ms, retries: 0}",
            Some(Healthcheck::Defined {
                test: Some(vec!["CMD-SHELL".into(), "exit 0".into()]),
                interval: ms(500),
                timeout: ms(2000),
                start_period: ms(60_000),
                start_interval: ms(100),
                retries: Some(0),
            }),
        ),
        (
            "{interval: ~, retries: \"3\"}",
            Some(Healthcheck::Defined {
                test: None,
                interval: None,
                timeout: None,
                start_period: None,
                start_interval: None,
                retries: Some(3),
            }),
        ),
    ];
    for (written, want) in cases {
        assert_eq!(
            healthcheck_of(&with(None, Some(written))),
            want,
            "instance {written}"
        );
        assert_eq!(
            healthcheck_of(&with(Some(written), None)),
            want,
            "service {written}"
        );
    }
    assert_eq!(healthcheck_of(&with(None, None)), None);
}

#[test]
fn instance_fields_override_the_service_field_by_field() {
    let service = "{test: \"exit 0\", interval: 1s, retries: 3}";
    let cases: Vec<(&str, Healthcheck)> = vec![
        (
            "{interval: 2s}",
            Healthcheck::Defined {
                test: Some(vec!["CMD-SHELL".into(), "exit 0".into()]),
                interval: ms(2000),
                timeout: None,
                start_period: None,
                start_interval: None,
                retries: Some(3),
            },
        ),
        // Null is Docker's default, over the service's value.
        (
            "{retries: ~, timeout: 5s}",
            Healthcheck::Defined {
                test: Some(vec!["CMD-SHELL".into(), "exit 0".into()]),
                interval: ms(1000),
                timeout: ms(5000),
                start_period: None,
                start_interval: None,
                retries: None,
            },
        ),
        ("{disable: true}", Healthcheck::Disabled),
        ("image", Healthcheck::Image),
        // An empty or null healthcheck changes nothing.
        ("{}", healthcheck_of(&with(Some(service), None)).unwrap()),
        ("~", healthcheck_of(&with(Some(service), None)).unwrap()),
    ];
    for (instance, want) in cases {
        assert_eq!(
            healthcheck_of(&with(Some(service), Some(instance))),
            Some(want),
            "{instance}"
        );
    }
    // The instance's test brings back a check the service disabled.
    assert_eq!(
        healthcheck_of(&with(Some("{disable: true}"), Some("{test: [CMD, true]}"))),
        Some(defined(Some(&["CMD", "true"])))
    );
    // Fields over `image` make a health check of the instance's own.
    assert_eq!(
        healthcheck_of(&with(Some("image"), Some("{test: \"exit 0\"}"))),
        Some(defined(Some(&["CMD-SHELL", "exit 0"])))
    );
}

#[test]
fn bad_values_are_all_reported() {
    let at = "services.svc.instances.i1.healthcheck";
    let cases: &[(&str, &[&str])] = &[
        ("yes", &["expected a health check {test, interval", "found"]),
        ("[exit 0]", &["expected a health check", "found a list"]),
        (
            "{test: \"\"}",
            &["test: expected a health check command, found an empty string"],
        ),
        ("{test: []}", &["test: expected CMD, CMD-SHELL or NONE"]),
        ("{test: [CMD]}", &["test: [CMD] needs the program"]),
        (
            "{test: [CMD-SHELL, a, b]}",
            &["test: [CMD-SHELL, ...] takes exactly one command line, found 2"],
        ),
        ("{test: [NONE, x]}", &["test: [NONE] disables"]),
        (
            "{test: [RUN, x]}",
            &["test: the first word of a test list must be CMD, CMD-SHELL or NONE, found \"RUN\""],
        ),
        (
            "{test: {cmd: x}}",
            &["test: expected a health check command (a string or a list), found a mapping"],
        ),
        (
            "{test: [CMD, [x]]}",
            &["test[1]: expected a word, found a list"],
        ),
        (
            "{interval: 10 s}",
            &["interval: invalid duration \"10 s\": expected a duration such as 1m30s"],
        ),
        ("{timeout: -1}", &["timeout: invalid duration -1"]),
        (
            "{start_period: 1d}",
            &["start_period: invalid duration \"1d\""],
        ),
        (
            "{start_interval: 10us}",
            &["start_interval: invalid duration \"10us\": Docker needs at least 1ms"],
        ),
        (
            "{interval: 3000000h}",
            &["interval: invalid duration \"3000000h\": longer than Docker accepts"],
        ),
        ("{interval: [1s]}", &["interval: invalid duration [\"1s\"]"]),
        (
            "{retries: -1}",
            &["retries: expected a number of retries (0 or more), found a number -1"],
        ),
        (
            "{retries: many}",
            &["retries: expected a number of retries"],
        ),
        ("{disable: maybe}", &["disable: expected true or false"]),
        (
            "{disable: true, test: \"exit 0\"}",
            &["disable: a disabled health check cannot have a test"],
        ),
    ];
    for (written, fragments) in cases {
        let got = errors(&with(None, Some(written)));
        assert_eq!(got.len(), 1, "{written}: {got:#?}");
        assert!(got[0].starts_with(at), "{written}: {got:?}");
        for f in *fragments {
            assert!(got[0].contains(f), "{written}: {got:?} lacks {f:?}");
        }
    }
    // Every problem at once, on the service's path for the service's own.
    let got = errors(&with(
        Some("{interval: soon, retries: -2}"),
        Some("{timeout: later, test: [X]}"),
    ));
    let paths: Vec<&str> = got.iter().map(|e| e.split(':').next().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "services.svc.healthcheck.interval",
            "services.svc.healthcheck.retries",
            "services.svc.instances.i1.healthcheck.timeout",
            "services.svc.instances.i1.healthcheck.test",
        ],
        "{got:#?}"
    );
}

#[test]
fn unknown_keys_warn_like_elsewhere() {
    let loaded = load_text(&with(None, Some("{test: \"exit 0\", intervall: 1s}")));
    assert!(loaded.environment.is_some());
    let warnings: Vec<String> = loaded
        .diagnostics
        .iter()
        .map(|d| {
            format!(
                "{}: {} ({})",
                d.path,
                d.message,
                d.help.as_deref().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        warnings,
        [
            "services.svc.instances.i1.healthcheck.intervall: unknown key \"intervall\" is ignored (did you mean \"interval\"?)"
        ]
    );
}

#[test]
fn diagnostics_of_a_broken_healthcheck() {
    let text = "__maestro: {schema: 2}
name: t
ships: {s1: {ip: 10.0.0.1}}
services:
  web:
    image: nginx
    healthcheck:
      test: [CMD-SHELL]
      interval: 1m30
      retries: -1
    instances:
      web-1:
        ship: s1
        healthcheck: {timeout: 0.5ms, start_intervall: 1s, disable: true, test: \"exit 0\"}
      web-2: {ship: s1, healthcheck: sometimes}
";
    let loaded = load_text(text);
    assert!(loaded.environment.is_none());
    let lines: Vec<String> = loaded
        .diagnostics
        .iter()
        .map(|d| {
            let loc = d.loc.map(|l| l.to_string()).unwrap_or_default();
            let severity = match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            match &d.help {
                Some(help) => format!("{loc} {severity} {d}\n    help: {help}"),
                None => format!("{loc} {severity} {d}"),
            }
        })
        .collect();
    insta::assert_snapshot!(lines.join("\n"));
}
