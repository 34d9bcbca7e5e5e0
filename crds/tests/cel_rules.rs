//! The CEL rules in the CRDs, evaluated client-side with kube's CEL implementation, and the
//! Rust `validate()` held to the same verdicts: every rule-breaking resource is refused by both
//! at the same field, and every valid example passes both.

use std::path::{Path, PathBuf};

use kube::core::cel::Validator;
use serde_json::{Value, json};
use wharf_crds::crdgen::{CelRules, pipeline_crd, slacheck_crd};
use wharf_crds::manifest::{self, Outcome};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn schema_for(kind: &str) -> Value {
    let crd = match kind {
        "Pipeline" => pipeline_crd(CelRules::Include),
        "SlaCheck" => slacheck_crd(CelRules::Include),
        other => panic!("not a Wharf kind: {other}"),
    };
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("CRD has a schema");
    serde_json::to_value(schema).unwrap()
}

fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

/// Field paths of every CEL rule the object breaks.
fn cel_failures(object: &Value) -> Vec<String> {
    let kind = object["kind"].as_str().unwrap();
    match Validator::new().validate(&schema_for(kind), object, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .iter()
            .map(|e| format!("{} ({})", e.field_path, e.message))
            .collect(),
    }
}

/// Field paths of every problem `wharf validate` reports.
fn validate_problems(object: &Value) -> Vec<String> {
    let doc = manifest::check_document(1, object.clone());
    match doc.outcome {
        Outcome::Valid(_) => Vec::new(),
        Outcome::Invalid(problems) => problems.into_iter().map(|p| p.path).collect(),
        Outcome::NotWharf { .. } => panic!("not a Wharf document"),
    }
}

/// The `# refused-by:` and `# expect:` header lines of an invalid example.
fn header(path: &Path, key: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("# {key}: ")))
        .map(str::to_owned)
        .collect()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_valid_example_passes_cel_and_validate() {
    let files = yaml_files(&examples_dir());
    assert!(files.len() >= 5, "expected the example resources");
    for file in files {
        let object = read_yaml(&file);
        assert_eq!(
            cel_failures(&object),
            Vec::<String>::new(),
            "{}",
            file.display()
        );
        assert_eq!(
            validate_problems(&object),
            Vec::<String>::new(),
            "{}",
            file.display()
        );
    }
}

#[test]
fn rule_breaking_examples_are_refused_by_cel_and_validate_at_the_same_field() {
    let files: Vec<PathBuf> = yaml_files(&examples_dir().join("invalid"))
        .into_iter()
        .filter(|f| header(f, "refused-by") == ["rules"])
        .collect();
    assert!(files.len() >= 8, "expected the rule-breaking examples");
    for file in files {
        let object = read_yaml(&file);
        let cel = cel_failures(&object);
        let rust = validate_problems(&object);
        for expected in header(&file, "expect") {
            assert!(
                rust.contains(&expected),
                "{}: validate() should report {expected}, reported {rust:?}",
                file.display()
            );
            assert!(
                cel.iter()
                    .any(|c| expected.starts_with(c.split(' ').next().unwrap())),
                "{}: CEL should fail at or above {expected}, failed {cel:?}",
                file.display()
            );
        }
    }
}

#[test]
fn schema_breaking_examples_are_left_to_the_schema_not_cel() {
    for file in yaml_files(&examples_dir().join("invalid"))
        .into_iter()
        .filter(|f| header(f, "refused-by") == ["schema"])
    {
        let rust = validate_problems(&read_yaml(&file));
        for expected in header(&file, "expect") {
            assert!(rust.contains(&expected), "{}: {rust:?}", file.display());
        }
    }
}

fn set(object: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = object
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("{parent}"));
    target[key] = value;
}

/// One mutation of a valid example per rule not already covered by an example file.
#[test]
fn each_sink_reference_rule_and_the_objective_rule_fire_in_both_validators() {
    let cases: &[(&str, &str, Value, &str)] = &[
        (
            "infra-events.yaml",
            "/spec/processor/infraEvents/sink",
            json!("nowhere"),
            "spec.processor.infraEvents.sink",
        ),
        (
            "transcode.yaml",
            "/spec/processor/transcode/statusSink",
            json!("nowhere"),
            "spec.processor.transcode.statusSink",
        ),
        (
            "snapshot-status.yaml",
            "/spec/processor/snapshotStatus/monitoringSink",
            json!("nowhere"),
            "spec.processor.snapshotStatus.monitoringSink",
        ),
        (
            "snapshot-status.yaml",
            "/spec/processor/snapshotStatus/exportStateSink",
            json!("nowhere"),
            "spec.processor.snapshotStatus.exportStateSink",
        ),
        (
            "sla-check.yaml",
            "/spec/objective/percent",
            json!(0.0),
            "spec.objective.percent",
        ),
    ];
    for (file, pointer, value, expected) in cases {
        let mut object = read_yaml(&examples_dir().join(file));
        set(&mut object, pointer, value.clone());
        let cel = cel_failures(&object);
        let rust = validate_problems(&object);
        assert!(rust.contains(&expected.to_string()), "{file}: {rust:?}");
        assert!(
            cel.iter()
                .any(|c| expected.starts_with(c.split(' ').next().unwrap())),
            "{file}: CEL failures {cel:?}"
        );
    }
}

#[test]
fn omitted_optional_blocks_do_not_trip_the_rules() {
    // No sinks at all and no scaling block: the rules must cope with absent fields.
    let object = json!({
        "apiVersion": "wharf.dev/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": "bare"},
        "spec": {
            "source": {"sqs": {"queueUrl": "https://sqs.eu-west-2.amazonaws.com/1/q"}},
            "processor": {"transcode": {"outputBucket": "media"}}
        }
    });
    assert_eq!(cel_failures(&object), Vec::<String>::new());
    assert_eq!(validate_problems(&object), Vec::<String>::new());
}
