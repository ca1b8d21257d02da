#!/usr/bin/env node
/**
 * The long fuzz run, by hand or in CI (not in the suite: it takes tens of minutes):
 *
 *   npm run build && node dist/test/fuzz/fuzz-run.js [--requests 100000] [--bundles 10000] [--seed 1]
 *
 * Starts its own etcd and coordinator (test/helpers), runs test/fuzz/fuzz.ts, prints progress
 * and the report as JSON, and exits 1 when any request failed a check. SIGINT/SIGTERM stop it
 * after the request in flight: it prints the report of what was sent and stops its processes.
 */
import { EtcdServer, TestCluster } from '../helpers';
import { runFuzz } from './fuzz';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isInteger(v) || v < 0) throw new Error(`--${name} takes a whole number`);
  return v;
}

async function main(): Promise<number> {
  const requests = arg('requests', 100_000);
  const bundles = arg('bundles', 10_000);
  const seed = arg('seed', 1);
  const etcd = await EtcdServer.start('fuzz-run');
  const cluster = new TestCluster(etcd, { name: 'fuzz-run' });
  const t0 = Date.now();
  const stop = new AbortController();
  process.once('SIGINT', () => stop.abort());
  process.once('SIGTERM', () => stop.abort());
  try {
    const c = await cluster.startCoordinator();
    const report = await runFuzz({
      address: c.address, credentialsFile: cluster.adminCredentials, etcd: etcd.client(), alive: () => c.proc.alive, seed, requests, bundles,
      probeEvery: 1000, signal: stop.signal,
      onProgress: (done, total, codes) => process.stderr.write(`${new Date().toISOString()} ${done}/${total} ${JSON.stringify(codes)}\n`),
      onFailure: (what) => process.stderr.write(`FAILURE ${what}\n`),
    });
    process.stdout.write(`${JSON.stringify({ seed, stopped: stop.signal.aborted, seconds: Math.round((Date.now() - t0) / 1000), ...report }, null, 2)}\n`);
    return report.failures.length === 0 ? 0 : 1;
  } finally {
    await cluster.destroy();
    await etcd.destroy();
  }
}

main().then((code) => process.exit(code), (err: unknown) => {
  process.stderr.write(`fuzz-run: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(2);
});
