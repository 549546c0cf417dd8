//! Lifecycle checks (reference section 8): tcp, http (and https, through
//! [`crate::http`]), exec, rexec and sleep, with MaestroNG's defaults. Checks of one state run concurrently. Where MaestroNG sleeps one
//! second between attempts, tcp checks retry every 10 ms and http checks every 50 ms
//! (bounded by the same total wait), so a dependent starts within milliseconds of its
//! dependency opening its port.

use std::collections::BTreeMap;
use std::time::Duration;

use guestutils::redact;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};

use maestro_core::model::Check;

use crate::engine::Engine;
use crate::http;

/// Between attempts of a tcp check: a dependent should start within milliseconds of its
/// dependency's port opening, and a refused connection costs next to nothing.
const RETRY: Duration = Duration::from_millis(10);
/// Between attempts of an http check, which the app has to answer each time.
const HTTP_RETRY: Duration = Duration::from_millis(50);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// An http check's attempt, unless `requests_options.timeout` says otherwise (requests has
/// none): Docker's port proxy may accept a connection and then hang, and that attempt must
/// not hold the check until `max_wait` when the next one would pass.
const HTTP_ATTEMPT: Duration = Duration::from_secs(5);
/// What an http check reads of an answer: `match_regex` is matched against that much.
pub const HTTP_BODY_LIMIT: usize = 1 << 20;
/// A container on this machine answers at once or not at all.
const DIRECT_TIMEOUT: Duration = Duration::from_millis(250);

/// Whether a ship's address is this machine's loopback (its containers' own addresses are
/// then reachable from here).
pub fn is_loopback(ship_ip: &str) -> bool {
    ship_ip == "localhost"
        || ship_ip
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The check with a single attempt, for `status -F`; `None` for checks that only wait.
pub fn once(check: &Check) -> Option<Check> {
    let mut check = check.clone();
    match &mut check {
        Check::Tcp { max_wait, .. } => *max_wait = 1,
        Check::Http { max_wait, .. } => *max_wait = 1.0,
        Check::Exec { attempts, .. } | Check::Rexec { attempts, .. } => *attempts = 1,
        Check::Sleep { .. } => return None,
    }
    Some(check)
}

/// Runs one check until it passes or gives up. `Err` says why it did not pass.
pub async fn run<E: Engine>(
    check: &Check,
    ship_ip: &str,
    container_id: &str,
    container_env: &BTreeMap<String, String>,
    engine: &E,
    settings: &http::Settings,
) -> Result<(), String> {
    match check {
        Check::Tcp {
            port,
            number,
            max_wait,
        } => {
            // MaestroNG's max_wait is a number of one-second attempts.
            let deadline = Instant::now() + Duration::from_secs(u64::from(*max_wait));
            // A ship on this machine: the app itself can be asked, past the proxy.
            let direct = match is_loopback(ship_ip) && !container_id.is_empty() {
                true => engine
                    .reach(container_id)
                    .await
                    .ok()
                    .and_then(|reach| reach.direct(ship_ip, *number)),
                false => None,
            };
            let mut probe = TcpProbe::new(ship_ip, *number, direct);
            loop {
                if probe.attempt().await.is_ok() {
                    return Ok(());
                }
                if Instant::now() + RETRY >= deadline {
                    return Err(format!(
                        "tcp check: port {port} ({ship_ip}:{number}) did not accept a connection within {max_wait}s"
                    ));
                }
                sleep(RETRY).await;
            }
        }
        Check::Http {
            host,
            port,
            path,
            scheme,
            method,
            match_regex,
            max_wait,
            options,
        } => {
            // MaestroNG compiles the regex with re.DOTALL.
            let regex = match match_regex.as_deref().map(|r| {
                regex::RegexBuilder::new(r)
                    .dot_matches_new_line(true)
                    .build()
            }) {
                None => None,
                Some(Ok(regex)) => Some(regex),
                Some(Err(e)) => return Err(format!("http check: bad match_regex: {e}")),
            };
            let host_in_url = match host.contains(':') && !host.starts_with('[') {
                true => format!("[{host}]"),
                false => host.clone(),
            };
            let url = format!("{scheme}://{host_in_url}:{port}{path}");
            // The path's query may hold a token.
            let what = format!(
                "http check: {} {}",
                method.to_uppercase(),
                redact::url(&url)
            );
            let limits = http::Limits {
                connect: options
                    .timeout
                    .map_or(HTTP_ATTEMPT, |(c, _)| Duration::from_secs_f64(c)),
                read: options.timeout.map(|(_, r)| Duration::from_secs_f64(r)),
                total: None,
            };
            let client =
                http::Client::new(settings, &options.verify, options.allow_redirects, limits)
                    .map_err(|e| format!("{what}: {e}"))?;
            let deadline = Instant::now() + Duration::from_secs_f64(*max_wait);
            loop {
                // An attempt never outlives max_wait (nor is cut shorter than a moment);
                // without a `timeout` of its own, it is given up after HTTP_ATTEMPT.
                let mut left = deadline
                    .saturating_duration_since(Instant::now())
                    .max(HTTP_RETRY);
                if options.timeout.is_none() {
                    left = left.min(HTTP_ATTEMPT);
                }
                let attempt = client.send(http::Request {
                    method,
                    url: &url,
                    headers: &options.headers,
                    auth: options.auth.as_ref(),
                    json: None,
                    body_limit: HTTP_BODY_LIMIT,
                });
                let last = match timeout(left, attempt).await {
                    Ok(Ok(answer)) => {
                        let passed = match &regex {
                            Some(regex) => regex.is_match(&answer.body),
                            None => answer.status == 200,
                        };
                        if passed {
                            return Ok(());
                        }
                        format!("HTTP {}", answer.status)
                    }
                    // A certificate maestro refuses now it will refuse at every attempt.
                    Ok(Err(e)) if e.certificate => return Err(format!("{what}: {}", e.message)),
                    Ok(Err(e)) => e.message,
                    Err(_) => format!("no answer within {:.1}s", left.as_secs_f64()),
                };
                if Instant::now() + HTTP_RETRY >= deadline {
                    return Err(format!(
                        "{what} did not pass within {max_wait}s (last: {last})"
                    ));
                }
                sleep(HTTP_RETRY).await;
            }
        }
        Check::Exec {
            command,
            attempts,
            env_via_stdin,
        } => {
            let mut last = String::new();
            for attempt in 0..*attempts {
                if attempt > 0 {
                    sleep(Duration::from_secs(1)).await;
                }
                let mut cmd = tokio::process::Command::new(&command[0]);
                cmd.args(&command[1..])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
                let status = if *env_via_stdin {
                    cmd.stdin(std::process::Stdio::piped());
                    match cmd.spawn() {
                        Ok(mut child) => {
                            let json = serde_json::to_vec(container_env).unwrap_or_default();
                            if let Some(mut stdin) = child.stdin.take() {
                                let _ = stdin.write_all(&json).await;
                            }
                            child.wait().await
                        }
                        Err(e) => Err(e),
                    }
                } else {
                    cmd.envs(container_env)
                        .stdin(std::process::Stdio::null())
                        .status()
                        .await
                };
                match status {
                    Ok(s) if s.success() => return Ok(()),
                    Ok(s) => last = format!("exited with {s}"),
                    Err(e) => return Err(format!("exec check: cannot run {:?}: {e}", command[0])),
                }
            }
            Err(format!(
                "exec check: {} failed {attempts} times (last: {last})",
                command.join(" ")
            ))
        }
        Check::Rexec { command, attempts } => {
            let mut last = String::new();
            for attempt in 0..*attempts {
                if attempt > 0 {
                    sleep(Duration::from_secs(1)).await;
                }
                match engine.exec(container_id, command, REXEC_ATTEMPT).await {
                    Ok(0) => return Ok(()),
                    Ok(code) => last = format!("exit code {code}"),
                    Err(e) => last = e.to_string(),
                }
            }
            Err(format!(
                "rexec check: {} failed {attempts} times (last: {last})",
                command.join(" ")
            ))
        }
        Check::Sleep { wait } => {
            sleep(Duration::from_secs_f64(*wait)).await;
            Ok(())
        }
    }
}

/// Attempts to connect to an app on a published TCP port, not counting a connection that
/// only Docker's userland proxy accepted: on a ship on this machine it asks the
/// container's own address (`direct`, see [`Engine::published_targets`]), elsewhere (or
/// when that address cannot be reached from here) a connection through the published port
/// must stay open longer than the proxy took to drop the ones before.
pub struct TcpProbe<'a> {
    ship_ip: &'a str,
    number: u16,
    direct: Option<std::net::SocketAddr>,
    /// The slowest close of a connection the proxy dropped so far, if any.
    slowest_close: Option<Duration>,
}

impl<'a> TcpProbe<'a> {
    pub fn new(ship_ip: &'a str, number: u16, direct: Option<std::net::SocketAddr>) -> Self {
        TcpProbe {
            ship_ip,
            number,
            direct,
            slowest_close: None,
        }
    }

    /// One attempt; `Err` says why it did not connect.
    pub async fn attempt(&mut self) -> Result<(), String> {
        if let Some(target) = self.direct {
            match timeout(DIRECT_TIMEOUT, TcpStream::connect(target)).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Err(format!("refused by the container ({target})"));
                }
                // Not reachable from here after all (the engine runs in a VM): through the
                // published port, as from anywhere else.
                _ => self.direct = None,
            }
        }
        let began = Instant::now();
        match timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((self.ship_ip, self.number)),
        )
        .await
        {
            Ok(Ok(stream)) => {
                let grace = grace(began.elapsed(), self.slowest_close);
                match accepted(stream, grace).await {
                    None => Ok(()),
                    Some(closed_after) => {
                        self.slowest_close =
                            Some(self.slowest_close.unwrap_or_default().max(closed_after));
                        Err(
                            "closed at once (Docker's proxy: nothing listens in the container)"
                                .into(),
                        )
                    }
                }
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                Err("refused".into())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs())),
        }
    }
}

/// How long one attempt of a `rexec` check may run: a check asks whether the app is ready,
/// it does not do the work (MaestroNG gave the engine the ship's `timeout` between reads).
/// An attempt that overruns fails and the next one is tried.
const REXEC_ATTEMPT: Duration = Duration::from_secs(30);

/// How long a connection must stay open to count as accepted by the app (see
/// [`accepted`]). The proxy's close takes about a round trip to arrive, and the connect
/// took one; but on a loaded machine the proxy itself may be slow to run, so the closes
/// seen so far set the bar too, and before any was seen the bar is higher.
fn grace(connect_time: Duration, slowest_close: Option<Duration>) -> Duration {
    let round_trips = connect_time * 2 + Duration::from_millis(3);
    let seen = match slowest_close {
        Some(close) => close * 2 + Duration::from_millis(3),
        None => Duration::from_millis(20),
    };
    round_trips.max(seen).min(Duration::from_millis(250))
}

/// Whether a connection was really accepted by the app: `None` when it was, else how long
/// after connecting it was closed. Docker's userland proxy accepts on a published port
/// even when nothing listens in the container, then closes the connection as soon as its
/// own connection to the container is refused; a connection that stays open for `grace`
/// (or sends data) has an app behind it.
async fn accepted(mut stream: TcpStream, grace: Duration) -> Option<Duration> {
    let began = Instant::now();
    let mut byte = [0u8; 1];
    match timeout(grace, stream.read(&mut byte)).await {
        Err(_) | Ok(Ok(1..)) => None,
        Ok(Ok(0) | Err(_)) => Some(began.elapsed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grace_follows_round_trips_and_the_closes_seen() {
        let ms = Duration::from_millis;
        let cases = [
            // Before any close was seen: the higher bar.
            (Duration::from_micros(100), None, ms(20)),
            // A fast proxy: a few milliseconds.
            (
                Duration::from_micros(100),
                Some(Duration::from_micros(500)),
                ms(4),
            ),
            // A slow one: twice its slowest close.
            (Duration::from_micros(100), Some(ms(30)), ms(63)),
            // A far ship: its round trips.
            (ms(40), Some(ms(1)), ms(83)),
            // Never more than a quarter of a second.
            (ms(400), None, ms(250)),
        ];
        for (connect, close, want) in cases {
            assert_eq!(grace(connect, close), want, "{connect:?} {close:?}");
        }
    }
}
