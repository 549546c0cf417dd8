//! The command table and the discovery commands: each row names a command, declares its
//! arguments and points at the handler that answers it from guestutils' queries.

use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};

use guestutils::discovery;

use crate::args::{Invocation, Kind, Opt, Spec};
use crate::env::ProcessEnv;
use crate::format::{self, Format};
use guestutils::net::{self, NetifError};

/// A command's answer, one entry per output line, or the message of its failure.
pub type Outcome = Result<Vec<String>, String>;

pub type Handler = fn(&Invocation, &ProcessEnv) -> Outcome;

/// What `--help` says the program is.
pub const ABOUT: &str = "maestro-guest: the in-container agent of maestro.\n\
The discovery commands answer from the variables maestro gives every container,\n\
with the defaults and messages of MaestroNG's guestutils.";

const DEFAULT: Opt = Opt {
    name: "default",
    kind: Kind::Int("N"),
    repeat: false,
    help: "answer N when the port variable is unset",
};

pub const COMMANDS: &[Spec<Handler>] = &[
    Spec {
        name: "env-name",
        args: &[],
        opts: &[],
        about: "the environment's name (MAESTRO_ENVIRONMENT_NAME, else 'local')",
        handler: env_name,
    },
    Spec {
        name: "service",
        args: &[],
        opts: &[],
        about: "this container's service (SERVICE_NAME)",
        handler: service,
    },
    Spec {
        name: "container",
        args: &[],
        opts: &[],
        about: "this container's name (CONTAINER_NAME)",
        handler: container,
    },
    Spec {
        name: "host-address",
        args: &[],
        opts: &[Opt {
            name: "ip",
            kind: Kind::Switch,
            repeat: false,
            help: "resolve it to its first IPv4 address",
        }],
        about: "the address of this container's ship (CONTAINER_HOST_ADDRESS)",
        handler: host_address,
    },
    Spec {
        name: "internal-address",
        args: &[],
        opts: &[Opt {
            name: "interface",
            kind: Kind::Text("IF"),
            repeat: false,
            help: "read interface IF instead of eth0",
        }],
        about: "this container's own IPv4 address (the first one of eth0)",
        handler: internal_address,
    },
    Spec {
        name: "port",
        args: &["NAME"],
        opts: &[DEFAULT],
        about: "the container-side number of this container's port NAME",
        handler: port,
    },
    Spec {
        name: "host",
        args: &["SERVICE", "INSTANCE"],
        opts: &[],
        about: "the ship address of an instance of a service",
        handler: host,
    },
    Spec {
        name: "specific-port",
        args: &["SERVICE", "INSTANCE", "PORT"],
        opts: &[DEFAULT],
        about: "the external (ship-side) number of a port of an instance",
        handler: specific_port,
    },
    Spec {
        name: "exposed-port",
        args: &["SERVICE", "INSTANCE", "PORT"],
        opts: &[DEFAULT],
        about: "the container-side number of a port of an instance (own service only)",
        handler: exposed_port,
    },
    Spec {
        name: "nodes",
        args: &["SERVICE"],
        opts: &[
            Opt {
                name: "port",
                kind: Kind::Text("NAME"),
                repeat: true,
                help: "append :NUMBER, the external number of port NAME",
            },
            Opt {
                name: "min",
                kind: Kind::Count("N"),
                repeat: false,
                help: "fail unless SERVICE has at least N instances (default 1)",
            },
            Opt {
                name: "format",
                kind: Kind::Choice(Format::NAMES),
                repeat: false,
                help: "one node per line (default), one CSV record or a JSON array",
            },
        ],
        about: "host[:port...] of every instance of SERVICE, in instance order",
        handler: nodes,
    },
];

fn one(answer: impl ToString) -> Outcome {
    Ok(vec![answer.to_string()])
}

fn discovered<T: ToString>(result: Result<T, discovery::DiscoveryError>) -> Outcome {
    result.map_err(|err| err.to_string()).and_then(one)
}

fn env_name(_: &Invocation, vars: &ProcessEnv) -> Outcome {
    one(discovery::environment_name(vars))
}

fn service(_: &Invocation, vars: &ProcessEnv) -> Outcome {
    discovered(discovery::service_name(vars))
}

fn container(_: &Invocation, vars: &ProcessEnv) -> Outcome {
    discovered(discovery::container_name(vars))
}

fn host_address(inv: &Invocation, vars: &ProcessEnv) -> Outcome {
    // MaestroNG resolved before checking, so with `as_ip_address` an unset variable
    // became gethostbyname('') = '0.0.0.0' instead of an error. An unset address is
    // unset whether or not it is to be resolved: check first.
    let address = discovery::container_host_address(vars).map_err(|err| err.to_string())?;
    if !inv.flag("ip") {
        return one(address);
    }
    one(resolve_ipv4(&address)?)
}

/// The first IPv4 address `name` resolves to: `gethostbyname`, which MaestroNG used,
/// only ever answers IPv4.
fn resolve_ipv4(name: &str) -> Result<Ipv4Addr, String> {
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

fn internal_address(inv: &Invocation, _: &ProcessEnv) -> Outcome {
    let interface = inv.value("interface").unwrap_or("eth0");
    first_ipv4(interface)
        .map_err(|err| err.to_string())
        .and_then(one)
}

fn port(inv: &Invocation, vars: &ProcessEnv) -> Outcome {
    discovered(discovery::port(vars, inv.arg(0), inv.value("default")))
}

fn host(inv: &Invocation, vars: &ProcessEnv) -> Outcome {
    discovered(discovery::specific_host(vars, inv.arg(0), inv.arg(1)))
}

fn specific_port(inv: &Invocation, vars: &ProcessEnv) -> Outcome {
    let (service, instance, port) = (inv.arg(0), inv.arg(1), inv.arg(2));
    discovered(discovery::specific_port(
        vars,
        service,
        instance,
        port,
        inv.value("default"),
    ))
}

fn exposed_port(inv: &Invocation, vars: &ProcessEnv) -> Outcome {
    let (service, instance, port) = (inv.arg(0), inv.arg(1), inv.arg(2));
    discovered(discovery::specific_exposed_port(
        vars,
        service,
        instance,
        port,
        inv.value("default"),
    ))
}

fn nodes(inv: &Invocation, vars: &ProcessEnv) -> Outcome {
    let ports: Vec<&str> = inv.values("port").collect();
    let minimum = inv.count("min").unwrap_or(1);
    let format = inv
        .value("format")
        .and_then(Format::from_name)
        .unwrap_or(Format::Lines);
    let nodes =
        discovery::node_list(vars, inv.arg(0), &ports, minimum).map_err(|err| err.to_string())?;
    Ok(format::nodes(format, &nodes))
}

/// The first IPv4 address of `interface`, from this namespace's `/proc`.
fn first_ipv4(interface: &str) -> Result<std::net::Ipv4Addr, NetifError> {
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
