//! Containers maestro did not create, and orphans, against the real engine: an
//! environment started with plain `docker run --name` (as MaestroNG names containers) is
//! seen running, left alone by `start` and replaced by `restart`; a container another
//! environment made is never touched; a container of an instance gone from the file is an
//! orphan, which only `clean --orphans` removes.

use std::process::Command;

mod support;

use support::{Env, image, text};

/// An app that ends at once on TERM.
const APP: &str = "trap 'exit 0' TERM; sleep 600 & wait";

/// Containers this test made by hand, removed when it ends (maestro's own go with `Env`).
struct Made(Vec<String>);

impl Drop for Made {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v"])
            .args(&self.0)
            .output();
    }
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn yaml(instances: &[&str]) -> String {
    let mut yaml = "__maestro: {schema: 2}\nname: @NAME@\n@SHIPS@services:\n  zk:\n    \
                    image: @IMAGE@\n    instances:\n"
        .to_owned();
    for i in instances {
        yaml.push_str(&format!(
            "      @NAME@-{i}: {{ship: local, stop_timeout: 2, command: [sh, -c, \"{APP}\"]}}\n"
        ));
    }
    yaml
}

fn ok(env: &Env, args: &[&str]) -> String {
    let out = env.maestro(args);
    assert!(out.status.success(), "maestro {args:?}: {}", text(&out));
    text(&out)
}

fn json_status(env: &Env) -> Vec<serde_json::Value> {
    let out = env.maestro(&["--json", "status"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

#[test]
fn containers_maestro_did_not_create_and_orphans() {
    let env = Env::new("foreign", &yaml(&["zk-1", "zk-2", "zk-3"]));
    let made = Made(vec![env.c("zk-1"), env.c("zk-2"), env.c("zk-3")]);
    // zk-1 and zk-2 as MaestroNG left them: named, unlabelled, running.
    for name in &made.0[..2] {
        docker(&["run", "-d", "--name", name, image(), "sh", "-c", APP]);
    }
    // zk-3's name taken by another environment's container.
    docker(&[
        "run",
        "-d",
        "--name",
        &made.0[2],
        "--label",
        "io.maestro.environment=someone-else",
        image(),
        "sh",
        "-c",
        APP,
    ]);
    let id = |instance: &str| env.inspect(instance, "{{.Id}}");
    let (zk1, zk2, zk3) = (id("zk-1"), id("zk-2"), id("zk-3"));

    let status = ok(&env, &["status"]);
    for (instance, container) in [("zk-1", &zk1), ("zk-2", &zk2)] {
        let line = status
            .lines()
            .find(|l| l.starts_with(&env.c(instance)))
            .unwrap_or_else(|| panic!("{status}"));
        assert!(line.contains(&container[..12]), "{line}");
        assert!(
            line.contains("running (Up") && line.ends_with(", not created by maestro"),
            "{line}"
        );
    }
    assert!(
        status.contains("absent (the container of this name belongs to environment someone-else)"),
        "{status}"
    );
    let rows = json_status(&env);
    assert_eq!(rows.len(), 3, "{rows:?}");
    for (row, container) in rows.iter().zip([&zk1, &zk2]) {
        assert_eq!(row["running"], true, "{row}");
        assert_eq!(row["foreign"], true, "{row}");
        assert_eq!(row["container"], container[..12], "{row}");
        assert!(
            row["orphan"].is_null() && row["conflict"].is_null(),
            "{row}"
        );
    }
    assert_eq!(rows[2]["conflict"], "belongs to environment someone-else");
    assert_eq!(rows[2]["running"], false);

    let plan = ok(&env, &["plan"]);
    assert!(
        plan.contains("leave     running, not created by maestro: start leaves it"),
        "{plan}"
    );
    assert!(plan.contains("conflict  the container named"), "{plan}");

    // start leaves the running ones alone, and fails zk-3 without touching it.
    let out = env.maestro(&["start"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("belongs to environment someone-else: maestro leaves it alone"),
        "{}",
        text(&out)
    );
    assert_eq!(
        (id("zk-1"), id("zk-2"), id("zk-3")),
        (zk1.clone(), zk2.clone(), zk3.clone())
    );

    // restart replaces them with containers maestro labels (zk-3 out of the file now).
    env.write(&yaml(&["zk-1", "zk-2"]));
    ok(&env, &["restart", "-a"]);
    for (instance, old) in [("zk-1", &zk1), ("zk-2", &zk2)] {
        assert_ne!(&id(instance), old, "{instance} replaced");
        assert_eq!(
            env.inspect(
                instance,
                "{{index .Config.Labels \"io.maestro.environment\"}}"
            ),
            env.name
        );
        assert_eq!(env.inspect(instance, "{{.State.Running}}"), "true");
    }
    assert_eq!(
        id("zk-3"),
        zk3,
        "another environment's container is never an orphan"
    );

    // zk-2 leaves the file: its container is an orphan, which plays over the file's
    // instances never touch, stopped or not.
    env.write(&yaml(&["zk-1"]));
    let orphan = id("zk-2");
    docker(&["stop", &env.c("zk-2")]);
    let rows = json_status(&env);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1]["instance"], env.c("zk-2"));
    assert_eq!(
        rows[1]["orphan"],
        format!("instance {} is no longer in the file", env.c("zk-2"))
    );
    let plan = ok(&env, &["plan"]);
    assert!(plan.contains("orphan    instance"), "{plan}");
    for args in [
        &["start"][..],
        &["clean"],
        &["restart", "-a"],
        &["stop", "-a"],
    ] {
        ok(&env, args);
        assert_eq!(id("zk-2"), orphan, "maestro {args:?} touched the orphan");
    }
    let out = ok(&env, &["clean", "--orphans"]);
    assert!(out.contains("removed (instance"), "{out}");
    assert_eq!(id("zk-2"), "", "removed");
    assert_eq!(
        env.inspect("zk-1", "{{.State.Status}}"),
        "exited",
        "only the orphan"
    );
    assert!(
        ok(&env, &["clean", "--orphans"]).contains("no orphan containers"),
        "and nothing more"
    );
}
