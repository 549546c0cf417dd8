//! Secret variables end to end, on this machine's engine: a value read from a file at
//! play time reaches the container, never its labels nor `config`; a rotated value is a
//! change that `plan --deploy` names and `restart --only-if-changed` applies.

mod support;

use support::{Env, text};

#[test]
fn a_secret_from_a_file_reaches_the_container_and_nothing_else() {
    let yaml = "__maestro: {schema: 2}
name: @NAME@
@SHIPS@services:
  app:
    image: @IMAGE@
    env: {PLAIN: visible, DB_PASSWORD: {secret: \"file:db.pw\"}}
    instances:
      @NAME@-app1: {ship: local, command: [sh, -c, \"trap 'exit 0' TERM; sleep 600 & wait\"], stop_timeout: 1}
";
    let env = Env::new("secrets", yaml);
    let secret_file = env.dir.join("db.pw");
    std::fs::write(&secret_file, "first-s3cret\n").unwrap();

    // Nothing is read by config: it shows the placeholder.
    for args in [&["config"][..], &["config", "--json"]] {
        let out = env.maestro(args);
        let shown = text(&out);
        assert!(out.status.success(), "{shown}");
        assert!(shown.contains("<secret>"), "{shown}");
        assert!(!shown.contains("first-s3cret"), "{shown}");
    }

    let out = env.maestro(&["start"]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(!shown.contains("first-s3cret"), "{shown}");
    // The container sees the value (the trailing newline removed)...
    assert_eq!(
        env.exec("app1", "echo \"[$DB_PASSWORD]\""),
        "[first-s3cret]"
    );
    // ...its labels do not: only a salted hash.
    let labels = env.inspect("app1", "{{json .Config.Labels}}");
    assert!(!labels.contains("first-s3cret"), "{labels}");
    assert!(labels.contains("io.maestro.secrets"), "{labels}");
    assert!(labels.contains("DB_PASSWORD="), "{labels}");

    // Unchanged: nothing to do.
    let out = env.maestro(&["restart", "-a", "--only-if-changed"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("nothing changed"), "{}", text(&out));

    // Rotated: a change, named by its variable, never its value.
    std::fs::write(&secret_file, "second-s3cret\n").unwrap();
    let out = env.maestro(&["plan", "--deploy"]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("env changed (DB_PASSWORD)"), "{shown}");
    assert!(!shown.contains("s3cret"), "{shown}");
    let out = env.maestro(&["restart", "-a", "--only-if-changed"]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert_eq!(
        env.exec("app1", "echo \"[$DB_PASSWORD]\""),
        "[second-s3cret]"
    );
    let labels = env.inspect("app1", "{{json .Config.Labels}}");
    assert!(!labels.contains("s3cret"), "{labels}");

    // A missing secret fails the play before anything is touched, naming it.
    std::fs::remove_file(&secret_file).unwrap();
    let before = env.inspect("app1", "{{.Id}}");
    let out = env.maestro(&["restart", "-a"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("secret DB_PASSWORD of service app (file secret file:db.pw)"),
        "{shown}"
    );
    assert_eq!(env.inspect("app1", "{{.Id}}"), before);
}
