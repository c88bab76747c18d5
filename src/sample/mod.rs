//! Typed samples: what collectors produce and `expose` renders. Data only: nothing here reads a file,
//! talks to a daemon or writes an exposition, so both sides depend on it and not on each other.
//! Everything a source may not give is an `Option`, so "omit, never zero" falls out of the types.

pub(crate) mod container;
pub(crate) mod kubelet;
pub(crate) mod node;
