// The shell scripts that turn a bare kernel into the lab guest. Stage 1 differs per backend (hostfs under
// User-Mode Linux, 9p from an initramfs under QEMU); both end in a chroot into an overlay of the host's root
// (read-only below, tmpfs above) with the run directory mounted writable at its host path, and exec stage 2,
// which is common: mounts, then either the caller's script or the control agent.
import { assertPlainPath, shArgv, shq } from './shell.js';

/** Markers the guest prints on its console; the host parses them out of the output. */
export const MARK = {
  ready: '@@LAB-READY',
  done: '@@LAB-DONE',
} as const;

export interface Stage2Options {
  runDir: string;
  /** 'script': run RUN/script.sh, record its exit code, power off. 'agent': serve exec requests from the console. */
  mode: 'script' | 'agent';
  /** Directory bind-mounted on /lib/modules/<release> (User-Mode Linux keeps its modules elsewhere). */
  modulesBind?: { from: string; release: string };
}

export function stage2Script(o: Stage2Options): string {
  const run = assertPlainPath('runDir', o.runDir);
  const bind = o.modulesBind
    ? `mkdir -p /lib/modules/${o.modulesBind.release} && mount --bind ${assertPlainPath('modules', o.modulesBind.from)} /lib/modules/${o.modulesBind.release}\n`
    : '';
  const common = `#!/bin/bash
# stage 2 of the ipvs-lb lab guest (generated)
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
RUN=${run}
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/netns "$RUN"
${bind}ip link set lo up
echo lab > /proc/sys/kernel/hostname
export LAB_RUN_DIR="$RUN" LAB_ARTIFACTS="$RUN/artifacts"
[ -f "$RUN/knobs.env" ] && . "$RUN/knobs.env"
# The console echoes what the host types; the agent protocol does not want it back.
stty -echo -icrnl -onlcr </dev/console 2>/dev/null
`;
  if (o.mode === 'script') {
    return `${common}
# If the host side goes away (its end of the console closes), stop instead of running on unattended.
( while read -r _; do :; done; echo "lab: host closed the console, powering off"; poweroff -f ) </dev/console &
bash "$RUN/script.sh" </dev/null
echo $? > "$RUN/exit-code.tmp" && mv "$RUN/exit-code.tmp" "$RUN/exit-code"
poweroff -f
`;
  }
  return `${common}
# Control agent. Host -> guest, one line on the console: "X <id>" runs $RUN/ctl/<id>.sh in its own session
# (the script reports "${MARK.done} <id> <code>" itself), "K <id>" kills that session, "Q" powers off.
# EOF (the host process is gone) powers off too, so a killed parent never leaves a guest running.
declare -A P
echo "${MARK.ready}"
while read -r op id; do
  case "$op" in
    X) setsid bash "$RUN/ctl/$id.sh" </dev/null & P[$id]=$!; disown ;;
    K) [ -n "\${P[$id]:-}" ] && kill -KILL -- "-\${P[$id]}" 2>/dev/null; echo "${MARK.done} $id 137" ;;
    Q) break ;;
  esac
done </dev/console
poweroff -f
`;
}

/** Stage 1 under User-Mode Linux: runs as PID 1 straight from the read-only hostfs root. */
export function umlStage1Script(runDir: string, moduleDir: string): string {
  const run = assertPlainPath('runDir', runDir);
  const mods = assertPlainPath('moduleDir', moduleDir);
  return `#!/bin/sh
# stage 1 of the ipvs-lb lab guest under User-Mode Linux (generated)
PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t tmpfs -o size=384m tmpfs /mnt
mkdir -p /mnt/upper /mnt/work /mnt/root
insmod ${mods}/kernel/fs/overlayfs/overlay.ko
mount -t overlay overlay -o lowerdir=/,upperdir=/mnt/upper,workdir=/mnt/work /mnt/root
mkdir -p /mnt/root${run}
mount -t hostfs none /mnt/root${run} -o ${run}
umount /proc
# chroot as PID 1 (see the QEMU init): module autoloading then runs the chroot's /sbin/modprobe.
exec chroot /mnt/root /bin/bash ${run}/stage2.sh
`;
}

/** /init of the cached QEMU initramfs: static busybox, modules in dependency order, then the same overlay. */
export function qemuInitScript(modules: readonly string[]): string {
  const insmods = modules.map((m) => `insmod /mods/${m}`).join('\n');
  return `#!/bin/busybox sh
# /init of the ipvs-lb lab initramfs for QEMU (generated)
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t devtmpfs devtmpfs /dev
${insmods}
RUN=
for a in $(cat /proc/cmdline); do case "$a" in lab.run=*) RUN="\${a#lab.run=}" ;; esac; done
[ -n "$RUN" ] || { echo "lab: no lab.run= on the kernel command line"; poweroff -f; }
mkdir -p /lower /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,ro hostroot /lower || { echo "lab: 9p mount failed"; poweroff -f; }
mount -t tmpfs -o size=384m tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot || { echo "lab: overlay failed"; poweroff -f; }
mkdir -p "/newroot$RUN"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 labrun "/newroot$RUN" || { echo "lab: run dir mount failed"; poweroff -f; }
umount /proc
# chroot as PID 1: kernel threads share PID 1's fs_struct, so its new root is theirs too and the kernel's module autoloading
# (IPVS schedulers, nft expressions) runs the chroot's /sbin/modprobe.
exec chroot /newroot /bin/bash "$RUN/stage2.sh"
`;
}

export interface BackgroundLaunch {
  runDir: string;
  name: string;
  argv: readonly string[];
  /** Enter this namespace first; leave out when the launching shell already runs in it. */
  ns?: string;
  logPath: string;
}

/** Shell text that starts a background process the lab can track: its own session (so a signal reaches the
 * whole group), output to logPath, PID in RUN/procs/NAME.pid, exit status in RUN/procs/NAME.exit. A small
 * bash waits for it: it traps the stop signals only to survive them long enough to record the status (the
 * command itself gets default dispositions back at exec). */
export function backgroundLaunch(b: BackgroundLaunch): string {
  const procs = `${b.runDir}/procs/${b.name}`;
  const prefix = b.ns ? `ip netns exec ${shq(b.ns)} ` : '';
  const recorder = ['bash', '-c', 'trap : TERM INT HUP; "$@"; echo $? > "$0"', `${procs}.exit`, ...b.argv];
  return `setsid ${prefix}${shArgv(recorder)} >${shq(b.logPath)} 2>&1 </dev/null &
echo $! > ${shq(`${procs}.pid`)}
`;
}

/** The per-command wrapper the agent runs: output to files in the run dir, then the done marker. */
export function execWrapper(runDir: string, id: number, body: string): string {
  const base = `${runDir}/ctl/${id}`;
  return `exec >${shq(base + '.out')} 2>${shq(base + '.err')} </dev/null
cd /root 2>/dev/null
${body}
echo "${MARK.done} ${id} $?" >/dev/console
`;
}
