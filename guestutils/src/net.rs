//! Finding an interface's IPv4 address from the kernel's text tables
//! (`/proc/net/route` and `/proc/net/fib_trie`), so that neither the controller nor the
//! guest needs libc calls. The caller reads the files; this only parses them.

use std::net::Ipv4Addr;

/// The first local IPv4 address of interface `iface`: an address the kernel lists as
/// `/32 host LOCAL` in `fib_trie` that lies in one of the networks `route` sends
/// through `iface`. `None` when the interface has no IPv4 address (or does not exist).
pub fn interface_ipv4(route: &str, fib_trie: &str, iface: &str) -> Option<Ipv4Addr> {
    let networks: Vec<(u32, u32)> = route
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 8 || cols[0] != iface {
                return None;
            }
            // The table holds addresses as host-order hex of network-order bytes.
            let dest = u32::from_str_radix(cols[1], 16).ok()?.swap_bytes();
            let mask = u32::from_str_radix(cols[7], 16).ok()?.swap_bytes();
            (mask != 0).then_some((dest, mask))
        })
        .collect();
    let mut last_address: Option<Ipv4Addr> = None;
    for line in fib_trie.lines() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed
            .strip_prefix("|-- ")
            .or_else(|| trimmed.strip_prefix("+-- "))
        {
            last_address = rest.split(['/', ' ']).next().and_then(|a| a.parse().ok());
        } else if trimmed.starts_with("/32 host LOCAL") {
            if let Some(address) = last_address {
                let bits = u32::from(address);
                if networks
                    .iter()
                    .any(|(dest, mask)| bits & mask == dest & mask)
                {
                    return Some(address);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
";
    const FIB: &str = "Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
     +-- 172.17.0.0/16 2 0 2
        |-- 172.17.0.0
           /16 link UNICAST
        |-- 172.17.0.1
           /32 host LOCAL
     +-- 192.168.1.0/24 2 0 2
        |-- 192.168.1.0
           /24 link UNICAST
        |-- 192.168.1.23
           /32 host LOCAL
";

    #[test]
    fn finds_each_interface_address() {
        assert_eq!(
            interface_ipv4(ROUTE, FIB, "docker0"),
            Some(Ipv4Addr::new(172, 17, 0, 1))
        );
        assert_eq!(
            interface_ipv4(ROUTE, FIB, "eth0"),
            Some(Ipv4Addr::new(192, 168, 1, 23))
        );
        assert_eq!(interface_ipv4(ROUTE, FIB, "wlan0"), None);
        assert_eq!(interface_ipv4("", "", "eth0"), None);
    }
}
