//! A project's jobs, for users with a personal access token: `POST /api/v4/projects/:id/jobs`,
//! the extension that enqueues one job without a repository-backed pipeline (`jobs-api.md`),
//! and GitLab's Jobs API: the list (newest first), a job, its log (Reporter+), cancel and retry
//! (Developer+, Maintainer+ for a job of a protected ref).
//!
//! Checks in GitLab's order: authentication; the project (404 when unknown or invisible) and
//! Developer access (403); parameters (400); a protected ref needs Maintainer (403).
//! Round trips: token; project; memberships and the caller's user record together; the job id;
//! the job with its queue entries (one transaction).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use runners_shared::access::{self, DEVELOPER, MAINTAINER, Memberships, REPORTER};
use runners_shared::auth::{Access, Caller};
use runners_shared::entities::JobEntity;
use runners_shared::error::json_response;
use runners_shared::http::{PathParams, base_url, job_page_response, path_id};
use runners_shared::jobs::{self, EnqueueRequest};
use runners_shared::pagination::PageRequest;
use runners_shared::params::Params;
use runners_shared::store::IdSequence;
use runners_shared::store::directory::{JOB_STATUSES, Job, Project};
use runners_shared::store::lists::JobIndex;
use runners_shared::time::Timestamp;
use runners_shared::{ApiError, AppState};

/// This function's routes; its `main` and `runnerctl serve` both mount exactly this.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v4/projects/{id}/jobs", get(list).post(enqueue))
        .route("/api/v4/projects/{id}/jobs/{job_id}", get(show))
        .route("/api/v4/projects/{id}/jobs/{job_id}/trace", get(trace))
        .route("/api/v4/projects/{id}/jobs/{job_id}/cancel", post(cancel))
        .route("/api/v4/projects/{id}/jobs/{job_id}/retry", post(retry))
        .with_state(state)
}

async fn enqueue(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams,
    params: Params,
) -> Result<Response, ApiError> {
    let (caller, project) =
        access::caller_and_project(&state.store, &headers, &params, &path, Access::Write).await?;
    // The id is taken beside the permission reads; a refused request leaves a gap, as GitLab's
    // own ids may.
    let (memberships, user, id) = futures_util::future::join3(
        access::memberships_of(&state.store, caller),
        state.store.get_user(caller.user_id),
        state.store.allocate_id(IdSequence::Job),
    )
    .await;
    let memberships = memberships?;
    let reference = project.reference();
    access::check_project_level(caller, &reference, &memberships, DEVELOPER)?;
    let request = EnqueueRequest::from_params(&params)?;
    if project.settings.protects(&request.ref_name) {
        access::check_project_level(caller, &reference, &memberships, MAINTAINER)?;
    }
    let job = jobs::enqueue(&state.store, &project, user?, request, id?).await?;
    Ok(job_response(&state, &headers, StatusCode::CREATED, &job))
}

/// The caller, and a job of the project `:id` names, for a caller with at least Reporter there:
/// authentication, then the project's 404/403, then `job_id is invalid`, then GitLab 12's
/// `404 Not found` for a job that is not the project's. The project and the caller's
/// memberships come along for further checks.
async fn project_job(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    path: &PathParams,
    access: Access,
) -> Result<(Caller, Project, Memberships, Job), ApiError> {
    let (caller, project) =
        access::caller_and_project(&state.store, headers, params, path, access).await?;
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
    let memberships = memberships?;
    access::check_project_level(caller, &project.reference(), &memberships, REPORTER)?;
    job_id?;
    let job = job
        .transpose()?
        .flatten()
        .filter(|job| job.project.id == project.id)
        .ok_or(ApiError::RecordNotFound)?;
    Ok((caller, project, memberships, job))
}

fn job_response(state: &AppState, headers: &HeaderMap, status: StatusCode, job: &Job) -> Response {
    let entity = JobEntity::new(job, Timestamp::now(), &base_url(headers, &state.settings));
    json_response(status, &entity)
}

/// `GET /projects/:id/jobs`: newest first; `scope` one status or several (`scope[]=`).
async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    path: PathParams,
    params: Params,
) -> Result<Response, ApiError> {
    let (caller, project) =
        access::caller_and_project(&state.store, &headers, &params, &path, Access::Read).await?;
    let mut reader = params.reader();
    let scope = reader.strings("scope").unwrap_or_default();
    if scope.iter().any(|s| !JOB_STATUSES.contains(&s.as_str())) {
        reader.problem("scope does not have a valid value");
    }
    let page = PageRequest::read(&mut reader);
    // The page is read beside the memberships; it is shown only if they allow.
    let (memberships, listed) = futures_util::future::join(
        access::memberships_of(&state.store, caller),
        state
            .store
            .job_page(JobIndex::Project(project.id), &scope, true, page),
    )
    .await;
    access::check_project_level(caller, &project.reference(), &memberships?, REPORTER)?;
    reader.finish()?;
    let (jobs, scanned) = listed?;
    Ok(job_page_response(
        &jobs,
        scanned,
        page,
        &headers,
        &state.settings,
        &uri,
    ))
}

/// `POST .../cancel`: 201 and the job, canceled if it was pending or running.
async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams,
    params: Params,
) -> Result<Response, ApiError> {
    let (caller, project, memberships, job) =
        project_job(&state, &headers, &params, &path, Access::Write).await?;
    let needed = jobs::update_level(job.work.as_ref());
    access::check_project_level(caller, &project.reference(), &memberships, needed)?;
    let job = jobs::cancel(&state.store, job).await?;
    Ok(job_response(&state, &headers, StatusCode::CREATED, &job))
}

/// `POST .../retry`: 201 and the new job.
async fn retry(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams,
    params: Params,
) -> Result<Response, ApiError> {
    let (caller, project, memberships, job) =
        project_job(&state, &headers, &params, &path, Access::Write).await?;
    let needed = jobs::update_level(job.work.as_ref());
    access::check_project_level(caller, &project.reference(), &memberships, needed)?;
    let (user, id) = futures_util::future::join(
        state.store.get_user(caller.user_id),
        state.store.allocate_id(IdSequence::Job),
    )
    .await;
    let new = jobs::retry(&state.store, &project, &job, user?, id?).await?;
    Ok(job_response(&state, &headers, StatusCode::CREATED, &new))
}

async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams,
    params: Params,
) -> Result<Response, ApiError> {
    let (_, _, _, job) = project_job(&state, &headers, &params, &path, Access::Read).await?;
    Ok(job_response(&state, &headers, StatusCode::OK, &job))
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
    let (_, _, _, job) = project_job(&state, &headers, &params, &path, Access::Read).await?;
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
