/** `clusterctl jobs [--state STATE]`: jobs newest first, as a table, wide table, JSON or YAML. */
import { InvalidArgumentError } from '../../shared/errors';
import { defineCommand, EXIT } from '../command';
import type { CliContext } from '../context';
import { formatTable, useColour } from '../output';
import { JOB_COLUMNS, JOB_WIDE_COLUMNS, jobObject, jobRow, jobWideRow } from './job-view';
import { printResult } from './print';

/** The job states (coordinator/jobs/job-record.ts), lower case accepted. */
export const JOB_STATE_NAMES = ['Pending', 'Running', 'Succeeded', 'Failed', 'Cancelling', 'Cancelled', 'Pausing', 'Paused', 'RollingBack', 'RolledBack'] as const;

export const JOBS_LIST_OPTIONS = {
  state: {
    kind: 'string',
    description: `only jobs in this state (${JOB_STATE_NAMES.map((s) => s.toLowerCase()).join('|')})`,
    placeholder: 'STATE',
  },
  limit: {
    kind: 'int',
    description: 'at most this many jobs (newest)',
    default: 50,
    min: 1,
    placeholder: 'N',
  },
} as const;

/** `running` → `Running`; unknown → a one-line error listing the states. */
export function jobStateArg(text: string): string {
  const found = JOB_STATE_NAMES.find((s) => s.toLowerCase() === text.trim().toLowerCase());
  if (!found) throw new InvalidArgumentError(`unknown job state ${JSON.stringify(text)} for --state: use one of ${JOB_STATE_NAMES.map((s) => s.toLowerCase()).join(', ')}`);
  return found;
}

export const jobsList = defineCommand<CliContext, typeof JOBS_LIST_OPTIONS>({
  name: 'list',
  aliases: ['ls'],
  summary: 'List jobs (commission, upgrade, decommission, verify, repair), newest first',
  usage: 'jobs [list] [--state running|failed|...] [--limit N] [-o table|wide|json|yaml]',
  example: 'clusterctl jobs\nclusterctl jobs --state running\nclusterctl jobs -o json | jq -r \'.[] | select(.state=="Failed") | .id\'',
  options: JOBS_LIST_OPTIONS,
  async run({ values, context }) {
    const state = values.state ? jobStateArg(values.state) : '';
    const jobs = (await context.client.listJobs(state, values.limit))
      .sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : a.id < b.id ? 1 : -1));
    if (jobs.length === 0 && (context.format === 'table' || context.format === 'wide')) {
      context.note(state ? `no ${state} jobs` : 'no jobs yet (start one with: clusterctl node commission ID -g GROUP)');
      return EXIT.ok;
    }
    const now = context.clock.now();
    const colour = useColour(context.out, context.env);
    printResult(context, jobs.map(jobObject), (wide) => wide
      ? formatTable(JOB_WIDE_COLUMNS, jobs.map((j) => jobWideRow(j, now)), { colour })
      : formatTable(JOB_COLUMNS, jobs.map((j) => jobRow(j, now)), { colour }));
    return EXIT.ok;
  },
});
