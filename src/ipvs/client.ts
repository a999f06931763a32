// The IPVS client: resolves the generic netlink family, sends codec requests over one serialized transport,
// turns kernel errnos into NetlinkError with a code and a message naming the service/destination.
// It never sends IPVS_CMD_FLUSH: ipvs-lb owns only the services it created (docs/kernel.md).
import { execa } from 'execa';
import {
  decodeConfigMsg,
  decodeDaemonMsg,
  decodeDestMsg,
  decodeFamily,
  decodeInfoMsg,
  decodeServiceMsg,
  delDaemonRequest,
  delDestRequest,
  delServiceRequest,
  dumpDaemonsRequest,
  dumpDestsRequest,
  dumpServicesRequest,
  getConfigRequest,
  getFamilyPayload,
  getInfoRequest,
  getServiceRequest,
  type IpvsRequest,
  newDaemonRequest,
  newDestRequest,
  newServiceRequest,
  serviceIdentityKey,
  serviceKeyAttrs,
  setConfigRequest,
  setDestRequest,
  setServiceRequest,
  zeroRequest,
} from './codec.js';
import { GENL_ID_CTRL, IPVS_GENL_NAME, NETLINK_GENERIC } from './constants.js';
import { ERRNO, NetlinkError, NetlinkTransportError } from './errors.js';
import { NetlinkDecodeError } from './netlink.js';
import { parseProcIpvs, PROC_IPVS_PATH, procKey, ProcReuse, readProcIpvs, type ProcService } from './procfs.js';
import { kernelErrno, NetlinkTransport, type TransportCounters, type TransportOptions } from './transport.js';
import type {
  Destination,
  DestinationSpec,
  IpvsInfo,
  IpvsTimeouts,
  Service,
  ServiceKey,
  ServiceSpec,
  SyncDaemon,
  SyncDaemonSpec,
  SyncRole,
} from './types.js';

/** How long a sync-daemon stop waits for the kernel's ACK before the daemon list decides (see stopSyncDaemon). */
export const SYNC_STOP_REPLY_MS = 2_000;

/** One write operation for IpvsClient.apply(). */
export type IpvsOp =
  | { op: 'add-service'; service: ServiceSpec }
  | { op: 'edit-service'; service: ServiceSpec }
  | { op: 'delete-service'; service: ServiceKey }
  | { op: 'add-dest'; service: ServiceKey; dest: DestinationSpec }
  | { op: 'edit-dest'; service: ServiceKey; dest: DestinationSpec }
  | { op: 'delete-dest'; service: ServiceKey; dest: { address: string; port: number } };

export interface OpResult {
  op: IpvsOp;
  /** undefined when the kernel accepted it. */
  error: NetlinkError | undefined;
}

export interface ServiceWithDests {
  service: Service;
  destinations: Destination[];
}

/** A destination as table() reports it: what the kernel shows for every destination in one read. */
export type TableDestination = Pick<Destination, 'family' | 'address' | 'port' | 'forwarding' | 'weight' | 'activeConns' | 'inactiveConns'>;

export interface TableEntry {
  /** Shared with later table() answers when its message did not change (counters aside): read only. */
  service: Service;
  /** Shared with later table() answers when the service's lines did not change (ProcReuse): read only. */
  destinations: readonly TableDestination[];
}

export interface IpvsClientOptions extends Partial<Omit<TransportOptions, 'protocol' | 'groups'>> {
  /** Try `modprobe ip_vs` when the family is missing (needs CAP_SYS_MODULE). Default true. */
  loadModule?: boolean;
  /** Where table() reads every destination at once; false: netlink only. Default /proc/net/ip_vs. */
  procPath?: string | false;
}

export function requestFor(op: IpvsOp): IpvsRequest {
  switch (op.op) {
    case 'add-service':
      return newServiceRequest(op.service);
    case 'edit-service':
      return setServiceRequest(op.service);
    case 'delete-service':
      return delServiceRequest(op.service);
    case 'add-dest':
      return newDestRequest(op.service, op.dest);
    case 'edit-dest':
      return setDestRequest(op.service, op.dest);
    case 'delete-dest':
      return delDestRequest(op.service, op.dest);
  }
}

/** Explains an errno for the kind of request that got it (the kernel's own reasons in ip_vs_ctl.c). */
export function kernelError(req: Pick<IpvsRequest, 'cmd' | 'describe' | 'subject'>, errno: number): NetlinkError {
  const verb = req.describe.split(' ')[0];
  let hint: string | undefined;
  switch (errno) {
    case ERRNO.EPERM:
      hint = 'not permitted (needs CAP_NET_ADMIN in this network namespace)';
      break;
    case ERRNO.ENOMEM:
      hint = 'the kernel is out of memory';
      break;
    case ERRNO.EAFNOSUPPORT:
      hint = 'this kernel was built without IPv6 support in IPVS';
      break;
    case ERRNO.EEXIST:
      hint = req.subject === 'dest' ? 'the destination already exists' : req.subject === 'daemon' ? 'a sync daemon in that role is already running' : 'the service already exists';
      break;
    case ERRNO.ESRCH:
      hint = req.subject === 'daemon' ? 'no sync daemon in that role is running' : 'no such service';
      break;
    case ERRNO.ENOENT:
      hint =
        req.subject === 'dest'
          ? 'no such destination'
          : req.subject === 'service' && (verb === 'add' || verb === 'edit')
            ? 'scheduler or persistence engine not available (kernel module ip_vs_<name> missing)'
            : 'not found';
      break;
    case ERRNO.EINVAL:
      hint =
        req.subject === 'dest'
          ? 'invalid destination (a real server must be a unicast address this namespace can route, thresholds lower <= upper)'
          : 'invalid arguments for the kernel';
      break;
    case ERRNO.ERANGE:
      hint = 'value out of range (a negative weight, or a lower threshold above the upper one)';
      break;
    case ERRNO.ENODEV:
      hint = 'no such network interface';
      break;
    case ERRNO.EBUSY:
      hint = 'busy';
      break;
  }
  return new NetlinkError(errno, req.describe, hint);
}

export class IpvsClient {
  /** Extra sockets for parallel destination dumps (snapshot), opened on first use. */
  private readonly dumpers: NetlinkTransport[] = [];
  /** The socket of the whole-table service dump, opened on first use (see bulkDumper). */
  private bulk: NetlinkTransport | undefined;

  private constructor(
    private readonly transport: NetlinkTransport,
    /** The dynamically allocated generic netlink family id of "IPVS" in this network namespace's kernel. */
    readonly familyId: number,
    private readonly transportOpts: IpvsClientOptions,
  ) {}

  /** Opens a generic netlink socket and resolves the IPVS family (loading ip_vs if allowed and needed). */
  static async open(opts: IpvsClientOptions = {}): Promise<IpvsClient> {
    const transport = new NetlinkTransport({ ...opts, protocol: NETLINK_GENERIC });
    try {
      let id: number | undefined;
      try {
        id = await resolveFamily(transport, IPVS_GENL_NAME);
      } catch (e) {
        if (kernelErrno(e) !== ERRNO.ENOENT || opts.loadModule === false) throw e;
        await execa('modprobe', ['ip_vs'], { reject: false });
        id = await resolveFamily(transport, IPVS_GENL_NAME);
      }
      return new IpvsClient(transport, id, opts);
    } catch (e) {
      transport.close();
      const errno = kernelErrno(e);
      if (errno === ERRNO.ENOENT) {
        throw new NetlinkError(errno, 'resolve generic netlink family IPVS', 'this kernel has no IPVS (module ip_vs neither loaded nor loadable)');
      }
      if (errno !== undefined) throw new NetlinkError(errno, 'resolve generic netlink family IPVS');
      throw e;
    }
  }

  /** sendmsg calls and messages so far (benchmarks compare them with ipvsadm). */
  get counters(): TransportCounters {
    return this.transport.counters;
  }

  close(): void {
    this.transport.close();
    for (const d of this.dumpers.splice(0)) d.close();
    this.bulk?.close();
    this.bulk = undefined;
  }

  async info(): Promise<IpvsInfo> {
    const [reply] = await this.call(getInfoRequest());
    if (!reply) throw new NetlinkTransportError('EBADMSG', 'get IPVS info: no reply');
    return decode(() => decodeInfoMsg(reply), 'get IPVS info');
  }

  async timeouts(): Promise<IpvsTimeouts> {
    const [reply] = await this.call(getConfigRequest());
    if (!reply) throw new NetlinkTransportError('EBADMSG', 'get IPVS timeouts: no reply');
    return decode(() => decodeConfigMsg(reply), 'get IPVS timeouts');
  }

  async setTimeouts(t: Partial<IpvsTimeouts>): Promise<void> {
    await this.call(setConfigRequest(t));
  }

  /** Every service; `stats: false` skips decoding the counters (they read as zero), which is most of the work. */
  async services(opts: { stats?: boolean } = {}): Promise<Service[]> {
    const req = dumpServicesRequest();
    const replies = await this.call(req, this.bulkDumper());
    return replies.map((p) => decode(() => decodeServiceMsg(p, opts), req.describe));
  }

  /** One service, or undefined when the kernel has no such service. */
  async service(key: ServiceKey): Promise<Service | undefined> {
    const req = getServiceRequest(key);
    try {
      const [reply] = await this.call(req);
      return reply ? decode(() => decodeServiceMsg(reply), req.describe) : undefined;
    } catch (e) {
      if (e instanceof NetlinkError && (e.code === 'ESRCH' || e.code === 'ENOENT')) return undefined;
      throw e;
    }
  }

  async destinations(key: ServiceKey): Promise<Destination[]> {
    return this.destinationsVia(this.transport, key);
  }

  /**
   * Some services as the kernel holds them now, each with its destinations (no counters), in the order of
   * `keys`; undefined where the kernel has no such service. Costs one exchange for every service (their
   * GET_SERVICE requests share datagrams) and one destination dump each, spread over `concurrency` sockets:
   * for re-reading a few services without reading the whole table (the reconciler's rolling verification).
   */
  async entries(keys: readonly ServiceKey[], opts: { concurrency?: number } = {}): Promise<Array<TableEntry | undefined>> {
    const out: Array<TableEntry | undefined> = new Array(keys.length).fill(undefined);
    if (keys.length === 0) return out;
    const reqs = keys.map(getServiceRequest);
    let answers;
    try {
      answers = await this.transport.requestMany(reqs.map((r) => ({ type: this.familyId, flags: 0, payload: r.payload })));
    } catch (e) {
      if (e instanceof NetlinkTransportError) throw new NetlinkTransportError(e.code, `get ${keys.length} services: ${e.message}`);
      throw e;
    }
    const services = answers.map((a, i) => {
      if (a.errno === ERRNO.ESRCH || a.errno === ERRNO.ENOENT) return undefined;
      if (a.errno !== 0) throw kernelError(reqs[i]!, a.errno);
      const reply = a.replies[0];
      return reply ? decode(() => decodeServiceMsg(reply.payload, { stats: false }), reqs[i]!.describe) : undefined;
    });
    const present = services.flatMap((s, i) => (s ? [i] : []));
    // Deleted between the get and the dump: Linux 6.1 dumps it as empty (a service without destinations: the
    // repair's writes are then refused and the reconciler resyncs); ESRCH elsewhere reads as absent.
    await this.dumpDestinations(services as Service[], present, out, opts.concurrency);
    return out;
  }

  /**
   * A socket that reads into a fixed 64 KiB buffer instead of peeking at each datagram's size. The kernel
   * sizes a dump's datagrams to the largest read the socket has made (netlink_recvmsg keeps it, capped near
   * 32 KiB; netlink_dump allocates that): reads sized by peeking stay at one page, so the dump comes in
   * 4 KiB datagrams, and IPVS walks its service table from the first entry again for every one. Measured in
   * the UML lab, 10,000 services: 130-180 ms instead of 240-470 ms, a third of the datagrams. The main
   * socket keeps peeking: for its small replies a fixed buffer costs more (see NetlinkTransport).
   * A dump here does not wait for writes queued on the main socket; callers that need one after the other
   * await the write first (the reconciler does, and marks what it writes during a read).
   */
  private bulkDumper(): NetlinkTransport {
    if (this.transportOpts.messagePeeking !== undefined) return this.transport;
    return (this.bulk ??= new NetlinkTransport({ ...this.transportOpts, protocol: NETLINK_GENERIC, messagePeeking: false }));
  }

  /** The main socket and up to want-1 more, opened on first use and kept (one dump in flight per socket). */
  private lanes(want: number): NetlinkTransport[] {
    while (this.dumpers.length < want - 1) this.dumpers.push(new NetlinkTransport({ ...this.transportOpts, protocol: NETLINK_GENERIC }));
    return [this.transport, ...this.dumpers.slice(0, want - 1)];
  }

  private async destinationsVia(transport: NetlinkTransport, key: ServiceKey): Promise<Destination[]> {
    const { family } = serviceKeyAttrs(key);
    const req = dumpDestsRequest(key);
    const replies = await this.call(req, transport);
    return replies.map((p) => decode(() => decodeDestMsg(p, family), req.describe));
  }

  /**
   * Every service with its destinations and all counters (a service deleted between the two dumps is skipped).
   * The kernel dumps destinations one service at a time, so with many services the round trips dominate;
   * they are spread over `concurrency` sockets (one dump in flight per socket, as the kernel requires).
   * table() is the cheap way to read a large table when per-destination counters are not needed.
   */
  async snapshot(opts: { concurrency?: number } = {}): Promise<ServiceWithDests[]> {
    const services = await this.services();
    const out: (ServiceWithDests | undefined)[] = new Array(services.length);
    await this.dumpDestinations(services, services.map((_, i) => i), out, opts.concurrency);
    return out.filter((x): x is ServiceWithDests => x !== undefined);
  }

  /**
   * The whole table in two reads whatever its size: one netlink service dump (scheduler, flags, persistence;
   * service counters only with `stats: true`) and one read of /proc/net/ip_vs for every destination's
   * address, port, forwarding, weight and connection counts. Per-destination byte and packet counters and
   * thresholds are not included. A service missing from the file (created between the two reads), a fwmark
   * service (the file does not show its address family), or a file that cannot be read or parsed falls back
   * to netlink destination dumps, so the answer is always complete.
   */
  async table(opts: { stats?: boolean; concurrency?: number } = {}): Promise<TableEntry[]> {
    const services = opts.stats ? await this.services({ stats: true }) : await this.servicesKept();
    const fromProc = this.readProc();
    const out: (TableEntry | undefined)[] = new Array(services.length);
    const missing: number[] = [];
    services.forEach((s, i) => {
      const key = procKey(s.protocol, s.address, s.port);
      const p = key === undefined ? undefined : fromProc?.get(key);
      if (p) out[i] = { service: s, destinations: p.destinations };
      else missing.push(i);
    });
    await this.dumpDestinations(services, missing, out, opts.concurrency);
    return out.filter((x): x is TableEntry => x !== undefined);
  }

  /** The last table()'s services by what their messages say apart from counters (serviceIdentityKey). */
  private keptServices = new Map<string, Service>();

  /**
   * services({ stats: false }), except that a service whose message says what it said at the last call
   * (counters aside) is the object decoded then: decoding 10,000 service messages was the largest part left
   * of a no-op resync's own work. The objects are shared with later answers: read only.
   */
  private async servicesKept(): Promise<Service[]> {
    const req = dumpServicesRequest();
    const replies = await this.call(req, this.bulkDumper());
    const kept = new Map<string, Service>();
    const out = replies.map((p) => {
      const key = serviceIdentityKey(p);
      const s = (key !== undefined && this.keptServices.get(key)) || decode(() => decodeServiceMsg(p, { stats: false }), req.describe);
      if (key !== undefined) kept.set(key, s);
      return s;
    });
    this.keptServices = kept;
    return out;
  }

  /** Why the last table() could not use /proc/net/ip_vs (undefined when it could). */
  procProblem: string | undefined;
  /** The last read's blocks: a service whose lines have not changed is not parsed again (see ProcReuse). */
  readonly procReuse = new ProcReuse();

  private readProc(): Map<string, ProcService> | undefined {
    const path = this.transportOpts.procPath ?? PROC_IPVS_PATH;
    if (path === false) return undefined;
    try {
      const byKey = new Map<string, ProcService>();
      for (const p of parseProcIpvs(readProcIpvs(path), this.procReuse)) {
        const key = procKey(p.protocol, p.address, p.port);
        if (key !== undefined) byKey.set(key, p);
      }
      this.procProblem = undefined;
      return byKey;
    } catch (e) {
      this.procProblem = `${path}: ${(e as Error).message}; reading destinations over netlink, one service at a time`;
      return undefined;
    }
  }

  /** Fills out[i] for each index with the service's destinations from netlink dumps over several sockets. */
  private async dumpDestinations(services: readonly Service[], indexes: readonly number[], out: (ServiceWithDests | TableEntry | undefined)[], concurrency = 4): Promise<void> {
    if (indexes.length === 0) return;
    const lanes = this.lanes(Math.max(1, Math.min(concurrency, 16, indexes.length)));
    let next = 0;
    await Promise.all(
      lanes.map(async (lane) => {
        while (next < indexes.length) {
          const i = indexes[next++]!;
          const service = services[i]!;
          try {
            out[i] = { service, destinations: await this.destinationsVia(lane, keyOf(service)) };
          } catch (e) {
            if (e instanceof NetlinkError && e.code === 'ESRCH') continue;
            throw e;
          }
        }
      }),
    );
  }

  addService(spec: ServiceSpec): Promise<void> {
    return this.write(newServiceRequest(spec));
  }
  /** Changes scheduler, flags or persistence in place: existing connections are kept. */
  editService(spec: ServiceSpec): Promise<void> {
    return this.write(setServiceRequest(spec));
  }
  deleteService(key: ServiceKey): Promise<void> {
    return this.write(delServiceRequest(key));
  }
  addDestination(key: ServiceKey, d: DestinationSpec): Promise<void> {
    return this.write(newDestRequest(key, d));
  }
  /** Changes weight, thresholds or forwarding in place. */
  editDestination(key: ServiceKey, d: DestinationSpec): Promise<void> {
    return this.write(setDestRequest(key, d));
  }
  deleteDestination(key: ServiceKey, d: { address: string; port: number }): Promise<void> {
    return this.write(delDestRequest(key, d));
  }
  /** Zeroes counters of one service (or all services). */
  zero(key?: ServiceKey): Promise<void> {
    return this.write(zeroRequest(key));
  }

  /**
   * Applies many operations in order with as few syscalls as possible (see NetlinkTransport.batch). Every
   * operation is attempted, even after a failure; the result tells which ones the kernel refused and why.
   * Input errors (IpvsInputError) are thrown before anything is sent.
   */
  async apply(ops: readonly IpvsOp[]): Promise<OpResult[]> {
    // Everything is encoded (so validated) before anything is sent, into one buffer: the objects that build
    // each request die young instead of living, and being promoted by the collector, until the last datagram
    // is out. A refused request is encoded again for its error message.
    const arena = new PayloadArena();
    for (const op of ops) arena.push(requestFor(op).payload);
    const type = this.familyId;
    const errnos = await this.transport.batch(ops.length, (i) => ({ type, flags: 0, payload: arena.get(i) }));
    return ops.map((op, i) => ({ op, error: errnos[i] ? kernelError(requestFor(op), errnos[i]!) : undefined }));
  }

  async syncDaemons(): Promise<SyncDaemon[]> {
    const req = dumpDaemonsRequest();
    const replies = await this.call(req);
    return replies.map((p) => decode(() => decodeDaemonMsg(p), req.describe));
  }
  startSyncDaemon(spec: SyncDaemonSpec): Promise<void> {
    return this.write(newDaemonRequest(spec));
  }
  /**
   * Stops the sync daemon of `role`. The kernel leaves the request unanswered when the daemon's thread had
   * not run yet (a stop right after a start): kthread_stop() returns -EINTR, stop_sync_thread() passes it
   * on, and netlink_rcv_skb() sends no ACK for -EINTR, although the daemon is gone (measured in the lab VM:
   * four stops in six right after a start, none after 300 ms). So the reply is awaited briefly, and without
   * one the daemon list decides: gone means done.
   */
  async stopSyncDaemon(role: SyncRole): Promise<void> {
    const req = delDaemonRequest(role);
    try {
      await this.call(req, this.transport, { idleTimeoutMs: SYNC_STOP_REPLY_MS });
    } catch (e) {
      if (!(e instanceof NetlinkTransportError && e.code === 'ETIMEDOUT')) throw e;
      // The dump is answered only once the kernel is done with the stop (both hold the genl lock).
      if ((await this.syncDaemons()).some((d) => d.role === role)) throw e;
    }
  }

  private async write(req: IpvsRequest): Promise<void> {
    await this.call(req);
  }

  /** Sends one request or dump; returns the reply payloads. */
  private async call(req: IpvsRequest, transport = this.transport, opts: { idleTimeoutMs?: number } = {}): Promise<Buffer[]> {
    try {
      const msg = { type: this.familyId, flags: 0, payload: req.payload };
      const replies = req.dump ? await transport.dump(msg) : await transport.request(msg, opts);
      return replies.map((m) => m.payload);
    } catch (e) {
      const errno = kernelErrno(e);
      if (errno !== undefined) throw kernelError(req, errno);
      if (e instanceof NetlinkTransportError) throw new NetlinkTransportError(e.code, `${req.describe}: ${e.message}`);
      throw e;
    }
  }
}

/** The key of a decoded service, to address it in later requests. */
export function keyOf(s: Service): ServiceKey {
  if (s.fwmark) return { fwmark: s.fwmark, family: s.family };
  return { address: s.address!, protocol: s.protocol!, port: s.port };
}

function decode<T>(fn: () => T, what: string): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof NetlinkDecodeError) throw new NetlinkTransportError('EBADMSG', `${what}: undecodable reply: ${e.message}`);
    throw e;
  }
}

export async function resolveFamily(transport: NetlinkTransport, name: string): Promise<number> {
  const replies = await transport.request({ type: GENL_ID_CTRL, flags: 0, payload: getFamilyPayload(name) });
  const reply = replies[0];
  if (!reply) throw new NetlinkTransportError('EBADMSG', `resolve generic netlink family ${name}: no reply`);
  return decode(() => decodeFamily(reply.payload), `resolve generic netlink family ${name}`).id;
}

/** Many small payloads in one growing buffer, addressed by index. */
class PayloadArena {
  private buf = Buffer.allocUnsafe(64 << 10);
  private ends = new Uint32Array(1024);
  private count = 0;
  private used = 0;

  push(payload: Buffer): void {
    if (this.used + payload.length > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.used + payload.length));
      this.buf.copy(bigger, 0, 0, this.used);
      this.buf = bigger;
    }
    if (this.count === this.ends.length) {
      const more = new Uint32Array(this.ends.length * 2);
      more.set(this.ends);
      this.ends = more;
    }
    payload.copy(this.buf, this.used);
    this.used += payload.length;
    this.ends[this.count++] = this.used;
  }

  get(i: number): Buffer {
    return this.buf.subarray(i === 0 ? 0 : this.ends[i - 1]!, this.ends[i]!);
  }
}
