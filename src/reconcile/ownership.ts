// The record of the virtual services this daemon created, so that it never touches one it did not create
// (the LB host may carry other IPVS services) and still removes its own after a restart. Written atomically.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export class OwnedServices {
  private readonly keys: Set<string>;

  constructor(private readonly path: string) {
    let list: unknown = [];
    try {
      list = (JSON.parse(readFileSync(path, 'utf8')) as { services?: unknown }).services;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new Error(`${path}: cannot read the record of owned IPVS services (${(err as Error).message}); refusing to guess which services are ours`);
      }
    }
    if (!Array.isArray(list) || list.some((k) => typeof k !== 'string')) throw new Error(`${path}: services: must be a list of keys (got ${JSON.stringify(list)})`);
    this.keys = new Set(list as string[]);
  }

  has(key: string): boolean {
    return this.keys.has(key);
  }

  get size(): number {
    return this.keys.size;
  }

  /** Applies additions and removals; writes only when something changed. */
  update(added: readonly string[], removed: readonly string[]): void {
    let changed = false;
    for (const k of added) {
      if (this.keys.has(k)) continue;
      this.keys.add(k);
      changed = true;
    }
    for (const k of removed) changed = this.keys.delete(k) || changed;
    if (!changed) return;
    mkdirSync(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, `${JSON.stringify({ services: [...this.keys].sort() }, null, 1)}\n`, { mode: 0o640 });
    renameSync(tmp, this.path);
  }
}
