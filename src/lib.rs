//! Stevedore: container, pod and node resource metrics for Prometheus.
//!
//! Data flow of a scrape: `http` → `scrape` (the selected collectors, each run shared and reused) →
//! `collector::*` (kernel files and background caches into typed `sample`s) → `expose` (samples into
//! metric families, one table per family group). Background `source`s (Docker, Kubernetes, the kubelet)
//! keep caches current; `health` tracks them.
//!
//! Module layers, each importing only from those below it (no cycles):
//! `app` → `http` → `scrape` → `expose` → `sample` → `identity`, `parse`;
//! `collector` → `source` → `cgroup` → `sample`, `parse`; `cli` and `health` are leaves.
#![warn(unreachable_pub)]

mod app;
mod cgroup;
mod cli;
mod collector;
mod expose;
mod health;
mod http;
mod identity;
mod layers;
mod live;
mod parse;
mod sample;
mod scrape;
mod source;
mod sys;
#[cfg(test)]
mod testutil;
mod webconfig;

pub use app::main;

#[doc(hidden)]
pub mod devtools;
#[doc(hidden)]
pub mod fuzz;
