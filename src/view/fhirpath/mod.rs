//! The FHIRPath subset of SQL on FHIR views, evaluated over simd-json tapes.
//!
//! Text goes through [`lexer`], [`parser`] (a syntax tree) and [`compile`] (names
//! resolved, the subset checked, types inferred where known) once per view; [`eval`]
//! then runs the compiled expression over each resource without building a DOM: values
//! are tape indices or small computed values ([`value::Item`]).

pub(crate) mod compile;
pub(crate) mod eval;
mod lexer;
pub(crate) mod number;
pub(crate) mod parser;
pub(crate) mod temporal;
pub(crate) mod types;
pub(crate) mod value;

/// A FHIRPath expression that cannot be compiled: not FHIRPath, or outside the
/// supported subset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at character {})", .pos + 1)]
pub struct PathError {
    /// Byte offset in the expression text.
    pub pos: usize,
    /// What is wrong.
    pub message: String,
}

impl PathError {
    pub(crate) fn new(pos: usize, message: impl Into<String>) -> Self {
        Self {
            pos,
            message: message.into(),
        }
    }
}
