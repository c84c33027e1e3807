//! Test support for everything that touches storage: each [`TestApp`] gets its own table on the
//! DynamoDB Local that `infra/test.sh` starts (`DYNAMODB_ENDPOINT`), created from
//! `template.yaml`, and sends requests through the same entry point a Lambda function runs.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request};
use http_body_util::BodyExt;
use runners_shared::admin::fixtures::Fixture;
use runners_shared::admin::{client_for, schema};
use runners_shared::http::{PeerAddr, entry_point};
use runners_shared::metrics::DynamoUsage;
use runners_shared::{AppState, Settings, Store};
use serde_json::Value;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use tower::ServiceExt;
use tower::util::BoxCloneService;

type Service = BoxCloneService<Request<Body>, axum::response::Response, Infallible>;

pub struct TestApp {
    pub store: Store,
    pub settings: Settings,
    service: Service,
}

/// The DynamoDB Local endpoint tests use. Tests that need storage fail loudly without it.
pub fn endpoint() -> String {
    std::env::var("DYNAMODB_ENDPOINT")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL_DYNAMODB"))
        .expect("DYNAMODB_ENDPOINT is not set: run the tests with infra/test.sh, which starts DynamoDB Local")
}

fn unique_table_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "test-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A store on a fresh table of its own.
pub async fn fresh_store() -> Store {
    let store = Store::new(
        client_for(Some(&endpoint()), None).await,
        unique_table_name(),
    );
    schema::create_table(&store)
        .await
        .expect("creating the test table");
    store
}

impl TestApp {
    pub async fn new(routes: impl FnOnce(AppState) -> Router) -> Self {
        Self::with_settings(Settings::default(), routes).await
    }

    pub async fn with_settings(
        settings: Settings,
        routes: impl FnOnce(AppState) -> Router,
    ) -> Self {
        let store = fresh_store().await;
        let settings = Settings {
            table_name: store.table().to_owned(),
            ..settings
        };
        let router = routes(AppState::new(store.clone(), settings.clone()));
        Self {
            store,
            settings,
            service: BoxCloneService::new(entry_point::<Body>(router)),
        }
    }

    /// Imports a fixture (operations.md format) into this app's table.
    pub async fn seed(&self, fixture: Value) {
        let fixture = Fixture::parse(&fixture.to_string())
            .unwrap_or_else(|problems| panic!("bad fixture: {problems:#?}"));
        fixture
            .import(&self.store)
            .await
            .expect("importing the fixture");
    }

    pub fn request(&self, method: Method, uri: &str) -> TestRequest<'_> {
        TestRequest {
            app: self,
            builder: Request::builder().method(method).uri(uri),
            body: Body::empty(),
            peer: Some([127, 0, 0, 1].into()),
        }
    }

    pub fn get(&self, uri: &str) -> TestRequest<'_> {
        self.request(Method::GET, uri)
    }

    pub fn post(&self, uri: &str) -> TestRequest<'_> {
        self.request(Method::POST, uri)
    }

    pub fn put(&self, uri: &str) -> TestRequest<'_> {
        self.request(Method::PUT, uri)
    }

    pub fn delete(&self, uri: &str) -> TestRequest<'_> {
        self.request(Method::DELETE, uri)
    }
}

pub struct TestRequest<'a> {
    app: &'a TestApp,
    builder: axum::http::request::Builder,
    body: Body,
    peer: Option<IpAddr>,
}

impl TestRequest<'_> {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    pub fn json(mut self, body: Value) -> Self {
        self.builder = self.builder.header("content-type", "application/json");
        self.body = Body::from(body.to_string());
        self
    }

    pub fn form(mut self, body: &str) -> Self {
        self.builder = self
            .builder
            .header("content-type", "application/x-www-form-urlencoded");
        self.body = Body::from(body.to_owned());
        self
    }

    pub fn raw(mut self, content_type: &str, body: impl Into<Body>) -> Self {
        self.builder = self.builder.header("content-type", content_type);
        self.body = body.into();
        self
    }

    pub fn peer(mut self, ip: IpAddr) -> Self {
        self.peer = Some(ip);
        self
    }

    pub async fn send(self) -> TestResponse {
        let mut request = self.builder.body(self.body).expect("a valid test request");
        if let Some(ip) = self.peer {
            request.extensions_mut().insert(PeerAddr(ip));
        }
        let response = match self.app.service.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let usage = response
            .extensions()
            .get::<DynamoUsage>()
            .copied()
            .unwrap_or_default();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("reading the response body")
            .to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("non-JSON body: {}", String::from_utf8_lossy(&bytes)))
        };
        TestResponse {
            status,
            headers,
            body,
            usage,
        }
    }
}

#[derive(Debug)]
pub struct TestResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub usage: DynamoUsage,
}

impl TestResponse {
    /// Asserts the status, printing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
