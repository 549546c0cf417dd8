//! Open files: the process's limit, and how many connections each ship's engine client
//! may hold within it.
//!
//! Every connection to an engine is an open file (three through a TLS tunnel: the
//! client's end, the tunnel's end and the TCP connection to the engine). A thousand ships
//! running 16 operations at once hold 16,000; past the limit, connecting fails with "Too
//! many open files" and operations fail at random. So a ship's client never holds more
//! connections than its share (see [`shares`]), and a play never runs more operations at
//! once on a ship than its client may hold connections: no connection is opened that the
//! limit cannot carry, and operations wait for a place, not for a connection inside a
//! request's bound.

use maestro_core::model::Ship;

/// Files kept for everything but engine connections: the readiness server's
/// connections (as many as it holds under this limit), and [`OTHERS`].
fn reserve(limit: u64) -> u64 {
    let reports = crate::readiness::Limits::for_files(Some(limit)).connections as u64;
    reports + OTHERS
}

/// Files for the rest: the terminal, the runtime's own, listening sockets, audit sinks,
/// secrets' files and programs, the streams meant to last. Not counted: tcp and http
/// checks, a socket each while an attempt lasts (at most one per place): an attempt that
/// finds no file free fails like one that finds no listener, and is tried again.
const OTHERS: u64 = 128;

/// Files a ship holds whatever its connections: a tunnel's listening socket, and an
/// `ssh` child's pipes.
fn fixed(ship: &Ship) -> u64 {
    if ship.ssh_tunnel.is_some() || tunnels_tls(ship) {
        4
    } else {
        0
    }
}

/// Files one connection to the ship holds in this process.
fn per_connection(ship: &Ship) -> u64 {
    if tunnels_tls(ship) { 3 } else { 1 }
}

/// The ship is reached through the TLS tunnel (see `DockerEngine::client`).
fn tunnels_tls(ship: &Ship) -> bool {
    ship.ssh_tunnel.is_none() && ship.socket_path.is_none() && (ship.tls || ship.tls_verify)
}

/// The open-file limit in force (`None`: none, or it cannot be read).
pub fn limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// Raises the soft limit of open files to the hard one, as Go's runtime has done since
/// 1.19: the soft limit (often 1,024) is kept low for programs that use `select(2)`, which
/// nothing here does, and thousands of instances need more (the engines' connections,
/// tunnels, readiness reports). Best effort: the limit in force is what counts (see
/// [`limit`]). Called before anything opens a file.
pub fn raise_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let Some(soft) = limit.current else {
        return;
    };
    let wanted = match limit.maximum {
        Some(hard) => hard,
        // No hard limit: macOS refuses an unlimited soft one; its per-process ceiling
        // (`kern.maxfilesperproc`) is at least 10,240.
        None => soft.max(10_240),
    };
    if soft < wanted {
        let _ = setrlimit(Resource::Nofile, rlimit(wanted, limit.maximum));
    }
}

fn rlimit(current: u64, maximum: Option<u64>) -> rustix::process::Rlimit {
    rustix::process::Rlimit {
        current: Some(current),
        maximum,
    }
}

/// How many connections each ship may hold, and what the operator should hear when that
/// is fewer than the ships' `max_operations` ask for.
#[derive(Debug, PartialEq)]
pub struct Shares {
    pub connections: Vec<usize>,
    pub warning: Option<String>,
}

/// Each ship's share of `limit` open files (`None`: no limit): what its operations ask
/// for (`super::operations`) if every ship's fits; otherwise the same number `n` for
/// every ship that asks for more, the largest whose files fit, and at least one (then
/// with a warning that says more would not fit). Ships a play does not use are counted
/// too: the engine clients are made before the play is known, and a ship used by no
/// operation opens nothing, so counting it only makes the others' share smaller.
pub fn shares(ships: &[Ship], limit: Option<u64>) -> Shares {
    let wanted: Vec<usize> = ships.iter().map(super::operations).collect();
    let Some(limit) = limit else {
        return Shares {
            connections: wanted,
            warning: None,
        };
    };
    let fixed: u64 = ships.iter().map(fixed).sum();
    let available = limit.saturating_sub(reserve(limit)).saturating_sub(fixed);
    let files = |n: usize| -> u64 {
        ships
            .iter()
            .zip(&wanted)
            .map(|(ship, &w)| w.min(n) as u64 * per_connection(ship))
            .fold(0u64, u64::saturating_add)
    };
    let most = wanted.iter().copied().max().unwrap_or(0);
    if files(most) <= available {
        return Shares {
            connections: wanted,
            warning: None,
        };
    }
    // The largest `n` whose files fit: `files` grows with `n`, and `files(most)` does not
    // fit, so the answer is below `most`.
    let (mut fits, mut not) = (0usize, most);
    while not - fits > 1 {
        let mid = fits + (not - fits) / 2;
        if files(mid) <= available {
            fits = mid;
        } else {
            not = mid;
        }
    }
    let n = fits.max(1);
    let connections = wanted.iter().map(|&w| w.min(n)).collect();
    let warning = if fits == 0 {
        format!(
            "the open-file limit ({limit}) cannot hold one connection to each of the {} \
             ships: operations may fail with \"Too many open files\" (raise the limit, \
             `ulimit -n`)",
            ships.len()
        )
    } else {
        format!(
            "the open-file limit ({limit}) holds {n} connection{} per ship for the {} ships, \
             where `max_operations` asks for up to {most}: each ship runs at most {n} \
             operation{} at once (raise the limit, `ulimit -n`, for more)",
            plural(n),
            ships.len(),
            plural(n)
        )
    };
    Shares {
        connections,
        warning: Some(warning),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ship as a case gives it: its `max_operations`, and whether it is reached by TLS.
    type Spec = (Option<usize>, bool);

    /// The ships, the limit, the shares, whether a warning is given.
    type Case = (Vec<Spec>, Option<u64>, Vec<usize>, bool);

    fn ships(specs: &[Spec]) -> Vec<Ship> {
        specs
            .iter()
            .enumerate()
            .map(|(i, &(max_operations, tls))| {
                let mut ship = Ship::new(format!("s{i}"), "127.0.0.1");
                ship.max_operations = max_operations;
                ship.tls = tls;
                ship
            })
            .collect()
    }

    /// Each case: the ships (`max_operations`, TLS), the limit, the shares, whether a
    /// warning is given.
    #[test]
    fn shares_fit_the_limit() {
        let plain = |n: usize| vec![(None, false); n];
        // The reserve: the readiness server's connections (half the limit, 64 to 1,024)
        // and 128.
        let cases: Vec<Case> = vec![
            // No limit, or room for all: what each asks for.
            (plain(3), None, vec![16; 3], false),
            (
                vec![(Some(2), false), (None, false)],
                Some(1024),
                vec![2, 16],
                false,
            ),
            // 1,000 ships of 16 under 20,000: 18,848 after the reserve.
            (plain(1000), Some(20_000), vec![16; 1000], false),
            // 300 ships under 4,096: 2,944 after the reserve, 9 each.
            (plain(300), Some(4096), vec![9; 300], true),
            // A ship asking for fewer keeps it; the others share the rest (22).
            (
                vec![(Some(1), false), (None, false), (None, false)],
                Some(300),
                vec![1, 10, 10],
                true,
            ),
            // TLS costs three files a connection, and four for its tunnel: 22 - 8.
            (vec![(None, true); 2], Some(300), vec![2, 2], true),
            // Not even one each: one each, and a warning.
            (plain(300), Some(300), vec![1; 300], true),
        ];
        for (spec, limit, expected, warned) in cases {
            let got = shares(&ships(&spec), limit);
            assert_eq!(got.connections, expected, "{spec:?} {limit:?}");
            assert_eq!(got.warning.is_some(), warned, "{spec:?} {limit:?}: {got:?}");
            // Whatever fits, fits.
            if let (Some(limit), Some(w)) = (limit, &got.warning)
                && !w.contains("cannot hold")
            {
                let ships = ships(&spec);
                let used: u64 = ships
                    .iter()
                    .zip(&got.connections)
                    .map(|(s, &c)| fixed(s) + c as u64 * per_connection(s))
                    .sum();
                assert!(used <= limit - reserve(limit), "{spec:?}: {used}");
            }
        }
    }

    #[test]
    fn the_warning_says_what_holds_and_how_to_get_more() {
        let got = shares(&ships(&[(None, false); 300]), Some(4096));
        insta::assert_snapshot!(got.warning.unwrap(), @"the open-file limit (4096) holds 9 connections per ship for the 300 ships, where `max_operations` asks for up to 16: each ship runs at most 9 operations at once (raise the limit, `ulimit -n`, for more)");
    }
}
