// Guards for every value that is written into keepalived.conf. keepalived's parser treats `"`, `{`, `}`,
// `#`, `!` and whitespace as syntax, so a value outside a narrow alphabet could add directives (a notify
// script, say). The config schema already checks these fields; the renderer checks again because it is the
// last line before a file that keepalived runs as root.
import { isIP } from 'node:net';

export class RenderError extends Error {
  constructor(
    readonly field: string,
    readonly value: unknown,
    reason: string,
  ) {
    super(`${field}: ${reason} (got ${JSON.stringify(value)})`);
    this.name = 'RenderError';
  }
}

const patterns = {
  /** keepalived router_id: host-name characters only. */
  routerId: [/^[A-Za-z0-9][-A-Za-z0-9_.]{0,62}$/, 'must be 1-63 letters, digits, "-", "_" or "." for keepalived.conf'],
  /** Group names become vrrp_instance names and the names in notify lines. */
  groupName: [/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a lower-case DNS label for keepalived.conf'],
  /** Linux interface names are 1-15 bytes; we accept the characters that real ones use. */
  interface: [/^[A-Za-z0-9_][-A-Za-z0-9_.]{0,14}$/, 'must be an interface name of letters, digits, "-", "_" or "." (1-15) for keepalived.conf'],
  /** Absolute paths without spaces, quotes or parent references. */
  path: [/^(\/[-A-Za-z0-9_.]+)+$/, 'must be an absolute path of letters, digits, "-", "_", "." and "/" for keepalived.conf'],
  /** A process name as in /proc/PID/comm (15 bytes). */
  processName: [/^[A-Za-z0-9_][-A-Za-z0-9_.]{0,14}$/, 'must be a process name of letters, digits, "-", "_" or "." (1-15)'],
  /** A user name for script_user. */
  userName: [/^[a-z_][-a-z0-9_]{0,31}$/, 'must be a POSIX user name'],
} as const satisfies Record<string, readonly [RegExp, string]>;

export type SafeKind = keyof typeof patterns;

export function safe(kind: SafeKind, field: string, value: unknown): string {
  const [re, reason] = patterns[kind];
  if (typeof value !== 'string' || !re.test(value)) throw new RenderError(field, value, reason);
  if (kind === 'path' && value.split('/').some((seg) => seg === '..' || seg === '.')) {
    throw new RenderError(field, value, 'must not contain "." or ".." segments');
  }
  return value;
}

/** An IP address without zone index or prefix, in the characters of a literal only. */
export function safeIp(field: string, value: unknown): string {
  if (typeof value !== 'string' || !/^[0-9A-Fa-f:.]{2,45}$/.test(value) || isIP(value) === 0) {
    throw new RenderError(field, value, 'must be an IPv4 or IPv6 address for keepalived.conf');
  }
  return value;
}

export function safeInt(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RenderError(field, value, `must be an integer from ${min} to ${max}`);
  }
  return value;
}

/** A decimal number of seconds with at most `digits` decimals, written without exponent or trailing zeros. */
export function safeSeconds(field: string, value: unknown, min: number, max: number, digits: number): string {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new RenderError(field, value, `must be a number of seconds from ${min} to ${max}`);
  }
  const text = value.toFixed(digits).replace(/\.?0+$/, '');
  if (Math.abs(Number(text) - value) > 1e-9) {
    throw new RenderError(field, value, `must have at most ${digits} decimals`);
  }
  return text === '' ? '0' : text;
}
