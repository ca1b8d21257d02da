/**
 * The agent side of a join or a renewal: a new ECDSA P-256 key made on this machine (it never
 * leaves it) and a PKCS#10 certificate request for it (RFC 2986), signed with ECDSA-SHA256.
 *
 * Written with node:crypto and a few lines of DER rather than @peculiar/x509: the request is one
 * fixed shape (a CN, the public key, no attributes), and loading x509 with its ASN.1 schemas,
 * tsyringe and reflect-metadata (about 200 modules, which reflect-metadata pins for good by
 * patching the global Reflect) cost every agent that joined or renewed in this process ~3.3 MiB
 * of resident memory for the rest of its life (bench/README.md, "The agent's own cost"). The
 * coordinator still reads and verifies requests with x509 (cluster-ca.ts readCsr), and the CA
 * decides the identity: the subject here is informational.
 */
import { generateKeyPair, sign, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { isValidSegment } from '../keyspace';
import { InvalidArgumentError } from '../errors';

const generateKeyPairAsync = promisify(generateKeyPair);

/** 2.5.4.3 commonName */
const OID_COMMON_NAME = Buffer.from([0x06, 0x03, 0x55, 0x04, 0x03]);
/** 1.2.840.10045.4.3.2 ecdsa-with-SHA256 */
const OID_ECDSA_WITH_SHA256 = Buffer.from([0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]);

const SEQUENCE = 0x30;
const SET = 0x31;
const UTF8_STRING = 0x0c;
const BIT_STRING = 0x03;
/** [0] IMPLICIT, constructed: the request's attributes. */
const ATTRIBUTES = 0xa0;
const VERSION_1 = Buffer.from([0x02, 0x01, 0x00]);

/** One DER element: tag, definite length (short or long form), contents. */
export function derElement(tag: number, ...contents: Buffer[]): Buffer {
  const body = Buffer.concat(contents);
  let length: Buffer;
  if (body.length < 0x80) {
    length = Buffer.from([body.length]);
  } else {
    const bytes: number[] = [];
    for (let n = body.length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n % 256);
    length = Buffer.from([0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([Buffer.from([tag]), length, body]);
}

function pem(der: Buffer, label: string): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** A PKCS#10 request for `publicKey`, subject CN=`name`, signed by `privateKey`. */
export function certificateRequestDer(name: string, publicKey: KeyObject, privateKey: KeyObject): Buffer {
  const subject = derElement(SEQUENCE, derElement(SET, derElement(SEQUENCE, OID_COMMON_NAME, derElement(UTF8_STRING, Buffer.from(name, 'utf8')))));
  const info = derElement(SEQUENCE, VERSION_1, subject, publicKey.export({ type: 'spki', format: 'der' }), derElement(ATTRIBUTES));
  // Node signs ECDSA as the DER SEQUENCE { r, s } that X.509 expects (dsaEncoding 'der').
  const signature = sign('sha256', info, privateKey);
  return derElement(SEQUENCE, info, derElement(SEQUENCE, OID_ECDSA_WITH_SHA256), derElement(BIT_STRING, Buffer.from([0]), signature));
}

export async function createKeyAndCsr(name: string): Promise<{ keyPem: string; csrPem: string }> {
  if (!isValidSegment(name)) throw new InvalidArgumentError(`invalid name ${JSON.stringify(name)} for a CSR`);
  const { publicKey, privateKey } = await generateKeyPairAsync('ec', { namedCurve: 'P-256' });
  return {
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    csrPem: pem(certificateRequestDer(name, publicKey, privateKey), 'CERTIFICATE REQUEST'),
  };
}
