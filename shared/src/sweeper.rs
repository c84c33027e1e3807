//! The stuck-job sweeper (GitLab's `StuckCiJobsWorker`): a running job no runner has written to
//! for an hour, and a job pending for a day, fail with `stuck_or_timeout_failure`. It reads only
//! the `ACTIVE` partition (pending and running jobs) and each of those jobs; a job is failed by a
//! write conditional on it being unchanged since it was read, so a job whose runner is still
//! appending is never touched. It also applies runner count changes that a write left in an
//! outbox and could not apply itself (`store::listing_outbox`). On AWS it runs on a schedule
//! (`template.yaml`, every 5 minutes); `runnerctl serve` runs the same code every minute.

use crate::error::ApiError;
use crate::jobs::{PENDING, RUNNING};
use crate::store::Store;
use crate::store::directory::Job;
use crate::time::Timestamp;
use serde::Serialize;

/// A running job with no PUT or PATCH for this long is stuck.
pub const RUNNING_STUCK_AFTER_MS: i64 = 3_600_000;
/// A job pending for this long is stuck.
pub const PENDING_STUCK_AFTER_MS: i64 = 86_400_000;
/// Jobs read at once.
const READ_BATCH: usize = 25;

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    pub examined: usize,
    pub failed_running: usize,
    pub failed_pending: usize,
    /// Stuck when read, but written to before the sweeper could fail them.
    pub left_alone: usize,
    /// Runner count changes a write left in an outbox and did not apply (it stopped, or
    /// DynamoDB failed, right after its commit), applied now.
    pub listing_outboxes_applied: usize,
}

/// Whether `job` is stuck at `now`.
pub fn is_stuck(job: &Job, now: Timestamp) -> bool {
    let idle_since = |at: Timestamp| now.millis().saturating_sub(at.millis());
    match job.status.as_str() {
        RUNNING => {
            let last = job.touched_at.or(job.started_at).unwrap_or(job.created_at);
            idle_since(last) > RUNNING_STUCK_AFTER_MS
        }
        PENDING => idle_since(job.created_at) > PENDING_STUCK_AFTER_MS,
        _ => false,
    }
}

/// One sweep over every pending and running job, and over the runner count changes left
/// pending (`store::listing_outbox`).
pub async fn sweep(store: &Store, now: Timestamp) -> Result<SweepReport, ApiError> {
    let mut report = SweepReport {
        listing_outboxes_applied: store.apply_abandoned_outboxes(now).await?,
        ..SweepReport::default()
    };
    let ids = store.active_job_ids().await?;
    for batch in ids.chunks(READ_BATCH) {
        let jobs = futures_util::future::join_all(batch.iter().map(|id| store.get_job(*id))).await;
        for (id, job) in batch.iter().zip(jobs) {
            report.examined += 1;
            let Some(job) = job?.filter(|j| j.status == PENDING || j.status == RUNNING) else {
                store.forget_active_job(*id).await?;
                continue;
            };
            if !is_stuck(&job, now) {
                continue;
            }
            if store.fail_stuck_job(&job, now).await? {
                tracing::info!(job_id = job.id, status = %job.status, "stuck job failed");
                if job.status == RUNNING {
                    report.failed_running += 1;
                } else {
                    report.failed_pending += 1;
                }
            } else {
                report.left_alone += 1;
            }
        }
    }
    Ok(report)
}
