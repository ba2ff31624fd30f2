// The service worker of the offline app shell, served at /sw.js (root scope, no-cache, never
// hashed: a browser checks it on every navigation, which is how a new build reaches it).
//
// - install: precaches the pages and every hashed asset of this build into `shell-<version>`,
//   where the version is a hash of the build (web/build.mjs fills in BUILD below).
// - activate: deletes the caches of other builds, then controls the open pages.
// - fetch: a navigation to / or /d/{id} goes to the network first (the page stays
//   revalidated with its ETag) and falls back to the cached page when the network fails; the
//   editor page is one file for every document, so one cached copy opens any of them, and
//   the document itself comes from IndexedDB. Hashed assets never change under their name,
//   so they come from the cache first. Everything else (the API, the WebSocket) is left to
//   the network.

/** Filled in by web/build.mjs: `{ version, pages: {'/': ..., editor: ...}, assets: [...] }`. */
const BUILD = '__BUILD_MANIFEST__';

const PREFIX = 'shell-';
const CACHE = `${PREFIX}${BUILD.version}`;
/** The URL the editor page is precached under (any valid document id serves the same page). */
const EDITOR_PAGE = '/d/app-shell';

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      // Through the HTTP cache: the assets the page just loaded cost no second download.
      await cache.addAll(['/', EDITOR_PAGE, ...BUILD.assets]);
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith(PREFIX) && name !== CACHE) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  );
});

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === 'navigate' && (url.pathname === '/' || url.pathname.startsWith('/d/'))) {
    event.respondWith(networkFirst(request, url.pathname === '/' ? '/' : EDITOR_PAGE));
  } else if (url.pathname.startsWith('/assets/') && BUILD.assets.includes(url.pathname)) {
    event.respondWith(cacheFirst(request));
  }
});

async function networkFirst(request, cachedAs) {
  try {
    return await fetch(request);
  } catch (error) {
    const cached = await caches.match(cachedAs, { cacheName: CACHE, ignoreVary: true });
    if (cached) return cached;
    throw error;
  }
}

async function cacheFirst(request) {
  const cached = await caches.match(request, { cacheName: CACHE, ignoreVary: true });
  return cached ?? fetch(request);
}
