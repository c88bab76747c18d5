//! The checked-in containerd API code (src/source/containerd_api/) is what tonic-prost-build makes of
//! proto/ today: regenerated here with Debian's protoc (./scripts/test installs protobuf-compiler) and
//! compared byte for byte. `STEVEDORE_REGENERATE=1` writes the new files instead (then review the diff).

use std::path::Path;

/// The .proto files whose services and messages Stevedore uses; their imports come along.
const PROTOS: &[&str] = &[
    "github.com/containerd/containerd/api/services/containers/v1/containers.proto",
    "github.com/containerd/containerd/api/services/events/v1/events.proto",
    "github.com/containerd/containerd/api/services/namespaces/v1/namespace.proto",
    "github.com/containerd/containerd/api/services/snapshots/v1/snapshots.proto",
    "github.com/containerd/containerd/api/services/tasks/v1/tasks.proto",
    "github.com/containerd/containerd/api/events/container.proto",
    "github.com/containerd/containerd/api/events/task.proto",
];

pub fn generate(out: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
    let files: Vec<_> = PROTOS.iter().map(|p| root.join(p)).collect();
    // No comments: containerd's would become rustdoc, and rustdoc runs their code-like lines as tests.
    let mut messages = prost_build::Config::new();
    messages.disable_comments(["."]);
    tonic_prost_build::configure()
        .build_server(false)
        .disable_comments(["."])
        .out_dir(out)
        .compile_with_config(messages, &files, &[root])
        .expect("protoc (Debian's protobuf-compiler) and proto/");
}

#[test]
fn the_checked_in_containerd_api_is_what_the_protos_generate() {
    let checked_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/source/containerd_api");
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path());
    let mut made: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    made.sort();
    if std::env::var_os("STEVEDORE_REGENERATE").is_some() {
        let _ = std::fs::remove_dir_all(&checked_in);
        std::fs::create_dir_all(&checked_in).unwrap();
        for f in &made {
            std::fs::copy(dir.path().join(f), checked_in.join(f)).unwrap();
        }
        return;
    }
    let mut have: Vec<_> = std::fs::read_dir(&checked_in)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    have.sort();
    assert_eq!(have, made, "files in {}", checked_in.display());
    for f in &made {
        assert!(
            std::fs::read(dir.path().join(f)).unwrap()
                == std::fs::read(checked_in.join(f)).unwrap(),
            "{f} is stale: STEVEDORE_REGENERATE=1 cargo test --test containerd_api"
        );
    }
}
