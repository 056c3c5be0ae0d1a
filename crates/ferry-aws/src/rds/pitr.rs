//! A restore to a point in time (RestoreDBClusterToPointInTime, full copy) as
//! the original's twin, and the fence after a swap: the restored writer's
//! host name for the DNS check, and StopDBCluster on the cluster set aside.
//!
//! The point-in-time request carries every setting of the table in
//! settings.rs that the call takes (built as for a snapshot restore, then
//! moved over parameter by parameter); the engine and its version come from
//! the source itself. What the call cannot carry (the backup retention and
//! window, the zones) is applied or reported by the same twin steps and
//! comparison as after a snapshot restore.

use aws_sdk_rds::operation::restore_db_cluster_to_point_in_time::builders::RestoreDBClusterToPointInTimeFluentBuilder;
use aws_smithy_types::DateTime as AwsTime;
use chrono::{DateTime, Utc};

use super::settings::{self, RestoreReq};
use super::{RdsDatabase, classify};
use ferry_core::provider::{PResult, ProviderError, Stopped, TAG_RUN_ID, Tags};

type PitrReq = RestoreDBClusterToPointInTimeFluentBuilder;

/// AWS starts a stopped Aurora cluster again after seven days (the Aurora
/// User Guide, "Stopping and starting an Amazon Aurora DB cluster").
const RESTARTS_AFTER: &str = "; AWS starts it again by itself after seven days";

fn to_aws(t: DateTime<Utc>) -> AwsTime {
    AwsTime::from_millis(t.timestamp_millis())
}

fn to_chrono(t: &AwsTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// Move every setting of `from` (a snapshot-restore request built from the
/// settings table) that RestoreDBClusterToPointInTime takes onto `to`.
fn carry(from: &RestoreReq, mut to: PitrReq) -> PitrReq {
    let i = from.as_input();
    to = to
        .set_port(*i.get_port())
        .set_db_subnet_group_name(i.get_db_subnet_group_name().clone())
        .set_option_group_name(i.get_option_group_name().clone())
        .set_vpc_security_group_ids(i.get_vpc_security_group_ids().clone())
        .set_kms_key_id(i.get_kms_key_id().clone())
        .set_enable_iam_database_authentication(*i.get_enable_iam_database_authentication())
        .set_backtrack_window(*i.get_backtrack_window())
        .set_enable_cloudwatch_logs_exports(i.get_enable_cloudwatch_logs_exports().clone())
        .set_db_cluster_parameter_group_name(i.get_db_cluster_parameter_group_name().clone())
        .set_deletion_protection(*i.get_deletion_protection())
        .set_copy_tags_to_snapshot(*i.get_copy_tags_to_snapshot())
        .set_domain(i.get_domain().clone())
        .set_domain_iam_role_name(i.get_domain_iam_role_name().clone())
        .set_scaling_configuration(i.get_scaling_configuration().clone())
        .set_engine_mode(i.get_engine_mode().clone())
        .set_db_cluster_instance_class(i.get_db_cluster_instance_class().clone())
        .set_storage_type(i.get_storage_type().clone())
        .set_publicly_accessible(*i.get_publicly_accessible())
        .set_iops(*i.get_iops())
        .set_network_type(i.get_network_type().clone())
        .set_serverless_v2_scaling_configuration(i.get_serverless_v2_scaling_configuration().clone())
        .set_rds_custom_cluster_configuration(i.get_rds_custom_cluster_configuration().clone())
        .set_monitoring_interval(*i.get_monitoring_interval())
        .set_monitoring_role_arn(i.get_monitoring_role_arn().clone())
        .set_enable_performance_insights(*i.get_enable_performance_insights())
        .set_performance_insights_kms_key_id(i.get_performance_insights_kms_key_id().clone())
        .set_performance_insights_retention_period(*i.get_performance_insights_retention_period())
        .set_engine_lifecycle_support(i.get_engine_lifecycle_support().clone());
    to.set_tags(i.get_tags().clone())
}

impl RdsDatabase {
    /// EarliestRestorableTime and LatestRestorableTime of the environment's cluster.
    pub(super) async fn window(&self) -> PResult<Option<(DateTime<Utc>, DateTime<Utc>)>> {
        let c = self.source().await?;
        let (Some(earliest), Some(latest)) = (c.earliest_restorable_time(), c.latest_restorable_time()) else {
            return Err(ProviderError::Other(format!(
                "cluster {} did not say its restorable window (EarliestRestorableTime, LatestRestorableTime)",
                self.cluster_id
            )));
        };
        Ok(to_chrono(earliest).zip(to_chrono(latest)))
    }

    /// RestoreDBClusterToPointInTime from the environment's cluster to `target`
    /// at `at`: a full copy, every setting the call takes, `tags` in the call.
    pub(super) async fn restore_at(&self, at: DateTime<Utc>, target: &str, tags: &Tags) -> PResult<()> {
        let source = self.source().await?;
        if self.cluster(target).await?.is_some() {
            return Ok(());
        }
        let template = settings::restore_settings(self.client.restore_db_cluster_from_snapshot(), &source);
        let mut req = carry(
            &template,
            self.client
                .restore_db_cluster_to_point_in_time()
                .db_cluster_identifier(target)
                .source_db_cluster_identifier(&self.cluster_id)
                .restore_type("full-copy")
                .restore_to_time(to_aws(at)),
        );
        for (k, v) in tags {
            req = req.tags(aws_sdk_rds::types::Tag::builder().key(k).value(v).build());
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_db_cluster_already_exists_fault()) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_invalid_restore_fault()) => {
                Err(ProviderError::Rejected(classify("RestoreDBClusterToPointInTime", e).to_string()))
            }
            Err(e) => Err(classify("RestoreDBClusterToPointInTime", e)),
        }
    }

    /// StopDBCluster on `id`, only if it carries run `run_id`'s tag (the
    /// policy allows the action on nothing else).
    pub(super) async fn stop_tagged(&self, id: &str, run_id: &str) -> PResult<Stopped> {
        let Some(c) = self.cluster(id).await? else {
            return Ok(Stopped::NotPossible(format!("cluster {id} does not exist")));
        };
        if self.run_of_cluster(&c).await?.as_deref() != Some(run_id) {
            return Ok(Stopped::NotPossible(format!("cluster {id} does not carry {TAG_RUN_ID} = {run_id}")));
        }
        match c.status() {
            Some("stopped") => return Ok(Stopped::Already),
            Some("stopping") => return Ok(Stopped::Stopped(RESTARTS_AFTER.into())),
            _ => {}
        }
        match self.client.stop_db_cluster().db_cluster_identifier(id).send().await {
            Ok(_) => Ok(Stopped::Stopped(RESTARTS_AFTER.into())),
            // A cluster AWS will not stop (part of a global database, a state
            // that does not allow it): advisory, in the platform's words.
            Err(e) if e.as_service_error().is_some_and(|e| e.is_invalid_db_cluster_state_fault()) => {
                Ok(Stopped::NotPossible(classify("StopDBCluster", e).to_string()))
            }
            Err(e) => Err(classify("StopDBCluster", e)),
        }
    }

    /// The cluster endpoint of `id` and the endpoint of its writer instance.
    pub(super) async fn endpoints_of_writer(&self, id: &str) -> PResult<Option<(String, String)>> {
        let Some(c) = self.cluster(id).await? else { return Ok(None) };
        let Some(endpoint) = c.endpoint() else { return Ok(None) };
        let Some(writer) = c.db_cluster_members().iter().find(|m| m.is_cluster_writer() == Some(true)) else {
            return Ok(None);
        };
        let Some(writer_id) = writer.db_instance_identifier() else { return Ok(None) };
        let instances = self.instances_of(id).await?;
        let host = instances
            .iter()
            .find(|i| i.db_instance_identifier() == Some(writer_id))
            .and_then(|i| i.endpoint())
            .and_then(|e| e.address());
        Ok(host.map(|h| (endpoint.to_string(), h.to_string())))
    }
}
