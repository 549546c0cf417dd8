//! Reaping and killing: the guest owns every child of its process (as PID 1, or as a
//! subreaper), so one place collects their exit statuses and hands each to whoever waits
//! for it; std's own `wait` would race with it and lose.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rustix::process::{Pid, Signal, WaitOptions, WaitStatus};
use tokio::sync::oneshot;

/// How a process ended, in the shell's convention: its exit code, or 128 + the signal.
pub fn exit_code(status: WaitStatus) -> i32 {
    match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    }
}

/// Hands reaped statuses to the tasks that wait for particular children.
#[derive(Clone, Default)]
pub struct Reaper {
    waiting: Arc<Mutex<HashMap<i32, oneshot::Sender<WaitStatus>>>>,
}

impl Reaper {
    /// Registers interest in `pid`'s end. Call right after spawning it, before the next
    /// await, so the reaper (which runs on the same thread) cannot miss it.
    pub fn watch(&self, pid: u32) -> oneshot::Receiver<WaitStatus> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(pid_i32(pid), tx);
        rx
    }

    /// Collects every child that has ended; returns the status of `main` if it is among
    /// them. Orphans that were re-parented to the guest are reaped and forgotten.
    pub fn reap(&self, main: u32) -> Option<WaitStatus> {
        let mut main_status = None;
        loop {
            match rustix::process::wait(WaitOptions::NOHANG) {
                Ok(Some((pid, status))) => {
                    let pid = pid.as_raw_nonzero().get();
                    if pid == pid_i32(main) {
                        main_status = Some(status);
                    } else if let Some(tx) = self.lock().remove(&pid) {
                        let _ = tx.send(status);
                    }
                }
                // No child has ended (Ok(None)) or there are no children left (ECHILD).
                Ok(None) | Err(_) => return main_status,
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, oneshot::Sender<WaitStatus>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn pid_i32(pid: u32) -> i32 {
    i32::try_from(pid).unwrap_or(i32::MAX)
}

/// Sends `signal` to process `pid`, ignoring one that is already gone.
pub fn signal(pid: u32, signal: Signal) {
    if let Some(pid) = Pid::from_raw(pid_i32(pid)) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// Sends `signal` to every process the guest is responsible for: as PID 1, every other
/// process of the container; otherwise its descendants (its children and the orphans it
/// adopted as a subreaper, and theirs).
pub fn signal_all(signal_: Signal) {
    let me = std::process::id();
    let parents = processes();
    let targets: Vec<u32> = if me == 1 {
        parents.keys().copied().filter(|&p| p != 1).collect()
    } else {
        descendants(me, &parents)
    };
    for pid in targets {
        signal(pid, signal_);
    }
}

/// Every process in /proc with its parent.
fn processes() -> HashMap<u32, u32> {
    let mut parents = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return parents;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if let Some(ppid) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| parent_in_stat(&stat))
        {
            parents.insert(pid, ppid);
        }
    }
    parents
}

/// The parent pid from a /proc/PID/stat line. The command name (field 2) is in
/// parentheses and may itself contain spaces and parentheses, so fields are counted from
/// the last `)`.
fn parent_in_stat(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Every process below `root` in the tree `parents` describes.
fn descendants(root: u32, parents: &HashMap<u32, u32>) -> Vec<u32> {
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (&pid, &ppid) in parents {
            if ppid == parent && pid != root && !found.contains(&pid) {
                found.push(pid);
                frontier.push(pid);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_is_read_after_the_command_name() {
        assert_eq!(parent_in_stat("42 (sh) S 7 42 42 0 -1"), Some(7));
        assert_eq!(parent_in_stat("42 (a) b (c) R 9 1 1"), Some(9));
        assert_eq!(parent_in_stat("garbage"), None);
    }

    #[test]
    fn descendants_span_generations_and_skip_others() {
        let parents: HashMap<u32, u32> = [(10, 1), (11, 10), (12, 11), (13, 1), (14, 12)]
            .into_iter()
            .collect();
        let mut found = descendants(10, &parents);
        found.sort_unstable();
        assert_eq!(found, [11, 12, 14]);
        assert!(descendants(13, &parents).is_empty());
    }
}
