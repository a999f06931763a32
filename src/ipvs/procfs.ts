// /proc/net/ip_vs: the kernel's whole IPVS table (of the reader's network namespace) in one sequential read.
// Over netlink the kernel lists destinations one service at a time, so reading 10,000 services costs 10,000
// dump round trips; this file gives every destination's address, port, forwarding method, weight and
// connection counts at once. It lacks what the reconciler must also compare (scheduler flags, the persistence
// timeout in seconds: the file shows jiffies), which one netlink service dump supplies (IpvsClient.table()).
// Format (net/netfilter/ipvs/ip_vs_ctl.c, ip_vs_info_seq_show; checked against Linux 6.1 in the lab):
//   IP Virtual Server version 1.2.1 (size=4096)
//   Prot LocalAddress:Port Scheduler Flags
//     -> RemoteAddress:Port Forward Weight ActiveConn InActConn
//   TCP  C0000201:0050 rr  
//     -> C633640B:0050      Route   3      0          0
//   UDP  C0000202:01BB sh ops  
//   TCP  [2001:0db8:00ff:0000:0000:0000:0000:0010]:0050 rr persistent 10000 40000000
//     -> [2001:0db8:0100:0000:0000:0000:0000:0011]:0050      Route   2      0          0
//   FWM  00000007 rr 
// Destinations are listed newest first. IPv4 addresses and all ports are big-endian hex.
// Completeness is not guaranteed: each service is printed whole (with all its destinations), but Linux 6.1
// counts positions differently in the file's start() (services of this namespace) and next() (every
// namespace's), so when other network namespaces also hold IPVS services, reads that resume mid-file skip
// services (measured in the lab: 0.3 of 6 MB). IpvsClient.table() therefore checks the file against the
// netlink service list and dumps any service the file left out over netlink.
import { openSync, readSync, closeSync } from 'node:fs';
import { formatIp } from '../ipam/address.js';
import type { DecodedForwarding, Family, Protocol } from './types.js';

export const PROC_IPVS_PATH = '/proc/net/ip_vs';

export interface ProcDestination {
  family: Family;
  address: string;
  port: number;
  forwarding: DecodedForwarding;
  weight: number;
  activeConns: number;
  inactiveConns: number;
}

export interface ProcService {
  /** Undefined for a fwmark service. */
  protocol: Protocol | undefined;
  /** Canonical text; undefined for a fwmark service. */
  address: string | undefined;
  port: number;
  /** 0 unless a fwmark service (whose address family the file does not show). */
  fwmark: number;
  scheduler: string;
  destinations: ProcDestination[];
}

const PROTOCOLS: Record<string, Protocol | 'fwm'> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp', FWM: 'fwm' };
const FORWARDING: Record<string, DecodedForwarding | undefined> = { Masq: 'nat', Local: 'local', Tunnel: 'tun', Route: 'dr', Bypass: 'bypass' };

/** The file did not have the layout this parser knows (a kernel change): the caller falls back to netlink. */
export class ProcParseError extends Error {
  readonly code = 'EBADMSG';
  constructor(message: string) {
    super(message);
    this.name = 'ProcParseError';
  }
}

function hexValue(s: string): number {
  if (s.length === 0 || s.length > 8) return NaN;
  let v = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const d = c >= 48 && c <= 57 ? c - 48 : c >= 65 && c <= 70 ? c - 55 : c >= 97 && c <= 102 ? c - 87 : -1;
    if (d < 0) return NaN;
    v = v * 16 + d;
  }
  return v;
}

function hex(s: string, what: string, line: number): number {
  const v = hexValue(s);
  if (Number.isNaN(v)) throw new ProcParseError(`${PROC_IPVS_PATH} line ${line}: ${what} ${JSON.stringify(s)} is not hex`);
  return v;
}

// Node addresses repeat on every service, VIPs do not: remember conversions, within bounds.
const addrCache = new Map<string, string>();

function cached(raw: string, convert: () => string): string {
  let a = addrCache.get(raw);
  if (a === undefined) {
    a = convert();
    if (addrCache.size >= 65536) addrCache.clear();
    addrCache.set(raw, a);
  }
  return a;
}

/** `C0000201:0050` or `[2001:0db8:...:0010]:0050` → family, canonical address, port. */
function endpoint(s: string, what: string, line: number): { family: Family; address: string; port: number } {
  if (s.charCodeAt(0) === 91 /* [ */) {
    const close = s.indexOf(']:');
    if (close < 0) throw new ProcParseError(`${PROC_IPVS_PATH} line ${line}: ${what} ${JSON.stringify(s)} is not [IPv6]:PORT`);
    const inner = s.slice(1, close);
    const address = cached(inner, () => {
      const groups = inner.split(':');
      if (groups.length !== 8 || groups.some((g) => g.length !== 4)) throw new ProcParseError(`${PROC_IPVS_PATH} line ${line}: ${what} ${JSON.stringify(s)} is not a full IPv6 address`);
      let value = 0n;
      for (const g of groups) value = (value << 16n) | BigInt(hex(g, what, line));
      return formatIp({ family: 6, value });
    });
    return { family: 6, address, port: hex(s.slice(close + 2), `${what} port`, line) };
  }
  if (s.length !== 13 || s.charCodeAt(8) !== 58 /* : */) throw new ProcParseError(`${PROC_IPVS_PATH} line ${line}: ${what} ${JSON.stringify(s)} is not HEXADDR:PORT`);
  const raw = s.slice(0, 8);
  const address = cached(raw, () => {
    const v = hex(raw, what, line);
    return `${Math.floor(v / 16777216)}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  });
  return { family: 4, address, port: hex(s.slice(9), `${what} port`, line) };
}

function int(s: string | undefined, what: string, line: number): number {
  const v = s === undefined || s.length === 0 ? NaN : Number(s);
  if (!Number.isInteger(v)) throw new ProcParseError(`${PROC_IPVS_PATH} line ${line}: ${what} ${JSON.stringify(s)} is not a number`);
  return v;
}

/** Splits at runs of spaces into `out` (reused); returns the number of fields. */
function fields(l: string, from: number, out: string[]): number {
  let n = 0;
  let i = from;
  const len = l.length;
  while (i < len) {
    while (i < len && l.charCodeAt(i) === 32) i++;
    if (i >= len) break;
    let j = i + 1;
    while (j < len && l.charCodeAt(j) !== 32) j++;
    out[n++] = l.slice(i, j);
    i = j;
  }
  return n;
}

const hexDigit = (c: number): number => (c >= 48 && c <= 57 ? c - 48 : c >= 65 && c <= 70 ? c - 55 : c >= 97 && c <= 102 ? c - 87 : -1);
const FAST_FORWARDING: ReadonlyArray<[string, DecodedForwarding]> = [['Route', 'dr'], ['Masq', 'nat'], ['Tunnel', 'tun'], ['Local', 'local'], ['Bypass', 'bypass']];
// IPv4 node addresses repeat on every service: converted once each, by value.
const v4Text = new Map<number, string>();

/** Reads a run of decimal digits at `i` (at least one, at most 10); returns [value, next index] or undefined. */
function digits(t: string, i: number, end: number): [number, number] | undefined {
  let v = 0;
  const from = i;
  for (; i < end; i++) {
    const c = t.charCodeAt(i);
    if (c < 48 || c > 57) break;
    v = v * 10 + (c - 48);
  }
  return i === from || i - from > 10 ? undefined : [v, i];
}

/**
 * The common destination line (IPv4, known forwarding, plain numbers) read in place, without cutting the line
 * into strings: at 110,000 destinations this is most of a resync's own work. Anything else returns undefined
 * and takes the general path, which also words the errors.
 */
function fastDestination(t: string, start: number, end: number): ProcDestination | undefined {
  let i = start + 5;
  if (end - i < 14) return undefined;
  let v = 0;
  for (let k = 0; k < 8; k++) {
    const d = hexDigit(t.charCodeAt(i + k));
    if (d < 0) return undefined;
    v = v * 16 + d;
  }
  if (t.charCodeAt(i + 8) !== 58) return undefined;
  let port = 0;
  for (let k = 9; k < 13; k++) {
    const d = hexDigit(t.charCodeAt(i + k));
    if (d < 0) return undefined;
    port = port * 16 + d;
  }
  i += 13;
  if (t.charCodeAt(i) !== 32) return undefined;
  while (i < end && t.charCodeAt(i) === 32) i++;
  let forwarding: DecodedForwarding | undefined;
  for (const [word, f] of FAST_FORWARDING) {
    if (t.startsWith(word, i) && t.charCodeAt(i + word.length) === 32) {
      forwarding = f;
      i += word.length;
      break;
    }
  }
  if (!forwarding) return undefined;
  const numbers: number[] = [];
  for (let k = 0; k < 3; k++) {
    while (i < end && t.charCodeAt(i) === 32) i++;
    const r = digits(t, i, end);
    if (!r) return undefined;
    numbers.push(r[0]);
    i = r[1];
    if (i < end && t.charCodeAt(i) !== 32) return undefined;
  }
  while (i < end && t.charCodeAt(i) === 32) i++;
  if (i !== end) return undefined;
  let address = v4Text.get(v);
  if (address === undefined) {
    address = `${Math.floor(v / 16777216)}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
    if (v4Text.size >= 65536) v4Text.clear();
    v4Text.set(v, address);
  }
  return { family: 4, address, port, forwarding, weight: numbers[0]!, activeConns: numbers[1]!, inactiveConns: numbers[2]! };
}

/**
 * The service blocks of the last parse (a service line with the destination lines under it), so that a block
 * whose text has not changed since is not parsed again: it is the same text, so the same answer, and the
 * object made last time is returned. At 10,000 services × 10 destinations parsing 6 MB and making 110,000
 * objects (and collecting them) was most of a no-op resync's own work; comparing a block's text costs about
 * a memcmp. A changed connection count changes its block, which is parsed again. The objects returned are
 * shared with later parses: callers must not change them.
 */
export class ProcReuse {
  blocks = new Map<string, { text: string; parsed: ProcService }>();
  /** Blocks reused and parsed by the last parse (benchmarks and tests). */
  reused = 0;
  parsed = 0;
}

const isDestLine = (t: string, i: number): boolean => t.startsWith('  -> ', i);

/** Parses the whole file; strict, so a format this parser does not know is an error, never a wrong table. */
export function parseProcIpvs(text: string, reuse?: ProcReuse): ProcService[] {
  let pos = text.indexOf('\n');
  const head = pos < 0 ? text : text.slice(0, pos);
  if (!head.startsWith('IP Virtual Server version ')) throw new ProcParseError(`${PROC_IPVS_PATH}: unexpected first line ${JSON.stringify(head.slice(0, 80))}`);
  // Two more header lines.
  for (let k = 0; k < 2 && pos >= 0; k++) pos = text.indexOf('\n', pos + 1);
  const out: ProcService[] = [];
  const f: string[] = [];
  let current: ProcService | undefined;
  let n = 3;
  const blocks = reuse ? new Map<string, { text: string; parsed: ProcService }>() : undefined;
  let reused = 0;
  let parsed = 0;
  while (pos >= 0 && pos < text.length - 1) {
    const next = text.indexOf('\n', pos + 1);
    const start = pos + 1;
    const end = next < 0 ? text.length : next;
    if (blocks && end > start && !isDestLine(text, start)) {
      // A service line: its block runs to the next line that is neither a destination nor empty.
      let lines = 1;
      let blockEnd = end;
      while (blockEnd < text.length - 1 && (isDestLine(text, blockEnd + 1) || text.charCodeAt(blockEnd + 1) === 10)) {
        const e = text.indexOf('\n', blockEnd + 1);
        blockEnd = e < 0 ? text.length : e;
        lines++;
      }
      const serviceLine = text.slice(start, end);
      const block = text.slice(start, blockEnd);
      const prev = reuse!.blocks.get(serviceLine);
      if (prev && prev.text === block && !blocks.has(serviceLine)) {
        out.push(prev.parsed);
        blocks.set(serviceLine, prev);
        reused++;
        current = undefined;
        n += lines;
        pos = blockEnd < text.length ? blockEnd : -1;
        continue;
      }
      parsed++;
      // Recorded now, filled by the lines below; kept only if the whole parse succeeds.
      const entry = { text: block, parsed: undefined as unknown as ProcService };
      blocks.set(serviceLine, entry);
      pos = next;
      n++;
      parseServiceLine(serviceLine, n, f, out, (svc) => {
        current = svc;
        entry.parsed = svc;
      });
      continue;
    }
    pos = next;
    n++;
    if (current && text.startsWith('  -> ', start)) {
      const d = fastDestination(text, start, end);
      if (d) {
        current.destinations.push(d);
        continue;
      }
    }
    const l = text.slice(start, end);
    if (l.length === 0) continue;
    if (l.startsWith('  -> ')) {
      if (!current) throw new ProcParseError(`${PROC_IPVS_PATH} line ${n}: a destination before any service`);
      const k = fields(l, 5, f);
      if (k < 5) throw new ProcParseError(`${PROC_IPVS_PATH} line ${n}: not a destination line: ${JSON.stringify(l.slice(0, 120))}`);
      const ep = endpoint(f[0]!, 'destination', n);
      const forwarding = Object.hasOwn(FORWARDING, f[1]!) ? FORWARDING[f[1]!] : undefined;
      if (!forwarding) throw new ProcParseError(`${PROC_IPVS_PATH} line ${n}: unknown forwarding ${JSON.stringify(f[1])}`);
      current.destinations.push({
        family: ep.family, address: ep.address, port: ep.port, forwarding,
        weight: int(f[2], 'weight', n), activeConns: int(f[3], 'active connections', n), inactiveConns: int(f[4], 'inactive connections', n),
      });
      continue;
    }
    parseServiceLine(l, n, f, out, (svc) => (current = svc));
  }
  if (reuse && blocks) {
    reuse.blocks = blocks;
    reuse.reused = reused;
    reuse.parsed = parsed;
  }
  return out;
}

function parseServiceLine(l: string, n: number, f: string[], out: ProcService[], started: (s: ProcService) => void): void {
  const k = fields(l, 0, f);
  const proto = Object.hasOwn(PROTOCOLS, f[0]!) ? PROTOCOLS[f[0]!] : undefined;
  if (!proto || k < 3) throw new ProcParseError(`${PROC_IPVS_PATH} line ${n}: not a service line: ${JSON.stringify(l.slice(0, 120))}`);
  let svc: ProcService;
  if (proto === 'fwm') {
    svc = { protocol: undefined, address: undefined, port: 0, fwmark: hex(f[1]!, 'fwmark', n), scheduler: f[2]!, destinations: [] };
  } else {
    const ep = endpoint(f[1]!, 'service', n);
    svc = { protocol: proto, address: ep.address, port: ep.port, fwmark: 0, scheduler: f[2]!, destinations: [] };
  }
  out.push(svc);
  started(svc);
}

/** Reads the file in one pass with a large buffer (the kernel hands out about 4 KiB per read either way).
 * Synchronous on purpose: thousands of small reads through the thread pool cost more than they save. */
export function readProcIpvs(path = PROC_IPVS_PATH): string {
  const fd = openSync(path, 'r');
  try {
    const chunks: Buffer[] = [];
    for (;;) {
      const b = Buffer.allocUnsafe(1 << 20);
      let filled = 0;
      let n = 0;
      while (filled < b.length && (n = readSync(fd, b, filled, b.length - filled, null)) > 0) filled += n;
      chunks.push(b.subarray(0, filled));
      if (n === 0) break;
    }
    return Buffer.concat(chunks).toString('latin1');
  } finally {
    closeSync(fd);
  }
}

/** The key under which a netlink service and a /proc service meet; undefined for fwmark services. */
export function procKey(protocol: Protocol | undefined, address: string | undefined, port: number): string | undefined {
  return protocol === undefined || address === undefined ? undefined : `${protocol} ${address} ${port}`;
}
