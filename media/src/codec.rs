//! Codecs behind one interface: G.711 (PCMU/PCMA) and Opus (8/16/48 kHz, in-band FEC, DTX,
//! bitrate), each with packet-loss concealment. Frames are 20 ms of mono 16-bit samples at
//! the codec's own rate.

use crate::g711::Law;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("opus: {0}")]
    Opus(String),
}

fn opus_err(e: opus::Error) -> CodecError {
    CodecError::Opus(e.to_string())
}

/// Opus settings.
#[derive(Debug, Clone, Copy)]
pub struct OpusConfig {
    /// 8000, 16000 or 48000.
    pub rate: u32,
    pub bitrate: i32,
    pub fec: bool,
    pub dtx: bool,
    /// Expected loss, for FEC (percent).
    pub loss_percent: i32,
}

impl Default for OpusConfig {
    fn default() -> Self {
        OpusConfig {
            rate: 48000,
            bitrate: 24000,
            fec: true,
            dtx: false,
            loss_percent: 5,
        }
    }
}

/// An encoder and a decoder for one stream.
pub enum Codec {
    G711 {
        law: Law,
        last: Vec<i16>,
        lost_run: u32,
    },
    Opus {
        enc: Box<opus::Encoder>,
        dec: Box<opus::Decoder>,
        rate: u32,
    },
}

impl Codec {
    pub fn g711(law: Law) -> Self {
        Codec::G711 {
            law,
            last: vec![0; 160],
            lost_run: 0,
        }
    }

    pub fn opus(cfg: OpusConfig) -> Result<Self, CodecError> {
        let mut enc = opus::Encoder::new(cfg.rate, opus::Channels::Mono, opus::Application::Voip)
            .map_err(opus_err)?;
        enc.set_bitrate(opus::Bitrate::Bits(cfg.bitrate))
            .map_err(opus_err)?;
        enc.set_inband_fec(cfg.fec).map_err(opus_err)?;
        enc.set_packet_loss_perc(cfg.loss_percent)
            .map_err(opus_err)?;
        enc.set_dtx(cfg.dtx).map_err(opus_err)?;
        let dec = opus::Decoder::new(cfg.rate, opus::Channels::Mono).map_err(opus_err)?;
        Ok(Codec::Opus {
            enc: Box::new(enc),
            dec: Box::new(dec),
            rate: cfg.rate,
        })
    }

    /// Samples per second of the codec's PCM.
    pub fn rate(&self) -> u32 {
        match self {
            Codec::G711 { .. } => 8000,
            Codec::Opus { rate, .. } => *rate,
        }
    }

    /// Samples in a 20 ms frame.
    pub fn frame_samples(&self) -> usize {
        self.rate() as usize / 50
    }

    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        match self {
            Codec::G711 { law, .. } => {
                law.encode(pcm, out);
                Ok(())
            }
            Codec::Opus { enc, .. } => {
                out.resize(1500, 0);
                let n = enc.encode(pcm, out).map_err(opus_err)?;
                out.truncate(n);
                Ok(())
            }
        }
    }

    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        match self {
            Codec::G711 {
                law,
                last,
                lost_run,
            } => {
                law.decode(payload, out);
                last.clone_from(out);
                *lost_run = 0;
                Ok(())
            }
            Codec::Opus { dec, rate, .. } => {
                out.resize(*rate as usize / 50 * 6, 0);
                let n = dec.decode(payload, out, false).map_err(opus_err)?;
                out.truncate(n);
                Ok(())
            }
        }
    }

    /// A frame for a lost packet. Opus runs its own concealment, or recovers the frame from
    /// the FEC in `next` (the packet after the lost one) when it has it. G.711 repeats the
    /// last frame, 3 dB quieter each time and silent after 60 ms (in the spirit of G.711
    /// Appendix I, without its pitch search).
    pub fn conceal(&mut self, next: Option<&[u8]>, out: &mut Vec<i16>) -> Result<(), CodecError> {
        match self {
            Codec::G711 { last, lost_run, .. } => {
                *lost_run += 1;
                let gain = if *lost_run > 3 {
                    0.0
                } else {
                    0.707f32.powi(*lost_run as i32)
                };
                out.clear();
                out.extend(last.iter().map(|s| (f32::from(*s) * gain) as i16));
                Ok(())
            }
            Codec::Opus { dec, rate, .. } => {
                out.resize(*rate as usize / 50, 0);
                let n = match next {
                    Some(p) => dec.decode(p, out, true),
                    None => dec.decode(&[], out, false),
                }
                .map_err(opus_err)?;
                out.truncate(n);
                Ok(())
            }
        }
    }
}
