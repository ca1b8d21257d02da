/**
 * Following a job until it ends (`job watch`, `--wait`, Contiv's `job get active -f`): on a
 * terminal a progress bar redrawn in place plus one line per node that finishes; piped, plain
 * lines (one per node state change) that a log or `grep` can read; with -o json one JobDetail
 * object per line. Returns the last state seen, from which the caller takes the exit code.
 */
import type { JobDetail__Output } from '../../generated/cluster/v1/JobDetail';
import { EXIT, type ExitCode } from '../command';
import type { CliContext } from '../context';
import { CLEAR_LINE, formatJsonLine, orDash, useColour } from '../output';
import { safeText } from '../../shared/errors';
import { isFinishedJobState, jobDetailObject, jobExitCode, jobStateText } from './job-view';

const BAR_WIDTH = 30;

/** `[#########-----------] 3/10 done, 2 running, 1 failed (batch 1/4)`. Pure. */
export function progressLine(d: JobDetail__Output): string {
  const total = d.nodes.length;
  const by = (s: string): number => d.nodes.filter((n) => n.state === s).length;
  const done = by('succeeded') + by('failed') + by('cancelled') + by('skipped');
  const filled = total ? Math.round((done / total) * BAR_WIDTH) : BAR_WIDTH;
  const j = d.job;
  const batch = j && j.batches > 1 ? ` (batch ${Math.min(j.currentBatch + 1, j.batches)}/${j.batches})` : '';
  return `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${done}/${total} done, ${by('running')} running, ${by('failed')} failed${batch} ${j ? jobStateText(j) : ''}`;
}

/**
 * One plain line per node state change; a verify that found drift on the node says so and
 * where (`job J node n1 succeeded (drift: units conf; probes port)`), not only the job's line. Pure.
 */
export function nodeLine(jobId: string, n: Pick<JobDetail__Output['nodes'][number], 'nodeId' | 'state' | 'error' | 'drift'>): string {
  const tail = n.error ? `: ${n.error}` : '';
  const r = n.drift;
  const where = r ? [...(r.changed.length ? [`units ${r.changed.join(', ')}`] : []), ...(r.probes.length ? [`probes ${r.probes.map((p) => p.id).join(', ')}`] : [])] : [];
  const drift = r ? ` (drift${where.length ? `: ${where.join('; ')}` : ''})` : '';
  return `job ${jobId} node ${n.nodeId} ${n.state}${drift}${tail}`;
}

export interface FollowResult {
  last?: JobDetail__Output;
  finished: boolean;
  code: ExitCode;
}

export async function followJob(context: CliContext, id: string, options: { print: boolean } = { print: true }): Promise<FollowResult> {
  const out = context.out;
  const tty = out.isTTY && context.format !== 'json' && context.format !== 'yaml';
  const colour = useColour(out, context.env);
  const seen = new Map<string, string>();
  let jobState = '';
  let last: JobDetail__Output | undefined;
  let barShown = false;
  const clearBar = (): void => {
    if (barShown) out.write(CLEAR_LINE);
    barShown = false;
  };
  const onDetail = (d: JobDetail__Output): void => {
    last = d;
    if (!options.print) return;
    const jobId = d.job?.id ?? id;
    if (context.format === 'json') {
      out.write(formatJsonLine(jobDetailObject(d)));
      return;
    }
    for (const n of d.nodes) {
      if (seen.get(n.nodeId) === n.state) continue;
      const first = !seen.has(n.nodeId);
      seen.set(n.nodeId, n.state);
      // A terminal shows only nodes that finished or failed; a pipe gets every change.
      if (tty && (n.state === 'pending' || n.state === 'running')) continue;
      if (first && n.state === 'pending') continue;
      clearBar();
      // Made safe before our colour goes around it, so a received escape cannot pass as ours.
      const line = safeText(nodeLine(jobId, n), Infinity);
      out.write((colour && n.state === 'failed' ? `\x1b[31m${line}\x1b[39m` : line) + '\n');
    }
    const state = d.job?.state ?? '';
    if (state !== jobState) {
      jobState = state;
      if (!tty) out.write(`job ${jobId} ${d.job ? jobStateText(d.job) : state}${d.job?.message ? `: ${d.job.message}` : ''}\n`);
    }
    if (tty) {
      clearBar();
      out.write(progressLine(d));
      barShown = true;
    }
  };
  const watch = await context.client.watchJob(id, onDetail);
  let interrupted = false;
  void context.interrupted.then(() => {
    interrupted = true;
    watch.cancel();
  });
  await watch.done;
  if (tty && barShown) {
    out.write('\n');
    if (last?.job && isFinishedJobState(last.job.state)) out.write(`job ${last.job.id} ${jobStateText(last.job)}${last.job.message ? `: ${orDash(last.job.message)}` : ''}\n`);
  }
  const finished = last?.job !== undefined && last.job !== null && isFinishedJobState(last.job.state);
  if (!finished) {
    context.note(interrupted
      ? `stopped following; job ${last?.job?.id ?? id} goes on (follow again: clusterctl job watch ${last?.job?.id ?? id}; stop it: clusterctl job cancel ${last?.job?.id ?? id})`
      : `the job stream ended before job ${id} finished (follow again: clusterctl job watch ${id})`);
    return { last, finished, code: EXIT.error };
  }
  return { last, finished, code: last ? jobExitCode(last) : EXIT.error };
}
