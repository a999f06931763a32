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
import { settled, type CheckState } from './state.js';
import type { DrLane, DrUnit, Status } from './types.js';

/** Distinct VIPs a failure streak must span before the whole node is judged. */
export const NODE_VERDICT_VIPS = 3;

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

/**
 * The units to probe this interval: failing ones first (at most budget - 1 when others remain, so the sweep
 * always moves on), then the sweep.
 */
export function pickUnits(lane: DrLane, ls: LaneState, states: (key: string) => CheckState | undefined, budget: number): DrUnit[] {
  const n = lane.units.length;
  if (n === 0) return [];
  if (n <= budget) return [...lane.units];
  const focused: DrUnit[] = [];
  for (const u of lane.units) {
    const s = states(u.key);
    if (s && !settled(s)) focused.push(u);
  }
  const picked: DrUnit[] = [];
  const taken = new Set<string>();
  const focusBudget = Math.min(focused.length, budget - 1);
  for (let i = 0; i < focusBudget; i++) {
    const u = focused[(ls.focusCursor + i) % focused.length]!;
    picked.push(u);
    taken.add(u.key);
  }
  if (focused.length > 0) ls.focusCursor = (ls.focusCursor + focusBudget) % focused.length;
  let steps = 0;
  if (ls.cursor >= n) ls.cursor = 0;
  while (picked.length < budget && steps < n) {
    const u = lane.units[ls.cursor]!;
    ls.cursor = (ls.cursor + 1) % n;
    steps++;
    if (taken.has(u.key)) continue;
    picked.push(u);
    taken.add(u.key);
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
