import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { backoffDelay, defaultBackoff } from '../../src/vrrp/backoff.js';
import { parseCheckOutput } from '../../src/vrrp/check.js';
import { EffectRunner, type VipController } from '../../src/vrrp/effects.js';
import { groupForVip } from '../../src/vrrp/groups.js';
import { LineSplitter, parseNotifyLine } from '../../src/vrrp/notify.js';
import { parseJsonDump } from '../../src/vrrp/recover.js';
import { createLogger } from '../../src/util/log.js';

const log = createLogger('silent');

describe('notify line parser', () => {
  it('reads instance and group lines, quoted or bare', () => {
    assert.deepEqual(parseNotifyLine('INSTANCE "ga" MASTER 100'), { kind: 'INSTANCE', name: 'ga', state: 'MASTER', priority: 100 });
    assert.deepEqual(parseNotifyLine('INSTANCE "x" FAULT 0\n'), { kind: 'INSTANCE', name: 'x', state: 'FAULT', priority: 0 });
    assert.deepEqual(parseNotifyLine('GROUP "sync 1" BACKUP'), { kind: 'GROUP', name: 'sync 1', state: 'BACKUP', priority: undefined });
    assert.deepEqual(parseNotifyLine('INSTANCE VI_1 STOP 100'), { kind: 'INSTANCE', name: 'VI_1', state: 'STOP', priority: 100 });
    assert.deepEqual(parseNotifyLine('INSTANCE "a\\"b" BACKUP 50'), { kind: 'INSTANCE', name: 'a"b', state: 'BACKUP', priority: 50 });
  });

  it('ignores what is not a VRRP state line', () => {
    for (const line of [
      '',
      'VS [192.0.2.15]:tcp:80 UP',
      'RS [198.51.100.4]:tcp:80 [192.0.2.15]:tcp:80 DOWN',
      'INSTANCE "ga" PRIORITY_CHANGE 90',
      'INSTANCE "ga"',
      'INSTANCE "unterminated MASTER 100',
      'garbage',
    ]) {
      assert.equal(parseNotifyLine(line), undefined, line);
    }
  });

  it('never throws on arbitrary input (property)', () => {
    fc.assert(fc.property(fc.string(), (s) => void parseNotifyLine(s)));
  });

  it('splits a stream into lines however it is chunked, and drops an endless line', () => {
    const text = 'INSTANCE "a" BACKUP 100\nINSTANCE "a" MASTER 100\nGROUP "g" FAULT\n';
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: text.length }), { maxLength: 6 }), (cuts) => {
        const points = [...new Set([0, ...cuts, text.length])].sort((a, b) => a - b);
        const s = new LineSplitter();
        const lines: string[] = [];
        for (let i = 1; i < points.length; i++) lines.push(...s.push(text.slice(points[i - 1], points[i])));
        assert.deepEqual(lines, ['INSTANCE "a" BACKUP 100', 'INSTANCE "a" MASTER 100', 'GROUP "g" FAULT']);
      }),
    );
    const s = new LineSplitter(10);
    assert.deepEqual(s.push('x'.repeat(25)), []);
    assert.deepEqual(s.push('yyy\nok\n'), ['ok']);
  });
});

describe('keepalived -t output parser', () => {
  it('keeps line numbers with and without a file name, and lines without one', () => {
    assert.deepEqual(parseCheckOutput("(Line 3) Unknown keyword 'bogus'\n(/x/k.conf: Line 8) number '300' outside range [1, 255]\n(ga) the virtual router id must be set\n"), [
      { line: 3, message: "Unknown keyword 'bogus'" },
      { line: 8, message: "number '300' outside range [1, 255]" },
      { line: undefined, message: '(ga) the virtual router id must be set' },
    ]);
  });
});

describe('keepalived JSON dump parser', () => {
  it('maps instance names to states and skips unknown codes', () => {
    const dump = JSON.stringify([
      { data: { iname: 'a', state: 2, vrid: 51 }, stats: {} },
      { data: { iname: 'b', state: 1 } },
      { data: { iname: 'c', state: 3 } },
      { data: { iname: 'd', state: 42 } },
      { nothing: true },
    ]);
    assert.deepEqual(parseJsonDump(dump), { a: 'MASTER', b: 'BACKUP', c: 'FAULT' });
    assert.throws(() => parseJsonDump('{}'), /not a list/);
  });
});

describe('restart backoff', () => {
  it('grows exponentially to the cap, with jitter within [d/2, d]', () => {
    const p = { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5 };
    assert.deepEqual([0, 1, 2, 3, 4, 5].map((a) => backoffDelay(a, p, () => 0)), [100, 200, 400, 800, 1000, 1000]);
    assert.equal(backoffDelay(2, p, () => 0.999999), 200);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 60 }), fc.double({ min: 0, max: 0.999999, noNaN: true }), (attempt, r) => {
        const d = backoffDelay(attempt, defaultBackoff, () => r);
        const full = Math.min(defaultBackoff.maxMs, defaultBackoff.initialMs * 2 ** attempt);
        assert.ok(d <= full && d >= Math.floor(full / 2), `${d} for ${full}`);
      }),
    );
  });
});

describe('active-active group of a VIP', () => {
  it("uses the pool's group when set", () => {
    assert.equal(groupForVip('192.0.2.10', 'b', ['a', 'b']), 'b');
  });

  it('is stable: independent of list order and of IPv6 spelling, and spreads addresses over the groups', () => {
    const groups = ['a', 'b', 'c'];
    const counts = new Map<string, number>();
    for (let i = 1; i < 255; i++) {
      const vip = `198.51.100.${i}`;
      const g = groupForVip(vip, undefined, groups)!;
      assert.equal(groupForVip(vip, undefined, ['c', 'a', 'b']), g);
      counts.set(g, (counts.get(g) ?? 0) + 1);
    }
    for (const g of groups) assert.ok((counts.get(g) ?? 0) > 40, `group ${g} got ${counts.get(g)} of 254`);
    assert.equal(groupForVip('2001:db8::1', undefined, groups), groupForVip('2001:0DB8:0:0::1', undefined, groups));
    assert.equal(groupForVip('192.0.2.1', undefined, []), undefined);
  });
});

describe('effect runner', () => {
  it('runs effects in order, releases every group of a step even if one fails, and survives a failing binder', async () => {
    const calls: string[] = [];
    let releasing = 0;
    let overlap = 0;
    const vips: VipController = {
      bindGroup: async (g) => {
        calls.push(`bind ${g}`);
        if (g === 'bad') throw new Error('no such interface');
      },
      releaseGroup: async (g) => {
        releasing++;
        overlap = Math.max(overlap, releasing);
        await new Promise((r) => setTimeout(r, 5));
        calls.push(`release ${g}`);
        releasing--;
        if (g === 'a') throw new Error('address busy');
      },
    };
    const modes: string[] = [];
    const reports: string[] = [];
    const runner = new EffectRunner(vips, { setMode: async (m) => void modes.push(`${m.master}/${m.backup}`) }, log, { report: (l, m) => reports.push(`${l}: ${m}`) });
    void runner.run([{ type: 'bind', group: 'bad' }, { type: 'sync', mode: { master: true, backup: false } }]);
    await runner.run([{ type: 'release', groups: ['a', 'b'] }, { type: 'report', level: 'info', message: 'hello' }]);
    assert.deepEqual(calls, ['bind bad', 'release a', 'release b'], 'b is released although a failed');
    assert.equal(overlap, 1, 'one at a time: the real binder rewrites one ownership file');
    assert.deepEqual(modes, ['true/false'], 'a failed bind does not stop the next effect');
    assert.equal(runner.failureCount, 2);
    assert.deepEqual(reports, ['error: bind failed: no such interface', 'error: release failed: release failed for a: address busy', 'info: hello']);
  });
});
