//! `--image` on ECS: a new revision of the migration task definition in which
//! only the migration container's image differs.
//!
//! DescribeTaskDefinition (with `include=TAGS`) reads the configured revision;
//! every field RegisterTaskDefinition takes is sent back as read, the read-only
//! ones it rejects are left out ([`FIELDS`] says which is which, and why), and
//! the tags are the original's plus `ferry:run-id`. A field this build cannot
//! send (the API is newer than the SDK ferry is built with) stops the copy
//! before anything is registered. After registering, the new revision is read
//! back and compared with the original: any difference but the image (a nested
//! field lost on the way, say) and ferry refuses to run it.
//!
//! Idempotent per run: before registering, the family's latest revision is
//! looked at; if it carries this run's `ferry:run-id`, an earlier attempt of the
//! run registered it, and it is used.

use std::sync::{Arc, Mutex};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder;
use aws_sdk_ecs::types::{Tag, TaskDefinition, TaskDefinitionField};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::AfterDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde_json::Value;

use super::classify;
use super::ecs::EcsTarget;
use ferry_core::provider::{PResult, ProviderError, TAG_RUN_ID};

/// What a copy does with one field of a task definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Sent to RegisterTaskDefinition as read.
    Carried,
    /// Read-only: DescribeTaskDefinition returns it, RegisterTaskDefinition
    /// does not take it; ECS sets it for the new revision. The reason.
    Dropped(&'static str),
    /// RegisterTaskDefinition takes it, but this build's SDK cannot send it: a
    /// task definition that sets it is not copied at all (a copy without it
    /// would run differently). The reason.
    Refused(&'static str),
}

use Field::{Carried, Dropped, Refused};

/// Every field of `TaskDefinition` in the ECS API model, by its wire name.
/// A field DescribeTaskDefinition returns that is not here stops the copy.
pub const FIELDS: &[(&str, Field)] = &[
    ("taskDefinitionArn", Dropped("read-only: the new revision gets its own ARN")),
    // Carried with the migration container's `image` replaced.
    ("containerDefinitions", Carried),
    ("family", Carried),
    ("taskRoleArn", Carried),
    ("executionRoleArn", Carried),
    ("networkMode", Carried),
    ("revision", Dropped("read-only: ECS numbers the new revision")),
    ("volumes", Carried),
    ("status", Dropped("read-only: a newly registered revision is ACTIVE")),
    ("requiresAttributes", Dropped("read-only: ECS derives them from the definition")),
    ("placementConstraints", Carried),
    ("compatibilities", Dropped("read-only: ECS derives them from requiresCompatibilities")),
    ("runtimePlatform", Carried),
    ("requiresCompatibilities", Carried),
    ("cpu", Carried),
    ("memory", Carried),
    ("inferenceAccelerators", Carried),
    ("pidMode", Carried),
    ("ipcMode", Carried),
    ("proxyConfiguration", Carried),
    ("registeredAt", Dropped("read-only: when ECS registered the revision")),
    ("deregisteredAt", Dropped("read-only: when the revision was deregistered")),
    ("deleteRequestedAt", Dropped("read-only: when deletion of the revision was requested")),
    ("registeredBy", Dropped("read-only: the principal that registered the revision")),
    ("ephemeralStorage", Carried),
    ("enableFaultInjection", Carried),
    ("trustedExecutionConfiguration", Refused("the AWS SDK this ferry is built with cannot send it yet")),
];

/// A revision of `target`'s task definition whose migration container runs
/// `image`, tagged with `run_id`: the one an earlier attempt of the run
/// registered, or a new one. Returns its ARN.
pub async fn revision_with_image(client: &Client, target: &EcsTarget, run_id: &str, image: &str) -> PResult<String> {
    let original = describe(client, &target.task_definition).await?;
    check_fields(&original.raw, &target.task_definition)?;
    let family = original.typed.family().unwrap_or_default().to_string();
    // An earlier attempt's revision: the configured one itself when it names only
    // the family, or the family's latest.
    let earlier = if is_tagged_with(&original.tags, run_id) {
        Some(original.arn().to_string())
    } else {
        let latest = describe(client, &family).await?;
        is_tagged_with(&latest.tags, run_id).then(|| latest.arn().to_string())
    };
    let arn = if let Some(arn) = earlier {
        arn
    } else {
        let request = copy_request(client.register_task_definition(), &original, &target.container, image, run_id)?;
        let out = request.send().await.map_err(|e| classify("RegisterTaskDefinition", e))?;
        out.task_definition()
            .and_then(|t| t.task_definition_arn())
            .ok_or_else(|| ProviderError::Other("RegisterTaskDefinition returned no task definition ARN".into()))?
            .to_string()
    };
    let registered = describe(client, &arn).await?;
    let differences = differences(&original.raw, &registered.raw, &target.container, image);
    if !differences.is_empty() {
        return Err(ProviderError::Rejected(format!(
            "the registered revision {arn} differs from {} in more than the image ({}); ferry does not run it",
            original.arn(),
            differences.join(", ")
        )));
    }
    Ok(arn)
}

/// One DescribeTaskDefinition answer: as the SDK read it, and as sent (JSON).
struct Described {
    typed: TaskDefinition,
    tags: Vec<Tag>,
    raw: Value,
}

impl Described {
    fn arn(&self) -> &str {
        self.typed.task_definition_arn().unwrap_or_default()
    }
}

async fn describe(client: &Client, task_definition: &str) -> PResult<Described> {
    let body = RawBody::default();
    let out = client
        .describe_task_definition()
        .task_definition(task_definition)
        .include(TaskDefinitionField::Tags)
        .customize()
        .interceptor(body.clone())
        .send()
        .await
        .map_err(|e| classify("DescribeTaskDefinition", e))?;
    let typed = out
        .task_definition()
        .cloned()
        .ok_or_else(|| ProviderError::NotFound(format!("task definition {task_definition}")))?;
    let raw = body
        .json()
        .and_then(|mut v| v.get_mut("taskDefinition").map(Value::take))
        .filter(Value::is_object)
        .ok_or_else(|| {
            ProviderError::Other(format!("DescribeTaskDefinition of {task_definition}: unreadable answer"))
        })?;
    Ok(Described { typed, tags: out.tags().to_vec(), raw })
}

/// Refuse a task definition with a field this build cannot copy: one it does
/// not know (the API is newer), or one it knows but cannot send.
fn check_fields(raw: &Value, task_definition: &str) -> PResult<()> {
    let set: Vec<&String> =
        raw.as_object().map(|o| o.iter().filter(|(_, v)| !v.is_null()).map(|(k, _)| k).collect()).unwrap_or_default();
    let mut refused = Vec::new();
    for key in set {
        match FIELDS.iter().find(|(name, _)| name == key) {
            None => refused.push(format!("{key} (a field this ferry does not know)")),
            Some((_, Refused(why))) => refused.push(format!("{key} ({why})")),
            Some(_) => {}
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    Err(ProviderError::Rejected(format!(
        "task definition {task_definition} sets {}: a new revision without it would run differently, so none was \
         registered; upgrade ferry, or register the revision yourself and point migration.task_definition at it",
        refused.join(", ")
    )))
}

fn is_tagged_with(tags: &[Tag], run_id: &str) -> bool {
    tags.iter().any(|t| t.key() == Some(TAG_RUN_ID) && t.value() == Some(run_id))
}

/// RegisterTaskDefinition with every [`Field::Carried`] field of the original,
/// the migration container's image replaced, and the original's tags plus the run's.
fn copy_request(
    request: RegisterTaskDefinitionFluentBuilder,
    original: &Described,
    container: &str,
    image: &str,
    run_id: &str,
) -> PResult<RegisterTaskDefinitionFluentBuilder> {
    let td = &original.typed;
    let mut containers = td.container_definitions().to_vec();
    let migrate = containers.iter_mut().find(|c| c.name() == Some(container)).ok_or_else(|| {
        ProviderError::Rejected(format!("task definition {} has no container {container:?}", original.arn()))
    })?;
    migrate.image = Some(image.to_string());
    let mut tags: Vec<Tag> = original.tags.iter().filter(|t| t.key() != Some(TAG_RUN_ID)).cloned().collect();
    tags.push(Tag::builder().key(TAG_RUN_ID).value(run_id).build());
    Ok(request
        .set_container_definitions(Some(containers))
        .set_family(td.family.clone())
        .set_task_role_arn(td.task_role_arn.clone())
        .set_execution_role_arn(td.execution_role_arn.clone())
        .set_network_mode(td.network_mode.clone())
        .set_volumes(td.volumes.clone())
        .set_placement_constraints(td.placement_constraints.clone())
        .set_runtime_platform(td.runtime_platform.clone())
        .set_requires_compatibilities(td.requires_compatibilities.clone())
        .set_cpu(td.cpu.clone())
        .set_memory(td.memory.clone())
        .set_inference_accelerators(td.inference_accelerators.clone())
        .set_pid_mode(td.pid_mode.clone())
        .set_ipc_mode(td.ipc_mode.clone())
        .set_proxy_configuration(td.proxy_configuration.clone())
        .set_ephemeral_storage(td.ephemeral_storage.clone())
        .set_enable_fault_injection(td.enable_fault_injection)
        .set_tags(Some(tags)))
}

/// Where `registered` differs from `original` with the migration container's
/// image set to `image`, ignoring the read-only fields: `field` or
/// `containerDefinitions[name].field`.
fn differences(original: &Value, registered: &Value, container: &str, image: &str) -> Vec<String> {
    let comparable = |v: &Value, set_image: bool| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.retain(|k, x| !x.is_null() && !FIELDS.iter().any(|(n, f)| n == k && matches!(f, Dropped(_))));
        }
        if set_image && let Some(c) = containers_mut(&mut v).into_iter().find(|c| c["name"] == container) {
            c["image"] = Value::String(image.to_string());
        }
        v
    };
    let (want, got) = (comparable(original, true), comparable(registered, false));
    let (Some(want), Some(got)) = (want.as_object(), got.as_object()) else {
        return vec!["the whole definition".into()];
    };
    let mut out = Vec::new();
    for key in want.keys().chain(got.keys().filter(|k| !want.contains_key(*k))) {
        if want.get(key) == got.get(key) {
            continue;
        }
        if key == "containerDefinitions" {
            out.extend(container_differences(want.get(key), got.get(key)));
        } else {
            out.push(key.clone());
        }
    }
    out
}

fn containers_mut(v: &mut Value) -> Vec<&mut Value> {
    match v.get_mut("containerDefinitions").and_then(Value::as_array_mut) {
        Some(list) => list.iter_mut().collect(),
        None => Vec::new(),
    }
}

fn container_differences(want: Option<&Value>, got: Option<&Value>) -> Vec<String> {
    let list = |v: Option<&Value>| v.and_then(Value::as_array).cloned().unwrap_or_default();
    let (want, got) = (list(want), list(got));
    if want.len() != got.len() {
        return vec![format!("containerDefinitions ({} containers, not {})", got.len(), want.len())];
    }
    let mut out = Vec::new();
    for (w, g) in want.iter().zip(&got) {
        let name = w["name"].as_str().unwrap_or("?");
        let (Some(wo), Some(go)) = (w.as_object(), g.as_object()) else { continue };
        for key in wo.keys().chain(go.keys().filter(|k| !wo.contains_key(*k))) {
            if wo.get(key) != go.get(key) {
                out.push(format!("containerDefinitions[{name}].{key}"));
            }
        }
    }
    out
}

/// Keeps the body of the answer it is attached to, as sent: the SDK's types
/// drop what they do not know, and the copy must know what it would lose.
#[derive(Debug, Clone, Default)]
struct RawBody(Arc<Mutex<Option<Vec<u8>>>>);

impl RawBody {
    fn json(&self) -> Option<Value> {
        let body = self.0.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        serde_json::from_slice(&body).ok()
    }
}

impl Intercept for RawBody {
    fn name(&self) -> &'static str {
        "ferry::RawBody"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(bytes) = context.response().body().bytes() {
            *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(bytes.to_vec());
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "ecs_taskdef_tests.rs"]
mod tests;
