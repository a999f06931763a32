// Reads what request-loop.ts printed and answers the questions the demo and the tests ask of it: how many
// requests failed, and how long after an event (the VRRP master's death) the first new connection succeeded.
// Pure: text in, numbers out.
import { parseWhoami, type Whoami } from '../vm/index.js';

export interface LoopRecord {
  start: number;
  end: number;
  ok: boolean;
  body?: string;
  error?: string;
}

export function parseLoop(text: string): LoopRecord[] {
  const out: LoopRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    const r = JSON.parse(line) as Partial<LoopRecord>;
    if (typeof r.start !== 'number' || typeof r.end !== 'number' || typeof r.ok !== 'boolean') {
      throw new Error(`request-loop output: not a request record: ${line}`);
    }
    out.push(r as LoopRecord);
  }
  // Records come in the order requests finished; the questions are about when they started.
  return out.sort((a, b) => a.start - b.start);
}

export interface LoopSummary {
  requests: number;
  failures: number;
  /** Distinct error kinds seen, e.g. ["timeout"]. */
  errors: string[];
  /** Answers per node (from the lab servers' bodies). */
  byNode: Record<string, number>;
  /** Longest answer time of a successful request, ms. */
  slowestMs: number;
}

export function summarize(records: readonly LoopRecord[]): LoopSummary {
  const byNode: Record<string, number> = {};
  const errors = new Set<string>();
  let failures = 0;
  let slowestMs = 0;
  for (const r of records) {
    if (!r.ok) {
      failures++;
      errors.add(r.error ?? 'unknown');
      continue;
    }
    slowestMs = Math.max(slowestMs, r.end - r.start);
    const node = whoami(r)?.node;
    if (node) byNode[node] = (byNode[node] ?? 0) + 1;
  }
  return { requests: records.length, failures, errors: [...errors].sort(), byNode, slowestMs };
}

export function whoami(r: LoopRecord): Whoami | undefined {
  if (!r.ok || r.body === undefined) return undefined;
  try {
    return parseWhoami(r.body);
  } catch {
    return undefined;
  }
}

export interface Gap {
  /** From the event to the first answer of a request that started after it, ms. */
  gapMs: number;
  /** Requests started after the event, before the one that answered first, that failed. */
  failedInGap: number;
  /** ... and those that answered, but later than that first answer (a SYN retransmitted by TCP). */
  delayedInGap: number;
  /** The answer that ended the gap. */
  firstAnswer: LoopRecord;
}

/**
 * The failover gap as a client sees it: from the event (ms, same clock) to the earliest answer of a new
 * connection started after it. Requests run concurrently, so the earliest answer need not come from the earliest
 * request: one started in the gap may answer only after TCP retransmitted its SYN. Undefined while no request
 * started after the event has answered.
 */
export function gapAfter(records: readonly LoopRecord[], eventAt: number): Gap | undefined {
  const after = records.filter((r) => r.start >= eventAt);
  let first: LoopRecord | undefined;
  for (const r of after) if (r.ok && (first === undefined || r.end < first.end)) first = r;
  if (!first) return undefined;
  const before = after.filter((r) => r.start < first.start);
  return {
    gapMs: first.end - eventAt,
    failedInGap: before.filter((r) => !r.ok).length,
    delayedInGap: before.filter((r) => r.ok).length,
    firstAnswer: first,
  };
}
