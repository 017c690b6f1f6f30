/** Run config `tracking`: where a run is logged live (an MLflow tracking server, see tracking/mlflow-tracker.ts). */
import { z } from 'zod';
import { ValidationError } from '@fedge/proto';

export const trackingSchema = z.strictObject({
  mlflow: z
    .url({ protocol: /^https?$/, message: 'tracking.mlflow: give the MLflow tracking server\'s URL, e.g. "http://mlflow:5000"' })
    .optional(),
  experiment: z.string().min(1, 'tracking.experiment: give an experiment name').max(500).optional(),
});

export type TrackingConfig = z.infer<typeof trackingSchema>;

/** The experiment runs are logged to when neither the run config nor fedge serve names one. */
export const DEFAULT_MLFLOW_EXPERIMENT = 'fedge';

/** A tracking server URL given on the command line (fedge serve --mlflow-tracking-uri), checked as the config's is. */
export function parseMlflowUri(v: string, flag: string): string {
  const r = trackingSchema.shape.mlflow.safeParse(v);
  if (!r.success || !r.data) throw new ValidationError(`${flag}: "${v}" is not the http(s) URL of an MLflow tracking server, e.g. http://127.0.0.1:5000`);
  return r.data;
}
