//! Shell completion: the scripts `maestro completions SHELL` prints call maestro back with
//! the words of the command line being completed (clap_complete's dynamic completion), and
//! maestro answers with what fits, including the names of the services, instances and ships
//! of the environment file that command line names with `-f` (default `maestro.yaml`), as
//! MaestroNG's `complete` did. A file that cannot be read or is invalid gives no names, and
//! nothing is ever printed on stderr: completion must not write into the shell.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;

use clap::CommandFactory;
use clap_complete::engine::CompletionCandidate;
use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};

use maestro_core::model::Environment;

/// The variable that makes maestro answer a completion request instead of running (its
/// value names the shell). Maestro's own, so that another program's does not trigger it.
pub const VAR: &str = "MAESTRO_COMPLETE";

/// The environment file named by the command line being completed.
static FILE: OnceLock<PathBuf> = OnceLock::new();

/// Answers a completion request and exits, when this run is one (see [`VAR`]).
pub fn answer_if_asked() {
    if std::env::var_os(VAR).is_none_or(|v| v.is_empty() || v == "0") {
        return;
    }
    let args: Vec<OsString> = std::env::args_os().collect();
    let words: Vec<String> = args
        .iter()
        .skip_while(|a| *a != "--")
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let _ = FILE.set(file_named(&words));
    let current_dir = std::env::current_dir().ok();
    let answered = clap_complete::CompleteEnv::with_factory(crate::cli::Cli::command)
        .var(VAR)
        .bin("maestro")
        .try_complete(args, current_dir.as_deref());
    // Whatever went wrong, the shell just gets no completion (and no message).
    std::process::exit(match answered {
        Ok(true) => 0,
        Ok(false) | Err(_) => 1,
    });
}

/// The `-f`/`--file` the words of a command line give (the last one), else
/// `maestro.yaml`. `~/` is the home folder, as the shell would have read it.
fn file_named(words: &[String]) -> PathBuf {
    let mut file = None;
    let mut words = words.iter().skip(1);
    while let Some(word) = words.next() {
        if word == "--" {
            break;
        }
        if let Some(value) = word.strip_prefix("--file=") {
            file = Some(value.to_owned());
        } else if word == "--file" {
            file = words.next().cloned();
        } else if let Some(cluster) = word.strip_prefix('-').filter(|c| !c.starts_with('-')) {
            // Short flags may be clustered (`-sf FILE`, `-fFILE`); a flag that takes a
            // value ends the cluster.
            for (i, flag) in cluster.char_indices() {
                let rest = &cluster[i + flag.len_utf8()..];
                match flag {
                    'f' if rest.is_empty() => file = words.next().cloned(),
                    'f' => file = Some(rest.to_owned()),
                    'C' | 'S' | 'c' | 'n' => {}
                    _ => continue,
                }
                break;
            }
        }
    }
    let file = file.unwrap_or_else(|| "maestro.yaml".to_owned());
    match (file.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(file),
    }
}

/// The environment of the file being completed, loaded once, silently; `None` when it
/// cannot be (or is standard input, which the shell's terminal would be).
fn environment() -> Option<&'static Environment> {
    static LOADED: OnceLock<Option<Environment>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let file = FILE.get()?;
            if file.as_os_str() == "-" || !file.is_file() {
                return None;
            }
            let process_env = std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect();
            crate::load::load(file, &process_env).environment
        })
        .as_ref()
}

fn candidate(value: &str, help: String) -> CompletionCandidate {
    CompletionCandidate::new(value).help(Some(help.into()))
}

/// Instance and service names (the things plays, `logs` and `deptree` take).
pub fn things() -> Vec<CompletionCandidate> {
    let Some(env) = environment() else {
        return Vec::new();
    };
    let services = env.services.iter().map(|s| {
        candidate(
            &s.name,
            format!("service, {} instance(s)", s.instances.len()),
        )
    });
    let instances = env.instances.iter().map(|i| {
        candidate(
            &i.name,
            format!(
                "instance of {} on {}",
                env.service(i.service).name,
                env.ship(i.ship).name
            ),
        )
    });
    services.chain(instances).collect()
}

/// Instance names (what `-C` matches).
pub fn instances() -> Vec<CompletionCandidate> {
    let Some(env) = environment() else {
        return Vec::new();
    };
    env.instances
        .iter()
        .map(|i| {
            candidate(
                &i.name,
                format!("instance of {}", env.service(i.service).name),
            )
        })
        .collect()
}

/// Ship names (what `-S` matches).
pub fn ships() -> Vec<CompletionCandidate> {
    let Some(env) = environment() else {
        return Vec::new();
    };
    env.ships
        .iter()
        .map(|s| candidate(&s.name, format!("ship at {}", s.ip)))
        .collect()
}

/// The script that registers maestro's completion in `shell`; it calls `maestro` (as this
/// run was called) back at each completion.
pub fn script(shell: clap_complete::Shell) -> Vec<u8> {
    let completer: &dyn EnvCompleter = match shell {
        clap_complete::Shell::Bash => &Bash,
        clap_complete::Shell::Elvish => &Elvish,
        clap_complete::Shell::Fish => &Fish,
        clap_complete::Shell::PowerShell => &Powershell,
        clap_complete::Shell::Zsh => &Zsh,
        _ => &Bash,
    };
    // As called: by name (found on the PATH at completion time), or by a path, which is
    // made absolute so that completion works from any folder.
    let called = PathBuf::from(
        std::env::args_os()
            .next()
            .unwrap_or_else(|| "maestro".into()),
    );
    let program = match (called.components().count() > 1, std::env::current_dir()) {
        (true, Ok(dir)) => dir.join(called),
        _ => called,
    };
    let mut out = Vec::new();
    let _ = completer.write_registration(
        VAR,
        "maestro",
        "maestro",
        &program.to_string_lossy(),
        &mut out,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_the_last_one_the_command_line_names() {
        let words = |line: &str| line.split(' ').map(str::to_owned).collect::<Vec<_>>();
        let cases = [
            ("maestro logs ", "maestro.yaml"),
            ("maestro -f a.yaml logs ", "a.yaml"),
            ("maestro logs -f a.yaml ", "a.yaml"),
            ("maestro --file a.yaml logs ", "a.yaml"),
            ("maestro --file=a.yaml logs ", "a.yaml"),
            ("maestro -fa.yaml logs ", "a.yaml"),
            ("maestro stop -sf a.yaml ", "a.yaml"),
            ("maestro -f a.yaml -f b.yaml logs ", "b.yaml"),
            // A value, not the flag.
            ("maestro stop -Cf ", "maestro.yaml"),
            ("maestro logs -- -f a.yaml", "maestro.yaml"),
        ];
        for (line, want) in cases {
            assert_eq!(file_named(&words(line)), PathBuf::from(want), "{line}");
        }
    }
}
