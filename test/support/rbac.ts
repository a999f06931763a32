// The permissions deploy/rbac.yaml grants ipvs-lb, as the simulator's access rules: tests that run the daemon
// with exactly these find any request the shipped RBAC would refuse (403) on a real cluster.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { AccessRule } from '../../lab/kube-sim/auth.js';
import { repoRoot } from './daemon.js';

interface RbacDoc { kind?: string; metadata?: { name?: string; namespace?: string }; rules?: { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[] }

export function shippedRbacRules(path = join(repoRoot, 'deploy', 'rbac.yaml')): AccessRule[] {
  const docs = parseAllDocuments(readFileSync(path, 'utf8')).map((d) => d.toJS() as RbacDoc);
  const rules: AccessRule[] = [];
  for (const d of docs) {
    if (d.kind !== 'ClusterRole' && d.kind !== 'Role') continue;
    for (const r of d.rules ?? []) {
      rules.push({
        verbs: r.verbs, apiGroups: r.apiGroups, resources: r.resources,
        ...(d.kind === 'Role' ? { namespaces: [d.metadata?.namespace ?? 'default'] } : {}),
        ...(r.resourceNames ? { resourceNames: r.resourceNames } : {}),
      });
    }
  }
  if (rules.length === 0) throw new Error(`${path}: no ClusterRole or Role rules`);
  return rules;
}
