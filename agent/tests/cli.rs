//! End-to-end tests of the `maestro-guest` binary: every command, default, message,
//! format and usage error, each run in a cleared environment holding only the case's
//! variables, checked for stdout, stderr and exit status.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_maestro-guest");

type Vars = &'static [(&'static str, &'static str)];

/// What MaestroNG gives `kafka-2` in its zookeeper+kafka example, plus oddities.
const KAFKA_2: Vars = &[
    ("MAESTRO_ENVIRONMENT_NAME", "zk-kafka"),
    ("SERVICE_NAME", "kafka"),
    ("CONTAINER_NAME", "kafka-2"),
    ("CONTAINER_HOST_ADDRESS", "192.168.10.2"),
    ("KAFKA_INSTANCES", "kafka-1,kafka-2,kafka-3"),
    ("KAFKA_KAFKA_2_HOST", "192.168.10.2"),
    ("KAFKA_KAFKA_2_BROKER_PORT", "9093"),
    ("KAFKA_KAFKA_2_BROKER_INTERNAL_PORT", "9093"),
    ("KAFKA_KAFKA_2_JMX_INTERNAL_PORT", "0090"),
    ("KAFKA_KAFKA_2_SPACED_INTERNAL_PORT", " 1_000 "),
    ("KAFKA_KAFKA_2_EMPTY_INTERNAL_PORT", ""),
    ("KAFKA_KAFKA_2_RANGE_INTERNAL_PORT", "1234-1236"),
    ("KAFKA_KAFKA_2_MY_ADMIN_INTERNAL_PORT", "8080"),
    ("KAFKA_KAFKA_2__X_INTERNAL_PORT", "5"),
    ("ZOOKEEPER_INSTANCES", "zk-node-1,zk-node-2,zk-node-3"),
    ("ZOOKEEPER_ZK_NODE_1_HOST", "192.168.10.2"),
    ("ZOOKEEPER_ZK_NODE_1_CLIENT_PORT", "2181"),
    ("ZOOKEEPER_ZK_NODE_1_PEER_PORT", "2888"),
    ("ZOOKEEPER_ZK_NODE_2_HOST", "192.168.10.2"),
    ("ZOOKEEPER_ZK_NODE_2_CLIENT_PORT", "2182"),
    ("ZOOKEEPER_ZK_NODE_2_PEER_PORT", "2889"),
    ("ZOOKEEPER_ZK_NODE_3_HOST", "192.168.10.2"),
    ("ZOOKEEPER_ZK_NODE_3_CLIENT_PORT", "2183"),
    ("ZOOKEEPER_ZK_NODE_3_PEER_PORT", "2890"),
    ("EMPTY_INSTANCES", ""),
    ("RANGE_INSTANCES", "r-1"),
    ("RANGE_R_1_HOST", "h"),
    ("RANGE_R_1_P_PORT", "1234-1236"),
    ("BLANK_INSTANCES", "b-1"),
    ("BLANK_B_1_HOST", ""),
    ("MY_SVC_V2_INSTANCES", "i-1"),
    ("MY_SVC_V2_I_1_HOST", "h"),
    ("MY_SVC_V2_I_1_P_Q_PORT", "0042"),
    ("ODD_INSTANCES", "x,y"),
    ("ODD_X_HOST", "h \"1\""),
    ("ODD_Y_HOST", "back\\slash,comma\ttab"),
];
const NONE: Vars = &[];
const EMPTY_NAMES: Vars = &[
    ("MAESTRO_ENVIRONMENT_NAME", ""),
    ("SERVICE_NAME", ""),
    ("CONTAINER_NAME", ""),
    ("CONTAINER_HOST_ADDRESS", ""),
];
const SERVICE_ONLY: Vars = &[
    ("SERVICE_NAME", "kafka"),
    ("KAFKA_KAFKA_2_BROKER_INTERNAL_PORT", "9093"),
];

/// A name no resolver can look up: its first label is longer than DNS allows (63), so
/// resolution fails without asking any server.
const UNRESOLVABLE: &str =
    "this-label-is-far-too-long-for-dns-because-it-has-more-than-63-characters.invalid";

/// The expectation on one output stream.
#[derive(Clone, Copy)]
enum Text {
    Exact(&'static str),
    StartsWith(&'static str),
}

impl Text {
    fn matches(self, got: &str) -> bool {
        match self {
            Self::Exact(want) => got == want,
            Self::StartsWith(want) => got.starts_with(want),
        }
    }

    fn show(self) -> String {
        match self {
            Self::Exact(want) => format!("{want:?}"),
            Self::StartsWith(want) => format!("{want:?}..."),
        }
    }
}

struct Case {
    args: &'static [&'static str],
    vars: &'static [Vars],
    code: i32,
    stdout: Text,
    stderr: Text,
}

/// Answered: `stdout` on stdout, nothing on stderr, exit 0.
fn ok(args: &'static [&'static str], vars: &'static [Vars], stdout: &'static str) -> Case {
    Case {
        args,
        vars,
        code: 0,
        stdout: Text::Exact(stdout),
        stderr: Text::Exact(""),
    }
}

/// Failed: `maestro-guest: MESSAGE` on stderr (the caller writes the prefix and newline
/// into `stderr`, so the table shows the exact bytes), nothing on stdout, exit 1.
fn fail(args: &'static [&'static str], vars: &'static [Vars], stderr: &'static str) -> Case {
    Case {
        args,
        vars,
        code: 1,
        stdout: Text::Exact(""),
        stderr: Text::Exact(stderr),
    }
}

/// Refused command line: the exact usage message on stderr, exit 2.
fn usage(args: &'static [&'static str], stderr: &'static str) -> Case {
    Case {
        args,
        vars: &[],
        code: 2,
        stdout: Text::Exact(""),
        stderr: Text::Exact(stderr),
    }
}

/// Help or version: text on stdout starting with `start`, exit 0.
fn shown(args: &'static [&'static str], start: &'static str) -> Case {
    Case {
        args,
        vars: &[],
        code: 0,
        stdout: Text::StartsWith(start),
        stderr: Text::Exact(""),
    }
}

const K2: &[Vars] = &[KAFKA_2];
const NO_VARS: &[Vars] = &[NONE];

fn cases() -> Vec<Case> {
    vec![
        // Identity.
        ok(&["env-name"], K2, "zk-kafka\n"),
        ok(&["env-name"], NO_VARS, "local\n"),
        ok(&["env-name"], &[EMPTY_NAMES], "\n"),
        ok(&["service"], K2, "kafka\n"),
        fail(
            &["service"],
            NO_VARS,
            "maestro-guest: Service name was not defined\n",
        ),
        fail(
            &["service"],
            &[EMPTY_NAMES],
            "maestro-guest: Service name was not defined\n",
        ),
        ok(&["container"], K2, "kafka-2\n"),
        fail(
            &["container"],
            NO_VARS,
            "maestro-guest: Container name was not defined\n",
        ),
        fail(
            &["container"],
            &[EMPTY_NAMES],
            "maestro-guest: Container name was not defined\n",
        ),
        ok(&["host-address"], K2, "192.168.10.2\n"),
        ok(
            &["host-address"],
            &[&[("CONTAINER_HOST_ADDRESS", "ship-1.example")]],
            "ship-1.example\n",
        ),
        fail(
            &["host-address"],
            NO_VARS,
            "maestro-guest: Container host address was not defined\n",
        ),
        fail(
            &["host-address"],
            &[EMPTY_NAMES],
            "maestro-guest: Container host address was not defined\n",
        ),
        // MaestroNG answered 0.0.0.0 here; an unset address is an error with --ip too.
        fail(
            &["host-address", "--ip"],
            NO_VARS,
            "maestro-guest: Container host address was not defined\n",
        ),
        fail(
            &["host-address", "--ip"],
            &[EMPTY_NAMES],
            "maestro-guest: Container host address was not defined\n",
        ),
        ok(&["host-address", "--ip"], K2, "192.168.10.2\n"),
        ok(
            &["host-address", "--ip"],
            &[&[("CONTAINER_HOST_ADDRESS", "localhost")]],
            "127.0.0.1\n",
        ),
        fail(
            &["host-address", "--ip"],
            &[&[("CONTAINER_HOST_ADDRESS", "::1")]],
            "maestro-guest: Container host address ::1 has no IPv4 address\n",
        ),
        Case {
            args: &["host-address", "--ip"],
            vars: &[&[("CONTAINER_HOST_ADDRESS", UNRESOLVABLE)]],
            code: 1,
            stdout: Text::Exact(""),
            stderr: Text::StartsWith(
                "maestro-guest: Cannot resolve container host address \
                 this-label-is-far-too-long-for-dns-because-it-has-more-than-63-characters.invalid: ",
            ),
        },
        // The calling container's own ports.
        ok(&["port", "broker"], K2, "9093\n"),
        ok(&["port", "jmx"], K2, "90\n"),
        ok(&["port", "spaced"], K2, "1000\n"),
        ok(&["port", "my-admin"], K2, "8080\n"),
        ok(&["port", "--", "-x"], K2, "5\n"),
        ok(&["port", "missing", "--default", "7"], K2, "7\n"),
        ok(&["port", "missing", "--default=-1"], K2, "-1\n"),
        ok(&["port", "--default", "0_7", "missing"], K2, "7\n"),
        ok(&["port", "broker", "--default", "7"], K2, "9093\n"),
        fail(
            &["port", "missing"],
            K2,
            "maestro-guest: No internal port missing defined for container kafka-2 of service kafka\n",
        ),
        // An empty value is a value: the default does not replace it.
        fail(
            &["port", "empty", "--default", "7"],
            K2,
            "maestro-guest: No internal port empty defined for container kafka-2 of service kafka\n",
        ),
        fail(
            &["port", "range"],
            K2,
            "maestro-guest: No internal port range defined for container kafka-2 of service kafka\n",
        ),
        // The service name is checked before the container name.
        fail(
            &["port", "broker"],
            NO_VARS,
            "maestro-guest: Service name was not defined\n",
        ),
        fail(
            &["port", "broker"],
            &[SERVICE_ONLY],
            "maestro-guest: Container name was not defined\n",
        ),
        // Other instances.
        ok(&["host", "zookeeper", "zk-node-2"], K2, "192.168.10.2\n"),
        ok(&["host", "blank", "b-1"], K2, "\n"),
        fail(
            &["host", "zookeeper", "zk-node-9"],
            K2,
            "maestro-guest: No host defined for container zk-node-9 of service zookeeper\n",
        ),
        ok(
            &["specific-port", "zookeeper", "zk-node-2", "client"],
            K2,
            "2182\n",
        ),
        ok(&["specific-port", "my-svc.v2", "i-1", "p.q"], K2, "42\n"),
        ok(
            &[
                "specific-port",
                "zookeeper",
                "zk-node-2",
                "admin",
                "--default",
                "12",
            ],
            K2,
            "12\n",
        ),
        fail(
            &["specific-port", "zookeeper", "zk-node-2", "admin"],
            K2,
            "maestro-guest: No port admin defined for container zk-node-2 of service zookeeper\n",
        ),
        fail(
            &["specific-port", "range", "r-1", "p"],
            K2,
            "maestro-guest: No port p defined for container r-1 of service range\n",
        ),
        ok(
            &["exposed-port", "kafka", "kafka-2", "broker"],
            K2,
            "9093\n",
        ),
        // Dependencies never receive INTERNAL_PORT variables.
        fail(
            &["exposed-port", "zookeeper", "zk-node-2", "client"],
            K2,
            "maestro-guest: No internal port client defined for container zk-node-2 of service zookeeper\n",
        ),
        ok(
            &[
                "exposed-port",
                "zookeeper",
                "zk-node-2",
                "client",
                "--default",
                "2181",
            ],
            K2,
            "2181\n",
        ),
        // Node lists.
        ok(
            &["nodes", "zookeeper", "--port", "client", "--port", "peer"],
            K2,
            "192.168.10.2:2181:2888\n192.168.10.2:2182:2889\n192.168.10.2:2183:2890\n",
        ),
        ok(
            &["nodes", "zookeeper"],
            K2,
            "192.168.10.2\n192.168.10.2\n192.168.10.2\n",
        ),
        ok(
            &["nodes", "--port=client", "zookeeper", "--format", "csv"],
            K2,
            "192.168.10.2:2181,192.168.10.2:2182,192.168.10.2:2183\n",
        ),
        ok(
            &["nodes", "zookeeper", "--port", "client", "--format", "json"],
            K2,
            "[\"192.168.10.2:2181\",\"192.168.10.2:2182\",\"192.168.10.2:2183\"]\n",
        ),
        ok(
            &[
                "nodes", "kafka", "--port", "broker", "--format", "lines", "--min", "1",
            ],
            &[&[
                ("KAFKA_INSTANCES", "kafka-2"),
                ("KAFKA_KAFKA_2_HOST", "10.0.0.2"),
                ("KAFKA_KAFKA_2_BROKER_PORT", "9093"),
            ]],
            "10.0.0.2:9093\n",
        ),
        ok(&["nodes", "my-svc.v2", "--port", "p.q"], K2, "h:42\n"),
        ok(
            &["nodes", "zookeeper", "--min", "3"],
            K2,
            "192.168.10.2\n192.168.10.2\n192.168.10.2\n",
        ),
        fail(
            &["nodes", "zookeeper", "--min", "4"],
            K2,
            "maestro-guest: No or not enough zookeeper nodes configured\n",
        ),
        fail(
            &["nodes", "nothing"],
            K2,
            "maestro-guest: No or not enough nothing nodes configured\n",
        ),
        ok(&["nodes", "nothing", "--min", "0"], K2, ""),
        ok(
            &["nodes", "nothing", "--min", "0", "--format", "csv"],
            K2,
            "\n",
        ),
        ok(
            &["nodes", "nothing", "--min", "0", "--format", "json"],
            K2,
            "[]\n",
        ),
        fail(
            &["nodes", "empty", "--min", "0"],
            K2,
            "maestro-guest: No host defined for container  of service empty\n",
        ),
        fail(
            &["nodes", "zookeeper", "--port", "admin"],
            K2,
            "maestro-guest: No port admin defined for container zk-node-1 of service zookeeper\n",
        ),
        fail(
            &["nodes", "range", "--port", "p"],
            K2,
            "maestro-guest: No port p defined for container r-1 of service range\n",
        ),
        ok(&["nodes", "odd"], K2, "h \"1\"\nback\\slash,comma\ttab\n"),
        ok(
            &["nodes", "odd", "--format", "csv"],
            K2,
            "\"h \"\"1\"\"\",\"back\\slash,comma\ttab\"\n",
        ),
        ok(
            &["nodes", "odd", "--format", "json"],
            K2,
            "[\"h \\\"1\\\"\",\"back\\\\slash,comma\\ttab\"]\n",
        ),
        // Templates (paths relative to the package, the tests' folder).
        ok(
            &["render", "tests/templates/kafka.properties.j2:-"],
            K2,
            "broker.id=2\nport=9093\n\
             zookeeper.connect=192.168.10.2:2181,192.168.10.2:2182,192.168.10.2:2183\n",
        ),
        fail(
            &["render", "tests/templates/undefined.j2:-"],
            K2,
            "maestro-guest: tests/templates/undefined.j2:2: `env.NOPE` is undefined\n",
        ),
        // All or nothing, standard output included.
        fail(
            &[
                "render",
                "tests/templates/kafka.properties.j2:-",
                "tests/templates/undefined.j2:-",
            ],
            K2,
            "maestro-guest: tests/templates/undefined.j2:2: `env.NOPE` is undefined\n",
        ),
        fail(
            &["render", "tests/templates/kafka.properties.j2:-"],
            NO_VARS,
            "maestro-guest: tests/templates/kafka.properties.j2:1: `CONTAINER_NAME` is undefined\n",
        ),
        fail(
            &["render", "app.conf"],
            NO_VARS,
            "maestro-guest: cannot tell where to write 'app.conf': it does not end in .j2, \
             .tmpl or .tpl; give a destination (app.conf:DST)\n",
        ),
        fail(
            &["render", "tests/templates/missing.j2:-"],
            NO_VARS,
            "maestro-guest: cannot read template tests/templates/missing.j2: \
             No such file or directory (os error 2)\n",
        ),
        // The loopback interface exists, with 127.0.0.1, in every network namespace.
        ok(
            &["internal-address", "--interface", "lo"],
            NO_VARS,
            "127.0.0.1\n",
        ),
        fail(
            &["internal-address", "--interface", "no-such-if0"],
            NO_VARS,
            "maestro-guest: No network interface no-such-if0\n",
        ),
        // Help and version.
        shown(
            &["--help"],
            "maestro-guest: the in-container agent of maestro.\n",
        ),
        shown(
            &["-h", "nodes"],
            "maestro-guest: the in-container agent of maestro.\n",
        ),
        shown(
            &["--version"],
            concat!("maestro-guest ", env!("CARGO_PKG_VERSION"), "\n"),
        ),
        shown(
            &["nodes", "--help"],
            "usage: maestro-guest nodes SERVICE [--port NAME]... [--min N] [--format lines|csv|json]\n",
        ),
        shown(
            &["port", "-h", "--default", "x"],
            "usage: maestro-guest port NAME [--default N]\n",
        ),
        shown(
            &["host-address", "--help"],
            "usage: maestro-guest host-address [--ip]\n",
        ),
        shown(
            &["internal-address", "--help"],
            "usage: maestro-guest internal-address [--interface IF]\n",
        ),
        shown(
            &["host", "--help"],
            "usage: maestro-guest host SERVICE INSTANCE\n",
        ),
        shown(
            &["specific-port", "--help"],
            "usage: maestro-guest specific-port SERVICE INSTANCE PORT [--default N]\n",
        ),
        shown(
            &["exposed-port", "--help"],
            "usage: maestro-guest exposed-port SERVICE INSTANCE PORT [--default N]\n",
        ),
        shown(&["env-name", "--help"], "usage: maestro-guest env-name\n"),
        shown(&["service", "--help"], "usage: maestro-guest service\n"),
        shown(&["container", "--help"], "usage: maestro-guest container\n"),
        shown(
            &["render", "--help"],
            "usage: maestro-guest render SPEC...\n\nrender Jinja2 templates into files, all or nothing\n\n",
        ),
        // Usage errors.
        usage(
            &[],
            "maestro-guest: missing command\nusage: maestro-guest COMMAND [ARGS]... (see 'maestro-guest --help')\n",
        ),
        usage(
            &["frobnicate"],
            "maestro-guest: unknown command 'frobnicate'\nusage: maestro-guest COMMAND [ARGS]... (see 'maestro-guest --help')\n",
        ),
        usage(
            &["--frobnicate"],
            "maestro-guest: unknown option '--frobnicate'\nusage: maestro-guest COMMAND [ARGS]... (see 'maestro-guest --help')\n",
        ),
        usage(
            &["port"],
            "maestro-guest: missing argument NAME\nusage: maestro-guest port NAME [--default N]\n",
        ),
        usage(
            &["host", "zk"],
            "maestro-guest: missing argument INSTANCE\nusage: maestro-guest host SERVICE INSTANCE\n",
        ),
        usage(
            &["specific-port", "zk", "zk-1"],
            "maestro-guest: missing argument PORT\nusage: maestro-guest specific-port SERVICE INSTANCE PORT [--default N]\n",
        ),
        usage(
            &["render"],
            "maestro-guest: missing argument SPEC\nusage: maestro-guest render SPEC...\n",
        ),
        usage(
            &["render", "--mode", "0644", "a.j2"],
            "maestro-guest: unknown option '--mode'\nusage: maestro-guest render SPEC...\n",
        ),
        usage(
            &["service", "extra"],
            "maestro-guest: unexpected argument 'extra'\nusage: maestro-guest service\n",
        ),
        usage(
            &["port", "x", "--default", "abc"],
            "maestro-guest: invalid value 'abc' for --default: expected an integer\nusage: maestro-guest port NAME [--default N]\n",
        ),
        usage(
            &["exposed-port", "a", "b", "c", "--default", "1.5"],
            "maestro-guest: invalid value '1.5' for --default: expected an integer\n\
             usage: maestro-guest exposed-port SERVICE INSTANCE PORT [--default N]\n",
        ),
        usage(
            &["port", "x", "--default"],
            "maestro-guest: option --default needs a value N\nusage: maestro-guest port NAME [--default N]\n",
        ),
        usage(
            &["nodes", "zk", "--min", "-1"],
            "maestro-guest: invalid value '-1' for --min: expected a non-negative integer\n\
             usage: maestro-guest nodes SERVICE [--port NAME]... [--min N] [--format lines|csv|json]\n",
        ),
        usage(
            &["nodes", "zk", "--min", "many"],
            "maestro-guest: invalid value 'many' for --min: expected a non-negative integer\n\
             usage: maestro-guest nodes SERVICE [--port NAME]... [--min N] [--format lines|csv|json]\n",
        ),
        usage(
            &["nodes", "zk", "--format", "xml"],
            "maestro-guest: invalid value 'xml' for --format: expected one of lines, csv, json\n\
             usage: maestro-guest nodes SERVICE [--port NAME]... [--min N] [--format lines|csv|json]\n",
        ),
        usage(
            &["nodes", "zk", "--format", "csv", "--format", "json"],
            "maestro-guest: option --format given more than once\n\
             usage: maestro-guest nodes SERVICE [--port NAME]... [--min N] [--format lines|csv|json]\n",
        ),
        usage(
            &["nodes", "zk", "-p", "client"],
            "maestro-guest: unknown option '-p'\n\
             usage: maestro-guest nodes SERVICE [--port NAME]... [--min N] [--format lines|csv|json]\n",
        ),
        usage(
            &["host-address", "--ip=yes"],
            "maestro-guest: option --ip takes no value\nusage: maestro-guest host-address [--ip]\n",
        ),
        usage(
            &["run", "--grace", "604801", "--", "true"],
            "maestro-guest: invalid --grace 604801: at most 604800 seconds (a week)\n\
             usage: maestro-guest run [--render SRC[:DST[:MODE]]]... [--ready-when PROBE] [--wait service:NAME]... \
             [--wait-timeout SECONDS] [--ready-timeout SECONDS] [--grace SECONDS] [--] COMMAND...\n",
        ),
        usage(
            &["env-name", "--port", "x"],
            "maestro-guest: unknown option '--port'\nusage: maestro-guest env-name\n",
        ),
    ]
}

fn run(args: &[&OsStr], vars: &[(&OsStr, &OsStr)]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("maestro-guest runs")
}

#[test]
fn command_table() {
    let mut failures = Vec::new();
    let cases = cases();
    for case in &cases {
        let args: Vec<&OsStr> = case.args.iter().map(OsStr::new).collect();
        let vars: Vec<(&OsStr, &OsStr)> = case
            .vars
            .iter()
            .flat_map(|v| v.iter())
            .map(|(k, v)| (OsStr::new(k), OsStr::new(v)))
            .collect();
        let out = run(&args, &vars);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        let code = out.status.code();
        if code != Some(case.code) || !case.stdout.matches(&stdout) || !case.stderr.matches(&stderr)
        {
            failures.push(format!(
                "maestro-guest {:?}\n  want: exit {} stdout {} stderr {}\n  got:  exit {:?} stdout {:?} stderr {:?}",
                case.args,
                case.code,
                case.stdout.show(),
                case.stderr.show(),
                code,
                stdout,
                stderr
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn a_value_that_is_not_utf8_is_unset() {
    let out = run(
        &[OsStr::new("service")],
        &[(OsStr::new("SERVICE_NAME"), OsStr::from_bytes(b"k\xffa"))],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "maestro-guest: Service name was not defined\n"
    );
}

#[test]
fn an_argument_that_is_not_utf8_is_a_usage_error() {
    let out = run(
        &[
            OsStr::new("host"),
            OsStr::new("zk"),
            OsStr::from_bytes(b"zk\xff"),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "maestro-guest: arguments must be valid UTF-8\nusage: maestro-guest COMMAND [ARGS]... (see 'maestro-guest --help')\n"
    );
}

#[test]
fn an_unwritable_stdout_is_reported_not_a_crash() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let out = Command::new(BIN)
        .arg("env-name")
        .env_clear()
        .stdout(full)
        .stderr(Stdio::piped())
        .output()
        .expect("maestro-guest runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("maestro-guest: cannot write to standard output: "),
        "{out:?}"
    );
}

/// Runs `script` with `sh` in new namespaces (`unshare FLAGS`), where this test alone
/// decides what exists. That needs root and util-linux's `unshare` (with iproute2's `ip`
/// for network namespaces), which CI has: without them the test fails, it never passes
/// unchecked. The script exits 77 when its setup fails.
fn unshared(flags: &str, script: &str) -> Output {
    let got = Command::new("unshare")
        .args([flags, "sh", "-c", script])
        .stdin(Stdio::null())
        .output()
        .expect("unshare runs (util-linux; the tests run as root)");
    assert_ne!(
        got.status.code(),
        Some(77),
        "the namespace could not be set up (needs root, unshare, mount and ip): {got:?}"
    );
    got
}

/// The default interface is eth0, and its first IPv4 address is the answer: in a new
/// network namespace, where the interfaces are the case's.
#[test]
fn default_interface_is_eth0() {
    const VETH: &str = "ip link add eth0 type veth peer name peer0 && ip link set eth0 up";
    let cases: &[(&str, &str, i32, &str, &str)] = &[
        ("", "", 1, "", "maestro-guest: No network interface eth0\n"),
        (
            VETH,
            "",
            1,
            "",
            "maestro-guest: No IPv4 address on network interface eth0\n",
        ),
        (
            VETH,
            "ip addr add 198.51.100.9/24 dev eth0 && ip addr add 192.0.2.7/24 dev eth0 && \
             ip addr add 203.0.113.5/24 dev peer0 && ip link set peer0 up",
            0,
            "192.0.2.7\n",
            "",
        ),
    ];
    for (link, addresses, code, stdout, stderr) in cases {
        let setup = [*link, *addresses]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" && ");
        let setup = if setup.is_empty() {
            "true".to_owned()
        } else {
            setup
        };
        let got = unshared(
            "-n",
            &format!("{{ {setup}; }} >&2 || exit 77; exec env -i {BIN} internal-address"),
        );
        assert_eq!(
            (
                got.status.code(),
                String::from_utf8_lossy(&got.stdout).as_ref(),
                String::from_utf8_lossy(&got.stderr).as_ref()
            ),
            (Some(*code), *stdout, *stderr),
            "{setup}"
        );
    }
}

/// A temporary folder for one test, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("maestro-guest-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temporary folder");
        Self(path)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `render` writes its files quietly (nothing on stdout or stderr), and one failing
/// template leaves every file as it was.
#[test]
fn render_writes_files_all_or_nothing() {
    let dir = Scratch::new("render");
    let (src, out) = (dir.path("app.conf.j2"), dir.path("app.conf"));
    std::fs::write(&src, "name={{ service() }}\nsecret={{ PASS }}\n").expect("template");
    std::fs::write(dir.path("pass"), "s3cret\n").expect("secret");
    let pass = dir.path("pass");
    let vars = [("SERVICE_NAME", "kafka"), ("PASS_FILE", pass.as_str())];
    let vars: Vec<(&OsStr, &OsStr)> = vars
        .iter()
        .map(|(k, v)| (OsStr::new(k), OsStr::new(v)))
        .collect();

    let out_spec = format!("{src}:{out}:0600");
    let got = run(&[OsStr::new("render"), OsStr::new(&out_spec)], &vars);
    assert_eq!(
        (
            got.status.code(),
            got.stdout.as_slice(),
            got.stderr.as_slice()
        ),
        (Some(0), &b""[..], &b""[..]),
        "{got:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&out).expect("written"),
        "name=kafka\nsecret=s3cret\n"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&out)
        .expect("written")
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o600);

    // With SERVICE_NAME unset, the second template fails: the first file is not rewritten.
    let other = dir.path("other");
    let other_spec = format!("{src}:{other}");
    let both = [
        OsStr::new("render"),
        OsStr::new(&src),
        OsStr::new(&other_spec),
    ];
    let got = run(&both, &vars[1..]);
    assert_eq!(got.status.code(), Some(1), "{got:?}");
    assert_eq!(
        String::from_utf8_lossy(&got.stderr),
        format!(
            "maestro-guest: {src}:1: Service name was not defined\n{src}:1: Service name was not defined\nno file was written\n"
        )
    );
    assert_eq!(
        std::fs::read_to_string(&out).expect("kept"),
        "name=kafka\nsecret=s3cret\n"
    );
    assert!(!std::path::Path::new(&other).exists());
}

/// A bind-mounted file cannot be renamed over (EBUSY): it is rewritten in place, and
/// nothing is staged for it. A read-only one is refused before any file is written.
#[test]
fn render_rewrites_a_bind_mounted_file_in_place() {
    let dir = Scratch::new("bind");
    let (src, host, mounted) = (dir.path("t.j2"), dir.path("host"), dir.path("mounted"));
    let other = dir.path("other");
    std::fs::write(&src, "value={{ VALUE }}\n").expect("template");
    std::fs::write(&host, "old\n").expect("host file");
    std::fs::write(&mounted, "placeholder\n").expect("mount point");
    std::fs::write(&other, "old\n").expect("other file");
    let inode = |path: &str| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).expect("metadata").ino()
    };
    let host_inode = inode(&host);
    let names = || {
        let mut names: Vec<String> = std::fs::read_dir(&dir.0)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };

    let got = unshared(
        "-m",
        &format!(
            "mount --bind {host} {mounted} || exit 77; VALUE=new exec {BIN} render {src}:{mounted}"
        ),
    );
    assert_eq!(got.status.code(), Some(0), "{got:?}");
    assert_eq!(
        std::fs::read_to_string(&host).expect("host file"),
        "value=new\n"
    );
    assert_eq!(inode(&host), host_inode, "written in place");
    assert_eq!(
        names(),
        ["host", "mounted", "other", "t.j2"],
        "no temporary file is left"
    );

    // Read-only: refused while checking, so the other file is not replaced either.
    let got = unshared(
        "-m",
        &format!(
            "{{ mount --bind {host} {mounted} && mount -o remount,ro,bind {mounted}; }} || exit 77; \
             VALUE=newer exec {BIN} render {src}:{other} {src}:{mounted}"
        ),
    );
    assert_eq!(
        (
            got.status.code(),
            String::from_utf8_lossy(&got.stderr).as_ref()
        ),
        (
            Some(1),
            format!(
                "maestro-guest: cannot write {mounted}: Read-only file system (os error 30)\n\
                 no file was written\n"
            )
            .as_str()
        ),
        "{got:?}"
    );
    assert_eq!(std::fs::read_to_string(&other).expect("other"), "old\n");
    assert_eq!(std::fs::read_to_string(&host).expect("host"), "value=new\n");
    assert_eq!(names(), ["host", "mounted", "other", "t.j2"]);
}

/// Fails the test unless it runs as root (CI does): it needs to make files of other users.
fn require_root(dir: &Scratch) {
    use std::os::unix::fs::MetadataExt;
    let probe = dir.path(".root");
    std::fs::write(&probe, "").expect("probe file");
    let uid = std::fs::metadata(&probe).expect("probe").uid();
    std::fs::remove_file(&probe).expect("probe removed");
    assert_eq!(uid, 0, "this test needs root (CI runs the tests as root)");
}

/// A user who may write a file but not give a new one its owner (a root-owned,
/// group-writable file) gets an error naming the file: rewriting it in place instead
/// would leave it half written if the guest were killed meanwhile.
#[test]
fn render_does_not_change_a_files_owner_nor_rewrite_it_in_place() {
    use std::os::unix::fs::{PermissionsExt, chown};
    let dir = Scratch::new("owner");
    require_root(&dir);
    const NOBODY: u32 = 65534;
    let (src, conf) = (dir.path("t.j2"), dir.path("conf"));
    std::fs::write(&src, "value={{ VALUE }}\n").expect("template");
    std::fs::write(&conf, "old\n").expect("file");
    chown(&conf, Some(0), Some(NOBODY)).expect("chown");
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o664)).expect("chmod");
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).expect("chmod");

    let got = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
            "render",
        ])
        .arg(format!("{src}:{conf}"))
        .env_clear()
        .env("VALUE", "new")
        .stdin(Stdio::null())
        .output()
        .expect("setpriv runs (util-linux)");
    assert_eq!(
        (
            got.status.code(),
            String::from_utf8_lossy(&got.stderr).as_ref()
        ),
        (
            Some(1),
            format!(
                "maestro-guest: cannot write {conf}: cannot give the new file the owner of the \
                 old one (uid 0, gid {NOBODY}): Operation not permitted (os error 1)\n"
            )
            .as_str()
        ),
        "{got:?}"
    );
    assert_eq!(std::fs::read_to_string(&conf).expect("conf"), "old\n");
    let mut names: Vec<String> = std::fs::read_dir(&dir.0)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["conf", "t.j2"], "no temporary file is left");
}
