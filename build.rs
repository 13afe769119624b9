//! Embeds the committed schema files (`schemas/r4/*.schema`) into the binary, so a build
//! needs no network and no files beside the executable.
use std::{env, fs, path::Path};

fn main() {
    let dir = Path::new(&env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .join("schemas/r4");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut entries: Vec<_> = fs::read_dir(&dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.retain(|p| p.extension().is_some_and(|e| e == "schema"));
    entries.sort();
    let mut out = String::from(
        "/// Committed schema files: (resource type, file text).\npub static EMBEDDED: &[(&str, &str)] = &[\n",
    );
    for path in entries {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("schema file names are UTF-8");
        println!("cargo:rerun-if-changed={}", path.display());
        out.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            path.display().to_string()
        ));
    }
    out.push_str("];\n");
    let dest =
        Path::new(&env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded_schemas.rs");
    fs::write(dest, out).expect("write embedded_schemas.rs");
}
