/**
 * The suite's reporter (scripts/test): mocha's spec output, then the slowest test files by the
 * time their tests and hooks took. Hooks count: a file that starts etcd or a cluster in a
 * before/beforeEach spends much of its time there, and the spec output shows only test times.
 * It works the same with --parallel, where a worker sends each file's events once the file ended
 * (tests and hooks carry their file and duration).
 *
 * TEST_FILE_TIMES=PATH also writes every file's seconds as JSON, to compare two runs.
 * TEST_SLOWEST=N prints N files (default 15; 0 prints none).
 */
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import type * as MochaTypes from 'mocha';

// The CommonJS build that mocha's CLI runs on: the same Spec and event names as the running
// instance (the package's main entry is its ES module build).
const mocha = createRequire(__filename)('mocha/lib/mocha.cjs') as typeof MochaTypes;
const { EVENT_TEST_END, EVENT_HOOK_END, EVENT_RUN_END } = mocha.Runner.constants;

class FileTimesReporter extends mocha.reporters.Spec {
  constructor(runner: MochaTypes.Runner, options?: MochaTypes.MochaOptions) {
    super(runner, options);
    const ms = new Map<string, number>();
    const add = (r: MochaTypes.Runnable): void => {
      if (r.file && typeof r.duration === 'number') ms.set(r.file, (ms.get(r.file) ?? 0) + r.duration);
    };
    runner.on(EVENT_TEST_END, add);
    runner.on(EVENT_HOOK_END, add);
    // Registered after Spec's own listener: printed below its summary.
    runner.once(EVENT_RUN_END, () => {
      const rows = [...ms.entries()].map(([file, t]) => ({ file: relative(process.cwd(), file), seconds: Math.round(t / 100) / 10 }))
        .sort((a, b) => b.seconds - a.seconds);
      const out = process.env.TEST_FILE_TIMES;
      if (out) writeFileSync(out, `${JSON.stringify(rows, null, 1)}\n`);
      const n = Number(process.env.TEST_SLOWEST ?? 15);
      if (!(n > 0) || rows.length === 0) return;
      const total = rows.reduce((s, r) => s + r.seconds, 0);
      const lines = rows.slice(0, n).map((r) => `${r.seconds.toFixed(1).padStart(8)} s  ${r.file}`);
      process.stderr.write(`[test] slowest files (tests + hooks; ${rows.length} files, ${total.toFixed(0)} s in all):\n${lines.join('\n')}\n`);
    });
  }
}

export = FileTimesReporter;
