/** TLS material for the coordinator's listeners (fedge serve --tls-*) and the admin CLI (--tls-ca), read and checked once. */
import { readFileSync } from 'node:fs';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { FedgeError } from '@fedge/proto';

/** PEM bytes of the server's certificate chain and key, and of the CA client certificates must chain to (mTLS). */
export interface ServerTls {
  cert: Buffer;
  key: Buffer;
  /** Present: clients must present a certificate signed by this CA (mutual TLS). */
  clientCa?: Buffer;
}

export interface ServerTlsFiles {
  cert?: string | undefined;
  key?: string | undefined;
  clientCa?: string | undefined;
}

/**
 * Reads a PEM file for `flag`. Errors name the flag and the path, never the content: a key file's bytes must
 * not reach a log or a terminal.
 */
export function readPemFile(flag: string, file: string): Buffer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new FedgeError('E_TLS', `${flag} ${file}: cannot read the file (${code ?? (err as Error).message})`);
  }
  if (!bytes.includes('-----BEGIN ')) throw new FedgeError('E_TLS', `${flag} ${file}: not a PEM file (expected a -----BEGIN ...----- block)`);
  return bytes;
}

function checkCertificates(flag: string, file: string, pem: Buffer): void {
  try {
    new X509Certificate(pem);
  } catch (err) {
    throw new FedgeError('E_TLS', `${flag} ${file}: not a valid PEM certificate (${(err as Error).message})`);
  }
}

/**
 * Loads --tls-cert/--tls-key/--tls-client-ca. Returns undefined when none is given (plaintext); a half-given pair,
 * an unreadable file or a key that does not belong to the certificate is an error naming the flag.
 */
export function loadServerTls(files: ServerTlsFiles): ServerTls | undefined {
  const { cert: certFile, key: keyFile, clientCa: caFile } = files;
  if (!certFile && !keyFile) {
    if (caFile) throw new FedgeError('E_TLS', '--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is on top of TLS)');
    return undefined;
  }
  if (!certFile) throw new FedgeError('E_TLS', '--tls-key was given without --tls-cert (env FEDGE_TLS_CERT)');
  if (!keyFile) throw new FedgeError('E_TLS', '--tls-cert was given without --tls-key (env FEDGE_TLS_KEY)');
  const cert = readPemFile('--tls-cert', certFile);
  checkCertificates('--tls-cert', certFile, cert);
  const key = readPemFile('--tls-key', keyFile);
  try {
    createPrivateKey(key);
  } catch {
    // The parser's message may quote the input; ours does not.
    throw new FedgeError('E_TLS', `--tls-key ${keyFile}: not a valid unencrypted PEM private key`);
  }
  try {
    // OpenSSL checks that the key matches the certificate's public key here, before any client connects.
    createSecureContext({ cert, key });
  } catch (err) {
    const mismatch = /mismatch/i.test((err as Error).message);
    throw new FedgeError('E_TLS', mismatch
      ? `--tls-key ${keyFile} does not belong to the certificate in --tls-cert ${certFile}`
      : `--tls-cert ${certFile} / --tls-key ${keyFile}: unusable (${(err as Error).message})`);
  }
  if (!caFile) return { cert, key };
  const clientCa = readPemFile('--tls-client-ca', caFile);
  checkCertificates('--tls-client-ca', caFile, clientCa);
  return { cert, key, clientCa };
}

/**
 * The admin CLI's client side: --tls-ca (a private CA; absent: the system's) and, for a coordinator requiring
 * mutual TLS, --tls-cert/--tls-key. Undefined when no file is given.
 */
export function loadClientTls(files: { ca?: string | undefined; cert?: string | undefined; key?: string | undefined }): { ca?: Buffer; cert?: Buffer; key?: Buffer } | undefined {
  const ca = loadCaFile(files.ca);
  if (!files.cert && !files.key) return ca ? { ca } : undefined;
  if (!files.cert || !files.key) throw new FedgeError('E_TLS', files.cert ? '--tls-cert was given without --tls-key' : '--tls-key was given without --tls-cert');
  const pair = loadServerTls({ cert: files.cert, key: files.key })!;
  return { ...(ca ? { ca } : {}), cert: pair.cert, key: pair.key };
}

/** Reads --tls-ca for the admin CLI; undefined when not given. */
export function loadCaFile(file: string | undefined, flag = '--tls-ca'): Buffer | undefined {
  if (!file) return undefined;
  const ca = readPemFile(flag, file);
  checkCertificates(flag, file, ca);
  return ca;
}
