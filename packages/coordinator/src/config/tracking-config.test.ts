import { describe, expect, it } from 'vitest';
import { parseRunConfig } from './run-config.js';
import { parseMlflowUri } from './tracking-config.js';

describe('run config tracking', () => {
  it('takes an http(s) MLflow server and an experiment, and names the field when either is wrong', () => {
    expect(parseRunConfig({ tracking: { mlflow: 'http://mlflow:5000', experiment: 'fleet' } }).tracking).toEqual({ mlflow: 'http://mlflow:5000', experiment: 'fleet' });
    expect(parseRunConfig({}).tracking).toBeUndefined();
    expect(() => parseRunConfig({ tracking: { mlflow: 'file:///tmp/mlruns' } })).toThrow(/tracking\.mlflow: give the MLflow tracking server's URL/);
    expect(() => parseRunConfig({ tracking: { experiment: '' } })).toThrow(/tracking\.experiment/);
    expect(() => parseRunConfig({ tracking: { mlfow: 'http://x' } })).toThrow(/mlfow/);
    expect(parseMlflowUri('https://mlflow.example', '--mlflow-tracking-uri')).toBe('https://mlflow.example');
    expect(() => parseMlflowUri('mlflow:5000', '--mlflow-tracking-uri')).toThrow(/--mlflow-tracking-uri: "mlflow:5000" is not the http\(s\) URL/);
  });
});
