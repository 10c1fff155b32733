//! The server's view of `DIR/config.toml`. The model itself (every section, its defaults, its
//! checks and the command-line overrides) is `tributary_planner::config`, shared with the engine:
//! this module only re-exports what the front end (`main`, `auth`, `pgwire`) reads.

pub use tributary_planner::config::{AuthMethod, Config, LogFormat, NodeRole, Overrides};
