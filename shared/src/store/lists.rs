//! Reads for lists and permission checks: batched gets, index pages, fan-out over links and
//! memberships. Independent reads go out together; nothing here scans the table.

use super::directory::{Job, MemberOf, Membership, User};
use super::item::{Item, ItemReader, key_of};
use super::listing::{PagePlan, merged_ids, plan_walk};
use super::{Store, keys, storage_error};
use crate::error::ApiError;
use crate::metrics;
use crate::pagination::{PageInfo, PageRequest};
use crate::runner::{Runner, RunnerType};
use crate::runner_filter::{RunnerFacts, RunnerFilter};
use crate::time::Timestamp;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use futures_util::future::try_join_all;
use std::collections::{BTreeMap, HashSet};

const BATCH_GET_LIMIT: usize = 100;

/// A page that ends within a list's first this many items is read directly (at most this many
/// items: a runner's jobs, a project's instance runners); one further in is found from the
/// counts.
pub const HEAD_PAGE_END: u64 = 200;

/// A runner's jobs in one job id bucket: all of them, and how many have each status (the
/// statuses with none left out).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BucketJobCounts {
    pub total: u64,
    pub by_status: BTreeMap<String, u64>,
}

/// A runner's job counts per job id bucket, kept by the transactions that assign a job and
/// change its status.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunnerJobCounts(pub BTreeMap<i64, BucketJobCounts>);

impl RunnerJobCounts {
    /// The jobs of `status` (of any status: `None`) per bucket, in bucket order, empty buckets
    /// left out.
    pub fn per_bucket(&self, status: Option<&str>) -> Vec<(i64, u64)> {
        self.0
            .iter()
            .map(|(bucket, counts)| {
                let count = match status {
                    Some(status) => counts.by_status.get(status).copied().unwrap_or(0),
                    None => counts.total,
                };
                (*bucket, count)
            })
            .filter(|(_, count)| *count > 0)
            .collect()
    }

    /// The statuses a bucket has jobs of: the index partitions that hold its job ids.
    pub fn statuses_in(&self, bucket: i64) -> Vec<&str> {
        self.0
            .get(&bucket)
            .map(|counts| counts.by_status.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

/// What was read of a runner's first jobs beside its counts, when a page lies among them.
pub enum JobsHead {
    /// The page's jobs (any status: read from the runner's jobs index).
    Jobs(Vec<Job>),
    /// The ids of the jobs of one status up to the page's end (from that status's keys).
    Ids(Vec<i64>),
}

/// Matches found in order, and whether the reader saw all of them.
pub struct Scanned<T> {
    pub matches: Vec<T>,
    pub exhausted: bool,
}

/// Collects one page while counting every match, up to the page's scan limit.
struct PageCollector<T> {
    first: u64,
    end: u64,
    want: u64,
    matches: Vec<i64>,
    on_page: Vec<T>,
}

impl<T> PageCollector<T> {
    fn new(page: PageRequest) -> Self {
        Self {
            first: page.offset(),
            end: page.end(),
            want: page.scan_limit(),
            matches: Vec::new(),
            on_page: Vec::new(),
        }
    }

    /// Counts a match; builds its page item only when it falls on the page. `Ok(true)` once
    /// enough matches were seen.
    fn offer(
        &mut self,
        id: i64,
        item: impl FnOnce() -> Result<T, ApiError>,
    ) -> Result<bool, ApiError> {
        if (self.first..self.end).contains(&(self.matches.len() as u64)) {
            self.on_page.push(item()?);
        }
        self.matches.push(id);
        Ok(self.matches.len() as u64 >= self.want)
    }

    fn finish(self, exhausted: bool) -> (Vec<T>, Scanned<i64>) {
        (
            self.on_page,
            Scanned {
                matches: self.matches,
                exhausted,
            },
        )
    }
}

/// Which jobs a job page walks: a runner's (as it took them) or a project's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobIndex {
    Runner(i64),
    Project(i64),
}

/// Which runners an index page walks: all of them, or one type.
#[derive(Debug, Clone, Copy)]
pub enum RunnerIndex {
    All,
    OfType(RunnerType),
}

impl Store {
    /// Items by key, in batches of 100 sent together; unprocessed keys are asked for again.
    pub async fn batch_get(&self, keys: Vec<(String, String)>) -> Result<Vec<Item>, ApiError> {
        let chunks = keys
            .chunks(BATCH_GET_LIMIT)
            .map(|chunk| self.batch_get_chunk(chunk.iter().cloned().map(key_of).collect()));
        Ok(try_join_all(chunks).await?.into_iter().flatten().collect())
    }

    async fn batch_get_chunk(&self, keys: Vec<Item>) -> Result<Vec<Item>, ApiError> {
        let mut found = Vec::new();
        let mut pending = keys;
        for attempt in 0..8u32 {
            if pending.is_empty() {
                break;
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(pending))
                .consistent_read(true)
                .build()
                .map_err(|e| ApiError::internal(format!("building BatchGetItem: {e}")))?;
            let output = metrics::track(
                self.client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send(),
            )
            .await
            .map_err(storage_error)?;
            found.extend(output.responses.unwrap_or_default().into_values().flatten());
            pending = output
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.table))
                .map(|k| k.keys)
                .unwrap_or_default();
            if !pending.is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(20 << attempt.min(5))).await;
            }
        }
        if pending.is_empty() {
            Ok(found)
        } else {
            Err(ApiError::Unavailable(
                "BatchGetItem kept keys unprocessed".into(),
            ))
        }
    }

    /// Runs a query page after page (1 MB each), handing every item to `visit` until it answers
    /// `Ok(true)` ("enough") or the results end. Returns whether the results were exhausted.
    pub(crate) async fn query_pages(
        &self,
        query: QueryFluentBuilder,
        mut visit: impl FnMut(&Item) -> Result<bool, ApiError>,
    ) -> Result<bool, ApiError> {
        let mut start = None;
        loop {
            let output = metrics::track(query.clone().set_exclusive_start_key(start).send())
                .await
                .map_err(storage_error)?;
            for item in output.items() {
                if visit(item)? {
                    return Ok(false);
                }
            }
            start = output.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                return Ok(true);
            }
        }
    }

    /// Runners by id, in id order; ids that do not exist are left out.
    pub async fn get_runners(&self, ids: &[i64]) -> Result<Vec<Runner>, ApiError> {
        let items = self
            .batch_get(ids.iter().map(|id| keys::runner(*id)).collect())
            .await?;
        let mut runners = items
            .iter()
            .map(Runner::from_item)
            .collect::<Result<Vec<_>, _>>()?;
        runners.sort_by_key(|r| r.id);
        Ok(runners)
    }

    /// One page of runners out of candidate ids, in id order, counted up to the page's scan limit.
    /// `in_hand` are candidates already read; the others are read in batches: only the page's
    /// when there is no filter, every candidate's when there is one (a filter needs their
    /// attributes to know which fall on the page). `more_candidates` says the ids are a prefix.
    #[allow(clippy::too_many_arguments)]
    pub async fn runner_page(
        &self,
        mut ids: Vec<i64>,
        in_hand: &[Runner],
        more_candidates: bool,
        filter: &RunnerFilter,
        page: PageRequest,
        now: Timestamp,
        online_timeout_secs: i64,
    ) -> Result<(Vec<Runner>, PageInfo), ApiError> {
        ids.sort_unstable();
        ids.dedup();
        let limit = usize::try_from(page.scan_limit()).unwrap_or(usize::MAX);
        let exhausted = !more_candidates && ids.len() < limit;
        ids.truncate(limit);
        if filter.is_empty() {
            let (page_ids, info) = page.cut(ids, exhausted);
            return Ok((self.runners_with(&page_ids, in_hand).await?, info));
        }
        let candidates = self.runners_with(&ids, in_hand).await?;
        let matching: Vec<Runner> = candidates
            .into_iter()
            .filter(|r| filter.matches(&RunnerFacts::from(r), now, online_timeout_secs))
            .collect();
        Ok(page.cut(matching, exhausted))
    }

    /// The runners with these ids, taking those in hand and reading the rest; in id order.
    pub(crate) async fn runners_with(
        &self,
        ids: &[i64],
        in_hand: &[Runner],
    ) -> Result<Vec<Runner>, ApiError> {
        let wanted: HashSet<i64> = ids.iter().copied().collect();
        let mut runners: Vec<Runner> = in_hand
            .iter()
            .filter(|r| wanted.contains(&r.id))
            .cloned()
            .collect();
        let have: HashSet<i64> = runners.iter().map(|r| r.id).collect();
        let missing: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|id| !have.contains(id))
            .collect();
        runners.extend(self.get_runners(&missing).await?);
        runners.sort_by_key(|r| r.id);
        Ok(runners)
    }

    /// Walks runners in id order through an index, keeping those `keep` accepts, until `want` of
    /// them are found. Returns the runners of `page` and the facts of every match (for counting).
    pub async fn runners_in_index(
        &self,
        index: RunnerIndex,
        page: PageRequest,
        keep: impl Fn(&RunnerFacts) -> bool,
    ) -> Result<(Vec<Runner>, Scanned<i64>), ApiError> {
        let (name, key_attribute, key) = match index {
            RunnerIndex::All => (keys::GSI1, keys::GSI1_PK, keys::ALL_RUNNERS.to_owned()),
            RunnerIndex::OfType(t) => {
                (keys::GSI2, keys::GSI2_PK, keys::runners_of_type(t.as_str()))
            }
        };
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(name)
            .key_condition_expression("#k = :k")
            .expression_attribute_names("#k", key_attribute)
            .expression_attribute_values(":k", AttributeValue::S(key));
        let mut collector = PageCollector::new(page);
        let exhausted = self
            .query_pages(query, |item| {
                let runner = Runner::from_item(item)?;
                if keep(&RunnerFacts::from(&runner)) {
                    collector.offer(runner.id, || Ok(runner))
                } else {
                    Ok(false)
                }
            })
            .await?;
        Ok(collector.finish(exhausted))
    }

    /// Ids of the runners linked to these projects and groups, all queried together.
    pub async fn linked_runner_ids(&self, sources: &[MemberOf]) -> Result<Vec<i64>, ApiError> {
        let queries = sources.iter().map(|source| {
            let pk = match source {
                MemberOf::Project(id) => keys::project(*id).0,
                MemberOf::Group(id) => keys::group(*id).0,
            };
            self.linked_ids_upto(pk, usize::MAX)
        });
        Ok(merged_ids(try_join_all(queries).await?))
    }

    /// A user's memberships in these groups and projects (one batched read).
    pub async fn memberships_in(
        &self,
        user_id: i64,
        sources: &[MemberOf],
    ) -> Result<Vec<Membership>, ApiError> {
        let keys = sources
            .iter()
            .map(|s| match s {
                MemberOf::Group(id) => keys::group_member(*id, user_id),
                MemberOf::Project(id) => keys::project_member(*id, user_id),
            })
            .collect();
        self.batch_get(keys)
            .await?
            .iter()
            .map(Membership::from_item)
            .collect()
    }

    /// Every membership of a user (GSI1: `USER#<id>`).
    pub async fn memberships_of(&self, user_id: i64) -> Result<Vec<Membership>, ApiError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(keys::GSI1)
            .key_condition_expression("gsi1pk = :user")
            .expression_attribute_values(":user", AttributeValue::S(format!("USER#{user_id}")));
        let mut memberships = Vec::new();
        self.query_pages(query, |item| {
            memberships.push(Membership::from_item(item)?);
            Ok(false)
        })
        .await?;
        Ok(memberships)
    }

    pub async fn get_user(&self, id: i64) -> Result<Option<User>, ApiError> {
        self.get(keys::user(id))
            .await?
            .as_ref()
            .map(User::from_item)
            .transpose()
    }

    /// A page of a runner's jobs that lies within its first [`HEAD_PAGE_END`] (of any status, or
    /// of one), read directly, only as far as the page's end, because its total comes from the
    /// counts: the jobs themselves, or for one status their ids (that status's keys-only
    /// index). `None` for a page further in.
    pub async fn runner_jobs_head(
        &self,
        runner_id: i64,
        status: Option<&str>,
        descending: bool,
        page: PageRequest,
    ) -> Result<Option<JobsHead>, ApiError> {
        if page.end() > HEAD_PAGE_END {
            return Ok(None);
        }
        let limit = i32::try_from(page.end()).unwrap_or(i32::MAX);
        if let Some(status) = status {
            let query = self
                .status_job_ids(runner_id, status)
                .key_condition_expression("#pk = :pk")
                .scan_index_forward(!descending);
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            let (ids, _) = self.ids_from_keys(query, keys::GSI3_SK, limit).await?;
            return Ok(Some(JobsHead::Ids(ids)));
        }
        let query = self
            .job_query(JobIndex::Runner(runner_id), &[], descending)
            .limit(limit);
        let mut collector = PageCollector::new(page);
        collector.want = page.end();
        self.query_pages(query, |item| {
            let id = ItemReader::new(item, "job").n("id")?;
            collector.offer(id, || Job::from_item(item))
        })
        .await?;
        Ok(Some(JobsHead::Jobs(collector.finish(false).0)))
    }

    /// How many jobs a runner took, per job id bucket and status (one Query of its counts).
    pub async fn runner_job_counts(&self, runner_id: i64) -> Result<RunnerJobCounts, ApiError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(
                ":pk",
                AttributeValue::S(keys::runner_job_counts(runner_id)),
            )
            .consistent_read(true);
        let mut counts = BTreeMap::new();
        self.query_pages(query, |item| {
            let reader = ItemReader::new(item, "runner job count");
            let bucket = reader.s(keys::SK)?;
            let bucket: i64 = bucket
                .parse()
                .map_err(|_| ApiError::internal(format!("runner job count key {bucket}")))?;
            let mut by_status = BTreeMap::new();
            for attribute in item.keys() {
                let Some(status) = attribute.strip_prefix(keys::JOB_STATUS_COUNT_PREFIX) else {
                    continue;
                };
                let count = reader.n(attribute)?;
                if count > 0 {
                    by_status.insert(status.to_owned(), u64::try_from(count).unwrap_or(0));
                }
            }
            let total = u64::try_from(reader.n("value")?).unwrap_or(0);
            counts.insert(bucket, BucketJobCounts { total, by_status });
            Ok(false)
        })
        .await?;
        Ok(RunnerJobCounts(counts))
    }

    /// One page of a runner's jobs, of any status or of one, found from its counts, with the
    /// exact total: from `head` when [`Store::runner_jobs_head`] read it, else from the job ids
    /// of the buckets the page overlaps; then the page's jobs.
    pub async fn counted_runner_jobs(
        &self,
        runner_id: i64,
        counts: &RunnerJobCounts,
        status: Option<&str>,
        head: Option<JobsHead>,
        descending: bool,
        page: PageRequest,
    ) -> Result<(Vec<Job>, PageInfo), ApiError> {
        let mut walk = counts.per_bucket(status);
        if descending {
            walk.reverse();
        }
        let plan = plan_walk(walk, page);
        let ids = match head {
            Some(JobsHead::Jobs(jobs)) => return Ok((jobs, plan.info(page))),
            Some(JobsHead::Ids(ids)) => {
                let offset = usize::try_from(page.offset()).unwrap_or(usize::MAX);
                let per_page = usize::try_from(page.per_page).unwrap_or(usize::MAX);
                ids.into_iter().skip(offset).take(per_page).collect()
            }
            None => {
                self.bucket_job_ids(runner_id, counts, status, &plan, descending, page)
                    .await?
            }
        };
        let mut jobs = self
            .batch_get(ids.iter().map(|id| keys::job(*id)).collect())
            .await?
            .iter()
            .map(Job::from_item)
            .collect::<Result<Vec<_>, _>>()?;
        jobs.sort_by_key(|job| job.id);
        if descending {
            jobs.reverse();
        }
        Ok((jobs, plan.info(page)))
    }

    /// The ids of a page of a runner's jobs placed by `plan`: the keys of the buckets it
    /// overlaps, a key range of each status partition with jobs there (or of the one asked),
    /// all read together.
    async fn bucket_job_ids(
        &self,
        runner_id: i64,
        counts: &RunnerJobCounts,
        status: Option<&str>,
        plan: &PagePlan,
        descending: bool,
        page: PageRequest,
    ) -> Result<Vec<i64>, ApiError> {
        let ranges = plan.buckets.iter().flat_map(|bucket| {
            let statuses: Vec<&str> = match status {
                Some(status) => vec![status],
                None => counts.statuses_in(*bucket),
            };
            statuses.into_iter().map(move |status| (*bucket, status))
        });
        let queries = ranges.map(|(bucket, status)| {
            let first = bucket.saturating_mul(keys::JOB_BUCKET_SIZE);
            let last = first.saturating_add(keys::JOB_BUCKET_SIZE - 1);
            let query = self
                .status_job_ids(runner_id, status)
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :first AND :last")
                .expression_attribute_names("#sk", keys::GSI3_SK)
                .expression_attribute_values(":first", AttributeValue::S(keys::padded(first)))
                .expression_attribute_values(":last", AttributeValue::S(keys::padded(last)));
            self.ids_from_keys(query, keys::GSI3_SK, usize::MAX)
        });
        let mut ids = merged_ids(try_join_all(queries).await?);
        if descending {
            ids.reverse();
        }
        Ok(plan.cut(ids, page))
    }

    /// A Query of the ids of a runner's jobs of one status (gsi3, keys only, `#pk = :pk` bound):
    /// the caller adds its key condition.
    fn status_job_ids(&self, runner_id: i64, status: &str) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .index_name(keys::GSI3)
            .expression_attribute_names("#pk", keys::GSI3_PK)
            .expression_attribute_values(
                ":pk",
                AttributeValue::S(keys::runner_job_ids(runner_id, status)),
            )
    }

    fn job_query(
        &self,
        index: JobIndex,
        statuses: &[String],
        descending: bool,
    ) -> QueryFluentBuilder {
        let (index_name, key_name, key) = match index {
            JobIndex::Runner(id) => (keys::GSI2, keys::GSI2_PK, keys::runner_jobs(id)),
            JobIndex::Project(id) => (keys::GSI1, keys::GSI1_PK, keys::project_jobs(id)),
        };
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index_name)
            .key_condition_expression("#key = :jobs")
            .expression_attribute_names("#key", key_name)
            .expression_attribute_values(":jobs", AttributeValue::S(key))
            .scan_index_forward(!descending);
        if !statuses.is_empty() {
            let placeholders: Vec<String> =
                (0..statuses.len()).map(|i| format!(":status{i}")).collect();
            query = query
                .filter_expression(format!("#status IN ({})", placeholders.join(", ")))
                .expression_attribute_names("#status", "status");
            for (placeholder, status) in placeholders.iter().zip(statuses) {
                query = query
                    .expression_attribute_values(placeholder, AttributeValue::S(status.clone()));
            }
        }
        query
    }

    /// A page of jobs from an index, by id, with only the given statuses (all when empty).
    pub async fn job_page(
        &self,
        index: JobIndex,
        statuses: &[String],
        descending: bool,
        page: PageRequest,
    ) -> Result<(Vec<Job>, Scanned<i64>), ApiError> {
        let query = self.job_query(index, statuses, descending);
        let mut collector = PageCollector::new(page);
        let exhausted = self
            .query_pages(query, |item| {
                let id = ItemReader::new(item, "job").n("id")?;
                collector.offer(id, || Job::from_item(item))
            })
            .await?;
        Ok(collector.finish(exhausted))
    }
}
