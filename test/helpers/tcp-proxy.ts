/**
 * A TCP proxy that can partition what goes through it (etcd3's own test `Proxy`, STYLE.md
 * "a TCP proxy or a network namespace to cut traffic"). `cut()` stops moving bytes both ways
 * without closing anything: no FIN, no RST, the peers see silence, as behind a pulled cable.
 * `heal()` moves what was held back, as TCP retransmission would once the cable is back.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export class TcpProxy {
  private cutNow = false;
  private readonly pairs = new Set<{ client: Socket; upstream?: Socket }>();
  /** Connections accepted so far (a test counts how often a client connected). */
  accepted = 0;

  private constructor(private readonly server: Server, readonly port: number, private readonly target: { host: string; port: number }) {}

  /** Listens on 127.0.0.1 (a free port) and forwards to `target` (HOST:PORT). */
  static async start(target: string): Promise<TcpProxy> {
    const i = target.lastIndexOf(':');
    const to = { host: target.slice(0, i), port: Number(target.slice(i + 1)) };
    // The server needs the proxy and the proxy the server's port: connections wait for both.
    const ref: { proxy?: TcpProxy } = {};
    const server = createServer((client) => ref.proxy?.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    if (!address || typeof address === 'string') throw new Error('proxy: no port');
    ref.proxy = new TcpProxy(server, address.port, to);
    return ref.proxy;
  }

  get endpoint(): string {
    return `127.0.0.1:${this.port}`;
  }

  get isCut(): boolean {
    return this.cutNow;
  }

  /** Partition: every connection (and every new one) goes silent; nothing is closed. */
  cut(): void {
    this.cutNow = true;
    for (const p of this.pairs) {
      // unpipe first: a piped stream resumes itself when its destination drains.
      if (p.upstream) {
        p.client.unpipe(p.upstream);
        p.upstream.unpipe(p.client);
        p.upstream.pause();
      }
      p.client.pause();
    }
  }

  /** Heals: held bytes flow, connections accepted meanwhile reach the target. */
  heal(): void {
    this.cutNow = false;
    for (const p of this.pairs) {
      if (!p.upstream) this.link(p);
      else {
        p.client.pipe(p.upstream);
        p.upstream.pipe(p.client);
      }
    }
  }

  async close(): Promise<void> {
    for (const p of this.pairs) {
      p.client.destroy();
      p.upstream?.destroy();
    }
    this.pairs.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    this.accepted++;
    const pair: { client: Socket; upstream?: Socket } = { client };
    this.pairs.add(pair);
    const drop = (): void => {
      this.pairs.delete(pair);
      client.destroy();
      pair.upstream?.destroy();
    };
    client.on('error', drop);
    client.on('close', drop);
    if (this.cutNow) client.pause();
    else this.link(pair);
  }

  private link(pair: { client: Socket; upstream?: Socket }): void {
    const upstream = connect(this.target.port, this.target.host);
    pair.upstream = upstream;
    upstream.on('error', () => pair.client.destroy());
    upstream.on('close', () => pair.client.destroy());
    pair.client.pipe(upstream);
    upstream.pipe(pair.client);
  }
}
