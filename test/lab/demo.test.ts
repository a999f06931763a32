// `npm run demo` end to end, as a user runs it (node dist/lab/demo/main.js, what the npm script runs after
// its set-up step): it must exit 0 and tell the whole story, so CI notices when any step stops doing what it
// says. The demo boots its own lab VM and removes it again.
import assert from 'node:assert/strict';
import { labTimeScale } from '../../lab/vm/index.js';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from '../../lab/demo/stack.js';

function runDemo(): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'dist', 'lab', 'demo', 'main.js')], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

describe('npm run demo', { timeout: (900_000) * labTimeScale() }, () => {
  it('tells the whole story and exits 0', async (t) => {
    const { code, out } = await runDemo();
    assert.equal(code, 0, `the demo failed:\n${out}`);
    assert.match(out, /^Result: all 11 steps passed in \d+ s \(failover gap \d+ ms\)\.$/m);
    assert.doesNotMatch(out, /✗/);
    // The story's key moments, as a person reads them.
    for (const line of [
      /✓ node-1, node-2 and node-3 are Ready/,
      /✓ lb1 is VRRP MASTER, lb2 BACKUP/,
      /^\s+whoami\s+LoadBalancer\s.*<pending>/m,
      /✓ whoami was listed first with EXTERNAL-IP <pending>/,
      /✓ then with EXTERNAL-IP 192\.0\.2\.1\b/,
      /✓ they came from more than one node/,
      /✓ every node saw the client's own address 203\.0\.113\.10/,
      /ready: yes/,
      /TCP\s+192\.0\.2\.1:80 mh/,
      /✓ lb2 is VRRP MASTER and holds 192\.0\.2\.1/,
      /✓ the VIP kept answering from lb2: first new connection answered \d+ ms after lb1 died/,
      /✓ lb2 scheduled them: its IPVS connection count for 192\.0\.2\.1:80 went from \d+ to \d+/,
      /✓ no IPVS service for 192\.0\.2\.1 on lb2/,
      /✓ 192\.0\.2\.1 is no longer bound on lb2/,
      /✓ its directories are gone/,
    ]) assert.match(out, line);
    const gap = Number(/failover gap (\d+) ms/.exec(out)?.[1]);
    t.diagnostic(/Result: .*/.exec(out)?.[0] ?? '');
    assert.ok(gap > 0, `failover gap ${gap}`);
  });
});
