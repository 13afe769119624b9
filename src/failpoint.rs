//! Test-only crash points: `FHIR_INGEST_FAIL_AT=<point>` makes the process exit abruptly
//! (status 86, no clean-up) when it reaches that point, so tests can show that a rerun
//! after a crash leaves every resource exactly once and the checkpoint right.
//!
//! Points: `after-kick-off` (in-flight export persisted), `during-download` (after the
//! first file was read), `after-data-files` (every Parquet file written, no run manifest),
//! `after-commit` (run manifest written, checkpoint not moved), `after-checkpoint`
//! (checkpoint moved, in-flight record not removed). Not for production use.

/// The environment variable naming the point to crash at.
pub const ENV: &str = "FHIR_INGEST_FAIL_AT";

/// Exit status of a deliberate crash.
pub const EXIT_STATUS: i32 = 86;

/// Exits the process at once when `FHIR_INGEST_FAIL_AT` names `point`.
pub fn hit(point: &str) {
    if std::env::var(ENV).is_ok_and(|v| v == point) {
        eprintln!("{ENV}={point}: exiting abruptly (test hook)");
        std::process::exit(EXIT_STATUS);
    }
}
