/**
 * Dashboard benchmark: first render and update latency of `clusterctl dashboard`'s page with
 * 10,000 nodes, in Debian's chromium (headless, playwright-core).
 *
 * What is real: etcd, one cluster-coordinator, the `clusterctl dashboard` process (its feed of
 * the coordinator's watch streams, its HTTP server and event stream), the browser and the page.
 * What is simulated: the 10,000 nodes are node records written straight into etcd (states,
 * groups, rack labels, a few in maintenance or with drift), not 10,000 agents; no agent holds
 * their membership keys, so they are all unreachable, which the coordinator leaves as it is.
 *
 *  - first render: a new page, navigation start to the snapshot's tiles laid out and painted
 *    (the page's data-first-render-ms, read after the next frame), --runs times;
 *  - update latency: maintenance set on one node through the coordinator API (as `clusterctl node
 *    maintenance on` does), from before the call to the moment the open page changes that
 *    node's tile (a MutationObserver in the page stamps Date.now(); same machine, same clock),
 *    --updates times, one node after another.
 *
 *   npm run build && node dist/bench/dashboard-bench.js [--nodes N] [--runs R] [--updates U] [--json]
 */
import { cpus, loadavg } from 'node:os';
import { request } from 'node:http';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { formatHelp, parseOptions, type OptionSpecs, type ParseResult } from '../shared/options';
import { errorMessage } from '../shared/errors';
import { Keyspace } from '../shared/keyspace';
import type { NodeRecord } from '../shared/records';
import { LIFECYCLE_STATES } from '../shared/lifecycle';
import { CoordinatorClient } from '../cli/coordinator-client';
import { compileClientOptions } from '../cli/global-options';
import { EtcdServer } from '../test/helpers/etcd-server';
import { TestCluster } from '../test/helpers/cluster';
import { BIN, spawnNode, type ManagedProcess } from '../test/helpers/processes';
import { freePort } from '../scripts/lib/process-support';
import { percentile } from './failure-detection';
import { exitOnSignals } from '../test/helpers/children';

const OPTIONS = {
  nodes: { kind: 'int', default: 10_000, min: 1, placeholder: 'N', description: 'node records in etcd' },
  runs: { kind: 'int', default: 5, min: 1, placeholder: 'R', description: 'page loads (first render)' },
  updates: { kind: 'int', default: 30, min: 1, placeholder: 'U', description: 'node changes timed on the open page' },
  json: { kind: 'boolean', description: 'print the result as one JSON object' },
} as const satisfies OptionSpecs;

const USAGE = 'Usage: node dist/bench/dashboard-bench.js [--nodes N] [--runs R] [--updates U] [--json]';
const CHROMIUM = '/usr/bin/chromium';

interface Figures { median: number; p90: number; min: number; max: number }

function figures(values: readonly number[]): Figures {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { median: Math.round(median), p90: Math.round(percentile(s, 90)), min: Math.round(s[0]), max: Math.round(s[s.length - 1]) };
}

/** States an idle fleet is in (no busy state: without a job the stuck-node sweeper would move them). */
const IDLE_STATES = LIFECYCLE_STATES.filter((s) => !['New', 'Commissioning', 'Upgrading', 'Decommissioning'].includes(s));

function simulatedNode(i: number, now: string): NodeRecord {
  const id = `node-${String(i + 1).padStart(5, '0')}`;
  const state = i % 10 < 6 ? 'Commissioned' : IDLE_STATES[i % IDLE_STATES.length];
  return {
    id, state, stateChangedAt: now, reachable: false, unreachableSince: now, connected: false,
    labels: { rack: `r${String(Math.floor(i / 40) % 250).padStart(3, '0')}`, role: i % 5 === 0 ? 'control' : 'worker' },
    group: state === 'Discovered' || state === 'Decommissioned' ? undefined : `g${i % 8}`,
    maintenance: i % 97 === 0, maintenanceReason: i % 97 === 0 ? 'simulated' : undefined,
    driftSummary: i % 131 === 0 ? '1 of 3 units drifted: conf (content)' : undefined,
    hostname: `${id}.lab`, createdAt: now, updatedAt: now,
  };
}

/** Bytes of the first event-stream message (the snapshot) the server sends a page. */
function snapshotBytes(port: number, cookie: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/api/stream', headers: { Host: `127.0.0.1:${port}`, Cookie: cookie } }, (res) => {
      let bytes = 0;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        bytes += Buffer.byteLength(c);
        text += c;
        const end = text.indexOf('\n\n');
        if (end >= 0) {
          resolve(bytes - Buffer.byteLength(text.slice(end + 2)));
          req.destroy();
        } else if (text.length > 1_000_000) {
          text = text.slice(-10);
        }
      });
    });
    req.on('error', reject);
    req.end();
  });
}

async function main(): Promise<void> {
  let parsed: ParseResult<typeof OPTIONS>;
  try {
    parsed = parseOptions(OPTIONS, { argv: process.argv.slice(2), allowPositionals: false });
  } catch (err) {
    process.stderr.write(`dashboard-bench: ${errorMessage(err)}\n${USAGE}\n`);
    process.exit(2);
  }
  if (parsed.help) {
    process.stdout.write(formatHelp(USAGE, OPTIONS));
    return;
  }
  const { nodes: n, runs, updates } = parsed.values;
  const etcd = await EtcdServer.start('dashboard-bench');
  const cluster = new TestCluster(etcd, { name: 'dashboard-bench' });
  let browser: Awaited<ReturnType<typeof chromium.launch>> | undefined;
  let client: CoordinatorClient | undefined;
  let server: ManagedProcess | undefined;
  try {
    const ks = new Keyspace();
    const kv = etcd.client();
    const now = new Date().toISOString();
    for (let i = 0; i < n; i += 250) {
      await Promise.all(Array.from({ length: Math.min(250, n - i) }, (_, j) => {
        const rec = simulatedNode(i + j, now);
        return kv.put(ks.node(rec.id)).value(JSON.stringify(rec));
      }));
    }
    await cluster.startCoordinator();
    const port = await freePort();
    server = spawnNode('clusterctl dashboard', BIN.clusterctl, ['--coordinator', cluster.coordinatorAddress, '--timeout', '60s', 'dashboard', '--listen', `127.0.0.1:${port}`], {
      env: cluster.childEnv,
      logFile: join(cluster.logDir, 'dashboard.log'),
    });
    await server.waitForLog(/Dashboard: \S+\n/, 120_000);
    const url = /Dashboard: (\S+)\n/.exec(server.logs)?.[1] ?? '';
    const cookie = `clusterctl-dashboard-${port}=${new URL(url).searchParams.get('token') ?? ''}`;
    const bytes = await snapshotBytes(port, cookie);

    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
    const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
    const firstRender: number[] = [];
    const snapshotAt: number[] = [];
  const applyMs: number[] = [];
    for (let r = 0; r < runs; r++) {
      const page = await context.newPage();
      await page.goto(url);
      await page.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });
      const got = await page.evaluate<{ tiles: number; first: number; snapshot: number; apply: number }>(
        '({ tiles: document.querySelectorAll("#grid a.tile").length, first: Number(document.body.dataset.firstRenderMs), snapshot: Number(document.body.dataset.snapshotMs), apply: Number(document.body.dataset.applyMs) })');
      if (got.tiles !== n) throw new Error(`the page shows ${got.tiles} tiles, not ${n}`);
      firstRender.push(got.first);
      snapshotAt.push(got.snapshot);
      applyMs.push(got.apply);
      await page.close();
    }

    // Updates on one open page.
    const page = await context.newPage();
    await page.goto(url);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });
    await page.evaluate(`(() => {
      window.changedAt = {};
      new MutationObserver((records) => {
        const t = Date.now();
        for (const m of records) {
          const id = m.target.getAttribute && m.target.getAttribute('data-id');
          if (id && m.target.classList.contains('maint') && !(id in window.changedAt)) window.changedAt[id] = t;
        }
      }).observe(document.getElementById('grid'), { subtree: true, attributes: true, attributeFilter: ['class'] });
    })()`);
    client = new CoordinatorClient(compileClientOptions({ coordinator: [cluster.coordinatorAddress], timeout: 30_000, credentials: cluster.adminCredentials }));
    const latency: number[] = [];
    const rpc: number[] = [];
    for (let u = 0; u < updates; u++) {
      // Nodes not in maintenance yet (i % 97 !== 0), spread over the fleet.
      let i = (u * 337 + 1) % n;
      while (i % 97 === 0) i = (i + 1) % n;
      const id = simulatedNode(i, now).id;
      const t0 = Date.now();
      await client.setMaintenance(id, true, 'bench');
      rpc.push(Date.now() - t0);
      // A function, not a string: the page's CSP forbids eval, which a string predicate needs.
      const seen = await page.waitForFunction((nodeId) => (globalThis as unknown as { changedAt: Record<string, number> }).changedAt[nodeId], id, { timeout: 60_000, polling: 20 });
      latency.push(Number(await seen.jsonValue()) - t0);
    }
    const result = {
      nodes: n, runs, updates, cpus: cpus().length, loadavg1: Number(loadavg()[0].toFixed(2)), chromium: browser.version(),
      snapshotBytes: bytes, firstRenderMs: figures(firstRender), snapshotReceivedMs: figures(snapshotAt), snapshotScriptMs: figures(applyMs),
      updateLatencyMs: figures(latency), updateRpcMs: figures(rpc),
    };
    if (parsed.values.json) {
      process.stdout.write(JSON.stringify(result) + '\n');
    } else {
      const f = (x: Figures): string => `median ${x.median} ms (p90 ${x.p90}, min ${x.min}, max ${x.max})`;
      process.stdout.write([
        `dashboard, ${n} nodes, chromium ${result.chromium} headless, ${result.cpus} CPUs, load ${result.loadavg1}`,
        `  snapshot message             ${(bytes / 1e6).toFixed(2)} MB`,
        `  first render (${runs} loads)      ${f(result.firstRenderMs)}`,
        `    of which snapshot received ${f(result.snapshotReceivedMs)}`,
        `    script work on it          ${f(result.snapshotScriptMs)}`,
        `  update latency (${updates} changes) ${f(result.updateLatencyMs)}`,
        `    of which the API call      ${f(result.updateRpcMs)}`,
      ].join('\n') + '\n');
    }
  } finally {
    client?.close();
    await browser?.close();
    await server?.kill('SIGKILL');
    await cluster.destroy();
    await etcd.destroy();
  }
}

exitOnSignals();
main().catch((err: unknown) => {
  process.stderr.write(`dashboard-bench: ${errorMessage(err)}\n`);
  process.exit(1);
});
