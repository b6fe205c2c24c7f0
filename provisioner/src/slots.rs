//! Places under two caps, in all and per address, each given back when its guard drops: how
//! the TFTP server bounds its transfers and the HTTP listener its connections.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Places taken, by address.
#[derive(Debug, Default)]
pub struct Slots(Mutex<HashMap<IpAddr, usize>>);

/// One place, held until dropped.
#[derive(Debug)]
pub struct Place(Arc<Slots>, IpAddr);

impl Slots {
    /// Takes a place for `ip` if fewer than `total` are taken in all and fewer than
    /// `per_address` by `ip`.
    pub fn take(self: &Arc<Self>, ip: IpAddr, total: usize, per_address: usize) -> Option<Place> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let taken: usize = map.values().sum();
        let mine = map.entry(ip).or_default();
        if taken >= total || *mine >= per_address {
            if *mine == 0 {
                map.remove(&ip);
            }
            return None;
        }
        *mine += 1;
        Some(Place(self.clone(), ip))
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut map = self.0.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_in_all_and_per_address_and_places_come_back() {
        let s = Arc::new(Slots::default());
        let (a, b, c): (IpAddr, IpAddr, IpAddr) = (
            [10, 0, 0, 1].into(),
            [10, 0, 0, 2].into(),
            [10, 0, 0, 3].into(),
        );
        let mine: Vec<_> = (0..3).filter_map(|_| s.take(a, 5, 2)).collect();
        assert_eq!(mine.len(), 2, "two for a");
        let theirs: Vec<_> = (0..3).filter_map(|_| s.take(b, 5, 2)).collect();
        assert_eq!(theirs.len(), 2);
        let fifth = s.take(c, 5, 2);
        assert!(fifth.is_some(), "the fifth");
        assert!(s.take(c, 5, 2).is_none(), "none past five in all");
        drop(mine);
        assert!(s.take(a, 5, 2).is_some(), "given back");
    }
}
