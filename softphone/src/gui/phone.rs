//! The main window's widgets: line keys with their registration, the message lamp, DND and
//! Forward toggles, the number field with completion and a dial pad, the call list, and soft
//! keys that follow the selected call. Every widget reads the [`Model`]; every action is a
//! [`Command`] sent down the engine's channel, so nothing here waits on the network.

use super::model::{HistoryKind, LineState, Model, Phase};
use super::settings::{FIELDS, Form};
use crate::engine::{Command, Event, Feature, Role, TransferTarget};
use eframe::egui::{self, Color32, Key, RichText};
use media::device::Devices;
use std::sync::mpsc::Receiver;
use tokio::sync::mpsc::UnboundedSender;

/// The phone on the screen: the model, the channels to and from the engine, and what the
/// user is typing.
pub struct Phone {
    pub model: Model,
    commands: UnboundedSender<Command>,
    events: Receiver<Event>,
    /// Commands from elsewhere (the control socket), shown as if the user gave them.
    remote: Option<Receiver<Command>>,
    /// The number being typed.
    pub number: String,
    /// The line new calls go out on (1-based).
    pub line: usize,
    /// The number that reaches voicemail.
    voicemail: String,
    /// The configuration file the settings form writes, and the form while it is open.
    config_file: Option<std::path::PathBuf>,
    pub settings: Option<Form>,
    /// The sound cards the settings form lists and tests.
    sound: Devices,
    /// The microphone the form's meter listens to (and the meter, once it opened), and the
    /// test tone playing.
    meter: Option<(String, Option<Meter>)>,
    testing: Option<(Role, crate::ringer::Playing)>,
}

/// The level of the microphone chosen in the settings form: the loudest sample of what it
/// captured since the last frame, falling back slowly as a meter's needle does.
struct Meter {
    input: Box<dyn media::device::Capture>,
    /// 0 (silence) to 1 (full scale).
    level: f32,
    samples: Vec<i16>,
}

impl Meter {
    fn open(sound: &Devices, name: &str) -> Option<Meter> {
        let input = sound.open_input((!name.is_empty()).then_some(name)).ok()?;
        Some(Meter {
            input,
            level: 0.0,
            samples: Vec::new(),
        })
    }

    /// Reads what was captured (a tenth of a second at most) and moves the needle.
    fn update(&mut self) -> f32 {
        let n = self.input.available().min(self.input.rate() as usize / 10);
        self.samples.resize(n, 0);
        self.input.read(&mut self.samples);
        let peak = self
            .samples
            .iter()
            .map(|s| s.unsigned_abs())
            .max()
            .unwrap_or(0);
        let now = f32::from(peak) / 32768.0;
        self.level = now.max(self.level * 0.9);
        self.level
    }
}

impl Phone {
    pub fn new(
        model: Model,
        commands: UnboundedSender<Command>,
        events: Receiver<Event>,
        voicemail: String,
    ) -> Phone {
        // The history kept from earlier runs, for the list and the completion.
        let _ = commands.send(Command::History(50));
        let _ = commands.send(Command::Contacts);
        Phone {
            model,
            commands,
            events,
            remote: None,
            number: String::new(),
            line: 1,
            voicemail,
            config_file: None,
            settings: None,
            sound: Devices::default(),
            meter: None,
            testing: None,
        }
    }

    /// Lists and tests the sound cards of `sound` in the settings form (the configuration's).
    pub fn with_sound(mut self, sound: Devices) -> Phone {
        self.sound = sound;
        self
    }

    /// Lets the Settings key edit the accounts of the configuration file at `path`.
    pub fn with_config_file(mut self, path: std::path::PathBuf) -> Phone {
        self.config_file = Some(path);
        self
    }

    /// Also takes commands from `remote` (the control socket).
    pub fn with_remote(mut self, remote: Receiver<Command>) -> Phone {
        self.remote = Some(remote);
        self
    }

    /// Gives the engine a command, noting what it will change.
    pub fn send(&mut self, c: Command) {
        // One feature at a time: a second would be refused and would muddle the first.
        if matches!(&c, Command::Feature(f) if !matches!(f, Feature::Retrieve(_) | Feature::Pickup(_)))
            && self.model.feature_pending()
        {
            self.model.notice = "wait: a feature is still under way".into();
            return;
        }
        self.model.on_command(&c);
        let _ = self.commands.send(c);
    }

    /// Takes in what happened since the last frame.
    pub fn update(&mut self) {
        while let Ok(e) = self.events.try_recv() {
            self.model.on_event(&e);
        }
        let remote: Vec<Command> = self
            .remote
            .as_ref()
            .map(|r| r.try_iter().collect())
            .unwrap_or_default();
        for c in remote {
            self.send(c);
        }
    }

    /// Draws the phone into `ui` and acts on what the user did.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        self.update();
        self.keyboard(ui);
        egui::Panel::top("lines").show(ui, |ui| self.line_keys(ui));
        egui::Panel::bottom("notice").show(ui, |ui| {
            ui.label(format!("Status: {}", self.model.notice));
        });
        egui::Panel::left("dial")
            .resizable(false)
            .show(ui, |ui| self.dial_pad(ui));
        egui::CentralPanel::default().show(ui, |ui| {
            if self.settings.is_some() {
                return self.settings_form(ui);
            }
            self.call_list(ui);
            ui.separator();
            self.soft_keys(ui);
            ui.separator();
            self.quality(ui);
            self.contacts(ui);
            self.history(ui);
        });
    }

    /// Enter calls (or answers), Escape hangs up.
    fn keyboard(&mut self, ui: &egui::Ui) {
        let (enter, escape) = ui.input(|i| (i.key_pressed(Key::Enter), i.key_pressed(Key::Escape)));
        if enter {
            match self.model.current() {
                Some(c) if c.phase == Phase::Incoming => {
                    let id = c.id;
                    self.send(Command::Answer(Some(id)));
                }
                _ => self.dial(),
            }
        }
        if escape && let Some(id) = self.model.current().map(|c| c.id) {
            self.send(Command::Hangup(Some(id)));
        }
    }

    fn dial(&mut self) {
        let number = self.number.trim().to_string();
        if !number.is_empty() {
            self.send(Command::Dial {
                number,
                line: self.line,
            });
            self.number.clear();
        }
    }

    fn line_keys(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            for (i, l) in self.model.lines.clone().iter().enumerate() {
                let (mark, color) = match &l.state {
                    LineState::Registered => {
                        ("registered".to_string(), Color32::from_rgb(80, 200, 120))
                    }
                    LineState::Registering => ("registering".to_string(), Color32::GRAY),
                    LineState::Unregistered => ("not registered".to_string(), Color32::GRAY),
                    LineState::Failed(why) => (format!("failed: {why}"), Color32::RED),
                };
                let text =
                    RichText::new(format!("Line {}: {} ({mark})", i + 1, l.number)).color(color);
                if ui.selectable_label(self.line == i + 1, text).clicked() {
                    self.line = i + 1;
                }
            }
            ui.separator();
            let new: u32 = self.model.lines.iter().map(|l| l.new_messages).sum();
            let lamp = if new > 0 {
                RichText::new(format!("Message lamp on: {new} new")).color(Color32::RED)
            } else {
                RichText::new("Message lamp off")
            };
            ui.label(lamp);
            if ui.button("Voicemail").clicked() {
                let number = self.voicemail.clone();
                self.send(Command::Dial {
                    number,
                    line: self.line,
                });
            }
            if self.config_file.is_some() && ui.button("Settings").clicked() {
                self.open_settings();
            }
            ui.separator();
            let dnd = self.model.dnd;
            if ui
                .selectable_label(dnd, if dnd { "DND is on" } else { "DND is off" })
                .clicked()
            {
                self.send(Command::Feature(Feature::Dnd(!dnd)));
            }
            let forward = self.model.forward.clone();
            let label = match &forward {
                Some((kind, to)) => format!("Forward {kind} to {to}"),
                None => "Forward is off".into(),
            };
            if ui.selectable_label(forward.is_some(), label).clicked() {
                let f = match forward {
                    Some(_) => Feature::Forward(None),
                    None if !self.number.trim().is_empty() => {
                        Feature::Forward(Some(("all".into(), self.number.trim().into())))
                    }
                    None => {
                        self.model.notice = "type the number to forward to first".into();
                        return;
                    }
                };
                self.send(Command::Feature(f));
                self.number.clear();
            }
        });
    }

    fn dial_pad(&mut self, ui: &mut egui::Ui) {
        let label = ui.label("Number");
        let field = ui.add(
            egui::TextEdit::singleline(&mut self.number)
                .hint_text("number or sip:uri")
                .desired_width(150.0),
        );
        field.labelled_by(label.id);
        // Completion from the history: numbers called or heard that start with what is typed.
        let typed = self.number.trim().to_string();
        if !typed.is_empty() {
            let mut seen = Vec::new();
            for h in self.model.history.iter().rev() {
                if h.party.starts_with(&typed) && h.party != typed && !seen.contains(&h.party) {
                    seen.push(h.party.clone());
                }
            }
            // And from the contacts, by number or by name.
            let lower = typed.to_lowercase();
            for c in &self.model.contacts {
                if (c.number.starts_with(&typed) || c.name.to_lowercase().contains(&lower))
                    && c.number != typed
                    && !seen.contains(&c.number)
                {
                    seen.push(c.number.clone());
                }
            }
            for s in seen.into_iter().take(4) {
                let name = self
                    .model
                    .contacts
                    .iter()
                    .find(|c| c.number == s && c.name != s)
                    .map(|c| format!(" {}", c.name))
                    .unwrap_or_default();
                if ui.small_button(format!("Complete {s}{name}")).clicked() {
                    self.number = s;
                }
            }
        }
        egui::Grid::new("pad").show(ui, |ui| {
            for row in ["123", "456", "789", "*0#"] {
                for key in row.chars() {
                    let b = egui::Button::new(RichText::new(key.to_string()).size(20.0))
                        .min_size(egui::vec2(44.0, 36.0));
                    if ui.add(b).clicked() {
                        self.number.push(key);
                    }
                }
                ui.end_row();
            }
        });
    }

    fn call_list(&mut self, ui: &mut egui::Ui) {
        ui.heading("Calls");
        if self.model.calls.is_empty() {
            ui.label("No calls");
        }
        let selected = self.model.current().map(|c| c.id);
        for c in self.model.calls.clone() {
            let who = if c.display.is_empty() || c.display == c.party {
                c.party.clone()
            } else {
                format!("{} {}", c.display, c.party)
            };
            let mut text = if c.phase == Phase::Conference {
                let members = self.model.conference_members.join(", ");
                format!("Call {}: conference via the PBX with {members}", c.id)
            } else {
                format!("Call {}: {who}, {}", c.id, c.phase.label())
            };
            if let Some(t) = c.since {
                let s = t.elapsed().as_secs();
                text.push_str(&format!(", {}:{:02}", s / 60, s % 60));
                ui.ctx()
                    .request_repaint_after(std::time::Duration::from_secs(1));
            }
            if c.encrypted.is_some() {
                text.push_str(", encrypted (SRTP)");
            }
            if c.muted {
                text.push_str(", muted");
            }
            if c.joined {
                text.push_str(", in 3-way");
            }
            if !c.ring.is_empty() && c.phase == Phase::Incoming {
                text.push_str(&format!(", ring {}", c.ring));
            }
            if c.early_media && matches!(c.phase, Phase::Dialing | Phase::Ringing) {
                text.push_str(", early audio");
            }
            if !c.diversion.is_empty() {
                text.push_str(&format!(", diverted by {}", c.diversion));
            }
            let color = match c.phase {
                Phase::Incoming => Color32::from_rgb(200, 120, 0),
                Phase::Held | Phase::HeldByOther => Color32::GRAY,
                _ => ui.visuals().text_color(),
            };
            if ui
                .selectable_label(selected == Some(c.id), RichText::new(text).color(color))
                .clicked()
            {
                self.model.selected = Some(c.id);
            }
        }
    }

    fn soft_keys(&mut self, ui: &mut egui::Ui) {
        let current = self.model.current().cloned();
        let number = self.number.trim().to_string();
        let mut out: Vec<Command> = Vec::new();
        ui.horizontal_wrapped(|ui| {
            if !number.is_empty() && ui.button("Call").clicked() {
                self.dial();
            }
            let Some(c) = current else {
                if ui.button("Retrieve").clicked() {
                    out.push(Command::Feature(Feature::Retrieve(number.clone())));
                }
                if ui.button("Pickup").clicked() {
                    let st = (!number.is_empty()).then(|| number.clone());
                    out.push(Command::Feature(Feature::Pickup(st)));
                }
                return;
            };
            let id = Some(c.id);
            match c.phase {
                Phase::Incoming => {
                    if ui.button("Answer").clicked() {
                        out.push(Command::Answer(id));
                    }
                    if ui.button("Reject").clicked() {
                        out.push(Command::Reject(id));
                    }
                }
                Phase::Dialing | Phase::Ringing => {}
                Phase::Talking | Phase::HeldByOther | Phase::Conference => {
                    if ui.button("Hold").clicked() {
                        out.push(Command::Hold(id));
                    }
                    let mute = if c.muted { "Unmute" } else { "Mute" };
                    if ui.button(mute).clicked() {
                        out.push(Command::Mute {
                            call: id,
                            on: !c.muted,
                        });
                    }
                    if !number.is_empty() && ui.button("Transfer").clicked() {
                        out.push(Command::Transfer {
                            call: id,
                            to: TransferTarget::Number(number.clone()),
                        });
                    }
                    // Attended: the held call goes to this call's party.
                    let held = self
                        .model
                        .calls
                        .iter()
                        .find(|o| o.id != c.id && o.phase == Phase::Held)
                        .map(|o| o.id);
                    if held.is_some() && ui.button("Join held call (3-way)").clicked() {
                        out.push(Command::Join {
                            call: id,
                            other: held,
                        });
                    }
                    if let Some(h) = held
                        && ui.button("Transfer held call here").clicked()
                    {
                        out.push(Command::Transfer {
                            call: Some(h),
                            to: TransferTarget::Call(c.id),
                        });
                    }
                    if ui.button("Park").clicked() {
                        let slot = (!number.is_empty()).then(|| number.clone());
                        out.push(Command::Feature(Feature::Park(slot)));
                    }
                    if c.phase != Phase::Conference && ui.button("Conference").clicked() {
                        out.push(Command::Feature(Feature::ConferenceAdd));
                    }
                    if !number.is_empty() && ui.button("Send DTMF").clicked() {
                        out.push(Command::Dtmf {
                            digits: number.clone(),
                            call: id,
                        });
                    }
                }
                Phase::Held => {
                    if ui.button("Resume").clicked() {
                        out.push(Command::Resume(id));
                    }
                }
            }
            if self.model.conference_adding && ui.button("Join conference").clicked() {
                out.push(Command::Feature(Feature::ConferenceEnd));
            }
            if ui.button("Hang up").clicked() {
                out.push(Command::Hangup(id));
            }
        });
        for c in out {
            if matches!(
                c,
                Command::Transfer { .. } | Command::Dtmf { .. } | Command::Feature(_)
            ) {
                self.number.clear();
            }
            self.send(c);
        }
    }

    /// Closes the settings form without saving; its meter and test tone stop.
    pub fn close_settings(&mut self) {
        self.settings = None;
        self.meter = None;
        self.testing = None;
    }

    /// Opens the settings form on the configuration file as it is now.
    pub fn open_settings(&mut self) {
        let Some(path) = &self.config_file else {
            return;
        };
        match crate::config::Config::load(path) {
            Ok(mut c) => {
                c.audio.system = self.sound.clone();
                self.settings = Some(Form::from_config(&c, self.line));
            }
            Err(e) => self.model.notice = e.to_string(),
        }
    }

    /// One row per field: its label, the field, and what is wrong with it, if anything;
    /// then the sound; scrolled when the window is short.
    fn settings_form(&mut self, ui: &mut egui::Ui) {
        egui::ScrollArea::vertical().show(ui, |ui| self.settings_fields(ui));
    }

    fn settings_fields(&mut self, ui: &mut egui::Ui) {
        let line = self.line;
        ui.heading(format!("Settings for line {line}"));
        let Some(form) = &mut self.settings else {
            return;
        };
        egui::Grid::new("settings").num_columns(3).show(ui, |ui| {
            for (key, label) in FIELDS {
                let l = ui.label(label);
                let mut edit = egui::TextEdit::singleline(form.field_mut(key));
                if key == "password" {
                    edit = edit.password(true);
                }
                ui.add_sized([260.0, 20.0], edit).labelled_by(l.id);
                match form.problem(key) {
                    Some(p) => ui.label(RichText::new(format!("{label}: {p}")).color(Color32::RED)),
                    None => ui.label(""),
                };
                ui.end_row();
            }
        });
        ui.separator();
        self.sound_form(ui);
        let Some(form) = &mut self.settings else {
            return;
        };
        let (save, close) = ui
            .horizontal(|ui| {
                (
                    ui.button("Save settings").clicked(),
                    ui.button("Close settings").clicked(),
                )
            })
            .inner;
        if save && let Some(path) = self.config_file.clone() {
            let saved = form.save(&path, line);
            let ok = saved.is_ok();
            self.model.notice = match saved {
                Ok(()) => "settings saved; the sound now, the account at the next start".into(),
                Err(e) => e,
            };
            if ok {
                let sound = form.sound.clone();
                for role in [Role::Microphone, Role::Speaker, Role::Ringer] {
                    let mut s = sound.clone();
                    let name = std::mem::take(s.choice_mut(role));
                    // A card that is not there stays in the file; calls use the default.
                    let name = if s.choices(role).contains(&name) {
                        name
                    } else {
                        String::new()
                    };
                    let _ = self.commands.send(Command::Device { role, name });
                }
                for (role, percent) in [
                    (Role::Speaker, sound.speaker_volume),
                    (Role::Ringer, sound.ringer_volume),
                ] {
                    let _ = self.commands.send(Command::Volume { role, percent });
                }
            }
        }
        if close {
            self.close_settings();
        }
    }

    /// The sound cards: a list for each of microphone, speaker and ringer (the system's
    /// default first), what is wrong beside each, the microphone's level, a test tone for
    /// the speaker and the ringer, their volumes, echo cancellation and noise suppression.
    fn sound_form(&mut self, ui: &mut egui::Ui) {
        let Some(form) = &mut self.settings else {
            return;
        };
        let sound = &mut form.sound;
        let mut test = None;
        egui::Grid::new("sound").num_columns(2).show(ui, |ui| {
            for (role, label) in [
                (Role::Microphone, "Microphone"),
                (Role::Speaker, "Speaker"),
                (Role::Ringer, "Ringer"),
            ] {
                let l = ui.label(label);
                let choices = sound.choices(role).to_vec();
                let chosen = sound.choice_mut(role);
                let shown = if chosen.is_empty() {
                    "System default".to_string()
                } else {
                    chosen.clone()
                };
                ui.horizontal(|ui| {
                    egui::ComboBox::from_id_salt(label)
                        .selected_text(shown)
                        .width(240.0)
                        .show_ui(ui, |ui| {
                            ui.selectable_value(chosen, String::new(), "System default");
                            for c in &choices {
                                ui.selectable_value(chosen, c.clone(), c);
                            }
                        })
                        .response
                        .labelled_by(l.id);
                    if role != Role::Microphone {
                        let playing = self.testing.as_ref().is_some_and(|(r, _)| *r == role);
                        let text = if playing {
                            format!("Stop {}", label.to_lowercase())
                        } else {
                            format!("Test {}", label.to_lowercase())
                        };
                        if ui.button(text).clicked() {
                            test = Some((role, playing));
                        }
                    }
                });
                ui.end_row();
                if let Some(p) = sound.missing(role) {
                    ui.label("");
                    ui.add(
                        egui::Label::new(
                            RichText::new(format!("{label}: {p}")).color(Color32::RED),
                        )
                        .wrap(),
                    );
                    ui.end_row();
                }
            }
            for (label, volume) in [
                ("Speaker volume", &mut sound.speaker_volume),
                ("Ringer volume", &mut sound.ringer_volume),
            ] {
                let l = ui.label(label);
                ui.add(egui::Slider::new(volume, 0..=100).suffix(" %"))
                    .labelled_by(l.id);
                ui.end_row();
            }
        });
        ui.horizontal(|ui| {
            ui.checkbox(&mut sound.echo_cancellation, "Echo cancellation");
            ui.checkbox(&mut sound.noise_suppression, "Noise suppression");
            if ui.button("Look for sound cards").clicked() {
                sound.refresh(&self.sound);
            }
        });
        // The level of the microphone chosen, opened again when the choice changes.
        let mic = if sound.missing(Role::Microphone).is_some() {
            String::new()
        } else {
            sound.microphone.clone()
        };
        // Opened once per choice: a card that will not open is not tried every frame.
        if self.meter.as_ref().is_none_or(|(name, _)| *name != mic) {
            let meter = Meter::open(&self.sound, &mic);
            self.meter = Some((mic, meter));
        }
        let meter = self.meter.as_mut().and_then(|(_, m)| m.as_mut());
        let listening = meter.is_some();
        let level = meter.map_or(0.0, Meter::update);
        ui.horizontal(|ui| {
            ui.label("Microphone level");
            ui.add(
                egui::ProgressBar::new(level)
                    .desired_width(240.0)
                    .text(format!("{:.0} dB", 20.0 * level.max(1e-5).log10())),
            );
        });
        if listening {
            ui.ctx().request_repaint();
        }
        if let Some((role, playing)) = test {
            self.testing = None;
            if !playing {
                let (device, volume) = match role {
                    Role::Ringer => (sound.ringer.clone(), sound.ringer_volume),
                    _ => (sound.speaker.clone(), sound.speaker_volume),
                };
                let tone = match role {
                    Role::Ringer => crate::ringer::Sound::Ring(String::new()),
                    _ => crate::ringer::Sound::Test,
                };
                match crate::ringer::play(
                    &tone,
                    (&self.sound, &device),
                    volume,
                    media::tones::Country::Us,
                ) {
                    Ok(p) => self.testing = Some((role, p)),
                    Err(e) => self.model.notice = format!("no sound: {e}"),
                }
            }
        }
    }

    /// The selected call's receive quality, and a small plot of its jitter and loss.
    fn quality(&mut self, ui: &mut egui::Ui) {
        let Some(c) = self.model.current() else {
            return;
        };
        let Some(last) = c.quality.last() else {
            return;
        };
        let rtt = last
            .rtt_ms
            .map(|r| format!(", round trip {r:.0} ms"))
            .unwrap_or_default();
        ui.label(format!(
            "Quality of call {}: MOS {:.2}, jitter {:.1} ms, loss {:.1} %, buffer {:.0} ms{rtt}",
            c.id, last.mos, last.jitter_ms, last.loss_percent, last.buffer_ms
        ));
        let (rect, _) = ui.allocate_exact_size(egui::vec2(320.0, 60.0), egui::Sense::hover());
        let painter = ui.painter_at(rect);
        painter.rect_stroke(
            rect,
            2.0,
            egui::Stroke::new(1.0, Color32::DARK_GRAY),
            egui::StrokeKind::Inside,
        );
        let n = super::model::QUALITY_KEPT as f32;
        let jitter_top = c.quality.iter().map(|q| q.jitter_ms).fold(20.0, f32::max);
        let series = |value: &dyn Fn(&super::model::Quality) -> f32, top: f32| -> Vec<egui::Pos2> {
            c.quality
                .iter()
                .enumerate()
                .map(|(i, q)| {
                    let x = rect.left() + rect.width() * (i as f32 + 1.0) / n;
                    let y = rect.bottom() - rect.height() * (value(q) / top).clamp(0.0, 1.0);
                    egui::pos2(x, y)
                })
                .collect()
        };
        let jitter = series(&|q| q.jitter_ms, jitter_top);
        let loss = series(&|q| q.loss_percent, 10.0);
        painter.add(egui::Shape::line(
            jitter,
            egui::Stroke::new(1.5, Color32::LIGHT_BLUE),
        ));
        painter.add(egui::Shape::line(
            loss,
            egui::Stroke::new(1.5, Color32::LIGHT_RED),
        ));
        ui.label(
            RichText::new(format!(
                "jitter (blue, up to {jitter_top:.0} ms) and loss (red, up to 10 %), last 2 minutes"
            ))
            .small(),
        );
    }

    fn contacts(&mut self, ui: &mut egui::Ui) {
        egui::CollapsingHeader::new("Contacts")
            .default_open(false)
            .show(ui, |ui| {
                for c in &self.model.contacts {
                    if ui
                        .small_button(format!("{} ({})", c.name, c.number))
                        .clicked()
                    {
                        self.number = c.number.clone();
                    }
                }
            });
    }

    fn history(&mut self, ui: &mut egui::Ui) {
        egui::CollapsingHeader::new("History")
            .default_open(false)
            .show(ui, |ui| {
                for h in self.model.history.iter().rev().take(20) {
                    let kind = match h.kind {
                        HistoryKind::Dialled => "dialled",
                        HistoryKind::Received => "received",
                        HistoryKind::Missed => "missed",
                    };
                    ui.label(format!("{kind} {}", h.party));
                }
            });
    }
}
