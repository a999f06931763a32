// Authorization as RBAC rules for the one user the simulator knows, so tests can take permissions away and
// watch the client cope with 403s and with SelfSubjectAccessReview answers.
export interface AccessRule {
  verbs: string[];
  apiGroups: string[];
  /** Plural names, "plural/subresource", or "*". */
  resources: string[];
  /** Limit the rule to these namespaces (cluster-scoped requests never match a namespaced rule). */
  namespaces?: string[];
  resourceNames?: string[];
}

export interface Attributes {
  verb: string;
  group: string;
  resource: string;
  subresource: string;
  namespace: string;
  name: string;
}

export const ALLOW_ALL: AccessRule[] = [{ verbs: ['*'], apiGroups: ['*'], resources: ['*'] }];

const has = (list: readonly string[], v: string) => list.includes('*') || list.includes(v);

export function allowed(rules: readonly AccessRule[], a: Attributes): boolean {
  const res = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  return rules.some(
    (r) =>
      has(r.verbs, a.verb) &&
      has(r.apiGroups, a.group) &&
      (r.resources.includes('*') || r.resources.includes(res)) &&
      (!r.namespaces || (a.namespace !== '' && has(r.namespaces, a.namespace))) &&
      (!r.resourceNames || (a.name !== '' && r.resourceNames.includes(a.name))),
  );
}
