/**
 * How the end-to-end tests judge a clusterctl run: an exit code, or a refusal that is ONE line
 * on stderr (`error: ...`, cli/main.ts), with the run's output in every failure message.
 */
import { expect } from 'chai';
import type { RunResult } from './processes';

/** The run as a failure message shows it (outputs cut at `max` characters). */
export function runContext(r: RunResult, max = 3000): string {
  return `exit ${r.code}; stdout ${JSON.stringify(r.stdout.slice(0, max))}; stderr ${JSON.stringify(r.stderr.slice(0, max))}`;
}

export function expectExit(r: RunResult, code: number): RunResult {
  expect(r.code, runContext(r)).to.equal(code);
  return r;
}

/** Exit 1 and one stderr line `error: ...` matching `match`; `quiet`: nothing on stdout either. */
export function expectOneLineError(r: RunResult, match: RegExp, o: { quiet?: boolean } = {}): void {
  const context = runContext(r);
  expect(r.code, context).to.equal(1);
  const lines = r.stderr.trim().split('\n');
  expect(lines, context).to.have.length(1);
  expect(lines[0], context).to.match(/^error: /);
  expect(lines[0], context).to.match(match);
  if (o.quiet) expect(r.stdout, context).to.equal('');
}
