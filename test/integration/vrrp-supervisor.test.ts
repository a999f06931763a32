// The supervisor when keepalived cannot even be started (a package upgrade removed it): it must keep trying
// with a growing delay rather than leave the host silently without VRRP, and stop() must end the retries.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { keepalivedPaths } from '../../src/vrrp/render.js';
import { KeepalivedSupervisor, type ExitInfo } from '../../src/vrrp/supervisor.js';
import { createLogger } from '../../src/util/log.js';
import { tempDir, waitUntil } from './vrrp-lab.js';

describe('keepalived supervisor', () => {
  let dir: { path: string; remove(): Promise<void> };
  before(async () => {
    dir = await tempDir('vrrp-sup');
  });
  after(async () => {
    await dir?.remove();
  });

  it('treats a keepalived that cannot be spawned as a crash and retries with backoff until stopped', async () => {
    const sup = new KeepalivedSupervisor({
      keepalivedPath: join(dir.path, 'no-such-keepalived'),
      paths: keepalivedPaths(join(dir.path, 'keepalived.conf')),
      backoff: { initialMs: 10, maxMs: 80, factor: 2, jitter: 0 },
      log: createLogger('silent'),
    });
    const exits: ExitInfo[] = [];
    const delays: number[] = [];
    sup.on('exited', (e) => exits.push(e));
    sup.on('restart-scheduled', (r) => delays.push(r.delayMs));
    assert.equal(await sup.start(), false);
    await waitUntil(() => delays.length >= 5, 'five restart attempts');
    await sup.stop();
    assert.deepEqual(delays.slice(0, 5), [10, 20, 40, 80, 80]);
    assert.ok(exits[0]!.lastLines.some((l) => /spawn failed: .*ENOENT/.test(l)), JSON.stringify(exits[0]));
    const after = delays.length;
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(delays.length, after, 'no retries after stop()');
    assert.equal(sup.running, false);
  });
});
