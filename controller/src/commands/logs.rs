//! `logs`.

use super::*;

/// `logs`: the output of one or more instances; with several, each line is prefixed with
/// the instance's name.
pub(super) async fn logs<E: Engine>(
    ctx: &Context<E>,
    things: &[String],
    follow: bool,
    lines: Option<u64>,
) -> u8 {
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
        return follow_logs(ctx, &selection, lines).await;
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
                        if prefix {
                            out.push_str(&format!("{:width$} | {line}\n", instance.name));
                        } else {
                            out.push_str(&line);
                            out.push('\n');
                        }
                    }
                    let _ = output::print(&out);
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

/// `logs -F`: every selected instance's output as it comes, each line prefixed with the
/// instance's name (coloured on a terminal) when there are several; until every stream
/// ends or Ctrl-C.
pub(super) async fn follow_logs<E: Engine>(
    ctx: &Context<E>,
    selection: &[InstanceId],
    tail: Option<u64>,
) -> u8 {
    const COLORS: [&str; 6] = ["36", "33", "35", "32", "34", "31"];
    let color = output::stdout_is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let prefix = selection.len() > 1;
    let width = selection
        .iter()
        .map(|&i| ctx.env.instance(i).name.len())
        .max()
        .unwrap_or(0);
    let (sender, mut receiver) =
        tokio::sync::mpsc::channel::<(usize, Result<String, String>)>(1024);
    let mut tasks = tokio::task::JoinSet::new();
    for (n, &id) in selection.iter().enumerate() {
        let instance = ctx.env.instance(id);
        let engine = ctx.engines[instance.ship.0].clone();
        let name = instance.name.clone();
        let sender = sender.clone();
        tasks.spawn(async move {
            let container = match engine.inspect(&name).await {
                Ok(Some(o)) => o.id,
                Ok(None) => {
                    let _ = sender
                        .send((n, Err(format!("{name} has no container"))))
                        .await;
                    return;
                }
                Err(e) => {
                    let _ = sender.send((n, Err(e.to_string()))).await;
                    return;
                }
            };
            let (lines, mut incoming) = tokio::sync::mpsc::channel(256);
            let forward = async {
                while let Some(line) = incoming.recv().await {
                    if sender.send((n, Ok(line))).await.is_err() {
                        break;
                    }
                }
            };
            let (result, ()) = tokio::join!(engine.follow(&container, tail, lines), forward);
            if let Err(e) = result {
                let _ = sender.send((n, Err(e.to_string()))).await;
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
                let Some((n, item)) = item else { break };
                let name = &ctx.env.instance(selection[n]).name;
                match item {
                    Ok(line) if prefix => {
                        let label = format!("{name:width$}");
                        let label = if color { format!("\x1b[{}m{label}\x1b[0m", COLORS[n % COLORS.len()]) } else { label };
                        let _ = output::print(&format!("{label} | {line}\n"));
                    }
                    Ok(line) => {
                        let _ = output::print(&format!("{line}\n"));
                    }
                    Err(e) => {
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
