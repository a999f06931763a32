// Runs keepalived as a child of the daemon. The daemon owns the VIPs, so it must know the instant keepalived
// is gone (the child's exit event), not after a unit manager notices. keepalived runs in the foreground
// (-n), VRRP only (-P), logging to its stdout (-l -D), which we forward to the daemon's log.
//
// Restarts use exponential backoff with jitter; the attempt counter resets after a stable run. When the
// keepalived parent dies by SIGKILL its VRRP child lives on for a few seconds (measured: ~2.5 s with 2.2.7)
// and keeps advertising, so before a restart the leftovers named by our pid files are terminated; SIGTERM
// makes them send a priority-0 advert, which hands the group to the peer at once.
//
// A daemon that was SIGKILLed leaves its keepalived running (that keepalived puts the host in FAULT through
// the daemon tracker). The next daemon *adopts* it instead of restarting it, so a MASTER stays MASTER across
// a daemon restart; an adopted process is watched by polling, since it is not our child.
import { readFile } from 'node:fs/promises';
import { EventEmitter } from 'node:events';
import { execa, type ResultPromise } from 'execa';
import type { Logger } from '../util/log.js';
import { backoffDelay, defaultBackoff, type BackoffPolicy } from './backoff.js';
import type { KeepalivedPaths } from './render.js';

export interface SupervisorOptions {
  keepalivedPath: string;
  paths: KeepalivedPaths;
  /** Network namespace for keepalived (`-s NAME`); unset = the daemon's own. */
  netns?: string | undefined;
  backoff?: BackoffPolicy;
  /** A run at least this long resets the backoff. */
  stableAfterMs?: number;
  /** SIGTERM → SIGKILL grace on stop. */
  stopTimeoutMs?: number;
  /** How often an adopted keepalived is checked for life. */
  adoptPollMs?: number;
  random?: () => number;
  log: Logger;
}

export interface ExitInfo {
  code: number | null;
  signal: string | null;
  /** The last lines keepalived printed, for the report. */
  lastLines: string[];
}

interface Events {
  started: [{ pid: number; adopted: boolean }];
  exited: [ExitInfo];
  'restart-scheduled': [{ delayMs: number; attempt: number }];
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid in `pidFile` if it is a live keepalived started with our config file (guards against pid reuse). */
export async function keepalivedFromPidFile(pidFile: string, configPath: string): Promise<number | undefined> {
  let pid: number;
  try {
    pid = Number((await readFile(pidFile, 'utf8')).trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  try {
    const comm = (await readFile(`/proc/${pid}/comm`, 'utf8')).trim();
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    if (comm !== 'keepalived' || !argv.includes(configPath)) return undefined;
  } catch {
    return undefined;
  }
  return pid;
}

export class KeepalivedSupervisor extends EventEmitter<Events> {
  private child: ResultPromise | undefined;
  private adoptedPid: number | undefined;
  private adoptTimer: NodeJS.Timeout | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private startedAt = 0;
  private stopping = false;
  private lastLines: string[] = [];
  private readonly o: Required<Omit<SupervisorOptions, 'netns'>> & { netns: string | undefined };
  /** Count of unexpected exits, for metrics. */
  crashes = 0;

  constructor(opts: SupervisorOptions) {
    super();
    this.o = {
      backoff: defaultBackoff,
      stableAfterMs: 10_000,
      stopTimeoutMs: 5_000,
      adoptPollMs: 250,
      random: Math.random,
      ...opts,
      netns: opts.netns,
    };
  }

  get pid(): number | undefined {
    return this.child?.pid ?? this.adoptedPid;
  }

  get running(): boolean {
    return this.pid !== undefined;
  }

  args(): string[] {
    const p = this.o.paths;
    const args = ['-n', '-l', '-D', '-P', '--no-syslog', '-f', p.config, '-p', p.pid, '-r', p.vrrpPid, '-c', p.checkerPid];
    if (this.o.netns) args.push('-s', this.o.netns);
    return args;
  }

  /** Adopt a keepalived left running by a previous daemon, or start a new one. Returns whether it adopted. */
  async start(opts: { adopt?: boolean } = {}): Promise<boolean> {
    this.stopping = false;
    if (this.running) return false;
    const existing = await keepalivedFromPidFile(this.o.paths.pid, this.o.paths.config);
    if (existing !== undefined && opts.adopt !== false) {
      this.adopt(existing);
      return true;
    }
    if (existing !== undefined) await this.terminate(existing);
    await this.cleanLeftovers();
    this.spawn();
    return false;
  }

  private adopt(pid: number): void {
    this.adoptedPid = pid;
    this.startedAt = Date.now();
    this.o.log.info({ pid }, 'adopted the running keepalived');
    this.adoptTimer = setInterval(() => {
      if (this.adoptedPid !== undefined && !alive(this.adoptedPid)) {
        clearInterval(this.adoptTimer);
        this.adoptTimer = undefined;
        this.adoptedPid = undefined;
        this.onExit({ code: null, signal: null });
      }
    }, this.o.adoptPollMs);
    this.emit('started', { pid, adopted: true });
  }

  private spawn(): void {
    const child = execa(this.o.keepalivedPath, this.args(), {
      reject: false,
      buffer: false,
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
      // keepalived goes when the daemon exits normally; after a SIGKILL of the daemon it stays (see header).
      cleanup: true,
    });
    this.child = child;
    this.startedAt = Date.now();
    this.lastLines = [];
    const onData = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() === '') continue;
        this.lastLines.push(line);
        if (this.lastLines.length > 20) this.lastLines.shift();
        this.o.log.debug({ keepalived: line });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    // execa's promise settles on exit with reject:false; the 'exit' event comes first and is what we act on.
    // A spawn failure (binary gone after an upgrade) emits 'error' and no 'exit': it is handled as a crash
    // too, so the backoff keeps trying instead of leaving the host without keepalived.
    let ended = false;
    const ended$ = (code: number | null, signal: string | null) => {
      if (ended) return;
      ended = true;
      if (this.child === child) this.child = undefined;
      this.onExit({ code, signal });
    };
    child.once('exit', (code, signal) => ended$(code, signal));
    child.once('error', (err) => {
      if (child.pid === undefined) {
        this.lastLines.push(`spawn failed: ${err.message}`);
        ended$(null, null);
      }
    });
    child.catch(() => undefined);
    if (child.pid !== undefined) this.emit('started', { pid: child.pid, adopted: false });
    else this.o.log.error({ path: this.o.keepalivedPath }, 'keepalived did not start');
  }

  private onExit(e: { code: number | null; signal: string | null }): void {
    if (this.stopping) return;
    this.crashes++;
    this.emit('exited', { ...e, lastLines: [...this.lastLines] });
    if (Date.now() - this.startedAt >= this.o.stableAfterMs) this.attempt = 0;
    const delayMs = backoffDelay(this.attempt, this.o.backoff, this.o.random);
    this.attempt++;
    this.emit('restart-scheduled', { delayMs, attempt: this.attempt });
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopping) return;
      void this.cleanLeftovers().then(() => {
        if (!this.stopping && !this.running) this.spawn();
      });
    }, delayMs);
  }

  /** SIGHUP: keepalived re-reads its config without leaving its states. False when nothing runs. */
  reload(): boolean {
    return this.signal('SIGHUP');
  }

  signal(sig: NodeJS.Signals | number): boolean {
    const pid = this.pid;
    if (pid === undefined) return false;
    try {
      process.kill(pid, sig);
      return true;
    } catch {
      return false;
    }
  }

  /** Terminates a process (SIGTERM, then SIGKILL after the grace) and waits for it. */
  private async terminate(pid: number): Promise<void> {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      return;
    }
    const deadline = Date.now() + this.o.stopTimeoutMs;
    while (alive(pid) && Date.now() < deadline) await sleep(20);
    if (alive(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
      while (alive(pid)) await sleep(10);
    }
  }

  /** Ends keepalived processes of ours that outlived their parent (pid files written by keepalived). */
  private async cleanLeftovers(): Promise<void> {
    const p = this.o.paths;
    for (const file of [p.vrrpPid, p.checkerPid, p.pid]) {
      const pid = await keepalivedFromPidFile(file, p.config);
      if (pid !== undefined && pid !== this.child?.pid) {
        this.o.log.warn({ pid, file }, 'terminating a leftover keepalived process');
        await this.terminate(pid);
      }
    }
  }

  /** Stops keepalived for good (until the next start): SIGTERM, SIGKILL after the grace, leftovers too. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    if (this.adoptTimer) clearInterval(this.adoptTimer);
    this.adoptTimer = undefined;
    const child = this.child;
    if (child?.pid !== undefined) {
      const exited = new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), this.o.stopTimeoutMs);
      await exited;
      clearTimeout(timer);
    } else if (this.adoptedPid !== undefined) {
      await this.terminate(this.adoptedPid);
    }
    this.child = undefined;
    this.adoptedPid = undefined;
    await this.cleanLeftovers();
  }
}
