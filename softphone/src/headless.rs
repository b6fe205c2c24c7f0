//! Headless control: one command per line on stdin (and on a loopback TCP socket with
//! `--control`), one JSON event per line on stdout. Commands so far: `status`,
//! `register [LINE]`, `dial NUMBER [LINE]`, `answer [CALL]`, `reject [CALL]`,
//! `hangup [CALL]`, `hold [CALL]`, `resume [CALL]`, `mute [CALL]`, `unmute [CALL]`, `dtmf DIGITS [CALL]`, the PBX features
//! `dnd on|off`, `forward all|busy|noanswer|both NUMBER`, `forward clear`, `park [SLOT]`,
//! `retrieve SLOT`, `pickup [STATION]`, `conference add|end`, `transfer NUMBER [CALL]`
//! (blind), `transfer call OTHER [CALL]` (attended), `history [N]`, `contacts`, `join [CALL [OTHER]]` (local 3-way), and `quit`. A line that is no command gets an `error` event and changes
//! nothing.

use crate::engine::{Command, Event, Feature, Role, TransferTarget};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// Reads one command line.
pub fn parse(line: &str) -> Result<Command, String> {
    let mut words = line.split_whitespace();
    let Some(verb) = words.next() else {
        return Err("empty command".into());
    };
    let args: Vec<&str> = words.collect();
    let line_arg = |args: &[&str]| -> Result<usize, String> {
        match args.first() {
            None => Ok(1),
            Some(a) => a
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("{verb}: {a:?} is no line number")),
        }
    };
    let call_arg = |args: &[&str]| -> Result<Option<u32>, String> {
        match args.first() {
            None => Ok(None),
            Some(a) => a
                .parse::<u32>()
                .map(Some)
                .map_err(|_| format!("{verb}: {a:?} is no call number")),
        }
    };
    match (verb.to_ascii_lowercase().as_str(), args.len()) {
        ("status", 0) => Ok(Command::Status),
        ("register", 0 | 1) => Ok(Command::Register(line_arg(&args)?)),
        ("dial", 1 | 2) => Ok(Command::Dial {
            number: args[0].to_string(),
            line: line_arg(&args[1..])?,
        }),
        ("dial", _) => Err("dial NUMBER [LINE]".into()),
        ("answer", 0 | 1) => Ok(Command::Answer(call_arg(&args)?)),
        ("reject", 0 | 1) => Ok(Command::Reject(call_arg(&args)?)),
        ("hangup", 0 | 1) => Ok(Command::Hangup(call_arg(&args)?)),
        ("hold", 0 | 1) => Ok(Command::Hold(call_arg(&args)?)),
        ("resume", 0 | 1) => Ok(Command::Resume(call_arg(&args)?)),
        (m @ ("mute" | "unmute"), 0 | 1) => Ok(Command::Mute {
            call: call_arg(&args)?,
            on: m == "mute",
        }),
        ("dtmf", 1 | 2)
            if args[0]
                .chars()
                .all(|c| c.is_ascii_digit() || "*#ABCDabcd".contains(c)) =>
        {
            Ok(Command::Dtmf {
                digits: args[0].to_ascii_uppercase(),
                call: call_arg(&args[1..])?,
            })
        }
        ("dtmf", _) => Err("dtmf DIGITS [CALL]: digits are 0-9, *, #, A-D".into()),
        ("dnd", 1) if matches!(args[0], "on" | "off") => {
            Ok(Command::Feature(Feature::Dnd(args[0] == "on")))
        }
        ("dnd", _) => Err("dnd on|off".into()),
        ("forward", 1) if args[0] == "clear" => Ok(Command::Feature(Feature::Forward(None))),
        ("forward", 2) if matches!(args[0], "all" | "busy" | "noanswer" | "both") => Ok(
            Command::Feature(Feature::Forward(Some((args[0].into(), args[1].into())))),
        ),
        ("forward", _) => Err("forward all|busy|noanswer|both NUMBER, or forward clear".into()),
        ("park", 0 | 1) => Ok(Command::Feature(Feature::Park(
            args.first().map(|s| s.to_string()),
        ))),
        ("retrieve", 1) => Ok(Command::Feature(Feature::Retrieve(args[0].into()))),
        ("retrieve", _) => Err("retrieve SLOT".into()),
        ("pickup", 0 | 1) => Ok(Command::Feature(Feature::Pickup(
            args.first().map(|s| s.to_string()),
        ))),
        ("conference", 1) if args[0] == "add" => Ok(Command::Feature(Feature::ConferenceAdd)),
        ("conference", 1) if args[0] == "end" => Ok(Command::Feature(Feature::ConferenceEnd)),
        ("conference", _) => Err("conference add|end".into()),
        // transfer NUMBER [CALL] (blind); transfer call OTHER [CALL] (attended: to the
        // party of our call OTHER).
        ("transfer", 2 | 3) if args[0] == "call" => Ok(Command::Transfer {
            call: call_arg(&args[2..])?,
            to: TransferTarget::Call(
                args[1]
                    .parse()
                    .map_err(|_| format!("transfer call: {:?} is no call number", args[1]))?,
            ),
        }),
        ("transfer", 1 | 2) => Ok(Command::Transfer {
            call: call_arg(&args[1..])?,
            to: TransferTarget::Number(args[0].into()),
        }),
        ("transfer", _) => Err("transfer NUMBER [CALL], or transfer call OTHER [CALL]".into()),
        ("contacts", 0) => Ok(Command::Contacts),
        ("join", 0..=2) => Ok(Command::Join {
            call: call_arg(&args)?,
            other: call_arg(args.get(1..).unwrap_or_default())?,
        }),
        ("history", 0) => Ok(Command::History(20)),
        ("history", 1) => args[0]
            .parse()
            .map(Command::History)
            .map_err(|_| format!("history: {:?} is no count", args[0])),
        ("devices", 0) => Ok(Command::Devices),
        ("device", n) if n >= 2 && Role::parse(args[0]).is_some() => {
            let name = args[1..].join(" ");
            Ok(Command::Device {
                role: Role::parse(args[0]).unwrap_or(Role::Speaker),
                name: if name == "default" {
                    String::new()
                } else {
                    name
                },
            })
        }
        ("device", _) => Err("device microphone|speaker|ringer NAME (or default)".into()),
        ("volume", 2) if matches!(Role::parse(args[0]), Some(Role::Speaker | Role::Ringer)) => {
            match args[1].parse::<u8>() {
                Ok(p) if p <= 100 => Ok(Command::Volume {
                    role: Role::parse(args[0]).unwrap_or(Role::Speaker),
                    percent: p,
                }),
                _ => Err(format!("volume: {:?} is not 0 to 100", args[1])),
            }
        }
        ("volume", _) => Err("volume speaker|ringer PERCENT".into()),
        ("quit", 0) => Ok(Command::Quit),
        (v @ ("status" | "quit"), _) => Err(format!("{v} takes no arguments")),
        (
            v @ ("answer" | "reject" | "hangup" | "register" | "hold" | "resume" | "mute"
            | "unmute"),
            _,
        ) => Err(format!("{v} takes at most one number")),
        (v, _) => Err(format!(
            "{v}: unknown command (status, register [LINE], dial NUMBER [LINE], answer [CALL], reject [CALL], hangup [CALL], hold [CALL], resume [CALL], mute [CALL], unmute [CALL], dtmf DIGITS [CALL], dnd, forward, park, retrieve, pickup, conference, devices, device, volume, quit)"
        )),
    }
}

/// One command line for the engine; a bad one becomes an `error` event. False once the
/// engine is gone.
pub fn take(
    line: &str,
    commands: &mpsc::UnboundedSender<Command>,
    events: &mpsc::UnboundedSender<Event>,
) -> bool {
    match parse(line) {
        Ok(c) => commands.send(c).is_ok(),
        Err(message) => events.send(Event::Error { message }).is_ok(),
    }
}

/// Feeds command lines from `input` (stdin) to the engine.
pub async fn read_commands(
    input: impl tokio::io::AsyncRead + Unpin,
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut lines = BufReader::new(input).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if !line.trim().is_empty() && !take(&line, &commands, &events) {
            return;
        }
    }
}

/// Writes each event as one JSON line to stdout and to every control connection.
pub async fn write_events(mut events: mpsc::UnboundedReceiver<Event>, fan: crate::control::Fan) {
    let mut out = tokio::io::stdout();
    while let Some(e) = events.recv().await {
        let Some(line) = crate::control::line_of(&e) else {
            continue;
        };
        let _ = out.write_all(line.as_bytes()).await;
        let _ = out.flush().await;
        let _ = fan.send(line);
        if e == Event::Quit {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_refusals() {
        assert_eq!(parse("status"), Ok(Command::Status));
        assert_eq!(parse(" register 2 "), Ok(Command::Register(2)));
        assert_eq!(parse("register"), Ok(Command::Register(1)));
        assert_eq!(parse("QUIT"), Ok(Command::Quit));
        assert_eq!(
            parse("device speaker USB Audio Device"),
            Ok(Command::Device {
                role: Role::Speaker,
                name: "USB Audio Device".into()
            })
        );
        assert_eq!(
            parse("device mic default"),
            Ok(Command::Device {
                role: Role::Microphone,
                name: String::new()
            })
        );
        assert_eq!(
            parse("volume ringer 40"),
            Ok(Command::Volume {
                role: Role::Ringer,
                percent: 40
            })
        );
        assert!(parse("volume ringer 140").is_err());
        assert!(parse("volume microphone 40").is_err());
        assert!(parse("device headphones x").is_err());
        assert_eq!(
            parse("dial 202 2"),
            Ok(Command::Dial {
                number: "202".into(),
                line: 2
            })
        );
        assert_eq!(parse("answer"), Ok(Command::Answer(None)));
        assert_eq!(parse("hangup 3"), Ok(Command::Hangup(Some(3))));
        assert!(parse("hangup x").unwrap_err().contains("no call number"));
        assert!(parse("dial").is_err());
        assert_eq!(
            parse("dtmf 12#"),
            Ok(Command::Dtmf {
                digits: "12#".into(),
                call: None
            })
        );
        assert!(parse("dtmf 1x").is_err());
        assert_eq!(parse("hold 2"), Ok(Command::Hold(Some(2))));
        assert_eq!(
            parse("unmute"),
            Ok(Command::Mute {
                call: None,
                on: false
            })
        );
        assert_eq!(parse("dnd on"), Ok(Command::Feature(Feature::Dnd(true))));
        assert!(parse("dnd maybe").is_err());
        assert_eq!(
            parse("forward busy 203"),
            Ok(Command::Feature(Feature::Forward(Some((
                "busy".into(),
                "203".into()
            )))))
        );
        assert_eq!(parse("park"), Ok(Command::Feature(Feature::Park(None))));
        assert_eq!(
            parse("transfer 203"),
            Ok(Command::Transfer {
                call: None,
                to: TransferTarget::Number("203".into())
            })
        );
        assert_eq!(
            parse("transfer call 2 1"),
            Ok(Command::Transfer {
                call: Some(1),
                to: TransferTarget::Call(2)
            })
        );
        assert!(parse("transfer call x").is_err());
        assert_eq!(
            parse("conference end"),
            Ok(Command::Feature(Feature::ConferenceEnd))
        );
        assert!(
            parse("register zero")
                .unwrap_err()
                .contains("no line number")
        );
        assert!(parse("register 0").is_err());
        assert!(parse("status now").unwrap_err().contains("no arguments"));
        assert!(parse("fly").unwrap_err().contains("unknown command"));
        assert!(
            serde_json::to_string(&Event::Error {
                message: "x".into()
            })
            .unwrap()
            .starts_with("{\"event\":\"error\"")
        );
    }
}
