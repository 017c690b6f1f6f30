/**
 * TLS files as every fedge process reads them (coordinator listeners, agents, admin CLI): PEM read once, checked at
 * start, errors naming the flag and the path but never the content (a key file's bytes must not reach a log).
 */
import { readFileSync } from 'node:fs';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { FedgeError } from './errors.js';

/** PEM bytes. No `ca`: the system's root CAs. `cert` and `key` together: a client certificate (mutual TLS). */
export interface ClientTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** Reads a PEM file given by `flag`. */
export function readPemFile(flag: string, file: string): Buffer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new FedgeError('E_TLS', `${flag} ${file}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (!bytes.includes('-----BEGIN ')) throw new FedgeError('E_TLS', `${flag} ${file}: not a PEM file (expected a -----BEGIN ...----- block)`);
  return bytes;
}

/** Reads and parses a PEM certificate (or CA bundle) given by `flag`. */
export function readCertificateFile(flag: string, file: string): Buffer {
  const pem = readPemFile(flag, file);
  try {
    new X509Certificate(pem);
  } catch (err) {
    throw new FedgeError('E_TLS', `${flag} ${file}: not a valid PEM certificate (${(err as Error).message})`);
  }
  return pem;
}

/** Reads a certificate and its private key, and checks that they belong together, before anything connects. */
export function readCertKeyPair(certFlag: string, certFile: string, keyFlag: string, keyFile: string): { cert: Buffer; key: Buffer } {
  const cert = readCertificateFile(certFlag, certFile);
  const key = readPemFile(keyFlag, keyFile);
  try {
    createPrivateKey(key);
  } catch {
    // The parser's message may quote the input; ours does not.
    throw new FedgeError('E_TLS', `${keyFlag} ${keyFile}: not a valid unencrypted PEM private key`);
  }
  try {
    // OpenSSL checks that the key matches the certificate's public key here.
    createSecureContext({ cert, key });
  } catch (err) {
    const mismatch = /mismatch/i.test((err as Error).message);
    throw new FedgeError('E_TLS', mismatch
      ? `${keyFlag} ${keyFile} does not belong to the certificate in ${certFlag} ${certFile}`
      : `${certFlag} ${certFile} / ${keyFlag} ${keyFile}: unusable (${(err as Error).message})`);
  }
  return { cert, key };
}

/**
 * The client side (agents, admin CLI): --tls-ca (a private CA; absent: the system's) and, for a coordinator
 * requiring mutual TLS, --tls-cert/--tls-key. Undefined when no file is given.
 */
export function loadClientTls(files: { ca?: string | undefined; cert?: string | undefined; key?: string | undefined }): ClientTls | undefined {
  const out: ClientTls = {};
  if (files.ca) out.ca = readCertificateFile('--tls-ca', files.ca);
  if (!!files.cert !== !!files.key) throw new FedgeError('E_TLS', files.cert ? '--tls-cert was given without --tls-key' : '--tls-key was given without --tls-cert');
  if (files.cert && files.key) Object.assign(out, readCertKeyPair('--tls-cert', files.cert, '--tls-key', files.key));
  return out.ca || out.cert ? out : undefined;
}
