//! Personal access token authentication (shared by the user-facing functions) against stored
//! tokens: every state a token or its user can be in.

use axum::http::HeaderMap;
use runners_shared::ApiError;
use runners_shared::auth::{Access, Caller, authenticate};
use runners_shared::params::Params;
use serde_json::json;
use test_harness::TestApp;

fn headers(name: &str, value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
        value.parse().unwrap(),
    );
    headers
}

#[tokio::test]
async fn personal_access_tokens_in_every_state() {
    let app = TestApp::new(runner_token::router).await;
    app.seed(json!({
        "settings": {"runners_registration_token": "reg"},
        "users": [
            {"id": 1, "username": "root", "admin": true, "tokens": [{"token": "admin-pat"}]},
            {"id": 2, "username": "user", "tokens": [
                {"token": "api-pat", "scopes": ["api"], "expires_at": "2999-01-01"},
                {"token": "read-pat", "scopes": ["read_api"]},
                {"token": "profile-pat", "scopes": ["read_user"]},
                {"token": "expired-pat", "expires_at": "2001-01-01"},
                {"token": "revoked-pat", "revoked": true}]},
            {"id": 3, "username": "blocked", "state": "blocked", "tokens": [{"token": "blocked-pat"}]}
        ],
        "runners": [{"id": 9, "token": "runner-token", "runner_type": "instance_type"}]
    }))
    .await;
    let store = &app.store;
    let none = Params::default();
    let check = |headers: HeaderMap, params: Params, access: Access| async move {
        authenticate(store, &headers, &params, access).await
    };

    let admin = check(
        headers("PRIVATE-TOKEN", "admin-pat"),
        none.clone(),
        Access::Write,
    )
    .await
    .unwrap();
    assert_eq!(
        admin,
        Caller {
            user_id: 1,
            admin: true
        }
    );
    let via_bearer = check(
        headers("authorization", "Bearer api-pat"),
        none.clone(),
        Access::Write,
    )
    .await
    .unwrap();
    assert_eq!(
        via_bearer,
        Caller {
            user_id: 2,
            admin: false
        }
    );
    let via_param = check(
        HeaderMap::new(),
        Params::from_query("private_token=read-pat").unwrap(),
        Access::Read,
    )
    .await;
    assert_eq!(via_param.unwrap().user_id, 2);

    let unauthorized = |r: Result<Caller, ApiError>| matches!(r, Err(ApiError::Unauthorized));
    let forbidden = |r: Result<Caller, ApiError>| matches!(r, Err(ApiError::Forbidden));
    assert!(
        unauthorized(check(HeaderMap::new(), none.clone(), Access::Read).await),
        "no token"
    );
    assert!(
        unauthorized(check(headers("private-token", "nope"), none.clone(), Access::Read).await),
        "unknown"
    );
    assert!(
        unauthorized(
            check(
                headers("private-token", "runner-token"),
                none.clone(),
                Access::Read
            )
            .await
        ),
        "a runner token"
    );
    assert!(
        unauthorized(check(headers("private-token", "reg"), none.clone(), Access::Read).await),
        "a registration token"
    );
    assert!(
        unauthorized(
            check(
                headers("private-token", "expired-pat"),
                none.clone(),
                Access::Read
            )
            .await
        ),
        "expired"
    );
    assert!(
        unauthorized(
            check(
                headers("private-token", "revoked-pat"),
                none.clone(),
                Access::Read
            )
            .await
        ),
        "revoked"
    );
    assert!(
        forbidden(
            check(
                headers("private-token", "blocked-pat"),
                none.clone(),
                Access::Read
            )
            .await
        ),
        "blocked user"
    );
    assert!(
        forbidden(
            check(
                headers("private-token", "read-pat"),
                none.clone(),
                Access::Write
            )
            .await
        ),
        "read_api on a write"
    );
    assert!(
        forbidden(
            check(
                headers("private-token", "profile-pat"),
                none.clone(),
                Access::Read
            )
            .await
        ),
        "no API scope"
    );
}
