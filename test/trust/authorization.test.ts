/** The role table: who may call what, by table, and the refusal messages. */
import { expect } from 'chai';
import { authorize, knownMethods, requirement, shortMethod, type Action } from '../../shared/pki/authorization';
import { PermissionDeniedError } from '../../shared/pki/errors';
import { ROLES, type Role } from '../../shared/pki/roles';

type Row = [Action, Role[]];
const USERS_FROM = { viewer: ['viewer', 'operator', 'admin'], operator: ['operator', 'admin'], admin: ['admin'] } as const;

const TABLE: Row[] = [
  [{ method: 'ClusterService/ListNodes' }, [...USERS_FROM.viewer]],
  [{ method: '/cluster.v1.ClusterService/GetStatus' }, [...USERS_FROM.viewer]],
  [{ method: 'ClusterService/WatchEvents' }, [...USERS_FROM.viewer]],
  [{ method: 'ClusterService/SetMaintenance' }, [...USERS_FROM.operator]],
  [{ method: 'ClusterService/SetLabels' }, [...USERS_FROM.operator]],
  [{ method: 'ClusterService/DeleteNode' }, [...USERS_FROM.operator]],
  [{ method: 'ClusterService/RefreshNodeFacts' }, [...USERS_FROM.operator]],
  [{ method: 'JobService/StartJob', kind: 'commission' }, [...USERS_FROM.operator]],
  [{ method: 'JobService/StartJob', kind: 'upgrade' }, [...USERS_FROM.operator]],
  [{ method: 'JobService/StartJob', kind: 'exec' }, [...USERS_FROM.admin]],
  [{ method: 'JobService/ListJobs' }, [...USERS_FROM.viewer]],
  [{ method: 'JobService/CancelJob' }, [...USERS_FROM.operator]],
  [{ method: 'JobService/PauseJob' }, [...USERS_FROM.operator]],
  [{ method: 'JobService/ResumeJob' }, [...USERS_FROM.operator]],
  [{ method: 'ConfigService/PushBundle' }, [...USERS_FROM.operator]],
  [{ method: 'ConfigService/PushBundle', commandUnits: true }, [...USERS_FROM.admin]],
  [{ method: 'ConfigService/PushBundle', secret: true }, [...USERS_FROM.admin]],
  [{ method: 'ConfigService/SetGroup' }, [...USERS_FROM.operator]],
  [{ method: 'ConfigService/SetGroup', secret: true }, [...USERS_FROM.admin]],
  [{ method: 'SecretService/SetSecret' }, [...USERS_FROM.admin]],
  [{ method: 'SecretService/ListSecrets' }, [...USERS_FROM.admin]],
  [{ method: 'SecretService/DeleteSecret' }, [...USERS_FROM.admin]],
  [{ method: 'SecretService/RotateKey' }, [...USERS_FROM.admin]],
  [{ method: 'ConfigService/DeleteBundle' }, [...USERS_FROM.operator]],
  [{ method: 'ConfigService/DeleteBundle', commandUnits: true }, [...USERS_FROM.admin]],
  [{ method: 'ConfigService/DeleteGroup' }, [...USERS_FROM.operator]],
  [{ method: 'ConfigService/GetGlobals' }, [...USERS_FROM.viewer]],
  [{ method: 'ClusterService/Discover' }, [...USERS_FROM.operator]],
  [{ method: 'ClusterService/DeletePreRegistered' }, [...USERS_FROM.operator]],
  [{ method: 'ConfigService/SetGlobals' }, [...USERS_FROM.operator]],
  [{ method: 'ConfigService/GetManagerConfig' }, [...USERS_FROM.viewer]],
  [{ method: 'ConfigService/SetManagerConfig' }, [...USERS_FROM.admin]],
  [{ method: 'ConfigService/GetBundle' }, [...USERS_FROM.viewer]],
  [{ method: 'FileService/Upload' }, [...USERS_FROM.operator]],
  [{ method: 'FileService/Upload', secret: true }, [...USERS_FROM.admin]],
  [{ method: 'FileService/Download' }, [...USERS_FROM.viewer]],
  [{ method: 'FileService/Download', secret: true }, [...USERS_FROM.admin]],
  [{ method: 'FileService/DeleteFile', secret: true }, [...USERS_FROM.admin]],
  [{ method: 'DeclarativeService/Plan' }, [...USERS_FROM.viewer]],
  [{ method: 'DeclarativeService/Apply' }, [...USERS_FROM.operator]],
  [{ method: 'DeclarativeService/Apply', commandUnits: true }, [...USERS_FROM.admin]],
  [{ method: 'PkiService/CreateToken' }, [...USERS_FROM.admin]],
  [{ method: 'PkiService/AddUser' }, [...USERS_FROM.admin]],
  [{ method: 'PkiService/RevokeNode' }, [...USERS_FROM.admin]],
  [{ method: 'AgentService/Connect' }, ['agent']],
  [{ method: 'PkiService/Renew' }, [...ROLES]],
  [{ method: '/grpc.health.v1.Health/Check' }, [...ROLES]],
  [{ method: '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo' }, [...ROLES]],
  [{ method: 'ClusterService/GetNode' }, [...USERS_FROM.viewer]],
  [{ method: 'ClusterService/GetNodeHistory' }, [...USERS_FROM.viewer]],
  [{ method: 'ClusterService/DiffNodes' }, [...USERS_FROM.viewer]],
  [{ method: 'ClusterService/WatchNodes' }, [...USERS_FROM.viewer]],
  [{ method: 'ClusterService/ListEvents' }, [...USERS_FROM.viewer]],
  [{ method: 'JobService/GetJob' }, [...USERS_FROM.viewer]],
  [{ method: 'JobService/WatchJob' }, [...USERS_FROM.viewer]],
  [{ method: 'ConfigService/ListBundles' }, [...USERS_FROM.viewer]],
  [{ method: 'ConfigService/GetGroup' }, [...USERS_FROM.viewer]],
  [{ method: 'ConfigService/ListGroups' }, [...USERS_FROM.viewer]],
  [{ method: 'FileService/ListFiles' }, [...USERS_FROM.viewer]],
  [{ method: 'FileService/DeleteFile' }, [...USERS_FROM.operator]],
  [{ method: 'PkiService/ListTokens' }, [...USERS_FROM.admin]],
  [{ method: 'PkiService/RevokeToken' }, [...USERS_FROM.admin]],
  [{ method: 'PkiService/ListUsers' }, [...USERS_FROM.admin]],
  [{ method: 'PkiService/RevokeUser' }, [...USERS_FROM.admin]],
  [{ method: 'Health/Watch' }, [...ROLES]],
  [{ method: 'SomeService/NotInTheTable' }, []],
];

describe('trust: role → method table', () => {
  for (const [action, allowed] of TABLE) {
    for (const role of ROLES) {
      const may = allowed.includes(role);
      it(`${role} ${may ? 'may' : 'may not'} ${JSON.stringify(action)}`, () => {
        const run = (): void => authorize({ role, name: 'x' }, action);
        if (may) expect(run).to.not.throw();
        else expect(run).to.throw(PermissionDeniedError, /^permission denied: /);
      });
    }
  }

  it('every method of the table has a row here', () => {
    const covered = new Set(TABLE.map(([a]) => shortMethod(a.method)));
    expect(knownMethods().filter((m) => !covered.has(m))).to.deep.equal([]);
  });

  it('the refusal names the role needed and who the caller is', () => {
    expect(() => authorize({ role: 'operator', name: 'alice' }, { method: '/cluster.v1.JobService/StartJob', kind: 'exec' }))
      .to.throw('permission denied: StartJob(kind=exec) needs the admin role; you are alice (operator)');
    expect(() => authorize({ role: 'viewer', name: 'bob' }, { method: 'FileService/Upload', secret: true }))
      .to.throw('permission denied: Upload(secret) needs the admin role; you are bob (viewer)');
    expect(() => authorize({ role: 'admin', name: 'root' }, { method: 'AgentService/Connect' }))
      .to.throw('permission denied: Connect needs an agent certificate; you are root (admin)');
    expect(() => authorize({ role: 'admin', name: 'root' }, { method: 'Nope/Nope' }))
      .to.throw('permission denied: Nope/Nope is not an allowed call');
  });

  it('shortMethod and requirement', () => {
    expect(shortMethod('/cluster.v1.JobService/StartJob')).to.equal('JobService/StartJob');
    expect(shortMethod('JobService/StartJob')).to.equal('JobService/StartJob');
    expect(requirement({ method: 'JobService/StartJob', kind: 'exec' })).to.deep.equal({ user: 'admin' });
    expect(requirement({ method: 'X/Y' })).to.equal(undefined);
  });
});
