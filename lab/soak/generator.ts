// The soak's plan: a deterministic sequence of steps, each a few Service operations and at most one fault,
// drawn from a seeded Rng against the generator's own model of the Services it made. It never looks at what
// the system did, so the same seed gives the same steps on every run: a printed seed replays a failure.
import type { Rng } from './rng.js';
import { FORWARDING_VALID, GROUPS, HOSTS, NODE_NAMES, POOLS, PORT_CHOICES, SCHEDULERS_VALID, SHARING_KEYS, VIP_PREFIX } from './world.js';

export const A = {
  ips: 'ipvs-lb.io/load-balancer-ips',
  pool: 'ipvs-lb.io/address-pool',
  share: 'ipvs-lb.io/allow-shared-ip',
  scheduler: 'ipvs-lb.io/scheduler',
  forwarding: 'ipvs-lb.io/forwarding',
} as const;

export interface PortSpec {
  name: string;
  port: number;
  protocol: 'TCP' | 'UDP';
}

export interface ServiceSpec {
  name: string;
  ports: PortSpec[];
  /** Only ipvs-lb.io/ annotations. */
  annotations: Record<string, string>;
  /** The deprecated spec field, the other way to ask for an address. */
  loadBalancerIP?: string;
}

export type Op =
  | { kind: 'create'; service: ServiceSpec }
  | { kind: 'delete'; name: string }
  | { kind: 'edit-ports'; name: string; ports: PortSpec[] }
  /** Scheduler, forwarding or pool annotations; null removes. */
  | { kind: 'edit-annotations'; name: string; set: Record<string, string | null> }
  | { kind: 'request-address'; name: string; via: 'annotation' | 'field'; address: string | null }
  | { kind: 'share-key'; name: string; key: string | null };
export type OpKind = Op['kind'];
export const OP_KINDS: readonly OpKind[] = ['create', 'delete', 'edit-ports', 'edit-annotations', 'request-address', 'share-key'];

export type Fault =
  /** SIGKILL keepalived on the current master of the group: the parent only, or the parent and its VRRP child. */
  | { kind: 'vrrp-master-kill'; group: string; all: boolean }
  /** SIGKILL the daemon (and with it its keepalived: the LB host's software dies), restart it after downMs. */
  | { kind: 'daemon-kill'; host: string; downMs: number; withKeepalived: boolean }
  /** The API simulator closes its listener and cuts every connection for downMs, then comes back. */
  | { kind: 'api-outage'; downMs: number; compact: boolean }
  /** Every API request fails with this status for durationMs. */
  | { kind: 'api-errors'; status: 429 | 500 | 503; durationMs: number }
  /** Every open watch ends (cleanly, like a server timeout, or by a reset connection). */
  | { kind: 'watch-drop'; abrupt: boolean }
  /** The node's Ready condition turns False for a few steps. */
  | { kind: 'node-notready'; node: string; forSteps: number };
export type FaultKind = Fault['kind'];
export const FAULT_KINDS: readonly FaultKind[] = ['vrrp-master-kill', 'daemon-kill', 'api-outage', 'api-errors', 'watch-drop', 'node-notready'];

export interface Step {
  /** 1-based. */
  index: number;
  ops: Op[];
  fault: Fault | undefined;
  /** Nodes whose NotReady period ends in this step (set Ready again before the ops). */
  nodesReady: string[];
}

export interface GeneratorOptions {
  maxServices: number;
  minOpsPerStep: number;
  maxOpsPerStep: number;
  /** Probability that a step carries a fault. */
  faultRate: number;
  faultKinds: readonly FaultKind[];
}

export const defaultGeneratorOptions: GeneratorOptions = {
  maxServices: 20,
  minOpsPerStep: 1,
  maxOpsPerStep: 4,
  faultRate: 0.6,
  faultKinds: FAULT_KINDS,
};

export interface GenState {
  /** Services as the generator made them, by name (kept sorted by name). */
  services: Record<string, ServiceSpec>;
  nextId: number;
  /** Recently deleted names: a create may reuse one (a Helm upgrade deletes and re-creates). */
  deleted: string[];
  /** NotReady nodes and the steps left before they are Ready again. */
  notReady: Record<string, number>;
  /** Fault kinds still to come in this round: every kind appears once per round, in a shuffled order. */
  deck: FaultKind[];
  step: number;
}

export const initialGenState = (): GenState => ({ services: {}, nextId: 1, deleted: [], notReady: {}, deck: [], step: 0 });

export function checkGeneratorOptions(o: GeneratorOptions): string[] {
  const problems: string[] = [];
  if (!Number.isInteger(o.maxServices) || o.maxServices < 1 || o.maxServices > 200) problems.push(`maxServices: must be 1-200 (got ${o.maxServices})`);
  if (!Number.isInteger(o.minOpsPerStep) || o.minOpsPerStep < 0) problems.push(`minOpsPerStep: must be an integer >= 0 (got ${o.minOpsPerStep})`);
  if (!Number.isInteger(o.maxOpsPerStep) || o.maxOpsPerStep < Math.max(1, o.minOpsPerStep)) problems.push(`maxOpsPerStep: must be an integer >= max(1, minOpsPerStep) (got ${o.maxOpsPerStep})`);
  if (!(o.faultRate >= 0 && o.faultRate <= 1)) problems.push(`faultRate: must be from 0 to 1 (got ${o.faultRate})`);
  for (const k of o.faultKinds) if (!FAULT_KINDS.includes(k)) problems.push(`faultKinds: unknown kind ${JSON.stringify(k)} (known: ${FAULT_KINDS.join(', ')})`);
  return problems;
}

// ---- Service specs ---------------------------------------------------------------------------------

function randomPorts(rng: Rng): PortSpec[] {
  const n = rng.chance(0.6) ? 1 : 2;
  return rng.shuffle(PORT_CHOICES).slice(0, n)
    .sort((a, b) => a.port - b.port || a.protocol.localeCompare(b.protocol))
    .map((p) => ({ name: `${p.protocol.toLowerCase()}-${p.port}`, port: p.port, protocol: p.protocol }));
}

/**
 * An address to ask for. Mostly low addresses of `default` (lowest-free allocation hands those out first,
 * so they are likely held: RequestedAddressInUse), some in the other pools, some in no pool.
 */
function randomAddress(rng: Rng, allowInvalid: boolean): string {
  const at = (p: string) => POOLS.find((x) => x.name === p)!;
  const kind = rng.weighted({ low: 50, manual: 15, extra: 15, outside: 12, invalid: allowInvalid ? 8 : 0 });
  switch (kind) {
    case 'low': return `${VIP_PREFIX}${rng.int(at('default').first, at('default').first + 7)}`;
    case 'manual': return `${VIP_PREFIX}${rng.int(at('manual').first, at('manual').last)}`;
    case 'extra': return `${VIP_PREFIX}${rng.int(at('extra').first, at('extra').first + 10)}`;
    case 'outside': return `${VIP_PREFIX}${rng.int(150, 160)}`;
    case 'invalid': return rng.pick(['192.0.2.300', 'not-an-ip', '192.0.2.5,192.0.2.6']);
  }
}

const schedulerValue = (rng: Rng): string | null => rng.weighted({ valid: 8, invalid: 1, remove: 2 }) === 'valid' ? rng.pick(SCHEDULERS_VALID) : rng.chance(0.33) ? 'fastest' : null;
const forwardingValue = (rng: Rng): string | null => {
  const k = rng.weighted({ valid: 6, invalid: 1, remove: 3 });
  return k === 'valid' ? rng.pick(FORWARDING_VALID) : k === 'invalid' ? 'bogus' : null;
};
const poolValue = (rng: Rng): string | null => {
  const k = rng.weighted({ valid: 6, unknown: 1, remove: 3 });
  return k === 'valid' ? rng.pick(POOLS.map((p) => p.name)) : k === 'unknown' ? 'nope' : null;
};

function newService(rng: Rng, name: string): ServiceSpec {
  const annotations: Record<string, string> = {};
  let loadBalancerIP: string | undefined;
  if (rng.chance(0.35)) annotations[A.share] = rng.pick(SHARING_KEYS);
  if (rng.chance(0.15)) {
    if (rng.chance(0.7)) annotations[A.ips] = randomAddress(rng, true);
    else loadBalancerIP = randomAddress(rng, false);
  }
  if (rng.chance(0.15)) annotations[A.pool] = rng.pick(POOLS.map((p) => p.name));
  if (rng.chance(0.3)) annotations[A.scheduler] = rng.pick(SCHEDULERS_VALID);
  if (rng.chance(0.15)) annotations[A.forwarding] = rng.pick(FORWARDING_VALID);
  return { name, ports: randomPorts(rng), annotations, ...(loadBalancerIP ? { loadBalancerIP } : {}) };
}

// ---- the model -------------------------------------------------------------------------------------

const sortedRecord = <T>(r: Record<string, T>): Record<string, T> =>
  Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/** What the Service looks like after the operation (the generator's model; also what the API should hold). */
export function applyOp(services: Readonly<Record<string, ServiceSpec>>, op: Op): Record<string, ServiceSpec> {
  const out: Record<string, ServiceSpec> = { ...services };
  const name = op.kind === 'create' ? op.service.name : op.name;
  const cur = services[name];
  if (op.kind === 'create') {
    if (cur) throw new Error(`generator: create of existing Service ${name}`);
    out[name] = op.service;
    return sortedRecord(out);
  }
  if (!cur) throw new Error(`generator: ${op.kind} of missing Service ${name}`);
  switch (op.kind) {
    case 'delete':
      delete out[name];
      break;
    case 'edit-ports':
      out[name] = { ...cur, ports: op.ports };
      break;
    case 'edit-annotations': {
      const annotations = { ...cur.annotations };
      for (const [k, v] of Object.entries(op.set)) {
        if (v === null) delete annotations[k];
        else annotations[k] = v;
      }
      out[name] = { ...cur, annotations };
      break;
    }
    case 'request-address': {
      const annotations = { ...cur.annotations };
      delete annotations[A.ips];
      const next: ServiceSpec = { name: cur.name, ports: cur.ports, annotations };
      if (op.address !== null && op.via === 'annotation') annotations[A.ips] = op.address;
      if (op.address !== null && op.via === 'field') next.loadBalancerIP = op.address;
      out[name] = next;
      break;
    }
    case 'share-key': {
      const annotations = { ...cur.annotations };
      if (op.key === null) delete annotations[A.share];
      else annotations[A.share] = op.key;
      out[name] = { ...cur, annotations };
      break;
    }
  }
  return out;
}

function drawOp(rng: Rng, s: GenState, o: GeneratorOptions): Op {
  const names = Object.keys(s.services);
  const count = names.length;
  const kind = rng.weighted<OpKind>({
    'create': count < o.maxServices ? (count < 4 ? 6 : 3) : 0,
    'delete': count > 0 ? 2 : 0,
    'edit-ports': count > 0 ? 2 : 0,
    'edit-annotations': count > 0 ? 2 : 0,
    'request-address': count > 0 ? 2 : 0,
    'share-key': count > 0 ? 2 : 0,
  });
  if (kind === 'create') {
    const reusable = s.deleted.filter((n) => !s.services[n]);
    const name = reusable.length > 0 && rng.chance(0.25) ? rng.pick(reusable) : `s-${s.nextId}`;
    return { kind, service: newService(rng, name) };
  }
  const name = rng.pick(names);
  const cur = s.services[name]!;
  switch (kind) {
    case 'delete': return { kind, name };
    case 'edit-ports': {
      let ports = randomPorts(rng);
      if (JSON.stringify(ports) === JSON.stringify(cur.ports)) ports = randomPorts(rng);
      return { kind, name, ports };
    }
    case 'edit-annotations': {
      const which = rng.pick(['scheduler', 'forwarding', 'pool'] as const);
      const key = which === 'scheduler' ? A.scheduler : which === 'forwarding' ? A.forwarding : A.pool;
      const value = which === 'scheduler' ? schedulerValue(rng) : which === 'forwarding' ? forwardingValue(rng) : poolValue(rng);
      return { kind, name, set: { [key]: value } };
    }
    case 'request-address': {
      const asking = cur.annotations[A.ips] !== undefined || cur.loadBalancerIP !== undefined;
      if (asking && rng.chance(0.4)) return { kind, name, via: 'annotation', address: null };
      const via = rng.chance(0.75) ? 'annotation' : 'field';
      return { kind, name, via, address: randomAddress(rng, via === 'annotation') };
    }
    case 'share-key': {
      const has = cur.annotations[A.share];
      const key = has !== undefined && rng.chance(0.4) ? null : rng.pick(SHARING_KEYS.filter((k) => k !== has));
      return { kind, name, key };
    }
  }
}

function drawFault(rng: Rng, s: GenState, o: GeneratorOptions): { fault: Fault | undefined; deck: FaultKind[] } {
  let deck = [...s.deck];
  const applicable = (k: FaultKind) => k !== 'node-notready' || Object.keys(s.notReady).length < NODE_NAMES.length - 1;
  for (let tries = 0; tries < 2 * o.faultKinds.length + 2; tries++) {
    if (deck.length === 0) deck = rng.shuffle(o.faultKinds);
    const kind = deck.shift()!;
    if (!applicable(kind)) continue;
    switch (kind) {
      case 'vrrp-master-kill':
        return { deck, fault: { kind, group: rng.pick(GROUPS.map((g) => g.name)), all: rng.chance(0.5) } };
      case 'daemon-kill':
        return { deck, fault: { kind, host: rng.pick(HOSTS.map((h) => h.name)), downMs: rng.int(0, 4000), withKeepalived: rng.chance(0.3) } };
      case 'api-outage':
        return { deck, fault: { kind, downMs: rng.int(2000, 12_000), compact: rng.chance(0.5) } };
      case 'api-errors':
        return { deck, fault: { kind, status: rng.pick([429, 500, 503] as const), durationMs: rng.int(2000, 8000) } };
      case 'watch-drop':
        return { deck, fault: { kind, abrupt: rng.chance(0.5) } };
      case 'node-notready': {
        const ready = NODE_NAMES.filter((n) => s.notReady[n] === undefined);
        return { deck, fault: { kind, node: rng.pick(ready), forSteps: rng.int(1, 3) } };
      }
    }
  }
  return { deck, fault: undefined };
}

/** The next step and the generator state after it. Deterministic in (state, rng, options). */
export function nextStep(s: GenState, rng: Rng, o: GeneratorOptions = defaultGeneratorOptions, opsLeft = Infinity): { step: Step; state: GenState } {
  const index = s.step + 1;
  // NotReady periods that end now.
  const notReady: Record<string, number> = {};
  const nodesReady: string[] = [];
  for (const [n, left] of Object.entries(s.notReady)) {
    if (left <= 1) nodesReady.push(n);
    else notReady[n] = left - 1;
  }
  let state: GenState = { ...s, notReady, step: index };
  const ops: Op[] = [];
  // The last step of a run bounded by an operation count is cut to what is left.
  const n = Math.min(rng.int(o.minOpsPerStep, o.maxOpsPerStep), opsLeft);
  for (let i = 0; i < n; i++) {
    const op = drawOp(rng, state, o);
    ops.push(op);
    const services = applyOp(state.services, op);
    let deleted = state.deleted;
    let nextId = state.nextId;
    if (op.kind === 'delete') deleted = [...deleted, op.name].slice(-5);
    if (op.kind === 'create') {
      deleted = deleted.filter((d) => d !== op.service.name);
      if (op.service.name === `s-${nextId}`) nextId++;
    }
    state = { ...state, services, deleted, nextId };
  }
  let fault: Fault | undefined;
  if (o.faultKinds.length > 0 && rng.chance(o.faultRate)) {
    const f = drawFault(rng, state, o);
    fault = f.fault;
    state = { ...state, deck: f.deck };
    if (fault?.kind === 'node-notready') state = { ...state, notReady: { ...state.notReady, [fault.node]: fault.forSteps } };
  }
  return { step: { index, ops, fault, nodesReady }, state };
}

// ---- printing --------------------------------------------------------------------------------------

export function describeOp(op: Op): string {
  switch (op.kind) {
    case 'create': {
      const s = op.service;
      const extras = [...Object.entries(s.annotations).map(([k, v]) => `${k.replace('ipvs-lb.io/', '')}=${v}`), ...(s.loadBalancerIP ? [`loadBalancerIP=${s.loadBalancerIP}`] : [])];
      return `create ${s.name} [${s.ports.map((p) => `${p.protocol}/${p.port}`).join(',')}]${extras.length ? ` ${extras.join(' ')}` : ''}`;
    }
    case 'delete': return `delete ${op.name}`;
    case 'edit-ports': return `edit-ports ${op.name} [${op.ports.map((p) => `${p.protocol}/${p.port}`).join(',')}]`;
    case 'edit-annotations': return `edit-annotations ${op.name} ${Object.entries(op.set).map(([k, v]) => `${k.replace('ipvs-lb.io/', '')}=${v ?? '(removed)'}`).join(' ')}`;
    case 'request-address': return `request-address ${op.name} ${op.address === null ? '(none)' : `${op.address} via ${op.via}`}`;
    case 'share-key': return `share-key ${op.name} ${op.key ?? '(none)'}`;
  }
}

export function describeFault(f: Fault): string {
  switch (f.kind) {
    case 'vrrp-master-kill': return `vrrp-master-kill group ${f.group} (${f.all ? 'keepalived and its VRRP child' : 'keepalived parent'})`;
    case 'daemon-kill': return `daemon-kill ${f.host}${f.withKeepalived ? ' with its keepalived' : ''}, restarted after ${f.downMs} ms`;
    case 'api-outage': return `api-outage ${f.downMs} ms${f.compact ? ', history compacted' : ''}`;
    case 'api-errors': return `api-errors ${f.status} for ${f.durationMs} ms`;
    case 'watch-drop': return `watch-drop (${f.abrupt ? 'connections reset' : 'clean end'})`;
    case 'node-notready': return `node-notready ${f.node} for ${f.forSteps} step(s)`;
  }
}
