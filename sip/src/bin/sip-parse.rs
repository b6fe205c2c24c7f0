//! `sip-parse FILE...`: prints `FILE: valid` or `FILE: invalid: REASON` for each message file,
//! parsed as a UDP datagram would be. Exit code 0 when every file could be read.

use std::process::ExitCode;

fn main() -> ExitCode {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() || files.iter().any(|f| f == "-h" || f == "--help") {
        eprintln!("usage: sip-parse FILE...\nprints FILE: valid | FILE: invalid: REASON");
        return ExitCode::from(2);
    }
    let mut status = ExitCode::SUCCESS;
    for file in files {
        match std::fs::read(&file) {
            Ok(bytes) => match sip::Message::parse_datagram(&bytes) {
                Ok(_) => println!("{file}: valid"),
                Err(e) => println!("{file}: invalid: {e}"),
            },
            Err(e) => {
                eprintln!("{file}: cannot read: {e}");
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}
