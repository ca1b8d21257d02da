/**
 * Bundle push cost against the number of versions already stored (issue 12 §4: a push used to
 * read every stored version of its bundle, 137 → 314 ms per push over 200 versions).
 *
 *   npm run build && node dist/bench/bundle-push.js [--versions N] [--units U] [--json]
 *
 * Starts a real etcd (test/helpers/etcd-server.ts), pushes versions 1..N of one bundle of U
 * file units through the coordinator's BundleStore (validation, template checks, the create-only
 * transaction with its event), and prints the median push time of each tenth of the run: flat
 * when a push is constant in the number of stored versions.
 */
import { cpus, loadavg } from 'node:os';
import { BundleStore } from '../coordinator/config/bundle-store';
import { EventLog } from '../coordinator/event-log';
import { createLogger, Keyspace, systemClock } from '../shared';
import { EtcdServer } from '../test/helpers/etcd-server';
import { positiveIntArg } from './cli-args';
import { exitOnSignals } from '../test/helpers/children';

const USAGE = 'Usage: node dist/bench/bundle-push.js [--versions N] [--units U] [--json]';

const arg = (name: string, fallback: number): number => positiveIntArg(name, fallback, USAGE);

function bundleText(version: number, units: number): string {
  const lines = [`name: bench`, `version: "${version}"`, 'units:'];
  for (let u = 0; u < units; u++) {
    lines.push(`  - id: f${u}`, '    kind: file', `    path: /opt/bench/f${u}.conf`, '    content: |', `      value ${version}.${u}`);
  }
  return lines.join('\n') + '\n';
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

async function main(): Promise<void> {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    console.log(USAGE);
    return;
  }
  const versions = arg('--versions', 200);
  const units = arg('--units', 20);
  const json = process.argv.includes('--json');
  const etcd = await EtcdServer.start('bench-bundle-push');
  try {
    const client = etcd.client();
    const keyspace = new Keyspace('/bench/');
    const logger = createLogger({ level: 'silent' });
    const events = new EventLog({ client, keyspace, clock: systemClock, logger, actor: 'bench' });
    const store = new BundleStore({ client, keyspace, events, clock: systemClock });
    const times: number[] = [];
    for (let v = 1; v <= versions; v++) {
      const text = bundleText(v, units);
      const t0 = performance.now();
      const r = await store.push(text, 'bench');
      times.push(performance.now() - t0);
      if (!r.created) throw new Error(`version ${v} was not created`);
    }
    await events.stop();
    const tenth = Math.max(1, Math.floor(versions / 10));
    const rows: { stored: string; medianMs: number }[] = [];
    for (let i = 0; i < versions; i += tenth) {
      rows.push({ stored: `${i}..${Math.min(versions, i + tenth) - 1}`, medianMs: Math.round(median(times.slice(i, i + tenth)) * 10) / 10 });
    }
    const machine = { cores: cpus().length, load1: Math.round(loadavg()[0] * 100) / 100 };
    if (json) {
      console.log(JSON.stringify({ versions, units, machine, rows }));
    } else {
      console.log(`bundle push: ${versions} versions of a ${units}-unit bundle; ${machine.cores} cores, load ${machine.load1}`);
      console.log('versions already stored   median push');
      for (const r of rows) console.log(`${r.stored.padEnd(26)}${r.medianMs} ms`);
    }
  } finally {
    await etcd.destroy();
  }
}

exitOnSignals();
main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
