// The failover prober: a guest-side program that runs in the client's namespace for a whole lab session and
// measures, per trial, what a client of the VIP sees when the LB master dies:
//   - new connections: from the "probe" command on, a fresh TCP connection to VIP:port every intervalMs (not
//     waiting for the previous one, so a lost SYN's one-second retransmit never hides a recovery); success is
//     the echo of one line. The figure is the time from the kill instant (t0, written by the killer with the
//     same guest clock) to the first success of a connection *opened at or after* t0.
//   - an established stream: opened by "stream-open" before the kill (the test waits until the backup's IPVS
//     shows it through the sync daemon), sends a numbered line every streamEveryMs during the trial and checks
//     every echo in order. It survived if it was never reset and a line sent after the first new connection
//     succeeded came back.
// Control: JSON lines on a FIFO (`--ctl`, created here, opened read-write so writers come and go); results:
// JSON lines appended to `--out` (a file in the lab's run directory, so the host reads it directly). Why a
// long-lived process: `node` costs about a second to start under emulation, far more than a failover.
import { appendFileSync, constants, openSync, rmSync } from 'node:fs';
import { Socket, connect } from 'node:net';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface ProbeCommand {
  cmd: 'stream-open' | 'probe' | 'killed' | 'quit';
  id?: number;
  /** Kill instant, epoch seconds (bash's $EPOCHREALTIME). */
  t0?: number;
}

export interface StreamOpened {
  id: number;
  event: 'stream-open';
  localPort: number;
}

export interface TrialOutcome {
  id: number;
  event: 'result';
  /** Epoch ms of the kill. */
  t0: number;
  /** Kill → first echo on a connection opened at or after the kill; null when none succeeded in time. */
  failoverMs: number | null;
  /** Connections that worked between "probe" and the kill: proof the VIP served before it died. */
  successesBeforeKill: number;
  attempts: number;
  stream: { survived: boolean; error: string | null; linesSent: number; linesEchoed: number; longestSilenceMs: number } | null;
}

export interface ProberFailure {
  id: number | null;
  event: 'error';
  message: string;
}

/** The first connection of a trial's probing worked: the VIP serves, the kill may come. */
export interface Probing {
  id: number;
  event: 'probing';
}

export type ProberLine = StreamOpened | Probing | TrialOutcome | ProberFailure | { id: null; event: 'ready' };

// The guest's wall clock, the one bash's $EPOCHREALTIME (the kill instant) and the daemons' log times use.
// performance.timeOrigin + performance.now() would be the monotonic clock offset once at start, which can
// drift from the wall clock over a session under emulation; 1 ms resolution is plenty against a 20 ms grid.
const now = (): number => Date.now();

interface Options {
  ctl: string;
  out: string;
  vip: string;
  port: number;
  intervalMs: number;
  attemptTimeoutMs: number;
  streamEveryMs: number;
  streamTimeoutMs: number;
  trialTimeoutMs: number;
}

export function parseProberArgs(argv: readonly string[]): Options {
  const get = (flag: string, fallback?: string): string => {
    const i = argv.indexOf(flag);
    const v = i >= 0 ? argv[i + 1] : fallback;
    if (v === undefined) throw new Error(`prober: ${flag} is required`);
    return v;
  };
  const num = (flag: string, fallback: number): number => {
    const v = Number(get(flag, String(fallback)));
    if (!Number.isFinite(v) || v <= 0) throw new Error(`prober: ${flag} must be a positive number (got ${get(flag)})`);
    return v;
  };
  return {
    ctl: get('--ctl'), out: get('--out'), vip: get('--vip'), port: num('--port', 7),
    intervalMs: num('--interval-ms', 20), attemptTimeoutMs: num('--attempt-timeout-ms', 15_000),
    streamEveryMs: num('--stream-every-ms', 100), streamTimeoutMs: num('--stream-timeout-ms', 20_000),
    trialTimeoutMs: num('--trial-timeout-ms', 30_000),
  };
}

/** One connection: resolves with the time its echo arrived, or rejects. */
function echoOnce(o: Options, live: Set<Socket>): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: o.vip, port: o.port });
    live.add(s);
    let buf = '';
    const done = (err?: Error) => {
      clearTimeout(timer);
      live.delete(s);
      s.destroy();
      if (err) reject(err);
      else resolve(now());
    };
    const timer = setTimeout(() => done(new Error('timeout')), o.attemptTimeoutMs);
    s.setNoDelay(true);
    s.on('connect', () => s.write('probe\n'));
    s.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      if (buf.includes('probe\n')) done();
    });
    s.on('error', (e) => done(e));
    s.on('close', () => done(new Error('closed before the echo')));
  });
}

/** A long-lived echo stream that checks every line comes back in order. */
class Stream {
  private sent = 0;
  private echoed = 0;
  private expect = '';
  private got = '';
  private lastEchoAt = now();
  private closing = false;
  longestSilenceMs = 0;
  error: string | null = null;
  private timer: NodeJS.Timeout | undefined;
  private waiters: Array<{ upTo: number; resolve: () => void }> = [];

  private constructor(readonly socket: Socket) {}

  static open(o: Options): Promise<Stream> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: o.vip, port: o.port });
      const st = new Stream(s);
      s.setNoDelay(true);
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error('stream: no echo within the attempt timeout'));
      }, o.attemptTimeoutMs);
      s.on('data', (d: Buffer) => st.onData(d.toString('utf8')));
      s.on('error', (e) => st.fail(`${(e as NodeJS.ErrnoException).code ?? ''} ${e.message}`.trim()));
      s.on('close', () => st.fail('closed by the peer'));
      s.once('connect', () => {
        void st.line().then(() => {
          clearTimeout(t);
          resolve(st);
        }, reject);
      });
    });
  }

  get localPort(): number {
    return this.socket.localPort ?? 0;
  }

  get linesSent(): number {
    return this.sent;
  }

  get linesEchoed(): number {
    return this.echoed;
  }

  private onData(text: string): void {
    this.got += text;
    while (this.got.length > 0 && this.expect.length > 0) {
      const n = Math.min(this.got.length, this.expect.length);
      if (this.got.slice(0, n) !== this.expect.slice(0, n)) {
        this.fail(`echo out of order: expected ${JSON.stringify(this.expect.slice(0, n))}, got ${JSON.stringify(this.got.slice(0, n))}`);
        return;
      }
      const before = this.expect.slice(0, n);
      this.got = this.got.slice(n);
      this.expect = this.expect.slice(n);
      this.echoed += before.split('\n').length - 1;
    }
    const t = now();
    this.longestSilenceMs = Math.max(this.longestSilenceMs, t - this.lastEchoAt);
    this.lastEchoAt = t;
    this.wake();
  }

  private fail(message: string): void {
    if (this.error === null && !this.closing) this.error = message;
    this.wake();
  }

  private wake(): void {
    const still: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (this.echoed >= w.upTo || this.error !== null) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }

  /** Sends one numbered line; resolves when it (and all before it) came back, or the stream failed. */
  line(): Promise<void> {
    if (this.error !== null) return Promise.resolve();
    const text = `line ${++this.sent}\n`;
    this.expect += text;
    this.socket.write(text);
    const upTo = this.sent;
    return new Promise((resolve) => {
      this.waiters.push({ upTo, resolve });
      this.wake();
    });
  }

  startTicking(everyMs: number): void {
    this.lastEchoAt = now();
    this.timer = setInterval(() => void this.line(), everyMs);
  }

  stopTicking(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  close(): void {
    this.closing = true;
    this.stopTicking();
    this.socket.destroy();
  }
}

interface Attempt {
  startedAt: number;
  /** Epoch ms of the echo; undefined while pending or after a failure. */
  succeededAt: number | undefined;
}

interface Trial {
  id: number;
  launcher: NodeJS.Timeout;
  attempts: Attempt[];
  live: Set<Socket>;
}

class Prober {
  private stream: Stream | undefined;
  private trial: Trial | undefined;

  constructor(private readonly o: Options) {}

  write(line: ProberLine): void {
    appendFileSync(this.o.out, `${JSON.stringify(line)}\n`);
  }

  async handle(c: ProbeCommand): Promise<void> {
    const id = c.id ?? 0;
    switch (c.cmd) {
      case 'stream-open': {
        this.stream?.close();
        this.stream = await Stream.open(this.o);
        this.write({ id, event: 'stream-open', localPort: this.stream.localPort });
        return;
      }
      case 'probe': {
        if (this.trial) throw new Error(`probe: trial ${this.trial.id} is still running`);
        const live = new Set<Socket>();
        const attempts: Attempt[] = [];
        let announced = false;
        const launch = () => {
          const a: Attempt = { startedAt: now(), succeededAt: undefined };
          attempts.push(a);
          echoOnce(this.o, live).then((at) => {
            a.succeededAt = at;
            if (!announced) {
              announced = true;
              this.write({ id, event: 'probing' });
            }
          }, () => undefined);
        };
        launch();
        this.trial = { id, launcher: setInterval(launch, this.o.intervalMs), attempts, live };
        this.stream?.startTicking(this.o.streamEveryMs);
        return;
      }
      case 'killed': {
        const t = this.trial;
        if (!t || t.id !== id || typeof c.t0 !== 'number') throw new Error(`killed: no probe running for trial ${id}, or no t0`);
        await this.finish(t, c.t0 * 1000);
        return;
      }
      case 'quit':
        this.stream?.close();
        process.exit(0);
    }
  }

  private async finish(t: Trial, t0: number): Promise<void> {
    const deadline = t0 + this.o.trialTimeoutMs;
    let first: number | undefined;
    for (;;) {
      // The earliest echo of a connection opened at or after the kill. Echo times are recorded as they
      // happen, so polling adds no error to the figure, only to when we notice it.
      for (const a of t.attempts) {
        if (a.startedAt >= t0 && a.succeededAt !== undefined && (first === undefined || a.succeededAt < first)) first = a.succeededAt;
      }
      if (first !== undefined || now() > deadline) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    clearInterval(t.launcher);
    const successesBeforeKill = t.attempts.filter((a) => a.succeededAt !== undefined && a.succeededAt < t0).length;
    for (const s of t.live) s.destroy();
    let stream: TrialOutcome['stream'] = null;
    const st = this.stream;
    if (st) {
      // A line sent now, after the new master served a new connection, must come back on the old stream
      // (the last one: every line sent must have come back, in order).
      st.stopTicking();
      const last = st.line();
      const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), this.o.streamTimeoutMs));
      const r = await Promise.race([last.then(() => 'done' as const), timeout]);
      const error = st.error ?? (r === 'timeout' ? `no echo within ${this.o.streamTimeoutMs} ms after the failover` : null);
      stream = { survived: error === null, error, linesSent: st.linesSent, linesEchoed: st.linesEchoed, longestSilenceMs: Math.round(st.longestSilenceMs) };
      st.close();
      this.stream = undefined;
    }
    this.trial = undefined;
    this.write({
      id: t.id, event: 'result', t0, failoverMs: first === undefined ? null : Math.round((first - t0) * 10) / 10,
      successesBeforeKill, attempts: t.attempts.length, stream,
    });
  }
}

async function main(): Promise<void> {
  const o = parseProberArgs(process.argv.slice(2));
  rmSync(o.ctl, { force: true });
  execFileSync('mkfifo', ['-m', '0600', '--', o.ctl]);
  // Read-write: our own writer end means no end-of-file when a writer closes.
  const fd = openSync(o.ctl, constants.O_RDWR | constants.O_NONBLOCK);
  const ctl = new Socket({ fd, readable: true, writable: false });
  const prober = new Prober(o);
  let buf = '';
  let chain = Promise.resolve();
  ctl.setEncoding('utf8');
  ctl.on('data', (chunk: string) => {
    buf += chunk;
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const line of lines) {
      if (line.trim() === '') continue;
      chain = chain.then(async () => {
        let c: ProbeCommand | undefined;
        try {
          c = JSON.parse(line) as ProbeCommand;
          await prober.handle(c);
        } catch (err) {
          prober.write({ id: c?.id ?? null, event: 'error', message: (err as Error).message });
        }
      });
    }
  });
  prober.write({ id: null, event: 'ready' });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
