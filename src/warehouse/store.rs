//! The object store under a warehouse: built from `[warehouse]` and the environment
//! (local disk, S3 and S3-compatible stores, GCS, Azure), and the healthcheck that tells
//! a person what is wrong with it before any work starts.

use std::{sync::Arc, time::Duration};

use object_store::{
    BackoffConfig, ClientConfigKey, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
    aws::{AmazonS3Builder, AmazonS3ConfigKey},
    azure::{AzureConfigKey, MicrosoftAzureBuilder},
    client::HttpConnector,
    gcp::{GoogleCloudStorageBuilder, GoogleConfigKey},
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
                .with_config(
                    AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                    &timeout,
                )
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
                .with_retry(retry)
                .with_config(GoogleConfigKey::Client(ClientConfigKey::Timeout), &timeout)
                .with_config(
                    GoogleConfigKey::Client(ClientConfigKey::ConnectTimeout),
                    "5s",
                );
            if let Some(connector) = connector {
                builder = builder.with_http_connector(connector.clone());
            }
            Arc::new(builder.build()?)
        }
        RemoteScheme::Azure => {
            let mut builder = MicrosoftAzureBuilder::from_env()
                .with_container_name(bucket)
                .with_retry(retry)
                .with_config(AzureConfigKey::Client(ClientConfigKey::Timeout), &timeout)
                .with_config(
                    AzureConfigKey::Client(ClientConfigKey::ConnectTimeout),
                    "5s",
                );
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
            let (problem, hint) = diagnose(&error, &text, self.hints);
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
        // A local store leaves the probe's directory behind. remove_dir takes only an
        // empty one: a concurrent healthcheck's probe keeps it, and a put recreates it.
        if let Some(dir) = &self.local_dir {
            let _ = std::fs::remove_dir(dir.join(layout::PROBE_DIR));
        }
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

/// What the healthcheck tells a person about one kind of store: its words for a bucket,
/// and where its client looks for credentials and the endpoint.
#[derive(Debug)]
pub(super) struct StoreHints {
    /// The problem when the bucket (container) does not exist.
    missing_bucket: &'static str,
    /// What to check then.
    missing_bucket_hint: &'static str,
    /// What to check when the store refuses the credentials.
    credentials: &'static str,
    /// Paths only the last credential lookup asks (an instance metadata service): an
    /// error naming one means no credentials were found anywhere.
    metadata_paths: &'static [&'static str],
    /// Where object_store looks for credentials, in its order.
    no_credentials: &'static str,
    /// What to check when the endpoint cannot be reached.
    unreachable: &'static str,
    /// What to do about a plain http:// endpoint.
    plain_http: &'static str,
}

impl StoreHints {
    /// The hints of `scheme`; a local directory (`None`) gets the S3 ones, which its
    /// errors (I/O, not HTTP) never reach but the last.
    pub(super) fn of(scheme: Option<RemoteScheme>) -> &'static Self {
        match scheme {
            Some(RemoteScheme::Azure) => &AZURE_HINTS,
            Some(RemoteScheme::Gcs) => &GCS_HINTS,
            Some(RemoteScheme::S3) | None => &S3_HINTS,
        }
    }
}

static S3_HINTS: StoreHints = StoreHints {
    missing_bucket: "the bucket does not exist",
    missing_bucket_hint: "create it, or check the bucket name in warehouse.url and \
        warehouse.endpoint / warehouse.region",
    credentials: "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the role / instance \
        profile) and the bucket policy",
    // The EC2 instance metadata service (IMDSv2 token, IMDSv1 role).
    metadata_paths: &["/latest/api/token", "/latest/meta-data/"],
    no_credentials: "give credentials in one of the places looked in, in order: \
        AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (with AWS_SESSION_TOKEN for temporary \
        ones); web identity (AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN); container \
        credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, or \
        AWS_CONTAINER_CREDENTIALS_FULL_URI with AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE); the \
        EC2 instance metadata service (an instance profile; AWS_METADATA_ENDPOINT to use \
        another address). ~/.aws/credentials and AWS_PROFILE are not read",
    unreachable: "check warehouse.endpoint / AWS_ENDPOINT_URL, the network, and \
        warehouse.allow_http for http:// endpoints",
    plain_http: "use https://, or set warehouse.allow_http = true (or AWS_ALLOW_HTTP=true) \
        for a local test store",
};

static AZURE_HINTS: StoreHints = StoreHints {
    missing_bucket: "the container does not exist",
    missing_bucket_hint: "create it, or check the container name in warehouse.url and the \
        storage account (AZURE_STORAGE_ACCOUNT_NAME)",
    credentials: "check AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY or \
        AZURE_STORAGE_SAS_KEY (or the identity's role on the container, such as Storage Blob \
        Data Contributor)",
    // The Azure instance metadata service of managed identities.
    metadata_paths: &["/metadata/identity/oauth2/token"],
    no_credentials: "give credentials in one of the places looked in, in order: \
        AZURE_STORAGE_TOKEN (a bearer token); AZURE_STORAGE_ACCOUNT_KEY; workload identity \
        (AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE); a service \
        principal (AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_TENANT_ID); \
        AZURE_STORAGE_SAS_KEY; the Azure CLI's login (AZURE_USE_AZURE_CLI=true); a managed \
        identity (the instance metadata service; AZURE_MSI_ENDPOINT to use another address)",
    unreachable: "check AZURE_STORAGE_ACCOUNT_NAME (the host is \
        <account>.blob.core.windows.net) or AZURE_STORAGE_ENDPOINT, the network, and for \
        Azurite AZURE_STORAGE_USE_EMULATOR with AZURITE_BLOB_STORAGE_URL",
    plain_http: "use https://, or set AZURE_ALLOW_HTTP=true for a local test store",
};

static GCS_HINTS: StoreHints = StoreHints {
    missing_bucket: "the bucket does not exist",
    missing_bucket_hint: "create it, or check the bucket name in warehouse.url",
    credentials: "check the service account (GOOGLE_SERVICE_ACCOUNT, \
        GOOGLE_SERVICE_ACCOUNT_KEY or GOOGLE_APPLICATION_CREDENTIALS) and its roles on the \
        bucket (such as Storage Object Admin)",
    // The GCE metadata server.
    metadata_paths: &["/computeMetadata/"],
    no_credentials: "give credentials in one of the places looked in, in order: \
        GOOGLE_SERVICE_ACCOUNT (a key file) or GOOGLE_SERVICE_ACCOUNT_KEY (its JSON); \
        GOOGLE_APPLICATION_CREDENTIALS (or gcloud's application default credentials); the \
        GCE metadata server (the instance's service account)",
    unreachable: "check the network (and GOOGLE_BASE_URL if set)",
    plain_http: "use https://, or set GOOGLE_ALLOW_HTTP=true for a local test store",
};

/// What a healthcheck failure means, and what to check, in the words of `hints`' store.
fn diagnose(
    error: &object_store::Error,
    text: &str,
    hints: &StoreHints,
) -> (&'static str, &'static str) {
    use object_store::Error as E;
    let says = |words: &[&str]| words.iter().any(|w| text.contains(w));
    match error {
        _ if says(&["NoSuchBucket", "ContainerNotFound"]) => {
            (hints.missing_bucket, hints.missing_bucket_hint)
        }
        _ if says(&[
            "InvalidBucketName",
            "InvalidResourceName",
            "OutOfRangeInput",
        ]) =>
        {
            (
                "the bucket (container) name is not valid",
                "use 3 to 63 lowercase letters, digits and hyphens (dots too on S3 and GCS), \
             starting and ending with a letter or digit",
            )
        }
        E::Unauthenticated { .. } | E::PermissionDenied { .. } => {
            ("the store refused the credentials", hints.credentials)
        }
        _ if says(&[
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "AccessDenied",
            "AuthorizationFailure",
            "AuthenticationFailed",
            "403 Forbidden",
            "401 Unauthorized",
        ]) =>
        {
            ("the store refused the credentials", hints.credentials)
        }
        _ if says(&["URL scheme is not allowed"]) => (
            "the endpoint is plain http://, which is not allowed",
            hints.plain_http,
        ),
        _ if says(hints.metadata_paths) => (
            "no credentials were found (the last place looked, the instance metadata \
             service, did not give any)",
            hints.no_credentials,
        ),
        E::NotFound { .. } => (
            "the bucket or prefix was not found",
            hints.missing_bucket_hint,
        ),
        _ if says(&["error sending request", "Connect", "dns error", "timed out"]) => {
            ("the endpoint cannot be reached", hints.unreachable)
        }
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
        let (problem, hint) = diagnose(&error, text, &S3_HINTS);
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
        let (problem, _) = diagnose(&error, elsewhere, &S3_HINTS);
        assert_eq!(problem, "the endpoint cannot be reached");
    }

    /// Regression: Azure's errors were explained in S3's words (AWS_ACCESS_KEY_ID, "the
    /// bucket", warehouse.endpoint).
    #[test]
    fn azure_errors_are_explained_in_azure_words() {
        let generic = |text: &str| object_store::Error::Generic {
            store: "MicrosoftAzure",
            source: text.to_owned().into(),
        };
        let azure = StoreHints::of(Some(RemoteScheme::Azure));
        let missing = "Error performing list request: Server returned non-2xx status code: \
            404 Not Found: <?xml?><Error><Code>ContainerNotFound</Code></Error>";
        let (problem, hint) = diagnose(&generic(missing), missing, azure);
        assert_eq!(problem, "the container does not exist");
        assert!(hint.contains("AZURE_STORAGE_ACCOUNT_NAME"), "{hint}");
        let refused = "Server returned non-2xx status code: 403 Forbidden: \
            <Error><Code>AuthorizationFailure</Code></Error>";
        let (problem, hint) = diagnose(&generic(refused), refused, azure);
        assert_eq!(problem, "the store refused the credentials");
        assert!(hint.contains("AZURE_STORAGE_ACCOUNT_KEY"), "{hint}");
        assert!(!hint.contains("AWS"), "{hint}");
        let no_identity = "Error performing token request: Error performing GET \
            http://169.254.169.254/metadata/identity/oauth2/token in 10s - HTTP error: error \
            sending request: client error (Connect)";
        let (problem, hint) = diagnose(&generic(no_identity), no_identity, azure);
        assert!(
            problem.starts_with("no credentials were found"),
            "{problem}"
        );
        for place in [
            "AZURE_STORAGE_ACCOUNT_KEY",
            "AZURE_CLIENT_SECRET",
            "managed identity",
        ] {
            assert!(hint.contains(place), "{place} missing from {hint}");
        }
        let down = "Error performing GET http://127.0.0.1:9/devstoreaccount1/c - HTTP error: \
            error sending request: client error (Connect)";
        let (problem, hint) = diagnose(&generic(down), down, azure);
        assert_eq!(problem, "the endpoint cannot be reached");
        assert!(hint.contains("AZURITE_BLOB_STORAGE_URL"), "{hint}");
        // Azurite and Azure answer a container name of 2 letters so.
        let short = "Server returned non-2xx status code: 400 Bad Request: \
            <Error><Code>OutOfRangeInput</Code></Error>";
        let (problem, _) = diagnose(&generic(short), short, azure);
        assert_eq!(problem, "the bucket (container) name is not valid");
        // The S3 hints stay S3's, and GCS has its own.
        let (problem, _) = diagnose(&generic(missing), missing, &S3_HINTS);
        assert_eq!(problem, "the bucket does not exist");
        let gcs = StoreHints::of(Some(RemoteScheme::Gcs));
        let (_, hint) = diagnose(&generic(refused), refused, gcs);
        assert!(hint.contains("GOOGLE_APPLICATION_CREDENTIALS"), "{hint}");
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
