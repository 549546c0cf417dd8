//! A simulated ship: a small HTTP/1.1 server that speaks the part of the Docker Engine
//! API maestro uses, keeps its containers in memory, and makes every request wait a
//! configurable latency under a limit of requests in flight. Many run in one process, one
//! per loopback port. It is a test instrument for many-ship and slow-ship behaviour, not
//! an engine: it runs no command (a started container runs until it is stopped, or exits
//! at once when its image says so), and the real engine stays the reference in the
//! end-to-end tests.
//!
//! What it answers (with or without a `/v1.NN` prefix): `_ping`, `version`, `info`;
//! `containers/json` (`all`, filters `label`, `name` — regular expressions matched
//! anywhere in `/name`, as Docker does —, `id`, `status`), `containers/create`,
//! `containers/{id}/json|start|stop|kill|rename|update|logs|archive|exec`, `DELETE
//! containers/{id}`, `exec/{id}/start|json`, `images/{name}/json|tag`, `images/create`
//! (pull from the simulated registry, or import with `fromSrc=-`), `DELETE
//! images/{name}`, `distribution/{name}/json`, and `events` (`since`, `until`, filters
//! `type`, `container`, `event`, `image`, `label`, `scope`). Anything else is refused with
//! a message naming it. `GET /_simship/stats` (no latency, no limit) tells its counters;
//! [`Ship::journal`] what was done to containers, in order.

mod server;
mod state;
mod util;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, broadcast};

use state::{Event, Registry, State};

/// What a container of an image does once started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Behaviour {
    /// Runs until stopped or killed; a health check passes.
    #[default]
    Run,
    /// Exits at once with this code.
    Exit(i64),
    /// Runs, and its health check fails.
    Unhealthy,
}

/// An image the ships have (and their registry serves): a name, or a pattern with `*`
/// (`registry:5000/team/*`, `*`), and what its containers do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRule {
    pub pattern: String,
    pub behaviour: Behaviour,
}

impl std::str::FromStr for ImageRule {
    type Err = String;

    /// `NAME`, `NAME=run`, `NAME=exit:N` or `NAME=unhealthy`.
    fn from_str(text: &str) -> Result<Self, String> {
        let (pattern, behaviour) = match text.split_once('=') {
            None => (text, Behaviour::Run),
            Some((pattern, "run")) => (pattern, Behaviour::Run),
            Some((pattern, "unhealthy")) => (pattern, Behaviour::Unhealthy),
            Some((pattern, word)) => match word.strip_prefix("exit:").map(str::parse) {
                Some(Ok(code)) => (pattern, Behaviour::Exit(code)),
                _ => {
                    return Err(format!(
                        "image {text:?}: expected NAME, NAME=run, NAME=exit:CODE or NAME=unhealthy"
                    ));
                }
            },
        };
        if pattern.is_empty() {
            return Err(format!("image {text:?}: the name is empty"));
        }
        Ok(ImageRule {
            pattern: pattern.to_owned(),
            behaviour,
        })
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    /// How long every request waits, holding its place among those in flight.
    pub latency: Duration,
    /// How many requests a ship serves at once (each for at least `latency`); 0: no limit.
    pub in_flight: usize,
    /// The images every ship has and its registry serves; the first rule that matches
    /// decides. Others are absent (404) and cannot be pulled.
    pub images: Vec<ImageRule>,
    /// The first ship's port, the others following; 0: free ports the system chooses.
    pub base_port: u16,
}

impl Options {
    /// Every image present, running until stopped.
    pub fn new(latency: Duration, in_flight: usize) -> Self {
        Options {
            latency,
            in_flight,
            images: vec![ImageRule {
                pattern: "*".into(),
                behaviour: Behaviour::Run,
            }],
            base_port: 0,
        }
    }

    /// Only these images (see [`ImageRule`]'s syntax).
    pub fn images(mut self, rules: &[&str]) -> Self {
        self.images = rules
            .iter()
            .map(|r| r.parse().unwrap_or_else(|e| panic!("{e}")))
            .collect();
        self
    }

    /// What containers of `name` do, if the ships have it.
    pub fn present(&self, name: &str) -> Option<Behaviour> {
        let (repository, suffix) = util::reference(name);
        let shown = format!("{}{suffix}", state::familiar(&repository));
        self.images
            .iter()
            .find(|rule| {
                if rule.pattern.contains('*') {
                    util::glob(&rule.pattern, name) || util::glob(&rule.pattern, &shown)
                } else {
                    util::reference(&rule.pattern) == (repository.clone(), suffix.clone())
                }
            })
            .map(|rule| rule.behaviour)
    }
}

/// What a ship counts, by kind of request.
pub const KINDS: [&str; 21] = [
    "ping",
    "version",
    "info",
    "list",
    "create",
    "inspect",
    "start",
    "stop",
    "kill",
    "rename",
    "update",
    "remove",
    "logs",
    "archive",
    "exec",
    "image",
    "pull",
    "tag",
    "distribution",
    "events",
    "other",
];

#[derive(Default)]
struct Stats {
    counts: [AtomicU64; KINDS.len()],
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    waiting: AtomicUsize,
    max_waiting: AtomicUsize,
    accept_errors: AtomicU64,
    refused: AtomicU64,
    connections: AtomicU64,
}

/// A ship's counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests by kind (see [`KINDS`]).
    pub requests: Vec<(&'static str, u64)>,
    /// The most requests it served at once, and the most that waited for a place.
    pub max_in_flight: usize,
    pub max_waiting: usize,
    pub accept_errors: u64,
    /// Connections accepted.
    pub connections: u64,
    /// Requests answered with an error (4xx, 5xx), counted in `requests` too.
    pub refused: u64,
    pub running: usize,
    pub exited: usize,
    pub created: usize,
}

impl Counters {
    pub fn total(&self) -> u64 {
        self.requests.iter().map(|(_, n)| n).sum()
    }

    pub fn get(&self, kind: &str) -> u64 {
        self.requests
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    }
}

/// One simulated engine.
pub struct Ship {
    pub port: u16,
    seed: u64,
    options: Arc<Options>,
    registry: Arc<Registry>,
    permits: Option<Semaphore>,
    state: Mutex<State>,
    events: broadcast::Sender<Arc<Event>>,
    stats: Stats,
    /// The containers' creates, starts, stops, kills and removals, in order.
    journal: Mutex<Vec<String>>,
}

impl Ship {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn counters(&self) -> Counters {
        let state = self.state();
        let count = |run| state.containers.values().filter(|c| c.run == run).count();
        Counters {
            requests: KINDS
                .iter()
                .zip(&self.stats.counts)
                .map(|(k, n)| (*k, n.load(Ordering::Relaxed)))
                .collect(),
            max_in_flight: self.stats.max_in_flight.load(Ordering::Relaxed),
            max_waiting: self.stats.max_waiting.load(Ordering::Relaxed),
            accept_errors: self.stats.accept_errors.load(Ordering::Relaxed),
            connections: self.stats.connections.load(Ordering::Relaxed),
            refused: self.stats.refused.load(Ordering::Relaxed),
            running: count(state::Run::Running),
            exited: count(state::Run::Exited),
            created: count(state::Run::Created),
        }
    }

    /// What was done to containers, in order, as `KIND NAME` (kind `create`, `start`,
    /// `stop`, `kill`, `remove`; a removal names what it was asked for, the container
    /// being gone).
    pub fn journal(&self) -> Vec<String> {
        self.journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Each container: name (without `/`), state (`created`, `running`, `exited`), exit
    /// code, labels.
    pub fn containers(&self) -> Vec<(String, &'static str, i64)> {
        let mut list: Vec<_> = self
            .state()
            .containers
            .values()
            .map(|c| (c.bare_name().to_owned(), c.run.word(), c.exit_code))
            .collect();
        list.sort();
        list
    }
}

/// Binds `n` ships on 127.0.0.1 and serves them on the current tokio runtime.
pub async fn launch(n: usize, options: Options) -> std::io::Result<Vec<Arc<Ship>>> {
    let options = Arc::new(options);
    let registry = Arc::new(Registry::default());
    let process = u64::from(std::process::id()) << 32;
    let mut ships = Vec::with_capacity(n);
    for i in 0..n {
        let address = match options.base_port {
            0 => std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            base => {
                let port = usize::from(base) + i;
                let port = u16::try_from(port).map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("ship {i}: port {port} is above 65535"),
                    )
                })?;
                std::net::SocketAddr::from(([127, 0, 0, 1], port))
            }
        };
        let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on {address}: {e}"))
        })?;
        let port = listener.local_addr()?.port();
        let ship = Arc::new(Ship {
            port,
            seed: util::mix(process ^ u64::from(port)),
            options: options.clone(),
            registry: registry.clone(),
            permits: (options.in_flight > 0).then(|| Semaphore::new(options.in_flight)),
            state: Mutex::new(State::default()),
            events: broadcast::channel(1024).0,
            stats: Stats::default(),
            journal: Mutex::default(),
        });
        tokio::spawn(server::accept(listener, ship.clone()));
        ships.push(ship);
    }
    Ok(ships)
}

/// Simulated ships served by their own runtime (two worker threads), for tests that run
/// maestro as a process; dropping it stops them and closes their ports.
pub struct SimShips {
    runtime: Option<tokio::runtime::Runtime>,
    pub ships: Vec<Arc<Ship>>,
}

impl SimShips {
    /// `n` ships, every request waiting `latency` with at most `in_flight` at once per
    /// ship, every image present.
    pub fn start(n: usize, latency: Duration, in_flight: usize) -> std::io::Result<SimShips> {
        SimShips::with(n, Options::new(latency, in_flight))
    }

    pub fn with(n: usize, options: Options) -> std::io::Result<SimShips> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("simship")
            .enable_all()
            .build()?;
        let ships = runtime.block_on(launch(n, options))?;
        Ok(SimShips {
            runtime: Some(runtime),
            ships,
        })
    }

    pub fn ports(&self) -> Vec<u16> {
        self.ships.iter().map(|s| s.port).collect()
    }
}

impl Drop for SimShips {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// This process's CPU time (user + system) and peak resident memory, from `/proc/self`.
pub fn usage() -> Option<(Duration, u64)> {
    usage_of("self")
}

/// The CPU time (user + system) and peak resident memory (bytes) of process `pid`
/// (`self` for this one), from `/proc`.
pub fn usage_of(pid: &str) -> Option<(Duration, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command's closing parenthesis; utime and stime are the 14th
    // and 15th of the line.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    let cpu = Duration::from_millis(ticks * 10);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some((cpu, kib * 1024))
}
