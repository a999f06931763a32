// The firewall rules that mark the DR path check's own probes, as text for `nft -f -` or
// `ip(6)tables-legacy-restore --noflush` (pure, unit-tested). A probe from source port P of node N's block
// towards a VIP gets N's mark, in the output path before IPVS sees it (mangle priority -150 < IPVS -99), so
// the node's fwmark virtual service takes it. Only packets towards the pools' addresses from the reserved
// source ports are marked; nothing else on the host is touched.
import { formatIp, type Family } from '../ipam/address.js';
import type { AddressRange } from '../ipam/range.js';

export const NFT_TABLE = 'ipvs_lb_health';
export const IPTABLES_CHAIN = 'IPVS-LB-HEALTH';

export interface MarkPlan {
  ports: { first: number; last: number };
  probesPerNode: number;
  fwmarkBase: number;
  /** Slots in use (slot i: ports first + i × probesPerNode ..., mark fwmarkBase + i). */
  slots: Iterable<number>;
  /** The pools' address entries. */
  ranges: readonly AddressRange[];
}

/** The smallest list of CIDRs that covers [first, last] exactly. */
export function rangeToCidrs(family: Family, first: bigint, last: bigint): string[] {
  const bits = family === 4 ? 32 : 128;
  const out: string[] = [];
  let cur = first;
  while (cur <= last) {
    // The largest block aligned at cur that does not pass last.
    let size = 0;
    while (size < bits && (cur & ((1n << BigInt(size + 1)) - 1n)) === 0n && cur + (1n << BigInt(size + 1)) - 1n <= last) size++;
    out.push(`${formatIp({ family, value: cur })}/${bits - size}`);
    cur += 1n << BigInt(size);
  }
  return out;
}

export function cidrsOf(ranges: readonly AddressRange[], family: Family): string[] {
  return ranges.filter((r) => r.family === family).flatMap((r) => rangeToCidrs(family, r.first, r.last));
}

function blocks(p: MarkPlan): Array<{ first: number; last: number; mark: number }> {
  return [...p.slots].sort((a, b) => a - b).map((slot) => {
    const first = p.ports.first + slot * p.probesPerNode;
    return { first, last: first + p.probesPerNode - 1, mark: p.fwmarkBase + slot };
  });
}

const hex = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;

/** One nftables transaction that replaces the table whole (created empty first so the delete never fails). */
export function renderNftRules(p: MarkPlan): string {
  const b = blocks(p);
  const lines = [
    `table inet ${NFT_TABLE} {`, '}',
    `delete table inet ${NFT_TABLE}`,
    `table inet ${NFT_TABLE} {`,
    "  # ipvs-lb DR path check: marks only the daemon's own probes (by source port) towards the pools, so that",
    '  # the IPVS fwmark service of one node takes each. Replaced whole by the daemon.',
    '  chain probe_marks {',
    '    type route hook output priority mangle; policy accept;',
  ];
  if (b.length > 0) {
    const map = `tcp sport map { ${b.map((x) => `${x.first}-${x.last} : ${hex(x.mark)}`).join(', ')} }`;
    const sport = `tcp sport ${p.ports.first}-${p.ports.last}`;
    const v4 = cidrsOf(p.ranges, 4);
    const v6 = cidrsOf(p.ranges, 6);
    if (v4.length > 0) lines.push(`    ip daddr { ${v4.join(', ')} } ${sport} meta mark set ${map}`);
    if (v6.length > 0) lines.push(`    ip6 daddr { ${v6.join(', ')} } ${sport} meta mark set ${map}`);
  }
  lines.push('  }', '}');
  return `${lines.join('\n')}\n`;
}

export const NFT_REMOVE = `table inet ${NFT_TABLE} {\n}\ndelete table inet ${NFT_TABLE}\n`;

/** iptables-restore input for one family: our chain in mangle, flushed and refilled (the jump is added apart). */
export function renderIptablesRules(p: MarkPlan, family: Family): string {
  const lines = ['*mangle', `:${IPTABLES_CHAIN} - [0:0]`];
  const cidrs = cidrsOf(p.ranges, family);
  for (const x of blocks(p)) {
    for (const c of cidrs) lines.push(`-A ${IPTABLES_CHAIN} -d ${c} -p tcp -m tcp --sport ${x.first}:${x.last} -j MARK --set-mark ${hex(x.mark)}`);
  }
  lines.push('COMMIT');
  return `${lines.join('\n')}\n`;
}
