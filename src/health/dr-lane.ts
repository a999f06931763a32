// The DR path check's per-node budget. A node serves every virtual service, so probing each (node, virtual
// service) every interval would cost nodes × virtual services probes. Instead each node gets at most
// `probesPerNode` DR probes per interval: first the units that are failing or down (so their rise and fall
// counts advance every interval), then a sweep over the rest in a stable round-robin. A small installation
// (no more units per node than the budget) is thus checked exactly, every unit every interval; a large one
// is sampled, and the sweep period is units / budget intervals.
//
// Sampling alone would take a whole sweep to notice a node that accepts no VIP at all, so the node itself has
// a verdict too: `fall` consecutive DR failures on the node that span min(3, its VIPs) distinct VIPs mean the
// node does not accept VIP traffic (one VIP missing on it fails only that VIP's units); `rise` consecutive
// successes clear it. Pure.
import type { DesiredVirtualService } from '../model/types.js';
import { NODE_VERDICT_VIPS } from './plan.js';
import { pairKey, type DrLane, type DrUnit, type Policy, type Status } from './types.js';

export { NODE_VERDICT_VIPS };

export interface LaneState {
  /** Next sweep position (index into the lane's units). */
  cursor: number;
  /** Round-robin position among the focused units when they exceed the budget. */
  focusCursor: number;
  streakFailures: number;
  streakVips: Set<string>;
  streakSuccesses: number;
  node: { status: Status; since: number; lastError: string | undefined };
}

export const initialLaneState = (): LaneState => ({
  cursor: 0, focusCursor: 0, streakFailures: 0, streakVips: new Set(), streakSuccesses: 0,
  node: { status: 'unknown', since: 0, lastError: undefined },
});

/** The unit of one of the lane's virtual services (made only when it is probed or shown). */
export function unitOf(lane: DrLane, vs: DesiredVirtualService, policy: Policy): DrUnit | undefined {
  const nodeAddress = lane.addresses[vs.family];
  if (nodeAddress === undefined) return undefined;
  return { key: pairKey(lane.node, vs.key), node: lane.node, nodeAddress, vsKey: vs.key, vip: vs.vip, family: vs.family, port: vs.port, policy };
}

/**
 * The units to probe this interval: the focused ones (failing or down) first, at most budget - 1 when
 * others remain so that the sweep always moves on, then the sweep. `focused` are the node's units that are
 * not settled up, as the caller tracks them.
 */
export function pickUnits(lane: DrLane, ls: LaneState, focused: readonly DrUnit[], budget: number, policyOf: (vs: DesiredVirtualService) => Policy | undefined): DrUnit[] {
  const n = lane.vss.length;
  const picked: DrUnit[] = [];
  const add = (vs: DesiredVirtualService) => {
    const p = policyOf(vs);
    const u = p ? unitOf(lane, vs, p) : undefined;
    if (u) picked.push(u);
  };
  if (n === 0) return picked;
  if (n <= budget) {
    for (const vs of lane.vss) add(vs);
    return picked;
  }
  const taken = new Set<string>();
  const current = focused.filter((u) => u.node === lane.node);
  const focusBudget = Math.min(current.length, budget - 1);
  for (let i = 0; i < focusBudget; i++) {
    const u = current[(ls.focusCursor + i) % current.length]!;
    picked.push(u);
    taken.add(u.vsKey);
  }
  if (current.length > 0) ls.focusCursor = (ls.focusCursor + focusBudget) % current.length;
  let steps = 0;
  if (ls.cursor >= n) ls.cursor = 0;
  while (picked.length < budget && steps < n) {
    const vs = lane.vss[ls.cursor]!;
    ls.cursor = (ls.cursor + 1) % n;
    steps++;
    if (taken.has(vs.key)) continue;
    taken.add(vs.key);
    add(vs);
  }
  return picked;
}

/** Feeds one conclusive DR result of the node into its node-level verdict. Returns true when that changed. */
export function noteNodeResult(lane: DrLane, ls: LaneState, unit: DrUnit, ok: boolean, error: string | undefined, now: number, rise: number, fall: number): boolean {
  const before = ls.node.status;
  if (ok) {
    ls.streakFailures = 0;
    ls.streakVips.clear();
    ls.streakSuccesses++;
    if (ls.node.status === 'unknown' || (ls.node.status === 'down' && ls.streakSuccesses >= rise)) {
      ls.node = { status: 'up', since: now, lastError: undefined };
    }
  } else {
    ls.streakSuccesses = 0;
    ls.streakFailures++;
    ls.streakVips.add(unit.vip);
    const needVips = Math.max(1, Math.min(NODE_VERDICT_VIPS, lane.vipCount));
    if (ls.node.status !== 'down' && ls.streakFailures >= fall && ls.streakVips.size >= needVips) {
      ls.node = { status: 'down', since: now, lastError: `${ls.streakFailures} DR probes in a row failed over ${ls.streakVips.size} VIPs (last: ${error ?? 'failed'})` };
    }
  }
  return ls.node.status !== before;
}
