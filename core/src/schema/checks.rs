//! Lifecycle checks (reference section 8) and auditors (section 9).

use indexmap::IndexMap;

use crate::model::{
    AuditLevel, Auditor, AuditorKind, Check, Data, LifecycleState, Port, Protocol, RequestOptions,
    Secret, Verify,
};
use crate::yaml::{Node, Resolved, Value};

use super::read::{Reader, get, join, key};

/// A lifecycle check as written, before it is resolved against an instance's ports.
pub(crate) struct RawCheck<'n> {
    pub node: &'n Node,
    pub path: String,
}

/// Reads a `lifecycle:` mapping into per-state lists of raw checks.
pub(crate) fn lifecycle<'n>(
    r: &mut Reader,
    node: &'n Node,
    path: &str,
    out: &mut IndexMap<LifecycleState, Vec<RawCheck<'n>>>,
) {
    let Some(entries) = r.opt_map(
        node,
        path,
        "a mapping of lifecycle states to lists of checks",
    ) else {
        return;
    };
    for (k, v) in entries {
        let state_path = join(path, key(k));
        let Some(state) = LifecycleState::parse(key(k)) else {
            r.warn(
                &state_path,
                k,
                format!(
                    "lifecycle state {:?} is never run; its checks are ignored",
                    key(k)
                ),
            )
            .help = Some("the states are pre-start, running, pre-stop and stopped".into());
            continue;
        };
        let Some(items) = v.as_seq() else {
            if !v.is_null() {
                r.error(
                    &state_path,
                    v,
                    format!("expected a list of checks, found {}", v.kind()),
                )
                .help = Some(format!("write `{}: [{}]`", key(k), v.display()));
            }
            continue;
        };
        let list = out.entry(state).or_default();
        for (i, item) in items.iter().enumerate() {
            list.push(RawCheck {
                node: item,
                path: format!("{state_path}[{i}]"),
            });
        }
    }
}

/// What a check needs to know about the instance it belongs to.
pub(crate) struct CheckTarget<'a> {
    pub instance: &'a str,
    pub ship_ip: &'a str,
    pub ports: &'a IndexMap<String, Port>,
}

pub(crate) fn check(r: &mut Reader, raw: &RawCheck<'_>, target: &CheckTarget<'_>) -> Option<Check> {
    let (node, path) = (raw.node, raw.path.as_str());
    let entries = r.map(
        node,
        path,
        "a check ({type: tcp|http|exec|rexec|sleep, ...})",
    )?;
    let Some(kind_node) = get(entries, "type") else {
        r.error(
            path,
            node,
            "a check needs a type: tcp, http, exec, rexec or sleep",
        );
        return None;
    };
    let kind = r.string(kind_node, &join(path, "type"), "a check type")?;
    let field = |name: &str| get(entries, name);
    let p = |name: &str| join(path, name);
    match kind.as_str() {
        "tcp" => {
            r.known_keys(entries, path, &["type", "port", "max_wait"]);
            let Some(port_node) = field("port") else {
                r.error(
                    path,
                    node,
                    "a tcp check needs the name of a port: port: NAME",
                );
                return None;
            };
            let name = r.string(port_node, &p("port"), "a port name")?;
            let max_wait = match field("max_wait") {
                Some(n) => r.whole_seconds(n, &p("max_wait"), "a number of attempts")?,
                None => 180,
            };
            let number = named_tcp_port(r, &name, port_node, &p("port"), target)?;
            Some(Check::Tcp {
                port: name,
                number,
                max_wait,
            })
        }
        "http" => {
            r.known_keys(
                entries,
                path,
                &[
                    "type",
                    "port",
                    "host",
                    "path",
                    "scheme",
                    "method",
                    "match_regex",
                    "max_wait",
                    "requests_options",
                ],
            );
            let Some(port_node) = field("port") else {
                r.error(
                    path,
                    node,
                    "an http check needs a port: a port name or a number",
                );
                return None;
            };
            let port_text = r.string(port_node, &p("port"), "a port name or number")?;
            let port = if target.ports.contains_key(&port_text) {
                named_port_number(r, &port_text, port_node, &p("port"), target)?
            } else if let Ok(number) = port_text.parse::<u16>() {
                number
            } else {
                unknown_port(r, &port_text, port_node, &p("port"), target);
                return None;
            };
            let host = match field("host") {
                Some(n) => r.string(n, &p("host"), "a host name or address")?,
                None => target.ship_ip.to_owned(),
            };
            let mut url_path = match field("path") {
                Some(n) => r.string(n, &p("path"), "a URL path")?,
                None => "/".to_owned(),
            };
            if !url_path.starts_with('/') {
                url_path.insert(0, '/');
            }
            let scheme = match field("scheme") {
                Some(n) => {
                    let scheme = r.string(n, &p("scheme"), "http or https")?;
                    if scheme != "http" && scheme != "https" {
                        r.error(
                            &p("scheme"),
                            n,
                            format!("expected http or https, found {scheme:?}"),
                        );
                        return None;
                    }
                    scheme
                }
                None => "http".to_owned(),
            };
            let method = match field("method") {
                Some(n) => r.string(n, &p("method"), "an HTTP method")?.to_lowercase(),
                None => "get".to_owned(),
            };
            let match_regex = field("match_regex")
                .and_then(|n| r.opt_string(n, &p("match_regex"), "a regular expression"));
            let max_wait = match field("max_wait") {
                Some(n) => r.seconds(n, &p("max_wait"))?,
                None => 300.0,
            };
            let options = match field("requests_options") {
                Some(n) => Box::new(request_options(r, n, &p("requests_options"))?),
                None => Box::default(),
            };
            Some(Check::Http {
                host,
                port,
                path: url_path,
                scheme,
                method,
                match_regex,
                max_wait,
                options,
            })
        }
        "exec" | "rexec" => {
            let known: &[&str] = if kind == "exec" {
                &["type", "command", "attempts", "envfrom"]
            } else {
                &["type", "command", "attempts"]
            };
            // `cmd` (MaestroNG's documented key) gets its own error below, not a warning too.
            let cmd_instead = get(entries, "command").is_none() && get(entries, "cmd").is_some();
            let with_cmd: Vec<&str> = known
                .iter()
                .copied()
                .chain(cmd_instead.then_some("cmd"))
                .collect();
            r.known_keys(entries, path, &with_cmd);
            let Some(command_node) = field("command") else {
                let d = r.error(path, node, format!("an {kind} check needs a command"));
                if field("cmd").is_some() {
                    d.help = Some("the key is `command`, not `cmd` (MaestroNG's documentation is wrong there)".into());
                }
                return None;
            };
            let text = r.string(command_node, &p("command"), "a command line")?;
            let Some(command) = shell_words(&text) else {
                r.error(
                    &p("command"),
                    command_node,
                    format!("cannot split {text:?} into words: unbalanced quotes"),
                );
                return None;
            };
            if command.is_empty() {
                r.error(
                    &p("command"),
                    command_node,
                    format!("an {kind} check needs a command to run, found {text:?}"),
                );
                return None;
            }
            let attempts = match field("attempts") {
                Some(n) => r.uint(n, &p("attempts"), "a number of attempts")?,
                None => 180,
            };
            if kind == "rexec" {
                return Some(Check::Rexec { command, attempts });
            }
            let env_via_stdin = match field("envfrom") {
                None => false,
                Some(n) => match r.string(n, &p("envfrom"), "env or stdin")?.as_str() {
                    "env" => false,
                    "stdin" => true,
                    other => {
                        r.error(
                            &p("envfrom"),
                            n,
                            format!("expected env or stdin, found {other:?}"),
                        );
                        return None;
                    }
                },
            };
            Some(Check::Exec {
                command,
                attempts,
                env_via_stdin,
            })
        }
        "sleep" => {
            r.known_keys(entries, path, &["type", "wait"]);
            let Some(wait) = field("wait") else {
                r.error(path, node, "a sleep check needs wait: SECONDS");
                return None;
            };
            Some(Check::Sleep {
                wait: r.seconds(wait, &p("wait"))?,
            })
        }
        other => {
            let help = r
                .suggester
                .suggestion(other, ["tcp", "http", "exec", "rexec", "sleep"]);
            r.error(
                &p("type"),
                kind_node,
                format!("unknown check type {other:?}"),
            )
            .help = Some(help);
            None
        }
    }
}

/// The `requests_options` maestro honours; the other arguments of Python requests are
/// warned about and ignored.
fn request_options(r: &mut Reader, node: &Node, path: &str) -> Option<RequestOptions> {
    let entries = r.opt_map(node, path, "a mapping of request options")?;
    let mut options = RequestOptions::default();
    let mut ok = true;
    for (k, v) in entries {
        let name = key(k);
        let vpath = join(path, name);
        match name {
            "verify" => match v.as_scalar().map(|s| (s.yaml11(), s)) {
                Some((Resolved::Bool(true) | Resolved::Null, _)) => {
                    options.verify = Verify::Default
                }
                Some((Resolved::Bool(false), _)) => options.verify = Verify::Off,
                Some((Resolved::Str, s)) if !s.text.is_empty() => {
                    options.verify = Verify::Bundle(s.text.to_string());
                }
                _ => {
                    r.error(
                        &vpath,
                        v,
                        format!(
                            "expected true, false or the path of a CA bundle, found {}",
                            v.display()
                        ),
                    )
                    .help = Some("write `verify: /path/to/ca.pem` (relative paths are relative to the environment file)".into());
                    ok = false;
                }
            },
            "headers" => {
                for (hk, hv) in r
                    .opt_map(v, &vpath, "a mapping of header names to values")
                    .unwrap_or_default()
                {
                    if let Some(value) = r.string(hv, &join(&vpath, key(hk)), "a header value") {
                        options.headers.push((key(hk).to_owned(), value));
                    }
                }
            }
            "auth" => match v.as_seq() {
                Some([user, password]) => {
                    let user = r.string(user, &format!("{vpath}[0]"), "a user name");
                    // The password is never shown, not even in an error.
                    let password = match password.as_scalar() {
                        Some(s) if !password.is_null() => Some(Secret::new(s.text.to_string())),
                        _ => {
                            r.error(
                                &format!("{vpath}[1]"),
                                password,
                                "expected a password (a string)",
                            );
                            None
                        }
                    };
                    match (user, password) {
                        (Some(user), Some(password)) => options.auth = Some((user, password)),
                        _ => ok = false,
                    }
                }
                _ => {
                    r.error(
                        &vpath,
                        v,
                        format!("expected [user, password], found {}", v.kind()),
                    )
                    .help = Some(
                        "HTTP Basic credentials: `auth: [alice, \"{{ env.PASSWORD }}\"]`".into(),
                    );
                    ok = false;
                }
            },
            "timeout" => {
                let timeout = match v.as_seq() {
                    Some([connect, read]) => r
                        .seconds(connect, &format!("{vpath}[0]"))
                        .zip(r.seconds(read, &format!("{vpath}[1]"))),
                    Some(_) => {
                        r.error(
                            &vpath,
                            v,
                            "expected seconds, or [connect seconds, read seconds]",
                        );
                        None
                    }
                    None if v.is_null() => {
                        options.timeout = None;
                        continue;
                    }
                    None => r.seconds(v, &vpath).map(|t| (t, t)),
                };
                match timeout {
                    Some(t) => options.timeout = Some(t),
                    None => ok = false,
                }
            }
            "allow_redirects" => options.allow_redirects = r.bool(v, &vpath),
            other => {
                r.warn(
                    &vpath,
                    k,
                    format!("request option {other:?} is not supported and is ignored"),
                )
                .help = Some("supported: verify, headers, auth, timeout, allow_redirects".into());
            }
        }
    }
    ok.then_some(options)
}

fn unknown_port(r: &mut Reader, name: &str, node: &Node, path: &str, target: &CheckTarget<'_>) {
    let help = r
        .suggester
        .suggestion(name, target.ports.keys().map(String::as_str));
    r.error(
        path,
        node,
        format!(
            "port {name:?} is not defined by instance {}",
            target.instance
        ),
    )
    .help = Some(help);
}

fn named_port_number(
    r: &mut Reader,
    name: &str,
    node: &Node,
    path: &str,
    target: &CheckTarget<'_>,
) -> Option<u16> {
    let port = target.ports.get(name)?;
    if port.external.is_range() {
        r.error(
            path,
            node,
            format!(
                "port {name:?} is published on a range ({}); a check needs one port",
                port.external.number
            ),
        );
        return None;
    }
    let number = port.external.first();
    if number.is_none() {
        r.error(
            path,
            node,
            format!(
                "port {name:?} ({}) is not a valid port number",
                port.external.number
            ),
        );
    }
    number
}

fn named_tcp_port(
    r: &mut Reader,
    name: &str,
    node: &Node,
    path: &str,
    target: &CheckTarget<'_>,
) -> Option<u16> {
    let Some(port) = target.ports.get(name) else {
        unknown_port(r, name, node, path, target);
        return None;
    };
    if port.exposed.protocol != Protocol::Tcp {
        r.error(
            path,
            node,
            format!(
                "port {name:?} is not TCP ({}); a tcp check cannot reach it",
                port.exposed.with_protocol()
            ),
        );
        return None;
    }
    named_port_number(r, name, node, path, target)
}

/// POSIX shell word splitting (Python's `shlex.split`): quotes and backslashes, no
/// expansion. `None` for unbalanced quotes.
pub fn shell_words(text: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            c @ ('"' | '\\' | '$' | '`') => word.push(c),
                            '\n' => {}
                            c => {
                                word.push('\\');
                                word.push(c);
                            }
                        },
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') | None => {}
                    Some(c) => word.push(c),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

pub(crate) fn auditors(r: &mut Reader, node: &Node, path: &str) -> Vec<Auditor> {
    let items: &[Node] = match &node.value {
        Value::Seq(items) => items,
        _ if node.is_null() => &[],
        _ => {
            r.error(
                path,
                node,
                format!("expected a list of auditors, found {}", node.kind()),
            );
            return Vec::new();
        }
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| auditor(r, item, &format!("{path}[{i}]")))
        .collect()
}

const AUDITORS: [&str; 6] = ["log", "http", "exec", "slack", "hipchat", "_fail"];

fn auditor(r: &mut Reader, node: &Node, path: &str) -> Option<Auditor> {
    let entries = r.map(
        node,
        path,
        "an auditor ({type: log|http|exec|slack|hipchat, ...})",
    )?;
    let p = |name: &str| join(path, name);
    let Some(kind_node) = get(entries, "type") else {
        r.error(
            path,
            node,
            "an auditor needs a type: log, http, exec, slack or hipchat",
        );
        return None;
    };
    let kind = r.string(kind_node, &p("type"), "an auditor type")?;
    let level = match get(entries, "level") {
        None => AuditLevel::Info,
        Some(n) => match r.string(n, &p("level"), "info or debug")?.as_str() {
            "info" => AuditLevel::Info,
            "debug" => AuditLevel::Debug,
            other => {
                r.error(
                    &p("level"),
                    n,
                    format!("expected info or debug, found {other:?}"),
                );
                return None;
            }
        },
    };
    let ignore_errors =
        get(entries, "ignore_errors").is_some_and(|n| r.bool(n, &p("ignore_errors")));
    let required = |r: &mut Reader, name: &str| -> Option<String> {
        match get(entries, name) {
            Some(n) => r.string(n, &p(name), "a value"),
            None => {
                r.error(path, node, format!("a {kind} auditor needs {name}"));
                None
            }
        }
    };
    let common = ["type", "level", "ignore_errors"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        common.iter().chain(extra).copied().collect()
    };
    let kind = match kind.as_str() {
        "log" => {
            r.known_keys(entries, path, &with(&["file"]));
            AuditorKind::Log {
                file: required(r, "file")?,
            }
        }
        "http" => {
            r.known_keys(
                entries,
                path,
                &with(&["endpoint", "payload", "headers", "method", "timeout"]),
            );
            let endpoint = required(r, "endpoint")?;
            let payload = get(entries, "payload")
                .map(data)
                .unwrap_or(Data::Map(Vec::new()));
            let mut headers = Vec::new();
            if let Some(n) = get(entries, "headers") {
                for (k, v) in r
                    .opt_map(n, &p("headers"), "a mapping of header names to values")
                    .unwrap_or_default()
                {
                    if let Some(value) = r.string(v, &join(&p("headers"), key(k)), "a header value")
                    {
                        headers.push((key(k).to_owned(), value));
                    }
                }
            }
            let method = match get(entries, "method") {
                None => "POST".to_owned(),
                Some(n) => {
                    let m = r.string(n, &p("method"), "GET or POST")?.to_uppercase();
                    if m != "GET" && m != "POST" {
                        r.error(
                            &p("method"),
                            n,
                            format!("expected GET or POST, found {m:?}"),
                        );
                        return None;
                    }
                    m
                }
            };
            let timeout = match get(entries, "timeout") {
                None => 3.0,
                Some(n) => r.seconds(n, &p("timeout"))?,
            };
            AuditorKind::Http {
                endpoint,
                payload,
                headers,
                method,
                timeout,
            }
        }
        "exec" => {
            r.known_keys(entries, path, &with(&["script", "args"]));
            let script = required(r, "script")?;
            let args = get(entries, "args")
                .and_then(|n| r.opt_string(n, &p("args"), "a string of arguments"));
            AuditorKind::Exec { script, args }
        }
        "slack" => {
            r.known_keys(
                entries,
                path,
                &with(&["channel", "token", "name", "icon", "api_url"]),
            );
            let channel = required(r, "channel")?;
            let token = Secret::new(required(r, "token")?);
            let name = get(entries, "name")
                .and_then(|n| r.opt_string(n, &p("name"), "a name"))
                .unwrap_or_else(|| "maestro-ng".into());
            let icon =
                get(entries, "icon").and_then(|n| r.opt_string(n, &p("icon"), "an icon URL"));
            let api_url = match get(entries, "api_url") {
                None => "https://slack.com/api".to_owned(),
                Some(n) => {
                    let url = r.string(n, &p("api_url"), "the URL of Slack's Web API")?;
                    if !url.starts_with("https://") && !url.starts_with("http://") {
                        r.error(
                            &p("api_url"),
                            n,
                            format!("expected an http:// or https:// URL, found {url:?}"),
                        );
                        return None;
                    }
                    url.trim_end_matches('/').to_owned()
                }
            };
            AuditorKind::Slack {
                channel,
                token,
                name,
                icon,
                api_url,
            }
        }
        "hipchat" => {
            r.known_keys(entries, path, &with(&["room", "token", "name"]));
            required(r, "room")?;
            required(r, "token")?;
            r.warn(
                &p("type"),
                kind_node,
                "the hipchat auditor records nothing: HipChat was shut down in 2019",
            )
            .help = Some("use a slack or http auditor, or remove this one".into());
            return None;
        }
        "_fail" => AuditorKind::Fail,
        other => {
            let help = r.suggester.suggestion(other, AUDITORS[..5].iter().copied());
            r.error(
                &p("type"),
                kind_node,
                format!("unknown auditor type {other:?}"),
            )
            .help = Some(help);
            return None;
        }
    };
    Some(Auditor {
        kind,
        level,
        ignore_errors,
    })
}

fn data(node: &Node) -> Data {
    match &node.value {
        Value::Scalar(_) if node.is_null() => Data::Null,
        Value::Scalar(s) => Data::Scalar(s.text.to_string()),
        Value::Seq(items) => Data::List(items.iter().map(data).collect()),
        Value::Map(entries) => Data::Map(
            entries
                .iter()
                .map(|(k, v)| (key(k).to_owned(), data(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::shell_words;

    #[test]
    fn shell_words_like_shlex() {
        let cases: [(&str, Option<&[&str]>); 6] = [
            ("python ./ruok.py", Some(&["python", "./ruok.py"])),
            (
                "bash -c 'echo hello && sleep 10'",
                Some(&["bash", "-c", "echo hello && sleep 10"]),
            ),
            (r#"a "b c" d\ e"#, Some(&["a", "b c", "d e"])),
            (r#"x "q\"q" ''"#, Some(&["x", "q\"q", ""])),
            ("  ", Some(&[])),
            ("'open", None),
        ];
        for (text, want) in cases {
            let got = shell_words(text);
            assert_eq!(
                got.as_deref()
                    .map(|w| w.iter().map(String::as_str).collect::<Vec<_>>()),
                want.map(<[&str]>::to_vec),
                "{text}"
            );
        }
    }
}
