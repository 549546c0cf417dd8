//! The IPv4 addresses of a network interface, from the text of `/proc` files (no libc,
//! no unsafe; the callers read the files, this only parses them):
//! what MaestroNG's `get_container_internal_address()` got from netifaces.
//!
//! No `/proc` file maps an IPv4 address to its interface, so two are combined:
//! `/proc/net/fib_trie` lists the host's own addresses (`/32 host LOCAL` leaves) and
//! `/proc/net/route` lists each interface's directly connected networks (routes without
//! a gateway). An address belongs to the interface whose connected network holding it is
//! the most specific. The loopback device's networks live in the local routing table,
//! which `/proc/net/route` does not show; fib_trie lists them as `LOCAL` prefixes shorter
//! than /32. `/proc/net/dev` says which interfaces exist. All of these follow the
//! reading process's network namespace, so inside a container they describe its
//! interfaces.
//!
//! Limits, compared with netifaces (`getifaddrs`): an interface that is down has no
//! routes, so no addresses; an address without a connected route (a `/32` with
//! `noprefixroute`, or a Calico-style `/32` reached only through a gateway) is not found;
//! with several addresses the answer is the numerically lowest, not the primary one.
//! Docker's `eth0` has exactly one address in a connected subnet, so none of this bites.

use std::fmt;
use std::net::Ipv4Addr;

/// The per-namespace loopback device. The kernel creates it under this name in every
/// network namespace; it is the only interface fib_trie's `LOCAL` prefixes belong to.
const LOOPBACK: &str = "lo";

const RTF_UP: u32 = 0x0001;
const RTF_GATEWAY: u32 = 0x0002;
const RTF_REJECT: u32 = 0x0200;

#[derive(Debug, PartialEq, Eq)]
pub enum NetifError {
    NoInterface(String),
    NoIpv4(String),
    Unreadable { path: String, reason: String },
}

impl fmt::Display for NetifError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoInterface(name) => write!(f, "No network interface {name}"),
            Self::NoIpv4(name) => write!(f, "No IPv4 address on network interface {name}"),
            Self::Unreadable { path, reason } => write!(f, "Cannot read {path}: {reason}"),
        }
    }
}

/// The first IPv4 address of `interface`, from the texts of `/proc/net/dev`,
/// `/proc/net/route` and `/proc/net/fib_trie` (the caller reads them).
pub fn first_ipv4_in(
    interface: &str,
    dev: &str,
    route: &str,
    fib_trie: &str,
) -> Result<Ipv4Addr, NetifError> {
    if !interface_names(dev).any(|name| name == interface) {
        return Err(NetifError::NoInterface(interface.to_owned()));
    }
    addresses_of(interface, route, fib_trie)
        .into_iter()
        .next()
        .ok_or_else(|| NetifError::NoIpv4(interface.to_owned()))
}

/// Interface names from `/proc/net/dev`: two header lines, then `name: counters...`.
/// Interface names cannot contain `:`, so the first one ends the name.
fn interface_names(dev: &str) -> impl Iterator<Item = &str> {
    dev.lines()
        .skip(2)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, _)| name.trim())
}

/// A directly connected IPv4 network of an interface.
#[derive(Debug, PartialEq, Eq)]
struct Network<'a> {
    interface: &'a str,
    address: u32,
    prefix: u32,
}

impl Network<'_> {
    fn contains(&self, address: u32) -> bool {
        let mask = u32::MAX.checked_shl(32 - self.prefix).unwrap_or(0);
        address & mask == self.address & mask
    }
}

/// The addresses of `interface`, in fib_trie order (ascending).
fn addresses_of(interface: &str, route: &str, fib_trie: &str) -> Vec<Ipv4Addr> {
    let trie = parse_fib_trie(fib_trie);
    let mut networks = connected_networks(route);
    networks.extend(
        trie.loopback_prefixes
            .iter()
            .map(|&(address, prefix)| Network {
                interface: LOOPBACK,
                address,
                prefix,
            }),
    );
    trie.local_addresses
        .into_iter()
        .filter(|&address| {
            let holders = networks.iter().filter(|n| n.contains(address));
            let best = holders.clone().map(|n| n.prefix).max();
            best.is_some_and(|best| {
                holders
                    .clone()
                    .any(|n| n.prefix == best && n.interface == interface)
            })
        })
        .map(Ipv4Addr::from)
        .collect()
}

/// The gateway-less, usable routes of `/proc/net/route` (the main table). Its columns are
/// `Iface Destination Gateway Flags RefCnt Use Metric Mask ...`, addresses being the
/// in-memory (network order) word printed as a host-order hex number.
fn connected_networks(route: &str) -> Vec<Network<'_>> {
    route
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let hex = |i: usize| fields.get(i).and_then(|f| u32::from_str_radix(f, 16).ok());
            let (destination, flags, mask) = (hex(1)?, hex(3)?, hex(7)?);
            let usable = flags & RTF_UP != 0 && flags & (RTF_GATEWAY | RTF_REJECT) == 0;
            usable.then(|| Network {
                interface: fields[0],
                address: from_proc_word(destination),
                prefix: from_proc_word(mask).count_ones(),
            })
        })
        .collect()
}

/// A `/proc/net/route` word as an address in numeric (big-endian) form: the kernel
/// printed the raw network-order bytes as a native-endian integer.
fn from_proc_word(word: u32) -> u32 {
    u32::from_be_bytes(word.to_ne_bytes())
}

#[derive(Debug, Default, PartialEq, Eq)]
struct FibTrie {
    /// `/32 host LOCAL` leaves: the host's own addresses, deduplicated, in order.
    local_addresses: Vec<u32>,
    /// `LOCAL` leaves shorter than /32: the loopback device's networks.
    loopback_prefixes: Vec<(u32, u32)>,
}

/// Reads the leaves of `/proc/net/fib_trie`: a `|-- ADDRESS` line followed by one
/// indented `/PREFIX SCOPE TYPE` line per route to that address. The same leaf shows up
/// under several tables (`Main:`, `Local:`) when the kernel merged them.
fn parse_fib_trie(text: &str) -> FibTrie {
    let mut trie = FibTrie::default();
    let mut leaf: Option<u32> = None;
    for line in text.lines() {
        let line = line.trim_start();
        if let Some(address) = line.strip_prefix("|-- ") {
            leaf = address.trim().parse::<Ipv4Addr>().ok().map(u32::from);
            continue;
        }
        let (Some(address), Some(alias)) = (leaf, line.strip_prefix('/')) else {
            leaf = None;
            continue;
        };
        let mut words = alias.split_whitespace();
        let (Some(prefix), Some(_scope), Some("LOCAL")) =
            (words.next(), words.next(), words.next())
        else {
            continue;
        };
        match prefix.parse::<u32>() {
            Ok(32) if !trie.local_addresses.contains(&address) => {
                trie.local_addresses.push(address)
            }
            Ok(prefix @ 0..32) if !trie.loopback_prefixes.contains(&(address, prefix)) => {
                trie.loopback_prefixes.push((address, prefix));
            }
            _ => {}
        }
    }
    trie
}

// The captured `/proc/net/route` fixtures hold little-endian words.
#[cfg(all(test, target_endian = "little"))]
mod tests;
