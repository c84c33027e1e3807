//! Runner token expiry (modern-runners.md, "Token lifecycle"): an instance interval and group
//! and project overrides, the shortest applying, set when a token is made and shown wherever the
//! spec lists `token_expires_at`; an expired token is refused exactly like an unknown one.

mod common;
use common::*;
use runners_shared::store::settings::ExpiryScope;
use runners_shared::time::Timestamp;
use serde_json::{Value, json};
use test_harness::{TestApp, TestResponse};

const HOUR: i64 = 3_600;

/// The world with an instance interval of a day, a 10-minute override on group 10 and a
/// 20-minute one on project 100, and a runner whose token expired long ago.
async fn expiring_app() -> TestApp {
    let mut world = world_with_runners(json!([
        {"id": 60, "token": "expired-token", "runner_type": "project_type", "projects": [101],
         "token_expires_at": "2001-01-01T00:00:00.000Z"}
    ]));
    world["settings"]["runner_token_expiration_interval"] = json!(24 * HOUR);
    world["groups"][0]["runner_token_expiration_interval"] = json!(600);
    world["projects"][0]["runner_token_expiration_interval"] = json!(1_200);
    app_with(world).await
}

/// Seconds from now to a `token_expires_at` in a response, checked to be in GitLab's form.
fn lifetime(value: &Value) -> i64 {
    let text = value.as_str().expect("token_expires_at is set");
    assert!(text.ends_with('Z') && text.len() == 24, "{text}");
    let at = Timestamp::parse(text).unwrap();
    (at.millis() - Timestamp::now().millis()) / 1000
}

fn assert_lifetime(value: &Value, seconds: i64) {
    let left = lifetime(value);
    assert!(
        (seconds - 60..=seconds).contains(&left),
        "expected about {seconds} s, got {left} s"
    );
}

async fn create(app: &TestApp, pat: &str, body: Value) -> TestResponse {
    app.post("/api/v4/user/runners")
        .header("PRIVATE-TOKEN", pat)
        .json(body)
        .send()
        .await
        .expect(201)
}

#[tokio::test]
async fn the_shortest_interval_that_applies_sets_each_new_token() {
    let app = expiring_app().await;
    let instance = create(&app, ADMIN, json!({"runner_type": "instance_type"})).await;
    assert_lifetime(&instance.body["token_expires_at"], 24 * HOUR);
    let group = create(
        &app,
        USER,
        json!({"runner_type": "group_type", "group_id": 10}),
    )
    .await;
    assert_lifetime(&group.body["token_expires_at"], 600);
    let project = create(
        &app,
        USER,
        json!({"runner_type": "project_type", "project_id": 100}),
    )
    .await;
    assert_lifetime(&project.body["token_expires_at"], 1_200);

    // Registration with a registration token gets its expiry too.
    let registered = app
        .post("/api/v4/runners")
        .json(json!({"token": "registration-token"}))
        .send()
        .await
        .expect(201);
    assert_lifetime(&registered.body["token_expires_at"], 24 * HOUR);

    // verify shows the token's expiry, and so do the runner's details.
    let token = project.body["token"].as_str().unwrap();
    let verified = app
        .post("/api/v4/runners/verify")
        .json(json!({"token": token}))
        .send()
        .await
        .expect(200);
    assert_eq!(
        verified.body["token_expires_at"],
        project.body["token_expires_at"]
    );
    let id = project.body["id"].as_i64().unwrap();
    let details = get(&app, USER, &format!("/api/v4/runners/{id}"))
        .await
        .expect(200);
    assert_eq!(
        details.body["token_expires_at"],
        project.body["token_expires_at"]
    );

    // A setting changed later applies at the next rotation, not before.
    app.store
        .set_token_expiration_interval(ExpiryScope::Project(100), Some(900))
        .await
        .unwrap();
    let still = get(&app, USER, &format!("/api/v4/runners/{id}"))
        .await
        .expect(200);
    assert_eq!(
        still.body["token_expires_at"],
        project.body["token_expires_at"]
    );
    let rotated = app
        .post("/api/v4/runners/reset_authentication_token")
        .json(json!({"token": token}))
        .send()
        .await
        .expect(201);
    assert_lifetime(&rotated.body["token_expires_at"], 900);
    let by_user = app
        .post(&format!("/api/v4/runners/{id}/reset_authentication_token"))
        .header("PRIVATE-TOKEN", USER)
        .send()
        .await
        .expect(201);
    assert_lifetime(&by_user.body["token_expires_at"], 900);
    assert!(
        by_user.usage.round_trips <= 3,
        "budget: 3, {:?}",
        by_user.usage
    );
    let details = get(&app, USER, &format!("/api/v4/runners/{id}"))
        .await
        .expect(200);
    assert_eq!(
        details.body["token_expires_at"],
        by_user.body["token_expires_at"]
    );
}

#[tokio::test]
async fn an_expired_token_is_refused_like_an_unknown_one() {
    let app = expiring_app().await;
    let forbidden = json!({"message": "403 Forbidden"});
    for (method, path, body) in [
        (
            "POST",
            "/api/v4/runners/verify",
            json!({"token": "expired-token"}),
        ),
        (
            "POST",
            "/api/v4/runners/reset_authentication_token",
            json!({"token": "expired-token"}),
        ),
        (
            "DELETE",
            "/api/v4/runners/managers",
            json!({"token": "expired-token", "system_id": "s_x"}),
        ),
        (
            "DELETE",
            "/api/v4/runners",
            json!({"token": "expired-token"}),
        ),
    ] {
        let request = match method {
            "POST" => app.post(path),
            _ => app.delete(path),
        };
        let refused = request.json(body).send().await;
        assert_eq!((refused.status, &refused.body), (403, &forbidden), "{path}");
    }
    // The runner is still there: a user who may update it gives it a new token, which works.
    let reset = app
        .post("/api/v4/runners/60/reset_authentication_token")
        .header("PRIVATE-TOKEN", ADMIN)
        .send()
        .await
        .expect(201);
    assert_lifetime(&reset.body["token_expires_at"], 24 * HOUR);
    app.post("/api/v4/runners/verify")
        .json(json!({"token": reset.body["token"]}))
        .send()
        .await
        .expect(200);
}

#[tokio::test]
async fn settings_are_set_and_cleared_without_touching_each_other() {
    let app = app().await;
    let store = &app.store;
    assert_eq!(
        store.instance_settings().await.unwrap().token_expiry,
        Default::default()
    );
    store
        .set_token_expiration_interval(ExpiryScope::Instance, Some(HOUR))
        .await
        .unwrap();
    store
        .set_token_expiration_interval(ExpiryScope::Group(10), Some(600))
        .await
        .unwrap();
    store
        .set_token_expiration_interval(ExpiryScope::Project(100), Some(700))
        .await
        .unwrap();
    store
        .set_token_expiration_interval(ExpiryScope::Project(101), Some(800))
        .await
        .unwrap();
    store
        .set_token_expiration_interval(ExpiryScope::Project(100), None)
        .await
        .unwrap();
    let settings = store.instance_settings().await.unwrap();
    assert_eq!(settings.token_expiry.instance, Some(HOUR));
    assert_eq!(settings.token_expiry.groups, [(10, 600)].into());
    assert_eq!(settings.token_expiry.projects, [(101, 800)].into());
    assert!(
        settings.allow_runner_registration_token,
        "the switch kept its default"
    );
    store
        .set_token_expiration_interval(ExpiryScope::Instance, None)
        .await
        .unwrap();
    assert_eq!(
        store
            .instance_settings()
            .await
            .unwrap()
            .token_expiry
            .instance,
        None
    );
    // With no interval the new token never expires.
    let made = app
        .post("/api/v4/user/runners")
        .header("PRIVATE-TOKEN", ADMIN)
        .json(json!({"runner_type": "instance_type"}))
        .send()
        .await
        .expect(201);
    assert_eq!(made.body["token_expires_at"], Value::Null);
}
