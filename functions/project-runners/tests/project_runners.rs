//! GET/POST /projects/:id/runners and DELETE /projects/:id/runners/:runner_id against DynamoDB
//! Local: GitLab's request-spec cases (7.7-7.9), path ids, inherited group runners, budgets, and
//! the invariants under concurrent requests.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use test_harness::{TestApp, TestResponse};

const ADMIN: &str = "admin-pat";
/// Maintainer of `project` (100) and `project2` (101), Owner of `group` (10).
const USER: &str = "user-pat";
/// Reporter of `project`.
const USER2: &str = "user2-pat";
const STRANGER: &str = "stranger-pat";
/// Maintainer of `top` (50), so of everything below it.
const DEEP: &str = "deep-pat";

fn world(extra_runners: Value) -> Value {
    let mut runners = json!([
        {"id": 1, "token": "t1", "runner_type": "instance_type", "description": "Shared runner"},
        {"id": 2, "token": "t2", "runner_type": "project_type", "description": "Project runner", "projects": [100], "tag_list": ["tag1", "tag2"]},
        {"id": 3, "token": "t3", "runner_type": "project_type", "description": "Two projects runner", "projects": [100, 101], "tag_list": ["tag2"]},
        {"id": 4, "token": "t4", "runner_type": "group_type", "description": "Group runner", "groups": [10]},
        {"id": 5, "token": "t5", "runner_type": "project_type", "description": "Project runner 2", "projects": [101]},
        {"id": 6, "token": "t6", "runner_type": "project_type", "description": "Unrelated runner", "projects": [102]},
        {"id": 7, "token": "t7", "runner_type": "group_type", "description": "Grandparent runner", "groups": [50]},
        {"id": 8, "token": "t8", "runner_type": "project_type", "description": "Leaf project runner", "projects": [110]}
    ]);
    if let (Some(list), Value::Array(more)) = (runners.as_array_mut(), extra_runners) {
        list.extend(more);
    }
    json!({
        "users": [
            {"id": 1, "username": "admin", "admin": true, "tokens": [{"token": ADMIN}]},
            {"id": 2, "username": "user", "tokens": [{"token": USER}]},
            {"id": 3, "username": "user2", "tokens": [{"token": USER2}]},
            {"id": 4, "username": "stranger", "tokens": [{"token": STRANGER}]},
            {"id": 5, "username": "deep", "tokens": [{"token": DEEP}]}
        ],
        "groups": [
            {"id": 10, "name": "Group", "path": "group", "members": [{"user_id": 2, "access_level": 50}]},
            {"id": 30, "name": "Org", "path": "org"},
            {"id": 40, "name": "Other", "path": "other"},
            {"id": 50, "name": "Top", "path": "top", "members": [{"user_id": 5, "access_level": 40}]},
            {"id": 51, "name": "Mid", "path": "mid", "parent_id": 50},
            {"id": 52, "name": "Leaf", "path": "leaf", "parent_id": 51}
        ],
        "projects": [
            {"id": 100, "name": "Project", "path": "project", "namespace_id": 30,
             "members": [{"user_id": 2, "access_level": 40}, {"user_id": 3, "access_level": 20}]},
            {"id": 101, "name": "Project2", "path": "project2", "namespace_id": 30, "members": [{"user_id": 2, "access_level": 40}]},
            {"id": 102, "name": "Unrelated", "path": "unrelated", "namespace_id": 40},
            {"id": 110, "name": "App", "path": "app", "namespace_id": 52}
        ],
        "runners": runners
    })
}

async fn app_with(extra: Value) -> TestApp {
    let app = TestApp::new(|state| {
        project_runners::router(state.clone())
            .merge(runner_management::router(state.clone()))
            .merge(runner_token::router(state))
    })
    .await;
    app.seed(world(extra)).await;
    app
}

async fn app() -> TestApp {
    app_with(json!([])).await
}

async fn list(app: &TestApp, token: &str, path: &str) -> TestResponse {
    app.get(path).header("PRIVATE-TOKEN", token).send().await
}

async fn enable(app: &TestApp, token: &str, project: &str, body: Value) -> TestResponse {
    app.post(&format!("/api/v4/projects/{project}/runners"))
        .header("PRIVATE-TOKEN", token)
        .json(body)
        .send()
        .await
}

async fn disable(app: &TestApp, token: &str, project: &str, runner: i64) -> TestResponse {
    app.delete(&format!("/api/v4/projects/{project}/runners/{runner}"))
        .header("PRIVATE-TOKEN", token)
        .send()
        .await
}

fn descriptions(response: &TestResponse) -> BTreeSet<String> {
    response
        .body
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|r| r["description"].as_str().map(str::to_owned))
        .collect()
}

fn ids(response: &TestResponse) -> Vec<i64> {
    response
        .body
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The runner's own list of projects and the projects holding a link to it must agree.
async fn assert_consistent(app: &TestApp, runner_id: i64, projects: &[i64]) -> Vec<i64> {
    let runner = app.store.get_runner(runner_id).await.unwrap().unwrap();
    let on_runner: Vec<i64> = runner.project_ids().collect();
    let mut linked = Vec::new();
    for project in projects {
        let link = app
            .store
            .client()
            .get_item()
            .table_name(app.store.table())
            .key("pk", AttributeValue::S(format!("PROJECT#{project}")))
            .key("sk", AttributeValue::S(format!("RUNNER#{runner_id:020}")))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        if link.item.is_some() {
            linked.push(*project);
        }
    }
    assert_eq!(
        on_runner, linked,
        "runner {runner_id}'s projects and the projects' links disagree"
    );
    on_runner
}

#[tokio::test]
async fn a_projects_runners() {
    let app = app_with(json!([
        {"id": 20, "token": "t20", "runner_type": "project_type", "description": "Inactive runner", "projects": [100], "active": false}
    ]))
    .await;
    let all = list(&app, USER, "/api/v4/projects/100/runners")
        .await
        .expect(200);
    assert_eq!(
        descriptions(&all),
        set(&[
            "Project runner",
            "Two projects runner",
            "Shared runner",
            "Inactive runner"
        ])
    );
    assert_eq!(ids(&all), [1, 2, 3, 20]);
    assert_eq!(all.header("x-total"), Some("4"));
    assert!(all.usage.round_trips <= 4, "{:?}", all.usage);
    let specific = list(&app, USER, "/api/v4/projects/100/runners?scope=specific")
        .await
        .expect(200);
    assert_eq!(ids(&specific), [2, 3, 20]);
    let typed = list(&app, USER, "/api/v4/projects/100/runners?type=project_type")
        .await
        .expect(200);
    assert_eq!(ids(&typed), [2, 3, 20]);
    let paused = list(&app, USER, "/api/v4/projects/100/runners?status=paused")
        .await
        .expect(200);
    assert_eq!(descriptions(&paused), set(&["Inactive runner"]));
    let tagged = list(
        &app,
        USER,
        "/api/v4/projects/100/runners?tag_list=tag1,tag2",
    )
    .await
    .expect(200);
    assert_eq!(ids(&tagged), [2]);
    for query in ["scope=unknown", "type=bogus", "status=bogus"] {
        list(&app, USER, &format!("/api/v4/projects/100/runners?{query}"))
            .await
            .expect(400);
    }
    let reporter = list(&app, USER2, "/api/v4/projects/100/runners")
        .await
        .expect(403);
    assert_eq!(reporter.body, json!({"message": "403 Forbidden"}));
    list(&app, USER2, "/api/v4/projects/100/runners?scope=unknown")
        .await
        .expect(403);
    app.get("/api/v4/projects/100/runners")
        .send()
        .await
        .expect(401);
    let invisible = list(&app, STRANGER, "/api/v4/projects/100/runners")
        .await
        .expect(404);
    assert_eq!(invisible.body, json!({"message": "404 Project Not Found"}));
    list(&app, ADMIN, "/api/v4/projects/999/runners")
        .await
        .expect(404);
    let paged = list(
        &app,
        ADMIN,
        "/api/v4/projects/100/runners?per_page=2&page=2",
    )
    .await
    .expect(200);
    assert_eq!(
        (ids(&paged), paged.header("x-total-pages")),
        (vec![3, 20], Some("2"))
    );
}

#[tokio::test]
async fn path_ids_and_runners_of_every_ancestor_group() {
    let app = app().await;
    let by_path = list(
        &app,
        DEEP,
        "/api/v4/projects/top%2Fmid%2Fleaf%2Fapp/runners",
    )
    .await
    .expect(200);
    assert_eq!(
        descriptions(&by_path),
        set(&["Shared runner", "Grandparent runner", "Leaf project runner"])
    );
    assert!(by_path.usage.round_trips <= 4, "{:?}", by_path.usage);
    let by_id = list(&app, DEEP, "/api/v4/projects/110/runners")
        .await
        .expect(200);
    assert_eq!(ids(&by_id), ids(&by_path));
    list(
        &app,
        DEEP,
        "/api/v4/projects/Top%2FMid%2FLeaf%2FApp/runners",
    )
    .await
    .expect(200);
    list(&app, USER, "/api/v4/projects/org%2Fproject/runners")
        .await
        .expect(200);
    list(&app, USER, "/api/v4/projects/org%2Fnothing/runners")
        .await
        .expect(404);
    list(
        &app,
        USER,
        "/api/v4/projects/top%2Fmid%2Fleaf%2Fapp/runners",
    )
    .await
    .expect(404);
}

#[tokio::test]
async fn enabling_a_runner() {
    let app = app().await;
    let enabled = enable(&app, USER, "100", json!({"runner_id": 5}))
        .await
        .expect(201);
    assert_eq!(
        (
            enabled.body["id"].clone(),
            enabled.body["description"].clone()
        ),
        (json!(5), json!("Project runner 2"))
    );
    assert!(enabled.usage.round_trips <= 4, "{:?}", enabled.usage);
    assert_eq!(assert_consistent(&app, 5, &[100, 101]).await, [100, 101]);
    assert_eq!(
        ids(&list(&app, USER, "/api/v4/projects/100/runners")
            .await
            .expect(200)),
        [1, 2, 3, 5]
    );

    let again = enable(&app, USER, "100", json!({"runner_id": 2}))
        .await
        .expect(400);
    assert_eq!(
        again.body,
        json!({"message": {"assign_to": ["Validation failed: Runner has already been taken"]}})
    );
    assert_eq!(assert_consistent(&app, 2, &[100, 101]).await, [100]);

    // A locked runner cannot be enabled elsewhere by a non-admin; unlocked it can (by path id).
    app.put("/api/v4/runners/2")
        .header("PRIVATE-TOKEN", ADMIN)
        .json(json!({"locked": true}))
        .send()
        .await
        .expect(200);
    let locked = enable(&app, USER, "101", json!({"runner_id": 2}))
        .await
        .expect(403);
    assert_eq!(
        locked.body,
        json!({"message": "403 Forbidden - Runner is locked"})
    );
    assert_eq!(assert_consistent(&app, 2, &[100, 101]).await, [100]);
    app.put("/api/v4/runners/2")
        .header("PRIVATE-TOKEN", ADMIN)
        .json(json!({"locked": false}))
        .send()
        .await
        .expect(200);
    enable(&app, USER, "org%2Fproject2", json!({"runner_id": 2}))
        .await
        .expect(201);
    assert_eq!(assert_consistent(&app, 2, &[100, 101]).await, [100, 101]);

    let shared = enable(&app, USER, "100", json!({"runner_id": 1}))
        .await
        .expect(403);
    assert_eq!(
        shared.body,
        json!({"message": "403 Forbidden - No access granted"})
    );
    let group = enable(&app, USER, "100", json!({"runner_id": 4}))
        .await
        .expect(403);
    assert_eq!(
        group.body,
        json!({"message": "403 Forbidden - Runner is a group runner"})
    );
    let group_by_admin = enable(&app, ADMIN, "100", json!({"runner_id": 4}))
        .await
        .expect(403);
    assert_eq!(
        group_by_admin.body,
        json!({"message": "403 Forbidden - Runner is a group runner"})
    );
    let not_owned = enable(&app, USER, "100", json!({"runner_id": 6}))
        .await
        .expect(403);
    assert_eq!(
        not_owned.body,
        json!({"message": "403 Forbidden - No access granted"})
    );
    enable(&app, USER, "100", json!({"runner_id": 9999}))
        .await
        .expect(404);

    let by_admin = enable(&app, ADMIN, "100", json!({"runner_id": 6}))
        .await
        .expect(201);
    assert_eq!(by_admin.body["runner_type"], json!("project_type"));
    assert_eq!(assert_consistent(&app, 6, &[100, 102]).await, [100, 102]);

    let converted = enable(&app, ADMIN, "100", json!({"runner_id": 1}))
        .await
        .expect(201);
    assert_eq!(
        (
            converted.body["is_shared"].clone(),
            converted.body["runner_type"].clone()
        ),
        (json!(false), json!("project_type"))
    );
    let stored = app.store.get_runner(1).await.unwrap().unwrap();
    assert_eq!(
        stored.runner_type,
        runners_shared::runner::RunnerType::Project
    );
    let shared_now = list(&app, ADMIN, "/api/v4/runners/all?scope=shared")
        .await
        .expect(200);
    assert!(
        !ids(&shared_now).contains(&1),
        "no longer listed as an instance runner"
    );
    assert_eq!(assert_consistent(&app, 1, &[100]).await, [100]);

    let missing = enable(&app, ADMIN, "100", json!({})).await.expect(400);
    assert_eq!(missing.body, json!({"error": "runner_id is missing"}));
    let reporter = enable(&app, USER2, "100", json!({})).await.expect(403);
    assert_eq!(reporter.body, json!({"message": "403 Forbidden"}));
    app.post("/api/v4/projects/100/runners")
        .json(json!({"runner_id": 5}))
        .send()
        .await
        .expect(401);
}

#[tokio::test]
async fn disabling_a_runner() {
    let app = app_with(json!([
        {"id": 21, "token": "t21", "runner_type": "project_type", "description": "Another two", "projects": [100, 101],
         "created_at": "2018-01-01T00:00:00.000Z", "updated_at": "2024-01-01T00:00:00.000Z"}
    ]))
    .await;
    let done = disable(&app, USER, "100", 3).await.expect(204);
    assert!(done.usage.round_trips <= 4, "{:?}", done.usage);
    assert_eq!(assert_consistent(&app, 3, &[100, 101]).await, [101]);
    assert!(
        !ids(&list(&app, USER, "/api/v4/projects/100/runners")
            .await
            .expect(200))
        .contains(&3)
    );

    // `If-Unmodified-Since` compares the link (enabled 2018, when runner 21 was created), not
    // the runner (changed in 2024), as GitLab compares `runner_project.updated_at`.
    let disable_unmodified_since = |project: &'static str, since: &'static str| {
        app.delete(&format!("/api/v4/projects/{project}/runners/21"))
            .header("PRIVATE-TOKEN", USER)
            .header("If-Unmodified-Since", since)
            .send()
    };
    let stale = disable_unmodified_since("100", "1990-01-12T00:00:48-0600")
        .await
        .expect(412);
    assert_eq!(stale.body, json!({"message": "412 Precondition Failed"}));
    let linked_before = disable_unmodified_since("100", "Wed, 01 Jan 2020 00:00:00 GMT")
        .await
        .expect(204);
    assert!(
        linked_before.usage.round_trips <= 4,
        "{:?}",
        linked_before.usage
    );
    assert_eq!(assert_consistent(&app, 21, &[100, 101]).await, [101]);
    // Enabled again now: the new link is younger than 2020.
    enable(&app, USER, "100", json!({"runner_id": 21}))
        .await
        .expect(201);
    disable_unmodified_since("100", "Wed, 01 Jan 2020 00:00:00 GMT")
        .await
        .expect(412);
    disable_unmodified_since("101", "Wed, 01 Jan 2020 00:00:00 GMT")
        .await
        .expect(204);
    assert_eq!(assert_consistent(&app, 21, &[100, 101]).await, [100]);

    let only = disable(&app, USER, "100", 2).await.expect(403);
    assert_eq!(
        only.body,
        json!({"message": "403 Forbidden - Only one project associated with the runner. Please remove the runner instead"})
    );
    assert_eq!(assert_consistent(&app, 2, &[100]).await, [100]);
    let unknown = disable(&app, USER, "100", 9999).await.expect(404);
    assert_eq!(unknown.body, json!({"message": "404 Runner Not Found"}));
    disable(&app, USER, "100", 5).await.expect(404);
    disable(&app, USER, "100", 1).await.expect(404);
    let invalid = app
        .delete("/api/v4/projects/100/runners/abc")
        .header("PRIVATE-TOKEN", USER)
        .send()
        .await
        .expect(400);
    assert_eq!(invalid.body, json!({"error": "runner_id is invalid"}));
    disable(&app, USER2, "100", 2).await.expect(403);
    app.delete("/api/v4/projects/100/runners/2")
        .send()
        .await
        .expect(401);
}

#[tokio::test]
async fn two_concurrent_disables_of_the_last_two_projects_leave_exactly_one() {
    for round in 0..5 {
        let app = app_with(json!([
            {"id": 30, "token": "t30", "runner_type": "project_type", "description": "Contested", "projects": [100, 101]}
        ]))
        .await;
        let (first, second) = futures_util::future::join(
            disable(&app, USER, "100", 30),
            disable(&app, USER, "101", 30),
        )
        .await;
        let mut statuses = [first.status, second.status];
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [204, 403],
            "round {round}: {} / {}",
            first.body,
            second.body
        );
        assert_eq!(
            assert_consistent(&app, 30, &[100, 101]).await.len(),
            1,
            "round {round}"
        );
    }
}

#[tokio::test]
async fn two_concurrent_enables_of_the_same_runner_give_one_201_and_one_400() {
    for round in 0..5 {
        let app = app().await;
        let (first, second) = futures_util::future::join(
            enable(&app, USER, "100", json!({"runner_id": 5})),
            enable(&app, USER, "100", json!({"runner_id": 5})),
        )
        .await;
        let mut statuses = [first.status, second.status];
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [201, 400],
            "round {round}: {} / {}",
            first.body,
            second.body
        );
        assert_eq!(
            assert_consistent(&app, 5, &[100, 101]).await,
            [100, 101],
            "round {round}"
        );
    }
}

#[tokio::test]
async fn hostile_project_and_runner_ids_get_gitlabs_json_answers() {
    let app = app().await;
    // Past DynamoDB's 2,048-byte key limit: was a 500, is a miss without a read.
    let long = "a%2F".repeat(1100) + "project";
    for project in [long.as_str(), "%FF", "group%2F%C3%28"] {
        let path = format!("/api/v4/projects/{project}/runners");
        let anonymous = app.get(&path).send().await;
        assert_eq!(
            (anonymous.status, anonymous.body),
            (401, json!({"message": "401 Unauthorized"}))
        );
        let listed = list(&app, USER, &path).await;
        assert_eq!(
            (listed.status, &listed.body),
            (404, &json!({"message": "404 Project Not Found"}))
        );
        assert_eq!(listed.usage.calls, 1, "only the token is read");
        enable(&app, ADMIN, project, json!({"runner_id": 8}))
            .await
            .expect(404);
        disable(&app, ADMIN, project, 2).await.expect(404);
    }
    let bad_runner = app
        .delete("/api/v4/projects/100/runners/%FF")
        .header("PRIVATE-TOKEN", USER)
        .send()
        .await
        .expect(400);
    assert_eq!(bad_runner.body, json!({"error": "runner_id is invalid"}));

    // One value where Grape declares an Integer: a list is invalid, never its last element.
    for body in [
        json!({"runner_id": [2, 8]}),
        json!({"runner_id": {"id": 8}}),
    ] {
        let response = enable(&app, ADMIN, "101", body).await.expect(400);
        assert_eq!(response.body, json!({"error": "runner_id is invalid"}));
    }
    let runner = app.store.get_runner(8).await.unwrap().unwrap();
    assert_eq!(runner.project_ids().collect::<Vec<_>>(), [110]);
}
