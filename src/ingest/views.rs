//! `[[views]]`: the SQL on FHIR ViewDefinitions a run materialises, loaded once and
//! checked before any data is read.
//!
//! Each entry names a ViewDefinition JSON file, or a folder of them (every `*.json`
//! inside, by name), relative to the configuration file, and optionally the sources it
//! applies to. A view becomes the table `views/<name>` of the warehouse, written and
//! committed with the resource tables of the same run.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::Deserialize;

use crate::{view::ViewDefinition, warehouse::layout};

/// A `[[views]]` entry that cannot be loaded, and why.
#[derive(Debug, thiserror::Error)]
pub enum ViewsError {
    /// A file or folder cannot be read.
    #[error("cannot read {path}")]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A folder holds no `*.json` file.
    #[error("{0}: no *.json ViewDefinition files")]
    Empty(PathBuf),
    /// A file is not a valid or supported ViewDefinition (the message names the file,
    /// the JSON pointer and the problem).
    #[error(transparent)]
    Invalid(#[from] crate::view::ViewError),
    /// A view's name cannot name a table.
    #[error("{path}: view name {name:?}: use letters, digits, _ and -")]
    BadName {
        /// The file.
        path: PathBuf,
        /// The name.
        name: String,
    },
    /// Two views have the same name (one table each).
    #[error("view {name:?} is defined twice ({first} and {second})")]
    Duplicate {
        /// The name.
        name: String,
        /// The first file.
        first: PathBuf,
        /// The second file.
        second: PathBuf,
    },
    /// A view applies to a source the configuration does not have.
    #[error("no source named {0:?}")]
    UnknownSource(String),
}

/// `[[views]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawView {
    /// A ViewDefinition JSON file, or a folder of them (`*.json`), relative to the
    /// configuration file. Required.
    pub path: PathBuf,
    /// The sources whose runs compute the view(s). Default: every source.
    pub sources: Option<Vec<String>>,
}

/// A loaded view and the sources it applies to.
#[derive(Debug, Clone)]
pub struct ConfiguredView {
    /// The compiled view.
    pub view: Arc<ViewDefinition>,
    /// The file it came from.
    pub file: PathBuf,
    /// The sources whose runs compute it (`None`: all).
    pub sources: Option<Vec<String>>,
}

impl ConfiguredView {
    /// Whether runs of `source` compute this view.
    pub fn applies_to(&self, source: &str) -> bool {
        self.sources
            .as_ref()
            .is_none_or(|s| s.iter().any(|n| n == source))
    }
}

/// Loads every `[[views]]` entry (paths relative to `base`); `sources` are the
/// configured source names. An error says which entry, file and part of it is wrong:
/// the index of the entry comes with it.
pub fn load_views(
    raw: &[RawView],
    base: &Path,
    sources: &[&str],
) -> Result<Vec<ConfiguredView>, (usize, ViewsError)> {
    let mut views: Vec<ConfiguredView> = Vec::new();
    for (i, entry) in raw.iter().enumerate() {
        if let Some(unknown) = entry
            .sources
            .iter()
            .flatten()
            .find(|s| !sources.contains(&s.as_str()))
        {
            return Err((i, ViewsError::UnknownSource(unknown.clone())));
        }
        for file in view_files(&base.join(&entry.path)).map_err(|e| (i, e))? {
            let view = load_view(&file).map_err(|e| (i, e))?;
            if let Some(first) = views.iter().find(|v| v.view.name() == view.name()) {
                return Err((
                    i,
                    ViewsError::Duplicate {
                        name: view.name().to_owned(),
                        first: first.file.clone(),
                        second: file,
                    },
                ));
            }
            views.push(ConfiguredView {
                view: Arc::new(view),
                file,
                sources: entry.sources.clone(),
            });
        }
    }
    Ok(views)
}

/// Loads and compiles one ViewDefinition file.
pub fn load_view(file: &Path) -> Result<ViewDefinition, ViewsError> {
    let text = std::fs::read_to_string(file).map_err(|source| ViewsError::Read {
        path: file.to_owned(),
        source,
    })?;
    let view = ViewDefinition::from_json(&text, &file.display().to_string())
        .map_err(ViewsError::Invalid)?;
    if !layout::is_view_name(view.name()) {
        return Err(ViewsError::BadName {
            path: file.to_owned(),
            name: view.name().to_owned(),
        });
    }
    Ok(view)
}

/// The file itself, or the `*.json` files of a folder by name.
fn view_files(path: &Path) -> Result<Vec<PathBuf>, ViewsError> {
    let read_error = |source| ViewsError::Read {
        path: path.to_owned(),
        source,
    };
    if std::fs::metadata(path).map_err(read_error)?.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(read_error)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "json"))
        .collect();
    if files.is_empty() {
        return Err(ViewsError::Empty(path.to_owned()));
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/views")
    }

    #[test]
    fn a_folder_loads_every_view_and_sources_restrict_them() {
        let raw = [RawView {
            path: "views".into(),
            sources: Some(vec!["ehr".into()]),
        }];
        let base = examples().parent().unwrap().to_owned();
        let views = load_views(&raw, &base, &["ehr", "files"]).unwrap();
        assert!(views.len() >= 2, "{views:?}");
        assert!(
            views
                .iter()
                .all(|v| v.applies_to("ehr") && !v.applies_to("files"))
        );
        let (i, err) = load_views(&raw, &base, &["files"]).unwrap_err();
        assert_eq!(i, 0);
        assert!(err.to_string().contains("ehr"), "{err}");
    }

    #[test]
    fn an_invalid_view_names_its_file_and_pointer() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.json");
        std::fs::write(
            &file,
            r#"{"resourceType":"ViewDefinition","name":"bad","status":"active","resource":"Patient",
               "select":[{"column":[{"name":"x","path":"name.frobnicate()"}]}]}"#,
        )
        .unwrap();
        let err = load_view(&file).unwrap_err().to_string();
        assert!(
            err.contains("bad.json") && err.contains("/select/0/column/0/path"),
            "{err}"
        );
    }
}
