// Bearer-token check for the REST API. The token is compared in constant time (hash both sides to one
// length first, so neither the content nor the length leaks through timing).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';

const digest = (s: string) => createHash('sha256').update(s).digest();

export class TokenError extends Error {}

export function readToken(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new TokenError(`api.tokenFile: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (text.length < 16) throw new TokenError(`api.tokenFile: the token in ${path} is shorter than 16 characters`);
  return text;
}

/** With no api.tokenFile configured, the daemon makes one in its state directory that only root and the ipvs-lb group can read. */
export function ensureGeneratedToken(path: string): string {
  if (!existsSync(path)) {
    writeFileSync(path, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o640, flag: 'wx' });
    chmodSync(path, 0o640);
  }
  return readToken(path);
}

export function tokenMatches(header: string | undefined, token: string): boolean {
  if (!header) return false;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) return false;
  return timingSafeEqual(digest(m[1]!), digest(token));
}
