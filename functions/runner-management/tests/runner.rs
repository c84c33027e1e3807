//! GET/PUT/DELETE /runners/:id and GET /runners/:id/jobs: GitLab's request-spec cases (7.3-7.6),
//! visibility of projects, round trips, /user and /version.

mod common;
use common::*;
use serde_json::{Value, json};
use test_harness::{TestApp, TestResponse};

async fn put(app: &TestApp, token: &str, id: i64, body: Value) -> TestResponse {
    app.put(&format!("/api/v4/runners/{id}"))
        .header("PRIVATE-TOKEN", token)
        .json(body)
        .send()
        .await
}

async fn delete(app: &TestApp, token: &str, id: i64) -> TestResponse {
    app.delete(&format!("/api/v4/runners/{id}"))
        .header("PRIVATE-TOKEN", token)
        .send()
        .await
}

#[tokio::test]
async fn get_one_runner() {
    let app = app().await;
    let shared = get(&app, ADMIN, "/api/v4/runners/1").await.expect(200);
    assert_eq!(
        (
            shared.body["description"].clone(),
            shared.body["maximum_timeout"].clone()
        ),
        (json!("Shared runner"), json!(null))
    );
    assert!(shared.usage.round_trips <= 2, "admin: {:?}", shared.usage);
    let project = get(&app, ADMIN, "/api/v4/runners/2").await.expect(200);
    assert_eq!(project.body["description"], json!("Project runner"));
    assert_eq!(project.body["projects"][0]["id"], json!(100));
    assert_eq!(
        project.body["projects"][0]["path_with_namespace"],
        json!("org/project")
    );
    assert_eq!(
        project.body["projects"][0]["name_with_namespace"],
        json!("Org / Project")
    );
    assert_eq!(project.body["tag_list"], json!(["tag1", "tag2"]));
    assert!(project.body.get("token").is_none());
    let missing = get(&app, ADMIN, "/api/v4/runners/9999").await.expect(404);
    assert_eq!(missing.body, json!({"message": "404 Runner Not Found"}));

    let owned = get(&app, USER, "/api/v4/runners/2").await.expect(200);
    assert!(owned.usage.round_trips <= 3, "non-admin: {:?}", owned.usage);
    get(&app, USER, "/api/v4/runners/1").await.expect(200);
    let reporter = get(&app, USER2, "/api/v4/runners/2").await.expect(403);
    assert_eq!(
        reporter.body,
        json!({"message": "403 Forbidden - No access granted"})
    );
    app.get("/api/v4/runners/2").send().await.expect(401);

    let invalid = get(&app, USER, "/api/v4/runners/abc").await.expect(400);
    assert_eq!(invalid.body, json!({"error": "id is invalid"}));
    app.get("/api/v4/runners/abc").send().await.expect(401);

    let group = app
        .get("/api/v4/runners/4")
        .header("PRIVATE-TOKEN", USER)
        .header("Host", "gl.example")
        .send()
        .await
        .expect(200);
    assert_eq!(
        group.body["groups"],
        json!([{"id": 10, "name": "Group", "web_url": "http://gl.example/groups/group"}])
    );
    let inherited = get(&app, OWNER, "/api/v4/runners/7").await.expect(200);
    assert_eq!(
        inherited.body["projects"][0]["path_with_namespace"],
        json!("parent/child/deep")
    );
}

#[tokio::test]
async fn details_list_only_the_projects_the_caller_can_see() {
    let app = app_with(world_with_runners(json!([
        {"id": 30, "token": "t30", "runner_type": "project_type", "description": "Spread", "projects": [100, 102]}
    ])))
    .await;
    let ids = |r: &TestResponse| {
        r.body["projects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&get(&app, USER, "/api/v4/runners/30").await.expect(200)),
        [100]
    );
    assert_eq!(
        ids(&get(&app, OWNER, "/api/v4/runners/30").await.expect(200)),
        [102]
    );
    assert_eq!(
        ids(&get(&app, ADMIN, "/api/v4/runners/30").await.expect(200)),
        [100, 102]
    );
}

#[tokio::test]
async fn update_a_runner() {
    let app = app().await;
    let description = put(
        &app,
        ADMIN,
        1,
        json!({"description": "Shared runner_updated"}),
    )
    .await
    .expect(200);
    assert_eq!(
        description.body["description"],
        json!("Shared runner_updated")
    );
    assert!(
        description.usage.round_trips <= 4,
        "{:?}",
        description.usage
    );
    assert_eq!(
        put(&app, ADMIN, 1, json!({"active": false}))
            .await
            .expect(200)
            .body["active"],
        json!(false)
    );
    let tags = put(
        &app,
        ADMIN,
        1,
        json!({"tag_list": ["ruby2.1", "pgsql", "mysql"]}),
    )
    .await
    .expect(200);
    assert_eq!(tags.body["tag_list"], json!(["ruby2.1", "pgsql", "mysql"]));
    assert_eq!(
        tags.body["description"],
        json!("Shared runner_updated"),
        "only sent attributes change"
    );
    assert_eq!(
        put(&app, ADMIN, 1, json!({"run_untagged": "false"}))
            .await
            .expect(200)
            .body["run_untagged"],
        json!(false)
    );
    assert_eq!(
        put(&app, ADMIN, 1, json!({"locked": "true"}))
            .await
            .expect(200)
            .body["locked"],
        json!(true)
    );
    assert_eq!(
        put(&app, ADMIN, 1, json!({"access_level": "ref_protected"}))
            .await
            .expect(200)
            .body["access_level"],
        json!("ref_protected")
    );
    assert_eq!(
        put(&app, ADMIN, 1, json!({"maximum_timeout": 1234}))
            .await
            .expect(200)
            .body["maximum_timeout"],
        json!(1234)
    );
    let stored = app.store.get_runner(1).await.unwrap().unwrap();
    assert_eq!(
        (stored.maximum_timeout, stored.locked, stored.run_untagged),
        (Some(1234), true, false)
    );

    let none = put(&app, ADMIN, 1, json!({})).await.expect(400);
    assert_eq!(
        none.body,
        json!({"error": "description, active, tag_list, run_untagged, locked, access_level, maximum_timeout are missing, at least one parameter must be provided"})
    );
    let all = put(&app, ADMIN, 2, json!({"description": "all", "active": false, "tag_list": ["x"], "run_untagged": false,
                                         "locked": true, "access_level": "ref_protected", "maximum_timeout": 3600}))
        .await
        .expect(200);
    for (key, value) in [
        ("description", json!("all")),
        ("active", json!(false)),
        ("paused", json!(true)),
        ("tag_list", json!(["x"])),
        ("run_untagged", json!(false)),
        ("locked", json!(true)),
        ("access_level", json!("ref_protected")),
        ("maximum_timeout", json!(3600)),
    ] {
        assert_eq!(all.body[key], value, "{key}");
    }
    let empty = put(&app, ADMIN, 2, json!({"description": ""}))
        .await
        .expect(200);
    assert_eq!(
        empty.body["description"],
        json!(""),
        "an empty description is applied"
    );
    let untagged = put(&app, ADMIN, 2, json!({"tag_list": []}))
        .await
        .expect(400);
    assert_eq!(
        untagged.body,
        json!({"message": {"tags_list": ["can not be empty when runner is not allowed to pick untagged jobs"]}})
    );
    let short = put(&app, ADMIN, 2, json!({"maximum_timeout": 599}))
        .await
        .expect(400);
    assert_eq!(
        short.body,
        json!({"message": {"maximum_timeout": ["needs to be at least 10 minutes"]}})
    );
    assert_eq!(
        put(&app, ADMIN, 2, json!({"paused": false}))
            .await
            .expect(200)
            .body["active"],
        json!(true)
    );
    put(&app, ADMIN, 9999, json!({"description": "x"}))
        .await
        .expect(404);
    assert_eq!(
        error(
            &put(&app, ADMIN, 2, json!({"active": "maybe"}))
                .await
                .expect(400)
        ),
        "active is invalid"
    );

    put(&app, USER, 1, json!({"description": "mine"}))
        .await
        .expect(403);
    put(&app, USER2, 2, json!({"description": "mine"}))
        .await
        .expect(403);
    let own = put(&app, USER, 3, json!({"description": "owned"}))
        .await
        .expect(200);
    assert_eq!(own.body["projects"].as_array().unwrap().len(), 2);
    put(&app, USER_READ_ONLY, 3, json!({"description": "x"}))
        .await
        .expect(403);
    app.put("/api/v4/runners/3")
        .json(json!({"description": "x"}))
        .send()
        .await
        .expect(401);
    // A form body, as the Kitware crate sends it.
    let form = app
        .put("/api/v4/runners/3")
        .header("PRIVATE-TOKEN", USER)
        .form("description=form&paused=true&tag_list=a%2Cb")
        .send()
        .await
        .expect(200);
    assert_eq!(
        (
            form.body["description"].clone(),
            form.body["active"].clone(),
            form.body["tag_list"].clone()
        ),
        (json!("form"), json!(false), json!(["a", "b"]))
    );
}

#[tokio::test]
async fn an_update_keeps_a_concurrent_heartbeat() {
    let app = app().await;
    app.post("/api/v4/runners/verify")
        .json(json!({"token": "t2", "info": {"version": "12.1"}}))
        .send()
        .await
        .expect(200);
    put(&app, USER, 2, json!({"description": "renamed"}))
        .await
        .expect(200);
    let runner = app.store.get_runner(2).await.unwrap().unwrap();
    assert!(runner.contacted_at.is_some());
    assert_eq!(runner.info.version.as_deref(), Some("12.1"));
    assert_eq!(runner.description.as_deref(), Some("renamed"));
}

#[tokio::test]
async fn delete_a_runner() {
    let app = app().await;
    delete(&app, USER, SHARED).await.expect(403);
    delete(&app, USER2, PROJECT_RUNNER).await.expect(403);
    let several = delete(&app, USER, TWO_PROJECTS).await.expect(403);
    assert_eq!(
        several.body,
        json!({"message": "403 Forbidden - Runner associated with more than one project"})
    );
    let stale = app
        .delete("/api/v4/runners/2")
        .header("PRIVATE-TOKEN", USER)
        .header("If-Unmodified-Since", "1990-01-12T00:00:48-0600")
        .send()
        .await
        .expect(412);
    assert_eq!(stale.body, json!({"message": "412 Precondition Failed"}));
    let deleted = app
        .delete("/api/v4/runners/2")
        .header("PRIVATE-TOKEN", USER)
        .header(
            "If-Unmodified-Since",
            &runners_shared::time::Timestamp::now().to_string(),
        )
        .send()
        .await
        .expect(204);
    assert!(deleted.usage.round_trips <= 4, "{:?}", deleted.usage);
    get(&app, ADMIN, "/api/v4/runners/2").await.expect(404);
    app.post("/api/v4/runners/verify")
        .json(json!({"token": "t2"}))
        .send()
        .await
        .expect(403);
    let listed = get(&app, USER, "/api/v4/runners").await.expect(200);
    assert_eq!(
        ids(&listed),
        [TWO_PROJECTS, GROUP_RUNNER],
        "its links went with it"
    );

    delete(&app, ADMIN, SHARED).await.expect(204);
    delete(&app, ADMIN, TWO_PROJECTS).await.expect(204);
    delete(&app, ADMIN, 9999).await.expect(404);
    delete(&app, OWNER, CHILD_GROUP_RUNNER).await.expect(204);
    app.delete("/api/v4/runners/4").send().await.expect(401);
    delete(&app, USER_READ_ONLY, GROUP_RUNNER).await.expect(403);
    let remaining = get(&app, ADMIN, "/api/v4/runners/all").await.expect(200);
    assert_eq!(
        ids(&remaining),
        [GROUP_RUNNER, GROUP2_RUNNER, DEEP_PROJECT_RUNNER]
    );
}

#[tokio::test]
async fn a_runners_jobs() {
    let app = app().await;
    let shared = get(&app, ADMIN, "/api/v4/runners/1/jobs").await.expect(200);
    assert_eq!(ids(&shared), [1002, 1003]);
    assert_eq!(shared.header("x-total"), Some("2"));
    let own = get(&app, ADMIN, "/api/v4/runners/2/jobs").await.expect(200);
    assert_eq!(ids(&own), [1004, 1005]);
    assert_eq!(
        ids(&get(&app, ADMIN, "/api/v4/runners/2/jobs?status=failed")
            .await
            .expect(200)),
        [1005]
    );
    get(&app, ADMIN, "/api/v4/runners/2/jobs?status=non-existing")
        .await
        .expect(400);
    get(&app, ADMIN, "/api/v4/runners/9999/jobs")
        .await
        .expect(404);
    get(&app, USER, "/api/v4/runners/1/jobs").await.expect(403);
    let users = get(&app, USER, "/api/v4/runners/2/jobs").await.expect(200);
    assert_eq!(ids(&users), [1004, 1005]);
    assert!(users.usage.round_trips <= 3, "{:?}", users.usage);
    assert_eq!(
        ids(&get(&app, USER, "/api/v4/runners/2/jobs?status=failed")
            .await
            .expect(200)),
        [1005]
    );
    get(&app, USER, "/api/v4/runners/2/jobs?status=done")
        .await
        .expect(400);
    get(&app, USER, "/api/v4/runners/9999/jobs")
        .await
        .expect(404);
    get(&app, USER2, "/api/v4/runners/2/jobs").await.expect(403);
    app.get("/api/v4/runners/2/jobs").send().await.expect(401);

    assert_eq!(
        ids(&get(&app, USER, "/api/v4/runners/2/jobs?order_by=id")
            .await
            .expect(200)),
        [1005, 1004]
    );
    assert_eq!(
        ids(
            &get(&app, USER, "/api/v4/runners/2/jobs?order_by=id&sort=asc")
                .await
                .expect(200)
        ),
        [1004, 1005]
    );
    assert_eq!(
        ids(&get(&app, USER, "/api/v4/runners/2/jobs?sort=desc")
            .await
            .expect(200)),
        [1004, 1005],
        "sort alone does not reorder"
    );
    assert_eq!(
        error(
            &get(&app, USER, "/api/v4/runners/2/jobs?order_by=name")
                .await
                .expect(400)
        ),
        "order_by does not have a valid value"
    );
    assert_eq!(
        error(
            &get(&app, USER, "/api/v4/runners/2/jobs?sort=up")
                .await
                .expect(400)
        ),
        "sort does not have a valid value"
    );

    let job = &own.body[1];
    assert_eq!(job["duration"], json!(120.0));
    assert_eq!(job["coverage"], json!(98.29));
    assert_eq!(job["commit"]["short_id"], json!("97de212e"));
    assert_eq!(
        job["pipeline"],
        json!({"id": 50, "sha": "97de212e80737a608d939f648d959671fb0a0142", "ref": "master", "status": "failed"})
    );
    assert_eq!(
        job["project"],
        json!({"id": 100, "description": null, "name": "Project", "name_with_namespace": "Org / Project",
                                       "path": "project", "path_with_namespace": "org/project", "created_at": "1970-01-01T00:00:00.000Z"})
    );
    assert_eq!(job["user"]["username"], json!("user"));
    assert_eq!(own.body[0]["commit"], json!(null));
}

#[tokio::test]
async fn current_user_and_version() {
    let app = app().await;
    let me = app
        .get("/api/v4/user")
        .header("Authorization", "Bearer user-pat")
        .header("Host", "gl.example")
        .send()
        .await
        .expect(200);
    for (key, value) in [
        ("id", json!(2)),
        ("username", json!("user")),
        ("name", json!("User")),
        ("state", json!("active")),
        ("email", json!("user@example.com")),
        ("is_admin", json!(false)),
        ("web_url", json!("http://gl.example/user")),
    ] {
        assert_eq!(me.body[key], value, "{key}");
    }
    for key in [
        "avatar_url",
        "created_at",
        "bio",
        "location",
        "public_email",
        "skype",
        "linkedin",
        "twitter",
        "website_url",
        "organization",
    ] {
        assert!(me.body.get(key).is_some(), "{key}");
    }
    assert_eq!(
        get(&app, ADMIN, "/api/v4/user").await.expect(200).body["is_admin"],
        json!(true)
    );
    assert_eq!(
        app.get("/api/v4/user").send().await.expect(401).body,
        json!({"message": "401 Unauthorized"})
    );
    get(&app, BLOCKED, "/api/v4/user").await.expect(403);
    let version = get(&app, USER_READ_ONLY, "/api/v4/version")
        .await
        .expect(200);
    assert!(version.body["version"].as_str().unwrap().starts_with("12."));
    assert!(version.body["revision"].is_string());
    app.get("/api/v4/version").send().await.expect(401);
}
