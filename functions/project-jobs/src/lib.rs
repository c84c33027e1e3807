//! A project's jobs, for users with a personal access token: `POST /api/v4/projects/:id/jobs`,
//! the extension that enqueues one job without a repository-backed pipeline (`jobs-api.md`),
//! and GitLab's `GET .../jobs/:job_id` and `GET .../jobs/:job_id/trace` (Reporter+).
//!
//! Checks in GitLab's order: authentication; the project (404 when unknown or invisible) and
//! Developer access (403); parameters (400); a protected ref needs Maintainer (403).
//! Round trips: token; project; memberships and the caller's user record together; the job id;
//! the job with its queue entries (one transaction).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use runners_shared::access::{self, DEVELOPER, MAINTAINER, REPORTER};
use runners_shared::auth::Caller;
use runners_shared::auth::{Access, authenticate};
use runners_shared::entities::JobEntity;
use runners_shared::error::json_response;
use runners_shared::http::path_id;
use runners_shared::http::{PathParams, base_url};
use runners_shared::jobs::{self, EnqueueRequest};
use runners_shared::params::Params;
use runners_shared::store::directory::Job;
use runners_shared::time::Timestamp;
use runners_shared::{ApiError, AppState};

/// This function's routes; its `main` and `runnerctl serve` both mount exactly this.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v4/projects/{id}/jobs", post(enqueue))
        .route("/api/v4/projects/{id}/jobs/{job_id}", get(show))
        .route("/api/v4/projects/{id}/jobs/{job_id}/trace", get(trace))
        .with_state(state)
}

async fn enqueue(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams,
    params: Params,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state.store, &headers, &params, Access::Write).await?;
    let project = access::project_from_path(&state.store, &path).await?;
    let (memberships, user) = futures_util::future::join(
        access::memberships_of(&state.store, caller),
        state.store.get_user(caller.user_id),
    )
    .await;
    let memberships = memberships?;
    let reference = project.reference();
    access::check_project_level(caller, &reference, &memberships, DEVELOPER)?;
    let request = EnqueueRequest::from_params(&params)?;
    if project.settings.protects(&request.ref_name) {
        access::check_project_level(caller, &reference, &memberships, MAINTAINER)?;
    }
    let job = jobs::enqueue(&state.store, &project, user?, request).await?;
    let entity = JobEntity::new(&job, Timestamp::now(), &base_url(&headers, &state.settings));
    Ok(json_response(StatusCode::CREATED, &entity))
}

/// A job of the project `:id` names, for a caller with at least `needed` there: the project's
/// 404/403 first, then `job_id is invalid`, then GitLab 12's `404 Not found` for a job that is
/// not the project's.
async fn project_job(
    state: &AppState,
    caller: Caller,
    path: &PathParams,
    needed: i64,
) -> Result<Job, ApiError> {
    let project = access::project_from_path(&state.store, path).await?;
    let job_id = path_id(path.get("job_id"), "job_id");
    let job = match &job_id {
        Ok(id) => Some(state.store.get_job(*id)),
        Err(_) => None,
    };
    let (memberships, job) = futures_util::future::join(
        access::memberships_of(&state.store, caller),
        futures_util::future::OptionFuture::from(job),
    )
    .await;
    access::check_project_level(caller, &project.reference(), &memberships?, needed)?;
    job_id?;
    job.transpose()?
        .flatten()
        .filter(|job| job.project.id == project.id)
        .ok_or(ApiError::RecordNotFound)
}

async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams,
    params: Params,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state.store, &headers, &params, Access::Read).await?;
    let job = project_job(&state, caller, &path, REPORTER).await?;
    let entity = JobEntity::new(&job, Timestamp::now(), &base_url(&headers, &state.settings));
    Ok(json_response(StatusCode::OK, &entity))
}

/// The log as stored, byte for byte (empty before anything was logged): `text/plain` as GitLab
/// sends it, or `application/octet-stream` when the bytes are not UTF-8, because a Lambda
/// response with a text type is decoded as text on its way out and would lose them.
async fn trace(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams,
    params: Params,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state.store, &headers, &params, Access::Read).await?;
    let job = project_job(&state, caller, &path, REPORTER).await?;
    let log = state.store.read_log(&job).await?;
    let content_type = if std::str::from_utf8(&log).is_ok() {
        "text/plain"
    } else {
        "application/octet-stream"
    };
    let mut response = Response::new(axum::body::Body::from(log));
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(content_type),
    );
    if let Ok(disposition) =
        axum::http::HeaderValue::from_str(&format!("infile; filename=\"{}.log\"", job.id))
    {
        headers.insert(axum::http::header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}
