//! What the job tests share: an app serving every function that jobs touch, one-project worlds,
//! and the two moves every test makes (enqueue a job, have a runner take it).
#![allow(dead_code)]

use serde_json::{Value, json};
use test_harness::{TestApp, TestResponse};

pub const ADMIN: &str = "admin-pat";

/// An app serving the job functions with the runner functions beside them (as API Gateway
/// routes them), seeded with `world`.
pub async fn app(world: Value) -> TestApp {
    let app = TestApp::new(|state| {
        project_jobs::router(state.clone())
            .merge(runner_jobs::router(state.clone()))
            .merge(project_runners::router(state.clone()))
            .merge(runner_management::router(state))
    })
    .await;
    app.seed(world).await;
    app
}

/// An admin, group 10 with project 100 (`group/app`) whose `members` are given as
/// `(user id, access level)` with users `<name>` for each name in `users` (ids from 2), and one
/// instance runner with the token `runner`.
pub fn one_project_world(users: &[&str], members: &[(i64, i64)]) -> Value {
    let mut all =
        vec![json!({"id": 1, "username": "root", "admin": true, "tokens": [{"token": ADMIN}]})];
    for (i, name) in users.iter().enumerate() {
        all.push(
            json!({"id": i + 2, "username": name, "tokens": [{"token": format!("{name}-pat")}]}),
        );
    }
    let members: Vec<Value> = members
        .iter()
        .map(|(user, level)| json!({"user_id": user, "access_level": level}))
        .collect();
    json!({
        "users": all,
        "groups": [{"id": 10, "name": "Group", "path": "group"}],
        "projects": [{"id": 100, "name": "App", "path": "app", "namespace_id": 10, "members": members}],
        "runners": [{"id": 1, "token": "runner", "runner_type": "instance_type"}]
    })
}

pub async fn enqueue(app: &TestApp, token: &str, project: &str, body: Value) -> TestResponse {
    app.post(&format!("/api/v4/projects/{project}/jobs"))
        .header("PRIVATE-TOKEN", token)
        .json(body)
        .send()
        .await
}

/// Enqueues an untagged job on an unprotected ref of project 100 as the admin: its id.
pub async fn enqueue_simple(app: &TestApp, name: &str, r#ref: &str) -> i64 {
    enqueue(
        app,
        ADMIN,
        "100",
        json!({"name": name, "script": ["true"], "ref": r#ref}),
    )
    .await
    .expect(201)
    .body["id"]
        .as_i64()
        .unwrap()
}

/// Has the runner with this token take a job: (job id, job token).
pub async fn take(app: &TestApp, runner_token: &str) -> (i64, String) {
    let payload = app
        .post("/api/v4/jobs/request")
        .json(json!({"token": runner_token}))
        .send()
        .await
        .expect(201)
        .body;
    (
        payload["id"].as_i64().unwrap(),
        payload["token"].as_str().unwrap().to_owned(),
    )
}
