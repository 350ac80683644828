//! `cargo xtask test`: the app's pytest suite in its virtualenv passes, a failing test makes it fail, and
//! arguments after `--` reach pytest.

mod local;

use local::*;

#[test]
fn example_app_tests_pass() {
    let output = xtask().args(["test", "--", "-q", "-p", "no:cacheprovider"]).output().unwrap();
    assert_success("cargo xtask test", &output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(" passed"), "{}", text(&output));
    assert!(!stdout.contains("failed"), "{}", text(&output));
}

#[test]
fn a_failing_test_fails_the_task() {
    let app = example_app_copy("pytest-failing");
    std::fs::write(
        app.join("tests/test_broken.py"),
        "from app.service import string_service\n\n\ndef test_broken():\n    assert string_service.reverse('ab') == 'ab'\n",
    )
    .unwrap();
    let output =
        xtask().args(["test", "--app", app.to_str().unwrap(), "--", "-q", "-p", "no:cacheprovider"]).output().unwrap();
    let all = text(&output);
    assert!(!output.status.success(), "{all}");
    assert!(all.contains("1 failed"), "{all}");
    assert!(all.contains("error: the app's tests failed (pytest exited with exit status: 1)"), "{all}");

    // Arguments after `--` reach pytest: deselecting the broken test makes the run pass.
    let output = xtask()
        .args(["test", "--app", app.to_str().unwrap(), "--", "-q", "-p", "no:cacheprovider", "-k", "not broken"])
        .output()
        .unwrap();
    assert_success("cargo xtask test -- -k 'not broken'", &output);
}

#[test]
fn an_up_to_date_virtualenv_is_not_touched() {
    ensure_example_venv();
    let stamp = example_app().join(".venv/xtask-stamp");
    let before = std::fs::metadata(&stamp).unwrap().modified().unwrap();
    let output = xtask().args(["test", "--", "--collect-only", "-q"]).output().unwrap();
    assert_success("cargo xtask test -- --collect-only", &output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("venv: example-app/.venv is up to date"), "{}", text(&output));
    assert!(!text(&output).contains("pip install"), "{}", text(&output));
    assert_eq!(std::fs::metadata(&stamp).unwrap().modified().unwrap(), before);
}
