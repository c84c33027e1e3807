//! What keeps every runner list page cheap however many runners there are
//! (`docs/data-model.md`, "Lists at scale"):
//!
//! - **runner counts** per type and id bucket (`RUNNER_COUNTS`), so that a page's position is
//!   found from a few dozen small items instead of by counting the runners before it; and the
//!   same per facet (`RUNNER_FACET_COUNTS`) and per span of last contact
//!   (`RUNNER_CONTACT_COUNTS`), for lists filtered on one;
//! - **the runner id index** (GSI3, keys only), so that the page itself is found by reading one
//!   bucket's keys; and the same per facet (`RUNNER_FACET#…`) and for contacted runners
//!   (`RUNNER_CONTACT#…`, with their last contact);
//! - **each group's subtree set** (`GROUP#g` / `SUBTREE#<runner>`): every runner linked to the
//!   group or to anything below it, in id order, so that a group's owned runners are one query
//!   however many projects it holds.
//!
//! They change in the transactions of the writes that change what they count (a runner made,
//! deleted, enabled or disabled in a project, retagged, paused or resumed, or contacted):
//! [`listing_changes`] and [`contact_changes`] say what changes.

use super::item::{Item, ItemReader};
use super::{Store, build_error, keys};
use crate::error::ApiError;
use crate::metrics;
use crate::pagination::{PageInfo, PageRequest};
use crate::runner::{Runner, RunnerType};
use crate::runner_filter::{Criterion, Facet, last_seen};
use crate::time::Timestamp;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
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

/// What one write changes in one count of a count item: the count (`delta`), and the runners
/// that join or leave the count's member set ([`keys::members_of`]), which holds exactly the
/// runners counted, so that the runners meeting several criteria can be read from the sets of
/// their counts (about 9 bytes a runner) and intersected. One runner's write makes it join or
/// leave a set, never both.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct CountDelta {
    pub delta: i64,
    pub joining: BTreeSet<i64>,
    pub leaving: BTreeSet<i64>,
}

impl CountDelta {
    /// `runner_id` counted once more (`1`) or once less (`-1`).
    fn add(&mut self, runner_id: i64, delta: i64) {
        self.delta += delta;
        let (gains, loses) = match delta > 0 {
            true => (&mut self.joining, &mut self.leaving),
            false => (&mut self.leaving, &mut self.joining),
        };
        if !loses.remove(&runner_id) {
            gains.insert(runner_id);
        }
    }

    fn is_nothing(&self) -> bool {
        self.delta == 0 && self.joining.is_empty() && self.leaving.is_empty()
    }
}

/// A count item and what to change in its counts, by attribute.
pub(crate) type CountChange = ((String, String), BTreeMap<String, CountDelta>);

/// The writes that keep the listing structures exact when a runner goes from `before` to
/// `after` (`None`: it does not exist).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ListingChanges {
    /// Counter items and what to add to their attributes: a runner count's `value` counts every
    /// runner, a facet count's attribute named after a type the runners of that type with the
    /// facet (no zero, no item without a change).
    pub counts: Vec<CountChange>,
    pub facet_puts: Vec<FacetEntry>,
    pub facet_deletes: Vec<(String, String)>,
    /// The runner's contact entry, written (with its last contact) or deleted in the write's
    /// own transaction: a heartbeat rewrites it every minute, and one that went after the
    /// transaction could overwrite a newer contact.
    pub contact_put: Option<ContactEntry>,
    pub contact_delete: Option<(String, String)>,
}

/// A facet index entry ([`keys::runner_facet`]). A `never_contacted` entry also holds its
/// runner's creation time (`created`), and is on GSI3 by it ([`keys::new_runners_by_time`]):
/// a never-contacted runner is stale from its creation time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct FacetEntry {
    pub key: (String, String),
    /// A `never_contacted` entry's runner id and creation time.
    created: Option<(i64, Timestamp)>,
}

impl FacetEntry {
    fn of(runner: &Runner, facet: &Facet) -> Self {
        Self {
            key: keys::runner_facet(&facet.name(), runner.runner_type.as_str(), runner.id),
            created: (*facet == Facet::NeverContacted).then_some((runner.id, runner.created_at)),
        }
    }

    pub fn item(&self) -> Item {
        let entry = super::item::ItemBuilder::keyed(self.key.clone());
        match self.created {
            Some((id, created_at)) => {
                let (by_time, created_and_id) = keys::new_runners_by_time(id, created_at.millis());
                entry
                    .n("created", created_at.millis())
                    .s(keys::GSI3_PK, by_time)
                    .s(keys::GSI3_SK, created_and_id)
                    .build()
            }
            None => entry.build(),
        }
    }
}

/// A contacted runner's contact entry ([`keys::runner_contact`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContactEntry {
    pub runner_type: RunnerType,
    pub id: i64,
    pub at: Timestamp,
}

impl ContactEntry {
    fn of(runner: &Runner) -> Option<Self> {
        Some(Self {
            runner_type: runner.runner_type,
            id: runner.id,
            at: runner.contacted_at?,
        })
    }

    pub fn key(&self) -> (String, String) {
        keys::runner_contact(self.runner_type.as_str(), self.id)
    }

    pub fn item(&self) -> Item {
        let (by_time, at_and_id) = keys::runner_contacts_by_time(self.id, self.at.millis());
        super::item::ItemBuilder::keyed(self.key())
            .n("at", self.at.millis())
            .s(keys::GSI3_PK, by_time)
            .s(keys::GSI3_SK, at_and_id)
            .build()
    }
}

/// Count changes being added up: per item, per attribute.
#[derive(Default)]
pub(crate) struct Tally(BTreeMap<(String, String), BTreeMap<String, CountDelta>>);

impl Tally {
    /// `runner_id` counted `delta` (1 or -1) more times on `attribute` of `item`.
    fn add(&mut self, item: (String, String), attribute: &str, runner_id: i64, delta: i64) {
        self.0
            .entry(item)
            .or_default()
            .entry(attribute.to_owned())
            .or_default()
            .add(runner_id, delta);
    }

    /// Adds up a write's count changes (a rebuild's, runner by runner).
    #[cfg(feature = "admin")]
    pub(crate) fn extend(&mut self, changes: Vec<CountChange>) {
        for (item, deltas) in changes {
            let counts = self.0.entry(item).or_default();
            for (attribute, change) in deltas {
                let total = counts.entry(attribute).or_default();
                for id in change.joining {
                    total.add(id, 1);
                }
                for id in change.leaving {
                    total.add(id, -1);
                }
            }
        }
    }

    /// Every runner count a runner is in: `value` of its type and bucket, its type on each of
    /// its facets' counts, on the day it was last seen and, once contacted, on its last
    /// contact's span.
    fn add_runner(&mut self, runner: &Runner, delta: i64) {
        let runner_type = runner.runner_type.as_str();
        let id = runner.id;
        self.add(keys::runner_count(runner_type, id), "value", id, delta);
        for facet in Facet::of(runner) {
            self.add(
                keys::runner_facet_count(&facet.name(), id),
                runner_type,
                id,
                delta,
            );
        }
        let seen = last_seen(runner.contacted_at, runner.created_at);
        self.add(
            keys::runner_seen_count(seen.millis(), id),
            runner_type,
            id,
            delta,
        );
        if let Some(at) = runner.contacted_at {
            self.add(
                keys::runner_contact_count(at.millis(), id),
                runner_type,
                id,
                delta,
            );
        }
    }

    /// The changes that are not nothing, by item.
    pub(crate) fn changes(self) -> Vec<CountChange> {
        self.0
            .into_iter()
            .filter_map(|(item, mut attributes)| {
                attributes.retain(|_, change| !change.is_nothing());
                (!attributes.is_empty()).then_some((item, attributes))
            })
            .collect()
    }
}

/// The facet index entries of a runner.
fn facet_entries(runner: &Runner) -> BTreeSet<FacetEntry> {
    Facet::of(runner)
        .iter()
        .map(|facet| FacetEntry::of(runner, facet))
        .collect()
}

pub(crate) fn listing_changes(before: Option<&Runner>, after: Option<&Runner>) -> ListingChanges {
    let mut counts = Tally::default();
    for (runner, delta) in [(before, -1), (after, 1)] {
        if let Some(runner) = runner {
            counts.add_runner(runner, delta);
        }
    }
    let Some(id) = after.or(before).map(|r| r.id) else {
        return ListingChanges::default();
    };
    // The subtree sets of the groups it joins or leaves.
    let old = before.map(subtree_groups).unwrap_or_default();
    let new = after.map(subtree_groups).unwrap_or_default();
    for (groups, delta) in [(new.difference(&old), 1), (old.difference(&new), -1)] {
        for group in groups {
            counts.add(keys::subtree_count(*group, id), "value", id, delta);
        }
    }
    let old_facets = before.map(facet_entries).unwrap_or_default();
    let new_facets = after.map(facet_entries).unwrap_or_default();
    let old_contact = before.and_then(ContactEntry::of);
    let new_contact = after.and_then(ContactEntry::of);
    let (contact_put, contact_delete) = if old_contact == new_contact {
        (None, None)
    } else {
        let new_key = new_contact.as_ref().map(ContactEntry::key);
        let delete = old_contact
            .map(|old| old.key())
            .filter(|old| Some(old) != new_key.as_ref());
        (new_contact, delete)
    };
    ListingChanges {
        counts: counts.changes(),
        facet_puts: new_facets.difference(&old_facets).cloned().collect(),
        facet_deletes: old_facets
            .difference(&new_facets)
            .map(|entry| entry.key.clone())
            .collect(),
        contact_put,
        contact_delete,
    }
}

/// The condition that the runner's last contact is as `read` (its expression, and the value of
/// `:read_contact` in it): a write that moves its listing (enable, delete) computed its
/// `never_contacted` facet, contact count and contact entry from it, and a heartbeat (which
/// bumps no version) may have changed it meanwhile.
pub(crate) fn contact_as_read(read: &Runner) -> (&'static str, Option<AttributeValue>) {
    match read.contacted_at {
        Some(at) => (
            "contacted_at = :read_contact",
            Some(AttributeValue::N(at.millis().to_string())),
        ),
        None => ("attribute_not_exists(contacted_at)", None),
    }
}

/// When a runner was last seen before a heartbeat: its last contact, or (never contacted) its
/// creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeenBefore {
    Contacted(Timestamp),
    Created(Timestamp),
}

/// A heartbeat's change of the version its runner reports: from `was` (`None`: none) to `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VersionMove<'a> {
    pub was: Option<&'a str>,
    pub now: &'a str,
}

/// A heartbeat's changes to a runner of `runner_type` last seen as `previous`, now contacted
/// `at`: its contact entry, its contact count moved to `at`'s span, its last-seen count moved
/// to `at`'s day, on its first contact its `never_contacted` count and entry, and, when it
/// reports another version, its version prefix facets.
pub(crate) fn contact_changes(
    runner_type: RunnerType,
    id: i64,
    previous: SeenBefore,
    at: Timestamp,
    version: Option<VersionMove<'_>>,
) -> ListingChanges {
    let type_name = runner_type.as_str();
    let mut counts = Tally::default();
    counts.add(
        keys::runner_contact_count(at.millis(), id),
        type_name,
        id,
        1,
    );
    counts.add(keys::runner_seen_count(at.millis(), id), type_name, id, 1);
    let mut facet_deletes = Vec::new();
    match previous {
        SeenBefore::Contacted(previous) => {
            counts.add(
                keys::runner_contact_count(previous.millis(), id),
                type_name,
                id,
                -1,
            );
            counts.add(
                keys::runner_seen_count(previous.millis(), id),
                type_name,
                id,
                -1,
            );
        }
        SeenBefore::Created(created_at) => {
            counts.add(
                keys::runner_seen_count(created_at.millis(), id),
                type_name,
                id,
                -1,
            );
            let facet = Facet::NeverContacted.name();
            counts.add(keys::runner_facet_count(&facet, id), type_name, id, -1);
            facet_deletes.push(keys::runner_facet(&facet, type_name, id));
        }
    }
    let mut facet_puts = Vec::new();
    if let Some(VersionMove { was, now }) = version {
        let prefixes = |version: Option<&str>| -> BTreeSet<String> {
            version
                .map(crate::runner_filter::version_prefixes)
                .unwrap_or_default()
                .into_iter()
                .collect()
        };
        let (old, new) = (prefixes(was), prefixes(Some(now)));
        for (moved, delta) in [(old.difference(&new), -1), (new.difference(&old), 1)] {
            for prefix in moved {
                let facet = Facet::VersionPrefix(prefix.clone()).name();
                counts.add(keys::runner_facet_count(&facet, id), type_name, id, delta);
                let key = keys::runner_facet(&facet, type_name, id);
                match delta {
                    1 => facet_puts.push(FacetEntry { key, created: None }),
                    _ => facet_deletes.push(key),
                }
            }
        }
    }
    ListingChanges {
        counts: counts.changes(),
        facet_puts,
        facet_deletes,
        contact_put: Some(ContactEntry {
            runner_type,
            id,
            at,
        }),
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

/// A GSI3 index of entries by a runner time, sharded 8 ways by id.
#[derive(Debug, Clone, Copy)]
enum ByTime {
    /// The contact entries, by last contact ([`keys::runner_contacts_by_time`]).
    Contacts,
    /// The `never_contacted` facet entries, by creation ([`keys::new_runners_by_time`]).
    NewRunners,
}

impl ByTime {
    fn keys(self, runner_id: i64, at: i64) -> (String, String) {
        match self {
            ByTime::Contacts => keys::runner_contacts_by_time(runner_id, at),
            ByTime::NewRunners => keys::new_runners_by_time(runner_id, at),
        }
    }

    /// An entry's type and bucket, from its table partition key.
    fn parse(self, pk: &str) -> Option<(&str, i64)> {
        match self {
            ByTime::Contacts => keys::parse_runner_contact(pk),
            ByTime::NewRunners => keys::parse_runner_facet(pk),
        }
    }
}

/// Runners counted by a time of theirs, per span of that time, with GSI3 indexes of their
/// entries by it: what places a page of the runners whose time is after a given one.
struct Timeline {
    counts: &'static str,
    span_ms: i64,
    indexes: &'static [ByTime],
}

impl Timeline {
    /// Last contact, in 15-minute spans: online and offline.
    const CONTACTS: Timeline = Timeline {
        counts: keys::RUNNER_CONTACT_COUNTS,
        span_ms: keys::CONTACT_SPAN_MS,
        indexes: &[ByTime::Contacts],
    };
    /// Last seen (contact, or else creation), in days: stale.
    const SEEN: Timeline = Timeline {
        counts: keys::RUNNER_SEEN_COUNTS,
        span_ms: keys::SEEN_SPAN_MS,
        indexes: &[ByTime::Contacts, ByTime::NewRunners],
    };

    /// For the runners whose time is at or after `first`: the first span whose counts are
    /// read whole, and the GSI3 sort key range of the entries read before it (the part of
    /// `first`'s span from `first` on), unless `first` starts its span.
    fn split(&self, first: i64) -> (i64, Option<(String, String)>) {
        let span = first.div_euclid(self.span_ms);
        if first.rem_euclid(self.span_ms) == 0 {
            return (span, None);
        }
        let last = span
            .saturating_add(1)
            .saturating_mul(self.span_ms)
            .saturating_sub(1);
        // Both indexes spell their sort keys alike: time, then id.
        let range = (
            ByTime::Contacts.keys(0, first).1,
            ByTime::Contacts.keys(i64::MAX, last).1,
        );
        (span.saturating_add(1), Some(range))
    }
}

/// The most criteria a filter may intersect (each costs a parallel read of its counts' member
/// sets, which always reads less than walking the runners would) before the list walks
/// instead: a bound on the calls one request can make.
pub const MAX_INTERSECTED_CRITERIA: usize = 16;

/// The runners that meet one criterion, as the member sets of its counts say.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Members {
    /// These runners.
    Only(BTreeSet<i64>),
    /// Every runner (of the types asked) but these: offline and stale.
    AllBut(BTreeSet<i64>),
}

/// The runners that meet every criterion (each as [`Members`]), in id order; `every_runner`
/// (of the types asked) is needed only when no criterion is [`Members::Only`].
fn intersect(parts: Vec<Members>, every_runner: Option<BTreeSet<i64>>) -> Vec<i64> {
    let (mut only, mut all_but) = (Vec::new(), Vec::new());
    for part in parts {
        match part {
            Members::Only(ids) => only.push(ids),
            Members::AllBut(ids) => all_but.push(ids),
        }
    }
    // Checked against the others from the smallest.
    only.sort_unstable_by_key(BTreeSet::len);
    let mut only = only.into_iter();
    let Some(base) = only.next().or(every_runner) else {
        return Vec::new();
    };
    let only: Vec<BTreeSet<i64>> = only.collect();
    base.into_iter()
        .filter(|id| only.iter().all(|ids| ids.contains(id)))
        .filter(|id| !all_but.iter().any(|ids| ids.contains(id)))
        .collect()
}

/// What a read of counts takes from a count item: its key and its count of each type, not its
/// member sets.
const COUNTS_PROJECTION: &str = "sk, instance_type, group_type, project_type";

/// Where a bucket's ids are read from.
enum IdSource {
    /// The runner id index (GSI3): every runner.
    All,
    /// A facet's entries.
    Facet(String),
    /// The contact entries, those after a time.
    ContactedAfter(Timestamp),
    /// The contact entries, those before a time.
    ContactedBefore(Timestamp),
    /// The `never_contacted` entries, of runners created before a time.
    CreatedBefore(Timestamp),
}

/// How many runners of each type are in each id bucket.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunnerCounts(BTreeMap<(RunnerType, i64), u64>);

impl RunnerCounts {
    fn add(&mut self, runner_type: RunnerType, bucket: i64, value: i64) {
        let count = self.0.entry((runner_type, bucket)).or_default();
        *count = count.saturating_add(u64::try_from(value).unwrap_or(0));
    }

    /// Adds a count item's count of each type (an attribute named after the type; an item
    /// has only the types that ever had a runner there).
    fn add_types(&mut self, reader: &ItemReader<'_>, bucket: i64) -> Result<(), ApiError> {
        for name in RunnerType::NAMES {
            let runner_type = RunnerType::parse(name)
                .ok_or_else(|| ApiError::internal(format!("runner type {name}")))?;
            self.add(runner_type, bucket, reader.opt_n(name)?.unwrap_or(0));
        }
        Ok(())
    }

    /// How many runners of these types there are.
    pub fn total(&self, types: &[RunnerType]) -> u64 {
        self.per_bucket(types).values().sum()
    }

    /// These counts less `other`'s (of a subset of the same runners).
    fn minus(mut self, other: &RunnerCounts) -> Self {
        for (key, count) in &mut self.0 {
            *count = count.saturating_sub(other.0.get(key).copied().unwrap_or(0));
        }
        self
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
    /// runner of `types` (that meets `criterion`, if given), in id order, with the exact total
    /// from `counts` (of the same criterion, read beside whatever else the caller needed).
    /// `first_of_types`, when the caller read them, are the first runners of `types` up to the
    /// page's end: the page is then among them and the links. Otherwise the buckets the page
    /// overlaps are read from the runner id index, the facet's or the contact entries (all at
    /// once). Then the page's runners not in hand.
    pub async fn counted_page(
        &self,
        mut listed: Vec<i64>,
        types: &[RunnerType],
        criterion: Option<&Criterion>,
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
                let ids = self.bucket_runner_ids(types, criterion, &indexed).await?;
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
        if let Some(criterion) = criterion {
            // An entry left by a write whose follow-up failed is not a match, nor a runner
            // whose last contact moved since its entry was read.
            runners.retain(|runner| criterion.admits(runner));
        }
        Ok((runners, plan.info(page)))
    }

    /// One page of a project's or group's list filtered on one criterion: the `listed` runners
    /// (its own, by id) that meet it, together with every runner of `types` that does (placed
    /// by `counts`, of that criterion), in id order, with the exact total. The listed runners
    /// are read whole (a list's own runners are few) while, beside them, the criterion's ids
    /// are read for the buckets holding every type match the page may hold: ranked from the
    /// page's offset less the listed runners, to its end. Then the page's other runners.
    pub async fn faceted_page(
        &self,
        mut listed: Vec<i64>,
        types: &[RunnerType],
        criterion: &Criterion,
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
            self.bucket_runner_ids(types, Some(criterion), &window.buckets),
        )
        .await?;
        let matched: Vec<Runner> = linked
            .into_iter()
            .filter(|runner| criterion.admits(runner))
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
            // No runner of the types meets it: the listed ones are the list.
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
        runners.retain(|runner| criterion.admits(runner));
        Ok((runners, info))
    }

    /// The writes of the runner's contact entry that `changes` moves (unconditional: the
    /// write's condition on the runner's last contact decides).
    pub(crate) fn contact_actions(
        &self,
        changes: &ListingChanges,
    ) -> Result<Vec<TransactWriteItem>, ApiError> {
        let mut actions = Vec::new();
        if let Some(key) = &changes.contact_delete {
            actions.push(self.delete_action(key.clone())?);
        }
        if let Some(entry) = &changes.contact_put {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(entry.item()))
                .build()
                .map_err(build_error)?;
            actions.push(TransactWriteItem::builder().put(put).build());
        }
        Ok(actions)
    }

    /// The writes of the index entries (facets) that `changes` moves: puts and
    /// deletes without conditions, which may follow right after the transaction that moves the
    /// counts when they do not all fit in it ([`Store::transact_spilling`]).
    pub(crate) fn entry_actions(
        &self,
        changes: &ListingChanges,
    ) -> Result<Vec<TransactWriteItem>, ApiError> {
        let mut entries = Vec::new();
        for item in changes.facet_puts.iter().map(FacetEntry::item) {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .build()
                .map_err(build_error)?;
            entries.push(TransactWriteItem::builder().put(put).build());
        }
        for key in &changes.facet_deletes {
            entries.push(self.delete_action(key.clone())?);
        }
        Ok(entries)
    }

    /// Every runner count, or every count of the runners that meet a criterion (a few small
    /// items per 1,000 runners, read in one round trip).
    pub async fn runner_counts(
        &self,
        criterion: Option<&Criterion>,
    ) -> Result<RunnerCounts, ApiError> {
        let criteria: Vec<Criterion> = criterion.cloned().into_iter().collect();
        let mut counts = self.criteria_counts(&criteria).await?;
        counts
            .pop()
            .ok_or_else(|| ApiError::internal("no runner counts"))
    }

    /// The counts of the runners that meet each criterion, in order, all read together in one
    /// round trip; for no criterion, one count of every runner. The runner counts that
    /// `offline` and `stale` are counted against are read once, however many need them.
    pub async fn criteria_counts(
        &self,
        criteria: &[Criterion],
    ) -> Result<Vec<RunnerCounts>, ApiError> {
        let against_all = |criterion: &Criterion| {
            matches!(
                criterion,
                Criterion::Offline { .. } | Criterion::Stale { .. }
            )
        };
        let need_all = criteria.is_empty() || criteria.iter().any(against_all);
        let parts = criteria.iter().map(|criterion| async move {
            match criterion {
                Criterion::Facet(facet) => self.facet_counts(facet).await,
                Criterion::Online { since } | Criterion::Offline { since } => {
                    self.online_counts(*since).await
                }
                Criterion::Stale { before } => self.seen_counts(*before).await,
            }
        });
        let (all, parts) = futures_util::future::try_join(
            async {
                match need_all {
                    true => self.type_counts().await.map(Some),
                    false => Ok(None),
                }
            },
            try_join_all(parts),
        )
        .await?;
        let Some(all) = all else {
            return Ok(parts);
        };
        if criteria.is_empty() {
            return Ok(vec![all]);
        }
        // Offline and stale runners are every runner but the online or the recently seen.
        Ok(criteria
            .iter()
            .zip(parts)
            .map(|(criterion, part)| match against_all(criterion) {
                true => all.clone().minus(&part),
                false => part,
            })
            .collect())
    }

    /// Every runner count: `value` of each type, bucket and slot.
    async fn type_counts(&self) -> Result<RunnerCounts, ApiError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(keys::RUNNER_COUNTS.to_owned()))
            .projection_expression("sk, #count")
            .expression_attribute_names("#count", "value");
        let mut counts = RunnerCounts::default();
        self.query_pages(query, |item| {
            let reader = ItemReader::new(item, "runner count");
            let sk = reader.s(keys::SK)?;
            let unreadable = || ApiError::internal(format!("runner count key {sk}"));
            let (runner_type, bucket) = keys::parse_runner_count(&sk).ok_or_else(unreadable)?;
            let runner_type = RunnerType::parse(runner_type).ok_or_else(unreadable)?;
            counts.add(runner_type, bucket, reader.opt_n("value")?.unwrap_or(0));
            Ok(false)
        })
        .await?;
        Ok(counts)
    }

    /// The counts of the runners with a facet: one Query of the facet's items.
    async fn facet_counts(&self, facet: &Facet) -> Result<RunnerCounts, ApiError> {
        let prefix = keys::runner_facet_counts_prefix(&facet.name());
        let query = self
            .count_items(keys::RUNNER_FACET_COUNTS, Some(&prefix), None)
            .projection_expression(COUNTS_PROJECTION);
        let mut counts = RunnerCounts::default();
        self.query_pages(query, |item| {
            let reader = ItemReader::new(item, "facet count");
            let sk = reader.s(keys::SK)?;
            let bucket = keys::parse_runner_facet_count(&sk)
                .ok_or_else(|| ApiError::internal(format!("facet count key {sk}")))?;
            counts.add_types(&reader, bucket)?;
            Ok(false)
        })
        .await?;
        Ok(counts)
    }

    /// The counts of the runners last contacted after `since` (online).
    async fn online_counts(&self, since: Timestamp) -> Result<RunnerCounts, ApiError> {
        self.counts_from(&Timeline::CONTACTS, since.millis().saturating_add(1))
            .await
    }

    /// The counts of the runners last seen at or after `before` (not stale).
    async fn seen_counts(&self, before: Timestamp) -> Result<RunnerCounts, ApiError> {
        self.counts_from(&Timeline::SEEN, before.millis()).await
    }

    /// The counts of the runners whose time on `timeline` is at or after `first`: its counts of
    /// every span after the one holding `first` (one Query, consistent), plus the GSI3 entries
    /// of that span's part from `first` on (each index's shards in parallel, beside it):
    /// normally the few runners whose time is a little after `first`.
    async fn counts_from(&self, timeline: &Timeline, first: i64) -> Result<RunnerCounts, ApiError> {
        let (from_span, range) = timeline.split(first);
        let from = keys::contact_span_prefix(from_span);
        let spans = self
            .count_items(timeline.counts, None, Some(&from))
            .projection_expression(COUNTS_PROJECTION);
        let mut counts = RunnerCounts::default();
        let spans = self.query_pages(spans, |item| {
            let reader = ItemReader::new(item, "span count");
            let sk = reader.s(keys::SK)?;
            let (_, bucket) = keys::parse_runner_contact_count(&sk)
                .ok_or_else(|| ApiError::internal(format!("span count key {sk}")))?;
            counts.add_types(&reader, bucket)?;
            Ok(false)
        });
        let (_, boundary) =
            futures_util::future::try_join(spans, self.boundary_entries(timeline, range)).await?;
        for (runner_type, bucket, _) in boundary {
            counts.add(runner_type, bucket, 1);
        }
        Ok(counts)
    }

    /// The entries (type, bucket, id) of `timeline`'s GSI3 indexes in a sort key `range` (none
    /// without one): every shard of each index, queried in parallel.
    async fn boundary_entries(
        &self,
        timeline: &Timeline,
        range: Option<(String, String)>,
    ) -> Result<Vec<(RunnerType, i64, i64)>, ApiError> {
        let shards = range.iter().flat_map(|(first, last)| {
            timeline.indexes.iter().flat_map(move |index| {
                (0..keys::CONTACT_SHARDS).map(move |shard| (index, shard, first, last))
            })
        });
        let shards = shards.map(|(index, shard, first, last)| {
            let (partition, _) = index.keys(shard, 0);
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(keys::GSI3)
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :first AND :last")
                .expression_attribute_names("#pk", keys::GSI3_PK)
                .expression_attribute_names("#sk", keys::GSI3_SK)
                .expression_attribute_values(":pk", AttributeValue::S(partition))
                .expression_attribute_values(":first", AttributeValue::S(first.clone()))
                .expression_attribute_values(":last", AttributeValue::S(last.clone()));
            async move {
                let mut found = Vec::new();
                self.query_pages(query, |item| {
                    let reader = ItemReader::new(item, "index entry");
                    let (pk, sk) = (reader.s(keys::PK)?, reader.s(keys::SK)?);
                    let unreadable = || ApiError::internal(format!("index entry key {pk} {sk}"));
                    let (runner_type, bucket) = index.parse(&pk).ok_or_else(unreadable)?;
                    found.push((
                        RunnerType::parse(runner_type).ok_or_else(unreadable)?,
                        bucket,
                        sk.parse().map_err(|_| unreadable())?,
                    ));
                    Ok(false)
                })
                .await?;
                Ok::<_, ApiError>(found)
            }
        });
        Ok(try_join_all(shards).await?.into_iter().flatten().collect())
    }

    /// The ids of the runners of `types` that meet every one of `criteria`, in id order, from
    /// the member sets of the criteria's count items, all read together in one round trip
    /// (about 9 bytes of JSON a runner; `offline` and `stale` as every runner but the online
    /// or the recently seen, and every runner's set only when no criterion says who meets
    /// it). `None` when a set does not hold as many runners as its count (a table written
    /// before member sets, until `runnerctl table rebuild-lists`): the caller walks.
    pub async fn runners_meeting(
        &self,
        types: &[RunnerType],
        criteria: &[Criterion],
    ) -> Result<Option<Vec<i64>>, ApiError> {
        if types.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
        let names = names.as_slice();
        let parts = criteria.iter().map(|criterion| async move {
            let members = match criterion {
                Criterion::Facet(facet) => {
                    let query = self.count_items(
                        keys::RUNNER_FACET_COUNTS,
                        Some(&keys::runner_facet_counts_prefix(&facet.name())),
                        None,
                    );
                    self.members_in(query, names).await?.map(Members::Only)
                }
                Criterion::Online { since } => self
                    .members_from(&Timeline::CONTACTS, since.millis().saturating_add(1), types)
                    .await?
                    .map(Members::Only),
                Criterion::Offline { since } => self
                    .members_from(&Timeline::CONTACTS, since.millis().saturating_add(1), types)
                    .await?
                    .map(Members::AllBut),
                Criterion::Stale { before } => self
                    .members_from(&Timeline::SEEN, before.millis(), types)
                    .await?
                    .map(Members::AllBut),
            };
            Ok::<_, ApiError>(members)
        });
        let only_exceptions = criteria.iter().all(|criterion| {
            matches!(
                criterion,
                Criterion::Offline { .. } | Criterion::Stale { .. }
            )
        });
        let every_runner = async {
            if !only_exceptions {
                return Ok(Some(None));
            }
            let per_type = types.iter().map(|runner_type| {
                let prefix = format!("{}#", runner_type.as_str());
                self.members_in(
                    self.count_items(keys::RUNNER_COUNTS, Some(&prefix), None),
                    &["value"],
                )
            });
            let sets: Option<Vec<BTreeSet<i64>>> =
                try_join_all(per_type).await?.into_iter().collect();
            Ok::<_, ApiError>(sets.map(|sets| Some(sets.into_iter().flatten().collect())))
        };
        let (parts, every_runner) =
            futures_util::future::try_join(try_join_all(parts), every_runner).await?;
        let (Some(parts), Some(every_runner)) = (
            parts.into_iter().collect::<Option<Vec<Members>>>(),
            every_runner,
        ) else {
            tracing::warn!(
                "runner count member sets incomplete: run `runnerctl table rebuild-lists`"
            );
            return Ok(None);
        };
        Ok(Some(intersect(parts, every_runner)))
    }

    /// A Query of the count items of a partition, those whose sort key begins with `prefix`
    /// or is at least `from`.
    fn count_items(
        &self,
        partition: &str,
        prefix: Option<&str>,
        from: Option<&str>,
    ) -> QueryFluentBuilder {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .expression_attribute_values(":pk", AttributeValue::S(partition.to_owned()));
        match (prefix, from) {
            (Some(prefix), _) => query
                .key_condition_expression("pk = :pk AND begins_with(sk, :sk)")
                .expression_attribute_values(":sk", AttributeValue::S(prefix.to_owned())),
            (None, Some(from)) => query
                .key_condition_expression("pk = :pk AND sk >= :sk")
                .expression_attribute_values(":sk", AttributeValue::S(from.to_owned())),
            (None, None) => query.key_condition_expression("pk = :pk"),
        }
    }

    /// The runners in the member sets of the `counts` of the count items `query` finds (only
    /// those counts and sets are read); `None` when a set holds another number of runners than
    /// its count.
    async fn members_in(
        &self,
        query: QueryFluentBuilder,
        counts: &[&str],
    ) -> Result<Option<BTreeSet<i64>>, ApiError> {
        let (members, complete) = self.member_sets(query, counts).await?;
        Ok(complete.then_some(members))
    }

    /// The runners in the member sets of the `counts` of the count items `query` finds, and
    /// whether every set holds as many runners as its count.
    async fn member_sets(
        &self,
        query: QueryFluentBuilder,
        counts: &[&str],
    ) -> Result<(BTreeSet<i64>, bool), ApiError> {
        let mut query = query;
        let mut projected = vec!["sk".to_owned()];
        for (i, count) in counts.iter().enumerate() {
            projected.push(format!("#c{i}"));
            projected.push(format!("#m{i}"));
            query = query
                .expression_attribute_names(format!("#c{i}"), *count)
                .expression_attribute_names(format!("#m{i}"), keys::members_of(count));
        }
        let query = query.projection_expression(projected.join(", "));
        let (mut members, mut complete) = (BTreeSet::new(), true);
        self.query_pages(query, |item| {
            let reader = ItemReader::new(item, "count item");
            for count in counts {
                let set = match item.get(&keys::members_of(count)) {
                    Some(set) => super::item::ids_of_set(set)?,
                    None => BTreeSet::new(),
                };
                let counted = reader.opt_n(count)?.unwrap_or(0);
                complete &= i64::try_from(set.len()).is_ok_and(|held| held == counted);
                members.extend(set);
            }
            Ok(false)
        })
        .await?;
        Ok((members, complete))
    }

    /// The runners of `types` whose time on `timeline` is at or after `first`, from the member
    /// sets of every span after the one holding `first` and the GSI3 entries of that span's
    /// part from `first` on (as [`Store::counts_from`] counts them).
    async fn members_from(
        &self,
        timeline: &Timeline,
        first: i64,
        types: &[RunnerType],
    ) -> Result<Option<BTreeSet<i64>>, ApiError> {
        let (from_span, range) = timeline.split(first);
        let names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
        let spans = self.count_items(
            timeline.counts,
            None,
            Some(&keys::contact_span_prefix(from_span)),
        );
        let (spans, boundary) = futures_util::future::try_join(
            self.members_in(spans, &names),
            self.boundary_entries(timeline, range),
        )
        .await?;
        Ok(spans.map(|mut members| {
            members.extend(
                boundary
                    .into_iter()
                    .filter(|(runner_type, _, _)| types.contains(runner_type))
                    .map(|(_, _, id)| id),
            );
            members
        }))
    }

    /// The ids of the runners of these types in these buckets, all of them or those that meet
    /// a criterion, all queried together, in id order.
    pub async fn bucket_runner_ids(
        &self,
        types: &[RunnerType],
        criterion: Option<&Criterion>,
        buckets: &[i64],
    ) -> Result<Vec<i64>, ApiError> {
        let partitions: Vec<(RunnerType, i64)> = buckets
            .iter()
            .flat_map(|bucket| types.iter().map(move |runner_type| (*runner_type, *bucket)))
            .collect();
        // In id order already; an id indexed under two types (mid-retype) once.
        let mut ids: Vec<i64> = self
            .typed_bucket_ids(&partitions, criterion)
            .await?
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        ids.dedup();
        Ok(ids)
    }

    /// The ids of the runners of these types and buckets (`partitions`), all of them or those
    /// that meet a criterion, each with its type, all queried together, in id order.
    async fn typed_bucket_ids(
        &self,
        partitions: &[(RunnerType, i64)],
        criterion: Option<&Criterion>,
    ) -> Result<Vec<(RunnerType, i64)>, ApiError> {
        let source = match criterion {
            None => IdSource::All,
            Some(Criterion::Facet(facet)) => IdSource::Facet(facet.name()),
            Some(Criterion::Online { since }) => IdSource::ContactedAfter(*since),
            Some(Criterion::Offline { since }) => {
                // Every runner of the buckets but those contacted after `since`.
                let (all, online) = futures_util::future::try_join(
                    self.ids_of(partitions, &IdSource::All),
                    self.ids_of(partitions, &IdSource::ContactedAfter(*since)),
                )
                .await?;
                let online: BTreeSet<i64> = online.into_iter().map(|(_, id)| id).collect();
                return Ok(all
                    .into_iter()
                    .filter(|(_, id)| !online.contains(id))
                    .collect());
            }
            Some(Criterion::Stale { before }) => {
                // Contacted before `before`, or never and created before it.
                let (contacted, new) = futures_util::future::try_join(
                    self.ids_of(partitions, &IdSource::ContactedBefore(*before)),
                    self.ids_of(partitions, &IdSource::CreatedBefore(*before)),
                )
                .await?;
                let mut ids: Vec<(RunnerType, i64)> = contacted.into_iter().chain(new).collect();
                ids.sort_unstable_by_key(|(_, id)| *id);
                return Ok(ids);
            }
        };
        self.ids_of(partitions, &source).await
    }

    /// The ids in one source's partitions of these types and buckets, each with its
    /// partition's type, in id order.
    async fn ids_of(
        &self,
        partitions: &[(RunnerType, i64)],
        source: &IdSource,
    ) -> Result<Vec<(RunnerType, i64)>, ApiError> {
        let queries = partitions.iter().map(|(runner_type, bucket)| {
            let query = self.client.query().table_name(&self.table);
            let type_name = runner_type.as_str();
            let (query, key_attribute) = match source {
                IdSource::All => (
                    query
                        .index_name(keys::GSI3)
                        .key_condition_expression("#k = :k")
                        .expression_attribute_names("#k", keys::GSI3_PK)
                        .expression_attribute_values(
                            ":k",
                            AttributeValue::S(keys::runner_ids(type_name, *bucket)),
                        ),
                    keys::GSI3_SK,
                ),
                IdSource::Facet(facet) => (
                    query
                        .key_condition_expression("pk = :k")
                        .expression_attribute_values(
                            ":k",
                            AttributeValue::S(keys::runner_facet_partition(
                                facet, type_name, *bucket,
                            )),
                        ),
                    keys::SK,
                ),
                IdSource::ContactedAfter(time) | IdSource::ContactedBefore(time) => (
                    query
                        .key_condition_expression("pk = :k")
                        .filter_expression(match source {
                            IdSource::ContactedAfter(_) => "#at > :time",
                            _ => "#at < :time",
                        })
                        .expression_attribute_names("#at", "at")
                        .expression_attribute_values(
                            ":k",
                            AttributeValue::S(keys::runner_contact_partition(type_name, *bucket)),
                        )
                        .expression_attribute_values(
                            ":time",
                            AttributeValue::N(time.millis().to_string()),
                        )
                        .consistent_read(true),
                    keys::SK,
                ),
                IdSource::CreatedBefore(before) => (
                    query
                        .key_condition_expression("pk = :k")
                        .filter_expression("#created < :before")
                        .expression_attribute_names("#created", "created")
                        .expression_attribute_values(
                            ":k",
                            AttributeValue::S(keys::runner_facet_partition(
                                &Facet::NeverContacted.name(),
                                type_name,
                                *bucket,
                            )),
                        )
                        .expression_attribute_values(
                            ":before",
                            AttributeValue::N(before.millis().to_string()),
                        ),
                    keys::SK,
                ),
            };
            let runner_type = *runner_type;
            let ids = self.ids_from_keys(query, key_attribute, usize::MAX);
            async move {
                let (ids, _) = ids.await?;
                Ok::<_, ApiError>(ids.into_iter().map(move |id| (runner_type, id)))
            }
        });
        let mut typed: Vec<(RunnerType, i64)> =
            try_join_all(queries).await?.into_iter().flatten().collect();
        typed.sort_unstable_by_key(|(_, id)| *id);
        Ok(typed)
    }

    /// One page of the runners with the ids `matching` (those of several criteria, and the
    /// list's own that meet them), with the exact total: the page's runners are read unless
    /// `in_hand`, and one that `keep` no longer accepts (its counts moved since they were read)
    /// is left out.
    pub async fn page_of_matches(
        &self,
        mut matching: Vec<i64>,
        in_hand: &[Runner],
        keep: impl Fn(&Runner) -> bool,
        page: PageRequest,
    ) -> Result<(Vec<Runner>, PageInfo), ApiError> {
        matching.sort_unstable();
        matching.dedup();
        let (page_ids, info) = page.cut(matching, true);
        let mut runners = self.runners_with(&page_ids, in_hand).await?;
        runners.retain(keep);
        Ok((runners, info))
    }

    /// The runners of a group's subtree set (everything below it), in id order: one Query of
    /// its subtree counts' member sets, however many projects it holds.
    pub async fn subtree_members(&self, group_id: i64) -> Result<Vec<i64>, ApiError> {
        let (partition, _) = keys::subtree_count(group_id, 0);
        let query = self.count_items(&partition, Some(keys::SUBTREE_COUNT_PREFIX), None);
        let (members, complete) = self.member_sets(query, &["value"]).await?;
        if !complete {
            // Only a write that failed halfway could leave this; the ids are what is known.
            tracing::warn!(group_id, "subtree count and member set disagree");
        }
        Ok(members.into_iter().collect())
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

    /// The keys of the facet entries put.
    fn put_keys(changes: &ListingChanges) -> Vec<(String, String)> {
        changes.facet_puts.iter().map(|e| e.key.clone()).collect()
    }

    /// Each count change as the delta it makes, checking that the count's member set moves
    /// with it: the one runner joins on 1 and leaves on -1.
    fn deltas(counts: &[CountChange]) -> Vec<((String, String), BTreeMap<String, i64>)> {
        counts
            .iter()
            .map(|(key, changes)| {
                let deltas = changes
                    .iter()
                    .map(|(attribute, change)| {
                        let (joining, leaving) = (change.joining.len(), change.leaving.len());
                        assert_eq!(
                            (joining, leaving),
                            match change.delta {
                                1 => (1, 0),
                                -1 => (0, 1),
                                other => panic!("one runner moved a count by {other}"),
                            },
                            "{key:?} {attribute}"
                        );
                        (attribute.clone(), change.delta)
                    })
                    .collect();
                (key.clone(), deltas)
            })
            .collect()
    }

    /// The change of each counter item's runner count (`value`).
    fn totals(changes: &ListingChanges) -> Vec<((String, String), i64)> {
        changes
            .counts
            .iter()
            .filter(|((pk, _), _)| pk == keys::RUNNER_COUNTS)
            .filter_map(|(key, deltas)| Some((key.clone(), deltas.get("value")?.delta)))
            .collect()
    }

    /// The groups whose subtree set the runner joins (1) or leaves (-1).
    fn subtree_moves(changes: &ListingChanges) -> Vec<(i64, i64)> {
        deltas(&changes.counts)
            .into_iter()
            .filter_map(|((pk, _), deltas)| {
                let group = pk.strip_prefix("GROUP#")?.parse().ok()?;
                Some((group, *deltas.get("value")?))
            })
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
        for facet in [
            "active",
            "active+tag:docker",
            "never_contacted",
            "tag:docker",
        ] {
            // Each facet moves between types within its one count item.
            expected.push((keys::runner_facet_count(facet, 1_234), moved.clone()));
        }
        // So does its last-seen day's count (never contacted: the day it was created).
        expected.push((keys::runner_seen_count(1, 1_234), moved.clone()));
        // It joins the subtree sets of the project's groups.
        for group in [1, 2] {
            expected.push((
                keys::subtree_count(group, 1_234),
                BTreeMap::from([("value".to_owned(), 1)]),
            ));
        }
        expected.sort();
        assert_eq!(deltas(&changes.counts), expected);
        let never_contacted = changes
            .facet_puts
            .iter()
            .find(|entry| entry.key.0.ends_with("#never_contacted"))
            .expect("a never_contacted entry")
            .item();
        assert_eq!(never_contacted["created"].as_n().unwrap(), "1");
        assert_eq!(
            never_contacted[keys::GSI3_SK].as_s().unwrap(),
            &keys::new_runners_by_time(1_234, 1).1,
            "on GSI3 by creation time, for the runners about to go stale"
        );
        assert_eq!(
            put_keys(&changes),
            [
                keys::runner_facet("active", "project_type", 1_234),
                keys::runner_facet("active+tag:docker", "project_type", 1_234),
                keys::runner_facet("never_contacted", "project_type", 1_234),
                keys::runner_facet("tag:docker", "project_type", 1_234),
            ]
        );
        assert_eq!(
            changes.facet_deletes,
            [
                keys::runner_facet("active", "instance_type", 1_234),
                keys::runner_facet("active+tag:docker", "instance_type", 1_234),
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
        assert_eq!(subtree_moves(&changes), [(1, 1), (2, 1)]);
    }

    #[test]
    fn a_group_stays_in_the_subtree_while_another_project_below_it_remains() {
        let mut before = runner(5, RunnerType::Project);
        before.projects = vec![project(7, &[1, 2]), project(8, &[1, 3])];
        let mut after = before.clone();
        after.projects.retain(|p| p.id != 8);
        let changes = listing_changes(Some(&before), Some(&after));
        assert!(
            totals(&changes).is_empty(),
            "same type, same bucket, same facets"
        );
        assert!(changes.facet_puts.is_empty() && changes.facet_deletes.is_empty());
        assert_eq!(subtree_moves(&changes), [(3, -1)], "only group 3's set");
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
        assert_eq!(subtree_moves(&created), [(10, 1), (20, 1), (30, 1)]);
        let deleted = listing_changes(Some(&group_runner), None);
        assert_eq!(
            totals(&deleted),
            [(keys::runner_count("group_type", 9), -1)]
        );
        assert_eq!(deleted.facet_deletes, put_keys(&created));
        assert_eq!(subtree_moves(&deleted), [(10, -1), (20, -1), (30, -1)]);
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
        // Pausing moves `linux`'s pair with the flag too.
        let mut expected: Vec<_> = [
            ("active", -1),
            ("active+tag:docker", -1),
            ("active+tag:linux", -1),
            ("paused", 1),
            ("paused+tag:arm", 1),
            ("paused+tag:linux", 1),
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
            deltas(&changes.counts),
            expected,
            "one count item per facet that moves; the runner count itself and `tag:linux` stay"
        );
        let entry = |facet| keys::runner_facet(facet, "project_type", 77);
        assert_eq!(
            put_keys(&changes),
            [
                entry("paused"),
                entry("paused+tag:arm"),
                entry("paused+tag:linux"),
                entry("tag:arm")
            ]
        );
        assert_eq!(
            changes.facet_deletes,
            [
                entry("active"),
                entry("active+tag:docker"),
                entry("active+tag:linux"),
                entry("tag:docker")
            ]
        );
    }

    #[test]
    fn a_contacted_runner_is_counted_in_its_last_contacts_span_and_moves_with_its_type() {
        let at = Timestamp::from_millis(5 * keys::CONTACT_SPAN_MS + 7);
        let mut before = runner(1_234, RunnerType::Instance);
        before.contacted_at = Some(at);
        let mut after = before.clone();
        after.runner_type = RunnerType::Project;
        after.projects.push(project(7, &[1]));
        let changes = listing_changes(Some(&before), Some(&after));
        let span_count = deltas(&changes.counts)
            .into_iter()
            .find(|(key, _)| *key == keys::runner_contact_count(at.millis(), 1_234));
        assert_eq!(
            span_count.map(|(_, deltas)| deltas.clone()),
            Some(BTreeMap::from([
                ("instance_type".to_owned(), -1),
                ("project_type".to_owned(), 1)
            ]))
        );
        assert_eq!(
            changes.contact_delete,
            Some(keys::runner_contact("instance_type", 1_234))
        );
        let put = changes.contact_put.expect("the entry under the new type");
        assert_eq!(put.key(), keys::runner_contact("project_type", 1_234));
        assert_eq!(put.at, at);
        let item = put.item();
        assert_eq!(
            item[keys::GSI3_SK].as_s().unwrap(),
            &keys::runner_contacts_by_time(1_234, at.millis()).1
        );

        // A change that keeps type and contact leaves both alone; a delete removes both.
        let mut retagged = before.clone();
        retagged.tag_list = vec!["x".into()];
        let unchanged = listing_changes(Some(&before), Some(&retagged));
        assert_eq!(
            (unchanged.contact_put, unchanged.contact_delete),
            (None, None)
        );
        let deleted = listing_changes(Some(&before), None);
        assert_eq!(
            deleted.contact_delete,
            Some(keys::runner_contact("instance_type", 1_234))
        );
        assert!(deltas(&deleted.counts).iter().any(|(key, deltas)| {
            *key == keys::runner_contact_count(at.millis(), 1_234)
                && deltas == &BTreeMap::from([("instance_type".to_owned(), -1)])
        }));
    }

    #[test]
    fn the_entries_read_beside_the_counts_are_those_of_the_first_spans_part_from_the_time() {
        let span = 40 * keys::CONTACT_SPAN_MS;
        let (from_span, range) = Timeline::CONTACTS.split(span + 6);
        assert_eq!(from_span, 41, "the spans after the one holding the time");
        let (first, last) = range.unwrap();
        assert!(first > keys::runner_contacts_by_time(i64::MAX, span + 5).1);
        assert!(first <= keys::runner_contacts_by_time(0, span + 6).1);
        assert!(last >= keys::runner_contacts_by_time(123, span + keys::CONTACT_SPAN_MS - 1).1);
        assert!(last < keys::runner_contacts_by_time(0, span + keys::CONTACT_SPAN_MS).1);
        assert_eq!(
            Timeline::CONTACTS.split(span),
            (40, None),
            "a time that starts its span: that span whole, no entries"
        );
        let day = 9 * keys::SEEN_SPAN_MS;
        let (from_day, range) = Timeline::SEEN.split(day + 1);
        assert_eq!(from_day, 10);
        let (first, last) = range.unwrap();
        assert!(first <= keys::new_runners_by_time(0, day + 1).1);
        assert!(last >= keys::new_runners_by_time(7, day + keys::SEEN_SPAN_MS - 1).1);
        assert!(last < keys::new_runners_by_time(0, day + keys::SEEN_SPAN_MS).1);
    }

    #[test]
    fn a_heartbeat_moves_the_last_seen_count_only_across_days() {
        let day = |n: i64, ms: i64| Timestamp::from_millis(n * keys::SEEN_SPAN_MS + ms);
        let seen_counts = |changes: &ListingChanges| {
            deltas(&changes.counts)
                .into_iter()
                .filter(|((pk, _), _)| pk == keys::RUNNER_SEEN_COUNTS)
                .collect::<Vec<_>>()
        };
        let moved = |from: Timestamp, to: Timestamp| {
            vec![
                (
                    keys::runner_seen_count(from.millis(), 9),
                    BTreeMap::from([("group_type".to_owned(), -1)]),
                ),
                (
                    keys::runner_seen_count(to.millis(), 9),
                    BTreeMap::from([("group_type".to_owned(), 1)]),
                ),
            ]
        };
        let first = contact_changes(
            RunnerType::Group,
            9,
            SeenBefore::Created(day(2, 5)),
            day(30, 7),
            None,
        );
        assert_eq!(
            seen_counts(&first),
            moved(day(2, 5), day(30, 7)),
            "from the day it was created"
        );
        let next_day = contact_changes(
            RunnerType::Group,
            9,
            SeenBefore::Contacted(day(30, 7)),
            day(31, 0),
            None,
        );
        assert_eq!(seen_counts(&next_day), moved(day(30, 7), day(31, 0)));
        let same_day = contact_changes(
            RunnerType::Group,
            9,
            SeenBefore::Contacted(day(31, 0)),
            day(31, keys::CONTACT_SPAN_MS),
            None,
        );
        assert_eq!(seen_counts(&same_day), []);
    }

    #[test]
    fn a_heartbeat_moves_the_count_only_across_spans() {
        let span = |n: i64, ms: i64| Timestamp::from_millis(n * keys::CONTACT_SPAN_MS + ms);
        let same = contact_changes(
            RunnerType::Group,
            9,
            SeenBefore::Contacted(span(3, 1)),
            span(3, 60_001),
            None,
        );
        assert!(same.counts.is_empty(), "{:?}", same.counts);
        assert_eq!(same.contact_put.map(|e| e.at), Some(span(3, 60_001)));
        let across = contact_changes(
            RunnerType::Group,
            9,
            SeenBefore::Contacted(span(3, 1)),
            span(4, 2),
            None,
        );
        assert_eq!(
            deltas(&across.counts),
            [
                (
                    keys::runner_contact_count(span(3, 1).millis(), 9),
                    BTreeMap::from([("group_type".to_owned(), -1)])
                ),
                (
                    keys::runner_contact_count(span(4, 2).millis(), 9),
                    BTreeMap::from([("group_type".to_owned(), 1)])
                ),
            ]
        );
        let first = contact_changes(
            RunnerType::Group,
            9,
            SeenBefore::Created(Timestamp::from_millis(1)),
            span(4, 2),
            None,
        );
        assert_eq!(first.counts.len(), 2, "the span's count, never_contacted's");
        assert_eq!(
            first.facet_deletes,
            [keys::runner_facet("never_contacted", "group_type", 9)]
        );
    }

    #[test]
    fn a_heartbeat_with_another_version_moves_only_the_prefixes_that_change() {
        let at = Timestamp::from_millis(5 * keys::CONTACT_SPAN_MS);
        let entry =
            |prefix: &str| keys::runner_facet(&format!("version:{prefix}"), "project_type", 9);
        let count = |prefix: &str, delta: i64| {
            (
                keys::runner_facet_count(&format!("version:{prefix}"), 9),
                BTreeMap::from([("project_type".to_owned(), delta)]),
            )
        };
        let upgraded = contact_changes(
            RunnerType::Project,
            9,
            SeenBefore::Contacted(at),
            at,
            Some(VersionMove {
                was: Some("15.1.2"),
                now: "15.2.0",
            }),
        );
        assert_eq!(put_keys(&upgraded), [entry("15.2"), entry("15.2.0")]);
        assert_eq!(upgraded.facet_deletes, [entry("15.1"), entry("15.1.2")]);
        let mut expected = vec![
            count("15.1", -1),
            count("15.1.2", -1),
            count("15.2", 1),
            count("15.2.0", 1),
        ];
        expected.sort();
        assert_eq!(deltas(&upgraded.counts), expected, "`15` stays");
        let first = contact_changes(
            RunnerType::Project,
            9,
            SeenBefore::Contacted(at),
            at,
            Some(VersionMove {
                was: None,
                now: "16",
            }),
        );
        assert_eq!(put_keys(&first), [entry("16")]);
        assert_eq!(deltas(&first.counts), [count("16", 1)]);
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
