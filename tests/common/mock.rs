//! In-process mock HTTP server for the Bulk Data client tests (axum on 127.0.0.1:0).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, Response, StatusCode};
use axum::routing::any;

/// One request as the mock saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

type Handler = dyn Fn(&Recorded, &Ctx) -> Response<Body> + Send + Sync;

/// What a handler knows besides the request: the server's own URL and how often this
/// method+path was requested before (0 for the first time).
pub struct Ctx {
    pub base: String,
    pub nth: usize,
}

#[derive(Clone)]
pub struct Mock {
    pub base: String,
    log: Arc<Mutex<Vec<Recorded>>>,
}

impl Mock {
    /// Starts a server answering every request with `handler`.
    pub async fn start(
        handler: impl Fn(&Recorded, &Ctx) -> Response<Body> + Send + Sync + 'static,
    ) -> Mock {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let log: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let (log2, base2) = (log.clone(), base.clone());
        let app = Router::new().fallback(any(move |req: Request<Body>| {
            let (log, handler, base) = (log2.clone(), handler.clone(), base2.clone());
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 10 << 20)
                    .await
                    .unwrap_or_default();
                let rec = Recorded {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_owned(),
                    query: parts.uri.query().map(str::to_owned),
                    headers: parts.headers,
                    body,
                    at: Instant::now(),
                };
                let nth = {
                    let mut l = log.lock().expect("lock");
                    let nth = l
                        .iter()
                        .filter(|r| r.method == rec.method && r.path == rec.path)
                        .count();
                    l.push(rec.clone());
                    nth
                };
                handler(&rec, &Ctx { base, nth })
            }
        }));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Mock { base, log }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().expect("lock").clone()
    }

    pub fn requests_to(&self, method: &str, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path == path)
            .collect()
    }
}

pub fn json(status: u16, v: serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/fhir+json")
        .body(Body::from(v.to_string()))
        .expect("response")
}

pub fn status(code: u16) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).expect("status"))
        .body(Body::empty())
        .expect("response")
}

pub fn with_headers(code: u16, headers: &[(&str, &str)]) -> Response<Body> {
    let mut b = Response::builder().status(code);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::empty()).expect("response")
}

pub fn ndjson(body: impl Into<Body>) -> Response<Body> {
    Response::builder()
        .status(200)
        .header("content-type", "application/fhir+ndjson")
        .body(body.into())
        .expect("response")
}

pub fn accepted(status_url: &str) -> Response<Body> {
    with_headers(202, &[("content-location", status_url)])
}

/// A response announcing `total` bytes that sends `first` and then breaks the connection.
pub fn cut_after(
    first: Vec<u8>,
    total: usize,
    code: u16,
    extra: &[(&str, String)],
) -> Response<Body> {
    let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from(first))]).chain(
        futures::stream::once(async {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            Err(std::io::Error::other("cut"))
        }),
    );
    let mut b = Response::builder()
        .status(code)
        .header("content-type", "application/fhir+ndjson")
        .header("content-length", total.to_string());
    for (k, v) in extra {
        b = b.header(*k, v.as_str());
    }
    b.body(Body::from_stream(stream)).expect("response")
}

use futures::StreamExt;
