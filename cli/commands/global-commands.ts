/**
 * Cluster-wide variables (Contiv's `global get` / `global set -e '<json>'`): merged over every
 * bundle's defaults and under every group's variables (bundle defaults < globals < group
 * variables < a job's -e). Changing one makes the nodes whose templates use it out of date
 * (`clusterctl nodes` marks them `web@2*`; `node upgrade` rolls the change out).
 */
import type { Globals__Output } from '../../generated/cluster/v1/Globals';
import { InvalidArgumentError } from '../../shared/errors';
import { defineCommand, EXIT } from '../command';
import type { CliContext } from '../context';
import { formatTable, orDash } from '../output';
import { printResult } from './print';

export function globalsObject(g: Globals__Output): Record<string, unknown> {
  return {
    variables: Object.fromEntries(Object.entries(g.variables).sort(([a], [b]) => (a < b ? -1 : 1))),
    updatedAt: g.updatedAt, revision: g.revision,
  };
}

function table(g: Globals__Output): string {
  const rows = Object.entries(g.variables).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, v]);
  if (rows.length === 0) return `no global variables (set them with: clusterctl global set -e '{"NAME":"VALUE"}')\n`;
  return formatTable(['NAME', 'VALUE'], rows) + `updated ${orDash(g.updatedAt)} (revision ${g.revision})\n`;
}

export const globalGet = defineCommand<CliContext, Record<string, never>>({
  name: 'get',
  aliases: ['show', 'list'],
  summary: 'Show the cluster-wide variables',
  usage: 'global get [-o table|json|yaml]',
  example: 'clusterctl global get\nclusterctl global get -o json | jq .variables',
  async run({ context }) {
    const g = await context.client.getGlobals();
    printResult(context, globalsObject(g), () => table(g));
    return EXIT.ok;
  },
});

export const GLOBAL_SET_OPTIONS = {
  extraVars: {
    kind: 'string', short: 'e', placeholder: 'JSON',
    description: 'a JSON object of variables to set (strings, numbers, booleans); null removes one, e.g. \'{"ntp_server":"10.0.0.1","old":null}\'',
  },
} as const;

export const globalSet = defineCommand<CliContext, typeof GLOBAL_SET_OPTIONS>({
  name: 'set',
  summary: 'Set or remove cluster-wide variables (bundle defaults < globals < group variables < -e of a job)',
  usage: 'global set -e \'{"NAME":"VALUE",...}\' [-o table|json|yaml]',
  example: 'clusterctl global set -e \'{"ntp_server":"10.0.0.1"}\'\nclusterctl global set -e \'{"ntp_server":null}\'   # remove it',
  options: GLOBAL_SET_OPTIONS,
  async run({ values, context }) {
    const text = (values.extraVars ?? '').trim();
    if (!text) throw new InvalidArgumentError('global set needs -e \'{"NAME":"VALUE"}\' (a JSON object; null removes a variable)');
    const g = await context.client.setGlobals(text);
    printResult(context, globalsObject(g), () => table(g));
    return EXIT.ok;
  },
});
