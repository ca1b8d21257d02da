/**
 * Who this agent is: a node id that survives reinstalls of the agent (the machine's own
 * identity), the boot id that changes on every boot (the coordinator re-verifies a node that
 * rebooted), and an instance id that changes on every process start (a restart is told apart
 * from a reconnect).
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { InvalidArgumentError } from '../shared/errors';
import { isValidSegment } from '../shared/keyspace';

export const MACHINE_ID_FILE = '/etc/machine-id';
export const DMI_UUID_FILE = '/sys/class/dmi/id/product_uuid';
export const BOOT_ID_FILE = '/proc/sys/kernel/random/boot_id';

export interface NodeIdentity {
  nodeId: string;
  /** Where the node id came from, for the start-up log. */
  nodeIdSource: 'flag' | 'machine-id' | 'dmi-uuid';
  bootId: string;
  hostname: string;
  instanceId: string;
}

export interface IdentityInputs {
  nodeId?: string;
  bootId?: string;
  hostname?: string;
}

/** Reads a small system file; returns undefined when it is missing or unreadable. Injected in tests. */
export type FileReader = (path: string) => string | undefined;

export const readSystemFile: FileReader = (path) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};

export interface IdentityEnvironment {
  readFile: FileReader;
  hostname: () => string;
  randomId: () => string;
}

export const systemIdentityEnvironment: IdentityEnvironment = {
  readFile: readSystemFile,
  hostname: osHostname,
  randomId: randomUUID,
};

/** An all-zero or all-F UUID is what broken firmware reports; it identifies nothing. */
function isPlaceholderId(id: string): boolean {
  const hex = id.replace(/-/g, '');
  return /^0+$/.test(hex) || /^f+$/i.test(hex);
}

function firstLine(text: string | undefined): string {
  return (text ?? '').split('\n')[0].trim();
}

const SEGMENT_RULE = '1-253 characters from A-Z a-z 0-9 . _ : - starting with a letter or digit';

export function resolveIdentity(inputs: IdentityInputs, env: IdentityEnvironment = systemIdentityEnvironment): NodeIdentity {
  let nodeId: string;
  let nodeIdSource: NodeIdentity['nodeIdSource'];
  if (inputs.nodeId !== undefined) {
    nodeId = inputs.nodeId.trim();
    nodeIdSource = 'flag';
    if (!isValidSegment(nodeId)) {
      throw new InvalidArgumentError(`invalid --node-id ${JSON.stringify(inputs.nodeId)}: use ${SEGMENT_RULE}`);
    }
  } else {
    const machineId = firstLine(env.readFile(MACHINE_ID_FILE));
    // DMI UUIDs are upper-case on some vendors and lower-case on others; one spelling per machine.
    const dmi = firstLine(env.readFile(DMI_UUID_FILE)).toLowerCase();
    if (machineId && isValidSegment(machineId) && !isPlaceholderId(machineId)) {
      nodeId = machineId;
      nodeIdSource = 'machine-id';
    } else if (dmi && isValidSegment(dmi) && !isPlaceholderId(dmi)) {
      nodeId = dmi;
      nodeIdSource = 'dmi-uuid';
    } else {
      throw new InvalidArgumentError(
        `cannot determine a node id: ${MACHINE_ID_FILE} and ${DMI_UUID_FILE} are missing, empty or invalid; pass --node-id ID (or CLUSTER_NODE_ID)`,
      );
    }
  }

  let bootId: string;
  if (inputs.bootId !== undefined) {
    bootId = inputs.bootId.trim();
    if (bootId.length === 0) throw new InvalidArgumentError('--boot-id must not be empty');
  } else {
    // Without a boot id (not Linux) a per-process id is the honest fallback: every start then
    // looks like a reboot, which only costs a re-verification.
    bootId = firstLine(env.readFile(BOOT_ID_FILE)) || `unknown-${env.randomId()}`;
  }

  const hostname = (inputs.hostname ?? env.hostname()).trim();
  if (hostname.length === 0) throw new InvalidArgumentError('--hostname must not be empty');

  return { nodeId, nodeIdSource, bootId, hostname, instanceId: env.randomId() };
}
