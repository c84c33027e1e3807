//! Races and hostile input on the user-facing runner endpoints: parallel updates all succeed (last
//! write wins, as in GitLab) without ever storing a runner GitLab's rules reject; path ids that
//! are not UTF-8 get GitLab's JSON answers after authentication; GitLab's token precedence.

mod common;
use common::*;
use futures_util::future::join_all;
use serde_json::json;

#[tokio::test]
async fn ten_parallel_updates_of_one_runner_all_succeed_and_the_last_write_wins() {
    let app = app().await;
    let before = app.store.get_runner(PROJECT_RUNNER).await.unwrap().unwrap();
    let uri = format!("/api/v4/runners/{PROJECT_RUNNER}");
    let responses = join_all((0..10).map(|i| {
        app.put(&uri)
            .header("PRIVATE-TOKEN", USER)
            .json(json!({"description": format!("update {i}"), "maximum_timeout": 600 + i}))
            .send()
    }))
    .await;
    for (i, response) in responses.iter().enumerate() {
        assert_eq!(response.status, 200, "update {i}: {}", response.body);
        // Each answer is the runner as that update left it.
        assert_eq!(response.body["description"], format!("update {i}"));
        assert_eq!(response.body["maximum_timeout"], 600 + i);
    }
    let after = app.store.get_runner(PROJECT_RUNNER).await.unwrap().unwrap();
    assert_eq!(after.lock_version, before.lock_version + 10, "ten writes");
    let description = after.description.clone().unwrap_or_default();
    let winner: i64 = description.trim_start_matches("update ").parse().unwrap();
    assert_eq!(
        after.maximum_timeout,
        Some(600 + winner),
        "one update's whole write"
    );
    assert_eq!(
        after.tag_list, before.tag_list,
        "attributes not sent are kept"
    );
}

#[tokio::test]
async fn racing_updates_never_leave_a_runner_without_tags_that_refuses_untagged_jobs() {
    let app = app().await;
    let uri = format!("/api/v4/runners/{PROJECT_RUNNER}");
    for round in 0..5 {
        put_tags_back(&app, &uri).await;
        let (untagged, untag) = futures_util::future::join(
            app.put(&uri)
                .header("PRIVATE-TOKEN", USER)
                .json(json!({"run_untagged": false}))
                .send(),
            app.put(&uri)
                .header("PRIVATE-TOKEN", USER)
                .json(json!({"tag_list": []}))
                .send(),
        )
        .await;
        let mut statuses = [untagged.status, untag.status];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 400], "round {round}: exactly one may win");
        let loser = if untagged.status == 400 {
            untagged
        } else {
            untag
        };
        assert_eq!(
            loser.body,
            json!({"message": {"tags_list": ["can not be empty when runner is not allowed to pick untagged jobs"]}})
        );
        let runner = app.store.get_runner(PROJECT_RUNNER).await.unwrap().unwrap();
        assert!(
            runner.run_untagged || !runner.tag_list.is_empty(),
            "round {round}"
        );
    }
}

async fn put_tags_back(app: &test_harness::TestApp, uri: &str) {
    app.put(uri)
        .header("PRIVATE-TOKEN", USER)
        .json(json!({"tag_list": ["tag1"], "run_untagged": true}))
        .send()
        .await
        .expect(200);
}

#[tokio::test]
async fn path_ids_that_are_not_utf8_are_json_after_authentication() {
    let app = app().await;
    for (method, path) in [
        ("GET", "/api/v4/runners/%FF"),
        ("PUT", "/api/v4/runners/%FF"),
        ("DELETE", "/api/v4/runners/%C3%28"),
        ("GET", "/api/v4/runners/%FF/jobs"),
    ] {
        let method: axum::http::Method = method.parse().unwrap();
        let anonymous = app
            .request(method.clone(), path)
            .json(json!({"description": "x"}))
            .send()
            .await;
        assert_eq!(
            (anonymous.status, anonymous.body),
            (401, json!({"message": "401 Unauthorized"})),
            "{method} {path}"
        );
        let authenticated = app
            .request(method.clone(), path)
            .header("PRIVATE-TOKEN", ADMIN)
            .json(json!({"description": "x"}))
            .send()
            .await;
        assert_eq!(
            (authenticated.status, authenticated.body),
            (400, json!({"error": "id is invalid"})),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn the_private_token_parameter_wins_then_the_header_then_bearer() {
    let app = app().await;
    let user_id =
        |response: test_harness::TestResponse| (response.status, response.body["id"].as_i64());
    // Header names the user, the parameter the admin: GitLab authenticates the admin.
    let both = app
        .get(&format!("/api/v4/user?private_token={ADMIN}"))
        .header("PRIVATE-TOKEN", USER)
        .send()
        .await;
    assert_eq!(user_id(both), (200, Some(1)));
    // An unknown parameter is not skipped for a valid header.
    let unknown = app
        .get("/api/v4/user?private_token=unknown")
        .header("PRIVATE-TOKEN", ADMIN)
        .send()
        .await;
    assert_eq!(
        (unknown.status, unknown.body),
        (401, json!({"message": "401 Unauthorized"}))
    );
    // The header wins over Bearer; a blank header or parameter hides nothing.
    let header_first = app
        .get("/api/v4/user")
        .header("PRIVATE-TOKEN", USER)
        .header("Authorization", &format!("Bearer {ADMIN}"))
        .send()
        .await;
    assert_eq!(user_id(header_first), (200, Some(2)));
    let blank = app
        .get("/api/v4/user?private_token=")
        .header("PRIVATE-TOKEN", "")
        .header("Authorization", &format!("Bearer {USER}"))
        .send()
        .await;
    assert_eq!(user_id(blank), (200, Some(2)));
}
