//! Where log lines go: every line a person or a log shipper sees is a `tracing` event,
//! written to stderr as plain text or as one JSON object a line; and, on a terminal,
//! the live progress bar of a run, which log lines print above.

use std::{
    fmt,
    io::{self, IsTerminal as _, Write as _},
    sync::{Arc, OnceLock},
    time::Duration,
};

use fhir_ingest::{ingest::Progress, temporal};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing::{Event, Level, Subscriber, field::Field};
use tracing_subscriber::{
    EnvFilter,
    fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter, format::Writer},
    registry::LookupSpan,
};

/// The format of log lines.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Plain lines.
    Text,
    /// One JSON object a line: time, level, message and the event's fields.
    Json,
}

/// The progress bars on the terminal; log lines are printed above them.
fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// Installs the subscriber: `format`, at the level `verbosity` gives (0 info, 1 debug,
/// 2 trace, -1 warn, -2 error), unless `RUST_LOG` says otherwise.
pub fn init(format: LogFormat, verbosity: i8) {
    let level = match verbosity {
        i8::MIN..=-2 => Level::ERROR,
        -1 => Level::WARN,
        0 => Level::INFO,
        1 => Level::DEBUG,
        _ => Level::TRACE,
    };
    let filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(BarAwareStderr);
    let _ = match format {
        LogFormat::Text => builder.event_format(TextLine).try_init(),
        LogFormat::Json => builder.event_format(JsonLine).try_init(),
    };
}

/// Stderr, written above the progress bars when they are drawn.
#[derive(Clone, Copy)]
struct BarAwareStderr;

impl<'a> MakeWriter<'a> for BarAwareStderr {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(Vec::new())
    }
}

/// Buffers one formatted event and writes it at once when dropped.
struct LineWriter(Vec<u8>);

impl io::Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let line = std::mem::take(&mut self.0);
        bars().suspend(|| {
            let _ = io::stderr().lock().write_all(&line);
        });
    }
}

/// `  message` for information, `warning: message` and `error: message` above it.
struct TextLine;

impl<S, N> FormatEvent<S, N> for TextLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _cx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let prefix = match *event.metadata().level() {
            Level::ERROR => "error: ",
            Level::WARN => "  warning: ",
            _ => "  ",
        };
        writeln!(writer, "{prefix}{}", fields.message)
    }
}

/// `{"time":..., "level":"info", "message":..., <fields>}`.
struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _cx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut object = serde_json::Map::new();
        object.insert("time".into(), now_millis().into());
        object.insert(
            "level".into(),
            event
                .metadata()
                .level()
                .as_str()
                .to_ascii_lowercase()
                .into(),
        );
        object.insert("message".into(), fields.message.into());
        object.extend(fields.other);
        writeln!(writer, "{}", serde_json::Value::Object(object))
    }
}

/// The current time as RFC 3339 UTC with milliseconds.
fn now_millis() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let millis = (now.as_micros() / 1000 * 1000) as i64;
    temporal::rfc3339_micros(millis)
}

/// An event's message and its other fields.
#[derive(Default)]
struct Fields {
    message: String,
    other: serde_json::Map<String, serde_json::Value>,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        // The last line of defence: no registered secret reaches stderr.
        let value = &*fhir_ingest::message::scrub(value);
        match field.name() {
            "message" => self.message = value.to_owned(),
            name => {
                self.other.insert(name.into(), value.into());
            }
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.other.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.other.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.other.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

/// The progress bar of the runs of this invocation, drawn on a terminal only (and not
/// in JSON mode): files done of those known, lines and MB read and their rates, and an
/// estimate of the time left by files. Cleared when dropped.
pub struct ProgressDisplay {
    bar: Option<ProgressBar>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl ProgressDisplay {
    /// Starts drawing `progress` when stderr is a terminal and logs are text.
    pub fn start(progress: Arc<Progress>, format: LogFormat) -> Self {
        if format == LogFormat::Json || !io::stderr().is_terminal() {
            return Self {
                bar: None,
                ticker: None,
            };
        }
        let style =
            ProgressStyle::with_template("  files {pos}/{len} [{wide_bar}] {msg} · eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar = bars().add(ProgressBar::new(0).with_style(style));
        let ticker = {
            let bar = bar.clone();
            std::thread::spawn(move || {
                let started = std::time::Instant::now();
                while !bar.is_finished() {
                    let p = progress.snapshot();
                    let secs = started.elapsed().as_secs_f64().max(1e-3);
                    bar.set_length(p.files_total);
                    bar.set_position(p.files_done);
                    bar.set_message(format!(
                        "{} lines ({:.0}/s) · {:.1} MB ({:.1} MB/s)",
                        p.lines,
                        p.lines as f64 / secs,
                        p.bytes as f64 / 1e6,
                        p.bytes as f64 / 1e6 / secs
                    ));
                    std::thread::sleep(Duration::from_millis(250));
                }
            })
        };
        Self {
            bar: Some(bar),
            ticker: Some(ticker),
        }
    }
}

impl Drop for ProgressDisplay {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            bars().remove(&bar);
        }
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
    }
}
