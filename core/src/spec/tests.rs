//! The container spec and its digest: what it contains, what changes it, what does not.

use super::*;
use crate::model::Ship;
use crate::{NoFiles, load};

const BASE: &str = "__maestro: {schema: 2}
name: demo
ships: {s1: {ip: 10.0.0.1}}
services:
  db:
    image: postgres:16
    ports: {pg: \"5432:15432\"}
    instances:
      db-1: {ship: s1}
  web:
    image: nginx
    requires: [db]
    env: {A: 1, B: two}
    instances:
      web-1:
        ship: s1
        command: \"nginx -g 'daemon off;'\"
        ports: {http: \"80:8080\", dns: 53/udp}
        volumes: {/srv/www: {target: /usr/share/nginx/html, mode: ro}}
        container_volumes: [/cache]
        labels: {team: web}
        restart: on-failure:3
        limits: {memory: 64m, cpu: 512}
        stop_timeout: 5
";

fn maestro_env(text: &str) -> Environment {
    let loaded = load(text, &NoFiles, &Ship::new("local", "127.0.0.1"));
    loaded
        .environment
        .unwrap_or_else(|| panic!("{:?}", loaded.diagnostics))
}

fn spec_of(text: &str, instance: &str) -> ContainerSpec {
    let env = maestro_env(text);
    container_spec(&env, env.instance_by_name(instance).expect("exists"))
}

fn label<'a>(spec: &'a ContainerSpec, key: &str) -> &'a str {
    spec.labels
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .expect("label")
}

#[test]
fn spec_holds_the_definition() {
    let spec = spec_of(BASE, "web-1");
    assert_eq!(spec.image, "nginx");
    assert_eq!(spec.hostname.as_deref(), Some("web-1"));
    assert_eq!(
        spec.command.as_deref(),
        Some(&["nginx".to_owned(), "-g".into(), "daemon off;".into()][..])
    );
    assert!(spec.env.contains(&"A=1".to_owned()));
    assert!(spec.env.contains(&"DB_DB_1_PG_PORT=15432".to_owned()));
    assert!(
        spec.ports
            .contains(&("80/tcp".into(), "0.0.0.0".into(), "8080".into()))
    );
    assert!(
        spec.ports
            .contains(&("53/udp".into(), "0.0.0.0".into(), "53".into()))
    );
    assert_eq!(spec.binds, ["/srv/www:/usr/share/nginx/html:ro"]);
    assert_eq!(spec.volumes, ["/cache", "/usr/share/nginx/html"]);
    assert_eq!(spec.restart_policy, ("on-failure".into(), 3));
    assert_eq!((spec.memory, spec.cpu_shares), (Some(64 << 20), Some(512)));
    assert_eq!(label(&spec, labels::ENVIRONMENT), "demo");
    assert_eq!(label(&spec, labels::SERVICE), "web");
    assert_eq!(label(&spec, labels::INSTANCE), "web-1");
    assert_eq!(label(&spec, "team"), "web");
    assert_eq!(label(&spec, labels::DIGEST), digest(&spec));
}

/// The digest of a fixed definition is pinned, in both canonical forms: if this test
/// fails, containers created by an earlier maestro would all look outdated. Change the
/// canonical form only with a new version, compare the older labels in their own form,
/// and say so in the release notes.
#[test]
fn digest_is_stable_across_versions() {
    let spec = spec_of(BASE, "web-1");
    assert_eq!(
        label(&spec, labels::DIGEST),
        "v2:0cd5fa66213f5e1363bad2e22ad12896"
    );
    // What maestro labelled containers with until the second form.
    assert_eq!(legacy_digest(&spec), "1508656c2b29ffc7934da6a991adc86a");
    assert!(is_legacy(&legacy_digest(&spec)));
    assert!(!is_legacy(label(&spec, labels::DIGEST)));
}

/// `status` hashes a definition without building its discovery variables, and gets the
/// label's digest; the discovery variables are in it through their service's digest.
#[test]
fn the_definition_digest_is_the_labels_without_the_discovery_variables() {
    let env = maestro_env(BASE);
    for name in ["web-1", "db-1"] {
        let id = env.instance_by_name(name).unwrap();
        let spec = container_spec(&env, id);
        assert_eq!(definition_digest(&env, id), label(&spec, labels::DIGEST));
        assert!(spec.env.len() > spec.own_env, "{name}: {:?}", spec.env);
    }
}

#[test]
fn digest_changes_with_the_definition_only() {
    let base = label(&spec_of(BASE, "web-1"), labels::DIGEST).to_owned();
    let same = [
        // Not part of the container.
        BASE.replace("stop_timeout: 5", "stop_timeout: 50"),
        // Key order does not matter.
        BASE.replace("env: {A: 1, B: two}", "env: {B: two, A: 1}"),
        // Comments and layout do not matter.
        BASE.replace(
            "    image: nginx\n",
            "    image: nginx   # the web server\n",
        ),
    ];
    for text in &same {
        assert_eq!(
            label(&spec_of(text, "web-1"), labels::DIGEST),
            base,
            "{text}"
        );
    }
    let different = [
        BASE.replace("image: nginx", "image: nginx:1.25"),
        BASE.replace("env: {A: 1, B: two}", "env: {A: 2, B: two}"),
        BASE.replace("\"80:8080\"", "\"80:8081\""),
        BASE.replace("mode: ro", "mode: rw"),
        BASE.replace("on-failure:3", "on-failure:4"),
        BASE.replace("memory: 64m", "memory: 65m"),
        BASE.replace("team: web", "team: ops"),
        BASE.replace("\"nginx -g 'daemon off;'\"", "\"nginx -g 'daemon on;'\""),
        // A dependency's port is one of the container's variables.
        BASE.replace("\"5432:15432\"", "\"5432:15433\""),
    ];
    for text in &different {
        assert_ne!(
            label(&spec_of(text, "web-1"), labels::DIGEST),
            base,
            "{text}"
        );
    }
}

#[test]
fn parts_say_what_changed() {
    let base = label(&spec_of(BASE, "web-1"), labels::PARTS).to_owned();
    let cases: [(&str, &str, &[&str]); 4] = [
        ("env: {A: 1, B: two}", "env: {A: 2, B: two}", &["env"]),
        // The image is also in DOCKER_IMAGE and DOCKER_TAG.
        ("image: nginx", "image: nginx:1.25", &["image", "env"]),
        ("        labels: {team: web}\n", "", &["label"]),
        // A port is also in the discovery variables.
        ("\"80:8080\"", "\"80:8081\"", &["env", "port"]),
    ];
    for (from, to, want) in cases {
        let changed = label(&spec_of(&BASE.replace(from, to), "web-1"), labels::PARTS).to_owned();
        assert_eq!(changed_parts(&base, &changed), want, "{from} -> {to}");
    }
    assert!(changed_parts(&base, &base).is_empty());
}

#[test]
fn a_healthcheck_joins_the_digest_only_when_configured() {
    let base = spec_of(BASE, "web-1");
    let with = |fields: &str| {
        spec_of(
            &BASE.replace(
                "        stop_timeout: 5\n",
                &format!("        stop_timeout: 5\n        healthcheck: {fields}\n"),
            ),
            "web-1",
        )
    };
    // The image's own health check: the same container, the same digest and parts.
    let image = with("image");
    assert_eq!(image.healthcheck, Some(crate::model::Healthcheck::Image));
    assert_eq!(label(&image, labels::DIGEST), label(&base, labels::DIGEST));
    assert_eq!(label(&image, labels::PARTS), label(&base, labels::PARTS));
    assert!(!label(&base, labels::PARTS).contains("healthcheck"));

    let defined = with("{test: \"exit 0\", interval: 1s}");
    let digests: Vec<String> = [
        defined.clone(),
        with("{test: \"exit 0\", interval: 2s}"),
        with("{test: \"exit 1\", interval: 1s}"),
        with("{test: [CMD, \"exit 0\"], interval: 1s}"),
        with("{test: \"exit 0\", interval: 1s, retries: 0}"),
        with("{test: \"exit 0\", interval: 1s, start_interval: 1s}"),
        with("{disable: true}"),
    ]
    .iter()
    .map(|s| label(s, labels::DIGEST).to_owned())
    .collect();
    let mut distinct = digests.clone();
    distinct.push(label(&base, labels::DIGEST).to_owned());
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), digests.len() + 1, "{digests:?}");
    // The same durations written differently are the same definition.
    assert_eq!(
        label(
            &with("{test: \"exit 0\", interval: 1000ms}"),
            labels::DIGEST
        ),
        label(&defined, labels::DIGEST)
    );
    assert_eq!(
        changed_parts(label(&base, labels::PARTS), label(&defined, labels::PARTS)),
        ["healthcheck"]
    );
    assert_eq!(
        changed_parts(label(&defined, labels::PARTS), label(&base, labels::PARTS)),
        ["healthcheck"]
    );
}

/// A range of container ports is one entry per port, as the Docker CLI expands it (the
/// engine refuses a range as an exposed port).
#[test]
fn port_ranges_are_one_entry_per_port() {
    let text = BASE.replace(
        "ports: {http: \"80:8080\", dns: 53/udp}",
        "ports: {same: \"1234-1236:1234-1236\", shifted: \"2000-2001:3000-3001\", \
         udp: 1300-1301/udp, any: \"1240:1240-1242\"}",
    );
    let spec = spec_of(&text, "web-1");
    let port = |c: &str, h: &str| (c.to_owned(), "0.0.0.0".to_owned(), h.to_owned());
    assert_eq!(
        spec.ports,
        [
            port("1234/tcp", "1234"),
            port("1235/tcp", "1235"),
            port("1236/tcp", "1236"),
            port("2000/tcp", "3000"),
            port("2001/tcp", "3001"),
            port("1300/udp", "1300"),
            port("1301/udp", "1301"),
            port("1240/tcp", "1240-1242"),
        ]
    );
    // What containers are told keeps MaestroNG's text: the range.
    assert!(
        spec.env
            .contains(&"WEB_WEB_1_SAME_PORT=1234-1236".to_owned())
    );
}

/// A secret variable is the placeholder in the definition (the digest does not depend on
/// its value); its value goes in the spec and its salted hash in a label.
#[test]
fn secrets_are_salted_hashes_in_labels_never_values() {
    let text = BASE.replace(
        "env: {A: 1, B: two}",
        "env: {A: 1, B: two, DB_PASSWORD: {secret: \"file:db.pw\"}}",
    );
    let plain = spec_of(&text, "web-1");
    assert!(plain.env.contains(&"DB_PASSWORD=<secret>".to_owned()));
    let hash = |salt: &str, name: &str, value: &str| format!("H({salt},{name},{value})");
    let with = |value: &str, salt: &str| {
        let mut spec = plain.clone();
        apply_secrets(&mut spec, &[("DB_PASSWORD", value)], salt, &hash);
        spec
    };
    let spec = with("hunter2", "s1");
    assert!(spec.env.contains(&"DB_PASSWORD=hunter2".to_owned()));
    assert!(!spec.env.iter().any(|e| e.contains("<secret>")));
    assert_eq!(
        label(&spec, labels::SECRETS),
        "salt=s1;DB_PASSWORD=H(s1,DB_PASSWORD,hunter2)"
    );
    // The digest covers the placeholder only: the value (rotated or not) is not in it,
    // even computed again from the spec that holds the value (as `plan` does in the
    // first form for a container an earlier maestro labelled).
    assert_eq!(label(&spec, labels::DIGEST), label(&plain, labels::DIGEST));
    assert_eq!(digest(&spec), label(&plain, labels::DIGEST));
    assert_eq!(legacy_digest(&spec), legacy_digest(&plain));
    assert_eq!(legacy_labels(&spec), legacy_labels(&plain));
    assert_eq!(
        label(&with("rotated", "s1"), labels::DIGEST),
        label(&plain, labels::DIGEST)
    );
    assert_eq!(secrets_salt(label(&spec, labels::SECRETS)), Some("s1"));
    // A rotated value changes its hash under the same salt; the same value under another
    // salt is not comparable, so every secret counts as changed.
    let rotated = with("rotated", "s1");
    assert_eq!(
        changed_secrets(
            Some(label(&spec, labels::SECRETS)),
            Some(label(&rotated, labels::SECRETS))
        ),
        ["DB_PASSWORD"]
    );
    assert!(
        changed_secrets(
            Some(label(&spec, labels::SECRETS)),
            Some(label(&with("hunter2", "s1"), labels::SECRETS))
        )
        .is_empty()
    );
    assert_eq!(
        changed_secrets(
            Some(label(&spec, labels::SECRETS)),
            Some(label(&with("hunter2", "s2"), labels::SECRETS))
        ),
        ["DB_PASSWORD"]
    );
    // No other label holds the secret.
    for (k, v) in spec.labels.iter().filter(|(k, _)| k != labels::SECRETS) {
        assert!(!v.contains("hunter2"), "{k}={v}");
    }
}
