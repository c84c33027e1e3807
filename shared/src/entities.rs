//! The JSON the API returns, field for field as GitLab 12 (plus the spec's additive fields).

use crate::runner::Runner;
use crate::time::Timestamp;
use serde::Serialize;

/// `POST /runners` (201) and `POST /runners/verify` (200).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct RunnerRegistrationDetails {
    pub id: i64,
    pub token: String,
    pub token_expires_at: Option<Timestamp>,
}

/// A runner in lists and in the `POST /projects/:id/runners` answer.
#[derive(Debug, Serialize)]
pub struct RunnerEntity<'a> {
    pub id: i64,
    pub description: Option<&'a str>,
    pub ip_address: Option<&'a str>,
    pub active: bool,
    pub paused: bool,
    pub is_shared: bool,
    pub runner_type: &'static str,
    pub name: Option<&'a str>,
    pub online: Option<bool>,
    pub status: &'static str,
}

impl<'a> RunnerEntity<'a> {
    pub fn new(runner: &'a Runner, now: Timestamp, online_timeout_secs: i64) -> Self {
        Self {
            id: runner.id,
            description: runner.description.as_deref(),
            ip_address: runner.ip_address.as_deref(),
            active: runner.active,
            paused: !runner.active,
            is_shared: runner.is_shared(),
            runner_type: runner.runner_type.as_str(),
            name: runner.info.name.as_deref(),
            online: runner.online(now, online_timeout_secs),
            status: runner.status(now, online_timeout_secs).as_str(),
        }
    }
}

/// A project as it appears in `RunnerDetails.projects`.
#[derive(Debug, Serialize, Clone, PartialEq, Eq)]
pub struct ProjectSummary {
    pub id: i64,
    pub description: Option<String>,
    pub name: String,
    pub name_with_namespace: String,
    pub path: String,
    pub path_with_namespace: String,
    pub created_at: Timestamp,
}

/// A group as it appears in `RunnerDetails.groups`.
#[derive(Debug, Serialize, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    pub id: i64,
    pub name: String,
    pub web_url: String,
}

/// `GET/PUT /runners/:id`. No `token` (see the README's divergences).
#[derive(Debug, Serialize)]
pub struct RunnerDetailsEntity<'a> {
    #[serde(flatten)]
    pub runner: RunnerEntity<'a>,
    pub tag_list: &'a [String],
    pub run_untagged: bool,
    pub locked: bool,
    pub maximum_timeout: Option<i64>,
    pub access_level: &'static str,
    pub version: Option<&'a str>,
    pub revision: Option<&'a str>,
    pub platform: Option<&'a str>,
    pub architecture: Option<&'a str>,
    pub contacted_at: Option<Timestamp>,
    pub projects: Vec<ProjectSummary>,
    pub groups: Vec<GroupSummary>,
}

impl<'a> RunnerDetailsEntity<'a> {
    pub fn new(
        runner: &'a Runner,
        now: Timestamp,
        online_timeout_secs: i64,
        projects: Vec<ProjectSummary>,
        groups: Vec<GroupSummary>,
    ) -> Self {
        Self {
            runner: RunnerEntity::new(runner, now, online_timeout_secs),
            tag_list: &runner.tag_list,
            run_untagged: runner.run_untagged,
            locked: runner.locked,
            maximum_timeout: runner.maximum_timeout,
            access_level: runner.access_level.as_str(),
            version: runner.info.version.as_deref(),
            revision: runner.info.revision.as_deref(),
            platform: runner.info.platform.as_deref(),
            architecture: runner.info.architecture.as_deref(),
            contacted_at: runner.contacted_at,
            projects,
            groups,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenDigest;
    use crate::runner::RunnerType;
    use serde_json::json;

    fn runner() -> Runner {
        let mut r = Runner::new(
            6,
            RunnerType::Project,
            TokenDigest::of("t"),
            Timestamp::from_millis(0),
        );
        r.description = Some("test-1-20150125".into());
        r.ip_address = Some("127.0.0.1".into());
        r.tag_list = vec!["ruby".into(), "mysql".into()];
        r.contacted_at = Timestamp::parse("2016-01-25T16:39:48.066Z");
        r.info.name = Some("gitlab-runner".into());
        r.info.version = Some("12.0.0".into());
        r
    }

    #[test]
    fn registration_answer() {
        let answer = RunnerRegistrationDetails {
            id: 12345,
            token: "6337ff461c94fd3fa32ba3b1ff4125".into(),
            token_expires_at: None,
        };
        assert_eq!(
            serde_json::to_string(&answer).unwrap(),
            r#"{"id":12345,"token":"6337ff461c94fd3fa32ba3b1ff4125","token_expires_at":null}"#
        );
    }

    #[test]
    fn runner_list_item_keys_order_and_types() {
        let r = runner();
        let now = Timestamp::parse("2016-01-25T17:00:00.000Z").unwrap();
        let value = serde_json::to_value(RunnerEntity::new(&r, now, 3600)).unwrap();
        assert_eq!(
            value,
            json!({"id": 6, "description": "test-1-20150125", "ip_address": "127.0.0.1", "active": true,
                   "paused": false, "is_shared": false, "runner_type": "project_type", "name": "gitlab-runner",
                   "online": true, "status": "online"})
        );
        let text = serde_json::to_string(&RunnerEntity::new(&r, now, 3600)).unwrap();
        assert!(
            text.starts_with(r#"{"id":6,"description":"#),
            "GitLab's key order: {text}"
        );
    }

    #[test]
    fn never_contacted_runner_is_null_online_and_not_connected() {
        let mut r = runner();
        r.contacted_at = None;
        let value = serde_json::to_value(RunnerEntity::new(&r, Timestamp::now(), 3600)).unwrap();
        assert_eq!(value["online"], json!(null));
        assert_eq!(value["status"], json!("not_connected"));
    }

    #[test]
    fn runner_details() {
        let r = runner();
        let now = Timestamp::parse("2016-01-25T17:00:00.000Z").unwrap();
        let project = ProjectSummary {
            id: 1,
            description: None,
            name: "GitLab Community Edition".into(),
            name_with_namespace: "GitLab.org / GitLab Community Edition".into(),
            path: "gitlab-ce".into(),
            path_with_namespace: "gitlab-org/gitlab-ce".into(),
            created_at: Timestamp::from_millis(0),
        };
        let value = serde_json::to_value(RunnerDetailsEntity::new(
            &r,
            now,
            3600,
            vec![project],
            vec![],
        ))
        .unwrap();
        assert_eq!(value["tag_list"], json!(["ruby", "mysql"]));
        assert_eq!(value["maximum_timeout"], json!(null));
        assert_eq!(value["access_level"], json!("not_protected"));
        assert_eq!(value["contacted_at"], json!("2016-01-25T16:39:48.066Z"));
        assert_eq!(value["version"], json!("12.0.0"));
        assert_eq!(value["platform"], json!(null));
        assert_eq!(
            value["projects"][0]["path_with_namespace"],
            json!("gitlab-org/gitlab-ce")
        );
        assert_eq!(
            value["projects"][0]["created_at"],
            json!("1970-01-01T00:00:00.000Z")
        );
        assert_eq!(value["groups"], json!([]));
        assert!(
            value.get("token").is_none(),
            "tokens are never returned after registration"
        );
        assert_eq!(value["id"], json!(6));
    }
}
