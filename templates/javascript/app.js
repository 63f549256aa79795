// The flow {{name}}: `run` gets the run's input (decoded from JSON) and returns its output.
// Build: `flowhost build .` (or `npm run build`) writes dist/{{name}}.wasm.
// The SDK (flowhost.js, types in flowhost.d.ts) is documented in docs/javascript.md.
import { flow, tables } from './flowhost.js';

export const run = flow((input) => {
  // A table read: refused with `access-denied` until {{name}}.yaml grants it:
  //   grants:
  //     tables:
  //       read: [Execution Log]
  const logRows = tables.count('Execution Log');
  return { input, log_rows: logRows };
});
