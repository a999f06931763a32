// Which daemon error lines an injected fault explains. A line no rule covers is an unexplained error: the
// soak fails on it, because an error a person sees in the journal with no cause behind it is a defect
// (a bug, or a message that cries wolf). Each rule names the fault, the hosts it may show on, the message,
// and how long after the fault ended the line may still come.
//
// One cause is not injected but measured: the guest freezing for seconds when the machine is overloaded
// (the lab's single emulated CPU shares two cores with other work). A heartbeat in the guest shows such
// stalls; a daemon that could not renew its Lease across one has a cause, and the report counts them.
import type { FaultKind } from './generator.js';
import type { FaultRecord } from './fixture.js';
import type { LogError } from './invariants.js';

interface Rule {
  fault: FaultKind | 'guest-stall';
  /** 'hit': only on the hosts the fault hit; 'any': on every host. */
  where: 'hit' | 'any';
  msg: RegExp;
  /** How long after the fault's end the line may appear. */
  afterMs: number;
  why: string;
  /** Applies only on an emulated backend (slowdown > 1), where the cause is the lab's, not the product's. */
  emulatedOnly?: boolean;
}

export const RULES: readonly Rule[] = [
  { fault: 'vrrp-master-kill', where: 'hit', msg: /^keepalived exited\b/, afterMs: 30_000, why: 'the daemon reports its keepalived dying (docs/vrrp.md: log at error level)' },
  { fault: 'api-outage', where: 'any', msg: /^lease: could not renew within the renew deadline; stepping down$/, afterMs: 30_000, why: 'the allocator cannot renew its Lease while the API is down' },
  { fault: 'api-errors', where: 'any', msg: /^lease: could not renew within the renew deadline; stepping down$/, afterMs: 30_000, why: 'the allocator cannot renew its Lease while every request fails' },
  // Both LB hosts share the guest's CPUs. Under QEMU a restarted daemon's Node.js start-up takes about two
  // minutes of emulated CPU, and the peer's Lease renewals waited past their deadline meanwhile (seen with a
  // 10 s and with a 30 s deadline, no guest stall either time: the heartbeat's shell loop kept beating, the
  // peer's Node.js did not keep up).
  { fault: 'daemon-kill', where: 'any', msg: /^lease: could not renew within the renew deadline; stepping down$/, afterMs: 60_000, why: 'the restarted daemon starting up in the same emulated guest holds up the peer', emulatedOnly: true },
  { fault: 'guest-stall', where: 'any', msg: /^lease: could not renew within the renew deadline; stepping down$/, afterMs: 15_000, why: 'the guest was frozen for longer than the renew deadline' },
];

/** A stretch of time in which the guest's heartbeat did not beat. */
export interface Stall {
  from: number;
  to: number;
}

/**
 * Stalls longer than `minMs` in the heartbeat log: one wall-clock time (seconds, as bash's $EPOCHREALTIME
 * prints it) per line, written every 250 ms by a loop that forks nothing.
 */
export function findStalls(heartbeat: string, minMs = 2000): Stall[] {
  const out: Stall[] = [];
  let prev: number | undefined;
  for (const line of heartbeat.split('\n')) {
    const t = Number(line.trim().replace(',', '.')) * 1000;
    if (!Number.isFinite(t) || t <= 0) continue;
    if (prev !== undefined && t - prev >= minMs) out.push({ from: prev, to: t });
    prev = t;
  }
  return out;
}

/** The fault or stall (and the rule) that explains the line, if any. `slowdown` stretches how long after a
 * fault its consequences may show: under QEMU the guest runs the daemon's own code several times slower than
 * under UML (labTimeScale), so recovering from an outage takes longer too. */
export function explain(records: readonly FaultRecord[], e: LogError, stalls: readonly Stall[] = [], rules: readonly Rule[] = RULES, slowdown = 1): { record: FaultRecord | Stall; rule: Rule } | undefined {
  for (const stall of stalls) {
    for (const rule of rules) {
      if (rule.fault !== 'guest-stall' || !rule.msg.test(e.msg)) continue;
      if (e.time >= stall.from && e.time <= stall.to + rule.afterMs * slowdown) return { record: stall, rule };
    }
  }
  for (const record of records) {
    for (const rule of rules) {
      if (rule.fault !== record.fault.kind) continue;
      if (rule.emulatedOnly && slowdown <= 1) continue;
      if (rule.where === 'hit' && !record.hosts.includes(e.host)) continue;
      if (!rule.msg.test(e.msg)) continue;
      // A second of slack before: the guest and host clocks are the same clock, but log times are taken first.
      if (e.time < record.startedAt - 1000 || e.time > record.endedAt + rule.afterMs * slowdown) continue;
      return { record, rule };
    }
  }
  return undefined;
}
