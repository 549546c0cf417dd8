//! The sd_notify protocol (systemd's `sd_notify(3)`): the app sends datagrams of
//! newline-separated `KEY=VALUE` assignments to the socket named in `NOTIFY_SOCKET`. The
//! guest listens on an abstract socket (`@name`), which needs no writable file system and
//! works under any UID, so systemd-aware apps work unchanged.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// What one datagram said, in the parts the guest acts on.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Notice {
    pub ready: bool,
    pub stopping: bool,
    pub reloading: bool,
    pub status: Option<String>,
    /// `ERRNO=`: the app's reason for failing, as an errno number.
    pub errno: Option<i32>,
}

/// Reads one datagram. Unknown keys (`MAINPID=`, `WATCHDOG=`, `FDSTORE=` ...) are ignored
/// as systemd ignores what it does not need.
pub fn parse(datagram: &[u8]) -> Notice {
    let text = String::from_utf8_lossy(datagram);
    let mut notice = Notice::default();
    for line in text.lines() {
        match line.split_once('=') {
            Some(("READY", "1")) => notice.ready = true,
            Some(("STOPPING", "1")) => notice.stopping = true,
            Some(("RELOADING", "1")) => notice.reloading = true,
            Some(("STATUS", status)) => notice.status = Some(status.to_owned()),
            Some(("ERRNO", errno)) => notice.errno = errno.trim().parse().ok(),
            _ => {}
        }
    }
    notice
}

/// The address a `NOTIFY_SOCKET` value names: `@name` for an abstract socket, else a path.
fn address(socket: &str) -> std::io::Result<SocketAddr> {
    match socket.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(socket),
    }
}

/// Binds a fresh abstract datagram socket; returns it and its `NOTIFY_SOCKET` value.
pub fn listen() -> std::io::Result<(tokio::net::UnixDatagram, String)> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!("maestro-guest/notify/{}/{nanos}", std::process::id());
    let socket = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes())?)?;
    socket.set_nonblocking(true)?;
    Ok((
        tokio::net::UnixDatagram::from_std(socket)?,
        format!("@{name}"),
    ))
}

/// Sends one datagram of `assignments` to `socket` (a `NOTIFY_SOCKET` value), as
/// `systemd-notify` does.
pub fn send(socket: &str, assignments: &[String]) -> std::io::Result<()> {
    let message = assignments.join("\n");
    UnixDatagram::unbound()?.send_to_addr(message.as_bytes(), &address(socket)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_are_read_line_by_line() {
        assert_eq!(
            parse(b"READY=1\nSTATUS=serving 3 shards\nMAINPID=7"),
            Notice {
                ready: true,
                status: Some("serving 3 shards".into()),
                ..Notice::default()
            }
        );
        assert_eq!(
            parse(b"STOPPING=1\nERRNO=28\n"),
            Notice {
                stopping: true,
                errno: Some(28),
                ..Notice::default()
            }
        );
        // READY must be exactly 1, as in systemd.
        assert_eq!(parse(b"READY=yes"), Notice::default());
        assert_eq!(parse(b"\xff\xfe"), Notice::default());
    }

    #[tokio::test]
    async fn a_sent_notice_arrives_on_the_abstract_socket() {
        let (socket, name) = listen().unwrap();
        assert!(name.starts_with('@'));
        send(&name, &["READY=1".into(), "STATUS=up".into()]).unwrap();
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).await.unwrap();
        let notice = parse(&buf[..n]);
        assert!(notice.ready);
        assert_eq!(notice.status.as_deref(), Some("up"));
    }
}
