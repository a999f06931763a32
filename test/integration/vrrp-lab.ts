// Shared by the VRRP integration tests: a network namespace with a veth pair carrying a documentation
// address (keepalived runs there for real; VRRP needs no IPVS), a temp directory, and recorders standing in
// for the VIP binder and the sync daemon, which other modules provide.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import type { VipController, SyncDaemonController } from '../../src/vrrp/effects.js';
import type { SyncMode } from '../../src/vrrp/state.js';

let counter = 0;

export interface Netns {
  name: string;
  iface: string;
  address: string;
  destroy(): Promise<void>;
}

export async function createNetns(tag: string): Promise<Netns> {
  const name = `ipvslb-${tag}-${process.pid}-${counter++}`;
  const ip = (...args: string[]) => execa('ip', args);
  await ip('netns', 'add', name);
  try {
    await ip('-n', name, 'link', 'set', 'lo', 'up');
    await ip('-n', name, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
    await ip('-n', name, 'link', 'set', 'v0', 'up');
    await ip('-n', name, 'link', 'set', 'v1', 'up');
    await ip('-n', name, 'addr', 'add', '198.51.100.10/24', 'dev', 'v0');
  } catch (err) {
    await ip('netns', 'del', name).catch(() => undefined);
    throw err;
  }
  return {
    name,
    iface: 'v0',
    address: '198.51.100.10',
    destroy: async () => {
      await execa('ip', ['netns', 'del', name], { reject: false });
    },
  };
}

export async function tempDir(tag: string): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `ipvs-lb-${tag}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

export interface Call {
  what: string;
  at: number;
}

/** Records what the VRRP side asked of the VIP binder and the sync daemon, in order. */
export class Recorder implements VipController, SyncDaemonController {
  readonly calls: Call[] = [];
  private waiters: Array<() => void> = [];

  async bindGroup(group: string): Promise<void> {
    this.push(`bind ${group}`);
  }

  async releaseGroup(group: string): Promise<void> {
    this.push(`release ${group}`);
  }

  async announceGroup(group: string): Promise<void> {
    this.push(`announce ${group}`);
  }

  async setMode(mode: SyncMode): Promise<void> {
    this.push(`sync master=${mode.master} backup=${mode.backup}`);
  }

  mark(what: string): void {
    this.push(what);
  }

  private push(what: string): void {
    this.calls.push({ what, at: Date.now() });
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  list(): string[] {
    return this.calls.map((c) => c.what);
  }

  /** Waits until a call equal to `what` appears at or after index `from`; returns its index. */
  async waitFor(what: string, from = 0, timeoutMs = 20_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.calls.findIndex((c, idx) => idx >= from && c.what === what);
      if (i >= 0) return i;
      if (Date.now() > deadline) throw new Error(`timed out waiting for "${what}" after #${from}; calls: ${JSON.stringify(this.list())}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 200);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function waitUntil(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
