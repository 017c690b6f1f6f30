/** Options and helpers shared by the admin commands. */
import { Command, Option } from 'commander';
import { AdminClient, DEFAULT_COORDINATOR } from '../admin-client.js';
import { parseFormat, type OutputFormat } from '../format.js';

export interface AdminOpts { coordinator: string; format: OutputFormat; tlsCa?: string }

export function withAdminOptions(cmd: Command): Command {
  return cmd
    .option('--coordinator <host:port>', 'coordinator address (env FEDGE_COORDINATOR); grpcs://HOST:PORT for TLS', process.env.FEDGE_COORDINATOR ?? DEFAULT_COORDINATOR)
    .option('--tls-ca <file>', 'PEM CA that signed the coordinator\'s certificate; implies TLS (env FEDGE_TLS_CA)', process.env.FEDGE_TLS_CA)
    .addOption(new Option('--format <format>', 'output format: table or json').default('table').argParser(parseFormat));
}

export async function withClient<T>(opts: AdminOpts, fn: (c: AdminClient) => Promise<T>): Promise<T> {
  const c = new AdminClient(opts.coordinator, undefined, opts.tlsCa ?? process.env.FEDGE_TLS_CA);
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}
