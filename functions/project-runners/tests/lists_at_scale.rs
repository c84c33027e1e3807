//! Runner lists on a seed large enough that the old ways read several Query pages (4,000
//! runners, 200 projects in 51 nested groups): every page, first, middle or last, in a fixed
//! number of round trips, with the runners a model of the seed says; and the counts behind
//! the pages kept exact by parallel registrations, enables, disables and deletes.

use aws_sdk_dynamodb::types::AttributeValue;
use runners_shared::store::keys;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use test_harness::{TestApp, TestResponse};

const ADMIN: &str = "admin-pat";
/// Owner of the root group: owns every group and project runner below it.
const OWNER: &str = "owner-pat";
/// Maintainer of 20 projects directly.
const MAINTAINER: &str = "maintainer-pat";

const ROOT: i64 = 1;
const INSTANCE_RUNNERS: i64 = 1_500;
const PROJECTS: i64 = 200;
const RUNNERS_PER_PROJECT: i64 = 12;
const GROUP_RUNNERS: i64 = 100;

/// A runner of the seed: its id, type, projects and group.
type ModelRunner = (i64, &'static str, Vec<i64>, Option<i64>);

const MINUTE: i64 = 60_000;
const WEEK: i64 = 7 * 24 * 60 * MINUTE;

/// An age near a week (when a runner goes stale), on the side `stale` says: spread over 23
/// hours, so that some lie in the part of the day holding the threshold that comes after it
/// (read from the index by time, not the day counts) at almost any time of day, and none within
/// 2 minutes of the threshold, so that the test's own duration moves none across.
fn about_a_week(id: i64, stale: bool) -> i64 {
    let off = 2 * MINUTE + (id * 7_919) % (23 * 60 * MINUTE);
    if stale { WEEK + off } else { WEEK - off }
}

/// How long before the seed a runner was last contacted (`None`: never). They lie on both
/// sides of the online timeout (an hour), in and out of the contact span that holds it, but
/// none within a minute of it, so that the test's own duration moves none across; and on both
/// sides of the stale threshold (a week).
fn contacted_ago_ms(id: i64) -> Option<i64> {
    match id % 5 {
        0 => None,
        1 => Some(match id % 20 {
            1 => about_a_week(id, true),
            11 => about_a_week(id, false),
            _ => 120 * MINUTE,
        }),
        2 => Some(MINUTE),
        3 => {
            let minutes = 40 + (id * 7) % 39;
            Some(if minutes >= 59 { minutes + 3 } else { minutes } * MINUTE + (id % 50) * 1_000)
        }
        _ => Some(30 * MINUTE),
    }
}

/// Whether the seed's runner is online (contacted within the hour).
fn online(id: i64) -> bool {
    contacted_ago_ms(id).is_some_and(|ago| ago < 60 * MINUTE)
}

/// How long before the seed a never-contacted runner was created (`None`: the fixture's
/// default, 1970): on both sides of the stale threshold, or well within it.
fn created_ago_ms(id: i64) -> Option<i64> {
    match (contacted_ago_ms(id), id % 30) {
        (Some(_), _) => None,
        (None, 0 | 15) => Some(about_a_week(id, false)),
        (None, 5 | 20) => Some(3 * 24 * 60 * MINUTE),
        (None, 10) => Some(about_a_week(id, true)),
        (None, _) => None,
    }
}

/// Whether the seed's runner is stale: last seen (contacted, or else created) over a week ago.
fn stale(id: i64) -> bool {
    contacted_ago_ms(id)
        .or(created_ago_ms(id))
        .is_none_or(|ago| ago > WEEK)
}

/// The version the seed's runner reported, if any.
fn version_of(id: i64) -> Option<&'static str> {
    ["15.1.2", "15.10.0", "16.0.1"]
        .get(id as usize % 4)
        .copied()
}

/// The seed as a model: each group's parent, each project's group, each runner.
struct Model {
    parents: BTreeMap<i64, Option<i64>>,
    project_groups: BTreeMap<i64, i64>,
    runners: Vec<ModelRunner>,
}

impl Model {
    fn new() -> Self {
        let mut parents = BTreeMap::from([(ROOT, None)]);
        for child in 2..=11 {
            parents.insert(child, Some(ROOT));
            for leaf in 0..4 {
                parents.insert(12 + (child - 2) * 4 + leaf, Some(child));
            }
        }
        let project_groups = (0..PROJECTS).map(|p| (1_000 + p, 12 + p % 40)).collect();
        let mut runners = Vec::new();
        let mut id = 0;
        for _ in 0..INSTANCE_RUNNERS {
            id += 1;
            runners.push((id, "instance_type", vec![], None));
        }
        for p in 0..PROJECTS {
            for _ in 0..RUNNERS_PER_PROJECT {
                id += 1;
                let mut projects = vec![1_000 + p];
                if id % 50 == 0 {
                    // Some runners serve a second project (listed once all the same).
                    projects.push(1_000 + (p + 7) % PROJECTS);
                }
                runners.push((id, "project_type", projects, None));
            }
        }
        for g in 0..GROUP_RUNNERS {
            id += 1;
            runners.push((id, "group_type", vec![], Some(2 + g % 50)));
        }
        Self {
            parents,
            project_groups,
            runners,
        }
    }

    fn chain(&self, mut group: i64) -> Vec<i64> {
        let mut chain = vec![group];
        while let Some(Some(parent)) = self.parents.get(&group) {
            chain.push(*parent);
            group = *parent;
        }
        chain
    }

    fn world(&self) -> Value {
        let groups: Vec<Value> = self
            .parents
            .iter()
            .map(|(id, parent)| {
                let mut group =
                    json!({"id": id, "name": format!("G{id}"), "path": format!("g{id}")});
                if let Some(parent) = parent {
                    group["parent_id"] = json!(parent);
                }
                if *id == ROOT {
                    group["members"] = json!([{"user_id": 2, "access_level": 50}]);
                }
                group
            })
            .collect();
        let projects: Vec<Value> = self
            .project_groups
            .iter()
            .map(|(id, group)| {
                let mut project = json!({"id": id, "name": format!("P{id}"), "path": format!("p{id}"), "namespace_id": group});
                if *id < 1_020 {
                    project["members"] = json!([{"user_id": 3, "access_level": 40}]);
                }
                project
            })
            .collect();
        let now = runners_shared::time::Timestamp::now().millis();
        let runners: Vec<Value> = self
            .runners
            .iter()
            .map(|(id, runner_type, projects, group)| {
                let mut runner =
                    json!({"id": id, "token": format!("runner-{id}"), "runner_type": runner_type});
                if let Some(ago) = contacted_ago_ms(*id) {
                    let at = runners_shared::time::Timestamp::from_millis(now - ago);
                    runner["contacted_at"] = json!(at.to_string());
                }
                if let Some(ago) = created_ago_ms(*id) {
                    let at = runners_shared::time::Timestamp::from_millis(now - ago);
                    runner["created_at"] = json!(at.to_string());
                }
                if !projects.is_empty() {
                    runner["projects"] = json!(projects);
                }
                if let Some(group) = group {
                    runner["groups"] = json!([group]);
                }
                if id % 3 == 0 {
                    runner["tag_list"] = json!(["docker"]);
                }
                if id % 7 == 0 {
                    runner["active"] = json!(false);
                }
                if let Some(version) = version_of(*id) {
                    runner["version"] = json!(version);
                }
                runner
            })
            .collect();
        json!({
            "users": [
                {"id": 1, "username": "admin", "admin": true, "tokens": [{"token": ADMIN}]},
                {"id": 2, "username": "owner", "tokens": [{"token": OWNER}]},
                {"id": 3, "username": "maintainer", "tokens": [{"token": MAINTAINER}]}
            ],
            "groups": groups,
            "projects": projects,
            "runners": runners
        })
    }

    fn ids(&self, keep: impl Fn(&ModelRunner) -> bool) -> Vec<i64> {
        self.runners
            .iter()
            .filter(|r| keep(r))
            .map(|r| r.0)
            .collect()
    }

    /// A project's list: its runners, its groups' runners, every instance runner.
    fn project_list(&self, project: i64) -> Vec<i64> {
        let chain = self.chain(self.project_groups[&project]);
        self.ids(|(_, t, projects, group)| {
            *t == "instance_type"
                || projects.contains(&project)
                || group.is_some_and(|g| chain.contains(&g))
        })
    }
}

/// An app serving the runner lists, their writes and registration, seeded with `world`.
async fn app_seeded(world: Value) -> TestApp {
    let app = TestApp::new(|state| {
        project_runners::router(state.clone())
            .merge(runner_management::router(state.clone()))
            .merge(runner_token::router(state))
    })
    .await;
    app.seed(world).await;
    app
}

async fn app(model: &Model) -> TestApp {
    app_seeded(model.world()).await
}

async fn list(app: &TestApp, token: &str, path: &str) -> TestResponse {
    app.get(path).header("PRIVATE-TOKEN", token).send().await
}

fn ids(response: &TestResponse) -> Vec<i64> {
    response
        .body
        .as_array()
        .expect("a JSON array")
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .collect()
}

/// Checks one page against the expected list: its runners, total and next page, within
/// `round_trips`. Returns the calls it made.
async fn check_page(
    app: &TestApp,
    token: &str,
    path: &str,
    expected: &[i64],
    page: usize,
    per_page: usize,
    round_trips: u32,
) -> u32 {
    let separator = if path.contains('?') { '&' } else { '?' };
    let url = format!("{path}{separator}page={page}&per_page={per_page}");
    let response = list(app, token, &url).await.expect(200);
    let want: Vec<i64> = expected
        .iter()
        .copied()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    assert_eq!(ids(&response), want, "{url}");
    let total = expected.len().to_string();
    assert_eq!(response.header("x-total"), Some(total.as_str()), "{url}");
    let next = (page * per_page < expected.len()).then(|| (page + 1).to_string());
    assert_eq!(
        response.header("x-next-page"),
        Some(next.as_deref().unwrap_or("")),
        "{url}"
    );
    assert!(
        response.usage.round_trips <= round_trips,
        "{url}: {:?}",
        response.usage
    );
    response.usage.calls
}

/// The first, middle and last pages of `/runners/all?{query}` (see [`check_page`]).
async fn check_first_middle_last(
    app: &TestApp,
    query: &str,
    expected: &[i64],
    per_page: usize,
    round_trips: u32,
) {
    let last = expected.len().div_ceil(per_page).max(1);
    for page in [1, last.div_ceil(2), last] {
        let path = format!("/api/v4/runners/all?{query}");
        check_page(app, ADMIN, &path, expected, page, per_page, round_trips).await;
    }
}

#[tokio::test]
async fn every_page_of_every_unfiltered_list_in_a_fixed_number_of_round_trips() {
    let model = Model::new();
    let app = app(&model).await;

    // /runners/all: token and counts, the page's buckets, the page's runners.
    let all = model.ids(|_| true);
    assert_eq!(all.len(), 4_000);
    for page in [1, 20, 40] {
        let calls = check_page(&app, ADMIN, "/api/v4/runners/all", &all, page, 100, 3).await;
        assert!(
            calls <= 9,
            "three types of at most two buckets: {calls} calls"
        );
    }
    let project_type = model.ids(|r| r.1 == "project_type");
    let specific = model.ids(|r| r.1 != "instance_type");
    for page in [1, 12, 24] {
        check_page(
            &app,
            ADMIN,
            "/api/v4/runners/all?type=project_type",
            &project_type,
            page,
            100,
            3,
        )
        .await;
    }
    check_page(
        &app,
        ADMIN,
        "/api/v4/runners/all?scope=specific",
        &specific,
        25,
        100,
        3,
    )
    .await;
    check_page(
        &app,
        ADMIN,
        "/api/v4/runners/all?scope=shared",
        &model.ids(|r| r.1 == "instance_type"),
        15,
        100,
        3,
    )
    .await;

    // The Owner of the root group owns every group and project runner: one source.
    for page in [1, 13, 25] {
        let calls = check_page(&app, OWNER, "/api/v4/runners", &specific, page, 100, 4).await;
        assert_eq!(calls, 4, "token, memberships, one subtree set, the page");
    }
    // A page past the end reads the same subtree set, and says so with the whole total.
    let calls = check_page(&app, OWNER, "/api/v4/runners", &specific, 101, 100, 3).await;
    assert_eq!(calls, 3, "token, memberships, one subtree set; no page");
    // A Maintainer of 20 projects: their links, read together.
    let maintained = model.ids(|r| r.2.iter().any(|p| *p < 1_020));
    let calls = check_page(&app, MAINTAINER, "/api/v4/runners", &maintained, 3, 100, 4).await;
    assert!(calls <= 23, "{calls} calls");

    // A project three groups deep: its links and its groups' with every instance runner.
    let deep = 1_005;
    let expected = model.project_list(deep);
    assert!(expected.len() > 1_500);
    let pages = expected.len().div_ceil(100);
    for page in [1, 2, pages / 2, pages] {
        // The first pages are cut from the first instance runners read beside the counts.
        let budget = if page <= 2 { 3 } else { 4 };
        check_page(
            &app,
            ADMIN,
            &format!("/api/v4/projects/{deep}/runners"),
            &expected,
            page,
            100,
            budget,
        )
        .await;
    }
    // Filtered on one facet: its own runners read whole, the instance runners counted.
    for (query, keep) in [
        ("tag_list=docker", (|id| id % 3 == 0) as fn(i64) -> bool),
        ("status=paused", |id| id % 7 == 0),
        ("paused=false", |id| id % 7 != 0),
        ("status=online", online),
        ("status=offline", |id| !online(id)),
        ("status=stale", stale),
    ] {
        let filtered: Vec<i64> = expected.iter().copied().filter(|id| keep(*id)).collect();
        let last = filtered.len().div_ceil(100);
        for page in [1, last / 2, last, last + 1] {
            check_page(
                &app,
                ADMIN,
                &format!("/api/v4/projects/{deep}/runners?{query}"),
                &filtered,
                page.max(1),
                100,
                4,
            )
            .await;
        }
    }
    // Several criteria: the instance runners that meet them come from the member sets of
    // their counts, beside the links; the project's own runners are read whole, then the
    // page's: four round trips, whatever the page.
    for (query, keep) in [
        (
            "tag_list=docker&status=online",
            (|id| id % 3 == 0 && online(id)) as fn(i64) -> bool,
        ),
        ("status=stale&paused=false", |id| stale(id) && id % 7 != 0),
        ("version_prefix=15&status=offline&tag_list=docker", |id| {
            id % 4 < 2 && !online(id) && id % 3 == 0
        }),
    ] {
        let filtered: Vec<i64> = expected.iter().copied().filter(|id| keep(*id)).collect();
        let last = filtered.len().div_ceil(20);
        for page in [1, last / 2, last] {
            check_page(
                &app,
                ADMIN,
                &format!("/api/v4/projects/{deep}/runners?{query}"),
                &filtered,
                page.max(1),
                20,
                4,
            )
            .await;
        }
    }
    let own_tagged: Vec<i64> = model
        .ids(|r| r.0 % 3 == 0 && r.1 != "instance_type")
        .into_iter()
        .filter(|id| expected.contains(id))
        .collect();
    check_page(
        &app,
        ADMIN,
        &format!("/api/v4/projects/{deep}/runners?scope=specific&tag_list=docker"),
        &own_tagged,
        1,
        5,
        4,
    )
    .await;
    // A group's list: its and its ancestors' group runners and every instance runner.
    let group = 13;
    let chain = model.chain(group);
    let group_list =
        model.ids(|r| r.1 == "instance_type" || r.3.is_some_and(|g| chain.contains(&g)));
    check_page(
        &app,
        ADMIN,
        &format!("/api/v4/groups/{group}/runners"),
        &group_list,
        16,
        100,
        4,
    )
    .await;
    let group_docker: Vec<i64> = group_list
        .iter()
        .copied()
        .filter(|id| id % 3 == 0)
        .collect();
    check_page(
        &app,
        ADMIN,
        &format!("/api/v4/groups/{group}/runners?tag_list=docker"),
        &group_docker,
        5,
        100,
        4,
    )
    .await;
    for (status, keep) in [
        ("offline", (|id| !online(id)) as fn(i64) -> bool),
        ("stale", stale),
        ("online&tag_list=docker", |id| online(id) && id % 3 == 0),
    ] {
        let filtered: Vec<i64> = group_list.iter().copied().filter(|id| keep(*id)).collect();
        check_page(
            &app,
            ADMIN,
            &format!("/api/v4/groups/{group}/runners?status={status}"),
            &filtered,
            filtered.len().div_ceil(100),
            100,
            4,
        )
        .await;
    }

    // A filter on one facet (a tag, active or paused), with or without types, is counted
    // like a list of types: its counts and the facet's index, whatever the page.
    let tagged = model.ids(|r| r.0 % 3 == 0);
    for page in [1, 7, 14] {
        let calls = check_page(
            &app,
            ADMIN,
            "/api/v4/runners/all?tag_list=docker",
            &tagged,
            page,
            100,
            3,
        )
        .await;
        assert!(
            calls <= 9,
            "three types of at most two buckets: {calls} calls"
        );
    }
    type Keep = fn(&ModelRunner) -> bool;
    let facets: [(&str, Keep); 15] = [
        // A tag with the active flag: one facet of its own.
        ("tag_list=docker&paused=true", |r| r.0 % 21 == 0),
        ("tag_list=docker&status=active&type=project_type", |r| {
            r.0 % 3 == 0 && r.0 % 7 != 0 && r.1 == "project_type"
        }),
        // Online and offline: the contact counts of the spans after the one holding the
        // timeout, and the entries of that span after it.
        ("status=online", |r| online(r.0)),
        ("scope=offline", |r| !online(r.0)),
        ("status=online&type=group_type", |r| {
            online(r.0) && r.1 == "group_type"
        }),
        ("status=offline&scope=specific", |r| {
            !online(r.0) && r.1 != "instance_type"
        }),
        ("status=paused", |r| r.0 % 7 == 0),
        ("scope=active", |r| r.0 % 7 != 0),
        ("paused=true&type=project_type", |r| {
            r.0 % 7 == 0 && r.1 == "project_type"
        }),
        ("tag_list=docker&scope=specific", |r| {
            r.0 % 3 == 0 && r.1 != "instance_type"
        }),
        ("status=active&paused=true", |_| false),
        // Stale: every runner but those last seen after a week ago, from the last-seen
        // counts of the days after the one holding that time, and the entries of that day
        // after it.
        ("status=stale", |r| stale(r.0)),
        ("scope=stale&type=group_type", |r| {
            stale(r.0) && r.1 == "group_type"
        }),
        // A version prefix of up to three components: a facet of the versions it matches.
        ("version_prefix=15", |r| r.0 % 4 < 2),
        ("version_prefix=16.0.&type=project_type", |r| {
            r.0 % 4 == 2 && r.1 == "project_type"
        }),
    ];
    for (query, keep) in facets {
        check_first_middle_last(&app, query, &model.ids(keep), 100, 3).await;
    }

    // Several criteria: the member sets of their counts, beside the token, then the page's
    // runners: three round trips wherever the page is.
    type Both = fn(&ModelRunner) -> bool;
    let intersected: [(&str, Both); 6] = [
        ("tag_list=docker&status=online", |r| {
            r.0 % 3 == 0 && online(r.0)
        }),
        ("tag_list=docker&status=offline&type=project_type", |r| {
            r.0 % 3 == 0 && !online(r.0) && r.1 == "project_type"
        }),
        ("status=online&paused=true&tag_list=docker", |r| {
            r.0 % 21 == 0 && online(r.0)
        }),
        ("tag_list=docker&status=stale", |r| {
            r.0 % 3 == 0 && stale(r.0)
        }),
        ("scope=stale&status=never_contacted", |r| {
            stale(r.0) && contacted_ago_ms(r.0).is_none()
        }),
        ("version_prefix=15.1&status=online", |r| {
            r.0 % 4 == 0 && online(r.0)
        }),
    ];
    for (query, keep) in intersected {
        check_first_middle_last(&app, query, &model.ids(keep), 50, 3).await;
    }
    // More criteria than that walk the runners, and agree with the model.
    // Five criteria are intersected the same way.
    check_page(
        &app,
        ADMIN,
        "/api/v4/runners/all?tag_list=docker,a,b,c&status=online",
        &[],
        1,
        50,
        2,
    )
    .await;
    // More criteria than a request may read the sets of walk the runners, and agree with the
    // model.
    let many_tags: Vec<String> = (0..16).map(|n| format!("t{n}")).collect();
    let calls = check_page(
        &app,
        ADMIN,
        &format!(
            "/api/v4/runners/all?tag_list={}&status=online",
            many_tags.join(",")
        ),
        &[],
        1,
        50,
        10,
    )
    .await;
    // The walk reads the runners one 1 MB Query page after another: the seed is large enough
    // that the old way of every list needed more than one (the counted pages above do not).
    assert!(
        calls >= 3,
        "token and at least two Query pages: {calls} calls"
    );
    let owned_tagged: Vec<i64> = specific.iter().copied().filter(|id| id % 3 == 0).collect();
    // Owned lists on counted criteria: the runners that meet them come from the member sets
    // beside the memberships, every source is read whole (keys), and only the page's runners
    // after them, not every candidate (2,500 here, 25 batches).
    let calls = check_page(
        &app,
        OWNER,
        "/api/v4/runners?tag_list=docker",
        &owned_tagged,
        2,
        100,
        4,
    )
    .await;
    assert!(calls <= 16, "{calls} calls");
    type Owned = fn(i64) -> bool;
    let owned_filters: [(&str, &str, &[i64], Owned); 4] = [
        ("Owner", OWNER, &specific, |id| online(id) && id % 3 == 0),
        ("Owner", OWNER, &specific, |id| stale(id)),
        ("Maintainer", MAINTAINER, &maintained, |id| id % 4 == 2),
        ("Maintainer", MAINTAINER, &maintained, |id| {
            id % 7 == 0 && !online(id)
        }),
    ];
    let queries = [
        "tag_list=docker&status=online",
        "status=stale",
        "version_prefix=16.0",
        "paused=true&status=offline",
    ];
    for ((who, token, candidates, keep), query) in owned_filters.into_iter().zip(queries) {
        let filtered: Vec<i64> = candidates.iter().copied().filter(|id| keep(*id)).collect();
        let last = filtered.len().div_ceil(50);
        assert!(!filtered.is_empty(), "{who} {query}");
        for page in [1, last] {
            check_page(
                &app,
                token,
                &format!("/api/v4/runners?{query}"),
                &filtered,
                page,
                50,
                4,
            )
            .await;
        }
    }

    // Two of the first instance runners enabled in the project become its own: the same list,
    // but now two of its own runners come before a deep page's instance runners.
    let docker: Vec<i64> = model
        .project_list(deep)
        .iter()
        .copied()
        .filter(|id| id % 3 == 0)
        .collect();
    for id in [3, 6] {
        app.post(&format!("/api/v4/projects/{deep}/runners"))
            .header("PRIVATE-TOKEN", ADMIN)
            .json(json!({"runner_id": id}))
            .send()
            .await
            .expect(201);
    }
    let last = docker.len().div_ceil(50);
    for page in [1, 2, last / 2, last] {
        check_page(
            &app,
            ADMIN,
            &format!("/api/v4/projects/{deep}/runners?tag_list=docker"),
            &docker,
            page,
            50,
            4,
        )
        .await;
    }
}

/// Registers a runner: its id and token.
async fn register(app: &TestApp, token: &str, tags: &[&str], active: bool) -> (i64, String) {
    let response = app
        .post("/api/v4/runners")
        .json(json!({"token": token, "description": "new", "tag_list": tags, "active": active}))
        .send()
        .await
        .expect(201);
    (
        response.body["id"].as_i64().expect("an id"),
        response.body["token"].as_str().expect("a token").to_owned(),
    )
}

async fn verify(app: &TestApp, token: &str) -> u16 {
    app.post("/api/v4/runners/verify")
        .json(json!({"token": token}))
        .send()
        .await
        .status
}

async fn update(app: &TestApp, id: i64, body: Value) -> u16 {
    app.put(&format!("/api/v4/runners/{id}"))
        .header("PRIVATE-TOKEN", ADMIN)
        .json(body)
        .send()
        .await
        .status
}

fn total(response: &TestResponse) -> usize {
    response
        .header("x-total")
        .and_then(|t| t.parse().ok())
        .expect("a total")
}

/// The counted lists and the walked ones (filters on two criteria walk) must agree on every
/// type's total and on the runners, and the lists counted per criterion with what each
/// runner's details say (its tags, whether it is active, its last contact).
async fn assert_counts_agree_with_the_runners(app: &TestApp) {
    assert_member_sets_hold_what_is_counted(app).await;
    for query in [
        "",
        "type=instance_type&",
        "type=group_type&",
        "type=project_type&",
    ] {
        let counted = list(
            app,
            ADMIN,
            &format!("/api/v4/runners/all?{query}per_page=100"),
        )
        .await
        .expect(200);
        // Every runner item of the types, read from the table itself, and its details.
        let wanted = query.strip_prefix("type=").map(|t| t.trim_end_matches('&'));
        let stored = stored_runner_ids(app, wanted).await;
        assert_eq!(total(&counted), stored.len(), "{query}");
        assert_eq!(ids(&counted), stored, "{query}");
        let runners: Vec<Value> = stored.iter().map(|id| json!({"id": id})).collect();
        for (facet, keep) in facet_filters(app, &runners).await {
            let counted = list(
                app,
                ADMIN,
                &format!("/api/v4/runners/all?{query}{facet}&per_page=100"),
            )
            .await
            .expect(200);
            assert_eq!(ids(&counted), keep, "{query}{facet}");
            assert_eq!(total(&counted), keep.len(), "{query}{facet}");
        }
    }
}

/// Every count item's member sets hold exactly as many runners as its counts, and the runner
/// counts' sets (of each type) are exactly the runners stored.
async fn assert_member_sets_hold_what_is_counted(app: &TestApp) {
    let mut of_type: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for partition in [
        keys::RUNNER_COUNTS,
        keys::RUNNER_FACET_COUNTS,
        keys::RUNNER_CONTACT_COUNTS,
        keys::RUNNER_SEEN_COUNTS,
    ] {
        for item in self::partition(app, partition).await {
            for count in ["value", "instance_type", "group_type", "project_type"] {
                let Some(counted) = item.get(count) else {
                    continue;
                };
                let counted: usize = counted.as_n().unwrap().parse().unwrap();
                let members: BTreeSet<i64> = item
                    .get(&keys::members_of(count))
                    .map(|set| {
                        set.as_ns()
                            .unwrap()
                            .iter()
                            .map(|id| id.parse().unwrap())
                            .collect()
                    })
                    .unwrap_or_default();
                assert_eq!(
                    members.len(),
                    counted,
                    "{partition} {:?} {count}",
                    item["sk"]
                );
                if partition == keys::RUNNER_COUNTS {
                    let sk = item["sk"].as_s().unwrap();
                    let runner_type = sk.split('#').next().unwrap().to_owned();
                    of_type.entry(runner_type).or_default().extend(members);
                }
            }
        }
    }
    for (runner_type, members) in of_type {
        let stored: BTreeSet<i64> = stored_runner_ids(app, Some(&runner_type))
            .await
            .into_iter()
            .collect();
        assert_eq!(members, stored, "{runner_type}");
    }
}

/// The ids of every runner item in the table (of one type, if given), in id order: read from
/// the all-runners index, not through a list.
async fn stored_runner_ids(app: &TestApp, runner_type: Option<&str>) -> Vec<i64> {
    let found = app
        .store
        .client()
        .query()
        .table_name(app.store.table())
        .index_name(keys::GSI1)
        .key_condition_expression("gsi1pk = :all")
        .expression_attribute_values(":all", AttributeValue::S(keys::ALL_RUNNERS.into()))
        .send()
        .await
        .expect("a query of the test table");
    assert!(found.last_evaluated_key.is_none(), "one page");
    found
        .items()
        .iter()
        .filter(|item| runner_type.is_none_or(|t| item["runner_type"].as_s().is_ok_and(|s| s == t)))
        .filter_map(|item| item["id"].as_n().ok()?.parse().ok())
        .collect()
}

/// A project's list filtered on a facet, counted and read three runners a page, equals the
/// walked one (with `status=online`, then `status=offline`: together every runner).
async fn assert_project_lists_agree(app: &TestApp, project: i64, facets: &[&str]) {
    for facet in facets {
        let path = format!("/api/v4/projects/{project}/runners?{facet}");
        let mut expected = Vec::new();
        for status in ["online", "offline"] {
            let walked = list(app, ADMIN, &format!("{path}&status={status}&per_page=100"))
                .await
                .expect(200);
            expected.extend(ids(&walked));
        }
        expected.sort_unstable();
        for page in 1..=expected.len().div_ceil(3).max(1) {
            check_page(app, ADMIN, &path, &expected, page, 3, 4).await;
        }
    }
}

/// For each facet filter, the ids of the runners it keeps, from each runner's details.
async fn facet_filters(app: &TestApp, runners: &[Value]) -> Vec<(String, Vec<i64>)> {
    let mut details = Vec::new();
    let mut tags: BTreeSet<String> = BTreeSet::new();
    for runner in runners {
        let runner = list(app, ADMIN, &format!("/api/v4/runners/{}", runner["id"]))
            .await
            .expect(200)
            .body;
        for tag in runner["tag_list"].as_array().expect("tags") {
            tags.insert(tag.as_str().expect("a tag").to_owned());
        }
        details.push(runner);
    }
    let keep = |test: &dyn Fn(&Value) -> bool| -> Vec<i64> {
        details
            .iter()
            .filter(|d| test(d))
            .filter_map(|d| d["id"].as_i64())
            .collect()
    };
    let hour_ago = runners_shared::time::Timestamp::now().millis() - 60 * MINUTE;
    let online = move |d: &Value| {
        d["contacted_at"]
            .as_str()
            .and_then(runners_shared::time::Timestamp::parse)
            .is_some_and(|at| at.millis() > hour_ago)
    };
    let week_ago = hour_ago + 60 * MINUTE - WEEK;
    let stale = move |d: &Value| {
        let seen = match d["contacted_at"].as_str() {
            Some(at) => at,
            None => d["created_at"].as_str().expect("created_at"),
        };
        runners_shared::time::Timestamp::parse(seen).is_some_and(|at| at.millis() < week_ago)
    };
    let mut filters = vec![
        ("status=online".to_owned(), keep(&online)),
        ("status=stale".to_owned(), keep(&stale)),
        ("status=offline".to_owned(), keep(&|d| !online(d))),
        // Two criteria that each say who does not meet them: every runner's set, less theirs.
        (
            "scope=stale&status=offline".to_owned(),
            keep(&|d| stale(d) && !online(d)),
        ),
        ("paused=true".to_owned(), keep(&|d| d["active"] == false)),
        ("status=active".to_owned(), keep(&|d| d["active"] == true)),
        (
            "status=never_contacted".to_owned(),
            keep(&|d| d["contacted_at"].is_null()),
        ),
    ];
    for tag in &tags {
        let has = |d: &Value| {
            d["tag_list"]
                .as_array()
                .is_some_and(|t| t.contains(&json!(tag)))
        };
        filters.push((format!("tag_list={tag}"), keep(&has)));
        for paused in [true, false] {
            filters.push((
                format!("tag_list={tag}&paused={paused}"),
                keep(&|d| has(d) && d["active"] == !paused),
            ));
        }
        // Two criteria: intersected from the rarer one.
        filters.push((
            format!("tag_list={tag}&status=online"),
            keep(&|d| has(d) && online(d)),
        ));
        filters.push((
            format!("tag_list={tag}&status=offline&paused=false"),
            keep(&|d| has(d) && !online(d) && d["active"] == true),
        ));
    }
    filters
}

#[tokio::test]
async fn counts_subtree_sets_and_facets_stay_exact_through_parallel_writes() {
    let app = app_seeded(json!({
        "settings": {"runners_registration_token": "instance-registration"},
        "users": [
            {"id": 1, "username": "admin", "admin": true, "tokens": [{"token": ADMIN}]},
            {"id": 2, "username": "owner", "tokens": [{"token": OWNER}]}
        ],
        "groups": [
            {"id": 1, "name": "Root", "path": "root", "members": [{"user_id": 2, "access_level": 50}]},
            {"id": 2, "name": "Sub", "path": "sub", "parent_id": 1, "runners_token": "group-registration"}
        ],
        "projects": [
            {"id": 10, "name": "A", "path": "a", "namespace_id": 2, "runners_token": "project-registration"},
            {"id": 11, "name": "B", "path": "b", "namespace_id": 2}
        ],
        "runners": [
            {"id": 998, "token": "r998", "runner_type": "instance_type"},
            {"id": 999, "token": "r999", "runner_type": "project_type", "projects": [10]}
        ]
    }))
    .await;
    // Registrations from three kinds of token at once, across the bucket boundary at 1,000.
    let tokens = [
        "instance-registration",
        "group-registration",
        "project-registration",
    ];
    let tag_sets: [&[&str]; 4] = [&["docker"], &["docker", "arm"], &[], &["gpu"]];
    let (registered, runner_tokens): (Vec<i64>, Vec<String>) = futures_util::future::join_all(
        (0..24).map(|i| register(&app, tokens[i % 3], tag_sets[i % 4], i % 5 != 0)),
    )
    .await
    .into_iter()
    .unzip();
    assert_eq!(registered.iter().collect::<BTreeSet<_>>().len(), 24);
    assert_counts_agree_with_the_runners(&app).await;
    let owned = list(&app, OWNER, "/api/v4/runners?per_page=100")
        .await
        .expect(200);
    assert_eq!(
        total(&owned),
        1 + 16,
        "the project runner and every group or project runner registered below the root"
    );

    // Enabling instance runners makes them project runners: their counts move. Meanwhile
    // runners are retagged and paused, some of them while being enabled, some by two
    // updates at once: every update lands, and every facet count follows.
    let instance_ids: Vec<i64> = registered.iter().copied().step_by(3).collect();
    let enables = futures_util::future::join_all(instance_ids.iter().map(|id| {
        app.post("/api/v4/projects/11/runners")
            .header("PRIVATE-TOKEN", ADMIN)
            .json(json!({"runner_id": id}))
            .send()
    }));
    let changes = [
        json!({"tag_list": ["arm"]}),
        json!({"paused": true}),
        json!({"tag_list": ["docker", "gpu"], "active": true}),
        json!({"tag_list": []}),
    ];
    let updates = futures_util::future::join_all(
        registered[..12]
            .iter()
            .enumerate()
            .flat_map(|(i, id)| {
                [
                    (*id, changes[i % 4].clone()),
                    (*id, changes[(i + 1) % 4].clone()),
                ]
            })
            .chain((0..5).map(|i| (registered[12], json!({"tag_list": [format!("t{i}")]}))))
            .map(|(id, body)| update(&app, id, body)),
    );
    // And half the runners make their first contact, twice at once each.
    let contacts = futures_util::future::join_all(
        runner_tokens
            .iter()
            .step_by(2)
            .flat_map(|token| [verify(&app, token), verify(&app, token)]),
    );
    let (enabled, updated, contacted) =
        futures_util::future::join3(enables, updates, contacts).await;
    assert!(
        enabled.iter().all(|r| r.status == 201),
        "{:?}",
        enabled
            .iter()
            .map(|r| (r.status, r.body.clone()))
            .collect::<Vec<_>>()
    );
    assert!(updated.iter().all(|status| *status == 200), "{updated:?}");
    assert!(
        contacted.iter().all(|status| *status == 200),
        "{contacted:?}"
    );
    let never = list(
        &app,
        ADMIN,
        "/api/v4/runners/all?status=never_contacted&per_page=100",
    )
    .await
    .expect(200);
    assert!(
        ids(&never)
            .iter()
            .all(|id| !registered.iter().step_by(2).any(|r| r == id)),
        "no runner that made contact is listed as never contacted"
    );
    assert_counts_agree_with_the_runners(&app).await;
    // Project 11's own runners (enabled instance runners, ids among the instance runners left)
    // interleave with the instance runners: some come before a page's instance runners.
    for project in [10, 11] {
        assert_project_lists_agree(
            &app,
            project,
            &[
                "tag_list=docker",
                "tag_list=arm",
                "paused=true",
                "scope=active",
            ],
        )
        .await;
    }
    let owned = list(&app, OWNER, "/api/v4/runners?per_page=100")
        .await
        .expect(200);
    assert_eq!(total(&owned), 17 + 8);

    // Disabling one of two projects keeps the runner below the root; deleting runners (in
    // parallel) removes them from every count and set.
    app.post("/api/v4/projects/10/runners")
        .header("PRIVATE-TOKEN", ADMIN)
        .json(json!({"runner_id": instance_ids[0]}))
        .send()
        .await
        .expect(201);
    app.delete(&format!("/api/v4/projects/11/runners/{}", instance_ids[0]))
        .header("PRIVATE-TOKEN", ADMIN)
        .send()
        .await
        .expect(204);
    let deletes = futures_util::future::join_all(registered[..12].iter().map(|id| {
        app.delete(&format!("/api/v4/runners/{id}"))
            .header("PRIVATE-TOKEN", ADMIN)
            .send()
    }))
    .await;
    assert!(deletes.iter().all(|r| r.status == 204));
    assert_counts_agree_with_the_runners(&app).await;
    let owned = list(&app, OWNER, "/api/v4/runners?per_page=100")
        .await
        .expect(200);
    let all_left = list(
        &app,
        ADMIN,
        "/api/v4/runners/all?scope=specific&per_page=100",
    )
    .await
    .expect(200);
    assert_eq!(
        ids(&owned),
        ids(&all_left),
        "everything specific is below the root"
    );
    assert_eq!(total(&owned), 25 - 12);
}

#[tokio::test]
async fn a_runner_with_fifty_tags_spills_its_index_entries_past_the_transaction_and_stays_listed() {
    let app = app_seeded(json!({
        "settings": {"runners_registration_token": "instance-registration"},
        "users": [{"id": 1, "username": "admin", "admin": true, "tokens": [{"token": ADMIN}]}],
        "groups": [{"id": 1, "name": "Root", "path": "root"}],
        "projects": [{"id": 10, "name": "A", "path": "a", "namespace_id": 1}]
    }))
    .await;
    let tags = |prefix: &str| -> Vec<String> { (0..50).map(|i| format!("{prefix}{i}")).collect() };
    let old_tags = tags("old-");
    let old_refs: Vec<&str> = old_tags.iter().map(String::as_str).collect();
    let (id, _) = register(&app, "instance-registration", &old_refs, true).await;
    assert_eq!(all_runners(&app, "tag_list=old-49").await, (vec![id], 1));
    // Enabling moves 52 facet entries to the project type: more than a transaction holds.
    app.post("/api/v4/projects/10/runners")
        .header("PRIVATE-TOKEN", ADMIN)
        .json(json!({"runner_id": id}))
        .send()
        .await
        .expect(201);
    for tag in ["old-0", "old-49"] {
        assert_eq!(
            all_runners(&app, &format!("tag_list={tag}&type=project_type")).await,
            (vec![id], 1)
        );
        assert_eq!(
            all_runners(&app, &format!("tag_list={tag}&type=instance_type")).await,
            (vec![], 0)
        );
    }
    // Replacing all 50 tags: 100 entries change.
    assert_eq!(
        update(&app, id, json!({"tag_list": tags("new-")})).await,
        200
    );
    assert_eq!(all_runners(&app, "tag_list=new-37").await, (vec![id], 1));
    assert_eq!(all_runners(&app, "tag_list=old-37").await, (vec![], 0));
    assert!(
        partition(&app, keys::LISTING_OUTBOX).await.is_empty(),
        "the 100 count changes that did not fit were applied right after the commit"
    );
    assert_counts_agree_with_the_runners(&app).await;
    // Deleting it removes every entry, those past the transaction too.
    app.delete(&format!("/api/v4/runners/{id}"))
        .header("PRIVATE-TOKEN", ADMIN)
        .send()
        .await
        .expect(204);
    let leftovers = app
        .store
        .client()
        .scan()
        .table_name(app.store.table())
        .filter_expression("begins_with(pk, :facet)")
        .expression_attribute_values(
            ":facet",
            aws_sdk_dynamodb::types::AttributeValue::S("RUNNER_FACET#".into()),
        )
        .send()
        .await
        .expect("a scan of the test table");
    assert_eq!(leftovers.count(), 0, "{:?}", leftovers.items());
    assert_eq!(all_runners(&app, "tag_list=new-0").await, (vec![], 0));
}

/// `/runners/all` with `query`, as an admin: the ids and the total.
async fn all_runners(app: &TestApp, query: &str) -> (Vec<i64>, usize) {
    let found = list(app, ADMIN, &format!("/api/v4/runners/all?{query}"))
        .await
        .expect(200);
    (ids(&found), total(&found))
}

/// Every item of one partition of the test table.
async fn partition(
    app: &TestApp,
    pk: &str,
) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = app
            .store
            .client()
            .query()
            .table_name(app.store.table())
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("a query of the test table");
        items.extend(page.items().iter().cloned());
        start = page.last_evaluated_key;
        if start.is_none() {
            return items;
        }
    }
}

#[tokio::test]
async fn count_items_stay_small_however_many_long_tags_come_and_go() {
    let app = app_seeded(json!({
        "settings": {"runners_registration_token": "instance-registration"},
        "users": [{"id": 1, "username": "admin", "admin": true, "tokens": [{"token": ADMIN}]}]
    }))
    .await;
    // 50 tags of 255 characters, new each time: 36 retags put 1,850 distinct tags (470 KB of
    // names) through the counts of one id bucket and slot, more than one item could hold.
    let tags = |round: usize| -> Vec<String> {
        (0..50)
            .map(|i| format!("{round:03}-{i:02}-{}", "x".repeat(248)))
            .collect()
    };
    let first = tags(0);
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    let (id, _) = register(&app, "instance-registration", &first, true).await;
    for round in 1..=36 {
        assert_eq!(
            update(&app, id, json!({"tag_list": tags(round)})).await,
            200,
            "retag {round}"
        );
    }
    assert_eq!(
        all_runners(&app, &format!("tag_list={}", tags(36)[17])).await,
        (vec![id], 1)
    );
    assert_eq!(
        all_runners(&app, &format!("tag_list={}", tags(35)[17])).await,
        (vec![], 0)
    );
    assert_eq!(
        all_runners(&app, &format!("tag_list={}", tags(0)[0])).await,
        (vec![], 0)
    );
    let facet_counts = partition(&app, keys::RUNNER_FACET_COUNTS).await;
    assert!(facet_counts.len() > 1_850, "one item per tag ever carried");
    for item in facet_counts
        .iter()
        .chain(&partition(&app, keys::RUNNER_COUNTS).await)
    {
        // Keys and at most one count per runner type.
        assert!(item.len() <= 5, "{item:?}");
    }
    assert!(partition(&app, keys::LISTING_OUTBOX).await.is_empty());
}

#[tokio::test]
async fn count_changes_a_write_left_in_an_outbox_are_applied_once_by_the_sweeper() {
    let app = app_seeded(json!({
        "settings": {"runners_registration_token": "instance-registration"},
        "users": [{"id": 1, "username": "admin", "admin": true, "tokens": [{"token": ADMIN}]}]
    }))
    .await;
    let (id, _) = register(&app, "instance-registration", &["docker"], true).await;
    assert_eq!(update(&app, id, json!({"tag_list": ["arm"]})).await, 200);
    let totals = || {
        let app = &app;
        async move {
            let mut totals = Vec::new();
            for tag in ["docker", "arm"] {
                let found = list(app, ADMIN, &format!("/api/v4/runners/all?tag_list={tag}"))
                    .await
                    .expect(200);
                totals.push(total(&found));
            }
            totals
        }
    };
    assert_eq!(totals().await, [0, 1]);
    // As if the retag had committed with its count changes in an outbox and then stopped:
    // the counts as before it, and the changes waiting.
    let change = |tag: &str, delta: i64| {
        let (pk, sk) = keys::runner_facet_count(&format!("tag:{tag}"), id);
        AttributeValue::M(
            [
                ("pk".to_owned(), AttributeValue::S(pk)),
                ("sk".to_owned(), AttributeValue::S(sk)),
                (
                    "add".to_owned(),
                    AttributeValue::M(
                        [(
                            "instance_type".to_owned(),
                            AttributeValue::N(delta.to_string()),
                        )]
                        .into(),
                    ),
                ),
            ]
            .into(),
        )
    };
    for (tag, delta) in [("docker", 1), ("arm", -1)] {
        app.store
            .client()
            .update_item()
            .table_name(app.store.table())
            .set_key(Some(runners_shared::store::item::key_of(
                keys::runner_facet_count(&format!("tag:{tag}"), id),
            )))
            .update_expression("ADD instance_type :d")
            .expression_attribute_values(":d", AttributeValue::N(delta.to_string()))
            .send()
            .await
            .expect("a count undone");
    }
    let now = runners_shared::time::Timestamp::now();
    let outbox = |at: i64, changes: Vec<AttributeValue>| {
        [
            (
                "pk".to_owned(),
                AttributeValue::S(keys::LISTING_OUTBOX.into()),
            ),
            (
                "sk".to_owned(),
                AttributeValue::S(format!("{}#{:016x}", keys::padded(at), at)),
            ),
            ("counts".to_owned(), AttributeValue::L(changes)),
        ]
        .into()
    };
    let abandoned = outbox(
        now.millis() - 120_000,
        vec![change("docker", -1), change("arm", 1)],
    );
    // A write's own outbox, a moment old: that write applies it, not the sweeper.
    let fresh = outbox(now.millis() - 1_000, vec![change("docker", 0)]);
    for item in [abandoned, fresh] {
        app.store
            .client()
            .put_item()
            .table_name(app.store.table())
            .set_item(Some(item))
            .send()
            .await
            .expect("an outbox item");
    }
    assert_eq!(totals().await, [1, 0], "the counts as the write left them");
    let report = runners_shared::sweeper::sweep(&app.store, now)
        .await
        .unwrap();
    assert_eq!(report.listing_outboxes_applied, 1);
    assert_eq!(totals().await, [0, 1]);
    assert_eq!(
        partition(&app, keys::LISTING_OUTBOX).await.len(),
        1,
        "the fresh one is left to its write"
    );
    let again = runners_shared::sweeper::sweep(&app.store, now)
        .await
        .unwrap();
    assert_eq!(again.listing_outboxes_applied, 0, "applied once");
    assert_eq!(totals().await, [0, 1]);
}

/// Makes a runner's token item as it was before tokens kept `attribute`.
async fn forget_on_token(
    app: &TestApp,
    digest: &runners_shared::auth::TokenDigest,
    attribute: &str,
) {
    app.store
        .client()
        .update_item()
        .table_name(app.store.table())
        .set_key(Some(runners_shared::store::item::key_of(keys::token(
            digest.as_str(),
        ))))
        .update_expression(format!("REMOVE {attribute}"))
        .send()
        .await
        .expect("an older token item");
}

/// A world of one admin and one group holding project 10, with these runners.
fn one_project_world(runners: Value) -> Value {
    json!({
        "settings": {"runners_registration_token": "instance-registration"},
        "users": [{"id": 1, "username": "admin", "admin": true, "tokens": [{"token": ADMIN}]}],
        "groups": [{"id": 1, "name": "Root", "path": "root"}],
        "projects": [{"id": 10, "name": "A", "path": "a", "namespace_id": 1}],
        "runners": runners
    })
}

/// The ids of `/runners/all?{query}` as the admin, checked to come within `round_trips` with a
/// total that agrees.
async fn listed_within(app: &TestApp, query: &str, round_trips: u32) -> Vec<i64> {
    let found = list(app, ADMIN, &format!("/api/v4/runners/all?{query}"))
        .await
        .expect(200);
    assert!(
        found.usage.round_trips <= round_trips,
        "{query}: {:?}",
        found.usage
    );
    assert_eq!(total(&found), ids(&found).len(), "{query}");
    ids(&found)
}

#[tokio::test]
async fn runners_go_online_with_a_heartbeat_and_offline_when_the_timeout_passes() {
    let now = runners_shared::time::Timestamp::now().millis();
    let ago = |ms: i64| runners_shared::time::Timestamp::from_millis(now - ms).to_string();
    // The runner contacted an hour less 12 seconds ago goes offline during the test, with no
    // write: it is counted from its contact entry, then no more.
    let app = app_seeded(one_project_world(json!([
        {"id": 1, "token": "r1", "runner_type": "instance_type", "contacted_at": ago(120 * MINUTE)},
        {"id": 2, "token": "r2", "runner_type": "instance_type"},
        {"id": 3, "token": "r3", "runner_type": "project_type", "projects": [10],
         "contacted_at": ago(60 * MINUTE - 12_000)},
        {"id": 4, "token": "r4", "runner_type": "instance_type", "contacted_at": ago(10 * MINUTE)},
        {"id": 1_500, "token": "r1500", "runner_type": "instance_type", "contacted_at": ago(MINUTE)}
    ])))
    .await;
    let listed = |query: &'static str| listed_within(&app, query, 3);
    assert_eq!(listed("status=online").await, [3, 4, 1_500]);
    assert_eq!(listed("status=offline").await, [1, 2]);
    assert_eq!(listed("status=online&type=project_type").await, [3]);

    // A heartbeat after two hours, and a first one.
    for token in ["r1", "r2"] {
        assert_eq!(verify(&app, token).await, 200);
    }
    assert_eq!(listed("status=online").await, [1, 2, 3, 4, 1_500]);
    assert_eq!(listed("status=offline").await, Vec::<i64>::new());
    assert_eq!(listed("status=never_contacted").await, Vec::<i64>::new());

    // Enabling an online instance runner in a project moves its contact to the project type;
    // deleting one takes it out.
    app.post("/api/v4/projects/10/runners")
        .header("PRIVATE-TOKEN", ADMIN)
        .json(json!({"runner_id": 4}))
        .send()
        .await
        .expect(201);
    assert_eq!(listed("status=online&type=project_type").await, [3, 4]);
    assert_eq!(
        listed("status=online&type=instance_type").await,
        [1, 2, 1_500]
    );
    app.delete("/api/v4/runners/1")
        .header("PRIVATE-TOKEN", ADMIN)
        .send()
        .await
        .expect(204);
    assert_eq!(listed("status=online&type=instance_type").await, [2, 1_500]);

    // The hour passes for runner 3.
    // Its last contact was `now - (hour - 12 s)`: it goes offline at `now + 12 s`.
    let wait = now + 12_500 - runners_shared::time::Timestamp::now().millis();
    tokio::time::sleep(std::time::Duration::from_millis(wait.max(0) as u64)).await;
    assert_eq!(listed("status=online").await, [2, 4, 1_500]);
    assert_eq!(listed("status=offline").await, [3]);
    let project = list(&app, ADMIN, "/api/v4/projects/10/runners?status=offline")
        .await
        .expect(200);
    assert_eq!(ids(&project), [3]);
    assert!(project.usage.round_trips <= 4, "{:?}", project.usage);
    // A runner's own heartbeats at the same time all land, and keep it counted once.
    let beats = futures_util::future::join_all((0..6).map(|_| verify(&app, "r3"))).await;
    assert!(beats.iter().all(|status| *status == 200), "{beats:?}");
    assert_eq!(listed("status=online").await, [2, 3, 4, 1_500]);
    assert_eq!(listed("").await, [2, 3, 4, 1_500]); // Heartbeats moved the runners between spans, days and versions in the sets too.
    assert_member_sets_hold_what_is_counted(&app).await;
}

#[tokio::test]
async fn a_runner_with_every_link_it_may_have_and_fifty_tags_is_deleted_with_its_counts() {
    // 97 links leave one action of the delete's transaction: every count change goes to one
    // outbox item, and the contact entry and facet entries follow the commit.
    let projects: Vec<Value> = (1..=97)
        .map(|p| json!({"id": 100 + p, "name": format!("P{p}"), "path": format!("p{p}"), "namespace_id": 1}))
        .collect();
    let tags: Vec<String> = (0..50).map(|i| format!("t{i}")).collect();
    let contacted = runners_shared::time::Timestamp::now().to_string();
    let app = app_seeded(json!({
        "users": [{"id": 1, "username": "admin", "admin": true, "tokens": [{"token": ADMIN}]}],
        "groups": [{"id": 1, "name": "Root", "path": "root"}],
        "projects": projects,
        "runners": [
            {"id": 7, "token": "r7", "runner_type": "project_type", "tag_list": tags,
             "projects": (101..=197).collect::<Vec<i64>>(), "contacted_at": contacted},
            {"id": 8, "token": "r8", "runner_type": "instance_type", "tag_list": ["t0"],
             "contacted_at": contacted}
        ]
    }))
    .await;
    assert_eq!(all_runners(&app, "status=online").await, (vec![7, 8], 2));
    assert_eq!(all_runners(&app, "tag_list=t0").await, (vec![7, 8], 2));
    app.delete("/api/v4/runners/7")
        .header("PRIVATE-TOKEN", ADMIN)
        .send()
        .await
        .expect(204);
    for query in ["", "status=online", "tag_list=t0", "status=active"] {
        assert_eq!(all_runners(&app, query).await, (vec![8], 1), "{query}");
    }
    assert_eq!(all_runners(&app, "tag_list=t49").await, (vec![], 0));
    assert!(partition(&app, keys::LISTING_OUTBOX).await.is_empty());
    assert!(
        partition(&app, &keys::runner_contact("project_type", 7).0)
            .await
            .is_empty(),
        "the contact entry went after the commit"
    );
}

#[tokio::test]
async fn runners_leave_stale_with_a_heartbeat_and_go_stale_when_a_week_passes() {
    let now = runners_shared::time::Timestamp::now().millis();
    let ago = |ms: i64| runners_shared::time::Timestamp::from_millis(now - ms).to_string();
    // Runners 3 (contacted) and 4 (never, created) were last seen a week less 12 seconds ago:
    // they go stale during the test, with no write, found from the entries of the day
    // holding the threshold (or, if the threshold starts its day, from that day's counts).
    let app = app_seeded(one_project_world(json!([
        {"id": 1, "token": "r1", "runner_type": "instance_type", "contacted_at": ago(8 * WEEK / 7)},
        {"id": 2, "token": "r2", "runner_type": "instance_type", "created_at": ago(10 * WEEK / 7)},
        {"id": 3, "token": "r3", "runner_type": "project_type", "projects": [10],
         "contacted_at": ago(WEEK - 12_000)},
        {"id": 4, "token": "r4", "runner_type": "instance_type", "created_at": ago(WEEK - 12_000)},
        {"id": 5, "token": "r5", "runner_type": "instance_type", "created_at": ago(WEEK - 12_000)},
        {"id": 1_500, "token": "r1500", "runner_type": "instance_type", "contacted_at": ago(MINUTE)}
    ])))
    .await;
    let listed = |query: &'static str| listed_within(&app, query, 3);
    assert_eq!(listed("status=stale").await, [1, 2]);
    assert_eq!(
        listed("status=stale&type=project_type").await,
        Vec::<i64>::new()
    );

    // A heartbeat after eight days, and a first one after ten: both seen now. Runner 2's
    // token item is from before tokens kept their runner's creation: its heartbeat reads the
    // runner, and the token learns it.
    let digest = runners_shared::auth::TokenDigest::of("r2");
    forget_on_token(&app, &digest, "runner_created_at").await;
    for token in ["r1", "r2"] {
        assert_eq!(verify(&app, token).await, 200);
    }
    assert_eq!(listed("status=stale").await, Vec::<i64>::new());
    assert_eq!(listed("").await, [1, 2, 3, 4, 5, 1_500]);
    let token = app.store.find_token(&digest).await.unwrap();
    assert!(
        matches!(
            token,
            Some(runners_shared::store::TokenRecord::Runner {
                runner_created_at: Some(_),
                ..
            })
        ),
        "{token:?}"
    );

    // A registered runner is not stale; enabling runner 4 in a project moves its last-seen
    // count to the project type; deleting runner 5 takes it out.
    app.post("/api/v4/projects/10/runners")
        .header("PRIVATE-TOKEN", ADMIN)
        .json(json!({"runner_id": 4}))
        .send()
        .await
        .expect(201);
    app.delete("/api/v4/runners/5")
        .header("PRIVATE-TOKEN", ADMIN)
        .send()
        .await
        .expect(204);

    // The week passes for runners 3 and 4.
    let wait = now + 12_500 - runners_shared::time::Timestamp::now().millis();
    tokio::time::sleep(std::time::Duration::from_millis(wait.max(0) as u64)).await;
    assert_eq!(listed("status=stale").await, [3, 4]);
    assert_eq!(listed("status=stale&type=project_type").await, [3, 4]);
    assert_eq!(
        listed("status=stale&type=instance_type").await,
        Vec::<i64>::new()
    );
    let project = list(&app, ADMIN, "/api/v4/projects/10/runners?status=stale")
        .await
        .expect(200);
    assert_eq!(ids(&project), [3, 4]);
    assert!(project.usage.round_trips <= 4, "{:?}", project.usage);
    // Their first heartbeats after it: fresh again, counted once.
    for token in ["r3", "r4"] {
        assert_eq!(verify(&app, token).await, 200);
    }
    assert_eq!(listed("status=stale").await, Vec::<i64>::new());
    assert_eq!(listed("status=never_contacted").await, Vec::<i64>::new());
    assert_eq!(listed("").await, [1, 2, 3, 4, 1_500]); // Heartbeats moved the runners between spans, days and versions in the sets too.
    assert_member_sets_hold_what_is_counted(&app).await;
}

#[tokio::test]
async fn version_prefix_lists_follow_the_versions_runners_report() {
    // Every heartbeat written, so that a runner can report one version after another.
    let settings = runners_shared::Settings {
        heartbeat_interval_secs: 0,
        ..runners_shared::Settings::default()
    };
    let app = TestApp::with_settings(settings, |state| {
        project_runners::router(state.clone())
            .merge(runner_management::router(state.clone()))
            .merge(runner_token::router(state))
    })
    .await;
    app.seed(one_project_world(json!([
            {"id": 1, "token": "r1", "runner_type": "instance_type", "version": "15.1.2"},
            {"id": 2, "token": "r2", "runner_type": "instance_type", "version": "15.10.0"},
            {"id": 3, "token": "r3", "runner_type": "project_type", "projects": [10], "version": "16.0.0"},
            {"id": 4, "token": "r4", "runner_type": "instance_type"}
    ])))
    .await;
    let listed = |query: String, round_trips: u32| {
        let app = &app;
        async move { listed_within(app, &query, round_trips).await }
    };
    let prefix = |p: &str| format!("version_prefix={p}");
    assert_eq!(listed(prefix("15"), 3).await, [1, 2]);
    assert_eq!(listed(prefix("15.1."), 3).await, [1]);
    assert_eq!(listed(prefix("16&type=project_type"), 3).await, [3]);
    assert_eq!(listed(prefix("15.1.2.0"), 10).await, Vec::<i64>::new());

    // Registered with a version; an upgrade, a first version and the same version reported.
    let registered = app
        .post("/api/v4/runners")
        .json(json!({"token": "instance-registration", "info": {"version": "15.1.9"}}))
        .send()
        .await
        .expect(201);
    let registered = registered.body["id"].as_i64().expect("an id");
    let verify_as = |token: &'static str, version: &'static str| {
        let app = &app;
        async move {
            app.post("/api/v4/runners/verify")
                .json(json!({"token": token, "info": {"version": version}}))
                .send()
                .await
                .expect(200)
                .usage
        }
    };
    // The token knows the version: the token, then the heartbeat, whether the version moves
    // or not.
    for (token, version) in [("r2", "15.10.0"), ("r1", "16.0.1"), ("r4", "15.1.7")] {
        let usage = verify_as(token, version).await;
        assert_eq!((usage.round_trips, usage.calls), (2, 2), "{token}");
    }
    assert_eq!(listed(prefix("15"), 3).await, [2, 4, registered]);
    assert_eq!(listed(prefix("15.1"), 3).await, [4, registered]);
    assert_eq!(listed(prefix("16"), 3).await, [1, 3]);
    assert_eq!(listed(prefix("16.0.1"), 3).await, [1]);
    // With another criterion: intersected.
    assert_eq!(
        listed(format!("{}&status=online", prefix("15")), 4).await,
        [2, 4]
    );

    // A token item from before tokens kept the version: the same version costs nothing more;
    // another is found by the heartbeat's condition, and the runner read.
    let digest = runners_shared::auth::TokenDigest::of("r2");
    forget_on_token(&app, &digest, "runner_version").await;
    let same = verify_as("r2", "15.10.0").await;
    assert_eq!((same.round_trips, same.calls), (2, 2));
    forget_on_token(&app, &digest, "runner_version").await;
    let upgraded = verify_as("r2", "16.1.0").await;
    assert_eq!((upgraded.round_trips, upgraded.calls), (4, 4));
    assert_eq!(listed(prefix("16"), 3).await, [1, 2, 3]);
    assert_eq!(listed(prefix("15.10"), 3).await, Vec::<i64>::new());

    // Two hosts of runner 3 reporting different versions at once: whichever lands last, the
    // runner is listed under its version and no other.
    let beats = futures_util::future::join_all(
        (0..4).map(|i| verify_as("r3", if i % 2 == 0 { "16.0.0" } else { "17.2.0" })),
    )
    .await;
    assert_eq!(beats.len(), 4);
    let details = list(&app, ADMIN, "/api/v4/runners/3").await.expect(200);
    let version = details.body["version"]
        .as_str()
        .expect("a version")
        .to_owned();
    let major = version.split('.').next().unwrap().to_owned();
    let other = if major == "16" { "17" } else { "16" };
    assert!(listed(prefix(&major), 3).await.contains(&3), "{version}");
    assert!(!listed(prefix(other), 3).await.contains(&3), "{version}");
    assert_eq!(listed(prefix(&version), 3).await, [3]); // Heartbeats moved the runners between spans, days and versions in the sets too.
    assert_member_sets_hold_what_is_counted(&app).await;
}

/// Removes the member sets of every facet count item, as a table written before them has
/// none.
async fn strip_member_sets(app: &TestApp) {
    let client = app.store.client();
    for item in partition(app, keys::RUNNER_FACET_COUNTS).await {
        let key: std::collections::HashMap<String, AttributeValue> = ["pk", "sk"]
            .into_iter()
            .map(|name| (name.to_owned(), item[name].clone()))
            .collect();
        client
            .update_item()
            .table_name(app.store.table())
            .set_key(Some(key))
            .update_expression("REMOVE instance_type_ids, group_type_ids, project_type_ids")
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_projects_list_on_criteria_that_each_match_many_instance_runners_intersects_their_sets() {
    // 1,100 instance runners with both tags, a few with a third: the instance runners that
    // meet every criterion come from the member sets of the criteria's counts, beside the
    // links, whatever their number.
    let mut runners: Vec<Value> = (1..=1_100)
        .map(|id| {
            let tags = if id % 250 == 0 {
                json!(["docker", "linux", "gpu"])
            } else {
                json!(["docker", "linux"])
            };
            json!({"id": id, "token": format!("r{id}"), "runner_type": "instance_type",
                   "tag_list": tags, "active": id % 7 != 0})
        })
        .collect();
    runners.push(
        json!({"id": 5_000, "token": "own", "runner_type": "project_type",
                        "projects": [10], "tag_list": ["linux", "docker"]}),
    );
    runners.push(
        json!({"id": 5_001, "token": "other", "runner_type": "project_type",
                        "projects": [10], "tag_list": ["linux"]}),
    );
    let app = app_seeded(one_project_world(json!(runners))).await;
    let both: Vec<i64> = (1..=1_100).chain([5_000]).collect();
    let active: Vec<i64> = both.iter().copied().filter(|id| id % 7 != 0).collect();
    let checks = |round_trips: u32| {
        let (app, both, active) = (&app, &both, &active);
        async move {
            for page in [1, 6, 12] {
                check_page(
                    app,
                    ADMIN,
                    "/api/v4/projects/10/runners?tag_list=docker,linux",
                    both,
                    page,
                    100,
                    round_trips,
                )
                .await;
            }
            for page in [1, 5, 10] {
                check_page(
                    app,
                    ADMIN,
                    "/api/v4/projects/10/runners?tag_list=docker,linux&paused=false",
                    active,
                    page,
                    100,
                    round_trips,
                )
                .await;
            }
            check_page(
                app,
                ADMIN,
                "/api/v4/projects/10/runners?tag_list=docker,gpu",
                &[250, 500, 750, 1_000],
                1,
                100,
                round_trips,
            )
            .await;
        }
    };
    // Token; links and sets; the project's own runners; the page's.
    checks(4).await;
    let meeting = || async {
        let docker_gpu = ["docker", "gpu"].map(|tag| {
            runners_shared::runner_filter::Criterion::Facet(
                runners_shared::runner_filter::Facet::Tag(tag.to_owned()),
            )
        });
        let instance = [runners_shared::runner::RunnerType::Instance];
        app.store
            .runners_meeting(&instance, &docker_gpu)
            .await
            .unwrap()
    };
    assert_eq!(meeting().await, Some(vec![250, 500, 750, 1_000]));
    // A table written before member sets (a count and no set) walks, and answers the same;
    // rebuilding the lists fills the sets.
    strip_member_sets(&app).await;
    assert_eq!(meeting().await, None);
    checks(12).await;
    runners_shared::admin::listing::rebuild_listing(
        &app.store,
        runners_shared::admin::listing::JobCounts::Skip,
    )
    .await
    .unwrap();
    assert_eq!(meeting().await, Some(vec![250, 500, 750, 1_000]));
    checks(4).await;
}

#[tokio::test]
async fn an_owned_list_on_criteria_finds_every_match_past_the_first_ten_thousand_candidates() {
    // The Owner of group 1 owns 10,500 project runners of project 10: more candidates than a
    // page reads (10,001). One in 250 is tagged gpu, two of them past the 10,001st; so are an
    // instance runner and a runner of another group's project, which the Owner does not own.
    let mut runners: Vec<Value> = (1..=10_500)
        .map(|id| {
            let mut runner = json!({"id": id, "token": format!("r{id}"),
                                    "runner_type": "project_type", "projects": [10],
                                    "tag_list": ["linux"]});
            if id % 250 == 0 {
                runner["tag_list"] = json!(["linux", "gpu"]);
            }
            if id % 500 == 0 || id == 10_300 || id == 10_400 {
                runner["tag_list"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("cuda"));
            }
            runner
        })
        .collect();
    // 1,100 runners of the other group's project tagged cuda, all past the candidates, none
    // the Owner's.
    runners.extend((11_001..=12_100).map(|id| {
        json!({"id": id, "token": format!("r{id}"), "runner_type": "project_type",
               "projects": [11], "tag_list": ["cuda"]})
    }));
    runners.push(
        json!({"id": 10_600, "token": "instance", "runner_type": "instance_type",
                        "tag_list": ["gpu", "linux"]}),
    );
    runners.push(
        json!({"id": 10_700, "token": "theirs", "runner_type": "project_type",
                        "projects": [11], "tag_list": ["gpu", "linux"]}),
    );
    // Two group runners of the Owner's group, and one of the other group.
    for (id, group) in [(10_800, 1), (10_801, 1), (10_802, 2)] {
        runners.push(
            json!({"id": id, "token": format!("g{id}"), "runner_type": "group_type",
                            "groups": [group]}),
        );
    }
    let app = app_seeded(json!({
        "users": [
            {"id": 1, "username": "admin", "admin": true, "tokens": [{"token": ADMIN}]},
            {"id": 2, "username": "owner", "tokens": [{"token": OWNER}]}
        ],
        "groups": [
            {"id": 1, "name": "Mine", "path": "mine", "members": [{"user_id": 2, "access_level": 50}]},
            {"id": 2, "name": "Theirs", "path": "theirs"}
        ],
        "projects": [
            {"id": 10, "name": "A", "path": "a", "namespace_id": 1},
            {"id": 11, "name": "B", "path": "b", "namespace_id": 2}
        ],
        "runners": runners
    }))
    .await;
    let expected: Vec<i64> = (1..=42).map(|n| n * 250).collect();
    for query in ["tag_list=gpu", "tag_list=gpu,linux"] {
        for page in [1, 2, 3] {
            check_page(
                &app,
                OWNER,
                &format!("/api/v4/runners?{query}"),
                &expected,
                page,
                20,
                4,
            )
            .await;
        }
    }
    let mut cuda: Vec<i64> = (1..=21).map(|n| n * 500).chain([10_300, 10_400]).collect();
    cuda.sort_unstable();
    for page in [1, 2, 3] {
        check_page(
            &app,
            OWNER,
            "/api/v4/runners?tag_list=cuda",
            &cuda,
            page,
            10,
            4,
        )
        .await;
    }
    // A criterion every candidate meets, and others' runners too: every match is listed,
    // past the first 10,001 candidates as well, with the exact total.
    let linux: Vec<i64> = (1..=10_500).collect();
    for page in [1, 263, 525] {
        check_page(
            &app,
            OWNER,
            "/api/v4/runners?tag_list=linux",
            &linux,
            page,
            20,
            4,
        )
        .await;
    }
    // Types alone: the runners of one owned type, from every runner's set of that type.
    for (query, expected) in [
        ("type=project_type", linux.clone()),
        ("type=group_type", vec![10_800, 10_801]),
        ("", linux.iter().copied().chain([10_800, 10_801]).collect()),
        ("type=instance_type", Vec::new()),
    ] {
        let last = expected.len().div_ceil(100).max(1);
        for page in [1, last] {
            check_page(
                &app,
                OWNER,
                &format!("/api/v4/runners?{query}"),
                &expected,
                page,
                100,
                4,
            )
            .await;
        }
    }
    let last = linux.len().div_ceil(100);
    for page in [1, last] {
        check_page(
            &app,
            OWNER,
            "/api/v4/runners?tag_list=linux&status=never_contacted",
            &linux,
            page,
            100,
            4,
        )
        .await;
    }
}
