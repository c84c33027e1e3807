//! `GET /runners`: the caller's owned runners. Project runners of projects where the caller is
//! Maintainer+, and group runners of groups where the caller is Maintainer+, membership being
//! inherited down the group tree. Never instance runners.
//!
//! Round trips, however many projects the caller has: memberships (1), then every source
//! whole, together (2): the subtree set of each Maintainer+ group (the member sets of its
//! subtree counts: everything below it, one query however many projects it holds, about 9
//! bytes a runner) and the links of each Maintainer+ project; then the page's runners (3). So
//! the total is exact, and every page costs the same. A filter on counted criteria (types, a
//! tag, the active flag, contact, staleness, a version prefix; up to 16) reads the runners that
//! meet them from the member sets of their counts beside the memberships: the page is cut from
//! the caller's runners among them. Any other filter reads candidates (at most 10,001) until
//! the page is found.

use runners_shared::AppState;
use runners_shared::access::{MAINTAINER, Memberships};
use runners_shared::auth::Caller;
use runners_shared::error::ApiError;
use runners_shared::pagination::{PageInfo, PageRequest};
use runners_shared::runner::{Runner, RunnerType};
use runners_shared::runner_filter::{Criterion, RunnerFacts, RunnerFilter};
use runners_shared::store::keys;
use runners_shared::store::listing::MAX_INTERSECTED_CRITERIA;
use runners_shared::time::Timestamp;

/// Which of the caller's runners a filter keeps, as read beside the memberships.
enum Kept {
    /// Every one: no filter, or types that take every owned runner.
    All,
    /// Those among these group and project runners, which meet the filter's types and counted
    /// criteria (from the member sets of their counts).
    Among(Vec<i64>),
    /// Those a walk of the candidates finds: a filter that is not counted, or member sets not
    /// complete (a table written before them).
    Walked,
}

/// Every runner the caller owns, in id order, and which of them the filter keeps (`counted`:
/// its types and criteria, if it is counted).
async fn owned_ids(
    state: &AppState,
    caller: Caller,
    counted: Option<&(Vec<RunnerType>, Vec<Criterion>)>,
) -> Result<(Vec<i64>, Kept), ApiError> {
    let store = &state.store;
    let (memberships, kept) =
        futures_util::future::try_join(store.memberships_of(caller.user_id), async {
            let Some((types, criteria)) = counted else {
                return Ok(Kept::Walked);
            };
            // Owned runners are group and project runners: types that take both take all.
            let owned_types: Vec<RunnerType> = OWNED_TYPES
                .into_iter()
                .filter(|t| types.contains(t))
                .collect();
            if criteria.is_empty() && owned_types.len() == OWNED_TYPES.len() {
                return Ok(Kept::All);
            }
            let meeting = store.runners_meeting(&owned_types, criteria).await?;
            Ok(meeting.map_or(Kept::Walked, Kept::Among))
        })
        .await?;
    let memberships: Memberships = memberships.into_iter().collect();
    let groups = memberships
        .groups_at_least(MAINTAINER)
        .map(|g| futures_util::future::Either::Left(store.subtree_members(g)));
    let projects = memberships.projects_at_least(MAINTAINER).map(|p| {
        futures_util::future::Either::Right(async move {
            let (ids, _) = store
                .linked_ids_upto(keys::project(p).0, usize::MAX)
                .await?;
            Ok(ids)
        })
    });
    let sources = futures_util::future::try_join_all(groups.chain(projects)).await?;
    let mut ids: Vec<i64> = sources.into_iter().flatten().collect();
    ids.sort_unstable();
    ids.dedup();
    Ok((ids, kept))
}

/// The types an owned runner may have.
const OWNED_TYPES: [RunnerType; 2] = [RunnerType::Group, RunnerType::Project];

/// One page of the caller's owned runners that pass the filter, in id order, with the exact
/// total. A filter of counted criteria keeps the caller's runners among those that meet them,
/// so that only the page's runners are read; any other filter reads candidates until the page
/// is found (at most 10,001).
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
        .filter(|(_, criteria)| criteria.len() <= MAX_INTERSECTED_CRITERIA);
    let (ids, kept) = owned_ids(state, caller, counted.as_ref()).await?;
    let matching = match kept {
        Kept::All => ids,
        // `ids` is in id order.
        Kept::Among(meeting) => meeting
            .into_iter()
            .filter(|id| ids.binary_search(id).is_ok())
            .collect(),
        Kept::Walked => {
            return state
                .store
                .runner_page(ids, &[], false, filter, page, now, timeout)
                .await;
        }
    };
    let meets = |runner: &Runner| filter.matches(&RunnerFacts::from(runner), now, timeout);
    state
        .store
        .page_of_matches(matching, &[], meets, page)
        .await
}
