// Reads keepalived's notify FIFO. The FIFO is opened read-write: while we hold a writer end ourselves, a
// reader never sees end-of-file, so keepalived can die and restart any number of times without a reopen and
// without the classic EOF busy loop. The descriptor is non-blocking and handed to libuv as a pipe, so reading
// waits in epoll instead of pinning a thread-pool thread the way fs streams would.
import { constants, openSync, closeSync } from 'node:fs';
import { lstat, mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Socket } from 'node:net';
import { execa } from 'execa';
import type { Logger } from '../util/log.js';
import { LineSplitter, parseNotifyLine, type NotifyEvent } from './notify.js';

export async function ensureFifo(path: string): Promise<void> {
  try {
    const st = await lstat(path);
    if (st.isFIFO()) return;
    throw new Error(`${path} exists and is not a FIFO; refusing to replace it`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o750 });
  // Node has no mkfifo(3); the coreutils binary with an argument array is the simplest safe way.
  await execa('mkfifo', ['-m', '0600', '--', path]);
}

export class NotifyFifo {
  private socket: Socket | undefined;
  private readonly splitter = new LineSplitter();

  constructor(
    readonly path: string,
    private readonly onEvent: (e: NotifyEvent) => void,
    private readonly log: Logger,
  ) {}

  async open(): Promise<void> {
    if (this.socket) return;
    await ensureFifo(this.path);
    // libuv opens every descriptor close-on-exec, so keepalived (our child) never inherits it.
    const fd = openSync(this.path, constants.O_RDWR | constants.O_NONBLOCK);
    let socket: Socket;
    try {
      socket = new Socket({ fd, readable: true, writable: false });
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      for (const line of this.splitter.push(chunk)) this.handleLine(line);
    });
    socket.on('error', (err) => this.log.error({ err, fifo: this.path }, 'notify FIFO read failed'));
    // Nobody but us should read it; keep the event loop free to exit when everything else is done.
    socket.unref();
    this.socket = socket;
  }

  private handleLine(line: string): void {
    const e = parseNotifyLine(line);
    if (!e) {
      if (line.trim() !== '') this.log.debug({ line }, 'ignored keepalived notify line');
      return;
    }
    this.onEvent(e);
  }

  async close(opts: { remove?: boolean } = {}): Promise<void> {
    const s = this.socket;
    this.socket = undefined;
    if (s) {
      await new Promise<void>((resolve) => {
        s.once('close', () => resolve());
        s.destroy();
      });
    }
    if (opts.remove) await rm(this.path, { force: true });
  }
}
