//! `GET /groups/:id/runners` and the three registration-token resets (modern-runners.md):
//! who may, GitLab's answers, and that an old registration token stops working at once, also
//! when two resets race.

use futures_util::future::join_all;
use serde_json::{Value, json};
use test_harness::{TestApp, TestResponse};

const ADMIN: &str = "admin-pat";
/// Owner of `top` (50).
const OWNER: &str = "owner-pat";
/// Maintainer of `mid` (51), so of `mid/app` (110).
const MAINTAINER: &str = "maintainer-pat";
/// Reporter of `mid` (51).
const REPORTER: &str = "reporter-pat";
const STRANGER: &str = "stranger-pat";

fn world() -> Value {
    json!({
        "settings": {"runners_registration_token": "instance-reg"},
        "users": [
            {"id": 1, "username": "admin", "admin": true, "tokens": [{"token": ADMIN}]},
            {"id": 2, "username": "owner", "tokens": [{"token": OWNER}]},
            {"id": 3, "username": "maintainer", "tokens": [{"token": MAINTAINER}]},
            {"id": 4, "username": "reporter", "tokens": [{"token": REPORTER}]},
            {"id": 5, "username": "stranger", "tokens": [{"token": STRANGER}]}
        ],
        "groups": [
            {"id": 50, "name": "Top", "path": "top", "runners_token": "top-reg",
             "members": [{"user_id": 2, "access_level": 50}]},
            {"id": 51, "name": "Mid", "path": "mid", "parent_id": 50, "runners_token": "mid-reg",
             "members": [{"user_id": 3, "access_level": 40}, {"user_id": 4, "access_level": 20}]},
            {"id": 60, "name": "Other", "path": "other"}
        ],
        "projects": [
            {"id": 110, "name": "App", "path": "app", "namespace_id": 51, "runners_token": "app-reg"}
        ],
        "runners": [
            {"id": 1, "token": "t1", "runner_type": "instance_type", "description": "instance"},
            {"id": 2, "token": "t2", "runner_type": "group_type", "groups": [50], "description": "top", "tag_list": ["docker"]},
            {"id": 3, "token": "t3", "runner_type": "group_type", "groups": [51], "description": "mid", "active": false},
            {"id": 4, "token": "t4", "runner_type": "group_type", "groups": [60], "description": "other"},
            {"id": 5, "token": "t5", "runner_type": "project_type", "projects": [110], "description": "app"}
        ]
    })
}

async fn app() -> TestApp {
    let app = TestApp::new(|state| {
        project_runners::router(state.clone())
            .merge(runner_management::router(state.clone()))
            .merge(runner_token::router(state))
    })
    .await;
    app.seed(world()).await;
    app
}

async fn get(app: &TestApp, pat: &str, path: &str) -> TestResponse {
    app.get(path).header("PRIVATE-TOKEN", pat).send().await
}

async fn post(app: &TestApp, pat: &str, path: &str) -> TestResponse {
    app.post(path).header("PRIVATE-TOKEN", pat).send().await
}

fn ids(response: &TestResponse) -> Vec<i64> {
    response
        .body
        .as_array()
        .expect("an array")
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

async fn register(app: &TestApp, token: &str) -> u16 {
    app.post("/api/v4/runners")
        .json(json!({"token": token}))
        .send()
        .await
        .status
}

#[tokio::test]
async fn a_groups_runners_are_its_own_its_ancestors_and_the_instances() {
    let app = app().await;
    let listed = get(&app, MAINTAINER, "/api/v4/groups/51/runners")
        .await
        .expect(200);
    assert_eq!(ids(&listed), [1, 2, 3]);
    assert_eq!(listed.header("x-total"), Some("3"));
    // By full path, with filters; `scope` is not a parameter here.
    let by_path = get(
        &app,
        OWNER,
        "/api/v4/groups/top%2Fmid/runners?type=group_type",
    )
    .await
    .expect(200);
    assert_eq!(ids(&by_path), [2, 3]);
    let paused = get(&app, OWNER, "/api/v4/groups/51/runners?paused=true")
        .await
        .expect(200);
    assert_eq!(ids(&paused), [3]);
    let tagged = get(&app, OWNER, "/api/v4/groups/51/runners?tag_list=docker")
        .await
        .expect(200);
    assert_eq!(ids(&tagged), [2]);
    let projects = get(&app, ADMIN, "/api/v4/groups/51/runners?type=project_type")
        .await
        .expect(200);
    assert_eq!(projects.body, json!([]), "never a project's runners");
    let ignored = get(&app, ADMIN, "/api/v4/groups/51/runners?scope=whatever")
        .await
        .expect(200);
    assert_eq!(ids(&ignored), [1, 2, 3]);
    let paged = get(&app, ADMIN, "/api/v4/groups/51/runners?per_page=2&page=2")
        .await
        .expect(200);
    assert_eq!(ids(&paged), [3]);
    assert!(listed.usage.round_trips <= 4, "{:?}", listed.usage);

    // A Reporter sees the group but may not list its runners; a stranger does not see it.
    get(&app, REPORTER, "/api/v4/groups/51/runners")
        .await
        .expect(403);
    let hidden = get(&app, STRANGER, "/api/v4/groups/51/runners")
        .await
        .expect(404);
    assert_eq!(hidden.body, json!({"message": "404 Group Not Found"}));
    get(&app, ADMIN, "/api/v4/groups/999/runners")
        .await
        .expect(404);
    get(&app, "nope", "/api/v4/groups/51/runners")
        .await
        .expect(401);
    let bad = get(&app, ADMIN, "/api/v4/groups/51/runners?status=sleepy")
        .await
        .expect(400);
    assert_eq!(
        bad.body,
        json!({"error": "status does not have a valid value"})
    );
}

#[tokio::test]
async fn registration_tokens_are_reset_by_whoever_may() {
    let app = app().await;
    let instance = post(&app, ADMIN, "/api/v4/runners/reset_registration_token")
        .await
        .expect(201);
    let keys: Vec<&String> = instance.body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["token"],
        "no token_expires_at for registration tokens"
    );
    let new_instance = instance.body["token"].as_str().unwrap().to_owned();
    assert_eq!(
        register(&app, "instance-reg").await,
        403,
        "the old one is gone"
    );
    assert_eq!(register(&app, &new_instance).await, 201);

    let group = post(
        &app,
        OWNER,
        "/api/v4/groups/50/runners/reset_registration_token",
    )
    .await
    .expect(201);
    assert_eq!(register(&app, "top-reg").await, 403);
    assert_eq!(
        register(&app, group.body["token"].as_str().unwrap()).await,
        201
    );
    // Owner of an ancestor is Owner below; a Maintainer is not enough for a group.
    post(
        &app,
        OWNER,
        "/api/v4/groups/top%2Fmid/runners/reset_registration_token",
    )
    .await
    .expect(201);
    post(
        &app,
        MAINTAINER,
        "/api/v4/groups/51/runners/reset_registration_token",
    )
    .await
    .expect(403);

    let project = post(
        &app,
        MAINTAINER,
        "/api/v4/projects/110/runners/reset_registration_token",
    )
    .await
    .expect(201);
    assert!(project.usage.round_trips <= 4, "{:?}", project.usage);
    assert_eq!(register(&app, "app-reg").await, 403);
    assert_eq!(
        register(&app, project.body["token"].as_str().unwrap()).await,
        201
    );

    for (pat, path, status, body) in [
        (
            MAINTAINER,
            "/api/v4/runners/reset_registration_token",
            403,
            json!({"message": "403 Forbidden"}),
        ),
        (
            REPORTER,
            "/api/v4/projects/110/runners/reset_registration_token",
            403,
            json!({"message": "403 Forbidden"}),
        ),
        (
            STRANGER,
            "/api/v4/projects/110/runners/reset_registration_token",
            404,
            json!({"message": "404 Project Not Found"}),
        ),
        (
            STRANGER,
            "/api/v4/groups/50/runners/reset_registration_token",
            404,
            json!({"message": "404 Group Not Found"}),
        ),
        (
            ADMIN,
            "/api/v4/projects/999/runners/reset_registration_token",
            404,
            json!({"message": "404 Project Not Found"}),
        ),
        (
            "nope",
            "/api/v4/runners/reset_registration_token",
            401,
            json!({"message": "401 Unauthorized"}),
        ),
    ] {
        let refused = post(&app, pat, path).await;
        assert_eq!(
            (refused.status, &refused.body),
            (status, &body),
            "{pat} {path}"
        );
    }
}

#[tokio::test]
async fn racing_resets_leave_exactly_one_working_token() {
    let app = app().await;
    let answers = join_all((0..6).map(|_| {
        post(
            &app,
            ADMIN,
            "/api/v4/projects/110/runners/reset_registration_token",
        )
    }))
    .await;
    let tokens: Vec<String> = answers
        .iter()
        .filter(|a| a.status == 201)
        .map(|a| a.body["token"].as_str().unwrap().to_owned())
        .collect();
    assert!(!tokens.is_empty());
    assert!(
        answers.iter().all(|a| a.status == 201 || a.status == 503),
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    let mut working = 0;
    for token in &tokens {
        if register(&app, token).await == 201 {
            working += 1;
        }
    }
    assert_eq!(working, 1, "one token stands; every other was replaced");
    assert_eq!(register(&app, "app-reg").await, 403);
}

#[tokio::test]
async fn with_registration_tokens_off_nobody_resets_one() {
    let app = app().await;
    app.store.set_allow_registration_token(false).await.unwrap();
    for path in [
        "/api/v4/runners/reset_registration_token",
        "/api/v4/groups/50/runners/reset_registration_token",
        "/api/v4/projects/110/runners/reset_registration_token",
    ] {
        let refused = post(&app, ADMIN, path).await.expect(403);
        assert_eq!(refused.body, json!({"message": "403 Forbidden"}), "{path}");
    }
}
