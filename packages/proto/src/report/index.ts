/**
 * Agent status reports (the Report RPC and the MQTT `report` message): one JSON body with optional sections, each
 * validated by its own schema (served, profile, drift here; health in health.ts), and the coordinator's reply body.
 */
import { z } from 'zod';
import { ValidationError } from '../errors.js';
import { formatZodError } from '../schemas.js';
import { servedSectionSchema } from './served.js';
import { driftSectionSchema, profileSectionSchema, dataProfileCountsSchema } from './drift.js';
import { healthSectionSchema } from './health.js';
import { siteSectionSchema } from './site.js';
import { reportIdSchema } from './ids.js';

export * from './ids.js';
export * from './served.js';
export * from './drift.js';
export * from './health.js';
export * from './site.js';

/** Report bodies are small control messages; a fleet profile of many features with few bins still fits. */
export const MAX_REPORT_BODY_CHARS = 1 << 20;

export const agentReportSchema = z.object({
  agentId: reportIdSchema,
  sessionToken: z.string().min(1).max(256),
  bodyJson: z.string().min(2, 'empty; send at least "{}"').max(MAX_REPORT_BODY_CHARS, `larger than ${MAX_REPORT_BODY_CHARS} characters`),
});

/** Sections are strict; the body itself drops sections it does not know, so a newer agent's report still lands. */
export const reportBodySchema = z.object({
  served: servedSectionSchema.optional(),
  profile: profileSectionSchema.optional(),
  drift: driftSectionSchema.optional(),
  health: healthSectionSchema.optional(),
  site: siteSectionSchema.optional(),
});
export type ReportBody = z.output<typeof reportBodySchema>;
export type ReportSectionName = keyof ReportBody;
export const REPORT_SECTIONS = Object.keys(reportBodySchema.shape) as ReportSectionName[];

/** The fleet reference of a run: the sum of its agents' training profiles (counts only). */
export const fleetReferenceSchema = z.strictObject({
  runId: reportIdSchema,
  /** Changes whenever an agent's profile in the sum does (agents send it back in served.fleetReferenceKey). */
  key: z.string().min(1).max(128),
  /** Agents whose profiles are in the sum. */
  agents: z.number().int().min(0),
  profile: dataProfileCountsSchema,
});
export type FleetReference = z.output<typeof fleetReferenceSchema>;

export const reportReplyBodySchema = z.strictObject({
  /** For an agent that serves a run (and has not got this one yet): the run's fleet reference. */
  fleetReference: fleetReferenceSchema.optional(),
});
export type ReportReplyBody = z.output<typeof reportReplyBodySchema>;

function parseJson<T extends z.ZodType>(schema: T, json: string, root: string): z.output<T> {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new ValidationError(`${root}: not valid JSON (${(err as Error).message})`);
  }
  const r = schema.safeParse(raw);
  if (!r.success) throw new ValidationError(formatZodError(r.error, root));
  return r.data;
}

/** A report's body_json; a ValidationError names the field (body_json.drift.features.3.psi: ...). */
export const parseReportBody = (json: string): ReportBody => parseJson(reportBodySchema, json, 'body_json');
export const parseReportReplyBody = (json: string): ReportReplyBody => parseJson(reportReplyBodySchema, json || '{}', 'report_reply.body_json');
