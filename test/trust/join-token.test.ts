/** Join tokens: format, parse (with errors an operator can act on), hashing. */
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { formatJoinToken, generateJoinToken, parseJoinToken, hashTokenSecret, tokenSecretMatches, isTokenId } from '../../shared/pki/join-token';
import { InvalidArgumentError } from '../../shared/errors';

const HASH = 'ab'.repeat(32);

describe('trust: join tokens', () => {
  it('generate → format → parse round-trips', () => {
    const t = generateJoinToken(HASH);
    expect(t.id).to.match(/^[a-z0-9]{6}$/);
    expect(t.secret).to.match(/^[0-9a-f]{32}$/);
    const text = formatJoinToken(t);
    expect(text).to.equal(`K10${HASH}::${t.id}.${t.secret}`);
    expect(parseJoinToken(`  ${text}\n`)).to.deep.equal(t);
  });

  it('ids and secrets are random', () => {
    const tokens = Array.from({ length: 50 }, () => generateJoinToken(HASH));
    expect(new Set(tokens.map((t) => t.id)).size).to.be.greaterThan(45);
    expect(new Set(tokens.map((t) => t.secret)).size).to.equal(50);
  });

  const bad: [string, string, RegExp][] = [
    ['empty', '', /^not a join token: expected K10<ca hash>::<id>\.<secret>$/],
    ['a k3s-looking secret only', 'K10::abc', /CA hash must be 64 lower-case hex digits/],
    ['upper-case hash', `K10${HASH.toUpperCase()}::abc123.${'a'.repeat(16)}`, /CA hash must be 64/],
    ['short hash', `K10${'a'.repeat(63)}::abc123.${'a'.repeat(16)}`, /CA hash must be 64/],
    ['id too short', `K10${HASH}::abc12.${'a'.repeat(16)}`, /the id must be 6 of \[a-z0-9\]/],
    ['id with upper case', `K10${HASH}::ABC123.${'a'.repeat(16)}`, /the id must be 6/],
    ['secret too short', `K10${HASH}::abc123.${'a'.repeat(15)}`, /the secret 16 or more/],
    ['no dot', `K10${HASH}::abc123${'a'.repeat(16)}`, /the id must be 6/],
    ['another prefix', `K11${HASH}::abc123.${'a'.repeat(16)}`, /^not a join token/],
  ];
  for (const [name, text, re] of bad) {
    it(`refuses ${name}`, () => {
      expect(() => parseJoinToken(text)).to.throw(InvalidArgumentError, re);
    });
  }

  it('never echoes the secret in a refusal', () => {
    const secret = 'zzzzzzzzzzzzzzzzSECRET';
    try {
      parseJoinToken(`K10${HASH}::abc123.${secret}`);
      expect.fail('parsed');
    } catch (err) {
      expect((err as Error).message).to.not.include('SECRET').and.not.include('zzzz');
    }
  });

  it('stores sha256 of the secret and compares it in constant time', () => {
    const h = hashTokenSecret('s3cret-s3cret-00');
    expect(h).to.equal(createHash('sha256').update('s3cret-s3cret-00').digest('hex'));
    expect(tokenSecretMatches('s3cret-s3cret-00', h)).to.equal(true);
    expect(tokenSecretMatches('s3cret-s3cret-01', h)).to.equal(false);
    expect(tokenSecretMatches('s3cret-s3cret-00', 'abcd')).to.equal(false);
  });

  it('isTokenId', () => {
    expect(isTokenId('a1b2c3')).to.equal(true);
    for (const s of ['', 'a1b2c', 'a1b2c3d', 'A1B2C3', 'a1-2c3']) expect(isTokenId(s), s).to.equal(false);
  });
});
