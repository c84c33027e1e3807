//! One error type for every failure, rendered as GitLab renders it.
//!
//! Internal failures are logged with their detail and answered with a fixed body: nothing about
//! the storage layer ever reaches a client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::json;
use std::borrow::Cow;

#[derive(Debug)]
pub enum ApiError {
    /// 401: no, unknown, expired or revoked personal access token.
    Unauthorized,
    /// 403 `403 Forbidden`.
    Forbidden,
    /// 403 `403 Forbidden - <reason>`.
    ForbiddenBecause(Cow<'static, str>),
    /// 404 `404 <what> Not Found` (`404 Not Found` when `what` is empty).
    NotFound(&'static str),
    /// 404 `404 Not found`: GitLab 12's answer for a record looked up by id inside a found
    /// parent (`ActiveRecord::RecordNotFound`), e.g. a job of a project.
    RecordNotFound,
    /// 400 `{"error": "..."}`: parameters failing their type, allowed values or presence.
    InvalidParams(Vec<String>),
    /// 400 `{"message": {"attr": ["..."]}}`: a model validation.
    Validation(ValidationErrors),
    /// 400 `{"message": "..."}`: a request that cannot be read at all (malformed body).
    BadRequest(Cow<'static, str>),
    /// 410 `410 Gone - <reason>`: legacy registration switched off.
    Gone(&'static str),
    /// 412 on `If-Unmodified-Since` older than the last change.
    PreconditionFailed,
    /// 413: the body is over the bound.
    PayloadTooLarge,
    /// 503: storage throttled or unreachable after the SDK's retries. The detail is logged.
    Unavailable(String),
    /// 500: anything else. The detail is logged.
    Internal(String),
}

impl ApiError {
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::Internal(detail.to_string())
    }

    pub fn forbidden_because(reason: &'static str) -> Self {
        Self::ForbiddenBecause(Cow::Borrowed(reason))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::ForbiddenBecause(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::RecordNotFound => StatusCode::NOT_FOUND,
            Self::InvalidParams(_) | Self::Validation(_) | Self::BadRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::Gone(_) => StatusCode::GONE,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn body(&self) -> serde_json::Value {
        match self {
            Self::Unauthorized => json!({"message": "401 Unauthorized"}),
            Self::Forbidden => json!({"message": "403 Forbidden"}),
            Self::ForbiddenBecause(reason) => {
                json!({"message": format!("403 Forbidden - {reason}")})
            }
            Self::RecordNotFound => json!({"message": "404 Not found"}),
            // An empty `what` is Grape's bare `not_found!`: `404 Not Found`.
            Self::NotFound("") => json!({"message": "404 Not Found"}),
            Self::NotFound(what) => json!({"message": format!("404 {what} Not Found")}),
            Self::InvalidParams(problems) => json!({"error": problems.join(", ")}),
            Self::Validation(errors) => json!({"message": errors}),
            Self::BadRequest(message) => json!({"message": message}),
            Self::Gone(reason) => json!({"message": format!("410 Gone - {reason}")}),
            Self::PreconditionFailed => json!({"message": "412 Precondition Failed"}),
            Self::PayloadTooLarge => json!({"message": "413 Request Entity Too Large"}),
            Self::Unavailable(_) => json!({"message": "503 Service Unavailable"}),
            Self::Internal(_) => json!({"message": "500 Internal Server Error"}),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable(detail) | Self::Internal(detail) => {
                write!(f, "{}: {detail}", self.status())
            }
            other => write!(f, "{}: {}", other.status(), other.body()),
        }
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(detail) => tracing::error!(error = %detail, "internal error"),
            Self::Unavailable(detail) => tracing::warn!(error = %detail, "storage unavailable"),
            _ => {}
        }
        json_response(self.status(), &self.body())
    }
}

/// A JSON response with GitLab's content type. Serialising our own entities cannot fail in
/// practice; if it ever did, the client gets a 500 and the log says why.
pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = Response::new(axum::body::Body::from(body));
            *response.status_mut() = status;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(e) => ApiError::internal(format!("serialising response: {e}")).into_response(),
    }
}

/// Model validation errors in the order they were found, rendered as GitLab's
/// `{"attribute": ["message", ...]}`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ValidationErrors(Vec<(String, Vec<String>)>);

impl ValidationErrors {
    pub fn add(&mut self, attribute: &str, message: impl Into<String>) {
        let message = message.into();
        match self.0.iter_mut().find(|(name, _)| name == attribute) {
            Some((_, messages)) => messages.push(message),
            None => self.0.push((attribute.to_owned(), vec![message])),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Rails' `full_messages.to_sentence`: each message behind its humanized attribute, joined
    /// as "a", "a and b", "a, b, and c". GitLab answers newer endpoints' validation failures
    /// this way, as `400 Bad request - <sentence>`.
    pub fn to_sentence(&self) -> String {
        let messages: Vec<String> = self
            .0
            .iter()
            .flat_map(|(attribute, messages)| {
                let mut name = attribute.replace('_', " ");
                if let Some(first) = name.get_mut(..1) {
                    first.make_ascii_uppercase();
                }
                messages.iter().map(move |m| format!("{name} {m}"))
            })
            .collect();
        match messages.as_slice() {
            [] => String::new(),
            [one] => one.clone(),
            [first, second] => format!("{first} and {second}"),
            [init @ .., last] => format!("{}, and {last}", init.join(", ")),
        }
    }

    pub fn into_result(self) -> Result<(), ApiError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self))
        }
    }
}

impl Serialize for ValidationErrors {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (attribute, messages) in &self.0 {
            map.serialize_entry(attribute, messages)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_messages_as_a_sentence() {
        let mut errors = ValidationErrors::default();
        assert_eq!(errors.to_sentence(), "");
        errors.add("tags_list", "can not be empty");
        assert_eq!(errors.to_sentence(), "Tags list can not be empty");
        errors.add("maximum_timeout", "needs to be at least 10 minutes");
        assert_eq!(
            errors.to_sentence(),
            "Tags list can not be empty and Maximum timeout needs to be at least 10 minutes"
        );
        errors.add("tags_list", "is too long");
        assert_eq!(
            errors.to_sentence(),
            "Tags list can not be empty, Tags list is too long, and Maximum timeout needs to be at least 10 minutes"
        );
    }

    #[test]
    fn gitlab_bodies() {
        let cases = [
            (
                ApiError::Unauthorized,
                401,
                r#"{"message":"401 Unauthorized"}"#,
            ),
            (ApiError::Forbidden, 403, r#"{"message":"403 Forbidden"}"#),
            (
                ApiError::forbidden_because("No access granted"),
                403,
                r#"{"message":"403 Forbidden - No access granted"}"#,
            ),
            (
                ApiError::NotFound("Runner"),
                404,
                r#"{"message":"404 Runner Not Found"}"#,
            ),
            (
                ApiError::InvalidParams(vec![
                    "token is missing".into(),
                    "active is invalid".into(),
                ]),
                400,
                r#"{"error":"token is missing, active is invalid"}"#,
            ),
            (
                ApiError::PreconditionFailed,
                412,
                r#"{"message":"412 Precondition Failed"}"#,
            ),
            (
                ApiError::Unavailable("throttled".into()),
                503,
                r#"{"message":"503 Service Unavailable"}"#,
            ),
        ];
        for (error, status, body) in cases {
            assert_eq!(error.status().as_u16(), status);
            assert_eq!(error.body().to_string(), body);
        }
    }

    #[test]
    fn internal_detail_never_reaches_the_body() {
        let error = ApiError::internal("ResourceNotFoundException: table gitlab-runners");
        assert_eq!(
            error.body().to_string(),
            r#"{"message":"500 Internal Server Error"}"#
        );
    }

    #[test]
    fn validation_errors_keep_order_and_group_by_attribute() {
        let mut errors = ValidationErrors::default();
        errors.add("tags_list", "first");
        errors.add("maximum_timeout", "needs to be at least 10 minutes");
        errors.add("tags_list", "second");
        assert_eq!(
            ApiError::Validation(errors).body().to_string(),
            r#"{"message":{"tags_list":["first","second"],"maximum_timeout":["needs to be at least 10 minutes"]}}"#
        );
    }
}
