//! Fixture files (`operations.md`): a whole GitLab world in one JSON file. The file is validated
//! as a whole before anything is written; errors name the entry and the field
//! (`runners[3].runner_type: expected one of ...`). Importing is idempotent: ids are kept, token
//! items are keyed by digest, and default times are fixed, so a second import writes the same
//! items. Plaintext tokens are only ever digested.

use super::listing::JobCounts;
use super::writes::{delete_all, get_all, put_all, raise_counter};
use crate::auth::{PersonalAccessToken, TokenDigest};
use crate::jobs::RUNNING;
use crate::params::normalize_tags;
use crate::runner::{AccessLevel, ProjectRef, Runner, RunnerInfo, RunnerType};
use crate::store::directory::{
    Group, JOB_STATUSES, Job, MemberOf, Membership, PathOwner, Project, ProjectSettings, User,
    UserProfile,
};
use crate::store::item::{Item, ItemBuilder, ItemReader, key_of};
use crate::store::settings::{
    ALLOW_REGISTRATION_TOKEN, TOKEN_EXPIRATION_INTERVAL, token_expiry_attributes,
};
use crate::store::{
    IdSequence, RegistrationScope, Store, TokenRecord, keys, link_item, running_job_item,
};
use crate::time::Timestamp;
use crate::token_expiry::TokenExpiry;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// Times a fixture leaves out: fixed, so that importing twice writes identical items.
pub const DEFAULT_TIME: Timestamp = Timestamp::from_millis(0);
pub const ACCESS_LEVELS: [i64; 5] = [10, 20, 30, 40, 50];

#[derive(Debug, Clone, PartialEq)]
pub struct FixtureToken {
    pub token: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<Timestamp>,
    pub revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fixture {
    pub registration_token: Option<String>,
    /// The instance's legacy registration switch, when the file sets it.
    pub allow_runner_registration_token: Option<bool>,
    /// Runner token expiry: the settings' interval and the groups' and projects' overrides.
    pub token_expiry: TokenExpiry,
    pub users: Vec<(User, Vec<FixtureToken>)>,
    pub groups: Vec<(Group, Option<String>)>,
    pub projects: Vec<(Project, Option<String>)>,
    pub memberships: Vec<Membership>,
    pub runners: Vec<(Runner, String)>,
    pub jobs: Vec<Job>,
}

/// One object of the file, with the path used in error messages.
struct Entry<'a> {
    path: String,
    map: &'a Map<String, Value>,
}

struct Problems(Vec<String>);

impl Problems {
    fn at(&mut self, path: &str, field: &str, message: impl std::fmt::Display) {
        self.0.push(format!("{path}.{field}: {message}"));
    }
}

impl<'a> Entry<'a> {
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn id(&self, key: &str, problems: &mut Problems) -> Option<i64> {
        match self.get(key) {
            Some(Value::Number(n)) if n.as_i64().is_some_and(|i| i > 0) => n.as_i64(),
            Some(_) => {
                problems.at(&self.path, key, "expected a positive integer");
                None
            }
            None => {
                problems.at(&self.path, key, "required");
                None
            }
        }
    }

    fn opt_id(&self, key: &str, problems: &mut Problems) -> Option<i64> {
        self.get(key)?;
        self.id(key, problems)
    }

    fn string(&self, key: &str, problems: &mut Problems) -> Option<String> {
        match self.get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                problems.at(&self.path, key, "expected a string");
                None
            }
            None => None,
        }
    }

    fn required_string(&self, key: &str, problems: &mut Problems) -> Option<String> {
        match self.string(key, problems) {
            Some(s) if !s.trim().is_empty() => Some(s),
            Some(_) => {
                problems.at(&self.path, key, "must not be empty");
                None
            }
            None if self.get(key).is_none() => {
                problems.at(&self.path, key, "required");
                None
            }
            None => None,
        }
    }

    fn bool(&self, key: &str, default: bool, problems: &mut Problems) -> bool {
        match self.get(key) {
            None => default,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                problems.at(&self.path, key, "expected true or false");
                default
            }
        }
    }

    /// `runner_token_expiration_interval`: a positive number of seconds, or absent.
    fn expiry_interval(&self, problems: &mut Problems) -> Option<i64> {
        let seconds = self.int(TOKEN_EXPIRATION_INTERVAL, problems)?;
        if seconds <= 0 {
            problems.at(
                &self.path,
                TOKEN_EXPIRATION_INTERVAL,
                "expected a positive number of seconds",
            );
            return None;
        }
        Some(seconds)
    }

    fn int(&self, key: &str, problems: &mut Problems) -> Option<i64> {
        match self.get(key) {
            None => None,
            Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64(),
            Some(_) => {
                problems.at(&self.path, key, "expected an integer");
                None
            }
        }
    }

    fn number(&self, key: &str, problems: &mut Problems) -> Option<f64> {
        match self.get(key) {
            None => None,
            Some(Value::Number(n)) => n.as_f64(),
            Some(_) => {
                problems.at(&self.path, key, "expected a number");
                None
            }
        }
    }

    fn time(&self, key: &str, problems: &mut Problems) -> Option<Timestamp> {
        let text = self.string(key, problems)?;
        let parsed = Timestamp::parse(&text);
        if parsed.is_none() {
            problems.at(&self.path, key, "expected an RFC 3339 time or a date");
        }
        parsed
    }

    fn one_of(&self, key: &str, allowed: &[&str], problems: &mut Problems) -> Option<String> {
        let value = self.string(key, problems)?;
        if allowed.contains(&value.as_str()) {
            Some(value)
        } else {
            problems.at(
                &self.path,
                key,
                format!("expected one of {}", allowed.join(", ")),
            );
            None
        }
    }

    fn list(&self, key: &str, problems: &mut Problems) -> &'a [Value] {
        match self.get(key) {
            None => &[],
            Some(Value::Array(items)) => items,
            Some(_) => {
                problems.at(&self.path, key, "expected a list");
                &[]
            }
        }
    }

    fn ids(&self, key: &str, problems: &mut Problems) -> Vec<i64> {
        let mut ids = Vec::new();
        for (i, value) in self.list(key, problems).iter().enumerate() {
            match value.as_i64().filter(|i| *i > 0) {
                Some(id) => ids.push(id),
                None => problems.at(
                    &self.path,
                    &format!("{key}[{i}]"),
                    "expected a positive integer",
                ),
            }
        }
        ids
    }

    /// A plaintext token, which must be unique across the whole file.
    fn token(
        &self,
        key: &str,
        seen: &mut HashSet<String>,
        problems: &mut Problems,
    ) -> Option<String> {
        let token = self.string(key, problems)?;
        claim(seen, token.clone(), &self.path, key, problems);
        Some(token)
    }

    fn object(&self, key: &str, problems: &mut Problems) -> Option<Value> {
        match self.get(key) {
            None => None,
            Some(v @ Value::Object(_)) => Some(v.clone()),
            Some(_) => {
                problems.at(&self.path, key, "expected an object");
                None
            }
        }
    }

    fn entries(&self, key: &str, problems: &mut Problems) -> Vec<Entry<'a>> {
        entries_of(
            self.list(key, problems),
            &format!("{}.{key}", self.path),
            problems,
        )
    }
}

fn entries_of<'a>(items: &'a [Value], path: &str, problems: &mut Problems) -> Vec<Entry<'a>> {
    let mut entries = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::Object(map) => entries.push(Entry {
                path: format!("{path}[{i}]"),
                map,
            }),
            _ => problems.0.push(format!("{path}[{i}]: expected an object")),
        }
    }
    entries
}

fn top_level<'a>(
    root: &'a Map<String, Value>,
    key: &str,
    problems: &mut Problems,
) -> Vec<Entry<'a>> {
    match root.get(key) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => entries_of(items, key, problems),
        Some(_) => {
            problems.0.push(format!("{key}: expected a list"));
            Vec::new()
        }
    }
}

/// Claims a unique value, reporting the second use.
fn claim<T: Eq + std::hash::Hash>(
    seen: &mut HashSet<T>,
    value: T,
    path: &str,
    field: &str,
    problems: &mut Problems,
) {
    if !seen.insert(value) {
        problems.at(path, field, "already used by an earlier entry");
    }
}

/// A project entry's CI settings (`jobs-api.md`), defaults for what it leaves out.
fn project_settings(entry: &Entry<'_>, problems: &mut Problems) -> ProjectSettings {
    let defaults = ProjectSettings::default();
    let refs = entry.list("protected_refs", problems);
    if refs.iter().any(|r| !r.is_string()) {
        problems.at(&entry.path, "protected_refs", "expected a list of strings");
    }
    let settings = ProjectSettings {
        repository_url: entry.string("repository_url", problems),
        shared_runners_enabled: entry.bool("shared_runners_enabled", true, problems),
        group_runners_enabled: entry.bool("group_runners_enabled", true, problems),
        build_timeout: entry
            .int("build_timeout", problems)
            .unwrap_or(defaults.build_timeout),
        protected_refs: match entry.get("protected_refs") {
            None | Some(Value::Null) => defaults.protected_refs,
            Some(_) => refs
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        },
    };
    for (field, message) in settings.problems() {
        problems.at(&entry.path, field, message);
    }
    settings
}

/// Claims a full path (or username, which is a path too), which must also fit in a key.
fn claim_path(
    seen: &mut HashSet<String>,
    full_path: &str,
    path: &str,
    field: &str,
    problems: &mut Problems,
) {
    if !crate::store::keys::path_fits(full_path) {
        problems.at(
            path,
            field,
            format!(
                "the full path is longer than {} bytes",
                crate::store::keys::MAX_FULL_PATH_BYTES
            ),
        );
    }
    claim(seen, full_path.to_lowercase(), path, field, problems);
}

fn profile(entry: &Entry<'_>, problems: &mut Problems) -> UserProfile {
    let mut field = |key: &str| entry.string(key, problems);
    UserProfile {
        bio: field("bio"),
        location: field("location"),
        public_email: field("public_email"),
        skype: field("skype"),
        linkedin: field("linkedin"),
        twitter: field("twitter"),
        website_url: field("website_url"),
        organization: field("organization"),
    }
}

impl Fixture {
    /// Parses and validates a whole fixture file. `Err` lists every problem found.
    pub fn parse(text: &str) -> Result<Self, Vec<String>> {
        let root: Value =
            serde_json::from_str(text).map_err(|e| vec![format!("not valid JSON: {e}")])?;
        let Value::Object(root) = root else {
            return Err(vec!["the file must hold a JSON object".to_owned()]);
        };
        let mut problems = Problems(Vec::new());
        let mut fixture = Fixture::default();
        let mut tokens_seen: HashSet<String> = HashSet::new();
        let mut paths_seen: HashSet<String> = HashSet::new();

        match root.get("settings") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                let settings = Entry {
                    path: "settings".into(),
                    map,
                };
                fixture.registration_token = settings.token(
                    "runners_registration_token",
                    &mut tokens_seen,
                    &mut problems,
                );
                if settings.get(ALLOW_REGISTRATION_TOKEN).is_some() {
                    fixture.allow_runner_registration_token =
                        Some(settings.bool(ALLOW_REGISTRATION_TOKEN, true, &mut problems));
                }
                fixture.token_expiry.instance = settings.expiry_interval(&mut problems);
            }
            Some(_) => problems.0.push("settings: expected an object".into()),
        }

        // Users
        let mut users: HashMap<i64, User> = HashMap::new();
        let mut user_ids = HashSet::new();
        for entry in top_level(&root, "users", &mut problems) {
            let id = entry.id("id", &mut problems);
            let username = entry.required_string("username", &mut problems);
            let state = entry.one_of("state", &["active", "blocked"], &mut problems);
            let mut tokens = Vec::new();
            for token_entry in entry.entries("tokens", &mut problems) {
                if token_entry.get("token").is_none() {
                    problems.at(&token_entry.path, "token", "required");
                }
                let Some(token) = token_entry.token("token", &mut tokens_seen, &mut problems)
                else {
                    continue;
                };
                let scopes: Vec<String> = token_entry
                    .list("scopes", &mut problems)
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect();
                tokens.push(FixtureToken {
                    token,
                    scopes: if scopes.is_empty() {
                        vec!["api".to_owned()]
                    } else {
                        scopes
                    },
                    expires_at: token_entry.time("expires_at", &mut problems),
                    revoked: token_entry.bool("revoked", false, &mut problems),
                });
            }
            if let Some(id) = id {
                claim(&mut user_ids, id, &entry.path, "id", &mut problems);
            }
            let (Some(id), Some(username)) = (id, username) else {
                continue;
            };
            claim_path(
                &mut paths_seen,
                &username,
                &entry.path,
                "username",
                &mut problems,
            );
            let user = User {
                id,
                name: entry
                    .string("name", &mut problems)
                    .unwrap_or_else(|| username.clone()),
                email: entry.string("email", &mut problems),
                admin: entry.bool("admin", false, &mut problems),
                blocked: state.as_deref() == Some("blocked"),
                created_at: entry
                    .time("created_at", &mut problems)
                    .unwrap_or(DEFAULT_TIME),
                profile: profile(&entry, &mut problems),
                username,
            };
            users.insert(id, user.clone());
            fixture.users.push((user, tokens));
        }

        let mut member_entries = Vec::new();

        // Groups: first read them all, then resolve parents (a file may list children first).
        struct RawGroup {
            path_in_file: String,
            id: i64,
            name: String,
            path: String,
            parent_id: Option<i64>,
            token: Option<String>,
            created_at: Timestamp,
        }
        let mut raw_groups: Vec<RawGroup> = Vec::new();
        let mut group_ids = HashSet::new();
        for entry in top_level(&root, "groups", &mut problems) {
            let id = entry.id("id", &mut problems);
            let path = entry.required_string("path", &mut problems);
            let parent_id = entry.opt_id("parent_id", &mut problems);
            let token = entry.token("runners_token", &mut tokens_seen, &mut problems);
            if let Some(id) = id {
                for member in entry.entries("members", &mut problems) {
                    member_entries.push((MemberOf::Group(id), member));
                }
                if let Some(seconds) = entry.expiry_interval(&mut problems) {
                    fixture.token_expiry.groups.insert(id, seconds);
                }
            }
            let (Some(id), Some(path)) = (id, path) else {
                continue;
            };
            claim(&mut group_ids, id, &entry.path, "id", &mut problems);
            raw_groups.push(RawGroup {
                name: entry
                    .string("name", &mut problems)
                    .unwrap_or_else(|| path.clone()),
                created_at: entry
                    .time("created_at", &mut problems)
                    .unwrap_or(DEFAULT_TIME),
                path_in_file: entry.path,
                id,
                path,
                parent_id,
                token,
            });
        }
        let by_id: HashMap<i64, &RawGroup> = raw_groups.iter().map(|g| (g.id, g)).collect();
        let mut groups: HashMap<i64, Group> = HashMap::new();
        for raw in &raw_groups {
            // Walk up to the root: ancestors root-first, failing on a missing parent or a cycle.
            let mut chain = vec![raw];
            let mut broken = false;
            while let Some(parent_id) = chain.last().and_then(|g| g.parent_id) {
                match by_id.get(&parent_id) {
                    Some(parent) if chain.iter().any(|g| g.id == parent.id) => {
                        problems.at(
                            &raw.path_in_file,
                            "parent_id",
                            "the group hierarchy has a cycle",
                        );
                        broken = true;
                        break;
                    }
                    Some(parent) => chain.push(parent),
                    None => {
                        problems.at(
                            &raw.path_in_file,
                            "parent_id",
                            format!("no group with id {parent_id}"),
                        );
                        broken = true;
                        break;
                    }
                }
            }
            if broken {
                continue;
            }
            chain.reverse();
            let full_path = chain
                .iter()
                .map(|g| g.path.as_str())
                .collect::<Vec<_>>()
                .join("/");
            claim_path(
                &mut paths_seen,
                &full_path,
                &raw.path_in_file,
                "path",
                &mut problems,
            );
            let group = Group {
                id: raw.id,
                name: raw.name.clone(),
                path: raw.path.clone(),
                parent_id: raw.parent_id,
                full_name: chain
                    .iter()
                    .map(|g| g.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" / "),
                full_path,
                ancestor_ids: chain[..chain.len() - 1].iter().map(|g| g.id).collect(),
                created_at: raw.created_at,
            };
            groups.insert(group.id, group.clone());
            fixture.groups.push((group, raw.token.clone()));
        }

        // Projects
        let mut project_ids = HashSet::new();
        let mut project_refs: HashMap<i64, ProjectRef> = HashMap::new();
        for entry in top_level(&root, "projects", &mut problems) {
            let id = entry.id("id", &mut problems);
            let path = entry.required_string("path", &mut problems);
            let namespace_id = entry.opt_id("namespace_id", &mut problems);
            let token = entry.token("runners_token", &mut tokens_seen, &mut problems);
            let members = entry.entries("members", &mut problems);
            let first_member = members
                .first()
                .and_then(|m| m.get("user_id"))
                .and_then(Value::as_i64);
            if let Some(id) = id {
                for member in members {
                    member_entries.push((MemberOf::Project(id), member));
                }
                if let Some(seconds) = entry.expiry_interval(&mut problems) {
                    fixture.token_expiry.projects.insert(id, seconds);
                }
            }
            if let Some(id) = id {
                claim(&mut project_ids, id, &entry.path, "id", &mut problems);
            }
            let (Some(id), Some(path)) = (id, path) else {
                continue;
            };
            let name = entry
                .string("name", &mut problems)
                .unwrap_or_else(|| path.clone());
            let (namespace_path, namespace_name, group_ids, owner_id) = match namespace_id {
                Some(group_id) => match groups.get(&group_id) {
                    Some(group) => {
                        let mut ids = group.ancestor_ids.clone();
                        ids.push(group.id);
                        (group.full_path.clone(), group.full_name.clone(), ids, None)
                    }
                    None => {
                        problems.at(
                            &entry.path,
                            "namespace_id",
                            format!("no group with id {group_id}"),
                        );
                        continue;
                    }
                },
                None => match first_member.and_then(|uid| users.get(&uid)) {
                    Some(owner) => (
                        owner.username.clone(),
                        owner.name.clone(),
                        Vec::new(),
                        Some(owner.id),
                    ),
                    None => {
                        problems.at(
                            &entry.path,
                            "namespace_id",
                            "required when the project has no member to own it",
                        );
                        continue;
                    }
                },
            };
            let path_with_namespace = format!("{namespace_path}/{path}");
            claim_path(
                &mut paths_seen,
                &path_with_namespace,
                &entry.path,
                "path",
                &mut problems,
            );
            let project = Project {
                id,
                name_with_namespace: format!("{namespace_name} / {name}"),
                name,
                path,
                description: entry.string("description", &mut problems),
                namespace_id,
                owner_id,
                path_with_namespace,
                group_ids,
                created_at: entry
                    .time("created_at", &mut problems)
                    .unwrap_or(DEFAULT_TIME),
                settings: project_settings(&entry, &mut problems),
            };
            project_refs.insert(project.id, project.reference());
            fixture.projects.push((project, token));
        }

        // Memberships
        let mut seen_members = HashSet::new();
        for (of, entry) in member_entries {
            let user_id = entry.id("user_id", &mut problems);
            let level = entry.int("access_level", &mut problems);
            let (Some(user_id), Some(level)) = (user_id, level) else {
                if entry.get("access_level").is_none() {
                    problems.at(&entry.path, "access_level", "required");
                }
                continue;
            };
            if !user_ids.contains(&user_id) {
                problems.at(&entry.path, "user_id", format!("no user with id {user_id}"));
            }
            if !ACCESS_LEVELS.contains(&level) {
                problems.at(
                    &entry.path,
                    "access_level",
                    "expected one of 10, 20, 30, 40, 50",
                );
            }
            claim(
                &mut seen_members,
                (of, user_id),
                &entry.path,
                "user_id",
                &mut problems,
            );
            fixture.memberships.push(Membership {
                of,
                user_id,
                access_level: level,
            });
        }

        // Runners
        let mut runner_ids = HashSet::new();
        for entry in top_level(&root, "runners", &mut problems) {
            let id = entry.id("id", &mut problems);
            if entry.get("token").is_none() {
                problems.at(&entry.path, "token", "required");
            }
            let token = entry.token("token", &mut tokens_seen, &mut problems);
            let runner_type = match entry.get("runner_type") {
                None => {
                    problems.at(&entry.path, "runner_type", "required");
                    None
                }
                Some(_) => entry
                    .one_of("runner_type", &RunnerType::NAMES, &mut problems)
                    .and_then(|t| RunnerType::parse(&t)),
            };
            let access_level = entry
                .one_of("access_level", &AccessLevel::NAMES, &mut problems)
                .and_then(|a| AccessLevel::parse(&a))
                .unwrap_or_default();
            let tag_values = entry.list("tag_list", &mut problems);
            if tag_values.iter().any(|t| !t.is_string()) {
                problems.at(&entry.path, "tag_list", "expected a list of strings");
            }
            let projects = entry.ids("projects", &mut problems);
            let runner_groups = entry.ids("groups", &mut problems);
            for project in &projects {
                if !project_ids.contains(project) {
                    problems.at(
                        &entry.path,
                        "projects",
                        format!("no project with id {project}"),
                    );
                }
            }
            for group in &runner_groups {
                if !groups.contains_key(group) {
                    problems.at(&entry.path, "groups", format!("no group with id {group}"));
                }
            }
            match runner_type {
                Some(RunnerType::Project) if projects.is_empty() => problems.at(
                    &entry.path,
                    "projects",
                    "a project_type runner needs at least one project",
                ),
                Some(RunnerType::Group) if runner_groups.len() != 1 => problems.at(
                    &entry.path,
                    "groups",
                    "a group_type runner needs exactly one group",
                ),
                Some(RunnerType::Instance) if !projects.is_empty() || !runner_groups.is_empty() => {
                    problems.at(
                        &entry.path,
                        "runner_type",
                        "an instance_type runner has no projects or groups",
                    )
                }
                Some(RunnerType::Project) if !runner_groups.is_empty() => {
                    problems.at(&entry.path, "groups", "a project_type runner has no groups")
                }
                Some(RunnerType::Group) if !projects.is_empty() => problems.at(
                    &entry.path,
                    "projects",
                    "a group_type runner has no projects",
                ),
                _ => {}
            }
            if let Some(id) = id {
                claim(&mut runner_ids, id, &entry.path, "id", &mut problems);
            }
            let (Some(id), Some(token), Some(runner_type)) = (id, token, runner_type) else {
                continue;
            };
            let created_at = entry
                .time("created_at", &mut problems)
                .unwrap_or(DEFAULT_TIME);
            let mut runner = Runner::new(id, runner_type, TokenDigest::of(&token), created_at);
            runner.updated_at = entry
                .time("updated_at", &mut problems)
                .unwrap_or(created_at);
            runner.description = entry.string("description", &mut problems);
            runner.active = entry.bool("active", true, &mut problems);
            runner.locked = entry.bool("locked", false, &mut problems);
            runner.run_untagged = entry.bool("run_untagged", true, &mut problems);
            runner.tag_list = normalize_tags(tag_values.iter().filter_map(Value::as_str));
            runner.access_level = access_level;
            runner.maximum_timeout = entry.int("maximum_timeout", &mut problems);
            runner.maintenance_note = entry.string("maintenance_note", &mut problems);
            runner.info = RunnerInfo {
                name: entry.string("name", &mut problems),
                version: entry.string("version", &mut problems),
                revision: entry.string("revision", &mut problems),
                platform: entry.string("platform", &mut problems),
                architecture: entry.string("architecture", &mut problems),
            };
            runner.ip_address = entry.string("ip_address", &mut problems);
            runner.contacted_at = entry.time("contacted_at", &mut problems);
            runner.token_expires_at = entry.time("token_expires_at", &mut problems);
            runner.projects = projects
                .iter()
                .filter_map(|p| project_refs.get(p).cloned())
                .collect();
            runner.projects.sort_by_key(|p| p.id);
            runner.group = runner_groups
                .first()
                .and_then(|g| groups.get(g))
                .map(Group::reference);
            if let Err(e) = runner.validate() {
                problems
                    .0
                    .push(format!("{}: {}", entry.path, e.body()["message"]));
            }
            fixture.runners.push((runner, token));
        }

        // Jobs
        let mut job_ids = HashSet::new();
        for entry in top_level(&root, "jobs", &mut problems) {
            let id = entry.id("id", &mut problems);
            let runner_id = entry.id("runner_id", &mut problems);
            let project_id = entry.id("project_id", &mut problems);
            let user_id = entry.opt_id("user_id", &mut problems);
            let status = match entry.get("status") {
                None => {
                    problems.at(&entry.path, "status", "required");
                    None
                }
                Some(_) => entry.one_of("status", &JOB_STATUSES, &mut problems),
            };
            if let Some(r) = runner_id.filter(|r| !runner_ids.contains(r)) {
                problems.at(&entry.path, "runner_id", format!("no runner with id {r}"));
            }
            if let Some(p) = project_id.filter(|p| !project_ids.contains(p)) {
                problems.at(&entry.path, "project_id", format!("no project with id {p}"));
            }
            if let Some(u) = user_id.filter(|u| !user_ids.contains(u)) {
                problems.at(&entry.path, "user_id", format!("no user with id {u}"));
            }
            let project = project_id.and_then(|p| project_refs.get(&p).cloned());
            let (Some(id), Some(runner_id), Some(project), Some(status)) =
                (id, runner_id, project, status)
            else {
                continue;
            };
            claim(&mut job_ids, id, &entry.path, "id", &mut problems);
            fixture.jobs.push(Job {
                id,
                runner_id: Some(runner_id),
                project,
                user: user_id.and_then(|u| users.get(&u).cloned()),
                status,
                stage: entry.string("stage", &mut problems),
                name: entry.string("name", &mut problems),
                ref_name: entry.string("ref", &mut problems),
                tag: entry.bool("tag", false, &mut problems),
                coverage: entry.number("coverage", &mut problems),
                created_at: entry
                    .time("created_at", &mut problems)
                    .unwrap_or(DEFAULT_TIME),
                started_at: entry.time("started_at", &mut problems),
                finished_at: entry.time("finished_at", &mut problems),
                commit: entry.object("commit", &mut problems),
                pipeline: entry.object("pipeline", &mut problems),
                work: None,
                token_digest: None,
                log_length: 0,
                log_generation: 0,
                failure_reason: entry.string("failure_reason", &mut problems),
                touched_at: None,
                queues: Vec::new(),
                on_instance_runner: false,
            });
        }

        if problems.0.is_empty() {
            Ok(fixture)
        } else {
            Err(problems.0)
        }
    }

    /// Every item the fixture consists of.
    fn items(&self) -> Vec<Item> {
        let mut items = Vec::new();
        let digest = self.registration_token.as_deref().map(TokenDigest::of);
        if let Some(digest) = &digest {
            items.push(
                TokenRecord::Registration(RegistrationScope::Instance)
                    .to_item(digest, DEFAULT_TIME)
                    .build(),
            );
        }
        if digest.is_some()
            || self.allow_runner_registration_token.is_some()
            || self.token_expiry != TokenExpiry::default()
        {
            items.push(settings_item(
                digest.as_ref(),
                self.allow_runner_registration_token,
                &self.token_expiry,
            ));
        }
        for (user, tokens) in &self.users {
            items.push(user.to_item());
            items.push(user.username_item());
            items.push(PathOwner::User(user.id).to_item(&user.username));
            for token in tokens {
                let digest = TokenDigest::of(&token.token);
                let pat = PersonalAccessToken {
                    user_id: user.id,
                    admin: user.admin,
                    blocked: user.blocked,
                    scopes: token.scopes.clone(),
                    expires_at: token.expires_at,
                    revoked: token.revoked,
                };
                items.push(
                    TokenRecord::PersonalAccess(pat)
                        .to_item(&digest, DEFAULT_TIME)
                        .build(),
                );
                items.push(
                    ItemBuilder::keyed(keys::user_token(user.id, digest.as_str()))
                        .s("entity", "user_token")
                        .build(),
                );
            }
        }
        for (group, token) in &self.groups {
            let digest = token.as_deref().map(TokenDigest::of);
            items.push(group.to_item(digest.as_ref().map(TokenDigest::as_str)));
            items.push(PathOwner::Group(group.id).to_item(&group.full_path));
            if let Some(digest) = &digest {
                items.push(
                    TokenRecord::Registration(RegistrationScope::Group(group.reference()))
                        .to_item(digest, DEFAULT_TIME)
                        .build(),
                );
            }
        }
        for (project, token) in &self.projects {
            let digest = token.as_deref().map(TokenDigest::of);
            items.push(project.to_item(digest.as_ref().map(TokenDigest::as_str)));
            items.push(project.path_item());
            if let Some(digest) = &digest {
                items.push(
                    TokenRecord::Registration(RegistrationScope::Project(project.reference()))
                        .to_item(digest, DEFAULT_TIME)
                        .build(),
                );
            }
        }
        items.extend(self.memberships.iter().map(Membership::to_item));
        for (runner, _) in &self.runners {
            items.push(runner.to_item());
            let token = TokenRecord::new_runner(runner, runner.contacted_at);
            items.push(token.to_item(&runner.token_digest, DEFAULT_TIME).build());
            for project_id in runner.project_ids() {
                items.push(link_item(
                    keys::project_runner_link(project_id, runner.id),
                    runner.id,
                    runner.created_at,
                ));
            }
            if let Some(group_id) = runner.group.as_ref().map(|g| g.id) {
                items.push(link_item(
                    keys::group_runner_link(group_id, runner.id),
                    runner.id,
                    runner.created_at,
                ));
            }
        }
        for job in &self.jobs {
            items.push(job.to_item());
            if let (RUNNING, Some(runner_id)) = (job.status.as_str(), job.runner_id) {
                items.push(running_job_item(runner_id, job.id));
            }
        }
        items
    }

    /// Token digests that the objects in this file had before (from an earlier import or from
    /// the API) and no longer have: their token items must go, or the old tokens would work on.
    async fn stale_token_keys(&self, store: &Store) -> Result<Vec<Item>, String> {
        let mut current: HashMap<(String, String), Option<String>> = HashMap::new();
        if let Some(token) = &self.registration_token {
            current.insert(
                keys::settings(),
                Some(TokenDigest::of(token).as_str().to_owned()),
            );
        }
        for (group, token) in &self.groups {
            current.insert(
                keys::group(group.id),
                token
                    .as_deref()
                    .map(|t| TokenDigest::of(t).as_str().to_owned()),
            );
        }
        for (project, token) in &self.projects {
            current.insert(
                keys::project(project.id),
                token
                    .as_deref()
                    .map(|t| TokenDigest::of(t).as_str().to_owned()),
            );
        }
        for (runner, _) in &self.runners {
            current.insert(
                keys::runner(runner.id),
                Some(runner.token_digest.as_str().to_owned()),
            );
        }
        let existing = get_all(store, current.keys().cloned().map(key_of).collect()).await?;
        let mut stale = Vec::new();
        for item in existing {
            let r = ItemReader::new(&item, "fixture target");
            let (Ok(pk), Ok(sk)) = (r.s(keys::PK), r.s(keys::SK)) else {
                continue;
            };
            let old = r
                .opt_s("runners_token_digest")
                .or_else(|| r.opt_s("token_digest"))
                .or_else(|| r.opt_s("registration_token_digest"));
            if let Some(old) = old
                && current
                    .get(&(pk, sk))
                    .is_some_and(|new| new.as_deref() != Some(old.as_str()))
            {
                stale.push(key_of(keys::token(&old)));
            }
        }
        Ok(stale)
    }

    /// Writes the fixture. Safe to run again: the result is the same.
    pub async fn import(&self, store: &Store) -> Result<ImportSummary, String> {
        let stale = self.stale_token_keys(store).await?;
        let items = self.items();
        let summary = ImportSummary {
            items: items.len(),
            stale_tokens_removed: stale.len(),
        };
        put_all(store, items).await?;
        delete_all(store, stale).await?;
        let highest = |ids: Vec<i64>| ids.into_iter().max().unwrap_or(0);
        let counters = [
            (
                IdSequence::User,
                highest(self.users.iter().map(|(u, _)| u.id).collect()),
            ),
            (
                IdSequence::Group,
                highest(self.groups.iter().map(|(g, _)| g.id).collect()),
            ),
            (
                IdSequence::Project,
                highest(self.projects.iter().map(|(p, _)| p.id).collect()),
            ),
            (
                IdSequence::Runner,
                highest(self.runners.iter().map(|(r, _)| r.id).collect()),
            ),
            (
                IdSequence::Job,
                highest(self.jobs.iter().map(|j| j.id).collect()),
            ),
        ];
        for (sequence, max) in counters {
            if max > 0 {
                raise_counter(store, sequence, max).await?;
            }
        }
        // Runner and job items were written directly: count them and fill the subtree sets.
        let busy_runners: std::collections::BTreeSet<i64> =
            self.jobs.iter().filter_map(|j| j.runner_id).collect();
        if !self.runners.is_empty() || !busy_runners.is_empty() {
            let jobs = if busy_runners.is_empty() {
                JobCounts::Skip
            } else {
                JobCounts::Of(busy_runners.into_iter().collect())
            };
            super::listing::rebuild_listing(store, jobs).await?;
        }
        Ok(summary)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportSummary {
    pub items: usize,
    pub stale_tokens_removed: usize,
}

pub(crate) fn settings_item(
    registration_digest: Option<&TokenDigest>,
    allow_registration_token: Option<bool>,
    token_expiry: &TokenExpiry,
) -> Item {
    let mut builder = ItemBuilder::keyed(keys::settings())
        .s("entity", "settings")
        .opt_s(
            "registration_token_digest",
            registration_digest.map(|d| d.as_str().to_owned()),
        );
    if registration_digest.is_some() {
        builder = builder.time("registration_token_set_at", DEFAULT_TIME);
    }
    if let Some(allow) = allow_registration_token {
        builder = builder.bool(ALLOW_REGISTRATION_TOKEN, allow);
    }
    let mut item = builder.build();
    item.extend(token_expiry_attributes(token_expiry));
    item
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{
      "settings": { "runners_registration_token": "instance-reg-token" },
      "users": [
        { "id": 1, "username": "root", "name": "Administrator", "admin": true,
          "tokens": [ { "token": "root-pat", "scopes": ["api"], "expires_at": null } ] },
        { "id": 2, "username": "user" }
      ],
      "groups": [
        { "id": 11, "name": "Sub", "path": "sub", "parent_id": 10 },
        { "id": 10, "name": "Group", "path": "group", "runners_token": "group-reg-token",
          "members": [ { "user_id": 2, "access_level": 50 } ] }
      ],
      "projects": [
        { "id": 100, "name": "Project One", "path": "project-one", "namespace_id": 11,
          "runners_token": "project-reg-token", "members": [ { "user_id": 2, "access_level": 40 } ] },
        { "id": 101, "path": "mine", "members": [ { "user_id": 2, "access_level": 50 } ] }
      ],
      "runners": [
        { "id": 5, "token": "runner-token", "runner_type": "project_type", "tag_list": ["ruby"],
          "contacted_at": "2019-01-01T00:00:00.000Z", "projects": [100] }
      ],
      "jobs": [ { "id": 1000, "runner_id": 5, "project_id": 100, "user_id": 2, "status": "failed" } ]
    }"#;

    #[test]
    fn the_operations_example_parses_with_paths_built_from_the_chain() {
        let fixture = Fixture::parse(EXAMPLE).unwrap();
        let sub = &fixture.groups.iter().find(|(g, _)| g.id == 11).unwrap().0;
        assert_eq!(
            (sub.full_path.as_str(), sub.full_name.as_str()),
            ("group/sub", "Group / Sub")
        );
        assert_eq!(sub.ancestor_ids, [10]);
        let project = &fixture.projects[0].0;
        assert_eq!(project.path_with_namespace, "group/sub/project-one");
        assert_eq!(project.name_with_namespace, "Group / Sub / Project One");
        assert_eq!(project.group_ids, [10, 11]);
        let personal = &fixture.projects[1].0;
        assert_eq!(
            (personal.path_with_namespace.as_str(), personal.owner_id),
            ("user/mine", Some(2))
        );
        assert_eq!(fixture.memberships.len(), 3);
        let runner = &fixture.runners[0].0;
        assert_eq!(
            runner.projects,
            [project.reference()],
            "the runner carries its project's summary"
        );
    }

    #[test]
    fn no_plaintext_token_is_in_any_item() {
        let fixture = Fixture::parse(EXAMPLE).unwrap();
        let dump = format!("{:?}", fixture.items());
        for secret in [
            "instance-reg-token",
            "root-pat",
            "group-reg-token",
            "project-reg-token",
            "runner-token\"",
        ] {
            assert!(!dump.contains(secret), "{secret} stored in plaintext");
        }
        assert!(dump.contains(TokenDigest::of("runner-token").as_str()));
    }

    fn problems(text: &str) -> Vec<String> {
        Fixture::parse(text).unwrap_err()
    }

    #[test]
    fn errors_name_the_entry_and_field() {
        let bad_type = r#"{"runners": [{"id": 1, "token": "a", "runner_type": "instance_type"},
            {"id": 2, "token": "b", "runner_type": "instance_type"},
            {"id": 3, "token": "c", "runner_type": "instance_type"},
            {"id": 4, "token": "d", "runner_type": "shared"}]}"#;
        assert_eq!(
            problems(bad_type),
            ["runners[3].runner_type: expected one of instance_type, group_type, project_type"]
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let text = r#"{
          "users": [ { "id": 1 }, { "id": 1, "username": "x", "state": "gone" } ],
          "groups": [ { "id": 10, "path": "g", "parent_id": 99 } ],
          "runners": [ { "id": 5, "token": "t", "runner_type": "project_type" },
                       { "id": 6, "token": "t", "runner_type": "group_type", "groups": [] } ],
          "jobs": [ { "id": 1, "runner_id": 77, "project_id": 1, "status": "done" } ]
        }"#;
        let found = problems(text);
        for expected in [
            "users[0].username: required",
            "users[1].state: expected one of active, blocked",
            "groups[0].parent_id: no group with id 99",
            "runners[0].projects: a project_type runner needs at least one project",
            "runners[1].token: already used by an earlier entry",
            "runners[1].groups: a group_type runner needs exactly one group",
            "jobs[0].status: expected one of created, pending, running, success, failed, canceled, skipped, manual, scheduled",
            "jobs[0].runner_id: no runner with id 77",
        ] {
            assert!(
                found.iter().any(|p| p == expected),
                "missing {expected:?} in {found:#?}"
            );
        }
    }

    #[test]
    fn cycles_and_path_clashes() {
        let cycle = r#"{"groups": [{"id": 1, "path": "a", "parent_id": 2}, {"id": 2, "path": "b", "parent_id": 1}]}"#;
        assert!(
            problems(cycle)
                .iter()
                .all(|p| p.ends_with("the group hierarchy has a cycle"))
        );
        let clash =
            r#"{"users": [{"id": 1, "username": "Same"}], "groups": [{"id": 1, "path": "same"}]}"#;
        assert_eq!(
            problems(clash),
            ["groups[0].path: already used by an earlier entry"]
        );
    }

    #[test]
    fn invalid_runner_attributes_are_caught_before_writing() {
        let text = r#"{"runners": [{"id": 1, "token": "t", "runner_type": "instance_type", "run_untagged": false}]}"#;
        assert_eq!(
            problems(text),
            [
                r#"runners[0]: {"tags_list":["can not be empty when runner is not allowed to pick untagged jobs"]}"#
            ]
        );
    }
}
