//! The `--control` socket, the same headless and with the window: loopback TCP connections,
//! each sending command lines (those of stdin, [`crate::headless::parse`]) and getting every
//! event back as a JSON line, as stdout shows them. The window also takes `screenshot PATH`
//! there.

use crate::engine::Event;
use std::io::{BufRead, BufReader, Write};
use tokio::sync::broadcast;

/// Every event as a JSON line, to every control connection open at the time.
pub type Fan = broadcast::Sender<String>;

/// A fan for [`serve`] (events that find no connection are dropped).
pub fn fan() -> Fan {
    broadcast::channel(256).0
}

/// An event as the JSON line stdout and the control connections get.
pub fn line_of(e: &Event) -> Option<String> {
    serde_json::to_string(e).ok().map(|mut l| {
        l.push('\n');
        l
    })
}

/// Serves `listener` on threads of its own: each line a connection sends goes to
/// `on_line`, and each line sent on `fan` goes to every connection.
pub fn serve(
    listener: std::net::TcpListener,
    fan: Fan,
    on_line: impl Fn(&str) + Clone + Send + 'static,
) {
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let Ok(mut writer) = stream.try_clone() else {
                continue;
            };
            let mut events = fan.subscribe();
            std::thread::spawn(move || {
                loop {
                    match events.blocking_recv() {
                        Ok(line) => {
                            if writer.write_all(line.as_bytes()).is_err() {
                                return;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            });
            let on_line = on_line.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if !line.trim().is_empty() {
                        on_line(&line);
                    }
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    #[test]
    fn lines_come_in_and_events_go_out_on_every_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let fan = fan();
        let got = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = got.clone();
        serve(listener, fan.clone(), move |l| {
            seen.lock().unwrap().push(l.to_string())
        });
        let mut a = std::net::TcpStream::connect(addr).unwrap();
        let b = std::net::TcpStream::connect(addr).unwrap();
        a.write_all(b"status\n\nhangup 2\n").unwrap();
        let t0 = Instant::now();
        while got.lock().unwrap().len() < 2 {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "{:?}",
                got.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(*got.lock().unwrap(), ["status", "hangup 2"]);
        // Both are subscribed once a line of theirs arrived; b says a line too.
        (&b).write_all(b"history\n").unwrap();
        while got.lock().unwrap().len() < 3 {
            assert!(t0.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(10));
        }
        let line = line_of(&Event::Quit).unwrap();
        fan.send(line.clone()).unwrap();
        for s in [&a, &b] {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut heard = String::new();
            BufReader::new(s).read_line(&mut heard).unwrap();
            assert_eq!(heard, line);
        }
    }
}
