//! `maestro config`: the resolved environment, as YAML or as the JSON contract of
//! `tests/conformance/README.md` (with more keys than the contract compares).

use indexmap::IndexMap;
use serde::Serialize;

use maestro_core::graph::{Dependencies, Direction};
use maestro_core::model::{
    Check, Command, Environment, Healthcheck, Instance, InstanceId, LifecycleState,
    compose_duration,
};

#[derive(Serialize)]
struct View<'a> {
    name: &'a str,
    schema: u32,
    ships: IndexMap<&'a str, ShipView<'a>>,
    services: IndexMap<&'a str, ServiceView<'a>>,
    instances: IndexMap<&'a str, InstanceView<'a>>,
    waits_for: WaitsFor<'a>,
}

#[derive(Serialize)]
struct ShipView<'a> {
    ip: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    docker_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    socket_path: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    tls: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    ssh_tunnel: Option<String>,
}

#[derive(Serialize)]
struct ServiceView<'a> {
    image: &'a str,
    requires: Vec<&'a str>,
    wants_info: Vec<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    omit: bool,
    instances: Vec<&'a str>,
}

#[derive(Serialize)]
struct InstanceView<'a> {
    service: &'a str,
    ship: &'a str,
    image: &'a str,
    env: EnvView<'a>,
    ports: IndexMap<&'a str, PortView>,
    volumes: IndexMap<&'a str, BindView<'a>>,
    container_volumes: &'a [String],
    volumes_from: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<CommandView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hostname: Option<&'a str>,
    restart: String,
    stop_timeout: u32,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    limits: IndexMap<&'static str, i128>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    links: Vec<String>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    labels: &'a IndexMap<String, String>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    lifecycle: IndexMap<&'static str, Vec<String>>,
    /// Only when configured: the JSON contract has no such key (MaestroNG has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    healthcheck: Option<HealthcheckView<'a>>,
}

/// `image`, or the health check as Compose writes it (durations as `1m30s`).
#[derive(Serialize)]
#[serde(untagged)]
enum HealthcheckView<'a> {
    Image(&'static str),
    Fields {
        #[serde(skip_serializing_if = "Option::is_none")]
        test: Option<&'a [String]>,
        #[serde(skip_serializing_if = "Option::is_none")]
        interval: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        timeout: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        start_period: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        start_interval: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        retries: Option<u32>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        disable: bool,
    },
}

fn healthcheck_view(healthcheck: &Healthcheck) -> HealthcheckView<'_> {
    let text = |d: &Option<std::time::Duration>| d.map(compose_duration);
    match healthcheck {
        Healthcheck::Image => HealthcheckView::Image("image"),
        Healthcheck::Disabled => HealthcheckView::Fields {
            test: None,
            interval: None,
            timeout: None,
            start_period: None,
            start_interval: None,
            retries: None,
            disable: true,
        },
        Healthcheck::Defined {
            test,
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        } => HealthcheckView::Fields {
            test: test.as_deref(),
            interval: text(interval),
            timeout: text(timeout),
            start_period: text(start_period),
            start_interval: text(start_interval),
            retries: *retries,
            disable: false,
        },
    }
}

#[derive(Serialize)]
struct PortView {
    exposed: String,
    external: (String, String),
}

#[derive(Serialize)]
struct BindView<'a> {
    bind: &'a str,
    mode: &'a str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum CommandView<'a> {
    Shell(&'a str),
    Args(&'a [String]),
}

#[derive(Serialize)]
struct WaitsFor<'a> {
    start: IndexMap<&'a str, Vec<&'a str>>,
    stop: IndexMap<&'a str, Vec<&'a str>>,
}

fn view(env: &Environment) -> View<'_> {
    let deps = Dependencies::new(env);
    let name_of = |i: &maestro_core::model::InstanceId| env.instance(*i).name.as_str();
    let waits = |direction| {
        env.instances
            .iter()
            .enumerate()
            .map(|(i, inst)| {
                let id = InstanceId(i);
                (
                    inst.name.as_str(),
                    deps.waits_for(id, direction).iter().map(name_of).collect(),
                )
            })
            .collect()
    };
    View {
        name: &env.name,
        schema: env.schema,
        ships: env
            .ships
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    ShipView {
                        ip: &s.ip,
                        endpoint: s.endpoint.as_deref(),
                        docker_port: s.docker_port,
                        socket_path: s.socket_path.as_deref(),
                        tls: s.tls,
                        ssh_tunnel: s.ssh_tunnel.as_ref().map(|t| {
                            format!(
                                "{}@{}:{} (key {})",
                                t.user,
                                s.endpoint.as_deref().unwrap_or(&s.ip),
                                t.port,
                                t.key
                            )
                        }),
                    },
                )
            })
            .collect(),
        services: env
            .services
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    ServiceView {
                        image: &s.image,
                        requires: s
                            .requires
                            .iter()
                            .map(|r| env.service(*r).name.as_str())
                            .collect(),
                        wants_info: s
                            .wants_info
                            .iter()
                            .map(|r| env.service(*r).name.as_str())
                            .collect(),
                        omit: s.omit,
                        instances: s.instances.iter().map(name_of).collect(),
                    },
                )
            })
            .collect(),
        instances: env
            .instances
            .iter()
            .enumerate()
            .map(|(n, i)| (i.name.as_str(), instance_view(env, InstanceId(n), i)))
            .collect(),
        waits_for: WaitsFor {
            start: waits(Direction::Start),
            stop: waits(Direction::Stop),
        },
    }
}

fn instance_view<'a>(env: &'a Environment, id: InstanceId, i: &'a Instance) -> InstanceView<'a> {
    let mut limits = IndexMap::new();
    if let Some(cpu) = i.limits.cpu {
        limits.insert("cpu", i128::from(cpu));
    }
    if let Some(memory) = i.limits.memory {
        limits.insert("memory", i128::from(memory));
    }
    if let Some(swap) = i.limits.swap {
        limits.insert("swap", i128::from(swap));
    }
    let lifecycle = i
        .lifecycle
        .iter()
        .filter(|(_, checks)| !checks.is_empty())
        .map(|(state, checks): (&LifecycleState, &Vec<Check>)| {
            (state.as_str(), checks.iter().map(describe_check).collect())
        })
        .collect();
    InstanceView {
        service: &env.service(i.service).name,
        ship: &env.ship(i.ship).name,
        image: &i.image.name,
        env: EnvView { env, id },
        ports: i
            .ports
            .iter()
            .map(|(name, p)| {
                (
                    name.as_str(),
                    PortView {
                        exposed: p.exposed.with_protocol(),
                        external: (p.host_ip.clone(), p.external.with_protocol()),
                    },
                )
            })
            .collect(),
        volumes: i
            .volumes
            .iter()
            .map(|(host, b)| {
                (
                    host.as_str(),
                    BindView {
                        bind: &b.target,
                        mode: &b.mode,
                    },
                )
            })
            .collect(),
        container_volumes: &i.container_volumes,
        volumes_from: i
            .volumes_from
            .iter()
            .map(|v| env.instance(*v).name.as_str())
            .collect(),
        command: i.command.as_ref().map(|c| match c {
            Command::Shell(s) => CommandView::Shell(s),
            Command::Args(a) => CommandView::Args(a),
        }),
        hostname: i.hostname(),
        restart: if i.restart.retries > 0 {
            format!("{}:{}", i.restart.name, i.restart.retries)
        } else {
            i.restart.name.clone()
        },
        stop_timeout: i.stop_timeout,
        limits,
        links: i.links.iter().map(|(c, a)| format!("{c}:{a}")).collect(),
        labels: &i.labels,
        lifecycle,
        healthcheck: i.healthcheck.as_deref().map(healthcheck_view),
    }
}

fn describe_check(check: &Check) -> String {
    match check {
        Check::Tcp {
            port,
            number,
            max_wait,
        } => format!("tcp {port} ({number}), {max_wait} attempts"),
        Check::Http {
            host,
            port,
            path,
            scheme,
            method,
            max_wait,
            ..
        } => {
            // The path's query may hold a token.
            format!(
                "http {} {}, {max_wait}s",
                method.to_uppercase(),
                guestutils::redact::url(&format!("{scheme}://{host}:{port}{path}"))
            )
        }
        Check::Exec {
            command, attempts, ..
        } => format!("exec {}, {attempts} attempts", command.join(" ")),
        Check::Rexec { command, attempts } => {
            format!("rexec {}, {attempts} attempts", command.join(" "))
        }
        Check::Sleep { wait } => format!("sleep {wait}s"),
    }
}

/// Every variable of one instance, streamed from the model (discovery variables are
/// shared by a service's instances, not copied per instance).
struct EnvView<'a> {
    env: &'a Environment,
    id: InstanceId,
}

impl Serialize for EnvView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.env.container_env(self.id))
    }
}

/// Writes the JSON contract; compact unless `pretty` (for a terminal).
pub fn write_config_json(
    env: &Environment,
    out: &mut dyn std::io::Write,
    pretty: bool,
) -> std::io::Result<()> {
    let view = view(env);
    // serde_json issues many tiny writes; a plain Vec takes them fastest, so the output
    // goes through one in chunks instead of straight to the (dynamic) writer.
    let mut chunks = Chunked {
        buffer: Vec::with_capacity(CHUNK + (CHUNK >> 2)),
        out,
    };
    if pretty {
        serde_json::to_writer_pretty(&mut chunks, &view)?;
    } else {
        serde_json::to_writer(&mut chunks, &view)?;
    }
    chunks.buffer.push(b'\n');
    chunks.out.write_all(&chunks.buffer)
}

const CHUNK: usize = 1 << 20;

struct Chunked<'a> {
    buffer: Vec<u8>,
    out: &'a mut dyn std::io::Write,
}

impl std::io::Write for Chunked<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.write_all(bytes)?;
        Ok(bytes.len())
    }

    #[inline]
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK {
            self.out.write_all(&self.buffer)?;
            self.buffer.clear();
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
fn config_yaml(env: &Environment) -> String {
    serde_saphyr::to_string(&view(env)).expect("the view serialises")
}

/// Writes the YAML view, streamed in chunks as the JSON one is: its size grows with
/// the square of a `requires` chain's depth, so it is never built whole.
pub fn write_config_yaml(env: &Environment, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut text = YamlText {
        chunks: Chunked {
            buffer: Vec::with_capacity(CHUNK + (CHUNK >> 2)),
            out,
        },
        failure: None,
    };
    let written = serde_saphyr::to_fmt_writer(&mut text, &view(env));
    if let Some(e) = text.failure {
        return Err(e);
    }
    written.map_err(std::io::Error::other)?;
    text.chunks.out.write_all(&text.chunks.buffer)
}

/// The serializer writes text (`fmt::Write`); this keeps the writer's error, which
/// `fmt::Error` cannot carry.
struct YamlText<'a> {
    chunks: Chunked<'a>,
    failure: Option<std::io::Error>,
}

impl std::fmt::Write for YamlText<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        use std::io::Write;
        self.chunks.write_all(s.as_bytes()).map_err(|e| {
            self.failure = Some(e);
            std::fmt::Error
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn environment() -> Environment {
        let text = "__maestro: {schema: 2}
name: t
ships: {s1: {ip: 10.0.0.1}}
services:
  web:
    image: nginx
    healthcheck: {test: [CMD, curl, -f, http://localhost/], interval: 90s, retries: 3}
    instances:
      web-1: {ship: s1}
      web-2: {ship: s1, healthcheck: {interval: 500ms, start_interval: 1s}}
      web-3: {ship: s1, healthcheck: image}
      web-4: {ship: s1, healthcheck: {disable: true}}
  db:
    image: postgres
    instances:
      db-1: {ship: s1}
";
        maestro_core::load(
            text,
            &maestro_core::NoFiles,
            &maestro_core::model::Ship::new("local", "127.0.0.1"),
        )
        .environment
        .expect("valid")
    }

    #[test]
    fn the_healthcheck_is_shown_only_when_configured() {
        let env = environment();
        let mut out = Vec::new();
        write_config_json(&env, &mut out, false).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let of = |name: &str| json["instances"][name].get("healthcheck").cloned();
        assert_eq!(
            of("web-1"),
            Some(serde_json::json!({
                "test": ["CMD", "curl", "-f", "http://localhost/"],
                "interval": "1m30s",
                "retries": 3
            }))
        );
        assert_eq!(
            of("web-2"),
            Some(serde_json::json!({
                "test": ["CMD", "curl", "-f", "http://localhost/"],
                "interval": "500ms",
                "start_interval": "1s",
                "retries": 3
            }))
        );
        assert_eq!(of("web-3"), Some(serde_json::json!("image")));
        assert_eq!(of("web-4"), Some(serde_json::json!({"disable": true})));
        assert_eq!(of("db-1"), None);

        let yaml = config_yaml(&env);
        assert!(
            yaml.contains("    healthcheck:\n      test:\n      - CMD\n      - curl\n"),
            "{yaml}"
        );
        assert!(yaml.contains("      interval: 1m30s\n"), "{yaml}");
        assert!(yaml.contains("    healthcheck: image\n"), "{yaml}");
        assert!(yaml.contains("      disable: true\n"), "{yaml}");
        assert_eq!(yaml.matches("healthcheck:").count(), 4, "{yaml}");
    }

    /// `config` shows an http check's URL without its query, and a secret variable as
    /// its placeholder (its value is never read by `config`).
    #[test]
    fn checks_queries_and_secrets_are_not_shown() {
        let text = "__maestro: {schema: 2}
name: t
ships: {s1: {ip: 10.0.0.1}}
services:
  web:
    image: nginx
    env: {DB_PASSWORD: {secret: \"cmd:false\"}}
    lifecycle: {running: [{type: http, port: p, path: \"/health?token=query-secret\"}]}
    ports: {p: 80}
    instances:
      web-1: {ship: s1}
";
        let env = maestro_core::load(
            text,
            &maestro_core::NoFiles,
            &maestro_core::model::Ship::new("local", "127.0.0.1"),
        )
        .environment
        .expect("valid");
        let mut json = Vec::new();
        write_config_json(&env, &mut json, false).unwrap();
        for shown in [config_yaml(&env), String::from_utf8(json).unwrap()] {
            assert!(shown.contains("/health?<redacted>"), "{shown}");
            assert!(!shown.contains("query-secret"), "{shown}");
            assert!(
                shown.contains("\"<secret>\"") || shown.contains("DB_PASSWORD: <secret>"),
                "{shown}"
            );
        }
    }

    /// A writer that keeps nothing: the total and the largest single write.
    #[derive(Default)]
    struct Sizes {
        total: usize,
        largest: usize,
    }

    impl std::io::Write for Sizes {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.total += buf.len();
            self.largest = self.largest.max(buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Both outputs go to their writer in bounded pieces, never built whole in memory
    /// (a 1,000-deep chain's plain `config` once took 24 GB as one String).
    #[test]
    fn config_streams_to_its_writer() {
        // A 40-deep requires chain of 20 instances each: every instance receives the
        // discovery variables of the services below it, several MB in all.
        let mut services = String::new();
        for s in 0..40 {
            let requires = if s > 0 {
                format!("[c{}]", s - 1)
            } else {
                "[]".into()
            };
            let instances: Vec<String> =
                (0..20).map(|i| format!("c{s}-{i}: {{ship: s1}}")).collect();
            services.push_str(&format!(
                "  c{s}: {{image: i, requires: {requires}, ports: {{p: 80}}, instances: {{{}}}}}\n",
                instances.join(", ")
            ));
        }
        let text = format!("name: t\nships: {{s1: {{ip: 10.0.0.1}}}}\nservices:\n{services}");
        let env = maestro_core::load(
            &text,
            &maestro_core::NoFiles,
            &maestro_core::model::Ship::new("local", "127.0.0.1"),
        )
        .environment
        .expect("valid");
        type Write = fn(&Environment, &mut dyn std::io::Write) -> std::io::Result<()>;
        let writers: [(&str, Write); 2] = [
            ("yaml", |env, out| write_config_yaml(env, out)),
            ("json", |env, out| write_config_json(env, out, false)),
        ];
        for (what, write) in writers {
            let mut out = Sizes::default();
            write(&env, &mut out).expect("written");
            assert!(out.total > 4 * CHUNK, "{what}: only {} bytes", out.total);
            assert!(
                out.largest <= 2 * CHUNK,
                "{what}: a write of {} bytes",
                out.largest
            );
        }
    }
}
