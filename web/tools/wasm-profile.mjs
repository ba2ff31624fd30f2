// Where the wasm client's bytes go: its function bodies grouped by crate (or by a name pattern),
// raw and brotli, for issue 21 (BENCHMARKS.md). Reads a wasm file that still has its name
// section, i.e. cargo's output before wasm-bindgen strips it:
//
//   node web/tools/wasm-profile.mjs $CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/wasm_client.wasm
//   node web/tools/wasm-profile.mjs FILE --top 40          # also the 40 largest functions
//   node web/tools/wasm-profile.mjs FILE --match 'fmt|float'  # the functions whose name matches
//
// A group's "brotli alone" compresses its bodies by themselves; "brotli saved" is what the whole
// code section's brotli loses without them (what removing the group would save at most, since
// brotli finds repeats across groups), for groups of at least 2 KB raw. Quality 11, 16 MiB window, as web/build.mjs sends it.
import { readFileSync } from 'node:fs';
import { brotliCompressSync, constants } from 'node:zlib';

const [file, ...flags] = process.argv.slice(2);
if (!file) throw new Error('usage: wasm-profile.mjs FILE.wasm [--top N] [--match REGEX]');
const option = (name) => {
  const at = flags.indexOf(name);
  return at >= 0 ? flags[at + 1] : undefined;
};
const bytes = readFileSync(file);

let at = 8;
const leb = () => {
  let result = 0;
  let shift = 0;
  for (;;) {
    const byte = bytes[at++];
    result += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if (byte < 0x80) return result;
  }
};
const name = () => {
  const len = leb();
  const text = bytes.subarray(at, at + len).toString('utf8');
  at += len;
  return text;
};
const limits = () => {
  const flag = bytes[at++];
  leb();
  if (flag & 1) leb();
};

let imported = 0;
const bodies = [];
const names = new Map();
const sections = [];
while (at < bytes.length) {
  const id = bytes[at++];
  const size = leb();
  const end = at + size;
  const start = at;
  let label = `section ${id}`;
  if (id === 0) {
    label = `custom "${name()}"`;
    if (label === 'custom "name"') {
      while (at < end) {
        const sub = bytes[at++];
        const subEnd = leb() + at;
        if (sub === 1) {
          for (let n = leb(); n > 0; n--) names.set(leb(), name());
        }
        at = subEnd;
      }
    }
  } else if (id === 2) {
    label = 'imports';
    for (let n = leb(); n > 0; n--) {
      name();
      name();
      const kind = bytes[at++];
      if (kind === 0) {
        leb();
        imported++;
      } else if (kind === 1) {
        at++;
        limits();
      } else if (kind === 2) limits();
      else at += 2;
    }
  } else if (id === 10) {
    label = 'code';
    for (let n = leb(), index = 0; index < n; index++) {
      const len = leb();
      bodies.push({ index: imported + index, body: bytes.subarray(at, at + len) });
      at += len;
    }
  } else if (id === 11) label = 'data';
  sections.push([label, end - start]);
  at = end;
}

/** A Rust legacy-mangled symbol's path (`_ZN4core3fmt5write17h…E` → `core::fmt::write`). */
function demangle(symbol) {
  if (!symbol.startsWith('_ZN')) return symbol;
  const parts = [];
  let i = 3;
  while (i < symbol.length && symbol[i] !== 'E') {
    let digits = '';
    while (/\d/.test(symbol[i])) digits += symbol[i++];
    if (!digits) break;
    parts.push(symbol.slice(i, i + Number(digits)));
    i += Number(digits);
  }
  if (/^h[0-9a-f]{16}$/.test(parts.at(-1) ?? '')) parts.pop();
  return parts
    .join('::')
    .replaceAll('$LT$', '<')
    .replaceAll('$GT$', '>')
    .replaceAll('$u20$', ' ')
    .replaceAll('$u7b$', '{')
    .replaceAll('$u7d$', '}')
    .replaceAll('$RF$', '&')
    .replaceAll('$C$', ',')
    .replaceAll('$BP$', '*')
    .replaceAll('..', '::');
}

/** The crate a function is counted under: the first path segment, or the implementing type's. */
function crateOf(path) {
  const trait = path.match(/^<(.+?) as /);
  const subject = trait ? trait[1].replace(/^&(mut )?/, '') : path.replace(/^</, '');
  const first = subject.split('::')[0].replace(/\[[0-9a-f]+\]$/, '');
  return /^[a-z_][a-z0-9_]*$/.test(first) ? first : 'other';
}

const brotli = (buffers) =>
  brotliCompressSync(Buffer.concat(buffers), {
    params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_LGWIN]: 24 },
  }).length;
const functions = bodies.map(({ index, body }) => {
  const path = demangle(names.get(index) ?? `func${index}`);
  return { path, crate: crateOf(path), body };
});
const total = brotli(functions.map((f) => f.body));
const kb = (n) => (n / 1000).toFixed(1).padStart(7);

console.log(`${file}: ${bytes.length} bytes`);
for (const [label, size] of sections) console.log(`  ${label.padEnd(24)} ${String(size).padStart(8)}`);
console.log(`\ncode: ${functions.length} functions, brotli of all bodies ${kb(total)} KB\n`);

const pattern = option('--match');
const groups = new Map();
for (const f of functions) {
  const key = pattern ? (new RegExp(pattern).test(f.path) ? `/${pattern}/` : 'rest') : f.crate;
  if (!groups.has(key)) groups.set(key, []);
  groups.get(key).push(f);
}
console.log(`  ${'group'.padEnd(28)} ${'fns'.padStart(5)} ${'raw KB'.padStart(7)} ${'br alone'.padStart(8)} ${'br saved'.padStart(8)}`);
const rows = [...groups].map(([key, members]) => {
  const raw = members.reduce((n, f) => n + f.body.length, 0);
  // Compressing everything once per group is slow: only the larger groups get this column.
  const saved = raw >= 2000 ? total - brotli(functions.filter((f) => !members.includes(f)).map((f) => f.body)) : NaN;
  return [key, members.length, raw, brotli(members.map((f) => f.body)), saved];
});
for (const [key, count, raw, alone, saved] of rows.sort((a, b) => b[2] - a[2])) {
  console.log(`  ${key.padEnd(28)} ${String(count).padStart(5)} ${kb(raw)} ${kb(alone)}  ${kb(saved)}`);
}

const top = Number(option('--top') ?? (pattern ? 60 : 0));
if (top > 0) {
  console.log(`\nlargest functions${pattern ? ` matching /${pattern}/` : ''} (raw bytes):`);
  const listed = pattern ? functions.filter((f) => new RegExp(pattern).test(f.path)) : functions;
  for (const f of [...listed].sort((a, b) => b.body.length - a.body.length).slice(0, top)) {
    console.log(`  ${String(f.body.length).padStart(7)}  ${f.path.slice(0, 150)}`);
  }
}
