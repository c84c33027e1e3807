//! The stuck-job sweeper against DynamoDB Local: what it fails, and that it never fails a job a
//! runner is still writing to. "Later" is simulated by sweeping with a clock moved forward.

use axum::http::Method;
use runners_shared::sweeper::{self, SweepReport};
use runners_shared::time::Timestamp;
use serde_json::json;
use test_harness::TestApp;

mod common;
use common::{one_project_world, take};

const HOUR_MS: i64 = 3_600_000;

async fn app() -> TestApp {
    common::app(one_project_world(&[], &[])).await
}

async fn enqueue(app: &TestApp) -> i64 {
    common::enqueue_simple(app, "j", "dev").await
}

fn later(ms: i64) -> Timestamp {
    Timestamp::from_millis(Timestamp::now().millis() + ms)
}

#[tokio::test]
async fn stuck_jobs_fail_and_progressing_ones_are_left_alone() {
    let app = app().await;
    let (running, token) = take_after_enqueue(&app).await;
    let pending = enqueue(&app).await;

    // Half an hour on, nothing is stuck.
    let report = sweeper::sweep(&app.store, later(HOUR_MS / 2))
        .await
        .unwrap();
    assert_eq!(
        report,
        SweepReport {
            examined: 2,
            ..SweepReport::default()
        }
    );

    // Two hours on: the silent running job is stuck; the pending one not yet (a day).
    let report = sweeper::sweep(&app.store, later(2 * HOUR_MS))
        .await
        .unwrap();
    assert_eq!((report.failed_running, report.failed_pending), (1, 0));
    let job = app.store.get_job(running).await.unwrap().unwrap();
    assert_eq!(
        (job.status.as_str(), job.failure_reason.as_deref()),
        ("failed", Some("stuck_or_timeout_failure"))
    );
    let put = app
        .put(&format!("/api/v4/jobs/{running}"))
        .json(json!({"token": token, "state": "success"}))
        .send()
        .await
        .expect(403);
    assert_eq!(put.header("job-status"), Some("failed"));
    // The runner's job lists by status moved it from running to failed.
    for (status, total) in [("running", "0"), ("failed", "1")] {
        let listed = app
            .get(&format!("/api/v4/runners/1/jobs?status={status}"))
            .header("PRIVATE-TOKEN", common::ADMIN)
            .send()
            .await
            .expect(200);
        assert_eq!(listed.header("x-total"), Some(total), "{status}");
    }

    // A day on: the pending job fails and leaves the queue.
    let report = sweeper::sweep(&app.store, later(25 * HOUR_MS))
        .await
        .unwrap();
    assert_eq!(
        (report.examined, report.failed_pending),
        (1, 1),
        "the failed job is no longer active"
    );
    assert_eq!(
        app.store.get_job(pending).await.unwrap().unwrap().status,
        "failed"
    );
    app.post("/api/v4/jobs/request")
        .json(json!({"token": "runner"}))
        .send()
        .await
        .expect(204);
    assert_eq!(
        sweeper::sweep(&app.store, later(25 * HOUR_MS))
            .await
            .unwrap()
            .examined,
        0
    );
}

async fn take_after_enqueue(app: &TestApp) -> (i64, String) {
    enqueue(app).await;
    take(app, "runner").await
}

#[tokio::test]
async fn a_job_appended_to_after_the_sweeper_read_it_is_not_failed() {
    let app = app().await;
    let (id, token) = take_after_enqueue(&app).await;
    // The sweeper's view, read before the runner writes again.
    let seen = app.store.get_job(id).await.unwrap().unwrap();
    assert!(sweeper::is_stuck(&seen, later(2 * HOUR_MS)));
    app.request(Method::PATCH, &format!("/api/v4/jobs/{id}/trace"))
        .header("JOB-TOKEN", &token)
        .header("Content-Range", "0-4")
        .raw("text/plain", b"alive".to_vec())
        .send()
        .await
        .expect(202);
    assert!(
        !app.store
            .fail_stuck_job(&seen, later(2 * HOUR_MS))
            .await
            .unwrap()
    );
    let job = app.store.get_job(id).await.unwrap().unwrap();
    assert_eq!((job.status.as_str(), job.log_length), ("running", 5));

    // And while the runner keeps appending, concurrent sweeps never fail it at a time when its
    // last write is recent (clock 30 minutes on).
    let appends = async {
        let mut offset = 5;
        for _ in 0..20 {
            app.request(Method::PATCH, &format!("/api/v4/jobs/{id}/trace"))
                .header("JOB-TOKEN", &token)
                .header("Content-Range", &format!("{offset}-{}", offset + 1))
                .raw("text/plain", b"ok".to_vec())
                .send()
                .await
                .expect(202);
            offset += 2;
        }
    };
    let sweeps = async {
        for _ in 0..10 {
            let report = sweeper::sweep(&app.store, later(HOUR_MS / 2))
                .await
                .unwrap();
            assert_eq!(report.failed_running, 0);
        }
    };
    tokio::join!(appends, sweeps);
    assert_eq!(
        app.store.get_job(id).await.unwrap().unwrap().status,
        "running"
    );
}
