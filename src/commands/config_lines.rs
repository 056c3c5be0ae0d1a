//! `ferry plan`'s view of an environment's settings: `key = value` lines whose
//! keys are spelled as a person writes them in ferry.toml (`database.url`,
//! `migration.cluster`), in a fixed order, whatever the resolved
//! configuration's own field names are. Pasted under `[env.NAME]`
//! (with `project` at the top) they load as the same environment.

use serde_json::Value;

use ferry_core::config::EnvConfig;
use ferry_core::state::Location;

/// Where each ferry.toml key's value is in the serialized [`EnvConfig`].
const KEYS: &[(&str, &str)] = &[
    ("provider", "/provider"),
    ("region", "/region"),
    ("stack", "/stack"),
    ("snapshot_prefix", "/snapshot_prefix"),
    ("confirm", "/confirm"),
    ("restore_on_failure", "/restore_on_failure"),
    ("restore_strategy", "/restore_strategy"),
    ("timeouts.snapshot", "/timeouts/snapshot"),
    ("timeouts.migration", "/timeouts/migration"),
    ("timeouts.restore", "/timeouts/restore"),
    ("timeouts.service", "/timeouts/service"),
    ("database.cluster", "/database/cluster"),
    ("database.url", "/database/url"),
    // provider = "aws": the URL that reaches the cluster, written next to `cluster`.
    ("database.url", "/database_url"),
    ("migration.runner", "/migration/runner"),
    ("migration.command", "/migration/command"),
    ("migration.image", "/migration/image"),
    ("migration.cluster", "/migration/ecs/cluster"),
    ("migration.task_definition", "/migration/ecs/task_definition"),
    ("migration.container", "/migration/ecs/container"),
    ("migration.subnets", "/migration/ecs/subnets"),
    ("migration.security_groups", "/migration/ecs/security_groups"),
    ("migration.assign_public_ip", "/migration/ecs/assign_public_ip"),
    ("migration.env", "/migration/env"),
    ("migration.lock_timeout", "/migration/lock_timeout"),
    // Printed only when set above 0.
    ("migration.lock_retries", "/migration/lock_retries"),
    ("migration.alembic.versions", "/migration/alembic/versions"),
    ("migration.alembic.version_table", "/migration/alembic/version_table"),
    ("service.apprunner_arn", "/service/apprunner_arn"),
    ("service.database_url_var", "/service/database_url_var"),
    ("health.url", "/health/url"),
    ("health.expect_status", "/health/expect_status"),
    ("health.timeout", "/health/timeout"),
    // Printed only for an environment that has a `rehearse` table.
    ("rehearse.when", "/rehearse/when"),
    ("rehearse.database_env", "/rehearse/database_env"),
    ("rehearse.instance_class", "/rehearse/instance_class"),
    ("rehearse.max_duration", "/rehearse/max_duration"),
    ("rehearse.max_exclusive_lock", "/rehearse/max_exclusive_lock"),
    ("rehearse.keep_clone", "/rehearse/keep_clone"),
    // Printed only when it differs from the defaults (then all five keys).
    ("api_budget", "/api_budget"),
    ("restore.stop_set_aside", "/restore/stop_set_aside"),
];

/// The top-level keys (`project`, and `state_dir` when the runs are kept in a
/// local directory), then the environment's settings: keys as in ferry.toml.
pub fn lines(env: &EnvConfig) -> Vec<String> {
    let v = serde_json::to_value(env).unwrap_or_default();
    let mut out = vec![format!("project = {}", toml_value(&Value::from(env.project.as_str())))];
    match &env.state {
        Location::Local(dir) => out.push(format!("state_dir = {}", toml_value(&Value::from(dir.to_string_lossy())))),
        Location::S3 { .. } => out.push(format!("state = {}", toml_value(&v["state"]))),
    }
    for (key, pointer) in KEYS {
        // No `rehearse` table, no rehearse keys; a default lock threshold is
        // not printed as if it had been written (written, it changes what an
        // unobservable lock means).
        if key.starts_with("rehearse.")
            && (!env.rehearse.configured
                || (*key == "rehearse.max_exclusive_lock" && !env.rehearse.max_exclusive_lock_set))
        {
            continue;
        }
        match v.pointer(pointer) {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                out.extend(map.iter().map(|(k, v)| format!("{key}.{} = {}", toml_key(k), toml_value(v))))
            }
            Some(value) => out.push(format!("{key} = {}", toml_value(value))),
        }
    }
    out
}

/// A key as TOML takes it: bare when it can be, else quoted.
fn toml_key(k: &str) -> String {
    let bare = !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare { k.to_string() } else { toml_value(&Value::from(k)) }
}

/// A value as TOML writes it (a JSON string is a valid TOML basic string).
fn toml_value(v: &Value) -> String {
    match v {
        Value::Array(items) => format!("[{}]", items.iter().map(toml_value).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::config::parse;

    /// The keys [`lines`] prints that belong at the top of ferry.toml, not in `[env.NAME]`.
    const TOP_LEVEL: [&str; 2] = ["project", "state_dir"];

    const AWS: &str = r#"project = "shop"
[env.prod]
region = "eu-west-1"
stack = "shop-prod"
confirm = true
database = { cluster = "${output:ClusterId}", url = "postgresql://ro@localhost:5433/shop" }
timeouts = { snapshot = "2h" }
migration = { runner = "ecs", cluster = "${output:EcsCluster}", task_definition = "shop-migrate", subnets = ["subnet-1", "subnet-2"], security_groups = ["sg-1"], container = "app", image = "registry.example/shop:1.4", command = ["alembic", "upgrade", "head"], env = { LOG_LEVEL = "debug" }, alembic = { versions = "alembic/versions" } }
service = { apprunner_arn = "${output:ServiceArn}" }
health = { url = "https://shop.example/health" }
state = "s3://shop-ferry/state"
api_budget = { logs = 0.5 }
"#;

    fn env_lines(text: &str, dir: &std::path::Path) -> Vec<String> {
        let config = parse(&dir.join("ferry.toml"), text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        lines(config.envs.values().next().expect("one environment"))
    }

    #[test]
    fn plan_prints_the_keys_a_person_writes_in_ferry_toml() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shown = env_lines(AWS, dir.path());
        for key in [
            "database.cluster = \"${output:ClusterId}\"",
            "database.url = \"postgresql://ro@localhost:5433/shop\"",
            "migration.runner = \"ecs\"",
            "migration.cluster = \"${output:EcsCluster}\"",
            "migration.subnets = [\"subnet-1\", \"subnet-2\"]",
            "migration.env.LOG_LEVEL = \"debug\"",
            "timeouts.snapshot = \"2h\"",
            "service.apprunner_arn = \"${output:ServiceArn}\"",
            "state = \"s3://shop-ferry/state\"",
            "api_budget.logs = 0.5",
        ] {
            assert!(shown.iter().any(|l| l == key), "{key} not in:\n{}", shown.join("\n"));
        }
        let keys: Vec<&str> = shown.iter().filter_map(|l| l.split(" = ").next()).collect();
        for wrong in ["name", "database_url", "migration.ecs.cluster", "migration.ecs.task_definition"] {
            assert!(!keys.contains(&wrong), "{wrong} is not a ferry.toml key: {keys:?}");
        }
    }

    /// A setting added to the resolved configuration but not to [`KEYS`] would be
    /// missing from `ferry plan`: every leaf of a fully set environment is covered.
    #[test]
    fn every_setting_of_the_environment_has_its_ferry_toml_key() {
        fn leaves(v: &Value, at: String, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => m.iter().for_each(|(k, v)| leaves(v, format!("{at}/{k}"), out)),
                _ => out.push(at),
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let text = AWS.replace("confirm = true", "confirm = true\nsnapshot_prefix = \"x-{env}\"");
        let config = parse(&dir.path().join("ferry.toml"), &text).expect("valid");
        let mut all = Vec::new();
        leaves(&serde_json::to_value(config.envs.values().next().unwrap()).unwrap(), String::new(), &mut all);
        let exempt = ["/name", "/project", "/state"];
        let missing: Vec<&String> = all
            .iter()
            .filter(|p| !exempt.contains(&p.as_str()))
            .filter(|p| !KEYS.iter().any(|(_, k)| p == k || p.starts_with(&format!("{k}/"))))
            .collect();
        assert!(missing.is_empty(), "settings ferry plan would not print: {missing:?}");
    }

    /// Pasted back under the environment's table, the lines load as the same environment.
    #[test]
    fn the_printed_lines_load_back_as_the_same_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = "project = \"q\"\n[env.local]\nprovider = \"local\"\ndatabase = { url = \"sqlite://./app.db\" }\n\
                     migration = { command = [\"sh\", \"migrate.sh\"] }\nhealth = { url = \"http://127.0.0.1:8080/\" }\n";
        for text in [AWS, local] {
            let shown = env_lines(text, dir.path());
            let name = if text == AWS { "prod" } else { "local" };
            let top = |l: &&String| TOP_LEVEL.iter().any(|k| l.starts_with(&format!("{k} = ")));
            let (head, body): (Vec<&String>, Vec<&String>) = shown.iter().partition(top);
            let join = |ls: Vec<&String>| ls.iter().map(|l| l.as_str()).collect::<Vec<_>>().join("\n");
            let pasted = format!("{}\n[env.{name}]\n{}\n", join(head), join(body));
            assert_eq!(env_lines(&pasted, dir.path()), shown, "{pasted}");
        }
    }
}
