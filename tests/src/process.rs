//! Starting server processes that cannot outlive the test process.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (released again, so the server can bind it).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("the kernel hands out a free port")
}

/// Kills `child` once this test process is gone, however it ends (even `kill -9`).
pub fn follow_test_process(child: &Child) {
    let script = format!(
        "while kill -0 {owner} 2>/dev/null; do sleep 1; done; kill {child} 2>/dev/null; sleep 2; kill -9 {child} 2>/dev/null",
        owner = std::process::id(),
        child = child.id()
    );
    let mut watchdog = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sh is available to watch the server");
    // The watchdog outlives this process by design; reap it if it ever ends first.
    std::thread::spawn(move || watchdog.wait());
}

/// Waits until something accepts connections on `port`.
pub(crate) fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}
