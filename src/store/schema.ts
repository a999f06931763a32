// The ledger's schema and its forward migrations. PRAGMA user_version is the schema version; migration N
// takes a database from version N to N+1 inside the opening transaction. A file from a newer version is
// refused rather than guessed at. application_id marks the file as ours, so pointing the daemon at another
// program's SQLite file fails instead of adding tables to it.
import type Database from 'better-sqlite3';

/** 'IVLB' */
export const APPLICATION_ID = 0x49564c42;

export const migrations: ((db: Database.Database) => void)[] = [
  // 0 → 1
  (db) => {
    db.exec(`
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

      -- One row per (Service, family). A shared address has one row per Service sharing it.
      CREATE TABLE allocations (
        service_uid  TEXT    NOT NULL,
        namespace    TEXT    NOT NULL,
        name         TEXT    NOT NULL,
        family       INTEGER NOT NULL CHECK (family IN (4, 6)),
        address      TEXT    NOT NULL,
        pool         TEXT    NOT NULL,
        sharing_key  TEXT,
        ports        TEXT    NOT NULL,          -- 'TCP/80,UDP/53', sorted
        allocated_at INTEGER NOT NULL,          -- ms since the epoch
        UNIQUE (service_uid, family)
      );
      CREATE INDEX allocations_by_address ON allocations (address);

      -- Defence in depth under the allocator: an address is on two Services only when both carry the same
      -- sharing key. A bug above this line aborts the transaction instead of persisting a duplicate.
      CREATE TRIGGER allocations_no_duplicate_insert BEFORE INSERT ON allocations
      WHEN EXISTS (SELECT 1 FROM allocations a WHERE a.address = NEW.address AND a.service_uid <> NEW.service_uid
                   AND (a.sharing_key IS NULL OR NEW.sharing_key IS NULL OR a.sharing_key <> NEW.sharing_key))
      BEGIN SELECT RAISE(ABORT, 'address already allocated to another Service without a common sharing key'); END;
      CREATE TRIGGER allocations_no_duplicate_update BEFORE UPDATE ON allocations
      WHEN EXISTS (SELECT 1 FROM allocations a WHERE a.address = NEW.address AND a.service_uid <> NEW.service_uid
                   AND (a.sharing_key IS NULL OR NEW.sharing_key IS NULL OR a.sharing_key <> NEW.sharing_key))
      BEGIN SELECT RAISE(ABORT, 'address already allocated to another Service without a common sharing key'); END;

      -- Released addresses wait here until 'until' before anyone else gets them.
      CREATE TABLE quarantine (
        address     TEXT    PRIMARY KEY,
        family      INTEGER NOT NULL CHECK (family IN (4, 6)),
        pool        TEXT    NOT NULL,
        until       INTEGER NOT NULL,           -- ms since the epoch
        released_by TEXT    NOT NULL            -- namespace/name
      ) WITHOUT ROWID;

      -- Append-only: every change to allocations and quarantine, why, by which host under which leader term.
      -- No AUTOINCREMENT and no secondary index: rows are never deleted (so ids only grow anyway), and
      -- each index would cost every allocation another b-tree insert; readers page by id.
      CREATE TABLE audit_log (
        id          INTEGER PRIMARY KEY,
        at          INTEGER NOT NULL,
        host        TEXT    NOT NULL,
        term        INTEGER NOT NULL,
        action      TEXT    NOT NULL CHECK (action IN ('allocate', 'update', 'release', 'unquarantine', 'pools')),
        reason      TEXT    NOT NULL,
        service_uid TEXT,
        service     TEXT,                       -- namespace/name
        family      INTEGER,
        address     TEXT,
        pool        TEXT,
        sharing_key TEXT,
        ports       TEXT,
        detail      TEXT
      );
      CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
      CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

      -- The pool configuration each time it changed, so an orphan can be traced to the edit that made it.
      CREATE TABLE pool_snapshots (
        id     INTEGER PRIMARY KEY AUTOINCREMENT,
        at     INTEGER NOT NULL,
        host   TEXT    NOT NULL,
        digest TEXT    NOT NULL,
        pools  TEXT    NOT NULL                 -- JSON
      );
    `);
  },
];

export const SCHEMA_VERSION = migrations.length;
