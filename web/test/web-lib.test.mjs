// Pure helpers of the page: reconnect backoff and the status line.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { backoffDelay, BACKOFF } from '../src/lib/backoff.js';
import { describeStatus } from '../src/lib/status.js';

test('backoff grows exponentially, is capped, and is jittered within [d/2, d]', () => {
  const low = () => 0;
  const high = () => 0.999999;
  assert.equal(backoffDelay(0, low), BACKOFF.baseMs / 2);
  assert.equal(backoffDelay(1, low), BACKOFF.baseMs);
  assert.equal(backoffDelay(2, low), BACKOFF.baseMs * 2);
  for (const attempt of [10, 50, 1000]) {
    assert.ok(backoffDelay(attempt, high) <= BACKOFF.capMs);
    assert.equal(backoffDelay(attempt, low), BACKOFF.capMs / 2);
  }
  const samples = new Set(Array.from({ length: 20 }, () => backoffDelay(3)));
  assert.ok(samples.size > 1, 'jitter varies the delay');
});

test('status line', () => {
  assert.deepEqual(describeStatus({ link: 'up', pending: 0 }), { state: 'online', text: 'online' });
  assert.deepEqual(describeStatus({ link: 'down', pending: 0 }), { state: 'offline', text: 'offline' });
  assert.deepEqual(describeStatus({ link: 'down', pending: 3 }), { state: 'offline', text: 'offline · 3 edits not yet saved' });
  assert.deepEqual(describeStatus({ link: 'up', pending: 1 }), { state: 'syncing', text: 'syncing · 1 edit not yet saved' });
  assert.deepEqual(describeStatus({ link: 'joining', pending: 0 }), { state: 'syncing', text: 'syncing' });
});
