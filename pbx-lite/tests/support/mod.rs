//! What the pbx-lite integration tests share.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::UdpSocket;

/// `SIP_SKIP_PEERS=1` (scripts/check --quick) skips the tests that need real peers.
pub(crate) fn skip() -> bool {
    std::env::var("SIP_SKIP_PEERS").is_ok_and(|v| v == "1")
}

/// A loopback port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
