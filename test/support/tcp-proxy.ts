// A TCP relay in front of the API simulator that a test can freeze: connections stay open but no byte moves
// and new connections are accepted but never answered, which is what a client sees from an API server that
// stopped answering or sits behind a blackholed route (no reset, no refusal, nothing). The simulator's own
// goDown() covers the other kind of outage (connections refused).
import { createServer, connect, type Server, type Socket } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';

export class TcpProxy {
  private frozen = false;
  private readonly pairs = new Set<{ client: Socket; upstream: Socket | undefined }>();
  private readonly waiting: Array<() => void> = [];

  private constructor(private readonly server: Server, readonly port: number, private readonly target: { host: string; port: number }) {}

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const proxy = new TcpProxy(server, (server.address() as { port: number }).port, target);
    server.on('connection', (client) => proxy.accept(client));
    return proxy;
  }

  /** A copy of `kubeconfig` whose server is this relay (same CA, same token; the certificate names 127.0.0.1). */
  async kubeconfigVia(kubeconfig: string, path: string): Promise<string> {
    const text = await readFile(kubeconfig, 'utf8');
    const out = text.replace(/server: https:\/\/127\.0\.0\.1:\d+/, `server: https://127.0.0.1:${this.port}`);
    if (out === text) throw new Error(`no https://127.0.0.1:PORT server in ${kubeconfig}`);
    await writeFile(path, out);
    return path;
  }

  private accept(client: Socket): void {
    const pair: { client: Socket; upstream: Socket | undefined } = { client, upstream: undefined };
    this.pairs.add(pair);
    const drop = () => {
      client.destroy();
      pair.upstream?.destroy();
      this.pairs.delete(pair);
    };
    client.on('error', drop);
    client.on('close', drop);
    const open = () => {
      const upstream = connect(this.target.port, this.target.host);
      pair.upstream = upstream;
      upstream.on('error', drop);
      upstream.on('close', drop);
      if (!this.frozen) this.flow(pair);
    };
    if (this.frozen) {
      client.pause();
      this.waiting.push(open);
    } else open();
  }

  private flow(p: { client: Socket; upstream: Socket | undefined }): void {
    if (!p.upstream) return;
    p.client.pipe(p.upstream);
    p.upstream.pipe(p.client);
  }

  private pause(p: { client: Socket; upstream: Socket | undefined }): void {
    // Unpiped, so that no 'drain' can resume a side behind our back.
    if (p.upstream) {
      p.client.unpipe(p.upstream);
      p.upstream.unpipe(p.client);
      p.upstream.pause();
    }
    p.client.pause();
  }

  /** From now on nothing moves: open connections go silent, new ones are accepted and left hanging. */
  freeze(): void {
    this.frozen = true;
    for (const p of this.pairs) this.pause(p);
  }

  /** Everything flows again; connections that waited are connected upstream. */
  thaw(): void {
    this.frozen = false;
    for (const p of this.pairs) this.flow(p);
    for (const open of this.waiting.splice(0)) open();
  }

  get connections(): number {
    return this.pairs.size;
  }

  async close(): Promise<void> {
    for (const p of this.pairs) {
      p.client.destroy();
      p.upstream?.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
