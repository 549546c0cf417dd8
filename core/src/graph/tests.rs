//! The dependency graph (reference section 10.1): which instances wait for which in
//! both directions, waves, `-d`, command-line selection, `requires` cycles and the
//! services `deptree` shows.

use super::*;
use crate::model::{Environment, InstanceId, Service, ServiceId, Ship};
use crate::{NoFiles, load};

fn environment(text: &str) -> Environment {
    let loaded = load(text, &NoFiles, &Ship::new("local", "127.0.0.1"));
    let errors: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors, Vec::<String>::new());
    loaded.environment.expect("valid")
}

const ENV: &str = "\
__maestro: {schema: 2}
name: g
ships: {s1: {ip: 10.0.0.1}, s2: {ip: 10.0.0.2}}
services:
  zk: {image: zk, instances: {zk-1: {ship: s1}, zk-2: {ship: s2}}}
  kafka: {image: k, requires: [zk], instances: {kafka-1: {ship: s1}, kafka-2: {ship: s2}}}
  app: {image: a, requires: [kafka], wants_info: [info], instances: {app-1: {ship: s1}}}
  info: {image: i, instances: {info-1: {ship: s1}}}
  data: {image: d, instances: {data-1: {ship: s1}}}
  web:
    image: w
    instances:
      web-1: {ship: s1, volumes_from: data-1}
      web-2: {ship: s1}
  pair:
    image: p
    instances:
      pair-a: {ship: s1}
      pair-b: {ship: s1, volumes_from: [pair-a]}
  lone: {image: l, omit: true, instances: {}}
  solo: {image: s, instances: {solo: {ship: s2}}}
";

fn ids(env: &Environment, names: &[&str]) -> Vec<InstanceId> {
    names
        .iter()
        .map(|n| env.instance_by_name(n).unwrap_or_else(|| panic!("no {n}")))
        .collect()
}

fn names(env: &Environment, ids: &[InstanceId]) -> Vec<String> {
    ids.iter().map(|&i| env.instance(i).name.clone()).collect()
}

#[test]
fn waits_for_in_both_directions() {
    let env = environment(ENV);
    let deps = Dependencies::new(&env);
    // (instance, waits for on start, waits for on stop)
    let table: &[(&str, &[&str], &[&str])] = &[
        ("zk-1", &[], &["kafka-1", "kafka-2"]),
        ("zk-2", &[], &["kafka-1", "kafka-2"]),
        // Every instance of a required service; direct edges only.
        ("kafka-1", &["zk-1", "zk-2"], &["app-1"]),
        ("kafka-2", &["zk-1", "zk-2"], &["app-1"]),
        // wants_info never orders anything.
        ("app-1", &["kafka-1", "kafka-2"], &[]),
        ("info-1", &[], &[]),
        // volumes_from across services: the whole service waits for the whole service
        // on start; the source does not wait on stop.
        ("data-1", &[], &[]),
        ("web-1", &["data-1"], &[]),
        ("web-2", &["data-1"], &[]),
        // Within one service only the instance waits for its source.
        ("pair-a", &[], &[]),
        ("pair-b", &["pair-a"], &[]),
        ("solo", &[], &[]),
    ];
    assert_eq!(table.len(), env.instances.len());
    for (instance, start, stop) in table {
        let id = ids(&env, &[instance])[0];
        assert_eq!(
            names(&env, deps.waits_for(id, Direction::Start)),
            *start,
            "{instance} start"
        );
        assert_eq!(
            names(&env, deps.waits_for(id, Direction::Stop)),
            *stop,
            "{instance} stop"
        );
    }
}

#[test]
fn with_dependencies() {
    let env = environment(ENV);
    let deps = Dependencies::new(&env);
    // (selection, direction, result in environment order)
    let table: &[(&[&str], Direction, &[&str])] = &[
        (&[], Direction::Start, &[]),
        (
            &["app-1"],
            Direction::Start,
            &["zk-1", "zk-2", "kafka-1", "kafka-2", "app-1"],
        ),
        (&["app-1"], Direction::Stop, &["app-1"]),
        (
            &["zk-2"],
            Direction::Stop,
            &["zk-2", "kafka-1", "kafka-2", "app-1"],
        ),
        (&["zk-2"], Direction::Start, &["zk-2"]),
        (&["kafka-2"], Direction::Start, &["zk-1", "zk-2", "kafka-2"]),
        (&["web-2"], Direction::Start, &["data-1", "web-2"]),
        (&["data-1"], Direction::Stop, &["data-1"]),
        (&["pair-b"], Direction::Start, &["pair-a", "pair-b"]),
        (&["pair-a"], Direction::Start, &["pair-a"]),
        (&["info-1", "solo"], Direction::Start, &["info-1", "solo"]),
        (&["app-1", "app-1"], Direction::Stop, &["app-1"]),
    ];
    for (selection, direction, want) in table {
        let got = deps.with_dependencies(&ids(&env, selection), *direction);
        assert_eq!(names(&env, &got), *want, "{selection:?} {direction:?}");
    }
}

#[test]
fn waves() {
    let env = environment(ENV);
    let deps = Dependencies::new(&env);
    let all: Vec<&str> = env.instances.iter().map(|i| i.name.as_str()).collect();
    // (selection, direction, ignore_order, waves)
    type Row<'a> = (&'a [&'a str], Direction, bool, &'a [&'a [&'a str]]);
    let table: &[Row] = &[
        (&[], Direction::Start, false, &[]),
        (&[], Direction::Start, true, &[]),
        (
            &all,
            Direction::Start,
            false,
            &[
                &["zk-1", "zk-2", "info-1", "data-1", "pair-a", "solo"],
                &["kafka-1", "kafka-2", "web-1", "web-2", "pair-b"],
                &["app-1"],
            ],
        ),
        (
            &all,
            Direction::Stop,
            false,
            &[
                &[
                    "app-1", "info-1", "data-1", "web-1", "web-2", "pair-a", "pair-b", "solo",
                ],
                &["kafka-1", "kafka-2"],
                &["zk-1", "zk-2"],
            ],
        ),
        // Waiting is transitive through instances that are not selected.
        (
            &["app-1", "zk-1"],
            Direction::Start,
            false,
            &[&["zk-1"], &["app-1"]],
        ),
        (
            &["zk-2", "app-1"],
            Direction::Stop,
            false,
            &[&["app-1"], &["zk-2"]],
        ),
        (&["app-1"], Direction::Start, false, &[&["app-1"]]),
        // A chain through one selected instance of a level.
        (
            &["app-1", "kafka-2", "zk-1"],
            Direction::Start,
            false,
            &[&["zk-1"], &["kafka-2"], &["app-1"]],
        ),
        (
            &["web-1", "data-1", "pair-b"],
            Direction::Start,
            false,
            &[&["data-1", "pair-b"], &["web-1"]],
        ),
        // Duplicates are dropped; waves are in environment order.
        (
            &["zk-2", "zk-1", "zk-2"],
            Direction::Start,
            false,
            &[&["zk-1", "zk-2"]],
        ),
        // -i: everything at once.
        (
            &["app-1", "zk-2", "kafka-1", "app-1"],
            Direction::Start,
            true,
            &[&["zk-2", "kafka-1", "app-1"]],
        ),
        (
            &["app-1", "zk-2"],
            Direction::Stop,
            true,
            &[&["zk-2", "app-1"]],
        ),
    ];
    for (selection, direction, ignore_order, want) in table {
        let got = deps.waves(&ids(&env, selection), *direction, *ignore_order);
        let got: Vec<Vec<String>> = got.iter().map(|w| names(&env, w)).collect();
        let want: Vec<Vec<String>> = want
            .iter()
            .map(|w| w.iter().map(|s| s.to_string()).collect())
            .collect();
        assert_eq!(got, want, "{selection:?} {direction:?} -i={ignore_order}");
    }
}

#[test]
fn waves_respect_every_edge() {
    // Whatever the selection, no instance is in an earlier or the same wave as a selected
    // instance it waits for, directly or transitively.
    let env = environment(ENV);
    let deps = Dependencies::new(&env);
    let n = env.instances.len();
    for mask in 0u32..(1 << n) {
        let selection: Vec<InstanceId> = (0..n)
            .filter(|i| mask & (1 << i) != 0)
            .map(InstanceId)
            .collect();
        for direction in [Direction::Start, Direction::Stop] {
            let waves = deps.waves(&selection, direction, false);
            let wave_of = |i: InstanceId| waves.iter().position(|w| w.contains(&i));
            assert_eq!(
                waves.iter().map(Vec::len).sum::<usize>(),
                selection.len(),
                "{mask:b}"
            );
            for &i in &selection {
                for dep in deps.with_dependencies(&[i], direction) {
                    if dep != i && selection.contains(&dep) {
                        assert!(
                            wave_of(dep) < wave_of(i),
                            "{mask:b} {direction:?}: {} before {}",
                            env.instance(dep).name,
                            env.instance(i).name
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn select() {
    let env = environment(ENV);
    // (things, expand services, result)
    let ok: &[(&[&str], bool, &[&str])] = &[
        (&[], false, &[]),
        (&["zk-1"], false, &["zk-1"]),
        // Environment order, no duplicates.
        (&["kafka-2", "zk-1", "kafka-2"], false, &["zk-1", "kafka-2"]),
        (&["zk"], true, &["zk-1", "zk-2"]),
        (&["kafka", "zk-2"], true, &["zk-2", "kafka-1", "kafka-2"]),
        (&["zk", "zk-1"], true, &["zk-1", "zk-2"]),
        // A service without instances selects nothing.
        (&["lone"], true, &[]),
        // An instance named like a service is the instance, with or without -s.
        (&["solo"], false, &["solo"]),
        (&["solo"], true, &["solo"]),
    ];
    for (things, expand, want) in ok {
        let things: Vec<String> = things.iter().map(|s| s.to_string()).collect();
        let got = super::select(&env, &things, *expand).expect("selects");
        assert_eq!(names(&env, &got), *want, "{things:?} -s={expand}");
    }
    let err: &[(&[&str], bool, SelectError)] = &[
        (
            &["zk"],
            false,
            SelectError::ServiceNotExpanded { name: "zk".into() },
        ),
        (
            &["zk-1", "kafka"],
            false,
            SelectError::ServiceNotExpanded {
                name: "kafka".into(),
            },
        ),
        (
            &["zkk"],
            true,
            SelectError::Unknown {
                name: "zkk".into(),
                help: "did you mean \"zk\"?".into(),
            },
        ),
        (
            &["kafka-3"],
            false,
            SelectError::Unknown {
                name: "kafka-3".into(),
                help: "did you mean \"kafka-1\"?".into(),
            },
        ),
        (
            &["zk-1", "nothing-like-anything-here"],
            true,
            SelectError::Unknown {
                name: "nothing-like-anything-here".into(),
                help: "known: zk, kafka, app, info, data, web, pair, lone, solo, zk-1, zk-2, kafka-1, ... (21 in all)".into(),
            },
        ),
    ];
    for (things, expand, want) in err {
        let things: Vec<String> = things.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            super::select(&env, &things, *expand).as_ref(),
            Err(want),
            "{things:?}"
        );
    }
    assert_eq!(
        SelectError::ServiceNotExpanded { name: "zk".into() }.to_string(),
        "zk is a service; name its instances, or pass -s (--expand-services) to act on all of them"
    );
    assert_eq!(
        SelectError::Unknown {
            name: "x".into(),
            help: "known: a".into()
        }
        .to_string(),
        "\"x\" is neither a service nor an instance; known: a"
    );
}

fn services(requires: &[&[usize]]) -> Vec<Service> {
    requires
        .iter()
        .enumerate()
        .map(|(i, r)| Service {
            name: format!("s{i}"),
            image: "img".into(),
            requires: r.iter().map(|&j| ServiceId(j)).collect(),
            wants_info: vec![],
            omit: false,
            instances: vec![],
        })
        .collect()
}

#[test]
fn requires_cycles() {
    // (requires of each service by index, cycles)
    type Row<'a> = (&'a [&'a [usize]], &'a [&'a [usize]]);
    let table: &[Row] = &[
        (&[], &[]),
        (&[&[], &[0], &[0, 1]], &[]),
        (&[&[0]], &[&[0]]),
        (&[&[1], &[0]], &[&[0, 1]]),
        (&[&[1], &[2], &[0]], &[&[0, 1, 2]]),
        // The cycle starts at its lowest service, wherever it is entered.
        (&[&[1], &[2], &[1]], &[&[1, 2]]),
        (&[&[], &[2], &[3], &[1]], &[&[1, 2, 3]]),
        // Separate cycles are all reported, in order.
        (&[&[0], &[2], &[1]], &[&[0], &[1, 2]]),
        (&[&[1], &[0], &[3], &[2]], &[&[0, 1], &[2, 3]]),
        // One cycle per strongly connected group.
        (&[&[1], &[0, 2], &[0]], &[&[0, 1]]),
        // wants_info-like back edges are not in requires: a DAG with shared deps.
        (&[&[1, 2], &[3], &[3], &[]], &[]),
    ];
    for (requires, want) in table {
        let got: Vec<Vec<usize>> = super::requires_cycles(&services(requires))
            .into_iter()
            .map(|c| c.into_iter().map(|s| s.0).collect())
            .collect();
        let want: Vec<Vec<usize>> = want.iter().map(|c| c.to_vec()).collect();
        assert_eq!(got, want, "{requires:?}");
    }
}

#[test]
fn requires_closure() {
    type Row<'a> = (&'a [&'a [usize]], usize, &'a [usize]);
    let table: &[Row] = &[
        (&[&[]], 0, &[]),
        (&[&[1], &[2], &[]], 0, &[1, 2]),
        (&[&[1], &[2], &[]], 2, &[]),
        // Discovery order, each once.
        (&[&[1, 2], &[3], &[3], &[]], 0, &[1, 3, 2]),
    ];
    for (requires, service, want) in table {
        let got: Vec<usize> = super::requires_closure(&services(requires), ServiceId(*service))
            .into_iter()
            .map(|s| s.0)
            .collect();
        assert_eq!(got, *want, "{requires:?} {service}");
    }
}

#[test]
fn service_dependencies() {
    let text = "\
__maestro: {schema: 2}
name: d
ships: {s1: {ip: 10.0.0.1}}
services:
  zk: {image: zk, instances: {zk-1: {ship: s1}}}
  data: {image: d, instances: {data-1: {ship: s1}, data-2: {ship: s1, volumes_from: data-1}}}
  info: {image: i, instances: {info-1: {ship: s1}}}
  app:
    image: a
    requires: [zk]
    wants_info: [info]
    instances: {app-1: {ship: s1}}
  multi:
    image: m
    requires: [zk, app]
    instances:
      multi-1: {ship: s1, volumes_from: [data-1, data-2]}
      multi-2: {ship: s1, volumes_from: multi-1}
";
    let env = environment(text);
    // (service, its deptree dependencies: requires + volumes_from services, by name)
    let table: &[(&str, &[&str])] = &[
        ("zk", &[]),
        // Within one service: not itself.
        ("data", &[]),
        ("info", &[]),
        // wants_info is not a dependency.
        ("app", &["zk"]),
        ("multi", &["app", "data", "zk"]),
    ];
    for (service, want) in table {
        let id = env.service_by_name(service).expect("exists");
        let got: Vec<&str> = super::service_dependencies(&env, id)
            .iter()
            .map(|&s| env.service(s).name.as_str())
            .collect();
        assert_eq!(got, *want, "{service}");
    }
}

#[test]
fn globs_match_like_fnmatch() {
    use super::glob_match;
    let cases = [
        ("zk-*", "zk-1", true),
        ("zk-*", "kafka-1", false),
        ("*", "", true),
        ("?", "", false),
        ("zk-?", "zk-12", false),
        ("*-1", "zk-1", true),
        ("*a*b*", "xaybz", true),
        ("*a*b", "xaybz", false),
        ("zk-[12]", "zk-2", true),
        ("zk-[!12]", "zk-2", false),
        ("zk-[!12]", "zk-3", true),
        ("s[0-9]", "s7", true),
        ("s[0-9]", "sx", false),
        ("[]]", "]", true),
        ("[", "[", true),
        ("a[", "a[", true),
        ("ZK-*", "zk-1", false),
    ];
    for (pattern, name, want) in cases {
        assert_eq!(glob_match(pattern, name), want, "{pattern:?} vs {name:?}");
    }
}

#[test]
fn play_selections() {
    let text = "__maestro: {schema: 2}\nname: t\nships: {s1: {ip: 10.0.0.1}, s2: {ip: 10.0.0.2}}\nservices:\n  db: {image: d, instances: {db-1: {ship: s1}, db-2: {ship: s2}}}\n  api: {image: a, requires: [db], instances: {api-1: {ship: s1}}}\n  debug: {image: x, omit: true, requires: [api], instances: {debug-1: {ship: s2}}}\n";
    let env = environment(text);
    let deps = Dependencies::new(&env);
    let names = |ids: Vec<InstanceId>| -> Vec<String> {
        ids.into_iter()
            .map(|i| env.instance(i).name.clone())
            .collect()
    };
    let things = |list: &[&str]| -> Vec<String> { list.iter().map(|s| s.to_string()).collect() };
    let none: Vec<String> = Vec::new();

    // No names: everything but omitted services, plus dependencies.
    let o = SelectOptions {
        things: &none,
        ..Default::default()
    };
    assert_eq!(
        names(deps.selection(&env, &o, Direction::Start).unwrap()),
        ["db-1", "db-2", "api-1"]
    );
    // Stopping everything pulls in the omitted dependent (as MaestroNG does).
    let o = SelectOptions {
        things: &none,
        all: true,
        needs_all_for_everything: true,
        ..Default::default()
    };
    assert_eq!(
        names(deps.selection(&env, &o, Direction::Stop).unwrap()),
        ["db-1", "db-2", "api-1", "debug-1"]
    );
    // ... unless -i.
    let o = SelectOptions {
        things: &none,
        all: true,
        needs_all_for_everything: true,
        ignore_dependencies: true,
        ..Default::default()
    };
    assert_eq!(
        names(deps.selection(&env, &o, Direction::Stop).unwrap()),
        ["db-1", "db-2", "api-1"]
    );
    // stop with nothing named and no -a is refused.
    let o = SelectOptions {
        things: &none,
        needs_all_for_everything: true,
        ..Default::default()
    };
    assert_eq!(
        deps.selection(&env, &o, Direction::Stop),
        Err(SelectError::NothingNamed)
    );
    // status shows omitted services too.
    let o = SelectOptions {
        things: &none,
        include_omitted: true,
        ignore_dependencies: true,
        ..Default::default()
    };
    assert_eq!(
        names(deps.selection(&env, &o, Direction::Start).unwrap()).len(),
        4
    );
    // Named things, -d, filters (which apply even with no names, unlike MaestroNG).
    let api = things(&["api-1"]);
    let o = SelectOptions {
        things: &api,
        with_dependencies: true,
        ..Default::default()
    };
    assert_eq!(
        names(deps.selection(&env, &o, Direction::Start).unwrap()),
        ["db-1", "db-2", "api-1"]
    );
    let o = SelectOptions {
        things: &api,
        with_dependencies: true,
        ship_filter: Some("s1"),
        ..Default::default()
    };
    assert_eq!(
        names(deps.selection(&env, &o, Direction::Start).unwrap()),
        ["db-1", "api-1"]
    );
    let o = SelectOptions {
        things: &none,
        container_filter: Some("db-*"),
        ..Default::default()
    };
    assert_eq!(
        names(deps.selection(&env, &o, Direction::Start).unwrap()),
        ["db-1", "db-2"]
    );
    let db = things(&["db"]);
    let o = SelectOptions {
        things: &db,
        ..Default::default()
    };
    assert_eq!(
        deps.selection(&env, &o, Direction::Start),
        Err(SelectError::ServiceNotExpanded { name: "db".into() })
    );
    let o = SelectOptions {
        things: &db,
        expand_services: true,
        ..Default::default()
    };
    assert_eq!(
        names(deps.selection(&env, &o, Direction::Start).unwrap()),
        ["db-1", "db-2"]
    );
}

#[test]
fn waits_within_a_play() {
    // c <- b <- a (a requires b requires c), d independent.
    let text = "__maestro: {schema: 2}\nname: t\nships: {s1: {ip: 10.0.0.1}}\nservices:\n  c: {image: c, instances: {c-1: {ship: s1}}}\n  b: {image: b, requires: [c], instances: {b-1: {ship: s1}}}\n  a: {image: a, requires: [b], instances: {a-1: {ship: s1}, a-2: {ship: s1}}}\n  d: {image: d, instances: {d-1: {ship: s1}}}\n";
    let env = environment(text);
    let deps = Dependencies::new(&env);
    let sel = ids(&env, &["c-1", "a-1", "a-2", "d-1"]);
    // a-* wait for c-1 through b-1, which is not part of the play.
    assert_eq!(
        deps.within(&sel, Direction::Start),
        vec![vec![], vec![0], vec![0], vec![]]
    );
    // Stopping: c-1 waits for both a-*.
    assert_eq!(
        deps.within(&sel, Direction::Stop),
        vec![vec![1, 2], vec![], vec![], vec![]]
    );
    let all = ids(&env, &["c-1", "b-1", "a-1"]);
    assert_eq!(
        deps.within(&all, Direction::Start),
        vec![vec![], vec![0], vec![1]]
    );
}

/// Runs `f` on a thread with a small stack, so that a walk recursing once per node of a
/// long chain overflows it (and the test fails) instead of passing by luck of a big stack.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .expect("thread")
        .join()
        .expect("no panic")
}

const DEEP: usize = 100_000;

#[test]
fn deep_graphs_are_walked_without_recursion() {
    on_small_stack(|| {
        // A chain 0 -> 1 -> ... has no cycle; closing it makes one cycle of every node.
        let mut chain: Vec<Vec<usize>> = (1..DEEP).map(|i| vec![i]).collect();
        chain.push(vec![]);
        assert_eq!(cycles(&chain), Vec::<Vec<usize>>::new());
        let mut ring = chain.clone();
        ring[DEEP - 1] = vec![0];
        assert_eq!(cycles(&ring), vec![(0..DEEP).collect::<Vec<_>>()]);

        // A play on both ends of a start chain: the first waits for the last through
        // every instance in between.
        let deps = Dependencies {
            start: (0..DEEP)
                .map(|i| {
                    (i + 1 < DEEP)
                        .then_some(InstanceId(i + 1))
                        .into_iter()
                        .collect()
                })
                .collect(),
            stop: vec![Vec::new(); DEEP],
        };
        let ends = [InstanceId(0), InstanceId(DEEP - 1)];
        assert_eq!(deps.within(&ends, Direction::Start), vec![vec![1], vec![]]);
        assert_eq!(deps.waves(&ends, Direction::Start, false).len(), 2);
    });
}

#[test]
fn cycles_of_larger_groups() {
    // (adjacency, cycles): the walk leaves each node by its first edge inside the group,
    // and the cycle it closes is reported from where it closes.
    type Row<'a> = (&'a [&'a [usize]], &'a [&'a [usize]]);
    let table: &[Row] = &[
        // 0 -> 1 -> 2 -> 1: the cycle is 1, 2 even though 0 is in no cycle.
        (&[&[1], &[2], &[1]], &[&[1, 2]]),
        // A group of four with a chord; edges leaving the group are not followed, and
        // the walk from 0 closes the cycle 1, 2, 3 first.
        (&[&[4, 1], &[2], &[3, 0], &[1], &[]], &[&[1, 2, 3]]),
        // Two groups joined by a one-way edge.
        (&[&[1], &[0, 2], &[3], &[2]], &[&[0, 1], &[2, 3]]),
    ];
    for (adjacency, want) in table {
        let adjacency: Vec<Vec<usize>> = adjacency.iter().map(|a| a.to_vec()).collect();
        let want: Vec<Vec<usize>> = want.iter().map(|c| c.to_vec()).collect();
        assert_eq!(cycles(&adjacency), want, "{adjacency:?}");
    }
}
