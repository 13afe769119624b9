//! Generates the per-resource schema files (`schemas/r4/<Type>.schema`) from the
//! official FHIR package (`hl7.fhir.r4.core-4.0.1.tgz`).
//!
//! The generator reads the `StructureDefinition` snapshots of the package and
//! expands every concrete resource type into a flat, depth-first list of nodes
//! (`<dotted path> <type code> <max>`). The expansion rules (backbone elements,
//! `contentReference`, datatypes, the fixed `Extension` struct, depth and
//! recursion limits) are described in `schemas/README.md` and on the functions
//! below. The output is byte-identical for the same package and options.
//!
//! This module depends only on std, serde, serde_json, flate2, tar and thiserror.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Options of the generator; the defaults produce the committed schemas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Maximum depth of a struct node (number of struct nodes on its path,
    /// itself included). Deeper struct nodes are omitted with their children.
    pub max_depth: usize,
    /// Maximum number of `Extension` structs on a path (2 keeps
    /// `extension.extension` but not `extension.extension.extension`).
    pub extension_depth: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_depth: 5,
            extension_depth: 2,
        }
    }
}

/// Errors of [`generate`], each with the package path and, where it applies,
/// the file inside the archive and the element path.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The package file could not be opened.
    #[error("cannot open FHIR package {package}")]
    Open {
        /// Path of the package.
        package: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The archive (gzip or tar layer) or one of its entries could not be read.
    #[error("cannot read FHIR package {package} (entry {entry})")]
    Archive {
        /// Path of the package.
        package: PathBuf,
        /// File inside the archive, or `-` when the archive itself failed.
        entry: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A file inside the archive is not the expected JSON.
    #[error("invalid JSON in {package} entry {entry}")]
    Json {
        /// Path of the package.
        package: PathBuf,
        /// File inside the archive.
        entry: String,
        /// Underlying error.
        source: serde_json::Error,
    },
    /// A StructureDefinition is not usable (missing snapshot, missing `max`,
    /// unknown type code, dangling `contentReference`, ...).
    #[error("{package} entry {entry}, element {element}: {message}")]
    Definition {
        /// Path of the package.
        package: PathBuf,
        /// File inside the archive.
        entry: String,
        /// Element path inside the StructureDefinition.
        element: String,
        /// What is wrong.
        message: String,
    },
    /// The package lacks something the generator needs (e.g. `package.json`,
    /// or any concrete resource type).
    #[error("FHIR package {package}: {message}")]
    Package {
        /// Path of the package.
        package: PathBuf,
        /// What is missing.
        message: String,
    },
}

/// Reads the FHIR package (.tgz of `hl7.fhir.r4.core`) and returns, per
/// concrete resource type (sorted by name), the text of its schema file.
pub fn generate(
    package: &Path,
    options: &GenerateOptions,
) -> Result<BTreeMap<String, String>, GenerateError> {
    let contents = read_package(package)?;
    let catalog = Catalog::new(&contents.definitions);
    if catalog.resources.is_empty() {
        return Err(GenerateError::Package {
            package: package.to_path_buf(),
            message: "no concrete resource StructureDefinition found".to_string(),
        });
    }
    let generator = Generator {
        package,
        catalog: &catalog,
        options,
    };
    let mut schemas = BTreeMap::new();
    for (name, definition) in &catalog.resources {
        let lines = generator.expand_resource(definition)?;
        let header = header_line(name, &contents.label, options);
        schemas.insert((*name).to_string(), render(&header, &lines));
    }
    Ok(schemas)
}

/// Prefix of the FHIRPath system types used for primitive values in snapshots.
const SYSTEM_TYPE_PREFIX: &str = "http://hl7.org/fhirpath/System.";
/// Extension on a type that carries the FHIR type of a system-typed element.
const FHIR_TYPE_EXTENSION: &str =
    "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type";
/// Prefix of the canonical URL of core StructureDefinitions.
const CORE_SD_PREFIX: &str = "http://hl7.org/fhir/StructureDefinition/";
/// `value[x]` types of the fixed `Extension` struct, in output order.
const EXTENSION_VALUE_TYPES: [&str; 12] = [
    "boolean",
    "integer",
    "decimal",
    "string",
    "code",
    "uri",
    "date",
    "dateTime",
    "Coding",
    "CodeableConcept",
    "Quantity",
    "Reference",
];
/// Elements of datatypes left to the overflow column: rare in bulk data, and each
/// would add a deep struct to every use of the datatype (a logical reference's
/// identifier adds 15 columns to each of the dozens of references of a claim).
const OMITTED_ELEMENTS: [&str; 1] = ["Reference.identifier"];
/// Type code printed for backbone elements and `contentReference` nodes.
const BACKBONE: &str = "BackboneElement";

// ---------------------------------------------------------------------------
// Reading the package
// ---------------------------------------------------------------------------

/// The subset of a StructureDefinition the generator uses.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDefinition {
    resource_type: String,
    #[serde(rename = "type")]
    type_name: Option<String>,
    kind: Option<String>,
    derivation: Option<String>,
    #[serde(rename = "abstract", default)]
    is_abstract: bool,
    base_definition: Option<String>,
    snapshot: Option<RawSnapshot>,
}

#[derive(Debug, Deserialize)]
struct RawSnapshot {
    #[serde(default)]
    element: Vec<RawElement>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawElement {
    path: String,
    max: Option<String>,
    #[serde(rename = "type", default)]
    types: Vec<RawType>,
    content_reference: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawType {
    code: String,
    #[serde(default)]
    extension: Vec<RawExtension>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawExtension {
    url: String,
    value_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawManifest {
    name: String,
    version: String,
}

/// One StructureDefinition of the package with its snapshot indexed by parent path.
#[derive(Debug)]
struct Definition {
    entry: String,
    type_name: String,
    kind: String,
    derivation: String,
    is_abstract: bool,
    base_definition: Option<String>,
    elements: Vec<RawElement>,
    /// Parent element path -> indices of its direct children, in snapshot order.
    children: HashMap<String, Vec<usize>>,
}

impl Definition {
    fn new(entry: String, raw: RawDefinition) -> Self {
        let elements = raw.snapshot.map(|s| s.element).unwrap_or_default();
        let mut children: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, element) in elements.iter().enumerate() {
            if let Some((parent, _)) = element.path.rsplit_once('.') {
                children.entry(parent.to_string()).or_default().push(index);
            }
        }
        Self {
            entry,
            type_name: raw.type_name.unwrap_or_default(),
            kind: raw.kind.unwrap_or_default(),
            derivation: raw.derivation.unwrap_or_default(),
            is_abstract: raw.is_abstract,
            base_definition: raw.base_definition,
            elements,
            children,
        }
    }

    /// Path of the snapshot's root element (e.g. `Quantity`).
    fn root_path(&self) -> &str {
        self.elements
            .first()
            .map_or(self.type_name.as_str(), |e| e.path.as_str())
    }

    /// Direct children of `path`, in snapshot order.
    fn children_of<'d>(&'d self, path: &str) -> impl Iterator<Item = &'d RawElement> + 'd {
        self.children
            .get(path)
            .into_iter()
            .flatten()
            .filter_map(|&index| self.elements.get(index))
    }

    fn has_element(&self, path: &str) -> bool {
        self.elements.iter().any(|e| e.path == path)
    }
}

/// What was read from the package.
struct PackageContents {
    /// `<name> <version>` from `package/package.json`.
    label: String,
    definitions: Vec<Definition>,
}

/// Reads `package/package.json` and every `package/StructureDefinition-*.json`
/// whose `resourceType` is `StructureDefinition`.
fn read_package(package: &Path) -> Result<PackageContents, GenerateError> {
    let file = File::open(package).map_err(|source| GenerateError::Open {
        package: package.to_path_buf(),
        source,
    })?;
    let archive_error = |entry: &str, source| GenerateError::Archive {
        package: package.to_path_buf(),
        entry: entry.to_string(),
        source,
    };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut label = None;
    let mut definitions = Vec::new();
    for entry in archive.entries().map_err(|e| archive_error("-", e))? {
        let mut entry = entry.map_err(|e| archive_error("-", e))?;
        let name = entry
            .path()
            .map_err(|e| archive_error("-", e))?
            .to_string_lossy()
            .into_owned();
        let wanted = EntryKind::of(&name);
        if wanted == EntryKind::Other {
            continue;
        }
        let mut text = String::new();
        entry
            .read_to_string(&mut text)
            .map_err(|e| archive_error(&name, e))?;
        let json_error = |source| GenerateError::Json {
            package: package.to_path_buf(),
            entry: name.clone(),
            source,
        };
        match wanted {
            EntryKind::Manifest => {
                let manifest: RawManifest = serde_json::from_str(&text).map_err(json_error)?;
                label = Some(format!("{} {}", manifest.name, manifest.version));
            }
            EntryKind::StructureDefinition => {
                let raw: RawDefinition = serde_json::from_str(&text).map_err(json_error)?;
                if raw.resource_type == "StructureDefinition" {
                    definitions.push(Definition::new(name, raw));
                }
            }
            EntryKind::Other => {}
        }
    }
    let label = label.ok_or_else(|| GenerateError::Package {
        package: package.to_path_buf(),
        message: "package/package.json is missing".to_string(),
    })?;
    Ok(PackageContents { label, definitions })
}

/// Which archive entries the generator reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryKind {
    Manifest,
    StructureDefinition,
    Other,
}

impl EntryKind {
    fn of(name: &str) -> Self {
        match name.strip_prefix("package/") {
            Some("package.json") => Self::Manifest,
            Some(file)
                if file.starts_with("StructureDefinition-")
                    && file.ends_with(".json")
                    && !file.contains('/') =>
            {
                Self::StructureDefinition
            }
            _ => Self::Other,
        }
    }
}

// ---------------------------------------------------------------------------
// Classifying the definitions
// ---------------------------------------------------------------------------

/// The definitions the generator needs, by role.
struct Catalog<'a> {
    /// Concrete resource types (kind resource, specialization, not abstract), by type.
    resources: BTreeMap<&'a str, &'a Definition>,
    /// Concrete complex datatypes (kind complex-type, specialization, not abstract), by type.
    datatypes: HashMap<&'a str, &'a Definition>,
    /// Primitive type codes (kind primitive-type).
    primitives: HashSet<&'a str>,
}

impl<'a> Catalog<'a> {
    fn new(definitions: &'a [Definition]) -> Self {
        let mut catalog = Catalog {
            resources: BTreeMap::new(),
            datatypes: HashMap::new(),
            primitives: HashSet::new(),
        };
        for definition in definitions {
            let concrete = definition.derivation == "specialization" && !definition.is_abstract;
            let name = definition.type_name.as_str();
            match definition.kind.as_str() {
                "resource" if concrete => {
                    catalog.resources.insert(name, definition);
                }
                "complex-type" if concrete => {
                    catalog.datatypes.insert(name, definition);
                }
                "primitive-type" => {
                    catalog.primitives.insert(name);
                }
                _ => {}
            }
        }
        catalog
    }

    fn is_primitive(&self, code: &str) -> bool {
        code.starts_with(SYSTEM_TYPE_PREFIX) || self.primitives.contains(code)
    }

    /// The definition whose elements expand a datatype: the datatype itself,
    /// or, for specializations of another concrete datatype (Age, Count, Distance,
    /// Duration on Quantity), that base datatype.
    fn datatype_elements(&self, mut definition: &'a Definition) -> &'a Definition {
        // Bounded walk up the base chain; stops at abstract bases (Element, BackboneElement).
        for _ in 0..8 {
            let base = definition
                .base_definition
                .as_deref()
                .and_then(|url| url.strip_prefix(CORE_SD_PREFIX))
                .and_then(|name| self.datatypes.get(name));
            match base {
                Some(base) => definition = base,
                None => break,
            }
        }
        definition
    }
}

// ---------------------------------------------------------------------------
// Expansion
// ---------------------------------------------------------------------------

/// Maximum cardinality as printed in the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Max {
    One,
    Many,
}

impl Max {
    fn parse(max: &str) -> Self {
        if max == "1" { Max::One } else { Max::Many }
    }
}

impl fmt::Display for Max {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Max::One => "1",
            Max::Many => "*",
        })
    }
}

/// One line of a schema file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    path: String,
    code: String,
    max: Max,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.path, self.code, self.max)
    }
}

/// Which children of an element are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Direct children of a resource: everything but `contained`.
    ResourceRoot,
    /// Backbone elements of a resource: no `id`, `extension`, `modifierExtension`
    /// (extensions are typed at the resource root only: below it they would multiply
    /// the columns of every backbone element).
    ResourceBackbone,
    /// A datatype and its backbone parts: no `id`, `extension`, `modifierExtension`.
    Datatype,
}

impl Mode {
    fn excludes(self, name: &str) -> bool {
        match self {
            Mode::ResourceRoot => name == "contained",
            Mode::ResourceBackbone => matches!(name, "id" | "extension" | "modifierExtension"),
            Mode::Datatype => matches!(name, "id" | "extension" | "modifierExtension"),
        }
    }

    /// Mode of the children of a backbone element found in this mode.
    fn backbone(self) -> Self {
        match self {
            Mode::Datatype => Mode::Datatype,
            Mode::ResourceRoot | Mode::ResourceBackbone => Mode::ResourceBackbone,
        }
    }
}

/// Where an expansion currently is.
#[derive(Debug, Clone)]
struct Scope<'a> {
    /// Snapshot that backbone children and content references come from.
    source: &'a Definition,
    mode: Mode,
    /// Output path of the enclosing struct (empty at the resource root).
    prefix: String,
    /// Depth of the enclosing struct (0 at the resource root).
    depth: usize,
    /// Number of `Extension` structs on the path.
    extensions: usize,
    /// Datatypes on the path (own and resolved type codes).
    datatypes: Vec<&'a str>,
}

impl<'a> Scope<'a> {
    fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{}", self.prefix, name)
        }
    }

    /// Scope of the children of struct `name`.
    fn enter(&self, name: &str, source: &'a Definition, mode: Mode) -> Self {
        Scope {
            source,
            mode,
            prefix: self.path(name),
            depth: self.depth + 1,
            extensions: self.extensions,
            datatypes: self.datatypes.clone(),
        }
    }
}

/// Expands resource definitions into schema lines.
struct Generator<'a> {
    package: &'a Path,
    catalog: &'a Catalog<'a>,
    options: &'a GenerateOptions,
}

impl<'a> Generator<'a> {
    /// All lines of one resource type.
    fn expand_resource(&self, resource: &'a Definition) -> Result<Vec<Line>, GenerateError> {
        if resource.elements.is_empty() {
            return Err(self.definition_error(resource, resource.root_path(), "no snapshot"));
        }
        let scope = Scope {
            source: resource,
            mode: Mode::ResourceRoot,
            prefix: String::new(),
            depth: 0,
            extensions: 0,
            datatypes: Vec::new(),
        };
        self.expand_children(&scope, resource.root_path())
    }

    /// Lines of the kept children of snapshot element `parent` of `scope.source`.
    fn expand_children(&self, scope: &Scope<'a>, parent: &str) -> Result<Vec<Line>, GenerateError> {
        let mut lines = Vec::new();
        for element in scope.source.children_of(parent) {
            let name = last_segment(&element.path);
            if scope.mode.excludes(name)
                || OMITTED_ELEMENTS.contains(&element.path.as_str())
                || element.types.iter().any(|t| t.code == "Resource")
            {
                continue;
            }
            lines.extend(self.expand_element(scope, element)?);
        }
        Ok(lines)
    }

    /// Lines of one snapshot element: one node per type of a choice element,
    /// or a backbone node for a `contentReference`.
    fn expand_element(
        &self,
        scope: &Scope<'a>,
        element: &'a RawElement,
    ) -> Result<Vec<Line>, GenerateError> {
        let max = element
            .max
            .as_deref()
            .map(Max::parse)
            .ok_or_else(|| self.definition_error(scope.source, &element.path, "no max"))?;
        let name = last_segment(&element.path);
        if let Some(reference) = &element.content_reference {
            let target = self.content_reference_target(scope.source, element, reference)?;
            return self.backbone_node(scope, name, max, target);
        }
        if element.types.is_empty() {
            return Err(self.definition_error(scope.source, &element.path, "element has no type"));
        }
        let mut lines = Vec::new();
        for element_type in &element.types {
            let json_name = match name.strip_suffix("[x]") {
                Some(stem) => format!("{stem}{}", upper_first(&element_type.code)),
                None => name.to_string(),
            };
            let code = self.leaf_code(scope, name, element_type);
            lines.extend(self.typed_node(scope, &json_name, &code, max, &element.path)?);
        }
        Ok(lines)
    }

    /// Lines of node `name` of type `code`: a leaf, a backbone, an Extension or a datatype.
    fn typed_node(
        &self,
        scope: &Scope<'a>,
        name: &str,
        code: &str,
        max: Max,
        element_path: &'a str,
    ) -> Result<Vec<Line>, GenerateError> {
        if self.catalog.is_primitive(code) {
            return Ok(vec![Line {
                path: scope.path(name),
                code: code.to_string(),
                max,
            }]);
        }
        match code {
            "BackboneElement" | "Element" => self.backbone_node(scope, name, max, element_path),
            "Extension" => self.extension_node(scope, name, max),
            _ => self.datatype_node(scope, name, code, max, element_path),
        }
    }

    /// A backbone node whose children are those of `source_path` in the same snapshot.
    fn backbone_node(
        &self,
        scope: &Scope<'a>,
        name: &str,
        max: Max,
        source_path: &str,
    ) -> Result<Vec<Line>, GenerateError> {
        let inner = scope.enter(name, scope.source, scope.mode.backbone());
        self.struct_node(scope, name, BACKBONE, max, &inner, |inner| {
            self.expand_children(inner, source_path)
        })
    }

    /// A complex datatype node (rule 7: omitted if its type is already on the path).
    fn datatype_node(
        &self,
        scope: &Scope<'a>,
        name: &str,
        code: &str,
        max: Max,
        element_path: &str,
    ) -> Result<Vec<Line>, GenerateError> {
        let Some((&own, &own_definition)) = self.catalog.datatypes.get_key_value(code) else {
            let message = format!("unknown type code {code:?}");
            return Err(self.definition_error(scope.source, element_path, &message));
        };
        let definition = self.catalog.datatype_elements(own_definition);
        let resolved = definition.type_name.as_str();
        if scope.datatypes.contains(&own) || scope.datatypes.contains(&resolved) {
            return Ok(Vec::new());
        }
        let mut inner = scope.enter(name, definition, Mode::Datatype);
        inner.datatypes.push(own);
        if resolved != own {
            inner.datatypes.push(resolved);
        }
        self.struct_node(scope, name, code, max, &inner, |inner| {
            self.expand_children(inner, definition.root_path())
        })
    }

    /// The fixed Extension struct: `url`, the `value<T>` columns and, while the
    /// number of Extension structs on the path is below `extension_depth`, a
    /// nested `extension`.
    fn extension_node(
        &self,
        scope: &Scope<'a>,
        name: &str,
        max: Max,
    ) -> Result<Vec<Line>, GenerateError> {
        if scope.extensions >= self.options.extension_depth {
            return Ok(Vec::new());
        }
        let mut inner = scope.enter(name, scope.source, Mode::Datatype);
        inner.extensions += 1;
        self.struct_node(scope, name, "Extension", max, &inner, |inner| {
            let mut lines = vec![Line {
                path: inner.path("url"),
                code: "uri".to_string(),
                max: Max::One,
            }];
            for code in EXTENSION_VALUE_TYPES {
                let value_name = format!("value{}", upper_first(code));
                let element_path = "Extension.value[x]";
                lines.extend(self.typed_node(inner, &value_name, code, Max::One, element_path)?);
            }
            lines.extend(self.extension_node(inner, "extension", Max::Many)?);
            Ok(lines)
        })
    }

    /// Emits struct node `name` followed by its children, or nothing if it is
    /// deeper than `max_depth` or has no children.
    fn struct_node(
        &self,
        scope: &Scope<'a>,
        name: &str,
        code: &str,
        max: Max,
        inner: &Scope<'a>,
        children: impl FnOnce(&Scope<'a>) -> Result<Vec<Line>, GenerateError>,
    ) -> Result<Vec<Line>, GenerateError> {
        if inner.depth > self.options.max_depth {
            return Ok(Vec::new());
        }
        let children = children(inner)?;
        if children.is_empty() {
            return Ok(Vec::new());
        }
        let mut lines = Vec::with_capacity(children.len() + 1);
        lines.push(Line {
            path: scope.path(name),
            code: code.to_string(),
            max,
        });
        lines.extend(children);
        Ok(lines)
    }

    /// Snapshot path referenced by a `contentReference` (`#Questionnaire.item`).
    fn content_reference_target<'r>(
        &self,
        source: &Definition,
        element: &RawElement,
        reference: &'r str,
    ) -> Result<&'r str, GenerateError> {
        let target = reference
            .rsplit_once('#')
            .map(|(_, path)| path)
            .filter(|path| source.has_element(path));
        target.ok_or_else(|| {
            let message =
                format!("contentReference {reference:?} does not name an element of this snapshot");
            self.definition_error(source, &element.path, &message)
        })
    }

    /// Type code printed for a type: system types (`http://hl7.org/fhirpath/System.String`)
    /// use their `structuredefinition-fhir-type` extension. Resource `id` is
    /// printed as `id`: R4 snapshots tag it `string`, but its FHIR type is `id`.
    fn leaf_code(&self, scope: &Scope<'a>, name: &str, element_type: &RawType) -> String {
        let code = element_type.code.as_str();
        let Some(system) = code.strip_prefix(SYSTEM_TYPE_PREFIX) else {
            return code.to_string();
        };
        if scope.mode == Mode::ResourceRoot && name == "id" {
            return "id".to_string();
        }
        element_type
            .extension
            .iter()
            .find(|e| e.url == FHIR_TYPE_EXTENSION)
            .and_then(|e| e.value_url.clone())
            .unwrap_or_else(|| system.to_ascii_lowercase())
    }

    fn definition_error(
        &self,
        definition: &Definition,
        element: &str,
        message: &str,
    ) -> GenerateError {
        GenerateError::Definition {
            package: self.package.to_path_buf(),
            entry: definition.entry.clone(),
            element: element.to_string(),
            message: message.to_string(),
        }
    }
}

// ---------------------------------------------------------------------------
// Rendering and small helpers
// ---------------------------------------------------------------------------

fn header_line(name: &str, label: &str, options: &GenerateOptions) -> String {
    format!(
        "# {name}: generated by fhir-ingest from {label} (max_depth {}, extension_depth {}). Do not edit.",
        options.max_depth, options.extension_depth
    )
}

fn render(header: &str, lines: &[Line]) -> String {
    let mut text = String::with_capacity(32 * (lines.len() + 1));
    text.push_str(header);
    text.push('\n');
    for line in lines {
        text.push_str(&line.to_string());
        text.push('\n');
    }
    text
}

fn last_segment(path: &str) -> &str {
    path.rsplit_once('.').map_or(path, |(_, last)| last)
}

/// `dateTime` -> `DateTime` (suffix of a choice element's JSON name).
fn upper_first(code: &str) -> String {
    let mut chars = code.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn package_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fhir/hl7.fhir.r4.core-4.0.1.tgz")
    }

    /// Schemas with the default options, generated once; `None` if the package is absent.
    fn schemas() -> Option<&'static BTreeMap<String, String>> {
        static SCHEMAS: OnceLock<Option<BTreeMap<String, String>>> = OnceLock::new();
        SCHEMAS
            .get_or_init(|| {
                let path = package_path();
                if !path.exists() {
                    println!("note: {} is absent, skipping", path.display());
                    return None;
                }
                Some(generate(&path, &GenerateOptions::default()).expect("generate"))
            })
            .as_ref()
    }

    fn schema<'s>(schemas: &'s BTreeMap<String, String>, name: &str) -> &'s str {
        schemas
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {name}"))
    }

    fn has_line(text: &str, line: &str) -> bool {
        text.lines().any(|l| l == line)
    }

    #[test]
    fn patient_lines() {
        let Some(schemas) = schemas() else { return };
        let patient = schema(schemas, "Patient");
        assert!(patient.starts_with(
            "# Patient: generated by fhir-ingest from hl7.fhir.r4.core 4.0.1 (max_depth 5, extension_depth 2). Do not edit.\n"
        ));
        for line in [
            "id id 1",
            "meta Meta 1",
            "meta.profile canonical *",
            "extension Extension *",
            "extension.url uri 1",
            "extension.extension Extension *",
            "identifier.type.coding.system uri 1",
            "birthDate date 1",
            "deceasedBoolean boolean 1",
            "deceasedDateTime dateTime 1",
            "name HumanName *",
            "name.given string *",
            "text.div xhtml 1",
            "contact BackboneElement *",
            "contact.name.family string 1",
        ] {
            assert!(has_line(patient, line), "Patient lacks {line:?}");
        }
        for prefix in [
            "extension.extension.extension ",
            "contact.id ",
            "contact.modifierExtension ",
            "contact.extension ",
            "name.extension ",
            "managingOrganization.identifier",
        ] {
            assert!(
                !patient.lines().any(|l| l.starts_with(prefix)),
                "Patient has {prefix:?}"
            );
        }
    }

    #[test]
    fn observation_lines() {
        let Some(schemas) = schemas() else { return };
        let observation = schema(schemas, "Observation");
        assert!(has_line(observation, "valueQuantity.value decimal 1"));
        assert!(has_line(observation, "code.coding.code code 1"));
        assert!(has_line(
            observation,
            "component.referenceRange BackboneElement *"
        ));
    }

    #[test]
    fn recursion_is_cut() {
        let Some(schemas) = schemas() else { return };
        let patient = schema(schemas, "Patient");
        assert!(has_line(patient, "identifier.assigner.reference string 1"));
        assert!(
            !patient
                .lines()
                .any(|l| l.starts_with("identifier.assigner.identifier "))
        );
        let observation = schema(schemas, "Observation");
        assert!(has_line(observation, "code.coding.code code 1"));
        assert!(
            !observation
                .lines()
                .any(|l| l.starts_with("code.coding.coding "))
        );
    }

    #[test]
    fn no_contained_and_no_resource_fields() {
        let Some(schemas) = schemas() else { return };
        for (name, text) in schemas {
            assert!(
                !text.lines().any(|l| l.starts_with("contained ")),
                "{name} has contained"
            );
            assert!(!text.contains(" Resource "), "{name} has a Resource node");
        }
        assert!(
            !schema(schemas, "Bundle")
                .lines()
                .any(|l| l.starts_with("entry.resource "))
        );
    }

    #[test]
    fn content_reference_is_expanded() {
        let Some(schemas) = schemas() else { return };
        let questionnaire = schema(schemas, "Questionnaire");
        assert!(has_line(questionnaire, "item.item BackboneElement *"));
        assert!(has_line(questionnaire, "item.item.linkId string 1"));
    }

    #[test]
    fn struct_depth_is_limited() {
        let Some(schemas) = schemas() else { return };
        let max = GenerateOptions::default().max_depth;
        for (name, text) in schemas {
            for line in text.lines().skip(1) {
                let mut fields = line.split(' ');
                let (Some(path), Some(code)) = (fields.next(), fields.next()) else {
                    panic!("{name}: bad line {line:?}");
                };
                let segments = path.split('.').count();
                let is_leaf = code.starts_with(|c: char| c.is_ascii_lowercase());
                let struct_depth = if is_leaf { segments - 1 } else { segments };
                assert!(struct_depth <= max, "{name}: {line:?} is too deep");
            }
        }
    }

    #[test]
    fn resource_type_count() {
        let Some(schemas) = schemas() else { return };
        println!("resource types: {}", schemas.len());
        assert!(
            (140..=150).contains(&schemas.len()),
            "{} resource types",
            schemas.len()
        );
        assert!(schemas.contains_key("Bundle") && schemas.contains_key("Parameters"));
        assert!(!schemas.contains_key("DomainResource") && !schemas.contains_key("Resource"));
    }

    #[test]
    fn output_is_deterministic() {
        let Some(first) = schemas() else { return };
        let second = generate(&package_path(), &GenerateOptions::default()).expect("generate");
        assert_eq!(first, &second);
    }

    #[test]
    fn missing_package_is_an_open_error() {
        let path = Path::new("/nonexistent/package.tgz");
        let error = generate(path, &GenerateOptions::default()).expect_err("must fail");
        assert!(matches!(error, GenerateError::Open { .. }));
        assert!(error.to_string().contains("/nonexistent/package.tgz"));
    }

    #[test]
    fn helpers() {
        assert_eq!(upper_first("dateTime"), "DateTime");
        assert_eq!(upper_first(""), "");
        assert_eq!(last_segment("Patient.deceased[x]"), "deceased[x]");
        assert_eq!(Max::parse("1"), Max::One);
        assert_eq!(Max::parse("*"), Max::Many);
        assert_eq!(Max::parse("2"), Max::Many);
        assert_eq!(
            EntryKind::of("package/StructureDefinition-Patient.json"),
            EntryKind::StructureDefinition
        );
        assert_eq!(
            EntryKind::of("package/other/StructureDefinition-x.json"),
            EntryKind::Other
        );
        assert_eq!(EntryKind::of("package/package.json"), EntryKind::Manifest);
    }
}
