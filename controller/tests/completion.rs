//! Shell completion as each shell runs it: the script `maestro completions SHELL` prints is
//! loaded into a real bash, zsh and fish, which complete a command line and call maestro
//! back; the instance and service names must come from the file named by that command
//! line's `-f`. `.ci/run` installs zsh and fish.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const SHOP: &str = "\
__maestro: {schema: 2}
name: shop
ships:
  s1: {ip: 10.0.0.1}
  s2: {ip: 10.0.0.2}
services:
  frontend:
    image: shop/frontend
    requires: [api]
    instances: {frontend-1: {ship: s1}, frontend-2: {ship: s2}}
  api:
    image: shop/api
    instances: {api-1: {ship: s1}}
";

/// A folder with the environment at `envs/shop.yaml` (so that only `-f` finds it), an
/// invalid `maestro.yaml`, and the script for `shell`.
fn setup(test: &str, shell: &str) -> (PathBuf, PathBuf) {
    let dir =
        std::env::temp_dir().join(format!("maestro-completion-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("envs")).unwrap();
    std::fs::write(dir.join("envs/shop.yaml"), SHOP).unwrap();
    std::fs::write(dir.join("maestro.yaml"), "services: [not, valid]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_maestro"))
        .args(["completions", shell])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script = dir.join(format!("maestro.{shell}"));
    std::fs::write(&script, &out.stdout).unwrap();
    (dir, script)
}

/// Runs `shell` with `program`, maestro's folder first on the PATH (the scripts call
/// `maestro` by name, as installed).
fn shell(shell: &str, dir: &Path, program: &str) -> Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_maestro")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let args: &[&str] = match shell {
        "zsh" => &["-f", "-c", program],
        "fish" => &["--no-config", "-c", program],
        _ => &["--norc", "--noprofile", "-c", program],
    };
    Command::new(shell)
        .args(args)
        .current_dir(dir)
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{shell} cannot run ({e}): apt-get install {shell}"))
}

fn lines(out: &Output) -> Vec<String> {
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// What bash offers for the last word of `words`, as it would after Tab.
fn bash(dir: &Path, script: &Path, words: &str) -> Output {
    let program = format!(
        "source {script}
COMP_WORDS=({words})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_TYPE=9
_clap_complete_maestro maestro \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"
printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script = script.display()
    );
    shell("bash", dir, &program)
}

#[test]
fn bash_completes_names_from_the_file_the_command_line_names() {
    let (dir, script) = setup("bash", "bash");
    assert_eq!(
        lines(&bash(&dir, &script, "maestro -f envs/shop.yaml logs fr")),
        ["frontend", "frontend-1", "frontend-2"]
    );
    // After the command too, as clap reads a global option.
    assert_eq!(
        lines(&bash(&dir, &script, "maestro stop -f envs/shop.yaml a")),
        ["api", "api-1"]
    );
    assert_eq!(
        lines(&bash(
            &dir,
            &script,
            "maestro --file=envs/shop.yaml start -S s"
        )),
        ["s1", "s2"]
    );
    // Commands need no file.
    assert_eq!(
        lines(&bash(&dir, &script, "maestro sta")),
        ["start", "status"]
    );
    // The invalid maestro.yaml (the default) gives no names, and no message.
    assert!(
        lines(&bash(&dir, &script, "maestro logs fr"))
            .iter()
            .all(String::is_empty)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn zsh_completes_names_from_the_file_the_command_line_names() {
    let (dir, script) = setup("zsh", "zsh");
    // compsys's `compdef` and `_describe` stand in for themselves: the script's own
    // function runs in a real zsh, with the words and position zsh gives it, and what it
    // would offer is printed.
    let complete = |words: &str| {
        let program = format!(
            "compdef() {{ }}
_describe() {{ print -l -- ${{(P)3}} }}
source {script}
words=({words})
CURRENT=${{#words}}
_clap_dynamic_completer_maestro",
            script = script.display()
        );
        shell("zsh", &dir, &program)
    };
    assert_eq!(
        lines(&complete("maestro -f envs/shop.yaml restart fr")),
        [
            "frontend-1:instance of frontend on s1",
            "frontend-2:instance of frontend on s2",
            "frontend:service, 2 instance(s)"
        ]
    );
    // An empty word: every name, then the options.
    let mut names: Vec<String> = lines(&complete("maestro -f envs/shop.yaml deptree ''"))
        .into_iter()
        .filter(|l| !l.starts_with("--"))
        .map(|l| l.split(':').next().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["api", "api-1", "frontend", "frontend-1", "frontend-2"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fish_completes_names_from_the_file_the_command_line_names() {
    let (dir, script) = setup("fish", "fish");
    let complete = |line: &str| {
        let program = format!(
            "source {script}; complete --do-complete '{line}'",
            script = script.display()
        );
        shell("fish", &dir, &program)
    };
    assert_eq!(
        lines(&complete("maestro -f envs/shop.yaml logs fr")),
        [
            "frontend\tservice, 2 instance(s)",
            "frontend-1\tinstance of frontend on s1",
            "frontend-2\tinstance of frontend on s2"
        ]
    );
    assert_eq!(
        lines(&complete("maestro -f envs/shop.yaml stop -C api")),
        ["api-1\tinstance of api"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The entry point the scripts call, with what a script sets: `-f -` (standard input,
/// the terminal at completion time) is never read, and a file that is missing or invalid
/// gives no names and prints nothing.
#[test]
fn the_entry_point_never_reads_stdin_nor_prints_errors() {
    let (dir, _script) = setup("entry", "bash");
    let ask = |words: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_maestro"))
            .arg("--")
            .args(words)
            .current_dir(&dir)
            .env("MAESTRO_COMPLETE", "bash")
            .env("_CLAP_IFS", "\n")
            .env("_CLAP_COMPLETE_INDEX", (words.len() - 1).to_string())
            // Kept open: a read would wait for ever.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let began = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if began.elapsed() > std::time::Duration::from_secs(10) {
                let _ = child.kill();
                panic!("{words:?}: no answer within 10 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let out = child.wait_with_output().unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(
        ask(&["maestro", "-f", "-", "logs", "fr"]),
        (String::new(), String::new())
    );
    assert_eq!(
        ask(&["maestro", "-f", "missing.yaml", "logs", "fr"]),
        (String::new(), String::new())
    );
    assert_eq!(
        ask(&["maestro", "logs", "fr"]),
        (String::new(), String::new())
    );
    assert_eq!(
        ask(&["maestro", "-f", "envs/shop.yaml", "logs", "api"]),
        ("api\napi-1".to_owned(), String::new())
    );
    let _ = std::fs::remove_dir_all(&dir);
}
