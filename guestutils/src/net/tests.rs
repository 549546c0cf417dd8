//! Tests of the `/proc` readers against files captured on a real host and inside real
//! Docker containers (default bridge; bridge plus a second network), and against
//! hand-written cases for the attribution rules.

use super::*;

/// Captured inside `docker run` on the default bridge: eth0 is 172.17.0.2/16.
const CONTAINER_DEV: &str = r"Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  eth0:     200       2    0    0    0     0          0         0        0       0    0    0    0     0       0          0
";
const CONTAINER_ROUTE: &str = r"Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth0	00000000	010011AC	0003	0	0	0	00000000	0	0	0
eth0	000011AC	00000000	0001	0	0	0	0000FFFF	0	0	0
";
const CONTAINER_FIB_TRIE: &str = r"Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 172.17.0.0/16 2 0 2
        +-- 172.17.0.0/30 2 0 2
           |-- 172.17.0.0
              /16 link UNICAST
           |-- 172.17.0.2
              /32 host LOCAL
        |-- 172.17.255.255
           /32 link BROADCAST
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 172.17.0.0/16 2 0 2
        +-- 172.17.0.0/30 2 0 2
           |-- 172.17.0.0
              /16 link UNICAST
           |-- 172.17.0.2
              /32 host LOCAL
        |-- 172.17.255.255
           /32 link BROADCAST
";

/// Captured on the host that ran those containers: eth0 192.0.2.2/24, a down docker0
/// 172.17.0.1/16, two interfaces without addresses (ifb0, ifb1).
const HOST_DEV: &str = r"Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0
  ifb0:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  ifb1:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  eth0: 162114639    6633    0    0    0     0          0         0   389267    4456    0    0    0     0       0          0
docker0:       0       0    0    0    0     0          0         0      966       9    0    6    0     0       0          0
";
const HOST_ROUTE: &str = r"Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth0	00000000	010200C0	0003	0	0	0	00000000	0	0	0
docker0	000011AC	00000000	0001	0	0	0	0000FFFF	0	0	0
eth0	000200C0	00000000	0001	0	0	0	00FFFFFF	0	0	0
";
const HOST_FIB_TRIE: &str = r"Main:
  +-- 0.0.0.0/0 3 0 4
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 172.17.0.0/16 2 0 2
        +-- 172.17.0.0/31 1 0 0
           |-- 172.17.0.0
              /16 link UNICAST
           |-- 172.17.0.1
              /32 host LOCAL
        |-- 172.17.255.255
           /32 link BROADCAST
     +-- 192.0.2.0/24 2 0 2
        +-- 192.0.2.0/30 2 0 2
           |-- 192.0.2.0
              /24 link UNICAST
           |-- 192.0.2.2
              /32 host LOCAL
        |-- 192.0.2.255
           /32 link BROADCAST
Local:
  +-- 0.0.0.0/0 3 0 4
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 172.17.0.0/16 2 0 2
        +-- 172.17.0.0/31 1 0 0
           |-- 172.17.0.0
              /16 link UNICAST
           |-- 172.17.0.1
              /32 host LOCAL
        |-- 172.17.255.255
           /32 link BROADCAST
     +-- 192.0.2.0/24 2 0 2
        +-- 192.0.2.0/30 2 0 2
           |-- 192.0.2.0
              /24 link UNICAST
           |-- 192.0.2.2
              /32 host LOCAL
        |-- 192.0.2.255
           /32 link BROADCAST
";

/// A container on a user network (eth1, 10.77.0.2/24) and the default bridge (eth0);
/// only the `Local:` half of fib_trie, as printed when the tables are not merged.
const TWO_NETS_ROUTE: &str = r"Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth0	00000000	010011AC	0003	0	0	0	00000000	0	0	0
eth1	00004D0A	00000000	0001	0	0	0	00FFFFFF	0	0	0
eth0	000011AC	00000000	0001	0	0	0	0000FFFF	0	0	0
";
const TWO_NETS_FIB_TRIE: &str = r"Local:
  +-- 0.0.0.0/0 3 0 5
     +-- 0.0.0.0/4 2 0 2
        |-- 0.0.0.0
           /0 universe UNICAST
        +-- 10.77.0.0/24 2 0 2
           +-- 10.77.0.0/30 2 0 2
              |-- 10.77.0.0
                 /24 link UNICAST
              |-- 10.77.0.2
                 /32 host LOCAL
           |-- 10.77.0.255
              /32 link BROADCAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 172.17.0.0/16 2 0 2
        +-- 172.17.0.0/30 2 0 2
           |-- 172.17.0.0
              /16 link UNICAST
           |-- 172.17.0.2
              /32 host LOCAL
        |-- 172.17.255.255
           /32 link BROADCAST
";

/// Point-to-point `wg0` whose gateway-less default route holds every address, next to
/// `eth0` with two addresses in 192.168.0.0/24, a gateway-only `tun0` and a reject route.
const SYNTHETIC_ROUTE: &str =
    "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT
wg0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0
eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
tun0\t0000000A\t0100A8C0\t0003\t0\t0\t0\t000000FF\t0\t0\t0
*\t0000090A\t00000000\t0201\t0\t0\t0\t0000FFFF\t0\t0\t0
";

const SYNTHETIC_FIB_TRIE: &str = "Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 10.9.0.2
        /32 host LOCAL
     |-- 127.0.0.0
        /8 host LOCAL
     |-- 127.0.0.1
        /32 host LOCAL
     |-- 192.168.0.9
        /32 host LOCAL tos=4
     |-- 192.168.0.5
        /32 link BROADCAST
        /32 host LOCAL
";

fn ip(text: &str) -> Ipv4Addr {
    text.parse().expect("test address")
}

fn ips(texts: &[&str]) -> Vec<Ipv4Addr> {
    texts.iter().map(|t| ip(t)).collect()
}

#[test]
fn first_address_of_captured_interfaces() {
    let no_interface = |name: &str| Err(NetifError::NoInterface(name.to_owned()));
    let no_ipv4 = |name: &str| Err(NetifError::NoIpv4(name.to_owned()));
    let container = (CONTAINER_DEV, CONTAINER_ROUTE, CONTAINER_FIB_TRIE);
    let host = (HOST_DEV, HOST_ROUTE, HOST_FIB_TRIE);
    let cases = [
        (container, "eth0", Ok(ip("172.17.0.2"))),
        (container, "lo", Ok(ip("127.0.0.1"))),
        (container, "eth1", no_interface("eth1")),
        (host, "eth0", Ok(ip("192.0.2.2"))),
        (host, "docker0", Ok(ip("172.17.0.1"))),
        (host, "lo", Ok(ip("127.0.0.1"))),
        (host, "ifb0", no_ipv4("ifb0")),
        (host, "eth", no_interface("eth")),
        (host, "", no_interface("")),
    ];
    for ((dev, route, fib_trie), interface, want) in cases {
        assert_eq!(
            first_ipv4_in(interface, dev, route, fib_trie),
            want,
            "{interface}"
        );
    }
}

#[test]
fn addresses_by_attribution() {
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (TWO_NETS_ROUTE, TWO_NETS_FIB_TRIE, "eth0", &["172.17.0.2"]),
        (TWO_NETS_ROUTE, TWO_NETS_FIB_TRIE, "eth1", &["10.77.0.2"]),
        (TWO_NETS_ROUTE, TWO_NETS_FIB_TRIE, "lo", &["127.0.0.1"]),
        // A more specific connected network (lo's /8, eth0's /24) beats wg0's /0.
        (SYNTHETIC_ROUTE, SYNTHETIC_FIB_TRIE, "wg0", &["10.9.0.2"]),
        (
            SYNTHETIC_ROUTE,
            SYNTHETIC_FIB_TRIE,
            "eth0",
            &["192.168.0.5", "192.168.0.9"],
        ),
        (SYNTHETIC_ROUTE, SYNTHETIC_FIB_TRIE, "lo", &["127.0.0.1"]),
        (SYNTHETIC_ROUTE, SYNTHETIC_FIB_TRIE, "tun0", &[]),
        (SYNTHETIC_ROUTE, SYNTHETIC_FIB_TRIE, "*", &[]),
        (SYNTHETIC_ROUTE, "", "eth0", &[]),
    ];
    for (route, fib_trie, interface, want) in cases {
        let mut got = addresses_of(interface, route, fib_trie);
        got.sort();
        assert_eq!(got, ips(want), "{interface}");
    }
}

#[test]
fn fib_trie_leaves() {
    let trie = parse_fib_trie(CONTAINER_FIB_TRIE);
    let local: Vec<Ipv4Addr> = trie
        .local_addresses
        .into_iter()
        .map(Ipv4Addr::from)
        .collect();
    assert_eq!(
        local,
        ips(&["127.0.0.1", "172.17.0.2"]),
        "deduplicated across Main and Local"
    );
    assert_eq!(trie.loopback_prefixes, [(u32::from(ip("127.0.0.0")), 8)]);
    assert_eq!(
        parse_fib_trie("garbage\n/32 host LOCAL\n|-- nonsense\n   /32 host LOCAL\n"),
        FibTrie::default()
    );
}

#[test]
fn connected_networks_of_the_main_table() {
    let got = connected_networks(SYNTHETIC_ROUTE);
    let want = [
        Network {
            interface: "wg0",
            address: 0,
            prefix: 0,
        },
        Network {
            interface: "eth0",
            address: u32::from(ip("192.168.0.0")),
            prefix: 24,
        },
    ];
    assert_eq!(got, want);
    assert_eq!(connected_networks("Iface\tDestination\n\nshort line\n"), []);
}

#[test]
fn interface_names_of_proc_net_dev() {
    let names: Vec<&str> = interface_names(HOST_DEV).collect();
    assert_eq!(names, ["lo", "ifb0", "ifb1", "eth0", "docker0"]);
}

#[test]
fn messages() {
    let cases = [
        (
            NetifError::NoInterface("eth0".into()),
            "No network interface eth0",
        ),
        (
            NetifError::NoIpv4("eth0".into()),
            "No IPv4 address on network interface eth0",
        ),
        (
            NetifError::Unreadable {
                path: "/proc/net/route".into(),
                reason: "gone".into(),
            },
            "Cannot read /proc/net/route: gone",
        ),
    ];
    for (err, want) in cases {
        assert_eq!(err.to_string(), want);
    }
}
