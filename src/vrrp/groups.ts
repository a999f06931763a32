// Active-active: which VRRP group carries a VIP. The pool's vrrpGroup wins; otherwise a stable hash of the
// address over the sorted group names, so every LB host computes the same answer from the same config, and
// the answer does not depend on the order groups are listed in.
import { createHash } from 'node:crypto';
import { canonicalIp } from '../ipam/address.js';

export function groupForVip(vip: string, poolGroup: string | undefined, groupNames: readonly string[]): string | undefined {
  if (poolGroup !== undefined) return poolGroup;
  if (groupNames.length === 0) return undefined;
  const sorted = [...new Set(groupNames)].sort();
  const digest = createHash('sha256').update(canonicalIp(vip) ?? vip).digest();
  return sorted[digest.readUInt32BE(0) % sorted.length];
}
