//! The single DynamoDB table, behind a narrow interface: the domain asks for runners, tokens and
//! counters, and never sees an attribute map. Every SDK call goes through [`metrics::track`] so
//! the request log can report what each request cost.

pub mod directory;
pub mod item;
pub mod keys;
pub mod lists;
pub mod projects;
mod runners;
mod tokens;

#[cfg(feature = "admin")]
pub(crate) use runners::link_item;
pub use runners::{CreateRunnerError, Heartbeat, MAX_LINKS_PER_RUNNER};
pub use tokens::{RegistrationScope, TokenRecord};

use crate::error::ApiError;
use crate::metrics;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use item::Item;

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
    /// `AWS_ENDPOINT_URL_DYNAMODB` and static credentials. Makes no network call.
    pub async fn from_env(table: impl Into<String>) -> Self {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::new(Client::new(&config), table)
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
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => ApiError::Unavailable(detail),
        SdkError::ServiceError(service)
            if service.err().code().is_some_and(|c| TRANSIENT.contains(&c)) =>
        {
            ApiError::Unavailable(detail)
        }
        _ => ApiError::Internal(detail),
    }
}
