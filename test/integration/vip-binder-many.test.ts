// The VIP binder's batched bind and unbind (a VRRP takeover binds a whole group at once) against real
// rtnetlink: each scenario runs in a fresh network namespace (`unshare -n`, see vip-many-scenarios.ts).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const child = join(here, 'vip-many-scenarios.js');
const root = process.getuid?.() === 0;
const names = spawnSync(process.execPath, [child, '--list'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);

describe('VIP binder, many addresses at once', { skip: !root && 'needs root for unshare -n' }, () => {
  assert.ok(names.length >= 2, 'scenario list');
  for (const name of names) {
    it(name, () => {
      const r = spawnSync('unshare', ['-n', process.execPath, child, name], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 0, `scenario ${name} failed (status ${r.status}, signal ${r.signal}):\n${r.stderr}${r.stdout}`);
    });
  }
});
