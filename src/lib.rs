//! Stevedore: container, pod and node resource metrics for Prometheus.
//!
//! Data flow of a scrape: `http` → `scrape` (coalesce, reuse, run collectors concurrently) →
//! `collector::*` (typed samples from kernel files) → `expose` (samples to metric families).

pub mod cgroup;
pub mod cli;
pub mod collector;
pub mod expose;
pub mod http;
pub mod identity;
pub mod scrape;
pub mod source;
