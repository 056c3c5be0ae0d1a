//! Aurora through RDS: cluster snapshots, restores that make the original's
//! twin (restore.rs, by the table in settings.rs, compared by twin.rs),
//! renames; a rehearsal's copy-on-write clone (clone.rs). Never deletes a
//! cluster (ARCHITECTURE.md promise 2) other than the clone a rehearsal made and
//! tagged in its create call: the IAM policy in infra/ allows nothing else.

mod clone;
#[cfg(test)]
mod clone_tests;
#[cfg(test)]
mod fixtures;
mod pitr;
mod restore;
mod settings;
mod twin;
#[cfg(test)]
mod twin_tests;

use async_trait::async_trait;
use aws_sdk_rds::Client;
use aws_sdk_rds::types::{DbCluster, DbClusterSnapshot, Filter, Tag};
use chrono::{DateTime, Utc};

use super::classify;
use ferry_core::provider::{
    CloneInfo, CloneState, ClusterInfo, Database, Leftover, LockObserver, PResult, ProviderError, RestoreWork,
    Snapshot, SnapshotKind, SnapshotQuota, SnapshotStatus, Stopped, Tags, TwinReport, leftover_kind,
};
use ferry_local::session::PgSession;

/// RDS identifiers are at most 63 characters.
const MAX_ID: usize = 63;

pub struct RdsDatabase {
    client: Client,
    cluster_id: String,
    rehearsal: Rehearsal,
}

/// What a rehearsal on this cluster needs from the configuration.
#[derive(Debug, Clone, Default)]
pub struct Rehearsal {
    /// `rehearse.instance_class`; `None`: the source writer's class.
    pub instance_class: Option<String>,
    /// `database.url`: reaches the cluster's database from here; with the
    /// clone's host and port it reaches the clone, for lock sampling.
    pub url: Option<String>,
}

impl RdsDatabase {
    pub fn new(client: Client, cluster_id: String) -> Self {
        RdsDatabase { client, cluster_id, rehearsal: Rehearsal::default() }
    }

    /// The same, with what a rehearsal needs.
    pub fn with_rehearsal(self, rehearsal: Rehearsal) -> Self {
        RdsDatabase { rehearsal, ..self }
    }

    /// The run recorded on cluster `c`: its `ferry:run-id` tag.
    async fn run_of_cluster(&self, c: &DbCluster) -> PResult<Option<String>> {
        // A sparse answer may leave TagList out: ListTagsForResource says.
        let tags = match (c.tag_list().is_empty(), c.db_cluster_arn()) {
            (true, Some(arn)) => self.list_tags(arn).await?,
            _ => tags_of(c.tag_list()),
        };
        Ok(tags.get(ferry_core::provider::TAG_RUN_ID).cloned())
    }

    async fn cluster(&self, id: &str) -> PResult<Option<DbCluster>> {
        match self.client.describe_db_clusters().db_cluster_identifier(id).send().await {
            Ok(out) => Ok(out.db_clusters().first().cloned()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_db_cluster_not_found_fault()) => Ok(None),
            Err(e) => Err(classify("DescribeDBClusters", e)),
        }
    }

    /// The cluster's instances that are not available (`<id> <status>`).
    async fn instances_pending(&self, id: &str) -> PResult<Vec<String>> {
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
        // DescribeDBInstances is what says whether there are instances at all
        // (a sparse DescribeDBClusters answer may leave out its members).
        if out.db_instances().is_empty() {
            return Ok(vec!["no instance yet".into()]);
        }
        Ok(pending)
    }

    async fn snapshot_tags(&self, s: &DbClusterSnapshot) -> PResult<Tags> {
        if !s.tag_list().is_empty() {
            return Ok(tags_of(s.tag_list()));
        }
        let Some(arn) = s.db_cluster_snapshot_arn() else { return Ok(Tags::new()) };
        self.list_tags(arn).await
    }

    /// ListTagsForResource: the tags of `arn`, for an answer that left its TagList out.
    async fn list_tags(&self, arn: &str) -> PResult<Tags> {
        let out = self
            .client
            .list_tags_for_resource()
            .resource_name(arn)
            .send()
            .await
            .map_err(|e| classify("ListTagsForResource", e))?;
        Ok(tags_of(out.tag_list()))
    }

    /// The cluster's snapshots of one `SnapshotType` (`None`: the types RDS
    /// lists by default, manual and automated), every page.
    async fn snapshots_of_type(&self, kind: Option<&str>) -> PResult<Vec<Snapshot>> {
        let mut pages = self
            .client
            .describe_db_cluster_snapshots()
            .db_cluster_identifier(&self.cluster_id)
            .set_snapshot_type(kind.map(String::from))
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

    async fn to_snapshot(&self, s: &DbClusterSnapshot) -> PResult<Snapshot> {
        Ok(Snapshot { tags: self.snapshot_tags(s).await?, ..self.to_snapshot_untagged(s) })
    }

    /// A snapshot as described; an unknown or missing status reads as
    /// `creating` (not done), never `available`.
    fn to_snapshot_untagged(&self, s: &DbClusterSnapshot) -> Snapshot {
        Snapshot {
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
            tags: Tags::new(),
            kind: match s.snapshot_type() {
                Some("automated") => SnapshotKind::Automated,
                Some("shared") => SnapshotKind::Shared,
                _ => SnapshotKind::Manual,
            },
        }
    }
}

fn tags_of(list: &[Tag]) -> Tags {
    list.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect()
}

/// `<base><suffix>` within RDS's identifier limit (see `truncate_id`).
pub fn truncated_id(base: &str, suffix: &str) -> String {
    truncate_id(base, suffix)
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
        // A missing or unknown status is not `available`: waits go on, preflight refuses.
        let status = c.status().unwrap_or("unknown").to_string();
        let mut pending_instances = Vec::new();
        if status == "available" && !settings::is_serverless_v1(&c) {
            pending_instances = self.instances_pending(id).await?;
        }
        Ok(Some(ClusterInfo {
            id: id.to_string(),
            status,
            endpoint: c.endpoint().map(String::from),
            engine: format!("{} {}", c.engine().unwrap_or("?"), c.engine_version().unwrap_or("")).trim().to_string(),
            pending_instances,
        }))
    }

    async fn run_of(&self, id: &str) -> PResult<Option<String>> {
        let Some(c) = self.cluster(id).await? else { return Ok(None) };
        self.run_of_cluster(&c).await
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
                // Created by this call (an existing id is refused), so with these
                // tags, whether or not the answer lists them.
                Some(s) if s.db_cluster_snapshot_identifier() == Some(id) => {
                    Ok(Snapshot { tags: tags.clone(), ..self.to_snapshot_untagged(s) })
                }
                // Accepted, but not described in the answer (and maybe not listed
                // yet): it is ours and creating; the wait reads it again.
                _ => Ok(Snapshot {
                    id: id.to_string(),
                    cluster_id: self.cluster_id.clone(),
                    status: SnapshotStatus::Creating,
                    percent: 0,
                    created_at: None,
                    tags: tags.clone(),
                    kind: SnapshotKind::Manual,
                }),
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

    /// Any snapshot id RDS takes: a manual one, an automated one (`rds:...`,
    /// which DescribeDBClusterSnapshots finds only with `SnapshotType =
    /// automated`: "If this identifier is for an automated snapshot, the
    /// SnapshotType parameter must also be specified"), or an ARN (a snapshot
    /// another account shared: `IncludeShared`).
    async fn describe_snapshot(&self, id: &str) -> PResult<Option<Snapshot>> {
        let name = id.rsplit_once(":cluster-snapshot:").map_or(id, |(_, n)| n);
        let request = self
            .client
            .describe_db_cluster_snapshots()
            .db_cluster_snapshot_identifier(id)
            .set_snapshot_type(name.starts_with("rds:").then(|| "automated".to_string()))
            .set_include_shared(id.starts_with("arn:").then_some(true));
        match request.send().await {
            Ok(out) => match out.db_cluster_snapshots().first() {
                Some(s) => Ok(Some(self.to_snapshot(s).await?)),
                None => Ok(None),
            },
            Err(e) if e.as_service_error().is_some_and(|e| e.is_db_cluster_snapshot_not_found_fault()) => Ok(None),
            Err(e) => Err(classify("DescribeDBClusterSnapshots", e)),
        }
    }

    async fn list_snapshots(&self) -> PResult<Vec<Snapshot>> {
        self.snapshots_of_type(Some("manual")).await
    }

    /// Manual and automated snapshots of the cluster (no `SnapshotType`: RDS
    /// answers both), each with its type.
    async fn list_all_snapshots(&self) -> PResult<Vec<Snapshot>> {
        self.snapshots_of_type(None).await
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
        // Both numbers or nothing: a quota without them says nothing about room.
        let quota = out.account_quotas().iter().find(|q| q.account_quota_name() == Some("ManualClusterSnapshots"));
        Ok(quota.and_then(|q| {
            let clamp = |n: i64| n.clamp(0, i64::from(u32::MAX)) as u32;
            Some(SnapshotQuota { used: clamp(q.used()?), max: clamp(q.max()?) })
        }))
    }

    async fn restore_snapshot(&self, snapshot_id: &str, target: &str, tags: &Tags) -> PResult<()> {
        self.restore_cluster(snapshot_id, target, tags).await
    }

    async fn restorable_window(&self) -> PResult<Option<(DateTime<Utc>, DateTime<Utc>)>> {
        self.window().await
    }

    async fn restore_to_time(&self, at: DateTime<Utc>, target: &str, tags: &Tags) -> PResult<()> {
        self.restore_at(at, target, tags).await
    }

    async fn stop_set_aside(&self, id: &str, run_id: &str) -> PResult<Stopped> {
        self.stop_tagged(id, run_id).await
    }

    async fn writer_hosts(&self, id: &str) -> PResult<Option<(String, String)>> {
        self.endpoints_of_writer(id).await
    }

    async fn complete_restore(&self, target: &str, tags: &Tags) -> PResult<Option<RestoreWork>> {
        self.next_twin_step(target, tags).await
    }

    async fn compare(&self, original: &str, restored: &str) -> PResult<TwinReport> {
        self.compare_twins(original, restored).await
    }

    async fn rename(&self, from: &str, to: &str, run_id: &str) -> PResult<()> {
        self.rename_tagged(from, to, run_id).await
    }

    async fn clone_for_rehearsal(&self, name: &str, tags: &Tags) -> PResult<CloneState> {
        self.clone_step(name, tags).await
    }

    async fn delete_rehearsal_clone(&self, id: &str, run_id: &str) -> PResult<Option<String>> {
        self.delete_clone_step(id, run_id).await
    }

    fn clone_removal(&self, id: &str) -> String {
        format!(
            "aws rds delete-db-instance --db-instance-identifier {} --skip-final-snapshot, then (once it is gone) \
             aws rds delete-db-cluster --db-cluster-identifier {id} --skip-final-snapshot",
            clone::clone_instance_id(id)
        )
    }

    /// Through `database.url` with the cluster's own endpoint and port.
    async fn session_of(&self, id: &str) -> PResult<Option<std::sync::Arc<dyn ferry_core::provider::Session>>> {
        let Some(url) = &self.rehearsal.url else { return Ok(None) };
        let Some(c) = self.cluster(id).await? else { return Ok(None) };
        let (Some(host), Some(port)) = (c.endpoint(), c.port()) else { return Ok(None) };
        let port = u16::try_from(port).map_err(|_| ProviderError::Other(format!("cluster {id} has port {port}")))?;
        let session = PgSession::at(url, host, port, ferry_core::config::ProviderKind::Aws)?;
        Ok(Some(std::sync::Arc::new(session)))
    }

    async fn lock_observer(&self, clone: &CloneInfo) -> PResult<Box<dyn LockObserver>> {
        let Some(url) = &self.rehearsal.url else {
            return Err(ProviderError::Rejected(format!(
                "set database.url next to database.cluster (a postgres:// URL that reaches cluster {} from here) \
                 to observe locks: ferry reaches the clone through it with the clone's endpoint and port",
                self.cluster_id
            )));
        };
        let port = clone.port.ok_or_else(|| ProviderError::Rejected(format!("clone {} has no port", clone.id)))?;
        let session = PgSession::on_clone(url, &clone.endpoint, port, ferry_core::config::ProviderKind::Aws)?;
        Ok(Box::new(session.lock_observer().await?))
    }

    async fn leftovers(&self) -> PResult<Vec<Leftover>> {
        // DescribeDBClusters filters by exact ids only: list every page and
        // keep this cluster's `-restored-` and `-failed-` siblings.
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .client
                .describe_db_clusters()
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| classify("DescribeDBClusters", e))?;
            for c in page.db_clusters() {
                let id = c.db_cluster_identifier().unwrap_or_default();
                if let Some(kind) = leftover_kind(&self.cluster_id, id) {
                    let status = c.status().unwrap_or("unknown").to_string();
                    let note = (status == "stopped").then(|| {
                        "AWS starts a stopped cluster again by itself seven days after it was stopped; stop it \
                         again then, or delete it once nothing needs its data"
                            .to_string()
                    });
                    out.push(Leftover { id: id.to_string(), kind, status, tags: tags_of(c.tag_list()), note });
                }
            }
            match page.marker() {
                Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_rds::operation::describe_db_cluster_snapshots::DescribeDbClusterSnapshotsOutput;
    use aws_sdk_rds::operation::describe_db_clusters::DescribeDBClustersError;
    use aws_sdk_rds::types::error::DbClusterNotFoundFault;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    fn not_found() -> DescribeDBClustersError {
        DescribeDBClustersError::DbClusterNotFoundFault(DbClusterNotFoundFault::builder().build())
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
        assert_eq!(truncate_id("app", "-failed-20261121-120000-beef"), "app-failed-20261121-120000-beef");
        let long = "a".repeat(60);
        let id = truncate_id(&long, "-failed-20261121-120000-beef");
        assert_eq!(id.len(), 63);
        assert!(id.ends_with("-failed-20261121-120000-beef"));
        assert_eq!(
            truncate_id(&format!("{}-b", "a".repeat(34)), "-failed-20261121-120000-beef"),
            format!("{}-failed-20261121-120000-beef", "a".repeat(34))
        );
    }
}
