// The wasm build against the native one: the same seeded random sessions (wasm-client's
// determinism.rs) must give byte-identical snapshots, wire frames and state hashes. The native
// results come from `cargo run -p wasm-client --example determinism` (scripts/e2e.sh writes
// them to the file named by DETERMINISM_NATIVE); without that file the test is skipped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';

import { initSync, determinismSample } from '../pkg/wasm_client.js';

initSync({ module: readFileSync(new URL('../pkg/wasm_client_bg.wasm', import.meta.url)) });

const nativeFile = process.env.DETERMINISM_NATIVE;

test('native and wasm builds encode and hash seeded sessions identically', { skip: !nativeFile }, () => {
  assert.ok(existsSync(nativeFile), `no native samples at ${nativeFile}`);
  const lines = readFileSync(nativeFile, 'utf8').trim().split('\n');
  assert.ok(lines.length >= 100, `only ${lines.length} native samples`);
  for (const line of lines) {
    const [seed, hex] = line.split(' ');
    const wasm = Buffer.from(determinismSample(Number(seed))).toString('hex');
    assert.ok(wasm === hex, `seed ${seed}: the wasm build's bytes differ from the native build's (replay with that seed)`);
  }
});
