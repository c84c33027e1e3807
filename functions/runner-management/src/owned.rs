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
//! staleness, a version prefix; up to 4) reads the runners that meet them from the member sets
//! of their counts beside the memberships, and every source whole (in id ranges): the matches
//! are the caller's runners among them, all of them with the exact total, and only the page's
//! runners are read.

use runners_shared::AppState;
use runners_shared::access::{MAINTAINER, Memberships};
use runners_shared::auth::Caller;
use runners_shared::error::ApiError;
use runners_shared::pagination::COUNT_LIMIT;
use runners_shared::pagination::{PageInfo, PageRequest};
use runners_shared::runner::{Runner, RunnerType};
use runners_shared::runner_filter::{Criterion, RunnerFilter};
use runners_shared::store::keys;
use runners_shared::store::listing::MAX_INTERSECTED_CRITERIA;
use runners_shared::time::Timestamp;
use std::collections::BTreeSet;

/// The caller's owned runner ids, in id order, up to `limit`, and whether there are more; and,
/// for a filter of counted criteria (`counted`: its types and criteria), the group and project
/// runners of its types that meet them, read beside the memberships (`None`: their member sets
/// are not complete, and the list walks).
async fn owned_ids(
    state: &AppState,
    caller: Caller,
    limit: usize,
    counted: Option<&(Vec<RunnerType>, Vec<Criterion>)>,
) -> Result<(Vec<i64>, bool, Option<Vec<i64>>), ApiError> {
    let store = &state.store;
    // A page past the count limit needs every id before it: each group's set is then read as
    // parallel queries of id ranges, cut from the runner counts.
    let deep = limit > usize::try_from(COUNT_LIMIT + 1).unwrap_or(usize::MAX);
    // Owned runners are group and project runners.
    let owned_types: Vec<RunnerType> = counted
        .map(|(types, _)| types.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|t| *t != RunnerType::Instance)
        .collect();
    let (memberships, ranges, meeting) = futures_util::future::try_join3(
        store.memberships_of(caller.user_id),
        async {
            if deep {
                Ok(Some(store.runner_counts(None).await?.id_ranges()))
            } else {
                Ok(None)
            }
        },
        async {
            match counted {
                Some((_, criteria)) => store.runners_meeting(&owned_types, criteria).await,
                None => Ok(None),
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
    let sources = futures_util::future::try_join_all(groups.chain(projects)).await?;
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
    Ok((ids, more, meeting))
}

/// One page of the caller's owned runners that pass the filter, in id order. A filter of
/// counted criteria keeps the caller's runners among those that meet them (every source read
/// whole, the member sets beside the memberships), so that only the page's runners are read
/// and the total is exact; any other filter reads the first `limit` candidates.
pub async fn page(
    state: &AppState,
    caller: Caller,
    filter: &RunnerFilter,
    page: PageRequest,
) -> Result<(Vec<Runner>, PageInfo), ApiError> {
    let timeout = state.settings.online_timeout_secs;
    let now = Timestamp::now();
    let counted = filter
        .counted_criteria(now, timeout)
        .filter(|(_, criteria)| !criteria.is_empty() && criteria.len() <= MAX_INTERSECTED_CRITERIA);
    let limit = match counted {
        Some(_) => usize::MAX,
        None => usize::try_from(page.scan_limit()).unwrap_or(usize::MAX),
    };
    let (ids, more, meeting) = owned_ids(state, caller, limit, counted.as_ref()).await?;
    let (Some((types, criteria)), Some(meeting)) = (&counted, meeting) else {
        return state
            .store
            .runner_page(ids, &[], more, filter, page, now, timeout)
            .await;
    };
    let owned: BTreeSet<i64> = ids.into_iter().collect();
    let matching: Vec<i64> = meeting
        .into_iter()
        .filter(|id| owned.contains(id))
        .collect();
    let meets = |runner: &Runner| {
        types.contains(&runner.runner_type)
            && criteria.iter().all(|criterion| criterion.admits(runner))
    };
    state
        .store
        .page_of_matches(matching, &[], meets, page)
        .await
}
