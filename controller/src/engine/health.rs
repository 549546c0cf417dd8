//! Docker health checks through bollard: the `Healthcheck` a container is created with
//! (fitted to the ship's API version), and the wait for a verdict from the event stream.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{EventMessage, HealthConfig, HealthStatusEnum};
use bollard::query_parameters::EventsOptions;
use futures_util::StreamExt;

use maestro_core::model::Healthcheck;

use super::Unhealthy;
use super::docker::{DockerEngine, daemon, shown};

/// The first API version that knows `StartInterval`.
const START_INTERVAL_API: (usize, usize) = (1, 44);

/// How many lines of a failed health check's output are kept.
const OUTPUT_LINES: usize = 20;

/// The container's `Healthcheck` (`None`: the image's, if any) and what had to be left out
/// on an engine of API `version` (`(major, minor)`), as warnings naming `ship`.
pub fn config(
    healthcheck: Option<&Healthcheck>,
    version: (usize, usize),
    ship: &str,
) -> (Option<HealthConfig>, Vec<String>) {
    let nanos = |d: &Option<Duration>| d.and_then(|d| i64::try_from(d.as_nanos()).ok());
    match healthcheck {
        None | Some(Healthcheck::Image) => (None, Vec::new()),
        Some(Healthcheck::Disabled) => (
            Some(HealthConfig {
                test: Some(vec!["NONE".into()]),
                ..Default::default()
            }),
            Vec::new(),
        ),
        Some(Healthcheck::Defined {
            test,
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        }) => {
            let mut warnings = Vec::new();
            let start_interval = if start_interval.is_some() && version < START_INTERVAL_API {
                warnings.push(format!(
                    "ship {ship}: its engine speaks Docker API {}.{}, and healthcheck.start_interval needs {}.{}: the container was created without it",
                    version.0, version.1, START_INTERVAL_API.0, START_INTERVAL_API.1
                ));
                None
            } else {
                nanos(start_interval)
            };
            (
                Some(HealthConfig {
                    test: test.clone(),
                    interval: nanos(interval),
                    timeout: nanos(timeout),
                    start_period: nanos(start_period),
                    start_interval,
                    retries: retries.map(i64::from),
                }),
                warnings,
            )
        }
    }
}

/// Waits for the container's verdict. The state is read once; if undecided, the events of
/// the container (`health_status`, `die`, `destroy`) decide. The subscription asks for
/// every event since the container started (`since`, on the daemon's own clock), so one
/// that happens between the inspect and the subscription is replayed, not missed: a plain
/// subscribe-then-inspect cannot promise that, as the daemon answers `/events` before it
/// registers the subscriber.
///
/// The engine decides within the health check's own limits ([`verdict_within`]); a stream
/// silent for longer than that (and a request bound) is a wedged engine, unless a last
/// look at the state finds the verdict the events did not bring.
/// `streams`: the client of the streams meant to last, for the events.
pub async fn wait(
    engine: &DockerEngine,
    docker: &Docker,
    streams: &Docker,
    id: &str,
) -> Result<(), Unhealthy> {
    let inspect = || {
        engine.request(|| format!("inspect of {}", shown(id)), async {
            docker.inspect_container(id, None).await.map_err(daemon)
        })
    };
    // Only what is needed is kept across the waits below: the whole answer is large.
    let (within, state) = {
        let container = inspect().await.map_err(Unhealthy::Engine)?;
        let healthcheck = container.config.and_then(|c| c.healthcheck);
        (
            verdict_within(healthcheck.as_ref()) + engine.request_bound(),
            container.state.unwrap_or_default(),
        )
    };
    if let Some(decided) = decided(&state) {
        return decided;
    }
    let filters = HashMap::from([
        ("type".to_owned(), vec!["container".to_owned()]),
        ("container".to_owned(), vec![id.to_owned()]),
        (
            "event".to_owned(),
            vec!["health_status".into(), "die".into(), "destroy".into()],
        ),
    ]);
    let options = EventsOptions {
        since: state.started_at.as_deref().and_then(unix_time),
        until: None,
        filters: Some(filters),
    };
    let mut events = streams.events(Some(options));
    // Boxed, as the engine's requests are (see `DockerEngine::within`).
    let follow = Box::pin(async {
        while let Some(event) = events.next().await {
            if let Some(verdict) = verdict(&event.map_err(|e| Unhealthy::Engine(daemon(e)))?) {
                return Ok(Some(verdict));
            }
        }
        Ok(None)
    });
    let followed = tokio::time::timeout(within, follow).await;
    match followed {
        Ok(Err(e)) => Err(e),
        Ok(Ok(Some(Verdict::Healthy))) => Ok(()),
        Ok(Ok(Some(Verdict::Exited(exit_code)))) => Err(Unhealthy::Exited { exit_code }),
        Ok(Ok(Some(Verdict::Unhealthy))) => {
            let health = inspect()
                .await
                .map_err(Unhealthy::Engine)?
                .state
                .and_then(|s| s.health);
            Err(Unhealthy::Failed {
                output: last_output(health.as_ref()),
            })
        }
        Ok(Ok(None)) => Err(Unhealthy::Engine(super::EngineError::Daemon(
            "the engine's event stream ended before the health check decided".into(),
        ))),
        Err(_) => {
            let state = inspect()
                .await
                .map_err(Unhealthy::Engine)?
                .state
                .unwrap_or_default();
            decided(&state).unwrap_or_else(|| {
                Err(Unhealthy::Engine(engine.no_answer(
                    format!("health verdict of {}", shown(id)),
                    within,
                    false,
                )))
            })
        }
    }
}

/// What the container's state says already, if anything.
fn decided(state: &bollard::models::ContainerState) -> Option<Result<(), Unhealthy>> {
    if !state.running.unwrap_or(false) {
        return Some(Err(Unhealthy::Exited {
            exit_code: state.exit_code,
        }));
    }
    match state.health.as_ref().and_then(|h| h.status) {
        None | Some(HealthStatusEnum::NONE | HealthStatusEnum::EMPTY) => {
            Some(Err(Unhealthy::NoHealthcheck))
        }
        Some(HealthStatusEnum::HEALTHY) => Some(Ok(())),
        Some(HealthStatusEnum::UNHEALTHY) => Some(Err(Unhealthy::Failed {
            output: last_output(state.health.as_ref()),
        })),
        Some(HealthStatusEnum::STARTING) => None,
    }
}

/// How long the engine may take to call a container healthy or unhealthy: its start
/// period, then `retries + 1` probes, each waiting its interval and running at most its
/// timeout (Docker's defaults: 30 s, 30 s, 3 retries).
pub fn verdict_within(config: Option<&HealthConfig>) -> Duration {
    let given = |nanos: Option<i64>, default: Duration| match nanos {
        Some(n) if n > 0 => Duration::from_nanos(n.unsigned_abs()),
        _ => default,
    };
    let (interval, timeout, start_period, retries) = match config {
        Some(c) => (
            given(c.interval, Duration::from_secs(30)),
            given(c.timeout, Duration::from_secs(30)),
            given(c.start_period, Duration::ZERO),
            c.retries.filter(|r| *r > 0).unwrap_or(3),
        ),
        None => (
            Duration::from_secs(30),
            Duration::from_secs(30),
            Duration::ZERO,
            3,
        ),
    };
    let probes = u32::try_from(retries.saturating_add(1)).unwrap_or(u32::MAX);
    start_period.saturating_add((interval.saturating_add(timeout)).saturating_mul(probes))
}

/// [`unix_time`] in nanoseconds.
pub(super) fn unix_nanos(text: &str) -> Option<i64> {
    let time = unix_time(text)?;
    let (seconds, nanos) = time.split_once('.')?;
    seconds
        .parse::<i64>()
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(nanos.parse::<i64>().ok()?)
}

/// An RFC 3339 time in UTC as Docker writes it (`2024-05-01T10:00:00.123456789Z`), as the
/// `seconds.nanoseconds` the events API takes for `since`.
pub(super) fn unix_time(text: &str) -> Option<String> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let (time, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut time = time.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hour, minute, second) = (time.next()??, time.next()??, time.next()??);
    if !fraction.bytes().all(|b| b.is_ascii_digit()) || !(1..=12).contains(&month) {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    let nanos = format!("{:0<9}", &fraction[..fraction.len().min(9)]);
    Some(format!("{seconds}.{nanos}"))
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Healthy,
    Unhealthy,
    Exited(Option<i64>),
}

/// What one event of the container says, if anything.
fn verdict(event: &EventMessage) -> Option<Verdict> {
    let action = event.action.as_deref()?;
    let attribute = |name: &str| {
        event
            .actor
            .as_ref()
            .and_then(|a| a.attributes.as_ref())
            .and_then(|a| a.get(name))
    };
    match action.split_once(':').map(|(a, s)| (a, s.trim())) {
        Some(("health_status", "healthy")) => Some(Verdict::Healthy),
        Some(("health_status", "unhealthy")) => Some(Verdict::Unhealthy),
        _ if action == "die" => Some(Verdict::Exited(
            attribute("exitCode").and_then(|c| c.parse().ok()),
        )),
        _ if action == "destroy" => Some(Verdict::Exited(None)),
        _ => None,
    }
}

/// The output of the last health check, line by line (its exit code when it printed
/// nothing).
fn last_output(health: Option<&bollard::models::Health>) -> Vec<String> {
    let Some(last) = health.and_then(|h| h.log.as_ref()).and_then(|l| l.last()) else {
        return Vec::new();
    };
    let output = last.output.as_deref().unwrap_or_default().trim_end();
    if output.is_empty() {
        return vec![format!(
            "(no output; exit code {})",
            last.exit_code.map_or("unknown".into(), |c| c.to_string())
        )];
    }
    let lines: Vec<&str> = output.lines().collect();
    lines[lines.len().saturating_sub(OUTPUT_LINES)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::EventActor;

    fn event(action: &str, attributes: &[(&str, &str)]) -> EventMessage {
        EventMessage {
            action: Some(action.into()),
            actor: Some(EventActor {
                id: Some("abc".into()),
                attributes: Some(
                    attributes
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
            }),
            ..Default::default()
        }
    }

    /// The engine's verdict comes within the start period and `retries + 1` probes of
    /// interval and timeout each, Docker's defaults filling what is not given.
    #[test]
    fn a_verdict_is_due_within_the_health_check_limits() {
        let s = |n: u64| i64::try_from(Duration::from_secs(n).as_nanos()).unwrap();
        assert_eq!(verdict_within(None), Duration::from_secs(240));
        let given = HealthConfig {
            interval: Some(s(2)),
            timeout: Some(s(1)),
            start_period: Some(s(10)),
            retries: Some(2),
            ..Default::default()
        };
        assert_eq!(verdict_within(Some(&given)), Duration::from_secs(19));
        let zeros = HealthConfig {
            interval: Some(0),
            retries: Some(0),
            ..Default::default()
        };
        assert_eq!(verdict_within(Some(&zeros)), Duration::from_secs(240));
    }

    #[test]
    fn start_times_become_unix_times() {
        let cases = [
            ("1970-01-01T00:00:00Z", Some("0.000000000")),
            (
                "2024-05-01T10:00:00.123456789Z",
                Some("1714557600.123456789"),
            ),
            ("2000-02-29T23:59:59.5Z", Some("951868799.500000000")),
            (
                "2026-12-02T04:35:13.1234567891Z",
                Some("1796186113.123456789"),
            ),
            ("0001-01-01T00:00:00Z", Some("-62135596800.000000000")),
            ("2024-05-01T10:00:00+02:00", None),
            ("2024-13-01T10:00:00Z", None),
            ("yesterday", None),
        ];
        for (text, want) in cases {
            assert_eq!(unix_time(text).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn events_say_healthy_unhealthy_or_exited() {
        let cases = [
            (event("health_status: healthy", &[]), Some(Verdict::Healthy)),
            (
                event("health_status: unhealthy", &[]),
                Some(Verdict::Unhealthy),
            ),
            (event("health_status: starting", &[]), None),
            (
                event("die", &[("exitCode", "3"), ("name", "x")]),
                Some(Verdict::Exited(Some(3))),
            ),
            (event("die", &[]), Some(Verdict::Exited(None))),
            (event("destroy", &[]), Some(Verdict::Exited(None))),
            (event("exec_start: sh -c true", &[]), None),
        ];
        for (event, want) in cases {
            assert_eq!(verdict(&event), want, "{:?}", event.action);
        }
    }

    #[test]
    fn start_interval_is_left_out_below_api_1_44_with_a_warning() {
        let healthcheck = Healthcheck::Defined {
            test: Some(vec!["CMD-SHELL".into(), "exit 0".into()]),
            interval: Some(Duration::from_millis(500)),
            timeout: None,
            start_period: Some(Duration::from_secs(90)),
            start_interval: Some(Duration::from_secs(1)),
            retries: Some(2),
        };
        let (config_old, warnings) = config(Some(&healthcheck), (1, 41), "s1");
        let config_old = config_old.expect("a health check");
        assert_eq!(config_old.interval, Some(500_000_000));
        assert_eq!(config_old.start_period, Some(90_000_000_000));
        assert_eq!(config_old.retries, Some(2));
        assert_eq!(config_old.start_interval, None);
        assert_eq!(
            warnings,
            [
                "ship s1: its engine speaks Docker API 1.41, and healthcheck.start_interval needs 1.44: the container was created without it"
            ]
        );
        let (config_new, warnings) = config(Some(&healthcheck), (1, 44), "s1");
        assert_eq!(
            config_new.expect("a health check").start_interval,
            Some(1_000_000_000)
        );
        assert!(warnings.is_empty());
        assert_eq!(
            config(Some(&Healthcheck::Image), (1, 41), "s1"),
            (None, vec![])
        );
        assert_eq!(config(None, (1, 41), "s1"), (None, vec![]));
        assert_eq!(
            config(Some(&Healthcheck::Disabled), (1, 41), "s1")
                .0
                .and_then(|c| c.test),
            Some(vec!["NONE".to_owned()])
        );
    }

    #[test]
    fn the_last_check_output_is_kept() {
        let health = bollard::models::Health {
            log: Some(vec![
                bollard::models::HealthcheckResult {
                    output: Some("old\n".into()),
                    exit_code: Some(1),
                    ..Default::default()
                },
                bollard::models::HealthcheckResult {
                    output: Some("db down\nretry later\n".into()),
                    exit_code: Some(1),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        assert_eq!(last_output(Some(&health)), ["db down", "retry later"]);
        let silent = bollard::models::Health {
            log: Some(vec![bollard::models::HealthcheckResult {
                output: Some(String::new()),
                exit_code: Some(1),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(last_output(Some(&silent)), ["(no output; exit code 1)"]);
    }
}
