//! The GitLab world runners live in: users, groups, projects, memberships and jobs. Operators
//! create them (`runnerctl`, fixtures); the runner endpoints read them.

use super::item::{Item, ItemBuilder};
use super::keys;
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

/// A CI job as `GET /runners/:id/jobs` shows it. `commit` and `pipeline` are kept as the JSON
/// objects GitLab's entities expose.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: i64,
    pub runner_id: i64,
    pub project_id: i64,
    pub user_id: Option<i64>,
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
        let p = &self.profile;
        ItemBuilder::keyed(keys::user(self.id))
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
            .build()
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
        ItemBuilder::keyed(keys::project(self.id))
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
            .opt_s("runners_token_digest", runners_token_digest)
            .build()
    }
}

impl Membership {
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
        ItemBuilder::keyed(keys::job(self.runner_id, self.id))
            .s("entity", "job")
            .n("id", self.id)
            .n("runner_id", self.runner_id)
            .n("project_id", self.project_id)
            .opt_n("user_id", self.user_id)
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
}
