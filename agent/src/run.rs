//! `run`: the container's entry point. It waits for the services it is told to, renders
//! the config files, starts the app, and then is its init: one loop owns the signals and
//! the reaping, forwards every catchable signal to the app, turns a stop signal into a
//! bounded grace period, reaps every orphan, and exits with the app's code. Along the
//! way it tells the controller how the app is doing (see `report`), never waiting for it.

mod notify;
mod probe;
mod reap;

use std::collections::VecDeque;
use std::io::{IsTerminal, Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::Signal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use guestutils::names;

use crate::env::ProcessEnv;
use crate::health;
use crate::output;
use crate::report::{Reporter, State};

pub use notify::send as notify;
pub use probe::ReadyWhen;

/// Everything `run` was asked to do.
#[derive(Debug)]
pub struct Options {
    pub command: Vec<String>,
    pub render: Vec<String>,
    pub ready_when: ReadyWhen,
    /// Services whose every instance must accept connections before the app starts.
    pub wait: Vec<String>,
    pub wait_timeout: Duration,
    /// After a stop signal, how long the app may take before everything is killed.
    pub grace: Duration,
    /// How long the app may take to become ready before it is reported failed.
    pub ready_timeout: Option<Duration>,
}

/// How many of the app's last output lines a failure report carries.
const LAST_LINES: usize = 20;
/// How long the app's output may keep flowing after it exited (a grandchild may hold the
/// pipe open) before the guest stops copying it.
const DRAIN: Duration = Duration::from_millis(200);
/// How long an exiting guest waits for its last reports to be delivered.
const FLUSH: Duration = Duration::from_secs(3);

/// The signals forwarded to the app: every catchable one except those the kernel raises
/// for a fault of the guest itself, SIGCHLD (the guest's own business) and SIGPIPE (which
/// the guest's writes would raise). The same set as tini.
const FORWARDED: &[Signal] = &[
    Signal::HUP,
    Signal::INT,
    Signal::QUIT,
    Signal::USR1,
    Signal::USR2,
    Signal::ALARM,
    Signal::TERM,
    Signal::CONT,
    Signal::TSTP,
    Signal::URG,
    Signal::XCPU,
    Signal::XFSZ,
    Signal::VTALARM,
    Signal::PROF,
    Signal::WINCH,
    Signal::IO,
    Signal::POWER,
];

/// The signals that ask the app to stop, and so start the grace period.
fn stops(signal: Signal) -> bool {
    matches!(signal, Signal::TERM | Signal::INT | Signal::QUIT)
}

/// Runs the whole life of the app; returns the guest's exit code.
pub fn run(options: Options, env: &ProcessEnv) -> u8 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            output::error(&format!("cannot start: {e}"));
            return 1;
        }
    };
    let code = runtime.block_on(supervise(options, env));
    u8::try_from(code.clamp(0, 255)).unwrap_or(1)
}

/// The app's output, copied through, with its last lines kept for a failure report.
#[derive(Clone, Default)]
struct Tail(Arc<Mutex<VecDeque<String>>>);

impl Tail {
    fn push(&self, line: &[u8]) {
        let mut lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == LAST_LINES {
            lines.pop_front();
        }
        let line = String::from_utf8_lossy(line);
        lines.push_back(line.trim_end_matches(['\n', '\r']).to_owned());
    }

    fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Copies `from` to `to` as it comes (a partial line is not held back) and keeps the
    /// lines. A thread, not a task: blocking pipe reads, and no async plumbing for them.
    fn copy(
        &self,
        mut from: impl Read + Send + 'static,
        mut to: impl Write + Send + 'static,
    ) -> std::thread::JoinHandle<()> {
        let tail = self.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            let mut line = Vec::new();
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let _ = to.write_all(&buf[..n]).and_then(|()| to.flush());
                for chunk in buf[..n].split_inclusive(|&b| b == b'\n') {
                    line.extend_from_slice(chunk);
                    if line.ends_with(b"\n") || line.len() > 4096 {
                        tail.push(&line);
                        line.clear();
                    }
                }
            }
            if !line.is_empty() {
                tail.push(&line);
            }
        })
    }
}

async fn supervise(options: Options, env: &ProcessEnv) -> i32 {
    let began = Instant::now();
    let reporter = Reporter::start(env);
    let health = health::Shared::default();
    health.set("starting");
    health::serve(env, health.clone());
    reporter.send(&State::Starting, "");
    let fail = |reason: String, code: i32, last_lines: Vec<String>| {
        output::error(&reason);
        health.set(format!("failed: {reason}"));
        reporter.send(
            &State::Failed {
                exit_code: Some(code),
                last_lines,
                reason,
            },
            "",
        );
    };

    if std::process::id() != 1 {
        // Orphans of the app become the guest's to reap, as they would be PID 1's.
        if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
            output::error(&format!(
                "cannot become a subreaper ({e}); orphans go to PID 1"
            ));
        }
    }

    // Signals are caught from here on, so none is lost between now and the app's start.
    let (signals_tx, mut signals) = mpsc::unbounded_channel::<Signal>();
    for &sig in FORWARDED {
        match signal(SignalKind::from_raw(sig.as_raw())) {
            Ok(mut stream) => {
                let tx = signals_tx.clone();
                tokio::spawn(async move {
                    while stream.recv().await.is_some() {
                        if tx.send(sig).is_err() {
                            break;
                        }
                    }
                });
            }
            Err(e) => output::error(&format!("cannot catch signal {}: {e}", sig.as_raw())),
        }
    }
    let mut children = match signal(SignalKind::child()) {
        Ok(stream) => stream,
        Err(e) => {
            fail(format!("cannot watch child processes: {e}"), 1, Vec::new());
            reporter.flush(FLUSH).await;
            return 1;
        }
    };

    // Before the app: its dependencies, then its config files.
    if !options.wait.is_empty() {
        let waiting = wait_for_services(env, &options.wait, options.wait_timeout, &reporter);
        tokio::select! {
            result = waiting => if let Err(reason) = result {
                fail(reason, 1, Vec::new());
                reporter.flush(FLUSH).await;
                return 1;
            },
            Some(sig) = signals.recv() => {
                // Nothing runs yet: a stop signal ends the guest, as it would the app.
                reporter.send(&State::Stopping, "");
                reporter.flush(FLUSH).await;
                return 128 + sig.as_raw();
            }
        }
    }
    if !options.render.is_empty() {
        if let Err(reason) = crate::render::render_all(&options.render, env) {
            fail(reason, 1, Vec::new());
            reporter.flush(FLUSH).await;
            return 1;
        }
    }

    let notify_socket = match notify::listen() {
        Ok(socket) => Some(socket),
        Err(e) => {
            output::error(&format!(
                "cannot open NOTIFY_SOCKET ({e}); sd_notify is unavailable"
            ));
            None
        }
    };
    if options.ready_when == ReadyWhen::Notify && notify_socket.is_none() {
        fail(
            "--ready-when notify needs NOTIFY_SOCKET".into(),
            1,
            Vec::new(),
        );
        reporter.flush(FLUSH).await;
        return 1;
    }

    // The app. Its output is piped through the guest (to keep its last lines) unless it
    // talks to a terminal, which it must keep.
    let tail = Tail::default();
    let piped = !std::io::stdout().is_terminal();
    let mut command = Command::new(&options.command[0]);
    command.args(&options.command[1..]);
    if let Some((_, name)) = &notify_socket {
        command.env("NOTIFY_SOCKET", name);
    }
    if piped {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            // The shell's codes: 127 for a command that is not there, 126 for one that
            // cannot run.
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            fail(
                format!("cannot run {}: {e}", options.command[0]),
                code,
                Vec::new(),
            );
            reporter.flush(FLUSH).await;
            return code;
        }
    };
    let pid = child.id();
    let mut copiers = Vec::new();
    if let Some(out) = child.stdout.take() {
        copiers.push(tail.copy(out, std::io::stdout()));
    }
    if let Some(err) = child.stderr.take() {
        copiers.push(tail.copy(err, std::io::stderr()));
    }

    let reaper = reap::Reaper::default();
    let probe = probe::ready(options.ready_when.clone(), reaper.clone());
    tokio::pin!(probe);
    let ready_deadline = tokio::time::sleep(options.ready_timeout.unwrap_or(Duration::MAX / 4));
    tokio::pin!(ready_deadline);
    let grace = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(grace);
    let mut ready = false;
    let mut failed = false;
    let mut stopping = false;
    let mut killed = false;
    let mut status = String::new();
    let mut errno = None;
    let mut datagram = [0u8; 4096];
    let become_ready = |status: &str| {
        health.set("ready");
        reporter.send(
            &State::Ready {
                took: began.elapsed(),
            },
            status,
        );
    };

    let exit = loop {
        tokio::select! {
            // Reaping first: a child that ended is the most important news.
            biased;
            Some(()) = children.recv() => {
                if let Some(exit) = reaper.reap(pid) {
                    break exit;
                }
            }
            Some(sig) = signals.recv() => {
                reap::signal(pid, sig);
                if stops(sig) && !stopping {
                    stopping = true;
                    health.set("stopping");
                    reporter.send(&State::Stopping, &status);
                    grace.as_mut().reset(tokio::time::Instant::now() + options.grace);
                }
            }
            () = &mut grace, if stopping && !killed => {
                output::error(&format!(
                    "the app did not stop within {}s; killing what is left",
                    options.grace.as_secs_f64()
                ));
                reap::signal_all(Signal::KILL);
                killed = true;
            }
            () = &mut probe, if !ready && !stopping => {
                ready = true;
                become_ready(&status);
            }
            received = async {
                match &notify_socket {
                    Some((socket, _)) => socket.recv(&mut datagram).await,
                    None => std::future::pending().await,
                }
            } => {
                let Ok(n) = received else { continue };
                let notice = notify::parse(&datagram[..n]);
                if let Some(text) = notice.status {
                    status = text;
                }
                errno = notice.errno.or(errno);
                if notice.ready && options.ready_when == ReadyWhen::Notify && !ready && !stopping {
                    ready = true;
                    become_ready(&status);
                } else if notice.stopping && !stopping {
                    stopping = true;
                    health.set("stopping");
                    reporter.send(&State::Stopping, &status);
                } else if !status.is_empty() && !stopping {
                    // A status alone: the current state again, with the new text.
                    let state = if ready {
                        State::Ready { took: began.elapsed() }
                    } else {
                        State::Starting
                    };
                    reporter.send(&state, &status);
                }
            }
            () = &mut ready_deadline, if !ready && !failed && !stopping && options.ready_timeout.is_some() => {
                failed = true;
                let seconds = options.ready_timeout.unwrap_or_default().as_secs_f64();
                let reason = format!("the app was not ready within {seconds}s ({})", describe(&options.ready_when));
                output::error(&format!("{reason}; it keeps running"));
                health.set(format!("failed: {reason}"));
                reporter.send(
                    &State::Failed { exit_code: None, last_lines: tail.lines(), reason },
                    &status,
                );
            }
        }
    };

    let code = reap::exit_code(exit);
    // Let the copiers catch the app's last words, but not wait on a grandchild that still
    // holds the pipe.
    let drained = Instant::now() + DRAIN;
    for copier in copiers {
        while !copier.is_finished() && Instant::now() < drained {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    if !stopping && (code != 0 || !ready) {
        let mut reason = if ready {
            format!("the app exited with code {code}")
        } else {
            format!("the app exited with code {code} before it was ready")
        };
        if let Some(errno) = errno {
            reason.push_str(&format!(" (it reported errno {errno})"));
        }
        fail(reason, code, tail.lines());
    } else if !stopping {
        reporter.send(&State::Stopping, &status);
    }
    reporter.flush(FLUSH).await;
    code
}

fn describe(when: &ReadyWhen) -> String {
    match when {
        ReadyWhen::Notify => "no READY=1 on NOTIFY_SOCKET".into(),
        ReadyWhen::Started => "started".into(),
        ReadyWhen::Tcp(port) => format!("nothing accepted on port {port}"),
        ReadyWhen::Http { port, path } => format!("GET {path} on port {port} did not succeed"),
        ReadyWhen::Exec(command) => format!("'{}' did not exit 0", command.join(" ")),
        ReadyWhen::File(path) => format!("{} did not appear", path.display()),
    }
}

/// Waits until every instance of every service in `services` accepts a TCP connection on
/// each of its ports, as the variables of this container describe them.
async fn wait_for_services(
    env: &ProcessEnv,
    services: &[String],
    within: Duration,
    reporter: &Reporter,
) -> Result<(), String> {
    let mut targets = Vec::new();
    for service in services {
        let instances = guestutils::discovery::instance_names(env, service);
        if instances.is_empty() {
            return Err(format!(
                "--wait service:{service}: no instance of service '{service}' in this container's environment"
            ));
        }
        for instance in instances {
            let host = guestutils::discovery::specific_host(env, service, &instance)
                .map_err(|e| e.to_string())?;
            for port in instance_ports(env, service, &instance) {
                targets.push((format!("{service}/{instance}"), host.clone(), port));
            }
        }
    }
    reporter.send(
        &State::Starting,
        &format!("waiting for {}", services.join(", ")),
    );
    let deadline = tokio::time::Instant::now() + within;
    for (who, host, port) in targets {
        loop {
            let attempt = tokio::time::timeout(
                Duration::from_secs(1),
                tokio::net::TcpStream::connect((host.as_str(), port)),
            );
            if let Ok(Ok(_)) = attempt.await {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "{who} ({host}:{port}) did not accept a connection within {}s",
                    within.as_secs_f64()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// The published port numbers of one instance of a service: its `{SERVICE}_{INSTANCE}_*_PORT`
/// variables (not the `_INTERNAL_PORT` ones). Instance names may prefix one another
/// (`zk-1`, `zk-1-b`), so a variable belongs to the instance with the longest matching
/// prefix.
fn instance_ports(env: &ProcessEnv, service: &str, instance: &str) -> Vec<u16> {
    let prefix = |i: &str| {
        format!(
            "{}_{}_",
            names::env_var_name(service),
            names::env_var_name(i)
        )
    };
    let mine = prefix(instance);
    let others: Vec<String> = guestutils::discovery::instance_names(env, service)
        .iter()
        .map(|i| prefix(i))
        .filter(|p| p.len() > mine.len() && p.starts_with(&mine))
        .collect();
    let mut ports: Vec<u16> = env
        .iter()
        .filter_map(|(name, value)| {
            let rest = name.strip_prefix(&mine)?.strip_suffix("_PORT")?;
            if rest.is_empty()
                || rest.ends_with("_INTERNAL")
                || others.iter().any(|o| name.starts_with(o.as_str()))
            {
                return None;
            }
            value.parse().ok()
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_ports_are_its_own_published_ones() {
        let env = ProcessEnv::from_pairs(
            [
                ("ZK_INSTANCES", "zk-1,zk-1-b"),
                ("ZK_ZK_1_HOST", "10.0.0.1"),
                ("ZK_ZK_1_CLIENT_PORT", "2181"),
                ("ZK_ZK_1_CLIENT_INTERNAL_PORT", "12181"),
                ("ZK_ZK_1_PEER_PORT", "2888"),
                ("ZK_ZK_1_B_CLIENT_PORT", "3181"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        assert_eq!(instance_ports(&env, "zk", "zk-1"), [2181, 2888]);
        assert_eq!(instance_ports(&env, "zk", "zk-1-b"), [3181]);
    }

    fn vars(pairs: &[(&str, String)]) -> ProcessEnv {
        ProcessEnv::from_pairs(pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())))
    }

    #[tokio::test]
    async fn waiting_for_a_service_ends_when_its_ports_accept_or_says_which_did_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap().port().to_string();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port().to_string()
        };
        let reporter = Reporter::start(&vars(&[]));
        let up = vars(&[
            ("DB_INSTANCES", "db-1".into()),
            ("DB_DB_1_HOST", "127.0.0.1".into()),
            ("DB_DB_1_SQL_PORT", open.clone()),
            ("DB_DB_1_SQL_INTERNAL_PORT", "1".into()),
        ]);
        let db = ["db".to_owned()];
        assert_eq!(
            wait_for_services(&up, &db, Duration::from_secs(5), &reporter).await,
            Ok(())
        );
        let down = vars(&[
            ("DB_INSTANCES", "db-1".into()),
            ("DB_DB_1_HOST", "127.0.0.1".into()),
            ("DB_DB_1_SQL_PORT", closed.clone()),
        ]);
        assert_eq!(
            wait_for_services(&down, &db, Duration::from_millis(100), &reporter).await,
            Err(format!(
                "db/db-1 (127.0.0.1:{closed}) did not accept a connection within 0.1s"
            ))
        );
        let err = wait_for_services(&up, &["cache".to_owned()], Duration::ZERO, &reporter).await;
        assert!(err.unwrap_err().contains("no instance of service 'cache'"));
        drop(listener);
    }
}
