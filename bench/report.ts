/**
 * `npm run bench`: every issue-12 figure in ONE table, with the machine's cores and load.
 * Each benchmark is its own program (run here as a child with --json, so one crashing or
 * timing out does not take the table with it); this file only runs them and lays out rows.
 *
 * To add a benchmark: append an entry to BENCHES (id, issue section, how to run it, how its
 * JSON becomes rows). The detection, failover and soak benchmarks go there the same way.
 *
 *   npm run build && npm run bench [-- --only fanout,agent-cost] [-- --fanout-sizes 1000,5000,10000,20000]
 */
import { spawn } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { formatHelp, parseOptions, type OptionSpecs } from '../shared/options';

export interface BenchRow {
  /** Issue 12 section, e.g. "§3". */
  section: string;
  figure: string;
  value: string;
  target: string;
  /** Whether the target is met (undefined: no target, or not measured). */
  met?: boolean;
}

export interface BenchSettings {
  fanoutSizes: string[];
}

export interface Bench {
  id: string;
  /** The program under dist/bench and its arguments. */
  command(s: BenchSettings): { script: string; args: string[] };
  /** Its --json output (the last line of stdout) as rows. */
  rows(json: unknown): BenchRow[];
  /** Rows to print when it failed (the figures it owns, unmeasured). */
  failed(why: string): BenchRow[];
}

const ms = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? '-' : x >= 10_000 ? `${(x / 1000).toFixed(1)} s` : `${Math.round(x)} ms`);

interface FanoutJson {
  results: {
    agents: number; problem?: string;
    job?: { totalMs?: number; perNode?: { p50: number; p99: number }; succeeded?: number; rssPeakMiB?: { coordinator: number } };
    cpuProfile?: { frames: { frame: string; selfMs: number; pct: number }[] };
  }[];
}

interface AgentCostJson { rssMiB: { median: number; max: number }; cpuPercent: number; windowSeconds: number }
interface UnitsJson { units: number; medianMs: { noopVerify: number } }

/** The registry: every benchmark whose figures go into the table, in the order they print. */
export const BENCHES: Bench[] = [
  {
    id: 'fanout',
    command: (s) => ({ script: 'fanout.js', args: ['--sizes', s.fanoutSizes.join(','), '--json'] }),
    rows: (json) => (json as FanoutJson).results.flatMap((r): BenchRow[] => {
      const target = r.agents <= 1000 ? 2_000 : r.agents === 10_000 ? 15_000 : undefined;
      const total = r.job?.totalMs;
      return [
        {
          section: '§3', figure: `fan-out ${r.agents} nodes: all results (p50 / p99 per node)`,
          value: total !== undefined ? `${ms(total)} (${ms(r.job?.perNode?.p50)} / ${ms(r.job?.perNode?.p99)}), ${r.job?.succeeded ?? 0}/${r.agents} ok` : `not measured: ${r.problem ?? 'no job'}`,
          target: target !== undefined ? `≤ ${ms(target)}` : '-', ...(target !== undefined && total !== undefined ? { met: total <= target } : {}),
        },
        {
          section: '§3', figure: `fan-out ${r.agents} nodes: coordinator peak RSS`, value: r.job?.rssPeakMiB ? `${r.job.rssPeakMiB.coordinator} MiB` : '-',
          target: '≤ 1024 MiB', ...(r.job?.rssPeakMiB ? { met: r.job.rssPeakMiB.coordinator <= 1024 } : {}),
        },
      ];
    }),
    failed: (why) => [{ section: '§3', figure: 'fan-out', value: `not measured: ${why}`, target: '≤ 15 s at 10,000' }],
  },
  {
    id: 'agent-cost',
    command: () => ({ script: 'agent-cost.js', args: ['--json'] }),
    rows: (json) => {
      const r = json as AgentCostJson;
      return [
        { section: '§7', figure: 'idle agent RSS (median / max)', value: `${r.rssMiB.median} / ${r.rssMiB.max} MiB`, target: '≤ 60 MB', met: r.rssMiB.max * 1.048576 <= 60 },
        { section: '§7', figure: `idle agent CPU (over ${r.windowSeconds} s)`, value: `${r.cpuPercent}%`, target: '≤ 0.2%', met: r.cpuPercent <= 0.2 },
      ];
    },
    failed: (why) => [{ section: '§7', figure: 'idle agent RSS / CPU', value: `not measured: ${why}`, target: '≤ 60 MB, ≤ 0.2%' }],
  },
  {
    id: 'units-noop',
    command: () => ({ script: 'units-bench.js', args: ['--no-systemd', '--json'] }),
    rows: (json) => {
      const r = json as UnitsJson;
      return [{ section: '§7', figure: `no-op verify of a ${r.units}-unit bundle (median)`, value: ms(r.medianMs.noopVerify), target: '≤ 300 ms', met: r.medianMs.noopVerify <= 300 }];
    },
    failed: (why) => [{ section: '§7', figure: 'no-op verify, 500 units', value: `not measured: ${why}`, target: '≤ 300 ms' }],
  },
];

function runJson(script: string, args: string[]): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(__dirname, script), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last));
      } catch {
        reject(new Error(`${script} exited ${code ?? 'by signal'} without a JSON result`));
      }
    });
  });
}

const OPTIONS = {
  only: { kind: 'list', placeholder: 'ID[,ID...]', description: `benchmarks to run (default all: ${BENCHES.map((b) => b.id).join(', ')})` },
  fanoutSizes: { kind: 'list', default: ['1000', '5000', '10000', '20000'], placeholder: 'N[,N...]', description: 'fleet sizes of the fan-out' },
} as const satisfies OptionSpecs;

export function formatReport(rows: readonly BenchRow[], machine: { cores: number; model: string; loadBefore: number; loadAfter: number }): string {
  const head = ['§', 'figure', 'value', 'target', 'met'];
  const cells = rows.map((r) => [r.section, r.figure, r.value, r.target, r.met === undefined ? '-' : r.met ? 'yes' : 'NO']);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]): string => c.map((x, i) => x.padEnd(widths[i])).join('  ').trimEnd();
  return [
    `issue 12 benchmarks — ${machine.cores} cores (${machine.model}), load ${machine.loadBefore} before, ${machine.loadAfter} after`,
    line(head), ...cells.map(line), '',
  ].join('\n');
}

async function main(): Promise<number> {
  const parsed = parseOptions(OPTIONS, { argv: process.argv.slice(2), env: {}, allowPositionals: false });
  if (parsed.help) {
    process.stdout.write(formatHelp('Usage: npm run bench [-- --only ID,...] [-- --fanout-sizes N,...]', OPTIONS));
    return 0;
  }
  const only = parsed.values.only;
  const settings: BenchSettings = { fanoutSizes: parsed.values.fanoutSizes };
  const loadBefore = Math.round(loadavg()[0] * 10) / 10;
  const rows: BenchRow[] = [];
  for (const b of BENCHES.filter((x) => !only || only.length === 0 || only.includes(x.id))) {
    const { script, args } = b.command(settings);
    process.stderr.write(`bench: running ${b.id} (${script} ${args.join(' ')})\n`);
    try {
      rows.push(...b.rows(await runJson(script, args)));
    } catch (err) {
      rows.push(...b.failed(err instanceof Error ? err.message : String(err)));
    }
  }
  process.stdout.write(formatReport(rows, { cores: cpus().length, model: cpus()[0]?.model ?? '', loadBefore, loadAfter: Math.round(loadavg()[0] * 10) / 10 }));
  return rows.every((r) => r.met !== false) ? 0 : 1;
}

if (require.main === module) {
  main().then((code) => process.exit(code), (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
