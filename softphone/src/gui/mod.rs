//! The window (eframe/egui). The engine runs on its own thread with its own tokio runtime;
//! commands go down its channel and events come back through a channel that wakes the
//! window, so the UI thread never waits on the network. [`model`] is what the window shows,
//! apart from any widget; [`phone`] draws it. With `--control ADDR` the window also takes
//! the headless commands (and `screenshot FILE.png`) on a loopback TCP socket and answers
//! with the events ([`crate::control`], the headless one), which is how `scripts/screenshots`
//! puts it into the states the README shows.

pub mod model;
pub mod phone;
pub mod settings;

use crate::config::Config;
use crate::control;
use crate::engine::{self, Command, Event};
use crate::headless;
use eframe::egui;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc;
use tokio::sync::mpsc::UnboundedSender;

/// The engine on its own thread: its command channel, its events (each also handed to
/// `on_event` first, e.g. to wake the window) and the thread.
pub fn spawn_engine(
    config: Config,
    listen: SocketAddr,
    on_event: impl Fn(&Event) + Send + 'static,
) -> std::io::Result<(
    UnboundedSender<Command>,
    mpsc::Receiver<Event>,
    std::thread::JoinHandle<()>,
)> {
    let (cmd_tx, cmd_rx) = tokio::sync::mpsc::unbounded_channel();
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let (out_tx, out_rx) = mpsc::channel();
    let rt = crate::runtime()?;
    let thread = std::thread::Builder::new()
        .name("engine".into())
        .spawn(move || {
            rt.block_on(async move {
                let forward = tokio::spawn(async move {
                    while let Some(e) = ev_rx.recv().await {
                        on_event(&e);
                        if out_tx.send(e).is_err() {
                            return;
                        }
                    }
                });
                if let Err(e) = engine::run(config, listen, cmd_rx, ev_tx).await {
                    eprintln!("softphone: {e:#}");
                }
                let _ = forward.await;
            });
            rt.shutdown_background();
        })?;
    Ok((cmd_tx, out_rx, thread))
}

/// Writes a screenshot as PNG.
fn save_png(path: &std::path::Path, image: &egui::ColorImage) -> Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut enc = png::Encoder::new(
        std::io::BufWriter::new(file),
        image.size[0] as u32,
        image.size[1] as u32,
    );
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()
        .and_then(|mut w| w.write_image_data(image.as_raw()))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Prints an event as one JSON line on stdout, as headless mode does.
/// Shows an event on stdout and to every control connection.
fn publish(fan: &control::Fan, e: &Event) {
    if let Some(line) = control::line_of(e) {
        print!("{line}");
        let _ = fan.send(line);
    }
}

/// What the control socket asks of the window itself.
enum WindowCommand {
    /// `screenshot FILE.png`
    Screenshot(PathBuf),
    /// `settings open` / `settings close`
    Settings(bool),
}

struct App {
    phone: phone::Phone,
    shots: mpsc::Receiver<WindowCommand>,
    fan: control::Fan,
    /// A call was ringing at the last frame.
    ringing: bool,
}

impl eframe::App for App {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        for command in self.shots.try_iter() {
            let path = match command {
                WindowCommand::Screenshot(path) => path,
                WindowCommand::Settings(true) => {
                    self.phone.open_settings();
                    continue;
                }
                WindowCommand::Settings(false) => {
                    self.phone.close_settings();
                    continue;
                }
            };
            let fan = self.fan.clone();
            ui.ctx()
                .request_screenshot(move |image| match save_png(&path, &image) {
                    Ok(()) => {
                        let line = format!(
                            "{{\"event\":\"screenshot\",\"path\":{:?}}}\n",
                            path.display().to_string()
                        );
                        print!("{line}");
                        let _ = fan.send(line);
                    }
                    Err(message) => publish(&fan, &Event::Error { message }),
                });
        }
        self.phone.show(ui);
        let ringing = self
            .phone
            .model
            .calls
            .iter()
            .any(|c| c.phase == model::Phase::Incoming);
        if ringing && !self.ringing {
            ui.ctx()
                .send_viewport_cmd(egui::ViewportCommand::RequestUserAttention(
                    egui::UserAttentionType::Critical,
                ));
        }
        self.ringing = ringing;
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.phone.send(Command::Quit);
        // Time for the engine to unregister the lines.
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

/// Opens the window and runs until it is closed.
pub fn run_window(
    path: PathBuf,
    config: Config,
    listen: SocketAddr,
    control_addr: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let listener = control_addr.map(std::net::TcpListener::bind).transpose()?;
    let numbers: Vec<String> = config.accounts.iter().map(|a| a.number.clone()).collect();
    let voicemail = config
        .accounts
        .first()
        .map(|a| a.voicemail.clone())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| config.features.voicemail.clone());
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Office softphone")
            .with_inner_size([800.0, 560.0]),
        ..Default::default()
    };
    eframe::run_native(
        "softphone",
        options,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let sound = config.audio.system.clone();
            let fan = control::fan();
            let out = fan.clone();
            let (commands, events, _engine) = spawn_engine(config, listen, move |e| {
                publish(&out, e);
                ctx.request_repaint();
            })?;
            let (shot_tx, shots) = mpsc::channel();
            let (remote_tx, remote) = mpsc::channel();
            if let Some(l) = listener {
                let (ctx, out) = (cc.egui_ctx.clone(), fan.clone());
                control::serve(l, fan.clone(), move |line| {
                    if let Some(path) = line.trim().strip_prefix("screenshot ") {
                        let _ = shot_tx.send(WindowCommand::Screenshot(PathBuf::from(path.trim())));
                    } else if let Some(what @ ("open" | "close")) =
                        line.trim().strip_prefix("settings ")
                    {
                        let _ = shot_tx.send(WindowCommand::Settings(what == "open"));
                    } else {
                        match headless::parse(line) {
                            Ok(c) => {
                                let _ = remote_tx.send(c);
                            }
                            Err(message) => publish(&out, &Event::Error { message }),
                        }
                    }
                    ctx.request_repaint();
                });
            }
            let phone = phone::Phone::new(model::Model::new(&numbers), commands, events, voicemail)
                .with_remote(remote)
                .with_config_file(path)
                .with_sound(sound);
            Ok(Box::new(App {
                phone,
                shots,
                fan,
                ringing: false,
            }))
        }),
    )
    .map_err(|e| anyhow::anyhow!("the window: {e}"))
}
