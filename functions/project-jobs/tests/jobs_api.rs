//! The users' Jobs API against DynamoDB Local: the list (newest first, `scope`, pagination),
//! cancel as runners see it, retry, the permissions of each, and the races the issue names.

use axum::http::Method;
use futures_util::future::join_all;
use serde_json::json;
use test_harness::{TestApp, TestResponse};

mod common;
use common::{one_project_world, take};

const DEV: &str = "dev-pat";
const REPORTER: &str = "reporter-pat";
const GUEST: &str = "guest-pat";
const STRANGER: &str = "stranger-pat";

async fn app() -> TestApp {
    let world = one_project_world(
        &["dev", "reporter", "guest", "stranger"],
        &[(2, 30), (3, 20), (4, 10)],
    );
    common::app(world).await
}

async fn enqueue(app: &TestApp, name: &str, r#ref: &str) -> i64 {
    common::enqueue_simple(app, name, r#ref).await
}

async fn user_post(app: &TestApp, token: &str, path: &str) -> TestResponse {
    app.post(path).header("PRIVATE-TOKEN", token).send().await
}

fn ids(response: &TestResponse) -> Vec<i64> {
    response
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn the_list_is_newest_first_with_scopes_and_pages() {
    let app = app().await;
    let first = enqueue(&app, "one", "dev").await;
    let second = enqueue(&app, "two", "dev").await;
    let third = enqueue(&app, "three", "dev").await;
    let (taken, token) = take(&app, "runner").await;
    assert_eq!(taken, first, "oldest first for runners");
    app.put(&format!("/api/v4/jobs/{taken}"))
        .json(json!({"token": token, "state": "success"}))
        .send()
        .await
        .expect(200);

    let all = app
        .get("/api/v4/projects/100/jobs")
        .header("PRIVATE-TOKEN", REPORTER)
        .send()
        .await
        .expect(200);
    assert_eq!(ids(&all), [third, second, first]);
    assert_eq!(all.header("x-total"), Some("3"));
    assert!(all.usage.round_trips <= 3, "{:?}", all.usage);
    let pending = app
        .get("/api/v4/projects/group%2Fapp/jobs?scope=pending")
        .header("PRIVATE-TOKEN", REPORTER)
        .send()
        .await
        .expect(200);
    assert_eq!(ids(&pending), [third, second]);
    let several = app
        .get("/api/v4/projects/100/jobs?scope[]=success&scope[]=running&per_page=1")
        .header("PRIVATE-TOKEN", REPORTER)
        .send()
        .await
        .expect(200);
    assert_eq!(ids(&several), [first]);
    let paged = app
        .get("/api/v4/projects/100/jobs?per_page=2&page=2")
        .header("PRIVATE-TOKEN", REPORTER)
        .send()
        .await
        .expect(200);
    assert_eq!(
        (ids(&paged), paged.header("x-prev-page")),
        (vec![first], Some("1"))
    );
    let bad = app
        .get("/api/v4/projects/100/jobs?scope=bogus")
        .header("PRIVATE-TOKEN", REPORTER)
        .send()
        .await
        .expect(400);
    assert_eq!(
        bad.body,
        json!({"error": "scope does not have a valid value"})
    );
    app.get("/api/v4/projects/100/jobs")
        .header("PRIVATE-TOKEN", GUEST)
        .send()
        .await
        .expect(403);
    app.get("/api/v4/projects/100/jobs")
        .header("PRIVATE-TOKEN", STRANGER)
        .send()
        .await
        .expect(404);
    app.get("/api/v4/projects/100/jobs")
        .send()
        .await
        .expect(401);
    let one = app
        .get(&format!("/api/v4/projects/100/jobs/{first}"))
        .header("PRIVATE-TOKEN", REPORTER)
        .send()
        .await
        .expect(200);
    assert_eq!(one.body["status"], "success");
    assert!(one.usage.round_trips <= 3, "{:?}", one.usage);
    let missing = app
        .get("/api/v4/projects/100/jobs/999999")
        .header("PRIVATE-TOKEN", REPORTER)
        .send()
        .await
        .expect(404);
    assert_eq!(missing.body, json!({"message": "404 Not found"}));
}

#[tokio::test]
async fn cancel_as_runners_see_it() {
    let app = app().await;
    // A pending job leaves the queue.
    let pending = enqueue(&app, "waiting", "dev").await;
    let canceled = user_post(
        &app,
        DEV,
        &format!("/api/v4/projects/100/jobs/{pending}/cancel"),
    )
    .await
    .expect(201);
    assert_eq!(canceled.body["status"], "canceled");
    app.post("/api/v4/jobs/request")
        .json(json!({"token": "runner"}))
        .send()
        .await
        .expect(204);

    // A running job: the runner's next PATCH and PUT are 403 with Job-Status: canceled.
    enqueue(&app, "busy", "dev").await;
    let (running, token) = take(&app, "runner").await;
    user_post(
        &app,
        REPORTER,
        &format!("/api/v4/projects/100/jobs/{running}/cancel"),
    )
    .await
    .expect(403);
    user_post(
        &app,
        DEV,
        &format!("/api/v4/projects/100/jobs/{running}/cancel"),
    )
    .await
    .expect(201);
    let patch = app
        .request(Method::PATCH, &format!("/api/v4/jobs/{running}/trace"))
        .header("JOB-TOKEN", &token)
        .header("Content-Range", "0-3")
        .raw("text/plain", b"late".to_vec())
        .send()
        .await
        .expect(403);
    assert_eq!(patch.header("job-status"), Some("canceled"));
    let put = app
        .put(&format!("/api/v4/jobs/{running}"))
        .json(json!({"token": token, "state": "success"}))
        .send()
        .await
        .expect(403);
    assert_eq!(put.header("job-status"), Some("canceled"));
    // Cancel of a finished job changes nothing and still answers 201.
    let again = user_post(
        &app,
        DEV,
        &format!("/api/v4/projects/100/jobs/{running}/cancel"),
    )
    .await
    .expect(201);
    assert_eq!(again.body["status"], "canceled");
    // main is protected: a Developer may not cancel its jobs.
    let protected = enqueue(&app, "release", "main").await;
    user_post(
        &app,
        DEV,
        &format!("/api/v4/projects/100/jobs/{protected}/cancel"),
    )
    .await
    .expect(403);
}

#[tokio::test]
async fn retry_makes_a_new_job_and_only_of_finished_ones() {
    let app = app().await;
    let original = enqueue(&app, "flaky", "dev").await;
    let (id, token) = take(&app, "runner").await;
    let running = user_post(&app, DEV, &format!("/api/v4/projects/100/jobs/{id}/retry"))
        .await
        .expect(403);
    assert_eq!(
        running.body,
        json!({"message": "403 Forbidden - Job is not retryable"})
    );
    app.put(&format!("/api/v4/jobs/{id}"))
        .json(json!({"token": token, "state": "failed", "failure_reason": "script_failure"}))
        .send()
        .await
        .expect(200);
    // Two retries at once: two distinct new jobs, never a corrupted one.
    let path = format!("/api/v4/projects/100/jobs/{original}/retry");
    let retried = join_all([user_post(&app, DEV, &path), user_post(&app, DEV, &path)]).await;
    let mut new_ids: Vec<i64> = retried
        .iter()
        .map(|r| {
            assert_eq!(r.status, 201, "{}", r.body);
            assert_eq!(
                (r.body["status"].as_str(), r.body["name"].as_str()),
                (Some("pending"), Some("flaky"))
            );
            assert_eq!(r.body["user"]["username"], "dev");
            r.body["id"].as_i64().unwrap()
        })
        .collect();
    new_ids.sort_unstable();
    new_ids.dedup();
    assert_eq!(new_ids.len(), 2);
    assert!(new_ids.iter().all(|n| *n > original));
    let (next, _) = take(&app, "runner").await;
    assert_eq!(next, new_ids[0], "a retried job runs again");
    user_post(&app, REPORTER, &path).await.expect(403);
}

#[tokio::test]
async fn cancel_while_the_runner_is_appending_keeps_a_consistent_log() {
    let app = app().await;
    enqueue(&app, "chatty", "dev").await;
    let (id, token) = take(&app, "runner").await;
    let appender = async {
        let mut accepted = Vec::new();
        let mut offset = 0usize;
        for i in 0..30 {
            let line = format!("line {i}\n").into_bytes();
            let answer = app
                .request(Method::PATCH, &format!("/api/v4/jobs/{id}/trace"))
                .header("JOB-TOKEN", &token)
                .header(
                    "Content-Range",
                    &format!("{offset}-{}", offset + line.len() - 1),
                )
                .raw("text/plain", line.clone())
                .send()
                .await;
            match answer.status {
                202 => {
                    offset += line.len();
                    accepted.extend(line);
                }
                403 => {
                    assert_eq!(answer.header("job-status"), Some("canceled"));
                    break;
                }
                other => panic!("PATCH answered {other}"),
            }
        }
        accepted
    };
    let canceler = async {
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        user_post(&app, DEV, &format!("/api/v4/projects/100/jobs/{id}/cancel"))
            .await
            .status
    };
    let (accepted, canceled) = tokio::join!(appender, canceler);
    assert_eq!(canceled, 201);
    let job = app.store.get_job(id).await.unwrap().unwrap();
    assert_eq!(job.status, "canceled");
    assert_eq!(
        app.store.read_log(&job).await.unwrap(),
        accepted,
        "exactly the accepted chunks"
    );
    assert_eq!(job.log_length as usize, accepted.len());
}

#[tokio::test]
async fn a_runners_jobs_by_status_follow_every_change_racing_ones_too() {
    let app = app().await;
    let mut taken = Vec::new();
    for i in 0..8 {
        enqueue(&app, &format!("job {i}"), "dev").await;
        taken.push(take(&app, "runner").await);
    }
    let pause = |ms: u64| tokio::time::sleep(std::time::Duration::from_millis(ms));
    let report = |i: usize, state: &'static str, after_ms: u64| {
        let (id, token) = taken[i].clone();
        let app = &app;
        async move {
            pause(after_ms).await;
            app.put(&format!("/api/v4/jobs/{id}"))
                .json(json!({"token": token, "state": state}))
                .send()
                .await
                .status
        }
    };
    let cancel = |i: usize, after_ms: u64| {
        let id = taken[i].0;
        let app = &app;
        async move {
            pause(after_ms).await;
            user_post(app, DEV, &format!("/api/v4/projects/100/jobs/{id}/cancel"))
                .await
                .status
        }
    };
    // Jobs 0-3: a user cancels while the runner reports, at once or one a little after the
    // other (whichever lands first wins); 4 succeeds, 5 fails, 7 is canceled, 6 keeps running.
    let races = [(0, 0), (0, 0), (60, 0), (0, 60)]
        .into_iter()
        .enumerate()
        .map(|(i, (report_after, cancel_after))| {
            let state = if i % 2 == 0 { "success" } else { "failed" };
            futures_util::future::join(report(i, state, report_after), cancel(i, cancel_after))
        });
    let (raced, alone) = tokio::join!(
        join_all(races),
        futures_util::future::join3(
            report(4, "success", 0),
            report(5, "failed", 0),
            cancel(7, 0)
        )
    );
    // The runner's report lands (200) or finds the job canceled (403).
    for (put, cancel) in &raced {
        assert!([200, 403].contains(put) && *cancel == 201, "{raced:?}");
    }
    assert_eq!(alone, (200, 200, 201));

    let mut by_status: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for (id, _) in &taken {
        let job = app.store.get_job(*id).await.unwrap().unwrap();
        by_status.entry(job.status).or_default().push(*id);
    }
    assert_eq!(by_status["running"], [taken[6].0]);
    for (i, (put, _)) in raced.iter().enumerate() {
        let canceled = by_status
            .get("canceled")
            .is_some_and(|ids| ids.contains(&taken[i].0));
        assert_eq!(canceled, *put == 403, "job {i}: {raced:?}");
    }
    for status in ["running", "success", "failed", "canceled", "pending"] {
        let expected = by_status.get(status).cloned().unwrap_or_default();
        let listed = app
            .get(&format!(
                "/api/v4/runners/1/jobs?status={status}&per_page=2"
            ))
            .header("PRIVATE-TOKEN", common::ADMIN)
            .send()
            .await
            .expect(200);
        let total = expected.len().to_string();
        assert_eq!(listed.header("x-total"), Some(total.as_str()), "{status}");
        assert_eq!(
            ids(&listed),
            expected.iter().copied().take(2).collect::<Vec<_>>(),
            "{status}"
        );
        assert!(
            listed.usage.round_trips <= 3,
            "{status}: {:?}",
            listed.usage
        );
    }
    let all = app
        .get("/api/v4/runners/1/jobs?per_page=100")
        .header("PRIVATE-TOKEN", common::ADMIN)
        .send()
        .await
        .expect(200);
    assert_eq!(all.header("x-total"), Some("8"));
}
