//! Hostile input and faults on the unauthenticated runner-token endpoints: nothing a client sends
//! crashes the process, pins a core or leaves half a write, and a stalled DynamoDB is a quick
//! 503 that heals without a restart.

use runners_shared::Settings;
use runners_shared::admin::client_with_timeouts;
use runners_shared::config::StorageTimeouts;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use test_harness::{StallingProxy, TestApp, endpoint, fresh_store_at};

const INSTANCE_TOKEN: &str = "instance-reg-token";
const RUNNER_TOKEN: &str = "seeded-runner-token";

fn world() -> Value {
    json!({
        "settings": {"runners_registration_token": INSTANCE_TOKEN},
        "runners": [{"id": 5, "token": RUNNER_TOKEN, "runner_type": "instance_type"}]
    })
}

async fn app() -> TestApp {
    let app = TestApp::new(runner_token::router).await;
    app.seed(world()).await;
    app
}

/// How many runners the table holds, by the index every runner is on.
async fn runner_count(app: &TestApp) -> usize {
    let output = app
        .store
        .client()
        .query()
        .table_name(app.store.table())
        .index_name("gsi1")
        .key_condition_expression("gsi1pk = :all")
        .expression_attribute_values(
            ":all",
            aws_sdk_dynamodb::types::AttributeValue::S("RUNNERS".into()),
        )
        .send()
        .await
        .unwrap();
    output.items().len()
}

#[tokio::test]
async fn deeply_nested_keys_are_a_400_not_a_crash() {
    let app = app().await;
    // 60,000 levels in 180 KB: overflowed the stack and, with panic = abort, killed the process.
    let key = format!("a{}", "[b]".repeat(60_000));
    let form = app
        .post("/api/v4/runners")
        .form(&format!("token={INSTANCE_TOKEN}&{key}=x"))
        .send()
        .await
        .expect(400);
    assert_eq!(
        form.body,
        json!({"message": "400 Bad request - parameters nested deeper than 100 levels"})
    );
    let multipart =
        format!("--B\r\nContent-Disposition: form-data; name=\"{key}\"\r\n\r\nx\r\n--B--\r\n");
    app.post("/api/v4/runners/verify")
        .raw("multipart/form-data; boundary=B", multipart)
        .send()
        .await
        .expect(400);
    // Rack's own limit is still accepted, and the service is still answering.
    let at_limit = format!("info{}=x", "[b]".repeat(99));
    app.post("/api/v4/runners")
        .form(&format!("token={INSTANCE_TOKEN}&{at_limit}"))
        .send()
        .await
        .expect(201);
    assert_eq!(runner_count(&app).await, 2);
}

#[tokio::test]
async fn a_hundred_thousand_tags_are_answered_in_gitlabs_order() {
    let app = app().await;
    // ~650 KB of distinct comma-separated tags: the pairwise de-duplication took ~20 s.
    let list: Vec<String> = (0..120_000).map(|i| format!("{i:x}")).collect();
    let tags = format!("&tag_list={}", list.join(","));
    let missing = app.post("/api/v4/runners").form(&tags).send().await;
    assert_eq!(
        (missing.status, missing.body),
        (400, json!({"error": "token is missing"}))
    );
    app.post("/api/v4/runners")
        .form(&format!("token=unknown{tags}"))
        .send()
        .await
        .expect(403);
    let too_many = app
        .post("/api/v4/runners")
        .form(&format!("token={INSTANCE_TOKEN}{tags}"))
        .send()
        .await
        .expect(400);
    assert_eq!(
        too_many.body,
        json!({"message": {"tags_list": ["Too many tags specified. Please limit the number of tags to 50"]}})
    );
    assert_eq!(runner_count(&app).await, 1, "nothing registered");
}

#[tokio::test]
async fn oversized_info_is_a_400_on_register_and_verify_and_nothing_is_half_written() {
    let app = app().await;
    let huge = "x".repeat(500_000);
    let register = app
        .post("/api/v4/runners")
        .json(json!({"token": INSTANCE_TOKEN, "info": {"name": "n", "platform": huge}}))
        .send()
        .await
        .expect(400);
    assert_eq!(
        register.body,
        json!({"message": {"platform": ["is too long (maximum is 255 characters)"]}})
    );
    assert_eq!(runner_count(&app).await, 1);

    let verify = app
        .post("/api/v4/runners/verify")
        .json(json!({"token": RUNNER_TOKEN, "info": {"version": "v".repeat(2049)}}))
        .send()
        .await
        .expect(400);
    assert_eq!(
        verify.body,
        json!({"message": {"version": ["is too long (maximum is 2048 characters)"]}})
    );
    let runner = app.store.get_runner(5).await.unwrap().unwrap();
    assert_eq!(runner.contacted_at, None, "no heartbeat was recorded");

    // The token item did not record a heartbeat either: the next good verify inside the
    // heartbeat interval is written, not skipped.
    app.post("/api/v4/runners/verify")
        .json(json!({"token": RUNNER_TOKEN, "info": {"version": "17.0.0"}}))
        .send()
        .await
        .expect(200);
    let runner = app.store.get_runner(5).await.unwrap().unwrap();
    assert!(runner.contacted_at.is_some());
    assert_eq!(runner.info.version.as_deref(), Some("17.0.0"));
}

#[tokio::test]
async fn an_array_where_the_token_belongs_is_invalid() {
    let app = app().await;
    for path in ["/api/v4/runners", "/api/v4/runners/verify"] {
        let response = app
            .post(path)
            .json(json!({"token": [INSTANCE_TOKEN, RUNNER_TOKEN]}))
            .send()
            .await
            .expect(400);
        assert_eq!(response.body, json!({"error": "token is invalid"}));
    }
    let response = app
        .delete("/api/v4/runners?token[]=x")
        .send()
        .await
        .expect(400);
    assert_eq!(response.body, json!({"error": "token is invalid"}));
    // A repeated bare key is still Rack's last-one-wins.
    app.post("/api/v4/runners/verify")
        .form(&format!("token=nonsense&token={RUNNER_TOKEN}"))
        .send()
        .await
        .expect(200);
}

/// The SDK bounds that a stalled DynamoDB meets in this test: short, so that the test is quick;
/// the defaults (1 s / 2 s / 4.5 s, deadline 8 s) are the same mechanism at production scale.
fn short_timeouts() -> StorageTimeouts {
    StorageTimeouts {
        connect: Duration::from_millis(300),
        attempt: Duration::from_millis(400),
        operation: Duration::from_millis(1_000),
    }
}

#[tokio::test]
async fn a_stalled_dynamodb_is_a_quick_503_and_the_service_recovers_without_a_restart() {
    let proxy = StallingProxy::start(&endpoint()).await;
    let client = client_with_timeouts(Some(&proxy.endpoint), None, short_timeouts()).await;
    let settings = Settings {
        request_deadline: Duration::from_secs(3),
        heartbeat_interval_secs: 0,
        ..Settings::default()
    };
    let app = TestApp::on_store(fresh_store_at(client).await, settings, runner_token::router);
    app.seed(world()).await;
    app.post("/api/v4/runners/verify")
        .form(&format!("token={RUNNER_TOKEN}"))
        .send()
        .await
        .expect(200);

    proxy.stall(true);
    for (path, body) in [
        ("/api/v4/runners/verify", format!("token={RUNNER_TOKEN}")),
        ("/api/v4/runners", format!("token={INSTANCE_TOKEN}")),
    ] {
        let started = Instant::now();
        // The outer bound only turns a hang into a failure; the answer comes from the service.
        let response =
            tokio::time::timeout(Duration::from_secs(30), app.post(path).form(&body).send())
                .await
                .expect("a stalled database must not hang a request");
        assert_eq!(
            (response.status, response.body),
            (503, json!({"message": "503 Service Unavailable"})),
            "{path}"
        );
        eprintln!("{path} answered 503 after {:?}", started.elapsed());
    }

    proxy.stall(false);
    app.post("/api/v4/runners/verify")
        .form(&format!("token={RUNNER_TOKEN}"))
        .send()
        .await
        .expect(200);
    app.post("/api/v4/runners")
        .form(&format!("token={INSTANCE_TOKEN}"))
        .send()
        .await
        .expect(201);
}

#[tokio::test]
async fn with_registration_tokens_switched_off_every_non_empty_token_is_410() {
    let app = app().await;
    app.post("/api/v4/runners")
        .form(&format!("token={INSTANCE_TOKEN}"))
        .send()
        .await
        .expect(201);
    app.store.set_allow_registration_token(false).await.unwrap();
    for token in [INSTANCE_TOKEN, "garbage"] {
        let gone = app
            .post("/api/v4/runners")
            .form(&format!("token={token}"))
            .send()
            .await
            .expect(410);
        assert_eq!(
            gone.body,
            json!({"message": "410 Gone - runner registration disallowed"})
        );
        assert_eq!(
            gone.usage.round_trips, 1,
            "the switch is read beside the token"
        );
    }
    // An empty token is still 403, a missing one 400 (parameters first).
    app.post("/api/v4/runners")
        .form("token=")
        .send()
        .await
        .expect(403);
    app.post("/api/v4/runners")
        .form("description=x")
        .send()
        .await
        .expect(400);
    // Runners already registered keep working.
    app.post("/api/v4/runners/verify")
        .form(&format!("token={RUNNER_TOKEN}"))
        .send()
        .await
        .expect(200);
    app.store.set_allow_registration_token(true).await.unwrap();
    app.post("/api/v4/runners")
        .form(&format!("token={INSTANCE_TOKEN}"))
        .send()
        .await
        .expect(201);
    assert_eq!(runner_count(&app).await, 3);
}

#[tokio::test]
async fn the_switch_comes_from_fixtures_too() {
    let app = TestApp::new(runner_token::router).await;
    app.seed(
        json!({"settings": {"runners_registration_token": INSTANCE_TOKEN,
                                 "allow_runner_registration_token": false}}),
    )
    .await;
    assert!(
        !app.store
            .instance_settings()
            .await
            .unwrap()
            .allow_runner_registration_token
    );
    app.post("/api/v4/runners")
        .form(&format!("token={INSTANCE_TOKEN}"))
        .send()
        .await
        .expect(410);
    let defaults = TestApp::new(runner_token::router).await;
    assert!(
        defaults
            .store
            .instance_settings()
            .await
            .unwrap()
            .allow_runner_registration_token
    );
}
