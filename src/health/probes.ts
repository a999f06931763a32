// The thin probe adapters: an HTTP GET of a node's health endpoint, and a TCP connect from a given source
// address and port (the DR path check; the port selects the node by its firewall mark). Each resolves with a
// ProbeOutcome and never rejects. A new connection per probe, as cloud load balancers do: a pooled
// connection would hide a health server that stopped accepting.
import { request } from 'node:http';
import { connect } from 'node:net';
import { version } from '../util/version.js';
import type { ProbeOutcome } from './types.js';

const USER_AGENT = `ipvs-lb/${version} (health check)`;
/** Enough of a body to tell an answer from a hang; kube-proxy's is under 300 bytes. */
const MAX_BODY = 4096;

// Errors of this host rather than of the target: such a probe says nothing about the node. Not ENETUNREACH
// or EHOSTUNREACH: an IPv6 node without a route to a VIP answers a DR probe with ICMPv6 "no route", which
// the socket reports as ENETUNREACH, and that is the node's verdict. (A host that cannot route towards the
// VIPs at all fails every node at once, which the monitor recognises as its own fault.)
const LOCAL_ERRORS = new Set(['EADDRINUSE', 'EADDRNOTAVAIL', 'EMFILE', 'ENFILE', 'ENOBUFS', 'EPERM', 'EACCES', 'ENOMEM']);

function describe(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
      return 'connection reset';
    case 'EHOSTUNREACH':
      return 'host unreachable';
    case 'ENETUNREACH':
      return 'network unreachable';
    default:
      return err.code ? `${err.code}: ${err.message}` : err.message;
  }
}

/** GET http://address:port/path; healthy on 200 only (kube-proxy answers 503 when it is not). */
export function httpProbe(t: { address: string; port: number; path: string }, timeoutMs: number): Promise<ProbeOutcome> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    const finish = (o: Omit<ProbeOutcome, 'latencyMs'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...o, latencyMs: performance.now() - t0 });
    };
    const req = request({
      host: t.address, port: t.port, path: t.path, method: 'GET', agent: false,
      headers: { 'user-agent': USER_AGENT, accept: '*/*', connection: 'close' },
    }, (res) => {
      let got = 0;
      res.on('data', (chunk: Buffer) => {
        got += chunk.length;
        if (got > MAX_BODY) res.destroy();
      });
      const status = res.statusCode ?? 0;
      const done = () => finish(status === 200 ? { ok: true } : { ok: false, error: `HTTP ${status}` });
      res.on('end', done);
      res.on('close', done);
      res.on('error', done);
    });
    const timer = setTimeout(() => {
      finish({ ok: false, error: `timeout after ${timeoutMs} ms` });
      req.destroy();
    }, timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => finish(LOCAL_ERRORS.has(err.code ?? '') ? { ok: false, inconclusive: true, error: describe(err) } : { ok: false, error: describe(err) }));
    req.end();
  });
}

/**
 * TCP connect to address:port from localAddress:localPort. Success is the completed handshake; the
 * connection is then reset at once (no FIN exchange, no TIME_WAIT on either side, and IPVS sees it close).
 */
export function tcpProbe(t: { address: string; port: number; localAddress: string; localPort: number }, timeoutMs: number): Promise<ProbeOutcome> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    let connected = false;
    const sock = connect({ host: t.address, port: t.port, localAddress: t.localAddress, localPort: t.localPort });
    const finish = (o: Omit<ProbeOutcome, 'latencyMs'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...o, latencyMs: performance.now() - t0 });
      if (sock.destroyed) return;
      // resetAndDestroy() on a socket still connecting waits for the connection, which may never come, and
      // the half-open socket would hold its 4-tuple for the kernel's SYN retries (about two minutes): then
      // the next probe from that source port fails with EADDRNOTAVAIL. Closing it aborts at once.
      if (connected) sock.resetAndDestroy();
      else sock.destroy();
    };
    const timer = setTimeout(() => finish({ ok: false, error: `no answer within ${timeoutMs} ms` }), timeoutMs);
    sock.once('connect', () => {
      connected = true;
      finish({ ok: true });
    });
    sock.once('error', (err: NodeJS.ErrnoException) => finish(LOCAL_ERRORS.has(err.code ?? '') ? { ok: false, inconclusive: true, error: describe(err) } : { ok: false, error: describe(err) }));
  });
}
