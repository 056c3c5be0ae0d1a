//! Aurora through RDS: cluster snapshots, restores that copy the source
//! cluster's settings, renames. Never deletes a cluster (invariant 2): the IAM
//! policy in infra/ does not even allow it.

use async_trait::async_trait;
use aws_sdk_rds::Client;
use aws_sdk_rds::types::{DbCluster, DbClusterSnapshot, Filter, ServerlessV2ScalingConfiguration, Tag};
use chrono::{DateTime, Utc};

use super::classify;
use crate::provider::{ClusterInfo, Database, PResult, ProviderError, Snapshot, SnapshotQuota, SnapshotStatus, Tags};

/// RDS identifiers are at most 63 characters.
const MAX_ID: usize = 63;

pub struct RdsDatabase {
    client: Client,
    cluster_id: String,
}

impl RdsDatabase {
    pub fn new(client: Client, cluster_id: String) -> Self {
        RdsDatabase { client, cluster_id }
    }

    async fn cluster(&self, id: &str) -> PResult<Option<DbCluster>> {
        match self.client.describe_db_clusters().db_cluster_identifier(id).send().await {
            Ok(out) => Ok(out.db_clusters().first().cloned()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_db_cluster_not_found_fault()) => Ok(None),
            Err(e) => Err(classify("DescribeDBClusters", e)),
        }
    }

    /// Status of the cluster's instances: `None` when all are available.
    async fn instances_pending(&self, id: &str) -> PResult<Option<String>> {
        let out = self
            .client
            .describe_db_instances()
            .filters(Filter::builder().name("db-cluster-id").values(id).build())
            .send()
            .await
            .map_err(|e| classify("DescribeDBInstances", e))?;
        let pending: Vec<String> = out
            .db_instances()
            .iter()
            .filter(|i| i.db_instance_status() != Some("available"))
            .map(|i| {
                format!("{} {}", i.db_instance_identifier().unwrap_or("?"), i.db_instance_status().unwrap_or("unknown"))
            })
            .collect();
        Ok((!pending.is_empty()).then(|| format!("instances: {}", pending.join(", "))))
    }

    /// The restored cluster's writer, matching the source's writer; idempotent.
    async fn ensure_writer(&self, source: &DbCluster, target: &str) -> PResult<()> {
        let existing = self.cluster(target).await?;
        if existing.is_some_and(|c| !c.db_cluster_members().is_empty()) {
            return Ok(());
        }
        let writer = source
            .db_cluster_members()
            .iter()
            .find(|m| m.is_cluster_writer() == Some(true))
            .and_then(|m| m.db_instance_identifier());
        let (class, parameter_group) = match writer {
            Some(w) => {
                let out = self
                    .client
                    .describe_db_instances()
                    .db_instance_identifier(w)
                    .send()
                    .await
                    .map_err(|e| classify("DescribeDBInstances", e))?;
                let i = out.db_instances().first();
                (
                    i.and_then(|i| i.db_instance_class()).map(String::from),
                    i.and_then(|i| i.db_parameter_groups().first())
                        .and_then(|p| p.db_parameter_group_name())
                        .map(String::from),
                )
            }
            None => (None, None),
        };
        let class = class.unwrap_or_else(|| {
            if source.serverless_v2_scaling_configuration().is_some() { "db.serverless" } else { "db.r6g.large" }
                .to_string()
        });
        let instance_id = truncate_id(target, "-1");
        let mut req = self
            .client
            .create_db_instance()
            .db_instance_identifier(&instance_id)
            .db_cluster_identifier(target)
            .db_instance_class(class)
            .engine(source.engine().unwrap_or("aurora-postgresql"));
        if let Some(pg) = parameter_group {
            req = req.db_parameter_group_name(pg);
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_db_instance_already_exists_fault()) => Ok(()),
            Err(e) => Err(classify("CreateDBInstance", e)),
        }
    }

    async fn snapshot_tags(&self, s: &DbClusterSnapshot) -> PResult<Tags> {
        if !s.tag_list().is_empty() {
            return Ok(tags_of(s.tag_list()));
        }
        let Some(arn) = s.db_cluster_snapshot_arn() else { return Ok(Tags::new()) };
        let out = self
            .client
            .list_tags_for_resource()
            .resource_name(arn)
            .send()
            .await
            .map_err(|e| classify("ListTagsForResource", e))?;
        Ok(tags_of(out.tag_list()))
    }

    async fn to_snapshot(&self, s: &DbClusterSnapshot) -> PResult<Snapshot> {
        Ok(Snapshot {
            id: s.db_cluster_snapshot_identifier().unwrap_or_default().to_string(),
            cluster_id: s.db_cluster_identifier().unwrap_or_default().to_string(),
            status: match s.status() {
                Some("available") => SnapshotStatus::Available,
                Some("failed") | Some("incompatible-restore") => SnapshotStatus::Failed,
                Some("deleting") => SnapshotStatus::Deleting,
                _ => SnapshotStatus::Creating,
            },
            percent: s.percent_progress().unwrap_or(0).clamp(0, 100) as u8,
            created_at: s
                .snapshot_create_time()
                .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos())),
            tags: self.snapshot_tags(s).await?,
        })
    }
}

fn tags_of(list: &[Tag]) -> Tags {
    list.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect()
}

/// `<base><suffix>`, cutting `base` so the whole stays within RDS's 63 characters
/// and does not end with a hyphen.
fn truncate_id(base: &str, suffix: &str) -> String {
    let keep = MAX_ID.saturating_sub(suffix.len()).min(base.len());
    let base = base[..keep].trim_end_matches('-');
    format!("{base}{suffix}")
}

#[async_trait]
impl Database for RdsDatabase {
    fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    fn sibling_id(&self, suffix: &str) -> String {
        truncate_id(&self.cluster_id, &format!("-{suffix}"))
    }

    async fn describe(&self, id: &str) -> PResult<Option<ClusterInfo>> {
        let Some(c) = self.cluster(id).await? else { return Ok(None) };
        let mut status = c.status().unwrap_or("unknown").to_string();
        if status == "available" {
            if let Some(pending) = self.instances_pending(id).await? {
                status = pending;
            } else if c.db_cluster_members().is_empty() {
                status = "no instances yet".into();
            }
        }
        Ok(Some(ClusterInfo {
            id: id.to_string(),
            status,
            endpoint: c.endpoint().map(String::from),
            engine: format!("{} {}", c.engine().unwrap_or("?"), c.engine_version().unwrap_or("")).trim().to_string(),
        }))
    }

    async fn create_snapshot(&self, id: &str, tags: &Tags) -> PResult<Snapshot> {
        if let Some(existing) = self.describe_snapshot(id).await? {
            return Ok(existing);
        }
        let tag_list: Vec<Tag> = tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
        let result = self
            .client
            .create_db_cluster_snapshot()
            .db_cluster_identifier(&self.cluster_id)
            .db_cluster_snapshot_identifier(id)
            .set_tags(Some(tag_list))
            .send()
            .await;
        match result {
            Ok(out) => match out.db_cluster_snapshot() {
                Some(s) => self.to_snapshot(s).await,
                None => {
                    self.describe_snapshot(id).await?.ok_or_else(|| ProviderError::NotFound(format!("snapshot {id}")))
                }
            },
            // Created by an earlier attempt between our check and now.
            Err(e) if e.as_service_error().is_some_and(|e| e.is_db_cluster_snapshot_already_exists_fault()) => {
                self.describe_snapshot(id).await?.ok_or_else(|| ProviderError::NotFound(format!("snapshot {id}")))
            }
            Err(e) if e.as_service_error().is_some_and(|e| e.is_snapshot_quota_exceeded_fault()) => Err(
                ProviderError::Rejected("the manual cluster snapshot quota is exhausted; prune old snapshots".into()),
            ),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_db_cluster_not_found_fault()) => {
                Err(ProviderError::NotFound(format!("cluster {}", self.cluster_id)))
            }
            Err(e) => Err(classify("CreateDBClusterSnapshot", e)),
        }
    }

    async fn describe_snapshot(&self, id: &str) -> PResult<Option<Snapshot>> {
        match self.client.describe_db_cluster_snapshots().db_cluster_snapshot_identifier(id).send().await {
            Ok(out) => match out.db_cluster_snapshots().first() {
                Some(s) => Ok(Some(self.to_snapshot(s).await?)),
                None => Ok(None),
            },
            Err(e) if e.as_service_error().is_some_and(|e| e.is_db_cluster_snapshot_not_found_fault()) => Ok(None),
            Err(e) => Err(classify("DescribeDBClusterSnapshots", e)),
        }
    }

    async fn list_snapshots(&self) -> PResult<Vec<Snapshot>> {
        let mut pages = self
            .client
            .describe_db_cluster_snapshots()
            .db_cluster_identifier(&self.cluster_id)
            .snapshot_type("manual")
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("DescribeDBClusterSnapshots", e))?;
            for s in page.db_cluster_snapshots() {
                out.push(self.to_snapshot(s).await?);
            }
        }
        Ok(out)
    }

    async fn delete_snapshot(&self, id: &str) -> PResult<()> {
        match self.client.delete_db_cluster_snapshot().db_cluster_snapshot_identifier(id).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_db_cluster_snapshot_not_found_fault()) => {
                Err(ProviderError::NotFound(format!("snapshot {id}")))
            }
            Err(e) => Err(classify("DeleteDBClusterSnapshot", e)),
        }
    }

    async fn snapshot_quota(&self) -> PResult<Option<SnapshotQuota>> {
        let out = self
            .client
            .describe_account_attributes()
            .send()
            .await
            .map_err(|e| classify("DescribeAccountAttributes", e))?;
        Ok(out.account_quotas().iter().find(|q| q.account_quota_name() == Some("ManualClusterSnapshots")).map(|q| {
            SnapshotQuota {
                used: q.used().unwrap_or(0).max(0) as u32,
                max: q.max().unwrap_or(i64::from(u32::MAX)).clamp(0, i64::from(u32::MAX)) as u32,
            }
        }))
    }

    async fn restore_snapshot(&self, snapshot_id: &str, target: &str) -> PResult<()> {
        let source = self.cluster(&self.cluster_id).await?.ok_or_else(|| {
            ProviderError::NotFound(format!("cluster {} (the source of the restore's settings)", self.cluster_id))
        })?;
        if self.cluster(target).await?.is_none() {
            let req = restore_request(&self.client, &source, snapshot_id, target);
            match req.send().await {
                Ok(_) => {}
                Err(e) if e.as_service_error().is_some_and(|e| e.is_db_cluster_already_exists_fault()) => {}
                Err(e) if e.as_service_error().is_some_and(|e| e.is_db_cluster_snapshot_not_found_fault()) => {
                    return Err(ProviderError::NotFound(format!("snapshot {snapshot_id}")));
                }
                Err(e) => return Err(classify("RestoreDBClusterFromSnapshot", e)),
            }
        }
        self.ensure_writer(&source, target).await
    }

    async fn rename(&self, from: &str, to: &str) -> PResult<()> {
        match (self.cluster(from).await?.is_some(), self.cluster(to).await?.is_some()) {
            (false, true) => return Ok(()),
            (true, true) => {
                return Err(ProviderError::Rejected(format!(
                    "cluster {to} already exists; not renaming {from} onto it"
                )));
            }
            (false, false) => return Err(ProviderError::NotFound(format!("cluster {from}"))),
            (true, false) => {}
        }
        match self
            .client
            .modify_db_cluster()
            .db_cluster_identifier(from)
            .new_db_cluster_identifier(to)
            .apply_immediately(true)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_db_cluster_already_exists_fault()) => {
                Err(ProviderError::Rejected(format!("cluster {to} already exists")))
            }
            Err(e) if e.as_service_error().is_some_and(|e| e.is_invalid_db_cluster_state_fault()) => {
                Err(ProviderError::Throttled(format!("cluster {from} is busy; retrying the rename")))
            }
            Err(e) => Err(classify("ModifyDBCluster", e)),
        }
    }
}

/// RestoreDBClusterFromSnapshot with the source's settings copied: without an
/// engine version the API would pick the region's default.
fn restore_request(
    client: &Client,
    source: &DbCluster,
    snapshot_id: &str,
    target: &str,
) -> aws_sdk_rds::operation::restore_db_cluster_from_snapshot::builders::RestoreDBClusterFromSnapshotFluentBuilder {
    let sgs: Vec<String> =
        source.vpc_security_groups().iter().filter_map(|g| g.vpc_security_group_id().map(String::from)).collect();
    let tags: Vec<Tag> = source.tag_list().to_vec();
    let scaling = source.serverless_v2_scaling_configuration().map(|s| {
        ServerlessV2ScalingConfiguration::builder()
            .set_min_capacity(s.min_capacity())
            .set_max_capacity(s.max_capacity())
            .set_seconds_until_auto_pause(s.seconds_until_auto_pause())
            .build()
    });
    client
        .restore_db_cluster_from_snapshot()
        .db_cluster_identifier(target)
        .snapshot_identifier(snapshot_id)
        .engine(source.engine().unwrap_or("aurora-postgresql"))
        .set_engine_version(source.engine_version().map(String::from))
        .set_db_subnet_group_name(source.db_subnet_group().map(String::from))
        .set_vpc_security_group_ids((!sgs.is_empty()).then_some(sgs))
        .set_db_cluster_parameter_group_name(source.db_cluster_parameter_group().map(String::from))
        .set_kms_key_id(source.kms_key_id().map(String::from))
        .set_port(source.port())
        .set_deletion_protection(source.deletion_protection())
        .set_enable_iam_database_authentication(source.iam_database_authentication_enabled())
        .set_serverless_v2_scaling_configuration(scaling)
        .set_tags((!tags.is_empty()).then_some(tags))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_rds::operation::create_db_instance::CreateDbInstanceOutput;
    use aws_sdk_rds::operation::describe_db_cluster_snapshots::DescribeDbClusterSnapshotsOutput;
    use aws_sdk_rds::operation::describe_db_clusters::{DescribeDBClustersError, DescribeDbClustersOutput};
    use aws_sdk_rds::operation::describe_db_instances::DescribeDbInstancesOutput;
    use aws_sdk_rds::operation::modify_db_cluster::ModifyDbClusterOutput;
    use aws_sdk_rds::operation::restore_db_cluster_from_snapshot::RestoreDbClusterFromSnapshotOutput;
    use aws_sdk_rds::types::error::DbClusterNotFoundFault;
    use aws_sdk_rds::types::{
        DbClusterMember, DbInstance, DbParameterGroupStatus, ServerlessV2ScalingConfigurationInfo,
        VpcSecurityGroupMembership,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    fn source() -> DbCluster {
        DbCluster::builder()
            .db_cluster_identifier("app-prod")
            .status("available")
            .engine("aurora-postgresql")
            .engine_version("15.4")
            .db_subnet_group("app-subnets")
            .vpc_security_groups(VpcSecurityGroupMembership::builder().vpc_security_group_id("sg-1").build())
            .db_cluster_parameter_group("app-cpg")
            .kms_key_id("arn:aws:kms:us-east-1:1:key/k")
            .port(5433)
            .deletion_protection(true)
            .iam_database_authentication_enabled(true)
            .serverless_v2_scaling_configuration(
                ServerlessV2ScalingConfigurationInfo::builder().min_capacity(0.5).max_capacity(8.0).build(),
            )
            .tag_list(Tag::builder().key("team").value("payments").build())
            .db_cluster_members(
                DbClusterMember::builder().db_instance_identifier("app-prod-w").is_cluster_writer(true).build(),
            )
            .build()
    }

    fn not_found() -> DescribeDBClustersError {
        DescribeDBClustersError::DbClusterNotFoundFault(DbClusterNotFoundFault::builder().build())
    }

    #[tokio::test]
    async fn restore_copies_the_source_settings_and_creates_a_matching_writer() {
        let describe_source = mock!(Client::describe_db_clusters)
            .match_requests(|r| r.db_cluster_identifier() == Some("app-prod"))
            .then_output(|| DescribeDbClustersOutput::builder().db_clusters(source()).build());
        let target_missing = mock!(Client::describe_db_clusters)
            .match_requests(|r| r.db_cluster_identifier() == Some("app-prod-restored-1"))
            .then_error(not_found);
        let restore = mock!(Client::restore_db_cluster_from_snapshot)
            .match_requests(|r| {
                r.db_cluster_identifier() == Some("app-prod-restored-1")
                    && r.snapshot_identifier() == Some("snap-1")
                    && r.engine() == Some("aurora-postgresql")
                    && r.engine_version() == Some("15.4")
                    && r.db_subnet_group_name() == Some("app-subnets")
                    && r.vpc_security_group_ids() == ["sg-1"]
                    && r.db_cluster_parameter_group_name() == Some("app-cpg")
                    && r.kms_key_id() == Some("arn:aws:kms:us-east-1:1:key/k")
                    && r.port() == Some(5433)
                    && r.deletion_protection() == Some(true)
                    && r.enable_iam_database_authentication() == Some(true)
                    && r.serverless_v2_scaling_configuration().and_then(|s| s.max_capacity()) == Some(8.0)
                    && r.tags().iter().any(|t| t.key() == Some("team"))
            })
            .then_output(|| RestoreDbClusterFromSnapshotOutput::builder().build());
        let target_no_members = mock!(Client::describe_db_clusters)
            .match_requests(|r| r.db_cluster_identifier() == Some("app-prod-restored-1"))
            .then_output(|| {
                DescribeDbClustersOutput::builder()
                    .db_clusters(
                        DbCluster::builder().db_cluster_identifier("app-prod-restored-1").status("creating").build(),
                    )
                    .build()
            });
        let writer = mock!(Client::describe_db_instances)
            .match_requests(|r| r.db_instance_identifier() == Some("app-prod-w"))
            .then_output(|| {
                DescribeDbInstancesOutput::builder()
                    .db_instances(
                        DbInstance::builder()
                            .db_instance_identifier("app-prod-w")
                            .db_instance_class("db.r6g.xlarge")
                            .db_parameter_groups(
                                DbParameterGroupStatus::builder().db_parameter_group_name("app-pg").build(),
                            )
                            .build(),
                    )
                    .build()
            });
        let create = mock!(Client::create_db_instance)
            .match_requests(|r| {
                r.db_cluster_identifier() == Some("app-prod-restored-1")
                    && r.db_instance_identifier() == Some("app-prod-restored-1-1")
                    && r.db_instance_class() == Some("db.r6g.xlarge")
                    && r.db_parameter_group_name() == Some("app-pg")
            })
            .then_output(|| CreateDbInstanceOutput::builder().build());
        let client = mock_client!(
            aws_sdk_rds,
            RuleMode::Sequential,
            [&describe_source, &target_missing, &restore, &target_no_members, &writer, &create]
        );
        let db = RdsDatabase::new(client, "app-prod".into());
        db.restore_snapshot("snap-1", "app-prod-restored-1").await.unwrap();
        assert_eq!(restore.num_calls(), 1);
        assert_eq!(create.num_calls(), 1);
    }

    #[tokio::test]
    async fn rename_is_idempotent_and_never_overwrites() {
        let from_gone = mock!(Client::describe_db_clusters)
            .match_requests(|r| r.db_cluster_identifier() == Some("a"))
            .then_error(not_found);
        let to_there = mock!(Client::describe_db_clusters)
            .match_requests(|r| r.db_cluster_identifier() == Some("b"))
            .then_output(|| {
                DescribeDbClustersOutput::builder()
                    .db_clusters(DbCluster::builder().db_cluster_identifier("b").build())
                    .build()
            });
        let modify = mock!(Client::modify_db_cluster).then_output(|| ModifyDbClusterOutput::builder().build());
        let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&from_gone, &to_there, &modify]);
        let db = RdsDatabase::new(client, "a".into());
        db.rename("a", "b").await.unwrap();
        assert_eq!(modify.num_calls(), 0, "already renamed: nothing to do");

        let both = mock!(Client::describe_db_clusters).then_output(|| {
            DescribeDbClustersOutput::builder()
                .db_clusters(DbCluster::builder().db_cluster_identifier("x").build())
                .build()
        });
        let modify = mock!(Client::modify_db_cluster).then_output(|| ModifyDbClusterOutput::builder().build());
        let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&both, &modify]);
        let db = RdsDatabase::new(client, "a".into());
        assert!(matches!(db.rename("a", "b").await, Err(ProviderError::Rejected(_))));
        assert_eq!(modify.num_calls(), 0);

        let from_there = mock!(Client::describe_db_clusters)
            .match_requests(|r| r.db_cluster_identifier() == Some("a"))
            .then_output(|| {
                DescribeDbClustersOutput::builder()
                    .db_clusters(DbCluster::builder().db_cluster_identifier("a").build())
                    .build()
            });
        let to_gone = mock!(Client::describe_db_clusters)
            .match_requests(|r| r.db_cluster_identifier() == Some("b"))
            .then_error(not_found);
        let modify = mock!(Client::modify_db_cluster)
            .match_requests(|r| {
                r.db_cluster_identifier() == Some("a")
                    && r.new_db_cluster_identifier() == Some("b")
                    && r.apply_immediately() == Some(true)
            })
            .then_output(|| ModifyDbClusterOutput::builder().build());
        let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&from_there, &to_gone, &modify]);
        RdsDatabase::new(client, "a".into()).rename("a", "b").await.unwrap();
        assert_eq!(modify.num_calls(), 1);
    }

    #[tokio::test]
    async fn snapshots_are_listed_across_pages_with_tags() {
        let page1 = mock!(Client::describe_db_cluster_snapshots)
            .match_requests(|r| {
                r.marker().is_none() && r.db_cluster_identifier() == Some("c") && r.snapshot_type() == Some("manual")
            })
            .then_output(|| {
                DescribeDbClusterSnapshotsOutput::builder()
                    .db_cluster_snapshots(
                        DbClusterSnapshot::builder()
                            .db_cluster_snapshot_identifier("s1")
                            .db_cluster_identifier("c")
                            .status("available")
                            .percent_progress(100)
                            .tag_list(Tag::builder().key("ferry:purpose").value("pre-deploy").build())
                            .build(),
                    )
                    .marker("next")
                    .build()
            });
        let page2 = mock!(Client::describe_db_cluster_snapshots)
            .match_requests(|r| r.marker() == Some("next"))
            .then_output(|| {
                DescribeDbClusterSnapshotsOutput::builder()
                    .db_cluster_snapshots(
                        DbClusterSnapshot::builder()
                            .db_cluster_snapshot_identifier("s2")
                            .db_cluster_identifier("c")
                            .status("creating")
                            .percent_progress(40)
                            .tag_list(Tag::builder().key("team").value("x").build())
                            .build(),
                    )
                    .build()
            });
        let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&page1, &page2]);
        let snaps = RdsDatabase::new(client, "c".into()).list_snapshots().await.unwrap();
        assert_eq!(snaps.len(), 2);
        assert_eq!(snaps[0].status, SnapshotStatus::Available);
        assert_eq!(snaps[0].tags.get("ferry:purpose").map(String::as_str), Some("pre-deploy"));
        assert_eq!((snaps[1].status, snaps[1].percent), (SnapshotStatus::Creating, 40));
    }

    #[tokio::test]
    async fn errors_are_mapped_from_their_codes() {
        let throttled = mock!(Client::describe_db_clusters).then_http_response(|| {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
                aws_smithy_types::body::SdkBody::from(
                    "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>",
                ),
            )
        });
        let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&throttled], |c| c
            .retry_config(aws_sdk_rds::config::retry::RetryConfig::disabled()));
        let err = RdsDatabase::new(client, "c".into()).describe("c").await.unwrap_err();
        assert!(matches!(err, ProviderError::Throttled(_)), "{err:?}");

        let denied = mock!(Client::describe_db_clusters).then_http_response(|| {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(403).unwrap(),
                aws_smithy_types::body::SdkBody::from(
                    "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not allowed</Message></Error></ErrorResponse>",
                ),
            )
        });
        let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&denied]);
        let err = RdsDatabase::new(client, "c".into()).describe("c").await.unwrap_err();
        assert!(matches!(err, ProviderError::AccessDenied(_)), "{err:?}");

        let missing = mock!(Client::describe_db_clusters).then_error(not_found);
        let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&missing]);
        assert_eq!(RdsDatabase::new(client, "c".into()).describe("c").await.unwrap(), None);
    }

    #[test]
    fn sibling_ids_stay_within_63_characters() {
        assert_eq!(truncate_id("app", "-failed-20261121-120000"), "app-failed-20261121-120000");
        let long = "a".repeat(60);
        let id = truncate_id(&long, "-failed-20261121-120000");
        assert_eq!(id.len(), 63);
        assert!(id.ends_with("-failed-20261121-120000"));
        assert_eq!(
            truncate_id(&format!("{}-b", "a".repeat(39)), "-failed-20261121-120000"),
            format!("{}-failed-20261121-120000", "a".repeat(39))
        );
    }
}
