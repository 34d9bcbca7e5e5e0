//! A real Kubernetes control plane (v1.20 etcd + kube-apiserver + kube-controller-manager),
//! started with `scripts/kube-test-cluster.sh`. There is no kubelet: tests that need running
//! pods mark them Running themselves through `pods/status`.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

use kube::config::{KubeConfigOptions, Kubeconfig};

/// A running test cluster.
#[derive(Debug)]
pub struct KubeCluster {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
}

impl KubeCluster {
    /// The cluster shared by every test of this process.
    pub fn shared() -> &'static KubeCluster {
        static SHARED: OnceLock<KubeCluster> = OnceLock::new();
        SHARED.get_or_init(KubeCluster::start)
    }

    fn start() -> KubeCluster {
        let script = crate::workspace_root().join("scripts/kube-test-cluster.sh");
        let dir = std::env::temp_dir().join(crate::unique_name("wharf-kube"));
        let output = Command::new(&script)
            .arg("start")
            .arg(&dir)
            .args(["--owner-pid", &std::process::id().to_string()])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            output.status.success(),
            "the test cluster did not start (build it with `scripts/kube-test-cluster.sh build`):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        KubeCluster {
            kubeconfig: dir.join("kubeconfig"),
            dir,
        }
    }

    /// A client authenticated as cluster admin.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig is readable");
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("kubeconfig is valid");
        kube::Client::try_from(config).expect("client builds")
    }

    /// `kubectl` pointed at this cluster.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new("kubectl");
        command.arg("--kubeconfig").arg(&self.kubeconfig);
        command
    }

    /// Runs kubectl with `args` and returns its output.
    pub fn kubectl_output(&self, args: &[&str]) -> Output {
        self.kubectl()
            .args(args)
            .output()
            .expect("kubectl is installed")
    }
}
