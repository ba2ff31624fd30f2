// Gzipped sizes of our browser client beside the wasm/JS of yjs, @automerge/automerge and
// loro-crdt, for BENCHMARKS.md.
//
//   node web/tools/compare-sizes.mjs      (after scripts/build-web.sh)
//
// The other packages are installed into a temporary directory (never into web/package.json).
// JS is measured as an esbuild minified ESM bundle of the package's browser entry (wasm left
// out), wasm as the file the package ships; everything with gzip -9.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

import { build } from 'esbuild';

const web = path.resolve(fileURLToPath(new URL('..', import.meta.url)));
const PACKAGES = ['yjs@13.6.33', '@automerge/automerge@3.5.0', 'loro-crdt@1.17.1'];

const gz = (bytes) => gzipSync(bytes, { level: 9 }).length;
const rows = [];

async function jsBundle(label, code, resolveDir) {
  const result = await build({
    stdin: { contents: code, resolveDir },
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    write: false,
    outdir: 'out',
    external: ['*.wasm'],
    logLevel: 'error',
  });
  const js = result.outputFiles.filter((file) => file.path.endsWith('.js'));
  rows.push([label, 'JS', js.reduce((n, f) => n + f.contents.length, 0), js.reduce((n, f) => n + gz(f.contents), 0)]);
}

function wasmFile(label, file) {
  const bytes = readFileSync(file);
  rows.push([label, 'wasm', bytes.length, gz(bytes)]);
}

const dir = mkdtempSync(path.join(tmpdir(), 'crdt-sizes-'));
try {
  writeFileSync(path.join(dir, 'package.json'), '{"private": true}');
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...PACKAGES], { cwd: dir, stdio: 'inherit' });

  // The bundle's files carry content hashes; dist/manifest.json names them.
  const built = JSON.parse(readFileSync(path.join(web, 'dist/manifest.json'), 'utf8'));
  const distFile = (name) => path.join(web, 'dist', built[name]);
  wasmFile('wasm-client (ours)', distFile('wasm_client_bg.wasm'));
  await jsBundle('wasm-client (ours) glue', `export * from ${JSON.stringify(path.join(web, 'pkg/wasm_client.js'))};`, web);
  rows.push(['editor page (ours): editor.js incl. CodeMirror', 'JS', readFileSync(distFile('editor.js')).length, gz(readFileSync(distFile('editor.js')))]);
  await jsBundle('yjs 13.6.33 (with lib0)', "export * from 'yjs';", dir);
  wasmFile('@automerge/automerge 3.5.0', path.join(dir, 'node_modules/@automerge/automerge/dist/automerge.wasm'));
  await jsBundle('@automerge/automerge 3.5.0 (slim entry)', "export * from '@automerge/automerge/slim';", dir);
  wasmFile('loro-crdt 1.17.1', path.join(dir, 'node_modules/loro-crdt/web/loro_wasm_bg.wasm'));
  await jsBundle('loro-crdt 1.17.1 (web entry)', "export * from 'loro-crdt/web';", dir);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

console.log('| package | part | bytes | gzipped |\n|---|---|---:|---:|');
for (const [label, part, bytes, gzipped] of rows) console.log(`| ${label} | ${part} | ${bytes} | ${gzipped} |`);
