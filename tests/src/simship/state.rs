//! One simulated ship's engine state: containers, images, execs and events, kept in
//! memory behind one lock. Every operation here is synchronous and short; the HTTP layer
//! (`server.rs`) adds the latency and the limit of requests in flight around it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::util::{
    fnv, hex64, human_duration, normalized_repository, now_nanos, reference, rfc3339,
};
use super::{Behaviour, Options};

/// An error as the engine gives it: an HTTP status and Docker's message.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

pub fn refuse(status: u16, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

pub type Result<T> = std::result::Result<T, Refusal>;

fn no_such_container(name: &str) -> Refusal {
    refuse(404, format!("No such container: {name}"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    Created,
    Running,
    Exited,
}

impl Run {
    pub fn word(self) -> &'static str {
        match self {
            Run::Created => "created",
            Run::Running => "running",
            Run::Exited => "exited",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: &'static str,
    pub failing_streak: u32,
    /// Nanoseconds from the start to the verdict.
    pub verdict_after: u64,
    pub last_check: i128,
}

pub struct Container {
    pub id: String,
    /// With Docker's leading `/`.
    pub name: String,
    /// As given at creation.
    pub image: String,
    pub image_id: String,
    pub created: i128,
    /// The creation body without `HostConfig` and `NetworkingConfig`: inspect's `Config`.
    pub config: Box<str>,
    pub host_config: Box<str>,
    pub labels: Arc<[(String, String)]>,
    pub labels_json: Box<str>,
    pub path: String,
    pub args: Vec<String>,
    /// Published ports as inspect shows them while running, and as list shows them.
    pub ports_inspect: Box<str>,
    pub ports_list: Box<str>,
    pub run: Run,
    pub exit_code: i64,
    pub started_at: i128,
    pub finished_at: i128,
    /// What the container's health check is configured to do: the first verdict after
    /// this many nanoseconds (`None`: no health check).
    pub health_interval: Option<(u64, u32)>,
    pub health: Option<Health>,
    pub behaviour: Behaviour,
    /// Bumped by every start and stop, so that a verdict scheduled for an earlier run is
    /// dropped.
    pub generation: u64,
    /// (stream: 1 stdout, 2 stderr; line with its newline).
    pub logs: Vec<(u8, String)>,
    /// Files written through the archive API, by absolute path.
    pub files: HashMap<String, (Vec<u8>, i64)>,
    pub restart_count: u32,
    pub seq: u64,
}

impl Container {
    pub fn bare_name(&self) -> &str {
        self.name.trim_start_matches('/')
    }

    fn health_json(&self) -> Value {
        match &self.health {
            None => Value::Null,
            Some(h) => json!({
                "Status": h.status,
                "FailingStreak": h.failing_streak,
                "Log": if h.last_check == 0 { json!([]) } else { json!([{
                    "Start": rfc3339(h.last_check),
                    "End": rfc3339(h.last_check),
                    "ExitCode": i32::from(h.status == "unhealthy"),
                    "Output": if h.status == "unhealthy" {
                        "simship: the image's behaviour is to be unhealthy\n"
                    } else {
                        "simship: healthy\n"
                    },
                }]) },
            }),
        }
    }

    /// Docker's summary: "Up 3 seconds (healthy)", "Exited (0) 2 seconds ago", "Created".
    pub fn status(&self, now: i128) -> String {
        match self.run {
            Run::Created => "Created".to_owned(),
            Run::Running => {
                let health = match self.health.as_ref().map(|h| h.status) {
                    Some("starting") => " (health: starting)",
                    Some("healthy") => " (healthy)",
                    Some("unhealthy") => " (unhealthy)",
                    _ => "",
                };
                format!("Up {}{health}", human_duration(now - self.started_at))
            }
            Run::Exited => format!(
                "Exited ({}) {} ago",
                self.exit_code,
                human_duration(now - self.finished_at)
            ),
        }
    }

    /// `GET /containers/{id}/json`.
    pub fn inspect(&self) -> String {
        let state = json!({
            "Status": self.run.word(),
            "Running": self.run == Run::Running,
            "Paused": false,
            "Restarting": false,
            "OOMKilled": false,
            "Dead": false,
            "Pid": if self.run == Run::Running { 10_000 + self.seq } else { 0 },
            "ExitCode": self.exit_code,
            "Error": "",
            "StartedAt": rfc3339(self.started_at),
            "FinishedAt": rfc3339(self.finished_at),
        });
        let mut state = state;
        if self.health.is_some() {
            state["Health"] = self.health_json();
        }
        let head = json!({
            "Id": self.id,
            "Created": rfc3339(self.created),
            "Path": self.path,
            "Args": self.args,
            "State": state,
            "Image": self.image_id,
            "ResolvConfPath": "",
            "HostnamePath": "",
            "HostsPath": "",
            "LogPath": "",
            "Name": self.name,
            "RestartCount": self.restart_count,
            "Driver": "simship",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "GraphDriver": {"Name": "simship", "Data": null},
            "Mounts": [],
        });
        let head = head.to_string();
        let ports = if self.run == Run::Running {
            &*self.ports_inspect
        } else {
            "{}"
        };
        format!(
            "{},\"HostConfig\":{},\"Config\":{},\"NetworkSettings\":{{\"Bridge\":\"\",\"SandboxID\":\"\",\"Ports\":{ports},\"Networks\":{{}}}}}}",
            &head[..head.len() - 1],
            self.host_config,
            self.config
        )
    }

    /// One element of `GET /containers/json`.
    pub fn summary(&self, now: i128) -> String {
        let mut command = self.path.clone();
        for a in &self.args {
            command.push(' ');
            command.push_str(a);
        }
        let head = json!({
            "Id": self.id,
            "Names": [self.name],
            "Image": self.image,
            "ImageID": self.image_id,
            "Command": command,
            "Created": self.created / 1_000_000_000,
            "State": self.run.word(),
            "Status": self.status(now),
            "HostConfig": {"NetworkMode": "default"},
            "NetworkSettings": {"Networks": {}},
            "Mounts": [],
        })
        .to_string();
        format!(
            "{},\"Ports\":{},\"Labels\":{}}}",
            &head[..head.len() - 1],
            self.ports_list,
            self.labels_json
        )
    }
}

#[derive(Clone, Debug)]
pub struct ImageRecord {
    pub id: String,
    /// Familiar form: `busybox:latest`, `registry:5000/app:1`.
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub behaviour: Behaviour,
    pub created: i128,
    pub size: u64,
}

impl ImageRecord {
    pub fn inspect(&self) -> String {
        json!({
            "Id": self.id,
            "RepoTags": self.repo_tags,
            "RepoDigests": self.repo_digests,
            "Parent": "",
            "Comment": "",
            "Created": rfc3339(self.created),
            "DockerVersion": "",
            "Author": "",
            "Config": {"Env": ["PATH=/bin"], "Cmd": ["simship-app"], "Labels": null},
            "Architecture": "amd64",
            "Os": "linux",
            "Size": self.size,
            "GraphDriver": {"Name": "simship", "Data": null},
            "RootFS": {"Type": "layers", "Layers": []},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        })
        .to_string()
    }
}

/// `docker.io/library/busybox:latest` as Docker shows it: `busybox:latest`.
pub fn familiar(normalized: &str) -> String {
    normalized
        .strip_prefix("docker.io/library/")
        .or_else(|| normalized.strip_prefix("docker.io/"))
        .unwrap_or(normalized)
        .to_owned()
}

/// The image id and the registry's manifest digest of a tag the simulated registry
/// serves: derived from its normalised name, so the same on every ship.
pub fn registry_ids(normalized_ref: &str) -> (String, String) {
    (
        format!("sha256:{}", hex64(fnv(&format!("config:{normalized_ref}")))),
        format!(
            "sha256:{}",
            hex64(fnv(&format!("manifest:{normalized_ref}")))
        ),
    )
}

pub struct Exec {
    pub container: String,
    pub cmd: Vec<String>,
    pub running: bool,
    pub exit_code: Option<i64>,
}

/// One event of the engine's stream.
#[derive(Debug)]
pub struct Event {
    pub time_nano: i128,
    pub kind: &'static str,
    pub action: String,
    pub id: String,
    /// `from`: the container's image.
    pub from: String,
    pub attributes: Vec<(String, String)>,
    /// The container's labels, which Docker puts among the attributes.
    pub labels: Arc<[(String, String)]>,
}

impl Event {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .chain(self.labels.iter())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> String {
        let mut attributes = serde_json::Map::new();
        for (k, v) in self.labels.iter().chain(&self.attributes) {
            attributes.insert(k.clone(), Value::String(v.clone()));
        }
        let mut event = json!({
            "Type": self.kind,
            "Action": self.action,
            "Actor": {"ID": self.id, "Attributes": attributes},
            "scope": "local",
            "time": self.time_nano / 1_000_000_000,
            "timeNano": self.time_nano,
        });
        if self.kind == "container" {
            event["status"] = json!(self.action);
            event["id"] = json!(self.id);
            event["from"] = json!(self.from);
        }
        let mut text = event.to_string();
        text.push('\n');
        text
    }
}

/// How many past events a ship keeps for `since`.
pub const HISTORY: usize = 512;

#[derive(Default)]
pub struct State {
    pub containers: HashMap<String, Container>,
    /// Name (with its `/`) to id.
    pub names: HashMap<String, String>,
    pub images: HashMap<String, ImageRecord>,
    /// `repository:tag` and `repository@digest`, normalised, to an image id.
    pub image_refs: HashMap<String, String>,
    pub execs: HashMap<String, Exec>,
    pub history: VecDeque<Arc<Event>>,
    pub next: u64,
}

/// The images the simulated registry serves (the options' patterns) and the tag each
/// digest it gave out stands for, shared by the ships of one [`super::SimShips`].
#[derive(Default)]
pub struct Registry {
    pub digests: Mutex<HashMap<String, String>>,
}

impl State {
    /// A new id, unique across the process's ships (`seed` is the ship's).
    pub fn new_id(&mut self, seed: u64) -> String {
        self.next += 1;
        hex64(seed ^ self.next.wrapping_mul(0x2545_f491_4f6c_dd1d))
    }

    /// The container `name` designates: its full id, its name (with or without `/`), or
    /// a unique prefix of its id.
    pub fn find(&self, name: &str) -> Result<&String> {
        if let Some(c) = self.containers.get(name) {
            return Ok(&c.id);
        }
        let slashed = if name.starts_with('/') {
            name.to_owned()
        } else {
            format!("/{name}")
        };
        if let Some(id) = self.names.get(&slashed) {
            return Ok(id);
        }
        if name.is_empty() {
            return Err(no_such_container(name));
        }
        let mut found = self.containers.keys().filter(|id| id.starts_with(name));
        match (found.next(), found.next()) {
            (Some(id), None) => Ok(id),
            (Some(_), Some(_)) => Err(refuse(
                400,
                format!("multiple IDs found with provided prefix: {name}"),
            )),
            (None, _) => Err(no_such_container(name)),
        }
    }

    pub fn container(&mut self, name: &str) -> Result<&mut Container> {
        let id = self.find(name)?.clone();
        Ok(self.containers.get_mut(&id).expect("indexed"))
    }

    /// The image `name` designates on this ship (a tag, `repository@digest`, an id or a
    /// prefix of one), adding it first when the options say the ship has it.
    pub fn image(
        &mut self,
        name: &str,
        options: &Options,
        registry: &Registry,
    ) -> Option<&ImageRecord> {
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() >= 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let wanted = format!("sha256:{hex}");
            let id = self
                .images
                .keys()
                .find(|id| id.starts_with(&wanted))?
                .clone();
            return self.images.get(&id);
        }
        let (repository, suffix) = reference(name);
        let key = format!("{repository}{suffix}");
        if !self.image_refs.contains_key(&key) {
            let behaviour = options.present(name)?;
            if suffix.starts_with('@') {
                return None;
            }
            let (id, digest) = registry_ids(&key);
            registry
                .digests
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(digest.clone(), key.clone());
            self.add_image(
                &id,
                Some(&key),
                Some(&format!("{repository}@{digest}")),
                behaviour,
            );
        }
        let id = self.image_refs.get(&key)?;
        self.images.get(id)
    }

    /// Adds an image (or names to one already there), moving a tag from any image that
    /// had it, as Docker does.
    pub fn add_image(
        &mut self,
        id: &str,
        tag: Option<&str>,
        digest: Option<&str>,
        behaviour: Behaviour,
    ) {
        if let Some(tag) = tag {
            if let Some(old) = self.image_refs.get(tag).cloned() {
                if old != id {
                    if let Some(record) = self.images.get_mut(&old) {
                        let shown = familiar(tag);
                        record.repo_tags.retain(|t| *t != shown);
                    }
                }
            }
        }
        let record = self
            .images
            .entry(id.to_owned())
            .or_insert_with(|| ImageRecord {
                id: id.to_owned(),
                repo_tags: Vec::new(),
                repo_digests: Vec::new(),
                behaviour,
                created: now_nanos(),
                size: 1_234_567,
            });
        if let Some(tag) = tag {
            let shown = familiar(tag);
            if !record.repo_tags.contains(&shown) {
                record.repo_tags.push(shown);
            }
            self.image_refs.insert(tag.to_owned(), id.to_owned());
        }
        if let Some(digest) = digest {
            let (repository, suffix) = reference(digest);
            let shown = format!("{}{suffix}", familiar(&repository));
            if !record.repo_digests.contains(&shown) {
                record.repo_digests.push(shown);
            }
            self.image_refs
                .insert(format!("{repository}{suffix}"), id.to_owned());
        }
    }
}

/// The normalised `repository:tag` a tag command names.
pub fn tag_target(repo: &str, tag: &str) -> String {
    let tag = if tag.is_empty() { "latest" } else { tag };
    format!("{}:{tag}", normalized_repository(repo))
}
