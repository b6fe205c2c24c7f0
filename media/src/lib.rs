//! # media — the media engine
//!
//! Layer: media. Knows nothing of SIP; the applications join the two.
//!
//! ## Brief overview
//! - [`rtp`]: RTP packets, sequence extension, RFC 3550 loss/jitter statistics and RTCP
//!   reports; [`srtp`]: SRTP with SDES keys (webrtc-srtp).
//! - [`g711`]: μ-law and A-law; [`jitter`]: the adaptive jitter buffer.
//! - [`dtmf`]: RFC 4733 events and in-band Goertzel detection; [`tones`]: call-progress tones
//!   for US/UK/EU; [`mixer`]: mix-minus conference mixing.
pub mod dtmf;
pub mod g711;
pub mod jitter;
pub mod mixer;
pub mod rtp;
pub mod srtp;
pub mod tones;
