//! Token items: every secret the service accepts is stored once, as `TOKEN#<sha256>`, and
//! resolved with a single strongly consistent read.

use super::directory::{Group, Project};
use super::directory::{group_ref_from, group_ref_item, project_ref_from, project_ref_item};
use super::item::{ItemBuilder, ItemReader, key_of};
use super::projects::PathKind;
use super::runners::Transaction;
use super::{Store, build_error, keys};
use crate::auth::{PersonalAccessToken, TokenDigest};
use crate::error::ApiError;
use crate::runner::RunnerType;
use crate::runner::{GroupRef, ProjectRef};
use crate::time::Timestamp;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, TransactWriteItem, Update};
use std::collections::BTreeMap;

/// What a registration token registers: an instance, group or project runner. The group or
/// project is carried along, so that registering needs no further read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationScope {
    Instance,
    Group(GroupRef),
    Project(ProjectRef),
}

/// What a runner's token item knows of the version the runner last reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastVersion {
    /// The item was written before tokens kept it.
    Unknown,
    /// That version (`None`: it reported none).
    Known(Option<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRecord {
    /// A runner authentication token. `heartbeat_at` copies the runner's last recorded contact
    /// so that a heartbeat can be skipped without reading the runner.
    Runner {
        runner_id: i64,
        heartbeat_at: Option<Timestamp>,
        /// The job queues the runner takes from (`jobs::runner_queues`), kept in step with its
        /// projects and type, so that a poll reads them beside the runner. `None` on items
        /// written before queues existed: read the runner first.
        queues: Option<Vec<String>>,
        /// When each of the runner's managers (by `system_id`) last had its heartbeat written,
        /// so that a poll from a known host skips the write without reading anything else.
        /// `None` on items written before managers existed.
        managers: Option<BTreeMap<String, Timestamp>>,
        /// When the token stops working (`None`: never).
        expires_at: Option<Timestamp>,
        /// The runner's type, kept in step with it, so that its first heartbeat knows its
        /// listing keys without reading it. `None` on items written before.
        runner_type: Option<RunnerType>,
        /// When the runner was created, so that its first heartbeat knows the day it was last
        /// seen (its last-seen count) without reading it. `None` on items written before.
        runner_created_at: Option<Timestamp>,
        /// The version the runner last reported, so that a heartbeat knows whether it moves
        /// its version prefix facets without reading it.
        runner_version: LastVersion,
    },
    Registration(RegistrationScope),
    PersonalAccess(PersonalAccessToken),
}

pub(crate) const KIND_RUNNER: &str = "runner";
pub(crate) const KIND_REGISTRATION: &str = "registration";
pub(crate) const KIND_PERSONAL_ACCESS: &str = "personal_access";

impl TokenRecord {
    pub fn to_item(&self, digest: &TokenDigest, now: Timestamp) -> ItemBuilder {
        let base = ItemBuilder::keyed(keys::token(digest.as_str()))
            .s("entity", "token")
            .time("created_at", now);
        match self {
            Self::Runner {
                runner_id,
                heartbeat_at,
                queues,
                managers,
                expires_at,
                runner_type,
                runner_created_at,
                runner_version,
            } => {
                let mut base = base
                    .s("kind", KIND_RUNNER)
                    .n("runner_id", *runner_id)
                    .opt_time("heartbeat_at", *heartbeat_at)
                    .opt_time("expires_at", *expires_at)
                    .opt_time("runner_created_at", *runner_created_at)
                    .opt_s("runner_type", runner_type.map(|t| t.as_str().to_owned()));
                if let Some(queues) = queues {
                    base = base.strings("queues", queues);
                }
                if let Some(managers) = managers {
                    base = base.map("managers", manager_heartbeats_item(managers));
                }
                if let LastVersion::Known(version) = runner_version {
                    base = base.s_or_null("runner_version", version.clone());
                }
                base
            }
            Self::Registration(scope) => {
                let base = base.s("kind", KIND_REGISTRATION);
                match scope {
                    RegistrationScope::Instance => base.s("scope", "instance"),
                    RegistrationScope::Group(group) => {
                        base.s("scope", "group").map("group", group_ref_item(group))
                    }
                    RegistrationScope::Project(project) => base
                        .s("scope", "project")
                        .map("project", project_ref_item(project)),
                }
            }
            Self::PersonalAccess(pat) => base
                .s("kind", KIND_PERSONAL_ACCESS)
                .n("user_id", pat.user_id)
                .bool("admin", pat.admin)
                .bool("blocked", pat.blocked)
                .strings("scopes", &pat.scopes)
                .opt_time("expires_at", pat.expires_at)
                .bool("revoked", pat.revoked),
        }
    }

    fn from_item(item: &super::item::Item) -> Result<Self, ApiError> {
        let r = ItemReader::new(item, "token");
        match r.s("kind")?.as_str() {
            KIND_RUNNER => Ok(Self::Runner {
                runner_id: r.n("runner_id")?,
                heartbeat_at: r.opt_time("heartbeat_at")?,
                queues: if r.opt_list("queues") {
                    Some(r.strings("queues")?)
                } else {
                    None
                },
                managers: r
                    .map("managers")?
                    .map(manager_heartbeats_from)
                    .transpose()?,
                expires_at: r.opt_time("expires_at")?,
                runner_type: r
                    .opt_s("runner_type")
                    .as_deref()
                    .and_then(RunnerType::parse),
                runner_created_at: r.opt_time("runner_created_at")?,
                runner_version: match item.get("runner_version") {
                    None => LastVersion::Unknown,
                    Some(_) => LastVersion::Known(r.opt_s("runner_version")),
                },
            }),
            KIND_REGISTRATION => {
                let missing =
                    || ApiError::internal("registration token without its group or project");
                let scope = match r.s("scope")?.as_str() {
                    "instance" => RegistrationScope::Instance,
                    "group" => RegistrationScope::Group(group_ref_from(
                        r.map("group")?.ok_or_else(missing)?,
                    )?),
                    "project" => RegistrationScope::Project(project_ref_from(
                        r.map("project")?.ok_or_else(missing)?,
                    )?),
                    other => {
                        return Err(ApiError::internal(format!(
                            "unknown registration scope {other}"
                        )));
                    }
                };
                Ok(Self::Registration(scope))
            }
            KIND_PERSONAL_ACCESS => Ok(Self::PersonalAccess(PersonalAccessToken {
                user_id: r.n("user_id")?,
                admin: r.bool_or("admin", false),
                blocked: r.bool_or("blocked", false),
                scopes: r.strings("scopes")?,
                expires_at: r.opt_time("expires_at")?,
                revoked: r.bool_or("revoked", false),
            })),
            other => Err(ApiError::internal(format!("unknown token kind {other}"))),
        }
    }
}

impl TokenRecord {
    /// The record of a runner's current token (`runner.token_expires_at` is its expiry),
    /// carrying the runner's queues and no known manager.
    pub fn new_runner(runner: &crate::runner::Runner, heartbeat_at: Option<Timestamp>) -> Self {
        Self::Runner {
            runner_id: runner.id,
            heartbeat_at,
            queues: Some(crate::jobs::runner_queues(runner)),
            managers: Some(BTreeMap::new()),
            expires_at: runner.token_expires_at,
            runner_type: Some(runner.runner_type),
            runner_created_at: Some(runner.created_at),
            runner_version: LastVersion::Known(runner.info.version.clone()),
        }
    }
}

fn manager_heartbeats_item(managers: &BTreeMap<String, Timestamp>) -> super::item::Item {
    managers
        .iter()
        .map(|(system_id, at)| {
            (
                system_id.clone(),
                AttributeValue::N(at.millis().to_string()),
            )
        })
        .collect()
}

fn manager_heartbeats_from(
    item: &super::item::Item,
) -> Result<BTreeMap<String, Timestamp>, ApiError> {
    item.iter()
        .map(|(system_id, value)| {
            let millis = value
                .as_n()
                .ok()
                .and_then(|n| n.parse::<i64>().ok())
                .ok_or_else(|| ApiError::internal("a manager heartbeat is not a number"))?;
            Ok((system_id.clone(), Timestamp::from_millis(millis)))
        })
        .collect()
}

/// Where a registration token's digest is kept: the settings item for the instance's, the group
/// or project item for theirs.
fn registration_holder(scope: &RegistrationScope) -> ((String, String), &'static str) {
    match scope {
        RegistrationScope::Instance => (keys::settings(), super::settings::REGISTRATION_DIGEST),
        RegistrationScope::Group(group) => (keys::group(group.id), "runners_token_digest"),
        RegistrationScope::Project(project) => (keys::project(project.id), "runners_token_digest"),
    }
}

impl Store {
    /// A group's or a project's registration-token holder, named by id or full path: its scope
    /// and the digest it holds now, from one read of its item (after the path item, for a
    /// path). `None`: there is no such group or project.
    pub(crate) async fn registration_holder(
        &self,
        id_or_path: &str,
        kind: PathKind,
    ) -> Result<Option<(RegistrationScope, Option<String>)>, ApiError> {
        let Some(id) = self.path_id(id_or_path, kind).await? else {
            return Ok(None);
        };
        let key = match kind {
            PathKind::Group => keys::group(id),
            PathKind::Project => keys::project(id),
        };
        let Some(item) = self.get(key).await? else {
            return Ok(None);
        };
        let scope = match kind {
            PathKind::Group => RegistrationScope::Group(Group::from_item(&item)?.reference()),
            PathKind::Project => RegistrationScope::Project(Project::from_item(&item)?.reference()),
        };
        let (_, attribute) = registration_holder(&scope);
        let digest = ItemReader::new(&item, "token holder").opt_s(attribute);
        Ok(Some((scope, digest)))
    }

    /// The digest of the registration token a scope has now, if any.
    pub async fn registration_token_digest(
        &self,
        scope: &RegistrationScope,
    ) -> Result<Option<String>, ApiError> {
        let (key, attribute) = registration_holder(scope);
        Ok(self
            .get(key)
            .await?
            .and_then(|item| ItemReader::new(&item, "token holder").opt_s(attribute)))
    }

    /// Replaces a scope's registration token in one transaction: the new token item comes, the
    /// holder's digest moves (on condition that it is still `old`), and the old token item goes,
    /// so the old token stops working at that instant and two resets racing can never leave a
    /// token item the holder does not name. `false`: the token changed meanwhile; read again.
    pub async fn replace_registration_token(
        &self,
        scope: &RegistrationScope,
        old: Option<&str>,
        new: &TokenDigest,
        now: Timestamp,
    ) -> Result<bool, ApiError> {
        let (key, attribute) = registration_holder(scope);
        let is_instance = matches!(scope, RegistrationScope::Instance);
        let mut holder = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(key)))
            .expression_attribute_names("#digest", attribute)
            .expression_attribute_values(":new", AttributeValue::S(new.as_str().to_owned()));
        holder = if is_instance {
            holder
                .update_expression(
                    "SET #digest = :new, entity = :entity, registration_token_set_at = :now",
                )
                .expression_attribute_values(":entity", AttributeValue::S("settings".into()))
                .expression_attribute_values(":now", AttributeValue::N(now.millis().to_string()))
        } else {
            holder.update_expression("SET #digest = :new")
        };
        let exists = if is_instance {
            ""
        } else {
            "attribute_exists(pk) AND "
        };
        holder = match old {
            Some(old) => holder
                .condition_expression(format!("{exists}#digest = :old"))
                .expression_attribute_values(":old", AttributeValue::S(old.to_owned())),
            None => holder.condition_expression(format!("{exists}attribute_not_exists(#digest)")),
        };
        let mut actions = vec![
            self.put(
                TokenRecord::Registration(scope.clone())
                    .to_item(new, now)
                    .build(),
                "attribute_not_exists(pk)",
            )?,
            TransactWriteItem::builder()
                .update(holder.build().map_err(build_error)?)
                .build(),
        ];
        if let Some(old) = old {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key_of(keys::token(old))))
                .build()
                .map_err(build_error)?;
            actions.push(TransactWriteItem::builder().delete(delete).build());
        }
        Ok(matches!(
            self.transact(actions).await?,
            Transaction::Committed
        ))
    }

    /// Resolves a presented token by its digest: one read, whatever its kind.
    pub async fn find_token(&self, digest: &TokenDigest) -> Result<Option<TokenRecord>, ApiError> {
        match self.get(keys::token(digest.as_str())).await? {
            Some(item) => TokenRecord::from_item(&item).map(Some),
            None => Ok(None),
        }
    }
}
