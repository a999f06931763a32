// What the daemon does with the Kubernetes API, as RBAC permissions. deploy/rbac.yaml grants exactly these
// (test/integration/rbac.test.ts compares the two), and `ipvs-lb doctor` asks the API server about each one
// with a SelfSubjectAccessReview.
import type { KubernetesConfig } from '../config/types.js';

export interface Permission {
  group: string;
  resource: string;
  subresource?: string;
  verbs: string[];
  /** Unset: in every namespace (cluster-wide). */
  namespace?: string;
  name?: string;
  /** Doctor's own reads are useful but not needed to balance traffic: missing ones are warnings. */
  optional?: boolean;
  why: string;
}

export function requiredPermissions(k: Pick<KubernetesConfig, 'lease'>): Permission[] {
  return [
    { group: '', resource: 'services', verbs: ['get', 'list', 'watch'], why: 'find Services of type LoadBalancer' },
    { group: '', resource: 'services', subresource: 'status', verbs: ['get', 'patch', 'update'], why: 'write status.loadBalancer.ingress (and re-read it after a conflict)' },
    { group: '', resource: 'nodes', verbs: ['get', 'list', 'watch'], why: 'real servers' },
    { group: 'discovery.k8s.io', resource: 'endpointslices', verbs: ['get', 'list', 'watch'], why: 'ready endpoints per node (externalTrafficPolicy: Local)' },
    { group: '', resource: 'namespaces', verbs: ['get', 'list', 'watch'], why: 'namespace labels for pools with namespaceSelectors' },
    { group: '', resource: 'events', verbs: ['create', 'patch'], why: 'Events on Services (IPAllocated, AllocationFailed, ...)' },
    { group: 'coordination.k8s.io', resource: 'leases', verbs: ['get', 'create', 'update'], namespace: k.lease.namespace, why: 'one allocator among the LB hosts' },
    { group: '', resource: 'configmaps', verbs: ['get'], namespace: 'kube-system', name: 'kube-proxy', optional: true, why: "doctor reads kube-proxy's mode and strictARP" },
  ];
}

/** `services/status get` style text of one permission and verb, with its scope. */
export function describePermission(p: Permission, verb: string): string {
  const res = `${p.group ? `${p.group}/` : ''}${p.resource}${p.subresource ? `/${p.subresource}` : ''}${p.name ? ` ${p.name}` : ''}`;
  return `${verb} ${res} ${p.namespace ? `in namespace ${p.namespace}` : 'in all namespaces'}`;
}
