//! Memo tables shared by the marker and version algebra: thread-local memos that live as long as the tool, and
//! the fast hasher their keys use.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// A thread-local memo. Never freed: it lives as long as the tool, and freeing it at exit only costs time.
pub type Memo<T> = std::mem::ManuallyDrop<RefCell<T>>;

pub const fn memo<T>(value: T) -> Memo<T> {
    std::mem::ManuallyDrop::new(RefCell::new(value))
}

/// A `HashMap` with `FastHasher`.
pub type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;

pub fn hash_of<T: Hash + ?Sized>(t: &T) -> u64 {
    let mut h = FastHasher::default();
    t.hash(&mut h);
    h.finish()
}

/// A small multiply-rotate hasher (FxHash): our maps are keyed by markers (whose hash is precomputed) and
/// short strings from trusted files, so SipHash's flood resistance only costs time.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Eight bytes at a time, little-endian, the last ones padded with zeros (a plain loop: the tool runs
        // unoptimized dependencies, and `chunks` would come from there).
        let mut i = 0;
        while i < bytes.len() {
            let mut word = 0u64;
            let mut k = 0;
            while k < 8 && i + k < bytes.len() {
                word |= u64::from(bytes[i + k]) << (8 * k);
                k += 1;
            }
            self.write_u64(word);
            i += 8;
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}
