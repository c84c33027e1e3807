//! What a runner sends about a job it runs: `PUT /jobs/:id` (state, or the whole log) and
//! `PATCH /jobs/:id/trace` (a piece of the log at a byte offset). Both authenticate with the job
//! token, compared by digest, and act only while the job is `running`; GitLab 12's answers are
//! in `job-protocol.md` §0.1, §3 and §4.
//!
//! Round trips: the job (1); the write (2).

use crate::auth::TokenDigest;
use crate::error::ApiError;
use crate::jobs::{self, FAILED, RUNNING, SUCCESS};
use crate::store::Store;
use crate::store::directory::Job;
use crate::store::jobs::LogWrite;
use crate::time::Timestamp;

/// The job `id` if `token` is its job token: 404 `Not Found` for no such job, 403 for another
/// token (also a job whose token was never issued: it never ran).
pub async fn authenticate_job(store: &Store, id: i64, token: &str) -> Result<Job, ApiError> {
    let job = store.get_job(id).await?.ok_or(ApiError::NotFound(""))?;
    let presented = TokenDigest::of(token);
    if job.token_digest.as_deref() != Some(presented.as_str()) {
        return Err(ApiError::Forbidden);
    }
    Ok(job)
}

/// How a runner's write to a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobWrite {
    /// 200 (PUT) or 202 (PATCH); the log's length after it.
    Done { log_length: i64 },
    /// 416: the PATCH did not start at the log's end; nothing was written.
    WrongOffset { log_length: i64 },
    /// 403 `Job is not running` with `Job-Status: <status>`.
    NotRunning { status: String },
}

/// How often a write re-reads a job that changed under it before answering from what it sees.
const ATTEMPTS: usize = 3;

/// `PATCH /jobs/:id/trace`: appends `bytes` if `start` is the log's current length.
pub async fn append_trace(
    store: &Store,
    mut job: Job,
    start: i64,
    bytes: &[u8],
) -> Result<JobWrite, ApiError> {
    for _ in 0..ATTEMPTS {
        if job.status != RUNNING {
            return Ok(JobWrite::NotRunning { status: job.status });
        }
        if start != job.log_length {
            return Ok(JobWrite::WrongOffset {
                log_length: job.log_length,
            });
        }
        match store
            .append_log(&job, start, bytes, Timestamp::now())
            .await?
        {
            LogWrite::Written(log_length) => return Ok(JobWrite::Done { log_length }),
            LogWrite::Conflict => job = reread(store, &job).await?,
        }
    }
    Ok(JobWrite::WrongOffset {
        log_length: job.log_length,
    })
}

async fn reread(store: &Store, job: &Job) -> Result<Job, ApiError> {
    store
        .get_job(job.id)
        .await?
        .ok_or_else(|| ApiError::internal("a running job is gone"))
}

/// What `PUT /jobs/:id` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobUpdate {
    /// Replaces the whole log (GitLab 12; gitlab-runner-api resyncs this way after a 416).
    pub trace: Option<String>,
    pub state: Option<String>,
    pub failure_reason: Option<String>,
}

/// `PUT /jobs/:id`: the log first (if sent), then the state: `running` is a keep-alive,
/// `success` and `failed` end the job, anything else changes nothing.
pub async fn update_job(
    store: &Store,
    mut job: Job,
    update: JobUpdate,
) -> Result<JobWrite, ApiError> {
    if job.status != RUNNING {
        return Ok(JobWrite::NotRunning { status: job.status });
    }
    if let Some(trace) = &update.trace {
        for attempt in 0..=ATTEMPTS {
            if job.status != RUNNING {
                return Ok(JobWrite::NotRunning { status: job.status });
            }
            match store
                .replace_log(&job, trace.as_bytes(), Timestamp::now())
                .await?
            {
                LogWrite::Written(length) => {
                    job.log_length = length;
                    job.log_generation += 1;
                    break;
                }
                LogWrite::Conflict if attempt < ATTEMPTS => job = reread(store, &job).await?,
                LogWrite::Conflict => {
                    return Err(ApiError::Unavailable("the job log kept changing".into()));
                }
            }
        }
    }
    let now = Timestamp::now();
    let written = match update.state.as_deref() {
        Some(SUCCESS) => store.finish_job(&job, SUCCESS, None, now).await?,
        Some(FAILED) => {
            let reason = jobs::failure_reason(update.failure_reason.as_deref());
            store.finish_job(&job, FAILED, Some(reason), now).await?
        }
        Some(RUNNING) => store.touch_job(&job, now).await?,
        _ => true,
    };
    if written {
        Ok(JobWrite::Done {
            log_length: job.log_length,
        })
    } else {
        let current = reread(store, &job).await?;
        Ok(JobWrite::NotRunning {
            status: current.status,
        })
    }
}
