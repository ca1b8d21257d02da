/**
 * Which role may call what (pure). Users' roles are ranked: viewer reads; operator also runs
 * lifecycle jobs, maintenance, labels, groups and plain bundles; admin also runs exec, tokens,
 * users, revocations, secret files and bundles with command units or secret content. Agents may only hold their
 * stream and renew; coordinators call nothing on behalf of people. A method missing from the
 * table is refused (deny by default), so a new RPC cannot ship unguarded.
 */
import { PermissionDeniedError } from './errors';
import type { PeerIdentity, Role, UserRole } from './roles';

/** A call, with the request facts that raise what it needs. */
export interface Action {
  /** `Service/Method` (short service name), e.g. `JobService/StartJob`. */
  method: string;
  /** StartJob's kind (`exec` needs admin). */
  kind?: string;
  /** A file marked secret (upload, download, delete), a bundle with secret content. */
  secret?: boolean;
  /** A bundle (or an applied cluster file) with command units. */
  commandUnits?: boolean;
}

/** What a method needs: the lowest user role, or one machine role. */
export type Requirement = { user: UserRole } | { machine: 'agent' | 'coordinator' } | { anyAuthenticated: true };

type Rule = (a: Action) => Requirement;
const user = (r: UserRole): Requirement => ({ user: r });
const fixed = (r: Requirement): Rule => () => r;

const RULES: Readonly<Record<string, Rule>> = {
  'AgentService/Connect': fixed({ machine: 'agent' }),
  // Renewal is open to any valid cluster identity: it re-issues the same identity only.
  'PkiService/Renew': fixed({ anyAuthenticated: true }),

  'ClusterService/ListNodes': fixed(user('viewer')),
  'ClusterService/GetNode': fixed(user('viewer')),
  'ClusterService/GetNodeHistory': fixed(user('viewer')),
  'ClusterService/DiffNodes': fixed(user('viewer')),
  'ClusterService/RefreshNodeFacts': fixed(user('operator')),
  'ClusterService/WatchNodes': fixed(user('viewer')),
  'ClusterService/ListEvents': fixed(user('viewer')),
  'ClusterService/WatchEvents': fixed(user('viewer')),
  'ClusterService/GetStatus': fixed(user('viewer')),
  'ClusterService/SetMaintenance': fixed(user('operator')),
  'ClusterService/SetLabels': fixed(user('operator')),
  'ClusterService/DeleteNode': fixed(user('operator')),
  'ClusterService/Discover': fixed(user('operator')),
  'ClusterService/DeletePreRegistered': fixed(user('operator')),

  'JobService/StartJob': (a) => user(a.kind === 'exec' ? 'admin' : 'operator'),
  'JobService/ListJobs': fixed(user('viewer')),
  'JobService/GetJob': fixed(user('viewer')),
  'JobService/WatchJob': fixed(user('viewer')),
  'JobService/CancelJob': fixed(user('operator')),
  'JobService/PauseJob': fixed(user('operator')),
  'JobService/ResumeJob': fixed(user('operator')),

  'ConfigService/PushBundle': (a) => user(a.commandUnits || a.secret ? 'admin' : 'operator'),
  'ConfigService/ListBundles': fixed(user('viewer')),
  'ConfigService/GetBundle': fixed(user('viewer')),
  // A new or changed secret variable is a secret: admin.
  'ConfigService/SetGroup': (a) => user(a.secret ? 'admin' : 'operator'),
  'ConfigService/GetGroup': fixed(user('viewer')),
  'ConfigService/ListGroups': fixed(user('viewer')),
  'ConfigService/DeleteBundle': (a) => user(a.commandUnits ? 'admin' : 'operator'),
  'ConfigService/DeleteGroup': fixed(user('operator')),
  'ConfigService/GetGlobals': fixed(user('viewer')),
  'ConfigService/SetGlobals': fixed(user('operator')),
  'ConfigService/GetManagerConfig': fixed(user('viewer')),
  'ConfigService/SetManagerConfig': fixed(user('admin')),

  'FileService/Upload': (a) => user(a.secret ? 'admin' : 'operator'),
  'FileService/ListFiles': fixed(user('viewer')),
  'FileService/Download': (a) => user(a.secret ? 'admin' : 'viewer'),
  'FileService/DeleteFile': (a) => user(a.secret ? 'admin' : 'operator'),

  'SecretService/SetSecret': fixed(user('admin')),
  'SecretService/ListSecrets': fixed(user('admin')),
  'SecretService/DeleteSecret': fixed(user('admin')),
  'SecretService/RotateKey': fixed(user('admin')),

  'DeclarativeService/Plan': fixed(user('viewer')),
  'DeclarativeService/Apply': (a) => user(a.commandUnits || a.secret ? 'admin' : 'operator'),

  'PkiService/CreateToken': fixed(user('admin')),
  'PkiService/ListTokens': fixed(user('admin')),
  'PkiService/RevokeToken': fixed(user('admin')),
  'PkiService/AddUser': fixed(user('admin')),
  'PkiService/ListUsers': fixed(user('admin')),
  'PkiService/RevokeUser': fixed(user('admin')),
  'PkiService/RevokeNode': fixed(user('admin')),

  // Health and reflection stay available to every authenticated client.
  'Health/Check': fixed({ anyAuthenticated: true }),
  'Health/Watch': fixed({ anyAuthenticated: true }),
  'ServerReflection/ServerReflectionInfo': fixed({ anyAuthenticated: true }),
};

const RANK: Readonly<Record<UserRole, number>> = { viewer: 1, operator: 2, admin: 3 };

/** `/cluster.v1.JobService/StartJob` → `JobService/StartJob` (the table's form). */
export function shortMethod(path: string): string {
  const m = /^\/?(?:[\w.]+\.)?(\w+)\/(\w+)$/.exec(path);
  return m ? `${m[1]}/${m[2]}` : path;
}

export function knownMethods(): string[] {
  return Object.keys(RULES);
}

/** What `action` needs, or undefined when the method is not in the table. */
export function requirement(action: Action): Requirement | undefined {
  const rule = RULES[shortMethod(action.method)];
  return rule?.(action);
}

export function satisfies(role: Role, req: Requirement): boolean {
  if ('anyAuthenticated' in req) return true;
  if ('machine' in req) return role === req.machine;
  return (role === 'viewer' || role === 'operator' || role === 'admin') && RANK[role] >= RANK[req.user];
}

function describe(action: Action): string {
  const name = shortMethod(action.method).split('/')[1] ?? action.method;
  const facts = [
    action.kind !== undefined ? `kind=${action.kind}` : undefined,
    action.secret ? 'secret' : undefined,
    action.commandUnits ? 'command units' : undefined,
  ].filter((s): s is string => s !== undefined);
  return facts.length > 0 ? `${name}(${facts.join(', ')})` : name;
}

function needs(req: Requirement): string {
  if ('user' in req) return `the ${req.user} role`;
  if ('machine' in req) return `${req.machine === 'agent' ? 'an' : 'a'} ${req.machine} certificate`;
  return 'a cluster certificate';
}

/**
 * Throws PermissionDeniedError unless `peer` may do `action`; the message names the role
 * needed and who the caller is, e.g. "permission denied: StartJob(kind=exec) needs the admin
 * role; you are alice (operator)".
 */
export function authorize(peer: Pick<PeerIdentity, 'role' | 'name'>, action: Action): void {
  const req = requirement(action);
  if (!req) throw new PermissionDeniedError(`permission denied: ${shortMethod(action.method)} is not an allowed call`);
  if (!satisfies(peer.role, req)) {
    throw new PermissionDeniedError(`permission denied: ${describe(action)} needs ${needs(req)}; you are ${peer.name} (${peer.role})`);
  }
}
