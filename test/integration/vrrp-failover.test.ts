// Two LB "hosts" (network namespaces on a bridge in a third "switch" namespace, so one host's link going down
// leaves the other's carrier up), each with its own VRRP controller and real
// keepalived, two groups with alternating priorities: active-active, then a host's link goes down and its
// group moves to the other host, then comes back (preempt) and moves back.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import type { VrrpConfig } from '../../src/config/types.js';
import { VrrpController } from '../../src/vrrp/controller.js';
import { createLogger } from '../../src/util/log.js';
import { group, vrrp } from '../unit/vrrp-fixtures.js';
import { Recorder, tempDir, waitUntil } from './vrrp-lab.js';

const log = createLogger('silent');
const fast = { backoff: { initialMs: 50, maxMs: 500, factor: 2, jitter: 0.5 }, stopTimeoutMs: 3_000 };

describe('two LB hosts, two groups, real keepalived', { timeout: 120_000 }, () => {
  const ns = [`ipvslb-fo1-${process.pid}`, `ipvslb-fo2-${process.pid}`] as const;
  const sw = `ipvslb-fosw-${process.pid}`;
  const addr = ['198.51.100.11', '198.51.100.12'] as const;
  let dir: { path: string; remove(): Promise<void> };
  const controllers: VrrpController[] = [];

  before(async () => {
    dir = await tempDir('vrrp-fo');
    await execa('ip', ['netns', 'add', sw]);
    await execa('ip', ['-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
    await execa('ip', ['-n', sw, 'link', 'set', 'br0', 'up']);
    for (const [i, n] of ns.entries()) {
      await execa('ip', ['netns', 'add', n]);
      await execa('ip', ['link', 'add', 'lb0', 'netns', n, 'type', 'veth', 'peer', 'name', `p${i}`, 'netns', sw]);
      await execa('ip', ['-n', sw, 'link', 'set', `p${i}`, 'master', 'br0', 'up']);
      await execa('ip', ['-n', n, 'link', 'set', 'lo', 'up']);
      await execa('ip', ['-n', n, 'link', 'set', 'lb0', 'up']);
      await execa('ip', ['-n', n, 'addr', 'add', `${addr[i]}/24`, 'dev', 'lb0']);
    }
  });
  after(async () => {
    for (const c of controllers) await c.stop().catch(() => undefined);
    for (const n of [...ns, sw]) await execa('ip', ['netns', 'del', n], { reject: false });
    await dir?.remove();
  });

  function hostConfig(i: 0 | 1): VrrpConfig {
    const other = addr[1 - i]!;
    const common = { interface: 'lb0', advertIntervalSeconds: 0.1, preempt: true, peers: [other], unicastSourceIp: addr[i] };
    return vrrp(
      [
        group({ ...common, name: 'a', virtualRouterId: 51, priority: i === 0 ? 150 : 100 }),
        group({ ...common, name: 'b', virtualRouterId: 52, priority: i === 0 ? 100 : 150 }),
      ],
      { routerId: `lb${i + 1}`, configPath: join(dir.path, `host${i + 1}`, 'keepalived.conf') },
    );
  }

  it('each host is master of one group; a host whose link dies hands its group over and takes it back on return', async () => {
    const rec = [new Recorder(), new Recorder()] as const;
    const make = (i: 0 | 1) => new VrrpController({ config: hostConfig(i), vips: rec[i], sync: rec[i], log, netns: ns[i], supervisor: fast });
    const host = [make(0), make(1)] as const;
    controllers.push(...host);
    await Promise.all(host.map((h) => h.start()));
    const phases = () => host.map((h) => `${h.state.groups.a!.phase}/${h.state.groups.b!.phase}`).join(' ');

    await waitUntil(() => phases() === 'MASTER/BACKUP BACKUP/MASTER', `active-active (now ${phases()})`);
    await Promise.all(host.map((h) => h.idle()));
    // What each host holds now (the last bind or release per group): at a simultaneous start a host may win a
    // group for a moment before the higher priority preempts it.
    const holds = (r: Recorder, g: string) => r.list().filter((c) => c === `bind ${g}` || c === `release ${g}`).pop() === `bind ${g}`;
    assert.deepEqual([holds(rec[0], 'a'), holds(rec[0], 'b'), holds(rec[1], 'a'), holds(rec[1], 'b')], [true, false, false, true]);
    assert.deepEqual(host[0].state.sync, { master: true, backup: true }, 'master of a, backup of b: both sync daemons');

    // Host 1 loses its link: keepalived there goes FAULT (its interface is down), host 2 misses adverts.
    const m0 = rec[0].calls.length;
    const m1 = rec[1].calls.length;
    await execa('ip', ['-n', ns[0], 'link', 'set', 'lb0', 'down']);
    await rec[1].waitFor('bind a', m1);
    await rec[0].waitFor('release a', m0);
    await waitUntil(() => phases() === 'FAULT/FAULT MASTER/MASTER', `host 2 holds both (now ${phases()})`);

    // The link returns; with preempt, host 1 takes group a back and host 2 lets it go.
    const n1 = rec[1].calls.length;
    await execa('ip', ['-n', ns[0], 'link', 'set', 'lb0', 'up']);
    await rec[1].waitFor('release a', n1);
    await waitUntil(() => phases() === 'MASTER/BACKUP BACKUP/MASTER', `active-active again (now ${phases()})`);
    await Promise.all(host.map((h) => h.idle()));
    assert.deepEqual([holds(rec[0], 'a'), holds(rec[0], 'b'), holds(rec[1], 'a'), holds(rec[1], 'b')], [true, false, false, true]);
    assert.equal(host[0].crashes + host[1].crashes, 0);
  });
});
