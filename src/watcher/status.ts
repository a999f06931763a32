// Writes status.loadBalancer.ingress. `ipMode: VIP` is what makes kube-proxy accept DR traffic for the VIP
// on every node. The write is a merge-patch of the status subresource that carries the resourceVersion we
// read, so a concurrent writer makes it fail with 409 instead of being overwritten; we then read afresh and
// decide again. Ingress on a Service we do not own is never touched.
import { ApiException, PatchStrategy, setHeaderOptions, type CoreV1Api, type V1LoadBalancerIngress, type V1Service } from '@kubernetes/client-node';
import type { TokenBucket } from '../util/rate-limit.js';
import { requestTimeout } from './client.js';

const TIMEOUT_MS = 30_000;

export const desiredIngress = (addresses: readonly string[]): V1LoadBalancerIngress[] =>
  addresses.map((ip) => ({ ip, ipMode: 'VIP' }));

export function ingressEquals(a: readonly V1LoadBalancerIngress[] | undefined, b: readonly V1LoadBalancerIngress[]): boolean {
  const norm = (l: readonly V1LoadBalancerIngress[]) => l.map((i) => `${i.ip ?? ''}|${i.hostname ?? ''}|${i.ipMode ?? ''}|${(i.ports ?? []).length}`).join(',');
  return norm(a ?? []) === norm(b);
}

export type StatusWriteResult = 'written' | 'unchanged' | 'gone' | 'not-ours';

export interface StatusWriterOptions {
  api: CoreV1Api;
  limiter: TokenBucket;
  /** Decides from the freshly read Service whether we may still write its status. */
  stillOurs: (svc: V1Service) => boolean;
  maxConflictRetries?: number;
}

export class StatusWriter {
  writes = 0;
  conflicts = 0;

  constructor(private readonly o: StatusWriterOptions) {}

  /** Sets the ingress of a Service we serve to `addresses`. */
  set(current: V1Service, addresses: readonly string[]): Promise<StatusWriteResult> {
    return this.update(current, () => desiredIngress(addresses), true);
  }

  /**
   * Removes our `addresses` from a Service's ingress (released, or no longer ours). Entries of another
   * controller stay.
   */
  clear(current: V1Service, addresses: readonly string[]): Promise<StatusWriteResult> {
    const ours = new Set(addresses);
    return this.update(current, (have) => have.filter((i) => !(i.ip !== undefined && ours.has(i.ip))), false);
  }

  private async update(current: V1Service, next: (have: V1LoadBalancerIngress[]) => V1LoadBalancerIngress[], mustBeOurs: boolean): Promise<StatusWriteResult> {
    let svc: V1Service | undefined = current;
    const uid = current.metadata?.uid;
    const name: string = current.metadata?.name ?? '';
    const namespace: string = current.metadata?.namespace ?? '';
    for (let attempt = 0; attempt <= (this.o.maxConflictRetries ?? 5); attempt++) {
      if (!svc || svc.metadata?.uid !== uid) return 'gone';
      if (mustBeOurs && !this.o.stillOurs(svc)) return 'not-ours';
      const have = svc.status?.loadBalancer?.ingress ?? [];
      const want = next(have);
      if (ingressEquals(have, want)) return 'unchanged';
      await this.o.limiter.take();
      try {
        await this.o.api.patchNamespacedServiceStatus(
          { name, namespace, body: { metadata: { resourceVersion: svc.metadata?.resourceVersion }, status: { loadBalancer: { ingress: want } } } },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch, requestTimeout(TIMEOUT_MS)),
        );
        this.writes++;
        return 'written';
      } catch (err) {
        if (err instanceof ApiException && err.code === 404) return 'gone';
        if (!(err instanceof ApiException) || err.code !== 409) throw err;
        this.conflicts++;
        await this.o.limiter.take();
        // `get services`, which deploy/rbac.yaml grants (it does not grant `get services/status`).
        svc = await this.o.api.readNamespacedService({ name, namespace }, requestTimeout(TIMEOUT_MS)).catch((e: unknown) => {
          if (e instanceof ApiException && e.code === 404) return undefined;
          throw e;
        });
      }
    }
    throw new Error(`status of ${namespace}/${name}: still conflicting after ${this.o.maxConflictRetries ?? 5} retries`);
  }
}
