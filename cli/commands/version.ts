/** `clusterctl version`: the client's version (the product version in shared/version.ts). */
import { VERSION } from '../../shared/version';
import { defineCommand, EXIT } from '../command';
import type { CliContext } from '../context';
import { formatJson, formatYaml } from '../output';

export const version = defineCommand<CliContext, Record<string, never>>({
  name: 'version',
  summary: 'Print the clusterctl version',
  usage: 'version [-o json|yaml]',
  example: 'clusterctl version',
  async run({ context }) {
    const doc = { clientVersion: VERSION };
    if (context.format === 'json') context.out.write(formatJson(doc));
    else if (context.format === 'yaml') context.out.write(formatYaml(doc));
    else context.out.write(`clusterctl ${VERSION}\n`);
    return EXIT.ok;
  },
});
