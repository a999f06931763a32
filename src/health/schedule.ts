// When each probe target is due. Targets run at a fixed rate (the next run is one interval after the previous
// one was due, not after it finished), start spread over their first interval by a hash of their key (so
// thousands of targets never fire at once), and never run twice at the same time. The caller asks for due
// targets with a limit (free concurrency) and reports each one done. Pure: time is a parameter.
import { MinHeap } from '../util/min-heap.js';

interface Item {
  key: string;
  intervalMs: number;
  dueAt: number;
  busy: boolean;
  /** Bumped when the item is rescheduled, so stale heap entries are skipped. */
  gen: number;
}

interface Entry {
  at: number;
  key: string;
  gen: number;
}

/** FNV-1a: a stable spread of start times per key. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export class ProbeScheduler {
  private readonly items = new Map<string, Item>();
  private readonly heap = new MinHeap<Entry>((e) => e.at);
  /** Runs started later than one interval after they were due (the concurrency bound was too small). */
  late = 0;

  get size(): number {
    return this.items.size;
  }

  /** The targets as they are now: new ones are added (jittered), intervals updated, missing ones dropped. */
  sync(targets: Iterable<{ key: string; intervalMs: number }>, now: number): void {
    const seen = new Set<string>();
    for (const t of targets) {
      seen.add(t.key);
      const it = this.items.get(t.key);
      if (!it) {
        const item: Item = { key: t.key, intervalMs: t.intervalMs, dueAt: now + (hash32(t.key) % Math.max(1, t.intervalMs)), busy: false, gen: 0 };
        this.items.set(t.key, item);
        this.push(item);
      } else if (it.intervalMs !== t.intervalMs) {
        const shorter = t.intervalMs < it.intervalMs;
        it.intervalMs = t.intervalMs;
        if (shorter && !it.busy && it.dueAt > now + t.intervalMs) {
          it.dueAt = now + (hash32(t.key) % t.intervalMs);
          it.gen++;
          this.push(it);
        }
      }
    }
    for (const key of [...this.items.keys()]) if (!seen.has(key)) this.items.delete(key);
    // Drop stale entries in one go when they dominate, so churn cannot grow the heap without bound.
    if (this.heap.length > 4 * this.items.size + 1024) this.rebuild();
  }

  has(key: string): boolean {
    return this.items.has(key);
  }

  /** Due targets (dueAt <= now), earliest first, at most `limit`; each is marked busy until done(). */
  takeDue(now: number, limit: number): string[] {
    const out: string[] = [];
    while (out.length < limit && this.heap.length > 0 && this.heap.peek()!.at <= now) {
      const e = this.pop()!;
      const it = this.items.get(e.key);
      if (!it || it.gen !== e.gen || it.busy) continue;
      if (now - it.dueAt > it.intervalMs) this.late++;
      it.busy = true;
      out.push(it.key);
    }
    return out;
  }

  /** The run of `key` finished: schedule the next one interval after this one was due. */
  done(key: string, now: number): void {
    const it = this.items.get(key);
    if (!it) return;
    it.busy = false;
    let next = it.dueAt + it.intervalMs;
    // Fell behind by more than an interval: start again from now rather than firing a backlog.
    if (next < now) next = now + Math.min(it.intervalMs, 10);
    it.dueAt = next;
    it.gen++;
    this.push(it);
  }

  /** The earliest due time of an idle target, or undefined when nothing is scheduled. */
  nextAt(): number | undefined {
    while (this.heap.length > 0) {
      const e = this.heap.peek()!;
      const it = this.items.get(e.key);
      if (it && it.gen === e.gen && !it.busy) return e.at;
      this.pop();
    }
    return undefined;
  }

  private rebuild(): void {
    this.heap.clear();
    for (const it of this.items.values()) {
      it.gen++;
      if (!it.busy) this.push(it);
    }
  }

  private push(it: Item): void {
    this.heap.push({ at: it.dueAt, key: it.key, gen: it.gen });
  }

  private pop(): Entry | undefined {
    return this.heap.pop();
  }
}
