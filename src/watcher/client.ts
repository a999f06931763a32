// Kubernetes client construction from the config: a kubeconfig file (LB hosts outside the cluster) or the
// in-cluster service-account token. A missing or unreadable kubeconfig is a clear start-up error.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Agent } from 'node:http';
import { CoordinationV1Api, CoreV1Api, DiscoveryV1Api, KubeConfig, Observable, type Cluster, type ConfigurationOptions, type ObservableMiddleware } from '@kubernetes/client-node';
import type { KubernetesConfig } from '../config/types.js';
import { TokenBucket } from '../util/rate-limit.js';

export interface KubeClients {
  kubeConfig: KubeConfig;
  core: CoreV1Api;
  discovery: DiscoveryV1Api;
  coordination: CoordinationV1Api;
  /** Shared by every request of this process: the configured QPS/burst is a process-wide budget. */
  limiter: TokenBucket;
}

export class KubeConfigError extends Error {}

type CreateAgent = (cluster: Cluster | null, agentOptions: Record<string, unknown>) => Agent;

/**
 * A KubeConfig whose requests share keep-alive connections. client-node 1.4 builds a new https.Agent for
 * every request, so every request pays a TCP and TLS handshake (measured: a fifth of the daemon's CPU during
 * a burst of status writes, and native memory churn). Agents are cached by everything that makes them
 * differ (server, proxy, CA, client certificate), so a rotated client certificate gets a new agent.
 */
export class PooledKubeConfig extends KubeConfig {
  readonly agents = new Map<string, Agent>();
}

const original = (KubeConfig.prototype as unknown as { createAgent: CreateAgent }).createAgent;
(PooledKubeConfig.prototype as unknown as { createAgent: CreateAgent }).createAgent = function (this: PooledKubeConfig, cluster, agentOptions) {
  const h = createHash('sha256');
  h.update(JSON.stringify([cluster?.server, cluster?.proxyUrl, cluster?.skipTLSVerify, agentOptions.rejectUnauthorized, agentOptions.servername]));
  for (const k of ['ca', 'cert', 'key', 'pfx', 'passphrase']) h.update(`|${k}:`).update(String(agentOptions[k] ?? ''));
  const key = h.digest('hex');
  let agent = this.agents.get(key);
  if (!agent) {
    // A handful at most (one per credential rotation); drop the oldest beyond that.
    if (this.agents.size >= 4) {
      const [oldest, old] = this.agents.entries().next().value as [string, Agent];
      old.destroy();
      this.agents.delete(oldest);
    }
    // An idle connection is closed after 4 s, before a server's own idle timeout (Node's default is 5 s) can
    // race a request onto a socket it is closing; kube-apiserver keeps idle connections far longer.
    agent = original.call(this, cluster, { ...agentOptions, keepAlive: true, scheduling: 'lifo', timeout: 4000, maxSockets: 64 });
    this.agents.set(key, agent);
  }
  return agent;
};

export function makeKubeClients(k: Pick<KubernetesConfig, 'kubeconfig' | 'inCluster' | 'qps' | 'burst'>): KubeClients {
  const kubeConfig = new PooledKubeConfig();
  if (k.inCluster) {
    kubeConfig.loadFromCluster();
  } else {
    const path = k.kubeconfig!;
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new KubeConfigError(`kubernetes.kubeconfig: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    try {
      kubeConfig.loadFromString(text);
    } catch (err) {
      throw new KubeConfigError(`kubernetes.kubeconfig: ${path} is not a valid kubeconfig: ${(err as Error).message}`);
    }
    if (!kubeConfig.getCurrentCluster()) throw new KubeConfigError(`kubernetes.kubeconfig: ${path} has no current context with a cluster`);
  }
  return {
    kubeConfig,
    core: kubeConfig.makeApiClient(CoreV1Api),
    discovery: kubeConfig.makeApiClient(DiscoveryV1Api),
    coordination: kubeConfig.makeApiClient(CoordinationV1Api),
    limiter: new TokenBucket(k.qps, k.burst),
  };
}

/**
 * Request options that abort the request after `ms`. client-node sets no timeout of its own, so without this
 * a request to an API server that stopped answering (a blackholed address, a hung proxy) waits for TCP to
 * give up, many minutes; a Lease renewal stuck like that would keep a host believing it is the allocator.
 */
export function requestTimeout(ms: number, opt?: ConfigurationOptions<ObservableMiddleware>, cancel?: AbortSignal): ConfigurationOptions<ObservableMiddleware> {
  const timeout: ObservableMiddleware = {
    pre: (ctx) => {
      // `cancel` ends the request early too (the daemon stopping must not wait for a silent server).
      ctx.setSignal(cancel ? AbortSignal.any([AbortSignal.timeout(ms), cancel]) : AbortSignal.timeout(ms));
      return new Observable(Promise.resolve(ctx));
    },
    post: (res) => new Observable(Promise.resolve(res)),
  };
  return { ...opt, middleware: [...(opt?.middleware ?? []), timeout], middlewareMergeStrategy: 'append' };
}
