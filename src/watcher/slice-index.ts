// EndpointSlices by the Service they belong to (label kubernetes.io/service-name), kept current from the
// reflector's events, so one Service's slices are found without scanning every slice of the cluster.
import type { V1EndpointSlice } from '@kubernetes/client-node';
import { SERVICE_NAME_LABEL } from '../model/desired.js';
import type { ChangeType } from './reflector.js';

const ownerOf = (s: V1EndpointSlice | undefined): string | undefined => {
  const name = s?.metadata?.labels?.[SERVICE_NAME_LABEL];
  return name === undefined ? undefined : `${s?.metadata?.namespace ?? ''}/${name}`;
};
const keyOf = (s: V1EndpointSlice): string => `${s.metadata?.namespace ?? ''}/${s.metadata?.name ?? ''}`;

export class SliceIndex {
  private readonly byService = new Map<string, Map<string, V1EndpointSlice>>();

  /** Takes one reflector event; returns the Services (`namespace/name`) whose slices changed. */
  note(type: ChangeType, slice: V1EndpointSlice, old: V1EndpointSlice | undefined): string[] {
    const key = keyOf(slice);
    const before = ownerOf(old);
    const after = type === 'delete' ? undefined : ownerOf(slice);
    if (before !== undefined) this.drop(before, key);
    // A deleted slice's last known object may carry the label where `old` did not.
    if (type === 'delete') {
      const owner = ownerOf(slice);
      if (owner !== undefined && owner !== before) this.drop(owner, key);
      return [...new Set([before, owner].filter((x): x is string => x !== undefined))];
    }
    if (after !== undefined) {
      let m = this.byService.get(after);
      if (!m) this.byService.set(after, (m = new Map()));
      m.set(key, slice);
    }
    return [...new Set([before, after].filter((x): x is string => x !== undefined))];
  }

  of(service: string): V1EndpointSlice[] {
    const m = this.byService.get(service);
    return m ? [...m.values()] : [];
  }

  private drop(service: string, key: string): void {
    const m = this.byService.get(service);
    if (!m) return;
    m.delete(key);
    if (m.size === 0) this.byService.delete(service);
  }
}
