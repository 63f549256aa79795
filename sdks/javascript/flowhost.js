// flowhost SDK (a minimal stand-in until the full SDK lands): the flow entry point, host-call
// errors as FlowError carrying the WIT case, and tables.count.
import { count } from 'flowhost:flow/tables@0.1.0';

export class FlowError extends Error {
  constructor(kind, message) {
    super(`${kind}: ${message}`);
    this.kind = kind;
  }
}

function host(call) {
  try {
    return call();
  } catch (e) {
    if (e && e.payload && e.payload.tag) throw new FlowError(e.payload.tag, e.payload.val);
    throw e;
  }
}

export const tables = {
  count: (table, filter = {}) => Number(host(() => count(table, JSON.stringify(filter)))),
};

export function flow(fn) {
  return (input) => {
    try {
      return JSON.stringify(fn(JSON.parse(input || '{}')));
    } catch (e) {
      throw e instanceof Error ? e.message : String(e);
    }
  };
}
