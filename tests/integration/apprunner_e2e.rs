//! App Runner end to end: the real `ferry` binary and the AWS SDK against the
//! emulator (tests/emulator/), whose App Runner service runs a real app
//! (tests/fixtures/alembic/serve.py) that migrates on start-up under an
//! advisory lock, over a real PostgreSQL database standing for the cluster.
//!
//! Each test asserts what an operator relies on: the service is paused for the
//! whole restore and runs again after it, it points at the right database,
//! its health check is green, and every row from before the deploy is there.
//!
//! Needs FERRY_EMULATOR_PYTHON and FERRY_TEST_PG_URL (scripts/test sets both).

use crate::common::emulator::{Emulator, strs};
use serde_json::json;

const TIMEOUTS: &str = "timeouts = { snapshot = \"2m\", migration = \"2m\", restore = \"3m\", service = \"1m\" }";

/// An environment whose migration is a deployment of the App Runner service.
fn apprunner_toml(emu: &Emulator, s: &serde_json::Value, extra: &str) -> String {
    format!(
        "project = \"{project}\"\n[env.stage]\nregion = \"us-east-1\"\ndatabase = {{ cluster = \"{cluster}\" }}\n{TIMEOUTS}\n\
         migration = {{ runner = \"apprunner\" }}\nservice = {{ apprunner_arn = \"{arn}\" }}\n\
         health = {{ url = \"{health}\", timeout = \"30s\" }}\n{extra}\n",
        cluster = s["cluster"].as_str().unwrap(),
        arn = s["service_arn"].as_str().unwrap(),
        health = emu.health_url(s),
        project = s["name"].as_str().unwrap(),
    )
}

fn orders(emu: &Emulator, cluster: &str) -> serde_json::Value {
    emu.query(cluster, "SELECT id, customer_id, total_cents FROM orders ORDER BY id")
}

fn revision(emu: &Emulator, cluster: &str) -> serde_json::Value {
    emu.query(cluster, "SELECT version_num FROM alembic_version")
}

/// The statuses the service went through after the first `from` of them.
fn statuses_since(emu: &Emulator, s: &serde_json::Value, from: usize) -> Vec<String> {
    emu.service_history(s)[from..].to_vec()
}

#[test]
fn a_failed_ecs_migration_pauses_the_service_for_the_restore_keeps_its_endpoint_and_ends_healthy() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(true);
    let cluster = s["cluster"].as_str().unwrap();
    let cmd = emu.alembic();
    let health = format!("health = {{ url = \"{}\", timeout = \"30s\" }}", emu.health_url(&s));
    let p = emu.project(&s, &strs(&cmd), &health);
    p.failing_migration();
    let before = orders(&emu, cluster);
    let source_before = emu.service(&s)["source"].clone();
    let seen = emu.service_history(&s).len();

    let r = p.ferry(&["deploy", "stage", "--output", "json"]);
    assert_eq!(r.code, 4, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["outcome"], "restored");

    // Paused (and waited for) before the restore, running again after it.
    assert_eq!(statuses_since(&emu, &s, seen), ["OPERATION_IN_PROGRESS", "PAUSED", "OPERATION_IN_PROGRESS", "RUNNING"]);
    let paused = r.stderr.find("pausing the App Runner service").unwrap();
    let restoring = r.stderr.find(&format!("restoring {}", rec["snapshot"]["id"].as_str().unwrap())).unwrap();
    let resumed = r.stderr.find("resuming the App Runner service").unwrap();
    assert!(paused < restoring && restoring < resumed, "{}", r.stderr);
    // rename: the endpoint name stays, so the service's configuration is untouched.
    assert_eq!(emu.service(&s)["source"], source_before);
    assert_eq!(orders(&emu, cluster), before);
    assert_eq!(revision(&emu, cluster), json!([["0002_add_email"]]));
    // Health is green again, on the restored data, and ferry checked it.
    let (code, answer) = emu.fetch(&emu.health_url(&s));
    assert_eq!((code, &answer["database"], &answer["revision"]), (200, &json!(cluster), &json!("0002_add_email")));
    let detail = rec["steps"].as_array().unwrap().iter().find(|st| st["name"] == "restore").unwrap()["detail"].clone();
    assert!(detail.as_str().unwrap().contains("answered 200"), "{detail}");
}

#[test]
fn the_new_cluster_strategy_points_only_database_url_at_the_restored_cluster() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(true);
    let cluster = s["cluster"].as_str().unwrap();
    let cmd = emu.alembic();
    let extra = format!(
        "restore_strategy = \"new-cluster\"\nhealth = {{ url = \"{}\", timeout = \"30s\" }}",
        emu.health_url(&s)
    );
    let p = emu.project(&s, &strs(&cmd), &extra);
    p.failing_migration();
    let before = orders(&emu, cluster);
    let service_before = emu.service(&s);
    let seen = emu.service_history(&s).len();

    let r = p.ferry(&["deploy", "stage", "--output", "json"]);
    assert_eq!(r.code, 4, "{r:?}");
    let rec = r.json();
    let restored = rec["restore"]["restored_cluster"].as_str().unwrap().to_string();
    assert!(restored.starts_with(&format!("{cluster}-restored-")), "{restored}");
    let endpoint = rec["restore"]["endpoint"].as_str().unwrap();

    // Paused, updated while paused, resumed.
    assert_eq!(
        statuses_since(&emu, &s, seen),
        ["OPERATION_IN_PROGRESS", "PAUSED", "OPERATION_IN_PROGRESS", "PAUSED", "OPERATION_IN_PROGRESS", "RUNNING"]
    );
    // DATABASE_URL now names the new endpoint; every other setting is as it was.
    let after = emu.service(&s);
    let vars = "/ImageRepository/ImageConfiguration/RuntimeEnvironmentVariables";
    let url = after["source"].pointer(&format!("{vars}/DATABASE_URL")).unwrap().as_str().unwrap();
    assert_eq!(url, format!("postgresql://app@{endpoint}:5432/app"));
    let mut expected = service_before["source"].clone();
    *expected.pointer_mut(&format!("{vars}/DATABASE_URL")).unwrap() = json!(url);
    assert_eq!(after["source"], expected);
    assert_eq!(after["instance"], service_before["instance"]);
    let types: Vec<&str> = after["operations"].as_array().unwrap().iter().filter_map(|o| o["Type"].as_str()).collect();
    assert_eq!(&types[..3], ["RESUME_SERVICE", "UPDATE_SERVICE", "PAUSE_SERVICE"]);

    // The app answers from the restored cluster, which has every row; the
    // original cluster is kept as the migration left it.
    let (code, answer) = emu.fetch(&emu.health_url(&s));
    assert_eq!((code, &answer["database"]), (200, &json!(restored)), "{answer}");
    assert_eq!(orders(&emu, &restored), before);
    assert_eq!(revision(&emu, cluster), json!([["0003a_split_name_part1"]]));
}

#[test]
fn an_app_runner_deployment_that_migrates_on_start_up_is_followed_to_the_end() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup_with(true, true);
    let cluster = s["cluster"].as_str().unwrap();
    emu.push_image(&s, json!({"revision": "head"}));
    let p = emu.project_with(&s, &apprunner_toml(&emu, &s, ""));

    let plan = p.ferry(&["plan", "stage"]);
    assert!(plan.stdout.contains("start a deployment of the App Runner service"), "{plan:?}");

    let r = p.ferry(&["deploy", "stage", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rec = r.json();
    // The deployment is the run's "task"; its logs came from the service's log groups.
    let op = rec["task"]["arn"].as_str().unwrap();
    let newest = &emu.service(&s)["operations"][0];
    assert_eq!((newest["Id"].as_str(), newest["Type"].as_str()), (Some(op), Some("START_DEPLOYMENT")));
    assert!(r.stderr.contains("Running upgrade 0002_add_email -> 0003a_split_name_part1"), "{}", r.stderr);
    assert!(r.stderr.contains("app ready: serving"), "{}", r.stderr);
    assert!(r.stderr.contains(&format!("START_DEPLOYMENT operation {op} started")), "service events: {}", r.stderr);
    assert_eq!(revision(&emu, cluster), json!([["0003b_split_name_part2"]]));
    let (code, answer) = emu.fetch(&emu.health_url(&s));
    assert_eq!((code, &answer["revision"]), (200, &json!("0003b_split_name_part2")));
    assert_eq!(rec["snapshot"]["status"], "available");
    // `ferry logs` reads the same log groups again.
    let logs = p.ferry(&["logs", "stage", "--run", rec["run_id"].as_str().unwrap()]);
    assert!(logs.stdout.contains("Running upgrade 0002_add_email"), "{logs:?}");
}

#[test]
fn a_deployment_that_fails_to_migrate_is_restored_and_the_previous_image_serves_again() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup_with(true, true);
    let cluster = s["cluster"].as_str().unwrap();
    let before = orders(&emu, cluster);
    emu.push_image(&s, json!({"revision": "head", "fail": true}));
    let p = emu.project_with(&s, &apprunner_toml(&emu, &s, ""));
    let seen = emu.service_history(&s).len();

    let r = p.ferry(&["deploy", "stage", "--output", "json"]);
    assert_eq!(r.code, 4, "{r:?}");
    let rec = r.json();
    assert!(rec["error"].as_str().unwrap().contains("ROLLBACK_SUCCEEDED"), "{rec}");
    assert!(r.stderr.contains("app start-up failed"), "the app's own output was tailed: {}", r.stderr);

    // Deployment, then pause / restore / resume; the resumed service runs the
    // image deployed before (App Runner rolled the failed one back).
    assert_eq!(
        statuses_since(&emu, &s, seen),
        ["OPERATION_IN_PROGRESS", "RUNNING", "OPERATION_IN_PROGRESS", "PAUSED", "OPERATION_IN_PROGRESS", "RUNNING"]
    );
    assert_eq!(orders(&emu, cluster), before);
    assert_eq!(revision(&emu, cluster), json!([["0002_add_email"]]));
    let failed = rec["restore"]["failed_cluster"].as_str().unwrap();
    assert_eq!(revision(&emu, failed), json!([["0003a_split_name_part1"]]));
    let (code, answer) = emu.fetch(&emu.health_url(&s));
    assert_eq!((code, &answer["revision"]), (200, &json!("0002_add_email")), "{answer}");
    assert_eq!(rec["next"].as_str().unwrap(), format!("ferry logs stage --run {}", rec["run_id"].as_str().unwrap()));
}

#[test]
fn a_responders_restore_of_latest_says_what_it_will_do_and_waits_for_a_deployment_in_progress() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(true);
    let cluster = s["cluster"].as_str().unwrap();
    let before = orders(&emu, cluster);
    let cmd = emu.alembic();
    let p = emu.project(&s, &strs(&cmd), "confirm = true");

    // A good deploy takes the pre-deploy snapshot; a later manual snapshot is
    // newer but is not what `latest` means.
    let deploy = p.ferry(&["deploy", "stage", "--yes", "--output", "json"]);
    assert_eq!(deploy.code, 0, "{deploy:?}");
    let pre_deploy = deploy.json()["snapshot"]["id"].as_str().unwrap().to_string();
    let manual = p.ferry(&["snapshot", "create", "stage", "--wait", "--yes"]);
    assert_eq!(manual.code, 0, "{manual:?}");
    assert_eq!(revision(&emu, cluster), json!([["0003b_split_name_part2"]]));

    // Without --yes and without a terminal: what would happen is printed, nothing is done.
    let refused = p.ferry(&["restore", "stage", "--snapshot", "latest"]);
    assert_eq!(refused.code, 2, "{refused:?}");
    for said in [
        format!("from snapshot {pre_deploy}"),
        "pause the App Runner service: the app is down for".to_string(),
        format!("rename {cluster} to {cluster}-failed-<ts>-<run hex> (kept"),
        "resume the App Runner service".to_string(),
        "Nothing is deleted".to_string(),
    ] {
        assert!(refused.stderr.contains(&said), "missing {said:?} in:\n{}", refused.stderr);
    }
    assert_eq!(revision(&emu, cluster), json!([["0003b_split_name_part2"]]), "nothing touched");

    // Someone starts a deployment that lasts a while; the restore waits for it.
    emu.configure(json!({"service_seconds": 6}));
    let started =
        emu.scenario(&["apprunner", "--arn", s["service_arn"].as_str().unwrap(), "--call", "start_deployment"]);
    let deployment: serde_json::Value = serde_json::from_str(&started).unwrap();
    let r = p.ferry(&["restore", "stage", "--snapshot", "latest", "--yes", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["restore"]["snapshot_id"], json!(pre_deploy));
    assert!(r.stderr.contains("another App Runner operation is in progress; waiting for it to end"), "{}", r.stderr);
    let ops = emu.service(&s)["operations"].as_array().unwrap().clone();
    let op = |id: &str| ops.iter().find(|o| o["Id"] == id).unwrap().clone();
    let pause = ops.iter().find(|o| o["Type"] == "PAUSE_SERVICE").unwrap();
    let deploy_op = op(deployment["OperationId"].as_str().unwrap());
    assert_eq!(deploy_op["Status"], "SUCCEEDED");
    assert!(pause["StartedAt"].as_f64().unwrap() >= deploy_op["EndedAt"].as_f64().unwrap(), "{ops:?}");
    assert_eq!(orders(&emu, cluster), before);
    assert_eq!(revision(&emu, cluster), json!([["0002_add_email"]]));
    assert_eq!(emu.service(&s)["status"], "RUNNING");
    let status = p.ferry(&["status", "stage"]);
    let line = format!("service    {} RUNNING", s["service_arn"].as_str().unwrap());
    assert!(status.stdout.contains(&line) && status.stdout.contains("restore succeeded"), "{status:?}");
}

#[test]
fn a_deployment_past_the_timeout_is_followed_to_its_real_end_then_restored() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup_with(true, true);
    let cluster = s["cluster"].as_str().unwrap();
    let before = orders(&emu, cluster);
    // The release migrates, then never listens: App Runner rolls it back after
    // app_ready_seconds, long after ferry's 3 s migration timeout.
    emu.configure(json!({"app_ready_seconds": 8}));
    emu.push_image(&s, json!({"revision": "head", "hang": true}));
    let toml = apprunner_toml(&emu, &s, "").replace("migration = \"2m\"", "migration = \"3s\"");
    let p = emu.project_with(&s, &toml);

    let r = p.ferry(&["deploy", "stage", "--output", "json"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("App Runner cannot cancel deployment"), "{}", r.stderr);
    let rec = r.json();
    // What ferry acted on is App Runner's own outcome, not the timeout.
    assert!(rec["error"].as_str().unwrap().contains("ended ROLLBACK_SUCCEEDED"), "{rec}");
    assert_eq!(orders(&emu, cluster), before);
    assert_eq!(revision(&emu, cluster), json!([["0002_add_email"]]));
    assert_eq!(emu.service(&s)["status"], "RUNNING");
}
