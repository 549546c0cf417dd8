//! `--ready-when`: how the guest decides the app is ready. Every probe runs inside the
//! container against the app itself, so it costs a local connection or a stat, and is
//! retried often: the controller hears of readiness within milliseconds.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use guestutils::Vars;
use guestutils::discovery;

use super::reap::Reaper;

/// What makes the app ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadyWhen {
    /// The app says `READY=1` on `NOTIFY_SOCKET`.
    Notify,
    /// A TCP connection to this port on the loopback interface succeeds.
    Tcp(u16),
    /// `GET path` on this port answers 2xx or 3xx.
    Http { port: u16, path: String },
    /// The command exits 0.
    Exec(Vec<String>),
    /// The file exists.
    File(PathBuf),
    /// At once: the app is ready when it has been started.
    Started,
}

impl ReadyWhen {
    /// Reads a `--ready-when` value. A port may be a number or the name of one of this
    /// container's ports (`tcp:client`), looked up as `port NAME` would.
    pub fn parse(text: &str, vars: &impl Vars) -> Result<ReadyWhen, String> {
        let port = |p: &str| -> Result<u16, String> {
            if let Ok(n) = p.parse::<u16>() {
                return Ok(n);
            }
            let n = discovery::port(vars, p, None).map_err(|e| e.to_string())?;
            u16::try_from(n).map_err(|_| format!("port {p} is {n}, not a TCP port"))
        };
        let (kind, rest) = text.split_once(':').unwrap_or((text, ""));
        match (kind, rest) {
            ("notify", "") => Ok(ReadyWhen::Notify),
            ("started", "") => Ok(ReadyWhen::Started),
            ("tcp", p) if !p.is_empty() => Ok(ReadyWhen::Tcp(port(p)?)),
            ("http", target) if !target.is_empty() => {
                let (p, path) = match target.find('/') {
                    Some(i) => (&target[..i], &target[i..]),
                    None => (target, "/"),
                };
                Ok(ReadyWhen::Http {
                    port: port(p)?,
                    path: path.to_owned(),
                })
            }
            ("exec", command) if !command.trim().is_empty() => Ok(ReadyWhen::Exec(
                command.split_whitespace().map(str::to_owned).collect(),
            )),
            ("file", path) if !path.is_empty() => Ok(ReadyWhen::File(path.into())),
            _ => Err(format!(
                "invalid --ready-when '{text}': expected notify, started, tcp:PORT, http:PORT/PATH, exec:COMMAND or file:PATH"
            )),
        }
    }
}

/// Between attempts of the cheap probes (a local connection, a stat: microseconds each).
/// Half of it is, on average, added to every dependency level of a chain (bench/plays.sh
/// (b')): 2 ms, not 10.
const QUICK: Duration = Duration::from_millis(2);
/// Between attempts of the probes that make the app or a new process do work.
const SLOW: Duration = Duration::from_millis(100);

/// Resolves once the probe passes; never, for [`ReadyWhen::Notify`] (the main loop reads
/// the socket itself).
pub async fn ready(when: ReadyWhen, reaper: Reaper) {
    match when {
        ReadyWhen::Started => {}
        ReadyWhen::Notify => std::future::pending().await,
        ReadyWhen::Tcp(port) => {
            while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
                tokio::time::sleep(QUICK).await;
            }
        }
        ReadyWhen::Http { port, path } => loop {
            match http_ok(port, &path).await {
                Some(true) => break,
                // Nothing listens yet: trying again costs nothing.
                None => tokio::time::sleep(QUICK).await,
                // The app answered, not yet well: give it time to get there.
                Some(false) => tokio::time::sleep(SLOW).await,
            }
        },
        ReadyWhen::File(path) => {
            while !path.exists() {
                tokio::time::sleep(QUICK).await;
            }
        }
        ReadyWhen::Exec(command) => {
            while !exec_ok(&command, &reaper).await {
                tokio::time::sleep(SLOW).await;
            }
        }
    }
}

/// `Some(true)` for a 2xx or 3xx answer, `Some(false)` for another answer or none in
/// time, `None` when nothing accepts the connection.
async fn http_ok(port: u16, path: &str) -> Option<bool> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let attempt = async {
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 16];
        let mut read = 0;
        while read < 12 {
            let n = stream.read(&mut head[read..]).await.ok()?;
            if n == 0 {
                break;
            }
            read += n;
        }
        // "HTTP/1.1 200 ..." : the status class is the tenth byte.
        let head = std::str::from_utf8(&head[..read]).ok()?;
        let code = head.strip_prefix("HTTP/1.")?.get(2..5)?;
        Some(code.starts_with('2') || code.starts_with('3'))
    };
    Some(
        tokio::time::timeout(Duration::from_secs(2), attempt)
            .await
            .ok()
            .flatten()
            .unwrap_or(false),
    )
}

async fn exec_ok(command: &[String], reaper: &Reaper) -> bool {
    let Some((program, args)) = command.split_first() else {
        return false;
    };
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match child {
        // Registered before the next await, so the reaper cannot miss it.
        Ok(child) => reaper
            .watch(child.id())
            .await
            .is_ok_and(|status| super::reap::exit_code(status) == 0),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Env(HashMap<&'static str, &'static str>);
    impl Vars for Env {
        fn var(&self, key: &str) -> Option<&str> {
            self.0.get(key).copied()
        }
    }

    #[test]
    fn ready_when_values() {
        let env = Env([
            ("SERVICE_NAME", "zk"),
            ("CONTAINER_NAME", "zk-1"),
            ("ZK_ZK_1_CLIENT_INTERNAL_PORT", "2181"),
        ]
        .into_iter()
        .collect());
        let cases: &[(&str, Result<ReadyWhen, &str>)] = &[
            ("notify", Ok(ReadyWhen::Notify)),
            ("started", Ok(ReadyWhen::Started)),
            ("tcp:8080", Ok(ReadyWhen::Tcp(8080))),
            ("tcp:client", Ok(ReadyWhen::Tcp(2181))),
            (
                "http:8080/health?deep=1",
                Ok(ReadyWhen::Http {
                    port: 8080,
                    path: "/health?deep=1".into(),
                }),
            ),
            (
                "http:8080",
                Ok(ReadyWhen::Http {
                    port: 8080,
                    path: "/".into(),
                }),
            ),
            (
                "exec:pg_isready -q",
                Ok(ReadyWhen::Exec(vec!["pg_isready".into(), "-q".into()])),
            ),
            (
                "file:/run/app.ready",
                Ok(ReadyWhen::File("/run/app.ready".into())),
            ),
            ("tcp:", Err("invalid --ready-when 'tcp:'")),
            ("sleep:3", Err("invalid --ready-when 'sleep:3'")),
            ("notify:x", Err("invalid --ready-when 'notify:x'")),
            ("tcp:99999", Err("")),
            ("tcp:peer", Err("")),
        ];
        for (text, expected) in cases {
            let got = ReadyWhen::parse(text, &env);
            match (expected, &got) {
                (Ok(want), Ok(have)) => assert_eq!(want, have, "{text}"),
                (Err(start), Err(message)) => {
                    assert!(message.starts_with(start), "{text}: {message}")
                }
                _ => panic!("{text}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[tokio::test]
    async fn tcp_and_http_probes_pass_against_a_listening_app() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = [0u8; 512];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let reply: &[u8] = if buf[..n].starts_with(b"GET /ok ") {
                    b"HTTP/1.1 204 No Content\r\n\r\n"
                } else {
                    b"HTTP/1.1 503 Unavailable\r\n\r\n"
                };
                let _ = stream.write_all(reply).await;
            }
        });
        assert_eq!(http_ok(port, "/ok").await, Some(true));
        assert_eq!(http_ok(port, "/not-yet").await, Some(false));
        tokio::time::timeout(
            Duration::from_secs(5),
            ready(ReadyWhen::Tcp(port), Reaper::default()),
        )
        .await
        .expect("tcp probe passes");
    }
}
