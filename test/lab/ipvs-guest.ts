// Runs inside the micro-VM (the host's node, this checkout): executes a list of IpvsClient calls read from a
// JSON file and prints one JSON line with their results, so a lab test can drive the client step by step and
// compare with ipvsadm. Errors are results too ({error: {code, message}}): tests assert on them.
import { readFileSync } from 'node:fs';
import { IpvsClient } from '../../src/ipvs/index.js';

const allowed = new Set([
  'info', 'timeouts', 'services', 'service', 'destinations', 'snapshot', 'table', 'entries', 'addService', 'editService', 'deleteService',
  'addDestination', 'editDestination', 'deleteDestination', 'apply', 'syncDaemons', 'startSyncDaemon', 'stopSyncDaemon', 'zero',
]);

interface Step { call: string; args?: unknown[] }

const steps = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as Step[];
const client = await IpvsClient.open();
const results: unknown[] = [];
try {
  for (const s of steps) {
    if (s.call === 'counters') {
      results.push({ ok: { ...client.counters } });
      continue;
    }
    if (s.call === 'procProblem') {
      results.push({ ok: client.procProblem ?? null });
      continue;
    }
    // A second client with other options, for one call: the netlink-only table (no /proc/net/ip_vs), and
    // the service dump the main socket's way (datagrams sized by peeking, one page each).
    const other = s.call === 'tableOverNetlink' ? { procPath: false as const } : s.call === 'servicesPeeking' ? { messagePeeking: true } : undefined;
    if (other) {
      const c = await IpvsClient.open(other);
      try {
        results.push({ ok: s.call === 'tableOverNetlink' ? await c.table() : await c.services() });
      } finally {
        c.close();
      }
      continue;
    }
    if (!allowed.has(s.call)) throw new Error(`ipvs-guest: unknown call ${s.call}`);
    try {
      const fn = (client as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[s.call]!;
      let value = await fn.apply(client, s.args ?? []);
      if (s.call === 'apply') {
        value = (value as { error?: Error & { code?: string } }[]).map((r) => (r.error ? { code: r.error.code, message: r.error.message } : null));
      }
      results.push({ ok: value === undefined ? null : value });
    } catch (e) {
      const err = e as Error & { code?: string };
      results.push({ error: { name: err.name, code: err.code, message: err.message } });
    }
  }
} finally {
  client.close();
}
process.stdout.write(`${JSON.stringify(results, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}\n`);
