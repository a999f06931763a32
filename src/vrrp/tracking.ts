// Chooses how keepalived watches the daemon (see DaemonTracking in render.ts) and gives the daemon the name
// keepalived looks for. keepalived's track_process relies on the kernel's process-events connector, which
// only answers in the initial network namespace (measured: "Failed to set/clear process event listen -
// errno 111" and a FAULT instance inside `ip netns exec`), so inside another namespace the pid-file script
// is used instead. In a shared PID space (the lab's namespaces) the pid file also keeps one host's
// keepalived from counting another host's daemon.
import { readlinkSync, writeFileSync, rmSync } from 'node:fs';
import { userInfo } from 'node:os';
import { DAEMON_PROCESS_NAME, type DaemonTracking } from './render.js';

export function inInitialNetns(): boolean {
  try {
    return readlinkSync('/proc/self/ns/net') === readlinkSync('/proc/1/ns/net');
  } catch {
    // Without access to pid 1's namespace link we cannot tell; the process tracker is the documented default.
    return true;
  }
}

export function chooseTracking(opts: { pidFile: string; advertSeconds: number; initialNetns?: boolean; pgrepPath?: string }): DaemonTracking {
  if (opts.initialNetns ?? inInitialNetns()) return { kind: 'process', processName: DAEMON_PROCESS_NAME };
  return {
    kind: 'pidfile',
    processName: DAEMON_PROCESS_NAME,
    pidFile: opts.pidFile,
    pgrepPath: opts.pgrepPath ?? '/usr/bin/pgrep',
    intervalSeconds: Math.max(1, opts.advertSeconds),
  };
}

/**
 * Names this process `ipvs-lb` (/proc/PID/comm, what track_process and `pgrep NAME` match) and writes its
 * pid file. Returns a function that removes the pid file.
 */
export function claimDaemonIdentity(pidFile: string): () => void {
  process.title = DAEMON_PROCESS_NAME;
  writeFileSync(pidFile, `${process.pid}\n`, { mode: 0o644 });
  return () => rmSync(pidFile, { force: true });
}

/**
 * keepalived runs as the daemon's user (root, or the unit's unprivileged user with CAP_NET_ADMIN/RAW), so its
 * scripts can only run as that user too.
 */
export function currentUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return 'root';
  }
}
