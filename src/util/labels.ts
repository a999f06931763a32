// Kubernetes label selector semantics (metav1.LabelSelector): all matchLabels and all matchExpressions must
// hold; an empty selector matches everything.
import type { LabelSelector } from '../config/types.js';

export type Labels = Readonly<Record<string, string>> | undefined;

export function matchesSelector(selector: LabelSelector, labels: Labels): boolean {
  const l = labels ?? {};
  for (const [k, v] of Object.entries(selector.matchLabels)) if (l[k] !== v) return false;
  for (const e of selector.matchExpressions) {
    const has = Object.prototype.hasOwnProperty.call(l, e.key);
    switch (e.operator) {
      case 'In':
        if (!has || !e.values.includes(l[e.key]!)) return false;
        break;
      case 'NotIn':
        if (has && e.values.includes(l[e.key]!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}

/** True when any selector of a non-empty list matches; an empty list places no restriction. */
export const matchesAny = (selectors: readonly LabelSelector[], labels: Labels): boolean =>
  selectors.length === 0 || selectors.some((s) => matchesSelector(s, labels));
