//! `ferry config validate`: ferry.toml read and checked, nothing reached.

use super::{CmdResult, Context, print_json};
use ferry_core::output::Redactor;
use serde_json::json;

pub fn validate(ctx: &Context) -> CmdResult {
    let names: Vec<&str> = ctx.config.envs.keys().map(String::as_str).collect();
    if ctx.json() {
        print_json(&json!({ "config": ctx.config.path, "valid": true, "environments": names }), &Redactor::default())?;
    } else {
        crate::outln!("{}: valid ({} environments: {})", ctx.config.path.display(), names.len(), names.join(", "))?;
    }
    Ok(0)
}
