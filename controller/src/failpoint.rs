//! Test-only failpoints: the end-to-end tests kill maestro with SIGKILL at an exact step
//! of a deploy or a rollback, to prove that every state a kill leaves is one `status`
//! explains and the next play completes. Compiled into debug builds only; in a release
//! build [`pause`] is an empty function.

/// In a debug build where `MAESTRO_PAUSE_AT` (steps separated by commas) names `step`,
/// says `paused at STEP` on stderr and never returns (the test then kills the process).
/// Otherwise returns at once. Several steps pause concurrent tasks each at its own (a
/// deploy's turn and the create ahead of a later one).
pub async fn pause(step: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("MAESTRO_PAUSE_AT").is_ok_and(|at| at.split(',').any(|s| s == step)) {
        crate::output::eprint(&format!("paused at {step}\n"));
        std::future::pending::<()>().await;
    }
    #[cfg(not(debug_assertions))]
    let _ = step;
}
