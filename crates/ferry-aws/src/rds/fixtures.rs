//! Test fixtures: an Aurora PostgreSQL cluster and its instances with every
//! field of the API model set, as DescribeDBClusters / DescribeDBInstances
//! would return them for a production database, and their restored twins.

use aws_sdk_rds::types::*;
use aws_smithy_types::DateTime;

pub const ACCOUNT: &str = "123456789012";

pub fn t(secs: i64) -> DateTime {
    DateTime::from_secs(secs)
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

fn arn(kind: &str, name: &str) -> String {
    format!("arn:aws:rds:us-east-1:{ACCOUNT}:{kind}:{name}")
}

fn key(name: &str) -> String {
    format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/{name}")
}

/// An I/O-Optimized Aurora PostgreSQL cluster `id` with a writer `<id>-a`
/// and a reader `<id>-b`; every field set.
pub fn cluster(id: &str) -> DbCluster {
    DbCluster::builder()
        .allocated_storage(1)
        .availability_zones("us-east-1a")
        .availability_zones("us-east-1b")
        .availability_zones("us-east-1c")
        .backup_retention_period(14)
        .character_set_name("UTF8")
        .database_name("app")
        .db_cluster_identifier(id)
        .db_cluster_parameter_group("app-cpg")
        .db_subnet_group("app-subnets")
        .status("available")
        .percent_progress("100")
        .earliest_restorable_time(t(1))
        .endpoint(format!("{id}.cluster-abc.us-east-1.rds.amazonaws.com"))
        .reader_endpoint(format!("{id}.cluster-ro-abc.us-east-1.rds.amazonaws.com"))
        .custom_endpoints("reporting.cluster-custom-abc.us-east-1.rds.amazonaws.com")
        .multi_az(true)
        .engine("aurora-postgresql")
        .engine_version("15.4")
        .latest_restorable_time(t(2))
        .port(5433)
        .master_username("app")
        .db_cluster_option_group_memberships(
            DbClusterOptionGroupStatus::builder().db_cluster_option_group_name("app-og").status("in-sync").build(),
        )
        .preferred_backup_window("03:00-03:30")
        .preferred_maintenance_window("sun:05:00-sun:05:30")
        .upgrade_rollout_order(UpgradeRolloutOrder::Last)
        .replication_source_identifier(arn("cluster", "upstream"))
        .read_replica_identifiers(arn("cluster", "replica"))
        .status_infos(
            DbClusterStatusInfo::builder()
                .status_type("read replication")
                .normal(true)
                .status("ok")
                .message("-")
                .build(),
        )
        .db_cluster_members(
            DbClusterMember::builder()
                .db_instance_identifier(format!("{id}-a"))
                .is_cluster_writer(true)
                .db_cluster_parameter_group_status("in-sync")
                .promotion_tier(0)
                .build(),
        )
        .db_cluster_members(
            DbClusterMember::builder()
                .db_instance_identifier(format!("{id}-b"))
                .is_cluster_writer(false)
                .db_cluster_parameter_group_status("in-sync")
                .promotion_tier(1)
                .build(),
        )
        .vpc_security_groups(
            VpcSecurityGroupMembership::builder().vpc_security_group_id("sg-2").status("active").build(),
        )
        .vpc_security_groups(
            VpcSecurityGroupMembership::builder().vpc_security_group_id("sg-1").status("active").build(),
        )
        .hosted_zone_id("Z2R2ITUGPM61AM")
        .storage_encrypted(true)
        .kms_key_id(key("data"))
        .db_cluster_resource_id(format!("cluster-{id}"))
        .db_cluster_arn(arn("cluster", id))
        .associated_roles(
            DbClusterRole::builder()
                .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/s3-import"))
                .status("ACTIVE")
                .feature_name("s3Import")
                .build(),
        )
        .iam_database_authentication_enabled(true)
        .clone_group_id(format!("clone-{id}"))
        .cluster_create_time(t(3))
        .earliest_backtrack_time(t(4))
        .backtrack_window(3600)
        .backtrack_consumed_change_records(10)
        .enabled_cloudwatch_logs_exports("postgresql")
        .capacity(2)
        .pending_modified_values(ClusterPendingModifiedValues::builder().backup_retention_period(14).build())
        .engine_mode("provisioned")
        .scaling_configuration_info(
            ScalingConfigurationInfo::builder()
                .min_capacity(1)
                .max_capacity(8)
                .auto_pause(true)
                .seconds_until_auto_pause(300)
                .timeout_action("RollbackCapacityChange")
                .seconds_before_timeout(300)
                .build(),
        )
        .rds_custom_cluster_configuration(
            RdsCustomClusterConfiguration::builder().interconnect_subnet_id("subnet-interconnect").build(),
        )
        .db_cluster_instance_class("db.r6gd.large")
        .storage_type("aurora-iopt1")
        .iops(3000)
        .storage_throughput(125)
        .io_optimized_next_allowed_modification_time(t(5))
        .publicly_accessible(false)
        .auto_minor_version_upgrade(false)
        .deletion_protection(true)
        .http_endpoint_enabled(true)
        .activity_stream_mode(ActivityStreamMode::Async)
        .activity_stream_status(ActivityStreamStatus::Started)
        .activity_stream_kms_key_id(key("das"))
        .activity_stream_kinesis_stream_name(format!("aws-rds-das-{id}"))
        .copy_tags_to_snapshot(true)
        .cross_account_clone(false)
        .domain_memberships(
            DomainMembership::builder()
                .domain("d-123")
                .status("joined")
                .fqdn("corp.example.com")
                .iam_role_name("rds-directory")
                .ou("OU=db")
                .auth_secret_arn(format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:ad"))
                .dns_ips("10.0.0.2")
                .build(),
        )
        .tag_list(tag("team", "payments"))
        .tag_list(tag("aws:cloudformation:stack-name", "app-db"))
        .tag_list(tag("ferry:run-id", "prod-20250101T000000Z-0000"))
        .global_cluster_identifier("app-global")
        .global_write_forwarding_status(WriteForwardingStatus::Disabled)
        .global_write_forwarding_requested(false)
        .network_type("DUAL")
        .automatic_restart_time(t(6))
        .serverless_v2_scaling_configuration(
            ServerlessV2ScalingConfigurationInfo::builder()
                .min_capacity(0.5)
                .max_capacity(8.0)
                .seconds_until_auto_pause(300)
                .build(),
        )
        .serverless_v2_platform_version("3")
        .monitoring_interval(60)
        .monitoring_role_arn(format!("arn:aws:iam::{ACCOUNT}:role/rds-monitoring-role"))
        .database_insights_mode(DatabaseInsightsMode::Advanced)
        .performance_insights_enabled(true)
        .performance_insights_kms_key_id(key("pi"))
        .performance_insights_retention_period(465)
        .db_system_id("sys")
        .master_user_secret(
            MasterUserSecret::builder()
                .secret_arn(format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:rds!cluster-{id}"))
                .secret_status("active")
                .kms_key_id(key("secret"))
                .build(),
        )
        .local_write_forwarding_status(LocalWriteForwardingStatus::Enabled)
        .aws_backup_recovery_point_arn(format!("arn:aws:backup:us-east-1:{ACCOUNT}:recovery-point:{id}"))
        .limitless_database(
            LimitlessDatabase::builder().status(LimitlessDatabaseStatus::NotInUse).min_required_acu(0.0).build(),
        )
        .cluster_scalability_type(ClusterScalabilityType::Standard)
        .certificate_details(CertificateDetails::builder().ca_identifier("rds-ca-rsa2048-g1").valid_till(t(7)).build())
        .engine_lifecycle_support("open-source-rds-extended-support-disabled")
        .build()
}

/// An instance `id` of cluster `cluster`, every field set.
pub fn instance(cluster: &str, id: &str, class: &str, tier: i32, zone: &str) -> DbInstance {
    DbInstance::builder()
        .db_instance_identifier(id)
        .db_instance_class(class)
        .engine("aurora-postgresql")
        .db_instance_status("available")
        .master_username("app")
        .db_name("app")
        .endpoint(
            Endpoint::builder()
                .address(format!("{id}.abc.us-east-1.rds.amazonaws.com"))
                .port(5433)
                .hosted_zone_id("Z2R2ITUGPM61AM")
                .build(),
        )
        .allocated_storage(1)
        .instance_create_time(t(10))
        .preferred_backup_window("03:00-03:30")
        .backup_retention_period(14)
        .db_security_groups(
            DbSecurityGroupMembership::builder().db_security_group_name("classic").status("active").build(),
        )
        .vpc_security_groups(
            VpcSecurityGroupMembership::builder().vpc_security_group_id("sg-1").status("active").build(),
        )
        .db_parameter_groups(
            DbParameterGroupStatus::builder()
                .db_parameter_group_name("app-pg")
                .parameter_apply_status("in-sync")
                .build(),
        )
        .availability_zone(zone)
        .db_subnet_group(
            DbSubnetGroup::builder()
                .db_subnet_group_name("app-subnets")
                .vpc_id("vpc-1")
                .subnet_group_status("Complete")
                .build(),
        )
        .preferred_maintenance_window(if tier == 0 { "mon:06:00-mon:06:30" } else { "tue:06:00-tue:06:30" })
        .upgrade_rollout_order(UpgradeRolloutOrder::Last)
        .pending_modified_values(PendingModifiedValues::builder().db_instance_class(class).build())
        .latest_restorable_time(t(11))
        .multi_az(false)
        .engine_version("15.4")
        .auto_minor_version_upgrade(false)
        .read_replica_source_db_instance_identifier("upstream-instance")
        .read_replica_db_instance_identifiers("replica-instance")
        .read_replica_db_cluster_identifiers("replica-cluster")
        .replica_mode(ReplicaMode::Mounted)
        .license_model("postgresql-license")
        .iops(3000)
        .storage_throughput(125)
        .option_group_memberships(
            OptionGroupMembership::builder()
                .option_group_name("default:aurora-postgresql-15")
                .status("in-sync")
                .build(),
        )
        .character_set_name("UTF8")
        .nchar_character_set_name("AL16UTF16")
        .secondary_availability_zone("us-east-1c")
        .publicly_accessible(false)
        .status_infos(
            DbInstanceStatusInfo::builder()
                .status_type("read replication")
                .normal(true)
                .status("ok")
                .message("-")
                .build(),
        )
        .storage_type("aurora-iopt1")
        .tde_credential_arn("arn:tde")
        .db_instance_port(0)
        .db_cluster_identifier(cluster)
        .storage_encrypted(true)
        .kms_key_id(key("data"))
        .dbi_resource_id(format!("db-{id}"))
        .ca_certificate_identifier("rds-ca-rsa2048-g1")
        .domain_memberships(
            DomainMembership::builder().domain("d-123").status("joined").iam_role_name("rds-directory").build(),
        )
        .copy_tags_to_snapshot(true)
        .monitoring_interval(60)
        .enhanced_monitoring_resource_arn(format!(
            "arn:aws:logs:us-east-1:{ACCOUNT}:log-group:RDSOSMetrics:log-stream:db-{id}"
        ))
        .monitoring_role_arn(format!("arn:aws:iam::{ACCOUNT}:role/rds-monitoring-role"))
        .promotion_tier(tier)
        .db_instance_arn(arn("db", id))
        .timezone("UTC")
        .iam_database_authentication_enabled(true)
        .database_insights_mode(DatabaseInsightsMode::Advanced)
        .performance_insights_enabled(true)
        .performance_insights_kms_key_id(key("pi"))
        .performance_insights_retention_period(465)
        .enabled_cloudwatch_logs_exports("postgresql")
        .processor_features(ProcessorFeature::builder().name("coreCount").value("2").build())
        .deletion_protection(false)
        .associated_roles(
            DbInstanceRole::builder()
                .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/instance-role"))
                .feature_name("x")
                .status("ACTIVE")
                .build(),
        )
        .listener_endpoint(Endpoint::builder().address(format!("{id}-listener")).port(1).build())
        .max_allocated_storage(100)
        .tag_list(tag("team", "payments"))
        .tag_list(tag("role", if tier == 0 { "writer" } else { "reader" }))
        .automation_mode(AutomationMode::Full)
        .resume_full_automation_mode_time(t(12))
        .customer_owned_ip_enabled(false)
        .network_type("DUAL")
        .activity_stream_status(ActivityStreamStatus::Started)
        .activity_stream_kms_key_id(key("das"))
        .activity_stream_kinesis_stream_name(format!("aws-rds-das-{cluster}"))
        .activity_stream_mode(ActivityStreamMode::Async)
        .activity_stream_engine_native_audit_fields_included(true)
        .aws_backup_recovery_point_arn(format!("arn:aws:backup:us-east-1:{ACCOUNT}:recovery-point:{id}"))
        .db_instance_automated_backups_replications(
            DbInstanceAutomatedBackupsReplication::builder().db_instance_automated_backups_arn("arn:backups").build(),
        )
        .backup_target("region")
        .automatic_restart_time(t(13))
        .custom_iam_instance_profile("AWSRDSCustom-profile")
        .activity_stream_policy_status(ActivityStreamPolicyStatus::Locked)
        .certificate_details(CertificateDetails::builder().ca_identifier("rds-ca-rsa2048-g1").valid_till(t(7)).build())
        .db_system_id("sys")
        .master_user_secret(MasterUserSecret::builder().secret_arn("arn:instance-secret").build())
        .read_replica_source_db_cluster_identifier("upstream-cluster")
        .percent_progress("100")
        .multi_tenant(false)
        .dedicated_log_volume(false)
        .is_storage_config_upgrade_available(false)
        .engine_lifecycle_support("open-source-rds-extended-support-disabled")
        .additional_storage_volumes(AdditionalStorageVolumeOutput::builder().volume_name("rdsdbdata2").build())
        .storage_volume_status("ok")
        .build()
}

/// The writer (db.r6g.large, tier 0, zone a) and the reader (db.r6g.xlarge,
/// tier 1, zone b) of `cluster`.
pub fn instances(cluster: &str) -> Vec<DbInstance> {
    vec![
        instance(cluster, &format!("{cluster}-a"), "db.r6g.large", 0, "us-east-1a"),
        instance(cluster, &format!("{cluster}-b"), "db.r6g.xlarge", 1, "us-east-1b"),
    ]
}

/// `original` as a faithful restore under `id` would show it: everything in
/// the allowlist different, ferry's tags added, AWS's own tags gone, the
/// master password in a new secret.
pub fn restored_cluster(original: &DbCluster, id: &str) -> DbCluster {
    let mut c = original.clone();
    c.db_cluster_identifier = Some(id.into());
    c.status = Some("backing-up".into());
    c.percent_progress = None;
    c.earliest_restorable_time = Some(t(100));
    c.endpoint = Some(format!("{id}.cluster-abc.us-east-1.rds.amazonaws.com"));
    c.reader_endpoint = Some(format!("{id}.cluster-ro-abc.us-east-1.rds.amazonaws.com"));
    c.latest_restorable_time = Some(t(101));
    c.status_infos = None;
    c.db_cluster_members = Some(vec![
        DbClusterMember::builder().db_instance_identifier(format!("{id}-1")).is_cluster_writer(true).build(),
        DbClusterMember::builder().db_instance_identifier(format!("{id}-2")).is_cluster_writer(false).build(),
    ]);
    c.db_cluster_resource_id = Some("cluster-NEW".into());
    c.db_cluster_arn = Some(arn("cluster", id));
    c.clone_group_id = None;
    c.cluster_create_time = Some(t(102));
    c.earliest_backtrack_time = Some(t(103));
    c.backtrack_consumed_change_records = Some(0);
    c.capacity = None;
    c.pending_modified_values = None;
    c.io_optimized_next_allowed_modification_time = Some(t(104));
    c.activity_stream_kinesis_stream_name = Some("aws-rds-das-new".into());
    c.tag_list = Some(vec![
        tag("team", "payments"),
        tag("ferry:run-id", "prod-20260101T000000Z-beef"),
        tag("ferry:purpose", "restore"),
    ]);
    c.automatic_restart_time = None;
    c.serverless_v2_platform_version = Some("4".into());
    c.master_user_secret = Some(
        MasterUserSecret::builder()
            .secret_arn(format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:rds!cluster-{id}"))
            .secret_status("creating")
            .kms_key_id(key("secret"))
            .build(),
    );
    c.aws_backup_recovery_point_arn = None;
    c
}

/// `original` as its restored twin `id` in cluster `cluster` would show it.
pub fn restored_instance(original: &DbInstance, cluster: &str, id: &str) -> DbInstance {
    let mut i = original.clone();
    i.db_instance_identifier = Some(id.into());
    i.db_instance_status = Some("configuring-enhanced-monitoring".into());
    i.endpoint = Some(Endpoint::builder().address(format!("{id}.abc.us-east-1.rds.amazonaws.com")).port(5433).build());
    i.instance_create_time = Some(t(110));
    i.pending_modified_values = None;
    i.latest_restorable_time = Some(t(111));
    i.status_infos = None;
    i.db_cluster_identifier = Some(cluster.into());
    i.dbi_resource_id = Some(format!("db-{id}"));
    i.enhanced_monitoring_resource_arn = Some(format!("arn:aws:logs:us-east-1:{ACCOUNT}:log-stream:db-{id}"));
    i.db_instance_arn = Some(arn("db", id));
    i.listener_endpoint = None;
    i.resume_full_automation_mode_time = None;
    i.activity_stream_kinesis_stream_name = Some("aws-rds-das-new".into());
    i.aws_backup_recovery_point_arn = None;
    i.automatic_restart_time = None;
    i.percent_progress = None;
    i.is_storage_config_upgrade_available = Some(true);
    i.storage_volume_status = None;
    let mut tags = i.tag_list.take().unwrap_or_default();
    tags.push(tag("ferry:run-id", "prod-20260101T000000Z-beef"));
    i.tag_list = Some(tags);
    i
}
