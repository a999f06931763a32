// A steady client for the lab, run by the guest's node in a client namespace: a new HTTP request through a VIP
// every --interval ms, each on a new TCP connection (so the load balancer schedules every one of them) with its
// own deadline, without waiting for the ones still in flight (at most --max-in-flight), so a stall shows up with
// the resolution of the interval rather than of the timeout. One JSON line per finished request on stdout (in
// the order they finish), so the host can tell when answers stopped and came back (failover gap) or count the
// failures (upgrade):
//   {"start":1712345678901,"end":1712345678950,"ok":true,"body":"node=node-2 client=203.0.113.10 ..."}
//   {"start":...,"end":...,"ok":false,"error":"timeout"}
// Times are the guest's wall clock in ms (the same clock the host's other guest commands read with date).
// It runs until SIGTERM/SIGINT, or until --count requests are done.
//
//   node dist/lab/demo/request-loop.js http://192.0.2.1/ [--interval 50] [--timeout 2000] [--max-in-flight 40] [--count N]
import { request } from 'node:http';

interface Options {
  url: URL;
  intervalMs: number;
  timeoutMs: number;
  count: number;
  maxInFlight: number;
}

function parseArgs(argv: string[]): Options {
  const [url, ...rest] = argv;
  if (!url) throw new Error('usage: request-loop URL [--interval MS] [--timeout MS] [--max-in-flight N] [--count N]');
  const o: Options = { url: new URL(url), intervalMs: 50, timeoutMs: 2000, count: Number.POSITIVE_INFINITY, maxInFlight: 40 };
  for (let i = 0; i < rest.length; i += 2) {
    const [flag, raw] = [rest[i], rest[i + 1]];
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1) throw new Error(`request-loop ${flag}: must be a positive integer (got ${JSON.stringify(raw)})`);
    if (flag === '--interval') o.intervalMs = n;
    else if (flag === '--timeout') o.timeoutMs = n;
    else if (flag === '--count') o.count = n;
    else if (flag === '--max-in-flight') o.maxInFlight = n;
    else throw new Error(`request-loop: unknown option ${JSON.stringify(flag)}`);
  }
  if (o.url.protocol !== 'http:') throw new Error(`request-loop URL: only http:// (got ${JSON.stringify(url)})`);
  return o;
}

/** One request on a fresh connection; resolves (never rejects) with its outcome. */
function once(o: Options): Promise<{ ok: boolean; body?: string; error?: string }> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: { ok: boolean; body?: string; error?: string }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(r);
    };
    // agent: false → a new TCP connection per request, closed afterwards.
    const req = request(o.url, { agent: false, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => done(res.statusCode === 200 ? { ok: true, body: body.trim() } : { ok: false, error: `HTTP ${res.statusCode}` }));
      res.on('error', (e) => done({ ok: false, error: e.message }));
    });
    const timer = setTimeout(() => done({ ok: false, error: 'timeout' }), o.timeoutMs);
    req.on('error', (e) => done({ ok: false, error: (e as NodeJS.ErrnoException).code ?? e.message }));
    req.end();
  });
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  let stopping = false;
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => (stopping = true));
  const inFlight = new Set<Promise<void>>();
  let next = Date.now();
  for (let i = 0; i < o.count && !stopping; i++) {
    while (inFlight.size >= o.maxInFlight) await Promise.race(inFlight);
    const start = Date.now();
    const p: Promise<void> = once(o).then((r) => {
      process.stdout.write(`${JSON.stringify({ start, end: Date.now(), ...r })}\n`);
      inFlight.delete(p);
    });
    inFlight.add(p);
    // A fixed schedule (not "interval after the last start"), so a slow moment does not stretch it.
    next = Math.max(next + o.intervalMs, Date.now());
    await new Promise((res) => setTimeout(res, next - Date.now()));
  }
  await Promise.all(inFlight);
}

main().catch((err: unknown) => {
  process.stderr.write(`request-loop: ${(err as Error).message}\n`);
  process.exitCode = 2;
});
