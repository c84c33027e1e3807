//! Every endpoint against every kind of caller.

mod common;
use axum::http::Method;
use common::*;
use serde_json::json;

/// (role, token, the runner this role is tested on)
const ROLES: [(&str, Option<&str>, i64); 10] = [
    ("no token", None, PROJECT_RUNNER),
    ("unknown token", Some("not-a-token"), PROJECT_RUNNER),
    ("expired token", Some(USER_EXPIRED), PROJECT_RUNNER),
    ("read_api token", Some(USER_READ_ONLY), PROJECT_RUNNER),
    ("blocked user", Some(BLOCKED), PROJECT_RUNNER),
    ("non-member", Some(STRANGER), PROJECT_RUNNER),
    ("reporter", Some(USER2), PROJECT_RUNNER),
    ("maintainer", Some(USER), PROJECT_RUNNER),
    (
        "group owner through an ancestor",
        Some(OWNER),
        DEEP_PROJECT_RUNNER,
    ),
    ("admin", Some(ADMIN), GROUP2_RUNNER),
];

/// Expected statuses per role, in ROLES order.
const MATRIX: [(&str, &str, [u16; 10]); 6] = [
    (
        "GET",
        "/api/v4/runners",
        [401, 401, 401, 200, 403, 200, 200, 200, 200, 200],
    ),
    (
        "GET",
        "/api/v4/runners/all",
        [401, 401, 401, 403, 403, 403, 403, 403, 403, 200],
    ),
    (
        "GET",
        "/api/v4/runners/{id}",
        [401, 401, 401, 200, 403, 403, 403, 200, 200, 200],
    ),
    (
        "PUT",
        "/api/v4/runners/{id}",
        [401, 401, 401, 403, 403, 403, 403, 200, 200, 200],
    ),
    (
        "GET",
        "/api/v4/runners/{id}/jobs",
        [401, 401, 401, 200, 403, 403, 403, 200, 200, 200],
    ),
    // Runs last: the allowed callers delete their runner.
    (
        "DELETE",
        "/api/v4/runners/{id}",
        [401, 401, 401, 403, 403, 403, 403, 204, 204, 204],
    ),
];

#[tokio::test]
async fn every_endpoint_for_every_role() {
    let app = app().await;
    let mut failures = Vec::new();
    for (method, path, expected) in MATRIX {
        for ((role, token, runner), status) in ROLES.iter().zip(expected) {
            let uri = path.replace("{id}", &runner.to_string());
            let mut request = app.request(method.parse::<Method>().unwrap(), &uri);
            if let Some(token) = token {
                request = request.header("PRIVATE-TOKEN", token);
            }
            if method == "PUT" {
                request = request.json(json!({"description": format!("set by {role}")}));
            }
            let response = request.send().await;
            if response.status != status {
                failures.push(format!(
                    "{method} {uri} as {role}: {} (expected {status}) {}",
                    response.status, response.body
                ));
            }
            let expected_body = match status {
                401 => Some(json!({"message": "401 Unauthorized"})),
                403 if path == "/api/v4/runners/all"
                    || *role == "blocked user"
                    || *role == "read_api token" =>
                {
                    Some(json!({"message": "403 Forbidden"}))
                }
                403 => Some(json!({"message": "403 Forbidden - No access granted"})),
                _ => None,
            };
            if let Some(body) = expected_body.filter(|b| *b != response.body) {
                failures.push(format!(
                    "{method} {uri} as {role}: body {} (expected {body})",
                    response.body
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
