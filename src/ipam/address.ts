// IP addresses as (family, bigint) pairs: arithmetic on a /64 stays exact and cheap, and the same code serves
// both families. Parsing is strict: no shorthand IPv4 ("10.1"), no zone ids, no leading zeros.
import ipaddr from 'ipaddr.js';

export type Family = 4 | 6;

export interface Ip {
  family: Family;
  value: bigint;
}

export const familyBits = (family: Family): number => (family === 4 ? 32 : 128);

export function parseIp(text: string): Ip | undefined {
  if (typeof text !== 'string') return undefined;
  // Fast path for the common, strict dotted-quad form (a ledger load parses every stored address).
  const quad = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/.exec(text);
  if (quad) {
    const o = [Number(quad[1]), Number(quad[2]), Number(quad[3]), Number(quad[4])];
    if (o.some((x) => x > 255)) return undefined;
    return { family: 4, value: BigInt(((o[0]! << 24) >>> 0) + (o[1]! << 16) + (o[2]! << 8) + o[3]!) };
  }
  if (!text.includes(':') && ipaddr.IPv4.isValidFourPartDecimal(text)) {
    const octets = ipaddr.IPv4.parse(text).octets;
    if (text.split('.').some((p) => p.length > 1 && p.startsWith('0'))) return undefined;
    let value = 0n;
    for (const o of octets) value = (value << 8n) | BigInt(o);
    return { family: 4, value };
  }
  if (text.includes(':')) {
    const fast = parseIPv6Groups(text);
    if (fast !== undefined) return { family: 6, value: fast };
  }
  if (text.includes(':') && !text.includes('%') && ipaddr.IPv6.isValid(text)) {
    const parts = ipaddr.IPv6.parse(text).parts;
    let value = 0n;
    for (const p of parts) value = (value << 16n) | BigInt(p);
    return { family: 6, value };
  }
  return undefined;
}

const HEXTET = /^[0-9a-fA-F]{1,4}$/;

/**
 * Fast path for IPv6 made only of hex groups and at most one "::" (what the ledger stores); undefined for
 * anything else, which then goes through ipaddr.js (embedded IPv4, or invalid).
 */
function parseIPv6Groups(text: string): bigint | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] === '' ? [] : halves[0]!.split(':');
  const tail = halves.length === 2 ? (halves[1] === '' ? [] : halves[1]!.split(':')) : [];
  const groups = head.length + tail.length;
  if (halves.length === 1 ? groups !== 8 : groups > 7) return undefined;
  let value = 0n;
  for (const g of head) {
    if (!HEXTET.test(g)) return undefined;
    value = (value << 16n) | BigInt(parseInt(g, 16));
  }
  value <<= BigInt(16 * (8 - head.length));
  let low = 0n;
  for (const g of tail) {
    if (!HEXTET.test(g)) return undefined;
    low = (low << 16n) | BigInt(parseInt(g, 16));
  }
  return value | low;
}

export function formatIp(ip: Ip): string {
  if (ip.family === 4) {
    const v = Number(ip.value);
    return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  // RFC 5952 by hand (the allocator formats every IPv6 address it hands out, so this is on the hot path):
  // lower-case hex, no leading zeros, the longest run of two or more zero groups (the first on a tie) as "::".
  const hi = ip.value >> 64n;
  const lo = ip.value & 0xffffffffffffffffn;
  const h = Number(hi >> 32n);
  const m = Number(hi & 0xffffffffn);
  const l = Number(lo >> 32n);
  const q = Number(lo & 0xffffffffn);
  const parts = [h >>> 16, h & 0xffff, m >>> 16, m & 0xffff, l >>> 16, l & 0xffff, q >>> 16, q & 0xffff];
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (parts[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && parts[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number) => parts.slice(from, to).map((p) => p.toString(16)).join(':');
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}

/** Canonical text of an address (IPv6 compressed and lower-case), or undefined when it does not parse. */
export function canonicalIp(text: string): string | undefined {
  const ip = parseIp(text);
  return ip ? formatIp(ip) : undefined;
}
