// The short human summary that `ipvs-lb validate` prints for a good file.
import { usableCount } from '../ipam/range.js';
import type { Config } from './types.js';

export function poolSize(pool: Config['pools'][number]): bigint {
  return pool.addresses.reduce((n, r) => n + usableCount(r, pool.avoidBuggyIPs), 0n);
}

export function summarizeConfig(c: Config): string {
  const lines = [`${c.source}: valid`, `host ${c.hostName}, VIP interface ${c.interface}, state in ${c.stateDir}`];
  lines.push(`pools (${c.pools.length}):`);
  for (const p of c.pools) {
    const families = [...new Set(p.addresses.map((r) => `IPv${r.family}`))].join('+');
    const flags = [p.autoAssign ? 'auto-assign' : 'manual only', p.avoidBuggyIPs ? 'avoids .0/.255' : ''].filter(Boolean).join(', ');
    lines.push(`  ${p.name}: ${poolSize(p)} addresses (${families}; ${p.addresses.map((r) => r.text).join(', ')}; ${flags})`);
  }
  if (!c.vrrp.enabled) lines.push('vrrp: disabled (this host binds every VIP itself)');
  else {
    lines.push(`vrrp groups (${c.vrrp.groups.length}):`);
    for (const g of c.vrrp.groups) {
      const peers = g.peers.length > 0 ? `unicast to ${g.peers.join(', ')}` : 'multicast';
      lines.push(`  ${g.name}: vrid ${g.virtualRouterId} on ${g.interface}, priority ${g.priority}, advert ${g.advertIntervalSeconds}s, ${peers}${g.preempt ? ', preempt' : ''}`);
    }
  }
  lines.push(`defaults: forwarding ${c.forwarding}, scheduler ${c.scheduler}; API on ${c.api.listen.host}:${c.api.listen.port}`);
  return lines.join('\n');
}
