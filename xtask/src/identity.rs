//! A file's identity as far as its metadata tells: size, modification and change times, inode and device.
//! While all are what they were when the file was hashed, its content is the one hashed then. The change time
//! cannot be set back (`touch -r`, `rsync -a`, `cp -p`, tar and CI caches restore modification times, never
//! change times), so an edit that keeps the size and puts the time back is still seen. Git's racy rule on top:
//! an identity recorded less than `RACY_NS` after its file last changed is not trusted, since a write in the
//! same tick of a coarse clock would leave the times as they were: 2 s where the file system keeps whole seconds
//! (FAT keeps even ones), 100 ms where it keeps nanoseconds (Linux stamps changes by a clock that ticks every
//! 1-10 ms), so that a no-op run 2 s after a build trusts what the build recorded instead of hashing the
//! wheelhouse again (20 MB, 50-70 ms here).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// How close to its file's last change an identity may be recorded and still be trusted: on a file system that
/// keeps whole seconds, and on one that keeps nanoseconds.
const RACY_NS: i128 = 2_000_000_000;
const RACY_FINE_NS: i128 = 100_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    dev: u64,
}

impl Identity {
    pub(crate) fn of(meta: &std::fs::Metadata) -> Identity {
        Identity {
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }

    pub(crate) fn read(path: &Path) -> std::io::Result<Identity> {
        std::fs::metadata(path).map(|meta| Identity::of(&meta))
    }

    /// Whether an identity recorded at `recorded_ns` (`now_ns()` then) vouches for the content hashed then:
    /// it equals this one, and the file had not changed within `RACY_NS` of the recording.
    pub(crate) fn vouches(&self, recorded: &Identity, recorded_ns: i128) -> bool {
        let fine = self.mtime_ns % 1_000_000_000 != 0 || self.ctime_ns % 1_000_000_000 != 0;
        let racy = if fine { RACY_FINE_NS } else { RACY_NS };
        self == recorded && self.mtime_ns.max(self.ctime_ns) + racy <= recorded_ns
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// `size:mtime:ctime:ino:dev`, for stamps.
    pub(crate) fn to_text(self) -> String {
        format!("{}:{}:{}:{}:{}", self.size, self.mtime_ns, self.ctime_ns, self.ino, self.dev)
    }

    pub(crate) fn parse(text: &str) -> Option<Identity> {
        let mut parts = text.split(':');
        let identity = Identity {
            size: parts.next()?.parse().ok()?,
            mtime_ns: parts.next()?.parse().ok()?,
            ctime_ns: parts.next()?.parse().ok()?,
            ino: parts.next()?.parse().ok()?,
            dev: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(identity)
    }
}

/// Now, in nanoseconds since the epoch, for recording identities.
pub(crate) fn now_ns() -> i128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_that_restores_the_time_is_seen() {
        let dir = std::env::temp_dir().join(format!("xtask-identity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("health.py");
        std::fs::write(&path, "status = 'ok'\n").unwrap();
        let first = Identity::read(&path).unwrap();
        assert_eq!(Identity::parse(&first.to_text()), Some(first));
        // Recorded just now: too close to the write to vouch for anything (the racy rule).
        assert!(!first.vouches(&first, now_ns()));
        assert!(first.vouches(&first, now_ns() + 3_000_000_000));
        // This file system keeps nanoseconds: a tenth of a second is enough; one that keeps seconds needs two.
        if first.ctime_ns % 1_000_000_000 != 0 {
            assert!(first.vouches(&first, first.ctime_ns.max(first.mtime_ns) + 100_000_000));
        }
        let coarse = Identity::parse("14:1700000000000000000:1700000001000000000:7:9").unwrap();
        assert!(!coarse.vouches(&coarse, 1_700_000_002_000_000_000));
        assert!(coarse.vouches(&coarse, 1_700_000_003_000_000_000));
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&path, "status = 'OK'\n").unwrap();
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(mtime).unwrap();
        let second = Identity::read(&path).unwrap();
        assert!(!second.vouches(&first, now_ns() + 3_000_000_000), "same size and time, new change time");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
