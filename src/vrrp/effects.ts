// Carries out the reducer's effects against the VIP binder and the IPVS sync daemon. Both are injected: the
// real ones live in src/vip and src/ipvs, tests pass their own recorders. Effects run one step at a time, in
// order, so a release and a later bind of the same group never overlap; the groups of one release go in the
// same step, without waiting for anything else ("release all at once" when keepalived dies). A failure is logged and reported, never thrown: the
// next state change or resync retries.
import type { Logger } from '../util/log.js';
import type { SyncMode, VrrpEffect } from './state.js';

export interface VipController {
  /** Bind every VIP of the group and announce it (GARP / unsolicited NA). Must be idempotent. */
  bindGroup(group: string): Promise<void>;
  /** Remove every VIP of the group. Must be idempotent. */
  releaseGroup(group: string): Promise<void>;
  /** Announce the group's bound VIPs again (GARP / NA) without binding anything. */
  announceGroup?(group: string): Promise<void>;
}

export interface SyncDaemonController {
  /** Make the kernel's IPVS sync daemons match: master and/or backup running, or neither. */
  setMode(mode: SyncMode): Promise<void>;
}

export interface EffectSink {
  report(level: 'info' | 'warn' | 'error', message: string): void;
}

export class EffectRunner {
  private chain: Promise<void> = Promise.resolve();
  private failures = 0;

  constructor(
    private readonly vips: VipController,
    private readonly sync: SyncDaemonController | undefined,
    private readonly log: Logger,
    private readonly sink?: EffectSink,
  ) {}

  /** Queue the effects of one reducer step; the returned promise settles when they have run. */
  run(effects: VrrpEffect[]): Promise<void> {
    if (effects.length === 0) return this.chain;
    this.chain = this.chain.then(() => this.runNow(effects));
    return this.chain;
  }

  /** Resolves when everything queued so far has run. */
  idle(): Promise<void> {
    return this.chain;
  }

  get failureCount(): number {
    return this.failures;
  }

  private async runNow(effects: VrrpEffect[]): Promise<void> {
    for (const e of effects) {
      try {
        switch (e.type) {
          case 'bind':
            await this.vips.bindGroup(e.group);
            break;
          case 'release': {
            // Every group is tried even when one fails. One after another: the real binder keeps one
            // ownership file and its concurrent rewrites collide.
            const failed: string[] = [];
            for (const g of e.groups) {
              try {
                await this.vips.releaseGroup(g);
              } catch (err) {
                failed.push(`${g}: ${(err as Error).message}`);
              }
            }
            if (failed.length > 0) throw new Error(`release failed for ${failed.join('; ')}`);
            break;
          }
          case 'announce':
            await this.vips.announceGroup?.(e.group);
            break;
          case 'sync':
            if (this.sync) await this.sync.setMode(e.mode);
            break;
          case 'report':
            this.log[e.level]({ vrrp: true }, e.message);
            this.sink?.report(e.level, e.message);
            break;
        }
      } catch (err) {
        this.failures++;
        this.log.error({ err, effect: e }, 'VRRP effect failed');
        this.sink?.report('error', `${e.type} failed: ${(err as Error).message}`);
      }
    }
  }
}
