// VRRP effects through the adapter to the real VIP binder and rtnetlink, in a private network namespace
// (`unshare -n`, see vrrp-adapters-child.ts) that the kernel removes when the child exits.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const child = join(fileURLToPath(new URL('.', import.meta.url)), 'vrrp-adapters-child.js');

describe('VRRP effects on real addresses', { skip: process.getuid?.() !== 0 && 'needs root for unshare -n' }, () => {
  it('binds and releases per group, keeps foreign addresses, clears stale VIPs after a restart, releases all on a crash', () => {
    const r = spawnSync('unshare', ['-n', process.execPath, child], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `child failed (status ${r.status}, signal ${r.signal}):\n${r.stderr}${r.stdout}`);
  });
});
