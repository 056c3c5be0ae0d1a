//! The properties of the GitHub workflows that people rely on and actionlint
//! cannot know about: one migration per environment at a time, never
//! cancelled; OIDC only; the run record kept; the job failing with ferry's
//! exit code; CI running scripts/test. (actionlint, run by scripts/test,
//! checks their syntax, expressions and shell.)

use std::path::PathBuf;

fn workflow(name: &str) -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".github/workflows").join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.starts_with('#'))
        .collect()
}

fn assert_has(lines: &[String], want: &str, why: &str) {
    assert!(lines.iter().any(|l| l == want), "run-migrations.yml lacks `{want}`: {why}");
}

#[test]
fn run_migrations_is_one_guarded_run_per_environment_with_oidc_and_a_kept_record() {
    let w = workflow("run-migrations.yml");
    assert_has(&w, "workflow_dispatch:", "it is started by hand");
    for env in ["- development", "- staging", "- production"] {
        assert_has(&w, env, "the environment choice");
    }
    assert_has(&w, "environment: ${{ inputs.environment }}", "GitHub environment protection (production reviewers)");
    assert_has(&w, "group: migrations-${{ inputs.environment }}", "one migration per environment at a time");
    assert_has(&w, "cancel-in-progress: false", "a second run waits; it never cancels a runbook half way");
    assert_has(&w, "id-token: write", "OIDC");
    assert_has(&w, "contents: read", "least privilege for the token");
    assert_has(&w, "role-to-assume: ${{ vars.AWS_ROLE_ARN }}", "the per-environment deploy role");
    assert_has(&w, "run: cargo build --release --locked", "ferry built from this repository");
    assert!(
        w.iter().any(|l| l.contains("ferry deploy \"$FERRY_ENV\" --yes --output json > run.json || code=$?")),
        "the deploy keeps its exit code and its run record"
    );
    assert_has(&w, "include-hidden-files: true", "upload-artifact skips .ferry/ without it");
    assert_has(&w, "**/.ferry/runs/", "the journal is part of the artefact");
    assert_has(&w, "exit \"${CODE:-1}\"", "the job fails with ferry's exit code");
    let upload = w.iter().position(|l| l == "uses: actions/upload-artifact@v4").unwrap();
    assert_eq!(w[upload - 1], "if: always()", "the record is uploaded whatever the outcome");
    for secret in ["aws-access-key-id", "aws-secret-access-key", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"] {
        assert!(!w.iter().any(|l| l.contains(secret)), "no long-lived keys: found {secret}");
    }
}

#[test]
fn ci_runs_the_projects_one_test_command() {
    let w = workflow("ci.yml");
    assert!(w.iter().any(|l| l == "run: scripts/test"), "ci.yml must run scripts/test");
}
