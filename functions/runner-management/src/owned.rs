//! `GET /runners`: the caller's owned runners. Project runners of projects where the caller is
//! Maintainer+, and group runners of groups where the caller is Maintainer+, membership being
//! inherited down the group tree. Never instance runners.
//!
//! Round trips, however many projects the caller has: memberships (1), then every source
//! together (2): the subtree set of each Maintainer+ group (everything below it, one query
//! however many projects it holds, or parallel queries of id ranges for a page past the
//! 10,000th, cut from the runner counts read beside the memberships) and the links of each
//! Maintainer+ project; then the runners in batches (3). Each source is read only as far as the
//! page and the count need.

use runners_shared::AppState;
use runners_shared::access::{MAINTAINER, Memberships};
use runners_shared::auth::Caller;
use runners_shared::error::ApiError;
use runners_shared::pagination::COUNT_LIMIT;
use runners_shared::pagination::{PageInfo, PageRequest};
use runners_shared::runner::Runner;
use runners_shared::runner_filter::RunnerFilter;
use runners_shared::store::keys;
use runners_shared::time::Timestamp;

/// The caller's owned runner ids, in id order, up to `limit`, and whether there are more.
async fn owned_ids(
    state: &AppState,
    caller: Caller,
    limit: usize,
) -> Result<(Vec<i64>, bool), ApiError> {
    let store = &state.store;
    // A page past the count limit needs every id before it: each group's set is then read as
    // parallel queries of id ranges, cut from the runner counts.
    let deep = limit > usize::try_from(COUNT_LIMIT + 1).unwrap_or(usize::MAX);
    let (memberships, ranges) =
        futures_util::future::try_join(store.memberships_of(caller.user_id), async {
            if deep {
                Ok(Some(store.runner_counts(None).await?.id_ranges()))
            } else {
                Ok(None)
            }
        })
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
    Ok((ids, more))
}

/// One page of the caller's owned runners that pass the filter, in id order.
pub async fn page(
    state: &AppState,
    caller: Caller,
    filter: &RunnerFilter,
    page: PageRequest,
) -> Result<(Vec<Runner>, PageInfo), ApiError> {
    let limit = usize::try_from(page.scan_limit()).unwrap_or(usize::MAX);
    let (ids, more) = owned_ids(state, caller, limit).await?;
    let timeout = state.settings.online_timeout_secs;
    state
        .store
        .runner_page(ids, &[], more, filter, page, Timestamp::now(), timeout)
        .await
}
