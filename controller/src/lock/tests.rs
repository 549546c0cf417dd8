//! The lock's rules over plain data, and its flows over an in-memory store.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use maestro_core::model::{Environment, Ship, ShipId};

use super::*;

// ---- the rules ----

#[test]
fn plain_names_read_as_they_are() {
    assert_eq!(container_name("shop", "web-1"), "maestro-lock.shop.web-1");
    assert_eq!(container_name("a_b", "C-9"), "maestro-lock.a_b.C-9");
}

#[test]
fn other_names_are_sanitized_and_hashed_so_they_never_collide() {
    let dotted = container_name("a.b", "c");
    let other = container_name("a", "b.c");
    assert_ne!(dotted, other);
    assert_eq!(dotted.matches('.').count(), 3, "{dotted}");
    assert_eq!(container_name("a", "b").matches('.').count(), 2);
    assert!(dotted.starts_with("maestro-lock.a_b.c."), "{dotted}");
    // Replaced characters alone do not make names equal.
    assert_ne!(container_name("a b", "c"), container_name("a/b", "c"));
    // A plain name that looks like a sanitized one is still distinct.
    assert_ne!(container_name("a_b", "c"), container_name("a b", "c"));
    // The hash is stable across versions (FNV-1a, 64 bits, of "my env\0ship", checked
    // with Python): a lock taken by an older maestro is found.
    assert_eq!(
        container_name("my env", "ship"),
        "maestro-lock.my_env.ship.1926563c90551ce2"
    );
    let non_ascii = container_name("é", "ship");
    assert!(non_ascii.is_ascii(), "{non_ascii}");
}

#[test]
fn long_names_are_shortened_with_a_hash() {
    let long = "x".repeat(200);
    let a = container_name(&long, "ship");
    let b = container_name(&format!("{long}y"), "ship");
    assert_ne!(a, b);
    assert!(a.len() < 128, "{a}");
    assert_eq!(container_name(&"x".repeat(100), "s").len(), 115);
}

#[test]
fn rfc3339_both_ways() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(1_714_564_800), "2024-05-01T12:00:00Z");
    assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    for t in [0, 1, 951_782_399, 1_714_564_800, 4_102_444_800, -86_401] {
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t), "{t}");
    }
    assert_eq!(
        parse_rfc3339("2024-05-01T14:00:00.123456+02:00"),
        Some(1_714_564_800)
    );
    assert_eq!(parse_rfc3339("2024-05-01t12:00:00z"), Some(1_714_564_800));
    for bad in [
        "",
        "2024-05-01",
        "2024-05-01T12:00:00",
        "2024-13-01T12:00:00Z",
        "2024-05-01T12:00:00+2:00",
        "2024-05-01T12:00:00.Z",
        "2024-05-01T1a:00:00Z",
        "+024-05-01T12:00:00Z",
        "2024-05-01T12:00:00Zjunk",
    ] {
        assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
    }
}

#[test]
fn the_start_time_is_field_22_even_with_odd_command_names() {
    let fields: Vec<String> = (3..=30).map(|n| n.to_string()).collect();
    let stat = format!("4242 (a) (b c) {}", fields.join(" "));
    assert_eq!(start_time(&stat), Some(22));
    assert_eq!(start_time("4242 (short) S 1 2"), None);
    assert_eq!(start_time("no parenthesis"), None);
}

#[test]
fn the_user_of_a_uid_comes_from_passwd() {
    let passwd = "root:x:0:0:root:/root:/bin/sh\nann:x:1000:1000::/home/ann:/bin/sh\n";
    assert_eq!(user_of(passwd, "1000").as_deref(), Some("ann"));
    assert_eq!(user_of(passwd, "0").as_deref(), Some("root"));
    assert_eq!(user_of(passwd, "7"), None);
}

#[test]
fn spans_read_well() {
    assert_eq!(span(5), "5 s");
    assert_eq!(span(119), "119 s");
    assert_eq!(span(180), "3 min");
    assert_eq!(span(7200), "2 h");
    assert_eq!(span(3 * 86_400), "3 days");
    assert_eq!(span(-3), "0 s");
}

fn local() -> Local {
    Local {
        user: "ann".into(),
        host: "box".into(),
        pid: 100,
        pid_start: Some(5),
        // On "box": 100 is us, 200 runs since 7, nothing else runs.
        process_start: |pid| match pid {
            100 => Some(5),
            200 => Some(7),
            _ => None,
        },
    }
}

fn holder(user: &str, host: &str, pid: u32, pid_start: u64, since: i64) -> Holder {
    Holder {
        user: user.into(),
        host: host.into(),
        pid: Some(pid),
        pid_start: Some(pid_start),
        command: "maestro start -a".into(),
        since: Some(since),
    }
}

#[test]
fn labels_say_who_holds_and_read_back() {
    let h = holder("ann", "box", 200, 7, 1_714_564_800);
    let labels: BTreeMap<String, String> = h.labels("shop", "alpha").into_iter().collect();
    assert_eq!(labels["io.maestro.environment"], "shop");
    assert_eq!(labels["io.maestro.ship"], "alpha");
    assert_eq!(labels["io.maestro.role"], "lock");
    assert_eq!(labels["io.maestro.lock.pid-start"], "7");
    assert_eq!(labels["io.maestro.lock.since"], "2024-05-01T12:00:00Z");
    assert_eq!(Holder::from_labels(&labels), Some(h.clone()));
    assert_eq!(
        h.to_string(),
        "ann@box (pid 200, \"maestro start -a\") since 2024-05-01T12:00:00Z"
    );

    let mut foreign = labels.clone();
    foreign.remove("io.maestro.role");
    assert_eq!(Holder::from_labels(&foreign), None);
    let mut sparse = BTreeMap::new();
    sparse.insert("io.maestro.role".to_owned(), "lock".to_owned());
    sparse.insert("io.maestro.lock.pid".to_owned(), "x".to_owned());
    let unknown = Holder::from_labels(&sparse).unwrap();
    assert_eq!((unknown.user.as_str(), unknown.pid), ("?", None));
}

#[test]
fn a_holder_is_gone_when_its_process_ended_on_our_host() {
    let now = 1_000_000;
    let l = local();
    // Fresh heartbeat, but the process is gone or the pid was reused.
    assert_eq!(
        judge(&holder("bob", "box", 300, 1, now), Some(now), now, &l),
        Liveness::ProcessEnded
    );
    assert_eq!(
        judge(&holder("bob", "box", 200, 6, now), Some(now), now, &l),
        Liveness::ProcessEnded
    );
    // Running with the right start time: alive.
    assert_eq!(
        judge(
            &holder("bob", "box", 200, 7, now - 30),
            Some(now - 4),
            now,
            &l
        ),
        Liveness::Alive { last_sign: Some(4) }
    );
    // On another host, a pid says nothing: only the heartbeat counts.
    assert_eq!(
        judge(
            &holder("bob", "far", 300, 1, now - 30),
            Some(now - 4),
            now,
            &l
        ),
        Liveness::Alive { last_sign: Some(4) }
    );
}

#[test]
fn a_holder_is_gone_when_silent_for_a_minute() {
    let now = 1_000_000;
    let l = local();
    let far = holder("bob", "far", 300, 1, now - 3600);
    assert_eq!(
        judge(&far, Some(now - 180), now, &l),
        Liveness::NoHeartbeat { seconds: 180 }
    );
    assert_eq!(
        judge(&far, Some(now - 60), now, &l),
        Liveness::Alive {
            last_sign: Some(60)
        }
    );
    // No heartbeat yet: the taking counts as the first one.
    let young = holder("bob", "far", 300, 1, now - 20);
    assert_eq!(
        judge(&young, None, now, &l),
        Liveness::Alive {
            last_sign: Some(20)
        }
    );
    assert_eq!(
        judge(&far, None, now, &l),
        Liveness::NoHeartbeat { seconds: 3600 }
    );
    // Nothing to tell by: never taken over without --force.
    let blind = Holder { since: None, ..far };
    assert_eq!(
        judge(&blind, None, now, &l),
        Liveness::Alive { last_sign: None }
    );
    assert_eq!(
        Notice::TakingOver {
            ship: "alpha".into(),
            holder: holder("bob", "far", 300, 1, 0),
            why: Liveness::NoHeartbeat { seconds: 180 },
        }
        .to_string(),
        "taking over the lock of bob@far (pid 300, \"maestro start -a\") since \
         1970-01-01T00:00:00Z on ship alpha: no heartbeat for 3 min (stale after 60 s)"
    );
}

#[test]
fn release_without_force_takes_stale_locks_and_our_dead_ones() {
    let l = local();
    let ours = holder("ann", "box", 300, 1, 0);
    let theirs = holder("bob", "box", 300, 1, 0);
    assert!(releasable(&ours, Liveness::ProcessEnded, &l));
    assert!(!releasable(&theirs, Liveness::ProcessEnded, &l));
    assert!(releasable(
        &theirs,
        Liveness::NoHeartbeat { seconds: 61 },
        &l
    ));
    assert!(!releasable(
        &ours,
        Liveness::Alive { last_sign: Some(1) },
        &l
    ));
}

// ---- the flows, over an in-memory store ----

#[derive(Clone, Debug)]
struct Stored {
    id: String,
    labels: BTreeMap<String, String>,
    heartbeat: Option<i64>,
}

type Hook = Box<dyn FnOnce(&mut Store) + Send>;

#[derive(Default)]
struct Store {
    next_id: u32,
    containers: BTreeMap<String, Stored>,
    /// What was asked, in order: `create NAME`, `remove ID`, `beat ID`.
    log: Vec<String>,
    image: bool,
    unreachable: bool,
    refuse_create: bool,
    refuse_remove: bool,
    /// How long a heartbeat or a removal takes (a slow ship).
    delay: Duration,
    /// How long connecting takes, which the first request (or `connect`) does.
    connect_delay: Duration,
    /// When the removals ended, by the runtime's clock.
    removed_at: Vec<tokio::time::Instant>,
    /// Runs right after a removal (another taker acting between our steps).
    after_remove: Option<Hook>,
}

impl Store {
    fn insert(&mut self, name: &str, labels: Vec<(String, String)>, heartbeat: Option<i64>) {
        self.next_id += 1;
        let id = format!("id{}", self.next_id);
        self.containers.insert(
            name.to_owned(),
            Stored {
                id,
                labels: labels.into_iter().collect(),
                heartbeat,
            },
        );
    }
}

/// The store, and the connection (made once, whoever asks first; the others wait for it).
#[derive(Default)]
struct Fake(Mutex<Store>, tokio::sync::OnceCell<()>);

impl Fake {
    fn with<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        f(&mut self.0.lock().unwrap())
    }

    /// Connects first if not connected yet, as an engine's first request does.
    async fn link(&self) {
        let delay = self.with(|s| s.connect_delay);
        self.1.get_or_init(|| tokio::time::sleep(delay)).await;
    }

    async fn slow(&self) {
        let delay = self.with(|s| s.delay);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }

    fn check(&self) -> Result<(), EngineError> {
        if self.with(|s| s.unreachable) {
            Err(EngineError::Unreachable {
                ship: "?".into(),
                reason: "Connection refused".into(),
            })
        } else {
            Ok(())
        }
    }
}

impl LockStore for Fake {
    async fn connect(&self) {
        self.link().await;
    }

    async fn import_lock_image(&self) -> Result<(), EngineError> {
        self.link().await;
        self.check()?;
        self.with(|s| {
            s.log.push("import".into());
            s.image = true;
        });
        Ok(())
    }

    async fn create_lock(
        &self,
        name: &str,
        labels: &[(String, String)],
    ) -> Result<Created, EngineError> {
        self.link().await;
        self.check()?;
        self.with(|s| {
            s.log.push(format!("create {name}"));
            if !s.image {
                return Ok(Created::NoImage);
            }
            if s.refuse_create {
                return Err(EngineError::Daemon("no space left on device".into()));
            }
            if s.containers.contains_key(name) {
                return Ok(Created::Conflict);
            }
            s.insert(name, labels.to_vec(), None);
            Ok(Created::Made(s.containers[name].id.clone()))
        })
    }

    async fn find_lock(&self, name: &str) -> Result<Option<Found>, EngineError> {
        self.link().await;
        self.check()?;
        Ok(self.with(|s| {
            s.containers.get(name).map(|c| Found {
                id: c.id.clone(),
                labels: c.labels.clone(),
                heartbeat: c.heartbeat,
            })
        }))
    }

    async fn beat_lock(&self, id: &str, at: i64) -> Result<(), EngineError> {
        self.link().await;
        self.slow().await;
        self.check()?;
        self.with(|s| {
            s.log.push(format!("beat {id}"));
            match s.containers.values_mut().find(|c| c.id == id) {
                Some(c) => {
                    c.heartbeat = Some(at);
                    Ok(())
                }
                None => Err(EngineError::Daemon(format!("No such container: {id}"))),
            }
        })
    }

    async fn remove_lock(&self, id: &str) -> Result<(), EngineError> {
        self.link().await;
        self.slow().await;
        self.check()?;
        self.with(|s| {
            s.log.push(format!("remove {id}"));
            s.removed_at.push(tokio::time::Instant::now());
            if s.refuse_remove {
                return Err(EngineError::Daemon("device busy".into()));
            }
            s.containers.retain(|_, c| c.id != id);
            if let Some(hook) = s.after_remove.take() {
                hook(s);
            }
            Ok(())
        })
    }
}

const THREE_SHIPS: &str = "name: shop
ships:
  alpha: {ip: 10.0.0.1}
  beta: {ip: 10.0.0.2}
  gamma: {ip: 10.0.0.3}
services:
  web:
    image: web
    instances:
      web-1: {ship: alpha}
      web-2: {ship: beta}
      web-3: {ship: gamma}
";

const YAML: &str = "name: shop
ships:
  zeta: {ip: 10.0.0.2}
  alpha: {ip: 10.0.0.1}
services:
  web:
    image: web
    instances:
      web-1: {ship: alpha}
      web-2: {ship: zeta}
";

struct World {
    env: Environment,
    engines: Arc<Vec<Arc<Fake>>>,
    notices: Arc<Mutex<Vec<Notice>>>,
    report: Report,
}

impl World {
    fn new() -> World {
        World::of(YAML)
    }

    fn of(yaml: &str) -> World {
        let env = maestro_core::load(
            yaml,
            &maestro_core::NoFiles,
            &Ship::new("local", "127.0.0.1"),
        )
        .environment
        .expect("valid");
        let engines = Arc::new(
            env.ships
                .iter()
                .map(|_| Arc::new(Fake::default()))
                .collect(),
        );
        let notices = Arc::new(Mutex::new(Vec::new()));
        let sink = notices.clone();
        World {
            env,
            engines,
            notices,
            report: Arc::new(move |n| sink.lock().unwrap().push(n)),
        }
    }

    fn ship(&self, name: &str) -> ShipId {
        ShipId(self.env.ships.iter().position(|s| s.name == name).unwrap())
    }

    fn all(&self) -> Vec<ShipId> {
        (0..self.env.ships.len()).map(ShipId).collect()
    }

    fn fake(&self, ship: &str) -> &Fake {
        &self.engines[self.ship(ship).0]
    }

    /// Puts a lock held by `holder` on `ship`, as another maestro would have.
    fn lock_held_by(&self, ship: &str, holder: &Holder, heartbeat: Option<i64>) -> String {
        let name = container_name("shop", ship);
        self.fake(ship).with(|s| {
            s.insert(&name, holder.labels("shop", ship), heartbeat);
            s.containers[&name].id.clone()
        })
    }

    fn lock_of(&self, ship: &str) -> Option<Stored> {
        let name = container_name("shop", ship);
        self.fake(ship).with(|s| s.containers.get(&name).cloned())
    }

    async fn acquire(&self, local: &Local) -> Result<Held<Fake>, Refused> {
        acquire(
            &self.engines,
            &self.env,
            &self.all(),
            "maestro start -a",
            local,
            &self.report,
        )
        .await
    }

    fn notices(&self) -> Vec<Notice> {
        self.notices.lock().unwrap().clone()
    }
}

fn other_operator() -> Local {
    Local {
        user: "bob".into(),
        host: "far".into(),
        pid: 300,
        pid_start: Some(9),
        ..local()
    }
}

#[tokio::test]
async fn a_second_play_is_refused_with_the_holder_until_the_first_releases() {
    let w = World::new();
    let held = w.acquire(&local()).await.expect("free ships are locked");
    assert_eq!(held.ships().collect::<Vec<_>>(), ["alpha", "zeta"]);
    let lock = w.lock_of("alpha").expect("alpha is locked");
    assert_eq!(lock.labels["io.maestro.lock.user"], "ann");
    assert_eq!(lock.labels["io.maestro.lock.command"], "maestro start -a");
    // No heartbeat yet: the `since` label is the first sign of life.
    assert!(
        lock.heartbeat.is_none(),
        "no request spent on a heartbeat at once"
    );
    assert!(lock.labels.contains_key("io.maestro.lock.since"));

    let Err(refused) = w.acquire(&other_operator()).await else {
        panic!("the second play must be refused");
    };
    match &refused {
        Refused::Held {
            ship,
            holder,
            liveness,
        } => {
            assert_eq!(ship, "alpha");
            assert_eq!((holder.user.as_str(), holder.host.as_str()), ("ann", "box"));
            assert!(liveness.is_alive());
        }
        other => panic!("{other:?}"),
    }
    let text = refused.to_string();
    assert!(
        text.starts_with("ship alpha is locked by ann@box (pid 100, \"maestro start -a\") since "),
        "{text}"
    );
    assert!(text.contains("alive, last heartbeat 0 s ago"), "{text}");
    // The refused play removed nothing of ours.
    assert_eq!(w.lock_of("alpha").unwrap().id, lock.id);

    held.release(&w.report).await;
    assert!(w.lock_of("alpha").is_none() && w.lock_of("zeta").is_none());
    let again = w.acquire(&other_operator()).await.expect("free again");
    again.release(&w.report).await;
    assert!(w.notices().is_empty(), "{:?}", w.notices());
}

#[tokio::test]
async fn a_silent_lock_is_taken_over_by_its_id() {
    let w = World::new();
    let old = holder("bob", "far", 300, 1, now() - 3600);
    let old_id = w.lock_held_by("alpha", &old, Some(now() - 180));
    let held = w.acquire(&local()).await.expect("taken over");
    let new = w.lock_of("alpha").unwrap();
    assert_ne!(new.id, old_id);
    assert_eq!(new.labels["io.maestro.lock.user"], "ann");
    assert!(
        w.fake("alpha")
            .with(|s| s.log.contains(&format!("remove {old_id}")))
    );
    match &w.notices()[..] {
        [Notice::TakingOver { ship, holder, why }] => {
            assert_eq!((ship.as_str(), holder), ("alpha", &old));
            assert!(matches!(why, Liveness::NoHeartbeat { seconds } if *seconds >= 180));
        }
        other => panic!("{other:?}"),
    }
    held.release(&w.report).await;
}

#[tokio::test]
async fn a_lock_whose_process_ended_on_this_host_is_taken_over() {
    let w = World::new();
    // Fresh heartbeat, but pid 300 does not run on "box".
    let dead = holder("bob", "box", 300, 1, now());
    w.lock_held_by("zeta", &dead, Some(now()));
    let held = w.acquire(&local()).await.expect("taken over");
    assert_eq!(
        w.notices(),
        [Notice::TakingOver {
            ship: "zeta".into(),
            holder: dead,
            why: Liveness::ProcessEnded
        }]
    );
    held.release(&w.report).await;
}

/// The other ships are connected to while the first ship's lock is asked for: with
/// ships that take 8 s to connect, three are locked in 8 s, not 16.
#[tokio::test(start_paused = true)]
async fn the_other_ships_connect_while_the_first_is_locked() {
    let w = World::of(THREE_SHIPS);
    for fake in w.engines.iter() {
        fake.with(|s| s.connect_delay = Duration::from_secs(8));
    }
    let began = tokio::time::Instant::now();
    let held = w.acquire(&local()).await.unwrap();
    assert_eq!(began.elapsed(), Duration::from_secs(8));
    assert_eq!(held.ships().count(), 3);
    held.release(&w.report).await;
}

/// The lock image is imported when a create says the ship lacks it, not looked for
/// before every create.
#[tokio::test]
async fn the_lock_image_is_imported_only_when_missing() {
    let w = World::new();
    let held = w.acquire(&local()).await.unwrap();
    held.release(&w.report).await;
    let held = w.acquire(&local()).await.unwrap();
    held.release(&w.report).await;
    let log = w.fake("alpha").with(|s| s.log.clone());
    let log: Vec<&str> = log.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        log,
        ["create", "import", "create", "remove", "create", "remove"]
    );
}

#[tokio::test]
async fn locks_are_all_or_nothing_in_ship_name_order() {
    let w = World::new();
    let alive = holder("bob", "far", 300, 1, now());
    let zeta_id = w.lock_held_by("zeta", &alive, Some(now()));
    let Err(Refused::Held { ship, holder, .. }) = w.acquire(&local()).await else {
        panic!("zeta is held");
    };
    assert_eq!((ship.as_str(), *holder), ("zeta", alive));
    // alpha (first by name, though second in the file) was taken, then given back.
    let alpha_log = w.fake("alpha").with(|s| s.log.clone());
    assert_eq!(alpha_log[0], "create maestro-lock.shop.alpha");
    assert!(
        alpha_log.last().unwrap().starts_with("remove "),
        "{alpha_log:?}"
    );
    assert!(w.lock_of("alpha").is_none());
    assert_eq!(w.lock_of("zeta").unwrap().id, zeta_id);
}

#[tokio::test]
async fn an_unreachable_ship_is_skipped_and_the_others_locked() {
    let w = World::new();
    w.fake("alpha").with(|s| s.unreachable = true);
    let held = w.acquire(&local()).await.expect("zeta alone is locked");
    assert_eq!(held.ships().collect::<Vec<_>>(), ["zeta"]);
    assert!(matches!(
        &w.notices()[..],
        [Notice::Unreachable { ship, .. }] if ship == "alpha"
    ));
    held.release(&w.report).await;
    assert!(w.lock_of("zeta").is_none());
}

#[tokio::test]
async fn an_engine_failure_refuses_and_gives_back_what_was_taken() {
    let w = World::new();
    w.fake("zeta").with(|s| s.refuse_create = true);
    let refused = w.acquire(&local()).await.err().expect("refused");
    assert_eq!(
        refused.to_string(),
        "cannot take the lock on ship zeta: no space left on device"
    );
    assert!(w.lock_of("alpha").is_none());
}

#[tokio::test]
async fn a_container_that_is_not_a_lock_is_never_removed() {
    let w = World::new();
    let name = container_name("shop", "alpha");
    w.fake("alpha").with(|s| s.insert(&name, Vec::new(), None));
    let refused = w.acquire(&local()).await.err().expect("refused");
    assert!(
        matches!(&refused, Refused::NotALock { ship, .. } if ship == "alpha"),
        "{refused:?}"
    );
    assert!(w.lock_of("alpha").is_some());
    let released = release(&w.engines, &w.env, &w.all(), true, &local()).await;
    assert_eq!(released[0], ("alpha".to_owned(), Released::NotALock));
    assert!(w.lock_of("alpha").is_some());
}

#[tokio::test]
async fn losing_the_race_after_a_take_over_is_a_refusal() {
    let w = World::new();
    let stale = holder("bob", "far", 300, 1, now() - 3600);
    w.lock_held_by("alpha", &stale, None);
    // Another taker creates its fresh lock right after our removal.
    let faster = holder("cy", "near", 400, 1, now());
    let name = container_name("shop", "alpha");
    let labels = faster.labels("shop", "alpha");
    w.fake("alpha").with(|s| {
        s.after_remove = Some(Box::new(move |s: &mut Store| {
            s.insert(&name, labels, Some(now()));
        }));
    });
    let Err(Refused::Held { holder, .. }) = w.acquire(&local()).await else {
        panic!("the faster taker holds alpha");
    };
    assert_eq!(*holder, faster);
    assert_eq!(
        w.lock_of("alpha").unwrap().labels["io.maestro.lock.user"],
        "cy"
    );
}

#[tokio::test(start_paused = true)]
async fn the_heartbeat_is_written_every_10_s_until_release() {
    let w = World::new();
    let held = w.acquire(&local()).await.unwrap();
    let beats = || {
        w.fake("alpha")
            .with(|s| s.log.iter().filter(|l| l.starts_with("beat ")).count())
    };
    assert_eq!(beats(), 0);
    tokio::time::sleep(HEARTBEAT_EVERY * 3 + Duration::from_millis(10)).await;
    assert_eq!(beats(), 3);
    held.release(&w.report).await;
    tokio::time::sleep(HEARTBEAT_EVERY * 3).await;
    assert_eq!(beats(), 3, "no heartbeat after release");
}

/// Heartbeats and releases go to every ship at once: in turn, a round over a few hundred
/// slow ships would outlast the staleness limit, and a release take seconds.
#[tokio::test(start_paused = true)]
async fn slow_ships_are_beaten_and_released_at_once_the_first_last() {
    let w = World::of(THREE_SHIPS);
    let held = w.acquire(&local()).await.unwrap();
    let slow = Duration::from_secs(8);
    for fake in w.engines.iter() {
        fake.with(|s| s.delay = slow);
    }
    // One round: each of the three beats takes 8 s; in turn the last would end at 34 s.
    tokio::time::sleep(HEARTBEAT_EVERY + slow + Duration::from_millis(10)).await;
    for ship in ["alpha", "beta", "gamma"] {
        let beats = w
            .fake(ship)
            .with(|s| s.log.iter().filter(|l| l.starts_with("beat ")).count());
        assert_eq!(beats, 1, "{ship}");
    }
    let began = tokio::time::Instant::now();
    held.release(&w.report).await;
    let removed = |ship: &str| w.fake(ship).with(|s| s.removed_at[0] - began);
    // beta and gamma together, then alpha (the first by name, where plays meet).
    assert_eq!(removed("beta"), slow);
    assert_eq!(removed("gamma"), slow);
    assert_eq!(removed("alpha"), slow * 2);
    assert!(w.notices().is_empty(), "{:?}", w.notices());
}

#[tokio::test(start_paused = true)]
async fn a_failing_heartbeat_is_reported_once() {
    let w = World::new();
    let held = w.acquire(&local()).await.unwrap();
    // Someone removed our lock by force.
    w.fake("alpha").with(|s| s.containers.clear());
    tokio::time::sleep(HEARTBEAT_EVERY * 3 + Duration::from_millis(10)).await;
    let failures: Vec<_> = w
        .notices()
        .into_iter()
        .filter(|n| matches!(n, Notice::BeatFailed { ship, .. } if ship == "alpha"))
        .collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    held.release(&w.report).await;
}

#[tokio::test]
async fn a_release_failure_is_a_warning() {
    let w = World::new();
    let held = w.acquire(&local()).await.unwrap();
    w.fake("zeta").with(|s| s.refuse_remove = true);
    held.release(&w.report).await;
    assert!(w.lock_of("alpha").is_none());
    match &w.notices()[..] {
        [n @ Notice::ReleaseFailed { ship, .. }] => {
            assert_eq!(ship, "zeta");
            assert!(
                n.to_string()
                    .contains("maestro lock release --force -S zeta"),
                "{n}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn status_and_release_follow_the_rules() {
    let w = World::new();
    let alive = holder("bob", "far", 300, 1, now());
    w.lock_held_by("alpha", &alive, Some(now()));
    let stale = holder("bob", "far", 300, 1, now() - 600);
    w.lock_held_by("zeta", &stale, Some(now() - 300));

    let locks = status(&w.engines, &w.env, &w.all(), &local()).await;
    assert_eq!(locks.len(), 2);
    assert_eq!(locks[0].ship, "alpha");
    assert_eq!(locks[0].name, "maestro-lock.shop.alpha");
    assert!(matches!(
        &locks[0].state,
        Ok(LockState::Held { holder, liveness, .. }) if *holder == alive && liveness.is_alive()
    ));
    assert!(matches!(
        &locks[1].state,
        Ok(LockState::Held {
            liveness: Liveness::NoHeartbeat { seconds: 300 },
            ..
        })
    ));

    let released = release(&w.engines, &w.env, &w.all(), false, &local()).await;
    assert!(matches!(&released[0], (s, Released::Kept { .. }) if s == "alpha"));
    assert!(matches!(&released[1], (s, Released::Removed { .. }) if s == "zeta"));
    assert!(w.lock_of("alpha").is_some() && w.lock_of("zeta").is_none());

    let released = release(&w.engines, &w.env, &[w.ship("alpha")], true, &local()).await;
    assert!(matches!(&released[..], [(s, Released::Removed { .. })] if s == "alpha"));
    let locks = status(&w.engines, &w.env, &w.all(), &local()).await;
    assert!(locks.iter().all(|l| l.state == Ok(LockState::Free)));

    w.fake("zeta").with(|s| s.unreachable = true);
    let locks = status(&w.engines, &w.env, &w.all(), &local()).await;
    assert!(matches!(
        locks[1].state,
        Err(EngineError::Unreachable { .. })
    ));
}

/// When the first ship (by name) is held, nothing is asked of the others: two plays that
/// share it meet there, and the second holds nothing while it is refused.
#[tokio::test]
async fn a_refusal_at_the_first_ship_asks_nothing_of_the_others() {
    let w = World::new();
    let alive = holder("bob", "far", 300, 1, now());
    w.lock_held_by("alpha", &alive, Some(now()));
    let Err(Refused::Held { ship, .. }) = w.acquire(&local()).await else {
        panic!("alpha is held");
    };
    assert_eq!(ship, "alpha");
    let zeta_log = w.fake("zeta").with(|s| s.log.clone());
    assert!(zeta_log.is_empty(), "{zeta_log:?}");
}
