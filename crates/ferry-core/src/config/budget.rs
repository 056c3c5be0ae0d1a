//! `api_budget`: how many AWS requests a second one ferry process may make to
//! each service. The AWS provider puts one token bucket per service in front
//! of its HTTP client (provider/aws/budget.rs) and sizes it from here.
//!
//! AWS throttles per account and Region, not per process, so no single ferry
//! can keep an account inside its quotas: the defaults keep one ferry well
//! inside them, and a team that runs N deploys into one account at once sizes
//! each ferry's share with this table (e.g. `api_budget = { logs = 2 }`).

use serde::Serialize;

use super::EnvError;
use super::raw::RawApiBudget;

/// Requests a second per process, per service (each also the bucket's burst).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ApiBudget {
    pub rds: f64,
    pub ecs: f64,
    pub logs: f64,
    pub apprunner: f64,
    pub cloudformation: f64,
}

/// The defaults, from the published throttling figures:
/// - RDS: about 12 describe calls a second sustained per account.
/// - ECS: its read buckets refill at 20 tokens a second (cluster reads hold
///   50); task reads are at least as generous.
/// - CloudWatch Logs: FilterLogEvents 5 a second per account, GetLogEvents 10
///   (later raised; 5 is the stricter figure for the whole service).
/// - App Runner and CloudFormation publish no figure ferry relies on: 5.
pub const DEFAULT_API_BUDGET: ApiBudget =
    ApiBudget { rds: 12.0, ecs: 20.0, logs: 5.0, apprunner: 5.0, cloudformation: 5.0 };

/// Above this a budget is a typo, not a quota (no AWS read quota is that high).
const MAX_PER_SECOND: f64 = 1000.0;
/// Below this (one request every 100 s) a budget is a typo too: a wait of
/// ferry's would poll less often than its own timeouts allow, and the bucket's
/// refill interval (1 / rate) would overflow a `Duration` long before 1e-300.
const MIN_PER_SECOND: f64 = 0.01;

impl ApiBudget {
    pub fn is_default(&self) -> bool {
        *self == DEFAULT_API_BUDGET
    }
}

impl Default for ApiBudget {
    fn default() -> Self {
        DEFAULT_API_BUDGET
    }
}

/// Resolve `api_budget`: every key optional, each a number of requests a
/// second above 0 (fractions allowed: 0.5 is one request every 2 s).
pub(super) fn api_budget(raw: Option<RawApiBudget>) -> Result<ApiBudget, EnvError> {
    let r = raw.unwrap_or_default();
    let d = DEFAULT_API_BUDGET;
    Ok(ApiBudget {
        rds: rate("rds", r.rds, d.rds)?,
        ecs: rate("ecs", r.ecs, d.ecs)?,
        logs: rate("logs", r.logs, d.logs)?,
        apprunner: rate("apprunner", r.apprunner, d.apprunner)?,
        cloudformation: rate("cloudformation", r.cloudformation, d.cloudformation)?,
    })
}

fn rate(key: &str, value: Option<f64>, default: f64) -> Result<f64, EnvError> {
    match value {
        None => Ok(default),
        Some(v) if v.is_finite() && (MIN_PER_SECOND..=MAX_PER_SECOND).contains(&v) => Ok(v),
        Some(v) => Err((
            None,
            format!(
                "api_budget.{key} = {v} must be a number of requests a second from {MIN_PER_SECOND} to \
                 {MAX_PER_SECOND} (e.g. {key} = 2.5, or 0.5 for one request every 2 s); the default is {default}"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_keys_keep_the_defaults_and_set_ones_replace_them() {
        let b = api_budget(Some(RawApiBudget { logs: Some(0.5), ..Default::default() })).unwrap();
        assert_eq!(b.logs, 0.5);
        assert_eq!(b.rds, DEFAULT_API_BUDGET.rds);
        assert!(!b.is_default());
        assert!(api_budget(None).unwrap().is_default());
    }

    #[test]
    fn zero_negative_and_absurd_budgets_are_refused_naming_the_key() {
        for v in [0.0, -1.0, f64::INFINITY, f64::NAN, 5000.0, 1e-300, 0.001, f64::MIN_POSITIVE] {
            let e = api_budget(Some(RawApiBudget { rds: Some(v), ..Default::default() })).unwrap_err();
            assert!(e.1.starts_with("api_budget.rds = "), "{}", e.1);
        }
    }
}
