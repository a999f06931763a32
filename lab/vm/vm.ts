// The two ways to use the lab: runInVm() boots, runs one script to the end and returns; startVm() boots and
// hands back a Vm that runs commands one by one (in any network namespace), starts background processes,
// reads and writes guest files, and is stopped by the caller.
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ExecFailedError, ExecTimeoutError, VmDiedError, VmError, VmTimeoutError } from './errors.js';
import { backgroundLaunch, execWrapper } from './guest-scripts.js';
import { Machine, type VmOptions } from './machine.js';
import { shArgv, shq } from './shell.js';
import type { Backend } from './backends.js';

export type { VmOptions };

/** An argv (run as is) or the text of a bash script. */
export type Command = readonly string[] | string;

export interface ExecOptions {
  /** Network namespace to run in (`ip netns exec NS ...`). Default: the guest's root namespace. */
  ns?: string;
  /** Kill the command (its whole session) after this long and throw ExecTimeoutError. Default 60 s. */
  timeoutMs?: number;
  /** Extra environment variables. */
  env?: Readonly<Record<string, string>>;
  /** Text fed to the command's stdin. */
  input?: string;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
  durationMs: number;
}

export interface SpawnOptions {
  ns?: string;
  env?: Readonly<Record<string, string>>;
}

/** A process started in the background in the guest, in its own session; its output goes to logPath. */
export interface GuestProcess {
  readonly name: string;
  readonly pid: number;
  readonly ns: string | undefined;
  /** Host path of its combined stdout+stderr (inside the artifacts directory). */
  readonly logPath: string;
  /** Current log contents. */
  log(): string;
  /** Sends a signal to its whole process group. */
  signal(sig?: string): Promise<void>;
  /** Signals (default TERM), waits up to timeoutMs (default 5 s) for the group to end, then SIGKILLs it.
   * exitCode is the command's status (128+n for a signal), null if it had to be SIGKILLed. */
  stop(opts?: { signal?: string; timeoutMs?: number }): Promise<{ exitCode: number | null; killed: boolean }>;
  /** Resolves with the exit status when it ends by itself; throws after timeoutMs (default 30 s). */
  wait(timeoutMs?: number): Promise<number>;
  running(): Promise<boolean>;
}

const NS_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const PROC_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const SIG_RE = /^(?:[A-Z]{2,8}[0-9]?|[0-9]{1,2})$/;

function checkNs(ns: string | undefined): void {
  if (ns !== undefined && !NS_RE.test(ns)) throw new Error(`lab exec ns: ${JSON.stringify(ns)} is not a valid namespace name (${NS_RE.source})`);
}

function checkSignal(sig: string): string {
  const s = sig.replace(/^SIG/, '');
  if (!SIG_RE.test(s)) throw new Error(`lab signal: ${JSON.stringify(sig)} is not a signal name or number`);
  return s;
}

function describe(cmd: Command, ns?: string): string {
  const c = typeof cmd === 'string' ? `script(${JSON.stringify(cmd.length > 60 ? `${cmd.slice(0, 57)}...` : cmd)})` : cmd.join(' ');
  return ns ? `[${ns}] ${c}` : c;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class Vm {
  private nextId = 1;
  private readonly procs = new Map<string, GuestProcess>();
  private stopped: Promise<string> | undefined;

  /** @internal use startVm() */
  constructor(private readonly machine: Machine) {}

  get backend(): Backend {
    return this.machine.backend;
  }

  /** Identifies this run's host resources: /tmp/ipvs-lb-lab-ID, /dev/shm/ipvs-lb-lab-ID, the VM's command line. */
  get id(): string {
    return this.machine.id;
  }

  /** Host PID of the VM process (leader of its own process group). */
  get pid(): number | undefined {
    return this.machine.pid;
  }

  /** Shared directory, same path on the host and in the guest. Files put here are visible both ways at once. */
  get runDir(): string {
    return this.machine.runDir;
  }

  /** Artifacts of the run (background process logs under logs/, whatever the guest writes to $LAB_ARTIFACTS). */
  get artifactsDir(): string {
    return this.machine.liveArtifactsDir;
  }

  /** Everything the guest printed on its console so far (kernel messages, not command output). */
  get console(): string {
    return this.machine.output;
  }

  get running(): boolean {
    return this.machine.running;
  }

  private prepare(id: number, cmd: Command, opts: ExecOptions | SpawnOptions & { input?: string }): string {
    checkNs(opts.ns);
    const ctl = join(this.runDir, 'ctl');
    const prefix = opts.ns ? `ip netns exec ${shq(opts.ns)} ` : '';
    let line: string;
    if (typeof cmd === 'string') {
      const file = join(ctl, `${id}.user.sh`);
      writeFileSync(file, cmd);
      line = `${prefix}bash ${shq(file)}`;
    } else {
      line = `${prefix}${shArgv(cmd)}`;
    }
    if (opts.input !== undefined) {
      const file = join(ctl, `${id}.in`);
      writeFileSync(file, opts.input);
      line += ` <${shq(file)}`;
    }
    const env = Object.entries(opts.env ?? {}).map(([k, v]) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`lab exec env: invalid variable name ${JSON.stringify(k)}`);
      return `export ${k}=${shq(v)}\n`;
    });
    return env.join('') + line;
  }

  /** Runs a command to its end and returns its exit code and output (it does not throw on a non-zero exit). */
  async exec(cmd: Command, opts: ExecOptions = {}): Promise<ExecResult> {
    if (!this.machine.running) throw new VmDiedError('the VM is not running', this.backend, this.console);
    const id = this.nextId++;
    const t0 = Date.now();
    const ctl = join(this.runDir, 'ctl');
    const body = this.prepare(id, cmd, opts);
    writeFileSync(join(ctl, `${id}.sh`), execWrapper(this.runDir, id, body));
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const done = this.machine.waitDone(id);
    // Awaited below; the no-op keeps a rejection during send() from surfacing as unhandled.
    done.promise.catch(() => undefined);
    this.machine.send(`X ${id}`);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const read = (ext: string): string => {
      const f = join(ctl, `${id}.${ext}`);
      return existsSync(f) ? readFileSync(f, 'utf8') : '';
    };
    const clean = (): void => {
      for (const ext of ['sh', 'user.sh', 'in', 'out', 'err']) rmSync(join(ctl, `${id}.${ext}`), { force: true });
    };
    try {
      const r = await Promise.race([done.promise, timedOut]);
      if (r === 'timeout') {
        done.cancel();
        if (this.machine.running) this.machine.send(`K ${id}`);
        throw new ExecTimeoutError(describe(cmd, opts.ns), timeoutMs, read('out'), read('err'));
      }
      return { code: r, stdout: read('out'), stderr: read('err'), durationMs: Date.now() - t0 };
    } finally {
      clearTimeout(timer);
      clean();
    }
  }

  /** Like exec(), but throws ExecFailedError on a non-zero exit. For setup steps that must work. */
  async run(cmd: Command, opts: ExecOptions = {}): Promise<ExecResult> {
    const r = await this.exec(cmd, opts);
    if (r.code !== 0) throw new ExecFailedError(describe(cmd, opts.ns), r.code, r.stdout, r.stderr);
    return r;
  }

  /** Starts a command in the background (own session, optionally in a namespace) and returns at once.
   * Its output is collected in artifacts/logs/NAME.log. Names are unique per VM. */
  async spawn(name: string, cmd: Command, opts: SpawnOptions = {}): Promise<GuestProcess> {
    this.checkProcName(name);
    checkNs(opts.ns);
    let argv: string[];
    if (typeof cmd === 'string') {
      const file = join(this.runDir, 'procs', `${name}.sh`);
      writeFileSync(file, cmd);
      argv = ['bash', file];
    } else {
      argv = [...cmd];
    }
    if (argv.length === 0) throw new Error('lab spawn: empty command');
    const env = Object.entries(opts.env ?? {}).map(([k, v]) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`lab spawn env: invalid variable name ${JSON.stringify(k)}`);
      return `export ${k}=${shq(v)}\n`;
    });
    await this.run(env.join('') + backgroundLaunch({ runDir: this.runDir, name, argv, ns: opts.ns, logPath: this.logPath(name) }));
    return this.adopt(name, opts.ns);
  }

  /** Host path of the log of background process NAME. */
  logPath(name: string): string {
    return join(this.artifactsDir, 'logs', `${name}.log`);
  }

  private checkProcName(name: string): void {
    if (!PROC_RE.test(name)) throw new Error(`lab spawn name: ${JSON.stringify(name)} must match ${PROC_RE.source}`);
    if (this.procs.has(name)) throw new Error(`lab spawn name: ${JSON.stringify(name)} is already used in this VM`);
  }

  /** Takes over a background process some guest script started with backgroundLaunch() (it wrote the pid file). */
  adopt(name: string, ns?: string): GuestProcess {
    this.checkProcName(name);
    const pidFile = join(this.runDir, 'procs', `${name}.pid`);
    const pid = existsSync(pidFile) ? Number.parseInt(readFileSync(pidFile, 'utf8'), 10) : Number.NaN;
    if (!Number.isInteger(pid) || pid <= 1) throw new Error(`lab: background process ${name} did not record its pid in ${pidFile}`);
    const exitFile = join(this.runDir, 'procs', `${name}.exit`);
    const logPath = this.logPath(name);
    const readExit = (): number | undefined => {
      if (!existsSync(exitFile)) return undefined;
      const n = Number.parseInt(readFileSync(exitFile, 'utf8'), 10);
      return Number.isInteger(n) ? n : undefined;
    };
    const proc: GuestProcess = {
      name,
      pid,
      ns,
      logPath,
      log: () => (existsSync(logPath) ? readFileSync(logPath, 'utf8') : ''),
      signal: async (sig = 'TERM') => {
        await this.exec(['kill', `-${checkSignal(sig)}`, '--', `-${pid}`]);
      },
      stop: async ({ signal = 'TERM', timeoutMs = 5000 } = {}) => {
        const s = checkSignal(signal);
        const rounds = Math.max(1, Math.ceil(timeoutMs / 50));
        const r = await this.exec(`kill -${s} -- -${pid} 2>/dev/null || exit 0
i=0
while kill -0 -- -${pid} 2>/dev/null; do
  i=$((i+1)); if [ $i -gt ${rounds} ]; then kill -KILL -- -${pid}; exit 3; fi
  sleep 0.05
done
`, { timeoutMs: timeoutMs + 30_000 });
        return { exitCode: r.code === 3 ? null : readExit() ?? null, killed: r.code === 3 };
      },
      wait: async (timeoutMs = 30_000) => {
        const end = Date.now() + timeoutMs;
        for (;;) {
          const c = readExit();
          if (c !== undefined) return c;
          if (!this.running) throw new VmDiedError(`the VM ended while waiting for ${name}`, this.backend, this.console);
          if (Date.now() > end) throw new Error(`lab: ${name} (pid ${pid}) still running after ${timeoutMs} ms`);
          await sleep(25);
        }
      },
      running: async () => (await this.exec(['kill', '-0', '--', `-${pid}`])).code === 0,
    };
    this.procs.set(name, proc);
    return proc;
  }

  /** The background processes started with spawn(), by name. */
  process(name: string): GuestProcess | undefined {
    return this.procs.get(name);
  }

  /** Reads a guest file: directly from the host when it lies in the shared run directory, else with cat. */
  async readFile(path: string): Promise<string> {
    if (path.startsWith(`${this.runDir}/`)) return readFileSync(path, 'utf8');
    return (await this.run(['cat', '--', path])).stdout;
  }

  /** Writes a guest file (creating its directory); the content travels through the shared run directory. */
  async writeFile(path: string, content: string, mode = '0644'): Promise<void> {
    if (!/^[0-7]{3,4}$/.test(mode)) throw new Error(`lab writeFile mode: ${JSON.stringify(mode)} is not octal`);
    if (!path.startsWith('/')) throw new Error(`lab writeFile path: ${JSON.stringify(path)} must be absolute`);
    if (path.startsWith(`${this.runDir}/`)) {
      writeFileSync(path, content, { mode: Number.parseInt(mode, 8) });
      return;
    }
    const staged = join(this.runDir, 'ctl', `xfer-${this.nextId++}`);
    writeFileSync(staged, content);
    try {
      await this.run(['install', '-D', '-m', mode, staged, path]);
    } finally {
      rmSync(staged, { force: true });
    }
  }

  /** Powers the guest off (killing it after 5 s), removes everything but the artifacts, returns their dir. */
  stop(): Promise<string> {
    this.stopped ??= this.machine.shutdown();
    return this.stopped;
  }

  /** Removes the artifacts too (if they were not copied to an artifactsDir given in the options). */
  async dispose(): Promise<void> {
    await this.stop();
    this.machine.dispose();
  }
}

export interface StartVmOptions extends VmOptions {
  /** Give up (and kill the VM) if the guest is not up after this long. Default 90 s. */
  bootTimeoutMs?: number;
}

/** Boots a guest whose agent runs commands on request. Always stop() (or dispose()) it, e.g. in after(). */
export async function startVm(opts: StartVmOptions = {}): Promise<Vm> {
  const m = Machine.start(opts, 'agent');
  try {
    await m.waitReady(opts.bootTimeoutMs ?? 90_000);
  } catch (e) {
    await m.exited;
    m.finish();
    m.dispose();
    if (e instanceof VmError) e.runId = m.id;
    throw e;
  }
  return new Vm(m);
}

export interface RunInVmOptions extends VmOptions {
  /** The bash script to run in the guest, as text ... */
  script?: string;
  /** ... or as a path readable on the host. */
  scriptPath?: string;
  /** Kill the VM after this long (boot included) and throw VmTimeoutError. Default 120 s. */
  timeoutMs?: number;
}

export interface RunResult {
  backend: Backend;
  /** Exit status of the script. */
  exitCode: number;
  /** The guest console: the script's stdout and stderr, plus kernel messages. */
  output: string;
  artifactsDir: string;
  durationMs: number;
  /** Identifies the run's host resources (see Vm.id). */
  id: string;
  /** Removes the artifacts now (otherwise they go when this process exits, unless artifactsDir was given). */
  dispose(): void;
}

/** Boots a guest, runs one bash script in it (root namespace, host root read-only + overlay), returns. */
export async function runInVm(opts: RunInVmOptions): Promise<RunResult> {
  if ((opts.script === undefined) === (opts.scriptPath === undefined)) {
    throw new Error('runInVm: give exactly one of script (text) and scriptPath');
  }
  const text = opts.script ?? readFileSync(opts.scriptPath as string, 'utf8');
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const m = Machine.start(opts, 'script', (runDir) => writeFileSync(join(runDir, 'script.sh'), text));
  const t0 = m.startedAt;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    m.kill();
  }, timeoutMs);
  await m.exited;
  clearTimeout(timer);
  const durationMs = Date.now() - t0;
  const exitFile = join(m.runDir, 'exit-code');
  const exitText = existsSync(exitFile) ? readFileSync(exitFile, 'utf8').trim() : undefined;
  if (exitText !== undefined) rmSync(exitFile);
  const artifactsDir = m.finish();
  if (timedOut || exitText === undefined || !/^\d+$/.test(exitText)) {
    m.dispose();
    const err = timedOut
      ? new VmTimeoutError(timeoutMs, m.backend, m.output)
      : new VmDiedError('the guest ended without reporting the script\'s exit status', m.backend, m.output);
    err.runId = m.id;
    throw err;
  }
  return { backend: m.backend, exitCode: Number(exitText), output: m.output, artifactsDir, durationMs, id: m.id, dispose: () => m.dispose() };
}
