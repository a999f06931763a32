// The durable record of every allocation: better-sqlite3 in WAL mode with synchronous=FULL, so a committed
// transaction survives kill -9 and power loss, and a burst of allocations costs one fsync. One writer: the
// connection runs in EXCLUSIVE locking mode and takes the write lock at open, so a second daemon on the same
// file fails at start-up with LOCKED (the kernel drops the lock when the holder dies, even by SIGKILL, so
// there is no stale lock file to clean up).
import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import type { PoolConfig } from '../config/types.js';
import { type Family, parseIp } from '../ipam/address.js';
import type { Allocation, Change, QuarantineEntry } from '../ipam/types.js';
import { LedgerError, ledgerErrorFrom } from './errors.js';
import { APPLICATION_ID, SCHEMA_VERSION, migrations } from './schema.js';

export interface LedgerOptions {
  /** This LB host's name, written into the audit log. */
  host: string;
  /** Open for reading only (the CLI while the daemon is down): no migration, no writes. */
  readonly?: boolean;
}

/** Who made a change: the audit log records it with every row. */
export interface ChangeContext {
  now: number;
  /** The allocator Lease's term (leaseTransitions) under which the change was made; 0 outside leadership. */
  term: number;
}

export interface AuditRow {
  id: number;
  at: number;
  host: string;
  term: number;
  action: string;
  reason: string;
  serviceUid: string | null;
  service: string | null;
  family: number | null;
  address: string | null;
  pool: string | null;
  sharingKey: string | null;
  ports: string | null;
  detail: string | null;
}

interface QuarantineRow {
  address: string;
  family: number;
  pool: string;
  until: number;
  released_by: string;
}

const valueOf = (address: string, family: number, path: string): bigint => {
  const ip = parseIp(address);
  if (!ip || ip.family !== family) throw new LedgerError('CORRUPT', path, `a row holds "${address}", which is not an IPv${family} address`);
  return ip.value;
};

/** A stable digest of the pool configuration, for snapshots. */
export function poolsDigest(pools: readonly PoolConfig[]): { digest: string; json: string } {
  const json = JSON.stringify(pools.map((p) => ({ ...p, addresses: p.addresses.map((r) => r.text) })));
  return { digest: createHash('sha256').update(json).digest('hex').slice(0, 16), json };
}

function checkTables(db: Database.Database, tables: string[]): string {
  for (const t of tables) {
    const r = db.pragma(`quick_check(${t})`, { simple: true });
    if (r !== 'ok') return `${t}: ${String(r)}`;
  }
  return 'ok';
}

export class Ledger {
  private constructor(
    private readonly db: Database.Database,
    readonly path: string,
    private readonly host: string,
    readonly readonly: boolean,
  ) {}

  /** Opens (or creates, when the file does not exist) the ledger; throws LedgerError for every bad file. */
  static open(path: string, opts: LedgerOptions): Ledger {
    let db: Database.Database;
    try {
      // timeout 0: a locked ledger is an error to report now, not a wait.
      db = new Database(path, { timeout: 0, fileMustExist: opts.readonly === true });
    } catch (err) {
      const e = ledgerErrorFrom(err, path, 'opening');
      throw e instanceof LedgerError ? e : new LedgerError('CANNOT_OPEN', path, `opening: ${(err as Error).message}`);
    }
    try {
      if (!opts.readonly) {
        // Must be set before the first WAL access: SQLite then keeps the WAL index in heap memory and holds
        // the file lock for the life of the connection.
        db.pragma('locking_mode = EXCLUSIVE');
      }
      const appId = db.pragma('application_id', { simple: true }) as number;
      const version = db.pragma('user_version', { simple: true }) as number;
      const tables = (db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").get() as { n: number }).n;
      if (appId !== APPLICATION_ID && (appId !== 0 || tables > 0 || version !== 0)) {
        throw new LedgerError('NOT_A_LEDGER', path, `this SQLite file belongs to another application (application_id ${appId}, ${tables} tables); refusing to touch it`);
      }
      if (version > SCHEMA_VERSION) {
        throw new LedgerError('SCHEMA_TOO_NEW', path, `schema version ${version} was written by a newer ipvs-lb; this version knows up to ${SCHEMA_VERSION}`);
      }
      // Before any write: a damaged file is reported exactly as found.
      // Limited to the tables start-up depends on: the append-only audit log grows without bound, and a
      // whole-file check would make every start slower over the years. Damage elsewhere surfaces as
      // SQLITE_CORRUPT on first use and is reported the same way.
      const check = version === 0 ? 'ok' : checkTables(db, ['allocations', 'quarantine', 'meta']);
      if (check !== 'ok') throw new LedgerError('CORRUPT', path, `integrity check failed: ${String(check)}; restore a backup or move the file away deliberately`);
      if (opts.readonly) {
        if (version < SCHEMA_VERSION) throw new LedgerError('UNWRITABLE', path, `schema version ${version} needs migrating to ${SCHEMA_VERSION}, which a read-only open cannot do; start the daemon once`);
        db.pragma('query_only = ON');
      } else {
        const mode = db.pragma('journal_mode = WAL', { simple: true });
        if (mode !== 'wal') throw new LedgerError('UNWRITABLE', path, `cannot switch to WAL mode (got ${String(mode)}); is the file or its directory read-only?`);
        db.pragma('synchronous = FULL');
        // Enough cache for the allocations table and its indexes at 100k+ rows, so bursts do not re-read pages.
        db.pragma('cache_size = -65536');
        // Take the write lock now, so that a second daemon fails here rather than at its first allocation.
        db.exec('BEGIN EXCLUSIVE');
        try {
          for (let v = version; v < SCHEMA_VERSION; v++) migrations[v]!(db);
          if (version === 0) {
            db.pragma(`application_id = ${APPLICATION_ID}`);
            db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)').run('created', JSON.stringify({ at: Date.now(), host: opts.host }));
          }
          db.pragma(`user_version = ${SCHEMA_VERSION}`);
          // A real write on every open: an unwritable file or directory shows up now, not mid-storm.
          db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)').run('last_open', JSON.stringify({ at: Date.now(), host: opts.host }));
          db.exec('COMMIT');
        } catch (err) {
          if (db.inTransaction) db.exec('ROLLBACK');
          throw err;
        }
      }
    } catch (err) {
      db.close();
      throw ledgerErrorFrom(err, path, 'opening');
    }
    return new Ledger(db, path, opts.host, opts.readonly === true);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  get schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  /** Everything the allocator needs to resume: allocations and running quarantines. */
  load(): { allocations: Allocation[]; quarantine: QuarantineEntry[] } {
    try {
      // Arrays instead of row objects: a 100k ledger loads in a fraction of the time and memory.
      const rows = this.db
        .prepare('SELECT service_uid, namespace, name, family, address, pool, sharing_key, ports, allocated_at FROM allocations')
        .raw(true)
        .all() as [string, string, string, number, string, string, string | null, string, number][];
      const allocations = rows.map(
        (r): Allocation => ({
          uid: r[0],
          namespace: r[1],
          name: r[2],
          family: r[3] as Family,
          address: r[4],
          value: valueOf(r[4], r[3], this.path),
          pool: r[5],
          sharingKey: r[6] ?? undefined,
          ports: r[7] === '' ? [] : r[7].split(','),
          allocatedAt: r[8],
        }),
      );
      const quarantine = (this.db.prepare('SELECT * FROM quarantine').all() as QuarantineRow[]).map(
        (r): QuarantineEntry => ({
          family: r.family as Family,
          address: r.address,
          value: valueOf(r.address, r.family, this.path),
          pool: r.pool,
          until: r.until,
          releasedBy: r.released_by,
        }),
      );
      return { allocations, quarantine };
    } catch (err) {
      throw ledgerErrorFrom(err, this.path, 'loading');
    }
  }

  private stmts?: ReturnType<Ledger['prepare']>;
  private prepare() {
    const db = this.db;
    return {
      insert: db.prepare(
        'INSERT INTO allocations (service_uid, namespace, name, family, address, pool, sharing_key, ports, allocated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      update: db.prepare('UPDATE allocations SET namespace = ?, name = ?, address = ?, pool = ?, sharing_key = ?, ports = ? WHERE service_uid = ? AND family = ?'),
      remove: db.prepare('DELETE FROM allocations WHERE service_uid = ? AND family = ? AND address = ?'),
      quarantine: db.prepare('INSERT OR REPLACE INTO quarantine (address, family, pool, until, released_by) VALUES (?, ?, ?, ?, ?)'),
      unquarantine: db.prepare('DELETE FROM quarantine WHERE address = ?'),
      audit: db.prepare(
        'INSERT INTO audit_log (at, host, term, action, reason, service_uid, service, family, address, pool, sharing_key, ports, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      lastSnapshot: db.prepare('SELECT digest FROM pool_snapshots ORDER BY id DESC LIMIT 1'),
      snapshot: db.prepare('INSERT INTO pool_snapshots (at, host, digest, pools) VALUES (?, ?, ?, ?)'),
    };
  }
  private get s() {
    if (this.readonly) throw new LedgerError('UNWRITABLE', this.path, 'opened read-only');
    return (this.stmts ??= this.prepare());
  }

  /**
   * Writes a burst of changes as one transaction (one fsync). Returns only after the commit is durable;
   * only then may the caller report the addresses (Service status, stdout, API).
   */
  apply(changes: readonly Change[], ctx: ChangeContext): void {
    if (changes.length === 0) return;
    const s = this.s;
    const audit = (action: string, reason: string, a: Allocation | undefined, q: QuarantineEntry | undefined, detail: string | null) =>
      s.audit.run(
        ctx.now, this.host, ctx.term, action, reason,
        a?.uid ?? null, a ? `${a.namespace}/${a.name}` : (q?.releasedBy ?? null),
        a?.family ?? q?.family ?? null, a?.address ?? q?.address ?? null, a?.pool ?? q?.pool ?? null,
        a?.sharingKey ?? null, a ? a.ports.join(',') : null, detail,
      );
    const tx = this.db.transaction(() => {
      for (const c of changes) {
        switch (c.kind) {
          case 'allocate': {
            const a = c.allocation;
            // The engine emits an 'unquarantine' change before it hands out a quarantined address.
            s.insert.run(a.uid, a.namespace, a.name, a.family, a.address, a.pool, a.sharingKey ?? null, a.ports.join(','), a.allocatedAt);
            audit('allocate', c.reason, a, undefined, null);
            break;
          }
          case 'update': {
            const a = c.allocation;
            s.update.run(a.namespace, a.name, a.address, a.pool, a.sharingKey ?? null, a.ports.join(','), a.uid, a.family);
            audit('update', c.reason, a, undefined, null);
            break;
          }
          case 'release': {
            const a = c.allocation;
            s.remove.run(a.uid, a.family, a.address);
            const q = c.quarantine;
            if (q) s.quarantine.run(q.address, q.family, q.pool, q.until, q.releasedBy);
            audit('release', c.reason, a, undefined, q ? JSON.stringify({ quarantineUntil: q.until }) : null);
            break;
          }
          case 'unquarantine':
            s.unquarantine.run(c.entry.address);
            audit('unquarantine', c.reason, undefined, c.entry, null);
            break;
        }
      }
    });
    try {
      tx.immediate();
    } catch (err) {
      throw ledgerErrorFrom(err, this.path, 'writing allocations');
    }
  }

  /** Records the pool configuration when it differs from the last snapshot; true when a row was written. */
  recordPools(pools: readonly PoolConfig[], ctx: ChangeContext): boolean {
    const s = this.s;
    const { digest, json } = poolsDigest(pools);
    const last = s.lastSnapshot.get() as { digest: string } | undefined;
    if (last?.digest === digest) return false;
    try {
      this.db.transaction(() => {
        s.snapshot.run(ctx.now, this.host, digest, json);
        s.audit.run(ctx.now, this.host, ctx.term, 'pools', 'PoolsChanged', null, null, null, null, null, null, null, JSON.stringify({ digest, pools: pools.map((p) => p.name) }));
      }).immediate();
    } catch (err) {
      throw ledgerErrorFrom(err, this.path, 'writing a pool snapshot');
    }
    return true;
  }

  /** The audit log, newest first, paged by id. */
  audit(opts: { limit?: number; beforeId?: number; serviceUid?: string; address?: string } = {}): AuditRow[] {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (opts.beforeId !== undefined) {
      where.push('id < ?');
      args.push(opts.beforeId);
    }
    if (opts.serviceUid !== undefined) {
      where.push('service_uid = ?');
      args.push(opts.serviceUid);
    }
    if (opts.address !== undefined) {
      where.push('address = ?');
      args.push(opts.address);
    }
    args.push(opts.limit ?? 100);
    const rows = this.db
      .prepare(`SELECT * FROM audit_log ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`)
      .all(...args) as Record<string, unknown>[];
    return rows.map((r) => ({
      id: r.id as number, at: r.at as number, host: r.host as string, term: r.term as number, action: r.action as string,
      reason: r.reason as string, serviceUid: r.service_uid as string | null, service: r.service as string | null,
      family: r.family as number | null, address: r.address as string | null, pool: r.pool as string | null,
      sharingKey: r.sharing_key as string | null, ports: r.ports as string | null, detail: r.detail as string | null,
    }));
  }

  poolSnapshots(limit = 20): { id: number; at: number; host: string; digest: string; pools: unknown }[] {
    return (this.db.prepare('SELECT * FROM pool_snapshots ORDER BY id DESC LIMIT ?').all(limit) as { id: number; at: number; host: string; digest: string; pools: string }[]).map(
      (r) => ({ ...r, pools: JSON.parse(r.pools) as unknown }),
    );
  }
}
