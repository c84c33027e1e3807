//! The runner: its state, GitLab's rules for it, and the status a client sees.

use crate::auth::TokenDigest;
use crate::error::{ApiError, ValidationErrors};
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RunnerType {
    Instance,
    Group,
    Project,
}

impl RunnerType {
    pub const NAMES: [&'static str; 3] = ["instance_type", "group_type", "project_type"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Instance => "instance_type",
            Self::Group => "group_type",
            Self::Project => "project_type",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "instance_type" => Some(Self::Instance),
            "group_type" => Some(Self::Group),
            "project_type" => Some(Self::Project),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessLevel {
    #[default]
    NotProtected,
    RefProtected,
}

impl AccessLevel {
    pub const NAMES: [&'static str; 2] = ["not_protected", "ref_protected"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotProtected => "not_protected",
            Self::RefProtected => "ref_protected",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "not_protected" => Some(Self::NotProtected),
            "ref_protected" => Some(Self::RefProtected),
            _ => None,
        }
    }
}

/// What a runner reports about itself in `info`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunnerInfo {
    pub name: Option<String>,
    pub version: Option<String>,
    pub revision: Option<String>,
    pub platform: Option<String>,
    pub architecture: Option<String>,
}

/// A project as a runner carries it: what `RunnerDetails.projects` shows, and the project's group
/// chain for permission checks. Copied onto the runner when it is linked to the project, so that
/// reading a runner is one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRef {
    pub id: i64,
    pub name: String,
    pub name_with_namespace: String,
    pub path: String,
    pub path_with_namespace: String,
    pub description: Option<String>,
    pub created_at: Timestamp,
    /// The project's namespace group and its ancestors, root first (empty for personal projects).
    pub group_ids: Vec<i64>,
}

#[cfg(test)]
impl ProjectRef {
    /// A project in the given group chain (root first), named after its id.
    pub(crate) fn sample(id: i64, group_ids: &[i64]) -> Self {
        Self {
            id,
            name: format!("p{id}"),
            name_with_namespace: format!("g / p{id}"),
            path: format!("p{id}"),
            path_with_namespace: format!("g/p{id}"),
            description: None,
            created_at: Timestamp::from_millis(0),
            group_ids: group_ids.to_vec(),
        }
    }
}

/// A group as a group runner carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    pub id: i64,
    pub name: String,
    pub full_path: String,
    /// Root first, up to the parent.
    pub ancestor_ids: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Runner {
    pub id: i64,
    pub runner_type: RunnerType,
    pub description: Option<String>,
    pub active: bool,
    pub locked: bool,
    pub run_untagged: bool,
    pub tag_list: Vec<String>,
    pub access_level: AccessLevel,
    pub maximum_timeout: Option<i64>,
    pub maintenance_note: Option<String>,
    pub info: RunnerInfo,
    pub ip_address: Option<String>,
    pub contacted_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Projects a project runner is enabled in, in id order (empty for other types).
    pub projects: Vec<ProjectRef>,
    /// The group a group runner belongs to.
    pub group: Option<GroupRef>,
    pub token_digest: TokenDigest,
    /// Bumped on every change of ownership or attributes; writes are conditional on it.
    pub lock_version: i64,
    /// The user who created the runner with `POST /user/runners` (GitLab's
    /// `registration_type = authenticated_user`); `None` for a runner registered with a
    /// registration token. It decides the token's form: created runners get `glrt-` tokens, which
    /// switch the official runner to the manager-based workflow.
    pub created_by: Option<i64>,
    /// When the runner's current token stops working (`None`: never).
    pub token_expires_at: Option<Timestamp>,
}

/// The attributes a client may set at registration or update; `None` leaves one as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunnerChanges {
    pub description: Option<String>,
    pub active: Option<bool>,
    pub locked: Option<bool>,
    pub run_untagged: Option<bool>,
    pub tag_list: Option<Vec<String>>,
    pub access_level: Option<AccessLevel>,
    pub maximum_timeout: Option<i64>,
    pub maintenance_note: Option<String>,
}

pub const MIN_MAXIMUM_TIMEOUT: i64 = 600;
pub const MAX_TAGS: usize = 50;
pub const MAX_TAG_CHARS: usize = 255;
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
/// GitLab's limits on what a runner reports about itself (`Ci::RunnerManager`: `version` 2048,
/// `revision`, `platform` and `architecture` 255; `name` is held to 255 too). They keep a runner
/// item far below DynamoDB's 400 KB item limit.
pub const MAX_VERSION_CHARS: usize = 2048;
pub const MAX_INFO_CHARS: usize = 255;

/// Rails' length error on `attribute` when `value` is longer than `max` characters.
pub(crate) fn check_length(
    errors: &mut ValidationErrors,
    attribute: &str,
    value: Option<&str>,
    max: usize,
) {
    if value.is_some_and(|v| v.chars().count() > max) {
        errors.add(
            attribute,
            format!("is too long (maximum is {max} characters)"),
        );
    }
}

impl RunnerInfo {
    /// GitLab's length limits on each field, as model validation errors.
    pub fn check(&self, errors: &mut ValidationErrors) {
        for (attribute, value, max) in [
            ("name", &self.name, MAX_INFO_CHARS),
            ("version", &self.version, MAX_VERSION_CHARS),
            ("revision", &self.revision, MAX_INFO_CHARS),
            ("platform", &self.platform, MAX_INFO_CHARS),
            ("architecture", &self.architecture, MAX_INFO_CHARS),
        ] {
            check_length(errors, attribute, value.as_deref(), max);
        }
    }

    /// The fields as a 400 `{"message": {...}}` when any is too long.
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut errors = ValidationErrors::default();
        self.check(&mut errors);
        errors.into_result()
    }
}

impl Runner {
    /// A runner with GitLab's registration defaults: active, runs untagged jobs, unlocked,
    /// not protected, no timeout, never contacted.
    pub fn new(
        id: i64,
        runner_type: RunnerType,
        token_digest: TokenDigest,
        now: Timestamp,
    ) -> Self {
        Self {
            id,
            runner_type,
            description: None,
            active: true,
            locked: false,
            run_untagged: true,
            tag_list: Vec::new(),
            access_level: AccessLevel::NotProtected,
            maximum_timeout: None,
            maintenance_note: None,
            info: RunnerInfo::default(),
            ip_address: None,
            contacted_at: None,
            created_at: now,
            updated_at: now,
            projects: Vec::new(),
            group: None,
            token_digest,
            lock_version: 0,
            created_by: None,
            token_expires_at: None,
        }
    }

    pub fn apply(&mut self, changes: RunnerChanges) {
        let RunnerChanges {
            description,
            active,
            locked,
            run_untagged,
            tag_list,
            access_level,
            maximum_timeout,
            maintenance_note,
        } = changes;
        if let Some(v) = description {
            self.description = Some(v);
        }
        if let Some(v) = active {
            self.active = v;
        }
        if let Some(v) = locked {
            self.locked = v;
        }
        if let Some(v) = run_untagged {
            self.run_untagged = v;
        }
        if let Some(v) = tag_list {
            self.tag_list = v;
        }
        if let Some(v) = access_level {
            self.access_level = v;
        }
        if let Some(v) = maximum_timeout {
            self.maximum_timeout = Some(v);
        }
        if let Some(v) = maintenance_note {
            self.maintenance_note = Some(v);
        }
    }

    /// GitLab's model validations; the error is the 400 `{"message": {...}}` body.
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut errors = ValidationErrors::default();
        if self.tag_list.is_empty() && !self.run_untagged {
            errors.add(
                "tags_list",
                "can not be empty when runner is not allowed to pick untagged jobs",
            );
        }
        if self.tag_list.len() > MAX_TAGS {
            errors.add(
                "tags_list",
                format!("Too many tags specified. Please limit the number of tags to {MAX_TAGS}"),
            );
        }
        if let Some(tag) = self
            .tag_list
            .iter()
            .find(|t| t.chars().count() > MAX_TAG_CHARS)
        {
            let start: String = tag.chars().take(20).collect();
            errors.add(
                "tags_list",
                format!("tag '{start}...' is too long (maximum is {MAX_TAG_CHARS} characters)"),
            );
        }
        if self
            .maximum_timeout
            .is_some_and(|t| t < MIN_MAXIMUM_TIMEOUT)
        {
            errors.add("maximum_timeout", "needs to be at least 10 minutes");
        }
        for (attribute, value) in [
            ("description", &self.description),
            ("maintenance_note", &self.maintenance_note),
        ] {
            check_length(
                &mut errors,
                attribute,
                value.as_deref(),
                MAX_DESCRIPTION_CHARS,
            );
        }
        self.info.check(&mut errors);
        errors.into_result()
    }

    pub fn project_ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.projects.iter().map(|p| p.id)
    }

    pub fn is_shared(&self) -> bool {
        self.runner_type == RunnerType::Instance
    }

    /// `null` when never contacted, else whether the last contact is within the timeout.
    pub fn online(&self, now: Timestamp, online_timeout_secs: i64) -> Option<bool> {
        self.contacted_at
            .map(|at| at.within(now, online_timeout_secs.saturating_mul(1000)))
    }

    /// GitLab 12's status: never contacted wins over paused.
    pub fn status(&self, now: Timestamp, online_timeout_secs: i64) -> RunnerStatus {
        match self.online(now, online_timeout_secs) {
            None => RunnerStatus::NotConnected,
            Some(_) if !self.active => RunnerStatus::Paused,
            Some(true) => RunnerStatus::Online,
            Some(false) => RunnerStatus::Offline,
        }
    }
}

/// One host that serves a runner's token (GitLab 16's runner manager), known by the
/// `system_id` it sends with `verify` and `jobs/request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerManager {
    pub id: i64,
    pub system_id: String,
    /// What the host last reported (`name` is not kept per host).
    pub info: RunnerInfo,
    pub executor: Option<String>,
    pub ip_address: Option<String>,
    pub created_at: Timestamp,
    pub contacted_at: Option<Timestamp>,
}

/// GitLab's longest `system_id` (`ci_runner_machines.system_xid`).
pub const MAX_SYSTEM_ID_CHARS: usize = 64;

impl RunnerManager {
    /// GitLab's manager status: stale when neither created nor contacted in the last 7 days,
    /// else online or offline by the last contact.
    pub fn status(&self, now: Timestamp, online_timeout_secs: i64) -> &'static str {
        let last = self
            .contacted_at
            .unwrap_or(self.created_at)
            .max(self.created_at);
        if !last.within(now, crate::runner_filter::STALE_AFTER_MS) {
            return "stale";
        }
        match self.contacted_at {
            None => "never_contacted",
            Some(at) if at.within(now, online_timeout_secs.saturating_mul(1000)) => "online",
            Some(_) => "offline",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerStatus {
    Online,
    Offline,
    Paused,
    NotConnected,
}

impl RunnerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Offline => "offline",
            Self::Paused => "paused",
            Self::NotConnected => "not_connected",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner() -> Runner {
        Runner::new(
            1,
            RunnerType::Instance,
            TokenDigest::of("t"),
            Timestamp::from_millis(0),
        )
    }

    fn message(runner: &Runner) -> String {
        runner.validate().unwrap_err().body()["message"].to_string()
    }

    #[test]
    fn defaults_are_gitlabs() {
        let r = runner();
        assert!(r.active && r.run_untagged && !r.locked);
        assert_eq!(r.access_level, AccessLevel::NotProtected);
        assert_eq!((r.maximum_timeout, r.contacted_at), (None, None));
        assert!(r.validate().is_ok());
    }

    #[test]
    fn untagged_rule() {
        let mut r = runner();
        r.run_untagged = false;
        assert_eq!(
            message(&r),
            r#"{"tags_list":["can not be empty when runner is not allowed to pick untagged jobs"]}"#
        );
        r.tag_list = vec!["ruby".into()];
        assert!(r.validate().is_ok());
    }

    #[test]
    fn limits() {
        let mut r = runner();
        r.maximum_timeout = Some(599);
        assert_eq!(
            message(&r),
            r#"{"maximum_timeout":["needs to be at least 10 minutes"]}"#
        );
        r.maximum_timeout = Some(600);
        assert!(r.validate().is_ok());

        r.tag_list = (0..51).map(|i| format!("t{i}")).collect();
        assert_eq!(
            message(&r),
            r#"{"tags_list":["Too many tags specified. Please limit the number of tags to 50"]}"#
        );
        r.tag_list.pop();
        assert!(r.validate().is_ok());

        r.tag_list = vec!["x".repeat(256)];
        assert!(message(&r).contains("is too long (maximum is 255 characters)"));
        r.tag_list = vec!["x".repeat(255)];
        assert!(r.validate().is_ok());

        r.description = Some("d".repeat(1025));
        assert_eq!(
            message(&r),
            r#"{"description":["is too long (maximum is 1024 characters)"]}"#
        );
    }

    #[test]
    fn info_fields_have_gitlabs_length_limits() {
        let mut r = runner();
        r.info.version = Some("v".repeat(MAX_VERSION_CHARS));
        r.info.platform = Some("\u{e9}".repeat(MAX_INFO_CHARS));
        assert!(r.validate().is_ok(), "limits count characters, not bytes");
        r.info.version = Some("v".repeat(MAX_VERSION_CHARS + 1));
        r.info.name = Some("n".repeat(MAX_INFO_CHARS + 1));
        r.info.architecture = Some("a".repeat(300_000));
        assert_eq!(
            message(&r),
            r#"{"name":["is too long (maximum is 255 characters)"],"version":["is too long (maximum is 2048 characters)"],"architecture":["is too long (maximum is 255 characters)"]}"#
        );
        assert_eq!(r.info.validate().unwrap_err().status().as_u16(), 400);
    }

    #[test]
    fn status_and_online() {
        let now = Timestamp::from_millis(10_000_000);
        let mut r = runner();
        assert_eq!(
            (r.online(now, 3600), r.status(now, 3600)),
            (None, RunnerStatus::NotConnected)
        );
        r.active = false;
        assert_eq!(
            r.status(now, 3600),
            RunnerStatus::NotConnected,
            "never contacted wins over paused"
        );
        r.contacted_at = Some(Timestamp::from_millis(now.millis() - 1000));
        assert_eq!(r.status(now, 3600), RunnerStatus::Paused);
        r.active = true;
        assert_eq!(
            (r.online(now, 3600), r.status(now, 3600)),
            (Some(true), RunnerStatus::Online)
        );
        r.contacted_at = Some(Timestamp::from_millis(now.millis() - 3_600_000));
        assert_eq!(
            (r.online(now, 3600), r.status(now, 3600)),
            (Some(false), RunnerStatus::Offline)
        );
    }

    #[test]
    fn apply_changes_only_what_was_sent() {
        let mut r = runner();
        r.description = Some("keep".into());
        r.apply(RunnerChanges {
            locked: Some(true),
            tag_list: Some(vec!["a".into()]),
            ..Default::default()
        });
        assert_eq!(r.description.as_deref(), Some("keep"));
        assert!(r.locked);
        assert_eq!(r.tag_list, ["a"]);
    }
}
