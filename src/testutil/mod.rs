//! Helpers for the unit tests.

mod fixtures;
pub(crate) use fixtures::*;
