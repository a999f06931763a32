// Probe verdicts applied to the candidate desired state, with the drain lifecycle of a failed backend:
//   serving ──verdict down──► draining (weight 0: no new connections, established ones go on)
//   draining ──grace over, or its connections drained──► removed (the destination leaves the kernel)
//   draining / removed ──verdict up again (after `rise`)──► serving
// Pure: the caller passes the lifecycle it got last time, the time and what the kernel says about drained
// destinations, and keeps what comes back.
import type { DesiredRealServer, DesiredState, DesiredVirtualService } from '../model/types.js';
import { pairKey } from './types.js';

export interface PairVerdict {
  down: boolean;
  /** Why, one entry per failing check ("kube-proxy 198.51.100.12:10256: HTTP 503"). */
  reasons: string[];
}

export interface Lifecycle {
  phase: 'draining' | 'removed';
  since: number;
  reasons: string[];
}

export interface ApplyOptions {
  /** undefined when nothing about the pair is known to be wrong. */
  verdict: (node: string, vs: DesiredVirtualService) => PairVerdict | undefined;
  /** Nodes with any failing check: every other real server is passed through untouched (the fast path). */
  suspectNodes: ReadonlySet<string>;
  lifecycle: ReadonlyMap<string, Lifecycle>;
  /** The kernel reports no active connection left on this draining destination. */
  drained: (pair: string, since: number) => boolean;
  now: number;
  graceMs: number;
}

export interface ApplyResult {
  desired: DesiredState;
  lifecycle: Map<string, Lifecycle>;
  /** The earliest time a draining pair's grace period ends (the caller recomputes then). */
  nextDeadline: number | undefined;
}

export function applyHealth(candidates: DesiredState, o: ApplyOptions): ApplyResult {
  const lifecycle = new Map<string, Lifecycle>();
  let nextDeadline: number | undefined;
  const virtualServices = candidates.virtualServices.map((vs) => {
    // Copied only from the first real server that changes, so untouched virtual services stay shared.
    let out: DesiredRealServer[] | undefined;
    for (let i = 0; i < vs.realServers.length; i++) {
      const rs = vs.realServers[i]!;
      let replacement: DesiredRealServer | null | undefined;
      if (rs.state === 'serving' && o.suspectNodes.has(rs.node)) {
        const v = o.verdict(rs.node, vs);
        if (v?.down) {
          const key = pairKey(rs.node, vs.key);
          const prev = o.lifecycle.get(key);
          let lc: Lifecycle = prev ? { ...prev, reasons: v.reasons } : { phase: 'draining', since: o.now, reasons: v.reasons };
          if (lc.phase === 'draining' && (o.now - lc.since >= o.graceMs || o.drained(key, lc.since))) lc = { ...lc, phase: 'removed' };
          lifecycle.set(key, lc);
          if (lc.phase === 'draining') {
            replacement = { ...rs, weight: 0, state: 'draining-unhealthy' };
            const deadline = lc.since + o.graceMs;
            if (nextDeadline === undefined || deadline < nextDeadline) nextDeadline = deadline;
          } else {
            replacement = null;
          }
        }
      }
      if (replacement !== undefined && !out) out = vs.realServers.slice(0, i);
      if (!out) continue;
      if (replacement === undefined) out.push(rs);
      else if (replacement) out.push(replacement);
    }
    return out ? { ...vs, realServers: out } : vs;
  });
  return { desired: { virtualServices, problems: candidates.problems }, lifecycle, nextDeadline };
}
