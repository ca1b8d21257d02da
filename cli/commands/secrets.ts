/**
 * `clusterctl secret` (admin role, docs/secrets.md): named secrets, e.g. registry credentials
 * (Clusterlite's `login`), and the rotation of the key that encrypts every secret at rest.
 *
 *   clusterctl secret set registry/HOST --username USER < password   stores an auth.json for HOST
 *   clusterctl secret set NAME [--from-file FILE]                     stores FILE's bytes (or stdin's)
 *   clusterctl secret list | secret rm NAME
 *   clusterctl secrets rotate-key
 *
 * A value is read from a file or stdin, never from the command line (cli/secret-input.ts says why).
 */
import type { SecretInfo__Output } from '../../generated/cluster/v1/SecretInfo';
import { InvalidArgumentError } from '../../shared/errors';
import { defineCommand, EXIT } from '../command';
import type { CliContext } from '../context';
import { formatTable, orDash } from '../output';
import { readSecretFile } from '../secret-input';
import { printResult } from './print';

function secretObject(s: SecretInfo__Output): Record<string, unknown> {
  return { name: s.name, updatedAt: s.updatedAt, keyId: s.keyId };
}

/** A registry credential as containers-auth.json (podman, skopeo, buildah; docker's config.json `auths` too). Pure. */
export function registryAuth(host: string, username: string, password: string): string {
  return `${JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${username}:${password}`).toString('base64') } } })}\n`;
}

const SET_OPTIONS = {
  fromFile: { kind: 'string', placeholder: 'FILE', description: 'read the value from FILE (default: stdin)' },
  username: { kind: 'string', placeholder: 'USER', description: 'registry/HOST only: store an auth.json for HOST with this user; the value read is the password or token' },
} as const;

const secretSet = defineCommand<CliContext, typeof SET_OPTIONS>({
  name: 'set',
  aliases: ['create', 'login'],
  summary: 'Store a named secret, encrypted (value from a file or stdin, never the command line)',
  usage: 'secret set NAME|registry/HOST [--from-file FILE] [--username USER]',
  example: 'clusterctl secret set registry/registry.example.com --username ci < ./token\n' +
    'clusterctl secret set api-key --from-file ./api-key\n' +
    '# in a bundle: { kind: file, path: /etc/containers/auth.json, source: "secret:registry/registry.example.com" }',
  options: SET_OPTIONS,
  maxPositionals: 1,
  minPositionals: { count: 1, message: 'secret set needs a NAME (or registry/HOST)' },
  async run({ values, positionals, context }) {
    const name = positionals[0];
    let value = readSecretFile(values.fromFile ?? '-', `secret ${name}`);
    if (values.username !== undefined) {
      if (!name.startsWith('registry/')) throw new InvalidArgumentError('--username is for registry credentials: name the secret registry/HOST');
      const password = value.toString('utf8').replace(/\r?\n$/, '');
      if (!password) throw new InvalidArgumentError(`secret ${name}: the password read is empty`);
      value = Buffer.from(registryAuth(name.slice('registry/'.length), values.username, password));
    }
    const info = await context.client.setSecret(name, value);
    printResult(context, secretObject(info), () => `secret ${info.name} stored (encrypted with key ${info.keyId})\n`);
    return EXIT.ok;
  },
});

const secretList = defineCommand<CliContext, Record<string, never>>({
  name: 'list',
  aliases: ['ls'],
  summary: 'List named secrets (names and key ids only; values are never shown)',
  usage: 'secret [list] [-o table|json|yaml]',
  example: 'clusterctl secret list',
  async run({ context }) {
    const list = await context.client.listSecrets();
    if (list.length === 0 && (context.format === 'table' || context.format === 'wide')) {
      context.note('no secrets yet (store one with: clusterctl secret set NAME < FILE)');
      return EXIT.ok;
    }
    printResult(context, list.map(secretObject), () => formatTable(['NAME', 'KEY', 'UPDATED'], list.map((s) => [s.name, s.keyId, orDash(s.updatedAt)])));
    return EXIT.ok;
  },
});

const secretRm = defineCommand<CliContext, Record<string, never>>({
  name: 'rm',
  aliases: ['delete', 'remove', 'logout'],
  summary: 'Delete a named secret (a bundle still naming it fails at its next command)',
  usage: 'secret rm NAME',
  example: 'clusterctl secret rm registry/registry.example.com',
  maxPositionals: 1,
  minPositionals: { count: 1, message: 'secret rm needs a NAME' },
  async run({ positionals, context }) {
    const info = await context.client.deleteSecret(positionals[0]);
    context.out.write(`secret ${info.name} deleted\n`);
    return EXIT.ok;
  },
});

const rotateKey = defineCommand<CliContext, Record<string, never>>({
  name: 'rotate-key',
  summary: 'Make a new encryption key active, re-encrypt every secret under it, then drop the old keys',
  usage: 'secrets rotate-key',
  example: 'clusterctl secrets rotate-key',
  async run({ context }) {
    const r = await context.client.rotateKey();
    printResult(context, { ...r }, () =>
      `key ${r.oldKeyIds || '(none)'} → ${r.newKeyId}: ${r.valuesReencrypted} value(s) in ${r.keysRewritten} key(s) re-encrypted, ${r.keysDropped} old key(s) dropped\n`);
    return EXIT.ok;
  },
});

export const secretGroup = defineCommand<CliContext, Record<string, never>>({
  name: 'secret',
  aliases: ['secrets'],
  summary: 'Named secrets (registry credentials) and the rotation of the key that encrypts secrets at rest (admin)',
  usage: 'secret [list|set|rm|rotate-key] [flags]',
  example: 'clusterctl secret set registry/registry.example.com --username ci < ./token\nclusterctl secret list\nclusterctl secrets rotate-key',
  subcommands: [secretList, secretSet, secretRm, rotateKey],
  defaultSubcommand: 'list',
});
