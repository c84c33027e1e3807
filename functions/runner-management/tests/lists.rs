//! GET /runners and GET /runners/all: GitLab's request-spec cases (7.1, 7.2), inheritance,
//! pagination, and round trips.

mod common;
use common::*;
use serde_json::json;

#[tokio::test]
async fn owned_runners_of_a_maintainer_and_group_owner() {
    let app = app().await;
    let response = get(&app, USER, "/api/v4/runners").await.expect(200);
    assert_eq!(
        descriptions(&response),
        set(&["Project runner", "Two projects runner", "Group runner"])
    );
    assert_eq!(response.header("x-page"), Some("1"));
    assert_eq!(response.header("x-per-page"), Some("20"));
    assert_eq!(response.header("x-total"), Some("3"));
    assert_eq!(response.header("x-total-pages"), Some("1"));
    assert_eq!(
        ids(&response),
        [PROJECT_RUNNER, TWO_PROJECTS, GROUP_RUNNER],
        "id order"
    );
    let item = &response.body[0];
    let keys: Vec<&str> = item
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "description",
            "ip_address",
            "active",
            "paused",
            "is_shared",
            "runner_type",
            "name",
            "online",
            "status"
        ]
    );
    assert_eq!(
        (item["online"].clone(), item["status"].clone()),
        (json!(null), json!("not_connected"))
    );
    assert!(response.usage.round_trips <= 5, "{:?}", response.usage);
}

#[tokio::test]
async fn owned_runners_are_inherited_down_the_group_tree() {
    let app = app().await;
    let response = get(&app, OWNER, "/api/v4/runners").await.expect(200);
    assert_eq!(ids(&response), [CHILD_GROUP_RUNNER, DEEP_PROJECT_RUNNER]);
    let none = get(&app, STRANGER, "/api/v4/runners").await.expect(200);
    assert_eq!(none.body, json!([]));
    assert_eq!(
        (none.header("x-total"), none.header("x-total-pages")),
        (Some("0"), Some("1"))
    );
    let reporter = get(&app, USER2, "/api/v4/runners").await.expect(200);
    assert_eq!(reporter.body, json!([]), "a Reporter owns nothing");
    let admin = get(&app, ADMIN, "/api/v4/runners").await.expect(200);
    assert_eq!(
        admin.body,
        json!([]),
        "instance runners are never owned, not even by admins"
    );
}

#[tokio::test]
async fn owned_runner_filters() {
    let app = app_with(world_with_runners(json!([
        {"id": 20, "token": "t20", "runner_type": "project_type", "description": "Inactive project runner",
         "projects": [100], "active": false}
    ])))
    .await;
    let paused = get(&app, USER, "/api/v4/runners?scope=paused")
        .await
        .expect(200);
    assert_eq!(descriptions(&paused), set(&["Inactive project runner"]));
    let status = get(&app, USER, "/api/v4/runners?status=paused")
        .await
        .expect(200);
    assert_eq!(descriptions(&status), set(&["Inactive project runner"]));
    let additive = get(&app, USER, "/api/v4/runners?paused=True")
        .await
        .expect(200);
    assert_eq!(ids(&additive), [20]);
    let typed = get(&app, USER, "/api/v4/runners?type=project_type")
        .await
        .expect(200);
    assert_eq!(
        descriptions(&typed),
        set(&[
            "Project runner",
            "Two projects runner",
            "Inactive project runner"
        ])
    );
    let tagged = get(&app, USER, "/api/v4/runners?tag_list=tag1,tag2")
        .await
        .expect(200);
    assert_eq!(ids(&tagged), [PROJECT_RUNNER]);
    assert_eq!(tagged.header("x-total"), Some("1"));
    for (query, message) in [
        ("scope=unknown", "scope does not have a valid value"),
        ("scope=shared", "scope does not have a valid value"),
        ("type=bogus", "type does not have a valid value"),
        ("status=bogus", "status does not have a valid value"),
    ] {
        let response = get(&app, USER, &format!("/api/v4/runners?{query}"))
            .await
            .expect(400);
        assert_eq!(error(&response), message);
    }
    app.get("/api/v4/runners").send().await.expect(401);
    app.get("/api/v4/runners?scope=unknown")
        .send()
        .await
        .expect(401);
}

#[tokio::test]
async fn all_runners_for_admins() {
    let app = app_with(world_with_runners(json!([
        {"id": 20, "token": "t20", "runner_type": "project_type", "description": "Inactive project runner",
         "projects": [100], "active": false}
    ])))
    .await;
    let all = get(&app, ADMIN, "/api/v4/runners/all").await.expect(200);
    assert_eq!(ids(&all), [1, 2, 3, 4, 5, 6, 7, 20]);
    assert_eq!(all.header("x-total"), Some("8"));
    assert!(all.usage.round_trips <= 3, "{:?}", all.usage);

    let shared = get(&app, ADMIN, "/api/v4/runners/all?scope=shared")
        .await
        .expect(200);
    assert_eq!(ids(&shared), [SHARED]);
    assert!(
        shared
            .body
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["is_shared"] == json!(true) && r.get("ip_address").is_some())
    );
    assert_eq!(shared.body[0]["ip_address"], json!("10.0.0.1"));
    let specific = get(&app, ADMIN, "/api/v4/runners/all?scope=specific")
        .await
        .expect(200);
    assert_eq!(ids(&specific), [2, 3, 4, 5, 6, 7, 20]);
    let typed = get(&app, ADMIN, "/api/v4/runners/all?type=project_type")
        .await
        .expect(200);
    assert_eq!(ids(&typed), [2, 3, 7, 20]);
    let group_scope = get(&app, ADMIN, "/api/v4/runners/all?scope=group_type")
        .await
        .expect(200);
    assert_eq!(ids(&group_scope), [4, 5, 6]);
    let paused = get(&app, ADMIN, "/api/v4/runners/all?status=paused")
        .await
        .expect(200);
    assert_eq!(descriptions(&paused), set(&["Inactive project runner"]));
    let tagged = get(&app, ADMIN, "/api/v4/runners/all?tag_list=tag1,tag2")
        .await
        .expect(200);
    assert_eq!(ids(&tagged), [PROJECT_RUNNER]);
    let offline = get(
        &app,
        ADMIN,
        "/api/v4/runners/all?scope=offline&type=instance_type",
    )
    .await
    .expect(200);
    assert_eq!(ids(&offline), [SHARED], "never contacted counts as offline");
    for query in ["scope=unknown", "type=bogus", "status=bogus"] {
        get(&app, ADMIN, &format!("/api/v4/runners/all?{query}"))
            .await
            .expect(400);
    }
    let forbidden = get(&app, USER, "/api/v4/runners/all").await.expect(403);
    assert_eq!(forbidden.body, json!({"message": "403 Forbidden"}));
    let invalid_first = get(&app, USER, "/api/v4/runners/all?scope=bogus")
        .await
        .expect(400);
    assert_eq!(
        error(&invalid_first),
        "scope does not have a valid value",
        "validation comes before the admin check"
    );
    app.get("/api/v4/runners/all").send().await.expect(401);
}

#[tokio::test]
async fn forty_five_runners_in_pages_of_twenty() {
    let runners: Vec<_> = (100..145)
        .map(|id| json!({"id": id, "token": format!("page-{id}"), "runner_type": "project_type", "projects": [101], "tag_list": ["paged"]}))
        .collect();
    let app = app_with(world_with_runners(json!(runners))).await;
    let filter = "type=project_type&tag_list=paged";
    let mut seen = Vec::new();
    for page in 1..=3 {
        let response = app
            .get(&format!(
                "/api/v4/runners/all?{filter}&per_page=20&page={page}"
            ))
            .header("Host", "runners.example")
            .header("X-Forwarded-Proto", "https")
            .header("PRIVATE-TOKEN", ADMIN)
            .send()
            .await
            .expect(200);
        let expected_len = if page == 3 { 5 } else { 20 };
        assert_eq!(ids(&response).len(), expected_len, "page {page}");
        seen.extend(ids(&response));
        assert_eq!(response.header("x-total"), Some("45"));
        assert_eq!(response.header("x-total-pages"), Some("3"));
        assert_eq!(response.header("x-page"), Some(page.to_string().as_str()));
        let next = if page < 3 {
            (page + 1).to_string()
        } else {
            String::new()
        };
        let prev = if page > 1 {
            (page - 1).to_string()
        } else {
            String::new()
        };
        assert_eq!(response.header("x-next-page"), Some(next.as_str()));
        assert_eq!(response.header("x-prev-page"), Some(prev.as_str()));
        let link = response.header("link").unwrap();
        let url = |p: u64| {
            format!(
                "<https://runners.example/api/v4/runners/all?page={p}&per_page=20&tag_list=paged&type=project_type>"
            )
        };
        let mut expected = Vec::new();
        if page > 1 {
            expected.push(format!("{}; rel=\"prev\"", url(page - 1)));
        }
        if page < 3 {
            expected.push(format!("{}; rel=\"next\"", url(page + 1)));
        }
        expected.push(format!("{}; rel=\"first\"", url(1)));
        expected.push(format!("{}; rel=\"last\"", url(3)));
        assert_eq!(link, expected.join(", "));
    }
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(
        (seen.len(), unique.len()),
        (45, 45),
        "each runner exactly once, in order"
    );
    assert_eq!(seen, (100..145).collect::<Vec<i64>>());

    let beyond = get(
        &app,
        ADMIN,
        "/api/v4/runners/all?tag_list=paged&page=4&per_page=20",
    )
    .await
    .expect(200);
    assert_eq!(beyond.body, json!([]));
    assert_eq!(
        (beyond.header("x-next-page"), beyond.header("x-prev-page")),
        (Some(""), Some(""))
    );
    assert_eq!(beyond.header("x-total"), Some("45"));
    let zero = get(&app, ADMIN, "/api/v4/runners/all?per_page=0")
        .await
        .expect(400);
    assert_eq!(error(&zero), "per_page does not have a valid value");
}

#[tokio::test]
async fn modern_status_filters_and_version_prefix_on_lists() {
    let app = app().await;
    // Runner 1 reports a version and contacts; the others never contacted.
    app.post("/api/v4/runners/verify")
        .json(json!({"token": "t1", "info": {"version": "16.11.2"}}))
        .send()
        .await
        .expect(200);
    let never = get(&app, ADMIN, "/api/v4/runners/all?status=never_contacted")
        .await
        .expect(200);
    assert!(!ids(&never).contains(&SHARED) && ids(&never).contains(&PROJECT_RUNNER));
    let by_version = get(&app, ADMIN, "/api/v4/runners/all?version_prefix=16.11")
        .await
        .expect(200);
    assert_eq!(ids(&by_version), [SHARED]);
    let other = get(&app, ADMIN, "/api/v4/runners/all?version_prefix=16.1")
        .await
        .expect(200);
    assert!(
        ids(&other).is_empty(),
        "16.1 is not a prefix of 16.11 by components"
    );
    let bad = get(&app, ADMIN, "/api/v4/runners/all?version_prefix=V16")
        .await
        .expect(400);
    assert_eq!(error(&bad), "version_prefix is invalid");
    // Fixture runners were created in 2019 and never contacted: stale, as GitLab counts it. The
    // owned list takes the new scope values too.
    let stale = get(&app, USER, "/api/v4/runners?scope=stale")
        .await
        .expect(200);
    let owned_never = get(&app, USER, "/api/v4/runners?status=never_contacted")
        .await
        .expect(200);
    assert!(!ids(&stale).is_empty());
    assert_eq!(ids(&stale), ids(&owned_never));
    let all_stale = get(&app, ADMIN, "/api/v4/runners/all?status=stale")
        .await
        .expect(200);
    assert!(!ids(&all_stale).contains(&SHARED), "contacted just now");
}

/// A table written before the list structures existed: runner and job items without their
/// index keys, no counts, no subtree sets. Lists miss those runners until
/// `runnerctl table rebuild-lists` (this function) has run; then they are whole again.
#[tokio::test]
async fn rebuilding_the_lists_of_a_table_written_before_them() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use runners_shared::store::keys;
    let app = app().await;
    let all_before = get(&app, ADMIN, "/api/v4/runners/all").await.expect(200);
    let jobs_before = get(&app, ADMIN, "/api/v4/runners/2/jobs?per_page=1")
        .await
        .expect(200);
    let owned_before = get(&app, OWNER, "/api/v4/runners").await.expect(200);
    let stale_before = get(&app, ADMIN, "/api/v4/runners/all?status=stale")
        .await
        .expect(200);
    let never_contacted = get(&app, ADMIN, "/api/v4/runners/all?status=never_contacted")
        .await
        .expect(200);
    assert!(!ids(&never_contacted).is_empty());
    let client = app.store.client();
    let table = app.store.table();
    let key = |(pk, sk): (String, String)| {
        std::collections::HashMap::from([
            ("pk".to_owned(), AttributeValue::S(pk)),
            ("sk".to_owned(), AttributeValue::S(sk)),
        ])
    };
    // Undo what the structures hold: index keys of every runner and job, every count, every
    // subtree count (the fixture's groups are 10-41).
    for id in 1..=7 {
        client
            .update_item()
            .table_name(table)
            .set_key(Some(key(keys::runner(id))))
            .update_expression("REMOVE gsi3pk, gsi3sk")
            .send()
            .await
            .unwrap();
    }
    for id in [1002, 1003, 1004, 1005] {
        client
            .update_item()
            .table_name(table)
            .set_key(Some(key(keys::job(id))))
            .update_expression("REMOVE gsi3pk, gsi3sk")
            .send()
            .await
            .unwrap();
    }
    let mut doomed = Vec::new();
    for (pk, prefix) in [
        (keys::RUNNER_COUNTS.to_owned(), String::new()),
        (keys::RUNNER_FACET_COUNTS.to_owned(), String::new()),
        (keys::RUNNER_SEEN_COUNTS.to_owned(), String::new()),
        (keys::runner_job_counts(1), String::new()),
        (keys::runner_job_counts(2), String::new()),
    ]
    .into_iter()
    .chain([10, 20, 40, 41].map(|g| (format!("GROUP#{g}"), keys::SUBTREE_COUNT_PREFIX.to_owned())))
    {
        let found = client
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(pk))
            .send()
            .await
            .unwrap();
        for item in found.items() {
            let sk = item["sk"].as_s().unwrap();
            if sk.starts_with(&prefix) {
                doomed.push((item["pk"].as_s().unwrap().clone(), sk.clone()));
            }
        }
    }
    assert!(doomed.len() > 10, "{doomed:?}");
    for k in doomed {
        client
            .delete_item()
            .table_name(table)
            .set_key(Some(key(k)))
            .send()
            .await
            .unwrap();
    }
    // `never_contacted` entries as they were before they held the runner's creation.
    for runner in never_contacted.body.as_array().unwrap() {
        let entry = keys::runner_facet(
            "never_contacted",
            runner["runner_type"].as_str().unwrap(),
            runner["id"].as_i64().unwrap(),
        );
        client
            .update_item()
            .table_name(table)
            .set_key(Some(key(entry)))
            .update_expression("REMOVE created, gsi3pk, gsi3sk")
            .send()
            .await
            .unwrap();
    }
    let all_empty = get(&app, ADMIN, "/api/v4/runners/all").await.expect(200);
    assert_eq!(
        all_empty.header("x-total"),
        Some("0"),
        "nothing counted yet"
    );
    let owned_empty = get(&app, OWNER, "/api/v4/runners").await.expect(200);
    assert_eq!(owned_empty.body, json!([]));

    // Entries no runner has: a facet of a tag runner 2 never had, a subtree count of a group
    // with no runner below it, and a subtree entry (as tables before subtree counts held them)
    // of a group runner 2 is not below.
    let orphans = [
        keys::runner_facet("tag:gone", "project_type", 2),
        keys::subtree_count(999, 2),
        keys::subtree_runner(41, 2),
    ];
    for orphan in &orphans {
        client
            .put_item()
            .table_name(table)
            .set_item(Some(key(orphan.clone())))
            .send()
            .await
            .unwrap();
    }
    // Counts no runner needs: a tag nobody carries, and changes left in an outbox (which the
    // rebuilt counts include, so applying them later would count twice).
    let stale_counts = [
        keys::runner_facet_count("tag:gone", 2),
        (
            keys::LISTING_OUTBOX.to_owned(),
            "00000000000000000001#1".to_owned(),
        ),
    ];
    for stale in &stale_counts {
        let mut item = key(stale.clone());
        item.insert("project_type".into(), AttributeValue::N("1".into()));
        client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    }
    let summary = runners_shared::admin::listing::rebuild_listing(
        &app.store,
        runners_shared::admin::listing::JobCounts::All,
    )
    .await
    .unwrap();
    assert_eq!(summary.orphan_entries_removed, 3);
    assert_eq!(summary.stale_counters_removed, 2);
    for orphan in orphans.into_iter().chain(stale_counts) {
        let found = client
            .get_item()
            .table_name(table)
            .set_key(Some(key(orphan)))
            .send()
            .await
            .unwrap();
        assert!(found.item.is_none());
    }
    assert_eq!((summary.runners, summary.indexed), (7, 7));
    assert_eq!(summary.jobs_indexed, 4);
    let all_after = get(&app, ADMIN, "/api/v4/runners/all").await.expect(200);
    assert_eq!(ids(&all_after), ids(&all_before));
    assert_eq!(all_after.header("x-total"), all_before.header("x-total"));
    let owned_after = get(&app, OWNER, "/api/v4/runners").await.expect(200);
    assert_eq!(ids(&owned_after), ids(&owned_before));
    let stale_after = get(&app, ADMIN, "/api/v4/runners/all?status=stale")
        .await
        .expect(200);
    assert!(!ids(&stale_after).is_empty());
    assert_eq!(ids(&stale_after), ids(&stale_before));
    assert_eq!(
        stale_after.header("x-total"),
        stale_before.header("x-total")
    );
    let jobs_after = get(&app, ADMIN, "/api/v4/runners/2/jobs?per_page=1")
        .await
        .expect(200);
    assert_eq!(jobs_after.header("x-total"), jobs_before.header("x-total"));
    assert_eq!(jobs_after.header("x-total"), Some("2"));
    // Deep pages read the index keys the rebuild gave the jobs.
    let deep = app
        .store
        .counted_runner_jobs(
            2,
            &app.store.runner_job_counts(2).await.unwrap(),
            None,
            None,
            false,
            runners_shared::pagination::PageRequest {
                page: 2,
                per_page: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(deep.0.iter().map(|j| j.id).collect::<Vec<_>>(), [1005]);
    // And the counts and keys of each status.
    for (status, id) in [("running", 1004), ("failed", 1005)] {
        let one = get(
            &app,
            ADMIN,
            &format!("/api/v4/runners/2/jobs?status={status}"),
        )
        .await
        .expect(200);
        assert_eq!(ids(&one), [id], "{status}");
        assert_eq!(one.header("x-total"), Some("1"), "{status}");
    }
}

async fn never_contacted(app: &test_harness::TestApp) -> (Vec<i64>, Option<String>) {
    let listed = get(
        app,
        ADMIN,
        "/api/v4/runners/all?status=never_contacted&per_page=100",
    )
    .await
    .expect(200);
    (ids(&listed), listed.header("x-total").map(str::to_owned))
}

#[tokio::test]
async fn a_first_contact_leaves_the_never_contacted_list_even_through_an_older_token_item() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use runners_shared::auth::TokenDigest;
    use runners_shared::store::keys;
    let app = app().await;
    let (before, _) = never_contacted(&app).await;
    assert!(
        before.contains(&SHARED) && before.contains(&GROUP_RUNNER),
        "{before:?}"
    );
    // The group runner's token item as written before it kept the runner's type.
    app.store
        .client()
        .update_item()
        .table_name(app.store.table())
        .set_key(Some(
            [
                (
                    "pk".to_owned(),
                    AttributeValue::S(keys::token(TokenDigest::of("t4").as_str()).0),
                ),
                ("sk".to_owned(), AttributeValue::S("TOKEN".to_owned())),
            ]
            .into(),
        ))
        .update_expression("REMOVE runner_type")
        .send()
        .await
        .unwrap();
    for token in ["t1", "t4"] {
        let verified = app
            .post("/api/v4/runners/verify")
            .json(serde_json::json!({"token": token}))
            .send()
            .await
            .expect(200);
        assert!(
            verified.usage.round_trips <= 3,
            "{token}: {:?}",
            verified.usage
        );
    }
    let (after, total) = never_contacted(&app).await;
    let expected: Vec<i64> = before
        .iter()
        .copied()
        .filter(|id| ![SHARED, GROUP_RUNNER].contains(id))
        .collect();
    assert_eq!(after, expected);
    assert_eq!(total, Some(expected.len().to_string()));
}
