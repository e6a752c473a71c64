//! Invariants of the crate map that the compiler does not check by itself.

use std::path::Path;

/// Every file under `dir` (recursively) with one of the extensions.
fn files(dir: &Path, exts: &[&str], out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, exts, out);
        } else if path
            .extension()
            .is_some_and(|e| exts.iter().any(|x| e == *x))
        {
            out.push(path);
        }
    }
}

/// The dependency names per section (`dependencies`, `dev-dependencies`) of a manifest.
fn deps(manifest: &str) -> Vec<(String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
        } else if section.ends_with("dependencies")
            && let Some((name, _)) = line.split_once('=')
        {
            let name = name.trim().trim_end_matches(".workspace").to_string();
            out.push((section.clone(), name));
        }
    }
    out
}

#[test]
fn a_simulator_never_imports_its_provider() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let providers = ["hetzner", "proxmox", "pfsense"];
    for sim in providers {
        let dir = root.join(format!("crates/{sim}-sim"));
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let mut sources = Vec::new();
        files(&dir.join("src"), &["rs"], &mut sources);
        assert!(!sources.is_empty(), "no sources found for {sim}-sim");
        let deps = deps(&manifest);
        assert!(deps.iter().any(|(_, d)| d == "cairn-sim-kit"), "{deps:?}");
        for provider in providers {
            assert!(
                !deps.iter().any(|(_, d)| *d == format!("cairn-{provider}")),
                "{sim}-sim depends on cairn-{provider}"
            );
            let path = format!("cairn_{provider}::");
            for file in &sources {
                let text = std::fs::read_to_string(file).unwrap();
                assert!(!text.contains(&path), "{} uses {path}", file.display());
            }
        }
    }
}

#[test]
fn a_provider_carries_no_simulator() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for provider in ["hetzner", "proxmox", "pfsense"] {
        let dir = root.join(format!("crates/{provider}"));
        assert!(!dir.join("src/sim").exists(), "{provider} has src/sim");
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let sims: Vec<_> = deps(&manifest)
            .into_iter()
            .filter(|(_, d)| d.ends_with("-sim") || d == "cairn-sim-kit" || d == "axum")
            .collect();
        assert_eq!(
            sims,
            [(
                "dev-dependencies".to_string(),
                format!("cairn-{provider}-sim")
            )],
            "{provider}: the simulator is a dev-dependency only"
        );
    }
}
