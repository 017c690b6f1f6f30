/** TLS material of an agent (--tls-ca, --tls-cert/--tls-key), read once at start and shared by both transports. */
import { readFileSync } from 'node:fs';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { FedgeError } from '@fedge/proto';

/** PEM bytes. No `ca`: the system's root CAs. `cert` and `key` together: a client certificate (mutual TLS). */
export interface ClientTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** Errors name the flag and the path, never the content: a key file's bytes must not reach a log. */
function readPem(flag: string, file: string): Buffer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new FedgeError('E_TLS', `${flag} ${file}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (!bytes.includes('-----BEGIN ')) throw new FedgeError('E_TLS', `${flag} ${file}: not a PEM file (expected a -----BEGIN ...----- block)`);
  return bytes;
}

function checkCert(flag: string, file: string, pem: Buffer): void {
  try {
    new X509Certificate(pem);
  } catch (err) {
    throw new FedgeError('E_TLS', `${flag} ${file}: not a valid PEM certificate (${(err as Error).message})`);
  }
}

/** Undefined when no file is given; a half-given client pair or a key not matching its certificate is an error. */
export function loadClientTls(files: { ca?: string | undefined; cert?: string | undefined; key?: string | undefined }): ClientTls | undefined {
  const out: ClientTls = {};
  if (files.ca) {
    out.ca = readPem('--tls-ca', files.ca);
    checkCert('--tls-ca', files.ca, out.ca);
  }
  if (!!files.cert !== !!files.key) throw new FedgeError('E_TLS', files.cert ? '--tls-cert was given without --tls-key' : '--tls-key was given without --tls-cert');
  if (files.cert && files.key) {
    const cert = readPem('--tls-cert', files.cert);
    checkCert('--tls-cert', files.cert, cert);
    const key = readPem('--tls-key', files.key);
    try {
      createPrivateKey(key);
    } catch {
      throw new FedgeError('E_TLS', `--tls-key ${files.key}: not a valid unencrypted PEM private key`);
    }
    try {
      createSecureContext({ cert, key });
    } catch {
      throw new FedgeError('E_TLS', `--tls-key ${files.key} does not belong to the certificate in --tls-cert ${files.cert}`);
    }
    out.cert = cert;
    out.key = key;
  }
  return out.ca || out.cert ? out : undefined;
}
