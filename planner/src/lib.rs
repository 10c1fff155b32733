//! Tributary's planner: the model of `config.toml` and config file reading (`config`), the catalog
//! registry built from config, DataFusion session setup, and the fragmenter that cuts a physical plan
//! into stages at exchange boundaries (plus EXPLAIN rendering).
//!
//! The planner decides *what* runs where in the plan (stages, partitioning, exchanges); it never runs
//! anything itself: scheduling and task execution belong to `exec`.

pub mod config;
pub mod explain;
pub mod fragment;
pub mod pushdown;
pub mod registry;
pub mod session;

pub use fragment::{Stage, StageOutput, StagePlan, fragment};
pub use registry::CatalogRegistry;
