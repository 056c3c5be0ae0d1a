//! A rehearsal's clone on Aurora: RestoreDBClusterToPointInTime with
//! `RestoreType=copy-on-write` (ready in minutes, billed for what changes),
//! then one instance, both tagged in their create calls with
//! `ferry:purpose=rehearsal`, `ferry:run-id` and `ferry:env`; deleted
//! (instance, then cluster, no final snapshot) only when both tags say it is
//! this run's. Each call takes the next step after looking at what exists, so
//! a resumed run finds what an earlier attempt made and never touches a
//! database that does not carry its mark.

use aws_sdk_rds::types::{DbCluster, DbInstance, ServerlessV2ScalingConfiguration, Tag};

use super::{RdsDatabase, classify, tags_of};
use ferry_core::provider::{
    CloneInfo, CloneState, PResult, PURPOSE_REHEARSAL, ProviderError, TAG_PURPOSE, TAG_RUN_ID, Tags,
};

fn tag_list(tags: &Tags) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

/// Whether `tags` mark a resource as run `run_id`'s rehearsal clone.
fn marked(tags: &Tags, run_id: &str) -> bool {
    !run_id.is_empty()
        && tags.get(TAG_PURPOSE).map(String::as_str) == Some(PURPOSE_REHEARSAL)
        && tags.get(TAG_RUN_ID).map(String::as_str) == Some(run_id)
}

fn not_marked(kind: &str, id: &str, run_id: &str) -> ProviderError {
    ProviderError::Rejected(format!(
        "{kind} {id} exists and is not tagged as run {run_id}'s rehearsal clone \
         ({TAG_PURPOSE}={PURPOSE_REHEARSAL}, {TAG_RUN_ID}={run_id}); ferry does not use or delete it"
    ))
}

/// What ferry knows of a resource's tags.
enum Known {
    Tags(Tags),
    /// Neither the answer nor ListTagsForResource gave them (no TagList, no ARN).
    Unreadable,
}

impl RdsDatabase {
    /// Tags from the answer, else from ListTagsForResource on `arn`.
    async fn tags_of_resource(&self, listed: &[Tag], arn: Option<&str>) -> PResult<Known> {
        if !listed.is_empty() {
            return Ok(Known::Tags(tags_of(listed)));
        }
        let Some(arn) = arn else { return Ok(Known::Unreadable) };
        Ok(Known::Tags(self.list_tags(arn).await?))
    }

    /// The next step toward clone `name` of the environment's cluster.
    pub(super) async fn clone_step(&self, name: &str, tags: &Tags) -> PResult<CloneState> {
        let run_id = tags.get(TAG_RUN_ID).map(String::as_str).unwrap_or_default();
        if name.eq_ignore_ascii_case(&self.cluster_id) || !marked(tags, run_id) {
            return Err(ProviderError::Rejected(format!("{name} cannot be a rehearsal clone of {}", self.cluster_id)));
        }
        let Some(clone) = self.cluster(name).await? else {
            return self.start_clone(name, tags).await;
        };
        match self.tags_of_resource(clone.tag_list(), clone.db_cluster_arn()).await? {
            Known::Tags(t) if marked(&t, run_id) => {}
            Known::Tags(_) => return Err(not_marked("cluster", name, run_id)),
            Known::Unreadable => {
                return Ok(CloneState::Making(format!("cluster {name}: its tags are not described yet")));
            }
        }
        let status = clone.status().unwrap_or("unknown");
        if status != "available" {
            return Ok(CloneState::Making(format!("cluster {name} {status}")));
        }
        let instance_id = clone_instance_id(name);
        let instance = self
            .instances_of(name)
            .await?
            .into_iter()
            .find(|i| i.db_instance_identifier().is_some_and(|id| id.eq_ignore_ascii_case(&instance_id)));
        let Some(instance) = instance else {
            self.create_clone_instance(name, &clone, &instance_id, tags).await?;
            return Ok(CloneState::Making(format!("instance {instance_id} creating")));
        };
        match self.tags_of_resource(instance.tag_list(), instance.db_instance_arn()).await? {
            Known::Tags(t) if marked(&t, run_id) => {}
            Known::Tags(_) => return Err(not_marked("instance", &instance_id, run_id)),
            Known::Unreadable => {
                return Ok(CloneState::Making(format!("instance {instance_id}: its tags are not described yet")));
            }
        }
        match instance.db_instance_status() {
            Some("available") => {}
            other => return Ok(CloneState::Making(format!("instance {instance_id} {}", other.unwrap_or("unknown")))),
        }
        // Described once available; until both are there it is not ready, never a guess.
        match (clone.endpoint(), clone.port().and_then(|p| u16::try_from(p).ok())) {
            (Some(endpoint), Some(port)) if !endpoint.is_empty() => Ok(CloneState::Ready(CloneInfo {
                id: name.to_string(),
                endpoint: endpoint.to_string(),
                port: Some(port),
                url_for_migration: None,
            })),
            _ => {
                Ok(CloneState::Making(format!("cluster {name} available; its endpoint and port are not described yet")))
            }
        }
    }

    /// RestoreDBClusterToPointInTime, copy-on-write, as of now, with the
    /// source's network, parameter group, port, IAM authentication and
    /// serverless v2 scaling; never protected from deletion. The engine
    /// version and the KMS key come with the clone (the call takes neither).
    async fn start_clone(&self, name: &str, tags: &Tags) -> PResult<CloneState> {
        let source = self.source().await?;
        let req = self
            .client
            .restore_db_cluster_to_point_in_time()
            .db_cluster_identifier(name)
            .source_db_cluster_identifier(&self.cluster_id)
            .restore_type("copy-on-write")
            .use_latest_restorable_time(true)
            .set_db_subnet_group_name(source.db_subnet_group().map(String::from))
            .set_vpc_security_group_ids(Some(
                source
                    .vpc_security_groups()
                    .iter()
                    .filter_map(|g| g.vpc_security_group_id().map(String::from))
                    .collect(),
            ))
            .set_db_cluster_parameter_group_name(source.db_cluster_parameter_group().map(String::from))
            .set_port(source.port())
            .set_enable_iam_database_authentication(source.iam_database_authentication_enabled())
            .set_serverless_v2_scaling_configuration(scaling(&source))
            .deletion_protection(false)
            .set_tags(Some(tag_list(tags)));
        match req.send().await {
            Ok(_) => Ok(CloneState::Making(format!("cluster {name} creating (copy-on-write clone)"))),
            // Made by an earlier attempt, not described yet: the next look checks its tags.
            Err(e) if e.as_service_error().is_some_and(|e| e.is_db_cluster_already_exists_fault()) => {
                Ok(CloneState::Making(format!("cluster {name} exists; not described yet")))
            }
            Err(e) if e.as_service_error().is_some_and(|e| e.is_db_cluster_not_found_fault()) => {
                Err(ProviderError::NotFound(format!("cluster {}", self.cluster_id)))
            }
            Err(e) => Err(classify("RestoreDBClusterToPointInTime", e)),
        }
    }

    /// CreateDBInstance `<clone>-1`: `rehearse.instance_class`, else the
    /// source writer's class, with the writer's parameter group.
    async fn create_clone_instance(&self, name: &str, clone: &DbCluster, id: &str, tags: &Tags) -> PResult<()> {
        let source = self.source().await?;
        let engine = clone.engine().or(source.engine()).ok_or_else(|| {
            ProviderError::Rejected(format!("DescribeDBClusters gives no engine for {} or its clone", self.cluster_id))
        })?;
        let writer: Option<DbInstance> =
            super::twin::twin_order(&source, self.instances_of(&self.cluster_id).await?).into_iter().next();
        let class = self
            .rehearsal
            .instance_class
            .clone()
            .or_else(|| writer.as_ref().and_then(|w| w.db_instance_class().map(String::from)))
            .ok_or_else(|| {
                ProviderError::Rejected(format!(
                    "cluster {} has no writer instance to take the clone's instance class from; set rehearse.instance_class",
                    self.cluster_id
                ))
            })?;
        let parameter_group = writer
            .as_ref()
            .and_then(|w| w.db_parameter_groups().first())
            .and_then(|g| g.db_parameter_group_name().map(String::from));
        let req = self
            .client
            .create_db_instance()
            .db_instance_identifier(id)
            .db_cluster_identifier(name)
            .engine(engine)
            .db_instance_class(class)
            .set_db_parameter_group_name(parameter_group)
            .set_tags(Some(tag_list(tags)));
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_db_instance_already_exists_fault()) => Ok(()),
            Err(e) => Err(classify("CreateDBInstance", e)),
        }
    }

    /// The next step toward deleting clone `id`: its instances that carry this
    /// run's mark (waiting until they are gone), then the cluster. `None`
    /// once the cluster is gone or deleting.
    pub(super) async fn delete_clone_step(&self, id: &str, run_id: &str) -> PResult<Option<String>> {
        if id.eq_ignore_ascii_case(&self.cluster_id) {
            return Err(ProviderError::Rejected(format!(
                "{id} is the environment's own cluster; ferry never deletes it"
            )));
        }
        let Some(clone) = self.cluster(id).await? else { return Ok(None) };
        match self.tags_of_resource(clone.tag_list(), clone.db_cluster_arn()).await? {
            Known::Tags(t) if marked(&t, run_id) => {}
            Known::Tags(_) => return Err(not_marked("cluster", id, run_id)),
            Known::Unreadable => {
                return Err(ProviderError::Rejected(format!(
                    "the tags of cluster {id} cannot be read (no TagList, no ARN), so it cannot be proved to be \
                     run {run_id}'s rehearsal clone; ferry does not delete it"
                )));
            }
        }
        if clone.status() == Some("deleting") {
            return Ok(None);
        }
        let instances = self.instances_of(id).await?;
        if !instances.is_empty() {
            return self.delete_clone_instances(id, run_id, &instances).await.map(Some);
        }
        self.delete_clone_cluster(&clone, id).await
    }

    /// DeleteDBInstance for each of the clone's instances (all must carry
    /// the mark); what is left, for the progress line.
    async fn delete_clone_instances(&self, clone: &str, run_id: &str, instances: &[DbInstance]) -> PResult<String> {
        let mut left = Vec::new();
        for i in instances {
            let iid = i.db_instance_identifier().unwrap_or_default();
            match self.tags_of_resource(i.tag_list(), i.db_instance_arn()).await? {
                Known::Tags(t) if marked(&t, run_id) => {}
                _ => {
                    return Err(ProviderError::Rejected(format!(
                        "clone {clone} has instance {iid}, which is not tagged as run {run_id}'s rehearsal clone; \
                         ferry deletes neither"
                    )));
                }
            }
            let status = i.db_instance_status().unwrap_or("unknown");
            left.push(format!("instance {iid} {status}"));
            if status == "deleting" {
                continue;
            }
            let sent =
                self.client.delete_db_instance().db_instance_identifier(iid).skip_final_snapshot(true).send().await;
            match sent {
                Ok(_) => {}
                Err(e) if e.as_service_error().is_some_and(|e| e.is_db_instance_not_found_fault()) => {}
                // Still creating (or busy otherwise): it is deleted once it can be.
                Err(e) if e.as_service_error().is_some_and(|e| e.is_invalid_db_instance_state_fault()) => {}
                Err(e) => return Err(classify("DeleteDBInstance", e)),
            }
        }
        Ok(left.join(", "))
    }

    async fn delete_clone_cluster(&self, clone: &DbCluster, id: &str) -> PResult<Option<String>> {
        let sent = self.client.delete_db_cluster().db_cluster_identifier(id).skip_final_snapshot(true).send().await;
        match sent {
            Ok(_) => Ok(None),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_db_cluster_not_found_fault()) => Ok(None),
            // Busy (still creating, an instance not gone yet): the next look tries again.
            Err(e) if e.as_service_error().is_some_and(|e| e.is_invalid_db_cluster_state_fault()) => {
                Ok(Some(format!("cluster {id} {}", clone.status().unwrap_or("busy"))))
            }
            Err(e) => Err(classify("DeleteDBCluster", e)),
        }
    }
}

fn scaling(source: &DbCluster) -> Option<ServerlessV2ScalingConfiguration> {
    source.serverless_v2_scaling_configuration().map(|s| {
        ServerlessV2ScalingConfiguration::builder()
            .set_min_capacity(s.min_capacity())
            .set_max_capacity(s.max_capacity())
            .set_seconds_until_auto_pause(s.seconds_until_auto_pause())
            .build()
    })
}

/// The one instance of an Aurora rehearsal clone `clone`: `<clone>-1`, within
/// RDS's 63 characters.
pub fn clone_instance_id(clone: &str) -> String {
    super::truncated_id(clone, "-1")
}
