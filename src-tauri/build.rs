//! Build script: compiles the Tauri context (config, capabilities, the built UI) and
//! declares the app's own commands so capabilities can grant them one by one.

fn main() {
    // The windows' pages are compiled into the binary; they must be built first.
    // Read at run time: a build script compiled for another checkout of this crate may be reused.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let pages = std::path::Path::new(&manifest_dir).join("../ui/dist/catalog.html");
    println!("cargo:rerun-if-changed=../ui/dist");
    assert!(
        pages.exists(),
        "ui/dist is missing: build the windows first with `npm ci && npm run build` in ui/ (`cargo xtask test` and `cargo xtask run` do this)"
    );
    let commands = &[
        "catalog_view",
        "recent_activity",
        "masking_line",
        "window_context",
        "exception_form",
        "exception_requests",
        "submit_exception",
        "open_view",
        "open_assistant",
        "about",
    ];
    tauri_build::try_build(
        tauri_build::Attributes::new().app_manifest(tauri_build::AppManifest::new().commands(commands)),
    )
    .expect("tauri build step");
}
