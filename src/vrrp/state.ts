// The daemon's view of VRRP, as a pure reducer: (world, event) → (world, effects). keepalived elects; this
// decides what the daemon does about it. The effects runner (effects.ts) carries the effects out.
//
// Rules (docs/vrrp.md has the table):
// - MASTER → bind the group's VIPs (the binder sends GARP/NA); BACKUP/FAULT/STOP/INIT/DELETED → release them.
// - A repeated state asks for nothing: no flap when keepalived repeats itself or the daemon re-reads a state.
// - At daemon start a group's holding is *unknown*: a crashed predecessor may have left VIPs bound. Nothing is
//   released before keepalived says what the group is, so a daemon restart under a MASTER keepalived keeps
//   the VIPs up (a bind of bound VIPs changes nothing); a BACKUP report clears stale ones.
// - A master told of a lower-priority advert (the peer was master for a moment and may have sent GARPs for the
//   VIPs) announces the group's VIPs again, so neighbours point back at this host instead of a backup that has
//   released them.
// - keepalived gone → every group releases at once (keepalived no longer defends the election, so the peer
//   takes over), and the sync daemon stops being master.
// - IPVS sync daemon: master while this host is master of any group, backup while any group is not master
//   here (its master elsewhere sends us its connections). With active-active groups both run.

export type GroupPhase = 'UNKNOWN' | 'INIT' | 'BACKUP' | 'MASTER' | 'FAULT' | 'STOP' | 'DELETED' | 'KEEPALIVED_DOWN';
export type ReportedState = 'INIT' | 'BACKUP' | 'MASTER' | 'FAULT' | 'STOP' | 'DELETED';

export interface GroupView {
  phase: GroupPhase;
  /** Whether the daemon has the group's VIPs bound; undefined = not known yet (just started). */
  holding: boolean | undefined;
}

export interface SyncMode {
  master: boolean;
  backup: boolean;
}

export interface VrrpWorld {
  keepalived: 'unknown' | 'running' | 'down' | 'stopped';
  groups: Record<string, GroupView>;
  /** Last sync-daemon mode asked for; undefined before the first decision. */
  sync: SyncMode | undefined;
}

export type VrrpEvent =
  | { type: 'state'; group: string; state: ReportedState }
  /** keepalived's MASTER_RX_LOWER_PRI: master here, and an advert of lower priority arrived. */
  | { type: 'lower-priority-advert'; group: string }
  /** States read back from a running keepalived when the daemon starts (JSON dump). */
  | { type: 'recovered'; states: Record<string, ReportedState> }
  | { type: 'keepalived-started' }
  | { type: 'keepalived-exited'; code: number | null; signal: string | null }
  | { type: 'groups-changed'; groups: string[] }
  | { type: 'shutdown' };

export type VrrpEffect =
  | { type: 'bind'; group: string }
  /** Announce the group's bound VIPs again (GARP / NA), binding nothing new. */
  | { type: 'announce'; group: string }
  | { type: 'release'; groups: string[] }
  | { type: 'sync'; mode: SyncMode }
  | { type: 'report'; level: 'info' | 'warn' | 'error'; message: string };

export interface Step {
  world: VrrpWorld;
  effects: VrrpEffect[];
}

export function initialWorld(groups: string[]): VrrpWorld {
  const g: Record<string, GroupView> = {};
  for (const name of [...groups].sort()) g[name] = { phase: 'UNKNOWN', holding: undefined };
  return { keepalived: 'unknown', groups: g, sync: undefined };
}

function syncFor(world: VrrpWorld): SyncMode {
  if (world.keepalived === 'stopped') return { master: false, backup: false };
  const views = Object.values(world.groups);
  // Before keepalived has told us anything, keep whatever runs (a restart must not stop a master sync daemon).
  const known = views.filter((v) => v.phase !== 'UNKNOWN');
  if (known.length === 0) return world.sync ?? { master: false, backup: false };
  return { master: known.some((v) => v.phase === 'MASTER'), backup: views.some((v) => v.phase !== 'MASTER') };
}

function withSync(world: VrrpWorld, effects: VrrpEffect[]): Step {
  const want = syncFor(world);
  const have = world.sync;
  if (have && have.master === want.master && have.backup === want.backup) return { world, effects };
  if (!have && !want.master && !want.backup) return { world: { ...world, sync: want }, effects };
  return { world: { ...world, sync: want }, effects: [...effects, { type: 'sync', mode: want }] };
}

function applyStates(world: VrrpWorld, states: Record<string, ReportedState>): Step {
  const groups = { ...world.groups };
  const effects: VrrpEffect[] = [];
  const release: string[] = [];
  for (const [name, state] of Object.entries(states).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const view = groups[name];
    if (!view) {
      effects.push({ type: 'report', level: 'warn', message: `keepalived reported instance "${name}", which is not one of our groups` });
      continue;
    }
    if (state === 'MASTER') {
      if (view.holding !== true) effects.push({ type: 'bind', group: name });
      if (view.phase !== 'MASTER') effects.push({ type: 'report', level: 'info', message: `group ${name}: ${view.phase} → MASTER` });
      groups[name] = { phase: 'MASTER', holding: true };
    } else {
      if (view.holding !== false) release.push(name);
      if (view.phase !== state) effects.push({ type: 'report', level: state === 'FAULT' ? 'warn' : 'info', message: `group ${name}: ${view.phase} → ${state}` });
      groups[name] = { phase: state, holding: false };
    }
  }
  // Releases go first: a host that loses one group and wins another frees addresses before it claims new ones.
  const ordered: VrrpEffect[] = release.length > 0 ? [{ type: 'release', groups: release }, ...effects] : effects;
  return withSync({ ...world, keepalived: world.keepalived === 'stopped' ? 'stopped' : 'running', groups }, ordered);
}

export function reduce(world: VrrpWorld, event: VrrpEvent): Step {
  switch (event.type) {
    case 'state':
      if (world.keepalived === 'stopped') return { world, effects: [] };
      return applyStates(world, { [event.group]: event.state });
    case 'recovered':
      if (world.keepalived === 'stopped') return { world, effects: [] };
      return applyStates(world, event.states);
    case 'lower-priority-advert': {
      const view = world.groups[event.group];
      if (world.keepalived === 'stopped' || view?.phase !== 'MASTER' || view.holding !== true) return { world, effects: [] };
      return { world, effects: [{ type: 'announce', group: event.group }] };
    }
    case 'keepalived-started': {
      if (world.keepalived === 'stopped') return { world, effects: [] };
      return { world: { ...world, keepalived: 'running' }, effects: [] };
    }
    case 'keepalived-exited': {
      if (world.keepalived === 'stopped') return { world, effects: [] };
      const groups: Record<string, GroupView> = {};
      const release: string[] = [];
      for (const [name, view] of Object.entries(world.groups)) {
        if (view.holding !== false) release.push(name);
        groups[name] = { phase: 'KEEPALIVED_DOWN', holding: false };
      }
      const how = event.signal ? `signal ${event.signal}` : `status ${event.code}`;
      const effects: VrrpEffect[] = [];
      if (release.length > 0) effects.push({ type: 'release', groups: release });
      effects.push({ type: 'report', level: 'error', message: `keepalived exited (${how}); VIPs released, restarting it` });
      return withSync({ ...world, keepalived: 'down', groups }, effects);
    }
    case 'groups-changed': {
      const groups: Record<string, GroupView> = {};
      const release: string[] = [];
      const wanted = new Set(event.groups);
      for (const [name, view] of Object.entries(world.groups)) {
        if (wanted.has(name)) groups[name] = view;
        else if (view.holding !== false) release.push(name);
      }
      // A new group holds nothing yet; keepalived reports its state after the reload.
      for (const name of [...wanted].sort()) groups[name] ??= { phase: 'INIT', holding: false };
      const effects: VrrpEffect[] = release.length > 0 ? [{ type: 'release', groups: release }] : [];
      return withSync({ ...world, groups }, effects);
    }
    case 'shutdown': {
      const release = Object.entries(world.groups)
        .filter(([, v]) => v.holding !== false)
        .map(([n]) => n);
      const groups: Record<string, GroupView> = {};
      for (const name of Object.keys(world.groups)) groups[name] = { phase: 'STOP', holding: false };
      const effects: VrrpEffect[] = release.length > 0 ? [{ type: 'release', groups: release }] : [];
      const next: VrrpWorld = { keepalived: 'stopped', groups, sync: world.sync };
      return withSync(next, effects);
    }
  }
}
