// A binary min-heap of quarantine entries by expiry time. Entries are never removed from the middle: a
// quarantine ended early (the same Service asked for its address back) leaves a stale entry that the owner
// of the heap recognises and skips when it surfaces.
import type { QuarantineEntry } from './types.js';

export class ExpiryHeap {
  private items: QuarantineEntry[] = [];

  get length(): number {
    return this.items.length;
  }

  peek(): QuarantineEntry | undefined {
    return this.items[0];
  }

  push(e: QuarantineEntry): void {
    const a = this.items;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]!.until <= a[i]!.until) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }

  pop(): QuarantineEntry | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l]!.until < a[m]!.until) m = l;
        if (r < a.length && a[r]!.until < a[m]!.until) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }
}
