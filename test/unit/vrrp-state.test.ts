// One test per transition of the VRRP reducer, asserting the effects it asks for.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { initialWorld, reduce, type VrrpEffect, type VrrpEvent, type VrrpWorld } from '../../src/vrrp/state.js';

/** Runs events from a world and returns the final world and the effects of the last event, reports left out. */
function run(world: VrrpWorld, ...events: VrrpEvent[]): { world: VrrpWorld; effects: VrrpEffect[]; all: VrrpEffect[][] } {
  let w = world;
  const all: VrrpEffect[][] = [];
  for (const e of events) {
    const s = reduce(w, e);
    w = s.world;
    all.push(s.effects.filter((x) => x.type !== 'report'));
  }
  return { world: w, effects: all[all.length - 1] ?? [], all };
}

const st = (group: string, state: 'INIT' | 'BACKUP' | 'MASTER' | 'FAULT' | 'STOP' | 'DELETED'): VrrpEvent => ({ type: 'state', group, state });
const one = () => initialWorld(['a']);
const two = () => initialWorld(['a', 'b']);
const started: VrrpEvent = { type: 'keepalived-started' };
const crashed: VrrpEvent = { type: 'keepalived-exited', code: null, signal: 'SIGKILL' };

describe('VRRP state reducer', () => {
  it('INIT (unknown holding) → BACKUP: releases possibly stale VIPs and starts both sync daemons', () => {
    assert.deepEqual(run(one(), started, st('a', 'BACKUP')).effects, [
      { type: 'release', groups: ['a'] },
      { type: 'sync', mode: { master: true, backup: true } },
    ]);
  });

  it('BACKUP → MASTER: binds the VIPs; the sync daemons keep running', () => {
    const r = run(one(), st('a', 'BACKUP'), st('a', 'MASTER'));
    assert.deepEqual(r.effects, [{ type: 'bind', group: 'a' }]);
    assert.deepEqual(r.world.groups.a, { phase: 'MASTER', holding: true });
    assert.deepEqual(r.world.sync, { master: true, backup: true });
  });

  it('MASTER → BACKUP: releases the VIPs', () => {
    assert.deepEqual(run(one(), st('a', 'MASTER'), st('a', 'BACKUP')).effects, [{ type: 'release', groups: ['a'] }]);
  });

  for (const s of ['FAULT', 'STOP', 'INIT', 'DELETED'] as const) {
    it(`MASTER → ${s}: releases the VIPs`, () => {
      const r = run(one(), st('a', 'MASTER'), st('a', s));
      assert.deepEqual(r.effects, [{ type: 'release', groups: ['a'] }]);
      assert.equal(r.world.groups.a!.phase, s);
    });
  }

  it('the sync daemons start with keepalived\'s first report and do not follow the states (a flap loses no sync messages)', () => {
    const r = run(one(), started, st('a', 'BACKUP'), st('a', 'MASTER'), st('a', 'BACKUP'), st('a', 'FAULT'), st('a', 'MASTER'), crashed, started, st('a', 'BACKUP'));
    const syncs = r.all.map((effects) => effects.filter((e) => e.type === 'sync'));
    assert.deepEqual(syncs[1], [{ type: 'sync', mode: { master: true, backup: true } }]);
    assert.deepEqual(syncs.flat().length, 1, JSON.stringify(syncs));
  });

  it('a lower-priority advert heard as MASTER announces the VIPs again; in any other state it changes nothing', () => {
    const lower: VrrpEvent = { type: 'lower-priority-advert', group: 'a' };
    const master = run(one(), st('a', 'MASTER')).world;
    const s = reduce(master, lower);
    assert.deepEqual(s.effects.filter((e) => e.type !== 'report'), [{ type: 'announce', group: 'a' }]);
    assert.deepEqual(s.world, master);
    assert.deepEqual(run(one(), st('a', 'BACKUP'), lower).effects, []);
    assert.deepEqual(run(one(), lower).effects, [], 'unknown holding: nothing to announce');
    assert.deepEqual(run(one(), st('a', 'MASTER'), { type: 'shutdown' }, lower).effects, []);
    assert.deepEqual(run(one(), st('zz', 'MASTER'), { type: 'lower-priority-advert', group: 'zz' }).effects, []);
  });

  it('FAULT → BACKUP: nothing to release twice, nothing to do', () => {
    assert.deepEqual(run(one(), st('a', 'FAULT'), st('a', 'BACKUP')).effects, []);
  });

  it('FAULT → MASTER: binds', () => {
    assert.deepEqual(run(one(), st('a', 'FAULT'), st('a', 'MASTER')).effects, [{ type: 'bind', group: 'a' }]);
  });

  it('MASTER → MASTER (a repeated notification): no effect, no flap', () => {
    assert.deepEqual(run(one(), st('a', 'MASTER'), st('a', 'MASTER')).effects, []);
  });

  it('keepalived exits while MASTER: releases every holding group at once', () => {
    const r = run(two(), st('a', 'MASTER'), st('b', 'BACKUP'), crashed);
    assert.deepEqual(r.effects, [{ type: 'release', groups: ['a'] }]);
    assert.equal(r.world.keepalived, 'down');
    assert.deepEqual(r.world.groups.a, { phase: 'KEEPALIVED_DOWN', holding: false });
    const report = reduce(run(two(), st('a', 'MASTER')).world, crashed).effects.find((e) => e.type === 'report');
    assert.ok(report && report.type === 'report' && report.level === 'error' && /signal SIGKILL/.test(report.message));
  });

  it('keepalived exits before saying anything: releases what a predecessor may have left', () => {
    assert.deepEqual(run(two(), crashed).effects, [{ type: 'release', groups: ['a', 'b'] }, { type: 'sync', mode: { master: true, backup: true } }]);
  });

  it('keepalived restarted after a crash, then MASTER again: binds again', () => {
    const r = run(one(), st('a', 'MASTER'), crashed, started, st('a', 'BACKUP'), st('a', 'MASTER'));
    assert.deepEqual(r.all[2], []);
    assert.deepEqual(r.all[3], [], 'BACKUP after the crash: already released');
    assert.deepEqual(r.effects, [{ type: 'bind', group: 'a' }]);
  });

  it('daemon restart under a MASTER keepalived: the recovered MASTER binds without releasing first (no flap)', () => {
    const r = run(one(), started, { type: 'recovered', states: { a: 'MASTER' } });
    assert.deepEqual(r.effects, [
      { type: 'bind', group: 'a' },
      { type: 'sync', mode: { master: true, backup: true } },
    ]);
    assert.ok(!r.all.flat().some((e) => e.type === 'release'));
    // ...and the FIFO's own MASTER line that may follow changes nothing.
    assert.deepEqual(reduce(r.world, st('a', 'MASTER')).effects, []);
  });

  it('nothing happens before keepalived says something: a fresh start keeps what runs', () => {
    assert.deepEqual(run(two(), started).effects, []);
  });

  it('active-active: master of one group, backup of the other → both sync daemons run', () => {
    const r = run(two(), st('a', 'MASTER'), st('b', 'BACKUP'));
    assert.deepEqual(r.world.sync, { master: true, backup: true });
  });

  it('losing one group while winning another releases before it binds', () => {
    const w = run(two(), st('a', 'MASTER'), st('b', 'BACKUP')).world;
    const s = reduce(w, { type: 'recovered', states: { a: 'BACKUP', b: 'MASTER' } });
    assert.deepEqual(
      s.effects.filter((e) => e.type !== 'report'),
      [
        { type: 'release', groups: ['a'] },
        { type: 'bind', group: 'b' },
      ],
    );
  });

  it('a notification for an instance that is not ours is reported and changes nothing', () => {
    const s = reduce(one(), st('zz', 'MASTER'));
    assert.deepEqual(s.effects.filter((e) => e.type !== 'report'), []);
    assert.ok(s.effects.some((e) => e.type === 'report' && e.level === 'warn'));
    assert.equal(s.world.groups.zz, undefined);
  });

  it('a config change that removes a group releases it; a new group starts without VIPs', () => {
    const w = run(two(), st('a', 'MASTER'), st('b', 'MASTER')).world;
    const s = reduce(w, { type: 'groups-changed', groups: ['a', 'c'] });
    assert.deepEqual(s.effects, [{ type: 'release', groups: ['b'] }]);
    assert.deepEqual(s.world.groups.c, { phase: 'INIT', holding: false });
    assert.deepEqual(s.world.groups.a, { phase: 'MASTER', holding: true });
  });

  it('a config change that keeps the groups asks for nothing', () => {
    const w = run(two(), st('a', 'MASTER'), st('b', 'BACKUP')).world;
    assert.deepEqual(reduce(w, { type: 'groups-changed', groups: ['b', 'a'] }).effects, []);
  });

  it('shutdown: releases everything, stops both sync daemons, ignores keepalived afterwards', () => {
    const r = run(two(), st('a', 'MASTER'), st('b', 'BACKUP'), { type: 'shutdown' });
    assert.deepEqual(r.effects, [
      { type: 'release', groups: ['a'] },
      { type: 'sync', mode: { master: false, backup: false } },
    ]);
    assert.equal(r.world.keepalived, 'stopped');
    // keepalived's own STOP line and its exit during shutdown are not crashes.
    assert.deepEqual(reduce(r.world, st('a', 'STOP')).effects, []);
    assert.deepEqual(reduce(r.world, crashed).effects, []);
  });
});
