//! The rehearsal clone against `aws-smithy-mocks`: a small RDS with a source
//! cluster, the clone and its instances, recording every request. Request
//! shape (what the clone takes from the source, tags in the create calls, no
//! EngineVersion, no KmsKeyId), the steps in order, and the refusals that keep
//! ferry from using or deleting a database that is not this run's clone.

use std::sync::{Arc, Mutex};

use aws_sdk_rds::Client;
use aws_sdk_rds::operation::create_db_instance::CreateDbInstanceOutput;
use aws_sdk_rds::operation::delete_db_cluster::DeleteDbClusterOutput;
use aws_sdk_rds::operation::delete_db_instance::DeleteDbInstanceOutput;
use aws_sdk_rds::operation::describe_db_clusters::{DescribeDBClustersError, DescribeDbClustersOutput};
use aws_sdk_rds::operation::describe_db_instances::DescribeDbInstancesOutput;
use aws_sdk_rds::operation::restore_db_cluster_to_point_in_time::RestoreDbClusterToPointInTimeOutput;
use aws_sdk_rds::types::error::DbClusterNotFoundFault;
use aws_sdk_rds::types::{
    DbCluster, DbClusterMember, DbInstance, DbParameterGroupStatus, ServerlessV2ScalingConfigurationInfo, Tag,
    VpcSecurityGroupMembership,
};
use aws_smithy_mocks::{MockResponse, Rule, RuleMode, mock, mock_client};

use super::{RdsDatabase, Rehearsal};
use ferry_core::provider::{CloneInfo, CloneState, Database, ProviderError, Tags};

const CLONE: &str = "app-prod-rehearsal-1a2b";

#[derive(Default)]
struct Rds {
    clone: Mutex<Option<DbCluster>>,
    instances: Mutex<Vec<DbInstance>>,
    /// (operation, the request's Debug form), in order.
    requests: Mutex<Vec<(&'static str, String)>>,
}

impl Rds {
    fn push(&self, op: &'static str, request: String) {
        self.requests.lock().unwrap().push((op, request));
    }

    fn ops(&self) -> Vec<&'static str> {
        self.requests.lock().unwrap().iter().map(|(op, _)| *op).collect()
    }

    fn request(&self, op: &str) -> String {
        self.requests.lock().unwrap().iter().find(|(o, _)| *o == op).map(|(_, r)| r.clone()).unwrap_or_default()
    }

    fn set_clone(&self, status: &str, tags: &[(&str, &str)], endpoint: Option<&str>) {
        *self.clone.lock().unwrap() = Some(
            DbCluster::builder()
                .db_cluster_identifier(CLONE)
                .status(status)
                .set_endpoint(endpoint.map(String::from))
                .port(5432)
                .set_tag_list(Some(tag_list(tags)))
                .build(),
        );
    }

    fn set_instance(&self, status: &str, tags: &[(&str, &str)]) {
        *self.instances.lock().unwrap() = vec![
            DbInstance::builder()
                .db_instance_identifier(format!("{CLONE}-1"))
                .db_instance_status(status)
                .set_tag_list(Some(tag_list(tags)))
                .build(),
        ];
    }
}

fn tag_list(tags: &[(&str, &str)]) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect()
}

const OURS: [(&str, &str); 3] = [("ferry:purpose", "rehearsal"), ("ferry:run-id", "run-1"), ("ferry:env", "prod")];

fn tags() -> Tags {
    OURS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn source() -> DbCluster {
    DbCluster::builder()
        .db_cluster_identifier("app-prod")
        .db_cluster_arn("arn:aws:rds:eu-west-1:123456789012:cluster:app-prod")
        .status("available")
        .engine("aurora-postgresql")
        .engine_version("15.4")
        .kms_key_id("arn:aws:kms:eu-west-1:123456789012:key/source")
        .db_subnet_group("app-subnets")
        .vpc_security_groups(VpcSecurityGroupMembership::builder().vpc_security_group_id("sg-db").build())
        .db_cluster_parameter_group("app-cpg")
        .port(5432)
        .iam_database_authentication_enabled(true)
        .serverless_v2_scaling_configuration(
            ServerlessV2ScalingConfigurationInfo::builder().min_capacity(0.5).max_capacity(8.0).build(),
        )
        .db_cluster_members(
            DbClusterMember::builder().db_instance_identifier("app-prod-w").is_cluster_writer(true).build(),
        )
        .deletion_protection(true)
        .build()
}

fn writer() -> DbInstance {
    DbInstance::builder()
        .db_instance_identifier("app-prod-w")
        .db_instance_class("db.serverless")
        .db_parameter_groups(DbParameterGroupStatus::builder().db_parameter_group_name("app-pg").build())
        .build()
}

fn not_found() -> DescribeDBClustersError {
    DescribeDBClustersError::DbClusterNotFoundFault(DbClusterNotFoundFault::builder().build())
}

fn client(rds: Arc<Rds>) -> Client {
    let r = rds.clone();
    let clusters = mock!(Client::describe_db_clusters).then_compute_response(move |req| {
        let found = match req.db_cluster_identifier() {
            Some("app-prod") => Some(source()),
            _ => r.clone.lock().unwrap().clone(),
        };
        match found {
            Some(c) => MockResponse::Output(DescribeDbClustersOutput::builder().db_clusters(c).build()),
            None => MockResponse::Error(not_found()),
        }
    });
    let r = rds.clone();
    let instances = mock!(Client::describe_db_instances).then_compute_output(move |req| {
        let of = req.filters().first().and_then(|f| f.values().first()).cloned().unwrap_or_default();
        let list = if of == "app-prod" { vec![writer()] } else { r.instances.lock().unwrap().clone() };
        DescribeDbInstancesOutput::builder().set_db_instances(Some(list)).build()
    });
    let r = rds.clone();
    let restore = mock!(Client::restore_db_cluster_to_point_in_time).then_compute_output(move |req| {
        r.push("RestoreDBClusterToPointInTime", format!("{req:?}"));
        RestoreDbClusterToPointInTimeOutput::builder().build()
    });
    let r = rds.clone();
    let create = mock!(Client::create_db_instance).then_compute_output(move |req| {
        r.push("CreateDBInstance", format!("{req:?}"));
        CreateDbInstanceOutput::builder().build()
    });
    let r = rds.clone();
    let delete_instance = mock!(Client::delete_db_instance).then_compute_output(move |req| {
        r.push("DeleteDBInstance", format!("{req:?}"));
        DeleteDbInstanceOutput::builder().build()
    });
    let r = rds;
    let delete_cluster = mock!(Client::delete_db_cluster).then_compute_output(move |req| {
        r.push("DeleteDBCluster", format!("{req:?}"));
        DeleteDbClusterOutput::builder().build()
    });
    let rules: [&Rule; 6] = [&clusters, &instances, &restore, &create, &delete_instance, &delete_cluster];
    mock_client!(aws_sdk_rds, RuleMode::MatchAny, rules)
}

fn db(rds: &Arc<Rds>, class: Option<&str>) -> RdsDatabase {
    RdsDatabase::new(client(rds.clone()), "app-prod".into())
        .with_rehearsal(Rehearsal { instance_class: class.map(String::from), url: None })
}

#[tokio::test]
async fn the_clone_is_copy_on_write_with_the_sources_settings_then_one_instance_then_ready() {
    let rds = Arc::new(Rds::default());
    let db = db(&rds, None);
    let step = db.clone_for_rehearsal(CLONE, &tags()).await.unwrap();
    assert!(matches!(step, CloneState::Making(ref s) if s.contains("creating")), "{step:?}");
    let req = rds.request("RestoreDBClusterToPointInTime");
    for part in [
        "db_cluster_identifier: Some(\"app-prod-rehearsal-1a2b\")",
        "restore_type: Some(\"copy-on-write\")",
        "source_db_cluster_identifier: Some(\"app-prod\")",
        "use_latest_restorable_time: Some(true)",
        "restore_to_time: None",
        "port: Some(5432)",
        "db_subnet_group_name: Some(\"app-subnets\")",
        "vpc_security_group_ids: Some([\"sg-db\"])",
        "db_cluster_parameter_group_name: Some(\"app-cpg\")",
        "enable_iam_database_authentication: Some(true)",
        "deletion_protection: Some(false)",
        "min_capacity: Some(0.5), max_capacity: Some(8.0)",
        "kms_key_id: None",
        "key: Some(\"ferry:purpose\"), value: Some(\"rehearsal\")",
        "key: Some(\"ferry:run-id\"), value: Some(\"run-1\")",
        "key: Some(\"ferry:env\"), value: Some(\"prod\")",
    ] {
        assert!(req.contains(part), "{part} not in {req}");
    }
    // Creating: nothing more is asked of RDS.
    rds.set_clone("creating", &OURS, None);
    assert!(matches!(db.clone_for_rehearsal(CLONE, &tags()).await.unwrap(), CloneState::Making(_)));
    assert_eq!(rds.ops(), ["RestoreDBClusterToPointInTime"]);
    // Available: its instance, as the writer, with the tags in the call.
    rds.set_clone("available", &OURS, Some("clone-endpoint"));
    let step = db.clone_for_rehearsal(CLONE, &tags()).await.unwrap();
    assert!(matches!(step, CloneState::Making(ref s) if s.contains(&format!("{CLONE}-1"))), "{step:?}");
    let req = rds.request("CreateDBInstance");
    for part in [
        "db_instance_identifier: Some(\"app-prod-rehearsal-1a2b-1\")",
        "db_cluster_identifier: Some(\"app-prod-rehearsal-1a2b\")",
        "db_instance_class: Some(\"db.serverless\")",
        "engine: Some(\"aurora-postgresql\")",
        "db_parameter_group_name: Some(\"app-pg\")",
        "key: Some(\"ferry:run-id\"), value: Some(\"run-1\")",
    ] {
        assert!(req.contains(part), "{part} not in {req}");
    }
    rds.set_instance("creating", &OURS);
    assert!(matches!(db.clone_for_rehearsal(CLONE, &tags()).await.unwrap(), CloneState::Making(_)));
    rds.set_instance("available", &OURS);
    let ready = db.clone_for_rehearsal(CLONE, &tags()).await.unwrap();
    let want =
        CloneInfo { id: CLONE.into(), endpoint: "clone-endpoint".into(), port: Some(5432), url_for_migration: None };
    assert_eq!(ready, CloneState::Ready(want));
    assert_eq!(rds.ops(), ["RestoreDBClusterToPointInTime", "CreateDBInstance"], "each made once");
}

#[tokio::test]
async fn rehearse_instance_class_is_the_clones_class() {
    let rds = Arc::new(Rds::default());
    rds.set_clone("available", &OURS, None);
    db(&rds, Some("db.t4g.medium")).clone_for_rehearsal(CLONE, &tags()).await.unwrap();
    assert!(rds.request("CreateDBInstance").contains("db_instance_class: Some(\"db.t4g.medium\")"));
}

#[tokio::test]
async fn an_available_clone_without_endpoint_is_not_ready() {
    let rds = Arc::new(Rds::default());
    rds.set_clone("available", &OURS, None);
    rds.set_instance("available", &OURS);
    let step = db(&rds, None).clone_for_rehearsal(CLONE, &tags()).await.unwrap();
    assert!(matches!(step, CloneState::Making(ref s) if s.contains("not described yet")), "{step:?}");
}

#[tokio::test]
async fn a_database_not_tagged_as_this_runs_clone_is_neither_used_nor_deleted() {
    let other = [("ferry:purpose", "rehearsal"), ("ferry:run-id", "run-2")];
    let production = [("team", "payments")];
    for tags_on_it in [&other[..], &production[..], &[("ferry:run-id", "run-1")][..]] {
        let rds = Arc::new(Rds::default());
        rds.set_clone("available", tags_on_it, Some("h"));
        let db = db(&rds, None);
        let err = db.clone_for_rehearsal(CLONE, &tags()).await.unwrap_err();
        assert!(matches!(err, ProviderError::Rejected(ref m) if m.contains("not tagged as run run-1")), "{err:?}");
        let err = db.delete_rehearsal_clone(CLONE, "run-1").await.unwrap_err();
        assert!(matches!(err, ProviderError::Rejected(_)), "{err:?}");
        assert!(rds.ops().is_empty(), "nothing asked of RDS: {:?}", rds.ops());
    }
    // An instance in this run's clone that is not this run's: neither is deleted.
    let rds = Arc::new(Rds::default());
    rds.set_clone("available", &OURS, Some("h"));
    rds.set_instance("available", &[("team", "payments")]);
    let err = db(&rds, None).delete_rehearsal_clone(CLONE, "run-1").await.unwrap_err();
    assert!(matches!(err, ProviderError::Rejected(ref m) if m.contains("deletes neither")), "{err:?}");
    assert!(rds.ops().is_empty(), "{:?}", rds.ops());
    // Never the environment's own cluster, whatever it is tagged.
    let err = db(&rds, None).delete_rehearsal_clone("app-prod", "run-1").await.unwrap_err();
    assert!(matches!(err, ProviderError::Rejected(_)), "{err:?}");
}

#[tokio::test]
async fn deleting_takes_the_instance_first_then_the_cluster_without_a_final_snapshot() {
    let rds = Arc::new(Rds::default());
    rds.set_clone("available", &OURS, Some("h"));
    rds.set_instance("available", &OURS);
    let db = db(&rds, None);
    let step = db.delete_rehearsal_clone(CLONE, "run-1").await.unwrap();
    assert!(step.is_some_and(|s| s.contains(&format!("{CLONE}-1"))));
    assert!(rds.request("DeleteDBInstance").contains("skip_final_snapshot: Some(true)"));
    // While the instance is deleting, the cluster is left alone.
    rds.set_instance("deleting", &OURS);
    assert!(db.delete_rehearsal_clone(CLONE, "run-1").await.unwrap().is_some());
    assert_eq!(rds.ops(), ["DeleteDBInstance"]);
    rds.instances.lock().unwrap().clear();
    assert_eq!(db.delete_rehearsal_clone(CLONE, "run-1").await.unwrap(), None);
    let req = rds.request("DeleteDBCluster");
    assert!(req.contains("app-prod-rehearsal-1a2b") && req.contains("skip_final_snapshot: Some(true)"), "{req}");
    // Gone (or going): done, nothing more asked.
    rds.set_clone("deleting", &OURS, None);
    assert_eq!(db.delete_rehearsal_clone(CLONE, "run-1").await.unwrap(), None);
    *rds.clone.lock().unwrap() = None;
    assert_eq!(db.delete_rehearsal_clone(CLONE, "run-1").await.unwrap(), None);
    assert_eq!(rds.ops(), ["DeleteDBInstance", "DeleteDBCluster"]);
}

#[tokio::test]
async fn without_database_url_locks_are_not_observed_and_the_reason_says_how() {
    let rds = Arc::new(Rds::default());
    let clone = CloneInfo { id: CLONE.into(), endpoint: "h".into(), port: Some(5432), url_for_migration: None };
    let err = db(&rds, None).lock_observer(&clone).await.err().unwrap();
    assert!(matches!(err, ProviderError::Rejected(ref m) if m.starts_with("set database.url")), "{err:?}");
    let tunnel = RdsDatabase::new(client(rds.clone()), "app-prod".into()).with_rehearsal(Rehearsal {
        instance_class: None,
        url: Some("postgres://app@cluster-endpoint:5433/app?hostaddr=127.0.0.1".into()),
    });
    let err = tunnel.lock_observer(&clone).await.err().unwrap();
    assert!(matches!(err, ProviderError::Rejected(ref m) if m.contains("hostaddr")), "{err:?}");
}
