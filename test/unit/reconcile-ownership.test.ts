// The record of owned IPVS services on real files: appended changes survive a restart, a torn last line is
// ignored, a wrong line is refused, and the log is folded into the record.
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { OwnedServices } from '../../src/reconcile/ownership.js';

const dir = mkdtempSync(join(tmpdir(), 'ipvs-lb-owned-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(dir, `owned-${n++}`, 'ipvs-owned.json');
const recorded = (file: string) => (JSON.parse(readFileSync(file, 'utf8')) as { services: string[] }).services;

describe('owned IPVS services record', () => {
  it('one change among many is an append, and a restart sees every change', () => {
    const file = fresh();
    const keys = Array.from({ length: 2000 }, (_, i) => `TCP/192.0.2.${1 + (i % 250)}:${1000 + Math.floor(i / 250)}`);
    const a = new OwnedServices(file);
    a.update(keys, []);
    a.update(['UDP/192.0.2.9:53'], ['TCP/192.0.2.1:1000']);
    assert.equal(existsSync(file), false, 'nothing rewritten yet: the changes are in the log');
    assert.deepEqual(readFileSync(`${file}.log`, 'utf8').split('\n').slice(-3), ['+UDP/192.0.2.9:53', '-TCP/192.0.2.1:1000', '']);
    const b = new OwnedServices(file);
    assert.deepEqual([b.size, b.has('UDP/192.0.2.9:53'), b.has('TCP/192.0.2.1:1000'), b.has('TCP/192.0.2.2:1000')], [2000, true, false, true]);
    assert.equal(existsSync(`${file}.log`), false, 'start-up folds the log into the record');
    assert.equal(recorded(file).length, 2000);
  });

  it('the log is folded once it outgrows the table', () => {
    const file = fresh();
    const o = new OwnedServices(file);
    for (let i = 0; i < 600; i++) {
      o.update(['TCP/192.0.2.1:80'], []);
      o.update([], ['TCP/192.0.2.1:80']);
    }
    o.update(['TCP/192.0.2.2:80'], []);
    assert.ok(readFileSync(`${file}.log`, 'utf8').split('\n').length < 1030, 'the log stays bounded');
    assert.deepEqual(recorded(file), []);
    assert.deepEqual([...['TCP/192.0.2.1:80', 'TCP/192.0.2.2:80'].map((k) => new OwnedServices(file).has(k))], [false, true]);
  });

  it('a torn last line (a crash mid-append) is ignored; a line that is not +KEY or -KEY is refused', () => {
    const file = fresh();
    new OwnedServices(file).update(['TCP/192.0.2.1:80'], []);
    appendFileSync(`${file}.log`, '+TCP/192.0.2');
    const o = new OwnedServices(file);
    assert.deepEqual([o.size, o.has('TCP/192.0.2.1:80')], [1, true]);
    o.update(['TCP/192.0.2.3:80'], []);
    assert.deepEqual([new OwnedServices(file).size], [2], 'appends after a torn line stay readable');
    writeFileSync(`${file}.log`, '+TCP/192.0.2.4:80\nTCP/192.0.2.5:80\n');
    assert.throws(() => new OwnedServices(file), /ipvs-owned\.json\.log: line 2: must be \+KEY or -KEY \(got "TCP\/192\.0\.2\.5:80"\)/);
    writeFileSync(file, '{"services": "all"}');
    assert.throws(() => new OwnedServices(file), /services: must be a list of keys \(got "all"\)/);
  });
});
