//! One call of a line: its INVITE (sent or received), its dialog once answered, the SDP the
//! phone offered or answered, and the media task that carries its audio — the line's audio
//! source in, what it hears out to a WAV per call (headless) — through a
//! [`media::session::MediaSession`] on its own RTP socket.

use media::codec::OpusConfig;
use media::device::{Devices, Input, InputAt, Output, OutputAt};
use media::g711::Law;
use media::sdes::{Keys, Mode, Policy, Verdict};
use media::session::{MediaSession, Payload, SessionConfig};
use media::srtp::Crypto;
use sip::Request;
use sip::dialog::Dialog;
use sip::sdp::{self, Codec, Direction, Local, Negotiated};
use sip::transaction::{Peer, TsxKey};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// What the engine tells a call's media task.
#[derive(Debug, Clone)]
pub enum MediaControl {
    /// The peer's SDP names a new address.
    Remote(SocketAddr),
    /// Stop (or start again) sending audio: on hold.
    Hold(bool),
    /// Send a digit as RFC 4733 events.
    Dtmf(char),
    /// Send silence instead of the input (or the input again).
    Mute(bool),
    /// Mix with another call in the phone (this call's slot in the mix), or stop.
    Mix(Option<(LocalMix, usize)>),
    /// The speaker's volume, in percent.
    Volume(u8),
    /// Move to these sound cards (names as in [`crate::config::Audio`]; empty: the default).
    Devices { microphone: String, speaker: String },
}

/// Two calls mixed in the phone, a local 3-way conference as the Cisco 7960 makes one: each
/// call's media task leaves what it heard in its slot, and sends the microphone plus what
/// the other call heard. Both calls must run at the same rate (their frames are mixed as
/// they are); a slot older than 100 ms (its call ended or stalled) is left out.
pub type LocalMix = std::sync::Arc<std::sync::Mutex<[(Vec<i16>, Option<Instant>); 2]>>;

/// A new, empty local mix.
pub fn local_mix() -> LocalMix {
    std::sync::Arc::new(std::sync::Mutex::new([
        (Vec::new(), None),
        (Vec::new(), None),
    ]))
}

/// Where a call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// Our INVITE is out.
    Calling,
    /// The far end rings (180/183).
    Ringing,
    /// An INVITE came in and waits for `answer` or `reject`.
    Incoming,
    Established,
}

pub struct Call {
    pub id: u32,
    /// The line (index into the engine's lines).
    pub line: usize,
    pub state: CallState,
    pub outgoing: bool,
    /// The other party (number or URI) as the phone shows it.
    pub party: String,
    pub invite: Request,
    pub key: TsxKey,
    /// Our To tag on an incoming call.
    pub tag: String,
    pub peer: Peer,
    pub dialog: Option<Dialog>,
    /// Our side of the SDP.
    pub local: Local,
    pub rtp: Option<UdpSocket>,
    /// RTCP, on the port after RTP's (none when that port was taken).
    pub rtcp: Option<UdpSocket>,
    /// Whether our one answer to a 401/407 was spent.
    pub authorized: bool,
    /// Our re-INVITE in flight (hold, resume), and our REFER.
    pub reinvite: Option<TsxKey>,
    pub refer: Option<TsxKey>,
    /// Our other call an attended transfer of this one names (its party takes this call).
    pub consulted: Option<u32>,
    /// This call was placed for a REFER in call N: its outcome is NOTIFYed there.
    pub notify_on: Option<u32>,
    /// We hold the call; the other side holds it.
    pub on_hold: bool,
    pub held_by_peer: bool,
    /// We offered in our 200 (the INVITE had no SDP): the answer comes in the ACK.
    pub late_offer: bool,
    /// Stops the retransmission of our last 2xx to an INVITE when its ACK comes.
    pub acked: Option<tokio::sync::oneshot::Sender<()>>,
    /// The audio's sample rate, once it runs (8000 for G.711, 48000 for Opus).
    pub rate: u32,
    /// An incoming call's distinctive ring (from its Alert-Info), empty for the usual one.
    pub ring: String,
    /// What decides the call's SRTP (the line's `srtp` and transport), our keys for it,
    /// and the keys agreed `(ours, theirs)`.
    pub srtp: Policy,
    pub keys: Keys,
    srtp_keys: Option<(Crypto, Crypto)>,
    /// The media task's control (dropping it ends the task).
    media: Option<mpsc::UnboundedSender<MediaControl>>,
}

impl Call {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u32,
        line: usize,
        outgoing: bool,
        party: String,
        invite: Request,
        key: TsxKey,
        peer: Peer,
        (rtp, rtcp, local): (UdpSocket, Option<UdpSocket>, Local),
    ) -> Call {
        Call {
            id,
            line,
            state: if outgoing {
                CallState::Calling
            } else {
                CallState::Incoming
            },
            outgoing,
            party,
            invite,
            key,
            tag: String::new(),
            peer,
            dialog: None,
            local,
            rtp: Some(rtp),
            rtcp,
            authorized: false,
            reinvite: None,
            refer: None,
            consulted: None,
            notify_on: None,
            on_hold: false,
            held_by_peer: false,
            late_offer: false,
            acked: None,
            rate: 0,
            ring: String::new(),
            srtp: Policy::default(),
            keys: Keys::default(),
            srtp_keys: None,
            media: None,
        }
    }

    /// Takes an SDP offer's SRTP as the policy says: our answer's key (under the offerer's
    /// tag), or none; Err with why for an offer to refuse (488).
    pub fn srtp_offer(&mut self, offer: &[u8]) -> Result<(), &'static str> {
        match self.srtp.on_offer(offer) {
            Verdict::Refuse(why) => return Err(why),
            Verdict::Srtp { theirs, .. } => {
                let ours = self.keys.answer(&theirs);
                self.local.crypto = vec![ours.to_sdp()];
                self.srtp_keys = Some((ours, theirs));
            }
            Verdict::Plain => {
                self.local.crypto.clear();
                self.srtp_keys = None;
            }
        }
        Ok(())
    }

    /// Reads the SDP answer to our offer, and the SRTP key it took when ours carried keys.
    pub fn take_answer(&mut self, body: &[u8]) -> Option<Negotiated> {
        let agreed = sdp::take_answer(&sdp::parse(body).ok()?, &self.local).ok()?;
        if !self.local.crypto.is_empty() {
            self.srtp_keys = self.keys.accepted(body);
        }
        Some(agreed)
    }

    /// Is the call's audio encrypted (SRTP agreed)?
    pub fn encrypted(&self) -> bool {
        self.srtp_keys.is_some()
    }

    /// Starts the audio once the SDP is agreed, through `audio`: the sound card (resampled to
    /// the codec), or a source file played into the call (looped) and what arrives recorded
    /// in a folder (one WAV per call). A device that cannot be opened is reported, and the
    /// call goes on in silence.
    pub fn start_media(
        &mut self,
        agreed: &Negotiated,
        audio: &crate::config::Audio,
        report: Reporter,
    ) {
        let (Some(rtp), Some(remote)) = (self.rtp.take(), agreed.remote) else {
            return;
        };
        let Some((pt, codec)) = agreed.codecs.first() else {
            return;
        };
        if self.srtp.mode == Mode::Mandatory && self.srtp_keys.is_none() {
            return report(MediaReport::Unencrypted);
        }
        let (payload, rate) = if codec.name.eq_ignore_ascii_case("opus") {
            let o = OpusConfig::default();
            (Payload::Opus(o), o.rate)
        } else if codec.name.eq_ignore_ascii_case("PCMA") {
            (Payload::G711(Law::A), 8000)
        } else {
            (Payload::G711(Law::Mu), 8000)
        };
        let Ok(session) = MediaSession::new(SessionConfig {
            payload,
            payload_type: *pt,
            telephone_event: agreed.telephone_event,
            srtp: self.srtp_keys.clone(),
            ssrc: rand::random(),
        }) else {
            return;
        };
        let (input, output) = if audio.devices {
            let (input, i) = microphone(&audio.system, &audio.microphone, rate);
            let (output, o) = speaker(&audio.system, &audio.speaker, rate);
            for note in [i, o].into_iter().flatten() {
                report(MediaReport::DeviceError(note));
            }
            (input, output)
        } else {
            let input = audio
                .source
                .as_deref()
                .and_then(|p| media::wav::WavSource::open(p, rate, true).ok())
                .map_or(Input::Null { rate }, |s| Input::File(s, rate));
            let output = audio
                .record_dir
                .as_deref()
                .map(|d| d.join(format!("call-{}-{}.wav", self.id, std::process::id())))
                .and_then(|p: PathBuf| media::wav::WavSink::create(&p, rate).ok())
                .map_or(Output::Null { rate }, |s| Output::File(s, rate));
            match (InputAt::new(input, rate), OutputAt::new(output, rate)) {
                (Ok(i), Ok(o)) => (i, o),
                _ => null_devices(rate),
            }
        };
        // The sound card's microphone hears the speaker: its echo is cancelled.
        let echo = if audio.devices && audio.echo_cancellation {
            media::echo::EchoCanceller::new(rate, audio.noise_suppression)
                .map_err(|e| report(MediaReport::DeviceError(format!("echo cancellation: {e}"))))
                .ok()
        } else {
            None
        };
        let (control, controlled) = mpsc::unbounded_channel();
        self.media = Some(control);
        self.rate = rate;
        tokio::spawn(media_loop(
            (rtp, self.rtcp.take()),
            remote,
            session,
            Sound {
                input,
                output,
                echo,
                system: audio.devices.then(|| audio.system.clone()),
                volume: audio.speaker_volume,
            },
            controlled,
            report,
        ));
    }

    /// Tells the media task something; false when the call has no media.
    /// Whether the call's audio is running.
    pub fn has_media(&self) -> bool {
        self.media.is_some()
    }

    pub fn media(&self, c: MediaControl) -> bool {
        self.media.as_ref().is_some_and(|m| m.send(c).is_ok())
    }

    /// Our next SDP offer or answer body: the same session, the version up by one.
    pub fn next_local(&mut self, direction: Direction) -> &Local {
        self.local.version += 1;
        self.local.direction = direction;
        &self.local
    }
}

/// Our capabilities for a new call: the line's `codecs` (names from
/// [`crate::config::CODECS`], in order of preference) and RFC 4733 events on `port`.
pub fn local_caps(addr: std::net::IpAddr, port: u16, codecs: &[String]) -> Local {
    let mut offered: Vec<Codec> = codecs
        .iter()
        .filter_map(|c| match c.as_str() {
            "PCMU" => Some(Codec::pcmu()),
            "PCMA" => Some(Codec::pcma()),
            "opus" => Some(Codec::opus()),
            _ => None,
        })
        .collect();
    offered.push(Codec::telephone_event());
    Local {
        addr,
        port,
        codecs: offered,
        direction: Direction::SendRecv,
        crypto: Vec::new(),
        session_id: rand::random::<u32>().into(),
        version: 1,
    }
}

/// Answers an SDP offer: our SDP body and what was agreed.
pub fn answer_offer(body: &[u8], local: &Local) -> Result<(String, Negotiated), sdp::SdpError> {
    sdp::answer(&sdp::parse(body)?, local)
}

/// The codecs an SDP body names (`a=rtpmap` encodings, else the static payload numbers of
/// its first `m=` line), for telling the user what could not be agreed.
pub fn offered_codecs(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mapped: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("a=rtpmap:"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    if !mapped.is_empty() {
        return mapped.join(", ");
    }
    text.lines()
        .find_map(|l| l.strip_prefix("m="))
        .map(|m| m.split_whitespace().skip(3).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

/// What a call's media task reports.
pub enum MediaReport {
    /// The receive figures, every [`QUALITY_EVERY`] once audio has arrived.
    Quality(media::session::CallStats),
    /// A digit the other side sent as RFC 4733 events.
    Dtmf(char),
    /// The audio runs encrypted with this SRTP suite.
    Encrypted(&'static str),
    /// SRTP is mandatory but the other side agreed no key: no audio goes in the clear.
    Unencrypted,
    /// Something about the sound cards the user should know (one could not be opened, or
    /// went away): what happened and what the call does now.
    DeviceError(String),
}

/// Waits for an RTCP packet, or forever without an RTCP socket.
async fn recv_rtcp(s: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match s {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// Now as a 64-bit NTP timestamp (seconds since 1900 in the high word).
fn ntp_now() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs() + 2_208_988_800;
    (secs << 32) | ((u64::from(since.subsec_nanos()) << 32) / 1_000_000_000)
}

/// The microphone `name` (empty: the system's default) of `system`, read at `rate`; when it
/// cannot be opened, the default one, or silence; with what to tell the user then.
fn microphone(system: &Devices, name: &str, rate: u32) -> (InputAt, Option<String>) {
    let open = |n: &str| {
        system
            .open_input((!n.is_empty()).then_some(n))
            .and_then(|d| InputAt::new(Input::Device(d), rate))
    };
    let silence = || InputAt::new(Input::Null { rate }, rate).unwrap_or_else(|_| unreachable!());
    match open(name) {
        Ok(i) => (i, None),
        Err(e) if !name.is_empty() => match open("") {
            Ok(i) => (i, Some(format!("{e}; the default microphone instead"))),
            Err(_) => (silence(), Some(format!("{e}; no microphone: silence"))),
        },
        Err(e) => (silence(), Some(format!("{e}; no microphone: silence"))),
    }
}

/// The speaker `name` (empty: the default) of `system`, played at `rate`; when it cannot be
/// opened, the default one, or nothing; with what to tell the user then.
fn speaker(system: &Devices, name: &str, rate: u32) -> (OutputAt, Option<String>) {
    let open = |n: &str| {
        system
            .open_output((!n.is_empty()).then_some(n))
            .and_then(|d| OutputAt::new(Output::Device(d), rate))
    };
    let nothing = || OutputAt::new(Output::Null { rate }, rate).unwrap_or_else(|_| unreachable!());
    match open(name) {
        Ok(o) => (o, None),
        Err(e) if !name.is_empty() => match open("") {
            Ok(o) => (o, Some(format!("{e}; the default speaker instead"))),
            Err(_) => (
                nothing(),
                Some(format!("{e}; no speaker: nothing is heard")),
            ),
        },
        Err(e) => (
            nothing(),
            Some(format!("{e}; no speaker: nothing is heard")),
        ),
    }
}

/// A call's sound: where it comes from and goes to, the echo canceller between them, the
/// sound cards to turn to when a device goes away (none for files), the speaker's volume.
struct Sound {
    input: InputAt,
    output: OutputAt,
    echo: Option<media::echo::EchoCanceller>,
    system: Option<media::device::Devices>,
    volume: u8,
}

impl Sound {
    /// A sound card that went away mid-call (a headset pulled out): the call moves to the
    /// system's default device, or to silence when there is none, and says so; it goes on.
    fn replace_lost(&mut self, report: &Reporter) {
        let Some(system) = &self.system else {
            return;
        };
        if !self.input.is_alive() {
            let (input, note) = microphone(system, "", self.input.rate());
            self.input = input;
            report(MediaReport::DeviceError(match note {
                None => "the microphone went away; now the default microphone".into(),
                Some(n) => format!("the microphone went away; {n}"),
            }));
        }
        if !self.output.is_alive() {
            let (output, note) = speaker(system, "", self.output.rate());
            self.output = output;
            report(MediaReport::DeviceError(match note {
                None => "the speaker went away; now the default speaker".into(),
                Some(n) => format!("the speaker went away; {n}"),
            }));
        }
    }

    /// Moves to the sound cards named (a device just plugged in, chosen in the settings).
    fn switch(&mut self, microphone_name: &str, speaker_name: &str, report: &Reporter) {
        let Some(system) = &self.system else {
            return;
        };
        let (input, i) = microphone(system, microphone_name, self.input.rate());
        let (output, o) = speaker(system, speaker_name, self.output.rate());
        (self.input, self.output) = (input, output);
        for note in [i, o].into_iter().flatten() {
            report(MediaReport::DeviceError(note));
        }
    }

    /// Plays what was heard at the speaker's volume; the echo canceller learns it as what
    /// the microphone may hear back.
    fn play(&mut self, heard: &mut [i16]) {
        if self.volume < 100 {
            let gain = crate::config::Audio::gain(self.volume);
            for s in heard.iter_mut() {
                *s = (f32::from(*s) * gain) as i16;
            }
        }
        if let Some(e) = &mut self.echo {
            e.render(heard);
        }
        let _ = self.output.play(heard);
    }
}

/// Silence in, nothing out.
fn null_devices(rate: u32) -> (InputAt, OutputAt) {
    (
        InputAt::new(Input::Null { rate }, rate).unwrap_or_else(|_| unreachable!()),
        OutputAt::new(Output::Null { rate }, rate).unwrap_or_else(|_| unreachable!()),
    )
}

/// Hands a call's media reports to whoever shows them.
pub type Reporter = Box<dyn Fn(MediaReport) + Send>;

/// How often a call's quality figures are reported.
pub const QUALITY_EVERY: Duration = Duration::from_secs(2);

/// Carries one call's audio every 20 ms until told to stop: the input frame out, what
/// arrived (through the jitter buffer) to the output; every [`QUALITY_EVERY`], once audio
/// has arrived, the receive figures (jitter, loss, a MOS estimate) go to `report`.
async fn media_loop(
    (rtp, rtcp): (UdpSocket, Option<UdpSocket>),
    remote: SocketAddr,
    mut session: MediaSession,
    mut sound: Sound,
    mut control: mpsc::UnboundedReceiver<MediaControl>,
    report: Reporter,
) {
    let mut quality = tokio::time::interval(QUALITY_EVERY);
    quality.tick().await;
    // RTCP: a sender report every 5 s (RFC 3550's minimum), the first after a second, to the
    // port after the peer's RTP port (or where its RTCP comes from).
    let mut reports = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(5),
    );
    let mut rtcp_dest = SocketAddr::new(remote.ip(), remote.port().wrapping_add(1));
    let mut rtcp_buf = [0u8; 1500];
    // Frames keep to the wall clock's 50 a second: a late tick is made up at once (Burst),
    // not carried forward (Delay), which ran the call 0.2 % slow against the sound card —
    // the microphone's queue grew and the speaker's starved.
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut frame = vec![0i16; session.frame_samples()];
    let mut heard = Vec::new();
    let mut buf = [0u8; 2048];
    let mut dest = remote;
    let mut held = false;
    let mut muted = false;
    let mut mix: Option<(LocalMix, usize)> = None;
    loop {
        tokio::select! {
            c = control.recv() => match c {
                None => break,
                Some(MediaControl::Remote(a)) => {
                    dest = a;
                    rtcp_dest = SocketAddr::new(a.ip(), a.port().wrapping_add(1));
                }
                Some(MediaControl::Hold(h)) => held = h,
                Some(MediaControl::Mute(m)) => muted = m,
                Some(MediaControl::Mix(m)) => mix = m,
                Some(MediaControl::Volume(v)) => sound.volume = v,
                Some(MediaControl::Devices { microphone, speaker }) => {
                    sound.switch(&microphone, &speaker, &report);
                }
                Some(MediaControl::Dtmf(d)) => {
                    session.send_dtmf(d);
                }
            },
            r = rtp.recv_from(&mut buf) => {
                if let Ok((n, from)) = r {
                    dest = from; // symmetric RTP: answer where it comes from
                    session.handle_packet(Instant::now(), &buf[..n]);
                    while let Some(media::session::MediaEvent::Dtmf(d)) = session.poll_event() {
                        report(MediaReport::Dtmf(d));
                    }
                }
            }
            r = recv_rtcp(rtcp.as_ref(), &mut rtcp_buf) => {
                if let Ok((n, from)) = r {
                    rtcp_dest = from;
                    session.handle_rtcp(Instant::now(), ntp_now(), &rtcp_buf[..n]);
                }
            }
            _ = reports.tick(), if rtcp.is_some() => {
                if !held
                    && !rtcp_dest.ip().is_unspecified()
                    && let (Some(s), Ok(sr)) =
                        (&rtcp, session.rtcp_sender_report(Instant::now(), ntp_now()))
                {
                    let _ = s.send_to(&sr, rtcp_dest).await;
                }
            }
            _ = quality.tick() => {
                let stats = session.stats();
                if stats.packets_received > 0 {
                    report(MediaReport::Quality(stats));
                }
            }
            _ = tick.tick() => {
                sound.replace_lost(&report);
                sound.input.read(&mut frame);
                if let Some(e) = &mut sound.echo {
                    e.capture(&mut frame);
                }
                if muted {
                    frame.fill(0);
                }
                let now = Instant::now();
                let got = session.poll_frame(now, &mut heard).is_ok() && !heard.is_empty();
                if let Some((m, me)) = &mix {
                    let mut slots = m.lock().unwrap_or_else(|e| e.into_inner());
                    slots[*me] = (if got { heard.clone() } else { Vec::new() }, Some(now));
                    let (other, at) = &slots[1 - *me];
                    let fresh = at.is_some_and(|t| now.saturating_duration_since(t) < Duration::from_millis(100));
                    if fresh && other.len() == frame.len() {
                        for (f, o) in frame.iter_mut().zip(other) {
                            *f = f.saturating_add(*o);
                        }
                    }
                }
                if !held && !dest.ip().is_unspecified() {
                    let _ = session.send_frame(now, &frame);
                    while let Some(p) = session.poll_transmit() {
                        let _ = rtp.send_to(&p, dest).await;
                    }
                }
                if got {
                    sound.play(&mut heard);
                }
            }
        }
    }
    if let Output::File(sink, _) = sound.output.into_inner() {
        let _ = sink.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A card the configuration names that is not there: the default instead, said once;
    /// no card at all: silence and nothing, said too.
    #[test]
    fn a_missing_card_falls_back_to_the_default_then_to_silence() {
        let sim = media::device::Simulated::default();
        sim.add_input("Built-in Microphone", 1000.0);
        sim.add_output("Built-in Speakers");
        let system = Devices::new(sim.clone());
        let (mut mic, note) = microphone(&system, "Old Headset", 8000);
        assert_eq!(
            note.as_deref(),
            Some("audio device: no input device Old Headset; the default microphone instead")
        );
        let mut frame = [0i16; 160];
        mic.read(&mut frame);
        mic.read(&mut frame);
        assert!(
            frame.iter().any(|s| s.unsigned_abs() > 1000),
            "the default microphone is heard"
        );
        let (_, note) = speaker(&system, "Built-in Speakers", 8000);
        assert_eq!(note, None);
        sim.unplug("Built-in Microphone");
        sim.unplug("Built-in Speakers");
        let (mut mic, note) = microphone(&system, "", 8000);
        assert!(note.is_some_and(|n| n.ends_with("no microphone: silence")));
        mic.read(&mut frame);
        assert!(frame.iter().all(|s| *s == 0));
        let (_, note) = speaker(&system, "Old Headset", 8000);
        assert!(note.is_some_and(|n| n.ends_with("no speaker: nothing is heard")));
    }
}
