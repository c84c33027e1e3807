//! Runner managers: one item per (runner, `system_id`) in the runner's partition, written by the
//! heartbeat transaction (`record_heartbeat`), listed by one query, removed one by one
//! (`DELETE /runners/managers`) or with their runner.

use super::item::{Item, ItemReader, key_of};
use super::runners::Transaction;
use super::{Heartbeat, Store, build_error, keys};
use crate::auth::TokenDigest;
use crate::error::ApiError;
use crate::runner::{Runner, RunnerInfo, RunnerManager};
use crate::time::Timestamp;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, TransactWriteItem, Update};

/// A manager's id: GitLab shows one, and nothing here looks a manager up by it, so it is drawn
/// at random (53 bits, exact in JSON numbers) instead of costing a counter round trip on the
/// heartbeat path. It is set once, on the manager's first heartbeat.
fn new_manager_id() -> Result<i64, ApiError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|e| ApiError::internal(format!("OS random source: {e}")))?;
    Ok((i64::from_le_bytes(bytes) & ((1 << 53) - 1)).max(1))
}

impl RunnerManager {
    fn from_item(item: &Item) -> Result<Self, ApiError> {
        let r = ItemReader::new(item, "runner manager");
        Ok(Self {
            id: r.n("id")?,
            system_id: r.s("system_id")?,
            info: RunnerInfo {
                name: None,
                version: r.opt_s("version"),
                revision: r.opt_s("revision"),
                platform: r.opt_s("platform"),
                architecture: r.opt_s("architecture"),
            },
            executor: r.opt_s("executor"),
            ip_address: r.opt_s("ip_address"),
            created_at: r.time("created_at")?,
            contacted_at: r.opt_time("contacted_at")?,
        })
    }
}

impl Store {
    /// The write that records a heartbeat on a manager, creating it on first contact. It goes
    /// into the heartbeat's transaction, whose condition on the runner keeps a manager from being
    /// created for a runner that is gone.
    pub(crate) fn manager_upsert(
        &self,
        runner_id: i64,
        system_id: &str,
        heartbeat: &Heartbeat,
        at: Timestamp,
    ) -> Result<Update, ApiError> {
        let info = &heartbeat.info;
        let mut sets = vec![
            "entity = :entity".to_owned(),
            "system_id = :system_id".to_owned(),
            "runner_id = :runner_id".to_owned(),
            "contacted_at = :at".to_owned(),
            "created_at = if_not_exists(created_at, :at)".to_owned(),
            "id = if_not_exists(id, :id)".to_owned(),
        ];
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::runner_manager(runner_id, system_id))))
            .expression_attribute_values(":entity", AttributeValue::S("runner_manager".into()))
            .expression_attribute_values(":system_id", AttributeValue::S(system_id.to_owned()))
            .expression_attribute_values(":runner_id", AttributeValue::N(runner_id.to_string()))
            .expression_attribute_values(":at", AttributeValue::N(at.millis().to_string()))
            .expression_attribute_values(":id", AttributeValue::N(new_manager_id()?.to_string()));
        for (attribute, value) in [
            ("ip_address", &heartbeat.ip_address),
            ("version", &info.version),
            ("revision", &info.revision),
            ("platform", &info.platform),
            ("architecture", &info.architecture),
            ("executor", &heartbeat.executor),
        ] {
            if let Some(value) = value {
                sets.push(format!("{attribute} = :{attribute}"));
                update = update.expression_attribute_values(
                    format!(":{attribute}"),
                    AttributeValue::S(value.clone()),
                );
            }
        }
        update
            .update_expression(format!("SET {}", sets.join(", ")))
            .build()
            .map_err(build_error)
    }

    /// A runner's managers, in `system_id` order: one query over the runner's partition.
    pub async fn runner_managers(&self, runner_id: i64) -> Result<Vec<RunnerManager>, ApiError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", AttributeValue::S(keys::runner(runner_id).0))
            .expression_attribute_values(":prefix", AttributeValue::S(keys::MANAGER_PREFIX.into()));
        let mut managers = Vec::new();
        self.query_pages(query, |item| {
            managers.push(RunnerManager::from_item(item)?);
            Ok(false)
        })
        .await?;
        Ok(managers)
    }

    /// A runner and its managers' `system_id`s, read together: what deleting it takes.
    pub async fn runner_and_managers(
        &self,
        id: i64,
    ) -> Result<Option<(Runner, Vec<String>)>, ApiError> {
        let (runner, managers) =
            futures_util::future::join(self.get_runner(id), self.runner_managers(id)).await;
        let system_ids = managers?.into_iter().map(|m| m.system_id).collect();
        Ok(runner?.map(|runner| (runner, system_ids)))
    }

    /// Removes one manager and forgets its heartbeat on the token item (so that the host's next
    /// heartbeat creates it again rather than being skipped as fresh). `false`: no such manager.
    /// `known_managers`: whether the token item has its map of manager heartbeats.
    pub async fn delete_runner_manager(
        &self,
        runner_id: i64,
        token: &TokenDigest,
        system_id: &str,
        known_managers: bool,
    ) -> Result<bool, ApiError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::runner_manager(runner_id, system_id))))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(build_error)?;
        let mut actions = vec![TransactWriteItem::builder().delete(delete).build()];
        if known_managers {
            let forget = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key_of(keys::token(token.as_str()))))
                .condition_expression("attribute_exists(pk)")
                .update_expression("REMOVE managers.#system_id")
                .expression_attribute_names("#system_id", system_id)
                .build()
                .map_err(build_error)?;
            actions.push(TransactWriteItem::builder().update(forget).build());
        }
        Ok(matches!(
            self.transact(actions).await?,
            Transaction::Committed
        ))
    }
}
