//! The readiness server against misbehaving clients, on loopback: real reports are answered
//! while idle, slow and oversized clients are cut off within their bounds.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Limits, MAX_REPORT, Server, Tls};
use crate::readiness::{Word, pb, token};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn limits() -> Limits {
    Limits {
        connections: 100,
        handshake: Duration::from_millis(500),
        idle: Duration::from_secs(1),
    }
}

async fn serve(limits: Limits, tls: Option<Tls>) -> (Server, SocketAddr) {
    let (server, warnings) = Server::start([LOOPBACK], tls, limits).await;
    assert!(warnings.is_empty(), "{warnings:?}");
    let endpoint = server.endpoint(LOOPBACK).unwrap();
    let address = endpoint.split_once("://").unwrap().1.parse().unwrap();
    (server, address)
}

/// One report of `instance`, as the guest sends it, over a connection of its own.
async fn report(
    endpoint: &str,
    instance: &str,
    token: &str,
    status: String,
) -> Result<pb::Ack, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("cannot connect: {e:?}")))?;
    let mut client = pb::readiness_client::ReadinessClient::new(channel);
    let report = pb::StateReport {
        instance: instance.into(),
        token: token.into(),
        sequence: 1,
        state: Some(pb::state_report::State::Ready(pb::Ready { took_ms: 1 })),
        status,
    };
    client.report(report).await.map(tonic::Response::into_inner)
}

/// Whether the server closes the connection within `bound` (whatever it sends first, its
/// HTTP/2 settings, is read and dropped).
async fn closed_within(stream: &mut (impl AsyncRead + Unpin), bound: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(bound, async {
        while let Ok(1..) = stream.read(&mut buf).await {}
    })
    .await
    .is_ok()
}

/// Whether the server has not closed `stream` (yet).
fn still_open(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match stream.try_read(&mut buf) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn a_partial_preface_or_a_never_ending_frame_is_cut_off_within_the_handshake_bound() {
    let limits = limits();
    let (_server, address) = serve(limits, None).await;
    // Connected, and silent.
    let mut silent = TcpStream::connect(address).await.unwrap();
    // Half the HTTP/2 preface, then nothing.
    let mut partial = TcpStream::connect(address).await.unwrap();
    partial.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    // The preface and empty settings, then a HEADERS frame announced at 16 KiB (the
    // largest allowed) whose bytes come one every 50 ms: the client is never idle.
    let (mut endless, mut endless_writes) = TcpStream::connect(address).await.unwrap().into_split();
    endless_writes
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    endless_writes
        .write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    endless_writes
        .write_all(&[0, 0x40, 0, 1, 4, 0, 0, 0, 1])
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        while endless_writes.write_all(&[0]).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let bound = limits.handshake + Duration::from_millis(500);
    assert!(closed_within(&mut silent, bound).await, "a silent client");
    assert!(
        closed_within(&mut partial, bound).await,
        "a partial preface"
    );
    assert!(
        closed_within(&mut endless, bound).await,
        "a never-ending frame"
    );
    trickle.abort();
}

#[tokio::test]
async fn a_guests_connection_is_closed_once_idle_and_its_next_report_reconnects() {
    let limits = limits();
    let (server, _) = serve(limits, None).await;
    let endpoint = server.endpoint(LOOPBACK).unwrap().to_owned();
    let mut waiting = server.registry.expect("db-1", token().unwrap());
    // One channel for all reports, connected on first use, as the guest has it.
    let channel = tonic::transport::Endpoint::from_shared(endpoint)
        .unwrap()
        .connect_lazy();
    let mut client = pb::readiness_client::ReadinessClient::new(channel);
    let report = |sequence, state| pb::StateReport {
        instance: "db-1".into(),
        token: waiting.token.clone(),
        sequence,
        state: Some(state),
        status: String::new(),
    };
    let starting = report(1, pb::state_report::State::Starting(pb::Starting {}));
    let ready = report(2, pb::state_report::State::Ready(pb::Ready { took_ms: 1 }));
    assert!(client.report(starting).await.unwrap().into_inner().accepted);
    assert_eq!(server.open_connections(), 1);
    tokio::time::sleep(limits.idle + Duration::from_millis(300)).await;
    assert_eq!(server.open_connections(), 0);
    assert!(client.report(ready).await.unwrap().into_inner().accepted);
    assert!(matches!(
        waiting.words.try_recv(),
        Ok(Word::Starting { .. })
    ));
    assert!(matches!(waiting.words.try_recv(), Ok(Word::Ready { .. })));
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_cut_off_within_the_handshake_bound() {
    let limits = limits();
    let (_server, address) = serve(limits, Some(Tls::ephemeral().unwrap())).await;
    let mut silent = TcpStream::connect(address).await.unwrap();
    let mut partial = TcpStream::connect(address).await.unwrap();
    // The start of a TLS record header (a handshake record), never finished.
    partial.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let bound = limits.handshake + Duration::from_millis(500);
    assert!(closed_within(&mut silent, bound).await, "a silent client");
    assert!(
        closed_within(&mut partial, bound).await,
        "a partial handshake"
    );
}

#[tokio::test]
async fn a_report_larger_than_the_bound_is_refused() {
    let (server, _) = serve(limits(), None).await;
    let endpoint = server.endpoint(LOOPBACK).unwrap().to_owned();
    let mut waiting = server.registry.expect("big-1", token().unwrap());
    let too_big = report(&endpoint, "big-1", &waiting.token, "x".repeat(MAX_REPORT))
        .await
        .unwrap_err();
    assert_eq!(too_big.code(), tonic::Code::OutOfRange, "{too_big:?}");
    assert!(waiting.words.try_recv().is_err());
    // A report of the largest size a guest sends goes through.
    let fits = report(
        &endpoint,
        "big-1",
        &waiting.token,
        "x".repeat(MAX_REPORT - 200),
    )
    .await
    .unwrap();
    assert!(fits.accepted, "{fits:?}");
    assert!(matches!(waiting.words.try_recv(), Ok(Word::Ready { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_reports_are_answered_while_2000_idle_connections_are_attempted() {
    crate::engine::files::raise_limit();
    let limits = Limits {
        connections: 500,
        handshake: Duration::from_secs(2),
        idle: Duration::from_secs(2),
    };
    let (server, address) = serve(limits, None).await;
    let endpoint = server.endpoint(LOOPBACK).unwrap().to_owned();
    const FLOOD: usize = 2000;
    let attempted = Arc::new(AtomicUsize::new(0));
    // Connections that never say a word, held open by the client: 100 every 25 ms, so the
    // flood lasts half a second at least.
    let flood = tokio::spawn({
        let attempted = attempted.clone();
        async move {
            let mut held = Vec::new();
            for n in 1..=FLOOD {
                if let Ok(Ok(stream)) =
                    tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(address)).await
                {
                    held.push(stream);
                }
                attempted.store(n, Ordering::SeqCst);
                if n % 100 == 0 {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }
            held
        }
    });
    // Real reports once the flood has more connections open than the server holds, until
    // it is over (and twenty at least).
    while attempted.load(Ordering::SeqCst) < 2 * limits.connections {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut during = 0;
    for n in 0.. {
        let flooding = attempted.load(Ordering::SeqCst) < FLOOD;
        if !flooding && n >= 20 {
            break;
        }
        let instance = format!("real-{n}");
        let mut waiting = server.registry.expect(&instance, token().unwrap());
        let sent = Instant::now();
        let ack = report(&endpoint, &instance, &waiting.token, String::new())
            .await
            .unwrap_or_else(|e| panic!("report {n} unanswered during the flood: {e:?}"));
        assert!(ack.accepted, "{ack:?}");
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "report {n} took {:?}",
            sent.elapsed()
        );
        assert!(matches!(waiting.words.try_recv(), Ok(Word::Ready { .. })));
        during += usize::from(flooding);
    }
    let held = flood.await.unwrap();
    assert!(during > 0, "no report went out during the flood");
    assert!(
        held.len() > FLOOD / 2,
        "only {} connections made",
        held.len()
    );
    // The server holds no more connections than its limit: it closed the oldest idle ones
    // to make room...
    tokio::time::sleep(Duration::from_millis(200)).await;
    let open = held.iter().filter(|s| still_open(s)).count();
    assert!(
        open <= limits.connections,
        "{open} of {} idle connections still open",
        held.len()
    );
    // ...and closes the rest once they have been silent for the handshake bound.
    tokio::time::sleep(limits.handshake + Duration::from_millis(500)).await;
    let open = held.iter().filter(|s| still_open(s)).count();
    assert_eq!(open, 0, "idle connections still open after the bound");
}
