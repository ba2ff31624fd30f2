// The connection status line: what a person needs to know about their edits.

/**
 * @param {{link: 'down'|'joining'|'up', pending: number}} state
 * @returns {{state: 'online'|'offline'|'syncing', text: string}}
 */
export function describeStatus({ link, pending }) {
  const unsaved = pending === 1 ? '1 edit not yet saved' : `${pending} edits not yet saved`;
  if (link === 'down') {
    return { state: 'offline', text: pending > 0 ? `offline · ${unsaved}` : 'offline' };
  }
  if (link === 'joining' || pending > 0) {
    return { state: 'syncing', text: pending > 0 ? `syncing · ${unsaved}` : 'syncing' };
  }
  return { state: 'online', text: 'online' };
}
