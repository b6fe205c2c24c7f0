//! # media — the media engine
//!
//! Layer: media. Knows nothing of SIP; the applications join the two.
//!
//! ## Brief overview
//! - [`rtp`]: RTP packets, sequence extension, RFC 3550 loss/jitter statistics and RTCP
//!   reports; [`srtp`]: SRTP with SDES keys (webrtc-srtp).
//! - [`g711`]: μ-law and A-law.
pub mod g711;
pub mod rtp;
pub mod srtp;
