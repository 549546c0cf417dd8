//! `maestro-guest`, the small static agent maestro runs inside containers: the entry
//! point, which maps a parsed command line to a handler and its outcome to an exit
//! status (0 answered, 1 failed, 2 unusable command line).

mod addr;
mod args;
mod commands;
mod env;
mod format;
mod health;
mod output;
mod render;
mod report;
mod run;

use std::ffi::OsString;
use std::process::ExitCode;

use args::Parsed;
use commands::{COMMANDS, FAILED, Handler, USAGE};

fn main() -> ExitCode {
    let argv: Result<Vec<String>, OsString> = std::env::args_os()
        .skip(1)
        .map(OsString::into_string)
        .collect();
    let Ok(argv) = argv else {
        output::usage_error(
            "arguments must be valid UTF-8",
            &args::usage_hint::<Handler>(None),
        );
        return ExitCode::from(USAGE);
    };
    let written = match args::parse(COMMANDS, &argv) {
        Err(err) => {
            output::usage_error(&err.message, &args::usage_hint(err.spec));
            return ExitCode::from(USAGE);
        }
        Ok(Parsed::Help(None)) => output::stdout(&args::program_help(commands::ABOUT, COMMANDS)),
        Ok(Parsed::Help(Some(spec))) => output::stdout(&args::command_help(spec)),
        Ok(Parsed::Version) => output::stdout(&format!(
            "{} {}\n",
            args::PROGRAM,
            env!("CARGO_PKG_VERSION")
        )),
        Ok(Parsed::Run(spec, invocation)) => {
            let handler = match spec.handler {
                Handler::Query(handler) => handler,
                Handler::Process(process) => {
                    return ExitCode::from(process(&invocation, &env::ProcessEnv::capture()));
                }
            };
            match handler(&invocation, &env::ProcessEnv::capture()) {
                Ok(lines) => output::answer(&lines),
                Err(message) => {
                    output::error(&message);
                    return ExitCode::from(FAILED);
                }
            }
        }
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            output::error(&format!("cannot write to standard output: {err}"));
            ExitCode::from(FAILED)
        }
    }
}
