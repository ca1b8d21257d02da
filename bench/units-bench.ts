/**
 * Config-units benchmark: a generated 500-unit bundle (mostly files and directories, some
 * guarded commands, ~10 systemd services on a real user manager when one can be started)
 * run through the real executor on a temp node root. Times plan (nothing there yet), the
 * first apply, a no-op verify and a no-op apply, as medians over several runs, and samples the
 * process RSS while it runs (the engine runs in this process, as in the agent).
 *
 *   npm run build && node dist/bench/units-bench.js [--runs N] [--units N] [--no-systemd] [--json]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../shared/logger';
import type { Bundle } from '../shared/bundle/types';
import { validateBundle } from '../shared/bundle';
import { createUnitContext, type OwnedUnitContext } from '../agent/unit-context';
import { applyAndRecord, runWithRecord } from '../agent/applied-record';
import { runBundle } from '../agent/units/executor';
import { createHandlerRegistry } from '../agent/units/handlers';
import { startSystemdSandbox, type SystemdSandbox } from '../test/helpers/systemd-sandbox';
import { exitOnSignals } from '../test/helpers/children';

interface Args { runs: number; units: number; systemd: boolean; json: boolean }

function parseArgs(argv: string[]): Args {
  const a: Args = { runs: 3, units: 500, systemd: true, json: false };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i];
    if (f === '--runs') a.runs = Number(argv[++i]);
    else if (f === '--units') a.units = Number(argv[++i]);
    else if (f === '--no-systemd') a.systemd = false;
    else if (f === '--json') a.json = true;
    else throw new Error(`unknown flag ${f} (--runs N, --units N, --no-systemd, --json)`);
  }
  if (!Number.isInteger(a.runs) || a.runs < 1 || !Number.isInteger(a.units) || a.units < 50) throw new Error('--runs ≥ 1 and --units ≥ 50');
  return a;
}

/** ~45% files, ~45% directories, ~8% commands, `services` systemd units; validated like any bundle. */
function generateBundle(total: number, services: number, tag: string): Bundle {
  const units: Record<string, unknown>[] = [];
  const commands = Math.round(total * 0.08);
  const rest = total - commands - services;
  const dirs = Math.floor(rest / 2);
  const files = rest - dirs;
  for (let d = 0; d < dirs; d++) units.push({ id: `dir-${d}`, kind: 'directory', path: `/srv/app/d${d}`, mode: '0755' });
  for (let f = 0; f < files; f++) {
    const lines = Array.from({ length: 20 + (f % 40) }, (_, i) => `key_${i} = value ${f}-${i} {{ vars.env }}`).join('\n');
    units.push({ id: `file-${f}`, kind: 'file', path: `/srv/app/d${f % dirs}/f${f}.conf`, content: `${lines}\n`, mode: f % 3 === 0 ? '0600' : '0644' });
  }
  for (let c = 0; c < commands; c++) {
    units.push({ id: `cmd-${c}`, kind: 'command', run: `echo ${c} > "$NODE_ROOT/srv/app/d${c % dirs}/.cmd-${c}"`, creates: `/srv/app/d${c % dirs}/.cmd-${c}`, timeout: '30s' });
  }
  for (let s = 0; s < services; s++) {
    units.push({
      id: `svc-${s}`, kind: 'systemd', unit: `bench-${tag}-${s}.service`, state: 'running',
      content: `[Unit]\nDescription=units bench ${s}\n[Service]\nExecStart=/bin/sleep 3600\n`,
      restartWhenChanged: [`file-${s}`],
    });
  }
  return validateBundle({ name: 'bench', version: '1', variables: { env: 'bench' }, units, verify: [] });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t = process.hrtime.bigint();
  const value = await work();
  return { ms: Number(process.hrtime.bigint() - t) / 1e6, value };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const logger = createLogger({ level: 'warn' });
  let sb: SystemdSandbox | undefined;
  let systemdNote = 'not requested (--no-systemd)';
  if (args.systemd) {
    try {
      sb = await startSystemdSandbox('units-bench');
      systemdNote = 'user manager in a mount namespace';
    } catch (err) {
      systemdNote = `unavailable: ${(err as Error).message.split('\n')[0]}`;
    }
  }
  const services = sb ? 10 : 0;
  const bundle = generateBundle(args.units, services, String(process.pid));
  const kinds: Record<string, number> = {};
  for (const u of bundle.units) kinds[u.kind] = (kinds[u.kind] ?? 0) + 1;

  const rss: number[] = [];
  const sampler = setInterval(() => rss.push(process.memoryUsage().rss), 20);
  const baseRss = process.memoryUsage().rss;
  const times = { plan: [] as number[], firstApply: [] as number[], noopVerify: [] as number[], noopApply: [] as number[] };
  const dir = mkdtempSync(join(tmpdir(), 'units-bench-'));
  try {
    for (let run = 0; run < args.runs; run++) {
      const root = join(dir, `root-${run}`);
      const state = join(dir, `state-${run}`);
      const ctx: OwnedUnitContext = createUnitContext({
        root, logger, systemdBus: 'session',
        systemdUnitDir: sb?.unitDir ?? join(dir, 'no-systemd'), systemdBusAddress: sb?.busAddress,
      });
      try {
        const opts = { context: ctx };
        const plan = await timed(() => runWithRecord(state, bundle, 'plan', opts));
        if (plan.value.changed.length !== bundle.units.length) throw new Error(`plan found ${plan.value.changed.length} changes, want ${bundle.units.length}`);
        const first = await timed(() => applyAndRecord(state, bundle, opts));
        if (!first.value.report.ok) throw new Error(`first apply failed: ${JSON.stringify(first.value.report.failure)}`);
        const verify = await timed(() => runWithRecord(state, bundle, 'verify', opts));
        if (!verify.value.ok) throw new Error(`no-op verify found drift: ${verify.value.changed.slice(0, 5).join(', ')}`);
        const noop = await timed(() => applyAndRecord(state, bundle, opts));
        if (noop.value.report.changed.length !== 0) throw new Error(`no-op apply changed ${noop.value.report.changed.join(', ')}`);
        times.plan.push(plan.ms);
        times.firstApply.push(first.ms);
        times.noopVerify.push(verify.ms);
        times.noopApply.push(noop.ms);
        // Stop this run's services (not timed) so the next run's first apply starts them again.
        if (sb) await runBundle({ ...bundle, units: bundle.units.filter((u) => u.kind === 'systemd') }, 'remove', { handlers: createHandlerRegistry(), context: ctx });
      } finally {
        ctx.close();
      }
    }
  } finally {
    clearInterval(sampler);
    rmSync(dir, { recursive: true, force: true });
    await sb?.stop();
  }

  const mb = (b: number): number => Math.round((b / 1048576) * 10) / 10;
  const result = {
    units: bundle.units.length,
    kinds,
    runs: args.runs,
    systemd: systemdNote,
    medianMs: {
      plan: Math.round(median(times.plan)),
      firstApply: Math.round(median(times.firstApply)),
      noopVerify: Math.round(median(times.noopVerify)),
      noopApply: Math.round(median(times.noopApply)),
    },
    perUnitMs: {
      plan: Math.round((median(times.plan) / bundle.units.length) * 100) / 100,
      firstApply: Math.round((median(times.firstApply) / bundle.units.length) * 100) / 100,
      noopVerify: Math.round((median(times.noopVerify) / bundle.units.length) * 100) / 100,
    },
    rssMB: { before: mb(baseRss), median: mb(median(rss)), max: mb(Math.max(...rss)) },
    machine: { cores: cpus().length, load1: Math.round(loadavg()[0] * 10) / 10, node: process.version },
  };
  if (args.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  process.stdout.write([
    `units bench: ${result.units} units (${Object.entries(kinds).map(([k, n]) => `${n} ${k}`).join(', ')}), ${args.runs} runs, systemd: ${systemdNote}`,
    `  plan (empty node)   median ${result.medianMs.plan} ms  (${result.perUnitMs.plan} ms/unit)`,
    `  first apply         median ${result.medianMs.firstApply} ms  (${result.perUnitMs.firstApply} ms/unit)`,
    `  no-op verify        median ${result.medianMs.noopVerify} ms  (${result.perUnitMs.noopVerify} ms/unit)`,
    `  no-op apply         median ${result.medianMs.noopApply} ms`,
    `  RSS                 before ${result.rssMB.before} MB, median ${result.rssMB.median} MB, max ${result.rssMB.max} MB`,
    `  machine             ${result.machine.cores} cores, load ${result.machine.load1}, node ${result.machine.node}`,
    '',
  ].join('\n'));
}

exitOnSignals();
main().catch((err: unknown) => {
  process.stderr.write(`units-bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
