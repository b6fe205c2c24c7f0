//! Peers the tests start, stopped with everything they started.

use std::process::Child;

/// A child process killed, with its whole process group, when dropped — also when the test
/// that started it fails. A peer that forks workers (Kamailio) must be spawned as a group
/// leader (`Command::process_group(0)`), or its workers outlive the suite holding its ports;
/// for any other child the group kill finds no group and only the child is killed.
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
