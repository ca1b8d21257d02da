/**
 * `clusterctl dashboard`'s local web server (like `kubectl proxy`): serves the page and its
 * scripts, pushes the feed (dashboard-feed.ts) to it as server-sent events, and answers the
 * node and job pages. It talks to the coordinator only through the operator's own clusterctl
 * client, so it adds no network-facing auth path to the cluster; what it guards is the local
 * side, where anything that can open a TCP connection to the port could otherwise read the
 * cluster with the operator's credentials:
 *
 *  - it listens on a loopback address unless told otherwise (allowNonLoopback);
 *  - the Host header must name the address it listens on (127.0.0.1, localhost or [::1] with
 *    its port): a page on another site that re-points its DNS name at 127.0.0.1 (DNS
 *    rebinding) sends its own name and is refused;
 *  - every request needs the per-run random token: given once in the URL printed at start
 *    (`/?token=...`, as Jupyter does), it is set as an HttpOnly, SameSite=Strict cookie and the
 *    browser is sent to `/` so the token leaves the address bar; other local users do not
 *    know it, and a cross-site request does not carry the cookie;
 *  - requests a browser marks `Sec-Fetch-Site: cross-site` are refused, only GET and HEAD are
 *    served (the dashboard only reads), and every answer carries a strict Content-Security-Policy.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { join, relative, resolve, sep } from 'node:path';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, errorMessage } from '../../shared/errors';
import type { DashboardFeed } from './dashboard-feed';
import { PAGE_CSS, pageHtml } from './page';
import type { ApiError, StreamMessageName, StreamMessages } from './protocol';

export interface DashboardServerOptions {
  feed: DashboardFeed;
  /** Address to listen on; port 0 picks a free one. */
  host: string;
  port: number;
  /** Listen on a non-loopback address (--allow-non-loopback). @default false */
  allowNonLoopback?: boolean;
  /** The per-run token. @default 32 random bytes, base64url */
  token?: string;
  /** The page's compiled scripts. @default findDashboardAssets() */
  assetDir?: string;
  /** Keep-alive comment on idle event streams, so proxies and browsers keep them open. @default 15000 */
  keepAliveMs?: number;
}

/** Where the page's scripts may be: dist/dashboard-web beside dist/cli (a build), or beside a bundled clusterctl (the packages). */
export function dashboardAssetDirs(): string[] {
  return [resolve(__dirname, '..', '..', 'dashboard-web'), resolve(__dirname, 'dashboard-web')];
}

/** The directory of the page's compiled scripts; throws saying where it looked when there is none. */
export function findDashboardAssets(): string {
  const dir = dashboardAssetDirs().find((d) => existsSync(join(d, 'cli', 'dashboard', 'web', 'main.js')));
  if (!dir) throw new FailedPreconditionError(`the dashboard page is not built (looked in ${dashboardAssetDirs().join(', ')}; run npm run build)`);
  return dir;
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1';
  return false;
}

/** Refuses a non-loopback listen address unless allowed (InvalidArgumentError: it is the operator's --listen). */
export function checkListenHost(host: string, allowNonLoopback: boolean): void {
  if (isLoopbackHost(host) || allowNonLoopback) return;
  throw new InvalidArgumentError(`refusing to listen on ${host}: not a loopback address (anyone who can reach it could read the cluster with your credentials; add --allow-non-loopback to do it anyway)`);
}

/** Every .js file under `dir`, by its path relative to it with forward slashes. */
function loadScripts(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.js')) out.set(relative(dir, p).split(sep).join('/'), readFileSync(p));
    }
  };
  walk(dir);
  return out;
}

const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};

export class DashboardServer {
  readonly token: string;
  private readonly server: Server;
  private readonly scripts: Map<string, Buffer>;
  private readonly streams = new Set<ServerResponse>();
  private allowedHosts = new Set<string>();
  private anyHost = false;
  private port = 0;

  constructor(private readonly options: DashboardServerOptions) {
    checkListenHost(options.host, options.allowNonLoopback === true);
    this.token = options.token ?? randomBytes(32).toString('base64url');
    this.scripts = loadScripts(options.assetDir ?? findDashboardAssets());
    this.server = createServer((req, res) => this.handle(req, res));
  }

  /** The cookie is per port: cookies do not separate ports, two dashboards must not share one. */
  private get cookieName(): string {
    return `clusterctl-dashboard-${this.port}`;
  }

  /** Listens; returns the URL to open (with the token). */
  async start(): Promise<string> {
    await new Promise<void>((resolveListen, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject);
        resolveListen();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
    const h = this.options.host;
    const shown = isIP(h) === 6 ? `[${h}]` : h;
    this.allowedHosts = new Set([`127.0.0.1:${this.port}`, `localhost:${this.port}`, `[::1]:${this.port}`, `${shown}:${this.port}`]);
    // A wildcard address has no one name to check; the token still guards it.
    this.anyHost = h === '0.0.0.0' || h === '::';
    return `http://${shown}:${this.port}/?token=${this.token}`;
  }

  async stop(): Promise<void> {
    for (const s of this.streams) s.end();
    this.streams.clear();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private hasToken(req: IncomingMessage, given: string | null): boolean {
    const candidates: string[] = [];
    if (given !== null) candidates.push(given);
    for (const part of (req.headers.cookie ?? '').split(';')) {
      const [k, ...v] = part.trim().split('=');
      if (k === this.cookieName) candidates.push(v.join('='));
    }
    const want = Buffer.from(this.token);
    return candidates.some((c) => {
      const got = Buffer.from(c);
      return got.length === want.length && timingSafeEqual(got, want);
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    const host = req.headers.host ?? '';
    if (!this.anyHost && !this.allowedHosts.has(host.toLowerCase())) {
      return this.text(res, 403, `refused: Host ${JSON.stringify(host)} is not this dashboard's address (open ${[...this.allowedHosts][0]})`);
    }
    if (req.headers['sec-fetch-site'] === 'cross-site') return this.text(res, 403, 'refused: a cross-site request');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return this.text(res, 405, 'the dashboard only reads: GET and HEAD');
    }
    const url = new URL(req.url ?? '/', 'http://dashboard.invalid');
    const queryToken = url.pathname === '/' ? url.searchParams.get('token') : null;
    if (!this.hasToken(req, queryToken)) {
      return this.text(res, 401, 'this dashboard needs its token: open the URL that `clusterctl dashboard` printed (it ends in ?token=...)');
    }
    if (queryToken !== null) {
      res.setHeader('Set-Cookie', `${this.cookieName}=${this.token}; HttpOnly; SameSite=Strict; Path=/`);
      res.setHeader('Location', '/');
      res.writeHead(303).end();
      return;
    }
    const path = url.pathname;
    if (path === '/') return this.send(res, 200, 'text/html; charset=utf-8', pageHtml());
    if (path === '/assets/dashboard.css') return this.send(res, 200, 'text/css; charset=utf-8', PAGE_CSS);
    if (path.startsWith('/assets/js/')) {
      const script = this.scripts.get(path.slice('/assets/js/'.length));
      if (!script) return this.text(res, 404, 'no such script');
      return this.send(res, 200, 'text/javascript; charset=utf-8', script);
    }
    if (path === '/api/stream') return this.stream(req, res);
    let m: RegExpExecArray | null;
    if ((m = /^\/api\/node\/([^/]+)$/.exec(path))) return this.api(res, this.options.feed.nodePage(decodeURIComponent(m[1])));
    if ((m = /^\/api\/job\/([^/]+)$/.exec(path))) return this.api(res, this.options.feed.jobPage(decodeURIComponent(m[1])));
    return this.text(res, 404, 'not found');
  }

  private send(res: ServerResponse, code: number, type: string, body: string | Buffer): void {
    res.writeHead(code, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
    res.end(res.req.method === 'HEAD' ? undefined : body);
  }

  private text(res: ServerResponse, code: number, message: string): void {
    this.send(res, code, 'text/plain; charset=utf-8', `${message}\n`);
  }

  private api(res: ServerResponse, answer: Promise<unknown>): void {
    answer.then(
      (body) => this.send(res, 200, 'application/json', JSON.stringify(body)),
      (err: unknown) => {
        const body: ApiError = { error: errorMessage(err) };
        this.send(res, err instanceof NotFoundError ? 404 : 502, 'application/json', JSON.stringify(body));
      },
    );
  }

  /** Server-sent events: the snapshot, then every feed message, until the page goes away. */
  private stream(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', Connection: 'keep-alive' });
    const write = <K extends StreamMessageName>(name: K, data: StreamMessages[K]): void => {
      res.write(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    write('snapshot', this.options.feed.snapshot());
    const unsubscribe = this.options.feed.subscribe(write);
    const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), this.options.keepAliveMs ?? 15_000);
    this.streams.add(res);
    req.on('close', () => {
      clearInterval(keepAlive);
      unsubscribe();
      this.streams.delete(res);
    });
  }
}
