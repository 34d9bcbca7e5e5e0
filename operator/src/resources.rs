//! The objects a Pipeline owns, computed from its spec alone: a ConfigMap holding the resolved
//! Pipeline (what the workers read) and the Deployment of `wharf worker` pods. Reconcile applies
//! these as they are; nothing here reads the cluster, so every field is unit-tested.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, SeccompProfile, SecretKeySelector, SecurityContext, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use wharf_crds::Pipeline;

/// `app.kubernetes.io/name` of every worker pod.
pub const WORKER_APP: &str = "wharf-worker";
/// Label carrying the owning Pipeline's name.
pub const PIPELINE_LABEL: &str = "wharf.dev/pipeline";
/// Where the ConfigMap is mounted in worker pods.
pub const CONFIG_DIR: &str = "/etc/wharf";
/// Key of the resolved Pipeline in the ConfigMap (and file name under [`CONFIG_DIR`]).
pub const PIPELINE_KEY: &str = "pipeline.yaml";
/// Name of the worker container and of its metrics port.
pub const WORKER_CONTAINER: &str = "worker";
pub const METRICS_PORT_NAME: &str = "metrics";
/// The distroless `nonroot` user: a fixed UID so `runAsNonRoot` can be verified by the kubelet.
pub const WORKER_UID: i64 = 65532;
/// Time on top of `maxProcessingSeconds` for a terminating worker to make its unfinished
/// messages visible again and exit.
pub const GRACE_MARGIN_SECONDS: i64 = 30;

/// Worker settings the operator supplies where a Pipeline leaves them unset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerDefaults {
    /// Image of `wharf worker` when `spec.worker.image` is unset.
    pub image: String,
}

/// Why the owned objects could not be computed; the Pipeline's status names it.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("Pipeline has no metadata.{0}; it cannot own objects")]
    MissingMetadata(&'static str),
    #[error("Pipeline `{name}`: cannot render the resolved spec as YAML: {message}")]
    Render { name: String, message: String },
}

/// Name of the ConfigMap and the Deployment of a Pipeline.
pub fn worker_name(pipeline: &Pipeline) -> String {
    format!("{}-worker", pipeline.name_any())
}

/// Labels of the worker pods (and their selector).
pub fn selector_labels(pipeline_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), WORKER_APP.to_owned()),
        (PIPELINE_LABEL.to_owned(), pipeline_name.to_owned()),
    ])
}

/// The selector in string form, as the scale subresource reports it.
pub fn selector_string(pipeline_name: &str) -> String {
    selector_labels(pipeline_name)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Labels of the owned objects themselves: the selector labels plus who manages them.
fn object_labels(pipeline_name: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(pipeline_name);
    labels.insert(
        "app.kubernetes.io/managed-by".to_owned(),
        "wharf-operator".to_owned(),
    );
    labels.insert(
        "app.kubernetes.io/component".to_owned(),
        "worker".to_owned(),
    );
    labels
}

/// The controller owner reference that makes the garbage collector delete owned objects with
/// the Pipeline and lets the controller map their changes back to it.
fn owner_reference(pipeline: &Pipeline) -> Result<OwnerReference, ResourceError> {
    pipeline
        .controller_owner_ref(&())
        .ok_or(ResourceError::MissingMetadata("uid"))
}

fn object_meta(pipeline: &Pipeline) -> Result<ObjectMeta, ResourceError> {
    let namespace = pipeline
        .namespace()
        .ok_or(ResourceError::MissingMetadata("namespace"))?;
    Ok(ObjectMeta {
        name: Some(worker_name(pipeline)),
        namespace: Some(namespace),
        labels: Some(object_labels(&pipeline.name_any())),
        owner_references: Some(vec![owner_reference(pipeline)?]),
        ..ObjectMeta::default()
    })
}

/// The Pipeline as the worker reads it: apiVersion, kind, name, namespace and the spec with
/// every default filled in. No status, no server-managed metadata, so the ConfigMap (and the
/// pod template's checksum) changes only when the spec does.
pub fn resolved_pipeline_yaml(pipeline: &Pipeline) -> Result<String, ResourceError> {
    let mut resolved = Pipeline::new(&pipeline.name_any(), pipeline.spec.clone());
    resolved.metadata.namespace = pipeline.namespace();
    serde_saphyr::to_string(&resolved).map_err(|e| ResourceError::Render {
        name: pipeline.name_any(),
        message: e.to_string(),
    })
}

/// The ConfigMap holding the resolved Pipeline under `pipeline.yaml`.
pub fn config_map(pipeline: &Pipeline) -> Result<ConfigMap, ResourceError> {
    Ok(ConfigMap {
        metadata: object_meta(pipeline)?,
        data: Some(BTreeMap::from([(
            PIPELINE_KEY.to_owned(),
            resolved_pipeline_yaml(pipeline)?,
        )])),
        ..ConfigMap::default()
    })
}

/// A short, stable digest of the resolved spec, put on the pod template so that a spec change
/// rolls the pods (a mounted ConfigMap alone would change under running workers).
fn spec_checksum(yaml: &str) -> String {
    // FNV-1a: stable across releases and platforms, unlike `DefaultHasher`.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in yaml.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The worker Deployment with `replicas` pods.
pub fn deployment(
    pipeline: &Pipeline,
    replicas: i32,
    defaults: &WorkerDefaults,
) -> Result<Deployment, ResourceError> {
    let name = pipeline.name_any();
    let spec = &pipeline.spec;
    let worker = &spec.worker;
    let yaml = resolved_pipeline_yaml(pipeline)?;
    let image = worker
        .image
        .clone()
        .unwrap_or_else(|| defaults.image.clone());
    let metrics_port = worker.metrics_port;

    let mut pod_labels = selector_labels(&name);
    pod_labels.insert(
        "app.kubernetes.io/component".to_owned(),
        "worker".to_owned(),
    );
    let annotations =
        BTreeMap::from([("wharf.dev/spec-checksum".to_owned(), spec_checksum(&yaml))]);

    let probe = |initial_delay: i32, period: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/healthz".to_owned()),
            port: IntOrString::String(METRICS_PORT_NAME.to_owned()),
            ..HTTPGetAction::default()
        }),
        initial_delay_seconds: Some(initial_delay),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(3),
        ..Probe::default()
    };

    let container = Container {
        name: WORKER_CONTAINER.to_owned(),
        image: Some(image),
        command: Some(vec!["wharf".to_owned()]),
        args: Some(vec![
            "worker".to_owned(),
            "--pipeline".to_owned(),
            format!("{CONFIG_DIR}/{PIPELINE_KEY}"),
        ]),
        env: Some(worker_env(pipeline)),
        ports: Some(vec![ContainerPort {
            name: Some(METRICS_PORT_NAME.to_owned()),
            container_port: metrics_port,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        liveness_probe: Some(probe(10, 10)),
        readiness_probe: Some(probe(2, 5)),
        resources: worker.resources.clone(),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(WORKER_UID),
            run_as_group: Some(WORKER_UID),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            seccomp_profile: Some(runtime_default_seccomp()),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "pipeline".to_owned(),
                mount_path: CONFIG_DIR.to_owned(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "tmp".to_owned(),
                mount_path: "/tmp".to_owned(),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    };

    let pod = PodSpec {
        containers: vec![container],
        service_account_name: worker.service_account_name.clone(),
        termination_grace_period_seconds: Some(
            i64::from(worker.max_processing_seconds.max(0)) + GRACE_MARGIN_SECONDS,
        ),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(WORKER_UID),
            run_as_group: Some(WORKER_UID),
            fs_group: Some(WORKER_UID),
            seccomp_profile: Some(runtime_default_seccomp()),
            ..PodSecurityContext::default()
        }),
        volumes: Some(vec![
            Volume {
                name: "pipeline".to_owned(),
                config_map: Some(ConfigMapVolumeSource {
                    name: worker_name(pipeline),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            },
            Volume {
                name: "tmp".to_owned(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            },
        ]),
        ..PodSpec::default()
    };

    Ok(Deployment {
        metadata: object_meta(pipeline)?,
        spec: Some(DeploymentSpec {
            replicas: Some(replicas.max(0)),
            selector: LabelSelector {
                match_labels: Some(selector_labels(&name)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    })
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        ..SeccompProfile::default()
    }
}

/// The worker's environment: the pod's identity (for its deletion cost), AWS credentials by
/// reference to the Secret named in `spec.aws.credentialsSecretRef` (never their values), then
/// the user's own variables, which win on a name clash because they come last.
fn worker_env(pipeline: &Pipeline) -> Vec<EnvVar> {
    let field = |name: &str, path: &str| EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    };
    let secret = |name: &str, secret: &str, key: &str, optional: bool| EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_owned(),
                key: key.to_owned(),
                optional: optional.then_some(true),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    };

    let mut env = vec![
        field("POD_NAME", "metadata.name"),
        field("POD_NAMESPACE", "metadata.namespace"),
        EnvVar {
            name: "WHARF_METRICS_PORT".to_owned(),
            value: Some(pipeline.spec.worker.metrics_port.to_string()),
            ..EnvVar::default()
        },
    ];
    if let Some(creds) = pipeline
        .spec
        .aws
        .as_ref()
        .and_then(|aws| aws.credentials_secret_ref.as_ref())
    {
        env.push(secret(
            "AWS_ACCESS_KEY_ID",
            &creds.name,
            &creds.access_key_id_key,
            false,
        ));
        env.push(secret(
            "AWS_SECRET_ACCESS_KEY",
            &creds.name,
            &creds.secret_access_key_key,
            false,
        ));
        if let Some(key) = &creds.session_token_key {
            env.push(secret("AWS_SESSION_TOKEN", &creds.name, key, true));
        }
    }
    env.extend(pipeline.spec.worker.env.iter().cloned());
    env
}

/// Whether `object` is owned (as controller) by `pipeline`.
pub fn is_controlled_by<K: Resource>(object: &K, pipeline: &Pipeline) -> bool {
    let uid = pipeline.meta().uid.as_deref();
    object
        .meta()
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && Some(r.uid.as_str()) == uid)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use wharf_crds::pipeline::WorkerSpec;
    use wharf_crds::{AwsSettings, CredentialsSecretRef};

    pub(crate) const TELEMETRY: &str = r#"
apiVersion: wharf.dev/v1alpha1
kind: Pipeline
metadata:
  name: telemetry
  namespace: data
  uid: 6f1c2a8e-1111-2222-3333-444455556666
  generation: 3
spec:
  source:
    sqs:
      queueUrl: https://sqs.eu-west-2.amazonaws.com/123456789012/submissions
  processor:
    telemetry:
      sink: events
  sinks:
    - name: events
      kinesis:
        streamName: events
"#;

    pub(crate) fn telemetry_pipeline() -> Pipeline {
        serde_saphyr::from_str(TELEMETRY).expect("test pipeline parses")
    }

    fn defaults() -> WorkerDefaults {
        WorkerDefaults {
            image: "ghcr.io/wharf-dev/wharf:0.1.0".to_owned(),
        }
    }

    fn pod_spec(d: &Deployment) -> &PodSpec {
        d.spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .expect("pod spec")
    }

    fn env_of(d: &Deployment) -> Vec<EnvVar> {
        pod_spec(d).containers[0].env.clone().unwrap_or_default()
    }

    #[test]
    fn config_map_holds_the_resolved_pipeline_with_defaults() {
        let pipeline = telemetry_pipeline();
        let cm = config_map(&pipeline).expect("config map");
        assert_eq!(cm.metadata.name.as_deref(), Some("telemetry-worker"));
        assert_eq!(cm.metadata.namespace.as_deref(), Some("data"));
        let yaml = &cm.data.as_ref().expect("data")[PIPELINE_KEY];
        let back: Pipeline = serde_saphyr::from_str(yaml).expect("resolved YAML parses");
        assert_eq!(back.spec, pipeline.spec);
        assert_eq!(back.metadata.name.as_deref(), Some("telemetry"));
        assert!(
            yaml.contains("batchSize: 10"),
            "defaults are written out: {yaml}"
        );
        assert!(!yaml.contains("uid"), "no server metadata: {yaml}");
        assert!(!yaml.contains("status"), "no status: {yaml}");
    }

    #[test]
    fn owned_objects_carry_a_controller_owner_reference_and_labels() {
        let pipeline = telemetry_pipeline();
        let cm = config_map(&pipeline).expect("config map");
        let d = deployment(&pipeline, 2, &defaults()).expect("deployment");
        for meta in [&cm.metadata, &d.metadata] {
            let owners = meta.owner_references.as_ref().expect("owner references");
            assert_eq!(owners.len(), 1);
            let owner = &owners[0];
            assert_eq!(owner.kind, "Pipeline");
            assert_eq!(owner.api_version, "wharf.dev/v1alpha1");
            assert_eq!(owner.name, "telemetry");
            assert_eq!(owner.uid, "6f1c2a8e-1111-2222-3333-444455556666");
            assert_eq!(owner.controller, Some(true));
            let labels = meta.labels.as_ref().expect("labels");
            assert_eq!(labels["app.kubernetes.io/name"], "wharf-worker");
            assert_eq!(labels["wharf.dev/pipeline"], "telemetry");
        }
        assert!(is_controlled_by(&d, &pipeline));
        let spec = d.spec.as_ref().expect("spec");
        assert_eq!(spec.replicas, Some(2));
        assert_eq!(
            spec.selector.match_labels.as_ref(),
            Some(&selector_labels("telemetry"))
        );
        let template_labels = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref())
            .expect("template labels");
        for (k, v) in selector_labels("telemetry") {
            assert_eq!(template_labels.get(&k), Some(&v), "selector matches pods");
        }
        assert_eq!(
            selector_string("telemetry"),
            "app.kubernetes.io/name=wharf-worker,wharf.dev/pipeline=telemetry"
        );
    }

    #[test]
    fn workers_run_the_mounted_pipeline_under_restricted_pod_security() {
        let d = deployment(&telemetry_pipeline(), 1, &defaults()).expect("deployment");
        let pod = pod_spec(&d);
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("ghcr.io/wharf-dev/wharf:0.1.0"));
        assert_eq!(c.command.as_deref(), Some(&["wharf".to_owned()][..]));
        assert_eq!(
            c.args.clone().unwrap_or_default(),
            ["worker", "--pipeline", "/etc/wharf/pipeline.yaml"]
        );
        let sc = c
            .security_context
            .as_ref()
            .expect("container security context");
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.run_as_user, Some(65532));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(
            sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
            Some(vec!["ALL".to_owned()])
        );
        assert_eq!(
            sc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
            Some("RuntimeDefault")
        );
        let psc = pod.security_context.as_ref().expect("pod security context");
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(
            psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
            Some("RuntimeDefault")
        );

        let mounts = c.volume_mounts.clone().unwrap_or_default();
        let tmp = mounts
            .iter()
            .find(|m| m.mount_path == "/tmp")
            .expect("/tmp");
        let volumes = pod.volumes.clone().unwrap_or_default();
        let tmp_volume = volumes
            .iter()
            .find(|v| v.name == tmp.name)
            .expect("tmp volume");
        assert!(tmp_volume.empty_dir.is_some());
        let config = mounts
            .iter()
            .find(|m| m.mount_path == "/etc/wharf")
            .expect("config mount");
        assert_eq!(config.read_only, Some(true));
        let config_volume = volumes
            .iter()
            .find(|v| v.name == config.name)
            .expect("config volume");
        assert_eq!(
            config_volume.config_map.as_ref().map(|c| c.name.as_str()),
            Some("telemetry-worker")
        );

        let port = &c.ports.as_ref().expect("ports")[0];
        assert_eq!(
            (port.name.as_deref(), port.container_port),
            (Some("metrics"), 9090)
        );
        for probe in [&c.liveness_probe, &c.readiness_probe] {
            let get = probe
                .as_ref()
                .and_then(|p| p.http_get.as_ref())
                .expect("http probe");
            assert_eq!(get.path.as_deref(), Some("/healthz"));
            assert_eq!(get.port, IntOrString::String("metrics".to_owned()));
        }
        assert_eq!(pod.termination_grace_period_seconds, Some(900 + 30));
        assert_eq!(pod.service_account_name, None);
    }

    #[test]
    fn pipeline_image_and_worker_settings_win_over_operator_defaults() {
        let mut pipeline = telemetry_pipeline();
        pipeline.spec.worker = WorkerSpec {
            image: Some("registry.local/wharf:dev".to_owned()),
            max_processing_seconds: 60,
            service_account_name: Some("telemetry-irsa".to_owned()),
            env: vec![EnvVar {
                name: "RUST_LOG".to_owned(),
                value: Some("debug".to_owned()),
                ..EnvVar::default()
            }],
            ..WorkerSpec::default()
        };
        let d = deployment(&pipeline, 0, &defaults()).expect("deployment");
        let pod = pod_spec(&d);
        assert_eq!(
            pod.containers[0].image.as_deref(),
            Some("registry.local/wharf:dev")
        );
        assert_eq!(pod.termination_grace_period_seconds, Some(90));
        assert_eq!(pod.service_account_name.as_deref(), Some("telemetry-irsa"));
        assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(0));
        let env = env_of(&d);
        assert_eq!(env.last().map(|e| e.name.as_str()), Some("RUST_LOG"));
        assert!(
            !env.iter().any(|e| e.name.starts_with("AWS_")),
            "without a Secret, credentials come from the service account"
        );
    }

    #[test]
    fn aws_credentials_come_only_from_the_referenced_secret() {
        let mut pipeline = telemetry_pipeline();
        pipeline.spec.aws = Some(AwsSettings {
            region: Some("eu-west-2".to_owned()),
            endpoint_url: None,
            credentials_secret_ref: Some(CredentialsSecretRef {
                name: "aws-creds".to_owned(),
                access_key_id_key: "id".to_owned(),
                secret_access_key_key: "secret".to_owned(),
                session_token_key: Some("token".to_owned()),
            }),
        });
        let d = deployment(&pipeline, 1, &defaults()).expect("deployment");
        let env = env_of(&d);
        for (name, key) in [
            ("AWS_ACCESS_KEY_ID", "id"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
        ] {
            let var = env.iter().find(|e| e.name == name).expect(name);
            assert_eq!(var.value, None, "{name} is never inlined");
            let secret = var
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
                .expect("secretKeyRef");
            assert_eq!(
                (secret.name.as_str(), secret.key.as_str()),
                ("aws-creds", key)
            );
        }
    }

    /// `wharf_workers::pod_deletion_cost` finds the pod to annotate through these two
    /// variables; a user's own `POD_NAME` would still win, since user variables come last.
    #[test]
    fn workers_learn_their_pod_name_and_namespace_from_the_downward_api() {
        let d = deployment(&telemetry_pipeline(), 1, &defaults()).expect("deployment");
        let env = env_of(&d);
        for (name, path) in [
            ("POD_NAME", "metadata.name"),
            ("POD_NAMESPACE", "metadata.namespace"),
        ] {
            let var = env.iter().find(|e| e.name == name).expect(name);
            assert_eq!(var.value, None, "{name} comes from the pod, not a literal");
            let field = var
                .value_from
                .as_ref()
                .and_then(|v| v.field_ref.as_ref())
                .expect("a fieldRef");
            assert_eq!(field.field_path, path, "{name}");
        }
    }

    /// The worker Role in deploy/ grants what `PodDeletionCost::report` does (a PATCH of its
    /// pod) and nothing wider than get + patch on pods.
    #[test]
    fn the_worker_role_allows_patching_pods_and_nothing_more() {
        use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
        let text = include_str!("../../deploy/worker-rbac.yaml");
        let documents: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(text).expect("deploy/worker-rbac.yaml is YAML");
        let of_kind = |kind: &str| {
            documents
                .iter()
                .find(|d| d["kind"] == kind)
                .cloned()
                .unwrap_or_else(|| panic!("a {kind} in deploy/worker-rbac.yaml"))
        };
        let role: Role = serde_json::from_value(of_kind("Role")).expect("a Role");
        let rules = role.rules.expect("rules");
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].api_groups, Some(vec![String::new()]));
        assert_eq!(rules[0].resources, Some(vec!["pods".to_owned()]));
        assert_eq!(rules[0].verbs, ["get", "patch"]);
        let binding: RoleBinding =
            serde_json::from_value(of_kind("RoleBinding")).expect("a RoleBinding");
        assert_eq!(binding.role_ref.name, role.metadata.name.expect("a name"));
        let subject = &binding.subjects.expect("subjects")[0];
        let account = of_kind("ServiceAccount");
        assert_eq!(
            (subject.kind.as_str(), Some(subject.name.as_str())),
            ("ServiceAccount", account["metadata"]["name"].as_str())
        );
    }

    #[test]
    fn a_spec_change_changes_the_pod_template() {
        let pipeline = telemetry_pipeline();
        let mut changed = pipeline.clone();
        changed.spec.worker.concurrency = 3;
        let checksum = |p: &Pipeline| {
            deployment(p, 1, &defaults())
                .expect("deployment")
                .spec
                .and_then(|s| s.template.metadata)
                .and_then(|m| m.annotations)
                .map(|a| a["wharf.dev/spec-checksum"].clone())
        };
        assert_ne!(checksum(&pipeline), checksum(&changed));
        assert_eq!(checksum(&pipeline), checksum(&pipeline.clone()));
    }

    #[test]
    fn a_pipeline_without_uid_cannot_own_objects() {
        let mut pipeline = telemetry_pipeline();
        pipeline.metadata.uid = None;
        assert!(matches!(
            config_map(&pipeline),
            Err(ResourceError::MissingMetadata("uid"))
        ));
    }
}
