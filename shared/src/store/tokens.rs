//! Token items: every secret the service accepts is stored once, as `TOKEN#<sha256>`, and
//! resolved with a single strongly consistent read.

use super::directory::{group_ref_from, group_ref_item, project_ref_from, project_ref_item};
use super::item::{ItemBuilder, ItemReader};
use super::{Store, keys};
use crate::auth::{PersonalAccessToken, TokenDigest};
use crate::error::ApiError;
use crate::runner::{GroupRef, ProjectRef};
use crate::time::Timestamp;

/// What a registration token registers: an instance, group or project runner. The group or
/// project is carried along, so that registering needs no further read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationScope {
    Instance,
    Group(GroupRef),
    Project(ProjectRef),
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
            } => {
                let base = base
                    .s("kind", KIND_RUNNER)
                    .n("runner_id", *runner_id)
                    .opt_time("heartbeat_at", *heartbeat_at);
                match queues {
                    Some(queues) => base.strings("queues", queues),
                    None => base,
                }
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

impl Store {
    /// Resolves a presented token by its digest: one read, whatever its kind.
    pub async fn find_token(&self, digest: &TokenDigest) -> Result<Option<TokenRecord>, ApiError> {
        match self.get(keys::token(digest.as_str())).await? {
            Some(item) => TokenRecord::from_item(&item).map(Some),
            None => Ok(None),
        }
    }
}
