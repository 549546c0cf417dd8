//! Following a container's output through bollard, and learning from the engine's events
//! when a container of a given name starts (`logs -F` goes on across restarts and
//! replacements).

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::EventMessage;
use bollard::query_parameters::{EventsOptions, LogsOptions};
use futures_util::StreamExt;
use tokio::sync::mpsc::Sender;

use super::docker::daemon;
use super::{EngineError, From, LogLine, Starts};

/// Sends the container's output line by line, each with the time the engine received it
/// (asked for with `timestamps`, so that a container started again can be followed from
/// exactly where its earlier output ended).
pub async fn follow(
    docker: &Docker,
    id: &str,
    from: From,
    lines: Sender<LogLine>,
) -> Result<(), EngineError> {
    let (tail, since, after) = match from {
        From::Tail(n) => (
            n.map_or_else(|| "all".to_owned(), |n| n.to_string()),
            0,
            None,
        ),
        // The API takes whole seconds: the rest of that second is dropped here.
        From::After(at) => (
            "all".to_owned(),
            i32::try_from(at.div_euclid(1_000_000_000)).unwrap_or(0),
            Some(at),
        ),
    };
    let options = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        timestamps: true,
        since,
        tail,
        ..Default::default()
    };
    let mut stream = docker.logs(id, Some(options));
    // Lines the engine received up to `after` were shown already.
    let new = |line: &LogLine| after.is_none_or(|after| line.at.is_none_or(|at| at > after));
    let mut reader = Lines::default();
    while let Some(chunk) = stream.next().await {
        for line in reader.push(&chunk.map_err(daemon)?.to_string()) {
            if !new(&line) {
                continue;
            }
            if lines.send(line).await.is_err() {
                return Ok(());
            }
        }
    }
    if let Some(line) = reader.rest() {
        if new(&line) {
            let _ = lines.send(line).await;
        }
    }
    Ok(())
}

/// Splits the engine's output into lines. Each message the engine sends begins with its
/// timestamp (RFC 3339); a message without a final newline is continued by the next one,
/// whose timestamp is dropped.
#[derive(Default)]
struct Lines {
    pending: String,
    at: Option<i64>,
}

impl Lines {
    fn push(&mut self, chunk: &str) -> Vec<LogLine> {
        let mut out = Vec::new();
        let mut rest = chunk;
        while !rest.is_empty() {
            let (stamp, text) = split_stamp(rest);
            if self.pending.is_empty() {
                self.at = stamp;
            }
            match text.split_once('\n') {
                Some((line, after)) => {
                    self.pending.push_str(line);
                    let text = std::mem::take(&mut self.pending);
                    out.push(LogLine {
                        text: text.trim_end_matches('\r').to_owned(),
                        at: self.at.take(),
                    });
                    rest = after;
                }
                None => {
                    self.pending.push_str(text);
                    rest = "";
                }
            }
        }
        out
    }

    fn rest(&mut self) -> Option<LogLine> {
        (!self.pending.is_empty()).then(|| LogLine {
            text: std::mem::take(&mut self.pending),
            at: self.at.take(),
        })
    }
}

/// The engine's timestamp at the head of a message, and the rest.
fn split_stamp(text: &str) -> (Option<i64>, &str) {
    text.split_once(' ')
        .and_then(|(stamp, rest)| Some((Some(super::health::unix_nanos(stamp)?), rest)))
        .unwrap_or((None, text))
}

/// Tells `starts` of each start of a container named `name` (see
/// [`super::Engine::watch_starts`]).
pub async fn watch_starts(
    docker: &Docker,
    name: &str,
    starts: Sender<Starts>,
) -> Result<(), EngineError> {
    // The engine's present, on its own clock: the events are asked from then on, so a
    // start while the subscription is being made is replayed, not missed (the daemon
    // answers `/events` before it registers the subscriber).
    let since = docker
        .info()
        .await
        .map_err(daemon)?
        .system_time
        .as_deref()
        .and_then(super::health::unix_time);
    // The engine matches `container` by prefix (of the id or the name): the name is
    // compared exactly below.
    let filters = HashMap::from([
        ("type".to_owned(), vec!["container".to_owned()]),
        ("event".to_owned(), vec!["start".to_owned()]),
        ("container".to_owned(), vec![name.to_owned()]),
    ]);
    let options = EventsOptions {
        since,
        until: None,
        filters: Some(filters),
    };
    let mut events = docker.events(Some(options));
    if starts.send(Starts::Watching).await.is_err() {
        return Ok(());
    }
    loop {
        tokio::select! {
            event = events.next() => match event {
                None => {
                    return Err(EngineError::Daemon("the engine's event stream ended".into()));
                }
                Some(Err(e)) => return Err(daemon(e)),
                Some(Ok(event)) => {
                    if let Some(id) = started(&event, name) {
                        if starts.send(Starts::Started(id)).await.is_err() {
                            return Ok(());
                        }
                    }
                }
            },
            () = starts.closed() => return Ok(()),
        }
    }
}

/// The id of the container an event says started under the name `name`.
fn started(event: &EventMessage, name: &str) -> Option<String> {
    let actor = event.actor.as_ref()?;
    let named = actor
        .attributes
        .as_ref()
        .and_then(|a| a.get("name"))
        .is_some_and(|n| n == name);
    (event.action.as_deref() == Some("start") && named)
        .then(|| actor.id.clone())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, at: Option<i64>) -> LogLine {
        LogLine {
            text: text.into(),
            at,
        }
    }

    #[test]
    fn messages_become_lines_with_their_times() {
        let mut lines = Lines::default();
        assert_eq!(
            lines.push("1970-01-01T00:00:01.5Z hello\n"),
            [line("hello", Some(1_500_000_000))]
        );
        // A message without its newline is continued by the next one.
        assert_eq!(lines.push("1970-01-01T00:00:02Z par"), []);
        assert_eq!(
            lines.push("1970-01-01T00:00:03Z tial\r\n1970-01-01T00:00:04Z \n"),
            [
                line("partial", Some(2_000_000_000)),
                line("", Some(4_000_000_000))
            ]
        );
        // Text without a timestamp is kept as it is.
        assert_eq!(lines.push("no stamp here"), []);
        assert_eq!(lines.rest(), Some(line("no stamp here", None)));
        assert_eq!(lines.rest(), None);
    }

    #[test]
    fn only_starts_under_the_exact_name_count() {
        let event = |action: &str, name: &str| EventMessage {
            action: Some(action.into()),
            actor: Some(bollard::models::EventActor {
                id: Some("abc".into()),
                attributes: Some(HashMap::from([("name".to_owned(), name.to_owned())])),
            }),
            ..Default::default()
        };
        assert_eq!(
            started(&event("start", "web-1"), "web-1"),
            Some("abc".into())
        );
        assert_eq!(started(&event("start", "web-10"), "web-1"), None);
        assert_eq!(started(&event("start", "web-1.retiring"), "web-1"), None);
        assert_eq!(started(&event("die", "web-1"), "web-1"), None);
    }
}
