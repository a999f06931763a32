// The IPVS generic-netlink codec: pure functions from ServiceSpec/DestinationSpec/... to request payloads
// (genl header + attributes) and from reply payloads back to objects. The layouts follow the kernel's
// nla_policy tables in net/netfilter/ipvs/ip_vs_ctl.c and what ipvsadm's libipvs sends:
// - addresses are a 16-byte union nf_inet_addr (IPv4 in the first 4 bytes), network order;
// - ports (service, destination, tunnel) are big-endian u16, every other integer is host order;
// - the service flags are struct ip_vs_flags {u32 flags; u32 mask}, sent with mask ~0 as ipvsadm does;
// - the persistence netmask is a big-endian IPv4 mask, or for IPv6 a prefix length in host order;
// - NEW_SERVICE/SET_SERVICE need the full entry (scheduler, flags, timeout, netmask), NEW_DEST/SET_DEST the
//   full destination (forwarding, weight, both thresholds), every other command only the key.
import { formatIp, parseIp } from '../ipam/address.js';
import {
  AF_INET,
  AF_INET6,
  CmdAttr,
  CTRL_CMD_GETFAMILY,
  CtrlAttr,
  DaemonAttr,
  DaemonState,
  DestAttr,
  FWD_MASK,
  FwdMethod,
  IFNAME_MAXLEN,
  InfoAttr,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IpvsCmd,
  IPVS_GENL_VERSION,
  PENAME_MAXLEN,
  SCHEDNAME_MAXLEN,
  StatsAttr,
  SvcAttr,
  SvcFlag,
  TunFlag,
  TunType,
} from './constants.js';
import { IpvsInputError } from './errors.js';
import {
  type Attr,
  attr,
  attrsKey,
  be16,
  cstring,
  findAttr,
  GENL_HDRLEN,
  genlPayload,
  NetlinkDecodeError,
  parseAttrs,
  parseGenl,
  readU16,
  readU32,
  readU64,
  u16,
  u32,
  u8,
} from './netlink.js';
import type {
  Destination,
  DestinationSpec,
  DecodedForwarding,
  Family,
  IpvsInfo,
  IpvsTimeouts,
  Protocol,
  SchedulerFlag,
  SchedulerFlagInput,
  Service,
  ServiceKey,
  ServiceSpec,
  Stats,
  SyncDaemon,
  SyncDaemonSpec,
  TunnelOptions,
} from './types.js';

/** A request as the client sends it: generic netlink payload plus what it is about (for error messages). */
export interface IpvsRequest {
  cmd: number;
  payload: Buffer;
  dump: boolean;
  /** "add service tcp 192.0.2.10:80" */
  describe: string;
  /** What the request is about, so that kernel errors can be explained (see client.ts). */
  subject: 'service' | 'dest' | 'daemon' | 'info' | 'config';
}

const protocolNumbers: Record<Protocol, number> = { tcp: IPPROTO_TCP, udp: IPPROTO_UDP, sctp: IPPROTO_SCTP };
const protocolNames = new Map<number, Protocol>([
  [IPPROTO_TCP, 'tcp'],
  [IPPROTO_UDP, 'udp'],
  [IPPROTO_SCTP, 'sctp'],
]);

// ---- validation helpers -------------------------------------------------------------------------------------

function intIn(field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new IpvsInputError(field, v, `must be an integer ${min}-${max}`);
  }
  return v;
}

interface ParsedAddress {
  family: Family;
  /** Network order; shared, never modified. */
  bytes: Buffer;
  /** The same as union nf_inet_addr (16 bytes); shared, never modified. */
  inet: Buffer;
  text: string;
}

// Programming a table encodes each VIP once per destination and each node address once per service: parse
// each text once. Bounded, so a huge table cannot grow it without limit.
const parsed = new Map<string, ParsedAddress | null>();

function parseAddress(v: string): ParsedAddress | null {
  let p = parsed.get(v);
  if (p === undefined) {
    const ip = parseIp(v);
    if (ip) {
      const bytes = ipBytes(ip.family, ip.value);
      p = { family: ip.family, bytes, inet: inetAddr(bytes), text: formatIp(ip) };
    } else {
      p = null;
    }
    if (parsed.size >= 8192) parsed.clear();
    parsed.set(v, p);
  }
  return p;
}

function addressOf(field: string, v: unknown): ParsedAddress {
  const a = typeof v === 'string' ? parseAddress(v) : null;
  if (!a) throw new IpvsInputError(field, v, 'must be an IPv4 or IPv6 address');
  return a;
}

function ipBytes(family: Family, value: bigint): Buffer {
  const len = family === 4 ? 4 : 16;
  const b = Buffer.alloc(len);
  let v = value;
  for (let i = len - 1; i >= 0; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return b;
}

/** union nf_inet_addr: always 16 bytes on the wire, IPv4 in the first four. */
function inetAddr(bytes: Buffer): Buffer {
  const out = Buffer.alloc(16);
  bytes.copy(out);
  return out;
}

function name(field: string, v: unknown, maxLen: number): string {
  if (typeof v !== 'string' || !/^[A-Za-z0-9_.-]+$/.test(v) || Buffer.byteLength(v) > maxLen - 1) {
    throw new IpvsInputError(field, v, `must be 1-${maxLen - 1} characters of [A-Za-z0-9_.-]`);
  }
  return v;
}

export function familyCode(family: Family): number {
  return family === 4 ? AF_INET : AF_INET6;
}

// Attribute values that repeat on every request, made once (encoding copies them; they are never modified).
const AF_U16: Record<Family, Buffer> = { 4: u16(AF_INET), 6: u16(AF_INET6) };
const PROTO_U16: Record<Protocol, Buffer> = { tcp: u16(IPPROTO_TCP), udp: u16(IPPROTO_UDP), sctp: u16(IPPROTO_SCTP) };
const NETMASK_HOST4 = Buffer.from([255, 255, 255, 255]);
const NETMASK_HOST6 = u32(128);
const flagStructs = new Map<number, Buffer>();
/** struct ip_vs_flags {flags; mask = ~0}, as ipvsadm sends it. */
function flagsAttr(flags: number): Buffer {
  let b = flagStructs.get(flags);
  if (!b) {
    b = Buffer.concat([u32(flags), u32(0xffffffff)]);
    flagStructs.set(flags, b);
  }
  return b;
}
const smallU32: Buffer[] = [];
/** u32 attribute values; the small ones (weights, forwarding codes, thresholds, timeouts) are made once. */
function u32v(v: number): Buffer {
  if (v >= 0 && v < 4096 && Number.isInteger(v)) return (smallU32[v] ??= u32(v));
  return u32(v);
}
const ports = new Map<number, Buffer>();
function portBe16(port: number): Buffer {
  let b = ports.get(port);
  if (!b) {
    b = be16(port);
    if (ports.size >= 4096) ports.clear();
    ports.set(port, b);
  }
  return b;
}

// ---- services -----------------------------------------------------------------------------------------------

/** "tcp 192.0.2.10:80", "tcp [2001:db8::1]:443", "fwmark 7 (IPv4)": how messages name a service. */
export function serviceLabel(key: ServiceKey): string {
  if (key.fwmark !== undefined) return `fwmark ${key.fwmark} (IPv${key.family})`;
  const ip = typeof key.address === 'string' ? parseAddress(key.address) : null;
  const addr = ip ? ip.text : String(key.address);
  return `${key.protocol} ${ip?.family === 6 ? `[${addr}]` : addr}:${key.port}`;
}

export function destLabel(d: { address: string; port: number }): string {
  const ip = typeof d.address === 'string' ? parseAddress(d.address) : null;
  const addr = ip ? ip.text : String(d.address);
  return `${ip?.family === 6 ? `[${addr}]` : addr}:${d.port}`;
}

export function serviceKeyAttrs(key: ServiceKey, field = 'service'): { family: Family; attrs: Attr[] } {
  if (key === null || typeof key !== 'object') throw new IpvsInputError(field, key, 'must be an object');
  if (key.fwmark !== undefined) {
    const fwmark = intIn(`${field}.fwmark`, key.fwmark, 1, 0xffffffff);
    if (key.family !== 4 && key.family !== 6) throw new IpvsInputError(`${field}.family`, key.family, 'must be 4 or 6');
    return { family: key.family, attrs: [attr(SvcAttr.AF, u16(familyCode(key.family))), attr(SvcAttr.FWMARK, u32(fwmark))] };
  }
  const a = addressOf(`${field}.address`, key.address);
  const proto = protocolNumbers[key.protocol];
  if (proto === undefined || !Object.hasOwn(protocolNumbers, key.protocol)) {
    throw new IpvsInputError(`${field}.protocol`, key.protocol, 'must be tcp, udp or sctp');
  }
  const port = intIn(`${field}.port`, key.port, 0, 65535);
  return {
    family: a.family,
    attrs: [attr(SvcAttr.AF, AF_U16[a.family]), attr(SvcAttr.PROTOCOL, PROTO_U16[key.protocol]), attr(SvcAttr.ADDR, a.inet), attr(SvcAttr.PORT, portBe16(port))],
  };
}

const schedFlagBits: Record<SchedulerFlagInput, number> = {
  'flag-1': SvcFlag.SCHED1,
  'flag-2': SvcFlag.SCHED2,
  'flag-3': SvcFlag.SCHED3,
  'sh-fallback': SvcFlag.SCHED1,
  'mh-fallback': SvcFlag.SCHED1,
  'sh-port': SvcFlag.SCHED2,
  'mh-port': SvcFlag.SCHED2,
};

export function serviceAttrs(spec: ServiceSpec, field = 'service'): { family: Family; attrs: Attr[] } {
  const { family, attrs } = serviceKeyAttrs(spec, field);
  const scheduler = name(`${field}.scheduler`, spec.scheduler, SCHEDNAME_MAXLEN);
  let flags = 0;
  for (const [i, f] of (spec.schedulerFlags ?? []).entries()) {
    const bit = Object.hasOwn(schedFlagBits, f) ? schedFlagBits[f] : undefined;
    if (bit === undefined) {
      throw new IpvsInputError(`${field}.schedulerFlags[${i}]`, f, 'must be flag-1, flag-2, flag-3, sh-fallback, sh-port, mh-fallback or mh-port');
    }
    flags |= bit;
  }
  if (spec.onePacket !== undefined && typeof spec.onePacket !== 'boolean') {
    throw new IpvsInputError(`${field}.onePacket`, spec.onePacket, 'must be true or false');
  }
  if (spec.onePacket) flags |= SvcFlag.ONEPACKET;
  let timeout = 0;
  let netmask: Buffer = family === 4 ? NETMASK_HOST4 : NETMASK_HOST6;
  if (spec.persistence !== undefined) {
    flags |= SvcFlag.PERSISTENT;
    timeout = intIn(`${field}.persistence.timeout`, spec.persistence.timeout, 1, 0x7fffffff);
    const nm = spec.persistence.netmask;
    if (nm !== undefined) {
      if (family === 4) {
        const ip = typeof nm === 'string' ? parseIp(nm) : undefined;
        const bits = ip?.family === 4 ? ip.value.toString(2).padStart(32, '0') : '';
        if (!ip || ip.family !== 4 || !/^1*0*$/.test(bits)) {
          throw new IpvsInputError(`${field}.persistence.netmask`, nm, 'must be a contiguous IPv4 netmask such as 255.255.255.0');
        }
        netmask = ipBytes(4, ip.value);
      } else {
        netmask = u32(intIn(`${field}.persistence.netmask`, nm, 1, 128));
      }
    }
  }
  const flagsStruct = flagsAttr(flags);
  attrs.push(attr(SvcAttr.SCHED_NAME, cstring(scheduler)));
  if (spec.persistenceEngine !== undefined) {
    attrs.push(attr(SvcAttr.PE_NAME, cstring(name(`${field}.persistenceEngine`, spec.persistenceEngine, PENAME_MAXLEN))));
  }
  attrs.push(attr(SvcAttr.FLAGS, flagsStruct), attr(SvcAttr.TIMEOUT, u32v(timeout)), attr(SvcAttr.NETMASK, netmask));
  return { family, attrs };
}

// `describe` names the object in error messages only, so it is built when read: a batch of 100,000 requests
// that all succeed never builds one. A class, because object literals with accessors are slow to create.
class LabelledRequest implements IpvsRequest {
  constructor(
    readonly cmd: number,
    readonly payload: Buffer,
    readonly dump: boolean,
    readonly subject: IpvsRequest['subject'],
    private readonly verb: string,
    private readonly key: ServiceKey,
    private readonly dest?: { address: string; port: number },
  ) {}

  get describe(): string {
    if (this.subject === 'service') return `${this.verb} service ${serviceLabel(this.key)}`;
    return this.dest ? `${this.verb} ${destLabel(this.dest)} of service ${serviceLabel(this.key)}` : `${this.verb} of service ${serviceLabel(this.key)}`;
  }
}

function svcRequest(cmd: number, verb: string, attrs: Attr[], key: ServiceKey, dump = false): IpvsRequest {
  return new LabelledRequest(cmd, genlPayload(cmd, IPVS_GENL_VERSION, [attr(CmdAttr.SERVICE, attrs)]), dump, 'service', verb, key);
}

export function newServiceRequest(spec: ServiceSpec): IpvsRequest {
  return svcRequest(IpvsCmd.NEW_SERVICE, 'add', serviceAttrs(spec).attrs, spec);
}
export function setServiceRequest(spec: ServiceSpec): IpvsRequest {
  return svcRequest(IpvsCmd.SET_SERVICE, 'edit', serviceAttrs(spec).attrs, spec);
}
export function delServiceRequest(key: ServiceKey): IpvsRequest {
  return svcRequest(IpvsCmd.DEL_SERVICE, 'delete', serviceKeyAttrs(key).attrs, key);
}
export function getServiceRequest(key: ServiceKey): IpvsRequest {
  return svcRequest(IpvsCmd.GET_SERVICE, 'get', serviceKeyAttrs(key).attrs, key);
}
export function dumpServicesRequest(): IpvsRequest {
  return { cmd: IpvsCmd.GET_SERVICE, payload: genlPayload(IpvsCmd.GET_SERVICE, IPVS_GENL_VERSION, []), dump: true, describe: 'list services', subject: 'service' };
}

// ---- destinations -------------------------------------------------------------------------------------------

const fwdCodes: Record<string, number> = { dr: FwdMethod.DROUTE, tun: FwdMethod.TUNNEL, nat: FwdMethod.MASQ };
const tunTypes: Record<string, number> = { ipip: TunType.IPIP, gue: TunType.GUE, gre: TunType.GRE };
const tunCsum: Record<string, number> = { none: 0, csum: TunFlag.CSUM, remcsum: TunFlag.REMCSUM };

function destKeyAttrs(d: { address: string; port: number }, field: string): { family: Family; attrs: Attr[] } {
  if (d === null || typeof d !== 'object') throw new IpvsInputError(field, d, 'must be an object');
  const a = addressOf(`${field}.address`, d.address);
  const port = intIn(`${field}.port`, d.port, 0, 65535);
  return {
    family: a.family,
    attrs: [attr(DestAttr.ADDR, a.inet), attr(DestAttr.PORT, portBe16(port)), attr(DestAttr.ADDR_FAMILY, AF_U16[a.family])],
  };
}

export function destAttrs(d: DestinationSpec, serviceFamily: Family, field = 'destination'): Attr[] {
  const { family, attrs } = destKeyAttrs(d, field);
  const fwd = Object.hasOwn(fwdCodes, d.forwarding) ? fwdCodes[d.forwarding] : undefined;
  if (fwd === undefined) throw new IpvsInputError(`${field}.forwarding`, d.forwarding, 'must be dr, tun or nat');
  // The kernel accepts a destination of the other family only for tunnelling (IPv6 VIP over an IPv4 tunnel).
  if (family !== serviceFamily && fwd !== FwdMethod.TUNNEL) {
    throw new IpvsInputError(`${field}.address`, d.address, `must be IPv${serviceFamily} like its service (mixing families needs forwarding tun)`);
  }
  const weight = intIn(`${field}.weight`, d.weight, 0, 0x7fffffff);
  const upper = intIn(`${field}.upperThreshold`, d.upperThreshold ?? 0, 0, 0xffffffff);
  const lower = intIn(`${field}.lowerThreshold`, d.lowerThreshold ?? 0, 0, 0xffffffff);
  // ip_vs_add_dest/ip_vs_edit_dest refuse lower > upper with ERANGE even when upper is 0 ("no limit").
  if (lower > upper) {
    throw new IpvsInputError(`${field}.lowerThreshold`, lower, `must not exceed upperThreshold ${upper} (0 = no limit, so set both)`);
  }
  attrs.push(attr(DestAttr.FWD_METHOD, u32v(fwd)), attr(DestAttr.WEIGHT, u32v(weight)), attr(DestAttr.U_THRESH, u32v(upper)), attr(DestAttr.L_THRESH, u32v(lower)));
  if (d.tunnel !== undefined) {
    if (fwd !== FwdMethod.TUNNEL) throw new IpvsInputError(`${field}.tunnel`, d.tunnel, 'is only valid with forwarding tun');
    const t = Object.hasOwn(tunTypes, d.tunnel.type) ? tunTypes[d.tunnel.type] : undefined;
    if (t === undefined) throw new IpvsInputError(`${field}.tunnel.type`, d.tunnel.type, 'must be ipip, gue or gre');
    attrs.push(attr(DestAttr.TUN_TYPE, u8(t)));
    if (d.tunnel.port !== undefined) attrs.push(attr(DestAttr.TUN_PORT, be16(intIn(`${field}.tunnel.port`, d.tunnel.port, 1, 65535))));
    if (t === TunType.GUE && d.tunnel.port === undefined) throw new IpvsInputError(`${field}.tunnel.port`, undefined, 'is required for GUE');
    if (d.tunnel.checksum !== undefined) {
      const c = Object.hasOwn(tunCsum, d.tunnel.checksum) ? tunCsum[d.tunnel.checksum] : undefined;
      if (c === undefined) throw new IpvsInputError(`${field}.tunnel.checksum`, d.tunnel.checksum, 'must be none, csum or remcsum');
      attrs.push(attr(DestAttr.TUN_FLAGS, u16(c)));
    }
  }
  return attrs;
}

function destRequest(cmd: number, verb: string, key: ServiceKey, dest: Attr[] | undefined, d: { address: string; port: number } | undefined, keyAttrs = serviceKeyAttrs(key).attrs): IpvsRequest {
  const top = [attr(CmdAttr.SERVICE, keyAttrs)];
  if (dest) top.push(attr(CmdAttr.DEST, dest));
  return new LabelledRequest(cmd, genlPayload(cmd, IPVS_GENL_VERSION, top), cmd === IpvsCmd.GET_DEST, 'dest', verb, key, d);
}

export function newDestRequest(key: ServiceKey, d: DestinationSpec): IpvsRequest {
  const k = serviceKeyAttrs(key);
  return destRequest(IpvsCmd.NEW_DEST, 'add destination', key, destAttrs(d, k.family), d, k.attrs);
}
export function setDestRequest(key: ServiceKey, d: DestinationSpec): IpvsRequest {
  const k = serviceKeyAttrs(key);
  return destRequest(IpvsCmd.SET_DEST, 'edit destination', key, destAttrs(d, k.family), d, k.attrs);
}
export function delDestRequest(key: ServiceKey, d: { address: string; port: number }): IpvsRequest {
  const k = serviceKeyAttrs(key);
  return destRequest(IpvsCmd.DEL_DEST, 'delete destination', key, destKeyAttrs(d, 'destination').attrs, d, k.attrs);
}
export function dumpDestsRequest(key: ServiceKey): IpvsRequest {
  return destRequest(IpvsCmd.GET_DEST, 'list destinations', key, undefined, undefined);
}

// ---- info, config, zero, daemons ---------------------------------------------------------------------------

export function getInfoRequest(): IpvsRequest {
  return { cmd: IpvsCmd.GET_INFO, payload: genlPayload(IpvsCmd.GET_INFO, IPVS_GENL_VERSION, []), dump: false, describe: 'get IPVS info', subject: 'info' };
}
export function getConfigRequest(): IpvsRequest {
  return { cmd: IpvsCmd.GET_CONFIG, payload: genlPayload(IpvsCmd.GET_CONFIG, IPVS_GENL_VERSION, []), dump: false, describe: 'get IPVS timeouts', subject: 'config' };
}
export function setConfigRequest(t: Partial<IpvsTimeouts>): IpvsRequest {
  const attrs: Attr[] = [];
  // 0 means "leave unchanged" to the kernel, so only the given timeouts are sent.
  if (t.tcp !== undefined) attrs.push(attr(CmdAttr.TIMEOUT_TCP, u32(intIn('timeouts.tcp', t.tcp, 1, 0x7fffffff))));
  if (t.tcpFin !== undefined) attrs.push(attr(CmdAttr.TIMEOUT_TCP_FIN, u32(intIn('timeouts.tcpFin', t.tcpFin, 1, 0x7fffffff))));
  if (t.udp !== undefined) attrs.push(attr(CmdAttr.TIMEOUT_UDP, u32(intIn('timeouts.udp', t.udp, 1, 0x7fffffff))));
  return { cmd: IpvsCmd.SET_CONFIG, payload: genlPayload(IpvsCmd.SET_CONFIG, IPVS_GENL_VERSION, attrs), dump: false, describe: 'set IPVS timeouts', subject: 'config' };
}
/** Zeroes the counters of one service, or of all when no key is given. */
export function zeroRequest(key?: ServiceKey): IpvsRequest {
  const attrs = key ? [attr(CmdAttr.SERVICE, serviceKeyAttrs(key).attrs)] : [];
  return {
    cmd: IpvsCmd.ZERO,
    payload: genlPayload(IpvsCmd.ZERO, IPVS_GENL_VERSION, attrs),
    dump: false,
    describe: key ? `zero counters of service ${serviceLabel(key)}` : 'zero all counters',
    subject: 'service',
  };
}

const roleState = { master: DaemonState.MASTER, backup: DaemonState.BACKUP } as const;

export function newDaemonRequest(spec: SyncDaemonSpec): IpvsRequest {
  const state = Object.hasOwn(roleState, spec.role) ? roleState[spec.role] : undefined;
  if (state === undefined) throw new IpvsInputError('syncDaemon.role', spec.role, 'must be master or backup');
  const ifn = name('syncDaemon.interface', spec.interface, IFNAME_MAXLEN);
  const attrs: Attr[] = [
    attr(DaemonAttr.STATE, u32(state)),
    attr(DaemonAttr.MCAST_IFN, cstring(ifn)),
    attr(DaemonAttr.SYNC_ID, u32(intIn('syncDaemon.syncId', spec.syncId, 0, 255))),
  ];
  if (spec.maxLength !== undefined) attrs.push(attr(DaemonAttr.SYNC_MAXLEN, u16(intIn('syncDaemon.maxLength', spec.maxLength, 1, 65507))));
  if (spec.group !== undefined) {
    const g = addressOf('syncDaemon.group', spec.group);
    attrs.push(attr(g.family === 4 ? DaemonAttr.MCAST_GROUP : DaemonAttr.MCAST_GROUP6, g.bytes));
  }
  if (spec.port !== undefined) attrs.push(attr(DaemonAttr.MCAST_PORT, u16(intIn('syncDaemon.port', spec.port, 1, 65535))));
  if (spec.ttl !== undefined) attrs.push(attr(DaemonAttr.MCAST_TTL, u8(intIn('syncDaemon.ttl', spec.ttl, 1, 255))));
  return {
    cmd: IpvsCmd.NEW_DAEMON,
    payload: genlPayload(IpvsCmd.NEW_DAEMON, IPVS_GENL_VERSION, [attr(CmdAttr.DAEMON, attrs)]),
    dump: false,
    describe: `start sync daemon ${spec.role} on ${ifn} (syncid ${spec.syncId})`,
    subject: 'daemon',
  };
}
export function delDaemonRequest(role: 'master' | 'backup'): IpvsRequest {
  const state = Object.hasOwn(roleState, role) ? roleState[role] : undefined;
  if (state === undefined) throw new IpvsInputError('syncDaemon.role', role, 'must be master or backup');
  return {
    cmd: IpvsCmd.DEL_DAEMON,
    payload: genlPayload(IpvsCmd.DEL_DAEMON, IPVS_GENL_VERSION, [attr(CmdAttr.DAEMON, [attr(DaemonAttr.STATE, u32(state))])]),
    dump: false,
    describe: `stop sync daemon ${role}`,
    subject: 'daemon',
  };
}
export function dumpDaemonsRequest(): IpvsRequest {
  return { cmd: IpvsCmd.GET_DAEMON, payload: genlPayload(IpvsCmd.GET_DAEMON, IPVS_GENL_VERSION, []), dump: true, describe: 'list sync daemons', subject: 'daemon' };
}

// ---- generic netlink controller ----------------------------------------------------------------------------

export function getFamilyPayload(familyName: string): Buffer {
  return genlPayload(CTRL_CMD_GETFAMILY, 1, [attr(CtrlAttr.FAMILY_NAME, cstring(familyName))]);
}
export function decodeFamily(payload: Buffer): { id: number; version: number; name: string } {
  const a = parseAttrs(parseGenl(payload).attrs, 'genl family');
  const id = a.get(CtrlAttr.FAMILY_ID);
  if (!id || id.length < 2) throw new NetlinkDecodeError('genl family: no CTRL_ATTR_FAMILY_ID');
  const version = a.get(CtrlAttr.VERSION);
  const nameBuf = a.get(CtrlAttr.FAMILY_NAME);
  return { id: readU16(id), version: version && version.length >= 4 ? readU32(version) : 0, name: nameBuf ? cstr(nameBuf) : '' };
}

// ---- decoding -----------------------------------------------------------------------------------------------

function cstr(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.subarray(0, nul < 0 ? b.length : nul).toString('utf8');
}

function need(a: Map<number, Buffer>, type: number, minLen: number, what: string): Buffer {
  const v = a.get(type);
  if (!v) throw new NetlinkDecodeError(`${what}: missing`);
  if (v.length < minLen) throw new NetlinkDecodeError(`${what}: ${v.length} bytes (< ${minLen})`);
  return v;
}
function optU32(a: Map<number, Buffer>, type: number, what: string): number | undefined {
  const v = a.get(type);
  if (!v) return undefined;
  if (v.length < 4) throw new NetlinkDecodeError(`${what}: ${v.length} bytes (< 4)`);
  return readU32(v);
}
function optU16(a: Map<number, Buffer>, type: number, what: string): number | undefined {
  const v = a.get(type);
  if (!v) return undefined;
  if (v.length < 2) throw new NetlinkDecodeError(`${what}: ${v.length} bytes (< 2)`);
  return readU16(v);
}

function familyFromCode(code: number, what: string): Family {
  if (code === AF_INET) return 4;
  if (code === AF_INET6) return 6;
  throw new NetlinkDecodeError(`${what}: unknown address family ${code}`);
}

function addrFromBytes(family: Family, b: Buffer, what: string): string {
  const len = family === 4 ? 4 : 16;
  if (b.length < len) throw new NetlinkDecodeError(`${what}: ${b.length} bytes (< ${len})`);
  // Dumps decode one address per service and per destination: no BigInt loop on this path.
  if (family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  return formatIp({ family, value: (b.readBigUInt64BE(0) << 64n) | b.readBigUInt64BE(8) });
}

const zeroStats = (): Stats => ({ conns: 0n, inpkts: 0n, outpkts: 0n, inbytes: 0n, outbytes: 0n, cps: 0n, inpps: 0n, outpps: 0n, inbps: 0n, outbps: 0n });
const statFields: [keyof Stats, number][] = [
  ['conns', StatsAttr.CONNS],
  ['inpkts', StatsAttr.INPKTS],
  ['outpkts', StatsAttr.OUTPKTS],
  ['inbytes', StatsAttr.INBYTES],
  ['outbytes', StatsAttr.OUTBYTES],
  ['cps', StatsAttr.CPS],
  ['inpps', StatsAttr.INPPS],
  ['outpps', StatsAttr.OUTPPS],
  ['inbps', StatsAttr.INBPS],
  ['outbps', StatsAttr.OUTBPS],
];

/** IPVS_*_ATTR_STATS64 when present (Linux ≥ 4.1), else the 32-bit IPVS_*_ATTR_STATS (bytes are u64 in both). */
export function decodeStats(stats64: Buffer | undefined, stats32: Buffer | undefined, what: string): Stats {
  const s = zeroStats();
  if (stats64) {
    const a = parseAttrs(stats64, `${what} stats64`);
    for (const [k, t] of statFields) {
      const v = a.get(t);
      if (v) {
        if (v.length < 8) throw new NetlinkDecodeError(`${what} stats64.${k}: ${v.length} bytes (< 8)`);
        s[k] = readU64(v);
      }
    }
    return s;
  }
  if (stats32) {
    const a = parseAttrs(stats32, `${what} stats`);
    for (const [k, t] of statFields) {
      const v = a.get(t);
      if (!v) continue;
      const wide = k === 'inbytes' || k === 'outbytes';
      if (v.length < (wide ? 8 : 4)) throw new NetlinkDecodeError(`${what} stats.${k}: ${v.length} bytes`);
      s[k] = wide ? readU64(v) : BigInt(readU32(v));
    }
  }
  return s;
}

export interface DecodeOptions {
  /** Decode the counters (default true). A table read for the reconciler skips them: they are most of the
   * message and it compares only configuration. Skipped counters read as zero. */
  stats?: boolean;
}

/** Decodes the nested IPVS_CMD_ATTR_SERVICE of a GET_SERVICE reply. */
export function decodeServiceAttrs(nested: Buffer, opts: DecodeOptions = {}): Service {
  const a = parseAttrs(nested, 'service');
  const family = familyFromCode(readU16(need(a, SvcAttr.AF, 2, 'service.af')), 'service.af');
  const fwmark = optU32(a, SvcAttr.FWMARK, 'service.fwmark') ?? 0;
  let protocol: Protocol | undefined;
  let address: string | undefined;
  let port = 0;
  if (fwmark === 0) {
    const p = readU16(need(a, SvcAttr.PROTOCOL, 2, 'service.protocol'));
    protocol = protocolNames.get(p);
    if (!protocol) throw new NetlinkDecodeError(`service.protocol: unknown protocol ${p}`);
    address = addrFromBytes(family, need(a, SvcAttr.ADDR, 4, 'service.addr'), 'service.addr');
    port = need(a, SvcAttr.PORT, 2, 'service.port').readUInt16BE(0);
  }
  const scheduler = cstr(need(a, SvcAttr.SCHED_NAME, 1, 'service.sched_name'));
  const flagsBuf = need(a, SvcAttr.FLAGS, 4, 'service.flags');
  const flags = readU32(flagsBuf);
  const timeout = optU32(a, SvcAttr.TIMEOUT, 'service.timeout') ?? 0;
  const nm = a.get(SvcAttr.NETMASK);
  if (nm && nm.length < 4) throw new NetlinkDecodeError(`service.netmask: ${nm.length} bytes (< 4)`);
  const netmask: string | number = family === 4 ? addrFromBytes(4, nm ?? Buffer.from([255, 255, 255, 255]), 'service.netmask') : nm ? readU32(nm) : 128;
  const schedulerFlags: SchedulerFlag[] = [];
  if (flags & SvcFlag.SCHED1) schedulerFlags.push('flag-1');
  if (flags & SvcFlag.SCHED2) schedulerFlags.push('flag-2');
  if (flags & SvcFlag.SCHED3) schedulerFlags.push('flag-3');
  const pe = a.get(SvcAttr.PE_NAME);
  return {
    family,
    protocol,
    address,
    port,
    fwmark,
    scheduler,
    flags,
    schedulerFlags,
    onePacket: (flags & SvcFlag.ONEPACKET) !== 0,
    persistence: flags & SvcFlag.PERSISTENT ? { timeout, netmask } : undefined,
    persistenceEngine: pe ? cstr(pe) : undefined,
    stats: opts.stats === false ? zeroStats() : decodeStats(a.get(SvcAttr.STATS64), a.get(SvcAttr.STATS), 'service'),
  };
}

const isCounters = (type: number): boolean => type === SvcAttr.STATS || type === SvcAttr.STATS64;

/**
 * What a service message says apart from its counters (its service attributes but STATS and STATS64, as
 * bytes): messages with the same key decode alike with `stats: false`, so a decoded service can be kept under
 * it (IpvsClient.table()). undefined when the message is malformed: decoding it then says how.
 */
export function serviceIdentityKey(payload: Buffer): string | undefined {
  if (payload.length < GENL_HDRLEN) return undefined;
  const nest = findAttr(payload, GENL_HDRLEN, payload.length, CmdAttr.SERVICE);
  return nest && attrsKey(payload, nest[0], nest[1], isCounters);
}

/** Decodes one message of a GET_SERVICE dump (or the reply of a GET_SERVICE doit). */
export function decodeServiceMsg(payload: Buffer, opts: DecodeOptions = {}): Service {
  const top = parseAttrs(parseGenl(payload).attrs, 'service message');
  return decodeServiceAttrs(need(top, CmdAttr.SERVICE, 0, 'IPVS_CMD_ATTR_SERVICE'), opts);
}

const fwdNames = new Map<number, DecodedForwarding>([
  [FwdMethod.MASQ, 'nat'],
  [FwdMethod.LOCALNODE, 'local'],
  [FwdMethod.TUNNEL, 'tun'],
  [FwdMethod.DROUTE, 'dr'],
  [FwdMethod.BYPASS, 'bypass'],
]);
const tunNames = new Map<number, TunnelOptions['type']>([
  [TunType.IPIP, 'ipip'],
  [TunType.GUE, 'gue'],
  [TunType.GRE, 'gre'],
]);

export function decodeDestAttrs(nested: Buffer, serviceFamily: Family): Destination {
  const a = parseAttrs(nested, 'destination');
  const afCode = optU16(a, DestAttr.ADDR_FAMILY, 'destination.addr_family');
  const family = afCode === undefined ? serviceFamily : familyFromCode(afCode, 'destination.addr_family');
  const address = addrFromBytes(family, need(a, DestAttr.ADDR, 4, 'destination.addr'), 'destination.addr');
  const port = need(a, DestAttr.PORT, 2, 'destination.port').readUInt16BE(0);
  const fwdCode = readU32(need(a, DestAttr.FWD_METHOD, 4, 'destination.fwd_method')) & FWD_MASK;
  const forwarding = fwdNames.get(fwdCode);
  if (!forwarding) throw new NetlinkDecodeError(`destination.fwd_method: unknown method ${fwdCode}`);
  let tunnel: TunnelOptions | undefined;
  if (forwarding === 'tun') {
    const tt = a.get(DestAttr.TUN_TYPE);
    const type = tt && tt.length >= 1 ? tunNames.get(tt[0]!) : 'ipip';
    if (!type) throw new NetlinkDecodeError(`destination.tun_type: unknown type ${tt?.[0]}`);
    tunnel = { type };
    const tp = a.get(DestAttr.TUN_PORT);
    if (tp && tp.length >= 2 && tp.readUInt16BE(0) !== 0) tunnel.port = tp.readUInt16BE(0);
    const tf = optU16(a, DestAttr.TUN_FLAGS, 'destination.tun_flags');
    if (tf !== undefined && type !== 'ipip') tunnel.checksum = tf & TunFlag.REMCSUM ? 'remcsum' : tf & TunFlag.CSUM ? 'csum' : 'none';
  }
  return {
    family,
    address,
    port,
    forwarding,
    weight: readU32(need(a, DestAttr.WEIGHT, 4, 'destination.weight')),
    upperThreshold: optU32(a, DestAttr.U_THRESH, 'destination.u_thresh') ?? 0,
    lowerThreshold: optU32(a, DestAttr.L_THRESH, 'destination.l_thresh') ?? 0,
    activeConns: optU32(a, DestAttr.ACTIVE_CONNS, 'destination.active_conns') ?? 0,
    inactiveConns: optU32(a, DestAttr.INACT_CONNS, 'destination.inact_conns') ?? 0,
    persistentConns: optU32(a, DestAttr.PERSIST_CONNS, 'destination.persist_conns') ?? 0,
    tunnel,
    stats: decodeStats(a.get(DestAttr.STATS64), a.get(DestAttr.STATS), 'destination'),
  };
}

export function decodeDestMsg(payload: Buffer, serviceFamily: Family): Destination {
  const top = parseAttrs(parseGenl(payload).attrs, 'destination message');
  return decodeDestAttrs(need(top, CmdAttr.DEST, 0, 'IPVS_CMD_ATTR_DEST'), serviceFamily);
}

export function decodeInfoMsg(payload: Buffer): IpvsInfo {
  const a = parseAttrs(parseGenl(payload).attrs, 'info');
  const code = readU32(need(a, InfoAttr.VERSION, 4, 'info.version'));
  return {
    versionCode: code,
    version: `${(code >> 16) & 0xff}.${(code >> 8) & 0xff}.${code & 0xff}`,
    connTableSize: readU32(need(a, InfoAttr.CONN_TAB_SIZE, 4, 'info.conn_tab_size')),
  };
}

export function decodeConfigMsg(payload: Buffer): IpvsTimeouts {
  const a = parseAttrs(parseGenl(payload).attrs, 'config');
  return {
    tcp: optU32(a, CmdAttr.TIMEOUT_TCP, 'config.timeout_tcp') ?? 0,
    tcpFin: optU32(a, CmdAttr.TIMEOUT_TCP_FIN, 'config.timeout_tcp_fin') ?? 0,
    udp: optU32(a, CmdAttr.TIMEOUT_UDP, 'config.timeout_udp') ?? 0,
  };
}

export function decodeDaemonMsg(payload: Buffer): SyncDaemon {
  const top = parseAttrs(parseGenl(payload).attrs, 'daemon message');
  const a = parseAttrs(need(top, CmdAttr.DAEMON, 0, 'IPVS_CMD_ATTR_DAEMON'), 'daemon');
  const state = readU32(need(a, DaemonAttr.STATE, 4, 'daemon.state'));
  const role = state === DaemonState.MASTER ? 'master' : state === DaemonState.BACKUP ? 'backup' : undefined;
  if (!role) throw new NetlinkDecodeError(`daemon.state: unknown state ${state}`);
  const g4 = a.get(DaemonAttr.MCAST_GROUP);
  const g6 = a.get(DaemonAttr.MCAST_GROUP6);
  const ttl = a.get(DaemonAttr.MCAST_TTL);
  return {
    role,
    interface: cstr(need(a, DaemonAttr.MCAST_IFN, 1, 'daemon.mcast_ifn')),
    syncId: readU32(need(a, DaemonAttr.SYNC_ID, 4, 'daemon.sync_id')),
    maxLength: optU16(a, DaemonAttr.SYNC_MAXLEN, 'daemon.sync_maxlen'),
    group: g6 && g6.length >= 16 ? addrFromBytes(6, g6, 'daemon.mcast_group6') : g4 && g4.length >= 4 ? addrFromBytes(4, g4, 'daemon.mcast_group') : undefined,
    port: optU16(a, DaemonAttr.MCAST_PORT, 'daemon.mcast_port'),
    ttl: ttl && ttl.length >= 1 ? ttl[0] : undefined,
  };
}
