//! `health`: the app's state as `run` knows it, for a Docker `HEALTHCHECK` in an image
//! with no curl. `run` answers on an abstract Unix socket (no writable file system needed,
//! any UID); `health` asks it and exits 0 only when the app is ready.

use std::io::{Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::sync::{Arc, Mutex};

use guestutils::Vars;

/// The socket's name: per container, since containers sharing the host's network
/// namespace share its abstract sockets too.
fn name(vars: &impl Vars) -> String {
    match vars.var("CONTAINER_NAME").filter(|n| !n.is_empty()) {
        Some(container) => format!("maestro-guest/health/{container}"),
        None => "maestro-guest/health".to_owned(),
    }
}

/// The state `run` shows: `starting`, `ready`, `failed: REASON` or `stopping`.
#[derive(Clone, Default)]
pub struct Shared(Arc<Mutex<String>>);

impl Shared {
    pub fn set(&self, state: impl Into<String>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = state.into();
    }

    fn get(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Serves `state` to `health` until the process ends. A second `run` in the same
/// container (or a name already taken) only loses the health answers, with a warning.
pub fn serve(vars: &impl Vars, state: Shared) {
    let listener = SocketAddr::from_abstract_name(name(vars).as_bytes())
        .and_then(|addr| UnixListener::bind_addr(&addr))
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .and_then(tokio::net::UnixListener::from_std);
    let listener = match listener {
        Ok(listener) => listener,
        Err(e) => {
            crate::output::error(&format!(
                "cannot serve 'maestro-guest health' ({e}); health checks will fail"
            ));
            return;
        }
    };
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut stream, _)) = listener.accept().await {
            let answer = format!("{}\n", state.get());
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
}

/// The `health` command: `Ok` with the state when ready, else the state or the reason it
/// cannot be known.
pub fn check(vars: &impl Vars) -> Result<String, String> {
    let ask = || -> std::io::Result<String> {
        let addr = SocketAddr::from_abstract_name(name(vars).as_bytes())?;
        let mut stream = UnixStream::connect_addr(&addr)?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
        stream.flush()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer.trim_end().to_owned())
    };
    match ask() {
        Ok(state) if state == "ready" => Ok(state),
        Ok(state) => Err(format!("not ready: {state}")),
        Err(e) => Err(format!(
            "no answer from 'maestro-guest run' in this container ({e}); is it the entry point?"
        )),
    }
}
