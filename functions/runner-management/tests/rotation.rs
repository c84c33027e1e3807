//! Runner token rotation (modern-runners.md, "Token lifecycle"): by a user who may update the
//! runner, and by the runner itself; the old token stops working the moment the answer is sent,
//! also for a verify racing the rotation.

mod common;
use common::*;
use futures_util::future::join_all;
use serde_json::{Value, json};
use test_harness::{TestApp, TestResponse};

async fn verify(app: &TestApp, token: &str) -> u16 {
    app.post("/api/v4/runners/verify")
        .json(json!({"token": token}))
        .send()
        .await
        .status
}

async fn reset_by_id(app: &TestApp, pat: &str, id: i64) -> TestResponse {
    app.post(&format!("/api/v4/runners/{id}/reset_authentication_token"))
        .header("PRIVATE-TOKEN", pat)
        .send()
        .await
}

fn new_token(response: &TestResponse) -> String {
    assert_eq!(
        response
            .body
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["token".to_owned(), "token_expires_at".to_owned()])
    );
    assert_eq!(response.body["token_expires_at"], Value::Null);
    response.body["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_user_who_may_update_the_runner_resets_its_token() {
    let app = app().await;
    let reset = reset_by_id(&app, USER, PROJECT_RUNNER).await.expect(201);
    let token = new_token(&reset);
    assert!(token.len() >= 32 && token != "t2");
    assert_eq!(
        verify(&app, "t2").await,
        403,
        "the old token is gone at once"
    );
    assert_eq!(verify(&app, &token).await, 200);
    assert!(reset.usage.round_trips <= 4, "{:?}", reset.usage);

    reset_by_id(&app, ADMIN, SHARED).await.expect(201);
    let refused = reset_by_id(&app, STRANGER, PROJECT_RUNNER)
        .await
        .expect(403);
    assert_eq!(
        refused.body,
        json!({"message": "403 Forbidden - No access granted"})
    );
    reset_by_id(&app, USER_READ_ONLY, PROJECT_RUNNER)
        .await
        .expect(403);
    reset_by_id(&app, USER, SHARED).await.expect(403);
    reset_by_id(&app, ADMIN, 999).await.expect(404);
    reset_by_id(&app, "nope", PROJECT_RUNNER).await.expect(401);
    // Two resets at once: both answer 201, one token stands, neither is half-written.
    let both = join_all([
        reset_by_id(&app, ADMIN, PROJECT_RUNNER),
        reset_by_id(&app, ADMIN, PROJECT_RUNNER),
    ])
    .await;
    let tokens: Vec<String> = both.iter().map(new_token).collect();
    let working: Vec<u16> = join_all(tokens.iter().map(|t| verify(&app, t))).await;
    let mut sorted = working.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [200, 403],
        "exactly the later token works: {working:?}"
    );
}

#[tokio::test]
async fn a_runner_rotates_its_own_token_and_the_old_one_never_works_after() {
    let app = app().await;
    let missing = app
        .post("/api/v4/runners/reset_authentication_token")
        .json(json!({}))
        .send()
        .await
        .expect(400);
    assert_eq!(missing.body, json!({"error": "token is missing"}));
    app.post("/api/v4/runners/reset_authentication_token")
        .json(json!({"token": "unknown"}))
        .send()
        .await
        .expect(403);

    // Verifies with the old token race the rotation: each is 200 or 403, never an error, and
    // every verify that starts after the rotation's 201 is 403.
    let racing = join_all((0..10).map(|_| verify(&app, "t3")));
    let rotation = app
        .post("/api/v4/runners/reset_authentication_token")
        .form("token=t3")
        .send();
    let (statuses, rotated) = tokio::join!(racing, rotation);
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 403),
        "{statuses:?}"
    );
    let token = new_token(&rotated.expect(201));
    for _ in 0..5 {
        assert_eq!(verify(&app, "t3").await, 403);
    }
    assert_eq!(verify(&app, &token).await, 200);
    let runner = app.store.get_runner(TWO_PROJECTS).await.unwrap().unwrap();
    assert_eq!(
        runner.token_digest,
        runners_shared::auth::TokenDigest::of(&token)
    );
    // The old token cannot rotate again either.
    app.post("/api/v4/runners/reset_authentication_token")
        .form("token=t3")
        .send()
        .await
        .expect(403);
}
