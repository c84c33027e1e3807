//! Enqueue, matching and assignment against DynamoDB Local: `POST /projects/:id/jobs` puts a job
//! in its queues, `POST /jobs/request` hands it to exactly one runner that may take it, with the
//! payload every real client decodes.

use futures_util::future::join_all;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use test_harness::{TestApp, TestResponse};

mod common;
use common::ADMIN;

const DEV: &str = "dev-pat";
const MAINTAINER: &str = "maintainer-pat";
const REPORTER: &str = "reporter-pat";

fn world(extra_runners: Value) -> Value {
    let mut runners = json!([
        {"id": 1, "token": "instance-runner", "runner_type": "instance_type"},
        {"id": 2, "token": "project-runner", "runner_type": "project_type", "projects": [100],
         "tag_list": ["docker"], "run_untagged": false},
        {"id": 3, "token": "group-runner", "runner_type": "group_type", "groups": [10]},
        {"id": 4, "token": "other-project-runner", "runner_type": "project_type", "projects": [101]},
        {"id": 5, "token": "protected-runner", "runner_type": "instance_type",
         "access_level": "ref_protected"}
    ]);
    if let (Some(list), Value::Array(more)) = (runners.as_array_mut(), extra_runners) {
        list.extend(more);
    }
    json!({
        "users": [
            {"id": 1, "username": "root", "admin": true, "tokens": [{"token": ADMIN}]},
            {"id": 2, "username": "dev", "tokens": [{"token": DEV}]},
            {"id": 3, "username": "maintainer", "tokens": [{"token": MAINTAINER}]},
            {"id": 4, "username": "reporter", "tokens": [{"token": REPORTER}]}
        ],
        "groups": [{"id": 10, "name": "Group", "path": "group",
                    "members": [{"user_id": 3, "access_level": 40}]}],
        "projects": [
            {"id": 100, "name": "App", "path": "app", "namespace_id": 10,
             "repository_url": "/srv/git/app.git", "build_timeout": 1800,
             "members": [{"user_id": 2, "access_level": 30}, {"user_id": 4, "access_level": 20}]},
            {"id": 101, "name": "Lib", "path": "lib", "namespace_id": 10,
             "shared_runners_enabled": false, "group_runners_enabled": false},
            {"id": 102, "name": "Third", "path": "third", "namespace_id": 10}
        ],
        "runners": runners
    })
}

async fn app_with(extra: Value) -> TestApp {
    common::app(world(extra)).await
}

use common::enqueue;

async fn poll(app: &TestApp, runner_token: &str) -> TestResponse {
    app.post("/api/v4/jobs/request")
        .json(json!({"token": runner_token, "info": {"name": "box", "version": "17.5.0"}}))
        .send()
        .await
}

fn variables(payload: &Value) -> HashMap<String, Value> {
    payload["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["key"].as_str().unwrap().to_owned(), v.clone()))
        .collect()
}

#[tokio::test]
async fn an_enqueued_job_goes_to_a_runner_with_the_full_payload() {
    let app = app_with(json!([])).await;
    let created = enqueue(
        &app,
        DEV,
        "group%2Fapp",
        json!({"name": "build", "script": ["make"], "before_script": ["./setup"],
               "after_script": ["./cleanup"], "ref": "feature", "tag_list": ["docker"],
               "variables": [{"key": "MODE", "value": "release", "masked": true}]}),
    )
    .await
    .expect(201);
    assert_eq!(
        (
            created.body["status"].as_str(),
            created.body["name"].as_str()
        ),
        (Some("pending"), Some("build"))
    );
    assert_eq!(created.body["user"]["username"], "dev");
    assert!(
        created.usage.round_trips <= 3,
        "enqueue: {:?}",
        created.usage
    );
    let id = created.body["id"].as_i64().unwrap();

    // Runner 1 (instance, untagged only) and 4 (another project) cannot take a docker job.
    poll(&app, "instance-runner").await.expect(204);
    poll(&app, "other-project-runner").await.expect(204);
    let taken = poll(&app, "project-runner").await.expect(201);
    assert_eq!(taken.header("content-type"), Some("application/json"));
    assert!(
        taken.usage.round_trips <= 4,
        "assignment: {:?}",
        taken.usage
    );
    let payload = taken.body;
    assert_eq!(payload["id"], id);
    let token = payload["token"].as_str().unwrap();
    assert!(token.len() >= 32);
    assert_eq!(payload["job_info"]["name"], "build");
    assert_eq!(payload["git_info"]["repo_url"], "/srv/git/app.git");
    assert_eq!(payload["git_info"]["ref"], "feature");
    assert_eq!(
        payload["runner_info"]["timeout"], 1800,
        "the project's build_timeout"
    );
    assert_eq!(payload["steps"][0]["script"], json!(["./setup", "make"]));
    assert_eq!(payload["steps"][1]["name"], "after_script");
    for key in [
        "image",
        "services",
        "artifacts",
        "cache",
        "credentials",
        "dependencies",
        "features",
    ] {
        assert!(payload.get(key).is_some(), "{key} is always present");
    }
    assert_eq!(payload["dependencies"], json!([]));
    let vars = variables(&payload);
    for key in [
        "CI_JOB_URL",
        "CI_PROJECT_PATH",
        "CI_CONFIG_PATH",
        "CI_COMMIT_SHA",
        "CI_JOB_TOKEN",
    ] {
        assert!(vars[key]["value"].is_string(), "{key}");
    }
    assert_eq!(vars["CI_PROJECT_PATH"]["value"], "group/app");
    assert_eq!(vars["CI_JOB_TOKEN"]["value"], token);
    assert_eq!(vars["MODE"]["masked"], true);
    assert!(
        !vars.contains_key("GIT_STRATEGY"),
        "the project has a repository"
    );

    // Assigned once: nobody gets it again; the runner's job list shows it running.
    poll(&app, "project-runner").await.expect(204);
    let listed = app
        .get("/api/v4/runners/2/jobs")
        .header("PRIVATE-TOKEN", ADMIN)
        .send()
        .await
        .expect(200);
    assert_eq!(listed.body[0]["id"], id);
    assert_eq!(listed.body[0]["status"], "running");
    let listed_count = listed.body.as_array().map_or(0, Vec::len).to_string();
    assert_eq!(
        listed.header("x-total"),
        Some(listed_count.as_str()),
        "the assignment counted the job"
    );
    let stored = app.store.get_job(id).await.unwrap().unwrap();
    assert_eq!(stored.runner_id, Some(2));
    assert!(stored.queues.is_empty());
}

#[tokio::test]
async fn which_runners_see_which_queues() {
    let app = app_with(json!([])).await;
    // Lib (101) takes neither shared nor group runners: only its own.
    enqueue(&app, ADMIN, "101", json!({"name": "l", "script": "true"}))
        .await
        .expect(201);
    poll(&app, "instance-runner").await.expect(204);
    poll(&app, "group-runner").await.expect(204);
    assert_eq!(
        poll(&app, "other-project-runner").await.expect(201).body["job_info"]["project_id"],
        101
    );
    // App (100): the group runner takes an untagged job of a project in its group.
    enqueue(&app, ADMIN, "100", json!({"name": "g", "script": "true"}))
        .await
        .expect(201);
    assert_eq!(
        poll(&app, "group-runner").await.expect(201).body["job_info"]["name"],
        "g"
    );
    // A protected ref (main, the default) goes to the ref_protected runner; others it refuses.
    enqueue(
        &app,
        MAINTAINER,
        "100",
        json!({"name": "unprotected", "script": "true", "ref": "dev"}),
    )
    .await
    .expect(201);
    poll(&app, "protected-runner").await.expect(204);
    enqueue(
        &app,
        MAINTAINER,
        "100",
        json!({"name": "protected", "script": "true"}),
    )
    .await
    .expect(201);
    let taken = poll(&app, "protected-runner").await.expect(201);
    assert_eq!(taken.body["job_info"]["name"], "protected");
    // The oldest job it may take first.
    assert_eq!(
        poll(&app, "instance-runner").await.expect(201).body["job_info"]["name"],
        "unprotected"
    );
}

#[tokio::test]
async fn a_job_without_a_repository_skips_git_and_a_paused_runner_takes_nothing() {
    let app = app_with(json!([
        {"id": 6, "token": "paused-runner", "runner_type": "instance_type", "active": false},
        {"id": 7, "token": "capped-runner", "runner_type": "project_type", "projects": [101],
         "maximum_timeout": 900}
    ]))
    .await;
    enqueue(
        &app,
        ADMIN,
        "101",
        json!({"name": "x", "script": "true", "timeout": 7200}),
    )
    .await
    .expect(201);
    poll(&app, "paused-runner").await.expect(204);
    let payload = poll(&app, "capped-runner").await.expect(201).body;
    let vars = variables(&payload);
    assert_eq!(vars["GIT_STRATEGY"]["value"], "none");
    assert_eq!(payload["git_info"]["repo_url"], "");
    assert_eq!(
        payload["runner_info"]["timeout"], 900,
        "capped by maximum_timeout"
    );
    assert_eq!(payload["steps"][0]["timeout"], 900);
}

#[tokio::test]
async fn enqueue_permissions_and_errors_in_gitlabs_order() {
    let app = app_with(json!([])).await;
    let body = json!({"name": "x", "script": "true", "ref": "dev"});
    enqueue(&app, "nope", "100", body.clone()).await.expect(401);
    let invisible = enqueue(&app, DEV, "101", body.clone()).await.expect(404);
    assert_eq!(invisible.body, json!({"message": "404 Project Not Found"}));
    enqueue(&app, REPORTER, "100", json!({})).await.expect(403);
    let missing = enqueue(&app, DEV, "100", json!({})).await.expect(400);
    assert_eq!(
        missing.body,
        json!({"error": "name is missing, script is missing"})
    );
    // main is protected by default: a Developer may not, a Maintainer (through the group) may.
    let protected = json!({"name": "deploy", "script": "true", "ref": "main"});
    enqueue(&app, DEV, "100", protected.clone())
        .await
        .expect(403);
    enqueue(&app, MAINTAINER, "group%2Fapp", protected)
        .await
        .expect(201);
    let bad = enqueue(
        &app,
        DEV,
        "100",
        json!({"name": "x", "script": "true", "variables": {"not valid": "v"}}),
    )
    .await
    .expect(400);
    assert_eq!(bad.body, json!({"error": "variables is invalid"}));
    let tags: Vec<String> = (0..1000).map(|i| format!("t{i}")).collect();
    enqueue(
        &app,
        DEV,
        "100",
        json!({"name": "x", "script": "true", "tag_list": tags, "ref": "dev"}),
    )
    .await
    .expect(400);
}

#[tokio::test]
async fn twenty_runners_polling_for_ten_jobs_take_each_exactly_once() {
    let extra: Vec<Value> = (0..20)
        .map(|i| json!({"id": 100 + i, "token": format!("racer-{i}"), "runner_type": "instance_type"}))
        .collect();
    let app = app_with(Value::Array(extra)).await;
    for i in 0..10 {
        enqueue(
            &app,
            ADMIN,
            "100",
            json!({"name": format!("job {i}"), "script": "true", "ref": "dev"}),
        )
        .await
        .expect(201);
    }
    let tokens: Vec<String> = (0..20).map(|i| format!("racer-{i}")).collect();
    let answers = join_all(tokens.iter().map(|t| poll(&app, t))).await;
    let mut taken = HashSet::new();
    for answer in &answers {
        match answer.status {
            201 => assert!(
                taken.insert(answer.body["id"].as_i64().unwrap()),
                "twice: {}",
                answer.body["id"]
            ),
            204 => {}
            other => panic!("a poll answered {other}: {}", answer.body),
        }
    }
    // Every job went to some runner; any left over (a runner that lost every race) are taken now.
    for token in &tokens {
        let answer = poll(&app, token).await;
        if answer.status == 201 {
            assert!(taken.insert(answer.body["id"].as_i64().unwrap()));
        }
    }
    assert_eq!(taken.len(), 10);
}

#[tokio::test]
async fn enabling_and_disabling_a_runner_changes_the_queues_it_polls() {
    let app = app_with(json!([])).await;
    // Lib (101) takes no shared runners: the instance runner cannot see its job...
    enqueue(
        &app,
        ADMIN,
        "101",
        json!({"name": "first", "script": "true"}),
    )
    .await
    .expect(201);
    poll(&app, "instance-runner").await.expect(204);
    // ...until an admin enables it there (it becomes a project runner of 101).
    app.post("/api/v4/projects/101/runners")
        .header("PRIVATE-TOKEN", ADMIN)
        .json(json!({"runner_id": 1}))
        .send()
        .await
        .expect(201);
    let taken = poll(&app, "instance-runner").await.expect(201);
    assert_eq!(taken.body["job_info"]["name"], "first");
    assert_eq!(
        taken.usage.round_trips, 3,
        "token; runner+queues; assignment+job"
    );
    // Enabled in 100 too, then disabled in 101: it polls 100's queue only.
    app.post("/api/v4/projects/100/runners")
        .header("PRIVATE-TOKEN", ADMIN)
        .json(json!({"runner_id": 1}))
        .send()
        .await
        .expect(201);
    app.delete("/api/v4/projects/101/runners/1")
        .header("PRIVATE-TOKEN", ADMIN)
        .send()
        .await
        .expect(204);
    enqueue(&app, ADMIN, "101", json!({"name": "lib", "script": "true"}))
        .await
        .expect(201);
    poll(&app, "instance-runner").await.expect(204);
    enqueue(
        &app,
        ADMIN,
        "100",
        json!({"name": "app", "script": "true", "ref": "dev"}),
    )
    .await
    .expect(201);
    assert_eq!(
        poll(&app, "instance-runner").await.expect(201).body["job_info"]["name"],
        "app"
    );
}

#[tokio::test]
async fn instance_runners_serve_the_project_with_fewest_running_jobs_first() {
    let app = app_with(json!([
        {"id": 8, "token": "second-instance-runner", "runner_type": "instance_type"}
    ]))
    .await;
    // Group/app (100) already has a job running on an instance runner...
    enqueue(
        &app,
        ADMIN,
        "100",
        json!({"name": "app running", "script": "true", "ref": "dev"}),
    )
    .await
    .expect(201);
    let first = poll(&app, "instance-runner").await.expect(201).body;
    assert_eq!(first["job_info"]["name"], "app running");
    // ...so the third project's newer job goes before app's older one.
    enqueue(
        &app,
        ADMIN,
        "100",
        json!({"name": "app older", "script": "true", "ref": "dev"}),
    )
    .await
    .expect(201);
    enqueue(
        &app,
        ADMIN,
        "102",
        json!({"name": "third newer", "script": "true", "ref": "dev"}),
    )
    .await
    .expect(201);
    let fair = poll(&app, "second-instance-runner").await.expect(201);
    assert_eq!(fair.body["job_info"]["name"], "third newer");
    assert!(fair.usage.round_trips <= 4, "{:?}", fair.usage);
    assert_eq!(
        poll(&app, "second-instance-runner").await.expect(201).body["job_info"]["name"],
        "app older"
    );
    let counts = app
        .store
        .instance_running_counts(&[100, 102])
        .await
        .unwrap();
    assert_eq!((counts[&100], counts[&102]), (2, 1));
    // Finishing a job gives its project's share back.
    app.put(&format!("/api/v4/jobs/{}", first["id"]))
        .json(json!({"token": first["token"], "state": "success"}))
        .send()
        .await
        .expect(200);
    let counts = app.store.instance_running_counts(&[100]).await.unwrap();
    assert_eq!(counts[&100], 1);
}
