/**
 * `clusterctl job describe ID` (also `job get`, Contiv's spelling: `job get active`, `job get
 * last`, `-f` follows the job until it ends, `-j` prints JSON).
 */
import { defineCommand, EXIT } from '../command';
import type { CliContext } from '../context';
import { followJob } from './job-follow';
import { describeJob, jobDetailObject, jobExitCode } from './job-view';
import { printResult } from './print';

export const JOB_DESCRIBE_OPTIONS = {
  follow: {
    kind: 'boolean',
    short: 'f',
    description: 'follow the job until it ends (as job watch); exit code from its result',
  },
  json: {
    kind: 'boolean',
    short: 'j',
    description: 'print JSON (same as -o json)',
  },
} as const;

export const jobDescribe = defineCommand<CliContext, typeof JOB_DESCRIBE_OPTIONS>({
  name: 'describe',
  aliases: ['get', 'show'],
  summary: 'Show one job and its nodes (ID, "active" or "last")',
  usage: 'job describe ID|active|last [-f] [-o table|json|yaml] [-j]',
  example: 'clusterctl job describe j-20240101-abc123\nclusterctl job get active -f\nclusterctl job get last -j | jq .nodes',
  options: JOB_DESCRIBE_OPTIONS,
  maxPositionals: 1,
  minPositionals: { count: 1, message: 'which job? give its ID, "active" or "last" (list jobs with: clusterctl jobs)' },
  async run({ values, positionals, context }) {
    const ctx: CliContext = values.json ? { ...context, format: 'json' } : context;
    if (values.follow) {
      // Resolve "active"/"last" once, so following does not jump to a newer job.
      const detail = await ctx.client.getJob(positionals[0]);
      const id = detail.job?.id ?? positionals[0];
      return (await followJob(ctx, id)).code;
    }
    const detail = await ctx.client.getJob(positionals[0]);
    printResult(ctx, jobDetailObject(detail), () => describeJob(detail, ctx.clock.now()));
    // A finished job's result is the exit code (scripts: `job get last && ...`); running: 0.
    return detail.job && ['Failed', 'Cancelled', 'RolledBack'].includes(detail.job.state) ? jobExitCode(detail) : EXIT.ok;
  },
});
