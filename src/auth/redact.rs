//! Redaction of URLs shown in errors and logs: user info and the values of sensitive
//! query parameters (signatures, credentials, tokens) never leave the process.

/// Query parameter names (lower case) whose values are replaced by `REDACTED` in URLs shown in
/// errors and logs: pre-signed URL signatures, credentials and tokens.
fn is_sensitive_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "sig",
        "signature",
        "token",
        "credential",
        "secret",
        "key",
        "policy",
        "password",
        "auth",
        "code",
    ]
    .iter()
    .any(|s| n.contains(s))
        || n == "se"
        || n == "st"
}

/// The URL with user info removed and the values of signature-like query parameters
/// (`X-Amz-Signature`, `sig`, `Signature`, `token`, …) replaced by `REDACTED`, for error
/// messages and logs. Unparseable input is reduced to everything before `?`.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return url.split(['?', '#']).next().unwrap_or_default().to_owned();
    };
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    parsed.set_fragment(None);
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_sensitive_param(&k) {
                    "REDACTED".to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        if pairs.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(pairs);
        }
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_signatures() {
        let u = redact_url(
            "https://user:pw@bucket.s3.amazonaws.com/f.ndjson?X-Amz-Signature=abc&X-Amz-Credential=x&part=1",
        );
        assert!(!u.contains("abc") && !u.contains("pw"), "{u}");
        assert!(u.contains("part=1"), "{u}");
        assert!(redact_url("https://x/y?sig=zzz&sv=2020").contains("sig=REDACTED"));
    }
}
