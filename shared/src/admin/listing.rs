//! `runnerctl listing rebuild`: recomputes the list structures (runner counts, the runner id
//! index's keys, every group's subtree set) from the runner items. The API keeps them exact as
//! it writes; this fills them for a table written before they existed, and after a fixture
//! import (which writes runner items directly); and each runner's job counts, from the jobs.
//! Operator-side: it reads every runner (and, for job counts, scans the table).

use super::writes::{delete_all, err, put_all};
use crate::runner::Runner;
use crate::store::Store;
use crate::store::item::{Item, ItemBuilder, ItemReader, key_from, key_of, number_set};
use crate::store::keys;
use crate::store::listing::{CountChange, Tally, listing_changes};
use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::{StreamExt, TryStreamExt};
use std::collections::BTreeMap;

/// What a rebuild found and wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildSummary {
    pub runners: usize,
    /// Runner items that lacked their runner id index keys (written before the index).
    pub indexed: usize,
    pub counters: usize,
    /// Count items no runner needs any more (a tag nobody carries), and count changes still in
    /// an outbox (the counts written include them), deleted.
    pub stale_counters_removed: usize,
    /// Subtree set, facet and contact entries written.
    pub index_entries: usize,
    /// Runner job count items written, and assigned jobs given their index keys.
    pub job_counters: usize,
    pub jobs_indexed: usize,
    /// Subtree, facet and contact entries no runner has any more, deleted (only with a full rebuild).
    pub orphan_entries_removed: usize,
}

const UPDATES_IN_FLIGHT: usize = 16;

/// Which runners' job counts a rebuild recomputes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobCounts {
    /// None (no job was written directly).
    Skip,
    /// These runners', from their jobs in the runner job index (a fixture's jobs have their
    /// index keys, as have jobs assigned since the index exists).
    Of(Vec<i64>),
    /// Every runner's, from a Scan of the table: jobs written before the index have no index
    /// keys yet, and get them. The same Scan finds index entries (subtree sets, facets, contacts) that
    /// no runner has any more (left by a write whose follow-up failed, or by a fixture
    /// re-import), and they are deleted.
    All,
}

/// A recomputed runner count item: each count, absolute, and its member set (none when
/// empty).
fn runner_counter_item((key, counts): CountChange) -> Item {
    let mut item = counts
        .iter()
        .fold(ItemBuilder::keyed(key), |item, (attribute, count)| {
            item.n(attribute, count.delta)
        })
        .build();
    for (attribute, count) in counts {
        if !count.joining.is_empty() {
            item.insert(keys::members_of(&attribute), number_set(&count.joining));
        }
    }
    item
}

/// A recomputed job count item: absolute counts (`value`, and one per status).
fn counter_item((key, counts): ((String, String), BTreeMap<String, i64>)) -> Item {
    counts
        .into_iter()
        .fold(ItemBuilder::keyed(key), |item, (attribute, count)| {
            item.n(&attribute, count)
        })
        .build()
}

/// Runner job counts being recomputed: per count item (a runner and job id bucket), all its
/// jobs (`value`) and those of each status.
#[derive(Default)]
struct JobTally(BTreeMap<(String, String), BTreeMap<String, i64>>);

impl JobTally {
    fn add(&mut self, runner_id: i64, job_id: i64, status: &str) {
        let counts = self
            .0
            .entry(keys::runner_job_count(runner_id, job_id))
            .or_default();
        for attribute in ["value".to_owned(), keys::job_status_count(status)] {
            *counts.entry(attribute).or_default() += 1;
        }
    }

    fn into_items(self) -> Vec<Item> {
        self.0.into_iter().map(counter_item).collect()
    }
}

/// Recomputes the job counts of the given runners from their jobs (a runner's jobs index,
/// id and status only).
async fn recount_jobs_of(store: &Store, runners: &[i64]) -> Result<usize, String> {
    let mut tally = JobTally::default();
    for runner_id in runners {
        let query = store
            .client()
            .query()
            .table_name(store.table())
            .index_name(keys::GSI2)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", keys::GSI2_PK)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":pk", AttributeValue::S(keys::runner_jobs(*runner_id)))
            .projection_expression("id, #status");
        store
            .query_pages(query, |item| {
                let reader = ItemReader::new(item, "job");
                tally.add(*runner_id, reader.n("id")?, &reader.s("status")?);
                Ok(false)
            })
            .await
            .map_err(err)?;
    }
    let items = tally.into_items();
    let written = items.len();
    put_all(store, items).await?;
    Ok(written)
}

/// Runs a Scan page after page (operator-side only), giving each item to `each`.
async fn scan_pages(
    scan: aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder,
    mut each: impl FnMut(&Item) -> Result<(), String>,
) -> Result<(), String> {
    let mut start = None;
    loop {
        let output = scan
            .clone()
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| err(crate::store::storage_error(e)))?;
        for item in output.items() {
            each(item)?;
        }
        start = output.last_evaluated_key.filter(|k| !k.is_empty());
        if start.is_none() {
            return Ok(());
        }
    }
}

/// Recomputes every runner's job counts from the jobs (one Scan: operator-side only) and
/// gives assigned jobs without their runner job index key for their status (written before
/// the index) that key. Returns the count items written and the jobs given keys.
async fn rebuild_job_counts(store: &Store) -> Result<(usize, usize), String> {
    let mut tally = JobTally::default();
    let mut unindexed = Vec::new();
    let scan = store
        .client()
        .scan()
        .table_name(store.table())
        .filter_expression("#entity = :job AND attribute_exists(runner_id)")
        .expression_attribute_names("#entity", "entity")
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":job", AttributeValue::S("job".to_owned()))
        .projection_expression("id, runner_id, #status, gsi3pk");
    scan_pages(scan, |item| {
        let reader = ItemReader::new(item, "job");
        let (id, runner_id, status) = (
            reader.n("id").map_err(err)?,
            reader.n("runner_id").map_err(err)?,
            reader.s("status").map_err(err)?,
        );
        let expected = keys::runner_job_ids(runner_id, &status);
        if reader.opt_s(keys::GSI3_PK).as_deref() != Some(expected.as_str()) {
            unindexed.push((keys::job(id), expected, keys::padded(id)));
        }
        tally.add(runner_id, id, &status);
        Ok(())
    })
    .await?;
    let items = tally.into_items();
    let written = (items.len(), unindexed.len());
    put_all(store, items).await?;
    set_index_keys(store, unindexed).await?;
    Ok(written)
}

/// Sets gsi3 keys on items that exist (an item deleted meanwhile needs none).
async fn set_index_keys(
    store: &Store,
    items: Vec<((String, String), String, String)>,
) -> Result<(), String> {
    futures_util::stream::iter(items)
        .map(|(key, partition, sort)| async move {
            store
                .client()
                .update_item()
                .table_name(store.table())
                .set_key(Some(key_of(key)))
                .update_expression("SET #pk = :pk, #sk = :sk")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_names("#pk", keys::GSI3_PK)
                .expression_attribute_names("#sk", keys::GSI3_SK)
                .expression_attribute_values(":pk", AttributeValue::S(partition))
                .expression_attribute_values(":sk", AttributeValue::S(sort))
                .send()
                .await
                .map(|_| ())
                .or_else(|e| {
                    let gone = e
                        .as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception());
                    if gone {
                        Ok(())
                    } else {
                        Err(err(crate::store::storage_error(e)))
                    }
                })
        })
        .buffer_unordered(UPDATES_IN_FLIGHT)
        .try_for_each(|()| async { Ok(()) })
        .await
}

/// Recomputes the counts, subtree sets and facet indexes of every runner. Counts are written
/// as absolute values, so run it while nothing registers, changes or deletes runners (a count
/// changed between the read and the write would be overwritten); index entries are only
/// added, never removed.
/// `jobs` says which runners' job counts to recompute too.
pub async fn rebuild_listing(store: &Store, jobs: JobCounts) -> Result<RebuildSummary, String> {
    let runner_items = all_runner_items(store).await?;
    let mut counts = Tally::default();
    let mut entries = Vec::new();
    let mut unindexed = Vec::new();
    for item in &runner_items {
        let runner = Runner::from_item(item).map_err(err)?;
        let changes = listing_changes(None, Some(&runner));
        counts.extend(changes.counts);
        entries.extend(
            (changes.facet_puts.iter().map(|entry| entry.item()))
                .chain(changes.contact_put.map(|entry| entry.item())),
        );
        let expected =
            keys::runner_ids(runner.runner_type.as_str(), keys::runner_bucket(runner.id));
        let reader = ItemReader::new(item, "runner");
        if reader.opt_s(keys::GSI3_PK).as_deref() != Some(expected.as_str()) {
            unindexed.push((runner.id, expected));
        }
    }
    let counts = counts.changes();
    // What a full rebuild keeps of what its scan finds: these entries, and the subtree counts
    // (in each group's partition) some runner is counted in.
    let expected_entries: std::collections::BTreeSet<(String, String)> = (entries.iter())
        .filter_map(key_from)
        .chain(counts.iter().map(|(key, _)| key.clone()))
        .collect();
    let counted: std::collections::BTreeSet<&(String, String)> =
        counts.iter().map(|(key, _)| key).collect();
    let stale: Vec<Item> = existing_counter_keys(store)
        .await?
        .into_iter()
        .filter(|key| !counted.contains(key))
        .map(key_of)
        .collect();
    let mut summary = RebuildSummary {
        runners: runner_items.len(),
        indexed: unindexed.len(),
        counters: counts.len(),
        stale_counters_removed: stale.len(),
        index_entries: entries.len(),
        job_counters: 0,
        jobs_indexed: 0,
        orphan_entries_removed: 0,
    };
    let counter_items = counts.into_iter().map(runner_counter_item).collect();
    put_all(store, counter_items).await?;
    delete_all(store, stale).await?;
    put_all(store, entries).await?;
    set_index_keys(
        store,
        unindexed
            .into_iter()
            .map(|(id, partition)| (keys::runner(id), partition, keys::padded(id)))
            .collect(),
    )
    .await?;
    match jobs {
        JobCounts::Skip => {}
        JobCounts::Of(runners) => summary.job_counters = recount_jobs_of(store, &runners).await?,
        JobCounts::All => {
            let (job_counters, jobs_indexed) = rebuild_job_counts(store).await?;
            summary.job_counters = job_counters;
            summary.jobs_indexed = jobs_indexed;
            let orphans = orphan_index_entries(store, &expected_entries).await?;
            summary.orphan_entries_removed = orphans.len();
            delete_all(store, orphans).await?;
        }
    }
    Ok(summary)
}

/// Every subtree count, facet and contact entry in the table, and every subtree entry of a
/// table written before subtree counts (a Scan: operator-side only), that is not one of
/// `expected`.
async fn orphan_index_entries(
    store: &Store,
    expected: &std::collections::BTreeSet<(String, String)>,
) -> Result<Vec<Item>, String> {
    let mut orphans = Vec::new();
    let scan = store
        .client()
        .scan()
        .table_name(store.table())
        .filter_expression(
            "begins_with(pk, :facet) OR begins_with(pk, :contact) OR begins_with(sk, :subtree) \
             OR begins_with(sk, :subtree_count)",
        )
        .expression_attribute_values(":facet", AttributeValue::S(keys::FACET_PREFIX.into()))
        .expression_attribute_values(":contact", AttributeValue::S(keys::CONTACT_PREFIX.into()))
        .expression_attribute_values(":subtree", AttributeValue::S(keys::SUBTREE_PREFIX.into()))
        .expression_attribute_values(
            ":subtree_count",
            AttributeValue::S(keys::SUBTREE_COUNT_PREFIX.into()),
        )
        .projection_expression("pk, sk");
    scan_pages(scan, |item| {
        if key_from(item).is_some_and(|key| !expected.contains(&key)) {
            orphans.push(item.clone());
        }
        Ok(())
    })
    .await?;
    Ok(orphans)
}

/// Every runner item, through the all-runners index (a Query, page after page).
async fn all_runner_items(store: &Store) -> Result<Vec<Item>, String> {
    let query = store
        .client()
        .query()
        .table_name(store.table())
        .index_name(keys::GSI1)
        .key_condition_expression("gsi1pk = :all")
        .expression_attribute_values(":all", AttributeValue::S(keys::ALL_RUNNERS.to_owned()));
    let mut items = Vec::new();
    store
        .query_pages(query, |item| {
            items.push(item.clone());
            Ok(false)
        })
        .await
        .map_err(err)?;
    Ok(items)
}

/// Every runner count, facet count and pending outbox item (whose changes a rebuild's absolute
/// counts supersede): a Query of each partition.
async fn existing_counter_keys(store: &Store) -> Result<Vec<(String, String)>, String> {
    let mut found = Vec::new();
    for partition in [
        keys::RUNNER_COUNTS,
        keys::RUNNER_FACET_COUNTS,
        keys::RUNNER_CONTACT_COUNTS,
        keys::RUNNER_SEEN_COUNTS,
        keys::LISTING_OUTBOX,
    ] {
        let query = store
            .client()
            .query()
            .table_name(store.table())
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(partition.to_owned()))
            .projection_expression("pk, sk")
            .consistent_read(true);
        store
            .query_pages(query, |item| {
                let reader = ItemReader::new(item, "runner count");
                found.push((reader.s(keys::PK)?, reader.s(keys::SK)?));
                Ok(false)
            })
            .await
            .map_err(err)?;
    }
    Ok(found)
}
