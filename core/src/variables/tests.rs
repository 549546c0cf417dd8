//! Container environment variables (reference section 6): construction and precedence,
//! what each level can override, name normalisation, who receives which discovery
//! variables, collisions, values (null, lists, mappings) and env files.

use std::collections::HashMap;

use crate::model::{Environment, Ship};
use crate::{Diagnostic, Files, Loaded, Severity, load};

/// Env files in memory: path -> text.
struct FakeFiles(HashMap<String, String>);

impl FakeFiles {
    fn new(files: &[(&str, &str)]) -> Self {
        FakeFiles(
            files
                .iter()
                .map(|(p, t)| (p.to_string(), t.to_string()))
                .collect(),
        )
    }
}

impl Files for FakeFiles {
    fn read(&self, path: &str) -> Result<String, String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| format!("{path}: no such file"))
    }
}

fn load_with(text: &str, files: &[(&str, &str)]) -> Loaded {
    load(
        text,
        &FakeFiles::new(files),
        &Ship::new("local", "127.0.0.1"),
    )
}

fn errors(diags: &[Diagnostic]) -> Vec<String> {
    diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| format!("{}: {}", d.path, d.message))
        .collect()
}

/// `got` (rendered `path: message`) has exactly one error per `want` entry, in order,
/// at that path and with every fragment in its message.
fn assert_errors(got: &[String], want: &[(&str, &[&str])]) {
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for (g, (path, fragments)) in got.iter().zip(want) {
        assert!(g.starts_with(&format!("{path}: ")), "{g} is not at {path}");
        for f in *fragments {
            assert!(g.contains(f), "{g:?} lacks {f:?}");
        }
    }
}

fn valid(text: &str, files: &[(&str, &str)]) -> Environment {
    let loaded = load_with(text, files);
    assert_eq!(errors(&loaded.diagnostics), Vec::<String>::new(), "{text}");
    loaded.environment.expect("valid")
}

fn var<'e>(env: &'e Environment, instance: &str, name: &str) -> Option<Option<&'e str>> {
    let id = env.instance_by_name(instance).expect("instance exists");
    env.container_env(id)
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

const FIXED: [&str; 6] = [
    "MAESTRO_ENVIRONMENT_NAME",
    "SERVICE_NAME",
    "CONTAINER_NAME",
    "CONTAINER_HOST_ADDRESS",
    "DOCKER_IMAGE",
    "DOCKER_TAG",
];

/// Every variable of `instance` but the six fixed ones, in order.
fn others(env: &Environment, instance: &str) -> Vec<(String, Option<String>)> {
    let id = env.instance_by_name(instance).expect("instance exists");
    env.container_env(id)
        .filter(|(k, _)| !FIXED.contains(k))
        .map(|(k, v)| (k.to_owned(), v.map(str::to_owned)))
        .collect()
}

fn pairs(want: &[(&str, &str)]) -> Vec<(String, Option<String>)> {
    want.iter()
        .map(|(k, v)| (k.to_string(), Some(v.to_string())))
        .collect()
}

const WHO_GETS_WHAT: &str = "\
__maestro: {schema: 2}
name: env1
ships:
  s1: {ip: 10.0.0.1, endpoint: 192.168.0.1}
  s2: {ip: 10.0.0.2}
services:
  app:
    image: app
    requires: [db]
    wants_info: [info]
    instances:
      app-1: {ship: s1, ports: {http: \"80:8080\"}}
  db:
    image: db
    requires: [disk]
    instances:
      db-1: {ship: s2, ports: {sql: \"5432:15432\"}}
  disk:
    image: disk
    instances:
      disk-1: {ship: s1, ports: {nbd: \"0090\"}}
  info:
    image: info
    requires: [deep]
    wants_info: [side]
    instances:
      info-1: {ship: s2, ports: {p: 1240:1240-1242}}
  deep: {image: deep, instances: {deep-1: {ship: s1}}}
  side: {image: side, instances: {side-1: {ship: s1}}}
  front:
    image: front
    requires: [app]
    instances: {front-1: {ship: s1}}
  vols:
    image: vols
    instances:
      vols-1: {ship: s1, volumes_from: app-1}
  empty: {image: e, instances: {}}
  lonely: {image: l, wants_info: [empty], instances: {lonely-1: {ship: s1}}}
";

#[test]
fn who_receives_which_discovery_variables() {
    let env = valid(WHO_GETS_WHAT, &[]);
    let app = [
        ("APP_APP_1_HOST", "10.0.0.1"),
        ("APP_APP_1_HTTP_PORT", "8080"),
        ("APP_INSTANCES", "app-1"),
    ];
    let db = [
        ("DB_DB_1_HOST", "10.0.0.2"),
        ("DB_DB_1_SQL_PORT", "15432"),
        ("DB_INSTANCES", "db-1"),
    ];
    let disk = [
        ("DISK_DISK_1_HOST", "10.0.0.1"),
        ("DISK_DISK_1_NBD_PORT", "0090"),
        ("DISK_INSTANCES", "disk-1"),
    ];
    let info = [
        ("INFO_INFO_1_HOST", "10.0.0.2"),
        ("INFO_INFO_1_P_PORT", "1240-1242"),
        ("INFO_INSTANCES", "info-1"),
    ];
    let deep = [
        ("DEEP_DEEP_1_HOST", "10.0.0.1"),
        ("DEEP_INSTANCES", "deep-1"),
    ];
    let side = [
        ("SIDE_SIDE_1_HOST", "10.0.0.1"),
        ("SIDE_INSTANCES", "side-1"),
    ];
    let cat = |blocks: &[&[(&'static str, &'static str)]]| -> Vec<(&'static str, &'static str)> {
        blocks.iter().flat_map(|b| b.iter().copied()).collect()
    };
    let table: Vec<(&str, Vec<(&str, &str)>)> = vec![
        // Own service with INTERNAL_PORT; transitive requires (db, and disk through db)
        // and the direct wants_info (info) without; not info's own deps (deep, side),
        // not dependents (front), not unrelated services.
        (
            "app-1",
            cat(&[
                &[
                    ("APP_APP_1_HOST", "10.0.0.1"),
                    ("APP_APP_1_HTTP_PORT", "8080"),
                    ("APP_APP_1_HTTP_INTERNAL_PORT", "80"),
                    ("APP_INSTANCES", "app-1"),
                ],
                &db,
                &disk,
                &info,
            ]),
        ),
        (
            "db-1",
            cat(&[
                &[
                    ("DB_DB_1_HOST", "10.0.0.2"),
                    ("DB_DB_1_SQL_PORT", "15432"),
                    ("DB_DB_1_SQL_INTERNAL_PORT", "5432"),
                    ("DB_INSTANCES", "db-1"),
                ],
                &disk,
            ]),
        ),
        (
            "disk-1",
            vec![
                ("DISK_DISK_1_HOST", "10.0.0.1"),
                ("DISK_DISK_1_NBD_PORT", "0090"),
                ("DISK_DISK_1_NBD_INTERNAL_PORT", "0090"),
                ("DISK_INSTANCES", "disk-1"),
            ],
        ),
        (
            "info-1",
            cat(&[
                &[
                    ("INFO_INFO_1_HOST", "10.0.0.2"),
                    ("INFO_INFO_1_P_PORT", "1240-1242"),
                    ("INFO_INFO_1_P_INTERNAL_PORT", "1240"),
                    ("INFO_INSTANCES", "info-1"),
                ],
                &deep,
                &side,
            ]),
        ),
        // app's wants_info (info) is not passed on to front; app's requires are.
        (
            "front-1",
            cat(&[
                &[
                    ("FRONT_FRONT_1_HOST", "10.0.0.1"),
                    ("FRONT_INSTANCES", "front-1"),
                ],
                &app,
                &db,
                &disk,
            ]),
        ),
        // volumes_from gives no variables.
        (
            "vols-1",
            vec![
                ("VOLS_VOLS_1_HOST", "10.0.0.1"),
                ("VOLS_INSTANCES", "vols-1"),
            ],
        ),
        // A service without instances still has an (empty) instance list.
        (
            "lonely-1",
            vec![
                ("LONELY_LONELY_1_HOST", "10.0.0.1"),
                ("LONELY_INSTANCES", "lonely-1"),
                ("EMPTY_INSTANCES", ""),
            ],
        ),
    ];
    for (instance, want) in table {
        assert_eq!(others(&env, instance), pairs(&want), "{instance}");
    }
}

#[test]
fn own_service_variables_cover_every_instance() {
    let text = "\
__maestro: {schema: 2}
name: e
ships: {s1: {ip: 10.0.0.1}, s2: {ip: 10.0.0.2}}
services:
  zk:
    image: zk
    instances:
      zk-2: {ship: s2, ports: {client: \"2181:2182\"}}
      zk-1: {ship: s1, ports: {client: 2181}}
";
    let env = valid(text, &[]);
    let want = pairs(&[
        ("ZK_ZK_2_HOST", "10.0.0.2"),
        ("ZK_ZK_2_CLIENT_PORT", "2182"),
        ("ZK_ZK_2_CLIENT_INTERNAL_PORT", "2181"),
        ("ZK_ZK_1_HOST", "10.0.0.1"),
        ("ZK_ZK_1_CLIENT_PORT", "2181"),
        ("ZK_ZK_1_CLIENT_INTERNAL_PORT", "2181"),
        ("ZK_INSTANCES", "zk-1,zk-2"),
    ]);
    for instance in ["zk-1", "zk-2"] {
        assert_eq!(others(&env, instance), want, "{instance}");
    }
}

#[test]
fn fixed_variables() {
    let text = "\
__maestro: {schema: 2}
name: prod-env
ships: {s1: {ip: 10.0.0.1, endpoint: 192.168.1.1}}
services:
  web:
    image: reg:5000/acme/web
    instances:
      web-1: {ship: s1}
      web-2: {ship: s1, image: \"acme/web:canary\"}
      web-3: {ship: s1, image: \"busybox:\"}
";
    let env = valid(text, &[]);
    // (instance, CONTAINER_NAME, CONTAINER_HOST_ADDRESS, DOCKER_IMAGE, DOCKER_TAG)
    let table = [
        ("web-1", "10.0.0.1", "reg:5000/acme/web", "latest"),
        ("web-2", "10.0.0.1", "acme/web:canary", "canary"),
        ("web-3", "10.0.0.1", "busybox:", "latest"),
    ];
    for (instance, ip, image, tag) in table {
        let got: Vec<Option<Option<&str>>> =
            FIXED.iter().map(|name| var(&env, instance, name)).collect();
        let want: Vec<Option<Option<&str>>> = ["prod-env", "web", instance, ip, image, tag]
            .into_iter()
            .map(|v| Some(Some(v)))
            .collect();
        assert_eq!(got, want, "{instance}");
    }
}

const PRECEDENCE: &str = "\
__maestro: {schema: 2}
name: env1
ships: {s1: {ip: 10.0.0.1}}
services:
  db:
    image: db
    instances: {db-1: {ship: s1, ports: {sql: 5432}}}
  app:
    image: app:1.0
    requires: [db]
    envfile: [svc1.env, svc2.env]
    env:
      BOTH_SVC: svc-env
      SVC_ENV_VS_INST_FILE: svc-env
      SERVICE_NAME: from-svc-env
      SVC_LIST: [a, b]
    instances:
      app-1:
        ship: s1
        ports: {http: 80}
        envfile: inst.env
        env:
          BOTH_INST: inst-env
          SERVICE_NAME: from-inst-env
          CONTAINER_NAME: x
          CONTAINER_HOST_ADDRESS: x
          DOCKER_IMAGE: x
          DOCKER_TAG: x
          APP_APP_1_HOST: x
          APP_APP_1_HTTP_INTERNAL_PORT: x
          APP_INSTANCES: x
          DB_DB_1_HOST: x
          DB_INSTANCES: x
      app-2:
        ship: s1
        env: {SVC_LIST: c}
";

const PRECEDENCE_FILES: &[(&str, &str)] = &[
    (
        "svc1.env",
        "ONLY_SVC_FILE=svc1\nFILE_ORDER=svc1\nBOTH_SVC=svc-file\nMAESTRO_ENVIRONMENT_NAME=from-svc-file\n",
    ),
    ("svc2.env", "FILE_ORDER=svc2\n"),
    (
        "inst.env",
        "SVC_ENV_VS_INST_FILE=inst-file\nBOTH_INST=inst-file\nMAESTRO_ENVIRONMENT_NAME=from-inst-file\n",
    ),
];

#[test]
fn precedence_lowest_to_highest() {
    let env = valid(PRECEDENCE, PRECEDENCE_FILES);
    // (instance, variable, value): each row shows one level beating the one below.
    let table = [
        // 1. service envfiles, in list order.
        ("app-1", "ONLY_SVC_FILE", "svc1"),
        ("app-1", "FILE_ORDER", "svc2"),
        // 2. service env over service envfiles.
        ("app-1", "BOTH_SVC", "svc-env"),
        // 3. the service level cannot override MAESTRO_ENVIRONMENT_NAME or SERVICE_NAME...
        ("app-2", "MAESTRO_ENVIRONMENT_NAME", "env1"),
        ("app-2", "SERVICE_NAME", "app"),
        // 4. ...but instance envfiles and env can.
        ("app-1", "MAESTRO_ENVIRONMENT_NAME", "from-inst-file"),
        ("app-1", "SERVICE_NAME", "from-inst-env"),
        ("app-1", "SVC_ENV_VS_INST_FILE", "inst-file"),
        // 5. instance env over instance envfiles.
        ("app-1", "BOTH_INST", "inst-env"),
        ("app-2", "SVC_LIST", "c"),
        ("app-1", "SVC_LIST", "a b"),
        // 6. nobody overrides the container's fixed variables...
        ("app-1", "CONTAINER_NAME", "app-1"),
        ("app-1", "CONTAINER_HOST_ADDRESS", "10.0.0.1"),
        ("app-1", "DOCKER_IMAGE", "app:1.0"),
        ("app-1", "DOCKER_TAG", "1.0"),
        // 7. ...nor the own service's discovery variables...
        ("app-1", "APP_APP_1_HOST", "10.0.0.1"),
        ("app-1", "APP_APP_1_HTTP_INTERNAL_PORT", "80"),
        ("app-1", "APP_INSTANCES", "app-1,app-2"),
        // 8. ...nor the dependencies'.
        ("app-1", "DB_DB_1_HOST", "10.0.0.1"),
        ("app-1", "DB_INSTANCES", "db-1"),
    ];
    for (instance, name, value) in table {
        assert_eq!(
            var(&env, instance, name),
            Some(Some(value)),
            "{instance} {name}"
        );
    }
    // A dependency's own variables never reach the dependent's instance block.
    assert_eq!(var(&env, "db-1", "APP_INSTANCES"), None);
    assert_eq!(var(&env, "db-1", "ONLY_SVC_FILE"), None);
}

#[test]
fn colliding_names_later_wins() {
    let text = "\
__maestro: {schema: 2}
name: e
ships: {s1: {ip: 10.0.0.1}, s2: {ip: 10.0.0.2}, s3: {ip: 10.0.0.3}}
services:
  a:
    image: a
    requires: [a_b]
    instances:
      b-cd: {ship: s1, ports: {p: 1001}}
  a_b:
    image: ab
    instances:
      cd: {ship: s2, ports: {p: 2002}}
  top:
    image: t
    requires: [p_q, p-q]
    instances:
      top-1: {ship: s1}
  p-q:
    image: pq
    instances:
      r.s: {ship: s2}
  p_q:
    image: pq
    instances:
      r-s: {ship: s3}
  mix:
    image: m
    instances:
      inst_1_a: {ship: s2}
      Mixed-Case: {ship: s3}
      inst-1.a: {ship: s1}
";
    let env = valid(text, &[]);
    let table = [
        // The dependency's value beats the own service's (applied later).
        ("b-cd", "A_B_CD_P_PORT", "2002"),
        ("b-cd", "A_B_CD_P_INTERNAL_PORT", "1001"),
        ("b-cd", "A_B_CD_HOST", "10.0.0.2"),
        ("cd", "A_B_CD_P_PORT", "2002"),
        ("cd", "A_B_CD_P_INTERNAL_PORT", "2002"),
        // Two dependencies with the same normalised name: applied in name order
        // ("p-q" < "p_q"), so p_q wins, whatever the order in requires.
        ("top-1", "P_Q_R_S_HOST", "10.0.0.3"),
        ("top-1", "P_Q_INSTANCES", "r-s"),
        // Two instances of one service: the later in the file wins.
        ("inst-1.a", "MIX_INST_1_A_HOST", "10.0.0.1"),
        ("inst_1_a", "MIX_INST_1_A_HOST", "10.0.0.1"),
        // The instance list is raw names in code-point order.
        ("inst_1_a", "MIX_INSTANCES", "Mixed-Case,inst-1.a,inst_1_a"),
        ("Mixed-Case", "MIX_MIXED_CASE_HOST", "10.0.0.3"),
    ];
    for (instance, name, value) in table {
        assert_eq!(
            var(&env, instance, name),
            Some(Some(value)),
            "{instance} {name}"
        );
    }
}

#[test]
fn names_are_normalised_with_unicode_rules() {
    let text = "\
__maestro: {schema: 2}
name: e
ships: {s1: {ip: 10.0.0.1}}
services:
  café-straße:
    image: c
    instances:
      s-1: {ship: s1, ports: {ñ-port: 80}}
      bb: {ship: s1}
      ZZ: {ship: s1}
      e9: {ship: s1}
      a--b: {ship: s1}
  my-svc.v2:
    image: m
    requires: [café-straße]
    instances:
      with.dot: {ship: s1, ports: {x.y: 81}}
";
    let env = valid(text, &[]);
    let table = [
        // Instance names are container names (ASCII); service and port names need not be.
        ("s-1", "CAFÉ_STRASSE_S_1_HOST", "10.0.0.1"),
        ("s-1", "CAFÉ_STRASSE_S_1_Ñ_PORT_PORT", "80"),
        ("s-1", "CAFÉ_STRASSE_S_1_Ñ_PORT_INTERNAL_PORT", "80"),
        ("s-1", "CAFÉ_STRASSE_E9_HOST", "10.0.0.1"),
        ("s-1", "CAFÉ_STRASSE_A__B_HOST", "10.0.0.1"),
        // Code-point order: upper case before lower case.
        ("s-1", "CAFÉ_STRASSE_INSTANCES", "ZZ,a--b,bb,e9,s-1"),
        ("with.dot", "MY_SVC_V2_WITH_DOT_HOST", "10.0.0.1"),
        ("with.dot", "MY_SVC_V2_WITH_DOT_X_Y_PORT", "81"),
        ("with.dot", "MY_SVC_V2_INSTANCES", "with.dot"),
        ("with.dot", "CAFÉ_STRASSE_S_1_Ñ_PORT_PORT", "80"),
        ("with.dot", "CAFÉ_STRASSE_INSTANCES", "ZZ,a--b,bb,e9,s-1"),
    ];
    for (instance, name, value) in table {
        assert_eq!(
            var(&env, instance, name),
            Some(Some(value)),
            "{instance} {name}"
        );
    }
    // A dependency's internal ports are not given.
    assert_eq!(
        var(&env, "with.dot", "CAFÉ_STRASSE_S_1_Ñ_PORT_INTERNAL_PORT"),
        None
    );
}

/// `env:` of one instance as written in flow YAML -> (name, value) of the given names.
fn env_values(env_yaml: &str) -> Result<Environment, Vec<String>> {
    let text = format!(
        "__maestro: {{schema: 2}}\nname: e\nships: {{s1: {{ip: 10.0.0.1}}}}\nservices:\n  svc:\n    image: img\n    instances:\n      i1:\n        ship: s1\n        env: {env_yaml}\n"
    );
    let loaded = load_with(&text, &[]);
    match loaded.environment {
        Some(env) => Ok(env),
        None => Err(errors(&loaded.diagnostics)),
    }
}

#[test]
fn values() {
    // (value as written, value sent): what MaestroNG sends, Python's str() of PyYAML's
    // reading (YAML 1.1), with a warning where it differs from the text.
    let cases: &[(&str, Option<&str>)] = &[
        ("plain", Some("plain")),
        ("\"quoted\"", Some("quoted")),
        ("''", Some("")),
        ("42", Some("42")),
        ("1.5", Some("1.5")),
        ("yes", Some("True")),
        ("true", Some("True")),
        ("\"yes\"", Some("yes")),
        ("0755", Some("493")),
        ("1:30", Some("90")),
        ("1.50", Some("1.5")),
        ("2001-12-14", Some("2001-12-14")),
        // Null, ~ and nothing: a name without a value.
        ("~", None),
        ("null", None),
        ("", None),
        // Lists are flattened with spaces, recursively.
        ("[a, [b, [c, d]], e]", Some("a b c d e")),
        ("[]", Some("")),
        ("[a, \"\", b]", Some("a  b")),
        ("[[], [[]]]", Some(" ")),
        ("[[]]", Some("")),
        ("[\"1\", '2']", Some("1 2")),
        ("[single]", Some("single")),
        // A mapping is sent as Python's repr of it.
        (
            "{a: 1, b: [x, true], c: ~, d: \"q'\"}",
            Some("{'a': 1, 'b': ['x', True], 'c': None, 'd': \"q'\"}"),
        ),
    ];
    for (written, want) in cases {
        let env =
            env_values(&format!("{{V: {written}}}")).unwrap_or_else(|e| panic!("{written}: {e:?}"));
        assert_eq!(var(&env, "i1", "V"), Some(want.as_deref()), "V: {written}");
    }
}

#[test]
fn list_items_must_be_strings() {
    let path = "services.svc.instances.i1.env.V";
    // (value, where the bad item is, how the message shows it)
    let cases = [
        ("[a, 1]", "[1]", "a number 1"),
        ("[a, ~]", "[1]", "~"),
        ("[a, true]", "[1]", "a boolean true"),
        ("[a, [b, 2.5]]", "[1][1]", "a number 2.5"),
        ("[{k: v}]", "[0]", "a mapping"),
    ];
    for (written, at, shown) in cases {
        let got = env_values(&format!("{{V: {written}}}")).expect_err(written);
        assert_errors(
            &got,
            &[(
                &format!("{path}{at}"),
                &["list items of a variable must be strings", shown],
            )],
        );
    }
}

#[test]
fn keys_are_kept_as_written() {
    let env = env_values("{lower.case-key: v, Ünïcode: w}").expect("valid");
    assert_eq!(var(&env, "i1", "lower.case-key"), Some(Some("v")));
    assert_eq!(var(&env, "i1", "Ünïcode"), Some(Some("w")));
    assert_eq!(var(&env, "i1", "LOWER_CASE_KEY"), None);
}

/// An instance whose `envfile` is `f.env` with `content` -> its variables from the file
/// (everything but the fixed and discovery variables), or the errors.
fn env_file(content: &str) -> Result<Vec<(String, Option<String>)>, Vec<String>> {
    let text = "__maestro: {schema: 2}\nname: e\nships: {s1: {ip: 10.0.0.1}}\nservices:\n  svc:\n    image: img\n    instances:\n      i1: {ship: s1, envfile: f.env}\n";
    let loaded = load_with(text, &[("f.env", content)]);
    match loaded.environment {
        Some(env) => Ok(others(&env, "i1")
            .into_iter()
            .filter(|(k, _)| !k.starts_with("SVC_"))
            .collect()),
        None => Err(errors(&loaded.diagnostics)),
    }
}

#[test]
fn env_file_format() {
    let ok: &[(&str, &[(&str, &str)])] = &[
        ("A=1\n", &[("A", "1")]),
        ("A=1", &[("A", "1")]),
        ("A=1\r\nB=2\r\n", &[("A", "1"), ("B", "2")]),
        ("# comment\nA=1\n#B=2\n", &[("A", "1")]),
        ("#\n", &[]),
        ("", &[]),
        // No quote removal.
        ("A=\"1\"\nB='2'\n", &[("A", "\"1\""), ("B", "'2'")]),
        // Split at the first =.
        ("X=a=b\n", &[("X", "a=b")]),
        ("EMPTY=\n", &[("EMPTY", "")]),
        // The line is stripped, then split: inner spaces stay.
        (" B = 2 \n", &[("B ", " 2")]),
        ("\tT=\tv\t\n", &[("T", "\tv")]),
        // An indented # is not a comment; with an = it is a variable.
        ("  #X=1\n", &[("#X", "1")]),
        ("=v\n", &[("", "v")]),
        // Later lines win.
        ("A=1\nA=2\n", &[("A", "2")]),
    ];
    for (content, want) in ok {
        assert_eq!(env_file(content), Ok(pairs(want)), "{content:?}");
    }
    // (content, line number, what the message says of it, what it must not show: the
    // line may be a value pasted without its name, a secret)
    let bad = [
        ("A=1\n\nB=2\n", "line 2", "a blank line", "B=2"),
        ("   \n", "line 1", "a blank line", "A="),
        (
            "A=1\n  # indented comment\n",
            "line 2",
            "a line without =",
            "indented comment",
        ),
        ("s3cret-value\n", "line 1", "a line without =", "s3cret"),
    ];
    for (content, line, what, hidden) in bad {
        let diagnostics = env_file(content).expect_err(content);
        assert_errors(
            &diagnostics,
            &[(
                "services.svc.instances.i1.envfile",
                &["env file \"f.env\"", line, "expected NAME=value", what],
            )],
        );
        for d in &diagnostics {
            assert!(!d.contains(hidden), "{content:?}: {d}");
        }
    }
}

#[test]
fn env_and_envfile_sources() {
    let files = [
        ("a.env", "A=from-a\nSHARED=a\n"),
        ("b.env", "B=from-b\nSHARED=b\n"),
        ("c.env", "C=from-c\n"),
    ];
    let text = |sources: &str| {
        format!(
            "__maestro: {{schema: 2}}\nname: e\nships: {{s1: {{ip: 10.0.0.1}}}}\nservices:\n  svc:\n    image: img\n    instances:\n      i1: {{ship: s1, {sources}}}\n"
        )
    };
    let ok: &[(&str, &[(&str, &str)])] = &[
        ("envfile: a.env", &[("A", "from-a"), ("SHARED", "a")]),
        (
            "envfile: [a.env, b.env]",
            &[("A", "from-a"), ("SHARED", "b"), ("B", "from-b")],
        ),
        (
            "envfile: [b.env, a.env]",
            &[("B", "from-b"), ("SHARED", "a"), ("A", "from-a")],
        ),
        (
            "envfile: [[a.env], [[b.env, c.env]], []]",
            &[
                ("A", "from-a"),
                ("SHARED", "b"),
                ("B", "from-b"),
                ("C", "from-c"),
            ],
        ),
        ("envfile: ~", &[]),
        ("envfile: []", &[]),
        // `env:` as a string or a list names env files too.
        ("env: a.env", &[("A", "from-a"), ("SHARED", "a")]),
        (
            "env: [a.env, {SHARED: map, M: m}]",
            &[("A", "from-a"), ("SHARED", "map"), ("M", "m")],
        ),
        (
            "envfile: a.env, env: {SHARED: env}",
            &[("A", "from-a"), ("SHARED", "env")],
        ),
        ("env: {}", &[]),
        // Falsy sources are skipped, as MaestroNG skips them (a Jinja2 variable that
        // renders empty names no file).
        ("envfile: \"\"", &[]),
        ("env: ''", &[]),
        (
            "envfile: [a.env, \"\"]",
            &[("A", "from-a"), ("SHARED", "a")],
        ),
        ("env: false", &[]),
        ("env: no", &[]),
        ("envfile: 0", &[]),
        ("envfile: [[\"\", ~], 0.0]", &[]),
    ];
    for (sources, want) in ok {
        let env = valid(&text(sources), &files);
        let got: Vec<_> = others(&env, "i1")
            .into_iter()
            .filter(|(k, _)| !k.starts_with("SVC_"))
            .collect();
        assert_eq!(got, pairs(want), "{sources}");
    }
    let help = "a string (or a list) here names env files, relative to the environment file; variables are given as a mapping, NAME: value";
    let bad = [
        (
            "envfile: missing.env",
            "services.svc.instances.i1.envfile: cannot read env file \"missing.env\": missing.env: no such file",
        ),
        // `env: [FOO=bar]` is a list of env file paths (MaestroNG: FileNotFoundError).
        (
            "env: [FOO=bar]",
            "services.svc.instances.i1.env[0]: cannot read env file \"FOO=bar\": FOO=bar: no such file",
        ),
        // Truthy non-strings are not skipped.
        (
            "env: true",
            "services.svc.instances.i1.env: cannot read env file \"true\": true: no such file",
        ),
        (
            "envfile: [a.env, [nope.env]]",
            "services.svc.instances.i1.envfile[1][0]: cannot read env file \"nope.env\": nope.env: no such file",
        ),
    ];
    for (sources, want) in bad {
        let loaded = load_with(&text(sources), &files);
        assert!(loaded.environment.is_none(), "{sources}");
        assert_eq!(errors(&loaded.diagnostics), [want], "{sources}");
        let d = loaded
            .diagnostics
            .iter()
            .find(|d| d.is_error())
            .expect("an error");
        assert_eq!(d.help.as_deref(), Some(help), "{sources}");
    }
}

#[test]
fn service_level_env_files_and_errors() {
    let text = "\
__maestro: {schema: 2}
name: e
ships: {s1: {ip: 10.0.0.1}}
services:
  svc:
    image: img
    envfile: [s.env]
    env: [t.env, {FROM_MAP: yes}]
    instances:
      i1: {ship: s1}
      i2: {ship: s1}
";
    let env = valid(text, &[("s.env", "S=1\n"), ("t.env", "T=2\nS=3\n")]);
    for instance in ["i1", "i2"] {
        assert_eq!(var(&env, instance, "S"), Some(Some("3")));
        assert_eq!(var(&env, instance, "T"), Some(Some("2")));
        assert_eq!(var(&env, instance, "FROM_MAP"), Some(Some("True")));
    }
    // A broken service-level env file is one error, not one per instance.
    let loaded = load_with(text, &[("s.env", "S=1\n\n"), ("t.env", "T=2\n")]);
    assert_errors(
        &errors(&loaded.diagnostics),
        &[(
            "services.svc.envfile[0]",
            &["env file \"s.env\"", "line 2", "blank line"],
        )],
    );
}

/// Where what is sent differs from what is written, a warning says so (with the line,
/// and how to send the text instead), without repeating a value whose name says secret.
#[test]
fn values_read_differently_than_written_are_warned_about() {
    let text = "__maestro: {schema: 2}\nname: e\nships: {s1: {ip: 10.0.0.1}}\nservices:\n  svc:\n    image: img\n    env:\n      DEBUG: yes\n      MODE: 0755\n      PLAIN: 42\n      QUOTED: \"yes\"\n      DB_PASSWORD: 0123\n      MAP: {a: 1}\n    instances:\n      i1: {ship: s1}\n";
    let loaded = load_with(text, &[]);
    let warnings: Vec<&Diagnostic> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .collect();
    let at = |path: &str| {
        warnings
            .iter()
            .find(|d| d.path == format!("services.svc.env.{path}"))
            .unwrap_or_else(|| panic!("no warning at {path}: {warnings:#?}"))
    };
    let debug = at("DEBUG");
    assert_eq!(debug.loc.map(|l| l.line), Some(8));
    assert!(
        debug
            .message
            .contains("yes reaches the container as \"True\""),
        "{debug:?}"
    );
    assert!(
        debug.help.as_deref().unwrap().contains("\"yes\""),
        "{debug:?}"
    );
    assert!(at("MODE").message.contains("as \"493\""));
    let secret = at("DB_PASSWORD");
    for shown in ["0123", "83"] {
        assert!(!secret.message.contains(shown), "{secret:?}");
        assert!(
            !secret.help.as_deref().unwrap_or_default().contains(shown),
            "{secret:?}"
        );
    }
    assert!(at("MAP").message.contains("Python's repr"));
    // As written, or read the same: nothing to say.
    assert_eq!(warnings.len(), 4, "{warnings:#?}");
}

/// `NAME: {secret: "KIND:WHAT"}`: the variable is a secret read at play time; its value in
/// the model is the placeholder, its source is kept; a later plain value (instance over
/// service, env over envfile) makes it an ordinary variable again.
#[test]
fn secret_variables() {
    use crate::model::SecretSource;
    let text = |service_env: &str, instance_env: &str| {
        format!(
            "__maestro: {{schema: 2}}\nname: e\nships: {{s1: {{ip: 10.0.0.1}}}}\nservices:\n  svc:\n    image: img\n    env: {service_env}\n    instances:\n      i1: {{ship: s1, env: {instance_env}}}\n"
        )
    };
    // (service env, instance env, the instance's secrets)
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, SecretSource)]);
    let ok: &[Case] = &[
        (
            "{DB: {secret: \"file:~/secrets/db\"}}",
            "{}",
            &[("DB", SecretSource::File("~/secrets/db".into()))],
        ),
        (
            "{}",
            "{T: {secret: \"env:DB_PASSWORD\"}}",
            &[("T", SecretSource::Env("DB_PASSWORD".into()))],
        ),
        (
            "{C: {secret: \"cmd:pass show 'db main'\"}}",
            "{}",
            &[(
                "C",
                SecretSource::Cmd(vec!["pass".into(), "show".into(), "db main".into()]),
            )],
        ),
        // The instance's plain value wins: no secret left.
        ("{DB: {secret: \"env:X\"}}", "{DB: plain}", &[]),
        // The instance's secret wins over the service's plain value.
        (
            "{DB: plain}",
            "{DB: {secret: \"env:X\"}}",
            &[("DB", SecretSource::Env("X".into()))],
        ),
    ];
    for (service_env, instance_env, want) in ok {
        let loaded = load_with(&text(service_env, instance_env), &[]);
        let env = loaded
            .environment
            .unwrap_or_else(|| panic!("{service_env} {instance_env}: {:?}", loaded.diagnostics));
        let instance = &env.instances[0];
        let got: Vec<(&str, SecretSource)> = instance
            .secrets
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        assert_eq!(got, want.to_vec(), "{service_env} {instance_env}");
        for (name, _) in *want {
            assert_eq!(
                instance.env.get(name),
                Some(Some("<secret>")),
                "{service_env} {instance_env}"
            );
        }
        assert!(
            loaded.diagnostics.is_empty(),
            "{service_env} {instance_env}: {:?}",
            loaded.diagnostics
        );
    }
    // (the variable's value, the error's path suffix, what it says, what it must not show)
    let bad = [
        (
            "{secret: \"hunter2\"}",
            "DB.secret",
            "expected file:PATH, env:NAME or cmd:COMMAND",
            "hunter2",
        ),
        (
            "{secret: \"vault:x\"}",
            "DB.secret",
            "expected file:PATH, env:NAME or cmd:COMMAND",
            "vault",
        ),
        (
            "{secret: \"file:\"}",
            "DB.secret",
            "file: names no file",
            "~",
        ),
        (
            "{secret: \"env:\"}",
            "DB.secret",
            "env: names no variable",
            "~",
        ),
        (
            "{secret: \"cmd:\"}",
            "DB.secret",
            "cmd: names no command",
            "~",
        ),
        (
            "{secret: \"cmd:a 'b\"}",
            "DB.secret",
            "unbalanced quote",
            "~",
        ),
        (
            "{secret: 12}",
            "DB.secret",
            "expected a string KIND:WHAT",
            "12",
        ),
        (
            "{secret: \"env:X\", other: 1}",
            "DB",
            "only the key secret, found also other",
            "~",
        ),
    ];
    for (value, at, message, hidden) in bad {
        let loaded = load_with(&text(&format!("{{DB: {value}}}"), "{}"), &[]);
        let got = errors(&loaded.diagnostics);
        assert_errors(&got, &[(&format!("services.svc.env.{at}"), &[message])]);
        assert!(!got[0].contains(hidden), "{got:?}");
    }
}
