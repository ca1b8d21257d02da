/**
 * The whole clusterctl command tree. New commands (node commission/upgrade/decommission,
 * jobs, bundles, groups, files, exec, events, status, plan/apply) are added here as objects.
 */
import { defineCommand, type Command } from './command';
import type { CliContext } from './context';
import { GLOBAL_OPTIONS } from './global-options';
import { nodesList } from './commands/nodes-list';
import { nodeDescribe } from './commands/node-describe';
import { nodeDiff } from './commands/node-diff';
import { nodeHistory } from './commands/node-history';
import { version } from './commands/version';
import { bundleDelete, bundlePush, bundleShow, bundlesList } from './commands/bundle-commands';
import { events } from './commands/events';
import { groupDelete, groupSet, groupShow, groupsList } from './commands/group-commands';
import { globalGet, globalSet } from './commands/global-commands';
import { configGet, configSet } from './commands/config-commands';
import { discoverCommand } from './commands/discover';
import { jobCancel } from './commands/job-cancel';
import { jobPause, jobResume } from './commands/job-pause';
import { jobDescribe } from './commands/job-describe';
import { jobLogs } from './commands/job-logs';
import { jobWatch } from './commands/job-watch';
import { jobsList } from './commands/jobs-list';
import { nodeLabel } from './commands/node-label';
import { nodeMaintenance } from './commands/node-maintenance';
import { nodeDelete } from './commands/node-delete';
import { nodeRefreshFacts } from './commands/node-refresh-facts';
import { nodeCommission, nodeDecommission, nodeRepair, nodeUpgrade, nodeVerify } from './commands/node-job';
import { status } from './commands/status';
import { completeNamesCommand, completionCommand } from './completion';
import { filesGroup } from './commands/files';
import { secretGroup } from './commands/secrets';
import { applyCommand, planCommand } from './commands/plan-apply';
import { execCommand } from './commands/exec';
import { dashboard } from './commands/dashboard';
import { nodeRevoke, tokenCreate, tokenList, tokenRevoke, userAdd, userList, userRevoke } from './commands/pki';

/**
 * `nodes`: the inventory (Contiv's `clusterctl nodes get`); bare `nodes` lists. Contiv's batch
 * forms `nodes commission|decommission|update ID...` are the node job commands.
 */
const nodesGroup = defineCommand<CliContext, Record<string, never>>({
  name: 'nodes',
  summary: 'List and watch the machines in the inventory; commission, decommission or update several',
  usage: 'nodes [list|describe|commission|decommission|upgrade] [flags]',
  example: 'clusterctl nodes\nclusterctl nodes get -j\nclusterctl nodes commission node-1 node-2 -g worker --wait',
  subcommands: [nodesList, nodeDescribe, nodeCommission, nodeDecommission, nodeUpgrade],
  defaultSubcommand: 'list',
});

/** `node`: acts on one node (Contiv's `clusterctl node get ID`). */
const nodeGroup = defineCommand<CliContext, Record<string, never>>({
  name: 'node',
  summary: 'Act on nodes: describe, history, diff, commission, upgrade, decommission, verify, maintenance, label, revoke, delete, refresh-facts',
  usage: 'node COMMAND ID... [flags]',
  example: 'clusterctl node describe node-1\nclusterctl node commission node-1 -g worker --wait\nclusterctl node maintenance on node-1 --reason "disk swap"',
  subcommands: [nodeDescribe, nodeHistory, nodeDiff, nodesList, nodeCommission, nodeUpgrade, nodeDecommission, nodeVerify, nodeRepair, nodeMaintenance, nodeLabel, nodeRevoke, nodeDelete, nodeRefreshFacts],
});

/** `jobs`: bare `jobs` lists (`jobs --state running`). */
const jobsGroup = defineCommand<CliContext, Record<string, never>>({
  name: 'jobs',
  summary: 'List jobs',
  usage: 'jobs [list] [--state STATE] [flags]',
  example: 'clusterctl jobs\nclusterctl jobs --state failed -o wide',
  subcommands: [jobsList, jobDescribe, jobWatch, jobLogs, jobCancel, jobPause, jobResume],
  defaultSubcommand: 'list',
});

/** `job`: one job (Contiv's `job get active|last`). */
const jobGroup = defineCommand<CliContext, Record<string, never>>({
  name: 'job',
  summary: 'Show, follow, read the output of, pause, resume or cancel one job',
  usage: 'job describe|watch|logs|pause|resume|cancel ID|active|last [flags]',
  example: 'clusterctl job describe last\nclusterctl job get active -f\nclusterctl job logs last --node node-1\nclusterctl job pause active\nclusterctl job resume active\nclusterctl job cancel active',
  subcommands: [jobDescribe, jobWatch, jobLogs, jobCancel, jobPause, jobResume, jobsList],
});

const bundlesGroup = defineCommand<CliContext, Record<string, never>>({
  name: 'bundles',
  summary: 'List stored bundle versions',
  usage: 'bundles [list] [flags]',
  example: 'clusterctl bundles',
  subcommands: [bundlesList, bundleShow, bundlePush],
  defaultSubcommand: 'list',
});

const bundleGroup = defineCommand<CliContext, Record<string, never>>({
  name: 'bundle',
  summary: 'Push and show config bundles (versioned, validated units + verify probes)',
  usage: 'bundle push|show|list|delete [flags]',
  example: 'clusterctl bundle push -f base.yaml\nclusterctl bundle show base@3',
  subcommands: [bundlePush, bundleShow, bundlesList, bundleDelete],
});

const groupsGroup = defineCommand<CliContext, Record<string, never>>({
  name: 'groups',
  summary: 'List groups',
  usage: 'groups [list] [flags]',
  example: 'clusterctl groups',
  subcommands: [groupsList, groupShow, groupSet],
  defaultSubcommand: 'list',
});

const groupGroup = defineCommand<CliContext, Record<string, never>>({
  name: 'group',
  summary: 'Show and set groups (role -> bundle version, variables, rules)',
  usage: 'group show|set|list|delete NAME [flags]',
  example: 'clusterctl group show worker\nclusterctl group set worker --bundle base@3 --min-size 2\nclusterctl group delete canary',
  subcommands: [groupShow, groupSet, groupsList, groupDelete],
});

/** `global`: cluster-wide template variables (Contiv's `global get|set`). */
const globalGroup = defineCommand<CliContext, Record<string, never>>({
  name: 'global',
  summary: 'Show and set cluster-wide variables (bundle defaults < globals < group variables < -e)',
  usage: 'global get|set [flags]',
  example: 'clusterctl global get\nclusterctl global set -e \'{"ntp_server":"10.0.0.1"}\'',
  subcommands: [globalGet, globalSet],
  defaultSubcommand: 'get',
});

/** `config`: the manager's own settings (Contiv's `config get|set`). */
const configGroup = defineCommand<CliContext, Record<string, never>>({
  name: 'config',
  summary: 'Show and change the manager\'s own settings (default batch, repair policy, auto-commission)',
  usage: 'config get|set [NAME=VALUE...]',
  example: 'clusterctl config get\nclusterctl config set repairPolicy=report',
  subcommands: [configGet, configSet],
  defaultSubcommand: 'get',
});

/** `token`: join tokens for new machines (admin). */
const tokenGroup = defineCommand<CliContext, Record<string, never>>({
  name: 'token',
  summary: 'Create, list and revoke join tokens for new machines (admin)',
  usage: 'token create|list|revoke [flags]',
  example: 'clusterctl token create --ttl 1h --uses 1\nclusterctl token list\nclusterctl token revoke 8k2x9a',
  subcommands: [tokenCreate, tokenList, tokenRevoke],
});

/** `user`: people and their credentials files (admin). */
const userGroup = defineCommand<CliContext, Record<string, never>>({
  name: 'user',
  summary: 'Add, list and revoke users (viewer, operator, admin) and their credentials (admin)',
  usage: 'user add|list|revoke NAME [flags]',
  example: 'clusterctl user add alice --role operator -f alice.yaml\nclusterctl user list\nclusterctl user revoke alice',
  subcommands: [userAdd, userList, userRevoke],
});

export function commandTree(): Command<CliContext> {
  return defineCommand<CliContext, typeof GLOBAL_OPTIONS>({
    name: 'clusterctl',
    summary: 'clusterctl: the operator CLI of the bare-metal cluster manager (talks gRPC to any coordinator replica).',
    usage: 'clusterctl [global options] COMMAND [flags]',
    example: 'clusterctl status\nclusterctl nodes\nclusterctl --coordinator 10.0.0.5:7400 nodes -o wide\nclusterctl node describe node-1 -o yaml\nclusterctl node commission node-1 -g worker --wait',
    options: GLOBAL_OPTIONS,
    subcommands: [
      status, nodesGroup, nodeGroup, jobsGroup, jobGroup, bundlesGroup, bundleGroup, groupsGroup, groupGroup, globalGroup, configGroup, discoverCommand, filesGroup, execCommand, planCommand, applyCommand, events, dashboard,
      tokenGroup, userGroup, secretGroup, completionCommand(commandTree), completeNamesCommand, version,
    ],
  });
}
