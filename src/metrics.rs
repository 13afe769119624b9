//! What the daemon reports to operators: per-source counters in the Prometheus text
//! format on `/metrics`, and `/healthz`, served on a local port.
//!
//! The server is a few lines over a TCP listener rather than a web framework: two
//! fixed GET routes, requests bounded to 8 KiB, one response per connection.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// Errors of the metrics server.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The listen address cannot be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// How a run ended, as the metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RunOutcome {
    /// Committed, nothing rejected.
    Success,
    /// Committed, some lines rejected.
    Partial,
    /// Not committed.
    Failure,
}

impl RunOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Partial => "partial",
            Self::Failure => "failure",
        }
    }
}

/// The totals of one finished run.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunTotals {
    /// Rows written.
    pub rows: u64,
    /// NDJSON bytes read.
    pub bytes_in: u64,
    /// Parquet bytes written.
    pub bytes_out: u64,
    /// Lines rejected.
    pub rejected: u64,
}

#[derive(Debug, Default, Clone)]
struct SourceMetrics {
    runs: BTreeMap<RunOutcome, u64>,
    rows: u64,
    bytes_in: u64,
    bytes_out: u64,
    rejected: u64,
    last_duration: f64,
    last_success: Option<f64>,
    running: bool,
}

/// Counters per source, shared by the runs and the server.
#[derive(Debug, Default)]
pub struct Metrics {
    sources: Mutex<BTreeMap<String, SourceMetrics>>,
}

impl Metrics {
    /// Registers sources so they appear (with zeros) before their first run.
    pub fn register(&self, source: &str) {
        self.with(source, |_| {});
    }

    /// Marks a run of `source` as started.
    pub fn run_started(&self, source: &str) {
        self.with(source, |m| m.running = true);
    }

    /// Records a finished run.
    pub fn run_finished(
        &self,
        source: &str,
        outcome: RunOutcome,
        totals: RunTotals,
        duration: Duration,
    ) {
        self.with(source, |m| {
            m.running = false;
            *m.runs.entry(outcome).or_default() += 1;
            m.rows += totals.rows;
            m.bytes_in += totals.bytes_in;
            m.bytes_out += totals.bytes_out;
            m.rejected += totals.rejected;
            m.last_duration = duration.as_secs_f64();
            if outcome != RunOutcome::Failure {
                m.last_success = Some(
                    SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64()),
                );
            }
        });
    }

    fn with(&self, source: &str, f: impl FnOnce(&mut SourceMetrics)) {
        let mut sources = self
            .sources
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(sources.entry(source.to_owned()).or_default());
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let sources = self
            .sources
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let mut out = String::new();
        let mut family =
            |name: &str,
             kind: &str,
             help: &str,
             values: &mut dyn Iterator<Item = (String, f64)>| {
                let _ = writeln!(
                    out,
                    "# HELP fhir_ingest_{name} {help}\n# TYPE fhir_ingest_{name} {kind}"
                );
                for (labels, value) in values {
                    let _ = writeln!(out, "fhir_ingest_{name}{{{labels}}} {value}");
                }
            };
        family(
            "runs_total",
            "counter",
            "Finished runs by outcome.",
            &mut sources.iter().flat_map(|(s, m)| {
                [
                    RunOutcome::Success,
                    RunOutcome::Partial,
                    RunOutcome::Failure,
                ]
                .map(|o| {
                    (
                        format!("source=\"{s}\",outcome=\"{}\"", o.label()),
                        m.runs.get(&o).copied().unwrap_or(0) as f64,
                    )
                })
            }),
        );
        let per_source = |f: fn(&SourceMetrics) -> f64| -> Vec<(String, f64)> {
            sources
                .iter()
                .map(|(s, m)| (format!("source=\"{s}\""), f(m)))
                .collect()
        };
        family(
            "rows_total",
            "counter",
            "Rows written.",
            &mut per_source(|m| m.rows as f64).into_iter(),
        );
        family(
            "input_bytes_total",
            "counter",
            "NDJSON bytes read.",
            &mut per_source(|m| m.bytes_in as f64).into_iter(),
        );
        family(
            "output_bytes_total",
            "counter",
            "Parquet bytes written.",
            &mut per_source(|m| m.bytes_out as f64).into_iter(),
        );
        family(
            "rejected_lines_total",
            "counter",
            "Lines quarantined.",
            &mut per_source(|m| m.rejected as f64).into_iter(),
        );
        family(
            "last_run_duration_seconds",
            "gauge",
            "Duration of the last finished run.",
            &mut per_source(|m| m.last_duration).into_iter(),
        );
        family(
            "last_success_timestamp_seconds",
            "gauge",
            "Unix time of the last committed run (0: never).",
            &mut per_source(|m| m.last_success.unwrap_or(0.0)).into_iter(),
        );
        family(
            "running",
            "gauge",
            "1 while a run of the source is in progress.",
            &mut per_source(|m| f64::from(u8::from(m.running))).into_iter(),
        );
        out
    }
}

/// Serves `/healthz` and `/metrics` on `address` until `shutdown` turns true; returns
/// the bound address (port 0 picks a free one).
pub async fn serve(
    address: SocketAddr,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), MetricsError> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| MetricsError::Bind { address, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| MetricsError::Bind { address, source })?;
    let handle = tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((stream, _)) = accepted {
                        let metrics = metrics.clone();
                        tokio::spawn(async move { let _ = respond(stream, &metrics).await; });
                    }
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
            }
        }
    });
    Ok((bound, handle))
}

/// Reads one request (headers only, at most 8 KiB, 5 s) and answers it.
async fn respond(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let read = async {
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .map_err(std::io::Error::other)??;
    let line = request.split(|&b| b == b'\r').next().unwrap_or_default();
    let (status, content_type, body) = match line {
        l if l.starts_with(b"GET /healthz ") => ("200 OK", "text/plain", "ok\n".to_owned()),
        l if l.starts_with(b"GET /metrics ") => {
            ("200 OK", "text/plain; version=0.0.4", metrics.render())
        }
        _ => ("404 Not Found", "text/plain", "not found\n".to_owned()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(address: SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn serves_health_and_counters() {
        let metrics = Arc::new(Metrics::default());
        metrics.register("idle");
        metrics.run_started("nightly");
        let totals = RunTotals {
            rows: 10,
            bytes_in: 100,
            bytes_out: 50,
            rejected: 1,
        };
        metrics.run_finished(
            "nightly",
            RunOutcome::Partial,
            totals,
            Duration::from_millis(1500),
        );
        let (tx, rx) = watch::channel(false);
        let (address, server) = serve("127.0.0.1:0".parse().unwrap(), metrics, rx)
            .await
            .unwrap();
        assert!(get(address, "/healthz").await.ends_with("\r\n\r\nok\n"));
        let body = get(address, "/metrics").await;
        for line in [
            "fhir_ingest_runs_total{source=\"nightly\",outcome=\"partial\"} 1",
            "fhir_ingest_runs_total{source=\"idle\",outcome=\"success\"} 0",
            "fhir_ingest_rows_total{source=\"nightly\"} 10",
            "fhir_ingest_rejected_lines_total{source=\"nightly\"} 1",
            "fhir_ingest_last_run_duration_seconds{source=\"nightly\"} 1.5",
            "fhir_ingest_running{source=\"nightly\"} 0",
        ] {
            assert!(body.contains(line), "{line} missing from\n{body}");
        }
        assert!(get(address, "/other").await.starts_with("HTTP/1.1 404"));
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(2), server)
            .await
            .unwrap()
            .unwrap();
    }
}
