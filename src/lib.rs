//! ferry: the database-migration runbook for apps on AWS, and its local rehearsal.
//!
//! The binary (`main.rs`) parses arguments with [`cli`], and [`commands`] turns
//! them into work: [`config`] is the validated ferry.toml, [`runbook`] drives the
//! steps over the [`provider`] traits, and [`output`] tells the operator.

pub mod cli;
pub mod commands;
pub mod config;
pub mod db_url;
pub mod migrations;
pub mod output;
pub mod provenance;
pub mod provider;
pub mod runbook;
pub mod state;
