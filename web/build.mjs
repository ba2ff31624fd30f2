// Bundles the pages into dist/, served by doc-server like a real site (see
// crates/doc-server/src/static_files.rs):
//
//   dist/index.html, dist/editor.html   the pages, naming the assets by their hashed names
//   dist/sw.js                          the service worker (offline app shell), not hashed
//   dist/assets/<name>-<HASH>.<ext>     the JS bundles, the stylesheet, the wasm module
//   dist/assets/style.css               an unhashed copy of the stylesheet, for the server's
//                                       own error pages
//   dist/manifest.json                  { "editor.js": "/assets/editor-<HASH>.js", ... }
//
// Every served file also gets `.br` (brotli, quality 11) and `.gz` (gzip -9) beside it when
// that is smaller, for the server to pick by Accept-Encoding. The wasm module comes from pkg/,
// where scripts/build-web.sh puts it.
import { build, transform } from 'esbuild';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const dist = here('./dist/');
const assets = here('./dist/assets/');

/**
 * Marks @lezer/* as free of side effects (their package.json does not say so), so that a module
 * that imports them but whose importers are unused leaves them out: @codemirror/commands
 * imports @lezer/common for its syntax commands, which the page does not bind (src/lib/keymap.js;
 * about 5 KB of brotli, issue 21). Their top-level code only defines classes and node props.
 * @type {import('esbuild').Plugin}
 */
const lezerIsPure = {
  name: 'lezer-is-pure',
  setup(build) {
    build.onResolve({ filter: /^@lezer\// }, async ({ path, kind, resolveDir, pluginData }) => {
      if (pluginData === lezerIsPure) return undefined;
      const resolved = await build.resolve(path, { kind, resolveDir, pluginData: lezerIsPure });
      return { ...resolved, sideEffects: false };
    });
  },
};

await rm(dist, { recursive: true, force: true });
await mkdir(assets, { recursive: true });
const result = await build({
  entryPoints: { editor: here('./src/editor.js'), index: here('./src/index.js'), style: here('./src/style.css') },
  outdir: assets,
  // Upper-case base32 hashes: the form the server recognises as immutable.
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  // `import wasmUrl from '...wasm'` gives the hashed file's URL.
  loader: { '.wasm': 'file' },
  publicPath: '/assets/',
  bundle: true,
  format: 'esm',
  target: ['es2022'],
  minify: true,
  sourcemap: true,
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
  plugins: [lezerIsPure],
});

/** `{ 'editor.js': '/assets/editor-ABC.js', ... }`: every output but the source maps. */
const manifest = {};
for (const [file, info] of Object.entries(result.metafile.outputs)) {
  if (file.endsWith('.map')) continue;
  const served = `/assets/${file.split('/').pop()}`;
  const source = info.entryPoint ?? Object.keys(info.inputs)[0];
  const extension = served.slice(served.indexOf('.'));
  manifest[`${source.split('/').pop().replace(/\.[^.]+$/, '')}${extension}`] = served;
}
await copyFile(here('./src/style.css'), `${assets}style.css`);

for (const page of ['index.html', 'editor.html']) {
  let html = await readFile(here(`./src/${page}`), 'utf8');
  for (const [name, served] of Object.entries(manifest)) html = html.replaceAll(`/assets/${name}"`, `${served}"`);
  const left = html.match(/\/assets\/[^"]+/g)?.filter((path) => !Object.values(manifest).includes(path));
  if (left?.length) throw new Error(`${page} names assets the build did not make: ${left.join(', ')}`);
  await writeFile(`${dist}${page}`, html);
}

// The service worker's version is a hash of what it caches: a new build is a new cache.
const pages = await Promise.all(['index.html', 'editor.html'].map((page) => readFile(`${dist}${page}`)));
const hashed = Object.values(manifest).sort();
const version = createHash('sha256').update(JSON.stringify(hashed)).update(pages[0]).update(pages[1]).digest('hex');
const shell = { version: version.slice(0, 16), assets: hashed };
const sw = (await readFile(here('./src/sw.js'), 'utf8')).replace("'__BUILD_MANIFEST__'", JSON.stringify(shell));
if (!sw.includes(shell.version)) throw new Error('src/sw.js lost its BUILD placeholder');
await writeFile(`${dist}sw.js`, (await transform(sw, { minify: true, target: 'es2022', legalComments: 'none' })).code);
await writeFile(`${dist}manifest.json`, `${JSON.stringify(manifest, null, 2)}\n`);

// Precompressed variants, and the table of sizes.
const rows = [];
const served = async (dir, prefix) => {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = `${dir}${entry.name}`;
    if (entry.isDirectory()) await served(`${path}/`, `${prefix}${entry.name}/`);
    else if (!/\.(map|json)$/.test(entry.name)) await compress(path, `${prefix}${entry.name}`);
  }
};
async function compress(path, name) {
  const bytes = await readFile(path);
  const brotli = brotliCompressSync(bytes, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
      [constants.BROTLI_PARAM_LGWIN]: constants.BROTLI_MAX_WINDOW_BITS,
      [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
    },
  });
  const gzip = gzipSync(bytes, { level: 9 });
  if (brotli.length < bytes.length) await writeFile(`${path}.br`, brotli);
  if (gzip.length < bytes.length) await writeFile(`${path}.gz`, gzip);
  rows.push([name, bytes.length, gzip.length, brotli.length]);
}
await served(dist, 'dist/');
rows.sort((a, b) => b[1] - a[1]);
console.log(`  ${'file'.padEnd(48)} ${'raw'.padStart(8)} ${'gzip'.padStart(8)} ${'brotli'.padStart(8)}`);
for (const [name, raw, gz, br] of rows) {
  console.log(`  ${name.padEnd(48)} ${String(raw).padStart(8)} ${String(gz).padStart(8)} ${String(br).padStart(8)}`);
}
