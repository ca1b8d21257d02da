/**
 * The whole clusterctl command tree. New commands (node commission/upgrade/decommission,
 * jobs, bundles, groups, files, exec, events, status, plan/apply) are added here as objects.
 */
import { defineCommand, type Command } from './command';
import type { CliContext } from './context';
import { GLOBAL_OPTIONS } from './global-options';
import { nodesList } from './commands/nodes-list';
import { nodeDescribe } from './commands/node-describe';
import { version } from './commands/version';

/** `nodes`: the inventory (Contiv's `clusterctl nodes get`); bare `nodes` lists. */
const nodesGroup = defineCommand<CliContext, Record<string, never>>({
  name: 'nodes',
  summary: 'List and watch the machines in the inventory',
  usage: 'nodes [list|describe] [flags]',
  example: 'clusterctl nodes\nclusterctl nodes -o json',
  subcommands: [nodesList, nodeDescribe],
  defaultSubcommand: 'list',
});

/** `node`: acts on one node (Contiv's `clusterctl node get ID`). */
const nodeGroup = defineCommand<CliContext, Record<string, never>>({
  name: 'node',
  summary: 'Show one node (describe/get ID)',
  usage: 'node describe|get ID [flags]',
  example: 'clusterctl node describe node-1',
  subcommands: [nodeDescribe, nodesList],
});

export function commandTree(): Command<CliContext> {
  return defineCommand<CliContext, typeof GLOBAL_OPTIONS>({
    name: 'clusterctl',
    summary: 'clusterctl: the operator CLI of the bare-metal cluster manager (talks gRPC to any coordinator replica).',
    usage: 'clusterctl [global options] COMMAND [flags]',
    example: 'clusterctl nodes\nclusterctl --coordinator 10.0.0.5:7400 nodes -o wide\nclusterctl node describe node-1 -o yaml',
    options: GLOBAL_OPTIONS,
    subcommands: [nodesGroup, nodeGroup, version],
  });
}
