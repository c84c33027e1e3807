//! What keeps every runner list page cheap however many runners there are
//! (`docs/data-model.md`, "Lists at scale"):
//!
//! - **runner counts** per type and id bucket (`RUNNER_COUNTS`), so that a page's position is
//!   found from a few dozen small items instead of by counting the runners before it;
//! - **the runner id index** (GSI3, keys only), so that the page itself is found by reading one
//!   bucket's keys;
//! - **each group's subtree set** (`GROUP#g` / `SUBTREE#<runner>`): every runner linked to the
//!   group or to anything below it, in id order, so that a group's owned runners are one query
//!   however many projects it holds.
//!
//! All three change only when a runner is made, deleted, or enabled in or disabled from a
//! project, in those writes' own transactions: [`listing_changes`] says what changes, from the
//! runner before and after.

use super::item::{Item, ItemReader};
use super::{Store, build_error, keys};
use crate::error::ApiError;
use crate::metrics;
use crate::pagination::{PageInfo, PageRequest};
use crate::runner::{Runner, RunnerType};
use crate::runner_filter::Facet;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use futures_util::future::try_join_all;
use std::collections::{BTreeMap, BTreeSet};

/// The groups whose subtree holds a runner: the groups above each of its projects, and its
/// own group with that group's ancestors.
fn subtree_groups(runner: &Runner) -> BTreeSet<i64> {
    let above_projects = runner.projects.iter().flat_map(|p| p.group_ids.clone());
    let own_group = runner
        .group
        .iter()
        .flat_map(|g| g.ancestor_ids.iter().copied().chain([g.id]));
    above_projects.chain(own_group).collect()
}

/// A count item and what to add to its attributes.
pub(crate) type CountChange = ((String, String), BTreeMap<String, i64>);

/// The writes that keep the listing structures exact when a runner goes from `before` to
/// `after` (`None`: it does not exist).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ListingChanges {
    /// Counter items and what to add to their attributes: a runner count's `value` counts every
    /// runner, a facet count's attribute named after a type the runners of that type with the
    /// facet (no zero, no item without a change).
    pub counts: Vec<CountChange>,
    pub subtree_puts: Vec<(String, String)>,
    pub subtree_deletes: Vec<(String, String)>,
    pub facet_puts: Vec<(String, String)>,
    pub facet_deletes: Vec<(String, String)>,
}

/// The facet index entries of a runner.
fn facet_entries(runner: &Runner) -> BTreeSet<(String, String)> {
    Facet::of(runner)
        .iter()
        .map(|facet| keys::runner_facet(&facet.name(), runner.runner_type.as_str(), runner.id))
        .collect()
}

pub(crate) fn listing_changes(before: Option<&Runner>, after: Option<&Runner>) -> ListingChanges {
    let mut counts: BTreeMap<(String, String), BTreeMap<String, i64>> = BTreeMap::new();
    for (runner, delta) in [(before, -1), (after, 1)] {
        if let Some(runner) = runner {
            let runner_type = runner.runner_type.as_str();
            let total = (keys::runner_count(runner_type, runner.id), "value");
            let facets = Facet::of(runner)
                .into_iter()
                .map(|f| (keys::runner_facet_count(&f.name(), runner.id), runner_type));
            for (item, attribute) in std::iter::once(total).chain(facets) {
                let attributes = counts.entry(item).or_default();
                *attributes.entry(attribute.to_owned()).or_default() += delta;
            }
        }
    }
    for attributes in counts.values_mut() {
        attributes.retain(|_, delta| *delta != 0);
    }
    counts.retain(|_, attributes| !attributes.is_empty());
    let old = before.map(subtree_groups).unwrap_or_default();
    let new = after.map(subtree_groups).unwrap_or_default();
    let Some(id) = after.or(before).map(|r| r.id) else {
        return ListingChanges::default();
    };
    let old_facets = before.map(facet_entries).unwrap_or_default();
    let new_facets = after.map(facet_entries).unwrap_or_default();
    ListingChanges {
        counts: counts.into_iter().collect(),
        subtree_puts: new
            .difference(&old)
            .map(|g| keys::subtree_runner(*g, id))
            .collect(),
        subtree_deletes: old
            .difference(&new)
            .map(|g| keys::subtree_runner(*g, id))
            .collect(),
        facet_puts: new_facets.difference(&old_facets).cloned().collect(),
        facet_deletes: old_facets.difference(&new_facets).cloned().collect(),
    }
}

/// The condition that the runner's contact state is as `read`: a write that moves its
/// listing (enable, delete) computed the `never_contacted` facet from it, and a first
/// heartbeat (which bumps no version) may have changed it meanwhile.
pub(crate) fn contact_as_read(read: &Runner) -> &'static str {
    match read.contacted_at {
        Some(_) => "attribute_exists(contacted_at)",
        None => "attribute_not_exists(contacted_at)",
    }
}

/// A never-contacted runner's first contact: it leaves its `never_contacted` count and entry.
pub(crate) fn first_contact_changes(runner_type: RunnerType, id: i64) -> ListingChanges {
    let facet = Facet::NeverContacted.name();
    ListingChanges {
        counts: vec![(
            keys::runner_facet_count(&facet, id),
            BTreeMap::from([(runner_type.as_str().to_owned(), -1)]),
        )],
        facet_deletes: vec![keys::runner_facet(&facet, runner_type.as_str(), id)],
        ..ListingChanges::default()
    }
}

/// The ids several key reads found (each as [`Store::ids_from_keys`] answers), in id order,
/// each once.
pub(crate) fn merged_ids(reads: Vec<(Vec<i64>, bool)>) -> Vec<i64> {
    let mut ids: Vec<i64> = reads.into_iter().flat_map(|(ids, _)| ids).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// An entry of a subtree set or a facet index: its keys only (the sort key ends with the
/// runner id), about 40 bytes, so that 16,000 of them are one Query page.
pub(crate) fn key_item(key: (String, String)) -> Item {
    super::item::ItemBuilder::keyed(key).build()
}

/// How many runners one Query of a subtree set may meet when a deep page reads the set in
/// parallel id ranges: 16,000 entries are under DynamoDB's 1 MB page.
pub const SUBTREE_RANGE: u64 = 16_000;

/// How many runners of each type are in each id bucket.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunnerCounts(BTreeMap<(RunnerType, i64), u64>);

impl RunnerCounts {
    /// Id ranges, in order and covering every id, that each hold at most [`SUBTREE_RANGE`]
    /// runners of any type (so at most that many of one group's subtree set): consecutive
    /// buckets are joined while their counts allow, whatever the gaps between their ids.
    pub fn id_ranges(&self) -> Vec<(i64, i64)> {
        let all = [RunnerType::Instance, RunnerType::Group, RunnerType::Project];
        let mut ranges = Vec::new();
        let (mut first, mut held) = (0i64, 0u64);
        for (bucket, count) in self.per_bucket(&all) {
            if held > 0 && held.saturating_add(count) > SUBTREE_RANGE {
                let start = bucket.saturating_mul(keys::RUNNER_BUCKET_SIZE);
                ranges.push((first, start - 1));
                (first, held) = (start, 0);
            }
            held = held.saturating_add(count);
        }
        ranges.push((first, i64::MAX));
        ranges
    }

    /// The runners of these types per bucket, in bucket order (empty buckets left out).
    pub fn per_bucket(&self, types: &[RunnerType]) -> BTreeMap<i64, u64> {
        let mut buckets = BTreeMap::new();
        for ((runner_type, bucket), count) in &self.0 {
            if *count > 0 && types.contains(runner_type) {
                let sum: &mut u64 = buckets.entry(*bucket).or_default();
                *sum = sum.saturating_add(*count);
            }
        }
        buckets
    }
}

/// Where one page of a counted list lies: a list of runners named by id (`listed`: a
/// project's or group's links) and of every runner of some types (known per bucket from the
/// counts). The page is found from counts alone; only the buckets it overlaps are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagePlan {
    /// The id buckets the page overlaps, in order.
    pub buckets: Vec<i64>,
    /// How many of those buckets' runners come before the page.
    pub skip: usize,
    pub total: u64,
}

pub fn plan_page(listed: &[i64], per_bucket: &BTreeMap<i64, u64>, page: PageRequest) -> PagePlan {
    let mut combined = per_bucket.clone();
    for id in listed {
        *combined.entry(keys::runner_bucket(*id)).or_default() += 1;
    }
    plan_walk(combined, page)
}

/// Finds the page in buckets walked in the given order (ascending ids, or descending).
pub fn plan_walk(buckets: impl IntoIterator<Item = (i64, u64)>, page: PageRequest) -> PagePlan {
    plan_range(buckets, page.offset(), page.end())
}

/// Finds the items ranked `offset` to `end` (excluded) in buckets walked in the given order.
fn plan_range(buckets: impl IntoIterator<Item = (i64, u64)>, offset: u64, end: u64) -> PagePlan {
    let buckets: Vec<(i64, u64)> = buckets.into_iter().collect();
    let total = buckets
        .iter()
        .fold(0u64, |sum, (_, count)| sum.saturating_add(*count));
    let end = end.min(total);
    let mut plan = PagePlan {
        buckets: Vec::new(),
        skip: 0,
        total,
    };
    let mut before = 0u64;
    for (bucket, count) in buckets {
        let after = before.saturating_add(count);
        if after > offset && before < end {
            if plan.buckets.is_empty() {
                plan.skip = usize::try_from(offset - before).unwrap_or(usize::MAX);
            }
            plan.buckets.push(bucket);
        }
        before = after;
    }
    plan
}

impl PagePlan {
    /// The page's info once the page is found from the counts: the total is exact.
    pub fn info(&self, page: PageRequest) -> PageInfo {
        PageInfo {
            page: page.page,
            per_page: page.per_page,
            total: Some(self.total),
            has_next: page.end() < self.total,
        }
    }

    /// Cuts the page out of the planned buckets' ids, in walking order.
    pub fn cut(&self, ids: Vec<i64>, page: PageRequest) -> Vec<i64> {
        let per_page = usize::try_from(page.per_page).unwrap_or(usize::MAX);
        ids.into_iter().skip(self.skip).take(per_page).collect()
    }
}

impl Store {
    /// One page of `listed` runners (group and project runners, by id) together with every
    /// runner of `types` (with `facet`, if given), in id order, with the exact total from
    /// `counts` (of the same facet, read beside whatever else the caller needed).
    /// `first_of_types`, when the caller read them, are the first runners of `types` up to the
    /// page's end: the page is then among them and the links. Otherwise the buckets the page
    /// overlaps are read from the runner id index or the facet's (all at once). Then the
    /// page's runners not in hand.
    pub async fn counted_page(
        &self,
        mut listed: Vec<i64>,
        types: &[RunnerType],
        facet: Option<&Facet>,
        counts: &RunnerCounts,
        first_of_types: Option<&[Runner]>,
        page: PageRequest,
    ) -> Result<(Vec<Runner>, PageInfo), ApiError> {
        listed.sort_unstable();
        listed.dedup();
        let per_bucket = counts.per_bucket(types);
        let plan = plan_page(&listed, &per_bucket, page);
        let (mut ids, skip) = match first_of_types {
            Some(first) => {
                let offset = usize::try_from(page.offset()).unwrap_or(usize::MAX);
                (first.iter().map(|r| r.id).collect(), offset)
            }
            None => {
                let indexed: Vec<i64> = plan
                    .buckets
                    .iter()
                    .copied()
                    .filter(|b| per_bucket.contains_key(b))
                    .collect();
                let ids = self.bucket_runner_ids(types, facet, &indexed).await?;
                let planned = |id: &i64| plan.buckets.contains(&keys::runner_bucket(*id));
                listed.retain(planned);
                (ids, plan.skip)
            }
        };
        ids.extend(listed);
        ids.sort_unstable();
        ids.dedup();
        let per_page = usize::try_from(page.per_page).unwrap_or(usize::MAX);
        let page_ids: Vec<i64> = ids.into_iter().skip(skip).take(per_page).collect();
        let mut runners = self
            .runners_with(&page_ids, first_of_types.unwrap_or_default())
            .await?;
        if let Some(facet) = facet {
            // An entry left by a write whose follow-up failed is not a match.
            runners.retain(|runner| Facet::of(runner).contains(facet));
        }
        Ok((runners, plan.info(page)))
    }

    /// One page of a project's or group's list filtered on one facet: the `listed` runners
    /// (its own, by id) that have the facet, together with every runner of `types` that has it
    /// (placed by `counts`, of that facet), in id order, with the exact total. The listed
    /// runners are read whole (a list's own runners are few) while, beside them, the facet's
    /// index is read for the buckets holding every type match the page may hold: ranked from
    /// the page's offset less the listed runners, to its end. Then the page's other runners.
    pub async fn faceted_page(
        &self,
        mut listed: Vec<i64>,
        types: &[RunnerType],
        facet: &Facet,
        counts: &RunnerCounts,
        page: PageRequest,
    ) -> Result<(Vec<Runner>, PageInfo), ApiError> {
        listed.sort_unstable();
        listed.dedup();
        let per_bucket = counts.per_bucket(types);
        let listed_count = u64::try_from(listed.len()).unwrap_or(u64::MAX);
        let lowest = page.offset().saturating_sub(listed_count);
        let window = plan_range(per_bucket.clone(), lowest, page.end());
        let (linked, window_ids) = futures_util::future::try_join(
            self.get_runners(&listed),
            self.bucket_runner_ids(types, Some(facet), &window.buckets),
        )
        .await?;
        let matched: Vec<Runner> = linked
            .into_iter()
            .filter(|runner| Facet::of(runner).contains(facet))
            .collect();
        let total = window
            .total
            .saturating_add(u64::try_from(matched.len()).unwrap_or(u64::MAX));
        let info = PagePlan {
            total,
            ..window.clone()
        }
        .info(page);
        // Every match below the window comes before the page (the window starts at most
        // `listed` matches before it): count them, and cut the page from the rest.
        let (start, typed_before) = match window.buckets.first() {
            Some(bucket) => (
                bucket.saturating_mul(keys::RUNNER_BUCKET_SIZE),
                per_bucket.range(..*bucket).map(|(_, count)| *count).sum(),
            ),
            // No runner of the types has the facet: the listed ones are the list.
            None if window.total == 0 => (i64::MIN, 0u64),
            // Every one of them comes before the offset: so does every listed one.
            None => return Ok((Vec::new(), info)),
        };
        let listed_before = matched.iter().filter(|r| r.id < start).count();
        let before = typed_before.saturating_add(u64::try_from(listed_before).unwrap_or(0));
        let mut ids: Vec<i64> = matched
            .iter()
            .map(|r| r.id)
            .filter(|id| *id >= start)
            .chain(window_ids)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let skip = usize::try_from(page.offset().saturating_sub(before)).unwrap_or(usize::MAX);
        let per_page = usize::try_from(page.per_page).unwrap_or(usize::MAX);
        let page_ids: Vec<i64> = ids.into_iter().skip(skip).take(per_page).collect();
        let mut runners = self.runners_with(&page_ids, &matched).await?;
        runners.retain(|runner| Facet::of(runner).contains(facet));
        Ok((runners, info))
    }

    /// The writes of the index entries (subtree sets, facets) that `changes` moves: puts and
    /// deletes without conditions, which may follow right after the transaction that moves the
    /// counts when they do not all fit in it ([`Store::transact_spilling`]).
    pub(crate) fn entry_actions(
        &self,
        changes: &ListingChanges,
    ) -> Result<Vec<TransactWriteItem>, ApiError> {
        let mut entries = Vec::new();
        for key in changes.subtree_puts.iter().chain(&changes.facet_puts) {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(key_item(key.clone())))
                .build()
                .map_err(build_error)?;
            entries.push(TransactWriteItem::builder().put(put).build());
        }
        for key in changes.subtree_deletes.iter().chain(&changes.facet_deletes) {
            entries.push(self.delete_action(key.clone())?);
        }
        Ok(entries)
    }

    /// Every runner count, or every count of the runners with a facet (one Query: a few small
    /// items per 1,000 runners).
    pub async fn runner_counts(&self, facet: Option<&Facet>) -> Result<RunnerCounts, ApiError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true);
        let query = match facet {
            None => query
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(
                    ":pk",
                    AttributeValue::S(keys::RUNNER_COUNTS.to_owned()),
                )
                .projection_expression("sk, #count")
                .expression_attribute_names("#count", "value"),
            Some(facet) => query
                .key_condition_expression("pk = :pk AND begins_with(sk, :facet)")
                .expression_attribute_values(
                    ":pk",
                    AttributeValue::S(keys::RUNNER_FACET_COUNTS.to_owned()),
                )
                .expression_attribute_values(
                    ":facet",
                    AttributeValue::S(keys::runner_facet_counts_prefix(&facet.name())),
                ),
        };
        let mut counts = BTreeMap::new();
        let mut add = |runner_type: RunnerType, bucket: i64, value: Option<i64>| {
            let count: &mut u64 = counts.entry((runner_type, bucket)).or_default();
            *count = count.saturating_add(u64::try_from(value.unwrap_or(0)).unwrap_or(0));
        };
        self.query_pages(query, |item| {
            let reader = ItemReader::new(item, "runner count");
            let sk = reader.s(keys::SK)?;
            let unreadable = || ApiError::internal(format!("runner count key {sk}"));
            if facet.is_some() {
                let bucket = keys::parse_runner_facet_count(&sk).ok_or_else(unreadable)?;
                // An item counts only the types that ever had a runner with the facet there.
                for name in RunnerType::NAMES {
                    let runner_type = RunnerType::parse(name).ok_or_else(unreadable)?;
                    add(runner_type, bucket, reader.opt_n(name)?);
                }
            } else {
                let (runner_type, bucket) = keys::parse_runner_count(&sk).ok_or_else(unreadable)?;
                let runner_type = RunnerType::parse(runner_type).ok_or_else(unreadable)?;
                add(runner_type, bucket, reader.opt_n("value")?);
            }
            Ok(false)
        })
        .await?;
        Ok(RunnerCounts(counts))
    }

    /// The ids of the runners of these types in these buckets, all of them (GSI3) or those with
    /// a facet (its index), all queried together, in id order.
    pub async fn bucket_runner_ids(
        &self,
        types: &[RunnerType],
        facet: Option<&Facet>,
        buckets: &[i64],
    ) -> Result<Vec<i64>, ApiError> {
        let facet = facet.map(Facet::name);
        let facet = facet.as_deref();
        let queries = buckets.iter().flat_map(|bucket| {
            types.iter().map(move |runner_type| {
                let query = self.client.query().table_name(&self.table);
                let (query, key_attribute) = match facet {
                    None => (
                        query
                            .index_name(keys::GSI3)
                            .key_condition_expression("#k = :k")
                            .expression_attribute_names("#k", keys::GSI3_PK)
                            .expression_attribute_values(
                                ":k",
                                AttributeValue::S(keys::runner_ids(runner_type.as_str(), *bucket)),
                            ),
                        keys::GSI3_SK,
                    ),
                    Some(facet) => (
                        query
                            .key_condition_expression("pk = :k")
                            .expression_attribute_values(
                                ":k",
                                AttributeValue::S(keys::runner_facet_partition(
                                    facet,
                                    runner_type.as_str(),
                                    *bucket,
                                )),
                            ),
                        keys::SK,
                    ),
                };
                self.ids_from_keys(query, key_attribute, usize::MAX)
            })
        });
        Ok(merged_ids(try_join_all(queries).await?))
    }

    /// The first `limit` runners of a group's subtree set, in id order, and whether there are
    /// more.
    pub async fn subtree_runner_ids(
        &self,
        group_id: i64,
        limit: usize,
    ) -> Result<(Vec<i64>, bool), ApiError> {
        let (pk, _) = keys::subtree_runner(group_id, 0);
        self.prefix_ids(pk, keys::SUBTREE_PREFIX, limit).await
    }

    /// The first `limit` runners of a group's subtree set, read as parallel queries of the
    /// given id ranges (from [`RunnerCounts::id_ranges`]: one round trip however deep the
    /// page), and whether there are more.
    pub async fn subtree_runner_ids_in_ranges(
        &self,
        group_id: i64,
        ranges: &[(i64, i64)],
        limit: usize,
    ) -> Result<(Vec<i64>, bool), ApiError> {
        let (pk, _) = keys::subtree_runner(group_id, 0);
        let ranges = ranges.iter().map(|(first, last)| {
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :first AND :last")
                .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                .expression_attribute_values(
                    ":first",
                    AttributeValue::S(keys::subtree_runner(group_id, *first).1),
                )
                .expression_attribute_values(
                    ":last",
                    AttributeValue::S(keys::subtree_runner(group_id, *last).1),
                )
                .projection_expression("sk");
            self.ids_from_keys(query, keys::SK, limit)
        });
        let mut ids = Vec::new();
        for (range_ids, more) in try_join_all(ranges).await? {
            ids.extend(range_ids);
            // Ids after a range cut short are not the next ones: stop there.
            if more || ids.len() > limit {
                ids.truncate(limit);
                return Ok((ids, true));
            }
        }
        Ok((ids, false))
    }

    /// The first `limit` ids of the runners linked to a project or group, in id order, and
    /// whether there are more.
    pub async fn linked_ids_upto(
        &self,
        pk: String,
        limit: usize,
    ) -> Result<(Vec<i64>, bool), ApiError> {
        self.prefix_ids(pk, keys::RUNNER_LINK_PREFIX, limit).await
    }

    async fn prefix_ids(
        &self,
        pk: String,
        prefix: &str,
        limit: usize,
    ) -> Result<(Vec<i64>, bool), ApiError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", AttributeValue::S(pk))
            .expression_attribute_values(":prefix", AttributeValue::S(prefix.to_owned()))
            .projection_expression("sk");
        self.ids_from_keys(query, keys::SK, limit).await
    }

    /// Runs a query whose items end their `key_attribute` with a padded runner id, up to
    /// `limit` items (the Query's own `Limit`, so that no more is read), and says whether
    /// there were more.
    pub(crate) async fn ids_from_keys(
        &self,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
        key_attribute: &str,
        limit: usize,
    ) -> Result<(Vec<i64>, bool), ApiError> {
        let mut ids = Vec::new();
        let mut start = None;
        loop {
            let room = limit.saturating_sub(ids.len());
            // One more than the room, to learn whether the set goes on.
            let page_limit = i32::try_from(room.saturating_add(1)).unwrap_or(i32::MAX);
            let output = metrics::track(
                query
                    .clone()
                    .limit(page_limit)
                    .set_exclusive_start_key(start)
                    .send(),
            )
            .await
            .map_err(super::storage_error)?;
            for item in output.items() {
                if ids.len() == limit {
                    return Ok((ids, true));
                }
                let key = ItemReader::new(item, "runner key").s(key_attribute)?;
                ids.push(
                    keys::trailing_id(&key)
                        .ok_or_else(|| ApiError::internal(format!("runner key {key}")))?,
                );
            }
            start = output.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                return Ok((ids, false));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{GroupRef, ProjectRef};

    fn project(id: i64, group_ids: &[i64]) -> ProjectRef {
        ProjectRef::sample(id, group_ids)
    }

    fn runner(id: i64, runner_type: RunnerType) -> Runner {
        Runner::new(
            id,
            runner_type,
            crate::auth::TokenDigest::of("t"),
            crate::time::Timestamp::from_millis(1),
        )
    }

    /// The change of each counter item's runner count (`value`).
    fn totals(changes: &ListingChanges) -> Vec<((String, String), i64)> {
        changes
            .counts
            .iter()
            .filter_map(|(key, deltas)| Some((key.clone(), *deltas.get("value")?)))
            .collect()
    }

    #[test]
    fn enabling_an_instance_runner_moves_its_count_and_fills_the_subtrees_above_the_project() {
        let mut before = runner(1_234, RunnerType::Instance);
        before.tag_list = vec!["docker".into()];
        let mut after = before.clone();
        after.runner_type = RunnerType::Project;
        after.projects.push(project(7, &[1, 2]));
        let changes = listing_changes(Some(&before), Some(&after));
        let moved = BTreeMap::from([
            ("instance_type".to_owned(), -1),
            ("project_type".to_owned(), 1),
        ]);
        let mut expected = vec![
            (
                keys::runner_count("instance_type", 1_234),
                BTreeMap::from([("value".to_owned(), -1)]),
            ),
            (
                keys::runner_count("project_type", 1_234),
                BTreeMap::from([("value".to_owned(), 1)]),
            ),
        ];
        for facet in ["active", "never_contacted", "tag:docker"] {
            // Each facet moves between types within its one count item.
            expected.push((keys::runner_facet_count(facet, 1_234), moved.clone()));
        }
        expected.sort();
        assert_eq!(changes.counts, expected);
        assert_eq!(
            changes.facet_puts,
            [
                keys::runner_facet("active", "project_type", 1_234),
                keys::runner_facet("never_contacted", "project_type", 1_234),
                keys::runner_facet("tag:docker", "project_type", 1_234),
            ]
        );
        assert_eq!(
            changes.facet_deletes,
            [
                keys::runner_facet("active", "instance_type", 1_234),
                keys::runner_facet("never_contacted", "instance_type", 1_234),
                keys::runner_facet("tag:docker", "instance_type", 1_234),
            ]
        );
        assert_eq!(
            totals(&changes),
            [
                (keys::runner_count("instance_type", 1_234), -1),
                (keys::runner_count("project_type", 1_234), 1),
            ]
        );
        assert_eq!(
            changes.subtree_puts,
            [
                keys::subtree_runner(1, 1_234),
                keys::subtree_runner(2, 1_234)
            ]
        );
        assert!(changes.subtree_deletes.is_empty());
    }

    #[test]
    fn a_group_stays_in_the_subtree_while_another_project_below_it_remains() {
        let mut before = runner(5, RunnerType::Project);
        before.projects = vec![project(7, &[1, 2]), project(8, &[1, 3])];
        let mut after = before.clone();
        after.projects.retain(|p| p.id != 8);
        let changes = listing_changes(Some(&before), Some(&after));
        assert!(
            changes.counts.is_empty(),
            "same type, same bucket, same facets"
        );
        assert!(changes.facet_puts.is_empty() && changes.facet_deletes.is_empty());
        assert!(changes.subtree_puts.is_empty());
        assert_eq!(changes.subtree_deletes, [keys::subtree_runner(3, 5)]);
    }

    #[test]
    fn a_group_runner_is_in_its_group_and_every_ancestor_until_it_is_deleted() {
        let mut group_runner = runner(9, RunnerType::Group);
        group_runner.group = Some(GroupRef {
            id: 30,
            name: "g".into(),
            full_path: "a/b/g".into(),
            ancestor_ids: vec![10, 20],
        });
        let created = listing_changes(None, Some(&group_runner));
        assert_eq!(totals(&created), [(keys::runner_count("group_type", 9), 1)]);
        let groups: Vec<i64> = created
            .subtree_puts
            .iter()
            .map(|(pk, _)| pk.trim_start_matches("GROUP#").parse().unwrap())
            .collect();
        assert_eq!(groups, [10, 20, 30]);
        let deleted = listing_changes(Some(&group_runner), None);
        assert_eq!(
            totals(&deleted),
            [(keys::runner_count("group_type", 9), -1)]
        );
        assert_eq!(deleted.facet_deletes, created.facet_puts);
        assert_eq!(deleted.subtree_deletes, created.subtree_puts);
        assert_eq!(listing_changes(None, None), ListingChanges::default());
    }

    #[test]
    fn pausing_and_retagging_move_only_the_facets_that_change() {
        let mut before = runner(77, RunnerType::Project);
        before.tag_list = vec!["docker".into(), "linux".into()];
        let mut after = before.clone();
        after.active = false;
        after.tag_list = vec!["linux".into(), "arm".into()];
        let changes = listing_changes(Some(&before), Some(&after));
        let mut expected: Vec<_> = [
            ("active", -1),
            ("paused", 1),
            ("tag:arm", 1),
            ("tag:docker", -1),
        ]
        .into_iter()
        .map(|(facet, delta)| {
            (
                keys::runner_facet_count(facet, 77),
                BTreeMap::from([("project_type".to_owned(), delta)]),
            )
        })
        .collect();
        expected.sort();
        assert_eq!(
            changes.counts, expected,
            "one count item per facet that moves; the runner count itself and `linux` stay"
        );
        let entry = |facet| keys::runner_facet(facet, "project_type", 77);
        assert_eq!(changes.facet_puts, [entry("paused"), entry("tag:arm")]);
        assert_eq!(
            changes.facet_deletes,
            [entry("active"), entry("tag:docker")]
        );
    }

    fn page(page: u64, per_page: u64) -> PageRequest {
        let params =
            crate::params::Params::from_query(&format!("page={page}&per_page={per_page}")).unwrap();
        PageRequest::read(&mut params.reader())
    }

    #[test]
    fn a_page_is_found_from_the_counts_and_reads_only_the_buckets_it_overlaps() {
        // 900 indexed runners in bucket 0, 1,000 in bucket 1, none in 2, 500 in 3; two listed
        // runners in bucket 2 and one in bucket 3.
        let per_bucket = BTreeMap::from([(0, 900), (1, 1_000), (3, 500)]);
        let listed = [2_001, 2_002, 3_005];
        let plan = |p, n| plan_page(&listed, &per_bucket, page(p, n));
        assert_eq!(
            plan(1, 20),
            PagePlan {
                buckets: vec![0],
                skip: 0,
                total: 2_403
            }
        );
        assert_eq!(
            plan(23, 40),
            PagePlan {
                buckets: vec![0, 1],
                skip: 880,
                total: 2_403
            },
            "runners 880-899 of bucket 0 and 0-19 of bucket 1"
        );
        assert_eq!(
            plan(96, 20),
            PagePlan {
                buckets: vec![2, 3],
                skip: 0,
                total: 2_403
            },
            "a bucket of listed runners only, then an indexed one"
        );
        assert_eq!(
            plan(121, 20),
            PagePlan {
                buckets: vec![3],
                skip: 498,
                total: 2_403
            },
            "the last page: the last 3 runners"
        );
        assert_eq!(
            plan(122, 20),
            PagePlan {
                buckets: vec![],
                skip: 0,
                total: 2_403
            },
            "past the end nothing is read"
        );
        assert_eq!(
            plan_page(&[], &BTreeMap::new(), page(1, 20)),
            PagePlan {
                buckets: vec![],
                skip: 0,
                total: 0
            }
        );
    }

    #[test]
    fn id_ranges_hold_at_most_a_query_page_of_runners_whatever_the_gaps() {
        let counts = RunnerCounts(BTreeMap::from([
            ((RunnerType::Instance, 0), 900),
            ((RunnerType::Project, 0), 99),
            // Ids far apart: joined while the counts allow.
            ((RunnerType::Project, 7), 1_000),
            ((RunnerType::Group, 1_000_000_000), 1),
        ]));
        assert_eq!(counts.id_ranges(), [(0, i64::MAX)]);
        let crowded = RunnerCounts((0..40).map(|b| ((RunnerType::Project, b), 1_000)).collect());
        assert_eq!(
            crowded.id_ranges(),
            [(0, 15_999), (16_000, 31_999), (32_000, i64::MAX)]
        );
        assert_eq!(RunnerCounts::default().id_ranges(), [(0, i64::MAX)]);
    }

    #[test]
    fn counts_per_bucket_add_up_the_asked_types() {
        let counts = RunnerCounts(BTreeMap::from([
            ((RunnerType::Instance, 0), 3),
            ((RunnerType::Project, 0), 4),
            ((RunnerType::Project, 2), 5),
            ((RunnerType::Group, 2), 0),
        ]));
        assert_eq!(
            counts.per_bucket(&[RunnerType::Instance, RunnerType::Project]),
            BTreeMap::from([(0, 7), (2, 5)])
        );
        assert_eq!(
            counts.per_bucket(&[RunnerType::Group]),
            BTreeMap::new(),
            "empty buckets are left out"
        );
    }
}
