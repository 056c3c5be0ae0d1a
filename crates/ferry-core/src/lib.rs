//! ferry's core: the run record and the runbook that drives it, the provider
//! and state traits the runbook drives, ferry.toml's validated configuration,
//! and what the operator sees. It depends on no AWS SDK and no database driver
//! (a test reads `cargo metadata` to keep it so): the providers are crates of
//! their own (`ferry-aws`, `ferry-local`) and the binary wires them in.

pub mod config;
pub mod db_url;
pub mod exit;
pub mod output;
pub mod provenance;
pub mod provider;
pub mod runbook;
pub mod state;
