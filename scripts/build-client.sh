#!/usr/bin/env bash
# Builds the npm package ferry-client into dist/: the wasm crate (size profile), its
# wasm-bindgen glue, wasm-opt, and the hand-written JS/TS from js/. Prints the sizes.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=wasm-release
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
BIN="node_modules/.bin"

if [ ! -x "$BIN/wasm-opt" ] || [ ! -x "$BIN/esbuild" ]; then
  echo "build-client: installing npm dev dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund >&2
fi
command -v wasm-bindgen >/dev/null || {
  echo "build-client: wasm-bindgen CLI missing: cargo install wasm-bindgen-cli --version 0.2.130" >&2
  exit 1
}

# Keep build-machine paths (panic locations) out of the shipped wasm.
CARGO_HOME_DIR="${CARGO_HOME:-$HOME/.cargo}"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="--remap-path-prefix=$CARGO_HOME_DIR/registry/src/= --remap-path-prefix=$PWD/="
cargo build -p ferry-client --target wasm32-unknown-unknown --profile "$PROFILE"

rm -rf dist
mkdir -p dist/wasm
wasm-bindgen --target web --no-typescript --out-dir dist/wasm \
  "$TARGET_DIR/wasm32-unknown-unknown/$PROFILE/ferry_client.wasm"
# binaryen from npm: Debian's wasm-opt 108 cannot parse the reference-types instructions
# that Rust's default wasm32 features produce.
WASM_FEATURES=(--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
  --enable-mutable-globals --enable-reference-types --enable-multivalue)
"$BIN/wasm-opt" -Oz --converge --low-memory-unused --zero-filled-memory \
  --strip-debug --strip-producers --strip-target-features "${WASM_FEATURES[@]}" \
  dist/wasm/ferry_client_bg.wasm -o dist/wasm/ferry_client_bg.wasm
# Short import/export names in the module and the glue (the generated ones carry hashes,
# which gzip cannot compress); minify-names.mjs checks that the two still agree.
names_map="$(mktemp)"
"$BIN/wasm-opt" --minify-imports-and-exports-and-modules "${WASM_FEATURES[@]}" \
  dist/wasm/ferry_client_bg.wasm -o dist/wasm/ferry_client_bg.wasm >"$names_map"
node scripts/minify-names.mjs dist/wasm/ferry_client.js "$names_map" dist/wasm/ferry_client_bg.wasm
rm -f "$names_map"
cp js/core.js js/error.js js/body.js js/trace.js js/runtime.js js/token.js js/index.js js/workerd.js js/index.d.ts js/react.js js/react.d.ts js/shared.js js/shared-worker.js dist/
cp dist/index.d.ts dist/workerd.d.ts

# Sizes: the wasm, and the JS every app loads (glue + core + entry), minified by esbuild; the
# module `connect(url, { shared: true })` imports on demand (its own chunk in an app's bundle)
# is reported apart.
min_js="$(mktemp)"
lazy_js="$(mktemp)"
"$BIN/esbuild" dist/index.js --bundle --minify --format=esm --platform=browser \
  --external:./shared.js --log-level=error --outfile="$min_js"
"$BIN/esbuild" dist/shared.js --bundle --minify --format=esm --platform=browser \
  --external:./core.js --log-level=error --outfile="$lazy_js"
size() { wc -c <"$1" | tr -d ' '; }
gz() { gzip -9c "$1" | wc -c | tr -d ' '; }
wasm=dist/wasm/ferry_client_bg.wasm
total_gz=$(( $(gz "$wasm") + $(gz "$min_js") ))
printf 'ferry-client size: wasm %s B (gzip %s B), JS min %s B (gzip %s B), total min+gzip %s B (%s KB); shared: true loads %s B more (gzip)\n' \
  "$(size "$wasm")" "$(gz "$wasm")" "$(size "$min_js")" "$(gz "$min_js")" \
  "$total_gz" "$(awk "BEGIN{printf \"%.1f\", $total_gz/1024}")" "$(gz "$lazy_js")"
rm -f "$min_js" "$lazy_js"
