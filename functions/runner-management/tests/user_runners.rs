//! Runners created by users (modern-runners.md, "Creating runners"): `POST /user/runners` for
//! each type, GitLab's order of checks, `glrt-` tokens stored as digests, and the PAT scopes
//! `create_runner` and `manage_runner`.

mod common;
use common::*;
use runners_shared::auth::TokenDigest;
use runners_shared::store::TokenRecord;
use serde_json::{Value, json};
use test_harness::{TestApp, TestResponse};

const CREATOR: &str = "user-create-runner";
const MANAGER: &str = "user-manage-runner";

/// The world, with two more tokens of `user` (Owner of group 10, Maintainer of project 100).
async fn scoped_app() -> TestApp {
    let mut world = world();
    world["users"][1]["tokens"].as_array_mut().unwrap().extend([
        json!({"token": CREATOR, "scopes": ["create_runner"]}),
        json!({"token": MANAGER, "scopes": ["manage_runner"]}),
    ]);
    app_with(world).await
}

async fn create(app: &TestApp, pat: &str, body: Value) -> TestResponse {
    app.post("/api/v4/user/runners")
        .header("PRIVATE-TOKEN", pat)
        .json(body)
        .send()
        .await
}

/// The created runner's id and token, after checking the answer's shape and the token's form.
fn created(response: &TestResponse) -> (i64, String) {
    let keys: Vec<&String> = response.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["id", "token", "token_expires_at"]);
    assert_eq!(response.body["token_expires_at"], Value::Null);
    let token = response.body["token"].as_str().unwrap().to_owned();
    let secret = token.strip_prefix("glrt-").expect("a glrt- token");
    assert!(secret.len() >= 24, "{token}");
    assert!(
        secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    (response.body["id"].as_i64().unwrap(), token)
}

#[tokio::test]
async fn each_type_is_created_by_whoever_may_create_it_there() {
    let app = scoped_app().await;

    let instance = create(
        &app,
        ADMIN,
        json!({"runner_type": "instance_type", "description": "made by admin", "paused": true,
               "tag_list": ["a", "b"], "run_untagged": false, "maximum_timeout": 3600,
               "access_level": "ref_protected", "maintenance_note": "rack 4"}),
    )
    .await
    .expect(201);
    assert!(
        instance.usage.round_trips <= 4,
        "budget: 4 round trips, {:?}",
        instance.usage
    );
    let (id, token) = created(&instance);
    let shown = get(&app, ADMIN, &format!("/api/v4/runners/{id}"))
        .await
        .expect(200);
    for (key, value) in [
        ("description", json!("made by admin")),
        ("active", json!(false)),
        ("is_shared", json!(true)),
        ("runner_type", json!("instance_type")),
        ("tag_list", json!(["a", "b"])),
        ("run_untagged", json!(false)),
        ("maximum_timeout", json!(3600)),
        ("access_level", json!("ref_protected")),
        ("contacted_at", Value::Null),
        ("online", Value::Null),
    ] {
        assert_eq!(shown.body[key], value, "{key}");
    }
    // Only the digest is stored; the runner can use the token at once.
    assert!(matches!(
        app.store.find_token(&TokenDigest::of(&token)).await.unwrap(),
        Some(TokenRecord::Runner { runner_id, .. }) if runner_id == id
    ));
    let verified = app
        .post("/api/v4/runners/verify")
        .json(json!({"token": token}))
        .send()
        .await
        .expect(200);
    assert_eq!(verified.body["id"], id);

    // A group Owner creates a group runner; a project Maintainer a project runner; a group
    // Owner one in a project of a subgroup (inherited access).
    let (group_runner, _) = created(
        &create(
            &app,
            USER,
            json!({"runner_type": "group_type", "group_id": 10}),
        )
        .await
        .expect(201),
    );
    let shown = get(&app, USER, &format!("/api/v4/runners/{group_runner}"))
        .await
        .expect(200);
    assert_eq!(shown.body["runner_type"], "group_type");
    assert_eq!(shown.body["groups"][0]["id"], 10);

    let (project_runner, _) = created(
        &create(
            &app,
            USER,
            json!({"runner_type": "project_type", "project_id": 100}),
        )
        .await
        .expect(201),
    );
    let shown = get(&app, USER, &format!("/api/v4/runners/{project_runner}"))
        .await
        .expect(200);
    assert_eq!(shown.body["projects"][0]["id"], 100);
    let owned = get(&app, USER, "/api/v4/runners?per_page=100")
        .await
        .expect(200);
    assert!(ids(&owned).contains(&project_runner) && ids(&owned).contains(&group_runner));

    let deep = create(
        &app,
        OWNER,
        json!({"runner_type": "project_type", "project_id": 102}),
    )
    .await
    .expect(201);
    created(&deep);
}

#[tokio::test]
async fn checks_run_in_gitlabs_order() {
    let app = scoped_app().await;
    let refused = |response: TestResponse, status: u16, body: Value| {
        let response = response.expect(status);
        assert_eq!(response.body, body);
    };
    let insufficient = json!({"message": "403 Forbidden - Insufficient permissions"});

    refused(
        create(&app, "nope", json!({"runner_type": "instance_type"})).await,
        401,
        json!({"message": "401 Unauthorized"}),
    );
    refused(
        create(&app, USER, json!({})).await,
        400,
        json!({"error": "runner_type is missing"}),
    );
    refused(
        create(&app, ADMIN, json!({"runner_type": "specific"})).await,
        400,
        json!({"error": "runner_type does not have a valid value"}),
    );
    refused(
        create(&app, ADMIN, json!({"runner_type": "group_type"})).await,
        400,
        json!({"error": "group_id is missing"}),
    );
    refused(
        create(&app, ADMIN, json!({"runner_type": "project_type"})).await,
        400,
        json!({"error": "project_id is missing"}),
    );
    // An unknown group or project is a 400 even for a caller with no rights anywhere.
    refused(
        create(
            &app,
            STRANGER,
            json!({"runner_type": "group_type", "group_id": 999}),
        )
        .await,
        400,
        json!({"message": "400 Bad request - Missing/invalid group"}),
    );
    refused(
        create(
            &app,
            STRANGER,
            json!({"runner_type": "project_type", "project_id": 999}),
        )
        .await,
        400,
        json!({"message": "400 Bad request - Missing/invalid project"}),
    );
    // Instance runners are for admins; group runners for Owners (Maintainer is not enough);
    // project runners for Maintainers (a Reporter only reports).
    refused(
        create(&app, USER, json!({"runner_type": "instance_type"})).await,
        403,
        insufficient.clone(),
    );
    refused(
        create(
            &app,
            USER,
            json!({"runner_type": "group_type", "group_id": 20}),
        )
        .await,
        403,
        insufficient.clone(),
    );
    refused(
        create(
            &app,
            USER2,
            json!({"runner_type": "project_type", "project_id": 100}),
        )
        .await,
        403,
        insufficient.clone(),
    );
    refused(
        create(
            &app,
            BLOCKED,
            json!({"runner_type": "project_type", "project_id": 100}),
        )
        .await,
        403,
        json!({"message": "403 Forbidden"}),
    );
    // The model's rules come last, as one sentence.
    refused(
        create(
            &app,
            USER,
            json!({"runner_type": "project_type", "project_id": 100, "run_untagged": false,
                   "maximum_timeout": 60}),
        )
        .await,
        400,
        json!({"message": "400 Bad request - Tags list can not be empty when runner is not allowed to pick untagged jobs and Maximum timeout needs to be at least 10 minutes"}),
    );
    // Nothing was written by any refused request.
    let all = get(&app, ADMIN, "/api/v4/runners/all?per_page=100")
        .await
        .expect(200);
    assert_eq!(ids(&all), [1, 2, 3, 4, 5, 6, 7]);
}

#[tokio::test]
async fn create_runner_and_manage_runner_scopes_open_only_their_endpoints() {
    let app = scoped_app().await;
    let (id, _) = created(
        &create(
            &app,
            CREATOR,
            json!({"runner_type": "project_type", "project_id": 100}),
        )
        .await
        .expect(201),
    );
    for path in [
        "/api/v4/runners".to_owned(),
        format!("/api/v4/runners/{id}"),
        "/api/v4/user".to_owned(),
    ] {
        get(&app, CREATOR, &path).await.expect(403);
    }
    create(
        &app,
        MANAGER,
        json!({"runner_type": "project_type", "project_id": 100}),
    )
    .await
    .expect(403);
    create(
        &app,
        USER_READ_ONLY,
        json!({"runner_type": "project_type", "project_id": 100}),
    )
    .await
    .expect(403);
    // manage_runner: the `/runners/:id` endpoints, reading and changing, and nothing else.
    get(&app, MANAGER, &format!("/api/v4/runners/{id}"))
        .await
        .expect(200);
    get(&app, MANAGER, &format!("/api/v4/runners/{id}/jobs"))
        .await
        .expect(200);
    let updated = app
        .put(&format!("/api/v4/runners/{id}"))
        .header("PRIVATE-TOKEN", MANAGER)
        .json(json!({"description": "managed"}))
        .send()
        .await
        .expect(200);
    assert_eq!(updated.body["description"], "managed");
    get(&app, MANAGER, "/api/v4/runners").await.expect(403);
    get(&app, MANAGER, "/api/v4/runners/all").await.expect(403);
    let reset = app
        .post(&format!("/api/v4/runners/{id}/reset_authentication_token"))
        .header("PRIVATE-TOKEN", MANAGER)
        .send()
        .await
        .expect(201);
    // A created runner's rotated token is a `glrt-` token still.
    assert!(reset.body["token"].as_str().unwrap().starts_with("glrt-"));
    app.delete(&format!("/api/v4/runners/{id}"))
        .header("PRIVATE-TOKEN", MANAGER)
        .send()
        .await
        .expect(204);
}

#[tokio::test]
async fn registered_runners_keep_tokens_without_the_prefix() {
    let app = scoped_app().await;
    let registered = app
        .post("/api/v4/runners")
        .json(json!({"token": "registration-token"}))
        .send()
        .await
        .expect(201);
    assert!(
        !registered.body["token"]
            .as_str()
            .unwrap()
            .starts_with("glrt-")
    );
    let id = registered.body["id"].as_i64().unwrap();
    let reset = app
        .post(&format!("/api/v4/runners/{id}/reset_authentication_token"))
        .header("PRIVATE-TOKEN", ADMIN)
        .send()
        .await
        .expect(201);
    assert!(!reset.body["token"].as_str().unwrap().starts_with("glrt-"));
}
