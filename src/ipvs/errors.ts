// Errors with a stable `code` that callers branch on (the npm netlink package gives only a message string).
import { errnoName } from './netlink.js';

/** A caller passed a value the kernel would refuse or misread; names the field and the value. */
export class IpvsInputError extends Error {
  readonly code = 'EINPUT';
  constructor(
    readonly field: string,
    readonly value: unknown,
    problem: string,
  ) {
    super(`${field}: ${problem} (got ${formatValue(value)})`);
    this.name = 'IpvsInputError';
  }
}

function formatValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'bigint') return `${v}n`;
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/** The kernel refused a request: `code` is the errno name (EEXIST, ENOENT, ESRCH, EINVAL, ...). */
export class NetlinkError extends Error {
  readonly code: string;
  constructor(
    readonly errno: number,
    /** What was asked, e.g. "add service tcp 192.0.2.10:80". */
    readonly operation: string,
    hint?: string,
  ) {
    const code = errnoName(errno);
    super(`${operation}: ${hint ?? code} (${code})`);
    this.code = code;
    this.name = 'NetlinkError';
  }
}

/** A failure of the transport itself: socket error, timeout, overrun, undecodable reply. */
export class NetlinkTransportError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'NetlinkTransportError';
  }
}

export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  ERANGE: 34,
  ENOMEM: 12,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENOBUFS: 105,
  EAFNOSUPPORT: 97,
  EADDRNOTAVAIL: 99,
  EOPNOTSUPP: 95,
  ETIMEDOUT: 110,
} as const;
