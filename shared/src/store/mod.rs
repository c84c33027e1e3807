//! The single DynamoDB table, behind a narrow interface: the domain asks for runners, tokens and
//! counters, and never sees an attribute map. Every SDK call goes through [`metrics::track`] so
//! the request log can report what each request cost.

pub mod client;
pub mod directory;
pub mod item;
pub mod jobs;
pub mod keys;
pub mod listing;
mod listing_outbox;
pub mod lists;
mod managers;
pub mod projects;
mod runners;
pub mod settings;
mod tokens;

#[cfg(feature = "admin")]
pub(crate) use jobs::running_job_item;
pub use listing::SeenBefore;
#[cfg(feature = "admin")]
pub(crate) use runners::link_item;
pub use runners::{ContactState, CreateRunnerError, Heartbeat, MAX_LINKS_PER_RUNNER};
pub use tokens::{LastVersion, RegistrationScope, TokenRecord};

use crate::config::StorageTimeouts;
use crate::error::ApiError;
use crate::metrics;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use item::Item;

/// A request the SDK refused to build: always our bug, never the client's.
pub(crate) fn build_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("building a DynamoDB request: {e}"))
}

/// Named id sequences, one counter item each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSequence {
    Runner,
    User,
    Group,
    Project,
    Job,
}

impl IdSequence {
    pub fn name(self) -> &'static str {
        match self {
            Self::Runner => "runner",
            Self::User => "user",
            Self::Group => "group",
            Self::Project => "project",
            Self::Job => "job",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    table: String,
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// A client configured from the environment: on Lambda the execution role; locally
    /// `AWS_ENDPOINT_URL_DYNAMODB` and static credentials. Every call is bounded by `timeouts`.
    /// Makes no network call.
    /// A Lambda function's store (see [`client::lambda_client`]).
    pub fn for_lambda(table: impl Into<String>, timeouts: StorageTimeouts) -> Result<Self, String> {
        Ok(Self::new(client::lambda_client(timeouts)?, table))
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The next id of a sequence: an atomic `ADD`, so concurrent callers never share one.
    pub async fn allocate_id(&self, sequence: IdSequence) -> Result<i64, ApiError> {
        let output = metrics::track(
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(item::key_of(keys::counter(sequence.name()))))
                .update_expression("ADD #value :one")
                .expression_attribute_names("#value", "value")
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
                .send(),
        )
        .await
        .map_err(storage_error)?;
        let attributes = output.attributes.unwrap_or_default();
        item::ItemReader::new(&attributes, "counter").n("value")
    }

    /// One item by key, strongly consistent: a runner that just registered must be able to
    /// verify at once.
    pub(crate) async fn get(&self, key: (String, String)) -> Result<Option<Item>, ApiError> {
        let output = metrics::track(
            self.client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(item::key_of(key)))
                .consistent_read(true)
                .send(),
        )
        .await
        .map_err(storage_error)?;
        Ok(output.item)
    }
}

/// DynamoDB's refusal of an item or key over its size limits ("Item size has exceeded the
/// maximum allowed size", "Size of hashkey has exceeded the maximum size limit of 2048 bytes").
/// Input is bounded before it reaches a write, so this is a safety net.
pub(crate) fn is_size_limit(message: &str) -> bool {
    message.contains("exceeded the maximum")
}

/// A write refused for its size: the client sent too much, so 413, and the detail is logged.
pub(crate) fn too_large(detail: &str) -> ApiError {
    tracing::warn!(error = %detail, "DynamoDB refused an item or key for its size");
    ApiError::PayloadTooLarge
}

/// The SDK's form of [`StorageTimeouts`]. A timed-out attempt is retried by the SDK within the
/// operation timeout; a timed-out operation is a `TimeoutError`, which [`storage_error`] makes a
/// 503.
pub fn sdk_timeouts(timeouts: StorageTimeouts) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(timeouts.connect)
        .operation_attempt_timeout(timeouts.attempt)
        .operation_timeout(timeouts.operation)
        .build()
}

/// How often a write re-reads a runner that changed under it (an update, enable, disable or
/// delete that lost a race to another write of the same runner): enough for half a dozen
/// writes of one runner at once, each waiting a random moment, longer every attempt.
pub const RUNNER_WRITE_ATTEMPTS: u32 = 6;

/// Waits before retrying a write that lost a race: "full jitter" exponential backoff (a random
/// time up to 10 ms doubled per attempt, at most 320 ms), so that writers that collided once
/// spread out instead of colliding again in step.
pub async fn back_off(attempt: u32) {
    let ceiling_ms = 10u64 << attempt.min(5);
    let random = getrandom::u64().unwrap_or(ceiling_ms / 2);
    tokio::time::sleep(std::time::Duration::from_millis(random % (ceiling_ms + 1))).await;
}

/// Maps an SDK failure to what the client sees: throttling and unreachable storage (after the
/// SDK's own retries) are 503, everything else 500. The detail goes to the log only.
pub fn storage_error<E, R>(error: SdkError<E, R>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    const TRANSIENT: [&str; 6] = [
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
    ];
    let detail = aws_sdk_dynamodb::error::DisplayErrorContext(&error).to_string();
    match &error {
        SdkError::ServiceError(service)
            if service.err().code() == Some("ValidationException")
                && service.err().message().is_some_and(is_size_limit) =>
        {
            too_large(&detail)
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => ApiError::Unavailable(detail),
        SdkError::ServiceError(service)
            if service.err().code().is_some_and(|c| TRANSIENT.contains(&c)) =>
        {
            ApiError::Unavailable(detail)
        }
        _ => ApiError::Internal(detail),
    }
}
