//! GET /runners/:id/jobs of a runner with 2,500 jobs spread over 8 id buckets: every page,
//! first, middle or last, ascending or descending, of any status or of one, in at most 4 round
//! trips, with the jobs and total a model of the seed says.

mod common;
use common::*;
use serde_json::json;

const JOBS: i64 = 2_500;

/// Job ids 3, 6, 9, ... (every third id belongs to the runner), statuses in turn.
fn job_ids() -> Vec<i64> {
    (1..=JOBS).map(|i| i * 3).collect()
}

async fn busy_app() -> test_harness::TestApp {
    let statuses = ["success", "failed", "canceled", "running"];
    let mut world = world();
    let jobs: Vec<serde_json::Value> = job_ids()
        .into_iter()
        .enumerate()
        .map(|(i, id)| {
            json!({"id": 100_000 + id, "runner_id": PROJECT_RUNNER, "project_id": 100, "user_id": 2,
                   "status": statuses[i % 4]})
        })
        .collect();
    world["jobs"] = json!(jobs);
    app_with(world).await
}

/// Checks one page of 100 against the expected jobs and total, within `budget` round trips.
async fn check_page(
    app: &test_harness::TestApp,
    caller: &str,
    url: &str,
    expected: &[i64],
    page: usize,
    budget: u32,
) {
    let response = get(app, caller, url).await.expect(200);
    let want: Vec<i64> = expected
        .iter()
        .copied()
        .skip((page - 1) * 100)
        .take(100)
        .collect();
    assert_eq!(ids(&response), want, "{url}");
    let total = expected.len().to_string();
    assert_eq!(response.header("x-total"), Some(total.as_str()), "{url}");
    assert!(
        response.usage.round_trips <= budget,
        "{url}: {:?}",
        response.usage
    );
}

#[tokio::test]
async fn every_page_of_a_busy_runners_jobs_in_four_round_trips() {
    let app = busy_app().await;
    let ascending: Vec<i64> = job_ids().into_iter().map(|id| 100_000 + id).collect();
    let descending: Vec<i64> = ascending.iter().rev().copied().collect();
    let base = format!("/api/v4/runners/{PROJECT_RUNNER}/jobs?per_page=100");
    for (order, expected) in [("", &ascending), ("&order_by=id&sort=desc", &descending)] {
        for page in [1, 13, 25] {
            for caller in [ADMIN, USER] {
                let url = format!("{base}{order}&page={page}");
                let budget = if page == 1 { 3 } else { 4 };
                check_page(&app, caller, &url, expected, page, budget).await;
            }
        }
    }
    // Past the end: nothing, and the total.
    let past = get(&app, ADMIN, &format!("{base}&page=26"))
        .await
        .expect(200);
    assert_eq!(past.body, json!([]));
    assert_eq!(past.header("x-total"), Some("2500"));
    // A status filter is counted too: its pages, first to last, either way, agree with the
    // model in the same round trips.
    for (status, skip) in [
        ("success", 0),
        ("failed", 1),
        ("canceled", 2),
        ("running", 3),
    ] {
        let matching: Vec<i64> = ascending.iter().copied().skip(skip).step_by(4).collect();
        assert_eq!(matching.len(), 625);
        let reversed: Vec<i64> = matching.iter().rev().copied().collect();
        for (order, expected) in [("", &matching), ("&order_by=id&sort=desc", &reversed)] {
            for page in [1, 2, 4, 7] {
                let url = format!("{base}{order}&status={status}&page={page}");
                // A page within the first 200 of its status is read beside the counts.
                let budget = if page <= 2 { 3 } else { 4 };
                check_page(&app, USER, &url, expected, page, budget).await;
            }
        }
    }
    let none = get(&app, ADMIN, &format!("{base}&status=pending"))
        .await
        .expect(200);
    assert_eq!(
        (none.body.clone(), none.header("x-total")),
        (json!([]), Some("0"))
    );
    // Still the runner's owners only.
    get(&app, USER2, &format!("{base}&page=13"))
        .await
        .expect(403);
}
