// Registers the offline app shell's service worker (src/sw.js, served at /sw.js): once a page
// of this site was opened online, the pages, the bundle and the wasm open without a network.

/** Registers /sw.js when the browser has service workers (not on plain http other than localhost). */
export function registerShell() {
  if (!('serviceWorker' in navigator)) return;
  navigator.serviceWorker.register('/sw.js').catch((error) => console.warn('offline app shell not installed:', error));
}
