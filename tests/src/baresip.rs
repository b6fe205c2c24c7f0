//! A baresip instance (Debian `baresip-core`) for tests: headless, one account that answers
//! automatically, audio from a WAV file, what it decodes recorded by `sndfile`, commands over
//! the `cons` UDP socket. Killed when dropped.

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Baresip {
    child: Child,
    pub dir: tempfile::TempDir,
    pub sip: SocketAddr,
    cons: SocketAddr,
    /// The network namespace it runs in, if not the machine's own.
    netns: Option<String>,
}

fn free_port() -> u16 {
    loop {
        let p = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .unwrap_or(0);
        // baresip binds UDP and TCP on the port (SIP, and the cons console), and TLS on
        // port + 1 (PEERS.md).
        if p != 0
            && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
            && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok()
        {
            return p;
        }
    }
}

impl Baresip {
    /// Starts baresip as `sip:bob@127.0.0.1:PORT`, playing `source` (8 kHz mono WAV), with
    /// `account_params` appended to the account line (e.g. `;mediaenc=srtp-mand`).
    pub fn start(source: &Path, account_params: &str) -> std::io::Result<Baresip> {
        Self::start_with(source, |sip_port| {
            format!(
                "<sip:bob@127.0.0.1:{sip_port}>;regint=0;answermode=auto;audio_codecs=PCMU{account_params}"
            )
        })
    }

    /// Starts baresip with the account line `account(its own SIP port)` — e.g. one that
    /// registers to a PBX. A port another process took between choosing and binding it
    /// means another try with new ports.
    pub fn start_with(source: &Path, account: impl Fn(u16) -> String) -> std::io::Result<Baresip> {
        Self::start_full(source, account, "")
    }

    /// Like [`Baresip::start_with`], with Opus loaded too: mono, 24 kbit/s, in-band FEC for
    /// 5 % loss, the VoIP application — as the softphone sends it. The account line picks it with `audio_codecs=opus/48000/2`.
    pub fn start_opus(source: &Path, account: impl Fn(u16) -> String) -> std::io::Result<Baresip> {
        Self::start_full(
            source,
            account,
            "module opus.so\nopus_stereo no\nopus_sprop_stereo no\nopus_bitrate 24000\n\
             opus_inbandfec yes\nopus_packet_loss 5\nopus_application voip\n",
        )
    }

    /// [`Baresip::start_with`], with `extra` lines in its configuration (e.g. `sip_cafile`).
    pub fn start_full(
        source: &Path,
        account: impl Fn(u16) -> String,
        extra: &str,
    ) -> std::io::Result<Baresip> {
        let audio = format!(
            "audio_player aubridge,nil\naudio_source aufile,{}\naudio_alert aubridge,nil\n\
             module aufile.so\nmodule aubridge.so\n",
            source.display()
        );
        Self::start_audio(&audio, account, extra, || Command::new("baresip"))
    }

    /// baresip with the default ALSA device of `card` as its microphone, speaker and ringer
    /// (the `alsa` module), its account line `account(its own SIP port)`.
    pub fn start_on_card(
        card: &crate::pulse::Card,
        account: impl Fn(u16) -> String,
    ) -> std::io::Result<Baresip> {
        let audio = "audio_player alsa,default\naudio_source alsa,default\n\
                     audio_alert alsa,default\nmodule alsa.so\n";
        Self::start_audio(audio, account, "", || card.command("baresip"))
    }

    /// baresip with `audio` (its devices and their modules) and `extra` configuration lines,
    /// run by `command` (`baresip` in some environment).
    fn start_audio(
        audio: &str,
        account: impl Fn(u16) -> String,
        extra: &str,
        command: impl Fn() -> Command,
    ) -> std::io::Result<Baresip> {
        let mut tries = 0;
        loop {
            match Self::try_start(audio, &account, extra, command()) {
                Err(e) if tries < 5 && e.to_string().contains("already in use") => {
                    tries += 1;
                }
                r => return r,
            }
        }
    }

    fn try_start(
        audio: &str,
        account: &impl Fn(u16) -> String,
        extra: &str,
        mut command: Command,
    ) -> std::io::Result<Baresip> {
        let dir = tempfile::tempdir()?;
        let (sip_port, cons_port) = (free_port(), free_port());
        let line = account(sip_port);
        let config = format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{sip_port}\nnet_interface 127.0.0.1\n\
module_path /usr/lib/baresip/modules\n{audio}module cons.so\nmodule g711.so\n\
module sndfile.so\nmodule srtp.so\nmodule_app account.so\nmodule_app menu.so\n\
snd_path {}\ncons_listen 127.0.0.1:{cons_port}\n{extra}",
            dir.path().display(),
        );
        std::fs::write(dir.path().join("config"), config)?;
        std::fs::write(dir.path().join("accounts"), format!("{line}\n"))?;
        let child = command
            .arg("-f")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("out.log"))?)
            .stderr(Stdio::null())
            .spawn()?;
        let b = Baresip {
            child,
            sip: SocketAddr::from(([127, 0, 0, 1], sip_port)),
            cons: SocketAddr::from(([127, 0, 0, 1], cons_port)),
            dir,
            netns: None,
        };
        b.ready()
    }

    /// Starts baresip in network namespace `netns` as a phone of its own: SIP on `listen`
    /// (the host's address, port 5060 usually) with media from the same interface,
    /// `account` as its account line, playing `source`; its console on the namespace's
    /// loopback.
    pub fn start_in(
        netns: &str,
        listen: SocketAddr,
        source: &Path,
        account: &str,
    ) -> std::io::Result<Baresip> {
        Self::start_in_with(netns, listen, source, account, "")
    }

    /// [`Baresip::start_in`] with `extra` lines of configuration (e.g. `sip_cafile PATH`).
    pub fn start_in_with(
        netns: &str,
        listen: SocketAddr,
        source: &Path,
        account: &str,
        extra: &str,
    ) -> std::io::Result<Baresip> {
        let dir = tempfile::tempdir()?;
        let cons_port = 5555;
        let prefer_v6 = if listen.is_ipv6() {
            "net_prefer_ipv6 yes\n"
        } else {
            ""
        };
        let config = format!(
            "poll_method epoll\nsip_listen {listen}\nnet_interface eth0\n{prefer_v6}\
audio_player aubridge,nil\naudio_source aufile,{}\naudio_alert aubridge,nil\n\
module_path /usr/lib/baresip/modules\nmodule cons.so\nmodule g711.so\nmodule aufile.so\n\
module aubridge.so\nmodule sndfile.so\nmodule srtp.so\nmodule_app account.so\n\
module_app menu.so\nsnd_path {}\ncons_listen 127.0.0.1:{cons_port}\n{extra}",
            source.display(),
            dir.path().display(),
        );
        std::fs::write(dir.path().join("config"), config)?;
        std::fs::write(dir.path().join("accounts"), format!("{account}\n"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", netns, "baresip", "-f"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("out.log"))?)
            .stderr(Stdio::null())
            .spawn()?;
        Baresip {
            child,
            sip: listen,
            cons: SocketAddr::from(([127, 0, 0, 1], cons_port)),
            dir,
            netns: Some(netns.to_string()),
        }
        .ready()
    }

    /// Waits for baresip to say it is ready.
    fn ready(mut self) -> std::io::Result<Baresip> {
        let b = &mut self;
        let start = Instant::now();
        loop {
            let log = b.log();
            // A console that could not listen takes no commands: start again elsewhere.
            if log.contains("failed to listen") {
                return Err(std::io::Error::other(format!(
                    "baresip: a port was already in use:\n{log}"
                )));
            }
            if log.contains("baresip is ready") {
                break;
            }
            if start.elapsed() > Duration::from_secs(10) || b.child.try_wait()?.is_some() {
                return Err(std::io::Error::other(format!(
                    "baresip did not start:\n{}",
                    b.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(self)
    }

    /// Kills the phone at once (SIGKILL): it vanishes without a BYE or an unregister.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process id, for reading its CPU time and memory from `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What baresip printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("out.log")).unwrap_or_default()
    }

    /// Sends keys or a `/command` to baresip's console.
    pub fn command(&self, text: &str) -> std::io::Result<()> {
        if let Some(ns) = &self.netns {
            // The console listens on the namespace's own loopback.
            let port = self.cons.port().to_string();
            let status = Command::new("ip")
                .args(["netns", "exec", ns, "bash", "-c"])
                .arg(format!("printf '%s' \"$1\" > /dev/udp/127.0.0.1/{port}"))
                .args(["_", text])
                .status()?;
            return if status.success() {
                Ok(())
            } else {
                Err(std::io::Error::other("the console command was not sent"))
            };
        }
        let s = UdpSocket::bind("127.0.0.1:0")?;
        s.send_to(text.as_bytes(), self.cons)?;
        Ok(())
    }

    /// The recording of what baresip heard on its latest call (the newest `*-dec.wav`).
    pub fn latest_decoded(&self) -> Option<PathBuf> {
        let mut files = self.decoded_files();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files.pop()
    }

    /// The WAV files sndfile wrote with what baresip decoded (`*-dec.wav`).
    pub fn decoded_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.dir.path())
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.to_string_lossy().ends_with("-dec.wav"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::io::stdout().flush();
    }
}
