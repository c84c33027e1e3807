//! What RunnerDetails gained since 12.x (modern-runners.md, "Entities and filters"), beside the
//! 12.x keys, which keep their order: `created_at`, `maintenance_note` (to those who may update
//! the runner), `job_execution_status` and `token_expires_at`.

mod common;
use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn details_show_the_modern_fields_after_the_12x_ones() {
    let mut world = world_with_runners(json!([
        {"id": 61, "token": "t61", "runner_type": "project_type", "projects": [100],
         "maintenance_note": "rack 7, ask ops", "created_at": "2020-05-01T10:00:00.000Z"}
    ]));
    world["runners"][0]["maintenance_note"] = json!("instance note");
    let app = app_with(world).await;

    let shown = get(&app, USER, "/api/v4/runners/61").await.expect(200);
    let keys: Vec<&str> = shown
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let tail = &keys[keys.len() - 6..];
    assert_eq!(
        tail,
        [
            "projects",
            "groups",
            "created_at",
            "maintenance_note",
            "job_execution_status",
            "token_expires_at"
        ]
    );
    assert_eq!(shown.body["created_at"], "2020-05-01T10:00:00.000Z");
    assert_eq!(shown.body["maintenance_note"], "rack 7, ask ops");
    assert_eq!(shown.body["job_execution_status"], "idle");
    assert_eq!(shown.body["token_expires_at"], Value::Null);
    assert!(shown.usage.round_trips <= 3, "{:?}", shown.usage);

    // Any user may read an instance runner, but only who may update it sees its note.
    let shared = get(&app, USER2, &format!("/api/v4/runners/{SHARED}"))
        .await
        .expect(200);
    assert_eq!(shared.body["maintenance_note"], Value::Null);
    let shared = get(&app, ADMIN, &format!("/api/v4/runners/{SHARED}"))
        .await
        .expect(200);
    assert_eq!(shared.body["maintenance_note"], "instance note");
    // Job 1004 of the fixture runs on the project runner.
    let busy = get(&app, USER, &format!("/api/v4/runners/{PROJECT_RUNNER}"))
        .await
        .expect(200);
    assert_eq!(busy.body["job_execution_status"], "active");
    let updated = app
        .put("/api/v4/runners/61")
        .header("PRIVATE-TOKEN", ADMIN)
        .json(json!({"maintenance_note": "moved to rack 8"}))
        .send()
        .await
        .expect(200);
    assert_eq!(updated.body["maintenance_note"], "moved to rack 8");
    assert_eq!(updated.body["job_execution_status"], "idle");
}
