// Which Services this installation serves: type LoadBalancer with our loadBalancerClass, or with none
// unless strictClass says that class-less Services belong to another implementation.
import type { V1Service } from '@kubernetes/client-node';
import type { KubernetesConfig } from '../config/types.js';

export function isOurService(svc: V1Service, k: Pick<KubernetesConfig, 'loadBalancerClass' | 'strictClass'>): boolean {
  if (svc.spec?.type !== 'LoadBalancer') return false;
  if (svc.metadata?.deletionTimestamp) return false;
  const cls = svc.spec.loadBalancerClass;
  if (cls === undefined || cls === null || cls === '') return !k.strictClass;
  return cls === k.loadBalancerClass;
}
