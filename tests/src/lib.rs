//! The test harness: real servers on free 127.0.0.1 ports, started once per test process and
//! stopped when it exits (a watchdog follows the test process, so even a crashed or killed
//! test run leaves nothing behind).
//!
//! - [`moto::Moto`]: moto's AWS-compatible server, from the venv `scripts/test.sh` creates.
//! - [`faults`]: port decorators that inject the failures emulators cannot produce on demand.
//! - [`scripted::ScriptedProcessor`]: a processor each message scripts, for runtime tests.
//! - [`operator_support`]: the CRDs installed once, a namespace per test, the operator run in
//!   process, polling with a deadline.
//! - [`kube_cluster::KubeCluster`]: etcd + kube-apiserver + kube-controller-manager, built by
//!   `scripts/kube-test-cluster.sh build`.
//!
//! A missing server is a loud failure that says how to install it, never a silent skip.

pub mod faults;
pub mod kube_cluster;
pub mod moto;
pub mod operator_support;
pub mod process;
pub mod scripted;

pub use kube_cluster::KubeCluster;
pub use moto::Moto;

use std::path::PathBuf;

/// The repository root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .canonicalize()
        .expect("the workspace root exists")
}

/// A name no other test in this run uses, for queues, tables, namespaces and the like.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}
