//! runnerctl's operations against DynamoDB Local, checked through the API they prepare for.

use aws_sdk_dynamodb::types::AttributeValue;
use runners_shared::admin::fixtures::Fixture;
use runners_shared::admin::operator::{self, NewUser, RegistrationTarget};
use runners_shared::store::Store;
use runners_shared::store::directory::{ProjectSettings, SettingsChanges};
use serde_json::{Value, json};
use test_harness::TestApp;

fn fixture(instance_token: &str, group_token: &str) -> Value {
    json!({
        "settings": {"runners_registration_token": instance_token},
        "users": [{"id": 3, "username": "maintainer", "tokens": [{"token": "pat-3", "scopes": ["api"]}]}],
        "groups": [{"id": 20, "path": "parent", "runners_token": group_token},
                   {"id": 21, "path": "child", "parent_id": 20, "members": [{"user_id": 3, "access_level": 40}]}],
        "projects": [{"id": 300, "path": "app", "namespace_id": 21}],
        "runners": [{"id": 40, "token": "runner-40", "runner_type": "group_type", "groups": [20]}],
        "jobs": [{"id": 900, "runner_id": 40, "project_id": 300, "user_id": 3, "status": "success",
                  "commit": {"id": "abc"}, "pipeline": {"id": 1, "sha": "abc", "ref": "main", "status": "success"}}]
    })
}

/// An attribute value as text, with map keys in order (HashMap order varies between reads).
fn canonical(value: &AttributeValue) -> String {
    match value {
        AttributeValue::M(map) => {
            let mut entries: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}:{}", canonical(v)))
                .collect();
            entries.sort();
            format!("{{{}}}", entries.join(","))
        }
        AttributeValue::L(list) => format!(
            "[{}]",
            list.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => format!("{other:?}"),
    }
}

async fn everything(store: &Store) -> Vec<String> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = store
            .client()
            .scan()
            .table_name(store.table())
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        items.extend(page.items().iter().map(|item| {
            let mut pairs: Vec<String> = item
                .iter()
                .map(|(k, v)| format!("{k}={}", canonical(v)))
                .collect();
            pairs.sort();
            pairs.join(",")
        }));
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    items.sort();
    items
}

async fn registers(app: &TestApp, token: &str) -> u16 {
    app.post("/api/v4/runners")
        .json(json!({"token": token}))
        .send()
        .await
        .status
}

#[tokio::test]
async fn seeding_twice_leaves_the_same_data_and_counters_move_past_imported_ids() {
    let app = TestApp::new(runner_token::router).await;
    app.seed(fixture("inst-a", "grp-a")).await;
    let first = everything(&app.store).await;
    app.seed(fixture("inst-a", "grp-a")).await;
    assert_eq!(everything(&app.store).await, first, "an idempotent import");

    let created = app
        .post("/api/v4/runners")
        .json(json!({"token": "grp-a"}))
        .send()
        .await
        .expect(201);
    assert_eq!(
        created.body["id"],
        json!(41),
        "the runner counter is past the imported id 40"
    );
    let user = operator::create_user(
        &app.store,
        NewUser {
            username: "new".into(),
            name: None,
            email: None,
            admin: false,
            scopes: vec![],
        },
    )
    .await
    .unwrap();
    assert_eq!(
        user.created.id, 4,
        "the user counter is past the imported id 3"
    );
}

#[tokio::test]
async fn reseeding_with_new_tokens_retires_the_old_ones() {
    let app = TestApp::new(runner_token::router).await;
    app.seed(fixture("inst-a", "grp-a")).await;
    app.seed(fixture("inst-b", "grp-b")).await;
    assert_eq!(registers(&app, "inst-a").await, 403);
    assert_eq!(registers(&app, "grp-a").await, 403);
    assert_eq!(registers(&app, "inst-b").await, 201);
    assert_eq!(registers(&app, "grp-b").await, 201);
}

#[tokio::test]
async fn a_bad_fixture_writes_nothing() {
    let app = TestApp::new(runner_token::router).await;
    let mut bad = fixture("inst-a", "grp-a");
    bad["runners"][0]["runner_type"] = json!("shared");
    let problems = Fixture::parse(&bad.to_string()).unwrap_err();
    assert_eq!(
        problems,
        ["runners[0].runner_type: expected one of instance_type, group_type, project_type"]
    );
    assert!(everything(&app.store).await.is_empty());
}

#[tokio::test]
async fn created_groups_and_projects_register_runners_of_their_own() {
    let app = TestApp::new(runner_token::router).await;
    let group = operator::create_group(&app.store, "ops", Some("Ops".into()), None)
        .await
        .unwrap();
    let sub = operator::create_group(&app.store, "team", None, Some("ops"))
        .await
        .unwrap();
    assert_eq!(
        (
            sub.created.full_path.as_str(),
            sub.created.ancestor_ids.clone()
        ),
        ("ops/team", vec![group.created.id])
    );
    let project = operator::create_project(
        &app.store,
        "svc",
        None,
        "ops/team",
        None,
        SettingsChanges::default(),
    )
    .await
    .unwrap();
    assert_eq!(project.created.path_with_namespace, "ops/team/svc");
    assert_eq!(
        project.created.group_ids,
        vec![group.created.id, sub.created.id]
    );

    let registered = app
        .post("/api/v4/runners")
        .json(json!({"token": project.token}))
        .send()
        .await
        .expect(201);
    let runner = app
        .store
        .get_runner(registered.body["id"].as_i64().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(runner.projects, [project.created.reference()]);
    assert_eq!(registers(&app, &sub.token).await, 201);

    let clash = operator::create_group(&app.store, "OPS", None, None)
        .await
        .unwrap_err();
    assert!(clash.contains("already taken"), "{clash}");
    let user = operator::create_user(
        &app.store,
        NewUser {
            username: "dev".into(),
            name: None,
            email: None,
            admin: false,
            scopes: vec![],
        },
    )
    .await
    .unwrap();
    let personal = operator::create_project(
        &app.store,
        "notes",
        None,
        "dev",
        None,
        SettingsChanges::default(),
    )
    .await
    .unwrap();
    assert_eq!(personal.created.owner_id, Some(user.created.id));
    assert!(
        operator::create_user(
            &app.store,
            NewUser {
                username: "Dev".into(),
                name: None,
                email: None,
                admin: false,
                scopes: vec![]
            }
        )
        .await
        .is_err()
    );
    operator::add_member(&app.store, "dev", "ops/team", 40)
        .await
        .unwrap();
    assert!(
        operator::add_member(&app.store, "dev", "ops/team", 45)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn resetting_a_registration_token_retires_the_old_one_at_once() {
    let app = TestApp::new(runner_token::router).await;
    assert!(
        !operator::show_registration_token(&app.store, &RegistrationTarget::Instance)
            .await
            .unwrap()
            .set
    );
    let first = operator::ensure_instance_registration_token(&app.store)
        .await
        .unwrap()
        .expect("created");
    assert_eq!(
        operator::ensure_instance_registration_token(&app.store)
            .await
            .unwrap(),
        None,
        "kept when set"
    );
    assert!(
        operator::show_registration_token(&app.store, &RegistrationTarget::Instance)
            .await
            .unwrap()
            .set
    );
    let second = operator::reset_registration_token(&app.store, &RegistrationTarget::Instance)
        .await
        .unwrap();
    assert_ne!(first, second);
    assert_eq!(registers(&app, &first).await, 403);
    assert_eq!(registers(&app, &second).await, 201);

    let group = operator::create_group(&app.store, "g", None, None)
        .await
        .unwrap();
    let renewed =
        operator::reset_registration_token(&app.store, &RegistrationTarget::Group("g".into()))
            .await
            .unwrap();
    assert_eq!(registers(&app, &group.token).await, 403);
    assert_eq!(registers(&app, &renewed).await, 201);
    assert!(
        operator::reset_registration_token(&app.store, &RegistrationTarget::Project("nope".into()))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn project_settings_from_runnerctl_and_fixtures() {
    let app = TestApp::new(runner_token::router).await;
    operator::create_group(&app.store, "ci", None, None)
        .await
        .unwrap();
    let created = operator::create_project(
        &app.store,
        "app",
        None,
        "ci",
        None,
        SettingsChanges {
            repository_url: Some("/srv/git/app.git".into()),
            build_timeout: Some(7200),
            ..SettingsChanges::default()
        },
    )
    .await
    .unwrap();
    let expected = ProjectSettings {
        repository_url: Some("/srv/git/app.git".into()),
        build_timeout: 7200,
        ..ProjectSettings::default()
    };
    assert_eq!(created.created.settings, expected);

    let updated = operator::update_project(
        &app.store,
        "CI/App",
        SettingsChanges {
            shared_runners_enabled: Some(false),
            protected_refs: Some(vec!["main".into(), "release/*".into()]),
            ..SettingsChanges::default()
        },
    )
    .await
    .unwrap();
    let expected = ProjectSettings {
        shared_runners_enabled: false,
        protected_refs: vec!["main".into(), "release/*".into()],
        ..expected
    };
    // By id (the project item) and by path (the path item's copy) alike.
    for lookup in [created.created.id.to_string(), "ci/app".to_owned()] {
        let found = app.store.find_project(&lookup).await.unwrap().unwrap();
        assert_eq!(found.settings, expected, "{lookup}");
    }
    assert_eq!(updated.settings, expected);
    // The registration token survives the rewrite.
    assert_eq!(registers(&app, &created.token).await, 201);

    let refused = operator::update_project(
        &app.store,
        "ci/app",
        SettingsChanges {
            build_timeout: Some(60),
            ..SettingsChanges::default()
        },
    )
    .await
    .unwrap_err();
    assert!(refused.contains("build_timeout"), "{refused}");
    let missing = operator::update_project(&app.store, "ci/nope", SettingsChanges::default())
        .await
        .unwrap_err();
    assert!(missing.contains("no project"), "{missing}");

    let problems = Fixture::parse(
        &json!({"groups": [{"id": 10, "path": "g"}],
                "projects": [{"id": 1, "path": "p", "namespace_id": 10,
                              "build_timeout": 10, "protected_refs": ["ok", 3]}]})
        .to_string(),
    )
    .unwrap_err();
    let text = format!("{problems:?}");
    assert!(text.contains("projects[0].build_timeout"), "{text}");
    assert!(text.contains("projects[0].protected_refs"), "{text}");
}

#[tokio::test]
async fn jobs_enqueued_from_the_shell_are_for_the_first_maintainer() {
    let app = TestApp::new(runner_token::router).await;
    app.seed(json!({
        "users": [{"id": 7, "username": "lead"}, {"id": 3, "username": "dev"}, {"id": 9, "username": "owner"}],
        "groups": [{"id": 10, "path": "g", "members": [{"user_id": 9, "access_level": 50}]}],
        "projects": [{"id": 100, "path": "p", "namespace_id": 10,
                      "members": [{"user_id": 7, "access_level": 40}, {"user_id": 3, "access_level": 30}]}]
    }))
    .await;
    let job = operator::create_job(
        &app.store,
        "g/p",
        None,
        &json!({"name": "shell job", "script": ["make"], "tag_list": ["linux"], "ref": "main"}),
    )
    .await
    .unwrap();
    assert_eq!(
        job.user.as_ref().map(|u| u.username.as_str()),
        Some("lead"),
        "lowest id with Maintainer+"
    );
    assert_eq!(job.status, "pending");
    let stored = app.store.get_job(job.id).await.unwrap().unwrap();
    let work = stored.work.unwrap();
    assert_eq!(
        (work.tag_list, work.protected),
        (vec!["linux".to_owned()], true)
    );
    let as_dev = operator::create_job(
        &app.store,
        "100",
        Some("dev"),
        &json!({"name": "x", "script": "true"}),
    )
    .await
    .unwrap();
    assert_eq!(as_dev.user.map(|u| u.id), Some(3));
    let refused = operator::create_job(&app.store, "g/p", None, &json!({"name": "x"}))
        .await
        .unwrap_err();
    assert!(refused.contains("script is missing"), "{refused}");
    let nobody = operator::create_job(
        &app.store,
        "g/p",
        Some("ghost"),
        &json!({"name": "x", "script": "true"}),
    )
    .await
    .unwrap_err();
    assert!(nobody.contains("no user"), "{nobody}");
}

/// `runnerctl settings set runner_token_expiration_interval`, `group update` and `project update`
/// with `--runner-token-expiration-interval`, and the fixture keys that hold the same.
#[tokio::test]
async fn token_expiry_intervals_are_set_by_path_and_seeded_from_fixtures() {
    use runners_shared::admin::operator::{ExpiryTarget, parse_interval};
    let store = test_harness::fresh_store().await;
    let mut world = fixture("instance-reg", "group-reg");
    world["settings"]["runner_token_expiration_interval"] = json!(86_400);
    world["groups"][1]["runner_token_expiration_interval"] = json!(3_600);
    Fixture::parse(&world.to_string())
        .unwrap()
        .import(&store)
        .await
        .unwrap();
    let expiry = store.instance_settings().await.unwrap().token_expiry;
    assert_eq!(
        (expiry.instance, expiry.groups.get(&21)),
        (Some(86_400), Some(&3_600))
    );

    operator::set_token_expiry(&store, &ExpiryTarget::Group("parent".into()), Some(7_200))
        .await
        .unwrap();
    operator::set_token_expiry(
        &store,
        &ExpiryTarget::Project("parent/child/app".into()),
        Some(900),
    )
    .await
    .unwrap();
    operator::set_token_expiry(
        &store,
        &ExpiryTarget::Instance,
        parse_interval("none").unwrap(),
    )
    .await
    .unwrap();
    let expiry = store.instance_settings().await.unwrap().token_expiry;
    assert_eq!(expiry.instance, None);
    assert_eq!(expiry.groups, [(20, 7_200), (21, 3_600)].into());
    assert_eq!(expiry.projects, [(300, 900)].into());
    assert!(
        operator::set_token_expiry(&store, &ExpiryTarget::Group("nowhere".into()), Some(1))
            .await
            .is_err()
    );
    assert!(parse_interval("0").is_err() && parse_interval("soon").is_err());
    assert_eq!(parse_interval("60"), Ok(Some(60)));

    world["projects"][0]["runner_token_expiration_interval"] = json!(-5);
    let problems = Fixture::parse(&world.to_string()).unwrap_err();
    assert_eq!(
        problems,
        ["projects[0].runner_token_expiration_interval: expected a positive number of seconds"]
    );
}
