//! The job protocol after assignment, against DynamoDB Local: `PATCH /jobs/:id/trace` and
//! `PUT /jobs/:id` with GitLab 12's status codes and headers, offsets checked and nothing written
//! on a mismatch, the log stored byte for byte and capped, and the final state.

use axum::http::Method;
use runners_shared::store::jobs::MAX_JOB_LOG_BYTES;
use serde_json::{Value, json};
use test_harness::{TestApp, TestResponse};

mod common;
use common::{one_project_world, take};

async fn app() -> TestApp {
    common::app(one_project_world(&[], &[])).await
}

/// Enqueues a job and has the runner take it: (job id, job token).
async fn running_job(app: &TestApp) -> (i64, String) {
    common::enqueue_simple(app, "build", "dev").await;
    take(app, "runner").await
}

async fn patch(
    app: &TestApp,
    id: i64,
    token: &str,
    range: Option<&str>,
    body: Vec<u8>,
) -> TestResponse {
    let mut request = app
        .request(Method::PATCH, &format!("/api/v4/jobs/{id}/trace"))
        .header("JOB-TOKEN", token);
    if let Some(range) = range {
        request = request.header("Content-Range", range);
    }
    request.raw("text/plain", body).send().await
}

async fn put(app: &TestApp, id: i64, body: Value) -> TestResponse {
    app.put(&format!("/api/v4/jobs/{id}"))
        .json(body)
        .send()
        .await
}

async fn stored_log(app: &TestApp, id: i64) -> Vec<u8> {
    let job = app.store.get_job(id).await.unwrap().unwrap();
    app.store.read_log(&job).await.unwrap()
}

#[tokio::test]
async fn a_runner_appends_its_log_and_reports_success() {
    let app = app().await;
    let (id, token) = running_job(&app).await;
    let first = patch(&app, id, &token, Some("0-5"), b"hello\n".to_vec())
        .await
        .expect(202);
    assert_eq!(first.header("range"), Some("0-6"));
    assert_eq!(first.header("job-status"), Some("running"));
    assert_eq!(first.header("x-gitlab-trace-update-interval"), Some("30"));
    assert!(first.usage.round_trips <= 2, "{:?}", first.usage);
    // gitlab-python-runner's exclusive end, and the query-parameter token.
    let second = app
        .request(
            Method::PATCH,
            &format!("/api/v4/jobs/{id}/trace?token={token}"),
        )
        .header("Content-Range", "6-12")
        .raw("text/plain", b"world\n".to_vec())
        .send()
        .await
        .expect(202);
    assert_eq!(second.header("range"), Some("0-12"));
    // An empty chunk at the right offset is fine.
    patch(&app, id, &token, Some("12-12"), Vec::new())
        .await
        .expect(202);

    let keep_alive = put(&app, id, json!({"token": token, "state": "running"}))
        .await
        .expect(200);
    assert!(keep_alive.usage.round_trips <= 2);
    put(&app, id, json!({"token": token, "state": "success"}))
        .await
        .expect(200);
    let after = put(&app, id, json!({"token": token, "state": "failed"})).await;
    assert_eq!(
        (after.status, after.header("job-status"), &after.body),
        (
            403,
            Some("success"),
            &json!({"message": "403 Forbidden - Job is not running"})
        )
    );
    patch(&app, id, &token, Some("12-13"), b"x".to_vec())
        .await
        .expect(403);
    assert_eq!(stored_log(&app, id).await, b"hello\nworld\n");
    let job = app.store.get_job(id).await.unwrap().unwrap();
    assert_eq!(job.status, "success");
    assert!(job.finished_at.is_some());
}

#[tokio::test]
async fn wrong_offsets_are_416_and_write_nothing() {
    let app = app().await;
    let (id, token) = running_job(&app).await;
    patch(&app, id, &token, Some("0-10"), b"0123456789\n".to_vec())
        .await
        .expect(202);
    for range in ["15-20/6", "8-20/13", "garbage", "11111111111111111111111-2"] {
        let refused = patch(&app, id, &token, Some(range), b"zzz".to_vec()).await;
        assert_eq!(
            (refused.status, refused.header("range"), &refused.body),
            (
                416,
                Some("0-11"),
                &json!({"error": "416 Range Not Satisfiable"})
            ),
            "{range}"
        );
    }
    let missing = patch(&app, id, &token, None, b"zzz".to_vec())
        .await
        .expect(400);
    assert_eq!(
        missing.body,
        json!({"error": "400 Missing header Content-Range"})
    );
    assert_eq!(stored_log(&app, id).await, b"0123456789\n");
}

#[tokio::test]
async fn tokens_and_unknown_jobs() {
    let app = app().await;
    let (id, token) = running_job(&app).await;
    let (other, other_token) = running_job(&app).await;
    let wrong = patch(&app, id, &other_token, Some("0-1"), b"x".to_vec())
        .await
        .expect(403);
    assert_eq!(
        wrong.header("job-status"),
        None,
        "a wrong token learns nothing"
    );
    put(&app, other, json!({"token": token, "state": "success"}))
        .await
        .expect(403);
    let unknown = put(&app, 999_999, json!({"token": token}))
        .await
        .expect(404);
    assert_eq!(unknown.body, json!({"message": "404 Not Found"}));
    let missing = put(&app, id, json!({"state": "success"})).await.expect(400);
    assert_eq!(missing.body, json!({"error": "token is missing"}));
    let bad_id = put(&app, 0, json!({"token": token})).await;
    assert_eq!(bad_id.status, 404);
    app.put("/api/v4/jobs/abc")
        .json(json!({"token": token}))
        .send()
        .await
        .expect(400);
}

#[tokio::test]
async fn bytes_are_kept_as_sent_and_put_replaces_the_log() {
    let app = app().await;
    let (id, token) = running_job(&app).await;
    let binary: Vec<u8> = vec![0xff, 0xfe, b'\n', 0x00, 0xc3, 0x28];
    patch(&app, id, &token, Some("0-5"), binary.clone())
        .await
        .expect(202);
    assert_eq!(stored_log(&app, id).await, binary);
    // gitlab-runner-api's resync after a 416: the whole log, no state.
    put(
        &app,
        id,
        json!({"token": token, "trace": "Running with gitlab_runner_api\nfull log\n"}),
    )
    .await
    .expect(200);
    assert_eq!(
        stored_log(&app, id).await,
        b"Running with gitlab_runner_api\nfull log\n"
    );
    let next = patch(&app, id, &token, Some("40-44"), b"more\n".to_vec())
        .await
        .expect(202);
    assert_eq!(next.header("range"), Some("0-45"));
    put(
        &app,
        id,
        json!({"token": token, "state": "failed", "failure_reason": "made_up_reason"}),
    )
    .await
    .expect(200);
    let job = app.store.get_job(id).await.unwrap().unwrap();
    assert_eq!(
        (job.status.as_str(), job.failure_reason.as_deref()),
        ("failed", Some("unknown_failure"))
    );
}

#[tokio::test]
async fn a_log_past_the_cap_ends_with_one_line_and_patches_keep_answering() {
    let app = app().await;
    let (id, token) = running_job(&app).await;
    let mib = 1 << 20;
    let mut offset = 0i64;
    for i in 0..5u8 {
        let chunk = vec![b'a' + i; mib];
        let range = format!("{offset}-{}", offset + i64::try_from(mib).unwrap() - 1);
        let answer = patch(&app, id, &token, Some(&range), chunk)
            .await
            .expect(202);
        offset += i64::try_from(mib).unwrap();
        assert_eq!(answer.header("range"), Some(format!("0-{offset}").as_str()));
    }
    let log = stored_log(&app, id).await;
    let cap = usize::try_from(MAX_JOB_LOG_BYTES).unwrap();
    assert_eq!(
        &log[..mib],
        vec![b'a'; mib].as_slice(),
        "1 MiB chunks stored whole"
    );
    assert_eq!(&log[cap - 1..cap], b"d");
    assert_eq!(
        String::from_utf8_lossy(&log[cap..]),
        format!("\nJob's log exceeded limit of {MAX_JOB_LOG_BYTES} bytes.\n")
    );
}

/// GitLab's `job_execution_status` of the runner: `active` from the moment it takes a job until
/// the job ends, however it ends (success, cancel).
async fn status(app: &TestApp) -> String {
    app.get("/api/v4/runners/1")
        .header("PRIVATE-TOKEN", common::ADMIN)
        .send()
        .await
        .expect(200)
        .body["job_execution_status"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_runner_is_active_exactly_while_a_job_runs_on_it() {
    let app = app().await;
    assert_eq!(status(&app).await, "idle");
    let (id, token) = running_job(&app).await;
    assert_eq!(status(&app).await, "active");
    put(&app, id, json!({"token": token, "state": "success"}))
        .await
        .expect(200);
    assert_eq!(status(&app).await, "idle");

    let (second, _) = running_job(&app).await;
    assert_eq!(status(&app).await, "active");
    app.post(&format!("/api/v4/projects/100/jobs/{second}/cancel"))
        .header("PRIVATE-TOKEN", common::ADMIN)
        .send()
        .await
        .expect(201);
    assert_eq!(status(&app).await, "idle");
}
