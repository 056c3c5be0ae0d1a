//! The README's main job: examples/quickstart/tour.sh shows the success path
//! (exit 0) and the restore path (exit 4, every row intact, failed copy kept).

use crate::common;

#[test]
fn the_quickstart_tour_passes() {
    // Work on a copy so the test leaves the repository clean and can run in parallel.
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    let dir = tempfile::tempdir().unwrap();
    for entry in walk(&src) {
        let rel = entry.strip_prefix(&src).unwrap();
        if rel.starts_with(".ferry") || rel.to_string_lossy().starts_with("app") {
            continue;
        }
        let to = dir.path().join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &to).unwrap();
    }
    let out = std::process::Command::new("sh")
        .arg(dir.path().join("tour.sh"))
        .env("FERRY", common::FERRY)
        .env_remove("FERRY_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tour failed\n{stdout}\n{stderr}");
    assert!(stdout.contains("tour: ok"), "{stdout}");
    assert!(
        stderr.contains("ferry deploy broken failed; the database was restored from the snapshot (exit 4)"),
        "{stderr}"
    );
    assert!(stderr.contains("ferry deploy local succeeded (exit 0)"), "{stderr}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
