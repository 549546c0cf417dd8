//! Reading secret sources: files, maestro's environment, commands; their failures and
//! bounds.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use maestro_core::model::{Environment, InstanceId, Ship};

use super::*;

fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("maestro-secrets-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Services `a` and `b` (one instance each), with `env` as their variables.
fn environment(a_env: &str, b_env: &str) -> Environment {
    let text = format!(
        "__maestro: {{schema: 2}}\nname: t\nships: {{s1: {{ip: 127.0.0.1}}}}\nservices:\n  a: {{image: x, env: {a_env}, instances: {{a-1: {{ship: s1}}}}}}\n  b: {{image: x, env: {b_env}, instances: {{b-1: {{ship: s1}}}}}}\n"
    );
    let loaded = maestro_core::load(
        &text,
        &maestro_core::NoFiles,
        &Ship::new("local", "127.0.0.1"),
    );
    loaded
        .environment
        .unwrap_or_else(|| panic!("{:?}", loaded.diagnostics))
}

fn all(env: &Environment) -> Vec<InstanceId> {
    (0..env.instances.len()).map(InstanceId).collect()
}

async fn read_all(
    env: &Environment,
    dir: &std::path::Path,
    process_env: &[(&str, &str)],
    timeout: Duration,
) -> Result<Values, Vec<String>> {
    let process_env: BTreeMap<String, String> = process_env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    read(
        env,
        &all(env),
        &Reader {
            base_dir: dir,
            process_env: &process_env,
            timeout,
        },
    )
    .await
}

fn value<'v>(values: &'v Values, env: &'v Environment, instance: usize) -> Vec<(&'v str, &'v str)> {
    values.of(&env.instances[instance])
}

#[tokio::test]
async fn files_variables_and_commands_are_read_once_each() {
    let dir = folder("ok");
    std::fs::write(dir.join("db.pw"), "from-file\n\n").unwrap();
    std::fs::create_dir_all(dir.join("home")).unwrap();
    std::fs::write(dir.join("home/tok"), "from-home\r\n").unwrap();
    let env = environment(
        "{F: {secret: \"file:db.pw\"}, H: {secret: \"file:~/tok\"}, E: {secret: \"env:OP_SECRET\"}, C: {secret: \"cmd:sh -c 'echo run >> count; printf \\\"a b\\\\n\\\"'\"}}",
        // The same command for another service: run once.
        "{C2: {secret: \"cmd:sh -c 'echo run >> count; printf \\\"a b\\\\n\\\"'\"}}",
    );
    let home = dir.join("home");
    let values = read_all(
        &env,
        &dir,
        &[
            ("OP_SECRET", "from-env\n"),
            ("HOME", home.to_str().unwrap()),
        ],
        COMMAND_TIMEOUT,
    )
    .await
    .unwrap();
    assert_eq!(
        value(&values, &env, 0),
        [
            // One trailing newline is removed from files and commands, none from variables.
            ("F", "from-file\n"),
            ("H", "from-home"),
            ("E", "from-env\n"),
            ("C", "a b"),
        ]
    );
    assert_eq!(value(&values, &env, 1), [("C2", "a b")]);
    assert_eq!(std::fs::read_to_string(dir.join("count")).unwrap(), "run\n");
    // Nothing of a value in the debug output.
    assert!(!format!("{values:?}").contains("from-"));
}

#[tokio::test]
async fn every_failure_names_the_variable_service_and_source_never_a_value() {
    let dir = folder("bad");
    std::fs::write(dir.join("big"), "x".repeat(VALUE_LIMIT + 1)).unwrap();
    std::fs::write(dir.join("binary"), [0xff, 0xfe]).unwrap();
    std::fs::write(dir.join("value"), "leaked-value").unwrap();
    let env = environment(
        "{MISSING: {secret: \"file:nope\"}, NOVAR: {secret: \"env:NOT_SET\"}, FAILS: {secret: \"cmd:sh -c 'cat value; echo no such key >&2; exit 3'\"}, BIG: {secret: \"file:big\"}}",
        "{BIN: {secret: \"file:binary\"}, DIR: {secret: \"file:.\"}, NOCMD: {secret: \"cmd:/no/such/program\"}, LOUD: {secret: \"cmd:sh -c 'head -c 70000 /dev/zero | tr \\\\\\\\0 x'\"}}",
    );
    let errors = read_all(&env, &dir, &[], COMMAND_TIMEOUT)
        .await
        .unwrap_err();
    let want = [
        (
            "MISSING of service a (file secret file:nope)",
            "cannot read it",
        ),
        (
            "NOVAR of service a (env secret env:NOT_SET)",
            "maestro's environment has no variable NOT_SET",
        ),
        (
            "FAILS of service a (cmd secret cmd:sh …)",
            "sh failed (exit status: 3): no such key",
        ),
        (
            "BIG of service a (file secret file:big)",
            "larger than 65536 bytes",
        ),
        (
            "BIN of service b (file secret file:binary)",
            "not UTF-8 text",
        ),
        (
            "DIR of service b (file secret file:.)",
            "not a regular file",
        ),
        (
            "NOCMD of service b (cmd secret cmd:/no/such/program)",
            "/no/such/program does not exist",
        ),
        (
            "LOUD of service b (cmd secret",
            "printed more than 65536 bytes",
        ),
    ];
    assert_eq!(errors.len(), want.len(), "{errors:#?}");
    for (who, why) in want {
        assert!(
            errors.iter().any(|e| e.contains(who) && e.contains(why)),
            "no error {who:?} ... {why:?} in {errors:#?}"
        );
    }
    for e in &errors {
        assert!(!e.contains("leaked-value") && !e.contains("xxxx"), "{e}");
        // A command's arguments may hold a credential: only its program is named.
        assert!(!e.contains("cat value"), "{e}");
    }
}

#[tokio::test]
async fn a_command_that_does_not_answer_is_given_up() {
    let dir = folder("slow");
    let env = environment("{S: {secret: \"cmd:sleep 30\"}}", "{}");
    let began = Instant::now();
    let errors = read_all(&env, &dir, &[], Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(began.elapsed() < Duration::from_secs(5));
    assert_eq!(
        errors,
        ["secret S of service a (cmd secret cmd:sleep …): sleep gave no answer within 0.3s"]
    );
}

#[tokio::test]
async fn the_spec_gets_the_value_and_the_label_its_salted_hash() {
    let dir = folder("spec");
    std::fs::write(dir.join("pw"), "hunter2").unwrap();
    let env = environment("{PW: {secret: \"file:pw\"}}", "{}");
    let values = read_all(&env, &dir, &[], COMMAND_TIMEOUT).await.unwrap();
    let spec = |salt: Option<&str>| {
        let mut spec = maestro_core::spec::container_spec(&env, InstanceId(0));
        values.apply(&mut spec, &env.instances[0], salt);
        spec
    };
    let label = |spec: &ContainerSpec| {
        spec.labels
            .iter()
            .find(|(k, _)| k == maestro_core::spec::labels::SECRETS)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let given = spec(Some("00ff"));
    assert!(given.env.contains(&"PW=hunter2".to_owned()));
    assert_eq!(
        label(&given),
        format!("salt=00ff;PW={}", hash("00ff", "PW", "hunter2"))
    );
    // A new container gets a new salt: 128 random bits.
    let (one, two) = (label(&spec(None)), label(&spec(None)));
    let salt = Values::salt_of(Some(&one)).unwrap();
    assert_eq!(salt.len(), 32);
    assert_ne!(Values::salt_of(Some(&two)), Some(salt));
    for (k, v) in &spec(None).labels {
        assert!(!v.contains("hunter2"), "{k}={v}");
    }
    // SHA-256, as `printf 'a\0b\0c' | sha256sum` computes it.
    assert_eq!(
        hash("a", "b", "c"),
        "8badde10c760e9b702defb4b5e225de79c515b1d2a5cfb000e140f3c6fbb5629"
    );
}

/// A deploy's previous generation was salted otherwise: compared by value all the same.
#[tokio::test]
async fn a_container_salted_otherwise_compares_by_value() {
    use maestro_core::spec::{changed_secrets, labels};
    let dir = folder("resalt");
    std::fs::write(dir.join("pw"), "hunter2").unwrap();
    let env = environment(
        "{PW: {secret: \"file:pw\"}, OTHER: {secret: \"env:X\"}}",
        "{}",
    );
    let values = read_all(&env, &dir, &[("X", "x")], COMMAND_TIMEOUT)
        .await
        .unwrap();
    let instance = &env.instances[0];
    let spec = |salt: &str| {
        let mut spec = maestro_core::spec::container_spec(&env, InstanceId(0));
        values.apply(&mut spec, instance, Some(salt));
        spec
    };
    let label = |spec: &ContainerSpec| {
        spec.labels
            .iter()
            .find(|(k, _)| k == labels::SECRETS)
            .map(|(_, v)| v.clone())
    };
    let current = spec("aa");
    let previous_label = |pw: &str| {
        format!(
            "salt=bb;OTHER={};PW={}",
            hash("bb", "OTHER", "x"),
            hash("bb", "PW", pw)
        )
    };
    for (pw, changed) in [("hunter2", &[][..]), ("older", &["PW"][..])] {
        let previous = maestro_core::plan::Existing {
            owner: maestro_core::plan::Owner::Own,
            running: false,
            digest: None,
            parts: None,
            image_id: None,
            env: None,
            secrets: Some(previous_label(pw)),
        };
        let previous = values.comparable(previous, instance, &current);
        assert_eq!(
            changed_secrets(previous.secrets.as_deref(), label(&current).as_deref()),
            changed,
            "{pw}"
        );
    }
}
