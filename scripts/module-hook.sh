# Sourced by the Trunk hooks that build the engine's other modules (training-module.sh,
# threaded-module.sh): moves to the repository's root and sets STAGING (Trunk's staging
# directory, where the module goes), PROFILE and DIR (the cargo profile of Trunk's build and
# its output folder) and TARGET (the cargo target directory); checks that the wasm-bindgen on
# PATH is the one Trunk.toml names.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
HOOK="$(basename "${BASH_SOURCE[1]}")"
STAGING="${TRUNK_STAGING_DIR:?$HOOK is run by trunk build, as a hook in Trunk.toml}"
# Trunk's release build uses the wasm-release profile (index.html's data-cargo-profile).
if [[ "${TRUNK_PROFILE:-debug}" == "release" ]]; then PROFILE=wasm-release; DIR=wasm-release; else PROFILE=dev; DIR=debug; fi
TARGET="${CARGO_TARGET_DIR:-target}"
# Trunk keeps its own wasm-bindgen in its cache; a hook needs one on PATH, of the same version.
BINDGEN="$(awk -F'"' '/^wasm_bindgen/ {print $2}' Trunk.toml)"
if [[ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$BINDGEN" ]]; then
  echo "$HOOK: wasm-bindgen $BINDGEN is not on PATH: run scripts/setup.sh, or cargo install wasm-bindgen-cli --version $BINDGEN" >&2
  exit 1
fi
