//! The main window's widgets: line keys with their registration, the message lamp, DND and
//! Forward toggles, the number field with completion and a dial pad, the call list, and soft
//! keys that follow the selected call. Every widget reads the [`Model`]; every action is a
//! [`Command`] sent down the engine's channel, so nothing here waits on the network.

use super::model::{HistoryKind, LineState, Model, Phase};
use super::settings::{FIELDS, Form};
use crate::engine::{Command, Event, Feature, TransferTarget};
use eframe::egui::{self, Color32, Key, RichText};
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
        }
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

    fn open_settings(&mut self) {
        let Some(path) = &self.config_file else {
            return;
        };
        match crate::config::Config::load(path) {
            Ok(c) => {
                let a = &c.accounts[(self.line - 1).min(c.accounts.len() - 1)];
                self.settings = Some(Form::from_account(a, &c.provisioning_url));
            }
            Err(e) => self.model.notice = e.to_string(),
        }
    }

    /// One row per field: its label, the field, and what is wrong with it, if anything.
    fn settings_form(&mut self, ui: &mut egui::Ui) {
        let line = self.line;
        ui.heading(format!("Settings for line {line}"));
        let Some(form) = &mut self.settings else {
            return;
        };
        egui::Grid::new("settings").num_columns(3).show(ui, |ui| {
            for (key, label) in FIELDS {
                let l = ui.label(label);
                let mut edit = egui::TextEdit::singleline(form.field_mut(key)).desired_width(260.0);
                if key == "password" {
                    edit = edit.password(true);
                }
                ui.add(edit).labelled_by(l.id);
                match form.problem(key) {
                    Some(p) => ui.label(RichText::new(format!("{label}: {p}")).color(Color32::RED)),
                    None => ui.label(""),
                };
                ui.end_row();
            }
        });
        let (save, close) = ui
            .horizontal(|ui| {
                (
                    ui.button("Save settings").clicked(),
                    ui.button("Close settings").clicked(),
                )
            })
            .inner;
        if save && let Some(path) = self.config_file.clone() {
            self.model.notice = match form.save(&path, line) {
                Ok(()) => "settings saved; they apply at the next start".into(),
                Err(e) => e,
            };
        }
        if close {
            self.settings = None;
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
