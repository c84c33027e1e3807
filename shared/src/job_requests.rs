//! `POST /jobs/request`: a runner asking for work. Every poll is also a heartbeat, as in GitLab,
//! so a runner that polls stays `online` for as long as it polls; the write is debounced like
//! `verify`'s (`HEARTBEAT_INTERVAL_SECONDS`).
//!
//! Round trips: the token (1); the runner, the heartbeat when stale, and the runner's queues
//! (named on its token item), in parallel (2); for an instance runner whose candidates span
//! several projects, their fair-usage counters (3); assignment of the first job it may take,
//! with the read of that job, in parallel (3 or 4).

use crate::auth::{TokenDigest, generate_token};
use crate::error::ApiError;
use crate::jobs::{self, can_take, payload};
use crate::runner::RunnerType;
use crate::runner_tokens::RunnerToken;
use crate::store::jobs::QueueEntry;
use crate::store::{Heartbeat, Store};
use crate::time::Timestamp;
use serde_json::Value;

/// What a poll gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Poll {
    /// 204: nothing to run (also what a paused runner gets, after its heartbeat).
    NothingToRun,
    /// 201: the job payload of a job now running on this runner.
    Job(Value),
}

/// Authenticates the runner, records its heartbeat and gives it the oldest pending job it may
/// take, if any. A job another runner took first is skipped; nothing assigned is a 204, never
/// a 409 (gitlab-python-runner dies on a non-2xx first poll).
pub async fn request_job(
    store: &Store,
    token: &str,
    heartbeat: &Heartbeat,
    heartbeat_interval_secs: i64,
    base_url: &str,
) -> Result<Poll, ApiError> {
    let runner_token = RunnerToken::find(store, token).await?;
    // The token item names the runner's queues, so they are read beside the runner.
    let known_queues = runner_token.queues.as_deref().unwrap_or_default();
    let (runner, beat, entries) = futures_util::future::join3(
        store.get_runner(runner_token.runner_id),
        runner_token.heartbeat(store, heartbeat, heartbeat_interval_secs),
        store.pending_entries(known_queues),
    )
    .await;
    beat?;
    let runner = runner?
        .filter(|runner| runner.token_digest == runner_token.digest)
        .ok_or(ApiError::Forbidden)?;
    if !runner.active {
        return Ok(Poll::NothingToRun);
    }
    let entries = match &runner_token.queues {
        Some(_) => entries?,
        // A token item from before queues were copied onto it: one more round.
        None => store.pending_entries(&jobs::runner_queues(&runner)).await?,
    };
    let mut candidates: Vec<_> = entries
        .iter()
        .filter(|e| can_take(&runner, &e.tag_list, e.protected))
        .collect();
    let instance_runner = runner.runner_type == RunnerType::Instance;
    if instance_runner {
        fair_usage_order(store, &mut candidates).await?;
    }
    for entry in candidates {
        let job_token = generate_token()?;
        let digest = TokenDigest::of(&job_token);
        let now = Timestamp::now();
        let (assigned, job) = futures_util::future::join(
            store.assign_job(entry, runner.id, instance_runner, digest.as_str(), now),
            store.get_job(entry.job_id),
        )
        .await;
        if !assigned? {
            continue;
        }
        let mut job = job?.ok_or_else(|| ApiError::internal("an assigned job is gone"))?;
        let work = job
            .work
            .clone()
            .ok_or_else(|| ApiError::internal("a queued job without work"))?;
        // The read ran beside the assignment: state what the assignment wrote.
        job.runner_id = Some(runner.id);
        job.status = jobs::RUNNING.to_owned();
        job.started_at = Some(now);
        tracing::info!(job_id = job.id, runner_id = runner.id, "job assigned");
        return Ok(Poll::Job(payload(
            &job, &work, &runner, &job_token, base_url,
        )));
    }
    Ok(Poll::NothingToRun)
}

/// GitLab's fair usage for instance runners: jobs of projects with the fewest jobs running on
/// instance runners first, then the oldest. One batch read of the candidates' project counters,
/// only when the candidates span several projects.
async fn fair_usage_order(store: &Store, candidates: &mut [&QueueEntry]) -> Result<(), ApiError> {
    let mut projects: Vec<i64> = candidates.iter().map(|e| e.project_id).collect();
    projects.sort_unstable();
    projects.dedup();
    if projects.len() < 2 {
        return Ok(());
    }
    let running = store.instance_running_counts(&projects).await?;
    candidates.sort_by_key(|e| (running.get(&e.project_id).copied().unwrap_or(0), e.job_id));
    Ok(())
}
