// Nothing of a lab run may outlive it on the host: not the VM's processes, not UML's RAM file under /dev/shm,
// not the run directory. Each run registers what it owns here; the registry kills and removes it when the
// run ends, when the parent process exits, and when the parent gets SIGINT/SIGTERM/SIGHUP (the VM runs in
// its own process group, so a terminal's Ctrl-C would not reach it otherwise). Runs whose parent was
// SIGKILLed are swept by the next run: every lab directory carries its owner's PID.
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LAB_PREFIX } from './paths.js';

export const OWNER_FILE = '.owner-pid';

interface Owned {
  pgid?: number;
  dirs: string[];
}

const owned = new Set<Owned>();
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
let installed = false;

function releaseAll(): void {
  for (const o of owned) releaseNow(o);
}

function onSignal(sig: NodeJS.Signals): void {
  releaseAll();
  uninstall();
  // Re-raise with the default disposition so the parent still dies of the signal it was sent.
  process.kill(process.pid, sig);
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', releaseAll);
  for (const s of SIGNALS) process.on(s, onSignal);
}

function uninstall(): void {
  if (!installed) return;
  installed = false;
  process.off('exit', releaseAll);
  for (const s of SIGNALS) process.off(s, onSignal);
}

/**
 * Waits (synchronously, at most 3 s) until the killed group leader has stopped running: a killed QEMU takes a
 * moment to tear down its threads and guest memory, and a parent that exits at once would otherwise leave it
 * visible for that moment. A zombie (no command line) counts as gone: nothing reaps it while we wait.
 */
function waitGone(pid: number): void {
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const end = Date.now() + 3000;
  while (Date.now() < end) {
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    } catch {
      return;
    }
    if (cmdline.length === 0) return;
    Atomics.wait(nap, 0, 0, 20);
  }
}

/** Kills the process group (if any) and removes the directories, synchronously. Idempotent. */
function releaseNow(o: Owned): void {
  if (o.pgid !== undefined) {
    try {
      process.kill(-o.pgid, 'SIGKILL');
      waitGone(o.pgid);
    } catch {
      // already gone
    }
    o.pgid = undefined;
  }
  for (const d of o.dirs) rmSync(d, { recursive: true, force: true });
  o.dirs = [];
  owned.delete(o);
  if (owned.size === 0) uninstall();
}

export interface Ownership {
  setProcessGroup(pgid: number | undefined): void;
  addDir(dir: string): void;
  /** Stops tracking a directory without removing it (the caller keeps it). */
  forgetDir(dir: string): void;
  release(): void;
}

export function own(): Ownership {
  const o: Owned = { dirs: [] };
  owned.add(o);
  install();
  return {
    setProcessGroup: (pgid) => {
      o.pgid = pgid;
    },
    addDir: (dir) => {
      writeFileSync(join(dir, OWNER_FILE), `${process.pid}\n`);
      o.dirs.push(dir);
    },
    forgetDir: (dir) => {
      o.dirs = o.dirs.filter((d) => d !== dir);
    },
    release: () => releaseNow(o),
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The directories where lab runs create their private directories. */
export function labTempRoots(): string[] {
  return [tmpdir(), '/dev/shm'];
}

/** Removes lab directories left by processes that no longer exist (a SIGKILLed test run). */
export function sweepStale(): string[] {
  const removed: string[] = [];
  for (const root of labTempRoots()) {
    let names: string[];
    try {
      names = readdirSync(root);
    } catch {
      continue;
    }
    for (const name of names) {
      if (!name.startsWith(LAB_PREFIX)) continue;
      const dir = join(root, name);
      const ownerFile = join(dir, OWNER_FILE);
      if (!existsSync(ownerFile)) continue;
      const pid = Number.parseInt(readFileSync(ownerFile, 'utf8'), 10);
      if (Number.isInteger(pid) && pid > 0 && !alive(pid)) {
        rmSync(dir, { recursive: true, force: true });
        removed.push(dir);
      }
    }
  }
  return removed;
}
