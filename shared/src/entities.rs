//! The JSON the API returns, field for field as GitLab 12 (plus the spec's additive fields).

use crate::runner::{GroupRef, ProjectRef, Runner, RunnerManager};
use crate::store::directory::{Job, User};
use crate::time::Timestamp;
use serde::Serialize;

/// `POST /runners` (201) and `POST /runners/verify` (200).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct RunnerRegistrationDetails {
    pub id: i64,
    pub token: String,
    pub token_expires_at: Option<Timestamp>,
}

/// `POST /runners/:id/reset_authentication_token` and `POST /runners/reset_authentication_token`:
/// the new runner token, shown once.
#[derive(Debug, Serialize)]
pub struct ResetTokenResult {
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

/// A runner manager in `GET /runners/:id/managers`.
#[derive(Debug, Serialize)]
pub struct RunnerManagerEntity<'a> {
    pub id: i64,
    pub system_id: &'a str,
    pub version: Option<&'a str>,
    pub revision: Option<&'a str>,
    pub platform: Option<&'a str>,
    pub architecture: Option<&'a str>,
    pub created_at: Timestamp,
    pub contacted_at: Option<Timestamp>,
    pub ip_address: Option<&'a str>,
    pub status: &'static str,
}

impl<'a> RunnerManagerEntity<'a> {
    pub fn new(manager: &'a RunnerManager, now: Timestamp, online_timeout_secs: i64) -> Self {
        Self {
            id: manager.id,
            system_id: &manager.system_id,
            version: manager.info.version.as_deref(),
            revision: manager.info.revision.as_deref(),
            platform: manager.info.platform.as_deref(),
            architecture: manager.info.architecture.as_deref(),
            created_at: manager.created_at,
            contacted_at: manager.contacted_at,
            ip_address: manager.ip_address.as_deref(),
            status: manager.status(now, online_timeout_secs),
        }
    }
}

/// A project as it appears in `RunnerDetails.projects`.
#[derive(Debug, Serialize)]
pub struct ProjectSummary<'a> {
    pub id: i64,
    pub description: Option<&'a str>,
    pub name: &'a str,
    pub name_with_namespace: &'a str,
    pub path: &'a str,
    pub path_with_namespace: &'a str,
    pub created_at: Timestamp,
}

impl<'a> From<&'a ProjectRef> for ProjectSummary<'a> {
    fn from(p: &'a ProjectRef) -> Self {
        Self {
            id: p.id,
            description: p.description.as_deref(),
            name: &p.name,
            name_with_namespace: &p.name_with_namespace,
            path: &p.path,
            path_with_namespace: &p.path_with_namespace,
            created_at: p.created_at,
        }
    }
}

/// A group as it appears in `RunnerDetails.groups`.
#[derive(Debug, Serialize)]
pub struct GroupSummary<'a> {
    pub id: i64,
    pub name: &'a str,
    pub web_url: String,
}

impl<'a> GroupSummary<'a> {
    pub fn new(group: &'a GroupRef, base_url: &str) -> Self {
        Self {
            id: group.id,
            name: &group.name,
            web_url: format!("{base_url}/groups/{}", group.full_path),
        }
    }
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
    pub projects: Vec<ProjectSummary<'a>>,
    pub groups: Vec<GroupSummary<'a>>,
    pub created_at: Timestamp,
    /// Shown only to those who may update the runner (`null` to others), as GitLab does.
    pub maintenance_note: Option<&'a str>,
    /// `active` while a job runs on the runner, else `idle`.
    pub job_execution_status: &'static str,
    pub token_expires_at: Option<Timestamp>,
}

impl<'a> RunnerDetailsEntity<'a> {
    /// `projects` and `groups` are those the caller may see (see `access::visible_*`).
    pub fn new(
        runner: &'a Runner,
        now: Timestamp,
        online_timeout_secs: i64,
        projects: Vec<&'a ProjectRef>,
        groups: Vec<&'a GroupRef>,
        base_url: &str,
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
            projects: projects.into_iter().map(ProjectSummary::from).collect(),
            groups: groups
                .into_iter()
                .map(|g| GroupSummary::new(g, base_url))
                .collect(),
            created_at: runner.created_at,
            maintenance_note: None,
            job_execution_status: "idle",
            token_expires_at: runner.token_expires_at,
        }
    }

    /// Says whether a job is running on the runner now.
    pub fn with_busy(mut self, busy: bool) -> Self {
        self.job_execution_status = if busy { "active" } else { "idle" };
        self
    }

    /// Shows the maintenance note: for a caller who may update the runner.
    pub fn with_maintenance_note(mut self, runner: &'a Runner) -> Self {
        self.maintenance_note = runner.maintenance_note.as_deref();
        self
    }
}

/// GitLab's user entity (`Entities::User`), as jobs embed it.
#[derive(Debug, Serialize)]
pub struct UserEntity<'a> {
    pub id: i64,
    pub name: &'a str,
    pub username: &'a str,
    pub state: &'static str,
    pub avatar_url: Option<&'a str>,
    pub web_url: String,
    pub created_at: Timestamp,
    pub bio: Option<&'a str>,
    pub location: Option<&'a str>,
    pub public_email: Option<&'a str>,
    pub skype: Option<&'a str>,
    pub linkedin: Option<&'a str>,
    pub twitter: Option<&'a str>,
    pub website_url: Option<&'a str>,
    pub organization: Option<&'a str>,
}

impl<'a> UserEntity<'a> {
    pub fn new(user: &'a User, base_url: &str) -> Self {
        let p = &user.profile;
        Self {
            id: user.id,
            name: &user.name,
            username: &user.username,
            state: if user.blocked { "blocked" } else { "active" },
            avatar_url: None,
            web_url: format!("{base_url}/{}", user.username),
            created_at: user.created_at,
            bio: p.bio.as_deref(),
            location: p.location.as_deref(),
            public_email: p.public_email.as_deref(),
            skype: p.skype.as_deref(),
            linkedin: p.linkedin.as_deref(),
            twitter: p.twitter.as_deref(),
            website_url: p.website_url.as_deref(),
            organization: p.organization.as_deref(),
        }
    }
}

/// `GET /user`: the caller, with `email` and `is_admin` as GitLab shows them to oneself.
#[derive(Debug, Serialize)]
pub struct CurrentUserEntity<'a> {
    #[serde(flatten)]
    pub user: UserEntity<'a>,
    pub email: Option<&'a str>,
    pub is_admin: bool,
}

impl<'a> CurrentUserEntity<'a> {
    pub fn new(user: &'a User, base_url: &str) -> Self {
        Self {
            user: UserEntity::new(user, base_url),
            email: user.email.as_deref(),
            is_admin: user.admin,
        }
    }
}

/// `GET /runners/:id/jobs` items (`JobBasicWithProject`).
#[derive(Debug, Serialize)]
pub struct JobEntity<'a> {
    pub id: i64,
    pub status: &'a str,
    pub stage: Option<&'a str>,
    pub name: Option<&'a str>,
    #[serde(rename = "ref")]
    pub ref_name: Option<&'a str>,
    pub tag: bool,
    pub coverage: Option<f64>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// Seconds; for a running job, so far.
    pub duration: Option<f64>,
    pub user: Option<UserEntity<'a>>,
    pub commit: Option<&'a serde_json::Value>,
    pub pipeline: Option<&'a serde_json::Value>,
    pub project: ProjectSummary<'a>,
    /// Additive (current GitLab): why a failed job failed; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<&'a str>,
}

impl<'a> JobEntity<'a> {
    pub fn new(job: &'a Job, now: Timestamp, base_url: &str) -> Self {
        let duration = job.started_at.map(|started| {
            (job.finished_at.unwrap_or(now).millis() - started.millis()) as f64 / 1000.0
        });
        Self {
            id: job.id,
            status: &job.status,
            stage: job.stage.as_deref(),
            name: job.name.as_deref(),
            ref_name: job.ref_name.as_deref(),
            tag: job.tag,
            coverage: job.coverage,
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            duration,
            user: job.user.as_ref().map(|u| UserEntity::new(u, base_url)),
            commit: job.commit.as_ref(),
            pipeline: job.pipeline.as_ref(),
            project: ProjectSummary::from(&job.project),
            failure_reason: job
                .failure_reason
                .as_deref()
                .filter(|_| job.status == crate::jobs::FAILED),
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
        let project = ProjectRef {
            id: 1,
            description: None,
            name: "GitLab Community Edition".into(),
            name_with_namespace: "GitLab.org / GitLab Community Edition".into(),
            path: "gitlab-ce".into(),
            path_with_namespace: "gitlab-org/gitlab-ce".into(),
            created_at: Timestamp::from_millis(0),
            group_ids: vec![9],
        };
        let group = GroupRef {
            id: 9,
            name: "GitLab.org".into(),
            full_path: "gitlab-org".into(),
            ancestor_ids: vec![],
        };
        let entity = RunnerDetailsEntity::new(
            &r,
            now,
            3600,
            vec![&project],
            vec![&group],
            "https://gl.example",
        );
        let value = serde_json::to_value(entity).unwrap();
        assert_eq!(value["tag_list"], json!(["ruby", "mysql"]));
        assert_eq!(value["maximum_timeout"], json!(null));
        assert_eq!(value["access_level"], json!("not_protected"));
        assert_eq!(value["contacted_at"], json!("2016-01-25T16:39:48.066Z"));
        assert_eq!(value["version"], json!("12.0.0"));
        assert_eq!(value["platform"], json!(null));
        assert_eq!(
            value["projects"],
            json!([{"id": 1, "description": null, "name": "GitLab Community Edition",
                    "name_with_namespace": "GitLab.org / GitLab Community Edition", "path": "gitlab-ce",
                    "path_with_namespace": "gitlab-org/gitlab-ce", "created_at": "1970-01-01T00:00:00.000Z"}])
        );
        assert_eq!(
            value["groups"],
            json!([{"id": 9, "name": "GitLab.org", "web_url": "https://gl.example/groups/gitlab-org"}])
        );
        assert!(
            value.get("token").is_none(),
            "tokens are never returned after registration"
        );
        assert_eq!(value["id"], json!(6));
    }

    #[test]
    fn job_and_user_shapes() {
        let user = User {
            id: 2,
            username: "user".into(),
            name: "User".into(),
            email: Some("u@example.com".into()),
            admin: false,
            blocked: false,
            created_at: Timestamp::from_millis(0),
            profile: Default::default(),
        };
        let job = Job {
            id: 1000,
            runner_id: Some(5),
            project: ProjectRef {
                id: 100,
                name: "P".into(),
                name_with_namespace: "G / P".into(),
                path: "p".into(),
                path_with_namespace: "g/p".into(),
                description: None,
                created_at: Timestamp::from_millis(0),
                group_ids: vec![10],
            },
            user: Some(user.clone()),
            status: "failed".into(),
            stage: Some("test".into()),
            name: Some("rspec".into()),
            ref_name: Some("master".into()),
            tag: false,
            coverage: Some(97.5),
            created_at: Timestamp::from_millis(0),
            started_at: Timestamp::parse("2019-01-01T00:00:01.000Z"),
            finished_at: Timestamp::parse("2019-01-01T00:02:01.500Z"),
            commit: None,
            pipeline: Some(json!({"id": 50, "sha": "97de", "ref": "master", "status": "failed"})),
            work: None,
            token_digest: None,
            log_length: 0,
            log_generation: 0,
            failure_reason: None,
            touched_at: None,
            queues: Vec::new(),
            on_instance_runner: false,
        };
        let value =
            serde_json::to_value(JobEntity::new(&job, Timestamp::now(), "http://h")).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "id",
                "status",
                "stage",
                "name",
                "ref",
                "tag",
                "coverage",
                "created_at",
                "started_at",
                "finished_at",
                "duration",
                "user",
                "commit",
                "pipeline",
                "project"
            ]
        );
        assert_eq!(
            (value["duration"].clone(), value["coverage"].clone()),
            (json!(120.5), json!(97.5))
        );
        assert_eq!(value["commit"], json!(null));
        assert_eq!(value["user"]["web_url"], json!("http://h/user"));
        assert_eq!(value["project"]["path_with_namespace"], json!("g/p"));
        assert!(value["project"].get("group_ids").is_none());
        let me = serde_json::to_value(CurrentUserEntity::new(&user, "http://h")).unwrap();
        assert_eq!(
            (
                me["is_admin"].clone(),
                me["email"].clone(),
                me["state"].clone()
            ),
            (json!(false), json!("u@example.com"), json!("active"))
        );
    }
}
