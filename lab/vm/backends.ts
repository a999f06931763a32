// How each backend is started: the host command line for a run directory. Both give the guest the host's
// root read-only, the run directory writable at the same path, and the console on the process's stdin and
// stdout (the control channel and the output).
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stage2Script, umlStage1Script, type Stage2Options } from './guest-scripts.js';
import { ensureQemuAssets } from './qemu-assets.js';

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

export function resolveBackend(requested?: Backend): Backend {
  const b = requested ?? (process.env.IPVS_LB_LAB_BACKEND as Backend | undefined) ?? 'uml';
  if (b !== 'uml' && b !== 'qemu') {
    throw new Error(`lab backend: ${JSON.stringify(b)} is not one of uml, qemu (option backend or env IPVS_LB_LAB_BACKEND)`);
  }
  return b;
}

export function umlRelease(): string {
  if (!existsSync(UML_BINARY)) throw new Error(`lab (uml): ${UML_BINARY} missing; install the Debian package user-mode-linux`);
  const rel = readdirSync(UML_MODULES_ROOT).sort().at(-1);
  if (!rel) throw new Error(`lab (uml): no modules under ${UML_MODULES_ROOT}`);
  return rel;
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
      env: { ...process.env, TMPDIR: p.shmDir },
      needsShmDir: true,
    };
  }
  const assets = ensureQemuAssets();
  writeFileSync(join(p.runDir, 'stage2.sh'), stage2Script({ runDir: p.runDir, mode: p.mode }), { mode: 0o755 });
  return {
    command: 'qemu-system-x86_64',
    args: [
      '-M', 'q35', '-accel', 'tcg,thread=multi,tb-size=128', '-cpu', 'max', '-smp', '1', '-m', `${p.memoryMb}M`,
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
