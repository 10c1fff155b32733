//! Tributary's planner: the model of `config.toml` and config file reading ([`config`]), the catalog
//! registry built from config, DataFusion session setup, and the whole path from a statement to a
//! distributed plan ([`plan`]): logical planning, optimization with our pushdown rules, physical
//! planning, and the fragmenter that cuts the physical plan into stages at exchange boundaries (plus
//! EXPLAIN rendering). `exec` consumes the result, a [`PlannedStatement`].
//!
//! The planner decides *what* runs where in the plan (stages, partitioning, exchanges); it never runs
//! anything itself: scheduling and task execution belong to `exec`.

pub mod apply;
pub mod avg;
pub mod config;
pub mod conjuncts;
pub mod decimals;
pub mod explain;
pub mod extreme;
pub mod fragment;
pub mod group_window;
pub mod integers;
pub mod join_order;
pub mod join_sides;
pub mod limits;
pub mod nullable;
pub mod numeric;
pub mod plan;
pub mod pushdown;
pub mod registry;
pub mod semijoin;
pub mod session;
pub mod set_ops;
pub mod sizing;
pub mod statement_pushdown;
pub mod time_travel;
pub mod trino_catalog;
pub mod write;

pub use fragment::{Stage, StageOutput, StagePlan, fragment};
pub use plan::{DistributedPlan, PlanError, PlannedStatement, ScalarSubquery};
pub use registry::CatalogRegistry;
