//! End-to-end snapshots of the `maestro` binary: each case writes an environment file
//! (and any files it refers to) into a fresh folder, runs the binary there with a fixed
//! environment, and snapshots the exit code, stdout and stderr. Review a snapshot as the
//! user would read it: every error names where (YAML path, file:line:col), the value, and
//! what was expected.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One run of the binary.
struct Case {
    name: &'static str,
    /// Written to `maestro.yaml` in the case's folder (when not `None`).
    yaml: Option<&'static str>,
    /// Other files in the case's folder: env files, Jinja2 includes.
    files: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
    /// Variables besides PATH and HOME.
    env: &'static [(&'static str, &'static str)],
    stdin: Option<&'static str>,
}

const CONFIG: &[&str] = &["-f", "maestro.yaml", "config"];

/// A case running `maestro -f maestro.yaml config` on `yaml`.
const fn case(name: &'static str, yaml: &'static str) -> Case {
    Case {
        name,
        yaml: Some(yaml),
        files: &[],
        args: CONFIG,
        env: &[],
        stdin: None,
    }
}

impl Case {
    const fn args(mut self, args: &'static [&'static str]) -> Self {
        self.args = args;
        self
    }
    const fn files(mut self, files: &'static [(&'static str, &'static str)]) -> Self {
        self.files = files;
        self
    }
    const fn env(mut self, env: &'static [(&'static str, &'static str)]) -> Self {
        self.env = env;
        self
    }
    const fn no_file(mut self) -> Self {
        self.yaml = None;
        self
    }
    const fn stdin(mut self, text: &'static str) -> Self {
        self.stdin = Some(text);
        self
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// A fresh, empty folder for one case.
fn case_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("maestro-cli-test-{}-{name}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("remove an old case folder");
    }
    std::fs::create_dir_all(&dir).expect("create the case folder");
    dir
}

fn run(case: &Case) -> Run {
    let dir = case_dir(case.name);
    if let Some(yaml) = case.yaml {
        std::fs::write(dir.join("maestro.yaml"), yaml).expect("write maestro.yaml");
    }
    for (name, text) in case.files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("inside the case folder"))
            .expect("create a case subfolder");
        std::fs::write(path, text).expect("write a case file");
    }
    let mut command = Command::new(env!("CARGO_BIN_EXE_maestro"));
    command
        .args(case.args)
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", "/home/test")
        .envs(case.env.iter().copied())
        .stdin(if case.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("run maestro");
    if let Some(text) = case.stdin {
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    let output = child.wait_with_output().expect("wait for maestro");
    let _ = std::fs::remove_dir_all(&dir);
    let clean = |bytes: &[u8]| redact(&String::from_utf8_lossy(bytes), &dir);
    Run {
        code: output.status.code(),
        stdout: clean(&output.stdout),
        stderr: clean(&output.stderr),
    }
}

/// Replaces the case folder (should a message name it) with a fixed marker.
fn redact(text: &str, dir: &Path) -> String {
    text.replace(&dir.display().to_string(), "[DIR]")
}

fn snapshot(run: &Run) -> String {
    let code = run
        .code
        .map_or_else(|| "killed by a signal".to_owned(), |c| c.to_string());
    // Durations vary from run to run; everything else must not.
    let times = regex::Regex::new(r"\b\d+\.\d+s\b").expect("valid");
    let stdout = times.replace_all(&run.stdout, "[T]");
    format!(
        "exit code: {code}\n--- stdout ---\n{stdout}--- stderr ---\n{}",
        run.stderr
    )
}

/// MaestroNG's deptree example (reference 1.9).
const DEPTREE: &str = "\
__maestro: {schema: 2}
name: shop
ships:
  s1: {ip: 10.0.0.1}
services:
  frontend:
    image: shop/frontend
    requires: [api, auth]
    instances: {frontend-1: {ship: s1}}
  api:
    image: shop/api
    requires: [db]
    instances: {api-1: {ship: s1}}
  auth:
    image: shop/auth
    requires: [db]
    instances: {auth-1: {ship: s1}}
  db:
    image: postgres:16
    instances: {db-1: {ship: s1}}
";

const SMALL: &str = "\
__maestro: {schema: 2}
name: small
ships:
  s1: {ip: 10.0.0.1}
services:
  db:
    image: postgres:16
    env: {POSTGRES_DB: app}
    instances:
      db-1:
        ship: s1
        ports: {pg: 5432}
        volumes: {/srv/db: /var/lib/postgresql/data}
  web:
    image: example/web:1.2
    requires: [db]
    instances:
      web-1:
        ship: s1
        ports: {http: '8080:80'}
        restart: on-failure:3
        limits: {memory: 512m}
        lifecycle:
          running: [{type: tcp, port: http}]
";

/// An instance on s1 with one extra line of instance settings, for the many
/// one-setting error cases.
macro_rules! one_instance {
    ($settings:literal) => {
        concat!(
            "__maestro: {schema: 2}\nname: err\nships:\n  s1: {ip: 10.0.0.1}\n  s2: {ip: 10.0.0.2}\n",
            "services:\n  app:\n    image: example/app\n    instances:\n      app-1:\n        ship: s1\n",
            $settings
        )
    };
}

fn cases() -> Vec<Case> {
    vec![
        // ---- the file itself ----
        case("yaml_syntax_error", "name: err\nservices:\n  app: [unclosed\n"),
        case(
            "yaml_duplicate_key",
            "name: err\nships:\n  s1: {ip: 10.0.0.1}\nservices:\n  app:\n    image: a\n    image: b\n    instances: {}\n",
        ),
        case("empty_file", ""),
        case("missing_file", "").no_file(),
        case("not_a_mapping", "- name: err\n"),
        case("missing_name", "ships:\n  s1: {ip: 10.0.0.1}\nservices: {}\n"),
        case("null_services", "name: err\nships:\n  s1: {ip: 10.0.0.1}\nservices:\n"),
        case(
            "ship_provider_ec2",
            "name: err\nship_provider: ec2\nships:\n  s1: {ip: 10.0.0.1}\nservices: {}\n",
        ),
        case(
            "ship_without_ip",
            "name: err\nships:\n  s1: {endpoint: docker1.example.com}\nservices: {}\n",
        ),
        // ---- services and instances ----
        case(
            "duplicate_instance_across_services",
            "name: err\nships:\n  s1: {ip: 10.0.0.1}\nservices:\n  a:\n    image: a\n    instances: {one: {ship: s1}}\n  b:\n    image: b\n    instances: {one: {ship: s1}}\n",
        ),
        case(
            "service_without_instances",
            "name: err\nships:\n  s1: {ip: 10.0.0.1}\nservices:\n  app:\n    image: a\n",
        ),
        case(
            "unknown_ship",
            "name: err\nships:\n  ship1: {ip: 10.0.0.1}\nservices:\n  app:\n    image: a\n    instances: {app-1: {ship: shp1}}\n",
        ),
        case(
            "instance_without_ship_block_style",
            "name: err\nships:\n  s1: {ip: 10.0.0.1}\nservices:\n  app:\n    image: a\n    instances:\n      app-1:\n        image: b\n",
        ),
        case(
            "instance_without_ship",
            "name: err\nships:\n  s1: {ip: 10.0.0.1}\n  s2: {ip: 10.0.0.2}\nservices:\n  app:\n    image: a\n    instances:\n      app-1: {image: b}\n",
        ),
        case(
            "unknown_requires",
            "name: err\nships:\n  s1: {ip: 10.0.0.1}\nservices:\n  db:\n    image: a\n    instances: {db-1: {ship: s1}}\n  web:\n    image: b\n    requires: [dbb]\n    instances: {web-1: {ship: s1}}\n",
        ),
        case(
            "unknown_wants_info",
            "name: err\nships:\n  s1: {ip: 10.0.0.1}\nservices:\n  db:\n    image: a\n    instances: {db-1: {ship: s1}}\n  web:\n    image: b\n    wants_info: [cache]\n    instances: {web-1: {ship: s1}}\n",
        ),
        case(
            "requires_cycle",
            "name: err\nships:\n  s1: {ip: 10.0.0.1}\nservices:\n  a:\n    image: a\n    requires: [b]\n    instances: {a-1: {ship: s1}}\n  b:\n    image: b\n    requires: [a]\n    instances: {b-1: {ship: s1}}\n",
        ),
        case(
            "requires_self",
            "name: err\nships:\n  s1: {ip: 10.0.0.1}\nservices:\n  a:\n    image: a\n    requires: [a]\n    instances: {a-1: {ship: s1}}\n",
        ),
        // ---- ports ----
        case("port_bad_proto", one_instance!("        ports: {dns: 53/sctp}\n")),
        case("port_upper_case_proto", one_instance!("        ports: {dns: 53/UDP}\n")),
        case("port_negative", one_instance!("        ports: {web: -80}\n")),
        case("port_trailing_space", one_instance!("        ports: {web: '80 '}\n")),
        case("port_three_parts", one_instance!("        ports: {web: '80:8080:9090'}\n")),
        case("port_float", one_instance!("        ports: {web: 80.5}\n")),
        case("port_bool", one_instance!("        ports: {web: yes}\n")),
        case("port_list", one_instance!("        ports: {web: [80, 8080]}\n")),
        case(
            "port_dict_missing_external",
            one_instance!("        ports: {web: {exposed: 80}}\n"),
        ),
        case(
            "port_mismatched_protocols",
            one_instance!("        ports: {dns: '53/udp:5353/tcp'}\n"),
        ),
        // ---- env ----
        case(
            "env_list_with_int",
            one_instance!("        env:\n          JAVA_OPTS: [-Xmx1g, 42]\n"),
        ),
        case(
            "env_list_of_missing_files",
            one_instance!("        env: [FOO=bar, BAZ=qux]\n"),
        ),
        case(
            "envfile_blank_line",
            one_instance!("        envfile: app.env\n"),
        )
        .files(&[("app.env", "A=1\n\nB=2\n")]),
        case("envfile_missing_in_subfolder", "")
            .no_file()
            .files(&[(
                "conf/maestro.yaml",
                one_instance!("        envfile: [common.env]\n"),
            )])
            .args(&["-f", "conf/maestro.yaml", "config"]),
        // ---- restart, limits, misc settings ----
        case("restart_bad_name", one_instance!("        restart: sometimes\n")),
        case("restart_bad_retries", one_instance!("        restart: on-failure:many\n")),
        case("restart_empty_retries", one_instance!("        restart: 'on-failure:'\n")),
        case(
            "restart_maximum_retry_count",
            one_instance!("        restart: {name: on-failure, maximum_retry_count: 3}\n"),
        ),
        case("memory_fraction", one_instance!("        limits: {memory: 1.5g}\n")),
        case("memory_negative", one_instance!("        limits: {memory: -1}\n")),
        case("memory_unit_only", one_instance!("        limits: {memory: m}\n")),
        case("log_driver_awslogs", one_instance!("        log_driver: awslogs\n")),
        case("labels_string", one_instance!("        labels: canary\n")),
        case(
            "security_opt_string",
            one_instance!("        security_opt: label:disable\n"),
        ),
        case(
            "volume_spec_bind",
            one_instance!("        volumes:\n          /srv/data: {bind: /data}\n"),
        ),
        case(
            "volumes_from_unknown",
            one_instance!("        volumes_from: [app-2]\n"),
        ),
        case(
            "volumes_from_other_ship",
            "__maestro: {schema: 2}\nname: err\nships:\n  s1: {ip: 10.0.0.1}\n  s2: {ip: 10.0.0.2}\nservices:\n  data:\n    image: busybox\n    instances:\n      data-1: {ship: s2, container_volumes: /data}\n  app:\n    image: a\n    instances:\n      app-1: {ship: s1, volumes_from: data-1}\n",
        ),
        // ---- lifecycle checks and auditors ----
        case(
            "lifecycle_unknown_port",
            one_instance!(
                "        ports: {http: 80}\n        lifecycle:\n          running: [{type: tcp, port: htp}]\n"
            ),
        ),
        case(
            "lifecycle_udp_port_in_tcp_check",
            one_instance!(
                "        ports: {dns: 53/udp}\n        lifecycle:\n          running: [{type: tcp, port: dns}]\n"
            ),
        ),
        case(
            "lifecycle_not_a_list",
            one_instance!(
                "        ports: {http: 80}\n        lifecycle:\n          running: {type: tcp, port: http}\n"
            ),
        ),
        case(
            "lifecycle_unknown_check_type",
            one_instance!("        lifecycle:\n          running: [{type: ping}]\n"),
        ),
        case(
            "lifecycle_exec_cmd",
            one_instance!("        lifecycle:\n          running: [{type: exec, cmd: 'test -f /ready'}]\n"),
        ),
        case(
            "auditor_unknown_type",
            "name: err\naudit:\n  - type: email\nships:\n  s1: {ip: 10.0.0.1}\nservices: {}\n",
        ),
        // ---- Jinja2 ----
        case(
            "jinja_syntax_error",
            "name: err\nships:\n  s1: {ip: 10.0.0.1}\nservices:\n  app:\n    image: {{ env.IMAGE | default('a') }\n    instances: {}\n",
        ),
        case(
            "jinja_include_missing",
            "name: err\n{% include 'ships.yaml' %}\nservices: {}\n",
        ),
        // Jinja2 raises (IndexError): the file and line of the pop.
        case(
            "jinja_pop_empty_list",
            "name: err\n{% set ids = [] %}\n{% set last = ids.pop() %}\nservices: {}\n",
        ),
        // The error is in the included file: its name and line, and where it was included.
        case(
            "jinja_error_in_include",
            "name: err\n{% set ids = ['a'] %}\n{% include 'ids.inc' %}\nservices: {}\n",
        )
        .files(&[("ids.inc", "{% set DO = ids.append('b') %}\n{% set DO = ids.remove('c') %}\n")]),
        // ---- several errors in one file: all reported, in file order ----
        case(
            "several_errors",
            "name: err\nships:\n  s1: {ip: 10.0.0.1}\nservices:\n  web:\n    image: a\n    requires: [dbb]\n    instances:\n      web-1:\n        ship: s9\n      web-2:\n        ship: s1\n        ports: {http: 80/tcpp}\n        restart: sometimes\n        limits: {memory: 1.5g}\n  db:\n    image: b\n    instances:\n      db-1: {ship: s1, log_driver: awslogs}\n",
        ),
        // ---- successes ----
        case("deptree", DEPTREE).args(&["-f", "maestro.yaml", "deptree"]),
        case("deptree_recursive", DEPTREE).args(&["-f", "maestro.yaml", "deptree", "-r"]),
        case("deptree_thing", DEPTREE).args(&["-f", "maestro.yaml", "deptree", "api-1"]),
        // A shared dependency is shown once per tree, at the shallowest level, as MaestroNG.
        case(
            "deptree_shared_dependency",
            "name: t\nships: {s: {ip: 10.0.0.1}}\nservices:\n  a: {image: a, requires: [b, c], instances: {a-1: {ship: s}}}\n  b: {image: b, requires: [c], instances: {b-1: {ship: s}}}\n  c: {image: c, instances: {c-1: {ship: s}}}\n",
        )
        .args(&["-f", "maestro.yaml", "deptree", "a"]),
        case("deptree_unknown_thing", DEPTREE).args(&["-f", "maestro.yaml", "deptree", "fronted"]),
        case("config_yaml", SMALL),
        case("config_json", SMALL).args(&["-f", "maestro.yaml", "config", "--json"]),
        case(
            "warning_unknown_key",
            "__maestro: {schema: 2}\nname: warn\nships:\n  s1: {ip: 10.0.0.1}\nservices:\n  db:\n    image: a\n    instances: {db-1: {ship: s1}}\n  web:\n    image: b\n    requries: [db]\n    instances: {web-1: {ship: s1}}\n",
        )
        .args(&["-f", "maestro.yaml", "deptree"]),
        case(
            "warning_schema1_volumes",
            "name: warn\nships:\n  s1: {ip: 10.0.0.1}\nservices:\n  db:\n    image: a\n    instances:\n      db-1:\n        ship: s1\n        volumes: {/var/lib/db: /srv/db}\n",
        ),
        case("warning_yaml11_port", one_instance!("        ports: {smtp: 25:25}\n")),
        case(
            "warning_hipchat",
            "name: warn\naudit:\n  - {type: log, file: audit.log}\n  - {type: hipchat, room: ops, token: t}\nships:\n  s1: {ip: 10.0.0.1}\nservices: {}\n",
        )
        .args(&["-f", "maestro.yaml", "deptree"]),
        case(
            "local_ship",
            "name: local\nservices:\n  app:\n    image: example/app\n    instances: {app-1: {}}\n",
        )
        .env(&[("DOCKER_HOST", "tcp://127.0.0.1:2375")]),
        case(
            "jinja_env_and_include",
            "name: {{ env.ENV_NAME | default('dev') }}\n{% include 'ships.inc' %}\nservices:\n  app:\n    image: example/app\n    instances:\n      app-1:\n        ship: s1\n        env: {HOME_DIR: '{{ env.HOME }}'}\n",
        )
        .files(&[("ships.inc", "ships:\n  s1: {ip: 10.0.0.1}\n")])
        .env(&[("ENV_NAME", "staging")]),
        case("stdin", "").no_file().args(&["-f", "-", "deptree"]).stdin(DEPTREE),
        case("version", "").no_file().args(&["--version"]),
        // A ship where nothing listens (on loopback): its instances fail with a clear
        // message, their dependents are not run, and the play exits 1.
        case(
            "start_unreachable_ship",
            "__maestro: {schema: 2}\nname: t\nships: {dead: {ip: 127.0.0.1, docker_port: 9, timeout: 2}}\nservices:\n  db: {image: busybox, instances: {db-1: {ship: dead}}}\n  app: {image: busybox, requires: [db], instances: {app-1: {ship: dead}}}\n",
        )
        .args(&["-f", "maestro.yaml", "start"]),
    ]
}

#[test]
fn snapshots() {
    let cases = cases();
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names must be unique");
    for case in &cases {
        insta::assert_snapshot!(case.name, snapshot(&run(case)));
    }
}

#[test]
fn completions_bash() {
    let run = run(&case("completions_bash", "")
        .no_file()
        .args(&["completions", "bash"]));
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    // The script calls maestro back (see tests/completion.rs for what it answers).
    assert!(
        run.stdout.contains("MAESTRO_COMPLETE=\"bash\""),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("-F _clap_complete_maestro maestro"),
        "{}",
        run.stdout
    );
}

/// Options that only mean something beside another one are refused without it, rather
/// than accepted and dropped.
#[test]
fn plan_options_need_the_plan_they_apply_to() {
    let cases: [(&str, &'static [&'static str], &str); 3] = [
        (
            "plan_max_unavailable",
            &["plan", "--max-unavailable", "2"],
            "--deploy",
        ),
        ("plan_min_ready", &["plan", "--min-ready", "1"], "--deploy"),
        (
            "plan_only_if_changed",
            &["plan", "-a", "--only-if-changed"],
            "--restart",
        ),
    ];
    for (name, args, needed) in cases {
        let run = run(&case(name, SMALL).args(args));
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        assert!(
            run.stderr
                .contains("the following required arguments were not provided")
                && run.stderr.contains(needed),
            "{args:?}: {}",
            run.stderr
        );
    }
}

/// Runs the binary in a fresh folder holding `yaml` as `maestro.yaml`, with stdout thrown
/// away (the output of a huge environment is not the point): exit code and stderr.
fn run_discarding_stdout(name: &str, yaml: &str, args: &[&str]) -> (Option<i32>, String) {
    let dir = case_dir(name);
    std::fs::write(dir.join("maestro.yaml"), yaml).expect("write maestro.yaml");
    let output = Command::new(env!("CARGO_BIN_EXE_maestro"))
        .args(["-f", "maestro.yaml"])
        .args(args)
        .current_dir(&dir)
        .env_clear()
        .env("HOME", "/home/test")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run maestro");
    let _ = std::fs::remove_dir_all(&dir);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A dependency chain 100,000 services deep (through volumes_from: a `requires` chain
/// gives each service the variables of all those below it, which is quadratic by
/// MaestroNG's contract) is loaded, checked for cycles and printed without overflowing
/// the stack; values nested 100,000 deep are refused with their place in the file.
#[test]
fn deep_environments() {
    const DEPTH: usize = 100_000;
    let mut yaml = String::from("name: deep\nships: {s: {ip: 10.0.0.1}}\nservices:\n");
    for i in 0..DEPTH {
        let from = if i + 1 < DEPTH {
            format!(", volumes_from: c{}", i + 1)
        } else {
            String::new()
        };
        yaml.push_str(&format!(
            "  s{i}: {{image: i, instances: {{c{i}: {{ship: s{from}}}}}}}\n"
        ));
    }
    let near_the_end = format!("s{}", DEPTH - 500);
    for args in [&["config", "--json"][..], &["deptree", "-r", &near_the_end]] {
        let (code, stderr) = run_discarding_stdout("deep_chain", &yaml, args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
    }
    // Closing the chain into a ring: one cycle, reported.
    let ring = yaml.replacen(
        "{c99999: {ship: s}}",
        "{c99999: {ship: s, volumes_from: c0}}",
        1,
    );
    assert_ne!(ring, yaml);
    let (code, stderr) = run_discarding_stdout("deep_ring", &ring, &["config"]);
    assert_eq!(code, Some(2), "{}", &stderr[..stderr.len().min(2000)]);
    assert!(stderr.contains("dependency cycle through volumes_from: s0 -> s1 -> s2 -> "));

    let nested = format!(
        "name: nested\nservices:\n  a: {}{}\n",
        "[".repeat(DEPTH),
        "]".repeat(DEPTH)
    );
    let (code, stderr) = run_discarding_stdout("deep_yaml", &nested, &["config"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("maestro.yaml:3:"), "{stderr}");
}
