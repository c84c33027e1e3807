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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
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
    fresh_store_at(client_for(Some(&endpoint()), None).await).await
}

/// A fresh table through a given client (one that goes through a [`StallingProxy`], say).
pub async fn fresh_store_at(client: aws_sdk_dynamodb::Client) -> Store {
    let store = Store::new(client, unique_table_name());
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
        Self::on_store(fresh_store().await, settings, routes)
    }

    /// An app over `store`, which already has its table.
    pub fn on_store(
        store: Store,
        settings: Settings,
        routes: impl FnOnce(AppState) -> Router,
    ) -> Self {
        let settings = Settings {
            table_name: store.table().to_owned(),
            ..settings
        };
        let router = routes(AppState::new(store.clone(), settings.clone()));
        let service = entry_point::<Body>(router, settings.request_deadline);
        Self {
            store,
            settings,
            service: BoxCloneService::new(service),
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

/// A TCP proxy in front of DynamoDB Local that can be made to stall: while stalled it takes
/// requests and never answers, as a database behind a black-holed network does. Connections the
/// client pooled before the stall stall too.
pub struct StallingProxy {
    pub endpoint: String,
    stalled: Arc<AtomicBool>,
}

impl StallingProxy {
    pub async fn start(target: &str) -> Self {
        let target = target
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the proxy");
        let endpoint = format!("http://{}", listener.local_addr().expect("proxy address"));
        let stalled = Arc::new(AtomicBool::new(false));
        let flag = stalled.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, target.clone(), flag.clone()));
            }
        });
        Self { endpoint, stalled }
    }

    pub fn stall(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::SeqCst);
    }
}

/// Forwards one connection until the proxy stalls; then reads and drops what the client sends
/// and never answers, until the client gives up and closes.
async fn relay(client: TcpStream, target: String, stalled: Arc<AtomicBool>) {
    let (mut from_client, mut to_client) = client.into_split();
    let mut buffer = vec![0u8; 64 * 1024];
    let swallow = |mut reader: tokio::net::tcp::OwnedReadHalf, mut buffer: Vec<u8>| async move {
        while matches!(reader.read(&mut buffer).await, Ok(n) if n > 0) {}
    };
    if stalled.load(Ordering::SeqCst) {
        return swallow(from_client, buffer).await;
    }
    let Ok(server) = TcpStream::connect(&target).await else {
        return;
    };
    let (mut from_server, mut to_server) = server.into_split();
    let upstream = async move {
        loop {
            let n = match from_client.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if stalled.load(Ordering::SeqCst) {
                return swallow(from_client, buffer).await;
            }
            if to_server.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    };
    let downstream = async move {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
    };
    tokio::select! {
        () = upstream => {},
        () = downstream => {},
    }
}
