//! Build script of outpost-agent.
//!
//! Each job is one function that prints its own `cargo:` lines; `main` calls them in turn. To
//! add one (say, a `cargo:rustc-link-arg-bin=outpost-agent=...` line), add a function and call
//! it from `main`. Note: once any `rerun-if-changed` is printed, Cargo reruns this script only
//! when a listed path changes, so every job lists the files it reads (this one lists itself).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    git_commit();
    hot_text();
}

/// Links the functions a running agent executes next to each other (`link/hot-text.ld`, made
/// by `bench/hot_text.py`; docs/performance.md, "Resident code"): the kernel maps code around
/// every page fault, so grouping them keeps the resident code of an idle agent small. Release
/// builds on Linux only (`dist`, what the packages ship, inherits `release`); a pure layout
/// hint, never a change of behaviour. `OUTPOST_HOT_TEXT=0` turns it off.
fn hot_text() {
    println!("cargo:rerun-if-env-changed=OUTPOST_HOT_TEXT");
    println!("cargo:rerun-if-changed=link/hot-text.ld");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let off = std::env::var("OUTPOST_HOT_TEXT").is_ok_and(|v| v == "0");
    if linux && release && !off {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".to_owned());
        println!("cargo:rustc-link-arg-bin=outpost-agent=-Wl,-T,{dir}/link/hot-text.ld");
    }
}

/// Sets `OUTPOST_COMMIT` for the crate (`outpost-agent --version`): `OUTPOST_BUILD_COMMIT` when
/// set (builds from a source tarball, which has no `.git`), else `git rev-parse --short=12 HEAD`,
/// else `unknown`.
fn git_commit() {
    println!("cargo:rerun-if-env-changed=OUTPOST_BUILD_COMMIT");
    let commit = match std::env::var("OUTPOST_BUILD_COMMIT") {
        Ok(c) if !c.trim().is_empty() => {
            let c = c.trim().to_owned();
            assert!(
                c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b)),
                "OUTPOST_BUILD_COMMIT={c:?}: only letters, digits and . _ + - are allowed"
            );
            c
        }
        _ => {
            watch_git_head();
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned())
        }
    };
    println!("cargo:rustc-env=OUTPOST_COMMIT={commit}");
}

/// Rerun when HEAD moves: HEAD itself (another branch checked out), the ref it points to (a
/// commit), and `packed-refs`. Paths come from `git rev-parse --git-path`, which knows where
/// a worktree or submodule keeps them (`.git` may be a file). Only existing paths are listed
/// (Cargo reruns every build for a missing one); for a ref not written as a file yet, its
/// directory is listed, in which the file appears.
fn watch_git_head() {
    let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) else {
        return; // Not a git checkout.
    };
    let mut paths = vec![head];
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(file) = git(&["rev-parse", "--git-path", &reference])
    {
        let path = std::path::Path::new(&file);
        match path.parent() {
            Some(dir) if !path.exists() => paths.push(dir.display().to_string()),
            _ => paths.push(file.clone()),
        }
    }
    paths.extend(git(&["rev-parse", "--git-path", "packed-refs"]));
    for p in paths {
        if std::path::Path::new(&p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
}

/// Run git in the package's directory; its trimmed output when it succeeds.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}
