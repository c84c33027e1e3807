//! Instants as GitLab prints them: RFC 3339, UTC, milliseconds, `Z`.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use std::fmt;

/// Milliseconds since the Unix epoch, UTC. Stored as a DynamoDB number, printed as RFC 3339.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Self {
        Self(Utc::now().timestamp_millis())
    }

    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Whether `self` lies strictly less than `window_ms` before `now`.
    pub fn within(self, now: Timestamp, window_ms: i64) -> bool {
        now.0.saturating_sub(self.0) < window_ms
    }

    /// Parses an RFC 3339 time or a bare date (midnight UTC), as fixture files and
    /// `expires_at` use them.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Some(Self(t.timestamp_millis()));
        }
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
        Some(Self(
            date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis(),
        ))
    }

    /// Parses an `If-Unmodified-Since` value. Clients send HTTP dates, RFC 3339, and ISO 8601
    /// with a colon-less offset (`1990-01-12T00:00:48-0600`, as GitLab's own specs do).
    pub fn parse_http(text: &str) -> Option<Self> {
        let text = text.trim();
        DateTime::parse_from_rfc2822(text)
            .or_else(|_| DateTime::parse_from_rfc3339(text))
            .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%z"))
            .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
            .ok()
            .map(|t| Self(t.timestamp_millis()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match DateTime::<Utc>::from_timestamp_millis(self.0) {
            Some(t) => f.write_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            None => f.write_str("1970-01-01T00:00:00.000Z"),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_milliseconds_and_z() {
        let t = Timestamp::parse("2016-01-25T16:39:48.066Z").unwrap();
        assert_eq!(t.to_string(), "2016-01-25T16:39:48.066Z");
        assert_eq!(
            Timestamp::from_millis(0).to_string(),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2016-01-25T16:39:48.066Z\""
        );
    }

    #[test]
    fn offsets_are_normalised_to_utc() {
        let t = Timestamp::parse("2019-01-01T02:00:00+02:00").unwrap();
        assert_eq!(t.to_string(), "2019-01-01T00:00:00.000Z");
    }

    #[test]
    fn bare_dates_are_midnight_utc() {
        assert_eq!(
            Timestamp::parse("2030-05-01").unwrap().to_string(),
            "2030-05-01T00:00:00.000Z"
        );
        assert_eq!(Timestamp::parse("yesterday"), None);
    }

    #[test]
    fn if_unmodified_since_formats() {
        let gitlab_spec = Timestamp::parse_http("1990-01-12T00:00:48-0600").unwrap();
        assert_eq!(gitlab_spec.to_string(), "1990-01-12T06:00:48.000Z");
        let http_date = Timestamp::parse_http("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(http_date.to_string(), "2015-10-21T07:28:00.000Z");
        assert!(Timestamp::parse_http("2015-10-21T07:28:00Z").is_some());
        assert_eq!(Timestamp::parse_http("soon"), None);
    }

    #[test]
    fn within_window() {
        let now = Timestamp::from_millis(100_000);
        assert!(Timestamp::from_millis(50_001).within(now, 50_000));
        assert!(!Timestamp::from_millis(50_000).within(now, 50_000));
    }
}
