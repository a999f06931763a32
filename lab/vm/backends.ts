// How each backend is started: the host command line for a run directory. Both give the guest the host's
// root read-only, the run directory writable at the same path, and the console on the process's stdin and
// stdout (the control channel and the output).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stage2Script, umlStage1Script, type Stage2Options } from './guest-scripts.js';
import { ensureQemuAssets } from './qemu-assets.js';
import { ensureUmlShim } from './uml-shim.js';

export type Backend = 'uml' | 'qemu';

export const UML_BINARY = '/usr/bin/linux.uml';
export const UML_MODULES_ROOT = '/usr/lib/uml/modules';

export interface LaunchPlan {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Needs a private directory under /dev/shm (UML keeps guest RAM in a file under $TMPDIR). */
  needsShmDir: boolean;
}

/**
 * The backend a VM gets: the requested one, else IPVS_LB_LAB_BACKEND, else UML. UML (the faster lab) does not
 * run on every host: Debian 12's UML kernel restores a process's FPU state through ptrace with a buffer of a
 * fixed size, which hosts with a larger XSAVE area (AMX) refuse (its init dies at once with "ptrace set fp
 * regs failed, errno = 14", measured on a 6.18 host); it runs with a preload that pads that buffer
 * (lab/vm/uml-xstate.c). Should it still not boot, UML is asked for only where it does (umlProblem, probed
 * once per process); elsewhere the
 * same tests run under QEMU, with a note on stderr. An explicit IPVS_LB_LAB_BACKEND=uml is taken as an
 * order: it fails with the reason instead.
 */
export function resolveBackend(requested?: Backend): Backend {
  const env = process.env.IPVS_LB_LAB_BACKEND as Backend | undefined;
  const b = requested ?? env ?? 'uml';
  if (b !== 'uml' && b !== 'qemu') {
    throw new Error(`lab backend: ${JSON.stringify(b)} is not one of uml, qemu (option backend or env IPVS_LB_LAB_BACKEND)`);
  }
  if (b === 'qemu') return b;
  const problem = umlProblem();
  if (problem === undefined) return 'uml';
  if (env === 'uml') throw new Error(`lab (uml): User-Mode Linux does not run on this host (${problem}); unset IPVS_LB_LAB_BACKEND to use QEMU`);
  if (!umlNoted) {
    umlNoted = true;
    process.stderr.write(`lab: User-Mode Linux does not run on this host (${problem}); using QEMU\n`);
  }
  return 'qemu';
}

/**
 * How much longer a lab wait should be on the backend `requested` resolves to: QEMU emulates the CPU, so the
 * daemon's own code (Node.js start-up, JIT) runs several times slower than under UML, which runs it natively
 * and pays only for syscalls (measured: the daemon's API up after 8 s under QEMU, about 2 s under UML).
 * Timeouts only: a wait that succeeds ends as soon as it does.
 */
export function labTimeScale(requested?: Backend): number {
  const env = process.env.IPVS_LB_LAB_BACKEND as Backend | undefined;
  const b = requested ?? env ?? 'uml';
  return b === 'qemu' || umlProblem() !== undefined ? 3 : 1;
}

let umlVerdict: { problem: string | undefined } | undefined;
let umlNoted = false;
let umlShim: { lib: string | undefined; error: string | undefined } | undefined;

/** The host environment UML runs with: the XSAVE preload (lab/vm/uml-xstate.c) when it could be built. */
function umlEnv(tmpDir: string): NodeJS.ProcessEnv {
  umlShim ??= (() => {
    try {
      return { lib: ensureUmlShim(), error: undefined };
    } catch (err) {
      return { lib: undefined, error: (err as Error).message };
    }
  })();
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmpDir };
  if (umlShim.lib) env.LD_PRELOAD = [umlShim.lib, process.env.LD_PRELOAD].filter(Boolean).join(' ');
  return env;
}

/** Why UML cannot boot here (undefined: it can). Boots it once with /bin/true as init (about 1 s): a kernel
 * that runs its init reports exit code 0 when init ends. */
export function umlProblem(): string | undefined {
  if (umlVerdict) return umlVerdict.problem;
  let problem: string | undefined;
  if (!existsSync(UML_BINARY)) problem = `${UML_BINARY} missing; install the Debian package user-mode-linux`;
  else {
    const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'ipvs-lb-umlprobe-'));
    try {
      const r = spawnSync(UML_BINARY, [
        'mem=64M', 'rootfstype=hostfs', 'rootflags=/', 'ro', 'init=/bin/true', 'con=null', 'ssl=null', 'con0=fd:0,fd:1',
        'quiet', `umid=umlprobe${process.pid}`, `uml_dir=${dir}`,
      ], { env: umlEnv(dir), input: '', encoding: 'latin1', timeout: 60_000, maxBuffer: 4 << 20 });
      const out = `${r.stdout ?? ''}\n${r.stderr ?? ''}`;
      if (!/Attempted to kill init! exitcode=0x00000000\b/.test(out)) {
        const lines = out.split('\n');
        const why = lines.find((l) => /ptrace.*failed/.test(l)) ?? lines.find((l) => /Kernel panic/.test(l)) ?? lines.find((l) => /^Checking .*(failed|error)/i.test(l));
        problem = why?.trim() ?? (r.error ? String(r.error.message) : `its init did not run (exit ${r.status ?? r.signal})`);
        if (umlShim?.error) problem += `; without the XSAVE preload, which did not build: ${umlShim.error}`;
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  umlVerdict = { problem };
  return problem;
}

export function umlRelease(): string {
  if (!existsSync(UML_BINARY)) throw new Error(`lab (uml): ${UML_BINARY} missing; install the Debian package user-mode-linux`);
  const rel = readdirSync(UML_MODULES_ROOT).sort().at(-1);
  if (!rel) throw new Error(`lab (uml): no modules under ${UML_MODULES_ROOT}`);
  return rel;
}

/** Virtual CPUs of a QEMU guest: IPVS_LB_LAB_QEMU_CPUS, else 2. Multi-threaded TCG runs one host thread per
 * virtual CPU, and a lab guest has work for two: both LB hosts' daemons, keepalived and the API simulator
 * (measured, the soak's lab alone on a 2-core host: with one CPU the second daemon was not ready after 6 min,
 * with two both were after 4 min). npm test runs QEMU lab files one at a time, so two fit the machine. */
export function qemuCpus(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.IPVS_LB_LAB_QEMU_CPUS;
  if (v === undefined || v === '') return 2;
  if (!/^[1-8]$/.test(v)) throw new Error(`lab (qemu): IPVS_LB_LAB_QEMU_CPUS must be a whole number from 1 to 8 (got ${JSON.stringify(v)})`);
  return Number(v);
}

export interface PlanInput {
  backend: Backend;
  runDir: string;
  shmDir?: string;
  memoryMb: number;
  mode: Stage2Options['mode'];
  id: string;
}

/** Writes the guest's boot scripts into the run directory and returns the host command to start it. */
export function planLaunch(p: PlanInput): LaunchPlan {
  if (p.backend === 'uml') {
    const release = umlRelease();
    const moduleDir = join(UML_MODULES_ROOT, release);
    writeFileSync(join(p.runDir, 'stage1.sh'), umlStage1Script(p.runDir, moduleDir), { mode: 0o755 });
    writeFileSync(join(p.runDir, 'stage2.sh'), stage2Script({ runDir: p.runDir, mode: p.mode, modulesBind: { from: moduleDir, release } }), { mode: 0o755 });
    if (!p.shmDir) throw new Error('lab (uml): internal error: no /dev/shm directory');
    return {
      command: UML_BINARY,
      args: [
        `mem=${p.memoryMb}M`, 'rootfstype=hostfs', 'rootflags=/', 'ro', `init=${p.runDir}/stage1.sh`,
        'con=null', 'ssl=null', 'con0=fd:0,fd:1', 'quiet', `umid=${p.id}`, `uml_dir=${p.shmDir}`,
      ],
      // UML maps guest RAM from a file it creates in $TMPDIR: keep it in our private directory.
      env: umlEnv(p.shmDir),
      needsShmDir: true,
    };
  }
  const assets = ensureQemuAssets();
  const cpus = qemuCpus();
  writeFileSync(join(p.runDir, 'stage2.sh'), stage2Script({ runDir: p.runDir, mode: p.mode }), { mode: 0o755 });
  return {
    // A guest under QEMU does not see its console close (the serial line has no end of file), so a parent
    // that is SIGKILLed would leave QEMU running: the kernel kills it with its parent instead (util-linux).
    command: 'setpriv',
    args: [
      '--pdeathsig', 'KILL', 'qemu-system-x86_64',
      '-M', 'q35', '-accel', 'tcg,thread=multi,tb-size=128', '-cpu', 'max', '-smp', String(cpus), '-m', `${p.memoryMb}M`,
      '-nodefaults', '-no-reboot', '-display', 'none', '-serial', 'stdio',
      '-kernel', assets.vmlinux, '-initrd', assets.initramfs,
      '-append', `console=ttyS0 quiet panic=-1 rdinit=/init lab.run=${p.runDir}`,
      '-fsdev', 'local,id=r,path=/,security_model=none,readonly=on,multidevs=remap',
      '-device', 'virtio-9p-pci,fsdev=r,mount_tag=hostroot',
      '-fsdev', `local,id=w,path=${p.runDir},security_model=none`,
      '-device', 'virtio-9p-pci,fsdev=w,mount_tag=labrun',
    ],
    env: { ...process.env },
    needsShmDir: false,
  };
}
