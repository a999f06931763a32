// Active-active: which VRRP group carries a VIP. The pool's vrrpGroup wins; otherwise a stable hash of the
// address over the sorted group names, so every LB host computes the same answer from the same config, and
// the answer does not depend on the order groups are listed in.
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';

/** A canonical text for an address, so "2001:db8::1" and "2001:0db8:0:0::1" hash alike. */
function canonical(ip: string): string {
  if (isIP(ip) !== 6 || ip.includes('.')) return ip.toLowerCase();
  const [head, tail] = ip.toLowerCase().split('::') as [string, string | undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined ? [] : tail === '' ? [] : tail.split(':');
  const fill = tail === undefined ? [] : new Array<string>(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((x) => parseInt(x, 16).toString(16)).join(':');
}

export function groupForVip(vip: string, poolGroup: string | undefined, groupNames: readonly string[]): string | undefined {
  if (poolGroup !== undefined) return poolGroup;
  if (groupNames.length === 0) return undefined;
  const sorted = [...new Set(groupNames)].sort();
  const digest = createHash('sha256').update(canonical(vip)).digest();
  return sorted[digest.readUInt32BE(0) % sorted.length];
}
