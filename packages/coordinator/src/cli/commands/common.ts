/** Options and helpers shared by the admin commands. */
import { Command, Option } from 'commander';
import { AdminClient, DEFAULT_COORDINATOR } from '../admin-client.js';
import { parseFormat, type OutputFormat } from '../format.js';

export interface AdminOpts { coordinator: string; format: OutputFormat; tlsCa?: string; tlsCert?: string; tlsKey?: string }

/**
 * How a command reaches the coordinator: every command that talks to it takes these (an mTLS coordinator needs the
 * client certificate on all of them). `what` says when the address is used, e.g. 'for --run'.
 */
export function withConnectionOptions(cmd: Command, what = ''): Command {
  const when = what ? ` ${what}` : '';
  return cmd
    .option('--coordinator <host:port>', `coordinator address${when} (env FEDGE_COORDINATOR); grpcs://HOST:PORT for TLS`, process.env.FEDGE_COORDINATOR ?? DEFAULT_COORDINATOR)
    .option('--tls-ca <file>', 'PEM CA that signed the coordinator\'s certificate; implies TLS (env FEDGE_TLS_CA)', process.env.FEDGE_TLS_CA)
    // No env fallback: FEDGE_TLS_CERT/FEDGE_TLS_KEY are fedge serve's own certificate.
    .option('--tls-cert <file>', 'PEM client certificate, for a coordinator requiring mutual TLS (with --tls-key)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert');
}

export function withAdminOptions(cmd: Command): Command {
  return withConnectionOptions(cmd).addOption(new Option('--format <format>', 'output format: table or json').default('table').argParser(parseFormat));
}

export async function withClient<T>(opts: AdminOpts, fn: (c: AdminClient) => Promise<T>): Promise<T> {
  const c = new AdminClient(opts.coordinator, undefined, { ca: opts.tlsCa ?? process.env.FEDGE_TLS_CA, cert: opts.tlsCert, key: opts.tlsKey });
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}
