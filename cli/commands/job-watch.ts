/** `clusterctl job watch ID`: live per-node progress until the job ends; exit code from the result. */
import { defineCommand } from '../command';
import type { CliContext } from '../context';
import { followJob } from './job-follow';

export const jobWatch = defineCommand<CliContext, Record<string, never>>({
  name: 'watch',
  aliases: ['follow'],
  summary: 'Follow a job live until it ends (progress bar on a terminal, plain lines when piped)',
  usage: 'job watch ID|active|last [-o json]',
  example: 'clusterctl job watch active\nclusterctl job watch j-20240101-abc123 | tee job.log',
  maxPositionals: 1,
  minPositionals: { count: 1, message: 'which job? give its ID, "active" or "last" (list jobs with: clusterctl jobs)' },
  async run({ positionals, context }) {
    const detail = await context.client.getJob(positionals[0]);
    return (await followJob(context, detail.job?.id ?? positionals[0])).code;
  },
});
