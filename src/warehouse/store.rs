//! The object store under a warehouse: built from `[warehouse]` and the environment
//! (local disk, S3 and S3-compatible stores, GCS, Azure), and the healthcheck that tells
//! a person what is wrong with it before any work starts.

use std::{sync::Arc, time::Duration};

use object_store::{
    BackoffConfig, ClientConfigKey, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
    aws::{AmazonS3Builder, AmazonS3ConfigKey},
    azure::MicrosoftAzureBuilder,
    client::HttpConnector,
    gcp::GoogleCloudStorageBuilder,
    path::Path,
    prefix::PrefixStore,
};

use super::{
    Warehouse, WarehouseConfig, WarehouseError, WarehouseLocation,
    config::{RemoteScheme, StoreOptions},
    layout,
};

/// The store of a bucket, configured from `options` and the environment.
pub(super) fn remote_store<C: HttpConnector + Clone>(
    scheme: RemoteScheme,
    bucket: &str,
    prefix: &str,
    options: &StoreOptions,
    retry: RetryConfig,
    timeout: Duration,
    connector: &Option<C>,
) -> object_store::Result<Arc<dyn ObjectStore>> {
    let timeout = format!("{}s", timeout.as_secs().max(1));
    let store: Arc<dyn ObjectStore> = match scheme {
        RemoteScheme::S3 => {
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_retry(retry)
                .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), timeout)
                .with_config(
                    AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                    "5s",
                );
            // Without a region from here or the environment, object_store uses us-east-1.
            if let Some(region) = &options.region {
                builder = builder.with_region(region);
            }
            if let Some(endpoint) = &options.endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            if let Some(allow) = options.allow_http {
                builder = builder.with_allow_http(allow);
            }
            if let Some(virtual_hosted) = options.virtual_hosted_style {
                builder = builder.with_virtual_hosted_style_request(virtual_hosted);
            }
            if let Some(connector) = connector {
                builder = builder.with_http_connector(connector.clone());
            }
            Arc::new(builder.build()?)
        }
        RemoteScheme::Gcs => {
            let mut builder = GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(bucket)
                .with_retry(retry);
            if let Some(connector) = connector {
                builder = builder.with_http_connector(connector.clone());
            }
            Arc::new(builder.build()?)
        }
        RemoteScheme::Azure => {
            let mut builder = MicrosoftAzureBuilder::from_env()
                .with_container_name(bucket)
                .with_retry(retry);
            if let Some(connector) = connector {
                builder = builder.with_http_connector(connector.clone());
            }
            Arc::new(builder.build()?)
        }
    };
    Ok(if prefix.is_empty() {
        store
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    })
}

/// object_store's own HTTP client (a stand-in type for "no connector given").
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct DefaultConnector;

impl HttpConnector for DefaultConnector {
    fn connect(
        &self,
        options: &object_store::ClientOptions,
    ) -> object_store::Result<object_store::client::HttpClient> {
        object_store::client::ReqwestConnector::default().connect(options)
    }
}

/// Retries of the store's requests: capped exponential backoff.
pub(super) fn retry_config(options: &StoreOptions) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            base: 2.0,
        },
        max_retries: options.max_retries,
        retry_timeout: options.retry_timeout,
    }
}

/// Retries of the healthcheck: few, so a wrong setting fails fast.
pub(super) fn probe_retry_config(options: &StoreOptions) -> RetryConfig {
    RetryConfig {
        max_retries: options.max_retries.min(2),
        retry_timeout: Duration::from_secs(10),
        backoff: BackoffConfig::default(),
    }
}

impl Warehouse {
    /// Opens the configured warehouse for commands that only read (`validate-config`,
    /// `status`, `to-ndjson`): unlike [`open`](Self::open) it creates nothing. A local
    /// directory that does not exist is [`WarehouseError::Missing`] (the caller says
    /// what that means: nothing to read, or a warehouse the first run will create);
    /// object stores are opened as usual (nothing is written until a command writes).
    pub fn open_existing(config: &WarehouseConfig) -> Result<Self, WarehouseError> {
        if let WarehouseLocation::Local(path) = &config.location
            && !path.is_dir()
        {
            return Err(WarehouseError::Missing {
                root: config.location.to_string(),
            });
        }
        Self::open(config)
    }

    /// Checks, before any work, that the warehouse can be listed, written and cleaned:
    /// lists `_runs/`, puts a probe object and deletes it. Wrong credentials, a missing
    /// bucket or an unreachable endpoint fail here with what to check.
    pub async fn healthcheck(&self) -> Result<(), WarehouseError> {
        self.check(true).await
    }

    /// The healthcheck of commands that only read: lists `_runs/`, writes nothing (so
    /// read-only credentials pass).
    pub async fn healthcheck_read_only(&self) -> Result<(), WarehouseError> {
        self.check(false).await
    }

    async fn check(&self, write: bool) -> Result<(), WarehouseError> {
        let unusable = |error: object_store::Error| {
            let text = error_chain(&error);
            let (problem, hint) = diagnose(&error, &text);
            WarehouseError::Unusable {
                root: self.root.clone(),
                problem,
                detail: short_detail(&text),
                hint,
            }
        };
        self.probe
            .list_with_delimiter(Some(&Path::from(layout::RUNS_DIR)))
            .await
            .map_err(unusable)?;
        if !write {
            return Ok(());
        }
        let probe = layout::probe_path();
        self.probe
            .put(
                &probe,
                PutPayload::from_static(b"fhir-ingest healthcheck\n"),
            )
            .await
            .map_err(unusable)?;
        self.probe.delete(&probe).await.map_err(unusable)?;
        Ok(())
    }
}

/// An error and all its causes, as one text (object_store's errors repeat their
/// causes in their own text: each is shown once).
fn error_chain(error: &object_store::Error) -> String {
    crate::message::chain(error)
}

/// The gist of a store error: the S3-style error code and HTTP status, or the innermost
/// cause (`Connection refused`).
fn short_detail(text: &str) -> String {
    let between = |start: &str, end: &str| {
        let from = text.find(start)? + start.len();
        let len = text[from..].find(end)?;
        Some(text[from..from + len].to_owned())
    };
    let status = between("status code: ", ":");
    match (status, between("<Code>", "</Code>")) {
        (Some(status), Some(code)) => format!("HTTP {status}, {code}"),
        (Some(status), None) => format!("HTTP {status}"),
        (None, Some(code)) => code,
        (None, None) => text.rsplit(": ").next().unwrap_or(text).to_owned(),
    }
}

/// Where object_store looks for AWS credentials, in its order; the instance metadata
/// service is the last, so its failure is what a user without credentials sees.
const NO_CREDENTIALS_HINT: &str = "give credentials in one of the places looked in, in order: \
    AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (with AWS_SESSION_TOKEN for temporary ones); \
    web identity (AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN); container credentials \
    (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, or AWS_CONTAINER_CREDENTIALS_FULL_URI with \
    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE); the EC2 instance metadata service (an instance \
    profile; AWS_METADATA_ENDPOINT to use another address). ~/.aws/credentials and \
    AWS_PROFILE are not read";

/// Paths of the EC2 instance metadata service (IMDSv2 token, IMDSv1 role), which only
/// the credential lookup asks.
const INSTANCE_METADATA_PATHS: &[&str] = &["/latest/api/token", "/latest/meta-data/"];

const CREDENTIALS_HINT: &str = "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the role / instance profile) and the bucket policy";

/// What a healthcheck failure means, and what to check.
fn diagnose(error: &object_store::Error, text: &str) -> (&'static str, &'static str) {
    use object_store::Error as E;
    let says = |words: &[&str]| words.iter().any(|w| text.contains(w));
    match error {
        _ if says(&["NoSuchBucket", "ContainerNotFound"]) => (
            "the bucket does not exist",
            "create it, or check the bucket name in warehouse.url and warehouse.endpoint / warehouse.region",
        ),
        E::Unauthenticated { .. } | E::PermissionDenied { .. } => {
            ("the store refused the credentials", CREDENTIALS_HINT)
        }
        _ if says(&[
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "AccessDenied",
            "403 Forbidden",
            "401 Unauthorized",
        ]) =>
        {
            ("the store refused the credentials", CREDENTIALS_HINT)
        }
        _ if says(&["URL scheme is not allowed"]) => (
            "the endpoint is plain http://, which is not allowed",
            "use https://, or set warehouse.allow_http = true (or AWS_ALLOW_HTTP=true) for a local test store",
        ),
        _ if says(INSTANCE_METADATA_PATHS) => (
            "no credentials were found (the last place looked, the instance metadata \
             service, did not give any)",
            NO_CREDENTIALS_HINT,
        ),
        E::NotFound { .. } => (
            "the bucket or prefix was not found",
            "create the bucket, or check warehouse.url and warehouse.endpoint / warehouse.region",
        ),
        _ if says(&["error sending request", "Connect", "dns error", "timed out"]) => (
            "the endpoint cannot be reached",
            "check warehouse.endpoint / AWS_ENDPOINT_URL, the network, and warehouse.allow_http for http:// endpoints",
        ),
        _ => (
            "a probe request failed",
            "check warehouse.url, the endpoint and the credentials",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 9, item 11): no credentials at all is not "the endpoint cannot
    /// be reached" (it is the instance metadata lookup failing).
    #[test]
    fn no_credentials_is_diagnosed_as_such() {
        let text = "Generic S3 error: Error performing PUT http://169.254.169.254/latest/api/token \
            in 4.3s, after 2 retries, max_retries: 2, retry_timeout: 10s  - HTTP error: error \
            sending request: client error (Connect): tcp connect error: Connection refused (os error 111)";
        let error = object_store::Error::Generic {
            store: "S3",
            source: text.into(),
        };
        let (problem, hint) = diagnose(&error, text);
        assert!(
            problem.starts_with("no credentials were found"),
            "{problem}"
        );
        for place in [
            "AWS_ACCESS_KEY_ID",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "instance metadata",
        ] {
            assert!(hint.contains(place), "{place} missing from {hint}");
        }
        let elsewhere = "Generic S3 error: Error performing GET http://127.0.0.1:1/b in 1s - \
            HTTP error: error sending request: client error (Connect)";
        let (problem, _) = diagnose(&error, elsewhere);
        assert_eq!(problem, "the endpoint cannot be reached");
    }

    #[test]
    fn store_errors_are_shortened() {
        let text = "Generic S3 error: Error performing GET http://h/b in 14ms - Server returned non-2xx status code: 403 Forbidden: <?xml?><Error><Code>SignatureDoesNotMatch</Code></Error>";
        assert_eq!(
            short_detail(text),
            "HTTP 403 Forbidden, SignatureDoesNotMatch"
        );
        assert_eq!(
            short_detail("a: b: tcp connect error: Connection refused (os error 111)"),
            "Connection refused (os error 111)"
        );
    }
}
