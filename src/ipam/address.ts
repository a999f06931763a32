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
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) {
    const octets = ipaddr.IPv4.parse(text).octets;
    if (text.split('.').some((p) => p.length > 1 && p.startsWith('0'))) return undefined;
    let value = 0n;
    for (const o of octets) value = (value << 8n) | BigInt(o);
    return { family: 4, value };
  }
  if (text.includes(':') && !text.includes('%') && ipaddr.IPv6.isValid(text)) {
    const parts = ipaddr.IPv6.parse(text).parts;
    let value = 0n;
    for (const p of parts) value = (value << 16n) | BigInt(p);
    return { family: 6, value };
  }
  return undefined;
}

export function formatIp(ip: Ip): string {
  if (ip.family === 4) {
    const v = Number(ip.value);
    return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  const parts: number[] = [];
  for (let i = 7; i >= 0; i--) parts.push(Number((ip.value >> BigInt(i * 16)) & 0xffffn));
  return ipaddr.IPv6.parse(parts.map((p) => p.toString(16)).join(':')).toString();
}

/** Canonical text of an address (IPv6 compressed and lower-case), or undefined when it does not parse. */
export function canonicalIp(text: string): string | undefined {
  const ip = parseIp(text);
  return ip ? formatIp(ip) : undefined;
}
