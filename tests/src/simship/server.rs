//! The HTTP side of a simulated ship: accepting connections, the latency and the limit of
//! requests in flight, routing, and Docker's request and response shapes.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use super::state::{
    Container, Event, Exec, HISTORY, Health, Refusal, Result, Run, State, familiar, refuse,
    registry_ids, tag_target,
};
use super::util::{self, now_nanos, reference};
use super::{Behaviour, KINDS, Ship};

type Body = BoxBody<Bytes, Infallible>;

/// The API version the ships speak (Docker 27.5).
const API_VERSION: &str = "1.47";
const MIN_API_VERSION: &str = "1.24";
const ENGINE_VERSION: &str = "27.5.1";
/// The largest request body read (an archive, a creation with a big environment).
const MAX_BODY: usize = 64 << 20;

pub async fn accept(listener: tokio::net::TcpListener, ship: Arc<Ship>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors, mostly: counted, and tried again shortly.
            Err(_) => {
                ship.stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        ship.stats.connections.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let ship = ship.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(ship.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

fn count(ship: &Ship, kind: &str) {
    let at = KINDS
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KINDS.len() - 1);
    ship.stats.counts[at].fetch_add(1, Ordering::Relaxed);
}

/// Adds a container's create, start, stop, kill or removal that succeeded to the ship's
/// journal, as `KIND NAME`, in the order they were done.
fn record(ship: &Ship, kind: &'static str, segments: &[&str], query: &BTreeMap<String, String>) {
    let name = match (kind, segments) {
        ("create", _) => query.get("name").cloned().unwrap_or_default(),
        ("start" | "stop" | "kill" | "remove", ["containers", target, ..]) => {
            let state = ship.state();
            match state.find(target) {
                Ok(id) => state.containers[id].bare_name().to_owned(),
                // Removed already: its id is all there is.
                Err(_) => (*target).to_owned(),
            }
        }
        _ => return,
    };
    ship.journal
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(format!("{kind} {name}"));
}

fn full(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    headers.insert("Api-Version", API_VERSION.parse().expect("valid"));
    headers.insert(
        "Server",
        format!("Docker/{ENGINE_VERSION} (linux)")
            .parse()
            .expect("valid"),
    );
    headers.insert("Ostype", "linux".parse().expect("valid"));
    if !content_type.is_empty() {
        headers.insert("Content-Type", content_type.parse().expect("valid"));
    }
    response
}

fn json_response(status: u16, body: String) -> Response<Body> {
    full(status, "application/json", body)
}

fn empty(status: u16) -> Response<Body> {
    full(status, "", Bytes::new())
}

fn error(refusal: Refusal) -> Response<Body> {
    json_response(
        refusal.status,
        json!({ "message": refusal.message }).to_string(),
    )
}

/// A body sent as it comes, chunk by chunk, through a channel; it ends when the sender
/// is dropped.
struct Channel(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for Channel {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<hyper::body::Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(hyper::body::Frame::data(c))))
    }
}

/// The sending side of a [`Channel`].
struct Sender(tokio::sync::mpsc::Sender<Bytes>);

impl Sender {
    /// `Err` once the client is gone.
    async fn send_data(&mut self, chunk: Bytes) -> std::result::Result<(), ()> {
        self.0.send(chunk).await.map_err(|_| ())
    }
}

/// A response whose body is sent as it comes, through the returned sender.
fn streaming(content_type: &str) -> (Sender, Response<Body>) {
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    let mut response = full(200, content_type, Bytes::new());
    *response.body_mut() = Channel(receiver).boxed();
    (Sender(sender), response)
}

/// The kind of request, for the counters, and whether it waits like the others (an
/// internal one does not).
fn kind(method: &Method, segments: &[&str]) -> &'static str {
    match (method, segments) {
        (_, ["_ping"]) => "ping",
        (_, ["version"]) => "version",
        (_, ["info"]) => "info",
        (_, ["containers", "json"]) => "list",
        (_, ["containers", "create"]) => "create",
        (&Method::DELETE, ["containers", _]) => "remove",
        (_, ["containers", _, "json"]) => "inspect",
        (_, ["containers", _, "start"]) => "start",
        (_, ["containers", _, "stop"]) => "stop",
        (_, ["containers", _, "kill"]) => "kill",
        (_, ["containers", _, "rename"]) => "rename",
        (_, ["containers", _, "update"]) => "update",
        (_, ["containers", _, "logs"]) => "logs",
        (_, ["containers", _, "archive"]) => "archive",
        (_, ["containers", _, "exec"]) | (_, ["exec", ..]) => "exec",
        (_, ["images", "create"]) => "pull",
        (_, ["images", .., "tag"]) => "tag",
        (_, ["images", ..]) => "image",
        (_, ["distribution", ..]) => "distribution",
        (_, ["events"]) => "events",
        _ => "other",
    }
}

async fn handle(
    ship: Arc<Ship>,
    req: Request<Incoming>,
) -> std::result::Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    let path = util::decode(req.uri().path(), false);
    let query = util::query(req.uri().query());
    // `/v1.47/containers/json` and `/containers/json` are one.
    let mut segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segments
        .first()
        .and_then(|s| s.strip_prefix('v'))
        .is_some_and(|v| {
            v.split_once('.')
                .is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok())
        })
    {
        segments.remove(0);
    }
    if segments == ["_simship", "stats"] {
        return Ok(json_response(200, stats_json(&ship)));
    }
    let upgrade = req.headers().get("upgrade").is_some();
    let mut req = req;
    let on_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let body = match Limited(req.into_body()).read().await {
        Ok(body) => body,
        Err(message) => return Ok(error(refuse(400, message))),
    };
    let kind = kind(&method, &segments);
    count(&ship, kind);
    // A place among the requests in flight, held for the latency and the answer.
    let stats = &ship.stats;
    let waiting = stats.waiting.fetch_add(1, Ordering::Relaxed) + 1;
    stats.max_waiting.fetch_max(waiting, Ordering::Relaxed);
    let permit = match &ship.permits {
        Some(permits) => Some(permits.acquire().await.expect("never closed")),
        None => None,
    };
    stats.waiting.fetch_sub(1, Ordering::Relaxed);
    let now_in_flight = stats.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    stats
        .max_in_flight
        .fetch_max(now_in_flight, Ordering::Relaxed);
    if !ship.options.latency.is_zero() {
        tokio::time::sleep(ship.options.latency).await;
    }
    let response = route(&ship, &method, &segments, &query, &body, on_upgrade).await;
    if response.is_ok() {
        record(&ship, kind, &segments, &query);
    }
    stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    drop(permit);
    Ok(match response {
        Ok(response) => response,
        Err(refusal) => {
            if refusal.status >= 400 {
                ship.stats.refused.fetch_add(1, Ordering::Relaxed);
            }
            error(refusal)
        }
    })
}

/// A request body, read whole up to [`MAX_BODY`].
struct Limited(Incoming);

impl Limited {
    async fn read(self) -> std::result::Result<Bytes, String> {
        match http_body_util::Limited::new(self.0, MAX_BODY)
            .collect()
            .await
        {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) => Err(format!("cannot read the request body: {e}")),
        }
    }
}

fn stats_json(ship: &Ship) -> String {
    let counters = ship.counters();
    let requests: serde_json::Map<String, Value> = counters
        .requests
        .iter()
        .map(|(k, n)| ((*k).to_owned(), json!(n)))
        .collect();
    json!({
        "port": ship.port,
        "requests": requests,
        "total": counters.total(),
        "max_in_flight": counters.max_in_flight,
        "max_waiting": counters.max_waiting,
        "accept_errors": counters.accept_errors,
        "connections": counters.connections,
        "refused": counters.refused,
        "containers": {
            "running": counters.running,
            "exited": counters.exited,
            "created": counters.created,
        },
    })
    .to_string()
}

fn flag(query: &BTreeMap<String, String>, name: &str) -> bool {
    query
        .get(name)
        .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "True" | "yes"))
}

async fn route(
    ship: &Arc<Ship>,
    method: &Method,
    segments: &[&str],
    query: &BTreeMap<String, String>,
    body: &Bytes,
    on_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response<Body>> {
    let get = method == Method::GET || method == Method::HEAD;
    let post = method == Method::POST;
    match segments {
        ["_ping"] if get => {
            let mut response = full(200, "text/plain; charset=utf-8", "OK");
            response
                .headers_mut()
                .insert("Docker-Experimental", "false".parse().expect("valid"));
            Ok(response)
        }
        ["version"] if get => Ok(json_response(200, version_json())),
        ["info"] if get => Ok(json_response(200, info_json(ship))),
        ["containers", "json"] if get => list(ship, query).map(|b| json_response(200, b)),
        ["containers", "create"] if post => create(ship, query, body),
        ["containers", id] if method == Method::DELETE => remove(ship, id, query),
        ["containers", id, "json"] if get => {
            let mut state = ship.state();
            Ok(json_response(200, state.container(id)?.inspect()))
        }
        ["containers", id, "start"] if post => start(ship, id),
        ["containers", id, "stop"] if post => stop(ship, id, false),
        ["containers", id, "kill"] if post => stop(ship, id, true),
        ["containers", id, "rename"] if post => rename(ship, id, query),
        ["containers", id, "update"] if post => update(ship, id, body),
        ["containers", id, "logs"] if get => logs(ship, id, query),
        ["containers", id, "archive"] if get => archive_get(ship, id, query),
        ["containers", id, "archive"] if method == Method::PUT => {
            archive_put(ship, id, query, body)
        }
        ["containers", id, "exec"] if post => exec_create(ship, id, body),
        ["exec", id, "start"] if post => exec_start(ship, id, on_upgrade),
        ["exec", id, "json"] if get => exec_inspect(ship, id),
        ["images", "create"] if post => pull(ship, query, body),
        ["images", rest @ .., "json"] if get && !rest.is_empty() => {
            let name = rest.join("/");
            let mut state = ship.state();
            match state.image(&name, &ship.options, &ship.registry) {
                Some(image) => Ok(json_response(200, image.inspect())),
                None => Err(refuse(
                    404,
                    format!("No such image: {}", shown_tagged(&name)),
                )),
            }
        }
        ["images", rest @ .., "tag"] if post && !rest.is_empty() => {
            tag(ship, &rest.join("/"), query)
        }
        ["images", rest @ ..] if method == Method::DELETE && !rest.is_empty() => {
            remove_image(ship, &rest.join("/"))
        }
        ["distribution", rest @ .., "json"] if get && !rest.is_empty() => {
            distribution(ship, &rest.join("/"))
        }
        ["events"] if get => events(ship, query),
        _ => Err(refuse(
            404,
            format!(
                "page not found: the simulated ship does not implement {method} /{}",
                segments.join("/")
            ),
        )),
    }
}

fn version_json() -> String {
    json!({
        "Platform": {"Name": "simship"},
        "Components": [{"Name": "Engine", "Version": ENGINE_VERSION, "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION}}],
        "Version": ENGINE_VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "simship",
        "GoVersion": "go1.22.11",
        "Os": "linux",
        "Arch": "amd64",
        "KernelVersion": "simulated",
        "BuildTime": "2025-01-01T00:00:00.000000000+00:00",
    })
    .to_string()
}

fn info_json(ship: &Ship) -> String {
    let counters = ship.counters();
    json!({
        "ID": format!("simship-{}", ship.port),
        "Containers": counters.running + counters.exited + counters.created,
        "ContainersRunning": counters.running,
        "ContainersPaused": 0,
        "ContainersStopped": counters.exited + counters.created,
        "Images": ship.state().images.len(),
        "Driver": "simship",
        "OperatingSystem": "simulated ship",
        "OSType": "linux",
        "Architecture": "x86_64",
        "NCPU": 2,
        "Name": format!("simship-{}", ship.port),
        "ServerVersion": ENGINE_VERSION,
    })
    .to_string()
}

/// `busybox` as the engine names it in messages: `busybox:latest`.
fn shown_tagged(name: &str) -> String {
    let (repository, suffix) = reference(name);
    format!("{}{suffix}", familiar(&repository))
}

fn emit(ship: &Ship, state: &mut State, event: Event) {
    let event = Arc::new(event);
    if state.history.len() == HISTORY {
        state.history.pop_front();
    }
    state.history.push_back(event.clone());
    let _ = ship.events.send(event);
}

fn container_event(c: &Container, action: &str, extra: &[(&str, String)]) -> Event {
    let mut attributes = vec![
        ("image".to_owned(), c.image.clone()),
        ("name".to_owned(), c.bare_name().to_owned()),
    ];
    attributes.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    Event {
        time_nano: now_nanos(),
        kind: "container",
        action: action.to_owned(),
        id: c.id.clone(),
        from: c.image.clone(),
        attributes,
        labels: c.labels.clone(),
    }
}

fn image_event(id: &str, action: &str, name: &str) -> Event {
    Event {
        time_nano: now_nanos(),
        kind: "image",
        action: action.to_owned(),
        id: id.to_owned(),
        from: String::new(),
        attributes: vec![("name".to_owned(), name.to_owned())],
        labels: Arc::from(Vec::new()),
    }
}

/// Docker's rule for container names.
fn valid_name(name: &str) -> bool {
    let name = name.strip_prefix('/').unwrap_or(name);
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn conflict(name: &str, id: &str) -> Refusal {
    refuse(
        409,
        format!(
            "Conflict. The container name \"{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
        ),
    )
}

fn list(ship: &Ship, query: &BTreeMap<String, String>) -> Result<String> {
    let filters = util::filters(query.get("filters")).map_err(|e| refuse(400, e))?;
    for key in filters.keys() {
        if !matches!(key.as_str(), "label" | "name" | "id" | "status") {
            let known = [
                "ancestor",
                "before",
                "expose",
                "exited",
                "health",
                "isolation",
                "is-task",
                "network",
                "publish",
                "since",
                "volume",
            ];
            return Err(refuse(
                400,
                if known.contains(&key.as_str()) {
                    format!("the simulated ship does not implement the filter '{key}'")
                } else {
                    format!("invalid filter '{key}'")
                },
            ));
        }
    }
    let names: Vec<Option<regex::Regex>> = filters
        .get("name")
        .map(|patterns| patterns.iter().map(|p| compiled(p)).collect())
        .unwrap_or_default();
    // Go's `Args.Match`: the value itself, or a regular expression found anywhere; an
    // invalid one matches nothing.
    let matches = |values: &[String], patterns: &[Option<regex::Regex>], text: &str| {
        values
            .iter()
            .zip(patterns)
            .any(|(value, re)| value == text || re.as_ref().is_some_and(|re| re.is_match(text)))
    };
    let ids: Vec<Option<regex::Regex>> = filters
        .get("id")
        .map(|patterns| patterns.iter().map(|p| compiled(p)).collect())
        .unwrap_or_default();
    let all = flag(query, "all");
    let now = now_nanos();
    let state = ship.state();
    let mut found: Vec<&Container> = state
        .containers
        .values()
        .filter(|c| all || c.run == Run::Running || filters.contains_key("status"))
        .filter(|c| {
            filters
                .get("status")
                .is_none_or(|s| s.iter().any(|s| s == c.run.word()))
        })
        .filter(|c| {
            filters
                .get("name")
                .is_none_or(|values| matches(values, &names, &c.name))
        })
        .filter(|c| {
            filters
                .get("id")
                .is_none_or(|values| matches(values, &ids, &c.id))
        })
        .filter(|c| {
            filters.get("label").is_none_or(|wanted| {
                wanted.iter().all(|w| match w.split_once('=') {
                    Some((k, v)) => c.labels.iter().any(|(lk, lv)| lk == k && lv == v),
                    None => c.labels.iter().any(|(lk, _)| lk == w),
                })
            })
        })
        .collect();
    found.sort_by_key(|c| std::cmp::Reverse(c.seq));
    let mut out = String::from("[");
    for (n, c) in found.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(&c.summary(now));
    }
    out.push(']');
    Ok(out)
}

/// A compiled regular expression, kept: the same long name patterns come again and again.
fn compiled(pattern: &str) -> Option<regex::Regex> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(found) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(pattern) {
        return found.clone();
    }
    let re = regex::Regex::new(pattern).ok();
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() > 10_000 {
        cache.clear();
    }
    cache.insert(pattern.to_owned(), re.clone());
    re
}

fn nanos_of(value: &Value) -> Option<u64> {
    value.as_u64().filter(|n| *n > 0)
}

fn create(ship: &Ship, query: &BTreeMap<String, String>, body: &Bytes) -> Result<Response<Body>> {
    let mut config: serde_json::Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| refuse(400, format!("invalid JSON: {e}")))?;
    let host_config = config.remove("HostConfig").unwrap_or_else(|| json!({}));
    config.remove("NetworkingConfig");
    let image = config
        .get("Image")
        .and_then(Value::as_str)
        .filter(|i| !i.is_empty())
        .ok_or_else(|| refuse(400, "No command specified"))?
        .to_owned();
    let mut state = ship.state();
    let id = state.new_id(ship.seed);
    let name = match query.get("name").filter(|n| !n.is_empty()) {
        Some(name) if !valid_name(name) => {
            return Err(refuse(
                400,
                format!(
                    "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                ),
            ));
        }
        Some(name) => format!("/{}", name.trim_start_matches('/')),
        None => format!("/simship_{}", &id[..12]),
    };
    if let Some(other) = state.names.get(&name) {
        return Err(conflict(&name, other));
    }
    let Some(record) = state.image(&image, &ship.options, &ship.registry) else {
        return Err(refuse(
            404,
            format!("No such image: {}", shown_tagged(&image)),
        ));
    };
    let (image_id, behaviour) = (record.id.clone(), record.behaviour);
    let words = |key: &str| -> Vec<String> {
        config
            .get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut command: Vec<String> = words("Entrypoint");
    command.extend(if config.get("Cmd").is_some_and(|c| !c.is_null()) {
        words("Cmd")
    } else {
        vec!["simship-app".to_owned()]
    });
    let labels: Vec<(String, String)> = config
        .get("Labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let labels_json = Value::Object(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
    .to_string();
    let health_interval = config.get("Healthcheck").and_then(|h| {
        let test = h.get("Test")?.as_array()?;
        let first = test.first()?.as_str()?;
        if first == "NONE" {
            return None;
        }
        let interval = nanos_of(&h["Interval"]).unwrap_or(30_000_000_000);
        let first_probe = nanos_of(&h["StartInterval"]).map_or(interval, |s| s.min(interval));
        let retries = h["Retries"].as_u64().filter(|r| *r > 0).unwrap_or(3);
        Some((first_probe, u32::try_from(retries).unwrap_or(3)))
    });
    // Published ports, as inspect and list show them.
    let mut ports_inspect = serde_json::Map::new();
    let mut ports_list = Vec::new();
    if let Some(bindings) = host_config.get("PortBindings").and_then(Value::as_object) {
        for (port, list) in bindings {
            let mut shown = Vec::new();
            let (number, protocol) = port.split_once('/').unwrap_or((port, "tcp"));
            for b in list.as_array().into_iter().flatten() {
                let ip = b["HostIp"]
                    .as_str()
                    .filter(|i| !i.is_empty())
                    .unwrap_or("0.0.0.0");
                let host_port = b["HostPort"].as_str().unwrap_or_default();
                shown.push(json!({"HostIp": ip, "HostPort": host_port}));
                ports_list.push(json!({
                    "IP": ip,
                    "PrivatePort": number.parse::<u16>().unwrap_or(0),
                    "PublicPort": host_port.parse::<u16>().unwrap_or(0),
                    "Type": protocol,
                }));
            }
            ports_inspect.insert(port.clone(), Value::Array(shown));
        }
    }
    let seq = state.next;
    let container = Container {
        id: id.clone(),
        name: name.clone(),
        image,
        image_id,
        created: now_nanos(),
        config: Value::Object(config).to_string().into(),
        host_config: host_config.to_string().into(),
        labels: labels.into(),
        labels_json: labels_json.into(),
        path: command.first().cloned().unwrap_or_default(),
        args: command.into_iter().skip(1).collect(),
        ports_inspect: Value::Object(ports_inspect).to_string().into(),
        ports_list: Value::Array(ports_list).to_string().into(),
        run: Run::Created,
        exit_code: 0,
        started_at: 0,
        finished_at: 0,
        health_interval,
        health: None,
        behaviour,
        generation: 0,
        logs: Vec::new(),
        files: Default::default(),
        restart_count: 0,
        seq,
    };
    let event = container_event(&container, "create", &[]);
    state.names.insert(name, id.clone());
    state.containers.insert(id.clone(), container);
    emit(ship, &mut state, event);
    Ok(json_response(
        201,
        json!({"Id": id, "Warnings": []}).to_string(),
    ))
}

fn start(ship: &Arc<Ship>, name: &str) -> Result<Response<Body>> {
    let mut state = ship.state();
    let c = state.container(name)?;
    if c.run == Run::Running {
        return Ok(empty(304));
    }
    let now = now_nanos();
    c.run = Run::Running;
    c.started_at = now;
    c.exit_code = 0;
    c.generation += 1;
    c.health = c.health_interval.map(|(after, retries)| Health {
        status: "starting",
        failing_streak: 0,
        verdict_after: if c.behaviour == Behaviour::Unhealthy {
            after * u64::from(retries)
        } else {
            after
        },
        last_check: 0,
    });
    let started = container_event(c, "start", &[]);
    let mut later = Vec::new();
    if let Behaviour::Exit(code) = c.behaviour {
        c.run = Run::Exited;
        c.exit_code = code;
        c.finished_at = now_nanos();
        c.health = None;
        c.logs.push((
            2,
            format!("simship: the image's behaviour is to exit with code {code}\n"),
        ));
        later.push(container_event(c, "die", &[("exitCode", code.to_string())]));
    }
    let timer = c
        .health
        .as_ref()
        .map(|h| (c.id.clone(), c.generation, h.verdict_after));
    emit(ship, &mut state, started);
    for event in later {
        emit(ship, &mut state, event);
    }
    drop(state);
    if let Some((id, generation, after)) = timer {
        let ship = ship.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_nanos(after)).await;
            let mut state = ship.state();
            let Some(c) = state.containers.get_mut(&id) else {
                return;
            };
            if c.generation != generation || c.run != Run::Running {
                return;
            }
            let Some(health) = c.health.as_mut() else {
                return;
            };
            let unhealthy = c.behaviour == Behaviour::Unhealthy;
            health.status = if unhealthy { "unhealthy" } else { "healthy" };
            health.failing_streak = if unhealthy {
                c.health_interval.map_or(3, |h| h.1)
            } else {
                0
            };
            health.last_check = now_nanos();
            let action = format!("health_status: {}", health.status);
            let event = container_event(c, &action, &[]);
            emit(&ship, &mut state, event);
        });
    }
    Ok(empty(204))
}

/// Stop (SIGTERM: the simulated app exits with 0 at once) or kill (SIGKILL: 137).
fn stop(ship: &Ship, name: &str, kill: bool) -> Result<Response<Body>> {
    let mut state = ship.state();
    let c = state.container(name)?;
    if c.run != Run::Running {
        if kill {
            return Err(refuse(
                409,
                format!(
                    "Cannot kill container: {name}: Container {} is not running",
                    c.id
                ),
            ));
        }
        return Ok(empty(304));
    }
    let code = if kill { 137 } else { 0 };
    let signal = if kill { "9" } else { "15" };
    c.run = Run::Exited;
    c.exit_code = code;
    c.finished_at = now_nanos();
    c.generation += 1;
    if let Some(h) = c.health.as_mut() {
        if h.status == "starting" {
            h.status = "unhealthy";
        }
    }
    let events = [
        container_event(c, "kill", &[("signal", signal.to_owned())]),
        container_event(c, "die", &[("exitCode", code.to_string())]),
    ];
    let stopped = (!kill).then(|| container_event(c, "stop", &[]));
    for e in events.into_iter().chain(stopped) {
        emit(ship, &mut state, e);
    }
    Ok(empty(204))
}

fn remove(ship: &Ship, name: &str, query: &BTreeMap<String, String>) -> Result<Response<Body>> {
    let mut state = ship.state();
    let id = state.find(name)?.clone();
    let c = &state.containers[&id];
    if c.run == Run::Running && !flag(query, "force") {
        return Err(refuse(
            409,
            format!(
                "cannot remove container \"{}\": container is running: stop the container before removing or force remove",
                c.name
            ),
        ));
    }
    let c = state.containers.remove(&id).expect("found");
    state.names.remove(&c.name);
    state.execs.retain(|_, e| e.container != id);
    let mut events = Vec::new();
    if c.run == Run::Running {
        events.push(container_event(&c, "kill", &[("signal", "9".to_owned())]));
        events.push(container_event(
            &c,
            "die",
            &[("exitCode", "137".to_owned())],
        ));
    }
    events.push(container_event(&c, "destroy", &[]));
    for e in events {
        emit(ship, &mut state, e);
    }
    Ok(empty(204))
}

fn rename(ship: &Ship, name: &str, query: &BTreeMap<String, String>) -> Result<Response<Body>> {
    let new = query.get("name").map(String::as_str).unwrap_or_default();
    if !valid_name(new) {
        return Err(refuse(
            400,
            format!("Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
        ));
    }
    let new = format!("/{}", new.trim_start_matches('/'));
    let mut state = ship.state();
    let id = state.find(name)?.clone();
    let old = state.containers[&id].name.clone();
    if old == new {
        return Err(refuse(
            400,
            "Renaming a container with the same name as its current name",
        ));
    }
    if let Some(other) = state.names.get(&new) {
        return Err(conflict(&new, other));
    }
    state.names.remove(&old);
    state.names.insert(new.clone(), id.clone());
    let c = state.containers.get_mut(&id).expect("found");
    c.name = new;
    let event = container_event(c, "rename", &[("oldName", old)]);
    emit(ship, &mut state, event);
    Ok(empty(204))
}

fn update(ship: &Ship, name: &str, body: &Bytes) -> Result<Response<Body>> {
    let update: Value =
        serde_json::from_slice(body).map_err(|e| refuse(400, format!("invalid JSON: {e}")))?;
    let mut state = ship.state();
    let c = state.container(name)?;
    let mut host: Value = serde_json::from_str(&c.host_config).unwrap_or_else(|_| json!({}));
    if let (Some(policy), Some(host)) = (update.get("RestartPolicy"), host.as_object_mut()) {
        host.insert("RestartPolicy".into(), policy.clone());
    }
    c.host_config = host.to_string().into();
    let event = container_event(c, "update", &[]);
    emit(ship, &mut state, event);
    Ok(json_response(200, json!({"Warnings": []}).to_string()))
}

fn frame(stream: u8, line: &str) -> Vec<u8> {
    let mut out = vec![stream, 0, 0, 0];
    out.extend_from_slice(&u32::try_from(line.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(line.as_bytes());
    out
}

fn logs(ship: &Arc<Ship>, name: &str, query: &BTreeMap<String, String>) -> Result<Response<Body>> {
    let (stdout, stderr) = (flag(query, "stdout"), flag(query, "stderr"));
    let tail: Option<usize> = query.get("tail").and_then(|t| t.parse().ok());
    let mut state = ship.state();
    let c = state.container(name)?;
    let lines: Vec<&(u8, String)> = c
        .logs
        .iter()
        .filter(|(s, _)| (*s == 1 && stdout) || (*s == 2 && stderr))
        .collect();
    let from = tail.map_or(0, |t| lines.len().saturating_sub(t));
    let mut out = Vec::new();
    for (s, line) in &lines[from..] {
        out.extend(frame(*s, line));
    }
    let content_type = "application/vnd.docker.multiplexed-stream";
    if !flag(query, "follow") || c.run != Run::Running {
        return Ok(full(200, content_type, out));
    }
    // Following: the simulated app writes nothing more; the stream ends when it stops.
    let id = c.id.clone();
    let mut events = ship.events.subscribe();
    drop(state);
    let (mut sender, response) = streaming(content_type);
    tokio::spawn(async move {
        if !out.is_empty() && sender.send_data(out.into()).await.is_err() {
            return;
        }
        loop {
            match events.recv().await {
                Ok(e) if e.id == id && matches!(e.action.as_str(), "die" | "destroy") => return,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            }
        }
    });
    Ok(response)
}

fn archive_get(
    ship: &Ship,
    name: &str,
    query: &BTreeMap<String, String>,
) -> Result<Response<Body>> {
    let path = query.get("path").cloned().unwrap_or_default();
    let mut state = ship.state();
    let c = state.container(name)?;
    let absolute = format!("/{}", path.trim_start_matches('/'));
    let Some((content, mtime)) = c.files.get(&absolute) else {
        return Err(refuse(
            404,
            format!("Could not find the file {path} in container {name}"),
        ));
    };
    let base = absolute.rsplit('/').next().unwrap_or_default();
    let tar = util::tar_of(base, content, *mtime);
    Ok(full(200, "application/x-tar", tar))
}

fn archive_put(
    ship: &Ship,
    name: &str,
    query: &BTreeMap<String, String>,
    body: &Bytes,
) -> Result<Response<Body>> {
    let path = query.get("path").cloned().unwrap_or_default();
    if path.is_empty() {
        return Err(refuse(400, "path is required"));
    }
    let mut state = ship.state();
    let c = state.container(name)?;
    let dir = path.trim_end_matches('/');
    let mtime = (now_nanos() / 1_000_000_000) as i64;
    for (file, content) in util::untar(body) {
        c.files.insert(format!("{dir}/{file}"), (content, mtime));
    }
    Ok(empty(200))
}

fn exec_create(ship: &Ship, name: &str, body: &Bytes) -> Result<Response<Body>> {
    let config: Value =
        serde_json::from_slice(body).map_err(|e| refuse(400, format!("invalid JSON: {e}")))?;
    let cmd: Vec<String> = config["Cmd"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if cmd.is_empty() {
        return Err(refuse(400, "No exec command specified"));
    }
    let mut state = ship.state();
    let id = state.find(name)?.clone();
    if state.containers[&id].run != Run::Running {
        return Err(refuse(409, format!("container {id} is not running")));
    }
    let exec_id = state.new_id(ship.seed ^ 0xe8ec);
    state.execs.insert(
        exec_id.clone(),
        Exec {
            container: id,
            cmd,
            running: false,
            exit_code: None,
        },
    );
    Ok(json_response(201, json!({"Id": exec_id}).to_string()))
}

/// The simulated app's commands do nothing and succeed (exit code 0).
fn exec_start(
    ship: &Ship,
    id: &str,
    on_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response<Body>> {
    let mut state = ship.state();
    let exec = state
        .execs
        .get_mut(id)
        .ok_or_else(|| refuse(404, format!("No such exec instance: {id}")))?;
    exec.exit_code = Some(0);
    exec.running = false;
    let action = format!("exec_start: {}", exec.cmd.join(" "));
    let container = exec.container.clone();
    if let Some(c) = state.containers.get(&container) {
        let event = container_event(c, &action, &[("execID", id.to_owned())]);
        emit(ship, &mut state, event);
    }
    drop(state);
    let Some(on_upgrade) = on_upgrade else {
        return Ok(empty(200));
    };
    // Attached: the connection becomes the exec's raw stream, which ends at once.
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let mut io = TokioIo::new(upgraded);
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut io).await;
        }
    });
    let mut response = full(101, "application/vnd.docker.raw-stream", Bytes::new());
    let headers = response.headers_mut();
    headers.insert("Connection", "Upgrade".parse().expect("valid"));
    headers.insert("Upgrade", "tcp".parse().expect("valid"));
    Ok(response)
}

fn exec_inspect(ship: &Ship, id: &str) -> Result<Response<Body>> {
    let state = ship.state();
    let exec = state
        .execs
        .get(id)
        .ok_or_else(|| refuse(404, format!("No such exec instance: {id}")))?;
    let (path, args) = exec
        .cmd
        .split_first()
        .map_or((String::new(), &[][..]), |(p, a)| (p.clone(), a));
    Ok(json_response(
        200,
        json!({
            "ID": id,
            "Running": exec.running,
            "ExitCode": exec.exit_code,
            "ProcessConfig": {"entrypoint": path, "arguments": args, "privileged": false, "tty": false},
            "OpenStdin": false,
            "OpenStderr": true,
            "OpenStdout": true,
            "CanRemove": false,
            "ContainerID": exec.container,
            "Pid": 0,
        })
        .to_string(),
    ))
}

/// `POST /images/create`: a pull from the simulated registry (`fromImage`, `tag` a tag or
/// a digest), or an import of the request's tar (`fromSrc=-`, as `docker import`).
fn pull(ship: &Ship, query: &BTreeMap<String, String>, body: &Bytes) -> Result<Response<Body>> {
    let mut state = ship.state();
    if query.get("fromSrc").is_some_and(|s| s == "-") {
        let repo = query.get("repo").cloned().unwrap_or_default();
        let id = format!(
            "sha256:{}",
            util::hex64(
                util::fnv(&format!("import:{}", body.len()))
                    ^ util::fnv(&String::from_utf8_lossy(body))
            )
        );
        let tag = (!repo.is_empty()).then(|| {
            tag_target(
                &repo,
                query.get("tag").map(String::as_str).unwrap_or_default(),
            )
        });
        let behaviour = tag
            .as_deref()
            .and_then(|t| ship.options.present(t))
            .unwrap_or_default();
        state.add_image(&id, tag.as_deref(), None, behaviour);
        let event = image_event(&id, "import", &repo);
        emit(ship, &mut state, event);
        return Ok(json_response(200, format!("{{\"status\":\"{id}\"}}\r\n")));
    }
    let from = query.get("fromImage").cloned().unwrap_or_default();
    if from.is_empty() {
        return Err(refuse(400, "fromImage or fromSrc is required"));
    }
    let tag = query.get("tag").cloned().unwrap_or_default();
    let name = match (tag.as_str(), from.contains('@')) {
        ("", _) | (_, true) => from.clone(),
        (t, false) if t.starts_with("sha256:") => format!("{from}@{t}"),
        (t, false) => format!("{from}:{t}"),
    };
    let (repository, suffix) = reference(&name);
    let key = format!("{repository}{suffix}");
    // By digest: the tag the registry gave that digest out for.
    let tagged = match suffix.strip_prefix('@') {
        Some(digest) => ship
            .registry
            .digests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
            .cloned()
            .filter(|t| reference(t).0 == repository),
        None => Some(key.clone()),
    };
    let behaviour = tagged.as_deref().and_then(|t| ship.options.present(t));
    let (Some(tagged), Some(behaviour)) = (tagged, behaviour) else {
        return Err(refuse(
            404,
            format!(
                "manifest for {} not found: manifest unknown: manifest unknown",
                shown_tagged(&name)
            ),
        ));
    };
    let (id, digest) = registry_ids(&tagged);
    ship.registry
        .digests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(digest.clone(), tagged.clone());
    let by_digest = suffix.starts_with('@');
    state.add_image(
        &id,
        (!by_digest).then_some(tagged.as_str()),
        Some(&format!("{repository}@{digest}")),
        behaviour,
    );
    let shown = familiar(&repository);
    let event = image_event(&id, "pull", &format!("{shown}{suffix}"));
    emit(ship, &mut state, event);
    let lines = [
        json!({"status": format!("Pulling from {}", shown.rsplit_once('/').map_or(shown.as_str(), |(_, r)| r)), "id": suffix.trim_start_matches([':', '@'])}),
        json!({"status": "Pulling fs layer", "progressDetail": {}, "id": &id[7..19]}),
        json!({"status": "Downloading", "progressDetail": {"current": 1_234_567, "total": 1_234_567}, "id": &id[7..19]}),
        json!({"status": "Pull complete", "progressDetail": {}, "id": &id[7..19]}),
        json!({"status": format!("Digest: {digest}")}),
        json!({"status": format!("Status: Downloaded newer image for {shown}{suffix}")}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\r\n")).collect();
    Ok(json_response(200, text))
}

fn tag(ship: &Ship, source: &str, query: &BTreeMap<String, String>) -> Result<Response<Body>> {
    let repo = query.get("repo").cloned().unwrap_or_default();
    if repo.is_empty() {
        return Err(refuse(
            400,
            "repository name must have at least one component",
        ));
    }
    let target = tag_target(
        &repo,
        query.get("tag").map(String::as_str).unwrap_or_default(),
    );
    let mut state = ship.state();
    let Some(record) = state.image(source, &ship.options, &ship.registry) else {
        return Err(refuse(
            404,
            format!("No such image: {}", shown_tagged(source)),
        ));
    };
    let (id, behaviour) = (record.id.clone(), record.behaviour);
    state.add_image(&id, Some(&target), None, behaviour);
    let event = image_event(&id, "tag", &familiar(&target));
    emit(ship, &mut state, event);
    Ok(empty(201))
}

fn remove_image(ship: &Ship, name: &str) -> Result<Response<Body>> {
    let mut state = ship.state();
    let Some(record) = state.image(name, &ship.options, &ship.registry) else {
        return Err(refuse(
            404,
            format!("No such image: {}", shown_tagged(name)),
        ));
    };
    let id = record.id.clone();
    if let Some(c) = state.containers.values().find(|c| c.image_id == id) {
        return Err(refuse(
            409,
            format!(
                "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                &c.id[..12],
                &id[7..19]
            ),
        ));
    }
    state.images.remove(&id);
    state.image_refs.retain(|_, v| *v != id);
    let event = image_event(&id, "delete", name);
    emit(ship, &mut state, event);
    Ok(json_response(200, json!([{"Deleted": id}]).to_string()))
}

fn distribution(ship: &Ship, name: &str) -> Result<Response<Body>> {
    let (repository, suffix) = reference(name);
    let key = format!("{repository}{suffix}");
    if suffix.starts_with('@') || ship.options.present(name).is_none() {
        return Err(refuse(
            404,
            format!(
                "manifest unknown: manifest unknown ({})",
                shown_tagged(name)
            ),
        ));
    }
    let (_, digest) = registry_ids(&key);
    ship.registry
        .digests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(digest.clone(), key);
    Ok(json_response(
        200,
        json!({
            "Descriptor": {
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "digest": digest,
                "size": 527,
            },
            "Platforms": [{"architecture": "amd64", "os": "linux"}],
        })
        .to_string(),
    ))
}

/// The events API's filters, as Docker applies them.
struct EventFilter(BTreeMap<String, Vec<String>>);

impl EventFilter {
    fn matches(&self, e: &Event) -> bool {
        self.0.iter().all(|(key, values)| {
            values.is_empty()
                || values.iter().any(|v| match key.as_str() {
                    "type" => v == e.kind,
                    "scope" => v == "local",
                    "event" => e.action.split(':').next() == Some(v.as_str()),
                    "container" => {
                        e.kind == "container"
                            && (e.id.starts_with(v.as_str())
                                || e.attribute("name")
                                    .is_some_and(|n| n == v || n.starts_with(v.as_str())))
                    }
                    "image" => {
                        e.attribute("image")
                            .or(e.attribute("name"))
                            .is_some_and(|i| i == v)
                            || e.from == *v
                    }
                    "label" => match v.split_once('=') {
                        Some((k, val)) => e.labels.iter().any(|(lk, lv)| lk == k && lv == val),
                        None => e.labels.iter().any(|(lk, _)| lk == v),
                    },
                    _ => false,
                })
        })
    }
}

fn events(ship: &Arc<Ship>, query: &BTreeMap<String, String>) -> Result<Response<Body>> {
    let filters = util::filters(query.get("filters")).map_err(|e| refuse(400, e))?;
    for key in filters.keys() {
        if !matches!(
            key.as_str(),
            "type" | "scope" | "event" | "container" | "image" | "label"
        ) {
            return Err(refuse(
                400,
                format!("the simulated ship does not implement the events filter '{key}'"),
            ));
        }
    }
    let time = |name: &str| -> Result<Option<i128>> {
        match query.get(name).filter(|t| !t.is_empty()) {
            None => Ok(None),
            Some(t) => util::parse_unix_time(t)
                .map(Some)
                .ok_or_else(|| refuse(400, format!("invalid value for {name}: {t}"))),
        }
    };
    let (since, until) = (time("since")?, time("until")?);
    let filter = EventFilter(filters);
    let now = now_nanos();
    // The past and the subscription under one lock: nothing missed, nothing twice.
    let state = ship.state();
    let past: Vec<String> = match since {
        Some(since) => state
            .history
            .iter()
            .filter(|e| e.time_nano >= since && until.is_none_or(|u| e.time_nano <= u))
            .filter(|e| filter.matches(e))
            .map(|e| e.json())
            .collect(),
        None => Vec::new(),
    };
    let mut live = ship.events.subscribe();
    drop(state);
    let (mut sender, response) = streaming("application/json");
    tokio::spawn(async move {
        for line in past {
            if sender.send_data(line.into()).await.is_err() {
                return;
            }
        }
        let deadline = until.map(|u| {
            tokio::time::Instant::now()
                + std::time::Duration::from_nanos(u64::try_from((u - now).max(0)).unwrap_or(0))
        });
        loop {
            let next = async {
                match deadline {
                    Some(d) => tokio::time::timeout_at(d, live.recv()).await.ok(),
                    None => Some(live.recv().await),
                }
            };
            match next.await {
                None => return,
                Some(Ok(e)) => {
                    if until.is_some_and(|u| e.time_nano > u) {
                        return;
                    }
                    if filter.matches(&e) && sender.send_data(e.json().into()).await.is_err() {
                        return;
                    }
                }
                Some(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                Some(Err(_)) => return,
            }
        }
    });
    Ok(response)
}
