// Runs arping for the announcer from a small long-lived shell instead of from the daemon. Node's spawn forks
// the whole daemon, synchronously, on the event loop: measured in the lab (UML) at 20-70 ms on a quiet guest
// and 80-210 ms with two daemons and keepalived at advert_int 0.1, several hundred ms on a loaded host, and a
// takeover's first gratuitous ARP waited for it (with the "→ MASTER" report and everything else queued
// behind it). A fork of the shell costs a fraction of that and blocks nothing here: a request is one line on
// its stdin.
//
// Nothing is interpolated into the script: it is a constant, the interface and the arping path are its
// positional arguments, and a request line carries a number and an address that were validated (IPv4,
// canonical text) before they were written; the shell only ever expands them inside double quotes. Each
// reply is "ID STATUS STDERR" ended by a NUL byte (stderr may hold newlines); it comes from a background
// subshell, so requests run concurrently, and a reply shorter than PIPE_BUF is one atomic write.
import { spawn, type ChildProcess } from 'node:child_process';
import { parseIp, formatIp } from '../ipam/address.js';
import { validInterfaceName } from './announce.js';

const SCRIPT = [
  'iface=$1 arping=$2',
  'while IFS=" " read -r id addr; do',
  '  { err=$("$arping" -U -c 1 -I "$iface" "$addr" 2>&1 >/dev/null); printf "%s %s %s\\0" "$id" "$?" "$err"; } &',
  'done',
].join('\n');

/** Error text longer than this is cut (the reply must stay one atomic pipe write). */
const MAX_ERR = 1000;

export class ArpingWorker {
  private child: ChildProcess | undefined;
  private next = 0;
  private readonly pending = new Map<number, (error: string | undefined) => void>();
  private buffer = '';
  private closed = false;

  constructor(
    readonly iface: string,
    private readonly arping = 'arping',
  ) {
    if (!validInterfaceName(iface)) throw new Error(`interface: must be a Linux interface name (got ${JSON.stringify(iface)})`);
  }

  /** The shell's pid while it runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the shell now, so that the first announcement does not pay for the daemon's fork. */
  start(): void {
    if (this.closed || this.child) return;
    const child = spawn('sh', ['-c', SCRIPT, 'ipvs-lb-arping', this.iface, this.arping], { stdio: ['pipe', 'pipe', 'ignore'] });
    this.child = child;
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => this.onData(chunk));
    // A failed write (the shell died) is reported through 'exit'.
    child.stdin!.on('error', () => undefined);
    const gone = (why: string) => {
      if (this.child !== child) return;
      this.child = undefined;
      this.buffer = '';
      const waiting = [...this.pending.values()];
      this.pending.clear();
      for (const done of waiting) done(`arping worker ${why}`);
    };
    child.on('error', (err) => gone(`could not start: ${err.message}`));
    child.on('exit', (code, signal) => gone(`exited (${signal ?? `status ${code}`})`));
    // An idle shell must not keep the daemon alive (it ends with its stdin); a waiting request does.
    this.hold(false);
  }

  private hold(on: boolean): void {
    const c = this.child;
    if (!c) return;
    for (const h of [c, c.stdout, c.stdin] as unknown as Array<{ ref?: () => void; unref?: () => void } | null>) {
      if (on) h?.ref?.();
      else h?.unref?.();
    }
  }

  /**
   * One gratuitous ARP (`arping -U -c 1 -I IFACE ADDRESS`). Resolves with undefined when arping succeeded,
   * else with the reason; never rejects. A worker that died is started again.
   */
  send(address: string): Promise<string | undefined> {
    const ip = parseIp(address);
    if (!ip || ip.family !== 4) return Promise.resolve(`address: must be an IPv4 address for gratuitous ARP (got ${JSON.stringify(address)})`);
    if (this.closed) return Promise.resolve('arping worker closed');
    this.start();
    const child = this.child;
    if (!child?.stdin?.writable) return Promise.resolve('arping worker is not running');
    const id = ++this.next;
    const text = formatIp(ip);
    return new Promise((resolve) => {
      this.pending.set(id, (error) => {
        if (this.pending.size === 0) this.hold(false);
        resolve(error);
      });
      this.hold(true);
      child.stdin!.write(`${id} ${text}\n`);
    });
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    for (let end = this.buffer.indexOf('\0'); end >= 0; end = this.buffer.indexOf('\0')) {
      const reply = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 1);
      const m = /^(\d+) (\d+) ?([\s\S]*)$/.exec(reply);
      if (!m) continue;
      const done = this.pending.get(Number(m[1]));
      if (!done) continue;
      this.pending.delete(Number(m[1]));
      const status = Number(m[2]);
      const err = m[3]!.trim().slice(0, MAX_ERR);
      done(status === 0 ? undefined : `${err || 'arping failed'} (exit ${status})`);
    }
  }

  /** Stops the shell; requests still waiting resolve with an error. Arping runs already started finish alone. */
  close(): void {
    this.closed = true;
    const child = this.child;
    if (!child) return;
    child.stdin?.end();
    child.kill('SIGTERM');
  }
}
