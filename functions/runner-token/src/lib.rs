//! The runner-token endpoints: `POST /api/v4/runners` (register), `DELETE /api/v4/runners`
//! (unregister), `POST /api/v4/runners/verify`, `DELETE /api/v4/runners/managers` (one host
//! leaves) and `POST /api/v4/runners/reset_authentication_token` (self-rotation). No user authentication: the `token`
//! parameter is a registration token or a runner token.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use runners_shared::error::json_response;
use runners_shared::http::{ClientIp, if_unmodified_since};
use runners_shared::params::Params;
use runners_shared::runner_tokens::{
    self, RegistrationRequest, heartbeat_from_params, required_token,
};
use runners_shared::{ApiError, AppState};

/// This function's routes; its `main` and `runnerctl serve` both mount exactly this.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v4/runners", post(register).delete(unregister))
        .route("/api/v4/runners/verify", post(verify))
        .route("/api/v4/runners/managers", delete(unregister_manager))
        .route(
            "/api/v4/runners/reset_authentication_token",
            post(reset_own_token),
        )
        .with_state(state)
}

async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    params: Params,
) -> Result<Response, ApiError> {
    let request = RegistrationRequest::from_params(&params, ip)?;
    let answer = runner_tokens::register(&state.store, request).await?;
    Ok(json_response(StatusCode::CREATED, &answer))
}

fn token(params: &Params) -> Result<String, ApiError> {
    let mut reader = params.reader();
    let token = required_token(&mut reader);
    reader.finish()?;
    Ok(token.unwrap_or_default())
}

async fn verify(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    params: Params,
) -> Result<Response, ApiError> {
    let token = token(&params)?;
    let heartbeat = heartbeat_from_params(&params, ip);
    let answer = runner_tokens::verify(
        &state.store,
        &token,
        &heartbeat,
        state.settings.heartbeat_interval_secs,
    )
    .await?;
    Ok(answer.into_response())
}

async fn unregister(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> Result<StatusCode, ApiError> {
    let token = token(&params)?;
    runner_tokens::unregister(&state.store, &token, if_unmodified_since(&headers)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /runners/managers`: one host leaves the runner (204).
async fn unregister_manager(
    State(state): State<AppState>,
    params: Params,
) -> Result<StatusCode, ApiError> {
    let mut reader = params.reader();
    let token = required_token(&mut reader);
    let system_id = reader.required_string("system_id");
    reader.finish()?;
    runner_tokens::unregister_manager(
        &state.store,
        &token.unwrap_or_default(),
        &system_id.unwrap_or_default(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /runners/reset_authentication_token`: a runner rotates its own token (201).
async fn reset_own_token(
    State(state): State<AppState>,
    params: Params,
) -> Result<Response, ApiError> {
    let token = token(&params)?;
    let answer = runner_tokens::rotate_own_token(&state.store, &token).await?;
    Ok(json_response(StatusCode::CREATED, &answer))
}
