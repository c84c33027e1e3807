//! Runner managers (modern-runners.md, "Runner managers"): one token, several hosts, each known
//! by the `system_id` it sends; heartbeats debounced per host; listing, leaving one by one, and
//! going with the runner.

mod common;
use common::*;
use futures_util::future::join_all;
use serde_json::{Value, json};
use test_harness::{TestApp, TestResponse};

async fn verify(app: &TestApp, body: Value) -> TestResponse {
    app.post("/api/v4/runners/verify").json(body).send().await
}

async fn managers(app: &TestApp, pat: &str, id: i64) -> TestResponse {
    get(app, pat, &format!("/api/v4/runners/{id}/managers")).await
}

fn system_ids(response: &TestResponse) -> Vec<String> {
    let mut ids: Vec<String> = response
        .body
        .as_array()
        .expect("an array")
        .iter()
        .map(|m| m["system_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

async fn leave(app: &TestApp, body: Value) -> TestResponse {
    app.delete("/api/v4/runners/managers")
        .json(body)
        .send()
        .await
}

#[tokio::test]
async fn verify_with_a_system_id_records_that_host_once_per_interval() {
    let app = app().await;
    let first = verify(
        &app,
        json!({"token": "t2", "system_id": "s_89e5e9956577",
               "info": {"version": "16.11.1", "revision": "535ced5f", "platform": "linux",
                        "architecture": "amd64", "executor": "shell"}}),
    )
    .await
    .expect(200);
    assert_eq!(first.body["id"], PROJECT_RUNNER);
    assert!(first.usage.round_trips <= 2, "{:?}", first.usage);

    let listed = managers(&app, USER, PROJECT_RUNNER).await.expect(200);
    let manager = &listed.body[0];
    let keys: Vec<&String> = manager.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "id",
            "system_id",
            "version",
            "revision",
            "platform",
            "architecture",
            "created_at",
            "contacted_at",
            "ip_address",
            "status"
        ]
    );
    assert_eq!(manager["system_id"], "s_89e5e9956577");
    assert_eq!(manager["version"], "16.11.1");
    assert_eq!(manager["status"], "online");
    assert!(manager["id"].as_i64().unwrap() > 0);
    assert!(manager["contacted_at"].is_string());
    // The runner's own contact moved with its manager's.
    let runner = get(&app, USER, &format!("/api/v4/runners/{PROJECT_RUNNER}"))
        .await
        .expect(200);
    assert_eq!(runner.body["contacted_at"], manager["contacted_at"]);

    // Both heartbeats fresh: one read, no write.
    let again = verify(&app, json!({"token": "t2", "system_id": "s_89e5e9956577"}))
        .await
        .expect(200);
    assert_eq!(
        (again.usage.calls, again.usage.round_trips),
        (1, 1),
        "{:?}",
        again.usage
    );
    // A new host on the same token is written although the runner's heartbeat is fresh.
    let second_host = verify(&app, json!({"token": "t2", "system_id": "r_0123456789ab"}))
        .await
        .expect(200);
    assert_eq!(second_host.usage.round_trips, 2, "{:?}", second_host.usage);
    let listed = managers(&app, USER, PROJECT_RUNNER).await.expect(200);
    assert_eq!(system_ids(&listed), ["r_0123456789ab", "s_89e5e9956577"]);
    // Without a system_id no manager is written (12.x behaviour).
    verify(&app, json!({"token": "t3"})).await.expect(200);
    let none = managers(&app, USER, TWO_PROJECTS).await.expect(200);
    assert_eq!(none.body, json!([]));
    assert!(none.header("x-total").is_none(), "not paginated");
}

#[tokio::test]
async fn twenty_hosts_verifying_at_once_are_twenty_managers() {
    let app = app().await;
    let answers = join_all((0..20).map(|i| {
        verify(
            &app,
            json!({"token": "t2", "system_id": format!("s_{i:012}")}),
        )
    }))
    .await;
    assert!(
        answers.iter().all(|a| a.status == 200),
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    let listed = managers(&app, ADMIN, PROJECT_RUNNER).await.expect(200);
    let expected: Vec<String> = (0..20).map(|i| format!("s_{i:012}")).collect();
    assert_eq!(system_ids(&listed), expected);
    let ids: std::collections::BTreeSet<i64> = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 20, "distinct ids");
}

#[tokio::test]
async fn who_may_list_a_runners_managers() {
    let app = app().await;
    verify(&app, json!({"token": "t4", "system_id": "s_group"}))
        .await
        .expect(200);
    assert_eq!(
        system_ids(&managers(&app, USER, GROUP_RUNNER).await.expect(200)),
        ["s_group"]
    );
    managers(&app, USER_READ_ONLY, GROUP_RUNNER)
        .await
        .expect(200);
    managers(&app, ADMIN, GROUP_RUNNER).await.expect(200);
    let refused = managers(&app, STRANGER, GROUP_RUNNER).await.expect(403);
    assert_eq!(
        refused.body,
        json!({"message": "403 Forbidden - No access granted"})
    );
    let missing = managers(&app, ADMIN, 999).await.expect(404);
    assert_eq!(missing.body, json!({"message": "404 Runner Not Found"}));
    managers(&app, "nope", GROUP_RUNNER).await.expect(401);
}

#[tokio::test]
async fn a_host_leaves_and_comes_back() {
    let app = app().await;
    for host in ["s_a", "s_b"] {
        verify(&app, json!({"token": "t2", "system_id": host}))
            .await
            .expect(200);
    }
    let missing = leave(&app, json!({"token": "t2"})).await.expect(400);
    assert_eq!(missing.body, json!({"error": "system_id is missing"}));
    let unknown = leave(&app, json!({"token": "t2", "system_id": "s_zzz"}))
        .await
        .expect(404);
    assert_eq!(
        unknown.body,
        json!({"message": "404 Runner manager not found Not Found"})
    );
    leave(&app, json!({"token": "nope", "system_id": "s_a"}))
        .await
        .expect(403);
    leave(&app, json!({"token": "t2", "system_id": "s_a"}))
        .await
        .expect(204);
    assert_eq!(
        system_ids(&managers(&app, USER, PROJECT_RUNNER).await.expect(200)),
        ["s_b"]
    );
    // The runner stays, and the host that left is recorded again on its next verify, however
    // soon: leaving also forgot its heartbeat.
    verify(&app, json!({"token": "t2", "system_id": "s_a"}))
        .await
        .expect(200);
    assert_eq!(
        system_ids(&managers(&app, USER, PROJECT_RUNNER).await.expect(200)),
        ["s_a", "s_b"]
    );
    leave(&app, json!({"token": "t2", "system_id": "s_a"}))
        .await
        .expect(204);
    leave(&app, json!({"token": "t2", "system_id": "s_a"}))
        .await
        .expect(404);
}

#[tokio::test]
async fn managers_go_with_their_runner() {
    let app = app().await;
    for (token, host) in [("t2", "s_a"), ("t2", "s_b"), ("t3", "s_c")] {
        verify(&app, json!({"token": token, "system_id": host}))
            .await
            .expect(200);
    }
    app.delete("/api/v4/runners")
        .json(json!({"token": "t2"}))
        .send()
        .await
        .expect(204);
    assert!(
        app.store
            .runner_managers(PROJECT_RUNNER)
            .await
            .unwrap()
            .is_empty()
    );
    app.delete(&format!("/api/v4/runners/{TWO_PROJECTS}"))
        .header("PRIVATE-TOKEN", ADMIN)
        .send()
        .await
        .expect(204);
    assert!(
        app.store
            .runner_managers(TWO_PROJECTS)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_overlong_system_id_is_refused_before_anything_is_written() {
    let app = app().await;
    let refused = verify(&app, json!({"token": "t2", "system_id": "s".repeat(65)}))
        .await
        .expect(400);
    assert_eq!(
        refused.body,
        json!({"message": {"system_xid": ["is too long (maximum is 64 characters)"]}})
    );
    assert_eq!(
        managers(&app, USER, PROJECT_RUNNER).await.expect(200).body,
        json!([])
    );
    verify(&app, json!({"token": "t2", "system_id": "s".repeat(64)}))
        .await
        .expect(200);
}

#[tokio::test]
async fn leaving_with_an_impossible_system_id_is_a_404_without_a_write() {
    let app = app().await;
    for system_id in [String::new(), "s".repeat(65), "x".repeat(64 << 10)] {
        let refused = leave(&app, json!({"token": "t2", "system_id": system_id}))
            .await
            .expect(404);
        assert_eq!(
            refused.body,
            json!({"message": "404 Runner manager not found Not Found"})
        );
        assert_eq!(refused.usage.calls, 1, "only the token was read");
    }
}

#[tokio::test]
async fn a_runner_with_more_managers_than_one_transaction_holds_goes_whole() {
    let app = app().await;
    for i in 0..120 {
        verify(
            &app,
            json!({"token": "t2", "system_id": format!("s_{i:04}")}),
        )
        .await
        .expect(200);
    }
    assert_eq!(
        app.store
            .runner_managers(PROJECT_RUNNER)
            .await
            .unwrap()
            .len(),
        120
    );
    app.delete("/api/v4/runners")
        .json(json!({"token": "t2"}))
        .send()
        .await
        .expect(204);
    assert!(
        app.store
            .runner_managers(PROJECT_RUNNER)
            .await
            .unwrap()
            .is_empty()
    );
}
