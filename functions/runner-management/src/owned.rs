//! `GET /runners`: the caller's owned runners. Project runners of projects where the caller is
//! Maintainer+, and group runners of groups where the caller is Maintainer+, membership being
//! inherited down the group tree. Never instance runners.
//!
//! Round trips, however many projects the caller has: memberships (1), then the subtrees of the
//! caller's Maintainer+ groups together with the runner links of the direct memberships (2), then
//! the links below those groups (3), then the runners in batches (4).

use runners_shared::AppState;
use runners_shared::access::{MAINTAINER, Memberships};
use runners_shared::auth::Caller;
use runners_shared::error::ApiError;
use runners_shared::pagination::{PageInfo, PageRequest};
use runners_shared::runner::Runner;
use runners_shared::runner_filter::RunnerFilter;
use runners_shared::store::directory::MemberOf;
use runners_shared::time::Timestamp;

async fn owned_ids(state: &AppState, caller: Caller) -> Result<Vec<i64>, ApiError> {
    let store = &state.store;
    let memberships: Memberships = store
        .memberships_of(caller.user_id)
        .await?
        .into_iter()
        .collect();
    let groups: Vec<i64> = memberships.groups_at_least(MAINTAINER).collect();
    let direct: Vec<MemberOf> = memberships
        .projects_at_least(MAINTAINER)
        .map(MemberOf::Project)
        .chain(groups.iter().copied().map(MemberOf::Group))
        .collect();
    let (below, direct_ids) = futures_util::future::try_join(
        store.descendants(&groups),
        store.linked_runner_ids(&direct),
    )
    .await?;
    let below: Vec<MemberOf> = below.into_iter().filter(|b| !direct.contains(b)).collect();
    let mut ids = direct_ids;
    ids.extend(store.linked_runner_ids(&below).await?);
    Ok(ids)
}

/// One page of the caller's owned runners that pass the filter, in id order.
pub async fn page(
    state: &AppState,
    caller: Caller,
    filter: &RunnerFilter,
    page: PageRequest,
) -> Result<(Vec<Runner>, PageInfo), ApiError> {
    let ids = owned_ids(state, caller).await?;
    let timeout = state.settings.online_timeout_secs;
    state
        .store
        .runner_page(ids, &[], false, filter, page, Timestamp::now(), timeout)
        .await
}
