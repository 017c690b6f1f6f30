/** TLS material for the coordinator's listeners (fedge serve --tls-*), read and checked once at start. */
import { FedgeError, readCertKeyPair, readCertificateFile } from '@fedge/proto';

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
  const { cert, key } = readCertKeyPair('--tls-cert', certFile, '--tls-key', keyFile);
  if (!caFile) return { cert, key };
  return { cert, key, clientCa: readCertificateFile('--tls-client-ca', caFile) };
}
