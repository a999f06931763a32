// The ledger against real SQLite files: persistence, the audit log, schema versions, and every bad-file case
// (locked by another process, corrupt, not a database, another program's database, newer schema,
// unwritable). A bad file is reported with a code and exit code and is never modified or recreated.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { parseIp } from '../../src/ipam/address.js';
import { DurableIpam } from '../../src/store/allocator.js';
import { LedgerError, LedgerErrorCodes } from '../../src/store/errors.js';
import { Ledger } from '../../src/store/ledger.js';
import { SCHEMA_VERSION } from '../../src/store/schema.js';
import { poolsFrom, svc } from '../unit/ipam-fixtures.js';

const child = join(fileURLToPath(new URL('.', import.meta.url)), 'ledger-crash-child.js');
const T0 = Date.UTC(2026, 0, 1);
const pools = poolsFrom(`
  - name: p
    avoidBuggyIPs: true
    addresses: [192.0.2.0/24, '2001:db8::/64']
`);

function runChild(args: string[], opts: { uid?: number; gid?: number } = {}): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('exit', (code) => resolve({ code, out, err }));
  });
}

function expectLedgerError(fn: () => unknown, code: keyof typeof LedgerErrorCodes): LedgerError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof LedgerError, `expected a LedgerError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.equal(err.exitCode, LedgerErrorCodes[code]);
    return err;
  }
  assert.fail(`expected ${code}`);
}

describe('ledger', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipvs-lb-store-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;
  const fresh = () => join(dir, `l${n++}.db`);

  it('keeps allocations, quarantine, audit log and pool snapshots across a reopen', () => {
    const path = fresh();
    const d = DurableIpam.open({ path, host: 'lb-a', pools, quarantineSeconds: 60, now: T0 });
    const [x] = d.ensure([svc('x', { ns: 'web', name: 'front', policy: 'RequireDualStack', ports: [80, 443] })], { now: T0, term: 3 });
    assert.deepEqual(x!.allocations.map((a) => a.address), ['192.0.2.1', '2001:db8::1']);
    d.ensure([svc('y')], { now: T0, term: 3 });
    d.release([{ uid: 'y', reason: 'Deleted' }], { now: T0 + 5, term: 4 });
    d.close();

    const again = DurableIpam.open({ path, host: 'lb-a', pools, quarantineSeconds: 60, now: T0 + 10 });
    try {
      assert.deepEqual(again.ipam.allocationsOf('x').map((a) => [a.address, a.pool, a.ports.join(','), a.namespace, a.name]), [
        ['192.0.2.1', 'p', 'TCP/443,TCP/80', 'web', 'front'],
        ['2001:db8::1', 'p', 'TCP/443,TCP/80', 'web', 'front'],
      ]);
      assert.ok(again.ipam.isQuarantined(4, parseIp('192.0.2.2')!.value), 'the quarantine survives the restart');
      const log = again.ledger.audit();
      assert.deepEqual(log.slice(0, 4).map((r) => [r.action, r.reason, r.address, r.host, r.term]), [
        ['release', 'Deleted', '192.0.2.2', 'lb-a', 4],
        ['allocate', 'Allocated', '192.0.2.2', 'lb-a', 3],
        ['allocate', 'Allocated', '2001:db8::1', 'lb-a', 3],
        ['allocate', 'Allocated', '192.0.2.1', 'lb-a', 3],
      ]);
      // Same pools: no second snapshot.
      assert.equal(again.ledger.poolSnapshots().length, 1);
      again.reloadPools(poolsFrom(`
  - name: p
    addresses: [192.0.2.0/25]
`), { quarantineSeconds: 60 }, { now: T0 + 20, term: 4 });
      assert.equal(again.ledger.poolSnapshots().length, 2);
      assert.deepEqual([...again.ipam.orphans().get('p')!].map((o) => o.address), ['2001:db8::1']);
    } finally {
      again.close();
    }
  });

  it('opens read-only for inspection (the CLI while the daemon is down) and refuses writes there', () => {
    const path = fresh();
    const d = DurableIpam.open({ path, host: 'lb-a', pools, quarantineSeconds: 60, now: T0 });
    d.ensure([svc('x')], { now: T0, term: 1 });
    d.close();
    const ro = Ledger.open(path, { host: 'cli', readonly: true });
    try {
      assert.deepEqual(ro.load().allocations.map((a) => a.address), ['192.0.2.1']);
      expectLedgerError(() => ro.apply([{ kind: 'unquarantine', entry: { family: 4, address: '192.0.2.9', value: 0n, pool: 'p', until: 0, releasedBy: 'a/b' }, reason: 'x' }], { now: T0, term: 0 }), 'UNWRITABLE');
    } finally {
      ro.close();
    }
    expectLedgerError(() => Ledger.open(join(dir, 'absent.db'), { host: 'cli', readonly: true }), 'CANNOT_OPEN');
  });

  it('refuses at the SQL level to update or delete the audit log, or to put one address on two Services', () => {
    const path = fresh();
    const d = DurableIpam.open({ path, host: 'lb-a', pools, quarantineSeconds: 60, now: T0 });
    d.ensure([svc('x')], { now: T0, term: 1 });
    d.close();
    const db = new Database(path);
    try {
      assert.throws(() => db.prepare("UPDATE audit_log SET reason = 'forged'").run(), /append-only/);
      assert.throws(() => db.prepare('DELETE FROM audit_log').run(), /append-only/);
      assert.throws(
        () => db.prepare("INSERT INTO allocations VALUES ('other', 'default', 'other', 4, '192.0.2.1', 'p', NULL, 'TCP/81', 0)").run(),
        /without a common sharing key/,
      );
    } finally {
      db.close();
    }
  });

  it('a second daemon on the same file fails with LOCKED, and the lock dies with its holder', async () => {
    const path = fresh();
    const holder = spawn(process.execPath, [child, 'hold', path], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
        holder.on('exit', () => reject(new Error('holder exited early')));
      });
      const second = await runChild(['open', path]);
      assert.equal(second.code, LedgerErrorCodes.LOCKED);
      const report = JSON.parse(second.out) as { code: string; message: string };
      assert.equal(report.code, 'LOCKED');
      assert.match(report.message, /second ipvs-lb daemon/);
      expectLedgerError(() => Ledger.open(path, { host: 'me' }), 'LOCKED');
    } finally {
      holder.kill('SIGKILL');
      await new Promise((r) => holder.once('exit', r));
    }
    const third = await runChild(['open', path]);
    assert.equal(third.code, 0, third.out + third.err);
  });

  it('refuses a file that is not a database, and leaves it untouched', async () => {
    const path = fresh();
    writeFileSync(path, 'this is a config file, not a ledger\n'.repeat(200));
    const before = readFileSync(path);
    const e = expectLedgerError(() => Ledger.open(path, { host: 'me' }), 'NOT_A_DATABASE');
    assert.ok(e.message.includes(path));
    const r = await runChild(['open', path]);
    assert.equal(r.code, LedgerErrorCodes.NOT_A_DATABASE);
    assert.deepEqual(readFileSync(path), before);
  });

  it('refuses a corrupt ledger with CORRUPT, and leaves it untouched', () => {
    const path = fresh();
    const d = DurableIpam.open({ path, host: 'lb-a', pools, quarantineSeconds: 60, now: T0 });
    d.ensure(Array.from({ length: 400 }, (_, i) => svc(`s${i}`, { name: `service-with-a-long-name-${i}` })), { now: T0, term: 1 });
    d.close();
    const pageSize = 4096;
    const fd = openSync(path, 'r+');
    // Scribble over the middle of the file: b-tree pages of the allocations and their index.
    writeSync(fd, Buffer.alloc(pageSize * 2, 0xa5), 0, pageSize * 2, pageSize * 3);
    closeSync(fd);
    const before = readFileSync(path);
    expectLedgerError(() => Ledger.open(path, { host: 'me' }), 'CORRUPT');
    assert.deepEqual(readFileSync(path), before);
  });

  it("refuses another program's SQLite database", () => {
    const path = fresh();
    const db = new Database(path);
    db.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)');
    db.close();
    const e = expectLedgerError(() => Ledger.open(path, { host: 'me' }), 'NOT_A_LEDGER');
    assert.match(e.message, /another application/);
    const check = new Database(path);
    assert.deepEqual(check.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all(), [{ name: 'notes' }]);
    check.close();
  });

  it('refuses a ledger written by a newer schema, and migrates an empty file forward', () => {
    const path = fresh();
    Ledger.open(path, { host: 'me' }).close();
    const db = new Database(path);
    assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    const e = expectLedgerError(() => Ledger.open(path, { host: 'me' }), 'SCHEMA_TOO_NEW');
    assert.match(e.message, new RegExp(`schema version ${SCHEMA_VERSION + 1}`));
    const empty = fresh();
    writeFileSync(empty, '');
    const l = Ledger.open(empty, { host: 'me' });
    assert.equal(l.schemaVersion, SCHEMA_VERSION);
    l.close();
  });

  it('reports an unwritable ledger and an unopenable path with their own codes', async () => {
    const sub = join(dir, 'ro');
    mkdirSync(sub);
    const path = join(sub, 'ledger.db');
    Ledger.open(path, { host: 'me' }).close();
    chmodSync(sub, 0o755);
    chmodSync(dir, 0o755);
    // Root ignores permissions, so the daemon's situation is reproduced as an unprivileged user.
    const asNobody = await runChild(['open', path], { uid: 65534, gid: 65534 });
    assert.equal(asNobody.code, LedgerErrorCodes.UNWRITABLE, asNobody.out + asNobody.err);
    assert.equal((JSON.parse(asNobody.out) as { code: string }).code, 'UNWRITABLE');
    expectLedgerError(() => Ledger.open(join(dir, 'no-such-dir', 'ledger.db'), { host: 'me' }), 'CANNOT_OPEN');
    expectLedgerError(() => Ledger.open(sub, { host: 'me' }), 'CANNOT_OPEN');
  });
});

describe('start-up order', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipvs-lb-startup-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const small = poolsFrom(`
  - name: p
    addresses: [192.0.2.0/29]
`);

  it('confirms existing allocations, releases Services gone while down, then serves new ones', () => {
    const path = join(dir, 'ledger.db');
    const d = DurableIpam.open({ path, host: 'lb-a', pools: small, quarantineSeconds: 60, now: T0 });
    d.ensure([svc('a'), svc('b'), svc('c'), svc('d')], { now: T0, term: 1 });
    d.close();

    // After the restart, the informer lists: a (unchanged), c (now asks for a specific address), new-1, new-2;
    // b and d were deleted while the daemon was down. The new Services come first in the list on purpose.
    const r = DurableIpam.open({ path, host: 'lb-b', pools: small, quarantineSeconds: 60, now: T0 + 1000 });
    try {
      const report = r.start([svc('new-1'), svc('new-2'), svc('c', { loadBalancerIP: '192.0.2.6' }), svc('a')], { now: T0 + 1000, term: 2, allocateNew: true });
      assert.deepEqual(report.confirmed.map((x) => [x.uid, x.allocations[0]!.address]), [['a', '192.0.2.0']]);
      assert.deepEqual(report.released.map((c) => c.kind === 'release' && [c.allocation.uid, c.allocation.address]), [['b', '192.0.2.1'], ['d', '192.0.2.3']]);
      // c moves first, then the new ones take the lowest free addresses: the released ones wait out quarantine.
      assert.deepEqual(report.decided.map((x) => [x.uid, x.allocations.map((a) => a.address).join()]), [
        ['c', '192.0.2.6'],
        ['new-1', '192.0.2.4'],
        ['new-2', '192.0.2.5'],
      ]);
      const reasons = r.ledger.audit({ limit: 50 }).filter((e) => e.term === 2).map((e) => `${e.action}:${e.reason}:${e.address}`);
      assert.deepEqual(reasons.reverse(), [
        'release:ServiceGoneWhileDown:192.0.2.1',
        'release:ServiceGoneWhileDown:192.0.2.3',
        'release:Reassigned:192.0.2.2',
        'allocate:RequestChanged:192.0.2.6',
        'allocate:Allocated:192.0.2.4',
        'allocate:Allocated:192.0.2.5',
      ]);
    } finally {
      r.close();
    }
  });

  it('keeps the addresses a Service already shows in its status when the ledger does not know it (new host, restored backup)', () => {
    const path = join(dir, 'adopt.db');
    const d = DurableIpam.open({ path, host: 'lb-new', pools: small, quarantineSeconds: 60, now: T0 });
    try {
      const ip = (t: string) => ({ family: 4 as const, value: parseIp(t)!.value, address: t });
      const observed = new Map([
        ['a', [ip('192.0.2.5')]],
        ['b', [ip('192.0.2.6')]],
        ['dup', [ip('192.0.2.5')]],
      ]);
      // The new Service is listed first on purpose: it must not take 192.0.2.5 or .6.
      const report = d.start([svc('new'), svc('a'), svc('b'), svc('dup')], { now: T0, term: 1, allocateNew: true, observed });
      assert.deepEqual(report.adopted.map((x) => [x.uid, x.ok]), [['a', true], ['b', true], ['dup', false]]);
      assert.equal(report.adopted[2]!.refusal?.reason, 'RequestedAddressInUse');
      assert.deepEqual(report.decided.map((x) => [x.uid, x.allocations.map((a) => a.address).join()]), [
        ['new', '192.0.2.0'],
        ['dup', '192.0.2.1'],
      ]);
      assert.deepEqual(d.ipam.allocationsOf('a').map((a) => a.address), ['192.0.2.5']);
    } finally {
      d.close();
    }
  });

  it('a follower confirms and releases but leaves new Services pending, then records what the allocator chose', () => {
    const path = join(dir, 'follower.db');
    const d = DurableIpam.open({ path, host: 'lb-b', pools: small, quarantineSeconds: 60, now: T0 });
    try {
      const report = d.start([svc('n')], { now: T0, term: 0, allocateNew: false });
      assert.deepEqual(report.pending.map((s) => s.uid), ['n']);
      assert.equal(d.ipam.serviceCount, 0);
      const [rec] = d.record([{ service: svc('n'), addresses: [{ family: 4, value: parseIp('192.0.2.3')!.value, address: '192.0.2.3' }] }], { now: T0, term: 0 });
      assert.equal(rec!.ok, true);
      const [clash] = d.record([{ service: svc('m'), addresses: [{ family: 4, value: parseIp('192.0.2.3')!.value, address: '192.0.2.3' }] }], { now: T0, term: 0 });
      assert.equal(clash!.refusal?.reason, 'RequestedAddressInUse');
    } finally {
      d.close();
    }
  });
});
