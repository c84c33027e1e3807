//! Everything the Runners API functions share.
//!
//! Each module is one concept: [`params`] (GitLab's parameter coercion), [`error`] (GitLab's error
//! bodies), [`auth`] (token digests and personal access tokens), [`entities`] (the JSON the API
//! returns), [`runner`] (the runner model and its rules), [`runner_tokens`] (register, verify and
//! unregister), [`store`] (the single DynamoDB table) and [`http`] (what every function's entry
//! point wraps around its router).

pub mod access;
pub mod auth;
pub mod config;
pub mod entities;
pub mod error;
pub mod http;
pub mod job_requests;
pub mod job_updates;
pub mod jobs;
pub mod metrics;
pub mod pagination;
pub mod params;
pub mod registration_tokens;
pub mod runner;
pub mod runner_filter;
pub mod runner_tokens;
pub mod store;
pub mod sweeper;
pub mod time;
pub mod token_expiry;
pub mod user_runners;

#[cfg(feature = "admin")]
pub mod admin;

pub use config::Settings;
pub use error::ApiError;
pub use http::AppState;
pub use store::Store;
