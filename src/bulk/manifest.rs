//! Export manifest types and parsers for `error[]` (OperationOutcome) and `deleted[]` (Bundle)
//! NDJSON lines.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The completion manifest of an export. Unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Server time when the export's data snapshot was taken; the next run's `_since`.
    #[serde(default)]
    pub transaction_time: Option<String>,
    /// The kick-off request URL as the server saw it.
    #[serde(default)]
    pub request: Option<String>,
    /// Whether file downloads need the access token. `None` (field missing, as with
    /// 1upHealth) is treated as `true`.
    #[serde(default)]
    pub requires_access_token: Option<bool>,
    /// NDJSON files with the exported resources.
    #[serde(default)]
    pub output: Vec<ManifestFile>,
    /// NDJSON files of OperationOutcomes (errors and warnings of the export).
    #[serde(default)]
    pub error: Vec<ManifestFile>,
    /// NDJSON files of Bundles listing deleted resources (`_since` exports).
    #[serde(default)]
    pub deleted: Vec<ManifestFile>,
    /// Links of a paged manifest (`relation = "next"`). Empty after
    /// [`crate::bulk::BulkClient`] merged all pages.
    #[serde(default)]
    pub link: Vec<ManifestLink>,
}

/// One file of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestFile {
    /// Resource type of the file's lines.
    #[serde(rename = "type", default)]
    pub resource_type: String,
    /// Absolute download URL.
    pub url: String,
    /// Number of resources, when the server says.
    #[serde(default)]
    pub count: Option<u64>,
}

/// A link of a paged manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestLink {
    /// Link relation; `next` is followed.
    pub relation: String,
    /// URL of the linked manifest page.
    pub url: String,
}

impl Manifest {
    /// Whether file downloads must carry the credentials (missing field → `true`).
    pub fn requires_access_token(&self) -> bool {
        self.requires_access_token.unwrap_or(true)
    }

    /// The URL of the next manifest page, if any.
    pub fn next_link(&self) -> Option<&str> {
        self.link
            .iter()
            .find(|l| l.relation.eq_ignore_ascii_case("next"))
            .map(|l| l.url.as_str())
    }

    /// Appends the files of another page and takes over its links.
    pub(crate) fn merge_page(&mut self, page: Manifest) {
        self.output.extend(page.output);
        self.error.extend(page.error);
        self.deleted.extend(page.deleted);
        if self.transaction_time.is_none() {
            self.transaction_time = page.transaction_time;
        }
        if self.requires_access_token.is_none() {
            self.requires_access_token = page.requires_access_token;
        }
        self.link = page.link;
    }
}

/// A resource reported deleted in a `deleted[]` file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeletedResource {
    /// Resource type, e.g. `Patient`.
    pub resource_type: String,
    /// Logical id.
    pub id: String,
}

/// The issues of an OperationOutcome as plain-text lines
/// (`error (processing): <diagnostics or details text> [at <expression>]`), scrubbed of
/// secrets ([`crate::message::scrub`]).
/// Returns an empty vector when `value` is not an OperationOutcome with issues.
pub fn outcome_messages(value: &Value) -> Vec<String> {
    if value.get("resourceType").and_then(Value::as_str) != Some("OperationOutcome") {
        return Vec::new();
    }
    let Some(issues) = value.get("issue").and_then(Value::as_array) else {
        return Vec::new();
    };
    issues
        .iter()
        .map(|issue| {
            let severity = issue
                .get("severity")
                .and_then(Value::as_str)
                .unwrap_or("error");
            let code = issue
                .get("code")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            let details = issue.get("details");
            let mut texts: Vec<&str> = Vec::new();
            if let Some(d) = issue.get("diagnostics").and_then(Value::as_str) {
                texts.push(d);
            }
            if let Some(t) = details.and_then(|d| d.get("text")).and_then(Value::as_str)
                && !texts.contains(&t)
            {
                texts.push(t);
            }
            if texts.is_empty()
                && let Some(codings) = details
                    .and_then(|d| d.get("coding"))
                    .and_then(Value::as_array)
            {
                texts.extend(codings.iter().filter_map(|c| {
                    c.get("display")
                        .or_else(|| c.get("code"))
                        .and_then(Value::as_str)
                }));
            }
            let text = if texts.is_empty() {
                "(no details)".to_owned()
            } else {
                texts.join("; ")
            };
            let location: Vec<&str> = ["expression", "location"]
                .iter()
                .filter_map(|k| issue.get(*k).and_then(Value::as_array))
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let message = if location.is_empty() {
                format!("{severity} ({code}): {text}")
            } else {
                format!("{severity} ({code}): {text} [at {}]", location.join(", "))
            };
            // A server's words may quote our credentials: they never leave the process.
            crate::message::scrub(&message).into_owned()
        })
        .collect()
}

/// Whether an issue line of [`outcome_messages`] reports a failure (severity `error` or
/// `fatal`, which the line starts with) rather than a warning or information.
pub fn is_failure(message: &str) -> bool {
    message.starts_with("error ") || message.starts_with("fatal ")
}

/// Plain-text summary of an error response body: the OperationOutcome issues joined with
/// ` | `, or a short excerpt of the body; scrubbed of secrets.
pub(crate) fn body_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let msgs = outcome_messages(&v);
        if !msgs.is_empty() {
            return msgs.join(" | ");
        }
    }
    let text = String::from_utf8_lossy(body);
    // An error body may quote the request's Authorization header.
    let text = crate::message::scrub(&text);
    let t = text.trim();
    if t.is_empty() {
        return "(empty body)".to_owned();
    }
    match t.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t.to_owned(),
    }
}

/// The deleted resources listed in one `deleted[]` NDJSON line (a Bundle whose entries have
/// `request.method = DELETE` and `request.url = Type/id`, possibly absolute or with
/// `/_history/<vid>`). Entries that are not deletes are skipped.
pub(crate) fn deleted_from_bundle(bundle: &Value) -> Vec<DeletedResource> {
    let Some(entries) = bundle.get("entry").and_then(Value::as_array) else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|e| {
            let req = e.get("request")?;
            let method = req.get("method").and_then(Value::as_str)?;
            if !method.eq_ignore_ascii_case("DELETE") {
                return None;
            }
            parse_type_id(req.get("url").and_then(Value::as_str)?)
        })
        .collect()
}

fn parse_type_id(url: &str) -> Option<DeletedResource> {
    let path = url.split(['?', '#']).next()?.trim_end_matches('/');
    let mut parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if let Some(pos) = parts.iter().position(|p| *p == "_history") {
        parts.truncate(pos);
    }
    let n = parts.len();
    if n < 2 {
        return None;
    }
    let (t, id) = (parts[n - 2], parts[n - 1]);
    if !t.starts_with(|c: char| c.is_ascii_uppercase()) || id.is_empty() {
        return None;
    }
    Some(DeletedResource {
        resource_type: t.to_owned(),
        id: id.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outcome_text() {
        let oo = json!({"resourceType":"OperationOutcome","issue":[
            {"severity":"error","code":"invalid","diagnostics":"bad _type","expression":["_type"]},
            {"severity":"warning","code":"processing","details":{"text":"slow"}},
            {"severity":"error","code":"x","details":{"coding":[{"code":"c1","display":"Disp"}]}}]});
        assert_eq!(
            outcome_messages(&oo),
            vec![
                "error (invalid): bad _type [at _type]",
                "warning (processing): slow",
                "error (x): Disp"
            ]
        );
    }

    #[test]
    fn error_bodies_are_scrubbed_of_secrets() {
        crate::message::register_secret("tok-echoed-by-server");
        let plain = body_message(b"unauthorized: Authorization: Bearer tok-echoed-by-server");
        assert_eq!(plain, "unauthorized: Authorization: Bearer ***");
        let oo = json!({"resourceType":"OperationOutcome","issue":[
            {"severity":"error","code":"security","diagnostics":"bad tok-echoed-by-server"}]});
        assert_eq!(outcome_messages(&oo), ["error (security): bad ***"]);
    }

    #[test]
    fn type_ids() {
        for (u, t, i) in [
            ("Patient/1", "Patient", "1"),
            ("https://x/fhir/Observation/a-b", "Observation", "a-b"),
            ("Patient/1/_history/3", "Patient", "1"),
        ] {
            let d = parse_type_id(u).expect(u);
            assert_eq!((d.resource_type.as_str(), d.id.as_str()), (t, i));
        }
        assert!(parse_type_id("Patient").is_none());
    }

    #[test]
    fn manifest_ignores_unknown() {
        let m: Manifest = serde_json::from_str(
            r#"{"transactionTime":"t","output":[{"type":"Patient","url":"u","extra":1}],"x":2}"#,
        )
        .expect("parse");
        assert_eq!(m.output[0].count, None);
        assert!(m.requires_access_token());
    }
}
