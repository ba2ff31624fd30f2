// Bundles the pages into dist/: dist/index.html, dist/editor.html and dist/assets/ (the JS
// bundles, the stylesheet and the wasm module that scripts/build-web.sh put in pkg/).
import { build } from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const dist = here('./dist/');
const assets = here('./dist/assets/');

await rm(dist, { recursive: true, force: true });
await mkdir(assets, { recursive: true });
const result = await build({
  entryPoints: { editor: here('./src/editor.js'), index: here('./src/index.js') },
  outdir: assets,
  bundle: true,
  format: 'esm',
  target: ['es2022'],
  minify: true,
  sourcemap: true,
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
});
await copyFile(here('./pkg/wasm_client_bg.wasm'), `${assets}wasm_client_bg.wasm`);
await copyFile(here('./src/style.css'), `${assets}style.css`);
await copyFile(here('./src/index.html'), `${dist}index.html`);
await copyFile(here('./src/editor.html'), `${dist}editor.html`);
for (const [file, info] of Object.entries(result.metafile.outputs)) {
  if (!file.endsWith('.map')) console.log(`  ${file.replace(/^.*dist\//, 'dist/')}  ${info.bytes} bytes`);
}
