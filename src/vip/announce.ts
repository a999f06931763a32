// Telling the L2 segment that a VIP moved here. IPv4: gratuitous ARP with iputils `arping -U` (one process
// per announcement, argument array, inputs validated first). IPv6: the kernel sends an unsolicited neighbour
// advertisement when an address completes DAD if net.ipv6.conf.IFACE.ndisc_notify=1 (not when DAD is skipped
// or optimistic: measured), so we set that sysctl for the VIP interface and let the address add do the
// announcing, once; Node has no raw sockets and Debian ships no NA sender (ndisc6 lacks ndsend).
import { writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { parseIp } from '../ipam/address.js';

export interface AnnounceOptions {
  /** Announcements per bind (IPv4). Default 3. */
  count: number;
  /** Pause between announcements. Default 1000 ms. */
  intervalMs: number;
  /** The arping binary. Default "arping". */
  arping?: string;
}

export const defaultAnnounce: AnnounceOptions = { count: 3, intervalMs: 1000 };

const IFNAME = /^[A-Za-z0-9_.:@][A-Za-z0-9_.:@-]{0,14}$/;

export function validInterfaceName(name: unknown): name is string {
  return typeof name === 'string' && IFNAME.test(name) && name !== '.' && name !== '..';
}

/** The arping command line for one gratuitous ARP (exported for tests). */
export function arpingArgs(iface: string, address: string): string[] {
  if (!validInterfaceName(iface)) throw new Error(`interface: must be a Linux interface name (got ${JSON.stringify(iface)})`);
  const ip = parseIp(address);
  if (!ip || ip.family !== 4) throw new Error(`address: must be an IPv4 address for gratuitous ARP (got ${JSON.stringify(address)})`);
  return ['-U', '-c', '1', '-I', iface, address];
}

/** Sends one gratuitous ARP for an address; resolves with undefined when it went out, else the reason. */
export type ArpSender = (address: string) => Promise<string | undefined>;

/**
 * Sends `count` gratuitous ARPs `intervalMs` apart. Each run goes through `send` (the daemon's
 * ArpingWorker) when given, else its own arping process. Resolves with how many arping runs succeeded; a
 * failure is reported, never thrown, because a missed announcement must not undo a bind (the address works
 * without it).
 */
export async function gratuitousArp(iface: string, address: string, opts: AnnounceOptions, signal?: AbortSignal, send?: ArpSender): Promise<{ sent: number; errors: string[] }> {
  const args = arpingArgs(iface, address);
  const errors: string[] = [];
  let sent = 0;
  for (let i = 0; i < opts.count; i++) {
    if (signal?.aborted) break;
    if (i > 0) await sleep(opts.intervalMs, undefined, { signal }).catch(() => undefined);
    if (signal?.aborted) break;
    if (send) {
      const err = await send(address);
      if (err === undefined) sent++;
      else errors.push(`arping ${args.join(' ')}: ${err}`);
      continue;
    }
    const r = await execa(opts.arping ?? 'arping', args, { reject: false, timeout: 5000 });
    if (r.exitCode === 0) sent++;
    else errors.push(`arping ${args.join(' ')}: ${String(r.stderr || r.stdout).trim() || `exit ${r.exitCode}`}`);
  }
  return { sent, errors };
}

/** Makes the kernel send an unsolicited NA for each IPv6 address added to iface (see the module comment). */
export async function enableNdiscNotify(iface: string): Promise<void> {
  if (!validInterfaceName(iface)) throw new Error(`interface: must be a Linux interface name (got ${JSON.stringify(iface)})`);
  // /proc/sys/net follows the network namespace of the process that opens it, unlike /sys/class/net.
  await writeFile(`/proc/sys/net/ipv6/conf/${iface}/ndisc_notify`, '1\n');
}
