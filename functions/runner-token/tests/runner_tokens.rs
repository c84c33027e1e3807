//! The runner-token endpoints against DynamoDB Local, through the function's own entry point.

use aws_sdk_dynamodb::types::AttributeValue;
use runners_shared::Settings;
use runners_shared::auth::TokenDigest;
use runners_shared::runner::{AccessLevel, Runner, RunnerType};
use runners_shared::store::{Store, TokenRecord};
use serde_json::{Value, json};
use std::collections::HashSet;
use test_harness::TestApp;

const INSTANCE_TOKEN: &str = "instance-reg-token";
const GROUP_TOKEN: &str = "group-reg-token";
const PROJECT_TOKEN: &str = "project-reg-token";
const RUNNER_TOKEN: &str = "seeded-runner-token";

fn world() -> Value {
    json!({
        "settings": {"runners_registration_token": INSTANCE_TOKEN},
        "users": [{"id": 1, "username": "root", "admin": true, "tokens": [{"token": "root-pat"}]}],
        "groups": [{"id": 10, "name": "Group", "path": "group", "runners_token": GROUP_TOKEN}],
        "projects": [{"id": 100, "name": "Project", "path": "project", "namespace_id": 10, "runners_token": PROJECT_TOKEN}],
        "runners": [{"id": 5, "token": RUNNER_TOKEN, "runner_type": "project_type", "projects": [100],
                     "updated_at": "2019-01-01T00:00:00.000Z"}]
    })
}

async fn app_with(settings: Settings) -> TestApp {
    let app = TestApp::with_settings(settings, runner_token::router).await;
    app.seed(world()).await;
    app
}

async fn app() -> TestApp {
    app_with(Settings::default()).await
}

/// The stored runner a 201 registration answer names.
async fn stored(app: &TestApp, answer: &test_harness::TestResponse) -> Runner {
    let id = answer.body["id"].as_i64().expect("an integer id");
    app.store
        .get_runner(id)
        .await
        .expect("reading the runner")
        .expect("the runner exists")
}

async fn register(app: &TestApp, body: Value) -> (i64, String) {
    let response = app
        .post("/api/v4/runners")
        .json(body)
        .send()
        .await
        .expect(201);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.body["token_expires_at"], Value::Null);
    let token = response.body["token"]
        .as_str()
        .expect("a token string")
        .to_owned();
    (response.body["id"].as_i64().expect("an integer id"), token)
}

/// The sort keys of the items under a partition key (test-only read).
async fn sort_keys(store: &Store, pk: &str) -> Vec<String> {
    let output = store
        .client()
        .query()
        .table_name(store.table())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    output
        .items()
        .iter()
        .filter_map(|i| i.get("sk").and_then(|v| v.as_s().ok()).cloned())
        .collect()
}

/// Every stored attribute value as text, to prove a plaintext token is nowhere.
async fn all_values(store: &Store) -> String {
    let output = store
        .client()
        .scan()
        .table_name(store.table())
        .send()
        .await
        .unwrap();
    format!("{:?}", output.items())
}

#[tokio::test]
async fn instance_token_registers_an_instance_runner_with_gitlab_defaults() {
    let app = app().await;
    let (id, token) = register(&app, json!({"token": INSTANCE_TOKEN})).await;
    assert_eq!(id, 6, "ids continue after the largest imported id");
    assert_ne!(token, INSTANCE_TOKEN);
    let runner = app.store.get_runner(id).await.unwrap().unwrap();
    assert_eq!(runner.runner_type, RunnerType::Instance);
    assert!(runner.active && runner.run_untagged && !runner.locked);
    assert_eq!(
        (runner.access_level, runner.maximum_timeout),
        (AccessLevel::NotProtected, None)
    );
    assert_eq!(runner.contacted_at, None, "registration is not a contact");
    assert!(runner.projects.is_empty() && runner.group.is_none());
    assert_eq!(runner.token_digest, TokenDigest::of(&token));
    let stored = all_values(&app.store).await;
    assert!(
        !stored.contains(&token),
        "the runner token is stored only as a digest"
    );
    assert!(!stored.contains(INSTANCE_TOKEN));
}

#[tokio::test]
async fn project_token_registers_a_project_runner_linked_to_its_project() {
    let app = app().await;
    let (id, _) = register(&app, json!({"token": PROJECT_TOKEN})).await;
    let runner = app.store.get_runner(id).await.unwrap().unwrap();
    assert_eq!(runner.runner_type, RunnerType::Project);
    let project = &runner.projects[..];
    assert_eq!(project.len(), 1);
    assert_eq!(
        (project[0].id, project[0].path_with_namespace.as_str()),
        (100, "group/project")
    );
    assert_eq!(
        (
            project[0].name_with_namespace.as_str(),
            project[0].group_ids.clone()
        ),
        ("Group / Project", vec![10])
    );
    let links = sort_keys(&app.store, "PROJECT#100").await;
    assert!(links.contains(&format!("RUNNER#{id:020}")), "{links:?}");
}

#[tokio::test]
async fn group_token_registers_a_group_runner_of_that_group() {
    let app = app().await;
    let (id, _) = register(&app, json!({"token": GROUP_TOKEN})).await;
    let runner = app.store.get_runner(id).await.unwrap().unwrap();
    assert_eq!(runner.runner_type, RunnerType::Group);
    let group = runner.group.expect("the group travels with the runner");
    assert_eq!(
        (
            group.id,
            group.full_path.as_str(),
            group.ancestor_ids.clone()
        ),
        (10, "group", vec![])
    );
    assert!(
        sort_keys(&app.store, "GROUP#10")
            .await
            .contains(&format!("RUNNER#{id:020}"))
    );
}

#[tokio::test]
async fn attributes_info_and_address_are_stored() {
    let app = app().await;
    let (id, _) = register(
        &app,
        json!({"token": INSTANCE_TOKEN, "description": "server.hostname", "tag_list": "tag1, tag2",
               "run_untagged": false, "locked": "true", "active": false, "maximum_timeout": 9000,
               "access_level": "ref_protected", "maintainer_note": "ask ops",
               "info": {"name": "gitlab-runner", "version": "12.0.0", "revision": "abc", "platform": "linux",
                        "architecture": "amd64", "features": {"cancelable": true}}}),
    )
    .await;
    let r = app.store.get_runner(id).await.unwrap().unwrap();
    assert_eq!(r.description.as_deref(), Some("server.hostname"));
    assert_eq!(r.tag_list, ["tag1", "tag2"]);
    assert!(!r.run_untagged && r.locked && !r.active);
    assert_eq!(
        (r.maximum_timeout, r.access_level),
        (Some(9000), AccessLevel::RefProtected)
    );
    assert_eq!(r.maintenance_note.as_deref(), Some("ask ops"));
    assert_eq!(r.info.name.as_deref(), Some("gitlab-runner"));
    assert_eq!(r.info.version.as_deref(), Some("12.0.0"));
    assert_eq!(r.info.revision.as_deref(), Some("abc"));
    assert_eq!(r.info.platform.as_deref(), Some("linux"));
    assert_eq!(r.info.architecture.as_deref(), Some("amd64"));
    assert_eq!(
        r.ip_address.as_deref(),
        Some("127.0.0.1"),
        "the socket peer"
    );
}

#[tokio::test]
async fn blank_values_and_paused_at_registration() {
    let app = app().await;
    let (id, _) = register(
        &app,
        json!({"token": INSTANCE_TOKEN, "maximum_timeout": "", "description": "", "paused": true}),
    )
    .await;
    let r = app.store.get_runner(id).await.unwrap().unwrap();
    assert_eq!((r.maximum_timeout, r.description.clone()), (None, None));
    assert!(!r.active, "paused=true means active=false");
}

#[tokio::test]
async fn x_forwarded_for_is_honoured_only_when_trusted() {
    for (trust, expected) in [(false, "127.0.0.1"), (true, "123.111.123.111")] {
        let app = app_with(Settings {
            trust_forwarded_for: trust,
            ..Settings::default()
        })
        .await;
        let answer = app
            .post("/api/v4/runners")
            .header("X-Forwarded-For", "123.111.123.111, 10.0.0.1")
            .json(json!({"token": INSTANCE_TOKEN}))
            .send()
            .await
            .expect(201);
        assert_eq!(
            stored(&app, &answer).await.ip_address.as_deref(),
            Some(expected),
            "trust={trust}"
        );
    }
}

#[tokio::test]
async fn every_validation_rule_answers_gitlabs_400_and_writes_nothing() {
    let app = app().await;
    let tags = |n: usize| (0..n).map(|i| format!("t{i}")).collect::<Vec<_>>();
    let cases = [
        (
            json!({"token": INSTANCE_TOKEN, "run_untagged": false}),
            json!({"message": {"tags_list": ["can not be empty when runner is not allowed to pick untagged jobs"]}}),
        ),
        (
            json!({"token": INSTANCE_TOKEN, "tag_list": tags(51)}),
            json!({"message": {"tags_list": ["Too many tags specified. Please limit the number of tags to 50"]}}),
        ),
        (
            json!({"token": INSTANCE_TOKEN, "maximum_timeout": 599}),
            json!({"message": {"maximum_timeout": ["needs to be at least 10 minutes"]}}),
        ),
        (
            json!({"token": INSTANCE_TOKEN, "description": "d".repeat(1025)}),
            json!({"message": {"description": ["is too long (maximum is 1024 characters)"]}}),
        ),
        (
            json!({"token": INSTANCE_TOKEN, "active": "maybe"}),
            json!({"error": "active is invalid"}),
        ),
        (
            json!({"token": INSTANCE_TOKEN, "locked": "sure", "maximum_timeout": "soon"}),
            json!({"error": "locked is invalid, maximum_timeout is invalid"}),
        ),
        (
            json!({"token": INSTANCE_TOKEN, "access_level": "sometimes"}),
            json!({"error": "access_level does not have a valid value"}),
        ),
        (
            json!({"token": INSTANCE_TOKEN, "active": true, "paused": true}),
            json!({"error": "active, paused are mutually exclusive"}),
        ),
        (
            json!({"token": INSTANCE_TOKEN, "info": "flat"}),
            json!({"error": "info is invalid"}),
        ),
        (
            json!({"token": INSTANCE_TOKEN, "tag_list": [{"a": 1}]}),
            json!({"error": "tag_list is invalid"}),
        ),
    ];
    for (body, expected) in cases {
        let response = app.post("/api/v4/runners").json(body.clone()).send().await;
        assert_eq!(
            (response.status, &response.body),
            (400, &expected),
            "for {body}"
        );
    }
    // Nothing was written: the next registration gets the next id after the seeded runner.
    let (id, _) = register(
        &app,
        json!({"token": INSTANCE_TOKEN, "run_untagged": false, "tag_list": ["tag"]}),
    )
    .await;
    assert_eq!(id, 6);
    let (_, _) = register(
        &app,
        json!({"token": INSTANCE_TOKEN, "tag_list": tags(50), "maximum_timeout": 600}),
    )
    .await;
}

#[tokio::test]
async fn token_errors_are_400_missing_and_403_unknown_on_every_endpoint() {
    let app = app().await;
    for (method, path) in [
        ("POST", "/api/v4/runners"),
        ("POST", "/api/v4/runners/verify"),
        ("DELETE", "/api/v4/runners"),
    ] {
        let method: axum::http::Method = method.parse().unwrap();
        let missing = app.request(method.clone(), path).send().await;
        assert_eq!(
            (missing.status, missing.body.clone()),
            (400, json!({"error": "token is missing"})),
            "{path}"
        );
        let unknown = app
            .request(method, path)
            .json(json!({"token": "invalid"}))
            .send()
            .await;
        assert_eq!(
            (unknown.status, unknown.body.clone()),
            (403, json!({"message": "403 Forbidden"})),
            "{path}"
        );
    }
    // A token of the wrong kind is as good as unknown.
    app.post("/api/v4/runners")
        .json(json!({"token": RUNNER_TOKEN}))
        .send()
        .await
        .expect(403);
    app.post("/api/v4/runners")
        .json(json!({"token": "root-pat"}))
        .send()
        .await
        .expect(403);
    app.post("/api/v4/runners/verify")
        .json(json!({"token": INSTANCE_TOKEN}))
        .send()
        .await
        .expect(403);
    app.delete("/api/v4/runners")
        .json(json!({"token": PROJECT_TOKEN}))
        .send()
        .await
        .expect(403);
}

#[tokio::test]
async fn verify_is_a_heartbeat_written_at_most_once_per_interval() {
    let app = app().await;
    let (id, token) = register(
        &app,
        json!({"token": INSTANCE_TOKEN, "info": {"name": "first", "version": "1.0"}}),
    )
    .await;

    let first = app
        .post("/api/v4/runners/verify")
        .peer([10, 0, 0, 7].into())
        .json(json!({"token": token, "info": {"name": "renamed", "version": "2.0", "revision": "r2", "platform": "linux", "architecture": "arm64"}}))
        .send()
        .await
        .expect(200);
    assert_eq!(
        first.body,
        json!({"id": id, "token": token, "token_expires_at": null})
    );
    assert_eq!(
        first.usage.round_trips, 2,
        "token read, then runner and token writes in parallel"
    );
    let after_first = app.store.get_runner(id).await.unwrap().unwrap();
    let contacted = after_first.contacted_at.expect("verify sets contacted_at");
    assert_eq!(after_first.ip_address.as_deref(), Some("10.0.0.7"));
    assert_eq!(after_first.info.version.as_deref(), Some("2.0"));
    assert_eq!(after_first.info.architecture.as_deref(), Some("arm64"));
    assert_eq!(
        after_first.info.name.as_deref(),
        Some("first"),
        "name is only taken at registration"
    );

    let second = app
        .post("/api/v4/runners/verify")
        .peer([10, 0, 0, 8].into())
        .form(&format!("token={token}"))
        .send()
        .await
        .expect(200);
    assert_eq!(
        (second.usage.calls, second.usage.round_trips),
        (1, 1),
        "a fresh heartbeat is not written again"
    );
    let after_second = app.store.get_runner(id).await.unwrap().unwrap();
    assert_eq!(
        (
            after_second.contacted_at,
            after_second.ip_address.as_deref()
        ),
        (Some(contacted), Some("10.0.0.7"))
    );
}

#[tokio::test]
async fn with_a_zero_interval_every_verify_writes() {
    let app = app_with(Settings {
        heartbeat_interval_secs: 0,
        ..Settings::default()
    })
    .await;
    let (id, token) = register(&app, json!({"token": INSTANCE_TOKEN})).await;
    app.post("/api/v4/runners/verify")
        .json(json!({"token": token}))
        .send()
        .await
        .expect(200);
    let first = app
        .store
        .get_runner(id)
        .await
        .unwrap()
        .unwrap()
        .contacted_at
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let again = app
        .post("/api/v4/runners/verify")
        .json(json!({"token": token}))
        .send()
        .await
        .expect(200);
    assert_eq!(again.usage.round_trips, 2);
    assert!(
        app.store
            .get_runner(id)
            .await
            .unwrap()
            .unwrap()
            .contacted_at
            .unwrap()
            > first
    );
    let record = app
        .store
        .find_token(&TokenDigest::of(&token))
        .await
        .unwrap();
    assert!(matches!(
        record,
        Some(TokenRecord::Runner {
            heartbeat_at: Some(_),
            ..
        })
    ));
}

async fn assert_runner_gone(app: &TestApp, id: i64, token: &str) {
    assert!(
        app.store.get_runner(id).await.unwrap().is_none(),
        "runner item removed"
    );
    assert!(
        app.store
            .find_token(&TokenDigest::of(token))
            .await
            .unwrap()
            .is_none(),
        "token item removed"
    );
    assert!(
        !sort_keys(&app.store, "PROJECT#100")
            .await
            .contains(&format!("RUNNER#{id:020}")),
        "link removed"
    );
    app.post("/api/v4/runners/verify")
        .json(json!({"token": token}))
        .send()
        .await
        .expect(403);
}

#[tokio::test]
async fn unregister_takes_the_token_from_query_json_or_form() {
    let app = app().await;
    for way in ["query", "json", "form", "multipart"] {
        let (id, token) = register(&app, json!({"token": PROJECT_TOKEN})).await;
        let request = match way {
            "query" => app.delete(&format!("/api/v4/runners?token={token}")),
            "json" => app.delete("/api/v4/runners").json(json!({"token": token})),
            "form" => app.delete("/api/v4/runners").form(&format!("token={token}")),
            _ => app.delete("/api/v4/runners").raw(
                "multipart/form-data; boundary=B",
                format!("--B\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\n{token}\r\n--B--\r\n"),
            ),
        };
        let response = request.send().await.expect(204);
        assert_eq!(response.body, Value::Null, "204 has no body ({way})");
        assert!(
            response.usage.round_trips <= 3,
            "{way}: {:?}",
            response.usage
        );
        assert_runner_gone(&app, id, &token).await;
    }
    assert!(
        sort_keys(&app.store, "PROJECT#100")
            .await
            .contains(&"RUNNER#00000000000000000005".to_owned()),
        "other links stay"
    );
}

#[tokio::test]
async fn unregister_honours_if_unmodified_since() {
    let app = app().await;
    let (id, token) = register(&app, json!({"token": PROJECT_TOKEN})).await;
    app.delete("/api/v4/runners")
        .header("If-Unmodified-Since", "1990-01-12T00:00:48-0600")
        .json(json!({"token": token}))
        .send()
        .await
        .expect(412);
    assert!(
        app.store.get_runner(id).await.unwrap().is_some(),
        "a refused delete removes nothing"
    );
    let now = runners_shared::time::Timestamp::now().to_string();
    app.delete("/api/v4/runners")
        .header("If-Unmodified-Since", &now)
        .json(json!({"token": token}))
        .send()
        .await
        .expect(204);
    assert_runner_gone(&app, id, &token).await;
}

#[tokio::test]
async fn twenty_parallel_registrations_get_distinct_ids_and_tokens() {
    let app = app().await;
    let registrations = (0..20).map(|i| {
        register(
            &app,
            json!({"token": PROJECT_TOKEN, "description": format!("r{i}")}),
        )
    });
    let results = futures_util::future::join_all(registrations).await;
    let ids: HashSet<i64> = results.iter().map(|(id, _)| *id).collect();
    let tokens: HashSet<&String> = results.iter().map(|(_, token)| token).collect();
    assert_eq!((ids.len(), tokens.len()), (20, 20));
    assert_eq!(
        ids,
        (6..26).collect::<HashSet<_>>(),
        "a gap-free run after the seeded id 5"
    );
    let links = sort_keys(&app.store, "PROJECT#100")
        .await
        .into_iter()
        .filter(|k| k.starts_with("RUNNER#"))
        .count();
    assert_eq!(links, 21);
}

#[tokio::test]
async fn a_registration_whose_transaction_fails_leaves_nothing_behind() {
    let app = app().await;
    // The registration token disappears between lookup and write (an operator reset it): the
    // transaction's condition on it fails, and none of its other writes may remain.
    let mut runner = runners_shared::runner::Runner::new(
        77,
        RunnerType::Project,
        TokenDigest::of("would-be-runner-token"),
        runners_shared::time::Timestamp::now(),
    );
    runner.projects = app.store.get_runner(5).await.unwrap().unwrap().projects;
    let outcome = app
        .store
        .create_runner(&runner, Some(&TokenDigest::of("a-token-that-was-reset")))
        .await;
    assert!(
        matches!(
            outcome,
            Err(runners_shared::store::CreateRunnerError::RegistrationTokenGone)
        ),
        "{outcome:?}"
    );
    assert!(app.store.get_runner(77).await.unwrap().is_none());
    assert!(
        app.store
            .find_token(&TokenDigest::of("would-be-runner-token"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !sort_keys(&app.store, "PROJECT#100")
            .await
            .contains(&format!("RUNNER#{:020}", 77))
    );

    // An id that is already taken is refused as a whole too, and the existing runner is untouched.
    let taken = runners_shared::runner::Runner {
        id: 5,
        token_digest: TokenDigest::of("other"),
        ..runner
    };
    let outcome = app
        .store
        .create_runner(&taken, Some(&TokenDigest::of(PROJECT_TOKEN)))
        .await;
    assert!(
        matches!(
            outcome,
            Err(runners_shared::store::CreateRunnerError::Collision)
        ),
        "{outcome:?}"
    );
    assert!(
        app.store
            .find_token(&TokenDigest::of("other"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        app.store.get_runner(5).await.unwrap().unwrap().token_digest,
        TokenDigest::of(RUNNER_TOKEN)
    );
}

#[tokio::test]
async fn a_counter_behind_the_data_is_survived_by_retrying_with_the_next_id() {
    let app = app().await;
    // Runner 6 exists without the counter knowing (e.g. written by hand).
    let orphan = runners_shared::runner::Runner::new(
        6,
        RunnerType::Instance,
        TokenDigest::of("x"),
        runners_shared::time::Timestamp::now(),
    );
    app.store
        .client()
        .put_item()
        .table_name(app.store.table())
        .set_item(Some(orphan.to_item()))
        .send()
        .await
        .unwrap();
    let (id, _) = register(&app, json!({"token": INSTANCE_TOKEN})).await;
    assert_eq!(id, 7);
}

#[tokio::test]
async fn round_trip_budgets() {
    let app = app().await;
    let registered = app
        .post("/api/v4/runners")
        .json(json!({"token": PROJECT_TOKEN}))
        .send()
        .await
        .expect(201);
    assert_eq!(
        registered.usage.round_trips, 3,
        "register: token, id, transaction"
    );
    let token = registered.body["token"].as_str().unwrap().to_owned();
    let verify = app
        .post("/api/v4/runners/verify")
        .json(json!({"token": token}))
        .send()
        .await
        .expect(200);
    assert_eq!(verify.usage.round_trips, 2);
    let unregister = app
        .delete("/api/v4/runners")
        .json(json!({"token": token}))
        .send()
        .await
        .expect(204);
    assert_eq!(
        unregister.usage.round_trips, 3,
        "unregister: token, runner, transaction"
    );
    let forbidden = app
        .post("/api/v4/runners")
        .json(json!({"token": "nope"}))
        .send()
        .await
        .expect(403);
    assert_eq!(forbidden.usage.round_trips, 1);
}

#[tokio::test]
async fn routing_details() {
    let app = app().await;
    // A trailing slash is the same route, never a redirect.
    app.post("/api/v4/runners/")
        .json(json!({"token": INSTANCE_TOKEN}))
        .send()
        .await
        .expect(201);
    app.post("/api/v4/runners/verify/")
        .json(json!({"token": RUNNER_TOKEN}))
        .send()
        .await
        .expect(200);
    let unknown = app.get("/api/v4/unknown").send().await.expect(404);
    assert_eq!(unknown.body, json!({"error": "404 Not Found"}));
    let wrong_method = app
        .request(axum::http::Method::PATCH, "/api/v4/runners")
        .send()
        .await
        .expect(405);
    assert_eq!(
        wrong_method.header("content-type"),
        Some("application/json")
    );
    // Unknown parameters are ignored (python-gitlab's CLI adds `id`).
    app.post("/api/v4/runners/verify?id=1")
        .json(json!({"token": RUNNER_TOKEN, "system_id": "s_1"}))
        .send()
        .await
        .expect(200);
}

#[tokio::test]
async fn bodies_in_every_encoding_and_their_failures() {
    let app = app().await;
    let form = app
        .post("/api/v4/runners")
        .form(&format!(
            "token={INSTANCE_TOKEN}&tag_list=a&tag_list=b&run_untagged=False&info%5Bname%5D=py"
        ))
        .send()
        .await
        .expect(201);
    let r = stored(&app, &form).await;
    assert_eq!(
        (r.tag_list.clone(), r.run_untagged, r.info.name.clone()),
        (vec!["a".into(), "b".into()], false, Some("py".into()))
    );

    let multipart = format!(
        "--XX\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\n{INSTANCE_TOKEN}\r\n\
         --XX\r\nContent-Disposition: form-data; name=\"tag_list[]\"\r\n\r\nm1\r\n\
         --XX\r\nContent-Disposition: form-data; name=\"tag_list[]\"\r\n\r\nm2\r\n--XX--\r\n"
    );
    let created = app
        .post("/api/v4/runners")
        .raw("multipart/form-data; boundary=XX", multipart)
        .send()
        .await
        .expect(201);
    let r = stored(&app, &created).await;
    assert_eq!(r.tag_list, ["m1", "m2"]);

    let query = app
        .post(&format!(
            "/api/v4/runners?token={INSTANCE_TOKEN}&tag_list=q1,q2"
        ))
        .send()
        .await
        .expect(201);
    let r = stored(&app, &query).await;
    assert_eq!(r.tag_list, ["q1", "q2"]);

    let broken = app
        .post("/api/v4/runners")
        .raw("application/json", "{\"token\":")
        .send()
        .await
        .expect(400);
    assert!(broken.body["message"].is_string());
    let huge = app
        .post("/api/v4/runners")
        .raw("application/json", vec![b' '; (1 << 20) + 1])
        .send()
        .await
        .expect(413);
    assert_eq!(
        huge.body,
        json!({"message": "413 Request Entity Too Large"})
    );
}
