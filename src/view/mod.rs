//! SQL on FHIR v2 views: ViewDefinitions evaluated over resources parsed into
//! simd-json tapes, with their rows appended to Arrow arrays.
//!
//! A [`ViewDefinition`] (<https://sql-on-fhir.org/ig/StructureDefinition-ViewDefinition.html>)
//! flattens one resource type into a table: `select`s of `column`s whose values are
//! FHIRPath expressions, iterated with `forEach`, `forEachOrNull` or `repeat`, combined
//! with nested `select`s (a cartesian product) and `unionAll` (a concatenation), and
//! filtered by `where`. The view is loaded and compiled once
//! ([`ViewDefinition::from_json`]): its structure is checked, every expression parsed
//! and checked to be inside the supported FHIRPath subset, so a bad view is refused
//! with the JSON Pointer of the problem (`/select/0/column/2/path`) before any data is
//! read. A [`ViewBuilder`] then evaluates it over resources one at a time, straight on
//! the tape the decoder already parsed (no DOM per resource), and hands over Arrow
//! record batches.
//!
//! # Supported FHIRPath
//!
//! - paths, choice elements (`value` matches `valueQuantity`, `valueString`, ...),
//!   `Patient.name` (a path may start with its resource type), indexers `[n]`,
//!   `$this`, `$index`, `%constants` of the view, `%rowIndex`, `%resource`;
//! - literals: `{}`, booleans, strings, integers, decimals, `@` dates, date-times and
//!   times (not quantities);
//! - operators: `.`, `[]`, unary `-`, `*` `/` `div` `mod`, `+` `-` `&`, `is` `as`, `|`,
//!   `<` `<=` `>` `>=`, `=` `!=` `~` `!~`, `in` `contains`, and `and` `or` `xor`
//!   `implies` with three-valued logic over empty collections;
//! - functions: `empty`, `exists`, `all`, `allTrue`, `anyTrue`, `allFalse`, `anyFalse`,
//!   `count`, `distinct`, `isDistinct`, `where`, `select`, `ofType`, `is`, `as`,
//!   `first`, `last`, `tail`, `skip`, `take`, `single`, `not`, `iif`, `extension`,
//!   `join`, `lowBoundary`, `highBoundary`, `toString`, `toInteger`, `toDecimal`,
//!   `hasValue`, `startsWith`, `endsWith`, `contains`, `length`, `upper`, `lower`,
//!   `trim`, `substring`, `union`, `combine`, and SQL on FHIR's `getResourceKey()`
//!   (the resource's `id`) and `getReferenceKey([type])` (the id part of a reference,
//!   `Patient/123` gives `123`; empty if the type does not match).
//!
//! Anything else is refused when the view is loaded.
//!
//! # Types
//!
//! The engine has no model of FHIR's element types: it knows the type of a value when
//! a choice element's key names it (`value` matches `valueQuantity`, a `Quantity`; only
//! the names of R4's choice elements match such keys), when a literal, constant,
//! function or `ofType` makes it, and otherwise judges by the JSON value (a JSON string
//! compared with a date is read as a date). A column's Arrow type comes from its `type`
//! (`string`, `code`, `id`, `uri`, ... and `date`, `dateTime`, `instant`, `time` as
//! Utf8 text; `boolean`; `integer`, `unsignedInt`, `positiveInt` as Int32; `integer64`
//! as Int64; `decimal` as Float64), or when absent from the type the expression is
//! known to yield, else Utf8. `collection: true` makes it a list. A column that yields
//! more than one value without `collection: true` is an error for that resource.
//!
//! # Rows
//!
//! [`ViewBuilder::append_resource`] returns how many rows a resource gave (zero for a
//! resource of another type, or one that `where` filters out), so that a caller can add
//! key or lineage columns of its own; an [`EvalError`] leaves the builder as it was.
//!
//! Conformance: the official test suite (`tests/sql-on-fhir-v2/`) runs in
//! `tests/sof_conformance.rs`, which writes the specification's test report.

mod builder;
mod definition;
pub(crate) mod fhirpath;
mod rows;

pub use builder::ViewBuilder;
pub use definition::{ViewDefinition, ViewError};
pub use fhirpath::PathError;
pub use rows::EvalError;
