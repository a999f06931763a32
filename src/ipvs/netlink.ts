// Netlink framing as pure functions: message headers, attributes (TLV, 4-byte aligned, nestable), error and
// done payloads. Shared by the IPVS generic-netlink codec and the rtnetlink VIP codec so that both are tested
// against golden bytes without a socket. Netlink uses the host's byte order for its headers and for integer
// attributes unless an attribute is documented as big-endian (ports, IPv4 netmasks, addresses).
import { endianness } from 'node:os';
import { constants as osConstants } from 'node:os';

const LE = endianness() === 'LE';

export const NLMSG_HDRLEN = 16;
export const NLA_HDRLEN = 4;
export const GENL_HDRLEN = 4;

export const NlMsgType = { NOOP: 1, ERROR: 2, DONE: 3, OVERRUN: 4 } as const;

export const NlFlags = {
  REQUEST: 0x1,
  MULTI: 0x2,
  ACK: 0x4,
  ECHO: 0x8,
  DUMP_INTR: 0x10,
  DUMP_FILTERED: 0x20,
  // GET requests
  ROOT: 0x100,
  MATCH: 0x200,
  DUMP: 0x300,
  // NEW requests
  REPLACE: 0x100,
  EXCL: 0x200,
  CREATE: 0x400,
  APPEND: 0x800,
  // flags of an ERROR (ack) message
  CAPPED: 0x100,
  ACK_TLVS: 0x200,
} as const;

/** Attribute type bits that are flags, not part of the type number. */
export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
const NLA_TYPE_MASK = 0x3fff;

/** Thrown when bytes that came from the kernel (or anywhere else) do not form valid netlink. */
export class NetlinkDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NetlinkDecodeError';
  }
}

export const align4 = (n: number): number => (n + 3) & ~3;

// ---- host-order integer helpers -------------------------------------------------------------------------

// Every byte of these is written, so they come from Buffer's shared pool: programming a large table encodes
// hundreds of thousands of them.
export function u16(value: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  if (LE) b.writeUInt16LE(value);
  else b.writeUInt16BE(value);
  return b;
}
export function u32(value: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  if (LE) b.writeUInt32LE(value >>> 0);
  else b.writeUInt32BE(value >>> 0);
  return b;
}
export function u8(value: number): Buffer {
  return Buffer.from([value & 0xff]);
}
export function be16(value: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(value);
  return b;
}
/** A NUL-terminated string, as NLA_NUL_STRING policies require. */
export function cstring(value: string): Buffer {
  return Buffer.concat([Buffer.from(value, 'utf8'), Buffer.alloc(1)]);
}

export function readU16(b: Buffer, off = 0): number {
  return LE ? b.readUInt16LE(off) : b.readUInt16BE(off);
}
export function readU32(b: Buffer, off = 0): number {
  return LE ? b.readUInt32LE(off) : b.readUInt32BE(off);
}
export function readS32(b: Buffer, off = 0): number {
  return LE ? b.readInt32LE(off) : b.readInt32BE(off);
}
export function readU64(b: Buffer, off = 0): bigint {
  return LE ? b.readBigUInt64LE(off) : b.readBigUInt64BE(off);
}

// ---- attributes ---------------------------------------------------------------------------------------------

export interface Attr {
  type: number;
  /** The raw payload, or a list of attributes for a nested attribute. */
  value: Buffer | Attr[];
}

export function attr(type: number, value: Buffer | Attr[]): Attr {
  return { type, value };
}

function attrsLength(attrs: readonly Attr[]): number {
  let n = 0;
  for (const a of attrs) {
    const payload = Array.isArray(a.value) ? attrsLength(a.value as Attr[]) : (a.value as Buffer).length;
    const len = NLA_HDRLEN + payload;
    if (len > 0xffff) throw new RangeError(`netlink attribute ${a.type} is too long (${len} bytes)`);
    n += align4(len);
  }
  return n;
}

function writeAttrs(attrs: readonly Attr[], out: Buffer, start: number): number {
  let off = start;
  for (const a of attrs) {
    const nested = Array.isArray(a.value);
    // Nested attributes carry NLA_F_NESTED, as libnl (ipvsadm, keepalived) sends them; the kernel takes both.
    const type = nested ? a.type | NLA_F_NESTED : a.type;
    let end: number;
    if (nested) end = writeAttrs(a.value as Attr[], out, off + NLA_HDRLEN);
    else end = off + NLA_HDRLEN + (a.value as Buffer).copy(out, off + NLA_HDRLEN);
    const len = end - off;
    if (LE) {
      out.writeUInt16LE(len, off);
      out.writeUInt16LE(type, off + 2);
    } else {
      out.writeUInt16BE(len, off);
      out.writeUInt16BE(type, off + 2);
    }
    // The buffer comes from the shared pool (not zeroed): write the padding.
    for (let p = end; p < off + align4(len); p++) out[p] = 0;
    off += align4(len);
  }
  return off;
}

/** TLV attributes, 4-byte aligned, written into one buffer (padding is zero). */
export function encodeAttrs(attrs: readonly Attr[]): Buffer {
  const out = Buffer.allocUnsafe(attrsLength(attrs));
  writeAttrs(attrs, out, 0);
  return out;
}

/**
 * Splits a buffer into attributes. Strict: a length that is too short or runs past the end is an error, so a
 * truncated or corrupt message can never be read as shorter valid data. Later duplicates win, as in the kernel.
 */
export function parseAttrs(buf: Buffer, what = 'attributes'): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let off = 0;
  while (off < buf.length) {
    if (buf.length - off < NLA_HDRLEN) throw new NetlinkDecodeError(`${what}: ${buf.length - off} stray bytes at offset ${off}`);
    const len = readU16(buf, off);
    const type = readU16(buf, off + 2) & NLA_TYPE_MASK;
    if (len < NLA_HDRLEN) throw new NetlinkDecodeError(`${what}: attribute ${type} at offset ${off} has length ${len} (< 4)`);
    if (off + len > buf.length) {
      throw new NetlinkDecodeError(`${what}: attribute ${type} at offset ${off} has length ${len}, past the end (${buf.length} bytes)`);
    }
    out.set(type, buf.subarray(off + NLA_HDRLEN, off + len));
    off += align4(len);
  }
  return out;
}

/**
 * Where the payload of the last attribute of `type` in buf[from, to) lies, without making views; undefined
 * when it is absent or when parseAttrs would refuse the range.
 */
export function findAttr(buf: Buffer, from: number, to: number, type: number): [number, number] | undefined {
  let found: [number, number] | undefined;
  let off = from;
  while (off < to) {
    if (to - off < NLA_HDRLEN) return undefined;
    const len = readU16(buf, off);
    if (len < NLA_HDRLEN || off + len > to) return undefined;
    if ((readU16(buf, off + 2) & NLA_TYPE_MASK) === type) found = [off + NLA_HDRLEN, off + len];
    off += align4(len);
  }
  return found;
}

/**
 * The bytes of every attribute in buf[from, to) but those `skip` names, in order, as one string: two ranges
 * with the same key hold the same attributes apart from the skipped ones. undefined when parseAttrs would
 * refuse the range.
 */
export function attrsKey(buf: Buffer, from: number, to: number, skip: (type: number) => boolean): string | undefined {
  let key = '';
  let run = from;
  let off = from;
  while (off < to) {
    if (to - off < NLA_HDRLEN) return undefined;
    const len = readU16(buf, off);
    if (len < NLA_HDRLEN || off + len > to) return undefined;
    const next = Math.min(off + align4(len), to);
    if (skip(readU16(buf, off + 2) & NLA_TYPE_MASK)) {
      if (off > run) key += buf.toString('latin1', run, off);
      run = next;
    }
    off = next;
  }
  if (to > run) key += buf.toString('latin1', run, to);
  return key;
}

// ---- messages -----------------------------------------------------------------------------------------------

export interface NlMsg {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  payload: Buffer;
}

export function encodeMsg(msg: NlMsg): Buffer {
  const len = NLMSG_HDRLEN + msg.payload.length;
  const out = Buffer.alloc(align4(len));
  if (LE) {
    out.writeUInt32LE(len, 0);
    out.writeUInt16LE(msg.type, 4);
    out.writeUInt16LE(msg.flags, 6);
    out.writeUInt32LE(msg.seq >>> 0, 8);
    out.writeUInt32LE(msg.pid >>> 0, 12);
  } else {
    out.writeUInt32BE(len, 0);
    out.writeUInt16BE(msg.type, 4);
    out.writeUInt16BE(msg.flags, 6);
    out.writeUInt32BE(msg.seq >>> 0, 8);
    out.writeUInt32BE(msg.pid >>> 0, 12);
  }
  msg.payload.copy(out, NLMSG_HDRLEN);
  return out;
}

/** Several messages in one datagram, written into one buffer (what encodeMsg gives, concatenated). */
export function encodeMsgs(msgs: readonly NlMsg[]): Buffer {
  let total = 0;
  for (const m of msgs) total += align4(NLMSG_HDRLEN + m.payload.length);
  const out = Buffer.alloc(total);
  let off = 0;
  for (const m of msgs) {
    const len = NLMSG_HDRLEN + m.payload.length;
    if (LE) {
      out.writeUInt32LE(len, off);
      out.writeUInt16LE(m.type, off + 4);
      out.writeUInt16LE(m.flags, off + 6);
      out.writeUInt32LE(m.seq >>> 0, off + 8);
      out.writeUInt32LE(m.pid >>> 0, off + 12);
    } else {
      out.writeUInt32BE(len, off);
      out.writeUInt16BE(m.type, off + 4);
      out.writeUInt16BE(m.flags, off + 6);
      out.writeUInt32BE(m.seq >>> 0, off + 8);
      out.writeUInt32BE(m.pid >>> 0, off + 12);
    }
    m.payload.copy(out, off + NLMSG_HDRLEN);
    off += align4(len);
  }
  return out;
}

/** Splits one received datagram into messages (strict bounds, see parseAttrs). */
export function parseMsgs(buf: Buffer): NlMsg[] {
  const out: NlMsg[] = [];
  let off = 0;
  while (off < buf.length) {
    if (buf.length - off < NLMSG_HDRLEN) throw new NetlinkDecodeError(`netlink: ${buf.length - off} stray bytes at offset ${off}`);
    const len = readU32(buf, off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) {
      throw new NetlinkDecodeError(`netlink: message at offset ${off} has length ${len} (datagram is ${buf.length} bytes)`);
    }
    out.push({
      type: readU16(buf, off + 4),
      flags: readU16(buf, off + 6),
      seq: readU32(buf, off + 8),
      pid: readU32(buf, off + 12),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

/** Errno (positive) of an NLMSG_ERROR payload; 0 is an acknowledgement. */
export function parseErrorPayload(payload: Buffer): { errno: number; origSeq: number | undefined } {
  if (payload.length < 4) throw new NetlinkDecodeError(`netlink: error message of ${payload.length} bytes (< 4)`);
  const err = readS32(payload, 0);
  const origSeq = payload.length >= 4 + NLMSG_HDRLEN ? readU32(payload, 4 + 8) : undefined;
  return { errno: err === 0 ? 0 : -err, origSeq };
}

/** A DONE message may carry a (negative) error of the dump. */
export function parseDonePayload(payload: Buffer): number {
  const err = payload.length >= 4 ? readS32(payload, 0) : 0;
  return err === 0 ? 0 : -err;
}

// ---- generic netlink header ---------------------------------------------------------------------------------

export function genlPayload(cmd: number, version: number, attrs: readonly Attr[]): Buffer {
  const out = Buffer.allocUnsafe(GENL_HDRLEN + attrsLength(attrs));
  out[0] = cmd;
  out[1] = version;
  out[2] = 0;
  out[3] = 0;
  writeAttrs(attrs, out, GENL_HDRLEN);
  return out;
}

export function parseGenl(payload: Buffer): { cmd: number; version: number; attrs: Buffer } {
  if (payload.length < GENL_HDRLEN) throw new NetlinkDecodeError(`genetlink: payload of ${payload.length} bytes (< 4)`);
  return { cmd: payload[0]!, version: payload[1]!, attrs: payload.subarray(GENL_HDRLEN) };
}

// ---- errno names --------------------------------------------------------------------------------------------

const errnoNames = new Map<number, string>();
for (const [name, num] of Object.entries(osConstants.errno)) if (!errnoNames.has(num)) errnoNames.set(num, name);
// Linux has a few aliases whose preferred name differs from the first one Node lists.
errnoNames.set(osConstants.errno.EAGAIN, 'EAGAIN');
errnoNames.set(osConstants.errno.EOPNOTSUPP, 'EOPNOTSUPP');

export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `E${errno}`;
}
