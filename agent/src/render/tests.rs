//! Table-driven tests of the template context and functions, the spec grammar, and the
//! all-or-nothing writes (each in its own temporary folder).

use std::fs::Permissions;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use std::fs::File;
use std::io;

use super::files::{open_target, refused_rename, staging_prefix, write_in_place};
use super::*;

/// Part of what MaestroNG gives `kafka-2` in its zookeeper+kafka example.
const KAFKA_2: &[(&str, &str)] = &[
    ("MAESTRO_ENVIRONMENT_NAME", "zk-kafka"),
    ("SERVICE_NAME", "kafka"),
    ("CONTAINER_NAME", "kafka-2"),
    ("CONTAINER_HOST_ADDRESS", "192.168.10.2"),
    ("KAFKA_INSTANCES", "kafka-1,kafka-2,kafka-3"),
    ("KAFKA_KAFKA_2_HOST", "192.168.10.2"),
    ("KAFKA_KAFKA_2_BROKER_PORT", "9093"),
    ("KAFKA_KAFKA_2_BROKER_INTERNAL_PORT", "9093"),
    ("ZOOKEEPER_INSTANCES", "zk-node-1,zk-node-2,zk-node-3"),
    ("ZOOKEEPER_ZK_NODE_1_HOST", "192.168.10.2"),
    ("ZOOKEEPER_ZK_NODE_1_CLIENT_PORT", "2181"),
    ("ZOOKEEPER_ZK_NODE_1_PEER_PORT", "2888"),
    ("ZOOKEEPER_ZK_NODE_2_HOST", "192.168.10.3"),
    ("ZOOKEEPER_ZK_NODE_2_CLIENT_PORT", "2182"),
    ("ZOOKEEPER_ZK_NODE_2_PEER_PORT", "2889"),
    ("ZOOKEEPER_ZK_NODE_3_HOST", "192.168.10.4"),
    ("ZOOKEEPER_ZK_NODE_3_CLIENT_PORT", "2183"),
    ("ZOOKEEPER_ZK_NODE_3_PEER_PORT", "2890"),
    ("FOO", "bar"),
    ("EMPTY", ""),
    ("LIST", "a,b,c"),
    ("service", "a variable"),
];

fn process_env(pairs: &[(&str, &str)]) -> ProcessEnv {
    ProcessEnv::from_pairs(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    )
}

fn render_text(pairs: &[(&str, &str)], source: &str) -> Result<String, String> {
    Engine::new(&process_env(pairs))?.render("t.j2", source)
}

#[test]
fn context_and_functions() {
    let cases: &[(&str, &str)] = &[
        // Variables.
        ("{{ env.FOO }}|{{ FOO }}|{{ env['FOO'] }}", "bar|bar|bar"),
        ("{{ env.NOPE | default('x') }}", "x"),
        ("{{ env.get('NOPE', 'y') }}|{{ env.get('FOO') }}", "y|bar"),
        ("{{ 'yes' if env.NOPE is defined else 'no' }}", "no"),
        ("{{ LIST.split(',') | join(' ') }}", "a b c"),
        ("{{ FOO.upper() }} {{ ' x '.strip() }}", "BAR x"),
        ("[{{ EMPTY }}]", "[]"),
        ("{{ env | length > 10 }} {{ FOO == 'bar' }}", "True True"),
        (
            "{% for k, v in env.items() if k.startswith('ZOOKEEPER_ZK_NODE_1') %}{{ k }} {% endfor %}",
            "ZOOKEEPER_ZK_NODE_1_CLIENT_PORT ZOOKEEPER_ZK_NODE_1_HOST ZOOKEEPER_ZK_NODE_1_PEER_PORT ",
        ),
        // A function wins over a variable of its name; env.NAME reaches the variable.
        ("{{ service() }} / {{ env.service }}", "kafka / a variable"),
        // A configuration file keeps its last newline; nothing is escaped.
        ("line\n", "line\n"),
        ("{{ '<a & b>' }}", "<a & b>"),
        ("{{ {'a': [1, 'x']} | tojson }}", "{\"a\": [1, \"x\"]}"),
        ("{{ 'p@ss word' | urlencode }}", "p%40ss%20word"),
        // Identity.
        (
            "{{ env_name() }} {{ service() }} {{ container() }} {{ host_address() }}",
            "zk-kafka kafka kafka-2 192.168.10.2",
        ),
        ("{{ host_address(ip=true) }}", "192.168.10.2"),
        (
            "{{ internal_address('lo') }} {{ internal_address(interface='lo') }}",
            "127.0.0.1 127.0.0.1",
        ),
        // Ports.
        ("{{ port('broker') }} {{ port('broker') + 1 }}", "9093 9094"),
        (
            "{{ port('missing', 7) }} {{ port('missing', default='0_8') }}",
            "7 8",
        ),
        (
            "{{ port('missing', default=1.9) }} {{ port('missing', true) }}",
            "1 1",
        ),
        ("{{ host('zookeeper', 'zk-node-2') }}", "192.168.10.3"),
        (
            "{{ specific_port('zookeeper', 'zk-node-2', 'client') }} {{ specific_port('zookeeper', 'zk-node-2', 'admin', 12) }}",
            "2182 12",
        ),
        (
            "{{ exposed_port('kafka', 'kafka-2', 'broker') }} {{ exposed_port('zookeeper', 'zk-node-1', 'client', default=2181) }}",
            "9093 2181",
        ),
        // Node lists, as `nodes`.
        (
            "{{ nodes('zookeeper', ports=['client']) | join(',') }}",
            "192.168.10.2:2181,192.168.10.3:2182,192.168.10.4:2183",
        ),
        (
            "{{ nodes('zookeeper', ['client', 'peer'])[0] }} {{ nodes('zookeeper', ports='peer')[2] }}",
            "192.168.10.2:2181:2888 192.168.10.4:2890",
        ),
        (
            "{{ nodes('zookeeper') }}",
            "['192.168.10.2', '192.168.10.3', '192.168.10.4']",
        ),
        (
            "{{ nodes('nothing', min=0) }} {{ nodes('nothing', [], 0) }} {{ nodes('nothing', minimum=0) }}",
            "[] [] []",
        ),
        ("{{ nodes('zookeeper', min=3) | length }}", "3"),
        (
            "{% for i in instances('zookeeper', ports=['client', 'peer']) %}server.{{ loop.index }}={{ i.host }}:{{ i.ports.peer }}:{{ i.ports['client'] }} # {{ i.name }}\n{% endfor %}",
            "server.1=192.168.10.2:2888:2181 # zk-node-1\nserver.2=192.168.10.3:2889:2182 # zk-node-2\nserver.3=192.168.10.4:2890:2183 # zk-node-3\n",
        ),
        (
            "{{ instances('zookeeper') | map(attribute='name') | join(' ') }}",
            "zk-node-1 zk-node-2 zk-node-3",
        ),
        (
            "{{ instances('zookeeper')[0] }}",
            "{'host': '192.168.10.2', 'name': 'zk-node-1', 'ports': {}}",
        ),
        ("{{ instances('nothing', min=0) }}", "[]"),
        // required: the value itself.
        (
            "{{ env.FOO | required }} {{ required(FOO, 'needed') }} {{ required(0) }}",
            "bar bar 0",
        ),
    ];
    let mut failures = Vec::new();
    for (source, want) in cases {
        let got = render_text(KAFKA_2, source);
        if got.as_deref() != Ok(*want) {
            failures.push(format!("{source:?}\n  want {want:?}\n  got  {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn errors_name_the_template_and_the_line() {
    let cases: &[(&str, &str)] = &[
        ("a\n{{ NOPE }}", "t.j2:2: `NOPE` is undefined"),
        ("a\nb\n{{ env.NOPE }}", "t.j2:3: `env.NOPE` is undefined"),
        (
            "{% for x in NOPE %}{% endfor %}",
            "t.j2:1: `NOPE` is undefined",
        ),
        (
            "{% if env.NOPE %}{% endif %}",
            "t.j2:1: `env.NOPE` is undefined",
        ),
        ("{{ 'a' ~ env.NOPE }}", "t.j2:1: `env.NOPE` is undefined"),
        ("{{ port(env.NOPE) }}", "t.j2:1: `env.NOPE` is undefined"),
        ("{{ NOPE.split(',') }}", "t.j2:1: `NOPE` is undefined"),
        (
            "{{ FOO.frobnicate() }}",
            "t.j2:1: unknown method: string has no method named frobnicate",
        ),
        // Discovery: the commands' messages.
        (
            "\n{{ port('missing') }}",
            "t.j2:2: No internal port missing defined for container kafka-2 of service kafka",
        ),
        (
            "{{ host('zookeeper', 'zk-node-9') }}",
            "t.j2:1: No host defined for container zk-node-9 of service zookeeper",
        ),
        (
            "{{ specific_port('zookeeper', 'zk-node-2', 'admin') }}",
            "t.j2:1: No port admin defined for container zk-node-2 of service zookeeper",
        ),
        (
            "{{ exposed_port('zookeeper', 'zk-node-2', 'client') }}",
            "t.j2:1: No internal port client defined for container zk-node-2 of service zookeeper",
        ),
        (
            "{{ nodes('zookeeper', min=4) }}",
            "t.j2:1: No or not enough zookeeper nodes configured",
        ),
        (
            "{{ nodes('nothing') }}",
            "t.j2:1: No or not enough nothing nodes configured",
        ),
        (
            "{{ nodes('zookeeper', ports=['admin']) }}",
            "t.j2:1: No port admin defined for container zk-node-1 of service zookeeper",
        ),
        (
            "{{ instances('zookeeper', ports=['admin']) }}",
            "t.j2:1: No port admin defined for container zk-node-1 of service zookeeper",
        ),
        (
            "{{ instances('nothing') }}",
            "t.j2:1: No or not enough nothing nodes configured",
        ),
        (
            "{{ internal_address('no-such-if0') }}",
            "t.j2:1: No network interface no-such-if0",
        ),
        // Arguments.
        (
            "{{ nodes('zookeeper', ports=3) }}",
            "t.j2:1: ports must be a list of port names, not number",
        ),
        (
            "{{ nodes('zookeeper', min=-1) }}",
            "t.j2:1: min must be a non-negative integer, not -1",
        ),
        (
            "{{ nodes('zookeeper', min=1, minimum=1) }}",
            "t.j2:1: give min or minimum, not both",
        ),
        (
            "{{ port('broker', 1, default=2) }}",
            "t.j2:1: too many arguments: default given twice",
        ),
        (
            "{{ port('broker', fallback=2) }}",
            "t.j2:1: too many arguments: unknown keyword argument 'fallback'",
        ),
        (
            "{{ port('missing', default=[1]) }}",
            "t.j2:1: default must be a number or a string, not sequence",
        ),
        // required.
        (
            "x\n{{ required(env.NOPE) }}",
            "t.j2:2: required: `env.NOPE` is undefined",
        ),
        (
            "{{ NOPE | required }}",
            "t.j2:1: required: `NOPE` is undefined",
        ),
        (
            "{{ env.NOPE | required('set NOPE to the database URL') }}",
            "t.j2:1: required: set NOPE to the database URL",
        ),
        (
            "{{ EMPTY | required }}",
            "t.j2:1: required: the value is empty",
        ),
        (
            "{{ required(none) }}",
            "t.j2:1: required: the value is none",
        ),
        // As MaestroNG's int(None): no default.
        (
            "{{ port('missing', default=none) }}",
            "t.j2:1: No internal port missing defined for container kafka-2 of service kafka",
        ),
        (
            "{{ instances('kafka') }}",
            "t.j2:1: No host defined for container kafka-1 of service kafka",
        ),
        ("{{ required([]) }}", "t.j2:1: required: the value is empty"),
        // The engine's own errors keep their kind.
        (
            "\n{{ 1 + }}",
            "t.j2:2: syntax error: unexpected end of variable block",
        ),
        (
            "{{ frobnicate() }}",
            "t.j2:1: unknown function: frobnicate is unknown",
        ),
        (
            "{{ FOO | frobnicate }}",
            "t.j2:1: unknown filter: filter frobnicate is unknown",
        ),
    ];
    let mut failures = Vec::new();
    for (source, want) in cases {
        let got = render_text(KAFKA_2, source);
        if got.as_ref().map_err(String::as_str) != Err(*want) {
            failures.push(format!("{source:?}\n  want Err({want:?})\n  got  {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The identity functions fail with the commands' messages when their variable is unset.
#[test]
fn identity_errors() {
    let cases: &[(&str, &str)] = &[
        ("{{ env_name() }}", "Ok(\"local\")"),
        (
            "{{ service() }}",
            "Err(\"t.j2:1: Service name was not defined\")",
        ),
        (
            "{{ container() }}",
            "Err(\"t.j2:1: Container name was not defined\")",
        ),
        (
            "{{ host_address(ip=true) }}",
            "Err(\"t.j2:1: Container host address was not defined\")",
        ),
        (
            "{{ port('x') }}",
            "Err(\"t.j2:1: Service name was not defined\")",
        ),
        (
            "{{ port('x', default=none) }}",
            "Err(\"t.j2:1: Service name was not defined\")",
        ),
    ];
    for (source, want) in cases {
        assert_eq!(format!("{:?}", render_text(&[], source)), *want, "{source}");
    }
}

/// A temporary folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "maestro-guest-render-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("temporary folder");
        Self(path)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.path(name);
        fs::write(&path, text).expect("write");
        path
    }

    fn read(&self, name: &str) -> String {
        fs::read_to_string(self.path(name)).expect("read")
    }

    /// Every entry of the folder, sorted (temporary files would show here).
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.0)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn secrets_from_files() {
    let dir = TempDir::new();
    let pass = dir.write("pass", "s3cret\n");
    let crlf = dir.write("crlf", "windows\r\n");
    let two = dir.write("two", "two\n\n");
    let set = dir.write("set", "from the file");
    let missing = dir.path("missing");
    let vars = [
        ("PASS_FILE", pass.as_str()),
        ("CRLF_FILE", crlf.as_str()),
        ("TWO_FILE", two.as_str()),
        ("SET_FILE", set.as_str()),
        ("SET", "from the variable"),
        ("GONE_FILE", missing.as_str()),
        ("_FILE", pass.as_str()),
    ];
    let cases: &[(&str, Result<&str, String>)] = &[
        (
            "{{ PASS }}|{{ env.PASS }}|{{ env.get('PASS') }}",
            Ok("s3cret|s3cret|s3cret"),
        ),
        ("[{{ CRLF }}]", Ok("[windows]")),
        ("[{{ TWO }}]", Ok("[two\n]")),
        ("{{ SET }}", Ok("from the variable")),
        ("{{ PASS_FILE == env.PASS_FILE }}", Ok("True")),
        (
            "{{ PASS is defined }} {{ PASS | required }}",
            Ok("True s3cret"),
        ),
        // Listed only when the file is a regular file; an unused unreadable one is no error.
        (
            "{{ env | list | join(' ') }}",
            Ok("CRLF CRLF_FILE GONE_FILE PASS PASS_FILE SET SET_FILE TWO TWO_FILE _FILE"),
        ),
        (
            "ok\n{{ GONE }}",
            Err(format!(
                "t.j2:2: cannot read GONE from GONE_FILE ({missing}): No such file or directory (os error 2)"
            )),
        ),
        (
            "{{ env.GONE | default('d') }}",
            Err(format!(
                "t.j2:1: cannot read GONE from GONE_FILE ({missing}): No such file or directory (os error 2)"
            )),
        ),
    ];
    for (source, want) in cases {
        let got = render_text(&vars, source);
        let want = want.as_deref().map_err(String::as_str);
        assert_eq!(got.as_deref().map_err(String::as_str), want, "{source}");
    }
}

#[test]
fn spec_grammar() {
    let file = |src: &str, dst: &str, mode: Option<u32>| {
        Ok(RenderSpec {
            src: src.to_owned(),
            dst: Destination::File(PathBuf::from(dst)),
            mode,
        })
    };
    let cases: Vec<(&str, Result<RenderSpec, &str>)> = vec![
        ("app.conf.j2", file("app.conf.j2", "app.conf", None)),
        (
            "etc/app.conf.tmpl",
            file("etc/app.conf.tmpl", "etc/app.conf", None),
        ),
        ("/t/x.tpl::0600", file("/t/x.tpl", "/t/x", Some(0o600))),
        ("a.j2:/etc/b", file("a.j2", "/etc/b", None)),
        ("a:b:640", file("a", "b", Some(0o640))),
        ("a:b:0o4755", file("a", "b", Some(0o4755))),
        (
            "a.j2:-",
            Ok(RenderSpec {
                src: "a.j2".to_owned(),
                dst: Destination::Stdout,
                mode: None,
            }),
        ),
        (
            "app.conf",
            Err(
                "cannot tell where to write 'app.conf': it does not end in .j2, .tmpl or .tpl; \
                 give a destination (app.conf:DST)",
            ),
        ),
        (
            "dir/.j2",
            Err(
                "cannot tell where to write 'dir/.j2': its name is nothing but the suffix; \
                 give a destination (dir/.j2:DST)",
            ),
        ),
        ("", Err("invalid template spec '': no template")),
        (":b", Err("invalid template spec ':b': no template")),
        (
            "a:b:c:d",
            Err("invalid template spec 'a:b:c:d': expected SRC[:DST[:MODE]]"),
        ),
        (
            "a.j2:b:999",
            Err("invalid mode '999' in 'a.j2:b:999': expected octal permissions such as 0644"),
        ),
        (
            "a.j2:b:",
            Err("invalid mode '' in 'a.j2:b:': expected octal permissions such as 0644"),
        ),
        (
            "a.j2:b:17777",
            Err("invalid mode '17777' in 'a.j2:b:17777': expected octal permissions such as 0644"),
        ),
        (
            "a.j2:b:+644",
            Err("invalid mode '+644' in 'a.j2:b:+644': expected octal permissions such as 0644"),
        ),
        (
            "a.j2:-:0644",
            Err("invalid template spec 'a.j2:-:0644': standard output has no mode"),
        ),
    ];
    for (spec, want) in cases {
        assert_eq!(
            RenderSpec::parse(spec),
            want.map_err(str::to_owned),
            "{spec}"
        );
    }
    let specs = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        parse_specs(&specs(&["a.j2:out", "b.j2:out"])),
        Err("out is the destination of both a.j2 and b.j2".to_owned())
    );
    assert_eq!(
        parse_specs(&specs(&["a.j2:-", "b.j2:-", "c.j2"])).map(|s| s.len()),
        Ok(3)
    );
}

fn render<S: AsRef<str>>(specs: &[S], pairs: &[(&str, &str)]) -> Result<Vec<Change>, String> {
    let specs: Vec<String> = specs.iter().map(|s| s.as_ref().to_owned()).collect();
    render_all(&specs, &process_env(pairs)).map(|all| all.into_iter().map(|r| r.change).collect())
}

fn mode_of(path: &str) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o7777
}

const AN_HOUR_AGO: Duration = Duration::from_secs(3600);

fn set_age(path: &str, age: Duration) {
    let file = File::options().write(true).open(path).expect("open");
    file.set_modified(SystemTime::now() - age)
        .expect("set mtime");
}

#[test]
fn writes_new_files_and_leaves_identical_ones_alone() {
    let dir = TempDir::new();
    let src = dir.write("app.conf.j2", "foo={{ FOO }}\n");
    let out = dir.path("app.conf");
    let vars = &[("FOO", "bar")];

    assert_eq!(render(&[&src], vars), Ok(vec![Change::Written]));
    assert_eq!(dir.read("app.conf"), "foo=bar\n");
    assert_eq!(mode_of(&out), 0o644);
    assert_eq!(dir.names(), ["app.conf", "app.conf.j2"]);

    // Same content: not rewritten (same inode, same mtime).
    set_age(&out, AN_HOUR_AGO);
    let before = fs::metadata(&out).expect("metadata");
    assert_eq!(render(&[&src], vars), Ok(vec![Change::Unchanged]));
    let after = fs::metadata(&out).expect("metadata");
    assert_eq!(
        (after.ino(), after.modified().ok()),
        (before.ino(), before.modified().ok())
    );

    // Same content, another mode: only the mode changes.
    let spec = format!("{src}:{out}:0600");
    assert_eq!(render(&[spec], vars), Ok(vec![Change::ModeChanged]));
    assert_eq!(mode_of(&out), 0o600);
    assert_eq!(
        fs::metadata(&out).expect("metadata").modified().ok(),
        before.modified().ok()
    );

    // New content: replaced, and the existing mode is kept.
    assert_eq!(
        render(&[&src], &[("FOO", "baz")]),
        Ok(vec![Change::Written])
    );
    assert_eq!(dir.read("app.conf"), "foo=baz\n");
    assert_eq!(mode_of(&out), 0o600);
    assert_eq!(dir.names(), ["app.conf", "app.conf.j2"]);

    // An explicit mode for a new file.
    let spec = format!("{src}:{}:0640", dir.path("other"));
    assert_eq!(render(&[spec], vars), Ok(vec![Change::Written]));
    assert_eq!(mode_of(&dir.path("other")), 0o640);
}

#[test]
fn stdout_is_returned_not_written() {
    let dir = TempDir::new();
    let src = dir.write("a.j2", "{{ FOO }}\n");
    let both = [format!("{src}:-"), format!("{src}:-")];
    assert_eq!(
        render(&both, &[("FOO", "bar")]),
        Ok(vec![
            Change::Stdout("bar\n".to_owned()),
            Change::Stdout("bar\n".to_owned())
        ])
    );
    assert_eq!(dir.names(), ["a.j2"]);
}

#[test]
fn one_failure_writes_nothing() {
    let dir = TempDir::new();
    let good = dir.write("good.j2", "new {{ FOO }}\n");
    let bad = dir.write("bad.j2", "fine\n{{ NOPE }}\n");
    let worse = dir.write("worse.j2", "{{ port('x') }}");
    dir.write("good", "old\n");
    let specs = [good.clone(), bad.clone(), worse.clone()];
    assert_eq!(
        render(&specs, &[("FOO", "bar")]),
        Err(format!(
            "{bad}:2: `NOPE` is undefined\n{worse}:1: Service name was not defined\nno file was written"
        ))
    );
    assert_eq!(dir.read("good"), "old\n");

    // Staging fails for the second file (no such folder): the first is not written either,
    // and no temporary file is left behind.
    let specs = [good.clone(), format!("{good}:{}", dir.path("nope/good"))];
    let got = render(&specs, &[("FOO", "bar")]);
    let want = format!(
        "cannot write {}: No such file or directory",
        dir.path("nope/good")
    );
    assert!(
        got.as_ref()
            .is_err_and(|e| e.starts_with(&want) && e.ends_with("\nno file was written")),
        "{got:?}"
    );
    assert_eq!(dir.read("good"), "old\n");
    assert_eq!(dir.names(), ["bad.j2", "good", "good.j2", "worse.j2"]);

    // A template that cannot be read.
    let missing = dir.path("missing.j2");
    assert_eq!(
        render(&[&missing], &[]),
        Err(format!(
            "cannot read template {missing}: No such file or directory (os error 2)"
        ))
    );
}

/// Runs `f` on another thread and fails the test if it takes more than 10 seconds (the
/// thread is left blocked; the test process ends anyway).
fn within_10s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("finished within 10 seconds (it hung)")
}

fn mkfifo(path: &str) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo {path}");
}

/// A symbolic link is followed: the link stays, its target gets the content.
#[test]
fn a_link_is_followed() {
    let dir = TempDir::new();
    let src = dir.write("a.j2", "{{ FOO }}\n");
    dir.write("target", "old\n");
    std::os::unix::fs::symlink(dir.path("target"), dir.path("link")).expect("symlink");
    assert_eq!(
        render(&[format!("{src}:{}", dir.path("link"))], &[("FOO", "bar")]),
        Ok(vec![Change::Written])
    );
    assert!(
        fs::symlink_metadata(dir.path("link"))
            .expect("link")
            .file_type()
            .is_symlink()
    );
    assert_eq!(dir.read("target"), "bar\n");
}

/// Anything but a regular file (or a missing one) is refused before any file is written:
/// a device (`/dev/full` fails only when written, after the other files were replaced)
/// or a FIFO (whose open waits for a reader forever) would leave the others half done.
#[test]
fn only_regular_files_are_destinations() {
    let dir = TempDir::new();
    let src = dir.write("a.j2", "{{ FOO }}\n");
    dir.write("good", "old\n");
    fs::create_dir(dir.path("folder")).expect("mkdir");
    mkfifo(&dir.path("fifo"));
    let _socket = std::os::unix::net::UnixListener::bind(dir.path("socket")).expect("socket");
    std::os::unix::fs::symlink("/dev/full", dir.path("to-device")).expect("symlink");
    let before = dir.names();
    let cases = [
        (
            "/dev/full".to_owned(),
            "/dev/full: it is a character device",
        ),
        (
            dir.path("to-device"),
            "(a link to /dev/full): it is a character device",
        ),
        (dir.path("fifo"), "fifo: it is a FIFO"),
        (dir.path("socket"), "socket: it is a socket"),
        (dir.path("folder"), "folder: it is a directory"),
    ];
    for (dst, what) in cases {
        let specs = [
            format!("{src}:{}", dir.path("good")),
            format!("{src}:{dst}"),
        ];
        let got = within_10s(move || render(&specs, &[("FOO", "bar")]));
        let want = format!("cannot write {dst}");
        assert!(
            got.as_ref().is_err_and(|e| e.starts_with(&want)
                && e.contains(what)
                && e.contains("not a regular file")
                && e.ends_with("\nno file was written")),
            "{dst}: {got:?}"
        );
        assert_eq!(dir.read("good"), "old\n", "{dst}");
        assert_eq!(dir.names(), before, "{dst}: nothing staged is left");
    }
}

/// A template or a secret is read only from a regular file, without waiting (a FIFO
/// without a writer) and up to 16 MiB (not /dev/urandom's endless bytes).
#[test]
fn only_regular_files_of_bounded_size_are_read() {
    let dir = TempDir::new();
    mkfifo(&dir.path("fifo.j2"));
    let big = dir.path("big.j2");
    File::create(&big)
        .and_then(|f| f.set_len(16 * 1024 * 1024 + 1))
        .expect("sparse file");
    let just = dir.path("just.j2");
    File::create(&just)
        .and_then(|f| f.set_len(16 * 1024 * 1024))
        .expect("sparse file");
    let out = dir.path("out");
    let fifo = dir.path("fifo.j2");
    let cases = [
        (
            fifo.clone(),
            format!("cannot read template {fifo}: it is a FIFO, not a regular file"),
        ),
        (
            "/dev/urandom".to_owned(),
            "cannot read template /dev/urandom: it is a character device, not a regular file"
                .to_owned(),
        ),
        (
            big.clone(),
            format!("cannot read template {big}: it is larger than 16 MiB"),
        ),
    ];
    for (src, want) in cases {
        let specs = [format!("{src}:{out}")];
        let got = within_10s(move || render(&specs, &[]));
        assert_eq!(got, Err(want), "{src}");
    }
    // 16 MiB is still read (NUL bytes are text).
    let specs = [format!("{just}:{out}")];
    assert_eq!(
        within_10s(move || render(&specs, &[])),
        Ok(vec![Change::Written])
    );
    // A secret is read the same way.
    let secret = fifo.clone();
    assert_eq!(
        within_10s(move || render_text(&[("PASS_FILE", secret.as_str())], "{{ PASS }}")),
        Err(format!(
            "t.j2:1: cannot read PASS from PASS_FILE ({fifo}): it is a FIFO, not a regular file"
        ))
    );
}

/// A run killed between staging and renaming leaves `.NAME.maestro-guest.NONCE` beside
/// the file; the next run removes those older than 10 minutes, and nothing else. Pids say
/// nothing: the guest is pid 1 in every container, and two containers may render into one
/// shared volume, so a recent file with this run's own pid is another container's.
#[test]
fn stale_staging_files_are_removed() {
    let dir = TempDir::new();
    let src = dir.write("app.conf.j2", "{{ FOO }}\n");
    let own = std::process::id();
    let stale = [
        ".app.conf.maestro-guest.0123456789abcdef".to_owned(),
        // The names of earlier versions (`PID.N`).
        ".app.conf.maestro-guest.999999999.0".to_owned(),
        format!(".app.conf.maestro-guest.{own}.3"),
    ];
    for name in &stale {
        set_age(&dir.write(name, "half"), AN_HOUR_AGO);
    }
    let kept = [
        // Files that only look alike, however old.
        ".app.conf.maestro-guest.x.0".to_owned(),
        ".other.maestro-guest.999999999.0".to_owned(),
        ".app.conf.other.999999999.0".to_owned(),
    ];
    for name in &kept {
        set_age(&dir.write(name, "half"), AN_HOUR_AGO);
    }
    // Being staged by another container right now (older than this run, "its own" pid),
    // or just now.
    let busy = [
        format!(".app.conf.maestro-guest.{own}.0"),
        ".app.conf.maestro-guest.fedcba9876543210".to_owned(),
    ];
    set_age(&dir.write(&busy[0], "new"), Duration::from_secs(300));
    dir.write(&busy[1], "new");

    assert_eq!(
        render(&[&src], &[("FOO", "bar")]),
        Ok(vec![Change::Written])
    );
    let mut want: Vec<String> = kept.iter().chain(&busy).cloned().collect();
    want.extend(["app.conf".to_owned(), "app.conf.j2".to_owned()]);
    want.sort();
    assert_eq!(dir.names(), want);
}

/// A name of up to NAME_MAX (255) bytes can be staged: the staged copy's name is
/// shortened (with a hash of the whole name) where the suffix would not fit, and stale
/// copies of it are found again.
#[test]
fn long_names_are_staged() {
    let dir = TempDir::new();
    let src = dir.write("a.j2", "{{ FOO }}\n");
    for len in [200, 230, 255] {
        let name = "n".repeat(len - 4) + &format!("{len:04}");
        let dst = dir.path(&name);
        // A stale copy of a killed run, to be found and removed.
        let mut stale = staging_prefix(Path::new(&dst));
        stale.extend_from_slice(b"0123456789abcdef");
        assert!(stale.len() <= 255, "{len}: {}", stale.len());
        let stale = dir.0.join(std::ffi::OsStr::from_bytes(&stale));
        fs::write(&stale, "half").expect("stale copy");
        set_age(&stale.to_string_lossy(), AN_HOUR_AGO);
        assert_eq!(
            render(&[format!("{src}:{dst}")], &[("FOO", "bar")]),
            Ok(vec![Change::Written]),
            "{len}"
        );
        assert_eq!(dir.read(&name), "bar\n", "{len}");
    }
    assert_eq!(dir.names().len(), 4, "nothing staged is left");
}

/// Run as root, a symbolic link is followed only where another user cannot have planted
/// it (the kernel's protected_symlinks rule, stricter): a link owned by root, in a folder
/// only root can write. Otherwise the app user could make the guest (root) replace /etc/passwd
/// through a link on a persistent volume.
#[test]
fn links_of_other_users_are_not_followed() {
    // The rule guards root (another user can write only what it may anyway); CI runs as
    // root, so the test asks for it rather than passing without checking.
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (the guard is root's)"
    );
    let dir = TempDir::new();
    let src = dir.write("a.j2", "{{ FOO }}\n");
    dir.write("victim", "precious\n");
    let victim = dir.path("victim");
    // A folder anyone may write (sticky like /tmp, or not).
    for (folder, mode) in [("open", 0o777), ("sticky", 0o1777), ("group", 0o775)] {
        fs::create_dir(dir.path(folder)).expect("mkdir");
        fs::set_permissions(dir.path(folder), Permissions::from_mode(mode)).expect("chmod");
        let link = dir.path(&format!("{folder}/link"));
        std::os::unix::fs::symlink(&victim, &link).expect("symlink");
        let got = render(&[format!("{src}:{link}")], &[("FOO", "bar")]);
        let want = format!(
            "cannot write {link}: will not follow the link {link}: it is in {}, which users other than root can write",
            dir.path(folder),
        );
        assert!(
            got.as_ref().is_err_and(|e| e.starts_with(&want)),
            "{folder}: {got:?}"
        );
        assert_eq!(dir.read("victim"), "precious\n", "{folder}");
    }
    // What is written or chmodded in place is opened without following a link: one
    // swapped in after resolving is refused (ELOOP), not followed.
    let link = dir.path("open/link");
    for access in [rustix::fs::OFlags::RDONLY, rustix::fs::OFlags::WRONLY] {
        let opened = open_target(Path::new(&link), access).map(|_| ());
        assert!(
            matches!(&opened, Err(super::files::Unreadable::Io(e)) if e.raw_os_error() == Some(40)),
            "{}",
            opened.err().map(|e| e.to_string()).unwrap_or_default()
        );
    }
    // A link owned by another user.
    {
        let link = dir.path("theirs");
        std::os::unix::fs::symlink(&victim, &link).expect("symlink");
        std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).expect("lchown");
        for dst in [link.clone(), dir.path("ours")] {
            if dst != link {
                std::os::unix::fs::symlink(&link, &dst).expect("symlink");
            }
            let got = render(&[format!("{src}:{dst}")], &[("FOO", "bar")]);
            assert_eq!(
                got,
                Err(format!(
                    "cannot write {dst}: will not follow the link {link}: it belongs to uid 65534, not to root (maestro-guest runs as root)"
                ))
            );
            assert_eq!(dir.read("victim"), "precious\n");
        }
    }
}

#[test]
fn bind_mounts_are_written_in_place() {
    // rename(2) over a mount point fails with EBUSY; across filesystems with EXDEV.
    assert!(refused_rename(&io::Error::from_raw_os_error(16)));
    assert!(refused_rename(&io::Error::from_raw_os_error(18)));
    assert!(!refused_rename(&io::Error::from_raw_os_error(13)));

    let dir = TempDir::new();
    let path = dir.write("mounted", "old content\n");
    let inode = fs::metadata(&path).expect("metadata").ino();
    let file = File::options().write(true).open(&path).expect("open");
    write_in_place(&file, b"new\n", Some(0o640)).expect("in place");
    let meta = fs::metadata(&path).expect("metadata");
    assert_eq!((meta.ino(), meta.mode() & 0o7777), (inode, 0o640));
    assert_eq!(dir.read("mounted"), "new\n");
}

/// A template cannot hang the container's start or fill its memory: a loop with no end in
/// sight runs out of steps, and what a template writes is bounded, each with a message
/// that says which limit.
#[test]
fn template_bombs_are_refused() {
    let cases = [
        (
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
            "steps",
        ),
        (
            "{% for a in range(100000) %}{% for b in range(1000) %}{{ 'x' * 1000 }}{% endfor %}{% endfor %}",
            "MiB",
        ),
    ];
    for (source, limit) in cases {
        let err = render_text(&[], source).expect_err(source);
        assert!(err.contains(limit), "{source}: {err}");
    }
}
