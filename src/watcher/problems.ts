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

  constructor(private readonly o: ProblemEventsOptions) {}

  update(problems: readonly ModelProblem[]): void {
    const current = new Set<string>();
    for (const p of problems) {
      const key = `${p.service}\n${p.reason}\n${p.message}`;
      current.add(key);
      if (this.reported.has(key) || !this.o.isLeader()) continue;
      const slash = p.service.indexOf('/');
      const svc = this.o.service(p.service.slice(0, slash), p.service.slice(slash + 1));
      if (!svc) continue;
      this.reported.add(key);
      void this.o.events.record(svc, p.reason, p.message);
    }
    for (const k of this.reported) if (!current.has(k)) this.reported.delete(k);
  }
}
