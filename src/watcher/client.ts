// Kubernetes client construction from the config: a kubeconfig file (LB hosts outside the cluster) or the
// in-cluster service-account token. A missing or unreadable kubeconfig is a clear start-up error.
import { readFileSync } from 'node:fs';
import { CoordinationV1Api, CoreV1Api, DiscoveryV1Api, KubeConfig } from '@kubernetes/client-node';
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

export function makeKubeClients(k: KubernetesConfig): KubeClients {
  const kubeConfig = new KubeConfig();
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
