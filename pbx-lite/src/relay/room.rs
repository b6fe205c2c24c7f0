//! Conference rooms: every member's port feeds the room decoded audio, and every 20 ms each
//! member is sent the mix of everyone else (mix-minus), encoded in its own law.

use super::{FRAME, Heard, MediaPort, Route, Shared};
use media::mixer::Mixer;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

enum RoomControl {
    Join(Arc<Shared>),
    Leave(u64),
}

/// A conference room: every 20 ms each member hears the mix of everyone else (mix-minus).
pub struct Room {
    inbox: mpsc::Sender<(u64, Heard)>,
    control: mpsc::UnboundedSender<RoomControl>,
    task: JoinHandle<()>,
    members: Vec<u64>,
}

impl Drop for Room {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Default for Room {
    fn default() -> Self {
        Room::start()
    }
}

impl Room {
    pub fn start() -> Room {
        let (inbox, rx) = mpsc::channel(1024);
        let (control, crx) = mpsc::unbounded_channel();
        Room {
            inbox,
            control,
            task: tokio::spawn(mix(rx, crx)),
            members: Vec::new(),
        }
    }

    /// The phone on `port` joins: what it says goes to the room, and it hears the room.
    pub fn join(&mut self, port: &mut MediaPort) {
        port.stop_playing();
        port.set_route(Route::Feed(self.inbox.clone()));
        if !self.members.contains(&port.id()) {
            self.members.push(port.id());
        }
        let _ = self.control.send(RoomControl::Join(port.shared.clone()));
    }

    pub fn leave(&mut self, port: &MediaPort) {
        self.members.retain(|m| *m != port.id());
        port.set_route(Route::Drop);
        let _ = self.control.send(RoomControl::Leave(port.id()));
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

/// The room's mixing task. Each member's audio queues up (at most 100 ms, the oldest goes
/// first when it overflows); every 20 ms one frame of each is mixed.
async fn mix(
    mut inbox: mpsc::Receiver<(u64, Heard)>,
    mut control: mpsc::UnboundedReceiver<RoomControl>,
) {
    let mut members: HashMap<u64, (Arc<Shared>, VecDeque<i16>)> = HashMap::new();
    let mut mixer = Mixer::default();
    let mut frames: HashMap<u64, Vec<i16>> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            c = control.recv() => match c {
                Some(RoomControl::Join(s)) => {
                    mixer.add(s.id as u32);
                    members.insert(s.id, (s, VecDeque::new()));
                }
                Some(RoomControl::Leave(id)) => {
                    mixer.remove(id as u32);
                    members.remove(&id);
                }
                None => return,
            },
            h = inbox.recv() => {
                if let Some((id, Heard::Audio(pcm))) = h
                    && let Some((_, q)) = members.get_mut(&id)
                {
                    q.extend(pcm);
                    while q.len() > 5 * FRAME {
                        q.pop_front();
                    }
                }
            }
            _ = tick.tick() => {
                for (id, (_, q)) in members.iter_mut() {
                    let f = frames.entry(*id).or_default();
                    f.clear();
                    let n = q.len().min(FRAME);
                    f.extend(q.drain(..n));
                    f.resize(FRAME, 0);
                }
                for (id, heard) in mixer.mix(|id| frames.get(&u64::from(id)).map_or(&[][..], |f| f.as_slice())) {
                    if let Some((s, _)) = members.get(&u64::from(id)) {
                        s.send_pcm(heard);
                    }
                }
            }
        }
    }
}
