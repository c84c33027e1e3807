//! Counts the DynamoDB calls a request makes, and how many of them were sequential round trips.
//!
//! Each request runs inside [`scope`]; the store wraps every SDK call in [`track`]. A call that
//! starts while another is in flight joined a parallel batch and adds no round trip, so
//! `round_trips` is the latency-relevant depth that the budgets in the issues speak of.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU32,
    round_trips: AtomicU32,
    in_flight: AtomicU32,
}

/// What one request cost in DynamoDB calls. Attached to responses as an extension (never sent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DynamoUsage {
    pub calls: u32,
    pub round_trips: u32,
}

tokio::task_local! {
    static COUNTERS: Arc<Counters>;
}

/// Runs `future` with fresh counters and returns what it used.
pub async fn scope<F: Future>(future: F) -> (F::Output, DynamoUsage) {
    let counters = Arc::new(Counters::default());
    let output = COUNTERS.scope(counters.clone(), future).await;
    let usage = DynamoUsage {
        calls: counters.calls.load(Ordering::Relaxed),
        round_trips: counters.round_trips.load(Ordering::Relaxed),
    };
    (output, usage)
}

/// Counts one DynamoDB call. Outside a [`scope`] (operator commands) it counts nothing.
pub async fn track<F: Future>(call: F) -> F::Output {
    let counters = COUNTERS.try_with(Arc::clone).ok();
    if let Some(c) = &counters {
        c.calls.fetch_add(1, Ordering::Relaxed);
        if c.in_flight.fetch_add(1, Ordering::Relaxed) == 0 {
            c.round_trips.fetch_add(1, Ordering::Relaxed);
        }
    }
    let output = call.await;
    if let Some(c) = &counters {
        c.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn call() {
        tokio::task::yield_now().await;
    }

    #[tokio::test]
    async fn parallel_calls_count_one_round_trip() {
        let ((), usage) = scope(async {
            track(call()).await;
            futures_util::future::join3(track(call()), track(call()), track(call())).await;
            track(call()).await;
        })
        .await;
        assert_eq!(
            usage,
            DynamoUsage {
                calls: 5,
                round_trips: 3
            }
        );
    }

    #[tokio::test]
    async fn outside_a_scope_nothing_is_counted() {
        track(call()).await;
        let ((), usage) = scope(async {}).await;
        assert_eq!(usage, DynamoUsage::default());
    }
}
