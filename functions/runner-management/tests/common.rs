//! The fixture world of GitLab's runner request specs, grown for inheritance and auth cases.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::collections::BTreeSet;
use test_harness::{TestApp, TestResponse};

pub const ADMIN: &str = "admin-pat";
/// Maintainer of `project` and `project2`, Owner of `group`.
pub const USER: &str = "user-pat";
pub const USER_READ_ONLY: &str = "user-read";
pub const USER_EXPIRED: &str = "user-expired";
/// Reporter of `project`.
pub const USER2: &str = "user2-pat";
/// Owner of `parent`, so of `parent/child` and its project by inheritance.
pub const OWNER: &str = "owner-pat";
pub const STRANGER: &str = "stranger-pat";
pub const BLOCKED: &str = "blocked-pat";

pub const SHARED: i64 = 1;
pub const PROJECT_RUNNER: i64 = 2;
pub const TWO_PROJECTS: i64 = 3;
pub const GROUP_RUNNER: i64 = 4;
pub const GROUP2_RUNNER: i64 = 5;
pub const CHILD_GROUP_RUNNER: i64 = 6;
pub const DEEP_PROJECT_RUNNER: i64 = 7;

pub fn world() -> Value {
    json!({
        "settings": {"runners_registration_token": "registration-token"},
        "users": [
            {"id": 1, "username": "admin", "name": "Administrator", "admin": true, "tokens": [{"token": ADMIN}]},
            {"id": 2, "username": "user", "name": "User", "email": "user@example.com",
             "tokens": [{"token": USER}, {"token": USER_READ_ONLY, "scopes": ["read_api"]},
                        {"token": USER_EXPIRED, "expires_at": "2001-01-01"}]},
            {"id": 3, "username": "user2", "tokens": [{"token": USER2}]},
            {"id": 4, "username": "owner", "tokens": [{"token": OWNER}]},
            {"id": 5, "username": "stranger", "tokens": [{"token": STRANGER}]},
            {"id": 6, "username": "blocked", "state": "blocked", "tokens": [{"token": BLOCKED}]}
        ],
        "groups": [
            {"id": 10, "name": "Group", "path": "group", "members": [{"user_id": 2, "access_level": 50}]},
            {"id": 20, "name": "Group2", "path": "group2"},
            {"id": 30, "name": "Org", "path": "org"},
            {"id": 40, "name": "Parent", "path": "parent", "members": [{"user_id": 4, "access_level": 50}]},
            {"id": 41, "name": "Child", "path": "child", "parent_id": 40}
        ],
        "projects": [
            {"id": 100, "name": "Project", "path": "project", "namespace_id": 30,
             "members": [{"user_id": 2, "access_level": 40}, {"user_id": 3, "access_level": 20}]},
            {"id": 101, "name": "Project2", "path": "project2", "namespace_id": 30,
             "members": [{"user_id": 2, "access_level": 40}]},
            {"id": 102, "name": "Deep", "path": "deep", "namespace_id": 41}
        ],
        "runners": [
            {"id": SHARED, "token": "t1", "runner_type": "instance_type", "description": "Shared runner",
             "ip_address": "10.0.0.1", "updated_at": "2019-01-01T00:00:00.000Z"},
            {"id": PROJECT_RUNNER, "token": "t2", "runner_type": "project_type", "description": "Project runner",
             "projects": [100], "tag_list": ["tag1", "tag2"], "updated_at": "2019-01-01T00:00:00.000Z"},
            {"id": TWO_PROJECTS, "token": "t3", "runner_type": "project_type", "description": "Two projects runner",
             "projects": [100, 101], "tag_list": ["tag2"]},
            {"id": GROUP_RUNNER, "token": "t4", "runner_type": "group_type", "description": "Group runner", "groups": [10]},
            {"id": GROUP2_RUNNER, "token": "t5", "runner_type": "group_type", "description": "Group2 runner", "groups": [20]},
            {"id": CHILD_GROUP_RUNNER, "token": "t6", "runner_type": "group_type", "description": "Child group runner", "groups": [41]},
            {"id": DEEP_PROJECT_RUNNER, "token": "t7", "runner_type": "project_type", "description": "Deep project runner", "projects": [102]}
        ],
        "jobs": [
            {"id": 1002, "runner_id": SHARED, "project_id": 100, "user_id": 2, "status": "running", "stage": "test",
             "name": "rspec", "ref": "master", "started_at": "2019-01-01T00:00:01.000Z"},
            {"id": 1003, "runner_id": SHARED, "project_id": 100, "user_id": 2, "status": "failed"},
            {"id": 1004, "runner_id": PROJECT_RUNNER, "project_id": 100, "user_id": 2, "status": "running"},
            {"id": 1005, "runner_id": PROJECT_RUNNER, "project_id": 100, "user_id": 2, "status": "failed",
             "stage": "test", "name": "rspec", "ref": "master", "tag": false, "coverage": 98.29,
             "created_at": "2019-01-01T00:00:00.000Z", "started_at": "2019-01-01T00:00:01.000Z",
             "finished_at": "2019-01-01T00:02:01.000Z",
             "commit": {"id": "97de212e80737a608d939f648d959671fb0a0142", "short_id": "97de212e",
                        "title": "Update configuration", "created_at": "2019-01-01T00:00:00.000Z", "parent_ids": [],
                        "message": "Update configuration", "author_name": "A", "author_email": "a@example.com",
                        "authored_date": "2019-01-01T00:00:00.000Z", "committer_name": "A",
                        "committer_email": "a@example.com", "committed_date": "2019-01-01T00:00:00.000Z"},
             "pipeline": {"id": 50, "sha": "97de212e80737a608d939f648d959671fb0a0142", "ref": "master", "status": "failed"}}
        ]
    })
}

/// An app serving both functions (as `runnerctl serve` and API Gateway do), seeded with `world`.
pub async fn app_with(world: Value) -> TestApp {
    let app = TestApp::new(|state| {
        runner_management::router(state.clone()).merge(runner_token::router(state))
    })
    .await;
    app.seed(world).await;
    app
}

pub async fn app() -> TestApp {
    app_with(world()).await
}

/// The world with extra runners.
pub fn world_with_runners(extra: Value) -> Value {
    let mut w = world();
    if let (Some(runners), Value::Array(more)) = (w["runners"].as_array_mut(), extra) {
        runners.extend(more);
    }
    w
}

pub async fn get(app: &TestApp, token: &str, path: &str) -> TestResponse {
    app.get(path).header("PRIVATE-TOKEN", token).send().await
}

pub fn descriptions(response: &TestResponse) -> BTreeSet<String> {
    response
        .body
        .as_array()
        .expect("a JSON array")
        .iter()
        .filter_map(|r| r["description"].as_str().map(str::to_owned))
        .collect()
}

pub fn ids(response: &TestResponse) -> Vec<i64> {
    response
        .body
        .as_array()
        .expect("a JSON array")
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .collect()
}

pub fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

pub fn error(response: &TestResponse) -> &str {
    response.body["error"].as_str().unwrap_or_default()
}
