//! Records the git revision and the rustc version for `stevedore_build_info` and `--version`.
use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    if s.is_empty() { None } else { Some(s) }
}

fn main() {
    let revision = std::env::var("STEVEDORE_REVISION")
        .ok()
        .or_else(|| output("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let rustc_version = output(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=STEVEDORE_REVISION={revision}");
    println!("cargo:rustc-env=STEVEDORE_RUSTC_VERSION={rustc_version}");
    println!("cargo:rerun-if-env-changed=STEVEDORE_REVISION");
    println!("cargo:rerun-if-changed=build.rs");
    // The files that move with the revision, where git keeps them: in a worktree `.git` is a file and
    // HEAD lives under the common folder's worktrees/. A path that does not exist would make cargo rerun
    // this script, and rebuild the crate, on every build.
    let git_dir = output("git", &["rev-parse", "--absolute-git-dir"]);
    let common = output("git", &["rev-parse", "--git-common-dir"]);
    let watched = [
        git_dir.as_ref().map(|d| format!("{d}/HEAD")),
        common.as_ref().map(|d| format!("{d}/refs/heads")),
        common.as_ref().map(|d| format!("{d}/packed-refs")),
    ];
    for path in watched.into_iter().flatten() {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
