// The record of which addresses ipvs-lb added. It is what makes "never remove an address we did not add"
// hold across restarts: unbind() deletes only addresses listed here. The daemon may inject its own store
// (e.g. the SQLite ledger); JsonFileOwnership is the small default (one JSON file in the state directory,
// replaced atomically so a crash leaves either the old or the new list, never a torn one).
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface OwnedVip {
  interface: string;
  /** Canonical address text. */
  address: string;
  prefixLength: number;
}

export interface VipOwnershipStore {
  load(): Promise<OwnedVip[]>;
  save(owned: readonly OwnedVip[]): Promise<void>;
}

export class MemoryOwnership implements VipOwnershipStore {
  private owned: OwnedVip[] = [];
  async load(): Promise<OwnedVip[]> {
    return this.owned.map((o) => ({ ...o }));
  }
  async save(owned: readonly OwnedVip[]): Promise<void> {
    this.owned = owned.map((o) => ({ ...o }));
  }
}

export class JsonFileOwnership implements VipOwnershipStore {
  constructor(readonly path: string) {}

  async load(): Promise<OwnedVip[]> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      throw new Error(`${this.path}: not valid JSON (${(e as Error).message}); refusing to guess which addresses are ours`);
    }
    const list = (doc as { owned?: unknown })?.owned;
    if (!Array.isArray(list)) throw new Error(`${this.path}: owned: must be a list (got ${JSON.stringify(list)})`);
    return list.map((o: unknown, i) => {
      const v = o as Partial<OwnedVip>;
      if (typeof v?.interface !== 'string' || typeof v.address !== 'string' || typeof v.prefixLength !== 'number') {
        throw new Error(`${this.path}: owned[${i}]: must have interface, address and prefixLength (got ${JSON.stringify(o)})`);
      }
      return { interface: v.interface, address: v.address, prefixLength: v.prefixLength };
    });
  }

  async save(owned: readonly OwnedVip[]): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify({ version: 1, owned }, null, 2)}\n`, { mode: 0o600 });
    await rename(tmp, this.path);
  }
}
