// Run by vrrp-adapters.test.ts as `unshare -n node THIS`: a private network namespace that vanishes with the
// process. The VRRP reducer's effects go through GroupVipController to the real VIP binder (src/vip) and
// real rtnetlink; iproute2 is the oracle. Exit 0 = pass.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { parseRange, type AddressRange } from '../../src/ipam/range.js';
import type { PoolConfig } from '../../src/config/types.js';
import { JsonFileOwnership, VipBinder } from '../../src/vip/index.js';
import { GroupVipController, vipGroupResolver } from '../../src/vrrp/adapters.js';
import { EffectRunner } from '../../src/vrrp/effects.js';
import { initialWorld, reduce, type VrrpEvent, type VrrpWorld } from '../../src/vrrp/state.js';
import { createLogger } from '../../src/util/log.js';

async function ip(...args: string[]): Promise<string> {
  return (await execa('ip', args)).stdout;
}
async function addrs(): Promise<string[]> {
  const j = JSON.parse(await ip('-j', 'addr', 'show', 'dev', 'v0')) as { addr_info: { local: string; prefixlen: number; scope: string }[] }[];
  return (j[0]?.addr_info ?? []).filter((a) => a.scope !== 'link').map((a) => `${a.local}/${a.prefixlen}`).sort();
}
function range(text: string): AddressRange {
  const r = parseRange(text);
  if (!r.ok) throw new Error(r.error);
  return r.range;
}
const pool = (name: string, cidr: string, vrrpGroup: string): PoolConfig => ({
  name, addresses: [range(cidr)], avoidBuggyIPs: false, autoAssign: true, serviceAllocation: undefined, forwarding: undefined, scheduler: undefined, vrrpGroup,
});

const dir = await mkdtemp(join(tmpdir(), 'ipvs-lb-vrrp-adapters-'));
try {
  await ip('link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
  await ip('link', 'set', 'v0', 'up');
  await ip('link', 'set', 'v1', 'up');
  // Someone else's address inside group a's pool: never ours to remove.
  await ip('addr', 'add', '192.0.2.9/32', 'dev', 'v0');

  const groupOf = vipGroupResolver([pool('pa', '192.0.2.0/28', 'a'), pool('pb', '198.51.100.0/28', 'b')], ['a', 'b']);
  const wanted: Record<string, string[]> = { a: ['192.0.2.1', '192.0.2.2'], b: ['198.51.100.1'] };
  const store = new JsonFileOwnership(join(dir, 'vips.json'));
  let binder = await VipBinder.open({ interface: 'v0', store, announce: false });
  const vips = new GroupVipController(() => binder, (g) => wanted[g] ?? [], groupOf);
  const runner = new EffectRunner(vips, undefined, createLogger('error'));
  let world: VrrpWorld = initialWorld(['a', 'b']);
  const step = async (e: VrrpEvent) => {
    const s = reduce(world, e);
    world = s.world;
    await runner.run(s.effects);
    assert.equal(runner.failureCount, 0, 'no effect failed');
  };

  await step({ type: 'state', group: 'a', state: 'MASTER' });
  await step({ type: 'state', group: 'b', state: 'BACKUP' });
  assert.deepEqual(await addrs(), ['192.0.2.1/32', '192.0.2.2/32', '192.0.2.9/32']);
  await step({ type: 'state', group: 'b', state: 'MASTER' });
  assert.deepEqual(await addrs(), ['192.0.2.1/32', '192.0.2.2/32', '192.0.2.9/32', '198.51.100.1/32']);
  await step({ type: 'state', group: 'a', state: 'FAULT' });
  assert.deepEqual(await addrs(), ['192.0.2.9/32', '198.51.100.1/32'], 'a released, the foreign address kept');

  // The daemon dies and a new one starts: the ownership record knows 198.51.100.1 is ours; keepalived
  // (restarted) reports BACKUP for b, and the stale VIP goes.
  await binder.close();
  binder = await VipBinder.open({ interface: 'v0', store, announce: false });
  world = initialWorld(['a', 'b']);
  await step({ type: 'keepalived-started' });
  assert.deepEqual(await addrs(), ['192.0.2.9/32', '198.51.100.1/32'], 'nothing released before keepalived speaks');
  await step({ type: 'state', group: 'b', state: 'BACKUP' });
  assert.deepEqual(await addrs(), ['192.0.2.9/32']);

  // MASTER of both, then keepalived crashes: everything of ours goes at once.
  await step({ type: 'recovered', states: { a: 'MASTER', b: 'MASTER' } });
  assert.equal((await addrs()).length, 4);
  await step({ type: 'keepalived-exited', code: null, signal: 'SIGKILL' });
  assert.deepEqual(await addrs(), ['192.0.2.9/32']);
  await binder.close();
} finally {
  await rm(dir, { recursive: true, force: true });
}
