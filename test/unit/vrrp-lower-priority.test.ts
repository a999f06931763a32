// keepalived's MASTER_RX_LOWER_PRI: the peer was VRRP master for a moment (a stalled host, lost adverts) and
// may have pulled the neighbours' ARP caches to itself with its GARPs before it released the VIPs again. The
// real master must announce its VIPs again, or their traffic goes to a host that no longer holds them until
// the caches expire (seen in the lab: the demo's curls timed out after such a blip).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EffectRunner } from '../../src/vrrp/effects.js';
import { parseNotifyLine } from '../../src/vrrp/notify.js';
import { initialWorld, reduce, type VrrpEvent, type VrrpWorld } from '../../src/vrrp/state.js';
import { createLogger } from '../../src/util/log.js';

const lower: VrrpEvent = { type: 'lower-priority-advert', group: 'a' };
function after(...events: VrrpEvent[]): VrrpWorld {
  let w = initialWorld(['a', 'b']);
  for (const e of events) w = reduce(w, e).world;
  return w;
}

describe('a lower-priority advert while master', () => {
  it('is parsed from the FIFO line keepalived writes, as MASTER plus a flag', () => {
    assert.deepEqual(parseNotifyLine('INSTANCE "a" MASTER_RX_LOWER_PRI 150'), { kind: 'INSTANCE', name: 'a', state: 'MASTER', priority: 150, lowerPriority: true });
    assert.equal(parseNotifyLine('INSTANCE "a" MASTER 150')?.lowerPriority, undefined);
    assert.equal(parseNotifyLine('INSTANCE "a" BACKUP_RX_LOWER_PRI 150'), undefined);
  });

  it('announces the group again when this host is master and holds it, and changes nothing else', () => {
    const w = after({ type: 'keepalived-started' }, { type: 'state', group: 'a', state: 'MASTER' });
    const step = reduce(w, lower);
    assert.deepEqual(step.effects, [{ type: 'announce', group: 'a' }]);
    assert.deepEqual(step.world, w);
  });

  it('asks for nothing when the group is not master here, or after shutdown', () => {
    assert.deepEqual(reduce(after({ type: 'keepalived-started' }, { type: 'state', group: 'a', state: 'BACKUP' }), lower).effects, []);
    assert.deepEqual(reduce(after({ type: 'keepalived-started' }, { type: 'state', group: 'b', state: 'MASTER' }), lower).effects, []);
    assert.deepEqual(reduce(after({ type: 'keepalived-started' }, { type: 'state', group: 'a', state: 'MASTER' }, { type: 'shutdown' }), lower).effects, []);
  });

  it('the effect runner asks the VIP side to announce the group', async () => {
    const calls: string[] = [];
    const runner = new EffectRunner({
      bindGroup: async (g) => void calls.push(`bind ${g}`),
      releaseGroup: async (g) => void calls.push(`release ${g}`),
      announceGroup: async (g) => void calls.push(`announce ${g}`),
    }, undefined, createLogger('silent'));
    await runner.run([{ type: 'announce', group: 'a' }]);
    assert.deepEqual(calls, ['announce a']);
  });
});
