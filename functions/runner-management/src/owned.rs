//! `GET /runners`: the caller's owned runners. Project runners of projects where the caller is
//! Maintainer+, and group runners of groups where the caller is Maintainer+, membership being
//! inherited down the group tree. Never instance runners.
//!
//! Round trips, however many projects the caller has: memberships (1), then every source
//! together (2): the subtree set of each Maintainer+ group (everything below it, one query
//! however many projects it holds, or parallel queries of id ranges for a page past the
//! 10,000th, cut from the runner counts read beside the memberships) and the links of each
//! Maintainer+ project; then the runners in batches (3). Each source is read only as far as the
//! page and the count need. A filter on counted criteria (a tag, the active flag, contact,
//! staleness, a version prefix) also reads each criterion's counts beside the memberships and,
//! when the rarest matches at most 5,000 group and project runners, their ids beside the
//! sources, so that only the page's runners (or, for several criteria, at most 1,000 runners
//! meeting the rarest) are read, not every candidate.

use runners_shared::AppState;
use runners_shared::access::{self, MAINTAINER, Memberships};
use runners_shared::auth::Caller;
use runners_shared::error::ApiError;
use runners_shared::pagination::COUNT_LIMIT;
use runners_shared::pagination::{PageInfo, PageRequest};
use runners_shared::runner::{Runner, RunnerType};
use runners_shared::runner_filter::{Criterion, RunnerFilter};
use runners_shared::store::directory::MemberOf;
use runners_shared::store::keys;
use runners_shared::store::listing::{
    MAX_INTERSECTED_CRITERIA, MAX_INTERSECTED_WHOLE, RunnerCounts,
};
use runners_shared::time::Timestamp;
use std::collections::BTreeSet;
use std::ops::Bound;

/// The caller's owned runner ids, in id order, up to `limit`, and whether there are more; and,
/// for a filter of counted criteria (`counted`: its types and criteria) whose rarest matches
/// at most `MAX_INTERSECTED` group and project runners, the runners that meet it, read beside
/// the sources (their counts beside the memberships): of the filter's types.
async fn owned_ids(
    state: &AppState,
    caller: Caller,
    limit: usize,
    counted: Option<&(Vec<RunnerType>, Vec<Criterion>)>,
) -> Result<(Vec<i64>, bool, Option<BTreeSet<i64>>, Memberships), ApiError> {
    let store = &state.store;
    // A page past the count limit needs every id before it: each group's set is then read as
    // parallel queries of id ranges, cut from the runner counts.
    let deep = limit > usize::try_from(COUNT_LIMIT + 1).unwrap_or(usize::MAX);
    let criteria = counted.map_or(&[][..], |(_, criteria)| criteria.as_slice());
    let (memberships, ranges, criteria_counts) = futures_util::future::try_join3(
        store.memberships_of(caller.user_id),
        async {
            if deep {
                Ok(Some(store.runner_counts(None).await?.id_ranges()))
            } else {
                Ok(None)
            }
        },
        async {
            match criteria {
                [] => Ok(Vec::new()),
                criteria => store.criteria_counts(criteria).await,
            }
        },
    )
    .await?;
    let memberships: Memberships = memberships.into_iter().collect();
    let ranges = &ranges;
    let groups = memberships.groups_at_least(MAINTAINER).map(|g| {
        futures_util::future::Either::Left(async move {
            match ranges {
                Some(ranges) => store.subtree_runner_ids_in_ranges(g, ranges, limit).await,
                None => store.subtree_runner_ids(g, limit).await,
            }
        })
    });
    let projects = memberships.projects_at_least(MAINTAINER).map(|p| {
        futures_util::future::Either::Right(store.linked_ids_upto(keys::project(p).0, limit))
    });
    // Owned runners are group and project runners.
    let owned_types: Vec<RunnerType> = counted
        .map(|(types, _)| types.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|t| *t != RunnerType::Instance)
        .collect();
    let with_counts: Vec<(Criterion, RunnerCounts)> =
        criteria.iter().cloned().zip(criteria_counts).collect();
    let (sources, rarest) = futures_util::future::try_join(
        futures_util::future::try_join_all(groups.chain(projects)),
        async {
            if with_counts.is_empty() {
                return Ok(None);
            }
            store.rarest_criterion_ids(&owned_types, &with_counts).await
        },
    )
    .await?;
    let mut more = false;
    let mut ids = Vec::new();
    for (source_ids, source_has_more) in sources {
        more |= source_has_more;
        ids.extend(source_ids);
    }
    // Each source's first `limit` ids hold the union's first `limit`.
    ids.sort_unstable();
    ids.dedup();
    more |= ids.len() > limit;
    ids.truncate(limit);
    let rarest = rarest.map(|typed| {
        typed
            .into_iter()
            .filter(|(runner_type, _)| owned_types.contains(runner_type))
            .map(|(_, id)| id)
            .collect()
    });
    Ok((ids, more, rarest, memberships))
}

/// The most key reads that may say which of the rarest criterion's runners after the
/// candidates an owned list's caller owns (one per runner and Maintainer+ source): 100
/// batches, sent together.
const MAX_OWNERSHIP_KEYS: usize = 10_000;

/// One page of the caller's owned runners that pass the filter, in id order. A filter of
/// counted criteria whose rarest is rare enough keeps the owned runners that meet it (read
/// beside the sources): with one criterion only the page's runners are then read; with
/// several, those runners are read whole when they are at most `MAX_INTERSECTED_WHOLE`. When
/// the candidates go on past the first `limit`, the rarest's runners after them (at most
/// `MAX_INTERSECTED_WHOLE`) are read whole too, and kept if the caller owns them: every match
/// is then known, and the total exact. Any other filter reads the first `limit` candidates.
pub async fn page(
    state: &AppState,
    caller: Caller,
    filter: &RunnerFilter,
    page: PageRequest,
) -> Result<(Vec<Runner>, PageInfo), ApiError> {
    let limit = usize::try_from(page.scan_limit()).unwrap_or(usize::MAX);
    let timeout = state.settings.online_timeout_secs;
    let now = Timestamp::now();
    let counted = filter
        .counted_criteria(now, timeout)
        .filter(|(_, criteria)| !criteria.is_empty() && criteria.len() <= MAX_INTERSECTED_CRITERIA);
    let (ids, more, rarest, memberships) =
        owned_ids(state, caller, limit, counted.as_ref()).await?;
    let exhausted = !more && ids.len() < limit;
    let (Some((types, criteria)), Some(rarest)) = (&counted, rarest) else {
        return state
            .store
            .runner_page(ids, &[], more, filter, page, now, timeout)
            .await;
    };
    // The rarest's runners past the candidates read: owned or not, only their items say.
    let after_candidates: Vec<i64> = match (exhausted, ids.last()) {
        (false, Some(last)) => rarest
            .range((Bound::Excluded(*last), Bound::Unbounded))
            .copied()
            .collect(),
        _ => Vec::new(),
    };
    let candidates: Vec<i64> = ids.into_iter().filter(|id| rarest.contains(id)).collect();
    let meets = |runner: &Runner| {
        types.contains(&runner.runner_type)
            && criteria.iter().all(|criterion| criterion.admits(runner))
    };
    let owned_match = |runner: &Runner| access::owns(runner, &memberships) && meets(runner);
    let whole = |count: usize| u64::try_from(count).unwrap_or(u64::MAX) <= MAX_INTERSECTED_WHOLE;
    if let [_] = criteria.as_slice() {
        // The candidates it holds are the matches (checked again once read): only the page's
        // are read, beside what says which runners after the candidates the caller owns.
        let offset = usize::try_from(page.offset()).unwrap_or(usize::MAX);
        let per_page = usize::try_from(page.per_page).unwrap_or(usize::MAX);
        let in_page: Vec<i64> = candidates
            .iter()
            .copied()
            .skip(offset)
            .take(per_page)
            .collect();
        let sources: Vec<MemberOf> = memberships
            .groups_at_least(MAINTAINER)
            .map(MemberOf::Group)
            .chain(
                memberships
                    .projects_at_least(MAINTAINER)
                    .map(MemberOf::Project),
            )
            .collect();
        let ownership_keys = after_candidates.len().saturating_mul(sources.len());
        // The page's runners among the candidates; the owned matches after them, by id, and
        // those of them that were read.
        let (page_runners, after_ids, after_read): (Vec<Runner>, Vec<i64>, Vec<Runner>) =
            if whole(after_candidates.len()) {
                // Few: their items say.
                let (page_runners, after) = futures_util::future::try_join(
                    state.store.get_runners(&in_page),
                    state.store.get_runners(&after_candidates),
                )
                .await?;
                let after: Vec<Runner> = after.into_iter().filter(owned_match).collect();
                (page_runners, after.iter().map(|r| r.id).collect(), after)
            } else if ownership_keys <= MAX_OWNERSHIP_KEYS {
                // More: their subtree entries and links say (keys only); a page reaching past
                // the candidates then reads its runners from there (a fifth round trip).
                let (page_runners, owned) = futures_util::future::try_join(
                    state.store.get_runners(&in_page),
                    state.store.runners_in_sources(&after_candidates, &sources),
                )
                .await?;
                let owned: Vec<i64> = after_candidates
                    .into_iter()
                    .filter(|id| owned.contains(id))
                    .collect();
                let past = offset
                    .saturating_add(per_page)
                    .saturating_sub(candidates.len());
                let skip = offset.saturating_sub(candidates.len());
                let after_page: Vec<i64> = owned
                    .iter()
                    .copied()
                    .skip(skip)
                    .take(past.min(per_page))
                    .collect();
                let mut after = state.store.get_runners(&after_page).await?;
                after.retain(owned_match);
                // One read that no longer matches is not one.
                let unmatched: BTreeSet<i64> = after_page
                    .into_iter()
                    .filter(|id| !after.iter().any(|runner| runner.id == *id))
                    .collect();
                let owned = owned.into_iter().filter(|id| !unmatched.contains(id));
                (page_runners, owned.collect(), after)
            } else {
                // Known limit: only the matches among the first `limit` candidates are listed.
                return state
                    .store
                    .runner_page(candidates, &[], !exhausted, filter, page, now, timeout)
                    .await;
            };
        let ids: Vec<i64> = candidates.iter().copied().chain(after_ids).collect();
        let (page_ids, info) = page.cut(ids, true);
        let mut runners: Vec<Runner> = page_runners
            .into_iter()
            .chain(after_read)
            .filter(|runner| page_ids.contains(&runner.id))
            .collect();
        runners.sort_unstable_by_key(|runner| runner.id);
        // An entry whose runner no longer matches is not one.
        runners.retain(meets);
        return Ok((runners, info));
    }
    // Several criteria: the candidates the rarest holds, read whole and checked (known limit:
    // when they are more, only the matches among the first `limit` candidates are listed).
    if !whole(candidates.len().saturating_add(after_candidates.len())) {
        return state
            .store
            .runner_page(candidates, &[], !exhausted, filter, page, now, timeout)
            .await;
    }
    let (read, after) = futures_util::future::try_join(
        state.store.get_runners(&candidates),
        state.store.get_runners(&after_candidates),
    )
    .await?;
    let matches: Vec<Runner> = read
        .into_iter()
        .filter(meets)
        .chain(after.into_iter().filter(owned_match))
        .collect();
    Ok(page.cut(matches, true))
}
