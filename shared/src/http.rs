//! What every function's entry point wraps around its router: trailing-slash tolerance, GitLab's
//! JSON 404/405, the request log line with its DynamoDB cost, and the client address.

use crate::config::Settings;
use crate::error::{ApiError, json_response};
use crate::metrics;
use crate::store::Store;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// Shared by every handler: built once per process (in `main`), cloned per request.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub settings: Arc<Settings>,
}

impl AppState {
    pub fn new(store: Store, settings: Settings) -> Self {
        Self {
            store,
            settings: Arc::new(settings),
        }
    }
}

/// The service a function runs (under `lambda_http::run`) or `runnerctl serve` mounts: the
/// function's routes plus GitLab's JSON answers for unknown routes and methods, with a trailing
/// slash meaning the same route (never a redirect), and a 503 for a request still unanswered
/// at `deadline` (see [`Settings::request_deadline`]).
pub fn entry_point<B>(
    routes: Router,
    deadline: Duration,
) -> impl tower::Service<Request<B>, Response = Response, Error = Infallible, Future: Send + 'static>
+ Clone
+ Send
+ 'static
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let router = routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    tower::service_fn(move |request: Request<B>| {
        let router = router.clone();
        async move { Ok::<_, Infallible>(handle(router, request, deadline).await) }
    })
}

async fn not_found() -> Response {
    json_response(StatusCode::NOT_FOUND, &json!({"error": "404 Not Found"}))
}

async fn method_not_allowed() -> Response {
    json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &json!({"error": "405 Method Not Allowed"}),
    )
}

async fn handle<B>(router: Router, mut request: Request<B>, deadline: Duration) -> Response
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    if let Some(uri) = without_trailing_slash(request.uri()) {
        *request.uri_mut() = uri;
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let (result, usage) =
        metrics::scope(tokio::time::timeout(deadline, router.oneshot(request))).await;
    let mut response = match result {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        // Dropping the handler cancels its pending calls; each write is one conditional item
        // write or one transaction, so none is left half done.
        Err(_elapsed) => ApiError::Unavailable(format!(
            "no answer within the request deadline of {} ms",
            deadline.as_millis()
        ))
        .into_response(),
    };
    // The path only: query strings may carry `private_token`.
    tracing::info!(
        %method,
        path,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        ddb_calls = usage.calls,
        ddb_round_trips = usage.round_trips,
        "request"
    );
    response.extensions_mut().insert(usage);
    response
}

fn without_trailing_slash(uri: &Uri) -> Option<Uri> {
    let path = uri.path();
    if path.len() <= 1 || !path.ends_with('/') {
        return None;
    }
    let trimmed = path.trim_end_matches('/');
    let path_and_query = match uri.query() {
        Some(query) => format!("{}?{query}", if trimmed.is_empty() { "/" } else { trimmed }),
        None => (if trimmed.is_empty() { "/" } else { trimmed }).to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = path_and_query.parse().ok();
    Uri::from_parts(parts).ok()
}

/// The client's address as the gateway saw it: API Gateway's `sourceIp`, else the socket peer
/// (local serving). `X-Forwarded-For` only when the operator says a trusted proxy sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIp(pub Option<String>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(client_ip(parts, state.settings.trust_forwarded_for)))
    }
}

/// GitLab's limit on a runner's `ip_address`; a longer forwarded value is ignored.
const MAX_IP_ADDRESS_CHARS: usize = 1024;

pub fn client_ip(parts: &Parts, trust_forwarded_for: bool) -> Option<String> {
    if trust_forwarded_for {
        let forwarded = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        if let Some(first) = forwarded
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= MAX_IP_ADDRESS_CHARS)
        {
            return Some(first.to_owned());
        }
    }
    if let Some(lambda_http::request::RequestContext::ApiGatewayV2(context)) =
        parts
            .extensions
            .get::<lambda_http::request::RequestContext>()
        && let Some(ip) = context.http.source_ip.as_ref().filter(|ip| !ip.is_empty())
    {
        return Some(ip.clone());
    }
    parts
        .extensions
        .get::<PeerAddr>()
        .map(|PeerAddr(ip)| ip.to_string())
}

/// The socket peer of a locally served request; `runnerctl serve` inserts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub IpAddr);

/// A function's whole `main`: logging, settings and the DynamoDB client built once (no network
/// call before the first request), then the function's routes under the Lambda runtime.
pub async fn run_lambda(routes: fn(AppState) -> Router) -> Result<(), lambda_http::Error> {
    init_lambda_logging();
    let settings = Settings::from_env();
    let store = Store::for_lambda(settings.table_name.clone(), settings.storage_timeouts)?;
    let deadline = settings.request_deadline;
    lambda_http::run(entry_point(
        routes(AppState::new(store, settings)),
        deadline,
    ))
    .await
}

/// Logging for a Lambda function: one JSON object per line (CloudWatch adds the time), level
/// from `RUST_LOG` (default `info`).
pub fn init_lambda_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A second call (tests) finds a subscriber already set; that is fine.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_target(false)
        .without_time()
        .with_current_span(false)
        .try_init();
}

/// The base URL clients use: the configured external URL, else the request's scheme
/// (`X-Forwarded-Proto`, as API Gateway sets it) and `Host`.
pub fn base_url(headers: &axum::http::HeaderMap, settings: &Settings) -> String {
    if let Some(url) = &settings.external_url {
        return url.clone();
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let scheme = header("x-forwarded-proto")
        .and_then(|v| v.split(',').next())
        .map_or("http", str::trim);
    let host = header("host").unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// A list answer: the JSON array with GitLab's pagination headers, whose links keep every query
/// parameter the client sent.
pub fn paginated<T: serde::Serialize>(
    items: &[T],
    info: &crate::pagination::PageInfo,
    base_url: &str,
    uri: &Uri,
) -> Response {
    let mut response = json_response(StatusCode::OK, items);
    // The extractor already parsed this query successfully; the same text cannot fail now.
    let query = crate::params::Params::from_query(uri.query().unwrap_or("")).unwrap_or_default();
    let url = format!("{base_url}{}", uri.path());
    for (name, value) in info.headers(&url, query.as_map()) {
        if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// A page of jobs (`GET /runners/:id/jobs`, `GET /projects/:id/jobs`) as GitLab's `Job[]` with
/// its pagination headers.
pub fn job_page_response(
    jobs: &[crate::store::directory::Job],
    scanned: crate::store::lists::Scanned<i64>,
    page: crate::pagination::PageRequest,
    headers: &axum::http::HeaderMap,
    settings: &Settings,
    uri: &Uri,
) -> Response {
    let (_, info) = page.cut(scanned.matches, scanned.exhausted);
    job_entities_response(jobs, &info, headers, settings, uri)
}

/// A page of jobs whose position and total are known.
pub fn job_entities_response(
    jobs: &[crate::store::directory::Job],
    info: &crate::pagination::PageInfo,
    headers: &axum::http::HeaderMap,
    settings: &Settings,
    uri: &Uri,
) -> Response {
    let base = base_url(headers, settings);
    let now = crate::time::Timestamp::now();
    let entities: Vec<crate::entities::JobEntity<'_>> = jobs
        .iter()
        .map(|job| crate::entities::JobEntity::new(job, now, &base))
        .collect();
    paginated(&entities, info, &base, uri)
}

/// The matched route's path parameters, percent-decoded. Never a rejection: a parameter that is
/// not UTF-8 once decoded (`/runners/%FF`) reads as `None`, so that a handler authenticates first
/// and then gives GitLab's answer for it (`id is invalid`, `404 Project Not Found`), as JSON.
/// Each parameter is one whole segment of the raw path, so `%2F` in a project path stays inside
/// its parameter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathParams(Vec<(String, Option<String>)>);

impl PathParams {
    /// The parameters of `path` under the route `template` (`/api/v4/runners/{id}`).
    pub fn from_route(template: &str, path: &str) -> Self {
        let params = template
            .split('/')
            .zip(path.split('/'))
            .filter_map(|(pattern, segment)| {
                let name = pattern.strip_prefix('{')?.strip_suffix('}')?;
                let value = percent_encoding::percent_decode_str(segment)
                    .decode_utf8()
                    .ok()
                    .map(std::borrow::Cow::into_owned);
                Some((name.to_owned(), value))
            })
            .collect();
        Self(params)
    }

    /// The decoded value of `name`; `None` when absent or not UTF-8.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, value)| value.as_deref())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PathParams {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let template = parts
            .extensions
            .get::<axum::extract::MatchedPath>()
            .map_or("", axum::extract::MatchedPath::as_str);
        Ok(Self::from_route(template, parts.uri.path()))
    }
}

/// A numeric path id (`:id`), else GitLab's `400 {"error": "<name> is invalid"}`.
pub fn path_id(raw: Option<&str>, name: &str) -> Result<i64, ApiError> {
    raw.and_then(|raw| raw.parse::<i64>().ok())
        .ok_or_else(|| ApiError::InvalidParams(vec![format!("{name} is invalid")]))
}

/// The `If-Unmodified-Since` header, if it parses.
pub fn if_unmodified_since(headers: &axum::http::HeaderMap) -> Option<crate::time::Timestamp> {
    headers
        .get(axum::http::header::IF_UNMODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::time::Timestamp::parse_http)
}

impl IntoResponse for crate::entities::RunnerRegistrationDetails {
    fn into_response(self) -> Response {
        json_response(StatusCode::OK, &self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_params_decode_whole_segments_and_never_reject() {
        let params = PathParams::from_route(
            "/api/v4/projects/{id}/runners/{runner_id}",
            "/api/v4/projects/group%2Fsub%2Fproject/runners/%FF",
        );
        assert_eq!(params.get("id"), Some("group/sub/project"));
        assert_eq!(params.get("runner_id"), None, "not UTF-8");
        assert_eq!(params.get("missing"), None);
        let params = PathParams::from_route("/api/v4/runners/{id}", "/api/v4/runners/%E2%9C%93");
        assert_eq!(params.get("id"), Some("\u{2713}"));
        assert!(matches!(
            path_id(params.get("id"), "id"),
            Err(ApiError::InvalidParams(problems)) if problems == ["id is invalid"]
        ));
        assert_eq!(path_id(Some("42"), "id").unwrap(), 42);
    }

    #[tokio::test]
    async fn a_request_past_its_deadline_is_a_json_503() {
        let stalled = Router::new().route(
            "/api/v4/stall",
            axum::routing::get(std::future::pending::<Response>),
        );
        let service = entry_point::<axum::body::Body>(stalled, Duration::from_millis(50));
        let request = Request::get("/api/v4/stall")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(5), service.oneshot(request))
            .await
            .expect("the deadline answers, the test does not time out")
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&body[..], br#"{"message":"503 Service Unavailable"}"#);
    }

    #[test]
    fn trailing_slashes() {
        let trimmed = without_trailing_slash(&"/api/v4/runners/?a=1".parse().unwrap()).unwrap();
        assert_eq!(trimmed.to_string(), "/api/v4/runners?a=1");
        assert_eq!(
            without_trailing_slash(&"/api/v4/runners//".parse().unwrap())
                .unwrap()
                .path(),
            "/api/v4/runners"
        );
        assert_eq!(
            without_trailing_slash(&"/api/v4/runners".parse().unwrap()),
            None
        );
        assert_eq!(without_trailing_slash(&"/".parse().unwrap()), None);
    }

    fn parts(forwarded: Option<&str>) -> Parts {
        let mut builder = Request::builder().uri("/");
        if let Some(f) = forwarded {
            builder = builder.header("x-forwarded-for", f);
        }
        let (mut parts, ()) = builder.body(()).unwrap().into_parts();
        parts
            .extensions
            .insert(PeerAddr(IpAddr::from([127, 0, 0, 9])));
        parts
    }

    #[test]
    fn forwarded_for_only_when_trusted() {
        assert_eq!(
            client_ip(&parts(Some("123.111.123.111, 10.0.0.1")), false).as_deref(),
            Some("127.0.0.9")
        );
        assert_eq!(
            client_ip(&parts(Some("123.111.123.111, 10.0.0.1")), true).as_deref(),
            Some("123.111.123.111")
        );
        assert_eq!(client_ip(&parts(None), true).as_deref(), Some("127.0.0.9"));
    }
}
