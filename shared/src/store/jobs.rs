//! Job items, the pending-job queues and job logs (`docs/data-model.md`, "Jobs").
//!
//! A pending job has one entry in each queue it waits in (its project's, every group's above the
//! project when group runners may take it, the instance's when shared runners may). Assigning it
//! is one transaction that moves the job to `running` on condition that it is still pending and
//! unassigned, and deletes its queue entries; a runner that loses the race moves on. A log is
//! stored in chunks under the job, and every append is one transaction conditional on the log's
//! current length, so a write at a wrong offset never lands.

use super::directory::Job;
use super::item::{Item, ItemBuilder, ItemReader, key_of};
use super::runners::Transaction;
use super::{Store, build_error, keys, storage_error};
use crate::error::ApiError;
use crate::jobs::{self, PENDING, RUNNING};
use crate::metrics;
use crate::time::Timestamp;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, TransactWriteItem, Update};

/// How many entries of each queue a poll looks at, oldest first: the bound on what a poll reads
/// whatever is pending (jobs it cannot take beyond these wait for the next polls or the sweeper).
pub const QUEUE_PEEK: i32 = 50;
/// The most a job's log keeps (`MAX_JOB_LOG_BYTES` in the spec); past it one line says so.
pub const MAX_JOB_LOG_BYTES: i64 = 4 << 20;
/// One log chunk item: well under DynamoDB's 400 KB item limit.
const CHUNK_BYTES: usize = 350 * 1024;

/// A job's entry in a queue: what a poll needs to decide whether the runner may take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    pub job_id: i64,
    pub project_id: i64,
    pub tag_list: Vec<String>,
    pub protected: bool,
    /// Every queue the job waits in, so that assignment can delete all its entries.
    pub queues: Vec<String>,
}

/// What an append or a replacement of the log found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogWrite {
    /// Written; the log is now this long.
    Written(i64),
    /// The job changed meanwhile (another append, or it stopped running): read it again.
    Conflict,
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn update(
    builder: aws_sdk_dynamodb::types::builders::UpdateBuilder,
) -> Result<TransactWriteItem, ApiError> {
    Ok(TransactWriteItem::builder()
        .update(builder.build().map_err(build_error)?)
        .build())
}

/// The part of `bytes` written at `start` that the log keeps, and whether the truncation line
/// goes after it (when this write crosses the cap).
fn kept(start: i64, bytes: &[u8]) -> (&[u8], bool) {
    let end = start.saturating_add(i64::try_from(bytes.len()).unwrap_or(i64::MAX));
    // The one write that goes past the cap (it may start exactly there) adds the line.
    let crosses = start <= MAX_JOB_LOG_BYTES && end > MAX_JOB_LOG_BYTES;
    if start >= MAX_JOB_LOG_BYTES {
        return (&[], crosses);
    }
    let room = usize::try_from(MAX_JOB_LOG_BYTES - start).unwrap_or(usize::MAX);
    (&bytes[..bytes.len().min(room)], crosses)
}

/// The marker of a job running on a runner (`keys::running_job`), written when the runner takes
/// the job and removed in every transaction that ends it.
pub(crate) fn running_job_item(runner_id: i64, job_id: i64) -> Item {
    ItemBuilder::keyed(keys::running_job(runner_id, job_id))
        .s("entity", "running_job")
        .n("job_id", job_id)
        .build()
}

impl Store {
    /// Whether a job is running on the runner (GitLab's `job_execution_status`): at most one
    /// marker read from the runner's partition.
    pub async fn runner_is_busy(&self, runner_id: i64) -> Result<bool, ApiError> {
        let output = metrics::track(
            self.client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", AttributeValue::S(keys::runner(runner_id).0))
                .expression_attribute_values(
                    ":prefix",
                    AttributeValue::S(keys::RUNNING_PREFIX.into()),
                )
                .limit(1)
                .send(),
        )
        .await
        .map_err(storage_error)?;
        Ok(output.count() > 0)
    }

    /// An unconditional delete, for a transaction.
    pub(crate) fn delete_action(
        &self,
        key: (String, String),
    ) -> Result<TransactWriteItem, ApiError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(key)))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// Moves a project's count of jobs running on instance runners by `delta`.
    fn instance_running_change(
        &self,
        project_id: i64,
        delta: i64,
    ) -> Result<TransactWriteItem, ApiError> {
        update(
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(key_of(keys::instance_running(project_id))))
                .update_expression("ADD #value :delta")
                .expression_attribute_names("#value", "value")
                .expression_attribute_values(":delta", n(delta)),
        )
    }

    /// The fair-usage counts of these projects (0 for a project with none).
    pub async fn instance_running_counts(
        &self,
        project_ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, i64>, ApiError> {
        let items = self
            .batch_get(
                project_ids
                    .iter()
                    .map(|p| keys::instance_running(*p))
                    .collect(),
            )
            .await?;
        let mut counts = std::collections::HashMap::new();
        for item in &items {
            let r = ItemReader::new(item, "fair-usage counter");
            let pk = r.s(keys::PK)?;
            if let Some(id) = pk.strip_prefix("PROJECT#").and_then(|id| id.parse().ok()) {
                counts.insert(id, r.opt_n("value")?.unwrap_or(0));
            }
        }
        Ok(counts)
    }

    /// Leaving `running`: the job's share of its project's fair-usage count, if it had one.
    fn leaving_running(&self, job: &Job) -> Result<Vec<TransactWriteItem>, ApiError> {
        let mut actions = Vec::new();
        if job.status != RUNNING {
            return Ok(actions);
        }
        if job.on_instance_runner {
            actions.push(self.instance_running_change(job.project.id, -1)?);
        }
        if let Some(runner_id) = job.runner_id {
            actions.push(self.delete_action(keys::running_job(runner_id, job.id))?);
        }
        Ok(actions)
    }

    /// A job's status update from `from` to `to` (`builder` with its condition, which must
    /// hold `from`, and its update expression, `SET` last) as an action, with what a status
    /// change of a job a runner took adds to it: its runner job index key for the new status,
    /// and its count moved between the statuses of its bucket. The condition makes the count
    /// move exactly once.
    fn status_change(
        &self,
        job: &Job,
        (from, to): (&str, &str),
        builder: aws_sdk_dynamodb::types::builders::UpdateBuilder,
        set: &str,
    ) -> Result<Vec<TransactWriteItem>, ApiError> {
        let Some(runner_id) = job.runner_id else {
            return Ok(vec![update(builder.update_expression(set))?]);
        };
        let builder = builder
            .update_expression(format!("{set}, gsi3pk = :status_ids"))
            .expression_attribute_values(
                ":status_ids",
                AttributeValue::S(keys::runner_job_ids(runner_id, to)),
            );
        Ok(vec![
            update(builder)?,
            self.runner_job_count_change(runner_id, job.id, Some(from), to)?,
        ])
    }

    /// Counts a job of the runner as `to` (and no longer as `from`, if it was counted).
    fn runner_job_count_change(
        &self,
        runner_id: i64,
        job_id: i64,
        from: Option<&str>,
        to: &str,
    ) -> Result<TransactWriteItem, ApiError> {
        let builder = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::runner_job_count(runner_id, job_id))))
            .expression_attribute_names("#to", keys::job_status_count(to))
            .expression_attribute_values(":one", n(1));
        update(match from {
            // A job never leaves the runner that took it: its total only ever goes up.
            None => builder
                .update_expression("ADD #value :one, #to :one")
                .expression_attribute_names("#value", "value"),
            Some(from) => builder
                .update_expression("ADD #from :minus_one, #to :one")
                .expression_attribute_names("#from", keys::job_status_count(from))
                .expression_attribute_values(":minus_one", n(-1)),
        })
    }

    /// The deletes that take a job out of its queues and out of the sweeper's sight.
    fn retire(&self, job_id: i64, queues: &[String]) -> Result<Vec<TransactWriteItem>, ApiError> {
        let mut actions = vec![self.delete_action(keys::active_job(job_id))?];
        for queue in queues {
            actions.push(self.delete_action(keys::queue_entry(queue, job_id))?);
        }
        Ok(actions)
    }

    fn chunk_puts(
        &self,
        job_id: i64,
        generation: i64,
        start: i64,
        bytes: &[u8],
    ) -> Result<Vec<TransactWriteItem>, ApiError> {
        let (stored, truncated) = kept(start, bytes);
        let mut puts = Vec::new();
        let mut offset = start;
        for chunk in stored.chunks(CHUNK_BYTES) {
            puts.push(self.chunk_put(job_id, generation, offset, chunk.to_vec())?);
            offset += i64::try_from(chunk.len()).unwrap_or(i64::MAX);
        }
        if truncated {
            let line = format!("\nJob's log exceeded limit of {MAX_JOB_LOG_BYTES} bytes.\n");
            puts.push(self.chunk_put(job_id, generation, MAX_JOB_LOG_BYTES, line.into_bytes())?);
        }
        Ok(puts)
    }

    fn chunk_put(
        &self,
        job_id: i64,
        generation: i64,
        offset: i64,
        bytes: Vec<u8>,
    ) -> Result<TransactWriteItem, ApiError> {
        let mut item = ItemBuilder::keyed(keys::log_chunk(job_id, generation, offset))
            .s("entity", "log_chunk")
            .build();
        item.insert("bytes".into(), AttributeValue::B(Blob::new(bytes)));
        let put = aws_sdk_dynamodb::types::Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Creates a pending job and its queue entries in one transaction. `false`: the id is taken
    /// (a counter behind imported data); allocate another.
    pub async fn create_job(&self, job: &Job) -> Result<bool, ApiError> {
        let work = job
            .work
            .as_ref()
            .ok_or_else(|| ApiError::internal("a new job without work"))?;
        let active = ItemBuilder::keyed(keys::active_job(job.id))
            .s("entity", "active_job")
            .n("job_id", job.id)
            .build();
        let mut actions = vec![
            self.put(job.to_item(), "attribute_not_exists(pk)")?,
            self.put(active, "attribute_not_exists(pk)")?,
        ];
        for queue in &job.queues {
            let entry = ItemBuilder::keyed(keys::queue_entry(queue, job.id))
                .s("entity", "queue_entry")
                .n("job_id", job.id)
                .n("project_id", job.project.id)
                .strings("tag_list", &work.tag_list)
                .bool("protected", work.protected)
                .strings("queues", &job.queues)
                .build();
            actions.push(self.put(entry, "attribute_not_exists(pk)")?);
        }
        Ok(matches!(
            self.transact(actions).await?,
            Transaction::Committed
        ))
    }

    /// The oldest entries of each queue ([`QUEUE_PEEK`] each), read in parallel, oldest job
    /// first across queues.
    pub async fn pending_entries(&self, queues: &[String]) -> Result<Vec<QueueEntry>, ApiError> {
        let reads = queues.iter().map(|queue| {
            metrics::track(
                self.client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("pk = :queue")
                    .expression_attribute_values(":queue", AttributeValue::S(queue.clone()))
                    .limit(QUEUE_PEEK)
                    .send(),
            )
        });
        let mut entries = Vec::new();
        for output in futures_util::future::join_all(reads).await {
            for item in output.map_err(storage_error)?.items() {
                let r = ItemReader::new(item, "queue entry");
                entries.push(QueueEntry {
                    job_id: r.n("job_id")?,
                    project_id: r.n("project_id")?,
                    tag_list: r.strings("tag_list")?,
                    protected: r.bool_or("protected", false),
                    queues: r.strings("queues")?,
                });
            }
        }
        entries.sort_by_key(|e| e.job_id);
        entries.dedup_by_key(|e| e.job_id);
        Ok(entries)
    }

    /// Gives the job to the runner if it is still pending and unassigned, removing it from
    /// every queue, in one transaction. `false`: another runner (or a cancel) was first.
    pub async fn assign_job(
        &self,
        entry: &QueueEntry,
        runner_id: i64,
        instance_runner: bool,
        token_digest: &str,
        now: Timestamp,
    ) -> Result<bool, ApiError> {
        let job = aws_sdk_dynamodb::types::Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::job(entry.job_id))))
            .update_expression(
                "SET #status = :running, runner_id = :runner, token_digest = :digest, \
                 started_at = :now, touched_at = :now, gsi2pk = :runner_jobs, gsi2sk = :padded, \
                 gsi3pk = :job_ids, gsi3sk = :padded, on_instance_runner = :instance \
                 REMOVE queues",
            )
            .condition_expression("#status = :pending AND attribute_not_exists(runner_id)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":running", AttributeValue::S(RUNNING.into()))
            .expression_attribute_values(":pending", AttributeValue::S(PENDING.into()))
            .expression_attribute_values(":runner", n(runner_id))
            .expression_attribute_values(":digest", AttributeValue::S(token_digest.into()))
            .expression_attribute_values(":now", n(now.millis()))
            .expression_attribute_values(
                ":runner_jobs",
                AttributeValue::S(keys::runner_jobs(runner_id)),
            )
            .expression_attribute_values(":padded", AttributeValue::S(keys::padded(entry.job_id)))
            .expression_attribute_values(
                ":job_ids",
                AttributeValue::S(keys::runner_job_ids(runner_id, RUNNING)),
            )
            .expression_attribute_values(":instance", AttributeValue::Bool(instance_runner));
        let mut actions = vec![
            update(job)?,
            self.put(
                running_job_item(runner_id, entry.job_id),
                "attribute_not_exists(pk)",
            )?,
        ];
        if instance_runner {
            actions.push(self.instance_running_change(entry.project_id, 1)?);
        }
        actions.push(self.runner_job_count_change(runner_id, entry.job_id, None, RUNNING)?);
        for queue in &entry.queues {
            actions.push(self.delete_action(keys::queue_entry(queue, entry.job_id))?);
        }
        Ok(matches!(
            self.transact(actions).await?,
            Transaction::Committed
        ))
    }

    /// Cancels a pending or running job as read: `canceled`, finished now, out of its queues,
    /// on condition that its status is still the one read. `false`: it changed meanwhile.
    pub async fn cancel_job(&self, job: &Job, now: Timestamp) -> Result<bool, ApiError> {
        let cancel = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::job(job.id))))
            .condition_expression("#status = :read")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":canceled", AttributeValue::S(jobs::CANCELED.into()))
            .expression_attribute_values(":read", AttributeValue::S(job.status.clone()))
            .expression_attribute_values(":now", n(now.millis()));
        let mut actions = self.status_change(
            job,
            (&job.status, jobs::CANCELED),
            cancel,
            "REMOVE queues SET #status = :canceled, finished_at = :now",
        )?;
        actions.extend(self.retire(job.id, &job.queues)?);
        actions.extend(self.leaving_running(job)?);
        Ok(matches!(
            self.transact(actions).await?,
            Transaction::Committed
        ))
    }

    /// The ids of every pending or running job (the sweeper's partition), oldest first.
    pub async fn active_job_ids(&self) -> Result<Vec<i64>, ApiError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :active")
            .expression_attribute_values(":active", AttributeValue::S(keys::ACTIVE_JOBS.into()));
        let mut ids = Vec::new();
        self.query_pages(query, |item: &Item| {
            ids.push(ItemReader::new(item, "active job").n("job_id")?);
            Ok(false)
        })
        .await?;
        Ok(ids)
    }

    /// Fails a stuck job with `stuck_or_timeout_failure`, on condition that nothing happened to
    /// it since it was read (same status, same `touched_at`): a job a runner is still writing
    /// to is left alone. Retires its queue and sweeper entries. `false`: it moved meanwhile.
    pub async fn fail_stuck_job(&self, job: &Job, now: Timestamp) -> Result<bool, ApiError> {
        let mut builder = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::job(job.id))))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":failed", AttributeValue::S(jobs::FAILED.into()))
            .expression_attribute_values(
                ":reason",
                AttributeValue::S("stuck_or_timeout_failure".into()),
            )
            .expression_attribute_values(":read", AttributeValue::S(job.status.clone()))
            .expression_attribute_values(":now", n(now.millis()));
        builder = match job.touched_at {
            Some(touched) => builder
                .condition_expression("#status = :read AND touched_at = :touched")
                .expression_attribute_values(":touched", n(touched.millis())),
            None => {
                builder.condition_expression("#status = :read AND attribute_not_exists(touched_at)")
            }
        };
        let mut actions = self.status_change(
            job,
            (&job.status, jobs::FAILED),
            builder,
            "REMOVE queues SET #status = :failed, failure_reason = :reason, finished_at = :now",
        )?;
        actions.extend(self.retire(job.id, &job.queues)?);
        actions.extend(self.leaving_running(job)?);
        Ok(matches!(
            self.transact(actions).await?,
            Transaction::Committed
        ))
    }

    /// Removes the sweeper's entry of a job that is no longer pending or running.
    pub async fn forget_active_job(&self, job_id: i64) -> Result<(), ApiError> {
        metrics::track(
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key_of(keys::active_job(job_id))))
                .send(),
        )
        .await
        .map_err(storage_error)?;
        Ok(())
    }

    /// A job by id, strongly consistent (a runner that just took it reports at once).
    pub async fn get_job(&self, id: i64) -> Result<Option<Job>, ApiError> {
        match self.get(keys::job(id)).await? {
            Some(item) => Job::from_item(&item).map(Some),
            None => Ok(None),
        }
    }

    /// Ends a running job (`success` or `failed`), on condition that it is still running with
    /// this token, and retires its sweeper entry in the same transaction. `false`: it was not
    /// (canceled or finished meanwhile).
    pub async fn finish_job(
        &self,
        job: &Job,
        status: &str,
        failure_reason: Option<&str>,
        now: Timestamp,
    ) -> Result<bool, ApiError> {
        let mut builder = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::job(job.id))))
            .condition_expression("#status = :running AND token_digest = :digest")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":running", AttributeValue::S(RUNNING.into()))
            .expression_attribute_values(
                ":digest",
                AttributeValue::S(job.token_digest.clone().unwrap_or_default()),
            )
            .expression_attribute_values(":status", AttributeValue::S(status.into()))
            .expression_attribute_values(":now", n(now.millis()));
        let mut expression =
            "SET #status = :status, finished_at = :now, touched_at = :now".to_owned();
        if let Some(reason) = failure_reason {
            expression.push_str(", failure_reason = :reason");
            builder =
                builder.expression_attribute_values(":reason", AttributeValue::S(reason.into()));
        }
        let mut actions = self.status_change(job, (RUNNING, status), builder, &expression)?;
        actions.extend(self.retire(job.id, &[])?);
        actions.extend(self.leaving_running(job)?);
        Ok(matches!(
            self.transact(actions).await?,
            Transaction::Committed
        ))
    }

    /// Marks a running job as alive (`PUT state=running`): the sweeper leaves it alone.
    pub async fn touch_job(&self, job: &Job, now: Timestamp) -> Result<bool, ApiError> {
        let result = metrics::track(
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key_of(keys::job(job.id))))
                .update_expression("SET touched_at = :now")
                .condition_expression("#status = :running")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":running", AttributeValue::S(RUNNING.into()))
                .expression_attribute_values(":now", n(now.millis()))
                .send(),
        )
        .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(storage_error(e)),
        }
    }

    /// Appends `bytes` at `start`, which must be the log's current length, while the job runs:
    /// the length check and the write are one transaction.
    pub async fn append_log(
        &self,
        job: &Job,
        start: i64,
        bytes: &[u8],
        now: Timestamp,
    ) -> Result<LogWrite, ApiError> {
        let end = start.saturating_add(i64::try_from(bytes.len()).unwrap_or(i64::MAX));
        let length = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::job(job.id))))
            .update_expression("SET log_length = :end, touched_at = :now")
            .condition_expression(
                "#status = :running AND log_length = :start AND log_generation = :generation",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":running", AttributeValue::S(RUNNING.into()))
            .expression_attribute_values(":start", n(start))
            .expression_attribute_values(":end", n(end))
            .expression_attribute_values(":generation", n(job.log_generation))
            .expression_attribute_values(":now", n(now.millis()));
        let mut actions = vec![update(length)?];
        actions.extend(self.chunk_puts(job.id, job.log_generation, start, bytes)?);
        Ok(match self.transact(actions).await? {
            Transaction::Committed => LogWrite::Written(end),
            Transaction::ConditionFailed(_) => LogWrite::Conflict,
        })
    }

    /// Replaces the whole log (`PUT` with `trace`): the new text goes under the next generation,
    /// in the transaction that moves the job to it.
    pub async fn replace_log(
        &self,
        job: &Job,
        bytes: &[u8],
        now: Timestamp,
    ) -> Result<LogWrite, ApiError> {
        let length = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
        let generation = job.log_generation + 1;
        let update_job = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::job(job.id))))
            .update_expression(
                "SET log_length = :length, log_generation = :next, touched_at = :now",
            )
            .condition_expression("#status = :running AND log_generation = :generation")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":running", AttributeValue::S(RUNNING.into()))
            .expression_attribute_values(":length", n(length))
            .expression_attribute_values(":next", n(generation))
            .expression_attribute_values(":generation", n(job.log_generation))
            .expression_attribute_values(":now", n(now.millis()));
        let mut actions = vec![update(update_job)?];
        actions.extend(self.chunk_puts(job.id, generation, 0, bytes)?);
        Ok(match self.transact(actions).await? {
            Transaction::Committed => LogWrite::Written(length),
            Transaction::ConditionFailed(_) => LogWrite::Conflict,
        })
    }

    /// The stored log of a job (at most [`MAX_JOB_LOG_BYTES`] and the truncation line).
    pub async fn read_log(&self, job: &Job) -> Result<Vec<u8>, ApiError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :job AND begins_with(sk, :log)")
            .expression_attribute_values(":job", AttributeValue::S(keys::job(job.id).0))
            .expression_attribute_values(
                ":log",
                AttributeValue::S(keys::log_prefix(job.log_generation)),
            )
            .consistent_read(true);
        let mut log = Vec::new();
        self.query_pages(query, |item: &Item| {
            if let Some(AttributeValue::B(bytes)) = item.get("bytes") {
                log.extend_from_slice(bytes.as_ref());
            }
            Ok(false) // never stop early: the whole log
        })
        .await?;
        Ok(log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_cap_keeps_what_fits_and_marks_the_crossing_once() {
        let cap = usize::try_from(MAX_JOB_LOG_BYTES).unwrap();
        assert_eq!(kept(0, b"abc"), (&b"abc"[..], false));
        let near = MAX_JOB_LOG_BYTES - 2;
        assert_eq!(kept(near, b"abcd"), (&b"ab"[..], true));
        assert_eq!(
            kept(MAX_JOB_LOG_BYTES, b"more"),
            (&b""[..], true),
            "starts at the cap"
        );
        assert_eq!(
            kept(MAX_JOB_LOG_BYTES + 4, b"more"),
            (&b""[..], false),
            "already marked"
        );
        assert_eq!(kept(near, b"ab"), (&b"ab"[..], false), "exactly full");
        let big = vec![0u8; cap + 10];
        assert_eq!(kept(0, &big).0.len(), cap);
    }
}
