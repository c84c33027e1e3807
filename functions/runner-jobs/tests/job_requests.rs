//! `POST /jobs/request` against DynamoDB Local: GitLab's answers for every token, the heartbeat
//! that keeps a polling runner online, and the round trips of a poll.

use runners_shared::Settings;
use serde_json::{Value, json};
use test_harness::TestApp;

const ADMIN: &str = "admin-pat";

fn world() -> Value {
    json!({
        "settings": {"runners_registration_token": "registration-token"},
        "users": [{"id": 1, "username": "root", "admin": true, "tokens": [{"token": ADMIN}]}],
        "runners": [
            {"id": 1, "token": "active-runner", "runner_type": "instance_type"},
            {"id": 2, "token": "paused-runner", "runner_type": "instance_type", "active": false}
        ]
    })
}

async fn app_with(settings: Settings) -> TestApp {
    let app = TestApp::with_settings(settings, |state| {
        runner_jobs::router(state.clone()).merge(runner_management::router(state))
    })
    .await;
    app.seed(world()).await;
    app
}

async fn runner_details(app: &TestApp, id: i64) -> Value {
    app.get(&format!("/api/v4/runners/{id}"))
        .header("PRIVATE-TOKEN", ADMIN)
        .send()
        .await
        .expect(200)
        .body
}

#[tokio::test]
async fn token_errors_are_gitlabs() {
    let app = app_with(Settings::default()).await;
    let missing = app
        .post("/api/v4/jobs/request")
        .json(json!({"info": {"name": "x"}}))
        .send()
        .await;
    assert_eq!(
        (missing.status, missing.body),
        (400, json!({"error": "token is missing"}))
    );
    for token in ["unknown", "registration-token", ADMIN] {
        let refused = app
            .post("/api/v4/jobs/request")
            .json(json!({"token": token}))
            .send()
            .await;
        assert_eq!(
            (refused.status, refused.body),
            (403, json!({"message": "403 Forbidden"})),
            "{token}"
        );
    }
    let oversized = app
        .post("/api/v4/jobs/request")
        .json(json!({"token": "active-runner", "info": {"platform": "p".repeat(256)}}))
        .send()
        .await
        .expect(400);
    assert_eq!(
        oversized.body,
        json!({"message": {"platform": ["is too long (maximum is 255 characters)"]}})
    );
}

#[tokio::test]
async fn a_polling_runner_is_online_and_gets_204_with_no_body() {
    let app = app_with(Settings::default()).await;
    assert_eq!(runner_details(&app, 1).await["online"], Value::Null);

    // What the official runner sends, as a form from gitlab-python-runner would be read alike.
    let first = app
        .post("/api/v4/jobs/request")
        .json(json!({"token": "active-runner", "last_update": "abc",
                     "info": {"name": "box", "version": "17.5.0", "revision": "abcdef",
                              "platform": "linux", "architecture": "amd64", "executor": "shell",
                              "features": {"variables": true}}}))
        .send()
        .await
        .expect(204);
    assert_eq!(first.body, Value::Null);
    assert_eq!(first.header("content-type"), None);
    // The token; then the runner, the heartbeat and the runner's one queue in parallel.
    assert_eq!((first.usage.round_trips, first.usage.calls), (2, 4));

    let details = runner_details(&app, 1).await;
    assert_eq!(details["online"], true);
    assert_eq!(details["status"], "online");
    assert_eq!(details["version"], "17.5.0");
    assert_eq!(details["ip_address"], "127.0.0.1");
    assert_eq!(
        details["name"],
        Value::Null,
        "info[name] is registration's only"
    );

    // Within the heartbeat interval: the token, then the runner and its queue; no write.
    let again = app
        .post("/api/v4/jobs/request")
        .form("token=active-runner")
        .send()
        .await
        .expect(204);
    assert_eq!((again.usage.round_trips, again.usage.calls), (2, 3));
}

#[tokio::test]
async fn a_paused_runner_gets_204_after_its_heartbeat() {
    let app = app_with(Settings {
        heartbeat_interval_secs: 0,
        ..Settings::default()
    })
    .await;
    app.post("/api/v4/jobs/request")
        .json(json!({"token": "paused-runner", "info": {"version": "16.0.0"}}))
        .send()
        .await
        .expect(204);
    let details = runner_details(&app, 2).await;
    assert_eq!(
        (details["status"].as_str(), details["version"].as_str()),
        (Some("paused"), Some("16.0.0"))
    );
    assert!(details["contacted_at"].is_string());
}

#[tokio::test]
async fn a_deleted_runner_is_403_on_its_next_poll() {
    let app = app_with(Settings::default()).await;
    app.post("/api/v4/jobs/request")
        .form("token=active-runner")
        .send()
        .await
        .expect(204);
    app.delete("/api/v4/runners/1")
        .header("PRIVATE-TOKEN", ADMIN)
        .send()
        .await
        .expect(204);
    app.post("/api/v4/jobs/request")
        .form("token=active-runner")
        .send()
        .await
        .expect(403);
}

#[tokio::test]
async fn a_poll_with_a_system_id_is_its_managers_heartbeat() {
    let app = app_with(Settings::default()).await;
    let poll = app
        .post("/api/v4/jobs/request")
        .json(json!({"token": "active-runner", "system_id": "s_poller",
                     "info": {"version": "17.0.0", "executor": "docker"}}))
        .send()
        .await
        .expect(204);
    assert!(poll.usage.round_trips <= 2, "{:?}", poll.usage);
    let managers = app
        .get("/api/v4/runners/1/managers")
        .header("PRIVATE-TOKEN", ADMIN)
        .send()
        .await
        .expect(200)
        .body;
    assert_eq!(managers.as_array().unwrap().len(), 1);
    assert_eq!(
        (&managers[0]["system_id"], &managers[0]["version"]),
        (&json!("s_poller"), &json!("17.0.0"))
    );
    // A paused runner's poll is a heartbeat too, of its manager as well.
    app.post("/api/v4/jobs/request")
        .json(json!({"token": "paused-runner", "system_id": "s_paused"}))
        .send()
        .await
        .expect(204);
    let paused = app
        .get("/api/v4/runners/2/managers")
        .header("PRIVATE-TOKEN", ADMIN)
        .send()
        .await
        .expect(200)
        .body;
    assert_eq!(paused[0]["system_id"], "s_paused");
}
