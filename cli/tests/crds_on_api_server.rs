//! The CRDs that `wharf crds --no-cel` prints, installed into a real kube-apiserver (v1.20):
//! the examples are accepted, `kubectl get` shows the printer columns, `kubectl scale` works
//! through the scale subresource, and invalid resources are refused by the schema where 1.20
//! can refuse them and by `wharf validate` otherwise.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use wharf_crds::{Pipeline, SlaCheck};
use wharf_tests::{KubeCluster, unique_name, workspace_root};

fn wharf() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Installs the CRDs once per test process and returns the cluster.
fn cluster_with_crds() -> &'static KubeCluster {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    let cluster = KubeCluster::shared();
    INSTALLED.get_or_init(|| {
        let crds = wharf()
            .args(["crds", "--no-cel"])
            .output()
            .expect("wharf runs");
        assert!(crds.status.success(), "{}", text(&crds));
        let mut apply = cluster
            .kubectl()
            .args(["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        use std::io::Write;
        apply.stdin.take().unwrap().write_all(&crds.stdout).unwrap();
        let applied = apply.wait_with_output().unwrap();
        assert!(applied.status.success(), "{}", text(&applied));
        let established = cluster.kubectl_output(&[
            "wait",
            "--for",
            "condition=established",
            "--timeout=60s",
            "crd/pipelines.wharf.dev",
            "crd/slachecks.wharf.dev",
        ]);
        assert!(established.status.success(), "{}", text(&established));
    });
    cluster
}

fn namespace(cluster: &KubeCluster) -> String {
    let name = unique_name("crds");
    let created = cluster.kubectl_output(&["create", "namespace", &name]);
    assert!(created.status.success(), "{}", text(&created));
    name
}

fn examples() -> PathBuf {
    workspace_root().join("examples")
}

fn header(path: &Path, key: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("# {key}: ")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_example_is_accepted_and_defaulted_by_the_api_server() {
    let cluster = cluster_with_crds();
    let ns = namespace(cluster);
    let examples = examples();
    let applied = cluster.kubectl_output(&["apply", "-n", &ns, "-f", examples.to_str().unwrap()]);
    assert!(applied.status.success(), "{}", text(&applied));

    let names = cluster.kubectl_output(&["get", "pipelines,slachecks", "-n", &ns, "-o", "name"]);
    let names = text(&names);
    for expected in [
        "pipeline.wharf.dev/telemetry",
        "pipeline.wharf.dev/infra-events",
        "pipeline.wharf.dev/snapshot-status",
        "pipeline.wharf.dev/transcode",
        "slacheck.wharf.dev/example-service",
    ] {
        assert!(names.contains(expected), "{expected} missing from {names}");
    }
    // The schema's defaults are applied by the API server itself.
    let concurrency = cluster.kubectl_output(&[
        "get",
        "pipeline",
        "telemetry",
        "-n",
        &ns,
        "-o",
        "jsonpath={.spec.worker.concurrency} {.spec.source.sqs.waitTimeSeconds} {.spec.retry.maxAttempts}",
    ]);
    assert_eq!(text(&concurrency), "8 20 5");
}

#[tokio::test]
async fn kubectl_get_shows_the_printer_columns_with_status_values() {
    let cluster = cluster_with_crds();
    let ns = namespace(cluster);
    let telemetry = examples().join("telemetry.yaml");
    let sla = examples().join("sla-check.yaml");
    for file in [&telemetry, &sla] {
        let applied = cluster.kubectl_output(&["apply", "-n", &ns, "-f", file.to_str().unwrap()]);
        assert!(applied.status.success(), "{}", text(&applied));
    }

    let client = cluster.client().await;
    let pipelines: Api<Pipeline> = Api::namespaced(client.clone(), &ns);
    let status = json!({"status": {
        "conditions": [{"type": "Ready", "status": "True", "reason": "WorkersRunning",
                        "message": "2 of 2 workers ready", "lastTransitionTime": "2026-11-22T10:00:00Z"}],
        "processor": "telemetry",
        "replicas": 2,
        "readyReplicas": 2,
        "backlog": {"visible": 230, "inFlight": 17, "delayed": 0, "deadLetter": 3,
                    "observedAt": "2026-11-22T10:00:00Z"}
    }});
    pipelines
        .patch_status("telemetry", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status subresource accepts the status");
    let checks: Api<SlaCheck> = Api::namespaced(client, &ns);
    let status = json!({"status": {
        "runs": 1440, "successes": 1439, "failures": 1, "successRate": 99.93,
        "lastRun": {"time": "2026-11-22T10:00:00Z", "durationSeconds": 12.5, "exitCode": 0,
                    "succeeded": true, "result": "SUCCESS"}
    }});
    checks
        .patch_status(
            "example-service",
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .expect("status subresource accepts the status");

    let table = text(&cluster.kubectl_output(&["get", "pipelines", "-n", &ns]));
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "PROCESSOR",
            "REPLICAS",
            "BACKLOG",
            "IN-FLIGHT",
            "DLQ",
            "AGE"
        ]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..7],
        ["telemetry", "True", "telemetry", "2", "230", "17", "3"]
    );

    let table = text(&cluster.kubectl_output(&["get", "sla", "-n", &ns]));
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "SERVICE",
            "LAST",
            "SUCCESS-RATE",
            "OBJECTIVE",
            "RUNS",
            "LAST-RUN",
            "AGE"
        ]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..6],
        [
            "example-service",
            "example-service",
            "SUCCESS",
            "99.93",
            "99.9",
            "1440"
        ]
    );

    // The short name and the category reach the same objects.
    let by_short_name = text(&cluster.kubectl_output(&["get", "pl", "-n", &ns, "-o", "name"]));
    assert_eq!(by_short_name.trim(), "pipeline.wharf.dev/telemetry");
    let by_category = text(&cluster.kubectl_output(&["get", "wharf", "-n", &ns, "-o", "name"]));
    assert!(
        by_category.contains("pipeline.wharf.dev/telemetry"),
        "{by_category}"
    );
    assert!(
        by_category.contains("slacheck.wharf.dev/example-service"),
        "{by_category}"
    );
}

#[tokio::test]
async fn kubectl_scale_pipeline_goes_through_the_scale_subresource() {
    let cluster = cluster_with_crds();
    let ns = namespace(cluster);
    let file = examples().join("snapshot-status.yaml");
    let applied = cluster.kubectl_output(&["apply", "-n", &ns, "-f", file.to_str().unwrap()]);
    assert!(applied.status.success(), "{}", text(&applied));
    let pipelines: Api<Pipeline> = Api::namespaced(cluster.client().await, &ns);
    let status =
        json!({"status": {"replicas": 1, "selector": "wharf.dev/pipeline=snapshot-status"}});
    pipelines
        .patch_status(
            "snapshot-status",
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .unwrap();

    let scaled = cluster.kubectl_output(&[
        "scale",
        "pipeline",
        "snapshot-status",
        "-n",
        &ns,
        "--replicas=3",
    ]);
    assert!(scaled.status.success(), "{}", text(&scaled));
    let pipeline = pipelines.get("snapshot-status").await.unwrap();
    assert_eq!(pipeline.spec.replicas, 3);

    let scale = cluster.kubectl_output(&[
        "get",
        "--raw",
        &format!("/apis/wharf.dev/v1alpha1/namespaces/{ns}/pipelines/snapshot-status/scale"),
    ]);
    let scale: serde_json::Value = serde_json::from_slice(&scale.stdout).expect("Scale JSON");
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 3);
    assert_eq!(scale["status"]["replicas"], 1);
    assert_eq!(
        scale["status"]["selector"],
        "wharf.dev/pipeline=snapshot-status"
    );
}

#[test]
fn invalid_resources_are_refused_by_the_schema_or_by_wharf_validate() {
    let cluster = cluster_with_crds();
    let ns = namespace(cluster);
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples().join("invalid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 12);
    for file in files {
        let refused_by = header(&file, "refused-by");
        let expected = header(&file, "expect");
        assert!(
            !expected.is_empty(),
            "{} has no expect header",
            file.display()
        );
        let apply = cluster.kubectl_output(&["apply", "-n", &ns, "-f", file.to_str().unwrap()]);
        let validate = wharf()
            .args(["validate", "-f"])
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(validate.status.code(), Some(1), "{}", text(&validate));
        for path in &expected {
            assert!(
                text(&validate).contains(&format!("  {path}: ")),
                "{}: wharf validate should name {path}:\n{}",
                file.display(),
                text(&validate)
            );
        }
        match refused_by.as_slice() {
            [by] if by == "schema" => {
                assert!(!apply.status.success(), "{} was accepted", file.display());
                for path in &expected {
                    // The API server names list items without the key field (`spec.sinks[1]`).
                    let parent = path.rsplit_once('.').map_or(path.as_str(), |(p, _)| p);
                    let message = text(&apply);
                    assert!(
                        message.contains(path.as_str()) || message.contains(parent),
                        "{}: the API server should name {path}: {message}",
                        file.display()
                    );
                }
            }
            [by] if by == "rules" || by == "validate" => {
                // 1.20 has no CEL and prunes unknown fields: only Wharf can catch these.
                assert!(
                    apply.status.success(),
                    "{}: {}",
                    file.display(),
                    text(&apply)
                );
            }
            other => panic!("{}: bad refused-by header {other:?}", file.display()),
        }
    }
}

#[test]
fn wharf_validate_accepts_the_examples_directory() {
    let validate = wharf()
        .args(["validate", "-f"])
        .arg(examples())
        .output()
        .unwrap();
    assert_eq!(validate.status.code(), Some(0), "{}", text(&validate));
    assert_eq!(
        text(&validate).matches(": OK").count(),
        5,
        "{}",
        text(&validate)
    );
}
