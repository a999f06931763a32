// One booted guest: the host process (linux.uml or qemu-system-x86_64) in its own process group, its private
// run directory (shared writable with the guest at the same path) and the console, which carries the guest's
// output one way and the agent's control lines the other way.
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { planLaunch, resolveBackend, type Backend } from './backends.js';
import { own, sweepStale, type Ownership } from './cleanup.js';
import { VmDiedError } from './errors.js';
import { MARK } from './guest-scripts.js';
import { LAB_PREFIX } from './paths.js';
import { assertPlainPath, envFile } from './shell.js';

export interface VmOptions {
  /** 'uml' (default, or env IPVS_LB_LAB_BACKEND) or 'qemu' (software emulation of the real Debian kernel). */
  backend?: Backend;
  /** Guest RAM. Default 512. */
  memoryMb?: number;
  /** Variables exported to every guest script and command (kernel arguments cannot carry spaces; a file can). */
  knobs?: Readonly<Record<string, string>>;
  /** Copy the artifacts here when the VM ends and keep them. Default: a temporary directory the lab removes on
   * dispose() or when this process exits. */
  artifactsDir?: string;
  /** Each console line as it arrives (debugging). Env IPVS_LB_LAB_CONSOLE=1 prints them to stderr. */
  onConsole?: (line: string) => void;
  /** Keep the run directory after the process exits (debugging). Env IPVS_LB_LAB_KEEP=1 does the same. */
  keep?: boolean;
}

export type MachineMode = 'script' | 'agent';

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const MAX_OUTPUT = 8 * 1024 * 1024;
const DONE_RE = new RegExp(`${MARK.done} (\\d+) (\\d+)`);

export class Machine {
  readonly backend: Backend;
  readonly runDir: string;
  readonly startedAt = Date.now();
  readonly exited: Promise<Exit>;
  private readonly proc: ChildProcess;
  private readonly ownership: Ownership;
  private readonly shmDir: string | undefined;
  private readonly onConsole: ((line: string) => void) | undefined;
  private readonly keep: boolean;
  private readonly artifactsTarget: string | undefined;
  private out = '';
  /** Random part of the run directory's name; also in the /dev/shm directory's name and the VM's command line. */
  get id(): string {
    return this.runDir.slice(this.runDir.lastIndexOf(LAB_PREFIX) + LAB_PREFIX.length);
  }

  private partial = '';
  private exitInfo: Exit | undefined;
  private readyWaiters: Array<() => void> = [];
  private isReady = false;
  private readonly doneWaiters = new Map<number, (code: number) => void>();
  private readonly exitWaiters = new Set<(e: Exit) => void>();
  private finished = false;

  private constructor(opts: VmOptions, mode: MachineMode, prepare: (runDir: string) => void) {
    this.backend = resolveBackend(opts.backend);
    const memoryMb = opts.memoryMb ?? 512;
    if (!Number.isInteger(memoryMb) || memoryMb < 128 || memoryMb > 8192) {
      throw new Error(`lab memoryMb: ${memoryMb} must be an integer from 128 to 8192`);
    }
    this.onConsole = opts.onConsole ?? (process.env.IPVS_LB_LAB_CONSOLE === '1' ? (l) => process.stderr.write(`[guest] ${l}\n`) : undefined);
    this.keep = opts.keep ?? process.env.IPVS_LB_LAB_KEEP === '1';
    this.artifactsTarget = opts.artifactsDir;
    sweepStale();
    this.ownership = own();
    try {
      this.runDir = assertPlainPath('lab run directory', mkdtempSync(join(tmpdir(), LAB_PREFIX)));
      this.ownership.addDir(this.runDir);
      for (const d of ['ctl', 'procs', 'artifacts', 'artifacts/logs']) mkdirSync(join(this.runDir, d));
      writeFileSync(join(this.runDir, 'knobs.env'), envFile(opts.knobs ?? {}));
      prepare(this.runDir);
      if (this.backend === 'uml') {
        if (!existsSync('/dev/shm')) throw new Error('lab (uml): /dev/shm is missing (UML keeps guest RAM in a file there)');
        // Same name as the run directory, so one id finds everything a run owns on the host.
        const shm = join('/dev/shm', `${LAB_PREFIX}${this.id}`);
        mkdirSync(shm, { mode: 0o700 });
        this.shmDir = shm;
        this.ownership.addDir(shm);
      }
      const id = this.id;
      const plan = planLaunch({ backend: this.backend, runDir: this.runDir, shmDir: this.shmDir, memoryMb, mode, id: `lab-${id}` });
      this.proc = spawn(plan.command, plan.args, { env: plan.env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (e) {
      this.ownership.release();
      throw e;
    }
    if (this.proc.pid !== undefined) this.ownership.setProcessGroup(this.proc.pid);
    this.proc.stdin?.on('error', () => {
      // The VM went away; its exit is reported through 'exit'.
    });
    this.proc.stdout?.setEncoding('utf8').on('data', (s: string) => this.onData(s));
    this.proc.stderr?.setEncoding('utf8').on('data', (s: string) => this.onData(s));
    this.exited = new Promise<Exit>((resolve) => {
      const done = (e: Exit): void => {
        if (this.exitInfo) return;
        this.exitInfo = e;
        // Helper processes of the VM share its group; nothing of it may outlive the leader.
        this.ownership.setProcessGroup(undefined);
        try {
          if (this.proc.pid !== undefined) process.kill(-this.proc.pid, 'SIGKILL');
        } catch {
          // group already empty
        }
        if (this.partial) this.onLine(this.partial);
        this.partial = '';
        for (const w of this.exitWaiters) w(e);
        this.exitWaiters.clear();
        resolve(e);
      };
      this.proc.on('exit', (code, signal) => done({ code, signal }));
      this.proc.on('error', (err) => {
        this.append(`lab: cannot start ${this.backend}: ${err.message}\n`);
        done({ code: null, signal: null });
      });
    });
  }

  static start(opts: VmOptions, mode: MachineMode, prepare: (runDir: string) => void = () => undefined): Machine {
    return new Machine(opts, mode, prepare);
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  get output(): string {
    return this.out;
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  /** Where background process logs and files the guest writes to $LAB_ARTIFACTS end up during the run. */
  get liveArtifactsDir(): string {
    return join(this.runDir, 'artifacts');
  }

  private append(s: string): void {
    this.out += s;
    if (this.out.length > MAX_OUTPUT) this.out = this.out.slice(this.out.length - MAX_OUTPUT / 2);
  }

  private onData(chunk: string): void {
    const text = this.partial + chunk.replace(/\r/g, '');
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    for (const l of lines) this.onLine(l);
  }

  private onLine(raw: string): void {
    let line = raw;
    const done = DONE_RE.exec(line);
    if (done) {
      line = line.replace(done[0], '');
      const id = Number(done[1]);
      const w = this.doneWaiters.get(id);
      if (w) {
        this.doneWaiters.delete(id);
        w(Number(done[2]));
      }
      if (!line.trim()) return;
    }
    if (line.includes(MARK.ready)) {
      this.isReady = true;
      for (const w of this.readyWaiters) w();
      this.readyWaiters = [];
      line = line.replace(MARK.ready, '');
      if (!line.trim()) return;
    }
    this.append(`${line}\n`);
    this.onConsole?.(line);
  }

  /** Resolves when the agent is up; rejects if the VM dies first or the time runs out (the VM is then killed). */
  async waitReady(timeoutMs: number): Promise<void> {
    if (this.isReady) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.kill();
        reject(new VmDiedError(`guest did not boot within ${timeoutMs} ms; the VM was killed`, this.backend, this.out));
      }, timeoutMs);
      this.readyWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
      this.onExit(() => {
        clearTimeout(timer);
        reject(new VmDiedError('guest ended during boot', this.backend, this.out));
      });
    });
  }

  onExit(fn: (e: Exit) => void): void {
    if (this.exitInfo) fn(this.exitInfo);
    else this.exitWaiters.add(fn);
  }

  /** Sends one control line to the agent. */
  send(line: string): void {
    if (!this.running) throw new VmDiedError('the VM is not running', this.backend, this.out);
    this.proc.stdin?.write(`${line}\n`);
  }

  /** Resolves with the exit code reported by command `id`, or rejects when the VM ends first. */
  waitDone(id: number): { promise: Promise<number>; cancel: () => void } {
    let cancel = (): void => undefined;
    const promise = new Promise<number>((resolve, reject) => {
      const onExit = (): void => reject(new VmDiedError(`the VM ended while command ${id} was running`, this.backend, this.out));
      this.doneWaiters.set(id, (code) => {
        this.exitWaiters.delete(onExit);
        resolve(code);
      });
      this.onExit(onExit);
      cancel = () => {
        this.doneWaiters.delete(id);
        this.exitWaiters.delete(onExit);
      };
    });
    return { promise, cancel };
  }

  /** SIGKILLs the whole process group now. */
  kill(): void {
    try {
      if (this.proc.pid !== undefined && this.running) process.kill(-this.proc.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }

  /** Asks the guest to power off, kills it after graceMs, then cleans up. Returns the final artifacts dir. */
  async shutdown(graceMs = 5000): Promise<string> {
    if (this.running) {
      try {
        this.send('Q');
      } catch {
        // already ending
      }
      const t = setTimeout(() => this.kill(), graceMs);
      await this.exited;
      clearTimeout(t);
    }
    return this.finish();
  }

  /** After the VM process ended: removes everything but the artifacts and says where they are. */
  finish(): string {
    if (this.running) throw new Error('lab: finish() while the VM is running');
    const live = this.liveArtifactsDir;
    if (this.finished) return this.artifactsTarget ?? live;
    this.finished = true;
    if (this.shmDir) {
      rmSync(this.shmDir, { recursive: true, force: true });
      this.ownership.forgetDir(this.shmDir);
    }
    for (const f of ['ctl', 'procs', 'topo', 'stage1.sh', 'stage2.sh', 'modprobe-helper.sh', 'script.sh', 'knobs.env']) {
      rmSync(join(this.runDir, f), { recursive: true, force: true });
    }
    if (this.artifactsTarget) {
      mkdirSync(this.artifactsTarget, { recursive: true });
      cpSync(live, this.artifactsTarget, { recursive: true });
      if (!this.keep) this.dispose();
      return this.artifactsTarget;
    }
    if (this.keep) {
      this.ownership.forgetDir(this.runDir);
      this.ownership.release();
      process.stderr.write(`lab: kept ${this.runDir}\n`);
    }
    return live;
  }

  /** Removes the run directory (and with it the artifacts, unless they were copied to artifactsDir). */
  dispose(): void {
    this.kill();
    this.ownership.release();
  }
}
