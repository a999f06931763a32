// An etcd-like store: one global revision counter, objects keyed by storage and namespace/name, and a
// bounded history of changes from which watches resume and paginated lists read consistent snapshots.
// Everything older than the history window is "compacted": asking for it gives 410 Gone.
import { clone, type JsonObject } from './json.js';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface Change {
  rv: number;
  type: EventType;
  storage: string;
  key: string;
  /** The object after the change (for DELETED: the object as deleted, with the deletion's revision). */
  object: JsonObject;
  /** The object before the change, for snapshots and for selector transitions in watches. */
  prev: JsonObject | undefined;
}

export type Listener = (c: Change) => void;

export class Store {
  private rv = 1;
  private readonly data = new Map<string, Map<string, JsonObject>>();
  private history: Change[] = [];
  /** Index of the oldest live change in `history`. */
  private head = 0;
  /** Changes at or below this revision are gone from history. */
  private compactedRv = 1;
  private readonly listeners = new Map<string, Set<Listener>>();

  constructor(private window: number) {}

  get revision(): number {
    return this.rv;
  }

  get compacted(): number {
    return this.compactedRv;
  }

  setWindow(n: number): void {
    this.window = n;
    this.trim();
  }

  get(storage: string, key: string): JsonObject | undefined {
    return this.data.get(storage)?.get(key);
  }

  /** Current objects of a storage, in key order (etcd returns ranges sorted by key). */
  list(storage: string): [string, JsonObject][] {
    return [...(this.data.get(storage) ?? new Map<string, JsonObject>())].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  count(storage: string): number {
    return this.data.get(storage)?.size ?? 0;
  }

  /** The storage's objects as they were at revision `rv`, or undefined when that revision is compacted. */
  snapshotAt(storage: string, rv: number): [string, JsonObject][] | undefined {
    if (rv >= this.rv) return this.list(storage);
    if (rv < this.compactedRv) return undefined;
    const m = new Map(this.data.get(storage) ?? []);
    for (let i = this.history.length - 1; i >= this.head && this.history[i]!.rv > rv; i--) {
      const c = this.history[i]!;
      if (c.storage !== storage) continue;
      if (c.prev) m.set(c.key, c.prev);
      else m.delete(c.key);
    }
    return [...m].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  /** Changes of a storage after revision `rv`, or undefined when some of them are compacted. */
  changesSince(storage: string, rv: number): Change[] | undefined {
    if (rv < this.compactedRv) return undefined;
    const out: Change[] = [];
    for (let i = this.history.length - 1; i >= this.head && this.history[i]!.rv > rv; i--) {
      if (this.history[i]!.storage === storage) out.push(this.history[i]!);
    }
    return out.reverse();
  }

  /**
   * Writes `object` (undefined deletes) and stamps it with the next revision. Returns the stored object;
   * callers must not mutate it afterwards.
   */
  write(storage: string, key: string, object: JsonObject | undefined): JsonObject {
    let bucket = this.data.get(storage);
    if (!bucket) this.data.set(storage, (bucket = new Map()));
    const prev = bucket.get(key);
    this.rv++;
    let stored: JsonObject;
    let type: EventType;
    if (object === undefined) {
      if (!prev) throw new Error(`delete of missing ${storage} ${key}`);
      stored = clone(prev);
      (stored.metadata as JsonObject).resourceVersion = String(this.rv);
      bucket.delete(key);
      type = 'DELETED';
    } else {
      stored = object;
      (stored.metadata as JsonObject).resourceVersion = String(this.rv);
      bucket.set(key, stored);
      type = prev ? 'MODIFIED' : 'ADDED';
    }
    const change: Change = { rv: this.rv, type, storage, key, object: stored, prev };
    this.history.push(change);
    this.trim();
    for (const l of this.listeners.get(storage) ?? []) l(change);
    return stored;
  }

  /** Drops all history: every watch or continue token from before now gets 410 Gone. */
  compact(): void {
    this.history = [];
    this.head = 0;
    this.compactedRv = this.rv;
  }

  /** Forgets all objects (the revision counter keeps counting, so no client sees a revision twice). */
  wipe(): void {
    this.data.clear();
    this.compact();
  }

  subscribe(storage: string, l: Listener): () => void {
    let set = this.listeners.get(storage);
    if (!set) this.listeners.set(storage, (set = new Set()));
    set.add(l);
    return () => set.delete(l);
  }

  private trim(): void {
    const excess = this.history.length - this.head - this.window;
    if (excess > 0) {
      this.head += excess;
      this.compactedRv = this.history[this.head - 1]!.rv;
    }
    // Drop the dead prefix in batches so that a write costs O(1) on average.
    if (this.head > 1024 && this.head * 2 > this.history.length) {
      this.history = this.history.slice(this.head);
      this.head = 0;
    }
  }
}
