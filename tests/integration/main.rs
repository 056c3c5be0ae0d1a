//! ferry's integration tests, one module per area, in one test binary: the
//! helpers in `common` are compiled once, and the whole suite links once.
//! tests/README.md says how to write one.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

mod alembic_graph;
mod apprunner_e2e;
mod aws_e2e;
mod aws_proxy;
mod aws_rehearse;
mod aws_sparse;
mod cli_check;
mod cli_commands;
mod cli_deploy;
mod cli_input;
mod cli_output;
mod cli_rehearse;
mod data_safety;
mod db_tls;
mod docs_examples;
mod doctor;
mod fault_matrix;
mod iam_policy;
mod image_e2e;
mod image_runbook;
mod install;
mod json_shapes;
mod layers;
mod lock_safety;
mod positive_evidence;
mod postgres_e2e;
mod quickstart;
mod release;
mod s3_state;
mod scripts;
mod sparse_e2e;
mod state_faults;
mod state_lock;
mod workflows;
