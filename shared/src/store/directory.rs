//! The GitLab world runners live in: users, groups, projects, memberships and jobs. Operators
//! create them (`runnerctl`, fixtures); the runner endpoints read them.

use super::item::{Item, ItemBuilder, ItemReader};
use super::keys;
use crate::error::ApiError;
use crate::runner::{GroupRef, ProjectRef};
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub name: String,
    pub email: Option<String>,
    pub admin: bool,
    pub blocked: bool,
    pub created_at: Timestamp,
    /// Public profile fields of GitLab's user entity, stored as given.
    pub profile: UserProfile,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserProfile {
    pub bio: Option<String>,
    pub location: Option<String>,
    pub public_email: Option<String>,
    pub skype: Option<String>,
    pub linkedin: Option<String>,
    pub twitter: Option<String>,
    pub website_url: Option<String>,
    pub organization: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub id: i64,
    pub name: String,
    pub path: String,
    pub parent_id: Option<i64>,
    pub full_path: String,
    /// `Parent / Child`, as GitLab's `full_name`.
    pub full_name: String,
    /// Ancestors from the root down to the parent; lets a project's group tree be read without
    /// walking it.
    pub ancestor_ids: Vec<i64>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub path: String,
    pub description: Option<String>,
    /// The group the project lives in; `None` for a personal project.
    pub namespace_id: Option<i64>,
    /// The owner of a personal project.
    pub owner_id: Option<i64>,
    pub path_with_namespace: String,
    pub name_with_namespace: String,
    /// The namespace group and all its ancestors, root first.
    pub group_ids: Vec<i64>,
    pub created_at: Timestamp,
    pub settings: ProjectSettings,
}

/// A project's CI settings (`jobs-api.md`): its repository, which runners may take its jobs, its
/// default job timeout and which refs are protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectSettings {
    /// What runners clone (`git_info.repo_url`); none: jobs carry `GIT_STRATEGY=none`.
    pub repository_url: Option<String>,
    pub shared_runners_enabled: bool,
    pub group_runners_enabled: bool,
    /// Seconds; a job's timeout when it sets none.
    pub build_timeout: i64,
    /// Ref names, `*` matching any run of characters; a job on a matching ref is protected.
    pub protected_refs: Vec<String>,
}

/// GitLab's bounds on `build_timeout`: 10 minutes to one month.
pub const MIN_BUILD_TIMEOUT: i64 = 600;
pub const MAX_BUILD_TIMEOUT: i64 = 2_592_000;

impl Default for ProjectSettings {
    fn default() -> Self {
        Self {
            repository_url: None,
            shared_runners_enabled: true,
            group_runners_enabled: true,
            build_timeout: 3600,
            protected_refs: vec!["main".to_owned()],
        }
    }
}

impl ProjectSettings {
    /// What is wrong with these settings, as `(field, message)` pairs.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if !(MIN_BUILD_TIMEOUT..=MAX_BUILD_TIMEOUT).contains(&self.build_timeout) {
            problems.push((
                "build_timeout",
                format!("must be between {MIN_BUILD_TIMEOUT} and {MAX_BUILD_TIMEOUT} seconds"),
            ));
        }
        if self.protected_refs.iter().any(|r| r.trim().is_empty()) {
            problems.push((
                "protected_refs",
                "must not contain an empty name".to_owned(),
            ));
        }
        if self.repository_url.as_deref().is_some_and(str::is_empty) {
            problems.push(("repository_url", "must not be empty".to_owned()));
        }
        problems
    }

    /// Whether `ref_name` is protected: it matches one of `protected_refs`.
    pub fn protects(&self, ref_name: &str) -> bool {
        self.protected_refs
            .iter()
            .any(|pattern| wildcard_match(pattern, ref_name))
    }

    fn write(&self, builder: ItemBuilder) -> ItemBuilder {
        builder
            .opt_s("repository_url", self.repository_url.clone())
            .bool("shared_runners_enabled", self.shared_runners_enabled)
            .bool("group_runners_enabled", self.group_runners_enabled)
            .n("build_timeout", self.build_timeout)
            .strings("protected_refs", &self.protected_refs)
    }

    /// The settings on a project item; items written before settings existed get the defaults.
    fn read(r: &ItemReader<'_>) -> Result<Self, ApiError> {
        let defaults = Self::default();
        Ok(Self {
            repository_url: r.opt_s("repository_url"),
            shared_runners_enabled: r.bool_or("shared_runners_enabled", true),
            group_runners_enabled: r.bool_or("group_runners_enabled", true),
            build_timeout: r.opt_n("build_timeout")?.unwrap_or(defaults.build_timeout),
            protected_refs: match r.opt_list("protected_refs") {
                true => r.strings("protected_refs")?,
                false => defaults.protected_refs,
            },
        })
    }
}

/// Settings an operator names (`runnerctl project create|update`); `None` keeps what is there.
/// An empty `repository_url` removes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsChanges {
    pub repository_url: Option<String>,
    pub shared_runners_enabled: Option<bool>,
    pub group_runners_enabled: Option<bool>,
    pub build_timeout: Option<i64>,
    pub protected_refs: Option<Vec<String>>,
}

impl SettingsChanges {
    pub fn apply(self, settings: &mut ProjectSettings) {
        if let Some(url) = self.repository_url {
            settings.repository_url = Some(url).filter(|u| !u.is_empty());
        }
        if let Some(v) = self.shared_runners_enabled {
            settings.shared_runners_enabled = v;
        }
        if let Some(v) = self.group_runners_enabled {
            settings.group_runners_enabled = v;
        }
        if let Some(v) = self.build_timeout {
            settings.build_timeout = v;
        }
        if let Some(v) = self.protected_refs {
            settings.protected_refs = v;
        }
    }
}

/// Glob matching with `*` as the only special character (GitLab's protected branch wildcards).
/// Linear in both lengths: greedy with one backtrack point.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((star_pi, star_ti)) = star {
            pi = star_pi + 1;
            ti = star_ti + 1;
            star = Some((star_pi, star_ti + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberOf {
    Group(i64),
    Project(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    pub of: MemberOf,
    pub user_id: i64,
    pub access_level: i64,
}

/// GitLab 12's job statuses.
pub const JOB_STATUSES: [&str; 9] = [
    "created",
    "pending",
    "running",
    "success",
    "failed",
    "canceled",
    "skipped",
    "manual",
    "scheduled",
];

/// A CI job as `GET /runners/:id/jobs` shows it. The job carries copies of its user and project
/// (a job page is then one read), and `commit` and `pipeline` as the JSON GitLab exposes.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: i64,
    /// The runner it was assigned to; `None` while pending.
    pub runner_id: Option<i64>,
    pub project: ProjectRef,
    pub user: Option<User>,
    pub status: String,
    pub stage: Option<String>,
    pub name: Option<String>,
    pub ref_name: Option<String>,
    pub tag: bool,
    pub coverage: Option<f64>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub commit: Option<serde_json::Value>,
    pub pipeline: Option<serde_json::Value>,
    /// What a runner runs; `None` for jobs imported from fixtures (history only).
    pub work: Option<crate::jobs::JobWork>,
    /// The job token's digest, set when a runner takes the job.
    pub token_digest: Option<String>,
    /// The log's length in bytes as the runner sees it (what `Range` answers).
    pub log_length: i64,
    /// Bumped when a `PUT` replaces the whole log; chunks live under their generation.
    pub log_generation: i64,
    pub failure_reason: Option<String>,
    /// The runner's last PUT or PATCH: what the stuck-job sweeper looks at.
    pub touched_at: Option<Timestamp>,
    /// The queue partitions the job waits in while pending (`keys::queue_*`).
    pub queues: Vec<String>,
    /// An instance runner took it: it counts in its project's fair-usage counter while running.
    pub on_instance_runner: bool,
}

/// What a path (`PATH#<full path>`) names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathOwner {
    User(i64),
    Group(i64),
    Project(i64),
}

impl PathOwner {
    pub fn to_item(self, full_path: &str) -> Item {
        let (kind, id) = match self {
            Self::User(id) => ("user", id),
            Self::Group(id) => ("group", id),
            Self::Project(id) => ("project", id),
        };
        ItemBuilder::keyed(keys::path(full_path))
            .s("entity", "path")
            .s("full_path", full_path)
            .s("kind", kind)
            .n("id", id)
            .build()
    }

    pub fn from_item(item: &Item) -> Result<Self, crate::ApiError> {
        let r = super::item::ItemReader::new(item, "path");
        let id = r.n("id")?;
        match r.s("kind")?.as_str() {
            "user" => Ok(Self::User(id)),
            "group" => Ok(Self::Group(id)),
            "project" => Ok(Self::Project(id)),
            other => Err(crate::ApiError::internal(format!("path kind {other}"))),
        }
    }
}

impl User {
    pub fn to_item(&self) -> Item {
        self.attributes(ItemBuilder::keyed(keys::user(self.id)))
            .build()
    }

    fn attributes(&self, builder: ItemBuilder) -> ItemBuilder {
        let p = &self.profile;
        builder
            .s("entity", "user")
            .n("id", self.id)
            .s("username", &self.username)
            .s("name", &self.name)
            .opt_s("email", self.email.clone())
            .bool("admin", self.admin)
            .s("state", if self.blocked { "blocked" } else { "active" })
            .time("created_at", self.created_at)
            .opt_s("bio", p.bio.clone())
            .opt_s("location", p.location.clone())
            .opt_s("public_email", p.public_email.clone())
            .opt_s("skype", p.skype.clone())
            .opt_s("linkedin", p.linkedin.clone())
            .opt_s("twitter", p.twitter.clone())
            .opt_s("website_url", p.website_url.clone())
            .opt_s("organization", p.organization.clone())
    }

    pub fn from_item(item: &Item) -> Result<Self, ApiError> {
        let r = ItemReader::new(item, "user");
        Ok(Self {
            id: r.n("id")?,
            username: r.s("username")?,
            name: r.s("name")?,
            email: r.opt_s("email"),
            admin: r.bool_or("admin", false),
            blocked: r.opt_s("state").as_deref() == Some("blocked"),
            created_at: r.time("created_at")?,
            profile: UserProfile {
                bio: r.opt_s("bio"),
                location: r.opt_s("location"),
                public_email: r.opt_s("public_email"),
                skype: r.opt_s("skype"),
                linkedin: r.opt_s("linkedin"),
                twitter: r.opt_s("twitter"),
                website_url: r.opt_s("website_url"),
                organization: r.opt_s("organization"),
            },
        })
    }

    pub fn username_item(&self) -> Item {
        ItemBuilder::keyed(keys::username(&self.username))
            .s("entity", "username")
            .n("user_id", self.id)
            .build()
    }
}

impl Group {
    pub fn to_item(&self, runners_token_digest: Option<&str>) -> Item {
        ItemBuilder::keyed(keys::group(self.id))
            .s("entity", "group")
            .n("id", self.id)
            .s("name", &self.name)
            .s("path", &self.path)
            .opt_n("parent_id", self.parent_id)
            .s("full_path", &self.full_path)
            .s("full_name", &self.full_name)
            .numbers("ancestor_ids", &self.ancestor_ids)
            .time("created_at", self.created_at)
            .opt_s("runners_token_digest", runners_token_digest)
            .build()
    }
}

impl Project {
    pub fn to_item(&self, runners_token_digest: Option<&str>) -> Item {
        let builder = ItemBuilder::keyed(keys::project(self.id))
            .s("entity", "project")
            .n("id", self.id)
            .s("name", &self.name)
            .s("path", &self.path)
            .opt_s("description", self.description.clone())
            .opt_n("namespace_id", self.namespace_id)
            .opt_n("owner_id", self.owner_id)
            .s("path_with_namespace", &self.path_with_namespace)
            .s("name_with_namespace", &self.name_with_namespace)
            .numbers("group_ids", &self.group_ids)
            .time("created_at", self.created_at)
            .opt_s("runners_token_digest", runners_token_digest);
        self.settings.write(builder).build()
    }
}

impl Membership {
    pub fn from_item(item: &Item) -> Result<Self, ApiError> {
        let r = ItemReader::new(item, "membership");
        let pk = r.s(keys::PK)?;
        let of = match pk.split_once('#') {
            Some(("GROUP", id)) => id.parse().ok().map(MemberOf::Group),
            Some(("PROJECT", id)) => id.parse().ok().map(MemberOf::Project),
            _ => None,
        }
        .ok_or_else(|| ApiError::internal(format!("membership under {pk}")))?;
        Ok(Self {
            of,
            user_id: r.n("user_id")?,
            access_level: r.n("access_level")?,
        })
    }

    pub fn to_item(&self) -> Item {
        let (key, source) = match self.of {
            MemberOf::Group(id) => (
                keys::group_member(id, self.user_id),
                format!("GROUP#{}", keys::padded(id)),
            ),
            MemberOf::Project(id) => (
                keys::project_member(id, self.user_id),
                format!("PROJECT#{}", keys::padded(id)),
            ),
        };
        ItemBuilder::keyed(key)
            .s(keys::GSI1_PK, format!("USER#{}", self.user_id))
            .s(keys::GSI1_SK, source)
            .s("entity", "membership")
            .n("user_id", self.user_id)
            .n("access_level", self.access_level)
            .build()
    }
}

impl Job {
    pub fn to_item(&self) -> Item {
        let json = |v: &Option<serde_json::Value>| v.as_ref().map(serde_json::Value::to_string);
        let padded = keys::padded(self.id);
        let mut builder = ItemBuilder::keyed(keys::job(self.id))
            .s(keys::GSI1_PK, keys::project_jobs(self.project.id))
            .s(keys::GSI1_SK, padded.clone());
        if let Some(runner_id) = self.runner_id {
            builder = builder
                .s(keys::GSI2_PK, keys::runner_jobs(runner_id))
                .s(keys::GSI2_SK, padded.clone())
                .s(keys::GSI3_PK, keys::runner_job_ids(runner_id, &self.status))
                .s(keys::GSI3_SK, padded);
        }
        let work = self
            .work
            .as_ref()
            .and_then(|w| serde_json::to_string(w).ok());
        builder
            .s("entity", "job")
            .n("id", self.id)
            .opt_n("runner_id", self.runner_id)
            .opt_s("work_json", work)
            .opt_s("token_digest", self.token_digest.clone())
            .n("log_length", self.log_length)
            .n("log_generation", self.log_generation)
            .opt_s("failure_reason", self.failure_reason.clone())
            .opt_time("touched_at", self.touched_at)
            .strings("queues", &self.queues)
            .bool("on_instance_runner", self.on_instance_runner)
            .map("project", project_ref_item(&self.project))
            .opt_map(
                "user",
                self.user
                    .as_ref()
                    .map(|u| u.attributes(ItemBuilder::default()).build()),
            )
            .s("status", &self.status)
            .opt_s("stage", self.stage.clone())
            .opt_s("name", self.name.clone())
            .opt_s("ref", self.ref_name.clone())
            .bool("tag", self.tag)
            .opt_s("coverage", self.coverage.map(|c| c.to_string()))
            .time("created_at", self.created_at)
            .opt_time("started_at", self.started_at)
            .opt_time("finished_at", self.finished_at)
            .opt_s("commit_json", json(&self.commit))
            .opt_s("pipeline_json", json(&self.pipeline))
            .build()
    }

    pub fn from_item(item: &Item) -> Result<Self, ApiError> {
        let r = ItemReader::new(item, "job");
        let json = |name: &str| -> Result<Option<serde_json::Value>, ApiError> {
            r.opt_s(name)
                .map(|text| {
                    serde_json::from_str(&text)
                        .map_err(|e| ApiError::internal(format!("job {name}: {e}")))
                })
                .transpose()
        };
        Ok(Self {
            id: r.n("id")?,
            runner_id: r.opt_n("runner_id")?,
            project: project_ref_from(
                r.map("project")?
                    .ok_or_else(|| ApiError::internal("job without project"))?,
            )?,
            user: r.map("user")?.map(User::from_item).transpose()?,
            status: r.s("status")?,
            stage: r.opt_s("stage"),
            name: r.opt_s("name"),
            ref_name: r.opt_s("ref"),
            tag: r.bool_or("tag", false),
            coverage: r.opt_s("coverage").and_then(|c| c.parse().ok()),
            created_at: r.time("created_at")?,
            started_at: r.opt_time("started_at")?,
            finished_at: r.opt_time("finished_at")?,
            commit: json("commit_json")?,
            pipeline: json("pipeline_json")?,
            work: r
                .opt_s("work_json")
                .map(|text| {
                    serde_json::from_str(&text)
                        .map_err(|e| ApiError::internal(format!("job work: {e}")))
                })
                .transpose()?,
            token_digest: r.opt_s("token_digest"),
            log_length: r.opt_n("log_length")?.unwrap_or(0),
            log_generation: r.opt_n("log_generation")?.unwrap_or(0),
            failure_reason: r.opt_s("failure_reason"),
            touched_at: r.opt_time("touched_at")?,
            queues: r.strings("queues")?,
            on_instance_runner: r.bool_or("on_instance_runner", false),
        })
    }
}

impl Group {
    pub fn from_item(item: &Item) -> Result<Self, ApiError> {
        let r = ItemReader::new(item, "group");
        Ok(Self {
            id: r.n("id")?,
            name: r.s("name")?,
            path: r.s("path")?,
            parent_id: r.opt_n("parent_id")?,
            full_path: r.s("full_path")?,
            full_name: r.s("full_name")?,
            ancestor_ids: r.numbers("ancestor_ids")?,
            created_at: r.time("created_at")?,
        })
    }

    pub fn reference(&self) -> GroupRef {
        GroupRef {
            id: self.id,
            name: self.name.clone(),
            full_path: self.full_path.clone(),
            ancestor_ids: self.ancestor_ids.clone(),
        }
    }
}

impl Project {
    pub fn from_item(item: &Item) -> Result<Self, ApiError> {
        let r = ItemReader::new(item, "project");
        Ok(Self {
            id: r.n("id")?,
            name: r.s("name")?,
            path: r.s("path")?,
            description: r.opt_s("description"),
            namespace_id: r.opt_n("namespace_id")?,
            owner_id: r.opt_n("owner_id")?,
            path_with_namespace: r.s("path_with_namespace")?,
            name_with_namespace: r.s("name_with_namespace")?,
            group_ids: r.numbers("group_ids")?,
            created_at: r.time("created_at")?,
            settings: ProjectSettings::read(&r)?,
        })
    }

    pub fn reference(&self) -> ProjectRef {
        ProjectRef {
            id: self.id,
            name: self.name.clone(),
            name_with_namespace: self.name_with_namespace.clone(),
            path: self.path.clone(),
            path_with_namespace: self.path_with_namespace.clone(),
            description: self.description.clone(),
            created_at: self.created_at,
            group_ids: self.group_ids.clone(),
        }
    }
}

pub(crate) fn project_ref_item(project: &ProjectRef) -> Item {
    ItemBuilder::default()
        .n("id", project.id)
        .s("name", &project.name)
        .s("name_with_namespace", &project.name_with_namespace)
        .s("path", &project.path)
        .s("path_with_namespace", &project.path_with_namespace)
        .opt_s("description", project.description.clone())
        .time("created_at", project.created_at)
        .numbers("group_ids", &project.group_ids)
        .build()
}

pub(crate) fn project_ref_from(item: &Item) -> Result<ProjectRef, ApiError> {
    let r = ItemReader::new(item, "project reference");
    Ok(ProjectRef {
        id: r.n("id")?,
        name: r.s("name")?,
        name_with_namespace: r.s("name_with_namespace")?,
        path: r.s("path")?,
        path_with_namespace: r.s("path_with_namespace")?,
        description: r.opt_s("description"),
        created_at: r.time("created_at")?,
        group_ids: r.numbers("group_ids")?,
    })
}

pub(crate) fn group_ref_item(group: &GroupRef) -> Item {
    ItemBuilder::default()
        .n("id", group.id)
        .s("name", &group.name)
        .s("full_path", &group.full_path)
        .numbers("ancestor_ids", &group.ancestor_ids)
        .build()
}

pub(crate) fn group_ref_from(item: &Item) -> Result<GroupRef, ApiError> {
    let r = ItemReader::new(item, "group reference");
    Ok(GroupRef {
        id: r.n("id")?,
        name: r.s("name")?,
        full_path: r.s("full_path")?,
        ancestor_ids: r.numbers("ancestor_ids")?,
    })
}
