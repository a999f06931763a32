// Doctor's questions to the Kubernetes API: may the daemon's credentials do what it needs
// (SelfSubjectAccessReview per permission and verb), does kube-proxy accept DR traffic for the VIPs (its
// mode and strictARP), and does any of our Services carry ipMode Proxy (nodes would drop DR packets).
import { AuthorizationV1Api, type CoreV1Api, type V1Service } from '@kubernetes/client-node';
import { parse } from 'yaml';
import type { Config } from '../config/types.js';
import { makeKubeClients } from '../watcher/client.js';
import { isOurService } from '../watcher/ours.js';
import { describePermission, requiredPermissions, type Permission } from './permissions.js';
import { check, type CheckResult } from './types.js';

export interface KubeCheckOptions {
  /** Per request; a hung API server must not hang doctor. */
  timeoutMs: number;
}

class Timeout extends Error {}

function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Timeout(`${what}: no answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

const httpStatus = (err: unknown): number | undefined => {
  const c = (err as { code?: unknown }).code;
  return typeof c === 'number' ? c : undefined;
};

/** `HTTP 403: services is forbidden: ...` from an ApiException; the network error's code otherwise. */
export function kubeErrorText(err: unknown): string {
  const status = httpStatus(err);
  if (status !== undefined) {
    const body = (err as { body?: unknown }).body;
    let message: string | undefined;
    try {
      const parsed = typeof body === 'string' ? JSON.parse(body) : body;
      message = (parsed as { message?: string } | undefined)?.message;
    } catch {
      message = typeof body === 'string' ? body.slice(0, 200) : undefined;
    }
    return `HTTP ${status}${message ? `: ${message}` : ''}`;
  }
  // node-fetch (client-node's transport) puts the system error code on the error itself.
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && code !== '') return code;
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message ?? String(err);
}

/** Reads kube-proxy's KubeProxyConfiguration out of its ConfigMap (kubeadm keeps it under config.conf). */
export function kubeProxyCheck(data: Record<string, string> | undefined): CheckResult {
  const name = 'kube-system/kube-proxy';
  let conf: { kind?: unknown; mode?: unknown; ipvs?: { strictARP?: unknown } } | undefined;
  for (const text of Object.values(data ?? {})) {
    try {
      const doc = parse(text) as typeof conf;
      if (doc && typeof doc === 'object' && doc.kind === 'KubeProxyConfiguration') {
        conf = doc;
        break;
      }
    } catch {
      // Another key (a kubeconfig, a script): not the configuration.
    }
  }
  if (!conf) return check('kube-proxy', name, 'warn', 'the ConfigMap holds no KubeProxyConfiguration; check by hand that the nodes accept traffic for ipMode VIP addresses');
  const mode = typeof conf.mode === 'string' && conf.mode !== '' ? conf.mode : 'iptables';
  if (mode === 'ipvs') {
    if (conf.ipvs?.strictARP === true) return check('kube-proxy', name, 'ok', 'mode ipvs with strictARP: nodes hold the VIPs on kube-ipvs0 without answering ARP for them');
    return check('kube-proxy', name, 'fail', 'mode ipvs without strictARP: every node answers ARP for the VIPs (kube-ipvs0) and takes traffic away from the LB hosts; set ipvs.strictARP: true (kubectl edit configmap -n kube-system kube-proxy) and restart kube-proxy');
  }
  if (mode === 'iptables' || mode === 'nftables') return check('kube-proxy', name, 'ok', `mode ${mode}: nodes accept direct-routed traffic for Services whose status has ipMode VIP`);
  return check('kube-proxy', name, 'warn', `mode ${mode}: not a mode ipvs-lb knows; check that nodes accept direct-routed traffic for the VIPs`);
}

/** Our Services whose status shows an address with ipMode Proxy: kube-proxy then does not accept DR packets for it. */
export function proxyModeChecks(services: readonly V1Service[], k: Config['kubernetes']): CheckResult[] {
  const out: CheckResult[] = [];
  let ours = 0;
  for (const s of services) {
    if (!isOurService(s, k)) continue;
    ours++;
    (s.status?.loadBalancer?.ingress ?? []).forEach((ing, i) => {
      if (ing.ipMode !== 'Proxy') return;
      const id = `${s.metadata?.namespace}/${s.metadata?.name}`;
      out.push(check('services', id, 'fail', `status.loadBalancer.ingress[${i}] ${ing.ip ?? ing.hostname ?? ''} has ipMode Proxy: kube-proxy on the nodes will not accept direct-routed traffic for it; ipvs-lb writes ipMode VIP, so another controller is writing this Service's status`));
    });
  }
  if (out.length === 0) out.push(check('services', 'ipMode', 'ok', `none of the ${ours} Services ipvs-lb serves has an ingress with ipMode Proxy`));
  return out;
}

async function listAllServices(core: CoreV1Api, timeoutMs: number): Promise<V1Service[]> {
  const items: V1Service[] = [];
  let next: string | undefined;
  do {
    const page = await within(timeoutMs, 'list services', core.listServiceForAllNamespaces({ limit: 500, ...(next ? { _continue: next } : {}) }));
    items.push(...page.items);
    next = page.metadata?._continue || undefined;
  } while (next);
  return items;
}

const permissionName = (p: Permission) => describePermission(p, p.verbs.join(',')).replace(/ in (all namespaces|namespace \S+)$/, '');

async function reviewPermission(authz: AuthorizationV1Api, p: Permission, timeoutMs: number): Promise<CheckResult> {
  const denied: string[] = [];
  for (const verb of p.verbs) {
    const review = await within(timeoutMs, 'SelfSubjectAccessReview', authz.createSelfSubjectAccessReview({
      body: {
        apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview',
        spec: { resourceAttributes: { verb, group: p.group, resource: p.resource, ...(p.subresource ? { subresource: p.subresource } : {}), ...(p.namespace ? { namespace: p.namespace } : {}), ...(p.name ? { name: p.name } : {}) } },
      },
    }));
    if (review.status?.allowed !== true) denied.push(describePermission(p, verb) + (review.status?.reason ? ` (${review.status.reason})` : ''));
  }
  const name = permissionName(p);
  if (denied.length === 0) return check('rbac', name, 'ok', `allowed ${p.namespace ? `in ${p.namespace}` : 'cluster-wide'}: ${p.why}`);
  return check('rbac', name, p.optional ? 'warn' : 'fail', `denied: ${denied.join('; ')}; needed to ${p.why} (deploy/rbac.yaml grants it)`);
}

export async function kubernetesChecks(config: Config, o: KubeCheckOptions): Promise<CheckResult[]> {
  let clients;
  try {
    clients = makeKubeClients(config.kubernetes);
  } catch (err) {
    return [check('kubernetes', 'credentials', 'fail', (err as Error).message), check('kubernetes', 'rbac, kube-proxy, services', 'skip', 'no usable kubeconfig')];
  }
  const server = clients.kubeConfig.getCurrentCluster()?.server ?? '(in-cluster)';
  const authz = clients.kubeConfig.makeApiClient(AuthorizationV1Api);
  const out: CheckResult[] = [check('kubernetes', 'api server', 'ok', `${server} answers`)];
  for (const p of requiredPermissions(config.kubernetes)) {
    try {
      out.push(await reviewPermission(authz, p, o.timeoutMs));
    } catch (err) {
      if (httpStatus(err) === undefined) {
        // Unreachable or hung: every later question would fail the same way.
        return [
          check('kubernetes', 'api server', 'fail', `cannot reach ${server}: ${kubeErrorText(err)}`),
          check('kubernetes', 'rbac, kube-proxy, services', 'skip', 'the API server does not answer'),
        ];
      }
      out.push(check('rbac', permissionName(p), 'fail', `SelfSubjectAccessReview refused: ${kubeErrorText(err)}`));
    }
  }

  try {
    const cm = await within(o.timeoutMs, 'read configmap', clients.core.readNamespacedConfigMap({ name: 'kube-proxy', namespace: 'kube-system' }));
    out.push(kubeProxyCheck(cm.data));
  } catch (err) {
    const s = httpStatus(err);
    const why = s === 404 ? 'no ConfigMap kube-system/kube-proxy (not a kubeadm cluster, or no kube-proxy)' : `cannot read kube-system/kube-proxy: ${kubeErrorText(err)}`;
    out.push(check('kube-proxy', 'kube-system/kube-proxy', 'warn', `${why}; check by hand that the nodes accept direct-routed traffic for ipMode VIP addresses (kube-proxy in IPVS mode needs strictARP)`));
  }

  try {
    out.push(...proxyModeChecks(await listAllServices(clients.core, o.timeoutMs), config.kubernetes));
  } catch (err) {
    out.push(check('services', 'ipMode', 'fail', `cannot list Services: ${kubeErrorText(err)}`));
  }
  return out;
}
