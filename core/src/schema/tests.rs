//! The schema (reference sections 4, 7 and 8): volumes and schema versions, restart
//! policies, limits, images, lifecycle checks and their merging, auditors, and the
//! errors about names (unknown services and ships, duplicates, dependency cycles).

use crate::model::*;
use crate::{Diagnostic, Loaded, NoFiles, Severity, load};

fn load_text(text: &str) -> Loaded {
    load(text, &NoFiles, &Ship::new("local", "127.0.0.1"))
}

fn rendered(diags: &[Diagnostic], severity: Severity) -> Vec<String> {
    diags
        .iter()
        .filter(|d| d.severity == severity)
        .map(|d| format!("{}: {}", d.path, d.message))
        .collect()
}

/// `got` (rendered `path: message`) has exactly one entry per `want` entry, in order, at
/// that path and with every fragment in its message.
fn assert_diags(got: &[String], want: &[(&str, &[&str])], context: &str) {
    assert_eq!(got.len(), want.len(), "{context}: {got:#?}");
    for (g, (path, fragments)) in got.iter().zip(want) {
        assert!(
            g.starts_with(&format!("{path}: ")),
            "{context}: {g} is not at {path}"
        );
        for f in *fragments {
            assert!(g.contains(f), "{context}: {g:?} lacks {f:?}");
        }
    }
}

fn valid(text: &str) -> Environment {
    let loaded = load_text(text);
    assert_eq!(
        rendered(&loaded.diagnostics, Severity::Error),
        Vec::<String>::new(),
        "{text}"
    );
    loaded.environment.expect("valid")
}

const HEAD: &str =
    "__maestro: {schema: 2}\nname: t\nships: {s1: {ip: 10.0.0.1}, s2: {ip: 10.0.0.2}}\nservices:\n";

/// A schema-2 environment whose one instance `svc.i1` is `{ship: s1, <fields>}`.
fn one_instance(fields: &str) -> String {
    format!("{HEAD}  svc:\n    image: img\n    instances:\n      i1: {{ship: s1, {fields}}}\n")
}

fn instance<'e>(env: &'e Environment, name: &str) -> &'e Instance {
    env.instance(env.instance_by_name(name).expect("instance exists"))
}

// ---------------------------------------------------------------------------------------
// Schema versions and volumes (4.6, 7.3)

#[test]
fn schema_version() {
    let cases = [
        ("", 1),
        ("__maestro: {}\n", 1),
        ("__maestro: {schema: 1}\n", 1),
        ("__maestro: {schema: 2}\n", 2),
        ("__maestro: {schema: 3}\n", 2),
        // Only the number 1 is schema 1.
        ("__maestro: {schema: \"1\"}\n", 2),
        ("__maestro: {schema: {version: 2}}\n", 2),
        ("__maestro: {schema: 0x1}\n", 1),
        // Python's `schema == 1` holds for 1.0 and True as well.
        ("__maestro: {schema: 1.0}\n", 1),
        ("__maestro: {schema: true}\n", 1),
        ("__maestro: {schema: yes}\n", 1),
        ("__maestro: {schema: 1.5}\n", 2),
        ("__maestro: {schema: false}\n", 2),
        ("__maestro: {schema: 0}\n", 2),
        ("__maestro: {schema: ~}\n", 2),
        ("__maestro: {schema: one}\n", 2),
    ];
    for (head, want) in cases {
        let text = format!(
            "{head}name: t\nships: {{s1: {{ip: 10.0.0.1}}}}\nservices: {{svc: {{image: i, instances: {{i1: {{ship: s1}}}}}}}}\n"
        );
        assert_eq!(valid(&text).schema, want, "{head:?}");
    }
}

/// Volumes of `i1` as (host, target, mode), plus the container volumes.
type Volumes = (Vec<(String, String, String)>, Vec<String>);

fn volumes_of(env: &Environment) -> Volumes {
    let i = instance(env, "i1");
    (
        i.volumes
            .iter()
            .map(|(h, b)| (h.clone(), b.target.clone(), b.mode.clone()))
            .collect(),
        i.container_volumes.clone(),
    )
}

#[test]
fn volumes() {
    let schema1 = |fields: &str| {
        format!(
            "name: t\nships: {{s1: {{ip: 10.0.0.1}}}}\nservices:\n  svc:\n    image: img\n    instances:\n      i1: {{ship: s1, {fields}}}\n"
        )
    };
    let v = |h: &str, t: &str, m: &str| (h.to_owned(), t.to_owned(), m.to_owned());
    let s1_warning = "read as schema 1: each entry is container path: host path";
    // (document, volumes, container volumes, warnings)
    type Case = (
        String,
        Vec<(String, String, String)>,
        Vec<&'static str>,
        Vec<&'static str>,
    );
    let cases: Vec<Case> = vec![
        // Schema 1 (the default): container path: host path.
        (
            schema1("volumes: {/ctr: /host, /b: /hb}"),
            vec![v("/host", "/ctr", "rw"), v("/hb", "/b", "rw")],
            vec![],
            vec![s1_warning],
        ),
        (schema1("volumes: {}"), vec![], vec![], vec![]),
        (schema1("volumes: ~"), vec![], vec![], vec![]),
        // Schema 2: host path: container path or {target, mode}.
        (
            one_instance("volumes: {/host: /ctr}"),
            vec![v("/host", "/ctr", "rw")],
            vec![],
            vec![],
        ),
        (
            one_instance("volumes: {/host: {target: /ctr, mode: ro}}"),
            vec![v("/host", "/ctr", "ro")],
            vec![],
            vec![],
        ),
        (
            one_instance("volumes: {/host: {target: /ctr, mode: \"ro,Z\"}}"),
            vec![v("/host", "/ctr", "ro,Z")],
            vec![],
            vec![],
        ),
        (
            one_instance("volumes: {/host: {target: /ctr}}"),
            vec![v("/host", "/ctr", "rw")],
            vec![],
            vec![],
        ),
        (
            one_instance("volumes: {/host: {target: /ctr, bind: /x}}"),
            vec![v("/host", "/ctr", "rw")],
            vec![],
            vec!["unknown key \"bind\" is ignored"],
        ),
        // Container-only volumes: a string or a list, deduplicated, sorted.
        (
            one_instance("container_volumes: /scratch"),
            vec![],
            vec!["/scratch"],
            vec![],
        ),
        (
            one_instance("volumes: {/h: /data}, container_volumes: [/tmp, /cache, /tmp]"),
            vec![v("/h", "/data", "rw")],
            vec!["/cache", "/tmp"],
            vec![],
        ),
    ];
    for (text, want_volumes, want_container, want_warnings) in cases {
        let loaded = load_text(&text);
        let warnings = rendered(&loaded.diagnostics, Severity::Warning);
        assert_eq!(warnings.len(), want_warnings.len(), "{text}: {warnings:?}");
        for (w, fragment) in warnings.iter().zip(&want_warnings) {
            assert!(w.contains(fragment), "{text}: {w}");
        }
        let env = loaded
            .environment
            .unwrap_or_else(|| panic!("{text}: invalid"));
        let want_container: Vec<String> = want_container.iter().map(|s| s.to_string()).collect();
        assert_eq!(volumes_of(&env), (want_volumes, want_container), "{text}");
    }
}

#[test]
fn volume_errors() {
    let schema1 = "name: t\nships: {s1: {ip: 10.0.0.1}}\nservices:\n  svc:\n    image: img\n    instances:\n      i1: {ship: s1, volumes: {/ctr: {target: /x}}}\n";
    let cases: Vec<(String, &str, &[&str], Option<&str>)> = vec![
        (
            schema1.to_owned(),
            "services.svc.instances.i1.volumes./ctr",
            &[
                "invalid volume specification",
                "schema 1 expects container path: host path",
            ],
            None,
        ),
        (
            one_instance("volumes: {/host: {bind: /ctr}}"),
            "services.svc.instances.i1.volumes./host",
            &["invalid volume specification"],
            Some("the key is target, not bind"),
        ),
        (
            one_instance("volumes: {/host: [/ctr]}"),
            "services.svc.instances.i1.volumes./host",
            &["invalid volume specification"],
            None,
        ),
        (
            one_instance("volumes: {/host: ~}"),
            "services.svc.instances.i1.volumes./host",
            &["invalid volume specification"],
            None,
        ),
        (
            one_instance("volumes: [/a, /b]"),
            "services.svc.instances.i1.volumes",
            &["expected a mapping of host paths to container paths"],
            None,
        ),
        (
            one_instance("volumes: {/h: /data}, container_volumes: [/data]"),
            "services.svc.instances.i1.container_volumes",
            &["/data is both bind-mounted and a container-only volume"],
            None,
        ),
        (
            one_instance("volumes: {/h: {target: /data, mode: ro}}, container_volumes: /data"),
            "services.svc.instances.i1.container_volumes",
            &["/data is both bind-mounted and a container-only volume"],
            None,
        ),
    ];
    for (text, path, fragments, help) in cases {
        let loaded = load_text(&text);
        assert!(loaded.environment.is_none(), "{text}");
        assert_diags(
            &rendered(&loaded.diagnostics, Severity::Error),
            &[(path, fragments)],
            &text,
        );
        if let Some(help) = help {
            let d = loaded
                .diagnostics
                .iter()
                .find(|d| d.is_error())
                .expect("error");
            assert_eq!(d.help.as_deref(), Some(help), "{text}");
        }
    }
}

#[test]
fn volumes_from() {
    let text = |i2: &str| {
        format!(
            "{HEAD}  svc:\n    image: img\n    instances:\n      i1: {{ship: s1, volumes: {{/h1: /data}}}}\n      i2: {{{i2}}}\n  other:\n    image: o\n    instances:\n      o1: {{ship: s1, container_volumes: [/o]}}\n      o2: {{ship: s2}}\n"
        )
    };
    // Accepted: (i2's fields, the instances it takes volumes from)
    let ok: &[(&str, &[&str])] = &[
        ("ship: s1", &[]),
        // Same service, same ship.
        ("ship: s1, volumes_from: i1", &["i1"]),
        ("ship: s1, volumes_from: [i1, o1, i1]", &["i1", "o1"]),
        (
            "ship: s1, volumes_from: [o1], volumes: {/h2: /other}",
            &["o1"],
        ),
        ("ship: s2, volumes_from: o2", &["o2"]),
    ];
    for (fields, want) in ok {
        let env = valid(&text(fields));
        let got: Vec<&str> = instance(&env, "i2")
            .volumes_from
            .iter()
            .map(|&i| env.instance(i).name.as_str())
            .collect();
        assert_eq!(got, *want, "{fields}");
    }
    let path = "services.svc.instances.i2.volumes_from";
    let bad: &[(&str, &[&str], Option<&str>)] = &[
        (
            "ship: s1, volumes_from: i3",
            &["unknown instance \"i3\" to get volumes from"],
            Some("did you mean \"i1\"?"),
        ),
        (
            "ship: s1, volumes_from: i2",
            &["i2 cannot take volumes from itself"],
            None,
        ),
        (
            "ship: s2, volumes_from: i1",
            &["i1", "i2", "same ship"],
            None,
        ),
        (
            "ship: s1, volumes_from: o2",
            &["o2", "i2", "same ship"],
            None,
        ),
        (
            "ship: s1, volumes_from: i1, container_volumes: [/data, /x]",
            &["volume conflicts between i2 and i1: /data"],
            None,
        ),
        (
            "ship: s1, volumes_from: o1, volumes: {/a: /o, /b: /data}",
            &["volume conflicts between i2 and o1: /o"],
            None,
        ),
    ];
    for (fields, fragments, help) in bad {
        let loaded = load_text(&text(fields));
        assert!(loaded.environment.is_none(), "{fields}");
        assert_diags(
            &rendered(&loaded.diagnostics, Severity::Error),
            &[(path, fragments)],
            fields,
        );
        if let Some(help) = help {
            let d = loaded
                .diagnostics
                .iter()
                .find(|d| d.is_error())
                .expect("error");
            assert_eq!(d.help.as_deref(), Some(*help), "{fields}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Restart policy (7.5)

#[test]
fn restart_policy() {
    // (restart value, Ok((name, retries)) or Err(message fragments))
    type Row<'a> = (&'a str, Result<(&'a str, u32), &'a [&'a str]>);
    let cases: &[Row] = &[
        ("~", Ok(("no", 0))),
        // `no` unquoted is YAML 1.1's false: the default.
        ("no", Ok(("no", 0))),
        ("off", Ok(("no", 0))),
        ("[]", Ok(("no", 0))),
        ("[always]", Ok(("no", 0))),
        ("5", Ok(("no", 0))),
        ("true", Ok(("no", 0))),
        ("\"no\"", Ok(("no", 0))),
        ("always", Ok(("always", 0))),
        ("on-failure", Ok(("on-failure", 0))),
        ("unless-stopped", Ok(("unless-stopped", 0))),
        ("on-failure:5", Ok(("on-failure", 5))),
        // Retries are allowed with any name.
        ("always:3", Ok(("always", 3))),
        ("\"no:2\"", Ok(("no", 2))),
        ("{name: on-failure, retries: 7}", Ok(("on-failure", 7))),
        ("{name: on-failure, retries: \"8\"}", Ok(("on-failure", 8))),
        ("{name: always}", Ok(("always", 0))),
        ("{retries: 4}", Ok(("no", 4))),
        ("{}", Ok(("no", 0))),
        (
            "bogus",
            Err(&[
                "invalid restart policy \"bogus\"",
                "no, always, on-failure, unless-stopped",
            ]),
        ),
        // Case-sensitive.
        ("Always", Err(&["invalid restart policy \"Always\""])),
        ("bogus:3", Err(&["invalid restart policy \"bogus\""])),
        (
            "{name: sometimes}",
            Err(&["invalid restart policy \"sometimes\""]),
        ),
        (
            "on-failure:x",
            Err(&["invalid restart policy \"on-failure:x\"", "NAME:RETRIES"]),
        ),
        (
            "\"on-failure:\"",
            Err(&["invalid restart policy \"on-failure:\"", "NAME:RETRIES"]),
        ),
        ("on-failure:-1", Err(&["NAME:RETRIES"])),
        (
            "{name: on-failure, retries: x}",
            Err(&["expected a number of retries"]),
        ),
        (
            "{name: on-failure, retries: -1}",
            Err(&["expected a number of retries"]),
        ),
        // The documented key is rejected (as MaestroNG rejects it).
        (
            "{name: on-failure, maximum_retry_count: 3}",
            Err(&["unknown restart policy key \"maximum_retry_count\""]),
        ),
    ];
    for (written, want) in cases {
        let loaded = load_text(&one_instance(&format!("restart: {written}")));
        match want {
            Ok((name, retries)) => {
                let env = loaded
                    .environment
                    .unwrap_or_else(|| panic!("{written}: {:?}", loaded.diagnostics));
                let got = &instance(&env, "i1").restart;
                assert_eq!(
                    (got.name.as_str(), got.retries),
                    (*name, *retries),
                    "{written}"
                );
            }
            Err(fragments) => {
                assert!(loaded.environment.is_none(), "{written} accepted");
                let errors = rendered(&loaded.diagnostics, Severity::Error);
                assert_eq!(errors.len(), 1, "{written}: {errors:?}");
                assert!(
                    errors[0].starts_with("services.svc.instances.i1.restart"),
                    "{written}: {errors:?}"
                );
                for f in *fragments {
                    assert!(errors[0].contains(f), "{written}: {errors:?} lacks {f}");
                }
            }
        }
    }
    // Absent: the default.
    let env = valid(&one_instance("image: x"));
    assert_eq!(instance(&env, "i1").restart, RestartPolicy::default());
    let loaded = load_text(&one_instance(
        "restart: {name: on-failure, maximum_retry_count: 3}",
    ));
    let d = loaded
        .diagnostics
        .iter()
        .find(|d| d.is_error())
        .expect("error");
    assert!(
        d.help
            .as_deref()
            .unwrap_or_default()
            .contains("the key is retries")
    );
}

// ---------------------------------------------------------------------------------------
// Limits (7.6)

#[test]
fn limits() {
    const K: u64 = 1024;
    // (limits, (cpu, memory, swap) or error fragments)
    type Want = Result<(Option<i64>, Option<u64>, Option<u64>), &'static [&'static str]>;
    let cases: &[(&str, Want)] = &[
        ("{}", Ok((None, None, None))),
        ("{cpu: 512}", Ok((Some(512), None, None))),
        ("{cpu: \"256\"}", Ok((Some(256), None, None))),
        ("{cpu: ~, memory: ~, swap: ~}", Ok((None, None, None))),
        ("{memory: 512m}", Ok((None, Some(512 * K * K), None))),
        ("{memory: 64k}", Ok((None, Some(64 * K), None))),
        ("{memory: 1G}", Ok((None, Some(K * K * K), None))),
        (
            "{memory: 2g, swap: 3M}",
            Ok((None, Some(2 * K * K * K), Some(3 * K * K))),
        ),
        ("{memory: \" 10m\"}", Ok((None, Some(10 * K * K), None))),
        ("{memory: 1048576}", Ok((None, Some(1_048_576), None))),
        ("{memory: \"4096\"}", Ok((None, Some(4096), None))),
        ("{memory: 0}", Ok((None, Some(0), None))),
        ("{memory: 1.5g}", Err(&["invalid size \"1.5g\""])),
        ("{memory: m}", Err(&["invalid size \"m\""])),
        // MaestroNG rejects the b suffix docker-py would accept.
        ("{memory: 100b}", Err(&["invalid size \"100b\""])),
        ("{swap: -1}", Err(&["invalid size -1"])),
        ("{memory: 10t}", Err(&["invalid size \"10t\""])),
        ("{memory: [1]}", Err(&["invalid size [1]"])),
        ("{cpu: 1.5}", Err(&["expected a number of CPU shares"])),
        ("{cpu: many}", Err(&["expected a number of CPU shares"])),
        ("[512m]", Err(&["expected a mapping {cpu, memory, swap}"])),
    ];
    for (written, want) in cases {
        let loaded = load_text(&one_instance(&format!("limits: {written}")));
        match want {
            Ok(want) => {
                let env = loaded
                    .environment
                    .unwrap_or_else(|| panic!("{written}: {:?}", loaded.diagnostics));
                let l = &instance(&env, "i1").limits;
                assert_eq!((l.cpu, l.memory, l.swap), *want, "{written}");
            }
            Err(fragments) => {
                assert!(loaded.environment.is_none(), "{written} accepted");
                let errors = rendered(&loaded.diagnostics, Severity::Error);
                assert_eq!(errors.len(), 1, "{written}: {errors:?}");
                assert!(errors[0].starts_with("services.svc.instances.i1.limits"));
                for f in *fragments {
                    assert!(errors[0].contains(f), "{written}: {errors:?} lacks {f}");
                }
            }
        }
    }
    let loaded = load_text(&one_instance("limits: {cpus: 2}"));
    assert_diags(
        &rendered(&loaded.diagnostics, Severity::Warning),
        &[(
            "services.svc.instances.i1.limits.cpus",
            &["unknown key \"cpus\" is ignored"],
        )],
        "cpus",
    );
    assert_eq!(
        loaded.diagnostics[0].help.as_deref(),
        Some("did you mean \"cpu\"?")
    );
}

#[test]
fn service_limits_are_inherited_key_by_key() {
    let text = format!(
        "{HEAD}  svc:\n    image: img\n    limits: {{cpu: 100, memory: 1g}}\n    instances:\n      i1: {{ship: s1}}\n      i2: {{ship: s1, limits: {{memory: 2g, swap: 1k}}}}\n      i3: {{ship: s1, limits: {{cpu: ~}}}}\n"
    );
    let env = valid(&text);
    let g = 1u64 << 30;
    let table = [
        ("i1", (Some(100), Some(g), None)),
        ("i2", (Some(100), Some(2 * g), Some(1024))),
        ("i3", (None, Some(g), None)),
    ];
    for (name, want) in table {
        let l = &instance(&env, name).limits;
        assert_eq!((l.cpu, l.memory, l.swap), want, "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// Images (7.4)

#[test]
fn images() {
    let text = format!(
        "{HEAD}  svc:\n    image: reg:5000/acme/app\n    instances:\n      i1: {{ship: s1}}\n      i2: {{ship: s1, image: \"acme/app:canary\"}}\n      i3: {{ship: s1, image: \"busybox:\"}}\n      i4: {{ship: s1, image: \"svc@sha256:abc\"}}\n      i5: {{ship: s1, image: \"reg:5000/x:2\"}}\n"
    );
    let env = valid(&text);
    let table = [
        ("i1", "reg:5000/acme/app", "reg:5000/acme/app", "latest"),
        ("i2", "acme/app:canary", "acme/app", "canary"),
        ("i3", "busybox:", "busybox", "latest"),
        ("i4", "svc@sha256:abc", "svc@sha256", "abc"),
        ("i5", "reg:5000/x:2", "reg:5000/x", "2"),
    ];
    for (name, image, repository, tag) in table {
        let i = &instance(&env, name).image;
        assert_eq!(
            (i.name.as_str(), i.repository.as_str(), i.tag.as_str()),
            (image, repository, tag),
            "{name}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Lifecycle checks (8)

/// One check `spec` for the `running` state of `i1`, which has ports web (80:8080),
/// dns (53/udp) and range (1240:1240-1242).
fn one_check(spec: &str) -> Loaded {
    load_text(&one_instance(&format!(
        "ports: {{web: \"80:8080\", dns: 53/udp, range: \"1240:1240-1242\"}}, lifecycle: {{running: [{spec}]}}"
    )))
}

#[test]
fn check_types_and_defaults() {
    let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let http = |host: &str, port: u16| Check::Http {
        host: host.into(),
        port,
        path: "/".into(),
        scheme: "http".into(),
        method: "get".into(),
        match_regex: None,
        max_wait: 300.0,
        options: Box::default(),
    };
    let cases: Vec<(&str, Check)> = vec![
        (
            "{type: tcp, port: web}",
            Check::Tcp {
                port: "web".into(),
                number: 8080,
                max_wait: 180,
            },
        ),
        (
            "{type: tcp, port: web, max_wait: 5}",
            Check::Tcp {
                port: "web".into(),
                number: 8080,
                max_wait: 5,
            },
        ),
        ("{type: http, port: web}", http("10.0.0.1", 8080)),
        // A literal port number.
        ("{type: http, port: 9999}", http("10.0.0.1", 9999)),
        (
            "{type: http, port: web, host: example.com, path: health, scheme: https, method: POST, match_regex: \"ok.*\", max_wait: 10, requests_options: {verify: false}}",
            Check::Http {
                host: "example.com".into(),
                port: 8080,
                path: "/health".into(),
                scheme: "https".into(),
                method: "post".into(),
                match_regex: Some("ok.*".into()),
                max_wait: 10.0,
                options: Box::new(RequestOptions {
                    verify: Verify::Off,
                    ..RequestOptions::default()
                }),
            },
        ),
        (
            "{type: http, port: web, scheme: https, requests_options: {verify: ca/ca.pem, headers: {X-Token: abc, Accept: text/plain}, auth: [alice, s3cret], timeout: 2.5, allow_redirects: no}}",
            Check::Http {
                host: "10.0.0.1".into(),
                port: 8080,
                path: "/".into(),
                scheme: "https".into(),
                method: "get".into(),
                match_regex: None,
                max_wait: 300.0,
                options: Box::new(RequestOptions {
                    verify: Verify::Bundle("ca/ca.pem".into()),
                    headers: vec![
                        ("X-Token".into(), "abc".into()),
                        ("Accept".into(), "text/plain".into()),
                    ],
                    auth: Some(("alice".into(), Secret::new("s3cret".into()))),
                    timeout: Some((2.5, 2.5)),
                    allow_redirects: false,
                }),
            },
        ),
        (
            "{type: http, port: web, requests_options: {verify: true, timeout: [1, 30]}}",
            Check::Http {
                host: "10.0.0.1".into(),
                port: 8080,
                path: "/".into(),
                scheme: "http".into(),
                method: "get".into(),
                match_regex: None,
                max_wait: 300.0,
                options: Box::new(RequestOptions {
                    timeout: Some((1.0, 30.0)),
                    ..RequestOptions::default()
                }),
            },
        ),
        (
            "{type: http, port: web, path: /a/b, max_wait: 0.5}",
            Check::Http {
                host: "10.0.0.1".into(),
                port: 8080,
                path: "/a/b".into(),
                scheme: "http".into(),
                method: "get".into(),
                match_regex: None,
                max_wait: 0.5,
                options: Box::default(),
            },
        ),
        (
            "{type: exec, command: \"python ./ruok.py\"}",
            Check::Exec {
                command: words(&["python", "./ruok.py"]),
                attempts: 180,
                env_via_stdin: false,
            },
        ),
        (
            "{type: exec, command: \"sh -c 'test -f /x'\", attempts: 3, envfrom: stdin}",
            Check::Exec {
                command: words(&["sh", "-c", "test -f /x"]),
                attempts: 3,
                env_via_stdin: true,
            },
        ),
        (
            "{type: exec, command: x, envfrom: env}",
            Check::Exec {
                command: words(&["x"]),
                attempts: 180,
                env_via_stdin: false,
            },
        ),
        (
            "{type: rexec, command: \"ls -l\"}",
            Check::Rexec {
                command: words(&["ls", "-l"]),
                attempts: 180,
            },
        ),
        (
            "{type: rexec, command: ls, attempts: 2}",
            Check::Rexec {
                command: words(&["ls"]),
                attempts: 2,
            },
        ),
        ("{type: sleep, wait: 5}", Check::Sleep { wait: 5.0 }),
        ("{type: sleep, wait: 0.5}", Check::Sleep { wait: 0.5 }),
    ];
    for (spec, want) in cases {
        let loaded = one_check(spec);
        let env = loaded
            .environment
            .unwrap_or_else(|| panic!("{spec}: {:?}", loaded.diagnostics));
        assert_eq!(
            rendered(&loaded.diagnostics, Severity::Warning),
            Vec::<String>::new(),
            "{spec}"
        );
        let got = &instance(&env, "i1").lifecycle;
        assert_eq!(got.len(), 1, "{spec}");
        assert_eq!(got[&LifecycleState::Running], [want], "{spec}");
    }
}

#[test]
fn check_errors() {
    let at = "services.svc.instances.i1.lifecycle.running[0]";
    // (check, path suffix after `at`, message fragments, help)
    let cases: &[(&str, &str, &[&str], Option<&str>)] = &[
        (
            "{type: tcp}",
            "",
            &["a tcp check needs the name of a port"],
            None,
        ),
        (
            "{type: tcp, port: nope}",
            ".port",
            &["port \"nope\" is not defined by instance i1"],
            Some("known: web, dns, range"),
        ),
        (
            "{type: tcp, port: webb}",
            ".port",
            &["port \"webb\" is not defined"],
            Some("did you mean \"web\"?"),
        ),
        (
            "{type: tcp, port: dns}",
            ".port",
            &["port \"dns\" is not TCP (53/udp)"],
            None,
        ),
        (
            "{type: tcp, port: range}",
            ".port",
            &["port \"range\" is published on a range (1240-1242)"],
            None,
        ),
        (
            "{type: tcp, port: web, max_wait: x}",
            ".max_wait",
            &["a number of attempts"],
            None,
        ),
        ("{type: http}", "", &["an http check needs a port"], None),
        (
            "{type: http, port: nope}",
            ".port",
            &["port \"nope\" is not defined"],
            None,
        ),
        (
            "{type: http, port: range}",
            ".port",
            &["published on a range"],
            None,
        ),
        (
            "{type: http, port: 70000}",
            ".port",
            &["port \"70000\" is not defined"],
            None,
        ),
        (
            "{type: http, port: web, scheme: ftp}",
            ".scheme",
            &["expected http or https, found \"ftp\""],
            None,
        ),
        (
            "{type: http, port: web, requests_options: {verify: 3}}",
            ".requests_options.verify",
            &["expected true, false or the path of a CA bundle, found 3"],
            Some(
                "write `verify: /path/to/ca.pem` (relative paths are relative to the environment file)",
            ),
        ),
        (
            "{type: http, port: web, requests_options: {auth: alice}}",
            ".requests_options.auth",
            &["expected [user, password], found a string"],
            None,
        ),
        (
            "{type: http, port: web, requests_options: {auth: [alice, ~]}}",
            ".requests_options.auth[1]",
            &["expected a password (a string)"],
            None,
        ),
        (
            "{type: http, port: web, requests_options: {timeout: [1, 2, 3]}}",
            ".requests_options.timeout",
            &["expected seconds, or [connect seconds, read seconds]"],
            None,
        ),
        (
            "{type: http, port: web, requests_options: {timeout: soon}}",
            ".requests_options.timeout",
            &["a number of seconds"],
            None,
        ),
        (
            "{type: http, port: web, max_wait: -1}",
            ".max_wait",
            &["a number of seconds"],
            None,
        ),
        ("{type: exec}", "", &["an exec check needs a command"], None),
        (
            "{type: exec, cmd: \"true\"}",
            "",
            &["an exec check needs a command"],
            Some("the key is `command`, not `cmd` (MaestroNG's documentation is wrong there)"),
        ),
        (
            "{type: rexec}",
            "",
            &["an rexec check needs a command"],
            None,
        ),
        (
            "{type: exec, command: \"  \"}",
            ".command",
            &["an exec check needs a command to run, found \"  \""],
            None,
        ),
        (
            "{type: rexec, command: \"\"}",
            ".command",
            &["an rexec check needs a command to run"],
            None,
        ),
        (
            "{type: exec, command: \"'open\"}",
            ".command",
            &["unbalanced quotes"],
            None,
        ),
        (
            "{type: exec, command: x, envfrom: file}",
            ".envfrom",
            &["expected env or stdin, found \"file\""],
            None,
        ),
        (
            "{type: exec, command: x, attempts: -2}",
            ".attempts",
            &["a number of attempts"],
            None,
        ),
        (
            "{type: sleep}",
            "",
            &["a sleep check needs wait: SECONDS"],
            None,
        ),
        (
            "{type: sleep, wait: 1e300}",
            ".wait",
            &["1e300 seconds is more than a week (604800 s)"],
            None,
        ),
        (
            "{type: http, port: web, max_wait: 604801}",
            ".max_wait",
            &["more than a week"],
            None,
        ),
        (
            "{type: sleep, wait: -1}",
            ".wait",
            &["a number of seconds"],
            None,
        ),
        (
            "{type: sleep, wait: soon}",
            ".wait",
            &["a number of seconds"],
            None,
        ),
        (
            "{type: tpc, port: web}",
            ".type",
            &["unknown check type \"tpc\""],
            Some("did you mean \"tcp\"?"),
        ),
        ("{port: web}", "", &["a check needs a type"], None),
        ("tcp", "", &["expected a check"], None),
    ];
    for (spec, suffix, fragments, help) in cases {
        let loaded = one_check(spec);
        assert!(loaded.environment.is_none(), "{spec} accepted");
        assert_diags(
            &rendered(&loaded.diagnostics, Severity::Error),
            &[(&format!("{at}{suffix}"), fragments)],
            spec,
        );
        if let Some(help) = help {
            let d = loaded
                .diagnostics
                .iter()
                .find(|d| d.is_error())
                .expect("error");
            assert_eq!(d.help.as_deref(), Some(*help), "{spec}");
        }
    }
}

#[test]
fn check_warnings() {
    let at = "services.svc.instances.i1.lifecycle.running[0]";
    let cases: &[(&str, &str, &str)] = &[
        // MaestroNG fails on unknown http keys (TypeError); maestro ignores them.
        (
            "{type: http, port: web, timeout: 3}",
            ".timeout",
            "unknown key \"timeout\" is ignored",
        ),
        (
            "{type: http, port: web, requests_options: {cert: client.pem}}",
            ".requests_options.cert",
            "request option \"cert\" is not supported",
        ),
        (
            "{type: rexec, command: ls, envfrom: env}",
            ".envfrom",
            "unknown key \"envfrom\"",
        ),
        (
            "{type: tcp, port: web, attempts: 3}",
            ".attempts",
            "unknown key \"attempts\"",
        ),
        (
            "{type: sleep, wait: 1, max_wait: 3}",
            ".max_wait",
            "unknown key \"max_wait\"",
        ),
    ];
    for (spec, suffix, fragment) in cases {
        let loaded = one_check(spec);
        assert!(loaded.environment.is_some(), "{spec} refused");
        assert_diags(
            &rendered(&loaded.diagnostics, Severity::Warning),
            &[(&format!("{at}{suffix}"), &[fragment])],
            spec,
        );
    }
}

#[test]
fn lifecycle_states() {
    // (lifecycle, states kept with their check counts, warnings, errors)
    type Case<'a> = (
        &'a str,
        &'a [(LifecycleState, usize)],
        &'a [(&'a str, &'a [&'a str])],
        &'a [(&'a str, &'a [&'a str])],
    );
    let cases: &[Case] = &[
        (
            "{pre-start: [{type: sleep, wait: 1}], running: [{type: sleep, wait: 1}, {type: sleep, wait: 2}], pre-stop: [], stopped: [{type: sleep, wait: 1}]}",
            &[
                (LifecycleState::PreStart, 1),
                (LifecycleState::Running, 2),
                (LifecycleState::PreStop, 0),
                (LifecycleState::Stopped, 1),
            ],
            &[],
            &[],
        ),
        ("~", &[], &[], &[]),
        ("{running: ~}", &[], &[], &[]),
        (
            "{starting: [{type: sleep, wait: 1}]}",
            &[],
            &[(
                "services.svc.instances.i1.lifecycle.starting",
                &["lifecycle state \"starting\" is never run"],
            )],
            &[],
        ),
        (
            "{running: {type: sleep, wait: 1}}",
            &[],
            &[],
            &[(
                "services.svc.instances.i1.lifecycle.running",
                &["expected a list of checks, found a mapping"],
            )],
        ),
        (
            "[{type: sleep, wait: 1}]",
            &[],
            &[],
            &[(
                "services.svc.instances.i1.lifecycle",
                &["expected a mapping of lifecycle states"],
            )],
        ),
    ];
    for (lifecycle, states, warnings, errors) in cases {
        let loaded = load_text(&one_instance(&format!("lifecycle: {lifecycle}")));
        assert_diags(
            &rendered(&loaded.diagnostics, Severity::Warning),
            warnings,
            lifecycle,
        );
        assert_diags(
            &rendered(&loaded.diagnostics, Severity::Error),
            errors,
            lifecycle,
        );
        if errors.is_empty() {
            let env = loaded.environment.expect("valid");
            let got: Vec<(LifecycleState, usize)> = instance(&env, "i1")
                .lifecycle
                .iter()
                .map(|(s, c)| (*s, c.len()))
                .collect();
            assert_eq!(got, *states, "{lifecycle}");
        }
    }
}

const MERGED_CHECKS: &str = "\
__maestro: {schema: 2}
name: t
ships: {s1: {ip: 10.0.0.1}, s2: {ip: 10.0.0.2}}
services:
  svc:
    image: img
    ports: {http: \"80:8080\"}
    lifecycle:
      running:
        - {type: tcp, port: http}
        - {type: http, port: http, host: example.com}
        - {type: http, port: http}
      pre-stop: [{type: sleep, wait: 2}]
    instances:
      l-1:
        ship: s1
        ports: {admin: 9000}
        lifecycle:
          running: [{type: tcp, port: admin}]
          stopped: [{type: exec, command: \"true\"}]
      l-2: {ship: s2}
      l-3:
        ship: s1
        ports: {http: 81}
        lifecycle: {pre-stop: [{type: sleep, wait: 3}]}
";

#[test]
fn service_and_instance_checks_are_merged_per_instance() {
    let env = valid(MERGED_CHECKS);
    let tcp = |port: &str, number: u16| Check::Tcp {
        port: port.into(),
        number,
        max_wait: 180,
    };
    let http = |host: &str, port: u16| Check::Http {
        host: host.into(),
        port,
        path: "/".into(),
        scheme: "http".into(),
        method: "get".into(),
        match_regex: None,
        max_wait: 300.0,
        options: Box::default(),
    };
    let sleep = |wait: f64| Check::Sleep { wait };
    use LifecycleState::*;
    type Row = (&'static str, Vec<(LifecycleState, Vec<Check>)>);
    let table: Vec<Row> = vec![
        (
            "l-1",
            vec![
                (
                    Running,
                    vec![
                        tcp("http", 8080),
                        http("example.com", 8080),
                        http("10.0.0.1", 8080),
                        tcp("admin", 9000),
                    ],
                ),
                (PreStop, vec![sleep(2.0)]),
                (
                    Stopped,
                    vec![Check::Exec {
                        command: vec!["true".into()],
                        attempts: 180,
                        env_via_stdin: false,
                    }],
                ),
            ],
        ),
        // l-1's checks do not leak into l-2 (MaestroNG bug 2), and l-2 keeps the
        // service check's host (bug 3); checks are resolved against its own ship.
        (
            "l-2",
            vec![
                (
                    Running,
                    vec![
                        tcp("http", 8080),
                        http("example.com", 8080),
                        http("10.0.0.2", 8080),
                    ],
                ),
                (PreStop, vec![sleep(2.0)]),
            ],
        ),
        // Resolved against the instance's own ports; instance checks come after the
        // service's.
        (
            "l-3",
            vec![
                (
                    Running,
                    vec![
                        tcp("http", 81),
                        http("example.com", 81),
                        http("10.0.0.1", 81),
                    ],
                ),
                (PreStop, vec![sleep(2.0), sleep(3.0)]),
            ],
        ),
    ];
    for (name, want) in table {
        let got: Vec<(LifecycleState, Vec<Check>)> = instance(&env, name)
            .lifecycle
            .iter()
            .map(|(s, c)| (*s, c.clone()))
            .collect();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn a_service_check_is_checked_against_every_instance() {
    let text = format!(
        "{HEAD}  svc:\n    image: img\n    lifecycle: {{running: [{{type: tcp, port: http}}]}}\n    instances:\n      i1: {{ship: s1, ports: {{http: 80}}}}\n      i2: {{ship: s1, ports: {{http: 53/udp}}}}\n      i3: {{ship: s1}}\n"
    );
    let loaded = load_text(&text);
    assert_diags(
        &rendered(&loaded.diagnostics, Severity::Error),
        &[
            (
                "services.svc.lifecycle.running[0].port",
                &["port \"http\" is not TCP"],
            ),
            (
                "services.svc.lifecycle.running[0].port",
                &["port \"http\" is not defined by instance i3"],
            ),
        ],
        "service check",
    );
}

// ---------------------------------------------------------------------------------------
// Auditors (9)

#[test]
fn auditors() {
    let http = |endpoint: &str| AuditorKind::Http {
        endpoint: endpoint.into(),
        payload: Data::Map(vec![]),
        headers: vec![],
        method: "POST".into(),
        timeout: 3.0,
    };
    let info = |kind: AuditorKind| Auditor {
        kind,
        level: AuditLevel::Info,
        ignore_errors: false,
    };
    let cases: Vec<(&str, Auditor)> = vec![
        (
            "{type: log, file: /tmp/a.log}",
            info(AuditorKind::Log {
                file: "/tmp/a.log".into(),
            }),
        ),
        (
            "{type: log, file: a.log, level: debug, ignore_errors: true}",
            Auditor {
                kind: AuditorKind::Log {
                    file: "a.log".into(),
                },
                level: AuditLevel::Debug,
                ignore_errors: true,
            },
        ),
        (
            "{type: log, file: a.log, level: info, ignore_errors: no}",
            info(AuditorKind::Log {
                file: "a.log".into(),
            }),
        ),
        (
            "{type: http, endpoint: \"http://h/x\"}",
            info(http("http://h/x")),
        ),
        (
            "{type: http, endpoint: e, method: get, timeout: 0.5, headers: {X-A: b}, payload: {text: \"{message}\", list: [a, ~, 1]}}",
            info(AuditorKind::Http {
                endpoint: "e".into(),
                payload: Data::Map(vec![
                    ("text".into(), Data::Scalar("{message}".into())),
                    (
                        "list".into(),
                        Data::List(vec![
                            Data::Scalar("a".into()),
                            Data::Null,
                            Data::Scalar("1".into()),
                        ]),
                    ),
                ]),
                headers: vec![("X-A".into(), "b".into())],
                method: "GET".into(),
                timeout: 0.5,
            }),
        ),
        (
            "{type: exec, script: ./notify.sh, args: \"{action} {what}\"}",
            info(AuditorKind::Exec {
                script: "./notify.sh".into(),
                args: Some("{action} {what}".into()),
            }),
        ),
        (
            "{type: exec, script: ./notify.sh}",
            info(AuditorKind::Exec {
                script: "./notify.sh".into(),
                args: None,
            }),
        ),
        (
            "{type: slack, channel: \"#ops\", token: t}",
            info(AuditorKind::Slack {
                channel: "#ops".into(),
                token: Secret::new("t".into()),
                name: "maestro-ng".into(),
                icon: None,
                api_url: "https://slack.com/api".into(),
            }),
        ),
        (
            "{type: slack, channel: c, token: t, name: bot, icon: \"http://i\", api_url: \"https://127.0.0.1:8/api/\"}",
            info(AuditorKind::Slack {
                channel: "c".into(),
                token: Secret::new("t".into()),
                name: "bot".into(),
                icon: Some("http://i".into()),
                api_url: "https://127.0.0.1:8/api".into(),
            }),
        ),
        ("{type: _fail}", info(AuditorKind::Fail)),
    ];
    let doc = |audit: &str| {
        format!(
            "name: t\nships: {{s1: {{ip: 10.0.0.1}}}}\naudit: {audit}\nservices: {{svc: {{image: i, instances: {{i1: {{ship: s1}}}}}}}}\n"
        )
    };
    for (spec, want) in &cases {
        let env = valid(&doc(&format!("[{spec}]")));
        assert_eq!(env.audit, std::slice::from_ref(want), "{spec}");
    }
    // Several, in order; none.
    let env = valid(&doc(&format!("[{}, {}]", cases[0].0, cases[3].0)));
    assert_eq!(env.audit, [cases[0].1.clone(), cases[3].1.clone()]);
    assert_eq!(valid(&doc("~")).audit, []);
    assert_eq!(valid(&doc("[]")).audit, []);

    let bad: &[(&str, &str, &[&str], Option<&str>)] = &[
        (
            "[{type: log}]",
            "audit[0]",
            &["a log auditor needs file"],
            None,
        ),
        (
            "[{type: http}]",
            "audit[0]",
            &["a http auditor needs endpoint"],
            None,
        ),
        (
            "[{type: http, endpoint: e, method: PUT}]",
            "audit[0].method",
            &["expected GET or POST, found \"PUT\""],
            None,
        ),
        ("[{type: exec}]", "audit[0]", &["needs script"], None),
        (
            "[{type: slack, channel: c}]",
            "audit[0]",
            &["needs token"],
            None,
        ),
        (
            "[{type: hipchat, token: t}]",
            "audit[0]",
            &["needs room"],
            None,
        ),
        (
            "[{type: log, file: f, level: warning}]",
            "audit[0].level",
            &["expected info or debug, found \"warning\""],
            None,
        ),
        (
            "[{type: email}]",
            "audit[0].type",
            &["unknown auditor type \"email\""],
            Some("known: log, http, exec, slack, hipchat"),
        ),
        (
            "[{type: slak, channel: c, token: t}]",
            "audit[0].type",
            &["unknown auditor type \"slak\""],
            Some("did you mean \"slack\"?"),
        ),
        (
            "[{file: f}]",
            "audit[0]",
            &["an auditor needs a type"],
            None,
        ),
        (
            "{type: log, file: f}",
            "audit",
            &["expected a list of auditors"],
            None,
        ),
        (
            "[{type: log, file: f, ignore_errors: maybe}]",
            "audit[0].ignore_errors",
            &["true or false"],
            None,
        ),
    ];
    for (audit, path, fragments, help) in bad {
        let loaded = load_text(&doc(audit));
        assert!(loaded.environment.is_none(), "{audit} accepted");
        assert_diags(
            &rendered(&loaded.diagnostics, Severity::Error),
            &[(path, fragments)],
            audit,
        );
        if let Some(help) = help {
            let d = loaded
                .diagnostics
                .iter()
                .find(|d| d.is_error())
                .expect("error");
            assert_eq!(d.help.as_deref(), Some(*help), "{audit}");
        }
    }
    let loaded = load_text(&doc("[{type: log, file: f, path: g}]"));
    assert_diags(
        &rendered(&loaded.diagnostics, Severity::Warning),
        &[("audit[0].path", &["unknown key \"path\" is ignored"])],
        "extra key",
    );
    // HipChat is gone: the auditor loads with a warning at its type and records nothing.
    let loaded = load_text(&doc(
        "[{type: log, file: /tmp/a.log}, {type: hipchat, room: r, token: t}]",
    ));
    assert_diags(
        &rendered(&loaded.diagnostics, Severity::Warning),
        &[(
            "audit[1].type",
            &["the hipchat auditor records nothing: HipChat was shut down in 2019"],
        )],
        "hipchat",
    );
    let warning = loaded
        .diagnostics
        .iter()
        .find(|d| d.severity == Severity::Warning)
        .expect("warning");
    assert_eq!(warning.loc.map(|l| l.line), Some(3), "{warning:?}");
    assert_eq!(
        loaded.environment.expect("loads").audit,
        [cases[0].1.clone()]
    );
}

// ---------------------------------------------------------------------------------------
// Names: services, ships, instances, cycles

#[test]
fn dependency_errors() {
    // (services, errors as (path, fragments), helps in the same order)
    type Case<'a> = (
        &'a str,
        &'a [(&'a str, &'a [&'a str])],
        &'a [Option<&'a str>],
    );
    let cases: &[Case] = &[
        (
            "  a: {image: a, requires: [a], instances: {}}\n",
            &[("services.a.requires", &["dependency cycle: a -> a"])],
            &[None],
        ),
        (
            "  a: {image: a, requires: [b], instances: {}}\n  b: {image: b, requires: [a], instances: {}}\n",
            &[("services.a.requires", &["dependency cycle: a -> b -> a"])],
            &[None],
        ),
        (
            "  x: {image: x, instances: {}}\n  c: {image: c, requires: [a], instances: {}}\n  a: {image: a, requires: [x, b], instances: {}}\n  b: {image: b, requires: [c], instances: {}}\n",
            &[(
                "services.c.requires",
                &["dependency cycle: c -> a -> b -> c"],
            )],
            &[None],
        ),
        (
            "  a: {image: a, requires: [a], instances: {}}\n  b: {image: b, requires: c, instances: {}}\n  c: {image: c, requires: [b], instances: {}}\n",
            &[
                ("services.a.requires", &["dependency cycle: a -> a"]),
                ("services.b.requires", &["dependency cycle: b -> c -> b"]),
            ],
            &[None, None],
        ),
        (
            "  db: {image: d, instances: {}}\n  app: {image: a, requires: [dbb], wants_info: [dbx, db, zzzzzz], instances: {}}\n",
            &[
                ("services.app.requires", &["unknown service \"dbb\""]),
                ("services.app.wants_info", &["unknown service \"dbx\""]),
                ("services.app.wants_info", &["unknown service \"zzzzzz\""]),
            ],
            &[
                Some("did you mean \"db\"?"),
                Some("did you mean \"db\"?"),
                Some("known: db"),
            ],
        ),
        (
            "  a: {image: a, requires: {b: 1}, instances: {}}\n  b: {image: b, instances: {}}\n",
            &[(
                "services.a.requires",
                &["expected a list of service names, found a mapping"],
            )],
            &[None],
        ),
        (
            "  a: {image: a, instances: {i1: {ship: s3}}}\n",
            &[("services.a.instances.i1.ship", &["unknown ship \"s3\""])],
            &[Some("did you mean \"s1\"?")],
        ),
        (
            "  a: {image: a, instances: {i1: {ship: s1}}}\n  b: {image: b, instances: {i2: {ship: s1}, i1: {ship: s2}}}\n",
            &[(
                "services.b.instances.i1",
                &["instance i1 is already defined in service a"],
            )],
            &[Some(
                "instance names are Docker container names and must be unique in the environment",
            )],
        ),
    ];
    for (services, errors, helps) in cases {
        let loaded = load_text(&format!("{HEAD}{services}"));
        assert!(loaded.environment.is_none(), "{services} accepted");
        assert_diags(
            &rendered(&loaded.diagnostics, Severity::Error),
            errors,
            services,
        );
        let got_helps: Vec<Option<&str>> = loaded
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.help.as_deref())
            .collect();
        for (got, want) in got_helps.iter().zip(*helps) {
            if let Some(want) = want {
                assert_eq!(got, &Some(*want), "{services}");
            }
        }
    }
}

#[test]
fn volumes_from_cycles() {
    // (services, errors as (path, fragments)): a cycle that needs a volumes_from edge is
    // reported at the instance whose volumes_from closes it, wherever the cycle's
    // lowest-numbered service is.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a [&'a str])]);
    let cases: &[Case] = &[
        // The service with volumes_from comes first.
        (
            "  a: {image: a, instances: {a1: {ship: s1, volumes_from: b1}}}\n  b: {image: b, requires: [a], instances: {b1: {ship: s1}}}\n",
            &[(
                "services.a.instances.a1.volumes_from",
                &["dependency cycle through volumes_from: a -> b -> a"],
            )],
        ),
        // ... or not.
        (
            "  a: {image: a, requires: [b], instances: {a1: {ship: s1}}}\n  b: {image: b, instances: {b1: {ship: s1, volumes_from: a1}}}\n",
            &[(
                "services.b.instances.b1.volumes_from",
                &["dependency cycle through volumes_from: b -> a -> b"],
            )],
        ),
        (
            "  a: {image: a, requires: [b], instances: {a1: {ship: s1}}}\n  b: {image: b, requires: [c], instances: {b1: {ship: s1}}}\n  c: {image: c, instances: {c1: {ship: s1, volumes_from: [a1]}}}\n",
            &[(
                "services.c.instances.c1.volumes_from",
                &["dependency cycle through volumes_from: c -> a -> b -> c"],
            )],
        ),
        // A requires cycle in the same group does not hide the volumes_from one.
        (
            "  a: {image: a, requires: [b, c], instances: {a1: {ship: s1}}}\n  b: {image: b, requires: [a], instances: {b1: {ship: s1}}}\n  c: {image: c, instances: {c1: {ship: s1, volumes_from: a1}}}\n",
            &[
                ("services.a.requires", &["dependency cycle: a -> b -> a"]),
                (
                    "services.c.instances.c1.volumes_from",
                    &["dependency cycle through volumes_from: c -> a -> c"],
                ),
            ],
        ),
        // volumes_from along a requires edge adds no cycle of its own.
        (
            "  a: {image: a, requires: [b], instances: {a1: {ship: s1, volumes_from: b1}}}\n  b: {image: b, requires: [a], instances: {b1: {ship: s1}}}\n",
            &[("services.a.requires", &["dependency cycle: a -> b -> a"])],
        ),
        // Within one service, instance to instance.
        (
            "  a: {image: a, instances: {a1: {ship: s1, volumes_from: a2}, a2: {ship: s1, volumes_from: a1}}}\n",
            &[(
                "services.a.instances.a1.volumes_from",
                &["volumes_from cycle: a1 -> a2 -> a1"],
            )],
        ),
    ];
    for (services, errors) in cases {
        let loaded = load_text(&format!("{HEAD}{services}"));
        assert!(loaded.environment.is_none(), "{services} accepted");
        assert_diags(
            &rendered(&loaded.diagnostics, Severity::Error),
            errors,
            services,
        );
    }
}

#[test]
fn suggestions_for_many_unknown_names_are_bounded() {
    // Every service requires an unknown name close to every other service's name: each
    // lookup against all names would compare N * N pairs.
    const N: usize = 20_000;
    let mut text = String::from(HEAD);
    for i in 0..N {
        text.push_str(&format!(
            "  s{i}: {{image: i, requires: [x{i}], instances: {{}}}}\n"
        ));
    }
    crate::diag::tests::COMPARED.with(|c| c.set(0));
    let loaded = load_text(&text);
    let compared = crate::diag::tests::COMPARED.with(|c| c.get());
    let errors: Vec<&Diagnostic> = loaded.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert_eq!(errors.len(), N);
    assert!(
        compared <= crate::diag::SUGGESTION_BUDGET,
        "{compared} character pairs compared"
    );
    // Within the budget, the first ones still get a suggestion; all get some help.
    assert_eq!(errors[0].help.as_deref(), Some("did you mean \"s1\"?"));
    assert!(errors.iter().all(|d| d.help.is_some()));
}

#[test]
fn names_are_checked() {
    // (services and ships as YAML, error at path with fragments, or None when accepted)
    let svc =
        |instance: &str| format!("  svc: {{image: i, instances: {{{instance}: {{ship: s1}}}}}}\n");
    type Want<'a> = Option<(&'a str, &'a [&'a str])>;
    let cases: Vec<(String, &str, Want)> = vec![
        // Instance names are container names: Docker's [a-zA-Z0-9][a-zA-Z0-9_.-]+.
        (svc("web-1"), "", None),
        (svc("Web_1.a-b"), "", None),
        (svc("9x"), "", None),
        (
            svc("\"\""),
            "",
            Some((
                "services.svc.instances",
                &["invalid instance name \"\"", "letter or digit"],
            )),
        ),
        (
            svc("w"),
            "",
            Some((
                "services.svc.instances",
                &["invalid instance name \"w\"", "two or more"],
            )),
        ),
        (
            svc("\"a/b\""),
            "",
            Some(("services.svc.instances", &["\"a/b\""])),
        ),
        (
            svc("\"a\\nb\""),
            "",
            Some(("services.svc.instances", &["\"a\\nb\""])),
        ),
        (
            svc("\"a\\0b\""),
            "",
            Some(("services.svc.instances", &["\"a\\0b\""])),
        ),
        (
            svc("-web"),
            "",
            Some(("services.svc.instances", &["\"-web\""])),
        ),
        (
            svc("_web"),
            "",
            Some(("services.svc.instances", &["\"_web\""])),
        ),
        (
            svc("web@1"),
            "",
            Some(("services.svc.instances", &["\"web@1\""])),
        ),
        (
            svc("caf\u{e9}"),
            "",
            Some(("services.svc.instances", &["\"caf\u{e9}\""])),
        ),
        // deploy's names for an instance's other generations.
        (
            svc("web.previous"),
            "",
            Some((
                "services.svc.instances",
                &["\"web.previous\"", ".previous", "deploy"],
            )),
        ),
        (
            svc("web.retiring"),
            "",
            Some(("services.svc.instances", &[".retiring"])),
        ),
        (
            svc("web.swapping"),
            "",
            Some(("services.svc.instances", &[".swapping"])),
        ),
        (
            svc("web.staged"),
            "",
            Some(("services.svc.instances", &[".staged"])),
        ),
        (svc("web.previousx"), "", None),
        // Service names: anything but empty, control characters and `/`.
        (
            "  \"my service.x\": {image: i, instances: {}}\n".into(),
            "",
            None,
        ),
        (
            "  \"\": {image: i, instances: {}}\n".into(),
            "",
            Some(("services", &["invalid service name \"\"", "empty"])),
        ),
        (
            "  \"a/b\": {image: i, instances: {}}\n".into(),
            "",
            Some(("services", &["invalid service name \"a/b\"", "/"])),
        ),
        (
            "  \"a\\tb\": {image: i, instances: {}}\n".into(),
            "",
            Some(("services", &["\"a\\tb\"", "control"])),
        ),
        // Ship names: the same, and not beginning with `-`.
        (String::new(), "  \"ship one\": {ip: 10.0.0.3}\n", None),
        (
            String::new(),
            "  \"-s\": {ip: 10.0.0.3}\n",
            Some(("ships", &["invalid ship name \"-s\"", "-"])),
        ),
        (
            String::new(),
            "  \"s/3\": {ip: 10.0.0.3}\n",
            Some(("ships", &["\"s/3\""])),
        ),
        (
            String::new(),
            "  \"s\\r3\": {ip: 10.0.0.3}\n",
            Some(("ships", &["\"s\\r3\""])),
        ),
        (
            String::new(),
            "  \"\": {ip: 10.0.0.3}\n",
            Some(("ships", &["invalid ship name \"\""])),
        ),
    ];
    for (services, ships, want) in cases {
        let services = if services.is_empty() {
            svc("web-1")
        } else {
            services
        };
        let text = format!(
            "__maestro: {{schema: 2}}\nname: t\nships:\n  s1: {{ip: 10.0.0.1}}\n{ships}services:\n{services}"
        );
        let loaded = load_text(&text);
        let errors = rendered(&loaded.diagnostics, Severity::Error);
        match want {
            None => assert_eq!(errors, Vec::<String>::new(), "{text}"),
            Some(want) => {
                assert!(loaded.environment.is_none(), "{text}");
                assert_diags(&errors, &[want], &text);
            }
        }
    }
    // Paths below a name with a control character show it escaped, not obeyed.
    let loaded = load_text(&format!(
        "{HEAD}  \"a\\nb\": {{image: i, instances: {{x1: {{ship: s9}}}}}}\n"
    ));
    let paths: Vec<&str> = loaded.diagnostics.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, ["services", "services.\"a\\nb\".instances.x1.ship"]);
}

#[test]
fn accepted_dependencies() {
    // wants_info may go both ways and point at itself; requires may be a single name and
    // repeat; neither makes a cycle.
    let text = format!(
        "{HEAD}  a: {{image: a, wants_info: [b, a], instances: {{}}}}\n  b: {{image: b, requires: c, wants_info: [a], instances: {{}}}}\n  c: {{image: c, requires: [], instances: {{}}}}\n  d: {{image: d, requires: [c, b, c], instances: {{}}}}\n"
    );
    let env = valid(&text);
    let names = |ids: &[ServiceId]| -> Vec<String> {
        ids.iter().map(|&s| env.service(s).name.clone()).collect()
    };
    let table: &[(&str, &[&str], &[&str])] = &[
        ("a", &[], &["b", "a"]),
        ("b", &["c"], &["a"]),
        ("c", &[], &[]),
        ("d", &["c", "b"], &[]),
    ];
    for (service, requires, wants_info) in table {
        let s = env.service(env.service_by_name(service).expect("exists"));
        assert_eq!(names(&s.requires), *requires, "{service} requires");
        assert_eq!(names(&s.wants_info), *wants_info, "{service} wants_info");
    }
}

#[test]
fn diagnostics_of_a_broken_file() {
    let text = "\
name: broken
ships:
  s1: {ip: 10.0.0.1}
  s2: {endpoint: 10.0.0.9}
services:
  zk:
    image: zk
    requires: [kafka]
    instances:
      zk-1: {ship: s1, ports: {client: 25:25}}
  kafka:
    image: kafka
    requires: [zk, zoo]
    instances:
      zk-1: {ship: s1}
      kafka-1: {ship: s9, restart: sometimes}
      kafka-2:
        ship: s1
        volumes: {/data: {target: /x}}
        limits: {memory: 1.5g}
        lifecycle: {running: [{type: tcp, port: broker}]}
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

// ---------------------------------------------------------------------------------------
// Ships, registries and the other instance keys (4.2, 4.3, 4.5)

#[test]
fn ships_and_ship_defaults() {
    let text = "\
name: t
ship_defaults: {docker_port: 2376, tls: true, api_version: \"1.41\", timeout: 10, ssh_tunnel: {user: u, key: k}}
ships:
  a: {ip: 10.0.0.1}
  b: {ip: 10.0.0.2, endpoint: host-b, docker_port: 4243, tls: false, api_version: ~, ssh_tunnel: ~}
  c: {ip: 10.0.0.3, ssh_tunnel: {user: v, key: k2, port: 2222}, api_version: 1.30}
services: {svc: {image: i, instances: {i1: {ship: a}}}}
";
    let env = valid(text);
    let tunnel = |user: &str, key: &str, port: u16| {
        Some(SshTunnel {
            user: user.into(),
            key: key.into(),
            port,
            known_hosts: None,
            accept_new_host_key: false,
        })
    };
    // (ship, endpoint, docker_port, tls, api_version, timeout, ssh tunnel)
    type Row = (
        &'static str,
        Option<&'static str>,
        Option<u16>,
        bool,
        Option<&'static str>,
        Option<f64>,
        Option<SshTunnel>,
    );
    let table: Vec<Row> = vec![
        (
            "a",
            None,
            Some(2376),
            true,
            Some("1.41"),
            Some(10.0),
            tunnel("u", "k", 22),
        ),
        // A key on the ship wins over ship_defaults, even null.
        (
            "b",
            Some("host-b"),
            Some(4243),
            false,
            None,
            Some(10.0),
            None,
        ),
        // Scalars as written: 1.30 stays "1.30" (MaestroNG reads "1.3", bug 15).
        (
            "c",
            None,
            Some(2376),
            true,
            Some("1.30"),
            Some(10.0),
            tunnel("v", "k2", 2222),
        ),
    ];
    assert_eq!(env.ships.len(), 3);
    for (ship, (name, endpoint, port, tls, api, timeout, ssh)) in env.ships.iter().zip(table) {
        assert_eq!(ship.name, name);
        assert_eq!(
            (
                ship.endpoint.as_deref(),
                ship.docker_port,
                ship.tls,
                ship.api_version.as_deref(),
                ship.timeout,
                ship.ssh_tunnel.clone()
            ),
            (endpoint, port, tls, api, timeout, ssh),
            "{name}"
        );
    }

    // Without a ships section every instance runs on the given local ship.
    let env = valid("name: t\nservices: {svc: {image: i, instances: {i1: {}}}}\n");
    assert_eq!(env.ships, [Ship::new("local", "127.0.0.1")]);
    assert_eq!(env.instances[0].ship, ShipId(0));
    assert_eq!(
        env.instances[0].env.get("CONTAINER_HOST_ADDRESS"),
        Some(Some("127.0.0.1"))
    );

    type Case<'a> = (
        &'a str,
        &'a [(&'a str, &'a [&'a str])],
        &'a [(&'a str, &'a [&'a str])],
    );
    let bad: &[Case] = &[
        (
            "ships: {a: {endpoint: x}}\nservices: {}\n",
            &[("ships.a", &["ship a needs an ip"])],
            &[],
        ),
        (
            "ship_defaults: {ip: 10.0.0.9}\nships: {a: {ip: 10.0.0.1}}\nservices: {}\n",
            &[],
            &[("ship_defaults.ip", &["unknown key \"ip\" is ignored"])],
        ),
        (
            "ships: {a: {ip: 10.0.0.1, ssh_tunnel: {key: k}}}\nservices: {}\n",
            &[("ships.a.ssh_tunnel", &["needs a user"])],
            &[],
        ),
        (
            "ship_defaults: {ssh_tunnel: {user: u}}\nships: {a: {ip: 10.0.0.1}}\nservices: {}\n",
            &[("ship_defaults.ssh_tunnel", &["needs a key"])],
            &[],
        ),
        (
            "ships: {a: {ip: 10.0.0.1, docker_port: http}}\nservices: {}\n",
            &[("ships.a.docker_port", &["a TCP port number"])],
            &[],
        ),
        (
            "ship_provider: dynamic\nships: {a: {ip: 10.0.0.1}}\nservices: {}\n",
            &[("ship_provider", &["unknown ship provider \"dynamic\""])],
            &[],
        ),
        (
            "ships: {a: {ip: 10.0.0.1}}\nservices: {svc: {image: i, instances: {i1: {}}}}\n",
            &[("services.svc.instances.i1", &["instance i1 needs ship"])],
            &[],
        ),
    ];
    for (body, errors, warnings) in bad {
        let loaded = load_text(&format!("name: t\n{body}"));
        assert_diags(
            &rendered(&loaded.diagnostics, Severity::Error),
            errors,
            body,
        );
        assert_diags(
            &rendered(&loaded.diagnostics, Severity::Warning),
            warnings,
            body,
        );
    }
    let loaded = load_text(
        "name: t\nship_defaults: {endpoint: x}\nships: {a: {ip: 10.0.0.1}}\nservices: {}\n",
    );
    assert_eq!(
        loaded.diagnostics[0].help.as_deref(),
        Some("ip and endpoint are per ship and cannot have defaults")
    );
}

#[test]
fn registries() {
    let text = "\
name: t
ships: {a: {ip: 10.0.0.1}}
registries:
  quay: {registry: \"https://quay.io\", username: u, password: p, email: e, retry: {attempts: 5, when: [500, 502]}}
  local: {registry: \"http://reg:5000\"}
services: {}
";
    let env = valid(text);
    assert_eq!(
        env.registries,
        [
            Registry {
                name: "quay".into(),
                registry: "https://quay.io".into(),
                username: Some("u".into()),
                password: Some("p".into()),
                email: Some("e".into()),
                retry_attempts: 5,
                retry_when: vec![500, 502],
            },
            Registry {
                name: "local".into(),
                registry: "http://reg:5000".into(),
                username: None,
                password: None,
                email: None,
                retry_attempts: 3,
                retry_when: vec![],
            },
        ]
    );
    assert_eq!(
        valid("name: t\nregistries: ~\nservices: {}\n").registries,
        []
    );
    let bad: &[(&str, &str, &[&str])] = &[
        (
            "{r: {username: u}}",
            "registries.r",
            &["registry r needs registry"],
        ),
        (
            "{r: {registry: x, retry: {when: 500}}}",
            "registries.r.retry.when",
            &["a list of HTTP status codes"],
        ),
        (
            "{r: {registry: x, retry: {when: [teapot]}}}",
            "registries.r.retry.when[0]",
            &["an HTTP status code"],
        ),
        (
            "{r: {registry: x, retry: {attempts: many}}}",
            "registries.r.retry.attempts",
            &[],
        ),
    ];
    for (registries, path, fragments) in bad {
        let loaded = load_text(&format!(
            "name: t\nregistries: {registries}\nservices: {{}}\n"
        ));
        assert_diags(
            &rendered(&loaded.diagnostics, Severity::Error),
            &[(path, fragments)],
            registries,
        );
    }
}

#[test]
fn other_instance_keys() {
    let text = format!(
        "{HEAD}  svc:
    image: img
    instances:
      i1:
        ship: s1
        command: \"run --flag 'a b'\"
        links: {{zk-1: zookeeper, db-1: db}}
        username: 1000
        workdir: /app
        privileged: yes
        cap_add: [NET_ADMIN]
        cap_drop: [MKNOD, CHOWN]
        extra_hosts: {{db: {{ship: s2}}, api: 192.168.0.5}}
        dns: 8.8.8.8
        stop_timeout: 30
        log_driver: syslog
        log_opt: {{tag: app, max: 3, flag: true}}
        security_opt: [\"label:disable\"]
        ulimits: {{nproc: 65535, nofile: {{soft: 1024, hard: 4096}}, core: {{hard: 0}}}}
        labels: {{team: core, canary: ~}}
        lxc_conf: {{lxc.utsname: x}}
      i2:
        ship: s1
        cmd: [sleep, \"10\"]
        net: bridge
        labels: [a, b]
        dns: [1.1.1.1, 8.8.4.4]
"
    );
    let env = valid(&text);
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let pairs = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    };
    let i1 = instance(&env, "i1");
    assert_eq!(i1.command, Some(Command::Shell("run --flag 'a b'".into())));
    assert_eq!(i1.links, pairs(&[("db-1", "db"), ("zk-1", "zookeeper")]));
    assert_eq!(i1.username.as_deref(), Some("1000"));
    assert_eq!(i1.workdir.as_deref(), Some("/app"));
    assert!(i1.privileged);
    assert_eq!(i1.cap_add, s(&["NET_ADMIN"]));
    assert_eq!(i1.cap_drop, s(&["MKNOD", "CHOWN"]));
    assert_eq!(
        i1.extra_hosts,
        pairs(&[("api", "192.168.0.5"), ("db", "10.0.0.2")])
    );
    assert_eq!(i1.dns, s(&["8.8.8.8"]));
    assert_eq!(i1.stop_timeout, 30);
    let log = i1.log.as_ref().expect("log config");
    assert_eq!(log.driver, "syslog");
    assert_eq!(
        log.options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
        [("tag", "app"), ("max", "3"), ("flag", "true")]
    );
    assert_eq!(i1.security_opt, s(&["label:disable"]));
    let ulimit = |name: &str, soft: i64, hard: i64| Ulimit {
        name: name.into(),
        soft,
        hard,
    };
    assert_eq!(
        i1.ulimits,
        [
            ulimit("nproc", 65535, 65535),
            ulimit("nofile", 1024, 4096),
            ulimit("core", 0, 0)
        ]
    );
    assert_eq!(
        i1.labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
        [("team", "core"), ("canary", "")]
    );
    assert_eq!(i1.lxc_conf, pairs(&[("lxc.utsname", "x")]));
    assert_eq!(i1.hostname(), Some("i1"));

    let i2 = instance(&env, "i2");
    assert_eq!(i2.command, Some(Command::Args(s(&["sleep", "10"]))));
    // Any network mode, even bridge, drops the hostname.
    assert_eq!(i2.net.as_deref(), Some("bridge"));
    assert_eq!(i2.hostname(), None);
    assert_eq!(
        i2.labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
        [("a", ""), ("b", "")]
    );
    assert_eq!(i2.dns, s(&["1.1.1.1", "8.8.4.4"]));
    assert_eq!(i2.stop_timeout, 10);
    assert_eq!(i2.log, None);
    assert!(!i2.privileged);

    // (fields, errors, warnings)
    type Case<'a> = (
        &'a str,
        &'a [(&'a str, &'a [&'a str])],
        &'a [(&'a str, &'a [&'a str])],
    );
    let cases: &[Case] = &[
        (
            "log_driver: splunk",
            &[(
                "services.svc.instances.i1.log_driver",
                &["unsupported log driver \"splunk\""],
            )],
            &[],
        ),
        (
            "log_opt: {tag: x}",
            &[],
            &[(
                "services.svc.instances.i1.log_opt",
                &["log_opt is ignored without log_driver"],
            )],
        ),
        (
            "labels: 5",
            &[(
                "services.svc.instances.i1.labels",
                &["expected a list or a mapping of labels"],
            )],
            &[],
        ),
        (
            "security_opt: \"label:disable\"",
            &[(
                "services.svc.instances.i1.security_opt",
                &["a list of security options"],
            )],
            &[],
        ),
        (
            "ulimits: {nproc: unlimited}",
            &[],
            &[(
                "services.svc.instances.i1.ulimits.nproc",
                &["ulimit nproc is ignored"],
            )],
        ),
        (
            "extra_hosts: {db: {ship: s9}}",
            &[(
                "services.svc.instances.i1.extra_hosts.db.ship",
                &["unknown ship \"s9\""],
            )],
            &[],
        ),
        (
            "extra_hosts: {db: [1.2.3.4]}",
            &[(
                "services.svc.instances.i1.extra_hosts.db",
                &["found a list"],
            )],
            &[],
        ),
        (
            "command: \"echo 'x\"",
            &[("services.svc.instances.i1.command", &["unbalanced quotes"])],
            &[],
        ),
        (
            "privileged: maybe",
            &[("services.svc.instances.i1.privileged", &["true or false"])],
            &[],
        ),
        (
            "stop_timeout: -1",
            &[(
                "services.svc.instances.i1.stop_timeout",
                &["a number of seconds"],
            )],
            &[],
        ),
        (
            "user: root",
            &[],
            &[(
                "services.svc.instances.i1.user",
                &["unknown key \"user\" is ignored"],
            )],
        ),
        // requires is a service key.
        (
            "requires: [x]",
            &[],
            &[(
                "services.svc.instances.i1.requires",
                &["unknown key \"requires\" is ignored"],
            )],
        ),
    ];
    for (fields, errors, warnings) in cases {
        let loaded = load_text(&one_instance(fields));
        assert_diags(
            &rendered(&loaded.diagnostics, Severity::Error),
            errors,
            fields,
        );
        assert_diags(
            &rendered(&loaded.diagnostics, Severity::Warning),
            warnings,
            fields,
        );
    }
}

/// Keys that MaestroNG passed on but today's engines drop or refuse: each gets one
/// warning with its line, and the container gets what MaestroNG's got.
#[test]
fn keys_engines_no_longer_honour_are_warned_about() {
    let text = "__maestro: {schema: 2}
name: e
ship_defaults: {ssl_version: TLSv1_2, api_version: \"1.18\"}
ships:
  a: {ip: 10.0.0.1}
  b: {ip: 10.0.0.2, api_version: 1.30}
  c: {ip: 10.0.0.3, api_version: bogus}
services:
  svc:
    image: img
    instances:
      i1:
        ship: a
        limits: {cpu: 1}
        extra_hosts: {db: 10.0.0.9, answer: 42, flag: yes, quoted: \"42\"}
        lxc_conf: {lxc.utsname: x}
      i2: {ship: b, limits: {cpu: 0}}
";
    let loaded = crate::load(text, &crate::NoFiles, &Ship::new("local", "127.0.0.1"));
    let said: Vec<String> = loaded
        .diagnostics
        .iter()
        .map(|d| {
            format!(
                "{:?} {} {}: {}",
                d.severity,
                d.loc.map_or(0, |l| l.line),
                d.path,
                d.message
            )
        })
        .collect();
    let has = |fragment: &str| said.iter().filter(|s| s.contains(fragment)).count();
    // Once, although ship_defaults is read for every ship.
    assert_eq!(
        has("ship_defaults.ssl_version: ssl_version is ignored"),
        1,
        "{said:#?}"
    );
    assert_eq!(
        has("Warning 3 ship_defaults.api_version: API version 1.18 is older"),
        1,
        "{said:#?}"
    );
    assert_eq!(
        has("Error 7 ships.c.api_version: invalid API version \"bogus\""),
        1,
        "{said:#?}"
    );
    assert_eq!(
        has("limits.cpu: 1 CPU shares are raised to 2"),
        1,
        "{said:#?}"
    );
    assert_eq!(
        has("extra_hosts.answer: 42 is not an address"),
        1,
        "{said:#?}"
    );
    assert_eq!(
        has("extra_hosts.flag: yes is not an address (YAML 1.1 reads it as a boolean)"),
        1,
        "{said:#?}"
    );
    assert_eq!(has("lxc_conf is ignored"), 1, "{said:#?}");
    assert_eq!(has("i2.limits"), 0, "{said:#?}");
    // Fix the one error and look at what the containers get.
    let loaded = crate::load(
        &text.replace("api_version: bogus", "api_version: auto"),
        &crate::NoFiles,
        &Ship::new("local", "127.0.0.1"),
    );
    let env = loaded.environment.expect("valid");
    let i1 = env.instance(env.instance_by_name("i1").unwrap());
    assert_eq!(i1.limits.cpu, Some(2));
    assert_eq!(
        i1.extra_hosts,
        vec![
            ("db".to_owned(), "10.0.0.9".to_owned()),
            ("quoted".to_owned(), "42".to_owned())
        ]
    );
    assert_eq!(env.ships[1].api_version.as_deref(), Some("1.30"));
    assert_eq!(env.ships[2].api_version, None);
}

/// An SSH user reaches ssh's command line: nothing that ssh would read as an option.
#[test]
fn ssh_users_that_look_like_options_are_refused() {
    for (user, ok) in [
        ("deploy", true),
        ("\"-oProxyCommand=touch /tmp/x\"", false),
        ("\"a b\"", false),
        ("\"a@b\"", false),
        ("\"\"", false),
    ] {
        let text = format!(
            "__maestro: {{schema: 2}}\nname: e\nships:\n  s: {{ip: 10.0.0.1, ssh_tunnel: {{user: {user}, key: k}}}}\nservices: {{}}\n"
        );
        let loaded = load(&text, &NoFiles, &Ship::new("local", "127.0.0.1"));
        let errors: Vec<&Diagnostic> = loaded
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        assert_eq!(errors.is_empty(), ok, "{user}: {errors:#?}");
        if !ok {
            assert_eq!(errors[0].path, "ships.s.ssh_tunnel.user");
            assert!(
                errors[0].message.contains("is not an SSH user name"),
                "{errors:#?}"
            );
        }
    }
}

/// Every wait and timeout is bounded at load (a week), so no deadline can overflow.
#[test]
fn waits_and_timeouts_longer_than_a_week_are_refused() {
    let text = "__maestro: {schema: 2}
name: e
ships: {a: {ip: 10.0.0.1, timeout: 1e300}}
services:
  svc:
    image: img
    instances:
      i1: {ship: a, stop_timeout: 99999999999}
";
    let loaded = load(text, &NoFiles, &Ship::new("local", "127.0.0.1"));
    let errors: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| format!("{}: {}", d.path, d.message))
        .collect();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors[0].starts_with("ships.a.timeout: 1e300 seconds is more than a week"),
        "{errors:#?}"
    );
    assert!(
        errors[1].starts_with("services.svc.instances.i1.stop_timeout: 99999999999 seconds"),
        "{errors:#?}"
    );
}

/// Instances are built on several threads from `PARALLEL_FROM` of them: the environment
/// and every diagnostic (their order included) are those of one thread, for a valid file
/// and for one with mistakes on both sides of the threads' boundaries (a duplicate across
/// them, an unknown ship with its suggestion, an unknown field, a bad port, an unknown
/// instance in `volumes_from`; and volumes taken from an instance another thread built).
#[test]
fn instances_built_on_threads_are_those_built_on_one() {
    let file = |mistakes: bool| {
        let mut text = String::from(
            "__maestro: {schema: 2}\nname: e\nships:\n  ship-a: {ip: 10.0.0.1}\n  ship-b: {ip: 10.0.0.2}\nservices:\n",
        );
        let per_service = super::PARALLEL_FROM / 4 + 1;
        for s in 0..5 {
            text += &format!(
                "  svc{s}:\n    image: img:{s}\n    env: {{A: {s}}}\n    ports: {{http: 80}}\n    instances:\n"
            );
            for i in 0..per_service {
                let ship = if i % 2 == 0 { "ship-a" } else { "ship-b" };
                let mut line = format!("      svc{s}-{i}: {{ship: {ship}, env: {{B: {i}}}");
                if (s, i) == (4, 13) {
                    line += ", volumes_from: [svc0-1]";
                }
                if mistakes {
                    match (s, i) {
                        (0, 7) => line += ", imgae: x",
                        (1, 9) | (4, 3) => line = format!("      dup-{i}: {{ship: {ship}"),
                        (1, 10) => line = format!("      dup-3: {{ship: {ship}"),
                        (3, 11) => line = format!("      svc{s}-{i}: {{ship: shpi-a"),
                        (4, 12) => line += ", ports: {http: \"80:x\"}",
                        (4, 14) => line += ", volumes_from: [svc9-9]",
                        _ => {}
                    }
                }
                text += &line;
                text += "}\n";
            }
        }
        text
    };
    for mistakes in [false, true] {
        let text = file(mistakes);
        let on = |threads| {
            let loaded = super::load_on(&text, &NoFiles, &Ship::new("local", "127.0.0.1"), threads);
            (
                format!("{:?}", loaded.environment),
                format!("{:?}", loaded.diagnostics),
                loaded.environment.map_or(0, |e| e.instances.len()),
                loaded.diagnostics.len(),
            )
        };
        let one = on(1);
        if mistakes {
            assert_eq!(one.3, 5, "{}", one.1);
        } else {
            assert!(one.2 >= super::PARALLEL_FROM, "{} instances", one.2);
            assert_eq!(one.3, 0, "{}", one.1);
        }
        for threads in [2, 3] {
            assert!(
                on(threads) == one,
                "{threads} threads, mistakes: {mistakes}"
            );
        }
    }
}
