//! Port specifications, every form MaestroNG 0.8.3 accepts (reference section 7.2).
//!
//! Unquoted scalars are read the YAML 1.1 way, because that is what existing files mean
//! to MaestroNG (`25:25` is the base-60 number 1525, `010` is 8); the reader warns when
//! that reading differs from the text so the user can quote it.

use crate::model::{Port, PortSpec, Protocol};
use crate::yaml::{Node, Resolved, Value};

use super::read::{Reader, get, join};

const FORMS: &str = "<port>, <p1>-<p2> or <port>/{tcp,udp}, optionally as exposed:external";

/// One `P[-Q][/proto]`, with MaestroNG's grammar: ASCII digits, lower-case protocol.
pub(crate) fn parse_spec(text: &str) -> Option<PortSpec> {
    let (numbers, protocol) = match text.split_once('/') {
        Some((n, "tcp")) => (n, Protocol::Tcp),
        Some((n, "udp")) => (n, Protocol::Udp),
        Some(_) => return None,
        None => (text, Protocol::Tcp),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let ok = match numbers.split_once('-') {
        Some((a, b)) => digits(a) && digits(b),
        None => digits(numbers),
    };
    ok.then(|| PortSpec {
        number: numbers.to_owned(),
        protocol,
    })
}

/// The text of a scalar port value as MaestroNG sees it, or `None` for other kinds.
fn scalar_text(r: &mut Reader, node: &Node, path: &str) -> Option<String> {
    let scalar = node.as_scalar()?;
    match scalar.yaml11() {
        Resolved::Int(decimal) => {
            if *decimal != *scalar.text {
                r.warn(
                    path,
                    node,
                    format!(
                        "unquoted {} is read as the number {decimal}, as YAML 1.1 (and MaestroNG) reads it",
                        scalar.text
                    ),
                )
                .help = Some(format!("write \"{}\" (quoted) if you mean it literally", scalar.text));
            }
            Some(decimal)
        }
        Resolved::Str => Some(scalar.text.to_string()),
        Resolved::Null | Resolved::Bool(_) | Resolved::Float => None,
    }
}

fn spec(r: &mut Reader, text: &str, node: &Node, path: &str) -> Option<PortSpec> {
    let Some(spec) = parse_spec(text) else {
        r.error(
            path,
            node,
            format!("invalid port specification {text:?}: expected {FORMS}"),
        );
        return None;
    };
    // MaestroNG checks no numbers; the engine then refuses the container (or, for 0,
    // picks a random host port that no peer's variables can name).
    let (first, last) = bounds(&spec);
    let in_range = |n: Option<u32>| n.is_some_and(|n| (1..=65535).contains(&n));
    if !in_range(first) || !in_range(last) {
        r.error(
            path,
            node,
            format!("invalid port {text:?}: port numbers go from 1 to 65535"),
        );
        return None;
    }
    if first > last {
        r.error(
            path,
            node,
            format!("invalid port range {text:?}: it ends before it starts"),
        );
        return None;
    }
    Some(spec)
}

/// The first and last port of a spec (the same for a single port); `None` for a number
/// too large to read.
fn bounds(spec: &PortSpec) -> (Option<u32>, Option<u32>) {
    let (a, b) = spec
        .number
        .split_once('-')
        .unwrap_or((&spec.number, &spec.number));
    (a.parse().ok(), b.parse().ok())
}

/// Whether the engine can publish `exposed` as `external`: a range in the container
/// needs a host range of the same size (a single container port may take any port of a
/// host range). Says why not.
fn publishable(
    r: &mut Reader,
    exposed: &PortSpec,
    external: &PortSpec,
    node: &Node,
    path: &str,
) -> bool {
    let size = |s: &PortSpec| match bounds(s) {
        (Some(a), Some(b)) => b - a + 1,
        _ => 1,
    };
    let (inside, outside) = (size(exposed), size(external));
    if inside > 1 && inside != outside {
        r.error(
            path,
            node,
            format!(
                "the container's range {} ({inside} ports) cannot be published on {} ({outside} port{})",
                exposed.number,
                external.number,
                if outside == 1 { "" } else { "s" }
            ),
        )
        .help = Some("give the host a range of the same size".into());
        return false;
    }
    true
}

/// Parses one named port of an instance.
pub(crate) fn port(r: &mut Reader, node: &Node, path: &str) -> Option<Port> {
    if let Value::Map(entries) = &node.value {
        return mapping_port(r, entries, node, path);
    }
    let Some(text) = scalar_text(r, node, path) else {
        r.error(
            path,
            node,
            format!(
                "invalid port spec {}: expected {FORMS}, or {{exposed, external}}",
                node.display()
            ),
        );
        return None;
    };
    let parts: Vec<&str> = text.split(':').collect();
    match parts.as_slice() {
        [single] => {
            let spec = spec(r, single, node, path)?;
            Some(Port {
                exposed: spec.clone(),
                host_ip: "0.0.0.0".into(),
                external: spec,
            })
        }
        [exposed, external] => {
            let exposed = spec(r, exposed, node, path);
            let external = spec(r, external, node, path);
            let (exposed, external) = (exposed?, external?);
            if exposed.protocol != external.protocol {
                r.error(
                    path,
                    node,
                    format!(
                        "mismatched protocols between {} and {}",
                        exposed.with_protocol(),
                        external.with_protocol()
                    ),
                );
                return None;
            }
            if !publishable(r, &exposed, &external, node, path) {
                return None;
            }
            Some(Port {
                exposed,
                host_ip: "0.0.0.0".into(),
                external,
            })
        }
        _ => {
            let valid = parts.iter().all(|p| spec(r, p, node, path).is_some());
            if valid {
                r.error(
                    path,
                    node,
                    format!(
                        "invalid port spec {text:?}: expected exposed:external, found {} parts",
                        parts.len()
                    ),
                )
                .help = Some(
                    "to bind a host address, write {exposed: 80, external: [127.0.0.1, 8080]}"
                        .into(),
                );
            }
            None
        }
    }
}

fn mapping_port(r: &mut Reader, entries: &[(Node, Node)], node: &Node, path: &str) -> Option<Port> {
    r.known_keys(entries, path, &["exposed", "external"]);
    let (Some(exposed_node), Some(external_node)) =
        (get(entries, "exposed"), get(entries, "external"))
    else {
        r.error(
            path,
            node,
            format!(
                "invalid port spec {}: a mapping needs both exposed and external",
                node.display()
            ),
        );
        return None;
    };
    let exposed_path = join(path, "exposed");
    let exposed = match scalar_text(r, exposed_node, &exposed_path) {
        Some(text) => spec(r, &text, exposed_node, &exposed_path),
        None => {
            r.error(
                &exposed_path,
                exposed_node,
                format!(
                    "invalid port spec {}: expected {FORMS}",
                    exposed_node.display()
                ),
            );
            None
        }
    };
    let external_path = join(path, "external");
    let (host_ip, external_text) = match &external_node.value {
        Value::Seq(items) if items.len() == 2 => {
            let ip = r.string(&items[0], &format!("{external_path}[0]"), "a host address");
            (
                ip,
                scalar_text(r, &items[1], &format!("{external_path}[1]")),
            )
        }
        Value::Scalar(_) => (
            Some("0.0.0.0".to_owned()),
            scalar_text(r, external_node, &external_path),
        ),
        _ => (None, None),
    };
    let external = match external_text {
        Some(text) => spec(r, &text, external_node, &external_path),
        None => {
            r.error(
                &external_path,
                external_node,
                format!(
                    "invalid external port {}: expected a port, or [host address, port]",
                    external_node.display()
                ),
            );
            None
        }
    };
    // MaestroNG does not compare protocols in this form (exposed 95/udp, external 9095
    // is bound as 9095/tcp); kept for compatibility, but worth a warning.
    if let (Some(e), Some(x)) = (&exposed, &external) {
        if e.protocol != x.protocol {
            r.warn(
                path,
                node,
                format!(
                    "exposed {} is published as {}",
                    e.with_protocol(),
                    x.with_protocol()
                ),
            )
            .help = Some("give both the same protocol".into());
        }
    }
    let (exposed, external) = (exposed?, external?);
    if !publishable(r, &exposed, &external, node, path) {
        return None;
    }
    Some(Port {
        exposed,
        host_ip: host_ip?,
        external,
    })
}

#[cfg(test)]
mod tests;
