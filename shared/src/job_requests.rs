//! `POST /jobs/request`: a runner asking for work. Every poll is also a heartbeat, as in GitLab,
//! so a runner that polls stays `online` for as long as it polls; the write is debounced like
//! `verify`'s (`HEARTBEAT_INTERVAL_SECONDS`).
//!
//! Round trips: the token (1); then the runner and, when stale, the heartbeat, in parallel (1).

use crate::error::ApiError;
use crate::runner_tokens::RunnerToken;
use crate::store::{Heartbeat, Store};

/// What a poll gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    /// 204: nothing to run (also what a paused runner gets, after its heartbeat).
    NothingToRun,
}

/// Authenticates the runner, records its heartbeat and looks for a job it may take.
///
/// No job can be pending yet: jobs are only imported from fixtures, already finished. The queue
/// and assignment come with the enqueue endpoint (issue 8); until then every poll is a 204.
pub async fn request_job(
    store: &Store,
    token: &str,
    heartbeat: &Heartbeat,
    heartbeat_interval_secs: i64,
) -> Result<Poll, ApiError> {
    let runner_token = RunnerToken::find(store, token).await?;
    let (runner, beat) = futures_util::future::join(
        store.get_runner(runner_token.runner_id),
        runner_token.heartbeat(store, heartbeat, heartbeat_interval_secs),
    )
    .await;
    beat?;
    let runner = runner?
        .filter(|runner| runner.token_digest == runner_token.digest)
        .ok_or(ApiError::Forbidden)?;
    if !runner.active {
        return Ok(Poll::NothingToRun);
    }
    Ok(Poll::NothingToRun)
}
