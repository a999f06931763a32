// Leader election over a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it: the holder
// renews every retry period; others take over only after they have seen the same record unchanged for a
// whole lease duration by their own clock (so clock skew between LB hosts does not matter); the holder
// steps down when it could not renew within the renew deadline. Every write carries the resourceVersion it
// read, so two candidates can never both win (the loser gets 409).
//
// The step-down is a timer, not a check after the next request: a request to an API server that stopped
// answering may hang, and the holder must stop allocating before a peer's lease-duration wait ends. The
// renewal is timed from when its request was sent, so a slow answer cannot stretch the deadline.
import { ApiException, type CoordinationV1Api, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from '../util/log.js';
import { sleep } from '../util/backoff.js';
import type { TokenBucket } from '../util/rate-limit.js';
import { requestTimeout } from './client.js';

export interface LeaseOptions {
  api: CoordinationV1Api;
  namespace: string;
  name: string;
  identity: string;
  durationSeconds: number;
  renewDeadlineSeconds: number;
  retryPeriodSeconds: number;
  limiter: TokenBucket;
  log: Logger;
  onStartedLeading: (term: number) => void;
  onStoppedLeading: () => void;
  now?: () => number;
}

export interface LeaseStatus {
  leader: boolean;
  holder: string | undefined;
  /** leaseTransitions of the record we hold: our leader term, written into the audit log. */
  term: number;
  lastRenewAt: number | undefined;
  /** When the API server last answered a Lease request (any host asks every retry period). */
  lastContactAt: number | undefined;
  lastError: string | undefined;
}

export class LeaderElector {
  private stopped = false;
  private readonly stopController = new AbortController();
  private loop: Promise<void> | undefined;
  private observed: { key: string; at: number } | undefined;
  private deadline: NodeJS.Timeout | undefined;
  readonly status: LeaseStatus = { leader: false, holder: undefined, term: 0, lastRenewAt: undefined, lastContactAt: undefined, lastError: undefined };
  private readonly now: () => number;

  constructor(private readonly o: LeaseOptions) {
    this.now = o.now ?? Date.now;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /**
   * Leadership as of this moment, for a decision about to be made: the step-down timer alone is not enough,
   * because a process that was frozen (a stalled VM, SIGSTOP, a long GC) runs its pending work before its
   * timers when it wakes, and would allocate on a Lease a peer may have taken meanwhile.
   */
  leadsNow(): boolean {
    return this.status.leader && this.status.lastRenewAt !== undefined && this.now() - this.status.lastRenewAt < this.o.renewDeadlineSeconds * 1000;
  }

  /** Stops campaigning; a leader releases the Lease so a peer takes over without waiting for expiry. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopController.abort();
    await this.loop;
    clearTimeout(this.deadline);
    if (this.status.leader) {
      await this.release().catch((err) => this.o.log.warn({ err: String(err) }, 'could not release the Lease'));
      this.setLeader(false);
    }
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.tryAcquireOrRenew();
        this.status.lastError = undefined;
      } catch (err) {
        this.status.lastError = err instanceof Error ? err.message : String(err);
        this.o.log.warn({ err: this.status.lastError }, 'lease: request failed');
      }
      await sleep(this.o.retryPeriodSeconds * 1000, this.stopController.signal);
    }
  }

  /**
   * Each request may take up to the renew deadline (the deadline timer decides leadership, not the request);
   * stop() cancels a campaign request at once.
   */
  private get options() {
    return requestTimeout(Math.max(1000, this.o.renewDeadlineSeconds * 1000), undefined, this.stopped ? undefined : this.stopController.signal);
  }

  private setLeader(leader: boolean): void {
    if (leader === this.status.leader) return;
    this.status.leader = leader;
    if (leader) this.o.onStartedLeading(this.status.term);
    else this.o.onStoppedLeading();
  }

  private micro(): Date {
    return new Date(this.now());
  }

  private async tryAcquireOrRenew(): Promise<void> {
    const { api, namespace, name, identity } = this.o;
    await this.o.limiter.take('critical');
    const attemptAt = this.now();
    let lease: V1Lease;
    try {
      lease = await api.readNamespacedLease({ name, namespace }, this.options);
      this.status.lastContactAt = this.now();
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) {
        this.status.lastContactAt = this.now();
        await this.o.limiter.take('critical');
        const created = await api.createNamespacedLease({
          namespace,
          body: {
            metadata: { name, namespace },
            spec: { holderIdentity: identity, leaseDurationSeconds: this.o.durationSeconds, acquireTime: this.micro(), renewTime: this.micro(), leaseTransitions: 0 },
          },
        }, this.options).catch((e: unknown) => {
          if (e instanceof ApiException && e.code === 409) return undefined; // a peer created it first
          if (e instanceof ApiException && e.code === 404) {
            throw new Error(`cannot create Lease ${namespace}/${name}: namespace ${namespace} does not exist (apply deploy/rbac.yaml, or set kubernetes.lease.namespace)`);
          }
          throw e;
        });
        if (created) this.won(created, attemptAt);
        return;
      }
      throw err;
    }
    const spec = lease.spec ?? {};
    this.status.holder = spec.holderIdentity ?? undefined;
    const recordKey = `${spec.holderIdentity}|${String(spec.renewTime)}|${spec.leaseTransitions}`;
    if (this.observed?.key !== recordKey) this.observed = { key: recordKey, at: this.now() };
    const held = spec.holderIdentity === identity;
    const duration = (spec.leaseDurationSeconds ?? this.o.durationSeconds) * 1000;
    const expired = !spec.holderIdentity || this.now() - this.observed.at > duration;
    if (!held && !expired) {
      this.setLeader(false);
      return;
    }
    const transitions = (spec.leaseTransitions ?? 0) + (held ? 0 : 1);
    const body: V1Lease = {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: this.o.durationSeconds,
        acquireTime: held ? spec.acquireTime : this.micro(),
        renewTime: this.micro(),
        leaseTransitions: transitions,
      },
    };
    await this.o.limiter.take('critical');
    try {
      const updated = await api.replaceNamespacedLease({ name, namespace, body }, this.options);
      this.won(updated, attemptAt);
    } catch (err) {
      if (err instanceof ApiException && err.code === 409) {
        // Someone else wrote the record since we read it: not ours this round.
        if (!held) this.setLeader(false);
        return;
      }
      throw err;
    }
  }

  private won(lease: V1Lease, attemptAt: number): void {
    if (this.stopped && !this.status.leader) return;
    this.status.term = lease.spec?.leaseTransitions ?? 0;
    this.status.holder = this.o.identity;
    this.status.lastRenewAt = attemptAt;
    this.observed = undefined;
    clearTimeout(this.deadline);
    const left = attemptAt + this.o.renewDeadlineSeconds * 1000 - this.now();
    this.deadline = setTimeout(() => {
      this.o.log.error({ lease: `${this.o.namespace}/${this.o.name}` }, 'lease: could not renew within the renew deadline; stepping down');
      this.setLeader(false);
    }, Math.max(0, left));
    this.deadline.unref();
    this.setLeader(true);
  }

  private async release(): Promise<void> {
    const { api, namespace, name } = this.o;
    await this.o.limiter.take('critical');
    const lease = await api.readNamespacedLease({ name, namespace }, this.options);
    if (lease.spec?.holderIdentity !== this.o.identity) return;
    // An empty holder lets a candidate take over at its next retry instead of after a full duration.
    await this.o.limiter.take('critical');
    await api.replaceNamespacedLease({ name, namespace, body: { ...lease, spec: { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: this.micro() } } }, this.options);
  }
}
