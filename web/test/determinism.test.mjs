// The wasm build against the native one: the same seeded random sessions (wasm-client's
// determinism.rs) must give byte-identical snapshots, wire frames and state hashes. The native
// results come from `cargo run -p wasm-client --example determinism` (scripts/e2e.sh writes
// them to the file named by DETERMINISM_NATIVE); without that file the test is skipped. The
// wasm is the page's build with the `determinism` feature, which exports determinismSample
// (`scripts/build-web.sh --determinism` writes it to web/pkg-determinism).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';

const nativeFile = process.env.DETERMINISM_NATIVE;
const pkg = new URL('../pkg-determinism/', import.meta.url);

test('native and wasm builds encode and hash seeded sessions identically', { skip: !nativeFile }, async () => {
  assert.ok(existsSync(pkg), `no ${pkg.pathname}: run scripts/build-web.sh --determinism`);
  const { initSync, determinismSample } = await import(new URL('wasm_client.js', pkg).href);
  initSync({ module: readFileSync(new URL('wasm_client_bg.wasm', pkg)) });
  assert.ok(existsSync(nativeFile), `no native samples at ${nativeFile}`);
  const lines = readFileSync(nativeFile, 'utf8').trim().split('\n');
  assert.ok(lines.length >= 100, `only ${lines.length} native samples`);
  for (const line of lines) {
    const [seed, hex] = line.split(' ');
    const wasm = Buffer.from(determinismSample(Number(seed))).toString('hex');
    assert.ok(wasm === hex, `seed ${seed}: the wasm build's bytes differ from the native build's (replay with that seed)`);
  }
});
