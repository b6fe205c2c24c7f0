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

    fn start_full(
        source: &Path,
        account: impl Fn(u16) -> String,
        extra: &str,
    ) -> std::io::Result<Baresip> {
        let mut tries = 0;
        loop {
            match Self::try_start(source, &account, extra) {
                Err(e) if tries < 5 && e.to_string().contains("already in use") => {
                    tries += 1;
                }
                r => return r,
            }
        }
    }

    fn try_start(
        source: &Path,
        account: &impl Fn(u16) -> String,
        extra: &str,
    ) -> std::io::Result<Baresip> {
        let dir = tempfile::tempdir()?;
        let (sip_port, cons_port) = (free_port(), free_port());
        let line = account(sip_port);
        let config = format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{sip_port}\nnet_interface 127.0.0.1\n\
audio_player aubridge,nil\naudio_source aufile,{}\naudio_alert aubridge,nil\n\
module_path /usr/lib/baresip/modules\nmodule cons.so\nmodule g711.so\nmodule aufile.so\n\
module aubridge.so\nmodule sndfile.so\nmodule srtp.so\nmodule_app account.so\nmodule_app menu.so\n\
snd_path {}\ncons_listen 127.0.0.1:{cons_port}\n{extra}",
            source.display(),
            dir.path().display(),
        );
        std::fs::write(dir.path().join("config"), config)?;
        std::fs::write(dir.path().join("accounts"), format!("{line}\n"))?;
        let child = Command::new("baresip")
            .arg("-f")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("out.log"))?)
            .stderr(Stdio::null())
            .spawn()?;
        let mut b = Baresip {
            child,
            sip: SocketAddr::from(([127, 0, 0, 1], sip_port)),
            cons: SocketAddr::from(([127, 0, 0, 1], cons_port)),
            dir,
        };
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
        Ok(b)
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
        let s = UdpSocket::bind("127.0.0.1:0")?;
        s.send_to(text.as_bytes(), self.cons)?;
        Ok(())
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
