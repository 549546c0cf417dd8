//! Auditors (reference section 9): a record of who did what to which instances, in a log
//! file, a webhook or a script. An auditor that fails never fails the play: the problem is
//! shown as a warning (silently skipped with `ignore_errors: true`).

use std::io::Write as _;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use maestro_core::model::{AuditLevel, Auditor, AuditorKind, Data, Environment, InstanceId};

use crate::output;

/// What happened, in MaestroNG's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Action,
    Success,
    Error,
}

pub struct Audit<'a> {
    env: &'a Environment,
    who: String,
}

impl<'a> Audit<'a> {
    pub fn new(env: &'a Environment) -> Self {
        let who = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        Audit { env, who }
    }

    /// Reports one play event to every auditor. `failure` is the error message.
    pub async fn play(
        &self,
        play: &str,
        instances: &[InstanceId],
        phase: Phase,
        failure: Option<&str>,
    ) {
        if self.env.audit.is_empty() {
            return;
        }
        let containers: Vec<Audited> = instances
            .iter()
            .map(|&i| {
                let instance = self.env.instance(i);
                Audited {
                    name: instance.name.clone(),
                    ship_ip: self.env.ship(instance.ship).ip.clone(),
                    service: self.env.service(instance.service).name.clone(),
                }
            })
            .collect();
        self.play_on(play, &containers, phase, failure).await;
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
        if self.env.audit.is_empty() {
            return;
        }
        let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
        let what = if names.len() < 5 {
            names.join(", ")
        } else {
            format!("{} container(s)", names.len())
        };
        let message = message(&self.who, play, &what, phase, failure);
        for auditor in &self.env.audit {
            let result = match &auditor.kind {
                AuditorKind::Log { file } => log(file, auditor.level, phase, &message),
                AuditorKind::Http {
                    endpoint,
                    payload,
                    headers,
                    method,
                    timeout,
                } if phase == Phase::Action => {
                    let body = render(payload, &what, play, &self.who, &message);
                    webhook(endpoint, method, headers, &body, *timeout).await
                }
                AuditorKind::Exec { script, args } if phase == Phase::Success => {
                    self.exec(script, args.as_deref(), play, &names, containers)
                        .await
                }
                AuditorKind::Fail => Err("the _fail auditor always fails".into()),
                // Slack and HipChat are gone; their keys are still read so files load.
                AuditorKind::Slack { .. } | AuditorKind::Hipchat { .. } => Ok(()),
                _ => Ok(()),
            };
            if let Err(e) = result {
                if !auditor.ignore_errors {
                    output::eprint(&format!("warning: {} auditor: {e}\n", kind(auditor)));
                }
            }
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

/// A container as auditors are told of it: its name, its ship's address, its service.
pub struct Audited {
    pub name: String,
    pub ship_ip: String,
    pub service: String,
}

fn kind(auditor: &Auditor) -> &'static str {
    match auditor.kind {
        AuditorKind::Log { .. } => "log",
        AuditorKind::Http { .. } => "http",
        AuditorKind::Exec { .. } => "exec",
        AuditorKind::Slack { .. } => "slack",
        AuditorKind::Hipchat { .. } => "hipchat",
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

fn log(file: &str, level: AuditLevel, phase: Phase, message: &str) -> Result<(), String> {
    let label = match (phase, level) {
        (Phase::Error, _) => "ERROR",
        (_, AuditLevel::Info) => "INFO",
        (_, AuditLevel::Debug) => "DEBUG",
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
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

/// POSTs (or GETs) the payload as JSON over plain HTTP; any 2xx answer is success.
async fn webhook(
    endpoint: &str,
    method: &str,
    headers: &[(String, String)],
    body: &serde_json::Value,
    timeout: f64,
) -> Result<(), String> {
    let (host, port, path) = crate::http::split_url(endpoint)?;
    let body = body.to_string();
    let exchange = crate::http::request(&host, port, method, &path, headers, Some(&body));
    match tokio::time::timeout(Duration::from_secs_f64(timeout), exchange).await {
        Err(_) => Err(format!("{endpoint}: no answer within {timeout}s")),
        Ok(Err(e)) => Err(format!("{endpoint}: {e}")),
        Ok(Ok((code, _))) if (200..300).contains(&code) => Ok(()),
        Ok(Ok((code, _))) => Err(format!("{endpoint} answered HTTP {code}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
