// A child process for the ledger tests. Modes:
//   open PATH          open the ledger, print {"ok":true} or the LedgerError as JSON, exit with its exit code
//   hold PATH          open the ledger, print "ready", and keep it open until killed
//   storm PATH SEED    resume from the ledger and run an allocation storm forever, printing, per burst:
//                      "B uid..." before the commit (in flight), then "A uid addr,..." / "R uid" and "C" after it.
//                      A line after "B" and before "C" is only acknowledged once "C" is printed.
import { writeSync } from 'node:fs';
import { parseService } from '../../src/ipam/service.js';
import type { ServiceRequest } from '../../src/ipam/types.js';
import { DurableIpam } from '../../src/store/allocator.js';
import { LedgerError } from '../../src/store/errors.js';
import { Ledger } from '../../src/store/ledger.js';
import { poolsFrom, serviceLike, type SvcOpts } from '../unit/ipam-fixtures.js';

const [mode, path, seedText] = process.argv.slice(2);
const out = (line: string) => writeSync(1, `${line}\n`);

export const stormPools = poolsFrom(`
  - name: v4
    avoidBuggyIPs: true
    addresses: [192.0.2.0/24]
  - name: v6
    addresses: ['2001:db8::/120']
  - name: shared
    autoAssign: false
    addresses: [198.51.100.0/28]
`);

/** The storm's Services are a pure function of their uid, so a restarted child rebuilds them from the ledger. */
export function stormService(uid: string, variant: number): ServiceRequest {
  const n = Number(uid.split('-')[1] ?? 0);
  const opts: SvcOpts = { ns: `ns${n % 5}`, name: uid, ports: [80 + (variant % 3)] };
  if (n % 4 === 0) opts.policy = 'PreferDualStack';
  if (n % 7 === 0) opts.ipFamilies = ['IPv6'];
  if (n % 5 === 0) opts.annotations = { 'ipvs-lb.io/allow-shared-ip': 'web', 'ipvs-lb.io/address-pool': 'shared' };
  const r = parseService(serviceLike(uid, opts));
  if (!r.ok) throw new Error(r.refusal.message);
  return r.service;
}

function fail(err: unknown): never {
  if (err instanceof LedgerError) {
    out(JSON.stringify({ ok: false, code: err.code, exitCode: err.exitCode, message: err.message }));
    process.exit(err.exitCode);
  }
  throw err;
}

if (mode === 'open' || mode === 'hold') {
  try {
    const l = Ledger.open(path!, { host: `child-${process.pid}` });
    out(mode === 'hold' ? 'ready' : JSON.stringify({ ok: true }));
    if (mode === 'open') l.close();
    // The timer keeps the ledger referenced: a collected connection would close and drop its lock.
    else setInterval(() => l.schemaVersion, 1 << 30);
  } catch (err) {
    fail(err);
  }
} else if (mode === 'storm') {
  let seed = Number(seedText ?? 1) >>> 0;
  const rnd = () => {
    // xorshift32: a reproducible storm per seed.
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 2 ** 32;
  };
  let d: DurableIpam;
  try {
    d = DurableIpam.open({ path: path!, host: `child-${process.pid}`, pools: stormPools, quarantineSeconds: 0.05, now: Date.now() });
  } catch (err) {
    fail(err);
  }
  // Rebuild each Service exactly as it was last asked for (its port is its variant), as the API would show it.
  const variants = new Map<string, number>();
  const existing = d.ipam.uids().map((uid) => {
    const v = Number(d.ipam.allocationsOf(uid)[0]!.ports[0]!.split('/')[1]) - 80;
    variants.set(uid, v);
    return stormService(uid, v);
  });
  d.start(existing, { now: Date.now(), term: 1, allocateNew: true });
  out('ready');
  let next = 0;
  const gen = process.pid;
  for (;;) {
    const creates: ServiceRequest[] = [];
    const deletes: string[] = [];
    const uids = d.ipam.uids();
    const burst = 1 + Math.floor(rnd() * 20);
    for (let i = 0; i < burst; i++) {
      const r = rnd();
      if (r < 0.25 && uids.length > 0) {
        const uid = uids[Math.floor(rnd() * uids.length)]!;
        if (!deletes.includes(uid)) deletes.push(uid);
      } else if (r < 0.4 && uids.length > 0) {
        const uid = uids[Math.floor(rnd() * uids.length)]!;
        const v = (variants.get(uid) ?? 0) + 1;
        variants.set(uid, v);
        if (!deletes.includes(uid)) creates.push(stormService(uid, v));
      } else creates.push(stormService(`g${gen}-${next++}`, 0));
    }
    const touched = [...new Set([...creates.map((s) => s.uid), ...deletes])];
    out(`B ${touched.join(' ')}`);
    const now = Date.now();
    const kept = creates.filter((s) => !deletes.includes(s.uid));
    const decisions = d.ensure(kept, { now, term: 1 });
    d.release(deletes.map((uid) => ({ uid, reason: 'Deleted' })), { now, term: 1 });
    const lines: string[] = [];
    for (const dec of decisions) lines.push(`A ${dec.uid} ${d.ipam.allocationsOf(dec.uid).map((a) => a.address).sort().join(',')}`);
    for (const uid of deletes) lines.push(`R ${uid}`);
    lines.push('C');
    out(lines.join('\n'));
  }
}
