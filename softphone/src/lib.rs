//! # softphone — the office softphone's engine
//!
//! Layer: application, on `sip` and `media`; talks plain SIP to any PBX and never links
//! pbx-lite.
//!
//! ## Brief overview
//! - [`config`]: the TOML configuration (the provisioner's native softphone profile).
//! - [`call`]: one call — its INVITE, dialog and SDP, and the task carrying its audio.
//! - [`sequence`]: PBX feature sequences (hold, code, resume) as one action each.
//! - [`contacts`]: the configuration's contacts and the provisioner's directory.
//! - [`engine`]: the driver — one SIP endpoint for every line, commands in, events out.
//! - [`gui`]: the window (eframe/egui) on the same engine channels.
//! - [`headless`]: line commands on stdin or a loopback TCP socket, JSON events on stdout.

pub mod call;
pub mod config;
pub mod contacts;
pub mod control;
pub mod engine;
pub mod gui;
pub mod headless;
pub mod ringer;
pub mod sequence;

/// The runtime the engine runs on, window or headless: one thread. A call's media task
/// wakes a hundred times a second (its 20 ms frame and each packet that arrives); on a
/// multi-threaded runtime each wake-up also woke a second worker to steal it, and a call
/// cost more in switching threads than in its codec.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}
