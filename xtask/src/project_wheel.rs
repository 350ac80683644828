//! The project itself, installed into the image's virtualenv the way `poetry install` installs the root
//! project: a wheel of its metadata (`METADATA`, `entry_points.txt`) and a `.pth` file that puts the image's
//! workdir, where the app's files are copied, on `sys.path`. So console scripts (`[project.scripts]`,
//! `[tool.poetry.scripts]`) exist, `importlib.metadata.version("<project>")` answers, and a console script
//! run from any directory (alembic) imports the app; the code itself stays a plain copy, so an edit of the
//! app rebuilds no wheel and no virtualenv layer.
//!
//! The wheel is written here, byte for byte the same for the same settings (a zip archive without
//! compression, every entry dated 1980-01-01), and pinned by its hash like every other wheel.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::config::Config;
use crate::gen;
use poetry_export::sha256;

/// The project's wheel, written into the state directory.
#[derive(Debug, Clone)]
pub(crate) struct ProjectWheel {
    pub(crate) path: PathBuf,
    /// `orders-1.4.0-py3-none-any.whl`
    pub(crate) file_name: String,
    /// Hex.
    pub(crate) sha256: String,
    /// `orders==1.4.0 --hash=sha256:...`, for the image's requirements.
    pub(crate) requirement: String,
}

/// The wheel of a package-mode project (`None` for `package-mode = false`), written to `dir` when it changed.
pub(crate) fn write(config: &Config, dir: &Path) -> Result<Option<ProjectWheel>> {
    if !config.package_mode {
        return Ok(None);
    }
    let (file_name, bytes) = wheel(config);
    let sha256 = sha256::hex_digest(&bytes);
    let path = dir.join(&file_name);
    if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
        std::fs::create_dir_all(dir)?;
        // The only wheel of the project there: an older version's goes.
        for entry in std::fs::read_dir(dir)?.flatten() {
            if entry.file_name().to_string_lossy().ends_with(".whl") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        gen::write_atomic(&path, &bytes)?;
    }
    let requirement = format!("{}=={} \\\n    --hash=sha256:{sha256}\n", config.project_name, config.project_version);
    Ok(Some(ProjectWheel { path, file_name, sha256, requirement }))
}

/// The wheel's file name and bytes (pure).
fn wheel(config: &Config) -> (String, Vec<u8>) {
    let distribution = escape(&config.project_name);
    let version = config.project_version.replace('-', "_");
    let dist_info = format!("{distribution}-{version}.dist-info");
    let mut metadata =
        format!("Metadata-Version: 2.1\nName: {}\nVersion: {}\n", config.project_name, config.project_version);
    if let Some(summary) = config.project_summary.as_deref().filter(|s| !s.contains('\n')) {
        metadata.push_str(&format!("Summary: {summary}\n"));
    }
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (format!("{distribution}.pth"), format!("{}\n", config.workdir).into_bytes()),
        (format!("{dist_info}/METADATA"), metadata.into_bytes()),
        (
            format!("{dist_info}/WHEEL"),
            b"Wheel-Version: 1.0\nGenerator: cargo-xtask\nRoot-Is-Purelib: true\nTag: py3-none-any\n".to_vec(),
        ),
    ];
    if !config.entry_points.is_empty() {
        let mut text = String::new();
        let mut group = "";
        for (g, name, value) in &config.entry_points {
            if g != group {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(&format!("[{g}]\n"));
                group = g;
            }
            text.push_str(&format!("{name} = {value}\n"));
        }
        files.push((format!("{dist_info}/entry_points.txt"), text.into_bytes()));
    }
    let mut record = String::new();
    for (name, bytes) in &files {
        record.push_str(&format!("{name},sha256={},{}\n", base64_url(&sha256::digest(bytes)), bytes.len()));
    }
    record.push_str(&format!("{dist_info}/RECORD,,\n"));
    files.push((format!("{dist_info}/RECORD"), record.into_bytes()));
    (format!("{distribution}-{version}-py3-none-any.whl"), zip(&files))
}

/// A distribution name as wheel file names spell it: runs of `-_.` become `_`, lowercase.
fn escape(name: &str) -> String {
    crate::config::normalize(name).replace('-', "_")
}

/// URL-safe base64 without padding, as RECORD writes hashes.
fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// A zip archive of `files`, stored (no compression), every entry dated 1980-01-01 00:00 and mode 0644.
fn zip(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    const DOS_DATE: u16 = 1 << 5 | 1; // 1980-01-01
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in files {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let size = data.len() as u32;
        let common = |buf: &mut Vec<u8>| {
            buf.extend_from_slice(&20u16.to_le_bytes()); // version needed: 2.0
            buf.extend_from_slice(&0u16.to_le_bytes()); // flags
            buf.extend_from_slice(&0u16.to_le_bytes()); // method: stored
            buf.extend_from_slice(&0u16.to_le_bytes()); // time
            buf.extend_from_slice(&DOS_DATE.to_le_bytes());
            buf.extend_from_slice(&crc.to_le_bytes());
            buf.extend_from_slice(&size.to_le_bytes());
            buf.extend_from_slice(&size.to_le_bytes());
            buf.extend_from_slice(&(name.len() as u16).to_le_bytes());
            buf.extend_from_slice(&0u16.to_le_bytes()); // extra length
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        common(&mut out);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);

        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&(3u16 << 8 | 20).to_le_bytes()); // made by: Unix, 2.0
        common(&mut central);
        central.extend_from_slice(&0u16.to_le_bytes()); // comment length
        central.extend_from_slice(&0u16.to_le_bytes()); // disk
        central.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        central.extend_from_slice(&(0o100644u32 << 16).to_le_bytes()); // external: a regular file, 0644
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let central_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]); // this disk, the disk of the directory
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&central_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // comment length
    out
}

/// CRC-32 (IEEE), as zip checks entries.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(base64_url(b""), "");
        assert_eq!(base64_url(b"f"), "Zg");
        assert_eq!(base64_url(b"fo"), "Zm8");
        assert_eq!(base64_url(b"foo"), "Zm9v");
        assert_eq!(base64_url(&[0xfb, 0xff]), "-_8");
        assert_eq!(escape("My.App--x"), "my_app_x");
    }

    /// Python's zipfile reads the wheel, and its RECORD matches its files.
    #[test]
    fn python_reads_the_wheel() {
        let dir = std::env::temp_dir().join(format!("xtask-project-wheel-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("orders")).unwrap();
        std::fs::write(
            dir.join("pyproject.toml"),
            "[project]\nname = \"Orders.API\"\nversion = \"1.4.0\"\ndescription = \"Orders\"\n\
             dependencies = [\"uvicorn\"]\n[project.scripts]\norders-admin = \"orders.cli:main\"\n\
             [project.entry-points.\"orders.plugins\"]\nbasic = \"orders.plugins:basic\"\n",
        )
        .unwrap();
        std::fs::write(dir.join("orders_api.py"), "app = None\n").unwrap();
        let config = Config::read(&dir).unwrap();
        let wheel = write(&config, &dir.join("out")).unwrap().unwrap();
        assert_eq!(wheel.file_name, "orders_api-1.4.0-py3-none-any.whl");
        let script = "import base64, hashlib, sys, zipfile\n\
            z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None\n\
            for line in z.read('orders_api-1.4.0.dist-info/RECORD').decode().splitlines():\n\
            \x20   name, digest, size = line.split(',')\n\
            \x20   if digest:\n\
            \x20       data = z.read(name)\n\
            \x20       assert digest == 'sha256=' + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode(), name\n\
            \x20       assert int(size) == len(data)\n\
            print(z.read('orders_api.pth').decode(), end='')\n\
            print(z.read('orders_api-1.4.0.dist-info/entry_points.txt').decode(), end='')\n";
        let output = std::process::Command::new("python3").args(["-c", script]).arg(&wheel.path).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "/app\n[console_scripts]\norders-admin = orders.cli:main\n\n[orders.plugins]\nbasic = orders.plugins:basic\n"
        );
        assert!(wheel.requirement.starts_with("Orders.API==1.4.0 \\\n    --hash=sha256:"));
        // The same settings, the same bytes.
        let again = write(&config, &dir.join("out")).unwrap().unwrap();
        assert_eq!(again.sha256, wheel.sha256);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
