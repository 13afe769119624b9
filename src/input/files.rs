//! Input files on disk: finding the NDJSON files of a `files` source, and opening a file
//! or any byte stream, gzip or plain, told apart by the gzip magic bytes.

use std::{
    fs::File,
    io::{self, BufRead, BufReader, Read},
    path::{Path, PathBuf},
    sync::Arc,
};

use flate2::read::MultiGzDecoder;

use super::{InputError, InputFile, Opener};
use crate::{decode::LineOrigin, schema::Registry};

/// Lists the NDJSON files under `paths` (files as given, directories by name order).
pub fn discover(paths: &[PathBuf], registry: &Registry) -> Result<Vec<InputFile>, InputError> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| InputError::Open {
            path: path.clone(),
            source,
        })?;
        if meta.is_file() {
            files.push(input_file(path.clone(), registry));
            continue;
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|source| InputError::Open {
                path: path.clone(),
                source,
            })?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && is_ndjson_name(p))
            .collect();
        if found.is_empty() {
            return Err(InputError::Empty(path.clone()));
        }
        found.sort();
        files.extend(found.into_iter().map(|p| input_file(p, registry)));
    }
    Ok(files)
}

fn is_ndjson_name(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    [".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

fn input_file(path: PathBuf, registry: &Registry) -> InputFile {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_owned();
    let expected_type = expected_type_of(&name, registry).map(Arc::from);
    InputFile {
        origin: LineOrigin {
            file: Arc::from(path.display().to_string()),
            expected_type,
            skip_parameters: false,
        },
        opener: Opener::Path(path),
    }
}

/// The resource type a file name announces (`Observation.ndjson`, `Observation.003.ndjson`,
/// `Observation-1.ndjson.gz`), if its first word is one.
pub fn expected_type_of<'n>(name: &'n str, registry: &Registry) -> Option<&'n str> {
    let first = name.split(['.', '-', '_']).next()?;
    registry.get(first).is_some().then_some(first)
}

/// Opens a file, decompressing it when it starts with the gzip magic bytes. A file
/// named `.gz` that is not gzip is an error that says so (rather than lines of binary
/// rejected as invalid JSON one by one).
pub fn open(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    let mut reader = BufReader::with_capacity(1 << 16, File::open(path)?);
    let named_gzip = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".gz"));
    if named_gzip && !starts_with_gzip_magic(&mut reader)? {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "named .gz but not gzip: it does not start with the gzip magic bytes 1f 8b \
             (rename it if it is plain NDJSON)",
        ));
    }
    sniff_gzip(reader)
}

/// Whether the reader's next bytes are the gzip magic (they stay buffered).
fn starts_with_gzip_magic(reader: &mut impl BufRead) -> io::Result<bool> {
    loop {
        match reader.fill_buf() {
            Ok(buf) => return Ok(buf.starts_with(&GZIP_MAGIC)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Wraps a reader in a gzip decoder when its first bytes are the gzip magic.
pub fn sniff_gzip(reader: impl Read + Send + 'static) -> io::Result<Box<dyn Read + Send>> {
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    Ok(if starts_with_gzip_magic(&mut reader)? {
        Box::new(MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_sniffed_on_any_reader() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, b"{}\n").unwrap();
        let mut out = String::new();
        sniff_gzip(io::Cursor::new(gz.finish().unwrap()))
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "{}\n");
        out.clear();
        sniff_gzip(&b"{}\n"[..])
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "{}\n");
    }
}
