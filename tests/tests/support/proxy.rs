//! A fault-injecting proxy between maestro and this machine's Docker engine: a TCP
//! listener on 127.0.0.1 (a ship's `docker_port`) forwarding to /var/run/docker.sock,
//! which lets the test pick, request by request, what goes wrong: a pause, a request
//! never answered (forwarded or not), an answer cut in the middle of its body, a reset, a
//! closed connection.
//!
//! Requests are told apart by their request line, with the API version taken out of the
//! path (`POST /containers/create?name=web-1`). HTTP/1.1 without pipelining (what the
//! Docker client speaks) means the next answer on a connection is the answer to the last
//! request, so the faults that touch answers need no parsing of them beyond their head.
//! Plain threads: the test crate has no runtime, and a proxy must not share maestro's.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What happens to a request that a rule picks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forwarded after this pause.
    Delay(Duration),
    /// Never forwarded, never answered; the connection stays open (an engine that accepts
    /// and never answers, when every request is picked).
    Silent,
    /// Forwarded, so the engine does it; its answer never comes back.
    Lost,
    /// Forwarded; the head of the answer and part of its body come back, then nothing
    /// more while the connection stays open.
    Cut,
    /// The connection is reset (TCP RST) instead.
    Reset,
    /// The connection is closed (FIN) instead, the request unanswered.
    Drop,
}

type Matcher = Box<dyn Fn(&str) -> bool + Send + Sync>;

struct Rule {
    matches: Matcher,
    fault: Fault,
    /// How many more requests it picks (`None`: every one).
    left: Option<usize>,
}

#[derive(Default)]
struct Shared {
    rules: Mutex<Vec<Rule>>,
    /// Every request line seen, with the fault it met.
    log: Mutex<Vec<String>>,
}

pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
    closed: Arc<AtomicBool>,
}

/// What the answer side of a connection does with what the engine sends.
const PASS: u8 = 0;
const DISCARD: u8 = 1;
const CUT: u8 = 2;
/// The connection is being reset: the answer side lets go of it without a FIN.
const RESET: u8 = 3;

impl Proxy {
    /// Listens on a free loopback port; passes everything until told otherwise.
    pub fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let closed = Arc::new(AtomicBool::new(false));
        let (s, c) = (shared.clone(), closed.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if c.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let s = s.clone();
                std::thread::spawn(move || connection(client, &s));
            }
        });
        Proxy {
            port,
            shared,
            closed,
        }
    }

    /// From now on, requests whose line `matches` meet `fault` (the first `times` of them,
    /// or all with `None`). Rules are tried in the order given.
    pub fn fault(
        &self,
        matches: impl Fn(&str) -> bool + Send + Sync + 'static,
        fault: Fault,
        times: Option<usize>,
    ) {
        self.shared.rules.lock().unwrap().push(Rule {
            matches: Box::new(matches),
            fault,
            left: times,
        });
    }

    /// Every request passes again.
    pub fn clear(&self) {
        self.shared.rules.lock().unwrap().clear();
    }

    /// The request lines seen so far, each with the fault it met.
    pub fn seen(&self) -> Vec<String> {
        self.shared.log.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        // Wakes the accepting thread, which then ends.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// The fault for a request line, if a rule picks it.
fn pick(shared: &Shared, line: &str) -> Option<Fault> {
    let mut rules = shared.rules.lock().unwrap();
    let rule = rules
        .iter_mut()
        .find(|r| r.left != Some(0) && (r.matches)(line))?;
    if let Some(left) = &mut rule.left {
        *left -= 1;
    }
    Some(rule.fault)
}

/// `POST /v1.41/containers/create?…` as `POST /containers/create?…`.
fn without_version(line: &str) -> String {
    let mut words = line.split(' ');
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let target = match target.strip_prefix("/v") {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => {
            rest.find('/').map_or(target, |slash| &rest[slash..])
        }
        _ => target,
    };
    format!("{method} {target}")
}

/// One client connection: requests are read here, answers relayed by a second thread.
fn connection(mut client: TcpStream, shared: &Shared) {
    let Ok(mut upstream) = UnixStream::connect("/var/run/docker.sock") else {
        return;
    };
    let answers = Arc::new(AtomicU8::new(PASS));
    {
        let (mut from, mut to) = (upstream.try_clone().unwrap(), client.try_clone().unwrap());
        let answers = answers.clone();
        std::thread::spawn(move || relay_answers(&mut from, &mut to, &answers));
    }
    let mut buffer = vec![0u8; 256 * 1024];
    let mut raw = false;
    loop {
        if raw {
            // After an upgrade (an exec's attached stream), bytes are bytes.
            match client.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if upstream.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
            }
            continue;
        }
        // The head is peeked, not read, so that a reset finds it unread: closing a socket
        // with unread data is what makes the kernel send RST.
        let head_length = loop {
            match client.peek(&mut buffer) {
                Ok(0) | Err(_) => return finish(&client, &upstream),
                Ok(n) => {
                    if let Some(end) = find(&buffer[..n], b"\r\n\r\n") {
                        break end + 4;
                    }
                    if n == buffer.len() {
                        return finish(&client, &upstream);
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_length]).into_owned();
        let line = without_version(head.lines().next().unwrap_or(""));
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (key, value) = l.split_once(':')?;
                key.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_owned())
            })
        };
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        raw = header("upgrade").is_some();
        let fault = pick(shared, &line);
        shared
            .log
            .lock()
            .unwrap()
            .push(format!("{line} -> {fault:?}"));
        if fault == Some(Fault::Reset) {
            // Closed with the request unread, by both threads and without a shutdown:
            // the kernel sends RST.
            answers.store(RESET, Ordering::SeqCst);
            let _ = upstream.shutdown(Shutdown::Both);
            return;
        }
        // The request, head and body.
        let mut request = vec![0u8; head_length + length];
        if client.read_exact(&mut request).is_err() {
            break;
        }
        match fault {
            Some(Fault::Silent) => {
                // Swallows this and everything after it until the client gives up.
                while matches!(client.read(&mut buffer), Ok(1..)) {}
                break;
            }
            Some(Fault::Drop) => break,
            Some(Fault::Delay(pause)) => std::thread::sleep(pause),
            Some(Fault::Lost) => answers.store(DISCARD, Ordering::SeqCst),
            Some(Fault::Cut) => answers.store(CUT, Ordering::SeqCst),
            _ => {}
        }
        if upstream.write_all(&request).is_err() {
            break;
        }
    }
    finish(&client, &upstream);
}

fn finish(client: &TcpStream, upstream: &UnixStream) {
    let _ = client.shutdown(Shutdown::Both);
    let _ = upstream.shutdown(Shutdown::Both);
}

/// Relays the engine's answers to the client, as the request side says: all of them, none
/// from now on, or the head and a few bytes of the next one and then none.
fn relay_answers(from: &mut UnixStream, to: &mut TcpStream, mode: &AtomicU8) {
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let send = match mode.load(Ordering::SeqCst) {
            PASS => n,
            CUT => {
                mode.store(DISCARD, Ordering::SeqCst);
                // The head, and half of the body that came with it (at most 16 bytes):
                // even a body of three bytes is cut.
                find(&buffer[..n], b"\r\n\r\n").map_or(n / 2, |end| {
                    let body = n - (end + 4);
                    end + 4 + (body / 2).min(16)
                })
            }
            _ => 0,
        };
        if to.write_all(&buffer[..send]).is_err() {
            break;
        }
    }
    if mode.load(Ordering::SeqCst) != RESET {
        let _ = to.shutdown(Shutdown::Both);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
