//! The runner job protocol: `POST /api/v4/jobs/request` (the runner token), `PUT /api/v4/jobs/:id`
//! and `PATCH /api/v4/jobs/:id/trace` (the job token). No user authentication. Every runner polls
//! `jobs/request` every few seconds, so this is its own function, with its own throttling in
//! `template.yaml`.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post, put};
use runners_shared::error::json_response;
use runners_shared::http::{ClientIp, PathParams, base_url, path_id};
use runners_shared::job_requests::{self, Poll};
use runners_shared::job_updates::{self, JobUpdate, JobWrite};
use runners_shared::params::{Params, read_body};
use runners_shared::runner_tokens::{heartbeat_from_params, required_token};
use runners_shared::{ApiError, AppState};
use serde_json::json;

/// How often a runner should send its log (GitLab 12.8+'s default when nobody watches the job).
const TRACE_UPDATE_INTERVAL_SECS: &str = "30";

/// This function's routes; its `main` and `runnerctl serve` both mount exactly this.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v4/jobs/request", post(request_job))
        .route("/api/v4/jobs/{id}", put(update_job))
        .route("/api/v4/jobs/{id}/trace", patch(append_trace))
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

fn with_header(mut response: Response, name: &'static str, value: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
    response
}

/// 403 `Job is not running`, with the `Job-Status` the runners decide on (abort on `canceled`
/// or `failed`; gitlab-runner-api reads the header unconditionally).
fn not_running(status: &str) -> Response {
    let response = ApiError::forbidden_because("Job is not running").into_response();
    with_header(response, "job-status", status)
}

async fn update_job(
    State(state): State<AppState>,
    path: PathParams,
    params: Params,
) -> Result<Response, ApiError> {
    let mut reader = params.reader();
    let token = required_token(&mut reader);
    let trace = reader.string("trace");
    let job_state = reader.string("state");
    let failure_reason = reader.string("failure_reason");
    let id = path_id(path.get("id"), "id");
    reader.finish()?;
    let job = job_updates::authenticate_job(&state.store, id?, &token.unwrap_or_default()).await?;
    let update = JobUpdate {
        trace,
        state: job_state,
        failure_reason,
    };
    Ok(
        match job_updates::update_job(&state.store, job, update).await? {
            JobWrite::Done { .. } | JobWrite::WrongOffset { .. } => {
                json_response(StatusCode::OK, &json!(null))
            }
            JobWrite::NotRunning { status } => not_running(&status),
        },
    )
}

/// The start of `Content-Range` as Ruby's `to_i` reads it: the leading digits, 0 without any.
/// The end and any `/total` are ignored (runners disagree on them).
fn range_start(content_range: &str) -> i64 {
    let digits: String = content_range
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or(if digits.is_empty() { 0 } else { i64::MAX })
}

async fn append_trace(
    State(state): State<AppState>,
    path: PathParams,
    request: Request<Body>,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let query = Params::from_query(parts.uri.query().unwrap_or(""))?;
    // The parameter wins over the header, as in GitLab.
    let token = query
        .reader()
        .string("token")
        .or_else(|| {
            parts
                .headers
                .get("job-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let id = path_id(path.get("id"), "id")?;
    let job = job_updates::authenticate_job(&state.store, id, &token).await?;
    if job.status != runners_shared::jobs::RUNNING {
        return Ok(not_running(&job.status));
    }
    let Some(content_range) = parts
        .headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(ApiError::InvalidParams(vec![
            "400 Missing header Content-Range".into(),
        ]));
    };
    let bytes = read_body(body).await?;
    let start = range_start(content_range);
    Ok(
        match job_updates::append_trace(&state.store, job, start, &bytes).await? {
            JobWrite::Done { log_length } => {
                let response = StatusCode::ACCEPTED.into_response();
                let response = with_header(response, "job-status", runners_shared::jobs::RUNNING);
                let response = with_header(response, "range", &format!("0-{log_length}"));
                with_header(
                    response,
                    "x-gitlab-trace-update-interval",
                    TRACE_UPDATE_INTERVAL_SECS,
                )
            }
            JobWrite::WrongOffset { log_length } => {
                let response = json_response(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    &json!({"error": "416 Range Not Satisfiable"}),
                );
                with_header(response, "range", &format!("0-{log_length}"))
            }
            JobWrite::NotRunning { status } => not_running(&status),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::range_start;

    #[test]
    fn content_range_starts_as_ruby_reads_them() {
        assert_eq!(range_start("0-10"), 0);
        assert_eq!(range_start("15-49"), 15);
        assert_eq!(range_start("8-20/13"), 8);
        assert_eq!(range_start("garbage"), 0);
        assert_eq!(range_start("99999999999999999999999-1"), i64::MAX);
    }
}
