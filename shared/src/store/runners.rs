//! Runner items and the writes that keep a runner, its token item and its links in step.

use super::directory::{group_ref_from, group_ref_item, project_ref_from, project_ref_item};
use super::item::{Item, ItemBuilder, ItemReader, key_of};
use super::listing::SeenBefore;
use super::tokens::{LastVersion, TokenRecord};
use super::{Store, build_error, is_size_limit, keys, storage_error, too_large};
use crate::auth::TokenDigest;
use crate::error::ApiError;
use crate::metrics;
use crate::runner::{AccessLevel, ProjectRef, Runner, RunnerChanges, RunnerInfo, RunnerType};
use crate::time::Timestamp;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, ReturnValue, TransactWriteItem, Update,
};

/// The most links one runner may have: a delete removes the runner, its token and every link in
/// one transaction of at most 100 actions, with its counts in an outbox item in the last one
/// when they do not fit (`store::listing_outbox`).
pub const MAX_LINKS_PER_RUNNER: usize = 97;

/// How many writes that did not fit in a runner's transaction (index entries, managers) go out
/// at once right after it.
const SPILLED_WRITES_IN_FLIGHT: usize = 16;

/// DynamoDB's limit on the actions of one transaction.
pub(crate) const MAX_TRANSACTION_ACTIONS: usize = 100;

/// What a runner's token says of its contacts, for its heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactState {
    /// The runner's type and when it was last seen (its last contact, or its creation), which
    /// the heartbeat moves its listing from.
    Known {
        runner_type: RunnerType,
        seen: SeenBefore,
        version: LastVersion,
    },
    /// The token item does not know the runner's type, or its creation before its first
    /// contact (it was written before it kept them): the heartbeat reads the runner, and
    /// tells the token.
    Unknown,
}

/// The runner a heartbeat writes, as its token or its own item says it is now.
struct Contacted {
    id: i64,
    runner_type: RunnerType,
    seen: SeenBefore,
    /// The version it reported last (its version prefix facets).
    version: KnownVersion,
    /// Read from the runner item, not the token: the token learns its type.
    read: bool,
}

/// What a heartbeat knows of the version a runner reported before this one.
enum KnownVersion {
    /// From its token item or its own (`None`: it reported none).
    Was(Option<String>),
    /// The token item does not know (it is older): taken to be the one reported now (a
    /// runner's version rarely changes), on condition that the runner's is; else the runner
    /// is read.
    AsReported,
}

/// What a heartbeat (`POST /runners/verify`) records: the address and the `info` fields other
/// than `name`, which only registration takes (as in GitLab).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Heartbeat {
    pub ip_address: Option<String>,
    pub info: RunnerInfo,
    /// The host's `system_id`: with one, the heartbeat is also its manager's.
    pub system_id: Option<String>,
    /// `info[executor]`, kept per manager.
    pub executor: Option<String>,
}

impl Heartbeat {
    /// GitLab's limits on the reported fields and the `system_id`, as a 400 before any write.
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut errors = crate::error::ValidationErrors::default();
        self.info.check(&mut errors);
        crate::runner::check_length(
            &mut errors,
            "executor_type",
            self.executor.as_deref(),
            crate::runner::MAX_INFO_CHARS,
        );
        crate::runner::check_length(
            &mut errors,
            "system_xid",
            self.system_id.as_deref(),
            crate::runner::MAX_SYSTEM_ID_CHARS,
        );
        errors.into_result()
    }
}

#[derive(Debug)]
pub enum CreateRunnerError {
    /// The registration token was reset or removed while we registered.
    RegistrationTokenGone,
    /// The id or the token digest is already taken (a seeded id, or a digest collision).
    Collision,
    Storage(ApiError),
}

impl From<ApiError> for CreateRunnerError {
    fn from(e: ApiError) -> Self {
        Self::Storage(e)
    }
}

impl Runner {
    pub fn to_item(&self) -> Item {
        let padded = keys::padded(self.id);
        ItemBuilder::keyed(keys::runner(self.id))
            .s(keys::GSI1_PK, keys::ALL_RUNNERS)
            .s(keys::GSI1_SK, padded.clone())
            .s(
                keys::GSI2_PK,
                keys::runners_of_type(self.runner_type.as_str()),
            )
            .s(keys::GSI2_SK, padded.clone())
            .s(
                keys::GSI3_PK,
                keys::runner_ids(self.runner_type.as_str(), keys::runner_bucket(self.id)),
            )
            .s(keys::GSI3_SK, padded)
            .s("entity", "runner")
            .n("id", self.id)
            .s("runner_type", self.runner_type.as_str())
            .opt_s("description", self.description.clone())
            .bool("active", self.active)
            .bool("locked", self.locked)
            .bool("run_untagged", self.run_untagged)
            .strings("tag_list", &self.tag_list)
            .s("access_level", self.access_level.as_str())
            .opt_n("maximum_timeout", self.maximum_timeout)
            .opt_s("maintenance_note", self.maintenance_note.clone())
            .opt_s("name", self.info.name.clone())
            .opt_s("version", self.info.version.clone())
            .opt_s("revision", self.info.revision.clone())
            .opt_s("platform", self.info.platform.clone())
            .opt_s("architecture", self.info.architecture.clone())
            .opt_s("ip_address", self.ip_address.clone())
            .opt_time("contacted_at", self.contacted_at)
            .time("created_at", self.created_at)
            .time("updated_at", self.updated_at)
            .map("projects", self.projects_item())
            .opt_map("group", self.group.as_ref().map(group_ref_item))
            .s("token_digest", self.token_digest.as_str())
            .n("lock_version", self.lock_version)
            .opt_n("created_by", self.created_by)
            .opt_time("token_expires_at", self.token_expires_at)
            .build()
    }

    pub fn from_item(item: &Item) -> Result<Self, ApiError> {
        let r = ItemReader::new(item, "runner");
        let runner_type = r.s("runner_type")?;
        let access_level = r.s("access_level")?;
        Ok(Self {
            id: r.n("id")?,
            runner_type: RunnerType::parse(&runner_type)
                .ok_or_else(|| ApiError::internal(format!("runner type {runner_type}")))?,
            description: r.opt_s("description"),
            active: r.bool("active")?,
            locked: r.bool("locked")?,
            run_untagged: r.bool("run_untagged")?,
            tag_list: r.strings("tag_list")?,
            access_level: AccessLevel::parse(&access_level)
                .ok_or_else(|| ApiError::internal(format!("access level {access_level}")))?,
            maximum_timeout: r.opt_n("maximum_timeout")?,
            maintenance_note: r.opt_s("maintenance_note"),
            info: RunnerInfo {
                name: r.opt_s("name"),
                version: r.opt_s("version"),
                revision: r.opt_s("revision"),
                platform: r.opt_s("platform"),
                architecture: r.opt_s("architecture"),
            },
            ip_address: r.opt_s("ip_address"),
            contacted_at: r.opt_time("contacted_at")?,
            created_at: r.time("created_at")?,
            updated_at: r.time("updated_at")?,
            projects: read_projects(r.map("projects")?)?,
            group: r.map("group")?.map(group_ref_from).transpose()?,
            token_digest: TokenDigest::from_stored(r.s("token_digest")?),
            lock_version: r.n("lock_version")?,
            created_by: r.opt_n("created_by")?,
            token_expires_at: r.opt_time("token_expires_at")?,
        })
    }

    /// Projects as a map keyed by id, so that enabling and disabling one is a single `SET` or
    /// `REMOVE` on the runner item.
    fn projects_item(&self) -> Item {
        self.projects
            .iter()
            .map(|p| (p.id.to_string(), AttributeValue::M(project_ref_item(p))))
            .collect()
    }

    /// The link items that make the runner show up under its projects and group.
    fn link_keys(&self) -> Vec<(String, String)> {
        let projects = self
            .project_ids()
            .map(|p| keys::project_runner_link(p, self.id));
        let group = self
            .group
            .as_ref()
            .map(|g| keys::group_runner_link(g.id, self.id));
        projects.chain(group).collect()
    }
}

fn read_projects(map: Option<&Item>) -> Result<Vec<ProjectRef>, ApiError> {
    let mut projects = Vec::new();
    for value in map.into_iter().flat_map(|m| m.values()) {
        let item = value
            .as_m()
            .map_err(|_| ApiError::internal("a runner's project is not a map"))?;
        projects.push(project_ref_from(item)?);
    }
    projects.sort_by_key(|p| p.id);
    Ok(projects)
}

/// The item that links a runner to a project or group (`keys::project_runner_link`,
/// `keys::group_runner_link`). Its `created_at` is when the runner was enabled there, which is
/// what `If-Unmodified-Since` on disabling compares (GitLab's `runner_project.updated_at`; a
/// link never changes after it is made).
pub(crate) fn link_item(key: (String, String), runner_id: i64, created_at: Timestamp) -> Item {
    ItemBuilder::keyed(key)
        .s("entity", "runner_link")
        .n("runner_id", runner_id)
        .time("created_at", created_at)
        .build()
}

fn is_conditional_failure(code: Option<&str>) -> bool {
    code == Some("ConditionalCheckFailed")
}

/// How a transaction ended when DynamoDB refused it for a failed condition: the reason code of
/// each action, in the order of the actions.
pub(crate) enum Transaction {
    Committed,
    ConditionFailed(Vec<Option<String>>),
}

impl Transaction {
    pub(crate) fn failed_at(&self, index: usize) -> bool {
        matches!(self, Self::ConditionFailed(codes) if codes.get(index).is_some_and(|c| is_conditional_failure(c.as_deref())))
    }
}

impl Store {
    /// Runs a write transaction. A cancellation for a failed condition is an answer the caller
    /// interprets. A conflict with another transaction on the same items is retried (the retry
    /// re-evaluates the conditions, so the loser of a race sees the winner's result); any other
    /// cancellation is transient: 503.
    pub(crate) async fn transact(
        &self,
        actions: Vec<TransactWriteItem>,
    ) -> Result<Transaction, ApiError> {
        const ATTEMPTS: u32 = 5;
        for attempt in 1..=ATTEMPTS {
            let result = metrics::track(
                self.client
                    .transact_write_items()
                    .set_transact_items(Some(actions.clone()))
                    .send(),
            )
            .await;
            let error = match result {
                Ok(_) => return Ok(Transaction::Committed),
                Err(error) => error,
            };
            let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                error.as_service_error()
            else {
                return Err(storage_error(error));
            };
            let reasons = cancelled.cancellation_reasons();
            if let Some(reason) = reasons.iter().find(|r| {
                r.code() == Some("ValidationError") && r.message().is_some_and(is_size_limit)
            }) {
                return Err(too_large(reason.message().unwrap_or_default()));
            }
            let codes: Vec<Option<String>> = reasons
                .iter()
                .map(|r| r.code().map(str::to_owned))
                .collect();
            if codes.iter().any(|c| is_conditional_failure(c.as_deref())) {
                return Ok(Transaction::ConditionFailed(codes));
            }
            let conflict = codes
                .iter()
                .any(|c| c.as_deref() == Some("TransactionConflict"));
            if !conflict || attempt == ATTEMPTS {
                return Err(ApiError::Unavailable(format!(
                    "transaction cancelled: {codes:?}"
                )));
            }
            super::back_off(attempt).await;
        }
        Err(ApiError::Unavailable(
            "transaction retries exhausted".into(),
        ))
    }

    /// Runs a transaction of `actions` and as many of `spill` (index entries a list can do
    /// without for a moment: puts and deletes without conditions) as fit in its 100 actions;
    /// the rest of `spill` is written right after it commits. A list leaves out an id whose
    /// runner it cannot read or that no longer matches, and `runnerctl table rebuild-lists`
    /// repairs what a failure in between leaves.
    pub(crate) async fn transact_spilling(
        &self,
        mut actions: Vec<TransactWriteItem>,
        mut spill: Vec<TransactWriteItem>,
    ) -> Result<Transaction, ApiError> {
        let room = MAX_TRANSACTION_ACTIONS.saturating_sub(actions.len());
        let after = spill.split_off(room.min(spill.len()));
        actions.extend(spill);
        let outcome = self.transact(actions).await?;
        if !matches!(outcome, Transaction::Committed) {
            return Ok(outcome);
        }
        use futures_util::{StreamExt, TryStreamExt};
        futures_util::stream::iter(after)
            .map(|action| async move {
                if let Some(put) = action.put {
                    metrics::track(
                        self.client
                            .put_item()
                            .table_name(&self.table)
                            .set_item(Some(put.item))
                            .send(),
                    )
                    .await
                    .map(|_| ())
                    .map_err(storage_error)
                } else if let Some(delete) = action.delete {
                    metrics::track(
                        self.client
                            .delete_item()
                            .table_name(&self.table)
                            .set_key(Some(delete.key))
                            .send(),
                    )
                    .await
                    .map(|_| ())
                    .map_err(storage_error)
                } else {
                    Err(ApiError::internal("only puts and deletes spill"))
                }
            })
            .buffer_unordered(SPILLED_WRITES_IN_FLIGHT)
            .try_for_each(|()| async { Ok(()) })
            .await?;
        Ok(Transaction::Committed)
    }

    pub async fn get_runner(&self, id: i64) -> Result<Option<Runner>, ApiError> {
        match self.get(keys::runner(id)).await? {
            Some(item) => Runner::from_item(&item).map(Some),
            None => Ok(None),
        }
    }

    pub(crate) fn put(&self, item: Item, condition: &str) -> Result<TransactWriteItem, ApiError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Creates a runner with its token item and links in one transaction, on condition that
    /// neither the id nor the token is taken and, for a registration, that the registration token
    /// still exists. Either everything is written or nothing is.
    pub async fn create_runner(
        &self,
        runner: &Runner,
        registration_token: Option<&TokenDigest>,
    ) -> Result<(), CreateRunnerError> {
        let now = runner.created_at;
        let token = TokenRecord::new_runner(runner, None);
        let mut actions = vec![
            self.put(runner.to_item(), "attribute_not_exists(pk)")?,
            self.put(
                token.to_item(&runner.token_digest, now).build(),
                "attribute_not_exists(pk)",
            )?,
        ];
        for key in runner.link_keys() {
            actions.push(self.put(link_item(key, runner.id, now), "attribute_not_exists(pk)")?);
        }
        let registration_check = actions.len();
        if let Some(registration_token) = registration_token {
            let check = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(key_of(keys::token(registration_token.as_str()))))
                .condition_expression("attribute_exists(pk)")
                .build()
                .map_err(build_error)?;
            actions.push(TransactWriteItem::builder().condition_check(check).build());
        }
        let changes = super::listing::listing_changes(None, Some(runner));
        match self.transact_listing(actions, &changes, Vec::new()).await? {
            Transaction::Committed => Ok(()),
            outcome if outcome.failed_at(registration_check) => {
                Err(CreateRunnerError::RegistrationTokenGone)
            }
            Transaction::ConditionFailed(_) => Err(CreateRunnerError::Collision),
        }
    }

    /// Records a heartbeat on the runner, on its token item and, with a `system_id`, on that
    /// manager (created on first contact) in one transaction, so that the token never remembers
    /// a heartbeat that was not written (a skipped write would then leave the runner or the
    /// manager never-contacted). `known_managers` says whether the token item has its map of
    /// manager heartbeats yet; `contact` what the token says of the runner's contacts. The same
    /// transaction moves the runner's listing by its contact (`listing::contact_changes`: its
    /// contact entry and count, and on a first contact its `never_contacted` count and entry), on
    /// condition that the runner's type and last contact are what the token said (else the
    /// runner is read, and the heartbeat tried again as it is). Returns `false` when the runner
    /// no longer exists or no longer has this token.
    pub async fn record_heartbeat(
        &self,
        runner_id: i64,
        token: &TokenDigest,
        heartbeat: &Heartbeat,
        known_managers: bool,
        mut contact: ContactState,
        at: Timestamp,
    ) -> Result<bool, ApiError> {
        // Hosts of one runner reporting different versions at once each move its version
        // facets, on condition of the version they read: the losers read again, after a
        // jittered wait so that they do not collide again.
        for attempt in 0..super::RUNNER_WRITE_ATTEMPTS {
            if attempt > 1 {
                super::back_off(attempt - 1).await;
            }
            let runner = match &contact {
                ContactState::Known {
                    runner_type,
                    seen,
                    version,
                } => Contacted {
                    id: runner_id,
                    runner_type: *runner_type,
                    seen: *seen,
                    version: match version {
                        LastVersion::Known(version) => KnownVersion::Was(version.clone()),
                        LastVersion::Unknown => KnownVersion::AsReported,
                    },
                    read: false,
                },
                ContactState::Unknown => match self.get_runner(runner_id).await? {
                    Some(runner) if runner.token_digest == *token => Contacted {
                        id: runner_id,
                        runner_type: runner.runner_type,
                        seen: match runner.contacted_at {
                            Some(last) => SeenBefore::Contacted(last),
                            None => SeenBefore::Created(runner.created_at),
                        },
                        version: KnownVersion::Was(runner.info.version.clone()),
                        read: true,
                    },
                    _ => return Ok(false),
                },
            };
            let actions = self.heartbeat_actions(&runner, token, heartbeat, known_managers, at)?;
            match self.transact(actions).await? {
                Transaction::Committed => return Ok(true),
                // The runner is not as the token said (or is gone): read it.
                outcome if outcome.failed_at(0) => contact = ContactState::Unknown,
                Transaction::ConditionFailed(_) => return Ok(false),
            }
        }
        Err(ApiError::Unavailable(format!(
            "runner {runner_id} kept changing during a heartbeat"
        )))
    }

    /// The heartbeat transaction's actions: the runner first (its condition says whether it is
    /// the runner the caller thinks), the manager, the token; then the listing changes of its
    /// contact.
    fn heartbeat_actions(
        &self,
        runner: &Contacted,
        token: &TokenDigest,
        heartbeat: &Heartbeat,
        known_managers: bool,
        at: Timestamp,
    ) -> Result<Vec<TransactWriteItem>, ApiError> {
        let runner_id = runner.id;
        let at_value = AttributeValue::N(at.millis().to_string());
        let info = &heartbeat.info;
        let reported = [
            ("ip_address", &heartbeat.ip_address),
            ("version", &info.version),
            ("revision", &info.revision),
            ("platform", &info.platform),
            ("architecture", &info.architecture),
        ];
        let mut runner_update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::runner(runner_id))))
            .expression_attribute_values(":digest", AttributeValue::S(token.as_str().to_owned()));
        let type_value = AttributeValue::S(runner.runner_type.as_str().to_owned());
        runner_update = runner_update.expression_attribute_values(":type", type_value.clone());
        let mut conditions =
            vec!["attribute_exists(pk) AND token_digest = :digest AND runner_type = :type"];
        match runner.seen {
            // Its last contact in the span the token says (where it is counted), not exactly
            // the token's: heartbeats of one runner's hosts at once then all land.
            SeenBefore::Contacted(last) => {
                let span = keys::contact_span(last.millis());
                let first = span.saturating_mul(keys::CONTACT_SPAN_MS);
                let end = first.saturating_add(keys::CONTACT_SPAN_MS - 1);
                conditions.push("contacted_at BETWEEN :span_first AND :span_last");
                runner_update = runner_update
                    .expression_attribute_values(
                        ":span_first",
                        AttributeValue::N(first.to_string()),
                    )
                    .expression_attribute_values(":span_last", AttributeValue::N(end.to_string()));
            }
            // Its creation as the token says: the day it is counted as last seen.
            SeenBefore::Created(created_at) => {
                conditions.push("attribute_not_exists(contacted_at) AND created_at = :created");
                runner_update = runner_update.expression_attribute_values(
                    ":created",
                    AttributeValue::N(created_at.millis().to_string()),
                );
            }
        }
        let mut sets = vec!["contacted_at = :at".to_owned()];
        for (attribute, value) in reported {
            if let Some(value) = value {
                sets.push(format!("{attribute} = :{attribute}"));
                runner_update = runner_update.expression_attribute_values(
                    format!(":{attribute}"),
                    AttributeValue::S(value.clone()),
                );
            }
        }
        // A reported version moves the runner's version prefix facets when it is another one,
        // on condition of the version they were computed from.
        let mut version_move = None;
        if let Some(reported) = &info.version {
            let was = match &runner.version {
                KnownVersion::AsReported => {
                    conditions.push("version = :version");
                    Some(reported.as_str())
                }
                KnownVersion::Was(Some(was)) => {
                    conditions.push("version = :was_version");
                    runner_update = runner_update.expression_attribute_values(
                        ":was_version",
                        AttributeValue::S(was.clone()),
                    );
                    Some(was.as_str())
                }
                KnownVersion::Was(None) => {
                    conditions.push("attribute_not_exists(version)");
                    None
                }
            };
            if was != Some(reported.as_str()) {
                version_move = Some(super::listing::VersionMove { was, now: reported });
            }
        }
        let runner_update = runner_update
            .condition_expression(conditions.join(" AND "))
            .update_expression(format!("SET {}", sets.join(", ")))
            .expression_attribute_values(":at", at_value.clone())
            .build()
            .map_err(build_error)?;

        let mut token_update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::token(token.as_str()))))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":at", at_value.clone());
        let mut actions = vec![TransactWriteItem::builder().update(runner_update).build()];
        let mut token_sets = vec!["heartbeat_at = :at"];
        // The token learns the version reported, unless it holds it already.
        if let Some(reported) = &info.version {
            let holds = !runner.read
                && matches!(&runner.version, KnownVersion::Was(Some(was)) if was == reported);
            if !holds {
                token_sets.push("runner_version = :version");
                token_update = token_update
                    .expression_attribute_values(":version", AttributeValue::S(reported.clone()));
            }
        }
        if runner.read {
            token_sets.push("runner_type = :type");
            token_update = token_update.expression_attribute_values(":type", type_value);
            if let SeenBefore::Created(created_at) = runner.seen {
                token_sets.push("runner_created_at = :runner_created");
                token_update = token_update.expression_attribute_values(
                    ":runner_created",
                    AttributeValue::N(created_at.millis().to_string()),
                );
            }
        }
        if let Some(system_id) = &heartbeat.system_id {
            token_update = if known_managers {
                token_sets.push("managers.#system_id = :at");
                token_update.expression_attribute_names("#system_id", system_id)
            } else {
                // An item from before managers: start the map (a racing first heartbeat may
                // overwrite it, which costs that host one more write, nothing else).
                token_sets.push("managers = :managers");
                token_update.expression_attribute_values(
                    ":managers",
                    AttributeValue::M([(system_id.clone(), at_value.clone())].into()),
                )
            };
            let manager = self.manager_upsert(runner_id, system_id, heartbeat, at)?;
            actions.push(TransactWriteItem::builder().update(manager).build());
        }
        let token_update = token_update
            .update_expression(format!("SET {}", token_sets.join(", ")))
            .build()
            .map_err(build_error)?;
        actions.push(TransactWriteItem::builder().update(token_update).build());
        let changes = super::listing::contact_changes(
            runner.runner_type,
            runner_id,
            runner.seen,
            at,
            version_move,
        );
        actions.extend(self.contact_actions(&changes)?);
        actions.extend(self.count_updates(&changes.counts)?);
        actions.extend(self.entry_actions(&changes)?);
        Ok(actions)
    }

    /// Gives the runner a new token in one transaction: the old token item goes (on condition
    /// that it still exists), the new one comes (carrying the runner's queues and last
    /// heartbeat), and the runner's digest moves (on condition that it is still the old one).
    /// From the commit on, the old token is unknown. `false`: the token changed meanwhile.
    pub async fn rotate_runner_token(
        &self,
        runner: &Runner,
        new: &TokenDigest,
        expires_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<bool, ApiError> {
        let old = &runner.token_digest;
        let rotated = Runner {
            token_expires_at: expires_at,
            ..runner.clone()
        };
        let token = TokenRecord::new_runner(&rotated, runner.contacted_at);
        let remove_old = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::token(old.as_str()))))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(build_error)?;
        let move_digest = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::runner(runner.id))))
            .condition_expression("token_digest = :old");
        let move_digest = match expires_at {
            Some(at) => move_digest
                .update_expression("SET token_digest = :new, token_expires_at = :expires")
                .expression_attribute_values(
                    ":expires",
                    AttributeValue::N(at.millis().to_string()),
                ),
            None => {
                move_digest.update_expression("SET token_digest = :new REMOVE token_expires_at")
            }
        };
        let move_digest = move_digest
            .expression_attribute_values(":new", AttributeValue::S(new.as_str().to_owned()))
            .expression_attribute_values(":old", AttributeValue::S(old.as_str().to_owned()))
            .build()
            .map_err(build_error)?;
        let actions = vec![
            TransactWriteItem::builder().delete(remove_old).build(),
            self.put(token.to_item(new, now).build(), "attribute_not_exists(pk)")?,
            TransactWriteItem::builder().update(move_digest).build(),
        ];
        Ok(matches!(
            self.transact(actions).await?,
            Transaction::Committed
        ))
    }

    /// Writes only the attributes in `changes` to the runner read as `read`, with `updated_at`
    /// and a bumped `lock_version` (so that a delete that read the runner before re-reads it).
    /// Without tags or the active flag (its facets) no version condition: updates that race
    /// all succeed and the last write of each attribute wins, as in GitLab, and a concurrent
    /// heartbeat is neither lost nor a conflict. The one rule that spans attributes (no untagged
    /// jobs without tags) is a condition on the attribute the update does not send. An update
    /// of its facets moves their counts and index entries in the same transaction, on condition
    /// that the runner is still as read (racing updates then retry, and still all land).
    /// Returns the runner as written; `None` when it is gone or a condition failed: read it
    /// again, validate, and retry.
    pub async fn update_runner(
        &self,
        read: &Runner,
        changes: &RunnerChanges,
        at: Timestamp,
    ) -> Result<Option<Runner>, ApiError> {
        let id = read.id;
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
        let text = |v: &String| AttributeValue::S(v.clone());
        let sent: [(&str, Option<AttributeValue>); 8] = [
            ("description", description.as_ref().map(text)),
            ("active", active.map(AttributeValue::Bool)),
            ("locked", locked.map(AttributeValue::Bool)),
            ("run_untagged", run_untagged.map(AttributeValue::Bool)),
            (
                "tag_list",
                tag_list
                    .as_ref()
                    .map(|tags| AttributeValue::L(tags.iter().map(text).collect())),
            ),
            (
                "access_level",
                access_level.map(|level| AttributeValue::S(level.as_str().to_owned())),
            ),
            (
                "maximum_timeout",
                maximum_timeout.map(|t| AttributeValue::N(t.to_string())),
            ),
            ("maintenance_note", maintenance_note.as_ref().map(text)),
        ];
        let mut sets = vec![
            "updated_at = :updated_at".to_owned(),
            "lock_version = lock_version + :one".to_owned(),
        ];
        let mut values: Item = [
            (
                ":updated_at".to_owned(),
                AttributeValue::N(at.millis().to_string()),
            ),
            (":one".to_owned(), AttributeValue::N("1".into())),
        ]
        .into();
        for (attribute, value) in sent {
            if let Some(value) = value {
                sets.push(format!("{attribute} = :{attribute}"));
                values.insert(format!(":{attribute}"), value);
            }
        }
        // An update that writes a facet attribute, even to the value read, is conditional: a
        // concurrent one may have changed it, and the counts must follow what is written.
        if tag_list.is_some() || active.is_some() {
            let mut updated = read.clone();
            updated.apply(changes.clone());
            values.insert(
                ":read_version".into(),
                AttributeValue::N(read.lock_version.to_string()),
            );
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key_of(keys::runner(id))))
                .update_expression(format!("SET {}", sets.join(", ")))
                .condition_expression("attribute_exists(pk) AND lock_version = :read_version")
                .set_expression_attribute_values(Some(values))
                .build()
                .map_err(build_error)?;
            let changes = super::listing::listing_changes(Some(read), Some(&updated));
            let actions = vec![TransactWriteItem::builder().update(update).build()];
            return Ok(
                match self.transact_listing(actions, &changes, Vec::new()).await? {
                    Transaction::Committed => {
                        updated.updated_at = at;
                        updated.lock_version += 1;
                        Some(updated)
                    }
                    Transaction::ConditionFailed(_) => None,
                },
            );
        }
        let mut condition = "attribute_exists(pk)".to_owned();
        match (run_untagged, tag_list) {
            (Some(false), None) => {
                condition.push_str(" AND size(tag_list) > :zero");
                values.insert(":zero".into(), AttributeValue::N("0".into()));
            }
            (None, Some(tags)) if tags.is_empty() => {
                condition.push_str(" AND run_untagged = :untagged");
                values.insert(":untagged".into(), AttributeValue::Bool(true));
            }
            _ => {}
        }
        let result = metrics::track(
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key_of(keys::runner(id))))
                .update_expression(format!("SET {}", sets.join(", ")))
                .condition_expression(condition)
                .set_expression_attribute_values(Some(values))
                .return_values(ReturnValue::AllNew)
                .send(),
        )
        .await;
        match result {
            Ok(output) => Runner::from_item(&output.attributes.unwrap_or_default()).map(Some),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(storage_error(e)),
        }
    }

    /// Deletes the runner, its token item, every link, its count, its subtree entries and its
    /// managers (`system_ids`, as listed beside the runner) in one transaction, on condition
    /// that the runner has not changed since it was read (`lock_version`). `Ok(false)` means it
    /// did: read again and retry. Subtree entries and managers that do not fit in the
    /// transaction's 100 actions go right after it commits.
    pub async fn delete_runner(
        &self,
        runner: &Runner,
        system_ids: &[String],
    ) -> Result<bool, ApiError> {
        let links = runner.link_keys();
        if links.len() > MAX_LINKS_PER_RUNNER {
            return Err(ApiError::internal(format!(
                "runner {} has {} links; one transaction removes at most {MAX_LINKS_PER_RUNNER}",
                runner.id,
                links.len()
            )));
        }
        let delete = |key: (String, String),
                      condition: Option<&str>|
         -> Result<TransactWriteItem, ApiError> {
            let mut builder = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key_of(key)));
            if let Some(condition) = condition {
                let (contact, read_contact) = super::listing::contact_as_read(runner);
                builder = builder
                    .condition_expression(format!("{condition} AND {contact}"))
                    .expression_attribute_values(
                        ":version",
                        AttributeValue::N(runner.lock_version.to_string()),
                    );
                if let Some(at) = read_contact {
                    builder = builder.expression_attribute_values(":read_contact", at);
                }
            }
            Ok(TransactWriteItem::builder()
                .delete(builder.build().map_err(build_error)?)
                .build())
        };
        let mut actions = vec![
            delete(keys::runner(runner.id), Some("lock_version = :version"))?,
            delete(keys::token(runner.token_digest.as_str()), None)?,
        ];
        for key in links {
            actions.push(delete(key, None)?);
        }
        // The runner's index entries, contact entry and managers fill the rest of the
        // transaction; what does not fit goes right after it commits. Once the runner and its
        // token are gone nothing can bring them back or write them again (a heartbeat needs the
        // runner), and a list leaves out ids whose runner it cannot read.
        let mut changes = super::listing::listing_changes(Some(runner), None);
        let mut spill = Vec::with_capacity(system_ids.len() + 1);
        if let Some(contact) = changes.contact_delete.take() {
            spill.push(self.delete_action(contact)?);
        }
        for system_id in system_ids {
            spill.push(self.delete_action(keys::runner_manager(runner.id, system_id))?);
        }
        // Only the runner's condition can fail: its version changed since it was read.
        if !matches!(
            self.transact_listing(actions, &changes, spill).await?,
            Transaction::Committed
        ) {
            return Ok(false);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(id: i64) -> ProjectRef {
        ProjectRef::sample(id, &[10, 11])
    }

    #[test]
    fn runner_item_round_trips() {
        let mut runner = Runner::new(
            42,
            RunnerType::Project,
            TokenDigest::of("t"),
            Timestamp::from_millis(5),
        );
        runner.description = Some("d".into());
        runner.tag_list = vec!["b".into(), "a".into()];
        runner.projects = vec![project(3), project(7)];
        runner.maximum_timeout = Some(3600);
        runner.info.name = Some("n".into());
        runner.contacted_at = Some(Timestamp::from_millis(9));
        let item = runner.to_item();
        assert_eq!(item["gsi1sk"].as_s().unwrap(), "00000000000000000042");
        assert_eq!(item["gsi2pk"].as_s().unwrap(), "RUNNERS#project_type");
        assert_eq!(item["gsi3pk"].as_s().unwrap(), "RUNNER_IDS#project_type#0");
        assert_eq!(item["gsi3sk"].as_s().unwrap(), "00000000000000000042");
        assert_eq!(item["projects"].as_m().unwrap().len(), 2);
        assert_eq!(
            Runner::from_item(&item).unwrap(),
            runner,
            "projects read back in id order"
        );

        let mut grouped = Runner::new(
            43,
            RunnerType::Group,
            TokenDigest::of("u"),
            Timestamp::from_millis(5),
        );
        grouped.group = Some(crate::runner::GroupRef {
            id: 11,
            name: "S".into(),
            full_path: "g/s".into(),
            ancestor_ids: vec![10],
        });
        assert_eq!(Runner::from_item(&grouped.to_item()).unwrap(), grouped);
    }

    #[test]
    fn an_item_missing_attributes_is_an_internal_error_not_a_panic() {
        let item = ItemBuilder::keyed(keys::runner(1))
            .s("runner_type", "instance_type")
            .build();
        let error = Runner::from_item(&item).unwrap_err();
        assert_eq!(error.status().as_u16(), 500);
    }
}
