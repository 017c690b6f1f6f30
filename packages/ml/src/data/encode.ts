/** encodeTable: a RawTable to the Dataset the model trains on, with the fleet's preprocessing (normalize, one-hot, resize, targets per task type). */
import { ValidationError, type Preprocessing, type TaskType } from '@fedge/proto';
import type { Dataset } from '../dataset.js';
import { resizeBilinear } from './images.js';
import { exampleWhere, findColumn, type RawColumn, type RawTable } from './table.js';

function column(t: RawTable, name: string, role: string): RawColumn {
  const c = findColumn(t, name);
  if (!c) throw new ValidationError(`${t.source}: the fleet's preprocessing expects ${role} column '${name}', which this data does not have (columns: ${t.columns.map((col) => col.name).join(', ')}); load the same columns as the other agents`);
  return c;
}

function encodeX(t: RawTable, pre: Preprocessing): Float32Array {
  const W = pre.inputWidth;
  const x = new Float32Array(t.n * W);
  let off = 0;
  for (const f of pre.features) {
    const c = column(t, f.name, 'feature');
    if (f.kind === 'numeric') {
      if (c.type !== 'numeric') throw new ValidationError(`${t.source}: feature '${f.name}' is ${c.type} here, numeric in the fleet's preprocessing`);
      for (let i = 0; i < t.n; i++) {
        const v = c.values[i]!;
        x[i * W + off] = ((Number.isNaN(v) ? f.mean : v) - f.shift) / f.scale;
      }
      off += 1;
    } else if (f.kind === 'categorical') {
      if (c.type !== 'categorical') throw new ValidationError(`${t.source}: feature '${f.name}' is ${c.type} here, categorical in the fleet's preprocessing (pass --categorical ${f.name})`);
      // A value outside the fleet's vocabulary (or missing) encodes as all zeros, as the exported model does.
      const index = new Map(f.values.map((v, k) => [v, k]));
      for (let i = 0; i < t.n; i++) {
        const k = c.values[i] === null ? undefined : index.get(c.values[i]!);
        if (k !== undefined) x[i * W + off + k] = 1;
      }
      off += f.values.length;
    } else {
      let values: Float32Array, width: number;
      if (c.type === 'block') [values, width] = [c.values, c.width];
      else if (c.type === 'numeric') [values, width] = [Float32Array.from(c.values), 1];
      else throw new ValidationError(`${t.source}: feature '${f.name}' is categorical here, an array of ${f.width} values in the fleet's preprocessing`);
      const from = t.imageShape, to = pre.imageShape;
      const resize = width !== f.width && c.type === 'block' && from && to && from[2] === to[2] && from[0] * from[1] * from[2] === width && to[0]! * to[1]! * to[2]! === f.width;
      if (width !== f.width && !resize)
        throw new ValidationError(
          `${t.source}: feature '${f.name}' has ${width} values per example${from ? ` (${from.join('x')})` : ''}, the fleet's preprocessing expects ${f.width}${to ? ` (${to.join('x')})` : ''}` +
            (from && to && from[2] !== to[2] ? `; load the images with --channels ${to[2]}` : ''),
        );
      for (let i = 0; i < t.n; i++) {
        let row = values.subarray(i * width, (i + 1) * width);
        if (resize) row = resizeBilinear(row, from[0], from[1], from[2], to[0]!, to[1]!);
        x.set(row, i * W + off);
      }
      off += f.width;
    }
  }
  if (off !== W) throw new ValidationError(`preprocessing: features encode to ${off} values, inputWidth says ${W}`);
  return x;
}

/** The target value of row i as a number: numeric as is, categorical as its index in the fleet's values. */
function targetReader(t: RawTable, pre: Preprocessing, k: number): (i: number) => number {
  const spec = pre.targets[k]!;
  const c = column(t, spec.name, 'target');
  const at = (i: number): string => `${exampleWhere(t, i)}, target '${spec.name}'`;
  if (spec.kind === 'categorical') {
    if (c.type !== 'categorical') throw new ValidationError(`${t.source}: target '${spec.name}' is ${c.type} here, categorical in the fleet's preprocessing (pass --categorical ${spec.name})`);
    const index = new Map(spec.values.map((v, j) => [v, j]));
    return (i) => {
      const v = c.values[i]!;
      const j = v === null ? undefined : index.get(v);
      if (j === undefined) throw new ValidationError(`${at(i)}: ${v === null ? 'missing' : `'${v}' is not one of the fleet's classes (${spec.values.slice(0, 10).join(', ')}${spec.values.length > 10 ? ', …' : ''})`}; fix the label or drop the example`);
      return j;
    };
  }
  if (c.type !== 'numeric') throw new ValidationError(`${t.source}: target '${spec.name}' is ${c.type} here, numeric in the fleet's preprocessing`);
  return (i) => {
    const v = c.values[i]!;
    if (Number.isNaN(v)) throw new ValidationError(`${at(i)}: missing; fill it or load with --missing drop`);
    return v;
  };
}

/**
 * Encodes `t` with the fleet's preprocessing into the model's Dataset: classification -> Int32 class indices validated
 * in [0, outputs); binary -> 0/1 (a categorical target: its index in the two values); multilabel -> one 0/1 column
 * per target; regression -> the values. Errors name the example and the column.
 */
export function encodeTable(t: RawTable, pre: Preprocessing, task: { type: TaskType; outputs: number }): Dataset {
  const x = encodeX(t, pre);
  const base = { x, n: t.n, features: pre.inputWidth };
  if (task.type === 'classification') {
    const read = targetReader(t, pre, 0);
    const y = new Int32Array(t.n);
    for (let i = 0; i < t.n; i++) {
      const v = read(i);
      if (!Number.isInteger(v) || v < 0 || v >= task.outputs)
        throw new ValidationError(`${exampleWhere(t, i)}, target '${pre.targets[0]!.name}': class ${v} is outside 0..${task.outputs - 1} (the model has ${task.outputs} classes); fix the label or give the model more outputs`);
      y[i] = v;
    }
    return { ...base, y, numClasses: task.outputs };
  }
  const k = pre.targets.length;
  const expected = task.type === 'binary' ? 1 : k;
  if (k !== expected || task.outputs !== k) throw new ValidationError(`${task.type}: the model has ${task.outputs} outputs for ${k} target column(s) (${pre.targets.map((s) => s.name).join(', ')})${task.type === 'binary' ? '; binary takes one target and one output' : ''}`);
  const y = new Float32Array(t.n * k);
  for (let j = 0; j < k; j++) {
    const read = targetReader(t, pre, j);
    for (let i = 0; i < t.n; i++) {
      const v = read(i);
      if (task.type !== 'regression' && v !== 0 && v !== 1)
        throw new ValidationError(`${exampleWhere(t, i)}, target '${pre.targets[j]!.name}': ${v} is not 0 or 1, as ${task.type} needs`);
      y[i * k + j] = v;
    }
  }
  return { ...base, y, numClasses: 0, targets: k };
}
