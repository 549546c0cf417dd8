//! Auditors (reference section 9): a record of who did what to which instances, in a log
//! file, a webhook, a Slack channel or a script. An auditor that fails never fails the play:
//! the problem is shown as a warning (silently skipped with `ignore_errors: true`).
//!
//! Events have MaestroNG's levels: a play's start and success are `info`, each instance's
//! (its task within the play) `debug`; an auditor records those at or above its `level`.
//! Failures always go out, to the auditors that record failures (log, slack).

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use guestutils::redact;
use tokio::io::AsyncWriteExt;

use maestro_core::model::{
    AuditLevel, Auditor, AuditorKind, Data, Environment, InstanceId, Secret, Verify,
};

use crate::{http, output};

/// A container as auditors are told of it: its name, its ship's address, its service.
pub struct Audited {
    pub name: String,
    pub ship_ip: String,
    pub service: String,
}

/// What happened, in MaestroNG's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Action,
    Success,
    Error,
}

/// How long Slack may take to answer (the timeout of MaestroNG's Slack client).
const SLACK_TIMEOUT: Duration = Duration::from_secs(10);
/// What is read of an auditor's answer (Slack's is a small JSON object).
const ANSWER_LIMIT: usize = 64 << 10;

#[derive(Clone)]
pub struct Audit {
    env: Arc<Environment>,
    who: String,
    http: Arc<http::Settings>,
    /// Warnings from instances' events, shown after the play rather than across its rows.
    held: Arc<Mutex<Vec<String>>>,
}

/// A Slack message: its text, color, and whether the instances are too many to name in
/// the text.
struct SlackMessage<'a> {
    text: &'a str,
    color: &'static str,
    targets: Option<&'a str>,
    error: Option<&'a str>,
}

impl Audit {
    pub fn new(env: Arc<Environment>, http: Arc<http::Settings>) -> Self {
        let who = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        Audit::for_user(env, http, who)
    }

    pub fn for_user(env: Arc<Environment>, http: Arc<http::Settings>, who: String) -> Self {
        Audit {
            env,
            who,
            http,
            held: Arc::default(),
        }
    }

    /// Whether any auditor records an instance's events: their level is `debug`, or they
    /// record failures.
    pub fn follows_instances(&self) -> bool {
        self.env.audit.iter().any(|a| {
            a.level == AuditLevel::Debug
                || matches!(
                    a.kind,
                    AuditorKind::Log { .. } | AuditorKind::Slack { .. } | AuditorKind::Fail
                )
        })
    }

    /// Reports one event of a play (an `info` event) to every auditor; warnings are shown
    /// at once. `failure` is the error message.
    pub async fn play(
        &self,
        play: &str,
        instances: &[InstanceId],
        phase: Phase,
        failure: Option<&str>,
    ) {
        self.play_on(play, &self.audited(instances), phase, failure)
            .await;
    }

    /// [`Audit::play`] of containers that are not (or no longer) instances of the file:
    /// the orphans `clean --orphans` removes.
    pub async fn play_on(
        &self,
        play: &str,
        containers: &[Audited],
        phase: Phase,
        failure: Option<&str>,
    ) {
        for warning in self
            .event(AuditLevel::Info, play, containers, phase, failure)
            .await
        {
            output::eprint(&warning);
        }
    }

    /// The instances as auditors are told of them.
    fn audited(&self, instances: &[InstanceId]) -> Vec<Audited> {
        instances
            .iter()
            .map(|&i| {
                let instance = self.env.instance(i);
                Audited {
                    name: instance.name.clone(),
                    ship_ip: self.env.ship(instance.ship).ip.clone(),
                    service: self.env.service(instance.service).name.clone(),
                }
            })
            .collect()
    }

    /// Reports one event of an instance's task within a play (a `debug` event); warnings
    /// are held for [`Self::show_held`].
    pub async fn instance(
        &self,
        play: &str,
        instance: InstanceId,
        phase: Phase,
        failure: Option<&str>,
    ) {
        let warnings = self
            .event(
                AuditLevel::Debug,
                play,
                &self.audited(&[instance]),
                phase,
                failure,
            )
            .await;
        if !warnings.is_empty() {
            self.held
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(warnings);
        }
    }

    /// Shows the held warnings, each once, with how many times it happened.
    pub fn show_held(&self) {
        let held = std::mem::take(&mut *self.held.lock().unwrap_or_else(|e| e.into_inner()));
        let mut counted: Vec<(String, usize)> = Vec::new();
        for warning in held {
            match counted.iter_mut().find(|(w, _)| *w == warning) {
                Some((_, n)) => *n += 1,
                None => counted.push((warning, 1)),
            }
        }
        for (warning, n) in counted {
            match n {
                1 => output::eprint(&warning),
                n => output::eprint(&format!("{} ({n} times)\n", warning.trim_end_matches('\n'))),
            }
        }
    }

    /// Sends one event to the auditors that record it; returns their warnings.
    async fn event(
        &self,
        level: AuditLevel,
        play: &str,
        containers: &[Audited],
        phase: Phase,
        failure: Option<&str>,
    ) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.env.audit.is_empty() {
            return warnings;
        }
        let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
        // Log and webhook name every instance; Slack names up to four and counts more.
        let full = names.join(", ");
        let fits = names.len() < 5;
        let compact = if fits {
            full.clone()
        } else {
            format!("{} container(s)", names.len())
        };
        for auditor in &self.env.audit {
            if phase != Phase::Error && level < auditor.level {
                continue;
            }
            let result = match &auditor.kind {
                AuditorKind::Log { file } => log(
                    file,
                    label(level, phase),
                    &message(&self.who, play, &full, phase, failure),
                ),
                AuditorKind::Http {
                    endpoint,
                    payload,
                    headers,
                    method,
                    timeout,
                } if phase == Phase::Action => {
                    let text = message(&self.who, play, &full, phase, failure);
                    let body = render(payload, &full, play, &self.who, &text);
                    self.webhook(endpoint, method, headers, &body, *timeout)
                        .await
                }
                AuditorKind::Exec { script, args }
                    if phase == Phase::Success && level == AuditLevel::Info =>
                {
                    self.exec(script, args.as_deref(), play, &names, containers)
                        .await
                }
                AuditorKind::Slack {
                    channel,
                    token,
                    name,
                    icon,
                    api_url,
                } => {
                    let text = message(&self.who, play, &compact, phase, failure);
                    let color = match phase {
                        Phase::Action => "#1dc7d3",
                        Phase::Success => "good",
                        Phase::Error => "danger",
                    };
                    let message = SlackMessage {
                        text: &text,
                        color,
                        targets: (!fits).then_some(full.as_str()),
                        error: match phase {
                            Phase::Error => Some(failure.unwrap_or_default()),
                            _ => None,
                        },
                    };
                    self.slack(api_url, token, channel, name, icon.as_deref(), message)
                        .await
                }
                AuditorKind::Fail => Err("the _fail auditor always fails".into()),
                _ => Ok(()),
            };
            if let Err(e) = result {
                if !auditor.ignore_errors {
                    warnings.push(format!("warning: {} auditor: {e}\n", kind(auditor)));
                }
            }
        }
        warnings
    }

    /// POSTs (or GETs) the payload as JSON; any 2xx answer is success.
    async fn webhook(
        &self,
        endpoint: &str,
        method: &str,
        headers: &[(String, String)],
        body: &serde_json::Value,
        timeout: f64,
    ) -> Result<(), String> {
        let timeout = Duration::from_secs_f64(timeout);
        let at = format!("{method} {}", redact::endpoint(endpoint));
        let client = http::Client::new(
            &self.http,
            &Verify::Default,
            true,
            http::Limits {
                connect: timeout,
                read: None,
                total: Some(timeout),
            },
        )?;
        let answer = client
            .send(http::Request {
                method,
                url: endpoint,
                headers,
                auth: None,
                json: Some(body.to_string()),
                body_limit: ANSWER_LIMIT,
            })
            .await
            .map_err(|e| format!("{at}: {}", e.message))?;
        match answer.status {
            200..=299 => Ok(()),
            code => Err(format!("{at} answered HTTP {code}")),
        }
    }

    /// Posts to a channel through Slack's Web API, as MaestroNG's Slack auditor: the text
    /// in one attachment, colored by the event, with a "Targets" field when the text only
    /// counts the instances and an "Error" field for failures.
    async fn slack(
        &self,
        api_url: &str,
        token: &Secret,
        channel: &str,
        name: &str,
        icon: Option<&str>,
        message: SlackMessage<'_>,
    ) -> Result<(), String> {
        let mut fields = Vec::new();
        if let Some(error) = message.error {
            fields.push(serde_json::json!({"title": "Error", "value": error, "short": true}));
        }
        if let Some(targets) = message.targets {
            fields.push(serde_json::json!({"title": "Targets", "value": targets}));
        }
        let mut body = serde_json::json!({
            "channel": channel,
            "username": name,
            "attachments": [{
                "fallback": message.text,
                "text": message.text,
                "color": message.color,
                "fields": fields,
            }],
        });
        if let Some(icon) = icon {
            body["icon_url"] = icon.into();
        }
        let url = format!("{api_url}/chat.postMessage");
        let at = redact::endpoint(api_url);
        let client = http::Client::new(
            &self.http,
            &Verify::Default,
            true,
            http::Limits {
                connect: SLACK_TIMEOUT,
                read: None,
                total: Some(SLACK_TIMEOUT),
            },
        )?;
        // The token goes in a header only, never in the URL or a message.
        let headers = [(
            "Authorization".to_owned(),
            format!("Bearer {}", token.expose()),
        )];
        let answer = client
            .send(http::Request {
                method: "POST",
                url: &url,
                headers: &headers,
                auth: None,
                json: Some(body.to_string()),
                body_limit: ANSWER_LIMIT,
            })
            .await
            .map_err(|e| format!("{at}: {}", e.message))?;
        if !(200..300).contains(&answer.status) {
            return Err(format!("{at} answered HTTP {}", answer.status));
        }
        // Slack answers 200 with `ok: false` and the reason ("channel_not_found").
        let reply: serde_json::Value = serde_json::from_str(&answer.body)
            .map_err(|_| format!("{at}: the answer is not Slack's (not JSON)"))?;
        match reply.get("ok").and_then(serde_json::Value::as_bool) {
            Some(true) => Ok(()),
            _ => Err(format!(
                "Slack refused the message to {channel}: {}",
                reply
                    .get("error")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("no reason given")
            )),
        }
    }

    async fn exec(
        &self,
        script: &str,
        args: Option<&str>,
        play: &str,
        names: &[&str],
        containers: &[Audited],
    ) -> Result<(), String> {
        let what = format!("[{}]", names.join(", "));
        let args: Vec<String> = args
            .map(|a| {
                a.replace("{action}", play)
                    .replace("{what}", &what)
                    .replace("{who}", &self.who)
            })
            .map(|a| a.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let stdin: serde_json::Map<String, serde_json::Value> = containers
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    serde_json::json!({"ship": c.ship_ip, "service": c.service}),
                )
            })
            .collect();
        let mut child = tokio::process::Command::new(script)
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {script}: {e}"))?;
        if let Some(mut input) = child.stdin.take() {
            let _ = input
                .write_all(serde_json::Value::Object(stdin).to_string().as_bytes())
                .await;
        }
        let status = child.wait().await.map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("{script} exited with {status}"))
        }
    }
}

fn kind(auditor: &Auditor) -> &'static str {
    match auditor.kind {
        AuditorKind::Log { .. } => "log",
        AuditorKind::Http { .. } => "http",
        AuditorKind::Exec { .. } => "exec",
        AuditorKind::Slack { .. } => "slack",
        AuditorKind::Fail => "_fail",
    }
}

/// MaestroNG's messages: "alice is starting a, b.", "Start of a, b succeeded.",
/// "Failed to start a, b! (message: ...)".
pub fn message(who: &str, play: &str, what: &str, phase: Phase, failure: Option<&str>) -> String {
    match phase {
        Phase::Action => format!("{who} is {} {what}.", progressive(play)),
        Phase::Success => {
            let mut title = play.to_owned();
            if let Some(first) = title.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            format!("{title} of {what} succeeded.")
        }
        Phase::Error => {
            let play = if play == "rollback" {
                "roll back"
            } else {
                play
            };
            match failure {
                Some(m) => format!("Failed to {play} {what}! (message: {m})"),
                None => format!("Failed to {play} {what}!"),
            }
        }
    }
}

fn progressive(play: &str) -> String {
    match play {
        "stop" => "stopping".into(),
        "rollback" => "rolling back".into(),
        other => format!("{other}ing"),
    }
}

/// The log level of an event, as MaestroNG logs it: failures at ERROR, the others at the
/// event's own level.
fn label(level: AuditLevel, phase: Phase) -> &'static str {
    match (phase, level) {
        (Phase::Error, _) => "ERROR",
        (_, AuditLevel::Info) => "INFO",
        (_, AuditLevel::Debug) => "DEBUG",
    }
}

fn log(file: &str, label: &str, message: &str) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    // A log maestro creates is the operator's alone (an existing one keeps its mode).
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(file)
        .map_err(|e| format!("{file}: {e}"))?;
    let now = humantime_utc();
    writeln!(f, "{now} {label}: {message}").map_err(|e| format!("{file}: {e}"))
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, without a date library.
fn humantime_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The payload template with every string leaf formatted; empty results are dropped.
fn render(payload: &Data, what: &str, action: &str, who: &str, message: &str) -> serde_json::Value {
    match payload {
        Data::Null => serde_json::Value::Null,
        Data::Scalar(s) => {
            let text = s
                .replace("{what}", what)
                .replace("{action}", action)
                .replace("{who}", who)
                .replace("{message}", message);
            serde_json::Value::String(text)
        }
        Data::List(items) => serde_json::Value::Array(
            items
                .iter()
                .map(|i| render(i, what, action, who, message))
                .collect(),
        ),
        Data::Map(entries) => {
            let map: serde_json::Map<String, serde_json::Value> = entries
                .iter()
                .map(|(k, v)| (k.clone(), render(v, what, action, who, message)))
                .filter(|(_, v)| !matches!(v, serde_json::Value::String(s) if s.is_empty()))
                .collect();
            if map.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::Value::Object(map)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::testing::{Ca, Server, self_signed};
    use maestro_core::model::Ship;

    fn environment(audit: &str, instances: usize) -> Arc<Environment> {
        let instances: Vec<String> = (1..=instances)
            .map(|i| format!("web-{i}: {{ship: s1}}"))
            .collect();
        let text = format!(
            "name: t\nships: {{s1: {{ip: 127.0.0.1}}}}\naudit: {audit}\nservices:\n  web: {{image: web, instances: {{{}}}}}\n",
            instances.join(", ")
        );
        let loaded = maestro_core::load(
            &text,
            &maestro_core::NoFiles,
            &Ship::new("local", "127.0.0.1"),
        );
        Arc::new(loaded.environment.expect("valid"))
    }

    fn ids(env: &Environment) -> Vec<InstanceId> {
        (0..env.instances.len()).map(InstanceId).collect()
    }

    /// A folder with `ca.pem`, and the settings of a process whose REQUESTS_CA_BUNDLE
    /// names it.
    fn trusting(ca: &Ca, name: &str) -> (std::path::PathBuf, Arc<http::Settings>) {
        let dir = std::env::temp_dir().join(format!("maestro-audit-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bundle = dir.join("ca.pem");
        std::fs::write(&bundle, &ca.pem).unwrap();
        let bundle = bundle.display().to_string();
        let settings = http::Settings::new(dir.clone(), move |name| {
            (name == "REQUESTS_CA_BUNDLE").then(|| bundle.clone())
        });
        (dir, Arc::new(settings))
    }

    fn json(body: &str) -> serde_json::Value {
        serde_json::from_str(body).unwrap()
    }

    #[tokio::test]
    async fn slack_posts_each_play_event_to_the_channel() {
        let ca = Ca::new();
        let server = Server::start(Some(ca.issue(&["127.0.0.1"])), |_| {
            (200, r#"{"ok": true}"#.into())
        });
        let (_, settings) = trusting(&ca, "slack");
        let auditor = format!(
            "[{{type: slack, channel: \"#ops\", token: xoxb-secret, name: bot, icon: \"https://example.com/i.png\", api_url: \"https://127.0.0.1:{}/api\"}}]",
            server.port
        );
        let env = environment(&auditor, 2);
        let audit = Audit::for_user(env.clone(), settings, "alice".into());
        let all = ids(&env);
        for (phase, failure) in [
            (Phase::Action, None),
            (Phase::Success, None),
            (Phase::Error, Some("boom")),
        ] {
            let warnings = audit
                .event(
                    AuditLevel::Info,
                    "restart",
                    &audit.audited(&all),
                    phase,
                    failure,
                )
                .await;
            assert_eq!(warnings, Vec::<String>::new());
        }
        let seen = server.requests();
        assert_eq!(seen.len(), 3);
        for request in &seen {
            assert_eq!(request.method, "POST");
            assert_eq!(request.path, "/api/chat.postMessage");
            assert_eq!(request.header("authorization"), Some("Bearer xoxb-secret"));
            assert_eq!(
                request.header("content-type"),
                Some("application/json; charset=utf-8")
            );
        }
        let attachment = |i: usize| json(&seen[i].body)["attachments"][0].clone();
        let first = json(&seen[0].body);
        assert_eq!(first["channel"], "#ops");
        assert_eq!(first["username"], "bot");
        assert_eq!(first["icon_url"], "https://example.com/i.png");
        assert_eq!(
            attachment(0),
            serde_json::json!({
                "fallback": "alice is restarting web-1, web-2.",
                "text": "alice is restarting web-1, web-2.",
                "color": "#1dc7d3",
                "fields": [],
            })
        );
        assert_eq!(attachment(1)["text"], "Restart of web-1, web-2 succeeded.");
        assert_eq!(attachment(1)["color"], "good");
        assert_eq!(
            attachment(2),
            serde_json::json!({
                "fallback": "Failed to restart web-1, web-2! (message: boom)",
                "text": "Failed to restart web-1, web-2! (message: boom)",
                "color": "danger",
                "fields": [{"title": "Error", "value": "boom", "short": true}],
            })
        );

        // Five or more instances are counted in the text and named in a field.
        let env = environment(&auditor, 5);
        let (_, settings) = trusting(&ca, "slack-5");
        let audit = Audit::for_user(env.clone(), settings, "alice".into());
        audit
            .event(
                AuditLevel::Info,
                "stop",
                &audit.audited(&ids(&env)),
                Phase::Action,
                None,
            )
            .await;
        let seen = server.requests();
        let last = json(&seen[3].body)["attachments"][0].clone();
        assert_eq!(last["text"], "alice is stopping 5 container(s).");
        assert_eq!(
            last["fields"],
            serde_json::json!([{"title": "Targets", "value": "web-1, web-2, web-3, web-4, web-5"}])
        );
    }

    #[tokio::test]
    async fn slack_refusals_and_untrusted_servers_are_warnings_without_the_token() {
        let ca = Ca::new();
        let refusing = Server::start(Some(ca.issue(&["127.0.0.1"])), |_| {
            (200, r#"{"ok": false, "error": "channel_not_found"}"#.into())
        });
        let (_, settings) = trusting(&ca, "refusals");
        let auditor = |port: u16| {
            format!(
                "[{{type: slack, channel: \"#nope\", token: xoxb-secret, api_url: \"https://127.0.0.1:{port}/api\"}}]"
            )
        };
        let env = environment(&auditor(refusing.port), 1);
        let audit = Audit::for_user(env.clone(), settings.clone(), "alice".into());
        let warnings = audit
            .event(
                AuditLevel::Info,
                "start",
                &audit.audited(&ids(&env)),
                Phase::Action,
                None,
            )
            .await;
        assert_eq!(
            warnings,
            ["warning: slack auditor: Slack refused the message to #nope: channel_not_found\n"]
        );

        // A certificate no trusted CA signed.
        let untrusted = Server::start(Some(self_signed(&["127.0.0.1"])), |_| {
            (200, r#"{"ok": true}"#.into())
        });
        let env = environment(&auditor(untrusted.port), 1);
        let audit = Audit::for_user(env.clone(), settings, "alice".into());
        let warnings = audit
            .event(
                AuditLevel::Info,
                "start",
                &audit.audited(&ids(&env)),
                Phase::Action,
                None,
            )
            .await;
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].starts_with(&format!(
                "warning: slack auditor: https://127.0.0.1:{}/<redacted>: TLS: the certificate of 127.0.0.1 is not signed by a CA maestro trusts (UnknownIssuer; trusted: the CA bundle ",
            untrusted.port)),
            "{}",
            warnings[0]
        );
        assert!(untrusted.requests().is_empty());
        for w in &warnings {
            assert!(!w.contains("xoxb-secret"), "{w}");
        }
    }

    #[tokio::test]
    async fn webhooks_post_over_https() {
        let ca = Ca::new();
        let server = Server::start(Some(ca.issue(&["127.0.0.1"])), |_| (204, String::new()));
        let (_, settings) = trusting(&ca, "webhook");
        let env = environment(
            &format!(
                "[{{type: http, endpoint: \"https://127.0.0.1:{}/hook/secret\", headers: {{X-Key: k1}}, payload: {{text: \"{{message}}\", what: \"{{what}}\"}}}}]",
                server.port
            ),
            2,
        );
        let audit = Audit::for_user(env.clone(), settings, "alice".into());
        for phase in [Phase::Action, Phase::Success] {
            let warnings = audit
                .event(
                    AuditLevel::Info,
                    "start",
                    &audit.audited(&ids(&env)),
                    phase,
                    None,
                )
                .await;
            assert_eq!(warnings, Vec::<String>::new());
        }
        // Only the play's start is sent.
        let seen = server.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].path, "/hook/secret");
        assert_eq!(seen[0].header("x-key"), Some("k1"));
        assert_eq!(
            json(&seen[0].body),
            serde_json::json!({"text": "alice is starting web-1, web-2.", "what": "web-1, web-2"})
        );
    }

    #[tokio::test]
    async fn webhook_failures_show_the_endpoint_redacted() {
        let ca = Ca::new();
        let server = Server::start(Some(ca.issue(&["127.0.0.1"])), |_| (500, String::new()));
        let (_, settings) = trusting(&ca, "webhook-redacted");
        let env = environment(
            &format!(
                "[{{type: http, endpoint: \"https://bob:pw-secret@127.0.0.1:{}/hook/path-secret?key=query-secret\"}}]",
                server.port
            ),
            1,
        );
        let audit = Audit::for_user(env.clone(), settings, "alice".into());
        let warnings = audit
            .event(
                AuditLevel::Info,
                "start",
                &audit.audited(&ids(&env)),
                Phase::Action,
                None,
            )
            .await;
        assert_eq!(
            warnings,
            [format!(
                "warning: http auditor: POST https://bob:<redacted>@127.0.0.1:{}/<redacted>?<redacted> answered HTTP 500\n",
                server.port
            )]
        );
    }

    #[tokio::test]
    async fn the_level_filters_events_and_failures_always_go_out() {
        let dir = std::env::temp_dir().join(format!("maestro-audit-{}-levels", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (info, debug) = (dir.join("info.log"), dir.join("debug.log"));
        let _ = std::fs::remove_file(&info);
        let _ = std::fs::remove_file(&debug);
        let env = environment(
            &format!(
                "[{{type: log, file: \"{}\"}}, {{type: log, file: \"{}\", level: debug}}]",
                info.display(),
                debug.display()
            ),
            2,
        );
        let audit = Audit::for_user(env.clone(), Arc::default(), "alice".into());
        assert!(audit.follows_instances());
        let all = ids(&env);
        audit.play("restart", &all, Phase::Action, None).await;
        audit.instance("restart", all[0], Phase::Action, None).await;
        audit
            .instance("restart", all[0], Phase::Success, None)
            .await;
        audit.instance("restart", all[1], Phase::Action, None).await;
        audit
            .instance("restart", all[1], Phase::Error, Some("boom"))
            .await;
        audit
            .play("restart", &all, Phase::Error, Some("boom"))
            .await;
        let lines = |path: &std::path::Path| -> Vec<String> {
            std::fs::read_to_string(path)
                .unwrap()
                .lines()
                // Without the timestamp.
                .map(|l| l[20..].to_owned())
                .collect()
        };
        assert_eq!(
            lines(&info),
            [
                "INFO: alice is restarting web-1, web-2.",
                "ERROR: Failed to restart web-2! (message: boom)",
                "ERROR: Failed to restart web-1, web-2! (message: boom)",
            ]
        );
        assert_eq!(
            lines(&debug),
            [
                "INFO: alice is restarting web-1, web-2.",
                "DEBUG: alice is restarting web-1.",
                "DEBUG: Restart of web-1 succeeded.",
                "DEBUG: alice is restarting web-2.",
                "ERROR: Failed to restart web-2! (message: boom)",
                "ERROR: Failed to restart web-1, web-2! (message: boom)",
            ]
        );

        // An info-level webhook alone follows no instance.
        let env = environment("[{type: http, endpoint: \"http://127.0.0.1:9/\"}]", 1);
        let audit = Audit::for_user(env, Arc::default(), "alice".into());
        assert!(!audit.follows_instances());
    }

    #[test]
    fn messages_as_maestro_ng_words_them() {
        assert_eq!(
            message("alice", "start", "a, b", Phase::Action, None),
            "alice is starting a, b."
        );
        assert_eq!(
            message("alice", "stop", "a", Phase::Action, None),
            "alice is stopping a."
        );
        assert_eq!(
            message("alice", "restart", "7 container(s)", Phase::Success, None),
            "Restart of 7 container(s) succeeded."
        );
        assert_eq!(
            message("alice", "kill", "a", Phase::Error, Some("boom")),
            "Failed to kill a! (message: boom)"
        );
    }

    #[test]
    fn payload_templates() {
        let payload = Data::Map(vec![
            (
                "text".into(),
                Data::Scalar("{who} did {action} on {what}".into()),
            ),
            ("empty".into(), Data::Scalar("".into())),
            (
                "list".into(),
                Data::List(vec![Data::Scalar("{message}".into())]),
            ),
        ]);
        let v = render(&payload, "a", "start", "bob", "bob is starting a.");
        assert_eq!(
            v,
            serde_json::json!({"text": "bob did start on a", "list": ["bob is starting a."]})
        );
        assert_eq!(
            render(&Data::Map(vec![]), "a", "s", "b", "m"),
            serde_json::Value::Null
        );
    }

    #[test]
    fn utc_timestamps() {
        let now = humantime_utc();
        assert_eq!(now.len(), 19, "{now}");
        assert!(now.starts_with("20"), "{now}");
    }
}
