//! ferry: the database-migration runbook for apps on AWS, and its local rehearsal.
//!
//! This crate is the binary's: [`cli`] parses arguments (clap only) and
//! [`commands`] turns them into work, building the providers (`ferry_aws`,
//! `ferry_local`) an environment names and handing them to the runbook
//! (`ferry_core::runbook`), which drives them through the provider traits alone.

pub mod cli;
pub mod commands;
