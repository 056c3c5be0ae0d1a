//! The one table of what a restore carries from the original database to the
//! restored one: every field DescribeDBClusters and DescribeDBInstances return,
//! with how ferry copies it (in the create call, or with a modify call after
//! it) or why it does not. The request builders, the comparison after a
//! restore and the tests all read this table; docs/commands/restore.md is the
//! same table in prose.

use aws_sdk_rds::operation::create_db_instance::builders::CreateDBInstanceFluentBuilder;
use aws_sdk_rds::operation::modify_db_cluster::builders::ModifyDBClusterFluentBuilder;
use aws_sdk_rds::operation::restore_db_cluster_from_snapshot::builders::RestoreDBClusterFromSnapshotFluentBuilder;
use aws_sdk_rds::types::{
    DbCluster, DbInstance, LocalWriteForwardingStatus, ScalingConfiguration, ServerlessV2ScalingConfiguration, Tag,
};

pub type RestoreReq = RestoreDBClusterFromSnapshotFluentBuilder;
pub type ModifyReq = ModifyDBClusterFluentBuilder;
pub type CreateReq = CreateDBInstanceFluentBuilder;

/// How one setting gets from the original to the restored database. The
/// request parameters and the allowlist's reasons are read by the tests and
/// written out in docs/commands/restore.md.
#[cfg_attr(not(test), allow(dead_code))]
pub enum How<S: 'static, C: 'static, M: 'static> {
    /// Passed in the create call (RestoreDBClusterFromSnapshot or
    /// CreateDBInstance) as the request's `param` (the API's spelling), when
    /// `when` holds for the original.
    Create { param: &'static str, when: When<S>, set: fn(C, &S) -> C },
    /// Applied with a modify call (ModifyDBCluster, ApplyImmediately) after the
    /// create and before the swap, when it holds for the original and the
    /// restored database differs.
    Modify { param: &'static str, when: When<S>, set: fn(M, &S) -> M },
    /// Not passed: it comes out the same by itself (the snapshot keeps it, the
    /// cluster gives it to its instances, it follows another setting). Compared.
    Same(&'static str),
    /// Not copied, for the reason given. Compared: a difference is reported.
    NotCopied(&'static str),
    /// Differs by nature (identifiers, endpoints, times, ARNs, status): the
    /// allowlist. Not compared.
    Differs(&'static str),
}

/// One field of DescribeDBClusters (`S = DbCluster`) or DescribeDBInstances
/// (`S = DbInstance`).
pub struct Setting<S: 'static, C: 'static, M: 'static> {
    /// The field as the SDK names it (the API member in snake case).
    pub field: &'static str,
    /// The API's name, as DescribeDB* and the docs spell it.
    pub api: &'static str,
    pub how: How<S, C, M>,
    /// What is compared, when not the whole value (tags without ferry's and
    /// AWS's own, security groups without their status, ...).
    pub view: Option<fn(&S) -> String>,
}

pub type ClusterSetting = Setting<DbCluster, RestoreReq, ModifyReq>;
pub type InstanceSetting = Setting<DbInstance, CreateReq, ()>;

const fn create<S, C, M>(
    field: &'static str,
    api: &'static str,
    when: When<S>,
    param: &'static str,
    set: fn(C, &S) -> C,
) -> Setting<S, C, M> {
    Setting { field, api, how: How::Create { param, when, set }, view: None }
}

const fn modify<S, C, M>(
    field: &'static str,
    api: &'static str,
    when: When<S>,
    param: &'static str,
    set: fn(M, &S) -> M,
) -> Setting<S, C, M> {
    Setting { field, api, how: How::Modify { param, when, set }, view: None }
}

const fn same<S, C, M>(field: &'static str, api: &'static str, why: &'static str) -> Setting<S, C, M> {
    Setting { field, api, how: How::Same(why), view: None }
}

const fn not_copied<S, C, M>(field: &'static str, api: &'static str, why: &'static str) -> Setting<S, C, M> {
    Setting { field, api, how: How::NotCopied(why), view: None }
}

const fn differs<S, C, M>(field: &'static str, api: &'static str, why: &'static str) -> Setting<S, C, M> {
    Setting { field, api, how: How::Differs(why), view: None }
}

const fn viewed<S, C, M>(s: Setting<S, C, M>, view: fn(&S) -> String) -> Setting<S, C, M> {
    Setting { field: s.field, api: s.api, how: s.how, view: Some(view) }
}

// --- when a setting applies -------------------------------------------------------

/// Which originals a setting applies to, and how the docs say it.
#[cfg_attr(not(test), allow(dead_code))]
pub struct When<S: 'static> {
    pub holds: fn(&S) -> bool,
    /// Empty for every original.
    pub label: &'static str,
}

fn always<S>(_: &S) -> bool {
    true
}

const ALL: When<DbCluster> = When { holds: always, label: "" };
const EVERY: When<DbInstance> = When { holds: always, label: "" };
const AURORA: When<DbCluster> = When { holds: is_aurora, label: "Aurora DB clusters" };
const MULTI_AZ: When<DbCluster> = When { holds: is_multi_az_cluster, label: "Multi-AZ DB clusters" };
const AURORA_MYSQL: When<DbCluster> = When { holds: is_aurora_mysql, label: "Aurora MySQL" };
const SERVERLESS_V1: When<DbCluster> = When { holds: is_serverless_v1, label: "Aurora Serverless v1" };
const PI: When<DbCluster> = When { holds: has_pi, label: "with Performance Insights on" };
const INSTANCE_PI: When<DbInstance> = When { holds: instance_has_pi, label: "with Performance Insights on" };
const OWN_OPTION_GROUP: When<DbCluster> =
    When { holds: has_custom_option_group, label: "with an option group other than the default" };
const DOMAIN: When<DbCluster> = When { holds: has_domain, label: "Aurora DB clusters in a Kerberos domain" };
const SECRET: When<DbCluster> =
    When { holds: has_secret, label: "when RDS manages the original's master password in Secrets Manager" };
const LOCAL_WRITE_FORWARDING: When<DbCluster> =
    When { holds: local_write_forwarding, label: "with local write forwarding on" };
const DATA_API_V1: When<DbCluster> = When {
    holds: serverless_v1_http_endpoint,
    label: "Aurora Serverless v1 with the Data API on; a provisioned or Serverless v2 cluster with the Data API on \
            gets the EnableHttpEndpoint action instead, never this parameter",
};
const INSIGHTS: When<DbCluster> =
    When { holds: |c| c.database_insights_mode().is_some(), label: "when the original has a Database Insights mode" };

/// Aurora (MySQL or PostgreSQL); the other cluster engines are Multi-AZ DB clusters.
pub fn is_aurora(c: &DbCluster) -> bool {
    c.engine().is_some_and(|e| e.starts_with("aurora"))
}

/// A Multi-AZ DB cluster (RDS for MySQL or PostgreSQL): RDS creates its instances.
pub fn is_multi_az_cluster(c: &DbCluster) -> bool {
    !is_aurora(c)
}

fn is_aurora_mysql(c: &DbCluster) -> bool {
    c.engine() == Some("aurora-mysql")
}

/// Aurora Serverless v1: no instances at all.
pub fn is_serverless_v1(c: &DbCluster) -> bool {
    c.engine_mode() == Some("serverless")
}

fn has_pi(c: &DbCluster) -> bool {
    c.performance_insights_enabled() == Some(true)
}

fn instance_has_pi(i: &DbInstance) -> bool {
    i.performance_insights_enabled() == Some(true)
}

fn has_custom_option_group(c: &DbCluster) -> bool {
    option_group(c).is_some_and(|g| !g.starts_with("default:"))
}

fn has_domain(c: &DbCluster) -> bool {
    is_aurora(c) && !c.domain_memberships().is_empty()
}

fn has_secret(c: &DbCluster) -> bool {
    c.master_user_secret().is_some()
}

fn local_write_forwarding(c: &DbCluster) -> bool {
    matches!(
        c.local_write_forwarding_status(),
        Some(
            LocalWriteForwardingStatus::Enabled
                | LocalWriteForwardingStatus::Enabling
                | LocalWriteForwardingStatus::Requested
        )
    )
}

/// ModifyDBCluster takes `EnableHttpEndpoint` for Aurora Serverless v1 only (the
/// RDS API Reference, ModifyDBCluster: "Specifies whether to enable the HTTP
/// endpoint for an Aurora Serverless v1 DB cluster"); a provisioned or
/// Serverless v2 cluster has the Data API turned on with its own action,
/// EnableHttpEndpoint ([`needs_data_api_action`]), never inside the settings call.
fn serverless_v1_http_endpoint(c: &DbCluster) -> bool {
    is_serverless_v1(c) && c.http_endpoint_enabled() == Some(true)
}

/// The original has the Data API on, is an Aurora cluster other than
/// Serverless v1, and the restored one does not have it yet: the restore turns
/// it on with the EnableHttpEndpoint action (the RDS API Reference,
/// EnableHttpEndpoint: "Enables the HTTP endpoint for the DB cluster", for
/// Aurora PostgreSQL Serverless v2 and provisioned clusters, and Aurora MySQL
/// where the Data API is available).
pub fn needs_data_api_action(source: &DbCluster, restored: &DbCluster) -> bool {
    is_aurora(source)
        && !is_serverless_v1(source)
        && source.http_endpoint_enabled() == Some(true)
        && restored.http_endpoint_enabled() != Some(true)
}

// --- values --------------------------------------------------------------------------

fn owned(s: Option<&str>) -> Option<String> {
    s.map(String::from)
}

fn non_empty<T: Clone>(v: &[T]) -> Option<Vec<T>> {
    (!v.is_empty()).then(|| v.to_vec())
}

fn option_group(c: &DbCluster) -> Option<&str> {
    c.db_cluster_option_group_memberships().first().and_then(|g| g.db_cluster_option_group_name())
}

/// Tags a user set: without ferry's own (`ferry:`) and AWS's (`aws:`, which no
/// API call may set).
pub fn user_tags(tags: &[Tag]) -> Vec<Tag> {
    tags.iter()
        .filter(|t| t.key().is_some_and(|k| !k.starts_with("ferry:") && !k.starts_with("aws:")))
        .cloned()
        .collect()
}

fn tags_view(tags: &[Tag]) -> String {
    let mut kv: Vec<String> =
        user_tags(tags).iter().map(|t| format!("{}={}", t.key().unwrap_or(""), t.value().unwrap_or(""))).collect();
    kv.sort();
    kv.join(", ")
}

fn sorted(mut v: Vec<String>) -> String {
    v.sort();
    v.join(", ")
}

fn cluster_secret_view(c: &DbCluster) -> String {
    match c.master_user_secret() {
        Some(s) => format!("managed by RDS in Secrets Manager (KMS key {})", s.kms_key_id().unwrap_or("default")),
        None => String::new(),
    }
}

fn local_write_forwarding_view(c: &DbCluster) -> String {
    if local_write_forwarding(c) { "enabled".into() } else { String::new() }
}

fn domain_view(d: &[aws_sdk_rds::types::DomainMembership]) -> String {
    sorted(
        d.iter().map(|m| format!("{} (role {})", m.domain().unwrap_or(""), m.iam_role_name().unwrap_or(""))).collect(),
    )
}

// --- the cluster ---------------------------------------------------------------------

/// Every field of DescribeDBClusters, in the API's order.
#[rustfmt::skip]
pub static CLUSTER: &[ClusterSetting] = &[
    modify("allocated_storage", "AllocatedStorage", MULTI_AZ, "AllocatedStorage", |m, c| m.set_allocated_storage(c.allocated_storage())),
    viewed(create("availability_zones", "AvailabilityZones", AURORA, "AvailabilityZones", |r, c| r.set_availability_zones(non_empty(c.availability_zones()))), |c| sorted(c.availability_zones().to_vec())),
    create("backup_retention_period", "BackupRetentionPeriod", ALL, "BackupRetentionPeriod", |r, c| r.set_backup_retention_period(c.backup_retention_period())),
    same("character_set_name", "CharacterSetName", "chosen when a cluster is first created; the snapshot keeps it"),
    same("database_name", "DatabaseName", "the snapshot keeps the database"),
    differs("db_cluster_identifier", "DBClusterIdentifier", "the restored cluster's own name (the original's once swapped)"),
    create("db_cluster_parameter_group", "DBClusterParameterGroup", ALL, "DBClusterParameterGroupName", |r, c| r.set_db_cluster_parameter_group_name(owned(c.db_cluster_parameter_group()))),
    create("db_subnet_group", "DBSubnetGroup", ALL, "DBSubnetGroupName", |r, c| r.set_db_subnet_group_name(owned(c.db_subnet_group()))),
    differs("status", "Status", "the cluster's state at the moment"),
    differs("percent_progress", "PercentProgress", "progress of an operation under way"),
    differs("earliest_restorable_time", "EarliestRestorableTime", "the restored cluster's backups start when it is created"),
    differs("endpoint", "Endpoint", "follows the identifier: once swapped, the restored cluster answers at the original's endpoint"),
    differs("reader_endpoint", "ReaderEndpoint", "follows the identifier, like Endpoint"),
    not_copied("custom_endpoints", "CustomEndpoints", "custom endpoints are resources of their own (CreateDBClusterEndpoint) tied to the original cluster: create them again"),
    same("multi_az", "MultiAZ", "follows from the instances' availability zones, which are copied"),
    create("engine", "Engine", ALL, "Engine", |r, c| r.set_engine(owned(c.engine()))),
    create("engine_version", "EngineVersion", ALL, "EngineVersion", |r, c| r.set_engine_version(owned(c.engine_version()))),
    differs("latest_restorable_time", "LatestRestorableTime", "moves on with the cluster's own backups"),
    create("port", "Port", ALL, "Port", |r, c| r.set_port(c.port())),
    same("master_username", "MasterUsername", "the snapshot keeps the master user"),
    viewed(create("db_cluster_option_group_memberships", "DBClusterOptionGroupMemberships", OWN_OPTION_GROUP, "OptionGroupName", |r, c| r.set_option_group_name(owned(option_group(c)))), |c| option_group(c).unwrap_or("").to_string()),
    create("preferred_backup_window", "PreferredBackupWindow", ALL, "PreferredBackupWindow", |r, c| r.set_preferred_backup_window(owned(c.preferred_backup_window()))),
    modify("preferred_maintenance_window", "PreferredMaintenanceWindow", ALL, "PreferredMaintenanceWindow", |m, c| m.set_preferred_maintenance_window(owned(c.preferred_maintenance_window()))),
    not_copied("upgrade_rollout_order", "UpgradeRolloutOrder", "no create or modify call sets it"),
    not_copied("replication_source_identifier", "ReplicationSourceIdentifier", "replication from another cluster is not restored: the restored cluster stands alone"),
    not_copied("read_replica_identifiers", "ReadReplicaIdentifiers", "replicas of the original keep replicating from it (kept aside): point them at the restored cluster"),
    differs("status_infos", "StatusInfos", "replication state at the moment"),
    differs("db_cluster_members", "DBClusterMembers", "instance names; the instances are compared one by one"),
    viewed(create("vpc_security_groups", "VpcSecurityGroups", ALL, "VpcSecurityGroupIds", |r, c| r.set_vpc_security_group_ids(non_empty(&c.vpc_security_groups().iter().filter_map(|g| owned(g.vpc_security_group_id())).collect::<Vec<_>>()))), |c| sorted(c.vpc_security_groups().iter().filter_map(|g| owned(g.vpc_security_group_id())).collect())),
    same("hosted_zone_id", "HostedZoneId", "the Region's, the same for every cluster"),
    same("storage_encrypted", "StorageEncrypted", "the snapshot keeps the encryption"),
    create("kms_key_id", "KmsKeyId", ALL, "KmsKeyId", |r, c| r.set_kms_key_id(owned(c.kms_key_id()))),
    differs("db_cluster_resource_id", "DbClusterResourceId", "a new cluster gets a new resource id"),
    differs("db_cluster_arn", "DBClusterArn", "follows the identifier"),
    viewed(not_copied("associated_roles", "AssociatedRoles", "IAM roles for other AWS services (S3 import and export, Lambda, ...) are added with AddRoleToDBCluster, which needs iam:PassRole on each role: add them again"), |c| sorted(c.associated_roles().iter().map(|r| format!("{} ({})", r.role_arn().unwrap_or(""), r.feature_name().unwrap_or(""))).collect())),
    create("iam_database_authentication_enabled", "IAMDatabaseAuthenticationEnabled", ALL, "EnableIAMDatabaseAuthentication", |r, c| r.set_enable_iam_database_authentication(c.iam_database_authentication_enabled())),
    differs("clone_group_id", "CloneGroupId", "the original's copy-on-write clone group; a restored cluster is not a clone"),
    differs("cluster_create_time", "ClusterCreateTime", "when the restored cluster was created"),
    differs("earliest_backtrack_time", "EarliestBacktrackTime", "backtracking starts when the restored cluster is created"),
    create("backtrack_window", "BacktrackWindow", AURORA_MYSQL, "BacktrackWindow", |r, c| r.set_backtrack_window(c.backtrack_window())),
    differs("backtrack_consumed_change_records", "BacktrackConsumedChangeRecords", "counted from the restored cluster's creation"),
    viewed(create("enabled_cloudwatch_logs_exports", "EnabledCloudwatchLogsExports", ALL, "EnableCloudwatchLogsExports", |r, c| r.set_enable_cloudwatch_logs_exports(non_empty(c.enabled_cloudwatch_logs_exports()))), |c| sorted(c.enabled_cloudwatch_logs_exports().to_vec())),
    differs("capacity", "Capacity", "Aurora Serverless v1's capacity at the moment"),
    differs("pending_modified_values", "PendingModifiedValues", "changes under way at the moment"),
    create("engine_mode", "EngineMode", ALL, "EngineMode", |r, c| r.set_engine_mode(owned(c.engine_mode()))),
    create("scaling_configuration_info", "ScalingConfigurationInfo", SERVERLESS_V1, "ScalingConfiguration", |r, c| {
        r.set_scaling_configuration(c.scaling_configuration_info().map(|s| {
            ScalingConfiguration::builder()
                .set_min_capacity(s.min_capacity())
                .set_max_capacity(s.max_capacity())
                .set_auto_pause(s.auto_pause())
                .set_seconds_until_auto_pause(s.seconds_until_auto_pause())
                .set_timeout_action(owned(s.timeout_action()))
                .set_seconds_before_timeout(s.seconds_before_timeout())
                .build()
        }))
    }),
    create("rds_custom_cluster_configuration", "RdsCustomClusterConfiguration", ALL, "RdsCustomClusterConfiguration", |r, c| r.set_rds_custom_cluster_configuration(c.rds_custom_cluster_configuration().cloned())),
    create("db_cluster_instance_class", "DBClusterInstanceClass", MULTI_AZ, "DBClusterInstanceClass", |r, c| r.set_db_cluster_instance_class(owned(c.db_cluster_instance_class()))),
    create("storage_type", "StorageType", ALL, "StorageType", |r, c| r.set_storage_type(owned(c.storage_type()))),
    create("iops", "Iops", MULTI_AZ, "Iops", |r, c| r.set_iops(c.iops())),
    same("storage_throughput", "StorageThroughput", "follows the IOPS (Multi-AZ DB clusters)"),
    differs("io_optimized_next_allowed_modification_time", "IOOptimizedNextAllowedModificationTime", "counted from the restored cluster's creation"),
    create("publicly_accessible", "PubliclyAccessible", MULTI_AZ, "PubliclyAccessible", |r, c| r.set_publicly_accessible(c.publicly_accessible())),
    modify("auto_minor_version_upgrade", "AutoMinorVersionUpgrade", ALL, "AutoMinorVersionUpgrade", |m, c| m.set_auto_minor_version_upgrade(c.auto_minor_version_upgrade())),
    create("deletion_protection", "DeletionProtection", ALL, "DeletionProtection", |r, c| r.set_deletion_protection(c.deletion_protection())),
    modify("http_endpoint_enabled", "HttpEndpointEnabled", DATA_API_V1, "EnableHttpEndpoint", |m, c| m.set_enable_http_endpoint(c.http_endpoint_enabled())),
    not_copied("activity_stream_mode", "ActivityStreamMode", "a database activity stream is started with StartActivityStream (a new Kinesis stream), which ferry does not call: start it again"),
    not_copied("activity_stream_status", "ActivityStreamStatus", "see ActivityStreamMode"),
    not_copied("activity_stream_kms_key_id", "ActivityStreamKmsKeyId", "see ActivityStreamMode"),
    differs("activity_stream_kinesis_stream_name", "ActivityStreamKinesisStreamName", "named by RDS when a stream starts"),
    create("copy_tags_to_snapshot", "CopyTagsToSnapshot", ALL, "CopyTagsToSnapshot", |r, c| r.set_copy_tags_to_snapshot(c.copy_tags_to_snapshot())),
    same("cross_account_clone", "CrossAccountClone", "a restored cluster is not a clone"),
    viewed(create("domain_memberships", "DomainMemberships", DOMAIN, "Domain", |r, c| {
        let d = c.domain_memberships().first();
        r.set_domain(owned(d.and_then(|d| d.domain()))).set_domain_iam_role_name(owned(d.and_then(|d| d.iam_role_name())))
    }), |c| domain_view(c.domain_memberships())),
    viewed(create("tag_list", "TagList", ALL, "Tags", |r, c| r.set_tags(non_empty(&user_tags(c.tag_list())))), |c| tags_view(c.tag_list())),
    not_copied("global_cluster_identifier", "GlobalClusterIdentifier", "membership in a global database is not restored: add the restored cluster to it again"),
    not_copied("global_write_forwarding_status", "GlobalWriteForwardingStatus", "global databases only; see GlobalClusterIdentifier"),
    not_copied("global_write_forwarding_requested", "GlobalWriteForwardingRequested", "global databases only; see GlobalClusterIdentifier"),
    create("network_type", "NetworkType", AURORA, "NetworkType", |r, c| r.set_network_type(owned(c.network_type()))),
    differs("automatic_restart_time", "AutomaticRestartTime", "only for a stopped cluster"),
    create("serverless_v2_scaling_configuration", "ServerlessV2ScalingConfiguration", ALL, "ServerlessV2ScalingConfiguration", |r, c| {
        r.set_serverless_v2_scaling_configuration(c.serverless_v2_scaling_configuration().map(|s| {
            ServerlessV2ScalingConfiguration::builder()
                .set_min_capacity(s.min_capacity())
                .set_max_capacity(s.max_capacity())
                .set_seconds_until_auto_pause(s.seconds_until_auto_pause())
                .build()
        }))
    }),
    differs("serverless_v2_platform_version", "ServerlessV2PlatformVersion", "assigned by RDS: a new cluster gets the newest platform"),
    create("monitoring_interval", "MonitoringInterval", MULTI_AZ, "MonitoringInterval", |r, c| r.set_monitoring_interval(c.monitoring_interval())),
    create("monitoring_role_arn", "MonitoringRoleArn", MULTI_AZ, "MonitoringRoleArn", |r, c| r.set_monitoring_role_arn(owned(c.monitoring_role_arn()))),
    modify("database_insights_mode", "DatabaseInsightsMode", INSIGHTS, "DatabaseInsightsMode", |m, c| {
        // Switching to advanced needs Performance Insights in the same call.
        m.set_database_insights_mode(c.database_insights_mode().cloned())
            .set_enable_performance_insights(c.performance_insights_enabled())
            .set_performance_insights_kms_key_id(owned(c.performance_insights_kms_key_id()))
            .set_performance_insights_retention_period(c.performance_insights_retention_period())
    }),
    create("performance_insights_enabled", "PerformanceInsightsEnabled", PI, "EnablePerformanceInsights", |r, c| r.set_enable_performance_insights(c.performance_insights_enabled())),
    create("performance_insights_kms_key_id", "PerformanceInsightsKMSKeyId", PI, "PerformanceInsightsKMSKeyId", |r, c| r.set_performance_insights_kms_key_id(owned(c.performance_insights_kms_key_id()))),
    create("performance_insights_retention_period", "PerformanceInsightsRetentionPeriod", PI, "PerformanceInsightsRetentionPeriod", |r, c| r.set_performance_insights_retention_period(c.performance_insights_retention_period())),
    same("db_system_id", "DBSystemId", "RDS Custom for Oracle only"),
    viewed(modify("master_user_secret", "MasterUserSecret", SECRET, "ManageMasterUserPassword", |m, c| {
        m.manage_master_user_password(true)
            .set_master_user_secret_kms_key_id(owned(c.master_user_secret().and_then(|s| s.kms_key_id())))
    }), cluster_secret_view),
    viewed(modify("local_write_forwarding_status", "LocalWriteForwardingStatus", LOCAL_WRITE_FORWARDING, "EnableLocalWriteForwarding", |m, _| m.enable_local_write_forwarding(true)), local_write_forwarding_view),
    differs("aws_backup_recovery_point_arn", "AwsBackupRecoveryPointArn", "AWS Backup's recovery point of the original"),
    not_copied("limitless_database", "LimitlessDatabase", "an Aurora Limitless Database is not restored by ferry"),
    same("cluster_scalability_type", "ClusterScalabilityType", "standard for a cluster restored from a cluster snapshot"),
    viewed(modify("certificate_details", "CertificateDetails", MULTI_AZ, "CACertificateIdentifier", |m, c| m.set_ca_certificate_identifier(owned(c.certificate_details().and_then(|d| d.ca_identifier())))), |c| c.certificate_details().and_then(|d| d.ca_identifier()).unwrap_or("").to_string()),
    create("engine_lifecycle_support", "EngineLifecycleSupport", ALL, "EngineLifecycleSupport", |r, c| r.set_engine_lifecycle_support(owned(c.engine_lifecycle_support()))),
];

// --- the instances ---------------------------------------------------------------------

const CLUSTERS: &str = "the cluster's, for every instance of it";

/// Every field of DescribeDBInstances, in the API's order. Only Aurora
/// instances are created by ferry: a Multi-AZ DB cluster's come with it.
#[rustfmt::skip]
pub static INSTANCE: &[InstanceSetting] = &[
    differs("db_instance_identifier", "DBInstanceIdentifier", "the restored instance's own name, <restored cluster>-<n>"),
    create("db_instance_class", "DBInstanceClass", EVERY, "DBInstanceClass", |r, i| r.set_db_instance_class(owned(i.db_instance_class()))),
    create("engine", "Engine", EVERY, "Engine", |r, i| r.set_engine(owned(i.engine()))),
    differs("db_instance_status", "DBInstanceStatus", "the instance's state at the moment"),
    same("master_username", "MasterUsername", CLUSTERS),
    same("db_name", "DBName", CLUSTERS),
    differs("endpoint", "Endpoint", "follows the instance's name"),
    same("allocated_storage", "AllocatedStorage", CLUSTERS),
    differs("instance_create_time", "InstanceCreateTime", "when the restored instance was created"),
    same("preferred_backup_window", "PreferredBackupWindow", CLUSTERS),
    same("backup_retention_period", "BackupRetentionPeriod", CLUSTERS),
    same("db_security_groups", "DBSecurityGroups", "EC2-Classic only"),
    viewed(same("vpc_security_groups", "VpcSecurityGroups", CLUSTERS), |i| sorted(i.vpc_security_groups().iter().filter_map(|g| owned(g.vpc_security_group_id())).collect())),
    viewed(create("db_parameter_groups", "DBParameterGroups", EVERY, "DBParameterGroupName", |r, i| r.set_db_parameter_group_name(owned(i.db_parameter_groups().first().and_then(|g| g.db_parameter_group_name())))), |i| sorted(i.db_parameter_groups().iter().filter_map(|g| owned(g.db_parameter_group_name())).collect())),
    create("availability_zone", "AvailabilityZone", EVERY, "AvailabilityZone", |r, i| r.set_availability_zone(owned(i.availability_zone()))),
    viewed(same("db_subnet_group", "DBSubnetGroup", CLUSTERS), |i| i.db_subnet_group().and_then(|g| g.db_subnet_group_name()).unwrap_or("").to_string()),
    create("preferred_maintenance_window", "PreferredMaintenanceWindow", EVERY, "PreferredMaintenanceWindow", |r, i| r.set_preferred_maintenance_window(owned(i.preferred_maintenance_window()))),
    not_copied("upgrade_rollout_order", "UpgradeRolloutOrder", "no create or modify call sets it"),
    differs("pending_modified_values", "PendingModifiedValues", "changes under way at the moment"),
    differs("latest_restorable_time", "LatestRestorableTime", "moves on with the cluster's backups"),
    same("multi_az", "MultiAZ", "an Aurora instance lives in one zone; the cluster spreads them"),
    same("engine_version", "EngineVersion", CLUSTERS),
    create("auto_minor_version_upgrade", "AutoMinorVersionUpgrade", EVERY, "AutoMinorVersionUpgrade", |r, i| r.set_auto_minor_version_upgrade(i.auto_minor_version_upgrade())),
    not_copied("read_replica_source_db_instance_identifier", "ReadReplicaSourceDBInstanceIdentifier", "replication from another instance is not restored"),
    not_copied("read_replica_db_instance_identifiers", "ReadReplicaDBInstanceIdentifiers", "replicas of the original keep replicating from it"),
    not_copied("read_replica_db_cluster_identifiers", "ReadReplicaDBClusterIdentifiers", "replicas of the original keep replicating from it"),
    same("replica_mode", "ReplicaMode", "RDS for Oracle replicas only"),
    same("license_model", "LicenseModel", "the engine's"),
    same("iops", "Iops", CLUSTERS),
    same("storage_throughput", "StorageThroughput", CLUSTERS),
    viewed(same("option_group_memberships", "OptionGroupMemberships", CLUSTERS), |i| sorted(i.option_group_memberships().iter().filter_map(|g| owned(g.option_group_name())).collect())),
    same("character_set_name", "CharacterSetName", CLUSTERS),
    same("nchar_character_set_name", "NcharCharacterSetName", "RDS for Oracle only"),
    same("secondary_availability_zone", "SecondaryAvailabilityZone", "Multi-AZ DB instances only"),
    create("publicly_accessible", "PubliclyAccessible", EVERY, "PubliclyAccessible", |r, i| r.set_publicly_accessible(i.publicly_accessible())),
    differs("status_infos", "StatusInfos", "replication state at the moment"),
    same("storage_type", "StorageType", CLUSTERS),
    same("tde_credential_arn", "TdeCredentialArn", "RDS for Oracle and SQL Server only"),
    same("db_instance_port", "DbInstancePort", CLUSTERS),
    differs("db_cluster_identifier", "DBClusterIdentifier", "the restored cluster"),
    same("storage_encrypted", "StorageEncrypted", CLUSTERS),
    same("kms_key_id", "KmsKeyId", CLUSTERS),
    differs("dbi_resource_id", "DbiResourceId", "a new instance gets a new resource id"),
    create("ca_certificate_identifier", "CACertificateIdentifier", EVERY, "CACertificateIdentifier", |r, i| r.set_ca_certificate_identifier(owned(i.ca_certificate_identifier()))),
    viewed(same("domain_memberships", "DomainMemberships", CLUSTERS), |i| domain_view(i.domain_memberships())),
    create("copy_tags_to_snapshot", "CopyTagsToSnapshot", EVERY, "CopyTagsToSnapshot", |r, i| r.set_copy_tags_to_snapshot(i.copy_tags_to_snapshot())),
    create("monitoring_interval", "MonitoringInterval", EVERY, "MonitoringInterval", |r, i| r.set_monitoring_interval(i.monitoring_interval())),
    differs("enhanced_monitoring_resource_arn", "EnhancedMonitoringResourceArn", "named after the instance's resource id"),
    create("monitoring_role_arn", "MonitoringRoleArn", EVERY, "MonitoringRoleArn", |r, i| r.set_monitoring_role_arn(owned(i.monitoring_role_arn()))),
    create("promotion_tier", "PromotionTier", EVERY, "PromotionTier", |r, i| r.set_promotion_tier(i.promotion_tier())),
    differs("db_instance_arn", "DBInstanceArn", "follows the instance's name"),
    same("timezone", "Timezone", "RDS for SQL Server only"),
    same("iam_database_authentication_enabled", "IAMDatabaseAuthenticationEnabled", CLUSTERS),
    same("database_insights_mode", "DatabaseInsightsMode", CLUSTERS),
    create("performance_insights_enabled", "PerformanceInsightsEnabled", EVERY, "EnablePerformanceInsights", |r, i| r.set_enable_performance_insights(i.performance_insights_enabled())),
    create("performance_insights_kms_key_id", "PerformanceInsightsKMSKeyId", INSTANCE_PI, "PerformanceInsightsKMSKeyId", |r, i| r.set_performance_insights_kms_key_id(owned(i.performance_insights_kms_key_id()))),
    create("performance_insights_retention_period", "PerformanceInsightsRetentionPeriod", INSTANCE_PI, "PerformanceInsightsRetentionPeriod", |r, i| r.set_performance_insights_retention_period(i.performance_insights_retention_period())),
    same("enabled_cloudwatch_logs_exports", "EnabledCloudwatchLogsExports", CLUSTERS),
    same("processor_features", "ProcessorFeatures", "not for Aurora"),
    same("deletion_protection", "DeletionProtection", CLUSTERS),
    same("associated_roles", "AssociatedRoles", "an Aurora cluster's roles are the cluster's"),
    differs("listener_endpoint", "ListenerEndpoint", "RDS for SQL Server's listener, named after the instance"),
    same("max_allocated_storage", "MaxAllocatedStorage", "not for Aurora"),
    viewed(create("tag_list", "TagList", EVERY, "Tags", |r, i| r.set_tags(non_empty(&user_tags(i.tag_list())))), |i| tags_view(i.tag_list())),
    same("automation_mode", "AutomationMode", "RDS Custom only"),
    differs("resume_full_automation_mode_time", "ResumeFullAutomationModeTime", "RDS Custom only, a moment in time"),
    same("customer_owned_ip_enabled", "CustomerOwnedIpEnabled", "RDS on Outposts only"),
    same("network_type", "NetworkType", CLUSTERS),
    not_copied("activity_stream_status", "ActivityStreamStatus", "the cluster's database activity stream: start it again"),
    not_copied("activity_stream_kms_key_id", "ActivityStreamKmsKeyId", "see ActivityStreamStatus"),
    differs("activity_stream_kinesis_stream_name", "ActivityStreamKinesisStreamName", "named by RDS when a stream starts"),
    not_copied("activity_stream_mode", "ActivityStreamMode", "see ActivityStreamStatus"),
    not_copied("activity_stream_engine_native_audit_fields_included", "ActivityStreamEngineNativeAuditFieldsIncluded", "see ActivityStreamStatus"),
    differs("aws_backup_recovery_point_arn", "AwsBackupRecoveryPointArn", "AWS Backup's recovery point of the original"),
    not_copied("db_instance_automated_backups_replications", "DBInstanceAutomatedBackupsReplications", "cross-Region backup replication is started per instance: start it again"),
    same("backup_target", "BackupTarget", "RDS on Outposts only"),
    differs("automatic_restart_time", "AutomaticRestartTime", "only for a stopped instance"),
    same("custom_iam_instance_profile", "CustomIamInstanceProfile", "RDS Custom only"),
    not_copied("activity_stream_policy_status", "ActivityStreamPolicyStatus", "see ActivityStreamStatus"),
    same("certificate_details", "CertificateDetails", "follows CACertificateIdentifier"),
    same("db_system_id", "DBSystemId", "RDS Custom for Oracle only"),
    same("master_user_secret", "MasterUserSecret", "an Aurora cluster's master password is the cluster's"),
    not_copied("read_replica_source_db_cluster_identifier", "ReadReplicaSourceDBClusterIdentifier", "replication from another cluster is not restored"),
    differs("percent_progress", "PercentProgress", "progress of an operation under way"),
    same("multi_tenant", "MultiTenant", "RDS for Oracle only"),
    same("dedicated_log_volume", "DedicatedLogVolume", "not for Aurora"),
    differs("is_storage_config_upgrade_available", "IsStorageConfigUpgradeAvailable", "RDS's advice at the moment"),
    same("engine_lifecycle_support", "EngineLifecycleSupport", CLUSTERS),
    same("additional_storage_volumes", "AdditionalStorageVolumes", "RDS for Oracle and SQL Server only"),
    differs("storage_volume_status", "StorageVolumeStatus", "the storage's state at the moment"),
];

/// The restore request with every `Create` setting of the original that applies to it.
pub fn restore_settings(mut req: RestoreReq, source: &DbCluster) -> RestoreReq {
    for s in CLUSTER {
        if let How::Create { when, set, .. } = &s.how
            && (when.holds)(source)
        {
            req = set(req, source);
        }
    }
    req
}

/// The CreateDBInstance request with every `Create` setting of the original instance.
pub fn instance_settings(mut req: CreateReq, source: &DbInstance) -> CreateReq {
    for s in INSTANCE {
        if let How::Create { when, set, .. } = &s.how
            && (when.holds)(source)
        {
            req = set(req, source);
        }
    }
    req
}
