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
  it('INIT (unknown holding) → BACKUP: releases possibly stale VIPs, sync daemon backup', () => {
    assert.deepEqual(run(one(), started, st('a', 'BACKUP')).effects, [
      { type: 'release', groups: ['a'] },
      { type: 'sync', mode: { master: false, backup: true } },
    ]);
  });

  it('BACKUP → MASTER: binds the VIPs, then the sync daemon becomes master', () => {
    const r = run(one(), st('a', 'BACKUP'), st('a', 'MASTER'));
    assert.deepEqual(r.effects, [
      { type: 'bind', group: 'a' },
      { type: 'sync', mode: { master: true, backup: false } },
    ]);
    assert.deepEqual(r.world.groups.a, { phase: 'MASTER', holding: true });
  });

  it('MASTER → BACKUP: releases the VIPs, sync daemon back to backup', () => {
    assert.deepEqual(run(one(), st('a', 'MASTER'), st('a', 'BACKUP')).effects, [
      { type: 'release', groups: ['a'] },
      { type: 'sync', mode: { master: false, backup: true } },
    ]);
  });

  for (const s of ['FAULT', 'STOP', 'INIT', 'DELETED'] as const) {
    it(`MASTER → ${s}: releases the VIPs`, () => {
      const r = run(one(), st('a', 'MASTER'), st('a', s));
      assert.deepEqual(r.effects, [
        { type: 'release', groups: ['a'] },
        { type: 'sync', mode: { master: false, backup: true } },
      ]);
      assert.equal(r.world.groups.a!.phase, s);
    });
  }

  it('FAULT → BACKUP: nothing to release twice, nothing to do', () => {
    assert.deepEqual(run(one(), st('a', 'FAULT'), st('a', 'BACKUP')).effects, []);
  });

  it('FAULT → MASTER: binds', () => {
    assert.deepEqual(run(one(), st('a', 'FAULT'), st('a', 'MASTER')).effects, [
      { type: 'bind', group: 'a' },
      { type: 'sync', mode: { master: true, backup: false } },
    ]);
  });

  it('MASTER → MASTER (a repeated notification): no effect, no flap', () => {
    assert.deepEqual(run(one(), st('a', 'MASTER'), st('a', 'MASTER')).effects, []);
  });

  it('keepalived exits while MASTER: releases every holding group at once and stops the master sync daemon', () => {
    const r = run(two(), st('a', 'MASTER'), st('b', 'BACKUP'), crashed);
    assert.deepEqual(r.effects, [
      { type: 'release', groups: ['a'] },
      { type: 'sync', mode: { master: false, backup: true } },
    ]);
    assert.equal(r.world.keepalived, 'down');
    assert.deepEqual(r.world.groups.a, { phase: 'KEEPALIVED_DOWN', holding: false });
    const report = reduce(run(two(), st('a', 'MASTER')).world, crashed).effects.find((e) => e.type === 'report');
    assert.ok(report && report.type === 'report' && report.level === 'error' && /signal SIGKILL/.test(report.message));
  });

  it('keepalived exits before saying anything: releases what a predecessor may have left', () => {
    assert.deepEqual(run(two(), crashed).effects, [{ type: 'release', groups: ['a', 'b'] }, { type: 'sync', mode: { master: false, backup: true } }]);
  });

  it('keepalived restarted after a crash, then MASTER again: binds again', () => {
    const r = run(one(), st('a', 'MASTER'), crashed, started, st('a', 'BACKUP'), st('a', 'MASTER'));
    assert.deepEqual(r.all[2], []);
    assert.deepEqual(r.all[3], [], 'BACKUP after the crash: already released');
    assert.deepEqual(r.effects, [
      { type: 'bind', group: 'a' },
      { type: 'sync', mode: { master: true, backup: false } },
    ]);
  });

  it('daemon restart under a MASTER keepalived: the recovered MASTER binds without releasing first (no flap)', () => {
    const r = run(one(), started, { type: 'recovered', states: { a: 'MASTER' } });
    assert.deepEqual(r.effects, [
      { type: 'bind', group: 'a' },
      { type: 'sync', mode: { master: true, backup: false } },
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
    // c is not master here, so its master elsewhere needs our backup sync daemon.
    assert.deepEqual(s.effects, [
      { type: 'release', groups: ['b'] },
      { type: 'sync', mode: { master: true, backup: true } },
    ]);
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
