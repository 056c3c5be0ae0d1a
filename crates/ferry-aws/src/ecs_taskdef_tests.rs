//! The copy against DescribeTaskDefinition answers on the wire (JSON bodies), so
//! what the SDK's types would drop is in them too.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionInput;
use aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionInput;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use serde_json::{Value, json};

use super::*;

const ORIGINAL: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/app-migrate:7";
const NEW: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/app-migrate:8";
const RUN: &str = "prod-20261121T120000Z-abcd";
const IMAGE: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The members of `TaskDefinition` in botocore's ecs 2014-11-13 service model
/// (botocore 1.44.5), in the model's order.
const API_MODEL: &[&str] = &[
    "taskDefinitionArn",
    "containerDefinitions",
    "family",
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "revision",
    "volumes",
    "status",
    "requiresAttributes",
    "placementConstraints",
    "compatibilities",
    "runtimePlatform",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "inferenceAccelerators",
    "pidMode",
    "ipcMode",
    "proxyConfiguration",
    "registeredAt",
    "deregisteredAt",
    "deleteRequestedAt",
    "registeredBy",
    "ephemeralStorage",
    "enableFaultInjection",
    "trustedExecutionConfiguration",
];

fn target() -> EcsTarget {
    EcsTarget {
        cluster: "app-migrations".into(),
        task_definition: ORIGINAL.into(),
        subnets: vec!["subnet-a".into()],
        security_groups: vec!["sg-1".into()],
        assign_public_ip: false,
        container: "migrate".into(),
    }
}

/// The migration container, setting most fields of the model's ContainerDefinition.
fn migrate_container() -> Value {
    serde_json::from_str(
        r#"{
        "name": "migrate",
        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1.0.0",
        "repositoryCredentials": {"credentialsParameter": "arn:aws:secretsmanager:us-east-1:123456789012:secret:reg"},
        "cpu": 256, "memory": 512, "memoryReservation": 256,
        "links": ["envoy"],
        "portMappings": [{"containerPort": 8080, "hostPort": 8080, "protocol": "tcp", "name": "http", "appProtocol": "http"}],
        "essential": true,
        "restartPolicy": {"enabled": true, "ignoredExitCodes": [0], "restartAttemptPeriod": 60},
        "entryPoint": ["/entry.sh"], "command": ["alembic", "upgrade", "head"],
        "environment": [{"name": "MODE", "value": "migrate"}],
        "environmentFiles": [{"value": "arn:aws:s3:::cfg/app.env", "type": "s3"}],
        "mountPoints": [{"sourceVolume": "data", "containerPath": "/data", "readOnly": false}],
        "volumesFrom": [{"sourceContainer": "envoy", "readOnly": true}],
        "linuxParameters": {"initProcessEnabled": true, "capabilities": {"add": ["SYS_PTRACE"], "drop": ["NET_RAW"]}},
        "secrets": [{"name": "DATABASE_URL", "valueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db"}],
        "dependsOn": [{"containerName": "envoy", "condition": "HEALTHY"}],
        "startTimeout": 60, "stopTimeout": 30, "versionConsistency": "disabled",
        "hostname": "migrate", "user": "1000", "workingDirectory": "/app",
        "disableNetworking": false, "privileged": false, "readonlyRootFilesystem": true,
        "dnsServers": ["10.0.0.2"], "dnsSearchDomains": ["internal"],
        "extraHosts": [{"hostname": "db", "ipAddress": "10.0.0.9"}],
        "dockerSecurityOptions": ["no-new-privileges"], "interactive": false, "pseudoTerminal": false,
        "dockerLabels": {"team": "data"},
        "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 4096}],
        "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ferry/app/migrations", "awslogs-stream-prefix": "ferry"}, "secretOptions": []},
        "healthCheck": {"command": ["CMD", "true"], "interval": 30, "timeout": 5, "retries": 3, "startPeriod": 10},
        "systemControls": [{"namespace": "net.core.somaxconn", "value": "1024"}],
        "resourceRequirements": [{"value": "1", "type": "GPU"}],
        "firelensConfiguration": {"type": "fluentbit", "options": {"enable-ecs-log-metadata": "true"}},
        "credentialSpecs": ["credentialspecdomainless:arn:aws:s3:::spec/x.json"]
    }"#,
    )
    .unwrap()
}

/// A task definition that sets every field of the model this build can send,
/// with two containers that set most of theirs.
fn original() -> Value {
    json!({
        "taskDefinitionArn": ORIGINAL,
        "containerDefinitions": [
            migrate_container(),
            {"name": "envoy", "image": "public.ecr.aws/appmesh/aws-appmesh-envoy:v1.29", "essential": false, "cpu": 0}
        ],
        "family": "app-migrate",
        "taskRoleArn": "arn:aws:iam::123456789012:role/app-migrate-task-us-east-1",
        "executionRoleArn": "arn:aws:iam::123456789012:role/app-migrate-exec-us-east-1",
        "networkMode": "awsvpc",
        "revision": 7,
        "volumes": [{"name": "data", "efsVolumeConfiguration": {"fileSystemId": "fs-1", "rootDirectory": "/", "transitEncryption": "ENABLED"}}],
        "status": "ACTIVE",
        "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.logging-driver.awslogs"}, {"name": "ecs.capability.execution-role-awslogs"}],
        "placementConstraints": [{"type": "memberOf", "expression": "attribute:ecs.availability-zone in [us-east-1a]"}],
        "compatibilities": ["EC2", "FARGATE"],
        "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "512",
        "memory": "1024",
        "inferenceAccelerators": [{"deviceName": "d1", "deviceType": "eia2.medium"}],
        "pidMode": "task",
        "ipcMode": "none",
        "proxyConfiguration": {"type": "APPMESH", "containerName": "envoy", "properties": [{"name": "IgnoredUID", "value": "1337"}]},
        "registeredAt": 1_763_700_000.5,
        "deregisteredAt": 1_763_800_000,
        "deleteRequestedAt": 1_763_900_000,
        "registeredBy": "arn:aws:iam::123456789012:role/deployer",
        "ephemeralStorage": {"sizeInGiB": 30},
        "enableFaultInjection": true
    })
}

fn original_tags() -> Value {
    json!([{"key": "team", "value": "data"}, {"key": "ferry:run-id", "value": "an-older-run"}])
}

/// ECS's answer for the revision ferry registered: the request's fields, its own read-only ones.
fn registered(request: &Value) -> Value {
    let mut v = request.clone();
    let o = v.as_object_mut().unwrap();
    o.remove("tags");
    for (k, x) in [
        ("taskDefinitionArn", json!(NEW)),
        ("revision", json!(8)),
        ("status", json!("ACTIVE")),
        ("compatibilities", json!(["EC2", "FARGATE"])),
        ("registeredAt", json!(1_763_999_999)),
        ("registeredBy", json!("arn:aws:iam::123456789012:role/ferry")),
    ] {
        o.insert(k.into(), x);
    }
    v
}

fn answer(body: Value) -> aws_smithy_runtime_api::http::Response {
    aws_smithy_runtime_api::http::Response::new(
        aws_smithy_runtime_api::http::StatusCode::try_from(200).unwrap(),
        aws_smithy_types::body::SdkBody::from(body.to_string()),
    )
}

fn describe_rule(name: &'static str, td: Value, tags: Value) -> Rule {
    mock!(Client::describe_task_definition)
        .match_requests(move |r: &DescribeTaskDefinitionInput| {
            r.task_definition() == Some(name) && r.include() == [TaskDefinitionField::Tags]
        })
        .then_http_response(move || answer(json!({"taskDefinition": td.clone(), "tags": tags.clone()})))
}

/// The fields of a value's pretty `Debug` form, top level only: name → text.
fn debug_fields(pretty: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in pretty.lines().skip(1) {
        if line == "}" {
            break;
        }
        let field = line.strip_prefix("    ").filter(|l| !l.starts_with(' ')).and_then(|l| l.split_once(": "));
        match field {
            Some((name, value)) => {
                out.insert(name.to_string(), value.to_string());
                current = Some(name.to_string());
            }
            None => {
                if let Some(c) = &current {
                    out.get_mut(c).unwrap().push_str(line);
                }
            }
        }
    }
    out
}

fn snake(wire: &str) -> String {
    wire.chars().fold(String::new(), |mut s, c| {
        if c.is_ascii_uppercase() {
            s.push('_');
        }
        s.push(c.to_ascii_lowercase());
        s
    })
}

/// What ECS stores for a faithful copy: the original's carried fields with the
/// new image, and the tags that were sent.
fn stored_copy(sent: &RegisterTaskDefinitionInput) -> Value {
    let containers: Vec<Value> = original()["containerDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let mut c = c.clone();
            if c["name"] == "migrate" {
                c["image"] = json!(IMAGE);
            }
            c
        })
        .collect();
    let mut v = original();
    let o = v.as_object_mut().unwrap();
    o.retain(|k, _| FIELDS.iter().any(|(n, f)| n == k && *f == Carried));
    o.insert("containerDefinitions".into(), json!(containers));
    let tags: Vec<Value> = sent.tags().iter().map(|t| json!({"key": t.key(), "value": t.value()})).collect();
    o.insert("tags".into(), json!(tags));
    v
}

/// Assert `a.f == b.f` for each field; the names compared.
macro_rules! same_fields {
    ($a:ident, $b:ident; $($f:ident),* $(,)?) => {{
        $(assert_eq!($a.$f, $b.$f, concat!(stringify!($f), " must be sent as read"));)*
        vec![$(stringify!($f).to_string()),*]
    }};
}

#[tokio::test]
async fn every_field_of_the_api_model_is_carried_or_deliberately_dropped() {
    // The table is the model: every member of TaskDefinition, nothing else.
    let table: Vec<&str> = FIELDS.iter().map(|(n, _)| *n).collect();
    assert_eq!(table, API_MODEL, "FIELDS must list the model's TaskDefinition members in order");
    for (name, f) in FIELDS {
        if let Dropped(why) | Refused(why) = f {
            assert!(!why.is_empty(), "{name} needs its reason");
        }
    }

    let sent: Arc<Mutex<Option<RegisterTaskDefinitionInput>>> = Arc::default();
    let capture = sent.clone();
    let register = mock!(Client::register_task_definition)
        .match_requests(move |r| {
            *capture.lock().unwrap() = Some(r.clone());
            true
        })
        .then_http_response(|| answer(json!({"taskDefinition": {"taskDefinitionArn": NEW}})));
    let sent_for_answer = sent.clone();
    let verify = mock!(Client::describe_task_definition)
        .match_requests(|r| r.task_definition() == Some(NEW))
        .then_http_response(move || {
            let request = stored_copy(sent_for_answer.lock().unwrap().as_ref().expect("registered first"));
            answer(json!({"taskDefinition": registered(&request), "tags": request["tags"].clone()}))
        });
    let rules = [
        describe_rule(ORIGINAL, original(), original_tags()),
        describe_rule("app-migrate", original(), original_tags()),
        register,
        verify,
    ];
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, &rules);
    let arn = revision_with_image(&client, &target(), RUN, IMAGE).await.unwrap();
    assert_eq!(arn, NEW);
    let sent = sent.lock().unwrap().clone().expect("RegisterTaskDefinition was called");

    // What the SDK read from the answer, field by field, against what was sent.
    let typed: TaskDefinition = {
        let body = json!({"taskDefinition": original()}).to_string();
        let out = mock!(Client::describe_task_definition)
            .then_http_response(move || answer(serde_json::from_str(&body).unwrap()));
        let c = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&out]);
        c.describe_task_definition().task_definition("x").send().await.unwrap().task_definition().cloned().unwrap()
    };
    let read = debug_fields(&format!("{typed:#?}"));
    let mut expected = typed.clone();
    for c in expected.container_definitions.iter_mut().flatten() {
        if c.name() == Some("migrate") {
            c.image = Some(IMAGE.into());
        }
    }
    // Field by field, by value (Debug text would depend on HashMap order).
    let compared = same_fields!(sent, expected;
        container_definitions, family, task_role_arn, execution_role_arn, network_mode, volumes,
        placement_constraints, runtime_platform, requires_compatibilities, cpu, memory,
        inference_accelerators, pid_mode, ipc_mode, proxy_configuration, ephemeral_storage,
        enable_fault_injection);
    let carried: Vec<String> = FIELDS.iter().filter(|(_, f)| *f == Carried).map(|(n, _)| snake(n)).collect();
    let mut sorted = compared.clone();
    sorted.sort();
    let mut carried_sorted = carried.clone();
    carried_sorted.sort();
    assert_eq!(sorted, carried_sorted, "every carried field is compared, and only those");
    let request = debug_fields(&format!("{sent:#?}"));
    let sdk_fields: Vec<String> = read.keys().cloned().collect();
    for field in &sdk_fields {
        let entry = FIELDS.iter().find(|(n, _)| snake(n) == *field);
        assert!(entry.is_some(), "the SDK's TaskDefinition has {field}, which FIELDS does not list");
    }
    for (name, f) in FIELDS {
        let field = snake(name);
        match f {
            Carried => {
                assert!(
                    read.get(&field).is_some_and(|v| v != "None" && v != "false"),
                    "the test answer must set {name}"
                );
                assert!(request.contains_key(&field), "{name} must be sent");
            }
            Dropped(_) => {
                assert!(!request.contains_key(&field), "{name} is read-only and must not be sent");
                if sdk_fields.contains(&field) {
                    assert!(read[&field] != "None" && read[&field] != "0", "the test answer must set {name}");
                }
            }
            // The SDK cannot read it, so cannot send it: the next test refuses it.
            Refused(_) => assert!(!sdk_fields.contains(&field), "{name} is known to the SDK: carry it"),
        }
    }
    let extra: Vec<&String> = request
        .keys()
        .filter(|k| *k != "tags" && !FIELDS.iter().any(|(n, f)| snake(n) == **k && *f == Carried))
        .collect();
    assert!(extra.is_empty(), "the request sets fields that are not copies: {extra:?}");
    let tags: Vec<(&str, &str)> =
        sent.tags().iter().map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())).collect();
    assert_eq!(
        tags,
        [("team", "data"), ("ferry:run-id", RUN)],
        "the original's tags, this run's id replacing an older one"
    );
}

#[tokio::test]
async fn a_field_this_build_cannot_send_stops_the_copy_before_anything_is_registered() {
    for (field, value) in [
        ("trustedExecutionConfiguration", json!({"isolationMode": "ISOLATED_SANDBOX"})),
        ("someFieldFromTheFuture", json!("x")),
    ] {
        let mut td = original();
        td[field] = value;
        let register = mock!(Client::register_task_definition).then_http_response(|| answer(json!({})));
        let rules = [describe_rule(ORIGINAL, td, original_tags()), register];
        let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, &rules);
        let err = revision_with_image(&client, &target(), RUN, IMAGE).await.unwrap_err();
        assert!(matches!(err, ProviderError::Rejected(_)), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(field) && text.contains("none was registered"), "{text}");
        assert_eq!(rules[1].num_calls(), 0, "{field}: nothing registered");
    }
}

#[tokio::test]
async fn a_resumed_run_uses_the_revision_it_registered_before() {
    let mut ours = original();
    ours["taskDefinitionArn"] = json!(NEW);
    ours["revision"] = json!(8);
    ours["containerDefinitions"][0]["image"] = json!(IMAGE);
    let our_tags = json!([{"key": "team", "value": "data"}, {"key": "ferry:run-id", "value": RUN}]);
    let register = mock!(Client::register_task_definition).then_http_response(|| answer(json!({})));
    let rules = [
        describe_rule(ORIGINAL, original(), original_tags()),
        describe_rule("app-migrate", ours.clone(), our_tags.clone()),
        describe_rule(NEW, ours, our_tags),
        register,
    ];
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, &rules);
    assert_eq!(revision_with_image(&client, &target(), RUN, IMAGE).await.unwrap(), NEW);
    assert_eq!(rules[3].num_calls(), 0, "not registered twice");
}

#[tokio::test]
async fn a_revision_that_lost_anything_but_the_image_is_not_run() {
    let mut lost = original();
    lost["taskDefinitionArn"] = json!(NEW);
    lost["containerDefinitions"][0]["image"] = json!(IMAGE);
    lost["containerDefinitions"][0].as_object_mut().unwrap().remove("secrets");
    lost.as_object_mut().unwrap().remove("ephemeralStorage");
    let register = mock!(Client::register_task_definition)
        .then_http_response(|| answer(json!({"taskDefinition": {"taskDefinitionArn": NEW}})));
    let rules = [
        describe_rule(ORIGINAL, original(), original_tags()),
        describe_rule("app-migrate", original(), original_tags()),
        describe_rule(NEW, lost, json!([])),
        register,
    ];
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, &rules);
    let err = revision_with_image(&client, &target(), RUN, IMAGE).await.unwrap_err().to_string();
    assert!(err.contains(NEW) && err.contains("ferry does not run it"), "{err}");
    assert!(err.contains("containerDefinitions[migrate].secrets") && err.contains("ephemeralStorage"), "{err}");
}

#[tokio::test]
async fn the_migration_container_must_exist() {
    let mut t = target();
    t.container = "web".into();
    let rules = [
        describe_rule(ORIGINAL, original(), original_tags()),
        describe_rule("app-migrate", original(), original_tags()),
    ];
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, &rules);
    let err = revision_with_image(&client, &t, RUN, IMAGE).await.unwrap_err().to_string();
    assert!(err.contains("has no container \"web\""), "{err}");
}

#[tokio::test]
async fn the_task_runs_the_prepared_revision() {
    use aws_sdk_ecs::operation::run_task::RunTaskOutput;
    use ferry_core::provider::{MigrationRunner, TaskSpec};
    let logs = describe_rule(ORIGINAL, original(), original_tags());
    let plain =
        mock!(Client::describe_task_definition).then_http_response(|| answer(json!({"taskDefinition": original()})));
    let run = mock!(Client::run_task).match_requests(|r| r.task_definition() == Some(NEW)).then_output(|| {
        RunTaskOutput::builder()
            .tasks(aws_sdk_ecs::types::Task::builder().task_arn("arn:aws:ecs:us-east-1:1:task/app/0123").build())
            .build()
    });
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&logs, &plain, &run]);
    let spec = TaskSpec {
        run_id: RUN.into(),
        env: "prod".into(),
        command: vec!["alembic".into(), "upgrade".into(), "head".into()],
        environment: Default::default(),
        image: Some(IMAGE.into()),
        task_definition: Some(NEW.into()),
        attempt: 1,
    };
    super::super::ecs::EcsRunner::new(client, target()).start(&spec).await.unwrap();
    assert_eq!(run.num_calls(), 1, "RunTask named the new revision");
}
