//! `maestro`: the binary edge. Parses the command line, loads the environment, runs the
//! command and maps the outcome to an exit code.

mod audit;
mod cli;
mod commands;
mod complete;
mod credentials;
mod engine;
mod failpoint;
mod http;
mod load;
mod lock;
mod output;
mod play;
mod readiness;
mod secrets;

use std::collections::BTreeMap;
use std::process::ExitCode;

use cli::Command;

// Exit codes: 0 success, 1 a play or command failed, 2 the command line or the
// environment file is invalid, 130 interrupted.
use commands::EXIT_INVALID;

/// A large environment is millions of small allocations (YAML nodes, names, variables):
/// mimalloc keeps them in less memory and time than the system's malloc (Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Before anything else: a completion request must get nothing but its answer.
    complete::answer_if_asked();
    let cli = cli::parse();
    // Before anything opens a file: thousands of instances need more than the usual 1024.
    engine::files::raise_limit();
    if let Command::Completions { shell } = cli.command {
        return finish(output::print(&String::from_utf8_lossy(&complete::script(
            shell,
        ))));
    }

    let process_env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let loaded = load::load(&cli.file, &process_env);
    if !loaded.diagnostics.is_empty() {
        output::eprint(&output::render_diagnostics(
            &loaded.diagnostics,
            &loaded.source,
            output::stderr_colors(),
        ));
    }
    let Some(env) = loaded.environment else {
        return ExitCode::from(EXIT_INVALID);
    };

    let code = match cli.command {
        Command::Config if cli.json => {
            let pretty = output::stdout_is_terminal();
            finish(output::print_with(|out| {
                output::write_config_json(&env, out, pretty)
            }))
        }
        Command::Config => finish(output::print_with(|out| {
            output::write_config_yaml(&env, out)
        })),
        Command::Deptree { things, recursive } => {
            let roots = if things.is_empty() {
                (0..env.services.len())
                    .map(maestro_core::model::ServiceId)
                    .filter(|s| !env.service(*s).omit)
                    .collect()
            } else {
                let mut roots = Vec::new();
                for thing in &things {
                    match (env.service_by_name(thing), env.instance_by_name(thing)) {
                        (Some(s), _) => roots.push(s),
                        (None, Some(i)) => roots.push(env.instance(i).service),
                        (None, None) => {
                            let names = env
                                .services
                                .iter()
                                .map(|s| s.name.as_str())
                                .chain(env.instances.iter().map(|i| i.name.as_str()));
                            output::eprint(&format!(
                                "error: {thing:?} is neither a service nor an instance; {}\n",
                                maestro_core::diag::suggestion(thing, names)
                            ));
                            return ExitCode::from(EXIT_INVALID);
                        }
                    }
                }
                roots
            };
            finish(output::print_with(|out| {
                output::write_deptree(&env, &roots, recursive, out)
            }))
        }
        Command::Completions { .. } => unreachable!("handled before loading"),
        play => {
            let json = cli.json;
            let base_dir = loaded.source.base_dir.clone();
            return ExitCode::from(output::exit_code(commands::run(
                env,
                base_dir,
                play,
                json,
                readiness::Settings {
                    listen: cli.readiness,
                    tls: cli.readiness_tls,
                },
            )));
        }
    };
    // The process ends here: freeing a large model piece by piece would only cost time.
    std::mem::forget(env);
    code
}

/// The exit code of a command that only prints: whether its output was written.
fn finish(result: std::io::Result<()>) -> ExitCode {
    // print_with kept the failure, if any; exit_code reports it.
    let _ = result;
    ExitCode::from(output::exit_code(0))
}
