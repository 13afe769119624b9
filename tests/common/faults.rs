//! Fault injection for the conformance suite: a store that fails writes to chosen paths
//! (a crash between two steps of the commit protocol), and an HTTP connector that answers
//! some requests with throttling or server errors before the real store sees them.

use std::{
    fmt,
    ops::Range,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::{
    ClientOptions, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
    client::{
        HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpResponseBody,
        HttpService, ReqwestConnector,
    },
    path::Path,
};

/// A store whose writes under `fail_prefix` fail, as if the process died there.
#[derive(Debug)]
pub struct FailingStore {
    pub inner: Arc<dyn ObjectStore>,
    pub fail_prefix: String,
}

impl fmt::Display for FailingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FailingStore({}, fails {})",
            self.inner, self.fail_prefix
        )
    }
}

impl FailingStore {
    fn check(&self, location: &Path) -> Result<()> {
        if location.as_ref().starts_with(&self.fail_prefix) {
            return Err(object_store::Error::Generic {
                store: "FailingStore",
                source: format!("injected crash before writing {location}").into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for FailingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.check(location)?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.check(location)?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// An HTTP connector that answers every `every`-th request itself with 503 Slow Down or
/// 429 (alternately), before the store sees it; object_store must retry them.
#[derive(Debug, Clone)]
pub struct FlakyConnector {
    pub every: usize,
    pub count: Arc<AtomicUsize>,
    pub injected: Arc<AtomicUsize>,
}

impl FlakyConnector {
    pub fn new(every: usize) -> Self {
        Self {
            every,
            count: Arc::default(),
            injected: Arc::default(),
        }
    }
}

impl HttpConnector for FlakyConnector {
    fn connect(&self, options: &ClientOptions) -> Result<HttpClient> {
        Ok(HttpClient::new(FlakyService {
            inner: ReqwestConnector::default().connect(options)?,
            connector: self.clone(),
        }))
    }
}

#[derive(Debug)]
struct FlakyService {
    inner: HttpClient,
    connector: FlakyConnector,
}

#[async_trait]
impl HttpService for FlakyService {
    async fn call(&self, req: HttpRequest) -> std::result::Result<HttpResponse, HttpError> {
        let n = self.connector.count.fetch_add(1, Ordering::SeqCst) + 1;
        if n.is_multiple_of(self.connector.every) {
            let k = self.connector.injected.fetch_add(1, Ordering::SeqCst);
            let (status, body) = if k.is_multiple_of(2) {
                (
                    503,
                    "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
                )
            } else {
                (429, "<Error><Code>TooManyRequests</Code></Error>")
            };
            let response = http::Response::builder()
                .status(status)
                .body(HttpResponseBody::from(body.to_string()))
                .expect("a valid response");
            return Ok(response);
        }
        self.inner.execute(req).await
    }
}
