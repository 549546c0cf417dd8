//! Addresses, for the commands and the templates alike: a name resolved to its first IPv4
//! address, and an interface's own first IPv4 address.

use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};

use guestutils::net::{self, NetifError};

/// The first IPv4 address `name` resolves to: `gethostbyname`, which MaestroNG used,
/// only ever answers IPv4.
pub fn resolve_ipv4(name: &str) -> Result<Ipv4Addr, String> {
    let addresses = (name, 0)
        .to_socket_addrs()
        .map_err(|err| format!("Cannot resolve container host address {name}: {err}"))?;
    addresses
        .filter_map(|a| match a.ip() {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
        .next()
        .ok_or_else(|| format!("Container host address {name} has no IPv4 address"))
}

/// The first IPv4 address of `interface`, from this network namespace's `/proc`.
pub fn first_ipv4(interface: &str) -> Result<Ipv4Addr, NetifError> {
    let read = |path: &str| {
        std::fs::read_to_string(path).map_err(|err| NetifError::Unreadable {
            path: path.to_owned(),
            reason: err.to_string(),
        })
    };
    net::first_ipv4_in(
        interface,
        &read("/proc/net/dev")?,
        &read("/proc/net/route")?,
        &read("/proc/net/fib_trie")?,
    )
}
