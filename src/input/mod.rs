//! NDJSON input, as bytes: files on disk or downloads (plain or gzip), read as bounded
//! chunks of whole lines.
//!
//! - [`files`]: finding the files of a `files` source, opening files and streams;
//! - [`chunks`]: reading any byte stream as chunks of whole lines, numbered;
//! - [`stream`]: an async byte stream (a download) as a blocking reader.
//!
//! An [`InputFile`] says how to open one file and what its lines are (their
//! [`LineOrigin`]); the ingest run's reader threads open them in turn.

pub mod chunks;
pub mod files;
pub mod stream;

use std::{
    io::{self, Read},
    path::PathBuf,
    sync::Arc,
};

pub use self::{
    chunks::{CHUNK_BYTES, Chunk, ReadEvent, ReadTotals, SAMPLE_BYTES, lines, read_chunks},
    files::{discover, expected_type_of, open, sniff_gzip},
    stream::{Cancelled, StreamReader},
};
use crate::decode::LineOrigin;

/// Errors of finding and reading input files.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A configured path cannot be listed or opened.
    #[error("cannot read {path}")]
    Open {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A configured path holds no NDJSON file.
    #[error("{0}: no *.ndjson, *.ndjson.gz, *.jsonl or *.jsonl.gz files")]
    Empty(PathBuf),
    /// A download failed for good (after the client's retries), or was cancelled: the
    /// run must not commit. The source is the download's own error (which names the
    /// file itself when it is the client's: the file is then not named twice).
    #[error("{}", download_failed(file, source.as_ref()))]
    Download {
        /// The file's name in lineage (its URL, secrets stripped).
        file: String,
        /// What went wrong.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A file decompresses to more than the limit (a gzip bomb, or a wrong limit).
    #[error("{path}: decompressed size exceeds {limit} bytes")]
    TooLarge {
        /// The file.
        path: String,
        /// The limit.
        limit: u64,
    },
}

/// The text of [`InputError::Download`]: the file, unless its error already names it.
fn download_failed(file: &str, source: &(dyn std::error::Error + 'static)) -> String {
    if source.to_string().contains(file) {
        "download failed".to_owned()
    } else {
        format!("downloading {file} failed")
    }
}

/// One NDJSON file to ingest.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// How to open it.
    pub opener: Opener,
    /// Its name in lineage and reports, and the type it holds when its name says so.
    pub origin: LineOrigin,
}

/// Opens a byte stream when the reader thread gets to it (a download starts then).
pub type OpenFn = dyn Fn() -> io::Result<Box<dyn Read + Send>> + Send + Sync;

/// Where the bytes of an input file come from.
#[derive(Clone)]
pub enum Opener {
    /// A local file.
    Path(PathBuf),
    /// A download (or any other stream), opened lazily. A read error of such a stream is
    /// fatal to the run: the client already retried, and a partial file must not commit.
    Download(Arc<OpenFn>),
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Path(path) => f.debug_tuple("Path").field(path).finish(),
            Self::Download(_) => f.write_str("Download"),
        }
    }
}

impl InputFile {
    /// Opens the file's bytes, decompressing them when they start with the gzip magic.
    pub fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        match &self.opener {
            Opener::Path(path) => open(path),
            Opener::Download(open_stream) => sniff_gzip(open_stream()?),
        }
    }

    /// Whether a read error of this file fails the run (downloads) rather than
    /// rejecting the cut line (local files, whose truncation is the data's fault).
    pub fn read_errors_are_fatal(&self) -> bool {
        matches!(self.opener, Opener::Download(_))
    }

    /// The error that fails the run when this file cannot be opened or read.
    pub fn failure(&self, error: io::Error) -> InputError {
        if self.read_errors_are_fatal() {
            InputError::Download {
                file: self.origin.file.to_string(),
                source: stream::stream_error(error),
            }
        } else {
            InputError::Open {
                path: self.origin.file.to_string().into(),
                source: error,
            }
        }
    }
}
