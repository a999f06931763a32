// Wiring of the VRRP side of the daemon: render + validate + swap keepalived.conf, run keepalived, read its
// notify FIFO, fold everything through the reducer and run the effects. No decisions live here; they are in
// state.ts (what to do) and supervisor.ts (when to restart).
import { mkdir } from 'node:fs/promises';
import { EventEmitter } from 'node:events';
import type { VrrpConfig } from '../config/types.js';
import type { Logger } from '../util/log.js';
import { EffectRunner, type EffectSink, type SyncDaemonController, type VipController } from './effects.js';
import { NotifyFifo } from './fifo.js';
import { installKeepalivedConfig } from './install.js';
import type { NotifyEvent } from './notify.js';
import { requestStates } from './recover.js';
import { keepalivedPaths, renderKeepalivedConf, type DaemonTracking, type KeepalivedPaths } from './render.js';
import { initialWorld, reduce, type Step, type VrrpEvent, type VrrpWorld } from './state.js';
import { KeepalivedSupervisor, type SupervisorOptions } from './supervisor.js';
import { chooseTracking, claimDaemonIdentity, currentUserName } from './tracking.js';

export interface VrrpControllerOptions {
  config: VrrpConfig;
  vips: VipController;
  sync?: SyncDaemonController | undefined;
  log: Logger;
  /** Run keepalived (and its config check) in this network namespace. */
  netns?: string | undefined;
  /** Default: track_process in the initial namespace, the pid-file script elsewhere. */
  tracking?: DaemonTracking;
  scriptUser?: string;
  /** Name this process `ipvs-lb` and write its pid file (default true; the tracker needs both). */
  claimIdentity?: boolean;
  supervisor?: Partial<Pick<SupervisorOptions, 'backoff' | 'stableAfterMs' | 'stopTimeoutMs' | 'adoptPollMs' | 'random'>>;
  /** Where keepalived writes its JSON state dump (fixed in 2.2.7; tests may point elsewhere). */
  jsonDumpFile?: string;
  /** How an adopted keepalived's states are read back (tests wrap it to widen the window a dump is in flight). */
  requestStates?: typeof requestStates;
  sink?: EffectSink;
}

interface Events {
  transition: [{ event: VrrpEvent; step: Step }];
}

export class VrrpController extends EventEmitter<Events> {
  readonly paths: KeepalivedPaths;
  private config: VrrpConfig;
  private world: VrrpWorld;
  private readonly runner: EffectRunner;
  private readonly fifo: NotifyFifo;
  private readonly supervisor: KeepalivedSupervisor;
  private readonly tracking: DaemonTracking;
  private releaseIdentity: (() => void) | undefined;
  /** While an adopted keepalived's dump is in flight: the last state each group's notifications reported. */
  private notifiedDuringRecovery: Map<string, NotifyEvent['state']> | undefined;

  constructor(private readonly o: VrrpControllerOptions) {
    super();
    this.config = o.config;
    this.paths = keepalivedPaths(o.config.configPath);
    this.world = initialWorld(o.config.groups.map((g) => g.name));
    // With the sync daemon turned off in the config, sync effects are dropped here rather than in every caller.
    this.runner = new EffectRunner(o.vips, o.config.syncDaemon.enabled ? o.sync : undefined, o.log, o.sink);
    const advert = Math.min(1, ...o.config.groups.map((g) => g.advertIntervalSeconds));
    this.tracking =
      o.tracking ??
      chooseTracking({ pidFile: this.paths.daemonPid, advertSeconds: advert, ...(o.netns ? { initialNetns: false } : {}) });
    this.fifo = new NotifyFifo(this.paths.fifo, (e) => this.onNotify(e), o.log);
    this.supervisor = new KeepalivedSupervisor({ keepalivedPath: o.config.keepalivedPath, paths: this.paths, netns: o.netns, log: o.log, ...o.supervisor });
    this.supervisor.on('started', ({ pid, adopted }) => {
      o.log.info({ pid, adopted }, 'keepalived running');
      void this.dispatch({ type: 'keepalived-started' });
    });
    this.supervisor.on('exited', (e) => {
      o.log.error({ code: e.code, signal: e.signal, lastLines: e.lastLines }, 'keepalived exited');
      void this.dispatch({ type: 'keepalived-exited', code: e.code, signal: e.signal });
    });
    this.supervisor.on('restart-scheduled', (r) => o.log.warn(r, 'keepalived restart scheduled'));
  }

  get state(): VrrpWorld {
    return this.world;
  }

  /**
   * Whether this host is master of the group now: the reconciler binds a new Service's VIP at once only
   * then (otherwise the next MASTER transition binds it with the rest of the group).
   */
  isMaster(group: string): boolean {
    return this.world.groups[group]?.phase === 'MASTER';
  }

  get keepalivedPid(): number | undefined {
    return this.supervisor.pid;
  }

  get crashes(): number {
    return this.supervisor.crashes;
  }

  render(config: VrrpConfig = this.config): string {
    return renderKeepalivedConf(config, { fifoPath: this.paths.fifo, tracking: this.tracking, scriptUser: this.o.scriptUser ?? currentUserName() });
  }

  private onNotify(e: NotifyEvent): void {
    // The moment keepalived's verdict reached us: with the "→ STATE" report that follows the effects, it
    // splits a failover into election and the daemon's own work. Lower-priority notices come once per
    // advert interval while a peer thinks it is master, so they stay at debug.
    this.o.log[e.lowerPriority ? 'debug' : 'info']({ notify: e }, 'keepalived notify');
    if (e.kind !== 'INSTANCE') {
      this.o.log.debug({ notify: e }, 'ignored keepalived group notification (no sync groups are rendered)');
      return;
    }
    if (e.lowerPriority) void this.dispatch({ type: 'lower-priority-advert', group: e.name });
    else {
      this.notifiedDuringRecovery?.set(e.name, e.state);
      void this.dispatch({ type: 'state', group: e.name, state: e.state });
    }
  }

  /** Feed one event through the reducer; resolves when its effects have run. */
  dispatch(event: VrrpEvent): Promise<void> {
    const step = reduce(this.world, event);
    this.world = step.world;
    this.emit('transition', { event, step });
    return this.runner.run(step.effects);
  }

  /** Resolves when every effect asked for so far has run. */
  idle(): Promise<void> {
    return this.runner.idle();
  }

  async start(): Promise<void> {
    await mkdir(this.config.configPath.replace(/\/[^/]*$/, '') || '/', { recursive: true, mode: 0o750 });
    if (this.o.claimIdentity !== false) this.releaseIdentity = claimDaemonIdentity(this.paths.daemonPid);
    let installed: { changed: boolean };
    let adopted: boolean;
    this.notifiedDuringRecovery = new Map();
    try {
      installed = await installKeepalivedConfig(this.paths.config, this.render(), { keepalivedPath: this.config.keepalivedPath, netns: this.o.netns });
      // The FIFO is open before keepalived starts, so no transition is written while nobody listens.
      await this.fifo.open();
      adopted = await this.supervisor.start();
    } catch (err) {
      // A daemon that cannot start must not leave a pid file that tells keepalived it is alive.
      this.notifiedDuringRecovery = undefined;
      await this.fifo.close();
      this.releaseIdentity?.();
      this.releaseIdentity = undefined;
      throw err;
    }
    if (!adopted) this.notifiedDuringRecovery = undefined;
    else {
      // keepalived writes every transition to the FIFO in order, so the last line read for a group is newer
      // than any dump taken before it was read. A dump taken before a transition can land after that
      // transition's line (a daemon that comes back turns FAULT into BACKUP while the dump is polled for),
      // and applied as it is, it would hold the group in a state keepalived has left until the next
      // transition, which for a BACKUP may never come. So what the FIFO said during the wait wins.
      const states = await (this.o.requestStates ?? requestStates)((sig) => this.supervisor.signal(sig), {
        keepalivedPath: this.config.keepalivedPath,
        ...(this.o.jsonDumpFile ? { dumpFile: this.o.jsonDumpFile } : {}),
      });
      const notified = this.notifiedDuringRecovery ?? new Map();
      this.notifiedDuringRecovery = undefined;
      if (states) await this.dispatch({ type: 'recovered', states: { ...states, ...Object.fromEntries(notified) } });
      else this.o.log.warn('the adopted keepalived did not dump its state; waiting for its next notification');
      // It runs the file it was started with; a config edited while no daemon ran reaches it by reload.
      if (installed.changed) this.supervisor.reload();
    }
  }

  /**
   * A new config: render it, and if the bytes differ, validate, swap and SIGHUP keepalived (a reload keeps
   * the instances' states). Throws KeepalivedConfigError, leaving the running file alone, if keepalived
   * refuses it. Returns whether anything changed.
   */
  async applyConfig(config: VrrpConfig): Promise<boolean> {
    const text = this.render(config);
    const r = await installKeepalivedConfig(this.paths.config, text, { keepalivedPath: config.keepalivedPath, netns: this.o.netns });
    this.config = config;
    await this.dispatch({ type: 'groups-changed', groups: config.groups.map((g) => g.name) });
    if (r.changed) this.supervisor.reload();
    return r.changed;
  }

  /** Release every VIP, stop keepalived (the peer takes over), then wait for the sync daemons to stop; close the FIFO. */
  async stop(): Promise<void> {
    await this.dispatch({ type: 'shutdown' });
    await this.supervisor.stop();
    await this.runner.idle();
    await this.fifo.close({ remove: true });
    this.releaseIdentity?.();
    this.releaseIdentity = undefined;
  }
}
