//! Settings read once at start-up from the environment (Lambda environment variables, or the
//! shell for `runnerctl`).

use std::env;

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
}

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
        }
    }
}
