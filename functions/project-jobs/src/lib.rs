//! A project's jobs, for users with a personal access token: `POST /api/v4/projects/:id/jobs`,
//! the extension that enqueues one job without a repository-backed pipeline (`jobs-api.md`).
//!
//! Checks in GitLab's order: authentication; the project (404 when unknown or invisible) and
//! Developer access (403); parameters (400); a protected ref needs Maintainer (403).
//! Round trips: token; project; memberships and the caller's user record together; the job id;
//! the job with its queue entries (one transaction).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use runners_shared::access::{self, DEVELOPER, MAINTAINER};
use runners_shared::auth::{Access, authenticate};
use runners_shared::entities::JobEntity;
use runners_shared::error::json_response;
use runners_shared::http::{PathParams, base_url};
use runners_shared::jobs::{self, EnqueueRequest};
use runners_shared::params::Params;
use runners_shared::time::Timestamp;
use runners_shared::{ApiError, AppState};

/// This function's routes; its `main` and `runnerctl serve` both mount exactly this.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v4/projects/{id}/jobs", post(enqueue))
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
