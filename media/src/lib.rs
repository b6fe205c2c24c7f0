//! # media — the media engine
//!
//! Layer: media. Knows nothing of SIP; the applications join the two.
//!
//! ## Brief overview
//! - [`rtp`]: RTP packets, sequence extension, RFC 3550 loss/jitter statistics and RTCP
//!   reports; [`srtp`]: SRTP with SDES keys, in place; [`sdes`]: which legs are SRTP,
//!   and with which keys (the PBX's and the softphone's one decision).
//! - [`session`]: one call leg's media — codec, SRTP, jitter buffer, DTMF, statistics and
//!   a MOS estimate — pure and told the time.
//! - [`g711`]: μ-law and A-law; [`codec`]: G.711 and Opus behind one interface, with loss
//!   concealment; [`resample`]: rate conversion (rubato); [`jitter`]: the adaptive jitter
//!   buffer; [`analysis`]: dominant frequency and log-spectral distance; [`playout`]: the
//!   buffer before a sound card, following the drift between its clock and the far end's.
//! - [`dtmf`]: RFC 4733 events and in-band Goertzel detection; [`tones`]: call-progress tones
//!   for US/UK/EU; [`mixer`]: mix-minus conference mixing; [`wav`]: WAV sources (music on
//!   hold, greetings) and sinks (voicemail, recordings); [`device`]: null and file devices,
//!   sound cards with the `devices` feature (cpal).
pub mod analysis;
pub mod codec;
pub mod device;
pub mod dtmf;
pub mod echo;
pub mod g711;
pub mod jitter;
pub mod mixer;
pub mod playout;
pub mod resample;
pub mod rtp;
pub mod sdes;
pub mod session;
pub mod srtp;
pub mod tones;
pub mod wav;
