//! `logs`.

use super::*;
use crate::engine::{From, LogLine, Starts};

/// `logs`: the output of one or more instances; with several, each line is prefixed with
/// the instance's name.
pub(super) async fn logs<E: Engine>(
    ctx: &Context<E>,
    things: &[String],
    follow: bool,
    lines: Option<u64>,
    raw: bool,
) -> u8 {
    // On a terminal, a container's output must not be able to drive it (retitle, clear,
    // rewrite lines): its control characters are shown as escapes, unless --raw.
    let escape = !raw && output::stdout_is_terminal();
    let shown = |line: &str| -> String {
        if escape {
            output::visible(line).into_owned()
        } else {
            line.to_owned()
        }
    };
    let selection = match maestro_core::graph::select(&ctx.env, things, true) {
        Ok(s) if !s.is_empty() => s,
        Ok(_) => {
            output::eprint("error: name the instances (or services) whose logs to show\n");
            return EXIT_INVALID;
        }
        Err(e) => {
            output::eprint(&format!("error: {e}\n"));
            return EXIT_INVALID;
        }
    };
    if follow {
        return follow_logs(ctx, &selection, lines, shown).await;
    }
    let prefix = selection.len() > 1;
    let width = selection
        .iter()
        .map(|&i| ctx.env.instance(i).name.len())
        .max()
        .unwrap_or(0);
    let mut code = 0;
    for id in selection {
        let instance = ctx.env.instance(id);
        let engine = &ctx.engines[instance.ship.0];
        match engine.inspect(&instance.name).await {
            Ok(Some(o)) => match engine.logs(&o.id, lines).await {
                Ok(text) => {
                    let mut out = String::new();
                    for line in text {
                        let line = shown(&line);
                        if prefix {
                            out.push_str(&format!("{:width$} | {line}\n", instance.name));
                        } else {
                            out.push_str(&line);
                            out.push('\n');
                        }
                    }
                    if output::print(&out).is_err() {
                        // Nobody reads any more (the failure decides the exit code).
                        break;
                    }
                }
                Err(e) => {
                    output::eprint(&format!("error: {}: {e}\n", instance.name));
                    code = EXIT_FAILURE;
                }
            },
            Ok(None) => {
                output::eprint(&format!(
                    "error: {} has no container on ship {}\n",
                    instance.name,
                    ctx.env.ship(instance.ship).name
                ));
                code = EXIT_FAILURE;
            }
            Err(e) => {
                output::eprint(&format!("error: {}: {e}\n", instance.name));
                code = EXIT_FAILURE;
            }
        }
    }
    code
}

/// What an instance's follower tells.
enum Told {
    /// A line of output.
    Line(String),
    /// What happened to the containers followed (on stderr, so that the output stays the
    /// containers' own).
    Notice(String),
    /// Why this instance can no longer be followed.
    Error(String),
}

/// `logs -F`: every selected instance's output as it comes, each line prefixed with the
/// instance's name (coloured on a terminal) when there are several; until Ctrl-C. An
/// instance is followed across restarts and replacements: when its container ends, the
/// next container to start under its name is followed (see [`follow_instance`]).
pub(super) async fn follow_logs<E: Engine>(
    ctx: &Context<E>,
    selection: &[InstanceId],
    tail: Option<u64>,
    shown: impl Fn(&str) -> String,
) -> u8 {
    const COLORS: [&str; 6] = ["36", "33", "35", "32", "34", "31"];
    let color = output::stdout_is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let prefix = selection.len() > 1;
    let width = selection
        .iter()
        .map(|&i| ctx.env.instance(i).name.len())
        .max()
        .unwrap_or(0);
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<(usize, Told)>(1024);
    let mut tasks = tokio::task::JoinSet::new();
    for (n, &id) in selection.iter().enumerate() {
        let instance = ctx.env.instance(id);
        let engine = ctx.engines[instance.ship.0].clone();
        let name = instance.name.clone();
        let ship = ctx.env.ship(instance.ship).name.clone();
        let sender = sender.clone();
        tasks.spawn(async move {
            let tell = |told: Told| {
                let sender = sender.clone();
                async move { sender.send((n, told)).await.is_ok() }
            };
            if let Err(e) = follow_instance(engine.as_ref(), &name, &ship, tail, &tell).await {
                tell(Told::Error(e)).await;
            }
        });
    }
    drop(sender);
    let mut code = 0;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            item = receiver.recv() => {
                // Every follower gave up (each said why).
                let Some((n, item)) = item else { break };
                let name = &ctx.env.instance(selection[n]).name;
                match item {
                    Told::Line(line) if prefix => {
                        let line = shown(&line);
                        let label = format!("{name:width$}");
                        let label = if color { format!("\x1b[{}m{label}\x1b[0m", COLORS[n % COLORS.len()]) } else { label };
                        if output::print(&format!("{label} | {line}\n")).is_err() {
                            break;
                        }
                    }
                    Told::Line(line) => {
                        if output::print(&format!("{}\n", shown(&line))).is_err() {
                            break;
                        }
                    }
                    Told::Notice(notice) => output::eprint(&format!("{notice}\n")),
                    Told::Error(e) => {
                        output::eprint(&format!("error: {name}: {e}\n"));
                        code = EXIT_FAILURE;
                    }
                }
            }
            _ = &mut ctrl_c => {
                tasks.abort_all();
                return EXIT_INTERRUPTED;
            }
        }
    }
    code
}

/// Follows one instance until the engine fails, as MaestroNG's `logs -F` does: when its
/// container ends, it waits for a container to start under the instance's name (learnt from
/// the engine's events, not by polling) and follows it: a container followed before (started
/// again, or put back by a rollback) from where its output was shown up to, a new one (a
/// `restart`, a `deploy`) from its beginning. A new container that takes the name while the
/// followed one still runs (renamed) is followed at once. `Err` says why it cannot go on.
async fn follow_instance<E, T, F>(
    engine: &E,
    name: &str,
    ship: &str,
    tail: Option<u64>,
    tell: &T,
) -> Result<(), String>
where
    E: Engine,
    T: Fn(Told) -> F + Sync,
    F: std::future::Future<Output = bool> + Send,
{
    let (starts_sender, mut starts) = tokio::sync::mpsc::channel(64);
    let watch = engine.watch_starts(name, starts_sender);
    let follow = async {
        // From here on no start is missed: whatever is looked at after a start is told is
        // at least as new as that start.
        if starts.recv().await != Some(Starts::Watching) {
            return std::future::pending().await;
        }
        // Each container followed so far, with the engine's time of the last line shown
        // (or else of when it ended): started again, it is followed from there.
        let mut seen: HashMap<String, Option<i64>> = HashMap::new();
        let mut first = true;
        // Whether to wait for a start before looking at the instance's container again.
        let mut wait = false;
        loop {
            let woken = wait;
            if wait && starts.recv().await.is_none() {
                // The watch ended: it says why.
                return std::future::pending().await;
            }
            let Some(found) = engine.inspect(name).await.map_err(|e| e.to_string())? else {
                if first && !woken {
                    tell(Told::Notice(format!(
                        "{name} has no container on ship {ship}; waiting for one to start..."
                    )))
                    .await;
                }
                wait = true;
                continue;
            };
            // Not running, and nothing started since it was last looked at: nothing new.
            if !first && !found.running && !woken {
                wait = true;
                continue;
            }
            let short = tasks::short(&found.id).to_owned();
            let known = seen.get(&found.id).copied();
            let from = match (first, known) {
                (true, _) => From::Tail(tail),
                (false, Some(Some(at))) => From::After(at),
                (false, _) => From::Tail(None),
            };
            // Said before its first line: at once for a running container; for one that
            // started and ended before it was looked at, only if it said something.
            let mut announce = match (first, known) {
                (true, _) => None,
                (false, Some(_)) => Some(format!(
                    "{name}: container {short} started again; following it"
                )),
                (false, None) => Some(format!("{name}: following the new container {short}")),
            };
            if found.running {
                if let Some(notice) = announce.take() {
                    tell(Told::Notice(notice)).await;
                }
            }
            let mut shown_to = known.flatten();
            let mut shown = false;
            let mut renamed = false;
            let (lines, mut incoming) = tokio::sync::mpsc::channel::<LogLine>(256);
            let stream = engine.follow(&found.id, from, lines);
            tokio::pin!(stream);
            let mut show = async |line: LogLine, announce: &mut Option<String>| {
                if let Some(notice) = announce.take() {
                    tell(Told::Notice(notice)).await;
                }
                shown_to = line.at.or(shown_to);
                shown = true;
                tell(Told::Line(line.text)).await
            };
            let ended = loop {
                tokio::select! {
                    Some(line) = incoming.recv() => {
                        if !show(line, &mut announce).await {
                            return Ok(());
                        }
                    }
                    result = &mut stream => break result,
                    start = starts.recv() => match start {
                        Some(Starts::Started(id)) if id != found.id => {
                            // Another container has the name: the followed one was renamed
                            // or removed. While it still runs, its output is not this
                            // instance's any more; once stopped, its stream ends by itself.
                            let old = engine.inspect(&found.id).await.ok().flatten();
                            if let Some(old) = old.filter(|o| o.running) {
                                tell(Told::Notice(format!(
                                    "{name}: container {short}, still running, is now named {}; no longer followed",
                                    old.name
                                )))
                                .await;
                                renamed = true;
                                break Ok(());
                            }
                        }
                        Some(_) => {}
                        None => return std::future::pending().await,
                    },
                }
            };
            while let Ok(line) = incoming.try_recv() {
                if !show(line, &mut announce).await {
                    return Ok(());
                }
            }
            wait = false;
            if renamed {
                seen.insert(found.id.clone(), shown_to);
                first = false;
                continue;
            }
            let now = engine.inspect(&found.id).await.ok().flatten();
            let how = match (&now, &ended) {
                (_, Err(e)) => format!(" ({e})"),
                (None, _) => ", removed".to_owned(),
                (Some(c), _) => {
                    let code = c
                        .exit_code
                        .map(|c| format!(" (exit code {c})"))
                        .unwrap_or_default();
                    match c.name != name {
                        true => format!("{code}, now named {}", c.name),
                        false => code,
                    }
                }
            };
            if first && !found.running {
                tell(Told::Notice(format!(
                    "{name}: container {short} is not running{how}; waiting for it, or a new container named {name}, to start..."
                )))
                .await;
            } else if found.running || shown {
                tell(Told::Notice(format!(
                    "{name}: container {short} ended{how}; waiting for a container named {name} to start..."
                )))
                .await;
            }
            seen.insert(
                found.id.clone(),
                shown_to.or(now.and_then(|c| c.finished_at)),
            );
            first = false;
        }
    };
    tokio::select! {
        result = watch => match result {
            Ok(()) => Ok(()),
            Err(e) => Err(format!("cannot watch for its containers' starts: {e}")),
        },
        result = follow => result,
    }
}
