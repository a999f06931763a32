// A set of bigints kept as sorted, disjoint, non-adjacent [start, end] intervals. Lowest-free allocation
// fills addresses in order, so 100k allocations usually collapse into a handful of intervals, and "smallest
// value not in the set at or above x" is one binary search. Nothing is ever enumerated, so a /64 costs the
// same as a /24.
export class IntervalSet {
  private starts: bigint[] = [];
  private ends: bigint[] = [];
  private count = 0n;

  /** Builds from values in ascending order (duplicates allowed) in one pass. */
  static fromSorted(values: Iterable<bigint>): IntervalSet {
    const s = new IntervalSet();
    for (const v of values) {
      const n = s.ends.length;
      if (n > 0 && s.ends[n - 1]! >= v) continue;
      if (n > 0 && s.ends[n - 1]! + 1n === v) s.ends[n - 1] = v;
      else {
        s.starts.push(v);
        s.ends.push(v);
      }
      s.count++;
    }
    return s;
  }

  get size(): bigint {
    return this.count;
  }

  get intervalCount(): number {
    return this.starts.length;
  }

  /** Index of the last interval starting at or below v, or -1. */
  private floor(v: bigint): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.starts[mid]! <= v) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  has(v: bigint): boolean {
    const i = this.floor(v);
    return i >= 0 && this.ends[i]! >= v;
  }

  /** Smallest value >= v that is not in the set. */
  nextAbsent(v: bigint): bigint {
    const i = this.floor(v);
    // Intervals never touch, so the value after one interval's end is always absent.
    return i >= 0 && this.ends[i]! >= v ? this.ends[i]! + 1n : v;
  }

  add(v: bigint): boolean {
    const i = this.floor(v);
    if (i >= 0 && this.ends[i]! >= v) return false;
    const joinLeft = i >= 0 && this.ends[i]! + 1n === v;
    const joinRight = i + 1 < this.starts.length && this.starts[i + 1]! === v + 1n;
    if (joinLeft && joinRight) {
      this.ends[i] = this.ends[i + 1]!;
      this.starts.splice(i + 1, 1);
      this.ends.splice(i + 1, 1);
    } else if (joinLeft) this.ends[i] = v;
    else if (joinRight) this.starts[i + 1] = v;
    else {
      this.starts.splice(i + 1, 0, v);
      this.ends.splice(i + 1, 0, v);
    }
    this.count++;
    return true;
  }

  delete(v: bigint): boolean {
    const i = this.floor(v);
    if (i < 0 || this.ends[i]! < v) return false;
    const start = this.starts[i]!;
    const end = this.ends[i]!;
    if (start === end) {
      this.starts.splice(i, 1);
      this.ends.splice(i, 1);
    } else if (v === start) this.starts[i] = v + 1n;
    else if (v === end) this.ends[i] = v - 1n;
    else {
      this.ends[i] = v - 1n;
      this.starts.splice(i + 1, 0, v + 1n);
      this.ends.splice(i + 1, 0, end);
    }
    this.count--;
    return true;
  }
}
