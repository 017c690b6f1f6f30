/**
 * The agent's status report (Report RPC / MQTT `report`): built from section providers every heartbeat and whenever
 * poke() says something changed; the coordinator's reply goes to the reply listeners (e.g. the fleet drift reference).
 */
import {
  MAX_REPORT_BODY_CHARS,
  parseReportBody,
  parseReportReplyBody,
  type ReportBody,
  type ReportReplyBody,
  type ReportSectionName,
} from '@fedge/proto';
import type { CoordinatorConnection } from './transport/connection.js';
import type { Session } from './executor.js';
import { moduleLogger } from './log.js';

const log = moduleLogger('reporter');

/**
 * Every heartbeat a report goes out even if nothing changed (a serving agent's reply may bring a new fleet drift
 * reference), except an empty one already accepted on this session: an agent that serves nothing has nothing to say,
 * its liveness is the transport's (task stream, MQTT keepalive) and a restarted coordinator gets a report on the new
 * session's attach. At 10,000 idle training agents those empty heartbeats were most of a coordinator's idle CPU.
 */
export const REPORT_INTERVAL_MS = 15_000;
const EMPTY_BODY = '{}';

type Provider<K extends ReportSectionName> = () => ReportBody[K] | undefined;

export class Reporter {
  private readonly providers = new Map<ReportSectionName, Provider<ReportSectionName>>();
  /** Sections sent once (a training profile): kept until a report carrying them is accepted. */
  private readonly pending = new Map<ReportSectionName, unknown>();
  private readonly listeners: ((reply: ReportReplyBody) => void)[] = [];
  private link: { conn: CoordinatorConnection; session: Session; timer: NodeJS.Timeout } | undefined;
  private chain: Promise<void> = Promise.resolve();
  private queued = false;
  /** The body the coordinator last accepted on this link (reset on attach): an empty one is not repeated by heartbeats. */
  private lastAccepted: string | undefined;
  /** The queued report is a heartbeat only (a poke meanwhile makes it a report that goes out whatever it holds). */
  private queuedHeartbeat = false;
  /** Reports the coordinator accepted (tests, the agent's metrics). */
  sent = 0;

  constructor(private readonly intervalMs = REPORT_INTERVAL_MS) {}

  /** Registers the provider of a section, called for every report; undefined leaves the section out. */
  section<K extends ReportSectionName>(name: K, provider: Provider<K>): this {
    if (this.providers.has(name)) throw new Error(`report section "${name}" already has a provider`);
    this.providers.set(name, provider as Provider<ReportSectionName>);
    return this;
  }

  /** Sends `value` as section `name` in the next report (replacing one not yet sent), then forgets it. */
  once<K extends ReportSectionName>(name: K, value: NonNullable<ReportBody[K]>): void {
    this.pending.set(name, value);
    this.poke();
  }

  onReply(fn: (reply: ReportReplyBody) => void): void {
    this.listeners.push(fn);
  }

  /** Starts reporting on a new session: one report now, then every heartbeat. */
  attach(conn: CoordinatorConnection, session: Session): void {
    this.detach();
    this.lastAccepted = undefined;
    const timer = setInterval(() => this.heartbeat(), this.intervalMs);
    timer.unref();
    this.link = { conn, session, timer };
    this.poke();
  }

  detach(): void {
    if (this.link) clearInterval(this.link.timer);
    this.link = undefined;
  }

  /** Something in a section changed: report soon. Reports go one at a time, in order; pokes meanwhile make one more. */
  poke(): void {
    this.queue(false);
  }

  private heartbeat(): void {
    this.queue(true);
  }

  private queue(heartbeat: boolean): void {
    if (!this.link) return;
    if (this.queued) {
      this.queuedHeartbeat &&= heartbeat;
      return;
    }
    this.queued = true;
    this.queuedHeartbeat = heartbeat;
    this.chain = this.chain.then(async () => {
      this.queued = false;
      await this.send(this.queuedHeartbeat);
    });
  }

  /** Resolves when the reports asked for so far have been sent (or failed). */
  flush(): Promise<void> {
    return this.chain;
  }

  /** The body as it would be sent now, not yet validated (valid() checks it). */
  private body(): { json: string; once: [ReportSectionName, unknown][] } {
    const body: Record<string, unknown> = {};
    for (const [name, p] of this.providers) {
      const v = p();
      if (v !== undefined) body[name] = v;
    }
    const once = [...this.pending.entries()];
    for (const [name, v] of once) body[name] = v;
    let json = JSON.stringify(body);
    if (json.length > MAX_REPORT_BODY_CHARS) {
      // The one-shot sections (profiles) are the large ones: drop them rather than the status.
      log.warn({ chars: json.length, limit: MAX_REPORT_BODY_CHARS, dropped: once.map(([n]) => n) }, 'report body over the limit; one-shot sections dropped');
      for (const [name] of once) {
        delete body[name];
        this.pending.delete(name);
      }
      json = JSON.stringify(body);
    }
    return { json, once: once.filter(([n]) => n in body) };
  }

  /** A provider's bug is logged, not sent. */
  private valid(json: string): boolean {
    try {
      parseReportBody(json);
      return true;
    } catch (err) {
      log.error({ err: (err as Error).message }, 'report body does not match its schema; not sent');
      return false;
    }
  }

  private async send(heartbeat: boolean): Promise<void> {
    const link = this.link;
    if (!link) return;
    const b = this.body();
    // Decided before validating: an idle agent's skipped heartbeat costs its providers and no schema check.
    if (heartbeat && b.json === EMPTY_BODY && this.lastAccepted === EMPTY_BODY) return;
    if (!this.valid(b.json)) return;
    try {
      const r = await link.conn.report({ agentId: link.session.agentId, sessionToken: link.session.sessionToken, bodyJson: b.json });
      this.sent++;
      if (this.link === link) this.lastAccepted = b.json;
      // Unless a newer value replaced it meanwhile.
      for (const [name, v] of b.once) if (this.pending.get(name) === v) this.pending.delete(name);
      const reply = parseReportReplyBody(r.bodyJson);
      for (const fn of this.listeners) fn(reply);
    } catch (err) {
      // The next heartbeat sends a fresh report; a lost session is the task stream's to notice.
      log.warn({ err: (err as Error).message, code: (err as { code?: string }).code }, 'status report not delivered');
    }
  }
}
