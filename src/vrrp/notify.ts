// Lines keepalived writes to notify_fifo, for example
//   INSTANCE "ga" MASTER 100
//   GROUP "sync1" BACKUP
//   INSTANCE "ga" FAULT 0
//   INSTANCE "ga" MASTER_RX_LOWER_PRI 150   (a master got an advert of lower priority: see lowerPriority)
// Names are quoted (and may hold spaces); older releases wrote them bare. Anything else (LVS lines, states we
// do not know) is not an event for us: the parser says so and the caller logs it at debug level.

export const vrrpStates = ['INIT', 'BACKUP', 'MASTER', 'FAULT', 'STOP', 'DELETED'] as const;
export type NotifiedState = (typeof vrrpStates)[number];

export interface NotifyEvent {
  kind: 'INSTANCE' | 'GROUP';
  name: string;
  state: NotifiedState;
  priority: number | undefined;
  /**
   * Not a state change: keepalived, master here, received an advert of lower priority, so the peer believed
   * itself master for a moment (a stalled host, a lost advert) and may have announced the VIPs as its own.
   * `state` is then MASTER.
   */
  lowerPriority?: true;
}

const lineRe = /^(INSTANCE|GROUP) (?:"((?:[^"\\]|\\.)*)"|([^\s"]+)) ([A-Z_]+)(?: (\d{1,3}))?$/;

export function parseNotifyLine(line: string): NotifyEvent | undefined {
  const m = lineRe.exec(line.trim());
  if (!m) return undefined;
  const lowerPriority = m[4] === 'MASTER_RX_LOWER_PRI';
  const state = (lowerPriority ? 'MASTER' : m[4]) as NotifiedState;
  if (!(vrrpStates as readonly string[]).includes(state)) return undefined;
  const name = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!;
  const e: NotifyEvent = { kind: m[1] as 'INSTANCE' | 'GROUP', name, state, priority: m[5] === undefined ? undefined : Number(m[5]) };
  return lowerPriority ? { ...e, lowerPriority: true } : e;
}

/** Splits a byte stream into lines; a line longer than `maxLine` is dropped rather than buffered forever. */
export class LineSplitter {
  private buf = '';
  private skipping = false;
  constructor(private readonly maxLine = 4096) {}

  push(chunk: string): string[] {
    const parts = (this.buf + chunk).split('\n');
    this.buf = parts.pop()!;
    const lines: string[] = [];
    for (const p of parts) {
      if (this.skipping) this.skipping = false;
      else lines.push(p);
    }
    if (this.buf.length > this.maxLine) {
      this.buf = '';
      this.skipping = true;
    }
    return lines;
  }
}
