//! The restore as the original's twin, against `aws-smithy-mocks`: a source
//! cluster and instances that set every field of the API model, and the
//! requests ferry makes from them; the table against the model and the docs;
//! the comparison; renames that tag first.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_rds::Client;
use aws_sdk_rds::operation::add_tags_to_resource::AddTagsToResourceOutput;
use aws_sdk_rds::operation::create_db_instance::CreateDbInstanceOutput;
use aws_sdk_rds::operation::describe_db_clusters::{DescribeDBClustersError, DescribeDbClustersOutput};
use aws_sdk_rds::operation::describe_db_instances::DescribeDbInstancesOutput;
use aws_sdk_rds::operation::modify_db_cluster::ModifyDbClusterOutput;
use aws_sdk_rds::operation::restore_db_cluster_from_snapshot::RestoreDbClusterFromSnapshotOutput;
use aws_sdk_rds::types::error::DbClusterNotFoundFault;
use aws_sdk_rds::types::{DatabaseInsightsMode, DbCluster, DbInstance};
use aws_smithy_mocks::{MockResponse, Rule, RuleMode, mock, mock_client};

use super::RdsDatabase;
use super::fixtures::{cluster, instances, restored_cluster, restored_instance};
use super::settings::{CLUSTER, How, INSTANCE, Setting, When};
use super::twin::{self, debug_fields, norm, pretty};
use ferry_core::provider::{Database, ProviderError, RestoreWork, Tags};

fn fields(text: &str) -> BTreeMap<String, String> {
    debug_fields(text).into_iter().collect()
}

fn is_set(v: &str) -> bool {
    !norm(v).is_empty()
}

/// `DBClusterParameterGroupName` → `db_cluster_parameter_group_name`, as the SDK names members.
fn snake(api: &str) -> String {
    let chars: Vec<char> = api.chars().collect();
    let mut out = String::new();
    for (i, c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1);
        let boundary = c.is_ascii_uppercase()
            && prev.is_some_and(|p| {
                p.is_ascii_lowercase()
                    || p.is_ascii_digit()
                    || (p.is_ascii_uppercase() && next.is_some_and(|n| n.is_ascii_lowercase()))
            });
        if boundary {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[test]
fn api_names_become_sdk_member_names() {
    for (api, sdk) in [
        ("DBClusterParameterGroupName", "db_cluster_parameter_group_name"),
        ("EnableIAMDatabaseAuthentication", "enable_iam_database_authentication"),
        ("PerformanceInsightsKMSKeyId", "performance_insights_kms_key_id"),
        ("ServerlessV2ScalingConfiguration", "serverless_v2_scaling_configuration"),
        ("CACertificateIdentifier", "ca_certificate_identifier"),
        ("Iops", "iops"),
    ] {
        assert_eq!(snake(api), sdk);
    }
}

#[test]
fn debug_fields_split_only_at_the_top_level() {
    let text = r#"X { a: Some("p, q: {r}"), b: [Y { c: 1, d: "e\"f, g" }], h: None, i: Some(Z(1, 2)) }"#;
    let f = debug_fields(text);
    let names: Vec<&str> = f.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["a", "b", "h", "i"]);
    assert_eq!(f[0].1, r#"Some("p, q: {r}")"#);
    assert_eq!(f[1].1, r#"[Y { c: 1, d: "e\"f, g" }]"#);
    assert_eq!(pretty(&f[0].1), "p, q: {r}");
    assert_eq!(pretty(&f[2].1), "not set");
    assert_eq!(pretty("Some(60)"), "60");
}

/// The fields the API model (the SDK ferry is built with) gives a type.
fn model_fields(empty: &impl std::fmt::Debug) -> Vec<String> {
    debug_fields(&format!("{empty:?}")).into_iter().map(|(k, _)| k).collect()
}

fn table_fields<S, C, M>(table: &[Setting<S, C, M>]) -> Vec<String> {
    table.iter().map(|s| s.field.to_string()).collect()
}

#[test]
fn the_table_has_every_field_of_the_api_model_once_and_in_its_order() {
    assert_eq!(table_fields(CLUSTER), model_fields(&DbCluster::builder().build()), "DescribeDBClusters");
    assert_eq!(table_fields(INSTANCE), model_fields(&DbInstance::builder().build()), "DescribeDBInstances");
}

#[test]
fn the_fixtures_set_every_field_of_the_api_model() {
    for (what, text) in [("cluster", format!("{:?}", cluster("c"))), ("instance", format!("{:?}", instances("c")[0]))] {
        let unset: Vec<String> = debug_fields(&text).into_iter().filter(|(_, v)| !is_set(v)).map(|(k, _)| k).collect();
        assert!(unset.is_empty(), "the {what} fixture leaves {unset:?} unset");
    }
}

// --- a mock RDS that remembers what it was asked -------------------------------------------

#[derive(Default)]
struct Recorded {
    restored: Mutex<Option<DbCluster>>,
    created: Mutex<Vec<String>>,
    /// (operation, the request's Debug form), in order.
    requests: Mutex<Vec<(&'static str, String)>>,
}

impl Recorded {
    fn push(&self, op: &'static str, request: String) {
        self.requests.lock().unwrap().push((op, request));
    }

    fn of(&self, op: &str) -> Vec<BTreeMap<String, String>> {
        self.requests.lock().unwrap().iter().filter(|(o, _)| *o == op).map(|(_, r)| fields(r)).collect()
    }
}

/// What RestoreDBClusterFromSnapshot gives when it is passed nothing beyond
/// the snapshot: the API's defaults.
fn api_defaults(id: &str, engine: &str) -> DbCluster {
    DbCluster::builder()
        .db_cluster_identifier(id)
        .status("available")
        .engine(engine)
        .auto_minor_version_upgrade(true)
        .preferred_maintenance_window("mon:00:00-mon:00:30")
        .database_insights_mode(DatabaseInsightsMode::Standard)
        .http_endpoint_enabled(false)
        .build()
}

fn not_found() -> DescribeDBClustersError {
    DescribeDBClustersError::DbClusterNotFoundFault(DbClusterNotFoundFault::builder().build())
}

fn mock_rds(source: DbCluster, source_instances: Vec<DbInstance>, rec: Arc<Recorded>) -> Client {
    let source_id = source.db_cluster_identifier().unwrap_or_default().to_string();
    let (r1, s1) = (rec.clone(), source_id.clone());
    let clusters = mock!(Client::describe_db_clusters).then_compute_response(move |r| {
        if r.db_cluster_identifier() == Some(s1.as_str()) {
            return MockResponse::Output(DescribeDbClustersOutput::builder().db_clusters(source.clone()).build());
        }
        match r1.restored.lock().unwrap().clone() {
            Some(c) => MockResponse::Output(DescribeDbClustersOutput::builder().db_clusters(c).build()),
            None => MockResponse::Error(not_found()),
        }
    });
    let r2 = rec.clone();
    let describe_instances = mock!(Client::describe_db_instances).then_compute_output(move |r| {
        let of = r.filters().first().and_then(|f| f.values().first()).cloned().unwrap_or_default();
        let list = if of == source_id {
            source_instances.clone()
        } else {
            let created = r2.created.lock().unwrap().clone();
            created.iter().map(|id| DbInstance::builder().db_instance_identifier(id).build()).collect()
        };
        DescribeDbInstancesOutput::builder().set_db_instances(Some(list)).build()
    });
    let r3 = rec.clone();
    let restore = mock!(Client::restore_db_cluster_from_snapshot).then_compute_output(move |r| {
        r3.push("restore", format!("{r:?}"));
        let id = r.db_cluster_identifier().unwrap_or_default();
        *r3.restored.lock().unwrap() = Some(api_defaults(id, r.engine().unwrap_or_default()));
        RestoreDbClusterFromSnapshotOutput::builder().build()
    });
    let r4 = rec.clone();
    let create = mock!(Client::create_db_instance).then_compute_output(move |r| {
        r4.push("create", format!("{r:?}"));
        r4.created.lock().unwrap().push(r.db_instance_identifier().unwrap_or_default().to_string());
        CreateDbInstanceOutput::builder().build()
    });
    let r5 = rec.clone();
    let modify = mock!(Client::modify_db_cluster).then_compute_output(move |r| {
        r5.push("modify", format!("{r:?}"));
        ModifyDbClusterOutput::builder().build()
    });
    let r6 = rec;
    let tag = mock!(Client::add_tags_to_resource).then_compute_output(move |r| {
        r6.push("tag", format!("{r:?}"));
        AddTagsToResourceOutput::builder().build()
    });
    let rules: [&Rule; 6] = [&clusters, &describe_instances, &restore, &create, &modify, &tag];
    mock_client!(aws_sdk_rds, RuleMode::MatchAny, rules)
}

fn run_tags() -> Tags {
    Tags::from([
        ("ferry:run-id".to_string(), "run-1".to_string()),
        ("ferry:purpose".to_string(), "restore".to_string()),
    ])
}

/// A setting's request parameter and when it applies, for the `Create` or the `Modify` kind.
type Pick<S, C, M> = fn(&How<S, C, M>) -> Option<(&'static str, &When<S>)>;

/// Each `Create` / `Modify` setting of `table` is in `request` when it applies
/// to `source` (with the source's value where it is a plain value), and is
/// absent when it does not.
fn assert_carried<S: std::fmt::Debug, C, M>(
    table: &[Setting<S, C, M>],
    source: &S,
    request: &BTreeMap<String, String>,
    pick: Pick<S, C, M>,
    what: &str,
) -> usize {
    let values = fields(&format!("{source:?}"));
    let mut carried = 0;
    for s in table {
        let Some((param, when)) = pick(&s.how) else { continue };
        let member = snake(param);
        let sent = request.get(&member).unwrap_or_else(|| panic!("{what} has no parameter {param} ({member})"));
        if !(when.holds)(source) {
            assert!(!is_set(sent), "{what} must not pass {param} here ({}): {sent}", when.label);
            continue;
        }
        assert!(is_set(sent), "{what} does not carry {} as {param}", s.api);
        let original = &values[s.field];
        // A plain value (text, number, flag) must arrive as it is; others in their request shape.
        let plain = |v: &str| {
            let inner = v.strip_prefix("Some(").and_then(|x| x.strip_suffix(')')).unwrap_or(v);
            (inner.starts_with('"') && inner.ends_with('"'))
                || inner.parse::<f64>().is_ok()
                || inner == "true"
                || inner == "false"
        };
        if plain(original) && plain(sent) {
            assert_eq!(pretty(sent), pretty(original), "{what} {param}");
        }
        carried += 1;
    }
    carried
}

fn create_of<S, C, M>(how: &How<S, C, M>) -> Option<(&'static str, &When<S>)> {
    match how {
        How::Create { param, when, .. } => Some((param, when)),
        _ => None,
    }
}

fn modify_of<S, C, M>(how: &How<S, C, M>) -> Option<(&'static str, &When<S>)> {
    match how {
        How::Modify { param, when, .. } => Some((param, when)),
        _ => None,
    }
}

fn tags_of(request: &BTreeMap<String, String>) -> String {
    request.get("tags").cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_restore_carries_every_setting_of_the_original_the_api_takes() {
    let source = cluster("app-prod");
    let rec = Arc::new(Recorded::default());
    let db = RdsDatabase::new(mock_rds(source.clone(), instances("app-prod"), rec.clone()), "app-prod".into());
    let target = "app-prod-restored-1";
    db.restore_snapshot("snap-1", target, &run_tags()).await.unwrap();

    // The writer alone first, then the reader; then the settings the restore cannot carry.
    let step = db.complete_restore(target, &run_tags()).await.unwrap();
    assert_eq!(step, Some(RestoreWork::Instances(vec![format!("{target}-1")])));
    let step = db.complete_restore(target, &run_tags()).await.unwrap();
    assert_eq!(step, Some(RestoreWork::Instances(vec![format!("{target}-2")])));
    let Some(RestoreWork::Settings(applied)) = db.complete_restore(target, &run_tags()).await.unwrap() else {
        panic!("the third step applies settings")
    };

    let restore = &rec.of("restore")[0];
    assert_eq!(pretty(&restore["snapshot_identifier"]), "snap-1");
    let n = assert_carried(CLUSTER, &source, restore, create_of, "RestoreDBClusterFromSnapshot");
    assert!(n >= 20, "only {n} settings carried in the restore call");
    let tags = tags_of(restore);
    for want in ["\"team\"", "\"payments\"", "\"ferry:run-id\"", "\"run-1\"", "\"ferry:purpose\"", "\"restore\""] {
        assert!(tags.contains(want), "{want} missing from the restore's tags: {tags}");
    }
    assert!(!tags.contains("aws:") && !tags.contains("prod-20250101"), "AWS's and an older run's tags: {tags}");

    let creates = rec.of("create");
    assert_eq!(creates.len(), 2);
    for (n, (request, original)) in creates.iter().zip(instances("app-prod")).enumerate() {
        assert_eq!(pretty(&request["db_instance_identifier"]), format!("{target}-{}", n + 1));
        assert_eq!(pretty(&request["db_cluster_identifier"]), target);
        assert_carried(INSTANCE, &original, request, create_of, "CreateDBInstance");
        assert!(tags_of(request).contains("\"run-1\""), "ferry's tags on the instance");
    }

    let modify = &rec.of("modify")[0];
    assert_eq!(pretty(&modify["db_cluster_identifier"]), target);
    assert_eq!(pretty(&modify["apply_immediately"]), "true");
    assert_carried(CLUSTER, &source, modify, modify_of, "ModifyDBCluster");
    for want in ["PreferredMaintenanceWindow", "AutoMinorVersionUpgrade", "DatabaseInsightsMode", "MasterUserSecret"] {
        assert!(applied.iter().any(|a| a == want), "{want} not applied: {applied:?}");
    }
    // Advanced Database Insights needs Performance Insights in the same call.
    assert_eq!(pretty(&modify["enable_performance_insights"]), "true");
    assert_eq!(pretty(&modify["performance_insights_retention_period"]), "465");
}

#[tokio::test]
async fn a_multi_az_db_cluster_gets_its_own_settings_and_rds_makes_its_instances() {
    let mut source = cluster("db-prod");
    source.engine = Some("postgres".into());
    let rec = Arc::new(Recorded::default());
    let db = RdsDatabase::new(mock_rds(source.clone(), instances("db-prod"), rec.clone()), "db-prod".into());
    db.restore_snapshot("snap-1", "db-prod-restored-1", &run_tags()).await.unwrap();
    let restore = &rec.of("restore")[0];
    assert_carried(CLUSTER, &source, restore, create_of, "RestoreDBClusterFromSnapshot");
    for param in ["db_cluster_instance_class", "iops", "monitoring_interval", "publicly_accessible"] {
        assert!(is_set(&restore[param]), "{param}");
    }
    assert!(!is_set(&restore["availability_zones"]) && !is_set(&restore["network_type"]));
    let step = db.complete_restore("db-prod-restored-1", &run_tags()).await.unwrap();
    assert!(matches!(step, Some(RestoreWork::Settings(_))), "{step:?}");
    assert!(rec.of("create").is_empty(), "RDS creates a Multi-AZ DB cluster's instances itself");
    let modify = &rec.of("modify")[0];
    assert_eq!(pretty(&modify["ca_certificate_identifier"]), "rds-ca-rsa2048-g1");
    assert_eq!(pretty(&modify["allocated_storage"]), "1");
}

#[tokio::test]
async fn a_refused_modify_does_not_stop_the_restore() {
    let rec = Arc::new(Recorded::default());
    *rec.restored.lock().unwrap() = Some(api_defaults("app-prod-restored-1", "aurora-postgresql"));
    let refused = mock!(Client::modify_db_cluster).then_http_response(|| {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
            aws_smithy_types::body::SdkBody::from(
                "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidParameterCombination</Code>\
                 <Message>no</Message></Error></ErrorResponse>",
            ),
        )
    });
    let source = cluster("app-prod");
    let mut no_instances = source.clone();
    no_instances.db_cluster_members = None;
    let clusters = mock!(Client::describe_db_clusters).then_compute_output(move |r| {
        let c = if r.db_cluster_identifier() == Some("app-prod") {
            no_instances.clone()
        } else {
            api_defaults("app-prod-restored-1", "aurora-postgresql")
        };
        DescribeDbClustersOutput::builder().db_clusters(c).build()
    });
    let none = mock!(Client::describe_db_instances).then_output(|| DescribeDbInstancesOutput::builder().build());
    let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&refused, &clusters, &none]);
    let db = RdsDatabase::new(client, "app-prod".into());
    match db.complete_restore("app-prod-restored-1", &run_tags()).await {
        Ok(Some(RestoreWork::Refused(why))) => {
            assert!(why.contains("InvalidParameterCombination") && why.contains("PreferredMaintenanceWindow"), "{why}")
        }
        other => panic!("{other:?}"),
    }
}

// --- the comparison --------------------------------------------------------------------

fn twin_instances(original: &[DbInstance], cluster: &str) -> Vec<DbInstance> {
    original.iter().enumerate().map(|(n, i)| restored_instance(i, cluster, &format!("{cluster}-{}", n + 1))).collect()
}

#[test]
fn a_faithful_twin_shows_no_difference() {
    let a = cluster("app-prod-failed-1");
    let b = restored_cluster(&a, "app-prod");
    assert_eq!(twin::compare_clusters(&a, &b), Vec::<String>::new());
    let (ia, ib) = (instances("app-prod-failed-1"), twin_instances(&instances("app-prod-failed-1"), "app-prod"));
    assert_eq!(twin::compare_instances((&a, ia), (&b, ib)), Vec::<String>::new());
}

#[test]
fn every_difference_outside_the_allowlist_is_named_with_both_values() {
    let a = cluster("app-prod-failed-1");
    let mut b = restored_cluster(&a, "app-prod");
    b.storage_type = Some("aurora".into());
    b.enabled_cloudwatch_logs_exports = None;
    b.custom_endpoints = None;
    let diffs = twin::compare_clusters(&a, &b);
    assert_eq!(diffs.len(), 3, "{diffs:#?}");
    assert!(diffs.contains(&"StorageType: aurora-iopt1 on the original, aurora on the restored".to_string()));
    assert!(diffs.iter().any(|d| d.starts_with("EnabledCloudwatchLogsExports: postgresql on the original, not set")));
    assert!(diffs.iter().any(|d| d.starts_with("CustomEndpoints") && d.contains("ferry does not copy it")));

    let ia = instances("app-prod-failed-1");
    let mut ib = twin_instances(&ia, "app-prod");
    ib.truncate(1);
    ib[0].ca_certificate_identifier = Some("rds-ca-default".into());
    ib[0].monitoring_interval = Some(0);
    let diffs = twin::compare_instances((&a, ia), (&b, ib));
    assert!(diffs.contains(&"instances: 2 on the original, 1 on the restored".to_string()), "{diffs:#?}");
    assert!(
        diffs.iter().any(|d| d.starts_with(
            "writer (app-prod-failed-1-a / app-prod-1) CACertificateIdentifier: \
         rds-ca-rsa2048-g1 on the original, rds-ca-default on the restored"
        )),
        "{diffs:#?}"
    );
    assert!(
        diffs.iter().any(|d| d.contains("MonitoringInterval: 60 on the original, 0 on the restored")),
        "{diffs:#?}"
    );
}

#[test]
fn a_field_missing_from_the_table_is_compared_all_the_same() {
    let a = cluster("x");
    let mut b = a.clone();
    b.port = Some(1);
    let empty: &[super::settings::ClusterSetting] = &[];
    let diffs = twin::diff(empty, "", &a, &b);
    assert_eq!(diffs, ["port: 5433 on the original, 1 on the restored (a setting ferry does not know yet)"]);
}

#[test]
fn credentials_after_a_restore_are_in_a_new_secret_that_the_operator_is_told_about() {
    let a = cluster("app-prod-failed-1");
    let mut restored = api_defaults("app-prod", "aurora-postgresql");
    let names = |p: Vec<&super::settings::ClusterSetting>| p.iter().map(|s| s.api).collect::<Vec<_>>();
    // Managed on the original, not yet on the restored: ModifyDBCluster turns it on with the same key.
    assert!(names(twin::pending_modifications(&a, &restored)).contains(&"MasterUserSecret"));
    restored.master_user_secret = restored_cluster(&a, "app-prod").master_user_secret;
    assert!(!names(twin::pending_modifications(&a, &restored)).contains(&"MasterUserSecret"), "done once");
    // Not managed on the original: nothing to turn on.
    let mut plain = a.clone();
    plain.master_user_secret = None;
    assert!(
        !names(twin::pending_modifications(&plain, &api_defaults("x", "aurora-postgresql")))
            .contains(&"MasterUserSecret")
    );

    let b = restored_cluster(&a, "app-prod");
    let notes = twin::notes("app-prod-failed-1", &a, "app-prod", &b);
    assert_eq!(notes.len(), 1);
    assert!(notes[0].contains("secret:rds!cluster-app-prod;") && notes[0].contains("rds!cluster-app-prod-failed-1"));
    assert!(notes[0].contains("must read the new secret"), "{}", notes[0]);
}

// --- renames ---------------------------------------------------------------------------

#[tokio::test]
async fn a_rename_tags_the_cluster_with_the_run_first() {
    let rec = Arc::new(Recorded::default());
    let db = RdsDatabase::new(mock_rds(cluster("app-prod"), instances("app-prod"), rec.clone()), "app-prod".into());
    db.rename("app-prod", "app-prod-failed-1", "run-9").await.unwrap();
    let order: Vec<&str> = rec.requests.lock().unwrap().iter().map(|(op, _)| *op).collect();
    assert_eq!(order, ["tag", "modify"]);
    let tag = &rec.of("tag")[0];
    assert_eq!(pretty(&tag["resource_name"]), "arn:aws:rds:us-east-1:123456789012:cluster:app-prod");
    assert!(
        tag["tags"].contains("\"ferry:run-id\"")
            && tag["tags"].contains("\"run-9\"")
            && !tag["tags"].contains("purpose")
    );
    let modify = &rec.of("modify")[0];
    assert_eq!(pretty(&modify["new_db_cluster_identifier"]), "app-prod-failed-1");

    // Already tagged by this run (the restored cluster, from its creation): no tag call.
    let rec = Arc::new(Recorded::default());
    let mut tagged = cluster("app-prod");
    tagged.tag_list = Some(vec![aws_sdk_rds::types::Tag::builder().key("ferry:run-id").value("run-9").build()]);
    let db = RdsDatabase::new(mock_rds(tagged, vec![], rec.clone()), "app-prod".into());
    db.rename("app-prod", "app-prod-failed-1", "run-9").await.unwrap();
    assert!(rec.of("tag").is_empty());
}

#[tokio::test]
async fn a_rename_is_idempotent_and_never_overwrites() {
    // `to` exists, `from` does not: done already.
    let gone = mock!(Client::describe_db_clusters)
        .match_requests(|r| r.db_cluster_identifier() == Some("a"))
        .then_error(not_found);
    let there = mock!(Client::describe_db_clusters).then_output(|| {
        DescribeDbClustersOutput::builder().db_clusters(DbCluster::builder().db_cluster_identifier("b").build()).build()
    });
    let modify = mock!(Client::modify_db_cluster).then_output(|| ModifyDbClusterOutput::builder().build());
    let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&gone, &there, &modify]);
    RdsDatabase::new(client, "a".into()).rename("a", "b", "r").await.unwrap();
    assert_eq!(modify.num_calls(), 0, "already renamed: nothing to do");

    // Both exist: refused, nothing renamed.
    let both = mock!(Client::describe_db_clusters).then_output(|| {
        DescribeDbClustersOutput::builder().db_clusters(DbCluster::builder().db_cluster_identifier("x").build()).build()
    });
    let modify = mock!(Client::modify_db_cluster).then_output(|| ModifyDbClusterOutput::builder().build());
    let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&both, &modify]);
    let err = RdsDatabase::new(client, "a".into()).rename("a", "b", "r").await.unwrap_err();
    assert!(matches!(err, ProviderError::Rejected(_)), "{err:?}");
    assert_eq!(modify.num_calls(), 0);
}

// --- the docs ----------------------------------------------------------------------------

fn how_text<S, C, M>(s: &Setting<S, C, M>, create_call: &str, modify_call: &str) -> String {
    let only = |w: &When<S>| if w.label.is_empty() { String::new() } else { format!(" ({})", w.label) };
    match &s.how {
        How::Create { param, when, .. } => format!("copied: {create_call} `{param}`{}", only(when)),
        How::Modify { param, when, .. } => {
            format!("copied after the create, before the swap: {modify_call} `{param}`{}", only(when))
        }
        How::Same(why) => format!("the same by itself: {why}"),
        How::NotCopied(why) => format!("**not copied**, reported when it differs: {why}"),
        How::Differs(why) => format!("differs by nature, not compared: {why}"),
    }
}

fn render<S, C, M>(table: &[Setting<S, C, M>], create_call: &str, modify_call: &str) -> String {
    let mut out = String::from("| setting | how |\n|---|---|\n");
    for s in table {
        out.push_str(&format!("| `{}` | {} |\n", s.api, how_text(s, create_call, modify_call)));
    }
    out
}

/// docs/commands/restore.md holds the table as it is in the code.
#[test]
fn the_docs_list_every_setting_as_the_table_has_it() {
    let expected = format!(
        "<!-- settings table: generated from crates/ferry-aws/src/rds/settings.rs; a test keeps it the same -->\n\n\
         #### Cluster (DescribeDBClusters)\n\n{}\n#### Each instance (DescribeDBInstances)\n\n{}",
        render(CLUSTER, "RestoreDBClusterFromSnapshot", "ModifyDBCluster"),
        render(INSTANCE, "CreateDBInstance", "ModifyDBInstance"),
    );
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/commands/restore.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let start = doc.find("<!-- settings table:");
    let end = doc.find("<!-- end of the settings table -->");
    let found = match (start, end) {
        (Some(s), Some(e)) if s < e => doc[s..e].trim_end(),
        _ => "",
    };
    if found != expected.trim_end() {
        let out = std::env::temp_dir().join("ferry-restore-settings-table.md");
        let _ = std::fs::write(&out, &expected);
        panic!(
            "docs/commands/restore.md's settings table differs from the code's; the expected text is in {}",
            out.display()
        );
    }
}
