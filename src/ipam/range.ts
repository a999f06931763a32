// Pool address entries: a CIDR ("192.0.2.0/24", "2001:db8::/64"), a range ("198.51.100.1-198.51.100.3"), or a
// single address (taken as /32 or /128). Entries are kept as [first, last] so that size and overlap never
// need enumeration.
import { type Family, familyBits, formatIp, parseIp } from './address.js';

export interface AddressRange {
  family: Family;
  first: bigint;
  last: bigint;
  /** The entry as the operator wrote it, for messages. */
  text: string;
  /**
   * IPv6 CIDR entries of /126 or shorter: the entry's all-zero address is the Subnet-Router anycast address
   * (RFC 4291 2.6.1), which every router on the link answers, so it is never handed out.
   */
  anycastFirst?: true;
}

export type ParsedRange = { ok: true; range: AddressRange } | { ok: false; error: string };

export function parseRange(entry: unknown): ParsedRange {
  if (typeof entry !== 'string') return { ok: false, error: 'must be a CIDR, an a-b range or an address' };
  const text = entry.trim();
  if (text.includes('/')) return parseCidr(text);
  if (text.includes('-')) return parseDashRange(text);
  const ip = parseIp(text);
  if (!ip) return { ok: false, error: 'is not a CIDR, an a-b range or an IP address' };
  return { ok: true, range: { family: ip.family, first: ip.value, last: ip.value, text } };
}

function parseCidr(text: string): ParsedRange {
  const [addr = '', len = '', ...rest] = text.split('/');
  const ip = parseIp(addr);
  if (!ip || rest.length > 0) return { ok: false, error: 'is not a valid CIDR: the address does not parse' };
  const bits = familyBits(ip.family);
  if (!/^\d{1,3}$/.test(len) || Number(len) > bits) {
    return { ok: false, error: `is not a valid CIDR: prefix length must be 0-${bits}` };
  }
  const host = bits - Number(len);
  const mask = (1n << BigInt(host)) - 1n;
  if ((ip.value & mask) !== 0n) {
    const network = formatIp({ family: ip.family, value: ip.value & ~mask });
    return { ok: false, error: `is not a valid CIDR: host bits are set (the network is ${network}/${len})` };
  }
  const range: AddressRange = { family: ip.family, first: ip.value, last: ip.value | mask, text };
  if (ip.family === 6 && Number(len) <= 126) range.anycastFirst = true;
  return { ok: true, range };
}

function parseDashRange(text: string): ParsedRange {
  const parts = text.split('-').map((p) => p.trim());
  if (parts.length !== 2) return { ok: false, error: 'is not a valid range: use FIRST-LAST' };
  const first = parseIp(parts[0] ?? '');
  const last = parseIp(parts[1] ?? '');
  if (!first) return { ok: false, error: `is not a valid range: "${parts[0]}" is not an IP address` };
  if (!last) return { ok: false, error: `is not a valid range: "${parts[1]}" is not an IP address` };
  if (first.family !== last.family) return { ok: false, error: 'is not a valid range: it mixes IPv4 and IPv6' };
  if (last.value < first.value) return { ok: false, error: 'is not a valid range: it ends before it starts' };
  return { ok: true, range: { family: first.family, first: first.value, last: last.value, text } };
}

export const rangeSize = (r: AddressRange): bigint => r.last - r.first + 1n;

export const rangesOverlap = (a: AddressRange, b: AddressRange): boolean =>
  a.family === b.family && a.first <= b.last && b.first <= a.last;

export const rangeContains = (r: AddressRange, family: Family, value: bigint): boolean =>
  r.family === family && r.first <= value && value <= r.last;

/** IPv4 addresses ending in .0 or .255, which some old client stacks treat as broadcast (MetalLB's avoidBuggyIPs). */
export const isBuggyIPv4 = (family: Family, value: bigint): boolean =>
  family === 4 && ((value & 255n) === 0n || (value & 255n) === 255n);

/** The Subnet-Router anycast address of an IPv6 CIDR entry (see AddressRange.anycastFirst). */
export const isSubnetRouterAnycast = (r: Pick<AddressRange, 'first' | 'anycastFirst'>, value: bigint): boolean =>
  r.anycastFirst === true && value === r.first;

/** Number of usable addresses in a range, with .0/.255 removed when asked; exact for any size. */
export function usableCount(r: AddressRange, avoidBuggyIPs: boolean): bigint {
  const total = rangeSize(r) - (r.anycastFirst ? 1n : 0n);
  if (!avoidBuggyIPs || r.family !== 4) return total;
  // Count values v in [first, last] with v % 256 in {0, 255}.
  const countMod = (upTo: bigint, residue: bigint): bigint => (upTo < residue ? 0n : (upTo - residue) / 256n + 1n);
  const inRange = (residue: bigint) => countMod(r.last, residue) - (r.first === 0n ? 0n : countMod(r.first - 1n, residue));
  return total - inRange(0n) - inRange(255n);
}
