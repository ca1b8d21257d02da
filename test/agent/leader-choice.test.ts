import { expect } from 'chai';
import { chooseLeader, type ElectionCandidate } from '../../agent/coordinator-link';
import { Keyspace } from '../../shared/keyspace';

const ks = new Keyspace('/t/');
const cand = (id: string, rev: string, value?: unknown): ElectionCandidate => ({
  key: ks.electionCandidate(id),
  createRevision: rev,
  value: typeof value === 'string' ? value : JSON.stringify(value ?? { id, address: `127.0.0.1:${7000 + Number(rev) % 1000}`, startedAt: '2024-01-01T00:00:00Z' }),
});

describe('agent leader choice', () => {
  const cases: { name: string; input: ElectionCandidate[]; leader?: { id: string; address?: string }; problem?: RegExp }[] = [
    { name: 'no candidates', input: [], problem: /no coordinator has been elected/ },
    { name: 'one candidate', input: [cand('a', '5')], leader: { id: 'a', address: '127.0.0.1:7005' } },
    { name: 'lowest create revision wins, whatever the order', input: [cand('b', '12'), cand('a', '9'), cand('c', '30')], leader: { id: 'a' } },
    { name: 'numeric, not lexical, comparison', input: [cand('x', '100'), cand('y', '99')], leader: { id: 'y' } },
    { name: 'revisions beyond 2^53', input: [cand('x', '9007199254740993'), cand('y', '9007199254740992')], leader: { id: 'y' } },
    { name: 'keys outside the election prefix are ignored', input: [{ ...cand('a', '1'), key: '/t/other/a' }, cand('b', '2')], leader: { id: 'b' } },
    { name: 'malformed leader record: no leader, not the next candidate', input: [cand('a', '1', 'not json'), cand('b', '2')], problem: /election record .*\/a is not JSON/ },
    { name: 'leader record without address', input: [cand('a', '1', { id: 'a' }), cand('b', '2')], problem: /no valid "address"/ },
    { name: 'leader record with a bad address', input: [cand('a', '1', { id: 'a', address: 'http://x' })], problem: /no valid "address"/ },
    { name: 'id falls back to the key', input: [cand('k1', '3', { address: 'coord-1:7400' })], leader: { id: 'k1', address: 'coord-1:7400' } },
    { name: 'IPv6 address', input: [cand('a', '3', { id: 'a', address: '[::1]:7400' })], leader: { id: 'a', address: '[::1]:7400' } },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const choice = chooseLeader(c.input, ks);
      if (c.problem) {
        expect(choice.leader).to.equal(undefined);
        expect(choice.problem).to.match(c.problem);
        return;
      }
      expect(choice.problem).to.equal(undefined);
      expect(choice.leader?.id).to.equal(c.leader?.id);
      if (c.leader?.address) expect(choice.leader?.address).to.equal(c.leader.address);
    });
  }
});
