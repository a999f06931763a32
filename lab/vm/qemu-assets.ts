// The two things QEMU needs that Debian does not ship ready-made, built once and cached under .cache/lab/:
// the uncompressed vmlinux (booting the ELF directly saves ~4 s of in-guest decompression under TCG) and a
// tiny initramfs (static busybox plus the modules that mount the host's root over 9p and build the overlay).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { qemuInitScript } from './guest-scripts.js';
import { LAB_PREFIX, labCacheDir } from './paths.js';

/** Modules the initramfs loads itself; everything else comes from /lib/modules over 9p with modprobe. */
const INITRAMFS_MODULES = ['virtio_pci', '9pnet_virtio', '9p', 'overlay'];

export interface QemuAssets {
  release: string;
  vmlinux: string;
  initramfs: string;
}

/** The newest /boot/vmlinuz-6.1.* whose modules are installed (the guest loads them through 9p). */
export function findQemuKernel(): { release: string; vmlinuz: string } {
  const releases = readdirSync('/boot')
    .filter((f) => /^vmlinuz-6\.1\./.test(f))
    .map((f) => f.slice('vmlinuz-'.length))
    .filter((r) => existsSync(join('/lib/modules', r, 'modules.dep')))
    .sort();
  const release = releases.at(-1);
  if (!release) {
    throw new Error('lab (qemu): no /boot/vmlinuz-6.1.* with modules in /lib/modules; install the Debian package linux-image-amd64');
  }
  return { release, vmlinuz: join('/boot', `vmlinuz-${release}`) };
}

/** Writes through a temporary name and renames, so concurrent test processes never see half a file. */
function atomicWrite(path: string, data: Buffer | string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

/** Finds the xz stream inside a bzImage and decompresses it (what the kernel's extract-vmlinux does). */
export function extractVmlinux(vmlinuz: string): Buffer {
  const image = readFileSync(vmlinuz);
  const magic = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
  for (let at = image.indexOf(magic); at >= 0; at = image.indexOf(magic, at + 1)) {
    const r = spawnSync('xz', ['-dc', '--single-stream'], { input: image.subarray(at), maxBuffer: 512 * 1024 * 1024 });
    if (r.stdout && r.stdout.length > 4 && r.stdout.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) return r.stdout;
  }
  throw new Error(`lab (qemu): found no xz-compressed ELF kernel inside ${vmlinuz}`);
}

/** Module files in load order: dependencies first, each once (modules.dep lists the deepest last). */
export function moduleLoadOrder(modulesDep: string, wanted: readonly string[]): string[] {
  const deps = new Map<string, string[]>();
  const byName = new Map<string, string>();
  for (const line of modulesDep.split('\n')) {
    const [mod, rest] = line.split(':');
    if (!mod || rest === undefined) continue;
    deps.set(mod, rest.trim() ? rest.trim().split(/\s+/) : []);
    byName.set(mod.replace(/^.*\//, '').replace(/\.ko(\.\w+)?$/, '').replace(/-/g, '_'), mod);
  }
  const order: string[] = [];
  const visit = (mod: string): void => {
    if (order.includes(mod)) return;
    for (const d of [...(deps.get(mod) ?? [])].reverse()) visit(d);
    order.push(mod);
  };
  for (const name of wanted) {
    const mod = byName.get(name.replace(/-/g, '_'));
    if (!mod) throw new Error(`lab (qemu): module ${name} is not in modules.dep`);
    visit(mod);
  }
  return order;
}

/** Builds (once) and returns the cached vmlinux and initramfs for the installed Debian kernel. */
export function ensureQemuAssets(): QemuAssets {
  const { release, vmlinuz } = findQemuKernel();
  mkdirSync(labCacheDir, { recursive: true });
  const vmlinux = join(labCacheDir, `vmlinux-${release}`);
  if (!existsSync(vmlinux)) atomicWrite(vmlinux, extractVmlinux(vmlinuz));

  const modDir = join('/lib/modules', release);
  const mods = moduleLoadOrder(readFileSync(join(modDir, 'modules.dep'), 'utf8'), INITRAMFS_MODULES);
  if (mods.some((m) => !m.endsWith('.ko'))) throw new Error(`lab (qemu): compressed modules are not supported: ${mods.join(' ')}`);
  const init = qemuInitScript(mods.map((m) => m.replace(/^.*\//, '')));
  const key = createHash('sha256').update(init).update(readFileSync('/bin/busybox')).digest('hex').slice(0, 12);
  const initramfs = join(labCacheDir, `initramfs-${release}-${key}.cpio`);
  if (existsSync(initramfs)) return { release, vmlinux, initramfs };

  if (!existsSync('/bin/busybox')) throw new Error('lab (qemu): /bin/busybox missing; install the Debian package busybox-static');
  const tree = mkdtempSync(join(labCacheDir, `${LAB_PREFIX}initramfs-`));
  try {
    for (const d of ['bin', 'mods', 'proc', 'dev', 'sys', 'lower', 'rw', 'newroot']) mkdirSync(join(tree, d));
    copyFileSync('/bin/busybox', join(tree, 'bin', 'busybox'));
    chmodSync(join(tree, 'bin', 'busybox'), 0o755);
    for (const m of mods) copyFileSync(join(modDir, m), join(tree, 'mods', m.replace(/^.*\//, '')));
    writeFileSync(join(tree, 'init'), init, { mode: 0o755 });
    const list = ['.', 'init', 'bin', 'bin/busybox', 'mods', ...mods.map((m) => `mods/${m.replace(/^.*\//, '')}`),
      'proc', 'dev', 'sys', 'lower', 'rw', 'newroot'].join('\n') + '\n';
    const r = spawnSync('cpio', ['-o', '-H', 'newc', '--quiet'], { cwd: tree, input: list, maxBuffer: 256 * 1024 * 1024 });
    if (r.status !== 0) throw new Error(`lab (qemu): cpio failed: ${r.stderr?.toString() ?? r.error?.message}`);
    atomicWrite(initramfs, r.stdout);
    // Initramfs files of an older init script are dead weight (64 kB to a few MB each).
    for (const f of readdirSync(labCacheDir)) {
      if (f.startsWith(`initramfs-${release}-`) && f.endsWith('.cpio') && join(labCacheDir, f) !== initramfs) rmSync(join(labCacheDir, f), { force: true });
    }
  } finally {
    rmSync(tree, { recursive: true, force: true });
  }
  return { release, vmlinux, initramfs };
}
