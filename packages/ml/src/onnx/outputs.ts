/**
 * The graph's outputs, named for what they hold: classification, binary and multilabel keep one `output` tensor of
 * probabilities (existing clients read `output`); regression gets one output per target column, named after it, so
 * a response says which number is the price. `fedge.outputs` in the model metadata records the mapping.
 */
import { ValidationError, type Preprocessing, type ResolvedTask } from '@fedge/proto';
import type { GraphBuilder } from './graph.js';
import { sanitizeTensorName } from './preprocess.js';

export const ONNX_OUTPUT = 'output';

/** What one graph output carries (ONNX metadata `fedge.outputs`, KServe metadata parameters). */
export interface OnnxOutputColumns {
  name: string;
  /** probabilities: softmax over classes; probability: sigmoid of each column; value: regression; output: no task known. */
  kind: 'probabilities' | 'probability' | 'value' | 'output';
  /** Class names (classification), the target columns (binary, multilabel, regression). */
  columns?: string[];
  /** binary with a categorical target: the class whose probability is given. */
  positive?: string;
}

export interface OutputPlan { names: string[]; columns: OnnxOutputColumns[] }

/** Decides and reserves the output names (before preprocessing inputs are named, so `output` keeps its name). */
export function planOutputs(g: GraphBuilder, task: ResolvedTask | undefined, p: Preprocessing | undefined): OutputPlan {
  const targets = p?.targets ?? [];
  if (task?.type === 'regression' && targets.length > 0) {
    const names = targets.map((t) => g.unique(sanitizeTensorName(t.name)));
    return { names, columns: targets.map((t, i) => ({ name: names[i]!, kind: 'value', columns: [t.name] })) };
  }
  const name = g.unique(ONNX_OUTPUT);
  if (!task) return { names: [name], columns: [{ name, kind: 'output' }] };
  const first = targets[0];
  switch (task.type) {
    case 'classification':
      return { names: [name], columns: [{ name, kind: 'probabilities', ...(first?.kind === 'categorical' && targets.length === 1 ? { columns: [...first.values] } : {}) }] };
    case 'binary': {
      const positive = first?.kind === 'categorical' ? first.values[1] : undefined;
      return { names: [name], columns: [{ name, kind: 'probability', ...(first ? { columns: [first.name] } : {}), ...(positive !== undefined ? { positive } : {}) }] };
    }
    default:
      return { names: [name], columns: [{ name, kind: task.type === 'multilabel' ? 'probability' : 'value', ...(targets.length > 0 ? { columns: targets.map((t) => t.name) } : {}) }] };
  }
}

/** Checks the model's output (per-example shape) against the task and the plan's column counts. */
export function checkOutputs(shape: number[], task: ResolvedTask | undefined, plan: OutputPlan): void {
  if (!task) return;
  if (shape.length !== 1) throw new ValidationError(`onnx export: the model's output has shape ${JSON.stringify(shape)}; a ${task.type} task needs a flat output`);
  const width = shape[0]!;
  if (task.outputs !== width)
    throw new ValidationError(`onnx export: task.outputs is ${task.outputs} but the model's output layer has ${width} units; export with the task the model was trained for`);
  const named = plan.names.length > 1 ? plan.names.length : plan.columns[0]!.columns?.length;
  if (named !== undefined && named !== width)
    throw new ValidationError(`onnx export: preprocessing.targets name ${named} ${task.type === 'classification' ? 'classes' : 'columns'} but the model's output has ${width} values; export with the preprocessing the model was trained with`);
}

/** Names the final tensor: one Identity, or a Split into per-target outputs. */
export function buildOutputs(g: GraphBuilder, cur: string, plan: OutputPlan): void {
  if (plan.names.length === 1) {
    g.named('Identity', plan.names[0]!, [cur]);
    return;
  }
  const parts = g.node('Split', 'output', [cur, g.i64('output/split', plan.names.map(() => 1))], { axis: 1 }, plan.names.length);
  parts.forEach((t, i) => g.named('Identity', plan.names[i]!, [t]));
}
