//! # e2e — tests across the programs and against real peers
//!
//! Layer: tests only. Joins `sip` and `media` the way an application does, to talk to real
//! peers (baresip) in `tests/`; the helpers here start and stop those peers (`baresip`), build
//! virtual office networks from network namespaces (`netns`), run the office in one
//! (`office`), tell who heard whom (`audio`), stop every peer with its children
//! (`process`), and give every suite its skip switch and free ports (`kit`). `scenario` runs
//! the whole PBX in-process on an in-memory network with tokio's clock paused, with phones
//! made of the SIP core, for the call-flow tests on virtual time. `capture` reads what
//! tcpdump saw, for the wire checks (nothing readable on an encrypted leg); `kamailio` starts
//! Kamailio as a registrar and proxy (a third-party server, or a trunk's provider); `pulse`
//! makes a sound card of PulseAudio null sinks, for the softphone's device path; `browser`
//! drives Debian's Chromium through chromedriver (WebDriver) from a host of a namespace
//! network, for the web admin.

pub mod audio;
pub mod baresip;
pub mod browser;
pub mod capture;
pub mod kamailio;
pub mod kit;
pub mod netns;
pub mod office;
pub mod process;
pub mod pulse;
pub mod scenario;
pub mod sipp;
