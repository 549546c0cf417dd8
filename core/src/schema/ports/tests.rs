//! Port specifications (reference section 7.2): every accepted form with its exposed
//! spec, host address and external spec, every rejected form, YAML 1.1 readings of
//! unquoted values (with their warning), and service-level ports shared by instances.

use super::parse_spec;
use crate::model::{Port, Protocol, Ship};
use crate::{Diagnostic, Loaded, NoFiles, Severity, load};

fn load_text(text: &str) -> Loaded {
    load(text, &NoFiles, &Ship::new("local", "127.0.0.1"))
}

fn render(diags: &[Diagnostic], severity: Severity) -> Vec<String> {
    diags
        .iter()
        .filter(|d| d.severity == severity)
        .map(|d| format!("{}: {}", d.path, d.message))
        .collect()
}

/// An environment whose one instance `i1` has the single port `p: <spec>`.
fn one_port(spec: &str) -> String {
    format!(
        "__maestro: {{schema: 2}}\nname: t\nships: {{s1: {{ip: 10.0.0.1}}}}\nservices:\n  svc:\n    image: img\n    instances:\n      i1:\n        ship: s1\n        ports:\n          p: {spec}\n"
    )
}

fn show(port: &Port) -> (String, String, String) {
    (
        port.exposed.with_protocol(),
        port.host_ip.clone(),
        port.external.with_protocol(),
    )
}

#[test]
fn single_spec_grammar() {
    // (text, Some((number, protocol))) when accepted.
    let cases: &[(&str, Option<(&str, Protocol)>)] = &[
        ("80", Some(("80", Protocol::Tcp))),
        ("80/tcp", Some(("80", Protocol::Tcp))),
        ("83/udp", Some(("83", Protocol::Udp))),
        ("1234-1236", Some(("1234-1236", Protocol::Tcp))),
        ("1300-1302/udp", Some(("1300-1302", Protocol::Udp))),
        // Leading zeros are kept, no numeric range check.
        ("0090", Some(("0090", Protocol::Tcp))),
        ("99999", Some(("99999", Protocol::Tcp))),
        ("53/sctp", None),
        ("53/TCP", None),
        ("53/", None),
        ("-80", None),
        ("80-", None),
        ("80 ", None),
        (" 80", None),
        ("", None),
        ("/tcp", None),
        ("1-2-3", None),
        ("80/tcp/udp", None),
        ("http", None),
        ("0x50", None),
        // Python's \d accepts any Unicode digit; maestro only ASCII (Docker would
        // refuse the others anyway).
        ("\u{663}", None),
    ];
    for (text, want) in cases {
        let got = parse_spec(text).map(|s| (s.number, s.protocol));
        let want = want.map(|(n, p)| (n.to_owned(), p));
        assert_eq!(got, want, "parse_spec({text:?})");
    }
}

#[test]
fn accepted_forms() {
    // (spec as written in YAML, exposed, host ip, external, warnings)
    let cases: &[(&str, &str, &str, &str, &[&str])] = &[
        ("80", "80/tcp", "0.0.0.0", "80/tcp", &[]),
        ("\"81\"", "81/tcp", "0.0.0.0", "81/tcp", &[]),
        ("82/tcp", "82/tcp", "0.0.0.0", "82/tcp", &[]),
        ("83/udp", "83/udp", "0.0.0.0", "83/udp", &[]),
        ("\"84:8084\"", "84/tcp", "0.0.0.0", "8084/tcp", &[]),
        ("\"86/udp:8086/udp\"", "86/udp", "0.0.0.0", "8086/udp", &[]),
        // The default protocol fills in before the protocols are compared.
        ("\"87:8087/tcp\"", "87/tcp", "0.0.0.0", "8087/tcp", &[]),
        ("\"87/tcp:8087\"", "87/tcp", "0.0.0.0", "8087/tcp", &[]),
        (
            "1234-1236:1234-1236",
            "1234-1236/tcp",
            "0.0.0.0",
            "1234-1236/tcp",
            &[],
        ),
        (
            "1240:1240-1242",
            "1240/tcp",
            "0.0.0.0",
            "1240-1242/tcp",
            &[],
        ),
        (
            "1300-1302/udp",
            "1300-1302/udp",
            "0.0.0.0",
            "1300-1302/udp",
            &[],
        ),
        ("\"0090\"", "0090/tcp", "0.0.0.0", "0090/tcp", &[]),
        // Not base-60 (a later group above 59): strings, no warning.
        ("80:90", "80/tcp", "0.0.0.0", "90/tcp", &[]),
        ("8080:8080", "8080/tcp", "0.0.0.0", "8080/tcp", &[]),
        ("\"25:25\"", "25/tcp", "0.0.0.0", "25/tcp", &[]),
        ("!!str 25:25", "25/tcp", "0.0.0.0", "25/tcp", &[]),
        ("\"010\"", "010/tcp", "0.0.0.0", "010/tcp", &[]),
        // Mapping forms.
        (
            "{exposed: 91, external: 9091}",
            "91/tcp",
            "0.0.0.0",
            "9091/tcp",
            &[],
        ),
        (
            "{exposed: 92/udp, external: 9092/udp}",
            "92/udp",
            "0.0.0.0",
            "9092/udp",
            &[],
        ),
        (
            "{exposed: 93, external: [127.0.0.1, 9093]}",
            "93/tcp",
            "127.0.0.1",
            "9093/tcp",
            &[],
        ),
        // external[0] is not validated as an address.
        (
            "{exposed: 94, external: [my-host, \"9094\"]}",
            "94/tcp",
            "my-host",
            "9094/tcp",
            &[],
        ),
        (
            "{exposed: 1240, external: 1240-1242}",
            "1240/tcp",
            "0.0.0.0",
            "1240-1242/tcp",
            &[],
        ),
        // MaestroNG binds 95/udp to 9095/tcp without complaint (bug 21); kept, warned.
        (
            "{exposed: 95/udp, external: 9095}",
            "95/udp",
            "0.0.0.0",
            "9095/tcp",
            &["services.svc.instances.i1.ports.p: exposed 95/udp is published as 9095/tcp"],
        ),
        // Extra keys are ignored (with a warning).
        (
            "{exposed: 96, external: 9096, proto: udp}",
            "96/tcp",
            "0.0.0.0",
            "9096/tcp",
            &["services.svc.instances.i1.ports.p.proto: unknown key \"proto\" is ignored"],
        ),
        // YAML 1.1 readings of unquoted values, as MaestroNG reads them, with a warning.
        (
            "25:25",
            "1525/tcp",
            "0.0.0.0",
            "1525/tcp",
            &[
                "services.svc.instances.i1.ports.p: unquoted 25:25 is read as the number 1525, as YAML 1.1 (and MaestroNG) reads it",
            ],
        ),
        (
            "010",
            "8/tcp",
            "0.0.0.0",
            "8/tcp",
            &[
                "services.svc.instances.i1.ports.p: unquoted 010 is read as the number 8, as YAML 1.1 (and MaestroNG) reads it",
            ],
        ),
        (
            "0x50",
            "80/tcp",
            "0.0.0.0",
            "80/tcp",
            &[
                "services.svc.instances.i1.ports.p: unquoted 0x50 is read as the number 80, as YAML 1.1 (and MaestroNG) reads it",
            ],
        ),
        (
            "8_080",
            "8080/tcp",
            "0.0.0.0",
            "8080/tcp",
            &[
                "services.svc.instances.i1.ports.p: unquoted 8_080 is read as the number 8080, as YAML 1.1 (and MaestroNG) reads it",
            ],
        ),
        (
            "{exposed: 1:30, external: 9090}",
            "90/tcp",
            "0.0.0.0",
            "9090/tcp",
            &[
                "services.svc.instances.i1.ports.p.exposed: unquoted 1:30 is read as the number 90, as YAML 1.1 (and MaestroNG) reads it",
            ],
        ),
        (
            "{exposed: 80, external: [127.0.0.1, 010]}",
            "80/tcp",
            "127.0.0.1",
            "8/tcp",
            &[
                "services.svc.instances.i1.ports.p.external[1]: unquoted 010 is read as the number 8, as YAML 1.1 (and MaestroNG) reads it",
            ],
        ),
    ];
    for (spec, exposed, ip, external, warnings) in cases {
        let loaded = load_text(&one_port(spec));
        let errors = render(&loaded.diagnostics, Severity::Error);
        assert!(errors.is_empty(), "{spec}: unexpected errors {errors:?}");
        let env = loaded.environment.expect("valid");
        let port = &env.instances[0].ports["p"];
        assert_eq!(
            show(port),
            (exposed.to_string(), ip.to_string(), external.to_string()),
            "{spec}"
        );
        assert_eq!(
            render(&loaded.diagnostics, Severity::Warning),
            *warnings,
            "{spec}: warnings"
        );
    }
}

#[test]
fn rejected_forms() {
    let p = "services.svc.instances.i1.ports.p";
    let forms = "<port>, <p1>-<p2> or <port>/{tcp,udp}, optionally as exposed:external";
    let invalid =
        |spec: &str| format!("{p}: invalid port specification {spec:?}: expected {forms}");
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("53/sctp", vec![invalid("53/sctp")]),
        ("53/TCP", vec![invalid("53/TCP")]),
        ("-80", vec![invalid("-80")]),
        ("\"80 \"", vec![invalid("80 ")]),
        ("http", vec![invalid("http")]),
        ("\"80:http\"", vec![invalid("http")]),
        // Both halves are checked.
        ("\"a:b\"", vec![invalid("a"), invalid("b")]),
        // More than one colon; parts are validated first.
        (
            "\"80:90:100\"",
            vec![format!(
                "{p}: invalid port spec \"80:90:100\": expected exposed:external, found 3 parts"
            )],
        ),
        ("\"a:b:c\"", vec![invalid("a")]),
        // Numbers MaestroNG lets through and the engine refuses (or, for 0, answers with
        // a random port no variable can name).
        (
            "\"0:80\"",
            vec![format!(
                "{p}: invalid port \"0\": port numbers go from 1 to 65535"
            )],
        ),
        (
            "\"80:70000\"",
            vec![format!(
                "{p}: invalid port \"70000\": port numbers go from 1 to 65535"
            )],
        ),
        (
            "\"99999999999999999999\"",
            vec![format!(
                "{p}: invalid port \"99999999999999999999\": port numbers go from 1 to 65535"
            )],
        ),
        (
            "90-80",
            vec![format!(
                "{p}: invalid port range \"90-80\": it ends before it starts"
            )],
        ),
        (
            "\"100-102:200-201\"",
            vec![format!(
                "{p}: the container's range 100-102 (3 ports) cannot be published on 200-201 (2 ports)"
            )],
        ),
        (
            "{exposed: 100-101, external: 8080}",
            vec![format!(
                "{p}: the container's range 100-101 (2 ports) cannot be published on 8080 (1 port)"
            )],
        ),
        (
            "\"80/tcp:8080/udp\"",
            vec![format!(
                "{p}: mismatched protocols between 80/tcp and 8080/udp"
            )],
        ),
        (
            "\"80:8080/udp\"",
            vec![format!(
                "{p}: mismatched protocols between 80/tcp and 8080/udp"
            )],
        ),
        // Other kinds of value.
        (
            "1.5",
            vec![format!(
                "{p}: invalid port spec 1.5: expected {forms}, or {{exposed, external}}"
            )],
        ),
        (
            "true",
            vec![format!(
                "{p}: invalid port spec true: expected {forms}, or {{exposed, external}}"
            )],
        ),
        // `yes` is a YAML 1.1 boolean for MaestroNG.
        (
            "yes",
            vec![format!(
                "{p}: invalid port spec \"yes\": expected {forms}, or {{exposed, external}}"
            )],
        ),
        (
            "~",
            vec![format!(
                "{p}: invalid port spec ~: expected {forms}, or {{exposed, external}}"
            )],
        ),
        (
            "[80, 8080]",
            vec![format!(
                "{p}: invalid port spec [80, 8080]: expected {forms}, or {{exposed, external}}"
            )],
        ),
        (
            "{exposed: 80}",
            vec![format!(
                "{p}: invalid port spec {{\"exposed\": 80}}: a mapping needs both exposed and external"
            )],
        ),
        (
            "{external: 80}",
            vec![format!(
                "{p}: invalid port spec {{\"external\": 80}}: a mapping needs both exposed and external"
            )],
        ),
        (
            "{exposed: 80/sctp, external: 80}",
            vec![format!(
                "{p}.exposed: invalid port specification \"80/sctp\": expected {forms}"
            )],
        ),
        (
            "{exposed: [80], external: 80}",
            vec![format!(
                "{p}.exposed: invalid port spec [80]: expected {forms}"
            )],
        ),
        (
            "{exposed: 80, external: [127.0.0.1]}",
            vec![format!(
                "{p}.external: invalid external port [\"127.0.0.1\"]: expected a port, or [host address, port]"
            )],
        ),
        (
            "{exposed: 80, external: [127.0.0.1, 80, 81]}",
            vec![format!(
                "{p}.external: invalid external port [\"127.0.0.1\", 80, 81]: expected a port, or [host address, port]"
            )],
        ),
        (
            "{exposed: 80, external: [127.0.0.1, x]}",
            vec![format!(
                "{p}.external: invalid port specification \"x\": expected {forms}"
            )],
        ),
        (
            "{exposed: 80, external: {port: 80}}",
            vec![format!(
                "{p}.external: invalid external port {{\"port\": 80}}: expected a port, or [host address, port]"
            )],
        ),
    ];
    for (spec, want) in cases {
        let loaded = load_text(&one_port(spec));
        assert!(loaded.environment.is_none(), "{spec} was accepted");
        assert_eq!(render(&loaded.diagnostics, Severity::Error), want, "{spec}");
    }
}

const SERVICE_PORTS: &str = "\
__maestro: {schema: 2}
name: t
ships: {s1: {ip: 10.0.0.1}, s2: {ip: 10.0.0.2}}
_shared: &shared {exposed: 7000, external: [127.0.0.1, 7001]}
services:
  svc:
    image: img
    ports:
      http: {exposed: 80, external: 8080}
      admin: 9000
      gossip: 7946/udp
    instances:
      i1: {ship: s1}
      i2:
        ship: s2
        ports:
          admin: \"9000:19000\"
          extra: *shared
      i3:
        ship: s1
        ports:
          extra: *shared
          http: 81
";

#[test]
fn service_ports_are_inherited_and_overridden_by_name() {
    // Dict-form service ports shared by three instances, and a YAML alias shared by two,
    // work (MaestroNG crashes on both: bug 1).
    let loaded = load_text(SERVICE_PORTS);
    assert_eq!(
        render(&loaded.diagnostics, Severity::Error),
        Vec::<String>::new()
    );
    let env = loaded.environment.expect("valid");
    // (instance, [(port, exposed, host ip, external)])
    type Row<'a> = (&'a str, &'a [(&'a str, &'a str, &'a str, &'a str)]);
    let table: &[Row] = &[
        (
            "i1",
            &[
                ("http", "80/tcp", "0.0.0.0", "8080/tcp"),
                ("admin", "9000/tcp", "0.0.0.0", "9000/tcp"),
                ("gossip", "7946/udp", "0.0.0.0", "7946/udp"),
            ],
        ),
        (
            "i2",
            &[
                ("http", "80/tcp", "0.0.0.0", "8080/tcp"),
                ("admin", "9000/tcp", "0.0.0.0", "19000/tcp"),
                ("gossip", "7946/udp", "0.0.0.0", "7946/udp"),
                ("extra", "7000/tcp", "127.0.0.1", "7001/tcp"),
            ],
        ),
        (
            "i3",
            &[
                ("http", "81/tcp", "0.0.0.0", "81/tcp"),
                ("admin", "9000/tcp", "0.0.0.0", "9000/tcp"),
                ("gossip", "7946/udp", "0.0.0.0", "7946/udp"),
                ("extra", "7000/tcp", "127.0.0.1", "7001/tcp"),
            ],
        ),
    ];
    for (instance, want) in table {
        let i = env.instance(env.instance_by_name(instance).expect("exists"));
        let got: Vec<(String, String, String, String)> = i
            .ports
            .iter()
            .map(|(name, port)| {
                let (e, ip, x) = show(port);
                (name.clone(), e, ip, x)
            })
            .collect();
        let want: Vec<(String, String, String, String)> = want
            .iter()
            .map(|(n, e, ip, x)| (n.to_string(), e.to_string(), ip.to_string(), x.to_string()))
            .collect();
        assert_eq!(got, want, "{instance}");
    }
}

#[test]
fn a_bad_service_port_is_reported_once_per_definition() {
    let text = "\
__maestro: {schema: 2}
name: t
ships: {s1: {ip: 10.0.0.1}}
services:
  svc:
    image: img
    ports: {bad: 80/sctp}
    instances:
      i1: {ship: s1}
      i2: {ship: s1}
";
    let loaded = load_text(text);
    assert!(loaded.environment.is_none());
    assert_eq!(
        render(&loaded.diagnostics, Severity::Error),
        [
            "services.svc.ports.bad: invalid port specification \"80/sctp\": expected <port>, <p1>-<p2> or <port>/{tcp,udp}, optionally as exposed:external"
        ]
    );
}

#[test]
fn ports_must_be_a_mapping() {
    let text = "\
__maestro: {schema: 2}
name: t
ships: {s1: {ip: 10.0.0.1}}
services:
  svc:
    image: img
    instances:
      i1: {ship: s1, ports: [80, 81]}
      i2: {ship: s1, ports: ~}
";
    let loaded = load_text(text);
    assert_eq!(
        render(&loaded.diagnostics, Severity::Error),
        [
            "services.svc.instances.i1.ports: expected a mapping of port names to port specs, found a list"
        ]
    );
}
