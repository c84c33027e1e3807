//! The runner job protocol: `POST /api/v4/jobs/request`. No user authentication: the `token`
//! parameter is the runner's token. Every runner polls this every few seconds, so it is its own
//! function, with its own throttling in `template.yaml`.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use runners_shared::error::json_response;
use runners_shared::http::{ClientIp, base_url};
use runners_shared::job_requests::{self, Poll};
use runners_shared::params::Params;
use runners_shared::runner_tokens::{heartbeat_from_params, required_token};
use runners_shared::{ApiError, AppState};

/// This function's routes; its `main` and `runnerctl serve` both mount exactly this.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v4/jobs/request", post(request_job))
        .with_state(state)
}

/// 201 with a job, or 204 (never 404, 409 or 5xx for "nothing to do": gitlab-python-runner
/// dies on any non-2xx first poll, and the official runner parks itself after three 403s).
async fn request_job(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let mut reader = params.reader();
    let token = required_token(&mut reader);
    reader.finish()?;
    let heartbeat = heartbeat_from_params(&params, ip);
    let poll = job_requests::request_job(
        &state.store,
        &token.unwrap_or_default(),
        &heartbeat,
        state.settings.heartbeat_interval_secs,
        &base_url(&headers, &state.settings),
    )
    .await?;
    Ok(match poll {
        Poll::NothingToRun => StatusCode::NO_CONTENT.into_response(),
        Poll::Job(payload) => json_response(StatusCode::CREATED, &payload),
    })
}
