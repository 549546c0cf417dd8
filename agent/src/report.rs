//! Pushing this instance's states to the controller over the readiness handshake
//! (proto/readiness.proto). Reports go out in order from one background task, each with a
//! bounded number of attempts, so the app never waits for the controller: an unreachable
//! controller costs a line on stderr, nothing more.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

use guestutils::Vars;

#[cfg(feature = "tls")]
mod tls;

pub mod pb {
    tonic::include_proto!("maestro.readiness.v1");
}

use pb::state_report::State as Wire;

/// The variables maestro sets on containers it creates during a play.
pub const ENDPOINT_VAR: &str = "MAESTRO_READINESS_ENDPOINT";
pub const TOKEN_VAR: &str = "MAESTRO_READINESS_TOKEN";
pub const PIN_VAR: &str = "MAESTRO_READINESS_CERT_SHA256";

/// Attempts per report, and the pause before each retry. About two seconds in all, so a
/// dependency's failure still reaches the controller after a short network hiccup, and a
/// guest exiting with its app is never held up for long.
const BACKOFF: [Duration; 4] = [
    Duration::from_millis(50),
    Duration::from_millis(150),
    Duration::from_millis(400),
    Duration::from_millis(1000),
];
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The largest report the controller takes, encoded (`MAX_REPORT` in the controller's
/// readiness server); a larger one would be refused unread.
const MAX_REPORT: usize = 64 * 1024;
/// The longest status and reason (twice this) sent, in bytes.
const MAX_TEXT: usize = 4096;
/// The longest line of the app's output sent with a failure.
const MAX_LINE: usize = 2048;

/// Shortens `report` to fit the controller's bound: long texts are cut (marked `…`),
/// then the oldest output lines dropped.
fn fit(report: &mut pb::StateReport) {
    fn cut(text: &mut String, max: usize) {
        if text.len() > max {
            let mut end = max;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
        }
    }
    use prost::Message;
    cut(&mut report.status, MAX_TEXT);
    if let Some(Wire::Failed(failed)) = &mut report.state {
        cut(&mut failed.reason, 2 * MAX_TEXT);
        failed.last_lines.iter_mut().for_each(|l| cut(l, MAX_LINE));
    }
    while report.encoded_len() > MAX_REPORT {
        match &mut report.state {
            Some(Wire::Failed(failed)) if !failed.last_lines.is_empty() => {
                failed.last_lines.remove(0);
            }
            _ => break,
        }
    }
}
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// One state of the instance, as the guest reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Starting,
    Ready {
        took: Duration,
    },
    Failed {
        exit_code: Option<i32>,
        last_lines: Vec<String>,
        reason: String,
    },
    Stopping,
}

impl State {
    fn wire(&self) -> Wire {
        match self {
            State::Starting => Wire::Starting(pb::Starting {}),
            State::Ready { took } => Wire::Ready(pb::Ready {
                took_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            }),
            State::Failed {
                exit_code,
                last_lines,
                reason,
            } => Wire::Failed(pb::Failed {
                exit_code: *exit_code,
                last_lines: last_lines.clone(),
                reason: reason.clone(),
            }),
            State::Stopping => Wire::Stopping(pb::Stopping {}),
        }
    }
}

enum Message {
    Report(pb::StateReport),
    /// Answered once every report queued before it has been sent or given up on.
    Flush(oneshot::Sender<()>),
}

/// Where the instance's reports go; a no-op outside a maestro play (no endpoint given).
#[derive(Clone)]
pub struct Reporter {
    queue: Option<mpsc::UnboundedSender<Message>>,
    instance: String,
    token: String,
}

impl Reporter {
    /// A reporter for the endpoint and token in `vars`, sending from a task on the current
    /// runtime; a silent one when either is missing.
    pub fn start(vars: &impl Vars) -> Reporter {
        let endpoint = vars.var(ENDPOINT_VAR).filter(|v| !v.is_empty());
        let token = vars.var(TOKEN_VAR).filter(|v| !v.is_empty());
        let instance = vars.var("CONTAINER_NAME").unwrap_or_default().to_owned();
        let (Some(endpoint), Some(token)) = (endpoint, token) else {
            return Reporter {
                queue: None,
                instance,
                token: String::new(),
            };
        };
        let channel = match connect(endpoint, vars.var(PIN_VAR)) {
            Ok(channel) => channel,
            Err(e) => {
                crate::output::error(&format!("{e}; no readiness reports"));
                return Reporter {
                    queue: None,
                    instance,
                    token: String::new(),
                };
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(deliver(
            pb::readiness_client::ReadinessClient::new(channel),
            endpoint.to_owned(),
            rx,
        ));
        Reporter {
            queue: Some(tx),
            instance,
            token: token.to_owned(),
        }
    }

    /// Queues a report of `state` with the app's latest `status` text.
    pub fn send(&self, state: &State, status: &str) {
        let Some(queue) = &self.queue else { return };
        let mut report = pb::StateReport {
            instance: self.instance.clone(),
            token: self.token.clone(),
            sequence: sequence(),
            state: Some(state.wire()),
            status: status.to_owned(),
        };
        fit(&mut report);
        let _ = queue.send(Message::Report(report));
    }

    /// Waits until every queued report is delivered or given up on, at most `within`.
    pub async fn flush(&self, within: Duration) {
        let Some(queue) = &self.queue else { return };
        let (tx, rx) = oneshot::channel();
        if queue.send(Message::Flush(tx)).is_ok() {
            let _ = tokio::time::timeout(within, rx).await;
        }
    }
}

/// A lazy channel to the controller: plain for `http://`, pinned TLS for `https://`.
fn connect(endpoint: &str, pin: Option<&str>) -> Result<tonic::transport::Channel, String> {
    let tls = endpoint.starts_with("https://");
    // The TLS connector is the guest's own (pinned), so tonic only ever sees plain HTTP/2.
    let plain = if tls {
        endpoint.replacen("https://", "http://", 1)
    } else {
        endpoint.to_owned()
    };
    let channel = tonic::transport::Endpoint::from_shared(plain)
        .map_err(|e| format!("{ENDPOINT_VAR} '{endpoint}' is not a usable address ({e})"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .tcp_nodelay(true);
    match (tls, pin) {
        (false, _) => Ok(channel.connect_lazy()),
        (true, None) => Err(format!(
            "{ENDPOINT_VAR} is https but {PIN_VAR} is not set"
        )),
        #[cfg(feature = "tls")]
        (true, Some(pin)) => tls::channel(&channel, pin),
        #[cfg(not(feature = "tls"))]
        (true, Some(_)) => Err(
            "the controller speaks TLS (--readiness-tls) but this maestro-guest was built without the tls feature"
                .to_owned(),
        ),
    }
}

/// A sequence number above every earlier one of this token, even across a restart of the
/// container (the controller refuses anything not above the last it accepted): the
/// current time in microseconds, bumped past the previous value if the clock has not
/// moved.
fn sequence() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

async fn deliver(
    mut client: pb::readiness_client::ReadinessClient<tonic::transport::Channel>,
    endpoint: String,
    mut queue: mpsc::UnboundedReceiver<Message>,
) {
    // Once the controller is gone (its play is over: the service listens only during
    // one), later reports are dropped at once; a container's stop must not wait for them.
    let mut gone = false;
    while let Some(message) = queue.recv().await {
        let report = match message {
            Message::Flush(done) => {
                let _ = done.send(());
                continue;
            }
            Message::Report(_) if gone => continue,
            Message::Report(report) => report,
        };
        let mut failure = None;
        for pause in std::iter::once(Duration::ZERO).chain(BACKOFF) {
            // Not for the first try: tokio rounds even a zero sleep up to its next 1 ms
            // tick, measured as 1.1 ms of each report's delay.
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            match client.report(report.clone()).await {
                Ok(ack) => {
                    let ack = ack.into_inner();
                    if !ack.accepted {
                        crate::output::error(&format!(
                            "the controller at {endpoint} refused the report: {}",
                            ack.reason
                        ));
                    }
                    failure = None;
                    break;
                }
                // The service listens from before the container was created until the
                // play ends, so a refused connection means the play is over.
                Err(status) if refused(&status) => {
                    crate::output::error(&format!(
                        "the controller at {endpoint} no longer listens (its play is over); no more readiness reports"
                    ));
                    gone = true;
                    failure = None;
                    break;
                }
                Err(status) => failure = Some(describe(&status)),
            }
        }
        if let Some(error) = failure {
            crate::output::error(&format!(
                "cannot reach the controller at {endpoint} ({error}); the app runs on without readiness reports"
            ));
            gone = true;
        }
    }
}

fn refused(status: &tonic::Status) -> bool {
    use std::error::Error;
    let mut source = status.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        source = cause.source();
    }
    false
}

/// The status and its causes, each said once (tonic's layers repeat one another).
fn describe(status: &tonic::Status) -> String {
    use std::error::Error;
    let mut text = status.message().to_owned();
    let mut source = status.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_only_rise() {
        let a = sequence();
        let b = sequence();
        let c = sequence();
        assert!(a < b && b < c);
    }

    #[test]
    fn a_report_fits_the_controllers_bound() {
        let long = |n: usize| "é".repeat(n / 2);
        let mut report = pb::StateReport {
            instance: "db-1".into(),
            token: "0123456789abcdef0123456789abcdef".into(),
            sequence: sequence(),
            state: Some(
                State::Failed {
                    exit_code: Some(1),
                    last_lines: (0..20).map(|i| format!("{i} {}", long(40_000))).collect(),
                    reason: long(100_000),
                }
                .wire(),
            ),
            status: long(100_000),
        };
        fit(&mut report);
        use prost::Message;
        assert!(
            report.encoded_len() <= MAX_REPORT,
            "{}",
            report.encoded_len()
        );
        assert!(report.status.ends_with('…') && report.status.len() <= MAX_TEXT + 3);
        let Some(Wire::Failed(failed)) = &report.state else {
            panic!("{:?}", report.state);
        };
        // The newest lines are kept, each cut short.
        assert!(failed.last_lines.len() >= 10, "{}", failed.last_lines.len());
        assert!(failed.last_lines.last().unwrap().starts_with("19 é"));
        assert!(failed.last_lines.iter().all(|l| l.len() <= MAX_LINE + 3));
        assert!(failed.reason.len() <= 2 * MAX_TEXT + 3);
        // A report within the bounds is left alone.
        let mut small = report.clone();
        small.status = "up".into();
        small.state = Some(Wire::Ready(pb::Ready { took_ms: 1 }));
        let before = small.clone();
        fit(&mut small);
        assert_eq!(small, before);
    }

    #[test]
    fn states_map_to_the_wire() {
        let failed = State::Failed {
            exit_code: Some(3),
            last_lines: vec!["boom".into()],
            reason: "exited".into(),
        };
        assert_eq!(
            failed.wire(),
            Wire::Failed(pb::Failed {
                exit_code: Some(3),
                last_lines: vec!["boom".into()],
                reason: "exited".into(),
            })
        );
        assert_eq!(
            State::Ready {
                took: Duration::from_millis(1234)
            }
            .wire(),
            Wire::Ready(pb::Ready { took_ms: 1234 })
        );
    }
}
