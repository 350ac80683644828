//! A deterministic tar archive of a tree (the image's virtualenv, `context/venv.tar`, which the Dockerfile
//! `ADD`s): entries sorted by path, owned by root, one fixed time, the modes of the files, regular files and
//! symbolic links and folders only (a hard link is archived as the file it is). The same tree makes the same
//! bytes on any machine, so the engine's cache key of the layer (the archive's checksum) is the same too.
//!
//! One file instead of the virtualenv's ~1 200 in the build context: BuildKit then walks, sends and checks one
//! file on every build, not every file of the virtualenv (the example app's build after an app change: 0.26 s
//! against 0.35 s, 10 builds each side by side; a new virtualenv: 1.16 s with writing the archive, against 1.29 s;
//! the legacy builder's app change 1.37 s against 2.13 s). Written in POSIX ustar, with a PAX record for a path
//! or link target longer than ustar holds.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::paths;

/// The time of every entry: 1980-01-01T00:00:00Z, the earliest a wheel (a zip file) can hold. The virtualenv's
/// bytecode is hash-based, so no `.pyc` depends on its source's time.
pub(crate) const MTIME: u64 = 315_532_800;

const BLOCK: usize = 512;

/// Writes `archive` (through a temporary file beside it, renamed into place) holding the tree under `root`, its
/// paths relative to `root`; returns how many entries it holds.
pub(crate) fn write_tree(root: &Path, archive: &Path) -> Result<usize> {
    let temporary = archive.with_extension("tar.tmp");
    let written = (|| -> Result<usize> {
        let file = std::fs::File::create(&temporary)
            .with_context(|| format!("cannot create {}", paths::display(&temporary)))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut entries = 0;
        add_folder(&mut out, root, root, "", false, &mut entries)?;
        finish(&mut out)?;
        // Not synced: like the tree it is made of (uv's install syncs nothing), a cache the stamp written after
        // it vouches for; a sync of 20 MB would cost more than the archive.
        out.flush()?;
        Ok(entries)
    })();
    match written {
        Ok(entries) => {
            std::fs::rename(&temporary, archive)
                .with_context(|| format!("cannot move {} into place", paths::display(&temporary)))?;
            Ok(entries)
        }
        Err(err) => {
            let _ = std::fs::remove_file(&temporary);
            Err(err.context(format!("cannot write {}", paths::display(archive))))
        }
    }
}

/// An image layer (uncompressed) that holds the tree under `root` at `at` in the image (`srv/app`: no leading
/// or trailing `/`), as the engine's `COPY` makes it: the folders leading there, then the tree's entries, sorted,
/// owned by root, with their own modes and modification times.
pub(crate) fn layer(root: &Path, at: &str) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(root).with_context(|| format!("cannot read {}", paths::display(root)))?;
    let mut out = Vec::new();
    let mut folder = String::new();
    for part in at.split('/').filter(|p| !p.is_empty()) {
        folder.push_str(part);
        folder.push('/');
        header(&mut out, &folder, Kind::Folder, 0o755, 0, "", modified(&meta))?;
    }
    let mut entries = 0;
    add_folder(&mut out, root, root, &folder, true, &mut entries)?;
    finish(&mut out)?;
    Ok(out)
}

/// Appends a file holding `bytes` (mode 0644, owned by root, `MTIME`) to an archive written in memory.
pub(crate) fn append_file(out: &mut Vec<u8>, name: &str, bytes: &[u8]) -> Result<()> {
    header(out, name, Kind::File, 0o644, bytes.len() as u64, "", (MTIME, 0))?;
    out.extend_from_slice(bytes);
    out.extend_from_slice(&[0; BLOCK][..padding(bytes.len() as u64)]);
    Ok(())
}

/// Ends an archive: two empty blocks.
pub(crate) fn finish(out: &mut impl Write) -> std::io::Result<()> {
    out.write_all(&[0; 2 * BLOCK])
}

/// Seconds and nanoseconds since the epoch of the entry's modification (0 when unknown).
fn modified(meta: &std::fs::Metadata) -> (u64, u32) {
    let since = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    since.map_or((0, 0), |d| (d.as_secs(), d.subsec_nanos()))
}

/// Adds the entries under `dir`, named `<prefix><path relative to root>`, with their own modification times
/// (`kept_times`) or `MTIME`.
fn add_folder(
    out: &mut impl Write,
    root: &Path,
    dir: &Path,
    prefix: &str,
    kept_times: bool,
    entries: &mut usize,
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut children: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", paths::display(dir)))?
        .collect::<std::io::Result<_>>()?;
    children.sort_by_key(|e| e.file_name());
    for child in children {
        let path = child.path();
        let meta = std::fs::symlink_metadata(&path)?;
        let Some(name) = path.strip_prefix(root).unwrap().to_str().map(|name| format!("{prefix}{name}")) else {
            bail!("{} has a name that is not UTF-8: the archive cannot hold it", paths::display(&path));
        };
        let mode = meta.permissions().mode() & 0o7777;
        let mtime = if kept_times { modified(&meta) } else { (MTIME, 0) };
        *entries += 1;
        if meta.is_dir() {
            header(out, &format!("{name}/"), Kind::Folder, mode, 0, "", mtime)?;
            add_folder(out, root, &path, prefix, kept_times, entries)?;
        } else if meta.is_symlink() {
            let target = std::fs::read_link(&path)?;
            let Some(target) = target.to_str() else {
                bail!("{} links to a path that is not UTF-8: the archive cannot hold it", paths::display(&path));
            };
            header(out, &name, Kind::Link, 0o777, 0, target, mtime)?;
        } else if meta.is_file() {
            header(out, &name, Kind::File, mode, meta.len(), "", mtime)?;
            let mut file =
                std::fs::File::open(&path).with_context(|| format!("cannot read {}", paths::display(&path)))?;
            let copied = std::io::copy(&mut file, out)?;
            if copied != meta.len() {
                bail!("{} changed while it was archived", paths::display(&path));
            }
            out.write_all(&[0; BLOCK][..padding(copied)])?;
        } else {
            bail!("{} is neither a file, a folder nor a link: the archive cannot hold it", paths::display(&path));
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Kind {
    File,
    Link,
    Folder,
    /// A PAX extended header: records for the entry that follows.
    Pax,
}

fn padding(len: u64) -> usize {
    (BLOCK - (len % BLOCK as u64) as usize) % BLOCK
}

/// The header of one entry, preceded by a PAX header when the path or the link target is too long for ustar.
/// `mtime`: seconds and nanoseconds since the epoch (the nanoseconds in a PAX record, as GNU tar writes them).
fn header(
    out: &mut impl Write,
    name: &str,
    kind: Kind,
    mode: u32,
    size: u64,
    link: &str,
    (mtime, nanos): (u64, u32),
) -> Result<()> {
    if name.len() > 100 || link.len() > 100 || nanos != 0 {
        let mut records = String::new();
        for (key, value) in [("path", name), ("linkpath", link)] {
            if value.len() > 100 {
                records.push_str(&pax_record(key, value));
            }
        }
        if nanos != 0 {
            records.push_str(&pax_record("mtime", &format!("{mtime}.{nanos:09}")));
        }
        header(out, "././@PaxHeader", Kind::Pax, 0o644, records.len() as u64, "", (mtime, 0))?;
        out.write_all(records.as_bytes())?;
        out.write_all(&[0; BLOCK][..padding(records.len() as u64)])?;
    }
    let mut block = [0u8; BLOCK];
    let mut put = |at: usize, width: usize, bytes: &[u8]| {
        let n = bytes.len().min(width);
        block[at..at + n].copy_from_slice(&bytes[..n]);
    };
    put(0, 100, name.as_bytes());
    put(100, 8, format!("{mode:07o}\0").as_bytes());
    put(108, 8, b"0000000\0");
    put(116, 8, b"0000000\0");
    if size >= 1 << 33 {
        bail!("{name} is over 8 GiB: the archive cannot hold it");
    }
    put(124, 12, format!("{size:011o}\0").as_bytes());
    put(136, 12, format!("{mtime:011o}\0").as_bytes());
    let flag = match kind {
        Kind::File => b'0',
        Kind::Link => b'2',
        Kind::Folder => b'5',
        Kind::Pax => b'x',
    };
    put(156, 1, &[flag]);
    put(157, 100, link.as_bytes());
    put(257, 8, b"ustar\x0000");
    put(265, 32, b"root");
    put(297, 32, b"root");
    // The checksum is of the header with its own field as spaces.
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    out.write_all(&block)?;
    Ok(())
}

/// `<length> <key>=<value>\n`, the length counting itself.
fn pax_record(key: &str, value: &str) -> String {
    let rest = key.len() + value.len() + 3;
    let mut length = rest + 1;
    while length != rest + length.to_string().len() {
        length = rest + length.to_string().len();
    }
    format!("{length} {key}={value}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-tarball-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn tree(root: &Path) {
        let deep = root.join("lib/python3.11/site-packages").join("a".repeat(60)).join("b".repeat(60));
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("module.py"), "x = 1\n").unwrap();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/tool"), "#!/opt/venv/bin/python\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join("bin/tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(root.join("empty.txt"), "").unwrap();
        std::fs::write(root.join("block.bin"), vec![7u8; 512]).unwrap();
        std::os::unix::fs::symlink("tool", root.join("bin/alias")).unwrap();
        std::os::unix::fs::symlink("x".repeat(120), root.join("bin/far")).unwrap();
    }

    #[test]
    fn tar_reads_back_the_tree_with_its_modes_links_and_long_names() {
        let dir = scratch_dir("tarball-read");
        let (root, archive) = (dir.join("tree"), dir.join("tree.tar"));
        tree(&root);
        assert_eq!(write_tree(&root, &archive).unwrap(), 12);
        let listing = std::process::Command::new("tar")
            .args(["--list", "--verbose", "--numeric-owner", "--file"])
            .arg(&archive)
            .env("TZ", "UTC")
            .output()
            .unwrap();
        assert!(listing.status.success(), "{}", String::from_utf8_lossy(&listing.stderr));
        let listing = String::from_utf8(listing.stdout).unwrap();
        let long = format!("lib/python3.11/site-packages/{}/{}/module.py", "a".repeat(60), "b".repeat(60));
        for line in [
            "-rwxr-xr-x 0/0              23 1980-01-01 00:00 bin/tool".to_string(),
            "lrwxrwxrwx 0/0               0 1980-01-01 00:00 bin/alias -> tool".to_string(),
            format!("lrwxrwxrwx 0/0               0 1980-01-01 00:00 bin/far -> {}", "x".repeat(120)),
            "-rw-r--r-- 0/0             512 1980-01-01 00:00 block.bin".to_string(),
            "-rw-r--r-- 0/0               0 1980-01-01 00:00 empty.txt".to_string(),
            format!("-rw-r--r-- 0/0               6 1980-01-01 00:00 {long}"),
        ] {
            assert!(listing.lines().any(|l| l == line), "no line {line:?} in\n{listing}");
        }
        let out = dir.join("out");
        std::fs::create_dir_all(&out).unwrap();
        let extracted = std::process::Command::new("tar").arg("-xf").arg(&archive).arg("-C").arg(&out).status();
        assert!(extracted.unwrap().success());
        assert_eq!(std::fs::read_to_string(out.join(&long)).unwrap(), "x = 1\n");
        assert_eq!(std::fs::read(out.join("block.bin")).unwrap(), vec![7u8; 512]);
        assert!(!dir.join("tree.tar.tmp").exists());
    }

    #[test]
    fn the_same_tree_makes_the_same_bytes_whatever_its_times() {
        let dir = scratch_dir("tarball-same");
        tree(&dir.join("one"));
        std::thread::sleep(std::time::Duration::from_millis(20));
        tree(&dir.join("two"));
        write_tree(&dir.join("one"), &dir.join("one.tar")).unwrap();
        write_tree(&dir.join("two"), &dir.join("two.tar")).unwrap();
        let one = std::fs::read(dir.join("one.tar")).unwrap();
        assert_eq!(one, std::fs::read(dir.join("two.tar")).unwrap());
        assert_eq!(one.len() % BLOCK, 0);
        std::fs::write(dir.join("two/empty.txt"), "!").unwrap();
        write_tree(&dir.join("two"), &dir.join("two.tar")).unwrap();
        assert_ne!(one, std::fs::read(dir.join("two.tar")).unwrap());
    }

    #[test]
    fn a_layer_holds_the_tree_at_its_place_with_the_files_times() {
        let dir = scratch_dir("tarball-layer");
        let root = dir.join("app");
        tree(&root);
        let touched = std::process::Command::new("touch")
            .args(["-d", "2026-01-02 03:04:05.123456789Z"])
            .arg(root.join("bin/tool"))
            .status();
        assert!(touched.unwrap().success());
        let archive = dir.join("layer.tar");
        std::fs::write(&archive, layer(&root, "srv/app").unwrap()).unwrap();
        let listing = std::process::Command::new("tar").args(["--list", "--file"]).arg(&archive).output().unwrap();
        let listing = String::from_utf8(listing.stdout).unwrap();
        let names: Vec<&str> = listing.lines().take(4).collect();
        assert_eq!(names, ["srv/", "srv/app/", "srv/app/bin/", "srv/app/bin/alias"], "{listing}");
        let out = dir.join("out");
        std::fs::create_dir_all(&out).unwrap();
        let extracted = std::process::Command::new("tar").arg("-xf").arg(&archive).arg("-C").arg(&out).status();
        assert!(extracted.unwrap().success());
        let time = |path: &Path| std::fs::metadata(path).unwrap().modified().unwrap();
        assert_eq!(time(&out.join("srv/app/bin/tool")), time(&root.join("bin/tool")));
        let since = time(&out.join("srv/app/bin/tool")).duration_since(std::time::UNIX_EPOCH).unwrap();
        assert_eq!(since.subsec_nanos(), 123_456_789);
        assert_eq!(std::fs::read(out.join("srv/app/block.bin")).unwrap(), vec![7u8; 512]);
    }

    #[test]
    fn a_pax_record_counts_its_own_length() {
        assert_eq!(pax_record("path", "abc"), "12 path=abc\n");
        let long = "y".repeat(95);
        let record = pax_record("path", &long);
        assert_eq!(record.len().to_string(), record.split(' ').next().unwrap());
    }
}
