//! `cfg(parallel)`: the code may spread work over rayon's threads. Natively it always may; in
//! the browser only in the threaded module (the `threads` feature, scripts/threaded-module.sh),
//! whose threads are web workers on one shared memory. The page's other modules run on the one
//! thread of their worker.
fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(parallel)");
    let wasm =
        std::env::var("CARGO_CFG_TARGET_FAMILY").is_ok_and(|f| f.split(',').any(|f| f == "wasm"));
    if !wasm || std::env::var_os("CARGO_FEATURE_THREADS").is_some() {
        println!("cargo::rustc-cfg=parallel");
    }
}
