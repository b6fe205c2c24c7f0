//! # pbx-lite — the office PBX
//!
//! Layer: application. Joins `sip`, `stations` (and, for calls, `media`) into the PBX the
//! office's phones register to.
//!
//! ## Brief overview
//! - [`registrar`]: pure registrar with digest auth and the OfficeServ protections.
//! - [`calls`]: back-to-back calls between stations as legs the features re-pair, media
//!   direct or anchored in [`relay`]; [`features`]: the feature codes, hold, transfers.
//! - [`address`]: which of the PBX's addresses each phone is told (never a wildcard;
//!   the public one behind the office's NAT router).
//! - [`nat`]: NAT Check — which phones are behind NAT, where to reach them.
//! - [`relay`]: the media relay — a port per phone, forwarding (latching, RTCP, μ/A-law
//!   transcoding, SRTP per leg keyed as `media::sdes` decides), players for hold music,
//!   mixing rooms; [`sdp`]: the SDP it needs.
//! - [`trunks`]: outside lines — trunk registrations at providers, the office's dialling
//!   plan ([`trunks::dialing`]); the calls through them are in `calls/trunk.rs`.
//! - [`status`]: the status table and access log as JSON rows; [`admin`] serves them over HTTP.
//! - [`server`]: the SIP driver (endpoint, registrar, persistence, access log).

pub mod address;
pub mod admin;
pub mod calls;
pub mod features;
pub mod nat;
pub mod registrar;
pub mod relay;
pub mod sdp;
pub mod server;
pub mod status;
pub mod tls;
pub mod trunks;
pub mod web;
