/**
 * JSON text as Python's `json.dumps` writes the vectors' values: floats keep a fraction or an
 * exponent (`3.0`, `1e+20`), so the chaincode's parser sees the same int/float types as Python.
 * Object keys keep their order (the chaincode must sort them itself).
 */

import { type Json, JsonFloat, MAX_SAFE_INT } from '../src/json';

export function pythonJson(value: Json): string {
  if (value instanceof JsonFloat) return pythonFloat(value.value);
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${pythonJson(v)}`).join(', ')}}`;
  }
  return JSON.stringify(value);
}

function pythonFloat(x: number): string {
  if (Object.is(x, -0)) return '-0.0';
  const text = String(x);
  return /[.eE]/.test(text) || Math.abs(x) > MAX_SAFE_INT ? text : `${text}.0`;
}
