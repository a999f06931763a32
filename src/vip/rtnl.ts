// rtnetlink address and link messages as pure functions (include/uapi/linux/rtnetlink.h, if_addr.h,
// if_link.h): just the fields the VIP binder needs. Framing and attributes come from ../ipvs/netlink.ts.
import { formatIp, parseIp, type Ip } from '../ipam/address.js';
import { attr, cstring, encodeAttrs, NetlinkDecodeError, parseAttrs, readS32, readU32, u32, type Attr } from '../ipvs/netlink.js';

export const RTM = { NEWLINK: 16, DELLINK: 17, GETLINK: 18, NEWADDR: 20, DELADDR: 21, GETADDR: 22 } as const;
export const RTNLGRP = { LINK: 1, IPV4_IFADDR: 5, IPV6_IFADDR: 9 } as const;
export const IFA = { ADDRESS: 1, LOCAL: 2, LABEL: 3, FLAGS: 8 } as const;
export const IFA_F = { NODAD: 0x02, PERMANENT: 0x80, TENTATIVE: 0x40, DADFAILED: 0x08 } as const;
export const IFLA = { IFNAME: 3, OPERSTATE: 16 } as const;
export const IFF = { UP: 0x1, RUNNING: 0x40, LOWER_UP: 0x10000 } as const;
export const RT_SCOPE_UNIVERSE = 0;
const AF_INET = 2;
const AF_INET6 = 10;

export interface IfAddr {
  index: number;
  family: 4 | 6;
  prefixLength: number;
  /** Canonical text. */
  address: string;
  flags: number;
  label: string | undefined;
}

export interface IfLink {
  index: number;
  name: string | undefined;
  flags: number;
  /** Administratively up and carrier present. */
  up: boolean;
}

function ipBytes(ip: Ip): Buffer {
  const len = ip.family === 4 ? 4 : 16;
  const b = Buffer.alloc(len);
  let v = ip.value;
  for (let i = len - 1; i >= 0; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return b;
}

/**
 * struct ifaddrmsg {u8 family, u8 prefixlen, u8 flags, u8 scope, u32 index} + IFA_LOCAL/IFA_ADDRESS.
 * For IPv4 both attributes carry the address (as iproute2 does for a peer-less address); IPv6 uses IFA_ADDRESS.
 * Flags above 8 bits travel in IFA_FLAGS.
 */
export function addrPayload(index: number, address: string, prefixLength: number, flags = 0): Buffer {
  const ip = parseIp(address);
  if (!ip) throw new NetlinkDecodeError(`not an IP address: ${address}`);
  const hdr = Buffer.alloc(8);
  hdr[0] = ip.family === 4 ? AF_INET : AF_INET6;
  hdr[1] = prefixLength;
  hdr[2] = flags & 0xff;
  hdr[3] = RT_SCOPE_UNIVERSE;
  hdr.writeUInt32LE(0, 4);
  u32(index).copy(hdr, 4);
  const bytes = ipBytes(ip);
  const attrs: Attr[] = ip.family === 4 ? [attr(IFA.LOCAL, bytes), attr(IFA.ADDRESS, bytes)] : [attr(IFA.ADDRESS, bytes)];
  if (flags > 0xff) attrs.push(attr(IFA.FLAGS, u32(flags)));
  return Buffer.concat([hdr, encodeAttrs(attrs)]);
}

/** An RTM_GETADDR dump request for every address of every family. */
export function addrDumpPayload(): Buffer {
  return Buffer.alloc(8);
}

export function decodeAddr(payload: Buffer): IfAddr {
  if (payload.length < 8) throw new NetlinkDecodeError(`ifaddrmsg: ${payload.length} bytes (< 8)`);
  const famCode = payload[0]!;
  const family = famCode === AF_INET ? 4 : famCode === AF_INET6 ? 6 : undefined;
  if (!family) throw new NetlinkDecodeError(`ifaddrmsg: unsupported family ${famCode}`);
  const a = parseAttrs(payload.subarray(8), 'ifaddrmsg');
  // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point links.
  const raw = a.get(IFA.LOCAL) ?? a.get(IFA.ADDRESS);
  const len = family === 4 ? 4 : 16;
  if (!raw || raw.length < len) throw new NetlinkDecodeError('ifaddrmsg: no address');
  let v = 0n;
  for (let i = 0; i < len; i++) v = (v << 8n) | BigInt(raw[i]!);
  const fl = a.get(IFA.FLAGS);
  const label = a.get(IFA.LABEL);
  return {
    index: readU32(payload, 4),
    family,
    prefixLength: payload[1]!,
    address: formatIp({ family, value: v }),
    flags: fl && fl.length >= 4 ? readU32(fl) : payload[2]!,
    label: label ? label.subarray(0, label.indexOf(0) < 0 ? label.length : label.indexOf(0)).toString() : undefined,
  };
}

/** struct ifinfomsg {u8 family, u8 pad, u16 type, s32 index, u32 flags, u32 change} + IFLA_IFNAME. */
export function linkByNamePayload(name: string): Buffer {
  return Buffer.concat([Buffer.alloc(16), encodeAttrs([attr(IFLA.IFNAME, cstring(name))])]);
}

export function decodeLink(payload: Buffer): IfLink {
  if (payload.length < 16) throw new NetlinkDecodeError(`ifinfomsg: ${payload.length} bytes (< 16)`);
  const a = parseAttrs(payload.subarray(16), 'ifinfomsg');
  const n = a.get(IFLA.IFNAME);
  const flags = readU32(payload, 8);
  return {
    index: readS32(payload, 4),
    name: n ? n.subarray(0, n.indexOf(0) < 0 ? n.length : n.indexOf(0)).toString() : undefined,
    flags,
    up: (flags & IFF.UP) !== 0 && (flags & IFF.LOWER_UP) !== 0,
  };
}
