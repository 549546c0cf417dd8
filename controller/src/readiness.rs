//! The controller's side of the readiness handshake (proto/readiness.proto). During a
//! start or restart play the controller serves the `Readiness` service; every container it
//! creates gets the endpoint and a random per-instance token in `MAESTRO_READINESS_*`
//! variables, and the maestro-guest inside pushes its states. [`Registry`] is the pure
//! part (tokens, replay protection, delivery to the waiting task) and is tested with plain
//! data; [`Server`] only adapts it to tonic and to listening sockets.

use std::collections::HashMap;
mod server;

pub use server::Limits;
use server::Server;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use maestro_core::model::Ship;

pub mod pb {
    tonic::include_proto!("maestro.readiness.v1");
}

use pb::state_report::State;

/// The variables a container gets (and maestro-guest reads).
pub const ENDPOINT_VAR: &str = "MAESTRO_READINESS_ENDPOINT";
pub const TOKEN_VAR: &str = "MAESTRO_READINESS_TOKEN";
/// With `--readiness-tls`: the hex SHA-256 of the play's certificate, the only one the
/// guest accepts.
pub const PIN_VAR: &str = "MAESTRO_READINESS_CERT_SHA256";

/// What a guest said about its instance, as the waiting start task sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Word {
    Starting {
        status: String,
    },
    Ready {
        took_ms: u64,
        status: String,
    },
    Failed {
        exit_code: Option<i32>,
        last_lines: Vec<String>,
        reason: String,
    },
    Stopping,
    /// A report naming this instance was refused; the text says why.
    Refused(String),
}

struct Slot {
    instance: String,
    /// The highest sequence accepted so far: a report must exceed it.
    sequence: u64,
    /// The first accepted report's sequence and when it arrived: later ones may run ahead
    /// of it by the time since, and [`LEAD`] more, no further.
    first: Option<(u64, Instant)>,
    /// Reports naming the instance that were refused; only the first is told to its task.
    refused: Arc<AtomicU64>,
    words: mpsc::UnboundedSender<Word>,
}

/// How far a report's sequence may run ahead of the time since the first accepted report
/// (the guest's sequence is its clock in microseconds; a counter is always behind). A
/// report beyond it is refused: without the bound, one forged report at `u64::MAX` would
/// make every later report of the real guest look replayed. With it, a forger holding the
/// token can push the sequence at most this far ahead of the guest's clock.
const LEAD: Duration = Duration::from_secs(60);

/// The tokens handed out in this play and where their reports go.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Tokens>,
}

/// The slots by token, and each instance's current token: a play creating ahead keeps
/// many expectations alive at once, so nothing here scans them all.
#[derive(Default)]
struct Tokens {
    slots: HashMap<String, Slot>,
    current: HashMap<String, String>,
}

/// The receiving end of one instance's reports; dropping it retires the token.
pub struct Expectation {
    pub token: String,
    pub words: mpsc::UnboundedReceiver<Word>,
    refused: Arc<AtomicU64>,
    registry: Arc<Registry>,
}

impl Expectation {
    /// How many reports naming this instance were refused (only the first comes as a
    /// [`Word::Refused`]: a script sending thousands must not flood the terminal).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl Drop for Expectation {
    fn drop(&mut self) {
        let mut tokens = self.registry.lock();
        if let Some(slot) = tokens.slots.remove(&self.token) {
            // Only if it is still the instance's current token (a newer one replaced it
            // otherwise, and stays).
            if tokens.current.get(&slot.instance) == Some(&self.token) {
                tokens.current.remove(&slot.instance);
            }
        }
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Tokens> {
        // A panic while holding the lock cannot leave the maps inconsistent (nothing that
        // can panic runs between their updates), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands out a fresh token for `instance`; any earlier token of the instance stops
    /// being accepted.
    pub fn expect(self: &Arc<Self>, instance: &str, token: String) -> Expectation {
        let (tx, rx) = mpsc::unbounded_channel();
        let refused = Arc::new(AtomicU64::new(0));
        let mut tokens = self.lock();
        if let Some(old) = tokens.current.insert(instance.to_owned(), token.clone()) {
            tokens.slots.remove(&old);
        }
        tokens.slots.insert(
            token.clone(),
            Slot {
                instance: instance.to_owned(),
                sequence: 0,
                first: None,
                refused: refused.clone(),
                words: tx,
            },
        );
        Expectation {
            token,
            words: rx,
            refused,
            registry: self.clone(),
        }
    }

    /// Takes one report: accepted only with the instance's current token and a sequence
    /// above every earlier one (so a captured report cannot be replayed) and not too far
    /// ahead ([`LEAD`]).
    pub fn report(&self, report: pb::StateReport) -> pb::Ack {
        self.report_at(report, Instant::now())
    }

    /// [`Registry::report`] as if it arrived at `now`.
    fn report_at(&self, report: pb::StateReport, now: Instant) -> pb::Ack {
        let mut tokens = self.lock();
        let Tokens { slots, current } = &mut *tokens;
        let furthest = |(first, at): (u64, Instant)| {
            let since = now.saturating_duration_since(at) + LEAD;
            first.saturating_add(u64::try_from(since.as_micros()).unwrap_or(u64::MAX))
        };
        let refusal = match slots.get_mut(&report.token) {
            None => "unknown token (wrong, or from an earlier play)".to_owned(),
            Some(slot) if slot.instance != report.instance => format!(
                "the token belongs to another instance, not {}",
                escape(report.instance.clone(), false)
            ),
            Some(slot) if report.sequence <= slot.sequence => format!(
                "replayed or out-of-order report (sequence {} after {})",
                report.sequence, slot.sequence
            ),
            Some(slot) if slot.first.is_some_and(|f| report.sequence > furthest(f)) => format!(
                "sequence {} too far ahead (at most {} now: the sequence counts microseconds)",
                report.sequence,
                slot.first.map_or(0, furthest)
            ),
            Some(slot) => {
                let word = match report.state {
                    Some(State::Starting(_)) | None => Word::Starting {
                        status: escape(report.status, false),
                    },
                    Some(State::Ready(r)) => Word::Ready {
                        took_ms: r.took_ms,
                        status: escape(report.status, false),
                    },
                    Some(State::Failed(f)) => Word::Failed {
                        exit_code: f.exit_code,
                        last_lines: f.last_lines.into_iter().map(|l| escape(l, false)).collect(),
                        reason: escape(f.reason, true),
                    },
                    Some(State::Stopping(_)) => Word::Stopping,
                };
                slot.sequence = report.sequence;
                slot.first.get_or_insert((report.sequence, now));
                // The waiting task may be gone (the play moved on); the report was still
                // valid, so it is acknowledged.
                let _ = slot.words.send(word);
                return pb::Ack {
                    accepted: true,
                    reason: String::new(),
                };
            }
        };
        // Tell the instance's task, if the report named one we wait for: a guest whose
        // token is refused would otherwise look like a guest that is merely slow. Once: the
        // rest are counted.
        if let Some(slot) = current.get(&report.instance).and_then(|t| slots.get(t)) {
            if slot.refused.fetch_add(1, Ordering::Relaxed) == 0 {
                let _ = slot.words.send(Word::Refused(refusal.clone()));
            }
        }
        pb::Ack {
            accepted: false,
            reason: refusal,
        }
    }
}

/// Text from a guest (anyone who can reach the service, in plain mode) as it may reach a
/// terminal: control characters, and the bidirectional controls that reorder what is
/// shown, written as Rust escapes (`\u{1b}`, `\r`, `\t`), so no report can move the
/// cursor, retitle the window or hide text. A newline is kept where `lines` says the text
/// may span lines.
fn escape(text: String, lines: bool) -> String {
    let raw = |c: char| {
        (c.is_control() && !(lines && c == '\n'))
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(raw) {
        return text;
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if raw(c) {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    escaped
}

/// A fresh random token: 128 bits from the operating system, in hex.
pub fn token() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The address at which containers of `ship` reach this machine, if they can: the
/// `docker0` bridge for a local engine, else the local address the route to the ship
/// leaves from. `None` for ships behind an SSH tunnel (the containers there cannot reach
/// the operator's workstation in general); they keep the polling checks.
pub fn address_for(ship: &Ship, bridge: Option<IpAddr>) -> Option<IpAddr> {
    if ship.ssh_tunnel.is_some() {
        return None;
    }
    let local_engine = ship.socket_path.is_some()
        || ship
            .ip
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified());
    if local_engine {
        return bridge;
    }
    let port = ship.docker_port.unwrap_or(2375);
    // Connecting a UDP socket sends nothing; it only asks the kernel for the route.
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect((ship.ip.as_str(), port)).ok()?;
    let local = socket.local_addr().ok()?.ip();
    if local.is_loopback() {
        bridge
    } else {
        Some(local)
    }
}

/// How the operator set up the handshake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub listen: Listen,
    pub tls: bool,
}

/// Where readiness reports may come from, as the operator set it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Listen {
    /// Per ship, the address its containers reach this machine at ([`address_for`]).
    #[default]
    Auto,
    /// This address for every ship (a NAT, a VPN, a second interface).
    At(IpAddr),
    /// No handshake: every instance keeps the polling checks.
    Off,
}

impl std::str::FromStr for Listen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "auto" => Ok(Listen::Auto),
            "off" => Ok(Listen::Off),
            _ => text
                .parse()
                .map(Listen::At)
                .map_err(|_| format!("'{text}' is not an IP address, 'auto' or 'off'")),
        }
    }
}

/// The handshake of one play: the registry, each ship's endpoint, and the server that
/// feeds the registry (none in tests, which feed it directly).
pub struct Handshake {
    pub registry: Arc<Registry>,
    /// By ship index; `None` where containers cannot report (they keep polling checks).
    endpoints: Vec<Option<String>>,
    /// The certificate's SHA-256, when the service speaks TLS.
    pin: Option<String>,
    _server: Option<Server>,
}

/// What one instance is given to report with.
pub struct Invitation {
    pub expected: Expectation,
    pub endpoint: String,
    pub pin: Option<String>,
}

impl Invitation {
    /// The container's variables (`NAME=value`).
    pub fn variables(&self) -> Vec<String> {
        let mut vars = vec![
            format!("{ENDPOINT_VAR}={}", self.endpoint),
            format!("{TOKEN_VAR}={}", self.expected.token),
        ];
        if let Some(pin) = &self.pin {
            vars.push(format!("{PIN_VAR}={pin}"));
        }
        vars
    }
}

impl Handshake {
    /// Serves the handshake for the ships in `ships` (indices into `env_ships`).
    pub async fn serve(
        env_ships: &[Ship],
        ships: impl IntoIterator<Item = usize>,
        listen: Listen,
        tls: bool,
    ) -> (Handshake, Vec<String>) {
        let bridge = crate::load::bridge_address().and_then(|a| a.parse().ok());
        let mut addresses: Vec<Option<IpAddr>> = vec![None; env_ships.len()];
        for ship in ships {
            addresses[ship] = match listen {
                Listen::Off => None,
                Listen::At(ip) => Some(ip),
                Listen::Auto => address_for(&env_ships[ship], bridge),
            };
        }
        let mut warnings = Vec::new();
        let tls = match tls.then(server::Tls::ephemeral).transpose() {
            Ok(tls) => tls,
            Err(e) => {
                // Without its certificate the handshake is off, not plain: the operator
                // asked for TLS.
                warnings.push(format!("{e}; the readiness handshake is off"));
                addresses.iter_mut().for_each(|a| *a = None);
                None
            }
        };
        let (server, more) = Server::start(
            addresses.iter().flatten().copied(),
            tls,
            server::Limits::for_process(),
        )
        .await;
        warnings.extend(more);
        let endpoints = addresses
            .iter()
            .map(|a| a.and_then(|a| server.endpoint(a)).map(str::to_owned))
            .collect();
        (
            Handshake {
                registry: server.registry.clone(),
                endpoints,
                pin: server.pin.clone(),
                _server: Some(server),
            },
            warnings,
        )
    }

    /// A handshake without a server, for tests: reports go straight into the registry.
    #[cfg(test)]
    pub fn direct(endpoints: Vec<Option<String>>) -> Handshake {
        Handshake {
            registry: Arc::default(),
            endpoints,
            pin: None,
            _server: None,
        }
    }

    /// A token and the endpoint for an instance about to be created on `ship`; `None` when
    /// that ship's containers cannot report.
    pub fn expect(&self, instance: &str, ship: usize) -> Result<Option<Invitation>, String> {
        let Some(endpoint) = self.endpoints.get(ship).cloned().flatten() else {
            return Ok(None);
        };
        Ok(Some(Invitation {
            expected: self.registry.expect(instance, token()?),
            endpoint,
            pin: self.pin.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(instance: &str, token: &str, sequence: u64) -> pb::StateReport {
        pb::StateReport {
            instance: instance.into(),
            token: token.into(),
            sequence,
            state: Some(State::Ready(pb::Ready { took_ms: 7 })),
            status: "up".into(),
        }
    }

    fn refused(ack: pb::Ack) -> String {
        assert!(!ack.accepted);
        ack.reason
    }

    #[test]
    fn reports_need_the_current_token_of_their_instance_and_a_rising_sequence() {
        let registry = Arc::new(Registry::default());
        let mut a = registry.expect("a-1", "ta".into());
        let mut b = registry.expect("b-1", "tb".into());
        assert!(registry.report(report("a-1", "ta", 5)).accepted);
        assert_eq!(
            a.words.try_recv(),
            Ok(Word::Ready {
                took_ms: 7,
                status: "up".into()
            })
        );
        // The same report again, and an older one: replays.
        assert!(refused(registry.report(report("a-1", "ta", 5))).contains("replayed"));
        assert!(refused(registry.report(report("a-1", "ta", 4))).contains("replayed"));
        assert!(registry.report(report("a-1", "ta", 6)).accepted);
        // Another instance's token.
        assert!(refused(registry.report(report("a-1", "tb", 9))).contains("another instance"));
        // A refusal naming an instance reaches that instance's task, the first one only;
        // the others are counted.
        assert!(matches!(a.words.try_recv(), Ok(Word::Refused(why)) if why.contains("replayed")));
        assert!(matches!(a.words.try_recv(), Ok(Word::Ready { .. })));
        assert!(a.words.try_recv().is_err());
        assert_eq!(a.refused(), 3);
        assert!(b.words.try_recv().is_err());
        assert_eq!(b.refused(), 0);
        // A new token for the instance retires the old one (a stale token).
        let _a2 = registry.expect("a-1", "ta2".into());
        assert!(refused(registry.report(report("a-1", "ta", 7))).contains("unknown token"));
        // So does the end of the wait.
        drop(b);
        assert!(refused(registry.report(report("b-1", "tb", 1))).contains("unknown token"));
    }

    /// Many instances, each given a new token before its old wait ended, the old ones
    /// ending first or last: one slot and one current token per instance, and a refusal
    /// still reaches the current wait.
    #[test]
    fn each_instance_keeps_one_current_token_whatever_order_waits_end_in() {
        let registry = Arc::new(Registry::default());
        let names: Vec<String> = (0..1000).map(|i| format!("i-{i}")).collect();
        let old: Vec<Expectation> = names
            .iter()
            .map(|n| registry.expect(n, format!("{n}-old")))
            .collect();
        let mut new: Vec<Expectation> = names
            .iter()
            .map(|n| registry.expect(n, format!("{n}-new")))
            .collect();
        drop(old);
        {
            let tokens = registry.lock();
            assert_eq!((tokens.slots.len(), tokens.current.len()), (1000, 1000));
            assert_eq!(tokens.current["i-7"], "i-7-new");
        }
        assert!(refused(registry.report(report("i-7", "i-7-old", 1))).contains("unknown token"));
        assert!(matches!(new[7].words.try_recv(), Ok(Word::Refused(_))));
        assert!(registry.report(report("i-7", "i-7-new", 1)).accepted);
        new.clear();
        let tokens = registry.lock();
        assert_eq!((tokens.slots.len(), tokens.current.len()), (0, 0));
    }

    #[test]
    fn refusals_naming_an_instance_are_told_once_and_counted() {
        let registry = Arc::new(Registry::default());
        let mut a = registry.expect("a-1", "ta".into());
        // A script sending forged reports as fast as it can: one word for the task (one
        // line on the terminal), the rest counted.
        for sequence in 1..=6800 {
            let ack = registry.report(report("a-1", "0123456789abcdef", sequence));
            assert!(refused(ack).contains("unknown token"));
        }
        assert!(
            matches!(a.words.try_recv(), Ok(Word::Refused(why)) if why.contains("unknown token"))
        );
        assert!(a.words.try_recv().is_err());
        assert_eq!(a.refused(), 6800);
        // The real guest is not hindered.
        assert!(registry.report(report("a-1", "ta", 1)).accepted);
        assert!(matches!(a.words.try_recv(), Ok(Word::Ready { .. })));
    }

    #[test]
    fn a_sequence_may_run_ahead_of_the_first_by_the_time_since_it_and_a_minute_at_most() {
        use std::time::Duration;
        let registry = Arc::new(Registry::default());
        let _a = registry.expect("a-1", "ta".into());
        let s = |d: u64| Duration::from_secs(d);
        let us = |d: u64| d * 1_000_000;
        let t0 = Instant::now();
        // The guest's sequence is its clock in microseconds; the controller's clock may be
        // anywhere else.
        let first = 1_700_000_000_000_000;
        assert!(registry.report_at(report("a-1", "ta", first), t0).accepted);
        // One forged report at the end of the range is refused and moves nothing...
        let why = refused(registry.report_at(report("a-1", "ta", u64::MAX), t0 + s(1)));
        assert!(why.contains("too far ahead"), "{why}");
        // ...so the real guest goes on.
        assert!(
            registry
                .report_at(report("a-1", "ta", first + us(2)), t0 + s(2))
                .accepted
        );
        // Ten seconds after the first: at most ten seconds and a minute ahead of it.
        let furthest = first + us(10) + us(60);
        let why = refused(registry.report_at(report("a-1", "ta", furthest + 1), t0 + s(10)));
        assert!(why.contains("too far ahead"), "{why}");
        assert!(
            registry
                .report_at(report("a-1", "ta", furthest), t0 + s(10))
                .accepted
        );
        // That is the furthest a forger can push it: the real guest's clock passes it a
        // minute later, and its reports count again.
        let why = refused(registry.report_at(report("a-1", "ta", first + us(20)), t0 + s(20)));
        assert!(why.contains("replayed"), "{why}");
        assert!(
            registry
                .report_at(report("a-1", "ta", first + us(71)), t0 + s(71))
                .accepted
        );
    }

    #[test]
    fn guest_text_reaches_the_task_with_its_control_characters_escaped() {
        let registry = Arc::new(Registry::default());
        let mut a = registry.expect("a-1", "ta".into());
        let mut starting = report("a-1", "ta", 1);
        starting.state = Some(State::Starting(pb::Starting {}));
        starting.status = "\x1b]0;owned\x07\x1b[2J\rloading\n\u{202e}txt.exe\tok é".into();
        assert!(registry.report(starting).accepted);
        assert_eq!(
            a.words.try_recv(),
            Ok(Word::Starting {
                status: "\\u{1b}]0;owned\\u{7}\\u{1b}[2J\\rloading\\n\\u{202e}txt.exe\\tok é"
                    .into()
            })
        );
        let mut failed = report("a-1", "ta", 2);
        failed.state = Some(State::Failed(pb::Failed {
            exit_code: Some(1),
            last_lines: vec!["\x1b[31mred\x1b[0m\n".into(), "\u{9b}2J".into()],
            reason: "render failed:\n  line 3: \x1b[8mhidden".into(),
        }));
        assert!(registry.report(failed).accepted);
        assert_eq!(
            a.words.try_recv(),
            Ok(Word::Failed {
                exit_code: Some(1),
                // A line is one line.
                last_lines: vec!["\\u{1b}[31mred\\u{1b}[0m\\n".into(), "\\u{9b}2J".into()],
                // A reason may span lines.
                reason: "render failed:\n  line 3: \\u{1b}[8mhidden".into(),
            })
        );
    }

    #[test]
    fn tokens_are_fresh_128_bit_hex() {
        let (t1, t2) = (token().unwrap(), token().unwrap());
        assert_eq!(t1.len(), 32);
        assert!(t1.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(t1, t2);
    }

    #[test]
    fn listen_settings_parse() {
        assert_eq!("auto".parse(), Ok(Listen::Auto));
        assert_eq!("off".parse(), Ok(Listen::Off));
        assert_eq!(
            "10.0.0.1".parse(),
            Ok(Listen::At(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))))
        );
        assert_eq!(
            "nowhere".parse::<Listen>(),
            Err("'nowhere' is not an IP address, 'auto' or 'off'".into())
        );
    }

    #[test]
    fn ships_behind_ssh_get_no_address_and_local_engines_the_bridge() {
        let bridge = Some(IpAddr::V4(Ipv4Addr::new(172, 17, 0, 1)));
        let mut local = Ship::new("l", "127.0.0.1");
        assert_eq!(address_for(&local, bridge), bridge);
        local.socket_path = Some("/var/run/docker.sock".into());
        local.ip = "192.0.2.7".into();
        assert_eq!(address_for(&local, bridge), bridge);
        let mut ssh = Ship::new("s", "192.0.2.8");
        ssh.ssh_tunnel = Some(maestro_core::model::SshTunnel {
            user: "ops".into(),
            key: "id".into(),
            port: 22,
            known_hosts: None,
            accept_new_host_key: false,
        });
        assert_eq!(address_for(&ssh, bridge), None);
    }

    #[test]
    fn runs_guest_reads_entrypoint_and_command() {
        use crate::engine::runs_guest;
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(runs_guest(
            &words(&["/bin/maestro-guest", "run"]),
            &words(&["--", "x"]),
            false
        ));
        assert!(runs_guest(
            &[],
            &words(&["maestro-guest", "run", "--", "x"]),
            false
        ));
        assert!(!runs_guest(
            &words(&["/bin/maestro-guest"]),
            &words(&["render", "a"]),
            false
        ));
        assert!(!runs_guest(
            &[],
            &words(&["sh", "-c", "maestro-guest run -- x"]),
            false
        ));
        assert!(runs_guest(&[], &words(&["sh", "/start.sh"]), true));
    }
}
