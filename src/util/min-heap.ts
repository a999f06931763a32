// A binary min-heap ordered by a numeric key read from each entry. Entries are never removed from the middle:
// owners that reschedule or cancel leave stale entries, recognise them when they surface and skip them.
export class MinHeap<T> {
  private items: T[] = [];

  constructor(private readonly keyOf: (e: T) => number) {}

  get length(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  clear(): void {
    this.items = [];
  }

  push(e: T): void {
    const a = this.items;
    const k = this.keyOf;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (k(a[p]!) <= k(a[i]!)) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }

  pop(): T | undefined {
    const a = this.items;
    const k = this.keyOf;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && k(a[l]!) < k(a[m]!)) m = l;
        if (r < a.length && k(a[r]!) < k(a[m]!)) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }
}
