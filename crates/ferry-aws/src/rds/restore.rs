//! The restore as the original's twin: RestoreDBClusterFromSnapshot with every
//! setting the call takes, then the instances (the writer, then the readers at
//! once), then ModifyDBCluster for what the restore call cannot carry; the
//! comparison afterwards; and renames that tag the cluster with the run first.
//! Every step looks at what exists, so a resumed restore picks up where the
//! earlier attempt stopped.

use std::collections::BTreeSet;

use aws_sdk_rds::types::{DbCluster, DbInstance, Filter, Tag};
use tokio::task::JoinSet;

use super::settings::{self, How};
use super::{RdsDatabase, classify, truncate_id, twin};
use ferry_core::provider::{PResult, ProviderError, RestoreWork, TAG_RUN_ID, Tags, TwinReport};

fn ferry_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

/// The restored twin of the original's `n`-th instance (in twin order):
/// `<db>-restored-<stamp>-<run hex>-<n>`, within 63 characters by shortening
/// the database part, never the stamp, the run's hex or the number.
fn twin_id(target: &str, n: usize) -> String {
    let number = format!("-{}", n + 1);
    match target.rfind("-restored-") {
        Some(i) => truncate_id(&target[..i], &format!("{}{number}", &target[i..])),
        None => truncate_id(target, &number),
    }
}

impl RdsDatabase {
    /// The environment's cluster: where the restored one takes its settings from.
    pub(super) async fn source(&self) -> PResult<DbCluster> {
        self.cluster(&self.cluster_id).await?.ok_or_else(|| {
            ProviderError::NotFound(format!("cluster {} (the source of the restore's settings)", self.cluster_id))
        })
    }

    pub(super) async fn instances_of(&self, cluster_id: &str) -> PResult<Vec<DbInstance>> {
        let mut pages = self
            .client
            .describe_db_instances()
            .filters(Filter::builder().name("db-cluster-id").values(cluster_id).build())
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            out.extend(page.map_err(|e| classify("DescribeDBInstances", e))?.db_instances().iter().cloned());
        }
        Ok(out)
    }

    pub(super) async fn restore_cluster(&self, snapshot_id: &str, target: &str, tags: &Tags) -> PResult<()> {
        let source = self.source().await?;
        if self.cluster(target).await?.is_some() {
            return Ok(());
        }
        let mut req = self.client.restore_db_cluster_from_snapshot().db_cluster_identifier(target);
        req = settings::restore_settings(req, &source).snapshot_identifier(snapshot_id);
        if req.get_engine().is_none() {
            req = req.engine("aurora-postgresql");
        }
        for tag in ferry_tags(tags) {
            req = req.tags(tag);
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_db_cluster_already_exists_fault()) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_db_cluster_snapshot_not_found_fault()) => {
                Err(ProviderError::NotFound(format!("snapshot {snapshot_id}")))
            }
            Err(e) => Err(classify("RestoreDBClusterFromSnapshot", e)),
        }
    }

    pub(super) async fn next_twin_step(&self, target: &str, tags: &Tags) -> PResult<Option<RestoreWork>> {
        let source = self.source().await?;
        let restored =
            self.cluster(target).await?.ok_or_else(|| ProviderError::NotFound(format!("cluster {target}")))?;
        // A Multi-AZ DB cluster comes with its instances; Serverless v1 has none.
        if settings::is_aurora(&source) && !settings::is_serverless_v1(&source) {
            let wanted = twin::twin_order(&source, self.instances_of(&self.cluster_id).await?);
            let existing: BTreeSet<String> = self
                .instances_of(target)
                .await?
                .iter()
                .filter_map(|i| i.db_instance_identifier().map(str::to_ascii_lowercase))
                .collect();
            let missing: Vec<(String, DbInstance)> = wanted
                .into_iter()
                .enumerate()
                .map(|(n, i)| (twin_id(target, n), i))
                .filter(|(id, _)| !existing.contains(&id.to_ascii_lowercase()))
                .collect();
            if !missing.is_empty() {
                // The writer alone first: the first instance of a cluster is its writer.
                let writer_missing = missing[0].0 == twin_id(target, 0);
                let batch = if writer_missing { &missing[..1] } else { &missing[..] };
                self.create_instances(&source, target, batch, tags).await?;
                return Ok(Some(RestoreWork::Instances(batch.iter().map(|(id, _)| id.clone()).collect())));
            }
        }
        self.apply_settings(&source, &restored, target).await
    }

    /// CreateDBInstance for each `(id, original instance)`, all at once.
    async fn create_instances(
        &self,
        source: &DbCluster,
        target: &str,
        batch: &[(String, DbInstance)],
        tags: &Tags,
    ) -> PResult<()> {
        let mut calls = JoinSet::new();
        for (id, original) in batch {
            let mut req = self.client.create_db_instance().db_instance_identifier(id).db_cluster_identifier(target);
            req = settings::instance_settings(req, original);
            if req.get_engine().is_none() {
                req = req.set_engine(source.engine().map(String::from));
            }
            for tag in ferry_tags(tags) {
                req = req.tags(tag);
            }
            calls.spawn(req.send());
        }
        let mut first_error = None;
        while let Some(joined) = calls.join_next().await {
            let result = joined.map_err(|e| ProviderError::Other(format!("CreateDBInstance: {e}")))?;
            match result {
                Ok(_) => {}
                Err(e) if e.as_service_error().is_some_and(|e| e.is_db_instance_already_exists_fault()) => {}
                Err(e) => {
                    first_error.get_or_insert(classify("CreateDBInstance", e));
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// ModifyDBCluster with the settings the restore call could not carry and
    /// the restored cluster does not have yet. A refusal does not stop the
    /// restore: the comparison afterwards reports what differs.
    async fn apply_settings(
        &self,
        source: &DbCluster,
        restored: &DbCluster,
        target: &str,
    ) -> PResult<Option<RestoreWork>> {
        let pending = twin::pending_modifications(source, restored);
        if pending.is_empty() {
            return self.enable_data_api(source, restored, target).await;
        }
        let mut req = self.client.modify_db_cluster().db_cluster_identifier(target).apply_immediately(true);
        for s in &pending {
            if let How::Modify { set, .. } = &s.how {
                req = set(req, source);
            }
        }
        let names: Vec<String> = pending.iter().map(|s| s.api.to_string()).collect();
        match req.send().await {
            Ok(_) => Ok(Some(RestoreWork::Settings(names))),
            Err(e) => {
                let answered = e.as_service_error().is_some();
                match classify("ModifyDBCluster", e) {
                    ProviderError::Throttled(t) => Err(ProviderError::Throttled(t)),
                    e if answered => Ok(Some(RestoreWork::Refused(format!(
                        "RDS refused to apply {} to {target}: {e}",
                        names.join(", ")
                    )))),
                    e => Err(e),
                }
            }
        }
    }

    /// The Data API of a provisioned or Serverless v2 original, turned on with
    /// its own action (ModifyDBCluster takes it for Serverless v1 only). Asked
    /// once the settings call is done, so a refusal loses nothing else; a
    /// refusal is reported, and the comparison after the swap names it.
    async fn enable_data_api(
        &self,
        source: &DbCluster,
        restored: &DbCluster,
        target: &str,
    ) -> PResult<Option<RestoreWork>> {
        if !settings::needs_data_api_action(source, restored) {
            return Ok(None);
        }
        let Some(arn) = restored.db_cluster_arn() else {
            return Ok(Some(RestoreWork::Refused(format!(
                "DescribeDBClusters gave no ARN for {target}; the Data API (EnableHttpEndpoint) was not turned on"
            ))));
        };
        match self.client.enable_http_endpoint().resource_arn(arn).send().await {
            Ok(_) => Ok(Some(RestoreWork::Settings(vec!["HttpEndpointEnabled".into()]))),
            Err(e) => {
                let answered = e.as_service_error().is_some();
                match classify("EnableHttpEndpoint", e) {
                    ProviderError::Throttled(t) => Err(ProviderError::Throttled(t)),
                    e if answered => {
                        Ok(Some(RestoreWork::Refused(format!("RDS refused to turn the Data API on for {target}: {e}"))))
                    }
                    e => Err(e),
                }
            }
        }
    }

    pub(super) async fn compare_twins(&self, original: &str, restored: &str) -> PResult<TwinReport> {
        let missing = |id: &str| ProviderError::NotFound(format!("cluster {id}"));
        let a = self.cluster(original).await?.ok_or_else(|| missing(original))?;
        let b = self.cluster(restored).await?.ok_or_else(|| missing(restored))?;
        let mut differences = twin::compare_clusters(&a, &b);
        let (ia, ib) = (self.instances_of(original).await?, self.instances_of(restored).await?);
        differences.extend(twin::compare_instances((&a, ia), (&b, ib)));
        Ok(TwinReport { differences, notes: twin::notes(original, &a, restored, &b) })
    }

    /// Tag `from` with the run (so the cloud alone tells which run moved it),
    /// then rename it. Idempotent; never renames onto an existing cluster.
    pub(super) async fn rename_tagged(&self, from: &str, to: &str, run_id: &str) -> PResult<()> {
        let cluster = match (self.cluster(from).await?, self.cluster(to).await?.is_some()) {
            (None, true) => return Ok(()),
            (Some(_), true) => {
                return Err(ProviderError::Rejected(format!(
                    "cluster {to} already exists; not renaming {from} onto it"
                )));
            }
            (None, false) => return Err(ProviderError::NotFound(format!("cluster {from}"))),
            (Some(c), false) => c,
        };
        self.tag_with_run(&cluster, run_id).await?;
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
                Err(ProviderError::Busy(format!("cluster {from} is busy; retrying the rename")))
            }
            Err(e) => Err(classify("ModifyDBCluster", e)),
        }
    }

    /// AddTagsToResource `ferry:run-id` (only that key), unless it is there already.
    async fn tag_with_run(&self, cluster: &DbCluster, run_id: &str) -> PResult<()> {
        if cluster.tag_list().iter().any(|t| t.key() == Some(TAG_RUN_ID) && t.value() == Some(run_id)) {
            return Ok(());
        }
        let arn = cluster.db_cluster_arn().ok_or_else(|| {
            ProviderError::Other(format!(
                "DescribeDBClusters gave no ARN for {}; cannot tag it",
                cluster.db_cluster_identifier().unwrap_or("?")
            ))
        })?;
        self.client
            .add_tags_to_resource()
            .resource_name(arn)
            .tags(Tag::builder().key(TAG_RUN_ID).value(run_id).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("AddTagsToResource", e))
    }
}

#[cfg(test)]
mod names {
    use super::twin_id;

    #[test]
    fn instance_names_keep_the_stamp_and_the_run_hex() {
        assert_eq!(twin_id("app-restored-20261207-120000-beef", 0), "app-restored-20261207-120000-beef-1");
        let long = format!("{}-restored-20261207-120000-beef", "c".repeat(40));
        let id = twin_id(&long[long.len() - 63..], 1);
        assert!(id.len() <= 63 && id.ends_with("-restored-20261207-120000-beef-2"), "{id}");
        let target = format!("{}-restored-20261207-120000-beef", "c".repeat(30));
        let id = twin_id(&target, 2);
        assert!(id.len() <= 63 && id.ends_with("-restored-20261207-120000-beef-3"), "{id}");
    }
}
