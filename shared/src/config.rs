//! Settings read once at start-up from the environment (Lambda environment variables, or the
//! shell for `runnerctl`).

use std::env;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Settings {
    /// The single DynamoDB table (`TABLE_NAME`).
    pub table_name: String,
    /// A runner is online when it contacted us within this many seconds (`ONLINE_TIMEOUT_SECONDS`,
    /// default 3600, GitLab 12's one hour).
    pub online_timeout_secs: i64,
    /// A heartbeat younger than this is not written again (`HEARTBEAT_INTERVAL_SECONDS`, default
    /// 60, at most 60): `contacted_at` is precise to this many seconds.
    pub heartbeat_interval_secs: i64,
    /// Base URL clients use (`EXTERNAL_URL`), for pagination links; else the request's host.
    pub external_url: Option<String>,
    /// Honour `X-Forwarded-For` for `ip_address` (`TRUST_X_FORWARDED_FOR`): only behind a proxy
    /// that sets it. API Gateway's own `sourceIp` is used regardless.
    pub trust_forwarded_for: bool,
    /// How long DynamoDB calls may take; see [`StorageTimeouts`].
    pub storage_timeouts: StorageTimeouts,
    /// A request still unanswered after this long is answered 503 (`REQUEST_DEADLINE_MS`,
    /// default 8,000). Below the function's Lambda timeout (10 s in `template.yaml`), so that the
    /// client gets the service's JSON 503 and the function is never killed mid-request; above
    /// the storage operation timeout, so that one stalled call ends as its own 503 first.
    pub request_deadline: Duration,
}

/// Bounds on every DynamoDB call, so that a database that accepts connections and never answers
/// costs a request seconds, not minutes. DynamoDB answers in milliseconds; these leave room for
/// a cold connection and one SDK retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageTimeouts {
    /// TCP and TLS connect (`DYNAMODB_CONNECT_TIMEOUT_MS`, default 1,000).
    pub connect: Duration,
    /// One attempt, connect to last byte (`DYNAMODB_ATTEMPT_TIMEOUT_MS`, default 2,000).
    pub attempt: Duration,
    /// A whole call with the SDK's retries (`DYNAMODB_OPERATION_TIMEOUT_MS`, default 4,500):
    /// two attempts and the backoff between them.
    pub operation: Duration,
}

impl Default for StorageTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_millis(1_000),
            attempt: Duration::from_millis(2_000),
            operation: Duration::from_millis(4_500),
        }
    }
}

pub const DEFAULT_REQUEST_DEADLINE: Duration = Duration::from_millis(8_000);

pub const DEFAULT_TABLE_NAME: &str = "gitlab-runners";
pub const MAX_HEARTBEAT_INTERVAL_SECS: i64 = 60;

impl Default for Settings {
    fn default() -> Self {
        Self {
            table_name: DEFAULT_TABLE_NAME.to_owned(),
            online_timeout_secs: 3600,
            heartbeat_interval_secs: MAX_HEARTBEAT_INTERVAL_SECS,
            external_url: None,
            trust_forwarded_for: false,
            storage_timeouts: StorageTimeouts::default(),
            request_deadline: DEFAULT_REQUEST_DEADLINE,
        }
    }
}

impl Settings {
    pub fn from_env() -> Self {
        let defaults = Self::default();
        let number = |name: &str, default: i64| {
            env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .unwrap_or(default)
        };
        Self {
            table_name: env::var("TABLE_NAME")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or(defaults.table_name),
            online_timeout_secs: number("ONLINE_TIMEOUT_SECONDS", defaults.online_timeout_secs),
            heartbeat_interval_secs: number(
                "HEARTBEAT_INTERVAL_SECONDS",
                defaults.heartbeat_interval_secs,
            )
            .min(MAX_HEARTBEAT_INTERVAL_SECS),
            external_url: env::var("EXTERNAL_URL")
                .ok()
                .map(|s| s.trim_end_matches('/').to_owned())
                .filter(|s| !s.is_empty()),
            trust_forwarded_for: env::var("TRUST_X_FORWARDED_FOR")
                .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes")),
            storage_timeouts: StorageTimeouts::from_env(),
            request_deadline: millis("REQUEST_DEADLINE_MS", defaults.request_deadline),
        }
    }
}

/// A positive number of milliseconds from the environment, else `default`.
fn millis(name: &str, default: Duration) -> Duration {
    env::var(name)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|n| *n > 0)
        .map_or(default, Duration::from_millis)
}

impl StorageTimeouts {
    pub fn from_env() -> Self {
        let defaults = Self::default();
        Self {
            connect: millis("DYNAMODB_CONNECT_TIMEOUT_MS", defaults.connect),
            attempt: millis("DYNAMODB_ATTEMPT_TIMEOUT_MS", defaults.attempt),
            operation: millis("DYNAMODB_OPERATION_TIMEOUT_MS", defaults.operation),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stalled_call_ends_before_the_request_deadline() {
        let settings = Settings::default();
        let storage = settings.storage_timeouts;
        assert!(storage.connect <= storage.attempt);
        assert!(storage.attempt < storage.operation);
        assert!(storage.operation < settings.request_deadline);
        // template.yaml's function timeout is 10 s; tests/lambda/test_template.py checks it.
        assert!(settings.request_deadline < Duration::from_secs(10));
    }
}
