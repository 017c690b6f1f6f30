/**
 * A run's participants outside its record (issue 16): the query `fedge run participants` sends (zod-checked), and the
 * view `fedge run show` gets, where rounds small enough to list carry their participants inline as they always did.
 */
import { z } from 'zod';
import { ValidationError } from '@fedge/proto';
import type { Participant, ParticipantPage, ParticipantQuery, RoundRecord, RunRecord } from '../store/store.js';
import { INLINE_PARTICIPANTS, participantsNote, roundSummary } from '../store/round-summary.js';

/** The largest page one request returns. */
export const MAX_PARTICIPANTS_PAGE = 1000;

export const PARTICIPANT_STATUSES = ['completed', 'rejected', 'dropped', 'late', 'failed'] as const;

const querySchema = z.strictObject({
  round: z.number().int().min(0).optional(),
  status: z.enum(PARTICIPANT_STATUSES).optional(),
  limit: z.number().int().min(1).max(MAX_PARTICIPANTS_PAGE).default(100),
  offset: z.number().int().min(0).default(0),
});

/** A ParticipantQuery from the network (admin API, dashboard): a field that does not fit is named with what fits. */
export function parseParticipantQuery(input: unknown): ParticipantQuery {
  const r = querySchema.safeParse(input ?? {});
  if (r.success) {
    const { round, status, limit, offset } = r.data;
    return { ...(round !== undefined ? { round } : {}), ...(status ? { status } : {}), limit, offset };
  }
  const issue = r.error.issues[0]!;
  const field = issue.path.join('.') || 'query';
  throw new ValidationError(`${field}: ${issue.message} (round: a round number; status: ${PARTICIPANT_STATUSES.join('|')}; limit: 1-${MAX_PARTICIPANTS_PAGE}; offset: >= 0)`);
}

/** One page as the CLI and the dashboard get it: the filters, the rows, and the offset of the next page if any. */
export interface ParticipantListing extends ParticipantPage {
  run: string;
  query: ParticipantQuery;
  nextOffset?: number;
}

export function listing(run: string, query: ParticipantQuery, page: ParticipantPage): ParticipantListing {
  const next = query.offset + page.participants.length;
  return { run, query, total: page.total, participants: page.participants, ...(next < page.total && page.participants.length ? { nextOffset: next } : {}) };
}

/** A page's rows as a round record lists them (the round is the record's, not each row's). */
export function roundRows(page: ParticipantPage): Participant[] {
  return page.participants.map(({ round: _r, ...p }) => p);
}

/**
 * The run with each round of at most INLINE_PARTICIPANTS participants listing them (rounds as `fedge run show`
 * always showed them), and a note where to page the others. Rounds that carry an inline list (old records) keep it.
 */
export async function withInlineParticipants<T extends Pick<RunRecord, 'id' | 'rounds'>>(run: T, list: (q: ParticipantQuery) => Promise<ParticipantPage>): Promise<T> {
  const rounds = await Promise.all(
    run.rounds.map(async (x): Promise<RoundRecord> => {
      if (x.participants) return x;
      const total = roundSummary(x).participants;
      if (total > INLINE_PARTICIPANTS) return { ...x, participantsNote: participantsNote(run.id, x.round, total) };
      const page = await list({ round: x.round, limit: INLINE_PARTICIPANTS, offset: 0 });
      return { ...x, participants: roundRows(page) };
    }),
  );
  return { ...run, rounds };
}
