//! Layer 2, sparse and late answers: every AWS read ferry decides on, answered
//! with only the fields the API model requires (for ECS and RDS outputs: none),
//! and with a not-yet-visible answer first, through the real SDK and
//! `aws-smithy-mocks`. Each test asserts the decision that protects data:
//! no "never started" without proof, no "done" on an unknown status, no
//! refusal on an advisory read, no error on a resource that is not listed yet.
//! docs/aws-decisions.md lists the same decisions as a table.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use ferry_aws::apprunner::{AppRunner, Deployments};
use ferry_aws::ecs::{EcsRunner, EcsTarget};
use ferry_aws::rds::RdsDatabase;
use ferry_core::config::{self, EnvConfig};
use ferry_core::output::{Redactor, Reporter};
use ferry_core::provider::fake::FakeCloud;
use ferry_core::provider::{AppService, Database, MigrationRunner, ProviderError, SnapshotStatus, TaskState};
use ferry_core::runbook::preflight::{Scope, inspect};
use ferry_core::runbook::service::{Change, change};
use ferry_core::runbook::{wait_new_snapshot, wait_snapshot};

fn reporter() -> (Arc<Reporter>, Arc<Mutex<Vec<u8>>>) {
    let sink = Arc::new(Mutex::new(Vec::new()));
    (Arc::new(Reporter::new(sink.clone(), false, false, Redactor::default())), sink)
}

fn xml_error(status: u16, code: &str) -> Response {
    let body = format!(
        "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>as answered</Message></Error></ErrorResponse>"
    );
    Response::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body))
}

// --- ECS: DescribeTasks, ListTasks ---------------------------------------------------

mod ecs {
    use super::*;
    use aws_sdk_ecs::Client;
    use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
    use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
    use aws_sdk_ecs::types::{Container, Failure, Task, TaskStopCode};

    fn runner(rules: &[&Rule]) -> EcsRunner {
        let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, rules.iter().copied());
        EcsRunner::new(
            client,
            EcsTarget {
                cluster: "app-ecs".into(),
                task_definition: "app-migrate:3".into(),
                subnets: vec!["subnet-a".into()],
                security_groups: vec![],
                assign_public_ip: false,
                container: "migrate".into(),
            },
        )
    }

    async fn poll(task: Task) -> TaskState {
        let rule = mock!(Client::describe_tasks)
            .then_output(move || DescribeTasksOutput::builder().tasks(task.clone()).build());
        runner(&[&rule]).poll("arn:task/1").await.unwrap()
    }

    fn stopped() -> aws_sdk_ecs::types::builders::TaskBuilder {
        Task::builder().last_status("STOPPED")
    }

    fn migrate() -> aws_sdk_ecs::types::builders::ContainerBuilder {
        Container::builder().name("migrate")
    }

    #[tokio::test]
    async fn an_exit_code_means_the_migration_ran_even_without_started_at() {
        // What a sparse backend answers for a migration that ran and failed:
        // no startedAt, no stop code, no reason; only the container's exit code.
        let state = poll(stopped().containers(migrate().exit_code(1).build()).build()).await;
        assert_eq!(state, TaskState::Stopped { started: true, exit_code: Some(1), reason: None });
        // An exit code wins over a start-failure stop code.
        let state = poll(
            stopped().stop_code(TaskStopCode::TaskFailedToStart).containers(migrate().exit_code(2).build()).build(),
        )
        .await;
        assert!(matches!(state, TaskState::Stopped { started: true, exit_code: Some(2), .. }), "{state:?}");
    }

    #[tokio::test]
    async fn never_started_needs_the_stop_code_or_a_start_failure_reason() {
        let state = poll(stopped().stop_code(TaskStopCode::TaskFailedToStart).build()).await;
        assert_eq!(
            state,
            TaskState::Stopped { started: false, exit_code: None, reason: Some("stop code TaskFailedToStart".into()) }
        );
        let pull = stopped().stopped_reason("CannotPullContainerError: pull image manifest has been retried").build();
        assert!(matches!(poll(pull).await, TaskState::Stopped { started: false, .. }));
        let init = stopped()
            .containers(migrate().reason("ResourceInitializationError: unable to pull secrets").build())
            .build();
        assert!(matches!(poll(init).await, TaskState::Stopped { started: false, .. }));
    }

    #[tokio::test]
    async fn a_stopped_task_with_no_evidence_counts_as_started() {
        // The smallest STOPPED answer: nothing proves it never ran.
        assert_eq!(poll(stopped().build()).await, TaskState::Stopped { started: true, exit_code: None, reason: None });
        // An empty reason is no reason.
        let blank = stopped().stopped_reason("  ").containers(migrate().reason("").build()).build();
        assert_eq!(poll(blank).await, TaskState::Stopped { started: true, exit_code: None, reason: None });
        // Another container's exit code says nothing about the migration.
        let sidecar = stopped().containers(Container::builder().name("sidecar").exit_code(0).build()).build();
        assert!(matches!(poll(sidecar).await, TaskState::Stopped { started: true, exit_code: None, .. }));
    }

    #[tokio::test]
    async fn an_unknown_or_missing_status_is_not_done_yet() {
        assert_eq!(poll(Task::builder().build()).await, TaskState::Pending);
        assert_eq!(poll(Task::builder().last_status("SOMETHING_NEW").build()).await, TaskState::Pending);
        assert_eq!(poll(Task::builder().last_status("DEPROVISIONING").build()).await, TaskState::Running);
    }

    #[tokio::test]
    async fn a_new_task_not_described_yet_is_missing_then_found() {
        let rule = mock!(Client::describe_tasks)
            .sequence()
            .output(|| DescribeTasksOutput::builder().failures(Failure::builder().reason("MISSING").build()).build())
            .times(2)
            .output(|| DescribeTasksOutput::builder().build())
            .output(|| DescribeTasksOutput::builder().tasks(Task::builder().last_status("RUNNING").build()).build())
            .repeatedly()
            .build();
        let r = runner(&[&rule]);
        for _ in 0..3 {
            assert_eq!(r.poll("arn:task/1").await.unwrap(), TaskState::Missing);
        }
        assert_eq!(r.poll("arn:task/1").await.unwrap(), TaskState::Running);
    }

    fn listed(arns: &'static [&'static str]) -> Rule {
        mock!(Client::list_tasks).then_output(move || {
            ListTasksOutput::builder().set_task_arns(Some(arns.iter().map(|a| a.to_string()).collect())).build()
        })
    }

    #[tokio::test]
    async fn the_tasks_own_status_wins_over_the_listing_filter() {
        let list = listed(&["t-stopped", "t-deleted", "t-deprov-stopping", "t-deprov", "t-running", "t-bare"]);
        let describe = mock!(Client::describe_tasks).then_output(|| {
            let t = |arn: &str| Task::builder().task_arn(arn).desired_status("RUNNING");
            DescribeTasksOutput::builder()
                .tasks(t("t-stopped").last_status("STOPPED").build())
                .tasks(t("t-deleted").last_status("DELETED").build())
                .tasks(
                    t("t-deprov-stopping")
                        .last_status("DEPROVISIONING")
                        .stopping_at(aws_smithy_types::DateTime::from_secs(5))
                        .build(),
                )
                .tasks(t("t-deprov").last_status("DEPROVISIONING").build())
                .tasks(t("t-running").last_status("RUNNING").build())
                .tasks(Task::builder().task_arn("t-bare").build())
                .build()
        });
        let active = runner(&[&list, &describe]).active_tasks().await.unwrap();
        let ids: Vec<(&str, &str)> = active.iter().map(|t| (t.id.as_str(), t.status.as_str())).collect();
        assert_eq!(ids, [("t-deprov", "DEPROVISIONING"), ("t-running", "RUNNING"), ("t-bare", "UNKNOWN")]);
    }

    #[tokio::test]
    async fn a_listed_task_that_cannot_be_described_still_blocks() {
        let list = listed(&["t-new"]);
        let describe = mock!(Client::describe_tasks).then_output(|| {
            DescribeTasksOutput::builder().failures(Failure::builder().arn("t-new").reason("MISSING").build()).build()
        });
        let active = runner(&[&list, &describe]).active_tasks().await.unwrap();
        assert_eq!(active.len(), 1);
        assert!(active[0].status.contains("MISSING"), "{active:?}");
        // The smallest ListTasks answer lists nothing, and nothing blocks.
        let empty = mock!(Client::list_tasks).then_output(|| ListTasksOutput::builder().build());
        assert!(runner(&[&empty]).active_tasks().await.unwrap().is_empty());
    }
}

// --- RDS: DescribeDBClusters, DescribeDBInstances, snapshots, account quota ------------------

mod rds {
    use super::*;
    use aws_sdk_rds::Client;
    use aws_sdk_rds::operation::create_db_cluster_snapshot::CreateDbClusterSnapshotOutput;
    use aws_sdk_rds::operation::describe_account_attributes::DescribeAccountAttributesOutput;
    use aws_sdk_rds::operation::describe_db_cluster_snapshots::{
        DescribeDBClusterSnapshotsError, DescribeDbClusterSnapshotsOutput,
    };
    use aws_sdk_rds::operation::describe_db_clusters::DescribeDbClustersOutput;
    use aws_sdk_rds::operation::describe_db_instances::DescribeDbInstancesOutput;
    use aws_sdk_rds::types::error::DbClusterSnapshotNotFoundFault;
    use aws_sdk_rds::types::{AccountQuota, DbCluster, DbClusterSnapshot, DbInstance};

    fn db(rules: &[&Rule]) -> RdsDatabase {
        let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, rules.iter().copied(), |c| c
            .retry_config(aws_sdk_rds::config::retry::RetryConfig::disabled()));
        RdsDatabase::new(client, "app-prod".into())
    }

    fn cluster(c: DbCluster) -> Rule {
        mock!(Client::describe_db_clusters)
            .then_output(move || DescribeDbClustersOutput::builder().db_clusters(c.clone()).build())
    }

    fn instances(list: Vec<DbInstance>) -> Rule {
        mock!(Client::describe_db_instances)
            .then_output(move || DescribeDbInstancesOutput::builder().set_db_instances(Some(list.clone())).build())
    }

    #[tokio::test]
    async fn a_cluster_is_available_only_on_positive_evidence() {
        let empty = mock!(Client::describe_db_clusters).then_output(|| DescribeDbClustersOutput::builder().build());
        assert_eq!(db(&[&empty]).describe("app-prod").await.unwrap(), None);

        let bare = cluster(DbCluster::builder().build());
        let info = db(&[&bare]).describe("app-prod").await.unwrap().unwrap();
        assert!(!info.is_available(), "no status is not available: {info:?}");

        let up = cluster(DbCluster::builder().status("available").build());
        let none = instances(vec![]);
        let info = db(&[&up, &none]).describe("app-prod").await.unwrap().unwrap();
        assert!(!info.is_available(), "a cluster with no instance does not serve: {info:?}");
        assert_eq!(info.pending_instances, ["no instance yet"]);

        let up = cluster(DbCluster::builder().status("available").build());
        let unknown = instances(vec![DbInstance::builder().build()]);
        assert!(!db(&[&up, &unknown]).describe("app-prod").await.unwrap().unwrap().is_available());

        // Members are optional in the answer: the instances decide, not the member list.
        let up = cluster(DbCluster::builder().status("available").build());
        let ready = instances(vec![DbInstance::builder().db_instance_status("available").build()]);
        assert!(db(&[&up, &ready]).describe("app-prod").await.unwrap().unwrap().is_available());
    }

    #[tokio::test]
    async fn a_snapshot_with_no_status_is_still_creating() {
        let bare = mock!(Client::describe_db_cluster_snapshots).then_output(|| {
            DescribeDbClusterSnapshotsOutput::builder()
                .db_cluster_snapshots(DbClusterSnapshot::builder().build())
                .build()
        });
        let s = db(&[&bare]).describe_snapshot("snap").await.unwrap().unwrap();
        assert_eq!((s.status, s.percent), (SnapshotStatus::Creating, 0));
        let none = mock!(Client::describe_db_cluster_snapshots)
            .then_output(|| DescribeDbClusterSnapshotsOutput::builder().build());
        assert_eq!(db(&[&none]).describe_snapshot("snap").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_created_snapshot_the_answer_does_not_describe_is_ours_and_creating() {
        let not_yet = mock!(Client::describe_db_cluster_snapshots).then_error(|| {
            DescribeDBClusterSnapshotsError::DbClusterSnapshotNotFoundFault(
                DbClusterSnapshotNotFoundFault::builder().build(),
            )
        });
        let create =
            mock!(Client::create_db_cluster_snapshot).then_output(|| CreateDbClusterSnapshotOutput::builder().build());
        let tags = [("ferry:run-id".to_string(), "prod-1".to_string())].into();
        let s = db(&[&not_yet, &create]).create_snapshot("snap-1", &tags).await.unwrap();
        assert_eq!((s.id.as_str(), s.status), ("snap-1", SnapshotStatus::Creating));
        assert_eq!(s.tags, tags, "the run's own tags: the run does not refuse its own snapshot");
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_snapshot_not_listed_yet_is_waited_for() {
        let late = mock!(Client::describe_db_cluster_snapshots)
            .sequence()
            .error(|| {
                DescribeDBClusterSnapshotsError::DbClusterSnapshotNotFoundFault(
                    DbClusterSnapshotNotFoundFault::builder().build(),
                )
            })
            .times(4)
            .output(|| {
                DescribeDbClusterSnapshotsOutput::builder()
                    .db_cluster_snapshots(
                        DbClusterSnapshot::builder()
                            .db_cluster_snapshot_identifier("snap-1")
                            .status("available")
                            .tag_list(aws_sdk_rds::types::Tag::builder().key("k").value("v").build())
                            .build(),
                    )
                    .build()
            })
            .repeatedly()
            .build();
        let d = db(&[&late]);
        let (out, _) = reporter();
        let s = wait_new_snapshot(&d, "snap-1", Duration::from_secs(600), &out, |_| {}).await.unwrap();
        assert_eq!(s.status, SnapshotStatus::Available);
        assert_eq!(late.num_calls(), 5);

        // Never visible: an error once the grace is over, not a wait until the timeout.
        let never = mock!(Client::describe_db_cluster_snapshots)
            .then_output(|| DescribeDbClusterSnapshotsOutput::builder().build());
        let start = tokio::time::Instant::now();
        let err =
            wait_new_snapshot(&db(&[&never]), "snap-2", Duration::from_secs(3600), &out, |_| {}).await.unwrap_err();
        assert!(err.contains("still not visible 60s after it was created"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(120), "{:?}", start.elapsed());

        // `ferry snapshot wait <id>` of an id that does not exist says so at once.
        let never = mock!(Client::describe_db_cluster_snapshots)
            .then_output(|| DescribeDbClusterSnapshotsOutput::builder().build());
        let start = tokio::time::Instant::now();
        let err = wait_snapshot(&db(&[&never]), "typo", Duration::from_secs(3600), &out, |_| {}).await.unwrap_err();
        assert!(err.contains("snapshot typo not found"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    }

    #[tokio::test]
    async fn a_quota_without_numbers_is_no_quota() {
        let empty = mock!(Client::describe_account_attributes)
            .then_output(|| DescribeAccountAttributesOutput::builder().build());
        assert_eq!(db(&[&empty]).snapshot_quota().await.unwrap(), None);
        let nameless = mock!(Client::describe_account_attributes).then_output(|| {
            DescribeAccountAttributesOutput::builder()
                .account_quotas(AccountQuota::builder().account_quota_name("ManualClusterSnapshots").used(3).build())
                .build()
        });
        assert_eq!(db(&[&nameless]).snapshot_quota().await.unwrap(), None);
    }

    fn env() -> EnvConfig {
        let text = "project = \"app\"\n[env.prod]\nprovider = \"aws\"\ndatabase = { cluster = \"app-prod\" }\n\
                    migration = { cluster = \"c\", task_definition = \"td\", subnets = [\"s\"], security_groups = [], container = \"migrate\", command = [\"m\"] }\n";
        let cfg = config::parse(Path::new("/virtual/ferry.toml"), text).unwrap();
        cfg.env("prod").unwrap().clone()
    }

    /// The preflight on the fake cloud, with the database behind the mocked RDS client.
    async fn preflight_with(quota: Rule) -> ferry_core::runbook::preflight::Findings {
        let up = cluster(DbCluster::builder().status("available").build());
        let ready = instances(vec![DbInstance::builder().db_instance_status("available").build()]);
        let fake = FakeCloud::new("app-prod", "v1", false);
        let cloud = ferry_core::provider::Cloud { database: Arc::new(db(&[&up, &ready, &quota])), ..fake.cloud() };
        let env = env();
        inspect(&Scope {
            env: &env,
            cloud: &cloud,
            restoring: false,
            own_task: None,
            with_snapshot: true,
            rehearsing: false,
        })
        .await
    }

    #[tokio::test]
    async fn an_advisory_quota_read_that_fails_warns_and_never_refuses() {
        for code in ["InvalidAction", "AccessDenied", "UnknownOperationException", "InternalFailure"] {
            let status = if code == "AccessDenied" { 403 } else { 400 };
            let quota = mock!(Client::describe_account_attributes).then_http_response(move || xml_error(status, code));
            let f = preflight_with(quota).await;
            assert!(f.refusals.is_empty(), "{code}: {f:?}");
            assert_eq!(f.warnings.len(), 1, "{code}: {f:?}");
            assert!(f.warnings[0].contains("snapshot quota was not checked") && f.warnings[0].contains(code), "{f:?}");
            assert!(f.found.iter().any(|l| l == "database app-prod available"), "{f:?}");
        }
        // A quota read as full is positive evidence: the snapshot would be refused.
        let full = mock!(Client::describe_account_attributes).then_output(|| {
            DescribeAccountAttributesOutput::builder()
                .account_quotas(
                    AccountQuota::builder().account_quota_name("ManualClusterSnapshots").used(100).max(100).build(),
                )
                .build()
        });
        let f = preflight_with(full).await;
        assert!(f.refusals.iter().any(|r| r.contains("quota is full (100/100)")), "{f:?}");
    }

    // --- the rehearsal's clone ---

    fn ours() -> Vec<aws_sdk_rds::types::Tag> {
        [("ferry:purpose", "rehearsal"), ("ferry:run-id", "run-1")]
            .iter()
            .map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(*k).value(*v).build())
            .collect()
    }

    fn run_tags() -> ferry_core::provider::Tags {
        [("ferry:purpose", "rehearsal"), ("ferry:run-id", "run-1")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn a_clone_described_with_the_smallest_answer_is_neither_ready_nor_deleted() {
        use aws_sdk_rds::operation::delete_db_cluster::DeleteDbClusterOutput;
        use ferry_core::provider::CloneState;
        // No status, no endpoint, no TagList, no ARN: nothing proves it is this run's or ready.
        let bare = cluster(DbCluster::builder().build());
        let delete = mock!(Client::delete_db_cluster).then_output(|| DeleteDbClusterOutput::builder().build());
        let rds = db(&[&bare, &delete]);
        let step = rds.clone_for_rehearsal("app-prod-rehearsal-1", &run_tags()).await.unwrap();
        assert!(matches!(step, CloneState::Making(_)), "{step:?}");
        let err = rds.delete_rehearsal_clone("app-prod-rehearsal-1", "run-1").await.unwrap_err();
        assert!(matches!(err, ProviderError::Rejected(ref m) if m.contains("cannot be read")), "{err:?}");
        assert_eq!(delete.num_calls(), 0, "never deleted without proof");
        // Tagged and available, its instance too, but no Endpoint or Port yet: not ready, never a guess.
        let up = cluster(DbCluster::builder().status("available").set_tag_list(Some(ours())).build());
        let instance = instances(vec![
            DbInstance::builder()
                .db_instance_identifier("app-prod-rehearsal-1-1")
                .db_instance_status("available")
                .set_tag_list(Some(ours()))
                .build(),
        ]);
        let step = db(&[&up, &instance]).clone_for_rehearsal("app-prod-rehearsal-1", &run_tags()).await.unwrap();
        assert!(matches!(step, CloneState::Making(ref s) if s.contains("not described yet")), "{step:?}");
    }

    #[tokio::test]
    async fn a_clone_listed_late_is_waited_for_not_made_twice_nor_refused() {
        use aws_sdk_rds::operation::describe_db_clusters::DescribeDBClustersError;
        use aws_sdk_rds::operation::restore_db_cluster_to_point_in_time::{
            RestoreDBClusterToPointInTimeError, RestoreDbClusterToPointInTimeOutput,
        };
        use aws_sdk_rds::types::error::{DbClusterAlreadyExistsFault, DbClusterNotFoundFault};
        use aws_smithy_mocks::MockResponse;
        use ferry_core::provider::CloneState;
        use std::sync::atomic::{AtomicU32, Ordering};
        // The clone is listed only from the third look on; the source always.
        let looks = Arc::new(AtomicU32::new(0));
        let seen = looks.clone();
        let clusters = mock!(Client::describe_db_clusters).then_compute_response(move |r| {
            let c = if r.db_cluster_identifier() == Some("app-prod") {
                DbCluster::builder().db_cluster_identifier("app-prod").status("available").build()
            } else if seen.fetch_add(1, Ordering::SeqCst) < 2 {
                return MockResponse::Error(DescribeDBClustersError::DbClusterNotFoundFault(
                    DbClusterNotFoundFault::builder().build(),
                ));
            } else {
                DbCluster::builder().status("creating").set_tag_list(Some(ours())).build()
            };
            MockResponse::Output(DescribeDbClustersOutput::builder().db_clusters(c).build())
        });
        let restore = mock!(Client::restore_db_cluster_to_point_in_time)
            .sequence()
            .output(|| RestoreDbClusterToPointInTimeOutput::builder().build())
            .error(|| {
                RestoreDBClusterToPointInTimeError::DbClusterAlreadyExistsFault(
                    DbClusterAlreadyExistsFault::builder().build(),
                )
            })
            .build();
        let rds = db(&[&clusters, &restore]);
        for _ in 0..3 {
            let step = rds.clone_for_rehearsal("app-prod-rehearsal-1", &run_tags()).await.unwrap();
            assert!(matches!(step, CloneState::Making(_)), "{step:?}");
        }
        assert_eq!(restore.num_calls(), 2, "asked again only while not listed; the second answer is that it exists");
        assert_eq!(looks.load(Ordering::SeqCst), 3);
    }
}

// --- App Runner: ListOperations, DescribeService ------------------------------------------------

mod apprunner {
    use super::*;
    use aws_sdk_apprunner::Client;
    use aws_sdk_apprunner::operation::describe_service::DescribeServiceOutput;
    use aws_sdk_apprunner::operation::list_operations::ListOperationsOutput;
    use aws_sdk_apprunner::operation::pause_service::PauseServiceOutput;
    use aws_sdk_apprunner::types::{
        AutoScalingConfigurationSummary, ImageRepository, ImageRepositoryType, InstanceConfiguration,
        NetworkConfiguration, OperationStatus, OperationSummary, OperationType, Service, ServiceStatus,
        SourceConfiguration,
    };

    /// The smallest DescribeService answer: only the members the model requires.
    fn service(status: ServiceStatus) -> Service {
        let t = aws_smithy_types::DateTime::from_secs(0);
        Service::builder()
            .service_name("app")
            .service_id("id")
            .service_arn("arn:svc")
            .created_at(t)
            .updated_at(t)
            .status(status)
            .source_configuration(
                SourceConfiguration::builder()
                    .image_repository(
                        ImageRepository::builder()
                            .image_identifier("public.ecr.aws/app:v2")
                            .image_repository_type(ImageRepositoryType::EcrPublic)
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .instance_configuration(InstanceConfiguration::builder().build())
            .auto_scaling_configuration_summary(AutoScalingConfigurationSummary::builder().build())
            .network_configuration(NetworkConfiguration::builder().build())
            .build()
            .unwrap()
    }

    fn describe(statuses: Vec<ServiceStatus>) -> Rule {
        let mut seq = mock!(Client::describe_service).sequence();
        for s in statuses {
            seq = seq.output(move || DescribeServiceOutput::builder().service(service(s.clone())).build());
        }
        seq.repeatedly().build()
    }

    fn ops(list: Vec<OperationSummary>) -> ListOperationsOutput {
        ListOperationsOutput::builder().set_operation_summary_list(Some(list)).build()
    }

    fn op(id: &str, status: Option<OperationStatus>) -> OperationSummary {
        OperationSummary::builder().id(id).set_status(status).build()
    }

    fn app(rules: &[&Rule]) -> AppRunner {
        AppRunner::new(mock_client!(aws_sdk_apprunner, RuleMode::MatchAny, rules.iter().copied()), "arn:svc".into())
    }

    #[tokio::test]
    async fn an_operation_without_a_status_is_not_done() {
        let list = mock!(Client::list_operations).then_output(|| ops(vec![op("op-1", None)]));
        let svc = Arc::new(app(&[&list]));
        assert_eq!(svc.operation_done("op-1").await.unwrap(), None);
        assert_eq!(svc.operation_in_progress().await.unwrap(), None, "not counted as in progress either");
        assert_eq!(Deployments::new(svc.clone()).poll("op-1").await.unwrap(), TaskState::Running);
        // The smallest answer lists nothing: the operation is not found (yet).
        let empty = mock!(Client::list_operations).then_output(|| ListOperationsOutput::builder().build());
        let svc = Arc::new(app(&[&empty]));
        assert!(matches!(svc.operation_done("op-1").await, Err(ProviderError::NotFound(_))));
        assert_eq!(Deployments::new(svc).poll("op-1").await.unwrap(), TaskState::Missing);
    }

    #[tokio::test]
    async fn a_failed_deployment_is_named_once_by_the_runbook_not_by_its_reason() {
        let list = mock!(Client::list_operations)
            .then_output(|| ops(vec![op("op-9", Some(OperationStatus::RollbackSucceeded))]));
        let state = Deployments::new(Arc::new(app(&[&list]))).poll("op-9").await.unwrap();
        let TaskState::Stopped { started: true, exit_code: None, reason: Some(reason) } = state else {
            panic!("{state:?}")
        };
        assert!(reason.starts_with("ended ROLLBACK_SUCCEEDED") && !reason.contains("op-9"), "{reason}");
    }

    #[tokio::test]
    async fn the_operation_in_progress_and_the_image_are_read() {
        let list = mock!(Client::list_operations).then_output(|| {
            ops(vec![
                OperationSummary::builder()
                    .id("op-2")
                    .r#type(OperationType::StartDeployment)
                    .status(OperationStatus::InProgress)
                    .build(),
                op("op-1", Some(OperationStatus::Succeeded)),
            ])
        });
        let desc = describe(vec![ServiceStatus::OperationInProgress]);
        let svc = app(&[&list, &desc]);
        let current = svc.operation_in_progress().await.unwrap().unwrap();
        assert!(
            matches!(current.kind, ferry_core::provider::OperationKind::Deployment(_)) && current.id == "op-2",
            "{current:?}"
        );
        assert_eq!(svc.image().await.unwrap().as_deref(), Some("image public.ecr.aws/app:v2"));
    }

    fn pause() -> Rule {
        mock!(Client::pause_service).then_output(|| {
            PauseServiceOutput::builder()
                .service(service(ServiceStatus::OperationInProgress))
                .operation_id("op-p")
                .build()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_whose_operation_is_listed_late_succeeds() {
        let desc = describe(vec![ServiceStatus::Running, ServiceStatus::OperationInProgress]);
        let list = mock!(Client::list_operations)
            .sequence()
            .output(|| ListOperationsOutput::builder().build())
            .times(5)
            .output(|| ops(vec![op("op-p", Some(OperationStatus::Succeeded))]))
            .repeatedly()
            .build();
        let pause = pause();
        let svc = app(&[&desc, &pause, &list]);
        let (out, _) = reporter();
        change(&svc, Change::Pause, Duration::from_secs(600), &out).await.unwrap();
        assert_eq!(list.num_calls(), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_never_listed_is_done_once_the_service_is_paused() {
        let desc = describe(vec![ServiceStatus::Running, ServiceStatus::OperationInProgress, ServiceStatus::Paused]);
        let empty = mock!(Client::list_operations).then_output(|| ListOperationsOutput::builder().build());
        let pause = pause();
        let (out, _) = reporter();
        change(&app(&[&desc, &pause, &empty]), Change::Pause, Duration::from_secs(600), &out).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_operation_never_listed_nor_settled_is_an_error_after_the_grace() {
        let desc = describe(vec![ServiceStatus::Running, ServiceStatus::OperationInProgress]);
        let empty = mock!(Client::list_operations).then_output(|| ListOperationsOutput::builder().build());
        let pause = pause();
        let (out, _) = reporter();
        let start = tokio::time::Instant::now();
        let err =
            change(&app(&[&desc, &pause, &empty]), Change::Pause, Duration::from_secs(1200), &out).await.unwrap_err();
        assert!(err.contains("still not listed 60s after it started"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(90), "{:?}", start.elapsed());
    }
}

// --- CloudFormation: DescribeStacks; CloudWatch Logs: a bounded group read ------------------------

mod stacks_and_logs {
    use super::*;
    use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksOutput;
    use aws_sdk_cloudformation::types::{Stack, StackStatus};
    use aws_sdk_cloudwatchlogs::operation::filter_log_events::FilterLogEventsOutput;
    use ferry_aws::cloudformation::Stacks;
    use ferry_aws::logs::{CloudWatchLogs, all_streams_between};
    use ferry_core::provider::{LogCursor, LogSource, StackOutputs};

    #[tokio::test]
    async fn a_stack_without_outputs_names_the_missing_output() {
        let bare = mock!(aws_sdk_cloudformation::Client::describe_stacks).then_output(|| {
            DescribeStacksOutput::builder()
                .stacks(
                    Stack::builder()
                        .stack_name("prod")
                        .creation_time(aws_smithy_types::DateTime::from_secs(0))
                        .stack_status(StackStatus::CreateComplete)
                        .build(),
                )
                .build()
        });
        let stacks = Stacks::new(mock_client!(aws_sdk_cloudformation, RuleMode::MatchAny, [&bare]));
        assert!(stacks.outputs("prod").await.unwrap().is_empty());
        let text = "project = \"app\"\n[env.prod]\nprovider = \"aws\"\nstack = \"prod\"\ndatabase = { cluster = \"${output:Db}\" }\n\
                    migration = { cluster = \"c\", task_definition = \"td\", subnets = [\"s\"], security_groups = [], container = \"m\", command = [\"m\"] }\n";
        let cfg = config::parse(Path::new("/virtual/ferry.toml"), text).unwrap();
        let env = cfg.env("prod").unwrap().clone();
        let err = ferry_aws::resolve(&env, &stacks).await.unwrap_err();
        assert_eq!(err, ProviderError::Rejected("stack prod has no output \"Db\"; its outputs are: none".into()));

        let empty = mock!(aws_sdk_cloudformation::Client::describe_stacks)
            .then_output(|| DescribeStacksOutput::builder().build());
        let stacks = Stacks::new(mock_client!(aws_sdk_cloudformation, RuleMode::MatchAny, [&empty]));
        assert!(matches!(stacks.outputs("prod").await, Err(ProviderError::Rejected(_))));
    }

    #[tokio::test]
    async fn a_deployments_log_read_ends_where_the_deployment_ended() {
        let bounded = mock!(aws_sdk_cloudwatchlogs::Client::filter_log_events)
            .match_requests(|r| r.start_time() == Some(1_000) && r.end_time() == Some(9_000))
            .then_output(|| FilterLogEventsOutput::builder().build());
        let logs = CloudWatchLogs::new(mock_client!(aws_sdk_cloudwatchlogs, RuleMode::MatchAny, [&bounded]));
        let since = chrono::DateTime::from_timestamp_millis(1_000).unwrap();
        let until = chrono::DateTime::from_timestamp_millis(9_000).unwrap();
        let group = all_streams_between("/aws/apprunner/a/1/service", since, until);
        assert!(logs.read(&group, &LogCursor::default()).await.unwrap().events.is_empty());
        assert_eq!(bounded.num_calls(), 1);
    }
}

// --- ECS: RunTask's answer ----------------------------------------------------------------------

mod run_task {
    use super::*;
    use aws_sdk_ecs::Client;
    use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
    use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
    use aws_sdk_ecs::operation::run_task::RunTaskOutput;
    use aws_sdk_ecs::types::{ContainerDefinition, Failure, LogConfiguration, LogDriver, Task, TaskDefinition};

    fn task_definition() -> Rule {
        mock!(Client::describe_task_definition).then_output(|| {
            let logs = LogConfiguration::builder()
                .log_driver(LogDriver::Awslogs)
                .options("awslogs-group", "/g")
                .options("awslogs-stream-prefix", "p")
                .build()
                .unwrap();
            DescribeTaskDefinitionOutput::builder()
                .task_definition(
                    TaskDefinition::builder()
                        .container_definitions(
                            ContainerDefinition::builder().name("migrate").log_configuration(logs).build(),
                        )
                        .build(),
                )
                .build()
        })
    }

    fn spec() -> ferry_core::provider::TaskSpec {
        ferry_core::provider::TaskSpec {
            run_id: "prod-20261121T120000Z-abcd".into(),
            env: "prod".into(),
            command: vec!["m".into()],
            environment: Default::default(),
            image: None,
            task_definition: None,
            attempt: 1,
        }
    }

    fn runner(rules: &[&Rule]) -> EcsRunner {
        let target = EcsTarget {
            cluster: "c".into(),
            task_definition: "td:1".into(),
            subnets: vec!["s".into()],
            security_groups: vec![],
            assign_public_ip: false,
            container: "migrate".into(),
        };
        EcsRunner::new(mock_client!(aws_sdk_ecs, RuleMode::MatchAny, rules.iter().copied()), target)
    }

    #[tokio::test]
    async fn an_empty_answer_is_asked_again_with_the_same_client_token() {
        let td = task_definition();
        let run = mock!(Client::run_task)
            .match_requests(|r| r.client_token() == Some("prod-20261121T120000Z-abcd"))
            .sequence()
            .output(|| RunTaskOutput::builder().build())
            .output(|| RunTaskOutput::builder().tasks(Task::builder().task_arn("arn:task/c/t1").build()).build())
            .build();
        let h = runner(&[&td, &run]).start(&spec()).await.unwrap();
        assert_eq!((h.id.as_str(), run.num_calls()), ("arn:task/c/t1", 2));
    }

    #[tokio::test]
    async fn empty_answers_and_no_listed_task_refuse_with_a_reason() {
        let td = task_definition();
        let run = mock!(Client::run_task).then_output(|| RunTaskOutput::builder().build());
        let none = mock!(Client::list_tasks).then_output(|| ListTasksOutput::builder().build());
        let err = runner(&[&td, &run, &none]).start(&spec()).await.unwrap_err().to_string();
        assert!(err.contains("neither a task nor a failure"), "{err}");
        // A failure without reason or detail still reads as a sentence.
        let td = task_definition();
        let bare = mock!(Client::run_task)
            .then_output(|| RunTaskOutput::builder().failures(Failure::builder().build()).build());
        let err = runner(&[&td, &bare]).start(&spec()).await.unwrap_err().to_string();
        assert_eq!(err, "RunTask started no task: no reason given");
    }
}
