//! Bulk Data client against in-process mock servers. Every test finishes in about a second.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::Response;
use common::mock::*;
use fhir_ingest::auth::{AuthConfig, JwtAlgorithm, SecretSource};
use fhir_ingest::bulk::{
    BulkClient, BulkConfig, BulkError, DeletedResource, ExportLevel, KickOff, KickOffMethod,
    Manifest,
};
use futures::StreamExt;
use serde_json::json;

fn cfg(base: &str) -> BulkConfig {
    let mut c = BulkConfig::new(format!("{base}/fhir"));
    c.poll_min_secs = 0.01;
    c.poll_max_secs = 0.3;
    c.retry_base_secs = 0.01;
    c.request_timeout_secs = 5.0;
    c
}

async fn collect(client: &BulkClient, url: &str, token: bool) -> Result<Vec<u8>, BulkError> {
    let stream = client.download(url, token);
    futures::pin_mut!(stream);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

fn manifest(base: &str, files: &[(&str, &str)]) -> serde_json::Value {
    let output: Vec<_> = files
        .iter()
        .map(|(t, p)| json!({"type": t, "url": format!("{base}{p}"), "count": 2}))
        .collect();
    json!({
        "transactionTime": "2026-01-01T00:00:00Z",
        "request": format!("{base}/fhir/$export"),
        "requiresAccessToken": true,
        "output": output,
        "error": []
    })
}

/// A file body of `n` distinct lines.
fn ndjson_lines(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| format!("{{\"resourceType\":\"Patient\",\"id\":\"p{i}\"}}\n"))
        .collect::<String>()
        .into_bytes()
}

fn bearer_env(name: &str, value: &str) -> AuthConfig {
    // SAFETY: each test uses its own variable name; nothing else reads it concurrently.
    unsafe { std::env::set_var(name, value) };
    AuthConfig::Bearer {
        token: SecretSource::Env(name.to_owned()),
    }
}

#[tokio::test]
async fn polls_with_retry_after_seconds_date_epoch_and_429() {
    let mock = Mock::start(|r, c| match (r.method.as_str(), r.path.as_str(), c.nth) {
        ("GET", "/fhir/$export", _) => accepted(&format!("{}/status/1", c.base)),
        ("GET", "/status/1", 0) => {
            with_headers(202, &[("retry-after", "1"), ("x-progress", "10% done")])
        }
        ("GET", "/status/1", 1) => {
            let date =
                httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(2));
            with_headers(202, &[("retry-after", &date), ("x-progress", "50% done")])
        }
        ("GET", "/status/1", 2) => {
            // epoch timestamp one hour ahead: clamped to the configured maximum
            let epoch = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("time")
                .as_secs()
                + 3600;
            with_headers(202, &[("retry-after", &epoch.to_string())])
        }
        ("GET", "/status/1", 3) => status(429),
        ("GET", "/status/1", 4) => with_headers(202, &[("retry-after", "7200")]),
        ("GET", "/status/1", _) => json(200, manifest(&c.base, &[("Patient", "/f/1")])),
        _ => status(404),
    })
    .await;
    let mut c = cfg(&mock.base);
    c.poll_min_secs = 0.05;
    c.poll_max_secs = 0.25;
    let client = BulkClient::new(c).expect("client");
    let mut progress = client.progress();
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen2 = seen.clone();
    let watcher = tokio::spawn(async move {
        while progress.changed().await.is_ok() {
            let p = progress.borrow().progress.clone();
            if let Some(p) = p {
                let mut s = seen2.lock().expect("lock");
                if s.last() != Some(&p) {
                    s.push(p);
                }
            }
        }
    });
    let ko = client.kick_off(None).await.expect("kick-off");
    assert!(matches!(ko, KickOff::Accepted { .. }));
    let m = client.manifest(&ko).await.expect("manifest");
    assert_eq!(m.output.len(), 1);
    let polls = mock.requests_to("GET", "/status/1");
    assert_eq!(polls.len(), 6);
    let gaps: Vec<Duration> = polls.windows(2).map(|w| w[1].at - w[0].at).collect();
    // Retry-After 1 s, a date 2 s ahead, an epoch 1 h ahead and 7200 s are all clamped to
    // the 0.25 s maximum; the 429 without Retry-After waits our own backoff (>= 0.05 s).
    for i in [0, 1, 2, 4] {
        assert!(
            gaps[i] >= Duration::from_millis(200) && gaps[i] < Duration::from_millis(1500),
            "gap {i}: {:?}",
            gaps[i]
        );
    }
    assert!(gaps[3] >= Duration::from_millis(40), "{:?}", gaps[3]);
    drop(client);
    let _ = tokio::time::timeout(Duration::from_secs(1), watcher).await;
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen, vec!["10% done".to_owned(), "50% done".to_owned()]);
}

#[tokio::test]
async fn kickoff_429_and_transient_5xx_on_poll_and_download() {
    let body = ndjson_lines(20);
    let body2 = body.clone();
    let mock = Mock::start(move |r, c| match (r.path.as_str(), c.nth) {
        ("/fhir/$export", 0) => with_headers(429, &[("retry-after", "0")]),
        ("/fhir/$export", 1) => status(503),
        ("/fhir/$export", _) => accepted("/status/2"), // relative Content-Location
        ("/status/2", 0) => json(
            503,
            json!({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient","diagnostics":"busy"}]}),
        ),
        ("/status/2", 1) => status(500),
        ("/status/2", _) => json(200, manifest(&c.base, &[("Patient", "/f/p")])),
        ("/f/p", 0) => status(502),
        ("/f/p", 1) => with_headers(503, &[("retry-after", "0")]),
        ("/f/p", _) => ndjson(body2.clone()),
        _ => status(404),
    })
    .await;
    let client = BulkClient::new(cfg(&mock.base)).expect("client");
    let ko = client.kick_off(None).await.expect("kick-off");
    assert_eq!(
        ko,
        KickOff::Accepted {
            status_url: format!("{}/status/2", mock.base)
        }
    );
    let m = client.manifest(&ko).await.expect("manifest");
    let got = collect(&client, &m.output[0].url, true)
        .await
        .expect("download");
    assert_eq!(got, body);
    assert_eq!(mock.requests_to("GET", "/fhir/$export").len(), 3);
    assert_eq!(mock.requests_to("GET", "/status/2").len(), 3);
    assert_eq!(mock.requests_to("GET", "/f/p").len(), 3);
}

#[tokio::test]
async fn retries_are_bounded() {
    let mock = Mock::start(|r, _| match r.path.as_str() {
        "/fhir/$export" => accepted("/status/x"),
        _ => json(
            500,
            json!({"resourceType":"OperationOutcome","issue":[{"severity":"fatal","code":"exception","diagnostics":"disk full"}]}),
        ),
    })
    .await;
    let mut c = cfg(&mock.base);
    c.retries = 2;
    let client = BulkClient::new(c).expect("client");
    let ko = client.kick_off(None).await.expect("kick-off");
    let err = client.manifest(&ko).await.expect_err("must fail");
    assert!(err.to_string().contains("disk full"), "{err}");
    assert!(err.to_string().contains("HTTP 500"), "{err}");
    assert_eq!(mock.requests_to("GET", "/status/x").len(), 3);
}

#[tokio::test]
async fn connection_cut_mid_file_resumes_with_range() {
    let body = ndjson_lines(2000);
    let total = body.len();
    let half = total / 2;
    let body2 = body.clone();
    let mock = Mock::start(move |r, c| match c.nth {
        0 => cut_after(body2[..half].to_vec(), total, 200, &[]),
        _ => {
            let range = r.header("range").unwrap_or_default();
            let start: usize = range
                .trim_start_matches("bytes=")
                .trim_end_matches('-')
                .parse()
                .unwrap_or(0);
            // Second answer is itself cut short once more, then complete.
            let slice = body2[start..].to_vec();
            let cr = format!("bytes {start}-{}/{total}", total - 1);
            if c.nth == 1 {
                let n = slice.len();
                cut_after(slice[..n / 3].to_vec(), n, 206, &[("content-range", cr)])
            } else {
                Response::builder()
                    .status(206)
                    .header("content-range", cr)
                    .body(Body::from(slice))
                    .expect("response")
            }
        }
    })
    .await;
    let client = BulkClient::new(cfg(&mock.base)).expect("client");
    let got = collect(&client, &format!("{}/file", mock.base), true)
        .await
        .expect("download");
    assert_eq!(got.len(), body.len());
    assert!(got == body, "bytes differ");
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[0].header("range"), None);
    let r1 = reqs[1].header("range").expect("range on retry").to_owned();
    assert_ne!(r1, "bytes=0-");
    assert_eq!(reqs[1].header("accept-encoding"), Some("identity"));
    assert_eq!(reqs[0].header("accept"), Some("application/fhir+ndjson"));
}

#[tokio::test]
async fn connection_cut_server_ignores_range_skips_bytes() {
    let body = ndjson_lines(1500);
    let total = body.len();
    let body2 = body.clone();
    let mock = Mock::start(move |_, c| match c.nth {
        0 => cut_after(body2[..total / 2 + 7].to_vec(), total, 200, &[]),
        _ => ndjson(body2.clone()), // 200, whole file again
    })
    .await;
    let client = BulkClient::new(cfg(&mock.base)).expect("client");
    let got = collect(&client, &format!("{}/file", mock.base), false)
        .await
        .expect("download");
    assert!(got == body, "bytes differ: {} vs {}", got.len(), body.len());
}

#[tokio::test]
async fn gzip_content_encoding_is_decoded() {
    let body = ndjson_lines(300);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&body).expect("gzip");
    let gz = enc.finish().expect("gzip");
    let mock = Mock::start(move |r, _| {
        assert!(
            r.header("accept-encoding")
                .unwrap_or_default()
                .contains("gzip")
        );
        Response::builder()
            .status(200)
            .header("content-encoding", "gzip")
            .body(Body::from(gz.clone()))
            .expect("response")
    })
    .await;
    let client = BulkClient::new(cfg(&mock.base)).expect("client");
    let got = collect(&client, &format!("{}/file.ndjson", mock.base), true)
        .await
        .expect("download");
    assert!(got == body);
}

/// Mock SMART server: discovery, a token endpoint that verifies the client assertion, and an
/// export whose first token "expires" after the kick-off.
async fn smart_mock(
    public_pem: &'static str,
    alg: jsonwebtoken::Algorithm,
) -> (Mock, Arc<AtomicUsize>) {
    let tokens = Arc::new(AtomicUsize::new(0));
    let tokens2 = tokens.clone();
    let jtis = Arc::new(Mutex::new(std::collections::HashSet::<String>::new()));
    let mock = Mock::start(move |r, c| {
        let token_url = format!("{}/auth/token", c.base);
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/fhir/.well-known/smart-configuration") => {
                json(200, json!({"token_endpoint": token_url, "capabilities": []}))
            }
            ("POST", "/auth/token") => {
                let form: std::collections::HashMap<String, String> =
                    serde_urlencoded_parse(&r.body);
                assert_eq!(form["grant_type"], "client_credentials");
                assert_eq!(form["scope"], "system/*.read");
                assert_eq!(
                    form["client_assertion_type"],
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                );
                let key = match alg {
                    jsonwebtoken::Algorithm::RS384 => {
                        jsonwebtoken::DecodingKey::from_rsa_pem(public_pem.as_bytes())
                    }
                    _ => jsonwebtoken::DecodingKey::from_ec_pem(public_pem.as_bytes()),
                }
                .expect("public key");
                let mut v = jsonwebtoken::Validation::new(alg);
                v.set_audience(&[&token_url]);
                v.set_issuer(&["my-client"]);
                v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
                let data = match jsonwebtoken::decode::<serde_json::Value>(
                    &form["client_assertion"],
                    &key,
                    &v,
                ) {
                    Ok(d) => d,
                    Err(e) => return json(401, json!({"error":"invalid_client","error_description": e.to_string()})),
                };
                assert_eq!(data.header.kid.as_deref(), Some("kid-1"));
                assert_eq!(data.claims["sub"], "my-client");
                let exp = data.claims["exp"].as_u64().expect("exp");
                let now = jsonwebtoken::get_current_timestamp();
                assert!(exp > now && exp <= now + 301, "exp {exp} now {now}");
                let jti = data.claims["jti"].as_str().expect("jti").to_owned();
                assert!(jtis.lock().expect("lock").insert(jti), "jti reused");
                let n = tokens2.fetch_add(1, Ordering::SeqCst) + 1;
                json(200, json!({"access_token": format!("tok-{n}"), "token_type": "bearer", "expires_in": 3600, "scope": "system/*.read"}))
            }
            (_, path) => {
                // After the kick-off, tok-1 counts as expired.
                let auth = r.header("authorization").unwrap_or_default();
                let ok = if path == "/fhir/$export" {
                    auth == "Bearer tok-1"
                } else {
                    auth == "Bearer tok-2"
                };
                if !ok {
                    return status(401);
                }
                match path {
                    "/fhir/$export" => accepted(&format!("{}/status/s", c.base)),
                    "/status/s" if c.nth < 2 => with_headers(202, &[("retry-after", "0")]),
                    "/status/s" => json(200, manifest(&c.base, &[("Patient", "/f/s")])),
                    "/f/s" => ndjson("{\"resourceType\":\"Patient\",\"id\":\"1\"}\n"),
                    _ => status(404),
                }
            }
        }
    })
    .await;
    (mock, tokens)
}

fn serde_urlencoded_parse(body: &[u8]) -> std::collections::HashMap<String, String> {
    reqwest::Url::parse(&format!("http://x/?{}", String::from_utf8_lossy(body)))
        .expect("form")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[tokio::test]
async fn smart_token_expired_mid_export_reauthenticates_once() {
    let (mock, tokens) = smart_mock(
        include_str!("fixtures/rsa_public.pem"),
        jsonwebtoken::Algorithm::RS384,
    )
    .await;
    let mut c = cfg(&mock.base);
    c.auth = AuthConfig::Smart {
        client_id: "my-client".into(),
        private_key: fixture("rsa_private.pem"),
        alg: JwtAlgorithm::RS384,
        kid: "kid-1".into(),
        scope: "system/*.read".into(),
        token_url: None,
    };
    let client = BulkClient::new(c).expect("client");
    let ko = client.kick_off(None).await.expect("kick-off");
    let m = client.manifest(&ko).await.expect("manifest");
    let got = collect(&client, &m.output[0].url, m.requires_access_token())
        .await
        .expect("download");
    assert_eq!(got, b"{\"resourceType\":\"Patient\",\"id\":\"1\"}\n");
    // one token for the kick-off, one after the 401 on the first poll; then cached
    assert_eq!(tokens.load(Ordering::SeqCst), 2);
    assert_eq!(client.auth().token_requests(), 2);
    assert_eq!(
        mock.requests_to("GET", "/fhir/.well-known/smart-configuration")
            .len(),
        1
    );
    let debug = format!("{client:?}");
    assert!(!debug.contains("tok-"), "{debug}");
}

#[tokio::test]
async fn smart_es384_with_configured_token_url() {
    let (mock, tokens) = smart_mock(
        include_str!("fixtures/ec_public.pem"),
        jsonwebtoken::Algorithm::ES384,
    )
    .await;
    let mut c = cfg(&mock.base);
    c.auth = AuthConfig::Smart {
        client_id: "my-client".into(),
        private_key: fixture("ec_private.pem"),
        alg: JwtAlgorithm::ES384,
        kid: "kid-1".into(),
        scope: "system/*.read".into(),
        token_url: Some(format!("{}/auth/token", mock.base)),
    };
    let client = BulkClient::new(c).expect("client");
    client.kick_off(None).await.expect("kick-off");
    assert_eq!(tokens.load(Ordering::SeqCst), 1);
    assert!(
        mock.requests_to("GET", "/fhir/.well-known/smart-configuration")
            .is_empty()
    );
}

#[tokio::test]
async fn redirect_to_other_host_drops_authorization() {
    let other = Mock::start(|_, _| ndjson("line\n")).await;
    let other_base = other.base.clone();
    let mock = Mock::start(move |r, _| match r.path.as_str() {
        "/f/1" => with_headers(
            302,
            &[(
                "location",
                &format!("{other_base}/s3/1?X-Amz-Signature=abc"),
            )],
        ),
        "/f/2" => with_headers(307, &[("location", "/f/3")]), // same authority
        "/f/3" => ndjson("same\n"),
        _ => status(404),
    })
    .await;
    let mut c = cfg(&mock.base);
    c.auth = bearer_env("BULK_TEST_TOKEN_REDIRECT", "sekrit-token");
    let client = BulkClient::new(c).expect("client");
    let got = collect(&client, &format!("{}/f/1", mock.base), true)
        .await
        .expect("download");
    assert_eq!(got, b"line\n");
    let got = collect(&client, &format!("{}/f/2", mock.base), true)
        .await
        .expect("download");
    assert_eq!(got, b"same\n");
    assert_eq!(
        mock.requests_to("GET", "/f/1")[0].header("authorization"),
        Some("Bearer sekrit-token")
    );
    assert_eq!(
        mock.requests_to("GET", "/f/3")[0].header("authorization"),
        Some("Bearer sekrit-token")
    );
    let o = other.requests();
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].header("authorization"), None);
    assert!(!format!("{client:?}").contains("sekrit"));
}

#[tokio::test]
async fn requires_access_token_false_sends_no_token() {
    let mock = Mock::start(|r, c| match r.path.as_str() {
        "/fhir/$export" => accepted(&format!("{}/st", c.base)),
        "/st" => {
            let mut m = manifest(&c.base, &[("Patient", "/f/open")]);
            m["requiresAccessToken"] = json!(false);
            json(200, m)
        }
        "/f/open" => ndjson("x\n"),
        _ => status(404),
    })
    .await;
    let mut c = cfg(&mock.base);
    c.auth = bearer_env("BULK_TEST_TOKEN_RAT", "t0k");
    let client = BulkClient::new(c).expect("client");
    let m = client
        .manifest(&client.kick_off(None).await.expect("kick-off"))
        .await
        .expect("manifest");
    assert!(!m.requires_access_token());
    collect(&client, &m.output[0].url, m.requires_access_token())
        .await
        .expect("download");
    assert_eq!(
        mock.requests_to("GET", "/st")[0].header("authorization"),
        Some("Bearer t0k")
    );
    assert_eq!(
        mock.requests_to("GET", "/f/open")[0].header("authorization"),
        None
    );
}

#[tokio::test]
async fn error_and_deleted_files_are_parsed() {
    let mock = Mock::start(|r, c| match r.path.as_str() {
        "/fhir/$export" => accepted(&format!("{}/st", c.base)),
        "/st" => json(200, json!({
            "transactionTime": "2026-01-01T00:00:00Z",
            "request": "x",
            "requiresAccessToken": true,
            "output": [],
            "error": [{"type": "OperationOutcome", "url": format!("{}/err.ndjson", c.base)}],
            "deleted": [{"type": "Bundle", "url": format!("{}/del.ndjson", c.base)}],
            "extension": {"ignored": true}
        })),
        "/err.ndjson" => ndjson(concat!(
            r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"processing","diagnostics":"Observation/9 failed validation"}]}"#, "\n",
            r#"{"resourceType":"OperationOutcome","issue":[{"severity":"warning","code":"too-costly","details":{"text":"Claim export skipped"}}]}"#
        )),
        "/del.ndjson" => ndjson(concat!(
            r#"{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Patient/123"}},{"request":{"method":"DELETE","url":"Observation/abc/_history/2"}}]}"#, "\n\n",
            r#"{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"http://x/fhir/Encounter/e1"}}]}"#, "\n"
        )),
        _ => status(404),
    })
    .await;
    let client = BulkClient::new(cfg(&mock.base)).expect("client");
    let m = client
        .manifest(&client.kick_off(None).await.expect("kick-off"))
        .await
        .expect("manifest");
    let errors = client
        .download_errors(&m.error[0].url, true)
        .await
        .expect("errors");
    assert_eq!(
        errors,
        vec![
            "error (processing): Observation/9 failed validation",
            "warning (too-costly): Claim export skipped"
        ]
    );
    let deleted = client
        .download_deleted(&m.deleted[0].url, true)
        .await
        .expect("deleted");
    let d = |t: &str, i: &str| DeletedResource {
        resource_type: t.into(),
        id: i.into(),
    };
    assert_eq!(
        deleted,
        vec![
            d("Patient", "123"),
            d("Observation", "abc"),
            d("Encounter", "e1")
        ]
    );
}

#[tokio::test]
async fn paged_manifest_is_merged() {
    let mock = Mock::start(|r, c| match r.path.as_str() {
        "/fhir/$export" => accepted(&format!("{}/st", c.base)),
        "/st" => {
            let mut m = manifest(&c.base, &[("Patient", "/f/1")]);
            m["link"] = json!([{"relation": "next", "url": format!("{}/page/2", c.base)}]);
            json(200, m)
        }
        "/page/2" if c.nth == 0 => status(503),
        "/page/2" => {
            let mut m = manifest(&c.base, &[("Observation", "/f/2"), ("Observation", "/f/3")]);
            m["error"] = json!([{"type": "OperationOutcome", "url": "e"}]);
            m["link"] = json!([{"relation": "next", "url": format!("{}/page/3", c.base)}]);
            json(200, m)
        }
        "/page/3" => json(200, manifest(&c.base, &[("Encounter", "/f/4")])),
        _ => status(404),
    })
    .await;
    let client = BulkClient::new(cfg(&mock.base)).expect("client");
    let m = client
        .manifest(&client.kick_off(None).await.expect("kick-off"))
        .await
        .expect("manifest");
    let types: Vec<&str> = m.output.iter().map(|f| f.resource_type.as_str()).collect();
    assert_eq!(
        types,
        ["Patient", "Observation", "Observation", "Encounter"]
    );
    assert_eq!(m.error.len(), 1);
    assert!(m.link.is_empty());
}

#[tokio::test]
async fn oneup_synchronous_export_with_client_headers() {
    unsafe {
        std::env::set_var("BULK_TEST_ONEUP_ID", "cid");
    }
    // Removed when the test ends, pass or fail.
    let dir = tempfile::tempdir().expect("dir");
    let secret_file = dir.path().join("oneup.secret");
    std::fs::write(&secret_file, "csecret\n").expect("write");
    let mock = Mock::start(|r, c| {
        let ok = r.header("client_id") == Some("cid")
            && r.header("client_secret") == Some("csecret")
            && r.header("x-oneup-user-id") == Some("client");
        if !ok {
            return status(401);
        }
        match r.path.as_str() {
            "/bulk-data/r4/$export" => json(200, json!({
                "transactionTime": "2026-02-02T00:00:00Z",
                "output": [{"type": "Patient", "url": format!("{}/bulk-data/r4/files/p.ndjson", c.base)}]
            })),
            "/bulk-data/r4/files/p.ndjson" => ndjson("{\"resourceType\":\"Patient\"}\n"),
            _ => status(404),
        }
    })
    .await;
    let mut c = cfg(&mock.base);
    c.export_url = Some(format!("{}/bulk-data/r4/$export", mock.base));
    c.types = vec!["Patient".into(), "Observation".into()];
    c.auth = AuthConfig::Oneup {
        client_id: SecretSource::Env("BULK_TEST_ONEUP_ID".into()),
        client_secret: SecretSource::File(secret_file),
        user_id: "client".into(),
    };
    let client = BulkClient::new(c).expect("client");
    let ko = client
        .kick_off(Some("2026-01-01T00:00:00Z"))
        .await
        .expect("kick-off");
    let KickOff::Complete(ref first) = ko else {
        panic!("expected a synchronous manifest, got {ko:?}")
    };
    assert_eq!(
        first.transaction_time.as_deref(),
        Some("2026-02-02T00:00:00Z")
    );
    let m = client.manifest(&ko).await.expect("manifest");
    assert!(m.requires_access_token());
    let got = collect(&client, &m.output[0].url, m.requires_access_token())
        .await
        .expect("download");
    assert_eq!(got, b"{\"resourceType\":\"Patient\"}\n");
    let k = &mock.requests_to("GET", "/bulk-data/r4/$export")[0];
    assert_eq!(
        k.query.as_deref(),
        Some("_type=Patient%2CObservation&_since=2026-01-01T00%3A00%3A00Z")
    );
    assert_eq!(k.header("accept"), Some("application/fhir+json"));
    assert_eq!(k.header("prefer"), Some("respond-async"));
    assert!(!client.finish(&ko).await.expect("finish"));
    assert!(!format!("{client:?}").contains("csecret"));
}

#[tokio::test]
async fn operation_outcome_on_kickoff_is_readable() {
    let mock = Mock::start(|_, _| {
        json(400, json!({"resourceType":"OperationOutcome","issue":[
            {"severity":"error","code":"not-supported","diagnostics":"The _typeFilter parameter is not supported","expression":["_typeFilter"]}]}))
    })
    .await;
    let mut c = cfg(&mock.base);
    c.type_filter = vec!["Observation?status=final".into()];
    let client = BulkClient::new(c).expect("client");
    let err = client.kick_off(None).await.expect_err("must fail");
    let text = err.to_string();
    assert!(
        text.contains("HTTP 400")
            && text.contains("The _typeFilter parameter is not supported")
            && text.contains("kick-off"),
        "{text}"
    );
    assert!(matches!(err, BulkError::Server { status: 400, .. }));
    assert_eq!(mock.requests().len(), 1, "4xx is not retried");
}

#[tokio::test]
async fn cancel_and_delete_after_download_send_delete() {
    let mock = Mock::start(|r, c| match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/fhir/Group/g1/$export") => accepted(&format!("{}/st/9", c.base)),
        ("GET", "/st/9") => with_headers(202, &[("x-progress", "working")]),
        ("DELETE", "/st/9") => status(202),
        _ => status(404),
    })
    .await;
    let mut c = cfg(&mock.base);
    c.level = ExportLevel::Group;
    c.group_id = Some("g1".into());
    c.method = KickOffMethod::Post;
    c.types = vec!["Patient".into(), "Condition".into()];
    c.patient = vec!["Patient/1".into(), "Patient/2".into()];
    c.type_filter = vec!["Condition?clinical-status=active".into()];
    c.delete_after_download = true;
    let client = BulkClient::new(c).expect("client");
    let ko = client
        .kick_off(Some("2025-01-01T00:00:00Z"))
        .await
        .expect("kick-off");
    let KickOff::Accepted { status_url } = &ko else {
        panic!("expected 202")
    };
    // A caller's Ctrl-C handler: stop waiting, then cancel.
    let waited = tokio::time::timeout(
        Duration::from_millis(100),
        client.wait_for_manifest(status_url),
    )
    .await;
    assert!(waited.is_err(), "still running");
    client.cancel(status_url).await.expect("cancel");
    assert_eq!(mock.requests_to("DELETE", "/st/9").len(), 1);
    assert!(client.finish(&ko).await.expect("finish"));
    assert_eq!(mock.requests_to("DELETE", "/st/9").len(), 2);
    let k = &mock.requests_to("POST", "/fhir/Group/g1/$export")[0];
    assert_eq!(k.header("content-type"), Some("application/fhir+json"));
    let body: serde_json::Value = serde_json::from_slice(&k.body).expect("json body");
    assert_eq!(body["resourceType"], "Parameters");
    let names: Vec<&str> = body["parameter"]
        .as_array()
        .expect("params")
        .iter()
        .map(|p| p["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        ["_type", "_since", "_typeFilter", "patient", "patient"]
    );
    assert_eq!(body["parameter"][0]["valueString"], "Patient,Condition");
    assert_eq!(
        body["parameter"][3]["valueReference"]["reference"],
        "Patient/1"
    );
}

#[tokio::test]
async fn expired_export_and_gone_file_are_distinct_errors() {
    let mock = Mock::start(|r, _| match r.path.as_str() {
        "/fhir/Patient/$export" => accepted("/st/old"),
        "/st/old" => status(410),
        _ => status(404),
    })
    .await;
    let mut c = cfg(&mock.base);
    c.level = ExportLevel::Patient;
    let client = BulkClient::new(c).expect("client");
    let ko = client.kick_off(None).await.expect("kick-off");
    let err = client.manifest(&ko).await.expect_err("expired");
    assert!(
        matches!(err, BulkError::ExportExpired { status: 410, .. }),
        "{err}"
    );
    assert!(err.needs_new_export());
    let err = collect(&client, &format!("{}/f/gone?sig=SECRET", mock.base), true)
        .await
        .expect_err("gone");
    assert!(
        matches!(err, BulkError::FileGone { status: 404, .. }),
        "{err}"
    );
    assert!(!err.to_string().contains("SECRET"), "{err}");
}

#[tokio::test]
async fn bearer_401_is_not_leaked_in_errors() {
    let mock = Mock::start(|_, _| status(401)).await;
    let mut c = cfg(&mock.base);
    c.auth = bearer_env("BULK_TEST_TOKEN_401", "very-secret");
    let client = BulkClient::new(c).expect("client");
    let err = client.kick_off(None).await.expect_err("401");
    assert!(matches!(err, BulkError::Server { status: 401, .. }));
    assert!(!format!("{err} {err:?}").contains("very-secret"));
    // one retry after re-reading the token source, then give up
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn missing_manifest_fields_are_tolerated() {
    let m: Manifest = serde_json::from_value(json!({"output": []})).expect("parse");
    assert!(m.transaction_time.is_none() && m.deleted.is_empty());
}

/// Full export against sekmet-fhir (`scripts/test` starts it); skipped without `FHIR_INGEST_SEKMET_URL`.
#[tokio::test]
async fn sekmet_full_export() {
    let Ok(base) = std::env::var("FHIR_INGEST_SEKMET_URL") else {
        eprintln!("FHIR_INGEST_SEKMET_URL not set: skipped (scripts/test runs it)");
        return;
    };
    let base = base.trim_end_matches('/').to_owned();
    let tag = format!("fi{}", std::process::id());
    let http = reqwest::Client::new();
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "id": format!("{tag}-p1"), "name": [{"family": "Ingest"}]},
         "request": {"method": "PUT", "url": format!("Patient/{tag}-p1")}},
        {"resource": {"resourceType": "Observation", "id": format!("{tag}-o1"), "status": "final",
                      "code": {"text": "hr"}, "subject": {"reference": format!("Patient/{tag}-p1")}},
         "request": {"method": "PUT", "url": format!("Observation/{tag}-o1")}},
        {"resource": {"resourceType": "Group", "id": format!("{tag}-g"), "type": "person", "actual": true,
                      "member": [{"entity": {"reference": format!("Patient/{tag}-p1")}}]},
         "request": {"method": "PUT", "url": format!("Group/{tag}-g")}}
    ]});
    let resp = http
        .post(&base)
        .header("content-type", "application/fhir+json")
        .body(bundle.to_string())
        .send()
        .await
        .expect("load transaction");
    assert!(resp.status().is_success(), "transaction: {}", resp.status());

    let mut c = BulkConfig::new(base.clone());
    c.level = ExportLevel::Group;
    c.group_id = Some(format!("{tag}-g"));
    c.types = vec!["Patient".into(), "Observation".into()];
    c.delete_after_download = true;
    let client = BulkClient::new(c).expect("client");
    let started = std::time::Instant::now();
    let ko = client.kick_off(None).await.expect("kick-off");
    let m = client.manifest(&ko).await.expect("manifest");
    let mut lines = Vec::new();
    for f in &m.output {
        let bytes = collect(&client, &f.url, m.requires_access_token())
            .await
            .expect("download");
        let text = String::from_utf8(bytes).expect("utf8");
        let n = text.lines().filter(|l| !l.trim().is_empty()).count() as u64;
        assert_eq!(Some(n), f.count, "{}", f.url);
        lines.extend(text.lines().map(str::to_owned));
    }
    assert!(lines.iter().any(|l| l.contains(&format!("{tag}-p1"))));
    assert!(lines.iter().any(|l| l.contains(&format!("{tag}-o1"))));
    assert!(client.finish(&ko).await.expect("delete"));
    if let KickOff::Accepted { status_url } = &ko {
        let err = client
            .wait_for_manifest(status_url)
            .await
            .expect_err("deleted");
        assert!(err.needs_new_export(), "{err}");
    }
    eprintln!("sekmet group export took {:?}", started.elapsed());

    // _since after the load: nothing of ours comes back.
    let mut c = BulkConfig::new(base);
    c.types = vec!["Patient".into()];
    c.method = KickOffMethod::Post;
    let client = BulkClient::new(c).expect("client");
    let ko = client
        .kick_off(Some("2999-01-01T00:00:00Z"))
        .await
        .expect("kick-off");
    let m = client.manifest(&ko).await.expect("manifest");
    assert!(m.output.is_empty(), "{m:?}");
}

/// SMART Backend Services export against sekmet-fhir configured with `server_auth.types:
/// [smart]` and this crate's `tests/fixtures/rsa_public.pem` registered for client
/// `fhir-ingest-test` (see SEKMET.md):
/// `scripts/test` starts it; skipped without `FHIR_INGEST_SEKMET_SMART_URL`.
#[tokio::test]
async fn sekmet_smart_export() {
    let Ok(base) = std::env::var("FHIR_INGEST_SEKMET_SMART_URL") else {
        eprintln!("FHIR_INGEST_SEKMET_SMART_URL not set: skipped (scripts/test runs it)");
        return;
    };
    let base = base.trim_end_matches('/').to_owned();
    let smart = |scope: &str| AuthConfig::Smart {
        client_id: "fhir-ingest-test".into(),
        private_key: fixture("rsa_private.pem"),
        alg: JwtAlgorithm::RS384,
        kid: "k1".into(),
        scope: scope.into(),
        token_url: None,
    };
    // Load one patient with a write-scoped token from the same authenticator type.
    let writer =
        fhir_ingest::auth::Auth::new(&smart("system/*.write"), &base, reqwest::Client::new())
            .expect("auth");
    let creds = writer.credentials().await.expect("token");
    let tag = format!("fis{}", std::process::id());
    let resp = reqwest::Client::new()
        .put(format!("{base}/Patient/{tag}"))
        .headers(creds.headers)
        .header("content-type", "application/fhir+json")
        .body(json!({"resourceType": "Patient", "id": tag}).to_string())
        .send()
        .await
        .expect("put");
    assert!(resp.status().is_success(), "PUT: {}", resp.status());

    let mut c = BulkConfig::new(base);
    c.types = vec!["Patient".into()];
    c.auth = smart("system/*.read");
    let client = BulkClient::new(c).expect("client");
    let ko = client.kick_off(None).await.expect("kick-off");
    let m = client.manifest(&ko).await.expect("manifest");
    assert!(m.requires_access_token());
    let mut found = false;
    for f in &m.output {
        let bytes = collect(&client, &f.url, true).await.expect("download");
        found |= String::from_utf8_lossy(&bytes).contains(&tag);
    }
    assert!(found, "exported patient missing");
    assert_eq!(client.auth().token_requests(), 1);
    // Without the token the file server refuses.
    let err = collect(&client, &m.output[0].url, false)
        .await
        .expect_err("401");
    assert!(
        matches!(err, BulkError::Server { status: 401, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn gzip_file_cut_mid_way_resumes_with_identity_range() {
    let body = ndjson_lines(4000);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&body).expect("gzip");
    let gz = enc.finish().expect("gzip");
    let body2 = body.clone();
    let mock = Mock::start(move |r, c| {
        if c.nth == 0 {
            assert!(
                r.header("accept-encoding")
                    .unwrap_or_default()
                    .contains("gzip")
            );
            return cut_after(
                gz[..gz.len() / 2].to_vec(),
                gz.len(),
                200,
                &[("content-encoding", "gzip".to_owned())],
            );
        }
        assert_eq!(r.header("accept-encoding"), Some("identity"));
        let start: usize = r
            .header("range")
            .expect("range")
            .trim_start_matches("bytes=")
            .trim_end_matches('-')
            .parse()
            .expect("offset");
        assert!(start > 0);
        Response::builder()
            .status(206)
            .header(
                "content-range",
                format!("bytes {start}-{}/{}", body2.len() - 1, body2.len()),
            )
            .body(Body::from(body2[start..].to_vec()))
            .expect("response")
    })
    .await;
    let client = BulkClient::new(cfg(&mock.base)).expect("client");
    let got = collect(&client, &format!("{}/f.ndjson", mock.base), true)
        .await
        .expect("download");
    assert!(got == body, "bytes differ: {} vs {}", got.len(), body.len());
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn cut_after_last_byte_then_416_is_complete() {
    let body = ndjson_lines(50);
    let total = body.len();
    let body2 = body.clone();
    let mock = Mock::start(move |_, c| match c.nth {
        // announces one byte more than it has, sends everything, then breaks
        0 => cut_after(body2.clone(), total + 1, 200, &[]),
        _ => with_headers(416, &[("content-range", &format!("bytes */{total}"))]),
    })
    .await;
    let client = BulkClient::new(cfg(&mock.base)).expect("client");
    let got = collect(&client, &format!("{}/f", mock.base), true)
        .await
        .expect("download");
    assert!(got == body);
}

/// Regression (issue 9, item 3): each `_typeFilter` is its own parameter on GET (a
/// filter's commas are kept), and `allow_partial_manifests` is sent as
/// `allowPartialManifests` (GET and POST).
#[tokio::test]
async fn type_filters_are_one_parameter_each_and_partial_manifests_can_be_allowed() {
    let mock = Mock::start(|_, c| accepted(&format!("{}/status/1", c.base))).await;
    let mut c = cfg(&mock.base);
    c.type_filter = vec![
        "Patient?gender=female,other".into(),
        "Observation?status=final".into(),
    ];
    c.allow_partial_manifests = Some(true);
    BulkClient::new(c.clone())
        .expect("client")
        .kick_off(None)
        .await
        .expect("kick-off");
    let query = mock.requests()[0].query.clone().unwrap_or_default();
    let pairs: Vec<(String, String)> = reqwest::Url::parse(&format!("http://x/?{query}"))
        .expect("query")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    assert_eq!(
        pairs,
        [
            pair("_typeFilter", "Patient?gender=female,other"),
            pair("_typeFilter", "Observation?status=final"),
            pair("allowPartialManifests", "true"),
        ]
    );
    c.method = KickOffMethod::Post;
    c.allow_partial_manifests = Some(false);
    BulkClient::new(c)
        .expect("client")
        .kick_off(None)
        .await
        .expect("kick-off");
    let body: serde_json::Value =
        serde_json::from_slice(&mock.requests()[1].body).expect("Parameters");
    assert_eq!(
        body["parameter"][2],
        json!({"name": "allowPartialManifests", "valueBoolean": false})
    );
}
