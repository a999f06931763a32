// Reports the data plane's per-Service problems (a bad scheduler or forwarding annotation, a port another
// Service already serves on the same VIP, no node of the VIP's family) as Events on the Service. desiredState()
// lists every current problem on every computation; an Event is recorded when a problem appears, not on
// every pass, and again only if it went away and came back. Only the allocator reports: every LB host
// computes the same problems, and one Event is enough.
import type { V1Service } from '@kubernetes/client-node';
import type { ModelProblem } from '../model/types.js';
import type { EventRecorder } from './events.js';

export interface ProblemEventsOptions {
  events: Pick<EventRecorder, 'record'>;
  service: (namespace: string, name: string) => V1Service | undefined;
  isLeader: () => boolean;
}

export class ProblemEvents {
  private readonly reported = new Set<string>();
  /** The reported keys by Service, so an update for a few Services looks at theirs only. */
  private readonly byService = new Map<string, Set<string>>();
  /** Current problems not reported yet (this host did not lead when they were computed), by key. */
  private readonly pending = new Map<string, ModelProblem>();

  constructor(private readonly o: ProblemEventsOptions) {}

  /** Every current problem (a whole computation). */
  update(problems: readonly ModelProblem[]): void {
    const current = new Set<string>();
    for (const p of problems) current.add(this.note(p));
    for (const k of this.reported) if (!current.has(k)) this.forget(k);
    for (const k of this.pending.keys()) if (!current.has(k)) this.pending.delete(k);
  }

  /**
   * Reports what is still wrong and was computed while another host led: called when this host starts to
   * lead, since nothing may compute those Services again for a long time (seen in the soak: a bad
   * annotation set while the allocator was killed got its Event 110 s later).
   */
  reportPending(): void {
    for (const p of [...this.pending.values()]) this.note(p);
  }

  /** The current problems of some Services only (an incremental computation): the others stay as they were. */
  updateFor(byService: ReadonlyMap<string, readonly ModelProblem[]>): void {
    if (byService.size === 0) return;
    const current = new Set<string>();
    for (const list of byService.values()) for (const p of list) current.add(this.note(p));
    for (const id of byService.keys()) {
      const keys = this.byService.get(id);
      if (!keys) continue;
      for (const k of keys) if (!current.has(k)) this.forget(k);
    }
    for (const [k, p] of this.pending) if (byService.has(p.service) && !current.has(k)) this.pending.delete(k);
  }

  private forget(key: string): void {
    this.reported.delete(key);
    const id = key.slice(0, key.indexOf('\n'));
    const keys = this.byService.get(id);
    keys?.delete(key);
    if (keys?.size === 0) this.byService.delete(id);
  }

  private note(p: ModelProblem): string {
    const key = `${p.service}\n${p.reason}\n${p.message}`;
    if (this.reported.has(key)) return key;
    if (!this.o.isLeader()) {
      this.pending.set(key, p);
      return key;
    }
    this.pending.delete(key);
    const slash = p.service.indexOf('/');
    const svc = this.o.service(p.service.slice(0, slash), p.service.slice(slash + 1));
    if (!svc) return key;
    this.reported.add(key);
    let keys = this.byService.get(p.service);
    if (!keys) this.byService.set(p.service, (keys = new Set()));
    keys.add(key);
    void this.o.events.record(svc, p.reason, p.message);
    return key;
  }
}
