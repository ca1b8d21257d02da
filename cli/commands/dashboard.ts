/**
 * `clusterctl dashboard [--listen 127.0.0.1:8001] [--open]`: a live web dashboard of the fleet,
 * served on the operator's machine (like `kubectl proxy`). The server calls the coordinator
 * with this clusterctl's credentials and client (no new way into the cluster); the page gets
 * the coordinator's watch streams as server-sent events. It prints the URL with its per-run
 * token and serves until Ctrl-C. See cli/dashboard/dashboard-server.ts for how the local port
 * is guarded.
 */
import { spawn } from 'node:child_process';
import { InvalidArgumentError } from '../../shared/errors';
import { defineCommand, EXIT } from '../command';
import type { CliContext } from '../context';

export const DASHBOARD_OPTIONS = {
  listen: { kind: 'string', description: 'address of the local web server (port 0: any free port)', default: '127.0.0.1:8001', placeholder: 'HOST:PORT' },
  open: { kind: 'boolean', description: 'open the dashboard in the default browser (xdg-open)' },
  allowNonLoopback: {
    kind: 'boolean',
    description: 'allow --listen on a non-loopback address (whoever reaches it and has the token reads the cluster as you)',
  },
} as const;

/** HOST:PORT of --listen; an IPv6 literal in brackets. Port 0 asks for any free port. */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9._-]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new InvalidArgumentError(`--listen ${JSON.stringify(text)} is not HOST:PORT (e.g. 127.0.0.1:8001)`);
  return { host: m[1] ?? m[2], port };
}

export const dashboard = defineCommand<CliContext, typeof DASHBOARD_OPTIONS>({
  name: 'dashboard',
  summary: 'Serve a live web dashboard of the fleet on this machine (nodes, jobs, events) until Ctrl-C',
  usage: 'dashboard [--listen HOST:PORT] [--open] [flags]',
  example: 'clusterctl dashboard\nclusterctl dashboard --listen 127.0.0.1:9000 --open',
  description:
    'Starts a local web server (loopback only unless --allow-non-loopback) that shows the fleet as a grid of node tiles by ' +
    'lifecycle state, grouped by group or a label and filtered with a label selector as -l; counts by state; running jobs with ' +
    'progress per batch and per-node output; a page per node; the event stream. It calls the coordinator with your credentials ' +
    'and pushes its watch streams to the page live. It prints the URL to open: it carries a random token made for this run ' +
    '(set as a cookie on first visit), so other users of this machine and other web sites cannot read it.',
  options: DASHBOARD_OPTIONS,
  async run({ values, context }) {
    const listen = parseListen(values.listen);
    // Loaded here: --help and the other commands do not need the HTTP server or the page.
    const { DashboardFeed } = await import('../dashboard/dashboard-feed');
    const { DashboardServer, checkListenHost, findDashboardAssets } = await import('../dashboard/dashboard-server');
    // Refusals that need no coordinator come first (and need no credentials).
    checkListenHost(listen.host, values.allowNonLoopback);
    const assetDir = findDashboardAssets();
    const feed = new DashboardFeed({ source: context.client, clock: context.clock, note: (t) => context.note(t) });
    const server = new DashboardServer({ feed, host: listen.host, port: listen.port, allowNonLoopback: values.allowNonLoopback, assetDir });
    await feed.start();
    let url: string;
    try {
      url = await server.start();
    } catch (err) {
      feed.stop();
      const code = (err as NodeJS.ErrnoException).code;
      throw new InvalidArgumentError(`cannot listen on ${values.listen}: ${code === 'EADDRINUSE' ? 'the port is in use (choose another with --listen)' : (err as Error).message}`);
    }
    context.out.write(`Dashboard: ${url}\n`);
    context.note('Open the URL above (it carries this run\'s token); Ctrl-C stops the dashboard.');
    if (values.open) {
      const child = spawn('xdg-open', [url], { stdio: 'ignore', detached: true });
      child.on('error', (err) => context.note(`cannot open a browser (${err.message}): open the URL yourself`));
      child.unref();
    }
    await context.interrupted;
    await server.stop();
    feed.stop();
    return EXIT.ok;
  },
});
