/**
 * The plain-HTTP endpoint Prometheus scrapes (`GET /metrics`, text exposition format 0.0.4),
 * used by the coordinator and the agent alike. What it serves comes from their own prom-client
 * registries (never the module-global one: tests run several coordinators in one process).
 *
 * No TLS and no authentication on purpose, like node_exporter's default: the metrics carry
 * counts and durations, never a secret or a node's data, and the default address is loopback
 * (the operator chooses to expose it; docs/operations.md, "Metrics").
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { prometheusContentType, type Registry } from 'prom-client';
import { errorMessage, InvalidArgumentError } from './errors';
import type { Logger } from './logger';

/** Text format 0.0.4, what every Prometheus since 2.0 scrapes. */
const EXPOSITION_CONTENT_TYPE: string = prometheusContentType;

/** `off` (no endpoint) or where to listen. */
export type MetricsListen = { off: true } | { off: false; host: string; port: number };

/** Parses `--metrics-listen`: `off`, or HOST:PORT / [V6]:PORT (port 0 = any free port). */
export function parseMetricsListen(text: string, flag = '--metrics-listen'): MetricsListen {
  const t = text.trim();
  if (t === 'off') return { off: true };
  const m = /^(\[[^\]]+\]|[^:[\]]+):(\d{1,5})$/.exec(t);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new InvalidArgumentError(`${flag} ${JSON.stringify(text)}: use HOST:PORT (e.g. 127.0.0.1:7401; port 0 = any free port) or off`);
  return { off: false, host: m[1].replace(/^\[|\]$/g, ''), port };
}

export interface MetricsServerOptions {
  logger: Logger;
  /** The exposition text of one scrape (the coordinator reads its fleet gauges from etcd here). */
  render: () => Promise<string>;
}

/** The render of a plain registry. */
export function renderRegistry(registry: Registry): () => Promise<string> {
  return () => registry.metrics();
}

export class MetricsServer {
  private server?: Server;

  constructor(private readonly o: MetricsServerOptions) {}

  /** Binds and resolves with the bound HOST:PORT; rejects when the address cannot be bound. */
  async listen(host: string, port: number): Promise<string> {
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      if (path !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at /metrics\n');
        return;
      }
      void this.render().then(
        (body) => { res.writeHead(200, { 'content-type': EXPOSITION_CONTENT_TYPE }).end(req.method === 'HEAD' ? undefined : body); },
        (err: unknown) => {
          this.o.logger.warn('metrics scrape failed', { err: errorMessage(err) });
          res.writeHead(500, { 'content-type': 'text/plain' }).end(`${errorMessage(err)}\n`);
        },
      );
    });
    // A scraper that stalls must not keep sockets open forever.
    server.requestTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => { server.off('error', reject); resolve(); });
    });
    server.on('error', (err) => this.o.logger.warn('metrics server error', { err: errorMessage(err) }));
    this.server = server;
    const a = server.address() as AddressInfo;
    return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  }

  private render(): Promise<string> {
    return this.o.render();
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

/**
 * Starts the endpoint named by `listen` (nothing when off). A port that cannot be bound is
 * logged and the program runs on without metrics: the cluster is worth more than its gauges,
 * and Prometheus's own `up == 0` shows the missing target.
 */
export async function startMetricsServer(listen: MetricsListen, o: MetricsServerOptions): Promise<MetricsServer | undefined> {
  if (listen.off) return undefined;
  const server = new MetricsServer(o);
  try {
    const address = await server.listen(listen.host, listen.port);
    o.logger.info('metrics listening', { address, path: '/metrics' });
    return server;
  } catch (err) {
    o.logger.error('metrics endpoint not started; running without it', { host: listen.host, port: listen.port, err: errorMessage(err) });
    return undefined;
  }
}
