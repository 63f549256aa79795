// {{name}}: a flowhost flow. `run` gets the input JSON and returns the output JSON;
// `flowhost build .` makes dist/{{name}}.wasm.
import { flow, tables } from './flowhost.js';

export const run = flow((input) => {
  // Refused with `access-denied` until {{name}}.yaml grants `tables: read: [Execution Log]`.
  const log_rows = tables.count('Execution Log');
  return { input, log_rows };
});
