//! The health check as readiness: an instance whose file gives it a `healthcheck:` (or
//! `healthcheck: image`) is ready only when the engine calls its container healthy AND
//! whatever decided readiness before (the `running` checks, maestro-guest's report) passes.
//! An unhealthy verdict fails the instance at once.

use std::future::Future;

use maestro_core::model::InstanceId;

use super::tasks::Context;
use super::{Event, Failure, Outcome};
use crate::engine::{Engine, Unhealthy};

/// How many lines of a container's output are shown when it exits before it is healthy.
const LAST_LINES: u64 = 20;

/// Waits for the engine to call the started container healthy (`Ok(true)`). With
/// `absent_passes`, a container that runs no health check passes (`Ok(false)`): an older
/// generation created before the file gave one.
pub async fn await_healthy<E: Engine>(
    ctx: &Context<E>,
    row: usize,
    id: InstanceId,
    container_id: &str,
    absent_passes: bool,
) -> Result<bool, Failure> {
    let engine = &ctx.engines[ctx.env.instance(id).ship.0];
    (ctx.reporter)(Event::Step {
        row,
        message: "waiting for the health check".into(),
    });
    match engine.wait_healthy(container_id).await {
        Ok(()) => Ok(true),
        Err(Unhealthy::Failed { output }) => Err(Failure {
            message: match output.last() {
                Some(last) => format!("unhealthy: the health check failed: {last}"),
                None => "unhealthy: the health check failed".into(),
            },
            exit_code: None,
            logs: output,
        }),
        Err(Unhealthy::Exited { exit_code }) => Err(Failure {
            message: match exit_code {
                Some(code) => {
                    format!("the container exited with code {code} before it was healthy")
                }
                None => "the container was removed before it was healthy".into(),
            },
            exit_code,
            logs: engine
                .logs(container_id, Some(LAST_LINES))
                .await
                .unwrap_or_default(),
        }),
        Err(Unhealthy::NoHealthcheck) if absent_passes => Ok(false),
        Err(Unhealthy::NoHealthcheck) => Err(Failure::new(
            "the container runs no health check: its image defines no HEALTHCHECK and the healthcheck: key gives no test",
        )),
        Err(Unhealthy::Engine(e)) => {
            Err(Failure::new(format!("cannot follow the health check: {e}")))
        }
    }
}

/// The outcome of a started container: `readiness` (what decided it before health checks
/// existed) and, when the instance has a health check that gates, the engine's verdict;
/// both must pass, and the first failure ends the wait. `warnings` (what the engine left
/// out at creation) turn a success into a warning. `absent_passes`: a container started
/// again that was created without a health check passes that part (see
/// [`await_healthy`]); a new one fails.
pub async fn gate<E: Engine>(
    ctx: &Context<E>,
    row: usize,
    id: InstanceId,
    container_id: &str,
    warnings: Vec<String>,
    readiness: impl Future<Output = Outcome>,
    absent_passes: bool,
) -> Outcome {
    let gates = ctx
        .env
        .instance(id)
        .healthcheck
        .as_ref()
        .is_some_and(|h| h.gates());
    let outcome = if gates {
        both(
            readiness,
            await_healthy(ctx, row, id, container_id, absent_passes),
        )
        .await
    } else {
        readiness.await
    };
    if warnings.is_empty() {
        return outcome;
    }
    match outcome {
        Outcome::Done(text) | Outcome::Warning(text) => {
            Outcome::Warning(format!("{text}; {}", warnings.join("; ")))
        }
        other => other,
    }
}

/// Both must pass; whichever fails first decides at once. `health` says whether the
/// engine called the container healthy (`false`: it runs no health check, and passes).
async fn both(
    readiness: impl Future<Output = Outcome>,
    health: impl Future<Output = Result<bool, Failure>>,
) -> Outcome {
    tokio::pin!(readiness);
    tokio::pin!(health);
    let mut ready: Option<Outcome> = None;
    let mut healthy: Option<bool> = None;
    loop {
        tokio::select! {
            outcome = &mut readiness, if ready.is_none() => {
                if !outcome.is_success() {
                    return outcome;
                }
                if let Some(healthy) = healthy {
                    return healthy_too(outcome, healthy);
                }
                ready = Some(outcome);
            }
            result = &mut health, if healthy.is_none() => match result {
                Err(failure) => return Outcome::Failed(failure),
                Ok(checked) => match ready.take() {
                    Some(outcome) => return healthy_too(outcome, checked),
                    None => healthy = Some(checked),
                },
            },
        }
    }
}

fn healthy_too(outcome: Outcome, healthy: bool) -> Outcome {
    match (outcome, healthy) {
        (Outcome::Done(text), true) => Outcome::Done(format!("{text}, healthy")),
        (Outcome::Warning(text), true) => Outcome::Warning(format!("{text}; healthy")),
        (other, _) => other,
    }
}
