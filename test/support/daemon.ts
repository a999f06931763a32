// Runs the real `ipvs-lb daemon` as a subprocess against a kube-sim, the way an operator runs it, and gives
// tests a handle on its API, its ledger directory and its log.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { poll } from '../../lab/poll.js';

export const repoRoot = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
export const cli = join(repoRoot, 'bin', 'ipvs-lb.js');
export const kubectlPath = join(repoRoot, '.cache', 'kubernetes-client', 'usr', 'bin', 'kubectl');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface DaemonHandle {
  name: string;
  dir: string;
  port: number;
  token: () => string;
  api<T = unknown>(path: string, init?: { method?: string }): Promise<{ status: number; body: T }>;
  log(): string;
  child: ChildProcess;
  /** SIGTERM (graceful) or SIGKILL; resolves with the exit code or signal. */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

export async function startDaemon(opts: { name: string; dir: string; kubeconfig: string; config?: Record<string, unknown>; args?: string[]; nodeArgs?: string[] }): Promise<DaemonHandle> {
  mkdirSync(opts.dir, { recursive: true });
  const port = await freePort();
  const config = {
    hostName: opts.name,
    interface: 'eth0',
    stateDir: join(opts.dir, 'state'),
    kubernetes: { kubeconfig: opts.kubeconfig, qps: 100, burst: 200, lease: { durationSeconds: 4, renewDeadlineSeconds: 3, retryPeriodSeconds: 1 } },
    pools: [{ name: 'default', addresses: ['192.0.2.0/24', '198.51.100.1-198.51.100.3'], avoidBuggyIPs: true }],
    vrrp: { enabled: false },
    reconcile: { coalesceMs: 20 },
    api: { listen: `127.0.0.1:${port}` },
    ...opts.config,
  };
  const configPath = join(opts.dir, 'config.yaml');
  writeFileSync(configPath, stringify(config));
  const logPath = join(opts.dir, 'daemon.log');
  const logStream = createWriteStream(logPath, { flags: 'a' });
  // IPVS_LB_DAEMON_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the daemon of a test or benchmark.
  const nodeArgs = [...(opts.nodeArgs ?? []), ...(process.env.IPVS_LB_DAEMON_NODE_ARGS?.split(' ').filter(Boolean) ?? [])];
  const child = spawn(process.execPath, [...nodeArgs, cli, 'daemon', '--config', configPath, '--log-level', 'debug', ...(opts.args ?? ['--no-kernel'])], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(logStream);
  child.stderr!.pipe(logStream);
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const token = () => readFileSync(join(config.stateDir, 'api-token'), 'utf8').trim();
  const handle: DaemonHandle = {
    name: opts.name, dir: opts.dir, port, token, child,
    async api<T>(path: string, init: { method?: string } = {}) {
      const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: init.method ?? 'GET', headers: init.method === 'POST' ? { authorization: `Bearer ${token()}` } : {} });
      return { status: res.status, body: (await res.json()) as T };
    },
    log: () => readFileSync(logPath, 'utf8'),
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const r = await exited;
      logStream.end();
      return r;
    },
  };
  // Up when the API answers.
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`daemon ${opts.name} exited with ${child.exitCode}:\n${handle.log()}`);
    try {
      await fetch(`http://127.0.0.1:${port}/healthz`);
      return handle;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  await handle.stop('SIGKILL');
  throw new Error(`daemon ${opts.name} did not start:\n${handle.log()}`);
}

/** Polls `check` until it returns a value (not undefined); fails with `what` after `timeoutMs`. */
export function eventually<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  return poll(what, check, { timeoutMs, everyMs: 100 });
}
