//! Discovery queries over a container's variables, with the semantics, defaults and
//! messages of MaestroNG 0.8.3's `maestro.guestutils`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::names::{self, CONTAINER_HOST_ADDRESS, CONTAINER_NAME, ENVIRONMENT_NAME, SERVICE_NAME};

/// A read-only view of a container's variables. The guest implements it over the process
/// environment; tests and the controller implement it over plain maps.
pub trait Vars {
    fn var(&self, key: &str) -> Option<&str>;
}

impl Vars for HashMap<String, String> {
    fn var(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl Vars for BTreeMap<String, String> {
    fn var(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// A failed query. Its `Display` is MaestroNG's message, word for word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryError {
    ServiceNameUndefined,
    ContainerNameUndefined,
    HostAddressUndefined,
    NoHost {
        service: String,
        container: String,
    },
    NoPort {
        service: String,
        container: String,
        port: String,
    },
    NoInternalPort {
        service: String,
        container: String,
        port: String,
    },
    NotEnoughNodes {
        service: String,
    },
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ServiceNameUndefined => f.write_str("Service name was not defined"),
            Self::ContainerNameUndefined => f.write_str("Container name was not defined"),
            Self::HostAddressUndefined => f.write_str("Container host address was not defined"),
            Self::NoHost { service, container } => {
                write!(
                    f,
                    "No host defined for container {container} of service {service}"
                )
            }
            Self::NoPort {
                service,
                container,
                port,
            } => write!(
                f,
                "No port {port} defined for container {container} of service {service}"
            ),
            Self::NoInternalPort {
                service,
                container,
                port,
            } => write!(
                f,
                "No internal port {port} defined for container {container} of service {service}"
            ),
            Self::NotEnoughNodes { service } => {
                write!(f, "No or not enough {service} nodes configured")
            }
        }
    }
}

impl std::error::Error for DiscoveryError {}

/// The environment's name; `local` when the variable is unset (an empty value is kept).
pub fn environment_name(vars: &impl Vars) -> String {
    vars.var(ENVIRONMENT_NAME).unwrap_or("local").to_owned()
}

/// The calling container's service name.
pub fn service_name(vars: &impl Vars) -> Result<String, DiscoveryError> {
    non_empty(vars, SERVICE_NAME).ok_or(DiscoveryError::ServiceNameUndefined)
}

/// The calling container's name.
pub fn container_name(vars: &impl Vars) -> Result<String, DiscoveryError> {
    non_empty(vars, CONTAINER_NAME).ok_or(DiscoveryError::ContainerNameUndefined)
}

/// The address of the ship the calling container runs on, as written in the file.
/// Resolving it to an IP address is the caller's business (it is I/O).
pub fn container_host_address(vars: &impl Vars) -> Result<String, DiscoveryError> {
    non_empty(vars, CONTAINER_HOST_ADDRESS).ok_or(DiscoveryError::HostAddressUndefined)
}

/// The container-side number of one of the calling container's own ports.
pub fn port(vars: &impl Vars, name: &str, default: Option<&str>) -> Result<i64, DiscoveryError> {
    let service = service_name(vars)?;
    let container = container_name(vars)?;
    specific_exposed_port(vars, &service, &container, name, default)
}

/// The ship address of one instance of a service.
pub fn specific_host(
    vars: &impl Vars,
    service: &str,
    container: &str,
) -> Result<String, DiscoveryError> {
    vars.var(&names::host_var(service, container))
        .map(str::to_owned)
        .ok_or_else(|| DiscoveryError::NoHost {
            service: service.to_owned(),
            container: container.to_owned(),
        })
}

/// The external (host-side) number of a port of one instance of a service.
pub fn specific_port(
    vars: &impl Vars,
    service: &str,
    container: &str,
    port: &str,
    default: Option<&str>,
) -> Result<i64, DiscoveryError> {
    let key = names::port_var(service, container, port);
    vars.var(&key)
        .or(default)
        .and_then(python_int)
        .ok_or_else(|| DiscoveryError::NoPort {
            service: service.to_owned(),
            container: container.to_owned(),
            port: port.to_owned(),
        })
}

/// The container-side number of a port of one instance. Only an instance's own service
/// receives these variables, so asking about a dependency always fails (as in MaestroNG,
/// whatever its documentation says).
pub fn specific_exposed_port(
    vars: &impl Vars,
    service: &str,
    container: &str,
    port: &str,
    default: Option<&str>,
) -> Result<i64, DiscoveryError> {
    let key = names::internal_port_var(service, container, port);
    vars.var(&key)
        .or(default)
        .and_then(python_int)
        .ok_or_else(|| DiscoveryError::NoInternalPort {
            service: service.to_owned(),
            container: container.to_owned(),
            port: port.to_owned(),
        })
}

/// The instance names of a service, from `{SERVICE}_INSTANCES`, in that variable's order
/// (the controller sorts them). A missing variable means no instances; an empty one
/// yields a single empty name, as in MaestroNG.
pub fn instance_names(vars: &impl Vars, service: &str) -> Vec<String> {
    match vars.var(&names::instances_var(service)) {
        None => Vec::new(),
        Some(list) => list.split(',').map(str::to_owned).collect(),
    }
}

/// `host[:port1[:port2...]]` for every instance of `service`, in instance order. Fails
/// when a host or port is missing, or when there are fewer than `minimum` nodes.
pub fn node_list(
    vars: &impl Vars,
    service: &str,
    ports: &[&str],
    minimum: usize,
) -> Result<Vec<String>, DiscoveryError> {
    let mut nodes = Vec::new();
    for container in instance_names(vars, service) {
        let mut node = specific_host(vars, service, &container)?;
        for port in ports {
            let number = specific_port(vars, service, &container, port, None)?;
            node.push(':');
            node.push_str(&number.to_string());
        }
        nodes.push(node);
    }
    if nodes.len() < minimum {
        return Err(DiscoveryError::NotEnoughNodes {
            service: service.to_owned(),
        });
    }
    Ok(nodes)
}

fn non_empty(vars: &impl Vars, key: &str) -> Option<String> {
    vars.var(key).filter(|v| !v.is_empty()).map(str::to_owned)
}

/// Python's `int(str)`: surrounding whitespace allowed, an optional sign, ASCII digits
/// with single underscores between them. Anything else (a range such as `1234-1236`, an
/// empty string) is not a number.
pub fn python_int(text: &str) -> Option<i64> {
    let s = text.trim();
    let (negative, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let mut value: i64 = 0;
    for b in digits.bytes() {
        match b {
            b'_' => {}
            b'0'..=b'9' => {
                value = value.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
            }
            _ => return None,
        }
    }
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests;
