//! The AWS provider's words for a plan: what its runners (an ECS Fargate task,
//! an App Runner deployment), its service (App Runner) and its database
//! (Aurora) will do, from ferry.toml alone.

use ferry_core::config::values::format_duration;
use ferry_core::config::{DbUrl, EnvConfig, RunnerKind};
use ferry_core::output::shell;
use ferry_core::provider::{Describe, RehearsalWords};
use ferry_core::provider::{NO_MIGRATION_RUNNING, task_watch_lines};

/// [`Describe`] for `provider = "aws"`.
pub struct AwsWords;

impl Describe for AwsWords {
    fn runner_checks(&self, env: &EnvConfig, restoring: bool) -> Vec<String> {
        match env.migration.runner {
            // The migration is the service's deployment: a restore waits for it.
            RunnerKind::Apprunner if restoring => {
                vec!["wait for a deployment in progress to end (when pausing the service)".into()]
            }
            RunnerKind::Ecs => vec![
                NO_MIGRATION_RUNNING.into(),
                "check the task definition has the container and it logs with awslogs and a stream prefix".into(),
            ],
            _ => vec![NO_MIGRATION_RUNNING.into()],
        }
    }

    fn service_check(&self, _env: &EnvConfig, restoring: bool) -> Option<String> {
        Some(if restoring {
            "check the App Runner service exists (an operation in progress is waited for)".into()
        } else {
            "check the App Runner service is RUNNING (not OPERATION_IN_PROGRESS)".into()
        })
    }

    fn service_name(&self) -> &'static str {
        "the App Runner service"
    }

    fn migration(&self, env: &EnvConfig) -> Vec<String> {
        let m = &env.migration;
        let container = m.ecs.as_ref().map_or("?", |e| e.container.as_str());
        let command = shell::join(&m.command);
        let start = match (m.runner, &m.image) {
            (RunnerKind::Command, _) => format!("run `{command}` locally with DATABASE_URL set"),
            (RunnerKind::Ecs, None) => format!("run `{command}` as a one-off ECS Fargate task (container {container})"),
            (RunnerKind::Ecs, Some(image)) => format!(
                "register a new revision of task definition {} in which only container {container} changes, to image \
                 {image} (every other field copied; tagged ferry:run-id), and run `{command}` as a one-off ECS Fargate \
                 task of that revision",
                m.ecs.as_ref().map_or("?", |e| e.task_definition.raw.as_str()),
            ),
            (RunnerKind::Apprunner, None) => {
                "start a deployment of the App Runner service, which migrates on start-up".into()
            }
            (RunnerKind::Apprunner, Some(image)) => format!(
                "deploy image {image} to the App Runner service (UpdateService of its ImageIdentifier, every other \
                 setting kept), which migrates on start-up"
            ),
        };
        let mut lines = vec![start];
        if m.runner == RunnerKind::Apprunner {
            lines.push(
                "tail the service's log groups (.../service and .../application) until the operation ends".into(),
            );
            lines.push("SUCCEEDED passes; FAILED or ROLLBACK_* fails".into());
            lines.push(format!(
                "after {} follow it to its end, at most {} more (App Runner cannot cancel a deployment)",
                format_duration(env.timeouts.migration),
                format_duration(env.timeouts.service)
            ));
        } else {
            lines.extend(task_watch_lines(env));
        }
        lines
    }

    fn rehearsal(&self, env: &EnvConfig) -> RehearsalWords {
        let instance_class = env
            .rehearse
            .instance_class
            .as_deref()
            .map_or("the writer's instance class".into(), |c| format!("class {c}"));
        RehearsalWords {
            copy: vec![
                "RestoreDBClusterToPointInTime <cluster>-rehearsal-<run hex>: RestoreType copy-on-write, the latest \
                 restorable time, the cluster's subnet group, security groups, cluster parameter group, port, IAM \
                 authentication and serverless v2 scaling; no deletion protection; tagged ferry:purpose=rehearsal, \
                 ferry:run-id, ferry:env in the call (billed for the pages the migration changes and the instance's hours)"
                    .into(),
                format!(
                    "CreateDBInstance <clone>-1 ({instance_class}, the writer's parameter group), tagged the same; wait \
                     until both are available (within {}, timeouts.restore)",
                    format_duration(env.timeouts.restore)
                ),
            ],
            locks: match env.database_url {
                Some(DbUrl::Postgres(_)) => {
                    format!("{} (through database.url with the clone's endpoint and port)", ferry_local::describe::LOCK_SAMPLING)
                }
                _ => "locks are not observed: database.url is not set (ferry reaches the clone through it)".into(),
            },
            reached: " (same task definition, container and image), with rehearse.database_env pointing it at the clone"
                .into(),
            cleanup: "stop the rehearsal's migration if it still runs, then delete the clone's instance (waiting until \
                      it is gone) and the clone with no final snapshot, only if tagged ferry:purpose=rehearsal and this \
                      run's ferry:run-id; always, also after a failure or Ctrl-C; a clone that cannot be deleted is exit 5"
                .into(),
            has_lock_table: true,
        }
    }
}
