//! Projects and the runners enabled in them. Enabling and disabling change the runner's
//! `projects` map and the project's link item in one transaction, each write conditional, so a
//! link is never duplicated, the two sides always agree, and a project runner never loses its
//! last project, however requests interleave.

use super::directory::{Group, PathOwner, Project, project_ref_item};
use super::item::{Item, ItemBuilder, ItemReader, key_of};
use super::listing::{contact_as_read, listing_changes};
use super::runners::{Transaction, link_item};
use super::{Store, build_error, keys};
use crate::error::ApiError;
use crate::runner::{ProjectRef, Runner, RunnerType};
use crate::time::Timestamp;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};

/// A transaction's outcome for enable/disable: `Refused` means a condition failed, i.e. the
/// runner changed since it was read; read it again and decide anew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkChange {
    Done,
    Refused,
}

impl Project {
    /// The project's path item. It carries the project itself, so a lookup by path is one read.
    pub fn path_item(&self) -> Item {
        let mut project = self.to_item(None);
        project.remove(keys::PK);
        project.remove(keys::SK);
        ItemBuilder::keyed(keys::path(&self.path_with_namespace))
            .s("entity", "path")
            .s("full_path", &self.path_with_namespace)
            .s("kind", "project")
            .n("id", self.id)
            .map("project", project)
            .build()
    }
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// What a path is expected to name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathKind {
    Group,
    Project,
}

impl Store {
    /// A project by numeric id or by full path (`group/sub/project`, any letter case).
    pub async fn find_project(&self, id_or_path: &str) -> Result<Option<Project>, ApiError> {
        if !id_or_path.is_empty() && id_or_path.bytes().all(|b| b.is_ascii_digit()) {
            let Ok(id) = id_or_path.parse::<i64>() else {
                return Ok(None);
            };
            return self
                .get(keys::project(id))
                .await?
                .as_ref()
                .map(Project::from_item)
                .transpose();
        }
        if !keys::path_fits(id_or_path) {
            return Ok(None);
        }
        let Some(item) = self.get(keys::path(id_or_path)).await? else {
            return Ok(None);
        };
        let reader = ItemReader::new(&item, "path");
        match (reader.opt_s("kind").as_deref(), reader.map("project")?) {
            (Some("project"), Some(project)) => Project::from_item(project).map(Some),
            _ => Ok(None),
        }
    }

    /// A group by numeric id or by full path (any letter case): by path, the path item names it.
    pub async fn find_group(&self, id_or_path: &str) -> Result<Option<Group>, ApiError> {
        match self.path_id(id_or_path, PathKind::Group).await? {
            Some(id) => self.get_group(id).await,
            None => Ok(None),
        }
    }

    /// The id a numeric id or a full path names, if it names a `kind`: a path costs one read of
    /// its path item, an id none.
    pub(crate) async fn path_id(
        &self,
        id_or_path: &str,
        kind: PathKind,
    ) -> Result<Option<i64>, ApiError> {
        if !id_or_path.is_empty() && id_or_path.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(id_or_path.parse::<i64>().ok());
        }
        if !keys::path_fits(id_or_path) {
            return Ok(None);
        }
        let Some(item) = self.get(keys::path(id_or_path)).await? else {
            return Ok(None);
        };
        Ok(match (PathOwner::from_item(&item)?, kind) {
            (PathOwner::Group(id), PathKind::Group)
            | (PathOwner::Project(id), PathKind::Project) => Some(id),
            _ => None,
        })
    }

    /// A group by id.
    pub async fn get_group(&self, id: i64) -> Result<Option<Group>, ApiError> {
        self.get(keys::group(id))
            .await?
            .as_ref()
            .map(Group::from_item)
            .transpose()
    }

    /// Enables `runner` (as read, at its `runner_type`) in `project`. An instance runner becomes
    /// a project runner. Refused when the runner is gone, changed type, or is already enabled there.
    pub async fn enable_runner(
        &self,
        runner: &Runner,
        project: &ProjectRef,
        now: Timestamp,
    ) -> Result<LinkChange, ApiError> {
        let mut sets = vec![
            "projects.#project = :project",
            "lock_version = lock_version + :one",
            "updated_at = :now",
        ];
        // Not enabled there yet, and the runner as read (its type, version and contact state
        // decide the listing writes below).
        let (contact, read_contact) = contact_as_read(runner);
        let condition = format!(
            "attribute_exists(pk) AND attribute_not_exists(projects.#project) \
             AND runner_type = :read_type AND lock_version = :read_version AND {contact}"
        );
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::runner(runner.id))))
            .condition_expression(condition)
            .expression_attribute_values(":read_version", n(runner.lock_version))
            .expression_attribute_names("#project", project.id.to_string())
            .expression_attribute_values(":project", AttributeValue::M(project_ref_item(project)))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now.millis()))
            .expression_attribute_values(
                ":read_type",
                AttributeValue::S(runner.runner_type.as_str().to_owned()),
            );
        if let Some(at) = read_contact {
            update = update.expression_attribute_values(":read_contact", at);
        }
        if runner.runner_type == RunnerType::Instance {
            sets.extend([
                "runner_type = :project_type",
                "gsi2pk = :project_index",
                "gsi3pk = :project_ids",
            ]);
            update = update
                .expression_attribute_values(
                    ":project_type",
                    AttributeValue::S(RunnerType::Project.as_str().to_owned()),
                )
                .expression_attribute_values(
                    ":project_index",
                    AttributeValue::S(keys::runners_of_type(RunnerType::Project.as_str())),
                )
                .expression_attribute_values(
                    ":project_ids",
                    AttributeValue::S(keys::runner_ids(
                        RunnerType::Project.as_str(),
                        keys::runner_bucket(runner.id),
                    )),
                );
        }
        let update = update
            .update_expression(format!("SET {}", sets.join(", ")))
            .build()
            .map_err(build_error)?;
        let link = link_item(
            keys::project_runner_link(project.id, runner.id),
            runner.id,
            now,
        );
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(link))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build_error)?;
        let mut enabled = runner.clone();
        enabled.runner_type = RunnerType::Project;
        enabled.projects.push(project.clone());
        let actions = vec![
            TransactWriteItem::builder().update(update).build(),
            TransactWriteItem::builder().put(put).build(),
            self.token_queues_update(&enabled)?,
        ];
        let changes = listing_changes(Some(runner), Some(&enabled));
        Ok(
            match self.transact_listing(actions, &changes, Vec::new()).await? {
                Transaction::Committed => LinkChange::Done,
                Transaction::ConditionFailed(_) => LinkChange::Refused,
            },
        )
    }

    /// Sets the runner's token item's copy of its job queues to what `runner` (as it will be
    /// once the same transaction commits) takes from. The runner's own condition on
    /// `lock_version` makes the copy exact: a transaction computed from an older read fails.
    fn token_queues_update(&self, runner: &Runner) -> Result<TransactWriteItem, ApiError> {
        let queues = crate::jobs::runner_queues(runner)
            .into_iter()
            .map(AttributeValue::S)
            .collect();
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::token(runner.token_digest.as_str()))))
            .update_expression("SET queues = :queues, runner_type = :type")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":queues", AttributeValue::L(queues))
            .expression_attribute_values(
                ":type",
                AttributeValue::S(runner.runner_type.as_str().to_owned()),
            )
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// When `runner_id` was enabled in `project_id`, if it is.
    pub async fn project_link_created_at(
        &self,
        project_id: i64,
        runner_id: i64,
    ) -> Result<Option<Timestamp>, ApiError> {
        self.get(keys::project_runner_link(project_id, runner_id))
            .await?
            .map(|item| ItemReader::new(&item, "runner link").time("created_at"))
            .transpose()
    }

    /// Disables `runner` in a project, on condition that it is enabled there and keeps at least
    /// one other project.
    pub async fn disable_runner(
        &self,
        runner: &Runner,
        project_id: i64,
        now: Timestamp,
    ) -> Result<LinkChange, ApiError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::runner(runner.id))))
            .update_expression("REMOVE projects.#project SET lock_version = lock_version + :one, updated_at = :now")
            .condition_expression("attribute_exists(projects.#project) AND size(projects) > :one AND lock_version = :read_version")
            .expression_attribute_names("#project", project_id.to_string())
            .expression_attribute_values(":read_version", n(runner.lock_version))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now.millis()))
            .build()
            .map_err(build_error)?;
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::project_runner_link(
                project_id, runner.id,
            ))))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(build_error)?;
        let mut disabled = runner.clone();
        disabled.projects.retain(|p| p.id != project_id);
        let actions = vec![
            TransactWriteItem::builder().update(update).build(),
            TransactWriteItem::builder().delete(delete).build(),
            self.token_queues_update(&disabled)?,
        ];
        let changes = listing_changes(Some(runner), Some(&disabled));
        Ok(
            match self.transact_listing(actions, &changes, Vec::new()).await? {
                Transaction::Committed => LinkChange::Done,
                Transaction::ConditionFailed(_) => LinkChange::Refused,
            },
        )
    }

    /// Every runner of one type, in id order, up to `limit` (a project's list includes every
    /// instance runner).
    pub async fn runners_of_type(
        &self,
        runner_type: RunnerType,
        limit: usize,
    ) -> Result<(Vec<Runner>, bool), ApiError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(keys::GSI2)
            // No more than asked for is read (a Query page would otherwise be 1 MB).
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .key_condition_expression("gsi2pk = :k")
            .expression_attribute_values(
                ":k",
                AttributeValue::S(keys::runners_of_type(runner_type.as_str())),
            );
        let mut runners = Vec::new();
        let exhausted = self
            .query_pages(query, |item| {
                runners.push(Runner::from_item(item)?);
                Ok(runners.len() >= limit)
            })
            .await?;
        Ok((runners, exhausted))
    }
}
